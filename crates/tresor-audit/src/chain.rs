//! The hash chain: `h(i) = SHA-256("tresor/v1/audit-chain\0" ‖ h(i-1) ‖
//! u32be(len) ‖ record bytes)`, with `h(-1)` = 32 zero bytes. Record `i`
//! stores `h(i-1)` in its `prev` field, so a record cannot be changed,
//! removed, inserted or moved without breaking a link; checkpoints sign the
//! chain, so the links cannot be recomputed without the mount's key.

use sha2::{Digest, Sha256};

pub const CHAIN_DOMAIN: &[u8] = b"tresor/v1/audit-chain\0";
pub const GENESIS: [u8; 32] = [0; 32];

/// The chain hash after a record whose CBOR bytes are `record`.
pub fn next(prev: &[u8; 32], record: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(CHAIN_DOMAIN)
        .chain_update(prev)
        .chain_update((record.len() as u32).to_be_bytes())
        .chain_update(record)
        .finalize()
        .into()
}

/// What a checkpoint signs: the mount id, the checkpoint's own sequence
/// number, the chain hash of everything before it, and the SHA-256 of the
/// checkpoint record itself encoded without its `sig` field (so its time
/// and other fields cannot be changed either, even as the last record).
/// The signature is Ed25519 with the domain `tresor/v1/audit\0` in front,
/// see `tresor_format::audit`.
pub fn checkpoint_body(mount_id: &[u8; 16], seq: u64, chain: &[u8; 32], unsigned_record: &[u8]) -> [u8; 88] {
    let mut out = [0u8; 88];
    out[..16].copy_from_slice(mount_id);
    out[16..24].copy_from_slice(&seq.to_be_bytes());
    out[24..56].copy_from_slice(chain);
    out[56..].copy_from_slice(&Sha256::digest(unsigned_record));
    out
}

pub fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

/// A hex string of exactly `N` bytes (either case); anything else is None.
pub fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    ::hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_byte_and_the_order_change_the_hash() {
        let a = next(&GENESIS, b"one");
        assert_ne!(a, next(&GENESIS, b"onf"));
        assert_ne!(a, next(&[1; 32], b"one"));
        assert_ne!(next(&a, b"two"), next(&next(&GENESIS, b"two"), b"one"));
    }

    #[test]
    fn hex_round_trips() {
        let h = next(&GENESIS, b"x");
        assert_eq!(unhex::<32>(&hex(&h)), Some(h));
        assert_eq!(unhex::<2>("zz00"), None);
        assert_eq!(unhex::<2>("00"), None, "too short");
        assert_eq!(unhex::<1>("0000"), None, "too long");
        assert_eq!(unhex::<2>("aBcD"), Some([0xab, 0xcd]));
    }
}
