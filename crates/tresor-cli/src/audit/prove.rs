//! `tresor audit prove` and `tresor audit witness`: proofs and cosigned
//! checkpoints that a party outside the volume checks with one public key
//! (`docs/AUDIT.md` §4.6, §4.7).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use tresor_audit::chain::hex;
use tresor_audit::note::{Head, WitnessKey, WitnessVerifier};
use tresor_audit::proof::{self, Kind, LogTree, Proof, Trust};
use tresor_audit::query;
use tresor_audit::verify::Report;
use tresor_audit::witness;
use tresor_format::{PublicIdentity, Volume};

use super::verify::verify_all;
use super::{backing, json_line, resolve, Usage, VolumeArg};

#[derive(Args, Debug)]
pub struct ProveArgs {
    /// The log's files (all its segments) [default: the log of --mount
    /// among the volume's logs].
    logs: Vec<PathBuf>,
    #[command(flatten)]
    volume: VolumeArg,
    /// The log: its mount id (or the start of it).
    #[arg(long, value_name = "MOUNT_ID")]
    mount: Option<String>,
    /// Inclusion: prove that the record with this seq is in the log.
    #[arg(long, value_name = "SEQ", conflicts_with_all = ["from", "check"])]
    record: Option<u64>,
    /// Consistency: prove that a later checkpoint extends the checkpoint
    /// of this tree size.
    #[arg(long, value_name = "SIZE", conflicts_with = "check")]
    from: Option<u64>,
    /// The checkpoint to prove against, by tree size [default: the first
    /// that holds the record; for --from, the latest].
    #[arg(long, value_name = "SIZE")]
    to: Option<u64>,
    /// Check a proof file instead (with --steward or --key); exit 0 if it
    /// holds, 1 if not.
    #[arg(long, value_name = "PROOF")]
    check: Option<PathBuf>,
    /// Check with the steward's public key (tresor1…): the proof's
    /// registry must verify with it and name the log's member.
    #[arg(long, value_name = "KEY", requires = "check")]
    steward: Option<String>,
    /// Check with the log's own key (the proof's `log_key`, as published).
    #[arg(long, value_name = "VKEY", requires = "check", conflicts_with = "steward")]
    key: Option<String>,
    /// Write the proof to FILE [default: standard output].
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct WitnessArgs {
    /// Log files [default: every log in BACKING/tresor.audit].
    logs: Vec<PathBuf>,
    #[command(flatten)]
    volume: VolumeArg,
    /// The witness's private key file (made by --new NAME).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Make a new witness key named NAME in --key FILE (and FILE.pub),
    /// print its public key, and cosign nothing.
    #[arg(long, value_name = "NAME")]
    new: Option<String>,
    /// The witness's own directory: the checkpoint it last cosigned for
    /// each log. Keep it where nobody else can change it.
    #[arg(long, value_name = "DIR", required_unless_present = "new")]
    state: Option<PathBuf>,
}

/// Log files with their verify reports, by mount id, each mount's files in
/// seq order.
pub(super) type LogsByMount = BTreeMap<[u8; 16], Vec<(PathBuf, Report)>>;

/// The volume's logs, verified, grouped by mount id with their files in
/// seq order. A file that is no log of this volume at all is refused here;
/// whether each log verified is for the caller to judge ([`problem`]).
pub(super) fn logs_by_mount(registry: &Volume, logs: &[PathBuf], every_log: bool) -> Result<LogsByMount> {
    let reports = verify_all(logs, registry, &[], every_log, &Default::default());
    let mut by_log: LogsByMount = BTreeMap::new();
    for (log, r) in logs.iter().zip(reports) {
        let r = r.map_err(|why| anyhow::anyhow!("{}: {why}", log.display()))?;
        match (r.mount_id, &r.problem) {
            (Some(mid), _) => by_log.entry(mid).or_default().push((log.clone(), r)),
            (None, Some(p)) => bail!("{}: {}: {}", log.display(), p.diagnosis.as_str(), p.detail),
            (None, None) => bail!("{}: holds no records", log.display()),
        }
    }
    for files in by_log.values_mut() {
        files.sort_by_key(|(_, r)| r.first_seq);
    }
    Ok(by_log)
}

/// Why a log's files do not verify, if they do not.
pub(super) fn problem(files: &[(PathBuf, Report)]) -> Option<String> {
    files.iter().find_map(|(log, r)| {
        r.problem.as_ref().map(|p| {
            format!(
                "{} does not verify ({}: {}): see `tresor audit verify`",
                log.display(),
                p.diagnosis.as_str(),
                p.detail
            )
        })
    })
}

/// [`logs_by_mount`], refusing if any log does not verify.
pub(super) fn verified_logs(registry: &Volume, logs: &[PathBuf], every_log: bool) -> Result<LogsByMount> {
    let by_log = logs_by_mount(registry, logs, every_log)?;
    if let Some(why) = by_log.values().find_map(|f| problem(f)) {
        bail!("{why}");
    }
    Ok(by_log)
}

pub(super) fn rebuild(registry: &Volume, files: &[(PathBuf, Report)], want: Option<u64>) -> Result<LogTree> {
    let readers = files
        .iter()
        .map(|(p, _)| query::open_log(p).with_context(|| format!("reading {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    proof::rebuild(readers, registry, want).map_err(|e| anyhow::anyhow!(e))
}

pub fn prove(a: ProveArgs, out: &mut dyn Write) -> Result<ExitCode> {
    if let Some(path) = &a.check {
        return check(path, a.steward.as_deref(), a.key.as_deref(), out);
    }
    let every_log = a.logs.is_empty();
    let (registry, logs) = resolve(&a.volume, a.logs.clone())?;
    let by_log = logs_by_mount(&registry, &logs, every_log)?;
    let chosen: Vec<_> = by_log
        .iter()
        .filter(|(mid, _)| a.mount.as_ref().is_none_or(|m| hex(&mid[..]).starts_with(&m.to_ascii_lowercase())))
        .collect();
    let (_, files) = match chosen.as_slice() {
        [one] => *one,
        [] => return Err(Usage("no log of that mount id".into()).into()),
        _ => return Err(Usage(format!("{} logs: name one with --mount MOUNT_ID", chosen.len())).into()),
    };
    if let Some(why) = problem(files) {
        bail!("{why}: nothing is proven from a log that does not verify");
    }
    let registry_bytes = crate::backing::read_volume_file(&backing(&a.volume, logs.first())?)?;
    let tree = rebuild(&registry, files, a.record)?;
    let p = match (a.record, a.from) {
        (Some(seq), None) => tree.inclusion(seq, a.to, Some(&registry_bytes)),
        (None, Some(old)) => tree.consistency(old, a.to, Some(&registry_bytes)),
        _ => return Err(Usage("give --record SEQ (inclusion) or --from SIZE (consistency)".into()).into()),
    }
    .map_err(Usage)?;
    match &a.output {
        Some(path) => {
            let mut f = std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
            json_line(&mut f, &p)?;
        }
        None => json_line(out, &p)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn check(path: &Path, steward: Option<&str>, key: Option<&str>, out: &mut dyn Write) -> Result<ExitCode> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let p: Proof =
        serde_json::from_str(&text).map_err(|e| Usage(format!("{}: not a proof file: {e}", path.display())))?;
    let steward_key =
        steward.map(|s| s.parse::<PublicIdentity>()).transpose().map_err(|e| Usage(format!("--steward: {e}")))?;
    let trust = match (&steward_key, key) {
        (Some(s), None) => Trust::Steward(&s.ed25519),
        (None, Some(k)) => Trust::LogKey(k),
        _ => return Err(Usage("check with --steward KEY (tresor1…) or --key VKEY".into()).into()),
    };
    match proof::check(&p, trust) {
        Ok(c) => {
            let what = match (c.kind, &c.record, &c.old) {
                (Kind::Inclusion, Some(r), _) => format!(
                    "record seq {} ({} at {}) is in the log of mount {}",
                    r.seq,
                    r.op.as_str(),
                    tresor_audit::time::format_ns(r.time_ns),
                    p.mount_id
                ),
                (_, _, Some(old)) => format!(
                    "the log of mount {} at {} records extends its checkpoint of {} records",
                    p.mount_id, c.head.size, old.size
                ),
                _ => unreachable!("check returns the parts of its kind"),
            };
            writeln!(out, "OK: {what} (member {}; checkpoint of {} records, signed)", c.member, c.head.size)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            writeln!(out, "{}: PROOF FAILS: {why}", path.display())?;
            Ok(ExitCode::from(1))
        }
    }
}

pub fn witness(a: WitnessArgs, out: &mut dyn Write) -> Result<ExitCode> {
    if let Some(name) = &a.new {
        let key = WitnessKey::generate(name).map_err(Usage)?;
        if a.key.exists() {
            return Err(Usage(format!("{} exists: not overwritten", a.key.display())).into());
        }
        crate::config::write_private(&a.key, key.to_file().as_bytes())?;
        let public = a.key.with_extension("pub");
        std::fs::write(&public, format!("{}\n", key.vkey()))
            .with_context(|| format!("writing {}", public.display()))?;
        writeln!(out, "{}", key.vkey())?;
        return Ok(ExitCode::SUCCESS);
    }
    let text = std::fs::read_to_string(&a.key).with_context(|| format!("reading {}", a.key.display()))?;
    let key = WitnessKey::parse(&text).map_err(|e| Usage(format!("{}: {e}", a.key.display())))?;
    let state = a.state.expect("required by clap");
    std::fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
    let every_log = a.logs.is_empty();
    let (registry, logs) = resolve(&a.volume, a.logs)?;
    let by_log = logs_by_mount(&registry, &logs, every_log)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut refused = 0;
    for (mid, files) in &by_log {
        if let Some(why) = problem(files) {
            refused += 1;
            writeln!(out, "mount {}: REFUSED: {why}", hex(mid))?;
            continue;
        }
        let tree = match rebuild(&registry, files, None) {
            Ok(t) => t,
            Err(why) => {
                refused += 1;
                writeln!(out, "mount {}: REFUSED: {why}", hex(mid))?;
                continue;
            }
        };
        let state_file = state.join(witness::state_file(mid));
        let last = match std::fs::read(&state_file) {
            Ok(t) => Some(Head::parse(&t).map_err(|e| anyhow::anyhow!("{}: {e}", state_file.display()))?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", state_file.display())),
        };
        match witness::cosign(&tree, last.as_ref(), &key, now) {
            Ok((head, note)) => {
                let dir = files.last().expect("a log has files").0.parent().unwrap_or(Path::new(".")).to_owned();
                write_beside(&dir, &witness::cosignature_file(mid, key.name()), &note)?;
                let text = Head { origin: tresor_audit::note::origin(mid), size: head.size, root: head.root }.text();
                crate::config::write_private(&state_file, &text)?;
                writeln!(out, "mount {}: cosigned its checkpoint of {} records", hex(mid), head.size)?;
            }
            Err(why) => {
                refused += 1;
                writeln!(out, "mount {}: REFUSED: {why}", hex(mid))?;
            }
        }
    }
    Ok(if refused == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// Writes a cosigned checkpoint beside a log: created under a temporary
/// name (`O_EXCL | O_NOFOLLOW`) in the log directory, opened without
/// following symlinks, and renamed into place there.
fn write_beside(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let fd = tresor_audit::open_dir(dir).with_context(|| format!("opening {}", dir.display()))?;
    let tmp = CString::new(format!(".{name}.{}.tmp", std::process::id())).expect("no NUL");
    let target = CString::new(name).expect("no NUL");
    tresor_sys::replace_file(fd.as_fd(), &tmp, &target, data, 0o644)
        .with_context(|| format!("writing {}", dir.join(name).display()))
}

/// `verify --witness`: each log's latest checkpoint must carry a valid
/// cosignature by every witness given. Returns one line per failure.
pub(super) fn check_witnesses(reports: &[(PathBuf, &Report)], witnesses: &[WitnessVerifier]) -> Vec<String> {
    let mut latest: BTreeMap<[u8; 16], (&Path, &Report)> = BTreeMap::new();
    for (path, r) in reports {
        if let Some(mid) = r.mount_id {
            let e = latest.entry(mid).or_insert((path, r));
            if r.last_seq > e.1.last_seq {
                *e = (path, r);
            }
        }
    }
    let mut failures = Vec::new();
    for (mid, (path, r)) in latest {
        for w in witnesses {
            let file = path.parent().unwrap_or(Path::new(".")).join(witness::cosignature_file(&mid, w.name()));
            let result = match &r.merkle {
                None => Err("it has no Merkle checkpoint (a version 1 log)".to_owned()),
                Some(head) => std::fs::read(&file)
                    .map_err(|e| format!("no cosignature file {} ({e})", file.display()))
                    .and_then(|note| witness::check_cosigned(&note, &mid, head, w)),
            };
            if let Err(why) = result {
                failures.push(format!(
                    "mount {}: the latest checkpoint carries no valid cosignature by witness {}: {why}",
                    hex(&mid),
                    w.name()
                ));
            }
        }
    }
    failures
}

/// A witness public key given on the command line, or a file holding one.
pub(super) fn witness_key(arg: &str) -> Result<WitnessVerifier> {
    let text = match std::fs::read_to_string(arg) {
        Ok(t) => t,
        Err(_) => arg.to_owned(),
    };
    WitnessVerifier::parse(&text).map_err(|e| Usage(format!("--witness {arg}: {e}")).into())
}
