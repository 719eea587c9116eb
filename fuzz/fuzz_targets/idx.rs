//! Fuzzes the raw (uncompressed) IDX readers: the same bytes as an image file, a label file,
//! and both as a pair.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use imgclass_data::idx;
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("imgclass-fuzz-idx-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let path = dir().join("input.idx");
    std::fs::write(&path, data).expect("write temp file");
    if let Ok((pixels, shape, n)) = idx::read_idx_images(&path) {
        assert_eq!(pixels.len(), n * shape.len());
    }
    let _ = idx::read_idx_labels(&path);
    let _ = idx::read_idx_pair(&path, &path, idx::mnist_classes());
});
