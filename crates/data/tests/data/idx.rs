//! IDX readers, raw and gzip.

use std::path::{Path, PathBuf};

use imgclass_core::{ClassNames, ImageShape};
use imgclass_data::DataError;
use imgclass_data::idx::{self, fashion_mnist_classes, mnist_classes};
use imgclass_testkit::fixtures;

use crate::tempdir;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn reads_raw_and_gzip_pairs_by_content_not_extension() {
    let tmp = tempdir();
    let pixels = fixtures::random_bytes(5 * 3 * 4, 1);
    let labels = [3u8, 0, 9, 9, 1];
    let img = fixtures::idx_images_bytes(5, 3, 4, &pixels);
    let lab = fixtures::idx_labels_bytes(&labels);
    // raw content under a .gz name, gzip content under a plain name
    let pairs = [
        (write(tmp.path(), "a-images.gz", &img), write(tmp.path(), "a-labels.gz", &lab)),
        (
            write(tmp.path(), "b-images-idx3-ubyte", &fixtures::gzip_bytes(&img)),
            write(tmp.path(), "b-labels-idx1-ubyte", &fixtures::gzip_bytes(&lab)),
        ),
    ];
    for (ip, lp) in &pairs {
        let (px, shape, n) = idx::read_idx_images(ip).unwrap();
        assert_eq!((px.as_slice(), shape, n), (pixels.as_slice(), ImageShape::new(1, 3, 4), 5));
        assert_eq!(idx::read_idx_labels(lp).unwrap(), labels);
        let ds = idx::read_idx_pair(ip, lp, mnist_classes()).unwrap();
        assert_eq!(ds.labels(), &[3, 0, 9, 9, 1]);
        assert_eq!(ds.pixels().expect("images").row(2), &pixels[24..36]);
        assert_eq!(ds.classes().name(9), Some("9"));
    }
}

#[test]
fn class_name_lists() {
    assert_eq!(mnist_classes().names(), ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    let f = fashion_mnist_classes();
    assert_eq!(f.len(), 10);
    assert_eq!((f.name(0), f.name(9)), (Some("T-shirt/top"), Some("Ankle boot")));
}

#[test]
fn bad_magic_and_element_type_are_typed_errors() {
    let tmp = tempdir();
    let lab = write(tmp.path(), "labels", &fixtures::idx_labels_bytes(&[1, 2]));
    // a label file where images are expected
    assert!(matches!(
        idx::read_idx_images(&lab),
        Err(DataError::BadMagic { path, found: 0x0801, expected: 0x0803 }) if path == lab
    ));
    let junk = write(tmp.path(), "junk", &[0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0]);
    assert!(matches!(
        idx::read_idx_labels(&junk),
        Err(DataError::BadMagic { path, found: 0x1234_5678, .. }) if path == junk
    ));
    // float elements (type 0x0d)
    let mut f = fixtures::idx_labels_bytes(&[0; 4]);
    f[2] = 0x0d;
    let fp = write(tmp.path(), "floats", &f);
    assert!(matches!(
        idx::read_idx_labels(&fp),
        Err(DataError::UnsupportedType { path, type_code: 0x0d }) if path == fp
    ));
}

#[test]
fn count_mismatch_names_both_files() {
    let tmp = tempdir();
    let ip = write(tmp.path(), "i", &fixtures::idx_images_bytes(3, 2, 2, &[0; 12]));
    let lp = write(tmp.path(), "l", &fixtures::idx_labels_bytes(&[0, 1]));
    match idx::read_idx_pair(&ip, &lp, mnist_classes()) {
        Err(DataError::CountMismatch { images, labels, n_images, n_labels }) => {
            assert_eq!((images, labels, n_images, n_labels), (ip, lp, 3, 2));
        }
        other => panic!("expected CountMismatch, got {other:?}"),
    }
}

#[test]
fn label_out_of_range_gives_offset() {
    let tmp = tempdir();
    let ip = write(tmp.path(), "i", &fixtures::idx_images_bytes(3, 1, 1, &[0; 3]));
    let lp = write(tmp.path(), "l", &fixtures::idx_labels_bytes(&[0, 2, 1]));
    match idx::read_idx_pair(&ip, &lp, ClassNames::new(["a", "b"])) {
        Err(DataError::LabelOutOfRange { path, offset, label, n_classes }) => {
            assert_eq!((path, offset, label, n_classes), (lp, 9, 2, 2));
        }
        other => panic!("expected LabelOutOfRange, got {other:?}"),
    }
}

#[test]
fn truncated_raw_files_and_trailing_bytes() {
    let tmp = tempdir();
    let full = fixtures::idx_images_bytes(5, 3, 4, &[7; 60]);
    let cut = write(tmp.path(), "cut", &fixtures::truncated(&full, 73));
    assert!(matches!(
        idx::read_idx_images(&cut),
        Err(DataError::Truncated { path, expected: 76, found: 73 }) if path == cut
    ));
    let header = write(tmp.path(), "header", &fixtures::truncated(&full, 10));
    assert!(matches!(
        idx::read_idx_images(&header),
        Err(DataError::Truncated { path, expected: 16, found: 10 }) if path == header
    ));
    let tiny = write(tmp.path(), "tiny", &[0, 0]);
    assert!(
        matches!(idx::read_idx_labels(&tiny), Err(DataError::Truncated { path, .. }) if path == tiny)
    );
    let mut long = full.clone();
    long.push(1);
    let lp = write(tmp.path(), "long", &long);
    assert!(matches!(
        idx::read_idx_images(&lp),
        Err(DataError::TrailingData { path, expected: 76, found: 77 }) if path == lp
    ));
    // a gzip of a truncated file is a truncated file, not a gzip error
    let gz = write(tmp.path(), "cut.gz", &fixtures::gzip_bytes(&fixtures::truncated(&full, 70)));
    assert!(
        matches!(idx::read_idx_images(&gz), Err(DataError::Truncated { path, found: 70, .. }) if path == gz)
    );
}

#[test]
fn truncated_or_corrupt_gzip_is_a_gzip_error_naming_the_file() {
    let tmp = tempdir();
    let gz = fixtures::gzip_bytes(&fixtures::idx_images_bytes(
        50,
        8,
        8,
        &fixtures::random_bytes(3200, 2),
    ));
    for keep in [gz.len() - 1, gz.len() - 8, gz.len() / 2, 12] {
        let p = write(tmp.path(), &format!("cut{keep}.gz"), &fixtures::truncated(&gz, keep));
        assert!(
            matches!(idx::read_idx_images(&p), Err(DataError::Gzip { ref path, .. }) if *path == p),
            "keep {keep}: {:?}",
            idx::read_idx_images(&p)
        );
    }
    let mut bad_crc = gz.clone();
    let n = bad_crc.len();
    bad_crc[n - 6] ^= 0xff;
    let p = write(tmp.path(), "crc.gz", &bad_crc);
    assert!(matches!(idx::read_idx_images(&p), Err(DataError::Gzip { path, .. }) if path == p));
}

#[test]
fn missing_file_is_io_naming_it() {
    let tmp = tempdir();
    let p = tmp.path().join("absent-idx3-ubyte.gz");
    assert!(matches!(idx::read_idx_images(&p), Err(DataError::Io { path, .. }) if path == p));
}
