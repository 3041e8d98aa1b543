//! Permission checks and set-id bits through real mounts.
//!
//! A private mount (no `allow_other`) leaves permission checks to the
//! backing file system: the kernel lets only the mounting user in, the
//! daemon runs with that user's credentials, and `default_permissions` is
//! off (it costs a GETATTR round trip per path component on every lookup,
//! stat, create and unlink). These tests show that modes still hold, for an
//! unprivileged user who mounts with fusermount3 as researchers do.
//!
//! The daemon clears set-user-ID and set-group-ID bits on writes and
//! truncates itself (FUSE_HANDLE_KILLPRIV_V2, which spares a round trip per
//! write), exactly when the kernel would.
//!
//! They need root (to hand the volume to the `tests` user, which `.ci/run`
//! creates) and a /dev/fuse that every user may open, as distributions
//! ship it. Outside CI a machine without them skips with a notice.

mod common;

use std::{fs, os::unix::fs::PermissionsExt, process::Command};

use common::{run_ok, Scratch};

fn missing(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what}: CI must provide it (see .ci/run)");
    }
    eprintln!("skipping: {what}");
}

/// Root, to hand volumes to the `tests` user, and that user; a notice (or,
/// in CI, a failure) otherwise.
fn root_and_tests_user() -> bool {
    if unsafe { libc::geteuid() } != 0 {
        missing("needs root");
        return false;
    }
    if !Command::new("id").arg("tests").output().map(|o| o.status.success()).unwrap_or(false) {
        missing("user \"tests\" does not exist (useradd -U tests)");
        return false;
    }
    true
}

fn as_user(user: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", user, "--regid", user, "--init-groups"]);
    cmd
}

fn mount_options(mnt: &std::path::Path) -> String {
    let mnt = mnt.canonicalize().unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(mnt.to_str().unwrap()))
        .unwrap_or_else(|| panic!("{} is not mounted", mnt.display()))
        .to_owned()
}

#[test]
fn an_unprivileged_users_private_mount_keeps_modes_without_default_permissions() {
    if !root_and_tests_user() {
        return;
    }
    if fs::metadata("/dev/fuse").map(|m| m.permissions().mode() & 0o006 != 0o006).unwrap_or(true) {
        return missing("/dev/fuse is not usable by every user (chmod 0666 /dev/fuse)");
    }
    let s = Scratch::short("private");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    fs::create_dir(s.path("mnt")).unwrap();
    fs::set_permissions(&s.dir, fs::Permissions::from_mode(0o755)).unwrap();
    run_ok(Command::new("chown").args(["-R", "tests:tests"]).arg(&s.dir));

    let mut mount = as_user("tests");
    mount.args(["env", "HOME=/nonexistent"]).arg(format!("TRESOR_DIR={}", s.path("config").display()));
    mount.arg(env!("CARGO_BIN_EXE_tresor")).arg("mount").arg(s.path("backing")).arg(s.path("mnt"));
    mount.arg("-i").arg(s.path("alice.id")).arg("--passfile").arg(s.path("pass"));
    run_ok(&mut mount);
    let _mounted = common::Mounted { path: s.path("mnt") };
    let info = mount_options(&s.path("mnt"));
    assert!(!info.contains("default_permissions"), "a private mount leaves checks to the backing file system: {info}");

    // Every check below is made by the backing file system, as the user.
    let script = r#"
        cd "$1" || exit 1
        check() { if eval "$2" 2>/dev/null; then echo "$1: allowed"; else echo "$1: refused"; fi; }
        echo hi > f && chmod 0444 f
        check "append to 0444" 'echo x >> f'
        check "access W_OK 0444" 'test -w f'
        check "access R_OK 0444" 'test -r f'
        check "access X_OK 0444" 'test -x f'
        mkdir d && chmod 0555 d
        check "create in 0555 dir" 'touch d/x'
        check "access W_OK 0555 dir" 'test -w d'
        check "access X_OK 0555 dir" 'test -x d'
        chmod 0644 f
        check "append to 0644" 'echo x >> f'
        check "read 0644" 'test "$(cat f)" = "$(printf "hi\nx")"'
        chmod 0000 f
        check "read 0000" 'cat f'
        check "chown to root" 'chown 0 f'
        check "touch 0000" 'touch -c f'
        check "chmod back from 0000" 'chmod 0644 f && cat f >/dev/null'
    "#;
    let out = as_user("tests").args(["sh", "-c", script, "sh"]).arg(s.path("mnt")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "append to 0444: refused",
            "access W_OK 0444: refused",
            "access R_OK 0444: allowed",
            "access X_OK 0444: refused",
            "create in 0555 dir: refused",
            "access W_OK 0555 dir: refused",
            "access X_OK 0555 dir: allowed",
            "append to 0644: allowed",
            "read 0644: allowed",
            "read 0000: refused",
            "chown to root: refused",
            // The owner changes an unreadable file's metadata (the daemon
            // cannot read its header: it is held by O_PATH, fs/checked.rs).
            "touch 0000: allowed",
            "chmod back from 0000: allowed",
        ],
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Nobody else reaches a private mount, root included.
    let err = fs::read_dir(s.path("mnt")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "root on another user's private mount");
}

#[test]
fn writes_and_truncates_by_other_users_clear_set_id_bits_as_the_kernel_would() {
    if !root_and_tests_user() {
        return;
    }
    let s = Scratch::short("setid");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    fs::set_permissions(&s.dir, fs::Permissions::from_mode(0o755)).unwrap();
    let m = s.mount("backing", "mnt", "alice", &["allow_other"]);
    let dir = m.path.join("shared");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let script = r#"
        cd "$1" || exit 1
        step() { eval "$2" && echo "$1: $(stat -c %a f)"; }
        step "created" 'echo a > f && chmod 6755 f'
        step "write" 'echo b >> f'
        step "chmod" 'chmod 6755 f'
        step "truncate" 'truncate -s 1 f'
        step "chmod" 'chmod 6755 f'
        step "open O_TRUNC" ': > f'
        step "chmod, no group exec" 'chmod 6745 f'
        step "write" 'echo c >> f'
        step "chmod" 'chmod 6755 f'
        step "read" 'cat f >/dev/null'
    "#;
    let out = as_user("tests").args(["sh", "-c", script, "sh"]).arg(&dir).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().collect::<Vec<_>>(),
        [
            "created: 6755",
            "write: 755",
            "chmod: 6755",
            "truncate: 755",
            "chmod: 6755",
            "open O_TRUNC: 755",
            "chmod, no group exec: 6745",
            "write: 2745",
            "chmod: 6755",
            "read: 6755",
        ],
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Root (CAP_FSETID) writes without clearing them.
    let f = dir.join("f");
    fs::OpenOptions::new().append(true).open(&f).unwrap();
    use std::io::Write;
    fs::OpenOptions::new().append(true).open(&f).unwrap().write_all(b"root\n").unwrap();
    assert_eq!(fs::metadata(&f).unwrap().permissions().mode() & 0o7777, 0o6755);
}

#[test]
fn a_mount_that_others_may_use_has_the_kernel_check_modes() {
    if unsafe { libc::geteuid() } != 0 {
        return missing("needs root");
    }
    let s = Scratch::new("shared-perm");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    let m = s.mount("backing", "mnt", "alice", &["allow_other"]);
    assert!(mount_options(&m.path).contains("default_permissions"));
    drop(m);
    let m = s.mount("backing", "mnt", "alice", &[]);
    assert!(!mount_options(&m.path).contains("default_permissions"));
}
