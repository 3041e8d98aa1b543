//! Fixtures shared by the test files: fixed identities and a small volume,
//! built from fixed seeds so every run sees the same keys.
#![allow(dead_code)]

use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
use tresor_format::{Identity, NameKey, Role, Volume, VolumeParams};

pub fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub fn identity(name: &str) -> Identity {
    let mut seed = [0u8; 32];
    seed[..name.len()].copy_from_slice(name.as_bytes());
    Identity::from_seed(&seed, name).unwrap()
}

/// The cast: alice is a steward, bob a member, carol an auditor; mallory
/// is not in the volume.
pub struct Cast {
    pub alice: Identity,
    pub bob: Identity,
    pub carol: Identity,
    pub mallory: Identity,
    pub volume: Volume,
    pub name_key: NameKey,
}

pub fn cast() -> Cast {
    let mut rng = rng(7);
    let (alice, bob, carol, mallory) = (identity("alice"), identity("bob"), identity("carol"), identity("mallory"));
    let (mut volume, name_key) = Volume::create(&alice, VolumeParams::default(), &mut rng).unwrap();
    volume.add_member(&name_key, bob.public(), "bob", Role::Member, &mut rng).unwrap();
    volume.add_member(&name_key, carol.public(), "carol", Role::Auditor, &mut rng).unwrap();
    volume.sign(&alice).unwrap();
    Cast { alice, bob, carol, mallory, volume, name_key }
}
