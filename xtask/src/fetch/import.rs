//! Putting a dataset in place: extracting an archive, copying an extracted folder, or
//! converting an image folder, always through a `.fetch-*` staging directory beside the
//! target that is read back before one rename moves it into place.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use imgclass_data::archive::{ArchiveError, extract_tar_gz};
use imgclass_data::checksum::Checksum;
use imgclass_data::cifar::{
    CIFAR10_OFFICIAL_RECORDS, Cifar100Labels, check_cifar10_batches, read_cifar10, read_cifar100,
    write_cifar10,
};
use imgclass_data::folder::{FolderOptions, read_image_folder};
use imgclass_data::idx::{fashion_mnist_classes, mnist_classes, read_idx_pair};
use imgclass_data::{DataError, TrainTest};

use super::sources::{Kind, Source};
use super::{IMPORT_SEED, hinted};

/// Reads the dataset at `dir` back with imgclass-data's reader after checking its record
/// counts (each training batch as large as the others); returns a one-line summary.
pub fn check_layout(source: &Source, dir: &Path) -> anyhow::Result<String> {
    check_layout_counts(source, dir, false)
}

/// [`check_layout`] against the official record counts (10,000 per CIFAR-10 batch): for a
/// dataset said to be the official one (fetched or kept without --url or --from).
pub fn check_official_layout(source: &Source, dir: &Path) -> anyhow::Result<String> {
    check_layout_counts(source, dir, true)
}

fn check_layout_counts(source: &Source, dir: &Path, official: bool) -> anyhow::Result<String> {
    let files = match source.kind {
        Kind::Files { files, .. } => {
            let paths: Vec<(PathBuf, PathBuf)> =
                files.iter().map(|(f, _)| (dir.join(f), dir.join(f))).collect();
            return check_files_parts(source, &paths);
        }
        Kind::Archive { files, .. } => files,
    };
    for f in files {
        let p = dir.join(f);
        if !p.is_file() {
            bail!("{} is missing", p.display());
        }
    }
    if source.name == "cifar-10" {
        check_cifar10_batches(dir, official).map_err(|e| {
            let rule = if official {
                format!(
                    "a batch has the wrong number of records (the official cifar-10 has \
                     {CIFAR10_OFFICIAL_RECORDS} in each)"
                )
            } else {
                "a batch has the wrong number of records (the five training batches hold the \
                 same number)"
                    .to_string()
            };
            anyhow::Error::new(e).context(rule)
        })?;
    }
    check_manifest(source, dir)?;
    let data = match source.name {
        "cifar-100" => read_cifar100(dir, Cifar100Labels::Fine)?,
        _ => read_cifar10(dir)?,
    };
    Ok(summary(&data))
}

/// Reads MNIST-style files back (the `.0` of each pair is where the file is now): training
/// images and labels, then test images and labels.
pub fn check_files_parts(source: &Source, parts: &[(PathBuf, PathBuf)]) -> anyhow::Result<String> {
    let classes = match source.name {
        "fashion-mnist" => fashion_mnist_classes(),
        _ => mnist_classes(),
    };
    let [train_x, train_y, test_x, test_y] = parts else {
        bail!("{} needs four files, found {}", source.name, parts.len());
    };
    let train = read_idx_pair(&train_x.0, &train_y.0, classes.clone())?;
    let test = read_idx_pair(&test_x.0, &test_y.0, classes)?;
    Ok(summary(&TrainTest { train, test }))
}

fn summary(data: &TrainTest) -> String {
    format!(
        "{} training and {} test images of {}, {} classes",
        data.train.len(),
        data.test.len(),
        data.train.shape(),
        data.train.n_classes()
    )
}

/// The name of a staging directory before its owner's PID: `.fetch-<dataset>-`.
pub fn staging_base(source: &Source) -> String {
    format!(".fetch-{}-", source.name)
}

/// A staging directory `.fetch-<dataset>-<pid>-*` beside `target`, removed when dropped, on
/// Ctrl-C / SIGTERM, or (if this process is killed) by the next run's sweep.
struct Staging {
    dir: tempfile::TempDir,
    _on_interrupt: crate::cleanup::Registered,
}

impl Staging {
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn staging(source: &Source, target: &Path) -> anyhow::Result<Staging> {
    let parent = target.parent().context("the target has no parent directory")?;
    let dir = tempfile::Builder::new()
        .prefix(&crate::cleanup::owned_prefix(&staging_base(source)))
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a staging directory in {}", parent.display()))?;
    let on_interrupt = crate::cleanup::remove_tree_on_interrupt(dir.path());
    Ok(Staging { dir, _on_interrupt: on_interrupt })
}

/// Checks the staged folder and renames it to `target`.
fn commit(source: &Source, staged: &Path, target: &Path) -> anyhow::Result<()> {
    // a manifest that came inside an archive is not ours: the install writes its own
    let foreign = staged.join(MANIFEST);
    if foreign.exists() {
        fs::remove_file(&foreign)
            .with_context(|| format!("cannot replace {}", foreign.display()))?;
    }
    let summary = check_layout(source, staged).with_context(|| {
        format!("the imported {} does not read back; nothing was installed", source.name)
    })?;
    write_manifest(source, staged)?;
    install(source, staged, target, &summary)
}

/// The checksum list written beside an installed archive layout, in `sha256sum` format (so
/// `sha256sum -c SHA256SUMS` checks it too): the SHA-256 of each file as it was installed
/// from a verified archive or import. Every later verification compares the files with it,
/// so a batch edited or replaced after installation, even at the right size, is named.
pub const MANIFEST: &str = "SHA256SUMS";

/// Writes [`MANIFEST`] for an archive layout's files in `dir`.
fn write_manifest(source: &Source, dir: &Path) -> anyhow::Result<()> {
    let Kind::Archive { files, .. } = source.kind else { return Ok(()) };
    let mut text = String::new();
    for f in files {
        let sum = imgclass_data::checksum::sha256_file(&dir.join(f))
            .with_context(|| format!("cannot checksum {}", dir.join(f).display()))?;
        text.push_str(&format!("{sum}  {f}\n"));
    }
    let path = dir.join(MANIFEST);
    fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Compares an archive layout's files in `dir` with its [`MANIFEST`], when there is one (a
/// layout installed by an older build has none); an error names each file that differs.
fn check_manifest(source: &Source, dir: &Path) -> anyhow::Result<()> {
    let Kind::Archive { files, .. } = source.kind else { return Ok(()) };
    let path = dir.join(MANIFEST);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut differ = Vec::new();
    for f in files {
        let Some(recorded) = text.lines().find_map(|l| {
            l.split_once("  ").filter(|(_, name)| name == f).map(|(sum, _)| sum.to_string())
        }) else {
            bail!("{} has no checksum for {f}", path.display());
        };
        let found = imgclass_data::checksum::sha256_file(&dir.join(f))
            .with_context(|| format!("cannot checksum {}", dir.join(f).display()))?;
        if !found.eq_ignore_ascii_case(&recorded) {
            differ.push(dir.join(f).display().to_string());
        }
    }
    if !differ.is_empty() {
        bail!(
            "{} changed since it was installed (its SHA-256 differs from {})",
            differ.join(", "),
            path.display()
        );
    }
    Ok(())
}

/// Renames the checked staged folder to `target`.
fn install(source: &Source, staged: &Path, target: &Path, summary: &str) -> anyhow::Result<()> {
    if target.exists() {
        bail!("{} appeared while importing; leaving it alone", target.display());
    }
    fs::rename(staged, target).with_context(|| {
        format!("cannot move {} into place at {}", staged.display(), target.display())
    })?;
    println!("{} is ready at {} ({summary})", source.name, target.display());
    Ok(())
}

/// Extracts `archive` (a .tar.gz) into staging, finds the dataset folder in it, checks it,
/// and renames it to `target`.
pub fn install_from_archive(source: &Source, archive: &Path, target: &Path) -> anyhow::Result<()> {
    let Kind::Archive { folder, files, .. } = source.kind else {
        bail!("{} is not published as an archive", source.name);
    };
    let stage = staging(source, target)?;
    let root = stage.path().join("x");
    let file =
        fs::File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    tracing::info!("extracting {} into {}", archive.display(), stage.path().display());
    let summary = extract_tar_gz(std::io::BufReader::new(file), &root)
        .map_err(|e| archive_failure(e, archive))?;
    tracing::debug!(files = summary.files, bytes = summary.bytes, "extracted");
    let Some(staged) = locate(&root, folder, files) else {
        return Err(hinted(
            format!("{} has no {folder}/ folder with {}", archive.display(), files.join(", ")),
            "nothing was installed",
            &format!("is this the {} archive?", source.name),
        ));
    };
    commit(source, &staged, target)
}

fn archive_failure(e: ArchiveError, archive: &Path) -> anyhow::Error {
    let hint = if e.is_unsafe_entry() {
        "the archive tries to write outside its folder or holds a link or device, so nothing was \
         extracted: it is not an official dataset archive; use the official URL or a trusted \
         copy"
    } else if disk_full(&e) {
        "no space left on the device of the data directory: free some disk space or choose \
         another --data-dir, then run the command again"
    } else if matches!(e, ArchiveError::Read { .. }) {
        "the archive is truncated or corrupt: download it again (or check the --from file), then \
         run the command again"
    } else {
        "check the free space and permissions of the data directory (or choose another \
         --data-dir), then run the command again"
    };
    hinted(format!("cannot extract {} (nothing was installed)", archive.display()), e, hint)
}

/// Whether an I/O error somewhere in `e`'s source chain is ENOSPC.
fn disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The folder under `root` holding all `files`: `root/folder`, `root` itself, or
/// `root/<one dir>/folder`.
fn locate(root: &Path, folder: &str, files: &[&str]) -> Option<PathBuf> {
    let has_all = |d: &Path| files.iter().all(|f| d.join(f).is_file());
    let mut candidates = vec![root.join(folder), root.to_path_buf()];
    if let Ok(rd) = fs::read_dir(root) {
        for e in rd.flatten() {
            candidates.push(e.path().join(folder));
            candidates.push(e.path());
        }
    }
    candidates.into_iter().find(|d| d.is_dir() && has_all(d))
}

/// `--from` for CIFAR-10 / CIFAR-100: an archive, an extracted folder, or (CIFAR-10) an
/// image folder.
pub fn import_archive_dataset(
    source: &Source,
    from: &Path,
    target: &Path,
    checksum: Option<&Checksum>,
) -> anyhow::Result<()> {
    let Kind::Archive { folder, files, md5, .. } = source.kind else {
        bail!("{} is not published as an archive", source.name);
    };
    if from.is_file() {
        match checksum {
            Some(c) => c.verify_file(from).with_context(|| {
                format!("{} is not the expected file; nothing was installed", from.display())
            })?,
            None => {
                let found = imgclass_data::checksum::md5_file(from)?;
                if found == md5 {
                    tracing::info!("{} is the official archive (md5 {found})", from.display());
                } else {
                    tracing::info!(
                        "{} is not byte-identical to the official archive (md5 {found}); \
                         importing it anyway, its contents are checked",
                        from.display()
                    );
                }
            }
        }
        return install_from_archive(source, from, target);
    }
    if checksum.is_some() && from.is_dir() {
        bail!(
            "--md5/--sha256 check a --from archive file; {} is a folder (drop the checksum flag)",
            from.display()
        );
    }
    if !from.is_dir() {
        bail!(
            "--from {} does not exist\nhint: give a .tar.gz archive, an extracted {folder}/ \
             folder{}",
            from.display(),
            if source.name == "cifar-10" {
                ", or an image folder with train/ and test/"
            } else {
                ""
            }
        );
    }
    if let Some(src) = locate(from, folder, files) {
        return import_folder_copy(source, &src, files, target);
    }
    if source.name == "cifar-10" && from.join("train").is_dir() && from.join("test").is_dir() {
        return import_image_folder(source, from, target);
    }
    bail!(
        "--from {} is neither an extracted {folder}/ folder (with {}) nor{} a .tar.gz archive",
        from.display(),
        files.join(", "),
        if source.name == "cifar-10" { " an image folder with train/ and test/, nor" } else { "" }
    )
}

/// Copies an extracted folder's files byte for byte.
fn import_folder_copy(
    source: &Source,
    src: &Path,
    files: &[&str],
    target: &Path,
) -> anyhow::Result<()> {
    tracing::info!("importing the extracted folder {}", src.display());
    check_layout(source, src)
        .with_context(|| format!("{} does not read back; nothing was installed", src.display()))?;
    let stage = staging(source, target)?;
    let staged = stage.path().join("x");
    fs::create_dir(&staged)?;
    for f in files {
        fs::copy(src.join(f), staged.join(f)).with_context(|| {
            format!("cannot copy {} into {}", src.join(f).display(), staged.display())
        })?;
    }
    commit(source, &staged, target)
}

/// Reads an image folder, shuffles the training images with [`IMPORT_SEED`], writes the
/// official binary layout, and checks it reads back to exactly the same images.
fn import_image_folder(source: &Source, from: &Path, target: &Path) -> anyhow::Result<()> {
    tracing::info!(
        "importing the image folder {} (training order seed {IMPORT_SEED})",
        from.display()
    );
    let start = std::time::Instant::now();
    let mut data = read_image_folder(from, &FolderOptions::default())
        .with_context(|| format!("cannot read the image folder {}", from.display()))?;
    tracing::info!(
        "decoded {} + {} images in {:.1} s",
        data.train.len(),
        data.test.len(),
        start.elapsed().as_secs_f64()
    );
    data.shuffle_train(IMPORT_SEED)?;
    let stage = staging(source, target)?;
    let staged = stage.path().join("x");
    fs::create_dir(&staged)?;
    write_cifar10(&staged, &data).map_err(|e| match e {
        DataError::NotCifarShape { .. } => anyhow::Error::new(e).context(
            "the CIFAR-10 binary layout holds 3x32x32 RGB images only; resize the images first",
        ),
        e @ DataError::TooFewForLayout { .. } => hinted(
            format!("cannot import the image folder {}; nothing was installed", from.display()),
            e,
            &format!(
                "add images to {}/train/<class>/ and {}/test/<class>/",
                from.display(),
                from.display()
            ),
        ),
        e => e.into(),
    })?;
    // The read-back is the layout check: the same reader, and bit-exact against the images.
    let back = read_cifar10(&staged)?;
    if back != data {
        bail!("the written batches do not read back to the imported images; nothing was installed");
    }
    write_manifest(source, &staged)?;
    install(source, &staged, target, &summary(&back))
}

/// Largest decompressed IDX file checked against a content hash (MNIST's training images are
/// 47,040,016 bytes); a larger stream is refused (a gzip bomb costs no more than this).
const MAX_IDX_BYTES: u64 = 64 << 20;

/// Which published checksum accepted a files-dataset file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// The `.gz` file is byte-identical to the published one (its MD5).
    GzipMd5,
    /// The `.gz` file differs (re-compressed) but its decompressed content has the published
    /// SHA-256.
    ContentSha256,
}

impl std::fmt::Display for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::GzipMd5 => "the gzip file's md5 matches the published file",
            Self::ContentSha256 => {
                "re-compressed copy: its decompressed content matches the recorded content sha-256"
            }
        })
    }
}

/// Verifies a files dataset's `.gz` file at `path`: its MD5 against the published `gz_md5`
/// first; when that differs (a re-compressed copy), the SHA-256 of its decompressed content
/// against the published `content_sha256`, if one is known. Returns which check passed.
pub fn verify_published(
    path: &Path,
    gz_md5: &str,
    content_sha256: Option<&str>,
) -> anyhow::Result<Accepted> {
    let found = imgclass_data::checksum::md5_file(path)
        .with_context(|| format!("{} is missing or unreadable", path.display()))?;
    if found.eq_ignore_ascii_case(gz_md5) {
        return Ok(Accepted::GzipMd5);
    }
    let Some(content) = content_sha256 else {
        bail!(
            "{} is not the published file: its gzip md5 is {found}, the published {gz_md5}, and \
             no sha-256 of the decompressed content is recorded for it to accept a \
             re-compressed copy",
            path.display()
        );
    };
    let file = fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut stream = std::io::Read::take(flate2::read::GzDecoder::new(file), MAX_IDX_BYTES + 1);
    let mut hasher =
        imgclass_data::checksum::Hasher::new(imgclass_data::checksum::Algorithm::Sha256);
    hasher.update_reader(&mut stream).with_context(|| {
        format!(
            "{} is not the published file (gzip md5 {found}) and does not decompress",
            path.display()
        )
    })?;
    if hasher.len() > MAX_IDX_BYTES {
        bail!("{} decompresses to more than {MAX_IDX_BYTES} bytes", path.display());
    }
    let sum = hasher.finalize_hex();
    if !sum.eq_ignore_ascii_case(content) {
        bail!(
            "{} is not the published file: gzip md5 {found} (published {gz_md5}) and \
             decompressed sha-256 {sum} (published {content})",
            path.display()
        );
    }
    Ok(Accepted::ContentSha256)
}

/// `--from DIR` for MNIST / Fashion-MNIST: DIR holds the four published `.gz` files; each
/// must have its published MD5, or (a re-compressed copy) the published SHA-256 of its
/// decompressed content ([`verify_published`]).
pub fn import_files_dataset(source: &Source, from: &Path, dir: &Path) -> anyhow::Result<()> {
    let Kind::Files { files, .. } = source.kind else {
        bail!("{} is not published as separate files", source.name);
    };
    if !from.is_dir() {
        bail!(
            "--from for {} is a folder holding {}",
            source.name,
            files.iter().map(|f| f.0).collect::<Vec<_>>().join(", ")
        );
    }
    let mut parts: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut on_interrupt = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        for (name, md5) in files {
            let src = from.join(name);
            let accepted =
                verify_published(&src, md5, super::sources::content_sha256(source.name, name))
                    .with_context(|| {
                        format!("{} is missing or not the published file", src.display())
                    })?;
            println!("{name}: {accepted}");
            let part = dir.join(format!("{name}.part"));
            // a local copy is not resumed: an interrupted one is removed
            on_interrupt.push(crate::cleanup::remove_file_on_interrupt(&part));
            parts.push((part.clone(), dir.join(name)));
            fs::copy(&src, &part)
                .with_context(|| format!("cannot copy {} to {}", src.display(), part.display()))?;
        }
        check_files_parts(source, &parts)?;
        for (part, final_path) in &parts {
            fs::rename(part, final_path)?;
        }
        Ok(())
    })();
    if result.is_err() {
        for (part, _) in &parts {
            fs::remove_file(part).ok();
        }
    }
    result?;
    println!("{} is ready at {}", source.name, dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(bytes: &[u8], level: u32) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(bytes).expect("gzip");
        e.finish().expect("gzip")
    }

    fn hex(d: impl AsRef<[u8]>) -> String {
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Issue 17 item 19: a re-compressed copy (same IDX bytes, other gzip bytes) is accepted
    /// by the published hash of its decompressed content, and the result says which check
    /// passed; without a recorded content hash it is refused, saying so.
    #[test]
    fn a_recompressed_copy_is_accepted_by_its_decompressed_content() {
        use md5::Digest as _;
        let dir = tempfile::tempdir().expect("tempdir");
        // an IDX label file: magic 0x00000801, 5 items, labels
        let idx: Vec<u8> = [&[0u8, 0, 8, 1, 0, 0, 0, 5][..], &[3, 1, 4, 1, 5]].concat();
        let (published, repacked) = (gzip(&idx, 1), gzip(&idx, 9));
        let (published, repacked) = if published == repacked {
            (published, [&repacked[..4], &[0x08][..], &repacked[5..]].concat())
        } else {
            (published, repacked)
        };
        assert_ne!(published, repacked, "the two gzip files differ");
        let gz_md5 = hex(md5::Md5::digest(&published));
        let content = hex(sha2::Sha256::digest(&idx));
        let (a, b) = (dir.path().join("published.gz"), dir.path().join("repacked.gz"));
        fs::write(&a, &published).expect("write");
        fs::write(&b, &repacked).expect("write");
        assert_eq!(verify_published(&a, &gz_md5, None).expect("published"), Accepted::GzipMd5);
        assert_eq!(
            verify_published(&b, &gz_md5, Some(&content)).expect("re-compressed"),
            Accepted::ContentSha256
        );
        assert!(Accepted::ContentSha256.to_string().contains("decompressed content matches"));
        let e = verify_published(&b, &gz_md5, None).expect_err("no content hash").to_string();
        assert!(e.contains("no sha-256 of the decompressed content is recorded"), "{e}");
        // other content, re-compressed: refused, naming both checks
        let other = gzip(&[&idx[..12], &[9]].concat(), 9);
        fs::write(&b, &other).expect("write");
        let e = verify_published(&b, &gz_md5, Some(&content)).expect_err("other content");
        let e = e.to_string();
        assert!(e.contains("gzip md5") && e.contains("decompressed sha-256"), "{e}");
        // not gzip at all
        fs::write(&b, b"not gzip").expect("write");
        assert!(verify_published(&b, &gz_md5, Some(&content)).is_err());
    }
}
