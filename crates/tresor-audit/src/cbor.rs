//! Reading a record's canonical CBOR without serde: what `verify` and
//! `show` run for every record of years of logs.
//!
//! A record has exactly one encoding (docs/AUDIT.md §3): a definite map
//! whose keys are the `Record` fields in declaration order, absent optional
//! fields left out, every length and integer in its shortest form. The
//! serde path (ciborium) checks that by decoding and encoding again, about
//! 3 µs a record; this reader accepts only that encoding by construction
//! (each key where it must be, each header minimal, nothing after the map)
//! and allocates only for the fields it returns. `record::tests` checks it
//! against the serde path on random records and random damage: both accept
//! the same bytes and give the same record.

use crate::record::{Op, Pruned, Record, SetAttr, MAX_RECIPIENTS};

type R<T> = Result<T, String>;

fn bad(what: &str) -> String {
    format!("not a valid record: {what}")
}

struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn byte(&mut self) -> R<u8> {
        let v = *self.b.get(self.pos).ok_or_else(|| bad("truncated"))?;
        self.pos += 1;
        Ok(v)
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| bad("truncated"))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// A header: major type and argument, refusing non-shortest forms and
    /// indefinite lengths.
    fn head(&mut self) -> R<(u8, u64)> {
        let ib = self.byte()?;
        let (major, info) = (ib >> 5, ib & 0x1f);
        let (v, min) = match info {
            0..=23 => return Ok((major, info as u64)),
            24 => (self.byte()? as u64, 24),
            25 => (u16::from_be_bytes(self.take(2)?.try_into().expect("2")) as u64, 1 << 8),
            26 => (u32::from_be_bytes(self.take(4)?.try_into().expect("4")) as u64, 1 << 16),
            27 => (u64::from_be_bytes(self.take(8)?.try_into().expect("8")), 1 << 32),
            _ => return Err(bad("indefinite length or reserved header")),
        };
        if v < min {
            return Err(bad("not in canonical encoding"));
        }
        Ok((major, v))
    }

    fn expect(&mut self, major: u8, what: &str) -> R<u64> {
        let (m, v) = self.head()?;
        if m != major {
            return Err(bad(what));
        }
        Ok(v)
    }

    fn uint(&mut self) -> R<u64> {
        self.expect(0, "expected an unsigned integer")
    }

    fn u32(&mut self) -> R<u32> {
        u32::try_from(self.uint()?).map_err(|_| bad("integer out of range"))
    }

    /// A signed integer (major 0 or 1), in `T`'s range.
    fn int<T: TryFrom<i128>>(&mut self) -> R<T> {
        let (m, v) = self.head()?;
        let v = match m {
            0 => v as i128,
            1 => -1 - v as i128,
            _ => return Err(bad("expected an integer")),
        };
        T::try_from(v).map_err(|_| bad("integer out of range"))
    }

    fn bytes(&mut self) -> R<&'a [u8]> {
        let n = self.expect(2, "expected a byte string")?;
        self.take(usize::try_from(n).map_err(|_| bad("truncated"))?)
    }

    fn fixed<const N: usize>(&mut self) -> R<[u8; N]> {
        self.bytes()?.try_into().map_err(|_| bad("a fixed-size byte string has the wrong length"))
    }

    fn text(&mut self) -> R<&'a str> {
        let n = self.expect(3, "expected a text string")?;
        let raw = self.take(usize::try_from(n).map_err(|_| bad("truncated"))?)?;
        std::str::from_utf8(raw).map_err(|_| bad("text is not UTF-8"))
    }

    fn bool(&mut self) -> R<bool> {
        match self.byte()? {
            0xf4 => Ok(false),
            0xf5 => Ok(true),
            _ => Err(bad("expected a bool")),
        }
    }

    fn map(&mut self) -> R<u64> {
        self.expect(5, "expected a map")
    }

    /// The next key if it is `key` (consumed), else leaves it. Keys are
    /// short text (under 24 bytes), so the canonical encoding of `key` is
    /// one head byte and its bytes: anything else is not this key, and is
    /// left for the checks after it (an entry left unread fails the record).
    fn key(&mut self, left: &mut u64, key: &str) -> R<bool> {
        debug_assert!(key.len() < 24);
        let end = self.pos + 1 + key.len();
        let here = self.b.get(self.pos..end);
        if *left > 0 && here.is_some_and(|h| h[0] == 0x60 | key.len() as u8 && &h[1..] == key.as_bytes()) {
            self.pos = end;
            *left -= 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn required(&mut self, left: &mut u64, key: &str) -> R<()> {
        if self.key(left, key)? {
            Ok(())
        } else {
            Err(bad(&format!("missing or misplaced key {key:?}")))
        }
    }
}

fn set_attr(c: &mut Cur) -> R<SetAttr> {
    let mut left = c.map()?;
    let mut a = SetAttr::default();
    if c.key(&mut left, "mode")? {
        a.mode = Some(c.u32()?);
    }
    if c.key(&mut left, "uid")? {
        a.uid = Some(c.u32()?);
    }
    if c.key(&mut left, "gid")? {
        a.gid = Some(c.u32()?);
    }
    if c.key(&mut left, "size")? {
        a.size = Some(c.uint()?);
    }
    if c.key(&mut left, "atime")? {
        a.atime = Some(c.int()?);
    }
    if c.key(&mut left, "mtime")? {
        a.mtime = Some(c.int()?);
    }
    if left != 0 {
        return Err(bad("unknown or misplaced key in attr"));
    }
    Ok(a)
}

fn pruned(c: &mut Cur) -> R<Pruned> {
    let mut left = c.map()?;
    c.required(&mut left, "mid")?;
    let mid = c.fixed()?;
    c.required(&mut left, "first")?;
    let first = c.uint()?;
    c.required(&mut left, "last")?;
    let last = c.uint()?;
    c.required(&mut left, "hash")?;
    let hash = c.fixed()?;
    if left != 0 {
        return Err(bad("unknown or misplaced key in prune"));
    }
    Ok(Pruned { mid, first, last, hash })
}

fn ids(c: &mut Cur) -> R<Vec<[u8; 16]>> {
    let n = c.expect(4, "expected an array")?;
    if n > MAX_RECIPIENTS as u64 {
        return Err(bad("too many recipients"));
    }
    (0..n).map(|_| c.fixed::<16>().map_err(|_| bad("a member id is 16 bytes"))).collect()
}

/// Decodes one record in its canonical encoding, or says why not.
pub fn decode(bytes: &[u8]) -> Result<Record, String> {
    decode_as::<true>(bytes)
}

/// Checks one record's encoding exactly as [`decode`] does, but keeps only
/// what links it into its log: seq, time, mount id, member, op, prev and
/// the checkpoint and prune fields. Text is empty, and byte strings other
/// than those are empty too (present or not as in the record).
pub fn decode_links(bytes: &[u8]) -> Result<Record, String> {
    decode_as::<false>(bytes)
}

fn decode_as<const KEEP: bool>(bytes: &[u8]) -> Result<Record, String> {
    let c = &mut Cur { b: bytes, pos: 0 };
    let mut left = c.map()?;
    let l = &mut left;
    let opt_bytes = |c: &mut Cur, l: &mut u64, key| -> R<Option<Vec<u8>>> {
        Ok(if c.key(l, key)? {
            let b = c.bytes()?;
            Some(if KEEP || matches!(key, "chain" | "sig" | "root" | "nsig" | "range") {
                b.to_vec()
            } else {
                Vec::new()
            })
        } else {
            None
        })
    };
    let text = |c: &mut Cur| -> R<String> {
        let t = c.text()?;
        Ok(if KEEP { t.to_owned() } else { String::new() })
    };
    let opt_text =
        |c: &mut Cur, l: &mut u64, key| -> R<Option<String>> { Ok(if c.key(l, key)? { Some(text(c)?) } else { None }) };
    let opt_uint =
        |c: &mut Cur, l: &mut u64, key| -> R<Option<u64>> { Ok(if c.key(l, key)? { Some(c.uint()?) } else { None }) };
    c.required(l, "seq")?;
    let seq = c.uint()?;
    c.required(l, "t")?;
    let time_ns = c.uint()?;
    c.required(l, "host")?;
    let host = text(c)?;
    c.required(l, "mid")?;
    let mount_id = c.fixed()?;
    c.required(l, "uid")?;
    let uid = c.u32()?;
    c.required(l, "gid")?;
    let gid = c.u32()?;
    c.required(l, "pid")?;
    let pid = c.u32()?;
    c.required(l, "comm")?;
    let process = text(c)?;
    c.required(l, "mbr")?;
    let member = c.fixed()?;
    c.required(l, "op")?;
    let op = Op::parse(c.text()?).ok_or_else(|| bad("unknown operation"))?;
    let path = opt_bytes(c, l, "path")?;
    let new_path = opt_bytes(c, l, "path2")?;
    c.required(l, "res")?;
    let result = c.int()?;
    let intent = opt_text(c, l, "intent")?;
    let bytes_read = opt_uint(c, l, "rd")?;
    let bytes_written = opt_uint(c, l, "wr")?;
    let setattr = if c.key(l, "attr")? { Some(set_attr(c)?) } else { None };
    let xattr = opt_bytes(c, l, "xattr")?;
    let recipients = if c.key(l, "rcpt")? {
        let ids = ids(c)?;
        Some(if KEEP { ids } else { Vec::new() })
    } else {
        None
    };
    let subject = opt_bytes(c, l, "who")?;
    let rekeyed = if c.key(l, "rekeyed")? { Some(c.bool()?) } else { None };
    let offset = opt_uint(c, l, "off")?;
    let volume = opt_bytes(c, l, "vol")?;
    let key = opt_bytes(c, l, "key")?;
    let options = opt_text(c, l, "opts")?;
    let chain = opt_bytes(c, l, "chain")?;
    let sig = opt_bytes(c, l, "sig")?;
    let prune = if c.key(l, "prune")? { Some(pruned(c)?) } else { None };
    let root = opt_bytes(c, l, "root")?;
    let nsig = opt_bytes(c, l, "nsig")?;
    let range = opt_bytes(c, l, "range")?;
    c.required(l, "prev")?;
    let prev = c.fixed()?;
    if *l != 0 || c.pos != bytes.len() {
        return Err(bad("not in canonical encoding"));
    }
    Ok(Record {
        seq,
        time_ns,
        host,
        mount_id,
        uid,
        gid,
        pid,
        process,
        member,
        op,
        path,
        new_path,
        result,
        intent,
        bytes_read,
        bytes_written,
        setattr,
        xattr,
        recipients,
        subject,
        rekeyed,
        offset,
        volume,
        key,
        options,
        chain,
        sig,
        prune,
        root,
        nsig,
        range,
        prev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ALL_OPS;

    /// A small deterministic generator (xorshift64*).
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn pick(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn int(&mut self) -> u64 {
            // Every width: inline, 1, 2, 4 and 8 bytes, and their edges.
            let edges = [0, 23, 24, 255, 256, 65535, 65536, u32::MAX as u64, 1 << 32, u64::MAX];
            if self.pick(2) == 0 {
                edges[self.pick(edges.len() as u64) as usize]
            } else {
                self.next() >> self.pick(64)
            }
        }
        fn maybe<T>(&mut self, f: impl FnOnce(&mut Gen) -> T) -> Option<T> {
            (self.pick(2) == 0).then(|| f(self))
        }
        fn bytes(&mut self, max: u64) -> Vec<u8> {
            let n = self.pick(max + 1);
            (0..n).map(|_| self.next() as u8).collect()
        }
        fn text(&mut self) -> String {
            ["", "a", "node1", "python3", "r+t", "é\u{202e}\u{200b}x", &"long".repeat(20)][self.pick(7) as usize]
                .to_owned()
        }
    }

    fn random_record(g: &mut Gen) -> Record {
        let mut r = Record::new(ALL_OPS[g.pick(ALL_OPS.len() as u64) as usize]);
        r.seq = g.int();
        r.time_ns = g.int();
        r.host = g.text();
        r.mount_id = [g.next() as u8; 16];
        (r.uid, r.gid, r.pid) = (g.int() as u32, g.int() as u32, g.int() as u32);
        r.process = g.text();
        r.member = [g.next() as u8; 16];
        r.path = g.maybe(|g| g.bytes(300));
        r.new_path = g.maybe(|g| g.bytes(40));
        r.result = g.int() as i32;
        r.intent = g.maybe(Gen::text);
        r.bytes_read = g.maybe(Gen::int);
        r.bytes_written = g.maybe(Gen::int);
        r.setattr = g.maybe(|g| SetAttr {
            mode: g.maybe(|g| g.int() as u32),
            uid: g.maybe(|g| g.int() as u32),
            gid: g.maybe(|g| g.int() as u32),
            size: g.maybe(Gen::int),
            atime: g.maybe(|g| g.int() as i64),
            mtime: g.maybe(|g| g.int() as i64),
        });
        r.xattr = g.maybe(|g| g.bytes(20));
        r.recipients = g.maybe(|g| (0..g.pick(30)).map(|i| [i as u8; 16]).collect());
        r.subject = g.maybe(|g| g.bytes(16));
        r.rekeyed = g.maybe(|g| g.pick(2) == 1);
        r.offset = g.maybe(Gen::int);
        r.volume = g.maybe(|g| g.bytes(16));
        r.key = g.maybe(|g| g.bytes(32));
        r.options = g.maybe(Gen::text);
        r.chain = g.maybe(|g| g.bytes(32));
        r.sig = g.maybe(|g| g.bytes(64));
        r.prune = g.maybe(|g| Pruned { mid: [1; 16], first: g.int(), last: g.int(), hash: [2; 32] });
        r.root = g.maybe(|g| g.bytes(32));
        r.nsig = g.maybe(|g| g.bytes(64));
        r.range = g.maybe(|g| g.bytes(96));
        r.prev = [g.next() as u8; 32];
        r
    }

    #[test]
    fn the_fast_reader_accepts_exactly_what_the_serde_path_accepts() {
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        for round in 0..3000 {
            let r = random_record(&mut g);
            let bytes = r.to_bytes();
            assert_eq!(decode(&bytes).as_ref(), Ok(&r), "round {round}");
            // Damage: flipped bits, changed bytes, cuts, insertions.
            for _ in 0..20 {
                let mut d = bytes.clone();
                match g.pick(4) {
                    0 => {
                        let i = g.pick(d.len() as u64) as usize;
                        d[i] ^= 1 << g.pick(8);
                    }
                    1 => {
                        let i = g.pick(d.len() as u64) as usize;
                        d[i] = g.next() as u8;
                    }
                    2 => d.truncate(g.pick(d.len() as u64) as usize),
                    _ => {
                        let i = g.pick(d.len() as u64 + 1) as usize;
                        d.insert(i, g.next() as u8);
                    }
                }
                let (fast, serde) = (decode(&d), Record::from_bytes_serde(&d));
                assert_eq!(decode_links(&d).is_ok(), serde.is_ok(), "links: round {round}");
                assert_eq!(fast.is_ok(), serde.is_ok(), "round {round}: {d:02x?}: fast {fast:?} serde {serde:?}");
                if let (Ok(a), Ok(b)) = (fast, serde) {
                    assert_eq!(a, b);
                }
            }
        }
    }
}
