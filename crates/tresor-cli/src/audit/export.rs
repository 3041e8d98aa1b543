//! `tresor audit export` and `tresor audit verify --bundle`: an offline
//! bundle for reviewers (`docs/AUDIT.md` §4.8). The bundle is a directory:
//!
//! ```text
//! OUT/MANIFEST.json      what is in it: every file with its size and SHA-256, the logs
//! OUT/MANIFEST.sig       base64 Ed25519 signature of MANIFEST.json by the exporting member
//! OUT/registry           the volume's signed registry (members, former members, keys)
//! OUT/logs/*.log         every segment of each log with records in the time range
//! OUT/logs/*.cosig       witnesses' cosigned checkpoints of those logs
//! OUT/checkpoints/*.note each log's latest Merkle checkpoint (C2SP signed note)
//! OUT/proofs/*.json      consistency proofs from each cosigned checkpoint to the latest
//! ```
//!
//! Checked on another machine with only the steward's public key: the
//! registry verifies with it, names the exporter (whose signature covers
//! the manifest) and the members whose keys sign the logs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use base64::prelude::{Engine, BASE64_STANDARD};
use clap::Args;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tresor_audit::chain::hex;
use tresor_audit::note::{self, Head};
use tresor_audit::proof::{self, Proof, Trust};
use tresor_audit::segments::{self, Summary};
use tresor_audit::verify::{signer, verify_reader, Report};
use tresor_format::{MemberId, PublicIdentity, Volume};

use super::prove::{rebuild, verified_logs};
use super::{backing, json_line, names, when, Reader, TimeRange, Usage, VolumeArg};

/// The `format` of a bundle's manifest.
const FORMAT: &str = "tresor-audit-bundle/1";

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The bundle directory to create (must not exist, or be empty).
    out: PathBuf,
    #[command(flatten)]
    volume: VolumeArg,
    /// The logs with records in this range (every segment of each).
    #[command(flatten)]
    range: TimeRange,
    /// The identity that signs the manifest (a member of the volume).
    #[command(flatten)]
    who: Reader,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: String,
    volume: String,
    /// The member who exported and signed the bundle.
    signer: String,
    since_ns: Option<String>,
    until_ns: Option<String>,
    files: Vec<FileEntry>,
    logs: Vec<LogEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    path: String,
    size: u64,
    sha256: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogEntry {
    mount_id: String,
    member: String,
    files: Vec<String>,
    /// The latest Merkle checkpoint: its tree size and note file.
    tree_size: Option<u64>,
    checkpoint: Option<String>,
}

struct Writer {
    dir: PathBuf,
    files: Vec<FileEntry>,
}

impl Writer {
    fn put(&mut self, rel: &str, data: &[u8]) -> Result<()> {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(data)?;
        f.sync_all()?;
        self.files.push(FileEntry {
            path: rel.to_owned(),
            size: data.len() as u64,
            sha256: hex(&Sha256::digest(data)),
        });
        Ok(())
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

pub fn export(a: ExportArgs, out: &mut dyn Write) -> Result<ExitCode> {
    let (since, until) = (when(a.range.since)?, when(a.range.until)?);
    let (registry, logs) = super::resolve(&a.volume, Vec::new())?;
    let backing = backing(&a.volume, None)?;
    let identity =
        crate::id::unlock(&a.who.identity.clone().unwrap_or_else(crate::config::default_identity), &a.who.pass)?;
    let me = identity.id();
    if signer(&registry, &me).is_none_or(|k| k != identity.public().ed25519) {
        return Err(Usage(format!("{me} is not a member of the volume: only a member signs a bundle")).into());
    }
    if std::fs::read_dir(&a.out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Usage(format!("{} exists and is not empty", a.out.display())).into());
    }
    let by_log = verified_logs(&registry, &logs, true)?;
    let mut w = Writer { dir: a.out.clone(), files: Vec::new() };
    w.put("registry", &crate::backing::read_volume_file(&backing)?)?;
    let mut entries = Vec::new();
    for (mid, files) in &by_log {
        let first = files.first().and_then(|(_, r)| r.first_time_ns).unwrap_or(0);
        let last = files.last().and_then(|(_, r)| r.last_time_ns).unwrap_or(u64::MAX);
        let holds_prunes = files.iter().any(|(_, r)| !r.prunes.is_empty());
        if !holds_prunes && (since.is_some_and(|s| last < s) || until.is_some_and(|u| first > u)) {
            continue;
        }
        let mut names = Vec::new();
        for (path, _) in files {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let rel = format!("logs/{}", file_name(path));
            w.put(&rel, &bytes)?;
            names.push(rel);
        }
        let latest = files.last().and_then(|(_, r)| r.merkle.clone());
        let mut entry = LogEntry {
            mount_id: hex(mid),
            member: hex(&files[0].1.member.expect("verified").0),
            files: names,
            tree_size: latest.as_ref().map(|h| h.size),
            checkpoint: None,
        };
        if let Some(head) = &latest {
            let rel = format!("checkpoints/{}.note", hex(mid));
            w.put(&rel, &head.note(mid))?;
            entry.checkpoint = Some(rel);
            let dir = files[0].0.parent().unwrap_or(Path::new("."));
            let prefix = format!("{}.", hex(mid));
            let mut cosigs: Vec<PathBuf> = std::fs::read_dir(dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| file_name(p).starts_with(&prefix) && file_name(p).ends_with(".cosig"))
                .collect();
            cosigs.sort();
            let tree = if cosigs.is_empty() { None } else { Some(rebuild(&registry, files, None)?) };
            for c in cosigs {
                let bytes = std::fs::read(&c)?;
                let key = ed25519_dalek::VerifyingKey::from_bytes(&head.key)?;
                let Ok(cosigned) = note::open_log_note(&bytes, mid, &key) else { continue };
                let proof = tree.as_ref().expect("built").consistency(cosigned.size, Some(head.size), None);
                w.put(&format!("logs/{}", file_name(&c)), &bytes)?;
                if let Ok(p) = proof {
                    let stem = file_name(&c).trim_end_matches(".cosig").to_owned();
                    w.put(&format!("proofs/{stem}.json"), &serde_json::to_vec(&p)?)?;
                }
            }
        }
        entries.push(entry);
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        volume: hex(&registry.id),
        signer: hex(&me.0),
        since_ns: since.map(|s| s.to_string()),
        until_ns: until.map(|s| s.to_string()),
        files: std::mem::take(&mut w.files),
        logs: entries,
    };
    let bytes = serde_json::to_vec_pretty(&manifest)?;
    let sig = tresor_format::audit::sign_bundle(&identity, &bytes);
    w.put("MANIFEST.json", &bytes)?;
    w.put("MANIFEST.sig", format!("{}\n", BASE64_STANDARD.encode(sig)).as_bytes())?;
    writeln!(out, "exported {} logs ({} files) to {}", manifest.logs.len(), manifest.files.len(), a.out.display())?;
    Ok(ExitCode::SUCCESS)
}

/// Every regular file below `dir`, relative to it; a symlink or other
/// special file is refused.
fn list(dir: &Path, rel: &str, out: &mut Vec<String>) -> Result<()> {
    for e in std::fs::read_dir(dir.join(rel)).with_context(|| format!("reading {}", dir.join(rel).display()))? {
        let e = e?;
        let name = format!("{rel}{}", e.file_name().to_string_lossy());
        let t = e.file_type()?;
        if t.is_dir() {
            list(dir, &format!("{name}/"), out)?;
        } else if t.is_file() {
            out.push(name);
        } else {
            bail!("{name}: not a regular file (a bundle holds files only)");
        }
    }
    Ok(())
}

/// `tresor audit verify --bundle DIR --steward KEY`.
pub fn verify_bundle(
    dir: &Path,
    steward: Option<&str>,
    witnesses: &[String],
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitCode> {
    let witnesses = witnesses.iter().map(|w| super::prove::witness_key(w)).collect::<Result<Vec<_>>>()?;
    let steward: PublicIdentity = steward
        .ok_or_else(|| Usage("--bundle needs --steward KEY: the steward's public key (tresor1…)".into()))?
        .parse()
        .map_err(|e| Usage(format!("--steward: {e}")))?;
    let mut failures: Vec<String> = Vec::new();
    let read = |rel: &str| std::fs::read(dir.join(rel)).with_context(|| format!("{rel}: missing from the bundle"));
    let registry = Volume::open(&read("registry")?, &[steward.ed25519])
        .map_err(|e| anyhow::anyhow!("registry: does not verify with the steward's key: {e}"))?;
    let manifest_bytes = read("MANIFEST.json")?;
    let sig: [u8; 64] = BASE64_STANDARD
        .decode(read("MANIFEST.sig")?.strip_suffix(b"\n").unwrap_or(b"not base64"))
        .ok()
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("MANIFEST.sig: not a base64 signature"))?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| anyhow::anyhow!("MANIFEST.json: not a bundle manifest: {e}"))?;
    let exporter = tresor_audit::chain::unhex::<16>(&manifest.signer).map(MemberId);
    let key = exporter.and_then(|m| signer(&registry, &m));
    if manifest.format != FORMAT
        || manifest.volume != hex(&registry.id)
        || key.is_none_or(|k| tresor_format::audit::verify_bundle(&k, &manifest_bytes, &sig).is_err())
    {
        bail!("MANIFEST.json: its signature does not verify with the key of a member of the registry: the manifest was changed");
    }
    // Logs first: a changed record is named precisely.
    let names = names(&registry);
    let mut reports: Vec<(PathBuf, Report)> = Vec::new();
    for l in &manifest.logs {
        for f in &l.files {
            let path = dir.join(f);
            let report = match tresor_audit::query::open_log(&path) {
                Ok(file) => verify_reader(file, &registry, &[]),
                Err(e) => {
                    failures.push(format!("{f}: cannot read: {e}"));
                    continue;
                }
            };
            reports.push((path, report));
        }
    }
    segments::link(&mut reports.iter_mut().map(|(_, r)| r).collect::<Vec<_>>());
    for (path, r) in &reports {
        if json {
            json_line(out, &serde_json::json!({"log": path.display().to_string(), "ok": r.ok()}))?;
        } else {
            super::verify::print_report(out, path, r, &names)?;
        }
        if let Some(p) = &r.problem {
            failures.push(format!("{}: {}: {}", path.display(), p.diagnosis.as_str(), p.detail));
        }
    }
    if !witnesses.is_empty() {
        let verified: Vec<(PathBuf, &Report)> = reports.iter().map(|(p, r)| (p.clone(), r)).collect();
        failures.extend(super::prove::check_witnesses(&verified, &witnesses));
    }
    // Then every file against the manifest, and nothing else in the bundle.
    let mut present = Vec::new();
    list(dir, "", &mut present)?;
    let listed: BTreeMap<&str, &FileEntry> = manifest.files.iter().map(|f| (f.path.as_str(), f)).collect();
    for p in &present {
        if !listed.contains_key(p.as_str()) && p != "MANIFEST.json" && p != "MANIFEST.sig" {
            failures.push(format!("{p}: not in the manifest (added to the bundle)"));
        }
    }
    for f in &manifest.files {
        match std::fs::read(dir.join(&f.path)) {
            Ok(b) if hex(&Sha256::digest(&b)) == f.sha256 && b.len() as u64 == f.size => {}
            Ok(_) => failures.push(format!("{}: changed (its SHA-256 is not the one in the signed manifest)", f.path)),
            Err(e) => failures.push(format!("{}: missing ({e})", f.path)),
        }
    }
    // The checkpoints are each log's latest, signed by its key.
    for l in &manifest.logs {
        let latest = reports
            .iter()
            .filter(|(_, r)| r.mount_id.map(|m| hex(&m)) == Some(l.mount_id.clone()))
            .max_by_key(|(_, r)| r.last_seq)
            .and_then(|(_, r)| r.merkle.clone());
        if let (Some(rel), Some(head)) = (&l.checkpoint, latest) {
            let mid = tresor_audit::chain::unhex::<16>(&l.mount_id).unwrap_or_default();
            let key = ed25519_dalek::VerifyingKey::from_bytes(&head.key)?;
            match std::fs::read(dir.join(rel))
                .map_err(|e| e.to_string())
                .and_then(|n| note::open_log_note(&n, &mid, &key))
            {
                Ok(Head { size, root, .. }) if size == head.size && root == head.root => {}
                Ok(_) => failures.push(format!("{rel}: not the log's latest checkpoint")),
                Err(why) => failures.push(format!("{rel}: {why}")),
            }
        }
    }
    for p in present.iter().filter(|p| p.starts_with("proofs/")) {
        let checked = std::fs::read(dir.join(p))
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Proof>(&b).map_err(|e| e.to_string()))
            .and_then(|mut proof| {
                proof.registry = Some(BASE64_STANDARD.encode(read("registry").map_err(|e| e.to_string())?));
                proof::check(&proof, Trust::Steward(&steward.ed25519))
            });
        if let Err(why) = checked {
            failures.push(format!("{p}: {why}"));
        }
    }
    let ok: Vec<&Report> = reports.iter().map(|(_, r)| r).collect();
    let summary = Summary::of(&ok);
    if json {
        json_line(
            out,
            &serde_json::json!({"summary": true, "ok": failures.is_empty(), "logs": manifest.logs.len(),
                "files": manifest.files.len(), "records": summary.records, "signer": manifest.signer, "failures": failures}),
        )?;
        return Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    for f in &failures {
        writeln!(out, "BUNDLE FAILS: {f}")?;
    }
    writeln!(
        out,
        "bundle: {} logs, {} files, {} records, exported by {}: {}",
        manifest.logs.len(),
        manifest.files.len(),
        summary.records,
        names.get(&exporter.expect("checked").0).map(String::as_str).unwrap_or("?"),
        if failures.is_empty() { "all verified with the steward's key" } else { "TAMPERED" }
    )?;
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
