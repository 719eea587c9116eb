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

/// Reads a whole file, naming it on error.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|source| ModelError::Io { path: path.to_path_buf(), source })
}

/// SHA-256 of `bytes`, lowercase hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
