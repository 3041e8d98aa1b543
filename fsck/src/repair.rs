//! `--repair`: only what is safe, each action named in its finding.
//!
//! * A stale temporary file (older than the grace period the mounts use) is
//!   removed: it is a create or re-key that never reached its rename, whose
//!   original is intact under its own name. A stale temporary directory
//!   (a removal that stopped half-way holds only format metadata) is
//!   quarantined rather than removed.
//! * A damaged or unreadable entry (and its sidecar) is moved to
//!   `tresor.quarantine/` at the backing root, under a new unique name:
//!   nothing is deleted, the mounts no longer see it, and a steward can
//!   look at it (or put it back) later.

use std::{
    ffi::CString,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    sync::OnceLock,
};

use crate::{walk::c, Class, Ctx, QUARANTINE_DIR};

/// The quarantine directory, opened (and made) on first use.
#[derive(Default)]
pub(crate) struct Quarantine(OnceLock<Result<OwnedFd, String>>);

/// Whether `--repair` moves an entry with this finding to quarantine.
pub(crate) fn quarantines(class: Class) -> bool {
    matches!(
        class,
        Class::Name
            | Class::LongNameSidecar
            | Class::SymlinkTarget
            | Class::Header
            | Class::KeyCommitment
            | Class::FileLength
            | Class::Block
            | Class::Trailer
            | Class::SpecialRecord
            | Class::PlantedSpecial
            | Class::MovedMarker
            | Class::OrphanSidecar
    )
}

fn quarantine_dir<'a>(ctx: &'a Ctx<'_>) -> Result<BorrowedFd<'a>, String> {
    let r = ctx.quarantine.0.get_or_init(|| {
        let name = c(QUARANTINE_DIR).map_err(|e| e.to_string())?;
        match tresor_sys::mkdirat(ctx.root.as_fd(), &name, 0o700) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(format!("creating {QUARANTINE_DIR}: {e}")),
        }
        tresor_sys::openat(
            ctx.root.as_fd(),
            &name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        )
        .map_err(|e| format!("opening {QUARANTINE_DIR}: {e}"))
    });
    r.as_ref().map(|fd| fd.as_fd()).map_err(Clone::clone)
}

/// A name in quarantine for backing path `backing`: its components joined
/// with `%`, cut to fit, and a random suffix so nothing is ever replaced.
fn quarantine_name(backing: &str) -> String {
    let flat: String = backing.replace('/', "%");
    let keep = flat.len().min(200);
    let start = flat.len() - keep;
    let start = (start..=flat.len()).find(|i| flat.is_char_boundary(*i)).unwrap_or(flat.len());
    format!("{}.{}", &flat[start..], tresor_sys::random_hex())
}

/// Moves `name` (and `sidecar`, if given) from `dir` to quarantine.
/// Returns what was done, or `None` (with the reason in a log line) if
/// it could not be.
pub(crate) fn quarantine(
    ctx: &Ctx<'_>,
    dir: BorrowedFd<'_>,
    name: &str,
    backing: &str,
    sidecar: Option<&str>,
) -> Option<String> {
    let q = match quarantine_dir(ctx) {
        Ok(q) => q,
        Err(e) => return fail(e),
    };
    let to = quarantine_name(backing);
    let moved = move_one(dir, name, q, &to);
    if let Err(e) = moved {
        return fail(format!("moving {backing} to {QUARANTINE_DIR}: {e}"));
    }
    let mut done = format!("moved to {QUARANTINE_DIR}/{to}");
    if let Some(s) = sidecar {
        let s_to = format!("{to}.sidecar");
        match move_one(dir, s, q, &s_to) {
            Ok(()) => done.push_str(&format!(" (its sidecar to {QUARANTINE_DIR}/{s_to})")),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => done.push_str(&format!(" (its sidecar {s} could not be moved: {e})")),
        }
    }
    Some(done)
}

fn move_one(dir: BorrowedFd<'_>, name: &str, q: BorrowedFd<'_>, to: &str) -> std::io::Result<()> {
    let (from, to): (CString, CString) = (c(name)?, c(to)?);
    tresor_sys::rename_noreplace(dir, &from, q, &to)
}

fn fail(e: String) -> Option<String> {
    eprintln!("tresor fsck: repair failed: {e}");
    None
}

/// Removes a stale temporary file; quarantines a stale temporary directory.
pub(crate) fn remove_temporary(
    ctx: &Ctx<'_>,
    dir: BorrowedFd<'_>,
    name: &str,
    backing: &str,
    mode: u32,
) -> Option<String> {
    if mode & libc::S_IFMT == libc::S_IFDIR {
        return quarantine(ctx, dir, name, backing, None);
    }
    let cname = c(name).ok()?;
    match tresor_sys::unlinkat(dir, &cname, false) {
        Ok(()) => Some("removed".into()),
        Err(e) => fail(format!("removing {backing}: {e}")),
    }
}
