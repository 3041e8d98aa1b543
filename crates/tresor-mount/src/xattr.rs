//! User extended attributes, stored encrypted as backing attributes of the
//! same entry (FORMAT.md §8.6). Other namespaces are not stored: reading one
//! gives ENODATA (the kernel asks for `security.capability` on a file's first
//! write, and must get a fast "none"), setting one gives ENOTSUP.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use rand_core::OsRng;
use tresor_format::names::XATTR_PREFIX;
use tresor_format::NameCipher;

use crate::sys::{Errno, FsResult};

const USER: &[u8] = b"user.";

/// The `/proc/self/fd/N` path of an `O_PATH` descriptor: the *xattr calls
/// take paths, and this one names exactly the entry the descriptor holds.
fn proc_path(fd: BorrowedFd<'_>) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number")
}

fn last_errno() -> Errno {
    Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
}

/// Whether attributes called `name` can exist at all: only `user.` ones are
/// stored. The others need no look at the backing entry, which matters for
/// `security.capability`, asked before the first write to a file (and before
/// every write to a set-id file).
pub fn is_stored(name: &OsStr) -> bool {
    name.as_bytes().starts_with(USER)
}

/// The backing attribute for plaintext `name`, or None for a namespace
/// other than `user.`.
fn backing_name(cipher: &NameCipher, name: &OsStr) -> FsResult<Option<CString>> {
    let Some(rest) = name.as_bytes().strip_prefix(USER) else { return Ok(None) };
    let backing = cipher.encrypt_xattr_name(rest).map_err(|_| Errno(libc::ERANGE))?;
    Ok(Some(CString::new(backing).expect("base64 has no NUL")))
}

pub fn set(cipher: &NameCipher, fd: BorrowedFd<'_>, name: &OsStr, value: &[u8], flags: i32) -> FsResult<()> {
    let Some(backing) = backing_name(cipher, name)? else { return Err(Errno::ENOTSUP) };
    let sealed = cipher.encrypt_xattr_value(backing.to_str().expect("ASCII"), value, &mut OsRng);
    let path = proc_path(fd);
    let r = unsafe { libc::setxattr(path.as_ptr(), backing.as_ptr(), sealed.as_ptr().cast(), sealed.len(), flags) };
    if r != 0 {
        return Err(last_errno());
    }
    Ok(())
}

/// Reads the raw backing attribute `name` (growing the buffer as needed).
fn read_raw(path: &CString, name: &CString) -> FsResult<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        match last_errno() {
            Errno(libc::ERANGE) if buf.len() < 1 << 17 => buf.resize(buf.len() * 4, 0),
            e => return Err(e),
        }
    }
}

pub fn get(cipher: &NameCipher, fd: BorrowedFd<'_>, name: &OsStr, shown: &dyn std::fmt::Display) -> FsResult<Vec<u8>> {
    let Some(backing) = backing_name(cipher, name)? else { return Err(Errno(libc::ENODATA)) };
    let sealed = read_raw(&proc_path(fd), &backing)?;
    cipher.decrypt_xattr_value(backing.to_str().expect("ASCII"), &sealed).map_err(|e| {
        tracing::error!("{shown}: extended attribute {}: {e}", name.to_string_lossy());
        Errno(libc::EIO)
    })
}

/// `user.NAME\0…` for every attribute that decrypts; others are skipped
/// with a warning.
pub fn list(cipher: &NameCipher, fd: BorrowedFd<'_>, shown: &dyn std::fmt::Display) -> FsResult<Vec<u8>> {
    let path = proc_path(fd);
    let mut raw = vec![0u8; 1024];
    loop {
        let n = unsafe { libc::listxattr(path.as_ptr(), raw.as_mut_ptr().cast(), raw.len()) };
        if n >= 0 {
            raw.truncate(n as usize);
            break;
        }
        match last_errno() {
            Errno(libc::ERANGE) if raw.len() < 1 << 20 => raw.resize(raw.len() * 4, 0),
            e => return Err(e),
        }
    }
    let mut out = Vec::new();
    for backing in raw.split(|&b| b == 0).filter(|n| n.starts_with(XATTR_PREFIX.as_bytes())) {
        let backing = String::from_utf8_lossy(backing);
        match cipher.decrypt_xattr_name(&backing) {
            Ok(name) => {
                out.extend_from_slice(USER);
                out.extend_from_slice(&name);
                out.push(0);
            }
            Err(e) => tracing::warn!("{shown}: skipping extended attribute {backing}: {e}"),
        }
    }
    Ok(out)
}

pub fn remove(cipher: &NameCipher, fd: BorrowedFd<'_>, name: &OsStr) -> FsResult<()> {
    let Some(backing) = backing_name(cipher, name)? else { return Err(Errno(libc::ENODATA)) };
    let path = proc_path(fd);
    if unsafe { libc::removexattr(path.as_ptr(), backing.as_ptr()) } != 0 {
        return Err(last_errno());
    }
    Ok(())
}
