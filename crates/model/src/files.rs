//! File handling: the `<name>.json` / `<name>.safetensors` pair a path stands for, atomic
//! writes (temp file + fsync + rename), and SHA-256 in hex.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::ModelError;

/// The metadata and tensor paths of a model: `path` may name the JSON file, the tensor file,
/// the stem without extension, or an existing directory (then `<dir>/<default_stem>.*`).
pub(crate) fn pair(path: &Path, default_stem: &str) -> (PathBuf, PathBuf) {
    let stem = if path.is_dir() {
        path.join(default_stem)
    } else {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json" | "safetensors") => path.with_extension(""),
            _ => path.to_path_buf(),
        }
    };
    (with_suffix(&stem, "json"), with_suffix(&stem, "safetensors"))
}

/// `stem` with `.ext` appended (not replacing a dot inside the stem's name).
pub(crate) fn with_suffix(stem: &Path, ext: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// The file name of `path` as a string (for the metadata's references).
pub(crate) fn file_name(path: &Path) -> Result<String, ModelError> {
    path.file_name().and_then(|n| n.to_str()).map(str::to_owned).ok_or_else(|| {
        ModelError::Invalid { path: path.to_path_buf(), reason: "not a UTF-8 file name".into() }
    })
}

/// A file referenced by the metadata at `json`: a bare file name in the same directory.
pub(crate) fn sibling(json: &Path, name: &str) -> Result<PathBuf, ModelError> {
    let bare = Path::new(name);
    if name.is_empty() || bare.components().count() != 1 || bare.file_name().is_none() {
        return Err(ModelError::Invalid {
            path: json.to_path_buf(),
            reason: format!("referenced file {name:?} is not a bare file name"),
        });
    }
    Ok(json.parent().unwrap_or(Path::new("")).join(bare))
}

/// Writes `bytes` to `path` atomically: a temp file in the same directory, fsync, rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
        move |source| ModelError::Io { path: path.to_path_buf(), source }
    }
    let tmp = with_suffix(path, &format!("tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Largest metadata JSON read (a model's metadata is a few kilobytes; the class names of a
/// 100,000-class model would still fit).
pub(crate) const MAX_JSON_BYTES: u64 = 64 << 20;

/// The size of `path`, refusing anything but a regular file (after following symlinks): a
/// FIFO would block the reader, a device such as `/dev/zero` would never end. Checked before
/// the file is opened.
pub(crate) fn regular_file_len(path: &Path) -> Result<u64, ModelError> {
    let md = std::fs::metadata(path)
        .map_err(|source| ModelError::Io { path: path.to_path_buf(), source })?;
    if !md.is_file() {
        return Err(ModelError::NotAFile { path: path.to_path_buf() });
    }
    Ok(md.len())
}

/// Reads exactly `len` bytes of a regular file whose size was checked to be `len` (see
/// [`regular_file_len`]); a file that changed size meanwhile is a size error, never a larger
/// allocation than `len`.
pub(crate) fn read_exact_len(path: &Path, len: u64) -> Result<Vec<u8>, ModelError> {
    use std::io::Read;
    let io = |source| ModelError::Io { path: path.to_path_buf(), source };
    let size = |found: u64| ModelError::Checksum {
        path: path.to_path_buf(),
        what: "size",
        expected: len.to_string(),
        found: found.to_string(),
    };
    let n = usize::try_from(len).map_err(|_| size(len))?;
    let f = std::fs::File::open(path).map_err(io)?;
    let mut buf = Vec::with_capacity(n);
    // one byte more than expected tells a file that grew since it was measured
    f.take(len + 1).read_to_end(&mut buf).map_err(io)?;
    if buf.len() != n {
        return Err(size(buf.len() as u64));
    }
    Ok(buf)
}

/// Reads a regular file of at most `max` bytes, naming it on error.
pub(crate) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ModelError> {
    let len = regular_file_len(path)?;
    if len > max {
        return Err(ModelError::TooLarge { path: path.to_path_buf(), size: len, max });
    }
    read_exact_len(path, len)
}

/// SHA-256 of `bytes`, lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
