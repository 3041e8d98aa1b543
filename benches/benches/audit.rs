//! Appending audit records (`tresor_audit::AuditLog::append`): one `open`
//! record with a sealed 40-byte path, CBOR-encoded, chained, written with
//! one write(2) to a log in target/ (checkpoints every 1000 records, as the
//! mount does). With the default group commit (fdatasync by a background
//! thread every second) and with `audit_sync=always` (fdatasync per record).
//! Records per second = 1 / time per iteration. Ids: `append/group-commit`,
//! `append/sync-always`.
//!
//! Verifying (`tresor_audit::verify::verify_reader`, what `tresor audit
//! verify` runs per log file): a log of `TRESOR_AUDIT_BENCH_RECORDS` records
//! (default 1,000,000; the figures in docs/AUDIT.md are for 10,000,000)
//! built once as the mount writes it (open records with sealed paths, a
//! signed checkpoint with its Merkle root every 1000), then verified once from the file on one
//! core: records per second and the peak resident memory the verify adds
//! (VmHWM after resetting it) are printed as `verify: ...`; criterion then
//! times `verify/100k-records` for regressions.

use std::sync::Arc;
use std::time::Duration;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand_core::OsRng;
use tresor_audit::merkle::Frontier;
use tresor_audit::seal::PathSealer;
use tresor_audit::writer::{complete, Start};
use tresor_audit::{chain, frame, verify, AuditConfig, AuditLog, Event, Op, SyncMode};
use tresor_format::{Identity, Volume, VolumeParams};

fn append(c: &mut Criterion) {
    let identity = Arc::new(Identity::from_seed(&[1; 32], "bench").unwrap());
    let (volume, name_key) = Volume::create(&identity, VolumeParams::default(), &mut OsRng).unwrap();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("audit-bench-{}", std::process::id()));
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(1));
    for (name, sync) in [("group-commit", SyncMode::Every(Duration::from_secs(1))), ("sync-always", SyncMode::Always)] {
        let mut config = AuditConfig::new(&dir);
        config.sync = sync;
        let start = Start {
            identity: identity.clone(),
            volume: &volume,
            name_key: &name_key,
            op: Op::Mount,
            options: "bench".into(),
        };
        let log = AuditLog::open(config, start).unwrap();
        let pid = std::process::id();
        group.bench_function(name, |b| {
            b.iter(|| {
                let e = Event::new(Op::Open)
                    .by(1000, 1000, pid)
                    .path("project/cohort-2026/results/table-17.csv")
                    .intent("r");
                log.append(e).unwrap()
            })
        });
        log.close().unwrap();
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes a log of `n` records as a mount does (mount, then open records
/// with a checkpoint every 1000, unmount, checkpoint), fast: no syscalls
/// per record.
fn build_log(path: &Path, n: u64, identity: &Identity, volume: &Volume, sealer: &PathSealer) {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    out.write_all(&frame::file_header()).unwrap();
    let mut prev = chain::GENESIS;
    let mut tree = Frontier::new();
    let mut buf = Vec::with_capacity(512);
    let t0 = 1_790_000_000_000_000_000u64;
    for seq in 0..n {
        let op = match seq {
            0 => Op::Mount,
            s if s + 2 == n => Op::Unmount,
            s if s % 1000 == 1 || s + 1 == n => Op::Checkpoint,
            _ => Op::Open,
        };
        let mut e = Event::new(op).by(1000, 1000, 4242);
        if op == Op::Open {
            e = e.path(format!("project/cohort-2026/results/table-{}.csv", seq % 997)).intent("r");
        }
        let r = e.record_mut();
        (r.seq, r.time_ns, r.host, r.mount_id, r.member) =
            (seq, t0 + seq * 1000, "node1".into(), [7; 16], identity.id().0);
        if op != Op::Checkpoint {
            r.process = "python3".into();
        }
        if op == Op::Mount {
            r.volume = Some(volume.id.to_vec());
            r.key = Some(identity.public().ed25519.as_bytes().to_vec());
        }
        if op == Op::Checkpoint {
            r.root = Some(tree.root().to_vec());
        }
        buf.clear();
        complete(e, sealer, identity, &prev).encode_into(&mut buf);
        out.write_all(&(buf.len() as u32).to_be_bytes()).unwrap();
        out.write_all(&buf).unwrap();
        prev = chain::next(&prev, &buf);
        tree.push(&buf);
    }
    out.flush().unwrap();
}

/// The peak resident set (VmHWM) of this process in KiB, after resetting
/// it to the current one when `reset`.
fn peak_rss_kib(reset: bool) -> u64 {
    if reset {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: 0 kB");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Nanoseconds this thread has run on a CPU (/proc/thread-self/schedstat):
/// a rate per CPU second holds on a loaded machine, where wall-clock
/// time counts the waits for a core.
fn thread_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    stat.split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn verify_rate(c: &mut Criterion) {
    let identity = Identity::from_seed(&[1; 32], "bench").unwrap();
    let (volume, name_key) = Volume::create(&identity, VolumeParams::default(), &mut OsRng).unwrap();
    let sealer = PathSealer::new(&name_key, &volume.id);
    let dir: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("audit-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let n: u64 = std::env::var("TRESOR_AUDIT_BENCH_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let big = dir.join("big.log");
    build_log(&big, n, &identity, &volume, &sealer);
    let size = std::fs::metadata(&big).unwrap().len();
    let before = peak_rss_kib(true);
    let (start, cpu_start) = (Instant::now(), thread_cpu_ns());
    let report = verify::verify_reader(tresor_audit::query::open_log(&big).unwrap(), &volume, &[]);
    let secs = start.elapsed().as_secs_f64();
    let cpu = (thread_cpu_ns() - cpu_start) as f64 / 1e9;
    let peak = peak_rss_kib(false);
    assert!(report.ok() && report.closed && report.records as u64 == n, "{report:?}");
    println!(
        "verify: {n} records ({:.0} MB) in {secs:.2} s = {:.0} records/s on one core ({cpu:.2} s on the CPU: {:.0} \
         records per CPU second); peak RSS {} KiB before, {} KiB during (+{} KiB)",
        size as f64 / 1e6,
        n as f64 / secs,
        n as f64 / cpu,
        before,
        peak,
        peak.saturating_sub(before)
    );
    let small = dir.join("small.log");
    build_log(&small, 100_000, &identity, &volume, &sealer);
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(100_000));
    group.sample_size(10);
    group.bench_function("100k-records", |b| {
        b.iter(|| assert!(verify::verify_reader(tresor_audit::query::open_log(&small).unwrap(), &volume, &[]).ok()))
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = audit;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = append, verify_rate
}
criterion_main!(audit);
