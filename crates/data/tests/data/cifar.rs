//! CIFAR-10/100 binary readers and the CIFAR-10 writer.

use std::path::Path;

use imgclass_core::{ClassNames, Dataset, ImageShape};
use imgclass_data::cifar::{self, Cifar100Labels};
use imgclass_data::{DataError, TrainTest};
use imgclass_testkit::fixtures::{self, CifarImages};

use crate::tempdir;

fn assert_same(ds: &Dataset, images: &CifarImages) {
    assert_eq!(ds.image_shape(), Some(ImageShape::CIFAR));
    assert_eq!(ds.len(), images.len());
    let labels: Vec<u32> = images.labels.iter().map(|&l| u32::from(l)).collect();
    assert_eq!(ds.labels(), labels.as_slice());
    assert!(ds.pixels().expect("images").storage().0 == images.pixels.as_slice(), "pixels differ");
}

#[test]
fn reads_cifar10_bit_exact_across_blocks_and_batches() {
    let tmp = tempdir();
    // batch sizes straddle the reader's 1024-record blocks and 128-record chunks
    let fx = fixtures::write_cifar10_dir(tmp.path(), [1500, 7, 1024, 1, 130], 129, 3).unwrap();
    let data = cifar::read_cifar10(tmp.path()).unwrap();
    assert_same(&data.train, &fx.train);
    assert_same(&data.test, &fx.test);
    assert_eq!(data.train.classes().names(), fx.classes.as_slice());
    assert_eq!(data.train.classes(), &ClassNames::cifar10());
}

#[test]
fn pixel_at_c_y_x_reads_back_channel_major() {
    let tmp = tempdir();
    let mut img = CifarImages { labels: vec![4, 9], pixels: vec![0; 2 * 3072] };
    img.set_pixel(0, 2, 5, 7, 200); // blue plane
    img.set_pixel(1, 0, 31, 0, 99); // red plane, last row
    img.set_pixel(1, 1, 0, 31, 7); // green plane, first row, last column
    let path = tmp.path().join("test_batch.bin");
    std::fs::write(&path, fixtures::cifar10_records(&img)).unwrap();
    let ds = cifar::read_cifar10_batch(&path, &ClassNames::cifar10()).unwrap();
    assert_eq!(ds.labels(), &[4, 9]);
    let nonzero = |row: &[u8]| {
        row.iter().enumerate().filter(|(_, v)| **v != 0).map(|(i, &v)| (i, v)).collect::<Vec<_>>()
    };
    assert_eq!(nonzero(ds.pixels().expect("images").row(0)), vec![(2 * 1024 + 5 * 32 + 7, 200)]);
    assert_eq!(nonzero(ds.pixels().expect("images").row(1)), vec![(31 * 32, 99), (1024 + 31, 7)]);
}

#[test]
fn wrong_file_size_is_bad_size_naming_the_file() {
    let tmp = tempdir();
    fixtures::write_cifar10_dir(tmp.path(), [2, 2, 2, 2, 2], 2, 1).unwrap();
    let bad = tmp.path().join("data_batch_3.bin");
    let mut bytes = std::fs::read(&bad).unwrap();
    bytes.push(0);
    std::fs::write(&bad, &bytes).unwrap();
    match cifar::read_cifar10(tmp.path()) {
        Err(DataError::BadSize { path, size, record }) => {
            assert_eq!(path, bad);
            assert_eq!((size, record), (2 * 3073 + 1, 3073));
        }
        other => panic!("expected BadSize, got {other:?}"),
    }
    // a truncated file is also not a whole number of records
    std::fs::write(&bad, &bytes[..3073 + 100]).unwrap();
    assert!(
        matches!(cifar::read_cifar10(tmp.path()), Err(DataError::BadSize { path, .. }) if path == bad)
    );
}

#[test]
fn empty_and_missing_batches_are_errors_naming_the_file() {
    let tmp = tempdir();
    fixtures::write_cifar10_dir(tmp.path(), [2, 2, 2, 2, 2], 2, 1).unwrap();
    let b4 = tmp.path().join("data_batch_4.bin");
    std::fs::write(&b4, b"").unwrap();
    assert!(
        matches!(cifar::read_cifar10(tmp.path()), Err(DataError::EmptyFile { path }) if path == b4)
    );
    std::fs::remove_file(&b4).unwrap();
    match cifar::read_cifar10(tmp.path()) {
        Err(DataError::Io { path, source }) => {
            assert_eq!(path, b4);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn label_out_of_range_gives_file_and_offset() {
    let tmp = tempdir();
    let fx = fixtures::write_cifar10_dir(tmp.path(), [3, 3, 3, 3, 3], 3, 2).unwrap();
    let mut part = fx.train.slice(3..6);
    part.labels[2] = 10;
    let bad = tmp.path().join("data_batch_2.bin");
    std::fs::write(&bad, fixtures::cifar10_records(&part)).unwrap();
    match cifar::read_cifar10(tmp.path()) {
        Err(DataError::LabelOutOfRange { path, offset, label, n_classes }) => {
            assert_eq!(path, bad);
            assert_eq!((offset, label, n_classes), (2 * 3073, 10, 10));
        }
        other => panic!("expected LabelOutOfRange, got {other:?}"),
    }
    // the same file read with 11 names is fine
    let eleven = ClassNames::new((0..11).map(|i| i.to_string()));
    assert_eq!(cifar::read_cifar10_batch(&bad, &eleven).unwrap().label(2), 10);
}

#[test]
fn names_file_missing_or_empty_is_an_error() {
    let tmp = tempdir();
    fixtures::write_cifar10_dir(tmp.path(), [1, 1, 1, 1, 1], 1, 1).unwrap();
    let meta = tmp.path().join("batches.meta.txt");
    std::fs::write(&meta, "\n  \n\n").unwrap();
    assert!(
        matches!(cifar::read_cifar10(tmp.path()), Err(DataError::EmptyNames { path }) if path == meta)
    );
    std::fs::remove_file(&meta).unwrap();
    assert!(
        matches!(cifar::read_cifar10(tmp.path()), Err(DataError::MissingNames { path }) if path == meta)
    );
    // blank lines and CRLF endings are ignored
    std::fs::write(&meta, "\r\nred\r\n\r\ngreen\r\nblue\r\nx\r\ny\r\nz\r\na\r\nb\r\nc\r\nd\r\n")
        .unwrap();
    let data = cifar::read_cifar10(tmp.path()).unwrap();
    assert_eq!(data.train.classes().names()[..3], ["red", "green", "blue"]);
    assert_eq!(data.train.n_classes(), 10);
}

fn batch_sizes(dir: &Path) -> Vec<u64> {
    cifar::CIFAR10_TRAIN_FILES
        .iter()
        .chain([&cifar::CIFAR10_TEST_FILE])
        .map(|f| std::fs::metadata(dir.join(f)).unwrap().len() / 3073)
        .collect()
}

#[test]
fn write_cifar10_writes_the_official_layout_and_reads_back() {
    let src = tempdir();
    let fx = fixtures::write_cifar10_dir(src.path(), [4, 2, 3, 3, 1], 5, 9).unwrap();
    let data = cifar::read_cifar10(src.path()).unwrap();
    let out = tempdir();
    cifar::write_cifar10(out.path(), &data).unwrap();
    // 13 rows "as evenly as possible" in row order: 3, 3, 3, 2, 2
    assert_eq!(batch_sizes(out.path()), vec![3, 3, 3, 2, 2, 5]);
    // the bytes equal the independent encoding of the same rows
    let mut start = 0;
    for (f, n) in cifar::CIFAR10_TRAIN_FILES.iter().zip([3, 3, 3, 2, 2]) {
        let expected = fixtures::cifar10_records(&fx.train.slice(start..start + n));
        assert!(std::fs::read(out.path().join(f)).unwrap() == expected, "{f} differs");
        start += n;
    }
    let meta = std::fs::read_to_string(out.path().join("batches.meta.txt")).unwrap();
    assert_eq!(meta, fixtures::CIFAR10_NAMES.join("\n") + "\n");
    assert_eq!(cifar::read_cifar10(out.path()).unwrap(), data);
}

#[test]
fn write_cifar10_splits_50000_into_five_batches_of_10000() {
    let px = vec![0u8; 50_001 * 3072];
    let labels: Vec<u32> = (0..50_001).map(|i| i % 10).collect();
    let ds = Dataset::new(
        px[..50_000 * 3072].to_vec(),
        labels[..50_000].to_vec(),
        ImageShape::CIFAR,
        ClassNames::cifar10(),
    )
    .unwrap();
    let test = Dataset::new(px[..3072].to_vec(), vec![1], ImageShape::CIFAR, ClassNames::cifar10())
        .unwrap();
    let out = tempdir();
    cifar::write_cifar10(out.path(), &TrainTest { train: ds, test }).unwrap();
    assert_eq!(batch_sizes(out.path()), vec![10_000, 10_000, 10_000, 10_000, 10_000, 1]);
}

#[test]
fn write_cifar10_rejects_what_it_cannot_write() {
    let out = tempdir();
    let grey =
        Dataset::new(vec![0; 1024], vec![0], ImageShape::new(1, 32, 32), ClassNames::new(["a"]))
            .unwrap();
    let tt = TrainTest { train: grey.clone(), test: grey };
    assert!(matches!(
        cifar::write_cifar10(out.path(), &tt),
        Err(DataError::NotCifarShape { found }) if found == ImageShape::new(1, 32, 32).into()
    ));
    let many = ClassNames::new((0..257).map(|i| format!("c{i}")));
    let ds = Dataset::new(vec![0; 3072], vec![256], ImageShape::CIFAR, many).unwrap();
    let tt = TrainTest { train: ds.clone(), test: ds };
    assert!(matches!(
        cifar::write_cifar10(out.path(), &tt),
        Err(DataError::TooManyClasses { n_classes: 257 })
    ));
    let bad =
        Dataset::new(vec![0; 3072], vec![0], ImageShape::CIFAR, ClassNames::new(["two\nlines"]))
            .unwrap();
    let tt = TrainTest { train: bad.clone(), test: bad };
    assert!(
        matches!(cifar::write_cifar10(out.path(), &tt), Err(DataError::BadClassName { name }) if name == "two\nlines")
    );
    let a =
        Dataset::new(vec![0; 3072], vec![0], ImageShape::CIFAR, ClassNames::new(["a"])).unwrap();
    let b =
        Dataset::new(vec![0; 3072], vec![0], ImageShape::CIFAR, ClassNames::new(["b"])).unwrap();
    let tt = TrainTest { train: a, test: b };
    assert!(matches!(cifar::write_cifar10(out.path(), &tt), Err(DataError::SplitMismatch { .. })));
    // nothing was written by the rejected calls
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn write_into_a_missing_directory_is_an_io_error() {
    let tmp = tempdir();
    let ds = |n: usize| {
        Dataset::new(vec![0; n * 3072], vec![0; n], ImageShape::CIFAR, ClassNames::new(["a"]))
            .unwrap()
    };
    let missing = tmp.path().join("nope");
    // five training images: one per batch file (fewer is refused before any write)
    let err = cifar::write_cifar10(&missing, &TrainTest { train: ds(5), test: ds(1) }).unwrap_err();
    assert!(matches!(err, DataError::Io { ref path, .. } if path.starts_with(&missing)), "{err:?}");
}

#[test]
fn reads_cifar100_fine_and_coarse() {
    let tmp = tempdir();
    let fx = fixtures::write_cifar100_dir(tmp.path(), 230, 17, 5).unwrap();
    let fine = cifar::read_cifar100(tmp.path(), Cifar100Labels::Fine).unwrap();
    assert_same(&fine.train, &fx.train_fine);
    assert_same(&fine.test, &fx.test_fine);
    assert_eq!(fine.train.classes().names(), fx.fine_names.as_slice());
    let coarse = cifar::read_cifar100(tmp.path(), Cifar100Labels::Coarse).unwrap();
    let expected: Vec<u32> = fx.train_coarse.iter().map(|&l| u32::from(l)).collect();
    assert_eq!(coarse.train.labels(), expected.as_slice());
    assert_eq!(
        coarse.train.pixels().map(|r| r.storage().0),
        fine.train.pixels().map(|r| r.storage().0)
    );
    assert_eq!(coarse.test.n_classes(), 20);
    // a missing names file names the file of the label kind asked for
    let names = tmp.path().join("coarse_label_names.txt");
    std::fs::remove_file(&names).unwrap();
    assert!(matches!(
        cifar::read_cifar100(tmp.path(), Cifar100Labels::Coarse),
        Err(DataError::MissingNames { path }) if path == names
    ));
    // wrong size: a CIFAR-10 record length is not a CIFAR-100 one
    let train = tmp.path().join("train.bin");
    std::fs::write(&train, vec![0u8; 3073 * 2]).unwrap();
    assert!(matches!(
        cifar::read_cifar100(tmp.path(), Cifar100Labels::Fine),
        Err(DataError::BadSize { path, record: 3074, .. }) if path == train
    ));
}

#[test]
fn shuffle_train_is_a_seeded_permutation_of_rows() {
    let tmp = tempdir();
    let fx = fixtures::write_cifar10_dir(tmp.path(), [10, 10, 10, 10, 10], 1, 4).unwrap();
    let data = cifar::read_cifar10(tmp.path()).unwrap();
    let mut a = data.clone();
    a.shuffle_train(11).unwrap();
    let mut b = data.clone();
    b.shuffle_train(11).unwrap();
    let mut c = data.clone();
    c.shuffle_train(12).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.train, c.train);
    assert_eq!(a.test, data.test);
    // the permutation is the documented one: new row i is old row perm[i]
    let mut perm: Vec<usize> = (0..50).collect();
    imgclass_core::rng::SplitMix64::new(11).shuffle(&mut perm);
    for (i, &p) in perm.iter().enumerate() {
        assert_eq!(
            a.train.pixels().expect("images").row(i),
            &fx.train.pixels[p * 3072..(p + 1) * 3072]
        );
        assert_eq!(a.train.label(i), u32::from(fx.train.labels[p]));
    }
}

/// Issue 17 item 2: record counts are checked from the file sizes; a short or long training
/// batch is an error naming the file (the reader alone accepts any count).
#[test]
fn batch_record_counts_are_checked_naming_the_short_or_long_file() {
    let dir = tempdir();
    // the writer's own uneven layout (13 rows: 3, 3, 3, 2, 2) is consistent
    fixtures::write_cifar10_dir(dir.path(), [3, 3, 3, 2, 2], 5, 9).unwrap();
    cifar::check_cifar10_batches(dir.path(), false).expect("within one of each other");
    let e = cifar::check_cifar10_batches(dir.path(), true).unwrap_err();
    assert!(matches!(e, DataError::Truncated { .. }), "not the official 10,000: {e}");
    // one batch short, one batch long
    let short = tempdir();
    fixtures::write_cifar10_dir(short.path(), [6, 6, 2, 6, 6], 5, 9).unwrap();
    let e = cifar::check_cifar10_batches(short.path(), false).unwrap_err();
    let p = short.path().join("data_batch_3.bin");
    assert!(
        matches!(&e, DataError::Truncated { path, expected: 18_438, found: 6_146 } if *path == p),
        "{e}"
    );
    assert!(e.to_string().contains("data_batch_3.bin is truncated"), "{e}");
    let long = tempdir();
    fixtures::write_cifar10_dir(long.path(), [6, 6, 6, 6, 9], 5, 9).unwrap();
    let e = cifar::check_cifar10_batches(long.path(), false).unwrap_err();
    let p = long.path().join("data_batch_5.bin");
    assert!(
        matches!(&e, DataError::TrailingData { path, expected: 18_438, found: 27_657 } if *path == p),
        "{e}"
    );
    // the official counts, as sparse files of the exact sizes
    let official = tempdir();
    for f in cifar::CIFAR10_TRAIN_FILES.iter().chain([&cifar::CIFAR10_TEST_FILE]) {
        std::fs::File::create(official.path().join(f)).unwrap().set_len(10_000 * 3073).unwrap();
    }
    cifar::check_cifar10_batches(official.path(), true).expect("official sizes");
    let test = official.path().join(cifar::CIFAR10_TEST_FILE);
    std::fs::File::create(&test).unwrap().set_len(9_999 * 3073).unwrap();
    let e = cifar::check_cifar10_batches(official.path(), true).unwrap_err();
    assert!(
        matches!(&e, DataError::Truncated { path, expected: 30_730_000, found: 30_726_927 }
            if *path == test),
        "{e}"
    );
}

/// Issue 17 item 15: too few images for five non-empty training batches and a test batch is
/// refused before anything is written (empty batch files used to be written, then fail to
/// read back).
#[test]
fn write_cifar10_refuses_fewer_images_than_batches() {
    let out = tempdir();
    let ds = |n: usize| {
        Dataset::new(vec![0; n * 3072], vec![0; n], ImageShape::CIFAR, ClassNames::new(["a"]))
            .unwrap()
    };
    let e = cifar::write_cifar10(out.path(), &TrainTest { train: ds(4), test: ds(1) }).unwrap_err();
    assert!(
        matches!(e, DataError::TooFewForLayout { split: "training", found: 4, min: 5, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("needs at least 5 training images"), "{e}");
    let e = cifar::write_cifar10(out.path(), &TrainTest { train: ds(5), test: ds(0) }).unwrap_err();
    assert!(matches!(e, DataError::TooFewForLayout { split: "test", found: 0, min: 1, .. }));
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    cifar::write_cifar10(out.path(), &TrainTest { train: ds(5), test: ds(1) }).expect("enough");
    cifar::read_cifar10(out.path()).expect("reads back");
}
