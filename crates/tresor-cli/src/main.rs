//! `tresor`: mount a Tresor volume, manage identities, create volumes.
//!
//! Exit codes: 0 success; 1 an error (the message says what to do next);
//! 2 a usage error.

mod audit;
mod config;
mod id;
mod init;
mod member;
mod mount;
mod passphrase;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "tresor",
    version,
    about,
    long_about = "Tresor keeps research data encrypted at rest on shared storage, \
with a content key per file wrapped for each member allowed to read it. Members mount a volume to see plaintext; \
stewards decide who reads what."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, show or re-seal your identity (your keys, sealed with a passphrase).
    #[command(subcommand)]
    Id(id::IdCommand),
    /// Create a new volume in an empty backing directory, with you as its steward.
    Init(init::InitArgs),
    /// Add, remove or list the volume's members (the signed registry).
    #[command(subcommand)]
    Member(member::MemberCommand),
    /// Mount a volume: the plaintext view of BACKING appears at MOUNTPOINT.
    ///
    /// Unmount with `fusermount3 -u MOUNTPOINT` or `umount MOUNTPOINT`.
    Mount(mount::MountArgs),
    /// Verify, show and question audit logs.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args.first().and_then(|a| std::path::Path::new(a).file_name()).and_then(|n| n.to_str());
    let result = if invoked_as.is_some_and(|n| n.starts_with("mount.")) {
        mount::helper(args)
    } else {
        let cli = Cli::parse_from(args);
        match cli.command {
            Command::Id(cmd) => id::run(cmd),
            Command::Init(args) => init::run(args),
            Command::Member(cmd) => member::run(cmd),
            Command::Mount(args) => mount::run(args),
            Command::Audit(cmd) => match audit::run(cmd) {
                Ok(code) => return code,
                Err(e) if e.downcast_ref::<audit::Usage>().is_some() => {
                    eprintln!("tresor: {e:#}");
                    return ExitCode::from(2);
                }
                Err(e) => Err(e),
            },
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tresor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
