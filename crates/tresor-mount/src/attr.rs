//! Backing `lstat` results to FUSE attributes.
//!
//! A regular file's plaintext size follows from its ciphertext length alone
//! (`Layout::plaintext_size`), so `getattr` never opens a file: on an HPC
//! parallel file system an open costs metadata-server round trips that a
//! `stat` storm (`ls -l`, `find`) must not pay. A length that no plaintext
//! size produces is rounded down (see [`plaintext_size`]); reads of a file
//! that was really cut fail with EIO. Symlink sizes are the plaintext
//! target length, computed from the encoded length. Directories and
//! everything else pass through. Owners, modes and times are the backing
//! entry's own.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};
use tresor_format::content::{NONCE_LEN, TAG_LEN, TRAILER_LEN};
use tresor_format::Layout;

pub fn kind(mode: u32) -> Option<FileType> {
    Some(match mode & libc::S_IFMT {
        libc::S_IFREG => FileType::RegularFile,
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::NamedPipe,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => return None,
    })
}

pub fn kind_of_dtype(d_type: u8) -> Option<FileType> {
    Some(match d_type {
        libc::DT_REG => FileType::RegularFile,
        libc::DT_DIR => FileType::Directory,
        libc::DT_LNK => FileType::Symlink,
        libc::DT_FIFO => FileType::NamedPipe,
        libc::DT_SOCK => FileType::Socket,
        libc::DT_CHR => FileType::CharDevice,
        libc::DT_BLK => FileType::BlockDevice,
        _ => return None,
    })
}

pub fn is_reg(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

pub fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

pub fn is_symlink(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// The plaintext size of a regular backing file of `st_size` bytes.
///
/// A length no file can have is rounded down to the nearest valid one.
/// Such lengths are normal for an instant while another node grows the
/// file (the backing length rises page by page during a `pwrite`), and the
/// rounded size lies between the old and the new size, as a local file
/// system shows during a large write. A file that was really cut stays
/// cut: reading its tail fails with EIO (the trailer does not verify) and
/// that read logs the error. `getattr` cannot tell the two apart without
/// opening the file, which it must not do.
pub fn plaintext_size(layout: &Layout, st_size: i64, path: &dyn std::fmt::Display) -> u64 {
    let len = st_size.max(0) as u64;
    match layout.plaintext_size(len) {
        Ok(size) => size,
        Err(_) => {
            let data = len.saturating_sub(layout.header_len + TRAILER_LEN as u64);
            let size = data / layout.ciphertext_block_len() * layout.block_size;
            tracing::debug!("{path}: length {len} is not a file length (growing elsewhere, or cut): size {size}");
            size
        }
    }
}

/// The plaintext length of a symlink target stored as `encoded_len`
/// base64url characters (nonce ‖ ciphertext ‖ tag, no padding).
pub fn target_len(encoded_len: u64) -> u64 {
    (encoded_len * 3 / 4).saturating_sub((NONCE_LEN + TAG_LEN) as u64)
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    let nsecs = nsecs.clamp(0, 999_999_999) as u32;
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs)
    } else {
        UNIX_EPOCH - Duration::new(secs.unsigned_abs(), 0) + Duration::new(0, nsecs)
    }
}

/// Whether a regular backing file has the length of a special-file record
/// (FORMAT.md §8.7): far below any file's, so only these are read to find
/// out what they are.
pub fn may_be_node(st: &libc::stat) -> bool {
    st.st_size == tresor_format::place::NODE_LEN as i64
}

/// FUSE attributes of a special file stored as the record `node` in the
/// backing file `st`: the record's type and device, the file's owner,
/// mode bits and times.
pub fn node_attr(id: u64, st: &libc::stat, node: tresor_format::Node, blksize: u32) -> FileAttr {
    use tresor_format::NodeKind;
    let mut attr = file_attr(id, st, 0, blksize);
    attr.kind = match node.kind {
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::Socket => FileType::Socket,
        NodeKind::Char => FileType::CharDevice,
        NodeKind::Block => FileType::BlockDevice,
    };
    attr.rdev = node.rdev as u32;
    attr.blocks = 0;
    attr
}

/// FUSE attributes for node `id` from its backing `stat`, with `size` the
/// plaintext size the caller worked out for the entry's type.
pub fn file_attr(id: u64, st: &libc::stat, size: u64, blksize: u32) -> FileAttr {
    let mtime = time(st.st_mtime, st.st_mtime_nsec);
    FileAttr {
        ino: INodeNo(id),
        size,
        blocks: st.st_blocks.max(0) as u64,
        atime: time(st.st_atime, st.st_atime_nsec),
        mtime,
        ctime: time(st.st_ctime, st.st_ctime_nsec),
        crtime: mtime,
        kind: kind(st.st_mode).unwrap_or(FileType::RegularFile),
        perm: (st.st_mode & 0o7777) as u16,
        nlink: st.st_nlink as u32,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev as u32,
        blksize,
        flags: 0,
    }
}

/// The permission bits `mode` of a new non-directory in a directory of
/// mode `dir_mode`, by Linux's set-group-ID rule (`inode_init_owner`,
/// `mode_strip_sgid`): in a set-group-ID directory the entry takes the
/// directory's group, and a group-executable set-group-ID entry keeps
/// S_ISGID only if its creator is `privileged` (CAP_FSETID) or in that
/// group (`in_dir_group`, asked only then). Since Linux 6.0 the VFS does
/// this before a FUSE request is sent; older kernels (RHEL 8's 4.18, say)
/// leave it to the file system.
pub fn new_file_mode(mode: u32, dir_mode: u32, privileged: bool, in_dir_group: impl FnOnce() -> bool) -> u32 {
    let sgid_exec = libc::S_ISGID | libc::S_IXGRP;
    if mode & sgid_exec == sgid_exec && dir_mode & libc::S_ISGID != 0 && !privileged && !in_dir_group() {
        mode & !libc::S_ISGID
    } else {
        mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_keeps_set_group_id_only_as_the_kernel_allows() {
        let sgid_dir = libc::S_IFDIR | libc::S_ISGID | 0o777;
        let plain_dir = libc::S_IFDIR | 0o777;
        let outsider = || false;
        // Group-executable and set-group-ID in a set-group-ID directory of
        // another group: cleared for an unprivileged creator.
        assert_eq!(new_file_mode(0o2775, sgid_dir, false, outsider), 0o775);
        // Kept for a member of the group, a privileged creator, a mode
        // without group execute, or a directory that passes no group on.
        assert_eq!(new_file_mode(0o2775, sgid_dir, false, || true), 0o2775);
        assert_eq!(new_file_mode(0o2775, sgid_dir, true, outsider), 0o2775);
        assert_eq!(new_file_mode(0o2765, sgid_dir, false, outsider), 0o2765);
        assert_eq!(new_file_mode(0o2775, plain_dir, false, outsider), 0o2775);
        assert_eq!(new_file_mode(0o4755, sgid_dir, false, outsider), 0o4755);
    }

    #[test]
    fn target_lengths_follow_from_the_encoded_length() {
        use base64::Engine;
        for len in [1usize, 2, 3, 17, 100, 3043, 4095] {
            let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(vec![0u8; len + 28]);
            assert_eq!(target_len(encoded.len() as u64), len as u64, "{len}");
        }
    }

    #[test]
    fn times_before_the_epoch_convert() {
        assert_eq!(time(-2, 500_000_000), UNIX_EPOCH - Duration::from_millis(1500));
        assert_eq!(time(3, 1), UNIX_EPOCH + Duration::new(3, 1));
    }
}
