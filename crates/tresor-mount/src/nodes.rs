//! The node table: FUSE node ids and where each node lives in the backing
//! tree.
//!
//! A node id is the backing entry's inode number, so hard links are one
//! node and two mounts of one backing directory agree on ids. The FUSE root
//! is always 1: the backing root's inode number and 1 are swapped (a
//! bijection), so a backing entry whose inode number happens to be 1 still
//! gets an id of its own.
//!
//! Each node records one `(parent, backing entry name)`; its backing path is
//! the walk up to the root. `lookup` refreshes that pair (a hard link looked
//! up under another name, a rename done by another node), `rename` updates
//! it, and `forget` drops the node once the kernel holds no reference and no
//! remembered node names it as parent (so a path walk never meets a missing
//! node). Nothing here is cached beyond what the kernel references: entries
//! are re-resolved by name on every `lookup`.
//!
//! Each node also keeps its plaintext name, set at the same places, so the
//! audit log can name a node by its plaintext path without decrypting the
//! backing path (one more string per node; no extra lock).

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::sync::RwLock;

pub const ROOT: u64 = 1;

/// Deeper than any real tree; a longer walk means a cycle (a bug), not a path.
const MAX_DEPTH: usize = 8192;

#[derive(Debug)]
struct Node {
    parent: u64,
    name: OsString,
    /// The plaintext name (for audit records).
    plain: OsString,
    lookups: u64,
    /// Remembered nodes whose parent is this one.
    children: u64,
}

#[derive(Debug)]
pub struct NodeTable {
    root_ino: u64,
    map: RwLock<HashMap<u64, Node>>,
}

impl NodeTable {
    pub fn new(root_ino: u64) -> NodeTable {
        let mut map = HashMap::new();
        map.insert(ROOT, Node { parent: ROOT, name: OsString::new(), plain: OsString::new(), lookups: 1, children: 0 });
        NodeTable { root_ino, map: RwLock::new(map) }
    }

    /// The node id of a backing inode number.
    pub fn id_of(&self, st_ino: u64) -> u64 {
        if st_ino == self.root_ino {
            ROOT
        } else if st_ino == ROOT {
            self.root_ino
        } else {
            st_ino
        }
    }

    /// The backing path of a node, relative to the backing root ("." for
    /// the root). `None` if the node is unknown.
    pub fn path(&self, id: u64) -> Option<Vec<u8>> {
        if id == ROOT {
            return Some(b".".to_vec());
        }
        self.join_up(id, |node| &node.name)
    }

    /// The plaintext path of a node, relative to the volume root ("" for
    /// the root). `None` if the node is unknown.
    pub fn plain_path(&self, id: u64) -> Option<Vec<u8>> {
        self.join_up(id, |node| &node.plain)
    }

    /// The names `part` picks from each node on the way up from `id` to the
    /// root, joined with `/` from the root down.
    fn join_up(&self, id: u64, part: impl Fn(&Node) -> &OsString) -> Option<Vec<u8>> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let mut parts: Vec<&OsStr> = Vec::new();
        let mut cur = id;
        while cur != ROOT {
            let node = map.get(&cur)?;
            parts.push(part(node));
            cur = node.parent;
            if parts.len() > MAX_DEPTH {
                tracing::error!("node table: cycle at node {id}");
                return None;
            }
        }
        let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
        for (i, p) in parts.iter().rev().enumerate() {
            if i > 0 {
                out.push(b'/');
            }
            out.extend_from_slice(p.as_bytes());
        }
        Some(out)
    }

    /// The recorded parent of a node.
    pub fn parent(&self, id: u64) -> Option<u64> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.get(&id).map(|n| n.parent)
    }

    /// A reply handed the node to the kernel (`lookup`, `create`, `mkdir`,
    /// ...): count the reference and record where it was found (backing
    /// entry name and plaintext name).
    pub fn add_lookup(&self, id: u64, parent: u64, name: &OsStr, plain: &OsStr) {
        if id == ROOT {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(&id) {
            Some(node) => node.lookups += 1,
            None => {
                map.insert(id, Node { parent, name: OsString::new(), plain: OsString::new(), lookups: 1, children: 0 });
                if let Some(p) = map.get_mut(&parent) {
                    p.children += 1;
                }
            }
        }
        set_location(&mut map, id, parent, name, plain);
    }

    /// Records a node's new place (rename), if the node is known.
    pub fn moved(&self, id: u64, parent: u64, name: &OsStr, plain: &OsStr) {
        if id == ROOT {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.contains_key(&id) {
            set_location(&mut map, id, parent, name, plain);
        }
    }

    pub fn forget(&self, id: u64, n: u64) {
        if id == ROOT {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(node) = map.get_mut(&id) {
            node.lookups = node.lookups.saturating_sub(n);
        }
        prune(&mut map, id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.read().unwrap().len()
    }
}

fn set_location(map: &mut HashMap<u64, Node>, id: u64, parent: u64, name: &OsStr, plain: &OsStr) {
    let Some(old_parent) = map.get(&id).map(|n| n.parent) else { return };
    // The new parent must be known, or the path walk would fail (it is: the
    // kernel just referred to it), and must not be the node's descendant.
    if old_parent != parent && (!map.contains_key(&parent) || creates_cycle(map, id, parent)) {
        return;
    }
    if let Some(node) = map.get_mut(&id) {
        if node.name != name {
            node.name = name.to_owned();
        }
        if node.plain != plain {
            node.plain = plain.to_owned();
        }
        node.parent = parent;
    }
    if old_parent == parent {
        return;
    }
    if let Some(p) = map.get_mut(&parent) {
        p.children += 1;
    }
    if let Some(p) = map.get_mut(&old_parent) {
        p.children = p.children.saturating_sub(1);
    }
    prune(map, old_parent);
}

/// Whether making `parent` the parent of `id` would close a loop.
fn creates_cycle(map: &HashMap<u64, Node>, id: u64, parent: u64) -> bool {
    let mut cur = parent;
    for _ in 0..MAX_DEPTH {
        if cur == id {
            return true;
        }
        if cur == ROOT {
            return false;
        }
        match map.get(&cur) {
            Some(n) => cur = n.parent,
            None => return false,
        }
    }
    true
}

/// Drops `id` and then any ancestors that are no longer referenced.
fn prune(map: &mut HashMap<u64, Node>, mut id: u64) {
    while id != ROOT {
        match map.get(&id) {
            Some(n) if n.lookups == 0 && n.children == 0 => {
                let parent = n.parent;
                map.remove(&id);
                match map.get_mut(&parent) {
                    Some(p) => p.children = p.children.saturating_sub(1),
                    None => return,
                }
                id = parent;
            }
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_walk_to_the_root_and_parents_outlive_children() {
        let t = NodeTable::new(500);
        assert_eq!(t.id_of(500), ROOT);
        assert_eq!(t.id_of(1), 500);
        assert_eq!(t.id_of(7), 7);
        t.add_lookup(10, ROOT, OsStr::new("a"), OsStr::new("A"));
        t.add_lookup(11, 10, OsStr::new("b"), OsStr::new("B"));
        assert_eq!(t.path(11).unwrap(), b"a/b");
        assert_eq!(t.plain_path(11).unwrap(), b"A/B");
        assert_eq!(t.path(ROOT).unwrap(), b".");
        assert_eq!(t.plain_path(ROOT).unwrap(), b"");
        t.forget(10, 1);
        assert_eq!(t.path(11).unwrap(), b"a/b", "a parent stays while a child is remembered");
        t.forget(11, 1);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn moves_and_lookups_under_other_names_update_the_location() {
        let t = NodeTable::new(500);
        t.add_lookup(10, ROOT, OsStr::new("a"), OsStr::new("A"));
        t.add_lookup(12, ROOT, OsStr::new("c"), OsStr::new("C"));
        t.add_lookup(11, 10, OsStr::new("b"), OsStr::new("B"));
        t.moved(11, 12, OsStr::new("d"), OsStr::new("D"));
        assert_eq!(t.path(11).unwrap(), b"c/d");
        assert_eq!(t.plain_path(11).unwrap(), b"C/D", "plaintext names move with the node");
        t.forget(10, 1);
        assert!(t.path(10).is_none(), "a dropped parent with no children goes");
        t.add_lookup(11, ROOT, OsStr::new("hardlink"), OsStr::new("HARDLINK"));
        assert_eq!(t.path(11).unwrap(), b"hardlink");
        assert_eq!(t.plain_path(11).unwrap(), b"HARDLINK");
        t.moved(12, 11, OsStr::new("x"), OsStr::new("X"));
        t.moved(11, 12, OsStr::new("loop"), OsStr::new("LOOP"));
        assert!(t.path(11).is_some() && t.path(12).is_some(), "no cycles");
    }
}
