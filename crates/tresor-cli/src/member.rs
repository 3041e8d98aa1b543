//! `tresor member`: the volume's signed member registry.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use rand_core::OsRng;
use tresor_audit::{Event, Op};
use tresor_format::{names, PublicIdentity, Role, Volume};

use crate::{audit, config, id, passphrase::PassSource};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    /// Manages members, grants and revokes access, sets directory policies.
    Steward,
    /// Reads the files granted to them; creates files.
    Member,
    /// Verifies audit logs; holds no content keys.
    Auditor,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Steward => Role::Steward,
            RoleArg::Member => Role::Member,
            RoleArg::Auditor => Role::Auditor,
        }
    }
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per run
pub enum MemberCommand {
    /// Add a member by their public identity (`tresor id show` prints it).
    Add {
        /// The volume's backing directory.
        backing: PathBuf,
        /// Their public identity string, tresor1…
        public: PublicIdentity,
        /// Their name as the registry shows it (unique in the volume).
        #[arg(long)]
        name: String,
        /// Their role in the volume.
        #[arg(long, value_enum, default_value_t = RoleArg::Member)]
        role: RoleArg,
        /// Your identity file (a steward's) [default: ~/.config/tresor/identity].
        #[arg(long, short, value_name = "FILE", env = "TRESOR_IDENTITY")]
        identity: Option<PathBuf>,
        #[command(flatten)]
        pass: PassSource,
    },
    /// Change a member's role. A member made an auditor is dropped from every
    /// directory policy (auditors hold no content keys); the registry keeps
    /// at least one steward.
    SetRole {
        /// The volume's backing directory.
        backing: PathBuf,
        /// Member id or name.
        member: String,
        /// The new role.
        #[arg(value_enum)]
        role: RoleArg,
        /// Your identity file (a steward's) [default: ~/.config/tresor/identity].
        #[arg(long, short, value_name = "FILE", env = "TRESOR_IDENTITY")]
        identity: Option<PathBuf>,
        #[command(flatten)]
        pass: PassSource,
    },
    /// Remove a member from the registry. Without --rekey their keys stay in
    /// file headers until revoked (`tresor revoke -r`).
    Remove {
        /// The volume's backing directory.
        backing: PathBuf,
        /// Member id or name.
        member: String,
        /// First walk the whole volume: revoke the member and re-key every
        /// file they could read, and re-sign every header they wrote (safe to
        /// interrupt and rerun; the member is removed from the registry last).
        #[arg(long)]
        rekey: bool,
        /// Your identity file (a steward's) [default: ~/.config/tresor/identity].
        #[arg(long, short, value_name = "FILE", env = "TRESOR_IDENTITY")]
        identity: Option<PathBuf>,
        #[command(flatten)]
        pass: PassSource,
    },
    /// Sign the registry again without changing it, renewing its validity
    /// (every change renews it too). Mounts and commands refuse a registry
    /// past its expiry: that bounds how long a rolled-back copy can be
    /// passed off to a node that has not seen a newer one.
    Renew {
        /// The volume's backing directory.
        backing: PathBuf,
        /// Days the registry stays valid from now, for this and later
        /// signatures [default: as before].
        #[arg(long, value_name = "DAYS")]
        valid_days: Option<u64>,
        /// Your identity file (a steward's) [default: ~/.config/tresor/identity].
        #[arg(long, short, value_name = "FILE", env = "TRESOR_IDENTITY")]
        identity: Option<PathBuf>,
        #[command(flatten)]
        pass: PassSource,
    },
    /// Set what every mount's and command's audit log must be (signed in
    /// the registry; mounts refuse weaker options). Without options, shows
    /// the policy in force.
    AuditPolicy {
        /// The volume's backing directory.
        backing: PathBuf,
        /// Logging may not be turned off or moved (the default for new volumes).
        #[arg(long, conflicts_with = "optional")]
        required: bool,
        /// Members may mount with `-o audit=off` or another audit_dir
        /// (warned of and recorded).
        #[arg(long)]
        optional: bool,
        /// Every log must export its checkpoints (audit_anchor=syslog or
        /// audit_anchor_cmd=); `--anchors-required=false` lifts it.
        #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
        anchors_required: Option<bool>,
        /// The longest audit_sync_ms a mount may choose (0: no bound).
        #[arg(long, value_name = "MS")]
        max_sync_ms: Option<u32>,
        /// Logs go to this absolute directory, which every node mounts
        /// (`--dir ""`: the volume's own tresor.audit).
        #[arg(long, value_name = "DIR")]
        dir: Option<String>,
        /// Your identity file (a steward's) [default: ~/.config/tresor/identity].
        #[arg(long, short, value_name = "FILE", env = "TRESOR_IDENTITY")]
        identity: Option<PathBuf>,
        #[command(flatten)]
        pass: PassSource,
    },
    /// List members: name, role, member id.
    List {
        /// The volume's backing directory.
        backing: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

/// Reads and verifies the volume file against the pinned steward key: a
/// current registry (not expired), no older than this user has seen.
pub fn load(backing: &Path) -> Result<Volume> {
    let volume = load_any_age(backing)?;
    volume.check_current(now()).with_context(|| format!("verifying {}", backing.join(names::VOLUME_FILE).display()))?;
    Ok(volume)
}

/// `load` without the expiry check (for `member renew`, which is how an
/// expired registry becomes current again).
fn load_any_age(backing: &Path) -> Result<Volume> {
    let path = backing.join(names::VOLUME_FILE);
    let bytes = crate::backing::read_volume_file(backing)?;
    if Volume::version_of(&bytes).ok() == Some(tresor_format::volume::VOLUME_VERSION_MIGRATABLE) {
        bail!(
            "{} is volume format version {}; this Tresor reads version {}: a steward runs `tresor migrate {}` once, \
             with every mount of the volume stopped",
            path.display(),
            tresor_format::volume::VOLUME_VERSION_MIGRATABLE,
            tresor_format::volume::VOLUME_VERSION,
            backing.display()
        );
    }
    let pin = config::pin_for(&bytes, None)?;
    if let config::Pin::FirstUse(_) = pin {
        eprintln!("tresor: {}", pin.describe());
    }
    let volume = Volume::open(&bytes, &[pin.key().ed25519]).with_context(|| format!("verifying {}", path.display()))?;
    config::check_generation(&volume)?;
    Ok(volume)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Writes the volume file atomically: readers on any node see the old
/// registry or the new one, never a mix.
pub fn store(backing: &Path, volume: &Volume) -> Result<()> {
    crate::backing::write_volume_file(backing, &volume.to_bytes())?;
    config::check_generation(volume)?;
    Ok(())
}

fn find<'v>(volume: &'v Volume, who: &str) -> Result<&'v tresor_format::Member> {
    let found: Vec<_> = volume.members().iter().filter(|m| m.name == who || m.id().to_string() == who).collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => bail!("no member named or with id {who:?}"),
        _ => bail!("{who:?} names several members: use the member id"),
    }
}

pub fn run(cmd: MemberCommand) -> Result<u8> {
    match cmd {
        MemberCommand::Add { backing, public, name, role, identity, pass } => {
            let mut volume = load(&backing)?;
            let steward = Arc::new(id::unlock(&identity.unwrap_or_else(config::default_identity), &pass)?);
            let name_key = volume.name_key(&steward).context("unwrapping the name key")?;
            let session = audit::Session::open(&backing, steward.clone(), &volume, &name_key, "member add")?;
            volume.add_member(&name_key, &public, &name, role.into(), &mut OsRng)?;
            volume.sign(&steward)?;
            store(&backing, &volume)?;
            session.record(Event::new(Op::MemberAdd).subject(public.id().0))?;
            session.close()?;
            eprintln!(
                "added {name} ({}) as {}; registry generation {}",
                public.id(),
                Role::from(role).as_str(),
                volume.generation
            );
            Ok(0)
        }
        MemberCommand::SetRole { backing, member, role, identity, pass } => {
            let mut volume = load(&backing)?;
            let id = find(&volume, &member)?.id();
            let steward = Arc::new(id::unlock(&identity.unwrap_or_else(config::default_identity), &pass)?);
            let name_key = volume.name_key(&steward).context("unwrapping the name key")?;
            let session = audit::Session::open(&backing, steward.clone(), &volume, &name_key, "member set-role")?;
            volume.set_role(&id, role.into())?;
            volume.sign(&steward)?;
            store(&backing, &volume)?;
            session.record(Event::new(Op::SetRole).subject(id.0).intent(Role::from(role).as_str()))?;
            session.close()?;
            eprintln!("{id} is now {}; registry generation {}", Role::from(role).as_str(), volume.generation);
            Ok(0)
        }
        MemberCommand::Remove { backing, member, rekey, identity, pass } => {
            let volume = load(&backing)?;
            let id = find(&volume, &member)?.id();
            let steward = Arc::new(id::unlock(&identity.unwrap_or_else(config::default_identity), &pass)?);
            if id == steward.id() {
                bail!("a steward cannot remove themselves; another steward can");
            }
            // A file that could not be re-keyed (named above) does not keep
            // the member in: their access goes regardless, and the run ends
            // with exit code 3.
            let mut code = 0;
            if rekey {
                code = crate::access::remove_member_files(&backing, &steward, &id)?;
                if code == crate::access::EXIT_INTERRUPTED {
                    eprintln!("interrupted; the member stays in the registry: rerun the same command to continue");
                    return Ok(code);
                }
            }
            let mut volume = load(&backing)?;
            let name_key = volume.name_key(&steward).context("unwrapping the name key")?;
            let session = audit::Session::open(&backing, steward.clone(), &volume, &name_key, "member remove")?;
            let removed = volume.remove_member(&id).expect("found above");
            volume.sign(&steward)?;
            store(&backing, &volume)?;
            session.record(Event::new(Op::MemberRemove).subject(id.0))?;
            session.close()?;
            eprintln!("removed {} ({id}); registry generation {}", removed.name, volume.generation);
            if !rekey {
                eprintln!(
                    "note: files that named {} keep their key in the header until a steward revokes it; headers signed \
                     by members that name them are refused until re-keyed: `tresor revoke -r {} --from {id}`, or next \
                     time use `member remove --rekey`",
                    removed.name,
                    backing.display()
                );
            }
            if code != 0 {
                eprintln!(
                    "tresor: WARNING: some files were not re-keyed or re-signed (named above): the member is removed, \
                     but a content key they kept still opens those files' stored content until a steward re-keys them"
                );
            }
            Ok(code)
        }
        MemberCommand::Renew { backing, valid_days, identity, pass } => {
            let mut volume = load_any_age(&backing)?;
            let steward = Arc::new(id::unlock(&identity.unwrap_or_else(config::default_identity), &pass)?);
            let name_key = volume.name_key(&steward).context("unwrapping the name key")?;
            let session = audit::Session::open(&backing, steward.clone(), &volume, &name_key, "member renew")?;
            if let Some(days) = valid_days {
                volume.set_validity(days.saturating_mul(86_400))?;
            }
            volume.sign(&steward)?;
            store(&backing, &volume)?;
            session.record(Event::new(Op::Renew))?;
            session.close()?;
            eprintln!(
                "registry renewed: generation {}, valid until {} (Unix seconds; {} days)",
                volume.generation,
                volume.expires_at,
                volume.validity() / 86_400
            );
            Ok(0)
        }
        MemberCommand::AuditPolicy {
            backing,
            required,
            optional,
            anchors_required,
            max_sync_ms,
            dir,
            identity,
            pass,
        } => {
            let mut volume = load(&backing)?;
            let mut policy = volume.audit.clone();
            let change = required || optional || anchors_required.is_some() || max_sync_ms.is_some() || dir.is_some();
            if change {
                if required || optional {
                    policy.required = required;
                }
                if let Some(a) = anchors_required {
                    policy.anchors_required = a;
                }
                if let Some(ms) = max_sync_ms {
                    policy.max_sync_ms = ms;
                }
                if let Some(d) = dir {
                    policy.dir = (!d.is_empty()).then_some(d);
                }
                let steward = Arc::new(id::unlock(&identity.unwrap_or_else(config::default_identity), &pass)?);
                let name_key = volume.name_key(&steward).context("unwrapping the name key")?;
                let session =
                    audit::Session::open(&backing, steward.clone(), &volume, &name_key, "member audit-policy")?;
                volume.set_audit_policy(policy.clone())?;
                volume.sign(&steward)?;
                store(&backing, &volume)?;
                session.record(Event::new(Op::PolicySet).intent("audit"))?;
                session.close()?;
            }
            println!(
                "audit log: {}; anchors {}; audit_sync_ms at most {}; logs in {}",
                if policy.required { "required" } else { "optional" },
                if policy.anchors_required { "required" } else { "optional" },
                if policy.max_sync_ms == 0 { "any".to_owned() } else { policy.max_sync_ms.to_string() },
                policy.dir.as_deref().unwrap_or("the volume (tresor.audit)")
            );
            if change {
                eprintln!("registry generation {}", volume.generation);
            }
            Ok(0)
        }
        MemberCommand::List { backing, json } => {
            let volume = load(&backing)?;
            let current = volume.members().iter().map(|m| (m.name.as_str(), m.role, m.id(), m.public, None));
            let former =
                volume.retired().iter().map(|r| (r.name.as_str(), r.role, r.id(), r.public, Some(r.retired_at)));
            for (name, role, id, public, retired_at) in current.chain(former) {
                if json {
                    let row = serde_json::json!({
                        "name": name,
                        "role": role.as_str(),
                        "id": id.to_string(),
                        "public": public.to_string(),
                        "former": retired_at.is_some(),
                        "removed_at_generation": retired_at,
                    });
                    println!("{row}");
                } else {
                    let role =
                        if retired_at.is_some() { format!("former {}", role.as_str()) } else { role.as_str().into() };
                    println!("{:<24} {:<15} {}", name, role, id);
                }
            }
            Ok(0)
        }
    }
}
