//! The CLI's access to a volume's backing tree, through `tresor-sys` with
//! the daemon's discipline: every entry is opened beneath the backing
//! root's descriptor (`openat2` `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`),
//! no link is followed, a file is opened non-blocking and its type checked
//! before a byte is read, reads are bounded by the format's limits, and the
//! volume file is replaced through an exclusively created temporary
//! renamed under the root's descriptor. The storage operator can plant
//! anything in the tree; a root `tresor` run must neither hang on it nor
//! write outside the volume because of it.

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsFd, BorrowedFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
};

use anyhow::{anyhow, Context, Result};
use tresor_format::{names, volume::MAX_VOLUME_LEN, DirIv};

/// Temporaries of the CLI in the backing tree (reserved names, never shown;
/// stale ones are removed by recursive runs).
pub const TMP_PREFIX: &str = "tresor.tmp.";

/// Longest long-name sidecar read (the mount's bound: a name of 255 bytes
/// encrypts to far less).
pub const SIDECAR_MAX: usize = 8192;

/// A fresh temporary name `tresor.tmp.<random>`.
pub fn tmp_name() -> CString {
    CString::new(format!("{TMP_PREFIX}{}", tresor_sys::random_hex())).expect("no NUL")
}

/// The backing root, open: every path below it is opened beneath it.
pub struct Root {
    pub path: PathBuf,
    fd: OwnedFd,
    /// `O_DIRECT` where the backing client would otherwise serve a read
    /// under the lock from its own cache (`tresor_mount::data_flags`).
    data_flags: i32,
}

/// Turns an error of the checked opens into a message that names the
/// entry and says what was found there.
pub fn explain(path: &Path, e: io::Error) -> anyhow::Error {
    let shown = path.display();
    if tresor_sys::is_wrong_type(&e) {
        return anyhow!("{shown} {e}");
    }
    match e.raw_os_error() {
        Some(libc::ELOOP) => anyhow!("{shown} is a symlink, or lies below one: refused (never followed)"),
        Some(libc::EXDEV) => anyhow!("{shown} lies outside the volume: refused"),
        _ => anyhow::Error::new(e).context(format!("{shown}")),
    }
}

impl Root {
    /// Opens the backing root the user named (a path they chose may pass
    /// through symlinks; nothing below it may).
    pub fn open(path: &Path) -> Result<Root> {
        let fd = tresor_sys::open_dir_path(path).with_context(|| format!("opening {}", path.display()))?;
        let data_flags = tresor_mount::data_flags(fd.as_fd());
        Ok(Root { path: path.to_owned(), fd, data_flags })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `abs` (a path at or below the root) relative to it, as bytes.
    fn rel<'p>(&self, abs: &'p Path) -> Result<&'p [u8]> {
        let rel = abs
            .strip_prefix(&self.path)
            .map_err(|_| anyhow!("{} is not inside the volume at {}", abs.display(), self.path.display()))?;
        Ok(if rel.as_os_str().is_empty() { b"." } else { rel.as_os_str().as_bytes() })
    }

    /// Opens directory `abs` beneath the root (an `O_PATH` descriptor).
    pub fn dir(&self, abs: &Path) -> Result<OwnedFd> {
        let rel = self.rel(abs)?;
        tresor_sys::open_dir_beneath(self.fd(), rel).map_err(|e| explain(abs, e))
    }

    /// The directory of `abs`, open beneath the root, and its last name.
    pub fn parent(&self, abs: &Path) -> Result<(OwnedFd, CString)> {
        let rel = self.rel(abs)?;
        tresor_sys::parent_beneath(self.fd(), rel).map_err(|e| explain(abs, e))
    }

    /// Opens regular file `abs` beneath the root with `access` (`O_RDONLY`,
    /// `O_RDWR`): non-blocking, type-checked; `O_NONBLOCK` is then cleared.
    /// File data is read past the backing client's cache where it has one
    /// and takes `O_DIRECT` (`tresor_mount::data_flags`).
    pub fn file(&self, abs: &Path, access: i32) -> Result<(std::fs::File, libc::stat)> {
        let rel = self.rel(abs)?;
        let access = access | self.data_flags;
        let (fd, st) = tresor_sys::open_regular_beneath(self.fd(), rel, access).map_err(|e| explain(abs, e))?;
        tresor_sys::clear_nonblock(fd.as_fd())?;
        Ok((std::fs::File::from(fd), st))
    }

    /// Reads small file `name` in directory `abs` whole, bounded by `max`.
    pub fn read_small(&self, dir_abs: &Path, name: &str, max: usize) -> Result<Vec<u8>> {
        let path = dir_abs.join(name);
        let dir = self.dir(dir_abs)?;
        let cname = tresor_sys::cstring(name.as_bytes())?;
        tresor_sys::read_small(dir.as_fd(), &cname, max).map_err(|e| match e.raw_os_error() {
            Some(libc::EFBIG) => anyhow!("{} is larger than the format allows ({max} bytes at most)", path.display()),
            _ => explain(&path, e),
        })
    }

    /// The IV of backing directory `abs`.
    pub fn read_iv(&self, abs: &Path) -> Result<DirIv> {
        let p = abs.join(names::DIRIV_FILE);
        tresor_format::place::parse_diriv(&self.read_iv_bytes(abs)?)
            .with_context(|| format!("{} is invalid", p.display()))
    }

    /// The bytes of `tresor.diriv` in backing directory `abs` (IV and place
    /// tags, FORMAT.md §8.1), read bounded beneath the root.
    pub fn read_iv_bytes(&self, abs: &Path) -> Result<Vec<u8>> {
        self.read_small(abs, names::DIRIV_FILE, tresor_format::place::DIRIV_FILE_MAX)
    }
}

/// Reads `tresor.volume` of the volume at `backing`: non-blocking,
/// type-checked, at most `MAX_VOLUME_LEN` bytes.
pub fn read_volume_file(backing: &Path) -> Result<Vec<u8>> {
    let root = Root::open(backing)?;
    let cname = tresor_sys::cstring(names::VOLUME_FILE.as_bytes())?;
    let path = backing.join(names::VOLUME_FILE);
    tresor_sys::read_small(root.fd(), &cname, MAX_VOLUME_LEN).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => {
            anyhow!("{} is not a Tresor volume (no {})", backing.display(), names::VOLUME_FILE)
        }
        Some(libc::EFBIG) => anyhow!(
            "{} is larger than any volume file can be ({MAX_VOLUME_LEN} bytes at most): not written by Tresor",
            path.display()
        ),
        _ => explain(&path, e),
    })
}

/// Replaces `tresor.volume` of the volume at `backing` atomically (readers
/// on any node see the old registry or the new one) and durably, through an
/// exclusively created temporary renamed under the root's descriptor.
pub fn write_volume_file(backing: &Path, bytes: &[u8]) -> Result<()> {
    let root = Root::open(backing)?;
    let cname = tresor_sys::cstring(names::VOLUME_FILE.as_bytes())?;
    tresor_sys::replace_file(root.fd(), &tmp_name(), &cname, bytes, 0o644)
        .map_err(|e| explain(&backing.join(names::VOLUME_FILE), e))
        .context("replacing the volume file")
}
