//! Reading logs for people: unsealing paths, merging several nodes' logs by
//! time, filtering, and the `who` and `access` questions.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::frame::{FileError, FrameReader};
use crate::record::{Op, Record};
use crate::seal::{Field, PathSealer};

/// A record with its sealed fields opened (`None` where there was none;
/// `Some(Err)` where it does not open with the key given).
#[derive(Clone, Debug)]
pub struct Entry {
    pub record: Record,
    pub path: Option<Result<String, Unreadable>>,
    pub new_path: Option<Result<String, Unreadable>>,
    pub xattr: Option<Result<String, Unreadable>>,
    /// Which of the logs read it came from.
    pub log: usize,
}

/// A sealed field that did not open: no key given, or another volume's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreadable;

impl Entry {
    pub fn path(&self) -> Option<&str> {
        self.path.as_ref().and_then(|p| p.as_deref().ok())
    }

    pub fn new_path(&self) -> Option<&str> {
        self.new_path.as_ref().and_then(|p| p.as_deref().ok())
    }
}

/// Opens a log file for reading: never follows a symlink in its last
/// component, never blocks on a FIFO planted in its place, refuses anything
/// but a regular file; buffered.
pub fn open_log(path: &Path) -> std::io::Result<BufReader<File>> {
    Ok(BufReader::with_capacity(1 << 16, tresor_sys::audit_io::open_log(None, path)?))
}

/// The records of one log file, in file order, one at a time, up to the
/// first record that does not parse (run `verify` to learn why).
pub struct Entries<'k, R> {
    frames: FrameReader<R>,
    sealer: Option<&'k PathSealer>,
    log: usize,
    /// A record did not parse: nothing after it is read.
    stopped: bool,
}

impl<'k, R: Read> Entries<'k, R> {
    pub fn new(file: R, sealer: Option<&'k PathSealer>, log: usize) -> Result<Self, FileError> {
        Ok(Entries { frames: FrameReader::new(file)?, sealer, log, stopped: false })
    }
}

impl<R: Read> Iterator for Entries<'_, R> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        if self.stopped {
            return None;
        }
        let (_, bytes) = self.frames.next_frame()?;
        let Ok(record) = Record::from_bytes(bytes) else {
            self.stopped = true;
            return None;
        };
        let sealer = self.sealer;
        let open = |field, sealed: &Option<Vec<u8>>| {
            sealed.as_ref().map(|s| {
                sealer
                    .and_then(|k| k.open(&record.mount_id, record.seq, field, s))
                    .map(|p| String::from_utf8_lossy(&p).into_owned())
                    .ok_or(Unreadable)
            })
        };
        let (path, new_path, xattr) = (
            open(Field::Path, &record.path),
            open(Field::NewPath, &record.new_path),
            open(Field::Xattr, &record.xattr),
        );
        Some(Entry { record, path, new_path, xattr, log: self.log })
    }
}

/// The records of one log file held in memory (see [`Entries`]).
pub fn read_log(file: &[u8], sealer: Option<&PathSealer>, log: usize) -> Result<Vec<Entry>, FileError> {
    Ok(Entries::new(file, sealer, log)?.collect())
}

/// All entries of several logs in time order (ties: by mount, then seq),
/// holding one entry per log at a time: each log is written in time order,
/// so merging their heads gives the order of a full sort (a node whose
/// clock stepped back shows its records in file order).
pub struct Merge<I: Iterator<Item = Entry>> {
    logs: Vec<I>,
    heads: BinaryHeap<Reverse<Head>>,
}

struct Head(Entry);

impl Head {
    fn key(&self) -> (u64, [u8; 16], u64, usize) {
        let r = &self.0.record;
        (r.time_ns, r.mount_id, r.seq, self.0.log)
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl<I: Iterator<Item = Entry>> Merge<I> {
    /// Entries must carry their log's index in `logs` (`Entry::log`).
    pub fn new(mut logs: Vec<I>) -> Self {
        let heads = logs.iter_mut().filter_map(|l| l.next()).map(|e| Reverse(Head(e))).collect();
        Merge { logs, heads }
    }
}

impl<I: Iterator<Item = Entry>> Iterator for Merge<I> {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        let Reverse(Head(e)) = self.heads.pop()?;
        if let Some(n) = self.logs.get_mut(e.log).and_then(|l| l.next()) {
            self.heads.push(Reverse(Head(n)));
        }
        Some(e)
    }
}

/// All entries of several logs in time order, in memory (see [`Merge`]).
pub fn merge(logs: Vec<Vec<Entry>>) -> Vec<Entry> {
    let mut all: Vec<Entry> = logs.into_iter().flatten().collect();
    all.sort_by(|a, b| {
        (a.record.time_ns, a.record.mount_id, a.record.seq).cmp(&(b.record.time_ns, b.record.mount_id, b.record.seq))
    });
    all
}

/// Normalises a user-given plaintext path to the form records hold:
/// relative to the volume root, no leading `/` or `./`, no trailing `/`.
pub fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    parts.join("/")
}

/// Whether `path` is `prefix` or below it.
pub fn under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// What `tresor audit show` (and `who`, `report`) keeps: every condition
/// given must hold, several ops match any of them (ausearch's habits).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub member: Option<[u8; 16]>,
    pub uid: Option<u32>,
    pub path_prefix: Option<String>,
    /// Any of these operations (none given: any).
    pub ops: Vec<Op>,
    pub since_ns: Option<u64>,
    pub until_ns: Option<u64>,
    /// Only records of calls that failed (a nonzero result).
    pub failed: bool,
    /// The process name (`comm`), exactly.
    pub process: Option<String>,
    pub host: Option<String>,
    pub pid: Option<u32>,
}

impl Filter {
    pub fn matches(&self, e: &Entry) -> bool {
        let r = &e.record;
        self.member.is_none_or(|m| r.member == m || r.subject.as_deref() == Some(&m[..]))
            && self.uid.is_none_or(|u| r.uid == u)
            && (self.ops.is_empty() || self.ops.contains(&r.op))
            && self.since_ns.is_none_or(|t| r.time_ns >= t)
            && self.until_ns.is_none_or(|t| r.time_ns <= t)
            && (!self.failed || r.result != 0)
            && self.process.as_deref().is_none_or(|p| r.process == p)
            && self.host.as_deref().is_none_or(|h| r.host == h)
            && self.pid.is_none_or(|p| r.pid == p)
            && self.path_prefix.as_deref().is_none_or(|p| {
                let p = normalize(p);
                e.path().is_some_and(|x| under(x, &p)) || e.new_path().is_some_and(|x| under(x, &p))
            })
    }
}

/// Every record about `path` (under that name, or renamed to or from it),
/// denied attempts included, in time order.
pub fn who<'a, E: std::borrow::Borrow<Entry> + 'a>(
    entries: impl IntoIterator<Item = E> + 'a,
    path: &str,
) -> impl Iterator<Item = E> + 'a {
    let path = normalize(path);
    entries.into_iter().filter(move |e| {
        let e = e.borrow();
        e.record.op != Op::Checkpoint && (e.path() == Some(path.as_str()) || e.new_path() == Some(path.as_str()))
    })
}

/// The answer to "who could read `path` at time T".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// The members holding a key for the file then (and still members).
    Readers(BTreeSet<[u8; 16]>),
    /// The logs do not say: no create record for the file before T.
    Unknown(String),
}

/// Replays creates (initial recipients), grants, revokes, re-keys,
/// renames, links, unlinks and membership changes up to `at_ns`.
pub fn access<E: std::borrow::Borrow<Entry>>(entries: impl IntoIterator<Item = E>, path: &str, at_ns: u64) -> Access {
    let path = normalize(path);
    let mut files: HashMap<String, BTreeSet<[u8; 16]>> = HashMap::new();
    let mut removed: HashSet<[u8; 16]> = HashSet::new();
    let subject = |r: &Record| r.subject.as_deref().and_then(|s| <[u8; 16]>::try_from(s).ok());
    for e in entries.into_iter() {
        let e = e.borrow();
        if e.record.time_ns > at_ns || e.record.result != 0 {
            continue;
        }
        let r = &e.record;
        let (p, np) = (e.path().map(str::to_owned), e.new_path().map(str::to_owned));
        match (r.op, p, np) {
            (Op::Create | Op::Mknod, Some(p), _) => match &r.recipients {
                Some(ids) => {
                    files.insert(p, ids.iter().copied().collect());
                }
                // A create that opened an existing file, or a mknod: no new header.
                None => {
                    files.entry(p).or_default();
                }
            },
            (Op::Rename, Some(from), Some(to)) => {
                let moved: Vec<String> = files.keys().filter(|k| under(k, &from)).cloned().collect();
                files.retain(|k, _| !under(k, &to) || under(k, &from));
                for k in moved {
                    let v = files.remove(&k).expect("listed");
                    files.insert(format!("{to}{}", &k[from.len()..]), v);
                }
            }
            (Op::Link, Some(from), Some(to)) => {
                if let Some(v) = files.get(&from).cloned() {
                    files.insert(to, v);
                }
            }
            (Op::Unlink, Some(p), _) => {
                files.remove(&p);
            }
            (Op::Grant | Op::Revoke | Op::Rekey, Some(p), _) => {
                let set = files.entry(p).or_default();
                match (&r.recipients, r.op, subject(r)) {
                    (Some(after), _, _) => *set = after.iter().copied().collect(),
                    (None, Op::Grant, Some(s)) => {
                        set.insert(s);
                    }
                    (None, Op::Revoke, Some(s)) => {
                        set.remove(&s);
                    }
                    _ => {}
                }
            }
            (Op::MemberRemove, _, _) => {
                removed.extend(subject(r));
            }
            (Op::MemberAdd, _, _) => {
                if let Some(s) = subject(r) {
                    removed.remove(&s);
                }
            }
            _ => {}
        }
    }
    match files.get(&path) {
        Some(set) => Access::Readers(set.iter().filter(|m| !removed.contains(*m)).copied().collect()),
        None => Access::Unknown(format!(
            "no record creates {path} before that time in these logs (it predates them, or the logs are incomplete)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(t: u64, op: Op, path: &str, new_path: Option<&str>) -> Entry {
        let mut record = Record::new(op);
        record.time_ns = t;
        Entry {
            record,
            path: Some(Ok(path.to_owned())),
            new_path: new_path.map(|p| Ok(p.to_owned())),
            xattr: None,
            log: 0,
        }
    }

    fn with(mut e: Entry, f: impl FnOnce(&mut Record)) -> Entry {
        f(&mut e.record);
        e
    }

    const A: [u8; 16] = [1; 16];
    const B: [u8; 16] = [2; 16];
    const C: [u8; 16] = [3; 16];

    #[test]
    fn access_follows_creates_grants_revokes_renames_and_removals() {
        let log = vec![
            with(entry(10, Op::Create, "d/f", None), |r| r.recipients = Some(vec![A])),
            with(entry(20, Op::Grant, "d/f", None), |r| r.subject = Some(B.to_vec())),
            entry(30, Op::Rename, "d", Some("e")),
            with(entry(40, Op::Revoke, "e/f", None), |r| {
                r.subject = Some(A.to_vec());
                r.recipients = Some(vec![B, C]);
            }),
            with(entry(45, Op::Create, "e/f", None), |r| r.result = libc::EACCES),
            with(entry(50, Op::MemberRemove, "", None), |r| r.subject = Some(C.to_vec())),
            entry(60, Op::Unlink, "e/f", None),
        ];
        let readers = |path, t| match access(&log, path, t) {
            Access::Readers(r) => r.into_iter().collect::<Vec<_>>(),
            Access::Unknown(why) => panic!("{why}"),
        };
        assert_eq!(readers("d/f", 15), [A]);
        assert_eq!(readers("d/f", 25), [A, B]);
        assert_eq!(readers("e/f", 35), [A, B], "renamed with its directory");
        assert!(matches!(access(&log, "d/f", 35), Access::Unknown(_)), "no longer under that name");
        assert_eq!(readers("e/f", 47), [B, C], "a failed create changes nothing");
        assert_eq!(readers("e/f", 55), [B], "removed members read nothing");
        assert!(matches!(access(&log, "e/f", 65), Access::Unknown(_)));
        assert!(matches!(access(&log, "d/f", 5), Access::Unknown(_)), "before its creation");
    }

    #[test]
    fn filters_and_who_match_paths_at_component_boundaries() {
        let log = vec![
            entry(1, Op::Open, "ab/c", None),
            entry(2, Op::Open, "a/b", None),
            entry(3, Op::Rename, "x", Some("a/b")),
        ];
        let f = Filter { path_prefix: Some("/a/".into()), ..Filter::default() };
        assert_eq!(log.iter().filter(|e| f.matches(e)).count(), 2);
        assert_eq!(who(&log, "./a/b").count(), 2);
        let f = Filter { since_ns: Some(2), ops: vec![Op::Open], ..Filter::default() };
        assert_eq!(log.iter().filter(|e| f.matches(e)).map(|e| e.record.time_ns).collect::<Vec<_>>(), [2]);
        let f = Filter { ops: vec![Op::Open, Op::Rename], until_ns: Some(2), ..Filter::default() };
        assert_eq!(log.iter().filter(|e| f.matches(e)).count(), 2, "several ops: any of them");
        let failed = with(entry(4, Op::Open, "a/b", None), |r| {
            (r.result, r.process, r.host, r.pid) = (libc::EACCES, "cat".into(), "node2".into(), 77)
        });
        let log = [log, vec![failed]].concat();
        for f in [
            Filter { failed: true, ..Filter::default() },
            Filter { process: Some("cat".into()), ..Filter::default() },
            Filter { host: Some("node2".into()), ..Filter::default() },
            Filter { pid: Some(77), ..Filter::default() },
        ] {
            assert_eq!(log.iter().filter(|e| f.matches(e)).map(|e| e.record.time_ns).collect::<Vec<_>>(), [4], "{f:?}");
        }
    }
}
