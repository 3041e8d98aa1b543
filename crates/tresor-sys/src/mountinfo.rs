//! `/proc/self/mountinfo`: the one reader of it, for the mount (which
//! probes its backing file system and finds its own mount point) and the
//! CLI (which maps a plaintext path in a live mount to its backing root).
//!
//! Kept by hand: the `procfs` crate leaves the octal escapes in mount
//! points (eminence/procfs#262) and fails on an empty source field (#333),
//! both of which a Tresor or backing mount can have.

/// One line of mountinfo, the fields Tresor uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub id: u64,
    /// The device, `major:minor`.
    pub dev: String,
    /// Unescaped; bytes, as a path may be any bytes.
    pub mount_point: Vec<u8>,
    /// Per-mount options (`rw,nosuid,nodev,relatime`).
    pub options: String,
    /// `ext4`, `fuse.ceph-fuse`, `nfs4`, ...
    pub fs_type: String,
    /// Unescaped (`tresor:/data/project 1`).
    pub source: String,
    /// The file system's own options (`rw,vers=4.2,lookupcache=none,...`).
    pub super_options: String,
}

/// Every mount of this process's namespace, in mount order (later lines
/// are mounted on top of earlier ones); none if mountinfo cannot be read.
pub fn mounts() -> Vec<MountEntry> {
    std::fs::read("/proc/self/mountinfo").map(|info| parse(&info)).unwrap_or_default()
}

/// The lines of a mountinfo text; a line that does not have its fields is
/// left out.
pub fn parse(info: &[u8]) -> Vec<MountEntry> {
    let text = |f: &[u8]| String::from_utf8_lossy(&unescape(f)).into_owned();
    info.split(|&b| b == b'\n')
        .filter_map(|line| {
            let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            // Optional fields end at "-"; type, source and super options follow it.
            let dash = fields.iter().position(|f| *f == b"-")?;
            if dash < 6 || fields.len() < dash + 4 {
                return None;
            }
            Some(MountEntry {
                id: std::str::from_utf8(fields[0]).ok()?.parse().ok()?,
                dev: text(fields[2]),
                mount_point: unescape(fields[4]),
                options: text(fields[5]),
                fs_type: text(fields[dash + 1]),
                source: text(fields[dash + 2]),
                super_options: text(fields[dash + 3]),
            })
        })
        .collect()
}

/// Undoes the octal escapes mountinfo writes for space, tab, newline and
/// backslash (`\040`, ...); anything else is kept as it is.
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\' && i + 4 <= field.len() && field[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            out.push((field[i + 1] - b'0') * 64 + (field[i + 2] - b'0') * 8 + (field[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_undone_and_anything_else_is_kept() {
        assert_eq!(unescape(br"/mnt/a\040b\134c\011d\012e"), b"/mnt/a b\\c\td\ne");
        assert_eq!(unescape(br"/x\0"), br"/x\0");
        assert_eq!(unescape(br"tresor:/data/p\0401"), b"tresor:/data/p 1");
    }

    #[test]
    fn a_line_gives_device_point_type_source_and_super_options() {
        let e = parse(b"36 35 0:52 / /mnt/ceph\\040a rw,relatime shared:1 - fuse.ceph-fuse ceph-fuse rw,user_id=0")
            .pop()
            .expect("one line");
        assert_eq!((e.id, e.dev.as_str()), (36, "0:52"));
        assert_eq!(e.mount_point, b"/mnt/ceph a");
        assert_eq!(e.options, "rw,relatime");
        assert_eq!((e.fs_type.as_str(), e.source.as_str()), ("fuse.ceph-fuse", "ceph-fuse"));
        assert_eq!(e.super_options, "rw,user_id=0");
    }

    #[test]
    fn an_empty_source_and_no_optional_fields_still_parse() {
        let e = parse(b"40 1 0:60 / /x rw - fuse  rw").pop().expect("one line");
        assert_eq!((e.fs_type.as_str(), e.source.as_str(), e.super_options.as_str()), ("fuse", "", "rw"));
    }

    #[test]
    fn lines_without_their_fields_are_left_out() {
        assert!(parse(b"garbage\n\n36 35 0:52 / /m rw shared:1\n").is_empty());
    }
}
