//! The `fuser::Filesystem` implementation: each FUSE request resolved to
//! backing entries (`nodes`, `paths`), carried out, and answered with the
//! attributes or errno a local file system would give.
//!
//! # Errors
//!
//! Backing I/O errors pass through as their errno. Format errors map as:
//! not a recipient of a file's header → EACCES (warning); anything that
//! fails authentication or is malformed (header, block, trailer, name,
//! symlink target or directory IV) → EIO, logged as an error with the
//! backing path (and block number). A verified header that breaks the
//! member header rule (signed by a member, naming someone who is neither a
//! steward nor a default of the policy in force for the file's directory;
//! THREAT-MODEL.md §4) → EACCES, logged as an error naming the writer and
//! the extra recipient. Names longer than 255 bytes → ENAMETOOLONG. No
//! callback panics or leaves a request unanswered.
//!
//! # Resolving backing paths
//!
//! A node's backing path is the walk up the node table. Every operation
//! opens the entry's directory with `open_dir_beneath` (no symlinks, never
//! out of the backing root) and acts on one name in it, so a symlink that
//! the storage operator puts in place of a backing directory is refused
//! (ELOOP, logged), never followed. Operations on a node check that its
//! path still leads to the same inode (else ESTALE); a node whose path is
//! gone (unlinked while open) is reached through an open handle.
//!
//! # Creating entries atomically
//!
//! * `create`: the header (and the trailer of the empty file) is written to
//!   `tresor.tmp.<random>` in the parent, made `O_EXCL`; mode and owner are
//!   set; then it is hard-linked to its name (`EEXIST`: fail for `O_EXCL`,
//!   else open the file that won) and the temporary name removed. On back
//!   ends without hard links, `renameat2(RENAME_NOREPLACE)` is used instead.
//!   Recipients: the creator plus the default recipients of the policy in
//!   force: the registry's policy for the nearest directory, from the
//!   parent up to the root, whose IV has one (policies are part of the
//!   signed registry, so there is no file to read per level).
//! * `mkdir`: a `tresor.tmp.<random>` directory gets its `tresor.diriv`,
//!   mode and owner, then is renamed into place without replacing
//!   (`RENAME_NOREPLACE`; if the back end lacks it, a rename that fails on
//!   the existing non-empty directory). No node ever sees a directory
//!   without its IV.
//! * `rmdir`: a backing directory always holds its IV (and maybe orphan
//!   sidecars, temporary entries). If nothing else is in it, those
//!   are moved into a holding directory in the parent, the directory is
//!   removed, and the holding directory deleted; if the removal fails (an
//!   entry appeared meanwhile), everything is moved back and the answer is
//!   ENOTEMPTY. A temporary entry younger than a minute means another node
//!   is creating something there: ENOTEMPTY.
//! * `rename` supports `RENAME_NOREPLACE`, `RENAME_EXCHANGE` and
//!   `RENAME_WHITEOUT` (overlayfs upper layers: the old name becomes a
//!   character device 0/0, a special-file record made before the rename and
//!   put in place after it, so a crash can lose the whiteout, never the
//!   entry; listings show it as a regular file until it is looked up, as
//!   every record, FORMAT.md §8.7), across
//!   directories and for directories (a directory's IV lives inside it). A
//!   plain rename onto an empty directory removes it first (two steps: not
//!   atomic). A move that changes the policy in force is refused with EXDEV
//!   (so `mv` copies, and the copy gets the new defaults) when it would
//!   break the member header rule: a file with a member-signed header the
//!   new policy does not allow; a directory without a policy of its own,
//!   unless this mount's identity is a steward.
//! * A handle whose file a steward re-keyed (`file.rs`, "Re-keyed files")
//!   is reopened by path and the operation retried (`with_file`).
//!
//! # Locks
//!
//! POSIX locks (`fcntl` F_SETLK/F_SETLKW/F_GETLK, and OFD locks, which the
//! kernel forwards the same way) are forwarded to the backing file at their
//! plaintext offsets, through one backing descriptor per (node, lock owner):
//! different owners conflict with each other and with other nodes, one
//! owner's locks are released when it closes any descriptor of the file
//! (`flush`), as POSIX says; OFD locks go with the handle they were set
//! through (`release`, which the kernel sends just after the last close,
//! asynchronously). `flock(2)` locks arrive the same way (`FUSE_FLOCK_LOCKS`:
//! the kernel sends them as whole-file locks owned by the open file), so
//! they too hold across nodes and go with the handle at `release`. As on
//! NFS, a flock and a POSIX lock on the same file conflict through the
//! backing file. A blocking request waits on a thread of its own, so it
//! never ties up the threads serving the mount. Ranges reaching past 2^62
//! are clamped below the internal locks' base, so a whole-file user lock
//! never blocks the mount's own I/O.
//!
//! # Audit records
//!
//! The callback wrappers record each operation (docs/AUDIT.md) once its
//! result is known and before it is answered: `audited` for the calls that
//! are always recorded (checked first with `audit.ready()`, so a failed log
//! refuses them before they are done), `audit_failure` for the frequent
//! calls recorded only when they return EACCES or EIO. The `do_*` methods
//! know nothing of the log. Plaintext paths come from the node table.
//!
//! # Known limits
//!
//! * Plain rename onto an empty directory is two steps (remove, rename).
//! * On a back end without `RENAME_NOREPLACE`, mkdir and no-replace renames
//!   check and then rename (a small race between nodes).
//! * A long name's sidecar is removed after its entry if the entry is still
//!   gone; a node re-creating the same long name in that instant loses the
//!   sidecar (its entry stays reachable by name, but readdir skips it with a
//!   warning). Target sidecars of hard-linked symlinks can be left behind
//!   (hidden; removed with the directory).
//! * Reopening an unlinked file through `/proc/PID/fd/N` fails (ENOENT), as
//!   in other path-based FUSE file systems; open descriptors keep working
//!   (files through their handle, directories through their stream's
//!   descriptor, `fs/dirs.rs`), also when a rename replaced their name.
//!   An `O_PATH` descriptor opens nothing in the mount: once its name is
//!   gone or replaced, `fstat` on it answers ESTALE.
//! * With `cache_timeout` above zero, a node whose backing entry another
//!   node replaced answers ESTALE until the kernel looks it up again.

mod checked;
mod dirs;
mod rename;

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    AccessFlags, FileAttr, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, KernelConfig, LockOwner, OpenFlags,
    RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyLock, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use rand_core::OsRng;
use tresor_audit::{AuditLog, Event, Op};
use tresor_format::names::{classify, EntryKind};
use tresor_format::{
    ContentCipher, DirIv, EncryptedName, Header, Identity, Layout, NameKey, Node, NodeKind, Place, PublicIdentity,
    Role, Volume,
};

use crate::attr;
use crate::audit::{intent, setattr_fields, Audit};
use crate::file::OpenFile;
use crate::lock::{self, LOCK_BASE};
use crate::nodes::NodeTable;
use crate::paths::{self, c, join, show, Names};
use crate::ready::{self, ReadyFiles};
use crate::sys::{self, Errno, FsResult};
use crate::volume::VolumeState;
use crate::xattr;
use checked::{Check, Held};
use dirs::DirHandle;

const TMP_PREFIX: &str = "tresor.tmp.";
/// A temporary entry younger than this is another node's create in progress.
const TMP_BUSY: Duration = Duration::from_secs(60);

/// What `prepare` hands the file system.
pub struct Setup {
    pub root: Arc<OwnedFd>,
    pub root_ino: u64,
    pub backing: PathBuf,
    pub volume: Volume,
    pub name_key: NameKey,
    pub identity: Arc<Identity>,
    pub pinned: Vec<ed25519_dalek::VerifyingKey>,
    /// The highest registry generation this node has accepted.
    pub seen: crate::volume::Seen,
    pub read_only: bool,
    pub ttl: Duration,
    /// Open backing files' data with `O_DIRECT` (backing.rs).
    pub direct_io: bool,
    pub atime: Atime,
}

/// Which reads leave access times alone, from the mount's atime option.
///
/// The kernel leaves a FUSE file's access time to the daemon (its inodes
/// are `S_NOATIME`): it is the backing file's, which the backing file
/// system updates as the daemon reads it. Under `noatime` the daemon
/// reads files and directories with `O_NOATIME` (so reading or executing
/// a file never changes it), under `nodiratime` directories. Otherwise the
/// backing file system's own mode applies (commonly `relatime`; the
/// `strictatime` flag is passed to the kernel but not emulated).
#[derive(Clone, Copy, Debug, Default)]
pub struct Atime {
    /// `O_NOATIME` on the backing files opened for a FUSE open.
    pub files: i32,
    /// `O_NOATIME` on the backing directories listed.
    pub dirs: i32,
}

impl Atime {
    /// From the mount(2) flags the options make.
    pub fn of(flags: rustix::mount::MountFlags) -> Atime {
        use rustix::mount::MountFlags as F;
        let noatime = flags.contains(F::NOATIME);
        let nodiratime = noatime || flags.contains(F::NODIRATIME);
        Atime { files: if noatime { libc::O_NOATIME } else { 0 }, dirs: if nodiratime { libc::O_NOATIME } else { 0 } }
    }
}

const DIRIV_NAME: &str = tresor_format::names::DIRIV_FILE;

pub struct TresorFs {
    root: Arc<OwnedFd>,
    volume: VolumeState,
    identity: Arc<Identity>,
    /// Headers of new files, made ahead on a helper thread.
    ready: ReadyFiles,
    names: Names,
    nodes: NodeTable,
    layout: Layout,
    block_size: u32,
    files: RwLock<HashMap<u64, Arc<OpenFile>>>,
    dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    /// Per (node, lock owner): the backing descriptor holding that owner's
    /// forwarded POSIX locks.
    locks: Mutex<HashMap<(u64, u64), Arc<OwnedFd>>>,
    next_fh: AtomicU64,
    ttl: Duration,
    read_only: bool,
    atime: Atime,
    /// The daemon's effective uid: root makes new entries the caller's.
    euid: u32,
    audit: Audit,
    /// `O_DIRECT` or 0: added to every open of a file's data (backing.rs).
    data_flags: i32,
    /// New files start unnamed (`O_TMPFILE`) until the backing file system
    /// refuses one; then they start under a temporary name.
    unnamed_creates: AtomicBool,
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

struct Show<'a>(&'a [u8]);

impl std::fmt::Display for Show<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.0))
    }
}

/// A backing directory, open as an `O_PATH` descriptor below the root
/// (see `sys::open_dir_beneath`): every operation names one entry in it, so
/// no symlink planted in the backing tree is ever followed.
enum Dir<'a> {
    Root(BorrowedFd<'a>),
    Own(OwnedFd),
}

impl Dir<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Dir::Root(fd) => *fd,
            Dir::Own(fd) => fd.as_fd(),
        }
    }
}

/// Where a node lives: its directory, its own entry name ("." for the
/// root), and its backing path (for logs and the node table).
struct Loc<'a> {
    dir: Dir<'a>,
    name: CString,
    path: Vec<u8>,
}

/// A resolved plaintext name in a directory: the directory, the encrypted
/// name, and the entry's name and backing path.
struct Entry<'a> {
    dir_path: Vec<u8>,
    dir: Dir<'a>,
    /// The directory's verified IV.
    iv: DirIv,
    name: EncryptedName,
    cname: CString,
    path: Vec<u8>,
    /// The plaintext name (kept in the node table for audit records).
    plain: OsString,
}

impl TresorFs {
    pub fn new(s: Setup) -> TresorFs {
        let params = s.volume.params;
        let identity_id = s.identity.id();
        TresorFs {
            volume: VolumeState::new(s.root.clone(), &s.backing, s.pinned, identity_id, s.volume, s.seen),
            names: Names::new(&s.name_key, s.root.clone()),
            root: s.root,
            ready: ReadyFiles::new(s.identity.clone()),
            identity: s.identity,
            nodes: NodeTable::new(s.root_ino),
            layout: Layout::new(params.header_len, params.block_size),
            block_size: params.block_size,
            files: RwLock::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            ttl: s.ttl,
            read_only: s.read_only,
            atime: s.atime,
            euid: sys::geteuid(),
            audit: Audit::off(),
            data_flags: if s.direct_io { libc::O_DIRECT } else { 0 },
            unnamed_creates: AtomicBool::new(true),
        }
    }

    pub fn identity(&self) -> Arc<Identity> {
        self.identity.clone()
    }

    /// Starts recording to `log` (before the mount is live).
    pub fn set_audit(&mut self, log: AuditLog) {
        self.audit = Audit::on(log);
    }

    /// The plaintext path of node `ino` for audit records.
    fn plain(&self, ino: u64) -> Vec<u8> {
        self.nodes.plain_path(ino).unwrap_or_else(|| format!("<node {ino}>").into_bytes())
    }

    /// The plaintext path of `name` in directory `parent`.
    fn plain_child(&self, parent: u64, name: &OsStr) -> Vec<u8> {
        let mut p = self.plain(parent);
        if !p.is_empty() {
            p.push(b'/');
        }
        p.extend_from_slice(name.as_bytes());
        p
    }

    /// Records an operation whose result is known, before it is answered.
    /// If the record cannot be written (fail closed), a success becomes
    /// EIO and `undo` releases what the operation handed out.
    fn audited<T>(
        &self,
        req: &Request,
        op: Op,
        result: FsResult<T>,
        event: impl FnOnce(Event) -> Event,
        undo: impl FnOnce(T),
    ) -> FsResult<T> {
        let code = match &result {
            Ok(_) => 0,
            Err(e) => e.0,
        };
        match self.audit.append(|| event(Event::new(op).by(req.uid(), req.gid(), req.pid()).result(code))) {
            Ok(()) => result,
            Err(e) => {
                if let Ok(v) = result {
                    undo(v);
                }
                Err(e)
            }
        }
    }

    /// Records a denied access (EACCES) or integrity failure (EIO) of a
    /// call that is not recorded when it succeeds.
    fn audit_failure<T>(&self, req: &Request, op: Op, result: &FsResult<T>, event: impl FnOnce(Event) -> Event) {
        if let Err(e @ (Errno::EACCES | Errno::EIO)) = result {
            let _ = self.audit.append(|| event(Event::new(op).by(req.uid(), req.gid(), req.pid()).result(e.0)));
        }
    }

    fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    fn path(&self, ino: u64) -> FsResult<Vec<u8>> {
        self.nodes.path(ino).ok_or(Errno::ESTALE)
    }

    /// Opens backing directory `path` (relative to the root) without
    /// following symlinks.
    fn dir(&self, path: &[u8]) -> FsResult<Dir<'_>> {
        if path == b"." {
            return Ok(Dir::Root(self.root()));
        }
        match sys::open_dir_beneath(self.root(), path) {
            Ok(fd) => Ok(Dir::Own(fd)),
            Err(e) if sys::is_errno(&e, libc::ELOOP) || sys::is_errno(&e, libc::EXDEV) => {
                tracing::error!(
                    "{}: the backing path leads through a symlink or out of the volume: refused",
                    show(path)
                );
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A descriptor of `ino`'s backing entry for the xattr calls, which act
    /// on descriptors only: an open handle's, else the entry's, checked
    /// (`checked`; `Check::Content` before a change). `None`: a symlink or
    /// special file, which hold no user attributes (as on Linux).
    fn xattr_target(&self, ino: u64, check: Check) -> FsResult<(Option<OwnedFd>, Vec<u8>)> {
        Ok(match self.target(ino, None)? {
            Target::Handle(f, _) => (Some(f.fd().try_clone_to_owned().map_err(Errno::from)?), f.path.clone()),
            Target::Dir(d, _) => (Some(d.fd().try_clone_to_owned().map_err(Errno::from)?), d.path.clone()),
            Target::Entry(loc, st) => {
                let c = self.checked(ino, &loc, &st, check)?;
                let fd = (c.held() == Held::Open).then(|| c.into_fd());
                (fd, loc.path)
            }
        })
    }

    fn locate(&self, ino: u64) -> FsResult<Loc<'_>> {
        let path = self.path(ino)?;
        if path == b"." {
            return Ok(Loc { dir: Dir::Root(self.root()), name: CString::from(c"."), path });
        }
        let dir = self.dir(paths::dirname(&path))?;
        let name = c(paths::basename(&path))?;
        Ok(Loc { dir, name, path })
    }

    fn entry(&self, parent: u64, name: &OsStr) -> FsResult<Entry<'_>> {
        let plain = name.to_owned();
        let dir_path = self.path(parent)?;
        let dir = self.dir(&dir_path)?;
        let iv = self.names.dir_iv(dir.fd(), &dir_path)?;
        let name = self.names.encrypt(&iv, name)?;
        let cname = c(name.entry().as_bytes())?;
        let path = join(&dir_path, name.entry().as_bytes());
        Ok(Entry { dir_path, dir, iv, name, cname, path, plain })
    }

    /// `entry`, for an operation that changes directory `parent`: its
    /// backing path must still lead to it. A directory another node removed
    /// or replaced by a rename is ESTALE (locally: ENOENT, the directory is
    /// dead), so a descriptor of it never creates, links, renames or
    /// removes in the directory now at that path. Returns the entry and
    /// the directory's `fstat`.
    fn entry_to_change(&self, parent: u64, name: &OsStr) -> FsResult<(Entry<'_>, libc::stat)> {
        let e = self.entry(parent, name)?;
        let dir_st = sys::fstat(e.dir.fd())?;
        if self.nodes.id_of(dir_st.st_ino) != parent {
            return Err(Errno::ESTALE);
        }
        Ok((e, dir_st))
    }

    /// FUSE attributes; `link` (the entry's directory and name) is needed
    /// for symlinks and special files, which an open handle never is.
    fn attr(&self, id: u64, path: &[u8], st: &libc::stat, link: Option<(BorrowedFd<'_>, &CStr)>) -> FsResult<FileAttr> {
        let size = if attr::is_reg(st) {
            if let (true, Some((dir, name))) = (attr::may_be_node(st), link) {
                let node = self.names.read_node(dir, name, path)?;
                return Ok(attr::node_attr(id, st, node, self.block_size));
            }
            attr::plaintext_size(&self.layout, st.st_size, &Show(path))
        } else if attr::is_symlink(st) {
            match link {
                Some((dir, name)) => self.names.symlink_size(dir, name, st),
                None => attr::target_len(st.st_size.max(0) as u64),
            }
        } else if attr::is_dir(st) {
            st.st_size.max(0) as u64
        } else {
            // Tresor stores special files as records (FORMAT.md §8.7): a
            // FIFO, socket or device in the backing tree was planted.
            tracing::error!("{}: a special file in the backing tree, where Tresor keeps none: refused", show(path));
            return Err(Errno::EIO);
        };
        Ok(attr::file_attr(id, st, size, self.block_size))
    }

    fn entry_attr(&self, id: u64, e: &Entry<'_>, st: &libc::stat) -> FsResult<FileAttr> {
        self.attr(id, &e.path, st, Some((e.dir.fd(), &e.cname)))
    }

    /// Stats the backing entry of `ino`, refusing a path that now names
    /// another object (changed by another node since the kernel looked it up).
    fn stat_node(&self, ino: u64) -> FsResult<(Loc<'_>, libc::stat)> {
        let loc = self.locate(ino)?;
        let st = sys::fstatat(loc.dir.fd(), &loc.name)?;
        if self.nodes.id_of(st.st_ino) != ino {
            return Err(Errno::ESTALE);
        }
        Ok((loc, st))
    }

    /// An open handle on node `ino`, if any: for a file unlinked (or
    /// replaced by another node) while open, the kernel still asks about the
    /// node by id, often without a handle (`fstat`, `fchmod`, ...).
    fn any_handle(&self, ino: u64) -> Option<Arc<OpenFile>> {
        self.files.read().unwrap_or_else(|e| e.into_inner()).values().find(|f| f.node == ino).cloned()
    }

    /// What to act on: the handle given; else the entry by path; else (the
    /// path is gone, or leads to what replaced the node) any open handle on
    /// the node: a file's, or a directory stream's.
    fn target(&self, ino: u64, fh: Option<FileHandle>) -> FsResult<Target<'_>> {
        if let Some(f) = fh.and_then(|fh| self.file(fh).ok()) {
            let st = sys::fstat(f.fd())?;
            return Ok(Target::Handle(f, st));
        }
        match self.stat_node(ino) {
            Ok((loc, st)) => Ok(Target::Entry(loc, st)),
            Err(e @ (Errno::ENOENT | Errno::ESTALE)) => {
                if let Some(f) = self.any_handle(ino) {
                    let st = sys::fstat(f.fd())?;
                    return Ok(Target::Handle(f, st));
                }
                match self.any_dir_handle(ino) {
                    Some(d) => {
                        let st = sys::fstat(d.fd())?;
                        Ok(Target::Dir(d, st))
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    fn new_fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    fn file(&self, fh: FileHandle) -> FsResult<Arc<OpenFile>> {
        self.files.read().unwrap_or_else(|e| e.into_inner()).get(&fh.0).cloned().ok_or(Errno::EBADF)
    }

    fn writable(&self) -> FsResult<()> {
        if self.read_only {
            return Err(Errno::EROFS);
        }
        Ok(())
    }

    /// Owner and group for a new entry made by `req` in directory `dir_st`
    /// (set-group-ID directories pass their group on), when running as root.
    fn owner(&self, req: &Request, dir_st: &libc::stat) -> Option<(u32, u32)> {
        if self.euid != 0 {
            return None;
        }
        let gid = if dir_st.st_mode & libc::S_ISGID != 0 { dir_st.st_gid } else { req.gid() };
        Some((req.uid(), gid))
    }

    /// The permission bits of a new non-directory made by `req` with
    /// `mode` in directory `dir_st`, by the kernel's set-group-ID rule
    /// ([`attr::new_file_mode`]). Only a root daemon needs it: it makes the
    /// entry as root and hands it to the caller, where the backing file
    /// system would judge the daemon's own credentials.
    fn new_file_mode(&self, req: &Request, dir_st: &libc::stat, mode: u32) -> u32 {
        if self.euid != 0 {
            return mode;
        }
        let in_group = || req.gid() == dir_st.st_gid || sys::process::groups_of(req.pid()).contains(&dir_st.st_gid);
        attr::new_file_mode(mode, dir_st.st_mode, req.uid() == 0, in_group)
    }

    /// Records a new entry the kernel is being told about, and its attributes.
    fn made(&self, parent: u64, e: &Entry<'_>) -> FsResult<FileAttr> {
        let st = sys::fstatat(e.dir.fd(), &e.cname)?;
        let id = self.nodes.id_of(st.st_ino);
        let attr = self.entry_attr(id, e, &st)?;
        self.nodes.add_lookup(id, parent, OsStr::new(e.name.entry()), &e.plain);
        Ok(attr)
    }

    // ---- lookups and attributes ---------------------------------------------

    fn do_lookup(&self, parent: u64, name: &OsStr) -> FsResult<FileAttr> {
        let e = self.entry(parent, name)?;
        self.made(parent, &e)
    }

    /// `access(2)`. The kernel asks only without `default_permissions`,
    /// that is on a private mount, whose one user is the one who mounted
    /// it and whose credentials the daemon has: the backing file system
    /// answers for it, as it decides every other operation there.
    fn do_access(&self, req: &Request, ino: u64, mask: i32) -> FsResult<()> {
        if req.uid() != self.euid {
            tracing::warn!("access(2) by uid {} on a mount that only uid {} may use", req.uid(), self.euid);
            return Err(Errno::EACCES);
        }
        let loc = self.locate(ino)?;
        match sys::faccessat(loc.dir.fd(), &loc.name, mask) {
            // ENOSYS would make the kernel allow every later access(2).
            Err(e) if sys::is_errno(&e, libc::ENOSYS) => Err(Errno::EACCES),
            other => Ok(other?),
        }
    }

    fn do_getattr(&self, ino: u64, fh: Option<FileHandle>) -> FsResult<FileAttr> {
        Ok(match self.target(ino, fh)? {
            Target::Handle(f, st) => self.attr(ino, &f.path, &st, None)?,
            Target::Dir(d, st) => self.attr(ino, &d.path, &st, None)?,
            Target::Entry(loc, st) => self.attr(ino, &loc.path, &st, Some((loc.dir.fd(), &loc.name)))?,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn do_setattr(
        &self,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        fh: Option<FileHandle>,
        unprivileged: bool,
    ) -> FsResult<FileAttr> {
        let target = self.target(ino, fh)?;
        if mode.is_some() || uid.is_some() || gid.is_some() || size.is_some() || atime.is_some() || mtime.is_some() {
            self.writable()?;
        }
        let st = match &target {
            Target::Handle(_, st) | Target::Dir(_, st) | Target::Entry(_, st) => *st,
        };
        if let Some(size) = size {
            if attr::is_dir(&st) {
                return Err(Errno(libc::EISDIR));
            }
            if !attr::is_reg(&st) {
                return Err(Errno::EINVAL);
            }
            let truncate = |f: &OpenFile| truncate_by(f, size, unprivileged);
            match &target {
                Target::Handle(f, _) => match (truncate(f), fh) {
                    (Err(Errno::MOVED), Some(fh)) => self.with_file(fh, truncate)?,
                    (result, _) => result?,
                },
                Target::Entry(loc, _) => truncate(&self.open_file(ino, loc, libc::O_RDWR, false)?)?,
                Target::Dir(..) => return Err(Errno(libc::EISDIR)),
            }
        }
        let meta = mode.is_some() || uid.is_some() || gid.is_some() || atime.is_some() || mtime.is_some();
        if !meta {
            // A size change alone was made above, on a verified handle.
        } else if let Some(fd) = target.handle_fd() {
            if uid.is_some() || gid.is_some() {
                sys::fchown(fd, uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX))?;
            }
            if let Some(mode) = mode {
                sys::fchmod(fd, mode & 0o7777)?;
            }
            if atime.is_some() || mtime.is_some() {
                sys::futimens(fd, &[timespec(atime), timespec(mtime)])?;
            }
        } else if let Target::Entry(loc, st) = &target {
            if mode.is_some() && attr::is_symlink(st) {
                return Err(Errno(libc::EOPNOTSUPP));
            }
            // Never by name: on a descriptor of the entry, once verified.
            let c = self.checked(ino, loc, st, Check::Content)?;
            if uid.is_some() || gid.is_some() {
                c.chown(uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX))?;
            }
            if let Some(mode) = mode {
                c.chmod(mode & 0o7777)?;
            }
            if atime.is_some() || mtime.is_some() {
                c.utimens(&[timespec(atime), timespec(mtime)])?;
            }
        }
        Ok(match &target {
            Target::Handle(f, _) => self.attr(ino, &f.path, &sys::fstat(f.fd())?, None)?,
            Target::Dir(d, _) => self.attr(ino, &d.path, &sys::fstat(d.fd())?, None)?,
            Target::Entry(loc, _) => {
                let st = sys::fstatat(loc.dir.fd(), &loc.name)?;
                self.attr(ino, &loc.path, &st, Some((loc.dir.fd(), &loc.name)))?
            }
        })
    }

    // ---- files ----------------------------------------------------------------

    /// Opens the backing file of node `ino` and its header. A file re-keyed
    /// between the `open` and the header read is opened again.
    fn open_file(&self, ino: u64, loc: &Loc<'_>, flags: i32, append: bool) -> FsResult<OpenFile> {
        self.open_file_at(ino, loc, flags, append, true)
    }

    /// `open_file`; `same_node`: the entry must still be node `ino` (false
    /// when reopening a handle whose file was re-keyed: the name now leads
    /// to the new inode, and the handle keeps its node id).
    fn open_file_at(&self, ino: u64, loc: &Loc<'_>, flags: i32, append: bool, same_node: bool) -> FsResult<OpenFile> {
        let mut tries = 0;
        loop {
            match self.open_file_once(ino, loc, flags, append, same_node) {
                Err(Errno::MOVED) if tries < 8 => tries += 1,
                Err(Errno::MOVED) => {
                    tracing::error!("{}: re-keyed again on every one of 8 opens; giving up", show(&loc.path));
                    return Err(Errno::EIO);
                }
                other => return other,
            }
        }
    }

    fn open_file_once(&self, ino: u64, loc: &Loc<'_>, flags: i32, append: bool, same_node: bool) -> FsResult<OpenFile> {
        let volume = self.volume.get();
        if !self.volume.is_member() {
            tracing::warn!(
                "{}: access denied: this identity is no longer a member that may open files",
                show(&loc.path)
            );
            return Err(Errno::EACCES);
        }
        let wants_write = flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        // Never follow a symlink; never block on (or wake) a FIFO or device
        // planted where a file should be.
        let base = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | self.atime.files | self.data_flags;
        let dir = loc.dir.fd();
        let (fd, writable) = if self.read_only {
            if wants_write {
                return Err(Errno::EROFS);
            }
            (sys::openat(dir, &loc.name, base | libc::O_RDONLY, 0)?, false)
        } else {
            // Read-write even for write-only opens: partial blocks are
            // read, modified and re-sealed.
            match sys::openat(dir, &loc.name, base | libc::O_RDWR, 0) {
                Ok(fd) => (fd, true),
                Err(e) if !wants_write && (sys::is_errno(&e, libc::EACCES) || sys::is_errno(&e, libc::EROFS)) => {
                    (sys::openat(dir, &loc.name, base | libc::O_RDONLY, 0)?, false)
                }
                Err(e) => return Err(e.into()),
            }
        };
        let st = sys::fstat(fd.as_fd())?;
        if !attr::is_reg(&st) {
            return Err(if attr::is_dir(&st) { Errno(libc::EISDIR) } else { Errno::EINVAL });
        }
        if same_node && self.nodes.id_of(st.st_ino) != ino {
            return Err(Errno::ESTALE);
        }
        sys::clear_nonblock(fd.as_fd())?;
        let rule = |header: &Header| self.header_rule(&volume, ino, &loc.path, header);
        // An open that truncates replaces whatever the end held.
        let check_end = flags & libc::O_TRUNC == 0;
        OpenFile::open(fd, ino, loc.path.clone(), writable, append, check_end, &volume, &self.identity, rule)
    }

    /// The member header rule (tresor_format::policy): a header signed by an
    /// ordinary member may name only the writer, stewards and the defaults
    /// of the policy in force for the file's directory. A header that breaks
    /// it was not written by a mount or the CLI: EACCES, logged with the
    /// writer and the recipient beyond the policy.
    fn header_rule(&self, volume: &Volume, ino: u64, path: &[u8], header: &Header) -> FsResult<()> {
        let writer_is_steward = volume.member(&header.writer()).is_some_and(|m| m.role == Role::Steward);
        let needs_policy = !writer_is_steward
            && header
                .recipients()
                .any(|r| r != header.writer() && volume.member(&r).is_none_or(|m| m.role != Role::Steward));
        let in_force = if needs_policy {
            let parent = self.nodes.parent(ino).unwrap_or(0);
            self.policy_in_force(volume, parent, paths::dirname(path))?
        } else {
            None
        };
        tresor_format::policy::check_header(volume, header, in_force.as_deref()).map_err(|v| {
            tracing::error!("{}: access refused: the header breaks the member header rule: {v}", show(path));
            Errno::EACCES
        })
    }

    /// Runs `op` on handle `fh`; if the file was re-keyed under it
    /// (`Errno::MOVED`), reopens the handle on the new file by path and
    /// runs `op` again there.
    fn with_file<T>(&self, fh: FileHandle, op: impl Fn(&OpenFile) -> FsResult<T>) -> FsResult<T> {
        let mut tries = 0;
        loop {
            let f = self.file(fh)?;
            match op(&f) {
                Err(Errno::MOVED) if tries < 8 => {
                    tries += 1;
                    self.reopen(fh, &f)?;
                }
                Err(Errno::MOVED) => {
                    tracing::error!("{}: re-keyed again on every one of 8 tries; giving up", show(&f.path));
                    return Err(Errno::EIO);
                }
                other => return other,
            }
        }
    }

    /// Replaces handle `fh` (open on a file that was re-keyed) with a handle
    /// on the file now at its path, with the same access mode.
    fn reopen(&self, fh: FileHandle, old: &OpenFile) -> FsResult<()> {
        let loc = self.locate(old.node)?;
        let flags = if old.writable { libc::O_RDWR } else { libc::O_RDONLY };
        let new = self.open_file_at(old.node, &loc, flags, old.append, false)?;
        *new.lock_owners.lock().unwrap_or_else(|e| e.into_inner()) =
            old.lock_owners.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // The audit's release record covers the handle's whole life.
        new.bytes_read.store(old.bytes_read.load(Ordering::Relaxed), Ordering::Relaxed);
        new.bytes_written.store(old.bytes_written.load(Ordering::Relaxed), Ordering::Relaxed);
        if let Some(by) = old.opened_by.get() {
            let _ = new.opened_by.set(*by);
        }
        tracing::info!("{}: re-keyed by a steward; handle reopened on the new file", show(&loc.path));
        self.files.write().unwrap_or_else(|e| e.into_inner()).insert(fh.0, Arc::new(new));
        Ok(())
    }

    /// `unprivileged`: the caller may lack CAP_FSETID (see [`drop_set_id`]).
    fn do_open(&self, ino: u64, flags: i32, unprivileged: bool) -> FsResult<u64> {
        let loc = self.locate(ino)?;
        let f = self.open_file(ino, &loc, flags, flags & libc::O_APPEND != 0)?;
        if flags & libc::O_TRUNC != 0 {
            truncate_by(&f, 0, unprivileged)?;
        }
        let fh = self.new_fh();
        self.files.write().unwrap_or_else(|e| e.into_inner()).insert(fh, Arc::new(f));
        Ok(fh)
    }

    /// The default recipients of the policy in force for directory
    /// `dir_path` (node `dir_id`): the policy in the registry of the nearest
    /// directory, from this one up to the root, whose IV has one. `None`: no
    /// directory on the way has a policy.
    pub(crate) fn policy_in_force(
        &self,
        volume: &Volume,
        dir_id: u64,
        dir_path: &[u8],
    ) -> FsResult<Option<Vec<tresor_format::MemberId>>> {
        if volume.policies().next().is_none() {
            return Ok(None);
        }
        let _ = dir_id;
        let mut cur = dir_path.to_vec();
        loop {
            let dir = self.dir(&cur)?;
            let iv = self.names.dir_iv(dir.fd(), &cur)?;
            if let Some(defaults) = volume.policy(&iv) {
                return Ok(Some(defaults.to_vec()));
            }
            if cur == b"." {
                return Ok(None);
            }
            cur = paths::dirname(&cur).to_vec();
        }
    }

    /// The recipients of a new file in directory `dir_path` (node `dir_id`):
    /// the creator and the default recipients of the policy in force.
    fn recipients(&self, volume: &Volume, dir_id: u64, dir_path: &[u8]) -> FsResult<Vec<PublicIdentity>> {
        let mut out = vec![*self.identity.public()];
        for id in self.policy_in_force(volume, dir_id, dir_path)?.unwrap_or_default() {
            // The registry checks that defaults are current stewards or members.
            if let Some(m) = volume.member(&id) {
                out.push(m.public);
            }
        }
        Ok(out)
    }

    /// Creates and opens a new file. Returns its attributes and handle.
    fn do_create(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> FsResult<(FileAttr, u64)> {
        self.writable()?;
        let volume = self.volume.get();
        if !self.volume.is_member() {
            tracing::warn!("create: access denied: this identity is no longer a member that may create files");
            return Err(Errno::EACCES);
        }
        let (e, dir_st) = self.entry_to_change(parent, name)?;
        let dir = e.dir.fd();
        let recipients = self.recipients(&volume, parent, &e.dir_path)?;
        let new = match self.ready.take(&volume, &recipients) {
            Some(new) => new,
            None => ready::make(&volume, &self.identity, &recipients).map_err(|err| {
                tracing::error!("{}: cannot create a header: {err}", show(&e.path));
                Errno::EIO
            })?,
        };
        let (bytes, cipher, p) = (new.bytes, new.cipher, volume.params);

        let wanted = self.new_file_mode(req, &dir_st, mode & !umask & 0o7777);
        // The file is made whole (header, owner, mode) before its name
        // appears, so no reader on any node sees it half made: unnamed
        // (O_TMPFILE) and linked into place, which costs the back end a
        // create and a link; else under a temporary name, linked into place
        // and the temporary removed (create, link, unlink).
        let data = libc::O_RDWR | libc::O_NOFOLLOW | self.data_flags;
        let unnamed = if self.unnamed_creates.load(Ordering::Relaxed) {
            let fd = sys::open_unnamed(dir, data, wanted)?;
            if fd.is_none() {
                tracing::debug!(
                    "the backing file system makes no unnamed files: new files start under a temporary name"
                );
                self.unnamed_creates.store(false, Ordering::Relaxed);
            }
            fd
        } else {
            None
        };
        let (fd, tmp) = match unnamed {
            Some(fd) => (fd, None),
            None => {
                let tmp = paths::tmp_name();
                (sys::openat(dir, &tmp, data | libc::O_CREAT | libc::O_EXCL, wanted)?, Some(tmp))
            }
        };
        let mut unnamed_refused = false;
        let made = (|| -> FsResult<()> {
            sys::pwrite_all(fd.as_fd(), &bytes, 0)?;
            // The daemon's umask or a default ACL may have narrowed the mode,
            // and root makes the file its caller's; most creates need
            // neither fix (two syscalls per create saved).
            let st = sys::fstat(fd.as_fd())?;
            let mut mode_now = st.st_mode & 0o7777;
            if let Some((uid, gid)) = self.owner(req, &dir_st) {
                if (st.st_uid, st.st_gid) != (uid, gid) {
                    sys::fchown(fd.as_fd(), uid, gid)?;
                    mode_now = u32::MAX; // chown clears set-id bits
                }
            }
            if mode_now != wanted {
                sys::fchmod(fd.as_fd(), wanted)?;
            }
            self.names.put_long_name(dir, &e.name)?;
            let Some(tmp) = &tmp else {
                return sys::link_unnamed(fd.as_fd(), dir, &e.cname).map_err(|err| {
                    unnamed_refused = sys::is_errno(&err, libc::EPERM) || sys::is_errno(&err, libc::EOPNOTSUPP);
                    err.into()
                });
            };
            match sys::linkat(dir, tmp, dir, &e.cname) {
                Ok(()) => Ok(()),
                Err(err) if sys::is_errno(&err, libc::EPERM) || sys::is_errno(&err, libc::EOPNOTSUPP) => {
                    // No hard links here: move the temporary file instead.
                    Ok(sys::rename_noreplace(dir, tmp, dir, &e.cname)?)
                }
                Err(err) => Err(err.into()),
            }
        })();
        if let Some(tmp) = &tmp {
            paths::remove_quietly(dir, tmp, &e.dir_path);
        }
        if unnamed_refused {
            // Unnamed files but no links to them: make it again, named.
            tracing::debug!("the backing file system links no unnamed files: new files start under a temporary name");
            self.unnamed_creates.store(false, Ordering::Relaxed);
            drop(fd);
            return self.do_create(req, parent, name, mode, umask, flags);
        }
        match made {
            Ok(()) => {}
            Err(Errno::EEXIST) if flags & libc::O_EXCL == 0 => {
                // Another process or node created it first: open theirs.
                drop(fd);
                let attr = self.do_lookup(parent, name)?;
                let fh = match self.do_open(attr.ino.0, flags & !libc::O_CREAT, req.uid() != 0) {
                    Ok(fh) => fh,
                    Err(err) => {
                        self.nodes.forget(attr.ino.0, 1);
                        return Err(err);
                    }
                };
                return Ok((self.do_getattr(attr.ino.0, Some(FileHandle(fh)))?, fh));
            }
            Err(err) => return Err(err),
        }
        let st = sys::fstat(fd.as_fd())?;
        let id = self.nodes.id_of(st.st_ino);
        let attr = self.attr(id, &e.path, &st, None)?;
        let mut f = OpenFile::created(fd, id, e.path.clone(), cipher, p, flags & libc::O_APPEND != 0);
        f.created_for = recipients.iter().map(|r| r.id().0).collect();
        self.nodes.add_lookup(id, parent, OsStr::new(e.name.entry()), &e.plain);
        let fh = self.new_fh();
        self.files.write().unwrap_or_else(|e| e.into_inner()).insert(fh, Arc::new(f));
        Ok((attr, fh))
    }

    // ---- directories -----------------------------------------------------------

    fn do_mkdir(&self, req: &Request, parent: u64, name: &OsStr, mode: u32, umask: u32) -> FsResult<FileAttr> {
        self.writable()?;
        let (e, dir_st) = self.entry_to_change(parent, name)?;
        let dir = e.dir.fd();
        let tmp = paths::tmp_name();
        sys::mkdirat(dir, &tmp, 0o700)?;
        let made = (|| -> FsResult<()> {
            let tmp_dir = sys::openat(dir, &tmp, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)?;
            let iv = DirIv::generate(&mut OsRng);
            // Tagged for the place it is about to take (FORMAT.md §8.1).
            let place = Place::In { parent: &e.iv, entry: e.name.entry() };
            sys::write_new(tmp_dir.as_fd(), DIRIV, &self.names.place().seal_diriv(&iv, place), 0o444)?;
            if let Some((uid, gid)) = self.owner(req, &dir_st) {
                sys::fchownat(dir, &tmp, uid, gid)?;
            }
            let mut mode = mode & !umask & 0o7777;
            if dir_st.st_mode & libc::S_ISGID != 0 {
                mode |= libc::S_ISGID;
            }
            sys::fchmodat(dir, &tmp, mode)?;
            self.names.put_long_name(dir, &e.name)?;
            match sys::rename_noreplace(dir, &tmp, dir, &e.cname) {
                Err(err) if sys::is_errno(&err, libc::ENOTEMPTY) || sys::is_errno(&err, libc::ENOTDIR) => {
                    Err(Errno::EEXIST)
                }
                other => Ok(other?),
            }
        })();
        if let Err(err) = made {
            if let Ok(tmp_dir) = sys::openat(dir, &tmp, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0) {
                paths::remove_quietly(tmp_dir.as_fd(), DIRIV, &e.dir_path);
            }
            let _ = sys::unlinkat(dir, &tmp, true);
            return Err(err);
        }
        self.made(parent, &e)
    }

    /// Removes the Tresor directory `e` if it holds nothing but format
    /// metadata. See the module docs.
    fn remove_dir(&self, e: &Entry<'_>) -> FsResult<()> {
        let parent = e.dir.fd();
        let target = sys::openat(parent, &e.cname, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)?;
        let listing = sys::read_dir(sys::openat(target.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?)?;
        let mut reserved = Vec::new();
        for ent in listing {
            let name = match std::str::from_utf8(&ent.name) {
                Ok(n) if classify(n) == EntryKind::Reserved => c(n.as_bytes())?,
                _ => return Err(Errno::ENOTEMPTY),
            };
            if name.to_bytes().starts_with(TMP_PREFIX.as_bytes()) {
                if let Ok(st) = sys::fstatat(target.as_fd(), &name) {
                    let age = sys::now_secs().saturating_sub(st.st_mtime.max(0) as u64);
                    if Duration::from_secs(age) < TMP_BUSY {
                        return Err(Errno::ENOTEMPTY);
                    }
                }
            }
            reserved.push(name);
        }
        let hold_name = paths::tmp_name();
        sys::mkdirat(parent, &hold_name, 0o700)?;
        let hold = match sys::openat(parent, &hold_name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0) {
            Ok(fd) => fd,
            Err(err) => {
                let _ = sys::unlinkat(parent, &hold_name, true);
                return Err(err.into());
            }
        };
        let mut moved = Vec::new();
        let mut result: FsResult<()> = Ok(());
        for name in &reserved {
            match sys::renameat2(target.as_fd(), name, hold.as_fd(), name, 0) {
                Ok(()) => moved.push(name),
                Err(err) if sys::is_errno(&err, libc::ENOENT) => {}
                Err(err) => {
                    result = Err(err.into());
                    break;
                }
            }
        }
        if result.is_ok() {
            result = match sys::unlinkat(parent, &e.cname, true) {
                Ok(()) => Ok(()),
                Err(err) if sys::is_errno(&err, libc::EEXIST) => Err(Errno::ENOTEMPTY),
                Err(err) => Err(err.into()),
            };
        }
        if result.is_err() {
            for name in moved {
                if let Err(err) = sys::renameat2(hold.as_fd(), name, target.as_fd(), name, 0) {
                    tracing::error!(
                        "{}: could not put {} back after a failed rmdir: {err}",
                        show(&e.path),
                        name.to_string_lossy()
                    );
                }
            }
        }
        remove_tree(hold, 0, &e.dir_path);
        if let Err(err) = sys::unlinkat(parent, &hold_name, true) {
            tracing::warn!("{}/{}: removing: {err}", show(&e.dir_path), hold_name.to_string_lossy());
        }
        result
    }

    fn do_rmdir(&self, parent: u64, name: &OsStr) -> FsResult<()> {
        self.writable()?;
        let (e, _) = self.entry_to_change(parent, name)?;
        let st = sys::fstatat(e.dir.fd(), &e.cname)?;
        if !attr::is_dir(&st) {
            return Err(Errno(libc::ENOTDIR));
        }
        self.remove_dir(&e)?;
        self.names.drop_long_name(e.dir.fd(), &e.name, &e.dir_path);
        Ok(())
    }

    fn do_unlink(&self, parent: u64, name: &OsStr) -> FsResult<()> {
        self.writable()?;
        let (e, _) = self.entry_to_change(parent, name)?;
        let dir = e.dir.fd();
        let st = sys::fstatat(dir, &e.cname)?;
        if attr::is_dir(&st) {
            return Err(Errno(libc::EISDIR));
        }
        let sidecar = target_sidecar_of(dir, &e.cname, &st);
        sys::unlinkat(dir, &e.cname, false)?;
        self.names.drop_long_name(dir, &e.name, &e.dir_path);
        if let Some(sc) = sidecar {
            if st.st_nlink <= 1 {
                paths::remove_quietly(dir, &sc, &e.dir_path);
            }
        }
        Ok(())
    }

    // ---- links and renames ---------------------------------------------------------

    fn do_symlink(&self, req: &Request, parent: u64, name: &OsStr, target: &Path) -> FsResult<FileAttr> {
        self.writable()?;
        let (e, dir_st) = self.entry_to_change(parent, name)?;
        let dir = e.dir.fd();
        let text = self.names.put_target(dir, target.as_os_str().as_bytes())?;
        let has_sidecar = text.as_bytes().starts_with(b"tresor.");
        let made = (|| -> FsResult<()> {
            self.names.put_long_name(dir, &e.name)?;
            sys::symlinkat(&text, dir, &e.cname)?;
            if let Some((uid, gid)) = self.owner(req, &dir_st) {
                sys::fchownat(dir, &e.cname, uid, gid)?;
            }
            Ok(())
        })();
        if let Err(err) = made {
            if has_sidecar && err == Errno::EEXIST {
                paths::remove_quietly(dir, &text, &e.dir_path);
            }
            return Err(err);
        }
        self.made(parent, &e)
    }

    fn do_link(&self, ino: u64, newparent: u64, newname: &OsStr) -> FsResult<FileAttr> {
        self.writable()?;
        let (src, st) = self.stat_node(ino)?;
        if attr::is_dir(&st) {
            return Err(Errno(libc::EPERM));
        }
        let (e, _) = self.entry_to_change(newparent, newname)?;
        self.names.put_long_name(e.dir.fd(), &e.name)?;
        if let Some(sc) = target_sidecar_of(src.dir.fd(), &src.name, &st) {
            if paths::dirname(&src.path) != e.dir_path.as_slice() {
                paths::copy_target_sidecar(src.dir.fd(), &sc, e.dir.fd())?;
            }
        }
        sys::linkat(src.dir.fd(), &src.name, e.dir.fd(), &e.cname)?;
        self.made(newparent, &e)
    }

    /// Writes special-file record `node` under a new temporary name in
    /// `dir` (backing path `dir_path`), owned and moded (`mode`) as a new
    /// entry of `req`'s there; returns the name.
    fn node_record(
        &self,
        req: &Request,
        dir: BorrowedFd<'_>,
        dir_st: &libc::stat,
        dir_path: &[u8],
        node: Node,
        mode: u32,
    ) -> FsResult<CString> {
        // A tagged record in a regular file, never a backing FIFO or
        // device (FORMAT.md §8.7).
        let mode = self.new_file_mode(req, dir_st, mode);
        let tmp = paths::tmp_name();
        sys::write_new(dir, &tmp, &self.names.place().seal_node(node), mode)?;
        let set = (|| -> FsResult<()> {
            if let Some((uid, gid)) = self.owner(req, dir_st) {
                sys::fchownat(dir, &tmp, uid, gid)?;
            }
            Ok(sys::fchmodat(dir, &tmp, mode)?)
        })();
        if let Err(err) = set {
            paths::remove_quietly(dir, &tmp, dir_path);
            return Err(err);
        }
        Ok(tmp)
    }

    fn do_mknod(
        &self,
        req: &Request,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
    ) -> FsResult<FileAttr> {
        match mode & libc::S_IFMT {
            libc::S_IFREG => {
                let (attr, fh) = self.do_create(req, parent, name, mode, umask, libc::O_EXCL | libc::O_RDWR)?;
                self.files.write().unwrap_or_else(|e| e.into_inner()).remove(&fh);
                Ok(attr)
            }
            libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK => {
                self.writable()?;
                let kind = match mode & libc::S_IFMT {
                    libc::S_IFIFO => NodeKind::Fifo,
                    libc::S_IFSOCK => NodeKind::Socket,
                    libc::S_IFCHR => NodeKind::Char,
                    _ => NodeKind::Block,
                };
                let devices = matches!(kind, NodeKind::Char | NodeKind::Block);
                let node = Node { kind, rdev: if devices { rdev.into() } else { 0 } };
                let (e, dir_st) = self.entry_to_change(parent, name)?;
                let dir = e.dir.fd();
                // Made whole under a temporary name.
                let tmp = self.node_record(req, dir, &dir_st, &e.dir_path, node, mode & !umask & 0o7777)?;
                let made = (|| -> FsResult<()> {
                    self.names.put_long_name(dir, &e.name)?;
                    Ok(sys::rename_noreplace(dir, &tmp, dir, &e.cname)?)
                })();
                if made.is_err() {
                    paths::remove_quietly(dir, &tmp, &e.dir_path);
                }
                made?;
                self.made(parent, &e)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    fn do_readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        let (loc, _) = self.stat_node(ino)?;
        self.names.read_target(loc.dir.fd(), &loc.name, &loc.path)
    }

    fn do_fsyncdir(&self, ino: u64, datasync: bool) -> FsResult<()> {
        let loc = self.locate(ino)?;
        let fd = sys::openat(loc.dir.fd(), &loc.name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)?;
        Ok(sys::fsync(fd.as_fd(), datasync)?)
    }

    // ---- POSIX locks ----------------------------------------------------------------

    /// A user lock range [start, end] (inclusive; end OFFSET_MAX or more
    /// for "to EOF") as (start, len) below LOCK_BASE.
    fn user_range(start: u64, end: u64) -> FsResult<(u64, u64)> {
        if start >= LOCK_BASE || end < start {
            return Err(Errno::EINVAL);
        }
        let len = if end >= LOCK_BASE - 1 { LOCK_BASE - start } else { end - start + 1 };
        Ok((start, len))
    }

    fn lock_fd(&self, f: &OpenFile, owner: u64, create: bool) -> FsResult<Option<Arc<OwnedFd>>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(fd) = locks.get(&(f.node, owner)) {
            return Ok(Some(fd.clone()));
        }
        if !create {
            return Ok(None);
        }
        let flags = if f.writable { libc::O_RDWR } else { libc::O_RDONLY };
        let fd = Arc::new(sys::reopen(f.fd(), flags)?);
        locks.insert((f.node, owner), fd.clone());
        let mut owners = f.lock_owners.lock().unwrap_or_else(|e| e.into_inner());
        if !owners.contains(&owner) {
            owners.push(owner);
        }
        Ok(Some(fd))
    }

    /// Drops every lock `owner` holds on `node` (POSIX: any close does).
    fn release_locks(&self, node: u64, owner: u64) {
        let fd = self.locks.lock().unwrap_or_else(|e| e.into_inner()).remove(&(node, owner));
        if let Some(fd) = fd {
            if let Err(e) = lock::set(fd.as_fd(), libc::F_UNLCK, 0, LOCK_BASE, false) {
                tracing::warn!("releasing forwarded locks: {e}");
            }
        }
    }

    fn do_getlk(&self, fh: FileHandle, owner: u64, start: u64, end: u64, typ: i32) -> FsResult<(u64, u64, i32)> {
        let f = self.file(fh)?;
        let (start, len) = Self::user_range(start, end)?;
        let fd = self.lock_fd(&f, owner, false)?;
        let fd = fd.as_deref().map(|fd| fd.as_fd()).unwrap_or(f.fd());
        Ok(match lock::get(fd, typ, start, len)? {
            None => (0, 0, libc::F_UNLCK),
            Some((t, s, l)) => {
                let end = if l == 0 || s.saturating_add(l) >= LOCK_BASE { i64::MAX as u64 } else { s + l - 1 };
                (s, end, t)
            }
        })
    }
}

/// What a node-level operation acts on.
enum Target<'a> {
    /// An open handle (given, or the only way left to the node).
    Handle(Arc<OpenFile>, libc::stat),
    /// An open directory stream (the only way left to the node).
    Dir(Arc<DirHandle>, libc::stat),
    /// The backing entry.
    Entry(Loc<'a>, libc::stat),
}

impl Target<'_> {
    /// The descriptor of a handle or stream; `None` for a backing entry.
    fn handle_fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Target::Handle(f, _) => Some(f.fd()),
            Target::Dir(d, _) => Some(d.fd()),
            Target::Entry(..) => None,
        }
    }
}

const DIRIV: &CStr = c"tresor.diriv";

/// Truncates `f` for a caller that may lack CAP_FSETID (`unprivileged`).
fn truncate_by(f: &OpenFile, size: u64, unprivileged: bool) -> FsResult<()> {
    f.truncate(size)?;
    if unprivileged {
        drop_set_id(f.fd())?;
    }
    Ok(())
}

/// Clears set-user-ID, and set-group-ID when the group may execute, as the
/// kernel does when a caller without CAP_FSETID writes or truncates. With
/// FUSE_HANDLE_KILLPRIV_V2 this is the daemon's job; in exchange the kernel
/// stops asking for `security.capability` before every write (a round trip
/// per write). The kernel flags each write that needs it; for truncate and
/// fallocate, whose flag fuser does not pass on, any caller but root counts.
fn drop_set_id(fd: BorrowedFd<'_>) -> FsResult<()> {
    let mode = sys::fstat(fd)?.st_mode & 0o7777;
    let mut kept = mode & !libc::S_ISUID;
    if mode & libc::S_IXGRP != 0 {
        kept &= !libc::S_ISGID;
    }
    if kept != mode {
        sys::fchmod(fd, kept)?;
    }
    Ok(())
}

fn timespec(t: Option<TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT },
        Some(TimeOrNow::Now) => libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_NOW },
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => libc::timespec { tv_sec: d.as_secs() as libc::time_t, tv_nsec: d.subsec_nanos() as _ },
            Err(e) => {
                let d = e.duration();
                let (mut s, mut n) = (-(d.as_secs() as i64), -(d.subsec_nanos() as i64));
                if n < 0 {
                    s -= 1;
                    n += 1_000_000_000;
                }
                libc::timespec { tv_sec: s as libc::time_t, tv_nsec: n as _ }
            }
        },
    }
}

/// The long-target sidecar of backing symlink `name` in `dir`, if any.
fn target_sidecar_of(dir: BorrowedFd<'_>, name: &CStr, st: &libc::stat) -> Option<CString> {
    if attr::is_symlink(st) && st.st_size as usize == paths::TARGET_LINK_LEN {
        paths::target_sidecar(dir, name)
    } else {
        None
    }
}

/// Empties a holding or temporary directory of format metadata (open as
/// `dir`; `path` for logs). Subdirectories (temporary directories of
/// crashed mkdirs) are emptied and removed, a few levels deep at most.
fn remove_tree(dir: OwnedFd, depth: u32, path: &[u8]) {
    let listing = match sys::openat(dir.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0).and_then(sys::read_dir) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("{}: emptying a holding directory: {e}", show(path));
            return;
        }
    };
    for ent in listing {
        let Ok(name) = sys::cstring(&ent.name) else { continue };
        if ent.d_type == libc::DT_DIR && depth < 4 {
            if let Ok(sub) = sys::openat(dir.as_fd(), &name, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0) {
                remove_tree(sub, depth + 1, path);
            }
            if let Err(e) = sys::unlinkat(dir.as_fd(), &name, true) {
                tracing::warn!("{}: removing {}: {e}", show(path), name.to_string_lossy());
            }
        } else {
            paths::remove_quietly(dir.as_fd(), &name, path);
        }
    }
}

/// Which handles bypass the kernel's page cache (`FOPEN_DIRECT_IO`).
///
/// Then the kernel sends each `write(2)` as one request (split only at
/// `max_write`, 1 MiB) instead of cutting it at the first partial page not
/// in the cache, and the mount applies each request under one lock: a
/// write is atomic against overlapping writes from any node, as on the
/// backing clients of a parallel file system. So in the shared-storage
/// default (`cache_timeout=0`) every handle that can write bypasses it;
/// with a cache timeout (one node, or a volume read more than written) only
/// `O_APPEND` handles do, whose writes go whole to the real end of the
/// file, found under the lock. Read-only handles keep the page cache and
/// the kernel's readahead (a streaming reader gets 1 MiB requests whatever
/// its buffer): the cache is dropped at every open, and with no attribute
/// cache the kernel checks size and mtime before each read and drops pages
/// another node changed (`FUSE_AUTO_INVAL_DATA`); a direct write through
/// another handle on this node drops them too. Shared mappings of direct
/// handles still work where the kernel offers `FUSE_DIRECT_IO_ALLOW_MMAP`
/// (6.6+).
fn fopen_flags(open_flags: i32, ttl: Duration) -> FopenFlags {
    let writes = open_flags & libc::O_ACCMODE != libc::O_RDONLY;
    if open_flags & libc::O_APPEND != 0 || (ttl.is_zero() && writes) {
        FopenFlags::FOPEN_DIRECT_IO
    } else {
        FopenFlags::empty()
    }
}

fn errno(e: Errno) -> fuser::Errno {
    if e == Errno::MOVED {
        return fuser::Errno::from_i32(libc::EIO);
    }
    fuser::Errno::from_i32(e.0)
}

impl OpenFile {
    /// A handle on a file this mount just created (header written, key known).
    fn created(
        fd: OwnedFd,
        node: u64,
        path: Vec<u8>,
        cipher: ContentCipher,
        params: tresor_format::VolumeParams,
        append: bool,
    ) -> OpenFile {
        OpenFile::from_parts(fd, node, path, cipher, Layout::new(params.header_len, params.block_size), true, append)
    }
}

impl Filesystem for TresorFs {
    fn destroy(&mut self) {
        self.audit.close();
    }

    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(max) = config.set_max_write(1 << 20) {
            let _ = config.set_max_write(max);
        }
        if let Err(max) = config.set_max_readahead(u32::MAX) {
            let _ = config.set_max_readahead(max);
        }
        use fuser::InitFlags as F;
        for flag in [
            F::FUSE_POSIX_LOCKS,
            F::FUSE_FLOCK_LOCKS,
            F::FUSE_ATOMIC_O_TRUNC,
            F::FUSE_AUTO_INVAL_DATA,
            F::FUSE_PARALLEL_DIROPS,
            // Shared mappings of direct-I/O handles (fopen_flags).
            F::FUSE_DIRECT_IO_ALLOW_MMAP,
            // The daemon clears set-id bits (drop_set_id), so the kernel
            // need not ask for security.capability before every write.
            F::FUSE_HANDLE_KILLPRIV_V2,
        ] {
            if config.capabilities().contains(flag) {
                let _ = config.add_capabilities(flag);
            } else {
                tracing::debug!("kernel lacks FUSE capability {flag:?}");
            }
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let result = self.do_lookup(parent.0, name);
        self.audit_failure(req, Op::Lookup, &result, |e| e.path(self.plain_child(parent.0, name)));
        match result {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.nodes.forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let result = self.do_getattr(ino.0, fh);
        self.audit_failure(req, Op::Getattr, &result, |e| e.path(self.plain(ino.0)));
        match result {
            Ok(attr) => reply.attr(&self.ttl, &attr),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self.do_access(req, ino.0, mask.bits()) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = self
            .audit
            .ready()
            .and_then(|()| self.do_setattr(ino.0, mode, uid, gid, size, atime, mtime, fh, req.uid() != 0));
        let changed = setattr_fields(mode, uid, gid, size, atime, mtime);
        let result = self.audited(req, Op::Setattr, result, |e| e.path(self.plain(ino.0)).setattr(changed), drop);
        match result {
            Ok(attr) => reply.attr(&self.ttl, &attr),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        let result = self.do_readlink(ino.0);
        self.audit_failure(req, Op::Readlink, &result, |e| e.path(self.plain(ino.0)));
        match result {
            Ok(target) => reply.data(&target),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, rdev: u32, reply: ReplyEntry) {
        let result = self.audit.ready().and_then(|()| self.do_mknod(req, parent.0, name, mode, umask, rdev));
        let forget = |a: FileAttr| self.nodes.forget(a.ino.0, 1);
        let result = self.audited(req, Op::Mknod, result, |e| e.path(self.plain_child(parent.0, name)), forget);
        match result {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mkdir(&self, req: &Request, parent: INodeNo, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let result = self.audit.ready().and_then(|()| self.do_mkdir(req, parent.0, name, mode, umask));
        let forget = |a: FileAttr| self.nodes.forget(a.ino.0, 1);
        let result = self.audited(req, Op::Mkdir, result, |e| e.path(self.plain_child(parent.0, name)), forget);
        match result {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = self.audit.ready().and_then(|()| self.do_unlink(parent.0, name));
        let result = self.audited(req, Op::Unlink, result, |e| e.path(self.plain_child(parent.0, name)), drop);
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = self.audit.ready().and_then(|()| self.do_rmdir(parent.0, name));
        let result = self.audited(req, Op::Rmdir, result, |e| e.path(self.plain_child(parent.0, name)), drop);
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn symlink(&self, req: &Request, parent: INodeNo, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let result = self.audit.ready().and_then(|()| self.do_symlink(req, parent.0, link_name, target));
        let forget = |a: FileAttr| self.nodes.forget(a.ino.0, 1);
        let result = self.audited(req, Op::Symlink, result, |e| e.path(self.plain_child(parent.0, link_name)), forget);
        match result {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        // Paths from the parents, which a rename does not move.
        let (from, to) = (self.plain_child(parent.0, name), self.plain_child(newparent.0, newname));
        let result = self.audit.ready().and_then(|()| self.do_rename(req, parent.0, name, newparent.0, newname, flags));
        let result = self.audited(req, Op::Rename, result, |e| e.path(from).new_path(to), drop);
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn link(&self, req: &Request, ino: INodeNo, newparent: INodeNo, newname: &OsStr, reply: ReplyEntry) {
        let from = self.plain(ino.0);
        let result = self.audit.ready().and_then(|()| self.do_link(ino.0, newparent.0, newname));
        let forget = |a: FileAttr| self.nodes.forget(a.ino.0, 1);
        let to = self.plain_child(newparent.0, newname);
        let result = self.audited(req, Op::Link, result, |e| e.path(from).new_path(to), forget);
        match result {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let result = self.audit.ready().and_then(|()| self.do_open(ino.0, flags.0, req.uid() != 0));
        let close = |fh: u64| drop(self.files.write().unwrap_or_else(|e| e.into_inner()).remove(&fh));
        let result = self.audited(req, Op::Open, result, |e| e.path(self.plain(ino.0)).intent(intent(flags.0)), close);
        if let Some(f) = result.as_ref().ok().and_then(|fh| self.file(FileHandle(*fh)).ok()) {
            let _ = f.opened_by.set((req.uid(), req.gid(), req.pid()));
        }
        match result {
            Ok(fh) => reply.opened(FileHandle(fh), fopen_flags(flags.0, self.ttl)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let reply = Some(reply);
        let reply = std::cell::RefCell::new(reply);
        let result = self.with_file(fh, |f| {
            f.read(offset, size, |data| {
                f.bytes_read.fetch_add(data.len() as u64, Ordering::Relaxed);
                if let Some(r) = reply.borrow_mut().take() {
                    r.data(data)
                }
            })
        });
        let mut reply = reply.into_inner();
        self.audit_failure(req, Op::Read, &result, |e| e.path(self.plain(ino.0)).offset(offset));
        if let (Err(e), Some(r)) = (result, reply.take()) {
            r.error(errno(e));
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let result = self.with_file(fh, |f| {
            if !f.writable {
                return Err(Errno::EBADF);
            }
            f.write(offset, data)?;
            if write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID) {
                drop_set_id(f.fd())?;
            }
            f.bytes_written.fetch_add(data.len() as u64, Ordering::Relaxed);
            Ok(())
        });
        self.audit_failure(req, Op::Write, &result, |e| e.path(self.plain(ino.0)).offset(offset));
        match result {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, lock_owner: LockOwner, reply: ReplyEmpty) {
        if let Ok(f) = self.file(fh) {
            self.release_locks(f.node, lock_owner.0);
        }
        reply.ok();
    }

    fn release(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        lock_owner: Option<LockOwner>,
        flush: bool,
        reply: ReplyEmpty,
    ) {
        let f = self.files.write().unwrap_or_else(|e| e.into_inner()).remove(&fh.0);
        if let Some(f) = &f {
            if let (Some(owner), true) = (lock_owner, flush) {
                self.release_locks(f.node, owner.0);
            }
            // OFD locks belong to the open file description this handle
            // is: the kernel sends no unlock when it goes away, so drop the
            // locks of every owner that locked through it. (A POSIX owner's
            // locks went with its first close already, in `flush`.)
            let owners = std::mem::take(&mut *f.lock_owners.lock().unwrap_or_else(|e| e.into_inner()));
            for owner in owners {
                self.release_locks(f.node, owner);
            }
            let (read, written) = (f.bytes_read.load(Ordering::Relaxed), f.bytes_written.load(Ordering::Relaxed));
            // Nothing to refuse any more: a failure here is logged by the writer.
            let (uid, gid, pid) = f.opened_by.get().copied().unwrap_or((req.uid(), req.gid(), req.pid()));
            let _ = self.audited(
                req,
                Op::Release,
                Ok(()),
                |e| e.by(uid, gid, pid).path(self.plain(f.node)).bytes(read, written),
                drop,
            );
        }
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        match self.file(fh).and_then(|f| Ok(sys::fsync(f.fd(), datasync)?)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let result = self.do_opendir(ino.0);
        self.audit_failure(req, Op::Opendir, &result, |e| e.path(self.plain(ino.0)));
        match result {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let entries = match self.dir_entries(fh.0, offset) {
            Ok(entries) => entries,
            Err(e) => return reply.error(errno(e)),
        };
        for (i, e) in entries.iter().enumerate().skip(offset.min(usize::MAX as u64) as usize) {
            if reply.add(INodeNo(e.ino), (i + 1) as u64, e.kind, &e.name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.dirs.lock().unwrap_or_else(|e| e.into_inner()).remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, datasync: bool, reply: ReplyEmpty) {
        match self.do_fsyncdir(ino.0, datasync) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match sys::fstatvfs(self.root()) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                tresor_format::names::NAME_MAX as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(errno(e.into())),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let result = self.audit.ready().and_then(|()| self.writable()).and_then(|()| {
            match self.xattr_target(ino.0, Check::Content)? {
                (Some(fd), _) => xattr::set(self.names.cipher(), fd.as_fd(), name, value, flags),
                (None, _) => Err(Errno(libc::EPERM)),
            }
        });
        let result =
            self.audited(req, Op::Setxattr, result, |e| e.path(self.plain(ino.0)).xattr(name.as_bytes()), drop);
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if !xattr::is_stored(name) {
            // The kernel asks for `security.capability` before a file's
            // first write: answer without resolving the path.
            return reply_xattr(Err(Errno(libc::ENODATA)), size, reply);
        }
        let result = self.xattr_target(ino.0, Check::Type).and_then(|target| match target {
            (Some(fd), path) => xattr::get(self.names.cipher(), fd.as_fd(), name, &show(&path)),
            (None, _) => Err(Errno(libc::ENODATA)),
        });
        self.audit_failure(req, Op::Getxattr, &result, |e| e.path(self.plain(ino.0)).xattr(name.as_bytes()));
        reply_xattr(result, size, reply);
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let result = self.xattr_target(ino.0, Check::Type).and_then(|target| match target {
            (Some(fd), path) => xattr::list(self.names.cipher(), fd.as_fd(), &show(&path)),
            (None, _) => Ok(Vec::new()),
        });
        self.audit_failure(req, Op::Listxattr, &result, |e| e.path(self.plain(ino.0)));
        reply_xattr(result, size, reply);
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = self.audit.ready().and_then(|()| self.writable()).and_then(|()| {
            match self.xattr_target(ino.0, Check::Content)? {
                (Some(fd), _) => xattr::remove(self.names.cipher(), fd.as_fd(), name),
                (None, _) => Err(Errno(libc::ENODATA)),
            }
        });
        let result =
            self.audited(req, Op::Removexattr, result, |e| e.path(self.plain(ino.0)).xattr(name.as_bytes()), drop);
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let result = self.audit.ready().and_then(|()| self.do_create(req, parent.0, name, mode, umask, flags));
        let undo = |(a, fh): (FileAttr, u64)| {
            drop(self.files.write().unwrap_or_else(|e| e.into_inner()).remove(&fh));
            self.nodes.forget(a.ino.0, 1);
        };
        // Empty when the file existed already (opened, not made, by this call).
        let recipients =
            |fh: u64| self.file(FileHandle(fh)).ok().map(|f| f.created_for.clone()).filter(|r| !r.is_empty());
        let (path, intent) = (self.plain_child(parent.0, name), intent(flags));
        let rcpt = result.as_ref().ok().and_then(|(_, fh)| recipients(*fh));
        let result = self.audited(
            req,
            Op::Create,
            result,
            |e| {
                let e = e.path(path).intent(intent);
                match rcpt {
                    Some(r) => e.recipients(r),
                    None => e,
                }
            },
            undo,
        );
        if let Some(f) = result.as_ref().ok().and_then(|(_, fh)| self.file(FileHandle(*fh)).ok()) {
            let _ = f.opened_by.set((req.uid(), req.gid(), req.pid()));
        }
        match result {
            Ok((attr, fh)) => {
                reply.created(&self.ttl, &attr, Generation(0), FileHandle(fh), fopen_flags(flags, self.ttl))
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        _pid: u32,
        reply: ReplyLock,
    ) {
        match self.do_getlk(fh, lock_owner.0, start, end, typ) {
            Ok((start, end, typ)) => reply.locked(start, end, typ, 0),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setlk(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        lock_owner: LockOwner,
        start: u64,
        end: u64,
        typ: i32,
        _pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        let prepared = self.file(fh).and_then(|f| {
            if typ == libc::F_UNLCK && start >= LOCK_BASE {
                return Ok(None);
            }
            let (start, len) = Self::user_range(start, end)?;
            Ok(self.lock_fd(&f, lock_owner.0, typ != libc::F_UNLCK)?.map(|fd| (fd, start, len)))
        });
        let (fd, start, len) = match prepared {
            Ok(Some(x)) => x,
            Ok(None) => return reply.ok(), // unlocking what was never locked
            Err(e) => return reply.error(errno(e)),
        };
        match lock::set(fd.as_fd(), typ, start, len, false) {
            Ok(()) => reply.ok(),
            Err(e) if sleep && (sys::is_errno(&e, libc::EAGAIN) || sys::is_errno(&e, libc::EACCES)) => {
                // Wait on a thread of our own: a lock held for long must not
                // block the threads serving the mount (the holder may need
                // them to finish its work and unlock).
                let spawned = std::thread::Builder::new().name("tresor-setlkw".into()).spawn(move || {
                    match lock::set(fd.as_fd(), typ, start, len, true) {
                        Ok(()) => reply.ok(),
                        Err(e) => reply.error(errno(e.into())),
                    }
                });
                if let Err(e) = spawned {
                    tracing::error!("cannot start a thread to wait for a lock: {e}");
                }
            }
            Err(e) => reply.error(errno(e.into())),
        }
    }

    fn fallocate(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let result = self.with_file(fh, |f| {
            // Punching holes and zeroing or moving ranges would re-seal the
            // partial blocks at their edges: not offered.
            let keep_size = match mode {
                0 => false,
                libc::FALLOC_FL_KEEP_SIZE => true,
                _ => return Err(Errno(libc::EOPNOTSUPP)),
            };
            if !f.writable {
                return Err(Errno::EBADF);
            }
            f.allocate(offset, offset.checked_add(length).ok_or(Errno::EFBIG)?, keep_size)?;
            if req.uid() != 0 {
                drop_set_id(f.fd())?;
            }
            Ok(())
        });
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }
}

/// Answers getxattr/listxattr: the size when asked for 0 bytes, ERANGE
/// when the caller's buffer is too small.
fn reply_xattr(result: FsResult<Vec<u8>>, size: u32, reply: ReplyXattr) {
    match result {
        Ok(data) if size == 0 => reply.size(data.len() as u32),
        Ok(data) if data.len() > size as usize => reply.error(errno(Errno(libc::ERANGE))),
        Ok(data) => reply.data(&data),
        Err(e) => reply.error(errno(e)),
    }
}
