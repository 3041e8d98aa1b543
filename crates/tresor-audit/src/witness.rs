//! Witnesses (`docs/AUDIT.md` §4.7): an independent party (a data owner,
//! an ethics board) that cosigns a log's latest checkpoint only after
//! checking that it extends the checkpoint it cosigned before. The mount's
//! key can sign any history, so its holder could rewrite a log and sign it
//! again; a witness that remembers what it saw refuses that fork, and
//! `verify --witness` then finds no cosignature on the rewritten log.

use base64::prelude::{Engine, BASE64_STANDARD};

use crate::chain::hex;
use crate::merkle;
use crate::note::{self, Head, WitnessKey, WitnessVerifier};
use crate::proof::LogTree;
use crate::verify::MerkleHead;

/// The file beside a log's segments that holds its latest checkpoint with
/// the cosignature of witness `name`.
pub fn cosignature_file(mount_id: &[u8; 16], name: &str) -> String {
    format!("{}.{name}.cosig", hex(mount_id))
}

/// The file in a witness's own state directory that holds the checkpoint
/// it last cosigned for a log.
pub fn state_file(mount_id: &[u8; 16]) -> String {
    format!("{}.checkpoint", hex(mount_id))
}

/// Why a witness refuses to cosign.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("the log has no Merkle checkpoint to cosign (a version 1 log, or none written yet)")]
    NoCheckpoint,
    #[error("what this witness cosigned before is for {0}, not this log")]
    OtherLog(String),
    #[error(
        "the log's latest checkpoint has {latest} records, fewer than the {cosigned} this witness cosigned: records \
         were removed (rolled back)"
    )]
    RolledBack { cosigned: u64, latest: u64 },
    #[error(
        "the log's checkpoint of {latest} records does not extend the one of {cosigned} records this witness \
         cosigned: its history was rewritten (a fork); not cosigned"
    )]
    Fork { cosigned: u64, latest: u64 },
}

/// Checks that the log's latest checkpoint extends `last` (the checkpoint
/// this witness cosigned before, if any) and returns that latest
/// checkpoint's note with this witness's cosignature at `time` added.
pub fn cosign(
    tree: &LogTree,
    last: Option<&Head>,
    key: &WitnessKey,
    time: u64,
) -> Result<(MerkleHead, Vec<u8>), Refusal> {
    let latest = tree.heads.last().ok_or(Refusal::NoCheckpoint)?;
    if let Some(last) = last {
        if last.origin != note::origin(&tree.mount_id) {
            return Err(Refusal::OtherLog(last.origin.clone()));
        }
        if last.size > latest.size {
            return Err(Refusal::RolledBack { cosigned: last.size, latest: latest.size });
        }
        let fork = Refusal::Fork { cosigned: last.size, latest: latest.size };
        let proof = tree.stored.consistency(last.size, latest.size).map_err(|_| fork.clone())?;
        if !merkle::check_consistency(&proof, last.size, &last.root, latest.size, &latest.root) {
            return Err(fork);
        }
    }
    let note = key.cosign(&latest.note(&tree.mount_id), time).expect("a note this crate wrote");
    Ok((latest.clone(), note))
}

/// Checks that `cosigned` (a `.cosig` file's bytes) is the log's latest
/// checkpoint `latest`, signed by the log's key and cosigned by `witness`;
/// returns the cosignature's time.
pub fn check_cosigned(
    cosigned: &[u8],
    mount_id: &[u8; 16],
    latest: &MerkleHead,
    witness: &WitnessVerifier,
) -> Result<u64, String> {
    let key = ed25519_dalek::VerifyingKey::from_bytes(&latest.key).map_err(|_| "a bad log key")?;
    let head = note::open_log_note(cosigned, mount_id, &key)?;
    if head.size != latest.size || head.root != latest.root {
        return Err(format!(
            "what witness {} cosigned (the checkpoint of {} records, root {}) is not the log's latest checkpoint \
             ({} records, root {})",
            witness.name(),
            head.size,
            BASE64_STANDARD.encode(head.root),
            latest.size,
            BASE64_STANDARD.encode(latest.root)
        ));
    }
    witness.cosigned(cosigned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::Stored;
    use tresor_format::{Identity, MemberId};

    /// A log tree of `n` records with a checkpoint head at each size in `heads`.
    fn tree(records: &[&[u8]], heads: &[u64], key: &Identity) -> LogTree {
        let mut stored = Stored::new();
        records.iter().for_each(|r| stored.push(r));
        let heads = heads
            .iter()
            .map(|&size| {
                let root = stored.root(size).unwrap();
                let nsig = tresor_format::audit::sign_note(key, &note::text(&[2; 16], size, &root)).unwrap();
                MerkleHead { size, root, nsig, key: key.public().ed25519.to_bytes() }
            })
            .collect();
        LogTree {
            volume: [1; 16],
            mount_id: [2; 16],
            member: MemberId([3; 16]),
            key: key.public().ed25519,
            stored,
            heads,
            wanted: None,
        }
    }

    #[test]
    fn a_witness_cosigns_extensions_and_refuses_forks_rollbacks_and_other_logs() {
        let key = Identity::from_seed(&[5; 32], "node").unwrap();
        let w = WitnessKey::generate("board").unwrap();
        let v = WitnessVerifier::parse(&w.vkey()).unwrap();
        let log = tree(&[b"a", b"b", b"c", b"d"], &[2, 4], &key);
        let (head, note) = cosign(&log, None, &w, 7).unwrap();
        assert_eq!(check_cosigned(&note, &[2; 16], &head, &v), Ok(7));
        let seen = Head { origin: note::origin(&[2; 16]), size: 2, root: log.heads[0].root };
        assert!(cosign(&log, Some(&seen), &w, 8).is_ok(), "4 records extend the 2 cosigned");
        let forked = tree(&[b"a", b"B", b"c", b"d"], &[4], &key);
        assert_eq!(cosign(&forked, Some(&seen), &w, 8).unwrap_err(), Refusal::Fork { cosigned: 2, latest: 4 });
        let seen4 = Head { size: 4, root: log.heads[1].root, ..seen.clone() };
        let shorter = tree(&[b"a", b"b", b"c"], &[2], &key);
        assert_eq!(cosign(&shorter, Some(&seen4), &w, 8).unwrap_err(), Refusal::RolledBack { cosigned: 4, latest: 2 });
        let other = Head { origin: note::origin(&[9; 16]), ..seen };
        assert!(matches!(cosign(&log, Some(&other), &w, 8), Err(Refusal::OtherLog(_))));
        // A cosignature of an earlier checkpoint is not one of the latest.
        let (_, old_note) = cosign(&tree(&[b"a", b"b"], &[2], &key), None, &w, 9).unwrap();
        assert!(check_cosigned(&old_note, &[2; 16], &log.heads[1], &v)
            .unwrap_err()
            .contains("is not the log's latest"));
    }
}
