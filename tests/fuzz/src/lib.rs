//! Fuzz targets for every parser in `tresor-format`, and the machinery to
//! run them on stable Rust.
//!
//! Each target is a `pub fn NAME(data: &[u8])` that feeds arbitrary bytes to
//! a parser and, when it accepts them, checks what must follow: canonical
//! structures serialize back to the very same bytes, and verification and
//! decryption calls return `Ok` or `Err`, never panic. A target panics (an
//! `assert!`) when such a property fails, so "no panic" is the one oracle.
//! [`TARGETS`] lists them; [`seed_corpus`] builds valid inputs for each,
//! deterministically, from fixed test keys ([`fixture`]).
//!
//! # Running
//!
//! * In CI: `cargo test -p tresor-fuzz` (also part of `cargo test
//!   --workspace`) runs a few thousand mutated inputs per target
//!   (`tests/smoke.rs`).
//! * Fuzzing on stable: `cargo run -p tresor-fuzz --release -- header
//!   --iterations 1000000`. See `src/bin/tresor-fuzz.rs` for the options,
//!   for reproducing a crash from `tests/fuzz/crashes/`, and for building
//!   with coverage feedback. Add `CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true`
//!   to catch integer overflows, which release builds otherwise wrap silently.
//! * With libFuzzer (cargo-fuzz) or AFL++, on a machine with a nightly
//!   toolchain: the targets are plain functions, so each harness is a
//!   one-liner in a crate that depends on this one (`tresor-fuzz = { path =
//!   "…/tests/fuzz" }`). For cargo-fuzz, `cargo fuzz init` in a scratch
//!   directory, then per target a `fuzz/fuzz_targets/header.rs` with
//!
//!   ```ignore
//!   #![no_main]
//!   libfuzzer_sys::fuzz_target!(|data: &[u8]| tresor_fuzz::header(data));
//!   ```
//!
//!   and `tresor-fuzz header --write-corpus fuzz/corpus/header` followed by
//!   `cargo fuzz run header`. For AFL++ (`cargo install cargo-afl`), a
//!   binary whose `main` is `afl::fuzz!(|data: &[u8]| tresor_fuzz::header(data));`,
//!   built with `cargo afl build --release` and run with `cargo afl fuzz -i
//!   SEEDS -o OUT target/release/NAME`. Neither is a dependency here: both
//!   need toolchain support that CI does not have.

use std::sync::OnceLock;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use tresor_format::{
    content::{BLOCK_OVERHEAD, NONCE_LEN, TRAILER_LEN},
    header::{header_len, max_recipients, MAX_RESERVED_LEN},
    names::{self, check_name, classify, long_name_sidecar, EntryKind},
    ContentCipher, DirIv, EncryptedName, EncryptedTarget, Error, FileKey, Header, Identity, KdfParams, Layout,
    NameCipher, NameKey, PublicIdentity, Role, SealedIdentity, Structure, Suite, Volume, VolumeParams,
};

pub mod codec;
pub mod driver;
pub mod mutate;

/// The passphrase of every sealed identity in the seed corpus, and the one
/// the `identity` target unseals with.
pub const PASSPHRASE: &[u8] = b"correct horse battery staple";
/// Block size of the fixed volume and of the `content` target.
pub const BLOCK_SIZE: u32 = 4096;
/// Header reservation of the fixed volume: small, so that mutations of
/// header seeds land in the header rather than in its zero padding.
pub const HEADER_LEN: u32 = 1024;
/// Argon2 costs above these are parsed but not unsealed, to keep the
/// fuzzer fast (the parser itself bounds them much higher).
pub const UNSEAL_MAX_MEMORY_KIB: u32 = 64;
pub const UNSEAL_MAX_ITERATIONS: u32 = 2;
const SIGNED_AT: u64 = 1_700_000_000;

/// A fuzz target: feeds `data` to a parser, panics if a property fails.
pub type Target = fn(&[u8]);

/// Every target, by name: what the binary and the smoke test iterate over.
pub const TARGETS: &[(&str, Target)] = &[
    ("identity", identity),
    ("public_identity", public_identity),
    ("volume", volume),
    ("header", header),
    ("content", content),
    ("file_content", file_content),
    ("names", names),
    ("dir_iv", dir_iv),
    ("api", api),
    ("audit_log", audit_log),
];

/// Looks a target up by name (`-` and `_` are interchangeable).
pub fn target(name: &str) -> Option<(&'static str, Target)> {
    let name = name.replace('-', "_");
    TARGETS.iter().find(|(n, _)| *n == name).copied()
}

// ---- fixed test keys --------------------------------------------------------

/// The fixed small volume every target checks against, built the same way
/// on every run from fixed seeds.
pub struct Fixture {
    /// Steward.
    pub alice: Identity,
    /// Member.
    pub bob: Identity,
    /// Auditor.
    pub carol: Identity,
    /// Not in the volume.
    pub dave: Identity,
    pub volume: Volume,
    pub volume_bytes: Vec<u8>,
    pub name_key: NameKey,
    pub names: NameCipher,
    pub dir_iv: DirIv,
    /// A header written by bob for alice and bob, and its file key.
    pub header: Header,
    pub header_bytes: Vec<u8>,
    pub file_key: FileKey,
    /// A `ContentCipher` per suite for `header`'s file, block size 4096.
    pub ciphers: Vec<(Suite, ContentCipher)>,
}

impl Fixture {
    pub fn identities(&self) -> [&Identity; 4] {
        [&self.alice, &self.bob, &self.carol, &self.dave]
    }
}

/// A ChaCha20 RNG from a fixed seed: the fixture and the seeds are the same
/// on every run.
pub fn rng(seed: u8) -> ChaCha20Rng {
    ChaCha20Rng::from_seed([seed; 32])
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let id = |seed: u8, name: &str| Identity::from_seed(&[seed; 32], name).expect("valid test identity");
        let (alice, bob, carol, dave) = (id(1, "alice"), id(2, "bob"), id(3, "carol"), id(4, "dave"));
        let mut rng = rng(7);
        let params = VolumeParams { suite: Suite::Aes256Gcm, block_size: BLOCK_SIZE, header_len: HEADER_LEN };
        let (mut volume, name_key) = Volume::create(&alice, params, &mut rng).unwrap();
        volume.add_member(&name_key, bob.public(), "bob", Role::Member, &mut rng).unwrap();
        volume.add_member(&name_key, carol.public(), "carol", Role::Auditor, &mut rng).unwrap();
        let dir_iv = DirIv([0x5a; names::DIRIV_LEN]);
        volume.set_policy(dir_iv, &[alice.id(), bob.id()]).unwrap();
        volume.set_policy(DirIv([1; names::DIRIV_LEN]), &[]).unwrap();
        volume.sign(&alice).unwrap();
        let volume_bytes = volume.to_bytes();
        assert_eq!(Volume::open_self_signed(&volume_bytes).as_ref(), Ok(&volume));

        let (header, file_key) =
            Header::create(&volume, &bob, &[*alice.public(), *bob.public()], SIGNED_AT, &mut rng).unwrap();
        let header_bytes = header.to_bytes().unwrap();
        header.verify(&volume).unwrap();
        let ciphers =
            Suite::ALL.iter().map(|&s| (s, ContentCipher::new(s, &file_key, &header.file_id, BLOCK_SIZE))).collect();
        Fixture {
            names: NameCipher::new(&name_key),
            alice,
            bob,
            carol,
            dave,
            volume,
            volume_bytes,
            name_key,
            dir_iv,
            header,
            header_bytes,
            file_key,
            ciphers,
        }
    })
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut buf = [0u8; 8];
    if let Some(bytes) = data.get(at..) {
        let n = bytes.len().min(8);
        buf[..n].copy_from_slice(&bytes[..n]);
    }
    u64::from_le_bytes(buf)
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().unwrap()))
}

// ---- identity ------------------------------------------------------------------

/// `SealedIdentity::parse`, then `Identity::unseal` with [`PASSPHRASE`]
/// (when the Argon2 costs are small); an unsealed identity seals back to
/// the same bytes with the same salt and nonce.
pub fn identity(data: &[u8]) {
    let sealed = match SealedIdentity::parse(data) {
        Ok(sealed) => sealed,
        Err(e) => {
            assert!(
                matches!(e, Error::Malformed { .. } | Error::BadMagic { .. } | Error::UnsupportedVersion { .. }),
                "{e:?}"
            );
            assert!(Identity::unseal(data, PASSPHRASE).is_err(), "unseal accepted what parse refused");
            return;
        }
    };
    check_public_identity(&sealed.public);
    assert!(!sealed.name.is_empty() && sealed.name.len() <= 64, "{:?}", sealed.name);
    if sealed.params.memory_kib > UNSEAL_MAX_MEMORY_KIB || sealed.params.iterations > UNSEAL_MAX_ITERATIONS {
        return;
    }
    match Identity::unseal(data, PASSPHRASE) {
        Ok(identity) => {
            assert_eq!(identity.public(), &sealed.public);
            assert_eq!(identity.name(), sealed.name);
            let again = identity.seal_with(PASSPHRASE, sealed.params, &sealed.salt, &sealed.nonce).unwrap();
            assert_eq!(again, data, "identity file is not canonical");
        }
        // After a successful parse, the passphrase is the only thing that can be wrong.
        Err(e) => assert_eq!(e, Error::WrongPassphrase),
    }
}

// ---- public identity string ------------------------------------------------------

/// `PublicIdentity::from_str` on the input as (lossy) UTF-8, and on the same
/// string with its Bech32m checksum fixed up so that mutations get past it.
/// Whatever parses prints back to a string that parses to the same keys.
pub fn public_identity(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    check_public_identity_str(&s);
    if let Some(fixed) = codec::bech32m_rechecksum(&s) {
        check_public_identity_str(&fixed);
    }
    // The 64 key bytes themselves, as a well-formed tresor1… string.
    if data.len() >= 64 {
        let mut keys = codec::to_base32(&data[..64]);
        // Non-zero padding bits at the end, from the next byte when there is one.
        if let Some(&pad) = data.get(64) {
            *keys.last_mut().unwrap() |= pad & 0b111;
        }
        check_public_identity_str(&codec::bech32m_encode("tresor", &keys));
    }
}

fn check_public_identity_str(s: &str) {
    let Ok(public) = s.parse::<PublicIdentity>() else { return };
    let shown = check_public_identity(&public);
    // One string per identity, up to surrounding whitespace and case: in
    // particular non-zero padding bits in the last character are refused.
    assert_eq!(shown, s.trim().to_ascii_lowercase(), "a non-canonical tresor1… string was accepted");
}

fn check_public_identity(public: &PublicIdentity) -> String {
    let shown = public.to_string();
    let again: PublicIdentity = shown.parse().expect("Display output of a PublicIdentity must parse");
    assert_eq!(&again, public);
    assert_eq!(again.id(), public.id());
    assert_eq!(again.to_string(), shown);
    shown
}

// ---- volume file ------------------------------------------------------------------

/// `Volume::open_self_signed`; an accepted volume serializes to exactly the
/// input, opens with its signer pinned and not without, and unwraps the
/// name key for the fixed identities or refuses.
pub fn volume(data: &[u8]) {
    let f = fixture();
    let volume = match Volume::open_self_signed(data) {
        Ok(v) => v,
        Err(_) => {
            assert!(Volume::open(data, &[f.alice.public().ed25519]).is_err());
            return;
        }
    };
    assert_eq!(volume.to_bytes(), data, "volume file is not canonical");
    assert!(volume.params.block_size.is_power_of_two());
    let members = volume.members();
    assert!(!members.is_empty());
    for (i, m) in members.iter().enumerate() {
        assert!(members[..i].iter().all(|o| o.id() != m.id()), "duplicate member accepted");
        assert_eq!(m.name_key.recipient, m.id());
        check_public_identity(&m.public);
    }
    let mut last = None;
    for (iv, defaults) in volume.policies() {
        assert!(last < Some(*iv), "policies out of order");
        last = Some(*iv);
        assert!(defaults.len() <= tresor_format::volume::MAX_DEFAULT_RECIPIENTS);
        for (i, id) in defaults.iter().enumerate() {
            assert!(!defaults[..i].contains(id), "duplicate default recipient accepted");
            assert!(
                volume.member(id).is_some_and(|m| m.role != Role::Auditor),
                "a default recipient who is not a member, or an auditor"
            );
        }
    }
    let signer = volume.member(&volume.signer()).expect("the signer is a member");
    assert_eq!(signer.role, Role::Steward);
    assert_eq!(Volume::open(data, &[signer.public.ed25519]).as_ref(), Ok(&volume));
    assert!(matches!(Volume::open(data, &[]), Err(Error::UnknownSigner { .. })));
    for id in f.identities() {
        match volume.name_key(id) {
            // An unwrapped key is authentic: for the fixed volume it is the fixed key.
            Ok(key) if volume.id == f.volume.id => assert_eq!(key, f.name_key),
            Ok(_) => {}
            Err(e) => assert!(matches!(e, Error::NotRecipient { .. } | Error::Tampered { .. }), "{e:?}"),
        }
    }
}

// ---- file header --------------------------------------------------------------------

/// `Header::peek_reserved_len` and `Header::parse`; an accepted header
/// serializes to exactly its `reserved_len` bytes, verifies against the
/// fixed volume or not, gives the fixed identities their file key or not,
/// and, re-signed by a member, verifies.
pub fn header(data: &[u8]) {
    let f = fixture();
    let peeked = Header::peek_reserved_len(data);
    if let Ok(r) = peeked {
        assert!(r as usize >= header_len(0) && r <= MAX_RESERVED_LEN && r % 512 == 0, "{r}");
    }
    let header = match Header::parse(data) {
        Ok(h) => h,
        Err(_) => {
            assert!(Header::open(data, &f.volume).is_err(), "open accepted what parse refused");
            return;
        }
    };
    let reserved = header.reserved_len() as usize;
    assert_eq!(peeked.as_ref().ok(), Some(&header.reserved_len()), "parse accepted what peek refused");
    assert!(data.len() >= reserved && header.fits());
    let bytes = header.to_bytes().expect("a parsed header is signed");
    assert_eq!(bytes, &data[..reserved], "file header is not canonical");
    assert_eq!(Header::parse(&bytes).as_ref(), Ok(&header));

    let verified = header.verify(&f.volume);
    match &verified {
        Ok(()) => {
            assert_eq!(header.volume_id, f.volume.id);
            assert_eq!(header.reserved_len(), f.volume.params.header_len);
            let writer = f.volume.member(&header.writer()).expect("verified writer is a member");
            assert_ne!(writer.role, Role::Auditor);
        }
        Err(e) => assert!(
            matches!(
                e,
                Error::Tampered { .. }
                    | Error::UnknownSigner { .. }
                    | Error::SignerNotAllowed { .. }
                    | Error::Malformed { .. }
            ),
            "{e:?}"
        ),
    }
    assert_eq!(Header::open(data, &f.volume).ok().as_ref(), verified.is_ok().then_some(&header));
    for id in f.identities() {
        match header.file_key(id) {
            Ok(key) => {
                assert!(header.is_recipient(&id.id()));
                if header.file_id == f.header.file_id {
                    assert_eq!(key, f.file_key, "a file key other than the committed one was accepted");
                }
            }
            Err(Error::NotRecipient { .. }) => assert!(!header.is_recipient(&id.id())),
            Err(e) => assert!(matches!(e, Error::Tampered { what: Structure::Stanza }), "{e:?}"),
        }
    }

    // Whatever was parsed, a member can sign it, and then it verifies and round-trips.
    let mut resigned = header.clone();
    if data.len() > reserved && data[reserved] & 1 == 1 {
        let _ = resigned.remove_recipient(&f.alice.id());
    }
    resigned.sign(&f.bob, header.signed_at().wrapping_add(1)).unwrap();
    if resigned.volume_id == f.volume.id && resigned.reserved_len() == f.volume.params.header_len {
        resigned.verify(&f.volume).expect("a header just signed by a member verifies");
    }
    let bytes = resigned.to_bytes().unwrap();
    assert_eq!(bytes.len(), resigned.reserved_len() as usize);
    assert_eq!(Header::parse(&bytes), Ok(resigned));
}

// ---- content blocks and layout -------------------------------------------------------

/// `ContentCipher::open_block`, `open_last_block` and `open_trailer` for
/// every suite (block size 4096, the fixed file key and file id): the first
/// 8 bytes are the block number (or block count), the rest the ciphertext.
/// What opens re-seals to the same bytes with the same nonce; what does not
/// leaves no plaintext behind. Also `Layout` arithmetic on numbers from the
/// input.
pub fn content(data: &[u8]) {
    layout(data);
    let f = fixture();
    let n = u64_at(data, 0);
    let ct = data.get(8..).unwrap_or(&[]);
    let mut out = vec![0u8; BLOCK_SIZE as usize + 64];
    for (suite, cipher) in &f.ciphers {
        out.fill(0xa5);
        let opened = cipher.open_block(n, ct, &mut out);
        let hole = ct.len() == BLOCK_SIZE as usize + BLOCK_OVERHEAD && ct.iter().all(|&b| b == 0);
        let mut last = vec![0u8; BLOCK_SIZE as usize];
        match cipher.open_last_block(n, ct, &mut last) {
            // The last block of a file is never a hole.
            Ok(len) => assert!(!hole && opened.as_ref() == Ok(&len) && last[..len] == out[..len], "{suite:?}"),
            Err(e) => assert!(hole || opened.is_err(), "{suite:?}: {e:?}"),
        }
        match opened {
            Ok(len) => {
                assert_eq!(len, ct.len() - BLOCK_OVERHEAD, "{suite:?}");
                assert!((1..=BLOCK_SIZE as usize).contains(&len));
                if hole {
                    assert!(out[..len].iter().all(|&b| b == 0), "a hole must read as zeros");
                } else {
                    let mut again = vec![0u8; ct.len()];
                    cipher.seal_block_with_nonce(n, &out[..len], &mut again, ct[..NONCE_LEN].try_into().unwrap());
                    assert_eq!(again, ct, "{suite:?}: block does not re-seal to the same bytes");
                    let mut scratch = vec![0u8; BLOCK_SIZE as usize];
                    assert!(cipher.open_block(n ^ 1, ct, &mut scratch).is_err(), "block opened at another position");
                }
            }
            Err(Error::Tampered { what: Structure::Block(b) }) => {
                assert_eq!(b, n);
                let len = ct.len() - BLOCK_OVERHEAD;
                assert!(out[..len].iter().all(|&b| b == 0), "{suite:?}: unauthenticated plaintext left in the buffer");
            }
            Err(Error::Malformed { what: Structure::Block(b), .. }) => {
                assert_eq!(b, n);
                assert!(ct.len() <= BLOCK_OVERHEAD || ct.len() > BLOCK_SIZE as usize + BLOCK_OVERHEAD);
                assert!(out.iter().all(|&b| b == 0xa5), "a refused block wrote to the buffer");
            }
            Err(e) => panic!("{suite:?}: unexpected error {e:?}"),
        }
        match cipher.open_trailer(n, ct) {
            Ok(()) => {
                assert_eq!(ct.len(), TRAILER_LEN);
                let again = cipher.seal_trailer_with_nonce(n, ct[..NONCE_LEN].try_into().unwrap());
                assert_eq!(again.as_slice(), ct);
                assert!(
                    cipher.open_trailer(n.wrapping_add(1), ct).is_err(),
                    "trailer accepted for another block count"
                );
            }
            Err(e) => assert!(matches!(e, Error::Malformed { .. } | Error::Tampered { .. }), "{e:?}"),
        }
    }
}

/// `ContentCipher::open_content` for every suite (block size 4096, the fixed
/// file key and file id) on the input as everything after a header: what
/// opens has the length `Layout` gives, and each block in it re-seals to
/// the same bytes with its nonce.
pub fn file_content(data: &[u8]) {
    let f = fixture();
    let layout = Layout::new(0, BLOCK_SIZE);
    let size = layout.plaintext_size(data.len() as u64);
    for (suite, cipher) in &f.ciphers {
        let Ok(plaintext) = cipher.open_content(data) else { continue };
        assert_eq!(Ok(plaintext.len() as u64), size, "{suite:?}");
        let block_ct = BLOCK_SIZE as usize + BLOCK_OVERHEAD;
        let blocks = &data[..data.len() - TRAILER_LEN];
        assert_eq!(blocks.chunks(block_ct).count(), plaintext.chunks(BLOCK_SIZE as usize).count());
        let count = layout.block_count(plaintext.len() as u64);
        for (n, (ct, pt)) in blocks.chunks(block_ct).zip(plaintext.chunks(BLOCK_SIZE as usize)).enumerate() {
            if pt.len() == BLOCK_SIZE as usize && ct.iter().all(|&b| b == 0) {
                assert!(n as u64 + 1 < count, "{suite:?}: the last block read as a hole");
                assert!(pt.iter().all(|&b| b == 0));
                continue;
            }
            let mut again = vec![0u8; ct.len()];
            cipher.seal_block_with_nonce(n as u64, pt, &mut again, ct[..NONCE_LEN].try_into().unwrap());
            assert_eq!(again, ct, "{suite:?}: block {n} does not re-seal to the same bytes");
        }
        cipher.open_trailer(count, &data[data.len() - TRAILER_LEN..]).expect("open_content checked the trailer");
    }
}

/// Plaintext size ↔ ciphertext size, checked against a 128-bit reference.
fn layout(data: &[u8]) {
    let x = u64_at(data, 0);
    let header_len = u32_at(data, 8).unwrap_or(4096);
    let block_size = 4096u32 << (data.get(12).copied().unwrap_or(0) % 9);
    let layout = Layout::new(header_len, block_size);
    let (h, bs, o) = (u128::from(header_len), u128::from(block_size), BLOCK_OVERHEAD as u128);
    let reference = |p: u128| h + p + p.div_ceil(bs) * o + TRAILER_LEN as u128;

    // Reference inverse: the smallest p with reference(p) >= x (reference(p) >= p).
    let (mut lo, mut hi) = (0u128, u128::from(x));
    while lo < hi {
        let mid = (lo + hi) / 2;
        if reference(mid) >= u128::from(x) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let expected = (reference(lo) == u128::from(x)).then_some(lo as u64);
    match layout.plaintext_size(x) {
        Ok(p) => {
            assert_eq!(Some(p), expected, "plaintext_size({x}) for {layout:?}");
            assert_eq!(layout.ciphertext_size(p), x);
        }
        Err(e) => {
            assert_eq!(expected, None, "plaintext_size({x}) refused a valid length for {layout:?}");
            assert!(matches!(e, Error::Malformed { what: Structure::FileLength, .. }));
        }
    }

    // Plaintext sizes a file can have (off_t): no overflow, exact inverse.
    let p = x & (i64::MAX as u64);
    let c = layout.ciphertext_size(p);
    assert_eq!(u128::from(c), reference(u128::from(p)));
    assert_eq!(layout.plaintext_size(c), Ok(p));
    assert_eq!(layout.trailer_offset(p), c - TRAILER_LEN as u64);
    let blocks = layout.block_count(p);
    assert_eq!(u128::from(blocks), u128::from(p).div_ceil(bs));
    if p > 0 {
        let last = blocks - 1;
        let (b, within) = layout.locate(p - 1);
        assert_eq!((b, within as u64), (last, p - 1 - last * u64::from(block_size)));
        let last_len = p - last * u64::from(block_size);
        assert_eq!(layout.block_offset(last) + last_len + BLOCK_OVERHEAD as u64, layout.trailer_offset(p));
    }
}

// ---- names and symlink targets ----------------------------------------------------------

/// `NameCipher::decrypt_name`, `decrypt_target`, `classify`, `check_name` on
/// the input (as lossy UTF-8, and as bytes for `check_name`); encrypting a
/// valid name or target and decrypting it gives it back.
pub fn names(data: &[u8]) {
    let f = fixture();
    let (nc, iv) = (&f.names, &f.dir_iv);
    let s = String::from_utf8_lossy(data);
    assert_eq!(classify(&s), reference_classify(&s), "classify({s:?})");
    assert_eq!(check_name(data).is_ok(), reference_check_name(data), "check_name({data:?})");
    assert_eq!(check_name(s.as_bytes()).is_ok(), reference_check_name(s.as_bytes()));

    match nc.decrypt_name(iv, &s) {
        Ok(name) => {
            check_name(&name).expect("decrypted names are valid");
            // Names are encrypted deterministically: re-encryption gives the input back.
            match nc.encrypt_name(iv, &name).unwrap() {
                EncryptedName::Short(e) => assert_eq!(e, s, "encrypted name is not canonical"),
                EncryptedName::Long { entry, full } => {
                    assert_eq!(full, s, "encrypted long name is not canonical");
                    NameCipher::check_long_name(&entry, &full).unwrap();
                }
            }
        }
        Err(e) => assert!(
            matches!(e, Error::Malformed { what: Structure::Name, .. } | Error::Tampered { what: Structure::Name }),
            "{e:?}"
        ),
    }
    match nc.decrypt_target(&s) {
        Ok(target) => {
            let blob = codec::base64url_decode(&s).expect("decrypt_target accepted non-base64url");
            assert!(!target.is_empty() && target.len() <= names::TARGET_MAX && !target.contains(&0));
            let again = nc.encrypt_target_with_nonce(&target, blob[..NONCE_LEN].try_into().unwrap()).unwrap();
            let stored = match again {
                EncryptedTarget::Inline(t) => t,
                EncryptedTarget::Sidecar { full, .. } => full,
            };
            assert_eq!(stored, s, "encrypted symlink target is not canonical");
        }
        Err(e) => assert!(
            matches!(
                e,
                Error::Malformed { what: Structure::SymlinkTarget, .. }
                    | Error::Tampered { what: Structure::SymlinkTarget }
            ),
            "{e:?}"
        ),
    }
    if let Some((a, b)) = s.split_once('\n') {
        let _ = NameCipher::check_long_name(a, b);
        let _ = NameCipher::check_long_target(a, b);
    }

    // Encrypt → decrypt for valid names (bytes, not necessarily UTF-8).
    if check_name(data).is_ok() {
        let encrypted = nc.encrypt_name(iv, data).unwrap();
        let stored = match &encrypted {
            EncryptedName::Short(e) => {
                assert!(e.len() <= names::SHORT_NAME_MAX);
                assert_eq!(classify(e), EntryKind::Short);
                check_name(e.as_bytes()).expect("an encrypted name is a valid entry name");
                e
            }
            EncryptedName::Long { entry, full } => {
                assert!(full.len() > names::SHORT_NAME_MAX && entry.len() <= names::SHORT_NAME_MAX);
                assert_eq!(classify(entry), EntryKind::Long);
                assert_eq!(classify(&long_name_sidecar(entry)), EntryKind::Reserved);
                check_name(entry.as_bytes()).unwrap();
                NameCipher::check_long_name(entry, full).unwrap();
                full
            }
        };
        assert_eq!(nc.decrypt_name(iv, stored).unwrap(), data);
        assert!(nc.decrypt_name(&DirIv([0xa5; names::DIRIV_LEN]), stored).is_err(), "name opened in another directory");
    }
    if !data.is_empty() && data.len() <= names::TARGET_MAX && !data.contains(&0) {
        let nonce = [0x3c; NONCE_LEN];
        let stored = match nc.encrypt_target_with_nonce(data, &nonce).unwrap() {
            EncryptedTarget::Inline(t) => {
                assert!(t.len() <= names::INLINE_TARGET_MAX);
                t
            }
            EncryptedTarget::Sidecar { link, full } => {
                assert!(full.len() > names::INLINE_TARGET_MAX);
                assert!(link.starts_with(names::LONGTARGET_PREFIX));
                assert_eq!(classify(&link), EntryKind::Reserved);
                NameCipher::check_long_target(&link, &full).unwrap();
                full
            }
        };
        assert_eq!(nc.decrypt_target(&stored).unwrap(), data);
    }
}

/// FORMAT.md's rule for plaintext names, written independently of `check_name`.
fn reference_check_name(name: &[u8]) -> bool {
    (1..=255).contains(&name.len()) && name != b"." && name != b".." && !name.contains(&b'/') && !name.contains(&0)
}

/// FORMAT.md §8.4's classification of backing entries, written
/// independently of `classify`. "Does not end in `.name`" is read as the
/// implementation does, after the `tresor.longname.` prefix: the degenerate
/// `tresor.longname.name` is long (no sidecar has that name: it would be the
/// sidecar of `tresor.longname`, which is not a long entry).
fn reference_classify(entry: &str) -> EntryKind {
    if !entry.starts_with("tresor.") {
        EntryKind::Short
    } else if entry.len() >= 16 && entry.starts_with("tresor.longname.") && !entry[16..].ends_with(".name") {
        EntryKind::Long
    } else {
        EntryKind::Reserved
    }
}

// ---- directory IV ---------------------------------------------------------------------------

/// `tresor.diriv` as the mount reads it (FORMAT.md §8.1): only the IV
/// file tagged for the fixture directory's place opens, and gives its IV;
/// any other input is Malformed (length) or Tampered (tag), never a panic.
/// The IV the fixture's policy is keyed by is reachable only through a
/// valid tag.
pub fn dir_iv(data: &[u8]) {
    use tresor_format::{place::parse_diriv, Place, PlaceKey};
    let f = fixture();
    let key = PlaceKey::new(&f.name_key);
    let root = DirIv([0xa0; names::DIRIV_LEN]);
    let place = Place::In { parent: &root, entry: "c3R1ZHk" };
    let genuine = key.seal_diriv(&f.dir_iv, place);
    match key.open_diriv(data, place) {
        Ok(iv) => {
            assert_eq!(iv, f.dir_iv, "only the genuine IV file can open at this place");
            assert_eq!(&data[..names::DIRIV_LEN], &genuine[..names::DIRIV_LEN]);
            assert_eq!(f.volume.policy(&iv), Some([f.alice.id(), f.bob.id()].as_slice()));
        }
        Err(e) => match parse_diriv(data) {
            Ok(_) => assert_eq!(e, Error::Tampered { what: Structure::DirIv }),
            Err(_) => assert!(matches!(e, Error::Malformed { what: Structure::DirIv, .. })),
        },
    }
    // The genuine file, with the input's bytes folded in, opens only unchanged.
    let mut mixed = genuine.clone();
    for (b, d) in mixed.iter_mut().zip(data) {
        *b ^= d;
    }
    assert_eq!(key.open_diriv(&mixed, place).is_ok(), mixed == genuine);
}

// ---- the builder API ------------------------------------------------------------------------

/// Reads operation codes and arguments from the input.
struct Script<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Script<'_> {
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let start = self.pos.min(self.data.len());
        let end = (self.pos + n).min(self.data.len());
        self.pos += n;
        &self.data[start..end]
    }
    fn u32(&mut self) -> u32 {
        let mut buf = [0u8; 4];
        let b = self.bytes(4);
        buf[..b.len()].copy_from_slice(b);
        u32::from_le_bytes(buf)
    }
    fn role(&mut self) -> Role {
        [Role::Steward, Role::Member, Role::Auditor][usize::from(self.u8() % 3)]
    }
}

/// The most operations one `api` input runs (each costs a few key
/// agreements and signatures).
pub const API_MAX_OPS: usize = 12;

/// Drives the builders (`Volume::create`/`add_member`/`remove_member`/
/// `set_role`/`sign`, `Header::create`/`add_recipient`/`remove_recipient`/
/// `rekey`/`sign`, `Volume::set_policy`) with
/// operations read from the input, and checks that whatever they produce
/// parses back to the same structure (and that a stale signature does not
/// verify).
/// The audit log reader and verifier (tresor-audit): any bytes give a
/// report, never a panic; a log that verifies parses record by record, and
/// its records re-encode to the same bytes.
pub fn audit_log(data: &[u8]) {
    use tresor_audit::proof::Trust;
    let f = fixture();
    let report = tresor_audit::verify(data, &f.volume, &[]);
    let sealer = tresor_audit::seal::PathSealer::new(&f.name_key, &f.volume.id);
    let entries = tresor_audit::query::read_log(data, Some(&sealer), 0);
    if report.ok() {
        let entries = entries.expect("a log that verifies reads");
        assert_eq!(entries.len(), report.records);
        for e in &entries {
            assert_eq!(tresor_audit::Record::from_bytes(&e.record.to_bytes()).as_ref(), Ok(&e.record));
        }
        let _ = tresor_audit::query::access(&entries, "a/b", u64::MAX);
        // A version 2 log rebuilds to the roots its checkpoints signed, and
        // a proof made from it checks.
        if let (Some(head), Some(0)) = (&report.merkle, report.first_seq) {
            let tree = tresor_audit::proof::rebuild([data], &f.volume, Some(0)).expect("a verified log rebuilds");
            assert_eq!(tree.stored.root(head.size).unwrap(), head.root);
            let p = tree.inclusion(0, None, None).expect("record 0 is under a checkpoint");
            tresor_audit::proof::check(&p, Trust::LogKey(&p.log_key)).expect("a fresh proof checks");
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = tresor_audit::verify::parse_anchors(&text);
    // Notes, keys and proofs from any bytes: an error, never a panic.
    let _ = tresor_audit::note::Head::parse(data);
    let _ = tresor_audit::note::WitnessVerifier::parse(&text);
    let _ = tresor_audit::note::WitnessKey::parse(&text);
    let _ = tresor_audit::proof::parse_log_vkey(&text);
    if let Ok(p) = serde_json::from_slice::<tresor_audit::proof::Proof>(data) {
        let _ = tresor_audit::proof::check(&p, Trust::LogKey(&p.log_key));
        let _ = tresor_audit::proof::check(&p, Trust::Steward(&f.alice.public().ed25519));
    }
}

/// A short log written by bob's mount: mount, checkpoint, opens, a rename,
/// unmount, checkpoint.
fn audit_log_seed() -> Vec<u8> {
    use tresor_audit::{AuditConfig, AuditLog, Event, Op};
    let f = fixture();
    let dir = std::env::temp_dir().join(format!("tresor-fuzz-audit-{}", std::process::id()));
    let mut config = AuditConfig::new(&dir);
    config.checkpoint_every = 3;
    let bob = std::sync::Arc::new(Identity::from_seed(&[2; 32], "bob").unwrap());
    let start = tresor_audit::writer::Start {
        identity: bob,
        volume: &f.volume,
        name_key: &f.name_key,
        op: Op::Mount,
        options: "rw".into(),
    };
    let log = AuditLog::open(config, start).expect("writing a log in the temp dir");
    for i in 0..4 {
        log.append(Event::new(Op::Open).by(1, 2, 3).path(format!("a/{i}")).intent("r")).unwrap();
    }
    log.append(Event::new(Op::Rename).by(1, 2, 3).path("a/1").new_path("a/b")).unwrap();
    log.close().unwrap();
    let bytes = std::fs::read(log.path()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

pub fn api(data: &[u8]) {
    let f = fixture();
    let pool = f.identities();
    let mut script = Script { data, pos: 0 };
    let mut rng = rng(data.first().copied().unwrap_or(0));
    let mut volume = f.volume.clone();
    let mut name_key = f.name_key.clone();
    let mut signed_volume = f.volume_bytes.clone();
    let mut header = f.header.clone();
    let mut file_key = f.file_key.clone();

    for _ in 0..API_MAX_OPS {
        if script.done() {
            break;
        }
        let op = script.u8() % 12;
        let who = pool[usize::from(script.u8() % 4)];
        match op {
            0 => {
                let len = usize::from(script.u8() % 72);
                let name = String::from_utf8_lossy(script.bytes(len)).into_owned();
                let role = script.role();
                let was_member = volume.member(&who.id()).is_some();
                match volume.add_member(&name_key, who.public(), &name, role, &mut rng) {
                    Ok(()) => {
                        assert!(!was_member);
                        let m = volume.member(&who.id()).unwrap();
                        assert_eq!((m.name.as_str(), m.role), (name.as_str(), role));
                    }
                    Err(e) => assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}"),
                }
            }
            1 => {
                let was_member = volume.member(&who.id()).is_some();
                assert_eq!(volume.remove_member(&who.id()).is_some(), was_member);
                assert!(volume.member(&who.id()).is_none());
            }
            2 => {
                let role = script.role();
                let was_member = volume.member(&who.id()).is_some();
                assert_eq!(volume.set_role(&who.id(), role).is_ok(), was_member);
            }
            3 => {
                let generation = volume.generation;
                let is_steward = volume.member(&who.id()).map(|m| m.role) == Some(Role::Steward);
                match volume.sign(who) {
                    Ok(()) => {
                        assert!(is_steward);
                        assert_eq!(volume.generation, generation + 1);
                        signed_volume = volume.to_bytes();
                    }
                    Err(e) => {
                        assert!(!is_steward, "a steward could not sign: {e:?}");
                        assert_eq!(volume.generation, generation);
                    }
                }
            }
            4 => {
                let was = header.is_recipient(&who.id());
                assert_eq!(header.add_recipient(&file_key, who.public(), &mut rng).unwrap(), !was);
                assert!(header.is_recipient(&who.id()));
                if script.u8() & 1 == 1 {
                    let wrong = FileKey::from_bytes([0x99; 32]);
                    assert!(
                        header.add_recipient(&wrong, who.public(), &mut rng).is_err(),
                        "a foreign key was accepted"
                    );
                }
            }
            5 => {
                let was = header.is_recipient(&who.id());
                assert_eq!(header.remove_recipient(&who.id()), was);
            }
            6 => {
                let mask = script.u8();
                let recipients: Vec<PublicIdentity> =
                    pool.iter().enumerate().filter(|(i, _)| mask >> i & 1 == 1).map(|(_, id)| *id.public()).collect();
                file_key = header.rekey(&recipients, &mut rng).unwrap();
                assert_eq!(header.stanzas().len(), recipients.len());
            }
            7 => {
                let mask = script.u8();
                let recipients: Vec<PublicIdentity> = pool
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask >> (i % 4) & 1 == 1)
                    .map(|(_, id)| *id.public())
                    .collect();
                let fits = recipients.len() <= max_recipients(volume.params.header_len);
                match Header::create(&volume, who, &recipients, u64::from(script.u32()), &mut rng) {
                    Ok((h, k)) => {
                        assert!(fits);
                        assert_eq!(h.reserved_len(), volume.params.header_len);
                        assert_eq!(h.stanzas().len(), recipients.len());
                        header = h;
                        file_key = k;
                    }
                    Err(e) => {
                        assert!(!fits, "{e:?}");
                        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
                    }
                }
            }
            8 => {
                let at = u64::from(script.u32()) << (script.u8() % 33);
                let fits = header.fits();
                assert_eq!(header.sign(who, at).is_ok(), fits);
            }
            9 => {
                let mask = script.u8();
                let ids: Vec<_> =
                    pool.iter().enumerate().filter(|(i, _)| mask >> i & 1 == 1).map(|(_, id)| id.id()).collect();
                let dir_iv = DirIv([script.u8(); names::DIRIV_LEN]);
                let _ = who;
                match volume.set_policy(dir_iv, &ids) {
                    Ok(()) => {
                        assert!(ids.iter().all(|id| volume.member(id).is_some_and(|m| m.role != Role::Auditor)));
                        assert_eq!(volume.policy(&dir_iv).map(<[_]>::len), Some(ids.len()));
                    }
                    Err(e) => assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}"),
                }
            }
            10 => {
                let suite = Suite::from_u8(script.u8() % 4).unwrap_or(Suite::Aes256GcmSiv);
                let block_size = match script.u8() % 3 {
                    0 => 4096 << (script.u8() % 9),
                    1 => script.u32(),
                    _ => 1 << (script.u8() % 32),
                };
                let reserve = match script.u8() % 4 {
                    0 => 512 << (script.u8() % 12),
                    1 => script.u32(),
                    2 => u32::from(script.u8()) * 512,
                    _ => HEADER_LEN,
                };
                let params = VolumeParams { suite, block_size, header_len: reserve };
                match Volume::create(who, params, &mut rng) {
                    Ok((v, k)) => {
                        assert!(block_size.is_power_of_two() && (4096..=1 << 20).contains(&block_size));
                        assert!(reserve % 512 == 0 && reserve <= MAX_RESERVED_LEN);
                        assert!(reserve as usize >= header_len(1), "{reserve}");
                        volume = v;
                        name_key = k;
                        signed_volume = volume.to_bytes();
                    }
                    Err(e) => assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}"),
                }
            }
            _ => check_api_state(&volume, &signed_volume, &name_key, &header, &file_key),
        }
    }
    check_api_state(&volume, &signed_volume, &name_key, &header, &file_key);
}

fn check_api_state(volume: &Volume, signed_volume: &[u8], name_key: &NameKey, header: &Header, file_key: &FileKey) {
    let f = fixture();
    let bytes = volume.to_bytes();
    match Volume::open_self_signed(&bytes) {
        Ok(v) => {
            assert_eq!(&v, volume);
            assert_eq!(v.to_bytes(), bytes);
        }
        Err(e) => assert_ne!(bytes, signed_volume, "a signed volume does not open: {e:?}"),
    }
    for id in f.identities() {
        if volume.member(&id.id()).is_some() {
            assert_eq!(&volume.name_key(id).expect("a member unwraps the name key"), name_key);
        } else {
            assert!(volume.name_key(id).is_err());
        }
    }
    match header.to_bytes() {
        Ok(bytes) => {
            assert!(header.is_signed());
            assert_eq!(bytes.len(), header.reserved_len() as usize);
            assert_eq!(Header::parse(&bytes).as_ref(), Ok(header));
            let writer_ok = header.volume_id == volume.id
                && header.reserved_len() == volume.params.header_len
                && volume.member(&header.writer()).is_some_and(|m| m.role != Role::Auditor);
            assert_eq!(header.verify(volume).is_ok(), writer_ok);
        }
        Err(_) => assert!(!header.is_signed()),
    }
    for id in f.identities() {
        match header.file_key(id) {
            Ok(key) => assert_eq!(&key, file_key),
            Err(e) => {
                assert!(!header.is_recipient(&id.id()), "a recipient could not unwrap: {e:?}");
            }
        }
    }
}

// ---- seed corpus --------------------------------------------------------------------------------

/// Valid (and a few nearly valid) inputs for a target, built from the
/// fixed test keys. The fuzzers mutate these.
pub fn seed_corpus(target: &str) -> Vec<Vec<u8>> {
    let f = fixture();
    let target = target.replace('-', "_");
    let mut rng = rng(11);
    match target.as_str() {
        "identity" => {
            let long = Identity::from_seed(&[9; 32], &"é".repeat(32)).unwrap();
            vec![
                f.alice.seal_with(PASSPHRASE, KdfParams::INSECURE_FOR_TESTS, &[1; 16], &[2; 12]).unwrap(),
                f.bob.seal(PASSPHRASE, KdfParams { memory_kib: 64, iterations: 2, lanes: 8 }, &mut rng).unwrap(),
                long.seal(PASSPHRASE, KdfParams::INSECURE_FOR_TESTS, &mut rng).unwrap(),
                // Parses, but is not unsealed by the target (costs above the fuzzing limit).
                f.carol.seal(PASSPHRASE, KdfParams { memory_kib: 256, iterations: 1, lanes: 1 }, &mut rng).unwrap(),
            ]
        }
        "public_identity" => {
            let mut seeds: Vec<Vec<u8>> =
                f.identities().iter().map(|id| id.public().to_string().into_bytes()).collect();
            seeds.push(format!("  {}\n", f.alice.public()).into_bytes());
            seeds.push(f.bob.public().to_string().to_uppercase().into_bytes());
            seeds
        }
        "volume" => {
            let (small, _) = Volume::create(
                &f.dave,
                VolumeParams { suite: Suite::ChaCha20Poly1305, block_size: 1 << 20, header_len: MAX_RESERVED_LEN },
                &mut rng,
            )
            .unwrap();
            vec![f.volume_bytes.clone(), small.to_bytes()]
        }
        "header" => {
            // A volume with the smallest reservation: three recipients at most.
            let params = VolumeParams { suite: Suite::Aes256GcmSiv, block_size: BLOCK_SIZE, header_len: 512 };
            let (mut other, other_key) = Volume::create(&f.alice, params, &mut rng).unwrap();
            other.add_member(&other_key, f.bob.public(), "bob", Role::Member, &mut rng).unwrap();
            other.sign(&f.alice).unwrap();
            let (small, _) =
                Header::create(&other, &f.alice, &[*f.alice.public(), *f.bob.public()], 1, &mut rng).unwrap();
            let (empty, _) = Header::create(&f.volume, &f.carol, &[], 0, &mut rng).unwrap();
            // A header followed by content (ignored by the parser).
            let mut with_content = f.header_bytes.clone();
            with_content.extend_from_slice(&[0x42; 100]);
            vec![f.header_bytes.clone(), small.to_bytes().unwrap(), empty.to_bytes().unwrap(), with_content]
        }
        "content" => {
            let mut seeds = Vec::new();
            for (i, (_, cipher)) in f.ciphers.iter().enumerate() {
                for (n, len) in [(0u64, 1usize), (1, 100), (7, BLOCK_SIZE as usize)] {
                    let plaintext: Vec<u8> = (0..len).map(|b| b as u8).collect();
                    let mut seed = n.to_le_bytes().to_vec();
                    let at = seed.len();
                    seed.resize(at + len + BLOCK_OVERHEAD, 0);
                    cipher.seal_block_with_nonce(n, &plaintext, &mut seed[at..], &[i as u8 + 1; NONCE_LEN]);
                    seeds.push(seed);
                }
                let mut trailer = 3u64.to_le_bytes().to_vec();
                trailer.extend_from_slice(&cipher.seal_trailer_with_nonce(3, &[i as u8 + 9; NONCE_LEN]));
                seeds.push(trailer);
            }
            // A hole: a full all-zero block.
            seeds.push(vec![0; 8 + BLOCK_SIZE as usize + BLOCK_OVERHEAD]);
            seeds
        }
        "file_content" => {
            let mut seeds = Vec::new();
            for (_, cipher) in &f.ciphers {
                for len in [0usize, 1, 4096, 4097, 3 * 4096 + 5] {
                    let plaintext: Vec<u8> = (0..len).map(|b| (b % 251) as u8).collect();
                    seeds.push(cipher.seal_content(&plaintext, &mut rng));
                }
            }
            // A sparse file: a hole, then one real block.
            let (_, cipher) = &f.ciphers[0];
            let mut sparse = vec![0u8; BLOCK_SIZE as usize + BLOCK_OVERHEAD];
            let mut block = vec![0u8; 10 + BLOCK_OVERHEAD];
            cipher.seal_block(1, b"0123456789", &mut block, &mut rng);
            sparse.extend_from_slice(&block);
            sparse.extend_from_slice(&cipher.seal_trailer(2, &mut rng));
            seeds.push(sparse);
            seeds
        }
        "names" => {
            let mut seeds: Vec<Vec<u8>> = Vec::new();
            for name in [&b"report.pdf"[..], "ünïcødé 名前".as_bytes(), &[b'x'; 175], &[b'y'; 176], &[b'z'; 255]]
            {
                seeds.push(name.to_vec());
                match f.names.encrypt_name(&f.dir_iv, name).unwrap() {
                    EncryptedName::Short(s) => seeds.push(s.into_bytes()),
                    EncryptedName::Long { entry, full } => {
                        seeds.push(full.clone().into_bytes());
                        seeds.push(format!("{entry}\n{full}").into_bytes());
                        seeds.push(long_name_sidecar(&entry).into_bytes());
                    }
                }
            }
            for target in [&b"../shared/file"[..], &[b'/'; 4095]] {
                match f.names.encrypt_target(target, &mut rng).unwrap() {
                    EncryptedTarget::Inline(s) => seeds.push(s.into_bytes()),
                    EncryptedTarget::Sidecar { link, full } => {
                        seeds.push(full.clone().into_bytes());
                        seeds.push(format!("{link}\n{full}").into_bytes());
                    }
                }
            }
            for reserved in [names::DIRIV_FILE, names::VOLUME_FILE, "."] {
                seeds.push(reserved.as_bytes().to_vec());
            }
            seeds
        }
        "dir_iv" => vec![f.dir_iv.0.to_vec(), vec![0; 16], vec![0xff; 15], vec![1; 17]],
        "audit_log" => vec![audit_log_seed()],
        "api" => vec![
            // add dave as a member, sign as alice, add dave to the header, sign as bob, check.
            vec![0, 3, 4, b'd', b'a', b'v', b'e', 1, 3, 0, 4, 3, 0, 8, 1, 0, 0, 0, 0, 0, 11, 0],
            // rekey for alice and carol, policy for alice+bob, demote alice, check.
            vec![6, 0, 0b101, 9, 0, 0b011, 7, 1, 0, 0, 0, 2, 0, 1, 11, 0],
            // shrink the reservation, remove bob, sign as alice; new volume.
            vec![7, 0, 1, 5, 1, 8, 0, 9, 9, 9, 9, 3, 10, 1, 3, 0, 2, 11, 0],
            // a too-long member name, a remove of the signer, a sign by a non-steward.
            vec![0, 3, 70, b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', b'x', 1, 0, 3, 1],
        ],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_seeds_and_accepts_them() {
        for (name, target) in TARGETS {
            let seeds = seed_corpus(name);
            assert!(!seeds.is_empty(), "{name}");
            for seed in seeds {
                target(&seed);
            }
        }
    }

    #[test]
    fn the_seeds_are_valid_structures() {
        let f = fixture();
        for seed in seed_corpus("identity").iter().take(3) {
            assert!(Identity::unseal(seed, PASSPHRASE).is_ok());
        }
        for seed in seed_corpus("volume") {
            Volume::open_self_signed(&seed).unwrap();
        }
        for (i, seed) in seed_corpus("header").iter().enumerate() {
            let verified = Header::parse(seed).unwrap().verify(&f.volume);
            // The second belongs to another volume, the third is written by carol, an auditor.
            assert_eq!(verified.is_ok(), i == 0 || i == 3, "{verified:?}");
        }
        for seed in seed_corpus("file_content") {
            assert!(f.ciphers.iter().any(|(_, c)| c.open_content(&seed).is_ok()));
        }
        for seed in seed_corpus("public_identity").iter().take(5) {
            std::str::from_utf8(seed).unwrap().parse::<PublicIdentity>().unwrap();
        }
        let opened = seed_corpus("content")
            .iter()
            .filter(|s| f.ciphers.iter().any(|(_, c)| c.open_block(u64_at(s, 0), &s[8..], &mut [0; 8192]).is_ok()))
            .count();
        assert_eq!(opened, 3 * 3 + 1);
    }
}
