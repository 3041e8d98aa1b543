//! The `tresor` command end to end: identities, volumes, mounting, and the
//! clear refusals a user gets for bad input.

mod common;

use std::{fs, os::unix::fs::symlink};

use common::{is_mountpoint, run_ok, Scratch};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_identity_is_created_sealed_and_shown_without_its_passphrase() {
    let s = Scratch::new("id");
    let public = s.identity("alice");
    assert!(public.starts_with("tresor1"), "{public}");
    let out = run_ok(s.tresor().args(["id", "show", "-i"]).arg(s.path("alice.id")));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), public);
    let mode = fs::metadata(s.path("alice.id")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o600);
}

#[test]
fn a_volume_mounts_shows_plaintext_and_stores_ciphertext() {
    let s = Scratch::new("mount");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    {
        let m = s.mount("backing", "mnt", "alice", &[]);
        fs::write(m.path.join("cohort.csv"), b"patient,outcome\n1,ok\n").unwrap();
        fs::create_dir(m.path.join("results")).unwrap();
        assert_eq!(fs::read(m.path.join("cohort.csv")).unwrap(), b"patient,outcome\n1,ok\n");
        let mut names: Vec<_> =
            fs::read_dir(&m.path).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["cohort.csv", "results"]);
    }
    // Nothing in the backing directory shows a name or the content.
    for entry in fs::read_dir(s.path("backing")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        assert!(!name.contains("cohort") && !name.contains("results"), "{name}");
        if entry.file_type().unwrap().is_file() {
            let bytes = fs::read(entry.path()).unwrap();
            assert!(!bytes.windows(7).any(|w| w == b"patient"), "plaintext in {name}");
        }
    }
    // Mounted again, the data is still there.
    let m = s.mount("backing", "mnt", "alice", &[]);
    assert_eq!(fs::read(m.path.join("cohort.csv")).unwrap(), b"patient,outcome\n1,ok\n");
}

#[test]
fn a_wrong_passphrase_is_refused_and_nothing_is_mounted() {
    let s = Scratch::new("wrongpass");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    fs::write(s.path("bad"), "not it\n").unwrap();
    fs::create_dir_all(s.path("mnt")).unwrap();
    let out = s
        .tresor()
        .arg("mount")
        .arg(s.path("backing"))
        .arg(s.path("mnt"))
        .arg("-i")
        .arg(s.path("alice.id"))
        .arg("--passfile")
        .arg(s.path("bad"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("wrong passphrase"), "{}", stderr(&out));
    assert!(!is_mountpoint(&s.path("mnt")));
}

#[test]
fn mounting_something_that_is_not_a_volume_says_so() {
    let s = Scratch::new("notvol");
    s.identity("alice");
    fs::create_dir_all(s.path("plain")).unwrap();
    let out = s.mount_cmd("plain", "mnt", "alice").output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).to_lowercase().contains("not a tresor volume"), "{}", stderr(&out));
    assert!(!is_mountpoint(&s.path("mnt")));
}

#[test]
fn a_non_member_cannot_mount_and_a_busy_mountpoint_is_refused() {
    let s = Scratch::new("refusals");
    s.identity("alice");
    s.identity("mallory");
    s.init("backing", "alice", &[]);
    let out = s.mount_cmd("backing", "mnt", "mallory").output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a member"), "{}", stderr(&out));

    let _m = s.mount("backing", "mnt", "alice", &[]);
    let out = s.mount_cmd("backing", "mnt", "alice").output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("busy") || stderr(&out).contains("already"), "{}", stderr(&out));
}

#[test]
fn a_registry_signed_by_another_steward_than_the_pinned_one_is_refused() {
    let s = Scratch::new("pin");
    s.identity("alice");
    s.identity("eve");
    s.init("backing", "alice", &[]);
    s.init("evil", "eve", &[]);
    // eve swaps in her own volume file: same path, her signature.
    fs::copy(s.path("evil/tresor.volume"), s.path("backing/tresor.volume")).unwrap();
    let out = s.mount_cmd("backing", "mnt", "alice").output().unwrap();
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(!is_mountpoint(&s.path("mnt")));
}

#[test]
fn init_refuses_a_directory_that_is_not_empty() {
    let s = Scratch::new("init");
    s.identity("alice");
    fs::create_dir_all(s.path("full")).unwrap();
    fs::write(s.path("full/data.csv"), "x").unwrap();
    let out = s
        .tresor()
        .arg("init")
        .arg(s.path("full"))
        .arg("--steward")
        .arg(s.path("alice.id"))
        .arg("--passfile")
        .arg(s.path("pass"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not empty"));
    assert!(!s.path("full/tresor.volume").exists());
}

#[test]
fn mount_helper_takes_fstab_style_options() {
    let s = Scratch::new("helper");
    s.identity("alice");
    s.init("backing", "alice", &[]);
    fs::create_dir_all(s.path("mnt")).unwrap();
    let helper = s.path("mount.fuse.tresor");
    symlink(env!("CARGO_BIN_EXE_tresor"), &helper).unwrap();
    let opts = format!(
        "rw,noatime,nodev,nosuid,identity={},passfile={}",
        s.path("alice.id").display(),
        s.path("pass").display()
    );
    let out = std::process::Command::new(&helper)
        .env("TRESOR_DIR", s.path("config"))
        .arg(s.path("backing"))
        .arg(s.path("mnt"))
        .args(["-o", &opts])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let _m = common::Mounted { path: s.path("mnt") };
    assert!(is_mountpoint(&s.path("mnt")));
    fs::write(s.path("mnt/x"), b"y").unwrap();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = mounts.lines().find(|l| l.contains(s.path("mnt").to_str().unwrap())).unwrap();
    assert!(line.contains("noatime") && line.contains("nodev") && line.contains("nosuid"), "{line}");
}
