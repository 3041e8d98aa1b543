//! The kernel side of a mount: made by Tresor itself when it runs as root
//! (so it shows as type `fuse.tresor`), remounted with new flags
//! (`mount -o remount,ro`), and unmounted on request (a signal to the
//! daemon) the way `umount` would.
//!
//! fuser's own root mount calls mount(2) with type `fuse`, dropping the
//! subtype, and its unmount-on-exit warns after every ordinary `umount`
//! (the mount is gone already). So as root the mount is made here and
//! handed to fuser as a descriptor ([`fuser::Session::from_fd`]); as any
//! other user fuser runs the setuid `fusermount3`, which passes the
//! subtype itself.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::mount::{MountFlags, UnmountFlags};

use crate::config::apply_vfs_option;
use crate::MountError;

/// The file system type root mounts show (`findmnt -t fuse.tresor`,
/// `umount -a -t fuse.tresor`).
pub const FS_TYPE: &str = "fuse.tresor";

/// What a root mount(2) needs besides the descriptor.
#[derive(Debug, Clone)]
pub(crate) struct RootMount {
    /// What `/proc/mounts` shows as the source (the `fsname`).
    pub source: String,
    pub flags: MountFlags,
    /// FUSE options the kernel takes after `fd=,rootmode=,user_id=,group_id=`.
    pub options: Vec<&'static str>,
}

impl RootMount {
    /// Opens `/dev/fuse` and mounts it at `mountpoint`; the returned
    /// descriptor carries the session (the kernel's INIT waits on it).
    pub fn mount(&self, mountpoint: &Path) -> io::Result<OwnedFd> {
        let dev = File::options().read(true).write(true).open("/dev/fuse")?;
        let rootmode = std::fs::metadata(mountpoint)?.permissions().mode() & libc::S_IFMT;
        let mut data = format!(
            "fd={},rootmode={rootmode:o},user_id={},group_id={}",
            dev.as_raw_fd(),
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw()
        );
        for o in &self.options {
            data.push(',');
            data.push_str(o);
        }
        let data = std::ffi::CString::new(data).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        rustix::mount::mount(self.source.as_str(), mountpoint, FS_TYPE, self.flags, data.as_c_str())?;
        Ok(dev.into())
    }
}

pub(crate) use tresor_sys::mountinfo::{mounts, MountEntry};

/// The mount on top at `path` (a canonical path), if any.
pub(crate) fn mount_at(path: &Path) -> Option<MountEntry> {
    let target = path.as_os_str().as_bytes();
    // Later lines are mounted on top of earlier ones.
    mounts().into_iter().rev().find(|e| e.mount_point == target)
}

/// Changes the flags of the live Tresor mount at `mountpoint`, as
/// `mount -o remount,ro` asks the `mount.fuse.tresor` helper to: the
/// mount's current flags with the generic options of `options` applied
/// (`ro`, `rw`, `noatime`, `nosuid`, ...). Everything else in `options`
/// (the fstab line's `identity=`, `audit_*`, ... that mount(8) passes
/// along) cannot change on a live mount and is ignored.
///
/// The atime flags change what the kernel reports; the daemon keeps reading
/// with the access-time mode it was mounted with (`fs::Atime`).
///
/// `ro` makes the kernel refuse every write with EROFS before it reaches
/// the daemon; it fails with EBUSY while a file is open for writing or an
/// unlinked file is still held. A FUSE file system holds an unlinked file
/// for a moment after its last close too (the kernel sends the release to
/// the daemon asynchronously: right after `rm` of an open file and its
/// close, most remounts found it still held), so EBUSY is retried for up
/// to [`REMOUNT_BUSY`] before it is reported. `rw` allows writes again,
/// unless the mount was made `ro`, which the daemon keeps enforcing.
pub fn remount(mountpoint: &Path, options: &str) -> Result<(), MountError> {
    let path = mountpoint
        .canonicalize()
        .map_err(|source| MountError::MountpointMissing { path: mountpoint.to_owned(), source })?;
    let entry = mount_at(&path)
        .filter(|e| e.fs_type == FS_TYPE || e.fs_type == "fuse")
        .ok_or_else(|| MountError::NotMounted { path: path.clone() })?;
    let mut flags = MountFlags::empty();
    for opt in entry.options.split(',').chain(options.split(',')) {
        apply_vfs_option(opt.trim(), &mut flags);
    }
    let deadline = Instant::now() + REMOUNT_BUSY;
    loop {
        match rustix::mount::mount_remount(&path, flags, c"") {
            Err(rustix::io::Errno::BUSY) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            result => return result.map_err(|e| MountError::Remount { path, source: e.into() }),
        }
    }
}

/// How long a read-only remount waits for files closed a moment ago to be
/// released (see [`remount`]).
pub const REMOUNT_BUSY: Duration = Duration::from_secs(2);

/// Unmounts a live mount on request (SIGTERM to the daemon, say) the way
/// `umount` or `fusermount3 -u` would, so the daemon's session ends and it
/// writes its audit log's unmount record. Cheap to clone and `Send`.
#[derive(Clone, Debug)]
pub struct Unmounter {
    inner: Arc<Mutex<How>>,
}

#[derive(Debug)]
enum How {
    /// Mounted here as root: the mount with this id at this path.
    Root { path: PathBuf, id: Option<u64> },
    /// Mounted by fusermount3 for fuser, which unmounts it the same way.
    Fuser(fuser::SessionUnmounter),
}

impl Unmounter {
    pub(crate) fn root(path: PathBuf) -> Unmounter {
        let id = mount_at(&path).map(|e| e.id);
        Unmounter { inner: Arc::new(Mutex::new(How::Root { path, id })) }
    }

    pub(crate) fn fuser(u: fuser::SessionUnmounter) -> Unmounter {
        Unmounter { inner: Arc::new(Mutex::new(How::Fuser(u))) }
    }

    /// Unmounts, if the mount is still there. A mount in use (EBUSY) is
    /// detached instead: gone from the tree at once, served until its last
    /// open file is closed.
    pub fn unmount(&self) -> io::Result<()> {
        let mut how = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *how {
            How::Root { path, id } => {
                // Never unmount what another mount put at this path since.
                if id.is_none() || mount_at(path).map(|e| e.id) != *id {
                    return Ok(());
                }
                match rustix::mount::unmount(path.as_path(), UnmountFlags::empty()) {
                    Err(rustix::io::Errno::BUSY) => {
                        tracing::info!("{} is busy: detached, served until its files are closed", path.display());
                        rustix::mount::unmount(path.as_path(), UnmountFlags::DETACH)?;
                    }
                    other => other?,
                }
                *id = None;
                Ok(())
            }
            How::Fuser(u) => u.unmount(),
        }
    }
}
