//! Verifying a log: framing, the sequence, the hash chain, the checkpoint
//! signatures against the volume's registry, and anchors; on failure, the
//! first bad record and what happened to it. See `docs/AUDIT.md`, "Verify".

use ed25519_dalek::VerifyingKey;
use tresor_format::{MemberId, Volume};

use crate::chain::{self, hex, unhex};
pub use crate::checkpoints::MerkleHead;
use crate::checkpoints::{check_root, merkle_fields};
use crate::merkle::Frontier;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};

use crate::frame::{End, FrameReader};
use crate::record::{Op, Pruned, Record};

/// What is wrong with a log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diagnosis {
    /// A record's bytes differ from what the chain says (link broken,
    /// sequence continuous), or a record does not parse.
    Changed,
    /// Records are missing: a gap in the sequence.
    Removed,
    /// A record is there that the writer did not write: a repeated or
    /// foreign sequence number, or a record the next one skips over.
    Inserted,
    /// Records are out of order.
    Reordered,
    /// The log ends before a checkpoint that an anchor records.
    CutOff,
    /// The log (or part of it) was written by someone without the mount's
    /// key: a checkpoint signature does not verify, the mount key is not
    /// the member's, or the member is not in the registry.
    Rewritten,
    /// Not an audit log, or a version this build does not read.
    NotALog,
}

impl Diagnosis {
    pub fn as_str(self) -> &'static str {
        match self {
            Diagnosis::Changed => "changed",
            Diagnosis::Removed => "removed",
            Diagnosis::Inserted => "inserted",
            Diagnosis::Reordered => "reordered",
            Diagnosis::CutOff => "cut-off",
            Diagnosis::Rewritten => "rewritten",
            Diagnosis::NotALog => "not-a-log",
        }
    }
}

/// The first bad record: its position (0-based index among the records,
/// byte offset of its frame), the sequence number it carries (if it
/// parses) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub diagnosis: Diagnosis,
    pub index: usize,
    pub offset: usize,
    pub seq: Option<u64>,
    pub detail: String,
}

/// An external record of a checkpoint: `<mount-id-hex> <seq> <hash-hex>`,
/// the hash being the chain hash up to and including the checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    pub mount_id: [u8; 16],
    pub seq: u64,
    pub hash: [u8; 32],
}

impl Anchor {
    pub fn line(&self) -> String {
        format!("{} {} {}", hex(&self.mount_id), self.seq, hex(&self.hash))
    }
}

/// Parses anchor lines. Each line's last three words count, so syslog
/// lines (`... tresor-audit checkpoint MID SEQ HASH`) work as they are;
/// blank lines and `#` comments are skipped.
pub fn parse_anchors(text: &str) -> Result<Vec<Anchor>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("anchor line {}: expected `<mount-id> <seq> <hash>` in hex, got {line:?}", n + 1);
        if words.len() < 3 {
            return Err(bad());
        }
        let w = &words[words.len() - 3..];
        out.push(Anchor {
            mount_id: unhex(w[0]).ok_or_else(bad)?,
            seq: w[1].parse().map_err(|_| bad())?,
            hash: unhex(w[2]).ok_or_else(bad)?,
        });
    }
    Ok(out)
}

/// The outcome of verifying one log file (a whole log, or one segment).
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub mount_id: Option<[u8; 16]>,
    pub host: Option<String>,
    pub member: Option<MemberId>,
    /// Whole records read (up to the first bad one, if any).
    pub records: usize,
    /// Checkpoints whose signature verified.
    pub checkpoints: usize,
    /// The sequence number of the last checkpoint whose signature verified
    /// and whose chain leads to it unbroken: every record up to it is
    /// proven as written.
    pub verified_up_to: Option<u64>,
    /// The first sequence number in the file: 0, or a later segment's start.
    pub first_seq: Option<u64>,
    /// A later segment: the chain hash its first record continues from
    /// (the final hash of the segment before).
    pub continues: Option<[u8; 32]>,
    /// The last sequence number that links correctly (signed or not).
    pub last_seq: Option<u64>,
    /// The chain hash after the last record that links correctly.
    pub final_hash: Option<[u8; 32]>,
    /// Ended with an unmount (or session-end) record and its checkpoint.
    pub closed: bool,
    /// Ended with a segment-end record and its checkpoint: the log goes on
    /// in its next segment.
    pub rotated: bool,
    /// Anchors that matched a checkpoint of this log.
    pub anchors_matched: usize,
    /// The time of the file's first record (unix ns; not set when resumed).
    pub first_time_ns: Option<u64>,
    /// The time of the last record that links correctly (unix ns).
    pub last_time_ns: Option<u64>,
    /// The last checkpoint verified: where a later run can resume.
    pub resume: Option<Resume>,
    /// Segments this log says `tresor audit prune` removed (verified
    /// records only).
    pub prunes: Vec<(u64, Pruned)>,
    /// The file's format version (2: Merkle checkpoints).
    pub version: u16,
    /// Version 2: the Merkle tree's right edge where the file starts (a
    /// later segment's `range`) and after its last linked record, so that
    /// segments are linked on the tree too.
    pub tree_start: Option<Frontier>,
    pub tree_end: Option<Frontier>,
    /// The last Merkle checkpoint verified (version 2): the note anyone
    /// can check with the mount's key.
    pub merkle: Option<MerkleHead>,
    pub problem: Option<Problem>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }

    /// Ends with a verified checkpoint: every record is signed, and no
    /// record can be added to it unnoticed.
    pub fn sealed(&self) -> bool {
        self.ok() && self.verified_up_to.is_some() && self.verified_up_to == self.last_seq
    }
}

/// A record as read for verifying: its frame and what it parsed to.
struct Parsed {
    offset: usize,
    bytes: Vec<u8>,
    record: Result<Record, String>,
}

impl Parsed {
    fn read<R: Read>(frames: &mut FrameReader<R>) -> Option<Parsed> {
        let (offset, bytes) = frames.next_frame()?;
        Some(Parsed { offset, bytes: bytes.to_vec(), record: Record::from_bytes(bytes) })
    }
    fn seq(&self) -> Option<u64> {
        self.record.as_ref().ok().map(|r| r.seq)
    }
    fn prev(&self) -> Option<[u8; 32]> {
        self.record.as_ref().ok().map(|r| r.prev)
    }
}

/// Verifies a log file held in memory; see [`verify_reader`].
pub fn verify(file: &[u8], registry: &Volume, anchors: &[Anchor]) -> Report {
    verify_reader(file, registry, anchors)
}

/// Verifies one log file (or one segment of a log) against the volume's
/// registry and any anchors, reading it once, front to back, holding one
/// record at a time: memory does not grow with the log.
pub fn verify_reader<R: Read>(file: R, registry: &Volume, anchors: &[Anchor]) -> Report {
    match FrameReader::new(file) {
        Ok(frames) => verify_frames(frames, registry, anchors, None),
        Err(e) => not_a_log(e),
    }
}

fn not_a_log(e: impl std::fmt::Display) -> Report {
    Report {
        problem: Some(Problem { diagnosis: Diagnosis::NotALog, index: 0, offset: 0, seq: None, detail: e.to_string() }),
        ..Report::default()
    }
}

/// Where a verify left off: the last checkpoint it verified in a log file
/// (its seq, the chain hash after it, the offset after its frame, and the
/// op before it), and whose log it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    pub mount_id: [u8; 16],
    pub member: MemberId,
    pub seq: u64,
    pub hash: [u8; 32],
    pub offset: usize,
    pub before: Option<Op>,
    /// What the file said before that point that verifying the rest (and
    /// linking segments) needs: its first seq, the hash a later segment
    /// continues from, and the verified prune records.
    pub first_seq: u64,
    pub continues: Option<[u8; 32]>,
    pub prunes: Vec<(u64, Pruned)>,
    /// Version 2: the Merkle tree's right edge after that checkpoint, and
    /// the last Merkle checkpoint verified.
    pub tree: Option<Frontier>,
    pub merkle: Option<MerkleHead>,
}

/// Verifies only what a log file gained since `from` (a previous run's
/// [`Report::resume`]): the records after that checkpoint must link to its
/// hash, and their checkpoints verify with the key of the member the log
/// belongs to. What was verified before is trusted as it was (a full
/// [`verify_reader`] reads everything again); a file now shorter than
/// `from.offset` was cut.
pub fn verify_from<R: Read + Seek>(mut file: R, registry: &Volume, anchors: &[Anchor], from: &Resume) -> Report {
    let len = match file.seek(SeekFrom::End(0)).and_then(|len| file.seek(SeekFrom::Start(0)).map(|_| len)) {
        Ok(len) => len,
        Err(e) => return not_a_log(e),
    };
    if len < from.offset as u64 {
        let detail = format!(
            "the log is {len} bytes, shorter than when it was verified up to seq {} ({} bytes): it was cut",
            from.seq, from.offset
        );
        return Report {
            problem: Some(Problem { diagnosis: Diagnosis::CutOff, index: 0, offset: len as usize, seq: None, detail }),
            ..Report::default()
        };
    }
    match FrameReader::new(file).and_then(|f| f.skip_to(from.offset)) {
        Ok(frames) => verify_frames(frames, registry, anchors, Some(from)),
        Err(e) => not_a_log(e),
    }
}

fn verify_frames<R: Read>(
    mut frames: FrameReader<R>,
    registry: &Volume,
    anchors: &[Anchor],
    from: Option<&Resume>,
) -> Report {
    let mut report = Report::default();
    let problem = |diagnosis, index: usize, offset: usize, seq: Option<u64>, detail: String| {
        Some(Problem { diagnosis, index, offset, seq, detail })
    };

    let mut h = chain::GENESIS;
    let mut key: Option<VerifyingKey> = None;
    let mut base = 0u64;
    // Anchors of this log, by seq: checked as their checkpoint goes by.
    let mut pending: BTreeMap<u64, [u8; 32]> = BTreeMap::new();
    let mut anchor_problem: Option<Problem> = None;
    // The record before: its offset, seq and link (for diagnoses).
    let mut before: Option<(usize, Option<u64>, Option<[u8; 32]>)> = None;
    let mut last_op = None;
    let mut before_last_op = None;
    let mut i = 0usize;
    report.version = frames.version();
    let mut tree = (report.version >= 2).then(Frontier::new);
    if let Some(rs) = from {
        tree = rs.tree.clone().filter(|_| report.version >= 2);
        report.merkle = rs.merkle.clone().filter(|_| report.version >= 2);
        key = signer(registry, &rs.member);
        if key.is_none() {
            report.problem = problem(
                Diagnosis::Rewritten,
                0,
                rs.offset,
                None,
                format!("member {}, whose log this is, is not in the volume's registry", rs.member),
            );
            return report;
        }
        (base, h) = (rs.seq + 1, rs.hash);
        report.mount_id = Some(rs.mount_id);
        report.member = Some(rs.member);
        (report.first_seq, report.continues, report.prunes) = (Some(rs.first_seq), rs.continues, rs.prunes.clone());
        (report.verified_up_to, report.last_seq, report.final_hash) = (Some(rs.seq), Some(rs.seq), Some(rs.hash));
        report.resume = Some(rs.clone());
        (before_last_op, last_op) = (rs.before, Some(Op::Checkpoint));
        for a in anchors.iter().filter(|a| a.mount_id == rs.mount_id && a.seq > rs.seq) {
            pending.insert(a.seq, a.hash);
        }
    }
    let resumed = from.is_some();
    while let Some((offset, bytes)) = frames.next_frame() {
        // Most records need only their links; the first record, checkpoints
        // and prune records are read whole (the same bytes are accepted).
        let parsed = Record::links_from_bytes(bytes).and_then(|r| {
            if i == 0 || matches!(r.op, Op::Checkpoint | Op::Prune) || r.op.starts_file() {
                Record::from_bytes(bytes)
            } else {
                Ok(r)
            }
        });
        let r = match parsed {
            Ok(r) => r,
            Err(e) => {
                report.problem = problem(Diagnosis::Changed, i, offset, None, format!("record {i} was changed: {e}"));
                return report;
            }
        };
        if i == 0 && r.op == Op::Segment && !resumed {
            (base, h) = (r.seq, r.prev);
        }
        if let Err(detail) = merkle_fields(&r, report.version, i == 0 && !resumed, &mut tree) {
            report.problem = problem(Diagnosis::Changed, i, offset, Some(r.seq), detail);
            return report;
        }
        let expected = base + i as u64;
        if r.seq != expected || r.prev != h {
            let current = Parsed { offset, bytes: bytes.to_vec(), record: Ok(r) };
            let next = Parsed::read(&mut frames);
            let mut later = |seq: u64| {
                let mut k = 0;
                while let Some((_, b)) = frames.next_frame() {
                    if Record::from_bytes(b).is_ok_and(|r| r.seq == seq) {
                        return Some(k);
                    }
                    k += 1;
                }
                None
            };
            report.problem = diagnose(i, base, &current, before, next.as_ref(), &h, &mut later);
            return report;
        }
        if i == 0 && !resumed {
            match check_start(&r, registry) {
                Ok((k, member)) => {
                    key = Some(k);
                    report.mount_id = Some(r.mount_id);
                    report.host = Some(r.host.clone());
                    report.member = Some(member);
                    if r.op == Op::Segment {
                        report.continues = Some(r.prev);
                    }
                    report.first_seq = Some(base);
                    report.first_time_ns = Some(r.time_ns);
                    for a in anchors.iter().filter(|a| a.mount_id == r.mount_id && a.seq >= base) {
                        pending.insert(a.seq, a.hash);
                    }
                }
                Err(detail) => {
                    report.problem = problem(Diagnosis::Rewritten, 0, offset, Some(r.seq), detail);
                    return report;
                }
            }
        } else if Some(r.mount_id) != report.mount_id || Some(MemberId(r.member)) != report.member {
            report.problem = problem(
                Diagnosis::Changed,
                i,
                offset,
                Some(r.seq),
                format!("record {i} (seq {}) names another mount or member than the log's mount record", r.seq),
            );
            return report;
        }
        if r.op == Op::Checkpoint {
            let unsigned = Record { sig: None, ..r.clone() }.to_bytes();
            let body = chain::checkpoint_body(&r.mount_id, r.seq, &h, &unsigned);
            let sig: Option<[u8; 64]> = r.sig.as_deref().and_then(|s| s.try_into().ok());
            let signed = r.chain.as_deref() == Some(&h[..])
                && sig.is_some_and(|s| {
                    tresor_format::audit::verify_checkpoint(key.as_ref().expect("set at 0"), &body, &s).is_ok()
                });
            if !signed {
                let since = report.verified_up_to.map(|s| s + 1).unwrap_or(base);
                report.problem = problem(
                    Diagnosis::Rewritten,
                    i,
                    offset,
                    Some(r.seq),
                    format!(
                        "the checkpoint at seq {} does not verify with the mount's key: records {since}..{} were \
                         rewritten by someone without it",
                        r.seq, r.seq
                    ),
                );
                return report;
            }
            if let Some(t) = &tree {
                match check_root(&r, t, key.as_ref().expect("set at 0")) {
                    Ok(head) => report.merkle = Some(head),
                    Err(detail) => {
                        report.problem = problem(Diagnosis::Rewritten, i, offset, Some(r.seq), detail);
                        return report;
                    }
                }
            }
            report.verified_up_to = Some(r.seq);
            report.checkpoints += 1;
        }
        h = chain::next(&h, bytes);
        if i == 0 && r.op == Op::Segment && !resumed {
            report.tree_start = tree.clone();
        }
        if let Some(t) = &mut tree {
            t.push(bytes);
        }
        if r.op == Op::Checkpoint {
            report.resume = Some(Resume {
                mount_id: r.mount_id,
                member: MemberId(r.member),
                seq: r.seq,
                hash: h,
                offset: offset + 4 + bytes.len(),
                before: last_op,
                first_seq: report.first_seq.unwrap_or(base),
                continues: report.continues,
                prunes: report.prunes.clone(),
                tree: tree.clone(),
                merkle: report.merkle.clone(),
            });
        }
        if let Some(anchored) = pending.remove(&r.seq) {
            if (r.op != Op::Checkpoint || anchored != h) && anchor_problem.is_none() {
                anchor_problem = problem(
                    Diagnosis::Rewritten,
                    i,
                    offset,
                    Some(r.seq),
                    format!("the checkpoint at seq {} does not match its anchor: the log was rewritten", r.seq),
                );
            } else if anchor_problem.is_none() {
                report.anchors_matched += 1;
            }
        }
        report.last_seq = Some(r.seq);
        report.last_time_ns = Some(r.time_ns);
        report.final_hash = Some(h);
        if let (Op::Prune, Some(p)) = (r.op, &r.prune) {
            report.prunes.push((r.seq, p.clone()));
        }
        before = Some((offset, Some(r.seq), Some(r.prev)));
        (before_last_op, last_op) = (last_op, Some(r.op));
        i += 1;
    }
    report.records = i;
    report.tree_end = tree;

    match frames.end() {
        End::BadLength(offset, len) => {
            report.problem = problem(
                Diagnosis::Changed,
                i,
                *offset,
                None,
                format!("the record at offset {offset} has an impossible length ({len} bytes): the file was changed"),
            );
            return report;
        }
        End::Io(e) => {
            report.problem =
                problem(Diagnosis::CutOff, i, frames.offset(), None, format!("the log could not be read on: {e}"));
            return report;
        }
        _ => {}
    }
    if i == 0 && !resumed {
        report.problem = problem(
            Diagnosis::CutOff,
            0,
            frames.offset(),
            None,
            "the log holds no records: its mount record is missing".into(),
        );
        return report;
    }
    if let Some(p) = anchor_problem {
        report.problem = Some(p);
        return report;
    }
    // A segment sealed by rotation: anchors past its end belong to the
    // segments after it (linking them checks those exist).
    let rotated = last_op == Some(Op::Checkpoint) && before_last_op == Some(Op::SegmentEnd);
    if let Some((&seq, _)) = pending.iter().next_back().filter(|_| !rotated) {
        let torn_at = match frames.end() {
            End::Torn(o, _) => *o,
            _ => frames.offset(),
        };
        report.problem = problem(
            Diagnosis::CutOff,
            i,
            torn_at,
            report.last_seq.map(|s| s + 1),
            format!(
                "the log ends at seq {} but an anchor records a checkpoint at seq {seq}: records were cut off",
                report.last_seq.unwrap_or(0),
            ),
        );
        return report;
    }
    if let End::Torn(offset, len) = frames.end() {
        report.warnings.push(format!(
            "incomplete last record at offset {offset} ({len} bytes): the writer stopped in the middle of it"
        ));
    }
    let last_seq = report.last_seq.expect("a record linked");
    let unsigned = last_seq + 1 - report.verified_up_to.map_or(base, |s| s + 1);
    let ends_with_checkpoint = last_op == Some(Op::Checkpoint);
    if !ends_with_checkpoint {
        report.warnings.push(format!(
            "unsigned tail of {unsigned} records (no checkpoint covers them; daemon killed?): verified up to seq {}",
            report.verified_up_to.map(|s| s.to_string()).unwrap_or_else(|| "-".into())
        ));
    }
    report.closed = ends_with_checkpoint && before_last_op.is_some_and(Op::ends_log);
    report.rotated = ends_with_checkpoint && before_last_op == Some(Op::SegmentEnd);
    if !report.closed && !report.rotated && ends_with_checkpoint {
        report.warnings.push(format!(
            "no unmount record: the mount is still running, was killed, or the log was cut after its checkpoint at \
             seq {last_seq} (an anchor tells which)"
        ));
    }
    report
}

/// The mount (or session) record: for this volume, by a registry member
/// whose signing key it names. Returns that key and the member.
fn check_start(r: &Record, registry: &Volume) -> Result<(VerifyingKey, MemberId), String> {
    if !r.op.starts_file() {
        return Err(format!("the first record is `{}`, not `mount`: the log's start was replaced", r.op.as_str()));
    }
    if r.volume.as_deref() != Some(&registry.id[..]) {
        return Err("the mount record names another volume: this log is not from this volume".into());
    }
    let member = MemberId(r.member);
    let key = signer(registry, &member).ok_or_else(|| {
        format!("the mount record names member {member}, who is not in the volume's registry: the log was not written by a member")
    })?;
    if r.key.as_deref() != Some(key.as_bytes()) {
        return Err(format!(
            "the mount key in the mount record is not member {member}'s key in the registry: the log was written by someone else"
        ));
    }
    Ok((key, member))
}

/// The key a log by `member` must be signed with: the one place the
/// verifier looks a signer up in the registry. Today the current members;
/// once the registry keeps retired members (issue 13, part 2), theirs too,
/// so that removing a member never makes their genuine logs fail.
pub fn signer(registry: &Volume, member: &MemberId) -> Option<VerifyingKey> {
    // A member since removed keeps their keys in the registry as a former
    // member (FORMAT.md §5.1): their logs stay genuine after the removal.
    registry.member(member).map(|m| m.public.ed25519).or_else(|| registry.former(member).map(|r| r.public.ed25519))
}

/// Why record `i` (expected seq `base + i`, expected link `h`) does not
/// follow: looks at its neighbours to tell a change from a removal, an
/// insertion or a reordering. `before` is record `i - 1` (offset, seq,
/// link), `next` record `i + 1`, and `later(seq)` scans the records after
/// `next` for one with that seq (how many records past `next` it is).
fn diagnose(
    i: usize,
    base: u64,
    cur: &Parsed,
    before: Option<(usize, Option<u64>, Option<[u8; 32]>)>,
    next: Option<&Parsed>,
    h: &[u8; 32],
    later: &mut dyn FnMut(u64) -> Option<usize>,
) -> Option<Problem> {
    let e = base + i as u64;
    let r = cur.record.as_ref().expect("parsed");
    let here =
        |diagnosis, detail: String| Some(Problem { diagnosis, index: i, offset: cur.offset, seq: Some(r.seq), detail });
    let (b_offset, b_seq, b_prev) = before.unwrap_or((0, None, None));
    let there =
        |diagnosis, detail: String| Some(Problem { diagnosis, index: i - 1, offset: b_offset, seq: b_seq, detail });
    if r.seq == e {
        // Sequence continuous, link broken.
        if next.is_some_and(|n| n.seq() == Some(e) && n.prev() == Some(*h)) {
            return here(
                Diagnosis::Inserted,
                format!("record {i} (seq {e}) was inserted: the next record has the same seq and links past it"),
            );
        }
        if i == 0 {
            return here(Diagnosis::Changed, "the first record's link is not the chain's start: it was changed".into());
        }
        return there(
            Diagnosis::Changed,
            format!(
                "record {} (seq {}) was changed: its hash no longer matches the link in the record after it",
                i - 1,
                e - 1
            ),
        );
    }
    if r.seq < e {
        if i > 0 && r.seq == e - 1 && b_prev == Some(r.prev) {
            return there(
                Diagnosis::Inserted,
                format!(
                    "record {} (seq {}) was inserted: the record after it repeats its seq and links past it",
                    i - 1,
                    e - 1
                ),
            );
        }
        return here(Diagnosis::Inserted, format!("record {i} repeats seq {} (expected {e}): it was inserted", r.seq));
    }
    // r.seq > e: a gap here, or the expected record comes later.
    let found = match next {
        Some(n) if n.seq() == Some(e) => Some(0),
        Some(_) => later(e).map(|k| k + 1),
        None => None,
    };
    match found {
        Some(0) => {
            let n = next.expect("position 0 exists");
            let swapped = r.seq == e + 1 && n.prev() == Some(*h) && r.prev == chain::next(h, &n.bytes);
            if swapped || r.seq == e + 1 {
                here(
                    Diagnosis::Reordered,
                    format!("records {i} and {} are swapped (seq {} before seq {e})", i + 1, r.seq),
                )
            } else {
                here(Diagnosis::Inserted, format!("record {i} (seq {}) was inserted before seq {e}", r.seq))
            }
        }
        Some(k) => here(
            Diagnosis::Reordered,
            format!(
                "record {i} has seq {} but seq {e} comes later (record {}): records were reordered",
                r.seq,
                i + 1 + k
            ),
        ),
        None => {
            let missing = r.seq - e;
            here(
                Diagnosis::Removed,
                format!(
                    "{missing} record(s) removed before record {i}: seq {e}{} missing",
                    if missing > 1 { format!("..{}", r.seq - 1) } else { String::new() }
                ),
            )
        }
    }
}
