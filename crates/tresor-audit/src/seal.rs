//! Sealing the confidential fields of a record (paths, xattr names) so the
//! storage operator, who holds the log files, learns no plaintext names.
//!
//! XChaCha20-Poly1305 under `tresor_format::audit::path_key` (from the
//! volume name key). The 24-byte nonce is never stored: it is the record's
//! mount id (16 bytes) and `u64be(4 * seq + field)`, unique per volume since
//! mount ids are 128 random bits, and it binds the sealed bytes to their
//! record and field (moving them elsewhere fails to open). The plaintext is
//! padded (0x80 then zeros) to a multiple of 16 bytes, as names are, so a
//! sealed path shows its length only to 16 bytes.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::XChaCha20Poly1305;
use tresor_format::NameKey;
use zeroize::Zeroizing;

/// Which field a sealed value is (part of the nonce).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Path = 0,
    NewPath = 1,
    Xattr = 2,
}

const PAD: usize = 16;

/// The key to seal and open a volume's record fields.
pub struct PathSealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for PathSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PathSealer([redacted])")
    }
}

fn nonce(mount_id: &[u8; 16], seq: u64, field: Field) -> [u8; 24] {
    let mut n = [0u8; 24];
    n[..16].copy_from_slice(mount_id);
    n[16..].copy_from_slice(&(seq.wrapping_mul(4) + field as u64).to_be_bytes());
    n
}

impl PathSealer {
    pub fn new(name_key: &NameKey, volume_id: &[u8; 16]) -> PathSealer {
        let key = tresor_format::audit::path_key(name_key, volume_id);
        // The cipher keeps its own copy of the key and zeroizes it on drop
        // (chacha20poly1305's `Drop`); `key` is zeroized here.
        PathSealer { cipher: XChaCha20Poly1305::new(key.as_ref().into()) }
    }

    pub fn seal(&self, mount_id: &[u8; 16], seq: u64, field: Field, plain: &[u8]) -> Vec<u8> {
        let mut padded = Zeroizing::new(Vec::with_capacity(plain.len() + PAD));
        padded.extend_from_slice(plain);
        padded.push(0x80);
        while padded.len() % PAD != 0 {
            padded.push(0);
        }
        self.cipher.encrypt(&nonce(mount_id, seq, field).into(), padded.as_slice()).expect("XChaCha20-Poly1305 seals")
    }

    /// `None` if the bytes do not open under this key for this record and
    /// field (another volume's key, or moved or changed bytes).
    pub fn open(&self, mount_id: &[u8; 16], seq: u64, field: Field, sealed: &[u8]) -> Option<Vec<u8>> {
        let mut plain = self.cipher.decrypt(&nonce(mount_id, seq, field).into(), sealed).ok()?;
        let end = plain.iter().rposition(|&b| b != 0)?;
        if plain[end] != 0x80 {
            return None;
        }
        plain.truncate(end);
        Some(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_paths_open_only_in_their_record_and_field_and_hide_their_length() {
        let s = PathSealer::new(&NameKey::from_bytes([3; 32]), &[1; 16]);
        let sealed = s.seal(&[2; 16], 5, Field::Path, b"project/data.csv");
        assert!(!sealed.windows(4).any(|w| w == b"data"));
        assert_eq!(s.open(&[2; 16], 5, Field::Path, &sealed).unwrap(), b"project/data.csv");
        assert!(s.open(&[2; 16], 6, Field::Path, &sealed).is_none(), "another record");
        assert!(s.open(&[2; 16], 5, Field::NewPath, &sealed).is_none(), "another field");
        assert!(s.open(&[3; 16], 5, Field::Path, &sealed).is_none(), "another mount");
        let other = PathSealer::new(&NameKey::from_bytes([4; 32]), &[1; 16]);
        assert!(other.open(&[2; 16], 5, Field::Path, &sealed).is_none(), "another volume key");
        assert_eq!(
            s.seal(&[2; 16], 5, Field::Path, b"a").len(),
            s.seal(&[2; 16], 5, Field::Path, b"abcdefghijk").len()
        );
        assert_eq!(s.open(&[2; 16], 0, Field::Path, &s.seal(&[2; 16], 0, Field::Path, b"")).unwrap(), b"");
    }
}
