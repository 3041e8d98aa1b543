//! The Tresor on-disk format, specified in `docs/FORMAT.md`.
//!
//! A pure library: no I/O, no threads, no global state, no clock. Callers
//! pass the bytes they read, the randomness (`rand_core::OsRng` in
//! production, fixed values for test vectors) and the time. That makes every
//! parser drivable by a fuzzer and every structure checkable by vectors.
//!
//! | module | structure |
//! |---|---|
//! | [`identity`] | a member's keys, the sealed identity file, the public identity string |
//! | [`volume`] | the volume file: parameters, member registry, wrapped name key |
//! | [`header`] | the file header: recipient stanzas, writer signature |
//! | [`content`] | content blocks, the end-of-file trailer, offset arithmetic |
//! | [`names`] | encrypted names, long names, symlink targets, directory IVs |
//! | [`policy`] | the member header rule (policies themselves are in the volume file) |
//! | [`audit`] | the audit log's checkpoint signature and path-sealing key |
#![forbid(unsafe_code)]

pub mod audit;
pub mod content;
pub mod error;
pub mod header;
pub mod identity;
pub mod keys;
pub mod names;
pub mod place;
pub mod policy;
pub mod volume;
mod wire;

pub use content::{ContentCipher, Layout, Suite};
pub use error::{Error, Result, Structure};
pub use header::Header;
pub use identity::{Identity, KdfParams, PublicIdentity, SealedIdentity};
pub use keys::{Agreement, FileKey, MemberId, NameKey, Stanza};
pub use names::{DirIv, EncryptedName, EncryptedTarget, NameCipher};
pub use place::{Node, NodeKind, Place, PlaceKey};
pub use policy::RuleViolation;
pub use volume::{AuditPolicy, Member, Retired, Role, Volume, VolumeParams};
