//! Where the CLI keeps its files: the identity file, and the steward keys
//! and registry generations pinned per volume.
//!
//! | | identity | pins |
//! |---|---|---|
//! | `$TRESOR_DIR` set | `$TRESOR_DIR/identity` | `$TRESOR_DIR/pinned/` |
//! | a user (`$HOME` set) | `$XDG_CONFIG_HOME/tresor/identity` (`~/.config/tresor/identity`) | `…/tresor/pinned/` |
//! | no `$HOME` (mount(8) helpers at boot, system units) | `/etc/tresor/identity` | `/var/lib/tresor/pinned/` |
//!
//! Never the current directory: a helper started by mount(8) or systemd
//! runs wherever it was started, and a pin written there is lost (and the
//! next mount trusts the volume's signer afresh).

use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use tresor_format::{PublicIdentity, Volume};

/// System-wide configuration (node identities) when there is no user.
pub const SYSTEM_CONFIG_DIR: &str = "/etc/tresor";
/// System-wide state (pinned keys, generations) when there is no user.
pub const SYSTEM_STATE_DIR: &str = "/var/lib/tresor";

/// The user's own directory, if there is a user: `$TRESOR_DIR`, else
/// `$XDG_CONFIG_HOME/tresor`, else `$HOME/.config/tresor` (a `$HOME` of
/// `/`, as some service managers set, counts as none).
fn user_dir() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(d) = set("TRESOR_DIR") {
        return Some(d);
    }
    set("XDG_CONFIG_HOME")
        .filter(|d| d.is_absolute())
        .or_else(|| set("HOME").filter(|h| h.is_absolute() && h != Path::new("/")).map(|h| h.join(".config")))
        .map(|c| c.join("tresor"))
}

/// Where the identity file lives by default.
pub fn dir() -> PathBuf {
    user_dir().unwrap_or_else(|| PathBuf::from(SYSTEM_CONFIG_DIR))
}

/// Where pinned steward keys and registry generations are kept.
pub fn state_dir() -> PathBuf {
    user_dir().unwrap_or_else(|| PathBuf::from(SYSTEM_STATE_DIR))
}

pub fn default_identity() -> PathBuf {
    dir().join("identity")
}

/// Writes a file readable by its owner only, atomically (temp + rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
    fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn pin_path(volume_id: &[u8; 16]) -> PathBuf {
    state_dir().join("pinned").join(hex::encode(volume_id))
}

/// How the steward key for a volume came to be trusted.
pub enum Pin {
    /// Given on the command line (and now remembered).
    Explicit(PublicIdentity),
    /// Remembered from an earlier use.
    Remembered(PublicIdentity),
    /// Trusted now, on first use, and remembered.
    FirstUse(PublicIdentity),
}

impl Pin {
    pub fn key(&self) -> &PublicIdentity {
        match self {
            Pin::Explicit(k) | Pin::Remembered(k) | Pin::FirstUse(k) => k,
        }
    }

    pub fn describe(&self) -> String {
        let (how, k) = match self {
            Pin::Explicit(k) => ("given with --steward", k),
            Pin::Remembered(k) => ("pinned earlier", k),
            Pin::FirstUse(k) => ("pinned now on first use: check this fingerprint with your steward", k),
        };
        format!("steward key {} ({how})", k.id())
    }
}

/// Decides which steward key to trust for the volume in `volume_bytes`.
pub fn pin_for(volume_bytes: &[u8], explicit: Option<&PublicIdentity>) -> Result<Pin> {
    // Self-signed parse only to learn the volume id and signer; the real
    // check against the pin is Volume::open, done by the caller.
    let volume = Volume::open_self_signed_any_version(volume_bytes).context("reading the volume file")?;
    let path = pin_path(&volume.id);
    if let Some(k) = explicit {
        write_private(&path, format!("{k}\n").as_bytes())?;
        return Ok(Pin::Explicit(*k));
    }
    if let Ok(text) = fs::read_to_string(&path) {
        let key = text.trim().parse().with_context(|| format!("reading pinned steward key {}", path.display()))?;
        return Ok(Pin::Remembered(key));
    }
    let signer = volume.member(&volume.signer()).expect("open_self_signed checked the signer").public;
    write_private(&path, format!("{signer}\n").as_bytes())?;
    Ok(Pin::FirstUse(signer))
}

/// Refuses a registry older than the newest this user has accepted for the
/// volume (a rolled-back registry: members, roles and directory policies
/// back as they were), and remembers a newer one.
/// Where this user remembers the highest registry generation accepted for
/// volume `volume_id` (shared by the commands and the mounts they start).
pub fn generation_path(volume_id: &[u8; 16]) -> PathBuf {
    pin_path(volume_id).with_extension("generation")
}

pub fn check_generation(volume: &Volume) -> Result<()> {
    let path = generation_path(&volume.id);
    let seen: u64 = fs::read_to_string(&path).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
    if volume.generation < seen {
        anyhow::bail!(
            "the registry is at generation {}, older than generation {seen} seen before: it was rolled back \
             (restored from an older copy); ask a steward to check the volume file",
            volume.generation
        );
    }
    if volume.generation > seen {
        write_private(&path, format!("{}\n", volume.generation).as_bytes())?;
    }
    Ok(())
}
