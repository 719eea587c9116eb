//! The real CIFAR-10 image folder (`IMGCLASS_CIFAR10_JPEG`): counts, class order, shape, and a
//! round trip through the CIFAR-10 binary layout.

use std::path::PathBuf;

/// The folder named by `IMGCLASS_CIFAR10_JPEG` (relative values are resolved against the
/// workspace root), or `None` when the variable is unset.
fn cifar10_jpeg() -> Option<PathBuf> {
    let v = std::env::var_os("IMGCLASS_CIFAR10_JPEG")?;
    let p = PathBuf::from(v);
    Some(if p.is_relative() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
    } else {
        p
    })
}

/// Ignored by a plain `cargo test` (counted as ignored, never as passed); `cargo test --
/// --ignored` (as `.ci/run` does) runs it, and it fails when the variable is unset.
#[cfg(feature = "images")]
#[test]
#[ignore = "real data: run with IMGCLASS_CIFAR10_JPEG set and -- --ignored"]
fn real_cifar10_jpeg_folder_reads_and_round_trips() {
    use imgclass_core::{ClassNames, ImageShape};
    use imgclass_data::cifar;
    use imgclass_data::folder::{FolderOptions, read_image_folder};

    let root = cifar10_jpeg()
        .expect("IMGCLASS_CIFAR10_JPEG must name the CIFAR-10 image folder for this test");
    assert!(
        root.is_dir(),
        "IMGCLASS_CIFAR10_JPEG points to {}, which is not a directory",
        root.display()
    );
    let data = read_image_folder(&root, &FolderOptions::default()).expect("read the image folder");
    assert_eq!(data.train.classes(), &ClassNames::cifar10());
    assert_eq!(data.test.classes(), &ClassNames::cifar10());
    assert_eq!(data.train.image_shape(), Some(ImageShape::CIFAR));
    assert_eq!(data.test.image_shape(), Some(ImageShape::CIFAR));
    assert_eq!(data.train.len(), 50_000);
    assert_eq!(data.test.len(), 10_000);
    for (ds, per_class) in [(&data.train, 5_000), (&data.test, 1_000)] {
        let mut counts = [0usize; 10];
        for &l in ds.labels() {
            counts[l as usize] += 1;
        }
        assert_eq!(counts, [per_class; 10]);
    }
    // real photos: not all black, not all one value
    assert!(
        data.train.pixels().expect("images").storage().0.iter().any(|&p| p > 200)
            && data.train.pixels().expect("images").storage().0.iter().any(|&p| p < 50)
    );

    let out = tempfile::tempdir().expect("temporary directory");
    cifar::write_cifar10(out.path(), &data).expect("write the binary layout");
    for f in cifar::CIFAR10_TRAIN_FILES.iter().chain([&cifar::CIFAR10_TEST_FILE]) {
        assert_eq!(
            std::fs::metadata(out.path().join(f)).expect("batch written").len(),
            10_000 * 3073
        );
    }
    let back = cifar::read_cifar10(out.path()).expect("read the binary layout back");
    assert!(back == data, "binary layout does not read back identical");
}

#[cfg(not(feature = "images"))]
#[test]
fn real_cifar10_jpeg_folder_needs_the_images_feature() {
    assert!(cifar10_jpeg().is_none(), "IMGCLASS_CIFAR10_JPEG is set but the images feature is off");
    eprintln!("skipped: built without the images feature");
}
