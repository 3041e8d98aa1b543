//! The mount's side of the audit log (`docs/AUDIT.md`): the log if there
//! is one, fail-closed errors as errno, and the small translations from
//! FUSE arguments to record fields. The callbacks in `fs` call this after
//! each operation's result is known and before it is answered.

use std::time::{SystemTime, UNIX_EPOCH};

use fuser::TimeOrNow;
use tresor_audit::record::SetAttr;
use tresor_audit::{AuditLog, Event};

use crate::sys::{Errno, FsResult};

pub struct Audit {
    log: Option<AuditLog>,
}

impl Audit {
    pub fn off() -> Audit {
        Audit { log: None }
    }

    pub fn on(log: AuditLog) -> Audit {
        Audit { log: Some(log) }
    }

    /// EIO if the log failed and the mount fails closed: checked before an
    /// operation that needs a record, so it is refused before it is done.
    pub fn ready(&self) -> FsResult<()> {
        match &self.log {
            Some(log) => log.check().map_err(|_| Errno::EIO),
            None => Ok(()),
        }
    }

    /// Appends the event (built only if there is a log); EIO if it cannot
    /// be written and the mount fails closed.
    pub fn append(&self, event: impl FnOnce() -> Event) -> FsResult<()> {
        match &self.log {
            // The writer logs the failure itself, once.
            Some(log) => log.append(event()).map_err(|_| Errno::EIO),
            None => Ok(()),
        }
    }

    /// The unmount record and the final checkpoint.
    pub fn close(&self) {
        if let Some(log) = &self.log {
            if let Err(e) = log.close() {
                tracing::error!("closing the audit log: {e}");
            }
        }
    }
}

/// "r", "w" or "rw", with "+t" (O_TRUNC), "+a" (O_APPEND), "+c" (O_CREAT).
pub fn intent(flags: i32) -> String {
    let mut s = match flags & libc::O_ACCMODE {
        libc::O_RDONLY => "r",
        libc::O_WRONLY => "w",
        _ => "rw",
    }
    .to_owned();
    for (flag, tag) in [(libc::O_TRUNC, "+t"), (libc::O_APPEND, "+a"), (libc::O_CREAT, "+c")] {
        if flags & flag != 0 {
            s.push_str(tag);
        }
    }
    s
}

fn time_ns(t: Option<TimeOrNow>) -> Option<i64> {
    let t = match t? {
        TimeOrNow::Now => SystemTime::now(),
        TimeOrNow::SpecificTime(t) => t,
    };
    Some(match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    })
}

/// The fields a setattr changes (the mode as permission bits).
pub fn setattr_fields(
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
) -> SetAttr {
    SetAttr { mode: mode.map(|m| m & 0o7777), uid, gid, size, atime: time_ns(atime), mtime: time_ns(mtime) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_intent_names_access_mode_and_flags() {
        assert_eq!(intent(libc::O_RDONLY), "r");
        assert_eq!(intent(libc::O_WRONLY | libc::O_TRUNC), "w+t");
        assert_eq!(intent(libc::O_RDWR | libc::O_APPEND | libc::O_CREAT), "rw+a+c");
    }
}
