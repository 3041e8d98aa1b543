//! `cargo xtask bench --backend local|gluster|ceph`: two nodes of one shared
//! volume (see backend.rs), the IO500-shaped workloads of io500.rs, and five
//! targets side by side:
//!
//! - raw: the shared file system itself;
//! - gocryptfs -sharedstorage against Tresor's default (neither lets the
//!   kernel cache attributes or lookups): like for like on shared storage;
//! - gocryptfs's default (1 s kernel caches) against Tresor with
//!   `cache_timeout=1`: like for like at gocryptfs's default.
//!
//! Each file system is mounted twice, once over each node's view of one
//! backing directory. Every phase is measured with: its wall time; the CPU
//! time of the target's two daemons (run time of all their threads, /proc/PID/task/*/schedstat); the
//! daemons' system calls (`perf stat -e raw_syscalls:sys_enter -p PIDS`,
//! counted in the kernel, in the same pass); and on GlusterFS and CephFS the
//! requests the back end served (backend.rs). Divided by the phase's
//! operations (transfers, files, entries), they are the round trips per
//! operation printed beside the throughput.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use super::{
    backend::{Backend, Counts, Nodes},
    check_interrupt, ensure_tools, guarded_all, io500, machine, mount, mount_fusectl, num, passfile, run_cmd,
    start_watchdog, status_mib, tresor_binary, work_dir, MountGuard, Opts, Res, Target, WORK,
};
use io500::{Ctx, Outcome, Row, Scale, Workload};

/// The columns, in order: raw, then the two like-for-like pairs.
const TARGETS: [Target; 5] =
    [Target::Raw, Target::GocryptfsUncached, Target::Tresor, Target::Gocryptfs, Target::TresorCached];
const PAIRS: [(Target, Target); 2] =
    [(Target::GocryptfsUncached, Target::Tresor), (Target::Gocryptfs, Target::TresorCached)];

struct Live {
    target: Target,
    dirs: [PathBuf; 2],
    conns: Vec<PathBuf>,
    daemons: Vec<i32>,
}

#[derive(Default)]
struct Sample {
    secs: f64,
    out: Outcome,
    cpu: Option<f64>,
    syscalls: Option<u64>,
    requests: Option<Counts>,
    error: Option<String>,
    /// Items read back wrong, from a later check (ior-hard's full read).
    bad: u64,
    /// Reading the data back failed (set on the write row).
    failed: Option<String>,
    checked: u64,
}

type Results = BTreeMap<(Row, Target), Sample>;

fn column_name(t: Target) -> &'static str {
    match t {
        Target::Raw => "raw",
        Target::GocryptfsUncached => "gocryptfs -sharedstorage",
        Target::Tresor => "tresor",
        Target::Gocryptfs => "gocryptfs",
        Target::TresorCached => "tresor cache_timeout=1",
        Target::TresorAuditOff => "tresor audit=off",
    }
}

fn wanted(opts: &Opts, t: Target) -> bool {
    let family = match t {
        Target::GocryptfsUncached => Target::Gocryptfs,
        Target::TresorCached | Target::TresorAuditOff => Target::Tresor,
        t => t,
    };
    opts.targets.contains(&family)
}

pub(super) fn run(opts: &Opts, backend: Backend) -> Res {
    let started = Instant::now();
    ensure_tools(&opts.targets)?;
    mount_fusectl();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let targets: Vec<Target> = TARGETS.into_iter().filter(|t| wanted(opts, *t)).collect();
    let bin = tresor_binary(opts, &workspace, targets.iter().any(|t| t.column() == Target::Tresor))?;
    let work = work_dir(opts, &workspace)?;
    let name = work.path.file_name().unwrap().to_string_lossy().into_owned();
    // As in the local bench: each target's files in block groups of their own (ext4).
    let _ = Command::new("chattr").arg("+T").arg(&work.path).stdin(Stdio::null()).output();
    let scale = Scale::new(opts.scale, opts.workers, opts.ls_entries);
    let mut header = machine(&work.path);
    let nodes = Nodes::up(&workspace, backend, &work.path, &name, opts.keep_backend)?;
    header.push(format!("nodes:   {}", nodes.what));
    let mut notes = nodes.notes.clone();
    // Declared after `nodes`: the FUSE mounts go before the back end does.
    let mut guards: Vec<MountGuard> = Vec::new();
    let pass = passfile(&work.path)?;
    let mut live = Vec::new();
    for &t in &targets {
        check_interrupt()?;
        eprintln!("bench: setting up {} (two mounts)", column_name(t));
        let r = match t.column() {
            Target::Raw => {
                let dirs = nodes.dirs.clone().map(|d| d.join("raw"));
                fs::create_dir(&dirs[0])
                    .map(|_| Live { target: t, dirs, conns: Vec::new(), daemons: Vec::new() })
                    .map_err(Into::into)
            }
            Target::Gocryptfs => setup_gocryptfs(&work.path, &pass, &nodes, opts, t, &mut guards),
            _ => setup_tresor(&work.path, &pass, bin.as_deref().unwrap(), &nodes, opts, t, &mut guards, &mut header),
        };
        match r {
            Ok(l) => live.push(l),
            Err(e) => notes.push(format!("{}: setup failed: {e}", column_name(t))),
        }
    }
    if let Some(v) = run_cmd(Command::new("gocryptfs").arg("-version")).ok().filter(|_| wanted(opts, Target::Gocryptfs))
    {
        header.push(format!("gocryptfs: {}", v.trim()));
    }
    start_watchdog();
    let perf = Command::new("perf").arg("--version").output().is_ok_and(|o| o.status.success());
    if !perf {
        notes.push("perf is missing: no syscall counts (apt-get install linux-perf)".into());
    }
    let mut results = Results::new();
    for (wi, workload) in Workload::ALL.into_iter().enumerate() {
        for k in 0..live.len() {
            check_interrupt()?;
            let l = &live[(k + wi) % live.len()];
            eprintln!("bench: {:?} on {}", workload, column_name(l.target));
            let c = Ctx { dirs: l.dirs.clone(), backing: &nodes.dirs, scale: &scale };
            let mut d = Driver { target: l.target, daemons: &l.daemons, nodes: &nodes, perf, results: &mut results };
            if let Err(e) = guarded_all(&l.conns, opts.timeout, || workload.run(&c, &mut d)) {
                check_interrupt()?;
                eprintln!("bench: {}: {workload:?}: {e}", column_name(l.target));
                for &row in workload.rows() {
                    let s = results.entry((row, l.target)).or_default();
                    if s.secs == 0.0 && s.error.is_none() {
                        s.error = Some(e.to_string());
                    }
                }
            }
        }
    }
    for l in &live {
        let hwm: Vec<String> =
            l.daemons.iter().filter_map(|p| status_mib(*p, "VmHWM:")).map(|m| format!("{m:.1}")).collect();
        if !hwm.is_empty() {
            notes.push(format!("{} daemons' peak RSS (VmHWM): {} MiB", column_name(l.target), hwm.join(" / ")));
        }
    }
    for g in guards.iter_mut() {
        if let Err(e) = g.unmount() {
            notes.push(e.to_string());
        }
    }
    for log in
        fs::read_dir(&work.path)?.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "log"))
    {
        let text = fs::read_to_string(&log).unwrap_or_default();
        let bad: Vec<&str> = text.lines().filter(|l| l.contains("ERROR") || l.contains("WARN")).collect();
        if !bad.is_empty() {
            let name = log.file_name().unwrap().to_string_lossy();
            notes.push(format!("{name}: {} warning/error line(s), the first: {}", bad.len(), bad[0].trim()));
        }
    }
    print!("{}", report(opts, backend, &scale, &header, &results, &nodes, &notes, started.elapsed()));
    drop(guards);
    drop(nodes);
    drop(work);
    Ok(())
}

fn setup_gocryptfs(
    work: &Path,
    pass: &Path,
    nodes: &Nodes,
    opts: &Opts,
    t: Target,
    guards: &mut Vec<MountGuard>,
) -> Res<Live> {
    let stem = if t == Target::GocryptfsUncached { "gocryptfs-shared" } else { "gocryptfs" };
    let cipher = nodes.dirs.clone().map(|d| d.join(format!("{stem}.cipher")));
    fs::create_dir(&cipher[0])?;
    run_cmd(Command::new("gocryptfs").args(["-init", "-q", "-passfile"]).arg(pass).arg(&cipher[0]))?;
    mount_both(work, stem, t, "gocryptfs", guards, |i, mnt| {
        let mut cmd = Command::new("gocryptfs");
        cmd.args(["-q", "-passfile"]).arg(pass).args(&opts.gocryptfs_args);
        if t == Target::GocryptfsUncached {
            cmd.arg("-sharedstorage");
        }
        cmd.arg(&cipher[i]).arg(mnt);
        cmd
    })
}

/// Mounts `program` once per node, at `WORK/STEM.node1` and `.node2`, with
/// the command `cmd(node, mountpoint)`.
fn mount_both(
    work: &Path,
    stem: &str,
    target: Target,
    program: &str,
    guards: &mut Vec<MountGuard>,
    cmd: impl Fn(usize, &Path) -> Command,
) -> Res<Live> {
    let dirs = [1, 2].map(|n| work.join(format!("{stem}.node{n}")));
    let mut l = Live { target, dirs: dirs.clone(), conns: Vec::new(), daemons: Vec::new() };
    for (i, mnt) in dirs.iter().enumerate() {
        let (_, conn, daemon) = mount(&mut cmd(i, mnt), program, mnt, guards)?;
        l.conns.extend(conn);
        l.daemons.extend(daemon);
    }
    Ok(l)
}

#[allow(clippy::too_many_arguments)]
fn setup_tresor(
    work: &Path,
    pass: &Path,
    bin: &Path,
    nodes: &Nodes,
    opts: &Opts,
    t: Target,
    guards: &mut Vec<MountGuard>,
    header: &mut Vec<String>,
) -> Res<Live> {
    let stem = if t == Target::TresorCached { "tresor-cached" } else { "tresor" };
    let home = work.join(format!("{stem}.home"));
    let id = home.join("identity");
    fs::create_dir_all(&home)?;
    let tresor = || {
        let mut c = Command::new(bin);
        c.env("TRESOR_DIR", &home).env_remove("TRESOR_IDENTITY");
        c
    };
    let backing = nodes.dirs.clone().map(|d| d.join(format!("{stem}.backing")));
    run_cmd(tresor().args(["id", "new", "--name", "bench", "--out"]).arg(&id).arg("--passfile").arg(pass))?;
    let mut init = tresor();
    init.arg("init").arg(&backing[0]).arg("--steward").arg(&id).arg("--passfile").arg(pass);
    if let Some(c) = &opts.cipher {
        init.args(["--cipher", c]);
    }
    let created = run_cmd(&mut init)?;
    let mut o: Vec<String> = opts.tresor_opts.iter().cloned().collect();
    if t == Target::TresorCached {
        o.push("cache_timeout=1".into());
    }
    if t == Target::Tresor {
        let version = run_cmd(tresor().arg("--version")).unwrap_or_default();
        header.push(format!("tresor:  {} ({}); {}", version.trim(), bin.display(), created.trim()));
    }
    mount_both(work, stem, t, "tresor", guards, |i, mnt| {
        let mut m = tresor();
        m.arg("mount").arg(&backing[i]).arg(mnt).arg("-i").arg(&id).arg("--passfile").arg(pass);
        m.arg("--log-file").arg(work.join(format!("{stem}.node{}.log", i + 1)));
        if !o.is_empty() {
            m.arg("-o").arg(o.join(","));
        }
        m
    })
}

// ---------------------------------------------------------------------------
// Measuring a phase

struct Driver<'a> {
    target: Target,
    daemons: &'a [i32],
    nodes: &'a Nodes,
    perf: bool,
    results: &'a mut Results,
}

/// CPU time of the processes in seconds: the sum over their threads of
/// the scheduler's run time (`/proc/PID/task/TID/schedstat`, in ns; the
/// utime + stime of /proc/PID/stat counts in 10 ms ticks, too coarse for
/// short phases). Both file systems keep their worker threads for the whole
/// mount, so a thread that ends mid-phase is rare.
fn cpu_secs(pids: &[i32]) -> Option<f64> {
    let mut ns = 0u64;
    for pid in pids {
        for task in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
            let text = fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            ns += text.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Some(ns as f64 / 1e9)
}

/// `perf stat` counting the system calls the daemons enter.
struct SyscallCount {
    child: Child,
    out: PathBuf,
}

impl SyscallCount {
    fn start(pids: &[i32]) -> Option<SyscallCount> {
        let out = WORK.get()?.join("perf-stat.csv");
        let list: Vec<String> = pids.iter().map(i32::to_string).collect();
        let child = Command::new("perf")
            .args(["stat", "-x,", "-e", "raw_syscalls:sys_enter", "-o"])
            .arg(&out)
            .args(["-p", &list.join(",")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        // perf attaches to every thread before it counts.
        thread::sleep(Duration::from_millis(150));
        Some(SyscallCount { child, out })
    }

    fn stop(mut self) -> Option<u64> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        self.child.wait().ok()?;
        let text = fs::read_to_string(&self.out).ok()?;
        let n = text.lines().find(|l| l.contains("raw_syscalls:sys_enter"))?.split(',').next()?.trim().to_owned();
        // perf prints "<not counted>" for a count of zero.
        if n.starts_with("<not") {
            return Some(0);
        }
        n.parse().ok()
    }
}

impl io500::Measure for Driver<'_> {
    fn phase(&mut self, row: Row, f: &mut dyn FnMut() -> Res<Outcome>) -> Res {
        let fuse = !self.daemons.is_empty();
        let perf = if fuse && self.perf { SyscallCount::start(self.daemons) } else { None };
        let req0 = self.nodes.snapshot();
        let cpu0 = cpu_secs(self.daemons).filter(|_| fuse);
        let t = Instant::now();
        let r = f();
        let secs = t.elapsed().as_secs_f64();
        let cpu1 = cpu_secs(self.daemons);
        let req1 = self.nodes.snapshot();
        let syscalls = perf.and_then(SyscallCount::stop);
        let s = self.results.entry((row, self.target)).or_default();
        match r {
            Ok(out) => {
                s.secs = secs;
                s.out = out;
                s.cpu = cpu0.zip(cpu1).map(|(a, b)| b - a);
                s.syscalls = syscalls;
                s.requests = req0.zip(req1).map(|(a, b)| {
                    b.into_iter().map(|(k, v)| (k.clone(), v.saturating_sub(a.get(&k).copied().unwrap_or(0)))).collect()
                });
                // A read that finds wrong data condemns the write that made it too.
                let write = match row {
                    Row::HardRead => Some(Row::HardWrite),
                    Row::MdHardRead => Some(Row::MdHardWrite),
                    _ => None,
                };
                if let Some(w) = write.filter(|_| out.bad > 0) {
                    self.verdict(w, out.bad, out.checked);
                }
                Ok(())
            }
            Err(e) => {
                s.error = Some(e.to_string());
                // A read that fails (EIO: a block that does not authenticate) condemns the write too.
                let write = match row {
                    Row::HardRead => Some(Row::HardWrite),
                    Row::MdHardRead => Some(Row::MdHardWrite),
                    _ => None,
                };
                if let Some(w) = write {
                    let short = e.to_string();
                    let short = short.rsplit(": ").next().unwrap_or(&short).to_owned();
                    self.results.entry((w, self.target)).or_default().failed =
                        Some(format!("FAILED: read back: {short}"));
                }
                Err(e)
            }
        }
    }

    fn verdict(&mut self, row: Row, bad: u64, checked: u64) {
        let s = self.results.entry((row, self.target)).or_default();
        s.bad = s.bad.max(bad);
        s.checked = s.checked.max(checked);
    }
}

// ---------------------------------------------------------------------------
// The tables

impl Sample {
    /// Higher is better: MB/s, ops/s; for `ls -l`, seconds (lower is better).
    fn value(&self, row: Row) -> Option<f64> {
        if self.error.is_some() || self.secs <= 0.0 {
            return None;
        }
        Some(if row == Row::LsL {
            self.secs
        } else if row.is_data() {
            self.out.bytes as f64 / 1e6 / self.secs
        } else {
            self.out.ops as f64 / self.secs
        })
    }

    fn wrong(&self) -> Option<String> {
        let (bad, of) = if self.out.bad > 0 { (self.out.bad, self.out.checked) } else { (self.bad, self.checked) };
        (bad > 0).then(|| format!("CORRUPT {bad}/{of}")).or_else(|| self.failed.as_ref().map(|_| "FAILED".to_owned()))
    }

    fn per_op(&self, n: u64) -> Option<f64> {
        (self.out.ops > 0).then(|| n as f64 / self.out.ops as f64)
    }
}

fn table(rows: &[Vec<String>]) -> String {
    let mut s = String::new();
    let widths: Vec<usize> =
        (0..rows[0].len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for (n, row) in rows.iter().enumerate() {
        let mut line = String::from("|");
        for (i, c) in row.iter().enumerate() {
            let pad = " ".repeat(widths[i] - c.chars().count());
            let _ = if i == 0 { write!(line, " {c}{pad} |") } else { write!(line, " {pad}{c} |") };
        }
        let _ = writeln!(s, "{line}");
        if n == 0 {
            let sep: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(i, w)| if i == 0 { "-".repeat(w + 2) } else { format!("{}:", "-".repeat(w + 1)) })
                .collect();
            let _ = writeln!(s, "|{}|", sep.join("|"));
        }
    }
    s
}

fn header_row(first: &str, with_ratio: bool) -> Vec<String> {
    let mut h = vec![first.to_owned(), column_name(Target::Raw).into()];
    for (g, t) in PAIRS {
        h.push(column_name(g).into());
        h.push(column_name(t).into());
        if with_ratio {
            h.push("T/G".into());
        }
    }
    h
}

#[allow(clippy::too_many_arguments)]
fn report(
    opts: &Opts,
    backend: Backend,
    scale: &Scale,
    header: &[String],
    r: &Results,
    nodes: &Nodes,
    notes: &[String],
    took: Duration,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nTresor two-node benchmark on {} (--scale {}, {} workers, half on each node; one run)",
        backend.name(),
        opts.scale,
        scale.workers
    );
    for h in header {
        let _ = writeln!(s, "{h}");
    }
    let get = |row: Row, t: Target| r.get(&(row, t));
    let mut misses = Vec::new();

    // Throughput.
    let mut rows = vec![header_row("row", true)];
    for row in Row::ALL {
        let mut line = vec![row.label(scale)];
        let cell = |t: Target| match get(row, t) {
            None => "–".to_owned(),
            Some(x) if x.error.is_some() => "error".into(),
            Some(x) => {
                let v = x.value(row).map(num).unwrap_or_else(|| "–".into());
                x.wrong().map(|w| format!("{v} {w}")).unwrap_or(v)
            }
        };
        line.push(cell(Target::Raw));
        for (g, t) in PAIRS {
            line.push(cell(g));
            line.push(cell(t));
            let ratio = match (get(row, g).and_then(|x| x.value(row)), get(row, t).and_then(|x| x.value(row))) {
                (Some(a), Some(b)) if a > 0.0 && b > 0.0 => {
                    let q = if row == Row::LsL { a / b } else { b / a };
                    let q = (q * 100.0).round() / 100.0;
                    let goal = if row.is_write() { 1.5 } else { 1.0 };
                    if q < goal {
                        misses.push(format!(
                            "{} {:.2} < {goal} ({} vs {})",
                            row.label(scale),
                            q,
                            column_name(t),
                            column_name(g)
                        ));
                    }
                    format!("{q:.2}{}", if q < goal { " *" } else { "" })
                }
                _ => "–".into(),
            };
            line.push(ratio);
        }
        rows.push(line);
    }
    let _ = writeln!(s, "\nThroughput (MB/s, ops/s; ls -l in seconds). T/G = Tresor's speed / gocryptfs's, * = below the goal (1.0; 1.5 for writes):\n");
    s.push_str(&table(&rows));

    // Round trips.
    let trips = |title: &str, f: &dyn Fn(&Sample) -> Option<f64>, raw: bool| {
        let mut rows = vec![header_row("row", false)];
        for row in Row::ALL {
            let mut line = vec![row.label(scale)];
            for t in std::iter::once(Target::Raw).chain(PAIRS.iter().flat_map(|(g, t)| [*g, *t])) {
                let v = get(row, t).filter(|x| x.error.is_none() && (raw || t != Target::Raw)).and_then(f);
                line.push(v.map(num).unwrap_or_else(|| "–".into()));
            }
            rows.push(line);
        }
        format!("\n{title}\n\n{}", table(&rows))
    };
    if nodes.counts() {
        let what = match backend {
            Backend::Ceph => "metadata requests + object operations the bench's two ceph-fuse clients sent",
            _ => "file operations the GlusterFS bricks served (volume profile)",
        };
        s.push_str(&trips(
            &format!("Back-end round trips per operation ({what}; an operation = a transfer, a file, an entry):"),
            &|x| x.per_op(x.requests.as_ref()?.get("total").copied()?),
            true,
        ));
    }
    s.push_str(&trips(
        "Daemon system calls per operation (both nodes' daemons, perf stat raw_syscalls:sys_enter):",
        &|x| x.per_op(x.syscalls?),
        false,
    ));
    s.push_str(&trips(
        "Daemon CPU (both nodes' daemons, scheduler run time of all their threads): seconds per GiB for data rows, microseconds per operation for the others:",
        &|x| {
            let cpu = x.cpu?;
            Some(if x.out.bytes > 0 && x.out.ops > 0 && x.out.bytes >= 4096 * x.out.ops {
                cpu / (x.out.bytes as f64 / (1u64 << 30) as f64)
            } else {
                cpu * 1e6 / x.out.ops.max(1) as f64
            })
        },
        false,
    ));

    // The biggest request types per operation, where the back end tells them apart.
    if nodes.counts() {
        let _ = writeln!(s, "\nBack-end requests per operation by type (the five largest):");
        for row in Row::ALL {
            for (g, t) in PAIRS.iter().take(1) {
                let mut parts = Vec::new();
                for t in [*g, *t] {
                    let Some(x) = get(row, t).filter(|x| x.error.is_none()) else { continue };
                    let Some(c) = &x.requests else { continue };
                    let mut by: Vec<(&String, &u64)> = c
                        .iter()
                        .filter(|(k, v)| {
                            *k != "total" && **v > 0 && !k.starts_with("mds requests") && !k.starts_with("osd ops")
                        })
                        .collect();
                    by.sort_by(|a, b| b.1.cmp(a.1));
                    let list: Vec<String> = by
                        .iter()
                        .take(5)
                        .map(|(k, v)| format!("{k} {}", num(**v as f64 / x.out.ops.max(1) as f64)))
                        .collect();
                    parts.push(format!("{}: {}", column_name(t), list.join(", ")));
                }
                if !parts.is_empty() {
                    let _ = writeln!(s, "- {}: {}", row.label(scale), parts.join("; "));
                }
            }
        }
    }
    let _ = writeln!(s);
    for row in Row::ALL {
        for t in TARGETS {
            if let Some(e) = get(row, t).and_then(|x| x.error.as_ref()) {
                let _ = writeln!(s, "error: {} / {}: {e}", column_name(t), row.label(scale));
            }
            if let Some(w) = get(row, t).and_then(Sample::wrong) {
                let why = get(row, t).and_then(|x| x.failed.clone()).filter(|_| w == "FAILED");
                let why = why.unwrap_or_else(|| format!("{w} items read back wrong"));
                let _ = writeln!(s, "FAILED: {} / {}: {why}", column_name(t), row.label(scale));
            }
        }
    }
    if !misses.is_empty() {
        let _ = writeln!(s, "goals missed: {}", misses.len());
        for m in &misses {
            let _ = writeln!(s, "  {m}");
        }
    }
    for n in notes {
        let _ = writeln!(s, "note: {n}");
    }
    let _ = writeln!(s, "bench took {:.0} s; load at the end: {}", took.as_secs_f64(), group_load());
    s
}

fn group_load() -> String {
    fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}
