//! The fuzz loop shared by the `tresor-fuzz` binary and the smoke tests:
//! run a target under `catch_unwind`, mutate, repeat; and shrink a crash.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::time::{Duration, Instant};

use crate::mutate::Mutator;

/// A panic caught while running a target.
#[derive(Clone, Debug)]
pub struct Panic {
    pub message: String,
    /// `file:line:column` of the panic: what identifies "the same crash".
    pub location: String,
    pub backtrace: Option<String>,
}

impl std::fmt::Display for Panic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "panicked at {}:\n{}", self.location, self.message)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Capture {
    Message,
    WithBacktrace,
}

thread_local! {
    /// Set while a target runs on this thread: the hook then records the
    /// panic here instead of printing it.
    static CAPTURE: RefCell<Option<(Capture, Option<Panic>)>> = const { RefCell::new(None) };
}

fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let captured = CAPTURE.with(|c| {
                let mut c = c.borrow_mut();
                let Some((mode, slot)) = c.as_mut() else { return false };
                let payload = info.payload();
                let message = if let Some(s) = payload.downcast_ref::<&str>() {
                    (*s).to_owned()
                } else if let Some(s) = payload.downcast_ref::<String>() {
                    s.clone()
                } else {
                    "(non-string panic payload)".to_owned()
                };
                let location = info.location().map(|l| l.to_string()).unwrap_or_else(|| "(unknown location)".into());
                let backtrace =
                    (*mode == Capture::WithBacktrace).then(|| std::backtrace::Backtrace::force_capture().to_string());
                *slot = Some(Panic { message, location, backtrace });
                true
            });
            if !captured {
                previous(info);
            }
        }));
    });
}

fn run_captured(target: fn(&[u8]), data: &[u8], mode: Capture) -> Result<(), Panic> {
    install_hook();
    CAPTURE.with(|c| *c.borrow_mut() = Some((mode, None)));
    let result = panic::catch_unwind(AssertUnwindSafe(|| target(data)));
    let captured = CAPTURE.with(|c| c.borrow_mut().take()).and_then(|(_, p)| p);
    match result {
        Ok(()) => Ok(()),
        Err(_) => Err(captured.unwrap_or_else(|| Panic {
            message: "(panic not seen by the hook)".into(),
            location: "(unknown location)".into(),
            backtrace: None,
        })),
    }
}

/// Runs `target` on `data`, turning a panic into an error. Other threads
/// keep the normal panic output.
pub fn run_one(target: fn(&[u8]), data: &[u8]) -> Result<(), Panic> {
    run_captured(target, data, Capture::Message)
}

/// `run_one` that also records a backtrace of the panic.
pub fn run_one_with_backtrace(target: fn(&[u8]), data: &[u8]) -> Result<(), Panic> {
    run_captured(target, data, Capture::WithBacktrace)
}

/// Coverage feedback: the binary plugs in SanitizerCoverage counters when
/// the code was built with them; without, the fuzzer is a plain mutator.
pub trait Feedback {
    /// Called before each run of the target.
    fn before(&mut self) {}
    /// Called after each run: whether that input reached something new
    /// (it is then added to the corpus).
    fn after(&mut self) -> bool {
        false
    }
    /// A number to show in the progress line (features seen).
    fn features(&self) -> usize {
        0
    }
}

pub struct NoFeedback;

impl Feedback for NoFeedback {}

#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    /// Mutated inputs to run (the seed corpus is run once more, unmutated, first).
    pub iterations: u64,
    pub max_len: usize,
    /// Stop early after this long, whatever `iterations` says.
    pub time_limit: Option<Duration>,
    /// Call the progress callback this often.
    pub progress_every: Duration,
}

impl Config {
    pub fn new(seed: u64, iterations: u64, corpus: &[Vec<u8>]) -> Config {
        let longest = corpus.iter().map(Vec::len).max().unwrap_or(0);
        Config {
            seed,
            iterations,
            max_len: (2 * longest).clamp(1024, 1 << 21),
            time_limit: None,
            progress_every: Duration::from_secs(5),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub execs: u64,
    pub corpus_len: usize,
    pub features: usize,
    pub elapsed: Duration,
    /// The slowest input seen and how long it took.
    pub slowest: Duration,
    pub slowest_input: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct Crash {
    pub input: Vec<u8>,
    pub panic: Panic,
    /// Which execution crashed (1-based, seeds included).
    pub exec: u64,
}

/// Runs the seed corpus, then `config.iterations` mutated inputs, stopping
/// at the first panic. Inputs that `feedback` finds new join `corpus`.
pub fn fuzz(
    target: fn(&[u8]),
    corpus: &mut Vec<Vec<u8>>,
    config: &Config,
    feedback: &mut dyn Feedback,
    progress: &mut dyn FnMut(&Stats),
) -> Result<Stats, Box<Crash>> {
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut last_report = Instant::now();
    let mut mutator = Mutator::new(config.seed, config.max_len);
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let seeds = corpus.len();
    let total = seeds as u64 + config.iterations;
    for i in 0..total {
        if config.time_limit.is_some_and(|limit| start.elapsed() >= limit) {
            break;
        }
        let input = if (i as usize) < seeds {
            corpus[i as usize].clone()
        } else {
            let base = mutator.below(corpus.len());
            mutator.mutate(&corpus[base], corpus)
        };
        feedback.before();
        let t = Instant::now();
        let result = run_one(target, &input);
        let took = t.elapsed();
        stats.execs += 1;
        if let Err(panic) = result {
            return Err(Box::new(Crash { input, panic, exec: stats.execs }));
        }
        if feedback.after() && (i as usize) >= seeds {
            corpus.push(input.clone());
        }
        if took > stats.slowest {
            stats.slowest = took;
            stats.slowest_input = input;
        }
        if last_report.elapsed() >= config.progress_every {
            last_report = Instant::now();
            stats.elapsed = start.elapsed();
            stats.corpus_len = corpus.len();
            stats.features = feedback.features();
            progress(&stats);
        }
    }
    stats.elapsed = start.elapsed();
    stats.corpus_len = corpus.len();
    stats.features = feedback.features();
    Ok(stats)
}

/// Shrinks a crashing input by deleting ever smaller chunks while the
/// target still panics at the same place. At most `max_execs` runs.
pub fn minimize(target: fn(&[u8]), input: &[u8], crash: &Panic, max_execs: usize) -> Vec<u8> {
    let mut best = input.to_vec();
    let mut execs = 0;
    let same = |data: &[u8]| matches!(run_one(target, data), Err(p) if p.location == crash.location);
    let mut chunk = best.len().next_power_of_two() / 2;
    while chunk >= 1 && execs < max_execs {
        let mut at = 0;
        while at < best.len() && execs < max_execs {
            let end = (at + chunk).min(best.len());
            let mut candidate = best[..at].to_vec();
            candidate.extend_from_slice(&best[end..]);
            execs += 1;
            if same(&candidate) {
                best = candidate;
            } else {
                at += chunk;
            }
        }
        chunk /= 2;
    }
    best
}

/// A short stable name for an input: 16 hex digits of SipHash with fixed keys.
pub fn input_hash(data: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    #[allow(deprecated)] // SipHasher: stable keys, unlike RandomState
    let mut h = std::hash::SipHasher::new();
    data.hash(&mut h);
    format!("{:016x}", h.finish())
}

pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}
