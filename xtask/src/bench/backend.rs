//! The shared storage under `cargo xtask bench --backend`: two "nodes" (two
//! client mounts of one volume), brought up with `tests/backends/*.sh` or
//! reused when already up, and what the back end counts of the requests it
//! served (the backing round trips of each row).
//!
//! - local: both nodes are one directory on the local disk; no back-end
//!   counter (the rows count the daemons' syscalls instead).
//! - gluster: `tests/backends/gluster.sh up strict`; round trips are the
//!   bricks' file operations from `gluster volume profile ... info
//!   cumulative`, summed over every fop.
//! - ceph: the CephFS of `tests/backends/ceph.sh up strict`. The bench mounts
//!   two ceph-fuse clients of its own (page cache off, as strict mode does)
//!   and reads their admin sockets: round trips are the client's metadata
//!   requests (`client.reply`) plus the object operations it sent
//!   (`objecter.op_send`). The MDS's per-type request counters give the
//!   breakdown (they also count other clients of the same cluster).

use std::{
    collections::BTreeMap,
    fs,
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use super::{is_mounted, run_cmd, Res};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Backend {
    Local,
    Gluster,
    Ceph,
}

impl Backend {
    pub fn parse(s: &str) -> Res<Backend> {
        match s {
            "local" => Ok(Backend::Local),
            "gluster" | "glusterfs" => Ok(Backend::Gluster),
            "ceph" | "cephfs" => Ok(Backend::Ceph),
            _ => Err(format!("--backend: {s:?} is not local, gluster or ceph").into()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Gluster => "GlusterFS",
            Backend::Ceph => "CephFS",
        }
    }
}

/// Per-operation counts the back end keeps, by operation name.
pub type Counts = BTreeMap<String, u64>;

enum Counter {
    None,
    /// glusterd's socket and the volume.
    Gluster {
        sock: PathBuf,
        vol: String,
    },
    /// Our clients' admin sockets, and the MDS's (shared with other clients).
    Ceph {
        clients: Vec<PathBuf>,
        mds: Option<PathBuf>,
    },
}

/// The two nodes of one shared volume, and how to count its round trips.
pub struct Nodes {
    pub backend: Backend,
    /// The bench's directory as each node sees it.
    pub dirs: [PathBuf; 2],
    /// One line for the report's header.
    pub what: String,
    pub notes: Vec<String>,
    counter: Counter,
    /// The client mounts this run made itself (ceph-fuse), unmounted at the end.
    own_mounts: Vec<PathBuf>,
    /// The set-up script and base to run `down` with at the end, when this
    /// run brought the back end up and is not told to keep it.
    down: Option<(PathBuf, &'static str, PathBuf)>,
}

const CEPH_BASE: &str = "/tmp/tresor-ceph";
const CEPH_BENCH_BASE: &str = "/tmp/tresor-ceph-bench";
const GLUSTER_BASE: &str = "/tmp/tresor-gluster";
const GLUSTER_BENCH_BASE: &str = "/tmp/tresor-gluster-bench";

fn script(workspace: &Path, backend: Backend) -> PathBuf {
    workspace.join("tests/backends").join(if backend == Backend::Ceph { "ceph.sh" } else { "gluster.sh" })
}

fn base_var(backend: Backend) -> &'static str {
    if backend == Backend::Ceph {
        "TRESOR_CEPH_BASE"
    } else {
        "TRESOR_GLUSTER_BASE"
    }
}

/// `script status` for the back end at `base`: whether it is up and coherent.
fn up_at(script: &Path, var: &str, base: &Path) -> bool {
    Command::new("bash")
        .arg(script)
        .arg("status")
        .env(var, base)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Finds a strict back end that is up (the default base of the tests, then
/// the bench's own), or brings one up at the bench's base.
fn find_or_bring_up(workspace: &Path, backend: Backend, keep: bool) -> Res<(PathBuf, bool, Vec<String>)> {
    let script = script(workspace, backend);
    let var = base_var(backend);
    let (default, ours) = match backend {
        Backend::Ceph => (CEPH_BASE, CEPH_BENCH_BASE),
        _ => (GLUSTER_BASE, GLUSTER_BENCH_BASE),
    };
    let default = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| default.into());
    let mut notes = Vec::new();
    for base in [default.as_path(), Path::new(ours)] {
        if up_at(&script, var, base) {
            let mode = fs::read_to_string(base.join("mode")).unwrap_or_default();
            if mode.trim() != "strict" {
                return Err(format!(
                    "{} at {} is up in {} mode; the bench needs strict mode (coherent clients): take it down first",
                    backend.name(),
                    base.display(),
                    mode.trim()
                )
                .into());
            }
            notes.push(format!(
                "reused the {} already up at {} (left running); other users of it add to its request counters",
                backend.name(),
                base.display()
            ));
            return Ok((base.to_owned(), false, notes));
        }
    }
    eprintln!("bench: bringing {} up at {ours} ({} up strict)", backend.name(), script.display());
    let t = Instant::now();
    let status =
        Command::new("bash").arg(&script).args(["up", "strict"]).env(var, ours).stdin(Stdio::null()).status()?;
    if !status.success() {
        return Err(format!("{} up strict failed (with {var}={ours})", script.display()).into());
    }
    notes.push(format!(
        "brought {} up at {ours} in {:.0} s{}",
        backend.name(),
        t.elapsed().as_secs_f64(),
        if keep { " and left it running (--keep-backend)" } else { "; taken down at the end" }
    ));
    Ok((PathBuf::from(ours), true, notes))
}

impl Nodes {
    /// Sets up the two nodes and makes the bench's directory `name` on the volume.
    pub fn up(workspace: &Path, backend: Backend, local_dir: &Path, name: &str, keep: bool) -> Res<Nodes> {
        let mut nodes = match backend {
            Backend::Local => {
                let dir = local_dir.join("shared");
                fs::create_dir(&dir)?;
                return Ok(Nodes {
                    backend,
                    dirs: [dir.clone(), dir.clone()],
                    what: format!("local: both nodes are {}", dir.display()),
                    notes: Vec::new(),
                    counter: Counter::None,
                    own_mounts: Vec::new(),
                    down: None,
                });
            }
            Backend::Gluster => {
                let (base, brought, notes) = find_or_bring_up(workspace, backend, keep)?;
                let vol = std::env::var("TRESOR_GLUSTER_VOL").unwrap_or_else(|_| "tresor".into());
                let sock = base.join("run/glusterd.socket");
                // Already started is an error we can ignore.
                let _ = gluster(&sock, &["volume", "profile", &vol, "start"]);
                let mnt = [base.join("mnt1"), base.join("mnt2")];
                Nodes {
                    backend,
                    dirs: [mnt[0].join(name), mnt[1].join(name)],
                    what: format!(
                        "GlusterFS (strict: client translators and kernel caches off), volume {vol}, nodes {} and {}",
                        mnt[0].display(),
                        mnt[1].display()
                    ),
                    notes,
                    counter: Counter::Gluster { sock, vol },
                    own_mounts: Vec::new(),
                    down: (brought && !keep).then(|| (script(workspace, backend), base_var(backend), base)),
                }
            }
            Backend::Ceph => {
                let (base, brought, notes) = find_or_bring_up(workspace, backend, keep)?;
                let conf = base.join("ceph.conf");
                let clients = Path::new(CEPH_BENCH_BASE).join(format!("clients-{}", std::process::id()));
                let mut nodes = Nodes {
                    backend,
                    dirs: [clients.join("mnt1").join(name), clients.join("mnt2").join(name)],
                    what: String::new(),
                    notes,
                    counter: Counter::None,
                    own_mounts: Vec::new(),
                    down: (brought && !keep).then(|| (script(workspace, backend), base_var(backend), base.clone())),
                };
                let mut asoks = Vec::new();
                for i in 1..=2 {
                    let mnt = clients.join(format!("mnt{i}"));
                    let asok = clients.join(format!("client.mnt{i}.asok"));
                    fs::create_dir_all(&mnt)?;
                    nodes.own_mounts.push(mnt.clone());
                    run_cmd(
                        Command::new("timeout")
                            .arg("60")
                            .arg("ceph-fuse")
                            .arg("-c")
                            .arg(&conf)
                            .arg(format!("--admin_socket={}", asok.display()))
                            .arg(format!("--log_file={}", clients.join(format!("client.mnt{i}.log")).display()))
                            .args(["--fuse-default-permissions=false", "--fuse_disable_pagecache=true"])
                            .arg(&mnt),
                    )?;
                    asoks.push(asok);
                }
                let mds = fs::read_dir(base.join("run"))?.flatten().map(|e| e.path()).find(|p| {
                    p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("mds."))
                        && p.extension().is_some_and(|x| x == "asok")
                });
                nodes.what = format!(
                    "CephFS 16 (one MON, MGR, OSD, MDS on this machine; {}), two ceph-fuse clients of the bench's own \
                     with the page cache off: {} and {}",
                    base.display(),
                    clients.join("mnt1").display(),
                    clients.join("mnt2").display()
                );
                nodes.counter = Counter::Ceph { clients: asoks, mds };
                nodes
            }
        };
        fs::create_dir(&nodes.dirs[0]).map_err(|e| format!("mkdir {}: {e}", nodes.dirs[0].display()))?;
        // The other node sees it (strict mode is coherent, but wait a little for the attribute cache).
        let t = Instant::now();
        while !nodes.dirs[1].is_dir() {
            if t.elapsed() > Duration::from_secs(10) {
                return Err(
                    format!("{} made through node 1 is not seen through node 2", nodes.dirs[0].display()).into()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
        nodes.notes.retain(|n| !n.is_empty());
        Ok(nodes)
    }

    /// Whether the back end counts requests (else only the daemons' syscalls are counted).
    pub fn counts(&self) -> bool {
        !matches!(self.counter, Counter::None)
    }

    /// The back end's request counters now: `total` is what a row divides
    /// by its operations; the other keys break it down.
    pub fn snapshot(&self) -> Option<Counts> {
        match &self.counter {
            Counter::None => None,
            Counter::Gluster { sock, vol } => {
                let out = gluster(sock, &["volume", "profile", vol, "info", "cumulative"]).ok()?;
                let mut c = gluster_fops(&out);
                let total = c.values().sum();
                c.insert("total".into(), total);
                Some(c)
            }
            Counter::Ceph { clients, mds } => {
                let mut c = Counts::new();
                for asok in clients {
                    let dump = admin_socket(asok, "perf dump").ok()?;
                    let get =
                        |a: &str, b: &str| dump.get(a)?.get(b).and_then(|v| v.get("avgcount").or(Some(v)))?.as_u64();
                    *c.entry("total".into()).or_default() += get("client", "reply")? + get("objecter", "op_send")?;
                    *c.entry("mds requests".into()).or_default() += get("client", "reply")?;
                    *c.entry("osd ops".into()).or_default() += get("objecter", "op_send")?;
                    if let Some(o) = dump.get("objecter").and_then(|o| o.as_object()) {
                        for (k, v) in o.iter().filter(|(k, _)| k.starts_with("osdop_")) {
                            *c.entry(format!("osd {}", &k[6..])).or_default() += v.as_u64().unwrap_or(0);
                        }
                    }
                }
                if let Some(dump) = mds.as_deref().and_then(|m| admin_socket(m, "perf dump").ok()) {
                    if let Some(o) = dump.get("mds_server").and_then(|o| o.as_object()) {
                        for (k, v) in o.iter().filter(|(k, _)| k.starts_with("req_") && k.ends_with("_latency")) {
                            let n = v.get("avgcount").and_then(|n| n.as_u64()).unwrap_or(0);
                            c.insert(format!("mds {}", &k[4..k.len() - 8]), n);
                        }
                    }
                }
                Some(c)
            }
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        if self.backend != Backend::Local {
            if let Err(e) = fs::remove_dir_all(&self.dirs[0]) {
                eprintln!("bench: removing {}: {e}", self.dirs[0].display());
            }
        }
        for m in &self.own_mounts {
            let _ = Command::new("umount").arg(m).status();
            if is_mounted(m) {
                let _ = Command::new("umount").arg("-l").arg(m).status();
            }
        }
        if let Some(parent) = self.own_mounts.first().and_then(|m| m.parent()) {
            if self.own_mounts.iter().all(|m| !is_mounted(m)) {
                let _ = fs::remove_dir_all(parent);
            }
        }
        if let Some((script, var, base)) = &self.down {
            eprintln!("bench: taking {} down", self.backend.name());
            let _ = Command::new("bash").arg(script).arg("down").env(var, base).stdin(Stdio::null()).status();
        }
    }
}

fn gluster(sock: &Path, args: &[&str]) -> Res<String> {
    run_cmd(
        Command::new("timeout")
            .args(["60", "gluster", "--mode=script"])
            .arg(format!("--glusterd-sock={}", sock.display()))
            .args(args),
    )
}

/// Sums `gluster volume profile ... info cumulative` by fop over every
/// brick: the lines `%-latency avg unit min unit max unit calls FOP`.
fn gluster_fops(out: &str) -> Counts {
    let mut c = Counts::new();
    let mut in_cumulative = false;
    for line in out.lines() {
        let t = line.trim();
        if t.starts_with("Cumulative Stats") {
            in_cumulative = true;
        } else if t.starts_with("Interval") {
            in_cumulative = false;
        }
        let w: Vec<&str> = t.split_whitespace().collect();
        if !in_cumulative || w.len() != 9 || !matches!(w[2], "us" | "ns") {
            continue;
        }
        // FORGET is the brick pruning its inode table, not a request.
        if let (Ok(n), fop) = (w[7].parse::<u64>(), w[8]) {
            if fop != "FORGET" {
                *c.entry(fop.to_owned()).or_default() += n;
            }
        }
    }
    c
}

/// One command to a Ceph daemon's admin socket: the JSON request, a NUL;
/// the answer is a 4-byte big-endian length and that much JSON.
fn admin_socket(path: &Path, prefix: &str) -> Res<serde_json::Value> {
    let mut s = UnixStream::connect(path).map_err(|e| format!("{}: {e}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let req = serde_json::json!({ "prefix": prefix }).to_string();
    s.write_all(req.as_bytes())?;
    s.write_all(&[0])?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf)?;
    Ok(serde_json::from_slice(&buf)?)
}
