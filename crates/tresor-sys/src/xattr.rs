//! Extended attribute calls on descriptors only. The path-based calls
//! follow a final symlink (`setxattr`) or name whatever is at the path when
//! the call runs; a descriptor names the inode that was opened and checked.
//! (`O_PATH` descriptors are refused by these calls with `EBADF`: open the
//! entry for reading first.)

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::{cvt, cvt_len};

/// Largest attribute value (Linux `XATTR_SIZE_MAX`).
const VALUE_MAX: usize = 1 << 16;
/// Largest attribute name list (Linux `XATTR_LIST_MAX`).
const LIST_MAX: usize = 1 << 16;

/// Calls `f` with a growing buffer while it fails with `ERANGE`.
fn grow(start: usize, max: usize, mut f: impl FnMut(&mut [u8]) -> isize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; start];
    loop {
        match cvt_len(f(&mut buf)) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) && buf.len() < max => {
                buf.resize((buf.len() * 4).min(max), 0)
            }
            Err(e) => return Err(e),
        }
    }
}

pub fn fgetxattr(fd: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    grow(256, VALUE_MAX, |buf| {
        // SAFETY: the buffer is valid for `buf.len()` bytes.
        unsafe { libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
    })
}

/// The attribute names of `fd`, NUL-separated as the kernel gives them.
pub fn flistxattr(fd: BorrowedFd<'_>) -> io::Result<Vec<u8>> {
    grow(1024, LIST_MAX, |buf| {
        // SAFETY: the buffer is valid for `buf.len()` bytes.
        unsafe { libc::flistxattr(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) }
    })
}

/// `flags`: 0, `XATTR_CREATE` or `XATTR_REPLACE`.
pub fn fsetxattr(fd: BorrowedFd<'_>, name: &CStr, value: &[u8], flags: i32) -> io::Result<()> {
    // SAFETY: name is NUL-terminated; value is valid for its length.
    let r = unsafe { libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), flags) };
    cvt(r).map(drop)
}

pub fn fremovexattr(fd: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: name is NUL-terminated.
    let r = unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) };
    cvt(r).map(drop)
}
