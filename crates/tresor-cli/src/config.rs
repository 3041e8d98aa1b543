//! Where the CLI keeps a user's files: the identity file and the steward
//! keys pinned per volume. `$TRESOR_DIR` overrides the default
//! `$XDG_CONFIG_HOME/tresor` (or `~/.config/tresor`).

use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use tresor_format::{PublicIdentity, Volume};

pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TRESOR_DIR") {
        return PathBuf::from(d);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    config.join("tresor")
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
    let hex: String = volume_id.iter().map(|b| format!("{b:02x}")).collect();
    dir().join("pinned").join(hex)
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
