//! The member registry from the command line: names are unique, roles
//! change, and every change is signed and audited.

mod common;

use std::{
    fs,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    process::Output,
};

use common::{run_ok, Scratch, PASS};
use tresor_format::{Header, Identity, Volume};
use tresor_tamper as tamper;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn as_steward(s: &Scratch, args: &[&str]) -> Output {
    s.tresor_as("steward", args).output().unwrap()
}

#[test]
fn a_second_member_of_the_same_name_is_refused() {
    let s = Scratch::new("members-names");
    s.identity("steward");
    s.init("backing", "steward", &[]);
    let backing = s.path("backing");
    let backing = backing.to_str().unwrap();
    let first = s.identity("alice");
    let second = s.identity("alice2");
    assert!(as_steward(&s, &["member", "add", backing, &first, "--name", "alice"]).status.success());
    let out = as_steward(&s, &["member", "add", backing, &second, "--name", "alice"]);
    assert!(!out.status.success(), "two members named alice");
    assert!(stderr(&out).contains("already named"), "{}", stderr(&out));
}

#[test]
fn a_steward_changes_a_members_role_and_the_change_is_audited() {
    let s = Scratch::new("members-role");
    s.identity("steward");
    s.init("backing", "steward", &[]);
    let backing = s.path("backing");
    let backing = backing.to_str().unwrap();
    let bob = s.identity("bob");
    assert!(as_steward(&s, &["member", "add", backing, &bob, "--name", "bob"]).status.success());
    let out = as_steward(&s, &["member", "set-role", backing, "bob", "auditor"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list = String::from_utf8_lossy(&run_ok(s.tresor().args(["member", "list", backing])).stdout).into_owned();
    assert!(list.lines().any(|l| l.starts_with("bob") && l.contains("auditor")), "{list}");
    // The last steward cannot demote themselves: a registry keeps one.
    let out = as_steward(&s, &["member", "set-role", backing, "steward", "member"]);
    assert!(!out.status.success(), "the only steward stepped down");
    let out = as_steward(&s, &["audit", "show", "--volume", backing, "--op", "set-role", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("set-role") && shown.contains("auditor"), "{shown}");
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

fn unseal(s: &Scratch, who: &str) -> Identity {
    Identity::unseal(&fs::read(s.path(&format!("{who}.id"))).unwrap(), PASS.as_bytes()).unwrap()
}

fn header_of(backing: &Path, file: &Path) -> Header {
    let volume = Volume::open_self_signed(&fs::read(backing.join("tresor.volume")).unwrap()).unwrap();
    let mut bytes = vec![0u8; volume.params.header_len as usize];
    fs::File::open(file).unwrap().read_exact_at(&mut bytes, 0).unwrap();
    Header::open(&bytes, &volume).unwrap()
}

/// The ids of the readers of `file` (a path in a mount), by `tresor acl --json` as `who`.
fn readers(s: &Scratch, who: &str, file: &Path) -> Vec<String> {
    let out = run_ok(&mut s.tresor_as(who, &["acl", "--json", file.to_str().unwrap()]));
    let rows = json_lines(&out);
    rows[0]["readers"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_new_volume_lets_the_steward_read_what_members_create_so_no_lost_passphrase_loses_a_file() {
    let s = Scratch::new("members-default");
    let steward = s.identity("steward");
    let alice = s.identity("alice");
    // `init -i`, as every steward command takes the identity.
    let out = run_ok(&mut s.tresor_as("steward", &["init", s.path("backing").to_str().unwrap()]));
    assert!(stderr(&out).contains("only steward"), "a single steward is warned of: {}", stderr(&out));
    let backing = s.path("backing");
    let b = backing.to_str().unwrap();
    let out = as_steward(&s, &["member", "add", b, &alice, "--name", "alice"]);
    assert!(stderr(&out).contains("only steward"), "still one steward: {}", stderr(&out));
    {
        let m = s.mount("backing", "mnt", "alice", &[]);
        fs::write(m.path.join("results.csv"), b"alice's results").unwrap();
        let ids = readers(&s, "alice", &m.path.join("results.csv"));
        let steward_id = unseal(&s, "steward").id().to_string();
        assert!(ids.contains(&steward_id), "the steward reads alice's new file: {ids:?}");
    }
    // A second steward: no warning any more.
    let carol = s.identity("carol");
    let out = as_steward(&s, &["member", "add", b, &carol, "--name", "carol", "--role", "steward"]);
    assert!(out.status.success() && !stderr(&out).contains("only steward"), "{}", stderr(&out));
    let _ = steward;

    // Opting out: a new file is its creator's alone.
    let s2 = Scratch::new("members-nodefault");
    s2.identity("steward");
    let alice = s2.identity("alice");
    s2.init("backing", "steward", &["--no-steward-default"]);
    let b2 = s2.path("backing");
    run_ok(&mut s2.tresor_as("steward", &["member", "add", b2.to_str().unwrap(), &alice, "--name", "alice"]));
    let m = s2.mount("backing", "mnt", "alice", &[]);
    fs::write(m.path.join("private"), b"x").unwrap();
    assert_eq!(readers(&s2, "alice", &m.path.join("private")), [unseal(&s2, "alice").id().to_string()]);
}

/// A new volume of `steward`'s with alice as a member: the scratch space
/// and the backing path.
fn volume_with_alice(test: &str) -> (Scratch, PathBuf) {
    let s = Scratch::new(test);
    s.identity("steward");
    let alice = s.identity("alice");
    s.init("backing", "steward", &[]);
    let backing = s.path("backing");
    let b = backing.to_str().unwrap();
    run_ok(&mut s.tresor_as("steward", &["member", "add", b, &alice, "--name", "alice"]));
    (s, backing)
}

#[test]
fn a_replaced_member_reads_with_the_new_key_and_the_old_key_opens_nothing() {
    let (s, backing) = volume_with_alice("members-replace");
    let b = backing.to_str().unwrap();
    let (file, shared) = {
        let m = s.mount("backing", "mnt", "alice", &[]);
        let shared = tamper::backing_of(&backing, || fs::create_dir(m.path.join("shared")).unwrap());
        let file = tamper::backing_of(&backing, || fs::write(m.path.join("notes.txt"), b"alice's notes").unwrap());
        (file, shared)
    };
    let shared = shared.to_str().unwrap();
    run_ok(&mut s.tresor_as("steward", &["policy", "set", shared, "--default", "steward", "alice"]));
    let old = unseal(&s, "alice");
    let new_public = s.identity("alice-new");
    let new = unseal(&s, "alice-new");

    let out = as_steward(&s, &["member", "replace", b, "alice", &new_public]);
    assert!(out.status.success(), "{}", stderr(&out));
    let h = header_of(&backing, &file);
    assert!(h.file_key(&new).is_ok(), "the new key opens alice's file");
    assert!(h.file_key(&old).is_err(), "the old key no longer does");
    assert_eq!(h.writer(), unseal(&s, "steward").id(), "signed by the steward who replaced the key");

    // The registry: the same name and role, the new key; the old one a former member.
    let list = json_lines(&run_ok(s.tresor().args(["member", "list", "--json", b])));
    let now = list.iter().find(|r| r["name"] == "alice" && r["former"] == false).unwrap();
    assert_eq!(now["id"], new.id().to_string());
    assert_eq!(now["role"], "member");
    assert!(list.iter().any(|r| r["id"] == old.id().to_string() && r["former"] == true), "{list:?}");
    // ... and the directory policy that named alice names her new key.
    let out = run_ok(&mut s.tresor_as("steward", &["policy", "show", "--json", shared]));
    assert_eq!(json_lines(&out)[0]["own"][1]["id"], new.id().to_string());

    // With the new identity alice reads her file; the old one cannot mount.
    {
        let m = s.mount("backing", "mnt", "alice-new", &[]);
        assert_eq!(fs::read(m.path.join("notes.txt")).unwrap(), b"alice's notes");
    }
    let out = s.mount_cmd("backing", "mnt", "alice").output().unwrap();
    assert!(!out.status.success(), "the old identity mounted");

    // Signed and audited; a rerun is a no-op.
    let out = as_steward(&s, &["audit", "show", "--json", "--volume", b, "--op", "member-add"]);
    assert!(
        json_lines(&out).iter().any(|r| r["intent"].as_str().is_some_and(|i| i.starts_with("member replace"))),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = as_steward(&s, &["member", "replace", b, "alice", &new_public]);
    assert!(out.status.success() && stderr(&out).contains("already replaced"), "{}", stderr(&out));

    // --rekey: the file also gets a new content key.
    let newer_public = s.identity("alice-3");
    let before = header_of(&backing, &file).file_id;
    let out = as_steward(&s, &["member", "replace", b, "alice", &newer_public, "--rekey"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let h = header_of(&backing, &file);
    assert_ne!(h.file_id, before, "re-keyed");
    assert!(h.file_key(&unseal(&s, "alice-3")).is_ok() && h.file_key(&new).is_err());
}

#[test]
fn a_member_running_a_steward_command_gets_one_refusal_and_it_is_audited_as_denied() {
    let (s, backing) = volume_with_alice("members-denied");
    let bob = s.identity("bob");
    let b = backing.to_str().unwrap();
    run_ok(&mut s.tresor_as("steward", &["member", "add", b, &bob, "--name", "bob"]));
    {
        let m = s.mount("backing", "mnt", "alice", &[]);
        for i in 0..5 {
            fs::write(m.path.join(format!("f{i}")), b"x").unwrap();
        }
    }
    for args in [
        &["grant", "-r", b, "--to", "bob"][..],
        &["revoke", "-r", b, "--from", "bob"],
        &["rekey", "-r", b],
        &["policy", "set", b, "--default", "bob"],
        &["member", "set-role", b, "bob", "steward"],
        &["member", "remove", b, "bob"],
    ] {
        let out = s.tresor_as("alice", args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let lines: Vec<_> = stderr(&out).lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 1, "{args:?}: one message, not one per file: {lines:#?}");
        assert!(lines[0].contains("only a steward"), "{lines:?}");
    }
    let out = as_steward(&s, &["audit", "show", "--json", "--volume", b, "--member", "alice"]);
    let denied: Vec<String> = json_lines(&out)
        .iter()
        .filter(|r| r["result"] == "EACCES")
        .map(|r| r["op"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(denied, ["grant", "revoke", "rekey", "policy-set", "set-role", "member-remove"]);
}

#[test]
fn a_file_only_the_old_key_reads_keeps_the_old_identity_until_the_steward_gives_it_up() {
    let (s, backing) = volume_with_alice("members-replace-unreadable");
    let b = backing.to_str().unwrap();
    let private = {
        let m = s.mount("backing", "mnt", "alice", &[]);
        let dir = tamper::backing_of(&backing, || fs::create_dir(m.path.join("private")).unwrap());
        run_ok(&mut s.tresor_as("steward", &["policy", "set", dir.to_str().unwrap(), "--none"]));
        std::thread::sleep(std::time::Duration::from_millis(1100)); // the mount reloads the registry
        tamper::backing_of(&dir, || fs::write(m.path.join("private/diary"), b"mine alone").unwrap())
    };
    let old = unseal(&s, "alice");
    let new_public = s.identity("alice-new");

    let out = as_steward(&s, &["member", "replace", b, "alice", &new_public]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("diary") && stderr(&out).contains("--leave-unreadable"), "{}", stderr(&out));
    let list = json_lines(&run_ok(s.tresor().args(["member", "list", "--json", b])));
    assert!(list.iter().any(|r| r["id"] == old.id().to_string() && r["former"] == false), "alice keeps her key");
    assert!(header_of(&backing, &private).file_key(&old).is_ok(), "and her file");

    // The old identity is lost: the steward gives those files up.
    let out = as_steward(&s, &["member", "replace", b, "alice", &new_public, "--leave-unreadable"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let list = json_lines(&run_ok(s.tresor().args(["member", "list", "--json", b])));
    assert!(list.iter().any(|r| r["id"] == old.id().to_string() && r["former"] == true), "{list:?}");
    assert_eq!(header_of(&backing, &private).writer(), unseal(&s, "steward").id(), "re-signed, still verifiable");
}
