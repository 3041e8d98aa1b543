//! The writer's files: the log directory opened without following a
//! symlink, segment files created exclusively beneath it, their names, and
//! removing a pruned one. All calls go through `tresor_sys::audit_io`.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use tresor_sys::audit_io;

use crate::chain::hex;
use crate::frame;
use crate::writer::AuditError;

/// This machine's host name, reduced to characters safe in a file name.
pub fn host_name() -> String {
    let raw = tresor_sys::audit_io::host_name();
    let s: String = String::from_utf8_lossy(&raw)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' { c } else { '_' })
        .collect();
    if s.is_empty() {
        "unknown".into()
    } else {
        s
    }
}

/// Opens (making it if missing) the log directory without following a
/// symlink to it. The volume's own `BACKING/tresor.audit` is opened beneath
/// the backing directory; a directory configured elsewhere (`audit_dir=`)
/// by its path, its last component not a symlink either. A symlink, FIFO
/// or file planted in its place stops the log (and so the mount) from
/// starting: the log is never written outside the directory meant for it.
pub fn open_dir(dir: &Path) -> Result<OwnedFd, AuditError> {
    use std::os::unix::ffi::OsStrExt;
    let opened = match (dir.file_name(), dir.parent()) {
        (Some(name), Some(backing)) if name == crate::DEFAULT_DIR && !backing.as_os_str().is_empty() => {
            let name = std::ffi::CString::new(name.as_bytes()).expect("no NUL in DEFAULT_DIR");
            audit_io::open_or_make_dir_beneath(backing, &name, 0o750)
        }
        _ => audit_io::open_or_make_dir(dir, 0o750),
    };
    opened.map_err(|source| {
        let path = dir.to_owned();
        match source.raw_os_error() {
            Some(libc::ELOOP) => AuditError::Planted {
                path,
                reason: "it is a symlink, and the audit log never follows one (planted in the backing store?)",
            },
            Some(libc::ENOTDIR) => AuditError::Planted {
                path,
                reason: "it is not a directory (something was planted in its place in the backing store?)",
            },
            _ => AuditError::Dir { path, source },
        }
    })
}

/// A log's file name: `<host>-<mount-id>.log` for its first segment,
/// `<host>-<mount-id>.<n>.log` (n of 6 digits or more) for the ones after.
pub fn segment_name(host: &str, mount_id: &[u8; 16], n: u64) -> String {
    match n {
        0 => format!("{host}-{}.log", hex(mount_id)),
        n => format!("{host}-{}.{n:06}.log", hex(mount_id)),
    }
}

/// Removes a pruned segment, by name, from the log directory (opened as
/// the writer opens it: no symlink followed).
pub fn remove_segment(dir: &Path, name: &str) -> std::io::Result<()> {
    let fd = open_dir(dir).map_err(std::io::Error::other)?;
    let cname = std::ffi::CString::new(name).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    audit_io::remove_log(fd.as_fd(), &cname)
}

/// Creates a segment file beneath `dir` (exclusively, no symlink) and
/// writes its file header.
pub(crate) fn create_segment(dir: std::os::fd::BorrowedFd<'_>, name: &str) -> std::io::Result<File> {
    let cname = std::ffi::CString::new(name).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut file = audit_io::create_log(dir, &cname, 0o640)?;
    file.write_all(&frame::file_header())?;
    Ok(file)
}
