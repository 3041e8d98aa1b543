//! Content encryption: fixed-size plaintext blocks, each sealed with a fresh
//! random nonce and AAD binding the file id and the block number, followed
//! by a sealed end-of-file trailer so that dropping whole blocks at the end
//! is detected. Also the plaintext/ciphertext offset arithmetic.

use aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;
use aes_gcm_siv::aead::{AeadInOut as _, KeyInit as _};
use aes_gcm_siv::Aes256GcmSiv;
use chacha20poly1305::ChaCha20Poly1305;
use rand_core::CryptoRngCore;

use crate::error::{Error, Result, Structure};
use crate::keys::{derive, FileKey};

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Ciphertext bytes added to each block: nonce and tag.
pub const BLOCK_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// The trailer seals an empty message: a nonce and a tag.
pub const TRAILER_LEN: usize = NONCE_LEN + TAG_LEN;

/// The AEAD that seals content blocks: a volume parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Suite {
    /// Nonce-misuse resistant; slower than AES-256-GCM (see FORMAT.md).
    Aes256GcmSiv = 1,
    Aes256Gcm = 2,
    /// For CPUs without AES instructions.
    ChaCha20Poly1305 = 3,
}

impl Suite {
    pub const ALL: [Suite; 3] = [Suite::Aes256GcmSiv, Suite::Aes256Gcm, Suite::ChaCha20Poly1305];

    pub fn from_u8(v: u8) -> Result<Suite> {
        match v {
            1 => Ok(Suite::Aes256GcmSiv),
            2 => Ok(Suite::Aes256Gcm),
            3 => Ok(Suite::ChaCha20Poly1305),
            _ => Err(Error::UnsupportedSuite(v)),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Suite::Aes256GcmSiv => "AES-256-GCM-SIV",
            Suite::Aes256Gcm => "AES-256-GCM",
            Suite::ChaCha20Poly1305 => "ChaCha20-Poly1305",
        }
    }
}

enum Aead {
    GcmSiv(Box<Aes256GcmSiv>),
    Gcm(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

impl Aead {
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> [u8; TAG_LEN] {
        const OK: &str = "block sizes are far below the AEAD length limits";
        match self {
            Aead::GcmSiv(c) => c.encrypt_inout_detached(nonce.into(), aad, buf.into()).expect(OK).into(),
            Aead::Gcm(c) => c.encrypt_in_place_detached(nonce.into(), aad, buf).expect(OK).into(),
            Aead::ChaCha(c) => c.encrypt_in_place_detached(nonce.into(), aad, buf).expect(OK).into(),
        }
    }

    fn open(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        match self {
            Aead::GcmSiv(c) => c.decrypt_inout_detached(nonce.into(), aad, buf.into(), tag.into()).is_ok(),
            Aead::Gcm(c) => c.decrypt_in_place_detached(nonce.into(), aad, buf, tag.into()).is_ok(),
            Aead::ChaCha(c) => c.decrypt_in_place_detached(nonce.into(), aad, buf, tag.into()).is_ok(),
        }
    }
}

const AAD_BLOCK: u8 = 0;
const AAD_TRAILER: u8 = 1;
const AAD_LEN: usize = 1 + 16 + 8;

/// Seals and opens the content of one file. Built once per open file: the
/// key derivation and AES key schedule are not repeated per block.
pub struct ContentCipher {
    aead: Aead,
    file_id: [u8; 16],
    block_size: usize,
}

/// The key that seals blocks, derived from the file key and the file id so
/// that the same file key can never seal two files' blocks.
pub(crate) fn content_key(key: &FileKey, file_id: &[u8; 16]) -> zeroize::Zeroizing<[u8; 32]> {
    derive(key.as_bytes(), file_id, b"tresor/v1/content")
}

impl ContentCipher {
    pub fn new(suite: Suite, key: &FileKey, file_id: &[u8; 16], block_size: u32) -> ContentCipher {
        let k = content_key(key, file_id);
        let aead = match suite {
            Suite::Aes256GcmSiv => Aead::GcmSiv(Box::new(Aes256GcmSiv::new((&*k).into()))),
            Suite::Aes256Gcm => Aead::Gcm(Box::new(Aes256Gcm::new(k.as_ref().into()))),
            Suite::ChaCha20Poly1305 => Aead::ChaCha(Box::new(ChaCha20Poly1305::new(k.as_ref().into()))),
        };
        ContentCipher { aead, file_id: *file_id, block_size: block_size as usize }
    }

    fn aad(&self, kind: u8, n: u64) -> [u8; AAD_LEN] {
        let mut aad = [0u8; AAD_LEN];
        aad[0] = kind;
        aad[1..17].copy_from_slice(&self.file_id);
        aad[17..].copy_from_slice(&n.to_le_bytes());
        aad
    }

    /// Seals `plaintext` (1..=block_size bytes) as block `block_no` into
    /// `out`, which must be `plaintext.len() + BLOCK_OVERHEAD` bytes long.
    pub fn seal_block(&self, block_no: u64, plaintext: &[u8], out: &mut [u8], rng: &mut impl CryptoRngCore) {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        self.seal_block_with_nonce(block_no, plaintext, out, &nonce);
    }

    /// `seal_block` with the nonce given: for test vectors, and for callers
    /// that draw the random nonces of many blocks in one call. The nonce
    /// must be fresh from a CSPRNG for every block sealed.
    pub fn seal_block_with_nonce(&self, block_no: u64, plaintext: &[u8], out: &mut [u8], nonce: &[u8; NONCE_LEN]) {
        assert!(
            !plaintext.is_empty() && plaintext.len() <= self.block_size,
            "block plaintext must be 1..=block_size bytes"
        );
        assert_eq!(out.len(), plaintext.len() + BLOCK_OVERHEAD, "output must have room for nonce and tag");
        let (n, rest) = out.split_at_mut(NONCE_LEN);
        let (body, tag) = rest.split_at_mut(plaintext.len());
        n.copy_from_slice(nonce);
        body.copy_from_slice(plaintext);
        tag.copy_from_slice(&self.aead.seal(nonce, &self.aad(AAD_BLOCK, block_no), body));
    }

    /// Opens block `block_no` from `ciphertext` into `out` (at least
    /// `ciphertext.len() - BLOCK_OVERHEAD` bytes) and returns the plaintext
    /// length. A full-size all-zero ciphertext block is a hole and reads as
    /// zeros.
    pub fn open_block(&self, block_no: u64, ciphertext: &[u8], out: &mut [u8]) -> Result<usize> {
        let what = Structure::Block(block_no);
        if ciphertext.len() <= BLOCK_OVERHEAD || ciphertext.len() > self.block_size + BLOCK_OVERHEAD {
            return Err(Error::malformed(what, format!("{} bytes is not a valid block length", ciphertext.len())));
        }
        let len = ciphertext.len() - BLOCK_OVERHEAD;
        let out = &mut out[..len];
        // A real nonce is all zeros with probability 2^-96, so only then is
        // the whole block scanned: the read path pays 12 bytes, not a pass.
        if len == self.block_size && is_zero(&ciphertext[..NONCE_LEN]) && is_zero(ciphertext) {
            out.fill(0);
            return Ok(len);
        }
        let nonce: &[u8; NONCE_LEN] = ciphertext[..NONCE_LEN].try_into().unwrap();
        let tag: &[u8; TAG_LEN] = ciphertext[NONCE_LEN + len..].try_into().unwrap();
        out.copy_from_slice(&ciphertext[NONCE_LEN..NONCE_LEN + len]);
        if !self.aead.open(nonce, &self.aad(AAD_BLOCK, block_no), out, tag) {
            out.fill(0);
            return Err(Error::Tampered { what });
        }
        Ok(len)
    }

    /// `open_block` for the last block of a file, which is never a hole:
    /// otherwise zeroing a full-size last block would read as zeros.
    pub fn open_last_block(&self, block_no: u64, ciphertext: &[u8], out: &mut [u8]) -> Result<usize> {
        if is_zero(ciphertext) {
            return Err(Error::Tampered { what: Structure::Block(block_no) });
        }
        self.open_block(block_no, ciphertext, out)
    }

    /// The trailer that follows the last block of a file of `block_count` blocks.
    pub fn seal_trailer(&self, block_count: u64, rng: &mut impl CryptoRngCore) -> [u8; TRAILER_LEN] {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        self.seal_trailer_with_nonce(block_count, &nonce)
    }

    #[doc(hidden)]
    pub fn seal_trailer_with_nonce(&self, block_count: u64, nonce: &[u8; NONCE_LEN]) -> [u8; TRAILER_LEN] {
        let mut out = [0u8; TRAILER_LEN];
        out[..NONCE_LEN].copy_from_slice(nonce);
        out[NONCE_LEN..].copy_from_slice(&self.aead.seal(nonce, &self.aad(AAD_TRAILER, block_count), &mut []));
        out
    }

    /// Checks that `trailer` ends a file of exactly `block_count` blocks.
    pub fn open_trailer(&self, block_count: u64, trailer: &[u8]) -> Result<()> {
        let trailer: &[u8; TRAILER_LEN] =
            trailer.try_into().map_err(|_| Error::malformed(Structure::Trailer, "wrong length"))?;
        let nonce = trailer[..NONCE_LEN].try_into().unwrap();
        let tag = trailer[NONCE_LEN..].try_into().unwrap();
        if !self.aead.open(nonce, &self.aad(AAD_TRAILER, block_count), &mut [], tag) {
            return Err(Error::Tampered { what: Structure::Trailer });
        }
        Ok(())
    }
}

impl ContentCipher {
    /// Seals a whole plaintext: every block, then the trailer. The bytes
    /// that follow the header in a ciphertext file.
    pub fn seal_content(&self, plaintext: &[u8], rng: &mut impl CryptoRngCore) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            plaintext.len() + (plaintext.len() / self.block_size + 1) * BLOCK_OVERHEAD + TRAILER_LEN,
        );
        let mut count = 0u64;
        for (n, chunk) in plaintext.chunks(self.block_size).enumerate() {
            let at = out.len();
            out.resize(at + chunk.len() + BLOCK_OVERHEAD, 0);
            self.seal_block(n as u64, chunk, &mut out[at..], rng);
            count += 1;
        }
        out.extend_from_slice(&self.seal_trailer(count, rng));
        out
    }

    /// Opens everything after the header: every block, and the trailer that
    /// proves nothing was cut off.
    pub fn open_content(&self, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let layout = Layout::new(0, self.block_size as u32);
        let size = layout.plaintext_size(ciphertext.len() as u64)?;
        let count = layout.block_count(size);
        let mut out = vec![0u8; size as usize];
        let (blocks, trailer) = ciphertext.split_at(ciphertext.len() - TRAILER_LEN);
        self.open_trailer(count, trailer)?;
        let block_ct = self.block_size + BLOCK_OVERHEAD;
        for (n, (ct, pt)) in blocks.chunks(block_ct).zip(out.chunks_mut(self.block_size)).enumerate() {
            if n as u64 + 1 == count {
                self.open_last_block(n as u64, ct, pt)?;
            } else {
                self.open_block(n as u64, ct, pt)?;
            }
        }
        Ok(out)
    }
}

fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, b| acc | b) == 0
}

/// Where plaintext bytes live in a ciphertext file:
/// `header (reserved_len) | block 0 | block 1 | … | last block | trailer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Bytes reserved for the header; content starts here.
    pub header_len: u64,
    pub block_size: u64,
}

impl Layout {
    pub fn new(header_len: u32, block_size: u32) -> Layout {
        Layout { header_len: header_len.into(), block_size: block_size.into() }
    }

    pub fn ciphertext_block_len(&self) -> u64 {
        self.block_size + BLOCK_OVERHEAD as u64
    }

    /// Number of blocks holding `plaintext_size` bytes.
    pub fn block_count(&self, plaintext_size: u64) -> u64 {
        plaintext_size.div_ceil(self.block_size)
    }

    /// Offset of block `block_no` in the ciphertext file.
    pub fn block_offset(&self, block_no: u64) -> u64 {
        self.header_len + block_no * self.ciphertext_block_len()
    }

    /// The block holding plaintext offset `offset`, and the offset within it.
    pub fn locate(&self, offset: u64) -> (u64, usize) {
        (offset / self.block_size, (offset % self.block_size) as usize)
    }

    /// Ciphertext file size for a plaintext of `plaintext_size` bytes.
    pub fn ciphertext_size(&self, plaintext_size: u64) -> u64 {
        let blocks = self.block_count(plaintext_size);
        self.header_len + plaintext_size + blocks * BLOCK_OVERHEAD as u64 + TRAILER_LEN as u64
    }

    /// Plaintext size of a ciphertext file of `ciphertext_size` bytes; an
    /// error if no plaintext size gives that length (a cut or padded file).
    pub fn plaintext_size(&self, ciphertext_size: u64) -> Result<u64> {
        let bad = || {
            Error::malformed(
                Structure::FileLength,
                format!("{ciphertext_size} bytes is not the length of any valid file; it was cut or extended"),
            )
        };
        let data = ciphertext_size.checked_sub(self.header_len + TRAILER_LEN as u64).ok_or_else(bad)?;
        let full = data / self.ciphertext_block_len();
        let rem = data % self.ciphertext_block_len();
        match rem {
            0 => Ok(full * self.block_size),
            r if r > BLOCK_OVERHEAD as u64 => Ok(full * self.block_size + r - BLOCK_OVERHEAD as u64),
            _ => Err(bad()),
        }
    }

    /// Offset of the trailer in a file of `plaintext_size` bytes.
    pub fn trailer_offset(&self, plaintext_size: u64) -> u64 {
        self.ciphertext_size(plaintext_size) - TRAILER_LEN as u64
    }
}
