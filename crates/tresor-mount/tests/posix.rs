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
