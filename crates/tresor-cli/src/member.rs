//! `tresor member`: the volume's signed member registry.

use std::{path::PathBuf, sync::Arc};

use anyhow::{bail, Context, Result};
use clap::{Subcommand, ValueEnum};
use rand_core::OsRng;
use tresor_audit::{Event, Op};
use tresor_format::{Identity, PublicIdentity, Role};

use crate::{
    config, id,
    output::{self, terminal},
    passphrase::PassSource,
};

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
    /// Give a member a new identity (a lost passphrase, a key to rotate):
    /// every file their old key can read is wrapped for NEW-PUBLIC and no
    /// longer for the old key, every header the old key signed is signed
    /// again by you, then the registry lists NEW-PUBLIC under the same name,
    /// role and directory policies, and the old key as a former member.
    ///
    /// You must be a recipient of their files to wrap them (the root's
    /// default policy includes the steward since `tresor init` does so).
    /// Safe to interrupt and rerun: the registry changes last.
    Replace {
        /// The volume's backing directory.
        backing: PathBuf,
        /// The member: name or member id.
        member: String,
        /// Their new public identity (tresor1…, from `tresor id show`).
        new_public: PublicIdentity,
        /// Also give each of their files a new content key, so what the old
        /// key opened once opens nothing stored afterwards (for a key that
        /// may have leaked; slower: every block is encrypted again).
        #[arg(long)]
        rekey: bool,
        /// Replace them even if some files can be read only with the old key
        /// (named, and left as they are): with a lost passphrase those files
        /// are lost anyway.
        #[arg(long)]
        leave_unreadable: bool,
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

pub use crate::registry::{load, store};
use crate::registry::{load_any_age, member as find, steward_session, warn_if_single_steward};

/// Unlocks the identity of a steward command ([default: the user's own]).
fn unlock(identity: Option<PathBuf>, pass: &PassSource) -> Result<Arc<Identity>> {
    Ok(Arc::new(id::unlock(&identity.unwrap_or_else(config::default_identity), pass)?))
}

pub fn run(cmd: MemberCommand) -> Result<u8> {
    match cmd {
        MemberCommand::Add { backing, public, name, role, identity, pass } => {
            let mut volume = load(&backing)?;
            let steward = unlock(identity, &pass)?;
            let session = steward_session(&backing, &steward, &volume, "member add", Op::MemberAdd)?;
            let name_key = volume.name_key(&steward).context("unwrapping the name key")?;
            volume.add_member(&name_key, &public, &name, role.into(), &mut OsRng)?;
            volume.sign(&steward)?;
            store(&backing, &volume)?;
            session.record(Event::new(Op::MemberAdd).subject(public.id().0))?;
            session.close()?;
            eprintln!(
                "added {} ({}) as {}; registry generation {}",
                terminal(&name),
                public.id(),
                Role::from(role).as_str(),
                volume.generation
            );
            warn_if_single_steward(&volume);
            Ok(0)
        }
        MemberCommand::SetRole { backing, member, role, identity, pass } => {
            let mut volume = load(&backing)?;
            let id = find(&volume, &member)?.id();
            let steward = unlock(identity, &pass)?;
            let session = steward_session(&backing, &steward, &volume, "member set-role", Op::SetRole)?;
            volume.set_role(&id, role.into())?;
            volume.sign(&steward)?;
            store(&backing, &volume)?;
            session.record(Event::new(Op::SetRole).subject(id.0).intent(Role::from(role).as_str()))?;
            session.close()?;
            eprintln!("{id} is now {}; registry generation {}", Role::from(role).as_str(), volume.generation);
            warn_if_single_steward(&volume);
            Ok(0)
        }
        MemberCommand::Remove { backing, member, rekey, identity, pass } => {
            let volume = load(&backing)?;
            let id = find(&volume, &member)?.id();
            let steward = unlock(identity, &pass)?;
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
            let session = steward_session(&backing, &steward, &volume, "member remove", Op::MemberRemove)?;
            let removed = volume.remove_member(&id).expect("found above");
            volume.sign(&steward)?;
            store(&backing, &volume)?;
            session.record(Event::new(Op::MemberRemove).subject(id.0))?;
            session.close()?;
            eprintln!("removed {} ({id}); registry generation {}", terminal(&removed.name), volume.generation);
            warn_if_single_steward(&volume);
            if !rekey {
                eprintln!(
                    "note: files that named {} keep their key in the header until a steward revokes it; headers signed \
                     by members that name them are refused until re-keyed: `tresor revoke -r {} --from {id}`, or next \
                     time use `member remove --rekey`",
                    terminal(&removed.name),
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
            let steward = unlock(identity, &pass)?;
            let session = steward_session(&backing, &steward, &volume, "member renew", Op::Renew)?;
            if let Some(days) = valid_days {
                volume.set_validity(days.saturating_mul(86_400))?;
            }
            volume.sign(&steward)?;
            store(&backing, &volume)?;
            session.record(Event::new(Op::Renew))?;
            session.close()?;
            eprintln!(
                "registry renewed: generation {}, valid until {} ({} days)",
                volume.generation,
                output::rfc3339(volume.expires_at),
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
                let steward = unlock(identity, &pass)?;
                let session = steward_session(&backing, &steward, &volume, "member audit-policy", Op::PolicySet)?;
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
            let current = volume.members().iter().map(|m| output::MemberRow::new(&m.name, m.role, m.public, None));
            let former =
                volume.retired().iter().map(|r| output::MemberRow::new(&r.name, r.role, r.public, Some(r.retired_at)));
            for row in current.chain(former) {
                if json {
                    output::json_line(&row)?;
                } else {
                    let role = if row.former { format!("former {}", row.role) } else { row.role.into() };
                    println!("{:<24} {:<15} {}", terminal(&row.name), role, row.id);
                }
            }
            Ok(0)
        }
        MemberCommand::Replace { backing, member, new_public, rekey, leave_unreadable, identity, pass } => {
            replace(backing, &member, new_public, rekey, leave_unreadable, unlock(identity, &pass)?)
        }
    }
}

/// `tresor member replace`: the files first, then the registry (see the
/// command's help).
fn replace(
    backing: PathBuf,
    who: &str,
    new: PublicIdentity,
    rekey: bool,
    leave_unreadable: bool,
    steward: Arc<Identity>,
) -> Result<u8> {
    let volume = load(&backing)?;
    if volume.member(&new.id()).is_some() {
        let named = crate::registry::member_or_removed(&volume, who).ok();
        if named == Some(new.id()) || named.is_some_and(|id| volume.former(&id).is_some()) {
            eprintln!("{who} was already replaced by {}; nothing to do", new.id());
            return Ok(0);
        }
        bail!("{} is already a member of this volume: a replacement is a new identity", new.id());
    }
    let old = find(&volume, who)?;
    let (old_id, name, role) = (old.id(), old.name.clone(), old.role);
    if old_id == steward.id() {
        bail!("a steward cannot replace their own identity; another steward can");
    }
    let code = crate::access::replace_member_files(&backing, &steward, &old_id, &new, rekey)?;
    match code {
        crate::access::EXIT_INTERRUPTED => {
            eprintln!("interrupted; {} keeps the old identity: rerun the same command to continue", terminal(&name));
            return Ok(code);
        }
        crate::access::EXIT_SOME_FAILED if !leave_unreadable => {
            eprintln!(
                "tresor: {} keeps the old identity in the registry, because the files named above could not be                  wrapped for the new one; rerun once they are dealt with, or with --leave-unreadable if the old                  identity is lost (those files are then lost too)",
                terminal(&name)
            );
            return Ok(code);
        }
        _ => {}
    }
    // The registry last: the same name, role and policies, the new key.
    let mut volume = load(&backing)?;
    let session = steward_session(&backing, &steward, &volume, "member replace", Op::MemberAdd)?;
    let name_key = volume.name_key(&steward).context("unwrapping the name key")?;
    let policies: Vec<_> = volume
        .policies()
        .filter(|(_, d)| d.contains(&old_id))
        .map(|(iv, d)| (*iv, d.iter().map(|m| if *m == old_id { new.id() } else { *m }).collect::<Vec<_>>()))
        .collect();
    volume.remove_member(&old_id).context("the member left the registry meanwhile")?;
    volume.add_member(&name_key, &new, &name, role, &mut OsRng)?;
    for (iv, defaults) in policies {
        volume.set_policy(iv, &defaults)?;
    }
    volume.sign(&steward)?;
    store(&backing, &volume)?;
    let why = format!("member replace: {old_id} by {}", new.id());
    session.record(Event::new(Op::MemberAdd).subject(new.id().0).intent(why.clone()))?;
    session.record(Event::new(Op::MemberRemove).subject(old_id.0).intent(why))?;
    session.close()?;
    eprintln!(
        "{} ({}) now has the identity {}; the old one is a former member; registry generation {}",
        terminal(&name),
        role.as_str(),
        new.id(),
        volume.generation
    );
    warn_if_single_steward(&volume);
    Ok(code)
}
