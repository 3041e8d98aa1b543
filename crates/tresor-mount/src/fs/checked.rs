//! Metadata changes (chmod, chown, utimens, user xattrs) act on a
//! descriptor of an entry that was checked to be what the volume made, never
//! on a name: a name can be swapped by the storage operator between a check
//! and a call, and a hard link planted in the backing tree to a file outside
//! the volume (same file system) would otherwise let a member change that
//! outside inode through the mount.
//!
//! * a regular file is opened `O_NOFOLLOW | O_NONBLOCK`, must be a regular
//!   file, and its header must verify (signature against the registry,
//!   volume id);
//! * a directory is opened `O_DIRECTORY | O_NOFOLLOW`, and its IV must read;
//! * a symlink is held by an `O_PATH | O_NOFOLLOW` descriptor, and its
//!   target must decrypt;
//! * a special file is held by an `O_PATH | O_NOFOLLOW` descriptor (its
//!   authentication belongs to the special-file records of the format).
//!
//! In every case the descriptor must hold the inode the node was stat'ed
//! as (else ESTALE). A failed check is EIO, logged; the change is recorded
//! with its result by the callback's audit record.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::{Loc, TresorFs};
use crate::attr;
use crate::file;
use crate::paths::show;
use crate::sys::{self, Errno, FsResult};

/// What a checked descriptor holds, and so which calls apply to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Held {
    /// Open for reading: the f* calls work on it.
    Open,
    /// `O_PATH`: a symlink or special file.
    Path,
}

/// A descriptor of a backing entry that was checked (see the module docs).
pub(super) struct Checked {
    fd: OwnedFd,
    held: Held,
}

/// How much is checked before the descriptor is handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Check {
    /// Type and inode only (reading xattrs, which change nothing).
    Type,
    /// Type, inode, and the entry's own authentication (before a change).
    Content,
}

impl Checked {
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub(super) fn held(&self) -> Held {
        self.held
    }

    pub(super) fn into_fd(self) -> OwnedFd {
        self.fd
    }

    pub(super) fn chown(&self, uid: u32, gid: u32) -> FsResult<()> {
        let done = match self.held {
            Held::Open => sys::fchown(self.fd(), uid, gid),
            Held::Path => sys::fchown_opath(self.fd(), uid, gid),
        };
        Ok(done?)
    }

    pub(super) fn chmod(&self, mode: u32) -> FsResult<()> {
        let done = match self.held {
            Held::Open => sys::fchmod(self.fd(), mode),
            Held::Path => sys::fchmod_opath(self.fd(), mode),
        };
        Ok(done?)
    }

    pub(super) fn utimens(&self, times: &[libc::timespec; 2]) -> FsResult<()> {
        let done = match self.held {
            Held::Open => sys::futimens(self.fd(), times),
            Held::Path => sys::utimens_opath(self.fd(), times),
        };
        Ok(done?)
    }
}

/// ESTALE unless `now` is the inode `st` described.
fn same(st: &libc::stat, now: &libc::stat) -> FsResult<()> {
    if st.st_ino != now.st_ino || st.st_dev != now.st_dev {
        return Err(Errno::ESTALE);
    }
    Ok(())
}

impl TresorFs {
    /// Opens node `ino`'s entry at `loc` (stat'ed as `st`) and checks it
    /// (see the module docs).
    pub(super) fn checked(&self, _ino: u64, loc: &Loc<'_>, st: &libc::stat, check: Check) -> FsResult<Checked> {
        let dir = loc.dir.fd();
        let refused = |what: &str, e: Errno| {
            if e == Errno::EIO {
                tracing::error!("{}: {what} does not verify: metadata change refused", show(&loc.path));
            }
            e
        };
        if attr::is_reg(st) {
            // Checking reads the header or record: never an access.
            let (fd, now) = match sys::open_regular(dir, &loc.name, libc::O_RDONLY | libc::O_NOATIME) {
                Ok(opened) => opened,
                // A daemon that is not root, on a file its owner made
                // unreadable (`chmod 0`, then `chmod 644`): it could change
                // that inode by name anyway, so it is held by `O_PATH`.
                Err(e) if sys::is_errno(&e, libc::EACCES) && self.euid != 0 => return self.held_by_path(loc, st),
                Err(e) => {
                    if sys::is_wrong_type(&e) {
                        tracing::error!("{}: {e}", show(&loc.path));
                    }
                    return Err(e.into());
                }
            };
            same(st, &now)?;
            if check == Check::Content && attr::may_be_node(st) {
                // A special file's record (FORMAT.md §8.7), not a header.
                let mut record = [0u8; tresor_format::place::NODE_LEN];
                sys::pread_exact(fd.as_fd(), &mut record, 0)
                    .map_err(|_| refused("the special file record", Errno::EIO))?;
                self.names.place().open_node(&record).map_err(|_| refused("the special file record", Errno::EIO))?;
            } else if check == Check::Content {
                let volume = self.volume.get();
                file::read_header(fd.as_fd(), &volume, &loc.path).map_err(|e| match e {
                    // Re-keyed between the stat and the open: the name
                    // leads to another inode now.
                    Errno::MOVED => Errno::ESTALE,
                    e => refused("the file header", e),
                })?;
            }
            return Ok(Checked { fd, held: Held::Open });
        }
        if attr::is_dir(st) {
            let fd = match sys::open_directory(dir, &loc.name) {
                Ok(fd) => fd,
                // As above, for a directory without read permission.
                Err(e) if sys::is_errno(&e, libc::EACCES) && self.euid != 0 => return self.held_by_path(loc, st),
                Err(e) => return Err(e.into()),
            };
            same(st, &sys::fstat(fd.as_fd())?)?;
            if check == Check::Content {
                self.names.dir_iv(fd.as_fd(), &loc.path).map_err(|e| refused("the directory IV", e))?;
            }
            return Ok(Checked { fd, held: Held::Open });
        }
        let held = self.held_by_path(loc, st)?;
        if attr::is_symlink(st) && check == Check::Content {
            self.names.read_target(dir, &loc.name, &loc.path).map_err(|e| refused("the symlink target", e))?;
            // The target was read by name: still the same entry?
            same(st, &sys::fstatat(dir, &loc.name)?)?;
        }
        Ok(held)
    }

    /// An `O_PATH | O_NOFOLLOW` descriptor of the entry at `loc`, which
    /// must still be the inode `st` describes.
    fn held_by_path(&self, loc: &Loc<'_>, st: &libc::stat) -> FsResult<Checked> {
        let fd = sys::openat(loc.dir.fd(), &loc.name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
        same(st, &sys::fstat(fd.as_fd())?)?;
        Ok(Checked { fd, held: Held::Path })
    }
}
