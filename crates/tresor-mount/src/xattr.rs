//! User extended attributes, stored encrypted as backing attributes of the
//! same entry (FORMAT.md §8.6). Other namespaces are not stored: reading one
//! gives ENODATA (the kernel asks for `security.capability` on a file's first
//! write, and must get a fast "none"), setting one gives ENOTSUP.

use std::ffi::{CString, OsStr};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;

use rand_core::OsRng;
use tresor_format::names::XATTR_PREFIX;
use tresor_format::NameCipher;

use crate::sys::{self, Errno, FsResult};

const USER: &[u8] = b"user.";

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

/// `fd`: a descriptor open for reading of a regular file or directory
/// (the calls act on descriptors, never on paths).
pub fn set(cipher: &NameCipher, fd: BorrowedFd<'_>, name: &OsStr, value: &[u8], flags: i32) -> FsResult<()> {
    let Some(backing) = backing_name(cipher, name)? else { return Err(Errno::ENOTSUP) };
    let sealed = cipher.encrypt_xattr_value(backing.to_str().expect("ASCII"), value, &mut OsRng);
    Ok(sys::fsetxattr(fd, &backing, &sealed, flags)?)
}

pub fn get(cipher: &NameCipher, fd: BorrowedFd<'_>, name: &OsStr, shown: &dyn std::fmt::Display) -> FsResult<Vec<u8>> {
    let Some(backing) = backing_name(cipher, name)? else { return Err(Errno(libc::ENODATA)) };
    let sealed = sys::fgetxattr(fd, &backing)?;
    cipher.decrypt_xattr_value(backing.to_str().expect("ASCII"), &sealed).map_err(|e| {
        tracing::error!("{shown}: extended attribute {}: {e}", name.to_string_lossy());
        Errno(libc::EIO)
    })
}

/// `user.NAME\0…` for every attribute that decrypts; others are skipped
/// with a warning.
pub fn list(cipher: &NameCipher, fd: BorrowedFd<'_>, shown: &dyn std::fmt::Display) -> FsResult<Vec<u8>> {
    let raw = sys::flistxattr(fd)?;
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
    Ok(sys::fremovexattr(fd, &backing)?)
}
