//! The member registry as every command uses it: load it verified against
//! this client's pin, store it, look members up by name or id, and let
//! only a steward change it. One place for each, so `member`, `grant`,
//! `policy` and the others agree on how a member is named and on what a
//! non-steward is told.

use std::{path::Path, sync::Arc};

use anyhow::{bail, Context, Result};
use tresor_audit::{Event, Op};
use tresor_format::{names, Identity, Member, MemberId, NameKey, Role, Volume};

use crate::{audit::Session, config};

/// Reads and verifies the volume file against the pinned steward key: a
/// current registry (not expired), no older than this user has seen.
pub fn load(backing: &Path) -> Result<Volume> {
    let volume = load_any_age(backing)?;
    volume
        .check_current(tresor_sys::now_secs())
        .with_context(|| format!("verifying {}", backing.join(names::VOLUME_FILE).display()))?;
    Ok(volume)
}

/// `load` without the expiry check (for `member renew`, which is how an
/// expired registry becomes current again).
pub fn load_any_age(backing: &Path) -> Result<Volume> {
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

/// Writes the volume file atomically: readers on any node see the old
/// registry or the new one, never a mix.
pub fn store(backing: &Path, volume: &Volume) -> Result<()> {
    crate::backing::write_volume_file(backing, &volume.to_bytes())?;
    config::check_generation(volume)?;
    Ok(())
}

/// The current member named `who` (a display name or a member id).
pub fn member<'v>(volume: &'v Volume, who: &str) -> Result<&'v Member> {
    let found: Vec<_> = volume.members().iter().filter(|m| m.name == who || m.id().to_string() == who).collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => bail!("no member named or with id {who:?} (see `tresor member list`)"),
        _ => bail!("{who:?} names several members: use the member id"),
    }
}

/// A member by name or id; also the id of someone no longer in the
/// registry, whose keys can still be in headers (for a revoke).
pub fn member_or_removed(volume: &Volume, who: &str) -> Result<MemberId> {
    match member(volume, who) {
        Ok(m) => Ok(m.id()),
        Err(e) => match volume.retired().iter().find(|r| r.name == who || r.id().to_string() == who) {
            Some(r) => Ok(r.id()),
            None => match hex::decode(who).ok().and_then(|b| <[u8; 16]>::try_from(b).ok()) {
                Some(b) => Ok(MemberId(b)),
                None => Err(e),
            },
        },
    }
}

/// How a member is shown: their name, or the id of someone removed.
pub fn name_of(volume: &Volume, id: &MemberId) -> String {
    match (volume.member(id), volume.former(id)) {
        (Some(m), _) => m.name.clone(),
        (None, Some(r)) => format!("{} (former)", r.name),
        (None, None) => format!("<removed {id}>"),
    }
}

/// Why a command that only a steward may run was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "only a steward may run `tresor {command}`: {who} is {role} of this volume, so nothing was changed; ask a \
     steward (`tresor info` lists them)"
)]
pub struct NotSteward {
    command: String,
    who: String,
    role: &'static str,
}

/// Opens the audit session of a steward command in `backing`, or refuses
/// the command at once, before anything is changed, if `me` is not a
/// steward: one message for the whole run, and the attempt recorded in the
/// volume's audit log as denied (EACCES) where `me` can write one (any
/// member holds the name key; a stranger cannot, and is refused unlogged).
pub fn steward_session(backing: &Path, me: &Arc<Identity>, volume: &Volume, command: &str, op: Op) -> Result<Session> {
    let role = volume.member(&me.id()).map(|m| m.role);
    let name_key = volume.name_key(me);
    if role == Some(Role::Steward) {
        let name_key = name_key.context("unwrapping the name key")?;
        return Session::open(backing, me.clone(), volume, &name_key, command);
    }
    let refused = NotSteward {
        command: command.to_owned(),
        who: crate::output::terminal(me.name()).into_owned(),
        role: match role {
            Some(Role::Member) => "a member",
            Some(Role::Auditor) => "an auditor",
            _ => "not a member",
        },
    };
    match name_key.map(|key| record_denied(backing, me, volume, &key, command, op)) {
        Ok(Err(e)) => bail!("{refused} (and the attempt could not be recorded in the audit log: {e:#})"),
        _ => Err(refused.into()),
    }
}

fn record_denied(
    backing: &Path,
    me: &Arc<Identity>,
    volume: &Volume,
    key: &NameKey,
    command: &str,
    op: Op,
) -> Result<()> {
    let session = Session::open(backing, me.clone(), volume, key, command)?;
    session.record(Event::new(op).result(libc::EACCES).intent("refused: not a steward"))?;
    session.close()
}

/// Warns when a volume has a single steward: losing their passphrase would
/// leave nobody able to change the registry or re-key (docs/OPERATIONS.md,
/// "Stewards and lost passphrases").
pub fn warn_if_single_steward(volume: &Volume) {
    let stewards: Vec<&Member> = volume.members().iter().filter(|m| m.role == Role::Steward).collect();
    if let [only] = stewards.as_slice() {
        eprintln!(
            "tresor: warning: {} is this volume's only steward: if that identity or its passphrase is lost, nobody \
             can add members, change access or re-key. Add a second steward (`tresor member add BACKING PUBLIC \
             --name NAME --role steward`) or an escrow identity kept offline; see docs/OPERATIONS.md",
            crate::output::terminal(&only.name)
        );
    }
}
