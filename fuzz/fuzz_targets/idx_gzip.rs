//! Fuzzes the gzip path of the IDX readers: an even first byte feeds the rest as a valid
//! gzip stream of arbitrary content (fuzzing the IDX parser behind the decoder), an odd one
//! feeds the gzip magic followed by the raw rest (fuzzing the decoder itself).
#![no_main]

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use imgclass_data::idx;
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("imgclass-fuzz-idx-gzip-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let bytes = if mode % 2 == 0 {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(rest).expect("in-memory gzip");
        gz.finish().expect("in-memory gzip")
    } else {
        let mut b = vec![0x1f, 0x8b];
        b.extend_from_slice(rest);
        b
    };
    let path = dir().join("input.idx.gz");
    std::fs::write(&path, &bytes).expect("write temp file");
    if let Ok((pixels, shape, n)) = idx::read_idx_images(&path) {
        assert_eq!(pixels.len(), n * shape.len());
    }
    let _ = idx::read_idx_labels(&path);
});
