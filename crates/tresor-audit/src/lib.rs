//! The Tresor audit log, specified in `docs/AUDIT.md`.
//!
//! One append-only file per mount (or per CLI session): length-prefixed CBOR
//! records, each holding the SHA-256 chain hash of the one before, with
//! checkpoints signed by the mount's identity. Paths are sealed with a key
//! derived from the volume name key, so the storage operator who keeps the
//! files learns no plaintext name; the chain covers the sealed bytes, so an
//! auditor verifies a log with the registry alone.
//!
//! | module | job |
//! |---|---|
//! | [`record`] | the typed record and its CBOR encoding |
//! | [`chain`] | the hash chain and the checkpoint signature input |
//! | [`merkle`] | the Merkle tree over a log's records: roots, proofs |
//! | [`note`] | checkpoints as C2SP signed notes; witness cosignatures |
//! | [`proof`] | inclusion and consistency proofs for outsiders, and their check |
//! | [`seal`] | sealing and unsealing path fields |
//! | [`frame`] | the file header and length-prefixed framing; torn tails |
//! | [`event`] | what a caller records, sealed and signed by [`event::complete`] |
//! | [`witness`] | cosigning a log's checkpoints after a consistency check |
//! | [`writer`] | appending: group commit, checkpoints, anchors, fail-closed |
//! | `files` | the log directory and segment files, opened without following symlinks |
//! | `checkpoints` | version 2 checkpoints verified: Merkle fields, root, note |
//! | `cbor` | the canonical record encoding read without serde (verify and show) |
//! | [`segments`] | the segments of each log verified together; the summary |
//! | [`verify`] | checking a log and naming the first bad record |
//! | [`report`] | aureport-style summaries per member, file, op, failure, denial |
//! | [`rows`] | records as typed rows: JSON, CSV, terminal-safe table lines |
//! | [`query`] | merging logs by time, filters, `who` and `access` |
//! | [`time`] | times out as RFC 3339; in as auditors type them (jiff) |
//!
//! The crate does file I/O but knows nothing of FUSE: the mount daemon and
//! the CLI both call [`writer::AuditLog`].

#![forbid(unsafe_code)]

mod cbor;
pub mod chain;
mod checkpoints;
pub mod event;
mod files;
pub use files::open_dir;
pub mod frame;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod query;
pub mod record;
pub mod report;
pub mod rows;
pub mod seal;
pub mod segments;
pub mod time;
pub mod verify;
pub mod witness;
pub mod writer;

pub use record::{Op, Record};
pub use verify::{verify, Anchor, Diagnosis, Report};
pub use writer::{AuditConfig, AuditLog, Event, OnError, SyncMode};

/// The default log directory inside a backing directory. Names starting
/// with `tresor.` are reserved: the mount never shows or touches them.
pub const DEFAULT_DIR: &str = "tresor.audit";
