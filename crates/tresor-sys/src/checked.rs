//! Opening backing entries the one safe way: beneath a root descriptor,
//! never following a symlink, never blocking on a FIFO or device planted
//! where a file or directory should be, and checking the type with `fstat`
//! before a byte is read. Temporaries are created exclusively and renamed
//! into place under their directory's descriptor.

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::{cstring, errno, fstat, fsync, open_dir_beneath, openat, pwrite_all, renameat2, unlinkat};

/// What a backing entry must be before it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    Regular,
    Directory,
}

/// A backing entry of another type than the format puts there (a FIFO,
/// device, socket or directory where a file belongs): planted, or damage.
/// Carried inside an `io::Error` of kind `InvalidData`, so the mount
/// answers EIO and the CLI prints what was found.
#[derive(Debug)]
pub struct WrongType {
    pub wanted: Want,
    pub found: &'static str,
}

impl fmt::Display for WrongType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wanted = match self.wanted {
            Want::Regular => "a regular file",
            Want::Directory => "a directory",
        };
        write!(f, "is {}, not {wanted}: not written by Tresor (planted in the backing tree?)", self.found)
    }
}

impl std::error::Error for WrongType {}

/// The type of `st` in words, for messages.
pub fn type_name(st: &libc::stat) -> &'static str {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => "a regular file",
        libc::S_IFDIR => "a directory",
        libc::S_IFLNK => "a symlink",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFSOCK => "a socket",
        _ => "of unknown type",
    }
}

/// Whether `e` is a [`WrongType`].
pub fn is_wrong_type(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<WrongType>())
}

/// Checks that `st` is of type `want`.
pub fn require(st: &libc::stat, want: Want) -> io::Result<()> {
    let fmt = st.st_mode & libc::S_IFMT;
    let ok = match want {
        Want::Regular => fmt == libc::S_IFREG,
        Want::Directory => fmt == libc::S_IFDIR,
    };
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidData, WrongType { wanted: want, found: type_name(st) }))
    }
}

/// Flags every checked open carries: no final symlink, no blocking open
/// (a FIFO's open waits for a writer; a device's may wake hardware), no
/// controlling terminal.
const SAFE: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;

/// Opens `name` in `dir` with access mode `access` (`O_RDONLY`, `O_RDWR`,
/// ...), requiring a regular file: a symlink is `ELOOP`, anything else is a
/// [`WrongType`]. The descriptor keeps `O_NONBLOCK` (it changes nothing for
/// regular files; [`crate::clear_nonblock`] drops it where it would).
pub fn open_regular(dir: BorrowedFd<'_>, name: &CStr, access: i32) -> io::Result<(OwnedFd, libc::stat)> {
    let fd = openat(dir, name, access | SAFE, 0)?;
    let st = fstat(fd.as_fd())?;
    require(&st, Want::Regular)?;
    Ok((fd, st))
}

/// Opens directory `name` in `dir` for reading (listing, fsync, xattrs),
/// not following a symlink.
pub fn open_directory(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY | SAFE, 0)
}

/// Splits a relative backing path into its directory part and last name.
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

/// Opens the directory holding relative `path` beneath `root` (no symlink,
/// never out of `root`), and returns it with the last name.
pub fn parent_beneath(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<(OwnedFd, std::ffi::CString)> {
    let (dir, name) = split(path);
    if name.is_empty() || name == b".." {
        return Err(errno(libc::EINVAL));
    }
    let dir = if dir.is_empty() { open_dir_beneath(root, b".")? } else { open_dir_beneath(root, dir)? };
    Ok((dir, cstring(name)?))
}

/// [`open_regular`] for a relative path beneath `root`: no component may
/// be a symlink, and the walk never leaves `root`.
pub fn open_regular_beneath(root: BorrowedFd<'_>, path: &[u8], access: i32) -> io::Result<(OwnedFd, libc::stat)> {
    let (dir, name) = parent_beneath(root, path)?;
    open_regular(dir.as_fd(), &name, access)
}

/// Opens a directory the administrator named by path (a backing root, a
/// mount point): it may be reached through symlinks they chose, but must be
/// a directory. Everything below it is then opened beneath this descriptor.
pub fn open_dir_path(path: &Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = cstring(path.as_os_str().as_bytes())?;
    // SAFETY: AT_FDCWD is a valid directory descriptor for the *at calls
    // for the whole life of the process.
    let cwd = unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) };
    openat(cwd, &c, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NONBLOCK, 0)
}

/// Replaces `name` in `dir` with a file holding `data`, atomically and
/// durably: written to `tmp` (created `O_EXCL | O_NOFOLLOW`, so nothing
/// planted at that name is ever followed or reused), fsynced, renamed over
/// `name` under the same directory descriptor, and the directory fsynced.
/// Readers see the old file or the new one, never a mix.
pub fn replace_file(dir: BorrowedFd<'_>, tmp: &CStr, name: &CStr, data: &[u8], mode: u32) -> io::Result<()> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
    let fd = openat(dir, tmp, flags, mode)?;
    let written = pwrite_all(fd.as_fd(), data, 0)
        .and_then(|()| fsync(fd.as_fd(), false))
        .and_then(|()| renameat2(dir, tmp, dir, name, 0));
    if let Err(e) = written {
        let _ = unlinkat(dir, tmp, false);
        return Err(e);
    }
    sync_dir(dir)
}

/// Fsyncs directory `dir` (which may be an `O_PATH` descriptor).
pub fn sync_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    let d = openat(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    fsync(d.as_fd(), false)
}
