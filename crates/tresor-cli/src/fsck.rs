//! `tresor fsck`: checks a volume's backing tree without a mount (the
//! `tresor-fsck` crate does the walk); this command checks the registry
//! against this client's pin and generation, shows progress, prints the
//! findings and exits in e2fsck's convention.

use std::{
    fs,
    io::{IsTerminal, Read, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use tresor_format::{names, volume::MAX_VOLUME_LEN, Volume};
use tresor_fsck::{Class, Finding, Options, Progress, Report};

use crate::{config, id, output::terminal, passphrase::PassSource};

/// Exit code for an operational error (e2fsck's 8).
const EXIT_OPERATIONAL: u8 = 8;

#[derive(Args, Debug)]
pub struct FsckArgs {
    /// The volume's backing directory. Mounts may stay live on any node.
    pub backing: PathBuf,
    /// One JSON document: findings, summary (and the access table).
    #[arg(long)]
    pub json: bool,
    /// Remove stale temporaries and move damaged files to
    /// tresor.quarantine/ at the backing root (nothing is deleted).
    #[arg(long)]
    pub repair: bool,
    /// Per member: files and bytes they can read, and files nobody but
    /// their creator can read (for stewards).
    #[arg(long)]
    pub report_access: bool,
    /// Check headers only, not content, even where the identity can read it.
    #[arg(long)]
    pub headers_only: bool,
    /// A member's identity file: decrypts names, checks directory places,
    /// and opens the content of every file it can read. Without it, fsck
    /// checks structure and signatures only.
    #[arg(long, short, value_name = "FILE", env = "TRESOR_IDENTITY")]
    pub identity: Option<PathBuf>,
    #[command(flatten)]
    pub pass: PassSource,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The `--json` document.
#[derive(Serialize)]
struct Output<'a> {
    backing: String,
    #[serde(flatten)]
    report: &'a Report,
    exit_code: u8,
    /// Peak resident memory of this process (VmHWM), KiB.
    vm_hwm_kib: Option<u64>,
}

/// VmHWM from /proc/self/status (Linux): the peak resident set.
fn vm_hwm_kib() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn run(args: FsckArgs) -> Result<u8> {
    match check(&args) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("tresor fsck: {e:#}");
            Ok(EXIT_OPERATIONAL)
        }
    }
}

fn registry_finding(class: Class, message: String) -> Finding {
    Finding { class, path: names::VOLUME_FILE.into(), backing: names::VOLUME_FILE.into(), message, repaired: None }
}

/// Reads the volume file (no symlink, never blocking, bounded) and checks
/// it as every command does: against the pinned steward key, its expiry,
/// and the highest generation this client has seen. A registry that fails
/// is reported, and, if it is at least consistent (self-signed), the tree
/// is still checked with it, to diagnose.
pub fn registry(backing: &Path) -> Result<(Volume, Vec<Finding>)> {
    let path = backing.join(names::VOLUME_FILE);
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&path)
        .with_context(|| format!("{} is not a Tresor volume (no {})", backing.display(), names::VOLUME_FILE))?;
    if !file.metadata()?.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let mut bytes = Vec::new();
    file.take(MAX_VOLUME_LEN as u64 + 1).read_to_end(&mut bytes)?;
    if Volume::version_of(&bytes).ok() == Some(tresor_format::volume::VOLUME_VERSION_MIGRATABLE) {
        bail!(
            "{} is volume format version {}: a steward runs `tresor migrate {}` first",
            path.display(),
            tresor_format::volume::VOLUME_VERSION_MIGRATABLE,
            backing.display()
        );
    }
    let mut findings = Vec::new();
    let pin = config::pin_for(&bytes, None)?;
    if let config::Pin::FirstUse(_) = pin {
        eprintln!("tresor: {}", pin.describe());
    }
    let volume = match Volume::open(&bytes, &[pin.key().ed25519]) {
        Ok(v) => {
            if let Err(e) = config::check_generation(&v) {
                findings.push(registry_finding(Class::RegistryRollback, format!("{e:#}")));
            }
            v
        }
        Err(e) => {
            findings.push(registry_finding(
                Class::Registry,
                format!("{e} (checked against the steward key pinned by this client)"),
            ));
            let v = Volume::open_self_signed(&bytes)
                .with_context(|| format!("{} does not verify even by itself", path.display()))?;
            let seen: u64 = fs::read_to_string(config::generation_path(&v.id))
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            if v.generation < seen {
                findings.push(registry_finding(
                    Class::RegistryRollback,
                    format!("generation {} is older than generation {seen} seen before", v.generation),
                ));
            }
            v
        }
    };
    if let Err(e) = volume.check_current(tresor_sys::now_secs()) {
        findings.push(registry_finding(Class::RegistryExpired, e.to_string()));
    }
    Ok((volume, findings))
}

fn check(args: &FsckArgs) -> Result<u8> {
    let (volume, registry_findings) = registry(&args.backing)?;
    let identity = args.identity.as_ref().map(|p| id::unlock(p, &args.pass).map(Arc::new)).transpose()?;
    // A repair changes the volume: what it does goes to the audit log,
    // opened first, so a log that cannot be written stops it beforehand.
    let session = match (&identity, args.repair) {
        (Some(me), true) => {
            let name_key = volume.name_key(me).context("unwrapping the name key (for the audit log)")?;
            Some(crate::audit::Session::open(&args.backing, me.clone(), &volume, &name_key, "fsck --repair")?)
        }
        (None, true) => bail!(
            "--repair changes the volume, and records what it did in the volume's audit log: give a member's identity \
             (-i FILE)"
        ),
        _ => None,
    };
    let opts = Options {
        repair: args.repair,
        report_access: args.report_access,
        headers_only: args.headers_only,
        now: tresor_sys::now_secs(),
    };
    let progress = Arc::new(Progress::default());
    let done = Arc::new(AtomicBool::new(false));
    let shower = (!args.quiet).then(|| {
        let (p, d) = (progress.clone(), done.clone());
        std::thread::spawn(move || show_progress(&p, &d))
    });
    let result = tresor_fsck::check(&args.backing, &volume, identity.as_deref(), &opts, &progress);
    done.store(true, Ordering::Relaxed);
    if let Some(t) = shower {
        let _ = t.join();
    }
    let mut report = result.with_context(|| format!("checking {}", args.backing.display()))?;
    if let Some(session) = session {
        record_repairs(&session, &report.findings)?;
        session.close()?;
    }
    tresor_fsck::add_findings(&mut report, registry_findings);
    let code = report.exit_code();
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = Output {
            backing: args.backing.display().to_string(),
            report: &report,
            exit_code: code,
            vm_hwm_kib: vm_hwm_kib(),
        };
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        print_text(&mut out, &report)?;
    }
    Ok(code)
}

/// One audit record per repair: `unlink` for a temporary removed,
/// `rename` for an entry moved to quarantine; the path is the finding's
/// (plaintext where the identity decrypts it), the action in `intent`.
fn record_repairs(session: &crate::audit::Session, findings: &[Finding]) -> Result<()> {
    use tresor_audit::{Event, Op};
    for f in findings {
        let Some(done) = &f.repaired else { continue };
        let op = if done == "removed" { Op::Unlink } else { Op::Rename };
        let path = f.path.trim_start_matches('/');
        session.record(
            Event::new(op).path(path.as_bytes()).intent(format!("fsck --repair: {}: {done}", f.class.as_str())),
        )?;
    }
    Ok(())
}

/// A progress line: redrawn on a terminal, every 5 s otherwise.
fn show_progress(p: &Progress, done: &AtomicBool) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty { Duration::from_millis(200) } else { Duration::from_secs(5) };
    let start = Instant::now();
    let mut last = Instant::now();
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if last.elapsed() < every {
            continue;
        }
        last = Instant::now();
        let files = Progress::get(&p.files);
        let secs = start.elapsed().as_secs_f64().max(0.001);
        let line = format!(
            "fsck: {files} files, {} directories, {:.1} MB content, {} findings; {:.0} files/s",
            Progress::get(&p.directories),
            Progress::get(&p.bytes) as f64 / 1e6,
            Progress::get(&p.findings),
            files as f64 / secs
        );
        if tty {
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
    }
    if tty && last.elapsed() < Duration::from_secs(3600) && start.elapsed() >= every {
        eprint!("\r\x1b[K");
    }
}

fn print_text(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    for f in &report.findings {
        write!(out, "{:<18} {}: {}", f.class.as_str(), terminal(&f.path), terminal(&f.message))?;
        if f.path != f.backing {
            write!(out, " [backing {}]", f.backing)?;
        }
        match &f.repaired {
            Some(r) => writeln!(out, " -- REPAIRED: {r}")?,
            None => writeln!(out)?,
        }
    }
    let s = &report.summary;
    writeln!(
        out,
        "{} directories, {} files ({} headers verified, {} with full content: {:.1} MB), {} symlinks, {} special \
         files, {} audit logs in {:.2} s ({:.0} files/s){}",
        s.directories,
        s.files,
        s.headers_checked,
        s.content_checked,
        s.content_bytes as f64 / 1e6,
        s.symlinks,
        s.special_files,
        s.audit_logs,
        s.seconds,
        s.files_per_second,
        if s.names_checked { "" } else { "; names not checked (no identity)" }
    )?;
    if let Some(rows) = &report.access {
        writeln!(
            out,
            "{:<24} {:<8} {:>10} {:>14} {:>12} {:>14}",
            "member", "role", "files", "bytes", "sole files", "sole bytes"
        )?;
        for r in rows {
            writeln!(
                out,
                "{:<24} {:<8} {:>10} {:>14} {:>12} {:>14}",
                terminal(&r.member),
                r.role,
                r.files_readable,
                r.bytes_readable,
                r.sole_reader_files,
                r.sole_reader_bytes
            )?;
            for p in &r.sole_reader_examples {
                writeln!(out, "    only {} can read {}", terminal(&r.member), terminal(p))?;
            }
        }
    }
    match report.exit_code() {
        0 => writeln!(out, "clean"),
        1 => writeln!(out, "{} findings, all corrected", s.findings),
        _ => writeln!(
            out,
            "{} findings, {} corrected, {} left uncorrected{}",
            s.findings,
            s.corrected,
            s.uncorrected,
            if s.corrected == 0 { " (--repair does what is safe)" } else { "" }
        ),
    }
}
