//! `tresor grant`, `revoke`, `rekey`, `acl`, `policy`: who can read which
//! file. Every change is made by a steward, on the backing files, under the
//! daemons' own locks (see `rewrite`), so it is safe while mounts on any
//! node have the files open. Recursive runs are safe to interrupt and rerun:
//! each file changes atomically, and a file already in the wanted state is
//! skipped.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{bail, Context, Result};
use clap::Args;
use tresor_audit::{Event, Op};
use tresor_format::{
    names::{classify, EntryKind},
    Header, Identity, MemberId, NameCipher, PublicIdentity, Role,
};

use crate::{
    backing::Root,
    config, id,
    passphrase::PassSource,
    progress::{note, Progress},
    registry,
    resolve::{self, Target, Vol},
    rewrite::{self, now},
};

/// Exit code of a recursive run in which some files failed (each is named
/// on stderr); the others were done.
pub const EXIT_SOME_FAILED: u8 = 3;
/// Exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report).
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Args, Debug)]
pub struct Who {
    /// Your identity file (a steward's) [default: ~/.config/tresor/identity].
    #[arg(long, short, value_name = "FILE", env = "TRESOR_IDENTITY")]
    pub identity: Option<PathBuf>,
    #[command(flatten)]
    pub pass: PassSource,
}

#[derive(Args, Debug)]
pub struct GrantArgs {
    /// Files (or, with -r, directories): backing paths, plaintext paths below the backing directory, or paths in a live mount.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The member to give read access: name or member id.
    #[arg(long)]
    to: String,
    /// Include everything below directories (stale tresor.tmp.* leftovers of
    /// interrupted runs found on the way are removed).
    #[arg(short, long)]
    recursive: bool,
    #[command(flatten)]
    who: Who,
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// Files (or, with -r, directories): backing paths, plaintext paths below the backing directory, or paths in a live mount.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The member to take read access from: name or member id (also the id
    /// of someone already removed from the registry).
    #[arg(long)]
    from: String,
    /// Include everything below directories (stale tresor.tmp.* leftovers of
    /// interrupted runs found on the way are removed).
    #[arg(short, long)]
    recursive: bool,
    /// Only remove the member's key from the header. Without a re-key, a
    /// content key the member kept still opens the stored content.
    #[arg(long)]
    no_rekey: bool,
    #[command(flatten)]
    who: Who,
}

#[derive(Args, Debug)]
pub struct RekeyArgs {
    /// Files (or, with -r, directories): backing paths, plaintext paths below the backing directory, or paths in a live mount.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Include everything below directories (stale tresor.tmp.* leftovers of
    /// interrupted runs found on the way are removed).
    #[arg(short, long)]
    recursive: bool,
    #[command(flatten)]
    who: Who,
}

/// Appends an access change to the command's audit log in the volume
/// (`tresor.audit/`, docs/AUDIT.md), after the change is made; the log was
/// opened before any change, so a volume whose log cannot be written is
/// not changed at all. `path` is the plaintext path shown to the user.
pub(crate) fn audit(vol: &Vol, event: Event, path: &str) -> Result<()> {
    let Some(session) = &vol.audit else { return Ok(()) };
    let path = if path == "/" { "" } else { path };
    session.record(event.path(path.as_bytes()))
}

/// Closes the audit logs of a run (each ends with its session-end record
/// and a signed checkpoint).
pub(crate) fn close_audit(vols: Vec<resolve::Opened>) -> Result<()> {
    for (vol, _) in vols {
        if let Some(session) = vol.audit {
            session.close()?;
        }
    }
    Ok(())
}

pub(crate) fn steward(who: &Who) -> Result<Arc<Identity>> {
    Ok(Arc::new(id::unlock(&who.identity.clone().unwrap_or_else(config::default_identity), &who.pass)?))
}

/// A command only a steward may run: who runs it, its name (in the
/// audit log and in the refusal), and the audit op a refusal is logged as.
pub(crate) type StewardRun<'a> = (&'a Arc<Identity>, &'a str, Op);

/// Loads and verifies the volume at `root`; for a steward command, refuses
/// a non-steward at once (one message, the attempt audited as denied) and
/// opens the command's audit log there.
pub(crate) fn open_vol(root: &Path, me: Option<&Identity>, steward: Option<StewardRun<'_>>) -> Result<resolve::Opened> {
    let volume = registry::load(root)?;
    let audit = match steward {
        Some((id, command, op)) => Some(registry::steward_session(root, id, &volume, command, op)?),
        None => None,
    };
    let name_key = match me {
        Some(me) => Some(volume.name_key(me).context("unwrapping the volume name key")?),
        None => None,
    };
    let names = name_key.as_ref().map(NameCipher::new);
    let place = name_key.as_ref().map(tresor_format::PlaceKey::new);
    let backing = crate::backing::Root::open(root)?;
    Ok((Vol { root: root.to_owned(), backing, volume, audit, place }, names))
}

/// Every regular file at or below `target`, with its display path: a file
/// is itself; a directory needs `recursive`. Stale temporaries in the
/// directories walked are removed on the way.
pub(crate) fn files(
    root: &Root,
    names: Option<&NameCipher>,
    target: &Target,
    recursive: bool,
    each: &mut dyn FnMut(&Path, &str),
) -> Result<()> {
    let meta = fs::symlink_metadata(&target.backing).with_context(|| target.shown.clone())?;
    if meta.is_file() {
        each(&target.backing, &target.shown);
        return Ok(());
    }
    if !meta.is_dir() {
        bail!("{}: not a file or directory", target.shown);
    }
    if !recursive {
        bail!("{} is a directory: use -r to include everything below it", target.shown);
    }
    walk(root, names, &target.backing, &target.shown, each)
}

pub(crate) fn walk(
    root: &Root,
    names: Option<&NameCipher>,
    dir: &Path,
    shown: &str,
    each: &mut dyn FnMut(&Path, &str),
) -> Result<()> {
    rewrite::clean_stale_tmp(root, dir);
    // The IV only names entries: a walk without the name key skips it.
    let iv = names.map(|_| resolve::read_iv(root, dir)).transpose()?;
    let mut entries: Vec<_> = fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let entry = e.file_name().to_string_lossy().into_owned();
        if classify(&entry) == EntryKind::Reserved {
            continue;
        }
        let plain = names
            .zip(iv.as_ref())
            .and_then(|(n, iv)| resolve::plain_name(n, root, dir, iv, &entry))
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .unwrap_or_else(|| format!("<{entry}>"));
        let shown = if shown == "/" || shown.is_empty() { plain } else { format!("{shown}/{plain}") };
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(root, names, &e.path(), &shown, each)?;
        } else if ft.is_file() {
            each(&e.path(), &shown);
        }
    }
    Ok(())
}

/// The number of regular files at or below `target` (for the progress
/// total), by the same walk the run makes, without decrypting names.
fn count(root: &Root, target: &Target, recursive: bool) -> Result<u64> {
    let mut n = 0;
    files(root, None, target, recursive, &mut |_, _| n += 1)?;
    Ok(n)
}

/// Resolves all PATHs (one volume per run) and calls `each` on every file.
/// A steward command (`steward`) is refused before any file is touched if
/// the identity is not a steward of the volume.
pub(crate) fn for_each_file(
    paths: &[PathBuf],
    recursive: bool,
    me: Option<&Identity>,
    steward: Option<(&Arc<Identity>, Op)>,
    what: &str,
    mut each: impl FnMut(&Vol, &Path, &str, &Progress) -> Result<Outcome>,
) -> Result<u8> {
    let mut vols = Vec::new();
    let mut targets = Vec::new();
    for p in paths {
        let steward = steward.map(|(id, op)| (id, what, op));
        targets.push(resolve::resolve(p, &mut |root| open_vol(root, me, steward), &mut vols)?);
    }
    let total = match what.is_empty() {
        true => None,
        false => Some(targets.iter().map(|(at, t)| count(&vols[*at].0.backing, t, recursive)).sum::<Result<u64>>()?),
    };
    let progress = Progress::new(what, total);
    if !what.is_empty() {
        rewrite::catch_interrupt();
    }
    let (mut done, mut skipped, mut failed) = (0u64, 0u64, 0u64);
    for (at, target) in &targets {
        let (vol, names) = &vols[*at];
        files(&vol.backing, names.as_ref(), target, recursive, &mut |path, shown| {
            if rewrite::interrupted() {
                return;
            }
            progress.file(shown);
            match each(vol, path, shown, &progress) {
                Ok(Outcome::Done) => done += 1,
                Ok(Outcome::Skipped) => skipped += 1,
                Err(e) => {
                    failed += 1;
                    progress.println(format!("tresor: {}: {e:#}", crate::output::terminal(shown)));
                }
            }
        })?;
    }
    progress.finish();
    if !what.is_empty() {
        note(format!("{what}: {done} changed, {skipped} already so, {failed} failed"));
    }
    close_audit(vols)?;
    if rewrite::interrupted() {
        note(format!(
            "{what}: interrupted; every file is either done or unchanged: rerun the same command to continue"
        ));
        return Ok(EXIT_INTERRUPTED);
    }
    Ok(if failed > 0 { EXIT_SOME_FAILED } else { 0 })
}

pub enum Outcome {
    Done,
    Skipped,
}

pub fn grant(args: GrantArgs) -> Result<u8> {
    let me = steward(&args.who)?;
    for_each_file(&args.paths, args.recursive, Some(&me), Some((&me, Op::Grant)), "grant", |vol, path, shown, _| {
        let member = registry::member(&vol.volume, &args.to)?;
        if member.role == Role::Auditor {
            bail!("{} is an auditor: auditors hold no content keys", member.name);
        }
        let to = member.id();
        let locked = rewrite::lock_file(&vol.backing, path, &vol.volume, u64::from(vol.volume.params.header_len))?;
        if locked.header.is_recipient(&to) {
            return Ok(Outcome::Skipped);
        }
        let key = locked.header.file_key(&me).map_err(|_| {
            anyhow::anyhow!(
                "you are not a recipient of {shown}; ask a recipient steward or add yourself to the tree's default recipients"
            )
        })?;
        let mut header = locked.header.clone();
        header.add_recipient(&key, &member.public, &mut rand_core::OsRng)?;
        drop(key);
        header.sign(&me, now())?;
        rewrite::write_header(&locked, &header, path)?;
        let readers = header.recipients().map(|r| r.0).collect();
        audit(vol, Event::new(Op::Grant).subject(to.0).recipients(readers), shown)?;
        Ok(Outcome::Done)
    })
}

/// Signs the header of `path` again as `me`, recipients unchanged, if
/// `wanted` holds for it under the lock; records it in the audit log.
pub(crate) fn resign(
    vol: &Vol,
    me: &Identity,
    path: &Path,
    shown: &str,
    wanted: impl Fn(&Header) -> bool,
) -> Result<bool> {
    let locked = rewrite::lock_file(&vol.backing, path, &vol.volume, u64::from(vol.volume.params.header_len))?;
    if !wanted(&locked.header) {
        return Ok(false);
    }
    let mut header = locked.header.clone();
    header.sign(me, now())?;
    rewrite::write_header(&locked, &header, path)?;
    let readers = header.recipients().map(|r| r.0).collect();
    audit(vol, Event::new(Op::Resign).subject(locked.header.writer().0).recipients(readers), shown)?;
    Ok(true)
}

/// Revokes `from` on one file: re-key (default) or remove the stanza.
pub fn revoke_file(
    vol: &Vol,
    me: &Identity,
    path: &Path,
    shown: &str,
    from: &MemberId,
    rekey: bool,
    progress: &Progress,
) -> Result<Outcome> {
    let volume = &vol.volume;
    let len = if rekey { 0 } else { u64::from(volume.params.header_len) };
    let wait = rewrite::lock_timeout();
    let locked = rewrite::lock_file_within(&vol.backing, path, volume, len, Some(wait))?;
    if !locked.header.is_recipient(from) {
        return Ok(Outcome::Skipped);
    }
    // First, always: the member's stanza goes, in place, so nothing the
    // member can do to the file (a planted hard link, keeping it busy,
    // filling the disk) keeps their key in its header. A lock held longer
    // than a daemon's I/O ever takes does not stop it either (one pwrite of
    // the header; a reader racing it gets EIO once, never a wrong key).
    if !locked.held {
        progress.println(format!(
            "tresor: {shown}: its lock was held for more than {}s: removing the stanza without it",
            wait.as_secs()
        ));
    }
    let mut header = locked.header.clone();
    header.remove_recipient(from);
    header.sign(me, now())?;
    rewrite::write_header(&locked, &header, path)?;
    let after: Vec<[u8; 16]> = header.recipients().map(|r| r.0).collect();
    let event = || Event::new(Op::Revoke).subject(from.0).recipients(after.clone());
    if !rekey {
        audit(vol, event().rekeyed(false), shown)?;
        return Ok(Outcome::Done);
    }
    // Then the re-key, so that a content key the member kept opens nothing
    // stored afterwards.
    let recipients = rewrite::publics(volume, header.recipients());
    let held = locked.held;
    let locked = rewrite::Locked { file: locked.file, header, held };
    let rekeyed = if held {
        rewrite::rekey(locked, &vol.backing, path, volume, me, &recipients, |n| progress.add_bytes(n))
    } else {
        Err(anyhow::anyhow!("the file was kept busy: its lock was held for more than {}s", wait.as_secs()))
    };
    match rekeyed {
        Ok(()) => {
            audit(vol, event().rekeyed(true), shown)?;
            Ok(Outcome::Done)
        }
        Err(e) => {
            audit(vol, event().rekeyed(false).intent(format!("NOT re-keyed: {e:#}")), shown)?;
            Err(e.context(format!(
                "access removed (the member's key is gone from the header), but NOT RE-KEYED: a content key they \
                 kept still opens what is stored; fix the cause and run `tresor rekey {}`",
                path.display()
            )))
        }
    }
}

pub fn revoke(args: RevokeArgs) -> Result<u8> {
    let me = steward(&args.who)?;
    let steward = Some((&me, Op::Revoke));
    for_each_file(&args.paths, args.recursive, Some(&me), steward, "revoke", |vol, path, shown, progress| {
        let from = registry::member_or_removed(&vol.volume, &args.from)?;
        revoke_file(vol, &me, path, shown, &from, !args.no_rekey, progress)
    })
}

pub fn rekey(args: RekeyArgs) -> Result<u8> {
    let me = steward(&args.who)?;
    let steward = Some((&me, Op::Rekey));
    for_each_file(&args.paths, args.recursive, Some(&me), steward, "rekey", |vol, path, shown, progress| {
        let locked = rewrite::lock_file(&vol.backing, path, &vol.volume, 0)?;
        let recipients = rewrite::publics(&vol.volume, locked.header.recipients());
        let after = recipients.iter().map(|p| p.id().0).collect();
        rewrite::rekey(locked, &vol.backing, path, &vol.volume, &me, &recipients, |n| progress.add_bytes(n))?;
        audit(vol, Event::new(Op::Rekey).rekeyed(true).recipients(after), shown)?;
        Ok(Outcome::Done)
    })
}

/// Runs `work` on every file of the volume at `backing`, as steward `me`
/// (refused at once otherwise), with progress and Ctrl-C handling; a file
/// that fails is named and counted and the walk goes on. Returns the exit
/// code: 0, [`EXIT_SOME_FAILED`] or [`EXIT_INTERRUPTED`].
fn whole_volume(
    backing: &Path,
    me: &Arc<Identity>,
    command: &str,
    op: Op,
    mut work: impl FnMut(&Vol, &Path, &str, &Progress) -> Result<bool>,
) -> Result<u8> {
    let (vol, names) = open_vol(backing, Some(me), Some((me, command, op)))?;
    let target = Target { backing: backing.to_owned(), shown: "/".into() };
    let progress = Progress::new(command, Some(count(&vol.backing, &target, true)?));
    rewrite::catch_interrupt();
    files(&vol.backing, names.as_ref(), &target, true, &mut |path, shown| {
        if rewrite::interrupted() {
            return;
        }
        progress.tally(shown, || work(&vol, path, shown, &progress));
    })?;
    progress.finish();
    let (done, failed) = progress.counts();
    close_audit(vec![(vol, names)])?;
    note(format!("{command}: {done} files changed, {failed} failed"));
    if rewrite::interrupted() {
        return Ok(EXIT_INTERRUPTED);
    }
    Ok(if failed > 0 { EXIT_SOME_FAILED } else { 0 })
}

/// `tresor member remove --rekey`: revoke (and re-key) the member on every
/// file they can read, and re-sign every header they wrote, before the
/// registry drops them (so a rerun after an interruption finds them still
/// listed and continues).
pub fn remove_member_files(backing: &Path, me: &Arc<Identity>, gone: &MemberId) -> Result<u8> {
    whole_volume(
        backing,
        me,
        "member remove --rekey",
        Op::MemberRemove,
        |vol, path, shown, progress| match revoke_file(vol, me, path, shown, gone, true, progress)? {
            Outcome::Done => Ok(true),
            Outcome::Skipped => resign(vol, me, path, shown, |h| h.writer() == *gone),
        },
    )
}

/// `tresor member replace`: on every file `old` can read, wraps the
/// content key for `new` and removes `old`'s stanza (one header write,
/// signed by `me`; with `rekey`, the file then gets a new content key), and
/// signs again every header `old` wrote. Done before the registry swaps
/// the keys, so a rerun after an interruption finds `old` still listed and
/// continues. A file `me` cannot read keeps `old`'s stanza and fails.
pub fn replace_member_files(
    backing: &Path,
    me: &Arc<Identity>,
    old: &MemberId,
    new: &PublicIdentity,
    rekey: bool,
) -> Result<u8> {
    whole_volume(backing, me, "member replace", Op::Grant, |vol, path, shown, progress| {
        rewrap(vol, me, path, shown, (old, new), rekey, progress)
    })
}

fn rewrap(
    vol: &Vol,
    me: &Identity,
    path: &Path,
    shown: &str,
    (old, new): (&MemberId, &PublicIdentity),
    rekey: bool,
    progress: &Progress,
) -> Result<bool> {
    let volume = &vol.volume;
    let locked =
        rewrite::lock_file(&vol.backing, path, volume, if rekey { 0 } else { volume.params.header_len.into() })?;
    if !locked.header.is_recipient(old) {
        drop(locked); // resign takes the lock itself
        return resign(vol, me, path, shown, |h| h.writer() == *old);
    }
    let Ok(key) = locked.header.file_key(me) else {
        // Still signed again if the old key wrote it: once the old key
        // leaves the registry, its signature would lock out every reader.
        drop(locked);
        resign(vol, me, path, shown, |h| h.writer() == *old)?;
        bail!(
            "only the old key can read it (you are not a recipient), so it cannot be wrapped for the new one: the \
             member can copy it inside a mount with their old identity (a copy follows the directory's policy)"
        );
    };
    let mut header = locked.header.clone();
    // The old stanza out first: a header full of readers still takes the new one.
    header.remove_recipient(old);
    header.add_recipient(&key, new, &mut rand_core::OsRng)?;
    drop(key);
    header.sign(me, now())?;
    rewrite::write_header(&locked, &header, path)?;
    let readers: Vec<[u8; 16]> = header.recipients().map(|r| r.0).collect();
    let note = "member replace";
    audit(vol, Event::new(Op::Grant).subject(new.id().0).recipients(readers.clone()).intent(note), shown)?;
    audit(vol, Event::new(Op::Revoke).subject(old.0).recipients(readers.clone()).rekeyed(false).intent(note), shown)?;
    if rekey {
        // The new key is not in the registry yet: named here, not looked up.
        let mut recipients = rewrite::publics(volume, header.recipients());
        recipients.push(*new);
        let locked = rewrite::Locked { file: locked.file, header, held: locked.held };
        rewrite::rekey(locked, &vol.backing, path, volume, me, &recipients, |n| progress.add_bytes(n))?;
        audit(vol, Event::new(Op::Rekey).rekeyed(true).recipients(readers).intent(note), shown)?;
    }
    Ok(true)
}
