//! The data directory's lock: one `fetch-data` at a time per data directory (two runs used to
//! delete each other's staging folders). An advisory `flock` on `<data-dir>/.fetch-data.lock`,
//! which holds the owner's PID so a second run can say whom it waits for; the file is removed
//! when the lock is released.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cleanup;

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = ".fetch-data.lock";

/// A held lock on a data directory; released (and its file removed) when dropped.
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    path: PathBuf,
    _on_interrupt: cleanup::Registered,
}

impl Drop for DataDirLock {
    fn drop(&mut self) {
        // remove while still holding the lock: a waiter then finds its inode unlinked and
        // retries on a fresh file (see `acquire`)
        std::fs::remove_file(&self.path).ok();
        self.file.unlock().ok();
    }
}

/// Takes the lock of `data_dir` (created if missing), waiting for another run that holds it
/// and saying so (with its PID).
pub fn acquire(data_dir: &Path) -> anyhow::Result<DataDirLock> {
    let path = data_dir.join(LOCK_FILE);
    let mut said = false;
    loop {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                if !said {
                    let holder = holder_of(&mut file);
                    eprintln!(
                        "another fetch-data ({}) is using {}; waiting for it to finish (lock file \
                         {})",
                        holder.map_or("pid unknown".to_string(), |p| format!("pid {p}")),
                        data_dir.display(),
                        path.display()
                    );
                    said = true;
                }
                file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        // the holder we waited for removed the file before unlocking: this inode is no longer
        // the lock file, so take the lock again on the current one
        if !same_file(&file, &path) {
            continue;
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .with_context(|| format!("cannot write {}", path.display()))?;
        let on_interrupt = cleanup::remove_file_on_interrupt(&path);
        return Ok(DataDirLock { file, path, _on_interrupt: on_interrupt });
    }
}

/// The PID written in a lock file, if it holds one.
fn holder_of(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.take(32).read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

/// Whether the open `file` is the file now at `path` (same device and inode).
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}
