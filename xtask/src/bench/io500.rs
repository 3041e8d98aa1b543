//! The workloads of `cargo xtask bench --backend`, in IO500's shapes, with
//! worker threads spread over two nodes (worker `w` works through node
//! `w % 2`; its partner `w ^ 1`, on the other node, reads back what it wrote,
//! as IOR's `-C` and mdtest's `-N 1` do), plus the single-process rows of
//! the local bench. Every read is verified; a wrong byte makes the row
//! CORRUPT rather than fast.
//!
//! - ior-easy: a file per worker, 2 MiB transfers, fsync at the end (IOR
//!   `-F -t 2m -e`); read back by the partner after the page cache is dropped.
//! - ior-hard: one shared file of 47,008-byte transfers, segment `k` holding
//!   worker `w`'s transfer at `(k * workers + w) * 47008` (IOR `-s N -t 47008
//!   -b 47008`), fsync at the end; the partner reads back, then the whole
//!   file is checked through node 1.
//! - mdtest-easy: a directory per worker; create empty files, stat (the
//!   partner's), delete (mdtest `-F -u -N 1`).
//! - mdtest-hard: one shared directory; create with 3,901 bytes written,
//!   stat, read 3,901 bytes (the partner's), delete (mdtest `-F -w 3901 -e
//!   3901 -N 1`).
//! - single process (the local bench's rows): writes through node 1, reads
//!   through node 2 once the page cache is dropped (so that a client-side
//!   cache such as ceph-fuse's object cache cannot serve them).
//! - `ls -l` of a directory filled by all workers, run through node 2.

use std::{
    fs::{self, File, OpenOptions},
    io::{Read, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::Duration,
};

use super::{
    check_interrupt, check_stamps, ctx, drop_caches, group, pattern, random_io, seq_read, seq_write, stamp, Res, Sizes,
    MIB,
};

pub const EASY_XFER: u64 = 2 * MIB;
pub const HARD_XFER: usize = 47_008;
pub const MD_HARD_BYTES: usize = 3_901;

/// The sizes of a run, from `--scale`.
pub struct Scale {
    pub workers: usize,
    /// ior-easy bytes per worker.
    pub easy_bytes: u64,
    /// ior-hard segments (transfers per worker).
    pub hard_segments: u64,
    /// mdtest files per worker.
    pub md_easy: usize,
    pub md_hard: usize,
    /// The single-process rows.
    pub single: Sizes,
    pub ls_entries: usize,
}

impl Scale {
    /// Sizes at `--scale 1`: all three back ends in about 20 minutes on a
    /// loaded two-core machine (docs/PERFORMANCE.md). `ls_entries` (0: by the scale) is
    /// `--ls-entries`.
    pub fn new(scale: f64, workers: usize, ls_entries: usize) -> Scale {
        let n = |x: f64| (x * scale).round().max(1.0);
        Scale {
            workers,
            easy_bytes: n(16.0) as u64 * EASY_XFER,
            hard_segments: n(128.0) as u64,
            md_easy: n(200.0) as usize,
            md_hard: n(100.0) as usize,
            single: Sizes {
                seq: n(128.0) as u64 * MIB,
                rand_file: n(16.0) as u64 * MIB,
                rand_ops: n(4000.0) as u64,
                rand_cap: Duration::from_secs(60),
                files: n(500.0) as usize,
            },
            ls_entries: if ls_entries > 0 { ls_entries } else { n(2000.0) as usize },
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Row {
    EasyWrite,
    EasyRead,
    HardWrite,
    HardRead,
    MdEasyCreate,
    MdEasyStat,
    MdEasyDelete,
    MdHardWrite,
    MdHardStat,
    MdHardRead,
    MdHardDelete,
    SeqWrite,
    SeqRead,
    RandWrite,
    RandRead,
    Create,
    Stat,
    Unlink,
    LsL,
}

impl Row {
    pub const ALL: [Row; 19] = [
        Row::EasyWrite,
        Row::EasyRead,
        Row::HardWrite,
        Row::HardRead,
        Row::MdEasyCreate,
        Row::MdEasyStat,
        Row::MdEasyDelete,
        Row::MdHardWrite,
        Row::MdHardStat,
        Row::MdHardRead,
        Row::MdHardDelete,
        Row::SeqWrite,
        Row::SeqRead,
        Row::RandWrite,
        Row::RandRead,
        Row::Create,
        Row::Stat,
        Row::Unlink,
        Row::LsL,
    ];

    /// Rows that move file data: shown in MB/s, CPU per GiB.
    pub fn is_data(self) -> bool {
        matches!(
            self,
            Row::EasyWrite
                | Row::EasyRead
                | Row::HardWrite
                | Row::HardRead
                | Row::SeqWrite
                | Row::SeqRead
                | Row::RandWrite
                | Row::RandRead
        )
    }

    /// The write rows, whose goal is 1.5x gocryptfs.
    pub fn is_write(self) -> bool {
        matches!(self, Row::EasyWrite | Row::HardWrite | Row::SeqWrite | Row::RandWrite)
    }

    pub fn label(self, s: &Scale) -> String {
        let w = s.workers;
        let mib = |b: u64| b / MIB;
        match self {
            Row::EasyWrite => format!("ior-easy write, {w} x {} MiB, 2 MiB xfers (MB/s)", mib(s.easy_bytes)),
            Row::EasyRead => "ior-easy read, other node's file (MB/s)".into(),
            Row::HardWrite => format!("ior-hard write, {w} x {} x 47,008 B, 1 file (MB/s)", s.hard_segments),
            Row::HardRead => "ior-hard read, other node's xfers (MB/s)".into(),
            Row::MdEasyCreate => format!("mdtest-easy create, {w} dirs x {} (ops/s)", group(s.md_easy as f64)),
            Row::MdEasyStat => "mdtest-easy stat (ops/s)".into(),
            Row::MdEasyDelete => "mdtest-easy delete (ops/s)".into(),
            Row::MdHardWrite => {
                format!("mdtest-hard write, 1 dir, {w} x {} x 3,901 B (ops/s)", group(s.md_hard as f64))
            }
            Row::MdHardStat => "mdtest-hard stat (ops/s)".into(),
            Row::MdHardRead => "mdtest-hard read (ops/s)".into(),
            Row::MdHardDelete => "mdtest-hard delete (ops/s)".into(),
            Row::SeqWrite => format!("1 proc: seq write {} MiB + fsync (MB/s)", mib(s.single.seq)),
            Row::SeqRead => "1 proc: seq read, cold, other node (MB/s)".into(),
            Row::RandWrite => format!("1 proc: random 4 KiB write, {} MiB file (MB/s)", mib(s.single.rand_file)),
            Row::RandRead => "1 proc: random 4 KiB read, cold, other node (MB/s)".into(),
            Row::Create => format!("1 proc: create {} files (ops/s)", group(s.single.files as f64)),
            Row::Stat => "1 proc: stat (ops/s)".into(),
            Row::Unlink => "1 proc: unlink (ops/s)".into(),
            Row::LsL => format!("ls -l of {} entries, other node (s)", group(s.ls_entries as f64)),
        }
    }
}

/// What one phase did: `ops` operations (transfers, files, entries) moving
/// `bytes`; `bad` of `checked` items read back wrong.
#[derive(Default, Clone, Copy)]
pub struct Outcome {
    pub ops: u64,
    pub bytes: u64,
    pub bad: u64,
    pub checked: u64,
}

/// Where one target's workers run: the target's directory through each node,
/// and the backing directory of each node (synced before caches are dropped).
pub struct Ctx<'a> {
    pub dirs: [PathBuf; 2],
    pub backing: &'a [PathBuf; 2],
    pub scale: &'a Scale,
}

impl Ctx<'_> {
    fn node(&self, w: usize) -> &Path {
        &self.dirs[w % 2]
    }

    fn drop_caches(&self) {
        for d in self.backing.iter() {
            if let Ok(f) = File::open(d) {
                use std::os::fd::AsRawFd;
                unsafe { libc::syncfs(f.as_raw_fd()) };
            }
        }
        drop_caches();
    }
}

/// Runs `f(w)` for every worker at once; sums what they return.
fn parallel(workers: usize, f: impl Fn(usize) -> Res<u64> + Sync) -> Res<u64> {
    thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let f = &f;
                s.spawn(move || f(w).map_err(|e| format!("worker {w} (node {}): {e}", w % 2 + 1)))
            })
            .collect();
        let mut sum = 0;
        let mut first = None;
        for h in handles {
            match h.join().map_err(|_| "a worker panicked".to_owned()).and_then(|r| r) {
                Ok(n) => sum += n,
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(sum), |e| Err(e.into()))
    })
}

/// splitmix64: the content of ior-hard transfers and mdtest-hard files, a
/// function of (item, word) so that any byte from another item or an older
/// write is caught.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fill(buf: &mut [u8], item: u64) {
    for (j, c) in buf.chunks_mut(8).enumerate() {
        let x = mix(item << 20 ^ j as u64).to_le_bytes();
        c.copy_from_slice(&x[..c.len()]);
    }
}

fn matches(buf: &[u8], item: u64, scratch: &mut [u8]) -> bool {
    fill(scratch, item);
    buf == scratch
}

/// What runs the phases: it measures each one with its counters, and keeps
/// the verdicts of the checks made after them.
pub trait Measure {
    fn phase(&mut self, row: Row, f: &mut dyn FnMut() -> Res<Outcome>) -> Res;
    /// `bad` of `checked` items read back wrong, charged to `row` (the write that made them).
    fn verdict(&mut self, row: Row, bad: u64, checked: u64);
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Workload {
    IorEasy,
    IorHard,
    MdEasy,
    MdHard,
    Seq,
    Random,
    Meta,
    Ls,
}

impl Workload {
    pub const ALL: [Workload; 8] = [
        Workload::IorEasy,
        Workload::IorHard,
        Workload::MdEasy,
        Workload::MdHard,
        Workload::Seq,
        Workload::Random,
        Workload::Meta,
        Workload::Ls,
    ];

    pub fn rows(self) -> &'static [Row] {
        match self {
            Workload::IorEasy => &[Row::EasyWrite, Row::EasyRead],
            Workload::IorHard => &[Row::HardWrite, Row::HardRead],
            Workload::MdEasy => &[Row::MdEasyCreate, Row::MdEasyStat, Row::MdEasyDelete],
            Workload::MdHard => &[Row::MdHardWrite, Row::MdHardStat, Row::MdHardRead, Row::MdHardDelete],
            Workload::Seq => &[Row::SeqWrite, Row::SeqRead],
            Workload::Random => &[Row::RandWrite, Row::RandRead],
            Workload::Meta => &[Row::Create, Row::Stat, Row::Unlink],
            Workload::Ls => &[Row::LsL],
        }
    }

    pub fn run(self, c: &Ctx, m: &mut dyn Measure) -> Res {
        let s = c.scale;
        let p = s.workers;
        match self {
            Workload::IorEasy => {
                let dir = "ior-easy";
                ctx("mkdir", &c.dirs[0], fs::create_dir(c.dirs[0].join(dir)))?;
                let file = |w: usize, of: usize| c.node(w).join(dir).join(format!("file.{of}"));
                let xfers = s.easy_bytes / EASY_XFER;
                let per = EASY_XFER / super::BLOCK;
                let all = Outcome { ops: xfers * p as u64, bytes: s.easy_bytes * p as u64, ..Outcome::default() };
                m.phase(Row::EasyWrite, &mut || {
                    parallel(p, |w| {
                        let path = file(w, w);
                        let mut buf = pattern(EASY_XFER);
                        let mut f = ctx("create", &path, OpenOptions::new().write(true).create_new(true).open(&path))?;
                        for i in 0..xfers {
                            stamp(&mut buf, ((w as u64) << 32) | (i * per));
                            ctx("write", &path, f.write_all(&buf))?;
                        }
                        ctx("fsync", &path, f.sync_all())?;
                        Ok(0)
                    })?;
                    Ok(all)
                })?;
                c.drop_caches();
                m.phase(Row::EasyRead, &mut || {
                    parallel(p, |w| {
                        let path = file(w, w ^ 1);
                        let mut buf = vec![0; EASY_XFER as usize];
                        let mut f = ctx("open", &path, File::open(&path))?;
                        for i in 0..xfers {
                            ctx("read", &path, f.read_exact(&mut buf))?;
                            check_stamps(&buf, (((w ^ 1) as u64) << 32) | (i * per))?;
                        }
                        Ok(0)
                    })?;
                    Ok(Outcome { checked: all.ops, ..all })
                })?;
                ctx("rm", &c.dirs[0], fs::remove_dir_all(c.dirs[0].join(dir)))?;
            }
            Workload::IorHard => {
                let name = "ior-hard.file";
                let segs = s.hard_segments;
                let xfer = HARD_XFER as u64;
                let item = |k: u64, w: usize| k * p as u64 + w as u64;
                ctx("create", &c.dirs[0], File::create(c.dirs[0].join(name)))?;
                let all = Outcome { ops: segs * p as u64, bytes: segs * p as u64 * xfer, ..Outcome::default() };
                m.phase(Row::HardWrite, &mut || {
                    parallel(p, |w| {
                        let path = c.node(w).join(name);
                        let f = ctx("open", &path, OpenOptions::new().write(true).open(&path))?;
                        let mut buf = vec![0; HARD_XFER];
                        for k in 0..segs {
                            if k % 64 == 0 {
                                check_interrupt()?;
                            }
                            fill(&mut buf, item(k, w));
                            ctx("pwrite", &path, f.write_all_at(&buf, item(k, w) * xfer))?;
                        }
                        ctx("fsync", &path, f.sync_all())?;
                        Ok(0)
                    })?;
                    Ok(all)
                })?;
                c.drop_caches();
                m.phase(Row::HardRead, &mut || {
                    let bad = parallel(p, |w| {
                        let path = c.node(w).join(name);
                        let f = ctx("open", &path, File::open(&path))?;
                        let (mut buf, mut want) = (vec![0; HARD_XFER], vec![0; HARD_XFER]);
                        let mut bad = 0;
                        for k in 0..segs {
                            ctx("pread", &path, f.read_exact_at(&mut buf, item(k, w ^ 1) * xfer))?;
                            bad += u64::from(!matches(&buf, item(k, w ^ 1), &mut want));
                        }
                        Ok(bad)
                    })?;
                    Ok(Outcome { bad, checked: all.ops, ..all })
                })?;
                // Then every transfer, through node 1 (not timed).
                let path = c.dirs[0].join(name);
                let mut f = ctx("open", &path, File::open(&path))?;
                let (mut buf, mut want) = (vec![0; HARD_XFER], vec![0; HARD_XFER]);
                let mut bad = 0;
                for i in 0..all.ops {
                    ctx("read", &path, f.read_exact(&mut buf))?;
                    bad += u64::from(!matches(&buf, i, &mut want));
                }
                let longer = ctx("read", &path, f.read(&mut buf[..1]))?;
                m.verdict(Row::HardWrite, bad + longer as u64, all.ops);
                ctx("unlink", &path, fs::remove_file(&path))?;
            }
            Workload::MdEasy => {
                let top = c.dirs[0].join("mdtest-easy");
                ctx("mkdir", &top, fs::create_dir(&top))?;
                for w in 0..p {
                    ctx("mkdir", &top, fs::create_dir(top.join(format!("w{w}"))))?;
                }
                let n = s.md_easy;
                let path =
                    |w: usize, of: usize, i: usize| c.node(w).join(format!("mdtest-easy/w{of}/file.mdtest.{of}.{i}"));
                let all = Outcome { ops: (n * p) as u64, ..Outcome::default() };
                m.phase(Row::MdEasyCreate, &mut || {
                    parallel(p, |w| create_files((0..n).map(|i| path(w, w, i)))).map(|_| all)
                })?;
                m.phase(Row::MdEasyStat, &mut || {
                    parallel(p, |w| stat_files((0..n).map(|i| path(w, w ^ 1, i)), 0)).map(|_| all)
                })?;
                m.phase(Row::MdEasyDelete, &mut || {
                    parallel(p, |w| unlink_files((0..n).map(|i| path(w, w, i)))).map(|_| all)
                })?;
                ctx("rm", &top, fs::remove_dir_all(&top))?;
            }
            Workload::MdHard => {
                let top = c.dirs[0].join("mdtest-hard");
                ctx("mkdir", &top, fs::create_dir(&top))?;
                let n = s.md_hard;
                let path = |w: usize, of: usize, i: usize| c.node(w).join(format!("mdtest-hard/file.mdtest.{of}.{i}"));
                let item = |w: usize, i: usize| (w as u64) << 32 | i as u64;
                let all = Outcome { ops: (n * p) as u64, bytes: (n * p * MD_HARD_BYTES) as u64, ..Outcome::default() };
                m.phase(Row::MdHardWrite, &mut || {
                    parallel(p, |w| {
                        let mut buf = vec![0; MD_HARD_BYTES];
                        for i in 0..n {
                            let path = path(w, w, i);
                            fill(&mut buf, item(w, i));
                            let mut f =
                                ctx("create", &path, OpenOptions::new().write(true).create_new(true).open(&path))?;
                            ctx("write", &path, f.write_all(&buf))?;
                        }
                        Ok(0)
                    })
                    .map(|_| all)
                })?;
                m.phase(Row::MdHardStat, &mut || {
                    parallel(p, |w| stat_files((0..n).map(|i| path(w, w ^ 1, i)), MD_HARD_BYTES as u64)).map(|_| all)
                })?;
                m.phase(Row::MdHardRead, &mut || {
                    let bad = parallel(p, |w| {
                        let (mut buf, mut want) = (Vec::with_capacity(MD_HARD_BYTES + 1), vec![0; MD_HARD_BYTES]);
                        let mut bad = 0;
                        for i in 0..n {
                            let path = path(w, w ^ 1, i);
                            buf.clear();
                            ctx("read", &path, File::open(&path).and_then(|mut f| f.read_to_end(&mut buf)))?;
                            bad += u64::from(buf.len() != MD_HARD_BYTES || !matches(&buf, item(w ^ 1, i), &mut want));
                        }
                        Ok(bad)
                    })?;
                    Ok(Outcome { bad, checked: all.ops, ..all })
                })?;
                m.phase(Row::MdHardDelete, &mut || {
                    parallel(p, |w| unlink_files((0..n).map(|i| path(w, w, i)))).map(|_| all)
                })?;
                ctx("rm", &top, fs::remove_dir_all(&top))?;
            }
            Workload::Seq => {
                let path = c.dirs[0].join("seq.bin");
                let size = s.single.seq;
                let all = Outcome { ops: size / MIB, bytes: size, ..Outcome::default() };
                let mut buf = pattern(MIB);
                m.phase(Row::SeqWrite, &mut || seq_write(&path, size, &mut buf).map(|_| all))?;
                c.drop_caches();
                let other = c.dirs[1].join("seq.bin");
                m.phase(Row::SeqRead, &mut || {
                    seq_read(&other, size, &mut buf).map(|_| Outcome { checked: all.ops, ..all })
                })?;
                ctx("unlink", &path, fs::remove_file(&path))?;
            }
            Workload::Random => {
                let path = c.dirs[0].join("random.bin");
                seq_write(&path, s.single.rand_file, &mut pattern(MIB))?;
                let other = c.dirs[1].join("random.bin");
                let io = |write: bool, seed: u64| {
                    random_io(if write { &path } else { &other }, &s.single, write, seed).map(|(n, _)| Outcome {
                        ops: n,
                        bytes: n * super::BLOCK,
                        checked: if write { 0 } else { n },
                        bad: 0,
                    })
                };
                m.phase(Row::RandWrite, &mut || io(true, 0x7e50_0001))?;
                c.drop_caches();
                m.phase(Row::RandRead, &mut || io(false, 0x7e50_0002))?;
                ctx("unlink", &path, fs::remove_file(&path))?;
            }
            Workload::Meta => {
                let dir = c.dirs[0].join("meta");
                ctx("mkdir", &dir, fs::create_dir(&dir))?;
                let names: Vec<PathBuf> = (0..s.single.files).map(|i| dir.join(format!("file-{i:06}"))).collect();
                let all = Outcome { ops: names.len() as u64, ..Outcome::default() };
                m.phase(Row::Create, &mut || create_files(names.iter().cloned()).map(|_| all))?;
                m.phase(Row::Stat, &mut || stat_files(names.iter().cloned(), 0).map(|_| all))?;
                m.phase(Row::Unlink, &mut || unlink_files(names.iter().cloned()).map(|_| all))?;
                ctx("rmdir", &dir, fs::remove_dir(&dir))?;
            }
            Workload::Ls => {
                // Made by all workers on both nodes (not timed), listed through node 2.
                let n = s.ls_entries;
                let rel = "ls-l";
                ctx("mkdir", &c.dirs[0], fs::create_dir(c.dirs[0].join(rel)))?;
                parallel(p, |w| {
                    create_files((w..n).step_by(p).map(|i| c.node(w).join(rel).join(format!("entry-{i:06}"))))
                })?;
                let dir = c.dirs[1].join(rel);
                m.phase(Row::LsL, &mut || {
                    let out =
                        Command::new("ls").args(["-l", "--color=never"]).arg(&dir).stdin(Stdio::null()).output()?;
                    let lines = out.stdout.split(|b| *b == b'\n').filter(|l| l.starts_with(b"-")).count();
                    if !out.status.success() || lines != n {
                        return Err(format!(
                            "ls -l {} listed {lines} of {n} files: {}",
                            dir.display(),
                            String::from_utf8_lossy(&out.stderr).trim()
                        )
                        .into());
                    }
                    Ok(Outcome { ops: n as u64, ..Outcome::default() })
                })?;
                // Left for the end of the run: the whole bench directory goes then.
            }
        }
        Ok(())
    }
}

/// Runs `f` on each path, checking for Ctrl-C now and then.
fn each(paths: impl Iterator<Item = PathBuf>, mut f: impl FnMut(&Path) -> Res) -> Res<u64> {
    for (i, p) in paths.enumerate() {
        if i % 256 == 0 {
            check_interrupt()?;
        }
        f(&p)?;
    }
    Ok(0)
}

/// Creates each file (O_EXCL), empty.
pub(super) fn create_files(paths: impl Iterator<Item = PathBuf>) -> Res<u64> {
    each(paths, |p| ctx("create", p, OpenOptions::new().write(true).create_new(true).open(p)).map(drop))
}

/// Stats each file and checks that it is a regular file of `len` bytes.
pub(super) fn stat_files(paths: impl Iterator<Item = PathBuf>, len: u64) -> Res<u64> {
    each(paths, |p| {
        let m = ctx("stat", p, fs::metadata(p))?;
        if !m.is_file() || m.len() != len {
            return Err(format!("stat {}: not a file of {len} bytes", p.display()).into());
        }
        Ok(())
    })
}

pub(super) fn unlink_files(paths: impl Iterator<Item = PathBuf>) -> Res<u64> {
    each(paths, |p| ctx("unlink", p, fs::remove_file(p)))
}
