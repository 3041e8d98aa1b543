//! The storage operator against the format: attacks made only on the
//! backing files (with the `tresor-tamper` toolkit), against real mounts
//! and the real `tresor` binary. Each case is a class from the hardening
//! work (THREAT-MODEL.md §3): rolled-back registries, directory IVs moved
//! to carry a policy, damage passed off as a short file, planted special
//! files; and `tresor migrate`, which brings older volumes to the format
//! that defends against them.

mod common;

use std::{
    fs,
    os::unix::fs::FileTypeExt,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use common::{run_ok, Scratch, PASS};
use rand_core::OsRng;
use tresor_format::{place::parse_diriv, DirIv, EncryptedName, Identity, KdfParams, NameCipher, NameKey, Volume};
use tresor_tamper as tamper;

const HEADER: u64 = 4096;
const TRAILER: u64 = 28;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn eio(r: std::io::Result<impl std::fmt::Debug>) -> bool {
    match r {
        Err(e) => e.raw_os_error() == Some(libc::EIO),
        Ok(v) => panic!("expected EIO, got {v:?}"),
    }
}

/// A volume with steward, alice and bob.
struct Project {
    s: Scratch,
}

impl Project {
    fn new(name: &str) -> Project {
        let s = Scratch::new(name);
        s.identity("steward");
        s.init("backing", "steward", &[]);
        let p = Project { s };
        for who in ["alice", "bob"] {
            let public = p.s.identity(who);
            p.ok(&["member", "add", p.backing().to_str().unwrap(), &public, "--name", who]);
        }
        p
    }

    fn backing(&self) -> PathBuf {
        self.s.path("backing")
    }

    fn cmd_as(&self, who: &str, args: &[&str]) -> Command {
        self.s.tresor_as(who, args)
    }

    fn ok(&self, args: &[&str]) -> Output {
        run_ok(&mut self.cmd_as("steward", args))
    }

    fn name_key(&self) -> NameKey {
        let steward = Identity::unseal(&fs::read(self.s.path("steward.id")).unwrap(), PASS.as_bytes()).unwrap();
        self.volume().name_key(&steward).unwrap()
    }

    fn volume(&self) -> Volume {
        Volume::open_self_signed(&fs::read(self.backing().join("tresor.volume")).unwrap()).unwrap()
    }

    /// The backing path of plaintext `path` (relative to the volume root).
    fn backing_path(&self, path: &str) -> PathBuf {
        let names = NameCipher::new(&self.name_key());
        let mut dir = self.backing();
        for part in path.split('/') {
            let iv = parse_diriv(&fs::read(dir.join("tresor.diriv")).unwrap()).unwrap();
            dir = match names.encrypt_name(&iv, part.as_bytes()).unwrap() {
                EncryptedName::Short(e) => dir.join(e),
                EncryptedName::Long { entry, .. } => dir.join(entry),
            };
        }
        dir
    }

    /// `tresor mount` as `who` with its own state directory `node` (a
    /// compute node of its own): the command's output, mounted or not.
    fn mount_on(&self, node: &str, who: &str, mnt: &str, opts: &[&str]) -> Output {
        let mut cmd = self.s.mount_cmd("backing", mnt, who);
        cmd.env("TRESOR_DIR", self.s.path(node));
        for o in opts {
            cmd.args(["-o", o]);
        }
        cmd.output().unwrap()
    }
}

// ---- registry rollback ----------------------------------------------------------------

#[test]
fn a_node_refuses_a_registry_older_than_it_has_seen_even_after_a_restart() {
    let p = Project::new("rollback-restart");
    let old = tamper::save(&p.backing().join("tresor.volume")); // bob is a member
    p.ok(&["member", "remove", p.backing().to_str().unwrap(), "bob"]);

    // A node mounts the current registry once, then unmounts.
    let out = p.mount_on("node2", "steward", "mnt", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    common::unmount(&p.s.path("mnt"));

    // The storage puts the old registry back; the node restarts its mount.
    old.restore();
    let out = p.mount_on("node2", "steward", "mnt", &[]);
    assert!(!out.status.success(), "the node mounted a registry older than one it had accepted");
    assert!(stderr(&out).contains("rolled back"), "{}", stderr(&out));
    assert!(!common::is_mountpoint(&p.s.path("mnt")));
}

#[test]
fn a_fresh_node_refuses_an_expired_registry_and_min_generation_raises_its_floor() {
    let p = Project::new("rollback-expiry");
    // An old copy of the registry: signed two days ago, valid for one.
    let steward = Identity::unseal(&fs::read(p.s.path("steward.id")).unwrap(), PASS.as_bytes()).unwrap();
    let mut v = p.volume();
    v.set_validity(86_400).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    v.sign_at(&steward, now - 2 * 86_400).unwrap();
    tamper::overwrite(&p.backing().join("tresor.volume"), 0, &v.to_bytes());
    tamper::cut(&p.backing().join("tresor.volume"), v.to_bytes().len() as u64);

    let out = p.mount_on("fresh", "alice", "mnt", &[]);
    assert!(!out.status.success(), "a node with no state mounted an expired registry");
    assert!(stderr(&out).contains("expired"), "{}", stderr(&out));
    let out =
        p.s.tresor().args(["member", "list"]).arg(p.backing()).env("TRESOR_DIR", p.s.path("fresh2")).output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("expired"), "{}", stderr(&out));

    // A steward renews it; then it mounts, unless the node was told to
    // expect a newer generation than it is.
    p.ok(&["member", "renew", p.backing().to_str().unwrap(), "--valid-days", "30"]);
    let renewed = p.volume();
    assert!(renewed.expires_at > now + 29 * 86_400 && renewed.generation > v.generation);
    let floor = format!("min_generation={}", renewed.generation + 1);
    let out = p.mount_on("fresh3", "alice", "mnt", &[&floor]);
    assert!(!out.status.success() && stderr(&out).contains("rolled back"), "{}", stderr(&out));
    let out = p.mount_on("fresh3", "alice", "mnt", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
}

// ---- directory IVs bound to their place --------------------------------------------------

#[test]
fn a_directory_iv_copied_elsewhere_does_not_carry_its_policy() {
    let p = Project::new("diriv-copy");
    let a = p.s.mount("backing", "mnt-alice", "alice", &[]);
    fs::create_dir(a.path.join("reviewed")).unwrap();
    fs::create_dir(a.path.join("private")).unwrap();
    p.ok(&["policy", "set", a.path.join("reviewed").to_str().unwrap(), "--default", "bob"]);
    std::thread::sleep(std::time::Duration::from_millis(1100)); // mounts reload the registry once a second

    // The storage gives "private" the IV (and so the policy) of "reviewed".
    let reviewed = p.backing_path("reviewed");
    let private = p.backing_path("private");
    tamper::copy_over(&reviewed.join("tresor.diriv"), &private.join("tresor.diriv"));
    assert!(eio(fs::write(a.path.join("private/notes.txt"), b"for alice only")), "created under a moved policy");
    assert!(!private.read_dir().unwrap().any(|e| !e.unwrap().file_name().to_string_lossy().starts_with("tresor.")));
}

#[test]
fn renaming_a_directory_through_the_mount_keeps_its_policy_and_its_iv_valid() {
    let p = Project::new("diriv-rename");
    let a = p.s.mount("backing", "mnt-alice", "alice", &[]);
    fs::create_dir_all(a.path.join("reviewed/deep")).unwrap();
    p.ok(&["policy", "set", a.path.join("reviewed").to_str().unwrap(), "--default", "bob"]);
    std::thread::sleep(std::time::Duration::from_millis(1100)); // mounts reload the registry once a second
    fs::create_dir(a.path.join("elsewhere")).unwrap();
    fs::rename(a.path.join("reviewed"), a.path.join("elsewhere/renamed")).unwrap();
    // One tag again once the rename is done.
    assert_eq!(fs::metadata(p.backing_path("elsewhere/renamed").join("tresor.diriv")).unwrap().len(), 48);
    fs::write(a.path.join("elsewhere/renamed/deep/table.csv"), b"for review").unwrap();
    drop(a);
    // Fresh mounts (no cached IVs) verify the moved directory at its new place.
    let a = p.s.mount("backing", "mnt-alice2", "alice", &[]);
    let b = p.s.mount("backing", "mnt-bob", "bob", &[]);
    assert_eq!(fs::read(b.path.join("elsewhere/renamed/deep/table.csv")).unwrap(), b"for review");
    fs::write(a.path.join("elsewhere/renamed/new.csv"), b"also").unwrap();
    assert_eq!(fs::read(b.path.join("elsewhere/renamed/new.csv")).unwrap(), b"also");
}

#[test]
fn a_directory_moved_or_swapped_in_the_backing_tree_is_refused() {
    let p = Project::new("diriv-move");
    let a = p.s.mount("backing", "mnt", "alice", &[]);
    for d in ["one", "two"] {
        fs::create_dir(a.path.join(d)).unwrap();
        fs::write(a.path.join(d).join("f"), d).unwrap();
    }
    tamper::swap(&p.backing_path("one"), &p.backing_path("two"));
    for d in ["one", "two"] {
        assert!(eio(fs::read_dir(a.path.join(d)).map(|_| ())), "{d}: a swapped directory was listed");
        assert!(eio(fs::read(a.path.join(d).join("f"))), "{d}: a file in a swapped directory was read");
    }
}

// ---- sizes believed only after the length and the trailer ---------------------------------

#[test]
fn damage_that_would_read_as_a_short_or_empty_file_fails_at_open() {
    let p = Project::new("cut");
    let a = p.s.mount("backing", "mnt", "alice", &[]);
    for name in ["cut-in-block", "cut-to-empty", "empty"] {
        fs::write(a.path.join(name), if name == "empty" { &b""[..] } else { &[7u8; 100][..] }).unwrap();
    }
    // Cut inside the first block: the length is no file's length.
    tamper::cut(&p.backing_path("cut-in-block"), HEADER + 10);
    // Cut to exactly an empty file's length: the "trailer" is block bytes.
    tamper::cut(&p.backing_path("cut-to-empty"), HEADER + TRAILER);
    // An empty file whose trailer was changed.
    tamper::flip_bit(&p.backing_path("empty"), HEADER + 20, 3);
    for name in ["cut-in-block", "cut-to-empty", "empty"] {
        assert!(eio(fs::read(a.path.join(name))), "{name}: damage read as a valid file");
        assert!(eio(fs::File::open(a.path.join(name))), "{name}: opened");
    }
    // The damaged files can still be listed and removed.
    assert_eq!(fs::read_dir(&a.path).unwrap().count(), 3);
    fs::remove_file(a.path.join("cut-in-block")).unwrap();
}

// ---- special files -------------------------------------------------------------------------

#[test]
fn special_files_are_records_and_planted_ones_are_refused() {
    let p = Project::new("nodes");
    let a = p.s.mount("backing", "mnt", "alice", &[]);
    run_ok(Command::new("mkfifo").arg(a.path.join("pipe")));
    assert!(fs::symlink_metadata(a.path.join("pipe")).unwrap().file_type().is_fifo());
    // In the backing tree it is a small regular file, not a FIFO.
    let record = p.backing_path("pipe");
    assert!(fs::symlink_metadata(&record).unwrap().is_file());

    // The storage puts a FIFO and a device where regular files were.
    for name in ["data", "more"] {
        fs::write(a.path.join(name), b"plain").unwrap();
    }
    tamper::plant_fifo(&p.backing_path("data"));
    tamper::plant_device(&p.backing_path("more"));
    assert!(eio(fs::symlink_metadata(a.path.join("data"))), "a planted FIFO was shown");
    assert!(eio(fs::symlink_metadata(a.path.join("more"))), "a planted device was shown");
    let listed: Vec<_> = fs::read_dir(&a.path).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(listed, vec![std::ffi::OsString::from("pipe")], "planted special files are not listed");

    // A forged record (any change to a genuine one) is refused.
    tamper::flip_bit(&record, 10, 0);
    assert!(eio(fs::symlink_metadata(a.path.join("pipe"))));
}

// ---- migration -------------------------------------------------------------------------------

#[test]
fn tresor_migrate_brings_a_version_2_volume_to_the_current_format() {
    let s = Scratch::new("migrate");
    let vector: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors/volume-v2.json")).unwrap(),
    )
    .unwrap();
    let seed = |who: &str| -> [u8; 32] {
        let person = vector["inputs"]["cast"].as_array().unwrap().iter().find(|c| c["name"] == who).unwrap();
        hex32(person["seed"].as_str().unwrap())
    };
    let alice = Identity::from_seed(&seed("alice"), "alice").unwrap();
    let sealed = alice.seal(PASS.as_bytes(), KdfParams::default(), &mut OsRng).unwrap();
    fs::write(s.path("alice.id"), sealed).unwrap();
    let name_key = NameKey::from_bytes(hex32(vector["inputs"]["name_key"].as_str().unwrap()));
    let names = NameCipher::new(&name_key);

    // A version 2 backing tree: plain 16-byte IVs, a directory, a FIFO.
    let backing = s.path("backing");
    fs::create_dir(&backing).unwrap();
    fs::write(backing.join("tresor.volume"), hex(vector["file"].as_str().unwrap())).unwrap();
    let root_iv = DirIv::generate(&mut OsRng);
    fs::write(backing.join("tresor.diriv"), root_iv.0).unwrap();
    let sub = backing.join(names.encrypt_name(&root_iv, b"sub").unwrap().entry());
    fs::create_dir(&sub).unwrap();
    let sub_iv = DirIv::generate(&mut OsRng);
    fs::write(sub.join("tresor.diriv"), sub_iv.0).unwrap();
    tamper::plant_fifo(&sub.join(names.encrypt_name(&sub_iv, b"pipe").unwrap().entry()));

    let as_alice = |args: &[&str]| s.tresor_as("alice", args).output().unwrap();
    let out = s.mount_cmd("backing", "mnt", "alice").output().unwrap();
    assert!(!out.status.success() && stderr(&out).contains("tresor migrate"), "{}", stderr(&out));

    let out = as_alice(&["migrate", backing.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2 directory IVs tagged") && stderr(&out).contains("1 special files"),
        "{}",
        stderr(&out)
    );
    let out = as_alice(&["migrate", backing.to_str().unwrap()]);
    assert!(out.status.success() && stderr(&out).contains("nothing to do"), "{}", stderr(&out));

    let m = s.mount("backing", "mnt", "alice", &[]);
    assert!(fs::symlink_metadata(m.path.join("sub/pipe")).unwrap().file_type().is_fifo());
    fs::write(m.path.join("sub/after.txt"), b"written after the migration").unwrap();
    assert_eq!(fs::read(m.path.join("sub/after.txt")).unwrap(), b"written after the migration");
    fs::create_dir(m.path.join("sub/new")).unwrap();
    let out = s.tresor().args(["member", "list"]).arg(&backing).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("bob"));
    assert_eq!(std::fs::read_dir(m.path.join("sub")).unwrap().count(), 3);
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn hex32(s: &str) -> [u8; 32] {
    hex(s).try_into().unwrap()
}
