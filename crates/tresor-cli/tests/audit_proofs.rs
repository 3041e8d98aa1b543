//! Proofs for outsiders (docs/AUDIT.md §4.5–4.8): Merkle checkpoints of
//! real mounts' logs, inclusion and consistency proofs checked with only the
//! steward's key, witnesses that cosign and refuse a rewritten history, and
//! an offline bundle verified on "another machine" (a fresh directory).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use base64::prelude::{Engine, BASE64_STANDARD};
use common::*;
use serde_json::Value;
use tresor_audit::merkle::Frontier;
use tresor_audit::{chain, frame, note, Op, Record};
use tresor_format::audit::{sign_checkpoint, sign_note};
use tresor_format::Identity;

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `tresor audit ARGS --volume backing`.
fn audit(s: &Scratch, args: &[&str]) -> Output {
    s.tresor().arg("audit").args(args).arg("--volume").arg(s.path("backing")).output().unwrap()
}

/// The verify reports of the volume's logs (JSON), once every mount log is closed.
fn closed_logs(s: &Scratch) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = audit(s, &["verify", "--json"]);
        let mut lines: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        lines.pop();
        if lines.iter().all(|r| r["closed"] == true) || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A volume of alice's with one mount's log of `files` creates; alice's
/// public identity (the steward key) and the log's report.
fn volume_with_a_log(name: &str, files: usize) -> (Scratch, String, Value) {
    let s = Scratch::new(name);
    let steward = s.identity("alice");
    s.init("backing", "alice", &[]);
    {
        let m = s.mount("backing", "mnt", "alice", &[]);
        for i in 0..files {
            fs::write(m.path.join(format!("f{i}")), b"x").unwrap();
        }
    }
    let log = closed_logs(&s).into_iter().max_by_key(|r| r["records"].as_u64()).unwrap();
    (s, steward, log)
}

fn check(s: &Scratch, proof: &Value, steward: &str) -> Output {
    let path = s.path("proof-under-test.json");
    fs::write(&path, proof.to_string()).unwrap();
    s.tresor().args(["audit", "prove", "--check"]).arg(&path).args(["--steward", steward]).output().unwrap()
}

fn flip_b64(v: &str, i: usize) -> String {
    let mut b = BASE64_STANDARD.decode(v).unwrap();
    b[i] ^= 1;
    BASE64_STANDARD.encode(b)
}

#[test]
fn inclusion_and_consistency_proofs_check_with_the_steward_key_and_fail_after_any_change() {
    let (s, steward, log) = volume_with_a_log("audit-prove", 4);
    let mid = log["mount_id"].as_str().unwrap();
    let size = log["tree_size"].as_u64().expect("a version 2 log has Merkle checkpoints");
    let out =
        run_ok(s.tresor().args(["audit", "prove", "--mount", mid, "--record", "3", "--volume"]).arg(s.path("backing")));
    let incl: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((incl["kind"].as_str(), incl["index"].as_u64()), (Some("inclusion"), Some(3)));

    let ok = check(&s, &incl, &steward);
    assert!(ok.status.success() && text(&ok).starts_with("OK: record seq 3"), "{}", text(&ok));
    // The log's own key (as published) checks it too, without the registry.
    let mut bare = incl.clone();
    bare.as_object_mut().unwrap().remove("registry");
    fs::write(s.path("bare.json"), bare.to_string()).unwrap();
    let out = s
        .tresor()
        .args(["audit", "prove", "--check"])
        .arg(s.path("bare.json"))
        .arg("--key")
        .arg(incl["log_key"].as_str().unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    // Another steward's key does not.
    let other = s.identity("mallory");
    assert_eq!(check(&s, &incl, &other).status.code(), Some(1));

    // Any change to the record, a proof hash or the checkpoint fails.
    let record_len = BASE64_STANDARD.decode(incl["record"].as_str().unwrap()).unwrap().len();
    for i in 0..record_len {
        let mut bad = incl.clone();
        bad["record"] = flip_b64(incl["record"].as_str().unwrap(), i).into();
        let out = check(&s, &bad, &steward);
        assert_eq!(out.status.code(), Some(1), "record byte {i} changed: {}", text(&out));
        assert!(text(&out).contains("PROOF FAILS"), "{}", text(&out));
    }
    for (k, h) in incl["proof"].as_array().unwrap().iter().enumerate() {
        for i in [0, 31] {
            let mut bad = incl.clone();
            bad["proof"][k] = flip_b64(h.as_str().unwrap(), i).into();
            let out = check(&s, &bad, &steward);
            assert!(text(&out).contains("inclusion proof does not hold"), "hash {k} byte {i}: {}", text(&out));
        }
    }
    let note = incl["checkpoint"].as_str().unwrap().as_bytes().to_vec();
    for i in 0..note.len() {
        let mut b = note.clone();
        b[i] ^= 1;
        let mut bad = incl.clone();
        bad["checkpoint"] = String::from_utf8(b).unwrap().into();
        assert_eq!(check(&s, &bad, &steward).status.code(), Some(1), "checkpoint byte {i} changed");
    }
    let mut bad = incl.clone();
    bad["index"] = 2.into();
    assert!(text(&check(&s, &bad, &steward)).contains("not record 2 of this log"));

    // Consistency from the first checkpoint (after the mount record) to the latest.
    let out =
        run_ok(s.tresor().args(["audit", "prove", "--mount", mid, "--from", "1", "--volume"]).arg(s.path("backing")));
    let cons: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ok = check(&s, &cons, &steward);
    assert!(text(&ok).starts_with(&format!("OK: the log of mount {mid} at {size} records extends")), "{}", text(&ok));
    for (k, h) in cons["proof"].as_array().unwrap().iter().enumerate() {
        let mut bad = cons.clone();
        bad["proof"][k] = flip_b64(h.as_str().unwrap(), 7).into();
        assert!(text(&check(&s, &bad, &steward)).contains("consistency proof does not hold"));
    }
    for key in ["checkpoint", "old_checkpoint"] {
        let mut bad = cons.clone();
        bad[key] = cons[key].as_str().unwrap().replacen('\n', "\n1", 1).into();
        assert_eq!(check(&s, &bad, &steward).status.code(), Some(1), "{key} changed");
    }
}

/// Rewrites a log as the holder of its key can: record `at` changed, then
/// every link, Merkle root and signature after it made again with the key.
/// `verify` cannot tell; a witness that cosigned the original can.
fn fork(log: &Path, at: usize, key: &Identity) {
    let file = fs::read(log).unwrap();
    let mut out = frame::file_header().to_vec();
    let (mut prev, mut tree) = (chain::GENESIS, Frontier::new());
    for (i, f) in frame::split(&file).unwrap().frames.iter().enumerate() {
        let mut r = Record::from_bytes(f.bytes).unwrap();
        if i == at {
            r.pid ^= 1;
        }
        r.prev = prev;
        if r.op == Op::Checkpoint {
            let root = tree.root();
            (r.chain, r.root, r.sig) = (Some(prev.to_vec()), Some(root.to_vec()), None);
            r.nsig = Some(sign_note(key, &note::text(&r.mount_id, r.seq, &root)).unwrap().to_vec());
            let body = chain::checkpoint_body(&r.mount_id, r.seq, &prev, &r.to_bytes());
            r.sig = Some(sign_checkpoint(key, &body).to_vec());
        }
        let bytes = r.to_bytes();
        frame::put(&mut out, &bytes);
        prev = chain::next(&prev, &bytes);
        tree.push(&bytes);
    }
    fs::write(log, out).unwrap();
}

#[test]
fn a_witness_cosigns_only_an_extension_and_verify_requires_its_cosignature() {
    let (s, _, log) = volume_with_a_log("audit-witness", 2);
    let key = s.path("board.key");
    let new = run_ok(s.tresor().args(["audit", "witness", "--new", "ethics-board", "--key"]).arg(&key));
    let public = String::from_utf8(new.stdout).unwrap().trim().to_owned();
    assert!(public.starts_with("ethics-board+"), "{public}");
    let witness = |s: &Scratch| {
        let out = s
            .tresor()
            .args(["audit", "witness", "--key"])
            .arg(&key)
            .arg("--state")
            .arg(s.path("board-state"))
            .arg("--volume")
            .arg(s.path("backing"))
            .output()
            .unwrap();
        (out.status.code(), text(&out))
    };
    let verify_witnessed = |s: &Scratch| {
        let out = audit(s, &["verify", "--witness", &public]);
        (out.status.code(), text(&out))
    };

    let (code, out) = verify_witnessed(&s);
    assert_eq!(code, Some(1), "no cosignature yet: {out}");
    assert!(out.contains("NOT WITNESSED") && out.contains("no cosignature file"), "{out}");
    let (code, out) = witness(&s);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(verify_witnessed(&s).0, Some(0));
    // A resumed verify (nothing new since its state) still knows the latest checkpoint.
    let state = s.path("verify-state");
    for run in 0..2 {
        let out = audit(&s, &["verify", "--witness", &public, "--state", state.to_str().unwrap()]);
        assert!(out.status.success(), "run {run}: {}", text(&out));
    }
    // The public key file works as well; another witness's key does not.
    assert_eq!(audit(&s, &["verify", "--witness", s.path("board.pub").to_str().unwrap()]).status.code(), Some(0));
    run_ok(s.tresor().args(["audit", "witness", "--new", "other", "--key"]).arg(s.path("other.key")));
    assert_eq!(audit(&s, &["verify", "--witness", s.path("other.pub").to_str().unwrap()]).status.code(), Some(1));

    // A new log needs its own cosignature; a log that grew is cosigned again.
    drop(s.mount("backing", "mnt", "alice", &[]));
    closed_logs(&s);
    assert_eq!(verify_witnessed(&s).0, Some(1), "the second mount's log is not cosigned yet");
    assert_eq!(witness(&s).0, Some(0));
    assert_eq!(verify_witnessed(&s).0, Some(0));

    // Alice, who holds the log's key, rewrites her first mount's history and
    // signs it again: verify alone cannot tell, the witness refuses.
    let path = PathBuf::from(log["log"].as_str().unwrap());
    let alice = Identity::unseal(&fs::read(s.path("alice.id")).unwrap(), PASS.as_bytes()).unwrap();
    fork(&path, 2, &alice);
    assert_eq!(audit(&s, &["verify"]).status.code(), Some(0), "the key holder's rewrite verifies without a witness");
    let (code, out) = witness(&s);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("REFUSED") && out.contains("a fork"), "{out}");
    assert!(out.contains("cosigned its checkpoint"), "the other mount's log is still cosigned: {out}");
    let (code, out) = verify_witnessed(&s);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("is not the log's latest checkpoint"), "{out}");
}

/// Copies the files below `from` to `to`.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_below(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn an_exported_bundle_verifies_elsewhere_with_only_the_steward_key_and_any_flipped_byte_fails() {
    let (s, steward, _) = volume_with_a_log("audit-export", 3);
    run_ok(s.tresor().args(["audit", "witness", "--new", "board", "--key"]).arg(s.path("board.key")));
    run_ok(
        s.tresor()
            .args(["audit", "witness", "--key"])
            .arg(s.path("board.key"))
            .arg("--state")
            .arg(s.path("board-state"))
            .arg("--volume")
            .arg(s.path("backing")),
    );
    let out = s
        .tresor_as("alice", &["audit", "export"])
        .arg(s.path("bundle"))
        .args(["--since", "-1h", "--until", "now", "--volume"])
        .arg(s.path("backing"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // Another machine: a fresh directory, no volume, no pinned keys.
    let elsewhere = Scratch::new("audit-export-elsewhere");
    copy_tree(&s.path("bundle"), &elsewhere.path("bundle"));
    drop(s);
    let verify = |extra: &[&str]| {
        let out = elsewhere
            .tresor()
            .args(["audit", "verify", "--bundle"])
            .arg(elsewhere.path("bundle"))
            .args(["--steward", &steward])
            .args(extra)
            .output()
            .unwrap();
        (out.status.code(), text(&out))
    };
    let (code, out) = verify(&[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("all verified with the steward's key"), "{out}");
    let (code, out) = verify(&["--json"]);
    let summary: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!((code, &summary["ok"], &summary["logs"]), (Some(0), &Value::Bool(true), &Value::from(1)), "{out}");
    let files = files_below(&elsewhere.path("bundle"));
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "cosig")), "the witness's cosignature travels");
    assert!(files.iter().any(|f| f.starts_with(elsewhere.path("bundle/proofs"))), "with its consistency proof");

    // Another steward's key: nothing verifies.
    let mallory = elsewhere.identity("mallory");
    let out = elsewhere
        .tresor()
        .args(["audit", "verify", "--bundle"])
        .arg(elsewhere.path("bundle"))
        .args(["--steward", &mallory])
        .output()
        .unwrap();
    assert!(text(&out).contains("registry: does not verify with the steward's key"), "{}", text(&out));

    // One byte flipped anywhere (first, middle, last of every file) fails, naming the file.
    for f in &files {
        let saved = fs::read(f).unwrap();
        let rel = f.strip_prefix(elsewhere.path("bundle")).unwrap().to_string_lossy().into_owned();
        let mut at = vec![0, saved.len() / 2, saved.len() - 1];
        at.dedup();
        for i in at {
            let mut b = saved.clone();
            b[i] ^= 1;
            fs::write(f, &b).unwrap();
            let (code, out) = verify(&[]);
            assert_eq!(code, Some(1), "{rel} byte {i} flipped, yet: {out}");
            let names_it = out.contains(&rel) || (rel.starts_with("MANIFEST") && out.contains("MANIFEST"));
            assert!(names_it, "{rel} byte {i}: {out}");
        }
        fs::write(f, &saved).unwrap();
    }
    // A file added to the bundle, or one removed, fails too.
    fs::write(elsewhere.path("bundle/logs/extra.log"), b"x").unwrap();
    assert!(verify(&[]).1.contains("logs/extra.log: not in the manifest"));
    fs::remove_file(elsewhere.path("bundle/logs/extra.log")).unwrap();
    assert_eq!(verify(&[]).0, Some(0));
}
