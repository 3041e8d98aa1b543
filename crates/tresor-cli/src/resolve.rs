//! From a PATH on the command line to a backing file of a volume.
//!
//! A PATH is a path in a backing directory (the volume root is the nearest
//! ancestor holding `tresor.volume`), a plaintext path below a volume root
//! (`BACKING/outputs/table.csv`, where no such backing entry exists), or a
//! plaintext path inside a live Tresor mount on this node: the mount is found in
//! `/proc/self/mountinfo` by its source `tresor:<backing>`, and each
//! plaintext component below the mount point is encrypted with the name key
//! and its directory's IV (long names map to `tresor.longname.*`). The CLI
//! never reads through the mount: it works on the backing files, with the
//! same locks as the daemons, so it works while any node has the files open.

use std::{
    ffi::OsString,
    fs,
    os::unix::ffi::{OsStrExt, OsStringExt},
    path::{Component, Path, PathBuf},
};

use crate::backing::Root;
use anyhow::{bail, Context, Result};
use tresor_format::{
    names::{self, classify, EntryKind},
    DirIv, EncryptedName, MemberId, NameCipher, Place, PlaceKey, Volume,
};

/// A volume as the CLI sees it: its backing root and verified registry.
pub struct Vol {
    pub root: PathBuf,
    /// The root, open: backing entries are opened beneath it.
    pub backing: crate::backing::Root,
    pub volume: Volume,
    /// The command's audit log in this volume (commands that change access).
    pub audit: Option<crate::audit::Session>,
    /// With an identity: checks that directory IVs are in their place.
    pub place: Option<PlaceKey>,
}

impl Vol {
    /// The IV of backing directory `dir`, for decisions (which policy is in
    /// force, which directory a policy is set on): verified at its place,
    /// and every ancestor's up to the root, when this run holds the name
    /// key; without it only its form is checked.
    pub fn dir_iv(&self, dir: &Path) -> Result<DirIv> {
        let Some(key) = &self.place else { return read_iv(&self.backing, dir) };
        let bytes = self.backing.read_iv_bytes(dir)?;
        let checked = if dir == self.root {
            key.open_diriv(&bytes, Place::Root)
        } else {
            let parent = dir.parent().filter(|p| p.starts_with(&self.root)).context("outside the volume")?;
            let parent_iv = self.dir_iv(parent)?;
            let entry = dir.file_name().and_then(|n| n.to_str()).context("not an encrypted name")?;
            key.open_diriv(&bytes, Place::In { parent: &parent_iv, entry })
        };
        checked.with_context(|| {
            format!(
                "{}: its directory IV belongs to another place (copied or moved in the backing tree)",
                dir.join(names::DIRIV_FILE).display()
            )
        })
    }
}

/// A volume opened for a run, with the name cipher if an identity was given.
pub type Opened = (Vol, Option<NameCipher>);

/// A resolved PATH: the backing path, and the plaintext path relative to
/// the volume root for display (`<entry>` where a name cannot be decrypted).
#[derive(Clone, Debug)]
pub struct Target {
    pub backing: PathBuf,
    pub shown: String,
}

/// Finds the volume root of a backing path: the nearest ancestor (or the
/// path itself) that holds `tresor.volume`.
pub fn volume_root(backing: &Path) -> Option<PathBuf> {
    let mut cur = Some(backing);
    while let Some(dir) = cur {
        if dir.join(names::VOLUME_FILE).is_file() {
            return Some(dir.to_owned());
        }
        cur = dir.parent();
    }
    None
}

/// For a path that is not in the backing tree: the volume root it starts
/// with, and the rest, to be read as a plaintext path in the volume (as in
/// a mount). Only below the root itself: a backing path and a plaintext
/// path are not mixed.
fn plaintext_below_root(abs: &Path) -> Option<(PathBuf, PathBuf)> {
    let root = abs.ancestors().skip(1).find(|a| a.join(names::VOLUME_FILE).is_file())?;
    let rel = abs.strip_prefix(root).ok()?.to_owned();
    Some((fs::canonicalize(root).ok()?, rel))
}

/// The IV of backing directory `dir`, read beneath the root, its form
/// checked but not its place: for naming entries (a wrong IV only fails to
/// decrypt them). Decisions use [`Vol::dir_iv`].
pub fn read_iv(root: &Root, dir: &Path) -> Result<DirIv> {
    root.read_iv(dir)
}

/// The backing entry name of plaintext `name` in backing directory `dir`.
fn entry_of(names: &NameCipher, root: &Root, dir: &Path, name: &[u8]) -> Result<String> {
    let iv = read_iv(root, dir)?;
    Ok(match names.encrypt_name(&iv, name)? {
        EncryptedName::Short(e) => e,
        EncryptedName::Long { entry, .. } => entry,
    })
}

/// The plaintext name of backing entry `entry` in `dir`, if it has one.
pub fn plain_name(names: &NameCipher, root: &Root, dir: &Path, iv: &DirIv, entry: &str) -> Option<Vec<u8>> {
    match classify(entry) {
        EntryKind::Short => names.decrypt_name(iv, entry).ok(),
        EntryKind::Long => {
            let full = root.read_small(dir, &names::long_name_sidecar(entry), crate::backing::SIDECAR_MAX).ok()?;
            let full = String::from_utf8(full).ok()?;
            NameCipher::check_long_name(entry, &full).ok()?;
            names.decrypt_name(iv, &full).ok()
        }
        EntryKind::Reserved => None,
    }
}

/// Resolves command-line paths. `open` loads and verifies the volume (with
/// the CLI's pinned steward key) the first time a root is seen; the name
/// cipher is needed for plaintext paths and display.
pub fn resolve(
    arg: &Path,
    open: &mut dyn FnMut(&Path) -> Result<Opened>,
    vols: &mut Vec<Opened>,
) -> Result<(usize, Target)> {
    let abs = std::path::absolute(arg).with_context(|| format!("{}", arg.display()))?;
    let (root, backing, plain_rel) = match crate::live_mount::tresor_mount_of(&abs)? {
        Some((mnt, backing_root)) => {
            let rel = abs.strip_prefix(&mnt).expect("checked").to_owned();
            (backing_root.clone(), None, Some(rel))
        }
        None => match fs::canonicalize(&abs) {
            Ok(canon) => {
                let Some(root) = volume_root(&canon) else {
                    bail!(
                        "{} is neither inside a Tresor backing directory (no tresor.volume above it) nor inside a live \
                         Tresor mount",
                        arg.display()
                    )
                };
                (root, Some(canon), None)
            }
            // `BACKING/outputs/table.csv`: a plaintext path below a volume root.
            Err(e) => match plaintext_below_root(&abs) {
                Some((root, rel)) => (root, None, Some(rel)),
                None => return Err(e).with_context(|| format!("{}", arg.display())),
            },
        },
    };
    let at = match vols.iter().position(|(v, _)| v.root == root) {
        Some(i) => i,
        None => {
            vols.push(open(&root)?);
            vols.len() - 1
        }
    };
    let (vol, names) = &vols[at];
    let target = match (backing, plain_rel) {
        (Some(backing), _) => {
            let shown = match names {
                Some(n) => show(n, &vol.backing, &backing),
                None => backing.strip_prefix(&vol.root).unwrap_or(&backing).display().to_string(),
            };
            Target { backing, shown }
        }
        (None, Some(rel)) => {
            let names = names.as_ref().with_context(|| {
                format!("{}: a plaintext path needs your identity (it holds the name key)", arg.display())
            })?;
            let mut dir = vol.root.clone();
            for part in rel.components() {
                match part {
                    Component::Normal(p) => {
                        let entry = entry_of(names, &vol.backing, &dir, p.as_bytes())?;
                        dir = dir.join(entry);
                    }
                    Component::CurDir => {}
                    _ => bail!("{}: use a plaintext path without `..`", arg.display()),
                }
            }
            if fs::symlink_metadata(&dir).is_err() {
                bail!("{}: no such file or directory in the volume", arg.display());
            }
            Target { backing: dir, shown: rel.display().to_string() }
        }
        _ => unreachable!(),
    };
    Ok((at, target))
}

/// The plaintext path of backing path `backing` below `root`, for display.
pub fn show(names: &NameCipher, root: &Root, backing: &Path) -> String {
    let Ok(rel) = backing.strip_prefix(&root.path) else { return backing.display().to_string() };
    let mut dir = root.path.clone();
    let mut out: Vec<u8> = Vec::new();
    for part in rel.components() {
        let Component::Normal(p) = part else { continue };
        let name = read_iv(root, &dir)
            .ok()
            .and_then(|iv| plain_name(names, root, &dir, &iv, &p.to_string_lossy()))
            .unwrap_or_else(|| format!("<{}>", p.to_string_lossy()).into_bytes());
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(&name);
        dir = dir.join(p);
    }
    if out.is_empty() {
        return "/".into();
    }
    String::from_utf8_lossy(&OsString::from_vec(out).into_vec()).into_owned()
}

/// The default recipients of the policy in force for backing directory
/// `dir` (the nearest directory from `dir` up to `root` with a policy in
/// the registry), and the directory that sets it.
pub fn policy_in_force(vol: &Vol, dir: &Path) -> Result<Option<(PathBuf, Vec<MemberId>)>> {
    let mut cur = dir.to_owned();
    loop {
        let iv = vol.dir_iv(&cur)?;
        if let Some(d) = vol.volume.policy(&iv) {
            return Ok(Some((cur, d.to_vec())));
        }
        if cur == vol.root {
            return Ok(None);
        }
        match cur.parent() {
            Some(p) if p.starts_with(&vol.root) => cur = p.to_owned(),
            _ => return Ok(None),
        }
    }
}
