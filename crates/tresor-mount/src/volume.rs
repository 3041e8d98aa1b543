//! The volume file (`tresor.volume`): loaded and verified against the pinned
//! steward keys at mount time, and reloaded while mounted when a steward
//! changes the registry (a member added, removed, or given another role).
//!
//! Rollback: the registry must be current (signed, and not past its expiry:
//! FORMAT.md §5.4) and at least the highest generation this node has
//! accepted, which is kept in a file (`Seen`) so that a restart does not
//! forget it, and raised by `min_generation=` for a node with no state yet.
//!
//! Reloading: before an operation that needs the registry (open, create),
//! the mount `stat`s the volume file at most once a second; if its identity,
//! size, ctime or mtime changed, it reads and verifies the file again. A new
//! registry is accepted only if it verifies against the pinned keys, belongs
//! to the same volume id with the same parameters, and has a generation at
//! least the highest one this mount has seen (refusing a rolled-back
//! registry). Otherwise the mount keeps the registry it has and logs why.
//! If the mounting identity is no longer a member, files can no longer be
//! opened or created (EACCES) until it is added back.

use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ed25519_dalek::VerifyingKey;
use tresor_format::{Error as FormatError, MemberId, Role, Structure, Volume};

use crate::sys;
use crate::MountError;

const VOLUME_FILE: &CStr = c"tresor.volume";
use tresor_format::volume::MAX_VOLUME_LEN;
const RECHECK: Duration = Duration::from_secs(1);

/// The highest registry generation this node has accepted for the volume,
/// remembered across restarts in `file`.
pub struct Seen {
    floor: std::sync::atomic::AtomicU64,
    file: Option<PathBuf>,
}

impl Seen {
    /// `min`: the lowest generation to accept even if `file` knows none.
    pub fn new(min: u64, file: Option<PathBuf>) -> Result<Seen, (PathBuf, std::io::Error)> {
        let stored = match &file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => text.trim().parse::<u64>().map_err(|_| {
                    (path.clone(), std::io::Error::new(std::io::ErrorKind::InvalidData, "not a generation number"))
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
                Err(e) => return Err((path.clone(), e)),
            },
            None => 0,
        };
        Ok(Seen { floor: std::sync::atomic::AtomicU64::new(min.max(stored)), file })
    }

    pub fn floor(&self) -> u64 {
        self.floor.load(Ordering::Relaxed)
    }

    /// Remembers that `volume` was accepted (raises the stored floor).
    fn accept(&self, volume: &Volume) -> std::io::Result<()> {
        if self.floor.fetch_max(volume.generation, Ordering::Relaxed) >= volume.generation {
            return Ok(());
        }
        let Some(path) = &self.file else { return Ok(()) };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&tmp, format!("{}\n", volume.generation))?;
        std::fs::rename(&tmp, path)
    }
}

/// Unix seconds now.
fn now() -> u64 {
    sys::now_secs()
}

/// Reads and verifies the volume file (for `prepare`, with precise errors):
/// pinned, current, and no older than this node has seen.
pub fn load(root: &OwnedFd, backing: &Path, pinned: &[VerifyingKey], seen: &Seen) -> Result<Volume, MountError> {
    let path = backing.join("tresor.volume");
    let bytes = match sys::read_small(root.as_fd(), VOLUME_FILE, MAX_VOLUME_LEN) {
        Ok(b) => b,
        Err(e) if sys::is_errno(&e, libc::ENOENT) => {
            return Err(MountError::NotAVolume { backing: backing.to_owned() })
        }
        Err(e) => return Err(MountError::VolumeRead { path, source: e }),
    };
    if let Ok(version) = Volume::version_of(&bytes) {
        if version == tresor_format::volume::VOLUME_VERSION_MIGRATABLE {
            let backing = backing.display().to_string();
            return Err(MountError::VolumeNeedsMigration { path, backing, version });
        }
    }
    let volume = open(&bytes, pinned).map_err(|e| match e {
        OpenError::NotPinned(signer) => MountError::StewardNotPinned { path: path.clone(), signer },
        OpenError::Invalid(source) => MountError::VolumeInvalid { path: path.clone(), source },
    })?;
    volume.check_current(now()).map_err(|source| MountError::VolumeInvalid { path: path.clone(), source })?;
    if volume.generation < seen.floor() {
        return Err(MountError::RegistryRolledBack { path, found: volume.generation, seen: seen.floor() });
    }
    let days_left = volume.expires_at.saturating_sub(now()) / 86_400;
    if days_left < 14 {
        tracing::warn!(
            "{}: the member registry expires in {days_left} days; a steward renews it with `tresor member renew`",
            path.display()
        );
    }
    seen.accept(&volume)
        .map_err(|source| MountError::GenerationFile { path: seen.file.clone().unwrap_or_default(), source })?;
    Ok(volume)
}

enum OpenError {
    NotPinned(MemberId),
    Invalid(FormatError),
}

fn open(bytes: &[u8], pinned: &[VerifyingKey]) -> Result<Volume, OpenError> {
    match Volume::open(bytes, pinned) {
        Ok(v) => Ok(v),
        // Tell "signed by a steward you did not pin" apart from a forgery:
        // the first verifies against its own registry, the second does not.
        Err(FormatError::UnknownSigner { what: Structure::VolumeFile, signer })
            if Volume::open_self_signed(bytes).is_ok() =>
        {
            Err(OpenError::NotPinned(signer))
        }
        Err(e) => Err(OpenError::Invalid(e)),
    }
}

/// The mount's view of the volume file.
pub struct VolumeState {
    root: Arc<OwnedFd>,
    path: PathBuf,
    pinned: Vec<VerifyingKey>,
    identity: MemberId,
    current: RwLock<Arc<Volume>>,
    seen: Seen,
    check: Mutex<Check>,
    member: AtomicBool,
}

struct Check {
    last: Instant,
    stamp: Option<sys::Stamp>,
}

impl VolumeState {
    pub fn new(
        root: Arc<OwnedFd>,
        backing: &Path,
        pinned: Vec<VerifyingKey>,
        identity: MemberId,
        volume: Volume,
        seen: Seen,
    ) -> VolumeState {
        let stamp = sys::fstatat(root.as_fd(), VOLUME_FILE).ok().map(|st| sys::Stamp::of(&st));
        VolumeState {
            root,
            path: backing.join("tresor.volume"),
            pinned,
            identity,
            current: RwLock::new(Arc::new(volume)),
            seen,
            check: Mutex::new(Check { last: Instant::now(), stamp }),
            member: AtomicBool::new(true),
        }
    }

    /// The registry in force (reloaded if the file changed; see module docs).
    pub fn get(&self) -> Arc<Volume> {
        self.maybe_reload();
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The registry without a reload check (for paths that only need the
    /// fixed parameters).
    pub fn cached(&self) -> Arc<Volume> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether the mounting identity is (still) a member that may write.
    pub fn is_member(&self) -> bool {
        self.member.load(Ordering::Relaxed)
    }

    fn maybe_reload(&self) {
        // One thread checks; the others use the registry they have.
        let Ok(mut check) = self.check.try_lock() else { return };
        if check.last.elapsed() < RECHECK {
            return;
        }
        check.last = Instant::now();
        let stamp = match sys::fstatat(self.root.as_fd(), VOLUME_FILE) {
            Ok(st) => sys::Stamp::of(&st),
            Err(e) => {
                if check.stamp.take().is_some() {
                    tracing::error!("{}: {e}; keeping the registry already loaded", self.path.display());
                }
                return;
            }
        };
        if check.stamp == Some(stamp) {
            return;
        }
        check.stamp = Some(stamp);
        let bytes = match sys::read_small(self.root.as_fd(), VOLUME_FILE, MAX_VOLUME_LEN) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("{}: {e}; keeping the registry already loaded", self.path.display());
                return;
            }
        };
        let new = match open(&bytes, &self.pinned) {
            Ok(v) => v,
            Err(OpenError::NotPinned(signer)) => {
                tracing::error!(
                    "{}: the new registry is signed by {signer}, which is not a pinned steward; keeping the registry already loaded",
                    self.path.display()
                );
                return;
            }
            Err(OpenError::Invalid(e)) => {
                tracing::error!("{}: {e}; keeping the registry already loaded", self.path.display());
                return;
            }
        };
        let old = self.cached();
        if let Err(why) = acceptable(&old, &new, self.seen.floor(), now()) {
            tracing::error!("{}: refusing the new registry: {why}", self.path.display());
            return;
        }
        if let Err(e) = self.seen.accept(&new) {
            tracing::error!("{}: cannot remember registry generation {}: {e}", self.path.display(), new.generation);
        }
        let member = new.member(&self.identity).map(|m| m.role);
        match member {
            Some(Role::Steward | Role::Member) => {}
            Some(Role::Auditor) => tracing::warn!(
                "{}: this identity ({}) is now an auditor: files can no longer be opened or created",
                self.path.display(),
                self.identity
            ),
            None => tracing::warn!(
                "{}: this identity ({}) is no longer a member: files can no longer be opened or created",
                self.path.display(),
                self.identity
            ),
        }
        self.member.store(matches!(member, Some(Role::Steward | Role::Member)), Ordering::Relaxed);
        tracing::info!(
            "{}: registry reloaded (generation {} -> {})",
            self.path.display(),
            old.generation,
            new.generation
        );
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
    }
}

fn acceptable(old: &Volume, new: &Volume, floor: u64, now: u64) -> Result<(), String> {
    if new.id != old.id {
        return Err("it belongs to another volume (different volume id)".into());
    }
    if new.params != old.params {
        return Err(format!("its parameters changed ({:?} -> {:?})", old.params, new.params));
    }
    let seen = floor.max(old.generation);
    if new.generation < seen {
        return Err(format!(
            "generation {} is older than generation {seen} already seen (a rolled-back registry?)",
            new.generation
        ));
    }
    new.check_current(now).map_err(|e| e.to_string())?;
    Ok(())
}
