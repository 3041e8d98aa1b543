//! `tresor audit`: verify, show and question the audit logs that mounts
//! and CLI commands write (`docs/AUDIT.md`).
//!
//! `verify` needs only the registry (the chain covers the sealed paths);
//! `show`, `who` and `access` open the sealed paths with the volume name
//! key, so they ask for a member's or auditor's identity.
//!
//! Exit codes of `verify`: 0 every log verified, 1 tampering found (or a
//! log unreadable), 2 usage.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tresor_audit::chain::hex;
use tresor_audit::query::{self, Access, Entry, Filter};
use tresor_audit::record::errno_name;
use tresor_audit::seal::PathSealer;
use tresor_audit::verify::{parse_anchors, Report};
use tresor_audit::{time, AuditLog, Event, Op};
use tresor_format::{Identity, MemberId, NameKey, Volume};

use crate::{config, id, member, passphrase::PassSource};

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check logs: the hash chain, the sequence, the checkpoint signatures
    /// against the volume's registry, and anchors. Names the first bad
    /// record and what happened to it. Exit 0 verified, 1 tampering found.
    Verify {
        /// Log files [default: every log in BACKING/tresor.audit].
        logs: Vec<PathBuf>,
        #[command(flatten)]
        volume: VolumeArg,
        /// Checkpoint anchors kept outside the node: lines of
        /// `<mount-id> <seq> <hash>` (what audit_anchor_cmd= and syslog get).
        #[arg(long, value_name = "FILE")]
        anchors: Option<PathBuf>,
        /// One JSON object per log.
        #[arg(long)]
        json: bool,
    },
    /// Show records of one or more logs merged by time, filtered.
    Show {
        /// Log files [default: every log in BACKING/tresor.audit].
        logs: Vec<PathBuf>,
        #[command(flatten)]
        volume: VolumeArg,
        /// Only records by (or about) this member: name or id.
        #[arg(long)]
        member: Option<String>,
        /// Only records of processes running as this numeric user id.
        #[arg(long)]
        uid: Option<u32>,
        /// Only records for this plaintext path or below it.
        #[arg(long, value_name = "PREFIX")]
        path: Option<String>,
        /// Only this operation (open, release, create, rename, grant, ...).
        #[arg(long)]
        op: Option<String>,
        /// From this time (RFC 3339 or unix seconds).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Up to this time (RFC 3339 or unix seconds).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// One JSON object per record (for jq).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        who: Reader,
    },
    /// Everyone who accessed a file, when and how, denied attempts included.
    Who {
        /// Plaintext path relative to the volume root.
        path: String,
        /// Log files [default: every log in BACKING/tresor.audit].
        logs: Vec<PathBuf>,
        #[command(flatten)]
        volume: VolumeArg,
        /// One JSON object per line, for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        who: Reader,
    },
    /// Who could read a file at a given time, from its create record and the
    /// grant, revoke and re-key history.
    Access {
        /// Plaintext path relative to the volume root.
        path: String,
        /// RFC 3339 (2026-11-29T07:12:03Z) or unix seconds.
        #[arg(long)]
        at: String,
        /// Log files [default: every log in BACKING/tresor.audit].
        logs: Vec<PathBuf>,
        #[command(flatten)]
        volume: VolumeArg,
        /// One JSON object per line, for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        who: Reader,
    },
}

#[derive(Args, Debug, Clone)]
pub struct VolumeArg {
    /// The volume's backing directory (its registry verifies the logs)
    /// [default: the directory above the logs' tresor.audit].
    #[arg(long, value_name = "BACKING")]
    volume: Option<PathBuf>,
}

/// The identity that opens sealed paths: a member or an auditor.
#[derive(Args, Debug, Clone)]
pub struct Reader {
    /// Your identity file [default: ~/.config/tresor/identity].
    #[arg(long, short, value_name = "FILE", env = "TRESOR_IDENTITY")]
    identity: Option<PathBuf>,
    #[command(flatten)]
    pass: PassSource,
}

/// A usage problem: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(String);

pub fn run(cmd: AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { logs, volume, anchors, json } => verify(logs, volume, anchors, json),
        AuditCommand::Show { logs, volume, member, uid, path, op, since, until, json, who } => {
            let (volume, logs) = resolve(&volume, logs)?;
            let mut filter = Filter { uid, path_prefix: path, ..Filter::default() };
            if let Some(m) = member {
                filter.member = Some(member_id(&volume, &m)?.0);
            }
            if let Some(op) = op {
                filter.op = Some(Op::parse(&op).ok_or_else(|| Usage(format!("unknown operation {op:?}")))?);
            }
            filter.since_ns = since.map(|t| time::parse(&t)).transpose().map_err(Usage)?;
            filter.until_ns = until.map(|t| time::parse(&t)).transpose().map_err(Usage)?;
            let entries = read(&volume, &logs, &who)?;
            let names = names(&volume);
            let show_checkpoints = filter.op == Some(Op::Checkpoint);
            for e in entries.iter().filter(|e| filter.matches(e)) {
                if e.record.op == Op::Checkpoint && !show_checkpoints {
                    continue;
                }
                print_entry(e, &names, &logs, json);
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Who { path, logs, volume, json, who } => {
            let (volume, logs) = resolve(&volume, logs)?;
            let entries = read(&volume, &logs, &who)?;
            let names = names(&volume);
            for e in query::who(&entries, &path) {
                print_entry(e, &names, &logs, json);
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Access { path, at, logs, volume, json, who } => {
            let at_ns = time::parse(&at).map_err(Usage)?;
            let (volume, logs) = resolve(&volume, logs)?;
            let entries = read(&volume, &logs, &who)?;
            let names = names(&volume);
            let path = query::normalize(&path);
            match query::access(&entries, &path, at_ns) {
                Access::Readers(readers) => {
                    if json {
                        let list: Vec<Value> =
                            readers.iter().map(|m| json!({"id": hex(m), "name": names.get(m)})).collect();
                        println!("{}", json!({"path": path, "at": time::format_ns(at_ns), "readers": list}));
                    } else {
                        println!("{path} at {}: {} reader(s)", time::format_ns(at_ns), readers.len());
                        for m in &readers {
                            println!(
                                "  {:<24} {}",
                                names.get(m).map(String::as_str).unwrap_or("(not a member now)"),
                                hex(m)
                            );
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Access::Unknown(why) => {
                    if json {
                        println!("{}", json!({"path": path, "at": time::format_ns(at_ns), "unknown": why}));
                    } else {
                        println!("{path} at {}: unknown: {why}", time::format_ns(at_ns));
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

/// The volume and the logs: `--volume`, else inferred from the logs'
/// directory; the logs given, else every log of the volume.
fn resolve(volume: &VolumeArg, logs: Vec<PathBuf>) -> Result<(Volume, Vec<PathBuf>)> {
    let backing = match (&volume.volume, logs.first()) {
        (Some(b), _) => b.clone(),
        (None, Some(log)) => {
            let dir = log.parent().filter(|d| d.file_name().is_some_and(|n| n == tresor_audit::DEFAULT_DIR));
            match dir.and_then(Path::parent) {
                Some(b) if b.join(tresor_format::names::VOLUME_FILE).exists() => b.to_owned(),
                _ => {
                    return Err(Usage(format!(
                        "cannot tell which volume {} belongs to: give --volume BACKING",
                        log.display()
                    ))
                    .into())
                }
            }
        }
        (None, None) => return Err(Usage("give LOG files or --volume BACKING".into()).into()),
    };
    let registry = member::load(&backing)?;
    let logs = if logs.is_empty() {
        let dir = backing.join(tresor_audit::DEFAULT_DIR);
        let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("no audit logs in {} (give LOG files)", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        all.sort();
        all
    } else {
        logs
    };
    Ok((registry, logs))
}

fn verify(logs: Vec<PathBuf>, volume: VolumeArg, anchors: Option<PathBuf>, json: bool) -> Result<ExitCode> {
    // All of the volume's logs: then an anchored mount without a log is a
    // deleted log.
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
    let mut all_ok = true;
    let mut seen = Vec::new();
    for log in &logs {
        let report = match std::fs::read(log) {
            Ok(bytes) => tresor_audit::verify(&bytes, &registry, &anchors),
            Err(e) => {
                all_ok = false;
                eprintln!("{}: cannot read: {e}", log.display());
                continue;
            }
        };
        all_ok &= report.ok();
        seen.extend(report.mount_id);
        if json {
            println!("{}", report_json(log, &report, &names));
        } else {
            print_report(log, &report, &names);
        }
    }
    if every_log {
        let mut missing: Vec<(&[u8; 16], u64)> = Vec::new();
        for a in anchors.iter().filter(|a| !seen.contains(&a.mount_id)) {
            match missing.iter_mut().find(|(m, _)| **m == a.mount_id) {
                Some((_, s)) => *s = (*s).max(a.seq),
                None => missing.push((&a.mount_id, a.seq)),
            }
        }
        for (mount_id, seq) in missing {
            all_ok = false;
            let detail = format!(
                "the log of mount {} is missing: an anchor records its checkpoint at seq {seq}, but no log of the \
                 volume has that mount id (deleted?)",
                hex(mount_id)
            );
            if json {
                println!(
                    "{}",
                    json!({"log": null, "ok": false, "mount_id": hex(mount_id),
                           "problem": {"diagnosis": "removed", "index": null, "offset": null, "seq": seq, "detail": detail}})
                );
            } else {
                println!("mount {}: TAMPERED: removed: {detail}", hex(mount_id));
            }
        }
    }
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_report(log: &Path, r: &Report, names: &HashMap<[u8; 16], String>) {
    let who = r.member.map(|m| names.get(&m.0).cloned().unwrap_or_else(|| m.to_string())).unwrap_or_default();
    let seq = |s: Option<u64>| s.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
    match &r.problem {
        None => println!(
            "{}: verified: {} records, signed up to seq {}{} (log {} written on {} by {who})",
            log.display(),
            r.records,
            seq(r.verified_up_to),
            if r.closed { ", closed" } else { "" },
            r.mount_id.map(|m| hex(&m)).unwrap_or_default(),
            r.host.as_deref().unwrap_or("?"),
        ),
        Some(p) => println!(
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
        ),
    }
    for w in &r.warnings {
        println!("{}: warning: {w}", log.display());
    }
}

fn report_json(log: &Path, r: &Report, names: &HashMap<[u8; 16], String>) -> Value {
    json!({
        "log": log.display().to_string(),
        "ok": r.ok(),
        "records": r.records,
        "verified_up_to": r.verified_up_to,
        "last_seq": r.last_seq,
        "closed": r.closed,
        "anchors_matched": r.anchors_matched,
        "mount_id": r.mount_id.map(|m| hex(&m)),
        "host": r.host,
        "member": r.member.map(|m| m.to_string()),
        "member_name": r.member.and_then(|m| names.get(&m.0).cloned()),
        "problem": r.problem.as_ref().map(|p| json!({
            "diagnosis": p.diagnosis.as_str(),
            "index": p.index,
            "offset": p.offset,
            "seq": p.seq,
            "detail": p.detail,
        })),
        "warnings": r.warnings,
    })
}

fn names(volume: &Volume) -> HashMap<[u8; 16], String> {
    volume.members().iter().map(|m| (m.id().0, m.name.clone())).collect()
}

fn member_id(volume: &Volume, who: &str) -> Result<MemberId> {
    let found: Vec<_> = volume.members().iter().filter(|m| m.name == who || m.id().to_string() == who).collect();
    match found.as_slice() {
        [one] => Ok(one.id()),
        [] => Err(Usage(format!("no member named or with id {who:?}")).into()),
        _ => Err(Usage(format!("{who:?} names several members: use the member id")).into()),
    }
}

/// All records of `logs`, merged by time, with paths opened.
fn read(volume: &Volume, logs: &[PathBuf], who: &Reader) -> Result<Vec<Entry>> {
    let identity = id::unlock(&who.identity.clone().unwrap_or_else(config::default_identity), &who.pass)?;
    let name_key =
        volume.name_key(&identity).context("unwrapping the name key (paths in the log are sealed with it)")?;
    let sealer = PathSealer::new(&name_key, &volume.id);
    let mut all = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        let bytes = std::fs::read(log).with_context(|| format!("reading {}", log.display()))?;
        all.push(query::read_log(&bytes, Some(&sealer), i).with_context(|| format!("reading {}", log.display()))?);
    }
    Ok(query::merge(all))
}

fn field(f: &Option<Result<String, query::Unreadable>>) -> Option<String> {
    f.as_ref().map(|p| p.clone().unwrap_or_else(|_| "<sealed: not readable with this key>".into()))
}

/// Text from the log as one harmless line: file and process names may
/// hold newlines or terminal escapes (JSON output escapes them itself).
fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

fn print_entry(e: &Entry, names: &HashMap<[u8; 16], String>, logs: &[PathBuf], json: bool) {
    let r = &e.record;
    let member = names.get(&r.member).cloned().unwrap_or_else(|| hex(&r.member));
    let subject = r
        .subject
        .as_deref()
        .map(|s| <[u8; 16]>::try_from(s).ok().and_then(|id| names.get(&id).cloned()).unwrap_or_else(|| hex(s)));
    let recipients: Option<Vec<String>> = r
        .recipients
        .as_ref()
        .map(|ids| ids.iter().map(|id| names.get(id).cloned().unwrap_or_else(|| hex(id))).collect());
    if json {
        let v = json!({
            "time": time::format_ns(r.time_ns),
            "time_ns": r.time_ns,
            "host": r.host,
            "mount": hex(&r.mount_id),
            "seq": r.seq,
            "member": hex(&r.member),
            "member_name": names.get(&r.member),
            "uid": r.uid,
            "gid": r.gid,
            "pid": r.pid,
            "process": r.process,
            "op": r.op.as_str(),
            "result": errno_name(r.result),
            "errno": r.result,
            "path": field(&e.path),
            "new_path": field(&e.new_path),
            "xattr": field(&e.xattr),
            "intent": r.intent,
            "bytes_read": r.bytes_read,
            "bytes_written": r.bytes_written,
            "setattr": r.setattr.as_ref().map(|a| json!({
                "mode": a.mode, "uid": a.uid, "gid": a.gid, "size": a.size, "atime_ns": a.atime, "mtime_ns": a.mtime,
            })),
            "recipients": recipients,
            "subject": subject,
            "rekeyed": r.rekeyed,
            "offset": r.offset,
            "options": r.options,
            "log": logs.get(e.log).map(|p| p.display().to_string()),
        });
        println!("{v}");
        return;
    }
    let mut detail = Vec::new();
    if let Some(i) = &r.intent {
        detail.push(format!("intent={i}"));
    }
    if let (Some(rd), Some(wr)) = (r.bytes_read, r.bytes_written) {
        detail.push(format!("read={rd} written={wr}"));
    }
    if let Some(a) = &r.setattr {
        let mut f = Vec::new();
        if let Some(m) = a.mode {
            f.push(format!("mode={m:o}"));
        }
        if let Some(u) = a.uid {
            f.push(format!("uid={u}"));
        }
        if let Some(g) = a.gid {
            f.push(format!("gid={g}"));
        }
        if let Some(s) = a.size {
            f.push(format!("size={s}"));
        }
        if a.atime.is_some() {
            f.push("atime".into());
        }
        if a.mtime.is_some() {
            f.push("mtime".into());
        }
        detail.push(f.join(","));
    }
    if let Some(x) = field(&e.xattr) {
        detail.push(format!("xattr={}", clean(&x)));
    }
    if let Some(s) = subject {
        detail.push(format!("member={s}"));
    }
    if let Some(rc) = recipients {
        detail.push(format!("recipients={}", rc.join(",")));
    }
    if let Some(k) = r.rekeyed {
        detail.push(format!("rekeyed={k}"));
    }
    if let Some(o) = r.offset {
        detail.push(format!("offset={o}"));
    }
    if let Some(o) = &r.options {
        detail.push(format!("options={}", clean(o)));
    }
    let path = match (field(&e.path).map(|p| clean(&p)), field(&e.new_path).map(|p| clean(&p))) {
        (Some(p), Some(n)) => format!("{p} -> {n}"),
        (Some(p), None) => p,
        _ => String::new(),
    };
    println!(
        "{}  {:<12} {:>6}  {:<10} uid={:<5} pid={:<7} {:<15} {:<12} {:<7} {}{}{}",
        &time::format_ns(r.time_ns)[..23],
        clean(&r.host),
        r.seq,
        member,
        r.uid,
        r.pid,
        clean(&r.process),
        r.op.as_str(),
        errno_name(r.result),
        path,
        if detail.is_empty() { "" } else { "  " },
        detail.join(" ")
    );
}

/// A CLI command's own audit log (one file per invocation, in the volume's
/// default log directory): opened before the change, so a log that cannot
/// be written stops the command before it changes anything.
pub struct Session {
    log: AuditLog,
}

impl Session {
    pub fn open(
        backing: &Path,
        identity: Arc<Identity>,
        volume: &Volume,
        name_key: &NameKey,
        command: &str,
    ) -> Result<Session> {
        let dir = backing.join(tresor_audit::DEFAULT_DIR);
        let log = AuditLog::open_session(&dir, identity, volume, name_key, command)
            .with_context(|| format!("opening the audit log in {}", dir.display()))?;
        Ok(Session { log })
    }

    pub fn record(&self, event: Event) -> Result<()> {
        let event = event.by(unsafe { libc::getuid() }, unsafe { libc::getgid() }, std::process::id());
        self.log.append(event).context("writing the audit record")?;
        Ok(())
    }

    pub fn close(self) -> Result<()> {
        self.log.close().context("closing the audit log")?;
        Ok(())
    }
}
