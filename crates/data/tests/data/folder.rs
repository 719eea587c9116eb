//! Image-folder reader on tiny PNG/JPEG folders.

use imgclass_core::{ClassNames, ImageShape};
use imgclass_data::DataError;
use imgclass_data::folder::{FolderOptions, read_image_folder, read_split_folder};
use imgclass_testkit::fixtures::{self, FolderImage};

use crate::tempdir;

fn rows_of<'a>(written: &'a [FolderImage], split: &str, order: &[&str]) -> Vec<&'a FolderImage> {
    let mut v: Vec<&FolderImage> = written.iter().filter(|w| w.split == split).collect();
    let pos = |c: &str| order.iter().position(|o| *o == c).unwrap();
    v.sort_by(|a, b| (pos(&a.class), &a.file).cmp(&(pos(&b.class), &b.file)));
    v
}

#[test]
fn reads_png_folder_in_label_then_file_order_channel_major() {
    let tmp = tempdir();
    let spec = [
        ("train", "dog", 3),
        ("train", "bird", 2),
        ("train", "cat", 12),
        ("test", "cat", 2),
        ("test", "bird", 1),
    ];
    let written = fixtures::write_png_folder(tmp.path(), &spec, 5, 4, 7).unwrap();
    let data = read_image_folder(tmp.path(), &FolderOptions::default()).unwrap();
    let order = ["bird", "cat", "dog"]; // not the CIFAR-10 set: sorted by name
    assert_eq!(data.train.classes().names(), order);
    assert_eq!(data.train.image_shape(), Some(ImageShape::new(3, 4, 5)));
    for (split, ds) in [("train", &data.train), ("test", &data.test)] {
        let expected = rows_of(&written, split, &order);
        assert_eq!(ds.len(), expected.len());
        for (i, w) in expected.iter().enumerate() {
            assert_eq!(ds.classes().name(ds.label(i)), Some(w.class.as_str()));
            assert_eq!(
                ds.pixels().expect("images").row(i),
                w.chw.as_slice(),
                "{split} row {i} ({}/{})",
                w.class,
                w.file
            );
        }
    }
    assert_eq!(data.test.labels(), &[0, 1, 1]);
}

#[test]
fn cifar10_class_set_gets_the_official_order() {
    let tmp = tempdir();
    // created in reverse alphabetical order, to be sure the order is not the listing's
    let mut names = fixtures::CIFAR10_NAMES;
    names.reverse();
    let spec: Vec<(&str, &str, usize)> =
        names.iter().map(|n| ("train", *n, 1)).chain([("test", "ship", 1)]).collect();
    fixtures::write_png_folder(tmp.path(), &spec, 2, 2, 1).unwrap();
    let data = read_image_folder(tmp.path(), &FolderOptions::default()).unwrap();
    assert_eq!(data.train.classes(), &ClassNames::cifar10());
    assert_eq!(data.train.labels(), &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(data.test.labels(), &[8]);
}

#[test]
fn extensions_are_case_insensitive_and_other_files_ignored() {
    let tmp = tempdir();
    let dir = tmp.path().join("train/a");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(tmp.path().join("test/a")).unwrap();
    let rgb = |v: u8| vec![v; 3 * 2 * 2];
    fixtures::write_png_rgb(&dir.join("1.PNG"), 2, 2, &rgb(10)).unwrap();
    fixtures::write_png_rgb(&dir.join("2.Jpeg"), 2, 2, &rgb(20)).unwrap(); // PNG bytes, jpeg name
    fixtures::write_png_rgb(&tmp.path().join("test/a/x.png"), 2, 2, &rgb(30)).unwrap();
    std::fs::write(dir.join("notes.txt"), "not an image").unwrap();
    std::fs::write(dir.join(".hidden.png"), "not an image either").unwrap();
    std::fs::write(dir.join("png"), "no extension").unwrap();
    std::fs::create_dir_all(tmp.path().join("train/.cache")).unwrap();
    let data = read_image_folder(tmp.path(), &FolderOptions::default()).unwrap();
    assert_eq!(data.train.classes().names(), ["a"]);
    assert_eq!(data.train.len(), 2);
    assert_eq!(data.train.pixels().expect("images").row(0), &[10u8; 12][..]);
    assert_eq!(data.train.pixels().expect("images").row(1), &[20u8; 12][..]);
}

#[test]
fn image_of_another_size_is_an_error_unless_resizing() {
    let tmp = tempdir();
    fixtures::write_png_folder(tmp.path(), &[("train", "a", 2), ("test", "a", 1)], 4, 3, 2)
        .unwrap();
    let odd = tmp.path().join("train/a/img_zzz.png");
    fixtures::write_png_rgb(&odd, 5, 3, &[0; 45]).unwrap();
    match read_image_folder(tmp.path(), &FolderOptions::default()) {
        Err(DataError::ImageSize { expected, wrong, n_wrong }) => {
            assert_eq!(expected, (3, 4));
            assert_eq!(wrong, vec![(odd.clone(), (3, 5))]);
            assert_eq!(n_wrong, 1);
        }
        other => panic!("expected ImageSize, got {other:?}"),
    }
    let opts = FolderOptions { resize: Some((6, 8)), threads: None };
    let data = read_image_folder(tmp.path(), &opts).unwrap();
    assert_eq!(data.train.image_shape(), Some(ImageShape::new(3, 6, 8)));
    assert_eq!(data.test.image_shape(), Some(ImageShape::new(3, 6, 8)));
    // a uniform image stays uniform when resized
    assert!(data.train.pixels().expect("images").row(2).iter().all(|&v| v == 0));
}

#[test]
fn unknown_test_class_and_empty_folders_are_errors() {
    let tmp = tempdir();
    fixtures::write_png_folder(
        tmp.path(),
        &[("train", "a", 1), ("test", "a", 1), ("test", "zebra", 1)],
        2,
        2,
        3,
    )
    .unwrap();
    match read_image_folder(tmp.path(), &FolderOptions::default()) {
        Err(DataError::UnknownClass { path, name }) => {
            assert_eq!(name, "zebra");
            assert_eq!(path, tmp.path().join("test/zebra"));
        }
        other => panic!("expected UnknownClass, got {other:?}"),
    }

    let empty = tempdir();
    std::fs::create_dir_all(empty.path().join("train")).unwrap();
    std::fs::create_dir_all(empty.path().join("test")).unwrap();
    assert!(matches!(
        read_image_folder(empty.path(), &FolderOptions::default()),
        Err(DataError::EmptyFolder { path }) if path == empty.path().join("train")
    ));
    // class folders without images
    std::fs::create_dir_all(empty.path().join("train/a")).unwrap();
    std::fs::write(empty.path().join("train/a/readme.txt"), "x").unwrap();
    assert!(matches!(
        read_image_folder(empty.path(), &FolderOptions::default()),
        Err(DataError::EmptyFolder { path }) if path == empty.path().join("train")
    ));
    fixtures::write_png_rgb(&empty.path().join("train/a/1.png"), 1, 1, &[1, 2, 3]).unwrap();
    assert!(matches!(
        read_image_folder(empty.path(), &FolderOptions::default()),
        Err(DataError::EmptyFolder { path }) if path == empty.path().join("test")
    ));
    let missing = tmp.path().join("nowhere");
    assert!(matches!(
        read_image_folder(&missing, &FolderOptions::default()),
        Err(DataError::Io { path, .. }) if path == missing.join("train")
    ));
}

#[test]
fn corrupt_image_is_an_image_error_naming_the_file() {
    let tmp = tempdir();
    fixtures::write_png_folder(tmp.path(), &[("train", "a", 3), ("test", "a", 1)], 2, 2, 3)
        .unwrap();
    let bad = tmp.path().join("train/a/img_001.png");
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, fixtures::truncated(&bytes, bytes.len() / 2)).unwrap();
    assert!(matches!(
        read_image_folder(tmp.path(), &FolderOptions::default()),
        Err(DataError::Image { path, .. }) if path == bad
    ));
}

#[test]
fn grey_is_one_channel_only_when_all_images_are_grey() {
    let tmp = tempdir();
    for (split, v) in [("train", 5u8), ("test", 6)] {
        let d = tmp.path().join(split).join("g");
        std::fs::create_dir_all(&d).unwrap();
        fixtures::write_png_grey(&d.join("1.png"), 3, 2, &[v, 1, 2, 3, 4, 250]).unwrap();
    }
    let data = read_image_folder(tmp.path(), &FolderOptions::default()).unwrap();
    assert_eq!(data.train.image_shape(), Some(ImageShape::new(1, 2, 3)));
    assert_eq!(data.train.pixels().expect("images").row(0), &[5, 1, 2, 3, 4, 250]);
    assert_eq!(data.test.pixels().expect("images").row(0), &[6, 1, 2, 3, 4, 250]);
    // one colour image anywhere makes every image RGB, grey ones replicated in each plane
    let rgb: Vec<u8> = (0..18).collect();
    fixtures::write_png_rgb(&tmp.path().join("test/g/2.png"), 3, 2, &rgb).unwrap();
    let data = read_image_folder(tmp.path(), &FolderOptions::default()).unwrap();
    assert_eq!(data.train.image_shape(), Some(ImageShape::new(3, 2, 3)));
    assert_eq!(
        data.train.pixels().expect("images").row(0),
        &[5, 1, 2, 3, 4, 250, 5, 1, 2, 3, 4, 250, 5, 1, 2, 3, 4, 250]
    );
    assert_eq!(
        data.test.pixels().expect("images").row(1),
        fixtures::hwc_to_chw(&rgb, 3, 2).as_slice()
    );
}

#[test]
fn jpeg_decodes_into_the_right_planes() {
    let tmp = tempdir();
    let (r, g, b) = (200u8, 30u8, 90u8);
    for split in ["train", "test"] {
        let d = tmp.path().join(split).join("c");
        std::fs::create_dir_all(&d).unwrap();
        let rgb: Vec<u8> = (0..64).flat_map(|_| [r, g, b]).collect();
        fixtures::write_jpeg_rgb(&d.join("x.JPG"), 8, 8, &rgb).unwrap();
    }
    let data = read_image_folder(tmp.path(), &FolderOptions::default()).unwrap();
    assert_eq!(data.train.image_shape(), Some(ImageShape::new(3, 8, 8)));
    let row = data.train.pixels().expect("images").row(0);
    // lossy: a flat colour comes back within a few levels, plane by plane
    for (c, want) in [r, g, b].into_iter().enumerate() {
        for &v in &row[c * 64..(c + 1) * 64] {
            assert!(v.abs_diff(want) <= 4, "plane {c}: {v} vs {want}");
        }
    }
}

#[test]
fn thread_count_does_not_change_the_result() {
    let tmp = tempdir();
    fixtures::write_png_folder(
        tmp.path(),
        &[("train", "x", 40), ("train", "y", 33), ("test", "y", 9)],
        6,
        5,
        8,
    )
    .unwrap();
    let one =
        read_image_folder(tmp.path(), &FolderOptions { resize: None, threads: Some(1) }).unwrap();
    let two =
        read_image_folder(tmp.path(), &FolderOptions { resize: None, threads: Some(2) }).unwrap();
    let global = read_image_folder(tmp.path(), &FolderOptions::default()).unwrap();
    assert_eq!(one, two);
    assert_eq!(one, global);
}

#[test]
fn read_split_folder_uses_the_given_classes() {
    let tmp = tempdir();
    let written =
        fixtures::write_png_folder(tmp.path(), &[("val", "b", 2), ("val", "a", 1)], 3, 3, 4)
            .unwrap();
    let classes = ClassNames::new(["b", "c", "a"]);
    let ds =
        read_split_folder(&tmp.path().join("val"), &classes, &FolderOptions::default()).unwrap();
    assert_eq!(ds.labels(), &[0, 0, 2]);
    assert_eq!(ds.pixels().expect("images").row(2), written[2].chw.as_slice());
    let only_c = ClassNames::new(["c"]);
    assert!(matches!(
        read_split_folder(&tmp.path().join("val"), &only_c, &FolderOptions::default()),
        Err(DataError::UnknownClass { name, .. }) if name == "a"
    ));
}

/// Issue 17 item 14: one wrong-sized image that sorts first used to make every correct image
/// the culprit (the first image set the size). The dataset's size is the most common one, and
/// every image of another size is listed in one error, with a hint.
#[test]
fn the_wrong_sized_images_are_blamed_even_when_one_sorts_first() {
    let tmp = tempdir();
    fixtures::write_png_folder(tmp.path(), &[("train", "a", 3), ("test", "a", 2)], 4, 3, 2)
        .unwrap();
    let first = tmp.path().join("train/a/000_first.png");
    fixtures::write_png_rgb(&first, 5, 3, &[0; 45]).unwrap();
    let in_test = tmp.path().join("test/a/zzz.png");
    fixtures::write_png_rgb(&in_test, 4, 2, &[0; 24]).unwrap();
    let e = read_image_folder(tmp.path(), &FolderOptions::default()).unwrap_err();
    match &e {
        DataError::ImageSize { expected, wrong, n_wrong } => {
            assert_eq!(*expected, (3, 4), "the size of the five correct images");
            assert_eq!(*wrong, vec![(first.clone(), (3, 5)), (in_test.clone(), (2, 4))]);
            assert_eq!(*n_wrong, 2);
        }
        other => panic!("expected ImageSize, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("2 image(s) are not 3x4"), "{msg}");
    assert!(msg.contains("000_first.png (3x5)") && msg.contains("zzz.png (2x4)"), "{msg}");
    assert!(msg.contains("\nhint: "), "{msg}");
    // the list is bounded; the count names the rest
    let many = tempdir();
    fixtures::write_png_folder(many.path(), &[("train", "a", 30), ("test", "a", 1)], 4, 3, 2)
        .unwrap();
    for i in 0..25 {
        fixtures::write_png_rgb(
            &many.path().join(format!("train/a/odd{i:02}.png")),
            2,
            2,
            &[0; 12],
        )
        .unwrap();
    }
    match read_image_folder(many.path(), &FolderOptions::default()) {
        Err(DataError::ImageSize { expected, wrong, n_wrong }) => {
            assert_eq!(expected, (3, 4));
            assert_eq!(n_wrong, 25);
            assert_eq!(wrong.len(), imgclass_data::folder::MAX_LISTED);
        }
        other => panic!("expected ImageSize, got {other:?}"),
    }
}
