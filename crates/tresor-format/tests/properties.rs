//! Properties over random inputs: round trips hold, and any single flipped
//! bit makes opening or verifying fail, never return other plaintext.

mod common;

use common::{cast, rng};
use proptest::prelude::*;
use tresor_format::{content::BLOCK_OVERHEAD, ContentCipher, DirIv, Error, FileKey, Header, Layout, NameCipher, Suite};

fn suite() -> impl Strategy<Value = Suite> {
    prop::sample::select(Suite::ALL.to_vec())
}

fn block_size() -> impl Strategy<Value = u32> {
    (12u32..=17).prop_map(|shift| 1 << shift)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn content_round_trips(suite in suite(), bs in block_size(), len in 0usize..300_000, seed: u64) {
        let c = ContentCipher::new(suite, &FileKey::from_bytes([7; 32]), &[1; 16], bs);
        let plain: Vec<u8> = (0..len).map(|i| (i as u64 ^ seed) as u8).collect();
        let sealed = c.seal_content(&plain, &mut rng(seed));
        prop_assert_eq!(sealed.len() as u64, Layout::new(0, bs).ciphertext_size(len as u64));
        prop_assert_eq!(c.open_content(&sealed).unwrap(), plain);
    }

    #[test]
    fn a_flipped_bit_in_content_never_opens(suite in suite(), len in 1usize..20_000, at: prop::sample::Index, bit in 0u8..8) {
        let c = ContentCipher::new(suite, &FileKey::from_bytes([7; 32]), &[1; 16], 4096);
        let mut sealed = c.seal_content(&vec![0x5a; len], &mut rng(len as u64));
        let i = at.index(sealed.len());
        sealed[i] ^= 1 << bit;
        let opened = c.open_content(&sealed);
        prop_assert!(matches!(opened, Err(Error::Tampered { .. })), "{:?}", opened);
    }

    #[test]
    fn a_block_opens_only_at_its_own_number(suite in suite(), n in 0u64..1 << 40, m in 0u64..1 << 40) {
        prop_assume!(n != m);
        let c = ContentCipher::new(suite, &FileKey::from_bytes([7; 32]), &[1; 16], 4096);
        let mut ct = vec![0u8; 100 + BLOCK_OVERHEAD];
        c.seal_block(n, &[3; 100], &mut ct, &mut rng(n));
        let mut out = [0u8; 100];
        prop_assert_eq!(c.open_block(n, &ct, &mut out).unwrap(), 100);
        prop_assert!(c.open_block(m, &ct, &mut out).is_err());
    }

    #[test]
    fn sizes_round_trip(header in (1u32..=64).prop_map(|k| k * 512), bs in block_size(), size in 0u64..1 << 45) {
        let layout = Layout::new(header, bs);
        prop_assert_eq!(layout.plaintext_size(layout.ciphertext_size(size)).unwrap(), size);
    }

    #[test]
    fn every_ciphertext_length_is_invalid_or_maps_back(bs in block_size(), len in 0u64..1 << 40) {
        let layout = Layout::new(4096, bs);
        if let Ok(size) = layout.plaintext_size(len) {
            prop_assert_eq!(layout.ciphertext_size(size), len);
        }
    }

    #[test]
    fn names_round_trip(name in prop::collection::vec(any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0), 1..=255), iv: [u8; 16]) {
        prop_assume!(name != b"." && name != b"..");
        let c = cast();
        let n = NameCipher::new(&c.name_key);
        let dir = DirIv(iv);
        let enc = n.encrypt_name(&dir, &name).unwrap();
        prop_assert!(enc.entry().len() <= 255);
        let full = match &enc {
            tresor_format::EncryptedName::Short(s) => s.clone(),
            tresor_format::EncryptedName::Long { full, .. } => full.clone(),
        };
        prop_assert_eq!(n.decrypt_name(&dir, &full).unwrap(), name);
    }

    #[test]
    fn a_flipped_bit_in_a_header_is_caught(at: prop::sample::Index, bit in 0u8..8) {
        let c = cast();
        let (h, _) = Header::create(&c.volume, &c.bob, &[*c.bob.public(), *c.alice.public()], 1, &mut rng(1)).unwrap();
        let mut bytes = h.to_bytes().unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let outcome = Header::parse(&bytes).and_then(|h| h.verify(&c.volume).map(|_| h)).and_then(|h| h.file_key(&c.alice));
        prop_assert!(outcome.is_err());
    }
}
