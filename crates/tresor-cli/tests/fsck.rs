//! `tresor fsck` and `tresor info`, run as an administrator would: on a
//! volume used for real through a mount, then damaged the way a storage
//! operator (or a crash) can damage it, with the shared tamper toolkit.

mod common;

use std::{
    collections::BTreeSet,
    fs,
    os::unix::fs::{symlink, FileTypeExt},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use common::{run_ok, Scratch};
use serde_json::Value;
use tresor_tamper as tamper;

const HEADER_LEN: u64 = 4096;

/// Runs `tresor fsck --json` and returns (exit code, document).
fn fsck(s: &Scratch, extra: &[&str]) -> (i32, Value) {
    let out = s
        .tresor()
        .arg("fsck")
        .arg(s.path("back"))
        .args(["--json", "--quiet"])
        .args(extra)
        .output()
        .expect("run tresor fsck");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "fsck --json printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exit code"), doc)
}

fn with_alice(s: &Scratch, extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "-i".to_string(),
        s.path("alice.id").display().to_string(),
        "--passfile".into(),
        s.path("pass").display().to_string(),
    ];
    v.extend(extra.iter().map(|x| x.to_string()));
    v
}

fn fsck_as_alice(s: &Scratch, extra: &[&str]) -> (i32, Value) {
    let args = with_alice(s, extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    fsck(s, &refs)
}

/// (class, backing path) of every finding.
fn classes(doc: &Value) -> BTreeSet<(String, String)> {
    doc["findings"]
        .as_array()
        .expect("findings array")
        .iter()
        .map(|f| (f["class"].as_str().unwrap().to_owned(), f["backing"].as_str().unwrap().to_owned()))
        .collect()
}

fn rel(s: &Scratch, p: &Path) -> String {
    p.strip_prefix(s.path("back")).unwrap().display().to_string()
}

/// Runs a line of Python (std Rust has no xattr calls).
fn python(code: &str) {
    let status = Command::new("python3").arg("-c").arg(code).status().expect("python3");
    assert!(status.success(), "python3 -c {code:?} failed");
}

/// Creates through a real mount everything a volume holds, and returns
/// the backing path of each named thing.
struct Made {
    noted: PathBuf,
    blocks: PathBuf,
    cut: PathBuf,
    trailer: PathBuf,
    forged: PathBuf,
    fifo_at: PathBuf,
    linked_out: PathBuf,
    marker: PathBuf,
    long_name: PathBuf,
    long_target: PathBuf,
    node: PathBuf,
    dir_a: PathBuf,
    dir_b: PathBuf,
}

fn make_volume(s: &Scratch) -> Made {
    s.identity("alice");
    s.init("back", "alice", &[]);
    let back = s.path("back");
    let m = s.mount("back", "mnt", "alice", &[]);
    let mnt = m.path.clone();
    let file = |name: &str, len: usize| {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        tamper::backing_of(&back, || fs::write(mnt.join(name), &bytes).unwrap())
    };
    let noted = file("small.txt", 10);
    python(&format!("import os; os.setxattr({:?}, 'user.note', b'reviewed by alice')", mnt.join("small.txt")));
    let blocks = file("blocks.bin", 3 * 4096 + 100);
    let cut = file("cut.bin", 2 * 4096 + 5);
    let trailer = file("trailer.bin", 4096 * 2);
    let forged = file("forged.bin", 500);
    let fifo_at = file("becomes-a-fifo", 20);
    let linked_out = file("linked-out", 30);
    let marker = file("marker", 40);
    let dir_a = tamper::backing_of(&back, || fs::create_dir(mnt.join("a")).unwrap());
    let dir_b = tamper::backing_of(&back, || fs::create_dir(mnt.join("b")).unwrap());
    fs::create_dir_all(mnt.join("a/deep/deeper")).unwrap();
    fs::write(mnt.join("a/deep/deeper/model.ckpt"), vec![1u8; 50_000]).unwrap();
    fs::write(mnt.join("a").join("n".repeat(200)), b"long name").unwrap();
    // A long name's entry is `tresor.longname.<hash>` (which the toolkit's
    // listing leaves out as metadata), beside its `.name` sidecar.
    let long_name = fs::read_dir(&dir_a)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with("tresor.longname.") && !n.ends_with(".name")
        })
        .expect("the long-name entry");
    let long_target = tamper::backing_of(&back, || symlink("t".repeat(3500), mnt.join("long-link")).unwrap());
    symlink("short/target", mnt.join("short-link")).unwrap();
    let node =
        tamper::backing_of(&back, || assert!(Command::new("mkfifo").arg(mnt.join("pipe")).status().unwrap().success()));
    fs::hard_link(mnt.join("small.txt"), mnt.join("a/small-again")).unwrap();
    drop(m);
    Made {
        noted,
        blocks,
        cut,
        trailer,
        forged,
        fifo_at,
        linked_out,
        marker,
        long_name,
        long_target,
        node,
        dir_a,
        dir_b,
    }
}

#[test]
fn a_volume_used_through_a_mount_is_clean_and_every_kind_of_damage_is_reported_with_its_class() {
    let s = Scratch::new("fsck-damage");
    let made = make_volume(&s);
    let back = s.path("back");

    // Clean: with an identity (names, places, content) and without.
    let (code, doc) = fsck_as_alice(&s, &[]);
    assert_eq!(code, 0, "a volume used only through a mount is clean: {doc:#}");
    assert_eq!(doc["summary"]["findings"], 0);
    assert!(doc["summary"]["content_checked"].as_u64().unwrap() >= 9, "{doc:#}");
    assert_eq!(doc["summary"]["hard_linked"], 1, "the link made through the mount is not damage: {doc:#}");
    assert_eq!(doc["summary"]["special_files"], 1, "the FIFO is a record: {doc:#}");
    let (code, doc) = fsck(&s, &[]);
    assert_eq!(code, 0, "clean without an identity too: {doc:#}");

    // Damage of every kind.
    tamper::flip_bit(&made.blocks, HEADER_LEN + 4096 + 28 + 50, 3);
    tamper::cut(&made.cut, tamper::len(&made.cut) - 10);
    let t = tamper::len(&made.trailer);
    tamper::flip_bit(&made.trailer, t - 1, 0);
    tamper::flip_bit(&made.forged, 30, 1); // file_id: signed
    tamper::plant_fifo(&made.fifo_at);
    tamper::plant_fifo(&back.join("tresor.planted")); // where only metadata lives
    tamper::copy_over(&made.dir_a.join("tresor.diriv"), &made.dir_b.join("tresor.diriv"));
    let sidecar = PathBuf::from(format!("{}.name", made.long_name.display()));
    tamper::remove(&made.long_name); // its sidecar stays behind
    let target_sidecar = back.join(fs::read_link(&made.long_target).unwrap());
    tamper::flip_bit(&target_sidecar, 10, 1);
    tamper::flip_bit(&made.node, 40, 0);
    tamper::overwrite(&made.marker, 0, b"TRSRMOVD");
    let outside = s.path("outside-copy");
    fs::hard_link(&made.linked_out, &outside).unwrap();
    let tmp = made.dir_a.join("tresor.tmp.0123456789abcdef");
    fs::write(&tmp, b"half a create").unwrap();
    let old = SystemTime::now() - Duration::from_secs(120);
    fs::File::options().write(true).open(&tmp).unwrap().set_modified(old).unwrap();
    let log = fs::read_dir(back.join("tresor.audit")).unwrap().next().unwrap().unwrap().path();
    tamper::flip_bit(&log, tamper::len(&log) / 2, 2);

    // The attribute's sealed value, one bit changed (the storage can; only
    // the name key holder can seal a valid one).
    python(&format!(
        "import os; p={:?}; n=[a for a in os.listxattr(p) if a.startswith('user.tresor.')][0]; v=bytearray(os.getxattr(p, n)); v[-1]^=1; os.setxattr(p, n, bytes(v))",
        made.noted
    ));

    let (code, doc) = fsck_as_alice(&s, &[]);
    assert_eq!(code, 4, "damage left uncorrected: {doc:#}");
    let found = classes(&doc);
    let expect = [
        ("block", rel(&s, &made.blocks)),
        ("file-length", rel(&s, &made.cut)),
        ("trailer", rel(&s, &made.trailer)),
        ("header", rel(&s, &made.forged)),
        ("planted-special", rel(&s, &made.fifo_at)),
        ("planted-special", "tresor.planted".to_string()),
        ("dir-iv-place", rel(&s, &made.dir_b.join("tresor.diriv"))),
        ("orphan-sidecar", rel(&s, &sidecar)),
        ("symlink-target", rel(&s, &made.long_target)),
        ("special-record", rel(&s, &made.node)),
        ("moved-marker", rel(&s, &made.marker)),
        ("hard-link", rel(&s, &made.linked_out)),
        ("stale-temporary", rel(&s, &tmp)),
        ("audit-log", rel(&s, &log)),
        ("xattr", rel(&s, &made.noted)),
    ];
    for (class, path) in &expect {
        assert!(
            found.contains(&(class.to_string(), path.clone())),
            "expected a {class} finding at {path}; found {found:#?}"
        );
    }
    // Plaintext paths where the names decrypt.
    let blocks = doc["findings"].as_array().unwrap().iter().find(|f| f["class"] == "block").unwrap();
    assert_eq!(blocks["path"], "/blocks.bin");
    // Without an identity, what needs no key is still found.
    let (code, doc) = fsck(&s, &[]);
    assert_eq!(code, 4);
    let found = classes(&doc);
    for class in
        ["file-length", "header", "planted-special", "moved-marker", "hard-link", "stale-temporary", "audit-log"]
    {
        assert!(found.iter().any(|(c, _)| c == class), "without an identity, {class} is still found: {found:#?}");
    }
}

#[test]
fn repair_removes_stale_temporaries_and_quarantines_damaged_files_then_the_volume_is_clean() {
    let s = Scratch::new("fsck-repair");
    let made = make_volume(&s);
    let back = s.path("back");
    tamper::flip_bit(&made.blocks, HEADER_LEN + 100, 5);
    tamper::plant_fifo(&made.fifo_at);
    let tmp = back.join("tresor.tmp.fedcba9876543210");
    fs::write(&tmp, b"interrupted").unwrap();
    fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(600))
        .unwrap();
    let young = back.join("tresor.tmp.0000000000000001");
    fs::write(&young, b"another node's create in progress").unwrap();

    let (code, doc) = fsck_as_alice(&s, &["--repair"]);
    assert_eq!(code, 1, "every finding corrected: {doc:#}");
    for f in doc["findings"].as_array().unwrap() {
        assert!(f["repaired"].is_string(), "each finding says what was done: {f}");
    }
    assert!(!tmp.exists(), "the stale temporary is removed");
    assert!(young.exists(), "a temporary younger than the grace period is left alone");
    assert!(!made.blocks.exists() && fs::symlink_metadata(&made.fifo_at).is_err());
    let quarantined: Vec<_> = fs::read_dir(back.join("tresor.quarantine")).unwrap().map(|e| e.unwrap()).collect();
    assert_eq!(quarantined.len(), 2, "the damaged file and the planted FIFO are kept, not deleted");
    let kinds: BTreeSet<_> =
        quarantined.iter().map(|e| (e.file_type().unwrap().is_file(), e.file_type().unwrap().is_fifo())).collect();
    assert_eq!(kinds, BTreeSet::from([(true, false), (false, true)]), "the file and the FIFO, as they were");

    let (code, doc) = fsck_as_alice(&s, &[]);
    assert_eq!(code, 0, "clean after the repair: {doc:#}");

    // Each repair is in the volume's audit log, signed by who ran it.
    let out = run_ok(&mut s.tresor_as("alice", &["audit", "show", "--json", "--volume", back.to_str().unwrap()]));
    let repairs: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["intent"].as_str().is_some_and(|i| i.starts_with("fsck --repair")))
        .collect();
    assert!(
        repairs.iter().any(|r| r["op"] == "unlink" && r["intent"].as_str().unwrap().ends_with("removed")),
        "the stale temporary's removal: {repairs:#?}"
    );
    assert_eq!(
        repairs
            .iter()
            .filter(|r| r["op"] == "rename" && r["intent"].as_str().unwrap().contains("tresor.quarantine"))
            .count(),
        2,
        "the two moves to quarantine: {repairs:#?}"
    );
    assert!(repairs.iter().all(|r| r["member_name"] == "alice"), "{repairs:#?}");
    // A repair without an identity could not be recorded: refused.
    let out = s.tresor().arg("fsck").arg(&back).args(["--repair", "--quiet"]).output().unwrap();
    assert_eq!(out.status.code(), Some(8), "--repair without -i: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("audit log"), "{out:?}");

    // The steward's report: alice created every file and is its only reader.
    let (_, doc) = fsck_as_alice(&s, &["--report-access"]);
    let rows = doc["access"].as_array().expect("access table");
    assert_eq!(rows[0]["member"], "alice");
    assert!(rows[0]["files_readable"].as_u64().unwrap() >= 8, "{doc:#}");
    assert_eq!(rows[0]["files_readable"], rows[0]["sole_reader_files"]);
}

#[test]
fn info_shows_the_volume_its_registry_policies_and_this_clients_pin() {
    let s = Scratch::new("info");
    s.identity("alice");
    let bob = s.identity("bob");
    s.init("back", "alice", &[]);
    let pass = s.path("pass");
    let alice = s.path("alice.id");
    run_ok(
        s.tresor()
            .args(["member", "add"])
            .arg(s.path("back"))
            .arg(&bob)
            .args(["--name", "bob", "-i"])
            .arg(&alice)
            .arg("--passfile")
            .arg(&pass),
    );
    let m = s.mount("back", "mnt", "alice", &[]);
    let dir = tamper::backing_of(&s.path("back"), || fs::create_dir(m.path.join("shared")).unwrap());
    drop(m);
    run_ok(
        s.tresor()
            .args(["policy", "set"])
            .arg(&dir)
            .args(["--default", "bob", "-i"])
            .arg(&alice)
            .arg("--passfile")
            .arg(&pass),
    );

    let out = run_ok(
        s.tresor().arg("info").arg(s.path("back")).arg("--json").arg("-i").arg(&alice).arg("--passfile").arg(&pass),
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["format_version"], 3);
    assert_eq!(doc["suite"], "AES-256-GCM-SIV");
    assert_eq!(doc["block_size"], 4096);
    assert_eq!(doc["header_len"], 4096);
    assert_eq!(doc["registry"]["generation"], 4, "init (and the root's policy), member add, policy set");
    assert_eq!(doc["registry"]["signer"]["name"], "alice");
    assert!(doc["registry"]["expires_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(doc["stewards"], serde_json::json!(["alice"]));
    let roles: Vec<_> = doc["members"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["steward", "member"]);
    let policies = doc["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 2, "{doc:#}");
    let root = policies.iter().find(|p| p["path"] == "/").expect("the root's policy, set by init");
    assert_eq!(root["default_recipients"][0]["name"], "alice", "the steward");
    let policy = policies.iter().find(|p| p["path"] == "/shared").expect("the policy's directory, found by a walk");
    assert_eq!(policy["default_recipients"][0]["name"], "bob");
    assert_eq!(policy["dir_iv"].as_str().unwrap().len(), 32);
    assert!(doc["audit"]["logs"].as_u64().unwrap() >= 3);
    assert_eq!(doc["client"]["highest_generation_seen"], 4);
    assert!(doc["client"]["pinned_steward"].as_str().unwrap().starts_with("tresor1"));

    // A registry put back from before the policy: info and fsck say so.
    let saved = tamper::save(&s.path("back/tresor.volume"));
    run_ok(s.tresor().args(["member", "renew"]).arg(s.path("back")).arg("-i").arg(&alice).arg("--passfile").arg(&pass));
    saved.restore();
    let out = run_ok(s.tresor().arg("info").arg(s.path("back")).arg("--json"));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["registry"]["problems"][0].as_str().unwrap().starts_with("registry-rollback"), "{doc:#}");
    let (code, doc) = fsck(&s, &[]);
    assert_eq!(code, 4);
    assert!(classes(&doc).contains(&("registry-rollback".into(), "tresor.volume".into())));
}

#[test]
fn fsck_of_a_directory_that_is_no_volume_is_an_operational_error() {
    let s = Scratch::new("fsck-novolume");
    fs::create_dir(s.path("back")).unwrap();
    let out = s.tresor().arg("fsck").arg(s.path("back")).output().unwrap();
    assert_eq!(out.status.code(), Some(8), "e2fsck's operational error: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Tresor volume"), "{out:?}");
}
