//! The POSIX conformance suite (Rust pjdfstest, `cargo install pjdfstest`)
//! run against a real mount, with `-o allow_other` so that its
//! user-switching tests reach the filesystem, every opt-in feature Linux
//! has, and remounts (read-only and back, through mount(8) and the
//! `mount.fuse.tresor` helper). Zero failures expected.
//!
//! It needs root, the `tests` and `nobody` users, and the pjdfstest binary
//! (`.ci/run` provides all three). Outside CI, a machine without them skips
//! this test with a notice; in CI (`CI` set) their absence is a failure.

mod common;

use std::{fs, path::PathBuf, process::Command};

use common::Scratch;

fn pjdfstest_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PJDFSTEST") {
        return Some(p.into());
    }
    let home_bin = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/pjdfstest"));
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("pjdfstest"))
        .chain(home_bin)
        .find(|p| p.is_file())
}

fn missing(what: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{what}: CI must provide it (see .ci/run)");
    }
    eprintln!("skipping pjdfstest: {what}");
}

#[test]
fn pjdfstest_passes_on_a_tresor_mount() {
    let Some(binary) = pjdfstest_binary() else {
        return missing("pjdfstest is not installed (cargo install pjdfstest)");
    };
    if unsafe { libc::geteuid() } != 0 {
        return missing("pjdfstest needs root");
    }
    for user in ["tests", "nobody"] {
        let known = Command::new("id").arg(user).output().map(|o| o.status.success()).unwrap_or(false);
        if !known {
            return missing(&format!("user {user:?} does not exist (useradd -U {user})"));
        }
    }
    let s = Scratch::short("pjd");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    let m = s.mount("backing", "mnt", "alice", &["allow_other"]);
    // The suite's own scratch dir inside the mount, reachable by other users.
    let work = m.path.join("pjdfstest");
    fs::create_dir(&work).unwrap();
    fs::set_permissions(&work, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    // Every opt-in feature Linux has (chflags, NFSv4 ACLs and birth times
    // are BSD's).
    let features = "posix_fallocate = {}\nrename_ctime = {}\nutimensat = {}\nutime_now = {}\n";
    let config = |remount: bool| {
        let path = s.path(&format!("pjdfstest-remount-{remount}.toml"));
        let users = "[dummy_auth]\nentries = [[\"nobody\", \"nogroup\"], [\"tests\", \"tests\"]]\n";
        let settings = format!("[settings]\nnaptime = 0.05\nallow_remount = {remount}\n");
        fs::write(&path, format!("[features]\n{features}\n{settings}\n{users}")).unwrap();
        path
    };
    let all = Command::new(&binary).arg("-c").arg(config(false)).arg("-v").arg("-p").arg(&work).output();
    check(all.expect("run pjdfstest"));
    // The EROFS cases remount the volume read-only and back with
    // `mount -o remount,ro|rw`, which runs mount.fuse.tresor from /sbin:
    // they run on their own (pjdfstest 0.2.2 leaves a descriptor open for
    // writing after its posix_fallocate cases, so a read-only remount after
    // them is EBUSY on any file system, tmpfs too), in a private mount
    // namespace whose /sbin (/usr/sbin) holds that helper.
    let script = r#"set -e
        mount -t tmpfs tresor-test-sbin /usr/sbin
        ln -s "$TRESOR" /usr/sbin/mount.fuse.tresor
        exec "$PJDFSTEST" -c "$CONFIG" -v -p "$WORK" erofs"#;
    let erofs = Command::new("unshare")
        .args(["-m", "sh", "-c", script])
        .env("TRESOR", env!("CARGO_BIN_EXE_tresor"))
        .env("PJDFSTEST", &binary)
        .env("CONFIG", config(true))
        .env("WORK", &work)
        .output();
    let erofs = erofs.expect("run pjdfstest");
    assert!(String::from_utf8_lossy(&erofs.stdout).contains("13 passed"), "the EROFS cases ran");
    check(erofs);
}

/// Asserts that a pjdfstest run passed, showing each failure with the
/// lines that explain it.
fn check(out: std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Each failure with the lines that explain it.
    let lines: Vec<&str> = stdout.lines().collect();
    let failures: Vec<String> = (0..lines.len())
        .filter(|&i| lines[i].contains("FAILED"))
        .map(|i| lines[i..(i + 4).min(lines.len())].join("\n"))
        .collect();
    let summary = stdout.lines().rev().take(5).collect::<Vec<_>>().join("\n");
    println!("pjdfstest summary:\n{summary}");
    assert!(
        out.status.success() && failures.is_empty(),
        "pjdfstest reported {} failures:\n{}\n\nstderr:\n{}\n\nlast lines:\n{summary}",
        failures.len(),
        failures.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
}
