//! The tamper matrix: each way of changing a log after the fact is found by
//! `verify`, with the right diagnosis and the first bad record.

use std::path::Path;
use std::sync::Arc;

use rand_core::OsRng;
use tresor_audit::chain;
use tresor_audit::frame;
use tresor_audit::verify::{parse_anchors, Diagnosis, Report};
use tresor_audit::writer::Start;
use tresor_audit::{verify, AuditConfig, AuditLog, Event, Op, Record};
use tresor_format::{Identity, NameKey, Role, Volume, VolumeParams};

struct Fixture {
    volume: Volume,
    name_key: NameKey,
    node: Arc<Identity>,
    dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let steward = Identity::from_seed(&[1; 32], "steward").unwrap();
    let node = Identity::from_seed(&[2; 32], "node").unwrap();
    let (mut volume, name_key) = Volume::create(&steward, VolumeParams::default(), &mut OsRng).unwrap();
    volume.add_member(&name_key, node.public(), "node", Role::Member, &mut OsRng).unwrap();
    volume.sign(&steward).unwrap();
    Fixture { volume, name_key, node: Arc::new(node), dir: tempfile::tempdir().unwrap() }
}

/// A closed log of a mount record, checkpoint, `n` opens, unmount and the
/// final checkpoint; checkpoints every `every` records.
fn write_log(f: &Fixture, identity: Arc<Identity>, n: u32, every: u64, anchor_cmd: Option<&Path>) -> Vec<u8> {
    let mut config = AuditConfig::new(f.dir.path());
    config.checkpoint_every = every;
    config.anchor_cmd = anchor_cmd.map(Path::to_owned);
    let start = Start { identity, volume: &f.volume, name_key: &f.name_key, op: Op::Mount, options: "rw".into() };
    let log = AuditLog::open(config, start).unwrap();
    for i in 0..n {
        log.append(Event::new(Op::Open).by(1000, 1000, std::process::id()).path(format!("secret/file{i}")).intent("r"))
            .unwrap();
    }
    log.close().unwrap();
    std::fs::read(log.path()).unwrap()
}

fn records(file: &[u8]) -> Vec<Vec<u8>> {
    frame::split(file).unwrap().frames.iter().map(|f| f.bytes.to_vec()).collect()
}

fn assemble(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = frame::file_header().to_vec();
    for r in records {
        frame::put(&mut out, r);
    }
    out
}

fn problem(report: &Report) -> (Diagnosis, usize, Option<u64>) {
    let p = report.problem.as_ref().unwrap_or_else(|| panic!("tampering not found: {report:?}"));
    (p.diagnosis, p.index, p.seq)
}

#[test]
fn an_untouched_log_verifies_and_holds_no_plaintext_path() {
    let f = fixture();
    let log = write_log(&f, f.node.clone(), 10, 4, None);
    let report = verify(&log, &f.volume, &[]);
    assert!(report.ok(), "{report:?}");
    assert!(report.closed && report.warnings.is_empty(), "{report:?}");
    // mount, checkpoint, 10 opens with checkpoints after every 4 records, unmount, checkpoint
    assert_eq!(report.records, 16);
    assert_eq!(report.verified_up_to, Some(15));
    assert!(!log.windows(6).any(|w| w == b"secret"), "paths are sealed");
}

#[test]
fn a_changed_byte_is_found_at_its_record() {
    let f = fixture();
    let mut recs = records(&write_log(&f, f.node.clone(), 10, 100, None));
    let at = recs[5].windows(4).position(|w| w == b"open").unwrap();
    recs[5][at + 3] = b'm'; // "open" -> "opem": still CBOR, no longer an op
    let (d, i, seq) = problem(&verify(&assemble(&recs), &f.volume, &[]));
    assert_eq!((d, i, seq), (Diagnosis::Changed, 5, None));

    let mut recs = records(&write_log(&f, f.node.clone(), 10, 100, None));
    let host = Record::from_bytes(&recs[5]).unwrap().host;
    let at = recs[5].windows(host.len()).position(|w| w == host.as_bytes()).unwrap();
    recs[5][at] ^= 0x01; // a valid record, but not the one the chain holds
    let (d, i, seq) = problem(&verify(&assemble(&recs), &f.volume, &[]));
    assert_eq!((d, i, seq), (Diagnosis::Changed, 5, Some(5)));
}

#[test]
fn a_deleted_record_is_a_gap_in_the_sequence() {
    let f = fixture();
    let mut recs = records(&write_log(&f, f.node.clone(), 10, 100, None));
    recs.remove(5);
    let report = verify(&assemble(&recs), &f.volume, &[]);
    assert_eq!(problem(&report), (Diagnosis::Removed, 5, Some(6)));
    assert!(report.problem.unwrap().detail.contains("seq 5 missing"));
}

#[test]
fn an_inserted_record_is_named_even_with_a_valid_link() {
    let f = fixture();
    let mut recs = records(&write_log(&f, f.node.clone(), 10, 100, None));
    // A forger without the key copies record 5's link and seq and adds a
    // record of their own in front of it.
    let mut forged = Record::from_bytes(&recs[5]).unwrap();
    forged.process = "forger".into();
    recs.insert(5, forged.to_bytes());
    let (d, i, seq) = problem(&verify(&assemble(&recs), &f.volume, &[]));
    assert_eq!((d, i, seq), (Diagnosis::Inserted, 5, Some(5)));
}

#[test]
fn two_swapped_records_are_reordered() {
    let f = fixture();
    let mut recs = records(&write_log(&f, f.node.clone(), 10, 100, None));
    recs.swap(5, 6);
    let (d, i, seq) = problem(&verify(&assemble(&recs), &f.volume, &[]));
    assert_eq!((d, i, seq), (Diagnosis::Reordered, 5, Some(6)));
}

#[test]
fn a_cut_tail_is_found_against_an_anchor_and_only_warned_about_without() {
    let f = fixture();
    let anchors = f.dir.path().join("anchors");
    let script = f.dir.path().join("anchor.sh");
    std::fs::write(&script, format!("#!/bin/sh\ncat >> {}\n", anchors.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let log = write_log(&f, f.node.clone(), 10, 4, Some(&script));
    let anchors = parse_anchors(&std::fs::read_to_string(&anchors).unwrap()).unwrap();
    assert_eq!(anchors.iter().map(|a| a.seq).collect::<Vec<_>>(), [1, 6, 11, 15], "one line per checkpoint");
    assert!(verify(&log, &f.volume, &anchors).ok());
    assert_eq!(verify(&log, &f.volume, &anchors).anchors_matched, 4);

    // Cut right after the checkpoint at seq 11: a consistent, signed log.
    let recs = records(&log);
    let cut = assemble(&recs[..12]);
    let alone = verify(&cut, &f.volume, &[]);
    assert!(alone.ok(), "without an anchor the cut cannot be proven");
    assert!(alone.warnings.iter().any(|w| w.contains("no unmount record")), "{alone:?}");
    let (d, i, seq) = problem(&verify(&cut, &f.volume, &anchors));
    assert_eq!((d, i, seq), (Diagnosis::CutOff, 12, Some(12)));
}

#[test]
fn a_log_rewritten_without_the_mount_key_is_found() {
    let f = fixture();
    // 1. Records edited and every later link recomputed: the next
    //    checkpoint's signature no longer verifies.
    let mut recs = records(&write_log(&f, f.node.clone(), 10, 4, None));
    let mut prev = Record::from_bytes(&recs[2]).unwrap().prev;
    for (i, bytes) in recs.iter_mut().enumerate().skip(2) {
        let mut r = Record::from_bytes(bytes).unwrap();
        if i == 3 {
            r.uid = 0;
        }
        r.prev = prev;
        *bytes = r.to_bytes();
        prev = chain::next(&prev, bytes);
    }
    let (d, i, seq) = problem(&verify(&assemble(&recs), &f.volume, &[]));
    assert_eq!((d, i, seq), (Diagnosis::Rewritten, 6, Some(6)), "the checkpoint after the edit");

    // 2. A whole log written with a key that is not a member's.
    let outsider = Arc::new(Identity::from_seed(&[9; 32], "outsider").unwrap());
    let forged = write_log(&f, outsider, 10, 4, None);
    let (d, i, seq) = problem(&verify(&forged, &f.volume, &[]));
    assert_eq!((d, i, seq), (Diagnosis::Rewritten, 0, Some(0)));

    // 3. The same, claiming to be the member: the key is not theirs.
    let mut recs = records(&forged);
    let mut prev = chain::GENESIS;
    for bytes in recs.iter_mut() {
        let mut r = Record::from_bytes(bytes).unwrap();
        r.member = f.node.id().0;
        r.prev = prev;
        *bytes = r.to_bytes();
        prev = chain::next(&prev, bytes);
    }
    let report = verify(&assemble(&recs), &f.volume, &[]);
    assert_eq!(problem(&report), (Diagnosis::Rewritten, 0, Some(0)));
    assert!(report.problem.unwrap().detail.contains("not member"));
}

#[test]
fn a_torn_last_record_leaves_everything_before_it_verified() {
    let f = fixture();
    let log = write_log(&f, f.node.clone(), 10, 4, None);
    let recs = records(&log);
    // A daemon killed in the middle of writing record 9 (after the
    // checkpoint at seq 6).
    let mut torn = assemble(&recs[..9]);
    let whole = torn.len();
    torn.extend_from_slice(&(recs[9].len() as u32).to_be_bytes());
    torn.extend_from_slice(&recs[9][..recs[9].len() / 2]);
    let report = verify(&torn, &f.volume, &[]);
    assert!(report.ok(), "{report:?}");
    assert_eq!((report.verified_up_to, report.last_seq), (Some(6), Some(8)));
    assert!(report.warnings.iter().any(|w| w.contains(&format!("incomplete last record at offset {whole}"))));
    assert!(report.warnings.iter().any(|w| w.contains("unsigned tail of 2 records")), "{:?}", report.warnings);
}

#[test]
fn arbitrary_bytes_never_panic_the_verifier() {
    let f = fixture();
    let log = write_log(&f, f.node.clone(), 3, 100, None);
    let mut x = 0x2545F4914F6CDD1Du64;
    for _ in 0..600 {
        let mut m = log.clone();
        for _ in 0..1 + (x % 4) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = frame::FILE_HEADER_LEN + (x as usize % (m.len() - frame::FILE_HEADER_LEN));
            m[at] = (x >> 32) as u8;
        }
        let cut = frame::FILE_HEADER_LEN + (x as usize >> 3) % (m.len() - frame::FILE_HEADER_LEN + 1);
        let report = verify(&m[..cut], &f.volume, &[]);
        // What verifies as signed is exactly what was written.
        if let (true, Some(v)) = (report.ok(), report.verified_up_to) {
            let frames = frame::split(&m[..cut]).unwrap().frames;
            let end = frames[v as usize].offset + 4 + frames[v as usize].bytes.len();
            assert_eq!(m[..end], log[..end], "a change went unnoticed: {report:?}");
        }
    }
}
