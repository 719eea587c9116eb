//! Integration tests of `cargo xtask fetch-data` (the built binary against a loopback HTTP
//! server and generated archives) and of the safe archive extraction it relies on. No test
//! touches the network beyond 127.0.0.1.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imgclass_core::rng::SplitMix64;
use imgclass_data::archive::{ArchiveError, extract_tar_gz};
use imgclass_data::checksum::{md5_reader, sha256_reader};
use imgclass_data::cifar::read_cifar10;
use imgclass_testkit::archives::{
    ESCAPE_PAYLOAD, Malicious, cifar10_files, cifar10_tar_gz, malicious_tar_gz, tar_gz,
};
use imgclass_testkit::http::Config;

const TRAIN_PER_BATCH: usize = 10;
const N_TEST: usize = 5;
const SEED: u64 = 11;

fn fetch(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("fetch-data")
        .args(args)
        .env_remove("IMGCLASS_DATA_DIR")
        .env("RUST_LOG", "info")
        .output()
        .expect("the xtask binary runs");
    eprintln!(
        "--- fetch-data {args:?}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every path under `root`, relative, `/`-separated.
fn listing(root: &Path) -> BTreeSet<String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            out.insert(p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

fn installed_listing() -> BTreeSet<String> {
    let mut s: BTreeSet<String> =
        ["cifar-10", "cifar-10/cifar-10-batches-bin"].map(String::from).into();
    for (name, _) in cifar10_files(1, 1, 0) {
        s.insert(format!("cifar-10/cifar-10-batches-bin/{name}"));
    }
    // the checksums recorded at install
    s.insert("cifar-10/cifar-10-batches-bin/SHA256SUMS".into());
    s
}

/// The installed files are byte-identical to the generated ones, and the reader reads them.
fn assert_installed_fixture(data_dir: &Path) {
    let dir = data_dir.join("cifar-10/cifar-10-batches-bin");
    for (name, bytes) in cifar10_files(TRAIN_PER_BATCH, N_TEST, SEED) {
        assert_eq!(std::fs::read(dir.join(&name)).unwrap(), bytes, "{name} differs");
    }
    let data = read_cifar10(&dir).expect("installed data reads back");
    assert_eq!(data.train.len(), 5 * TRAIN_PER_BATCH);
    assert_eq!(data.test.len(), N_TEST);
    assert_eq!(listing(data_dir), installed_listing());
}

fn md5(bytes: &[u8]) -> String {
    md5_reader(bytes).unwrap()
}

const ARCHIVE_PATH: &str = "/mirror/cifar-10-binary.tar.gz";

#[test]
fn download_verifies_extracts_and_a_second_run_is_a_noop() {
    let archive = cifar10_tar_gz(TRAIN_PER_BATCH, N_TEST, SEED);
    let sum = md5(&archive);
    let server = Config::new(ARCHIVE_PATH, archive).start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let url = server.url(ARCHIVE_PATH);
    let out = fetch(&["--url", &url, "--md5", &sum, "--data-dir", d]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("cifar-10 is ready"));
    assert_installed_fixture(&data);
    assert_eq!(server.requests().len(), 1);

    let out = fetch(&["--url", &url, "--md5", &sum, "--data-dir", d]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("already present and verified"), "{}", stdout(&out));
    assert_eq!(server.requests().len(), 1, "a present dataset is not downloaded again");
    assert_installed_fixture(&data);
}

#[test]
fn data_dir_comes_from_the_environment_when_no_flag_is_given() {
    let archive = cifar10_tar_gz(TRAIN_PER_BATCH, N_TEST, SEED);
    let sum = sha256_reader(&archive[..]).unwrap();
    let server = Config::new(ARCHIVE_PATH, archive).start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["fetch-data", "--url", &server.url(ARCHIVE_PATH), "--sha256", &sum])
        .env("IMGCLASS_DATA_DIR", tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_installed_fixture(tmp.path());
}

#[test]
fn http_404_fails_with_a_hint_and_leaves_nothing() {
    let server = Config::new(ARCHIVE_PATH, cifar10_tar_gz(2, 2, 1)).start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let url = server.url("/mirror/missing.tar.gz");
    let out = fetch(&["--url", &url, "--md5", &md5(b"x"), "--data-dir", data.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("HTTP 404"), "{err}");
    assert!(err.contains("--from"), "{err}");
    assert!(listing(tmp.path()).is_empty(), "{:?}", listing(tmp.path()));
}

#[test]
fn unreachable_host_fails_with_a_hint_and_leaves_nothing() {
    // port 1 on loopback: nothing listens there, the connection is refused at once
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = fetch(&[
        "--url",
        "http://127.0.0.1:1/cifar-10-binary.tar.gz",
        "--md5",
        &md5(b"x"),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("could not reach"), "{err}");
    assert!(err.contains("--from"), "{err}");
    assert!(listing(tmp.path()).is_empty());
}

#[test]
fn wrong_checksum_fails_and_deletes_the_download() {
    let archive = cifar10_tar_gz(TRAIN_PER_BATCH, N_TEST, SEED);
    let server = Config::new(ARCHIVE_PATH, archive).start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = fetch(&[
        "--url",
        &server.url(ARCHIVE_PATH),
        "--md5",
        &md5(b"something else"),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("md5 mismatch"), "{err}");
    assert!(err.contains("deleted"), "{err}");
    assert!(listing(tmp.path()).is_empty(), "{:?}", listing(tmp.path()));
}

#[test]
fn dropped_connection_is_resumed_with_a_range_request() {
    let archive = cifar10_tar_gz(TRAIN_PER_BATCH, N_TEST, SEED);
    assert!(archive.len() > 100_000, "the archive must be longer than the cut");
    let sum = md5(&archive);
    let server = Config::new(ARCHIVE_PATH, archive).drop_after(60_000, 1).start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = fetch(&[
        "--url",
        &server.url(ARCHIVE_PATH),
        "--md5",
        &sum,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].range_start, None);
    assert_eq!(reqs[1].range_start, Some(60_000));
    assert_installed_fixture(&data);
}

#[test]
fn repeated_drops_keep_the_part_file_and_the_next_run_resumes() {
    let archive = cifar10_tar_gz(TRAIN_PER_BATCH, N_TEST, SEED);
    assert!(archive.len() > 3 * 40_000);
    let sum = md5(&archive);
    // every attempt of the first run (three) is cut after 40,000 bytes
    let server = Config::new(ARCHIVE_PATH, archive).drop_after(40_000, 3).start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let args =
        ["--url", &server.url(ARCHIVE_PATH), "--md5", &sum, "--data-dir", data.to_str().unwrap()];
    let out = fetch(&args);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("run the same command again"), "{}", stderr(&out));
    let part = "cifar-10/cifar-10-binary.tar.gz.part";
    assert_eq!(listing(&data), ["cifar-10".to_string(), part.to_string()].into());
    assert_eq!(std::fs::metadata(data.join(part)).unwrap().len(), 120_000);
    let starts: Vec<_> = server.requests().iter().map(|r| r.range_start).collect();
    assert_eq!(starts, [None, Some(40_000), Some(80_000)]);

    let out = fetch(&args);
    assert!(out.status.success());
    assert_eq!(server.requests().last().unwrap().range_start, Some(120_000));
    assert_eq!(server.requests().len(), 4);
    assert_installed_fixture(&data);
}

#[test]
fn a_complete_part_file_is_verified_without_downloading_again() {
    let archive = cifar10_tar_gz(TRAIN_PER_BATCH, N_TEST, SEED);
    let sum = md5(&archive);
    let len = archive.len() as u64;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(data.join("cifar-10")).unwrap();
    std::fs::write(data.join("cifar-10/cifar-10-binary.tar.gz.part"), &archive).unwrap();
    let server = Config::new(ARCHIVE_PATH, archive).start().unwrap();
    let out = fetch(&[
        "--url",
        &server.url(ARCHIVE_PATH),
        "--md5",
        &sum,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    // the server answered 416 to `Range: bytes=len-`; the file on disk was hashed instead
    let starts: Vec<_> = server.requests().iter().map(|r| r.range_start).collect();
    assert_eq!(starts, [Some(len)]);
    assert_installed_fixture(&data);
}

#[test]
fn a_server_without_ranges_makes_the_download_start_over() {
    let archive = cifar10_tar_gz(TRAIN_PER_BATCH, N_TEST, SEED);
    let sum = md5(&archive);
    let server =
        Config::new(ARCHIVE_PATH, archive).without_ranges().drop_after(50_000, 1).start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = fetch(&[
        "--url",
        &server.url(ARCHIVE_PATH),
        "--md5",
        &sum,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("starting over"), "{}", stderr(&out));
    assert_eq!(server.requests()[1].range_start, Some(50_000)); // asked, but got 200
    assert_installed_fixture(&data);
}

#[test]
fn url_needs_exactly_one_valid_checksum() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let url = "http://127.0.0.1:1/a.tar.gz";
    let out = fetch(&["--url", url, "--data-dir", d]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--md5 HEX or --sha256 HEX"), "{}", stderr(&out));
    let out = fetch(&["--url", url, "--md5", "abc", "--data-dir", d]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a valid md5 digest"), "{}", stderr(&out));
    let out = fetch(&["--url", url, "--md5", &md5(b""), "--sha256", &md5(b""), "--data-dir", d]);
    assert!(!out.status.success()); // clap: --md5 conflicts with --sha256
    assert!(listing(tmp.path()).is_empty());
}

#[test]
fn an_unsafe_archive_from_a_mirror_is_rejected_and_nothing_is_left() {
    let archive = malicious_tar_gz(Malicious::ParentDir("../../escaped.txt"));
    let sum = md5(&archive);
    let server = Config::new(ARCHIVE_PATH, archive).start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = fetch(&[
        "--url",
        &server.url(ARCHIVE_PATH),
        "--md5",
        &sum,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("unsafe archive entry \"../../escaped.txt\""), "{err}");
    assert!(listing(tmp.path()).is_empty(), "{:?}", listing(tmp.path()));
}

#[test]
fn a_truncated_archive_fails_cleanly() {
    let archive = cifar10_tar_gz(TRAIN_PER_BATCH, N_TEST, SEED);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let cut = src.join("cifar-10-binary.tar.gz");
    std::fs::write(&cut, &archive[..archive.len() / 2]).unwrap();
    let data = tmp.path().join("data");
    let out = fetch(&["--from", cut.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("truncated or corrupt"), "{}", stderr(&out));
    assert!(!data.exists(), "{:?}", listing(&data));
    assert_eq!(listing(&src), ["cifar-10-binary.tar.gz".to_string()].into());
}

#[test]
fn from_a_local_archive() {
    let archive = cifar10_tar_gz(TRAIN_PER_BATCH, N_TEST, SEED);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("copy.tar.gz");
    std::fs::write(&file, &archive).unwrap();
    let data = tmp.path().join("data");
    let out = fetch(&["--from", file.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success());
    assert_installed_fixture(&data);
    // a checksum given with --from is enforced
    let other = tmp.path().join("other");
    let out = fetch(&[
        "--from",
        file.to_str().unwrap(),
        "--md5",
        &md5(b"nope"),
        "--data-dir",
        other.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(!other.exists());
}

/// The install writes its own `SHA256SUMS`: one that came inside an archive (here a stale
/// one) is neither trusted nor checked, and is replaced by the checksums of what was installed.
#[test]
fn a_manifest_inside_an_archive_is_replaced_by_the_installs_own() {
    let files = cifar10_files(TRAIN_PER_BATCH, N_TEST, SEED);
    let stale =
        "0000000000000000000000000000000000000000000000000000000000000000  data_batch_1.bin\n";
    let mut entries: Vec<(String, &[u8])> =
        files.iter().map(|(n, b)| (format!("cifar-10-batches-bin/{n}"), &b[..])).collect();
    entries.push(("cifar-10-batches-bin/SHA256SUMS".into(), stale.as_bytes()));
    let refs: Vec<(&str, &[u8])> = entries.iter().map(|(n, b)| (n.as_str(), *b)).collect();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("copy.tar.gz");
    std::fs::write(&file, tar_gz(&refs)).unwrap();
    let data = tmp.path().join("data");
    let out = fetch(&["--from", file.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_installed_fixture(&data);
    let manifest =
        std::fs::read_to_string(data.join("cifar-10/cifar-10-batches-bin/SHA256SUMS")).unwrap();
    let (name, bytes) = &files[0];
    assert!(manifest.contains(&format!("{}  {name}", sha256_reader(&bytes[..]).unwrap())));
    assert!(!manifest.contains("0000000000"), "{manifest}");
}

#[test]
fn from_an_extracted_batches_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("somewhere/cifar-10-batches-bin");
    std::fs::create_dir_all(&src).unwrap();
    for (name, bytes) in cifar10_files(TRAIN_PER_BATCH, N_TEST, SEED) {
        std::fs::write(src.join(name), bytes).unwrap();
    }
    let data = tmp.path().join("data");
    // the folder itself, or its parent
    let parent = tmp.path().join("somewhere");
    let p = parent.to_str().unwrap();
    let d = data.to_str().unwrap();
    // a checksum cannot check a folder: refused before anything is written
    let out = fetch(&["--from", p, "--md5", &md5(b""), "--data-dir", d]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is a folder"), "{}", stderr(&out));
    assert!(!data.exists());
    let out = fetch(&["--from", p, "--data-dir", d]);
    assert!(out.status.success());
    assert_installed_fixture(&data);
}

#[test]
fn from_a_broken_batches_folder_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("cifar-10-batches-bin");
    std::fs::create_dir_all(&src).unwrap();
    for (name, mut bytes) in cifar10_files(TRAIN_PER_BATCH, N_TEST, SEED) {
        if name == "data_batch_3.bin" {
            bytes.pop(); // not a whole number of records
        }
        std::fs::write(src.join(name), bytes).unwrap();
    }
    let data = tmp.path().join("data");
    let out = fetch(&["--from", src.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("data_batch_3.bin"), "{}", stderr(&out));
    assert!(!data.exists(), "{:?}", listing(&data));
}

/// A 32x32 RGB image whose pixels encode (class, index), and its CHW bytes.
fn image_of(class: u8, i: u8) -> (image::RgbImage, Vec<u8>) {
    let img = image::RgbImage::from_fn(32, 32, |x, y| {
        image::Rgb([class * 50 + i, (x * 8) as u8, (y * 8) as u8 ^ i])
    });
    let mut chw = Vec::with_capacity(3072);
    for c in 0..3 {
        for y in 0..32 {
            for x in 0..32 {
                chw.push(img.get_pixel(x, y)[c]);
            }
        }
    }
    (img, chw)
}

#[test]
fn from_an_image_folder_writes_the_official_layout_in_the_seeded_order() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("jpeg");
    let classes = ["cat", "dog", "frog"]; // not the full CIFAR-10 set: sorted order
    // (label, CHW pixels) in (label, file name) order, the reader's documented order
    let mut train = Vec::new();
    let mut test = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        for (split, n, out) in [("train", 4u8, &mut train), ("test", 2, &mut test)] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..n {
                let (img, chw) = image_of(label as u8, i);
                img.save(dir.join(format!("{i:04}.png"))).unwrap();
                out.push((label as u8, chw));
            }
        }
    }
    let data = tmp.path().join("data");
    let out = fetch(&["--from", root.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success());

    // oracle: the training rows shuffled by SplitMix64(2009), cut 3,3,2,2,2 (12 rows)
    let mut perm: Vec<usize> = (0..train.len()).collect();
    SplitMix64::new(2009).shuffle(&mut perm);
    let record = |(l, px): &(u8, Vec<u8>)| {
        let mut r = vec![*l];
        r.extend_from_slice(px);
        r
    };
    let dir = data.join("cifar-10/cifar-10-batches-bin");
    let mut at = 0;
    for (b, count) in [3, 3, 2, 2, 2].into_iter().enumerate() {
        let expected: Vec<u8> =
            perm[at..at + count].iter().flat_map(|&i| record(&train[i])).collect();
        let found = std::fs::read(dir.join(format!("data_batch_{}.bin", b + 1))).unwrap();
        assert_eq!(found, expected, "batch {}", b + 1);
        at += count;
    }
    let expected: Vec<u8> = test.iter().flat_map(record).collect();
    assert_eq!(std::fs::read(dir.join("test_batch.bin")).unwrap(), expected);
    assert_eq!(std::fs::read_to_string(dir.join("batches.meta.txt")).unwrap(), "cat\ndog\nfrog\n");
    assert_eq!(listing(&data), installed_listing());
}

#[test]
fn files_dataset_from_a_folder_checks_published_checksums() {
    // the published MD5s cannot match generated files: the import must refuse them
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("mnist-src");
    std::fs::create_dir(&src).unwrap();
    for f in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::write(src.join(f), b"not mnist").unwrap();
    }
    let data = tmp.path().join("data");
    let out = fetch(&[
        "--dataset",
        "mnist",
        "--from",
        src.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not the published file"), "{}", stderr(&out));
    assert!(!data.exists(), "{:?}", listing(&data));
}

// ---- the extraction library against malicious archives ----

fn assert_rejected(kind: Malicious<'_>, check: impl Fn(&ArchiveError) -> bool) {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("a/b/out");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let before = listing(tmp.path());
    let err = extract_tar_gz(&malicious_tar_gz(kind)[..], &dest).expect_err("must be rejected");
    assert!(check(&err), "{kind:?}: {err:?}");
    assert!(err.is_unsafe_entry());
    assert_eq!(listing(tmp.path()), before, "{kind:?} left files behind");
    // nothing anywhere under the temporary root holds the payload
    for p in listing(tmp.path()) {
        let p = tmp.path().join(p);
        if p.is_file() {
            assert_ne!(std::fs::read(&p).unwrap(), ESCAPE_PAYLOAD);
        }
    }
}

#[test]
fn extraction_rejects_a_parent_dir_entry() {
    assert_rejected(
        Malicious::ParentDir("../escaped.txt"),
        |e| matches!(e, ArchiveError::UnsafePath { entry, .. } if entry == "../escaped.txt"),
    );
    assert_rejected(Malicious::ParentDir("ok/../../../escaped.txt"), |e| {
        matches!(e, ArchiveError::UnsafePath { reason: "parent directory component", .. })
    });
}

#[test]
fn extraction_rejects_an_absolute_path() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim.txt");
    let name = victim.to_str().unwrap().to_string();
    assert_rejected(
        Malicious::Absolute(&name),
        |e| matches!(e, ArchiveError::UnsafePath { entry, reason: "absolute path" } if *entry == name),
    );
    assert!(!victim.exists());
}

#[test]
fn extraction_rejects_links_and_special_files() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().to_str().unwrap().to_string();
    assert_rejected(Malicious::Symlink { name: "ok/link", target: &outside }, |e| {
        matches!(e, ArchiveError::Link { entry, kind: "symbolic link", target }
            if entry == "ok/link" && *target == outside)
    });
    assert_rejected(Malicious::HardLink { name: "ok/hard", target: "/etc/passwd" }, |e| {
        matches!(e, ArchiveError::Link { kind: "hard link", .. })
    });
    assert_rejected(Malicious::CharDevice("dev"), |e| {
        matches!(e, ArchiveError::Special { kind: "character device", .. })
    });
    assert_rejected(Malicious::Fifo("pipe"), |e| {
        matches!(e, ArchiveError::Special { kind: "fifo", .. })
    });
    assert!(listing(tmp.path()).is_empty(), "nothing written through the link");
}

#[test]
fn extraction_of_a_good_archive_writes_exactly_its_files() {
    let files: [(&str, &[u8]); 3] = [("a.txt", b"alpha"), ("d/e/b.bin", &[0, 1, 2]), ("./c", b"")];
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out");
    let s = extract_tar_gz(&tar_gz(&files)[..], &dest).unwrap();
    assert_eq!((s.files, s.bytes), (3, 8));
    assert_eq!(std::fs::read(dest.join("a.txt")).unwrap(), b"alpha");
    assert_eq!(std::fs::read(dest.join("d/e/b.bin")).unwrap(), [0, 1, 2]);
    assert_eq!(listing(&dest), ["a.txt", "c", "d", "d/e", "d/e/b.bin"].map(String::from).into());
    // extracting again into the same place is refused, and the first result is untouched
    assert!(matches!(
        extract_tar_gz(&tar_gz(&files)[..], &dest),
        Err(ArchiveError::DestinationExists { .. })
    ));
    assert_eq!(std::fs::read(dest.join("a.txt")).unwrap(), b"alpha");
}

#[test]
fn extraction_of_a_truncated_or_duplicated_archive_fails_and_cleans_up() {
    let archive = cifar10_tar_gz(TRAIN_PER_BATCH, N_TEST, SEED);
    let tmp = tempfile::tempdir().unwrap();
    for keep in [10, archive.len() / 3, archive.len() - 30] {
        let dest = tmp.path().join("out");
        let err = extract_tar_gz(&archive[..keep], &dest).expect_err("truncated");
        assert!(matches!(err, ArchiveError::Read { .. }), "{keep}: {err:?}");
        assert!(!dest.exists());
    }
    let dup = tar_gz(&[("x", b"1"), ("x", b"2")]);
    let dest = tmp.path().join("dup");
    assert!(matches!(extract_tar_gz(&dup[..], &dest), Err(ArchiveError::Duplicate { .. })));
    assert!(!dest.exists());
}

/// Real data: `IMGCLASS_CIFAR10_JPEG=../shared/datasets/cifar10-jpeg` imports the
/// 60,000-image folder. Ignored by a plain `cargo test` (so the summary counts it as ignored,
/// never as passed); `cargo test -- --ignored` (as `.ci/run` does) runs it, and it fails when
/// the variable is unset or the folder is missing.
#[test]
#[ignore = "real data: run with IMGCLASS_CIFAR10_JPEG set and -- --ignored"]
fn real_cifar10_jpeg_import_when_available() {
    let src = std::env::var_os("IMGCLASS_CIFAR10_JPEG")
        .expect("IMGCLASS_CIFAR10_JPEG must name the CIFAR-10 image folder for this test");
    let src = PathBuf::from(src);
    let src = if src.is_relative() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(src)
    } else {
        src
    };
    assert!(src.join("train").is_dir(), "IMGCLASS_CIFAR10_JPEG={} has no train/", src.display());
    let tmp = tempfile::tempdir().unwrap();
    let out = fetch(&["--from", src.to_str().unwrap(), "--data-dir", tmp.path().to_str().unwrap()]);
    assert!(out.status.success());
    let data = read_cifar10(&tmp.path().join("cifar-10/cifar-10-batches-bin")).unwrap();
    assert_eq!((data.train.len(), data.test.len()), (50_000, 10_000));
    assert_eq!(data.train.classes(), &imgclass_core::ClassNames::cifar10());
    let mut train = [0usize; 10];
    let mut test = [0usize; 10];
    data.train.labels().iter().for_each(|&l| train[l as usize] += 1);
    data.test.labels().iter().for_each(|&l| test[l as usize] += 1);
    assert_eq!(train, [5_000; 10]);
    assert_eq!(test, [1_000; 10]);
    for b in 1..=5 {
        let len = std::fs::metadata(
            tmp.path().join(format!("cifar-10/cifar-10-batches-bin/data_batch_{b}.bin")),
        )
        .unwrap()
        .len();
        assert_eq!(len, 10_000 * 3073);
    }
}

#[test]
fn files_dataset_download_checks_each_published_checksum() {
    // a mirror serving a wrong first file: the published MD5 rejects it, nothing is kept
    let server =
        Config::new("/m/train-images-idx3-ubyte.gz", b"not mnist".to_vec()).start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let base = server.url("/m/");
    let out = fetch(&["--dataset", "mnist", "--url", &base, "--data-dir", d]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("train-images-idx3-ubyte.gz is corrupt"), "{err}");
    assert!(err.contains("f68b3c2dcbeaaa9fbdd348bbdeb94873"), "{err}"); // torchvision's MD5
    assert!(listing(tmp.path()).is_empty(), "{:?}", listing(tmp.path()));
    assert_eq!(server.requests().len(), 1);
    // a checksum flag makes no sense for a four-file dataset
    let out = fetch(&["--dataset", "mnist", "--url", &base, "--md5", &md5(b""), "--data-dir", d]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("do not apply to mnist"), "{}", stderr(&out));
    assert_eq!(server.requests().len(), 1);
}

/// A PID that belongs to no process: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// Sends `signal` (e.g. "-INT") to the child.
fn signal(child: &std::process::Child, signal: &str) {
    let ok = Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
}

/// Issue 17 item 8: Ctrl-C (or SIGTERM) while the download waits for the server removes what
/// the run created (the empty `.part`, `cifar-10/`, the data directory, the lock file) and
/// exits with 130; it used to leave an empty `cifar-10/` behind.
#[test]
fn an_interrupted_fetch_leaves_nothing_behind() {
    for sig in ["-INT", "-TERM"] {
        // a server that accepts and never answers
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in listener.incoming().flatten() {
                held.push(s);
            }
        });
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let url = format!("http://{addr}/cifar-10-binary.tar.gz");
        let child = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["fetch-data", "--url", &url, "--md5", &md5(b"x")])
            .args(["--data-dir", data.to_str().unwrap()])
            .env_remove("IMGCLASS_DATA_DIR")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // wait until the run has created its directories, then interrupt
        let t = std::time::Instant::now();
        while !data.join("cifar-10").exists() && t.elapsed().as_secs() < 20 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(data.join("cifar-10").exists(), "the run started");
        std::thread::sleep(std::time::Duration::from_millis(300));
        signal(&child, sig);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "{sig}: {}", stderr(&out));
        assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
        assert!(listing(tmp.path()).is_empty(), "{sig}: left {:?}", listing(tmp.path()));
    }
}

/// Issue 17 item 8: a staging folder of a killed run (dead PID in its name) is removed at the
/// next start; one of a live process is not touched.
#[test]
fn stale_staging_of_dead_runs_is_swept_and_live_ones_are_kept() {
    let archive = cifar10_tar_gz(TRAIN_PER_BATCH, N_TEST, SEED);
    let sum = md5(&archive);
    let server = Config::new(ARCHIVE_PATH, archive).start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ds = data.join("cifar-10");
    let dead = ds.join(format!(".fetch-cifar-10-{}-abc", dead_pid()));
    let live = ds.join(format!(".fetch-cifar-10-{}-def", std::process::id()));
    for d in [&dead, &live] {
        std::fs::create_dir_all(d.join("x")).unwrap();
        std::fs::write(d.join("x/data_batch_1.bin"), vec![0u8; 3073]).unwrap();
    }
    let out = fetch(&[
        "--url",
        &server.url(ARCHIVE_PATH),
        "--md5",
        &sum,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(!dead.exists(), "the dead run's staging is removed");
    assert!(live.exists(), "a live process's staging is kept");
    std::fs::remove_dir_all(&live).unwrap();
    assert_installed_fixture(&data);
}

/// Issue 17 item 9: two runs into one data directory both succeed (one installs, the other
/// waits, then finds it present); they used to delete each other's staging folder. A run that
/// finds the lock held says who holds it and waits.
#[test]
fn concurrent_runs_take_turns_on_the_data_directory() {
    let archive = cifar10_tar_gz(TRAIN_PER_BATCH, N_TEST, SEED);
    let sum = md5(&archive);
    let server = Config::new(ARCHIVE_PATH, archive).start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let url = server.url(ARCHIVE_PATH);
    let spawn = || spawn_fetch(&url, &sum, &data);
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    let said: String = [stdout(&a), stdout(&b)].concat();
    assert_eq!(said.matches("cifar-10 is ready").count(), 1, "{said}");
    assert_eq!(said.matches("already present and verified").count(), 1, "{said}");
    assert_installed_fixture(&data);

    // the lock held by another process (this test, its PID in the file): the run waits
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let lock_path = data.join(".fetch-data.lock");
    let held = std::fs::File::create(&lock_path).unwrap();
    std::fs::write(&lock_path, format!("{}\n", std::process::id())).unwrap();
    held.lock().unwrap();
    let mut child = spawn_fetch(&url, &sum, &data);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "the second run waits for the lock");
    assert!(!data.join("cifar-10/cifar-10-batches-bin").exists());
    // release as a run does: remove the file, then unlock
    std::fs::remove_file(&lock_path).unwrap();
    held.unlock().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("another fetch-data (pid {}) is using", std::process::id()))
            && err.contains("waiting for it to finish"),
        "{err}"
    );
    assert_installed_fixture(&data);
}

/// Issue 17 item 2: a training batch cut short (or made longer) after installing is an error
/// naming the file, not "already present and verified" with fewer images.
#[test]
fn a_truncated_or_extended_batch_fails_verification_naming_the_file() {
    let archive = cifar10_tar_gz(TRAIN_PER_BATCH, N_TEST, SEED);
    let sum = md5(&archive);
    let server = Config::new(ARCHIVE_PATH, archive).start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let d = data.to_str().unwrap();
    let url = server.url(ARCHIVE_PATH);
    assert!(fetch(&["--url", &url, "--md5", &sum, "--data-dir", d]).status.success());
    let batch = data.join("cifar-10/cifar-10-batches-bin/data_batch_2.bin");
    let full = std::fs::read(&batch).unwrap();
    for (what, bytes) in [
        ("truncated", full[..5 * 3073].to_vec()),
        ("trailing data", [full.clone(), full[..5 * 3073].to_vec()].concat()),
    ] {
        std::fs::write(&batch, &bytes).unwrap();
        let out = fetch(&["--url", &url, "--md5", &sum, "--data-dir", d]);
        assert!(!out.status.success(), "{what}");
        let err = stderr(&out);
        assert!(!stdout(&out).contains("already present"), "{what}");
        assert!(err.contains("data_batch_2.bin") && err.contains(what), "{err}");
        assert!(err.contains("wrong number of records") && err.contains("hint:"), "{err}");
    }
    std::fs::write(&batch, &full).unwrap();
    assert!(fetch(&["--url", &url, "--md5", &sum, "--data-dir", d]).status.success());

    // the install recorded each file's SHA-256 (sha256sum format) ...
    let layout = data.join("cifar-10/cifar-10-batches-bin");
    let manifest = std::fs::read_to_string(layout.join("SHA256SUMS")).unwrap();
    for line in manifest.lines() {
        let (recorded, name) = line.split_once("  ").unwrap();
        let bytes = std::fs::read(layout.join(name)).unwrap();
        assert_eq!(recorded, sha256_reader(&bytes[..]).unwrap(), "{name}");
    }
    assert!(manifest.contains("  data_batch_2.bin") && manifest.contains("  test_batch.bin"));
    // ... so a batch edited at the right size is named, not "already present and verified"
    let mut edited = full.clone();
    edited[3073 + 100] ^= 0x5a;
    std::fs::write(&batch, &edited).unwrap();
    let out = fetch(&["--url", &url, "--md5", &sum, "--data-dir", d]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(!stdout(&out).contains("already present"), "{err}");
    assert!(
        err.contains("data_batch_2.bin changed since it was installed")
            && err.contains("SHA256SUMS"),
        "{err}"
    );
    std::fs::write(&batch, &full).unwrap();
    assert!(fetch(&["--url", &url, "--md5", &sum, "--data-dir", d]).status.success());
}

/// `fetch-data --url URL --md5 SUM --data-dir DATA` started in the background, its output piped.
fn spawn_fetch(url: &str, sum: &str, data: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["fetch-data", "--url", url, "--md5", sum])
        .args(["--data-dir", data.to_str().unwrap()])
        .env_remove("IMGCLASS_DATA_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Issue 17 item 2: the official layout (fetched or kept without --url / --from) must have
/// the official 10,000 records in every batch. Sparse files of the exact sizes stand in for
/// the real batches (zero bytes: label 0, black images).
#[test]
fn an_official_layout_with_a_short_batch_is_not_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let dir = data.join("cifar-10/cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let names = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"];
    for name in names.iter().map(|n| format!("{n}.bin")).chain(["test_batch.bin".into()]) {
        let records = if name == "data_batch_4.bin" { 5_000 } else { 10_000 };
        std::fs::File::create(dir.join(&name)).unwrap().set_len(records * 3073).unwrap();
    }
    let classes = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
    std::fs::write(dir.join("batches.meta.txt"), classes).unwrap();
    let out = fetch(&["--data-dir", data.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("data_batch_4.bin is truncated"), "{err}");
    assert!(err.contains("10000 in each"), "{err}");
    // with every batch at the official size it is present and verified
    std::fs::File::create(dir.join("data_batch_4.bin")).unwrap().set_len(10_000 * 3073).unwrap();
    let out = fetch(&["--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("50000 training and 10000 test images"), "{}", stdout(&out));
}

/// Issue 17 item 15: an image folder too small for the binary layout is refused naming the
/// user's folder and the rule (it named an internal `.fetch-*/x/data_batch_4.bin is empty`).
#[test]
fn a_too_small_image_folder_names_the_folder_and_the_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tiny");
    for (split, n) in [("train", 3u8), ("test", 1)] {
        let dir = root.join(split).join("cat");
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            image_of(0, i).0.save(dir.join(format!("{i}.png"))).unwrap();
        }
    }
    let data = tmp.path().join("data");
    let out = fetch(&["--from", root.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let first = err.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("{err}"));
    assert!(first.contains(&format!("image folder {}", root.display())), "{first}");
    assert!(first.contains("needs at least 5 training images"), "{first}");
    assert!(first.contains("found 3"), "{first}");
    assert!(!err.contains(".fetch-"), "no internal path: {err}");
    assert!(err.contains("hint:"), "{err}");
    assert!(!data.exists(), "nothing left: {:?}", listing(tmp.path()));
}
