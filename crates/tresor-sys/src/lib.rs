//! Thin, safe wrappers over the libc calls Tresor makes on the backing tree.
//! The only crate of the workspace with `unsafe` for these calls.
//!
//! Every backing entry is named as (directory descriptor, one name). The
//! directory is opened below the backing root (opened once in `prepare`)
//! with [`open_dir_beneath`], which follows no symlink and cannot leave the
//! root, and the final name is never followed either (`AT_SYMLINK_NOFOLLOW`,
//! `O_NOFOLLOW`). So a symlink the storage operator plants in the backing
//! tree can never make this daemon (often root) create, change or remove
//! anything outside the volume; and a backing symlink, whose text is
//! encrypted, never names another entry by accident. Working from the root
//! descriptor also keeps the mount working if the backing directory is
//! renamed or hidden under the mount itself.
//!
//! Each wrapper returns `io::Error` with the OS error code; the FUSE layer
//! turns that into the errno the caller sees. `EINTR` is retried here.

pub mod audit_io;
mod checked;
mod xattr;

pub use checked::{
    is_wrong_type, open_dir_path, open_directory, open_regular, open_regular_beneath, parent_beneath, replace_file,
    require, sync_dir, type_name, Want, WrongType,
};
pub use xattr::{fgetxattr, flistxattr, fremovexattr, fsetxattr};
pub mod mountinfo;
mod probe;
pub mod process;
pub use probe::{page_cache_in_use, reads_direct_at_any_alignment};

use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

mod flock;
pub use flock::{flock_exclusive, FlockGuard};

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Retries a call that failed with `EINTR`.
fn retry<T>(mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            other => return other,
        }
    }
}

pub fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// `openat(2)`, close-on-exec. `O_NOATIME` in `flags` is a wish: where
/// the caller may not ask for it (neither the file's owner nor holding
/// CAP_FOWNER: EPERM), the file is opened without it.
pub fn openat(dir: BorrowedFd<'_>, path: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    match openat_as_asked(dir, path, flags, mode) {
        Err(e) if flags & libc::O_NOATIME != 0 && e.raw_os_error() == Some(libc::EPERM) => {
            openat_as_asked(dir, path, flags & !libc::O_NOATIME, mode)
        }
        other => other,
    }
}

fn openat_as_asked(dir: BorrowedFd<'_>, path: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let fd = retry(|| {
        cvt(unsafe { libc::openat(dir.as_raw_fd(), path.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) })
    })?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the directory at relative `path` below `root` as an `O_PATH`
/// descriptor, following no symlink on the way and never leaving `root`
/// (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`). Kernels
/// without `openat2` (before 5.6, or where seccomp hides it) get the same
/// guarantee from a walk of one `O_NOFOLLOW` open per component. A symlink
/// on the way is `ELOOP` (or `ENOTDIR` from the walk); `..` is `EXDEV`.
pub fn open_dir_beneath(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<OwnedFd> {
    // Encrypted names are longer than plaintext ones, so a backing path can
    // pass PATH_MAX while its plaintext path is legal: resolve it in pieces,
    // each beneath the directory the previous piece opened.
    const PIECE: usize = 3072;
    if path.len() > PIECE {
        let cut = path[..=PIECE].iter().rposition(|&b| b == b'/').ok_or_else(|| errno(libc::ENAMETOOLONG))?;
        let first = open_dir_beneath(root, &path[..cut])?;
        return open_dir_beneath(first.as_fd(), &path[cut + 1..]);
    }
    let cpath = cstring(path)?;
    /// `struct open_how` (libc's is non-exhaustive; the kernel ABI is these
    /// three fields, and `size` tells it which version we speak).
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    };
    let mut attempts = 0;
    loop {
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd() as libc::c_long,
                cpath.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if ret >= 0 {
            // SAFETY: openat2 returned a new descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) });
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            // A rename raced with the lookup; the kernel asks us to retry.
            Some(libc::EAGAIN) if attempts < 8 => attempts += 1,
            Some(libc::ENOSYS | libc::EPERM | libc::E2BIG | libc::EAGAIN) => return walk_beneath(root, path),
            _ => return Err(err),
        }
    }
}

fn walk_beneath(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<OwnedFd> {
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW;
    let mut cur = openat(root, c".", flags, 0)?;
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => continue,
            b".." => return Err(errno(libc::EXDEV)),
            name => cur = openat(cur.as_fd(), &cstring(name)?, flags, 0)?,
        }
    }
    Ok(cur)
}

/// A new open file description of `fd`'s file with the same access mode
/// and `O_DIRECT` setting (a lane of its own for OFD locks: `tresor-mount`'s
/// file.rs). `O_DIRECT` cannot be set later with `F_SETFL`: a FUSE backing
/// client learns the flags at open only.
pub fn reopen_same(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    reopen(fd, flags & (libc::O_ACCMODE | libc::O_DIRECT))
}

/// Opens `/proc/self/fd/N`: a new open file description for the file that
/// `fd` refers to, wherever it is now (used for per-owner lock descriptors).
/// It keeps `fd`'s `O_NOATIME`.
pub fn reopen(fd: BorrowedFd<'_>, flags: i32) -> io::Result<OwnedFd> {
    let path = cstring(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())?;
    let noatime = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })? & libc::O_NOATIME;
    let fd = retry(|| cvt(unsafe { libc::open(path.as_ptr(), flags | noatime | libc::O_CLOEXEC) }))?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn fstatat(dir: BorrowedFd<'_>, path: &CStr) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    cvt(unsafe { libc::fstatat(dir.as_raw_fd(), path.as_ptr(), st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) })?;
    // SAFETY: fstatat succeeded and filled the struct.
    Ok(unsafe { st.assume_init() })
}

/// `faccessat(2)` with the effective ids, not following a final symlink.
/// Through the C library, which emulates the flags on kernels before 5.8
/// (no faccessat2): an ENOSYS here would make the kernel stop asking and
/// allow every access(2).
pub fn faccessat(dir: BorrowedFd<'_>, path: &CStr, mode: i32) -> io::Result<()> {
    let flags = libc::AT_EACCESS | libc::AT_SYMLINK_NOFOLLOW;
    cvt(unsafe { libc::faccessat(dir.as_raw_fd(), path.as_ptr(), mode, flags) })?;
    Ok(())
}

pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    let mut st = MaybeUninit::<libc::stat>::uninit();
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstat succeeded and filled the struct.
    Ok(unsafe { st.assume_init() })
}

pub fn fstatvfs(fd: BorrowedFd<'_>) -> io::Result<libc::statvfs> {
    let mut st = MaybeUninit::<libc::statvfs>::uninit();
    cvt(unsafe { libc::fstatvfs(fd.as_raw_fd(), st.as_mut_ptr()) })?;
    // SAFETY: fstatvfs succeeded and filled the struct.
    Ok(unsafe { st.assume_init() })
}

/// What identifies one version of a small file (the volume file, a
/// directory IV) without reading it: a cache entry is valid while it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: i64,
    ctime: (i64, i64),
    mtime: (i64, i64),
}

impl Stamp {
    pub fn of(st: &libc::stat) -> Stamp {
        Stamp {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size,
            ctime: (st.st_ctime, st.st_ctime_nsec),
            mtime: (st.st_mtime, st.st_mtime_nsec),
        }
    }
}

/// A byte count from pread/pwrite, or the error they set.
pub(crate) fn cvt_len(n: isize) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Reads exactly `buf.len()` bytes at `offset`; a short file is `UnexpectedEof`.
pub fn pread_exact(fd: BorrowedFd<'_>, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = retry(|| {
            cvt_len(unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset_arg(offset)?) })
        })?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "backing file is shorter than expected"));
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Writes all of `buf` at `offset`.
pub fn pwrite_all(fd: BorrowedFd<'_>, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = retry(|| {
            cvt_len(unsafe { libc::pwrite(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), offset_arg(offset)?) })
        })?;
        if n == 0 {
            return Err(errno(libc::EIO));
        }
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

fn offset_arg(offset: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(offset).map_err(|_| errno(libc::EFBIG))
}

/// Reserves the backing space of `len` bytes at `offset` without changing
/// the length (`fallocate(FALLOC_FL_KEEP_SIZE)`): ENOSPC now rather than
/// at a later write; the space reads as zeros.
pub fn reserve(fd: BorrowedFd<'_>, offset: u64, len: u64) -> io::Result<()> {
    let (offset, len) = (offset_arg(offset)?, offset_arg(len)?);
    // SAFETY: fallocate on a descriptor; no memory is passed.
    retry(|| cvt(unsafe { libc::fallocate(fd.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len) })).map(drop)
}

pub fn ftruncate(fd: BorrowedFd<'_>, len: u64) -> io::Result<()> {
    let len = offset_arg(len)?;
    retry(|| cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), len) })).map(drop)
}

pub fn fsync(fd: BorrowedFd<'_>, datasync: bool) -> io::Result<()> {
    retry(|| {
        cvt(unsafe {
            if datasync {
                libc::fdatasync(fd.as_raw_fd())
            } else {
                libc::fsync(fd.as_raw_fd())
            }
        })
    })
    .map(drop)
}

pub fn mkdirat(dir: BorrowedFd<'_>, path: &CStr, mode: u32) -> io::Result<()> {
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), path.as_ptr(), mode as libc::mode_t) }).map(drop)
}

pub fn mknodat(dir: BorrowedFd<'_>, path: &CStr, mode: u32, rdev: u64) -> io::Result<()> {
    cvt(unsafe { libc::mknodat(dir.as_raw_fd(), path.as_ptr(), mode as libc::mode_t, rdev as libc::dev_t) }).map(drop)
}

pub fn unlinkat(dir: BorrowedFd<'_>, path: &CStr, remove_dir: bool) -> io::Result<()> {
    let flags = if remove_dir { libc::AT_REMOVEDIR } else { 0 };
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), path.as_ptr(), flags) }).map(drop)
}

/// `renameat2`; flags 0 is a plain `renameat`.
pub fn renameat2(
    from_dir: BorrowedFd<'_>,
    from: &CStr,
    to_dir: BorrowedFd<'_>,
    to: &CStr,
    flags: u32,
) -> io::Result<()> {
    let ret = if flags == 0 {
        unsafe { libc::renameat(from_dir.as_raw_fd(), from.as_ptr(), to_dir.as_raw_fd(), to.as_ptr()) }
    } else {
        unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                from_dir.as_raw_fd() as libc::c_long,
                from.as_ptr(),
                to_dir.as_raw_fd() as libc::c_long,
                to.as_ptr(),
                flags as libc::c_long,
            ) as libc::c_int
        }
    };
    cvt(ret).map(drop)
}

/// Renames without replacing an existing `to`. Falls back to a check and a
/// plain rename on back ends without `RENAME_NOREPLACE` (racy there; noted
/// in the module docs of `fs`).
pub fn rename_noreplace(from_dir: BorrowedFd<'_>, from: &CStr, to_dir: BorrowedFd<'_>, to: &CStr) -> io::Result<()> {
    match renameat2(from_dir, from, to_dir, to, libc::RENAME_NOREPLACE) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::ENOSYS) => {
            match fstatat(to_dir, to) {
                Ok(_) => Err(errno(libc::EEXIST)),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => renameat2(from_dir, from, to_dir, to, 0),
                Err(e) => Err(e),
            }
        }
        other => other,
    }
}

/// A new regular file in `dir` with no name yet (`O_TMPFILE`), opened with
/// `flags` (an access mode of `O_RDWR` or `O_WRONLY`, and no `O_EXCL`, so
/// it can be named later with [`link_unnamed`]); `None` where the file
/// system cannot make one (most FUSE and network clients), so the caller
/// can fall back to a temporary name.
pub fn open_unnamed(dir: BorrowedFd<'_>, flags: i32, mode: u32) -> io::Result<Option<OwnedFd>> {
    match openat_as_asked(dir, c".", flags | libc::O_TMPFILE, mode) {
        Ok(fd) => Ok(Some(fd)),
        // EOPNOTSUPP: no tmpfile operation; EISDIR: a kernel that reads
        // O_TMPFILE as O_DIRECTORY; EINVAL, ENOSYS: older kernels and clients.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL | libc::ENOSYS)) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Gives the file `fd` opened by [`open_unnamed`] the name `to` in
/// `to_dir`; EEXIST if the name is taken. Through `/proc/self/fd`, as
/// `AT_EMPTY_PATH` needs `CAP_DAC_READ_SEARCH`, which a user's daemon lacks;
/// the magic link leads only to `fd`'s own file.
pub fn link_unnamed(fd: BorrowedFd<'_>, to_dir: BorrowedFd<'_>, to: &CStr) -> io::Result<()> {
    let path = cstring(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())?;
    // SAFETY: both paths are NUL-terminated and outlive the call.
    cvt(unsafe {
        libc::linkat(libc::AT_FDCWD, path.as_ptr(), to_dir.as_raw_fd(), to.as_ptr(), libc::AT_SYMLINK_FOLLOW)
    })
    .map(drop)
}

pub fn linkat(from_dir: BorrowedFd<'_>, from: &CStr, to_dir: BorrowedFd<'_>, to: &CStr) -> io::Result<()> {
    cvt(unsafe { libc::linkat(from_dir.as_raw_fd(), from.as_ptr(), to_dir.as_raw_fd(), to.as_ptr(), 0) }).map(drop)
}

pub fn symlinkat(target: &CStr, dir: BorrowedFd<'_>, path: &CStr) -> io::Result<()> {
    cvt(unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), path.as_ptr()) }).map(drop)
}

pub fn readlinkat(dir: BorrowedFd<'_>, path: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    let n = cvt_len(unsafe { libc::readlinkat(dir.as_raw_fd(), path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) })?;
    if n >= buf.len() {
        return Err(errno(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(buf)
}

pub fn fchmodat(dir: BorrowedFd<'_>, path: &CStr, mode: u32) -> io::Result<()> {
    cvt(unsafe { libc::fchmodat(dir.as_raw_fd(), path.as_ptr(), mode as libc::mode_t, 0) }).map(drop)
}

pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) }).map(drop)
}

/// `uid`/`gid` of `u32::MAX` (-1) leave that id unchanged.
pub fn fchownat(dir: BorrowedFd<'_>, path: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    cvt(unsafe { libc::fchownat(dir.as_raw_fd(), path.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    cvt(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) }).map(drop)
}

pub fn utimensat(dir: BorrowedFd<'_>, path: &CStr, times: &[libc::timespec; 2]) -> io::Result<()> {
    cvt(unsafe { libc::utimensat(dir.as_raw_fd(), path.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) }).map(drop)
}

pub fn futimens(fd: BorrowedFd<'_>, times: &[libc::timespec; 2]) -> io::Result<()> {
    cvt(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) }).map(drop)
}

/// Unix seconds now (0 before 1970).
pub fn now_secs() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

pub fn geteuid() -> u32 {
    unsafe { libc::geteuid() }
}

/// One directory entry as the backing file system lists it.
pub struct RawEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    pub d_type: u8,
}

/// Lists a directory (without `.` and `..`). Takes a descriptor of its own
/// (`fdopendir` owns and closes it).
pub fn read_dir(dir: OwnedFd) -> io::Result<Vec<RawEntry>> {
    let raw: RawFd = std::os::fd::IntoRawFd::into_raw_fd(dir);
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        let err = io::Error::last_os_error();
        unsafe { libc::close(raw) };
        return Err(err);
    }
    let mut out = Vec::new();
    let result = loop {
        // readdir signals errors only through errno, so clear it first.
        unsafe { *libc::__errno_location() = 0 };
        let ent = unsafe { libc::readdir64(stream) };
        if ent.is_null() {
            let code = unsafe { *libc::__errno_location() };
            break if code == 0 { Ok(()) } else { Err(errno(code)) };
        }
        // SAFETY: readdir returned a valid entry, valid until the next call.
        let ent = unsafe { &*ent };
        let name = unsafe { CStr::from_ptr(ent.d_name.as_ptr()) }.to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        out.push(RawEntry { name: name.to_vec(), ino: ent.d_ino, d_type: ent.d_type });
    };
    unsafe { libc::closedir(stream) };
    result.map(|()| out)
}

/// Reads a small file whole (the volume file, sidecars, IVs), refusing
/// anything longer than `max` bytes: opened with [`open_regular`] (no
/// symlink, non-blocking, a regular file or [`Kind::WrongType`]), and
/// its size checked before a byte is read or allocated, so neither a FIFO
/// nor a huge sparse file planted in its place costs more than a `stat`.
/// Reading metadata leaves the file's access time alone (`O_NOATIME`): the
/// access time of a special file's record is the special file's.
pub fn read_small(dir: BorrowedFd<'_>, path: &CStr, max: usize) -> io::Result<Vec<u8>> {
    let (fd, st) = open_regular(dir, path, libc::O_RDONLY | libc::O_NOATIME)?;
    read_bounded(fd.as_fd(), &st, max)
}

/// Reads the regular file open as `fd` (`st`: its `fstat`) whole, refusing
/// more than `max` bytes (`EFBIG`) before allocating.
pub fn read_bounded(fd: BorrowedFd<'_>, st: &libc::stat, max: usize) -> io::Result<Vec<u8>> {
    if st.st_size < 0 || st.st_size as u64 > max as u64 {
        return Err(errno(libc::EFBIG));
    }
    // One byte more than the size seen: a file that grows meanwhile is
    // still read only up to `max`.
    let mut out = vec![0u8; (st.st_size as usize).min(max) + 1];
    let mut len = 0;
    loop {
        let n =
            retry(|| cvt_len(unsafe { libc::read(fd.as_raw_fd(), out[len..].as_mut_ptr().cast(), out.len() - len) }))?;
        if n == 0 {
            break;
        }
        len += n;
        if len > max {
            return Err(errno(libc::EFBIG));
        }
        if len == out.len() {
            out.resize((out.len() * 2).min(max + 1), 0);
        }
    }
    out.truncate(len);
    Ok(out)
}

/// Creates `path` with `O_EXCL` and writes `data` into it.
pub fn write_new(dir: BorrowedFd<'_>, path: &CStr, data: &[u8], mode: u32) -> io::Result<()> {
    let fd = openat(dir, path, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW, mode)?;
    if let Err(e) = pwrite_all(fd.as_fd(), data, 0) {
        drop(fd);
        let _ = unlinkat(dir, path, false);
        return Err(e);
    }
    Ok(())
}

/// 16 random hex digits (temporary names). Drawn from a per-thread batch
/// of OS randomness: one getrandom call per 64 names, not one per create.
pub fn random_hex() -> String {
    use rand_core::RngCore;
    use std::cell::RefCell;
    thread_local! {
        static POOL: RefCell<([u8; 512], usize)> = const { RefCell::new(([0; 512], 512)) };
    }
    POOL.with_borrow_mut(|(bytes, used)| {
        if *used == bytes.len() {
            rand_core::OsRng.fill_bytes(bytes);
            *used = 0;
        }
        let b = &mut bytes[*used..*used + 8];
        let hex = b.iter().map(|x| format!("{x:02x}")).collect();
        b.fill(0);
        *used += 8;
        hex
    })
}

pub fn is_errno(e: &io::Error, code: i32) -> bool {
    e.raw_os_error() == Some(code)
}

/// An errno for a FUSE reply. Every failure inside the mount ends up as one
/// of these; the place that knows the context logs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

pub type FsResult<T> = Result<T, Errno>;

impl From<io::Error> for Errno {
    fn from(e: io::Error) -> Errno {
        match e.raw_os_error() {
            Some(code) if code > 0 => Errno(code),
            // Short reads of backing files (UnexpectedEof) and the like: the
            // backing file is not what the format says it must be.
            _ => Errno(libc::EIO),
        }
    }
}

impl Errno {
    pub const EIO: Errno = Errno(libc::EIO);
    pub const EACCES: Errno = Errno(libc::EACCES);
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const EROFS: Errno = Errno(libc::EROFS);
    pub const EEXIST: Errno = Errno(libc::EEXIST);
    pub const ENOTEMPTY: Errno = Errno(libc::ENOTEMPTY);
    pub const EBADF: Errno = Errno(libc::EBADF);
    pub const EFBIG: Errno = Errno(libc::EFBIG);
    pub const ESTALE: Errno = Errno(libc::ESTALE);
    /// Not an errno: the backing file was re-keyed away under this handle
    /// (`file::MOVED_MAGIC`); the caller reopens by path and retries. Never
    /// sent to the kernel (`fs::errno` maps it to EIO if it ever got there).
    pub const MOVED: Errno = Errno(-1);
    pub const ENOTSUP: Errno = Errno(libc::ENOTSUP);
    pub const ENAMETOOLONG: Errno = Errno(libc::ENAMETOOLONG);
}

/// Clears `O_NONBLOCK` (set while opening, so that a FIFO or device planted
/// where a file should be can never block the open).
pub fn clear_nonblock(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) }).map(drop)
}

/// Raises the kernel's readahead window for the FUSE mount at `mountpoint`
/// to `kib` KiB if it is smaller, and returns the window now in force.
///
/// The kernel offers FUSE 128 KiB of readahead at `INIT` and a daemon can
/// only lower that there; the window lives in the mount's backing device
/// info (`/sys/class/bdi/MAJOR:MINOR/read_ahead_kb`, writable by root),
/// where it can be raised once `INIT` is answered. `stat` of the mount
/// point only returns then, so this waits for the mount to be live. Every
/// read request has fixed costs (a round trip, two lock calls, an `fstat`),
/// so 1 MiB requests stream faster than 128 KiB ones; the data cached is
/// the same data, kept valid the same way (`cache_timeout`, auto
/// invalidation), so this changes nothing another node can see.
pub fn raise_readahead(mountpoint: &std::path::Path, kib: u32) -> io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(mountpoint)?.dev();
    let path = format!("/sys/class/bdi/{}:{}/read_ahead_kb", libc::major(dev), libc::minor(dev));
    let now: u32 = std::fs::read_to_string(&path)?
        .trim()
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: not a number")))?;
    if now >= kib {
        return Ok(now);
    }
    std::fs::write(&path, kib.to_string())?;
    Ok(kib)
}

/// An open-file-description byte-range lock request (`F_OFD_SETLK(W)`) at
/// raw offsets; `l_type` `F_UNLCK` releases. `len` 0: to the end and beyond.
pub fn ofd_setlk(fd: BorrowedFd<'_>, l_type: i32, start: u64, len: u64, wait: bool) -> io::Result<()> {
    let mut fl = flock(l_type, start, len)?;
    let cmd = if wait { libc::F_OFD_SETLKW } else { libc::F_OFD_SETLK };
    retry(|| cvt(unsafe { libc::fcntl(fd.as_raw_fd(), cmd, &mut fl as *mut libc::flock) })).map(drop)
}

/// The first lock that would conflict with `l_type` on the range, as
/// `(l_type, start, len)`, or `None` (`F_OFD_GETLK`).
pub fn ofd_getlk(fd: BorrowedFd<'_>, l_type: i32, start: u64, len: u64) -> io::Result<Option<(i32, u64, u64)>> {
    let mut fl = flock(l_type, start, len)?;
    retry(|| cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl as *mut libc::flock) }))?;
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    Ok(Some((fl.l_type as i32, fl.l_start.max(0) as u64, fl.l_len.max(0) as u64)))
}

fn flock(l_type: i32, start: u64, len: u64) -> io::Result<libc::flock> {
    // SAFETY: all-zero is a valid `struct flock`; l_pid must be 0 for OFD locks.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = l_type as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = libc::off_t::try_from(start).map_err(|_| errno(libc::EINVAL))?;
    fl.l_len = libc::off_t::try_from(len).map_err(|_| errno(libc::EINVAL))?;
    Ok(fl)
}

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// From now on SIGINT and SIGTERM only set a flag ([`stop_requested`])
/// instead of ending the process, so a long run can stop between safe
/// points.
pub fn catch_stop_signals() {
    let handler = on_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// Whether SIGINT or SIGTERM arrived since [`catch_stop_signals`].
pub fn stop_requested() -> bool {
    STOP.load(std::sync::atomic::Ordering::SeqCst)
}

/// Gives SIGPIPE its default action back (the process ends, silently),
/// where Rust's runtime ignores it and every later `println!` to a closed
/// pipe panics: right for a command that only prints (`tresor acl -r |
/// head`), wrong for one that changes files midway (it keeps ignoring it).
pub fn default_sigpipe() {
    // SAFETY: SIG_DFL is a valid disposition; no handler of ours runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The real user and group ids of the process (for audit records).
pub fn getuid() -> u32 {
    unsafe { libc::getuid() }
}

pub fn getgid() -> u32 {
    unsafe { libc::getgid() }
}

/// `chown` of the entry an `O_PATH` descriptor holds (a symlink or special
/// file, which cannot be opened for I/O): `fchownat(fd, "", AT_EMPTY_PATH)`.
pub fn fchown_opath(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    let flags = libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW;
    cvt(unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), uid, gid, flags) }).map(drop)
}

/// `/proc/self/fd/N` of `fd`: resolving it lands on the entry the
/// descriptor holds, without following that entry if it is a symlink.
fn proc_fd_path(fd: BorrowedFd<'_>) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number")
}

/// `utimensat` of the entry an `O_PATH` descriptor holds (no
/// `AT_EMPTY_PATH` for it; the `/proc/self/fd` link names exactly that
/// inode, as systemd's `futimens_opath` does).
pub fn utimens_opath(fd: BorrowedFd<'_>, times: &[libc::timespec; 2]) -> io::Result<()> {
    let path = proc_fd_path(fd);
    cvt(unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) }).map(drop)
}

/// `chmod` of the special file an `O_PATH` descriptor holds (through its
/// `/proc/self/fd` link; symlinks have no mode to change).
pub fn fchmod_opath(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    let path = proc_fd_path(fd);
    cvt(unsafe { libc::fchmodat(libc::AT_FDCWD, path.as_ptr(), mode as libc::mode_t, 0) }).map(drop)
}

/// Gives the file open as `fd` the new name `name` in `dir` (`linkat` of
/// its `/proc/self/fd` link with `AT_SYMLINK_FOLLOW`, which needs no
/// capability): the descriptor names the inode, so no path is resolved
/// twice. `EEXIST` if `name` exists.
pub fn link_fd(fd: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let from = proc_fd_path(fd);
    cvt(unsafe { libc::linkat(libc::AT_FDCWD, from.as_ptr(), dir.as_raw_fd(), name.as_ptr(), libc::AT_SYMLINK_FOLLOW) })
        .map(drop)
}
