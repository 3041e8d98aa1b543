//! The writer when its file system is full: fail closed by default, carry
//! on if the operator chose so; either way the file holds whole records
//! that verify. (Mounts a 64 KiB tmpfs: needs root.)

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use rand_core::OsRng;
use tresor_audit::writer::{AuditError, Start};
use tresor_audit::{verify, AuditConfig, AuditLog, Event, OnError, Op};
use tresor_format::{Identity, Volume, VolumeParams};

struct Tmpfs<'a>(&'a Path);

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

fn fill(dir: &Path) -> std::path::PathBuf {
    let filler = dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    while std::io::Write::write_all(&mut f, &[0u8; 1024]).is_ok() {}
    filler
}

#[test]
fn a_full_disk_fails_the_log_closed_unless_the_operator_chose_to_continue() {
    let node = Arc::new(Identity::from_seed(&[2; 32], "node").unwrap());
    let (volume, name_key) = Volume::create(&node, VolumeParams::default(), &mut OsRng).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for on_error in [OnError::FailClosed, OnError::Continue] {
        let small = tmp.path().join(format!("{on_error:?}"));
        std::fs::create_dir(&small).unwrap();
        let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"]).arg(&small).status();
        assert!(mounted.unwrap().success(), "mounting a tmpfs needs root");
        let _guard = Tmpfs(&small);
        let mut config = AuditConfig::new(&small);
        config.on_error = on_error;
        let start = Start {
            identity: node.clone(),
            volume: &volume,
            name_key: &name_key,
            op: Op::Mount,
            options: String::new(),
        };
        let log = AuditLog::open(config, start).unwrap();
        let filler = fill(&small);
        let open = || Event::new(Op::Open).by(1, 1, 1).path("some/file").intent("r");
        let results: Vec<_> = (0..200).map(|_| log.append(open())).collect();
        match on_error {
            OnError::FailClosed => {
                let first = results.iter().position(Result::is_err).expect("the full disk is noticed");
                assert!(results[first..].iter().all(|r| matches!(r, Err(AuditError::Failed { .. }))));
                std::fs::remove_file(&filler).unwrap();
                assert!(log.check().is_err() && log.append(open()).is_err(), "closed until reopened");
            }
            OnError::Continue => {
                assert!(results.iter().all(Result::is_ok), "carries on, losing records");
                std::fs::remove_file(&filler).unwrap();
                log.append(open()).unwrap();
            }
        }
        let _ = log.close();
        let bytes = std::fs::read(log.path()).unwrap();
        let report = verify(&bytes, &volume, &[]);
        assert!(report.ok(), "{on_error:?}: {report:?}");
        assert!(report.warnings.iter().all(|w| !w.contains("incomplete")), "cut back to whole records");
        assert_eq!(report.closed, on_error == OnError::Continue, "{report:?}");
    }
}

#[test]
fn a_log_gets_a_timed_checkpoint_once_records_were_added() {
    let node = Arc::new(Identity::from_seed(&[2; 32], "node").unwrap());
    let (volume, name_key) = Volume::create(&node, VolumeParams::default(), &mut OsRng).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut config = AuditConfig::new(tmp.path());
    config.checkpoint_interval = std::time::Duration::from_millis(100);
    config.sync = tresor_audit::SyncMode::Every(std::time::Duration::from_millis(20));
    let start =
        Start { identity: node.clone(), volume: &volume, name_key: &name_key, op: Op::Mount, options: String::new() };
    let log = AuditLog::open(config, start).unwrap();
    log.append(Event::new(Op::Open).by(1, 1, 1).path("f").intent("r")).unwrap();
    // Polled, not timed: the checkpoint comes once the interval has passed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let report = loop {
        let report = verify(&std::fs::read(log.path()).unwrap(), &volume, &[]);
        if report.verified_up_to == Some(3) || std::time::Instant::now() > deadline {
            break report;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!((report.records, report.verified_up_to), (4, Some(3)), "mount, checkpoint, open, checkpoint");
    // Nothing new, no new checkpoint.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(verify(&std::fs::read(log.path()).unwrap(), &volume, &[]).records, 4);
}
