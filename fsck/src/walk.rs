//! The walk: every directory from the root, opened from its parent's
//! descriptor without following symlinks; its IV, then its entries in
//! chunks, each chunk checked in parallel.

use std::{
    collections::{HashMap, HashSet},
    ffi::{CStr, CString},
    fs::File,
    io::{self, Read},
    os::{
        fd::{AsFd, BorrowedFd, OwnedFd},
        unix::fs::OpenOptionsExt,
    },
    path::Path,
    sync::{atomic::Ordering, Mutex},
};

use rayon::prelude::*;
use tresor_format::{
    names::{self, classify, EntryKind},
    place::{parse_diriv, DIRIV_FILE_MAX},
    DirIv, EncryptedName, Error, MemberId, NameCipher, Place,
};

use crate::{file, repair, Class, Ctx, Finding, QUARANTINE_DIR, TMP_GRACE_SECS, TMP_PREFIX};

/// Entries read from a directory before they are checked in parallel.
const CHUNK: usize = 1024;
/// Bound on a long-name sidecar: a 255-byte name encrypts to 363 characters.
const NAME_SIDECAR_MAX: usize = 1024;
/// Bound on a long-target sidecar: a 4095-byte target encrypts to 5498.
const TARGET_SIDECAR_MAX: usize = 8192;

/// Files with several links: (device, inode) → (link count, backing names seen).
#[derive(Default)]
pub(crate) struct Links(HashMap<(u64, u64), (u64, Vec<String>)>);

/// Where an entry is: its backing path and, where every name on the way
/// decrypted, its plaintext path.
#[derive(Clone, Debug)]
pub(crate) struct Loc {
    pub backing: String,
    pub plain: Option<String>,
}

impl Loc {
    fn child(&self, entry: &str, plain_name: Option<&[u8]>) -> Loc {
        let backing = if self.backing.is_empty() { entry.to_owned() } else { format!("{}/{entry}", self.backing) };
        let plain = match (&self.plain, plain_name) {
            (Some(p), Some(n)) => {
                let n = String::from_utf8_lossy(n);
                Some(if p == "/" { format!("/{n}") } else { format!("{p}/{n}") })
            }
            _ => None,
        };
        Loc { backing, plain }
    }

    pub fn finding(&self, class: Class, message: impl Into<String>) -> Finding {
        Finding {
            class,
            path: self.plain.clone().unwrap_or_else(|| self.backing_shown()),
            backing: self.backing_shown(),
            message: message.into(),
            repaired: None,
        }
    }

    fn backing_shown(&self) -> String {
        if self.backing.is_empty() {
            ".".into()
        } else {
            self.backing.clone()
        }
    }
}

/// A directory being walked.
pub(crate) struct DirCtx<'v> {
    pub fd: OwnedFd,
    pub loc: Loc,
    /// Its IV, if it reads (checked at its place where the identity allows).
    pub iv: Option<DirIv>,
    /// The default recipients of the policy in force here.
    pub in_force: Option<&'v [MemberId]>,
}

/// Per directory: long-target sidecars present and used, to find orphans.
#[derive(Default)]
struct Sidecars {
    present: Vec<String>,
    used: HashSet<String>,
}

pub(crate) fn c(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub(crate) fn open_root(backing: &Path) -> io::Result<OwnedFd> {
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC).open(backing)?;
    Ok(OwnedFd::from(f))
}

/// Opens `name` in `dir` for reading: no symlink followed, never blocking
/// (a FIFO opens at once and is refused by type), as a `File`.
pub(crate) fn open_file(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<(File, libc::stat)> {
    let fd = tresor_sys::openat(dir, name, libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC, 0)?;
    let st = tresor_sys::fstat(fd.as_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::other(format!("not a regular file ({})", type_name(st.st_mode))));
    }
    Ok((File::from(fd), st))
}

/// Reads a small regular file whole, refusing one longer than `max`.
pub(crate) fn read_small(dir: BorrowedFd<'_>, name: &str, max: usize) -> io::Result<Vec<u8>> {
    let (f, _) = open_file(dir, &c(name)?)?;
    let mut out = Vec::new();
    f.take(max as u64 + 1).read_to_end(&mut out)?;
    if out.len() > max {
        return Err(io::Error::other(format!("longer than the format allows ({max} bytes)")));
    }
    Ok(out)
}

pub(crate) fn type_name(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "regular file",
        libc::S_IFDIR => "directory",
        libc::S_IFLNK => "symlink",
        libc::S_IFIFO => "FIFO",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        _ => "unknown type",
    }
}

pub(crate) fn run(ctx: &Ctx<'_>) -> io::Result<()> {
    let fd = tresor_sys::openat(ctx.root.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)?;
    let root = DirCtx { fd, loc: Loc { backing: String::new(), plain: Some("/".into()) }, iv: None, in_force: None };
    visit_dir(ctx, root, None)?;
    let links = std::mem::take(&mut *ctx.links.lock().unwrap());
    for (_, (nlink, mut seen)) in links.0 {
        seen.sort();
        if (seen.len() as u64) < nlink {
            let loc = Loc { backing: seen[0].clone(), plain: None };
            ctx.report(loc.finding(
                Class::HardLink,
                format!(
                    "{nlink} hard links, {} of them in the volume ({}): the others are outside it, where the file can \
                     be changed or read back without the volume",
                    seen.len(),
                    seen.join(", ")
                ),
            ));
        } else {
            ctx.count(|s| s.hard_linked += 1);
        }
    }
    Ok(())
}

/// Checks directory `d` (its IV at `place`, then every entry) and recurses.
/// `place` is `None` for the root, else the parent's IV (if it read) and
/// this directory's entry name.
fn visit_dir<'v>(ctx: &Ctx<'v>, mut d: DirCtx<'v>, place: Option<(Option<&DirIv>, &str)>) -> io::Result<()> {
    ctx.count(|s| s.directories += 1);
    ctx.progress.directories.fetch_add(1, Ordering::Relaxed);
    check_iv(ctx, &mut d, place);
    for (class, message) in crate::xattr::check(ctx, d.fd.as_fd()) {
        ctx.report(d.loc.finding(class, message));
    }
    if d.iv.is_none() {
        d.loc.plain = None;
    }
    let sidecars = Mutex::new(Sidecars::default());
    let mut stream = rustix::fs::Dir::read_from(d.fd.as_fd()).map_err(io::Error::from)?;
    let mut chunk: Vec<(Vec<u8>, u8)> = Vec::with_capacity(CHUNK);
    loop {
        let next = stream.read();
        let done = next.is_none();
        if let Some(ent) = next {
            let ent = ent.map_err(io::Error::from)?;
            let name = ent.file_name().to_bytes();
            if name != b"." && name != b".." {
                chunk.push((name.to_vec(), 0));
            }
        }
        if chunk.len() >= CHUNK || (done && !chunk.is_empty()) {
            chunk.par_iter().for_each(|(name, _)| visit_entry(ctx, &d, &sidecars, name));
            chunk.clear();
        }
        if done {
            break;
        }
    }
    let sidecars = sidecars.into_inner().unwrap();
    for name in sidecars.present.iter().filter(|n| !sidecars.used.contains(*n)) {
        // Gone meanwhile (quarantined with its symlink): not an orphan.
        if c(name).and_then(|n| tresor_sys::fstatat(d.fd.as_fd(), &n)).is_err() {
            continue;
        }
        orphan(ctx, &d, name, "no symlink in this directory points to this long-target sidecar");
    }
    Ok(())
}

fn check_iv<'v>(ctx: &Ctx<'v>, d: &mut DirCtx<'v>, place: Option<(Option<&DirIv>, &str)>) {
    let iv_loc = d.loc.child(names::DIRIV_FILE, None);
    let bytes = match read_small(d.fd.as_fd(), names::DIRIV_FILE, DIRIV_FILE_MAX) {
        Ok(b) => b,
        Err(e) => {
            ctx.report(iv_loc.finding(Class::DirIv, format!("cannot read the directory IV: {e}")));
            return;
        }
    };
    let iv = match parse_diriv(&bytes) {
        Ok(iv) => iv,
        Err(e) => {
            ctx.report(iv_loc.finding(Class::DirIv, e.to_string()));
            return;
        }
    };
    d.iv = Some(iv);
    let Some(keys) = &ctx.keys else {
        d.in_force = ctx.volume.policy(&iv).or(d.in_force);
        return;
    };
    let at = match place {
        None => Some(Place::Root),
        Some((Some(parent), entry)) => Some(Place::In { parent, entry }),
        // The parent's IV did not read: this one's place cannot be checked.
        Some((None, _)) => None,
    };
    match at.map(|p| keys.place.open_diriv(&bytes, p)) {
        Some(Ok(_)) => d.in_force = ctx.volume.policy(&iv).or(d.in_force),
        Some(Err(e)) => ctx.report(iv_loc.finding(
            Class::DirIvPlace,
            format!(
                "{e}: the IV belongs to another place (copied from another directory, or the directory was moved in \
                 the backing tree); mounts refuse this directory and its policy does not apply"
            ),
        )),
        None => {}
    }
}

fn orphan(ctx: &Ctx<'_>, d: &DirCtx<'_>, name: &str, why: &str) {
    let loc = d.loc.child(name, None);
    let mut f = loc.finding(Class::OrphanSidecar, why);
    if ctx.opts.repair {
        f.repaired = repair::quarantine(ctx, d.fd.as_fd(), name, &loc.backing, None);
    }
    ctx.report(f);
}

fn visit_entry<'v>(ctx: &Ctx<'v>, d: &DirCtx<'v>, sidecars: &Mutex<Sidecars>, raw: &[u8]) {
    let Ok(name) = std::str::from_utf8(raw) else {
        let loc = d.loc.child(&String::from_utf8_lossy(raw), None);
        ctx.report(loc.finding(Class::UnexpectedEntry, "a name that is not UTF-8: no Tresor entry has one"));
        return;
    };
    match classify(name) {
        EntryKind::Reserved => reserved(ctx, d, sidecars, name),
        kind => {
            let (plain, problems) = decrypt_name(ctx, d, name, kind);
            let loc = d.loc.child(name, plain.as_deref());
            if let Err(e) = visit_named(ctx, d, sidecars, name, &loc, problems) {
                ctx.report(loc.finding(Class::Unreadable, e.to_string()));
            }
        }
    }
}

/// The plaintext name of entry `name`, and what is wrong with it.
fn decrypt_name(ctx: &Ctx<'_>, d: &DirCtx<'_>, name: &str, kind: EntryKind) -> (Option<Vec<u8>>, Vec<(Class, String)>) {
    let mut problems = Vec::new();
    let encrypted = if kind == EntryKind::Long {
        let sidecar = names::long_name_sidecar(name);
        let full = read_small(d.fd.as_fd(), &sidecar, NAME_SIDECAR_MAX)
            .map_err(|e| format!("long-name sidecar {sidecar}: {e}"))
            .and_then(|b| String::from_utf8(b).map_err(|_| format!("long-name sidecar {sidecar} is not text")))
            .and_then(|full| {
                NameCipher::check_long_name(name, &full).map(|()| full).map_err(|e| format!("{sidecar}: {e}"))
            });
        match full {
            Ok(full) => Some(EncryptedName::Long { entry: name.to_owned(), full }),
            Err(e) => {
                problems.push((Class::LongNameSidecar, e));
                None
            }
        }
    } else {
        Some(EncryptedName::Short(name.to_owned()))
    };
    let (Some(keys), Some(iv), Some(enc)) = (&ctx.keys, &d.iv, encrypted) else { return (None, problems) };
    let text = match &enc {
        EncryptedName::Short(s) => s.as_str(),
        EncryptedName::Long { full, .. } => full.as_str(),
    };
    match keys.names.decrypt_name(iv, text) {
        Ok(plain) => (Some(plain), problems),
        Err(e) => {
            problems.push((Class::Name, e.to_string()));
            (None, problems)
        }
    }
}

fn visit_named<'v>(
    ctx: &Ctx<'v>,
    d: &DirCtx<'v>,
    sidecars: &Mutex<Sidecars>,
    name: &str,
    loc: &Loc,
    mut problems: Vec<(Class, String)>,
) -> io::Result<()> {
    let cname = c(name)?;
    let st = tresor_sys::fstatat(d.fd.as_fd(), &cname)?;
    let long_sidecar = (classify(name) == EntryKind::Long).then(|| names::long_name_sidecar(name));
    let mut extra_sidecar = long_sidecar.clone();
    match st.st_mode & libc::S_IFMT {
        libc::S_IFDIR => {
            report_all(ctx, loc, problems, None);
            let fd = tresor_sys::openat(
                d.fd.as_fd(),
                &cname,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
                0,
            )?;
            let child = DirCtx { fd, loc: loc.clone(), iv: None, in_force: d.in_force };
            return visit_dir(ctx, child, Some((d.iv.as_ref(), name)));
        }
        libc::S_IFLNK => {
            ctx.count(|s| s.symlinks += 1);
            let (target_sidecar, p) = symlink(ctx, d, &cname);
            problems.extend(p);
            if let Some(t) = target_sidecar {
                sidecars.lock().unwrap().used.insert(t.clone());
                if extra_sidecar.is_none() {
                    extra_sidecar = Some(t);
                }
            }
        }
        libc::S_IFREG => {
            ctx.progress.files.fetch_add(1, Ordering::Relaxed);
            problems.extend(file::check(ctx, d, &cname, loc, &st));
        }
        other => {
            ctx.count(|s| s.special_files += 1);
            problems.push((
                Class::PlantedSpecial,
                format!(
                    "a backing {}: Tresor stores special files as records, so this was planted in the backing tree \
                     (mounts refuse it)",
                    type_name(other)
                ),
            ));
        }
    }
    let damaged = problems.iter().any(|(c, _)| repair::quarantines(*c));
    let repaired = if ctx.opts.repair && damaged {
        repair::quarantine(ctx, d.fd.as_fd(), name, &loc.backing, extra_sidecar.as_deref())
    } else {
        None
    };
    report_all(ctx, loc, problems, repaired);
    Ok(())
}

fn report_all(ctx: &Ctx<'_>, loc: &Loc, problems: Vec<(Class, String)>, repaired: Option<String>) {
    for (class, message) in problems {
        let mut f = loc.finding(class, message);
        if repair::quarantines(class) {
            f.repaired.clone_from(&repaired);
        }
        ctx.report(f);
    }
}

/// Checks a backing symlink's target: its sidecar's hash (when long) and,
/// with the name key, that it decrypts. Returns the sidecar it uses.
fn symlink(ctx: &Ctx<'_>, d: &DirCtx<'_>, cname: &CStr) -> (Option<String>, Vec<(Class, String)>) {
    let mut problems = Vec::new();
    let stored = match tresor_sys::readlinkat(d.fd.as_fd(), cname).map(String::from_utf8) {
        Ok(Ok(s)) => s,
        Ok(Err(_)) => return (None, vec![(Class::SymlinkTarget, "the stored target is not text".into())]),
        Err(e) => return (None, vec![(Class::Unreadable, format!("reading the symlink: {e}"))]),
    };
    let mut sidecar = None;
    let encoded = if stored.starts_with(names::LONGTARGET_PREFIX) {
        sidecar = Some(stored.clone());
        let full = read_small(d.fd.as_fd(), &stored, TARGET_SIDECAR_MAX)
            .map_err(|e| format!("long-target sidecar {stored}: {e}"))
            .and_then(|b| String::from_utf8(b).map_err(|_| format!("long-target sidecar {stored} is not text")))
            .and_then(|full| NameCipher::check_long_target(&stored, &full).map(|()| full).map_err(err_text));
        match full {
            Ok(f) => Some(f),
            Err(e) => {
                problems.push((Class::SymlinkTarget, e));
                None
            }
        }
    } else {
        Some(stored)
    };
    if let (Some(keys), Some(enc)) = (&ctx.keys, encoded) {
        if let Err(e) = keys.names.decrypt_target(&enc) {
            problems.push((Class::SymlinkTarget, e.to_string()));
        }
    }
    (sidecar, problems)
}

fn err_text(e: Error) -> String {
    e.to_string()
}

/// A `tresor.*` entry: metadata the format defines, a temporary, or
/// something that does not belong.
fn reserved(ctx: &Ctx<'_>, d: &DirCtx<'_>, sidecars: &Mutex<Sidecars>, name: &str) {
    let at_root = d.loc.backing.is_empty();
    if name == names::DIRIV_FILE
        || (at_root && (name == names::VOLUME_FILE || name == tresor_audit::DEFAULT_DIR || name == QUARANTINE_DIR))
    {
        return;
    }
    if name.starts_with(TMP_PREFIX) {
        return temporary(ctx, d, name);
    }
    if name.starts_with(names::LONGTARGET_PREFIX) {
        sidecars.lock().unwrap().present.push(name.to_owned());
        return;
    }
    if let Some(entry) =
        name.strip_suffix(names::LONGNAME_SIDECAR_SUFFIX).filter(|n| n.starts_with(names::LONGNAME_PREFIX))
    {
        let gone = |n: &str| {
            c(n).and_then(|n| tresor_sys::fstatat(d.fd.as_fd(), &n))
                .err()
                .is_some_and(|e| e.raw_os_error() == Some(libc::ENOENT))
        };
        if gone(entry) && !gone(name) {
            orphan(ctx, d, name, "no long-name entry in this directory uses this sidecar");
        }
        return;
    }
    let loc = d.loc.child(name, None);
    let mode = c(name).and_then(|n| tresor_sys::fstatat(d.fd.as_fd(), &n)).map(|st| st.st_mode).unwrap_or(0);
    let mut f = if matches!(mode & libc::S_IFMT, libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK) {
        ctx.count(|s| s.special_files += 1);
        loc.finding(Class::PlantedSpecial, format!("a backing {} under a reserved name: planted", type_name(mode)))
    } else {
        loc.finding(
            Class::UnexpectedEntry,
            format!(
                "a {} with a reserved name (tresor.*) the format does not define here; mounts never show it",
                type_name(mode)
            ),
        )
    };
    if ctx.opts.repair && f.class == Class::PlantedSpecial {
        f.repaired = repair::quarantine(ctx, d.fd.as_fd(), name, &loc.backing, None);
    }
    ctx.report(f);
}

fn temporary(ctx: &Ctx<'_>, d: &DirCtx<'_>, name: &str) {
    let Ok(st) = c(name).and_then(|n| tresor_sys::fstatat(d.fd.as_fd(), &n)) else { return };
    let age = ctx.opts.now.saturating_sub(st.st_mtime.max(0) as u64);
    if age < TMP_GRACE_SECS {
        ctx.count(|s| s.busy_temporaries += 1);
        return;
    }
    let loc = d.loc.child(name, None);
    let mut f = loc.finding(
        Class::StaleTemporary,
        format!(
            "a {} left by an interrupted create, re-key or removal {age} s ago (older than the {TMP_GRACE_SECS} s grace \
             period)",
            type_name(st.st_mode)
        ),
    );
    if ctx.opts.repair {
        f.repaired = repair::remove_temporary(ctx, d.fd.as_fd(), name, &loc.backing, st.st_mode);
    }
    ctx.report(f);
}

/// Notes one name of a file with several links.
pub(crate) fn note_link(ctx: &Ctx<'_>, st: &libc::stat, backing: &str) {
    let mut links = ctx.links.lock().unwrap();
    let e = links.0.entry((st.st_dev, st.st_ino)).or_insert_with(|| (st.st_nlink, Vec::new()));
    e.1.push(backing.to_owned());
}
