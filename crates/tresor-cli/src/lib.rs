//! `tresor`: mount a Tresor volume, manage identities, create volumes,
//! decide who can read which file.
//!
//! Exit codes: 0 success; 1 an error (the message says what to do next);
//! 2 a usage error; 3 a recursive run in which some files failed (each
//! named on stderr; the others were done, and a rerun continues); 130 a
//! run stopped by Ctrl-C (every file done or unchanged; rerun to continue).

// Every syscall, on the backing tree or for the process (fork, passing
// descriptors), goes through `tresor-sys`.
#![forbid(unsafe_code)]

mod access;
mod acl;
mod audit;
mod backing;
mod config;
mod fsck;
mod id;
mod info;
mod init;
mod live_mount;
mod member;
mod migrate;
mod mount;
mod output;
mod passphrase;
mod policy;
mod progress;
mod registry;
mod resolve;
mod rewrite;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

pub use mount::helper_command;

/// Environment variables, for `tresor --help` and the man pages.
pub const ENVIRONMENT_HELP: &str = "\
Environment:
  TRESOR_IDENTITY  the identity file, where -i/--identity is not given
  TRESOR_DIR       the directory for the identity file and the pinned steward keys [default:
                   $XDG_CONFIG_HOME/tresor or ~/.config/tresor; without HOME (mount(8) helpers,
                   boot): /etc/tresor for the identity, /var/lib/tresor for the pins]
  TRESOR_LOG       what is logged, as a tracing filter: warn (the default for commands), info
                   (the default for the mount daemon), debug, or per module, e.g.
                   tresor_mount=debug,fuser=warn";

/// The command line, for man pages and completions (`cargo xtask man`).
pub fn command() -> clap::Command {
    Cli::command()
}

#[derive(Parser, Debug)]
#[command(
    name = "tresor",
    version,
    about,
    long_about = "Tresor keeps research data encrypted at rest on shared storage, \
with a content key per file wrapped for each member allowed to read it. Members mount a volume to see plaintext; \
stewards decide who reads what.

PATH arguments may be backing paths (inside a directory holding tresor.volume), plaintext paths below a backing \
directory (BACKING/outputs/table.csv: the names as a mount shows them), or plaintext paths inside a live Tresor mount \
on this node; changes are made on the backing files under the mounts' own locks, so they are safe \
while files are open on any node.

Exit codes: 0 success; 1 error; 2 usage error; 3 some files of a recursive run failed (rerun to continue); \
130 interrupted by Ctrl-C (every file done or unchanged; rerun to continue).",
    after_long_help = ENVIRONMENT_HELP
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
    /// Give a member read access to files (a steward who can read them).
    ///
    /// Adds the member's key to each file's header in place and signs it as you.
    Grant(access::GrantArgs),
    /// Take a member's read access to files away, and re-key them.
    ///
    /// By default each file gets a new content key and every block is
    /// encrypted again, so a key the member kept opens nothing stored
    /// afterwards. Each file changes atomically; an interrupted run is safe
    /// to rerun.
    Revoke(access::RevokeArgs),
    /// Give files a new content key (same readers), e.g. after a key leak.
    Rekey(access::RekeyArgs),
    /// Show who can read each file: readers with roles, who signed the
    /// header and when, and any header that breaks the access rules.
    Acl(acl::AclArgs),
    /// Default recipients of new files below a directory.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Verify, show and question audit logs.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Convert a volume an older Tresor made to the current format, in
    /// place (a steward, with every mount of the volume stopped).
    ///
    /// Tags every directory IV with its place, turns backing FIFOs, sockets
    /// and device nodes into records, and signs the registry as the new
    /// version with an expiry. Safe to rerun after an interruption.
    Migrate(migrate::MigrateArgs),
    /// Check a volume without a mount: registry, directory IVs, names,
    /// headers, blocks, temporaries, links, planted files, audit logs.
    ///
    /// Read-only unless --repair (safe while other nodes have it mounted).
    /// Exit codes as e2fsck: 0 clean, 1 corrected, 4 left uncorrected, 8
    /// operational error.
    Fsck(fsck::FsckArgs),
    /// Show a volume's parameters, registry, members, policies, audit
    /// settings and this client's pin.
    Info(info::InfoArgs),
}

/// Commands that only print what they find, and so may end at once when
/// their reader goes away (`| head`); commands that change files finish
/// their file and report instead.
fn only_prints(command: &Command) -> bool {
    match command {
        Command::Acl(_) | Command::Info(_) => true,
        Command::Policy(p) => matches!(p, policy::PolicyCommand::Show { .. }),
        Command::Member(m) => matches!(m, member::MemberCommand::List { .. }),
        Command::Fsck(f) => !f.repair,
        _ => false,
    }
}

/// `tresor` (or `mount.fuse.tresor`, by the name it was called as).
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args.first().and_then(|a| std::path::Path::new(a).file_name()).and_then(|n| n.to_str());
    let result = if invoked_as.is_some_and(|n| n.starts_with("mount.")) {
        mount::helper(args).map(|()| 0)
    } else {
        let cli = Cli::parse_from(args);
        if only_prints(&cli.command) {
            tresor_sys::default_sigpipe();
        }
        if !matches!(cli.command, Command::Mount(_)) {
            // Library warnings (and TRESOR_LOG=info for more) on stderr.
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("TRESOR_LOG")
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
                )
                .with_ansi(mount::stderr_is_terminal())
                .with_writer(std::io::stderr)
                .try_init();
        }
        match cli.command {
            Command::Id(cmd) => id::run(cmd).map(|()| 0),
            Command::Init(args) => init::run(args).map(|()| 0),
            Command::Member(cmd) => member::run(cmd),
            Command::Mount(args) => mount::run(args).map(|()| 0),
            Command::Grant(args) => access::grant(args),
            Command::Revoke(args) => access::revoke(args),
            Command::Rekey(args) => access::rekey(args),
            Command::Acl(args) => acl::acl(args),
            Command::Policy(cmd) => policy::policy(cmd),
            Command::Migrate(args) => migrate::run(args),
            Command::Fsck(args) => fsck::run(args),
            Command::Info(args) => info::run(args),
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
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("tresor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
