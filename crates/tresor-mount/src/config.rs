//! Mount configuration and `-o` option parsing.
//!
//! `parse_options` takes the comma-separated option string that `mount`,
//! fstab and `mount.fuse3` hand a FUSE file system, and sets the fields of a
//! [`MountConfig`]: `ro`/`rw`, `allow_other`, `nonempty`,
//! `cache_timeout=SECS`, `threads=N`, `allow_incoherent` (see backing.rs). The generic VFS flags mount(8) knows
//! (`noatime`, `atime`, `relatime`, `strictatime`, `nodiratime`,
//! `diratime`, `nodev`, `dev`, `nosuid`, `suid`, `noexec`, `exec`, `sync`,
//! `async`, `dirsync`) and `fsname=...` are kept in
//! [`MountConfig::options`] and passed to the kernel. Options that only
//! mean something to `mount` itself (`defaults`, `_netdev`, `user`,
//! `users`, `nouser`, `nofail`, `auto`, `noauto`, `x-*`, `comment=*`) are
//! ignored, as `mount.fuse3` does; `subtype=` is ignored (the type is
//! always `fuse.tresor`). `remount` is refused here: a live mount changes
//! its flags with [`remount`](crate::remount). Anything else is an error,
//! so a typo never mounts with an option silently dropped.
//!
//! The audit log (`docs/AUDIT.md`): `audit=on|off`, `audit_dir=PATH`,
//! `audit_sync=always`, `audit_sync_ms=N`, `audit_checkpoint_records=N`,
//! `audit_checkpoint_secs=N`, `audit_anchor=syslog|none` (default: syslog
//! where the node has one),
//! `audit_anchor_cmd=PATH`, `audit_on_error=fail|continue`.

use std::path::PathBuf;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use fuser::MountOption;
use rustix::mount::MountFlags;
use tresor_audit::{OnError, SyncMode};
use tresor_format::Identity;

use crate::MountError;

/// Everything the mount needs. Build with [`MountConfig::new`], adjust the
/// public fields (or call [`parse_options`](crate::parse_options)), then
/// [`prepare`](crate::prepare).
#[derive(Debug)]
pub struct MountConfig {
    /// The backing directory: the volume's ciphertext tree.
    pub backing: PathBuf,
    /// Where the plaintext view appears.
    pub mountpoint: PathBuf,
    /// The member whose keys the mount uses (already unsealed).
    pub identity: Identity,
    /// The registry must be signed by one of these steward keys.
    pub pinned_stewards: Vec<VerifyingKey>,
    pub read_only: bool,
    /// Let users other than the one who mounts use the mount
    /// (`allow_other`; for non-root mounts it needs `user_allow_other` in
    /// /etc/fuse.conf). Implies `default_permissions`.
    pub allow_other: bool,
    /// Have the kernel check modes and owners (`default_permissions`).
    /// Always on with `allow_other`. Off otherwise: only the mounting
    /// user can reach the mount then, the daemon acts with that user's
    /// credentials, and the backing file system checks every operation
    /// itself (as gocryptfs does), which saves the kernel's extra GETATTR
    /// round trips on every lookup, stat, create and unlink.
    pub default_permissions: bool,
    /// How long the kernel may cache attributes and directory entries.
    /// Zero (the default) caches nothing another node could change: right
    /// for shared storage. A few seconds helps metadata-heavy single-node
    /// workloads.
    pub cache_timeout: Duration,
    /// Threads serving FUSE requests.
    pub threads: usize,
    /// Mount over a directory that has entries (`nonempty`), hiding them.
    /// Refused by default: an fstab line pointing at the wrong directory
    /// would otherwise hide data, and writes meant for the volume could
    /// land on the local disk beneath whenever the mount is down.
    pub nonempty: bool,
    /// Kernel mount options passed through (`noatime`, `nodev`, ...,
    /// `fsname=...`).
    pub options: Vec<String>,
    pub audit: AuditOptions,
    /// Registry rollback (FORMAT.md §5.4): the mount refuses a registry
    /// older than this generation (`min_generation=N`, for nodes with no
    /// state of their own) or than the one in `generation_file`.
    pub min_generation: u64,
    /// Mount even where the backing file system cannot keep nodes coherent
    /// (backing.rs): for a volume only this node ever writes.
    pub allow_incoherent: bool,
    /// Where this node remembers the highest registry generation it has
    /// accepted for the volume (read at mount, raised on every reload), so
    /// a restart cannot be shown an older registry. The CLI points it at
    /// the same file its own commands use.
    pub generation_file: Option<PathBuf>,
}

/// The audit log's settings (see `docs/AUDIT.md`).
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// `audit=off` turns the log off: an explicit operator choice, logged
    /// as a warning at every mount.
    pub enabled: bool,
    /// `audit_dir=PATH`: a directory elsewhere (another system); default
    /// `BACKING/tresor.audit`.
    pub dir: Option<PathBuf>,
    /// The writer's settings but the directory, which depends on the
    /// backing directory: `audit_sync=always` / `audit_sync_ms=N` (the
    /// power-loss window), checkpoints, anchors, and `audit_on_error`.
    writer: tresor_audit::AuditConfig,
    /// `audit_anchor=syslog` / `audit_anchor=none`; unset, checkpoints go to
    /// syslog (off the node, where syslog forwards) when the node has one.
    anchor_syslog: Option<bool>,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions { enabled: true, dir: None, writer: tresor_audit::AuditConfig::new(""), anchor_syslog: None }
    }
}

impl AuditOptions {
    /// The writer's configuration for a volume at `backing`.
    pub fn config(&self, backing: &std::path::Path) -> tresor_audit::AuditConfig {
        let mut c = self.writer.clone();
        c.dir = self.dir.clone().unwrap_or_else(|| backing.join(tresor_audit::DEFAULT_DIR));
        c.anchor_syslog = self.anchor_syslog.unwrap_or_else(tresor_sys::audit_io::syslog_reachable);
        c
    }
}

impl MountConfig {
    pub fn new(
        backing: impl Into<PathBuf>,
        mountpoint: impl Into<PathBuf>,
        identity: Identity,
        pinned_stewards: Vec<VerifyingKey>,
    ) -> MountConfig {
        MountConfig {
            backing: backing.into(),
            mountpoint: mountpoint.into(),
            identity,
            pinned_stewards,
            read_only: false,
            allow_other: false,
            default_permissions: false,
            cache_timeout: Duration::ZERO,
            threads: 2,
            nonempty: false,
            options: Vec::new(),
            audit: AuditOptions::default(),
            min_generation: 0,
            generation_file: None,
            allow_incoherent: false,
        }
    }
}

fn invalid(option: &str, reason: impl Into<String>) -> MountError {
    MountError::InvalidOption { option: option.to_owned(), reason: reason.into() }
}

/// Parses a comma-separated `-o` string into `config` (see module docs).
pub fn parse_options(opts: &str, config: &mut MountConfig) -> Result<(), MountError> {
    for opt in opts.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        match (key, value) {
            ("rw", None) => config.read_only = false,
            ("ro", None) => config.read_only = true,
            ("allow_other", None) => config.allow_other = true,
            ("allow_root", None) => {
                return Err(invalid(opt, "not supported; use allow_other (which implies default_permissions)"))
            }
            ("default_permissions", None) => config.default_permissions = true,
            ("nonempty", None) => config.nonempty = true,
            ("allow_incoherent", None) => config.allow_incoherent = true,
            ("remount", None) => {
                return Err(invalid(
                    opt,
                    "changes a live mount: use `mount -o remount,ro MOUNTPOINT` (tresor_mount::remount)",
                ))
            }
            ("cache_timeout", Some(v)) => {
                let secs: f64 = v.parse().map_err(|_| invalid(opt, "expected a number of seconds"))?;
                config.cache_timeout = Duration::try_from_secs_f64(secs)
                    .map_err(|_| invalid(opt, "expected a non-negative number of seconds"))?;
            }
            ("threads", Some(v)) => {
                let n: usize = v.parse().map_err(|_| invalid(opt, "expected a whole number"))?;
                if n == 0 || n > 256 {
                    return Err(invalid(opt, "threads must be 1 to 256"));
                }
                config.threads = n;
            }
            (k, v) if k.starts_with("audit") => audit_option(opt, k, v, &mut config.audit)?,
            ("min_generation", Some(v)) => {
                config.min_generation = v.parse().map_err(|_| invalid(opt, "expected a registry generation"))?;
            }
            ("defaults" | "_netdev" | "user" | "users" | "nouser" | "nofail" | "auto" | "noauto", None) => {}
            (k, _) if k.starts_with("x-") || k == "comment" => {}
            ("subtype", Some(_)) => {}
            _ => {
                kernel_option(opt)?;
                config.options.push(opt.to_owned());
            }
        }
    }
    Ok(())
}

fn audit_option(opt: &str, key: &str, value: Option<&str>, a: &mut AuditOptions) -> Result<(), MountError> {
    let number = |v: &str| v.parse::<u64>().map_err(|_| invalid(opt, "expected a whole number"));
    let path = |v: &str| {
        if v.starts_with('/') {
            Ok(PathBuf::from(v))
        } else {
            Err(invalid(opt, "expected an absolute path"))
        }
    };
    match (key, value) {
        ("audit", Some("on")) => a.enabled = true,
        ("audit", Some("off")) => a.enabled = false,
        ("audit_dir", Some(v)) => a.dir = Some(path(v)?),
        ("audit_sync", Some("always")) => a.writer.sync = SyncMode::Always,
        ("audit_sync_ms", Some(v)) => match number(v)? {
            0 => return Err(invalid(opt, "use audit_sync=always to sync every record")),
            ms => a.writer.sync = SyncMode::Every(Duration::from_millis(ms)),
        },
        ("audit_checkpoint_records", Some(v)) => {
            a.writer.checkpoint_every = number(v)?.max(1);
        }
        ("audit_checkpoint_secs", Some(v)) => a.writer.checkpoint_interval = Duration::from_secs(number(v)?.max(1)),
        ("audit_anchor", Some("syslog")) => a.anchor_syslog = Some(true),
        ("audit_anchor", Some("none")) => a.anchor_syslog = Some(false),
        ("audit_anchor_cmd", Some(v)) => a.writer.anchor_cmd = Some(path(v)?),
        ("audit_on_error", Some("fail")) => a.writer.on_error = OnError::FailClosed,
        ("audit_on_error", Some("continue")) => a.writer.on_error = OnError::Continue,
        _ => return Err(invalid(opt, "unknown audit option or value (see docs/AUDIT.md)")),
    }
    Ok(())
}

/// The fuser option for a pass-through option string.
pub(crate) fn kernel_option(opt: &str) -> Result<MountOption, MountError> {
    Ok(match opt {
        "noatime" => MountOption::NoAtime,
        "atime" => MountOption::Atime,
        "nodev" => MountOption::NoDev,
        "dev" => MountOption::Dev,
        "nosuid" => MountOption::NoSuid,
        "suid" => MountOption::Suid,
        "noexec" => MountOption::NoExec,
        "exec" => MountOption::Exec,
        "sync" => MountOption::Sync,
        "async" => MountOption::Async,
        "dirsync" => MountOption::DirSync,
        // No fuser variant: fusermount3 knows them, and a root mount turns
        // them into flags itself (`vfs_flags`).
        "relatime" | "norelatime" | "strictatime" | "nodiratime" | "diratime" => MountOption::CUSTOM(opt.to_owned()),
        _ => match opt.strip_prefix("fsname=") {
            Some(name) if !name.is_empty() && !name.contains(',') => MountOption::FSName(name.to_owned()),
            Some(_) => return Err(invalid(opt, "fsname must be non-empty and without commas")),
            None => return Err(invalid(opt, "unknown mount option")),
        },
    })
}

/// Applies generic VFS option `opt` to mount(2) `flags`; false if `opt`
/// is not one. The atime modes replace each other, as in mount(8).
pub(crate) fn apply_vfs_option(opt: &str, flags: &mut MountFlags) -> bool {
    let atime = MountFlags::NOATIME | MountFlags::RELATIME | MountFlags::STRICTATIME;
    let (set, clear) = match opt {
        "ro" => (MountFlags::RDONLY, MountFlags::empty()),
        "rw" => (MountFlags::empty(), MountFlags::RDONLY),
        "nosuid" => (MountFlags::NOSUID, MountFlags::empty()),
        "suid" => (MountFlags::empty(), MountFlags::NOSUID),
        "nodev" => (MountFlags::NODEV, MountFlags::empty()),
        "dev" => (MountFlags::empty(), MountFlags::NODEV),
        "noexec" => (MountFlags::NOEXEC, MountFlags::empty()),
        "exec" => (MountFlags::empty(), MountFlags::NOEXEC),
        "sync" => (MountFlags::SYNCHRONOUS, MountFlags::empty()),
        "async" => (MountFlags::empty(), MountFlags::SYNCHRONOUS),
        "dirsync" => (MountFlags::DIRSYNC, MountFlags::empty()),
        "noatime" => (MountFlags::NOATIME, atime),
        "relatime" => (MountFlags::RELATIME, atime),
        "strictatime" => (MountFlags::STRICTATIME, atime),
        "atime" | "norelatime" => (MountFlags::empty(), MountFlags::NOATIME | MountFlags::RELATIME),
        "nodiratime" => (MountFlags::NODIRATIME, MountFlags::empty()),
        "diratime" => (MountFlags::empty(), MountFlags::NODIRATIME),
        _ => return false,
    };
    *flags = (*flags - clear) | set;
    true
}

/// The mount(2) flags of a root mount made by Tresor itself: `nosuid` and
/// `nodev` unless asked otherwise (as fusermount3 does), then the options.
pub(crate) fn root_mount_flags(config: &MountConfig) -> MountFlags {
    let mut flags = MountFlags::NOSUID | MountFlags::NODEV;
    apply_vfs_option(if config.read_only { "ro" } else { "rw" }, &mut flags);
    for opt in &config.options {
        apply_vfs_option(opt, &mut flags);
    }
    flags
}

/// The full fuser option list for `config`.
pub(crate) fn fuse_options(config: &MountConfig, backing: &std::path::Path) -> Result<Vec<MountOption>, MountError> {
    let mut out = vec![MountOption::Subtype("tresor".into())];
    if config.default_permissions || config.allow_other {
        out.push(MountOption::DefaultPermissions);
    }
    out.push(if config.read_only { MountOption::RO } else { MountOption::RW });
    let mut fsname = None;
    for opt in &config.options {
        match kernel_option(opt)? {
            MountOption::FSName(name) => fsname = Some(name),
            o if !out.contains(&o) => out.push(o),
            _ => {}
        }
    }
    let fsname = fsname.unwrap_or_else(|| {
        let shown: String = backing
            .display()
            .to_string()
            .chars()
            .map(|c| if c == ',' || c.is_whitespace() || c.is_control() { '_' } else { c })
            .collect();
        format!("tresor:{shown}")
    });
    out.insert(0, MountOption::FSName(fsname));
    let conflict = |a: &MountOption, b: &MountOption| out.contains(a) && out.contains(b);
    for (a, b, name) in [
        (MountOption::Atime, MountOption::NoAtime, "atime and noatime"),
        (MountOption::Dev, MountOption::NoDev, "dev and nodev"),
        (MountOption::Suid, MountOption::NoSuid, "suid and nosuid"),
        (MountOption::Exec, MountOption::NoExec, "exec and noexec"),
        (MountOption::Sync, MountOption::Async, "sync and async"),
        (MountOption::CUSTOM("nodiratime".into()), MountOption::CUSTOM("diratime".into()), "nodiratime and diratime"),
    ] {
        if conflict(&a, &b) {
            return Err(invalid(name, "conflicting options"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MountConfig {
        let id = Identity::from_seed(&[1; 32], "test").unwrap();
        MountConfig::new("/b", "/m", id, Vec::new())
    }

    #[test]
    fn fstab_style_option_strings_set_fields_and_pass_kernel_flags() {
        let mut c = config();
        parse_options(
            "defaults,_netdev,ro,allow_other,noatime,nodev,x-systemd.automount,cache_timeout=1.5,threads=4",
            &mut c,
        )
        .unwrap();
        assert!(c.read_only && c.allow_other);
        assert_eq!(c.cache_timeout, Duration::from_millis(1500));
        assert_eq!(c.threads, 4);
        assert_eq!(c.options, ["noatime", "nodev"]);
        let opts = fuse_options(&c, std::path::Path::new("/data/vol,1")).unwrap();
        assert_eq!(opts[0], MountOption::FSName("tresor:/data/vol_1".into()));
        assert!(opts.contains(&MountOption::RO) && opts.contains(&MountOption::DefaultPermissions));
        assert!(opts.contains(&MountOption::NoAtime) && opts.contains(&MountOption::NoDev));
    }

    #[test]
    fn the_kernel_checks_permissions_when_others_can_reach_the_mount_or_when_asked() {
        let kernel_checks = |opts: &str| {
            let mut c = config();
            parse_options(opts, &mut c).unwrap();
            fuse_options(&c, std::path::Path::new("/b")).unwrap().contains(&MountOption::DefaultPermissions)
        };
        assert!(!kernel_checks(""), "a private mount: the backing file system checks, as the mounting user");
        assert!(kernel_checks("allow_other"), "other users: the kernel must check modes");
        assert!(kernel_checks("default_permissions"));
        assert!(kernel_checks("default_permissions,allow_other"));
    }

    #[test]
    fn audit_options_set_the_log_settings() {
        let mut c = config();
        assert!(
            c.audit.enabled && c.audit.config(std::path::Path::new("/b")).on_error == OnError::FailClosed,
            "on and failing closed by default"
        );
        parse_options(
            "audit_dir=/srv/audit,audit_sync=always,audit_checkpoint_records=10,audit_checkpoint_secs=5,\
             audit_anchor=syslog,audit_anchor_cmd=/usr/local/bin/anchor,audit_on_error=continue",
            &mut c,
        )
        .unwrap();
        let a = c.audit.config(std::path::Path::new("/b"));
        assert_eq!(a.dir, PathBuf::from("/srv/audit"));
        assert_eq!((a.sync, a.checkpoint_every, a.checkpoint_interval), (SyncMode::Always, 10, Duration::from_secs(5)));
        assert!(a.anchor_syslog && a.on_error == OnError::Continue);
        assert_eq!(a.anchor_cmd.unwrap(), PathBuf::from("/usr/local/bin/anchor"));
        parse_options("audit=off", &mut c).unwrap();
        assert!(!c.audit.enabled);
        assert_eq!(config().audit.config(std::path::Path::new("/b")).dir, PathBuf::from("/b/tresor.audit"));
        // Anchors leave the node through syslog by default where it has one.
        let default = config().audit.config(std::path::Path::new("/b")).anchor_syslog;
        assert_eq!(default, tresor_sys::audit_io::syslog_reachable());
        parse_options("audit_anchor=none", &mut c).unwrap();
        assert!(!c.audit.config(std::path::Path::new("/b")).anchor_syslog);
    }

    #[test]
    fn generic_vfs_options_become_mount_flags_and_atime_modes_replace_each_other() {
        let mut c = config();
        parse_options("ro,nodiratime,noatime,strictatime,sync,dirsync,noexec,dev,_netdev,x-mount.mkdir", &mut c)
            .unwrap();
        let f = root_mount_flags(&c);
        assert!(f.contains(MountFlags::RDONLY | MountFlags::NODIRATIME | MountFlags::STRICTATIME));
        assert!(f.contains(MountFlags::SYNCHRONOUS | MountFlags::DIRSYNC | MountFlags::NOEXEC | MountFlags::NOSUID));
        assert!(!f.contains(MountFlags::NOATIME) && !f.contains(MountFlags::NODEV), "{f:?}");
        let mut flags = MountFlags::RDONLY | MountFlags::NOATIME;
        for o in ["rw", "relatime"] {
            assert!(apply_vfs_option(o, &mut flags));
        }
        assert_eq!(flags, MountFlags::RELATIME);
        assert!(!apply_vfs_option("identity=/etc/tresor/node.id", &mut flags));
        assert!(parse_options("remount,ro", &mut config()).is_err(), "remount changes a live mount, never mounts");
    }

    #[test]
    fn unknown_or_malformed_options_are_errors() {
        for bad in [
            "bogus",
            "threads=0",
            "threads=x",
            "cache_timeout=-1",
            "fsname=",
            "allow_root",
            "max_read=4096",
            "audit=maybe",
            "audit_dir=relative/dir",
            "audit_sync_ms=0",
            "audit_on_error=ignore",
        ] {
            assert!(parse_options(bad, &mut config()).is_err(), "{bad}");
        }
        let mut c = config();
        parse_options("atime,noatime", &mut c).unwrap();
        assert!(fuse_options(&c, std::path::Path::new("/b")).is_err());
    }
}
