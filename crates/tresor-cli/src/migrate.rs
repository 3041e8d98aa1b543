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
    ffi::CStr,
    os::fd::{AsFd, BorrowedFd},
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
    DirIv, Node, NodeKind, Place, PlaceKey, Volume,
};

use crate::{config, id, passphrase::PassSource};

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
    let bytes = crate::backing::read_volume_file(&args.backing)?;
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
    let session = crate::registry::steward_session(&args.backing, &steward, &volume, "migrate", Op::Migrate)?;
    let name_key = volume.name_key(&steward).context("unwrapping the name key")?;
    let key = PlaceKey::new(&name_key);
    let mut tally = Tally::default();
    let root = crate::backing::Root::open(&args.backing)?;
    migrate_dir(&key, root.fd(), &args.backing, Place::Root, &mut tally)?;
    if let Some(days) = args.registry_valid_days {
        volume.set_validity(days.saturating_mul(86_400))?;
    }
    volume.sign(&steward)?;
    crate::registry::store(&args.backing, &volume)?;
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

/// Tags the IV of the directory open as `dir` (shown as `shown`) for
/// `place`, converts its special files, and recurses. Every entry is opened
/// from its directory's descriptor without following a symlink, and files
/// are opened non-blocking and type-checked (tresor-sys): a planted link
/// or FIFO is never followed or waited on.
fn migrate_dir(key: &PlaceKey, dir: BorrowedFd<'_>, shown: &Path, place: Place<'_>, tally: &mut Tally) -> Result<()> {
    let iv_shown = shown.join(names::DIRIV_FILE);
    let diriv = tresor_sys::cstring(names::DIRIV_FILE.as_bytes())?;
    let (fd, st) = tresor_sys::open_regular(dir, &diriv, libc::O_RDONLY)
        .with_context(|| format!("{}: not a directory IV file", iv_shown.display()))?;
    if st.st_size < 0 || st.st_size as usize > DIRIV_FILE_MAX {
        bail!("{}: {} bytes, not a directory IV file", iv_shown.display(), st.st_size);
    }
    let mut bytes = vec![0u8; st.st_size as usize];
    tresor_sys::pread_exact(fd.as_fd(), &mut bytes, 0).with_context(|| format!("reading {}", iv_shown.display()))?;
    drop(fd);
    let iv = if bytes.len() == names::DIRIV_LEN {
        let iv = DirIv::parse(&bytes)?;
        replace_at(dir, &diriv, &key.seal_diriv(&iv, place), &st).with_context(|| format!("{}", iv_shown.display()))?;
        tally.dirs_tagged += 1;
        iv
    } else {
        tally.dirs_checked += 1;
        key.open_diriv(&bytes, place).with_context(|| format!("{}", iv_shown.display()))?
    };
    let listing = tresor_sys::read_dir(tresor_sys::openat(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?)?;
    let mut entries: Vec<_> = listing.into_iter().filter_map(|e| String::from_utf8(e.name).ok()).collect();
    entries.sort();
    for name in entries {
        if classify(&name) == EntryKind::Reserved {
            continue;
        }
        let cname = tresor_sys::cstring(name.as_bytes())?;
        let st = match tresor_sys::fstatat(dir, &cname) {
            Ok(st) => st,
            Err(e) if tresor_sys::is_errno(&e, libc::ENOENT) => continue,
            Err(e) => return Err(e).with_context(|| format!("{}", shown.join(&name).display())),
        };
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                let child = tresor_sys::open_dir_beneath(dir, name.as_bytes())
                    .with_context(|| format!("{}", shown.join(&name).display()))?;
                migrate_dir(key, child.as_fd(), &shown.join(&name), Place::In { parent: &iv, entry: &name }, tally)?;
                continue;
            }
            libc::S_IFIFO => NodeKind::Fifo,
            libc::S_IFSOCK => NodeKind::Socket,
            libc::S_IFCHR => NodeKind::Char,
            libc::S_IFBLK => NodeKind::Block,
            _ => continue,
        };
        let rdev = if matches!(kind, NodeKind::Char | NodeKind::Block) { st.st_rdev } else { 0 };
        replace_at(dir, &cname, &key.seal_node(Node { kind, rdev }), &st)
            .with_context(|| format!("{}", shown.join(&name).display()))?;
        eprintln!("special file {} ({kind:?}) is now a record", shown.join(&name).display());
        tally.nodes += 1;
    }
    Ok(())
}

/// Replaces entry `name` of directory `dir` with a regular file holding
/// `bytes`, keeping the owner, mode bits and times of `was`: written under
/// an exclusive temporary name beside it, synced, and renamed over it.
fn replace_at(dir: BorrowedFd<'_>, name: &CStr, bytes: &[u8], was: &libc::stat) -> Result<()> {
    let tmp = crate::backing::tmp_name();
    tresor_sys::write_new(dir, &tmp, bytes, 0o600)?;
    let done = (|| -> std::io::Result<()> {
        let fd = tresor_sys::openat(dir, &tmp, libc::O_RDWR | libc::O_NOFOLLOW | libc::O_NONBLOCK, 0)?;
        tresor_sys::fchown(fd.as_fd(), was.st_uid, was.st_gid)?;
        tresor_sys::fchmod(fd.as_fd(), was.st_mode & 0o7777)?;
        let times = [
            libc::timespec { tv_sec: was.st_atime, tv_nsec: was.st_atime_nsec },
            libc::timespec { tv_sec: was.st_mtime, tv_nsec: was.st_mtime_nsec },
        ];
        tresor_sys::futimens(fd.as_fd(), &times)?;
        tresor_sys::fsync(fd.as_fd(), false)?;
        tresor_sys::renameat2(dir, &tmp, dir, name, 0)
    })();
    if let Err(e) = done {
        let _ = tresor_sys::unlinkat(dir, &tmp, false);
        return Err(e.into());
    }
    Ok(())
}
