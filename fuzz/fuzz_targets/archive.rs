//! Fuzzes safe tar.gz extraction into a fresh temp directory: an even first byte gzips the
//! rest (fuzzing the tar parser and the path checks), an odd one feeds the rest as the gzip
//! stream itself. After every call nothing may exist outside the destination, and a failed
//! extraction must leave no destination behind.
#![no_main]

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use imgclass_data::archive::extract_tar_gz;
use libfuzzer_sys::fuzz_target;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("imgclass-fuzz-archive-{}", std::process::id()));
        std::fs::create_dir_all(d.join("jail")).expect("temp dir");
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
        rest.to_vec()
    };
    let jail = dir().join("jail");
    let dest = jail.join("out");
    let result = extract_tar_gz(&bytes[..], &dest);
    if result.is_err() {
        assert!(!dest.exists(), "a failed extraction left {} behind", dest.display());
    }
    // nothing but `out` may ever appear in the jail, nothing but `jail` beside it
    for e in std::fs::read_dir(&jail).expect("jail") {
        let name = e.expect("entry").file_name();
        assert_eq!(name, "out", "extraction wrote {name:?} outside its destination");
    }
    for e in std::fs::read_dir(dir()).expect("dir") {
        let name = e.expect("entry").file_name();
        assert_eq!(name, "jail", "extraction wrote {name:?} outside its destination");
    }
    let _ = std::fs::remove_dir_all(&dest);
});
