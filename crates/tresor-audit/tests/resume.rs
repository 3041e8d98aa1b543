//! Verifying years of logs every day: a run resumes where the last one
//! left off (its last verified checkpoint), reads only what was added, and
//! still finds a change to the new records or a log cut shorter.

use std::io::Cursor;
use std::sync::Arc;

use rand_core::OsRng;
use tresor_audit::verify::{verify_from, verify_reader, Diagnosis};
use tresor_audit::writer::Start;
use tresor_audit::{AuditConfig, AuditLog, Event, Op};
use tresor_format::{Identity, Volume, VolumeParams};

#[test]
fn a_verify_resumes_at_its_last_checkpoint_and_checks_only_what_came_after() {
    let node = Arc::new(Identity::from_seed(&[2; 32], "node").unwrap());
    let (volume, name_key) = Volume::create(&node, VolumeParams::default(), &mut OsRng).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let start =
        Start { identity: node.clone(), volume: &volume, name_key: &name_key, op: Op::Mount, options: String::new() };
    let log = AuditLog::open(AuditConfig::new(tmp.path()), start).unwrap();
    let open = |i: u32| Event::new(Op::Open).by(1, 1, 1).path(format!("f{i}")).intent("r");
    for i in 0..10 {
        log.append(open(i)).unwrap();
    }
    log.checkpoint().unwrap();
    let first = verify_reader(std::fs::File::open(log.path()).unwrap(), &volume, &[]);
    assert!(first.ok(), "{first:?}");
    let resume = first.resume.clone().expect("a checkpoint was verified");
    assert_eq!(resume.seq, 12, "mount, checkpoint, 10 opens, checkpoint");

    for i in 10..15 {
        log.append(open(i)).unwrap();
    }
    log.close().unwrap();
    let bytes = std::fs::read(log.path()).unwrap();
    let again = verify_from(Cursor::new(&bytes), &volume, &[], &resume);
    assert!(again.ok() && again.closed, "{again:?}");
    assert_eq!(again.records, 5 + 2, "only the new records: 5 opens, unmount, checkpoint");
    let next = again.resume.clone().unwrap();
    assert_eq!((next.seq, next.offset), (19, bytes.len()));
    // Nothing new: nothing to read, still verified and closed.
    let idle = verify_from(Cursor::new(&bytes), &volume, &[], &next);
    assert!(idle.ok() && idle.closed && idle.records == 0, "{idle:?}");

    // A change after the resume point is found...
    let mut changed = bytes.clone();
    let n = changed.len();
    changed[n - 150] ^= 1;
    let bad = verify_from(Cursor::new(&changed), &volume, &[], &resume);
    assert!(bad.problem.is_some(), "{bad:?}");
    // ...and so is a log cut before where the last run got to.
    let cut = verify_from(Cursor::new(&bytes[..resume.offset - 1]), &volume, &[], &resume);
    assert_eq!(cut.problem.map(|p| p.diagnosis), Some(Diagnosis::CutOff));
    // A resume point from another log does not link.
    let other = tresor_audit::verify::Resume { hash: [9; 32], ..resume.clone() };
    assert!(verify_from(Cursor::new(&bytes), &volume, &[], &other).problem.is_some());
}
