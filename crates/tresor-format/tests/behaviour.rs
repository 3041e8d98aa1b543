//! The format's behaviour, one property per test. Read top to bottom, this
//! is what `tresor-format` promises.

mod common;

use common::{cast, identity, rng};
use tresor_format::{
    content::{BLOCK_OVERHEAD, TRAILER_LEN},
    header::{self, DEFAULT_RESERVED_LEN},
    names::{self, classify, EntryKind},
    policy::{check_header, RuleViolation},
    ContentCipher, DirIv, EncryptedName, EncryptedTarget, Error, Header, Identity, KdfParams, Layout, NameCipher,
    PublicIdentity, Role, SealedIdentity, Structure, Suite, Volume,
};

const PASS: &[u8] = b"correct horse battery staple";

// ---- identities ----------------------------------------------------------

#[test]
fn a_sealed_identity_opens_with_its_passphrase_only() {
    let alice = identity("alice");
    let file = alice.seal(PASS, KdfParams::INSECURE_FOR_TESTS, &mut rng(1)).unwrap();
    let opened = Identity::unseal(&file, PASS).unwrap();
    assert_eq!(opened.public(), alice.public());
    assert_eq!(opened.name(), "alice");
    assert_eq!(Identity::unseal(&file, b"wrong").unwrap_err(), Error::WrongPassphrase);
}

#[test]
fn the_public_identity_is_readable_without_the_passphrase() {
    let alice = identity("alice");
    let file = alice.seal(PASS, KdfParams::INSECURE_FOR_TESTS, &mut rng(1)).unwrap();
    let sealed = SealedIdentity::parse(&file).unwrap();
    assert_eq!(sealed.public, *alice.public());
    assert_eq!(sealed.name, "alice");
}

#[test]
fn identity_files_record_their_argon2_parameters() {
    let alice = identity("alice");
    let params = KdfParams { memory_kib: 64, iterations: 2, lanes: 1 };
    let file = alice.seal(PASS, params, &mut rng(1)).unwrap();
    assert_eq!(SealedIdentity::parse(&file).unwrap().params, params);
}

#[test]
fn identity_files_asking_for_absurd_argon2_costs_are_refused_before_any_work() {
    let alice = identity("alice");
    let params = KdfParams { memory_kib: KdfParams::MAX_MEMORY_KIB + 8, iterations: 1, lanes: 1 };
    assert!(matches!(alice.seal(PASS, params, &mut rng(1)), Err(Error::Malformed { .. })));
}

#[test]
fn a_public_identity_string_has_exactly_one_spelling_and_uppercase_is_accepted() {
    let alice = identity("alice");
    let s = alice.public().to_string();
    assert_eq!(s.to_uppercase().parse::<PublicIdentity>().unwrap(), *alice.public());
}

#[test]
fn auditors_hold_no_content_keys_by_policy() {
    let c = cast();
    let mut volume = c.volume.clone();
    let err = volume.set_policy(DirIv([3; 16]), &[c.carol.id()]).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
}

#[test]
fn a_zeroed_last_block_is_not_a_hole() {
    // Holes are sparse blocks inside a file; the last block is always sealed,
    // so an attacker cannot turn the end of a file into zeros.
    let c = cipher(Suite::Aes256Gcm, 1);
    let mut sealed = c.seal_content(&[7u8; 2 * 4096], &mut rng(1));
    let blk = 4096 + BLOCK_OVERHEAD;
    sealed[blk..2 * blk].fill(0);
    assert_eq!(c.open_content(&sealed).unwrap_err(), Error::Tampered { what: Structure::Block(1) });
    sealed[..blk].fill(0);
    assert_eq!(c.open_content(&sealed).unwrap_err(), Error::Tampered { what: Structure::Block(1) });
}

#[test]
fn a_public_identity_string_round_trips_and_catches_typos() {
    let alice = identity("alice");
    let s = alice.public().to_string();
    assert!(s.starts_with("tresor1"), "{s}");
    assert_eq!(s.parse::<PublicIdentity>().unwrap(), *alice.public());

    // One character changed anywhere after the prefix is caught by the checksum.
    for i in "tresor1".len()..s.len() {
        let mut typo = s.clone().into_bytes();
        typo[i] = if typo[i] == b'q' { b'p' } else { b'q' };
        let typo = String::from_utf8(typo).unwrap();
        assert!(
            matches!(typo.parse::<PublicIdentity>(), Err(Error::Malformed { what: Structure::PublicIdentity, .. })),
            "typo at {i} accepted"
        );
    }
}

#[test]
fn secrets_do_not_appear_in_debug_output() {
    let c = cast();
    let debug = format!("{:?} {:?}", c.alice, c.name_key);
    assert!(debug.contains("redacted"));
    assert!(!debug.contains(&hex::encode(c.name_key.as_bytes())));
}

// ---- the volume file -----------------------------------------------------

#[test]
fn a_volume_opens_against_the_pinned_steward_key() {
    let c = cast();
    let bytes = c.volume.to_bytes();
    let opened = Volume::open(&bytes, &[c.alice.public().ed25519]).unwrap();
    assert_eq!(opened, c.volume);
    assert_eq!(opened.members().len(), 3);
    assert_eq!(opened.member(&c.bob.id()).unwrap().role, Role::Member);
}

#[test]
fn a_volume_signed_by_an_unpinned_steward_is_refused() {
    let c = cast();
    let err = Volume::open(&c.volume.to_bytes(), &[c.mallory.public().ed25519]).unwrap_err();
    assert_eq!(err, Error::UnknownSigner { what: Structure::VolumeFile, signer: c.alice.id() });
}

#[test]
fn someone_who_rewrites_the_registry_with_their_own_key_is_refused() {
    // mallory can write the backing directory: she makes herself a steward
    // and signs. The file is self-consistent, but not signed by a pinned key.
    let c = cast();
    let mut forged = c.volume.clone();
    forged.add_member(&c.name_key, c.mallory.public(), "mallory", Role::Steward, &mut rng(2)).unwrap();
    forged.sign(&c.mallory).unwrap();
    let bytes = forged.to_bytes();
    assert!(Volume::open_self_signed(&bytes).is_ok());
    assert_eq!(
        Volume::open(&bytes, &[c.alice.public().ed25519]).unwrap_err(),
        Error::UnknownSigner { what: Structure::VolumeFile, signer: c.mallory.id() }
    );
}

#[test]
fn only_a_steward_signs_the_registry() {
    let mut c = cast();
    let err = c.volume.sign(&c.bob).unwrap_err();
    assert!(matches!(err, Error::SignerNotAllowed { what: Structure::VolumeFile, .. }));
    assert!(matches!(c.volume.sign(&c.mallory).unwrap_err(), Error::UnknownSigner { .. }));
}

#[test]
fn every_registry_change_raises_the_generation() {
    let mut c = cast();
    let before = c.volume.generation;
    c.volume.set_role(&c.bob.id(), Role::Steward).unwrap();
    c.volume.sign(&c.alice).unwrap();
    assert_eq!(c.volume.generation, before + 1);
}

#[test]
fn each_member_unwraps_the_same_name_key_and_outsiders_none() {
    let c = cast();
    for who in [&c.alice, &c.bob, &c.carol] {
        assert_eq!(c.volume.name_key(who).unwrap(), c.name_key);
    }
    assert_eq!(c.volume.name_key(&c.mallory).unwrap_err(), Error::NotRecipient { member: c.mallory.id() });
}

#[test]
fn a_removed_member_is_gone_from_the_signed_registry() {
    let mut c = cast();
    c.volume.remove_member(&c.bob.id()).unwrap();
    c.volume.sign(&c.alice).unwrap();
    let v = Volume::open(&c.volume.to_bytes(), &[c.alice.public().ed25519]).unwrap();
    assert!(v.member(&c.bob.id()).is_none());
    assert!(matches!(v.name_key(&c.bob), Err(Error::NotRecipient { .. })));
}

#[test]
fn a_registry_holds_up_to_4096_members() {
    // (Parsing runs before the signature check, so it is linear in the
    // member count: ids are hashed once and duplicates found with a set.)
    let c = cast();
    let mut v = c.volume.clone();
    let mut r = rng(5);
    for i in 0..(tresor_format::volume::MAX_MEMBERS - 3) {
        let p = *identity(&format!("m{i}")).public();
        v.add_member(&c.name_key, &p, &format!("m{i}"), Role::Member, &mut r).unwrap();
    }
    v.sign(&c.alice).unwrap();
    let bytes = v.to_bytes();
    let opened = Volume::open(&bytes, &[c.alice.public().ed25519]).unwrap();
    assert_eq!(opened.members().len(), tresor_format::volume::MAX_MEMBERS);
    let one_more = *identity("one too many").public();
    assert!(v.add_member(&c.name_key, &one_more, "x", Role::Member, &mut r).is_err());
}

#[test]
fn volume_block_sizes_are_powers_of_two_from_4k_to_1m() {
    let alice = identity("alice");
    for bad in [0, 1000, 2048, 3 << 12, 2 << 20] {
        let params = tresor_format::VolumeParams { block_size: bad, ..Default::default() };
        assert!(Volume::create(&alice, params, &mut rng(1)).is_err(), "{bad}");
    }
}

// ---- file headers --------------------------------------------------------

fn header_for(c: &common::Cast, recipients: &[&Identity]) -> (Header, tresor_format::FileKey) {
    let publics: Vec<_> = recipients.iter().map(|i| *i.public()).collect();
    let seed = recipients.iter().map(|i| i.id().0[0] as u64).sum();
    Header::create(&c.volume, &c.bob, &publics, 1_700_000_000, &mut rng(seed)).unwrap()
}

#[test]
fn every_recipient_unwraps_the_file_key_and_no_one_else() {
    let c = cast();
    let (h, key) = header_for(&c, &[&c.bob, &c.alice]);
    let h = Header::parse(&h.to_bytes().unwrap()).unwrap();
    h.verify(&c.volume).unwrap();
    assert_eq!(h.file_key(&c.alice).unwrap(), key);
    assert_eq!(h.file_key(&c.bob).unwrap(), key);
    assert_eq!(h.file_key(&c.carol).unwrap_err(), Error::NotRecipient { member: c.carol.id() });
    assert_eq!(h.writer(), c.bob.id());
    assert_eq!(h.signed_at(), 1_700_000_000);
}

#[test]
fn a_key_agreement_made_beforehand_wraps_for_its_recipient_only_and_once() {
    let c = cast();
    let made = std::cell::Cell::new(0);
    let mut agreed = |_: &PublicIdentity| {
        made.set(made.get() + 1);
        // Made for alice whoever asks: a wrong one must not be used.
        Some(tresor_format::Agreement::new(c.alice.public(), &mut rng(made.get())).unwrap())
    };
    let recipients = [*c.bob.public(), *c.alice.public()];
    let (h, key) = Header::create_agreed(&c.volume, &c.bob, &recipients, 7, &mut rng(8), &mut agreed).unwrap();
    assert_eq!(made.get(), 2, "asked once per recipient");
    let h = Header::parse(&h.to_bytes().unwrap()).unwrap();
    h.verify(&c.volume).unwrap();
    assert_eq!(h.file_key(&c.alice).unwrap(), key);
    assert_eq!(h.file_key(&c.bob).unwrap(), key, "bob's stanza was made fresh, not with alice's agreement");
    let (e0, e1) = (h.stanzas()[0].ephemeral, h.stanzas()[1].ephemeral);
    assert_ne!(e0, e1, "every stanza has its own ephemeral key");
    let wrong = tresor_format::Agreement::new(c.alice.public(), &mut rng(9)).unwrap();
    assert!(matches!(
        tresor_format::Stanza::wrap_agreed(&[0; 32], c.bob.public(), b"aad", wrong),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn a_header_fills_its_reservation_so_grants_rewrite_it_in_place() {
    let c = cast();
    let (mut h, key) = header_for(&c, &[&c.bob]);
    assert_eq!(h.to_bytes().unwrap().len(), DEFAULT_RESERVED_LEN as usize);
    assert!(h.add_recipient(&key, c.alice.public(), &mut rng(4)).unwrap());
    assert!(h.to_bytes().is_err(), "a changed header must be signed again");
    h.sign(&c.alice, 1_700_000_100).unwrap();
    let bytes = h.to_bytes().unwrap();
    assert_eq!(bytes.len(), DEFAULT_RESERVED_LEN as usize);
    let h = Header::parse(&bytes).unwrap();
    h.verify(&c.volume).unwrap();
    assert_eq!(h.file_key(&c.alice).unwrap(), key);
}

#[test]
fn a_revoked_recipient_no_longer_unwraps_the_key() {
    let c = cast();
    let (mut h, _) = header_for(&c, &[&c.bob, &c.alice]);
    assert!(h.remove_recipient(&c.bob.id()));
    h.sign(&c.alice, 1).unwrap();
    let h = Header::parse(&h.to_bytes().unwrap()).unwrap();
    assert_eq!(h.file_key(&c.bob).unwrap_err(), Error::NotRecipient { member: c.bob.id() });
}

#[test]
fn after_a_rekey_the_old_key_opens_nothing_new() {
    let c = cast();
    let (mut h, old_key) = header_for(&c, &[&c.bob, &c.alice]);
    let new_key = h.rekey(&[*c.alice.public()], &mut rng(5)).unwrap();
    h.sign(&c.alice, 2).unwrap();
    assert_ne!(old_key, new_key);
    assert_eq!(h.file_key(&c.alice).unwrap(), new_key);

    let suite = c.volume.params.suite;
    let new_content = ContentCipher::new(suite, &new_key, &h.file_id, 4096).seal_content(b"after revoke", &mut rng(6));
    let old_cipher = ContentCipher::new(suite, &old_key, &h.file_id, 4096);
    assert_eq!(old_cipher.open_content(&new_content).unwrap_err(), Error::Tampered { what: Structure::Trailer });
    assert!(matches!(old_cipher.open_block(0, &new_content[..12 + 28], &mut [0; 64]), Err(Error::Tampered { .. })));
}

#[test]
fn a_stanza_can_only_be_added_with_the_files_own_key() {
    let c = cast();
    let (mut h, _) = header_for(&c, &[&c.bob]);
    let other = tresor_format::FileKey::generate(&mut rng(9));
    assert!(matches!(h.add_recipient(&other, c.alice.public(), &mut rng(4)), Err(Error::InvalidArgument(_))));
}

#[test]
fn a_header_edited_without_a_member_key_is_refused() {
    let c = cast();
    let (h, _) = header_for(&c, &[&c.bob]);
    let (other, _) = header_for(&c, &[&c.alice]);
    let mut bytes = h.to_bytes().unwrap();
    let other_bytes = other.to_bytes().unwrap();
    // Splice alice's stanza from another file into this header: count and
    // length fields are fixed up, so only the signature can catch it.
    let stanza = &other_bytes[header::HEADER_FIXED_LEN..header::HEADER_FIXED_LEN + 96];
    let sig_at = header::header_len(1) - 64;
    let sig = bytes[sig_at..sig_at + 64].to_vec();
    bytes.splice(sig_at..sig_at + 64, stanza.iter().copied().chain(sig));
    bytes.truncate(DEFAULT_RESERVED_LEN as usize);
    bytes[10] = 2;
    bytes[12..16].copy_from_slice(&(header::header_len(2) as u32).to_le_bytes());
    let h2 = Header::parse(&bytes).unwrap();
    assert_eq!(h2.verify(&c.volume).unwrap_err(), Error::Tampered { what: Structure::FileHeader });
    // Even unverified, the moved stanza does not unwrap: it is bound to its file id.
    assert_eq!(h2.file_key(&c.alice).unwrap_err(), Error::Tampered { what: Structure::Stanza });
}

#[test]
fn headers_signed_by_outsiders_or_auditors_are_refused() {
    let c = cast();
    let (h, _) = Header::create(&c.volume, &c.mallory, &[*c.mallory.public()], 1, &mut rng(3)).unwrap();
    assert_eq!(
        h.verify(&c.volume).unwrap_err(),
        Error::UnknownSigner { what: Structure::FileHeader, signer: c.mallory.id() }
    );
    let (h, _) = Header::create(&c.volume, &c.carol, &[*c.carol.public()], 1, &mut rng(3)).unwrap();
    assert!(matches!(h.verify(&c.volume), Err(Error::SignerNotAllowed { .. })));
}

#[test]
fn a_header_from_another_volume_is_refused_even_with_the_same_writer() {
    let c = cast();
    let (other_volume, _) = Volume::create(&c.alice, tresor_format::VolumeParams::default(), &mut rng(11)).unwrap();
    let (h, _) = Header::create(&other_volume, &c.alice, &[*c.alice.public()], 1, &mut rng(12)).unwrap();
    h.verify(&other_volume).unwrap();
    let err = Header::open(&h.to_bytes().unwrap(), &c.volume).unwrap_err();
    assert!(matches!(err, Error::Malformed { what: Structure::FileHeader, .. }), "{err:?}");
}

#[test]
fn a_header_holds_as_many_recipients_as_the_volume_reserves_room_for() {
    let c = cast();
    assert_eq!(header::max_recipients(DEFAULT_RESERVED_LEN), 40);
    let many: Vec<_> = (0..41).map(|i| *identity(&format!("m{i}")).public()).collect();
    assert!(matches!(Header::create(&c.volume, &c.alice, &many, 0, &mut rng(1)), Err(Error::InvalidArgument(_))));
    let (h, _) = Header::create(&c.volume, &c.alice, &many[..40], 0, &mut rng(1)).unwrap();
    assert_eq!(Header::parse(&h.to_bytes().unwrap()).unwrap(), h);

    let params = tresor_format::VolumeParams { header_len: 8192, ..Default::default() };
    let (big, _) = Volume::create(&c.alice, params, &mut rng(2)).unwrap();
    let (h, _) = Header::create(&big, &c.alice, &many, 0, &mut rng(1)).unwrap();
    let bytes = h.to_bytes().unwrap();
    assert_eq!(bytes.len(), 8192);
    assert_eq!(Header::peek_reserved_len(&bytes[..20]).unwrap(), 8192);
    Header::open(&bytes, &big).unwrap();
    assert!(matches!(Header::open(&bytes, &c.volume), Err(Error::Malformed { .. })), "another volume, another size");
}

#[test]
fn unknown_versions_and_foreign_files_get_their_own_errors() {
    let c = cast();
    let (h, _) = header_for(&c, &[&c.bob]);
    let mut bytes = h.to_bytes().unwrap();
    bytes[8] = 2;
    assert_eq!(
        Header::parse(&bytes).unwrap_err(),
        Error::UnsupportedVersion { what: Structure::FileHeader, found: 2, supported: 1 }
    );
    assert_eq!(
        Header::parse(b"#!/bin/sh\necho hello, this is not tresor").unwrap_err(),
        Error::BadMagic { what: Structure::FileHeader }
    );
    assert!(matches!(Header::parse(&h.to_bytes().unwrap()[..100]), Err(Error::Malformed { .. })));
}

// ---- content ---------------------------------------------------------------

fn cipher(suite: Suite, file_id: u8) -> ContentCipher {
    ContentCipher::new(suite, &tresor_format::FileKey::from_bytes([9; 32]), &[file_id; 16], 4096)
}

#[test]
fn content_round_trips_in_every_suite_and_size() {
    for suite in Suite::ALL {
        let c = cipher(suite, 1);
        for len in [0, 1, 4095, 4096, 4097, 3 * 4096, 3 * 4096 + 17] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let sealed = c.seal_content(&plain, &mut rng(len as u64));
            assert_eq!(sealed.len() as u64, Layout::new(0, 4096).ciphertext_size(len as u64));
            assert_eq!(c.open_content(&sealed).unwrap(), plain, "{suite:?} {len}");
        }
    }
}

#[test]
fn a_block_moved_within_or_between_files_fails_with_its_number() {
    let a = cipher(Suite::Aes256Gcm, 1);
    let b = cipher(Suite::Aes256Gcm, 2);
    let blk = 4096 + BLOCK_OVERHEAD;
    let sealed = a.seal_content(&[5u8; 3 * 4096], &mut rng(1));
    let mut out = [0u8; 4096];
    assert_eq!(a.open_block(1, &sealed[..blk], &mut out).unwrap_err(), Error::Tampered { what: Structure::Block(1) });
    assert_eq!(b.open_block(0, &sealed[..blk], &mut out).unwrap_err(), Error::Tampered { what: Structure::Block(0) });
    let mut swapped = sealed.clone();
    swapped[..blk].copy_from_slice(&sealed[blk..2 * blk]);
    assert_eq!(a.open_content(&swapped).unwrap_err(), Error::Tampered { what: Structure::Block(0) });
}

#[test]
fn cutting_whole_blocks_off_the_end_is_detected() {
    let c = cipher(Suite::Aes256GcmSiv, 1);
    let blk = 4096 + BLOCK_OVERHEAD;
    let sealed = c.seal_content(&[5u8; 3 * 4096], &mut rng(1));
    // Drop the last block but keep a trailer: the old trailer counts 3 blocks.
    let mut cut = sealed[..2 * blk].to_vec();
    cut.extend_from_slice(&sealed[sealed.len() - TRAILER_LEN..]);
    assert_eq!(c.open_content(&cut).unwrap_err(), Error::Tampered { what: Structure::Trailer });
    // Drop the trailer too: the length no longer parses as a file.
    assert!(matches!(c.open_content(&sealed[..2 * blk]), Err(Error::Tampered { .. } | Error::Malformed { .. })));
    // A cut inside a block.
    assert!(matches!(c.open_content(&sealed[..sealed.len() - 40]), Err(Error::Tampered { .. })));
}

#[test]
fn an_all_zero_full_block_is_a_hole_that_reads_as_zeros() {
    let c = cipher(Suite::ChaCha20Poly1305, 1);
    let mut out = [1u8; 4096];
    assert_eq!(c.open_block(0, &[0u8; 4096 + BLOCK_OVERHEAD], &mut out).unwrap(), 4096);
    assert_eq!(out, [0u8; 4096]);
    // A short block is never a hole, and neither is the trailer.
    assert_eq!(c.open_block(0, &[0u8; 100], &mut out).unwrap_err(), Error::Tampered { what: Structure::Block(0) });
    assert_eq!(c.open_trailer(1, &[0u8; TRAILER_LEN]).unwrap_err(), Error::Tampered { what: Structure::Trailer });
}

#[test]
fn ciphertext_lengths_map_back_to_exactly_one_plaintext_size() {
    let layout = Layout::new(4096, 4096);
    for size in (0..5 * 4096).step_by(97).chain([4096, 8192, 1 << 30]) {
        assert_eq!(layout.plaintext_size(layout.ciphertext_size(size)).unwrap(), size);
    }
    assert_eq!(layout.ciphertext_size(0), 4096 + TRAILER_LEN as u64, "an empty file is a header and a trailer");
    for impossible in [0, 4095, 4096, 4096 + 27, 4096 + 28 + 1, 4096 + 28 + 28] {
        assert!(
            matches!(layout.plaintext_size(impossible), Err(Error::Malformed { what: Structure::FileLength, .. })),
            "{impossible}"
        );
    }
    assert_eq!(layout.locate(8193), (2, 1));
    assert_eq!(layout.block_offset(2), 4096 + 2 * (4096 + 28));
}

// ---- names -----------------------------------------------------------------

fn name_setup() -> (NameCipher, DirIv, DirIv) {
    let c = cast();
    (NameCipher::new(&c.name_key), DirIv([1; 16]), DirIv([2; 16]))
}

#[test]
fn names_encrypt_deterministically_per_directory() {
    let (n, d1, d2) = name_setup();
    let a = n.encrypt_name(&d1, b"results.csv").unwrap();
    assert_eq!(a, n.encrypt_name(&d1, b"results.csv").unwrap());
    assert_ne!(a, n.encrypt_name(&d2, b"results.csv").unwrap());
    assert_eq!(n.decrypt_name(&d1, a.entry()).unwrap(), b"results.csv");
    assert_eq!(n.decrypt_name(&d2, a.entry()).unwrap_err(), Error::Tampered { what: Structure::Name });
    assert_eq!(classify(a.entry()), EntryKind::Short);
}

#[test]
fn names_up_to_159_bytes_are_entries_and_longer_ones_use_a_sidecar() {
    let (n, d, _) = name_setup();
    let short = n.encrypt_name(&d, &[b'x'; 159]).unwrap();
    assert!(matches!(short, EncryptedName::Short(ref s) if s.len() <= 255));
    for len in [160, 200, 255] {
        let name = vec![b'y'; len];
        let EncryptedName::Long { entry, full } = n.encrypt_name(&d, &name).unwrap() else {
            panic!("{len} should be long")
        };
        assert!(entry.len() <= 255 && names::long_name_sidecar(&entry).len() <= 255);
        assert_eq!(classify(&entry), EntryKind::Long);
        assert_eq!(classify(&names::long_name_sidecar(&entry)), EntryKind::Reserved);
        NameCipher::check_long_name(&entry, &full).unwrap();
        assert_eq!(n.decrypt_name(&d, &full).unwrap(), name);
    }
}

#[test]
fn encrypted_names_show_a_length_class_not_the_length() {
    let (n, d, _) = name_setup();
    let lens: Vec<usize> = (1..=15).map(|len| n.encrypt_name(&d, &vec![b'a'; len]).unwrap().entry().len()).collect();
    assert!(lens.iter().all(|&l| l == lens[0]), "{lens:?}");
    assert_ne!(n.encrypt_name(&d, &[b'a'; 16]).unwrap().entry().len(), lens[0]);
}

#[test]
fn a_long_name_sidecar_cannot_be_swapped_between_entries() {
    let (n, d, _) = name_setup();
    let EncryptedName::Long { entry, .. } = n.encrypt_name(&d, &[b'a'; 200]).unwrap() else { panic!() };
    let EncryptedName::Long { full: other, .. } = n.encrypt_name(&d, &[b'b'; 200]).unwrap() else { panic!() };
    assert_eq!(NameCipher::check_long_name(&entry, &other).unwrap_err(), Error::Tampered { what: Structure::Name });
}

#[test]
fn invalid_names_are_refused() {
    let (n, d, _) = name_setup();
    for bad in [&b""[..], b".", b"..", b"a/b", b"nul\0", &[b'z'; 256]] {
        assert!(matches!(n.encrypt_name(&d, bad), Err(Error::InvalidName(_))), "{bad:?}");
    }
    assert!(matches!(n.decrypt_name(&d, "not*base64"), Err(Error::Malformed { .. })));
}

#[test]
fn format_metadata_is_never_shown_as_a_file() {
    for reserved in
        [names::VOLUME_FILE, names::DIRIV_FILE, "tresor.policy", "tresor.longtarget.abc", "tresor.longname.abc.name"]
    {
        assert_eq!(classify(reserved), EntryKind::Reserved, "{reserved}");
    }
}

#[test]
fn symlink_targets_up_to_path_max_round_trip() {
    let (n, _, _) = name_setup();
    let short = n.encrypt_target(b"../data/cohort.csv", &mut rng(1)).unwrap();
    let EncryptedTarget::Inline(stored) = &short else { panic!("short targets are inline") };
    assert_eq!(n.decrypt_target(stored).unwrap(), b"../data/cohort.csv");

    let long: Vec<u8> = (0..4095).map(|i| b'a' + (i % 26) as u8).collect();
    let EncryptedTarget::Sidecar { link, full } = n.encrypt_target(&long, &mut rng(1)).unwrap() else {
        panic!("4095 bytes needs a sidecar")
    };
    assert!(link.len() <= 255 && classify(&link) == EntryKind::Reserved);
    NameCipher::check_long_target(&link, &full).unwrap();
    assert_eq!(n.decrypt_target(&full).unwrap(), long);
    assert!(n.encrypt_target(&[b'a'; 4096], &mut rng(1)).is_err());
}

#[test]
fn a_tampered_symlink_target_is_refused() {
    let (n, _, _) = name_setup();
    let EncryptedTarget::Inline(stored) = n.encrypt_target(b"/etc/passwd", &mut rng(1)).unwrap() else { panic!() };
    let mut bytes = stored.into_bytes();
    bytes[20] = if bytes[20] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        n.decrypt_target(&String::from_utf8(bytes).unwrap()).unwrap_err(),
        Error::Tampered { what: Structure::SymlinkTarget }
    );
}

#[test]
fn user_xattrs_are_encrypted_and_bound_to_their_name() {
    let (n, _, _) = name_setup();
    let backing = n.encrypt_xattr_name(b"provenance").unwrap();
    assert!(backing.starts_with(names::XATTR_PREFIX) && backing.len() <= 255);
    assert_eq!(backing, n.encrypt_xattr_name(b"provenance").unwrap(), "deterministic: getxattr finds it directly");
    assert_eq!(n.decrypt_xattr_name(&backing).unwrap(), b"provenance");
    let sealed = n.encrypt_xattr_value(&backing, b"cohort 2024, ethics ref 17/NW/0042", &mut rng(1));
    assert_eq!(n.decrypt_xattr_value(&backing, &sealed).unwrap(), b"cohort 2024, ethics ref 17/NW/0042");
    // A value moved onto another attribute does not open.
    let other = n.encrypt_xattr_name(b"owner").unwrap();
    assert_eq!(n.decrypt_xattr_value(&other, &sealed).unwrap_err(), Error::Tampered { what: Structure::Xattr });
    assert!(n.encrypt_xattr_name(&[b'x'; names::XATTR_NAME_MAX]).unwrap().len() <= 255);
    assert!(matches!(n.encrypt_xattr_name(&[b'x'; names::XATTR_NAME_MAX + 1]), Err(Error::InvalidName(_))));
}

// ---- directory policies and the member header rule -----------------------------

#[test]
fn policies_are_part_of_the_signed_registry() {
    let c = cast();
    let mut volume = c.volume.clone();
    volume.set_policy(DirIv([3; 16]), &[c.alice.id(), c.bob.id()]).unwrap();
    volume.set_policy(DirIv([1; 16]), &[]).unwrap();
    volume.sign(&c.alice).unwrap();
    let bytes = volume.to_bytes();
    let opened = Volume::open(&bytes, &[c.alice.public().ed25519]).unwrap();
    assert_eq!(opened.policy(&DirIv([3; 16])), Some([c.alice.id(), c.bob.id()].as_slice()));
    assert_eq!(opened.policy(&DirIv([1; 16])), Some([].as_slice()), "an empty policy is a policy");
    assert_eq!(opened.policy(&DirIv([2; 16])), None);
    // Stored in ascending IV order: [1;16] first. Swap bob for alice in the
    // [3;16] policy: the signature no longer matches.
    let sig_at = bytes.len() - 64 - 16;
    // Between the policies and the signer: the audit policy (flags, bound,
    // an empty directory) and the count of former members (none).
    let bob_at = sig_at - (1 + 4 + 2) - 2 - 16;
    let mut edited = bytes.clone();
    edited[bob_at..bob_at + 16].copy_from_slice(&c.carol.id().0);
    assert!(Volume::open(&edited, &[c.alice.public().ed25519]).is_err());
    edited[bob_at..bob_at + 16].copy_from_slice(&c.mallory.id().0);
    assert!(matches!(
        Volume::open(&edited, &[c.alice.public().ed25519]),
        Err(Error::Malformed { what: Structure::VolumeFile, .. })
    ));
    let mut edited = bytes.clone();
    edited[bob_at - 16 - 2 - 1] ^= 1; // the last byte of the [3;16] IV: still in order
    assert_eq!(
        Volume::open(&edited, &[c.alice.public().ed25519]).unwrap_err(),
        Error::Tampered { what: Structure::VolumeFile }
    );
    // Deleting a policy means signing a new registry: only a steward can.
    let mut forged = opened.clone();
    assert!(forged.remove_policy(&DirIv([3; 16])));
    assert!(matches!(forged.sign(&c.bob), Err(Error::SignerNotAllowed { .. })));
}

#[test]
fn removing_a_member_drops_them_from_every_policy() {
    let c = cast();
    let mut volume = c.volume.clone();
    volume.set_policy(DirIv([3; 16]), &[c.alice.id(), c.bob.id()]).unwrap();
    volume.remove_member(&c.bob.id()).unwrap();
    assert_eq!(volume.policy(&DirIv([3; 16])), Some([c.alice.id()].as_slice()));
    assert!(matches!(volume.set_policy(DirIv([4; 16]), &[c.mallory.id()]), Err(Error::InvalidArgument(_))));
}

/// alice steward, bob and mallory members, carol auditor.
fn rule_cast() -> (common::Cast, Volume) {
    let c = cast();
    let mut volume = c.volume.clone();
    volume.add_member(&c.name_key, c.mallory.public(), "mallory", Role::Member, &mut rng(9)).unwrap();
    volume.sign(&c.alice).unwrap();
    (c, volume)
}

#[test]
fn a_member_signed_header_names_only_stewards_and_the_defaults_in_force() {
    let (c, volume) = rule_cast();
    let header = |writer: &Identity, to: &[&Identity]| {
        let to: Vec<_> = to.iter().map(|i| *i.public()).collect();
        Header::create(&volume, writer, &to, 1, &mut rng(1)).unwrap().0
    };
    // The writer plus a steward: always fine (stewards are fully trusted).
    assert_eq!(check_header(&volume, &header(&c.bob, &[&c.bob, &c.alice]), None), Ok(()));
    // The writer plus another member: only if the policy in force names them.
    let widened = header(&c.bob, &[&c.bob, &c.mallory]);
    assert_eq!(
        check_header(&volume, &widened, None),
        Err(RuleViolation::BeyondPolicy { writer: c.bob.id(), recipient: c.mallory.id() })
    );
    assert!(check_header(&volume, &widened, Some(&[c.alice.id()])).is_err());
    assert_eq!(check_header(&volume, &widened, Some(&[c.mallory.id()])), Ok(()));
    // Subset, not equality: fewer readers than the defaults is fine.
    assert_eq!(check_header(&volume, &header(&c.bob, &[&c.bob]), Some(&[c.mallory.id()])), Ok(()));
    // A steward may name anyone who is a member.
    assert_eq!(check_header(&volume, &header(&c.alice, &[&c.bob, &c.mallory]), None), Ok(()));
    // Nobody may name an auditor.
    assert_eq!(
        check_header(&volume, &header(&c.alice, &[&c.alice, &c.carol]), None),
        Err(RuleViolation::AuditorRecipient { recipient: c.carol.id() })
    );
}

#[test]
fn a_removed_member_stays_in_the_registry_as_a_former_member_until_added_back() {
    let c = cast();
    let mut volume = c.volume.clone();
    let removed = volume.remove_member(&c.bob.id()).unwrap();
    volume.sign(&c.alice).unwrap();
    let opened = Volume::open(&volume.to_bytes(), &[c.alice.public().ed25519]).unwrap();
    assert!(opened.member(&c.bob.id()).is_none(), "no longer a member");
    let former = opened.former(&c.bob.id()).expect("kept as a former member");
    assert_eq!((former.name.as_str(), former.role, former.public), ("bob", removed.role, *c.bob.public()));
    assert_eq!(former.retired_at, opened.generation, "removed by the signature that made this generation");
    // Added back, bob is a member again and no longer a former one.
    let mut again = opened.clone();
    again.add_member(&c.name_key, c.bob.public(), "bob", tresor_format::Role::Member, &mut rng(9)).unwrap();
    again.sign(&c.alice).unwrap();
    let again = Volume::open(&again.to_bytes(), &[c.alice.public().ed25519]).unwrap();
    assert!(again.member(&c.bob.id()).is_some() && again.former(&c.bob.id()).is_none());
}
