//! Changing who can read one file, on the backing file, safely next to live
//! mounts on any node (docs/FORMAT.md §6.5).
//!
//! * **In place** (grant, revoke `--no-rekey`, re-sign): an exclusive
//!   internal OFD lock on the header range `LOCK_BASE + [0, header_len)` —
//!   the lock every daemon takes to read a header — then the new header is
//!   written over the old one with one `pwrite` and `fdatasync`. The content
//!   and its key are unchanged.
//! * **Re-key**: an exclusive internal lock on `LOCK_BASE + [0, ∞)` waits
//!   for every daemon's I/O in flight and holds off new I/O; the file is
//!   copied to `tresor.tmp.<random>` in its directory with a new file id and
//!   key (every block re-sealed, holes kept), mode, owner, times and the
//!   encrypted user xattrs (they are not bound to the file id or key, FORMAT
//!   §8.6), fsynced, renamed over the name, the directory fsynced, and the
//!   old inode's magic overwritten with `TRSRMOVD` before the lock is
//!   released. A daemon holding the old inode open sees the marker under
//!   its next lock and reopens the file by path.

use std::{
    ffi::CString,
    fs::{self, File, OpenOptions},
    io::ErrorKind,
    os::{
        fd::AsFd,
        unix::{
            ffi::OsStrExt,
            fs::{FileExt, MetadataExt, OpenOptionsExt},
        },
    },
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context, Result};
use rand_core::{OsRng, RngCore};
use tresor_format::{
    content::{BLOCK_OVERHEAD, TRAILER_LEN},
    ContentCipher, Header, Identity, Layout, MemberId, PublicIdentity, Volume,
};
use tresor_mount::{lock, MOVED_MAGIC};
use zeroize::Zeroize;

pub const TMP_PREFIX: &str = "tresor.tmp.";

/// From now on Ctrl-C (SIGINT) and SIGTERM stop the run between chunks and
/// files instead of killing it: the file being re-keyed keeps its old
/// version and its temporary is removed at once. (Call after any
/// passphrase prompt, which must stay interruptible.)
pub fn catch_interrupt() {
    tresor_sys::catch_stop_signals();
}

pub fn interrupted() -> bool {
    tresor_sys::stop_requested()
}
/// A temporary entry older than this is a crashed run's leftover.
const TMP_STALE: Duration = Duration::from_secs(60);

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A backing file opened read-write with an internal lock held (released
/// when dropped, with the descriptor).
pub struct Locked {
    pub file: File,
    pub header: Header,
}

/// Opens `path` and takes an exclusive internal lock on `[0, len)` (`len` 0:
/// the whole file), reopening if a re-key by someone else replaced the file
/// meanwhile. The header is read and verified under the lock.
pub fn lock_file(path: &Path, volume: &Volume, len: u64) -> Result<Locked> {
    for _ in 0..8 {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        if !file.metadata()?.is_file() {
            bail!("{} is not a regular file", path.display());
        }
        lock::set(file.as_fd(), libc::F_WRLCK, lock::LOCK_BASE, len, true)
            .with_context(|| format!("locking {}", path.display()))?;
        let mut bytes = vec![0u8; volume.params.header_len as usize];
        match file.read_exact_at(&mut bytes, 0) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => {
                bail!("{}: shorter than a file header: not a Tresor file, or damaged", path.display())
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        if bytes.starts_with(MOVED_MAGIC) || file.metadata()?.nlink() == 0 {
            continue; // re-keyed by someone else just now: open the new file
        }
        let header = Header::open(&bytes, volume).with_context(|| format!("{}: file header", path.display()))?;
        return Ok(Locked { file, header });
    }
    bail!("{}: replaced on every one of 8 attempts; try again", path.display())
}

/// Writes `header` (already signed) over the locked file's header, durably.
pub fn write_header(locked: &Locked, header: &Header, path: &Path) -> Result<()> {
    let bytes = header.to_bytes()?;
    locked.file.write_all_at(&bytes, 0).with_context(|| format!("writing the header of {}", path.display()))?;
    locked.file.sync_data().with_context(|| format!("syncing {}", path.display()))?;
    Ok(())
}

/// The public identities of `ids` in the registry; ids no longer in it are
/// dropped (they are what a revoke removes).
pub fn publics(volume: &Volume, ids: impl Iterator<Item = MemberId>) -> Vec<PublicIdentity> {
    ids.filter_map(|id| volume.member(&id).map(|m| m.public)).collect()
}

/// Re-keys the file at `path` for `recipients` (see the module docs), as
/// `steward`, who must be a recipient (to read the content). `locked`
/// holds the whole-file lock.
pub fn rekey(
    locked: Locked,
    path: &Path,
    volume: &Volume,
    steward: &Identity,
    recipients: &[PublicIdentity],
    mut progress: impl FnMut(u64),
) -> Result<()> {
    let Locked { file, header, .. } = locked;
    let meta = file.metadata()?;
    if meta.nlink() > 1 {
        bail!(
            "{} has {} hard links: a re-key replaces one name only; remove the other links first",
            path.display(),
            meta.nlink()
        );
    }
    let old_key = header.file_key(steward).map_err(|e| match e {
        tresor_format::Error::NotRecipient { .. } => anyhow::anyhow!(
            "you are not a recipient of {}; ask a recipient steward or add yourself to the tree's default recipients",
            path.display()
        ),
        e => anyhow::Error::new(e).context(format!("{}: unwrapping the file key", path.display())),
    })?;
    let p = volume.params;
    let layout = Layout::new(p.header_len, p.block_size);
    let size = layout.plaintext_size(meta.len()).with_context(|| format!("{}", path.display()))?;
    let old = ContentCipher::new(p.suite, &old_key, &header.file_id, p.block_size);
    drop(old_key);
    let (new_header, new_key) = Header::create(volume, steward, recipients, now(), &mut OsRng)?;
    let new = ContentCipher::new(p.suite, &new_key, &new_header.file_id, p.block_size);
    drop(new_key);

    let dir = path.parent().context("a file has a directory")?;
    let tmp = dir.join(format!("{TMP_PREFIX}{:016x}", OsRng.next_u64()));
    let out = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let copied = (|| -> Result<()> {
        out.write_all_at(&new_header.to_bytes()?, 0)?;
        let n = layout.block_count(size);
        let mut trailer = [0u8; TRAILER_LEN];
        file.read_exact_at(&mut trailer, layout.trailer_offset(size))?;
        old.open_trailer(n, &trailer).with_context(|| format!("{}: the file is damaged", path.display()))?;
        let b = p.block_size as usize;
        // Many blocks per read and write: a re-key streams the file.
        let per = (1 << 20) / (b + BLOCK_OVERHEAD) + 1;
        let mut ct = vec![0u8; per * (b + BLOCK_OVERHEAD)];
        let mut sealed = vec![0u8; per * (b + BLOCK_OVERHEAD)];
        let mut pt = vec![0u8; b];
        let mut k = 0u64;
        while k < n {
            if interrupted() {
                bail!("interrupted; the file is unchanged");
            }
            let count = (n - k).min(per as u64);
            let start = layout.block_offset(k);
            let end = layout.block_offset(k + count - 1)
                + (size - (k + count - 1) * b as u64).min(b as u64)
                + BLOCK_OVERHEAD as u64;
            let len = (end - start) as usize;
            file.read_exact_at(&mut ct[..len], start)?;
            let mut at = 0;
            let mut run_start = 0; // start of the sealed run not yet written
            for i in k..k + count {
                let blen = (size - i * b as u64).min(b as u64) as usize;
                let c = &ct[at..at + blen + BLOCK_OVERHEAD];
                let last = i + 1 == n;
                if !last && blen == b && c.iter().all(|&x| x == 0) {
                    // A hole stays a hole: write what came before it, skip it.
                    if at > run_start {
                        out.write_all_at(&sealed[run_start..at], start + run_start as u64)?;
                    }
                    run_start = at + c.len();
                } else {
                    let opened = if last {
                        old.open_last_block(i, c, &mut pt[..blen])
                    } else {
                        old.open_block(i, c, &mut pt[..blen])
                    };
                    opened.with_context(|| format!("{}: the file is damaged", path.display()))?;
                    new.seal_block(i, &pt[..blen], &mut sealed[at..at + blen + BLOCK_OVERHEAD], &mut OsRng);
                }
                at += blen + BLOCK_OVERHEAD;
            }
            if at > run_start {
                out.write_all_at(&sealed[run_start..at], start + run_start as u64)?;
            }
            progress(len as u64);
            k += count;
        }
        pt.zeroize();
        out.write_all_at(&new.seal_trailer(n, &mut OsRng), layout.trailer_offset(size))?;
        out.set_len(layout.ciphertext_size(size))?;
        copy_metadata(&file, &out, &meta)?;
        out.sync_all()?;
        Ok(())
    })();
    if let Err(e) = copied {
        let _ = fs::remove_file(&tmp);
        return Err(e.context(format!("re-keying {}", path.display())));
    }
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    File::open(dir)?.sync_all()?;
    // Times last: a temporary with an old mtime would look stale to a
    // concurrent run's cleanup.
    set_times(&out, &meta)?;
    out.sync_all()?;
    // The old inode: daemons still holding it see the marker and reopen.
    file.write_all_at(MOVED_MAGIC, 0)?;
    file.sync_data()?;
    drop(file); // releases the lock
    Ok(())
}

/// Mode, owner and the encrypted user xattrs of `from` onto `to`, on
/// descriptors.
fn copy_metadata(from: &File, to: &File, meta: &fs::Metadata) -> Result<()> {
    let (src, dst) = (from.as_fd(), to.as_fd());
    if let Err(e) = tresor_sys::fchown(dst, meta.uid(), meta.gid()) {
        if tresor_sys::geteuid() == 0 {
            return Err(e.into());
        }
    }
    tresor_sys::fchmod(dst, meta.mode() & 0o7777)?;
    // Extended attributes (the mount stores user.tresor.* only).
    let names = tresor_sys::flistxattr(src)?;
    for name in names.split(|&c| c == 0).filter(|n| n.starts_with(b"user.")) {
        let cname = CString::new(name).expect("no NUL inside");
        let value = tresor_sys::fgetxattr(src, &cname)?;
        tresor_sys::fsetxattr(dst, &cname, &value, 0)?;
    }
    Ok(())
}

fn set_times(to: &File, meta: &fs::Metadata) -> Result<()> {
    let times = [
        libc::timespec { tv_sec: meta.atime(), tv_nsec: meta.atime_nsec() },
        libc::timespec { tv_sec: meta.mtime(), tv_nsec: meta.mtime_nsec() },
    ];
    Ok(tresor_sys::futimens(to.as_fd(), &times)?)
}

/// Removes `tresor.tmp.*` entries in `dir` older than a minute: leftovers of
/// a re-key (or a daemon's create) killed before its rename.
pub fn clean_stale_tmp(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        if !name.as_bytes().starts_with(TMP_PREFIX.as_bytes()) {
            continue;
        }
        let Ok(meta) = e.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let age = meta.modified().ok().and_then(|m| m.elapsed().ok()).unwrap_or_default();
        if age >= TMP_STALE && fs::remove_file(e.path()).is_ok() {
            eprintln!("tresor: removed {} (left over from an interrupted run)", e.path().display());
        }
    }
}
