//! Fuzzes the CIFAR-10 batch reader (`read_cifar10_batch`) and the names-file reader on the
//! same bytes, through a per-process temp file (the readers take paths).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use imgclass_core::ClassNames;
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("imgclass-fuzz-cifar10-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let path = dir().join("data_batch_1.bin");
    std::fs::write(&path, data).expect("write temp file");
    if let Ok(ds) = imgclass_data::cifar::read_cifar10_batch(&path, &ClassNames::cifar10()) {
        // a successful read is whole records with in-range labels
        assert_eq!(ds.len() * 3073, data.len());
        assert!(ds.labels().iter().all(|&l| l < 10));
        assert_eq!(ds.pixels().map(|r| r.row(0)), Some(&data[1..3073]));
    }
    let _ = imgclass_data::cifar::read_names(&path);
});
