//! File names and symlink targets. Names are encrypted deterministically
//! (AES-256-GCM-SIV with a nonce and AAD from the directory's IV), so a
//! lookup encrypts the name and opens the backing entry directly, and the
//! same name in two directories encrypts differently. Names too long for the
//! backing file system go through a hashed entry plus a sidecar holding the
//! full ciphertext, as in gocryptfs.

use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::Aes256GcmSiv;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};

use crate::content::{NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result, Structure};
use crate::keys::{derive, NameKey};

/// Backing extended attributes holding encrypted user xattrs start with this.
pub const XATTR_PREFIX: &str = "user.tresor.";
/// Longest plaintext xattr name after `user.` (the backing name, prefix
/// included, must fit Linux's 255-byte limit).
pub const XATTR_NAME_MAX: usize = 159;

/// Every name the format reserves in the backing tree starts with this.
/// Encrypted names are base64url, which has no '.', so they never collide.
pub const RESERVED_PREFIX: &str = "tresor.";
pub const VOLUME_FILE: &str = "tresor.volume";
pub const DIRIV_FILE: &str = "tresor.diriv";
pub const LONGNAME_PREFIX: &str = "tresor.longname.";
pub const LONGNAME_SIDECAR_SUFFIX: &str = ".name";
pub const LONGTARGET_PREFIX: &str = "tresor.longtarget.";
pub const DIRIV_LEN: usize = 16;
/// Plaintext names are limited like Linux names.
pub const NAME_MAX: usize = 255;
/// Longest encoded name stored directly as an entry (ext4 and most file
/// systems allow 255 bytes); plaintext names up to 159 bytes fit.
pub const SHORT_NAME_MAX: usize = 255;
/// Names are padded to a multiple of this before encryption, so the
/// ciphertext shows only a length class, not the exact length.
pub const NAME_PAD: usize = 16;
/// Longest plaintext symlink target (PATH_MAX minus the NUL).
pub const TARGET_MAX: usize = 4095;
/// Longest encoded target stored directly in the backing symlink.
pub const INLINE_TARGET_MAX: usize = 4095;

/// A directory's IV, kept in `tresor.diriv` inside the directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DirIv(pub [u8; DIRIV_LEN]);

impl DirIv {
    pub fn generate(rng: &mut impl CryptoRngCore) -> DirIv {
        let mut iv = [0u8; DIRIV_LEN];
        rng.fill_bytes(&mut iv);
        DirIv(iv)
    }

    pub fn parse(bytes: &[u8]) -> Result<DirIv> {
        let iv = bytes
            .try_into()
            .map_err(|_| Error::malformed(Structure::DirIv, format!("{} bytes, expected {DIRIV_LEN}", bytes.len())))?;
        Ok(DirIv(iv))
    }
}

/// How an encrypted name is stored in the backing directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncryptedName {
    /// The entry's name is the encrypted name.
    Short(String),
    /// The entry is `tresor.longname.<hash>`; the sidecar entry
    /// `<entry>.name` holds `full`, the encrypted name.
    Long { entry: String, full: String },
}

impl EncryptedName {
    /// The name of the directory entry.
    pub fn entry(&self) -> &str {
        match self {
            EncryptedName::Short(s) => s,
            EncryptedName::Long { entry, .. } => entry,
        }
    }
}

/// What a backing directory entry is, judged by its name alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// An encrypted name: decrypt it.
    Short,
    /// A hashed long name: read `<entry>.name` and decrypt that.
    Long,
    /// Format metadata (dir IV, sidecars, volume file, policies): not shown.
    Reserved,
}

pub fn classify(entry: &str) -> EntryKind {
    if entry.starts_with(LONGNAME_PREFIX) && !entry.ends_with(LONGNAME_SIDECAR_SUFFIX) {
        return EntryKind::Long;
    }
    if entry.starts_with(RESERVED_PREFIX) {
        EntryKind::Reserved
    } else {
        EntryKind::Short
    }
}

/// The sidecar of a long-name entry.
pub fn long_name_sidecar(entry: &str) -> String {
    format!("{entry}{LONGNAME_SIDECAR_SUFFIX}")
}

/// Checks a plaintext name: 1..=255 bytes, no '/', no NUL, not "." or "..".
pub fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidName("empty name"));
    }
    if name.len() > NAME_MAX {
        return Err(Error::InvalidName("longer than 255 bytes"));
    }
    if name == b"." || name == b".." {
        return Err(Error::InvalidName("'.' and '..' are not names"));
    }
    if name.iter().any(|&b| b == b'/' || b == 0) {
        return Err(Error::InvalidName("contains '/' or NUL"));
    }
    Ok(())
}

/// A stored symlink target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncryptedTarget {
    /// The backing symlink points to this string.
    Inline(String),
    /// Too long for a symlink: the backing symlink points to `link`
    /// (`tresor.longtarget.<hash>`), a sidecar file in the same directory
    /// whose content is `full`.
    Sidecar { link: String, full: String },
}

/// Encrypts and decrypts names and symlink targets with keys derived from
/// the volume name key. Built once per mount.
pub struct NameCipher {
    names: Aes256GcmSiv,
    targets: Aes256GcmSiv,
    xattrs: Aes256GcmSiv,
}

impl NameCipher {
    pub fn new(key: &NameKey) -> NameCipher {
        let names = derive(key.as_bytes(), b"", b"tresor/v1/names");
        let targets = derive(key.as_bytes(), b"", b"tresor/v1/symlink-targets");
        let xattrs = derive(key.as_bytes(), b"", b"tresor/v1/xattrs");
        NameCipher {
            names: Aes256GcmSiv::new((&*names).into()),
            targets: Aes256GcmSiv::new((&*targets).into()),
            xattrs: Aes256GcmSiv::new((&*xattrs).into()),
        }
    }

    pub fn encrypt_name(&self, dir: &DirIv, name: &[u8]) -> Result<EncryptedName> {
        check_name(name)?;
        let nonce = dir.0[..NONCE_LEN].try_into().unwrap();
        let buf = seal_padded(&self.names, nonce, &dir.0, name);
        let full = B64.encode(&buf);
        if full.len() <= SHORT_NAME_MAX {
            return Ok(EncryptedName::Short(full));
        }
        let entry = format!("{LONGNAME_PREFIX}{}", B64.encode(Sha256::digest(full.as_bytes())));
        Ok(EncryptedName::Long { entry, full })
    }

    /// Decrypts an encrypted name: a short entry's name, or a long entry's
    /// sidecar content. A long entry's hash is checked by `check_long_name`.
    pub fn decrypt_name(&self, dir: &DirIv, encrypted: &str) -> Result<Vec<u8>> {
        let what = Structure::Name;
        let sealed = B64.decode(encrypted).map_err(|_| Error::malformed(what, "not base64url"))?;
        let buf = open_padded(&self.names, dir.0[..NONCE_LEN].try_into().unwrap(), &dir.0, sealed, what)?;
        check_name(&buf).map_err(|_| Error::malformed(what, "decrypts to an invalid name"))?;
        Ok(buf)
    }

    /// Checks that a long-name entry matches its sidecar's content, so
    /// sidecars cannot be swapped between entries.
    pub fn check_long_name(entry: &str, full: &str) -> Result<()> {
        if full.len() <= SHORT_NAME_MAX {
            return Err(Error::malformed(Structure::Name, "a long-name sidecar holds a short name"));
        }
        let expected = format!("{LONGNAME_PREFIX}{}", B64.encode(Sha256::digest(full.as_bytes())));
        if entry != expected {
            return Err(Error::Tampered { what: Structure::Name });
        }
        Ok(())
    }

    pub fn encrypt_target(&self, target: &[u8], rng: &mut impl CryptoRngCore) -> Result<EncryptedTarget> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        self.encrypt_target_with_nonce(target, &nonce)
    }

    #[doc(hidden)]
    pub fn encrypt_target_with_nonce(&self, target: &[u8], nonce: &[u8; NONCE_LEN]) -> Result<EncryptedTarget> {
        if target.is_empty() || target.len() > TARGET_MAX || target.contains(&0) {
            return Err(Error::InvalidArgument("symlink target must be 1 to 4095 bytes without NUL".into()));
        }
        let mut buf = Vec::with_capacity(NONCE_LEN + target.len() + TAG_LEN);
        buf.extend_from_slice(nonce);
        buf.extend_from_slice(target);
        let tag = self
            .targets
            .encrypt_inout_detached(nonce.into(), TARGET_AAD, buf[NONCE_LEN..].as_mut().into())
            .expect("targets are far below the AEAD length limit");
        buf.extend_from_slice(&tag);
        let full = B64.encode(&buf);
        if full.len() <= INLINE_TARGET_MAX {
            return Ok(EncryptedTarget::Inline(full));
        }
        let link = format!("{LONGTARGET_PREFIX}{}", B64.encode(Sha256::digest(full.as_bytes())));
        Ok(EncryptedTarget::Sidecar { link, full })
    }

    /// Decrypts a stored target: the backing symlink's target, or for a
    /// `tresor.longtarget.*` link, the sidecar's content.
    pub fn decrypt_target(&self, stored: &str) -> Result<Vec<u8>> {
        let what = Structure::SymlinkTarget;
        let mut buf = B64.decode(stored).map_err(|_| Error::malformed(what, "not base64url"))?;
        if buf.len() <= NONCE_LEN + TAG_LEN {
            return Err(Error::malformed(what, "too short"));
        }
        let nonce: [u8; NONCE_LEN] = buf[..NONCE_LEN].try_into().unwrap();
        let tag_at = buf.len() - TAG_LEN;
        let tag: [u8; TAG_LEN] = buf[tag_at..].try_into().unwrap();
        buf.truncate(tag_at);
        buf.drain(..NONCE_LEN);
        self.targets
            .decrypt_inout_detached((&nonce).into(), TARGET_AAD, buf.as_mut_slice().into(), (&tag).into())
            .map_err(|_| Error::Tampered { what })?;
        if buf.is_empty() || buf.len() > TARGET_MAX || buf.contains(&0) {
            return Err(Error::malformed(what, "decrypts to an invalid target"));
        }
        Ok(buf)
    }

    /// Checks that a long-target link matches its sidecar's content.
    pub fn check_long_target(link: &str, full: &str) -> Result<()> {
        let expected = format!("{LONGTARGET_PREFIX}{}", B64.encode(Sha256::digest(full.as_bytes())));
        if link != expected {
            return Err(Error::Tampered { what: Structure::SymlinkTarget });
        }
        Ok(())
    }
}

const TARGET_AAD: &[u8] = b"tresor/v1/symlink-target";
const XATTR_NAME_AAD: &[u8] = b"tresor/v1/xattr-name";
const XATTR_VALUE_AAD: &[u8] = b"tresor/v1/xattr-value\0";

/// User extended attributes (`user.NAME`). The name is encrypted
/// deterministically (fixed zero nonce, AES-256-GCM-SIV, padded to 16 bytes),
/// so getxattr finds the backing attribute directly; the value is sealed with
/// a fresh nonce and bound to the encrypted name, so values cannot be moved
/// between attributes. Both use a key derived from the volume name key.
impl NameCipher {
    /// The backing attribute name (`user.tresor.<b64>`) for `user.<name>`.
    pub fn encrypt_xattr_name(&self, name: &[u8]) -> Result<String> {
        if name.is_empty() || name.len() > XATTR_NAME_MAX || name.contains(&0) {
            return Err(Error::InvalidName("xattr names are 1 to 159 bytes after \"user.\", without NUL"));
        }
        let buf = seal_padded(&self.xattrs, &[0; NONCE_LEN], XATTR_NAME_AAD, name);
        Ok(format!("{XATTR_PREFIX}{}", B64.encode(&buf)))
    }

    /// The plaintext name (after `user.`) of a backing attribute.
    pub fn decrypt_xattr_name(&self, backing: &str) -> Result<Vec<u8>> {
        let what = Structure::Xattr;
        let encoded =
            backing.strip_prefix(XATTR_PREFIX).ok_or_else(|| Error::malformed(what, "not a Tresor attribute"))?;
        let sealed = B64.decode(encoded).map_err(|_| Error::malformed(what, "not base64url"))?;
        open_padded(&self.xattrs, &[0; NONCE_LEN], XATTR_NAME_AAD, sealed, what)
    }

    /// Seals a value for the backing attribute `backing` (from
    /// `encrypt_xattr_name`): nonce ‖ ciphertext ‖ tag.
    pub fn encrypt_xattr_value(&self, backing: &str, value: &[u8], rng: &mut impl CryptoRngCore) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        self.encrypt_xattr_value_with_nonce(backing, value, &nonce)
    }

    #[doc(hidden)]
    pub fn encrypt_xattr_value_with_nonce(&self, backing: &str, value: &[u8], nonce: &[u8; NONCE_LEN]) -> Vec<u8> {
        let mut out = Vec::with_capacity(NONCE_LEN + value.len() + TAG_LEN);
        out.extend_from_slice(nonce);
        out.extend_from_slice(value);
        let aad = [XATTR_VALUE_AAD, backing.as_bytes()].concat();
        let tag = self
            .xattrs
            .encrypt_inout_detached(nonce.into(), &aad, out[NONCE_LEN..].as_mut().into())
            .expect("xattr values are far below the AEAD length limit");
        out.extend_from_slice(&tag);
        out
    }

    pub fn decrypt_xattr_value(&self, backing: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        let what = Structure::Xattr;
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(Error::malformed(what, "value too short"));
        }
        let nonce: [u8; NONCE_LEN] = sealed[..NONCE_LEN].try_into().unwrap();
        let tag: [u8; TAG_LEN] = sealed[sealed.len() - TAG_LEN..].try_into().unwrap();
        let mut buf = sealed[NONCE_LEN..sealed.len() - TAG_LEN].to_vec();
        let aad = [XATTR_VALUE_AAD, backing.as_bytes()].concat();
        self.xattrs
            .decrypt_inout_detached((&nonce).into(), &aad, buf.as_mut_slice().into(), (&tag).into())
            .map_err(|_| Error::Tampered { what })?;
        Ok(buf)
    }
}

/// Deterministic encryption of a short name: PKCS#7-padded to a multiple of
/// 16 (1 to 16 bytes, each holding the pad length), then sealed: ct ‖ tag.
fn seal_padded(cipher: &Aes256GcmSiv, nonce: &[u8; NONCE_LEN], aad: &[u8], name: &[u8]) -> Vec<u8> {
    let pad = NAME_PAD - name.len() % NAME_PAD;
    let mut buf = Vec::with_capacity(name.len() + pad + TAG_LEN);
    buf.extend_from_slice(name);
    buf.resize(name.len() + pad, pad as u8);
    let tag = cipher
        .encrypt_inout_detached(nonce.into(), aad, buf.as_mut_slice().into())
        .expect("names are far below the AEAD limit");
    buf.extend_from_slice(&tag);
    buf
}

/// The inverse of `seal_padded`.
fn open_padded(
    cipher: &Aes256GcmSiv,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    mut buf: Vec<u8>,
    what: Structure,
) -> Result<Vec<u8>> {
    if buf.len() <= TAG_LEN {
        return Err(Error::malformed(what, "too short"));
    }
    let tag_at = buf.len() - TAG_LEN;
    let tag: [u8; TAG_LEN] = buf[tag_at..].try_into().unwrap();
    buf.truncate(tag_at);
    cipher
        .decrypt_inout_detached(nonce.into(), aad, buf.as_mut_slice().into(), (&tag).into())
        .map_err(|_| Error::Tampered { what })?;
    let pad = *buf.last().unwrap_or(&0) as usize;
    if !(1..=NAME_PAD).contains(&pad) || pad > buf.len() || buf[buf.len() - pad..].iter().any(|&b| b as usize != pad) {
        return Err(Error::malformed(what, "invalid padding"));
    }
    buf.truncate(buf.len() - pad);
    Ok(buf)
}
