//! Appending to a log: one file per mount or CLI session, one mutex around
//! the append, group commit by a background thread, checkpoints, anchors,
//! and failing closed.
//!
//! # Durability
//!
//! Every record is handed to the kernel with one `write(2)` on an
//! `O_APPEND` descriptor before [`AuditLog::append`] returns, so before the
//! operation it describes is answered: a daemon killed with SIGKILL loses
//! nothing (the page cache has it). The background thread `fdatasync`s the
//! file at most every `sync` interval (default 1 s) when something was
//! written: that interval bounds what a power loss or kernel crash can
//! lose. [`SyncMode::Always`] syncs before `append` returns instead.
//!
//! # Failing closed
//!
//! If a record cannot be written (full disk, I/O error), the file is cut
//! back to its last whole record, the failure is logged, and every later
//! `append` (and [`AuditLog::check`]) returns [`AuditError::Failed`] until
//! the log is opened again, unless the operator chose
//! [`OnError::Continue`].

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand_core::{OsRng, RngCore};
use tresor_format::{Identity, NameKey, Volume};
use tresor_sys::audit_io;

use crate::chain::{self, hex};
pub use crate::event::{complete, Event};
use crate::files::create_segment;
pub use crate::files::{host_name, open_dir, remove_segment, segment_name};
use crate::frame;
use crate::merkle::Frontier;
use crate::record::Op;
use crate::seal::PathSealer;

/// When records reach stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// `fdatasync` before `append` returns.
    Always,
    /// `fdatasync` by a background thread at most this often: the window a
    /// power loss can lose.
    Every(Duration),
}

/// What to do when a record cannot be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Refuse every operation that needs a record (the default).
    FailClosed,
    /// Log the failure and carry on without the record (explicit choice).
    Continue,
}

/// Where and how a log is written.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// The directory holding one file per mount.
    pub dir: PathBuf,
    pub sync: SyncMode,
    /// A checkpoint after this many records...
    pub checkpoint_every: u64,
    /// ... or this long after the last one, if records were added since.
    pub checkpoint_interval: Duration,
    /// A new segment once the current one holds this many bytes...
    pub segment_bytes: u64,
    /// ... or is this old (docs/AUDIT.md, "Segments").
    pub segment_age: Duration,
    /// Send each checkpoint line to syslog (LOG_AUTHPRIV | LOG_NOTICE).
    pub anchor_syslog: bool,
    /// Run this command with each checkpoint line on its stdin.
    pub anchor_cmd: Option<PathBuf>,
    pub on_error: OnError,
}

impl AuditConfig {
    pub fn new(dir: impl Into<PathBuf>) -> AuditConfig {
        AuditConfig {
            dir: dir.into(),
            sync: SyncMode::Every(Duration::from_millis(1000)),
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            segment_bytes: 64 << 20,
            segment_age: Duration::from_secs(24 * 3600),
            anchor_syslog: false,
            anchor_cmd: None,
            on_error: OnError::FailClosed,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot create the audit log directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error("refusing the audit log directory {path}: {reason}")]
    Planted { path: PathBuf, reason: &'static str },
    #[error("cannot create the audit log {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("the audit log {path} could not be written ({reason}): operations that need a record are refused until the mount is restarted")]
    Failed { path: PathBuf, reason: String },
    #[error("the audit log {path} is closed")]
    Closed { path: PathBuf },
}

/// How a log starts: the mount (or session) record's contents.
pub struct Start<'a> {
    pub identity: Arc<Identity>,
    pub volume: &'a Volume,
    pub name_key: &'a NameKey,
    /// `Op::Mount` for the daemon, `Op::Session` for a CLI command.
    pub op: Op,
    /// The mount options or the command line (never secrets).
    pub options: String,
}

struct State {
    file: File,
    /// The same file, for `fdatasync` outside the append lock.
    sync_file: Arc<File>,
    /// The current segment: its number and when it was started.
    segment: u64,
    segment_started: Instant,
    /// The seq of the current segment's first record.
    segment_first: u64,
    /// Bytes of whole records written: the file is cut back to this when a
    /// write fails.
    len: u64,
    seq: u64,
    prev: [u8; 32],
    /// The Merkle tree's right edge over every record written so far.
    tree: Frontier,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    buf: Vec<u8>,
    dirty: bool,
    failed: Option<String>,
    closed: bool,
    comm: HashMap<u32, (String, Instant)>,
    anchors: Option<Sender<String>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    path: PathBuf,
    identity: Arc<Identity>,
    sealer: PathSealer,
    host: String,
    mount_id: [u8; 16],
    member: [u8; 16],
    config: AuditConfig,
    /// A CLI session's log (ends with `session-end`, not `unmount`).
    session: bool,
    /// The log directory, opened without following symlinks: segments
    /// are created beneath it.
    dir: OwnedFd,
    volume_id: [u8; 16],
}

/// An open audit log: appends from many threads are serialized inside.
pub struct AuditLog {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("path", &self.shared.path).finish_non_exhaustive()
    }
}

/// How long a process name read from /proc stays cached for its pid.
const COMM_TTL: Duration = Duration::from_secs(1);

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn process_name(pid: u32) -> String {
    if pid == 0 {
        return String::new();
    }
    std::fs::read(format!("/proc/{pid}/comm"))
        .map(|b| String::from_utf8_lossy(b.strip_suffix(b"\n").unwrap_or(&b)).into_owned())
        .unwrap_or_default()
}

impl AuditLog {
    /// Creates a new log file in `config.dir` (made if missing) and writes
    /// the mount record and the first checkpoint, synced.
    pub fn open(config: AuditConfig, start: Start<'_>) -> Result<AuditLog, AuditError> {
        let dir = open_dir(&config.dir)?;
        let mut mount_id = [0u8; 16];
        OsRng.fill_bytes(&mut mount_id);
        let host = host_name();
        let name = segment_name(&host, &mount_id, 0);
        let path = config.dir.join(&name);
        let create = |source| AuditError::Create { path: path.clone(), source };
        let file = create_segment(dir.as_fd(), &name).map_err(create)?;
        let sync_file = Arc::new(file.try_clone().map_err(create)?);
        let (anchors, anchor_thread) = if config.anchor_syslog || config.anchor_cmd.is_some() {
            let (tx, rx) = mpsc::channel::<String>();
            let (syslog, cmd) = (config.anchor_syslog, config.anchor_cmd.clone());
            let t = std::thread::Builder::new()
                .name("tresor-audit-anchor".into())
                .spawn(move || {
                    for line in rx {
                        anchor(&line, syslog, cmd.as_deref());
                    }
                })
                .map_err(create)?;
            (Some(tx), Some(t))
        } else {
            (None, None)
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                file,
                sync_file,
                segment: 0,
                segment_started: Instant::now(),
                segment_first: 0,
                len: frame::FILE_HEADER_LEN as u64,
                seq: 0,
                prev: chain::GENESIS,
                tree: Frontier::new(),
                since_checkpoint: 0,
                last_checkpoint: Instant::now(),
                buf: Vec::with_capacity(1024),
                dirty: false,
                failed: None,
                closed: false,
                comm: HashMap::new(),
                anchors,
            }),
            wake: Condvar::new(),
            path: path.clone(),
            sealer: PathSealer::new(start.name_key, &start.volume.id),
            member: start.identity.id().0,
            identity: start.identity,
            host,
            mount_id,
            session: start.op == Op::Session,
            config,
            dir: dir.try_clone().map_err(create)?,
            volume_id: start.volume.id,
        });
        let mut first = shared.start_event(start.op);
        first.record.options = Some(start.options);
        {
            let mut st = shared.lock();
            shared.append_locked(&mut st, first).map_err(|e| AuditError::Failed { path: path.clone(), reason: e })?;
            shared.checkpoint_locked(&mut st).map_err(|e| AuditError::Failed { path: path.clone(), reason: e })?;
            st.file.sync_data().map_err(create)?;
            st.dirty = false;
        }
        let _ = File::from(dir).sync_all();
        let mut threads = Vec::new();
        let bg = shared.clone();
        threads.push(
            std::thread::Builder::new()
                .name("tresor-audit-sync".into())
                .spawn(move || bg.background())
                .map_err(create)?,
        );
        threads.extend(anchor_thread);
        Ok(AuditLog { shared, threads: Mutex::new(threads) })
    }

    /// A log for one CLI command (grant, revoke, member add, ...): its own
    /// file in `dir`, synced on every record.
    pub fn open_session(
        dir: &Path,
        identity: Arc<Identity>,
        volume: &Volume,
        name_key: &NameKey,
        command: &str,
    ) -> Result<AuditLog, AuditError> {
        let mut config = AuditConfig::new(dir);
        config.sync = SyncMode::Always;
        AuditLog::open(config, Start { identity, volume, name_key, op: Op::Session, options: command.to_owned() })
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    pub fn mount_id(&self) -> [u8; 16] {
        self.shared.mount_id
    }

    /// Whether records can still be written: `Err` once a write failed
    /// (fail-closed mode), so an operation can be refused before it is done.
    pub fn check(&self) -> Result<(), AuditError> {
        let st = self.shared.lock();
        self.shared.refusal(&st)
    }

    /// Appends a record; `Err` means it was not written and (fail-closed)
    /// the operation must be refused.
    pub fn append(&self, event: Event) -> Result<(), AuditError> {
        let shared = &*self.shared;
        let mut st = shared.lock();
        shared.refusal(&st)?;
        let op = event.record.op;
        let written = shared.append_locked(&mut st, event).and_then(|()| {
            if shared.config.sync == SyncMode::Always {
                st.file.sync_data().map_err(|e| format!("fdatasync: {e}"))?;
                st.dirty = false;
            }
            if st.since_checkpoint >= shared.config.checkpoint_every && op != Op::Checkpoint {
                shared.checkpoint_locked(&mut st)?;
            }
            if st.len >= shared.config.segment_bytes || st.segment_started.elapsed() >= shared.config.segment_age {
                shared.rotate_locked(&mut st)?;
            }
            Ok(())
        });
        match written {
            Ok(()) => Ok(()),
            Err(reason) => shared.failed(&mut st, reason),
        }
    }

    /// A checkpoint now (if records were added since the last one).
    pub fn checkpoint(&self) -> Result<(), AuditError> {
        let shared = &*self.shared;
        let mut st = shared.lock();
        shared.refusal(&st)?;
        if st.since_checkpoint == 0 {
            return Ok(());
        }
        match shared.checkpoint_locked(&mut st) {
            Ok(()) => Ok(()),
            Err(reason) => shared.failed(&mut st, reason),
        }
    }

    /// Writes the unmount (or session-end) record and a final checkpoint,
    /// syncs, and stops the background threads. Idempotent.
    pub fn close(&self) -> Result<(), AuditError> {
        let shared = &*self.shared;
        let result = {
            let mut st = shared.lock();
            if st.closed {
                return Ok(());
            }
            let (uid, gid) = audit_io::uid_gid();
            let end =
                Event::new(if shared.session { Op::SessionEnd } else { Op::Unmount }).by(uid, gid, std::process::id());
            let r = shared.refusal(&st).and_then(|()| {
                shared
                    .append_locked(&mut st, end)
                    .and_then(|()| shared.checkpoint_locked(&mut st))
                    .and_then(|()| st.file.sync_data().map_err(|e| format!("fdatasync: {e}")))
                    .map_err(|reason| AuditError::Failed { path: shared.path.clone(), reason })
            });
            st.closed = true;
            st.anchors = None; // the anchor thread ends once it has sent what is queued
            r
        };
        shared.wake.notify_all();
        for t in std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner())) {
            let _ = t.join();
        }
        result
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!("closing the audit log: {e}");
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refusal(&self, st: &State) -> Result<(), AuditError> {
        if st.closed {
            return Err(AuditError::Closed { path: self.path.clone() });
        }
        match &st.failed {
            Some(reason) if self.config.on_error == OnError::FailClosed => {
                Err(AuditError::Failed { path: self.path.clone(), reason: reason.clone() })
            }
            _ => Ok(()),
        }
    }

    /// A write failed: cut the file back to its last whole record, log it,
    /// and refuse (or, by the operator's choice, carry on).
    fn failed(&self, st: &mut State, reason: String) -> Result<(), AuditError> {
        if let Err(e) = st.file.set_len(st.len) {
            tracing::error!("audit log {}: cannot cut back a partial record: {e}", self.path.display());
        }
        match self.config.on_error {
            OnError::FailClosed => {
                tracing::error!(
                    "audit log {}: {reason}; failing closed: operations that need a record get EIO until the mount is restarted",
                    self.path.display()
                );
                st.failed = Some(reason.clone());
                Err(AuditError::Failed { path: self.path.clone(), reason })
            }
            OnError::Continue => {
                tracing::error!(
                    "audit log {}: {reason}; a record is LOST (audit_on_error=continue)",
                    self.path.display()
                );
                st.failed = Some(reason);
                Ok(())
            }
        }
    }

    fn comm(&self, st: &mut State, pid: u32) -> String {
        let now = Instant::now();
        if let Some((name, at)) = st.comm.get(&pid) {
            if now.duration_since(*at) < COMM_TTL {
                return name.clone();
            }
        }
        let name = process_name(pid);
        if st.comm.len() > 4096 {
            st.comm.clear();
        }
        st.comm.insert(pid, (name.clone(), now));
        name
    }

    /// Builds, seals, frames and writes one record with one `write(2)`.
    fn append_locked(&self, st: &mut State, mut event: Event) -> Result<(), String> {
        let record = &mut event.record;
        record.seq = st.seq;
        record.time_ns = now_ns();
        record.host.clone_from(&self.host);
        record.mount_id = self.mount_id;
        record.member = self.member;
        if record.op != Op::Checkpoint {
            let pid = record.pid;
            event.record.process = self.comm(st, pid);
        }
        match event.record.op {
            Op::Checkpoint => event.record.root = Some(st.tree.root().to_vec()),
            Op::Segment => event.record.range = Some(st.tree.hashes().concat()),
            _ => {}
        }
        let record = complete(event, &self.sealer, &self.identity, &st.prev);
        let mut buf = std::mem::take(&mut st.buf);
        buf.clear();
        buf.extend_from_slice(&[0; 4]);
        record.encode_into(&mut buf);
        if buf.len() - 4 > frame::MAX_RECORD {
            // Cannot happen: every field is bounded (record::MAX_SEALED_PLAIN, MAX_TEXT, MAX_RECIPIENTS).
            return Err(format!(
                "a {op} record of {} bytes exceeds the frame limit",
                buf.len() - 4,
                op = record.op.as_str()
            ));
        }
        let len = (buf.len() - 4) as u32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        let written = st.file.write_all(&buf);
        let hash = chain::next(&st.prev, &buf[4..]);
        let n = buf.len() as u64;
        st.buf = buf;
        written.map_err(|e| format!("write: {e}"))?;
        st.len += n;
        st.prev = hash;
        st.tree.push(&st.buf[4..]);
        st.seq += 1;
        st.since_checkpoint += 1;
        st.dirty = true;
        Ok(())
    }

    /// The first record of a log or of a segment: this process, the volume
    /// and the key that signs the checkpoints.
    fn start_event(&self, op: Op) -> Event {
        let mut e = Event::new(op).by_self();
        e.record.volume = Some(self.volume_id.to_vec());
        e.record.key = Some(self.identity.public().ed25519.as_bytes().to_vec());
        e
    }

    /// Seals the current segment (`segment-end`, a checkpoint, synced) and
    /// goes on in a new file whose `segment` record links to it and is
    /// checkpointed at once, so each segment verifies on its own and the
    /// chain runs unbroken across them (docs/AUDIT.md, "Segments").
    fn rotate_locked(&self, st: &mut State) -> Result<(), String> {
        let (uid, gid) = audit_io::uid_gid();
        self.append_locked(st, Event::new(Op::SegmentEnd).by(uid, gid, std::process::id()))?;
        self.checkpoint_locked(st)?;
        st.file.sync_data().map_err(|e| format!("fdatasync: {e}"))?;
        let name = segment_name(&self.host, &self.mount_id, st.segment + 1);
        let file = create_segment(self.dir.as_fd(), &name).map_err(|e| format!("creating segment {name}: {e}"))?;
        st.sync_file = Arc::new(file.try_clone().map_err(|e| format!("dup: {e}"))?);
        st.file = file;
        st.segment += 1;
        st.segment_started = Instant::now();
        st.segment_first = st.seq;
        st.len = frame::FILE_HEADER_LEN as u64;
        let _ = File::from(self.dir.try_clone().map_err(|e| format!("dup: {e}"))?).sync_all();
        self.append_locked(st, self.start_event(Op::Segment))?;
        self.checkpoint_locked(st)?;
        tracing::info!("audit log: segment {} of mount {}", st.segment, hex(&self.mount_id));
        Ok(())
    }

    fn checkpoint_locked(&self, st: &mut State) -> Result<(), String> {
        let seq = st.seq;
        self.append_locked(st, Event::new(Op::Checkpoint))?;
        st.since_checkpoint = 0;
        st.last_checkpoint = Instant::now();
        if let Some(tx) = &st.anchors {
            let _ = tx.send(format!("{} {seq} {}", hex(&self.mount_id), hex(&st.prev)));
        }
        Ok(())
    }

    /// Group commit and timed checkpoints, until the log is closed.
    fn background(&self) {
        let tick = match self.config.sync {
            SyncMode::Every(d) => d.min(self.config.checkpoint_interval),
            SyncMode::Always => self.config.checkpoint_interval.min(Duration::from_secs(1)),
        }
        .min(self.config.segment_age)
        .max(Duration::from_millis(1));
        let mut st = self.lock();
        loop {
            st = self.wake.wait_timeout(st, tick).unwrap_or_else(|e| e.into_inner()).0;
            if st.closed {
                return;
            }
            if self.refusal(&st).is_ok()
                && st.since_checkpoint > 0
                && st.last_checkpoint.elapsed() >= self.config.checkpoint_interval
            {
                if let Err(reason) = self.checkpoint_locked(&mut st) {
                    let _ = self.failed(&mut st, reason);
                }
            }
            // An old segment rotates even when no record comes, once it
            // holds more than its first record and checkpoint.
            if self.refusal(&st).is_ok()
                && st.seq > st.segment_first + 2
                && st.segment_started.elapsed() >= self.config.segment_age
            {
                if let Err(reason) = self.rotate_locked(&mut st) {
                    let _ = self.failed(&mut st, reason);
                }
            }
            if st.dirty {
                st.dirty = false;
                // Sync without holding the lock: appends go on meanwhile.
                let file = st.sync_file.clone();
                drop(st);
                let synced = file.sync_data();
                st = self.lock();
                if let Err(e) = synced {
                    st.dirty = true;
                    if self.refusal(&st).is_ok() {
                        let _ = self.failed(&mut st, format!("fdatasync: {e}"));
                    }
                }
            }
        }
    }
}

/// Hands one checkpoint line to the outside sinks.
fn anchor(line: &str, syslog: bool, cmd: Option<&Path>) {
    if syslog {
        audit_io::syslog_authpriv_notice(&format!("tresor-audit checkpoint {line}"));
    }
    if let Some(cmd) = cmd {
        let run = std::process::Command::new(cmd)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .and_then(|mut child| {
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(format!("{line}\n").as_bytes())?;
                }
                child.wait()
            });
        match run {
            Ok(status) if status.success() => {}
            Ok(status) => tracing::error!("audit anchor command {} failed: {status}", cmd.display()),
            Err(e) => tracing::error!("audit anchor command {}: {e}", cmd.display()),
        }
    }
}
