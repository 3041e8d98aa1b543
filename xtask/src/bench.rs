//! `cargo xtask bench`: Tresor against gocryptfs and the bare directory they
//! both sit on, in one run, printed as one table.
//!
//! Each workload runs on every target in turn, in an order that rotates from
//! one workload (and round) to the next so that a noisy moment does not
//! always land on the same target:
//!
//! 1. sequential write of one file in 1 MiB writes, fsync, close (MB/s); the
//!    page cache is dropped, then the file is read back in 1 MiB reads (MB/s);
//! 2. on a file laid down beforehand, 4 KiB reads, then 4 KiB writes (and one
//!    fsync at the end), at 4 KiB-aligned offsets from a fixed seed (ops/s);
//! 3. create N empty files, stat each, unlink each (ops/s each);
//! 4. the peak resident memory (VmHWM) of each mount daemon over the run.
//!
//! Every block read is checked against the block index stamped into it when
//! written, so a mount that returns wrong data fails instead of looking fast.
//!
//! Run as root (`cargo xtask bench`, or `--quick` for a smoke run): root
//! drops the page cache before the reads, and installs gocryptfs and fuse3
//! with apt-get when they are missing. `--help` lists the options.
//!
//! Everything happens in a fresh directory under `target/` (or `--dir`),
//! removed at the end. Mounts are unmounted on the way out, on error and on
//! Ctrl-C too; a watchdog aborts the FUSE connection of a mount whose daemon
//! stops answering, so a hung daemon fails its cells instead of the run.

mod backend;
mod io500;
mod two_nodes;

use std::{
    collections::BTreeMap,
    error::Error,
    ffi::OsStr,
    fmt::Write as _,
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, OnceLock,
    },
    thread,
    time::{Duration, Instant},
};

type Res<T = ()> = Result<T, Box<dyn Error>>;

const MIB: u64 = 1 << 20;
const BLOCK: u64 = 4096;
const PASSPHRASE: &str = "tresor bench passphrase, not a secret";

const USAGE: &str = "usage: cargo xtask bench [--quick] [--only raw,gocryptfs,tresor] [--rounds N] [--dir DIR]
                         [--tresor-bin PATH] [--tresor-opts OPTS] [--cipher NAME] [--gocryptfs-args ARGS]
                         [--timeout SECS] [--keep] [--seq-mib N] [--rand-ops N] [--files N]

  --quick            smoke run: 128 MiB sequential, 2,000 random ops on 64 MiB, 2,000 files
  --seq-mib N        sequential file size in MiB (after --quick, overrides it)
  --rand-ops N       random 4 KiB ops each way (and a random-I/O file of max(64, 4*N/256) MiB)
  --files N          files to create, stat and unlink
  --only LIST        targets to run, comma-separated (default raw,gocryptfs,tresor; also
                     tresor-audit-off: a second Tresor mount with -o audit=off, to measure the
                     audit log's cost)
  --rounds N         repeat every workload N times and report the median (default 3; 1 with --quick)
  --dir DIR          work in a new directory inside DIR (default: target/)
  --tresor-bin PATH  use this tresor binary instead of `cargo build --release -p tresor`
  --tresor-opts OPTS extra `-o` options for `tresor mount` (e.g. cache_timeout=1,threads=4)
  --cipher NAME      content cipher for `tresor init` (default: tresor's own default)
  --gocryptfs-args A extra gocryptfs mount arguments, space-separated (e.g. -sharedstorage)
  --timeout SECS     abort a FUSE mount that makes one workload step take longer (default 600)
  --keep             keep the work directory (mounts are still unmounted)

Two nodes on shared storage (IO500 shapes; see xtask/src/bench/two_nodes.rs):
  --backend B        local, gluster or ceph: two client mounts (\"nodes\") of one volume, brought up
                     with tests/backends/B.sh (and down afterwards), or one already up is reused; raw,
                     gocryptfs -sharedstorage vs tresor, gocryptfs vs tresor cache_timeout=1
  --scale F          multiply every size of the --backend run (default 1: ~1 min local, ~10 min per parallel FS here)
  --workers N        worker processes' threads, spread over both nodes (default 4)
  --ls-entries N     entries for the `ls -l` row (default 2,000 x scale; the issue's goal is 20,000)
  --keep-backend     leave a back end this run brought up running";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Target {
    Raw,
    Gocryptfs,
    Tresor,
    /// Tresor with its audit log off (`-o audit=off`): not run by default.
    TresorAuditOff,
    /// gocryptfs with `-sharedstorage` (no kernel attribute or entry
    /// cache), for the metadata rows at Tresor's default caching.
    GocryptfsUncached,
    /// Tresor with `cache_timeout=1`, for the metadata rows at gocryptfs's
    /// default caching (1 s).
    TresorCached,
}

impl Target {
    const ALL: [Target; 3] = [Target::Raw, Target::Gocryptfs, Target::Tresor];
    const KNOWN: [Target; 4] = [Target::Raw, Target::Gocryptfs, Target::Tresor, Target::TresorAuditOff];

    fn is_tresor(self) -> bool {
        matches!(self, Target::Tresor | Target::TresorAuditOff)
    }

    fn name(self) -> &'static str {
        match self {
            Target::Raw => "raw",
            Target::Gocryptfs => "gocryptfs",
            Target::Tresor => "tresor",
            Target::TresorAuditOff => "tresor-audit-off",
            Target::GocryptfsUncached => "gocryptfs -sharedstorage",
            Target::TresorCached => "tresor cache_timeout=1",
        }
    }

    /// The table column this target's numbers go in.
    fn column(self) -> Target {
        match self {
            Target::GocryptfsUncached => Target::Gocryptfs,
            Target::TresorCached => Target::Tresor,
            t => t,
        }
    }

    /// Where the metadata numbers of this target go besides their own row:
    /// the rows that compare both file systems at one caching setting.
    fn equal_caching_rows(self, m: Metric, opts: &Opts) -> Option<Metric> {
        let (uncached, cached) = match m {
            Metric::RandRead => (Metric::RandReadUncached, Metric::RandReadCached),
            Metric::RandWrite => (Metric::RandWriteUncached, Metric::RandWriteCached),
            Metric::Create => (Metric::CreateUncached, Metric::CreateCached),
            Metric::Stat => (Metric::StatUncached, Metric::StatCached),
            Metric::Unlink => (Metric::UnlinkUncached, Metric::UnlinkCached),
            _ => return None,
        };
        match self {
            Target::GocryptfsUncached => Some(uncached),
            Target::TresorCached => Some(cached),
            Target::Gocryptfs if opts.gocryptfs_args.is_empty() => Some(cached),
            Target::Tresor if !opts.tresor_opts.as_deref().unwrap_or("").contains("cache_timeout") => Some(uncached),
            _ => None,
        }
    }

    /// Extra mounts for the equal-caching rows: they run the random and
    /// metadata workloads, whose figures depend on kernel caching.
    fn equal_caching_only(self) -> bool {
        matches!(self, Target::GocryptfsUncached | Target::TresorCached)
    }
}

struct Sizes {
    seq: u64,
    rand_file: u64,
    rand_ops: u64,
    rand_cap: Duration,
    files: usize,
}

struct Opts {
    quick: bool,
    sizes: Sizes,
    targets: Vec<Target>,
    rounds: usize,
    gocryptfs_args: Vec<String>,
    dir: Option<PathBuf>,
    tresor_bin: Option<PathBuf>,
    tresor_opts: Option<String>,
    cipher: Option<String>,
    timeout: Duration,
    keep: bool,
    /// `--backend`: the two-node run on shared storage.
    backend: Option<backend::Backend>,
    scale: f64,
    workers: usize,
    ls_entries: usize,
    keep_backend: bool,
}

fn parse_args(args: &[String]) -> Res<Opts> {
    let mut opts = Opts {
        quick: false,
        sizes: Sizes { seq: 1024 * MIB, rand_file: 256 * MIB, rand_ops: 20_000, rand_cap: secs(30), files: 10_000 },
        targets: Target::ALL.to_vec(),
        rounds: 0,
        gocryptfs_args: Vec::new(),
        dir: None,
        tresor_bin: None,
        tresor_opts: None,
        cipher: None,
        timeout: secs(600),
        keep: false,
        backend: None,
        scale: 1.0,
        workers: 4,
        ls_entries: 0,
        keep_backend: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--quick" => {
                opts.quick = true;
                opts.sizes =
                    Sizes { seq: 128 * MIB, rand_file: 64 * MIB, rand_ops: 2_000, rand_cap: secs(10), files: 2_000 };
            }
            "--only" => {
                let list = value()?;
                let mut targets = Vec::new();
                for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let t = Target::KNOWN.into_iter().find(|t| t.name() == name).ok_or_else(|| {
                        format!("--only: unknown target {name:?} (raw, gocryptfs, tresor, tresor-audit-off)")
                    })?;
                    if !targets.contains(&t) {
                        targets.push(t);
                    }
                }
                if targets.is_empty() {
                    return Err("--only: no targets given".into());
                }
                targets.sort();
                opts.targets = targets;
            }
            "--rounds" => {
                opts.rounds = value()?.parse().map_err(|_| "--rounds takes a whole number")?;
                if opts.rounds == 0 {
                    return Err("--rounds must be at least 1".into());
                }
            }
            "--gocryptfs-args" => opts.gocryptfs_args = value()?.split_whitespace().map(str::to_owned).collect(),
            "--dir" => opts.dir = Some(value()?.into()),
            "--tresor-bin" => opts.tresor_bin = Some(value()?.into()),
            "--tresor-opts" => opts.tresor_opts = Some(value()?),
            "--cipher" => opts.cipher = Some(value()?),
            "--timeout" => opts.timeout = secs(value()?.parse().map_err(|_| "--timeout takes whole seconds")?),
            "--keep" => opts.keep = true,
            "--backend" => opts.backend = Some(backend::Backend::parse(&value()?)?),
            "--scale" => {
                opts.scale = value()?.parse().map_err(|_| "--scale takes a number")?;
                if opts.scale <= 0.0 || opts.scale.is_nan() {
                    return Err("--scale must be above 0".into());
                }
            }
            "--workers" => {
                opts.workers = value()?.parse().map_err(|_| "--workers takes a whole number")?;
                if opts.workers < 2 || !opts.workers.is_multiple_of(2) {
                    return Err("--workers must be even (half of them on each node) and at least 2".into());
                }
            }
            "--keep-backend" => opts.keep_backend = true,
            "--ls-entries" => opts.ls_entries = value()?.parse().map_err(|_| "--ls-entries takes a whole number")?,
            "--seq-mib" => opts.sizes.seq = value()?.parse::<u64>().map_err(|_| "--seq-mib takes MiB")?.max(1) * MIB,
            "--rand-ops" => {
                let n: u64 = value()?.parse().map_err(|_| "--rand-ops takes a whole number")?;
                opts.sizes.rand_ops = n;
                opts.sizes.rand_file = (n * 4 / 256).max(64) * MIB;
            }
            "--files" => opts.sizes.files = value()?.parse().map_err(|_| "--files takes a whole number")?,
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    if opts.rounds == 0 {
        opts.rounds = if opts.quick { 1 } else { 3 };
    }
    Ok(opts)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

// ---------------------------------------------------------------------------
// Metrics and results

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Metric {
    SeqWrite,
    SeqRead,
    RandRead,
    RandWrite,
    Create,
    Stat,
    Unlink,
    RandReadUncached,
    RandWriteUncached,
    CreateUncached,
    StatUncached,
    UnlinkUncached,
    RandReadCached,
    RandWriteCached,
    CreateCached,
    StatCached,
    UnlinkCached,
    MountTime,
    PeakRss,
}

impl Metric {
    const ALL: [Metric; 19] = [
        Metric::SeqWrite,
        Metric::SeqRead,
        Metric::RandRead,
        Metric::RandWrite,
        Metric::Create,
        Metric::Stat,
        Metric::Unlink,
        Metric::RandReadUncached,
        Metric::RandWriteUncached,
        Metric::CreateUncached,
        Metric::StatUncached,
        Metric::UnlinkUncached,
        Metric::RandReadCached,
        Metric::RandWriteCached,
        Metric::CreateCached,
        Metric::StatCached,
        Metric::UnlinkCached,
        Metric::MountTime,
        Metric::PeakRss,
    ];

    fn label(self, s: &Sizes) -> String {
        let cold = if is_root() { "cold cache" } else { "WARM cache" };
        match self {
            Metric::SeqWrite => format!("seq write {}, 1 MiB writes + fsync (MB/s)", size(s.seq)),
            Metric::SeqRead => format!("seq read {}, {cold}, 1 MiB reads (MB/s)", size(s.seq)),
            Metric::RandRead => format!("random 4 KiB read, {} file, {cold} (ops/s)", size(s.rand_file)),
            Metric::RandWrite => format!("random 4 KiB write, {} file, + fsync (ops/s)", size(s.rand_file)),
            Metric::Create => format!("create {} empty files (ops/s)", group(s.files as f64)),
            Metric::Stat => format!("stat {} files (ops/s)", group(s.files as f64)),
            Metric::Unlink => format!("unlink {} files (ops/s)", group(s.files as f64)),
            Metric::RandReadUncached => "  random read, no kernel cache on either (gocryptfs -sharedstorage)".into(),
            Metric::RandWriteUncached => "  random write, no kernel cache on either (gocryptfs -sharedstorage)".into(),
            Metric::RandReadCached => "  random read, 1 s kernel cache on both (tresor cache_timeout=1)".into(),
            Metric::RandWriteCached => "  random write, 1 s kernel cache on both (tresor cache_timeout=1)".into(),
            Metric::CreateUncached => "  create, no kernel cache on either (gocryptfs -sharedstorage)".into(),
            Metric::StatUncached => "  stat, no kernel cache on either (gocryptfs -sharedstorage)".into(),
            Metric::UnlinkUncached => "  unlink, no kernel cache on either (gocryptfs -sharedstorage)".into(),
            Metric::CreateCached => "  create, 1 s kernel cache on both (tresor cache_timeout=1)".into(),
            Metric::StatCached => "  stat, 1 s kernel cache on both (tresor cache_timeout=1)".into(),
            Metric::UnlinkCached => "  unlink, 1 s kernel cache on both (tresor cache_timeout=1)".into(),
            Metric::MountTime => "mount incl. key unlock (s, lower is better)".into(),
            Metric::PeakRss => "daemon peak RSS, VmHWM (MiB, lower is better)".into(),
        }
    }
}

#[derive(Default)]
struct Cell {
    values: Vec<f64>,
    error: Option<String>,
}

impl Cell {
    fn median(&self) -> Option<f64> {
        let mut v = self.values.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
    }
}

#[derive(Default)]
struct Results {
    cells: BTreeMap<(Metric, Target), Cell>,
}

impl Results {
    fn push(&mut self, m: Metric, t: Target, v: f64) {
        self.cells.entry((m, t)).or_default().values.push(v);
    }

    fn fail(&mut self, m: Metric, t: Target, e: &str) {
        let cell = self.cells.entry((m, t)).or_default();
        if cell.error.is_none() {
            cell.error = Some(e.to_owned());
        }
    }

    /// Records what target `t` measured in the rows it belongs to: its
    /// own (not for the metadata-only extra mounts) and the equal-caching
    /// rows.
    fn push_as(&mut self, t: Target, m: Metric, v: f64, opts: &Opts) {
        if !t.equal_caching_only() {
            self.push(m, t, v);
        }
        if let Some(eq) = t.equal_caching_rows(m, opts) {
            self.push(eq, t.column(), v);
        }
    }

    fn fail_as(&mut self, t: Target, m: Metric, e: &str, opts: &Opts) {
        if !t.equal_caching_only() {
            self.fail(m, t, e);
        }
        if let Some(eq) = t.equal_caching_rows(m, opts) {
            self.fail(eq, t.column(), &format!("{}: {e}", t.name()));
        }
    }
}

// ---------------------------------------------------------------------------
// Ctrl-C, and a watchdog for hung mounts

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static ABORTED: AtomicBool = AtomicBool::new(false);
/// While a workload step runs on a FUSE mount: when it must be done by, and
/// the mount's fusectl connection directory.
static WATCH: Mutex<Option<(Instant, Vec<PathBuf>)>> = Mutex::new(None);

extern "C" fn on_signal(sig: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    // A second Ctrl-C ends the run at once.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

fn check_interrupt() -> Res {
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err("interrupted".into());
    }
    Ok(())
}

fn start_watchdog() {
    thread::spawn(|| loop {
        thread::sleep(Duration::from_millis(500));
        let due = match &*WATCH.lock().unwrap() {
            Some((deadline, conns)) if Instant::now() > *deadline => Some(conns.clone()),
            _ => None,
        };
        if let Some(conns) = due {
            if !ABORTED.swap(true, Ordering::SeqCst) {
                for conn in conns {
                    eprintln!("bench: the mount stopped answering; aborting its FUSE connection ({})", conn.display());
                    if let Err(e) = abort_connection(&conn) {
                        eprintln!("bench: could not abort the connection: {e}; the run may hang");
                    }
                }
            }
        }
    });
}

/// Makes sure fusectl is mounted, so the watchdog can abort a connection.
/// Done with mount(2) itself: with a mount hung, a child process could hang
/// too (exec closes inherited descriptors, and closing one on the hung mount
/// waits for the daemon).
fn mount_fusectl() {
    let root = Path::new(FUSECTL);
    if root.is_dir() && fs::read_dir(root).map(|mut d| d.next().is_none()).unwrap_or(false) {
        let none = std::ptr::null();
        unsafe { libc::mount(c"fusectl".as_ptr(), c"/sys/fs/fuse/connections".as_ptr(), c"fusectl".as_ptr(), 0, none) };
    }
}

const FUSECTL: &str = "/sys/fs/fuse/connections";

fn abort_connection(conn: &Path) -> Res {
    if !conn.exists() {
        mount_fusectl();
    }
    fs::write(conn.join("abort"), "1").map_err(|e| format!("{}: {e}", conn.join("abort").display()))?;
    Ok(())
}

/// Runs `f`, letting the watchdog abort the mount behind `conn` if it takes
/// longer than `timeout`.
fn guarded<T>(conn: Option<&Path>, timeout: Duration, f: impl FnOnce() -> Res<T>) -> Res<T> {
    let conns: Vec<PathBuf> = conn.into_iter().map(Path::to_owned).collect();
    guarded_all(&conns, timeout, f)
}

/// [`guarded`] for a step that runs on several mounts at once (the two
/// nodes of `--backend`): a timeout aborts all of them.
fn guarded_all<T>(conns: &[PathBuf], timeout: Duration, f: impl FnOnce() -> Res<T>) -> Res<T> {
    ABORTED.store(false, Ordering::SeqCst);
    *WATCH.lock().unwrap() = (!conns.is_empty()).then(|| (Instant::now() + timeout, conns.to_vec()));
    let r = f();
    *WATCH.lock().unwrap() = None;
    if ABORTED.load(Ordering::SeqCst) {
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        return Err(format!("timed out after {} s, FUSE connection aborted ({e})", timeout.as_secs()).into());
    }
    r
}

// ---------------------------------------------------------------------------
// Guards: the work directory and the mounts

struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Some(m) = mounts_under(&self.path).first() {
            eprintln!("bench: {} is still mounted; leaving {} in place", m.display(), self.path.display());
            return;
        }
        if self.keep {
            eprintln!("bench: kept {}", self.path.display());
        } else if let Err(e) = fs::remove_dir_all(&self.path) {
            eprintln!("bench: removing {}: {e}", self.path.display());
        }
    }
}

struct MountGuard {
    mountpoint: PathBuf,
    live: bool,
}

impl MountGuard {
    /// Unmounts, retrying while busy, then lazily as a last resort.
    fn unmount(&mut self) -> Res {
        if !self.live {
            return Ok(());
        }
        let mut last = String::new();
        for attempt in 0..10 {
            if attempt > 0 {
                thread::sleep(Duration::from_millis(300));
            }
            let out = Command::new("fusermount3").arg("-u").arg(&self.mountpoint).stdin(Stdio::null()).output()?;
            if out.status.success() || !is_mounted(&self.mountpoint) {
                self.live = false;
                return Ok(());
            }
            last = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        }
        let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(&self.mountpoint).status();
        self.live = is_mounted(&self.mountpoint);
        Err(format!("fusermount3 -u {} kept failing ({last}); unmounted lazily", self.mountpoint.display()).into())
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            eprintln!("bench: {e}");
        }
    }
}

/// `/proc/self/mountinfo`: (mount point, major:minor, fs type, source).
fn mountinfo() -> Vec<(PathBuf, String, String, String)> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let unescape =
        |s: &str| s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\");
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let l: Vec<&str> = left.split(' ').collect();
            let r: Vec<&str> = right.split(' ').collect();
            Some((
                PathBuf::from(unescape(l.get(4)?)),
                l.get(2)?.to_string(),
                r.first()?.to_string(),
                r.get(1)?.to_string(),
            ))
        })
        .collect()
}

/// The kernel's view of a mount: its per-mount and super-block options.
fn mount_options(mountpoint: &Path) -> Option<String> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = mountpoint.to_str()?.replace(' ', "\\040");
    text.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        (*l.get(4)? == want)
            .then(|| format!("{} {} {}", r.first().unwrap_or(&""), l.get(5).unwrap_or(&""), r.get(2).unwrap_or(&"")))
    })
}

fn is_mounted(path: &Path) -> bool {
    mountinfo().iter().any(|(mp, ..)| mp == path)
}

fn mounts_under(path: &Path) -> Vec<PathBuf> {
    mountinfo().into_iter().map(|(mp, ..)| mp).filter(|mp| mp.starts_with(path)).collect()
}

/// The fusectl directory of the FUSE mount at `mountpoint`, named by its
/// device number (found without touching the mount itself).
fn fuse_connection(mountpoint: &Path) -> Option<PathBuf> {
    let (_, dev, ..) = mountinfo().into_iter().rev().find(|(mp, ..)| mp == mountpoint)?;
    let (major, minor) = dev.split_once(':')?;
    let (major, minor): (u64, u64) = (major.parse().ok()?, minor.parse().ok()?);
    Some(Path::new(FUSECTL).join(((major << 20) | minor).to_string()))
}

// ---------------------------------------------------------------------------
// Processes and the machine

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn which(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(cmd)).find(|p| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false)
    })
}

/// Runs a command to completion; an error carries its output.
fn run_cmd(cmd: &mut Command) -> Res<String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let args: Vec<_> = cmd.get_args().map(OsStr::to_string_lossy).collect();
        return Err(format!(
            "`{} {}` failed ({}): {}{}",
            cmd.get_program().to_string_lossy(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            stdout.trim()
        )
        .into());
    }
    Ok(stdout)
}

/// Installs gocryptfs and fuse3 from Debian's packages when they are missing
/// and we are root.
fn ensure_tools(targets: &[Target]) -> Res {
    let mut missing = Vec::new();
    if targets.iter().any(|t| *t != Target::Raw) && which("fusermount3").is_none() {
        missing.push("fuse3");
    }
    if targets.contains(&Target::Gocryptfs) && which("gocryptfs").is_none() {
        missing.push("gocryptfs");
    }
    if !missing.is_empty() {
        if !is_root() {
            return Err(format!(
                "missing {}: install with `sudo apt-get install -y gocryptfs fuse3` (as root the bench installs \
                 them itself), or leave gocryptfs out with --only raw,tresor",
                missing.join(" and ")
            )
            .into());
        }
        eprintln!("bench: installing {} with apt-get", missing.join(" "));
        let apt = |args: &[&str]| {
            Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").stdin(Stdio::null()).status()
        };
        if !apt(&["update", "-qq"])?.success() {
            return Err("apt-get update failed".into());
        }
        let mut install = vec!["install", "-y", "-qq"];
        install.extend(&missing);
        if !apt(&install)?.success() {
            return Err(format!("apt-get install {} failed", missing.join(" ")).into());
        }
    }
    if targets.iter().any(|t| *t != Target::Raw) && !Path::new("/dev/fuse").exists() {
        return Err("/dev/fuse is missing: FUSE mounts are impossible here; try --only raw".into());
    }
    Ok(())
}

/// The `tresor` binary to bench, when one is `needed`: `--tresor-bin`, or a
/// release build.
fn tresor_binary(opts: &Opts, workspace: &Path, needed: bool) -> Res<Option<PathBuf>> {
    Ok(if !needed {
        None
    } else if let Some(bin) = &opts.tresor_bin {
        Some(fs::canonicalize(bin).map_err(|e| format!("--tresor-bin {}: {e}", bin.display()))?)
    } else {
        Some(build_tresor(workspace)?)
    })
}

/// A new work directory, `bench-PID` inside `--dir` (default `target/`).
fn work_dir(opts: &Opts, workspace: &Path) -> Res<WorkDir> {
    let parent = opts.dir.clone().unwrap_or_else(|| target_dir(workspace));
    fs::create_dir_all(&parent)?;
    let parent = fs::canonicalize(&parent)?;
    let work = WorkDir { path: parent.join(format!("bench-{}", std::process::id())), keep: opts.keep };
    fs::create_dir(&work.path).map_err(|e| format!("creating {}: {e}", work.path.display()))?;
    let _ = WORK.set(work.path.clone());
    Ok(work)
}

fn target_dir(workspace: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace.join("target"))
}

fn build_tresor(workspace: &Path) -> Res<PathBuf> {
    eprintln!("bench: cargo build --release -p tresor");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "tresor"])
        .current_dir(workspace)
        .stdin(Stdio::null())
        .status()?;
    if !status.success() {
        return Err("building tresor failed; to bench without it: cargo xtask bench --only raw,gocryptfs".into());
    }
    Ok(target_dir(workspace).join("release/tresor"))
}

/// The pid of the daemon serving `mountpoint`: the process of that program
/// with the mount point among its arguments.
fn daemon_pid(program: &str, mountpoint: &Path) -> Option<i32> {
    use std::os::unix::ffi::OsStrExt;
    let me = std::process::id() as i32;
    let want = mountpoint.as_os_str().as_bytes();
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: i32 = e.file_name().to_str()?.parse().ok()?;
        let cmdline = fs::read(e.path().join("cmdline")).ok()?;
        let mut args = cmdline.split(|b| *b == 0);
        let argv0 = Path::new(OsStr::from_bytes(args.next()?));
        let is_program = argv0.file_name().is_some_and(|n| n.to_string_lossy().contains(program));
        (pid != me && is_program && args.any(|a| a == want)).then_some(pid)
    })
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && fs::read_to_string(format!("/proc/{pid}/status"))
            .map(|s| !s.lines().any(|l| l.starts_with("State:") && l.contains("zombie")))
            .unwrap_or(false)
}

/// A `/proc/PID/status` field in kB, as MiB.
fn status_mib(pid: i32, field: &str) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn machine(work: &Path) -> Vec<String> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let aes = if cpuinfo.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "aes")) {
        "AES-NI"
    } else {
        "no AES-NI"
    };
    let nproc = thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kb| format!("{:.1} GiB RAM", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    let read = |p: &str| fs::read_to_string(p).map(|s| s.trim().to_owned()).unwrap_or_default();
    let disk = mountinfo()
        .into_iter()
        .filter(|(mp, ..)| work.starts_with(mp))
        .max_by_key(|(mp, ..)| mp.as_os_str().len())
        .map(|(mp, _, fstype, source)| format!("{source} ({fstype}) mounted at {}", mp.display()))
        .unwrap_or_else(|| "unknown".into());
    vec![
        format!("machine: nproc {nproc}, {model} ({aes}), {mem}"),
        format!(
            "kernel:  {} {} {}",
            read("/proc/sys/kernel/ostype"),
            read("/proc/sys/kernel/osrelease"),
            std::env::consts::ARCH
        ),
        format!("disk:    {disk}; work dir {}", work.display()),
        format!(
            "load:    {} (1/5/15-min load average at the start; the run shares the machine with whatever else runs)",
            read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        ),
    ]
}

// ---------------------------------------------------------------------------
// Targets

struct Live {
    target: Target,
    /// Where the workloads run: the bare directory or the plaintext view.
    dir: PathBuf,
    /// The fusectl connection of the mount.
    conn: Option<PathBuf>,
    daemon: Option<i32>,
    /// Set once the target fails in a way later workloads would repeat.
    dead: Option<String>,
}

fn passfile(work: &Path) -> Res<PathBuf> {
    let path = work.join("passphrase");
    fs::write(&path, format!("{PASSPHRASE}\n"))?;
    Ok(path)
}

/// Mounts `program` at `mountpoint` with `cmd`, registering the guard first
/// so a half-made mount is still undone.
fn mount(
    cmd: &mut Command,
    program: &str,
    mountpoint: &Path,
    guards: &mut Vec<MountGuard>,
) -> Res<(f64, Option<PathBuf>, Option<i32>)> {
    fs::create_dir_all(mountpoint)?;
    guards.push(MountGuard { mountpoint: mountpoint.to_owned(), live: true });
    let t = Instant::now();
    let r = run_cmd(cmd);
    let took = t.elapsed().as_secs_f64();
    if let Err(e) = r {
        guards.last_mut().unwrap().live = is_mounted(mountpoint);
        return Err(e);
    }
    if !is_mounted(mountpoint) {
        return Err(format!("{program} returned success but {} is not mounted", mountpoint.display()).into());
    }
    fs::metadata(mountpoint).map_err(|e| format!("{program} mounted, but stat on the mount point fails: {e}"))?;
    Ok((took, fuse_connection(mountpoint), daemon_pid(program, mountpoint)))
}

fn setup_gocryptfs(
    work: &Path,
    pass: &Path,
    opts: &Opts,
    guards: &mut Vec<MountGuard>,
    target: Target,
) -> Res<(Live, f64)> {
    let uncached = target == Target::GocryptfsUncached;
    let stem = if uncached { "gocryptfs-uncached" } else { "gocryptfs" };
    let cipher = work.join(format!("{stem}.cipher"));
    let mnt = work.join(format!("{stem}.mnt"));
    fs::create_dir_all(&cipher)?;
    run_cmd(Command::new("gocryptfs").args(["-init", "-q", "-passfile"]).arg(pass).arg(&cipher))?;
    let mut cmd = Command::new("gocryptfs");
    cmd.args(["-q", "-passfile"]).arg(pass).args(&opts.gocryptfs_args);
    if uncached {
        cmd.arg("-sharedstorage");
    }
    let (took, conn, daemon) = mount(cmd.arg(&cipher).arg(&mnt), "gocryptfs", &mnt, guards)?;
    Ok((Live { target, dir: mnt, conn, daemon, dead: None }, took))
}

/// Also returns what `tresor init` said about the volume it made.
/// `target` is `Tresor` or `TresorAuditOff` (its own volume, `-o audit=off`).
fn setup_tresor(
    work: &Path,
    pass: &Path,
    bin: &Path,
    opts: &Opts,
    guards: &mut Vec<MountGuard>,
    target: Target,
) -> Res<(Live, f64, String)> {
    let cached = target == Target::TresorCached;
    let stem = match target {
        Target::TresorCached => "tresor-cached",
        Target::TresorAuditOff => "tresor-audit-off",
        _ => "tresor",
    };
    let home = work.join(format!("{stem}.home"));
    let backing = work.join(format!("{stem}.backing"));
    let mnt = work.join(format!("{stem}.mnt"));
    let id = home.join("identity");
    fs::create_dir_all(&home)?;
    let tresor = || {
        let mut c = Command::new(bin);
        c.env("TRESOR_DIR", &home).env_remove("TRESOR_IDENTITY");
        c
    };
    run_cmd(tresor().args(["id", "new", "--name", "bench", "--out"]).arg(&id).arg("--passfile").arg(pass))?;
    let mut init = tresor();
    init.arg("init").arg(&backing).arg("--steward").arg(&id).arg("--passfile").arg(pass);
    if let Some(c) = &opts.cipher {
        init.args(["--cipher", c]);
    }
    if target == Target::TresorAuditOff {
        // New volumes require their audit log; this one lets it be off.
        init.arg("--audit-optional");
    }
    let created = run_cmd(&mut init)?;
    // "created volume ID in DIR (aes-256-gcm-siv, 4 KiB blocks, 4096-byte headers); steward ..."
    let created = created.trim();
    let params = created
        .split_once(" (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(p, _)| p.to_owned())
        .unwrap_or_else(|| created.to_owned());
    let mut m = tresor();
    m.arg("mount").arg(&backing).arg(&mnt).arg("-i").arg(&id).arg("--passfile").arg(pass);
    m.arg("--log-file").arg(work.join(format!("{stem}.log")));
    let mut o = opts.tresor_opts.clone().unwrap_or_default();
    if cached {
        o = if o.is_empty() { "cache_timeout=1".into() } else { format!("{o},cache_timeout=1") };
    }
    if !o.is_empty() {
        m.args(["-o", &o]);
    }
    if target == Target::TresorAuditOff {
        m.args(["-o", "audit=off"]);
    }
    let (took, conn, daemon) = mount(&mut m, "tresor", &mnt, guards)?;
    Ok((Live { target, dir: mnt, conn, daemon, dead: None }, took, params))
}

// ---------------------------------------------------------------------------
// Workloads

/// xorshift64*: a fixed, seedable stream, the same for every target.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

const STAMP: u64 = 0x5452_4553_4f52_0000;

/// A buffer of incompressible bytes.
fn pattern(len: u64) -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = vec![0u8; len as usize];
    for chunk in buf.chunks_mut(8) {
        let x = rng.next().to_le_bytes();
        chunk.copy_from_slice(&x[..chunk.len()]);
    }
    buf
}

/// Writes the file-wide index of each 4 KiB block into its first 8 bytes.
fn stamp(buf: &mut [u8], first_block: u64) {
    for (i, b) in buf.chunks_mut(BLOCK as usize).enumerate() {
        b[..8].copy_from_slice(&(STAMP ^ (first_block + i as u64)).to_le_bytes());
    }
}

fn check_stamps(buf: &[u8], first_block: u64) -> Res {
    for (i, b) in buf.chunks(BLOCK as usize).enumerate() {
        let want = STAMP ^ (first_block + i as u64);
        let got = u64::from_le_bytes(b[..8].try_into().unwrap());
        if got != want {
            return Err(format!(
                "wrong data: block {} reads as {} (stamp {got:#018x})",
                first_block + i as u64,
                if got ^ STAMP < 1 << 40 { format!("block {}", got ^ STAMP) } else { "garbage".to_owned() }
            )
            .into());
        }
    }
    Ok(())
}

/// The work directory, whose file system is synced before caches are dropped.
static WORK: OnceLock<PathBuf> = OnceLock::new();

/// Writes back the disk under the work directory and drops the page cache.
/// syncfs, not sync: a hung FUSE mount elsewhere on the machine must not
/// hang the bench.
fn drop_caches() -> bool {
    if let Some(f) = WORK.get().and_then(|w| File::open(w).ok()) {
        use std::os::fd::AsRawFd;
        unsafe { libc::syncfs(f.as_raw_fd()) };
    }
    fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn ctx<T>(what: &str, path: &Path, r: std::io::Result<T>) -> Res<T> {
    r.map_err(|e| format!("{what} {}: {e}", path.display()).into())
}

/// Writes `size` bytes in 1 MiB writes, fsyncs and closes; returns seconds.
fn seq_write(path: &Path, size: u64, buf: &mut [u8]) -> Res<f64> {
    let t = Instant::now();
    let mut f = ctx("create", path, OpenOptions::new().write(true).create(true).truncate(true).open(path))?;
    for i in 0..size / MIB {
        check_interrupt()?;
        stamp(buf, i * (MIB / BLOCK));
        ctx("write", path, f.write_all(buf))?;
    }
    ctx("fsync", path, f.sync_all())?;
    drop(f);
    Ok(t.elapsed().as_secs_f64())
}

/// Reads the file back in 1 MiB reads, checking every block; returns seconds.
fn seq_read(path: &Path, size: u64, buf: &mut [u8]) -> Res<f64> {
    let t = Instant::now();
    let mut f = ctx("open", path, File::open(path))?;
    for i in 0..size / MIB {
        check_interrupt()?;
        ctx("read", path, f.read_exact(buf))?;
        check_stamps(buf, i * (MIB / BLOCK))?;
    }
    if ctx("read", path, f.read(&mut buf[..1]))? != 0 {
        return Err(format!("{} is longer than the {size} bytes written", path.display()).into());
    }
    drop(f);
    Ok(t.elapsed().as_secs_f64())
}

/// 4 KiB preads (or pwrites, then one fsync) at random aligned offsets;
/// returns (ops done, seconds).
fn random_io(path: &Path, s: &Sizes, write: bool, seed: u64) -> Res<(u64, f64)> {
    let blocks = s.rand_file / BLOCK;
    let mut rng = Rng(seed);
    let mut buf = pattern(BLOCK);
    let t = Instant::now();
    let f = ctx("open", path, OpenOptions::new().read(true).write(write).open(path))?;
    let mut done = 0;
    while done < s.rand_ops && !(done % 256 == 0 && t.elapsed() > s.rand_cap) {
        if done % 256 == 0 {
            check_interrupt()?;
        }
        let b = rng.next() % blocks;
        if write {
            stamp(&mut buf, b);
            ctx("pwrite", path, f.write_all_at(&buf, b * BLOCK))?;
        } else {
            ctx("pread", path, f.read_exact_at(&mut buf, b * BLOCK))?;
            check_stamps(&buf, b)?;
        }
        done += 1;
    }
    if write {
        ctx("fsync", path, f.sync_all())?;
    }
    drop(f);
    Ok((done, t.elapsed().as_secs_f64()))
}

enum Workload {
    Sequential,
    Random,
    Metadata,
}

impl Workload {
    const ALL: [Workload; 3] = [Workload::Sequential, Workload::Random, Workload::Metadata];

    fn name(&self) -> &'static str {
        match self {
            Workload::Sequential => "sequential",
            Workload::Random => "random 4 KiB",
            Workload::Metadata => "metadata",
        }
    }

    fn metrics(&self) -> &'static [Metric] {
        match self {
            Workload::Sequential => &[Metric::SeqWrite, Metric::SeqRead],
            Workload::Random => &[Metric::RandRead, Metric::RandWrite],
            Workload::Metadata => &[Metric::Create, Metric::Stat, Metric::Unlink],
        }
    }

    /// Runs on `dir`, reporting each number as soon as it is measured.
    fn run(&self, dir: &Path, s: &Sizes, round: usize, out: &mut Vec<(Metric, f64)>) -> Res {
        let mb = |bytes: u64, secs: f64| bytes as f64 / 1e6 / secs;
        match self {
            Workload::Sequential => {
                let path = dir.join("seq.bin");
                let _ = fs::remove_file(&path);
                let mut buf = pattern(MIB);
                out.push((Metric::SeqWrite, mb(s.seq, seq_write(&path, s.seq, &mut buf)?)));
                drop_caches();
                out.push((Metric::SeqRead, mb(s.seq, seq_read(&path, s.seq, &mut buf)?)));
                ctx("unlink", &path, fs::remove_file(&path))?;
            }
            Workload::Random => {
                let path = dir.join("random.bin");
                let _ = fs::remove_file(&path);
                seq_write(&path, s.rand_file, &mut pattern(MIB))?;
                drop_caches();
                let seed = 0x7e50_0000 + round as u64;
                let (n, t) = random_io(&path, s, false, seed)?;
                out.push((Metric::RandRead, n as f64 / t));
                let (n, t) = random_io(&path, s, true, !seed)?;
                out.push((Metric::RandWrite, n as f64 / t));
                ctx("unlink", &path, fs::remove_file(&path))?;
            }
            Workload::Metadata => {
                let meta = dir.join("meta");
                let _ = fs::remove_dir_all(&meta);
                ctx("mkdir", &meta, fs::create_dir(&meta))?;
                let names: Vec<PathBuf> = (0..s.files).map(|i| meta.join(format!("file-{i:06}"))).collect();
                let n = s.files as f64;
                let t = Instant::now();
                for (i, p) in names.iter().enumerate() {
                    if i % 256 == 0 {
                        check_interrupt()?;
                    }
                    ctx("create", p, OpenOptions::new().write(true).create_new(true).open(p))?;
                }
                out.push((Metric::Create, n / t.elapsed().as_secs_f64()));
                let t = Instant::now();
                for (i, p) in names.iter().enumerate() {
                    if i % 256 == 0 {
                        check_interrupt()?;
                    }
                    let m = ctx("stat", p, fs::metadata(p))?;
                    if !m.is_file() || m.len() != 0 {
                        return Err(format!("stat {}: not an empty file", p.display()).into());
                    }
                }
                out.push((Metric::Stat, n / t.elapsed().as_secs_f64()));
                let t = Instant::now();
                for (i, p) in names.iter().enumerate() {
                    if i % 256 == 0 {
                        check_interrupt()?;
                    }
                    ctx("unlink", p, fs::remove_file(p))?;
                }
                out.push((Metric::Unlink, n / t.elapsed().as_secs_f64()));
                ctx("rmdir", &meta, fs::remove_dir(&meta))?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The run

pub fn run(args: &[String]) -> Res {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let opts = parse_args(args)?;
    let started = Instant::now();
    let handler: extern "C" fn(libc::c_int) = on_signal;
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
    if let Some(backend) = opts.backend {
        return two_nodes::run(&opts, backend);
    }
    ensure_tools(&opts.targets)?;
    if is_root() && opts.targets.iter().any(|t| *t != Target::Raw) {
        mount_fusectl();
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let tresor_bin = tresor_binary(&opts, &workspace, opts.targets.iter().any(|t| t.is_tresor()))?;
    let work = work_dir(&opts, &workspace)?;
    let mut notes = Vec::new();
    // On ext4, a new inode is not taken from among those freed in the last
    // minute or more, and skipping them reads inode tables: creates slow
    // down up to sixfold right after another target's unlinks in the same
    // block group (perf: `recently_deleted`). The Orlov allocator puts the
    // subdirectories of a "top" directory (chattr +T) in different groups,
    // so every target creates its files away from the others' deletions.
    let top = Command::new("chattr").arg("+T").arg(&work.path).stdin(Stdio::null()).output();
    if !top.map(|o| o.status.success()).unwrap_or(false) {
        notes.push("chattr +T failed (not ext4?): the targets' files may share block groups".to_owned());
    }
    // Declared after `work`, so dropped (unmounted) before it is removed.
    let mut guards: Vec<MountGuard> = Vec::new();

    let mut header = machine(&work.path);
    if !is_root() {
        notes.push("not root: page cache NOT dropped before the reads; the read numbers are warm-cache".to_owned());
    }
    let mut results = Results::default();
    let mut live = Vec::new();
    let pass = passfile(&work.path)?;
    let mut speed = String::new();
    // Both file systems at each other's default caching too, for the
    // metadata rows that compare them like for like.
    let mut targets = opts.targets.clone();
    if targets.contains(&Target::Gocryptfs) && targets.contains(&Target::Tresor) {
        targets.extend([Target::GocryptfsUncached, Target::TresorCached]);
    }
    for &target in &targets {
        check_interrupt()?;
        eprintln!("bench: setting up {}", target.name());
        let set = match target {
            Target::Raw => {
                let dir = work.path.join("raw");
                fs::create_dir(&dir)?;
                Ok((Live { target, dir, conn: None, daemon: None, dead: None }, None))
            }
            Target::Gocryptfs => {
                let version = run_cmd(Command::new("gocryptfs").arg("-version")).unwrap_or_default();
                // Its crypto backends on this CPU, and which one a default mount picks.
                speed = run_cmd(Command::new("gocryptfs").arg("-speed")).unwrap_or_else(|e| e.to_string());
                let gcm = speed
                    .lines()
                    .find(|l| l.starts_with("AES-GCM-256-") && l.contains("selected"))
                    .and_then(|l| l.split_whitespace().next())
                    .map(|b| match b.trim_start_matches("AES-GCM-256-") {
                        "Go" => "Go's crypto/aes".to_owned(),
                        "OpenSSL" => "OpenSSL".to_owned(),
                        other => other.to_owned(),
                    })
                    .unwrap_or_else(|| "backend unknown".into());
                header.push(format!("gocryptfs: {}", version.trim()));
                header.push(format!(
                    "           AES-256-GCM via {gcm} (auto mode, see -speed below), 4 KiB blocks; mount args: {}",
                    if opts.gocryptfs_args.is_empty() {
                        "defaults (kernel attr/entry cache 1 s)".to_owned()
                    } else {
                        opts.gocryptfs_args.join(" ")
                    }
                ));
                setup_gocryptfs(&work.path, &pass, &opts, &mut guards, target).map(|(l, t)| (l, Some(t)))
            }
            Target::GocryptfsUncached => {
                setup_gocryptfs(&work.path, &pass, &opts, &mut guards, target).map(|(l, _)| (l, None))
            }
            Target::TresorCached => {
                let bin = tresor_bin.as_deref().unwrap();
                setup_tresor(&work.path, &pass, bin, &opts, &mut guards, target).map(|(l, _, _)| (l, None))
            }
            Target::Tresor | Target::TresorAuditOff => {
                let bin = tresor_bin.as_deref().unwrap();
                let version = run_cmd(Command::new(bin).arg("--version")).unwrap_or_default();
                header.push(format!("{}: {} ({})", target.name(), version.trim(), bin.display()));
                setup_tresor(&work.path, &pass, bin, &opts, &mut guards, target).map(|(l, t, params)| {
                    header.push(format!(
                        "           {params}; mount -o {}{}",
                        opts.tresor_opts.as_deref().unwrap_or("defaults (cache_timeout=0: no kernel attr/entry cache)"),
                        if target == Target::TresorAuditOff { ", audit=off" } else { "" }
                    ));
                    (l, Some(t))
                })
            }
        };
        match set {
            Ok((l, took)) => {
                if let Some(t) = took {
                    results.push(Metric::MountTime, target, t);
                }
                if l.conn.is_some() && !target.equal_caching_only() {
                    if let Some(o) = mount_options(&l.dir) {
                        header.push(format!("           kernel mount: {o}"));
                    }
                }
                if l.conn.is_some() && l.daemon.is_none() {
                    notes.push(format!("{}: could not find the daemon process; no memory figure", target.name()));
                }
                live.push(l);
            }
            Err(e) => {
                let msg = format!("setup failed: {e}");
                eprintln!("bench: {}: {msg}", target.name());
                for m in Metric::ALL {
                    results.fail_as(target, m, &msg, &opts);
                }
            }
        }
    }
    start_watchdog();

    for round in 0..opts.rounds {
        for (wi, workload) in Workload::ALL.into_iter().enumerate() {
            let n = live.len();
            for k in 0..n {
                check_interrupt()?;
                // Rotate the order by workload and by round.
                let l = &mut live[(k + wi + round) % n];
                if l.target.equal_caching_only() && matches!(workload, Workload::Sequential) {
                    continue;
                }
                if let Some(why) = &l.dead {
                    for &m in workload.metrics() {
                        results.fail_as(l.target, m, why, &opts);
                    }
                    continue;
                }
                eprintln!("bench: round {}/{}: {} on {}", round + 1, opts.rounds, workload.name(), l.target.name());
                let mut got = Vec::new();
                let r = guarded(l.conn.as_deref(), opts.timeout, || workload.run(&l.dir, &opts.sizes, round, &mut got));
                for &(m, v) in &got {
                    results.push_as(l.target, m, v, &opts);
                }
                if let Err(e) = r {
                    check_interrupt()?;
                    let mut msg = format!("round {}: {e}", round + 1);
                    if ABORTED.load(Ordering::SeqCst) {
                        l.dead = Some("skipped: the mount was aborted earlier".into());
                    }
                    if let Some(pid) = l.daemon.filter(|p| !alive(*p)) {
                        msg.push_str(&format!(" [the {} daemon, pid {pid}, has exited]", l.target.name()));
                        l.dead = Some("skipped: the daemon had exited".into());
                    }
                    eprintln!("bench: {}: {msg}", l.target.name());
                    for &m in workload.metrics() {
                        if !got.iter().any(|(g, _)| *g == m) {
                            results.fail_as(l.target, m, &msg, &opts);
                        }
                    }
                }
            }
        }
    }

    for l in live.iter().filter(|l| !l.target.equal_caching_only()) {
        if let Some(pid) = l.daemon {
            match status_mib(pid, "VmHWM:") {
                Some(hwm) => {
                    results.push(Metric::PeakRss, l.target, hwm);
                    if let Some(rss) = status_mib(pid, "VmRSS:") {
                        notes.push(format!(
                            "{} daemon (pid {pid}): VmHWM {hwm:.1} MiB, VmRSS at the end {rss:.1} MiB",
                            l.target.name()
                        ));
                    }
                }
                None => results.fail(Metric::PeakRss, l.target, "the daemon was gone by the end"),
            }
        }
    }
    // Unmount now, and see that each daemon goes away with its mount.
    for g in guards.iter_mut() {
        if let Err(e) = g.unmount() {
            notes.push(e.to_string());
        }
    }
    for l in &live {
        if let Some(pid) = l.daemon {
            let t = Instant::now();
            while alive(pid) && t.elapsed() < secs(5) {
                thread::sleep(Duration::from_millis(50));
            }
            if alive(pid) {
                notes.push(format!("{} daemon (pid {pid}) still running 5 s after the unmount", l.target.name()));
            }
        }
    }
    if opts.targets.contains(&Target::Tresor) {
        for name in ["tresor.log", "tresor-cached.log"] {
            let Ok(log) = fs::read_to_string(work.path.join(name)) else { continue };
            let bad: Vec<&str> = log.lines().filter(|l| l.contains("ERROR") || l.contains("WARN")).collect();
            if !bad.is_empty() {
                notes.push(format!("{name}: {} warning/error line(s); the first ones:", bad.len()));
                notes.extend(bad.iter().take(5).map(|l| format!("  {}", l.trim())));
            }
        }
    }

    print!("{}", report(&opts, &header, &results, &notes, &speed, started.elapsed()));
    drop(guards);
    drop(work);
    Ok(())
}

// ---------------------------------------------------------------------------
// The table

fn size(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes & ((1 << 30) - 1) == 0 {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

/// 12345.6 -> "12,346".
fn group(v: f64) -> String {
    let digits = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        group(v)
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn report(opts: &Opts, header: &[String], r: &Results, notes: &[String], speed: &str, took: Duration) -> String {
    let mut s = String::new();
    let s_ = &opts.sizes;
    let _ = writeln!(
        s,
        "\nTresor mount benchmark ({}; {} round{}{})",
        if opts.quick { "--quick" } else { "full" },
        opts.rounds,
        if opts.rounds == 1 { "" } else { "s, median" },
        if s_.rand_ops > 0 {
            format!("; {} random ops each way, at most {} s", group(s_.rand_ops as f64), s_.rand_cap.as_secs())
        } else {
            String::new()
        }
    );
    for h in header {
        let _ = writeln!(s, "{h}");
    }
    let _ = writeln!(s);
    let audit_off = opts.targets.contains(&Target::TresorAuditOff);
    let mut rows = vec![vec![
        "workload".to_owned(),
        "raw".into(),
        "gocryptfs".into(),
        "tresor".into(),
        "tresor/gocryptfs".into(),
        "tresor/raw".into(),
    ]];
    if audit_off {
        rows[0].extend(["tresor audit off".to_owned(), "audit on/off".into()]);
    }
    let mut errors = Vec::new();
    for m in Metric::ALL {
        let mut cell = |t: Target| -> (String, Option<f64>) {
            if !opts.targets.contains(&t) {
                return ("–".into(), None);
            }
            if t == Target::Raw && matches!(m, Metric::MountTime | Metric::PeakRss) {
                return ("–".into(), None);
            }
            match r.cells.get(&(m, t)) {
                Some(c) => {
                    if let Some(e) = &c.error {
                        match errors
                            .iter_mut()
                            .find(|(et, ee, _): &&mut (Target, String, Vec<String>)| *et == t && ee == e)
                        {
                            Some((_, _, rows)) => rows.push(m.label(s_)),
                            None => errors.push((t, e.clone(), vec![m.label(s_)])),
                        }
                    }
                    match (c.median(), &c.error) {
                        (Some(v), None) => (num(v), Some(v)),
                        (Some(v), Some(_)) => (format!("{} (!)", num(v)), Some(v)),
                        (None, _) => ("error".into(), None),
                    }
                }
                None => ("–".into(), None),
            }
        };
        let (raw, rv) = cell(Target::Raw);
        let (goc, gv) = cell(Target::Gocryptfs);
        let (tre, tv) = cell(Target::Tresor);
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "–".into(),
        };
        let mut row = vec![m.label(s_), raw, goc, tre, ratio(tv, gv), ratio(tv, rv)];
        if audit_off {
            let (off, ov) = cell(Target::TresorAuditOff);
            row.extend([off, ratio(tv, ov)]);
        }
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> =
        (0..columns).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for (n, row) in rows.iter().enumerate() {
        let mut line = String::from("|");
        for (i, c) in row.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            if i == 0 {
                let _ = write!(line, " {c}{} |", " ".repeat(pad));
            } else {
                let _ = write!(line, " {}{c} |", " ".repeat(pad));
            }
        }
        let _ = writeln!(s, "{line}");
        if n == 0 {
            let mut sep = String::from("|");
            for (i, w) in widths.iter().enumerate() {
                let _ = write!(sep, "{}|", if i == 0 { "-".repeat(w + 2) } else { format!("{}:", "-".repeat(w + 1)) });
            }
            let _ = writeln!(s, "{sep}");
        }
    }
    let _ = writeln!(
        s,
        "\nRatios above 1 mean Tresor is faster, except for the mount time and memory rows (lower is better). \
         MB = 10^6 bytes; \"(!)\" marks a cell where some round failed."
    );
    let default_caching = opts.gocryptfs_args.is_empty()
        && !opts.tresor_opts.as_deref().unwrap_or("").contains("cache_timeout")
        && opts.targets.contains(&Target::Gocryptfs)
        && opts.targets.contains(&Target::Tresor);
    if default_caching {
        let _ = writeln!(
            s,
            "Caching differs by default: gocryptfs lets the kernel cache attributes and lookups for 1 s, Tresor \
             (cache_timeout=0, safe on shared storage) sends every lookup and stat to the daemon, and the kernel \
             asks it for the file's attributes before each read; that mostly decides the stat and random read \
             rows. The indented rows compare them like for like, on two more mounts: \
             gocryptfs -sharedstorage (no kernel cache, as Tresor's default) and Tresor cache_timeout=1 (as \
             gocryptfs's default)."
        );
    }
    if !is_root() {
        let _ = writeln!(s, "Page cache not dropped (not root).");
    }
    for (t, e, rows) in &errors {
        let _ = writeln!(
            s,
            "error: {} ({}): {e}",
            t.name(),
            if rows.len() > 3 { format!("{} rows", rows.len()) } else { rows.join("; ") }
        );
    }
    for n in notes {
        let _ = writeln!(s, "note: {n}");
    }
    if !speed.is_empty() {
        let _ = writeln!(s, "\ngocryptfs -speed (its crypto backends on this CPU):");
        for l in speed.lines() {
            let _ = writeln!(s, "  {l}");
        }
    }
    let _ = writeln!(s, "\nbench took {:.0} s", took.as_secs_f64());
    s
}
