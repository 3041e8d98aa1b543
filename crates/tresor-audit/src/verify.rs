//! Verifying a log: framing, the sequence, the hash chain, the checkpoint
//! signatures against the volume's registry, and anchors; on failure, the
//! first bad record and what happened to it. See `docs/AUDIT.md`, "Verify".

use ed25519_dalek::VerifyingKey;
use tresor_format::{MemberId, Volume};

use crate::chain::{self, hex, unhex};
use crate::frame::{self, Frame};
use crate::record::{Op, Record};

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

/// The outcome of verifying one log.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub mount_id: Option<[u8; 16]>,
    pub host: Option<String>,
    pub member: Option<MemberId>,
    /// Whole records in the file.
    pub records: usize,
    /// The sequence number of the last checkpoint whose signature verified
    /// and whose chain leads to it unbroken: every record up to it is
    /// proven as written.
    pub verified_up_to: Option<u64>,
    /// The last sequence number that links correctly (signed or not).
    pub last_seq: Option<u64>,
    /// Ended with an unmount (or session-end) record and its checkpoint.
    pub closed: bool,
    /// Anchors that matched a checkpoint of this log.
    pub anchors_matched: usize,
    pub problem: Option<Problem>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

struct Parsed<'a> {
    frame: Frame<'a>,
    record: Result<Record, String>,
}

impl Parsed<'_> {
    fn seq(&self) -> Option<u64> {
        self.record.as_ref().ok().map(|r| r.seq)
    }
    fn prev(&self) -> Option<[u8; 32]> {
        self.record.as_ref().ok().map(|r| r.prev)
    }
}

/// Verifies a log file against the volume's registry and any anchors.
pub fn verify(file: &[u8], registry: &Volume, anchors: &[Anchor]) -> Report {
    let mut report = Report::default();
    let frames = match frame::split(file) {
        Ok(f) => f,
        Err(e) => {
            report.problem =
                Some(Problem { diagnosis: Diagnosis::NotALog, index: 0, offset: 0, seq: None, detail: e.to_string() });
            return report;
        }
    };
    let recs: Vec<Parsed> =
        frames.frames.iter().map(|f| Parsed { frame: *f, record: Record::from_bytes(f.bytes) }).collect();
    report.records = recs.len();
    let problem = |diagnosis, i: usize, detail: String| {
        let (offset, seq) = match recs.get(i) {
            Some(p) => (p.frame.offset, p.seq()),
            None => (file.len(), None),
        };
        Some(Problem { diagnosis, index: i, offset, seq, detail })
    };

    let mut h = chain::GENESIS;
    let mut hashes: Vec<[u8; 32]> = Vec::with_capacity(recs.len());
    let mut key: Option<VerifyingKey> = None;
    for (i, p) in recs.iter().enumerate() {
        let expected = i as u64;
        let r = match &p.record {
            Ok(r) => r,
            Err(e) => {
                report.problem = problem(Diagnosis::Changed, i, format!("record {i} was changed: {e}"));
                return report;
            }
        };
        if r.seq != expected || r.prev != h {
            report.problem = diagnose(&recs, i, &h);
            if let Some(p) = &mut report.problem {
                if let Some(q) = recs.get(p.index) {
                    (p.offset, p.seq) = (q.frame.offset, q.seq());
                }
            }
            return report;
        }
        // Same log throughout.
        if i == 0 {
            match check_start(r, registry) {
                Ok((k, member)) => {
                    key = Some(k);
                    report.mount_id = Some(r.mount_id);
                    report.host = Some(r.host.clone());
                    report.member = Some(member);
                }
                Err(detail) => {
                    report.problem = problem(Diagnosis::Rewritten, 0, detail);
                    return report;
                }
            }
        } else if Some(r.mount_id) != report.mount_id || Some(MemberId(r.member)) != report.member {
            report.problem = problem(
                Diagnosis::Changed,
                i,
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
                let since = report.verified_up_to.map(|s| s + 1).unwrap_or(0);
                report.problem = problem(
                    Diagnosis::Rewritten,
                    i,
                    format!(
                        "the checkpoint at seq {} does not verify with the mount's key: records {since}..{} were \
                         rewritten by someone without it",
                        r.seq, r.seq
                    ),
                );
                return report;
            }
            report.verified_up_to = Some(r.seq);
        }
        h = chain::next(&h, p.frame.bytes);
        hashes.push(h);
        report.last_seq = Some(r.seq);
    }

    if let Some((offset, len)) = frames.bad_length {
        report.problem = Some(Problem {
            diagnosis: Diagnosis::Changed,
            index: recs.len(),
            offset,
            seq: None,
            detail: format!(
                "the record at offset {offset} has an impossible length ({len} bytes): the file was changed"
            ),
        });
        return report;
    }
    if recs.is_empty() {
        report.problem = problem(Diagnosis::CutOff, 0, "the log holds no records: its mount record is missing".into());
        return report;
    }
    let mount_id = report.mount_id.expect("set at record 0");
    // Anchors: a checkpoint the log no longer reaches, or one that differs.
    for a in anchors.iter().filter(|a| a.mount_id == mount_id) {
        match recs.get(a.seq as usize) {
            None => {
                report.problem = Some(Problem {
                    diagnosis: Diagnosis::CutOff,
                    index: recs.len(),
                    offset: frames.torn.map(|t| t.0).unwrap_or(file.len()),
                    seq: report.last_seq.map(|s| s + 1),
                    detail: format!(
                        "the log ends at seq {} but an anchor records a checkpoint at seq {}: records were cut off",
                        report.last_seq.unwrap_or(0),
                        a.seq
                    ),
                });
                return report;
            }
            Some(p) => {
                let is_checkpoint = p.record.as_ref().is_ok_and(|r| r.op == Op::Checkpoint);
                if !is_checkpoint || hashes[a.seq as usize] != a.hash {
                    report.problem = problem(
                        Diagnosis::Rewritten,
                        a.seq as usize,
                        format!("the checkpoint at seq {} does not match its anchor: the log was rewritten", a.seq),
                    );
                    return report;
                }
                report.anchors_matched += 1;
            }
        }
    }
    if let Some((offset, len)) = frames.torn {
        report.warnings.push(format!(
            "incomplete last record at offset {offset} ({len} bytes): the writer stopped in the middle of it"
        ));
    }
    let last = recs.last().and_then(|p| p.record.as_ref().ok()).expect("all parsed");
    let unsigned = report.last_seq.map_or(0, |s| s + 1) - report.verified_up_to.map_or(0, |s| s + 1);
    if last.op != Op::Checkpoint {
        report.warnings.push(format!(
            "unsigned tail of {unsigned} records (no checkpoint covers them; daemon killed?): verified up to seq {}",
            report.verified_up_to.map(|s| s.to_string()).unwrap_or_else(|| "-".into())
        ));
    }
    let n = recs.len();
    report.closed = n >= 2 && last.op == Op::Checkpoint && recs[n - 2].record.as_ref().is_ok_and(|r| r.op.ends_log());
    if !report.closed && last.op == Op::Checkpoint {
        report.warnings.push(format!(
            "no unmount record: the mount is still running, was killed, or the log was cut after its checkpoint at \
             seq {} (an anchor tells which)",
            last.seq
        ));
    }
    report
}

/// The mount (or session) record: for this volume, by a registry member
/// whose signing key it names. Returns that key and the member.
fn check_start(r: &Record, registry: &Volume) -> Result<(VerifyingKey, MemberId), String> {
    if !r.op.starts_log() {
        return Err(format!("the first record is `{}`, not `mount`: the log's start was replaced", r.op.as_str()));
    }
    if r.volume.as_deref() != Some(&registry.id[..]) {
        return Err("the mount record names another volume: this log is not from this volume".into());
    }
    let member = MemberId(r.member);
    let m = registry.member(&member).ok_or_else(|| {
        format!("the mount record names member {member}, who is not in the volume's registry: the log was not written by a member")
    })?;
    if r.key.as_deref() != Some(m.public.ed25519.as_bytes()) {
        return Err(format!(
            "the mount key in the mount record is not member {member}'s key in the registry: the log was written by someone else"
        ));
    }
    Ok((m.public.ed25519, member))
}

/// Why record `i` (expected seq `i`, expected link `h`) does not follow:
/// looks at its neighbours to tell a change from a removal, an insertion
/// or a reordering.
fn diagnose(recs: &[Parsed], i: usize, h: &[u8; 32]) -> Option<Problem> {
    let e = i as u64;
    let r = recs[i].record.as_ref().expect("parsed");
    let next = recs.get(i + 1);
    let mk = |diagnosis, index: usize, detail: String| Some(Problem { diagnosis, index, offset: 0, seq: None, detail });
    if r.seq == e {
        // Sequence continuous, link broken.
        if next.is_some_and(|n| n.seq() == Some(e) && n.prev() == Some(*h)) {
            return mk(
                Diagnosis::Inserted,
                i,
                format!("record {i} (seq {e}) was inserted: the next record has the same seq and links past it"),
            );
        }
        if i == 0 {
            return mk(
                Diagnosis::Changed,
                0,
                "the first record's link is not the chain's start: it was changed".into(),
            );
        }
        return mk(
            Diagnosis::Changed,
            i - 1,
            format!(
                "record {} (seq {}) was changed: its hash no longer matches the link in the record after it",
                i - 1,
                e - 1
            ),
        );
    }
    if r.seq < e {
        if i > 0 && r.seq == e - 1 && recs[i - 1].prev() == Some(r.prev) {
            return mk(
                Diagnosis::Inserted,
                i - 1,
                format!(
                    "record {} (seq {}) was inserted: the record after it repeats its seq and links past it",
                    i - 1,
                    e - 1
                ),
            );
        }
        return mk(Diagnosis::Inserted, i, format!("record {i} repeats seq {} (expected {e}): it was inserted", r.seq));
    }
    // r.seq > e: a gap here, or the expected record comes later.
    match recs.iter().skip(i + 1).position(|p| p.seq() == Some(e)) {
        Some(0) => {
            let n = next.expect("position 0 exists");
            let swapped = r.seq == e + 1 && n.prev() == Some(*h) && r.prev == chain::next(h, n.frame.bytes);
            if swapped || r.seq == e + 1 {
                mk(
                    Diagnosis::Reordered,
                    i,
                    format!("records {i} and {} are swapped (seq {} before seq {e})", i + 1, r.seq),
                )
            } else {
                mk(Diagnosis::Inserted, i, format!("record {i} (seq {}) was inserted before seq {e}", r.seq))
            }
        }
        Some(k) => mk(
            Diagnosis::Reordered,
            i,
            format!(
                "record {i} has seq {} but seq {e} comes later (record {}): records were reordered",
                r.seq,
                i + 1 + k
            ),
        ),
        None => {
            let missing = r.seq - e;
            mk(
                Diagnosis::Removed,
                i,
                format!(
                    "{missing} record(s) removed before record {i}: seq {e}{} missing",
                    if missing > 1 { format!("..{}", r.seq - 1) } else { String::new() }
                ),
            )
        }
    }
}
