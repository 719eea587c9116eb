//! Where things live: the workspace root and the data directory, one definition for every
//! command (`--data-dir`, else `$IMGCLASS_DATA_DIR`, else `<workspace>/datasets`).

use std::path::{Path, PathBuf};

/// The workspace root (the parent of the xtask crate).
pub fn workspace_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_path_buf()
}

/// `--data-dir`, else `$IMGCLASS_DATA_DIR` (when non-empty), else `<workspace root>/datasets`.
pub fn data_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(d) = flag {
        return d.to_path_buf();
    }
    match std::env::var_os("IMGCLASS_DATA_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => workspace_root().join("datasets"),
    }
}

/// The official CIFAR-10 binary layout under a data directory.
pub fn cifar10_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("cifar-10").join("cifar-10-batches-bin")
}
