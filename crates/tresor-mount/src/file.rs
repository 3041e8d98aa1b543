//! An open file: its backing descriptor, header, content cipher, and the
//! read/write/truncate protocol over blocks and the end-of-file trailer.
//!
//! Layout (FORMAT.md §1.2, §7): `header (H bytes) | block 0 | … | block n-1 |
//! trailer (28 bytes)`; a block is `nonce ‖ ciphertext ‖ tag` of `B` plaintext
//! bytes (the last one 1..=B); the trailer seals the block count `n`. A full
//! all-zero ciphertext block is a hole and reads as zeros; the last block and
//! the trailer are never holes.
//!
//! # Locking
//!
//! Every operation runs under an internal OFD lock on the ciphertext bytes
//! it reads or writes (`lock.rs`), so handles, processes and nodes sharing
//! the backing file never see a half-written block or trailer, and two
//! read-modify-writes of one block never lose an update:
//!
//! * a read, and the header and end-of-file checks of an open, first run
//!   without a lock (the header is signed, each block and the trailer are
//!   authenticated, so a read that caught a write half done fails to open
//!   and is done again); then, or when that fails, under a shared lock on
//!   the blocks it reads, extended to EOF when it includes the last block
//!   (it then checks the trailer);
//! * a write that stays inside the file takes an exclusive lock on the
//!   blocks it rewrites; a write or truncate that changes the size takes an
//!   exclusive lock from the first byte it touches (the first block it
//!   rewrites, or the old last block or trailer, whichever comes first) to
//!   EOF.
//!
//! The range depends on the file size, which can only be trusted under the
//! lock: the size is guessed (the handle's last known size), the lock taken,
//! the size read again with `fstat`, and if the range the real size needs is
//! not covered the lock is dropped and the operation starts over.
//!
//! OFD locks taken through one open file description do not exclude each
//! other, so one description never runs two operations at once. A handle
//! has a few *lanes*, each with a description of its own (the first is the
//! handle's; more are reopened through `/proc/self/fd` when operations on
//! the handle overlap, up to one per core) and its own scratch buffers.
//! Operations on one handle then exclude each other through their locks
//! exactly like operations of two handles or two nodes, and the kernel's
//! concurrent readahead requests on one handle run in parallel.
//!
//! # Writes
//!
//! Partial first and last blocks that exist are read, opened and re-sealed
//! with the new bytes; blocks fully overwritten are sealed directly; no other
//! block is re-encrypted. A write that extends the file appends the new
//! trailer right after the new last block, in the same `pwrite` as the
//! blocks, so a killed daemon never leaves new blocks without the trailer
//! that counts them. A write that starts beyond the end first re-seals the
//! old last block at full length (zero-padded) if it was partial, leaves
//! whole blocks in the gap as holes (unwritten, so they stay sparse), and
//! zeroes the old trailer's bytes where they fall into such a hole. Before a
//! file grows, its old trailer is checked, so a cut file is never silently
//! "repaired" by extending it.
//!
//! # Truncate
//!
//! Shrinking re-seals the new last block if partial, writes it and the new
//! trailer, then cuts the file. Growing re-seals the old last block at full
//! length if the new end lies beyond it, zeroes stray trailer bytes in the
//! gap, and writes the new last block (sealed zeros; never a hole) plus the
//! trailer at the new end; the blocks between stay holes.
//!
//! Any block or trailer that fails authentication makes that operation fail
//! with EIO, logged with the backing path and the block number; no
//! plaintext from a failed block is ever returned.
//!
//! # Re-keyed files
//!
//! `tresor revoke`/`rekey` (docs/FORMAT.md §6.5) writes a re-keyed copy
//! under an exclusive internal lock on the whole file, renames it over the
//! name, and overwrites the old inode's magic with [`MOVED_MAGIC`] before
//! unlocking. Every operation here reads the size with `fstat` under its
//! lock; when the link count is 0 it also reads the magic, and on
//! `TRSRMOVD` fails with [`Errno::MOVED`]: the caller (`fs`) reopens the
//! file by path (new header and key, or EACCES if no longer a recipient)
//! and retries, so no write lands in the orphaned old inode.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use rand_core::{OsRng, RngCore};
use tresor_format::content::{BLOCK_OVERHEAD, NONCE_LEN, TRAILER_LEN};
use tresor_format::{ContentCipher, Error as FormatError, Header, Identity, Layout, Volume};
use zeroize::Zeroize;

use crate::lock::{Guard, Kind, Range};
use crate::parallel;
use crate::paths::show;
use crate::sys::{self, Errno, FsResult};

/// Ciphertext offsets stay below this, so `LOCK_BASE + offset` is a valid
/// `off_t` (and far beyond any real file).
const MAX_CIPHERTEXT: u64 = (1 << 62) - (1 << 32);

/// What a re-key writes over the old inode's header magic once the new file
/// has replaced it (see the module docs).
pub const MOVED_MAGIC: &[u8; 8] = b"TRSRMOVD";

pub struct OpenFile {
    fd: Arc<OwnedFd>,
    /// The node this handle was opened on.
    pub node: u64,
    /// Backing path at open time (relative to the backing root), for logs.
    pub path: Vec<u8>,
    cipher: ContentCipher,
    layout: Layout,
    pub writable: bool,
    /// Opened with `O_APPEND`: every write goes to the current end, found
    /// under the lock, so appends from several nodes never overwrite each
    /// other.
    pub append: bool,
    /// Lock owners that set forwarded POSIX/OFD locks through this handle.
    pub lock_owners: Mutex<Vec<u64>>,
    /// Plaintext bytes read and written through this handle, for the audit
    /// record at release.
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    /// For a file this handle created: the member ids its header was made
    /// for (the audit record of the create names them).
    pub created_for: Vec<[u8; 16]>,
    /// uid, gid and pid of the open (the release record names them: the
    /// kernel's release request often carries no process).
    pub opened_by: OnceLock<(u32, u32, u32)>,
    lanes: Mutex<Lanes>,
    /// Signalled when a lane is given back.
    lane_back: Condvar,
}

/// The lanes of a handle not in use, how many exist, and how many
/// operations wait for one (only then is a lane given back signalled: a
/// condvar signal is a system call, on every operation otherwise).
struct Lanes {
    idle: Vec<Scratch>,
    made: usize,
    waiting: usize,
}

/// The most lanes a handle opens: one per core (at most 4). More would
/// only queue for the CPU, each holding buffers of up to a request's size.
fn max_lanes() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 4))
}

/// A lane: a backing descriptor and buffers, reused across operations.
struct Scratch {
    /// The lane's open file description of the backing file (the handle's
    /// own for the first lane); its internal locks are the lane's.
    fd: Arc<OwnedFd>,
    /// Ciphertext read or to be written.
    ct: Vec<u8>,
    /// A second ciphertext buffer (old blocks during a write).
    old: Vec<u8>,
    /// One block of plaintext.
    pt: Vec<u8>,
    /// The plaintext a read returns.
    out: Vec<u8>,
    /// The size seen by the last operation: the first guess for the next
    /// lock range (checked under the lock).
    size_hint: Option<u64>,
}

impl Scratch {
    fn new(fd: Arc<OwnedFd>) -> Scratch {
        Scratch { fd, ct: Vec::new(), old: Vec::new(), pt: Vec::new(), out: Vec::new(), size_hint: None }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.pt.zeroize();
        self.out.zeroize();
    }
}

/// Whether a read reports a block or trailer that fails authentication (a
/// locked read: the file is damaged) or only says so (an unlocked read,
/// which may have caught a write half done, and is retried under the lock).
#[derive(Clone, Copy)]
enum Auth {
    Report,
    Quiet,
}

/// A lane in use; given back to its handle on drop.
struct Lane<'a> {
    file: &'a OpenFile,
    st: Option<Scratch>,
}

impl std::ops::Deref for Lane<'_> {
    type Target = Scratch;
    fn deref(&self) -> &Scratch {
        self.st.as_ref().expect("a lane holds its scratch until dropped")
    }
}

impl std::ops::DerefMut for Lane<'_> {
    fn deref_mut(&mut self) -> &mut Scratch {
        self.st.as_mut().expect("a lane holds its scratch until dropped")
    }
}

impl Drop for Lane<'_> {
    fn drop(&mut self) {
        if let Some(st) = self.st.take() {
            let mut lanes = self.file.lanes();
            lanes.idle.push(st);
            if lanes.waiting > 0 {
                self.file.lane_back.notify_one();
            }
        }
    }
}

/// Reads and verifies the header of the backing file open as `fd`:
/// signature against the registry, volume id. An invalid header (or a file
/// shorter than one): EIO, logged as an error with `path`; a file re-keyed
/// away meanwhile: [`Errno::MOVED`].
///
/// First without the internal lock, as reads are (a lock is a round trip to
/// the lock server on shared storage, two per open): the header is signed,
/// so bytes caught while another process rewrites it do not verify. Only a
/// header that is not accepted that way is read again under a shared lock,
/// and only that reading's verdict is reported.
pub fn read_header(fd: BorrowedFd<'_>, volume: &Volume, path: &[u8]) -> FsResult<Header> {
    let header_len = volume.params.header_len;
    let mut bytes = vec![0u8; header_len as usize];
    if sys::pread_exact(fd, &mut bytes, 0).is_ok() && !bytes.starts_with(MOVED_MAGIC) {
        if let Ok(header) = Header::open(&bytes, volume) {
            return Ok(header);
        }
    }
    {
        let _lock = Guard::acquire(fd, Kind::Shared, Range::new(0, header_len.into()))?;
        if let Err(e) = sys::pread_exact(fd, &mut bytes, 0) {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                tracing::error!("{}: file header: the file is shorter than a header", show(path));
                return Err(Errno::EIO);
            }
            return Err(e.into());
        }
    }
    if bytes.starts_with(MOVED_MAGIC) {
        return Err(Errno::MOVED);
    }
    Header::open(&bytes, volume).map_err(|e| {
        tracing::error!("{}: {e}", show(path));
        Errno::EIO
    })
}

/// Files whose ciphertext after the header is at most this long are read
/// whole at open: header and trailer in one request instead of two (each a
/// round trip to the object store on a parallel file system), for a few KiB
/// more read.
const READ_WHOLE_AT_OPEN: u64 = 64 * 1024;

/// The header, and for a small file the whole ciphertext it was read with,
/// without the lock (see [`read_header`]); anything that does not verify
/// that way goes to [`read_header`] itself.
fn read_start(fd: BorrowedFd<'_>, volume: &Volume, path: &[u8]) -> FsResult<(Header, Option<Vec<u8>>)> {
    let header_len = volume.params.header_len as usize;
    if let Ok(st) = sys::fstat(fd) {
        let len = st.st_size.max(0) as u64;
        if len >= header_len as u64 && len - header_len as u64 <= READ_WHOLE_AT_OPEN {
            let mut whole = vec![0u8; len as usize];
            if sys::pread_exact(fd, &mut whole, 0).is_ok() && !whole.starts_with(MOVED_MAGIC) {
                if let Ok(header) = Header::open(&whole[..header_len], volume) {
                    return Ok((header, Some(whole)));
                }
            }
        }
    }
    Ok((read_header(fd, volume, path)?, None))
}

impl OpenFile {
    /// Reads and verifies the header of the backing file open as `fd`,
    /// applies the caller's access `rule` to it, and unwraps its key; with
    /// `check_end`, then checks the end of the file ([`Self::check_end`]).
    /// Not a recipient: EACCES (warned); an invalid header or end: EIO
    /// (logged as an error); a file re-keyed away meanwhile:
    /// [`Errno::MOVED`].
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        fd: OwnedFd,
        node: u64,
        path: Vec<u8>,
        writable: bool,
        append: bool,
        check_end: bool,
        volume: &Volume,
        identity: &Identity,
        rule: impl FnOnce(&Header) -> FsResult<()>,
    ) -> FsResult<OpenFile> {
        let (header, whole) = read_start(fd.as_fd(), volume, &path)?;
        rule(&header)?;
        let key = header.file_key(identity).map_err(|e| match e {
            FormatError::NotRecipient { .. } => {
                tracing::warn!("{}: access denied: {e}", show(&path));
                Errno::EACCES
            }
            e => {
                tracing::error!("{}: {e}", show(&path));
                Errno::EIO
            }
        })?;
        let p = volume.params;
        let cipher = ContentCipher::new(p.suite, &key, &header.file_id, p.block_size);
        let layout = Layout::new(p.header_len, p.block_size);
        let file = OpenFile::from_parts(fd, node, path, cipher, layout, writable, append);
        if check_end && !whole.is_some_and(|whole| file.end_opens(&whole)) {
            file.check_end()?;
        }
        Ok(file)
    }

    /// Whether `whole`, the entire ciphertext as one read returned it, ends
    /// in a trailer that opens for its length: a state of the file some
    /// moment had (anything torn by a concurrent writer does not open).
    fn end_opens(&self, whole: &[u8]) -> bool {
        let Ok(size) = self.layout.plaintext_size(whole.len() as u64) else { return false };
        let at = self.layout.trailer_offset(size) as usize;
        self.cipher.open_trailer(self.layout.block_count(size), &whole[at..]).is_ok()
    }

    /// A handle from its parts (a file this mount just created).
    pub fn from_parts(
        fd: OwnedFd,
        node: u64,
        path: Vec<u8>,
        cipher: ContentCipher,
        layout: Layout,
        writable: bool,
        append: bool,
    ) -> OpenFile {
        let fd = Arc::new(fd);
        let first = Scratch::new(fd.clone());
        OpenFile {
            fd,
            node,
            path,
            cipher,
            layout,
            writable,
            append,
            lock_owners: Mutex::new(Vec::new()),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            created_for: Vec::new(),
            opened_by: OnceLock::new(),
            lanes: Mutex::new(Lanes { idle: vec![first], made: 1, waiting: 0 }),
            lane_back: Condvar::new(),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn bs(&self) -> u64 {
        self.layout.block_size
    }

    fn bo(&self, k: u64) -> u64 {
        self.layout.block_offset(k)
    }

    /// Plaintext length of block `k` of a file of `size` bytes.
    fn block_len(&self, k: u64, size: u64) -> usize {
        (size - k * self.bs()).min(self.bs()) as usize
    }

    fn integrity(&self, e: &FormatError) -> Errno {
        tracing::error!("{}: {e}", show(&self.path));
        Errno::EIO
    }

    /// The plaintext size from the backing length (`fstat`), or `None` if
    /// the length is not one a file can have. That happens for an instant
    /// while another node grows the file (the backing file system raises
    /// the length page by page during a `pwrite`), or for good if the file
    /// was cut.
    fn try_size(&self, fd: BorrowedFd<'_>) -> FsResult<Option<u64>> {
        let st = sys::fstat(fd)?;
        if st.st_nlink == 0 && moved(fd)? {
            return Err(Errno::MOVED);
        }
        Ok(self.layout.plaintext_size(st.st_size.max(0) as u64).ok())
    }

    /// The size once no size-changing operation is under way: if the length
    /// is in flux, wait for a shared lock on the whole file (every writer
    /// that changes the size holds an exclusive lock to EOF) and look again;
    /// an invalid length then is a damaged file.
    fn stable_size(&self, fd: BorrowedFd<'_>) -> FsResult<u64> {
        if let Some(size) = self.try_size(fd)? {
            return Ok(size);
        }
        let _all = Guard::acquire(fd, Kind::Shared, Range::to_eof(0))?;
        match self.try_size(fd)? {
            Some(size) => Ok(size),
            None => {
                let st = sys::fstat(fd)?;
                self.layout.plaintext_size(st.st_size.max(0) as u64).map_err(|e| self.integrity(&e))
            }
        }
    }

    fn check_limit(&self, size: u64) -> FsResult<()> {
        if size > MAX_CIPHERTEXT || self.layout.ciphertext_size(size) > MAX_CIPHERTEXT {
            return Err(Errno::EFBIG);
        }
        Ok(())
    }

    fn lanes(&self) -> MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A lane for one operation: an idle one, else a new one while there
    /// are fewer than `max_lanes()` (a reopened description), else the
    /// next one given back.
    fn scratch(&self) -> Lane<'_> {
        let mut lanes = self.lanes();
        loop {
            if let Some(st) = lanes.idle.pop() {
                return Lane { file: self, st: Some(st) };
            }
            if lanes.made < max_lanes() {
                match sys::reopen_same(self.fd()) {
                    Ok(fd) => {
                        lanes.made += 1;
                        return Lane { file: self, st: Some(Scratch::new(Arc::new(fd))) };
                    }
                    Err(e) => {
                        // Serve with the lanes there are.
                        tracing::debug!("{}: no second descriptor for parallel I/O: {e}", show(&self.path));
                        lanes.made = max_lanes();
                    }
                }
            }
            lanes.waiting += 1;
            lanes = self.lane_back.wait(lanes).unwrap_or_else(|e| e.into_inner());
            lanes.waiting -= 1;
        }
    }

    /// Runs `op` under a lock of `kind` on `range(size)`, retrying until the
    /// lock taken covers the range the size found under it needs.
    fn locked<T>(
        &self,
        st: &mut Scratch,
        kind: Kind,
        range: impl Fn(u64) -> FsResult<Option<Range>>,
        op: impl FnOnce(&mut Scratch, u64) -> FsResult<T>,
    ) -> FsResult<T> {
        // The lane's descriptor, held apart from `st` so the lock guard
        // does not borrow the buffers `op` needs.
        let fd = Arc::clone(&st.fd);
        let fd = fd.as_fd();
        let mut guess = match st.size_hint {
            Some(s) => s,
            None => self.stable_size(fd)?,
        };
        loop {
            let Some(want) = range(guess)? else {
                // Nothing to lock or do at this size; confirm the size.
                let size = self.stable_size(fd)?;
                if size == guess {
                    st.size_hint = Some(size);
                    return op(st, size);
                }
                guess = size;
                continue;
            };
            let guard = Guard::acquire(fd, kind, want)?;
            // Our range is ours; the length may still be in flux from a
            // writer beyond it.
            let Some(size) = self.try_size(fd)? else {
                drop(guard);
                guess = self.stable_size(fd)?;
                continue;
            };
            if size != guess {
                let need = range(size)?;
                if !need.is_some_and(|need| guard.range().covers(&need)) {
                    drop(guard);
                    guess = size;
                    continue;
                }
            }
            st.size_hint = Some(size);
            let result = op(st, size);
            drop(guard);
            if result.is_err() {
                st.size_hint = None;
            }
            return result;
        }
    }

    // ---- reads ----------------------------------------------------------

    fn read_range(&self, off: u64, len: u64, size: u64) -> Range {
        let b = self.bs();
        if off >= size {
            return Range::to_eof(self.layout.trailer_offset(size));
        }
        let end = (off + len).min(size);
        let (first, last) = (off / b, (end - 1) / b);
        if last + 1 == self.layout.block_count(size) {
            Range::to_eof(self.bo(first))
        } else {
            Range::new(self.bo(first), self.bo(last + 1))
        }
    }

    /// Reads up to `len` bytes at `off` and hands them to `reply` (while the
    /// handle's buffer holds them).
    pub fn read(&self, off: u64, len: u32, reply: impl FnOnce(&[u8])) -> FsResult<()> {
        let len = u64::from(len);
        if len == 0 {
            reply(&[]);
            return Ok(());
        }
        let mut st = self.scratch();
        if !self.read_unlocked(&mut st, |_| off, len)? {
            self.locked(
                &mut st,
                Kind::Shared,
                |size| Ok(Some(self.read_range(off, len, size))),
                |st, size| self.read_locked(st, off, len, size, Auth::Report),
            )?;
        }
        reply(&st.out);
        Ok(())
    }

    /// A read without the lock: every backing lock is a round trip to the
    /// metadata server on a parallel file system, and most reads race no
    /// writer. What it returns is what a locked read could have: each block
    /// and the trailer are authenticated, so a block or trailer caught
    /// half-written, or a length in flux, fails to open, and then (false)
    /// the read is done again under the lock, where a failure is real and
    /// reported. Descriptors of file data bypass the backing client's
    /// caches (backing.rs), so a block that opens is what the storage holds.
    /// As on a local file system, a read that spans blocks a concurrent
    /// write is changing may see some blocks before it and some after.
    /// `off` is found from the size the read sees.
    fn read_unlocked(&self, st: &mut Scratch, off: impl FnOnce(u64) -> u64, len: u64) -> FsResult<bool> {
        let fd = Arc::clone(&st.fd);
        let Some(size) = self.try_size(fd.as_fd())? else { return Ok(false) };
        match self.read_locked(st, off(size), len, size, Auth::Quiet) {
            Ok(()) => {
                st.size_hint = Some(size);
                Ok(true)
            }
            Err(Errno::EIO) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Checks the length and the trailer (the end of the file) before the
    /// size is believed: a file cut anywhere, even inside its first block,
    /// or whose trailer does not open, fails here with EIO at open instead
    /// of reading as a shorter (often empty) file. `stat` shows a size from
    /// the length alone and cannot tell (FORMAT.md §7.4). Without the lock
    /// first, then under it, by the rule of [`Self::read_unlocked`].
    pub fn check_end(&self) -> FsResult<()> {
        let mut st = self.scratch();
        if self.read_unlocked(&mut st, |size| size, 1)? {
            return Ok(());
        }
        self.locked(
            &mut st,
            Kind::Shared,
            |size| Ok(Some(Range::to_eof(self.layout.trailer_offset(size)))),
            |st, size| self.read_locked(st, size, 1, size, Auth::Report),
        )
    }

    fn read_locked(&self, st: &mut Scratch, off: u64, len: u64, size: u64, auth: Auth) -> FsResult<()> {
        let failed = |e: FormatError| match auth {
            Auth::Report => self.integrity(&e),
            Auth::Quiet => Errno::EIO,
        };
        let b = self.bs();
        let n = self.layout.block_count(size);
        st.out.clear();
        if off >= size {
            // End of file: only once the trailer says this is the end.
            let mut trailer = [0u8; TRAILER_LEN];
            self.pread_checked(st.fd.as_fd(), &mut trailer, self.layout.trailer_offset(size), auth)?;
            return self.cipher.open_trailer(n, &trailer).map_err(failed);
        }
        let end = (off + len).min(size);
        let (first, last) = (off / b, (end - 1) / b);
        let with_trailer = last + 1 == n;
        let start = self.bo(first);
        let stop = self.bo(last) + (self.block_len(last, size) + BLOCK_OVERHEAD) as u64;
        let ct_len = (stop - start) as usize + if with_trailer { TRAILER_LEN } else { 0 };
        st.ct.resize(ct_len, 0);
        self.pread_checked(st.fd.as_fd(), &mut st.ct, start, auth)?;
        if with_trailer {
            self.cipher.open_trailer(n, &st.ct[ct_len - TRAILER_LEN..]).map_err(failed)?;
        }
        st.out.resize((end - off) as usize, 0);
        st.pt.resize(b as usize, 0);
        // Blocks read whole go straight into the reply, spread over the
        // cores; a partial first or last block goes through `pt`.
        let whole_from = if off.is_multiple_of(b) { first } else { first + 1 };
        let whole_to = if end == (last * b + self.block_len(last, size) as u64) { last + 1 } else { last };
        for k in (first..whole_from).chain(whole_to.max(whole_from)..=last) {
            let blen = self.block_len(k, size);
            let at = (self.bo(k) - start) as usize;
            let ct = &st.ct[at..at + blen + BLOCK_OVERHEAD];
            let block_start = k * b;
            let from = off.max(block_start) - block_start;
            let to = end.min(block_start + blen as u64) - block_start;
            self.open_block_raw(k, ct, &mut st.pt[..blen], size).map_err(failed)?;
            let dst = (block_start + from - off) as usize;
            st.out[dst..dst + (to - from) as usize].copy_from_slice(&st.pt[from as usize..to as usize]);
        }
        if whole_from < whole_to {
            let ct_at = (self.bo(whole_from) - start) as usize;
            let ct_end = (self.bo(whole_to - 1) - start) as usize + self.block_len(whole_to - 1, size) + BLOCK_OVERHEAD;
            let out_at = (whole_from * b - off) as usize;
            let out_end = ((whole_to - 1) * b - off) as usize + self.block_len(whole_to - 1, size);
            let parts = split_blocks(
                &st.ct[ct_at..ct_end],
                &mut st.out[out_at..out_end],
                whole_from,
                (whole_to - whole_from) as usize,
                self.bs() as usize,
            );
            let stride = b as usize + BLOCK_OVERHEAD;
            parallel::run(parts, |(k0, ct, out)| {
                for (i, (ct, out)) in ct.chunks(stride).zip(out.chunks_mut(b as usize)).enumerate() {
                    self.open_block_raw(k0 + i as u64, ct, out, size).map_err(failed)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn pread_into(&self, fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> FsResult<()> {
        self.pread_checked(fd, buf, offset, Auth::Report)
    }

    fn pread_checked(&self, fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64, auth: Auth) -> FsResult<()> {
        sys::pread_exact(fd, buf, offset).map_err(|e| {
            if e.kind() != std::io::ErrorKind::UnexpectedEof {
                return e.into();
            }
            if matches!(auth, Auth::Report) {
                tracing::error!(
                    "{}: the backing file is shorter than its length said (changed without the lock?)",
                    show(&self.path)
                );
            }
            Errno::EIO
        })
    }

    // ---- writes -----------------------------------------------------------

    fn write_range(&self, off: u64, end: u64, size: u64) -> Range {
        let b = self.bs();
        if end <= size {
            let (first, last) = (off / b, (end - 1) / b);
            Range::new(self.bo(first), self.bo(last) + (self.block_len(last, size) + BLOCK_OVERHEAD) as u64)
        } else {
            Range::to_eof(self.bo((off / b).min(size / b)))
        }
    }

    /// Writes `data` at `off` (at the end for an `O_APPEND` handle).
    pub fn write(&self, off: u64, data: &[u8]) -> FsResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        let len = data.len() as u64;
        let at = |size: u64| if self.append { size } else { off };
        let mut st = self.scratch();
        self.locked(
            &mut st,
            Kind::Exclusive,
            |size| {
                let off = at(size);
                self.check_limit(off.checked_add(len).ok_or(Errno::EFBIG)?)?;
                Ok(Some(self.write_range(off, off + len, size)))
            },
            |st, size| {
                let off = at(size);
                let new_size = size.max(off + len);
                self.apply(st, size, new_size, Some((off, data)))?;
                st.size_hint = Some(new_size);
                Ok(())
            },
        )
    }

    fn trunc_range(&self, size: u64, new_size: u64) -> Option<Range> {
        let b = self.bs();
        match new_size.cmp(&size) {
            std::cmp::Ordering::Equal => None,
            std::cmp::Ordering::Less => Some(Range::to_eof(self.bo(new_size / b))),
            std::cmp::Ordering::Greater => Some(Range::to_eof(self.bo(size / b))),
        }
    }

    /// Sets the plaintext size.
    pub fn truncate(&self, new_size: u64) -> FsResult<()> {
        self.check_limit(new_size)?;
        let mut st = self.scratch();
        self.locked(
            &mut st,
            Kind::Exclusive,
            |size| Ok(self.trunc_range(size, new_size)),
            |st, size| {
                if new_size < size {
                    self.shrink(st, size, new_size)?;
                } else if new_size > size {
                    self.apply(st, size, new_size, None)?;
                }
                st.size_hint = Some(new_size);
                Ok(())
            },
        )
    }

    /// `fallocate(2)` modes 0 and `FALLOC_FL_KEEP_SIZE` on `[off, end)`:
    /// reserves the backing space of those blocks (and of the trailer, when
    /// the range reaches the end) first, so a request the backing file
    /// system cannot satisfy fails with its ENOSPC (or EOPNOTSUPP) and
    /// changes nothing; then, unless `keep_size`, grows the file to `end`.
    /// The reserved space reads as zeros, which the format reads as holes.
    pub fn allocate(&self, off: u64, end: u64, keep_size: bool) -> FsResult<()> {
        self.check_limit(end)?;
        let mut st = self.scratch();
        self.locked(
            &mut st,
            Kind::Exclusive,
            |size| Ok(if !keep_size && end > size { self.trunc_range(size, end) } else { None }),
            |st, size| {
                let from = self.bo(off / self.bs());
                let to = if end >= size {
                    self.layout.ciphertext_size(end)
                } else {
                    self.bo((end - 1) / self.bs() + 1).min(self.layout.ciphertext_size(size))
                };
                sys::reserve(st.fd.as_fd(), from, to - from)?;
                if !keep_size && end > size {
                    self.apply(st, size, end, None)?;
                    st.size_hint = Some(end);
                }
                Ok(())
            },
        )
    }

    fn shrink(&self, st: &mut Scratch, size: u64, new_size: u64) -> FsResult<()> {
        let b = self.bs();
        let count = self.layout.block_count(new_size);
        st.ct.clear();
        let at = if !new_size.is_multiple_of(b) {
            // Re-seal the new (partial) last block at its new length.
            let k = new_size / b;
            let old_len = self.block_len(k, size);
            let new_len = (new_size - k * b) as usize;
            self.open_old_block(st, k, old_len, size)?;
            st.ct.resize(new_len + BLOCK_OVERHEAD, 0);
            self.cipher.seal_block(k, &st.pt[..new_len], &mut st.ct, &mut OsRng);
            self.bo(k)
        } else if count > 0 && self.is_hole(st, count - 1)? {
            // Cut inside a sparse region: the new last block is a hole, and
            // the last block is always sealed (FORMAT.md §7.2).
            let (k, full) = (count - 1, b as usize);
            st.pt.resize(full, 0);
            st.pt.fill(0);
            st.ct.resize(full + BLOCK_OVERHEAD, 0);
            self.cipher.seal_block(k, &st.pt[..full], &mut st.ct, &mut OsRng);
            self.bo(k)
        } else {
            self.bo(count)
        };
        st.ct.extend_from_slice(&self.cipher.seal_trailer(count, &mut OsRng));
        sys::pwrite_all(st.fd.as_fd(), &st.ct, at)?;
        sys::ftruncate(st.fd.as_fd(), self.layout.ciphertext_size(new_size))?;
        Ok(())
    }

    /// Whether full-size block `k` is stored as a hole (all zeros).
    fn is_hole(&self, st: &mut Scratch, k: u64) -> FsResult<bool> {
        st.old.resize(self.bs() as usize + BLOCK_OVERHEAD, 0);
        self.pread_into(st.fd.as_fd(), &mut st.old, self.bo(k))?;
        Ok(st.old.iter().all(|&x| x == 0))
    }

    /// Reads and opens old block `k` (`old_len` plaintext bytes) of a file
    /// of `size` bytes into `st.pt`.
    fn open_old_block(&self, st: &mut Scratch, k: u64, old_len: usize, size: u64) -> FsResult<()> {
        st.old.resize(old_len + BLOCK_OVERHEAD, 0);
        self.pread_into(st.fd.as_fd(), &mut st.old, self.bo(k))?;
        st.pt.resize(self.bs() as usize, 0);
        let (old, pt) = (&st.old, &mut st.pt[..old_len]);
        self.open_stored_block(k, old, pt, size)
    }

    /// Opens stored block `k` of a file of `size` bytes. The last block is
    /// never a hole (FORMAT.md §7.2): zeroing it must not read as zeros.
    fn open_stored_block(&self, k: u64, ct: &[u8], out: &mut [u8], size: u64) -> FsResult<()> {
        self.open_block_raw(k, ct, out, size).map_err(|e| self.integrity(&e))
    }

    fn open_block_raw(&self, k: u64, ct: &[u8], out: &mut [u8], size: u64) -> Result<(), FormatError> {
        let opened = if k + 1 == self.layout.block_count(size) {
            self.cipher.open_last_block(k, ct, out)
        } else {
            self.cipher.open_block(k, ct, out)
        };
        opened.map(drop)
    }

    /// Seals blocks `from..=to` of a file going from `size` to `new_size`
    /// bytes, with `data` (at its offset) laid over the old content, and
    /// appends them to `out`.
    #[allow(clippy::too_many_arguments)]
    fn seal_blocks(
        &self,
        st: &mut Scratch,
        out: &mut Vec<u8>,
        size: u64,
        new_size: u64,
        from: u64,
        to: u64,
        data: Option<(u64, &[u8])>,
    ) -> FsResult<()> {
        let b = self.bs();
        let old_count = self.layout.block_count(size);
        let stride = b as usize + BLOCK_OVERHEAD;
        // Blocks the data covers whole are sealed straight from it, spread
        // over the cores; the others (partial, or past the data) one by one.
        let (whole_from, whole_to) = match data {
            Some((off, d)) => {
                let end = off + d.len() as u64;
                let lo = from.max(off.div_ceil(b));
                let hi = if end == new_size { to + 1 } else { (to + 1).min(end / b) };
                (lo, hi.max(lo))
            }
            None => (from, from),
        };
        let at0 = out.len();
        for k in (from..whole_from).chain(whole_to..=to) {
            let start = k * b;
            let new_len = self.block_len(k, new_size);
            let old_len = if k < old_count { self.block_len(k, size) } else { 0 };
            // The part of this block the data covers, [lo, hi) in the block.
            let (lo, hi) = match data {
                Some((off, d)) => {
                    let lo = off.max(start) - start;
                    let hi = (off + d.len() as u64).min(start + new_len as u64).saturating_sub(start);
                    if lo < hi {
                        (lo as usize, hi as usize)
                    } else {
                        (0, 0)
                    }
                }
                None => (0, 0),
            };
            if old_len > 0 && !(lo == 0 && hi >= old_len) {
                self.open_old_block(st, k, old_len, size)?;
                st.pt[old_len..new_len].fill(0);
            } else {
                st.pt.resize(b as usize, 0);
                st.pt[..new_len].fill(0);
            }
            if let Some((off, d)) = data {
                if lo < hi {
                    let src = (start + lo as u64 - off) as usize;
                    st.pt[lo..hi].copy_from_slice(&d[src..src + (hi - lo)]);
                }
            }
            let at = at0 + (k - from) as usize * stride;
            if out.len() < at + new_len + BLOCK_OVERHEAD {
                out.resize(at + new_len + BLOCK_OVERHEAD, 0);
            }
            self.cipher.seal_block(k, &st.pt[..new_len], &mut out[at..at + new_len + BLOCK_OVERHEAD], &mut OsRng);
        }
        if let (Some((off, d)), true) = (data, whole_from < whole_to) {
            let last_len = self.block_len(whole_to - 1, new_size);
            let out_at = at0 + (whole_from - from) as usize * stride;
            let out_end = at0 + (whole_to - 1 - from) as usize * stride + last_len + BLOCK_OVERHEAD;
            if out.len() < out_end {
                out.resize(out_end, 0);
            }
            let d_at = (whole_from * b - off) as usize;
            let d_end = ((whole_to - 1) * b - off) as usize + last_len;
            let count = (whole_to - whole_from) as usize;
            let parts = split_blocks(&mut out[out_at..out_end], &d[d_at..d_end], whole_from, count, b as usize);
            parallel::run(parts, |(k0, out, pt)| {
                // One getrandom call for the nonces of the whole run, not one
                // per block (256 system calls per MiB).
                let mut nonces = vec![0u8; pt.len().div_ceil(b as usize) * NONCE_LEN];
                OsRng.fill_bytes(&mut nonces);
                let blocks = out.chunks_mut(stride).zip(pt.chunks(b as usize)).zip(nonces.chunks_exact(NONCE_LEN));
                for (i, ((out, pt), nonce)) in blocks.enumerate() {
                    let nonce = nonce.try_into().expect("chunks_exact yields NONCE_LEN bytes");
                    self.cipher.seal_block_with_nonce(k0 + i as u64, pt, out, nonce);
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// A write (with `data`) or a truncate up (without) that takes the file
    /// from `size` to `new_size >= size` bytes. See the module docs.
    fn apply(&self, st: &mut Scratch, size: u64, new_size: u64, data: Option<(u64, &[u8])>) -> FsResult<()> {
        let b = self.bs();
        let growing = new_size > size;
        let (first, last) = match data {
            Some((off, d)) => (off / b, (off + d.len() as u64 - 1) / b),
            None => {
                let k = (new_size - 1) / b;
                (k, k)
            }
        };
        let old_trailer = self.layout.trailer_offset(size);
        if growing {
            // Never extend (and so re-seal the trailer of) a file that was cut.
            let mut trailer = [0u8; TRAILER_LEN];
            self.pread_into(st.fd.as_fd(), &mut trailer, old_trailer)?;
            self.cipher.open_trailer(self.layout.block_count(size), &trailer).map_err(|e| self.integrity(&e))?;
        }
        // The old last block, if partial and before the blocks written: it
        // becomes a full inner block, re-sealed zero-padded.
        let reseal = (growing && !size.is_multiple_of(b) && size / b < first).then_some(size / b);
        let mut main = std::mem::take(&mut st.ct);
        main.clear();
        let mut pre = Vec::new();
        let mut pre_at = 0;
        let main_at;
        match reseal {
            Some(l) if l + 1 == first => {
                main_at = self.bo(l);
                self.seal_blocks(st, &mut main, size, new_size, l, last, data)?;
            }
            Some(l) => {
                main_at = self.bo(first);
                self.seal_blocks(st, &mut main, size, new_size, first, last, data)?;
                pre_at = self.bo(l);
                self.seal_blocks(st, &mut pre, size, new_size, l, l, None)?;
                // Old trailer bytes past that block lie in a hole: zero them.
                let spill_end = old_trailer + TRAILER_LEN as u64;
                if spill_end > self.bo(l + 1) {
                    pre.resize(pre.len() + (spill_end - self.bo(l + 1)) as usize, 0);
                }
            }
            None => {
                main_at = self.bo(first);
                self.seal_blocks(st, &mut main, size, new_size, first, last, data)?;
                if growing && old_trailer < main_at {
                    // The old file ended on a block boundary before a gap:
                    // its trailer is in what is now a hole.
                    pre_at = old_trailer;
                    pre.resize(TRAILER_LEN, 0);
                }
            }
        }
        if growing {
            main.extend_from_slice(&self.cipher.seal_trailer(self.layout.block_count(new_size), &mut OsRng));
        }
        let fd = st.fd.as_fd();
        let result = sys::pwrite_all(fd, &main, main_at).and_then(|()| {
            if pre.is_empty() {
                Ok(())
            } else {
                sys::pwrite_all(fd, &pre, pre_at)
            }
        });
        st.ct = main;
        Ok(result?)
    }
}

/// Splits `count` consecutive stored blocks starting at block `k0` (their
/// ciphertext `ct`, `block_size + BLOCK_OVERHEAD` bytes each, and their
/// plaintext `pt`, `block_size` bytes each; the last of both may be short)
/// into runs for [`parallel::run`]: (first block number, ciphertext,
/// plaintext).
fn split_blocks<'a, C, P>(ct: C, pt: P, k0: u64, count: usize, block_size: usize) -> Vec<(u64, C, P)>
where
    C: SplitAt<'a>,
    P: SplitAt<'a>,
{
    let mut out = Vec::new();
    let (mut ct, mut pt) = (ct, pt);
    let runs = parallel::split(count);
    let n = runs.len();
    for (i, (at, len)) in runs.into_iter().enumerate() {
        if i + 1 == n {
            out.push((k0 + at as u64, ct, pt));
            break;
        }
        let (c, c_rest) = ct.split(len * (block_size + BLOCK_OVERHEAD));
        let (p, p_rest) = pt.split(len * block_size);
        out.push((k0 + at as u64, c, p));
        (ct, pt) = (c_rest, p_rest);
    }
    out
}

/// `split_at` for shared and mutable slices alike.
trait SplitAt<'a>: Sized {
    fn split(self, at: usize) -> (Self, Self);
}

impl<'a> SplitAt<'a> for &'a [u8] {
    fn split(self, at: usize) -> (Self, Self) {
        self.split_at(at)
    }
}

impl<'a> SplitAt<'a> for &'a mut [u8] {
    fn split(self, at: usize) -> (Self, Self) {
        self.split_at_mut(at)
    }
}

/// Whether a re-key replaced this (unlinked) file: its magic says so.
fn moved(fd: BorrowedFd<'_>) -> FsResult<bool> {
    let mut magic = [0u8; 8];
    match sys::pread_exact(fd, &mut magic, 0) {
        Ok(()) => Ok(&magic == MOVED_MAGIC),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e.into()),
    }
}
