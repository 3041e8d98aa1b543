//! AFL-style "havoc" mutations: each new input is a corpus entry with a
//! random stack of 1 to 16 small mutations applied.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Byte strings worth planting: the format's magic numbers and reserved
/// names, and the UTF-8 shapes that name checks care about.
const DICTIONARY: &[&[u8]] = &[
    b"TRSRIDNT",
    b"TRSRVOLM",
    b"TRSRFILE",
    b"TRSRPOLY",
    b"\x01\x00",
    b"tresor1",
    b"TRESOR1",
    b"tresor.",
    b"tresor.longname.",
    b"tresor.longtarget.",
    b".name",
    b"tresor.diriv",
    b"tresor.policy",
    b"tresor.volume",
    b".",
    b"..",
    b"/",
    b"\0",
    b" ",
    b"\n",
    b"\x7f",
    b"\xc2\x85",         // U+0085, a C1 control character
    b"\xe2\x80\x8b",     // U+200B zero-width space
    b"\xf0\x9f\x94\x91", // a 4-byte character
    b"\xc3",             // a cut 2-byte sequence
    b"\xff\xfe",
    b"==",
    b"-_",
];

const INTERESTING_8: &[u8] = &[0, 1, 2, 3, 4, 8, 16, 32, 63, 64, 65, 100, 127, 128, 129, 255];
const INTERESTING_16: &[u16] =
    &[0, 1, 2, 255, 256, 512, 1000, 1024, 1025, 4095, 4096, 4097, 10921, 32767, 32768, 65535];
const INTERESTING_32: &[u32] = &[
    0,
    1,
    8,
    28,
    64,
    156,
    348,
    511,
    512,
    513,
    4096,
    4124,
    65536,
    (1 << 20) - 512,
    1 << 20,
    (1 << 20) + 512,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fe00,
    0xffff_ffff,
];
const INTERESTING_64: &[u64] = &[0, 1, 28, 4124, 1 << 32, (1 << 63) - 1, 1 << 63, u64::MAX - 27, u64::MAX];

pub struct Mutator {
    rng: ChaCha8Rng,
    max_len: usize,
}

impl Mutator {
    pub fn new(seed: u64, max_len: usize) -> Mutator {
        Mutator { rng: ChaCha8Rng::seed_from_u64(seed), max_len: max_len.max(1) }
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.rng.next_u64() % n as u64) as usize
        }
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A new input: a copy of `base` with a stack of mutations. `corpus` is
    /// the source of splices.
    pub fn mutate(&mut self, base: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
        let mut data = base.to_vec();
        let stack = 1 << self.below(5);
        for _ in 0..stack {
            self.mutate_once(&mut data, corpus);
        }
        data.truncate(self.max_len);
        data
    }

    /// A random offset biased towards the start, where the headers of all
    /// the structures are, about half of the time.
    fn offset(&mut self, len: usize) -> usize {
        if len == 0 {
            return 0;
        }
        if self.chance(2) {
            self.below(len.min(128))
        } else {
            self.below(len)
        }
    }

    fn run_len(&mut self, len: usize) -> usize {
        let cap = match self.below(4) {
            0 => 4,
            1 => 16,
            2 => 128,
            _ => len.max(1),
        };
        1 + self.below(cap)
    }

    fn mutate_once(&mut self, data: &mut Vec<u8>, corpus: &[Vec<u8>]) {
        match self.below(17) {
            // Flip one bit.
            0 | 1 => {
                if !data.is_empty() {
                    let at = self.offset(data.len());
                    data[at] ^= 1 << self.below(8);
                }
            }
            // Set a random byte.
            2 => {
                if !data.is_empty() {
                    let at = self.offset(data.len());
                    data[at] = self.rng.next_u32() as u8;
                }
            }
            // Add or subtract a small number from a byte, u16 or u32 (in place, LE).
            3 => {
                let width = *self.pick(&[1usize, 2, 4]);
                if data.len() >= width {
                    let at = self.offset(data.len() - width + 1);
                    let delta = 1 + self.below(35) as u64;
                    let mut buf = [0u8; 8];
                    buf[..width].copy_from_slice(&data[at..at + width]);
                    let v = u64::from_le_bytes(buf);
                    let v = if self.chance(2) { v.wrapping_add(delta) } else { v.wrapping_sub(delta) };
                    data[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
                }
            }
            // Interesting integers, overwritten at an offset (mostly little-endian).
            4 | 5 => {
                let bytes: Vec<u8> = match self.below(4) {
                    0 => vec![*self.pick(INTERESTING_8)],
                    1 => self.pick(INTERESTING_16).to_le_bytes().to_vec(),
                    2 => self.pick(INTERESTING_32).to_le_bytes().to_vec(),
                    _ => self.pick(INTERESTING_64).to_le_bytes().to_vec(),
                };
                let mut bytes = bytes;
                if self.chance(8) {
                    bytes.reverse();
                }
                self.overwrite(data, &bytes);
            }
            // Truncate.
            6 => {
                let keep = self.below(data.len() + 1);
                data.truncate(keep);
            }
            // Extend at the end: random bytes, zeros, or a copy of the input's own bytes.
            7 => {
                let n = self.run_len(64);
                self.extend(data, n);
            }
            // Insert a run (random, repeated byte or copied from the input).
            8 | 9 => {
                let at = self.below(data.len() + 1);
                let n = self.run_len(data.len());
                let run = self.run(data, n);
                data.splice(at..at, run);
            }
            // Delete a run.
            10 | 11 => {
                if !data.is_empty() {
                    let at = self.offset(data.len());
                    let n = self.run_len(data.len()).min(data.len() - at);
                    data.drain(at..at + n);
                }
            }
            // Overwrite a run with a copy of another part of the input.
            12 => {
                if data.len() >= 2 {
                    let n = self.run_len(data.len() / 2).min(data.len() / 2);
                    let from = self.below(data.len() - n + 1);
                    let to = self.below(data.len() - n + 1);
                    data.copy_within(from..from + n, to);
                }
            }
            // Splice: our prefix, another entry's suffix.
            13 | 14 => {
                if !corpus.is_empty() {
                    let other = &corpus[self.below(corpus.len())];
                    let cut = self.below(data.len() + 1);
                    let from = self.below(other.len() + 1);
                    data.truncate(cut);
                    data.extend_from_slice(&other[from..]);
                }
            }
            // Overwrite with a chunk of another entry at the same offset (keeps alignment).
            15 => {
                if !corpus.is_empty() && !data.is_empty() {
                    let other = &corpus[self.below(corpus.len())];
                    let at = self.below(data.len());
                    if at < other.len() {
                        let n = self.run_len(64).min(other.len() - at).min(data.len() - at);
                        data[at..at + n].copy_from_slice(&other[at..at + n]);
                    }
                }
            }
            // A dictionary token, inserted or overwritten.
            _ => {
                let token = *self.pick(DICTIONARY);
                if self.chance(2) {
                    let at = self.below(data.len() + 1);
                    data.splice(at..at, token.iter().copied());
                } else {
                    self.overwrite(data, token);
                }
            }
        }
    }

    fn overwrite(&mut self, data: &mut Vec<u8>, bytes: &[u8]) {
        if data.len() < bytes.len() {
            data.extend_from_slice(bytes);
            return;
        }
        let at = self.offset(data.len() - bytes.len() + 1);
        data[at..at + bytes.len()].copy_from_slice(bytes);
    }

    fn run(&mut self, data: &[u8], n: usize) -> Vec<u8> {
        match self.below(3) {
            0 => {
                let mut run = vec![0u8; n];
                self.rng.fill_bytes(&mut run);
                run
            }
            1 => {
                let random = self.rng.next_u32() as u8;
                vec![*self.pick(&[0u8, 0xff, b'A', random]); n]
            }
            _ if !data.is_empty() => {
                let n = n.min(data.len());
                let from = self.below(data.len() - n + 1);
                data[from..from + n].to_vec()
            }
            _ => vec![0; n],
        }
    }

    fn extend(&mut self, data: &mut Vec<u8>, n: usize) {
        let run = self.run(data, n);
        data.extend_from_slice(&run);
    }
}
