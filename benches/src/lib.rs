//! Benchmarks for `tresor-format`, run with criterion.
//!
//! | bench target | what it measures |
//! |---|---|
//! | `blocks` | one content block through [`ContentCipher`]: `seal` (`seal_block` with `OsRng`, the write path), `open` (`open_block`, the read path) and `seal+open`, for every [`Suite`] at 4, 16, 64 and 128 KiB |
//! | `identity` | [`Identity::unseal`] (Argon2id + ChaCha20-Poly1305), with [`KdfParams::default`] and with the lighter OWASP minimum for comparison |
//!
//! Run them from the workspace root:
//!
//! ```sh
//! cargo bench -p tresor-benches                    # everything, a few minutes on 2 cores
//! cargo bench -p tresor-benches --bench blocks     # content blocks only
//! cargo bench -p tresor-benches --bench identity   # identity unlocking only
//! cargo bench -p tresor-benches --bench blocks -- 'open/AES-256-GCM/'   # a filter (a regex)
//! cargo bench -p tresor-benches --no-run           # build only
//! ```
//!
//! Benchmark ids are `GROUP/SUITE/SIZE`, e.g. `seal+open/AES-256-GCM/64KiB`
//! (in a filter, escape the `+`: `'seal\+open'`). Block throughput is the
//! plaintext bytes of one block per iteration; for `seal+open` that block
//! is sealed and opened, so the figure is about half of either alone.
//! Results are kept in `target/criterion/`; `-- --save-baseline NAME` and
//! `-- --baseline NAME` compare runs. The measurement times are short so a
//! whole run fits in a few minutes on a small shared machine: expect a few
//! percent of noise, and compare runs made on the same machine.
//!
//! This library holds only the setup shared by the bench targets; it is not
//! published and nothing else depends on it.

use rand_core::{OsRng, RngCore};
pub use tresor_format::content::BLOCK_OVERHEAD;
use tresor_format::{ContentCipher, FileKey, Identity, KdfParams, Suite};

pub const KIB: usize = 1024;

/// The block sizes benchmarked: the smallest the volume file allows (4 KiB),
/// the default (64 KiB) and two others; the format allows up to 1 MiB.
pub const BLOCK_SIZES: [usize; 4] = [4 * KIB, 16 * KIB, 64 * KIB, 128 * KIB];

/// OWASP's minimum for Argon2id (m = 19 MiB, t = 2, p = 1): a lighter
/// comparison point for [`KdfParams::default`].
pub const KDF_OWASP_MINIMUM: KdfParams = KdfParams { memory_kib: 19 * 1024, iterations: 2, lanes: 1 };

pub const PASSPHRASE: &[u8] = b"correct horse battery staple";

/// `4KiB`, `64KiB`, ...: the size part of a benchmark id.
pub fn size_label(bytes: usize) -> String {
    if bytes.is_multiple_of(KIB) {
        format!("{}KiB", bytes / KIB)
    } else {
        format!("{bytes}B")
    }
}

/// A cipher for one file with a random key and file id, as a writer builds
/// it once per open file.
pub fn content_cipher(suite: Suite, block_size: usize) -> ContentCipher {
    let key = FileKey::generate(&mut OsRng);
    let mut file_id = [0u8; 16];
    OsRng.fill_bytes(&mut file_id);
    ContentCipher::new(suite, &key, &file_id, u32::try_from(block_size).expect("block size fits in u32"))
}

/// `len` random bytes: plaintext that no layer could shortcut.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    OsRng.fill_bytes(&mut v);
    v
}

/// A full block sealed as block `block_no`, to be opened by the read benchmarks.
pub fn sealed_block(cipher: &ContentCipher, block_no: u64, plaintext: &[u8]) -> Vec<u8> {
    let mut ct = vec![0u8; plaintext.len() + BLOCK_OVERHEAD];
    cipher.seal_block(block_no, plaintext, &mut ct, &mut OsRng);
    ct
}

/// An identity file sealed under [`PASSPHRASE`] with `params`.
pub fn sealed_identity(params: KdfParams) -> Vec<u8> {
    let identity = Identity::generate("bench", &mut OsRng).expect("valid name");
    identity.seal(PASSPHRASE, params, &mut OsRng).expect("valid KDF parameters")
}

/// `KdfParams` as a benchmark id: `argon2id-m65536-t3-p1`.
pub fn kdf_label(p: &KdfParams) -> String {
    format!("argon2id-m{}-t{}-p{}", p.memory_kib, p.iterations, p.lanes)
}
