//! Test vectors in `tests/vectors/*.json`, checked in both directions:
//! building each structure from the inputs a vector lists gives exactly its
//! bytes, and parsing those bytes gives back its inputs. Then every bit of
//! every vector is flipped, and each flip must give the error for the place
//! it hit: never a panic, never plaintext.
//!
//! Every random input (salts, nonces, ephemeral secrets, ids, keys) is
//! listed in the vector, so a second implementation can reproduce the bytes.
//! Here a scripted RNG hands them out in order and must end empty.
//!
//! `TRESOR_WRITE_VECTORS=1 cargo test -p tresor-format --test vectors`
//! (or `cargo xtask vectors`) rewrites the files: only with a format change,
//! which also bumps the version and changes docs/FORMAT.md.

use std::{collections::VecDeque, path::PathBuf};

use rand_chacha::rand_core::{CryptoRng, Error as RngError, RngCore};
use serde_json::{json, Value};
use tresor_format::{
    header::HEADER_FIXED_LEN,
    keys::{SIGNATURE_LEN, STANZA_LEN},
    ContentCipher, DirIv, EncryptedName, EncryptedTarget, Error, FileKey, Header, Identity, KdfParams, NameCipher,
    NameKey, Role, Structure, Suite, Volume, VolumeParams,
};

/// Hands out the vector's random values in order.
struct Scripted(VecDeque<u8>);

impl Scripted {
    fn new(parts: &[&[u8]]) -> Self {
        Scripted(parts.concat().into())
    }
    fn assert_used_up(&self) {
        assert!(self.0.is_empty(), "vector lists {} random bytes that were not used", self.0.len());
    }
}

impl RngCore for Scripted {
    fn next_u32(&mut self) -> u32 {
        unimplemented!("the format only asks for bytes")
    }
    fn next_u64(&mut self) -> u64 {
        unimplemented!("the format only asks for bytes")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.0.pop_front().expect("the vector lists too few random bytes");
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), RngError> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for Scripted {}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

fn writing() -> bool {
    std::env::var_os("TRESOR_WRITE_VECTORS").is_some()
}

/// In write mode, stores `built`; otherwise checks it equals the stored file.
/// Returns the vector as stored.
fn settle(name: &str, built: Value) -> Value {
    let path = dir().join(format!("{name}.json"));
    if writing() {
        std::fs::create_dir_all(dir()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(&built).unwrap() + "\n").unwrap();
        return built;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let stored: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(built, stored, "{name}.json: building from the listed inputs no longer gives the stored bytes");
    stored
}

fn h(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}
fn h32(v: &Value) -> [u8; 32] {
    h(v).try_into().unwrap()
}
fn h16(v: &Value) -> [u8; 16] {
    h(v).try_into().unwrap()
}
fn h12(v: &Value) -> [u8; 12] {
    h(v).try_into().unwrap()
}

/// The inputs every vector shares: the identities of the cast.
fn cast_inputs() -> Value {
    let seed = |b: u8| hex::encode([b; 32]);
    json!([
        {"name": "alice", "seed": seed(0xa1), "role": "steward"},
        {"name": "bob", "seed": seed(0xb0), "role": "member"},
        {"name": "carol", "seed": seed(0xc0), "role": "auditor"},
        {"name": "dave", "seed": seed(0xd0), "role": "member"},
    ])
}

fn person(cast: &Value, name: &str) -> Identity {
    let p = cast.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap();
    Identity::from_seed(&h32(&p["seed"]), name).unwrap()
}

fn for_each_bit_flip(bytes: &[u8], mut check: impl FnMut(usize, &[u8])) {
    let mut flipped = bytes.to_vec();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            flipped[i] ^= 1 << bit;
            check(i, &flipped);
            flipped[i] ^= 1 << bit;
        }
    }
}

// ---- identity file -----------------------------------------------------------

#[test]
fn identity_file() {
    let inputs = json!({
        "seed": hex::encode([0xa1u8; 32]), "name": "alice", "passphrase": "correct horse battery staple",
        "kdf": {"memory_kib": 64, "iterations": 1, "lanes": 1},
        "salt": hex::encode([0x5au8; 16]), "nonce": hex::encode([0x4eu8; 12]),
    });
    let build = |i: &Value| {
        let id = Identity::from_seed(&h32(&i["seed"]), i["name"].as_str().unwrap()).unwrap();
        let k = &i["kdf"];
        let params = KdfParams {
            memory_kib: k["memory_kib"].as_u64().unwrap() as u32,
            iterations: k["iterations"].as_u64().unwrap() as u32,
            lanes: k["lanes"].as_u64().unwrap() as u32,
        };
        let file = id
            .seal_with(i["passphrase"].as_str().unwrap().as_bytes(), params, &h16(&i["salt"]), &h12(&i["nonce"]))
            .unwrap();
        json!({
            "description": "An identity file sealed with Argon2id (low test cost) and ChaCha20-Poly1305.",
            "inputs": i,
            "public_identity": id.public().to_string(),
            "member_id": id.id().to_string(),
            "x25519_public": hex::encode(id.public().x25519),
            "ed25519_public": hex::encode(id.public().ed25519.as_bytes()),
            "file": hex::encode(file),
        })
    };
    let stored = settle("identity", build(&inputs));
    let v = build(&stored["inputs"]);
    assert_eq!(v, stored);

    let file = h(&v["file"]);
    let pass = v["inputs"]["passphrase"].as_str().unwrap().as_bytes();
    let id = Identity::unseal(&file, pass).unwrap();
    assert_eq!(id.public().to_string(), v["public_identity"]);
    assert_eq!(id.id().to_string(), v["member_id"]);
    assert_eq!(v["public_identity"].as_str().unwrap().parse::<tresor_format::PublicIdentity>().unwrap(), *id.public());

    let name_end = 116 + id.name().len();
    for_each_bit_flip(&file, |i, f| {
        let err = Identity::unseal(f, pass).expect_err("a flipped identity file must not open");
        let ok = match i {
            0..=7 => err == Error::BadMagic { what: Structure::IdentityFile },
            8..=9 => matches!(err, Error::UnsupportedVersion { .. }),
            10 => matches!(err, Error::Malformed { .. }),
            // Argon2 parameters: out of bounds, or different and so a different key.
            11..=22 => matches!(err, Error::Malformed { .. } | Error::WrongPassphrase),
            // Public keys: an invalid point, or else authenticated as AAD.
            51..=114 => matches!(err, Error::Malformed { .. } | Error::WrongPassphrase),
            115 => matches!(err, Error::Malformed { .. }),
            i if i < name_end && i > 115 => matches!(err, Error::Malformed { .. } | Error::WrongPassphrase),
            _ => err == Error::WrongPassphrase,
        };
        assert!(ok, "flip in byte {i}: unexpected {err:?}");
    });
}

// ---- volume file ---------------------------------------------------------------

fn build_volume(i: &Value) -> (Volume, NameKey) {
    let cast = &i["cast"];
    let steward = person(cast, "alice");
    let eph = i["ephemeral_secrets"].as_array().unwrap();
    let mut rng = Scripted::new(&[&h(&i["volume_id"]), &h(&i["name_key"]), &h(&eph[0])]);
    let params = VolumeParams {
        suite: Suite::from_u8(i["suite"].as_u64().unwrap() as u8).unwrap(),
        block_size: i["block_size"].as_u64().unwrap() as u32,
        header_len: i["header_len"].as_u64().unwrap() as u32,
    };
    let (mut volume, name_key) = Volume::create(&steward, params, &mut rng).unwrap();
    rng.assert_used_up();
    for (k, (name, role)) in [("bob", Role::Member), ("carol", Role::Auditor)].into_iter().enumerate() {
        let mut rng = Scripted::new(&[&h(&eph[k + 1])]);
        volume.add_member(&name_key, person(cast, name).public(), name, role, &mut rng).unwrap();
        rng.assert_used_up();
    }
    for p in i["policies"].as_array().unwrap() {
        let ids: Vec<_> = p["default_recipients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| person(cast, n.as_str().unwrap()).id())
            .collect();
        volume.set_policy(DirIv(h16(&p["dir_iv"])), &ids).unwrap();
    }
    let a = &i["audit_policy"];
    volume
        .set_audit_policy(tresor_format::AuditPolicy {
            required: a["required"].as_bool().unwrap(),
            anchors_required: a["anchors_required"].as_bool().unwrap(),
            max_sync_ms: a["max_sync_ms"].as_u64().unwrap() as u32,
            dir: a["dir"].as_str().map(str::to_owned),
        })
        .unwrap();
    for name in i["retired"].as_array().unwrap() {
        let who = person(cast, name.as_str().unwrap());
        let mut rng = Scripted::new(&[&h(&i["retired_ephemeral"])]);
        volume.add_member(&name_key, who.public(), name.as_str().unwrap(), Role::Member, &mut rng).unwrap();
        volume.remove_member(&who.id()).unwrap();
    }
    volume.set_validity(i["validity_secs"].as_u64().unwrap()).unwrap();
    volume.sign_at(&steward, i["signed_at"].as_u64().unwrap()).unwrap();
    (volume, name_key)
}

fn volume_inputs() -> Value {
    json!({
        "cast": cast_inputs(),
        "suite": Suite::Aes256Gcm as u8, "block_size": 65536, "header_len": 4096,
        "volume_id": hex::encode([0x71u8; 16]), "name_key": hex::encode([0x6eu8; 32]),
        "ephemeral_secrets": [hex::encode([0xe0u8; 32]), hex::encode([0xe1u8; 32]), hex::encode([0xe2u8; 32])],
        "policies": [
            {"dir_iv": hex::encode([0xd1u8; 16]), "default_recipients": ["alice", "bob"]},
            {"dir_iv": hex::encode([0xd2u8; 16]), "default_recipients": []},
        ],
        "signed_at": 1_800_000_000u64, "validity_secs": 90 * 86_400u64,
        "audit_policy": {"required": true, "anchors_required": true, "max_sync_ms": 1000, "dir": "/srv/audit/project1"},
        "retired": ["dave"], "retired_ephemeral": hex::encode([0xe3u8; 32]),
    })
}

fn volume_vector() -> Value {
    let build = |i: &Value| {
        let (volume, _) = build_volume(i);
        json!({
            "description": "A volume created by steward alice, then bob (member) and carol (auditor) added, two directory policies set (files below IV d1.. are readable by alice and bob; below IV d2.. by nobody by default), an audit policy set, dave added and removed (a former member), and the registry signed again at signed_at, valid for validity_secs.",
            "inputs": i,
            "generation": volume.generation,
            "expires_at": volume.expires_at,
            "file": hex::encode(volume.to_bytes()),
        })
    };
    let stored = settle("volume", build(&volume_inputs()));
    assert_eq!(build(&stored["inputs"]), stored);
    stored
}

/// The vector volume, opened from its stored bytes.
fn vector_volume() -> (Volume, Value) {
    let v = volume_vector();
    let alice = person(&v["inputs"]["cast"], "alice");
    (Volume::open(&h(&v["file"]), &[alice.public().ed25519]).unwrap(), v)
}

#[test]
fn volume_file() {
    let (volume, v) = vector_volume();
    let cast = &v["inputs"]["cast"];
    assert_eq!(volume.generation, v["generation"].as_u64().unwrap());
    assert_eq!(volume.signed_at, v["inputs"]["signed_at"].as_u64().unwrap());
    assert_eq!(volume.expires_at, v["expires_at"].as_u64().unwrap());
    assert!(volume.check_current(volume.expires_at - 1).is_ok());
    assert!(volume.audit.required && volume.audit.anchors_required && volume.audit.max_sync_ms == 1000);
    assert_eq!(volume.audit.dir.as_deref(), Some("/srv/audit/project1"));
    let dave = person(cast, "dave");
    assert!(volume.member(&dave.id()).is_none());
    assert_eq!(volume.former(&dave.id()).map(|r| (r.name.as_str(), r.public)), Some(("dave", *dave.public())));
    assert!(matches!(volume.check_current(volume.expires_at), Err(Error::Expired { .. })));
    assert_eq!(volume.id, h16(&v["inputs"]["volume_id"]));
    for name in ["alice", "bob", "carol"] {
        assert_eq!(volume.name_key(&person(cast, name)).unwrap().as_bytes(), &h32(&v["inputs"]["name_key"]));
    }
    let pinned = [person(cast, "alice").public().ed25519];
    let file = h(&v["file"]);
    let sig_at = file.len() - SIGNATURE_LEN;
    for_each_bit_flip(&file, |i, f| {
        let err = Volume::open(f, &pinned).expect_err("a flipped volume file must not open");
        let ok = match i {
            0..=7 => err == Error::BadMagic { what: Structure::VolumeFile },
            8..=9 => matches!(err, Error::UnsupportedVersion { .. }),
            i if i >= sig_at => err == Error::Tampered { what: Structure::VolumeFile },
            i if i >= sig_at - 16 => matches!(err, Error::UnknownSigner { .. }),
            _ => matches!(
                err,
                Error::Tampered { what: Structure::VolumeFile }
                    | Error::Malformed { what: Structure::VolumeFile, .. }
                    | Error::UnsupportedSuite(_)
                    | Error::SignerNotAllowed { .. }
                    | Error::UnknownSigner { .. }
            ),
        };
        assert!(ok, "flip in byte {i}: unexpected {err:?}");
    });
}

// ---- file header -----------------------------------------------------------------

#[test]
fn file_header() {
    let (volume, vv) = vector_volume();
    let cast = vv["inputs"]["cast"].clone();
    let inputs = json!({
        "cast": cast, "writer": "bob", "recipients": ["bob", "alice"],
        "volume_id": vv["inputs"]["volume_id"].clone(), "header_len": vv["inputs"]["header_len"].clone(),
        "file_id": hex::encode([0xf1u8; 16]), "file_key": hex::encode([0x4bu8; 32]),
        "ephemeral_secrets": [hex::encode([0xe5u8; 32]), hex::encode([0xe6u8; 32])],
        "signed_at": 1_700_000_000u64,
    });
    let build = |i: &Value| {
        let cast = &i["cast"];
        let key = FileKey::from_bytes(h32(&i["file_key"]));
        let recipients = i["recipients"].as_array().unwrap();
        let mut header =
            Header::unsigned(h16(&i["volume_id"]), i["header_len"].as_u64().unwrap() as u32, h16(&i["file_id"]), &key);
        for (r, e) in recipients.iter().zip(i["ephemeral_secrets"].as_array().unwrap()) {
            header.add_recipient_with_ephemeral(&key, person(cast, r.as_str().unwrap()).public(), &h32(e)).unwrap();
        }
        header.sign(&person(cast, i["writer"].as_str().unwrap()), i["signed_at"].as_u64().unwrap()).unwrap();
        json!({
            "description": "A file header written by bob for bob and alice, in its 4096-byte reservation.",
            "inputs": i,
            "header": hex::encode(header.to_bytes().unwrap()),
        })
    };
    let stored = settle("header", build(&inputs));
    assert_eq!(build(&stored["inputs"]), stored);

    let bytes = h(&stored["header"]);
    let cast = &stored["inputs"]["cast"];
    let header = Header::parse(&bytes).unwrap();
    header.verify(&volume).unwrap();
    assert_eq!(header.file_id, h16(&stored["inputs"]["file_id"]));
    for name in ["alice", "bob"] {
        assert_eq!(header.file_key(&person(cast, name)).unwrap().as_bytes(), &h32(&stored["inputs"]["file_key"]));
    }
    assert!(matches!(header.file_key(&person(cast, "carol")), Err(Error::NotRecipient { .. })));

    let alice = person(cast, "alice");
    let len = HEADER_FIXED_LEN + 2 * STANZA_LEN + SIGNATURE_LEN;
    for_each_bit_flip(&bytes, |i, f| {
        let err = Header::parse(f)
            .and_then(|h| h.verify(&volume).map(|_| h))
            .and_then(|h| h.file_key(&alice))
            .expect_err("a flipped header must not give a key");
        let ok = match i {
            0..=7 => err == Error::BadMagic { what: Structure::FileHeader },
            8..=9 => matches!(err, Error::UnsupportedVersion { .. }),
            10..=19 => matches!(err, Error::Malformed { what: Structure::FileHeader, .. }),
            // The volume id: a header of another volume.
            36..=51 => matches!(err, Error::Malformed { what: Structure::FileHeader, .. }),
            92..=107 => matches!(err, Error::UnknownSigner { .. }),
            i if i >= len => matches!(err, Error::Malformed { what: Structure::FileHeader, .. }),
            _ => err == Error::Tampered { what: Structure::FileHeader },
        };
        assert!(ok, "flip in byte {i}: unexpected {err:?}");
    });
}

// ---- content blocks --------------------------------------------------------------

#[test]
fn content_blocks() {
    let plaintext: Vec<u8> = (0..2 * 4096 + 100).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let inputs = json!({
        "file_key": hex::encode([0x4bu8; 32]), "file_id": hex::encode([0xf1u8; 16]), "block_size": 4096,
        "plaintext": hex::encode(&plaintext),
        "nonces": [hex::encode([0x01u8; 12]), hex::encode([0x02u8; 12]), hex::encode([0x03u8; 12])],
        "trailer_nonce": hex::encode([0x0fu8; 12]),
    });
    let build = |i: &Value| {
        let key = FileKey::from_bytes(h32(&i["file_key"]));
        let bs = i["block_size"].as_u64().unwrap() as u32;
        let plaintext = h(&i["plaintext"]);
        let nonces: Vec<_> = i["nonces"].as_array().unwrap().iter().map(h12).collect();
        let mut out = json!({"description": "The same plaintext sealed in each suite: blocks then trailer (what follows the header).", "inputs": i});
        for suite in Suite::ALL {
            let c = ContentCipher::new(suite, &key, &h16(&i["file_id"]), bs);
            let mut content = Vec::new();
            for (n, chunk) in plaintext.chunks(bs as usize).enumerate() {
                let at = content.len();
                content.resize(at + chunk.len() + 28, 0);
                c.seal_block_with_nonce(n as u64, chunk, &mut content[at..], &nonces[n]);
            }
            content.extend_from_slice(&c.seal_trailer_with_nonce(nonces.len() as u64, &h12(&i["trailer_nonce"])));
            out[suite.as_str()] = json!(hex::encode(content));
        }
        // A hole: block 0 is all zeros on disk and reads as zeros.
        let c = ContentCipher::new(Suite::Aes256Gcm, &key, &h16(&i["file_id"]), bs);
        let mut holey = vec![0u8; bs as usize + 28];
        let mut last = vec![0u8; 5 + 28];
        c.seal_block_with_nonce(1, b"tail.", &mut last, &nonces[1]);
        holey.extend_from_slice(&last);
        holey.extend_from_slice(&c.seal_trailer_with_nonce(2, &h12(&i["trailer_nonce"])));
        out["hole"] = json!({"suite": Suite::Aes256Gcm as u8, "content": hex::encode(holey), "plaintext_hex": hex::encode([&vec![0u8; bs as usize][..], b"tail."].concat())});
        out
    };
    let stored = settle("blocks", build(&inputs));
    assert_eq!(build(&stored["inputs"]), stored);

    let i = &stored["inputs"];
    let key = FileKey::from_bytes(h32(&i["file_key"]));
    let plaintext = h(&i["plaintext"]);
    for suite in Suite::ALL {
        let c = ContentCipher::new(suite, &key, &h16(&i["file_id"]), 4096);
        let content = h(&stored[suite.as_str()]);
        assert_eq!(c.open_content(&content).unwrap(), plaintext);
        let block_ct = 4096 + 28;
        for_each_bit_flip(&content, |at, f| {
            let err = c.open_content(f).expect_err("a flipped block must not open");
            let want =
                if at >= content.len() - 28 { Structure::Trailer } else { Structure::Block((at / block_ct) as u64) };
            assert_eq!(err, Error::Tampered { what: want }, "{suite:?}: flip in byte {at}");
        });
    }
    let c = ContentCipher::new(Suite::Aes256Gcm, &key, &h16(&i["file_id"]), 4096);
    assert_eq!(c.open_content(&h(&stored["hole"]["content"])).unwrap(), h(&stored["hole"]["plaintext_hex"]));
}

// ---- names and symlink targets -------------------------------------------------

#[test]
fn names() {
    let names: Vec<Vec<u8>> = vec![
        b"results.csv".to_vec(),
        "données-patient-Ø.parquet".as_bytes().to_vec(),
        vec![b'n'; 159],
        vec![b'l'; 160],
        vec![b'm'; 255],
    ];
    let targets: Vec<Vec<u8>> =
        vec![b"../cohort/2024.csv".to_vec(), (0..4095).map(|i| b'a' + (i % 26) as u8).collect()];
    let inputs = json!({
        "name_key": hex::encode([0x6eu8; 32]), "dir_iv": hex::encode([0xd1u8; 16]),
        "names": names.iter().map(hex::encode).collect::<Vec<_>>(),
        "targets": targets.iter().map(hex::encode).collect::<Vec<_>>(),
        "target_nonces": [hex::encode([0x21u8; 12]), hex::encode([0x22u8; 12])],
        "xattr_names": ["provenance", "x".repeat(159)],
        "xattr_values": [hex::encode(b"cohort 2024"), hex::encode(b"")],
        "xattr_nonces": [hex::encode([0x31u8; 12]), hex::encode([0x32u8; 12])],
    });
    let build = |i: &Value| {
        let n = NameCipher::new(&NameKey::from_bytes(h32(&i["name_key"])));
        let dir = DirIv(h16(&i["dir_iv"]));
        let names: Vec<Value> = i["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| match n.encrypt_name(&dir, &h(name)).unwrap() {
                EncryptedName::Short(e) => json!({"entry": e}),
                EncryptedName::Long { entry, full } => json!({"entry": entry, "sidecar": full}),
            })
            .collect();
        let targets: Vec<Value> = i["targets"]
            .as_array()
            .unwrap()
            .iter()
            .zip(i["target_nonces"].as_array().unwrap())
            .map(|(t, nonce)| match n.encrypt_target_with_nonce(&h(t), &h12(nonce)).unwrap() {
                EncryptedTarget::Inline(s) => json!({"symlink": s}),
                EncryptedTarget::Sidecar { link, full } => json!({"symlink": link, "sidecar": full}),
            })
            .collect();
        let xattrs: Vec<Value> = i["xattr_names"]
            .as_array()
            .unwrap()
            .iter()
            .zip(i["xattr_values"].as_array().unwrap())
            .zip(i["xattr_nonces"].as_array().unwrap())
            .map(|((name, value), nonce)| {
                let backing = n.encrypt_xattr_name(name.as_str().unwrap().as_bytes()).unwrap();
                let sealed = n.encrypt_xattr_value_with_nonce(&backing, &h(value), &h12(nonce));
                json!({"backing_name": backing, "backing_value": hex::encode(sealed)})
            })
            .collect();
        json!({"description": "Names encrypted in one directory; symlink targets, one inline and one PATH_MAX-long in a sidecar; user xattrs (names after 'user.').", "inputs": i, "names": names, "targets": targets, "xattrs": xattrs})
    };
    let stored = settle("names", build(&inputs));
    assert_eq!(build(&stored["inputs"]), stored);

    let i = &stored["inputs"];
    let n = NameCipher::new(&NameKey::from_bytes(h32(&i["name_key"])));
    let dir = DirIv(h16(&i["dir_iv"]));
    for (plain, enc) in i["names"].as_array().unwrap().iter().zip(stored["names"].as_array().unwrap()) {
        let entry = enc["entry"].as_str().unwrap();
        let full = match enc.get("sidecar") {
            Some(s) => {
                NameCipher::check_long_name(entry, s.as_str().unwrap()).unwrap();
                s.as_str().unwrap()
            }
            None => entry,
        };
        assert_eq!(n.decrypt_name(&dir, full).unwrap(), h(plain));
        flip_encoded(full, |f| {
            assert_eq!(n.decrypt_name(&dir, f).unwrap_err(), Error::Tampered { what: Structure::Name })
        });
        // A flipped directory IV: the name does not decrypt.
        for_each_bit_flip(&dir.0, |_, iv| assert!(n.decrypt_name(&DirIv(iv.try_into().unwrap()), full).is_err()));
    }
    for (plain, enc) in i["targets"].as_array().unwrap().iter().zip(stored["targets"].as_array().unwrap()) {
        let stored_target = enc.get("sidecar").unwrap_or(&enc["symlink"]).as_str().unwrap();
        assert_eq!(n.decrypt_target(stored_target).unwrap(), h(plain));
        flip_encoded(stored_target, |f| {
            assert_eq!(n.decrypt_target(f).unwrap_err(), Error::Tampered { what: Structure::SymlinkTarget })
        });
    }
}

#[test]
fn xattrs_in_the_names_vector_open_and_resist_flips() {
    let text = std::fs::read_to_string(dir().join("names.json")).unwrap();
    let stored: Value = serde_json::from_str(&text).unwrap();
    let i = &stored["inputs"];
    let n = NameCipher::new(&NameKey::from_bytes(h32(&i["name_key"])));
    for ((name, value), enc) in i["xattr_names"]
        .as_array()
        .unwrap()
        .iter()
        .zip(i["xattr_values"].as_array().unwrap())
        .zip(stored["xattrs"].as_array().unwrap())
    {
        let backing = enc["backing_name"].as_str().unwrap();
        assert_eq!(n.decrypt_xattr_name(backing).unwrap(), name.as_str().unwrap().as_bytes());
        let sealed = h(&enc["backing_value"]);
        assert_eq!(n.decrypt_xattr_value(backing, &sealed).unwrap(), h(value));
        for_each_bit_flip(&sealed, |_, f| {
            assert_eq!(n.decrypt_xattr_value(backing, f).unwrap_err(), Error::Tampered { what: Structure::Xattr })
        });
        let encoded = backing.strip_prefix(tresor_format::names::XATTR_PREFIX).unwrap();
        flip_encoded(encoded, |f| {
            assert_eq!(
                n.decrypt_xattr_name(&format!("{}{f}", tresor_format::names::XATTR_PREFIX)).unwrap_err(),
                Error::Tampered { what: Structure::Xattr }
            )
        });
    }
}

/// Flips every bit of the binary ciphertext behind a base64url string.
fn flip_encoded(encoded: &str, check: impl Fn(&str)) {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
    let raw = B64.decode(encoded).unwrap();
    for_each_bit_flip(&raw, |_, f| check(&B64.encode(f)));
}

// ---- directory policies (in the volume file) ---------------------------------------

#[test]
fn directory_policies_in_the_volume_vector() {
    let (volume, v) = vector_volume();
    let cast = &v["inputs"]["cast"];
    let policies: Vec<_> = volume.policies().map(|(iv, d)| (*iv, d.to_vec())).collect();
    assert_eq!(
        policies,
        [(DirIv([0xd1; 16]), vec![person(cast, "alice").id(), person(cast, "bob").id()]), (DirIv([0xd2; 16]), vec![]),]
    );
    assert_eq!(volume.policy(&DirIv([0xd3; 16])), None);
}

// ---- places: directory IV tags and special-file records --------------------------

#[test]
fn places() {
    use tresor_format::place::{Node, NodeKind, Place, PlaceKey, DIRIV_FILE_LEN};
    let inputs = json!({
        "name_key": hex::encode([0x6eu8; 32]),
        "root_iv": hex::encode([0xa0u8; 16]),
        "child_iv": hex::encode([0xa1u8; 16]),
        "child_entry": "c2hvcnQtZW5jcnlwdGVkLW5hbWUtb2YtYS1kaXJlY3Rvcnk",
        "moved_to_entry": "tresor.longname.3t1ZJ7yqvR9mUO6s0mPpxGJXcJYyP2oYV4l-wKk3b7A",
        "nodes": [
            {"kind": "fifo", "rdev": 0},
            {"kind": "char", "rdev": 0x0103},
        ],
    });
    let kind = |s: &str| match s {
        "fifo" => NodeKind::Fifo,
        "char" => NodeKind::Char,
        other => panic!("{other}"),
    };
    let build = |i: &Value| {
        let k = PlaceKey::new(&NameKey::from_bytes(h32(&i["name_key"])));
        let root = DirIv(h16(&i["root_iv"]));
        let child = DirIv(h16(&i["child_iv"]));
        let at = Place::In { parent: &root, entry: i["child_entry"].as_str().unwrap() };
        let to = Place::In { parent: &root, entry: i["moved_to_entry"].as_str().unwrap() };
        let nodes: Vec<Value> = i["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let node = Node { kind: kind(n["kind"].as_str().unwrap()), rdev: n["rdev"].as_u64().unwrap() };
                json!(hex::encode(k.seal_node(node)))
            })
            .collect();
        json!({
            "description": "tresor.diriv of the root, of a child directory (entry child_entry in the root), and of that child while it is renamed to moved_to_entry (new place's tag first); special-file records.",
            "inputs": i,
            "root_diriv": hex::encode(k.seal_diriv(&root, Place::Root)),
            "child_diriv": hex::encode(k.seal_diriv(&child, at)),
            "child_diriv_moving": hex::encode(k.seal_diriv_moving(&child, at, to)),
            "nodes": nodes,
        })
    };
    let stored = settle("places", build(&inputs));
    assert_eq!(build(&stored["inputs"]), stored);

    let i = &stored["inputs"];
    let k = PlaceKey::new(&NameKey::from_bytes(h32(&i["name_key"])));
    let root = DirIv(h16(&i["root_iv"]));
    let child = DirIv(h16(&i["child_iv"]));
    let at = Place::In { parent: &root, entry: i["child_entry"].as_str().unwrap() };
    let to = Place::In { parent: &root, entry: i["moved_to_entry"].as_str().unwrap() };
    assert_eq!(k.open_diriv(&h(&stored["root_diriv"]), Place::Root).unwrap(), root);
    assert_eq!(k.open_diriv(&h(&stored["child_diriv"]), at).unwrap(), child);
    let moving = h(&stored["child_diriv_moving"]);
    assert_eq!(k.open_diriv(&moving, at).unwrap(), child);
    assert_eq!(k.open_diriv(&moving, to).unwrap(), child);

    // An IV file is valid only at its own place: not as the root, not under
    // another name, not under another parent.
    let child_file = h(&stored["child_diriv"]);
    let tampered = |r: Result<DirIv, Error>| r == Err(Error::Tampered { what: Structure::DirIv });
    assert!(tampered(k.open_diriv(&child_file, Place::Root)));
    assert!(tampered(k.open_diriv(&child_file, to)));
    assert!(tampered(
        k.open_diriv(&child_file, Place::In { parent: &child, entry: i["child_entry"].as_str().unwrap() })
    ));
    assert!(matches!(
        k.open_diriv(&child_file[..DIRIV_FILE_LEN - 1], at),
        Err(Error::Malformed { what: Structure::DirIv, .. })
    ));
    for_each_bit_flip(&child_file, |i, f| {
        assert!(tampered(k.open_diriv(f, at)), "flip in byte {i} of a directory IV file");
    });

    for (n, sealed) in i["nodes"].as_array().unwrap().iter().zip(stored["nodes"].as_array().unwrap()) {
        let node = Node { kind: kind(n["kind"].as_str().unwrap()), rdev: n["rdev"].as_u64().unwrap() };
        let bytes = h(sealed);
        assert_eq!(k.open_node(&bytes).unwrap(), node);
        for_each_bit_flip(&bytes, |i, f| {
            let err = k.open_node(f).expect_err("a flipped special-file record must not open");
            let ok = match i {
                0..=7 => err == Error::BadMagic { what: Structure::SpecialFile },
                8..=9 => matches!(err, Error::UnsupportedVersion { .. }),
                _ => matches!(
                    err,
                    Error::Tampered { what: Structure::SpecialFile }
                        | Error::Malformed { what: Structure::SpecialFile, .. }
                ),
            };
            assert!(ok, "flip in byte {i} of a special-file record: unexpected {err:?}");
        });
    }
}

// ---- volume file version 2 (migration) -------------------------------------------------

#[test]
fn a_version_2_volume_file_opens_only_for_migration() {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(dir().join("volume-v2.json")).unwrap()).unwrap();
    let cast = &v["inputs"]["cast"];
    let alice = person(cast, "alice");
    let file = h(&v["file"]);
    let pinned = [alice.public().ed25519];
    assert_eq!(Volume::version_of(&file).unwrap(), 2);
    assert_eq!(
        Volume::open(&file, &pinned).unwrap_err(),
        Error::UnsupportedVersion { what: Structure::VolumeFile, found: 2, supported: 3 }
    );
    let mut old = Volume::open_for_migration(&file, &pinned).unwrap();
    assert_eq!(old.generation, v["generation"].as_u64().unwrap());
    assert_eq!((old.signed_at, old.expires_at), (0, 0), "version 2 has no signing time or expiry");
    assert!(matches!(old.check_current(1), Err(Error::Expired { .. })));
    assert_eq!(old.name_key(&person(cast, "bob")).unwrap().as_bytes(), &h32(&v["inputs"]["name_key"]));
    assert!(Volume::open_for_migration(&file, &[person(cast, "bob").public().ed25519]).is_err(), "still pinned");

    // Signed again, it is a current version 3 registry with the default validity.
    old.sign_at(&alice, 1_800_000_000).unwrap();
    let new = Volume::open(&old.to_bytes(), &pinned).unwrap();
    assert_eq!(new.generation, v["generation"].as_u64().unwrap() + 1);
    assert_eq!(new.expires_at - new.signed_at, tresor_format::volume::DEFAULT_VALIDITY_SECS);
    assert_eq!(new.policies().count(), 2);
}
