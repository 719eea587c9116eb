//! Logs and progress bars on one stderr: `tracing` events are written through the shared
//! [`indicatif::MultiProgress`] ([`bars`]), which hides the bars while a line is printed and
//! redraws them below it, so bars stay intact; colour (ANSI codes) only when stderr is a
//! terminal and `NO_COLOR` is unset or empty (<https://no-color.org>).

use std::io::{IsTerminal, Write};
use std::sync::LazyLock;

use indicatif::MultiProgress;

static BARS: LazyLock<MultiProgress> = LazyLock::new(MultiProgress::new);

/// The one progress display of the process: add every bar to it.
pub fn bars() -> &'static MultiProgress {
    &BARS
}

/// Whether stderr gets colour: a terminal, and `NO_COLOR` unset or empty.
pub fn colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// A log line's writer: buffers the formatted event, prints it with the bars suspended.
struct LineWriter(Vec<u8>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.0.is_empty() {
            let line = std::mem::take(&mut self.0);
            bars().suspend(|| std::io::stderr().write_all(&line))?;
        }
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Installs the global subscriber: `info` by default (each command's few milestones), `-v`
/// debug (per-fold and per-setting details), `-vv` trace; `RUST_LOG` overrides.
pub fn init(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR").as_deref());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(|| LineWriter(Vec::new()))
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::colour;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
        assert!(!colour(false, Some(OsStr::new("1"))));
    }
}
