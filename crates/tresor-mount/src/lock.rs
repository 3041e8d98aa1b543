//! Open-file-description (OFD) byte-range locks on backing files.
//!
//! Two kinds of lock share the backing file's lock space without ever
//! meeting:
//!
//! * **Internal locks** serialize the mount's own read-modify-write of
//!   blocks, trailers and headers between handles, processes and nodes on
//!   shared storage. They live at [`LOCK_BASE`] + the *ciphertext* offset.
//! * **User locks** (`fcntl(F_SETLK)` and friends on the plaintext file) are
//!   forwarded at their *plaintext* offsets, clamped below `LOCK_BASE`, so
//!   another node's mount sees them at the same place.
//!
//! OFD locks (not classic POSIX locks) are used because they belong to an
//! open file description, not to the process: every FUSE handle has its own
//! backing descriptor, so two handles of one daemon exclude each other just
//! as two nodes do, and closing one descriptor never drops another's locks.
//! Locks taken through one description do not conflict with each other, so
//! one description never runs two operations at once: operations that
//! overlap on one handle each use a lane with a description of its own
//! (see `file`).

use std::io;
use std::os::fd::BorrowedFd;

/// Internal locks start here (2^62): far above any plaintext offset a user
/// lock can name, and still a valid positive `off_t` after adding any
/// ciphertext offset below 2^62.
pub const LOCK_BASE: u64 = 1 << 62;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Shared,
    Exclusive,
}

impl Kind {
    fn l_type(self) -> libc::c_short {
        match self {
            Kind::Shared => libc::F_RDLCK as libc::c_short,
            Kind::Exclusive => libc::F_WRLCK as libc::c_short,
        }
    }
}

/// A byte range: `len == 0` means "to the end of the file and beyond".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub len: u64,
}

impl Range {
    pub fn to_eof(start: u64) -> Range {
        Range { start, len: 0 }
    }

    pub fn new(start: u64, end: u64) -> Range {
        debug_assert!(end > start);
        Range { start, len: end - start }
    }

    /// Whether `self` includes all of `other`.
    pub fn covers(&self, other: &Range) -> bool {
        if other.start < self.start {
            return false;
        }
        match (self.len, other.len) {
            (0, _) => true,
            (_, 0) => false,
            (a, b) => other.start + b <= self.start + a,
        }
    }
}

/// Sets (or with `l_type == F_UNLCK` releases) a lock at raw offsets.
pub fn set(fd: BorrowedFd<'_>, l_type: i32, start: u64, len: u64, wait: bool) -> io::Result<()> {
    crate::sys::ofd_setlk(fd, l_type, start, len, wait)
}

/// The first lock that would conflict with `l_type` on the range, as
/// `(l_type, start, len)`, or `None`.
pub fn get(fd: BorrowedFd<'_>, l_type: i32, start: u64, len: u64) -> io::Result<Option<(i32, u64, u64)>> {
    crate::sys::ofd_getlk(fd, l_type, start, len)
}

/// An internal lock, released on drop. The range is in ciphertext offsets;
/// `LOCK_BASE` is added here.
pub struct Guard<'a> {
    fd: BorrowedFd<'a>,
    range: Range,
}

impl<'a> Guard<'a> {
    /// Waits for the lock (`F_OFD_SETLKW`).
    pub fn acquire(fd: BorrowedFd<'a>, kind: Kind, range: Range) -> io::Result<Guard<'a>> {
        set(fd, kind.l_type() as i32, LOCK_BASE + range.start, range.len, true)?;
        Ok(Guard { fd, range })
    }

    pub fn range(&self) -> Range {
        self.range
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if let Err(e) = set(self.fd, libc::F_UNLCK, LOCK_BASE + self.range.start, self.range.len, false) {
            tracing::error!("releasing an internal byte-range lock failed: {e}");
        }
    }
}
