//! Proofs that a party outside the volume checks with one public key
//! (`docs/AUDIT.md` §4.6): that a record is in a log (inclusion), and that a
//! later checkpoint extends an earlier one (consistency), each against
//! checkpoints signed as C2SP notes by the log's key. With the registry
//! inside the proof, the steward's key alone suffices: it certifies the
//! registry, which names the member whose key signed the log.
//!
//! A proof is one JSON object (`format` = [`FORMAT`]); every hash and byte
//! string in it is standard base64, ids are lowercase hex.

use std::io::Read;

use base64::prelude::{Engine, BASE64_STANDARD};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use tresor_format::{MemberId, Volume};

use crate::chain::{hex, unhex};
use crate::frame::FrameReader;
use crate::merkle::{self, Stored};
use crate::note::{self, Head};
use crate::record::{Op, Record};
use crate::verify::MerkleHead;

/// The `format` of a proof file.
pub const FORMAT: &str = "tresor-audit-proof/1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Inclusion,
    Consistency,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proof {
    pub format: String,
    pub kind: Kind,
    /// The volume id and the log's mount id, hex.
    pub volume: String,
    pub mount_id: String,
    /// The member whose key signs the log, hex.
    pub member: String,
    /// The log's key as a signed-note verifier key (`name+id+base64`).
    pub log_key: String,
    /// The volume's signed registry (base64), so that the steward's key
    /// alone checks the proof.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// Consistency: the earlier checkpoint (a signed note).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_checkpoint: Option<String>,
    /// The checkpoint the proof is against (a signed note): the tree that
    /// holds the record, or the later tree.
    pub checkpoint: String,
    /// Inclusion: the record's index in the tree (its seq) and its bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// The proof's hashes, in RFC 9162 order.
    pub proof: Vec<String>,
}

/// A log's tree, rebuilt from its records: every subtree hash, and every
/// Merkle checkpoint it holds.
pub struct LogTree {
    pub volume: [u8; 16],
    pub mount_id: [u8; 16],
    pub member: MemberId,
    pub key: VerifyingKey,
    pub stored: Stored,
    pub heads: Vec<MerkleHead>,
    /// The bytes of the record asked for, if it was in the files.
    pub wanted: Option<Vec<u8>>,
}

/// Reads a log's files (verified; all its segments from seq 0, in order)
/// and rebuilds its tree, keeping the bytes of record `want`.
pub fn rebuild<R: Read>(
    files: impl IntoIterator<Item = R>,
    registry: &Volume,
    want: Option<u64>,
) -> Result<LogTree, String> {
    let mut tree: Option<LogTree> = None;
    for file in files {
        let mut frames = FrameReader::new(file).map_err(|e| e.to_string())?;
        if frames.version() < 2 {
            return Err("a version 1 log has no Merkle checkpoints: nothing in it can be proven this way".into());
        }
        while let Some((_, bytes)) = frames.next_frame() {
            let r = Record::links_from_bytes(bytes)?;
            let t = match &mut tree {
                Some(t) => t,
                None => {
                    if r.seq != 0 {
                        return Err(format!(
                            "the log starts at seq {} (earlier segments pruned or not given): a proof needs every \
                             record from seq 0",
                            r.seq
                        ));
                    }
                    let start = Record::from_bytes(bytes)?;
                    let member = MemberId(start.member);
                    let key = crate::verify::signer(registry, &member)
                        .ok_or_else(|| format!("member {member} is not in the registry"))?;
                    tree.insert(LogTree {
                        volume: registry.id,
                        mount_id: r.mount_id,
                        member,
                        key,
                        stored: Stored::new(),
                        heads: Vec::new(),
                        wanted: None,
                    })
                }
            };
            if r.seq != t.stored.size() || r.mount_id != t.mount_id {
                return Err(format!(
                    "record seq {} does not follow seq {} of mount {}: give every segment of one log",
                    r.seq,
                    t.stored.size().wrapping_sub(1),
                    hex(&t.mount_id)
                ));
            }
            if r.op == Op::Checkpoint {
                let root = r.root.as_deref().and_then(|b| b.try_into().ok());
                let nsig = r.nsig.as_deref().and_then(|b| b.try_into().ok());
                if let (Some(root), Some(nsig)) = (root, nsig) {
                    t.heads.push(MerkleHead { size: r.seq, root, nsig, key: t.key.to_bytes() });
                }
            }
            if want == Some(r.seq) {
                t.wanted = Some(bytes.to_vec());
            }
            t.stored.push(bytes);
        }
    }
    tree.ok_or_else(|| "no records".into())
}

impl LogTree {
    fn head(&self, size: u64) -> Result<&MerkleHead, String> {
        self.heads.iter().find(|h| h.size == size).ok_or_else(|| {
            format!(
                "no checkpoint of this log has tree size {size}; its checkpoints have sizes {}",
                self.heads.iter().map(|h| h.size.to_string()).collect::<Vec<_>>().join(", ")
            )
        })
    }

    fn proof(&self, kind: Kind, registry: Option<&[u8]>, checkpoint: &MerkleHead, hashes: Vec<[u8; 32]>) -> Proof {
        Proof {
            format: FORMAT.into(),
            kind,
            volume: hex(&self.volume),
            mount_id: hex(&self.mount_id),
            member: hex(&self.member.0),
            log_key: note::log_vkey(&self.mount_id, &self.key),
            registry: registry.map(|r| BASE64_STANDARD.encode(r)),
            old_checkpoint: None,
            checkpoint: String::from_utf8(checkpoint.note(&self.mount_id)).expect("notes are UTF-8"),
            index: None,
            record: None,
            proof: hashes.iter().map(|h| BASE64_STANDARD.encode(h)).collect(),
        }
    }

    /// Proves that record `seq` is in the tree of checkpoint `size` (by
    /// default the first checkpoint after it).
    pub fn inclusion(&self, seq: u64, size: Option<u64>, registry: Option<&[u8]>) -> Result<Proof, String> {
        let head = match size {
            Some(s) => self.head(s)?,
            None => self.heads.iter().find(|h| h.size > seq).ok_or_else(|| {
                format!("no checkpoint covers seq {seq} yet (the log's tree has no signed root past it)")
            })?,
        };
        if seq >= head.size {
            return Err(format!("record seq {seq} is not in the tree of size {}", head.size));
        }
        let record = self.wanted.as_ref().ok_or_else(|| format!("the log holds no record seq {seq}"))?;
        let hashes = self.stored.inclusion(seq, head.size).map_err(|e| e.to_string())?;
        let mut p = self.proof(Kind::Inclusion, registry, head, hashes);
        (p.index, p.record) = (Some(seq), Some(BASE64_STANDARD.encode(record)));
        Ok(p)
    }

    /// Proves that the tree of checkpoint `new` (by default the latest)
    /// extends that of checkpoint `old`.
    pub fn consistency(&self, old: u64, new: Option<u64>, registry: Option<&[u8]>) -> Result<Proof, String> {
        let old = self.head(old)?;
        let new = match new {
            Some(n) => self.head(n)?,
            None => self.heads.last().ok_or("the log has no Merkle checkpoint")?,
        };
        if old.size > new.size {
            return Err(format!("checkpoint {} is later than checkpoint {}", old.size, new.size));
        }
        let hashes = self.stored.consistency(old.size, new.size).map_err(|e| e.to_string())?;
        let mut p = self.proof(Kind::Consistency, registry, new, hashes);
        p.old_checkpoint = Some(String::from_utf8(old.note(&self.mount_id)).expect("notes are UTF-8"));
        Ok(p)
    }
}

/// What a proof is checked with.
pub enum Trust<'a> {
    /// The steward's Ed25519 key: the proof's registry must verify with it
    /// and name the log's member.
    Steward(&'a VerifyingKey),
    /// The log's key itself, as a signed-note verifier key.
    LogKey(&'a str),
}

/// What a valid proof shows.
#[derive(Debug)]
pub struct Checked {
    pub kind: Kind,
    pub mount_id: [u8; 16],
    pub member: MemberId,
    pub head: Head,
    pub old: Option<Head>,
    /// Inclusion: the record proven.
    pub record: Option<Record>,
}

fn b64(what: &str, s: &str) -> Result<Vec<u8>, String> {
    BASE64_STANDARD.decode(s).map_err(|_| format!("the proof's {what} is not base64"))
}

/// Parses a signed-note verifier key of an Ed25519 signer.
pub fn parse_log_vkey(vkey: &str) -> Result<(String, VerifyingKey), String> {
    let bad = || format!("{vkey:?} is not a signed-note verifier key (name+id+base64)");
    let mut parts = vkey.trim().splitn(3, '+');
    let (name, id, key) = (parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?);
    let raw = BASE64_STANDARD.decode(key).map_err(|_| bad())?;
    let key = match raw.split_first() {
        Some((1, k)) if k.len() == 32 => VerifyingKey::from_bytes(k.try_into().expect("32")).map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    if note::log_vkey_named(name, &key) != vkey.trim() || u32::from_str_radix(id, 16).is_err() {
        return Err(format!("{vkey:?}: its id does not match its name and key"));
    }
    Ok((name.to_owned(), key))
}

/// Checks a proof with nothing but `trust`: says what it proves, or why it
/// does not hold.
pub fn check(p: &Proof, trust: Trust<'_>) -> Result<Checked, String> {
    if p.format != FORMAT {
        return Err(format!("not a Tresor audit proof (format {:?}, expected {FORMAT:?})", p.format));
    }
    let mount_id: [u8; 16] = unhex(&p.mount_id).ok_or("the proof's mount_id is not 32 hex digits")?;
    let member = MemberId(unhex(&p.member).ok_or("the proof's member is not 32 hex digits")?);
    let key = match trust {
        Trust::LogKey(vkey) => {
            let (name, key) = parse_log_vkey(vkey)?;
            if name != note::origin(&mount_id) {
                return Err(format!("the key given is for {name}, the proof for {}", note::origin(&mount_id)));
            }
            key
        }
        Trust::Steward(steward) => {
            let registry = b64(
                "registry",
                p.registry.as_deref().ok_or("the proof carries no registry: check it with the log's key (--key)")?,
            )?;
            let volume = Volume::open(&registry, &[*steward])
                .map_err(|e| format!("the proof's registry does not verify with the steward's key: {e}"))?;
            if hex(&volume.id) != p.volume {
                return Err("the proof's registry is of another volume".into());
            }
            crate::verify::signer(&volume, &member)
                .ok_or_else(|| format!("member {member} is not in the proof's registry"))?
        }
    };
    let head = note::open_log_note(p.checkpoint.as_bytes(), &mount_id, &key)?;
    let hashes = p
        .proof
        .iter()
        .map(|h| b64("hash", h)?.try_into().map_err(|_| "a proof hash is not 32 bytes".to_owned()))
        .collect::<Result<Vec<[u8; 32]>, String>>()?;
    match p.kind {
        Kind::Inclusion => {
            let index = p.index.ok_or("an inclusion proof without its index")?;
            let bytes = b64("record", p.record.as_deref().ok_or("an inclusion proof without its record")?)?;
            let record = Record::from_bytes(&bytes).map_err(|e| format!("the proof's record does not parse: {e}"))?;
            if record.seq != index || record.mount_id != mount_id || record.member != member.0 {
                return Err(format!(
                    "the record is seq {} of mount {}, not record {index} of this log",
                    record.seq,
                    hex(&record.mount_id)
                ));
            }
            if !merkle::check_inclusion(&hashes, head.size, &head.root, index, &merkle::leaf(&bytes)) {
                return Err(format!(
                    "the inclusion proof does not hold: record {index} is not in the tree of size {} with root {}",
                    head.size,
                    BASE64_STANDARD.encode(head.root)
                ));
            }
            Ok(Checked { kind: p.kind, mount_id, member, head, old: None, record: Some(record) })
        }
        Kind::Consistency => {
            let old_note = p.old_checkpoint.as_deref().ok_or("a consistency proof without its earlier checkpoint")?;
            let old = note::open_log_note(old_note.as_bytes(), &mount_id, &key)
                .map_err(|e| format!("the earlier checkpoint: {e}"))?;
            if !merkle::check_consistency(&hashes, old.size, &old.root, head.size, &head.root) {
                return Err(format!(
                    "the consistency proof does not hold: the tree of size {} does not extend the tree of size {} \
                     (the log's history was rewritten, or the proof changed)",
                    head.size, old.size
                ));
            }
            Ok(Checked { kind: p.kind, mount_id, member, head, old: Some(old), record: None })
        }
    }
}
