//! Identities: one 32-byte seed from which a member's X25519 key (to unwrap
//! file keys) and Ed25519 key (to sign headers, registries, policies) are
//! derived; the passphrase-sealed identity file; the printable public identity.

use std::{fmt, str::FromStr};

use argon2::{Algorithm, Argon2, Params, Version};
use bech32::{primitives::decode::CheckedHrpstring, Bech32m, Hrp};
use chacha20poly1305::{aead::AeadInPlace, ChaCha20Poly1305, KeyInit};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::error::{Error, Result, Structure};
use crate::keys::{derive, MemberId};
use crate::wire::{check_display_name, put_short_str, put_u16, put_u32, Reader};

pub const IDENTITY_MAGIC: &[u8; 8] = b"TRSRIDNT";
pub const IDENTITY_VERSION: u16 = 1;
const KDF_ARGON2ID: u8 = 1;
pub const NAME_MAX: usize = 64;

/// Argon2id cost parameters, stored in the identity file so that they can
/// be raised later without breaking old files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub lanes: u32,
}

impl KdfParams {
    /// Upper bounds accepted when reading a file, so that a corrupt or
    /// hostile file cannot make unlocking allocate or spin without limit.
    pub const MAX_MEMORY_KIB: u32 = 1 << 20;
    pub const MAX_ITERATIONS: u32 = 32;
    pub const MAX_LANES: u32 = 8;

    /// The cheapest parameters Argon2 accepts: for tests only.
    pub const INSECURE_FOR_TESTS: KdfParams = KdfParams { memory_kib: 8, iterations: 1, lanes: 1 };

    fn argon2(&self) -> Result<Argon2<'static>> {
        if self.memory_kib > Self::MAX_MEMORY_KIB
            || self.iterations > Self::MAX_ITERATIONS
            || self.lanes > Self::MAX_LANES
        {
            return Err(Error::malformed(Structure::IdentityFile, "Argon2id parameters above the accepted maximum"));
        }
        let params = Params::new(self.memory_kib, self.iterations, self.lanes, Some(32))
            .map_err(|e| Error::malformed(Structure::IdentityFile, format!("Argon2id parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

impl Default for KdfParams {
    /// RFC 9106's second recommended option (64 MiB, 3 passes) with one lane:
    /// the argon2 crate does not run lanes in parallel, so more lanes would only
    /// slow unlocking here without slowing an attacker's GPU.
    fn default() -> Self {
        KdfParams { memory_kib: 64 * 1024, iterations: 3, lanes: 1 }
    }
}

/// A member's public keys. Printed as a Bech32m string (`tresor1…`) whose
/// checksum catches typos when a steward pastes it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PublicIdentity {
    pub x25519: [u8; 32],
    pub ed25519: VerifyingKey,
}

const HRP: &str = "tresor";

impl PublicIdentity {
    pub fn from_keys(x25519: [u8; 32], ed25519: [u8; 32]) -> Result<Self> {
        let ed25519 = VerifyingKey::from_bytes(&ed25519)
            .map_err(|_| Error::malformed(Structure::PublicIdentity, "Ed25519 key is not a valid point"))?;
        if ed25519.is_weak() {
            return Err(Error::malformed(Structure::PublicIdentity, "Ed25519 key is a weak (small-order) point"));
        }
        Ok(PublicIdentity { x25519, ed25519 })
    }

    pub fn id(&self) -> MemberId {
        MemberId::of(&self.x25519, self.ed25519.as_bytes())
    }

    pub(crate) fn to_bytes(self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.x25519);
        out[32..].copy_from_slice(self.ed25519.as_bytes());
        out
    }
}

impl fmt::Display for PublicIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse(HRP).expect("valid HRP");
        let s = bech32::encode::<Bech32m>(hrp, &self.to_bytes()).map_err(|_| fmt::Error)?;
        f.write_str(&s)
    }
}

impl FromStr for PublicIdentity {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::malformed(Structure::PublicIdentity, reason.to_owned());
        // Bech32m allows all-uppercase; canonical form is lowercase.
        let s = s.trim().to_ascii_lowercase();
        let checked = CheckedHrpstring::new::<Bech32m>(&s)
            .map_err(|_| bad("not a valid tresor1… string (typo? the checksum does not match)"))?;
        if checked.hrp().as_str() != HRP {
            return Err(bad("wrong prefix: expected tresor1…"));
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        let bytes: [u8; 64] = bytes.try_into().map_err(|_| bad("wrong length"))?;
        let public = PublicIdentity::from_keys(bytes[..32].try_into().unwrap(), bytes[32..].try_into().unwrap())?;
        // Padding bits must be zero, so each key has exactly one string.
        if public.to_string() != s {
            return Err(bad("non-canonical encoding"));
        }
        Ok(public)
    }
}

/// A member's secret identity. All secret material is zeroized on drop
/// (`StaticSecret` and `SigningKey` zeroize themselves).
pub struct Identity {
    seed: Zeroizing<[u8; 32]>,
    name: String,
    x25519: StaticSecret,
    ed25519: SigningKey,
    public: PublicIdentity,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity").field("name", &self.name).field("id", &self.id()).finish_non_exhaustive()
    }
}

impl Identity {
    pub fn generate(name: &str, rng: &mut impl CryptoRngCore) -> Result<Self> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed, name)
    }

    pub fn from_seed(seed: &[u8; 32], name: &str) -> Result<Self> {
        check_display_name(name, NAME_MAX).map_err(|r| Error::InvalidArgument(r.into()))?;
        let x25519 = StaticSecret::from(*derive(seed, b"", b"tresor/v1/identity/x25519"));
        let ed25519 = SigningKey::from_bytes(&derive(seed, b"", b"tresor/v1/identity/ed25519"));
        let public = PublicIdentity { x25519: PublicKey::from(&x25519).to_bytes(), ed25519: ed25519.verifying_key() };
        Ok(Identity { seed: Zeroizing::new(*seed), name: name.to_owned(), x25519, ed25519, public })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn public(&self) -> &PublicIdentity {
        &self.public
    }

    pub fn id(&self) -> MemberId {
        self.public.id()
    }

    pub(crate) fn x25519_secret(&self) -> &StaticSecret {
        &self.x25519
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.ed25519.sign(msg).to_bytes()
    }

    /// Seals the identity under `passphrase` with fresh salt and nonce.
    pub fn seal(&self, passphrase: &[u8], params: KdfParams, rng: &mut impl CryptoRngCore) -> Result<Vec<u8>> {
        let mut salt = [0u8; 16];
        let mut nonce = [0u8; 12];
        rng.fill_bytes(&mut salt);
        rng.fill_bytes(&mut nonce);
        self.seal_with(passphrase, params, &salt, &nonce)
    }

    #[doc(hidden)]
    /// `seal` with salt and nonce given: for test vectors.
    pub fn seal_with(
        &self,
        passphrase: &[u8],
        params: KdfParams,
        salt: &[u8; 16],
        nonce: &[u8; 12],
    ) -> Result<Vec<u8>> {
        let key = passphrase_key(passphrase, params, salt)?;
        let mut out = Vec::with_capacity(IDENTITY_FIXED_LEN + self.name.len() + 48);
        out.extend_from_slice(IDENTITY_MAGIC);
        put_u16(&mut out, IDENTITY_VERSION);
        out.push(KDF_ARGON2ID);
        put_u32(&mut out, params.memory_kib);
        put_u32(&mut out, params.iterations);
        put_u32(&mut out, params.lanes);
        out.extend_from_slice(salt);
        out.extend_from_slice(nonce);
        out.extend_from_slice(&self.public.to_bytes());
        put_short_str(&mut out, &self.name);
        let mut sealed = [0u8; 48];
        sealed[..32].copy_from_slice(self.seed.as_ref());
        let tag = ChaCha20Poly1305::new(key.as_ref().into())
            .encrypt_in_place_detached(nonce.into(), &out, &mut sealed[..32])
            .expect("ChaCha20-Poly1305 seals 32 bytes");
        sealed[32..].copy_from_slice(&tag);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a sealed identity file.
    pub fn unseal(file: &[u8], passphrase: &[u8]) -> Result<Identity> {
        let parsed = SealedIdentity::parse(file)?;
        let key = passphrase_key(passphrase, parsed.params, &parsed.salt)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&parsed.sealed[..32]);
        ChaCha20Poly1305::new(key.as_ref().into())
            .decrypt_in_place_detached(
                (&parsed.nonce).into(),
                &file[..parsed.aad_len],
                seed.as_mut(),
                parsed.sealed[32..].into(),
            )
            .map_err(|_| Error::WrongPassphrase)?;
        let identity = Identity::from_seed(&seed, &parsed.name)?;
        // The public keys are authenticated as AAD, so this only fails if the
        // sealing implementation was wrong; check anyway.
        if identity.public != parsed.public {
            return Err(Error::Tampered { what: Structure::IdentityFile });
        }
        Ok(identity)
    }
}

const IDENTITY_FIXED_LEN: usize = 8 + 2 + 1 + 12 + 16 + 12 + 64;

/// The cleartext part of an identity file: enough to print the public
/// identity without asking for the passphrase.
#[derive(Debug, Clone)]
pub struct SealedIdentity {
    pub params: KdfParams,
    pub salt: [u8; 16],
    pub nonce: [u8; 12],
    pub public: PublicIdentity,
    pub name: String,
    sealed: [u8; 48],
    aad_len: usize,
}

impl SealedIdentity {
    pub fn parse(file: &[u8]) -> Result<SealedIdentity> {
        let mut r = Reader::new(file, Structure::IdentityFile);
        r.magic_and_version(IDENTITY_MAGIC, IDENTITY_VERSION)?;
        let kdf = r.u8()?;
        if kdf != KDF_ARGON2ID {
            return Err(Error::malformed(Structure::IdentityFile, format!("unknown key-derivation function {kdf}")));
        }
        let params = KdfParams { memory_kib: r.u32()?, iterations: r.u32()?, lanes: r.u32()? };
        let salt = r.array()?;
        let nonce = r.array()?;
        let x25519 = r.array()?;
        let ed25519 = r.array()?;
        let public = PublicIdentity::from_keys(x25519, ed25519)
            .map_err(|_| Error::malformed(Structure::IdentityFile, "invalid public key"))?;
        let name = r.short_str(NAME_MAX)?;
        let aad_len = r.pos();
        let sealed = r.array()?;
        r.finish()?;
        params.argon2()?;
        Ok(SealedIdentity { params, salt, nonce, public, name, sealed, aad_len })
    }
}

fn passphrase_key(passphrase: &[u8], params: KdfParams, salt: &[u8; 16]) -> Result<Zeroizing<[u8; 32]>> {
    let mut key = Zeroizing::new([0u8; 32]);
    params
        .argon2()?
        .hash_password_into(passphrase, salt, key.as_mut())
        .map_err(|e| Error::InvalidArgument(format!("Argon2id: {e}")))?;
    Ok(key)
}
