//! `tresor audit report`: summaries in the manner of auditd's `aureport`,
//! per member, file, operation, failure and denial, as typed rows.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::chain::hex;
use crate::query::Entry;
use crate::record::{errno_name, Op};
use crate::rows::Names;
use crate::time;

/// One line of a report: how many records a key has, how many failed,
/// how many were denied (EACCES or EPERM), and the first and last time.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReportRow {
    /// `member`, `file`, `op`, `failure` (by errno) or `denial` (member and file).
    pub section: &'static str,
    pub key: String,
    pub records: u64,
    pub failed: u64,
    pub denied: u64,
    pub first: String,
    pub last: String,
}

#[derive(Default)]
struct Counts {
    records: u64,
    failed: u64,
    denied: u64,
    first: u64,
    last: u64,
}

/// The report's counts, added to one record at a time: memory grows with
/// the members, files and errors seen, not with the records.
#[derive(Default)]
pub struct Tally {
    counts: BTreeMap<(u8, String), Counts>,
}

const SECTIONS: [&str; 5] = ["member", "file", "op", "failure", "denial"];

impl Tally {
    pub fn add(&mut self, e: &Entry, names: &Names) {
        let r = &e.record;
        if r.op == Op::Checkpoint {
            return;
        }
        let member = names.get(&r.member).cloned().unwrap_or_else(|| hex(&r.member));
        let denied = matches!(r.result, libc::EACCES | libc::EPERM);
        let mut keys = vec![(0, member.clone()), (2, r.op.as_str().to_owned())];
        if let Some(p) = e.path() {
            keys.push((1, p.to_owned()));
            if denied {
                keys.push((4, format!("{member} {p}")));
            }
        } else if denied {
            keys.push((4, member));
        }
        if r.result != 0 {
            keys.push((3, errno_name(r.result)));
        }
        for key in keys {
            let c = self.counts.entry(key).or_insert(Counts { first: r.time_ns, ..Counts::default() });
            c.records += 1;
            c.failed += u64::from(r.result != 0);
            c.denied += u64::from(denied);
            c.first = c.first.min(r.time_ns);
            c.last = c.last.max(r.time_ns);
        }
    }

    /// The rows, section by section (member, file, op, failure, denial),
    /// each by key.
    pub fn rows(&self) -> Vec<ReportRow> {
        self.counts
            .iter()
            .map(|((section, key), c)| ReportRow {
                section: SECTIONS[*section as usize],
                key: key.clone(),
                records: c.records,
                failed: c.failed,
                denied: c.denied,
                first: time::format_ns(c.first),
                last: time::format_ns(c.last),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    #[test]
    fn a_report_counts_per_member_file_op_failure_and_denial() {
        let names: Names = [([1; 16], "alice".to_owned())].into();
        let mut t = Tally::default();
        for (op, path, result, time) in [
            (Op::Open, "a", 0, 5),
            (Op::Open, "a", libc::EACCES, 3),
            (Op::Unlink, "b", libc::ENOENT, 9),
            (Op::Checkpoint, "", 0, 1),
        ] {
            let mut record = Record::new(op);
            (record.member, record.result, record.time_ns) = ([1; 16], result, time);
            let path = (!path.is_empty()).then(|| Ok(path.to_owned()));
            t.add(&Entry { record, path, new_path: None, xattr: None, log: 0 }, &names);
        }
        let rows = t.rows();
        let row =
            |s, k: &str| rows.iter().find(|r| r.section == s && r.key == k).map(|r| (r.records, r.failed, r.denied));
        assert_eq!(row("member", "alice"), Some((3, 2, 1)), "checkpoints are not counted");
        assert_eq!(row("file", "a"), Some((2, 1, 1)));
        assert_eq!(row("op", "open"), Some((2, 1, 1)));
        assert_eq!(row("failure", "EACCES"), Some((1, 1, 1)));
        assert_eq!(row("failure", "ENOENT"), Some((1, 1, 0)));
        assert_eq!(row("denial", "alice a"), Some((1, 1, 1)));
        assert_eq!(rows.iter().find(|r| r.key == "alice").unwrap().first, time::format_ns(3));
        assert_eq!(rows.iter().map(|r| r.section).collect::<Vec<_>>().first(), Some(&"member"));
    }
}
