//! The storage operator as attacker: each test acts on the backing tree
//! only (with `tresor-tamper`, never through a key), then runs the real
//! `tresor` binary or a real mount, as root, and checks that nothing outside
//! the volume changed, nothing hung, and the damage was refused with a
//! precise error. Every case steers a root process with a planted entry
//! (THREAT-MODEL.md, "Planted entries and revocation").

mod common;

use std::{
    ffi::CString,
    fs,
    os::unix::{ffi::OsStrExt, fs::MetadataExt, fs::PermissionsExt},
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::mpsc,
    time::Duration,
};

use common::{run_ok, run_within, Scratch};
use tresor_tamper as tamper;

/// How long a command or file-system call may take before it counts as a
/// hang (a regression fails here instead of hanging CI).
const PROMPT: Duration = Duration::from_secs(20);

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `f` on a thread of its own and returns its result, failing the
/// test if it has not returned within `PROMPT` (a FUSE request stuck in the
/// daemon). The mount daemons of `scratch` are killed first then, so that
/// the stuck request fails and the test process can still exit.
fn promptly<T: Send + 'static>(scratch: &Path, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(PROMPT).unwrap_or_else(|_| {
        kill_daemons_of(scratch);
        panic!("{what}: no answer within {PROMPT:?}: the mount hangs")
    })
}

/// Kills the `tresor mount` daemons this test started in `scratch` (by
/// process id, found by their arguments).
fn kill_daemons_of(scratch: &Path) {
    let needle = scratch.as_os_str().as_bytes();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else { continue };
        let mine = cmdline.split(|&b| b == 0).any(|a| a.starts_with(needle));
        if mine && pid != std::process::id() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

fn is_root() -> bool {
    // The mounts and the chown below need root, as in CI.
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// A volume with a steward (`s`) and the backing directory's path.
fn volume(name: &str) -> (Scratch, PathBuf) {
    let s = Scratch::new(name);
    s.identity("steward");
    s.init("backing", "steward", &[]);
    let backing = s.path("backing");
    (s, backing)
}

/// `tresor ARGS -i steward.id --passfile pass`.
fn as_steward(s: &Scratch, args: &[&str]) -> Command {
    s.tresor_as("steward", args)
}

fn member_list(s: &Scratch, backing: &Path) -> Command {
    let mut cmd = s.tresor();
    cmd.arg("member").arg("list").arg(backing);
    cmd
}

// ---- the volume file ---------------------------------------------------------

#[test]
fn member_add_as_root_writes_nothing_through_a_symlink_planted_at_a_temporary_name() {
    let (s, backing) = volume("tmp-symlink");
    let alice = s.identity("alice");
    let victim = s.path("victim");
    fs::write(&victim, b"a file outside the volume").unwrap();
    // The registry's temporary name was `tresor.tmp.volume.<pid>`: plant a
    // symlink to the victim for each of the next few thousand pids.
    let last: u32 = fs::read_to_string("/proc/sys/kernel/ns_last_pid").unwrap().trim().parse().unwrap();
    for pid in last + 1..last + 3000 {
        tamper::plant_symlink(&backing.join(format!("tresor.tmp.volume.{pid}")), &victim);
    }
    run_ok(&mut as_steward(&s, &["member", "add", backing.to_str().unwrap(), &alice, "--name", "alice"]));

    assert_eq!(fs::read(&victim).unwrap(), b"a file outside the volume", "the victim outside was overwritten");
    let meta = fs::symlink_metadata(backing.join("tresor.volume")).unwrap();
    assert!(meta.file_type().is_file(), "tresor.volume is no longer a regular file: {:?}", meta.file_type());
    let listed = run_ok(&mut member_list(&s, &backing));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("alice"), "alice was not added");
}

#[test]
fn a_fifo_planted_as_the_volume_file_is_refused_promptly_by_member_list_and_mount() {
    let (s, backing) = volume("fifo-volume");
    tamper::plant_fifo(&backing.join("tresor.volume"));

    let out = run_within(PROMPT, &mut member_list(&s, &backing));
    assert!(!out.status.success());
    assert!(stderr(&out).contains("FIFO"), "member list: no clear message: {}", stderr(&out));

    if !is_root() {
        return;
    }
    let out = run_within(PROMPT, &mut s.mount_cmd("backing", "mnt", "steward"));
    assert!(!out.status.success(), "a mount of a volume whose volume file is a FIFO succeeded");
    assert!(stderr(&out).contains("FIFO"), "mount: no clear message: {}", stderr(&out));
}

#[test]
fn a_sparse_gigabyte_volume_file_is_refused_without_reading_it() {
    let (s, backing) = volume("huge-volume");
    tamper::cut(&backing.join("tresor.volume"), 1 << 30);
    // Half a gigabyte of address space: reading the file whole cannot fit.
    let mut cmd = Command::new("prlimit");
    cmd.arg(format!("--as={}", 512u64 << 20)).arg("--").arg(env!("CARGO_BIN_EXE_tresor"));
    cmd.env("TRESOR_DIR", s.path("config")).args(["member", "list"]).arg(&backing);
    let out = run_within(PROMPT, &mut cmd);
    assert_eq!(out.status.code(), Some(1), "not a clean refusal: {:?}\n{}", out.status, stderr(&out));
    assert!(stderr(&out).contains("larger than"), "no clear message: {}", stderr(&out));
}

// ---- metadata the mount reads ------------------------------------------------

/// A mounted volume with directories `a` (files `f` and a long-named one)
/// and `b` (file `g`); returns the backing entries of `a`, its long name,
/// and `b/g`'s content.
struct Tree {
    s: Scratch,
    mnt: PathBuf,
    a: PathBuf,
    long: String,
}

fn tree(name: &str) -> Tree {
    let (s, backing) = volume(name);
    let m = s.mount("backing", "mnt", "steward", &[]);
    let mnt = m.path.clone();
    std::mem::forget(m); // unmounted by the Scratch's drop
    let a = tamper::backing_of(&backing, || fs::create_dir(mnt.join("a")).unwrap());
    fs::write(mnt.join("a/f"), b"in a").unwrap();
    let long = "l".repeat(200);
    fs::write(mnt.join("a").join(&long), b"long").unwrap();
    fs::create_dir(mnt.join("b")).unwrap();
    fs::write(mnt.join("b/g"), b"unrelated").unwrap();
    Tree { s, mnt, a, long }
}

#[test]
fn a_fifo_planted_as_a_directory_iv_is_eio_at_once_and_other_directories_stay_readable() {
    if !is_root() {
        return;
    }
    let t = tree("fifo-diriv");
    tamper::plant_fifo(&t.a.join("tresor.diriv"));
    // More lookups than the mount has spare workers: none may get stuck.
    for i in 0..6 {
        let p = t.mnt.join(format!("a/new{i}"));
        let err = promptly(&t.s.dir, "lookup below a FIFO IV", move || fs::metadata(p).unwrap_err());
        assert_eq!(err.raw_os_error(), Some(libc::EIO), "lookup {i}: {err}");
    }
    let g = t.mnt.join("b/g");
    assert_eq!(promptly(&t.s.dir, "reading b/g", move || fs::read(g).unwrap()), b"unrelated");
    drop(t.s);
}

#[test]
fn a_fifo_planted_as_a_long_name_sidecar_is_skipped_at_once_and_other_files_stay_readable() {
    if !is_root() {
        return;
    }
    let t = tree("fifo-sidecar");
    let sidecar = fs::read_dir(&t.a)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".name"))
        .expect("the long name's sidecar");
    tamper::plant_fifo(&sidecar);
    for _ in 0..6 {
        let a = t.mnt.join("a");
        let names: Vec<String> = promptly(&t.s.dir, "listing a", move || {
            fs::read_dir(a).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
        });
        assert_eq!(names, ["f"], "the entry whose sidecar is a FIFO is not skipped (long name {})", t.long.len());
    }
    let (f, g) = (t.mnt.join("a/f"), t.mnt.join("b/g"));
    assert_eq!(promptly(&t.s.dir, "reading a/f", move || fs::read(f).unwrap()), b"in a");
    assert_eq!(promptly(&t.s.dir, "reading b/g", move || fs::read(g).unwrap()), b"unrelated");
    drop(t.s);
}

// ---- hard links to the outside -----------------------------------------------

fn set_xattr(p: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let (p, n) = (CString::new(p.as_os_str().as_bytes()).unwrap(), CString::new(name).unwrap());
    // SAFETY: NUL-terminated strings and a buffer valid for its length.
    let r = unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn xattr_names(p: &Path) -> Vec<u8> {
    let p = CString::new(p.as_os_str().as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 0, "{}", std::io::Error::last_os_error());
    buf.truncate(n as usize);
    buf
}

#[test]
fn chmod_chown_utimens_and_setxattr_through_a_planted_hard_link_leave_the_outside_file_alone() {
    if !is_root() {
        return;
    }
    let (s, backing) = volume("hardlink-out");
    let f = {
        let m = s.mount("backing", "mnt", "steward", &[]);
        tamper::backing_of(&backing, || fs::write(m.path.join("f"), b"inside").unwrap())
    };
    // A file of someone else's outside the volume, on the same file system.
    let outside = s.path("outside");
    fs::write(&outside, b"not the volume's").unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o600)).unwrap();
    let before = fs::metadata(&outside).unwrap();
    tamper::plant_hardlink(&outside, &f);

    // A fresh mount: the kernel looks the name up anew and finds the link.
    let m = s.mount("backing", "mnt2", "steward", &[]);
    let p = m.path.join("f");
    let eio = |what: &str, r: std::io::Result<()>| {
        let e = r.expect_err(&format!("{what} through the mount reached the outside file"));
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{what}: {e}");
    };
    eio("chmod", fs::set_permissions(&p, fs::Permissions::from_mode(0o666)));
    eio("chown", std::os::unix::fs::chown(&p, Some(4321), Some(4321)));
    let touched = Command::new("touch").args(["-c", "-m", "-d", "@1000"]).arg(&p).output().unwrap();
    assert!(!touched.status.success(), "utimens through the mount succeeded");
    assert!(stderr(&touched).contains("Input/output error"), "utimens: {}", stderr(&touched));
    eio("setxattr", set_xattr(&p, "user.planted", b"x"));

    let after = fs::metadata(&outside).unwrap();
    assert_eq!(after.mode(), before.mode(), "mode changed");
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()), "owner changed");
    assert_eq!(after.mtime(), before.mtime(), "mtime changed");
    assert!(xattr_names(&outside).is_empty(), "an attribute was set on the outside file");
    assert_eq!(fs::read(&outside).unwrap(), b"not the volume's");
}
