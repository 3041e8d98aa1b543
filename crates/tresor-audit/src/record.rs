//! The audit record and its CBOR encoding (a map with short text keys;
//! absent optional fields are left out). See `docs/AUDIT.md`, "Records".

use serde::{Deserialize, Serialize};

/// What a record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    // Life of a log.
    Mount,
    Unmount,
    /// A CLI invocation's log starts with this instead of `mount`.
    Session,
    /// ... and ends with this.
    SessionEnd,
    Checkpoint,
    /// The first record of a log's next segment (rotation): `prev` is the
    /// final chain hash of the segment before, `vol` and `key` as in `mount`.
    Segment,
    /// The last record of a segment before its final checkpoint: the log
    /// goes on in the next segment.
    SegmentEnd,
    /// `tresor audit prune` removed a sealed, verified segment (`prune`).
    Prune,
    // Files and directories, through the mount.
    Open,
    Release,
    Create,
    Mknod,
    Unlink,
    Rename,
    Mkdir,
    Rmdir,
    Link,
    Symlink,
    Setattr,
    Setxattr,
    Removexattr,
    // Calls not logged when they succeed (too frequent; open and release
    // cover them), logged when denied (EACCES) or failing integrity (EIO).
    Lookup,
    Getattr,
    Read,
    Write,
    Readlink,
    Opendir,
    Getxattr,
    Listxattr,
    Fsync,
    // Changes made with the CLI.
    Grant,
    Revoke,
    Rekey,
    PolicySet,
    MemberAdd,
    MemberRemove,
    /// A steward signed a header again without changing its recipients
    /// (`policy set` for headers the new policy no longer allows, `member
    /// remove --rekey` for headers the removed member wrote).
    Resign,
    /// A steward signed the registry again to renew its validity.
    Renew,
    /// A steward converted the volume to the current format (`tresor migrate`).
    Migrate,
    /// A steward changed a member's role (`who`; the new role in `intent`).
    SetRole,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Mount => "mount",
            Op::Unmount => "unmount",
            Op::Session => "session",
            Op::SessionEnd => "session-end",
            Op::Checkpoint => "checkpoint",
            Op::Segment => "segment",
            Op::SegmentEnd => "segment-end",
            Op::Prune => "prune",
            Op::Open => "open",
            Op::Release => "release",
            Op::Create => "create",
            Op::Mknod => "mknod",
            Op::Unlink => "unlink",
            Op::Rename => "rename",
            Op::Mkdir => "mkdir",
            Op::Rmdir => "rmdir",
            Op::Link => "link",
            Op::Symlink => "symlink",
            Op::Setattr => "setattr",
            Op::Setxattr => "setxattr",
            Op::Removexattr => "removexattr",
            Op::Lookup => "lookup",
            Op::Getattr => "getattr",
            Op::Read => "read",
            Op::Write => "write",
            Op::Readlink => "readlink",
            Op::Opendir => "opendir",
            Op::Getxattr => "getxattr",
            Op::Listxattr => "listxattr",
            Op::Fsync => "fsync",
            Op::Grant => "grant",
            Op::Revoke => "revoke",
            Op::Rekey => "rekey",
            Op::PolicySet => "policy-set",
            Op::MemberAdd => "member-add",
            Op::MemberRemove => "member-remove",
            Op::Resign => "resign",
            Op::Renew => "renew",
            Op::Migrate => "migrate",
            Op::SetRole => "set-role",
        }
    }

    pub fn parse(s: &str) -> Option<Op> {
        // A match, not a search of ALL_OPS: verify parses one per record.
        Some(match s {
            "mount" => Op::Mount,
            "unmount" => Op::Unmount,
            "session" => Op::Session,
            "session-end" => Op::SessionEnd,
            "checkpoint" => Op::Checkpoint,
            "segment" => Op::Segment,
            "segment-end" => Op::SegmentEnd,
            "prune" => Op::Prune,
            "open" => Op::Open,
            "release" => Op::Release,
            "create" => Op::Create,
            "mknod" => Op::Mknod,
            "unlink" => Op::Unlink,
            "rename" => Op::Rename,
            "mkdir" => Op::Mkdir,
            "rmdir" => Op::Rmdir,
            "link" => Op::Link,
            "symlink" => Op::Symlink,
            "setattr" => Op::Setattr,
            "setxattr" => Op::Setxattr,
            "removexattr" => Op::Removexattr,
            "lookup" => Op::Lookup,
            "getattr" => Op::Getattr,
            "read" => Op::Read,
            "write" => Op::Write,
            "readlink" => Op::Readlink,
            "opendir" => Op::Opendir,
            "getxattr" => Op::Getxattr,
            "listxattr" => Op::Listxattr,
            "fsync" => Op::Fsync,
            "grant" => Op::Grant,
            "revoke" => Op::Revoke,
            "rekey" => Op::Rekey,
            "policy-set" => Op::PolicySet,
            "member-add" => Op::MemberAdd,
            "member-remove" => Op::MemberRemove,
            "resign" => Op::Resign,
            "renew" => Op::Renew,
            "migrate" => Op::Migrate,
            "set-role" => Op::SetRole,
            _ => return None,
        })
    }

    /// The first record of a log.
    pub fn starts_log(self) -> bool {
        matches!(self, Op::Mount | Op::Session)
    }

    /// The first record of a log file: a log's start or a later segment's.
    pub fn starts_file(self) -> bool {
        self.starts_log() || self == Op::Segment
    }

    /// The last record before the final checkpoint of a cleanly closed log.
    pub fn ends_log(self) -> bool {
        matches!(self, Op::Unmount | Op::SessionEnd)
    }
}

pub const ALL_OPS: &[Op] = &[
    Op::Mount,
    Op::Unmount,
    Op::Session,
    Op::SessionEnd,
    Op::Checkpoint,
    Op::Segment,
    Op::SegmentEnd,
    Op::Prune,
    Op::Open,
    Op::Release,
    Op::Create,
    Op::Mknod,
    Op::Unlink,
    Op::Rename,
    Op::Mkdir,
    Op::Rmdir,
    Op::Link,
    Op::Symlink,
    Op::Setattr,
    Op::Setxattr,
    Op::Removexattr,
    Op::Lookup,
    Op::Getattr,
    Op::Read,
    Op::Write,
    Op::Readlink,
    Op::Opendir,
    Op::Getxattr,
    Op::Listxattr,
    Op::Fsync,
    Op::Grant,
    Op::Revoke,
    Op::Rekey,
    Op::PolicySet,
    Op::MemberAdd,
    Op::MemberRemove,
    Op::Resign,
    Op::Renew,
    Op::Migrate,
    Op::SetRole,
];

/// The attributes a `setattr` changed (new values; absent = unchanged).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAttr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// New access time, unix nanoseconds (or `now` as the time of the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atime: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
}

/// What a `prune` record says was removed: one segment of a log, by its
/// mount id, the last seq it held and the chain hash after it (its final
/// checkpoint's), so the segment after it still verifies against this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pruned {
    #[serde(with = "bytes")]
    pub mid: [u8; 16],
    pub first: u64,
    pub last: u64,
    #[serde(with = "bytes")]
    pub hash: [u8; 32],
}

/// Most member ids a record lists: a file's recipients are members.
pub const MAX_RECIPIENTS: usize = tresor_format::volume::MAX_MEMBERS;
/// Longest plaintext the writer seals whole into one field. Paths through
/// the mount have no fixed bound (a deep tree passes PATH_MAX, backing paths
/// are longer still); a longer value keeps its first and last
/// `MAX_SEALED_PLAIN / 2` bytes around [`ELIDED`], so that every record fits
/// a frame (`frame::MAX_RECORD`) and reads back.
pub const MAX_SEALED_PLAIN: usize = 256 * 1024;
/// Longest text field (the options or command line) the writer keeps whole;
/// a longer one is cut at a character boundary and ends with [`ELIDED`].
pub const MAX_TEXT: usize = 64 * 1024;
/// Marks where the writer left bytes out of an overlong field. A NUL never
/// occurs in a path, an xattr name or a command line, so it cannot be mistaken
/// for one.
pub const ELIDED: &[u8] = b"\0...\0";

/// A sealed field's plaintext as the writer records it (see [`MAX_SEALED_PLAIN`]).
pub fn fit_sealed(plain: Vec<u8>) -> Vec<u8> {
    if plain.len() <= MAX_SEALED_PLAIN {
        return plain;
    }
    let keep = (MAX_SEALED_PLAIN - ELIDED.len()) / 2;
    let mut out = Vec::with_capacity(MAX_SEALED_PLAIN);
    out.extend_from_slice(&plain[..keep]);
    out.extend_from_slice(ELIDED);
    out.extend_from_slice(&plain[plain.len() - keep..]);
    out
}

/// A text field as the writer records it (see [`MAX_TEXT`]).
pub fn fit_text(mut text: String) -> String {
    if text.len() <= MAX_TEXT {
        return text;
    }
    let mut end = MAX_TEXT - ELIDED.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(std::str::from_utf8(ELIDED).expect("ASCII"));
    text
}

/// One audit record. Field names on disk are the `rename`d short keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// 0 for the first record of a log, then +1 each.
    pub seq: u64,
    /// Wall-clock time, unix nanoseconds.
    #[serde(rename = "t")]
    pub time_ns: u64,
    pub host: String,
    /// 128 random bits per mount or CLI session: names the log.
    #[serde(rename = "mid", with = "bytes")]
    pub mount_id: [u8; 16],
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    /// The process name (`/proc/PID/comm`), empty if it had gone.
    #[serde(rename = "comm")]
    pub process: String,
    /// The member whose identity the mount or CLI runs as.
    #[serde(rename = "mbr", with = "bytes")]
    pub member: [u8; 16],
    pub op: Op,
    /// The plaintext path relative to the volume root, sealed (see `seal`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub path: Option<Vec<u8>>,
    /// The new path of a rename or link target of a link, sealed.
    #[serde(rename = "path2", default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub new_path: Option<Vec<u8>>,
    /// 0 for success, else the errno the caller got.
    #[serde(rename = "res")]
    pub result: i32,
    /// Open intent: "r", "w" or "rw" (with "+t" for O_TRUNC, "+a" O_APPEND).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// Plaintext bytes read / written through a handle, at release.
    #[serde(rename = "rd", default, skip_serializing_if = "Option::is_none")]
    pub bytes_read: Option<u64>,
    #[serde(rename = "wr", default, skip_serializing_if = "Option::is_none")]
    pub bytes_written: Option<u64>,
    #[serde(rename = "attr", default, skip_serializing_if = "Option::is_none")]
    pub setattr: Option<SetAttr>,
    /// An extended attribute's name, sealed like a path (never its value).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub xattr: Option<Vec<u8>>,
    /// Member ids: a new file's recipients; a grant's or revoke's
    /// recipients afterwards; a policy's default recipients.
    #[serde(rename = "rcpt", default, skip_serializing_if = "Option::is_none", with = "opt_ids")]
    pub recipients: Option<Vec<[u8; 16]>>,
    /// The member a grant, revoke, member-add or member-remove is about.
    #[serde(rename = "who", default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub subject: Option<Vec<u8>>,
    /// Whether a revoke re-keyed the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rekeyed: Option<bool>,
    /// The plaintext offset of a failing read or write (EIO).
    #[serde(rename = "off", default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Mount / session record: the volume id.
    #[serde(rename = "vol", default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub volume: Option<Vec<u8>>,
    /// Mount / session record: the Ed25519 key that signs the checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub key: Option<Vec<u8>>,
    /// Mount / session record: the options (no secrets), or the command.
    #[serde(rename = "opts", default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
    /// Checkpoint: the chain hash up to and including the record before.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub chain: Option<Vec<u8>>,
    /// Checkpoint: Ed25519 signature (see `chain::checkpoint_body`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub sig: Option<Vec<u8>>,
    /// Prune: the segment removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<Pruned>,
    /// Checkpoint (log version 2): the Merkle tree hash of the records
    /// before it (seq 0 to seq − 1; see `merkle`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub root: Option<Vec<u8>>,
    /// Checkpoint (log version 2): the Ed25519 signature of the C2SP
    /// checkpoint note of `root` (see `note`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub nsig: Option<Vec<u8>>,
    /// Segment (log version 2): the right edge of the Merkle tree of the
    /// records before it, 32 bytes per subtree, largest first.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub range: Option<Vec<u8>>,
    /// The chain hash of the previous record (zeros for the first).
    #[serde(with = "bytes")]
    pub prev: [u8; 32],
}

impl Record {
    /// A record with every optional field empty.
    pub fn new(op: Op) -> Record {
        Record {
            seq: 0,
            time_ns: 0,
            host: String::new(),
            mount_id: [0; 16],
            uid: 0,
            gid: 0,
            pid: 0,
            process: String::new(),
            member: [0; 16],
            op,
            path: None,
            new_path: None,
            result: 0,
            intent: None,
            bytes_read: None,
            bytes_written: None,
            setattr: None,
            xattr: None,
            recipients: None,
            subject: None,
            rekeyed: None,
            offset: None,
            volume: None,
            key: None,
            options: None,
            chain: None,
            sig: None,
            prune: None,
            root: None,
            nsig: None,
            range: None,
            prev: [0; 32],
        }
    }

    /// The CBOR encoding, appended to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        ciborium::into_writer(self, out).expect("writing CBOR into a Vec cannot fail");
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode_into(&mut out);
        out
    }

    /// Parses one record. Any bytes are accepted without panicking; the
    /// encoding must be the canonical one this crate writes (re-encoding
    /// gives the same bytes), so one record has exactly one encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Record, String> {
        crate::cbor::decode(bytes)
    }

    /// Parses one record as [`Record::from_bytes`] does (the same bytes are
    /// accepted), keeping only what links it into its log (seq, time, mount
    /// id, member, op, prev, checkpoint and prune fields): what `verify`
    /// needs of most records, without copying paths and names.
    pub fn links_from_bytes(bytes: &[u8]) -> Result<Record, String> {
        crate::cbor::decode_links(bytes)
    }

    /// [`Record::from_bytes`] through serde: decode, encode again, compare.
    /// The specification of what `cbor::decode` accepts, kept for the tests
    /// that hold the two together.
    pub fn from_bytes_serde(bytes: &[u8]) -> Result<Record, String> {
        let record: Record = ciborium::from_reader(bytes).map_err(|e| format!("not a valid record: {e}"))?;
        if record.to_bytes() != bytes {
            return Err("not a valid record: not in canonical encoding".into());
        }
        Ok(record)
    }
}

// Every byte string is read with `deserialize_byte_buf`: ciborium's
// `deserialize_bytes` copies into a 4096-byte scratch buffer and refuses a
// longer byte string ("invalid type: bytes, expected bytes"), which made
// every record with a sealed path past ~4 KiB unreadable and its untouched
// log "changed" (issue 13). `deserialize_byte_buf` reads any length, bounded
// by the frame (`frame::MAX_RECORD`).

/// Fixed-size byte arrays as CBOR byte strings (serde's default would be
/// an array of integers, four times larger).
mod bytes {
    use serde::{de::Error, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(d: D) -> Result<[u8; N], D::Error> {
        let v: Vec<u8> = d.deserialize_byte_buf(super::BytesVisitor)?;
        v.try_into().map_err(|v: Vec<u8>| D::Error::custom(format!("expected {N} bytes, got {}", v.len())))
    }
}

mod opt_bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_bytes(b),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        d.deserialize_byte_buf(super::BytesVisitor).map(Some)
    }
}

mod opt_ids {
    use serde::{de::Error, ser::SerializeSeq, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<[u8; 16]>>, s: S) -> Result<S::Ok, S::Error> {
        let ids = v.as_deref().unwrap_or(&[]);
        let mut seq = s.serialize_seq(Some(ids.len()))?;
        for id in ids {
            seq.serialize_element(&serde_bytes_ref(id))?;
        }
        seq.end()
    }

    struct Id<'a>(&'a [u8]);
    impl serde::Serialize for Id<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    fn serde_bytes_ref(id: &[u8; 16]) -> Id<'_> {
        Id(id)
    }

    struct OwnedId(Vec<u8>);
    impl<'de> Deserialize<'de> for OwnedId {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_byte_buf(super::BytesVisitor).map(OwnedId)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<[u8; 16]>>, D::Error> {
        let ids: Vec<OwnedId> = Vec::deserialize(d)?;
        if ids.len() > super::MAX_RECIPIENTS {
            return Err(D::Error::custom("too many recipients"));
        }
        ids.into_iter()
            .map(|OwnedId(v)| v.try_into().map_err(|_| D::Error::custom("a member id is 16 bytes")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

struct BytesVisitor;

impl<'de> serde::de::Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a byte string")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
}

/// The name of an errno value, for display ("EACCES"), or its number.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        0 => "ok",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::EBADF => "EBADF",
        libc::EACCES => "EACCES",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENODATA => "ENODATA",
        libc::ENOTSUP => "ENOTSUP",
        libc::ESTALE => "ESTALE",
        libc::ERANGE => "ERANGE",
        _ => return format!("errno {e}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        let mut r = Record::new(Op::Release);
        r.seq = 7;
        r.time_ns = 1_700_000_000_123_456_789;
        r.host = "node1".into();
        r.mount_id = [9; 16];
        r.uid = 1000;
        r.pid = 42;
        r.process = "cat".into();
        r.path = Some(vec![1, 2, 3]);
        r.bytes_read = Some(4096);
        r.bytes_written = Some(0);
        r.recipients = Some(vec![[1; 16], [2; 16]]);
        r.prev = [5; 32];
        r
    }

    #[test]
    fn every_op_parses_from_its_name() {
        for op in ALL_OPS {
            assert_eq!(Op::parse(op.as_str()), Some(*op));
        }
        assert_eq!(Op::parse("Open"), None);
    }

    #[test]
    fn records_round_trip_through_cbor_with_short_keys() {
        let r = sample();
        let bytes = r.to_bytes();
        assert_eq!(Record::from_bytes(&bytes).unwrap(), r);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("comm") && text.contains("rd") && !text.contains("bytes_read"));
    }

    #[test]
    fn non_canonical_or_truncated_encodings_are_refused() {
        let bytes = sample().to_bytes();
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(Record::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Record::from_bytes(&extra).is_err());
    }
}
