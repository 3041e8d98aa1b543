//! Probes of what the backing file system's client does with file data,
//! run once at mount time on a file that exists in every volume (the
//! volume file): read-only, nothing is written.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use crate::{cvt_len, open_regular, retry};

/// Whether `name` in `dir` can be read with `O_DIRECT` at an offset and
/// length that no block device would accept (1 byte at offset 1 into an
/// odd address). Network and FUSE clients that implement direct I/O
/// themselves (ceph-fuse, NFS, GlusterFS with `remote-dio`) accept it and
/// then bypass their own caches; local disk file systems refuse it with
/// `EINVAL`. Any other error is returned.
pub fn reads_direct_at_any_alignment(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<bool> {
    let (fd, st) = match open_regular(dir, name, libc::O_RDONLY | libc::O_DIRECT) {
        Ok(opened) => opened,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(false),
        Err(e) => return Err(e),
    };
    if st.st_size < 2 {
        return Err(io::Error::from_raw_os_error(libc::ENODATA));
    }
    let mut buf = [0u8; 3];
    let odd = &mut buf[1..2];
    // SAFETY: `odd` is a valid, writable buffer of odd.len() bytes.
    match retry(|| cvt_len(unsafe { libc::pread(fd.as_raw_fd(), odd.as_mut_ptr().cast(), odd.len(), 1) })) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether the kernel keeps `name`'s data in its page cache when read
/// through `dir`'s file system: a FUSE file system that opens files with
/// `FOPEN_DIRECT_IO` (ceph-fuse with `fuse_disable_pagecache`, GlusterFS
/// with `direct-io-mode=enable`) refuses a shared mapping with `ENODEV`;
/// any other file system maps it (and may serve reads from the cache).
pub fn page_cache_in_use(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<bool> {
    let (fd, _) = open_regular(dir, name, libc::O_RDONLY)?;
    // SAFETY: a fresh shared read-only mapping of one page of a file we
    // hold open; nothing reads it, and it is unmapped at once.
    let at =
        unsafe { libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ, libc::MAP_SHARED, fd.as_fd().as_raw_fd(), 0) };
    if at == libc::MAP_FAILED {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENODEV) { Ok(false) } else { Err(e) };
    }
    // SAFETY: `at` is the mapping made above, 4096 bytes long.
    unsafe { libc::munmap(at, 4096) };
    Ok(true)
}
