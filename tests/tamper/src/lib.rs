//! What a storage operator can do to a Tresor volume: act on the backing
//! tree with ordinary file-system calls, holding no member key. Tests of
//! the mount, the CLI and fsck share these, so that every attack is spelled
//! once and reads as what it is ("plant a FIFO where the IV was").
//!
//! Everything here panics on failure: a tamper that did not happen would
//! make the test that follows meaningless.
#![forbid(unsafe_code)]

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Every path below `root` (files, directories, links, special files),
/// relative to it, in sorted order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing(pub BTreeSet<PathBuf>);

impl Listing {
    pub fn of(root: &Path) -> Listing {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) {
            for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display())) {
                let e = e.unwrap();
                let path = e.path();
                out.insert(path.strip_prefix(root).unwrap().to_owned());
                if e.file_type().unwrap().is_dir() {
                    walk(root, &path, out);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(root, root, &mut out);
        Listing(out)
    }

    /// Entries in `self` that `before` did not have, leaving out format
    /// metadata (`tresor.*` names), as full paths below `root`.
    pub fn added_since(&self, before: &Listing, root: &Path) -> Vec<PathBuf> {
        self.0
            .difference(&before.0)
            .filter(|p| !p.file_name().is_some_and(|n| n.as_bytes().starts_with(b"tresor.")))
            .map(|p| root.join(p))
            .collect()
    }
}

/// The one backing entry that appeared below `root` while `f` ran (for
/// instance a file created through a mount): its full path.
pub fn backing_of(root: &Path, f: impl FnOnce()) -> PathBuf {
    let before = Listing::of(root);
    f();
    let mut added = Listing::of(root).added_since(&before, root);
    assert_eq!(added.len(), 1, "expected one new backing entry, got {added:?}");
    added.pop().unwrap()
}

/// Flips bit `bit` (0..8) of the byte at `offset`.
pub fn flip_bit(path: &Path, offset: u64, bit: u8) {
    let f = fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 1 << bit;
    f.write_all_at(&b, offset).unwrap();
}

/// Cuts (or extends with zeros) the file to `len` bytes.
pub fn cut(path: &Path, len: u64) {
    fs::OpenOptions::new().write(true).open(path).unwrap().set_len(len).unwrap();
}

/// Writes `bytes` at `offset`, in place.
pub fn overwrite(path: &Path, offset: u64, bytes: &[u8]) {
    fs::OpenOptions::new().write(true).open(path).unwrap().write_all_at(bytes, offset).unwrap();
}

pub fn len(path: &Path) -> u64 {
    fs::symlink_metadata(path).unwrap().len()
}

/// A file's bytes as they are now, to put back later (rollback).
pub struct Saved {
    path: PathBuf,
    bytes: Vec<u8>,
}

pub fn save(path: &Path) -> Saved {
    Saved { path: path.to_owned(), bytes: fs::read(path).unwrap() }
}

impl Saved {
    /// Puts the saved bytes back under the same name (a new inode, as a
    /// restore from backup would).
    pub fn restore(&self) {
        let tmp = self.path.with_extension("tamper-restore");
        fs::write(&tmp, &self.bytes).unwrap();
        fs::rename(&tmp, &self.path).unwrap();
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Replaces `to` with a copy of `from` (same name, other content).
pub fn copy_over(from: &Path, to: &Path) {
    let bytes = fs::read(from).unwrap();
    remove(to);
    fs::write(to, bytes).unwrap();
}

/// Exchanges two entries' names.
pub fn swap(a: &Path, b: &Path) {
    let tmp = a.with_extension("tamper-swap");
    fs::rename(a, &tmp).unwrap();
    fs::rename(b, a).unwrap();
    fs::rename(&tmp, b).unwrap();
}

/// Removes whatever is at `path` (a directory with its content).
pub fn remove(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).unwrap(),
        Ok(_) => fs::remove_file(path).unwrap(),
        Err(_) => {}
    }
}

/// Puts a symlink to `target` at `at`, replacing what was there.
pub fn plant_symlink(at: &Path, target: &Path) {
    remove(at);
    std::os::unix::fs::symlink(target, at).unwrap();
}

/// Puts a hard link to `existing` (for instance a file outside the volume,
/// on the same file system) at `at`, replacing what was there.
pub fn plant_hardlink(existing: &Path, at: &Path) {
    remove(at);
    fs::hard_link(existing, at).unwrap();
}

/// Puts a FIFO at `at`, replacing what was there: an open for reading
/// blocks until a writer comes, so anything that reads it unchecked hangs.
pub fn plant_fifo(at: &Path) {
    mknod(at, libc::S_IFIFO | 0o644, 0);
}

/// Puts a character device at `at` (`/dev/null`'s numbers), replacing what
/// was there.
pub fn plant_device(at: &Path) {
    mknod(at, libc::S_IFCHR | 0o644, libc::makedev(1, 3));
}

fn mknod(at: &Path, mode: libc::mode_t, dev: libc::dev_t) {
    remove(at);
    let c = CString::new(at.as_os_str().as_bytes()).unwrap();
    nix_mknod(&c, mode, dev);
}

/// `mknod(2)` through the C library's safe-by-signature shim in std is not
/// available, so this goes through `std::process::Command` (`mknod(1)`),
/// keeping the toolkit free of `unsafe`.
fn nix_mknod(path: &CString, mode: libc::mode_t, dev: libc::dev_t) {
    let p = Path::new(std::ffi::OsStr::from_bytes(path.as_bytes()));
    let kind = match mode & libc::S_IFMT {
        libc::S_IFIFO => "p",
        libc::S_IFCHR => "c",
        _ => panic!("unsupported node type"),
    };
    let mut cmd = std::process::Command::new("mknod");
    cmd.arg("-m").arg(format!("{:o}", mode & 0o7777)).arg(p).arg(kind);
    if kind != "p" {
        cmd.arg(libc::major(dev).to_string()).arg(libc::minor(dev).to_string());
    }
    let status = cmd.status().expect("running mknod(1)");
    assert!(status.success(), "mknod {} failed", p.display());
}

/// The inode number of `path` (not following a final symlink).
pub fn inode(path: &Path) -> u64 {
    fs::symlink_metadata(path).unwrap().ino()
}
