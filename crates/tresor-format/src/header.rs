//! The file header: who may read a file (one stanza per recipient, each
//! wrapping the file key), who wrote the header, and the writer's signature
//! over all of it. It is padded to a reserved size so that a grant or a
//! revoke rewrites it in place without moving the content.

use rand_core::CryptoRngCore;

use crate::error::{Error, Result, Structure};
use crate::identity::{Identity, PublicIdentity};
use crate::keys::{self, derive, domain, Agreement, FileKey, MemberId, Stanza, SIGNATURE_LEN, STANZA_LEN};
use crate::volume::{Role, Volume};
use crate::wire::{put_u16, put_u32, put_u64, Reader};

pub const HEADER_MAGIC: &[u8; 8] = b"TRSRFILE";
pub const HEADER_VERSION: u16 = 1;
/// Bytes before the first stanza.
pub const HEADER_FIXED_LEN: usize = 8 + 2 + 2 + 4 + 4 + 16 + 16 + 32 + 8 + 16;
/// The default per-volume header reservation: room for 40 recipients.
pub const DEFAULT_RESERVED_LEN: u32 = 4096;
pub const RESERVED_ALIGN: u32 = 512;
pub const MAX_RESERVED_LEN: u32 = 1 << 20;
const H: Structure = Structure::FileHeader;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub file_id: [u8; 16],
    /// The volume the file belongs to: a header cannot be moved to another
    /// volume, even one whose registry lists the same writer.
    pub volume_id: [u8; 16],
    reserved_len: u32,
    key_commitment: [u8; 32],
    signed_at: u64,
    writer: MemberId,
    stanzas: Vec<Stanza>,
    /// `None` after a change, until `sign`.
    signature: Option<[u8; SIGNATURE_LEN]>,
}

fn stanza_aad(volume_id: &[u8; 16], file_id: &[u8; 16]) -> Vec<u8> {
    [b"tresor/v1/file-key\0".as_slice(), volume_id, file_id].concat()
}

/// Binds the header to one file key: every recipient who unwraps a key
/// checks it against this, so a writer cannot give recipients different keys.
fn commitment(key: &FileKey, file_id: &[u8; 16]) -> [u8; 32] {
    *derive(key.as_bytes(), file_id, b"tresor/v1/key-commitment")
}

/// The header length for `recipients` stanzas.
pub fn header_len(recipients: usize) -> usize {
    HEADER_FIXED_LEN + recipients * STANZA_LEN + SIGNATURE_LEN
}

/// How many recipients fit a header reservation.
pub fn max_recipients(reserved_len: u32) -> usize {
    (reserved_len as usize).saturating_sub(header_len(0)) / STANZA_LEN
}

impl Header {
    /// A new file: fresh file id and file key, one stanza per recipient
    /// (duplicates dropped), signed by `writer`.
    pub fn create(
        volume: &Volume,
        writer: &Identity,
        recipients: &[PublicIdentity],
        signed_at: u64,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Header, FileKey)> {
        Header::create_agreed(volume, writer, recipients, signed_at, rng, &mut |_| None)
    }

    /// `create`, taking each recipient's ephemeral key agreement from
    /// `agreed` when it has one made beforehand (see [`Agreement`]), and
    /// making a fresh one otherwise. The header is the same either way.
    pub fn create_agreed(
        volume: &Volume,
        writer: &Identity,
        recipients: &[PublicIdentity],
        signed_at: u64,
        rng: &mut impl CryptoRngCore,
        agreed: &mut dyn FnMut(&PublicIdentity) -> Option<Agreement>,
    ) -> Result<(Header, FileKey)> {
        let mut file_id = [0u8; 16];
        rng.fill_bytes(&mut file_id);
        let key = FileKey::generate(rng);
        let mut header = Header::unsigned(volume.id, volume.params.header_len, file_id, &key);
        for r in recipients {
            if header.is_recipient(&r.id()) {
                continue;
            }
            match agreed(r).filter(|a| a.is_for(r)) {
                Some(agreement) => header.stanzas.push(Stanza::wrap_agreed(
                    key.as_bytes(),
                    r,
                    &stanza_aad(&header.volume_id, &header.file_id),
                    agreement,
                )?),
                None => {
                    header.add_recipient(&key, r, rng)?;
                }
            }
        }
        header.sign(writer, signed_at)?;
        Ok((header, key))
    }

    /// A header with no stanzas and no signature, for `key`. Building one
    /// stanza at a time lets test vectors give each ephemeral key.
    #[doc(hidden)]
    pub fn unsigned(volume_id: [u8; 16], reserved_len: u32, file_id: [u8; 16], key: &FileKey) -> Header {
        Header {
            file_id,
            volume_id,
            reserved_len,
            key_commitment: commitment(key, &file_id),
            signed_at: 0,
            writer: MemberId([0; 16]),
            stanzas: Vec::new(),
            signature: None,
        }
    }

    pub fn reserved_len(&self) -> u32 {
        self.reserved_len
    }

    pub fn signed_at(&self) -> u64 {
        self.signed_at
    }

    pub fn writer(&self) -> MemberId {
        self.writer
    }

    pub fn stanzas(&self) -> &[Stanza] {
        &self.stanzas
    }

    pub fn recipients(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.stanzas.iter().map(|s| s.recipient)
    }

    pub fn is_recipient(&self, id: &MemberId) -> bool {
        self.stanzas.iter().any(|s| s.recipient == *id)
    }

    pub fn is_signed(&self) -> bool {
        self.signature.is_some()
    }

    /// Whether the header still fits its reservation (after adding stanzas).
    pub fn fits(&self) -> bool {
        header_len(self.stanzas.len()) <= self.reserved_len as usize
    }

    /// Adds a stanza for `who`. `key` must be this header's file key.
    /// Returns false if `who` is already a recipient.
    pub fn add_recipient(&mut self, key: &FileKey, who: &PublicIdentity, rng: &mut impl CryptoRngCore) -> Result<bool> {
        let mut ephemeral = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(ephemeral.as_mut());
        self.add_recipient_with_ephemeral(key, who, &ephemeral)
    }

    #[doc(hidden)]
    pub fn add_recipient_with_ephemeral(
        &mut self,
        key: &FileKey,
        who: &PublicIdentity,
        ephemeral: &[u8; 32],
    ) -> Result<bool> {
        if commitment(key, &self.file_id) != self.key_commitment {
            return Err(Error::InvalidArgument("the key given is not this file's key".into()));
        }
        if self.is_recipient(&who.id()) {
            return Ok(false);
        }
        self.stanzas.push(Stanza::wrap_with_ephemeral(
            key.as_bytes(),
            who,
            &stanza_aad(&self.volume_id, &self.file_id),
            ephemeral,
        )?);
        self.signature = None;
        Ok(true)
    }

    /// Removes `id`'s stanza. Returns false if `id` was not a recipient.
    /// Without a re-key the removed member can still use a file key they kept.
    pub fn remove_recipient(&mut self, id: &MemberId) -> bool {
        let before = self.stanzas.len();
        self.stanzas.retain(|s| s.recipient != *id);
        let removed = self.stanzas.len() != before;
        if removed {
            self.signature = None;
        }
        removed
    }

    /// Replaces the file key with a fresh one, wrapped for `recipients`
    /// (normally the current recipients minus the revoked one). Every block
    /// must then be re-sealed under the returned key.
    pub fn rekey(&mut self, recipients: &[PublicIdentity], rng: &mut impl CryptoRngCore) -> Result<FileKey> {
        let key = FileKey::generate(rng);
        self.key_commitment = commitment(&key, &self.file_id);
        self.stanzas.clear();
        self.signature = None;
        for r in recipients {
            self.add_recipient(&key, r, rng)?;
        }
        Ok(key)
    }

    /// Signs the header as `writer` at `signed_at` (Unix seconds).
    pub fn sign(&mut self, writer: &Identity, signed_at: u64) -> Result<()> {
        if !self.fits() {
            return Err(Error::InvalidArgument(format!(
                "{} recipients do not fit this volume's {}-byte headers (at most {}); a volume created with a larger --header-size holds more",
                self.stanzas.len(),
                self.reserved_len,
                max_recipients(self.reserved_len)
            )));
        }
        self.writer = writer.id();
        self.signed_at = signed_at;
        self.signature = Some(keys::sign(writer, domain::HEADER, &self.body()));
        Ok(())
    }

    fn body(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.reserved_len as usize);
        out.extend_from_slice(HEADER_MAGIC);
        put_u16(&mut out, HEADER_VERSION);
        put_u16(&mut out, self.stanzas.len() as u16);
        put_u32(&mut out, header_len(self.stanzas.len()) as u32);
        put_u32(&mut out, self.reserved_len);
        out.extend_from_slice(&self.file_id);
        out.extend_from_slice(&self.volume_id);
        out.extend_from_slice(&self.key_commitment);
        put_u64(&mut out, self.signed_at);
        out.extend_from_slice(&self.writer.0);
        for s in &self.stanzas {
            s.write(&mut out);
        }
        out
    }

    /// The header region: `reserved_len` bytes, zero-padded. Fails if the
    /// header was changed and not signed again.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let signature = self.signature.ok_or_else(|| Error::InvalidArgument("header changed but not signed".into()))?;
        let mut out = self.body();
        out.extend_from_slice(&signature);
        out.resize(self.reserved_len as usize, 0);
        Ok(out)
    }

    /// Reads the reservation from the first 20 bytes of a file, to know how
    /// many bytes `parse` needs.
    pub fn peek_reserved_len(prefix: &[u8]) -> Result<u32> {
        let mut r = Reader::new(prefix, H);
        r.magic_and_version(HEADER_MAGIC, HEADER_VERSION)?;
        r.take(6)?;
        let reserved = r.u32()?;
        check_reserved(reserved, 0).map_err(|e| Error::malformed(H, e))?;
        Ok(reserved)
    }

    /// Parses and verifies a header region: what readers use.
    pub fn open(bytes: &[u8], volume: &Volume) -> Result<Header> {
        let header = Header::parse(bytes)?;
        header.verify(volume)?;
        Ok(header)
    }

    /// Parses a header region (the first `reserved_len` bytes of `bytes`;
    /// anything after is content and ignored). Checks structure only: call
    /// `verify` before trusting any field.
    pub fn parse(bytes: &[u8]) -> Result<Header> {
        let mut r = Reader::new(bytes, H);
        r.magic_and_version(HEADER_MAGIC, HEADER_VERSION)?;
        let count = r.u16()? as usize;
        let len = r.u32()? as usize;
        let reserved_len = r.u32()?;
        if len != header_len(count) {
            return Err(Error::malformed(H, "header length does not match the stanza count"));
        }
        check_reserved(reserved_len, len).map_err(|e| Error::malformed(H, e))?;
        if bytes.len() < reserved_len as usize {
            return Err(Error::malformed(H, "truncated"));
        }
        let file_id = r.array()?;
        let volume_id = r.array()?;
        let key_commitment = r.array()?;
        let signed_at = r.u64()?;
        let writer = MemberId(r.array()?);
        let mut stanzas: Vec<Stanza> = Vec::with_capacity(count);
        let mut seen = std::collections::HashSet::with_capacity(count);
        for _ in 0..count {
            let s = Stanza::read(&mut r)?;
            if !seen.insert(s.recipient) {
                return Err(Error::malformed(H, "two stanzas for one recipient"));
            }
            stanzas.push(s);
        }
        let signature = r.array()?;
        if bytes[len..reserved_len as usize].iter().any(|&b| b != 0) {
            return Err(Error::malformed(H, "padding is not zero"));
        }
        Ok(Header {
            file_id,
            volume_id,
            reserved_len,
            key_commitment,
            signed_at,
            writer,
            stanzas,
            signature: Some(signature),
        })
    }

    /// Verifies the signature against the writer's key in the registry. The
    /// writer must be a steward or a member (auditors never write); which
    /// recipients that writer may name is the access rules' job, not this.
    pub fn verify(&self, volume: &Volume) -> Result<()> {
        let signature = self.signature.as_ref().ok_or(Error::Tampered { what: H })?;
        if self.volume_id != volume.id {
            return Err(Error::malformed(H, "belongs to another volume"));
        }
        if self.reserved_len != volume.params.header_len {
            return Err(Error::malformed(H, "reservation differs from the volume's header size"));
        }
        let writer = volume.member(&self.writer).ok_or(Error::UnknownSigner { what: H, signer: self.writer })?;
        if writer.role == Role::Auditor {
            return Err(Error::SignerNotAllowed {
                what: H,
                signer: self.writer,
                reason: "auditors do not write files",
            });
        }
        keys::verify(&writer.public.ed25519, domain::HEADER, &self.body(), signature, H)
    }

    /// Unwraps the file key with a recipient's identity and checks it
    /// against the header's key commitment. Call on a verified header
    /// (`open`): an unverified one may name keys chosen by anyone.
    pub fn file_key(&self, identity: &Identity) -> Result<FileKey> {
        let stanza = self
            .stanzas
            .iter()
            .find(|s| s.recipient == identity.id())
            .ok_or(Error::NotRecipient { member: identity.id() })?;
        let key = FileKey::from_bytes(*stanza.unwrap(identity, &stanza_aad(&self.volume_id, &self.file_id))?);
        if commitment(&key, &self.file_id) != self.key_commitment {
            return Err(Error::Tampered { what: Structure::Stanza });
        }
        Ok(key)
    }
}

pub(crate) fn check_reserved(reserved: u32, needed: usize) -> Result<(), String> {
    if !reserved.is_multiple_of(RESERVED_ALIGN)
        || reserved > MAX_RESERVED_LEN
        || (reserved as usize) < needed.max(header_len(0))
    {
        return Err(format!(
            "header reservation {reserved} must be a multiple of {RESERVED_ALIGN}, at most {MAX_RESERVED_LEN}, and hold the header"
        ));
    }
    Ok(())
}
