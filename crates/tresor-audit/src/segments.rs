//! A volume's logs verified together: the segments of each log (rotation)
//! must form one unbroken chain, a missing first part only where a verified
//! `prune` record removed it; and one summary over them all. See
//! `docs/AUDIT.md`, "Segments".

use std::collections::BTreeMap;

use crate::chain::hex;
use crate::verify::{Diagnosis, Problem, Report};

/// What a verify run found over all its logs: one line's worth.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Log files read.
    pub files: usize,
    /// Distinct logs (mounts or CLI sessions) among them.
    pub logs: usize,
    pub records: u64,
    pub checkpoints: u64,
    /// Files with a problem.
    pub tampered: usize,
    pub warnings: usize,
}

impl Summary {
    pub fn of(reports: &[&Report]) -> Summary {
        let mut mounts: Vec<[u8; 16]> = reports.iter().filter_map(|r| r.mount_id).collect();
        mounts.sort_unstable();
        mounts.dedup();
        Summary {
            files: reports.len(),
            logs: mounts.len(),
            records: reports.iter().map(|r| r.records as u64).sum(),
            checkpoints: reports.iter().map(|r| r.checkpoints as u64).sum(),
            tampered: reports.iter().filter(|r| !r.ok()).count(),
            warnings: reports.iter().map(|r| r.warnings.len()).sum(),
        }
    }

    pub fn ok(&self) -> bool {
        self.tampered == 0
    }
}

/// Checks that the segments of each log follow one another, and marks the
/// first segment that does not (or the last one, when the segment after it
/// is missing). Call it with every log of the volume: a segment left out
/// reads as removed.
pub fn link(reports: &mut [&mut Report]) {
    let pruned: Vec<_> = reports
        .iter()
        .filter(|r| r.ok())
        .flat_map(|r| r.prunes.iter().filter(|(seq, _)| r.verified_up_to.is_some_and(|v| *seq <= v)))
        .map(|(_, p)| p.clone())
        .collect();
    let mut by_mount: BTreeMap<[u8; 16], Vec<usize>> = BTreeMap::new();
    for (i, r) in reports.iter().enumerate() {
        if let (true, Some(m), Some(_)) = (r.ok(), r.mount_id, r.first_seq) {
            by_mount.entry(m).or_default().push(i);
        }
    }
    for (mount, mut segs) in by_mount {
        segs.sort_by_key(|&i| reports[i].first_seq);
        let first = &reports[segs[0]];
        let start = first.first_seq.expect("grouped on it");
        if start > 0 {
            let covered =
                pruned.iter().any(|p| p.mid == mount && p.last + 1 == start && Some(p.hash) == first.continues);
            if !covered {
                let detail = format!(
                    "the log of mount {} starts at seq {start}: its earlier segments are missing, and no verified \
                     prune record removed them",
                    hex(&mount)
                );
                set(&mut *reports[segs[0]], Diagnosis::Removed, 0, Some(start), detail);
                continue;
            }
        }
        for w in segs.windows(2) {
            let (a, b) = (&reports[w[0]], &reports[w[1]]);
            let (a_last, b_first) = (a.last_seq.unwrap_or(0), b.first_seq.unwrap_or(0));
            let problem = if b_first > a_last + 1 {
                Some((
                    Diagnosis::Removed,
                    format!("segment(s) holding seq {}..{} are missing", a_last + 1, b_first - 1),
                ))
            } else if b_first <= a_last {
                Some((Diagnosis::Inserted, format!("this segment repeats seq {b_first}, already in another segment")))
            } else if !a.rotated {
                Some((
                    Diagnosis::CutOff,
                    format!("the segment before (up to seq {a_last}) was not sealed by rotation: it was cut"),
                ))
            } else if b.continues != a.final_hash {
                Some((Diagnosis::Rewritten, "this segment does not continue the chain of the segment before".into()))
            } else if b.tree_start.is_some() && a.tree_end.is_some() && b.tree_start != a.tree_end {
                Some((
                    Diagnosis::Rewritten,
                    "this segment's Merkle range is not the tree of the records before it (its checkpoints' roots \
                     commit to another history)"
                        .into(),
                ))
            } else {
                None
            };
            if let Some((diagnosis, detail)) = problem {
                set(&mut *reports[w[1]], diagnosis, 0, Some(b_first), detail);
                break;
            }
        }
        let last = &mut *reports[*segs.last().expect("one at least")];
        if last.ok() && last.rotated {
            let next = last.last_seq.unwrap_or(0) + 1;
            let detail = format!("the segment after this one (from seq {next}) is missing");
            let index = last.records;
            set(last, Diagnosis::Removed, index, Some(next), detail);
        }
    }
}

fn set(r: &mut Report, diagnosis: Diagnosis, index: usize, seq: Option<u64>, detail: String) {
    r.problem = Some(Problem { diagnosis, index, offset: 0, seq, detail });
}

/// The segments `tresor audit prune --before` may remove: for each log,
/// from its start, the segments that verified, are sealed (they end with a
/// signed checkpoint after `segment-end` or `unmount`), hold no record from
/// `before_ns` on and no prune record, and whose segments before are
/// removed too (so what stays is one unbroken chain). Returns the indexes
/// into `reports` with what each prune record must say. Run [`link`] first.
pub fn prunable(reports: &[&Report], before_ns: u64) -> Vec<(usize, crate::record::Pruned)> {
    let mut by_mount: BTreeMap<[u8; 16], Vec<usize>> = BTreeMap::new();
    for (i, r) in reports.iter().enumerate() {
        if let (Some(m), Some(_)) = (r.mount_id, r.first_seq) {
            by_mount.entry(m).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    for (mid, mut segs) in by_mount {
        if segs.iter().any(|&i| !reports[i].ok()) {
            continue; // a log with a problem keeps all of its evidence
        }
        segs.sort_by_key(|&i| reports[i].first_seq);
        for i in segs {
            let r = reports[i];
            let eligible = r.sealed()
                && (r.rotated || r.closed)
                && r.prunes.is_empty()
                && r.last_time_ns.is_some_and(|t| t < before_ns);
            if !eligible {
                break;
            }
            let (Some(first), Some(last), Some(hash)) = (r.first_seq, r.last_seq, r.final_hash) else { break };
            out.push((i, crate::record::Pruned { mid, first, last, hash }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::Frontier;

    /// Two segments of one log that link on the chain: the second's Merkle
    /// range must also be the first's final tree.
    fn pair(start: Frontier) -> (Report, Report) {
        let mut end = Frontier::new();
        (0..4).for_each(|i| end.push(&[i]));
        let a = Report {
            mount_id: Some([1; 16]),
            first_seq: Some(0),
            last_seq: Some(3),
            final_hash: Some([7; 32]),
            rotated: true,
            tree_end: Some(end),
            ..Report::default()
        };
        let b = Report {
            mount_id: Some([1; 16]),
            first_seq: Some(4),
            last_seq: Some(9),
            continues: Some([7; 32]),
            closed: true,
            tree_start: Some(start),
            ..Report::default()
        };
        (a, b)
    }

    #[test]
    fn a_segment_whose_merkle_range_is_not_the_tree_before_it_is_rewritten() {
        let mut right = Frontier::new();
        (0..4).for_each(|i| right.push(&[i]));
        let (mut a, mut b) = pair(right);
        link(&mut [&mut a, &mut b]);
        assert!(a.ok() && b.ok(), "{b:?}");
        let mut wrong = Frontier::new();
        (0..4).for_each(|i| wrong.push(&[i + 1]));
        let (mut a, mut b) = pair(wrong);
        link(&mut [&mut a, &mut b]);
        assert_eq!(b.problem.map(|p| p.diagnosis), Some(Diagnosis::Rewritten));
    }
}
