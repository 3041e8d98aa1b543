//! What the backing file system keeps coherent between nodes, found once
//! at mount time, and what the mount does about it.
//!
//! Every read-modify-write of a block runs under a byte-range lock on the
//! backing file (file.rs), and that only protects data if, under the lock,
//! a read returns what another node wrote last. A client that serves reads
//! from its own cache breaks this silently: ceph-fuse's object cache
//! returned a block as it was before the other node's write, the mount
//! re-sealed it with its own bytes and the other node's update was lost
//! (issue 11). So:
//!
//! * where the backing client accepts `O_DIRECT` at any alignment (ceph-fuse,
//!   NFS, FUSE clients that implement direct I/O themselves), file data is
//!   read and written with `O_DIRECT`: the kernel's page cache and the
//!   client's own cache are both bypassed, and every read under a lock sees
//!   the storage;
//! * a local file system (one kernel, one page cache) is coherent as it is,
//!   and refuses unaligned direct I/O anyway;
//! * so are the cluster file systems whose clients keep caches coherent
//!   with distributed locks (Lustre, GPFS, BeeGFS, the kernel CephFS
//!   client, OCFS2, GFS2);
//! * a FUSE or network client that refuses direct I/O and keeps file data
//!   in the kernel's page cache can lose updates between nodes: the mount
//!   refuses it unless `-o allow_incoherent` says the volume is used from
//!   this node only;
//! * NFS keeps data coherent under locks, but its name cache can hide
//!   another node's creates and removes for up to `acdirmax`: a warning
//!   unless `lookupcache=none` (or `positive`).

use std::ffi::{CStr, CString};
use std::os::fd::BorrowedFd;

use crate::kmount::{self, MountEntry};
use crate::sys;

/// What the mount found out about its backing file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backing {
    /// The file system type as mountinfo gives it (`ext4`, `fuse.ceph-fuse`).
    pub fs_type: String,
    /// Read and write file data with `O_DIRECT`.
    pub direct_io: bool,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Coherent,
    /// Mount, and say this (names may be stale; data is safe).
    Warn(String),
    /// Updates can be lost between nodes: refuse unless told otherwise.
    Incoherent(String),
}

/// File systems where every node sees what another wrote under a lock,
/// without help: one kernel (local), or clients that keep their caches
/// coherent with distributed locks.
const COHERENT: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "zfs", "f2fs", "bcachefs", "overlay", "lustre", "gpfs", "beegfs",
    "ceph", "ocfs2", "gfs2",
];

fn is_local_or_cluster(fs_type: &str) -> bool {
    COHERENT.contains(&fs_type)
}

/// The file every volume has, read by the probes.
fn probe_file() -> CString {
    CString::new(tresor_format::names::VOLUME_FILE).expect("a file name has no NUL")
}

/// Probes the backing file system at `root` (whose device is `root_dev`)
/// through the volume file.
pub fn probe(root: BorrowedFd<'_>, root_dev: u64) -> Backing {
    let probe_file = probe_file();
    let probe_file = probe_file.as_c_str();
    let entry = mount_of(root_dev);
    let fs_type = entry.as_ref().map(|e| e.fs_type.clone()).unwrap_or_else(|| "unknown".into());
    if is_local_or_cluster(&fs_type) {
        return Backing { fs_type, direct_io: false, verdict: Verdict::Coherent };
    }
    let direct_io = direct_at_any_alignment(root, probe_file);
    let page_cache = sys::page_cache_in_use(root, probe_file).unwrap_or(true);
    let verdict = judge(entry.as_ref(), &fs_type, direct_io, page_cache);
    Backing { fs_type, direct_io, verdict }
}

/// The flags every read-modify-write of a volume's files opens them with:
/// `O_DIRECT` where [`probe`] would choose it, 0 otherwise. For the CLI
/// (grant, revoke, re-key, member replace read headers and blocks under
/// the lock exactly as the mount does, so a cached read there loses an
/// update just the same). `root` is the backing root.
pub fn data_flags(root: BorrowedFd<'_>) -> i32 {
    let Ok(st) = sys::fstat(root) else { return 0 };
    let local = mount_of(st.st_dev).is_some_and(|e| is_local_or_cluster(&e.fs_type));
    if !local && direct_at_any_alignment(root, &probe_file()) {
        libc::O_DIRECT
    } else {
        0
    }
}

fn mount_of(dev: u64) -> Option<MountEntry> {
    let dev = format!("{}:{}", rustix::fs::major(dev), rustix::fs::minor(dev));
    kmount::mounts().into_iter().rev().find(|e| e.dev == dev)
}

fn direct_at_any_alignment(root: BorrowedFd<'_>, probe_file: &CStr) -> bool {
    sys::reads_direct_at_any_alignment(root, probe_file).unwrap_or_else(|e| {
        tracing::debug!("direct I/O probe on the backing file system: {e}");
        false
    })
}

/// The verdict for a backing file system that is neither local nor a
/// cluster file system with coherent caches.
fn judge(entry: Option<&MountEntry>, fs_type: &str, direct_io: bool, page_cache: bool) -> Verdict {
    if fs_type == "nfs" || fs_type == "nfs4" {
        let opts = entry.map(|e| e.super_options.as_str()).unwrap_or("");
        let names_fresh = opts.split(',').any(|o| o == "lookupcache=none" || o == "lookupcache=pos");
        return if names_fresh {
            Verdict::Coherent
        } else {
            Verdict::Warn(format!(
                "the backing file system is NFS without lookupcache=none: files another node creates, renames \
                 or removes can stay unseen here (or seen after removal) for up to acdirmax seconds; mount it \
                 with lookupcache=none (or actimeo=0) on every node that shares this volume ({fs_type})"
            ))
        };
    }
    if direct_io {
        return Verdict::Coherent;
    }
    if page_cache {
        return Verdict::Incoherent(format!(
            "the backing file system ({fs_type}) keeps file data in this node's page cache and refuses direct \
             I/O: when another node changes a file, this node can read the old bytes under the lock and write \
             them back, losing the other node's update. Mount it with its caches off on every node (ceph-fuse: \
             --fuse_disable_pagecache=true; GlusterFS: --direct-io-mode=enable and network.remote-dio on), or, \
             if no other node ever writes this volume, mount with -o allow_incoherent"
        ));
    }
    // No page cache and no direct I/O (GlusterFS with its caches off and
    // O_DIRECT passed to bricks on a local disk): coherent if the client
    // keeps no cache of its own, which only its configuration can say.
    tracing::info!(
        "backing file system {fs_type}: no page cache and no direct I/O at any alignment; file data is read \
         through its client, whose own caches must be off (see OPERATIONS.md)"
    );
    Verdict::Coherent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(line: &str) -> MountEntry {
        tresor_sys::mountinfo::parse(line.as_bytes()).pop().expect("one mountinfo line")
    }

    #[test]
    fn a_client_that_caches_data_and_refuses_direct_io_is_incoherent() {
        assert!(matches!(judge(None, "fuse.sshfs", false, true), Verdict::Incoherent(_)));
        assert_eq!(judge(None, "fuse.glusterfs", false, false), Verdict::Coherent);
        assert_eq!(judge(None, "fuse.ceph-fuse", true, true), Verdict::Coherent);
        assert_eq!(judge(None, "fuse.glusterfs", true, false), Verdict::Coherent);
    }

    #[test]
    fn nfs_needs_its_name_cache_off() {
        let cached = entry("40 1 0:60 / /nfs rw - nfs4 srv:/x rw,vers=4.2,acregmin=3");
        assert!(matches!(judge(Some(&cached), "nfs4", true, true), Verdict::Warn(_)));
        let fresh = entry("40 1 0:60 / /nfs rw - nfs4 srv:/x rw,vers=4.2,lookupcache=none");
        assert_eq!(judge(Some(&fresh), "nfs4", true, true), Verdict::Coherent);
    }

    #[test]
    fn local_and_cluster_file_systems_need_no_probe() {
        for t in ["ext4", "xfs", "tmpfs", "lustre", "gpfs", "beegfs", "ceph"] {
            assert!(is_local_or_cluster(t), "{t}");
        }
        assert!(!is_local_or_cluster("fuse.ceph-fuse"));
    }
}
