//! The `tresor` command; everything is in the library (`src/lib.rs`), so
//! `cargo xtask man` can render the same command line.

fn main() -> std::process::ExitCode {
    tresor::main()
}
