//! `tresor mount` and the `mount.fuse.tresor` helper that mount(8) and
//! fstab use. Everything that can fail is checked before the daemon
//! detaches, so a failure returns non-zero with the reason; once the mount
//! is live the parent returns 0, silently, and the daemon serves until
//! unmounted: by `umount`/`fusermount3 -u`, or by SIGTERM, SIGINT or SIGHUP
//! (`systemctl stop`, `scancel`, Ctrl-C on `mount -f`), which unmount the
//! same way and so end with the audit log's unmount record.

use std::{
    ffi::OsString,
    io::{IsTerminal, Read, Write},
    path::PathBuf,
};

use anyhow::{anyhow, Context, Result};
use clap::Args;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tresor_format::PublicIdentity;
use tresor_mount::{MountConfig, Mounted, Prepared};
use tresor_sys::process::{self, Forked};

use crate::{config, id, passphrase::PassSource};

mod log;

/// Mount options, for `tresor mount --help` and the man page.
pub const OPTIONS_HELP: &str = "\
Generic (as mount(8) and fstab pass them): ro, rw, noatime, atime, relatime, strictatime, \
nodiratime, diratime, nodev, dev, nosuid, suid, noexec, exec, sync, async, dirsync; \
remount (with ro or rw: changes a live mount's flags); defaults, _netdev, nofail, auto, noauto, \
user, users, nouser, comment=..., x-* (for mount(8) and systemd; ignored here).

Tresor: allow_other (other users may use the mount; implies default_permissions), \
default_permissions (the kernel checks modes; otherwise a private mount leaves that to the \
backing file system), nonempty (mount over a directory that has entries), cache_timeout=SECS \
(kernel cache TTL; 0, the default, is safe on shared storage), threads=N, fsname=NAME, \
allow_incoherent (mount even on a backing file system whose client caches file data and refuses \
direct I/O, which can lose updates between nodes: for a volume only this node writes).

Audit log (see docs/AUDIT.md): audit=off, audit_dir=DIR, audit_sync=always, audit_sync_ms=N, \
audit_checkpoint_records=N, audit_checkpoint_secs=N, audit_anchor=syslog|none (default: syslog where the \
node has one), audit_anchor_cmd=PATH, \
audit_on_error=continue.

As in fstab, the command's own options: identity=FILE, passfile=FILE, passfd=N, extpass=CMD, \
steward=KEY, log=FILE.";

/// How the helper is used from fstab, systemd and job schedulers, for
/// `mount.fuse.tresor(8)`.
const HELPER_HELP: &str = "\
fstab (mount -t fuse.tresor runs /sbin/mount.fuse.tresor, a link to tresor):

  /data/project1.backing  /mnt/project1  fuse.tresor  \
identity=/etc/tresor/node.id,passfile=/etc/tresor/node.pass,allow_other,noatime,_netdev,nofail  0 0

The identity and passphrase options (identity=FILE, passfile=FILE, passfd=N, extpass=CMD) and steward=KEY, \
log=FILE are the helper's own; every other option is a mount option of tresor-mount(1). \
mount -o remount,ro MOUNTPOINT and remount,rw change a live mount: the kernel then refuses writes with EROFS \
(and the remount fails with EBUSY while a file is open for writing).

The helper is silent on success, except for the fingerprint of a steward key pinned on first use. The daemon \
detaches once the mount is live (chdir /, standard descriptors on /dev/null, inherited descriptors closed) \
and logs to syslog, each message at its level. SIGTERM, SIGINT and SIGHUP unmount it as umount does (a mount \
still in use is detached and served until its last file is closed), and its audit log ends with the unmount \
record; with NOTIFY_SOCKET set (systemd Type=notify) it sends READY=1 once the mount is live.

Without HOME, pinned steward keys are kept in /var/lib/tresor/pinned and the default identity is \
/etc/tresor/identity; TRESOR_DIR overrides both. See docs/OPERATIONS.md for a systemd unit and a Slurm \
prolog/epilog.";

/// The `mount.fuse.tresor` helper's command line, for its man page
/// (section 8); [`helper`] parses it as mount(8) passes it.
pub fn helper_command() -> clap::Command {
    use clap::{Arg, ArgAction};
    let flag = |name: &'static str, short: char, help: &'static str| {
        Arg::new(name).short(short).action(ArgAction::SetTrue).help(help)
    };
    clap::Command::new("mount.fuse.tresor")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Mount a Tresor volume from fstab or mount(8)")
        .long_about(
            "Called by mount(8) for file systems of type fuse.tresor: mounts the Tresor volume whose \
             backing directory is SOURCE at MOUNTPOINT, as `tresor mount` does, taking everything else \
             from -o.",
        )
        .arg(Arg::new("source").value_name("SOURCE").required(true).help("The backing directory (tresor.volume at its root)"))
        .arg(Arg::new("mountpoint").value_name("MOUNTPOINT").required(true).help("An empty directory"))
        .arg(
            Arg::new("options")
                .short('o')
                .value_name("OPTIONS")
                .action(ArgAction::Append)
                .help("Mount options, comma-separated: those of tresor-mount(1), and identity=, passfile=, passfd=, extpass=, steward=, log="),
        )
        .arg(flag("no-mtab", 'n', "Accepted for mount(8); there is no mtab to write"))
        .arg(flag("sloppy", 's', "Accepted for mount(8); unknown options are still refused"))
        .arg(flag("verbose", 'v', "Accepted for mount(8)"))
        .arg(flag("fake", 'f', "Do everything but mount (mount -f)"))
        .after_long_help(format!("{HELPER_HELP}\n\n{OPTIONS_HELP}"))
}

#[derive(Args, Debug, Default)]
#[command(after_long_help = OPTIONS_HELP)]
pub struct MountArgs {
    /// The backing directory holding the ciphertext (tresor.volume at its root).
    pub backing: PathBuf,
    /// Where the plaintext view appears (an empty directory, unless -o nonempty).
    pub mountpoint: PathBuf,
    /// Stay in the foreground and log to stderr (default: detach once mounted).
    /// For systemd units (Type=notify) and jobs that hold the mount while they run.
    #[arg(short, long)]
    pub foreground: bool,
    /// Mount options, comma-separated (see below, or `man tresor-mount`).
    #[arg(short = 'o', value_name = "OPTIONS")]
    pub options: Vec<String>,
    /// Your identity file [default: $TRESOR_DIR/identity, ~/.config/tresor/identity,
    /// or /etc/tresor/identity without HOME].
    #[arg(long, short, value_name = "FILE", env = "TRESOR_IDENTITY")]
    pub identity: Option<PathBuf>,
    /// The steward public key (tresor1…) to trust for this volume. Without it,
    /// the key pinned at an earlier mount is used, or on first use the volume's
    /// own signer is pinned and its fingerprint printed.
    #[arg(long, value_name = "KEY")]
    pub steward: Option<PublicIdentity>,
    /// Where the audit log goes (a directory, e.g. on another system)
    /// [default: BACKING/tresor.audit]. Same as -o audit_dir=DIR; other audit
    /// options (audit=off, audit_sync=always, audit_anchor_cmd=...) are -o options.
    #[arg(long, value_name = "DIR")]
    pub audit_dir: Option<PathBuf>,
    /// Where the daemon logs once detached [default: syslog, each message at its level].
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    #[command(flatten)]
    pub pass: PassSource,
}

/// Splits off the options the CLI itself handles (identity=, passfile=,
/// passfd=, extpass=, steward=, log=) from those for the mount.
fn take_cli_options(args: &mut MountArgs) -> Result<Vec<String>> {
    let mut rest = Vec::new();
    for opt in args.options.iter().flat_map(|o| o.split(',')).filter(|o| !o.is_empty()) {
        match opt.split_once('=') {
            Some(("identity", v)) => args.identity = Some(v.into()),
            Some(("passfile", v)) => args.pass.passfile = Some(v.into()),
            Some(("passfd", v)) => args.pass.passfd = Some(v.parse().context("passfd= takes a number")?),
            Some(("extpass", v)) => args.pass.extpass = Some(v.into()),
            Some(("steward", v)) => args.steward = Some(v.parse().context("steward= takes a tresor1… key")?),
            Some(("log", v)) => args.log_file = Some(v.into()),
            _ => rest.push(opt.to_owned()),
        }
    }
    if let Some(dir) = &args.audit_dir {
        let dir = std::path::absolute(dir).with_context(|| format!("--audit-dir {}", dir.display()))?;
        let dir = dir.to_str().filter(|d| !d.contains(',')).context("--audit-dir must be UTF-8 without commas")?;
        rest.push(format!("audit_dir={dir}"));
    }
    Ok(rest)
}

pub fn run(mut args: MountArgs) -> Result<()> {
    let mut mount_options = take_cli_options(&mut args)?;
    if let Some(i) = mount_options.iter().position(|o| o == "remount") {
        mount_options.remove(i);
        return Ok(tresor_mount::remount(&args.mountpoint, &mount_options.join(","))?);
    }
    if !args.foreground {
        // Whatever we inherited (a job's pipes, a lock) the daemon must not
        // hold for days; nothing of ours is open yet.
        process::close_inherited(&args.pass.passfd.into_iter().collect::<Vec<_>>())
            .context("closing inherited descriptors")?;
    }
    let identity_path = args.identity.clone().unwrap_or_else(config::default_identity);
    let identity = id::unlock(&identity_path, &args.pass)?;

    let mut pinned = Vec::new();
    let mut first_use = None;
    let mut generation_file = None;
    // Bounded, non-blocking, type-checked: a FIFO planted as the volume
    // file must not hang `tresor mount` (prepare then says what is wrong).
    if let Ok(bytes) = crate::backing::read_volume_file(&args.backing) {
        let pin = config::pin_for(&bytes, args.steward.as_ref())?;
        pinned.push(pin.key().ed25519);
        if matches!(pin, config::Pin::FirstUse(_)) {
            first_use = Some(pin.describe());
        }
        if let Ok(v) = tresor_format::Volume::open_self_signed_any_version(&bytes) {
            // Absolute: the daemon writes it again after it has moved to /.
            generation_file = Some(std::path::absolute(config::generation_path(&v.id))?);
        }
    }
    let mut config = MountConfig::new(args.backing.clone(), args.mountpoint.clone(), identity, pinned);
    config.generation_file = generation_file;
    tresor_mount::parse_options(&mount_options.join(","), &mut config)?;
    let prepared = tresor_mount::prepare(config)?;
    // Silent on success but for this: a key trusted now must be checked.
    if let Some(note) = first_use {
        eprintln!("tresor: {note}");
    }
    if args.foreground {
        log::init(log::To::Stderr);
        return serve(prepared.mount()?);
    }
    let log_file = args.log_file.map(std::path::absolute).transpose().context("--log-file")?;
    if log_file.is_none() && !log::syslog_reachable() {
        eprintln!(
            "tresor: warning: syslog is unreachable (nothing listens on /dev/log): the daemon's messages will be \
             lost; use --log-file FILE or -o log=FILE"
        );
    }
    daemonize(prepared, log_file)
}

/// Forks; the child mounts and tells the parent through a pipe whether the
/// mount is live; the parent exits with that outcome.
fn daemonize(prepared: Prepared, log_file: Option<PathBuf>) -> Result<()> {
    let (mut from_child, mut to_parent) = std::io::pipe().context("pipe")?;
    match process::fork().context("fork")? {
        Forked::Child => {
            drop(from_child);
            let _ = process::setsid();
            // Keep no directory busy (every path is absolute by now).
            let _ = std::env::set_current_dir("/");
            log::init(match log_file {
                Some(path) => log::To::File(path),
                None => log::To::Syslog,
            });
            let mounted = match prepared.mount() {
                Ok(m) => m,
                Err(e) => {
                    let _ = write!(to_parent, "{e}");
                    std::process::exit(1);
                }
            };
            let _ = process::stdio_to_null();
            let _ = to_parent.write_all(b"ok");
            drop(to_parent);
            match serve(mounted) {
                Ok(()) => std::process::exit(0),
                Err(e) => {
                    tracing::error!("tresor daemon stopped: {e:#}");
                    std::process::exit(1);
                }
            }
        }
        Forked::Parent(_) => {
            drop(to_parent);
            let mut answer = String::new();
            from_child.read_to_string(&mut answer)?;
            match answer.as_str() {
                "ok" => Ok(()),
                "" => Err(anyhow!("the mount daemon died before the mount was live")),
                _ => Err(anyhow!(answer)),
            }
        }
    }
}

/// Serves a live mount until it is unmounted. SIGTERM, SIGINT and SIGHUP
/// unmount it as `umount` would (the session then ends the ordinary way,
/// writing the audit log's unmount record); systemd hears READY=1 once
/// the mount is live and STOPPING=1 on a signal (when NOTIFY_SOCKET is set).
fn serve(mounted: Mounted) -> Result<()> {
    let unmounter = mounted.unmounter();
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]).context("signal handlers")?;
    let handle = signals.handle();
    let mountpoint = mounted.mountpoint().to_owned();
    std::thread::Builder::new().name("tresor-signals".into()).spawn(move || {
        for signal in signals.forever() {
            let name = match signal {
                SIGTERM => "SIGTERM",
                SIGINT => "SIGINT",
                _ => "SIGHUP",
            };
            tracing::info!("{name}: unmounting {}", mountpoint.display());
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
            if let Err(e) = unmounter.unmount() {
                tracing::error!("unmounting {} on {name} failed: {e}", mountpoint.display());
            }
        }
    })?;
    let pid = std::process::id();
    let _ = sd_notify::notify(&[sd_notify::NotifyState::MainPid(pid), sd_notify::NotifyState::Ready]);
    let served = mounted.run();
    handle.close();
    Ok(served?)
}

/// Whether messages to stderr may use colour.
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// `mount.fuse.tresor SOURCE DIR [-o OPTIONS] [-n] [-s] [-v] [-f]`, as
/// mount(8) calls a helper (fstab type `fuse.tresor`).
pub fn helper(args: Vec<OsString>) -> Result<()> {
    let mut positional = Vec::new();
    let mut mount = MountArgs::default();
    let mut it = args.into_iter().skip(1);
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("-o") => mount.options.push(
                it.next()
                    .ok_or_else(|| anyhow!("-o needs options"))?
                    .into_string()
                    .map_err(|_| anyhow!("options must be UTF-8"))?,
            ),
            // No mtab to skip writing, sloppy parsing, verbose: accepted, nothing to do.
            Some("-n" | "-s" | "-v") => {}
            Some("-f") => return Ok(()), // "fake": do everything but mount
            Some(s) if s.starts_with("-o") => mount.options.push(s[2..].to_owned()),
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let [backing, mountpoint] = <[PathBuf; 2]>::try_from(positional)
        .map_err(|_| anyhow!("usage: mount.fuse.tresor BACKING MOUNTPOINT [-o OPTIONS]"))?;
    mount.backing = backing;
    mount.mountpoint = mountpoint;
    run(mount)
}
