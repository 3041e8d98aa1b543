//! The audit logs in `tresor.audit/` (docs/AUDIT.md): each verified with
//! the audit crate's verifier against the registry (framing, sequence,
//! hash chain, checkpoint signatures). A log still being written by a live
//! mount verifies up to its last record.

use std::{io::Read, os::fd::AsFd};

use crate::{
    walk::{c, open_file, Loc},
    Class, Ctx,
};

/// Largest log read (a log past it is reported, not read).
const MAX_LOG: u64 = 4 << 30;

pub(crate) fn check(ctx: &Ctx<'_>) {
    let dir_loc = Loc { backing: tresor_audit::DEFAULT_DIR.into(), plain: None };
    let Ok(name) = c(tresor_audit::DEFAULT_DIR) else { return };
    let dir = match tresor_sys::openat(
        ctx.root.as_fd(),
        &name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    ) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return,
        Err(e) => return ctx.report(dir_loc.finding(Class::AuditLog, format!("cannot open the log directory: {e}"))),
    };
    let entries = match tresor_sys::openat(dir.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
        .and_then(tresor_sys::read_dir)
    {
        Ok(e) => e,
        Err(e) => return ctx.report(dir_loc.finding(Class::AuditLog, format!("cannot list the log directory: {e}"))),
    };
    let mut names: Vec<String> =
        entries.into_iter().filter_map(|e| String::from_utf8(e.name).ok()).filter(|n| n.ends_with(".log")).collect();
    names.sort();
    for n in names {
        let loc = Loc { backing: format!("{}/{n}", tresor_audit::DEFAULT_DIR), plain: None };
        ctx.count(|s| s.audit_logs += 1);
        let bytes = c(&n).and_then(|cn| open_file(dir.as_fd(), &cn)).and_then(|(f, st)| {
            if st.st_size as u64 > MAX_LOG {
                return Err(std::io::Error::other(format!("{} bytes: larger than fsck reads", st.st_size)));
            }
            let mut out = Vec::with_capacity(st.st_size.max(0) as usize);
            f.take(MAX_LOG).read_to_end(&mut out)?;
            Ok(out)
        });
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                ctx.report(loc.finding(Class::AuditLog, format!("cannot read the log: {e}")));
                continue;
            }
        };
        let report = tresor_audit::verify(&bytes, ctx.volume, &[]);
        if let Some(p) = report.problem {
            ctx.report(loc.finding(
                Class::AuditLog,
                format!(
                    "{} at record {} (byte {}): {}; `tresor audit verify` gives the details",
                    p.diagnosis.as_str(),
                    p.index,
                    p.offset,
                    p.detail
                ),
            ));
        }
    }
}
