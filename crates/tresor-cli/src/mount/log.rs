//! Where the mount daemon's messages go: stderr in the foreground (colour
//! only on a terminal), a file, or syslog with each message at its own
//! level, so journald and rsyslog keep warnings and errors apart from
//! information (`journalctl -p warning -t tresor`).
//! `TRESOR_LOG` chooses what is logged (default `info`; e.g. `debug`,
//! `tresor_mount=debug,fuser=warn`).

use std::{fs, io::Write, path::PathBuf, sync::Mutex};

use tracing::Level;
use tracing_subscriber::{fmt::MakeWriter, EnvFilter};
use tresor_sys::process::{syslog, Priority};

pub enum To {
    Stderr,
    File(PathBuf),
    Syslog,
}

pub fn init(to: To) {
    let fmt = || {
        let filter = EnvFilter::try_from_env("TRESOR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
        tracing_subscriber::fmt().with_env_filter(filter)
    };
    match to {
        To::Stderr => {
            let _ = fmt().with_ansi(super::stderr_is_terminal()).with_writer(std::io::stderr).try_init();
            return;
        }
        To::File(path) => {
            if let Ok(file) = fs::OpenOptions::new().create(true).append(true).open(&path) {
                let _ = fmt().with_ansi(false).with_writer(Mutex::new(file)).try_init();
                return;
            }
        }
        To::Syslog => {}
    }
    // The level is the syslog priority; time and pid are syslog's own.
    let _ = fmt().with_ansi(false).without_time().with_level(false).with_writer(Syslog).try_init();
}

/// Whether syslog(3) can deliver: something listens on /dev/log
/// (journald, rsyslog). Without it the daemon's messages are lost.
pub fn syslog_reachable() -> bool {
    tresor_sys::audit_io::syslog_reachable()
}

/// Makes one [`SyslogLine`] per event, at the event's level.
pub struct Syslog;

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogLine;

    fn make_writer(&'a self) -> SyslogLine {
        SyslogLine(Priority::Info)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> SyslogLine {
        SyslogLine(match *meta.level() {
            Level::ERROR => Priority::Error,
            Level::WARN => Priority::Warning,
            Level::INFO => Priority::Info,
            _ => Priority::Debug,
        })
    }
}

/// One formatted event, sent to syslog as one message.
pub struct SyslogLine(Priority);

impl Write for SyslogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        syslog(self.0, String::from_utf8_lossy(buf).trim_end());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
