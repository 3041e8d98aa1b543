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
use clap::{Args, Subcommand};
use tresor_audit::{Event, Op};
use tresor_format::{
    names::{classify, EntryKind},
    policy::check_header,
    Header, Identity, MemberId, NameCipher, Role, Volume,
};

use crate::{
    backing::Root,
    config, id,
    passphrase::PassSource,
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
    /// Files (or, with -r, directories): backing paths or paths in a live mount.
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
    /// Files (or, with -r, directories): backing paths or paths in a live mount.
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
    /// Files (or, with -r, directories): backing paths or paths in a live mount.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Include everything below directories (stale tresor.tmp.* leftovers of
    /// interrupted runs found on the way are removed).
    #[arg(short, long)]
    recursive: bool,
    #[command(flatten)]
    who: Who,
}

#[derive(Args, Debug)]
pub struct AclArgs {
    /// Files (or, with -r, directories): backing paths or paths in a live mount.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Include everything below directories (stale tresor.tmp.* leftovers of
    /// interrupted runs found on the way are removed).
    #[arg(short, long)]
    recursive: bool,
    /// One JSON object per file, for scripts.
    #[arg(long)]
    json: bool,
    /// Your identity, to show plaintext names (needed for a path in a mount).
    #[arg(long, short, value_name = "FILE", env = "TRESOR_IDENTITY")]
    identity: Option<PathBuf>,
    #[command(flatten)]
    pass: PassSource,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Set the default recipients of files created below DIR (down to the
    /// next directory with a policy of its own). Member-signed headers below
    /// DIR that the new policy would no longer allow are re-signed by you.
    Set {
        /// The directory: a backing path or a path in a live mount.
        dir: PathBuf,
        /// Members (names or ids) every new file below DIR is readable by,
        /// besides its creator. Give none to say "nobody by default".
        #[arg(long = "default", num_args = 0.., value_name = "MEMBER")]
        defaults: Vec<String>,
        /// Remove DIR's policy instead: its files follow the nearest ancestor's.
        #[arg(long, conflicts_with = "defaults")]
        unset: bool,
        #[command(flatten)]
        who: Who,
    },
    /// Show DIR's own policy and the policy in force for it.
    Show {
        /// The directory: a backing path or a path in a live mount.
        dir: PathBuf,
        /// One JSON object, for scripts.
        #[arg(long)]
        json: bool,
        /// Your identity, to show plaintext names (needed for a path in a mount).
        #[arg(long, short, value_name = "FILE", env = "TRESOR_IDENTITY")]
        identity: Option<PathBuf>,
        #[command(flatten)]
        pass: PassSource,
    },
}

/// Appends an access change to the command's audit log in the volume
/// (`tresor.audit/`, docs/AUDIT.md), after the change is made; the log was
/// opened before any change, so a volume whose log cannot be written is
/// not changed at all. `path` is the plaintext path shown to the user.
fn audit(vol: &Vol, event: Event, path: &str) -> Result<()> {
    let Some(session) = &vol.audit else { return Ok(()) };
    let path = if path == "/" { "" } else { path };
    session.record(event.path(path.as_bytes()))
}

/// Closes the audit logs of a run (each ends with its session-end record
/// and a signed checkpoint).
fn close_audit(vols: Vec<resolve::Opened>) -> Result<()> {
    for (vol, _) in vols {
        if let Some(session) = vol.audit {
            session.close()?;
        }
    }
    Ok(())
}

fn steward(who: &Who) -> Result<Arc<Identity>> {
    Ok(Arc::new(id::unlock(&who.identity.clone().unwrap_or_else(config::default_identity), &who.pass)?))
}

/// Loads and verifies the volume at `root`; with `session`, also opens the
/// command's audit log there.
fn open_vol(
    root: &Path,
    me: Option<&Identity>,
    session: Option<(&Arc<Identity>, &str)>,
) -> Result<(Vol, Option<NameCipher>)> {
    let volume = crate::member::load(root)?;
    let name_key = match me {
        Some(me) => Some(volume.name_key(me).context("unwrapping the volume name key")?),
        None => None,
    };
    let audit = match (session, &name_key) {
        (Some((id, command)), Some(key)) => Some(crate::audit::Session::open(root, id.clone(), &volume, key, command)?),
        _ => None,
    };
    let names = name_key.as_ref().map(NameCipher::new);
    let place = name_key.as_ref().map(tresor_format::PlaceKey::new);
    let backing = crate::backing::Root::open(root)?;
    Ok((Vol { root: root.to_owned(), backing, volume, audit, place }, names))
}

fn member_of(volume: &Volume, who: &str) -> Result<MemberId> {
    let found: Vec<_> = volume.members().iter().filter(|m| m.name == who || m.id().to_string() == who).collect();
    match found.as_slice() {
        [one] => Ok(one.id()),
        [] => bail!("no member named or with id {who:?} (see `tresor member list`)"),
        _ => bail!("{who:?} names several members: use the member id"),
    }
}

fn name_of(volume: &Volume, id: &MemberId) -> String {
    volume.member(id).map(|m| m.name.clone()).unwrap_or_else(|| format!("<removed {id}>"))
}

/// Progress on stderr: an indicatif bar when stderr is a terminal, else
/// nothing (scripts get the per-file lines and the summary).
pub struct Progress {
    bar: indicatif::ProgressBar,
    /// Ciphertext bytes re-keyed so far (shown for big files).
    bytes: std::cell::Cell<u64>,
    current: std::cell::RefCell<String>,
    /// Files changed and files failed, for runs that tally with `tally`.
    changed: std::cell::Cell<u64>,
    failed: std::cell::Cell<u64>,
}

impl Progress {
    pub fn new(what: &str) -> Progress {
        let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {prefix} {pos} files, {msg} [{elapsed}]")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_prefix(what.to_owned());
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        Progress {
            bar,
            bytes: Default::default(),
            current: Default::default(),
            changed: Default::default(),
            failed: Default::default(),
        }
    }

    pub fn file(&self, shown: &str) {
        self.bar.inc(1);
        self.bar.set_message(shown.to_owned());
        *self.current.borrow_mut() = shown.to_owned();
    }

    /// `n` more bytes of the current file re-keyed.
    pub fn add_bytes(&self, n: u64) {
        self.bytes.set(self.bytes.get() + n);
        if !self.bar.is_hidden() {
            let mib = self.bytes.get() as f64 / (1 << 20) as f64;
            self.bar.set_message(format!("{} ({mib:.0} MiB re-keyed)", self.current.borrow()));
        }
    }

    /// Works on one file: `work` says whether it changed it; an error is
    /// printed with the file's name and counted, and the run goes on.
    pub fn tally(&self, shown: &str, work: impl FnOnce() -> Result<bool>) {
        self.file(shown);
        match work() {
            Ok(changed) => self.changed.set(self.changed.get() + u64::from(changed)),
            Err(e) => {
                self.failed.set(self.failed.get() + 1);
                self.println(format!("tresor: {shown}: {e:#}"));
            }
        }
    }

    /// Files changed and failed so far (see `tally`).
    pub fn counts(&self) -> (u64, u64) {
        (self.changed.get(), self.failed.get())
    }

    pub fn println(&self, line: String) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Every regular file at or below `target`, with its display path: a file
/// is itself; a directory needs `recursive`. Stale temporaries in the
/// directories walked are removed on the way.
fn files(
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

fn walk(
    root: &Root,
    names: Option<&NameCipher>,
    dir: &Path,
    shown: &str,
    each: &mut dyn FnMut(&Path, &str),
) -> Result<()> {
    rewrite::clean_stale_tmp(root, dir);
    let iv = resolve::read_iv(root, dir)?;
    let mut entries: Vec<_> = fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let entry = e.file_name().to_string_lossy().into_owned();
        if classify(&entry) == EntryKind::Reserved {
            continue;
        }
        let plain = names
            .and_then(|n| resolve::plain_name(n, root, dir, &iv, &entry))
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

/// Resolves all PATHs (one volume per run) and calls `each` on every file.
fn for_each_file(
    paths: &[PathBuf],
    recursive: bool,
    me: Option<&Identity>,
    session: Option<&Arc<Identity>>,
    what: &str,
    mut each: impl FnMut(&Vol, &Path, &str, &Progress) -> Result<Outcome>,
) -> Result<u8> {
    let mut vols = Vec::new();
    let mut targets = Vec::new();
    for p in paths {
        targets.push(resolve::resolve(p, &mut |root| open_vol(root, me, session.map(|s| (s, what))), &mut vols)?);
    }
    let progress = Progress::new(what);
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
                    progress.println(format!("tresor: {shown}: {e:#}"));
                }
            }
        })?;
    }
    progress.finish();
    if !what.is_empty() {
        eprintln!("{what}: {done} changed, {skipped} already so, {failed} failed");
    }
    close_audit(vols)?;
    if rewrite::interrupted() {
        eprintln!("{what}: interrupted; every file is either done or unchanged: rerun the same command to continue");
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
    for_each_file(&args.paths, args.recursive, Some(&me), Some(&me), "grant", |vol, path, shown, _| {
        let to = member_of(&vol.volume, &args.to)?;
        let member = vol.volume.member(&to).expect("found");
        if member.role == Role::Auditor {
            bail!("{} is an auditor: auditors hold no content keys", member.name);
        }
        require_steward(&vol.volume, &me)?;
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

fn require_steward(volume: &Volume, me: &Identity) -> Result<()> {
    match volume.member(&me.id()).map(|m| m.role) {
        Some(Role::Steward) => Ok(()),
        _ => bail!(
            "only a steward may change who can read a file ({} is not a steward of this volume); ask a steward",
            me.name()
        ),
    }
}

/// Revokes `from` on one file: re-key (default) or remove the stanza.
/// Signs the header of `path` again as `me`, recipients unchanged, if
/// `wanted` holds for it under the lock; records it in the audit log.
fn resign(vol: &Vol, me: &Identity, path: &Path, shown: &str, wanted: impl Fn(&Header) -> bool) -> Result<bool> {
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

/// A member by name or id; for a revoke also the id of someone already
/// removed from the registry, whose keys can still be in headers.
fn member_or_removed(volume: &Volume, who: &str) -> Result<MemberId> {
    member_of(volume, who).or_else(|e| {
        let bytes: Option<Vec<u8>> = (who.len() == 32 && who.bytes().all(|c| c.is_ascii_hexdigit()))
            .then(|| (0..16).map(|i| u8::from_str_radix(&who[2 * i..2 * i + 2], 16).ok()).collect())
            .flatten();
        match bytes {
            Some(b) => Ok(MemberId(b.try_into().expect("16 bytes"))),
            None => Err(e),
        }
    })
}

pub fn revoke(args: RevokeArgs) -> Result<u8> {
    let me = steward(&args.who)?;
    for_each_file(&args.paths, args.recursive, Some(&me), Some(&me), "revoke", |vol, path, shown, progress| {
        require_steward(&vol.volume, &me)?;
        let from = member_or_removed(&vol.volume, &args.from)?;
        revoke_file(vol, &me, path, shown, &from, !args.no_rekey, progress)
    })
}

pub fn rekey(args: RekeyArgs) -> Result<u8> {
    let me = steward(&args.who)?;
    for_each_file(&args.paths, args.recursive, Some(&me), Some(&me), "rekey", |vol, path, shown, progress| {
        require_steward(&vol.volume, &me)?;
        let locked = rewrite::lock_file(&vol.backing, path, &vol.volume, 0)?;
        let recipients = rewrite::publics(&vol.volume, locked.header.recipients());
        let after = recipients.iter().map(|p| p.id().0).collect();
        rewrite::rekey(locked, &vol.backing, path, &vol.volume, &me, &recipients, |n| progress.add_bytes(n))?;
        audit(vol, Event::new(Op::Rekey).rekeyed(true).recipients(after), shown)?;
        Ok(Outcome::Done)
    })
}

fn optional_identity(identity: &Option<PathBuf>, pass: &PassSource) -> Result<Option<Identity>> {
    match identity {
        Some(p) => Ok(Some(id::unlock(p, pass)?)),
        None => Ok(None),
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

pub fn acl(args: AclArgs) -> Result<u8> {
    let me = optional_identity(&args.identity, &args.pass)?;
    let json = args.json;
    for_each_file(&args.paths, args.recursive, me.as_ref(), None, "", |vol, path, shown, _| {
        let volume = &vol.volume;
        let mut bytes = vec![0u8; volume.params.header_len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&vol.backing.file(path, libc::O_RDONLY)?.0, &mut bytes, 0)
            .with_context(|| format!("{shown}: reading the header"))?;
        let header = Header::open(&bytes, volume).with_context(|| format!("{shown}: file header"))?;
        let in_force = resolve::policy_in_force(vol, path.parent().expect("a file has a directory"))?;
        let violation = check_header(volume, &header, in_force.as_ref().map(|(_, d)| d.as_slice())).err();
        let readers: Vec<(String, &str, String)> = header
            .recipients()
            .map(|r| {
                let role = volume.member(&r).map(|m| m.role.as_str()).unwrap_or("removed");
                (name_of(volume, &r), role, r.to_string())
            })
            .collect();
        let writer = header.writer();
        if json {
            let readers: Vec<String> = readers
                .iter()
                .map(|(n, role, id)| format!("{{\"name\":{},\"role\":\"{role}\",\"id\":\"{id}\"}}", json_str(n)))
                .collect();
            println!(
                "{{\"path\":{},\"readers\":[{}],\"signed_by\":{{\"name\":{},\"id\":\"{writer}\"}},\"signed_at\":{},\"violation\":{}}}",
                json_str(shown),
                readers.join(","),
                json_str(&name_of(volume, &writer)),
                header.signed_at(),
                violation.as_ref().map(|v| json_str(&v.to_string())).unwrap_or_else(|| "null".into())
            );
        } else {
            println!("{shown}");
            for (n, role, id) in &readers {
                println!("  reader  {n:<20} {role:<8} {id}");
            }
            let at = tresor_audit::time::format_ns(header.signed_at().saturating_mul(1_000_000_000));
            println!("  signed by {} at {}", name_of(volume, &writer), at.replace(".000000000Z", "Z"));
            if let Some(v) = &violation {
                println!("  VIOLATION: {v}");
            }
        }
        Ok(Outcome::Done)
    })
}

/// `tresor member remove --rekey`: revoke (and re-key) the member on every
/// file they can read, and re-sign every header they wrote, before the
/// registry drops them (so a rerun after an interruption finds them still
/// listed and continues).
pub fn remove_member_files(backing: &Path, me: &Arc<Identity>, gone: &MemberId) -> Result<u8> {
    let (vol, names) = open_vol(backing, Some(me), Some((me, "member remove --rekey")))?;
    require_steward(&vol.volume, me)?;
    let target = Target { backing: backing.to_owned(), shown: "/".into() };
    let progress = Progress::new("member remove");
    rewrite::catch_interrupt();
    files(&vol.backing, names.as_ref(), &target, true, &mut |path, shown| {
        if rewrite::interrupted() {
            return;
        }
        progress.tally(shown, || match revoke_file(&vol, me, path, shown, gone, true, &progress)? {
            Outcome::Done => Ok(true),
            Outcome::Skipped => resign(&vol, me, path, shown, |h| h.writer() == *gone),
        });
    })?;
    progress.finish();
    let (done, failed) = progress.counts();
    close_audit(vec![(vol, names)])?;
    eprintln!("member remove: {done} files changed, {failed} failed");
    if rewrite::interrupted() {
        return Ok(EXIT_INTERRUPTED);
    }
    Ok(if failed > 0 { EXIT_SOME_FAILED } else { 0 })
}

pub fn policy(cmd: PolicyCommand) -> Result<u8> {
    match cmd {
        PolicyCommand::Set { dir, defaults, unset, who } => {
            let me = steward(&who)?;
            let mut vols = Vec::new();
            let (_, target) =
                resolve::resolve(&dir, &mut |root| open_vol(root, Some(&me), Some((&me, "policy set"))), &mut vols)?;
            let (mut vol, names) = vols.pop().expect("resolved");
            require_steward(&vol.volume, &me)?;
            if !target.backing.is_dir() {
                bail!("{} is not a directory", target.shown);
            }
            let iv = vol.dir_iv(&target.backing)?;
            let ids = defaults.iter().map(|d| member_of(&vol.volume, d)).collect::<Result<Vec<_>>>()?;
            if unset {
                vol.volume.remove_policy(&iv);
            } else {
                vol.volume.set_policy(iv, &ids)?;
            }
            vol.volume.sign(&me)?;
            crate::member::store(&vol.root, &vol.volume)?;
            let event = Event::new(Op::PolicySet).recipients(ids.iter().map(|i| i.0).collect());
            audit(&vol, if unset { event.intent("unset") } else { event }, &target.shown)?;
            eprintln!(
                "policy of {} {}; registry generation {}",
                target.shown,
                if unset {
                    "removed".to_owned()
                } else {
                    format!("set: {}", ids.iter().map(|i| name_of(&vol.volume, i)).collect::<Vec<_>>().join(", "))
                },
                vol.volume.generation
            );
            // Headers below that the new policy no longer allows: re-sign.
            let progress = Progress::new("re-signing");
            walk(&vol.backing, names.as_ref(), &target.backing, &target.shown, &mut |path, shown| {
                progress.tally(shown, || {
                    let in_force = resolve::policy_in_force(&vol, path.parent().expect("in a dir"))?;
                    let mut bytes = vec![0u8; vol.volume.params.header_len as usize];
                    std::os::unix::fs::FileExt::read_exact_at(
                        &vol.backing.file(path, libc::O_RDONLY)?.0,
                        &mut bytes,
                        0,
                    )?;
                    let header = Header::open(&bytes, &vol.volume)?;
                    let breaks_rule = |h: &Header| {
                        check_header(&vol.volume, h, in_force.as_ref().map(|(_, d)| d.as_slice())).is_err()
                    };
                    // Checked again under the lock: the header may have changed.
                    Ok(breaks_rule(&header) && resign(&vol, &me, path, shown, breaks_rule)?)
                });
            })?;
            progress.finish();
            let (done, failed) = progress.counts();
            close_audit(vec![(vol, names)])?;
            if done + failed > 0 {
                eprintln!("re-signed {done} headers the new policy would not allow, {failed} failed");
            }
            Ok(if failed > 0 { EXIT_SOME_FAILED } else { 0 })
        }
        PolicyCommand::Show { dir, json, identity, pass } => {
            let me = optional_identity(&identity, &pass)?;
            let mut vols = Vec::new();
            let (_, target) = resolve::resolve(&dir, &mut |root| open_vol(root, me.as_ref(), None), &mut vols)?;
            let (vol, names) = vols.pop().expect("resolved");
            let iv = vol.dir_iv(&target.backing)?;
            let own = vol.volume.policy(&iv).map(<[_]>::to_vec);
            let in_force = resolve::policy_in_force(&vol, &target.backing)?;
            let list = |ids: &[MemberId]| -> Vec<String> { ids.iter().map(|i| name_of(&vol.volume, i)).collect() };
            let from = in_force.as_ref().map(|(d, _)| match names.as_ref() {
                Some(n) => resolve::show(n, &vol.backing, d),
                None => d.strip_prefix(&vol.root).unwrap_or(d).display().to_string(),
            });
            if json {
                let arr = |ids: &[MemberId]| {
                    let items: Vec<String> = ids
                        .iter()
                        .map(|i| format!("{{\"name\":{},\"id\":\"{i}\"}}", json_str(&name_of(&vol.volume, i))))
                        .collect();
                    format!("[{}]", items.join(","))
                };
                println!(
                    "{{\"dir\":{},\"own\":{},\"in_force\":{},\"in_force_from\":{},\"generation\":{}}}",
                    json_str(&target.shown),
                    own.as_deref().map(arr).unwrap_or_else(|| "null".into()),
                    in_force.as_ref().map(|(_, d)| arr(d)).unwrap_or_else(|| "null".into()),
                    from.as_deref().map(json_str).unwrap_or_else(|| "null".into()),
                    vol.volume.generation
                );
            } else {
                match &own {
                    Some(d) => println!("{}: default recipients {}", target.shown, list(d).join(", ")),
                    None => println!("{}: no policy of its own", target.shown),
                }
                match (&in_force, &from) {
                    (Some((_, d)), Some(f)) => println!("in force: {} (set on {f})", list(d).join(", ")),
                    _ => println!("in force: none (new files are readable by their creator only)"),
                }
            }
            Ok(0)
        }
    }
}
