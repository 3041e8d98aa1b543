//! Whole-file `flock(2)` locks, for the few updates that must not
//! interleave between nodes and have no file to hold a byte-range lock on
//! (a directory's IV file is replaced, not rewritten, during a rename).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// An exclusive `flock` on a descriptor, released on drop (by closing the
/// descriptor, which the guard owns).
pub struct FlockGuard(#[allow(dead_code)] OwnedFd);

/// Takes an exclusive `flock` on `fd` (opened for reading), waiting for it.
pub fn flock_exclusive(fd: OwnedFd) -> io::Result<FlockGuard> {
    lock(std::os::fd::AsFd::as_fd(&fd), libc::LOCK_EX)?;
    Ok(FlockGuard(fd))
}

fn lock(fd: BorrowedFd<'_>, op: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock takes a descriptor we borrow for the call and an int.
        if unsafe { libc::flock(fd.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}
