//! Every record the writer can produce reads back: paths of PATH_MAX and
//! far deeper, 255-byte names, the largest setattr, xattr and recipient
//! records, written by the real writer, verified, and unsealed again
//! (issue 13: a sealed path past 4 KiB made an untouched log "changed").

use std::sync::Arc;

use rand_core::OsRng;
use tresor_audit::query::read_log;
use tresor_audit::record::{SetAttr, ELIDED, MAX_RECIPIENTS, MAX_SEALED_PLAIN, MAX_TEXT};
use tresor_audit::seal::PathSealer;
use tresor_audit::writer::Start;
use tresor_audit::{verify, AuditConfig, AuditLog, Event, Op};
use tresor_format::{Identity, Volume, VolumeParams};

/// A path of `len` bytes made of 255-byte names (NAME_MAX) and slashes.
fn deep_path(len: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(len);
    let mut i = 0u8;
    while p.len() < len {
        if !p.is_empty() {
            p.push(b'/');
        }
        let name = vec![b'a' + i % 26; 255.min(len - p.len())];
        p.extend_from_slice(&name);
        i = i.wrapping_add(1);
    }
    p.truncate(len);
    p
}

#[test]
fn records_at_the_formats_limits_are_written_verified_and_read_back() {
    let node = Arc::new(Identity::from_seed(&[2; 32], "node").unwrap());
    let (volume, name_key) = Volume::create(&node, VolumeParams::default(), &mut OsRng).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let start = Start {
        identity: node.clone(),
        volume: &volume,
        name_key: &name_key,
        op: Op::Mount,
        options: "x".repeat(300_000),
    };
    let log = AuditLog::open(AuditConfig::new(tmp.path()), start).unwrap();

    let name_max = vec![b'n'; 255];
    let path_max = deep_path(4095); // PATH_MAX less its NUL
    let deeper = deep_path(40_000); // through the mount a tree goes deeper than PATH_MAX
    let at_limit = deep_path(MAX_SEALED_PLAIN);
    let beyond = deep_path(MAX_SEALED_PLAIN * 3);
    let xattr_max = [b"user.".as_slice(), &[b'x'; 250]].concat(); // XATTR_NAME_MAX = 255
    let biggest_attr = SetAttr {
        mode: Some(u32::MAX),
        uid: Some(u32::MAX),
        gid: Some(u32::MAX),
        size: Some(u64::MAX),
        atime: Some(i64::MIN),
        mtime: Some(i64::MAX),
    };
    let everyone: Vec<[u8; 16]> = (0..MAX_RECIPIENTS as u32)
        .map(|i| [i.to_be_bytes(), [0xff; 4], [1; 4], [2; 4]].concat().try_into().unwrap())
        .collect();
    let events = vec![
        Event::new(Op::Open).path(name_max.clone()).intent("rw+t"),
        Event::new(Op::Open).path(path_max.clone()).intent("r"),
        Event::new(Op::Rename).path(path_max.clone()).new_path(deeper.clone()),
        Event::new(Op::Setattr).path(path_max.clone()).setattr(biggest_attr.clone()),
        Event::new(Op::Setxattr).path(deeper.clone()).xattr(xattr_max.clone()),
        Event::new(Op::Create).path(deeper.clone()).recipients(everyone.clone()).intent("w+c"),
        Event::new(Op::Rename).path(at_limit.clone()).new_path(at_limit.clone()).xattr(at_limit.clone()),
        Event::new(Op::Link).path(beyond.clone()).new_path(beyond.clone()).xattr(beyond.clone()),
    ];
    for e in events {
        log.append(e.by(u32::MAX, u32::MAX, u32::MAX).result(i32::MIN).offset(u64::MAX).bytes(u64::MAX, u64::MAX))
            .unwrap();
    }
    log.close().unwrap();

    let bytes = std::fs::read(log.path()).unwrap();
    let report = verify(&bytes, &volume, &[]);
    assert!(report.ok() && report.closed && report.warnings.is_empty(), "{report:?}");
    let sealer = PathSealer::new(&name_key, &volume.id);
    let entries = read_log(&bytes, Some(&sealer), 0).unwrap();
    assert_eq!(entries.len(), report.records, "every record reads back");
    let ops: Vec<_> = entries.iter().map(|e| e.record.op).filter(|op| *op != Op::Checkpoint).collect();
    assert_eq!(
        ops,
        [
            Op::Mount,
            Op::Open,
            Op::Open,
            Op::Rename,
            Op::Setattr,
            Op::Setxattr,
            Op::Create,
            Op::Rename,
            Op::Link,
            Op::Unmount
        ]
    );
    let mount = &entries[0].record;
    assert_eq!(mount.options.as_ref().unwrap().len(), MAX_TEXT, "an overlong command line is cut to the limit");
    assert!(mount.options.as_ref().unwrap().as_bytes().ends_with(ELIDED));
    let by_op = |op, n| entries.iter().filter(|e| e.record.op == op).nth(n).unwrap();
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
    assert_eq!(by_op(Op::Open, 0).path(), Some(text(&name_max).as_str()));
    assert_eq!(by_op(Op::Open, 1).path(), Some(text(&path_max).as_str()));
    assert_eq!(by_op(Op::Rename, 0).new_path(), Some(text(&deeper).as_str()));
    assert_eq!(by_op(Op::Setattr, 0).record.setattr, Some(biggest_attr));
    assert_eq!(by_op(Op::Setxattr, 0).xattr.clone().unwrap().unwrap(), text(&xattr_max));
    assert_eq!(by_op(Op::Create, 0).record.recipients.as_deref(), Some(&everyone[..]));
    assert_eq!(by_op(Op::Rename, 1).path(), Some(text(&at_limit).as_str()), "at the limit: whole");
    // Beyond the limit: the head and the tail, with the marker between.
    let kept = by_op(Op::Link, 0).path().unwrap().as_bytes().to_vec();
    assert!(kept.len() <= MAX_SEALED_PLAIN);
    let half = (MAX_SEALED_PLAIN - ELIDED.len()) / 2;
    assert_eq!(&kept[..half], &beyond[..half]);
    assert_eq!(&kept[half..half + ELIDED.len()], ELIDED);
    assert_eq!(&kept[half + ELIDED.len()..], &beyond[beyond.len() - half..]);
}
