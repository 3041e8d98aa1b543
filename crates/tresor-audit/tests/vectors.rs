//! The audit log test vector (`tests/vectors/audit.json`), checked in both
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
use tresor_audit::query::read_log;
use tresor_audit::seal::PathSealer;
use tresor_audit::writer::complete;
use tresor_audit::{frame, verify, Event, Op};
use tresor_format::{Identity, NameKey, Volume};

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

/// Builds the log file from the inputs, as bob's mount writes it.
fn build(i: &Value, volume: &Volume, name_key: &NameKey, bob: &Identity) -> Vec<u8> {
    let sealer = PathSealer::new(name_key, &volume.id);
    let mount_id: [u8; 16] = unhex(i["mount_id"].as_str().unwrap()).unwrap();
    let mut file = frame::file_header_of(1).to_vec();
    let mut prev = chain::GENESIS;
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
        let bytes = complete(e, &sealer, bob, &prev).to_bytes();
        frame::put(&mut file, &bytes);
        prev = chain::next(&prev, &bytes);
    }
    file
}

#[test]
fn the_audit_log_vector_builds_verifies_and_reads_back() {
    let (volume, name_key, bob) = volume();
    let i = inputs(&volume, &bob);
    let file = build(&i, &volume, &name_key, &bob);
    let built = json!({
        "description": "A log written by bob's mount of the volume of volume.json: mount, checkpoint, a create, \
    its release, a denied open, a rename, a setxattr, unmount, checkpoint. Paths sealed with the volume's name key.",
        "inputs": i,
        "file": hex(&file),
    });
    let path = dir().join("audit.json");
    let stored: Value = if std::env::var_os("TRESOR_WRITE_VECTORS").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(&built).unwrap() + "\n").unwrap();
        built
    } else {
        let stored: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(built, stored, "audit.json: building from the listed inputs no longer gives the stored bytes");
        stored
    };

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
