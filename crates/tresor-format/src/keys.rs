//! Symmetric keys, member ids, key wrapping (recipient stanzas) and the
//! domain-separated signatures shared by every signed structure.

use std::fmt;

use chacha20poly1305::{aead::AeadInPlace, ChaCha20Poly1305, KeyInit};
use ed25519_dalek::{Signature, VerifyingKey};
use hkdf::Hkdf;
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result, Structure};
use crate::identity::{Identity, PublicIdentity};
use crate::wire::Reader;

pub const KEY_LEN: usize = 32;
pub const MEMBER_ID_LEN: usize = 16;
pub const SIGNATURE_LEN: usize = 64;

/// HKDF-SHA256 to one 32-byte key.
pub(crate) fn derive(ikm: &[u8], salt: &[u8], info: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, out.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
        pub struct $name([u8; KEY_LEN]);

        impl $name {
            pub fn generate(rng: &mut impl CryptoRngCore) -> Self {
                let mut key = [0u8; KEY_LEN];
                rng.fill_bytes(&mut key);
                $name(key)
            }

            pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
                $name(bytes)
            }

            pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret_key!(
    /// A file's data-encryption key: random per file, new on every re-key,
    /// wrapped for each recipient in the file header.
    FileKey
);
secret_key!(
    /// The volume's name key: encrypts file names and symlink targets;
    /// wrapped for each member in the volume file.
    NameKey
);

/// A member's id: the first 16 bytes of SHA-256 over the domain and both
/// public keys. Short enough for stanzas, long enough to never collide.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub [u8; MEMBER_ID_LEN]);

impl MemberId {
    pub(crate) fn of(x25519: &[u8; 32], ed25519: &[u8; 32]) -> Self {
        let digest =
            Sha256::new().chain_update(b"tresor/v1/member-id\0").chain_update(x25519).chain_update(ed25519).finalize();
        MemberId(digest[..MEMBER_ID_LEN].try_into().expect("16 of 32 bytes"))
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemberId({self})")
    }
}

pub const STANZA_LEN: usize = MEMBER_ID_LEN + 32 + KEY_LEN + 16;

/// One recipient's copy of a symmetric key (age-style): the key sealed with
/// ChaCha20-Poly1305 under HKDF(X25519(ephemeral, recipient), both public keys).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Stanza {
    pub recipient: MemberId,
    pub ephemeral: [u8; 32],
    pub wrapped: [u8; KEY_LEN + 16],
}

const WRAP_INFO: &[u8] = b"tresor/v1/stanza";

fn wrap_cipher(shared: &[u8; 32], ephemeral: &[u8; 32], recipient: &[u8; 32]) -> ChaCha20Poly1305 {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(recipient);
    ChaCha20Poly1305::new(derive(shared, &salt, WRAP_INFO).as_ref().into())
}

/// A fresh ephemeral X25519 key and the secret it shares with one
/// recipient: the expensive half of wrapping a key (a base-point
/// multiplication and a Diffie-Hellman), which depends on neither the key
/// nor the file. Made ahead of time (a mount keeps a few for its own
/// identity, made on an idle core), it turns a file create's wrap for that
/// recipient into a key derivation and one AEAD call. Only the ephemeral
/// public key and the shared secret are kept (zeroized on drop); the
/// ephemeral secret is gone once this exists. Not `Clone`: each is used once.
pub struct Agreement {
    recipient: [u8; 32],
    ephemeral: [u8; 32],
    shared: Zeroizing<[u8; 32]>,
}

impl Agreement {
    /// A new ephemeral key agreed with `recipient`.
    pub fn new(recipient: &PublicIdentity, rng: &mut impl CryptoRngCore) -> Result<Agreement> {
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(secret.as_mut());
        Agreement::from_secret(recipient, StaticSecret::from(*secret))
    }

    fn from_secret(recipient: &PublicIdentity, secret: StaticSecret) -> Result<Agreement> {
        let ephemeral = PublicKey::from(&secret).to_bytes();
        let shared = secret.diffie_hellman(&PublicKey::from(recipient.x25519));
        if !shared.was_contributory() {
            return Err(Error::InvalidArgument("recipient X25519 key is a low-order point".into()));
        }
        Ok(Agreement { recipient: recipient.x25519, ephemeral, shared: Zeroizing::new(*shared.as_bytes()) })
    }

    /// A new ephemeral key agreed with `own`'s own X25519 key, the same
    /// bytes as [`Agreement::new`] at about a third of the cost. Knowing
    /// the recipient's secret scalar k turns the Diffie-Hellman into a
    /// second fixed-base multiplication: with clamped scalars e and k and a
    /// base point B of prime order l, X25519(e, k·B) = (e·k mod l)·B. Two
    /// table-driven multiplications replace one plus a Montgomery ladder.
    /// A mount wraps a key for its own identity on every create.
    pub fn with_own(own: &Identity, rng: &mut impl CryptoRngCore) -> Result<Agreement> {
        let mut e = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(e.as_mut());
        Agreement::with_own_secret(own, &e)
    }

    fn with_own_secret(own: &Identity, ephemeral_secret: &[u8; 32]) -> Result<Agreement> {
        use curve25519_dalek::{EdwardsPoint, Scalar};
        let clamped = |k: &[u8; 32]| {
            let mut k = Zeroizing::new(*k);
            k[0] &= 248;
            k[31] &= 127;
            k[31] |= 64;
            Zeroizing::new(Scalar::from_bytes_mod_order(*k))
        };
        let e = clamped(ephemeral_secret);
        let k = clamped(&Zeroizing::new(own.x25519_secret().to_bytes()));
        let ephemeral = EdwardsPoint::mul_base(&e).to_montgomery().to_bytes();
        let shared = Zeroizing::new(EdwardsPoint::mul_base(&Zeroizing::new(*e * *k)).to_montgomery().to_bytes());
        // e·k is never 0 mod l for clamped scalars; checked as X25519 does.
        if shared.iter().all(|&b| b == 0) {
            return Err(Error::InvalidArgument("own X25519 key is a low-order point".into()));
        }
        Ok(Agreement { recipient: own.public().x25519, ephemeral, shared })
    }

    /// Whether this agreement was made with `recipient`.
    pub fn is_for(&self, recipient: &PublicIdentity) -> bool {
        self.recipient == recipient.x25519
    }
}

impl fmt::Debug for Agreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agreement").finish_non_exhaustive()
    }
}

impl Stanza {
    /// Wraps `key` for `recipient`. `aad` binds the stanza to its container
    /// (a file id or a volume id) so it cannot be moved to another one.
    pub fn wrap(
        key: &[u8; KEY_LEN],
        recipient: &PublicIdentity,
        aad: &[u8],
        rng: &mut impl CryptoRngCore,
    ) -> Result<Stanza> {
        let mut ephemeral = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(ephemeral.as_mut());
        Self::wrap_with_ephemeral(key, recipient, aad, &ephemeral)
    }

    #[doc(hidden)]
    /// `wrap` with the ephemeral secret given: for test vectors.
    pub fn wrap_with_ephemeral(
        key: &[u8; KEY_LEN],
        recipient: &PublicIdentity,
        aad: &[u8],
        ephemeral_secret: &[u8; 32],
    ) -> Result<Stanza> {
        let agreement = Agreement::from_secret(recipient, StaticSecret::from(*ephemeral_secret))?;
        Self::wrap_agreed(key, recipient, aad, agreement)
    }

    /// `wrap` with an [`Agreement`] made beforehand for this recipient
    /// (which it consumes: an ephemeral key wraps one key, once).
    pub fn wrap_agreed(
        key: &[u8; KEY_LEN],
        recipient: &PublicIdentity,
        aad: &[u8],
        agreement: Agreement,
    ) -> Result<Stanza> {
        if agreement.recipient != recipient.x25519 {
            return Err(Error::InvalidArgument("the key agreement was made for another recipient".into()));
        }
        let mut wrapped = [0u8; KEY_LEN + 16];
        wrapped[..KEY_LEN].copy_from_slice(key);
        let tag = wrap_cipher(&agreement.shared, &agreement.ephemeral, &recipient.x25519)
            .encrypt_in_place_detached(&Default::default(), aad, &mut wrapped[..KEY_LEN])
            .expect("ChaCha20-Poly1305 seals 32 bytes");
        wrapped[KEY_LEN..].copy_from_slice(&tag);
        Ok(Stanza { recipient: recipient.id(), ephemeral: agreement.ephemeral, wrapped })
    }

    /// Recovers the wrapped key with the recipient's identity.
    pub fn unwrap(&self, identity: &Identity, aad: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        let tampered = Error::Tampered { what: Structure::Stanza };
        let shared = identity.x25519_secret().diffie_hellman(&PublicKey::from(self.ephemeral));
        if !shared.was_contributory() {
            return Err(tampered);
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&self.wrapped[..KEY_LEN]);
        wrap_cipher(shared.as_bytes(), &self.ephemeral, &identity.public().x25519)
            .decrypt_in_place_detached(&Default::default(), aad, key.as_mut(), self.wrapped[KEY_LEN..].into())
            .map_err(|_| tampered)?;
        Ok(key)
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.recipient.0);
        out.extend_from_slice(&self.ephemeral);
        out.extend_from_slice(&self.wrapped);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Stanza> {
        Ok(Stanza { recipient: MemberId(r.array()?), ephemeral: r.array()?, wrapped: r.array()? })
    }
}

/// Domain-separation prefixes: a signature over one structure never verifies
/// as a signature over another.
pub(crate) mod domain {
    pub const VOLUME: &[u8] = b"tresor/v1/volume\0";
    pub const HEADER: &[u8] = b"tresor/v1/header\0";
}

pub(crate) fn sign(identity: &Identity, domain: &[u8], body: &[u8]) -> [u8; SIGNATURE_LEN] {
    let mut msg = Vec::with_capacity(domain.len() + body.len());
    msg.extend_from_slice(domain);
    msg.extend_from_slice(body);
    identity.sign(&msg)
}

pub(crate) fn verify(
    key: &VerifyingKey,
    domain: &[u8],
    body: &[u8],
    signature: &[u8; SIGNATURE_LEN],
    what: Structure,
) -> Result<()> {
    let mut msg = Vec::with_capacity(domain.len() + body.len());
    msg.extend_from_slice(domain);
    msg.extend_from_slice(body);
    key.verify_strict(&msg, &Signature::from_bytes(signature)).map_err(|_| Error::Tampered { what })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The fixed-base shortcut is X25519 exactly: same ephemeral public
        /// key, same shared secret, for any identity and ephemeral secret.
        #[test]
        fn an_agreement_with_the_own_key_equals_x25519(seed in any::<[u8; 32]>(), e in any::<[u8; 32]>()) {
            let own = Identity::from_seed(&seed, "own").unwrap();
            let fast = Agreement::with_own_secret(&own, &e).unwrap();
            let ladder = Agreement::from_secret(own.public(), StaticSecret::from(e)).unwrap();
            prop_assert_eq!(fast.ephemeral, ladder.ephemeral);
            prop_assert_eq!(*fast.shared, *ladder.shared);
            prop_assert!(fast.is_for(own.public()));
        }
    }
}
