//! Fuzzes the CIFAR-100 binary reader (`read_cifar100`, fine and coarse labels): the input
//! is `train.bin`, `test.bin` is one valid record, the names files are fixed.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use imgclass_data::cifar::{Cifar100Labels, read_cifar100};
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("imgclass-fuzz-cifar100-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        let fine: String = (0..100).map(|i| format!("fine{i}\n")).collect();
        let coarse: String = (0..20).map(|i| format!("coarse{i}\n")).collect();
        std::fs::write(d.join("fine_label_names.txt"), fine).expect("names");
        std::fs::write(d.join("coarse_label_names.txt"), coarse).expect("names");
        let mut rec = vec![0u8; 3074];
        rec[0] = 3;
        rec[1] = 42;
        std::fs::write(d.join("test.bin"), rec).expect("test.bin");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    std::fs::write(d.join("train.bin"), data).expect("write temp file");
    for labels in [Cifar100Labels::Fine, Cifar100Labels::Coarse] {
        if let Ok(tt) = read_cifar100(d, labels) {
            assert_eq!(tt.train.len() * 3074, data.len());
            assert_eq!(tt.test.len(), 1);
        }
    }
});
