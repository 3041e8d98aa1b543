//! Directory streams: `opendir`, `readdir`, `releasedir`.
//!
//! A handle keeps a descriptor of the backing directory and its verified
//! IV. The listing is read when the stream is at offset 0: on the first
//! `readdir` and again after `rewinddir` (or `seekdir` to the start), so
//! names created after `opendir` appear once the stream is rewound, as
//! POSIX asks. Later offsets continue the listing read at offset 0.
//!
//! The descriptor also stands for the directory when its name no longer
//! leads to it (removed, or replaced by a rename from this or another
//! node): `fstat`, `fchmod` and the like on a descriptor of the directory
//! keep working, as on a local file system, and a rewound stream of a
//! removed directory is empty.

use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Mutex};

use fuser::FileType;
use tresor_format::DirIv;

use super::{os, TresorFs};
use crate::attr;
use crate::nodes::ROOT;
use crate::paths::show;
use crate::sys::{self, Errno, FsResult};

pub(super) struct DirEntry {
    pub(super) ino: u64,
    pub(super) kind: FileType,
    pub(super) name: OsString,
}

pub(super) struct DirHandle {
    /// The directory's node.
    pub(super) node: u64,
    /// The backing directory, open for reading.
    fd: OwnedFd,
    iv: DirIv,
    /// The backing path at `opendir` (for logs).
    pub(super) path: Vec<u8>,
    /// The listing read at offset 0, in stream order.
    entries: Mutex<Arc<Vec<DirEntry>>>,
}

impl DirHandle {
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl TresorFs {
    pub(super) fn do_opendir(&self, ino: u64) -> FsResult<u64> {
        let loc = self.locate(ino)?;
        let fd = sys::openat(loc.dir.fd(), &loc.name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)?;
        let st = sys::fstat(fd.as_fd())?;
        if self.nodes.id_of(st.st_ino) != ino {
            return Err(Errno::ESTALE);
        }
        let iv = self.names.dir_iv(fd.as_fd(), &loc.path)?;
        let handle = DirHandle { node: ino, fd, iv, path: loc.path, entries: Mutex::new(Arc::new(Vec::new())) };
        let fh = self.new_fh();
        self.dirs.lock().unwrap_or_else(|e| e.into_inner()).insert(fh, Arc::new(handle));
        Ok(fh)
    }

    /// The entries of stream `fh` from `offset` on: read afresh at offset 0.
    pub(super) fn dir_entries(&self, fh: u64, offset: u64) -> FsResult<Arc<Vec<DirEntry>>> {
        let dir = self.dirs.lock().unwrap_or_else(|e| e.into_inner()).get(&fh).cloned().ok_or(Errno::EBADF)?;
        let mut entries = dir.entries.lock().unwrap_or_else(|e| e.into_inner());
        if offset == 0 {
            *entries = Arc::new(self.list(&dir)?);
        }
        Ok(entries.clone())
    }

    /// Reads the listing of `dir`: `.`, `..`, and every entry whose name
    /// decrypts (format metadata and undecryptable names are skipped).
    fn list(&self, dir: &DirHandle) -> FsResult<Vec<DirEntry>> {
        let ino = dir.node;
        let parent = if ino == ROOT { ROOT } else { self.nodes.parent(ino).unwrap_or(ROOT) };
        let mut entries = vec![
            DirEntry { ino, kind: FileType::Directory, name: ".".into() },
            DirEntry { ino: parent, kind: FileType::Directory, name: "..".into() },
        ];
        let listing = match sys::openat(dir.fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY | self.atime.dirs, 0)
            .and_then(sys::read_dir)
        {
            Ok(l) => l,
            // Removed since `opendir` (its IV went with it): empty.
            Err(e) if sys::is_errno(&e, libc::ENOENT) => return Ok(entries),
            Err(e) => return Err(e.into()),
        };
        entries.reserve(listing.len());
        for ent in listing {
            let Some(name) = self.names.decrypt_entry(dir.fd(), &dir.iv, &ent.name, &dir.path) else { continue };
            let kind = match attr::kind_of_dtype(ent.d_type) {
                Some(k) => k,
                None => match sys::cstring(&ent.name).and_then(|n| sys::fstatat(dir.fd(), &n)) {
                    Ok(st) => attr::kind(st.st_mode).unwrap_or(FileType::RegularFile),
                    Err(_) => continue, // gone meanwhile
                },
            };
            if !matches!(kind, FileType::RegularFile | FileType::Directory | FileType::Symlink) {
                // Special files are records in regular files (FORMAT.md
                // §8.7); one in the backing tree was planted there.
                tracing::error!("{}: skipping a backing special file (planted in the backing tree)", show(&dir.path));
                continue;
            }
            entries.push(DirEntry { ino: self.nodes.id_of(ent.ino), kind, name: OsString::from(os(&name)) });
        }
        Ok(entries)
    }

    /// An open directory stream on node `ino`, if any (see the module docs).
    pub(super) fn any_dir_handle(&self, ino: u64) -> Option<Arc<DirHandle>> {
        self.dirs.lock().unwrap_or_else(|e| e.into_inner()).values().find(|d| d.node == ino).cloned()
    }
}
