//! The Merkle tree over a log's records (RFC 6962 / RFC 9162 §2.1): leaf
//! `SHA-256(0x00 ‖ record bytes)`, node `SHA-256(0x01 ‖ left ‖ right)`,
//! leaves in seq order, one tree per log across its segments
//! (`docs/AUDIT.md`, "Merkle checkpoints").
//!
//! Hashing and the proofs are `tlog_tiles` (Cloudflare's port of Go's
//! `sumdb/tlog`, the code behind the Go checksum database and the C2SP
//! specs): a maintained implementation that other transparency-log tools
//! already agree with. What it lacks is a constant-memory root for a
//! streaming writer and verifier: [`Frontier`] keeps only the right edge of
//! the tree (one hash per set bit of its size), so roots cost no memory that
//! grows with the log. Proofs need every subtree hash ([`Stored`]): 64 bytes
//! per record, built by `tresor audit prove` and `witness` only.

use tlog_tiles::{Error as TlogError, HashReader};

pub use tlog_tiles::Hash;

/// The hash of one record (a leaf).
pub fn leaf(record: &[u8]) -> [u8; 32] {
    tlog_tiles::record_hash(record).0
}

/// The hash of an interior node.
pub fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    tlog_tiles::node_hash(Hash(*left), Hash(*right)).0
}

/// The root of the empty tree, `SHA-256("")`.
pub const EMPTY: [u8; 32] = tlog_tiles::EMPTY_HASH.0;

/// The right edge of a tree: the roots of its perfect subtrees, largest
/// first (one per set bit of `size`), from which the root follows and to
/// which a leaf is added in O(log n) time and memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<[u8; 32]>,
}

impl Frontier {
    pub fn new() -> Frontier {
        Frontier::default()
    }

    /// A frontier as stored in a `segment` record (`range`): refused unless
    /// it holds exactly one hash per set bit of `size`. Whether the hashes
    /// are the right ones shows at the next checkpoint, whose signed root
    /// they must produce.
    pub fn from_parts(size: u64, hashes: Vec<[u8; 32]>) -> Option<Frontier> {
        (hashes.len() == size.count_ones() as usize).then_some(Frontier { size, hashes })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn hashes(&self) -> &[[u8; 32]] {
        &self.hashes
    }

    /// Adds the record with index `size`.
    pub fn push(&mut self, record: &[u8]) {
        self.push_leaf(leaf(record));
    }

    pub fn push_leaf(&mut self, mut h: [u8; 32]) {
        // Each trailing one bit of the old size is a subtree of the same
        // height as the one being carried: merge them.
        let mut n = self.size;
        while n & 1 == 1 {
            let left = self.hashes.pop().expect("one hash per set bit");
            h = node(&left, &h);
            n >>= 1;
        }
        self.hashes.push(h);
        self.size += 1;
    }

    /// The tree hash of the records pushed so far.
    pub fn root(&self) -> [u8; 32] {
        let mut it = self.hashes.iter().rev();
        let Some(last) = it.next() else { return EMPTY };
        it.fold(*last, |acc, left| node(left, &acc))
    }
}

/// Every stored subtree hash of a tree (tlog's layout, 2n − popcount(n)
/// hashes), for proofs.
#[derive(Default)]
pub struct Stored {
    size: u64,
    hashes: Vec<Hash>,
}

impl HashReader for Stored {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TlogError> {
        indexes.iter().map(|&i| self.hashes.get(i as usize).copied().ok_or(TlogError::IndexesNotInTree)).collect()
    }
}

impl Stored {
    pub fn new() -> Stored {
        Stored::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, record: &[u8]) {
        let add = tlog_tiles::stored_hashes(self.size, record, self).expect("hashes of the records before are stored");
        self.hashes.extend(add);
        self.size += 1;
    }

    pub fn root(&self, size: u64) -> Result<[u8; 32], TlogError> {
        Ok(tlog_tiles::tree_hash(size, self)?.0)
    }

    /// The inclusion proof of record `index` in the tree of `size` records.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Vec<[u8; 32]>, TlogError> {
        Ok(tlog_tiles::prove_record(size, index, self)?.into_iter().map(|h| h.0).collect())
    }

    /// The consistency proof from the tree of `old` records to that of `new`.
    pub fn consistency(&self, old: u64, new: u64) -> Result<Vec<[u8; 32]>, TlogError> {
        Ok(tlog_tiles::prove_tree(new, old, self)?.into_iter().map(|h| h.0).collect())
    }
}

fn hashes(proof: &[[u8; 32]]) -> Vec<Hash> {
    proof.iter().copied().map(Hash).collect()
}

/// Checks that the record with hash `leaf` is number `index` of the tree of
/// `size` records whose root is `root` (RFC 9162 §2.1.3.2).
pub fn check_inclusion(proof: &[[u8; 32]], size: u64, root: &[u8; 32], index: u64, leaf: &[u8; 32]) -> bool {
    index < size && tlog_tiles::check_record(&hashes(proof), size, Hash(*root), index, Hash(*leaf)).is_ok()
}

/// Checks that the tree of `old` records with root `old_root` is a prefix
/// of the tree of `new` records with root `new_root` (RFC 9162 §2.1.4.2).
pub fn check_consistency(proof: &[[u8; 32]], old: u64, old_root: &[u8; 32], new: u64, new_root: &[u8; 32]) -> bool {
    old <= new && tlog_tiles::check_tree(&hashes(proof), new, Hash(*new_root), old, Hash(*old_root)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6962 §2.1 as written: MTH(D[n]) splits at the largest power of
    /// two below n.
    fn naive(leaves: &[Vec<u8>]) -> [u8; 32] {
        match leaves.len() {
            0 => EMPTY,
            1 => leaf(&leaves[0]),
            n => {
                let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
                node(&naive(&leaves[..k]), &naive(&leaves[k..]))
            }
        }
    }

    fn records(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("record {i}").into_bytes()).collect()
    }

    #[test]
    fn roots_match_the_recursive_definition_for_every_size() {
        let recs = records(70);
        let (mut f, mut s) = (Frontier::new(), Stored::new());
        assert_eq!(f.root(), EMPTY);
        for n in 1..=recs.len() {
            f.push(&recs[n - 1]);
            s.push(&recs[n - 1]);
            let want = naive(&recs[..n]);
            assert_eq!(f.root(), want, "frontier, size {n}");
            assert_eq!(s.root(n as u64).unwrap(), want, "stored, size {n}");
            assert_eq!(Frontier::from_parts(n as u64, f.hashes().to_vec()).as_ref(), Some(&f));
            assert!(
                Frontier::from_parts(n as u64 + 1, f.hashes().to_vec()).is_none()
                    || (n + 1).count_ones() == n.count_ones()
            );
        }
    }

    #[test]
    fn inclusion_proofs_verify_for_every_size_and_index_and_fail_when_changed() {
        let recs = records(40);
        let mut s = Stored::new();
        recs.iter().for_each(|r| s.push(r));
        for size in 1..=recs.len() as u64 {
            let root = s.root(size).unwrap();
            for index in 0..size {
                let proof = s.inclusion(index, size).unwrap();
                let l = leaf(&recs[index as usize]);
                assert!(check_inclusion(&proof, size, &root, index, &l), "size {size} index {index}");
                assert!(!check_inclusion(&proof, size, &root, index, &leaf(b"other")));
                assert!(!check_inclusion(&proof, size, &root, index + 1, &l) || size == 1);
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0] = node(first, first);
                    assert!(!check_inclusion(&bad, size, &root, index, &l));
                }
                let mut wrong_root = root;
                wrong_root[0] ^= 1;
                assert!(!check_inclusion(&proof, size, &wrong_root, index, &l));
            }
        }
    }

    #[test]
    fn consistency_proofs_verify_for_every_pair_of_sizes_and_fail_on_a_fork() {
        let recs = records(40);
        let mut s = Stored::new();
        recs.iter().for_each(|r| s.push(r));
        let mut fork = Stored::new();
        recs.iter().enumerate().for_each(|(i, r)| fork.push(if i == 5 { b"forged" } else { r }));
        for new in 1..=recs.len() as u64 {
            let new_root = s.root(new).unwrap();
            for old in 1..=new {
                let proof = s.consistency(old, new).unwrap();
                let old_root = s.root(old).unwrap();
                assert!(check_consistency(&proof, old, &old_root, new, &new_root), "{old} -> {new}");
                if old > 5 {
                    // A history rewritten below `old` cannot extend what was signed at `old`.
                    let forged = fork.consistency(old, new).unwrap();
                    assert!(!check_consistency(&forged, old, &old_root, new, &fork.root(new).unwrap()));
                }
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0] = node(first, first);
                    assert!(!check_consistency(&bad, old, &old_root, new, &new_root));
                }
            }
        }
    }
}
