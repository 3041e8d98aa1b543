//! The calls the audit log makes (`tresor-audit`'s writer and readers):
//! its directory opened without following a symlink, log files created
//! exclusively beneath it, logs opened for reading without blocking on a
//! planted FIFO, and the process facts a record names (host, uid, gid).
//!
//! The storage operator may plant a symlink where `tresor.audit` should be,
//! or where a log file will be created: the daemon (often root) must then
//! refuse, never write through it (issue 10, class 4).

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::{cstring, errno, fstat, mkdirat, openat};

const DIR_FLAGS: i32 = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK;

/// Opens directory `name` (one component) in `parent`, making it (mode
/// `mode`) if missing; never follows a symlink there: a symlink, FIFO or
/// file in its place is an error (`ELOOP` / `ENOTDIR`).
pub fn open_or_make_dir_in(parent: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<OwnedFd> {
    match mkdirat(parent, name, mode) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => return Err(e),
    }
    openat(parent, name, DIR_FLAGS, 0).map_err(|e| match crate::fstatat(parent, name) {
        // O_DIRECTORY | O_NOFOLLOW says ENOTDIR for a symlink: say ELOOP.
        Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => errno(libc::ELOOP),
        _ => e,
    })
}

/// Opens directory `name` in the existing directory `backing` (a volume's
/// backing directory, as the operator named it), making it if missing:
/// `name` itself is never followed if it is a symlink.
pub fn open_or_make_dir_beneath(backing: &Path, name: &CStr, mode: u32) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let root = openat(cwd(), &cstring(backing.as_os_str().as_bytes())?, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    open_or_make_dir_in(root.as_fd(), name, mode)
}

/// Opens a directory the operator named by path (a configured audit
/// directory outside the volume), making it and its parents if missing.
/// The path's last component must be a directory itself, not a symlink to
/// one (`ELOOP`); the components above it are the operator's own.
pub fn open_or_make_dir(path: &Path, mode: u32) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let name = path.file_name().ok_or_else(|| errno(libc::EINVAL))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent)?;
    let parent = openat(cwd(), &cstring(parent.as_os_str().as_bytes())?, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    open_or_make_dir_in(parent.as_fd(), &cstring(name.as_bytes())?, mode)
}

/// Opens an existing directory by path, for reading, following no symlink
/// in its last component.
pub fn open_dir_nofollow(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    openat(cwd(), &cstring(path.as_os_str().as_bytes())?, DIR_FLAGS, 0)
}

/// Creates log file `name` in `dir`: `O_EXCL | O_NOFOLLOW`, append-only, so
/// an entry planted under that name (a symlink included) is `EEXIST`.
pub fn create_log(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<File> {
    let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
    Ok(File::from(openat(dir, name, flags, mode)?))
}

/// Removes log file `name` from `dir` (a pruned segment): the entry
/// itself, never what a symlink there points to.
pub fn remove_log(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    crate::unlinkat(dir, name, false)
}

/// Opens a log for reading: no symlink in the last component, never blocks
/// on a FIFO or device, and anything but a regular file is `EINVAL`-like
/// (`ENODEV` for devices and FIFOs, `EISDIR` for directories).
pub fn open_log(dir: Option<BorrowedFd<'_>>, path: &Path) -> io::Result<File> {
    use std::os::unix::ffi::OsStrExt;
    let fd = openat(
        dir.unwrap_or(cwd()),
        &cstring(path.as_os_str().as_bytes())?,
        libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        0,
    )?;
    let st = fstat(fd.as_fd())?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => {
            crate::clear_nonblock(fd.as_fd())?;
            Ok(File::from(fd))
        }
        libc::S_IFDIR => Err(errno(libc::EISDIR)),
        _ => Err(errno(libc::ENODEV)),
    }
}

/// The current directory as a descriptor argument (`AT_FDCWD`).
fn cwd<'a>() -> BorrowedFd<'a> {
    // SAFETY: AT_FDCWD is a sentinel the *at calls accept in place of a
    // descriptor; it is never closed or read as one.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

/// This machine's host name (`gethostname`), as bytes.
pub fn host_name() -> Vec<u8> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its length; gethostname writes at
    // most that many bytes.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return Vec::new();
    }
    buf[..buf.iter().position(|&b| b == 0).unwrap_or(buf.len())].to_vec()
}

/// The real user and group ids of this process.
pub fn uid_gid() -> (u32, u32) {
    // SAFETY: getuid and getgid cannot fail and touch no memory.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Sends `msg` to syslog at `authpriv.notice` under the name `tresor`.
/// Whether syslog(3) can deliver: something listens on /dev/log
/// (journald, rsyslog). Audit anchors go there by default when it does.
pub fn syslog_reachable() -> bool {
    std::os::unix::net::UnixDatagram::unbound().and_then(|s| s.connect("/dev/log")).is_ok()
}

pub fn syslog_authpriv_notice(msg: &str) {
    let Ok(msg) = std::ffi::CString::new(msg) else { return };
    // SAFETY: both strings are NUL-terminated and outlive the calls; the
    // format is a constant "%s", so the message is never a format.
    unsafe {
        libc::openlog(c"tresor".as_ptr(), libc::LOG_PID, libc::LOG_AUTHPRIV);
        libc::syslog(libc::LOG_NOTICE, c"%s".as_ptr(), msg.as_ptr());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_or_fifo_in_place_of_the_directory_or_a_log_is_refused() {
        let tmp = std::env::temp_dir().join(format!("tresor-audit-io-{}", crate::random_hex()));
        std::fs::create_dir(&tmp).unwrap();
        let root = openat(cwd(), &cstring(tmp.as_os_str().as_encoded_bytes()).unwrap(), DIR_FLAGS, 0).unwrap();
        std::os::unix::fs::symlink("/tmp", tmp.join("link")).unwrap();
        let e = open_or_make_dir_in(root.as_fd(), c"link", 0o750).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        crate::mknodat(root.as_fd(), c"fifo", libc::S_IFIFO | 0o600, 0).unwrap();
        let e = open_or_make_dir_in(root.as_fd(), c"fifo", 0o750).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR), "{e}");
        assert_eq!(open_log(None, &tmp.join("fifo")).unwrap_err().raw_os_error(), Some(libc::ENODEV));
        let dir = open_or_make_dir_in(root.as_fd(), c"d", 0o750).unwrap();
        create_log(dir.as_fd(), c"a.log", 0o640).unwrap();
        std::os::unix::fs::symlink("/tmp/elsewhere.log", tmp.join("d/b.log")).unwrap();
        assert_eq!(create_log(dir.as_fd(), c"b.log", 0o640).unwrap_err().raw_os_error(), Some(libc::EEXIST));
        assert!(std::fs::symlink_metadata("/tmp/elsewhere.log").is_err());
        assert_eq!(open_or_make_dir(&tmp.join("link"), 0o750).unwrap_err().raw_os_error(), Some(libc::ELOOP));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
