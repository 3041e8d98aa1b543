//! Extended attributes (FORMAT.md §8.6): every backing `user.tresor.*`
//! attribute of a file or directory. Without the name key, the value's
//! length is checked; with it, the name and the value decrypt. Attributes
//! in other namespaces, or `user.*` ones without the prefix, are not
//! Tresor's (the mount neither shows nor changes them) and are left alone.

use std::os::fd::BorrowedFd;

use tresor_format::{content::NONCE_LEN, content::TAG_LEN, names::XATTR_PREFIX};

use crate::{Class, Ctx};

/// Linux's limits: a name list and a value are at most 64 KiB.
const LIST_MAX: usize = 64 << 10;
const VALUE_MAX: usize = 64 << 10;

pub(crate) fn check(ctx: &Ctx<'_>, fd: BorrowedFd<'_>) -> Vec<(Class, String)> {
    // Most entries have no attribute: ask for the size first, allocate
    // only when there is something to read.
    let size = match rustix::fs::flistxattr_query(fd) {
        Ok(0) => return Vec::new(),
        Ok(n) => n.min(LIST_MAX),
        Err(e) if e == rustix::io::Errno::NOTSUP => return Vec::new(),
        Err(e) => return vec![(Class::Unreadable, format!("listing extended attributes: {e}"))],
    };
    // Attributes added since the query are caught by ERANGE: then the most there can be.
    let mut list = vec![0u8; size];
    let n = match rustix::fs::flistxattr(fd, &mut list[..]).or_else(|e| {
        if e != rustix::io::Errno::RANGE {
            return Err(e);
        }
        list.resize(LIST_MAX, 0);
        rustix::fs::flistxattr(fd, &mut list[..])
    }) {
        Ok(n) => n,
        Err(e) if e == rustix::io::Errno::NOTSUP => return Vec::new(),
        Err(e) => return vec![(Class::Unreadable, format!("listing extended attributes: {e}"))],
    };
    let mut problems = Vec::new();
    let mut value = Vec::new();
    for name in list[..n].split(|b| *b == 0).filter(|n| n.starts_with(XATTR_PREFIX.as_bytes())) {
        let Ok(name) = std::str::from_utf8(name) else {
            problems.push((Class::Xattr, "an attribute name that is not UTF-8".into()));
            continue;
        };
        value.resize(VALUE_MAX, 0);
        let len = match rustix::fs::fgetxattr(fd, name, &mut value[..]) {
            Ok(len) => len,
            Err(e) => {
                problems.push((Class::Unreadable, format!("reading attribute {name}: {e}")));
                continue;
            }
        };
        let result = match &ctx.keys {
            Some(k) => k
                .names
                .decrypt_xattr_name(name)
                .and_then(|_| k.names.decrypt_xattr_value(name, &value[..len]))
                .map(drop)
                .map_err(|e| e.to_string()),
            None if len < NONCE_LEN + TAG_LEN => Err(format!("value of {len} bytes: shorter than nonce and tag")),
            None => Ok(()),
        };
        if let Err(e) = result {
            problems.push((Class::Xattr, format!("attribute {name}: {e}")));
        }
    }
    problems
}
