//! Shared storage for real: two Tresor mounts, as two compute nodes would
//! have, over the two client mounts of ONE shared volume (GlusterFS or
//! CephFS). Node A is a `tresor mount` of `<client mnt1>/<dir>`, node B one
//! of `<client mnt2>/<dir>`: the same backing directory through two clients
//! of the file system, each with its own kernel mount, so nothing is shared
//! between the nodes but the storage itself. Both use the default options
//! (cache_timeout=0).
//!
//! It needs `tests/backends/gluster.sh up strict` or `tests/backends/ceph.sh
//! up strict` (root) first: client mounts at /tmp/tresor-gluster/mnt1 and
//! mnt2, or wherever TRESOR_SHARED_MNT1 and TRESOR_SHARED_MNT2 say (.ci/run
//! runs this file once on each). Without them these tests skip with a
//! notice, and fail when CI is set. .ci/run also runs it over ceph-fuse
//! with its page cache on, where the raw clients are not coherent and the
//! nodes must still be (file data goes past the clients' caches).
//!
//! TRESOR_SHARED_OPS sets the model test's length (default 2,000), and
//! TRESOR_SHARED_SEED its seed (default: new each run, printed). A failing
//! test prints the daemons' logs and leaves the backing directory in place.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{is_mountpoint, run_ok, unmount, Scratch};

const BLOCK: u64 = 4096;
const DEFAULT_MNT: [&str; 2] = ["/tmp/tresor-gluster/mnt1", "/tmp/tresor-gluster/mnt2"];
const NODE: [&str; 2] = ["A", "B"];

// ---- the two nodes ----------------------------------------------------------------

/// The two client mounts of the shared volume, or None (after a notice)
/// when they are not there outside CI.
fn shared_mounts() -> Option<[PathBuf; 2]> {
    let mnt = |i: usize| {
        std::env::var_os(format!("TRESOR_SHARED_MNT{}", i + 1))
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MNT[i]))
    };
    let mounts = [mnt(0), mnt(1)];
    let missing: Vec<String> = mounts.iter().filter(|m| !is_mountpoint(m)).map(|m| m.display().to_string()).collect();
    if missing.is_empty() {
        return Some(mounts);
    }
    let what = format!(
        "shared-storage client mounts not mounted ({}): run `tests/backends/gluster.sh up strict` (as root), \
         or point TRESOR_SHARED_MNT1 and TRESOR_SHARED_MNT2 at two client mounts of one volume",
        missing.join(" and ")
    );
    if std::env::var_os("CI").is_some() {
        panic!("{what}");
    }
    eprintln!("skipping shared-storage test: {what}");
    None
}

/// Both client mounts show one volume. Whether a write through one is
/// read through the other at once (by a descriptor opened before the
/// write too) is only reported: the nodes must be coherent either way,
/// because the mount reads and writes file data with O_DIRECT where the
/// client takes it (ceph-fuse with its page cache on passes every test
/// here), and refuses a client that caches data and does not
/// (`a_backing_client_that_caches_file_data_is_refused_unless_allowed`).
fn check_backing_is_one_volume(mounts: &[PathBuf; 2], probe: &str) {
    let (p1, p2) = (mounts[0].join(probe), mounts[1].join(probe));
    fs::write(&p1, [b'1'; 8192]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !p2.exists() {
        assert!(
            Instant::now() < deadline,
            "{} and {} are not client mounts of one volume: a file made in one never showed in the other",
            mounts[0].display(),
            mounts[1].display()
        );
        thread::sleep(Duration::from_millis(50));
    }
    let held = File::open(&p2).unwrap();
    let mut first = [0u8; 4];
    held.read_exact_at(&mut first, 0).unwrap();
    fs::write(&p1, [b'2'; 8192]).unwrap();
    let mut again = [0u8; 4];
    held.read_exact_at(&mut again, 0).unwrap();
    let fresh = fs::read(&p2).unwrap();
    fs::remove_file(&p1).unwrap();
    let coherent = first == *b"1111" && again == *b"2222" && fresh.starts_with(b"2222");
    println!(
        "backing clients {} and {}: {}",
        mounts[0].display(),
        mounts[1].display(),
        if coherent { "coherent" } else { "NOT coherent for buffered reads (they cache file data)" }
    );
}

/// One volume, mounted twice: node A over client 1, node B over client 2.
struct Nodes {
    _scratch: Scratch,
    name: String,
    /// The backing directory through client 1 and client 2.
    backing: [PathBuf; 2],
    /// The plaintext views of node A and node B.
    node: [PathBuf; 2],
    log: [PathBuf; 2],
}

impl Nodes {
    fn start(name: &str) -> Option<Nodes> {
        let mounts = shared_mounts()?;
        let s = Scratch::short(&format!("shared-{name}"));
        let sub = s.dir.file_name().unwrap().to_owned();
        check_backing_is_one_volume(&mounts, &format!(".probe-{}", sub.to_string_lossy()));
        let backing = [mounts[0].join(&sub), mounts[1].join(&sub)];
        s.identity("alice");
        run_ok(
            s.tresor()
                .arg("init")
                .arg(&backing[0])
                .arg("--steward")
                .arg(s.path("alice.id"))
                .arg("--passfile")
                .arg(s.path("pass")),
        );
        let node = [s.path("node-a"), s.path("node-b")];
        let log = [s.path("node-a.log"), s.path("node-b.log")];
        for i in 0..2 {
            fs::create_dir_all(&node[i]).unwrap();
            run_ok(
                s.tresor()
                    .arg("mount")
                    .arg(&backing[i])
                    .arg(&node[i])
                    .arg("-i")
                    .arg(s.path("alice.id"))
                    .arg("--passfile")
                    .arg(s.path("pass"))
                    .arg("--log-file")
                    .arg(&log[i]),
            );
            assert!(is_mountpoint(&node[i]), "node {} is not mounted", NODE[i]);
        }
        Some(Nodes { _scratch: s, name: name.to_owned(), backing, node, log })
    }

    /// `rel` through node `i` (0 = A, 1 = B).
    fn at(&self, i: usize, rel: &str) -> PathBuf {
        self.node[i].join(rel)
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for n in &self.node {
            unmount(n);
        }
        if thread::panicking() {
            // Keep the evidence: the logs outside the scratch dir, the backing in place.
            for (i, log) in self.log.iter().enumerate() {
                let text = fs::read_to_string(log).unwrap_or_default();
                let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
                    "shared-storage-{}-node-{}.log",
                    self.name,
                    NODE[i].to_lowercase()
                ));
                let _ = fs::write(&kept, &text);
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!(
                    "---- node {} daemon log ({}, kept in {}), last lines:\n{}",
                    NODE[i],
                    log.display(),
                    kept.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            eprintln!("---- backing directory left in place: {}", self.backing[0].display());
        } else {
            let _ = fs::remove_dir_all(&self.backing[0]);
        }
    }
}

// ---- helpers -----------------------------------------------------------------------------

/// SplitMix64: small, seedable, good enough to pick operations and fill data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng(seed ^ 0x5eed_0000_0000_0000);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&r.next().to_le_bytes());
    }
    v.truncate(len);
    v
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn open(path: &Path, write: bool, direct: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.read(true).write(write);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(path)
}

/// Closes and reports what close(2) says (a FUSE flush can fail).
fn close(f: File) -> io::Result<()> {
    if unsafe { libc::close(f.into_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Up to `len` bytes at `off` (fewer at the end of the file).
fn read_at(f: &File, off: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

fn read_whole(path: &Path, direct: bool) -> io::Result<Vec<u8>> {
    let f = open(path, false, direct)?;
    let mut v = Vec::new();
    if direct {
        v = read_at(&f, 0, f.metadata()?.len() as usize + BLOCK as usize)?;
    } else {
        (&f).read_to_end(&mut v)?;
    }
    close(f)?;
    Ok(v)
}

/// Where two byte strings first differ, for messages.
fn first_difference(got: &[u8], want: &[u8]) -> String {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => {
            format!("first difference at byte {i} (block {}), got {} bytes, want {}", i / 4096, got.len(), want.len())
        }
        None => format!("same prefix, got {} bytes, want {}", got.len(), want.len()),
    }
}

fn is_eio(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EIO)
}

// ---- 1. a model, through both nodes ------------------------------------------------------

/// Random writes (across 4 KiB block edges, past the end), truncates down
/// and up, reads, renames, creates and unlinks over six files in two
/// directories, each through node A or node B at random, each opening and
/// closing its file (close-to-open), every read compared with a model.
#[test]
fn random_operations_through_two_nodes_match_a_model() {
    let Some(n) = Nodes::start("model") else { return };
    let ops = env_u64("TRESOR_SHARED_OPS").unwrap_or(2_000);
    let seed = env_u64("TRESOR_SHARED_SEED").unwrap_or_else(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 ^ (std::process::id() as u64) << 32
    });
    println!("model: seed {seed} (TRESOR_SHARED_SEED={seed} repeats it), {ops} operations");
    let dirs = ["d1", "d2"];
    for d in dirs {
        fs::create_dir(n.at(0, d)).unwrap();
    }
    let slots: Vec<String> = dirs.iter().flat_map(|d| (0..3).map(move |i| format!("{d}/f{i}"))).collect();
    let max = 24 * BLOCK;
    let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut r = Rng(seed);
    let mut recent: VecDeque<String> = VecDeque::new();
    let mut mismatches: Vec<String> = Vec::new();
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    let start = Instant::now();
    for op in 0..ops {
        let node = r.below(2) as usize;
        let slot = slots[r.below(slots.len() as u64) as usize].clone();
        let path = n.at(node, &slot);
        let cur = model.get(&slot).map(|c| c.len() as u64);
        let choice = if cur.is_none() { 100 } else { r.below(100) };
        let direct = r.below(4) == 0;
        let mut desc = String::new();
        let mut mismatch = None;
        let result: io::Result<()> = (|| {
            match choice {
                0..=34 => {
                    let cur = cur.unwrap();
                    let off = match r.below(5) {
                        0 => cur,
                        1 => cur.saturating_sub(r.below(300)),
                        2 => (r.below(max / BLOCK) * BLOCK + r.below(64)).saturating_sub(32),
                        _ => r.below(max),
                    };
                    let len = 1 + match r.below(4) {
                        0 => r.below(3 * BLOCK),
                        _ => r.below(700),
                    } as usize;
                    let data = pattern(seed ^ op, len);
                    desc = format!("write {len} at {off} (direct {direct})");
                    let f = open(&path, true, direct)?;
                    f.write_all_at(&data, off)?;
                    close(f)?;
                    let m = model.get_mut(&slot).unwrap();
                    let end = off as usize + len;
                    if m.len() < end {
                        m.resize(end, 0);
                    }
                    m[off as usize..end].copy_from_slice(&data);
                }
                35..=44 => {
                    let cur = cur.unwrap();
                    let size = match r.below(4) {
                        0 => r.below(cur + 1),
                        1 => r.below(max / BLOCK) * BLOCK,
                        2 => cur + 1 + r.below(2 * BLOCK),
                        _ => r.below(max),
                    };
                    if r.below(2) == 0 {
                        desc = format!("ftruncate to {size} (from {cur})");
                        let f = open(&path, true, false)?;
                        f.set_len(size)?;
                        close(f)?;
                    } else {
                        desc = format!("truncate(2) to {size} (from {cur})");
                        let c = CString::new(path.as_os_str().as_bytes()).unwrap();
                        if unsafe { libc::truncate(c.as_ptr(), size as libc::off_t) } != 0 {
                            return Err(io::Error::last_os_error());
                        }
                    }
                    model.get_mut(&slot).unwrap().resize(size as usize, 0);
                }
                45..=74 => {
                    let cur = cur.unwrap();
                    let off = r.below(cur + BLOCK);
                    let len = 1 + r.below(3 * BLOCK) as usize;
                    desc = format!("read {len} at {off} (direct {direct})");
                    let f = open(&path, false, direct)?;
                    let got = read_at(&f, off, len)?;
                    close(f)?;
                    let m = &model[&slot];
                    let (from, to) = ((off as usize).min(m.len()), (off as usize + len).min(m.len()));
                    if got != m[from..to] {
                        mismatch = Some(first_difference(&got, &m[from..to]));
                    }
                }
                75..=84 => {
                    desc = format!("read whole and stat (direct {direct})");
                    let got = read_whole(&path, direct)?;
                    let size = fs::metadata(&path)?.len();
                    let m = &model[&slot];
                    if got != *m || size != m.len() as u64 {
                        mismatch = Some(format!("stat says {size}; {}", first_difference(&got, m)));
                    }
                }
                85..=93 => {
                    let to = slots[r.below(slots.len() as u64) as usize].clone();
                    desc = format!("rename to {to}");
                    if to != slot {
                        fs::rename(&path, n.at(node, &to))?;
                        let content = model.remove(&slot).unwrap();
                        model.insert(to, content);
                    }
                }
                94..=96 => {
                    desc = "unlink".into();
                    fs::remove_file(&path)?;
                    model.remove(&slot);
                }
                _ => {
                    // Create (O_EXCL when new) or re-create over the old content (O_TRUNC).
                    let len = r.below(3 * BLOCK) as usize;
                    let data = pattern(seed ^ op, len);
                    desc = format!("create with {len} bytes (O_{})", if cur.is_none() { "EXCL" } else { "TRUNC" });
                    let mut o = OpenOptions::new();
                    o.write(true);
                    if cur.is_none() {
                        o.create_new(true);
                    } else {
                        o.truncate(true);
                    }
                    let mut f = o.open(&path)?;
                    f.write_all(&data)?;
                    close(f)?;
                    model.insert(slot.clone(), data);
                }
            }
            Ok(())
        })();
        let line = format!("op {op}: node {} {slot}: {desc}", NODE[node]);
        *counts.entry(op_kind(choice)).or_default() += 1;
        if let Err(e) = result {
            panic!(
                "seed {seed}, {line}: {e} (errno {:?})\nthe operations before it:\n{}",
                e.raw_os_error(),
                recent.iter().cloned().collect::<Vec<_>>().join("\n")
            );
        }
        if let Some(m) = mismatch {
            if mismatches.is_empty() {
                eprintln!("seed {seed}: first mismatch; the operations before it:");
                for l in &recent {
                    eprintln!("  {l}");
                }
            }
            eprintln!("seed {seed}, {line}: MISMATCH: {m}");
            mismatches.push(line.clone());
        }
        recent.push_back(line);
        if recent.len() > 30 {
            recent.pop_front();
        }
    }
    let took = start.elapsed();
    // At the end, every file and listing through both nodes.
    for (i, name) in NODE.iter().enumerate() {
        for slot in &slots {
            let path = n.at(i, slot);
            match model.get(slot) {
                Some(content) => match read_whole(&path, false) {
                    Ok(got) if got == *content => {}
                    Ok(got) => mismatches.push(format!(
                        "final read of {slot} through node {}: {}",
                        name,
                        first_difference(&got, content)
                    )),
                    Err(e) => panic!("seed {seed}: final read of {slot} through node {}: {e}", name),
                },
                None => {
                    assert!(!path.exists(), "seed {seed}: {slot} exists through node {} but not in the model", name)
                }
            }
        }
        for d in dirs {
            let mut names: Vec<String> = fs::read_dir(n.at(i, d))
                .unwrap()
                .map(|e| format!("{d}/{}", e.unwrap().file_name().to_string_lossy()))
                .collect();
            names.sort();
            let want: Vec<String> = model.keys().filter(|k| k.starts_with(&format!("{d}/"))).cloned().collect();
            assert_eq!(names, want, "seed {seed}: listing of {d} through node {}", name);
        }
    }
    println!(
        "model: {ops} operations in {:.1} s ({:.0} ops/s) through two nodes over GlusterFS; {:?}; {} mismatches",
        took.as_secs_f64(),
        ops as f64 / took.as_secs_f64(),
        counts,
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "seed {seed}: {} reads did not match the model:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

fn op_kind(choice: u64) -> &'static str {
    match choice {
        0..=34 => "write",
        35..=44 => "truncate",
        45..=74 => "read",
        75..=84 => "read-whole",
        85..=93 => "rename",
        94..=96 => "unlink",
        _ => "create",
    }
}

// ---- 2. concurrent writers on two nodes ------------------------------------------------

/// One write each round: a range of the band, and the writers that write it.
struct Region {
    start: u64,
    len: u64,
    writers: Vec<usize>,
}

/// Within each 64 KiB band: four aligned blocks, one per writer; four
/// unaligned ranges, one per writer, neighbours sharing a block (so two
/// nodes read-modify-write one block at once); two aligned blocks written
/// by all four; an unaligned range over three blocks written by all four;
/// and one written by the two O_DIRECT writers, one on each node.
fn regions() -> Vec<Region> {
    let mut v = Vec::new();
    for w in 0..4 {
        v.push(Region { start: w * BLOCK, len: BLOCK, writers: vec![w as usize] });
    }
    for w in 0..4 {
        v.push(Region { start: 4 * BLOCK + 500 + w * 3000, len: 2800, writers: vec![w as usize] });
    }
    v.push(Region { start: 8 * BLOCK, len: 2 * BLOCK, writers: vec![0, 1, 2, 3] });
    v.push(Region { start: 10 * BLOCK + 1234, len: 9000, writers: vec![0, 1, 2, 3] });
    v.push(Region { start: 13 * BLOCK + 777, len: 9000, writers: vec![0, 1] });
    v
}

const BAND: u64 = 16 * BLOCK;

fn region_data(round: u64, region: usize, writer: usize, len: u64) -> Vec<u8> {
    pattern((round << 16) | ((region as u64) << 8) | writer as u64, len as usize)
}

/// Four writers (A0, B0, A1, B1: node = index % 2; the first of each node
/// with O_DIRECT, the second through the page cache) write every round's
/// band at once, in their own random order, growing the file from both
/// nodes. Afterwards the file reads back without EIO through both nodes, a
/// writer's own ranges hold its data (no update lost to the other node's
/// read-modify-write of a shared block), and in a range written by several
/// every range written by several holds one writer's write whole: each
/// write(2), buffered or O_DIRECT, reaches the mount as one request (the
/// shared-storage default bypasses the page cache, which would cut a write
/// at its first partial page), and the mount applies it under one lock.
#[test]
fn concurrent_writers_on_two_nodes_never_tear_or_lose_a_write() {
    let Some(n) = Nodes::start("writers") else { return };
    let rounds = env_u64("TRESOR_SHARED_WRITE_ROUNDS").unwrap_or(100);
    File::create(n.at(0, "shared")).unwrap();
    let barrier = Arc::new(Barrier::new(4));
    let start = Instant::now();
    let writers: Vec<_> = (0..4usize)
        .map(|w| {
            let path = n.at(w % 2, "shared");
            let barrier = barrier.clone();
            thread::spawn(move || -> Vec<String> {
                let mut errors = Vec::new();
                let f = match open(&path, true, w < 2) {
                    Ok(f) => Some(f),
                    Err(e) => {
                        errors.push(format!("open: {e}"));
                        None
                    }
                };
                let mut r = Rng(w as u64 + 1);
                let regions = regions();
                for round in 0..rounds {
                    let mut mine: Vec<usize> =
                        (0..regions.len()).filter(|&i| regions[i].writers.contains(&w)).collect();
                    for i in (1..mine.len()).rev() {
                        mine.swap(i, r.below(i as u64 + 1) as usize);
                    }
                    barrier.wait(); // (met even after an error, so no writer waits forever)
                    let Some(f) = &f else { continue };
                    for i in mine {
                        let reg = &regions[i];
                        let off = round * BAND + reg.start;
                        if let Err(e) = f.write_all_at(&region_data(round, i, w, reg.len), off) {
                            errors.push(format!("round {round}: write {} at {off}: {e}", reg.len));
                        }
                    }
                }
                if let Some(f) = f {
                    if let Err(e) = close(f) {
                        errors.push(format!("close: {e}"));
                    }
                }
                errors
            })
        })
        .collect();
    let errors: Vec<String> = writers
        .into_iter()
        .enumerate()
        .flat_map(|(w, t)| t.join().unwrap().into_iter().map(move |e| format!("writer {}{}: {e}", NODE[w % 2], w / 2)))
        .collect();
    let took = start.elapsed();
    assert!(errors.is_empty(), "writes failed:\n{}", errors.join("\n"));

    let regions = regions();
    let last = regions.iter().map(|r| r.start + r.len).max().unwrap();
    let size = (rounds - 1) * BAND + last;
    let mut contents = Vec::new();
    for (i, name) in NODE.iter().enumerate() {
        for direct in [false, true] {
            match read_whole(&n.at(i, "shared"), direct) {
                Ok(c) => contents.push((i, direct, c)),
                Err(e) => panic!(
                    "reading the file back through node {name} (direct {direct}): {e}{}",
                    if is_eio(&e) { " (EIO: a block or trailer failed authentication)" } else { "" }
                ),
            }
        }
    }
    for (i, direct, c) in &contents[1..] {
        assert!(c == &contents[0].2, "node {} (direct {direct}) reads other bytes than node A", NODE[*i]);
    }
    let content = &contents[0].2;
    assert_eq!(content.len() as u64, size, "file size");

    let mut problems = Vec::new();
    let (mut shared_regions, mut whole_from_one) = (0, 0);
    for round in 0..rounds {
        let base = round * BAND;
        let mut covered = vec![false; BAND as usize];
        for (i, reg) in regions.iter().enumerate() {
            let at = (base + reg.start) as usize;
            let got = &content[at..at + reg.len as usize];
            covered[reg.start as usize..(reg.start + reg.len) as usize].fill(true);
            let candidates: Vec<(usize, Vec<u8>)> =
                reg.writers.iter().map(|&w| (w, region_data(round, i, w, reg.len))).collect();
            if reg.writers.len() == 1 {
                if got != candidates[0].1 {
                    problems.push(format!(
                        "round {round}: writer {}'s range {}+{} lost its data: {}",
                        reg.writers[0],
                        base + reg.start,
                        reg.len,
                        first_difference(got, &candidates[0].1)
                    ));
                }
                continue;
            }
            shared_regions += 1;
            // Piece by piece, cut at 4 KiB plaintext block edges.
            let mut from = Vec::new();
            let mut p = at;
            while p < at + reg.len as usize {
                let end = ((p / BLOCK as usize + 1) * BLOCK as usize).min(at + reg.len as usize);
                let (a, b) = (p - at, end - at);
                match candidates.iter().find(|(_, d)| d[a..b] == got[a..b]) {
                    Some((w, _)) => from.push(*w),
                    None => problems.push(format!(
                        "round {round}: torn block {} (bytes {p}..{end}): not one writer's data",
                        p / BLOCK as usize
                    )),
                }
                p = end;
            }
            if !from.is_empty() && from.iter().all(|w| *w == from[0]) {
                whole_from_one += 1;
            } else {
                problems.push(format!(
                    "round {round}: range {}+{}, one write(2) by each writer, mixes writers {from:?}",
                    base + reg.start,
                    reg.len
                ));
            }
        }
        let band_end = if round == rounds - 1 { last } else { BAND };
        for off in 0..band_end as usize {
            if !covered[off] && content[base as usize + off] != 0 {
                problems.push(format!("round {round}: byte {} was never written but is not zero", base as usize + off));
                break;
            }
        }
    }
    let writes: usize = regions.iter().map(|r| r.writers.len()).sum::<usize>() * rounds as usize;
    println!(
        "writers: {writes} writes by 4 writers on 2 nodes in {:.1} s; {whole_from_one} of {shared_regions} contended \
         ranges whole from one writer; {} problems",
        took.as_secs_f64(),
        problems.len()
    );
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

// ---- 2b. read-modify-write of shared blocks, and whole writes ---------------------------

const SEGMENT: usize = 1500;
const REWRITE_LEN: usize = 16 * BLOCK as usize;

/// Each round: node A rewrites a 64 KiB file with O_TRUNC; then node A and
/// node B each open it and write every other 1,500-byte segment at once
/// (disjoint ranges, but most 4 KiB blocks hold segments of both nodes, so
/// both nodes read-modify-write the same blocks). Afterwards both nodes read
/// the same bytes, every segment holds its writer's data and the tail the
/// rewrite's: no update is lost to the other node's re-sealing of a block
/// it read before this node's write landed.
#[test]
fn interleaved_segments_after_a_rewrite_lose_no_update() {
    let Some(n) = Nodes::start("segments") else { return };
    let rounds = env_u64("TRESOR_SHARED_SEGMENT_ROUNDS").unwrap_or(100);
    let segments = REWRITE_LEN / SEGMENT;
    let seg_data = |round: u64, k: usize| pattern((round << 20) | 0x5e6 << 8 | k as u64, SEGMENT);
    let mut problems = Vec::new();
    let start = Instant::now();
    for round in 0..rounds {
        let base = pattern(round << 20, REWRITE_LEN);
        {
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(n.at(0, "rmw")).unwrap();
            f.write_all(&base).unwrap();
            close(f).unwrap();
        }
        let barrier = Arc::new(Barrier::new(2));
        let writers: Vec<_> = (0..2usize)
            .map(|node| {
                let path = n.at(node, "rmw");
                let barrier = barrier.clone();
                thread::spawn(move || -> Result<(), String> {
                    let f = open(&path, true, false);
                    barrier.wait();
                    let f = f.map_err(|e| format!("open: {e}"))?;
                    for k in (node..segments).step_by(2) {
                        f.write_all_at(&seg_data(round, k), (k * SEGMENT) as u64)
                            .map_err(|e| format!("segment {k}: {e}"))?;
                    }
                    close(f).map_err(|e| format!("close: {e}"))
                })
            })
            .collect();
        for (node, t) in writers.into_iter().enumerate() {
            if let Err(e) = t.join().unwrap() {
                problems.push(format!("round {round}: node {}: {e}", NODE[node]));
            }
        }
        let mut want = base.clone();
        for k in 0..segments {
            want[k * SEGMENT..(k + 1) * SEGMENT].copy_from_slice(&seg_data(round, k));
        }
        for (node, name) in NODE.iter().enumerate() {
            match read_whole(&n.at(node, "rmw"), false) {
                Ok(got) if got == want => {}
                Ok(got) => {
                    let lost: Vec<String> = (0..segments)
                        .filter(|&k| {
                            got.get(k * SEGMENT..(k + 1) * SEGMENT) != Some(&want[k * SEGMENT..(k + 1) * SEGMENT])
                        })
                        .map(|k| format!("segment {k} (node {}, block {})", NODE[k % 2], k * SEGMENT / BLOCK as usize))
                        .collect();
                    problems.push(format!(
                        "round {round}: node {name} reads lost updates: {}; {}",
                        lost.join(", "),
                        first_difference(&got, &want)
                    ));
                }
                Err(e) => problems.push(format!("round {round}: reading through node {name}: {e}")),
            }
        }
    }
    println!(
        "segments: {rounds} rounds of {segments} interleaved 1,500-byte writes from 2 nodes in {:.1} s; {} problems",
        start.elapsed().as_secs_f64(),
        problems.len()
    );
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

// ---- 2c. a backing client that cannot be coherent -----------------------------------

/// The `host:volume` a GlusterFS client mount at `mnt` serves, from mountinfo.
fn gluster_source(mnt: &Path) -> Option<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let f: Vec<&str> = line.split(' ').collect();
        let dash = f.iter().position(|x| *x == "-")?;
        (Path::new(f[4]) == mnt && f.get(dash + 1) == Some(&"fuse.glusterfs")).then(|| f[dash + 2].to_owned())
    })
}

/// A third GlusterFS client with the kernel's page cache on (the client's
/// default) passes O_DIRECT to bricks on a local disk, which refuse it
/// unaligned: a node there could read a block from its cache after another
/// node rewrote it. `tresor mount` refuses it with the reason and the way
/// out, mounts it with `-o allow_incoherent` and a warning, and nothing of
/// the refused attempt is left mounted.
#[test]
fn a_backing_client_that_caches_file_data_is_refused_unless_allowed() {
    let Some(mounts) = shared_mounts() else { return };
    let Some(source) = gluster_source(&mounts[0]) else {
        eprintln!("skipping: needs the GlusterFS back end (a second client of it with its page cache on)");
        return;
    };
    let (host, vol) = source.split_once(':').expect("host:volume");
    let s = Scratch::short("incoherent");
    let client = s.path("cached-client");
    fs::create_dir(&client).unwrap();
    let up = std::process::Command::new("glusterfs")
        .arg(format!("--volfile-server={host}"))
        .arg(format!("--volfile-id={vol}"))
        .arg(format!("--log-file={}", s.path("client.log").display()))
        .arg(&client)
        .status()
        .unwrap();
    assert!(up.success(), "a third GlusterFS client mount");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _client = Unmount(client.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !is_mountpoint(&client) {
        assert!(Instant::now() < deadline, "the GlusterFS client never mounted");
        thread::sleep(Duration::from_millis(100));
    }
    let backing = client.join(s.dir.file_name().unwrap());
    s.identity("alice");
    run_ok(
        s.tresor()
            .arg("init")
            .arg(&backing)
            .arg("--steward")
            .arg(s.path("alice.id"))
            .arg("--passfile")
            .arg(s.path("pass")),
    );
    let node = s.path("node");
    fs::create_dir(&node).unwrap();
    let mount = |extra: &[&str]| {
        let mut cmd = s.tresor();
        cmd.arg("mount")
            .arg(&backing)
            .arg(&node)
            .arg("-i")
            .arg(s.path("alice.id"))
            .arg("--passfile")
            .arg(s.path("pass"));
        cmd.arg("--log-file").arg(s.path("node.log")).args(extra);
        cmd.output().unwrap()
    };
    let refused = mount(&[]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "mounted over a client that caches file data: {err}");
    assert!(
        err.contains("keeps file data in this node's page cache") && err.contains("allow_incoherent"),
        "the refusal says why and how to insist: {err}"
    );
    assert!(!is_mountpoint(&node), "nothing left mounted after the refusal");
    let allowed = mount(&["-o", "allow_incoherent"]);
    let err = String::from_utf8_lossy(&allowed.stderr);
    assert!(allowed.status.success(), "-o allow_incoherent mounts: {err}");
    assert!(err.contains("warning (allow_incoherent)"), "and says what it risks: {err}");
    fs::write(node.join("f"), b"one node only").unwrap();
    assert_eq!(fs::read(node.join("f")).unwrap(), b"one node only");
    unmount(&node);
    let _ = fs::remove_dir_all(&backing);
}

// ---- 3. racing mkdir -------------------------------------------------------------------

/// Walks a backing tree: every directory has its 16-byte IV, and no
/// temporary entry is left behind.
fn check_backing_tree(dir: &Path, problems: &mut Vec<String>) {
    match fs::metadata(dir.join(tresor_format::names::DIRIV_FILE)) {
        // The IV and one place tag: a rename's second tag never outlives it.
        Ok(m) if m.len() == tresor_format::place::DIRIV_FILE_LEN as u64 => {}
        Ok(m) => problems.push(format!("{}: IV of {} bytes", dir.display(), m.len())),
        Err(e) => problems.push(format!("{}: no IV: {e}", dir.display())),
    }
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_name().to_string_lossy().starts_with("tresor.tmp.") {
            problems.push(format!("{}: temporary entry left behind", e.path().display()));
        }
        // The audit logs' directory is not a Tresor directory (no IV).
        if e.file_type().unwrap().is_dir() && e.file_name() != "tresor.audit" {
            check_backing_tree(&e.path(), problems);
        }
    }
}

/// Both nodes mkdir the same name at the same moment, round after round:
/// one wins, the other gets EEXIST, and each at once creates a file in the
/// new directory that the other node then reads: never a directory without
/// its IV, never EIO.
#[test]
fn racing_mkdirs_on_two_nodes_make_one_usable_directory() {
    let Some(n) = Nodes::start("mkdir") else { return };
    let rounds = env_u64("TRESOR_SHARED_MKDIR_ROUNDS").unwrap_or(100);
    fs::create_dir(n.at(0, "race")).unwrap();
    let content = |round: u64, node: usize| format!("round {round}, from node {}\n", NODE[node]).into_bytes();
    let barrier = Arc::new(Barrier::new(2));
    let start = Instant::now();
    let racers: Vec<_> = (0..2)
        .map(|i| {
            let root = n.at(i, "race");
            let barrier = barrier.clone();
            thread::spawn(move || -> Vec<(bool, Vec<String>)> {
                let mut out = Vec::new();
                let mut r = Rng(0x6d6b_6469 + i as u64);
                for round in 0..rounds {
                    let dir = root.join(format!("d{round}"));
                    let mut errors = Vec::new();
                    // Each side starts up to 2 ms late: over the rounds the loser's
                    // mkdir lands at every point of the winner's.
                    let delay = Duration::from_micros(r.below(2000));
                    barrier.wait();
                    let t = Instant::now();
                    while t.elapsed() < delay {
                        std::hint::spin_loop();
                    }
                    let won = match fs::create_dir(&dir) {
                        Ok(()) => true,
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
                        Err(e) => {
                            errors.push(format!("mkdir: {e}"));
                            false
                        }
                    };
                    if let Err(e) = fs::write(dir.join(format!("from-{}", NODE[i])), content(round, i)) {
                        errors.push(format!("create in the new dir ({}): {e}", if won { "won" } else { "lost" }));
                    }
                    barrier.wait();
                    let other = 1 - i;
                    match fs::read(dir.join(format!("from-{}", NODE[other]))) {
                        Ok(c) if c == content(round, other) => {}
                        Ok(c) => {
                            errors.push(format!("node {}'s file reads {:?}", NODE[other], String::from_utf8_lossy(&c)))
                        }
                        Err(e) => errors.push(format!("reading node {}'s file: {e}", NODE[other])),
                    }
                    out.push((won, errors));
                }
                out
            })
        })
        .collect();
    let results: Vec<_> = racers.into_iter().map(|t| t.join().unwrap()).collect();
    let took = start.elapsed();
    let mut problems = Vec::new();
    let mut wins = [0; 2];
    for (round, (a, b)) in results[0].iter().zip(&results[1]).enumerate() {
        wins[0] += a.0 as u32;
        wins[1] += b.0 as u32;
        if a.0 == b.0 {
            problems.push(format!("round {round}: {} mkdir succeeded", if a.0 { "both" } else { "no" }));
        }
        for (i, r) in [a, b].iter().enumerate() {
            for e in &r.1 {
                problems.push(format!("round {round}, node {} ({}): {e}", NODE[i], if r.0 { "won" } else { "lost" }));
            }
        }
    }
    // Afterwards, through both nodes: each directory holds both files.
    for (i, name) in NODE.iter().enumerate() {
        for round in 0..rounds {
            let dir = n.at(i, &format!("race/d{round}"));
            for (j, who) in NODE.iter().enumerate() {
                match fs::read(dir.join(format!("from-{who}"))) {
                    Ok(c) if c == content(round, j) => {}
                    Ok(_) => problems.push(format!("node {}: d{round}/from-{who} has other content", name)),
                    Err(e) => problems.push(format!("node {}: d{round}/from-{who}: {e}", name)),
                }
            }
            let count = fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
            if count != 2 {
                problems.push(format!("node {}: d{round} lists {count} entries, not 2", name));
            }
        }
    }
    check_backing_tree(&n.backing[1], &mut problems);
    println!(
        "mkdir race: {rounds} rounds in {:.1} s; node A won {}, node B won {}; {} problems",
        took.as_secs_f64(),
        wins[0],
        wins[1],
        problems.len()
    );
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

// ---- 4. appends ------------------------------------------------------------------------

fn record(tag: &str, seq: u64) -> Vec<u8> {
    let mut r = Rng(seq.wrapping_mul(31) ^ tag.bytes().map(u64::from).sum::<u64>() << 40);
    // Mostly short, some longer than a block.
    let len = if r.below(5) == 0 { 3000 + r.below(6000) } else { 10 + r.below(300) } as usize;
    let payload: String = (0..len).map(|_| (b'a' + r.below(26) as u8) as char).collect();
    format!("{tag} {seq:05} {len:05} {payload}\n").into_bytes()
}

/// Two appenders per node (one keeps its file open, one reopens it for
/// every record) append records of 10 bytes to 9 KB at once: every record
/// appears exactly once, whole, and each writer's in its own order.
#[test]
fn appends_from_both_nodes_land_whole_and_exactly_once() {
    let Some(n) = Nodes::start("append") else { return };
    let per_writer = env_u64("TRESOR_SHARED_APPENDS").unwrap_or(150);
    File::create(n.at(0, "log")).unwrap();
    let barrier = Arc::new(Barrier::new(4));
    let start = Instant::now();
    let tags = ["A0", "B0", "A1", "B1"];
    let writers: Vec<_> = (0..4usize)
        .map(|w| {
            let path = n.at(w % 2, "log");
            let barrier = barrier.clone();
            let reopen = w >= 2;
            thread::spawn(move || -> Result<(), String> {
                let opener = || OpenOptions::new().append(true).open(&path);
                let mut held = if reopen { None } else { Some(opener().map_err(|e| format!("open: {e}"))?) };
                barrier.wait();
                for seq in 0..per_writer {
                    let rec = record(tags[w], seq);
                    let res = match &mut held {
                        Some(f) => f.write_all(&rec),
                        None => opener().and_then(|mut f| {
                            f.write_all(&rec)?;
                            close(f)
                        }),
                    };
                    res.map_err(|e| format!("record {seq}: {e}"))?;
                }
                if let Some(f) = held {
                    close(f).map_err(|e| format!("close: {e}"))?;
                }
                Ok(())
            })
        })
        .collect();
    let errors: Vec<String> = writers
        .into_iter()
        .enumerate()
        .filter_map(|(w, t)| t.join().unwrap().err().map(|e| format!("{}: {e}", tags[w])))
        .collect();
    let took = start.elapsed();
    assert!(errors.is_empty(), "appends failed:\n{}", errors.join("\n"));

    let expected_len: usize = tags.iter().map(|t| (0..per_writer).map(|s| record(t, s).len()).sum::<usize>()).sum();
    for (i, name) in NODE.iter().enumerate() {
        let content =
            read_whole(&n.at(i, "log"), false).unwrap_or_else(|e| panic!("reading the log through node {}: {e}", name));
        let mut seen: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        let mut bad = Vec::new();
        for (k, line) in content.split_inclusive(|&b| b == b'\n').enumerate() {
            let text = String::from_utf8_lossy(line);
            let parsed = text.split(' ').collect::<Vec<_>>();
            let ok = parsed.len() == 4
                && tags.contains(&parsed[0])
                && parsed[1].parse::<u64>().is_ok_and(|s| record(parsed[0], s) == line);
            if ok {
                let tag = tags.iter().find(|t| **t == parsed[0]).unwrap();
                seen.entry(tag).or_default().push(parsed[1].parse().unwrap());
            } else {
                bad.push(format!("line {k}: {:?}…", text.chars().take(40).collect::<String>()));
            }
        }
        assert!(bad.is_empty(), "node {}: {} damaged records:\n{}", name, bad.len(), bad.join("\n"));
        for tag in tags {
            let want: Vec<u64> = (0..per_writer).collect();
            assert_eq!(seen.get(tag), Some(&want), "node {}: {tag}'s records, each once, in order", name);
        }
        assert_eq!(content.len(), expected_len, "node {}: the log's length", name);
    }
    println!(
        "appends: {} records ({} bytes) from 4 writers on 2 nodes in {:.1} s, every one once and whole",
        4 * per_writer,
        expected_len,
        took.as_secs_f64()
    );
}

// ---- 5. byte-range locks ----------------------------------------------------------------

/// fcntl(cmd) with a `struct flock`; returns the result (errno on failure)
/// and the struct as the kernel left it.
fn fcntl_lock(f: &File, cmd: i32, typ: i32, start: i64, len: i64) -> (Result<(), i32>, libc::flock) {
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = typ as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = start;
    fl.l_len = len;
    let r = unsafe { libc::fcntl(f.as_raw_fd(), cmd, &mut fl) };
    let res = if r == 0 { Ok(()) } else { Err(io::Error::last_os_error().raw_os_error().unwrap_or(0)) };
    (res, fl)
}

fn is_conflict(r: Result<(), i32>) -> bool {
    matches!(r, Err(e) if e == libc::EAGAIN || e == libc::EACCES)
}

/// POSIX byte-range locks taken through one node are seen, and enforced,
/// through the other: Tresor forwards them to the backing files, and
/// GlusterFS enforces them across its clients.
#[test]
fn posix_locks_through_one_node_block_the_other() {
    let Some(n) = Nodes::start("locks") else { return };
    fs::write(n.at(0, "locked"), pattern(9, 3 * BLOCK as usize)).unwrap();
    let fa = open(&n.at(0, "locked"), true, false).unwrap();
    let fb = open(&n.at(1, "locked"), true, false).unwrap();
    let (wr, rd, un) = (libc::F_WRLCK, libc::F_RDLCK, libc::F_UNLCK);

    // A write lock on [0, 100) through A...
    assert_eq!(fcntl_lock(&fa, libc::F_SETLK, wr, 0, 100).0, Ok(()));
    // ...refuses B a conflicting write or read lock,
    let r = fcntl_lock(&fb, libc::F_SETLK, wr, 50, 10).0;
    assert!(is_conflict(r), "B took a write lock inside A's: {r:?}");
    let r = fcntl_lock(&fb, libc::F_SETLK, rd, 99, 10).0;
    assert!(is_conflict(r), "B took a read lock overlapping A's write lock: {r:?}");
    // ...shows to B's F_GETLK,
    let (r, fl) = fcntl_lock(&fb, libc::F_GETLK, wr, 50, 10);
    assert_eq!(r, Ok(()));
    assert_eq!(fl.l_type as i32, wr, "B's F_GETLK sees A's write lock");
    assert!(fl.l_start <= 50 && (fl.l_len == 0 || fl.l_start + fl.l_len >= 60), "{} +{}", fl.l_start, fl.l_len);
    // ...and leaves the rest of the file to B, whose own lock A then sees.
    assert_eq!(fcntl_lock(&fb, libc::F_SETLK, wr, 200, 100).0, Ok(()));
    let r = fcntl_lock(&fa, libc::F_SETLK, rd, 250, 1).0;
    assert!(is_conflict(r), "A took a lock inside B's: {r:?}");
    // Read locks share.
    assert_eq!(fcntl_lock(&fa, libc::F_SETLK, rd, 1000, 100).0, Ok(()));
    assert_eq!(fcntl_lock(&fb, libc::F_SETLK, rd, 1050, 100).0, Ok(()));
    let r = fcntl_lock(&fb, libc::F_SETLK, wr, 1020, 10).0;
    assert!(is_conflict(r), "B took a write lock over A's read lock: {r:?}");
    // An OFD lock through B meets A's process lock the same way.
    let r = fcntl_lock(&fb, libc::F_OFD_SETLK, wr, 0, 1).0;
    assert!(is_conflict(r), "B took an OFD lock inside A's lock: {r:?}");
    // Locks are advisory: B still writes into A's range, and A reads it.
    fb.write_all_at(b"written under A's lock", 10).unwrap();
    assert_eq!(read_at(&fa, 10, 22).unwrap(), b"written under A's lock");

    // A blocking lock through B waits until A unlocks.
    let (tx, rx) = mpsc::channel();
    let fb2 = fb.try_clone().unwrap();
    let waiter = thread::spawn(move || {
        let t = Instant::now();
        let r = fcntl_lock(&fb2, libc::F_SETLKW, wr, 0, 100).0;
        let _ = tx.send((r, t.elapsed()));
        fb2
    });
    thread::sleep(Duration::from_millis(500));
    assert!(rx.try_recv().is_err(), "B's F_SETLKW returned while A held the lock");
    fs::metadata(n.at(0, "locked")).unwrap(); // both nodes keep serving meanwhile
    fs::metadata(n.at(1, "locked")).unwrap();
    assert_eq!(fcntl_lock(&fa, libc::F_SETLK, un, 0, 100).0, Ok(()));
    let (r, waited) = rx.recv_timeout(Duration::from_secs(20)).expect("B's F_SETLKW never returned after A's unlock");
    assert_eq!(r, Ok(()));
    assert!(waited >= Duration::from_millis(400), "B waited only {waited:?}");
    let fb2 = waiter.join().unwrap();
    // Now B holds [0, 100): A is refused.
    let r = fcntl_lock(&fa, libc::F_SETLK, wr, 0, 10).0;
    assert!(is_conflict(r), "A took a lock inside B's: {r:?}");
    // POSIX locks go with any close of the file by their process, before close returns.
    drop(fb2);
    close(fb).unwrap();
    assert_eq!(fcntl_lock(&fa, libc::F_SETLK, wr, 0, 400).0, Ok(()), "B's locks outlived its close");
    assert_eq!(fcntl_lock(&fa, libc::F_SETLK, un, 0, 0).0, Ok(()));
    close(fa).unwrap();
    println!("locks: write, read, OFD and blocking locks through node A and node B exclude each other");
}

/// flock(2) through one node's mount holds off the other node's, on GlusterFS.
#[test]
fn flock_through_one_node_blocks_the_other() {
    let Some(n) = Nodes::start("flock") else { return };
    fs::write(n.at(0, "flocked"), b"x").unwrap();
    let fa = open(&n.at(0, "flocked"), true, false).unwrap();
    let fb = open(&n.at(1, "flocked"), true, false).unwrap();
    let flock = |f: &File, op: i32| {
        if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().raw_os_error())
        }
    };
    flock(&fa, libc::LOCK_EX).unwrap();
    assert_eq!(flock(&fb, libc::LOCK_SH | libc::LOCK_NB), Err(Some(libc::EWOULDBLOCK)));
    flock(&fa, libc::LOCK_SH).unwrap();
    flock(&fb, libc::LOCK_SH | libc::LOCK_NB).unwrap(); // shared locks share
    assert_eq!(flock(&fa, libc::LOCK_EX | libc::LOCK_NB), Err(Some(libc::EWOULDBLOCK)));
    flock(&fb, libc::LOCK_UN).unwrap();
    flock(&fa, libc::LOCK_EX | libc::LOCK_NB).unwrap();
    close(fa).unwrap();
    // A's lock went with its open file.
    let t = Instant::now();
    while flock(&fb, libc::LOCK_EX | libc::LOCK_NB).is_err() {
        assert!(t.elapsed() < Duration::from_secs(5), "A's flock outlived its open file");
        thread::sleep(Duration::from_millis(10));
    }
    close(fb).unwrap();
    println!("flock: exclusive and shared locks through node A and node B exclude each other");
}

/// `tresor rekey` on node A (by a plaintext path in node A's mount) while
/// node B writes to the file: node B's handle follows the file to its new
/// key (docs/FORMAT.md §6.5), and no write is lost.
#[test]
fn a_re_key_on_node_a_while_node_b_writes_loses_nothing() {
    let Some(n) = Nodes::start("rekey") else { return };
    let len = 1 << 20;
    let mut rng = Rng(42);
    let mut model: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
    fs::write(n.at(0, "live"), &model).unwrap();
    let writer_path = n.at(1, "live");
    let writer = thread::spawn(move || {
        let f = OpenOptions::new().read(true).write(true).open(&writer_path).unwrap();
        let mut rng = Rng(7);
        let deadline = Instant::now() + Duration::from_secs(4);
        let mut writes = 0u32;
        while Instant::now() < deadline {
            let size = 1 + rng.below(8_000) as usize;
            let off = rng.below((len - size) as u64) as usize;
            let chunk: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
            f.write_all_at(&chunk, off as u64).unwrap();
            model[off..off + size].copy_from_slice(&chunk);
            writes += 1;
        }
        (model, writes)
    });
    let s = &n._scratch;
    let mut rekeys = 0;
    while !writer.is_finished() {
        run_ok(
            s.tresor()
                .arg("rekey")
                .arg(n.at(0, "live"))
                .arg("-i")
                .arg(s.path("alice.id"))
                .arg("--passfile")
                .arg(s.path("pass")),
        );
        rekeys += 1;
    }
    let (model, writes) = writer.join().unwrap();
    assert!(rekeys >= 2 && writes > 10, "{rekeys} re-keys, {writes} writes");
    for (i, name) in NODE.iter().enumerate() {
        assert!(fs::read(n.at(i, "live")).unwrap() == model, "node {name}: after {rekeys} re-keys and {writes} writes");
    }
    let log = fs::read_to_string(&n.log[1]).unwrap();
    assert!(log.contains("handle reopened on the new file"), "node B never followed a re-key:\n{log}");
}
