//! The storage operator plants a symlink or a FIFO where the audit log
//! directory should be (issue 10, class 4): the log does not start (so
//! neither does the mount), and nothing is written where the symlink
//! points. Acts on the backing directory with the shared toolkit.

use std::path::Path;
use std::sync::Arc;

use rand_core::OsRng;
use tresor_audit::writer::{AuditError, Start};
use tresor_audit::{AuditConfig, AuditLog, Op, DEFAULT_DIR};
use tresor_format::{Identity, NameKey, Volume, VolumeParams};

fn open(dir: &Path, volume: &Volume, name_key: &NameKey, node: &Arc<Identity>) -> Result<AuditLog, AuditError> {
    let start = Start { identity: node.clone(), volume, name_key, op: Op::Mount, options: String::new() };
    AuditLog::open(AuditConfig::new(dir), start)
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn a_symlink_or_fifo_planted_as_the_log_directory_stops_the_log_and_writes_nothing_elsewhere() {
    let node = Arc::new(Identity::from_seed(&[2; 32], "node").unwrap());
    let (volume, name_key) = Volume::create(&node, VolumeParams::default(), &mut OsRng).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let backing = tmp.path().join("backing");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&backing).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    let in_volume = backing.join(DEFAULT_DIR);

    tresor_tamper::plant_symlink(&in_volume, &elsewhere);
    let e = open(&in_volume, &volume, &name_key, &node).unwrap_err();
    assert!(matches!(e, AuditError::Planted { .. }) && e.to_string().contains("symlink"), "{e}");
    assert_eq!(entries(&elsewhere), 0, "no log where the symlink points");

    tresor_tamper::plant_fifo(&in_volume);
    let e = open(&in_volume, &volume, &name_key, &node).unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");

    // The default place, made by the log itself, works.
    tresor_tamper::remove(&in_volume);
    let log = open(&in_volume, &volume, &name_key, &node).unwrap();
    log.close().unwrap();
    assert_eq!(entries(&in_volume), 1);

    // A directory configured elsewhere: its last component is no symlink either.
    let configured = tmp.path().join("logs");
    tresor_tamper::plant_symlink(&configured, &elsewhere);
    let e = open(&configured, &volume, &name_key, &node).unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    assert_eq!(entries(&elsewhere), 0);
    let made = tmp.path().join("new/logs");
    open(&made, &volume, &name_key, &node).unwrap().close().unwrap();
    assert_eq!(entries(&made), 1, "made with its parents when missing");
}
