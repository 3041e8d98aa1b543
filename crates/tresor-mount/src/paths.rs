//! Plaintext names to backing entries and back.
//!
//! * **Directory IVs.** Every backing directory holds `tresor.diriv`: its
//!   IV and a tag binding the IV to the directory's place (its parent's IV
//!   and its own backing entry name, FORMAT.md §8.1). Directory policies
//!   are keyed by IV, so an IV file the storage copied or a directory it
//!   moved is refused (EIO) rather than letting a policy travel. A
//!   directory's IV never changes once the directory is visible (mkdir
//!   writes it before the directory gets its name), so verified IVs are
//!   cached per backing path, keyed by the identity of the `tresor.diriv`
//!   file (device, inode, ctime, mtime): a hit costs one `stat` instead of
//!   an open/read/verify, and a directory moved or re-created elsewhere
//!   (perhaps reusing the inode number) is verified again at its new path.
//!   A missing or short IV file is retried a few times before EIO: another
//!   node's `rmdir` moves it out for an instant before it knows whether the
//!   directory is empty.
//! * **Names.** `NameCipher::encrypt_name` gives the entry name; names whose
//!   encoding is longer than 255 bytes are stored as
//!   `tresor.longname.<hash>` with the sidecar `<entry>.name`, written
//!   before the entry and removed after it.
//! * **Symlink targets.** Encrypted targets up to 4095 bytes are the backing
//!   symlink's text; longer ones go into a sidecar `tresor.longtarget.<hash>`
//!   in the same directory, which the symlink points at. The sidecar goes
//!   with the symlink when it is renamed or linked into another directory.
//!
//! Sidecars are written through a temporary name and a rename, so no reader
//! ever sees half of one. Their content is fixed by their name (a long
//! name's sidecar holds the encoded name it hashes to; a target sidecar's
//! name hashes its content), so two nodes writing the same sidecar write
//! the same bytes.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tresor_format::names::{self, classify, EntryKind, DIRIV_FILE, LONGTARGET_PREFIX, TARGET_MAX};
use tresor_format::place::DIRIV_FILE_MAX;
use tresor_format::{
    DirIv, EncryptedName, EncryptedTarget, Error as FormatError, NameCipher, NameKey, Place, PlaceKey,
};

use crate::sys::{self, Errno, FsResult};

/// Length of a symlink text pointing at a target sidecar:
/// `tresor.longtarget.` + base64url(SHA-256).
pub const TARGET_LINK_LEN: usize = LONGTARGET_PREFIX.len() + 43;
const IV_CACHE_MAX: usize = 65536;
const IV_RETRIES: u32 = 5;
const IV_RETRY_SLEEP: Duration = Duration::from_millis(20);
/// The longest sidecar: an encoded target of 4095 bytes plus nonce and tag.
const SIDECAR_MAX: usize = 8192;

/// `dir/name` as a backing path relative to the root ("." is the root).
pub fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir == b"." {
        return name.to_vec();
    }
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    out.extend_from_slice(dir);
    out.push(b'/');
    out.extend_from_slice(name);
    out
}

pub fn c(path: &[u8]) -> FsResult<CString> {
    Ok(sys::cstring(path)?)
}

/// The directory part of a relative backing path ("." for a top-level entry).
pub fn dirname(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[..i],
        None => b".",
    }
}

/// The last component of a relative backing path.
pub fn basename(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Printable form of a backing path for logs.
pub fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

pub struct Names {
    cipher: NameCipher,
    place: PlaceKey,
    root: Arc<OwnedFd>,
    /// Backing path → (identity of its `tresor.diriv`, verified IV).
    ivs: Mutex<HashMap<Vec<u8>, (sys::Stamp, DirIv)>>,
}

/// Maps a name the format refuses to the errno `open(2)` would give.
pub fn name_errno(e: &FormatError) -> Errno {
    match e {
        FormatError::InvalidName(why) if why.contains("longer") => Errno::ENAMETOOLONG,
        _ => Errno::EINVAL,
    }
}

const DIRIV: &CStr = c"tresor.diriv";

impl Names {
    pub fn new(key: &NameKey, root: Arc<OwnedFd>) -> Names {
        Names { cipher: NameCipher::new(key), place: PlaceKey::new(key), root, ivs: Mutex::new(HashMap::new()) }
    }

    pub fn cipher(&self) -> &NameCipher {
        &self.cipher
    }

    pub fn place(&self) -> &PlaceKey {
        &self.place
    }

    /// The verified IV of the backing directory at `path` (relative to the
    /// root, "." for the root), open as `dir`.
    pub fn dir_iv(&self, dir: BorrowedFd<'_>, path: &[u8]) -> FsResult<DirIv> {
        if path == b"." {
            // The backing root is never removed and made again (another
            // node can do that to any other directory), so its IV, read
            // once, needs no look per request.
            if let Some((_, iv)) = self.ivs.lock().unwrap_or_else(|e| e.into_inner()).get(path) {
                return Ok(*iv);
            }
        } else if let Ok(st) = sys::fstatat(dir, DIRIV) {
            let stamp = sys::Stamp::of(&st);
            let cache = self.ivs.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((s, iv)) = cache.get(path) {
                if *s == stamp {
                    return Ok(*iv);
                }
            }
        }
        // Verifying needs the parent's IV (verified the same way, up to the
        // root, each level cached), and this directory's entry name in it.
        let parent_iv = if path == b"." {
            None
        } else {
            let parent = dirname(path);
            let parent_iv = if parent == b"." {
                self.dir_iv(self.root.as_fd(), parent)?
            } else {
                let fd = sys::open_dir_beneath(self.root.as_fd(), parent)?;
                self.dir_iv(fd.as_fd(), parent)?
            };
            Some(parent_iv)
        };
        let entry = std::str::from_utf8(basename(path)).map_err(|_| Errno::EIO)?;
        let place = match &parent_iv {
            None => Place::Root,
            Some(parent) => Place::In { parent, entry },
        };
        let mut attempt = 0;
        let mut why: String;
        loop {
            match read_iv(dir) {
                Ok((stamp, bytes)) => match self.place.open_diriv(&bytes, place) {
                    Ok(iv) => {
                        let mut cache = self.ivs.lock().unwrap_or_else(|e| e.into_inner());
                        if cache.len() >= IV_CACHE_MAX {
                            cache.clear();
                        }
                        cache.insert(path.to_vec(), (stamp, iv));
                        return Ok(iv);
                    }
                    Err(e @ FormatError::Tampered { .. }) => {
                        // Not a race (a rename rewrites the file in place
                        // with both tags first): the IV file was copied here
                        // or the directory moved by the storage.
                        tracing::error!(
                            "{}: directory IV ({DIRIV_FILE}): {e}: it belongs to another place (copied or moved in \
                             the backing tree); its entries cannot be named",
                            show(path)
                        );
                        return Err(Errno::EIO);
                    }
                    Err(e) => why = e.to_string(),
                },
                Err(IvError::Io(e)) if sys::is_errno(&e, libc::ENOENT) => {
                    // Is the directory itself gone, or only its IV (for now)?
                    if sys::fstat(dir)?.st_nlink == 0 {
                        return Err(Errno::ENOENT);
                    }
                    why = "missing".into();
                }
                Err(IvError::Io(e)) if sys::is_wrong_type(&e) => {
                    tracing::error!("{}: directory IV ({DIRIV_FILE}) {e}; its entries cannot be named", show(path));
                    return Err(Errno::EIO);
                }
                Err(IvError::Io(e)) => return Err(e.into()),
                Err(IvError::Invalid(e)) => why = e.to_string(),
            }
            attempt += 1;
            if attempt >= IV_RETRIES {
                tracing::error!("{}: directory IV ({DIRIV_FILE}): {why}; its entries cannot be named", show(path));
                return Err(Errno::EIO);
            }
            std::thread::sleep(IV_RETRY_SLEEP);
        }
    }

    /// Forgets the cached IV of the directory at `path` (after rewriting
    /// its IV file for a rename).
    pub fn forget_iv(&self, path: &[u8]) {
        self.ivs.lock().unwrap_or_else(|e| e.into_inner()).remove(path);
    }

    pub fn encrypt(&self, iv: &DirIv, name: &OsStr) -> FsResult<EncryptedName> {
        self.cipher.encrypt_name(iv, name.as_bytes()).map_err(|e| name_errno(&e))
    }

    /// The plaintext name of backing entry `entry` of the directory open as
    /// `dirfd`, or `None` for entries that are not shown (format metadata)
    /// or cannot be decrypted (logged).
    pub fn decrypt_entry(&self, dirfd: BorrowedFd<'_>, iv: &DirIv, entry: &[u8], dir: &[u8]) -> Option<Vec<u8>> {
        let Ok(entry) = std::str::from_utf8(entry) else {
            tracing::warn!("{}: skipping entry {:?}: not an encrypted name", show(dir), show(entry));
            return None;
        };
        let result = match classify(entry) {
            EntryKind::Reserved => return None,
            EntryKind::Short => self.cipher.decrypt_name(iv, entry),
            EntryKind::Long => {
                let sidecar = names::long_name_sidecar(entry);
                match read_text(dirfd, sidecar.as_bytes()) {
                    Ok(full) => {
                        NameCipher::check_long_name(entry, &full).and_then(|()| self.cipher.decrypt_name(iv, &full))
                    }
                    Err(e) => {
                        tracing::warn!("{}: skipping {entry}: its name sidecar {sidecar}: {e}", show(dir));
                        return None;
                    }
                }
            }
        };
        match result {
            Ok(name) => Some(name),
            Err(e) => {
                tracing::warn!("{}: skipping entry {entry}: {e}", show(dir));
                None
            }
        }
    }

    /// The special file stored as backing file `name` in `dir` (`path` for
    /// logs): its record, read non-blocking and bounded, must verify.
    pub fn read_node(&self, dir: BorrowedFd<'_>, name: &CStr, path: &[u8]) -> FsResult<tresor_format::Node> {
        let bytes = sys::read_small(dir, name, tresor_format::place::NODE_LEN)?;
        self.place.open_node(&bytes).map_err(|e| {
            tracing::error!("{}: {e}", show(path));
            Errno::EIO
        })
    }

    /// Makes sure a long name's sidecar exists in `dir` (before the entry).
    pub fn put_long_name(&self, dir: BorrowedFd<'_>, name: &EncryptedName) -> FsResult<()> {
        if let EncryptedName::Long { entry, full } = name {
            write_sidecar(dir, names::long_name_sidecar(entry).as_bytes(), full.as_bytes())?;
        }
        Ok(())
    }

    /// Removes a long name's sidecar once its entry is gone. Best effort:
    /// an orphan sidecar is hidden and removed with its directory.
    pub fn drop_long_name(&self, dir: BorrowedFd<'_>, name: &EncryptedName, path: &[u8]) {
        let EncryptedName::Long { entry, .. } = name else { return };
        let Ok(entry_name) = c(entry.as_bytes()) else { return };
        if !matches!(sys::fstatat(dir, &entry_name), Err(e) if sys::is_errno(&e, libc::ENOENT)) {
            return; // re-created meanwhile (perhaps by another node): still needed
        }
        if let Ok(sidecar) = c(names::long_name_sidecar(entry).as_bytes()) {
            remove_quietly(dir, &sidecar, path);
        }
    }

    /// Encrypts a symlink target; writes its sidecar into `dir` if it is
    /// long. Returns the text for the backing symlink.
    pub fn put_target(&self, dir: BorrowedFd<'_>, target: &[u8]) -> FsResult<CString> {
        if target.is_empty() || target.len() > TARGET_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let encrypted = self.cipher.encrypt_target(target, &mut rand_core::OsRng).map_err(|_| Errno::EINVAL)?;
        match encrypted {
            EncryptedTarget::Inline(text) => c(text.as_bytes()),
            EncryptedTarget::Sidecar { link, full } => {
                write_sidecar(dir, link.as_bytes(), full.as_bytes())?;
                c(link.as_bytes())
            }
        }
    }

    /// Decrypts the target of the backing symlink `name` in `dir` (`path`
    /// for logs).
    pub fn read_target(&self, dir: BorrowedFd<'_>, name: &CStr, path: &[u8]) -> FsResult<Vec<u8>> {
        let text = sys::readlinkat(dir, name)?;
        let fail = |what: &dyn std::fmt::Display| {
            tracing::error!("{}: symlink target: {what}", show(path));
            Errno::EIO
        };
        let text = String::from_utf8(text).map_err(|_| fail(&"not an encrypted target"))?;
        let stored = if text.starts_with(LONGTARGET_PREFIX) {
            if text.contains('/') {
                return Err(fail(&"not an encrypted target"));
            }
            let full = read_text(dir, text.as_bytes()).map_err(|e| fail(&format!("its sidecar {text}: {e}")))?;
            NameCipher::check_long_target(&text, &full).map_err(|e| fail(&e))?;
            full
        } else {
            text
        };
        self.cipher.decrypt_target(&stored).map_err(|e| fail(&e))
    }

    /// The plaintext target length of backing symlink `name` in `dir`, from
    /// lengths alone (plus one `readlink` and `stat` for sidecar targets).
    pub fn symlink_size(&self, dir: BorrowedFd<'_>, name: &CStr, st: &libc::stat) -> u64 {
        let len = st.st_size.max(0) as u64;
        if len as usize == TARGET_LINK_LEN {
            if let Some(sidecar) = target_sidecar(dir, name) {
                if let Ok(st) = sys::fstatat(dir, &sidecar) {
                    return crate::attr::target_len(st.st_size.max(0) as u64);
                }
            }
        }
        crate::attr::target_len(len)
    }
}

/// The name of the target sidecar (in the same directory) that backing
/// symlink `name` in `dir` points at, if it has one.
pub fn target_sidecar(dir: BorrowedFd<'_>, name: &CStr) -> Option<CString> {
    let text = sys::readlinkat(dir, name).ok()?;
    if text.starts_with(LONGTARGET_PREFIX.as_bytes()) && !text.contains(&b'/') {
        c(&text).ok()
    } else {
        None
    }
}

enum IvError {
    Io(std::io::Error),
    Invalid(FormatError),
}

/// Reads `tresor.diriv` of `dir`: non-blocking, a regular file, bounded
/// (a FIFO planted there must never hold a FUSE worker).
fn read_iv(dir: BorrowedFd<'_>) -> Result<(sys::Stamp, Vec<u8>), IvError> {
    let (fd, st) = sys::open_regular(dir, DIRIV, libc::O_RDONLY).map_err(IvError::Io)?;
    if st.st_size > DIRIV_FILE_MAX as i64 {
        let why = format!("{} bytes, more than {DIRIV_FILE_MAX}", st.st_size);
        return Err(IvError::Invalid(FormatError::Malformed { what: tresor_format::Structure::DirIv, reason: why }));
    }
    let mut buf = vec![0u8; st.st_size.max(0) as usize];
    sys::pread_exact(fd.as_fd(), &mut buf, 0).map_err(IvError::Io)?;
    Ok((sys::Stamp::of(&st), buf))
}

fn read_text(dir: BorrowedFd<'_>, name: &[u8]) -> std::io::Result<String> {
    let bytes = sys::read_small(dir, &sys::cstring(name)?, SIDECAR_MAX)?;
    String::from_utf8(bytes).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not ASCII"))
}

/// A fresh temporary name: `tresor.tmp.<random>` (reserved, never shown).
pub fn tmp_name() -> CString {
    CString::new(format!("tresor.tmp.{}", sys::random_hex())).unwrap_or_default()
}

/// Writes a sidecar `name` into `dir` unless it already holds `content`:
/// through a temporary name and a rename, so it appears whole.
fn write_sidecar(dir: BorrowedFd<'_>, name: &[u8], content: &[u8]) -> FsResult<()> {
    let cname = c(name)?;
    if let Ok(existing) = sys::read_small(dir, &cname, SIDECAR_MAX) {
        if existing == content {
            return Ok(());
        }
    }
    let tmp = tmp_name();
    sys::write_new(dir, &tmp, content, 0o444)?;
    if let Err(e) = sys::renameat2(dir, &tmp, dir, &cname, 0) {
        let _ = sys::unlinkat(dir, &tmp, false);
        return Err(e.into());
    }
    Ok(())
}

/// Replaces `tresor.diriv` of the directory open as `dir` with `bytes`
/// (the same IV, other tags): written to a temporary name and renamed over
/// it, so readers on any node see the old file or the new. `durable`: the
/// new file is synced first, for a replacement that must not be lost if
/// what follows it (a rename of the directory) survives a crash.
pub fn replace_diriv(dir: BorrowedFd<'_>, bytes: &[u8], durable: bool) -> FsResult<()> {
    let tmp = tmp_name();
    sys::write_new(dir, &tmp, bytes, 0o444)?;
    let synced = || {
        if !durable {
            return Ok(());
        }
        sys::openat(dir, &tmp, libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK, 0)
            .and_then(|fd| sys::fsync(fd.as_fd(), true))
    };
    let done = synced().and_then(|()| sys::renameat2(dir, &tmp, dir, DIRIV, 0));
    if let Err(e) = done {
        let _ = sys::unlinkat(dir, &tmp, false);
        return Err(e.into());
    }
    Ok(())
}

/// Links the target sidecar `name` of a symlink from directory `from` into
/// directory `to` (rename and link of a symlink across directories). The
/// sidecar's name fixes its content, so an existing one is the same file's
/// twin.
pub fn copy_target_sidecar(from: BorrowedFd<'_>, name: &CStr, to: BorrowedFd<'_>) -> FsResult<()> {
    match sys::linkat(from, name, to, name) {
        Ok(()) => Ok(()),
        Err(e) if sys::is_errno(&e, libc::EEXIST) => Ok(()),
        Err(e) if sys::is_errno(&e, libc::EPERM) || sys::is_errno(&e, libc::EOPNOTSUPP) => {
            // No hard links on this back end: copy the content.
            let content = sys::read_small(from, name, SIDECAR_MAX)?;
            write_sidecar(to, name.to_bytes(), &content)
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes file `name` from `dir`, ignoring "already gone"; other errors
/// are logged (`path`: the directory, for the log).
pub fn remove_quietly(dir: BorrowedFd<'_>, name: &CStr, path: &[u8]) {
    if let Err(e) = sys::unlinkat(dir, name, false) {
        if !sys::is_errno(&e, libc::ENOENT) {
            tracing::warn!("{}/{}: removing: {e}", show(path), name.to_string_lossy());
        }
    }
}
