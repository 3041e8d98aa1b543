//! The mount's behaviour, tested through real FUSE mounts (root and
//! /dev/fuse required). Each test builds a small volume with the format
//! crate (4 KiB blocks, so block edges are easy to hit), mounts it in this
//! process with `prepare` / `mount` / `run` on a thread, and unmounts it when
//! the test ends. Read top to bottom, this is what the mount promises.

// `u64::is_multiple_of` needs Rust 1.87; the workspace's MSRV is 1.80.
#![allow(clippy::manual_is_multiple_of)]

mod common;

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use rand_chacha::rand_core::RngCore;
use tresor_format::{place::parse_diriv, ContentCipher, Header, Role, Volume};
use tresor_mount::{parse_options, prepare, MountError};
// ---- content -------------------------------------------------------------------

#[test]
fn writes_at_random_offsets_read_back_like_a_model_and_the_backing_length_follows() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    let path = m.p("data.bin");
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    let mut model: Vec<u8> = Vec::new();
    let mut r = rng(1);
    let edges = [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK - 28, 3 * BLOCK, 5 * BLOCK + 4000];
    for i in 0..400u64 {
        let off = if i % 3 == 0 { edges[(r.next_u32() as usize) % edges.len()] } else { r.next_u64() % (8 * BLOCK) };
        let len = 1 + (r.next_u64() % (3 * BLOCK)) as usize;
        let data = pattern(i, len);
        f.write_all_at(&data, off).unwrap();
        let end = off as usize + len;
        if model.len() < end {
            model.resize(end, 0);
        }
        model[off as usize..end].copy_from_slice(&data);
        if i % 40 == 0 {
            assert_eq!(read_all(&path), model, "after write {i}");
        }
    }
    assert_eq!(read_all(&path), model);
    let direct = open_direct(&path);
    for _ in 0..100 {
        let off = r.next_u64() % (model.len() as u64 + BLOCK);
        let len = 1 + (r.next_u64() % (2 * BLOCK)) as usize;
        let got = read_at(&direct, off, len).unwrap();
        let from = (off as usize).min(model.len());
        let to = (off as usize + len).min(model.len());
        assert_eq!(got, model[from..to], "read {len} at {off}");
    }
    let backing = vol.backing_path("data.bin");
    assert_eq!(fs::metadata(&backing).unwrap().len(), vol.layout().ciphertext_size(model.len() as u64));
    assert_eq!(fs::metadata(&path).unwrap().len(), model.len() as u64);
}

/// Requests of many blocks are sealed and opened on several threads at
/// once (`parallel.rs`): every block still lands where it belongs, partial
/// first and last blocks included, and a bad block anywhere in a large
/// read fails that read.
#[test]
fn large_requests_split_over_cores_read_and_write_like_a_model() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    let path = m.p("big.bin");
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    let mut model: Vec<u8> = Vec::new();
    // 1 MiB-class writes at unaligned and aligned offsets, growing the file
    // and overwriting inside it.
    for (i, (off, len)) in
        [(0, 300 * BLOCK + 77), (BLOCK / 2, 200 * BLOCK), (150 * BLOCK, 256 * BLOCK), (3, 64 * BLOCK - 5)]
            .into_iter()
            .enumerate()
    {
        let data = pattern(100 + i as u64, len as usize);
        f.write_all_at(&data, off).unwrap();
        let end = (off + len) as usize;
        if model.len() < end {
            model.resize(end, 0);
        }
        model[off as usize..end].copy_from_slice(&data);
    }
    assert_eq!(read_all(&path), model);
    let direct = open_direct(&path);
    for (off, len) in [(0, 256 * BLOCK), (BLOCK + 9, 200 * BLOCK), (100 * BLOCK, 306 * BLOCK + 400), (7, 40 * BLOCK)] {
        let got = read_at(&direct, off, len as usize).unwrap();
        let (from, to) = ((off as usize).min(model.len()), ((off + len) as usize).min(model.len()));
        assert_eq!(got.len(), to - from, "read {len} at {off}: length");
        assert!(got == model[from..to], "read {len} at {off}: content");
    }
    // Every block sealed has a nonce of its own (drawn in bulk per run).
    let backing = vol.backing_path("big.bin");
    let stored = fs::read(&backing).unwrap();
    let blocks = vol.layout().block_count(model.len() as u64);
    let mut nonces: Vec<&[u8]> = (0..blocks).map(|k| &stored[vol.layout().block_offset(k) as usize..][..12]).collect();
    nonces.sort();
    nonces.dedup();
    assert_eq!(nonces.len() as u64, blocks, "a nonce was used twice");
    // A tampered block in the second half of a 1 MiB read fails the read.
    let bf = OpenOptions::new().read(true).write(true).open(&backing).unwrap();
    let at = vol.layout().block_offset(230) + 12 + 7;
    let mut byte = [0u8];
    bf.read_exact_at(&mut byte, at).unwrap();
    bf.write_all_at(&[byte[0] ^ 1], at).unwrap();
    assert!(eio(&read_at(&direct, 0, 256 * BLOCK as usize).unwrap_err()));
    assert_eq!(read_at(&direct, 0, 230 * BLOCK as usize).unwrap(), model[..230 * BLOCK as usize]);
}

/// The descriptors this process holds on `path`.
fn descriptors_on(path: &Path) -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| fs::read_link(e.path()).is_ok_and(|t| t == path))
        .count()
}

/// Reads on one handle that overlap in time (readahead, or threads sharing
/// a descriptor) each get a backing descriptor of their own: internal OFD
/// locks of one description would not exclude each other. Every read
/// returns the right bytes.
#[test]
fn overlapping_reads_on_one_handle_run_on_descriptors_of_their_own() {
    if thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        eprintln!("skipped: one core, one lane per handle");
        return;
    }
    let vol = Vol::new();
    let m = vol.mount("alice");
    let data = Arc::new(pattern(77, 4 << 20));
    fs::write(m.p("f"), &*data).unwrap();
    let backing = fs::canonicalize(vol.backing_path("f")).unwrap();
    let f = Arc::new(open_direct(&m.p("f")));
    // The handle of fs::write goes away asynchronously (release).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while descriptors_on(&backing) != 1 && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(descriptors_on(&backing), 1, "one handle, one descriptor to begin with");
    let start = Arc::new(Barrier::new(4));
    let readers: Vec<_> = (0..4u64)
        .map(|t| {
            let (f, data, start) = (f.clone(), data.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                for round in 0..16u64 {
                    let off = ((t * 5 + round * 3) % 13) * (256 << 10) + t * 4096;
                    let got = read_at(&f, off, 1 << 20).unwrap();
                    let want = &data[(off as usize).min(data.len())..(off as usize + (1 << 20)).min(data.len())];
                    assert!(got == want, "thread {t}, round {round}: {} bytes at {off}", 1 << 20);
                }
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    assert!(descriptors_on(&backing) >= 2, "overlapping reads on one handle got a second descriptor");
}

/// Streaming reads come in requests of up to 1 MiB: a mount run as root
/// raises its readahead window from the kernel's 128 KiB.
#[test]
fn a_mount_run_as_root_reads_ahead_a_full_mebibyte() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: only root may change a mount's readahead");
        return;
    }
    let vol = Vol::new();
    let m = vol.mount("alice");
    let dev = fs::metadata(m.p("")).unwrap().dev();
    let knob = format!("/sys/class/bdi/{}:{}/read_ahead_kb", libc::major(dev), libc::minor(dev));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut kib = String::new();
    while std::time::Instant::now() < deadline {
        kib = fs::read_to_string(&knob).unwrap().trim().to_owned();
        if kib == "1024" {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(kib, "1024", "{knob}");
}

/// Reads run without the internal lock and are redone under it when a
/// block or trailer fails to open: readers racing a writer that rewrites
/// whole blocks (and grows the file) never get EIO and never see a block
/// that is not one whole write.
#[test]
fn reads_racing_a_writer_see_whole_blocks_and_never_eio() {
    let vol = Vol::new();
    let (w, r) = (vol.mount("alice"), vol.mount("alice"));
    const BLOCKS: u64 = 8;
    let block = |gen: u64, k: u64| vec![(gen * 31 + k) as u8 | 1; BLOCK as usize];
    let mut first = Vec::new();
    for k in 0..BLOCKS {
        first.extend(block(0, k));
    }
    fs::write(w.p("f"), &first).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (path, stop) = (w.p("f"), stop.clone());
        thread::spawn(move || {
            let f = OpenOptions::new().write(true).open(path).unwrap();
            let mut gen = 1;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for k in 0..BLOCKS {
                    f.write_all_at(&block(gen, k), k * BLOCK).unwrap();
                }
                // Grow by a block and cut back: the trailer moves.
                f.set_len((BLOCKS + 1) * BLOCK).unwrap();
                f.set_len(BLOCKS * BLOCK).unwrap();
                gen += 1;
            }
            gen
        })
    };
    let readers: Vec<_> = (0..2u64)
        .map(|t| {
            let path = r.p("f");
            thread::spawn(move || -> (u64, Vec<String>) {
                let f = File::open(path).unwrap();
                let (mut reads, mut bad) = (0, Vec::new());
                let deadline = std::time::Instant::now() + Duration::from_secs(3);
                while std::time::Instant::now() < deadline {
                    let k = (reads + t) % BLOCKS;
                    let mut buf = vec![0u8; BLOCK as usize];
                    match f.read_at(&mut buf, k * BLOCK) {
                        Ok(n) if n == BLOCK as usize && buf.iter().all(|&b| b == buf[0] && b & 1 == 1) => {}
                        Ok(n) => bad.push(format!("block {k}: {n} bytes, not one whole write")),
                        Err(e) => bad.push(format!("block {k}: {e}")),
                    }
                    reads += 1;
                }
                (reads, bad)
            })
        })
        .collect();
    let mut problems = Vec::new();
    let mut reads = 0;
    for t in readers {
        let (n, bad) = t.join().unwrap();
        reads += n;
        problems.extend(bad);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let gens = writer.join().unwrap();
    assert!(gens > 2 && reads > 100, "the readers raced the writer ({reads} reads over {gens} rewrites)");
    assert!(
        problems.is_empty(),
        "{} of {reads} reads went wrong: {:?}",
        problems.len(),
        &problems[..problems.len().min(5)]
    );
}

/// An open reads the header and the end of the file without the internal
/// lock (each is a request to the lock server on a parallel file system),
/// like reads: a file whose bytes verify opens and reads while another
/// process holds the lock of the whole file, as a writer on another node
/// does while it grows the file elsewhere. A file whose bytes do not verify
/// is still refused, after the locked retry.
#[test]
fn an_open_of_a_file_that_verifies_takes_no_internal_lock() {
    use std::os::fd::AsFd;
    let vol = Vol::new();
    let m = vol.mount("alice");
    let data = pattern(7, 3 * BLOCK as usize + 100);
    fs::write(m.p("f"), &data).unwrap();
    let holder = OpenOptions::new().read(true).write(true).open(vol.backing_path("f")).unwrap();
    tresor_mount::lock::set(holder.as_fd(), libc::F_WRLCK, tresor_mount::lock::LOCK_BASE, 0, false).unwrap();
    let (done, opened) = std::sync::mpsc::channel();
    let path = m.p("f");
    thread::spawn(move || {
        let _ = done.send(fs::read(path).map_err(|e| e.to_string()));
    });
    let read = opened.recv_timeout(Duration::from_secs(10));
    tresor_mount::lock::set(holder.as_fd(), libc::F_UNLCK, tresor_mount::lock::LOCK_BASE, 0, false).unwrap();
    assert_eq!(read.expect("the open and read finish while the lock is held").unwrap(), data);

    // A header that does not verify: EIO, also with nobody holding a lock.
    let backing = vol.backing_path("f");
    let mut bytes = fs::read(&backing).unwrap();
    bytes[40] ^= 1;
    fs::write(&backing, &bytes).unwrap();
    let err = fs::read(m.p("f")).unwrap_err();
    assert!(eio(&err), "{err}");
}

/// Opens racing a writer that keeps growing and cutting the file (its
/// trailer moves, its length is in flux mid-write) never fail: an end that
/// does not verify without the lock is checked again under it.
#[test]
fn opens_racing_a_writer_that_moves_the_end_never_fail() {
    let vol = Vol::new();
    let (w, r) = (vol.mount("alice"), vol.mount("alice"));
    fs::write(w.p("f"), pattern(1, 2 * BLOCK as usize + 10)).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (path, stop) = (w.p("f"), stop.clone());
        thread::spawn(move || {
            let f = OpenOptions::new().write(true).open(path).unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.set_len(2 * BLOCK + 10 + (n % 3) * BLOCK + n % 7).unwrap();
                n += 1;
            }
            n
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let (mut opens, mut failed) = (0, Vec::new());
    while std::time::Instant::now() < deadline {
        if let Err(e) = File::open(r.p("f")) {
            failed.push(e.to_string());
        }
        opens += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let changes = writer.join().unwrap();
    assert!(changes > 10 && opens > 10, "the opens raced the writer ({opens} opens, {changes} size changes)");
    assert!(failed.is_empty(), "{} of {opens} opens failed: {:?}", failed.len(), &failed[..failed.len().min(5)]);
}

/// A new file appears in the backing directory only whole (header, owner,
/// mode): where the backing file system can make unnamed files (O_TMPFILE;
/// ext4 here) it is made unnamed and linked into place, so no temporary
/// name is ever created, listed by other nodes or left behind by a crash
/// (one back-end request fewer than create, link, unlink). Back ends
/// without them (the GlusterFS and CephFS clients of the shared-storage
/// tests) still use a temporary name.
#[test]
fn new_files_appear_whole_and_never_under_a_temporary_name() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    let path = CString::new(vol.backing.as_os_str().as_bytes()).unwrap();
    // SAFETY: plain inotify calls on a descriptor this test owns.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    assert!(fd >= 0);
    assert!(unsafe { libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_CREATE | libc::IN_MOVED_TO) } >= 0);
    for i in 0..20 {
        fs::write(m.p(&format!("f{i}")), format!("file {i}")).unwrap();
    }
    let mut names = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        let mut at = 0;
        while at < n as usize {
            let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
            let name = &buf[at + 16..at + 16 + len];
            names.push(String::from_utf8_lossy(name.split(|&b| b == 0).next().unwrap()).into_owned());
            at += 16 + len;
        }
    }
    unsafe { libc::close(fd) };
    assert!(names.len() >= 20, "every new file was seen: {names:?}");
    let temporaries: Vec<_> = names.iter().filter(|n| n.starts_with("tresor.tmp.")).collect();
    assert!(temporaries.is_empty(), "made under temporary names: {temporaries:?}");
    for i in 0..20 {
        assert_eq!(fs::read_to_string(m.p(&format!("f{i}"))).unwrap(), format!("file {i}"));
        let st = fs::metadata(vol.backing_path(&format!("f{i}"))).unwrap();
        assert_eq!(st.nlink(), 1);
    }
}

/// An open checks the header and the end of the file; a small file (at
/// most 64 KiB of ciphertext after the header) is read whole for both, one
/// round trip to the object store on a parallel file system instead of two.
/// That one read is checked as the two are: files of every length around
/// the limit open and read back, and one whose trailer or last byte of
/// header does not open is EIO at open.
#[test]
fn small_files_are_checked_at_open_from_one_read_as_large_ones_are() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    let lens = [0, 1, 3901, 15 * BLOCK as usize, 16 * BLOCK as usize - 1, 16 * BLOCK as usize, 17 * BLOCK as usize];
    for (i, &len) in lens.iter().enumerate() {
        fs::write(m.p(&format!("f{i}")), pattern(i as u64, len)).unwrap();
        assert_eq!(fs::read(m.p(&format!("f{i}"))).unwrap(), pattern(i as u64, len), "{len} bytes");
    }
    for (i, &len) in lens.iter().enumerate() {
        let backing = vol.backing_path(&format!("f{i}"));
        let good = fs::read(&backing).unwrap();
        for at in [good.len() - 1, vol.layout().header_len as usize - 1] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            fs::write(&backing, &bad).unwrap();
            let err = File::open(m.p(&format!("f{i}"))).unwrap_err();
            assert!(eio(&err), "{len} bytes, byte {at} flipped: {err}");
        }
        fs::write(&backing, &good).unwrap();
        assert_eq!(fs::read(m.p(&format!("f{i}"))).unwrap(), pattern(i as u64, len), "{len} bytes, restored");
    }
}

/// A shared writable mapping of a file reads and writes its plaintext:
/// what it stores is what read(2) and another mount then see.
#[test]
fn a_shared_mapping_reads_and_writes_the_plaintext() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    let data = pattern(5, 3 * BLOCK as usize + 100);
    fs::write(m.p("mapped"), &data).unwrap();
    let f = OpenOptions::new().read(true).write(true).open(m.p("mapped")).unwrap();
    let len = data.len();
    // SAFETY: a fresh shared mapping of a file this test holds open; only
    // this thread touches it, within its length, and it is unmapped below.
    let map = unsafe {
        libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, f.as_raw_fd(), 0)
    };
    assert_ne!(map, libc::MAP_FAILED, "mmap(MAP_SHARED): {}", std::io::Error::last_os_error());
    let bytes = unsafe { std::slice::from_raw_parts_mut(map.cast::<u8>(), len) };
    assert!(bytes[..] == data[..], "the mapping shows the plaintext");
    bytes[4000..4200].fill(b'm');
    assert_eq!(unsafe { libc::msync(map, len, libc::MS_SYNC) }, 0, "msync: {}", std::io::Error::last_os_error());
    assert_eq!(unsafe { libc::munmap(map, len) }, 0);
    drop(f);
    let mut want = data.clone();
    want[4000..4200].fill(b'm');
    assert!(read_all(&m.p("mapped")) == want, "read(2) sees what the mapping wrote");
    let other = vol.mount("alice");
    assert!(read_all(&other.p("mapped")) == want, "another mount reads it from the backing file");
}

#[test]
fn appends_land_at_the_end_even_from_two_mounts() {
    let vol = Vol::new();
    let (a, b) = (vol.mount("alice"), vol.mount("alice"));
    File::create(a.p("log")).unwrap();
    let records = |tag: u8| (0..150u32).map(move |i| format!("{}{i:05}|{}\n", tag as char, "x".repeat(37)));
    let writer = |mnt: PathBuf, tag: u8| {
        thread::spawn(move || {
            let mut f = OpenOptions::new().append(true).open(mnt.join("log")).unwrap();
            for rec in records(tag) {
                f.write_all(rec.as_bytes()).unwrap();
            }
        })
    };
    let (ta, tb) = (writer(a.mp.clone(), b'A'), writer(b.mp.clone(), b'B'));
    ta.join().unwrap();
    tb.join().unwrap();
    let text = String::from_utf8(read_all(&a.p("log"))).unwrap();
    if text.len() != 300 * 45 || text.lines().any(|l| l.len() != 44) {
        for (i, l) in text.lines().enumerate() {
            if l.len() != 44 || !(l.starts_with('A') || l.starts_with('B')) {
                eprintln!("DEBUG line {i} at byte {}: {l:?}", text.lines().take(i).map(|l| l.len() + 1).sum::<usize>());
            }
        }
        eprintln!("DEBUG total {}", text.len());
    }
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 300, "no append overwrote another");
    lines.sort();
    let mut expected: Vec<String> = records(b'A').chain(records(b'B')).map(|s| s.trim_end().to_owned()).collect();
    expected.sort();
    assert_eq!(lines, expected);
}

#[test]
fn truncate_down_and_up_reads_zeros_and_the_backing_file_stays_sparse() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    let path = m.p("t");
    let data = pattern(3, 5 * BLOCK as usize + 123);
    fs::write(&path, &data).unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&path).unwrap();

    f.set_len(2 * BLOCK + 7).unwrap();
    assert_eq!(read_all(&path), data[..2 * BLOCK as usize + 7]);
    f.set_len(2 * BLOCK).unwrap();
    assert_eq!(read_all(&path), data[..2 * BLOCK as usize]);

    // Up by a little (inside the next block), then by a lot.
    f.set_len(2 * BLOCK + 100).unwrap();
    let mut model = data[..2 * BLOCK as usize].to_vec();
    model.resize(2 * BLOCK as usize + 100, 0);
    assert_eq!(read_all(&path), model);
    let big = 200 << 20;
    f.set_len(big).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), big);
    let direct = open_direct(&path);
    assert_eq!(
        read_at(&direct, 2 * BLOCK, 200).unwrap(),
        model[2 * BLOCK as usize..].iter().copied().chain(std::iter::repeat(0)).take(200).collect::<Vec<_>>()
    );
    assert_eq!(read_at(&direct, big / 2, 10000).unwrap(), vec![0u8; 10000], "the middle is a hole");
    assert_eq!(read_at(&direct, big - 5000, 10000).unwrap(), vec![0u8; 5000], "the tail is sealed zeros");
    let backing = fs::metadata(vol.backing_path("t")).unwrap();
    assert_eq!(backing.len(), vol.layout().ciphertext_size(big));
    assert!(backing.blocks() * 512 < 1 << 20, "200 MiB of holes use {} bytes", backing.blocks() * 512);

    // A write far past the end leaves the gap as holes too.
    f.set_len(3).unwrap();
    f.write_all_at(b"end", 100 << 20).unwrap();
    let direct = open_direct(&path);
    assert_eq!(read_at(&direct, 0, 8).unwrap(), [&data[..3], &[0u8; 5][..]].concat());
    assert_eq!(read_at(&direct, (100 << 20) - 2, 10).unwrap(), b"\0\0end");
    assert!(fs::metadata(vol.backing_path("t")).unwrap().blocks() * 512 < 1 << 20);

    f.set_len(0).unwrap();
    assert_eq!(read_all(&path), b"");
    assert_eq!(fs::metadata(vol.backing_path("t")).unwrap().len(), vol.layout().ciphertext_size(0));
}

// ---- names and the tree -------------------------------------------------------------

#[test]
fn renames_replace_move_across_directories_and_move_whole_directories() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    fs::create_dir_all(m.p("a/deep")).unwrap();
    fs::create_dir(m.p("b")).unwrap();
    fs::write(m.p("a/one"), b"one").unwrap();
    fs::write(m.p("a/two"), b"two").unwrap();
    fs::write(m.p("a/deep/leaf"), b"leaf").unwrap();

    fs::rename(m.p("a/one"), m.p("a/two")).unwrap();
    assert_eq!(fs::read(m.p("a/two")).unwrap(), b"one");
    assert!(!m.p("a/one").exists());

    fs::rename(m.p("a/two"), m.p("b/moved")).unwrap();
    assert_eq!(fs::read(m.p("b/moved")).unwrap(), b"one");

    fs::rename(m.p("a/deep"), m.p("b/deep2")).unwrap();
    assert_eq!(fs::read(m.p("b/deep2/leaf")).unwrap(), b"leaf", "a directory's entries move with it");

    // Onto an empty directory: replaced. Onto a non-empty one: ENOTEMPTY.
    fs::create_dir(m.p("empty")).unwrap();
    fs::rename(m.p("b/deep2"), m.p("empty")).unwrap();
    assert_eq!(fs::read(m.p("empty/leaf")).unwrap(), b"leaf");
    fs::create_dir(m.p("c")).unwrap();
    let err = fs::rename(m.p("c"), m.p("empty")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTEMPTY));

    // renameat2 flags.
    fs::write(m.p("x"), b"x").unwrap();
    fs::write(m.p("y"), b"y").unwrap();
    let (cx, cy) = (
        CString::new(m.p("x").as_os_str().as_bytes()).unwrap(),
        CString::new(m.p("y").as_os_str().as_bytes()).unwrap(),
    );
    let renameat2 =
        |flags: u32| unsafe { libc::renameat2(libc::AT_FDCWD, cx.as_ptr(), libc::AT_FDCWD, cy.as_ptr(), flags) };
    assert_eq!(renameat2(libc::RENAME_NOREPLACE), -1);
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EEXIST));
    assert_eq!(renameat2(libc::RENAME_EXCHANGE), 0);
    assert_eq!((fs::read(m.p("x")).unwrap(), fs::read(m.p("y")).unwrap()), (b"y".to_vec(), b"x".to_vec()));

    let mut names: Vec<String> =
        fs::read_dir(m.p("")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c", "empty", "x", "y"]);
}

#[test]
fn mkdir_and_rmdir_behave_like_a_local_file_system() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    fs::create_dir(m.p("d")).unwrap();
    assert_eq!(fs::create_dir(m.p("d")).unwrap_err().kind(), ErrorKind::AlreadyExists);
    assert_eq!(fs::read_dir(m.p("d")).unwrap().count(), 0, "the IV is not shown");
    fs::write(m.p("d/f"), b"f").unwrap();
    assert_eq!(fs::remove_dir(m.p("d")).unwrap_err().raw_os_error(), Some(libc::ENOTEMPTY));
    assert!(m.p("d/f").exists(), "a refused rmdir leaves everything in place");
    assert_eq!(fs::read(m.p("d/f")).unwrap(), b"f");
    fs::remove_file(m.p("d/f")).unwrap();
    fs::remove_dir(m.p("d")).unwrap();
    assert!(!m.p("d").exists());
    assert_eq!(vol.listing(), ["tresor.diriv", "tresor.volume"], "nothing left behind");

    fs::create_dir(m.p("modes")).unwrap();
    fs::set_permissions(m.p("modes"), fs::Permissions::from_mode(0o750)).unwrap();
    assert_eq!(fs::metadata(m.p("modes")).unwrap().mode() & 0o7777, 0o750);
    assert_eq!(fs::metadata(vol.backing_path("modes").join("tresor.diriv")).unwrap().len(), 48);
}

#[test]
fn a_symlink_holds_a_4095_byte_target() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    let long: String = (0..4095).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    std::os::unix::fs::symlink(&long, m.p("long")).unwrap();
    std::os::unix::fs::symlink("../data/cohort.csv", m.p("short")).unwrap();
    assert_eq!(fs::read_link(m.p("long")).unwrap().as_os_str().as_bytes(), long.as_bytes());
    assert_eq!(fs::read_link(m.p("short")).unwrap(), Path::new("../data/cohort.csv"));
    assert_eq!(fs::symlink_metadata(m.p("long")).unwrap().len(), 4095);
    assert_eq!(fs::symlink_metadata(m.p("short")).unwrap().len(), 18);
    // Moved into another directory, the long target comes along.
    fs::create_dir(m.p("d")).unwrap();
    fs::rename(m.p("long"), m.p("d/long")).unwrap();
    assert_eq!(fs::read_link(m.p("d/long")).unwrap().as_os_str().as_bytes(), long.as_bytes());
    fs::remove_file(m.p("d/long")).unwrap();
    fs::remove_file(m.p("short")).unwrap();
    fs::remove_dir(m.p("d")).unwrap();
    assert_eq!(vol.listing(), ["tresor.diriv", "tresor.volume"], "target sidecars are removed with their links");
}

#[test]
fn hard_links_are_one_inode_with_two_names() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    fs::create_dir(m.p("d")).unwrap();
    fs::write(m.p("orig"), b"shared content").unwrap();
    fs::hard_link(m.p("orig"), m.p("d/link")).unwrap();
    let (a, b) = (fs::metadata(m.p("orig")).unwrap(), fs::metadata(m.p("d/link")).unwrap());
    assert_eq!(a.ino(), b.ino());
    assert_eq!((a.nlink(), b.nlink()), (2, 2));
    fs::write(m.p("d/link"), b"changed through the link").unwrap();
    assert_eq!(fs::read(m.p("orig")).unwrap(), b"changed through the link");
    fs::remove_file(m.p("orig")).unwrap();
    assert_eq!(fs::metadata(m.p("d/link")).unwrap().nlink(), 1);
    assert_eq!(fs::read(m.p("d/link")).unwrap(), b"changed through the link");
}

#[test]
fn a_file_unlinked_while_open_stays_usable_through_its_descriptor() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(m.p("tmp")).unwrap();
    f.write_all_at(b"before", 0).unwrap();
    fs::remove_file(m.p("tmp")).unwrap();
    f.write_all_at(b" and after", 6).unwrap();
    assert_eq!(read_at(&f, 0, 100).unwrap(), b"before and after");
    assert_eq!(f.metadata().unwrap().len(), 16);
    f.set_len(6).unwrap();
    f.set_permissions(fs::Permissions::from_mode(0o600)).unwrap();
    let meta = f.metadata().unwrap();
    assert_eq!((meta.len(), meta.mode() & 0o777, meta.nlink()), (6, 0o600, 0));
}

#[test]
fn names_up_to_255_bytes_work() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    let long = "é".repeat(127) + "x"; // 255 bytes
    assert_eq!(long.len(), 255);
    fs::write(m.p(&long), b"long name").unwrap();
    fs::create_dir(m.p(&("d".repeat(200)))).unwrap();
    let names: Vec<String> =
        fs::read_dir(m.p("")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.contains(&long) && names.contains(&"d".repeat(200)), "{names:?}");
    assert_eq!(fs::read(m.p(&long)).unwrap(), b"long name");
    fs::rename(m.p(&long), m.p(&("r".repeat(255)))).unwrap();
    assert_eq!(fs::read(m.p(&("r".repeat(255)))).unwrap(), b"long name");
    let too_long = "z".repeat(256);
    assert_eq!(fs::write(m.p(&too_long), b"").unwrap_err().raw_os_error(), Some(libc::ENAMETOOLONG));
    fs::remove_file(m.p(&("r".repeat(255)))).unwrap();
    fs::remove_dir(m.p(&("d".repeat(200)))).unwrap();
    assert_eq!(vol.listing(), ["tresor.diriv", "tresor.volume"], "name sidecars go with their entries");
}

#[test]
fn a_directory_of_10000_entries_lists_completely() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    fs::create_dir(m.p("many")).unwrap();
    let n = 10_000;
    let makers: Vec<_> = (0..2)
        .map(|t| {
            let dir = m.p("many");
            thread::spawn(move || {
                for i in (t..n).step_by(2) {
                    File::create(dir.join(format!("file-{i:05}"))).unwrap();
                }
            })
        })
        .collect();
    for t in makers {
        t.join().unwrap();
    }
    let start = std::time::Instant::now();
    let mut names: Vec<String> =
        fs::read_dir(m.p("many")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    let took = start.elapsed();
    names.sort();
    let expected: Vec<String> = (0..n).map(|i| format!("file-{i:05}")).collect();
    assert_eq!(names, expected);
    assert!(took < Duration::from_secs(5), "listing took {took:?}");
}

#[test]
fn chmod_chown_and_utimens_reach_the_backing_entry() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    let path = m.p("f");
    fs::write(&path, b"x").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(&path, Some(1234), Some(5678)).unwrap();
    let when = UNIX_EPOCH + Duration::new(1_600_000_000, 123_456_789);
    File::options().write(true).open(&path).unwrap().set_modified(when).unwrap();
    for meta in [fs::metadata(&path).unwrap(), fs::metadata(vol.backing_path("f")).unwrap()] {
        assert_eq!(meta.mode() & 0o7777, 0o640);
        assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
        assert_eq!(meta.modified().unwrap(), when);
    }
    std::os::unix::fs::symlink("target", m.p("l")).unwrap();
    std::os::unix::fs::lchown(m.p("l"), Some(42), Some(43)).unwrap();
    assert_eq!(fs::symlink_metadata(m.p("l")).unwrap().uid(), 42);
    assert_eq!(fs::symlink_metadata(&path).unwrap().len(), 1);
}

fn cpath(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let name = std::ffi::CString::new(name).unwrap();
    let r = unsafe { libc::setxattr(cpath(p).as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn get_xattr(p: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let name = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = unsafe { libc::getxattr(cpath(p).as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

fn list_xattr(p: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    let n = unsafe { libc::listxattr(cpath(p).as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 0, "{}", std::io::Error::last_os_error());
    buf.truncate(n as usize);
    buf.split(|&b| b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

#[test]
fn user_xattrs_round_trip_and_are_stored_encrypted() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    fs::write(m.p("f"), b"x").unwrap();
    fs::create_dir(m.p("d")).unwrap();
    for p in [m.p("f"), m.p("d")] {
        set_xattr(&p, "user.provenance", b"ethics ref 17/NW/0042").unwrap();
        set_xattr(&p, "user.empty", b"").unwrap();
        assert_eq!(get_xattr(&p, "user.provenance").unwrap(), b"ethics ref 17/NW/0042");
        assert_eq!(get_xattr(&p, "user.empty").unwrap(), b"");
        let mut names = list_xattr(&p);
        names.sort();
        assert_eq!(names, ["user.empty", "user.provenance"]);
        assert_eq!(get_xattr(&p, "user.missing").unwrap_err().raw_os_error(), Some(libc::ENODATA));
        assert_eq!(set_xattr(&p, "trusted.other", b"1").unwrap_err().raw_os_error(), Some(libc::ENOTSUP));
    }
    // On the backing file: neither the name nor the value in the clear.
    let backing = vol.backing_path("f");
    let raw = list_xattr(&backing);
    assert!(raw.iter().all(|n| n.starts_with("user.tresor.")), "{raw:?}");
    for n in &raw {
        let v = get_xattr(&backing, n).unwrap();
        assert!(!v.windows(6).any(|w| w == b"ethics"), "value stored in the clear");
    }
    // Other namespaces are never read from the backing file: one set there
    // directly reads as absent, as does the `security.capability` the
    // kernel asks for before each write.
    set_xattr(&backing, "trusted.planted", b"1").unwrap();
    for name in ["trusted.planted", "security.capability"] {
        assert_eq!(get_xattr(&m.p("f"), name).unwrap_err().raw_os_error(), Some(libc::ENODATA), "{name}");
    }
    // Removing one leaves the other.
    let name = std::ffi::CString::new("user.empty").unwrap();
    assert_eq!(unsafe { libc::removexattr(cpath(&m.p("f")).as_ptr(), name.as_ptr()) }, 0);
    assert_eq!(list_xattr(&m.p("f")), ["user.provenance"]);
}

// ---- access and integrity -------------------------------------------------------------

/// Writes a file straight into the backing root with the format crate,
/// readable by `recipients` only.
fn plant_file(vol: &Vol, name: &str, recipients: &[&str], content: &[u8]) -> PathBuf {
    let publics: Vec<_> = recipients.iter().map(|r| *identity(r).public()).collect();
    let (header, key) = Header::create(&vol.volume, &identity("alice"), &publics, 1, &mut rng(11)).unwrap();
    let p = vol.volume.params;
    let cipher = tresor_format::ContentCipher::new(p.suite, &key, &header.file_id, p.block_size);
    let mut bytes = header.to_bytes().unwrap();
    bytes.extend(cipher.seal_content(content, &mut rng(12)));
    let path = vol.backing_path(name);
    fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn a_file_without_our_stanza_is_listed_with_its_size_but_does_not_open() {
    let vol = Vol::new();
    plant_file(&vol, "bobs-only", &["bob"], &pattern(4, 10_000));
    let m = vol.mount("alice");
    let names: Vec<_> = fs::read_dir(m.p("")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["bobs-only"]);
    assert_eq!(fs::metadata(m.p("bobs-only")).unwrap().len(), 10_000);
    assert_eq!(File::open(m.p("bobs-only")).unwrap_err().kind(), ErrorKind::PermissionDenied);
    // Bob reads it.
    let b = vol.mount("bob");
    assert_eq!(read_all(&b.p("bobs-only")), pattern(4, 10_000));
}

#[test]
fn a_tampered_block_fails_with_eio_for_its_range_only() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    let data = pattern(5, 5 * BLOCK as usize);
    fs::write(m.p("f"), &data).unwrap();
    let backing = vol.backing_path("f");
    let bf = OpenOptions::new().read(true).write(true).open(&backing).unwrap();
    let at = vol.layout().block_offset(2) + 12 + 100;
    let mut byte = [0u8];
    bf.read_exact_at(&mut byte, at).unwrap();
    bf.write_all_at(&[byte[0] ^ 1], at).unwrap();

    let f = open_direct(&m.p("f"));
    assert_eq!(read_at(&f, 0, 2 * BLOCK as usize).unwrap(), data[..2 * BLOCK as usize]);
    assert!(eio(&read_at(&f, 2 * BLOCK, BLOCK as usize).unwrap_err()));
    assert!(eio(&read_at(&f, 2 * BLOCK + 10, 10).unwrap_err()));
    assert!(eio(&read_at(&f, BLOCK, 2 * BLOCK as usize).unwrap_err()), "a range touching the block fails whole");
    assert_eq!(read_at(&f, 3 * BLOCK, 2 * BLOCK as usize).unwrap(), data[3 * BLOCK as usize..]);
    // Through the page cache too: readahead may hit the bad block, the
    // pages asked for still read.
    let buffered = File::open(m.p("f")).unwrap();
    assert_eq!(read_at(&buffered, 0, 100).unwrap(), data[..100]);
    assert_eq!(read_at(&buffered, 4 * BLOCK, 100).unwrap(), data[4 * BLOCK as usize..][..100]);
    // A write into the bad block is refused (never re-seals garbage).
    let w = OpenOptions::new().write(true).open(m.p("f")).unwrap();
    assert!(eio(&w.write_at(b"zz", 2 * BLOCK + 5).unwrap_err()));
}

#[test]
fn a_zeroed_last_block_is_not_read_as_a_hole() {
    // Inner all-zero blocks are holes; the last block is always sealed, so
    // zeroing it on the storage must give EIO, not a tail of zeros.
    let vol = Vol::new();
    let m = vol.mount("alice");
    let data = pattern(7, 3 * BLOCK as usize);
    fs::write(m.p("f"), &data).unwrap();
    let layout = vol.layout();
    let bf = OpenOptions::new().write(true).open(vol.backing_path("f")).unwrap();
    bf.write_all_at(&vec![0u8; BLOCK as usize + 28], layout.block_offset(2)).unwrap();
    let f = open_direct(&m.p("f"));
    assert_eq!(read_at(&f, 0, BLOCK as usize).unwrap(), data[..BLOCK as usize]);
    assert!(eio(&read_at(&f, 2 * BLOCK, BLOCK as usize).unwrap_err()), "a zeroed last block read as zeros");
    let w = OpenOptions::new().write(true).open(m.p("f")).unwrap();
    assert!(eio(&w.write_at(b"x", 2 * BLOCK + 5).unwrap_err()), "read-modify-write over it must fail too");
}

#[test]
fn truncating_into_a_sparse_region_leaves_a_readable_sealed_tail() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(m.p("sparse")).unwrap();
    f.write_all_at(b"end", 10 * BLOCK).unwrap(); // blocks 0..10 are holes
    f.set_len(4 * BLOCK).unwrap(); // the new last block, 3, was a hole
    drop(f);
    assert_eq!(read_all(&m.p("sparse")), vec![0u8; 4 * BLOCK as usize]);
    let layout = vol.layout();
    let mut last = vec![0u8; BLOCK as usize + 28];
    File::open(vol.backing_path("sparse")).unwrap().read_exact_at(&mut last, layout.block_offset(3)).unwrap();
    assert!(last.iter().any(|&b| b != 0), "the last block must be sealed, never a hole");
}

#[test]
fn a_file_cut_at_a_block_boundary_fails_with_eio_at_open_and_on_its_tail() {
    let vol = Vol::new();
    let m = vol.mount("alice");
    let data = pattern(6, 4 * BLOCK as usize);
    fs::write(m.p("cut"), &data).unwrap();
    fs::write(m.p("moved-trailer"), &data).unwrap();
    let layout = vol.layout();
    // Handles opened before the damage.
    let early: Vec<File> = ["cut", "moved-trailer"].iter().map(|n| open_direct(&m.p(n))).collect();
    let writers: Vec<File> =
        ["cut", "moved-trailer"].iter().map(|n| OpenOptions::new().write(true).open(m.p(n)).unwrap()).collect();

    // Drop the last block; 28 bytes of it now stand where a trailer goes.
    let backing = vol.backing_path("cut");
    OpenOptions::new().write(true).open(&backing).unwrap().set_len(layout.block_offset(3) + 28).unwrap();
    // Drop the last block and move the old trailer up: it counts 4 blocks.
    let backing2 = vol.backing_path("moved-trailer");
    let bf = OpenOptions::new().read(true).write(true).open(&backing2).unwrap();
    let mut trailer = [0u8; 28];
    bf.read_exact_at(&mut trailer, layout.trailer_offset(4 * BLOCK)).unwrap();
    bf.write_all_at(&trailer, layout.block_offset(3)).unwrap();
    bf.set_len(layout.block_offset(3) + 28).unwrap();

    for ((name, f), w) in ["cut", "moved-trailer"].into_iter().zip(&early).zip(&writers) {
        assert_eq!(fs::metadata(m.p(name)).unwrap().len(), 3 * BLOCK, "{name}: a valid length");
        // A new open checks the end first.
        assert!(eio(&File::open(m.p(name)).unwrap_err()), "{name}: opened");
        assert!(eio(&OpenOptions::new().write(true).open(m.p(name)).unwrap_err()), "{name}: opened for writing");
        // A handle from before reads the intact blocks, never past the cut.
        assert_eq!(read_at(f, 0, BLOCK as usize).unwrap(), data[..BLOCK as usize], "{name}");
        assert!(eio(&read_at(f, 2 * BLOCK, BLOCK as usize).unwrap_err()), "{name}: the tail");
        assert!(eio(&read_at(f, 2 * BLOCK, 2 * BLOCK as usize).unwrap_err()), "{name}: a read to the end");
        assert!(eio(&w.write_at(b"more", 3 * BLOCK).unwrap_err()), "{name}: not extended over the cut");
    }
}

#[test]
fn a_symlink_planted_in_the_backing_tree_is_never_followed() {
    let vol = Vol::new();
    // With attributes cached, the kernel does not re-check the directory
    // before sending a create: the mount must not trust the path.
    let mp = vol.new_mountpoint();
    let mut config = vol.config("alice", &mp);
    parse_options("cache_timeout=60", &mut config).unwrap();
    let m = Mnt::start(config).unwrap();
    fs::create_dir_all(m.p("d/e")).unwrap();
    // A process holds the plaintext directory open: operations relative to
    // it reach the mount by node id, with no fresh lookup of the path.
    let held = File::open(m.p("d/e")).unwrap();
    // The storage operator moves the real directory away and puts a
    // symlink to a directory outside the volume in its place.
    let outside = vol.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let e_backing = vol.backing_path("d/e");
    let e_name = e_backing.file_name().unwrap().to_owned();
    fs::create_dir(outside.join(&e_name)).unwrap();
    fs::copy(e_backing.join("tresor.diriv"), outside.join(&e_name).join("tresor.diriv")).unwrap();
    let d_backing = vol.backing_path("d");
    fs::rename(&d_backing, vol.backing.join("moved-away")).unwrap();
    std::os::unix::fs::symlink(&outside, &d_backing).unwrap();

    let at = |name: &str| CString::new(name).unwrap();
    let fd = held.as_raw_fd();
    let created = unsafe { libc::openat(fd, at("new").as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644) };
    if created >= 0 {
        unsafe { libc::close(created) };
    }
    assert_eq!(created, -1, "create through the symlink refused");
    assert_eq!(unsafe { libc::mkdirat(fd, at("sub").as_ptr(), 0o755) }, -1, "mkdir through the symlink refused");
    let before = walk(&outside);
    assert_eq!(before.len(), 2, "nothing was created outside the volume: {before:?}");
}

// ---- shared storage ----------------------------------------------------------------------

#[test]
fn two_mounts_writing_interleaved_regions_of_one_file_never_corrupt_it() {
    let vol = Vol::new();
    let (a, b) = (vol.mount("alice"), vol.mount("alice"));
    File::create(a.p("shared")).unwrap();
    // Regions of 1000 bytes alternate between the two nodes, so every 4 KiB
    // block is read-modified-written by both, and the file grows from both.
    const CHUNK: u64 = 1000;
    const ROUNDS: u64 = 300;
    // Both nodes write into the same block at the same moment, every round.
    let barrier = Arc::new(Barrier::new(2));
    let writer = |mnt: PathBuf, which: u64, barrier: Arc<Barrier>| {
        thread::spawn(move || -> Result<(), String> {
            // O_DIRECT: each write(2) is one request to the mount (through
            // the page cache the kernel may split it at page boundaries,
            // and a reader could see the halves at different times).
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(mnt.join("shared"))
                .unwrap();
            let mut result = Ok(());
            for i in 0..ROUNDS {
                barrier.wait(); // (keeps meeting the other writer even after an error)
                                // Out of order, so that writes land beyond the end too.
                let i = (i * 7919) % ROUNDS;
                let off = (2 * i + which) * CHUNK;
                if result.is_ok() {
                    result = f
                        .write_all_at(&pattern(2 * i + which, CHUNK as usize), off)
                        .map_err(|e| format!("write at {off}: {e}"));
                }
            }
            result
        })
    };
    let reader = {
        let mnt = b.mp.clone();
        thread::spawn(move || {
            let f = open_direct(&mnt.join("shared"));
            for i in 0..200 {
                let off = (i * 3 * CHUNK) % (2 * ROUNDS * CHUNK);
                // Never EIO, never a half-written block: zeros or the data.
                let got = read_at(&f, off, CHUNK as usize).unwrap_or_else(|e| panic!("read at {off}: {e}"));
                let expected = pattern(off / CHUNK, CHUNK as usize);
                assert!(got.iter().all(|&x| x == 0) || got == expected[..got.len()], "torn read at {off}");
            }
        })
    };
    let (ta, tb) = (writer(a.mp.clone(), 0, barrier.clone()), writer(b.mp.clone(), 1, barrier));
    ta.join().unwrap().unwrap();
    tb.join().unwrap().unwrap();
    reader.join().unwrap();
    let expected: Vec<u8> = (0..2 * ROUNDS).flat_map(|i| pattern(i, CHUNK as usize)).collect();
    assert_eq!(read_all(&a.p("shared")), expected);
    assert_eq!(read_all(&b.p("shared")), expected);
}

#[test]
fn racing_mkdirs_on_two_mounts_make_one_directory_that_always_has_its_iv() {
    let vol = Vol::new();
    let (a, b) = (vol.mount("alice"), vol.mount("alice"));
    let n = 60;
    let barrier = Arc::new(Barrier::new(2));
    let racer = |mnt: PathBuf, barrier: Arc<Barrier>| {
        thread::spawn(move || {
            let mut won = 0;
            for i in 0..n {
                barrier.wait();
                match fs::create_dir(mnt.join(format!("d{i}"))) {
                    Ok(()) => won += 1,
                    Err(e) => assert_eq!(e.kind(), ErrorKind::AlreadyExists),
                }
                // Use it at once: never a directory without its IV.
                File::create(mnt.join(format!("d{i}/from-{}", mnt.file_name().unwrap().to_str().unwrap()))).unwrap();
            }
            won
        })
    };
    let (ta, tb) = (racer(a.mp.clone(), barrier.clone()), racer(b.mp.clone(), barrier));
    assert_eq!(ta.join().unwrap() + tb.join().unwrap(), n, "each mkdir won exactly once");
    for i in 0..n {
        assert_eq!(fs::read_dir(a.p(&format!("d{i}"))).unwrap().count(), 2);
        assert_eq!(fs::read(vol.backing_path(&format!("d{i}")).join("tresor.diriv")).unwrap().len(), 48);
    }
    assert!(!vol.listing().iter().any(|p| p.contains("tresor.tmp.")), "no temporary entries left");
}

#[test]
fn posix_locks_are_seen_across_mounts_and_never_block_the_mounts_own_io() {
    let vol = Vol::new();
    let (a, b) = (vol.mount("alice"), vol.mount("alice"));
    fs::write(a.p("locked"), pattern(9, 3 * BLOCK as usize)).unwrap();
    let fa = OpenOptions::new().read(true).write(true).open(a.p("locked")).unwrap();
    let fb = OpenOptions::new().read(true).write(true).open(b.p("locked")).unwrap();
    let lock = |f: &File, typ: i32, start: i64, len: i64, cmd: i32| {
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = typ as i16;
        fl.l_whence = libc::SEEK_SET as i16;
        fl.l_start = start;
        fl.l_len = len;
        let r = unsafe { libc::fcntl(f.as_raw_fd(), cmd, &mut fl) };
        (r, fl)
    };
    // A whole-file write lock on node A...
    assert_eq!(lock(&fa, libc::F_WRLCK, 0, 0, libc::F_OFD_SETLK).0, 0);
    // ...is seen on node B,
    let (r, fl) = lock(&fb, libc::F_WRLCK, 100, 10, libc::F_OFD_GETLK);
    assert_eq!((r, fl.l_type as i32), (0, libc::F_WRLCK));
    assert_eq!(lock(&fb, libc::F_RDLCK, 100, 10, libc::F_OFD_SETLK).0, -1);
    // ...and does not stop either node's reads and writes (internal locks
    // live elsewhere).
    fb.write_all_at(b"still writable", 10).unwrap();
    fa.write_all_at(b"and here", 5000).unwrap();
    assert_eq!(read_at(&fb, 10, 14).unwrap(), b"still writable");
    // A blocking lock on B waits for A's unlock.
    let waiter = {
        let fb = fb.try_clone().unwrap();
        thread::spawn(move || {
            let mut fl: libc::flock = unsafe { std::mem::zeroed() };
            fl.l_type = libc::F_WRLCK as i16;
            fl.l_whence = libc::SEEK_SET as i16;
            let t = std::time::Instant::now();
            assert_eq!(unsafe { libc::fcntl(fb.as_raw_fd(), libc::F_OFD_SETLKW, &mut fl) }, 0);
            t.elapsed()
        })
    };
    thread::sleep(Duration::from_millis(300));
    fs::metadata(a.p("locked")).unwrap(); // the mount still serves while B waits
    assert_eq!(lock(&fa, libc::F_UNLCK, 0, 0, libc::F_OFD_SETLK).0, 0);
    assert!(waiter.join().unwrap() >= Duration::from_millis(250));
    drop(fb);
    // Closing B's descriptor released its lock: A can lock again (OFD locks
    // go when the kernel releases the handle, which it does just after
    // close returns).
    let t = std::time::Instant::now();
    while lock(&fa, libc::F_WRLCK, 0, 0, libc::F_OFD_SETLK).0 != 0 {
        assert!(t.elapsed() < Duration::from_secs(2), "B's OFD lock outlived its descriptor");
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(lock(&fa, libc::F_UNLCK, 0, 0, libc::F_OFD_SETLK).0, 0);
    // Classic POSIX locks belong to the process and go with any close of
    // the file, before close returns.
    let fb = OpenOptions::new().read(true).write(true).open(b.p("locked")).unwrap();
    assert_eq!(lock(&fb, libc::F_WRLCK, 0, 100, libc::F_SETLK).0, 0);
    assert_eq!(lock(&fa, libc::F_WRLCK, 50, 10, libc::F_OFD_SETLK).0, -1, "seen from the other node");
    drop(fb);
    assert_eq!(lock(&fa, libc::F_WRLCK, 50, 10, libc::F_OFD_SETLK).0, 0);
}

#[test]
fn flock_locks_are_seen_across_mounts_and_belong_to_the_open_file() {
    let vol = Vol::new();
    let (a, b) = (vol.mount("alice"), vol.mount("alice"));
    fs::write(a.p("flocked"), b"x").unwrap();
    let open = |m: &Mnt| OpenOptions::new().read(true).write(true).open(m.p("flocked")).unwrap();
    let flock = |f: &File, op: i32| {
        let r = unsafe { libc::flock(f.as_raw_fd(), op) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error().raw_os_error())
        }
    };
    let (fa, fb) = (open(&a), open(&b));
    // An exclusive flock on node A holds off node B, shared or exclusive.
    flock(&fa, libc::LOCK_EX).unwrap();
    assert_eq!(flock(&fb, libc::LOCK_SH | libc::LOCK_NB), Err(Some(libc::EWOULDBLOCK)));
    // flock locks belong to the open file: a second open on the same node
    // conflicts too, a duplicate of the holder's descriptor does not.
    assert_eq!(flock(&open(&a), libc::LOCK_EX | libc::LOCK_NB), Err(Some(libc::EWOULDBLOCK)));
    let dup = fa.try_clone().unwrap();
    flock(&dup, libc::LOCK_EX | libc::LOCK_NB).unwrap();
    // Closing a duplicate keeps the lock (unlike a POSIX lock)...
    drop(dup);
    thread::sleep(Duration::from_millis(100));
    assert_eq!(flock(&fb, libc::LOCK_EX | libc::LOCK_NB), Err(Some(libc::EWOULDBLOCK)));
    // ...and a blocking flock on B waits until A unlocks.
    let waiter = {
        let fb = fb.try_clone().unwrap();
        thread::spawn(move || {
            let t = std::time::Instant::now();
            assert_eq!(unsafe { libc::flock(fb.as_raw_fd(), libc::LOCK_EX) }, 0);
            t.elapsed()
        })
    };
    thread::sleep(Duration::from_millis(300));
    fs::metadata(a.p("flocked")).unwrap(); // the mount still serves while B waits
    flock(&fa, libc::LOCK_UN).unwrap();
    assert!(waiter.join().unwrap() >= Duration::from_millis(250));
    // Closing the last descriptor of B's open file releases its lock.
    drop(fb);
    let t = std::time::Instant::now();
    while flock(&fa, libc::LOCK_EX | libc::LOCK_NB).is_err() {
        assert!(t.elapsed() < Duration::from_secs(2), "B's flock outlived its open file");
        thread::sleep(Duration::from_millis(5));
    }
}

// ---- policies and the registry ---------------------------------------------------------------

/// Signs `v` as alice, writes it, and waits for the mounts to reload it.
fn publish(vol: &Vol, v: &mut Volume) {
    v.sign(&identity("alice")).unwrap();
    fs::write(vol.backing.join("tresor.volume"), v.to_bytes()).unwrap();
    thread::sleep(Duration::from_millis(1100));
}

#[test]
fn files_created_under_a_policy_are_readable_by_its_default_recipients() {
    let vol = Vol::new();
    let a = vol.mount("alice");
    fs::create_dir_all(a.p("study/raw")).unwrap();
    let iv = parse_diriv(&fs::read(vol.backing_path("study").join("tresor.diriv")).unwrap()).unwrap();
    let mut v = vol.volume.clone();
    v.set_policy(iv, &[identity("bob").id()]).unwrap();
    publish(&vol, &mut v);

    fs::write(a.p("study/raw/new.csv"), b"for review").unwrap();
    fs::write(a.p("outside.csv"), b"alice only").unwrap();
    let b = vol.mount("bob");
    assert_eq!(fs::read(b.p("study/raw/new.csv")).unwrap(), b"for review");
    assert_eq!(File::open(b.p("outside.csv")).unwrap_err().kind(), ErrorKind::PermissionDenied);
}

#[test]
fn a_member_signed_header_beyond_the_policy_is_refused_and_moves_keep_the_rule() {
    let vol = Vol::new();
    let mut v = vol.volume.clone();
    v.add_member(&vol.name_key, identity("dave").public(), "dave", Role::Member, &mut rng(3)).unwrap();
    publish(&vol, &mut v);
    let b = vol.mount("bob");
    fs::create_dir(b.p("study")).unwrap();
    fs::write(b.p("forged"), b"").unwrap();
    // bob (a member) signs a header naming dave, with no policy allowing it.
    let (header, key) =
        Header::create(&v, &identity("bob"), &[*identity("bob").public(), *identity("dave").public()], 1, &mut rng(4))
            .unwrap();
    let cipher = ContentCipher::new(v.params.suite, &key, &header.file_id, v.params.block_size);
    let mut bytes = header.to_bytes().unwrap();
    bytes.extend_from_slice(&cipher.seal_trailer(0, &mut rng(5)));
    fs::write(vol.backing_path("forged"), &bytes).unwrap();
    let d = vol.mount("dave");
    assert_eq!(File::open(d.p("forged")).unwrap_err().kind(), ErrorKind::PermissionDenied);
    assert_eq!(File::open(b.p("forged")).unwrap_err().kind(), ErrorKind::PermissionDenied);

    // With a policy naming dave on "study", the same header is valid there...
    let iv = parse_diriv(&fs::read(vol.backing_path("study").join("tresor.diriv")).unwrap()).unwrap();
    v.set_policy(iv, &[identity("dave").id()]).unwrap();
    publish(&vol, &mut v);
    fs::write(b.p("study/report"), b"for dave").unwrap();
    assert_eq!(fs::read(d.p("study/report")).unwrap(), b"for dave");
    // ...and moving it out of "study" would break the rule: EXDEV (mv copies instead).
    assert_eq!(fs::rename(b.p("study/report"), b.p("report")).unwrap_err().raw_os_error(), Some(libc::EXDEV));
    // A directory without a policy of its own does not leave "study" either (bob is no steward).
    fs::create_dir(b.p("study/sub")).unwrap();
    assert_eq!(fs::rename(b.p("study/sub"), b.p("sub")).unwrap_err().raw_os_error(), Some(libc::EXDEV));
    // Within the same policy, moves are plain renames.
    fs::rename(b.p("study/report"), b.p("study/sub/report")).unwrap();
    assert_eq!(fs::read(d.p("study/sub/report")).unwrap(), b"for dave");
}

#[test]
fn a_registry_change_is_picked_up_and_a_rollback_refused() {
    let vol = Vol::new();
    let b = vol.mount("bob");
    fs::write(b.p("mine"), b"bob's").unwrap();
    let old = fs::read(vol.backing.join("tresor.volume")).unwrap();
    // The steward removes bob.
    let mut v = vol.volume.clone();
    v.remove_member(&identity("bob").id());
    v.sign(&identity("alice")).unwrap();
    fs::write(vol.backing.join("tresor.volume"), v.to_bytes()).unwrap();
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(File::open(b.p("mine")).unwrap_err().kind(), ErrorKind::PermissionDenied);
    // Putting the old registry back (a lower generation) does not restore access.
    fs::write(vol.backing.join("tresor.volume"), old).unwrap();
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(File::open(b.p("mine")).unwrap_err().kind(), ErrorKind::PermissionDenied);
    assert_eq!(fs::metadata(b.p("mine")).unwrap().len(), 5, "still listed");
}

// ---- prepare ----------------------------------------------------------------------------------

#[test]
fn prepare_refuses_bad_input_before_anything_is_mounted() {
    let vol = Vol::new();
    let before = vol.listing();
    let mp = vol.new_mountpoint();

    let not_a_volume = vol.dir.path().join("empty");
    fs::create_dir(&not_a_volume).unwrap();
    let mut c = vol.config("alice", &mp);
    c.backing = not_a_volume;
    assert!(matches!(prepare(c), Err(MountError::NotAVolume { .. })));

    let mut c = vol.config("alice", &mp);
    c.pinned_stewards = vec![identity("mallory").public().ed25519];
    match prepare(c) {
        Err(e @ MountError::StewardNotPinned { .. }) => {
            assert!(e.to_string().contains(&identity("alice").id().to_string()), "{e}")
        }
        other => panic!("{other:?}"),
    }

    assert!(matches!(prepare(vol.config("mallory", &mp)), Err(MountError::NotMember { .. })));
    assert!(matches!(prepare(vol.config("carol", &mp)), Err(MountError::AuditorMustBeReadOnly { .. })));
    let mut c = vol.config("carol", &mp);
    parse_options("ro", &mut c).unwrap();
    assert!(prepare(c).is_ok(), "auditors may mount read-only");

    let mut c = vol.config("alice", &mp);
    c.mountpoint = vol.dir.path().join("nowhere");
    assert!(matches!(prepare(c), Err(MountError::MountpointMissing { .. })));

    let mut c = vol.config("alice", &mp);
    c.options.push("bogus".into());
    assert!(matches!(prepare(c), Err(MountError::InvalidOption { .. })));

    let logs = || fs::read_dir(vol.backing.join("tresor.audit")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(logs(), 0, "prepare writes no audit log; mount does");
    let m = Mnt::start(vol.config("alice", &mp)).unwrap();
    assert!(matches!(prepare(vol.config("alice", &mp)), Err(MountError::MountpointBusy { .. })));
    drop(m);
    assert_eq!(vol.listing(), before, "nothing was written");
    assert_eq!(logs(), 1);
}

#[test]
fn a_read_only_mount_reads_and_refuses_writes() {
    let vol = Vol::new();
    {
        let m = vol.mount("alice");
        fs::write(m.p("f"), b"content").unwrap();
    }
    let mp = vol.new_mountpoint();
    let mut c = vol.config("alice", &mp);
    parse_options("ro,noatime", &mut c).unwrap();
    let m = Mnt::start(c).unwrap();
    assert_eq!(fs::read(m.p("f")).unwrap(), b"content");
    assert_eq!(fs::write(m.p("g"), b"").unwrap_err().raw_os_error(), Some(libc::EROFS));
    assert_eq!(OpenOptions::new().write(true).open(m.p("f")).unwrap_err().raw_os_error(), Some(libc::EROFS));
}

// ---- the model test ------------------------------------------------------------------------------

/// Random writes, truncates, reads, renames and reopens over several files
/// in several directories, checked against an in-memory model after every
/// read. TRESOR_MODEL_OPS sets the number of operations (default 100,000,
/// about 15 s on 2 cores; the issue asks for at least that many in CI).
#[test]
fn random_operations_match_an_in_memory_model() {
    let ops: u64 = std::env::var("TRESOR_MODEL_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let seed: u64 = std::env::var("TRESOR_MODEL_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(42);
    let vol = Vol::new();
    let m = vol.mount("alice");
    let dirs = ["", "d1", "d1/d2"];
    for d in &dirs[1..] {
        fs::create_dir(m.p(d)).unwrap();
    }
    let slots: Vec<String> = dirs
        .iter()
        .flat_map(|d| (0..4).map(move |i| if d.is_empty() { format!("f{i}") } else { format!("{d}/f{i}") }))
        .collect();
    let mut model: HashMap<String, Vec<u8>> = HashMap::new();
    let mut open: HashMap<String, File> = HashMap::new();
    let mut r = rng(seed);
    let mut mismatches = 0;
    let max_size = 24 * BLOCK;
    for op in 0..ops {
        let slot = slots[(r.next_u32() as usize) % slots.len()].clone();
        let path = m.p(&slot);
        let choice = r.next_u32() % 100;
        if !model.contains_key(&slot) {
            File::create(&path).unwrap();
            model.insert(slot.clone(), Vec::new());
            continue;
        }
        let handle = |open: &mut HashMap<String, File>, slot: &str| -> File {
            if let Some(f) = open.get(slot) {
                return f.try_clone().unwrap();
            }
            let f = OpenOptions::new().read(true).write(true).open(m.p(slot)).unwrap();
            open.insert(slot.to_owned(), f.try_clone().unwrap());
            f
        };
        match choice {
            0..=44 => {
                let cur = model[&slot].len() as u64;
                let off = match r.next_u32() % 4 {
                    0 => cur,
                    1 => cur.saturating_sub(r.next_u64() % 100),
                    _ => r.next_u64() % max_size,
                };
                let len = 1 + (r.next_u64() % (if r.next_u32() % 4 == 0 { 4 * BLOCK } else { 300 })) as usize;
                let data = pattern(op, len);
                handle(&mut open, &slot).write_all_at(&data, off).unwrap();
                let mdl = model.get_mut(&slot).unwrap();
                let end = off as usize + len;
                if mdl.len() < end {
                    mdl.resize(end, 0);
                }
                mdl[off as usize..end].copy_from_slice(&data);
            }
            45..=54 => {
                let cur = model[&slot].len() as u64;
                let size = match r.next_u32() % 3 {
                    0 => r.next_u64() % (cur + 1),
                    1 => (r.next_u64() % (max_size / BLOCK)) * BLOCK,
                    _ => r.next_u64() % max_size,
                };
                handle(&mut open, &slot).set_len(size).unwrap();
                model.get_mut(&slot).unwrap().resize(size as usize, 0);
            }
            55..=84 => {
                let mdl = &model[&slot];
                let off = r.next_u64() % (mdl.len() as u64 + BLOCK);
                let len = 1 + (r.next_u64() % (3 * BLOCK)) as usize;
                let got = read_at(&handle(&mut open, &slot), off, len).unwrap();
                let from = (off as usize).min(mdl.len());
                let to = (off as usize + len).min(mdl.len());
                if got != mdl[from..to] {
                    mismatches += 1;
                    eprintln!("op {op}: read {len} at {off} of {slot} (size {}) mismatched", mdl.len());
                }
            }
            85..=92 => {
                let to = slots[(r.next_u32() as usize) % slots.len()].clone();
                if to != slot {
                    fs::rename(&path, m.p(&to)).unwrap();
                    let content = model.remove(&slot).unwrap();
                    model.insert(to.clone(), content);
                    open.remove(&to);
                    if let Some(f) = open.remove(&slot) {
                        open.insert(to, f);
                    }
                }
            }
            93..=96 => {
                open.remove(&slot);
            }
            _ => {
                let got = read_all(&path);
                if got != model[&slot] {
                    mismatches += 1;
                    eprintln!(
                        "op {op}: full read of {slot} mismatched ({} vs {} bytes)",
                        got.len(),
                        model[&slot].len()
                    );
                }
                assert_eq!(fs::metadata(&path).unwrap().len(), model[&slot].len() as u64);
            }
        }
    }
    open.clear();
    for (slot, content) in &model {
        assert_eq!(&read_all(&m.p(slot)), content, "{slot}");
        let backing = fs::metadata(vol.backing_path(slot)).unwrap();
        assert_eq!(backing.len(), vol.layout().ciphertext_size(content.len() as u64), "{slot}");
    }
    assert_eq!(mismatches, 0);
    let _ = SystemTime::now();
}
