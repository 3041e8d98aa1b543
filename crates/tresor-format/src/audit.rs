//! The two keys of the audit log (`docs/AUDIT.md`) that belong to the
//! format: the mount's checkpoint signature and the key that seals plaintext
//! paths in records. Everything else about the log lives in `tresor-audit`.

use ed25519_dalek::VerifyingKey;
use zeroize::Zeroizing;

use crate::error::{Result, Structure};
use crate::identity::Identity;
use crate::keys::{self, derive, NameKey, KEY_LEN, SIGNATURE_LEN};

/// Domain of checkpoint signatures: a checkpoint never verifies as a
/// header, registry or policy signature, nor the other way round.
pub const CHECKPOINT_DOMAIN: &[u8] = b"tresor/v1/audit\0";

/// Domain of the signature on an audit bundle's manifest (`tresor audit
/// export`): the member who exported it vouches for the file list.
pub const BUNDLE_DOMAIN: &[u8] = b"tresor/v1/audit-bundle\0";

/// HKDF info of the path-sealing key: its own label, so the audit key is
/// independent of the name key it comes from.
const PATH_KEY_INFO: &[u8] = b"tresor/v1/audit-path";

/// Signs a checkpoint body (see `docs/AUDIT.md`, "Checkpoints") with the
/// identity the mount runs as.
pub fn sign_checkpoint(identity: &Identity, body: &[u8]) -> [u8; SIGNATURE_LEN] {
    keys::sign(identity, CHECKPOINT_DOMAIN, body)
}

/// Checks a checkpoint signature made by [`sign_checkpoint`].
pub fn verify_checkpoint(key: &VerifyingKey, body: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Result<()> {
    keys::verify(key, CHECKPOINT_DOMAIN, body, signature, Structure::AuditCheckpoint)
}

/// Signs an audit bundle's manifest.
pub fn sign_bundle(identity: &Identity, manifest: &[u8]) -> [u8; SIGNATURE_LEN] {
    keys::sign(identity, BUNDLE_DOMAIN, manifest)
}

/// Checks a manifest signature made by [`sign_bundle`].
pub fn verify_bundle(key: &VerifyingKey, manifest: &[u8], signature: &[u8; SIGNATURE_LEN]) -> Result<()> {
    keys::verify(key, BUNDLE_DOMAIN, manifest, signature, Structure::AuditCheckpoint)
}

/// Signs the text of a C2SP signed note (a Merkle checkpoint, `docs/AUDIT.md`
/// "Merkle checkpoints") with the identity the mount runs as: plain Ed25519
/// over the text, as signed-note verifiers expect. Every other Tresor
/// signature has a domain ending in NUL in front of its message; note text
/// holds no NUL (refused here), so neither kind of signature can stand for
/// the other.
pub fn sign_note(identity: &Identity, text: &[u8]) -> Option<[u8; SIGNATURE_LEN]> {
    (!text.contains(&0)).then(|| identity.sign(text))
}

/// The key that seals paths in audit records: HKDF-SHA256 of the volume
/// name key, salted with the volume id. Members and auditors hold the name
/// key and can read paths; the storage operator, who holds the log files,
/// cannot.
pub fn path_key(name_key: &NameKey, volume_id: &[u8; 16]) -> Zeroizing<[u8; KEY_LEN]> {
    derive(name_key.as_bytes(), volume_id, PATH_KEY_INFO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_signatures_are_bound_to_their_domain_and_body() {
        let id = Identity::from_seed(&[7; 32], "node").unwrap();
        let sig = sign_checkpoint(&id, b"body");
        verify_checkpoint(&id.public().ed25519, b"body", &sig).unwrap();
        assert!(verify_checkpoint(&id.public().ed25519, b"bodx", &sig).is_err());
        let header_sig = keys::sign(&id, keys::domain::HEADER, b"body");
        assert!(verify_checkpoint(&id.public().ed25519, b"body", &header_sig).is_err());
    }

    #[test]
    fn note_signatures_are_plain_ed25519_and_never_over_nul() {
        use ed25519_dalek::Verifier;
        let id = Identity::from_seed(&[7; 32], "node").unwrap();
        let sig = sign_note(&id, b"origin\n1\nroot\n").unwrap();
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        id.public().ed25519.verify(b"origin\n1\nroot\n", &sig).unwrap();
        assert!(sign_note(&id, b"tresor/v1/audit\0body").is_none());
    }

    #[test]
    fn the_path_key_depends_on_name_key_and_volume() {
        let k = NameKey::from_bytes([1; 32]);
        let a = path_key(&k, &[0; 16]);
        assert_ne!(*a, *path_key(&k, &[1; 16]));
        assert_ne!(*a, *path_key(&NameKey::from_bytes([2; 32]), &[0; 16]));
        assert_ne!(*a, *k.as_bytes());
    }
}
