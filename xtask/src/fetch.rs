//! `cargo xtask fetch-data`: download (or import offline) a dataset into the data directory,
//! verify it, and put it in place only when complete.
//!
//! Flow for an archive dataset (CIFAR-10, CIFAR-100):
//! 1. If `<data-dir>/<dataset>/<folder>` exists and reads back, say so and stop (no-op).
//! 2. Download into `<data-dir>/<dataset>/<archive>.part` (resuming with `Range` when the
//!    server allows), verify the MD5/SHA-256, extract by streaming into a temporary
//!    `.fetch-*` directory beside the target, read it back with imgclass-data's reader,
//!    rename the folder into place, delete the `.part`.
//! 3. On failure: an interrupted download (or a full disk while downloading) keeps the
//!    `.part` for the next run to resume; every other failure removes everything it created.
//!
//! Files datasets (MNIST, Fashion-MNIST) download each `.gz` into `<file>.part`, verify its
//! MD5, and rename all of them into place together once all verified and read back.
//!
//! One run per data directory at a time (`lock.rs`: a second run waits, naming the holder's
//! PID). Ctrl-C or SIGTERM removes the staging directory, an empty `.part` and the
//! directories this run created (`crate::cleanup`); staging directories carry their owner's
//! PID, and those of dead processes are swept at the next start.
//!
//! `--from PATH` imports offline: a `.tar.gz`, an extracted folder, or (CIFAR-10) an image
//! folder `PATH/{train,test}/<class>/*` written in the official binary layout with the
//! training images in the seeded order [`IMPORT_SEED`].

mod download;
mod import;
mod lock;
mod sources;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use imgclass_data::checksum::{Algorithm, Checksum};

pub use sources::DatasetName;
use sources::{Kind, Source};

/// The seed of the training order of an image-folder import: the training images are read in
/// (label, file name) order, then shuffled with `TrainTest::shuffle_train(IMPORT_SEED)`
/// (SplitMix64 Fisher-Yates), then cut into the five batches in that order.
pub const IMPORT_SEED: u64 = 2009;

/// Arguments of `cargo xtask fetch-data`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which dataset.
    #[arg(long, value_enum, default_value_t = DatasetName::Cifar10)]
    pub dataset: DatasetName,
    /// Where datasets live (default: $IMGCLASS_DATA_DIR, else WORKSPACE/datasets).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Download from this mirror instead of the official URL (needs --md5 or --sha256; for
    /// mnist and fashion-mnist a base URL the four file names are appended to).
    #[arg(long, value_name = "URL", conflicts_with = "from")]
    pub url: Option<String>,
    /// Expected MD5 of the archive at --url (or of the --from archive).
    #[arg(long, value_name = "HEX", conflicts_with = "sha256")]
    pub md5: Option<String>,
    /// Expected SHA-256 of the archive at --url (or of the --from archive).
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// Import offline from a local .tar.gz, an extracted folder, or (cifar-10) an image
    /// folder PATH/{train,test}/CLASS/*.{png,jpg,jpeg}.
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
}

/// Runs `fetch-data`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let data_dir = data_dir(args.data_dir.as_deref());
    let source = sources::source(args.dataset).with_context(|| {
        let valid: Vec<&str> = DatasetName::fetchable().map(DatasetName::name).collect();
        format!(
            "--dataset {} has nothing to fetch (fetch-data takes: {})",
            args.dataset.name(),
            valid.join(", ")
        )
    })?;
    let checksum = check_flags(&args, &source)?;
    let dataset_dir = data_dir.join(source.name);
    fetch_checked(&args, &source, &data_dir, &dataset_dir, checksum)
}

/// Checks the flags against each other and the dataset; returns the given checksum.
fn check_flags(args: &Args, source: &Source) -> anyhow::Result<Option<Checksum>> {
    let checksum = given_checksum(args)?;
    if args.url.is_some() && checksum.is_none() && matches!(source.kind, Kind::Archive { .. }) {
        bail!(
            "--url needs the archive's checksum: add --md5 HEX or --sha256 HEX (exactly one), \
             so a corrupt or wrong download is caught"
        );
    }
    if checksum.is_some() && args.url.is_none() && args.from.is_none() {
        bail!("--md5/--sha256 check a --url download or a --from archive; give one of those");
    }
    if checksum.is_some() && matches!(source.kind, Kind::Files { .. }) {
        bail!(
            "--md5/--sha256 do not apply to {}: its four files are checked against the \
             published checksums of each",
            source.name
        );
    }
    Ok(checksum)
}

/// How to name a mirror for `source` on the command line, as every hint suggests it (and as
/// [`check_flags`] accepts it): an archive needs its checksum, a files dataset a base URL
/// (each file is checked against its published checksum).
fn mirror_flags(source: &Source) -> &'static str {
    match source.kind {
        Kind::Archive { .. } => "--url URL --md5 HEX",
        Kind::Files { .. } => "--url BASE_URL (the four file names are appended to it)",
    }
}

/// The fetch proper, once the flags are consistent: lock, create, fetch, clean up on failure.
fn fetch_checked(
    args: &Args,
    source: &Source,
    data_dir: &Path,
    dataset_dir: &Path,
    checksum: Option<Checksum>,
) -> anyhow::Result<()> {
    let (data_dir, dataset_dir) = (data_dir.to_path_buf(), dataset_dir.to_path_buf());
    // Remember which directories this run creates, to remove them again on failure or
    // interruption (only when empty: a kept `.part` keeps its directory).
    let mut created: Vec<PathBuf> = Vec::new();
    if !data_dir.exists() {
        created.push(data_dir.clone());
    }
    let mut on_interrupt: Vec<crate::cleanup::Registered> =
        created.iter().map(|d| crate::cleanup::remove_empty_dir_on_interrupt(d)).collect();
    // one fetch-data per data directory at a time: a second run waits, saying for whom
    let lock = lock::acquire(&data_dir).map_err(|e| with_disk_hint(e, &data_dir))?;
    if !dataset_dir.exists() {
        created.push(dataset_dir.clone());
        on_interrupt.push(crate::cleanup::remove_empty_dir_on_interrupt(&dataset_dir));
    }
    let result = fs::create_dir_all(&dataset_dir)
        .with_context(|| format!("cannot create {}", dataset_dir.display()))
        .and_then(|()| fetch(args, source, &dataset_dir, checksum.as_ref()));
    drop(lock);
    if result.is_err() {
        for dir in created.iter().rev() {
            fs::remove_dir(dir).ok();
        }
    }
    drop(on_interrupt);
    result.map_err(|e| with_disk_hint(e, &data_dir))
}

fn fetch(
    args: &Args,
    source: &Source,
    dataset_dir: &Path,
    checksum: Option<&Checksum>,
) -> anyhow::Result<()> {
    remove_stale_staging(source, dataset_dir);
    match source.kind {
        Kind::Archive { url, md5, folder, .. } => {
            let target = dataset_dir.join(folder);
            let official = args.url.is_none() && args.from.is_none();
            if already_present(source, &target, official)? {
                return Ok(());
            }
            if let Some(from) = &args.from {
                return import::import_archive_dataset(source, from, &target, checksum);
            }
            let (url, expected) = match (&args.url, checksum) {
                (Some(u), Some(c)) => (u.as_str(), c.clone()),
                _ => (url, Checksum::md5(md5)?),
            };
            let official = args.url.is_none();
            let name = sources::file_name_of(url).unwrap_or("archive.tar.gz");
            let part = dataset_dir.join(format!("{name}.part"));
            fetch_archive(source, url, &expected, &part, &target, official)
        }
        Kind::Files { mirrors, files } => {
            if files_present(source, dataset_dir)? {
                return Ok(());
            }
            if let Some(from) = &args.from {
                return import::import_files_dataset(source, from, dataset_dir);
            }
            let mirrors: Vec<String> = match &args.url {
                Some(u) if u.ends_with('/') => vec![u.clone()],
                Some(u) => vec![format!("{u}/")],
                None => mirrors.iter().map(|m| m.to_string()).collect(),
            };
            fetch_files(source, &mirrors, files, dataset_dir, args.url.is_none())
        }
    }
}

use crate::paths::data_dir;

fn given_checksum(args: &Args) -> anyhow::Result<Option<Checksum>> {
    Ok(match (&args.md5, &args.sha256) {
        (Some(m), None) => Some(Checksum::new(Algorithm::Md5, m)?),
        (None, Some(s)) => Some(Checksum::new(Algorithm::Sha256, s)?),
        (None, None) => None,
        (Some(_), Some(_)) => bail!("give exactly one of --md5 and --sha256"),
    })
}

/// True (after saying so) when the dataset folder exists and reads back; an error when it
/// exists but does not read back (never deleted automatically).
fn already_present(source: &Source, target: &Path, official: bool) -> anyhow::Result<bool> {
    if !target.exists() {
        return Ok(false);
    }
    let checked = if official {
        import::check_official_layout(source, target)
    } else {
        import::check_layout(source, target)
    };
    match checked {
        Ok(summary) => {
            println!(
                "{} is already present and verified at {} ({summary}); nothing to do",
                source.name,
                target.display()
            );
            Ok(true)
        }
        Err(e) => bail!(
            "{} exists but does not read back as {}: {}\nhint: remove it (rm -r {}) and run \
             the command again",
            target.display(),
            source.name,
            crate::error_chain(&e),
            target.display()
        ),
    }
}

fn files_present(source: &Source, dir: &Path) -> anyhow::Result<bool> {
    let Kind::Files { files, .. } = source.kind else { return Ok(false) };
    let present = files.iter().filter(|(f, _)| dir.join(f).exists()).count();
    if present < files.len() {
        return Ok(false);
    }
    for (f, md5) in files {
        let path = dir.join(f);
        match import::verify_published(&path, md5, sources::content_sha256(source.name, f)) {
            Ok(accepted) => tracing::info!("{}: {accepted}", path.display()),
            Err(e) => {
                return Err(hinted(
                    format!("{} is present but corrupt", path.display()),
                    crate::error_chain(&e),
                    "delete it and run the command again",
                ));
            }
        }
    }
    let summary = import::check_layout(source, dir)?;
    println!(
        "{} is already present and verified at {} ({summary}); nothing to do",
        source.name,
        dir.display()
    );
    Ok(true)
}

/// Download, verify, extract, check, rename.
fn fetch_archive(
    source: &Source,
    url: &str,
    expected: &Checksum,
    part: &Path,
    target: &Path,
    official: bool,
) -> anyhow::Result<()> {
    tracing::info!("downloading {url} into {}", part.display());
    // interrupted before the first byte: nothing to resume, so no empty `.part` is left
    let _on_interrupt = crate::cleanup::remove_empty_file_on_interrupt(part);
    let done = match download::download(url, part, expected.algorithm()) {
        Ok(d) => d,
        Err(e) => {
            download::remove_if_empty(part);
            return Err(download_failure(e, source, official));
        }
    };
    tracing::info!("downloaded {} bytes; verifying the {}", done.len, expected.algorithm());
    if let Err(e) = expected.check(&done.digest, part.display().to_string()) {
        fs::remove_file(part).ok();
        return Err(hinted(
            format!("the download of {url} is corrupt or not the expected file (deleted)"),
            e,
            "run the command again; if it fails again, check --md5/--sha256 or use another \
             --url mirror, or import a local copy with --from PATH",
        ));
    }
    let result = import::install_from_archive(source, part, target);
    // The archive has served its purpose (or is bad): never leave it behind.
    fs::remove_file(part).ok();
    result?;
    Ok(())
}

fn fetch_files(
    source: &Source,
    mirrors: &[String],
    files: &[(&str, &str)],
    dir: &Path,
    official: bool,
) -> anyhow::Result<()> {
    let mut parts = Vec::new();
    for (name, md5) in files {
        let expected = Checksum::md5(md5)?;
        let part = dir.join(format!("{name}.part"));
        let _on_interrupt = crate::cleanup::remove_empty_file_on_interrupt(&part);
        let mut last_err = None;
        let mut digest = String::new();
        for mirror in mirrors {
            let url = format!("{mirror}{name}");
            tracing::info!("downloading {url}");
            match download::download(&url, &part, expected.algorithm()) {
                Ok(d) => {
                    digest = d.digest;
                    last_err = None;
                    break;
                }
                Err(e) => {
                    download::remove_if_empty(&part);
                    let resumable = matches!(e, download::DownloadError::Interrupted { .. });
                    last_err = Some(e);
                    if resumable {
                        break;
                    }
                    tracing::warn!("{url} failed; trying the next mirror if any");
                }
            }
        }
        if let Some(e) = last_err {
            return Err(download_failure(e, source, official));
        }
        if let Err(e) = expected.check(&digest, part.display().to_string()) {
            fs::remove_file(&part).ok();
            return Err(hinted(
                format!("{name} is corrupt or not the expected file (deleted)"),
                e,
                "run the command again, or use another mirror with --url BASE_URL",
            ));
        }
        parts.push((part, dir.join(name)));
    }
    // All verified: read them back from the .part names, then rename together.
    import::check_files_parts(source, &parts)?;
    for (part, final_path) in &parts {
        fs::rename(part, final_path).with_context(|| {
            format!("cannot rename {} to {}", part.display(), final_path.display())
        })?;
    }
    let summary = import::check_layout(source, dir)?;
    println!("{} is ready at {} ({summary})", source.name, dir.display());
    Ok(())
}

fn download_failure(e: download::DownloadError, source: &Source, official: bool) -> anyhow::Error {
    use download::DownloadError as D;
    let hint = match &e {
        D::Unreachable { .. } if official => format!(
            "the official host is unreachable (no network here?): download the files on another \
             machine and import them with `cargo xtask fetch-data --dataset {} --from PATH`, or \
             use a reachable mirror with {}",
            source.name,
            mirror_flags(source)
        ),
        D::Unreachable { .. } => "check the --url (host, port, scheme) and the network, or import \
                                  a local copy with --from PATH"
            .to_string(),
        D::Status { status: 404, .. } => "the file is not at that address (HTTP 404): check the \
                                          --url, try another mirror, or import a local copy with \
                                          --from PATH"
            .to_string(),
        D::Status { .. } => "the server refused the request: try again later, use another mirror \
                             with --url, or import a local copy with --from PATH"
            .to_string(),
        D::Interrupted { .. } => "run the same command again: it resumes from the partial file \
                                  (delete the .part file to start over)"
            .to_string(),
        D::Write { .. } => "free some disk space or choose another --data-dir, then run the same \
                            command again (the partial file is kept and resumed)"
            .to_string(),
    };
    anyhow::anyhow!("{e}\nhint: {hint}")
}

/// Adds a "disk full" hint when the root cause is ENOSPC.
fn with_disk_hint(e: anyhow::Error, data_dir: &Path) -> anyhow::Error {
    let full = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull)
    });
    let text = crate::error_chain(&e);
    if full && !text.contains("free some disk space") {
        anyhow::anyhow!(
            "{text}\nhint: no space left on the device of {}: free some disk space or choose \
             another --data-dir, then run the command again",
            data_dir.display()
        )
    } else {
        e
    }
}

/// An error that says what happened, why, and what to do next (main prints it as is).
pub(crate) fn hinted(
    what: impl std::fmt::Display,
    cause: impl std::fmt::Display,
    hint: &str,
) -> anyhow::Error {
    anyhow::anyhow!("{what}: {cause}\nhint: {hint}")
}

/// Removes `.fetch-<dataset>-<pid>-*` staging directories whose process is dead (a killed
/// run; a finished, failed or interrupted run removes its own). Runs under the data
/// directory's lock, so no live run of this build is staging there; a staging directory of
/// a live process (an older build without the lock) is left alone.
fn remove_stale_staging(source: &Source, dataset_dir: &Path) {
    crate::cleanup::sweep_stale(dataset_dir, &import::staging_base(source));
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    /// Issue 17 item 13: the unreachable-host hint suggests, for each dataset, a mirror
    /// command that fetch-data accepts (it suggested `--url URL --md5 HEX` for MNIST, which
    /// the flag check then refused).
    #[test]
    fn the_mirror_hint_names_flags_the_dataset_accepts() {
        for (name, flags) in [
            (
                "cifar-10",
                vec!["--url", "http://m/c.tar.gz", "--md5", "c32a1d4ab5d03f1284b67883e8d87530"],
            ),
            ("mnist", vec!["--url", "http://m/base/"]),
            ("fashion-mnist", vec!["--url", "http://m/base/"]),
        ] {
            let cli = Cli::parse_from(["x", "--dataset", name]);
            let source = sources::source(cli.args.dataset).expect("a fetchable dataset");
            let e = download::DownloadError::Unreachable { url: "u".into(), reason: "r".into() };
            let hint = download_failure(e, &source, true).to_string();
            assert!(hint.contains(mirror_flags(&source)), "{name}: {hint}");
            let files = matches!(source.kind, Kind::Files { .. });
            assert_eq!(hint.contains("--md5"), !files, "{name}: {hint}");
            // the suggested form passes the flag check
            let cli = Cli::parse_from([&["x", "--dataset", name][..], &flags[..]].concat());
            check_flags(&cli.args, &source).unwrap_or_else(|e| panic!("{name}: {e}"));
            // and the form suggested for archives is refused for files datasets
            if files {
                let md5 = ["--md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873"];
                let cli =
                    Cli::parse_from([&["x", "--dataset", name][..], &flags[..], &md5[..]].concat());
                assert!(check_flags(&cli.args, &source).is_err());
            }
        }
    }
}
