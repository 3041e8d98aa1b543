//! Which live Tresor mount of this machine a path is in: for commands that
//! take a plaintext path through a mount (resolve.rs) and audit queries
//! that take one (audit.rs). Depends on no other module of the CLI.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The live Tresor mount containing `abs` (an absolute, lexical path), as
/// (mount point, backing root).
pub fn tresor_mount_of(abs: &Path) -> Result<Option<(PathBuf, PathBuf)>> {
    // The longest mount point that contains `abs`; of equal ones the last,
    // which is mounted on top.
    let mut best: Option<(PathBuf, String, String)> = None;
    for m in tresor_sys::mountinfo::mounts() {
        let mnt = PathBuf::from(OsString::from_vec(m.mount_point));
        if abs.starts_with(&mnt) && best.as_ref().is_none_or(|(b, ..)| mnt.as_os_str().len() >= b.as_os_str().len()) {
            best = Some((mnt, m.fs_type, m.source));
        }
    }
    let Some((mnt, fstype, source)) = best else { return Ok(None) };
    // Tresor mounts show as type `fuse` (or `fuse.tresor` through libfuse);
    // other file systems (a GlusterFS or NFS backing store) are not mounts
    // of ours.
    if fstype != "fuse" && fstype != "fuse.tresor" {
        return Ok(None);
    }
    match source.strip_prefix("tresor:") {
        Some(backing) => Ok(Some((mnt, PathBuf::from(backing)))),
        None => bail!(
            "{} is in the FUSE mount {} whose source is {source:?}, not tresor:<backing> (a Tresor mount with its own \
             fsname?); give the backing path instead",
            abs.display(),
            mnt.display()
        ),
    }
}
