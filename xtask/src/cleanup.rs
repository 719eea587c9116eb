//! Temporaries that must not outlive the run: removed on Ctrl-C, SIGTERM or SIGHUP by one
//! handler (the `ctrlc` crate's thread, so removal is ordinary code, not signal-handler code),
//! and swept at the next start when the process that made them died without cleaning up
//! (SIGKILL, power loss). Their names carry the owner's PID ([`owned_prefix`]), so a sweep only
//! ever removes the temporaries of dead processes.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What to remove on interruption.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Removal {
    /// A directory and everything in it (a staging or temporary report directory).
    Tree(PathBuf),
    /// A file, only when empty (a partial download with no byte yet; one with bytes is kept so
    /// the next run resumes it).
    EmptyFile(PathBuf),
    /// A directory, only when empty (a data directory this run created).
    EmptyDir(PathBuf),
    /// A file (the data directory's lock file, which names this process).
    File(PathBuf),
}

/// Registered removals, in registration order, by id.
static PENDING: Mutex<Vec<(u64, Removal)>> = Mutex::new(Vec::new());
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A registered removal, withdrawn when dropped (the run then owns the path again: it
/// renamed the directory into place, or removed it itself).
#[derive(Debug)]
#[must_use = "the removal is withdrawn when this is dropped"]
pub struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut p) = PENDING.lock() {
            p.retain(|(id, _)| *id != self.0);
        }
    }
}

fn register(r: Removal) -> Registered {
    let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Ok(mut p) = PENDING.lock() {
        p.push((id, r));
    }
    Registered(id)
}

/// Removes the directory `path` and its contents if the run is interrupted.
pub fn remove_tree_on_interrupt(path: &Path) -> Registered {
    register(Removal::Tree(path.to_path_buf()))
}

/// Removes the file `path` if the run is interrupted while it is empty.
pub fn remove_empty_file_on_interrupt(path: &Path) -> Registered {
    register(Removal::EmptyFile(path.to_path_buf()))
}

/// Removes the file `path` if the run is interrupted.
pub fn remove_file_on_interrupt(path: &Path) -> Registered {
    register(Removal::File(path.to_path_buf()))
}

/// Removes the directory `path` if the run is interrupted while it is empty.
pub fn remove_empty_dir_on_interrupt(path: &Path) -> Registered {
    register(Removal::EmptyDir(path.to_path_buf()))
}

/// Runs the registered removals: trees and files first, then empty directories, the most
/// recently registered first (a data directory after the dataset directory inside it).
fn remove_pending() -> Vec<PathBuf> {
    remove_only(|_| true)
}

/// [`remove_pending`] restricted to the registrations `keep` selects (by id).
fn remove_only(keep: impl Fn(u64) -> bool) -> Vec<PathBuf> {
    let pending: Vec<Removal> = match PENDING.lock() {
        Ok(p) => p.iter().rev().filter(|(id, _)| keep(*id)).map(|(_, r)| r.clone()).collect(),
        Err(_) => return Vec::new(),
    };
    let mut removed = Vec::new();
    for r in pending.iter() {
        match r {
            Removal::Tree(p) if std::fs::remove_dir_all(p).is_ok() => removed.push(p.clone()),
            Removal::EmptyFile(p)
                if std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() == 0)
                    && std::fs::remove_file(p).is_ok() =>
            {
                removed.push(p.clone())
            }
            Removal::File(p) if std::fs::remove_file(p).is_ok() => removed.push(p.clone()),
            _ => {}
        }
    }
    for r in pending.iter() {
        if let Removal::EmptyDir(p) = r
            && std::fs::remove_dir(p).is_ok()
        {
            removed.push(p.clone());
        }
    }
    removed
}

/// Installs the handler of SIGINT, SIGTERM and SIGHUP: remove the registered temporaries,
/// say so, and exit with status 130 (the shell's code for an interrupted command). Called once
/// at start; a second call is a no-op.
pub fn install_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let result = ctrlc::set_handler(|| {
            let removed = remove_pending();
            let names: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
            if names.is_empty() {
                eprintln!("interrupted");
            } else {
                eprintln!("interrupted; removed {}", names.join(", "));
            }
            std::process::exit(130);
        });
        if let Err(e) = result {
            tracing::warn!("cannot install the interrupt handler ({e}); an interrupted run may leave temporaries until the next run");
        }
    });
}

/// The name prefix of a temporary owned by this process: `<base><pid>-` (a random suffix
/// follows), so [`sweep_stale`] can tell whose it is.
pub fn owned_prefix(base: &str) -> String {
    format!("{base}{}-", std::process::id())
}

/// Whether process `pid` exists (it may belong to another user).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists and
    // may be signalled. No memory is passed.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The owner PID in a temporary's name `<base><pid>-<suffix>`, if `name` has that form.
fn owner_of(name: &str, base: &str) -> Option<u32> {
    let rest = name.strip_prefix(base)?;
    let (pid, suffix) = rest.split_once('-')?;
    if suffix.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Removes the hidden entries of `dir` named `.<anything><marker><pid>-<suffix>` whose process
/// is dead (for example every `.<out>.tmp-<pid>-*` report directory of a killed experiment,
/// whatever its `--out` name); returns what it removed.
pub fn sweep_stale_marked(dir: &Path, marker: &str) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return removed };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            continue;
        }
        let Some(at) = name.rfind(marker) else { continue };
        let base = format!("{}{marker}", &name[..at]);
        removed.extend(sweep_one(&e, &name, &base));
    }
    removed
}

/// Removes `e` (named `name`) if it is `<base><pid>-<suffix>` and process `pid` is dead.
fn sweep_one(e: &std::fs::DirEntry, name: &str, base: &str) -> Option<PathBuf> {
    let pid = owner_of(name, base)?;
    if pid_alive(pid) {
        return None;
    }
    let path = e.path();
    let ok = match e.file_type() {
        Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path).is_ok(),
        Ok(_) => std::fs::remove_file(&path).is_ok(),
        Err(_) => false,
    };
    ok.then(|| {
        tracing::info!(
            "removed {} left by a run that no longer exists (pid {pid})",
            path.display()
        );
        path
    })
}

/// Removes the entries of `dir` named `<base><pid>-*` whose process is dead (temporaries of
/// a killed run); returns what it removed. Entries of live processes, and names of another
/// form, are left alone.
pub fn sweep_stale(dir: &Path, base: &str) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return removed };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        removed.extend(sweep_one(&e, &name, base));
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PID that surely belongs to no process: a child that has exited and been reaped.
    pub(crate) fn dead_pid() -> u32 {
        let mut c = std::process::Command::new("true").spawn().expect("spawn true");
        let pid = c.id();
        c.wait().expect("wait");
        pid
    }

    #[test]
    fn owner_pids_are_parsed_from_the_name_only_in_the_exact_form() {
        assert_eq!(owner_of(".run.tmp-123-abc", ".run.tmp-"), Some(123));
        assert_eq!(owner_of(".run.tmp-abc", ".run.tmp-"), None, "an old name without pid");
        assert_eq!(owner_of(".run.tmp-123-", ".run.tmp-"), None);
        assert_eq!(owner_of(".run.tmp-12x-abc", ".run.tmp-"), None);
        assert_eq!(owner_of("run.tmp-1-a", ".run.tmp-"), None);
    }

    /// Issue 17 item 8: the sweep removes the temporaries of dead processes only.
    #[test]
    fn sweep_removes_dead_owners_temporaries_and_keeps_live_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = ".fetch-cifar-10-";
        let dead = dir.path().join(format!("{base}{}-x1", dead_pid()));
        let live = dir.path().join(format!("{}x2", owned_prefix(base)));
        let legacy = dir.path().join(format!("{base}x3"));
        for d in [&dead, &live, &legacy] {
            std::fs::create_dir(d).expect("mkdir");
            std::fs::write(d.join("data_batch_1.bin"), b"partial").expect("write");
        }
        assert!(pid_alive(std::process::id()));
        assert_eq!(sweep_stale(dir.path(), base), vec![dead.clone()]);
        assert!(!dead.exists() && live.exists() && legacy.exists());
    }

    #[test]
    fn marked_sweep_finds_report_temporaries_of_any_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dead = dead_pid();
        let a = dir.path().join(format!(".2026-12-04_11-00-00.tmp-{dead}-aB3"));
        let b = dir.path().join(format!(".my.run.tmp-{dead}-x"));
        let live = dir.path().join(format!(".r.tmp-{}-y", std::process::id()));
        let visible = dir.path().join(format!("r.tmp-{dead}-z"));
        for d in [&a, &b, &live, &visible] {
            std::fs::create_dir(d).expect("mkdir");
        }
        let mut removed = sweep_stale_marked(dir.path(), ".tmp-");
        removed.sort();
        let mut want = vec![a.clone(), b.clone()];
        want.sort();
        assert_eq!(removed, want);
        assert!(live.exists() && visible.exists());
    }

    #[test]
    fn registered_removals_run_in_order_and_withdraw_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let ds = data.join("cifar-10");
        let stage = ds.join(".fetch-x");
        std::fs::create_dir_all(&stage).expect("mkdir");
        std::fs::write(stage.join("f"), b"x").expect("write");
        let empty_part = ds.join("a.part");
        std::fs::write(&empty_part, b"").expect("write");
        let kept = dir.path().join("kept");
        std::fs::create_dir(&kept).expect("mkdir");
        let _d = remove_empty_dir_on_interrupt(&data);
        let _c = remove_empty_dir_on_interrupt(&ds);
        let _p = remove_empty_file_on_interrupt(&empty_part);
        let _s = remove_tree_on_interrupt(&stage);
        drop(remove_tree_on_interrupt(&kept));
        // only this test's registrations (other tests of the binary may register meanwhile)
        let ids = [_d.0, _c.0, _p.0, _s.0];
        let removed = remove_only(|id| ids.contains(&id));
        assert!(!data.exists(), "removed: {removed:?}");
        assert!(kept.exists(), "a withdrawn removal is not run");
    }
}
