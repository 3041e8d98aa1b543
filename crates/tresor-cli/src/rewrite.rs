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
//! * **Hard links**: a file with more than one name is re-keyed once; every
//!   other name of it in the volume (same device and inode, found by a walk
//!   of the backing tree) is re-pointed at the new file, a link under a
//!   temporary name renamed over it, so the names stay one file and none
//!   keeps the old key. A link outside the volume cannot be re-pointed: the
//!   file is then not re-keyed, and the command says so.
//!
//! Every file and directory is opened beneath the backing root
//! (`backing::Root`): no symlink is followed, no FIFO blocks, and
//! temporaries are made `O_EXCL` and renamed under their directory's
//! descriptor.

use std::{
    ffi::{CString, OsStr},
    fs::{self, File},
    io::ErrorKind,
    os::{
        fd::AsFd,
        unix::{
            ffi::OsStrExt,
            fs::{DirEntryExt, FileExt, MetadataExt},
        },
    },
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use rand_core::OsRng;
use tresor_format::{
    content::{BLOCK_OVERHEAD, TRAILER_LEN},
    ContentCipher, Header, Identity, Layout, MemberId, PublicIdentity, Volume,
};
use tresor_mount::{lock, MOVED_MAGIC};
use zeroize::Zeroize;

use crate::backing::{tmp_name, Root, TMP_PREFIX};

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
    tresor_sys::now_secs()
}

/// A backing file opened read-write with an internal lock held (released
/// when dropped, with the descriptor).
pub struct Locked {
    pub file: File,
    pub header: Header,
    /// False when the lock was not had within the wait given to
    /// [`lock_file_within`]: the header was read without it.
    pub held: bool,
}

/// How long a revoke waits for a file's lock before it removes the stanza
/// without it (and leaves the re-key undone): `TRESOR_LOCK_TIMEOUT`
/// seconds, default 120. A daemon holds the lock for one I/O at a time;
/// a holder this long is a stuck client, or someone keeping the file busy
/// on purpose.
pub fn lock_timeout() -> Duration {
    let secs = std::env::var("TRESOR_LOCK_TIMEOUT").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    Duration::from_secs(secs)
}

/// Opens `path` and takes an exclusive internal lock on `[0, len)` (`len` 0:
/// the whole file), reopening if a re-key by someone else replaced the file
/// meanwhile. The header is read and verified under the lock.
/// The file is opened beneath the backing root (no symlink anywhere on
/// the way), non-blocking and type-checked before anything is read.
pub fn lock_file(root: &Root, path: &Path, volume: &Volume, len: u64) -> Result<Locked> {
    lock_file_within(root, path, volume, len, None)
}

/// [`lock_file`], waiting at most `wait` for the lock (`None`: as long as
/// it takes); after that the header is read without it (`held` false).
pub fn lock_file_within(root: &Root, path: &Path, volume: &Volume, len: u64, wait: Option<Duration>) -> Result<Locked> {
    for _ in 0..8 {
        let (file, _) = root.file(path, libc::O_RDWR)?;
        let held = match wait {
            None => {
                lock::set(file.as_fd(), libc::F_WRLCK, lock::LOCK_BASE, len, true)
                    .with_context(|| format!("locking {}", path.display()))?;
                true
            }
            Some(wait) => lock_upto(&file, len, wait).with_context(|| format!("locking {}", path.display()))?,
        };
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
        return Ok(Locked { file, header, held });
    }
    bail!("{}: replaced on every one of 8 attempts; try again", path.display())
}

/// Takes the exclusive internal lock on `[0, len)` of `file`, waiting at
/// most `wait`. The wait runs on a thread with a descriptor of the same
/// open file description (OFD locks belong to the description): if it
/// ends late, that thread closes its descriptor at once, and the lock goes
/// when `file` is closed too.
fn lock_upto(file: &File, len: u64, wait: Duration) -> std::io::Result<bool> {
    let fd = file.as_fd().try_clone_to_owned()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(lock::set(fd.as_fd(), libc::F_WRLCK, lock::LOCK_BASE, len, true));
    });
    match rx.recv_timeout(wait) {
        Ok(result) => result.map(|()| true),
        Err(_) => Ok(false),
    }
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
    root: &Root,
    path: &Path,
    volume: &Volume,
    steward: &Identity,
    recipients: &[PublicIdentity],
    mut progress: impl FnMut(u64),
) -> Result<()> {
    let Locked { file, header, .. } = locked;
    let meta = file.metadata()?;
    // Every name of the file: a member must not keep the old key by
    // planting a second name (a hidden hard link) that a re-key of one name
    // would leave on the old inode.
    let links = if meta.nlink() > 1 { links_of(root, path, &meta)? } else { vec![path.to_owned()] };
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

    let (dir, name) = root.parent(path)?;
    let tmp = tmp_name();
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
    let out = File::from(
        tresor_sys::openat(dir.as_fd(), &tmp, flags, 0o600)
            .with_context(|| format!("creating a temporary next to {}", path.display()))?,
    );
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
                bail!("interrupted");
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
        let _ = tresor_sys::unlinkat(dir.as_fd(), &tmp, false);
        return Err(e);
    }
    tresor_sys::renameat2(dir.as_fd(), &tmp, dir.as_fd(), &name, 0)
        .with_context(|| format!("replacing {}", path.display()))?;
    tresor_sys::sync_dir(dir.as_fd())?;
    // The other names: each re-pointed at the new inode (a link under a
    // temporary name, renamed over the name), so they stay one file.
    let mut left = Vec::new();
    for link in &links[1..] {
        if let Err(e) = repoint(root, &out, link) {
            left.push(format!("{}: {e:#}", link.display()));
        }
    }
    // Times last: a temporary with an old mtime would look stale to a
    // concurrent run's cleanup.
    set_times(&out, &meta)?;
    out.sync_all()?;
    // The old inode: daemons still holding it see the marker and reopen.
    file.write_all_at(MOVED_MAGIC, 0)?;
    file.sync_data()?;
    let still = file.metadata()?.nlink();
    drop(file); // releases the lock
    if !left.is_empty() {
        bail!("re-keyed, but these names still hold the old file: {}", left.join("; "));
    }
    if still > 0 {
        bail!("re-keyed, but {still} name(s) made meanwhile still hold the old file; run the re-key again");
    }
    Ok(())
}

/// Every name below the backing root of the file at `path` (`meta`: its
/// metadata, with more than one link): `path` first. All of its links must
/// be in the volume; one outside it cannot be re-pointed.
fn links_of(root: &Root, path: &Path, meta: &fs::Metadata) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, dev: u64, ino: u64, out: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                walk(&e.path(), dev, ino, out);
            } else if ft.is_file() && e.ino() == ino {
                if let Ok(m) = fs::symlink_metadata(e.path()) {
                    if m.dev() == dev && m.ino() == ino {
                        out.push(e.path());
                    }
                }
            }
        }
    }
    let mut found = vec![path.to_owned()];
    let mut all = Vec::new();
    walk(&root.path, meta.dev(), meta.ino(), &mut all);
    found.extend(all.into_iter().filter(|p| p != path));
    if (found.len() as u64) < meta.nlink() {
        bail!(
            "{} has {} hard links, only {} of them in the volume; the others (outside it) would keep the old key: \
             remove them first",
            path.display(),
            meta.nlink(),
            found.len()
        );
    }
    Ok(found)
}

/// Points the name `link` at the file open as `new`: linked under a
/// temporary name in its directory, renamed over the name.
fn repoint(root: &Root, new: &File, link: &Path) -> Result<()> {
    let (dir, name) = root.parent(link)?;
    let tmp = tmp_name();
    tresor_sys::link_fd(new.as_fd(), dir.as_fd(), &tmp)?;
    if let Err(e) = tresor_sys::renameat2(dir.as_fd(), &tmp, dir.as_fd(), &name, 0) {
        let _ = tresor_sys::unlinkat(dir.as_fd(), &tmp, false);
        return Err(e.into());
    }
    tresor_sys::sync_dir(dir.as_fd())?;
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

/// Removes `tresor.tmp.*` files in `dir` older than a minute: leftovers of
/// a re-key (or a daemon's create) killed before its rename. The directory
/// is opened beneath the root and each entry removed by name in it, so a
/// symlink planted on the way cannot steer the removal outside the volume.
pub fn clean_stale_tmp(root: &Root, dir: &Path) {
    let Ok(dirfd) = root.dir(dir) else { return };
    let Ok(entries) =
        tresor_sys::openat(dirfd.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0).and_then(tresor_sys::read_dir)
    else {
        return;
    };
    for e in entries {
        if !e.name.starts_with(TMP_PREFIX.as_bytes()) {
            continue;
        }
        let Ok(name) = tresor_sys::cstring(&e.name) else { continue };
        let Ok(st) = tresor_sys::fstatat(dirfd.as_fd(), &name) else { continue };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            continue;
        }
        let age = now().saturating_sub(st.st_mtime.max(0) as u64);
        if age >= TMP_STALE.as_secs() && tresor_sys::unlinkat(dirfd.as_fd(), &name, false).is_ok() {
            eprintln!(
                "tresor: removed {} (left over from an interrupted run)",
                dir.join(OsStr::from_bytes(&e.name)).display()
            );
        }
    }
}
