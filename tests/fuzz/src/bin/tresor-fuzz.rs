//! A std-only mutation fuzzer for the `tresor_fuzz` targets, for stable Rust.
//!
//! ```text
//! tresor-fuzz TARGET|all [--iterations N] [--seed S] [--corpus DIR] [--time SECS]
//!                        [--max-len BYTES] [--crash-dir DIR] [--no-minimize]
//! tresor-fuzz TARGET --reproduce FILE       run one input, show the panic and a backtrace
//! tresor-fuzz TARGET --write-corpus DIR     write the seed corpus (for libFuzzer or AFL++)
//! tresor-fuzz --list
//! ```
//!
//! It runs the seed corpus (`tresor_fuzz::seed_corpus`, plus the files in
//! `--corpus`), then N inputs made by stacking random mutations on corpus
//! entries: bit flips, random and "interesting" bytes and integers, small
//! arithmetic, truncation, extension, inserted and deleted runs, splices of
//! two entries, dictionary tokens. A panic is caught with `catch_unwind`;
//! the input is written to `tests/fuzz/crashes/<target>-<hash>` (and a
//! shrunk copy to `…-<hash>.min`), the panic is printed, and the exit
//! status is 1. The run is reproducible from `--seed` (printed at start).
//!
//! Examples:
//!
//! ```text
//! cargo run -p tresor-fuzz --release -- header --iterations 200000
//! # Integer overflow is a panic only with overflow checks, which release lacks
//! # (a separate target directory keeps the normal release build cached):
//! CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true cargo run -p tresor-fuzz --release \
//!   --target-dir target/fuzz-overflow -- all --iterations 100000
//! cargo run -p tresor-fuzz --release -- header --reproduce tests/fuzz/crashes/header-0123456789abcdef
//! ```
//!
//! # Coverage feedback
//!
//! Built with LLVM's SanitizerCoverage 8-bit counters (stable `-C` flags,
//! the same instrumentation libFuzzer uses), the fuzzer keeps the inputs
//! that reach new edges and mutates those too, instead of mutating only
//! the seeds. `--target` keeps the flags off build scripts and proc macros,
//! and a separate target directory keeps the normal build cache intact:
//!
//! ```text
//! RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=3 \
//!   -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Coverflow-checks=on" \
//! cargo run -p tresor-fuzz --release --target x86_64-unknown-linux-gnu \
//!   --target-dir target/fuzz-coverage -- header --iterations 1000000
//! ```
//!
//! The progress line then shows `cov` (edge/hit-count features seen) and
//! the corpus size growing; without instrumentation both stay flat.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use tresor_fuzz::driver::{self, Config, Feedback, NoFeedback, Stats};

mod coverage {
    //! SanitizerCoverage inline 8-bit counters: the instrumented code's
    //! module constructors register their counter arrays here.

    use std::sync::Mutex;

    static REGIONS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

    #[no_mangle]
    pub extern "C" fn __sanitizer_cov_8bit_counters_init(start: *mut u8, stop: *mut u8) {
        if let Ok(mut regions) = REGIONS.lock() {
            if (stop as usize) > (start as usize) {
                regions.push((start as usize, stop as usize - start as usize));
            }
        }
    }

    /// Only called with `-sanitizer-coverage-pc-table`; nothing to do.
    #[no_mangle]
    pub extern "C" fn __sanitizer_cov_pcs_init(_start: *const usize, _stop: *const usize) {}

    pub struct Counters {
        regions: Vec<(usize, usize)>,
        /// Per counter, the hit-count buckets seen so far (AFL's classes).
        seen: Vec<u8>,
        features: usize,
    }

    fn bucket(count: u8) -> u8 {
        match count {
            0 => 0,
            1 => 1,
            2 => 2,
            3 => 4,
            4..=7 => 8,
            8..=15 => 16,
            16..=31 => 32,
            32..=127 => 64,
            _ => 128,
        }
    }

    impl Counters {
        /// `None` when the binary was not built with the counters.
        pub fn new() -> Option<Counters> {
            let regions = REGIONS.lock().ok()?.clone();
            let total: usize = regions.iter().map(|r| r.1).sum();
            (total > 0).then(|| Counters { regions, seen: vec![0; total], features: 0 })
        }

        pub fn len(&self) -> usize {
            self.seen.len()
        }
    }

    impl tresor_fuzz::driver::Feedback for Counters {
        fn before(&mut self) {
            for &(start, len) in &self.regions {
                // SAFETY: a counter array registered by the instrumentation,
                // alive for the whole program, written only by this thread.
                unsafe { std::ptr::write_bytes(start as *mut u8, 0, len) };
            }
        }

        fn after(&mut self) -> bool {
            let mut new = false;
            let mut base = 0;
            for &(start, len) in &self.regions {
                // SAFETY: as above.
                let counters = unsafe { std::slice::from_raw_parts(start as *const u8, len) };
                for (chunk_at, chunk) in counters.chunks(8).enumerate() {
                    if chunk.iter().all(|&c| c == 0) {
                        continue;
                    }
                    for (i, &c) in chunk.iter().enumerate() {
                        let b = bucket(c);
                        let seen = &mut self.seen[base + chunk_at * 8 + i];
                        if *seen & b != b {
                            *seen |= b;
                            self.features += 1;
                            new = true;
                        }
                    }
                }
                base += len;
            }
            new
        }

        fn features(&self) -> usize {
            self.features
        }
    }
}

struct Args {
    target: String,
    iterations: u64,
    seed: Option<u64>,
    corpus: Vec<PathBuf>,
    time: Option<Duration>,
    max_len: Option<usize>,
    crash_dir: PathBuf,
    minimize: bool,
    reproduce: Option<PathBuf>,
    write_corpus: Option<PathBuf>,
}

const USAGE: &str = "usage: tresor-fuzz TARGET|all [--iterations N] [--seed S] [--corpus DIR] [--time SECS] \
[--max-len BYTES] [--crash-dir DIR] [--no-minimize] [--reproduce FILE] [--write-corpus DIR]\n       tresor-fuzz --list";

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        target: String::new(),
        iterations: 100_000,
        seed: None,
        corpus: Vec::new(),
        time: None,
        max_len: None,
        crash_dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("crashes"),
        minimize: true,
        reproduce: None,
        write_corpus: None,
    };
    fn value<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        let v = v.replace('_', "");
        v.parse().map_err(|_| format!("{flag}: cannot parse {v:?}"))
    }
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--list" => {
                for (name, _) in tresor_fuzz::TARGETS {
                    println!("{name}");
                }
                return Ok(None);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "--iterations" | "-n" => parsed.iterations = value(&arg, args.next())?,
            "--seed" => parsed.seed = Some(value(&arg, args.next())?),
            "--corpus" => parsed.corpus.push(args.next().ok_or("--corpus needs a directory")?.into()),
            "--time" => parsed.time = Some(Duration::from_secs_f64(value(&arg, args.next())?)),
            "--max-len" => parsed.max_len = Some(value(&arg, args.next())?),
            "--crash-dir" => parsed.crash_dir = args.next().ok_or("--crash-dir needs a directory")?.into(),
            "--no-minimize" => parsed.minimize = false,
            "--reproduce" => parsed.reproduce = Some(args.next().ok_or("--reproduce needs a file")?.into()),
            "--write-corpus" => {
                parsed.write_corpus = Some(args.next().ok_or("--write-corpus needs a directory")?.into())
            }
            a if a.starts_with('-') => return Err(format!("unknown option {a}")),
            a if parsed.target.is_empty() => parsed.target = a.to_owned(),
            a => return Err(format!("unexpected argument {a}")),
        }
    }
    if parsed.target.is_empty() {
        return Err("no target given".into());
    }
    Ok(Some(parsed))
}

fn read_corpus(dirs: &[PathBuf]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut paths: Vec<PathBuf> =
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
        paths.sort();
        for p in paths {
            out.push(std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?);
        }
    }
    Ok(out)
}

fn write_file(dir: &Path, name: &str, data: &[u8]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(name);
    std::fs::write(&path, data)?;
    Ok(path)
}

fn show(data: &[u8]) -> String {
    const MAX: usize = 4096;
    if data.len() <= MAX {
        driver::hex(data)
    } else {
        format!("{}… ({} bytes in all)", driver::hex(&data[..MAX]), data.len())
    }
}

fn reproduce(name: &str, target: fn(&[u8]), file: &Path) -> Result<bool, String> {
    let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    println!("{name}: {} ({} bytes)\n{}", file.display(), data.len(), show(&data));
    match driver::run_one_with_backtrace(target, &data) {
        Ok(()) => {
            println!("no panic");
            Ok(true)
        }
        Err(p) => {
            println!("{p}\n{}", p.backtrace.as_deref().unwrap_or(""));
            Ok(false)
        }
    }
}

/// Fuzzes one target; `Ok(false)` if it crashed.
fn fuzz_one(name: &str, target: fn(&[u8]), args: &Args, seed: u64, extra: &[Vec<u8>]) -> Result<bool, String> {
    let mut corpus = tresor_fuzz::seed_corpus(name);
    let mut unique: HashSet<Vec<u8>> = corpus.iter().cloned().collect();
    for e in extra {
        if unique.insert(e.clone()) {
            corpus.push(e.clone());
        }
    }
    let seeds = corpus.len() as u64;
    let mut config = Config::new(seed, args.iterations, &corpus);
    if let Some(max_len) = args.max_len {
        config.max_len = max_len;
    }
    config.time_limit = args.time;
    let mut counters = coverage::Counters::new();
    eprintln!(
        "{name}: {} seed inputs, {} iterations, seed {seed}, max length {}, coverage feedback {}",
        corpus.len(),
        args.iterations,
        config.max_len,
        match &counters {
            Some(c) => format!("on ({} counters)", c.len()),
            None => "off (not instrumented)".into(),
        }
    );
    let feedback: &mut dyn Feedback = match counters.as_mut() {
        Some(c) => c,
        None => &mut NoFeedback,
    };
    let mut progress = |s: &Stats| {
        eprintln!(
            "{name}: #{} {:.0} exec/s corpus {} cov {} slowest {:?}",
            s.execs,
            s.execs as f64 / s.elapsed.as_secs_f64(),
            s.corpus_len,
            s.features,
            s.slowest
        );
    };
    match driver::fuzz(target, &mut corpus, &config, feedback, &mut progress) {
        Ok(s) => {
            println!(
                "{name}: ok: {} executions ({} mutated) in {:.1}s, {:.0} exec/s, corpus {}, cov {}, slowest input {:?} ({} bytes)",
                s.execs,
                s.execs.saturating_sub(seeds),
                s.elapsed.as_secs_f64(),
                s.execs as f64 / s.elapsed.as_secs_f64().max(1e-9),
                s.corpus_len,
                s.features,
                s.slowest,
                s.slowest_input.len(),
            );
            Ok(true)
        }
        Err(crash) => {
            let file = format!("{name}-{}", driver::input_hash(&crash.input));
            let path =
                write_file(&args.crash_dir, &file, &crash.input).map_err(|e| format!("writing the crash: {e}"))?;
            println!("{name}: CRASH at execution {} (seed {seed}): {}", crash.exec, crash.panic);
            println!("input ({} bytes), written to {}:\n{}", crash.input.len(), path.display(), show(&crash.input));
            if args.minimize {
                let small = driver::minimize(target, &crash.input, &crash.panic, 20_000);
                if small.len() < crash.input.len() {
                    let min = write_file(&args.crash_dir, &format!("{file}.min"), &small)
                        .map_err(|e| format!("writing the crash: {e}"))?;
                    println!("shrunk to {} bytes, written to {}:\n{}", small.len(), min.display(), show(&small));
                }
            }
            if let Err(p) = driver::run_one_with_backtrace(target, &crash.input) {
                if let Some(bt) = p.backtrace {
                    println!("backtrace:\n{bt}");
                }
            }
            println!("reproduce: cargo run -p tresor-fuzz -- {name} --reproduce {}", path.display());
            Ok(false)
        }
    }
}

fn run(args: Args) -> Result<bool, String> {
    let targets: Vec<(&str, tresor_fuzz::Target)> = if args.target == "all" {
        tresor_fuzz::TARGETS.to_vec()
    } else {
        let found = tresor_fuzz::target(&args.target);
        vec![found.ok_or_else(|| format!("unknown target {:?}; try --list", args.target))?]
    };
    if let Some(file) = &args.reproduce {
        let mut ok = true;
        for (name, f) in &targets {
            ok &= reproduce(name, *f, file)?;
        }
        return Ok(ok);
    }
    if let Some(dir) = &args.write_corpus {
        for (name, _) in &targets {
            for seed in tresor_fuzz::seed_corpus(name) {
                write_file(dir, &format!("{name}-{}", driver::input_hash(&seed)), &seed).map_err(|e| e.to_string())?;
            }
        }
        println!("wrote the seed corpus to {}", dir.display());
        return Ok(true);
    }
    let extra = read_corpus(&args.corpus)?;
    let seed = args.seed.unwrap_or_else(|| rand_core::RngCore::next_u64(&mut rand_core::OsRng));
    let mut ok = true;
    for (name, f) in &targets {
        ok &= fuzz_one(name, *f, &args, seed, &extra)?;
    }
    Ok(ok)
}

fn main() -> ExitCode {
    match parse_args() {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(args)) => match run(args) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("tresor-fuzz: {e}");
                ExitCode::from(2)
            }
        },
        Err(e) => {
            eprintln!("tresor-fuzz: {e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
