//! `tresor audit verify` and `tresor audit prune`: every log streamed
//! through the verifier, the segments of each log linked, one summary.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tresor_audit::chain::hex;
use tresor_audit::chain::unhex;
use tresor_audit::merkle::Frontier;
use tresor_audit::query;
use tresor_audit::record::Pruned;
use tresor_audit::rows::{terminal, Names};
use tresor_audit::segments::{self, Summary};
use tresor_audit::verify::{parse_anchors, verify_from, verify_reader, Anchor, MerkleHead, Report, Resume};
use tresor_audit::{time, AuditLog, Event, Op};
use tresor_format::{MemberId, Volume};

use super::{json_line, names, resolve, unlock, volume_logs, Reader, Usage, VolumeArg};

/// Verifies each log (unreadable: `Err`, with why), from where `state`
/// says an earlier run left off where it has the log, and, when they are
/// all the volume's logs, links the segments of each.
pub(super) fn verify_all(
    logs: &[PathBuf],
    registry: &Volume,
    anchors: &[Anchor],
    every_log: bool,
    state: &HashMap<PathBuf, Resume>,
) -> Vec<Result<Report, String>> {
    let mut reports: Vec<Result<Report, String>> = logs
        .iter()
        .map(|log| match (query::open_log(log), state.get(log)) {
            (Ok(file), Some(from)) => Ok(verify_from(file, registry, anchors, from)),
            (Ok(file), None) => Ok(verify_reader(file, registry, anchors)),
            (Err(e), _) => Err(format!("cannot read: {e}")),
        })
        .collect();
    if every_log {
        segments::link(&mut reports.iter_mut().filter_map(|r| r.as_mut().ok()).collect::<Vec<_>>());
    }
    reports
}

pub fn verify(
    logs: Vec<PathBuf>,
    volume: VolumeArg,
    anchors: Option<PathBuf>,
    state_file: Option<PathBuf>,
    json: bool,
    witnesses: &[String],
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let witnesses = witnesses.iter().map(|w| super::prove::witness_key(w)).collect::<Result<Vec<_>>>()?;
    // All of the volume's logs: then an anchored mount without a log is a
    // deleted log, and a missing segment is found.
    let every_log = logs.is_empty();
    let (registry, logs) = resolve(&volume, logs)?;
    let anchors = match anchors {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            parse_anchors(&text).map_err(Usage)?
        }
        None => Vec::new(),
    };
    if logs.is_empty() && anchors.is_empty() {
        bail!("no audit logs to verify");
    }
    let names = names(&registry);
    let state = match &state_file {
        Some(path) => load_state(path, &registry)?,
        None => HashMap::new(),
    };
    let reports = verify_all(&logs, &registry, &anchors, every_log, &state);
    if let Some(path) = &state_file {
        save_state(path, &logs, &reports, &state)?;
    }
    let mut unreadable = 0;
    for (log, report) in logs.iter().zip(&reports) {
        match report {
            Ok(r) if json => json_line(out, &ReportJson::new(log, r, &names))?,
            Ok(r) => print_report(out, log, r, &names)?,
            Err(why) => {
                unreadable += 1;
                if json {
                    json_line(out, &serde_json::json!({"log": log.display().to_string(), "ok": false, "error": why}))?;
                } else {
                    writeln!(out, "{}: TAMPERED: {why}", log.display())?;
                }
            }
        }
    }
    let ok: Vec<&Report> = reports.iter().filter_map(|r| r.as_ref().ok()).collect();
    let mut missing_logs = 0;
    if every_log {
        let seen: Vec<[u8; 16]> = ok.iter().filter_map(|r| r.mount_id).collect();
        let pruned: Vec<[u8; 16]> = ok.iter().flat_map(|r| r.prunes.iter().map(|(_, p)| p.mid)).collect();
        let mut missing: Vec<([u8; 16], u64)> = Vec::new();
        for a in anchors.iter().filter(|a| !seen.contains(&a.mount_id) && !pruned.contains(&a.mount_id)) {
            match missing.iter_mut().find(|(m, _)| *m == a.mount_id) {
                Some((_, s)) => *s = (*s).max(a.seq),
                None => missing.push((a.mount_id, a.seq)),
            }
        }
        for (mount_id, seq) in missing {
            missing_logs += 1;
            let detail = format!(
                "the log of mount {} is missing: an anchor records its checkpoint at seq {seq}, but no log of the \
                 volume has that mount id (deleted?)",
                hex(&mount_id)
            );
            if json {
                json_line(
                    out,
                    &serde_json::json!({"log": null, "ok": false, "mount_id": hex(&mount_id),
                           "problem": {"diagnosis": "removed", "index": null, "offset": null, "seq": seq, "detail": detail}}),
                )?;
            } else {
                writeln!(out, "mount {}: TAMPERED: removed: {detail}", hex(&mount_id))?;
            }
        }
    }
    let mut unwitnessed = 0;
    if !witnesses.is_empty() {
        let verified: Vec<(PathBuf, &Report)> = logs
            .iter()
            .zip(&reports)
            .filter_map(|(l, r)| r.as_ref().ok().filter(|r| r.ok()).map(|r| (l.clone(), r)))
            .collect();
        for why in super::prove::check_witnesses(&verified, &witnesses) {
            unwitnessed += 1;
            if json {
                json_line(out, &serde_json::json!({"ok": false, "witness": why}))?;
            } else {
                writeln!(out, "NOT WITNESSED: {why}")?;
            }
        }
    }
    let mut summary = Summary::of(&ok);
    summary.files += unreadable;
    summary.tampered += unreadable + missing_logs;
    if json {
        json_line(out, &SummaryJson { summary: true, ok: summary.ok(), counts: &summary })?;
    } else {
        writeln!(out, "{}", summary_line(&summary))?;
    }
    if unwitnessed > 0 && !json {
        writeln!(out, "witnesses: {unwitnessed} cosignature(s) missing or invalid on the latest checkpoints")?;
    }
    Ok(if summary.ok() && unwitnessed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn summary_line(s: &Summary) -> String {
    let verdict = if s.ok() {
        "all verified".to_owned()
    } else {
        format!("TAMPERED: {} of {} log files (or missing logs) fail", s.tampered, s.files)
    };
    format!(
        "summary: {} log files of {} logs, {} records, {} signed checkpoints, {} warnings: {verdict}",
        s.files, s.logs, s.records, s.checkpoints, s.warnings
    )
}

#[derive(Serialize)]
struct SummaryJson<'a> {
    summary: bool,
    ok: bool,
    #[serde(flatten)]
    counts: &'a Summary,
}

pub(super) fn print_report(out: &mut dyn Write, log: &Path, r: &Report, names: &Names) -> Result<()> {
    let who =
        r.member.map(|m| names.get(&m.0).map(|n| terminal(n)).unwrap_or_else(|| m.to_string())).unwrap_or_default();
    let seq = |s: Option<u64>| s.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
    match &r.problem {
        None => writeln!(
            out,
            "{}: verified: {} records, signed up to seq {}{} (log {} written on {} by {who})",
            log.display(),
            r.records,
            seq(r.verified_up_to),
            if r.closed {
                ", closed"
            } else if r.rotated {
                ", sealed, continued in the next segment"
            } else {
                ""
            },
            r.mount_id.map(|m| hex(&m)).unwrap_or_default(),
            terminal(r.host.as_deref().unwrap_or("?")),
        )?,
        Some(p) => writeln!(
            out,
            "{}: TAMPERED: {}: record {} (seq {}) at offset {}: {}{}",
            log.display(),
            p.diagnosis.as_str(),
            p.index,
            seq(p.seq),
            p.offset,
            p.detail,
            match r.verified_up_to {
                Some(v) => format!(" (records up to seq {v} verified)"),
                None => String::new(),
            }
        )?,
    }
    for w in &r.warnings {
        writeln!(out, "{}: warning: {w}", log.display())?;
    }
    Ok(())
}

#[derive(Serialize)]
struct ProblemJson<'a> {
    diagnosis: &'static str,
    index: usize,
    offset: usize,
    seq: Option<u64>,
    detail: &'a str,
}

/// One log's outcome, as `verify --json` prints it.
#[derive(Serialize)]
struct ReportJson<'a> {
    log: String,
    ok: bool,
    records: usize,
    checkpoints: usize,
    first_seq: Option<u64>,
    verified_up_to: Option<u64>,
    last_seq: Option<u64>,
    closed: bool,
    rotated: bool,
    anchors_matched: usize,
    mount_id: Option<String>,
    host: Option<&'a str>,
    member: Option<String>,
    member_name: Option<&'a str>,
    /// The size of the log's last Merkle checkpoint (version 2 logs).
    tree_size: Option<u64>,
    problem: Option<ProblemJson<'a>>,
    warnings: &'a [String],
}

impl<'a> ReportJson<'a> {
    fn new(log: &Path, r: &'a Report, names: &'a Names) -> Self {
        ReportJson {
            log: log.display().to_string(),
            ok: r.ok(),
            records: r.records,
            checkpoints: r.checkpoints,
            first_seq: r.first_seq,
            verified_up_to: r.verified_up_to,
            last_seq: r.last_seq,
            closed: r.closed,
            rotated: r.rotated,
            anchors_matched: r.anchors_matched,
            mount_id: r.mount_id.map(|m| hex(&m)),
            host: r.host.as_deref(),
            member: r.member.map(|m| m.to_string()),
            member_name: r.member.and_then(|m| names.get(&m.0).map(String::as_str)),
            tree_size: r.merkle.as_ref().map(|m| m.size),
            problem: r.problem.as_ref().map(|p| ProblemJson {
                diagnosis: p.diagnosis.as_str(),
                index: p.index,
                offset: p.offset,
                seq: p.seq,
                detail: &p.detail,
            }),
            warnings: &r.warnings,
        }
    }
}

/// `tresor audit prune --before TIME`: verifies every log of the volume,
/// records the segments it will remove in a session log of its own (synced
/// and sealed before anything is removed), then removes them.
pub fn prune(before: &str, volume: &VolumeArg, dry_run: bool, who: &Reader, out: &mut dyn Write) -> Result<ExitCode> {
    let before_ns = time::parse(before).map_err(Usage)?;
    let backing = volume.volume.clone().ok_or_else(|| Usage("give --volume BACKING".into()))?;
    let registry = crate::member::load(&backing)?;
    let logs = volume_logs(&backing, &registry)?;
    let reports = verify_all(&logs, &registry, &[], true, &HashMap::new());
    let ok: Vec<&Report> = reports.iter().filter_map(|r| r.as_ref().ok()).collect();
    let index: Vec<usize> = reports.iter().enumerate().filter(|(_, r)| r.is_ok()).map(|(i, _)| i).collect();
    let plan = segments::prunable(&ok, before_ns);
    if plan.is_empty() {
        writeln!(out, "nothing to prune: no sealed, verified segment ends before {}", time::format_ns(before_ns))?;
        return Ok(ExitCode::SUCCESS);
    }
    let describe = |p: &tresor_audit::record::Pruned| format!("mount {} seq {}..{}", hex(&p.mid), p.first, p.last);
    if dry_run {
        for (i, p) in &plan {
            writeln!(out, "would prune {} ({})", logs[index[*i]].display(), describe(p))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let (identity, name_key) = unlock(&registry, who)?;
    let dir = super::log_dir(&backing, &registry);
    let session = AuditLog::open_session(
        &dir,
        Arc::new(identity),
        &registry,
        &name_key,
        &format!("audit prune --before {}", time::format_ns(before_ns)),
    )
    .with_context(|| format!("opening the audit log in {}", dir.display()))?;
    for (_, p) in &plan {
        session.append(Event::new(Op::Prune).by_self().pruned(p.clone())).context("writing the prune record")?;
    }
    session.close().context("closing the audit log")?;
    for (i, p) in &plan {
        let log = &logs[index[*i]];
        let name = log.file_name().and_then(|n| n.to_str()).context("a log name")?;
        tresor_audit::writer::remove_segment(&dir, name).with_context(|| format!("removing {}", log.display()))?;
        writeln!(out, "pruned {} ({})", log.display(), describe(p))?;
    }
    writeln!(out, "pruned {} segment(s); recorded in {}", plan.len(), session.path().display())?;
    Ok(ExitCode::SUCCESS)
}

/// One line of a `verify --state` file: where the last run left a log.
#[derive(Serialize, Deserialize)]
struct StateLine {
    log: PathBuf,
    mount_id: String,
    member: String,
    seq: u64,
    hash: String,
    offset: usize,
    before: Option<String>,
    first_seq: u64,
    continues: Option<String>,
    prunes: Vec<PruneLine>,
    /// Version 2 logs: the Merkle tree's size and right edge there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tree: Option<(u64, Vec<String>)>,
    /// ... and its last Merkle checkpoint: size, root and note signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    merkle: Option<(u64, String, String)>,
}

#[derive(Serialize, Deserialize)]
struct PruneLine {
    seq: u64,
    mid: String,
    first: u64,
    last: u64,
    hash: String,
}

impl StateLine {
    fn of(log: &Path, r: &Resume) -> StateLine {
        StateLine {
            log: log.to_owned(),
            mount_id: hex(&r.mount_id),
            member: hex(&r.member.0),
            seq: r.seq,
            hash: hex(&r.hash),
            offset: r.offset,
            before: r.before.map(|op| op.as_str().to_owned()),
            first_seq: r.first_seq,
            continues: r.continues.map(|h| hex(&h)),
            prunes: r
                .prunes
                .iter()
                .map(|(seq, p)| PruneLine {
                    seq: *seq,
                    mid: hex(&p.mid),
                    first: p.first,
                    last: p.last,
                    hash: hex(&p.hash),
                })
                .collect(),
            tree: r.tree.as_ref().map(|t| (t.size(), t.hashes().iter().map(|h| hex(h)).collect())),
            merkle: r.merkle.as_ref().map(|m| (m.size, hex(&m.root), hex(&m.nsig))),
        }
    }

    fn resume(&self, registry: &Volume) -> Option<Resume> {
        Some(Resume {
            mount_id: unhex(&self.mount_id)?,
            member: MemberId(unhex(&self.member)?),
            seq: self.seq,
            hash: unhex(&self.hash)?,
            offset: self.offset,
            before: match &self.before {
                Some(op) => Some(Op::parse(op)?),
                None => None,
            },
            first_seq: self.first_seq,
            continues: match &self.continues {
                Some(h) => Some(unhex(h)?),
                None => None,
            },
            prunes: self
                .prunes
                .iter()
                .map(|p| {
                    Some((p.seq, Pruned { mid: unhex(&p.mid)?, first: p.first, last: p.last, hash: unhex(&p.hash)? }))
                })
                .collect::<Option<_>>()?,
            tree: match &self.tree {
                Some((size, hashes)) => {
                    Some(Frontier::from_parts(*size, hashes.iter().map(|h| unhex(h)).collect::<Option<_>>()?)?)
                }
                None => None,
            },
            merkle: match &self.merkle {
                Some((size, root, nsig)) => {
                    let key = tresor_audit::verify::signer(registry, &MemberId(unhex(&self.member)?))?;
                    Some(MerkleHead { size: *size, root: unhex(root)?, nsig: unhex(nsig)?, key: key.to_bytes() })
                }
                None => None,
            },
        })
    }
}

/// The auditor's own record of where each log was verified up to (keep it
/// off the storage the logs are on: whoever can change it can make a run
/// skip records). A missing file is an empty state.
fn load_state(path: &Path, registry: &Volume) -> Result<HashMap<PathBuf, Resume>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut out = HashMap::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        let parsed = serde_json::from_str::<StateLine>(&line).ok().and_then(|e| Some((e.resume(registry)?, e.log)));
        let (resume, log) =
            parsed.ok_or_else(|| Usage(format!("{} line {}: not a verify state line", path.display(), n + 1)))?;
        out.insert(log, resume);
    }
    Ok(out)
}

/// Writes the state after a run: each log that verified, at its last
/// verified checkpoint; a log with a problem keeps its earlier entry.
/// Written to a temporary file and renamed over the old one.
fn save_state(
    path: &Path,
    logs: &[PathBuf],
    reports: &[Result<Report, String>],
    old: &HashMap<PathBuf, Resume>,
) -> Result<()> {
    let mut text = Vec::new();
    for (log, report) in logs.iter().zip(reports) {
        let resume = match report {
            Ok(r) if r.ok() => r.resume.as_ref(),
            _ => old.get(log),
        };
        if let Some(r) = resume {
            serde_json::to_writer(&mut text, &StateLine::of(log, r))?;
            text.push(b'\n');
        }
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}
