//! Process-level calls for the mount daemon: fork, a new session, stdio on
//! `/dev/null`, descriptors inherited from whoever started us closed, an
//! inherited passphrase descriptor taken over, and syslog(3) with levels.
//! (std and safe `rustix` cover the rest: pipes, chdir, signals.)

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use crate::cvt;

/// Which side of a [`fork`] this is.
pub enum Forked {
    /// The original process; the child has this pid.
    Parent(i32),
    Child,
}

/// fork(2). Call it only while the process has one thread: the child gets
/// a copy of the calling thread alone, and a lock another thread held
/// stays held in it for ever.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: fork has no memory-safety preconditions of its own; the
    // single-thread rule above is the caller's (the mount forks before it
    // starts any thread).
    match cvt(unsafe { libc::fork() })? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// setsid(2): a new session without a controlling terminal, so a hang-up
/// of the shell that mounted never reaches the daemon.
pub fn setsid() -> io::Result<()> {
    // SAFETY: no arguments, no memory touched.
    cvt(unsafe { libc::setsid() }).map(|_| ())
}

/// Points stdin, stdout and stderr at `/dev/null`: a detached daemon must
/// not keep the pipes of whoever started it (ssh, a Slurm prolog, a test
/// harness) open, or they wait for it for ever.
pub fn stdio_to_null() -> io::Result<()> {
    let null = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?;
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, which std keeps
        // open for the whole run; both descriptors are valid.
        cvt(unsafe { libc::dup2(null.as_raw_fd(), target) })?;
    }
    Ok(())
}

/// Closes every descriptor above stderr but those in `keep`. Call it first
/// thing, before anything of this process opens a file: whatever is open
/// then was inherited (a job's pipes, a leaked lock, a socket) and a
/// daemon that lives for days must not hold it.
pub fn close_inherited(keep: &[RawFd]) -> io::Result<()> {
    let mut open = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        if let Some(fd) = entry?.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) {
            open.push(fd);
        }
    }
    // The directory's own descriptor is in the list and already closed:
    // EBADF for it is expected.
    for fd in open.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        // SAFETY: called before this process opened anything, so no
        // `OwnedFd` or `File` of ours owns these descriptors.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Takes ownership of inherited descriptor `fd` (`--passfd N`): it must be
/// open, and nothing else in this process may use it afterwards.
pub fn take_inherited_fd(fd: RawFd) -> io::Result<File> {
    // SAFETY: F_GETFD reads the descriptor's flags and touches no memory.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return Err(io::Error::from_raw_os_error(libc::EBADF));
    }
    // SAFETY: the descriptor is open and was handed to this process to
    // consume; nothing in it owns the descriptor.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// syslog(3) priorities for the levels the daemon logs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    Error,
    Warning,
    Info,
    Debug,
}

/// Sends one message to syslog (facility daemon, ident `tresor`, with the
/// pid), at `priority`: journald and rsyslog keep the level, so
/// `journalctl -p warning` shows the daemon's warnings.
pub fn syslog(priority: Priority, message: &str) {
    let level = match priority {
        Priority::Error => libc::LOG_ERR,
        Priority::Warning => libc::LOG_WARNING,
        Priority::Info => libc::LOG_INFO,
        Priority::Debug => libc::LOG_DEBUG,
    };
    if let Ok(msg) = CString::new(message.replace('\0', "")) {
        // SAFETY: the ident is a static C string (openlog keeps the
        // pointer); "%s" with one NUL-terminated argument.
        unsafe {
            libc::openlog(c"tresor".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON);
            libc::syslog(level, c"%s".as_ptr(), msg.as_ptr());
        }
    }
}

/// The supplementary groups of process `pid` (the `Groups:` line of
/// `/proc/PID/status`; empty if it is gone or unreadable). The mount asks
/// for them the way libfuse's `fuse_req_getgroups` does: a FUSE request
/// carries the caller's uid, gid and pid only.
pub fn groups_of(pid: u32) -> Vec<u32> {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return Vec::new() };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| g.split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inherited_descriptor_is_taken_only_if_open() {
        assert!(take_inherited_fd(-1).is_err());
        assert!(take_inherited_fd(1_000_000).is_err());
    }
}
