//! HTTP download into `<target>.part` with a progress bar, resuming an interrupted transfer
//! with `Range: bytes=N-` when the server answers 206, else starting over cleanly.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use imgclass_data::checksum::{Algorithm, Hasher};

/// Attempts per download within one run (each resumes where the last one stopped).
pub const MAX_ATTEMPTS: u32 = 3;

/// Why a download stopped, classified for the user-facing hint.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The host could not be reached (DNS, refused, TLS, timeout before any answer).
    #[error("could not reach {url}: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What the HTTP client said.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("the server answered HTTP {status} for {url}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The transfer broke off repeatedly; the partial file is kept for a later resume.
    #[error(
        "download of {url} interrupted after {have} of {total} bytes ({reason}); the partial file {part} is kept"
    )]
    Interrupted {
        /// The URL.
        url: String,
        /// Bytes on disk.
        have: u64,
        /// Bytes expected ("?" when unknown).
        total: String,
        /// The last error.
        reason: String,
        /// The kept partial file.
        part: String,
    },
    /// Writing the partial file failed (disk full, permissions).
    #[error("cannot write {part}: {source}")]
    Write {
        /// The partial file.
        part: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// A finished download: its size and its digest.
#[derive(Debug)]
pub struct Downloaded {
    /// Bytes in the partial file.
    pub len: u64,
    /// Lowercase hex digest of the whole file, computed while downloading.
    pub digest: String,
}

/// Downloads `url` into `part`, appending to an existing partial file when the server
/// supports ranges, and hashes it with `algorithm` on the way (an existing prefix is hashed
/// from disk once). Creates `part` only once the server has answered with a body.
pub fn download(url: &str, part: &Path, algorithm: Algorithm) -> Result<Downloaded, DownloadError> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(20))
        .timeout_read(Duration::from_secs(60))
        .user_agent(concat!("imgclass-xtask/", env!("CARGO_PKG_VERSION")))
        .build();
    let part_name = part.display().to_string();
    let mut last_reason = String::new();
    let mut total: Option<u64> = None;
    // digest of the bytes [0, hasher.len()) of `part`
    let mut hasher = Hasher::new(algorithm);
    for attempt in 1..=MAX_ATTEMPTS {
        let have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let mut req = agent.get(url).set("Accept-Encoding", "identity");
        if have > 0 {
            tracing::info!("resuming {url} from byte {have}");
            req = req.set("Range", &format!("bytes={have}-"));
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(416, _)) if have > 0 => {
                // The partial file already holds the whole body: the checksum decides.
                tracing::info!("{part_name} is already complete ({have} bytes)");
                let digest = hash_prefix(part, have, Hasher::new(algorithm))
                    .map_err(|source| DownloadError::Write { part: part_name.clone(), source })?
                    .finalize_hex();
                return Ok(Downloaded { len: have, digest });
            }
            Err(ureq::Error::Status(status, _)) => {
                return Err(DownloadError::Status { url: url.to_string(), status });
            }
            Err(ureq::Error::Transport(t)) => {
                let reason = match t.message() {
                    Some(m) => format!("{}: {m}", t.kind()),
                    None => t.kind().to_string(),
                };
                let unreachable = matches!(
                    t.kind(),
                    ureq::ErrorKind::Dns
                        | ureq::ErrorKind::ConnectionFailed
                        | ureq::ErrorKind::InvalidUrl
                        | ureq::ErrorKind::UnknownScheme
                        | ureq::ErrorKind::ProxyConnect
                );
                if unreachable || attempt == MAX_ATTEMPTS {
                    if have > 0 {
                        return Err(interrupted(url, have, total, reason, &part_name));
                    }
                    return Err(DownloadError::Unreachable { url: url.to_string(), reason });
                }
                tracing::warn!("attempt {attempt} of {MAX_ATTEMPTS} failed: {reason}; retrying");
                last_reason = reason;
                std::thread::sleep(backoff(attempt));
                continue;
            }
        };
        let length: Option<u64> = resp.header("Content-Length").and_then(|v| v.trim().parse().ok());
        let (mut file, start) = match resp.status() {
            206 => {
                let start = resp
                    .header("Content-Range")
                    .and_then(parse_content_range_start)
                    .unwrap_or(u64::MAX);
                if start != have {
                    tracing::warn!(
                        "server resumed at byte {start}, not {have}; starting over from byte 0"
                    );
                    // Drop this response and ask for everything.
                    fs::remove_file(part).ok();
                    std::thread::sleep(backoff(attempt));
                    continue;
                }
                let f = OpenOptions::new()
                    .append(true)
                    .open(part)
                    .map_err(|source| DownloadError::Write { part: part_name.clone(), source })?;
                (f, have)
            }
            _ => {
                if have > 0 {
                    tracing::info!(
                        "the server does not resume (HTTP {}); starting over from byte 0",
                        resp.status()
                    );
                }
                let mut f = File::create(part)
                    .map_err(|source| DownloadError::Write { part: part_name.clone(), source })?;
                f.seek(SeekFrom::Start(0))
                    .map_err(|source| DownloadError::Write { part: part_name.clone(), source })?;
                (f, 0)
            }
        };
        total = length.map(|l| l + start);
        if hasher.len() != start {
            hasher = hash_prefix(part, start, Hasher::new(algorithm))
                .map_err(|source| DownloadError::Write { part: part_name.clone(), source })?;
        }
        let mut reader = resp.into_reader();
        match copy_with_progress(&mut reader, &mut file, &mut hasher, start, total, url) {
            Ok(n) => {
                file.sync_all()
                    .map_err(|source| DownloadError::Write { part: part_name.clone(), source })?;
                let have = start + n;
                match total {
                    Some(t) if have < t => {
                        last_reason = format!("connection closed after {have} of {t} bytes");
                    }
                    _ => return Ok(Downloaded { len: have, digest: hasher.finalize_hex() }),
                }
            }
            Err(CopyError::Write(source)) => {
                return Err(DownloadError::Write { part: part_name, source });
            }
            Err(CopyError::Read(e)) => last_reason = e.to_string(),
        }
        let have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        if attempt < MAX_ATTEMPTS {
            tracing::warn!(
                "attempt {attempt} of {MAX_ATTEMPTS}: {last_reason}; resuming from byte {have}"
            );
            std::thread::sleep(backoff(attempt));
        }
    }
    let have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    Err(interrupted(url, have, total, last_reason, &part_name))
}

fn interrupted(
    url: &str,
    have: u64,
    total: Option<u64>,
    reason: String,
    part: &str,
) -> DownloadError {
    DownloadError::Interrupted {
        url: url.to_string(),
        have,
        total: total.map_or_else(|| "?".to_string(), |t| t.to_string()),
        reason,
        part: part.to_string(),
    }
}

/// Hashes the first `len` bytes of `path` into `hasher`.
fn hash_prefix(path: &Path, len: u64, mut hasher: Hasher) -> io::Result<Hasher> {
    let n = hasher.update_reader(File::open(path)?.take(len))?;
    if n != len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "partial file shrank"));
    }
    Ok(hasher)
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(300 * u64::from(attempt))
}

/// `bytes START-END/TOTAL` -> START.
fn parse_content_range_start(v: &str) -> Option<u64> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (start, _) = rest.split_once('-')?;
    start.trim().parse().ok()
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

/// Copies the body into the file, showing progress: an indicatif bar (bytes, rate, ETA) on a
/// terminal, else a log line every 10% (or every 64 MiB when the size is unknown).
fn copy_with_progress(
    reader: &mut impl Read,
    file: &mut File,
    hasher: &mut Hasher,
    start: u64,
    total: Option<u64>,
    url: &str,
) -> Result<u64, CopyError> {
    let bar = if io::stderr().is_terminal() {
        // through the one progress display, so log lines print above the bar, not over it
        let bar = crate::logs::bars().add(match total {
            Some(t) => indicatif::ProgressBar::new(t),
            None => indicatif::ProgressBar::new_spinner(),
        });
        let style = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(super::sources::file_name_of(url).unwrap_or("download").to_string());
        bar.set_position(start);
        Some(bar)
    } else {
        None
    };
    let started = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    let step = total.map_or(64 << 20, |t| (t / 10).max(1));
    let mut next_log = start + step;
    let result = loop {
        let got = match reader.read(&mut buf) {
            Ok(0) => break Ok(n),
            Ok(g) => g,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(CopyError::Read(e)),
        };
        if let Err(e) = file.write_all(&buf[..got]) {
            break Err(CopyError::Write(e));
        }
        hasher.update(&buf[..got]);
        n += got as u64;
        let pos = start + n;
        if let Some(bar) = &bar {
            bar.set_position(pos);
        } else if pos >= next_log {
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            let rate = n as f64 / secs / 1e6;
            match total {
                Some(t) => {
                    let eta = (t - pos.min(t)) as f64 / (rate * 1e6).max(1.0);
                    tracing::info!(
                        "{} of {} ({:.0}%), {rate:.1} MB/s, eta {eta:.0} s",
                        human(pos),
                        human(t),
                        100.0 * pos as f64 / t as f64
                    );
                }
                None => tracing::info!("{}, {rate:.1} MB/s", human(pos)),
            }
            next_log = pos + step;
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result
}

/// `n` bytes as B, KB or MB (decimal units, like the rate).
fn human(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} KB", n as f64 / 1e3),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}

/// Removes `part` if it exists and is empty (an attempt that wrote nothing).
pub fn remove_if_empty(part: &Path) {
    if fs::metadata(part).map(|m| m.len() == 0).unwrap_or(false) {
        fs::remove_file(part).ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_start() {
        assert_eq!(parse_content_range_start("bytes 100-999/1000"), Some(100));
        assert_eq!(parse_content_range_start("bytes 0-0/1"), Some(0));
        assert_eq!(parse_content_range_start("bytes */1000"), None);
    }
}
