//! The Merkle side of verifying a version 2 log (`docs/AUDIT.md` §4.5):
//! which records carry Merkle fields, and whether a checkpoint's root and
//! note signature are those of the records before it.

use ed25519_dalek::VerifyingKey;

use crate::merkle::Frontier;
use crate::record::{Op, Record};

/// A verified Merkle checkpoint: the tree of the first `size` records of
/// the log (all segments), its root, and the signature of its note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleHead {
    pub size: u64,
    pub root: [u8; 32],
    pub nsig: [u8; 64],
    /// The mount key that signed it.
    pub key: [u8; 32],
}

impl MerkleHead {
    /// The checkpoint as a C2SP signed note.
    pub fn note(&self, mount_id: &[u8; 16]) -> Vec<u8> {
        let key = VerifyingKey::from_bytes(&self.key).expect("a verified key");
        crate::note::signed(mount_id, self.size, &self.root, &key, &self.nsig)
    }
}

/// The Merkle fields a record of this version may carry: none in version
/// 1; in version 2 `root` and `nsig` on checkpoints only, and `range` on a
/// file's first record when it is a `segment` (the tree then starts from it).
pub(crate) fn merkle_fields(r: &Record, version: u16, first: bool, tree: &mut Option<Frontier>) -> Result<(), String> {
    let (root, range) = (r.root.is_some() || r.nsig.is_some(), r.range.is_some());
    if version < 2 {
        if root || range {
            return Err(format!("record seq {} carries Merkle fields, which a version 1 log never has", r.seq));
        }
        return Ok(());
    }
    if root != (r.op == Op::Checkpoint) || range != (r.op == Op::Segment) {
        return Err(format!("record seq {} ({}) has Merkle fields that its kind never has", r.seq, r.op.as_str()));
    }
    if first && r.op == Op::Segment {
        let raw = r.range.as_deref().expect("checked");
        let hashes = raw.chunks_exact(32).map(|c| c.try_into().expect("32")).collect();
        *tree = Some(
            Frontier::from_parts(r.seq, hashes)
                .filter(|_| raw.len().is_multiple_of(32))
                .ok_or_else(|| format!("the segment record's Merkle range does not fit seq {}", r.seq))?,
        );
    }
    Ok(())
}

/// A version 2 checkpoint's Merkle root must be that of the records before
/// it, and its note signature the mount key's.
pub(crate) fn check_root(r: &Record, tree: &Frontier, key: &VerifyingKey) -> Result<MerkleHead, String> {
    let root = tree.root();
    if tree.size() != r.seq || r.root.as_deref() != Some(&root[..]) {
        return Err(format!(
            "the Merkle root in the checkpoint at seq {} is not the root of the records before it: the log was \
             rewritten",
            r.seq
        ));
    }
    let nsig: [u8; 64] =
        r.nsig.as_deref().and_then(|s| s.try_into().ok()).ok_or("a checkpoint without its note signature")?;
    let note = crate::note::signed(&r.mount_id, r.seq, &root, key, &nsig);
    crate::note::open_log_note(&note, &r.mount_id, key)
        .map_err(|e| format!("the checkpoint note at seq {}: {e}", r.seq))?;
    Ok(MerkleHead { size: r.seq, root, nsig, key: key.to_bytes() })
}
