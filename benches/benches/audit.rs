//! Appending audit records (`tresor_audit::AuditLog::append`): one `open`
//! record with a sealed 40-byte path, CBOR-encoded, chained, written with
//! one write(2) to a log in target/ (checkpoints every 1000 records, as the
//! mount does). With the default group commit (fdatasync by a background
//! thread every second) and with `audit_sync=always` (fdatasync per record).
//! Records per second = 1 / time per iteration. Ids: `append/group-commit`,
//! `append/sync-always`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rand_core::OsRng;
use tresor_audit::writer::Start;
use tresor_audit::{AuditConfig, AuditLog, Event, Op, SyncMode};
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

criterion_group! {
    name = audit;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = append
}
criterion_main!(audit);
