//! `tresor audit`: verify, show, question, summarise and prune the audit
//! logs that mounts and CLI commands write (`docs/AUDIT.md`).
//!
//! `verify` needs only the registry (the chain covers the sealed paths);
//! `show`, `who`, `access`, `report` and `prune` open the sealed paths (or
//! write a session log) with the volume name key, so they ask for a
//! member's or auditor's identity. Every command streams: one record per
//! log in memory, whatever the logs' size.
//!
//! Exit codes of `verify`: 0 every log verified, 1 tampering found (or a
//! log unreadable), 2 usage. Output to a closed pipe (`| head`) ends the
//! command quietly with 0.

mod export;
mod prove;
mod verify;

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::Serialize;
use tresor_audit::chain::hex;
use tresor_audit::query::{self, Access, Entries, Entry, Filter, Merge};
use tresor_audit::report::Tally;
use tresor_audit::rows::{terminal, Csv, Names, Row};
use tresor_audit::seal::PathSealer;
use tresor_audit::{time, AuditLog, Event, Op};
use tresor_format::{Identity, MemberId, NameKey, Volume};

use crate::{config, id, member, passphrase::PassSource};

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check logs: the hash chain, the sequence, the checkpoint signatures
    /// and Merkle roots
    /// against the volume's registry, anchors, and that each log's
    /// segments follow one another. Names the first bad record and what
    /// happened to it; ends with one summary line. Exit 0 verified, 1
    /// tampering found.
    Verify {
        /// Log files [default: every log in BACKING/tresor.audit].
        logs: Vec<PathBuf>,
        #[command(flatten)]
        volume: VolumeArg,
        /// Checkpoint anchors kept outside the node: lines of
        /// `<mount-id> <seq> <hash>` (what audit_anchor_cmd= and syslog get).
        #[arg(long, value_name = "FILE")]
        anchors: Option<PathBuf>,
        /// Resume each log where the run that wrote FILE left off (its last
        /// verified checkpoint), reading only what was added since, and
        /// update FILE. Keep it where the storage operator cannot change it.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// One JSON object per log, then one with `"summary"`.
        #[arg(long)]
        json: bool,
        /// Fail unless each log's latest checkpoint carries a valid
        /// cosignature by this witness (its public key, `name+id+base64`,
        /// or a file holding it; see `tresor audit witness`). Repeatable.
        #[arg(long, value_name = "KEY")]
        witness: Vec<String>,
        /// Check an offline bundle (`tresor audit export`) instead of the
        /// volume's logs, with only the steward's public key (--steward).
        #[arg(long, value_name = "DIR", conflicts_with_all = ["logs", "state", "anchors"])]
        bundle: Option<PathBuf>,
        /// The steward's public key (tresor1…) that a --bundle must verify with.
        #[arg(long, value_name = "KEY", requires = "bundle")]
        steward: Option<String>,
    },
    /// Write an offline bundle for reviewers: every log with records in the
    /// time range (all its segments), their latest checkpoints, witness
    /// cosignatures and proofs, and the signed registry, listed in a
    /// manifest signed by you. `tresor audit verify --bundle OUT --steward
    /// KEY` checks it on any machine.
    Export(export::ExportArgs),
    /// Prove, for someone outside the volume, that a record is in a log
    /// (inclusion) or that a later checkpoint extends an earlier one
    /// (consistency); or check such a proof with only the steward's (or
    /// the log's) public key. Proofs are JSON (docs/AUDIT.md §4.6).
    Prove(prove::ProveArgs),
    /// Cosign, as an independent witness holding a key of its own, each
    /// log's latest checkpoint, after checking that it extends the one
    /// this witness cosigned before (kept in --state); refuse a rewritten
    /// history. The cosigned checkpoint is stored beside the log.
    Witness(prove::WitnessArgs),
    /// Show records of one or more logs merged by time, filtered.
    Show(Query),
    /// Everyone who accessed a file, when and how, denied attempts included.
    Who {
        /// Plaintext path relative to the volume root, or a path through a
        /// Tresor mount of this machine.
        path: String,
        /// Log files [default: every log in BACKING/tresor.audit].
        logs: Vec<PathBuf>,
        #[command(flatten)]
        volume: VolumeArg,
        #[command(flatten)]
        range: TimeRange,
        #[command(flatten)]
        format: Format,
        #[command(flatten)]
        who: Reader,
    },
    /// Who could read a file at a given time, from its create record and the
    /// grant, revoke and re-key history.
    Access {
        /// Plaintext path relative to the volume root.
        path: String,
        /// When (now, today, yesterday, -1h, -7d, a date, RFC 3339, unix seconds).
        #[arg(long, default_value = "now", allow_hyphen_values = true)]
        at: String,
        /// Log files [default: every log in BACKING/tresor.audit].
        logs: Vec<PathBuf>,
        #[command(flatten)]
        volume: VolumeArg,
        /// One JSON object, for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        who: Reader,
    },
    /// Summaries in the manner of aureport: records, failures and denials
    /// per member, file, operation, failure (errno) and denial.
    Report(Query),
    /// Remove the log segments sealed before a time: only segments that
    /// verify, end with a signed checkpoint, and start their log (or follow
    /// removed ones). The removal is recorded in a session log first.
    Prune {
        /// Remove segments whose last record is before this time.
        #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
        before: String,
        #[command(flatten)]
        volume: VolumeArg,
        /// Say what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        who: Reader,
    },
}

/// Which logs, which records, how shown, and who reads them.
#[derive(Args, Debug, Clone)]
pub struct Query {
    /// Log files [default: every log in BACKING/tresor.audit].
    logs: Vec<PathBuf>,
    #[command(flatten)]
    volume: VolumeArg,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    format: Format,
    #[command(flatten)]
    who: Reader,
}

#[derive(Args, Debug, Clone)]
pub struct VolumeArg {
    /// The volume's backing directory (its registry verifies the logs)
    /// [default: the directory above the logs' tresor.audit].
    #[arg(long, value_name = "BACKING")]
    volume: Option<PathBuf>,
}

/// A time range: records from `since` up to `until`.
#[derive(Args, Debug, Clone, Default)]
pub struct TimeRange {
    /// From this time (now, today, yesterday, -1h, -7d, a date, RFC 3339, unix seconds).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    since: Option<String>,
    /// Up to this time (same forms).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    until: Option<String>,
}

/// Which records: every condition given must hold.
#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only records by (or about) this member: name or id.
    #[arg(long)]
    member: Option<String>,
    /// Only records of processes running as this numeric user id.
    #[arg(long)]
    uid: Option<u32>,
    /// Only records for this plaintext path or below it.
    #[arg(long, value_name = "PREFIX")]
    path: Option<String>,
    /// Only these operations (open, release, create, rename, grant, ...):
    /// repeat or separate with commas.
    #[arg(long, value_delimiter = ',')]
    op: Vec<String>,
    /// From this time (now, today, yesterday, -1h, -7d, a date, RFC 3339, unix seconds).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    since: Option<String>,
    /// Up to this time (same forms).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    until: Option<String>,
    /// Only calls that failed (denied, I/O errors, ...).
    #[arg(long)]
    failed: bool,
    /// Only this process name (as /proc/PID/comm had it).
    #[arg(long, alias = "comm", value_name = "NAME")]
    process: Option<String>,
    /// Only records written on this host.
    #[arg(long)]
    host: Option<String>,
    /// Only records of this process id.
    #[arg(long)]
    pid: Option<u32>,
}

/// Output: a table by default.
#[derive(Args, Debug, Clone, Copy)]
pub struct Format {
    /// One JSON object per line (for jq).
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// CSV with a header line.
    #[arg(long)]
    csv: bool,
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
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = run_to(cmd, &mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    match result {
        // The reader went away (`tresor audit show | head`): not an error.
        Err(e) if e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe) => {
            Ok(ExitCode::SUCCESS)
        }
        other => other,
    }
}

fn run_to(cmd: AuditCommand, out: &mut dyn Write) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { bundle: Some(dir), steward, witness, json, .. } => {
            export::verify_bundle(&dir, steward.as_deref(), &witness, json, out)
        }
        AuditCommand::Verify { logs, volume, anchors, state, json, witness, .. } => {
            verify::verify(logs, volume, anchors, state, json, &witness, out)
        }
        AuditCommand::Export(a) => export::export(a, out),
        AuditCommand::Prove(a) => prove::prove(a, out),
        AuditCommand::Witness(a) => prove::witness(a, out),
        AuditCommand::Prune { before, volume, dry_run, who } => verify::prune(&before, &volume, dry_run, &who, out),
        AuditCommand::Show(Query { logs, volume, filter, format, who }) => {
            let (volume, logs) = resolve(&volume, logs)?;
            let filter = filter.build(&volume)?;
            let names = names(&volume);
            let show_checkpoints = filter.ops.contains(&Op::Checkpoint);
            let sealer = sealer(&volume, &who)?;
            let mut printer = Printer::new(format, &names, &logs, out);
            for e in read(&logs, &sealer)?.filter(|e| filter.matches(e)) {
                if e.record.op != Op::Checkpoint || show_checkpoints {
                    printer.print(&e)?;
                }
            }
            printer.finish()?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Who { path, logs, volume, range, format, who } => {
            let filter = Filter { since_ns: when(range.since)?, until_ns: when(range.until)?, ..Filter::default() };
            let (volume, logs) = resolve(&volume, logs)?;
            let names = names(&volume);
            let sealer = sealer(&volume, &who)?;
            let mut printer = Printer::new(format, &names, &logs, out);
            let path = volume_path(&path);
            for e in query::who(read(&logs, &sealer)?, &path).filter(|e| filter.matches(e)) {
                printer.print(&e)?;
            }
            printer.finish()?;
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Access { path, at, logs, volume, json, who } => {
            let at_ns = time::parse(&at).map_err(Usage)?;
            let (volume, logs) = resolve(&volume, logs)?;
            let names = names(&volume);
            let sealer = sealer(&volume, &who)?;
            let path = volume_path(&path);
            access(query::access(read(&logs, &sealer)?, &path, at_ns), &path, at_ns, &names, json, out)
        }
        AuditCommand::Report(Query { logs, volume, filter, format, who }) => {
            let (volume, logs) = resolve(&volume, logs)?;
            let filter = filter.build(&volume)?;
            let names = names(&volume);
            let sealer = sealer(&volume, &who)?;
            let mut tally = Tally::default();
            for e in read(&logs, &sealer)?.filter(|e| filter.matches(e)) {
                tally.add(&e, &names);
            }
            let rows = tally.rows();
            if format.csv {
                let mut csv = Csv::new(&mut *out);
                for r in &rows {
                    csv.serialize(r)?;
                }
                csv.flush()?;
            } else if format.json {
                for r in &rows {
                    json_line(out, r)?;
                }
            } else {
                let mut section = "";
                for r in &rows {
                    if r.section != section {
                        section = r.section;
                        writeln!(
                            out,
                            "{section:<8} {:<40} {:>9} {:>9} {:>9}  first .. last",
                            "", "records", "failed", "denied"
                        )?;
                    }
                    writeln!(
                        out,
                        "         {:<40} {:>9} {:>9} {:>9}  {} .. {}",
                        terminal(&r.key),
                        r.records,
                        r.failed,
                        r.denied,
                        &r.first[..19],
                        &r.last[..19]
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

impl FilterArgs {
    fn build(self, volume: &Volume) -> Result<Filter> {
        let mut ops = Vec::new();
        for op in self.op.iter().filter(|o| !o.is_empty()) {
            ops.push(Op::parse(op).ok_or_else(|| Usage(format!("unknown operation {op:?}")))?);
        }
        Ok(Filter {
            member: self.member.map(|m| member_id(volume, &m)).transpose()?.map(|m| m.0),
            uid: self.uid,
            path_prefix: self.path.as_deref().map(volume_path),
            ops,
            since_ns: when(self.since)?,
            until_ns: when(self.until)?,
            failed: self.failed,
            process: self.process,
            host: self.host,
            pid: self.pid,
        })
    }
}

fn when(t: Option<String>) -> Result<Option<u64>> {
    Ok(t.map(|t| time::parse(&t)).transpose().map_err(Usage)?)
}

/// One JSON object on a line, through serde.
fn json_line(out: &mut dyn Write, v: &impl Serialize) -> Result<()> {
    serde_json::to_writer(&mut *out, v)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Prints entries as table lines, JSON lines or CSV.
enum Printer<'a, 'o> {
    Csv(Box<Csv<&'o mut dyn Write>>, &'a Names, &'a [PathBuf]),
    Lines(&'o mut dyn Write, bool, &'a Names, &'a [PathBuf]),
}

impl<'a, 'o> Printer<'a, 'o> {
    fn new(format: Format, names: &'a Names, logs: &'a [PathBuf], out: &'o mut dyn Write) -> Self {
        if format.csv {
            Printer::Csv(Box::new(Csv::new(out)), names, logs)
        } else {
            Printer::Lines(out, format.json, names, logs)
        }
    }

    fn print(&mut self, e: &Entry) -> Result<()> {
        let (names, logs) = match self {
            Printer::Csv(_, n, l) | Printer::Lines(_, _, n, l) => (*n, *l),
        };
        let row = Row::new(e, names, logs.get(e.log).map(|p| p.display().to_string()));
        match self {
            Printer::Csv(csv, ..) => csv.write(&row)?,
            Printer::Lines(out, true, ..) => json_line(*out, &row)?,
            Printer::Lines(out, false, ..) => writeln!(out, "{}", row.table_line())?,
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        if let Printer::Csv(mut csv, ..) = self {
            csv.flush()?;
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct ReaderRow {
    id: String,
    name: Option<String>,
}

#[derive(Serialize)]
struct AccessAnswer<'a> {
    path: &'a str,
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    readers: Option<Vec<ReaderRow>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unknown: Option<String>,
}

fn access(answer: Access, path: &str, at_ns: u64, names: &Names, json: bool, out: &mut dyn Write) -> Result<ExitCode> {
    let at = time::format_ns(at_ns);
    let (readers, unknown) = match answer {
        Access::Readers(r) => (Some(r), None),
        Access::Unknown(why) => (None, Some(why)),
    };
    if json {
        let readers = readers
            .as_ref()
            .map(|r| r.iter().map(|m| ReaderRow { id: hex(m), name: names.get(m).cloned() }).collect::<Vec<_>>());
        json_line(out, &AccessAnswer { path, at, readers, unknown: unknown.clone() })?;
    } else if let Some(readers) = &readers {
        writeln!(out, "{} at {at}: {} reader(s)", terminal(path), readers.len())?;
        for m in readers {
            let name = names.get(m).map(|n| terminal(n)).unwrap_or_else(|| "(not a member now)".into());
            writeln!(out, "  {name:<24} {}", hex(m))?;
        }
    } else if let Some(why) = &unknown {
        writeln!(out, "{} at {at}: unknown: {}", terminal(path), terminal(why))?;
    }
    Ok(if unknown.is_some() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The volume and the logs: `--volume`, else inferred from the logs'
/// directory; the logs given, else every log of the volume.
fn resolve(volume: &VolumeArg, logs: Vec<PathBuf>) -> Result<(Volume, Vec<PathBuf>)> {
    let backing = backing(volume, logs.first())?;
    let registry = member::load(&backing)?;
    let logs = if logs.is_empty() { volume_logs(&backing, &registry)? } else { logs };
    Ok((registry, logs))
}

fn backing(volume: &VolumeArg, first_log: Option<&PathBuf>) -> Result<PathBuf> {
    match (&volume.volume, first_log) {
        (Some(b), _) => Ok(b.clone()),
        (None, Some(log)) => {
            let dir = log.parent().filter(|d| d.file_name().is_some_and(|n| n == tresor_audit::DEFAULT_DIR));
            match dir.and_then(Path::parent) {
                Some(b) if b.join(tresor_format::names::VOLUME_FILE).exists() => Ok(b.to_owned()),
                _ => {
                    Err(Usage(format!("cannot tell which volume {} belongs to: give --volume BACKING", log.display()))
                        .into())
                }
            }
        }
        (None, None) => Err(Usage("give LOG files or --volume BACKING".into()).into()),
    }
}

/// A path as a user may give it, as records hold it: relative to the
/// volume root, or an absolute path through a live Tresor mount of this
/// machine (made relative to the mount's root; the file need not exist).
fn volume_path(path: &str) -> String {
    let p = Path::new(path);
    match crate::live_mount::tresor_mount_of(p) {
        Ok(Some((mnt, _))) if p.is_absolute() => {
            query::normalize(&p.strip_prefix(&mnt).expect("inside the mount").to_string_lossy())
        }
        _ => query::normalize(path),
    }
}

/// Where the volume's logs are: the directory its audit policy names
/// (FORMAT.md §5.1), else `BACKING/tresor.audit`.
pub fn log_dir(backing: &Path, volume: &Volume) -> PathBuf {
    match &volume.audit.dir {
        Some(dir) => PathBuf::from(dir),
        None => backing.join(tresor_audit::DEFAULT_DIR),
    }
}

/// Every `*.log` in the volume's log directory, sorted by name.
fn volume_logs(backing: &Path, volume: &Volume) -> Result<Vec<PathBuf>> {
    let dir = log_dir(backing, volume);
    let mut all: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("no audit logs in {} (give LOG files)", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    all.sort();
    Ok(all)
}

/// Member names by id. Looking names up goes through here only, so former
/// members join when the registry keeps them.
/// Member ids to names, former members marked as such (they stay
/// searchable by name and id after their removal).
fn names(volume: &Volume) -> Names {
    let former = volume.retired().iter().map(|r| (r.id().0, format!("{} (former)", r.name)));
    volume.members().iter().map(|m| (m.id().0, m.name.clone())).chain(former).collect::<HashMap<_, _>>()
}

fn member_id(volume: &Volume, who: &str) -> Result<MemberId> {
    let current = volume.members().iter().map(|m| (m.name.as_str(), m.id()));
    let former = volume.retired().iter().map(|r| (r.name.as_str(), r.id()));
    let found: Vec<MemberId> =
        current.chain(former).filter(|(name, id)| *name == who || id.to_string() == who).map(|(_, id)| id).collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(Usage(format!("no member named or with id {who:?}")).into()),
        _ => Err(Usage(format!("{who:?} names several members: use the member id")).into()),
    }
}

/// The identity's key to the sealed paths.
fn unlock(volume: &Volume, who: &Reader) -> Result<(Identity, NameKey)> {
    let identity = id::unlock(&who.identity.clone().unwrap_or_else(config::default_identity), &who.pass)?;
    let name_key =
        volume.name_key(&identity).context("unwrapping the name key (paths in the log are sealed with it)")?;
    Ok((identity, name_key))
}

fn sealer(volume: &Volume, who: &Reader) -> Result<PathSealer> {
    let (_, name_key) = unlock(volume, who)?;
    Ok(PathSealer::new(&name_key, &volume.id))
}

/// All records of `logs` merged by time, paths opened, streamed: one
/// record per log in memory.
fn read<'k>(logs: &[PathBuf], sealer: &'k PathSealer) -> Result<Merge<Entries<'k, io::BufReader<std::fs::File>>>> {
    let mut all = Vec::with_capacity(logs.len());
    for (i, log) in logs.iter().enumerate() {
        let file = query::open_log(log).with_context(|| format!("reading {}", log.display()))?;
        all.push(Entries::new(file, Some(sealer), i).with_context(|| format!("reading {}", log.display()))?);
    }
    Ok(Merge::new(all))
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
        let dir = log_dir(backing, volume);
        let log = AuditLog::open_session(&dir, identity, volume, name_key, command)
            .with_context(|| format!("opening the audit log in {}", dir.display()))?;
        Ok(Session { log })
    }

    pub fn record(&self, event: Event) -> Result<()> {
        self.log.append(event.by_self()).context("writing the audit record")?;
        Ok(())
    }

    pub fn close(self) -> Result<()> {
        self.log.close().context("closing the audit log")?;
        Ok(())
    }
}
