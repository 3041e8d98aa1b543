//! Block crypto of one large request spread over the CPU's cores.
//!
//! One FUSE request carries up to 1 MiB (256 blocks of 4 KiB): sealing or
//! opening them one after another keeps one core busy while the others
//! idle, and a single reader or writer (the common case: `cp`, `dd`, a
//! program streaming a file) never sends the next request before this one
//! is answered. The blocks of a request are independent (each has its own
//! nonce and tag), so they are split into contiguous runs, one per core,
//! done by rayon's pool of one thread per core while the calling thread
//! waits (a scoped thread per run cost a spawn and a join per request, and
//! much more when the cores were busy).
//!
//! A run is never shorter than [`MIN_BLOCKS`]: handing a run to another
//! thread costs a few microseconds, a block about three, so small requests
//! stay on the calling thread.

use std::sync::OnceLock;

use crate::sys::FsResult;

/// The fewest blocks worth handing to a thread of their own.
pub const MIN_BLOCKS: usize = 16;

/// How many runs a request of `blocks` blocks is split into.
pub fn runs(blocks: usize) -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(8));
    (blocks / MIN_BLOCKS).clamp(1, cores)
}

/// Runs `work` on every part, on the pool when there are several (one part
/// stays on this thread), and returns the first error (all parts run to the
/// end either way, so no part is left half-done behind the caller's back).
pub fn run<P: Send>(parts: Vec<P>, work: impl Fn(P) -> FsResult<()> + Sync) -> FsResult<()> {
    use rayon::prelude::*;
    if parts.len() <= 1 {
        return parts.into_iter().try_for_each(work);
    }
    let work = &work;
    let results: Vec<FsResult<()>> = parts.into_par_iter().map(work).collect();
    results.into_iter().collect()
}

/// Splits the blocks `0..n` into `runs(n)` contiguous runs of near-equal
/// length, as (first block, block count) pairs.
pub fn split(n: usize) -> Vec<(usize, usize)> {
    let k = runs(n);
    let (base, extra) = (n / k, n % k);
    let mut out = Vec::with_capacity(k);
    let mut at = 0;
    for i in 0..k {
        let len = base + usize::from(i < extra);
        out.push((at, len));
        at += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_every_block_once_in_order() {
        for n in [0, 1, 15, 16, 17, 31, 32, 33, 255, 256, 257] {
            let parts = split(n);
            let mut next = 0;
            for &(at, len) in &parts {
                assert_eq!(at, next, "{n} blocks: runs are contiguous");
                assert!(len > 0 || n == 0, "{n} blocks: no empty run");
                next = at + len;
            }
            assert_eq!(next, n, "{n} blocks: every block is in a run");
            assert!(parts.len() == 1 || parts.iter().all(|&(_, len)| len >= MIN_BLOCKS));
        }
    }

    #[test]
    fn every_part_runs_and_the_first_error_is_returned() {
        use crate::sys::Errno;
        let seen = std::sync::Mutex::new(Vec::new());
        let r = run(vec![1, 2, 3, 4], |p| {
            seen.lock().unwrap().push(p);
            if p >= 3 {
                Err(Errno::EIO)
            } else {
                Ok(())
            }
        });
        assert_eq!(r, Err(Errno::EIO));
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, [1, 2, 3, 4]);
    }
}
