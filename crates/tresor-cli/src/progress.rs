//! Progress of a run over many files, on stderr: on a terminal an
//! indicatif bar with the total, percentage, rate and ETA; otherwise (a
//! log file, a batch job) one line every few seconds, so a long run shows
//! it is alive without flooding the log.

use std::{
    cell::{Cell, RefCell},
    time::{Duration, Instant},
};

use anyhow::Result;

/// How often a line is written when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    what: String,
    total: Option<u64>,
    bar: indicatif::ProgressBar,
    start: Instant,
    last_line: Cell<Instant>,
    files: Cell<u64>,
    /// Ciphertext bytes re-keyed so far (shown for big files).
    bytes: Cell<u64>,
    current: RefCell<String>,
    /// Files changed and files failed, for runs that tally with `tally`.
    changed: Cell<u64>,
    failed: Cell<u64>,
}

impl Progress {
    /// A run named `what` over `total` files (if known); an empty `what`
    /// shows nothing (commands whose output is the listing itself).
    pub fn new(what: &str, total: Option<u64>) -> Progress {
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let bar = if !tty || what.is_empty() {
            indicatif::ProgressBar::hidden()
        } else {
            let (bar, template) = match total {
                Some(n) => (
                    indicatif::ProgressBar::new(n),
                    "{prefix} [{bar:25}] {pos}/{len} files ({percent}%), {rate}, ETA {eta} {wide_msg}",
                ),
                None => (indicatif::ProgressBar::new_spinner(), "{spinner} {prefix} {pos} files, {rate} {wide_msg}"),
            };
            let style = indicatif::ProgressStyle::with_template(template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .with_key("rate", |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.1} files/s", s.per_sec());
                });
            bar.set_style(style.progress_chars("=> "));
            bar.set_prefix(what.to_owned());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        };
        let now = Instant::now();
        Progress {
            what: what.to_owned(),
            total,
            bar,
            start: now,
            last_line: Cell::new(now),
            files: Cell::default(),
            bytes: Cell::default(),
            current: RefCell::default(),
            changed: Cell::default(),
            failed: Cell::default(),
        }
    }

    pub fn file(&self, shown: &str) {
        self.files.set(self.files.get() + 1);
        self.bar.inc(1);
        let shown = crate::output::terminal(shown).into_owned();
        self.bar.set_message(shown.clone());
        *self.current.borrow_mut() = shown;
        self.maybe_line();
    }

    /// `n` more bytes of the current file re-keyed.
    pub fn add_bytes(&self, n: u64) {
        self.bytes.set(self.bytes.get() + n);
        if !self.bar.is_hidden() && self.bytes.get() >= 1 << 20 {
            let mib = self.bytes.get() as f64 / (1 << 20) as f64;
            self.bar.set_message(format!("{} ({mib:.0} MiB re-keyed)", self.current.borrow()));
        }
        self.maybe_line();
    }

    /// Without a terminal: a line when the last is `LINE_EVERY` old.
    fn maybe_line(&self) {
        if !self.bar.is_hidden() || self.what.is_empty() || self.last_line.get().elapsed() < LINE_EVERY {
            return;
        }
        self.last_line.set(Instant::now());
        note(line(&self.what, self.files.get(), self.total, self.bytes.get(), self.start.elapsed()));
    }

    /// Works on one file: `work` says whether it changed it; an error is
    /// printed with the file's name and counted, and the run goes on.
    pub fn tally(&self, shown: &str, work: impl FnOnce() -> Result<bool>) {
        self.file(shown);
        match work() {
            Ok(changed) => self.changed.set(self.changed.get() + u64::from(changed)),
            Err(e) => {
                self.failed.set(self.failed.get() + 1);
                self.println(format!("tresor: {}: {e:#}", crate::output::terminal(shown)));
            }
        }
    }

    /// Files changed and failed so far (see `tally`).
    pub fn counts(&self) -> (u64, u64) {
        (self.changed.get(), self.failed.get())
    }

    pub fn println(&self, line: String) {
        if self.bar.is_hidden() {
            note(line);
        } else {
            self.bar.println(line);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A line on stderr for a run that changes files: if stderr is gone (a
/// closed pipe), the run goes on to its end and its audit log is closed,
/// where `eprintln!` would panic midway.
pub fn note(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The line written without a terminal: files done (of the total, with
/// the percentage), the rate, bytes re-keyed, and the time left.
fn line(what: &str, done: u64, total: Option<u64>, bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    let rate = done as f64 / secs;
    let mut out = match total {
        Some(t) if t > 0 => format!("{what}: {done}/{t} files ({}%)", done.min(t) * 100 / t),
        _ => format!("{what}: {done} files"),
    };
    out.push_str(&format!(", {rate:.1} files/s"));
    if bytes > 0 {
        out.push_str(&format!(", {:.1} MiB re-keyed", bytes as f64 / (1 << 20) as f64));
    }
    if let Some(t) = total.filter(|_| rate > 0.0) {
        let left = t.saturating_sub(done) as f64 / rate;
        out.push_str(&format!(", ETA {}", indicatif::HumanDuration(Duration::from_secs_f64(left))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_without_a_terminal_gives_total_percentage_rate_and_eta() {
        let l = line("rekey", 250, Some(1000), 0, Duration::from_secs(10));
        assert_eq!(l, "rekey: 250/1000 files (25%), 25.0 files/s, ETA 30 seconds");
        let l = line("policy set", 7, None, 3 << 20, Duration::from_secs(2));
        assert_eq!(l, "policy set: 7 files, 3.5 files/s, 3.0 MiB re-keyed");
    }
}
