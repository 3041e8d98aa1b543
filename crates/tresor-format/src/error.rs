//! Typed errors. Each variant names the structure it is about, so the mount can
//! log "block 17 of <path> failed authentication" and the CLI can tell a user
//! what to do next instead of printing "decryption failed".

use std::fmt;

use crate::keys::MemberId;

/// The on-disk structure an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structure {
    IdentityFile,
    PublicIdentity,
    VolumeFile,
    FileHeader,
    /// A recipient stanza (a wrapped key) in a header or the volume file.
    Stanza,
    /// Content block N (0-based) of a file.
    Block(u64),
    /// The end-of-file marker that makes truncation detectable.
    Trailer,
    /// The ciphertext file as a whole (its length).
    FileLength,
    Name,
    SymlinkTarget,
    /// An extended attribute's name or value.
    Xattr,
    DirIv,
    /// The record that stands for a FIFO, socket or device node.
    SpecialFile,
    Policy,
    /// A signed checkpoint of an audit log.
    AuditCheckpoint,
}

impl fmt::Display for Structure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Structure::IdentityFile => f.write_str("identity file"),
            Structure::PublicIdentity => f.write_str("public identity"),
            Structure::VolumeFile => f.write_str("volume file"),
            Structure::FileHeader => f.write_str("file header"),
            Structure::Stanza => f.write_str("recipient stanza"),
            Structure::Block(n) => write!(f, "content block {n}"),
            Structure::Trailer => f.write_str("end-of-file trailer"),
            Structure::FileLength => f.write_str("ciphertext file length"),
            Structure::Name => f.write_str("encrypted name"),
            Structure::SymlinkTarget => f.write_str("encrypted symlink target"),
            Structure::Xattr => f.write_str("encrypted extended attribute"),
            Structure::DirIv => f.write_str("directory IV"),
            Structure::SpecialFile => f.write_str("special file record"),
            Structure::Policy => f.write_str("directory policy"),
            Structure::AuditCheckpoint => f.write_str("audit checkpoint"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The passphrase does not unseal the identity file. The file is sealed
    /// with an AEAD keyed by the passphrase, so an altered file looks the same.
    #[error("wrong passphrase for this identity file (or the file was altered)")]
    WrongPassphrase,

    #[error("not a recipient: the file header holds no key for member {member}; ask a steward to grant access")]
    NotRecipient { member: MemberId },

    #[error("not a Tresor {what}: bad magic bytes")]
    BadMagic { what: Structure },

    #[error("{what}: unsupported format version {found} (this build reads version {supported}); use a Tresor release that supports it")]
    UnsupportedVersion { what: Structure, found: u16, supported: u16 },

    #[error("unsupported cipher suite {0}; use a Tresor release that supports it")]
    UnsupportedSuite(u8),

    /// Structurally invalid: truncated, trailing bytes, out-of-range field.
    #[error("{what} is malformed: {reason}")]
    Malformed { what: Structure, reason: String },

    /// An AEAD tag or a signature did not verify.
    #[error("{what} failed authentication: it is corrupt or was tampered with")]
    Tampered { what: Structure },

    /// Signed by a key that is not in the registry or not pinned.
    #[error("{what} is signed by {signer}, which is not a key this volume trusts")]
    UnknownSigner { what: Structure, signer: MemberId },

    /// Signed by a known member whose role may not sign this structure.
    #[error("{what} is signed by {signer}, whose role may not sign it: {reason}")]
    SignerNotAllowed { what: Structure, signer: MemberId, reason: &'static str },

    /// A signed structure whose validity ended: a registry that no steward
    /// renewed in time, or an old copy put back (rollback), FORMAT.md §5.4.
    #[error("{what} expired at {expired_at} (Unix seconds), signed at {signed_at}; a steward renews it with `tresor member renew`")]
    Expired { what: Structure, signed_at: u64, expired_at: u64 },

    #[error("invalid name: {0}")]
    InvalidName(&'static str),

    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    pub(crate) fn malformed(what: Structure, reason: impl Into<String>) -> Self {
        Error::Malformed { what, reason: reason.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
