//! `cargo xtask fetch-data` on a full disk: the built binary runs inside a private mount
//! namespace (`unshare -r -m`, no privileges needed where user namespaces are enabled) whose
//! data directory is a tmpfs too small for the dataset. The download and the extraction must
//! each fail with a "no space" hint and leave no partial dataset and no temporary directory;
//! after the disk is grown (`mount -o remount`) the same command completes, resuming the kept
//! partial download. Where mount namespaces are unavailable the tests say so loudly on stderr
//! and pass without running: that is a property of the host, not of the code under test.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use imgclass_data::checksum::md5_reader;
use imgclass_testkit::archives::{cifar10_files, cifar10_tar_gz};
use imgclass_testkit::http::Config;

/// 100 records per training batch: ~1.6 MB of incompressible pixels, more than the 1 MiB disk.
const TRAIN_PER_BATCH: usize = 100;
const N_TEST: usize = 20;
const SEED: u64 = 23;
const SMALL_KIB: u32 = 1024;
const LARGE_KIB: u32 = 16 * 1024;

/// Whether this host lets an unprivileged process mount a tmpfs in its own namespace.
fn namespaces_available() -> bool {
    let Ok(dir) = tempfile::tempdir() else { return false };
    let ok = Command::new("unshare")
        .args(["-r", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs \"$D\""])
        .env("D", dir.path())
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "NOTE: disk-full tests not run: `unshare -r -m` + tmpfs mount is not permitted on \
             this host"
        );
    }
    ok
}

/// Runs `fetch-data ARGS --data-dir $D/data` twice inside one mount namespace: first with
/// `$D` a tmpfs of SMALL_KIB, then after growing it to LARGE_KIB. Prints, between markers,
/// each exit code, the files left on the tmpfs and (after the second run) their MD5s.
fn run_on_small_disk(args: &str, env: &[(&str, &str)]) -> Output {
    let mnt = tempfile::tempdir().expect("temp dir");
    let script = format!(
        r#"set -u
mount -t tmpfs -o size={SMALL_KIB}k tmpfs "$D" || exit 97
"$X" fetch-data {args} --data-dir "$D/data" >&2
echo "@rc1=$?"
echo "@listing1"; (cd "$D" && find . -mindepth 1 | sort)
mount -o remount,size={LARGE_KIB}k "$D" || exit 98
"$X" fetch-data {args} --data-dir "$D/data" >&2
echo "@rc2=$?"
echo "@listing2"; (cd "$D" && find . -mindepth 1 | sort)
echo "@md5"; (cd "$D/data/cifar-10/cifar-10-batches-bin" 2>/dev/null && md5sum -- *)
echo "@end"
"#
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-r", "-m", "sh", "-c", &script])
        .env("D", mnt.path())
        .env("X", env!("CARGO_BIN_EXE_xtask"))
        .env_remove("IMGCLASS_DATA_DIR")
        .env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("unshare runs");
    eprintln!(
        "--- {args}: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The stdout section after `@name` (up to the next `@` line), one entry per line.
fn section(out: &Output, name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().skip_while(|l| *l != format!("@{name}"));
    lines.next();
    lines.take_while(|l| !l.starts_with('@')).map(str::to_string).collect()
}

/// The exit code printed as `@rcN=CODE`.
fn rc(out: &Output, n: u32) -> i32 {
    let text = String::from_utf8_lossy(&out.stdout);
    let key = format!("@rc{n}=");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in the output"))
}

/// file name -> MD5 of the generated fixture files.
fn expected_md5s() -> BTreeMap<String, String> {
    cifar10_files(TRAIN_PER_BATCH, N_TEST, SEED)
        .into_iter()
        .map(|(name, bytes)| (name, md5_reader(bytes.as_slice()).expect("md5")))
        .collect()
}

/// `md5sum` lines ("HEX  NAME") as name -> MD5.
/// The installed dataset files' MD5s, by name; the install's own `SHA256SUMS` must be there
/// and is left out of the comparison with the fixture.
fn installed_md5s(out: &Output) -> BTreeMap<String, String> {
    let mut all: BTreeMap<String, String> = section(out, "md5")
        .iter()
        .filter_map(|l| l.split_once("  ").map(|(sum, name)| (name.to_string(), sum.to_string())))
        .collect();
    assert!(all.remove("SHA256SUMS").is_some(), "no SHA256SUMS installed: {all:?}");
    all
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_full_disk_during_download_keeps_only_the_part_file_and_a_rerun_resumes() {
    if !namespaces_available() {
        return;
    }
    let archive = cifar10_tar_gz(TRAIN_PER_BATCH, N_TEST, SEED);
    assert!(archive.len() > SMALL_KIB as usize * 1024, "the archive must not fit the small disk");
    let sum = md5_reader(archive.as_slice()).expect("md5");
    let server = Config::new("/m/cifar-10-binary.tar.gz", archive).start().expect("server");
    let url = server.url("/m/cifar-10-binary.tar.gz");
    let out = run_on_small_disk(r#"--url "$URL" --md5 "$SUM""#, &[("URL", &url), ("SUM", &sum)]);
    assert!(out.status.success(), "the namespace script itself failed");

    assert_ne!(rc(&out, 1), 0, "a download onto a full disk must fail");
    let err = stderr(&out);
    assert!(err.contains("free some disk space"), "no disk-space hint in:\n{err}");
    // only the resumable partial download is left: no dataset, no temporary directory
    let left = section(&out, "listing1");
    let expected = ["./data", "./data/cifar-10", "./data/cifar-10/cifar-10-binary.tar.gz.part"];
    assert_eq!(left, expected, "left behind");

    assert_eq!(rc(&out, 2), 0, "after the disk grows, the same command succeeds");
    let ranges = server.requests().iter().filter(|r| r.range_start.is_some_and(|s| s > 0)).count();
    assert_eq!(ranges, 1, "the second run resumes with a Range request");
    assert_eq!(installed_md5s(&out), expected_md5s(), "installed files differ from the fixture");
    assert!(!section(&out, "listing2").iter().any(|p| p.ends_with(".part")), "stray .part");
}

#[test]
fn a_full_disk_during_extraction_leaves_nothing_and_a_rerun_completes() {
    if !namespaces_available() {
        return;
    }
    let archive = cifar10_tar_gz(TRAIN_PER_BATCH, N_TEST, SEED);
    let src = tempfile::tempdir().expect("temp dir");
    let file = src.path().join("cifar-10-binary.tar.gz");
    std::fs::write(&file, &archive).expect("write the archive");
    let from = file.to_str().expect("utf-8 path");
    assert!(Path::new(from).is_file());
    let out = run_on_small_disk(r#"--from "$FROM""#, &[("FROM", from)]);
    assert!(out.status.success(), "the namespace script itself failed");

    assert_ne!(rc(&out, 1), 0, "an extraction onto a full disk must fail");
    let err = stderr(&out);
    assert!(err.contains("no space left"), "no disk-space hint in:\n{err}");
    // nothing at all: the staging directory and the data directories the run made are gone
    let left = section(&out, "listing1");
    assert!(left.is_empty(), "left behind: {left:?}");

    assert_eq!(rc(&out, 2), 0, "after the disk grows, the same command succeeds");
    assert_eq!(installed_md5s(&out), expected_md5s(), "installed files differ from the fixture");
}

#[test]
fn a_full_disk_while_importing_an_image_folder_leaves_nothing() {
    if !namespaces_available() {
        return;
    }
    // 3 classes x (130 train + 10 test) PNGs: 420 records of 3,073 bytes, more than 1 MiB
    let src = tempfile::tempdir().expect("temp dir");
    let root = src.path().join("jpeg");
    for (label, class) in ["cat", "dog", "frog"].iter().enumerate() {
        for (split, n) in [("train", 130u32), ("test", 10)] {
            let dir = root.join(split).join(class);
            std::fs::create_dir_all(&dir).expect("mkdir");
            for i in 0..n {
                let img = image::RgbImage::from_fn(32, 32, |x, y| {
                    image::Rgb([(label as u32 * 80 + i) as u8, (x * 8) as u8, ((y * 8) ^ i) as u8])
                });
                img.save(dir.join(format!("{i:04}.png"))).expect("save png");
            }
        }
    }
    let out = run_on_small_disk(r#"--from "$FROM""#, &[("FROM", root.to_str().expect("utf-8"))]);
    assert!(out.status.success(), "the namespace script itself failed");

    assert_ne!(rc(&out, 1), 0, "an import onto a full disk must fail");
    let err = stderr(&out);
    assert!(err.contains("no space left"), "no disk-space hint in:\n{err}");
    let left = section(&out, "listing1");
    assert!(left.is_empty(), "left behind: {left:?}");

    assert_eq!(rc(&out, 2), 0, "after the disk grows, the same command succeeds");
    let installed: Vec<String> = installed_md5s(&out).into_keys().collect();
    let expected: Vec<String> = expected_md5s().into_keys().collect();
    assert_eq!(installed, expected, "the official layout's file names");
}
