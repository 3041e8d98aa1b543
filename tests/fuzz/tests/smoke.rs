//! A short fuzzing run of every target, for CI (`cargo test --workspace`):
//! the seed corpus and a few thousand mutations of it, deterministic (set
//! `TRESOR_FUZZ_SEED` to explore other inputs), asserting that nothing
//! panics. Long runs use the `tresor-fuzz` binary.

use std::time::Duration;

use tresor_fuzz::driver::{self, Config, NoFeedback};

/// Each target stops after this long even if its iterations are not done,
/// so a slow CI machine cannot make the suite hang.
const TIME_LIMIT: Duration = Duration::from_secs(8);

fn smoke(name: &str, iterations: u64) {
    let (name, target) = tresor_fuzz::target(name).expect("a known target");
    let seed = std::env::var("TRESOR_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x7472_6573_6f72);
    let mut corpus = tresor_fuzz::seed_corpus(name);
    let mut config = Config::new(seed, iterations, &corpus);
    config.time_limit = Some(TIME_LIMIT);
    match driver::fuzz(target, &mut corpus, &config, &mut NoFeedback, &mut |_| {}) {
        Ok(stats) => assert!(stats.execs > 0),
        Err(crash) => panic!(
            "fuzz target {name} panicked (seed {seed}, execution {}): {}\ninput ({} bytes): {}\n\
             reproduce: write the input to a file and run `cargo run -p tresor-fuzz -- {name} --reproduce FILE`",
            crash.exec,
            crash.panic,
            crash.input.len(),
            driver::hex(&crash.input),
        ),
    }
}

macro_rules! smoke_tests {
    ($($name:ident: $iterations:expr),* $(,)?) => {
        $(#[test] fn $name() { smoke(stringify!($name), $iterations); })*

        #[test]
        fn every_target_has_a_smoke_test() {
            let tested = [$(stringify!($name)),*];
            for (name, _) in tresor_fuzz::TARGETS {
                assert!(tested.contains(name), "no smoke test for target {name}");
            }
        }
    };
}

smoke_tests! {
    identity: 10_000,
    public_identity: 10_000,
    volume: 10_000,
    header: 10_000,
    content: 10_000,
    file_content: 10_000,
    names: 10_000,
    dir_iv: 10_000,
    // Each input runs up to a dozen key agreements and signatures.
    api: 2_000,
    // Each input that verifies checks signatures.
    audit_log: 3_000,
}

// ---- the driver itself ----------------------------------------------------------

fn panics_on_magic(data: &[u8]) {
    if data.windows(4).any(|w| w == b"BOOM") {
        panic!("found the magic word");
    }
}

#[test]
fn a_panic_is_caught_reported_and_shrunk() {
    let mut corpus = vec![b"a harmless input".to_vec(), b"xxBOOMxx".to_vec()];
    let config = Config::new(1, 10, &corpus);
    let crash = driver::fuzz(panics_on_magic, &mut corpus, &config, &mut NoFeedback, &mut |_| {}).unwrap_err();
    assert_eq!(crash.input, b"xxBOOMxx");
    assert_eq!(crash.exec, 2);
    assert_eq!(crash.panic.message, "found the magic word");
    assert!(crash.panic.location.contains("smoke.rs"), "{}", crash.panic.location);
    assert_eq!(driver::minimize(panics_on_magic, &crash.input, &crash.panic, 1000), b"BOOM");
}

#[test]
fn mutations_find_a_shallow_bug() {
    // "BOOM" is one byte away from the seed. (Two would take millions of
    // blind tries: that is what coverage feedback is for.)
    let mut corpus = vec![b"BOOx".to_vec()];
    let config = Config::new(2, 1_000_000, &corpus);
    let crash = driver::fuzz(panics_on_magic, &mut corpus, &config, &mut NoFeedback, &mut |_| {}).unwrap_err();
    assert!(crash.input.windows(4).any(|w| w == b"BOOM"));
}

#[test]
fn mutation_is_deterministic_and_bounded() {
    let corpus = tresor_fuzz::seed_corpus("header");
    let run = |seed| {
        let mut m = tresor_fuzz::mutate::Mutator::new(seed, 5000);
        (0..200).map(|i| m.mutate(&corpus[i % corpus.len()], &corpus)).collect::<Vec<_>>()
    };
    let a = run(9);
    assert_eq!(a, run(9));
    assert_ne!(a, run(10));
    assert!(a.iter().all(|m| m.len() <= 5000));
    assert!(a.iter().any(|m| !corpus.contains(m)));
}
