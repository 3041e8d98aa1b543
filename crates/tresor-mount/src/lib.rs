//! The Tresor mount: a FUSE file system that shows the plaintext of a
//! Tresor backing directory (see `docs/FORMAT.md`), for one member identity.
//!
//! ```text
//! let mut config = MountConfig::new(backing, mountpoint, identity, pinned);
//! parse_options("noatime,allow_other", &mut config)?;
//! let prepared = prepare(config)?;   // all checks; nothing mounted, no threads
//! let mounted = prepared.mount()?;   // the mount is live when this returns
//! mounted.run()?;                    // serve until `fusermount3 -u` / `umount`
//! ```
//!
//! | module | job |
//! |---|---|
//! | `config` | [`MountConfig`] and `-o` option parsing |
//! | `volume` | load and verify `tresor.volume`; reload it when a steward changes it |
//! | `nodes` | node ids (backing inode numbers) and where each node lives |
//! | `paths` | plaintext names to backing entries: IVs, names, long names, symlink targets |
//! | `ready` | new file headers (keys, stanzas, signature) made ahead for creates |
//! | `file` | an open file: header, content cipher, read/write/truncate protocol |
//! | `lock` | OFD byte-range locks: internal (ciphertext) and forwarded user locks |
//! | `parallel` | the blocks of one large request sealed or opened on all cores |
//! | `attr` | backing `stat` to FUSE attributes (sizes from lengths alone) |
//! | `kmount` | the kernel mount: made as root (`fuse.tresor`), remounted, unmounted on request |
//! | `fs` | the `fuser::Filesystem` implementation: errno mapping, logging, audit records |
//! | `sys` | safe wrappers over the libc calls used |
//!
//! # Shared storage
//!
//! Many nodes may mount one backing directory at once. Nothing another node
//! can change is cached by default (`cache_timeout` 0): attributes and
//! entries are re-read on every kernel request, each FUSE open has its own
//! backing descriptors (one per operation in flight on it), and every read,
//! write and truncate runs under OFD byte-range locks on the backing file
//! (see `file`), so concurrent writers on different nodes never corrupt a
//! block, a trailer or a header. Files and directories appear atomically
//! with their header or IV (created under a temporary `tresor.tmp.*` name,
//! then linked or renamed into place).
//!
//! This needs byte-range locks that the backing file system enforces
//! between its clients: NFSv4 (or v3 with lockd, not `nolock`), Lustre
//! mounted with `-o flock`, GPFS/Spectrum Scale, BeeGFS with global file
//! locks. Where locks are only local to each node (Lustre `localflock`,
//! NFS `nolock`), concurrent writes to one file from several nodes can lose
//! updates; writes from one node are always safe.
//!
//! # How the mount is made
//!
//! As root, Tresor calls `mount(2)` itself with type `fuse.tresor` (see
//! `kmount`), so `findmnt -t fuse.tresor` and `umount -a -t fuse.tresor`
//! find it, with source `tresor:<backing>` or the `fsname` given, and hands
//! the descriptor to `fuser` 0.18 (built without libfuse). As any other
//! user `mount(2)` is not allowed and fuser runs the setuid `fusermount3`
//! helper from the Debian `fuse3` package (which needs `user_allow_other`
//! in /etc/fuse.conf for `allow_other`). Unmount with `fusermount3 -u
//! MOUNTPOINT`, `umount MOUNTPOINT`, or a signal to the daemon
//! ([`Unmounter`]); `mount -o remount,ro|rw` changes a live root mount's
//! flags ([`remount`]).
//!
//! # Not done yet
//!
//! * No `lseek(SEEK_DATA/SEEK_HOLE)` or `copy_file_range` (the kernel falls
//!   back to its generic versions: holes read as data, copies as reads and
//!   writes).
#![forbid(unsafe_code)]

mod attr;
mod audit;
mod audit_policy;
mod backing;
mod config;
mod file;
mod fs;
mod kmount;
/// Public for `tresor grant/revoke/rekey`, which take the daemon's internal
/// locks on the files they rewrite (docs/FORMAT.md §6.5).
pub mod lock;
mod nodes;
mod parallel;
mod paths;
mod ready;
mod sys;
mod volume;
mod xattr;

use std::fs::Metadata;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use backing::data_flags;
pub use config::{parse_options, AuditOptions, MountConfig};
pub use file::MOVED_MAGIC;
pub use kmount::{remount, Unmounter, FS_TYPE};
use tresor_format::{MemberId, Role};

/// The readahead window the mount asks for: one largest request
/// (`max_write`, 1 MiB), so streaming reads come in requests that size.
const READAHEAD_KIB: u32 = 1024;

/// Why the mount could not be prepared, made or served.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("backing directory {path}: {source}")]
    BackingMissing { path: PathBuf, source: std::io::Error },

    #[error("backing directory {path} is not a directory")]
    BackingNotDirectory { path: PathBuf },

    #[error("refusing to mount {backing}: {reason}")]
    IncoherentBacking { backing: PathBuf, reason: String },

    #[error(
        "{backing} is not a Tresor volume: it has no tresor.volume (create one with `tresor init`, or check the path)"
    )]
    NotAVolume { backing: PathBuf },

    #[error("cannot read the volume file {path}: {source}")]
    VolumeRead { path: PathBuf, source: std::io::Error },

    #[error("the volume file {path} is invalid: {source}")]
    VolumeInvalid { path: PathBuf, source: tresor_format::Error },

    #[error("the volume file {path} is format version {version}; this Tresor reads version {}: a steward runs `tresor migrate {backing}` once, with every mount of the volume stopped", tresor_format::volume::VOLUME_VERSION)]
    VolumeNeedsMigration { path: PathBuf, backing: String, version: u16 },

    #[error("the member registry in {path} is at generation {found}, older than generation {seen} this node has accepted (or min_generation): it was rolled back to an older copy; ask a steward to check the volume file")]
    RegistryRolledBack { path: PathBuf, found: u64, seen: u64 },

    #[error("refused by the volume's audit policy: {reason}")]
    AuditPolicy { reason: String },

    #[error("cannot keep the registry generation this node has seen in {path}: {source}")]
    GenerationFile { path: PathBuf, source: std::io::Error },

    #[error("the member registry in {path} is signed by {signer}, which is not one of the pinned steward keys; if this steward is legitimate, pin its key, otherwise the volume file was replaced")]
    StewardNotPinned { path: PathBuf, signer: MemberId },

    #[error("this identity ({member}) is not a member of the volume; ask a steward to add it")]
    NotMember { member: MemberId },

    #[error("this identity ({member}) is an auditor: auditors may only mount read-only (-o ro)")]
    AuditorMustBeReadOnly { member: MemberId },

    #[error("cannot unwrap the volume name key for this identity: {source}")]
    NameKey { source: tresor_format::Error },

    #[error("the root directory IV {path} is missing or invalid: {reason}")]
    RootDirIv { path: PathBuf, reason: String },

    #[error("mount point {path}: {source}")]
    MountpointMissing { path: PathBuf, source: std::io::Error },

    #[error("mount point {path} is not a directory")]
    MountpointNotDirectory { path: PathBuf },

    #[error(
        "mount point {path} is busy: something is already mounted there (unmount it first: fusermount3 -u {path})"
    )]
    MountpointBusy { path: PathBuf },

    #[error("mount point {path} is not empty: mounting would hide its files (mount elsewhere, or add -o nonempty)")]
    MountpointNotEmpty { path: PathBuf },

    #[error("{path} is not a Tresor mount")]
    NotMounted { path: PathBuf },

    #[error("remounting {path} failed: {source}")]
    Remount { path: PathBuf, source: std::io::Error },

    #[error("mount point {path} is inside the backing directory {backing}")]
    MountpointInsideBacking { path: PathBuf, backing: PathBuf },

    #[error("invalid mount option {option:?}: {reason}")]
    InvalidOption { option: String, reason: String },

    #[error("FUSE is not available: {path}: {source} (is the fuse kernel module loaded, and /dev/fuse present in this container?)")]
    FuseUnavailable { path: PathBuf, source: std::io::Error },

    #[error("mounting {mountpoint} failed: {source} (is fuse3 installed (fusermount3 for non-root mounts), /dev/fuse present and usable?)")]
    Fuse { mountpoint: PathBuf, source: std::io::Error },

    #[error("serving the mount at {mountpoint} failed: {source}")]
    Session { mountpoint: PathBuf, source: std::io::Error },

    #[error("{source} (the mount refuses to run without its audit log; choose another place with audit_dir=, or turn it off explicitly with audit=off)")]
    Audit { source: tresor_audit::writer::AuditError },
}

/// A verified volume, ready to mount: nothing mounted, no threads started,
/// nothing written but the audit directory made.
pub struct Prepared {
    fs: fs::TresorFs,
    mountpoint: PathBuf,
    fuse: fuser::Config,
    /// Set when running as root: the mount is made here (`kmount`).
    root_mount: Option<kmount::RootMount>,
    audit: Option<PendingAudit>,
}

/// What opening the audit log at mount time needs. (Opened in `mount`, not
/// `prepare`: the CLI forks in between, and the log's threads and its
/// unmount record belong to the process that serves the mount.)
struct PendingAudit {
    config: tresor_audit::AuditConfig,
    options: String,
    volume: tresor_format::Volume,
    name_key: tresor_format::NameKey,
}

/// A live mount.
pub struct Mounted {
    session: fuser::Session<fs::TresorFs>,
    mountpoint: PathBuf,
    unmounter: Unmounter,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared").field("mountpoint", &self.mountpoint).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted").field("mountpoint", &self.mountpoint).finish_non_exhaustive()
    }
}

/// Checks everything that can be checked before mounting: options, the
/// backing directory, the volume file (against the pinned stewards), the
/// identity's membership and name key, the root IV, the mount point, and
/// that FUSE is available, and makes the audit log directory.
pub fn prepare(mut config: MountConfig) -> Result<Prepared, MountError> {
    if config.threads == 0 {
        return Err(MountError::InvalidOption { option: "threads=0".into(), reason: "at least 1 thread".into() });
    }
    // Backing directory.
    let backing_meta = std::fs::metadata(&config.backing)
        .map_err(|source| MountError::BackingMissing { path: config.backing.clone(), source })?;
    if !backing_meta.is_dir() {
        return Err(MountError::BackingNotDirectory { path: config.backing.clone() });
    }
    let backing = config
        .backing
        .canonicalize()
        .map_err(|source| MountError::BackingMissing { path: config.backing.clone(), source })?;
    let fuse_options = config::fuse_options(&config, &backing)?;
    let root = open_dir(&backing).map_err(|source| MountError::BackingMissing { path: backing.clone(), source })?;

    // Volume file, membership, keys.
    let seen = volume::Seen::new(config.min_generation, config.generation_file.clone())
        .map_err(|(path, source)| MountError::GenerationFile { path, source })?;
    let volume = volume::load(&root, &backing, &config.pinned_stewards, &seen)?;
    let member = volume.member(&config.identity.id()).ok_or(MountError::NotMember { member: config.identity.id() })?;
    if member.role == Role::Auditor && !config.read_only {
        return Err(MountError::AuditorMustBeReadOnly { member: config.identity.id() });
    }
    let name_key = volume.name_key(&config.identity).map_err(|source| MountError::NameKey { source })?;
    let weaker = audit_policy::check(&volume.audit, &mut config.audit, &backing)
        .map_err(|reason| MountError::AuditPolicy { reason })?;
    for what in &weaker {
        // Shown here and recorded: the options are in the mount's first record.
        tracing::warn!("{what}: allowed by this volume's audit policy, but weaker than its default");
        eprintln!("tresor: warning: {what} (the volume's audit policy allows it)");
    }
    let iv_path = backing.join("tresor.diriv");
    let iv = sys::read_small(root.as_fd(), c"tresor.diriv", tresor_format::place::DIRIV_FILE_MAX)
        .map_err(|e| MountError::RootDirIv { path: iv_path.clone(), reason: e.to_string() })?;
    tresor_format::PlaceKey::new(&name_key)
        .open_diriv(&iv, tresor_format::Place::Root)
        .map_err(|e| MountError::RootDirIv { path: iv_path, reason: e.to_string() })?;

    // What the backing file system keeps coherent between nodes.
    let root_dev =
        sys::fstat(root.as_fd()).map_err(|source| MountError::BackingMissing { path: backing.clone(), source })?.st_dev;
    let backing_fs = backing::probe(root.as_fd(), root_dev);
    match &backing_fs.verdict {
        backing::Verdict::Coherent => {}
        backing::Verdict::Warn(what) => {
            tracing::warn!("{what}");
            eprintln!("tresor: warning: {what}");
        }
        backing::Verdict::Incoherent(reason) if config.allow_incoherent => {
            tracing::warn!("allow_incoherent: mounting anyway: {reason}");
            eprintln!("tresor: warning (allow_incoherent): {reason}");
        }
        backing::Verdict::Incoherent(reason) => {
            return Err(MountError::IncoherentBacking { backing: backing.clone(), reason: reason.clone() })
        }
    }
    if backing_fs.direct_io {
        tracing::info!(
            "backing file system {}: file data read and written with O_DIRECT (past its client's caches)",
            backing_fs.fs_type
        );
    }

    // Mount point.
    let mountpoint = check_mountpoint(&config.mountpoint, &backing, config.nonempty)?;
    std::fs::metadata("/dev/fuse")
        .map_err(|source| MountError::FuseUnavailable { path: PathBuf::from("/dev/fuse"), source })?;

    let mut fuse = fuser::Config::default();
    fuse.mount_options = fuse_options;
    fuse.acl = if config.allow_other { fuser::SessionACL::All } else { fuser::SessionACL::Owner };
    fuse.n_threads = Some(config.threads);
    fuse.clone_fd = config.threads > 1;
    let root_mount = (rustix::process::geteuid().is_root()).then(|| kmount::RootMount {
        source: fuse
            .mount_options
            .iter()
            .find_map(|o| match o {
                fuser::MountOption::FSName(name) => Some(name.clone()),
                _ => None,
            })
            .unwrap_or_else(|| "tresor".into()),
        flags: config::root_mount_flags(&config),
        options: [
            (config.default_permissions || config.allow_other, "default_permissions"),
            (config.allow_other, "allow_other"),
        ]
        .into_iter()
        .filter_map(|(on, o)| on.then_some(o))
        .collect(),
    });

    let root_ino =
        sys::fstat(root.as_fd()).map_err(|source| MountError::BackingMissing { path: backing.clone(), source })?.st_ino;
    let atime = fs::Atime::of(config::root_mount_flags(&config));
    let identity = Arc::new(config.identity);
    let audit = if config.audit.enabled {
        let mut options = vec![if config.read_only { "ro" } else { "rw" }.to_owned()];
        if config.allow_other {
            options.push("allow_other".into());
        }
        options.extend(config.options.iter().cloned());
        let audit = config.audit.config(&backing);
        // Fail here, before any fork, if the directory cannot be made or
        // something was planted in its place (never followed).
        tresor_audit::open_dir(&audit.dir).map_err(|source| MountError::Audit { source })?;
        Some(PendingAudit {
            config: audit,
            options: options.join(","),
            volume: volume.clone(),
            name_key: name_key.clone(),
        })
    } else {
        tracing::warn!("AUDIT LOG OFF (audit=off): this mount records no accesses");
        None
    };
    let fs = fs::TresorFs::new(fs::Setup {
        root: Arc::new(root),
        root_ino,
        backing: backing.clone(),
        volume,
        name_key,
        identity,
        pinned: config.pinned_stewards,
        seen,
        read_only: config.read_only,
        ttl: config.cache_timeout,
        direct_io: backing_fs.direct_io,
        atime,
    });
    Ok(Prepared { fs, mountpoint, fuse, root_mount, audit })
}

fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    sys::open_dir_path(path)
}

fn check_mountpoint(path: &Path, backing: &Path, nonempty: bool) -> Result<PathBuf, MountError> {
    let meta: Metadata =
        std::fs::metadata(path).map_err(|source| MountError::MountpointMissing { path: path.to_owned(), source })?;
    if !meta.is_dir() {
        return Err(MountError::MountpointNotDirectory { path: path.to_owned() });
    }
    let canonical =
        path.canonicalize().map_err(|source| MountError::MountpointMissing { path: path.to_owned(), source })?;
    if canonical != backing && canonical.starts_with(backing) {
        return Err(MountError::MountpointInsideBacking { path: canonical, backing: backing.to_owned() });
    }
    let busy = || MountError::MountpointBusy { path: canonical.clone() };
    let parent = match canonical.parent() {
        Some(p) => p,
        None => return Err(busy()), // "/"
    };
    let parent_meta = std::fs::metadata(parent)
        .map_err(|source| MountError::MountpointMissing { path: parent.to_owned(), source })?;
    if parent_meta.dev() != meta.dev() || parent_meta.ino() == meta.ino() {
        return Err(busy());
    }
    // Bind mounts of the same file system keep st_dev: ask the kernel.
    if kmount::mount_at(&canonical).is_some() {
        return Err(busy());
    }
    let has_entries = std::fs::read_dir(&canonical)
        .map_err(|source| MountError::MountpointMissing { path: canonical.clone(), source })?
        .next()
        .is_some();
    if has_entries && !nonempty {
        return Err(MountError::MountpointNotEmpty { path: canonical });
    }
    Ok(canonical)
}

impl Prepared {
    /// Opens the audit log (writing its mount record) and mounts the file
    /// system; it is live (answering requests is up to [`Mounted::run`])
    /// when this returns.
    pub fn mount(self) -> Result<Mounted, MountError> {
        let Prepared { mut fs, mountpoint, fuse, root_mount, audit } = self;
        if let Some(a) = audit {
            let start = tresor_audit::writer::Start {
                identity: fs.identity(),
                volume: &a.volume,
                name_key: &a.name_key,
                op: tresor_audit::Op::Mount,
                options: a.options,
            };
            let log = tresor_audit::AuditLog::open(a.config, start).map_err(|source| MountError::Audit { source })?;
            tracing::info!("audit log: {}", log.path().display());
            fs.set_audit(log);
        }
        let fuse_error = |source| MountError::Fuse { mountpoint: mountpoint.clone(), source };
        let (session, unmounter) = match root_mount {
            Some(root) => {
                let fd = root.mount(&mountpoint).map_err(fuse_error)?;
                let unmounter = Unmounter::root(mountpoint.clone());
                match fuser::Session::from_fd(fs, fd, fuse.acl, fuse.clone()) {
                    Ok(session) => (session, unmounter),
                    Err(e) => {
                        let _ = unmounter.unmount();
                        return Err(fuse_error(e));
                    }
                }
            }
            None => {
                let mut session = fuser::Session::new(fs, &mountpoint, &fuse).map_err(fuse_error)?;
                let unmounter = Unmounter::fuser(session.unmount_callable());
                (session, unmounter)
            }
        };
        tracing::info!("mounted at {}", mountpoint.display());
        Ok(Mounted { session, mountpoint, unmounter })
    }
}

impl Mounted {
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Unmounts this mount from another thread (a signal handler's): `run`
    /// then returns once the kernel has let go, after the audit log's
    /// unmount record is written.
    pub fn unmounter(&self) -> Unmounter {
        self.unmounter.clone()
    }

    /// Serves requests until the file system is unmounted.
    pub fn run(self) -> Result<(), MountError> {
        let Mounted { session, mountpoint, unmounter: _ } = self;
        // Once the kernel has the INIT answer (the stat inside waits for
        // it), widen readahead to one full request (see
        // `sys::raise_readahead`). Best effort: without root the window
        // stays at the kernel's 128 KiB.
        let mp = mountpoint.clone();
        let widen = move || match sys::raise_readahead(&mp, READAHEAD_KIB) {
            Ok(kib) => tracing::debug!("readahead {kib} KiB"),
            Err(e) => tracing::debug!("readahead stays at the kernel's default: {e}"),
        };
        if let Err(e) = std::thread::Builder::new().name("tresor-readahead".into()).spawn(widen) {
            tracing::debug!("readahead stays at the kernel's default: {e}");
        }
        session.run().map_err(|source| MountError::Session { mountpoint: mountpoint.clone(), source })?;
        tracing::info!("unmounted {}", mountpoint.display());
        Ok(())
    }
}
