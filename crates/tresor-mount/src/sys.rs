//! The syscall layer lives in `tresor-sys`, shared with the CLI, fsck and
//! the audit writer; this alias keeps the mount's call sites short.
pub use tresor_sys::*;
