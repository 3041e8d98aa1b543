//! Project tasks, run as `cargo xtask <task>`.
//!
//! - `demo [DIR]`: builds `tresor`, then in DIR (default `target/tresor-demo`)
//!   creates two members and a volume, mounts it twice, and shows per-file
//!   access control, ciphertext at rest and tamper detection.
//! - `bench [--quick] [--only raw,gocryptfs,tresor] ...`: mounts Tresor and
//!   gocryptfs over the same local disk, runs sequential, random 4 KiB and
//!   metadata workloads on both and on the bare directory, and prints one
//!   table (see `bench.rs`; `cargo xtask bench --help` for the options).
//!   `bench --backend local|gluster|ceph`: two nodes of one shared volume,
//!   IO500's shapes, round trips and daemon CPU per operation (bench/two_nodes.rs).
//! - `vectors`: rewrites `tests/vectors/*.json` from the inputs in
//!   `crates/tresor-format/tests/vectors.rs` (and `audit.json`, `audit-merkle.json` from
//!   `crates/tresor-audit/tests/vectors.rs`). Only for a format change, which
//!   also bumps the version and changes docs/FORMAT.md (docs/AUDIT.md).
//! - `man`: rewrites `man/` (man pages and shell completions) from the
//!   `tresor` command line; a test fails while `man/` is stale.
//! - `access-bench [--files N] [--mib M] [--tresor PATH]`: recursive grant
//!   (files/s) and re-key (MB/s) figures with the real `tresor` binary.
//! - `fsck-bench [--files N] [--big-mib M] [--tresor PATH]`: `tresor fsck`
//!   files/s (headers only) and MB/s (full content), and its peak memory.

mod access_bench;
mod bench;
mod demo;
mod fsck_bench;
mod man;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

type Res<T = ()> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo::run(
            args.get(1).map(PathBuf::from).unwrap_or_else(|| workspace().join("target/tresor-demo")),
            &workspace(),
        ),
        Some("vectors") => vectors(),
        Some("man") => man::run(),
        Some("bench") => bench::run(&args[1..]),
        Some("access-bench") => access_bench::run(&args[1..], &workspace()),
        Some("fsck-bench") => fsck_bench::run(&args[1..], &workspace()),
        _ => {
            eprintln!("usage: cargo xtask demo [DIR] | cargo xtask bench [--quick] [--only LIST] [--help] | cargo xtask vectors | cargo xtask man | cargo xtask access-bench [--help] | cargo xtask fsck-bench [--files N]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn vectors() -> Res {
    for package in ["tresor-format", "tresor-audit"] {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["test", "--quiet", "-p", package, "--test", "vectors"])
            .env("TRESOR_WRITE_VECTORS", "1")
            .current_dir(workspace())
            .status()?;
        if !status.success() {
            return Err(format!("writing the vectors of {package} failed").into());
        }
    }
    println!("wrote {}", workspace().join("tests/vectors").display());
    Ok(())
}
