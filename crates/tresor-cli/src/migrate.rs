//! `tresor migrate`: converts a volume an older Tresor made (volume file
//! version 2) to the current format, in place, with every mount stopped.
//!
//! What changes (FORMAT.md §1.3): every `tresor.diriv` gets the tag that
//! binds it to its place; every FIFO, socket or device node in the backing
//! tree becomes a tagged record (§8.7); last, the registry is signed as
//! version 3, with a signing time and an expiry. The registry goes last, so
//! an interrupted run leaves a version 2 volume that the same command
//! finishes (directories already tagged are checked, not tagged again).
//! File headers and content do not change.
//!
//! Special files found in the tree are converted as they are: an operator
//! who suspects the storage planted some should list them first (the
//! command names each one it converts).

use std::{
    fs,
    os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{bail, Context, Result};
use clap::Args;
use tresor_audit::{Event, Op};
use tresor_format::{
    names::{self, classify, EntryKind},
    place::DIRIV_FILE_MAX,
    volume::{VOLUME_VERSION, VOLUME_VERSION_MIGRATABLE},
    DirIv, Node, NodeKind, Place, PlaceKey, Role, Volume,
};

use crate::{audit, config, id, passphrase::PassSource};

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The volume's backing directory. Stop every mount of it first.
    pub backing: PathBuf,
    /// Days the migrated registry stays valid [default: 90].
    #[arg(long, value_name = "DAYS")]
    pub registry_valid_days: Option<u64>,
    /// Your identity file (a steward's) [default: ~/.config/tresor/identity].
    #[arg(long, short, value_name = "FILE", env = "TRESOR_IDENTITY")]
    pub identity: Option<PathBuf>,
    #[command(flatten)]
    pub pass: PassSource,
}

#[derive(Default)]
struct Tally {
    dirs_tagged: u64,
    dirs_checked: u64,
    nodes: u64,
}

pub fn run(args: MigrateArgs) -> Result<u8> {
    let path = args.backing.join(names::VOLUME_FILE);
    let bytes = fs::read(&path)
        .with_context(|| format!("{} is not a Tresor volume (no {})", args.backing.display(), names::VOLUME_FILE))?;
    let version = Volume::version_of(&bytes).with_context(|| format!("reading {}", path.display()))?;
    if version == VOLUME_VERSION {
        eprintln!("{} is already format version {VOLUME_VERSION}: nothing to do", args.backing.display());
        return Ok(0);
    }
    if version != VOLUME_VERSION_MIGRATABLE {
        bail!(
            "{} is format version {version}: this Tresor migrates version {VOLUME_VERSION_MIGRATABLE} only",
            path.display()
        );
    }
    let pin = config::pin_for(&bytes, None)?;
    let mut volume = Volume::open_for_migration(&bytes, &[pin.key().ed25519])
        .with_context(|| format!("verifying {}", path.display()))?;
    config::check_generation(&volume)?;
    let steward = Arc::new(id::unlock(&args.identity.unwrap_or_else(config::default_identity), &args.pass)?);
    if volume.member(&steward.id()).map(|m| m.role) != Some(Role::Steward) {
        bail!("only a steward of the volume can migrate it");
    }
    let name_key = volume.name_key(&steward).context("unwrapping the name key")?;
    let session = audit::Session::open(&args.backing, steward.clone(), &volume, &name_key, "migrate")?;
    let key = PlaceKey::new(&name_key);
    let mut tally = Tally::default();
    migrate_dir(&key, &args.backing, Place::Root, &args.backing, &mut tally)?;
    if let Some(days) = args.registry_valid_days {
        volume.set_validity(days.saturating_mul(86_400))?;
    }
    volume.sign(&steward)?;
    crate::member::store(&args.backing, &volume)?;
    session.record(Event::new(Op::Migrate))?;
    session.close()?;
    eprintln!(
        "migrated {} to format version {VOLUME_VERSION}: {} directory IVs tagged ({} already were), {} special files \
         made records; registry generation {}, valid for {} days",
        args.backing.display(),
        tally.dirs_tagged,
        tally.dirs_checked,
        tally.nodes,
        volume.generation,
        volume.validity() / 86_400
    );
    Ok(0)
}

/// Tags `dir`'s IV for `place`, converts its special files, and recurses.
fn migrate_dir(key: &PlaceKey, dir: &Path, place: Place<'_>, root: &Path, tally: &mut Tally) -> Result<()> {
    let iv_path = dir.join(names::DIRIV_FILE);
    let meta = fs::symlink_metadata(&iv_path).with_context(|| format!("{}", iv_path.display()))?;
    if !meta.is_file() || meta.len() > DIRIV_FILE_MAX as u64 {
        bail!("{}: not a directory IV file", iv_path.display());
    }
    let bytes = fs::read(&iv_path).with_context(|| format!("reading {}", iv_path.display()))?;
    let iv = if bytes.len() == names::DIRIV_LEN {
        let iv = DirIv::parse(&bytes)?;
        replace(&iv_path, &key.seal_diriv(&iv, place), &meta)?;
        tally.dirs_tagged += 1;
        iv
    } else {
        tally.dirs_checked += 1;
        key.open_diriv(&bytes, place).with_context(|| format!("{}", iv_path.display()))?
    };
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(name) = e.file_name().into_string() else { continue };
        if classify(&name) == EntryKind::Reserved {
            continue;
        }
        let path = e.path();
        let meta = fs::symlink_metadata(&path)?;
        let t = meta.file_type();
        let kind = if t.is_dir() {
            migrate_dir(key, &path, Place::In { parent: &iv, entry: &name }, root, tally)?;
            continue;
        } else if t.is_fifo() {
            NodeKind::Fifo
        } else if t.is_socket() {
            NodeKind::Socket
        } else if t.is_char_device() {
            NodeKind::Char
        } else if t.is_block_device() {
            NodeKind::Block
        } else {
            continue;
        };
        let rdev = if matches!(kind, NodeKind::Char | NodeKind::Block) { meta.rdev() } else { 0 };
        replace(&path, &key.seal_node(Node { kind, rdev }), &meta)?;
        eprintln!("special file {} ({kind:?}) is now a record", path.strip_prefix(root).unwrap_or(&path).display());
        tally.nodes += 1;
    }
    Ok(())
}

/// Replaces `path` with a regular file holding `bytes`, keeping the owner,
/// mode bits and times of `was`: written under an exclusive temporary name
/// beside it, synced, and renamed over it.
fn replace(path: &Path, bytes: &[u8], was: &fs::Metadata) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().context("no parent directory")?;
    let tmp = dir.join(format!("tresor.tmp.migrate.{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let done = (|| -> std::io::Result<()> {
        f.write_all(bytes)?;
        std::os::unix::fs::fchown(&f, Some(was.uid()), Some(was.gid()))?;
        f.set_permissions(fs::Permissions::from_mode(was.mode() & 0o7777))?;
        let times = fs::FileTimes::new().set_accessed(was.accessed()?).set_modified(was.modified()?);
        f.set_times(times)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = done {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("replacing {}", path.display()));
    }
    Ok(())
}
