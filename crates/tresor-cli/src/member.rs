//! `tresor member`: the volume's signed member registry.

use std::{
    fs,
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
    /// List members: name, role, member id.
    List {
        /// The volume's backing directory.
        backing: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

/// Reads and verifies the volume file against the pinned steward key.
pub fn load(backing: &Path) -> Result<Volume> {
    let path = backing.join(names::VOLUME_FILE);
    let bytes = fs::read(&path)
        .with_context(|| format!("{} is not a Tresor volume (no {})", backing.display(), names::VOLUME_FILE))?;
    let pin = config::pin_for(&bytes, None)?;
    if let config::Pin::FirstUse(_) = pin {
        eprintln!("tresor: {}", pin.describe());
    }
    let volume = Volume::open(&bytes, &[pin.key().ed25519]).with_context(|| format!("verifying {}", path.display()))?;
    config::check_generation(&volume)?;
    Ok(volume)
}

/// Writes the volume file atomically: readers on any node see the old
/// registry or the new one, never a mix.
pub fn store(backing: &Path, volume: &Volume) -> Result<()> {
    let path = backing.join(names::VOLUME_FILE);
    let tmp = backing.join(format!("tresor.tmp.volume.{}", std::process::id()));
    fs::write(&tmp, volume.to_bytes()).with_context(|| format!("writing {}", tmp.display()))?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
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
        MemberCommand::Remove { backing, member, rekey, identity, pass } => {
            let volume = load(&backing)?;
            let id = find(&volume, &member)?.id();
            let steward = Arc::new(id::unlock(&identity.unwrap_or_else(config::default_identity), &pass)?);
            if id == steward.id() {
                bail!("a steward cannot remove themselves; another steward can");
            }
            if rekey {
                let code = crate::access::remove_member_files(&backing, &steward, &id)?;
                if code == crate::access::EXIT_INTERRUPTED {
                    eprintln!("interrupted; the member stays in the registry: rerun the same command to continue");
                    return Ok(code);
                }
                if code != 0 {
                    bail!("some files could not be re-keyed (see above); the member stays in the registry: fix them and rerun");
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
            Ok(0)
        }
        MemberCommand::List { backing, json } => {
            let volume = load(&backing)?;
            for m in volume.members() {
                if json {
                    println!(
                        "{{\"name\":{:?},\"role\":\"{}\",\"id\":\"{}\",\"public\":\"{}\"}}",
                        m.name,
                        m.role.as_str(),
                        m.id(),
                        m.public
                    );
                } else {
                    println!("{:<24} {:<8} {}", m.name, m.role.as_str(), m.id());
                }
            }
            Ok(0)
        }
    }
}
