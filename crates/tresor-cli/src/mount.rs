//! `tresor mount` and the `mount.fuse.tresor` helper that mount(8) and
//! fstab use. Everything that can fail is checked before the daemon
//! detaches, so a failure returns non-zero with the reason; once the mount
//! is live the parent returns 0 and the daemon serves until unmounted.

use std::{
    ffi::OsString,
    fs,
    io::{Read, Write},
    os::fd::{FromRawFd, IntoRawFd},
    path::PathBuf,
};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use tresor_format::PublicIdentity;
use tresor_mount::{MountConfig, Prepared};

use crate::{config, id, passphrase::PassSource};

#[derive(Args, Debug, Default)]
pub struct MountArgs {
    /// The backing directory holding the ciphertext (tresor.volume at its root).
    pub backing: PathBuf,
    /// Where the plaintext view appears.
    pub mountpoint: PathBuf,
    /// Stay in the foreground and log to stderr (default: detach once mounted).
    #[arg(short, long)]
    pub foreground: bool,
    /// Mount options, comma-separated: ro, rw, allow_other (implies default_permissions),
    /// default_permissions (the kernel checks modes; otherwise a private mount leaves that
    /// to the backing file system), noatime, nodev, nosuid, noexec, cache_timeout=SECS (kernel cache TTL; 0, the default, is safe on shared
    /// storage), threads=N, the audit options (audit=off, audit_dir=DIR, audit_sync=always,
    /// audit_sync_ms=N, audit_checkpoint_records=N, audit_checkpoint_secs=N,
    /// audit_anchor=syslog, audit_anchor_cmd=PATH, audit_on_error=continue; see
    /// docs/AUDIT.md), and identity=FILE, passfile=FILE, steward=KEY as in fstab.
    #[arg(short = 'o', value_name = "OPTIONS")]
    pub options: Vec<String>,
    /// Your identity file [default: ~/.config/tresor/identity].
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
    /// Where the daemon logs once detached [default: syslog].
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    #[command(flatten)]
    pub pass: PassSource,
}

/// Splits off the options the CLI itself handles (identity=, passfile=,
/// passfd=, steward=, log=) from those for the mount.
fn take_cli_options(args: &mut MountArgs) -> Result<String> {
    let mut rest = Vec::new();
    for opt in args.options.iter().flat_map(|o| o.split(',')).filter(|o| !o.is_empty()) {
        match opt.split_once('=') {
            Some(("identity", v)) => args.identity = Some(v.into()),
            Some(("passfile", v)) => args.pass.passfile = Some(v.into()),
            Some(("passfd", v)) => args.pass.passfd = Some(v.parse().context("passfd= takes a number")?),
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
    Ok(rest.join(","))
}

pub fn run(mut args: MountArgs) -> Result<()> {
    let mount_options = take_cli_options(&mut args)?;
    let identity_path = args.identity.clone().unwrap_or_else(config::default_identity);
    let identity = id::unlock(&identity_path, &args.pass)?;

    let mut pinned = Vec::new();
    let mut pin_note = None;
    let mut generation_file = None;
    // Bounded, non-blocking, type-checked: a FIFO planted as the volume
    // file must not hang `tresor mount` (prepare then says what is wrong).
    if let Ok(bytes) = crate::backing::read_volume_file(&args.backing) {
        let pin = config::pin_for(&bytes, args.steward.as_ref())?;
        pinned.push(pin.key().ed25519);
        pin_note = Some(pin.describe());
        if let Ok(v) = tresor_format::Volume::open_self_signed_any_version(&bytes) {
            generation_file = Some(config::generation_path(&v.id));
        }
    }
    let mut config = MountConfig::new(args.backing.clone(), args.mountpoint.clone(), identity, pinned);
    config.generation_file = generation_file;
    tresor_mount::parse_options(&mount_options, &mut config)?;
    let prepared = tresor_mount::prepare(config)?;
    if let Some(note) = pin_note {
        eprintln!("tresor: {note}");
    }
    if args.foreground {
        init_logging(Log::Stderr);
        let mounted = prepared.mount()?;
        eprintln!("tresor: mounted {} at {}", args.backing.display(), args.mountpoint.display());
        return Ok(mounted.run()?);
    }
    daemonize(prepared, args.log_file)
}

/// Forks; the child mounts and tells the parent through a pipe whether the
/// mount is live; the parent exits with that outcome.
fn daemonize(prepared: Prepared, log_file: Option<PathBuf>) -> Result<()> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        bail!("pipe: {}", std::io::Error::last_os_error());
    }
    let (mut from_child, mut to_parent) = unsafe { (fs::File::from_raw_fd(fds[0]), fs::File::from_raw_fd(fds[1])) };
    match unsafe { libc::fork() } {
        -1 => bail!("fork: {}", std::io::Error::last_os_error()),
        0 => {
            drop(from_child);
            unsafe { libc::setsid() };
            let mounted = match prepared.mount() {
                Ok(m) => m,
                Err(e) => {
                    let _ = write!(to_parent, "{e}");
                    std::process::exit(1);
                }
            };
            init_logging(match log_file {
                Some(path) => Log::File(path),
                None => Log::Syslog,
            });
            detach_stdio();
            let _ = to_parent.write_all(b"ok");
            drop(to_parent);
            match mounted.run() {
                Ok(()) => std::process::exit(0),
                Err(e) => {
                    tracing::error!("tresor daemon stopped: {e}");
                    std::process::exit(1);
                }
            }
        }
        _child => {
            drop(to_parent);
            let mut answer = String::new();
            from_child.read_to_string(&mut answer)?;
            if answer == "ok" {
                Ok(())
            } else if answer.is_empty() {
                Err(anyhow!("the mount daemon died before the mount was live"))
            } else {
                Err(anyhow!(answer))
            }
        }
    }
}

fn detach_stdio() {
    if let Ok(null) = fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        let fd = null.into_raw_fd();
        for target in 0..3 {
            unsafe { libc::dup2(fd, target) };
        }
    }
}

enum Log {
    Stderr,
    File(PathBuf),
    Syslog,
}

fn init_logging(to: Log) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TRESOR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match to {
        Log::Stderr => builder.with_writer(std::io::stderr).try_init(),
        Log::File(path) => match fs::OpenOptions::new().create(true).append(true).open(&path) {
            Ok(file) => builder.with_ansi(false).with_writer(std::sync::Mutex::new(file)).try_init(),
            Err(_) => builder.with_ansi(false).with_writer(|| Syslog).try_init(),
        },
        Log::Syslog => builder.with_ansi(false).without_time().with_writer(|| Syslog).try_init(),
    };
}

/// Sends each formatted event to syslog(3) as one message.
struct Syslog;

impl Write for Syslog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf).trim_end().replace('\0', "");
        if let Ok(msg) = std::ffi::CString::new(text) {
            unsafe {
                libc::openlog(c"tresor".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON);
                libc::syslog(libc::LOG_INFO, c"%s".as_ptr(), msg.as_ptr());
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
