//! Safe streaming extraction of `.tar.gz` archives: regular files and directories only,
//! every path checked before anything is written.
//!
//! [`extract_tar_gz`] decompresses (flate2) and unpacks (tar) in one pass, so a 170 MB
//! archive never sits in memory. It rejects, with an [`ArchiveError`] naming the entry:
//! an absolute path (or a Windows drive/UNC prefix), any `..` component, a symbolic link, a
//! hard link, a character or block device, a FIFO, and any other special entry. The
//! destination directory is created by the call and must not exist beforehand; on any error
//! it is removed again with everything written into it, so a failed extraction leaves nothing
//! behind and never writes outside `dest`.
//!
//! ```
//! use imgclass_data::archive::extract_tar_gz;
//!
//! // build a one-file archive in memory
//! let mut tar = tar::Builder::new(Vec::new());
//! let mut header = tar::Header::new_gnu();
//! header.set_size(5);
//! header.set_mode(0o644);
//! header.set_cksum();
//! tar.append_data(&mut header, "dir/hello.txt", &b"hello"[..])?;
//! let tar = tar.into_inner()?;
//! let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
//! std::io::Write::write_all(&mut gz, &tar)?;
//! let archive = gz.finish()?;
//!
//! let tmp = std::env::temp_dir().join(format!("imgclass-archive-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&tmp)?;
//! let dest = tmp.join("out");
//! let summary = extract_tar_gz(&archive[..], &dest)?;
//! assert_eq!(summary.files, 1);
//! assert_eq!(summary.bytes, 5);
//! assert_eq!(std::fs::read(dest.join("dir/hello.txt"))?, b"hello");
//! std::fs::remove_dir_all(&tmp)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use tar::EntryType;

/// Why an archive could not be extracted. Every variant about an entry names it.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The destination already exists (extraction always creates a fresh directory).
    #[error("destination {path} already exists", path = path.display())]
    DestinationExists {
        /// The destination directory.
        path: PathBuf,
    },
    /// An entry has an absolute path, a drive or UNC prefix, or a `..` component.
    #[error("unsafe archive entry {entry:?}: {reason}")]
    UnsafePath {
        /// The entry's path as stored in the archive.
        entry: String,
        /// Why it is unsafe ("absolute path", "parent directory component").
        reason: &'static str,
    },
    /// An entry is a symbolic or hard link.
    #[error("unsafe archive entry {entry:?}: {kind} to {target:?} (links are not extracted)")]
    Link {
        /// The entry's path as stored in the archive.
        entry: String,
        /// "symbolic link" or "hard link".
        kind: &'static str,
        /// The link target as stored in the archive.
        target: String,
    },
    /// An entry is a device, a FIFO or another special file.
    #[error(
        "unsafe archive entry {entry:?}: {kind} (only regular files and directories are extracted)"
    )]
    Special {
        /// The entry's path as stored in the archive.
        entry: String,
        /// The kind of entry ("character device", "block device", "fifo", ...).
        kind: &'static str,
    },
    /// Two entries write the same file, or a file where a directory is needed.
    #[error("archive entry {entry:?} collides with an earlier entry")]
    Duplicate {
        /// The entry's path as stored in the archive.
        entry: String,
    },
    /// The compressed stream or the tar structure is corrupt or truncated.
    #[error("corrupt or truncated archive{}: {source}", at_entry(entry))]
    Read {
        /// The entry being read when it failed, if any.
        entry: Option<String>,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing to the destination failed (disk full, permission denied, ...).
    #[error("cannot write {path}{}: {source}", at_entry(entry), path = path.display())]
    Write {
        /// The entry being written, if any.
        entry: Option<String>,
        /// The file or directory being written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

fn at_entry(entry: &Option<String>) -> String {
    match entry {
        Some(e) => format!(" at entry {e:?}"),
        None => String::new(),
    }
}

impl ArchiveError {
    /// True when the error is an unsafe entry (path, link or special file) rather than a
    /// corrupt stream or an I/O failure.
    pub fn is_unsafe_entry(&self) -> bool {
        matches!(
            self,
            ArchiveError::UnsafePath { .. }
                | ArchiveError::Link { .. }
                | ArchiveError::Special { .. }
        )
    }

    /// The underlying I/O error, if any (to tell "disk full" from a corrupt archive).
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            ArchiveError::Read { source, .. } | ArchiveError::Write { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What an extraction wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtractSummary {
    /// Regular files written.
    pub files: usize,
    /// Directories created (not counting `dest` itself).
    pub dirs: usize,
    /// Bytes written into regular files.
    pub bytes: u64,
}

/// Decompresses a gzip stream and unpacks its tar archive into `dest`, which this call
/// creates (its parent must exist) and which must not exist yet.
///
/// Only regular files and directories are written; see the module docs for what is rejected.
/// On any error `dest` is removed with everything written into it.
pub fn extract_tar_gz<R: Read>(reader: R, dest: &Path) -> Result<ExtractSummary, ArchiveError> {
    extract_tar(flate2::read::GzDecoder::new(reader), dest)
}

/// Unpacks an uncompressed tar stream into `dest`, with the same checks and clean-up as
/// [`extract_tar_gz`].
pub fn extract_tar<R: Read>(reader: R, dest: &Path) -> Result<ExtractSummary, ArchiveError> {
    match fs::symlink_metadata(dest) {
        Ok(_) => return Err(ArchiveError::DestinationExists { path: dest.to_path_buf() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(ArchiveError::Write { entry: None, path: dest.into(), source }),
    }
    fs::create_dir(dest).map_err(|source| ArchiveError::Write {
        entry: None,
        path: dest.into(),
        source,
    })?;
    let result = unpack(reader, dest);
    if result.is_err()
        && let Err(e) = fs::remove_dir_all(dest)
    {
        tracing::warn!("could not remove {} after a failed extraction: {e}", dest.display());
    }
    result
}

fn unpack<R: Read>(reader: R, dest: &Path) -> Result<ExtractSummary, ArchiveError> {
    let mut archive = tar::Archive::new(reader);
    let mut summary = ExtractSummary::default();
    let entries = archive.entries().map_err(|source| ArchiveError::Read { entry: None, source })?;
    let mut last: Option<String> = None;
    for entry in entries {
        let mut entry =
            entry.map_err(|source| ArchiveError::Read { entry: last.clone(), source })?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        last = Some(raw.clone());
        // Metadata-only records (pax global headers) carry no file.
        if kind == EntryType::XGlobalHeader {
            continue;
        }
        let rel = safe_relative_path(&raw)?;
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::Directory => {}
            EntryType::Symlink | EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let kind = if kind == EntryType::Symlink { "symbolic link" } else { "hard link" };
                return Err(ArchiveError::Link { entry: raw, kind, target });
            }
            EntryType::Char => {
                return Err(ArchiveError::Special { entry: raw, kind: "character device" });
            }
            EntryType::Block => {
                return Err(ArchiveError::Special { entry: raw, kind: "block device" });
            }
            EntryType::Fifo => return Err(ArchiveError::Special { entry: raw, kind: "fifo" }),
            _ => return Err(ArchiveError::Special { entry: raw, kind: "special entry" }),
        }
        let Some(rel) = rel else {
            // "." or "./": the destination itself
            continue;
        };
        let out = dest.join(&rel);
        if kind == EntryType::Directory {
            match fs::symlink_metadata(&out) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(ArchiveError::Duplicate { entry: raw }),
                Err(_) => {
                    create_dirs(dest, &rel, &raw, &mut summary)?;
                }
            }
            continue;
        }
        if let Some(parent) = rel.parent() {
            create_dirs(dest, parent, &raw, &mut summary)?;
        }
        let mut file = match fs::OpenOptions::new().write(true).create_new(true).open(&out) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(ArchiveError::Duplicate { entry: raw });
            }
            Err(source) => return Err(ArchiveError::Write { entry: Some(raw), path: out, source }),
        };
        let n = copy_entry(&mut entry, &mut file, &raw, &out)?;
        file.sync_data().map_err(|source| ArchiveError::Write {
            entry: Some(raw.clone()),
            path: out.clone(),
            source,
        })?;
        summary.files += 1;
        summary.bytes += n;
    }
    // The tar reader stops at the end-of-archive marker; read the rest of the stream so the
    // gzip decoder checks its trailer (CRC-32 and length): a cut or corrupt tail is an error.
    io::copy(&mut archive.into_inner(), &mut io::sink())
        .map_err(|source| ArchiveError::Read { entry: None, source })?;
    Ok(summary)
}

/// Copies an entry's data, telling read errors (corrupt archive) from write errors (disk).
fn copy_entry<R: Read>(
    entry: &mut R,
    file: &mut fs::File,
    raw: &str,
    out: &Path,
) -> Result<u64, ArchiveError> {
    use std::io::Write;
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(ArchiveError::Read { entry: Some(raw.to_string()), source }),
        };
        file.write_all(&buf[..n]).map_err(|source| ArchiveError::Write {
            entry: Some(raw.to_string()),
            path: out.to_path_buf(),
            source,
        })?;
        total += n as u64;
    }
    Ok(total)
}

/// Creates `dest/rel` and its parents, refusing to pass through anything but directories.
fn create_dirs(
    dest: &Path,
    rel: &Path,
    raw: &str,
    summary: &mut ExtractSummary,
) -> Result<(), ArchiveError> {
    let mut cur = dest.to_path_buf();
    for comp in rel.components() {
        cur.push(comp);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(ArchiveError::Duplicate { entry: raw.to_string() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(|source| ArchiveError::Write {
                    entry: Some(raw.to_string()),
                    path: cur.clone(),
                    source,
                })?;
                summary.dirs += 1;
            }
            Err(source) => {
                return Err(ArchiveError::Write {
                    entry: Some(raw.to_string()),
                    path: cur,
                    source,
                });
            }
        }
    }
    Ok(())
}

/// The entry's path as a relative path of normal components, `None` for the archive root
/// (`.`), or an error for an absolute path, a prefix, or a `..` component.
fn safe_relative_path(raw: &str) -> Result<Option<PathBuf>, ArchiveError> {
    let unsafe_path = |reason| ArchiveError::UnsafePath { entry: raw.to_string(), reason };
    if raw.starts_with('/') || raw.starts_with('\\') {
        return Err(unsafe_path("absolute path"));
    }
    // Windows-style separators and drive letters are rejected on every platform.
    if raw.contains('\\') || raw.as_bytes().get(1) == Some(&b':') {
        return Err(unsafe_path("windows path"));
    }
    if raw.contains('\0') {
        return Err(unsafe_path("nul byte in path"));
    }
    let mut out = PathBuf::new();
    for comp in Path::new(raw).components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_path("parent directory component")),
            Component::RootDir | Component::Prefix(_) => return Err(unsafe_path("absolute path")),
        }
    }
    Ok(if out.as_os_str().is_empty() { None } else { Some(out) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_rules() {
        assert_eq!(safe_relative_path("a/b.bin").unwrap(), Some(PathBuf::from("a/b.bin")));
        assert_eq!(safe_relative_path("./a/./b").unwrap(), Some(PathBuf::from("a/b")));
        assert_eq!(safe_relative_path("./").unwrap(), None);
        for bad in ["/etc/passwd", "../x", "a/../../x", "a/..", "C:/x", "a\\..\\x", "\\x"] {
            assert!(
                matches!(safe_relative_path(bad), Err(ArchiveError::UnsafePath { .. })),
                "{bad} accepted"
            );
        }
    }
}
