//! The harness of the mount tests: a fresh volume in a temporary
//! directory (`Vol`) and a live mount of it served on a thread (`Mnt`).
#![allow(dead_code)]

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use tresor_format::{
    place::parse_diriv, DirIv, EncryptedName, Identity, Layout, NameCipher, NameKey, Place, PlaceKey, Role, Volume,
    VolumeParams,
};
use tresor_mount::{prepare, MountConfig, MountError};

pub const BLOCK: u64 = 4096;

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn identity(name: &str) -> Identity {
    let mut seed = [0u8; 32];
    seed[..name.len()].copy_from_slice(name.as_bytes());
    Identity::from_seed(&seed, name).unwrap()
}

pub fn eio(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EIO)
}

// ---- harness -----------------------------------------------------------------

/// A backing directory holding a fresh volume: alice is the steward, bob a
/// member, carol an auditor; mallory is not in it.
pub struct Vol {
    pub dir: tempfile::TempDir,
    pub backing: PathBuf,
    pub volume: Volume,
    pub name_key: NameKey,
    /// A file system of its own under `backing`, unmounted with the volume.
    pub tmpfs: Option<Tmpfs>,
}

/// A tmpfs mounted for one test (a backing file system that can fill up).
pub struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH).unwrap();
    }
}

impl Vol {
    pub fn new() -> Vol {
        Vol::make(None)
    }

    /// A volume whose backing directory is a tmpfs of `mib` MiB.
    pub fn on_tmpfs(mib: u64) -> Vol {
        Vol::make(Some(mib))
    }

    fn make(tmpfs_mib: Option<u64>) -> Vol {
        let dir = tempfile::Builder::new().prefix("tresor-mount-test").tempdir().unwrap();
        let backing = dir.path().join("backing");
        fs::create_dir(&backing).unwrap();
        let tmpfs = tmpfs_mib.map(|mib| {
            let size = CString::new(format!("size={mib}m")).unwrap();
            let flags = rustix::mount::MountFlags::empty();
            rustix::mount::mount("tresor-test", &backing, "tmpfs", flags, size.as_c_str()).unwrap();
            Tmpfs(backing.clone())
        });
        let mut r = rng(7);
        let alice = identity("alice");
        let params = VolumeParams { block_size: BLOCK as u32, ..Default::default() };
        let (mut volume, name_key) = Volume::create(&alice, params, &mut r).unwrap();
        volume.add_member(&name_key, identity("bob").public(), "bob", Role::Member, &mut r).unwrap();
        volume.add_member(&name_key, identity("carol").public(), "carol", Role::Auditor, &mut r).unwrap();
        volume.sign(&alice).unwrap();
        fs::write(backing.join("tresor.volume"), volume.to_bytes()).unwrap();
        let root_iv = PlaceKey::new(&name_key).seal_diriv(&DirIv::generate(&mut r), Place::Root);
        fs::write(backing.join("tresor.diriv"), root_iv).unwrap();
        Vol { dir, backing, volume, name_key, tmpfs }
    }

    pub fn layout(&self) -> Layout {
        Layout::new(self.volume.params.header_len, self.volume.params.block_size)
    }

    pub fn new_mountpoint(&self) -> PathBuf {
        let mp = self.dir.path().join(format!("mnt{}", rand_chacha::rand_core::OsRng.next_u32()));
        fs::create_dir(&mp).unwrap();
        mp
    }

    pub fn config(&self, who: &str, mountpoint: &Path) -> MountConfig {
        MountConfig::new(&self.backing, mountpoint, identity(who), vec![identity("alice").public().ed25519])
    }

    pub fn mount(&self, who: &str) -> Mnt {
        let mp = self.new_mountpoint();
        let config = self.config(who, &mp);
        Mnt::start(config).unwrap()
    }

    /// The backing path of plaintext `path` (relative; every component
    /// short), found with the name key and the directory IVs.
    pub fn backing_path(&self, path: &str) -> PathBuf {
        let names = NameCipher::new(&self.name_key);
        let mut dir = self.backing.clone();
        for part in path.split('/') {
            let iv = parse_diriv(&fs::read(dir.join("tresor.diriv")).unwrap()).unwrap();
            match names.encrypt_name(&iv, part.as_bytes()).unwrap() {
                EncryptedName::Short(entry) => dir = dir.join(entry),
                EncryptedName::Long { entry, .. } => dir = dir.join(entry),
            }
        }
        dir
    }

    /// Every backing path but the audit logs (each mount adds one; see
    /// tresor-cli/tests/audit.rs).
    pub fn listing(&self) -> Vec<String> {
        let mut all = Vec::new();
        for e in walk(&self.backing) {
            let rel = e.strip_prefix(&self.backing).unwrap();
            if rel.starts_with("tresor.audit") {
                continue;
            }
            all.push(rel.display().to_string());
        }
        all.sort();
        all
    }
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        out.push(e.path());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        }
    }
    out
}

/// A live mount, served on a thread, unmounted on drop.
pub struct Mnt {
    pub mp: PathBuf,
    /// The FUSE connection number (the mount's minor device number).
    pub conn: u64,
    thread: Option<thread::JoinHandle<Result<(), MountError>>>,
}

impl Mnt {
    pub fn start(config: MountConfig) -> Result<Mnt, MountError> {
        // The daemon's log (errors and warnings) goes with the test's output.
        let _ = tracing_subscriber::fmt().with_max_level(tracing::Level::WARN).with_test_writer().try_init();
        let mp = config.mountpoint.clone();
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let mounted = match prepare(config).and_then(|p| p.mount()) {
                Ok(m) => {
                    tx.send(Ok(())).unwrap();
                    m
                }
                Err(e) => {
                    tx.send(Err(e)).unwrap();
                    return Ok(());
                }
            };
            mounted.run()
        });
        match rx.recv().unwrap() {
            Ok(()) => {
                let conn = libc::minor(fs::metadata(&mp).unwrap().dev()) as u64;
                Ok(Mnt { mp, conn, thread: Some(thread) })
            }
            Err(e) => {
                thread.join().unwrap().unwrap();
                Err(e)
            }
        }
    }

    pub fn p(&self, rel: &str) -> PathBuf {
        self.mp.join(rel)
    }
}

impl Drop for Mnt {
    fn drop(&mut self) {
        let c = CString::new(self.mp.as_os_str().as_bytes()).unwrap();
        // The kernel may still be finishing a release the test's last close
        // started; on a loaded machine that can take a moment.
        let mut unmounted = false;
        let mut last_error = None;
        for _ in 0..250 {
            if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
                unmounted = true;
                break;
            }
            last_error = Some(std::io::Error::last_os_error());
            thread::sleep(Duration::from_millis(20));
        }
        if !unmounted {
            eprintln!("{}: still mounted after 5 s ({last_error:?}): aborting the connection", self.mp.display());
            // Something (a failed test) still holds a file open on the
            // mount: detach it and abort the connection, or the session
            // would serve that descriptor forever.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            let _ = fs::write(format!("/sys/fs/fuse/connections/{}/abort", self.conn), b"1");
        }
        if let Some(t) = self.thread.take() {
            let result = t.join().expect("the mount thread panicked");
            if !thread::panicking() {
                result.expect("the mount ended with an error");
            }
        }
    }
}

pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng(seed).fill_bytes(&mut v);
    v
}

pub fn read_all(path: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    File::open(path).unwrap().read_to_end(&mut v).unwrap();
    v
}

/// Opens with O_DIRECT: reads reach the mount exactly as asked, without
/// the page cache (or its readahead) in between.
pub fn open_direct(path: &Path) -> File {
    OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path).unwrap()
}

pub fn read_at(f: &File, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let n = f.read_at(&mut buf, off)?;
    buf.truncate(n);
    Ok(buf)
}
