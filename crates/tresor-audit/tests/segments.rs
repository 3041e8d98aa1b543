//! Rotation: a mount's log split into segments by size, each sealed and
//! chained to the one before, verifies whole; segments moved elsewhere
//! still verify; a segment removed is found, unless a verified prune record
//! removed it from the start of the log.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand_core::OsRng;
use tresor_audit::query::open_log;
use tresor_audit::segments::{link, prunable, Summary};
use tresor_audit::verify::{verify_reader, Anchor, Diagnosis, Report};
use tresor_audit::writer::Start;
use tresor_audit::{AuditConfig, AuditLog, Event, Op};
use tresor_format::{Identity, NameKey, Volume, VolumeParams};

struct Fixture {
    node: Arc<Identity>,
    volume: Volume,
    name_key: NameKey,
    dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let node = Arc::new(Identity::from_seed(&[2; 32], "node").unwrap());
    let (volume, name_key) = Volume::create(&node, VolumeParams::default(), &mut OsRng).unwrap();
    Fixture { node, volume, name_key, dir: tempfile::tempdir().unwrap() }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

/// Verifies every file as `tresor audit verify` does, then links segments.
fn verify_all(f: &Fixture, paths: &[PathBuf]) -> Vec<Report> {
    let mut reports: Vec<Report> = paths.iter().map(|p| verify_reader(open_log(p).unwrap(), &f.volume, &[])).collect();
    link(&mut reports.iter_mut().collect::<Vec<_>>());
    reports
}

fn problems(reports: &[Report]) -> Vec<Diagnosis> {
    reports.iter().filter_map(|r| r.problem.as_ref().map(|p| p.diagnosis)).collect()
}

#[test]
fn a_rotated_log_verifies_across_its_segments_and_a_missing_one_is_found_unless_pruned() {
    let f = fixture();
    let mut config = AuditConfig::new(f.dir.path());
    config.segment_bytes = 4096;
    let start = Start {
        identity: f.node.clone(),
        volume: &f.volume,
        name_key: &f.name_key,
        op: Op::Mount,
        options: String::new(),
    };
    let log = AuditLog::open(config, start).unwrap();
    for i in 0..200 {
        log.append(Event::new(Op::Open).by(1, 1, 1).path(format!("f{i}")).intent("r")).unwrap();
    }
    log.close().unwrap();
    let segs = files(f.dir.path());
    assert!(segs.len() >= 5, "{segs:?}");

    // Whole: every segment verifies and links; one summary over them.
    let reports = verify_all(&f, &segs);
    assert_eq!(problems(&reports), []);
    let summary = Summary::of(&reports.iter().collect::<Vec<_>>());
    assert_eq!((summary.files, summary.logs, summary.tampered, summary.warnings), (segs.len(), 1, 0, 0), "{summary:?}");
    assert_eq!(summary.records, 2 + 200 + 4 * (segs.len() as u64 - 1) + 2, "{summary:?}");
    assert!(reports.iter().all(|r| r.sealed()), "every segment ends with a signed checkpoint");

    // Anchors (here: every segment's final checkpoint) each belong to one
    // segment; the others do not read them as cut off.
    let anchors: Vec<Anchor> = reports
        .iter()
        .map(|r| Anchor { mount_id: r.mount_id.unwrap(), seq: r.last_seq.unwrap(), hash: r.final_hash.unwrap() })
        .collect();
    let anchored: Vec<Report> = segs.iter().map(|p| verify_reader(open_log(p).unwrap(), &f.volume, &anchors)).collect();
    assert_eq!(problems(&anchored), []);
    assert!(anchored.iter().all(|r| r.anchors_matched == 1), "{anchored:#?}");

    // Moved to other storage: still one chain.
    let archive = tempfile::tempdir().unwrap();
    let moved: Vec<PathBuf> = segs
        .iter()
        .map(|p| {
            let to = archive.path().join(p.file_name().unwrap());
            std::fs::rename(p, &to).unwrap();
            to
        })
        .collect();
    assert_eq!(problems(&verify_all(&f, &moved)), []);

    // A segment removed from the middle, the start or the end is found.
    for gone in [2, 0, moved.len() - 1] {
        let rest: Vec<PathBuf> = moved.iter().enumerate().filter(|(i, _)| *i != gone).map(|(_, p)| p.clone()).collect();
        assert_eq!(problems(&verify_all(&f, &rest)), [Diagnosis::Removed], "segment {gone} removed");
    }

    // Pruned from the start by a prune record in a verified log: fine.
    let reports = verify_all(&f, &moved);
    let refs: Vec<&Report> = reports.iter().collect();
    let end_of_time = u64::MAX;
    let plan = prunable(&refs, end_of_time);
    assert_eq!(plan.len(), moved.len(), "all sealed and verified: all prunable");
    let plan = &plan[..2];
    let session = AuditLog::open_session(f.dir.path(), f.node.clone(), &f.volume, &f.name_key, "audit prune").unwrap();
    for (_, p) in plan {
        session.append(Event::new(Op::Prune).by_self().pruned(p.clone())).unwrap();
    }
    session.close().unwrap();
    let without: Vec<PathBuf> =
        moved.iter().enumerate().filter(|(i, _)| plan.iter().all(|(j, _)| j != i)).map(|(_, p)| p.clone()).collect();
    let mut kept = without.clone();
    kept.extend(files(f.dir.path()));
    let reports = verify_all(&f, &kept);
    assert_eq!(problems(&reports), [], "{reports:#?}");
    // Without that session log, the same files read as removed.
    assert_eq!(problems(&verify_all(&f, &without)), [Diagnosis::Removed]);
    // Nothing newer than `before` is prunable, nor a log with a problem.
    assert!(prunable(&refs, 0).is_empty());
}

#[test]
fn an_old_segment_rotates_without_waiting_for_a_record_and_the_log_verifies() {
    let f = fixture();
    let mut config = AuditConfig::new(f.dir.path());
    config.segment_age = std::time::Duration::from_millis(100);
    let start = Start {
        identity: f.node.clone(),
        volume: &f.volume,
        name_key: &f.name_key,
        op: Op::Mount,
        options: String::new(),
    };
    let log = AuditLog::open(config, start).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(files(f.dir.path()).len(), 1, "an empty segment does not rotate");
    // A record after the age: rotated as it is appended.
    log.append(Event::new(Op::Open).by(1, 1, 1).path("f").intent("r")).unwrap();
    assert_eq!(files(f.dir.path()).len(), 2);
    // A record before the age, then none: the background thread rotates.
    log.append(Event::new(Op::Open).by(1, 1, 1).path("g").intent("r")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while files(f.dir.path()).len() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    log.close().unwrap();
    let segs = files(f.dir.path());
    assert_eq!(segs.len(), 3, "rotated by age with no record coming");
    assert_eq!(problems(&verify_all(&f, &segs)), []);
}
