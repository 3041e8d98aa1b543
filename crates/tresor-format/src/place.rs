//! Metadata the storage operator must not be able to move: directory IVs
//! bound to where their directory sits, and the records that stand for
//! special files (FIFOs, sockets, device nodes).
//!
//! A directory's IV decides more than its names: directory policies are
//! keyed by it (FORMAT.md §9), so copying one directory's `tresor.diriv`
//! into another would move that directory's default recipients there. The
//! tag binds the IV to its parent's IV and to the directory's own backing
//! entry name, under a key derived from the volume name key, which the
//! storage does not hold. Both halves of the place are needed: the parent
//! IV alone would let an IV move between siblings, the entry name alone
//! between directories.
//!
//! A special file is stored as a small regular file holding a tagged record
//! of its type and device number, never as a backing FIFO or device: a
//! FIFO planted by the storage would otherwise be shown as one (and block
//! readers), and the type of a backing entry is not authenticated.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::{Error, Result, Structure};
use crate::keys::{derive, NameKey, KEY_LEN};
use crate::names::{DirIv, DIRIV_LEN};
use crate::wire::{put_u16, put_u64, Reader};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of one place tag (HMAC-SHA256, untruncated).
pub const PLACE_TAG_LEN: usize = 32;
/// `tresor.diriv`: the IV and the tag for the directory's place.
pub const DIRIV_FILE_LEN: usize = DIRIV_LEN + PLACE_TAG_LEN;
/// `tresor.diriv` while its directory is being renamed: the IV and the
/// tags for the new place and the old one (FORMAT.md §8.1).
pub const DIRIV_FILE_MAX: usize = DIRIV_LEN + 2 * PLACE_TAG_LEN;

const DIRIV_DOMAIN: &[u8] = b"tresor/v2/diriv\0";
const NODE_DOMAIN: &[u8] = b"tresor/v2/node\0";

/// Where a directory sits: its parent's IV and its backing entry name in
/// the parent (a short encrypted name or a `tresor.longname.` entry). The
/// volume root has neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place<'a> {
    Root,
    In { parent: &'a DirIv, entry: &'a str },
}

/// Keys for place tags and special-file records, derived from the volume
/// name key. Built once per mount or command.
pub struct PlaceKey {
    diriv: Zeroizing<[u8; KEY_LEN]>,
    node: Zeroizing<[u8; KEY_LEN]>,
}

impl PlaceKey {
    pub fn new(key: &NameKey) -> PlaceKey {
        PlaceKey {
            diriv: derive(key.as_bytes(), b"", b"tresor/v2/diriv-tags"),
            node: derive(key.as_bytes(), b"", b"tresor/v2/nodes"),
        }
    }

    fn diriv_mac(&self, iv: &DirIv, place: Place<'_>) -> HmacSha256 {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&*self.diriv).expect("HMAC takes any key length");
        mac.update(DIRIV_DOMAIN);
        mac.update(&iv.0);
        match place {
            // No directory but the root has an empty entry name, so the
            // two forms never give the same input.
            Place::Root => mac.update(&[0u8; DIRIV_LEN]),
            Place::In { parent, entry } => {
                mac.update(&parent.0);
                mac.update(entry.as_bytes());
            }
        }
        mac
    }

    /// The tag of `iv` at `place`.
    pub fn diriv_tag(&self, iv: &DirIv, place: Place<'_>) -> [u8; PLACE_TAG_LEN] {
        self.diriv_mac(iv, place).finalize().into_bytes().into()
    }

    /// The bytes of `tresor.diriv` for a directory with IV `iv` at `place`.
    pub fn seal_diriv(&self, iv: &DirIv, place: Place<'_>) -> Vec<u8> {
        [iv.0.as_slice(), &self.diriv_tag(iv, place)].concat()
    }

    /// The bytes of `tresor.diriv` while its directory moves from `from`
    /// to `to`: valid at either place, so a crash between the rename and
    /// the rewrite that follows it leaves a directory that still opens.
    pub fn seal_diriv_moving(&self, iv: &DirIv, from: Place<'_>, to: Place<'_>) -> Vec<u8> {
        [iv.0.as_slice(), &self.diriv_tag(iv, to), &self.diriv_tag(iv, from)].concat()
    }

    /// Reads `tresor.diriv` of the directory at `place`: the IV, if one of
    /// its tags is for this place. A tag for another place (an IV file
    /// copied or a directory moved by the storage) is Tampered.
    pub fn open_diriv(&self, bytes: &[u8], place: Place<'_>) -> Result<DirIv> {
        let iv = parse_diriv(bytes)?;
        for tag in bytes[DIRIV_LEN..].chunks_exact(PLACE_TAG_LEN) {
            // verify_slice compares in constant time.
            if self.diriv_mac(&iv, place).verify_slice(tag).is_ok() {
                return Ok(iv);
            }
        }
        Err(Error::Tampered { what: Structure::DirIv })
    }

    fn node_mac(&self, body: &[u8]) -> HmacSha256 {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&*self.node).expect("HMAC takes any key length");
        mac.update(NODE_DOMAIN);
        mac.update(body);
        mac
    }

    /// The bytes of the backing file that stands for special file `node`.
    pub fn seal_node(&self, node: Node) -> Vec<u8> {
        let mut out = Vec::with_capacity(NODE_LEN);
        out.extend_from_slice(NODE_MAGIC);
        put_u16(&mut out, NODE_VERSION);
        out.push(node.kind as u8);
        put_u64(&mut out, node.rdev);
        let tag = self.node_mac(&out).finalize().into_bytes();
        out.extend_from_slice(&tag);
        out
    }

    /// Reads a special-file record.
    pub fn open_node(&self, bytes: &[u8]) -> Result<Node> {
        let mut r = Reader::new(bytes, W_NODE);
        r.magic_and_version(NODE_MAGIC, NODE_VERSION)?;
        let kind = NodeKind::from_u8(r.u8()?)?;
        let rdev = r.u64()?;
        let body = NODE_LEN - PLACE_TAG_LEN;
        let tag = r.take(PLACE_TAG_LEN)?;
        r.finish()?;
        if kind != NodeKind::Char && kind != NodeKind::Block && rdev != 0 {
            return Err(Error::malformed(W_NODE, "a device number on a FIFO or socket"));
        }
        self.node_mac(&bytes[..body]).verify_slice(tag).map_err(|_| Error::Tampered { what: W_NODE })?;
        Ok(Node { kind, rdev })
    }
}

/// The IV of a `tresor.diriv` without checking its place (for readers
/// without the name key, such as fsck's structure pass): the length must be
/// that of one or two tags.
pub fn parse_diriv(bytes: &[u8]) -> Result<DirIv> {
    if bytes.len() != DIRIV_FILE_LEN && bytes.len() != DIRIV_FILE_MAX {
        return Err(Error::malformed(
            Structure::DirIv,
            format!("{} bytes, expected {DIRIV_FILE_LEN} (or {DIRIV_FILE_MAX} during a rename)", bytes.len()),
        ));
    }
    Ok(DirIv(bytes[..DIRIV_LEN].try_into().expect("length checked")))
}

const W_NODE: Structure = Structure::SpecialFile;
pub const NODE_MAGIC: &[u8; 8] = b"TRSRNODE";
pub const NODE_VERSION: u16 = 1;
/// Every special-file record has this length: magic, version, kind, rdev,
/// tag. Far below the smallest regular file (a header region and a
/// trailer, at least 540 bytes), so the length alone tells them apart.
pub const NODE_LEN: usize = 8 + 2 + 1 + 8 + PLACE_TAG_LEN;

/// The types of special file, as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum NodeKind {
    Fifo = 1,
    Socket = 2,
    Char = 3,
    Block = 4,
}

impl NodeKind {
    fn from_u8(v: u8) -> Result<NodeKind> {
        Ok(match v {
            1 => NodeKind::Fifo,
            2 => NodeKind::Socket,
            3 => NodeKind::Char,
            4 => NodeKind::Block,
            _ => return Err(Error::malformed(W_NODE, format!("unknown special file type {v}"))),
        })
    }
}

/// A special file: its type and (for devices) its device number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    pub rdev: u64,
}
