//! Progress of one phase: an indicatif bar with ETA on a terminal, plain `[phase] i/n ...`
//! lines (with the same ETA) when stderr is not a terminal (CI logs, pipes). Bars live in the
//! process's one [`crate::logs::bars`] display, so log lines print above them, not over them.

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// A phase's progress over `total` steps.
pub struct Progress {
    phase: &'static str,
    total: u64,
    done: u64,
    start: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts a phase of `total` steps.
    pub fn new(phase: &'static str, total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = crate::logs::bars().add(ProgressBar::new(total));
            let style = ProgressStyle::with_template(
                "{prefix:>8} [{bar:30.cyan/blue}] {pos}/{len} {elapsed_precise} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(phase);
            bar
        });
        if bar.is_none() {
            eprintln!("[{phase}] 0/{total} started");
        }
        Self { phase, total, done: 0, start: Instant::now(), bar }
    }

    /// The phase has `n` more steps than announced (a search that extended its grid).
    pub fn grow(&mut self, n: u64) {
        self.total += n;
        if let Some(bar) = &self.bar {
            bar.inc_length(n);
        }
    }

    /// One step done, described by `what`.
    pub fn step(&mut self, what: &str) {
        self.done += 1;
        match &self.bar {
            Some(bar) => {
                bar.set_message(what.to_string());
                bar.inc(1);
            }
            None => {
                let elapsed = self.start.elapsed().as_secs_f64();
                let eta = elapsed / self.done as f64 * self.total.saturating_sub(self.done) as f64;
                eprintln!(
                    "[{}] {}/{} {what} ({elapsed:.1} s, eta {eta:.0} s)",
                    self.phase, self.done, self.total
                );
            }
        }
    }

    /// Ends the phase; returns its seconds.
    pub fn finish(self) -> f64 {
        let s = self.start.elapsed().as_secs_f64();
        match &self.bar {
            Some(bar) => bar.finish_with_message(format!("done in {s:.1} s")),
            None => eprintln!("[{}] done in {s:.1} s", self.phase),
        }
        s
    }
}
