//! `tresor-fsck`: checks a Tresor volume's backing tree without a mount.
//!
//! Every structure `docs/FORMAT.md` defines is checked: directory IVs and
//! their place tags (§8.1), names and long-name sidecars (§8.2–8.3),
//! symlink targets and their sidecars (§8.5), extended attributes (§8.6), file headers against the
//! registry and the member header rule (§6, §9), content blocks and the
//! trailer (§7), special-file records (§8.7); plus what a crash or the
//! storage operator leaves behind: temporaries, re-key markers, hard links
//! to files outside the volume, planted FIFOs and devices, orphan sidecars,
//! and the audit logs (`docs/AUDIT.md`). The registry itself (pin, expiry,
//! generation) is checked by the caller, who holds this client's state.
//!
//! What the checker can see depends on the identity it is given: with none,
//! structure and signatures only (names stay encrypted, content is checked
//! by length); with a member's identity, every name and place tag, and the
//! full content of every file that member can read.
//!
//! **Safety.** The backing tree is read through descriptors only: each
//! directory is opened from its parent's descriptor, one component at a
//! time, never following a symlink; every file is opened non-blocking with
//! `O_NOFOLLOW`, its type checked with `fstat` before a byte is read, and
//! reads are bounded by the format's limits. A file's header is read under
//! the shared internal lock every mount takes for it, its content under a
//! shared lock of the whole file, so fsck runs beside live mounts on any
//! node. Nothing is written unless [`Options::repair`] is set.
//!
//! **Cost.** Files are checked in parallel (rayon), a directory is read in
//! chunks, and the only state kept across the walk is per finding and per
//! hard-linked inode: memory does not grow with the number of files.

#![forbid(unsafe_code)]

mod access;
mod audit;
mod file;
mod repair;
mod walk;
mod xattr;

use std::{
    os::fd::OwnedFd,
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Instant,
};

use serde::Serialize;
use tresor_format::{Identity, NameCipher, PlaceKey, Volume};

pub use access::AccessRow;

/// Names of temporaries (creates and re-keys in progress, held directories
/// of a removal): `tresor.tmp.<random>`.
pub const TMP_PREFIX: &str = "tresor.tmp.";
/// How old a temporary must be before it is stale: the grace period the
/// mount and the CLI use before removing one (another node's create may be
/// in progress in a younger one).
pub const TMP_GRACE_SECS: u64 = 60;
/// Where `--repair` moves what cannot be read: reserved (never shown by a
/// mount), at the backing root.
pub const QUARANTINE_DIR: &str = "tresor.quarantine";

/// What kind of problem a finding is. Serialized as a stable kebab-case
/// string (the `class` field of the JSON output).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    /// The volume file does not verify (signature, pin, structure).
    Registry,
    /// The registry is past its `expires_at`.
    RegistryExpired,
    /// The registry is older than a generation this client has seen.
    RegistryRollback,
    /// A `tresor.diriv` is missing, malformed or not a regular file.
    DirIv,
    /// A `tresor.diriv` whose place tag is for another place (copied or moved).
    DirIvPlace,
    /// An entry name that does not decrypt.
    Name,
    /// A long-name entry whose sidecar is missing, short or does not hash to it.
    LongNameSidecar,
    /// A sidecar (`tresor.longname.*.name`, `tresor.longtarget.*`) no entry uses.
    OrphanSidecar,
    /// A symlink target (or its sidecar) that is malformed or does not decrypt.
    SymlinkTarget,
    /// A file header that is malformed, for another volume, or badly signed.
    Header,
    /// A header signed by someone not (or no longer) allowed to sign it.
    HeaderSigner,
    /// A header that breaks the member header rule (FORMAT.md §9).
    AccessRule,
    /// A recipient's stanza does not unwrap to the committed key.
    KeyCommitment,
    /// A file whose length no valid file has (cut or extended).
    FileLength,
    /// A content block that does not open.
    Block,
    /// The end-of-file trailer does not open (blocks cut at a boundary).
    Trailer,
    /// A `user.tresor.*` extended attribute that is malformed or does not decrypt.
    Xattr,
    /// A special-file record (FIFO, socket, device) that does not verify.
    SpecialRecord,
    /// A backing FIFO, socket or device node: never made by Tresor.
    PlantedSpecial,
    /// A `tresor.tmp.*` older than the grace period.
    StaleTemporary,
    /// A file still holding the re-key marker `TRSRMOVD` under a name.
    MovedMarker,
    /// A file with more links than the volume holds names for.
    HardLink,
    /// A reserved or non-UTF-8 name the format does not define.
    UnexpectedEntry,
    /// An audit log that does not verify.
    AuditLog,
    /// An entry that could not be read (I/O error, permission).
    Unreadable,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Registry => "registry",
            Class::RegistryExpired => "registry-expired",
            Class::RegistryRollback => "registry-rollback",
            Class::DirIv => "dir-iv",
            Class::DirIvPlace => "dir-iv-place",
            Class::Name => "name",
            Class::LongNameSidecar => "long-name-sidecar",
            Class::OrphanSidecar => "orphan-sidecar",
            Class::SymlinkTarget => "symlink-target",
            Class::Header => "header",
            Class::HeaderSigner => "header-signer",
            Class::AccessRule => "access-rule",
            Class::KeyCommitment => "key-commitment",
            Class::FileLength => "file-length",
            Class::Block => "block",
            Class::Trailer => "trailer",
            Class::Xattr => "xattr",
            Class::SpecialRecord => "special-record",
            Class::PlantedSpecial => "planted-special",
            Class::StaleTemporary => "stale-temporary",
            Class::MovedMarker => "moved-marker",
            Class::HardLink => "hard-link",
            Class::UnexpectedEntry => "unexpected-entry",
            Class::AuditLog => "audit-log",
            Class::Unreadable => "unreadable",
        }
    }
}

/// One problem found.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub class: Class,
    /// The plaintext path (from the volume root, `/`-separated, starting
    /// with `/`) where the identity decrypts every name on the way; the
    /// backing path (relative to the backing root) otherwise.
    pub path: String,
    /// The backing path, relative to the backing root.
    pub backing: String,
    pub message: String,
    /// What `--repair` did about it (`None`: left as it is).
    pub repaired: Option<String>,
}

/// Counts for the summary.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub directories: u64,
    pub files: u64,
    pub symlinks: u64,
    pub special_files: u64,
    /// Files whose header was verified.
    pub headers_checked: u64,
    /// Files whose every block and trailer was opened (the identity is a recipient).
    pub content_checked: u64,
    /// Ciphertext bytes read to check content.
    pub content_bytes: u64,
    /// Files with several names inside the volume (made through a mount).
    pub hard_linked: u64,
    /// Temporaries younger than the grace period (creates in progress).
    pub busy_temporaries: u64,
    pub audit_logs: u64,
    pub findings: u64,
    pub corrected: u64,
    pub uncorrected: u64,
    pub seconds: f64,
    pub files_per_second: f64,
    /// Whether names were decrypted and place tags checked (an identity was given).
    pub names_checked: bool,
}

/// The outcome of a check.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub summary: Summary,
    /// Per member, with `report_access`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<Vec<AccessRow>>,
}

impl Report {
    /// e2fsck's exit code: 0 clean, 1 every finding corrected, 4 some left.
    pub fn exit_code(&self) -> u8 {
        if self.summary.uncorrected > 0 {
            4
        } else if self.summary.corrected > 0 {
            1
        } else {
            0
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Remove stale temporaries, move damaged entries to `tresor.quarantine/`.
    pub repair: bool,
    /// Collect the per-member "who can read what" table.
    pub report_access: bool,
    /// Open only headers, not content, even where the identity could.
    pub headers_only: bool,
    /// Unix seconds now (temporaries' age).
    pub now: u64,
}

/// Live counters, for a progress display on another thread.
#[derive(Debug, Default)]
pub struct Progress {
    pub files: AtomicU64,
    pub directories: AtomicU64,
    pub bytes: AtomicU64,
    pub findings: AtomicU64,
}

impl Progress {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// The keys an identity brings: names, place tags, and its own file keys.
pub(crate) struct Keys<'a> {
    pub identity: &'a Identity,
    pub names: NameCipher,
    pub place: PlaceKey,
}

/// Shared state of one run.
pub(crate) struct Ctx<'a> {
    pub volume: &'a Volume,
    pub keys: Option<Keys<'a>>,
    pub opts: &'a Options,
    pub root: OwnedFd,
    pub findings: Mutex<Vec<Finding>>,
    pub progress: &'a Progress,
    pub summary: Mutex<Summary>,
    pub links: Mutex<walk::Links>,
    pub access: Option<access::Table>,
    pub quarantine: repair::Quarantine,
}

impl Ctx<'_> {
    pub fn report(&self, f: Finding) {
        self.progress.findings.fetch_add(1, Ordering::Relaxed);
        self.findings.lock().unwrap().push(f);
    }

    pub fn count(&self, f: impl FnOnce(&mut Summary)) {
        f(&mut self.summary.lock().unwrap());
    }
}

/// Checks the volume at `backing`, whose registry `volume` the caller has
/// verified (or opened self-signed, to diagnose a volume whose registry
/// fails: then the caller reports that too). `identity`, a member of the
/// volume, lets names, place tags and content be checked.
///
/// An error is operational (the backing root cannot be opened, the name key
/// does not unwrap); everything found in the tree is a [`Finding`].
pub fn check(
    backing: &Path,
    volume: &Volume,
    identity: Option<&Identity>,
    opts: &Options,
    progress: &Progress,
) -> std::io::Result<Report> {
    let started = Instant::now();
    let keys = match identity {
        Some(id) => {
            let name_key =
                volume.name_key(id).map_err(|e| std::io::Error::other(format!("unwrapping the name key: {e}")))?;
            Some(Keys { identity: id, names: NameCipher::new(&name_key), place: PlaceKey::new(&name_key) })
        }
        None => None,
    };
    let root = walk::open_root(backing)?;
    let quarantine = repair::Quarantine::default();
    let ctx = Ctx {
        volume,
        keys,
        opts,
        root,
        findings: Mutex::new(Vec::new()),
        progress,
        summary: Mutex::new(Summary::default()),
        links: Mutex::new(walk::Links::default()),
        access: opts.report_access.then(|| access::Table::new(volume)),
        quarantine,
    };
    walk::run(&ctx)?;
    audit::check(&ctx);
    let mut findings = ctx.findings.into_inner().unwrap();
    findings.sort_by(|a, b| (a.backing.as_str(), a.class).cmp(&(b.backing.as_str(), b.class)));
    let mut summary = ctx.summary.into_inner().unwrap();
    summary.findings = findings.len() as u64;
    summary.corrected = findings.iter().filter(|f| f.repaired.is_some()).count() as u64;
    summary.uncorrected = summary.findings - summary.corrected;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.files_per_second = if summary.seconds > 0.0 { summary.files as f64 / summary.seconds } else { 0.0 };
    summary.names_checked = ctx.keys.is_some();
    Ok(Report { findings, summary, access: ctx.access.map(|t| t.rows(volume)) })
}

/// Adds findings the caller made (the registry's) to a report.
pub fn add_findings(report: &mut Report, extra: Vec<Finding>) {
    for f in extra {
        report.summary.findings += 1;
        if f.repaired.is_some() {
            report.summary.corrected += 1;
        } else {
            report.summary.uncorrected += 1;
        }
        report.findings.insert(0, f);
    }
}
