//! Merkle checkpoints as C2SP signed notes (<https://c2sp.org/tlog-checkpoint>,
//! <https://c2sp.org/signed-note>) and witness cosignatures
//! (<https://c2sp.org/tlog-cosignature>), so that a party outside Tresor
//! checks them with tools of its own (`docs/AUDIT.md`, "Merkle checkpoints").
//!
//! The note format is Cloudflare's `signed_note` (a port of Go's
//! `sumdb/note`) and the checkpoint body `tlog_tiles`; this module adds the
//! names and keys Tresor uses: a log's origin `tresor.audit/<mount id hex>`,
//! signed by the mount's Ed25519 key under that same name, and witnesses
//! holding an ordinary Ed25519 key of their own.

use base64::prelude::{Engine, BASE64_STANDARD};
use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use signed_note::{Note, Signature, StandardVerifier, Verifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

use crate::chain::hex;

/// The origin line (and the signer's key name) of a log's checkpoints.
pub fn origin(mount_id: &[u8; 16]) -> String {
    format!("tresor.audit/{}", hex(mount_id))
}

/// The note text of the checkpoint of a log's first `size` records.
pub fn text(mount_id: &[u8; 16], size: u64, root: &[u8; 32]) -> Vec<u8> {
    Checkpoint::new(&origin(mount_id), size, Hash(*root), "").expect("a valid origin").to_bytes()
}

/// A checkpoint's body as read from a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub origin: String,
    pub size: u64,
    pub root: [u8; 32],
}

impl Head {
    pub fn text(&self) -> Vec<u8> {
        Checkpoint::new(&self.origin, self.size, Hash(self.root), "").expect("a valid origin").to_bytes()
    }

    pub fn parse(text: &[u8]) -> Result<Head, String> {
        let c = Checkpoint::from_bytes(text).map_err(|e| format!("the checkpoint body is malformed ({e})"))?;
        if !c.extension().is_empty() {
            return Err("the checkpoint has extension lines, which Tresor never writes".into());
        }
        Ok(Head { origin: c.origin().to_owned(), size: c.size(), root: c.hash().0 })
    }
}

const ALG_ED25519: u8 = 0x01;
const ALG_COSIGNATURE_V1: u8 = 0x04;

fn key_id(name: &str, alg: u8, key: &VerifyingKey) -> u32 {
    let mut k = vec![alg];
    k.extend_from_slice(key.as_bytes());
    signed_note::key_id(name, &k)
}

/// The signed-note verifier key (`name+id+base64`) of a log signed by `key`.
pub fn log_vkey(mount_id: &[u8; 16], key: &VerifyingKey) -> String {
    log_vkey_named(&origin(mount_id), key)
}

/// The signed-note verifier key of an Ed25519 signer named `name`.
pub fn log_vkey_named(name: &str, key: &VerifyingKey) -> String {
    signed_note::new_ed25519_verifier_key(name, key)
}

/// A checkpoint note with the log's signature (`nsig` of the checkpoint
/// record that carries the root).
pub fn signed(mount_id: &[u8; 16], size: u64, root: &[u8; 32], key: &VerifyingKey, nsig: &[u8; 64]) -> Vec<u8> {
    let name = origin(mount_id);
    let sig = Signature::new(name.clone(), key_id(&name, ALG_ED25519, key), nsig.to_vec()).expect("valid name");
    Note::new(&text(mount_id, size, root), &[sig]).expect("a well-formed note").to_bytes()
}

/// Checks a checkpoint note signed by the log's key (and any other lines,
/// ignored unless they claim the log's key name and id); returns its body.
pub fn open_log_note(note: &[u8], mount_id: &[u8; 16], key: &VerifyingKey) -> Result<Head, String> {
    let n = Note::from_bytes(note).map_err(|e| format!("not a signed note ({e})"))?;
    let v = StandardVerifier::new(&log_vkey(mount_id, key)).expect("a key we made");
    n.verify(&VerifierList::new(vec![Box::new(v)]))
        .map_err(|e| format!("the log's signature on the checkpoint does not verify ({e})"))?;
    let head = Head::parse(n.text())?;
    if head.origin != origin(mount_id) {
        return Err(format!("the checkpoint is for {}, not {}", head.origin, origin(mount_id)));
    }
    Ok(head)
}

/// A witness's name is a signed-note key name (no spaces, no '+') that
/// can also stand in a file name beside the logs (no '/', no leading '.').
fn witness_name_ok(name: &str) -> bool {
    signed_note::is_key_name_valid(name) && !name.contains('/') && !name.starts_with('.')
}

/// An independent party's key for cosigning checkpoints (a data owner, an
/// ethics board): an ordinary Ed25519 key with a name, kept in a file as
/// `PRIVATE+KEY+<name>+<id>+<base64(0x01 ‖ seed)>` (the Go `note` private
/// key form).
pub struct WitnessKey {
    name: String,
    key: SigningKey,
}

impl WitnessKey {
    pub fn generate(name: &str) -> Result<WitnessKey, String> {
        if !witness_name_ok(name) {
            return Err(format!("{name:?} is not a valid witness name (no spaces, '+' or '/')"));
        }
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut *seed);
        Ok(WitnessKey { name: name.to_owned(), key: SigningKey::from_bytes(&seed) })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn to_file(&self) -> zeroize::Zeroizing<String> {
        let mut k = zeroize::Zeroizing::new(vec![ALG_ED25519]);
        k.extend_from_slice(self.key.as_bytes());
        let id = key_id(&self.name, ALG_ED25519, &self.key.verifying_key());
        zeroize::Zeroizing::new(format!("PRIVATE+KEY+{}+{id:08x}+{}\n", self.name, BASE64_STANDARD.encode(&*k)))
    }

    pub fn parse(file: &str) -> Result<WitnessKey, String> {
        let bad = || "not a witness key file (PRIVATE+KEY+name+id+key)".to_owned();
        let rest = file.trim().strip_prefix("PRIVATE+KEY+").ok_or_else(bad)?;
        let mut parts = rest.splitn(3, '+');
        let (name, id, b64) =
            (parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?);
        let raw = zeroize::Zeroizing::new(BASE64_STANDARD.decode(b64).map_err(|_| bad())?);
        if parts.next().is_some() || raw.len() != 33 || raw[0] != ALG_ED25519 {
            return Err(bad());
        }
        if !witness_name_ok(name) {
            return Err(bad());
        }
        let key = SigningKey::from_bytes(raw[1..].try_into().expect("32 bytes"));
        let w = WitnessKey { name: name.to_owned(), key };
        if u32::from_str_radix(id, 16).ok() != Some(key_id(name, ALG_ED25519, &w.key.verifying_key())) {
            return Err("the witness key file's id does not match its key".into());
        }
        Ok(w)
    }

    /// The public key others pass to `verify --witness`:
    /// `<name>+<id>+<base64(0x04 ‖ key)>`, the tlog-cosignature form.
    pub fn vkey(&self) -> String {
        let public = self.key.verifying_key();
        let mut k = vec![ALG_COSIGNATURE_V1];
        k.extend_from_slice(public.as_bytes());
        let id = key_id(&self.name, ALG_COSIGNATURE_V1, &public);
        format!("{}+{id:08x}+{}", self.name, BASE64_STANDARD.encode(k))
    }

    /// Adds this witness's cosignature (at `time`, unix seconds) to a note,
    /// replacing an earlier one of the same key.
    pub fn cosign(&self, note: &[u8], time: u64) -> Result<Vec<u8>, String> {
        let mut n = Note::from_bytes(note).map_err(|e| format!("not a signed note ({e})"))?;
        let signer =
            Cosigner { witness: self, time, id: key_id(&self.name, ALG_COSIGNATURE_V1, &self.key.verifying_key()) };
        n.add_sigs(&[&signer]).map_err(|e| e.to_string())?;
        Ok(n.to_bytes())
    }
}

struct Cosigner<'a> {
    witness: &'a WitnessKey,
    time: u64,
    id: u32,
}

impl signed_note::Signer for Cosigner<'_> {
    fn name(&self) -> &str {
        &self.witness.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let mut sig = self.time.to_be_bytes().to_vec();
        sig.extend_from_slice(&self.witness.key.sign(&cosigned_message(self.time, msg)).to_bytes());
        Ok(sig)
    }
}

fn cosigned_message(time: u64, text: &[u8]) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {time}\n").into_bytes();
    m.extend_from_slice(text);
    m
}

/// A witness's public key, parsed from its `vkey` form.
pub struct WitnessVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl WitnessVerifier {
    pub fn parse(vkey: &str) -> Result<WitnessVerifier, String> {
        let bad = |why: &str| format!("not a witness public key (name+id+base64 of 0x04 and the key): {why}");
        let mut parts = vkey.trim().splitn(3, '+');
        let (name, id, b64) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(n), Some(i), Some(b), None) => (n, i, b),
            _ => return Err(bad("three parts expected")),
        };
        let raw = BASE64_STANDARD.decode(b64).map_err(|_| bad("bad base64"))?;
        if raw.len() != 33 || raw[0] != ALG_COSIGNATURE_V1 {
            return Err(bad("not a cosignature/v1 Ed25519 key"));
        }
        let key = VerifyingKey::from_bytes(raw[1..].try_into().expect("32 bytes")).map_err(|_| bad("bad key"))?;
        if !witness_name_ok(name) {
            return Err(bad("a witness name has no spaces, '+' or '/'"));
        }
        let id = u32::from_str_radix(id, 16).map_err(|_| bad("bad id"))?;
        if id != key_id(name, ALG_COSIGNATURE_V1, &key) {
            return Err(bad("the id does not match the key"));
        }
        Ok(WitnessVerifier { name: name.to_owned(), id, key })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The time of this witness's valid cosignature on `note`, if any.
    pub fn cosigned(&self, note: &[u8]) -> Result<u64, String> {
        let n = Note::from_bytes(note).map_err(|e| format!("not a signed note ({e})"))?;
        let list =
            VerifierList::new(vec![Box::new(CosignatureCheck { name: self.name.clone(), id: self.id, key: self.key })]);
        let (ok, _) = n.verify(&list).map_err(|e| format!("no valid cosignature by witness {} ({e})", self.name))?;
        let sig = ok.first().expect("verified").signature();
        Ok(u64::from_be_bytes(sig[..8].try_into().expect("checked")))
    }
}

struct CosignatureCheck {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl Verifier for CosignatureCheck {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Some((time, sig)) = sig.split_first_chunk::<8>() else { return false };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else { return false };
        self.key.verify(&cosigned_message(u64::from_be_bytes(*time), msg), &sig).is_ok()
    }
}

/// SHA-256 of a note's text: names a checkpoint in file names and JSON.
pub fn text_hash(text: &[u8]) -> [u8; 32] {
    Sha256::digest(text).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_format::Identity;

    #[test]
    fn a_log_note_verifies_with_the_log_key_and_a_witness_cosigns_it() {
        let id = Identity::from_seed(&[3; 32], "bob").unwrap();
        let mid = [9u8; 16];
        let root = crate::merkle::leaf(b"r");
        let t = text(&mid, 1, &root);
        let nsig = tresor_format::audit::sign_note(&id, &t).unwrap();
        let note = signed(&mid, 1, &root, &id.public().ed25519, &nsig);
        let head = open_log_note(&note, &mid, &id.public().ed25519).unwrap();
        assert_eq!((head.size, head.root), (1, root));
        let other = Identity::from_seed(&[4; 32], "eve").unwrap();
        assert!(open_log_note(&note, &mid, &other.public().ed25519).is_err());

        let w = WitnessKey::generate("ethics-board").unwrap();
        let w2 = WitnessKey::parse(&w.to_file()).unwrap();
        let cosigned = w2.cosign(&note, 1_700_000_000).unwrap();
        let v = WitnessVerifier::parse(&w.vkey()).unwrap();
        assert_eq!(v.cosigned(&cosigned).unwrap(), 1_700_000_000);
        assert!(v.cosigned(&note).is_err());
        open_log_note(&cosigned, &mid, &id.public().ed25519).unwrap();
        // The cosignature is bound to the checkpoint: moved to another, it fails.
        let other_note = signed(&mid, 1, &[0; 32], &id.public().ed25519, &nsig);
        let sigline = &cosigned[note.len()..];
        let mut moved = other_note.clone();
        moved.extend_from_slice(sigline);
        assert!(v.cosigned(&moved).is_err());
    }
}
