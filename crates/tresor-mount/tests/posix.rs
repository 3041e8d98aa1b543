//! POSIX details that external suites (pjdfstest, xfstests, overlayfs)
//! check, through real FUSE mounts (root and /dev/fuse required): directory
//! streams that rewind, descriptors that outlive their names, fallocate,
//! renameat2 flags, set-group-ID directories and atime.

mod common;

use std::fs::{self, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;
use rustix::fs::{Dir, Mode, OFlags};

fn open_dir(path: &Path) -> OwnedFd {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
}

/// The names a directory stream yields from where it stands (without `.`
/// and `..`), sorted.
fn names(stream: &mut Dir) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(entry) = stream.read() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            out.push(name);
        }
    }
    out.sort();
    out
}

// ---- directory streams -----------------------------------------------------------

#[test]
fn a_rewound_directory_stream_shows_names_created_and_removed_after_opendir() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    fs::create_dir(m.p("d")).unwrap();
    fs::write(m.p("d/before"), b"").unwrap();
    let mut stream = Dir::new(open_dir(&m.p("d"))).unwrap();
    assert_eq!(names(&mut stream), ["before"]);

    fs::write(m.p("d/after"), b"").unwrap();
    fs::create_dir(m.p("d/sub")).unwrap();
    fs::remove_file(m.p("d/before")).unwrap();
    assert!(names(&mut stream).is_empty(), "at its end the stream stays there");
    stream.rewind(); // rewinddir(3): lseek to 0, so the next read asks from offset 0
    assert_eq!(names(&mut stream), ["after", "sub"]);

    // A name made by another mount shows too.
    let other = vol.mount("bob");
    fs::write(other.p("d/from-bob"), b"").unwrap();
    stream.rewind();
    assert_eq!(names(&mut stream), ["after", "from-bob", "sub"]);
}

// ---- descriptors whose names went elsewhere ------------------------------------------

#[test]
fn descriptors_keep_working_after_a_rename_replaced_their_file_or_directory() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    let other = vol.mount("alice");
    for (i, renamer) in [&m, &other].into_iter().enumerate() {
        // A file replaced by a rename: its descriptor still reads, writes
        // and stats the file it opened.
        let (a, b) = (format!("a{i}"), format!("b{i}"));
        fs::write(m.p(&a), b"old file").unwrap();
        fs::write(m.p(&b), b"the new one").unwrap();
        let f = OpenOptions::new().read(true).write(true).open(m.p(&a)).unwrap();
        fs::rename(renamer.p(&b), renamer.p(&a)).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 8);
        f.write_all_at(b"OLD", 0).unwrap();
        assert_eq!(read_at(&f, 0, 100).unwrap(), b"OLD file");
        f.set_permissions(fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(f.metadata().unwrap().mode() & 0o777, 0o640);
        assert_eq!(fs::read(m.p(&a)).unwrap(), b"the new one");

        // A directory replaced by a rename: fstat, fchmod and a rewound
        // listing (empty: it is gone) work on its descriptor, as locally.
        let (d, e) = (format!("d{i}"), format!("e{i}"));
        fs::create_dir(m.p(&d)).unwrap();
        fs::create_dir(m.p(&e)).unwrap();
        let mut stream = Dir::new(open_dir(&m.p(&d))).unwrap();
        let fd = open_dir(&m.p(&d));
        fs::rename(renamer.p(&e), renamer.p(&d)).unwrap();
        let st = rustix::fs::fstat(&fd).unwrap();
        assert_eq!(st.st_mode & 0o170000, 0o040000, "still a directory");
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o750)).unwrap();
        assert_eq!(rustix::fs::fstat(&fd).unwrap().st_mode & 0o777, 0o750);
        stream.rewind();
        assert!(names(&mut stream).is_empty());
        assert!(m.p(&d).is_dir(), "the name leads to the directory renamed there");
    }
}

#[test]
fn a_descriptor_of_a_directory_another_node_replaced_never_changes_its_replacement() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    let other = vol.mount("alice");
    fs::create_dir(m.p("d")).unwrap();
    fs::create_dir(m.p("e")).unwrap();
    fs::write(m.p("e/kept"), b"in e").unwrap();
    fs::create_dir(m.p("e/sub")).unwrap();
    let dir = open_dir(&m.p("d"));
    // Another node moves e over the (empty) d: this node's d is gone.
    fs::rename(other.p("e"), other.p("d")).unwrap();
    let refused = |r: rustix::io::Result<()>| {
        let e = r.unwrap_err().raw_os_error();
        assert!(e == libc::ESTALE || e == libc::ENOENT, "{e}");
    };
    refused(rustix::fs::openat(&dir, "new", OFlags::CREATE | OFlags::WRONLY, Mode::from(0o644)).map(drop));
    refused(rustix::fs::mkdirat(&dir, "newdir", Mode::from(0o755)));
    refused(rustix::fs::symlinkat("t", &dir, "newlink"));
    refused(rustix::fs::unlinkat(&dir, "kept", rustix::fs::AtFlags::empty()));
    refused(rustix::fs::unlinkat(&dir, "sub", rustix::fs::AtFlags::REMOVEDIR));
    refused(rustix::fs::renameat(&dir, "kept", &dir, "renamed"));
    let mut listed: Vec<String> =
        fs::read_dir(m.p("d")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    listed.sort();
    assert_eq!(listed, ["kept", "sub"], "the directory now at d is as the other node left it");
    assert_eq!(fs::read(m.p("d/kept")).unwrap(), b"in e");
}

// ---- fallocate -------------------------------------------------------------------------

/// `fallocate(2)` on `f`: Ok, or the errno.
fn fallocate(f: &fs::File, mode: i32, off: u64, len: u64) -> Result<(), i32> {
    let flags = rustix::fs::FallocateFlags::from_bits_retain(mode as u32);
    rustix::fs::fallocate(f, flags, off, len).map_err(|e| e.raw_os_error())
}

fn free_bytes(path: &Path) -> u64 {
    let s = rustix::fs::statvfs(path).unwrap();
    s.f_bavail * s.f_frsize
}

#[test]
fn fallocate_reserves_backing_space_or_fails_with_enospc_and_keep_size_keeps_the_size() {
    let vol = Vol::on_tmpfs(64);
    let m = vol.mount("alice");
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(m.p("f")).unwrap();
    f.write_all_at(b"kept", 0).unwrap();
    let free = free_bytes(&m.mp);
    assert!(free > 32 << 20, "{free}");

    // More than the backing file system has: ENOSPC, and nothing changed.
    assert_eq!(fallocate(&f, 0, 0, 2 * free), Err(libc::ENOSPC));
    assert_eq!(fallocate(&f, 0, 0, free), Err(libc::ENOSPC), "the ciphertext is larger than the plaintext");
    assert_eq!(fallocate(&f, libc::FALLOC_FL_KEEP_SIZE, 0, 2 * free), Err(libc::ENOSPC));
    assert_eq!(f.metadata().unwrap().len(), 4);
    assert_eq!(read_at(&f, 0, 100).unwrap(), b"kept");

    // KEEP_SIZE: the space is taken, the size the mount shows is not.
    let quarter = free / 4 / BLOCK * BLOCK;
    fallocate(&f, libc::FALLOC_FL_KEEP_SIZE, 0, quarter).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 4);
    assert!(free_bytes(&m.mp) <= free - quarter, "{} of {free} free after reserving {quarter}", free_bytes(&m.mp));
    assert_eq!(read_at(&f, 0, 100).unwrap(), b"kept");

    // Mode 0: the space is taken and the file grows; the new part reads
    // as zeros, and writing it all needs no more space.
    let before = free_bytes(&m.mp);
    fallocate(&f, 0, quarter, quarter).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 2 * quarter);
    assert!(free_bytes(&m.mp) <= before - quarter);
    assert_eq!(read_at(&f, 2 * quarter - 10, 100).unwrap(), vec![0; 10]);
    assert_eq!(read_at(&f, 0, 6).unwrap(), b"kept\0\0");
    let chunk = vec![0x5a; 1 << 20];
    let mut off = 0;
    while off < 2 * quarter {
        let n = chunk.len().min((2 * quarter - off) as usize);
        f.write_all_at(&chunk[..n], off).unwrap();
        off += n as u64;
    }
    f.sync_all().unwrap();
    assert_eq!(read_at(&f, 2 * quarter - 3, 10).unwrap(), b"ZZZ");

    // Within the file, mode 0 changes nothing but the allocation.
    fallocate(&f, 0, 100, 5000).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 2 * quarter);
    assert_eq!(read_at(&f, 0, 4).unwrap(), b"ZZZZ");

    // The modes that would rewrite content are refused.
    for mode in [
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        libc::FALLOC_FL_ZERO_RANGE,
        libc::FALLOC_FL_COLLAPSE_RANGE,
        libc::FALLOC_FL_INSERT_RANGE,
    ] {
        assert_eq!(fallocate(&f, mode, 0, BLOCK), Err(libc::EOPNOTSUPP), "mode {mode:#x}");
    }
    assert_eq!(read_at(&f, 0, 4).unwrap(), b"ZZZZ");
}

// ---- access times ----------------------------------------------------------------------

/// Sets `path`'s access time to `secs`, leaving its modification time
/// (now, so later: a relatime file system would update the access time on
/// the next read).
fn set_atime(path: &Path, secs: i64) {
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec { tv_sec: secs, tv_nsec: 0 },
        last_modification: rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT },
    };
    rustix::fs::utimensat(rustix::fs::CWD, path, &times, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

fn atime(path: &Path) -> i64 {
    fs::symlink_metadata(path).unwrap().atime()
}

#[test]
fn access_times_move_only_when_content_is_read_and_never_under_noatime() {
    const OLD: i64 = 1_000_000_000;
    let vol = Vol::on_tmpfs(16); // tmpfs: relatime, whatever the host's /tmp is
    let mp = vol.new_mountpoint();
    let mut config = vol.config("alice", &mp);
    tresor_mount::parse_options("noatime", &mut config).unwrap();
    let quiet = Mnt::start(config).unwrap();
    let relatime = vol.mount("alice");

    fs::write(quiet.p("run.sh"), b"#!/bin/sh\necho ran\n").unwrap();
    fs::set_permissions(quiet.p("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(quiet.p("d")).unwrap();
    fs::write(quiet.p("d/f"), b"").unwrap();
    set_atime(&quiet.p("run.sh"), OLD);
    set_atime(&quiet.p("d"), OLD);

    let out = std::process::Command::new(quiet.p("run.sh")).output().unwrap();
    assert_eq!(out.stdout, b"ran\n");
    assert_eq!(fs::read(quiet.p("run.sh")).unwrap().len(), 19);
    assert_eq!(fs::read_dir(quiet.p("d")).unwrap().count(), 1);
    assert_eq!(atime(&quiet.p("run.sh")), OLD, "executing and reading under noatime");
    assert_eq!(atime(&quiet.p("d")), OLD, "listing under noatime");

    // Without noatime the backing file system's relatime applies.
    fs::read(relatime.p("run.sh")).unwrap();
    fs::read_dir(relatime.p("d")).unwrap().count();
    assert!(atime(&relatime.p("run.sh")) > OLD);
    assert!(atime(&relatime.p("d")) > OLD);

    // Changing a file's metadata reads its header first (to check it):
    // never an access.
    fs::write(relatime.p("meta"), b"m").unwrap();
    set_atime(&relatime.p("meta"), OLD);
    fs::set_permissions(relatime.p("meta"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(relatime.p("meta"), Some(0), Some(0)).unwrap();
    assert_eq!(atime(&relatime.p("meta")), OLD, "chmod and chown");

    // A special file's access time is its record's: looking at it (which
    // reads the record) never changes it, on any mount.
    rustix::fs::mknodat(rustix::fs::CWD, relatime.p("fifo"), rustix::fs::FileType::Fifo, Mode::from(0o644), 0).unwrap();
    set_atime(&relatime.p("fifo"), OLD);
    for _ in 0..2 {
        assert_eq!(atime(&relatime.p("fifo")), OLD);
        assert_eq!(atime(&quiet.p("fifo")), OLD);
    }
}

// ---- renameat2 ---------------------------------------------------------------------------

fn rename2(from: &Path, to: &Path, flags: rustix::fs::RenameFlags) -> Result<(), i32> {
    rustix::fs::renameat_with(rustix::fs::CWD, from, rustix::fs::CWD, to, flags).map_err(|e| e.raw_os_error())
}

/// A whiteout as overlayfs makes and reads them: a character device 0/0.
fn is_whiteout(path: &Path) -> bool {
    let st = rustix::fs::lstat(path).unwrap();
    st.st_mode & 0o170000 == 0o020000 && st.st_rdev == 0
}

#[test]
fn rename_whiteout_leaves_a_character_device_0_0_and_exchange_and_noreplace_keep_their_rules() {
    use rustix::fs::RenameFlags as R;
    let vol = Vol::new();
    let m = vol.mount("alice");
    let other = vol.mount("bob");
    fs::write(m.p("a"), b"upper").unwrap();
    fs::create_dir(m.p("dir")).unwrap();
    fs::write(m.p("dir/f"), b"in dir").unwrap();
    fs::write(m.p("c"), b"replaced").unwrap();

    // RENAME_WHITEOUT (what overlayfs does to an upper entry over a lower one).
    rename2(&m.p("a"), &m.p("b"), R::WHITEOUT).unwrap();
    assert_eq!(fs::read(m.p("b")).unwrap(), b"upper");
    assert!(is_whiteout(&m.p("a")) && is_whiteout(&other.p("a")), "seen from both mounts");
    rename2(&m.p("dir"), &m.p("dir2"), R::WHITEOUT).unwrap();
    assert!(is_whiteout(&m.p("dir")));
    assert_eq!(fs::read(m.p("dir2/f")).unwrap(), b"in dir");
    let long = "l".repeat(255); // its encrypted name lives in a sidecar
    fs::write(m.p(&long), b"long").unwrap();
    rename2(&m.p(&long), &m.p("from-long"), R::WHITEOUT).unwrap();
    assert!(is_whiteout(&m.p(&long)) && is_whiteout(&other.p(&long)));
    assert_eq!(fs::read(m.p("from-long")).unwrap(), b"long");
    rename2(&m.p("b"), &m.p("c"), R::WHITEOUT).unwrap();
    assert_eq!(fs::read(m.p("c")).unwrap(), b"upper");
    assert!(is_whiteout(&m.p("b")));
    // With NOREPLACE onto an existing name: EEXIST, and nothing moves or is left.
    assert_eq!(rename2(&m.p("c"), &m.p("dir2"), R::WHITEOUT | R::NOREPLACE), Err(libc::EEXIST));
    assert_eq!(fs::read(m.p("c")).unwrap(), b"upper");
    rename2(&m.p("c"), &m.p("d"), R::WHITEOUT | R::NOREPLACE).unwrap();
    assert!(is_whiteout(&m.p("c")));
    let mut listed: Vec<String> =
        fs::read_dir(&m.mp).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    listed.sort();
    assert_eq!(listed, ["a", "b", "c", "d", "dir", "dir2", "from-long", &long]);
    assert!(!vol.listing().iter().any(|p| p.contains("tresor.tmp")), "{:?}", vol.listing());

    // RENAME_EXCHANGE swaps two existing entries, and combines with neither.
    fs::write(m.p("x"), b"1").unwrap();
    fs::write(m.p("y"), b"2").unwrap();
    rename2(&m.p("x"), &m.p("y"), R::EXCHANGE).unwrap();
    assert_eq!((fs::read(m.p("x")).unwrap(), fs::read(m.p("y")).unwrap()), (b"2".to_vec(), b"1".to_vec()));
    assert_eq!(rename2(&m.p("x"), &m.p("missing"), R::EXCHANGE), Err(libc::ENOENT));
    assert_eq!(rename2(&m.p("x"), &m.p("y"), R::EXCHANGE | R::NOREPLACE), Err(libc::EINVAL));
    assert_eq!(rename2(&m.p("x"), &m.p("y"), R::EXCHANGE | R::WHITEOUT), Err(libc::EINVAL));
    assert_eq!(rename2(&m.p("x"), &m.p("y"), R::NOREPLACE), Err(libc::EEXIST));
    assert_eq!((fs::read(m.p("x")).unwrap(), fs::read(m.p("y")).unwrap()), (b"2".to_vec(), b"1".to_vec()));
}

// ---- set-group-ID directories --------------------------------------------------------------

/// Runs `f` on a thread whose credentials are `uid`, `gid` and `groups`
/// (the rest of the test stays root).
fn as_user<T: Send>(uid: u32, gid: u32, groups: &[u32], f: impl FnOnce() -> T + Send) -> T {
    use rustix::process::{Gid, Uid};
    std::thread::scope(|s| {
        s.spawn(|| {
            let groups: Vec<Gid> = groups.iter().map(|&g| Gid::from_raw(g)).collect();
            rustix::thread::set_thread_groups(&groups).unwrap();
            rustix::thread::set_thread_gid(Gid::from_raw(gid)).unwrap();
            rustix::thread::set_thread_uid(Uid::from_raw(uid)).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

#[test]
fn entries_made_in_a_set_group_id_directory_follow_the_kernels_rules() {
    const GROUP: u32 = 4242; // not the creating user's
    const NOBODY: u32 = 65534;
    let vol = Vol::new();
    let mp = vol.new_mountpoint();
    let mut config = vol.config("alice", &mp);
    tresor_mount::parse_options("allow_other", &mut config).unwrap();
    let m = Mnt::start(config).unwrap();
    fs::create_dir(m.p("shared")).unwrap();
    std::os::unix::fs::chown(m.p("shared"), Some(0), Some(GROUP)).unwrap();
    fs::set_permissions(m.p("shared"), fs::Permissions::from_mode(0o2777)).unwrap();
    let sgid_exec = Mode::from_raw_mode(0o2775);
    let make_all = |prefix: &str| {
        let p = |name: &str| m.p(&format!("shared/{prefix}{name}"));
        rustix::fs::mknodat(rustix::fs::CWD, p("fifo"), rustix::fs::FileType::Fifo, sgid_exec, 0).unwrap();
        rustix::fs::mknodat(rustix::fs::CWD, p("reg"), rustix::fs::FileType::RegularFile, sgid_exec, 0).unwrap();
        rustix::fs::open(p("open"), OFlags::CREATE | OFlags::WRONLY | OFlags::EXCL, sgid_exec).unwrap();
        rustix::fs::mkdir(p("dir"), Mode::from_raw_mode(0o775)).unwrap();
        rustix::fs::symlinkat("target", rustix::fs::CWD, p("link")).unwrap();
    };
    as_user(NOBODY, NOBODY, &[], || make_all("outsider-"));
    as_user(NOBODY, NOBODY, &[GROUP], || make_all("member-"));
    for (prefix, keeps_sgid) in [("outsider-", false), ("member-", true)] {
        for name in ["fifo", "reg", "open", "dir", "link"] {
            let meta = fs::symlink_metadata(m.p(&format!("shared/{prefix}{name}"))).unwrap();
            let what = format!("{prefix}{name}: mode {:o}", meta.mode());
            assert_eq!((meta.uid(), meta.gid()), (NOBODY, GROUP), "{what}: the creator's, in the directory's group");
            let sgid = meta.mode() & libc::S_ISGID != 0;
            match name {
                // Directories pass the bit on, whoever makes them.
                "dir" => assert!(sgid, "{what}"),
                "link" => {}
                // Group-executable set-group-ID files keep the bit only
                // for a member of the group.
                _ => assert_eq!(sgid, keeps_sgid, "{what}"),
            }
        }
    }
}

// ---- remounts ----------------------------------------------------------------------------

#[test]
fn a_read_only_remount_right_after_a_removed_file_is_closed_succeeds() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    // The kernel releases a FUSE file asynchronously after its last close;
    // until the daemon has answered, an unlinked file is still held, which
    // a read-only remount refuses (EBUSY) on every file system.
    for i in 0..20 {
        let path = m.p(&format!("scratch{i}"));
        let f = OpenOptions::new().write(true).create(true).truncate(true).open(&path).unwrap();
        f.write_all_at(&[7; 10000], 0).unwrap();
        fs::remove_file(&path).unwrap();
        drop(f);
        tresor_mount::remount(&m.mp, "ro").unwrap();
        assert_eq!(fs::write(m.p("x"), b"").unwrap_err().raw_os_error(), Some(libc::EROFS));
        tresor_mount::remount(&m.mp, "rw").unwrap();
    }
    fs::write(m.p("x"), b"writable again").unwrap();
}
