//! The audit log test vectors (`tests/vectors/audit.json`, a version 1 log,
//! and `audit-merkle.json`, the same log in version 2 with its Merkle tree,
//! proofs and checkpoint note), checked in both
//! directions: building the log from the inputs it lists gives exactly its
//! bytes, and reading those bytes verifies and gives back the inputs
//! (unsealed paths included). Then every bit is flipped: no flip verifies
//! as signed what was not written.
//!
//! The volume is the one of `tests/vectors/volume.json`; bob's mount writes
//! the log. `TRESOR_WRITE_VECTORS=1` (or `cargo xtask vectors`) rewrites the
//! file: only with a change of the log format (docs/AUDIT.md, version).

use std::path::PathBuf;

use serde_json::{json, Value};
use tresor_audit::chain::{self, hex, unhex};
use tresor_audit::merkle::{self, Frontier, Stored};
use tresor_audit::query::read_log;
use tresor_audit::seal::PathSealer;
use tresor_audit::writer::complete;
use tresor_audit::{frame, verify, Event, Op};
use tresor_format::{Identity, NameKey, Volume};

fn write_or_compare(name: &str, built: Value) -> Value {
    let path = dir().join(name);
    if std::env::var_os("TRESOR_WRITE_VECTORS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&built).unwrap() + "\n").unwrap();
        return built;
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(built, stored, "{name}: building from the listed inputs no longer gives the stored vector");
    stored
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

fn h(v: &Value) -> Vec<u8> {
    let s = v.as_str().expect("hex string");
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
}

/// The volume vector's volume, its name key and bob's identity.
fn volume() -> (Volume, NameKey, Identity) {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(dir().join("volume.json")).unwrap()).unwrap();
    let person = |name: &str| {
        let p = v["inputs"]["cast"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap();
        Identity::from_seed(&h(&p["seed"]).try_into().unwrap(), name).unwrap()
    };
    let volume = Volume::open(&h(&v["file"]), &[person("alice").public().ed25519]).unwrap();
    let name_key = NameKey::from_bytes(h(&v["inputs"]["name_key"]).try_into().unwrap());
    (volume, name_key, person("bob"))
}

fn inputs(volume: &Volume, bob: &Identity) -> Value {
    let alice = volume.members().iter().find(|m| m.name == "alice").unwrap().id();
    json!({
        "host": "node1",
        "mount_id": hex(&[0x4d; 16]),
        "member": "bob",
        "start_time_ns": 1_795_936_323_000_000_000u64,
        "records": [
            {"op": "mount", "uid": 0, "gid": 0, "pid": 100, "process": "tresor", "options": "rw,noatime"},
            {"op": "checkpoint"},
            {"op": "create", "uid": 1000, "gid": 1000, "pid": 4242, "process": "python3", "path": "study/cohort.csv",
             "intent": "w+c", "recipients": [hex(&bob.id().0), hex(&alice.0)]},
            {"op": "release", "uid": 1000, "gid": 1000, "pid": 4242, "process": "python3", "path": "study/cohort.csv",
             "read": 0, "written": 1234},
            {"op": "open", "uid": 1001, "gid": 1001, "pid": 4243, "process": "cat", "path": "bobs.txt", "intent": "r",
             "result": libc::EACCES},
            {"op": "rename", "uid": 1000, "gid": 1000, "pid": 4244, "process": "mv", "path": "study/cohort.csv",
             "new_path": "study/final.csv"},
            {"op": "setxattr", "uid": 1000, "gid": 1000, "pid": 4245, "process": "setfattr", "path": "study/final.csv",
             "xattr": "user.checksum"},
            {"op": "unmount", "uid": 0, "gid": 0, "pid": 100, "process": "tresor"},
            {"op": "checkpoint"},
        ],
    })
}

/// Builds the log file from the inputs, as bob's mount writes it in log
/// format `version` (2: checkpoints carry the Merkle root and its note's
/// signature).
fn build(i: &Value, volume: &Volume, name_key: &NameKey, bob: &Identity, version: u16) -> Vec<u8> {
    let sealer = PathSealer::new(name_key, &volume.id);
    let mount_id: [u8; 16] = unhex(i["mount_id"].as_str().unwrap()).unwrap();
    let mut file = frame::file_header_of(version).to_vec();
    let mut prev = chain::GENESIS;
    let mut tree = Frontier::new();
    for (seq, r) in i["records"].as_array().unwrap().iter().enumerate() {
        let op = Op::parse(r["op"].as_str().unwrap()).unwrap();
        let u = |k: &str| r[k].as_u64().unwrap_or(0) as u32;
        let mut e = Event::new(op).by(u("uid"), u("gid"), u("pid")).result(r["result"].as_i64().unwrap_or(0) as i32);
        if let Some(p) = r["path"].as_str() {
            e = e.path(p);
        }
        if let Some(p) = r["new_path"].as_str() {
            e = e.new_path(p);
        }
        if let Some(x) = r["xattr"].as_str() {
            e = e.xattr(x);
        }
        if let Some(x) = r["intent"].as_str() {
            e = e.intent(x);
        }
        if let Some(w) = r["written"].as_u64() {
            e = e.bytes(r["read"].as_u64().unwrap(), w);
        }
        if let Some(ids) = r["recipients"].as_array() {
            e = e.recipients(ids.iter().map(|id| unhex(id.as_str().unwrap()).unwrap()).collect());
        }
        let rec = e.record_mut();
        rec.seq = seq as u64;
        rec.time_ns = i["start_time_ns"].as_u64().unwrap() + seq as u64 * 1_000_000;
        rec.host = i["host"].as_str().unwrap().to_owned();
        rec.mount_id = mount_id;
        rec.member = bob.id().0;
        rec.process = r["process"].as_str().unwrap_or("").to_owned();
        if op == Op::Mount {
            rec.volume = Some(volume.id.to_vec());
            rec.key = Some(bob.public().ed25519.as_bytes().to_vec());
            rec.options = r["options"].as_str().map(str::to_owned);
        }
        if op == Op::Checkpoint && version >= 2 {
            rec.root = Some(tree.root().to_vec());
        }
        let bytes = complete(e, &sealer, bob, &prev).to_bytes();
        frame::put(&mut file, &bytes);
        prev = chain::next(&prev, &bytes);
        tree.push(&bytes);
    }
    file
}

#[test]
fn the_audit_log_vector_builds_verifies_and_reads_back() {
    let (volume, name_key, bob) = volume();
    let i = inputs(&volume, &bob);
    let file = build(&i, &volume, &name_key, &bob, 1);
    let built = json!({
        "description": "A log written by bob's mount of the volume of volume.json: mount, checkpoint, a create, \
    its release, a denied open, a rename, a setxattr, unmount, checkpoint. Paths sealed with the volume's name key.",
        "inputs": i,
        "file": hex(&file),
    });
    let stored = write_or_compare("audit.json", built);

    // Reading: the stored bytes verify, and give back the inputs.
    let file = h(&stored["file"]);
    let report = verify(&file, &volume, &[]);
    assert!(report.ok() && report.closed && report.warnings.is_empty(), "{report:?}");
    assert_eq!(report.verified_up_to, Some(8));
    let sealer = PathSealer::new(&name_key, &volume.id);
    let entries = read_log(&file, Some(&sealer), 0).unwrap();
    let records = stored["inputs"]["records"].as_array().unwrap();
    assert_eq!(entries.len(), records.len());
    for (e, r) in entries.iter().zip(records) {
        assert_eq!(e.record.op.as_str(), r["op"]);
        assert_eq!(e.path(), r["path"].as_str());
        assert_eq!(e.new_path(), r["new_path"].as_str());
        assert_eq!(e.xattr.as_ref().map(|x| x.clone().unwrap()).as_deref(), r["xattr"].as_str());
        assert_eq!(e.record.process, r["process"].as_str().unwrap_or(""));
    }
    assert!(!file.windows(5).any(|w| w == b"study"), "paths are sealed");

    // Every bit flipped: never verified as signed.
    let mut flipped = file.clone();
    for at in frame::FILE_HEADER_LEN..file.len() {
        for bit in 0..8 {
            flipped[at] ^= 1 << bit;
            let r = verify(&flipped, &volume, &[]);
            assert!(!r.ok() || r.verified_up_to < Some(8), "flip of bit {bit} in byte {at} went unnoticed: {r:?}");
            flipped[at] ^= 1 << bit;
        }
    }
}

/// RFC 6962 §2.1 as written, for checking the vector without the code under test.
fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    match leaves.len() {
        1 => leaves[0],
        n => {
            let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
            Sha256::new()
                .chain_update([1])
                .chain_update(mth(&leaves[..k]))
                .chain_update(mth(&leaves[k..]))
                .finalize()
                .into()
        }
    }
}

/// `tests/vectors/audit-merkle.json`: the same log in format version 2, its
/// leaf hashes and the Merkle root at every size, an inclusion and a
/// consistency proof, and its last checkpoint as a signed note, each checked
/// here from first principles (SHA-256 and Ed25519 directly).
#[test]
fn the_merkle_vector_builds_and_its_roots_proofs_and_note_check_from_first_principles() {
    use base64::prelude::{Engine, BASE64_STANDARD};
    use sha2::{Digest, Sha256};
    let (volume, name_key, bob) = volume();
    let i = inputs(&volume, &bob);
    let file = build(&i, &volume, &name_key, &bob, 2);
    let frames: Vec<Vec<u8>> = frame::split(&file).unwrap().frames.iter().map(|f| f.bytes.to_vec()).collect();
    let mut stored_tree = Stored::new();
    frames.iter().for_each(|r| stored_tree.push(r));
    let n = frames.len() as u64;
    let report = verify(&file, &volume, &[]);
    assert!(report.ok() && report.closed, "{report:?}");
    let head = report.merkle.clone().expect("a version 2 log");
    let mount_id: [u8; 16] = unhex(i["mount_id"].as_str().unwrap()).unwrap();
    let hexes = |v: Vec<[u8; 32]>| v.iter().map(|h| hex(h)).collect::<Vec<_>>();
    let built = json!({
        "description": "The log of audit.json written in log format version 2 (docs/AUDIT.md §4.5): its records are \
    the leaves of an RFC 6962 Merkle tree, leaf = SHA-256(0x00 || record), node = SHA-256(0x01 || left || right); \
    checkpoints carry the root of the records before them. Roots are listed for every tree size 1..n.",
        "inputs": i,
        "file": hex(&file),
        "leaves": hexes(frames.iter().map(|r| merkle::leaf(r)).collect()),
        "roots": hexes((1..=n).map(|s| stored_tree.root(s).unwrap()).collect()),
        "inclusion": {"index": 3, "tree_size": head.size, "proof": hexes(stored_tree.inclusion(3, head.size).unwrap())},
        "consistency": {"old_size": 1, "new_size": head.size, "proof": hexes(stored_tree.consistency(1, head.size).unwrap())},
        "log_key": tresor_audit::note::log_vkey(&mount_id, &bob.public().ed25519),
        "checkpoint": String::from_utf8(head.note(&mount_id)).unwrap(),
    });
    let v = write_or_compare("audit-merkle.json", built);

    let leaves: Vec<[u8; 32]> =
        v["leaves"].as_array().unwrap().iter().map(|h| unhex(h.as_str().unwrap()).unwrap()).collect();
    for (r, l) in frames.iter().zip(&leaves) {
        assert_eq!(*l, <[u8; 32]>::from(Sha256::new().chain_update([0]).chain_update(r).finalize()));
    }
    for (k, root) in v["roots"].as_array().unwrap().iter().enumerate() {
        assert_eq!(hex(&mth(&leaves[..=k])), root.as_str().unwrap(), "root of size {}", k + 1);
    }
    let proof = |p: &Value| {
        p["proof"].as_array().unwrap().iter().map(|h| unhex(h.as_str().unwrap()).unwrap()).collect::<Vec<[u8; 32]>>()
    };
    let size = v["inclusion"]["tree_size"].as_u64().unwrap();
    let root = mth(&leaves[..size as usize]);
    assert!(merkle::check_inclusion(&proof(&v["inclusion"]), size, &root, 3, &leaves[3]));
    assert!(merkle::check_consistency(&proof(&v["consistency"]), 1, &mth(&leaves[..1]), size, &root));
    // The note: origin, size, base64 root, a blank line, one signature line
    // "— <name> base64(key id (4) || Ed25519 signature (64))".
    let note = v["checkpoint"].as_str().unwrap();
    let (text, sigs) = note.split_once("\n\n").unwrap();
    let text = format!("{text}\n");
    assert_eq!(text, format!("tresor.audit/{}\n{size}\n{}\n", hex(&mount_id), BASE64_STANDARD.encode(root)));
    let line = sigs.strip_prefix("\u{2014} ").unwrap().trim_end();
    let (name, sig) = line.split_once(' ').unwrap();
    assert_eq!(name, format!("tresor.audit/{}", hex(&mount_id)));
    let sig = BASE64_STANDARD.decode(sig).unwrap();
    let mut key_id_input = format!("{name}\n").into_bytes();
    key_id_input.push(1);
    key_id_input.extend_from_slice(bob.public().ed25519.as_bytes());
    assert_eq!(sig[..4], Sha256::digest(&key_id_input)[..4], "key id = SHA-256(name || LF || 0x01 || key)[..4]");
    let signature = ed25519_dalek::Signature::from_slice(&sig[4..]).unwrap();
    bob.public().ed25519.verify_strict(text.as_bytes(), &signature).unwrap();
}
