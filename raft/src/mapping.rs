//! Raft log index <-> segwal LSN, as pure functions.
//!
//! segwal's LSNs are dense from 1 and never reused; after
//! `truncate_after(lsn)` the next append gets `lsn + 1`. A Raft log's
//! indexes are dense too, but start at 0 (or wherever the first entry a
//! node receives is) and may jump forward: after a snapshot is installed,
//! everything up to its last index is purged and the next entry follows the
//! snapshot, however short the local log was.
//!
//! So the log is one *run*: the record at `base_lsn` holds index
//! `base_index`, and each later record the next index. Records before
//! `base_lsn` belong to an earlier run and are all purged. The run moves
//! (*rebase*) only when no entry is left to see:
//!
//! - `purge(i)` beyond the log's end: the next append is `i + 1`, at the
//!   next LSN;
//! - an append to an empty log at another index than the one expected (a
//!   fresh log whose first entry is not 0, say). Entries of such a run at
//!   or below the last purged index stay hidden: what is purged stays
//!   purged. (openraft never appends below its purge point; its storage
//!   test suite does, after a purge that follows the state machine.)
//!
//! `truncate` keeps the run (the next LSN is the cut, and the next index is
//! the truncated one). The mapping and the last purged index are saved
//! with the vote (see `meta`), before the segwal operation they allow: a
//! crash between the two leaves records that the saved mapping hides
//! (purged, or of an earlier run), never a hole.
//!
//! Which records are visible: LSNs from the largest of `first_lsn` (what
//! checkpoints kept), `base_lsn` and the LSN of the first unpurged index,
//! up to `next_lsn`.

use std::ops::Range;

/// Where the Raft log sits in the segwal log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mapping {
    /// LSN of the first record of the current run.
    pub base_lsn: u64,
    /// Log index of the record at `base_lsn`.
    pub base_index: u64,
    /// First log index not purged: the last purged index + 1, 0 if none.
    pub kept_from_index: u64,
}

/// The segwal log's bounds: `first_lsn..next_lsn` are readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    /// First LSN still in the log (checkpoints move it).
    pub first_lsn: u64,
    /// LSN of the next append.
    pub next_lsn: u64,
}

/// What an append needs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendPlan {
    /// The entries continue the run.
    Continue,
    /// Save this mapping first: the entries start a new run.
    Rebase(Mapping),
}

/// Why an append cannot go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendRefusal {
    /// The log is not empty and the entries do not follow its last one.
    NotContiguous {
        /// The index the log expects.
        expected: u64,
    },
    /// The index is beyond what LSN arithmetic can reach.
    Overflow,
}

/// What a purge does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PurgePlan {
    /// The mapping to save first.
    pub mapping: Mapping,
    /// Then `checkpoint(lsn)`, when whole segments may go.
    pub checkpoint_lsn: Option<u64>,
}

impl Mapping {
    /// A new store: index 0 at LSN 1, nothing purged.
    pub(crate) const FRESH: Mapping = Mapping {
        base_lsn: 1,
        base_index: 0,
        kept_from_index: 0,
    };

    /// The index of the record at `lsn`, when it belongs to the run.
    pub(crate) fn index_of(&self, lsn: u64) -> Option<u64> {
        let offset = lsn.checked_sub(self.base_lsn)?;
        self.base_index.checked_add(offset)
    }

    /// The LSN of `index`, when the run reaches it.
    pub(crate) fn lsn_of(&self, index: u64) -> Option<u64> {
        let offset = index.checked_sub(self.base_index)?;
        self.base_lsn.checked_add(offset)
    }

    /// The LSN of the first index kept: `base_lsn` when every kept index
    /// is at or after the run's start; saturating past the end.
    fn kept_from_lsn(&self) -> u64 {
        match self.kept_from_index.checked_sub(self.base_index) {
            Some(offset) => self.base_lsn.saturating_add(offset),
            None => self.base_lsn,
        }
    }

    /// The LSNs whose records are log entries.
    pub(crate) fn visible(&self, bounds: Bounds) -> Range<u64> {
        let start = bounds
            .first_lsn
            .max(self.base_lsn)
            .max(self.kept_from_lsn());
        start.min(bounds.next_lsn)..bounds.next_lsn
    }

    /// The LSNs holding the entries of `indexes` that are visible.
    pub(crate) fn lsns_for(&self, bounds: Bounds, indexes: Range<u64>) -> Range<u64> {
        let visible = self.visible(bounds);
        let start = match self.lsn_of(indexes.start) {
            Some(lsn) => lsn,
            None if indexes.start < self.base_index => self.base_lsn,
            None => u64::MAX,
        };
        let end = match self.lsn_of(indexes.end) {
            Some(lsn) => lsn,
            None if indexes.end < self.base_index => self.base_lsn,
            None => u64::MAX,
        };
        let start = start.clamp(visible.start, visible.end);
        let end = end.clamp(start, visible.end);
        start..end
    }

    /// Checks the mapping against the log it came with: the run cannot
    /// start after the log's end (a mapping is saved only with a durable
    /// `next_lsn`, and the log never shrinks below a durable append).
    pub(crate) fn check(&self, bounds: Bounds) -> Result<(), String> {
        if self.base_lsn > bounds.next_lsn {
            return Err(format!(
                "the index mapping starts at LSN {} but the log ends before {}",
                self.base_lsn, bounds.next_lsn
            ));
        }
        if self.base_lsn == 0 {
            return Err("the index mapping starts at LSN 0".into());
        }
        Ok(())
    }

    /// Plans appending `count` entries from index `first`.
    pub(crate) fn plan_append(
        &self,
        bounds: Bounds,
        first: u64,
        count: u64,
    ) -> Result<AppendPlan, AppendRefusal> {
        if count
            .checked_sub(1)
            .and_then(|c| first.checked_add(c))
            .is_none()
            && count > 0
        {
            return Err(AppendRefusal::Overflow);
        }
        let expected = self.index_of(bounds.next_lsn);
        if expected == Some(first) {
            return Ok(AppendPlan::Continue);
        }
        if !self.visible(bounds).is_empty() {
            return Err(AppendRefusal::NotContiguous {
                expected: expected.unwrap_or(u64::MAX),
            });
        }
        Ok(AppendPlan::Rebase(Mapping {
            base_lsn: bounds.next_lsn,
            base_index: first,
            kept_from_index: self.kept_from_index,
        }))
    }

    /// Plans removing every entry from `index` on: `Some(lsn)` for
    /// `truncate_after(lsn)`, `None` when nothing visible is at or after
    /// `index`. Purged entries are gone already, so a cut below the first
    /// kept index removes every visible entry.
    pub(crate) fn plan_truncate(&self, bounds: Bounds, index: u64) -> Option<u64> {
        let visible = self.visible(bounds);
        let cut = match self.lsn_of(index) {
            Some(lsn) => lsn,
            None if index < self.base_index => self.base_lsn,
            None => return None,
        };
        let cut = cut.max(visible.start);
        // `cut >= visible.start >= first_lsn >= 1`: `cut - 1` is in the
        // range truncate_after accepts.
        (cut < visible.end).then(|| cut - 1)
    }

    /// Plans purging every entry up to `index`, inclusive. `None` when it
    /// is purged already.
    pub(crate) fn plan_purge(&self, bounds: Bounds, index: u64) -> Option<PurgePlan> {
        let kept_from_index = index.checked_add(1)?;
        if kept_from_index <= self.kept_from_index {
            return None;
        }
        let end_index = self.index_of(bounds.next_lsn);
        let mapping = if end_index.is_none_or(|end| kept_from_index > end) {
            // Past the log's end (a snapshot installed over a short log):
            // the next entry is `index + 1`, at the next LSN.
            Mapping {
                base_lsn: bounds.next_lsn,
                base_index: kept_from_index,
                kept_from_index,
            }
        } else {
            Mapping {
                kept_from_index,
                ..*self
            }
        };
        let start = mapping.visible(bounds).start;
        // checkpoint(lsn) needs first_lsn <= lsn < next_lsn; start <=
        // next_lsn, so start - 1 < next_lsn.
        let checkpoint_lsn = (start > bounds.first_lsn).then(|| start - 1);
        Some(PurgePlan {
            mapping,
            checkpoint_lsn,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(first_lsn: u64, next_lsn: u64) -> Bounds {
        Bounds {
            first_lsn,
            next_lsn,
        }
    }

    /// The visible log as (index, lsn) pairs.
    fn entries(mapping: &Mapping, b: Bounds) -> Vec<(u64, u64)> {
        mapping
            .visible(b)
            .map(|lsn| (mapping.index_of(lsn).expect("visible lsn maps"), lsn))
            .collect()
    }

    #[test]
    fn fresh_log_maps_index_0_to_lsn_1() {
        let m = Mapping::FRESH;
        assert_eq!(m.lsn_of(0), Some(1));
        assert_eq!(m.index_of(1), Some(0));
        assert_eq!(m.index_of(0), None);
        assert!(m.visible(bounds(1, 1)).is_empty());
        assert_eq!(m.plan_append(bounds(1, 1), 0, 3), Ok(AppendPlan::Continue));
        assert_eq!(entries(&m, bounds(1, 4)), vec![(0, 1), (1, 2), (2, 3)]);
    }

    #[test]
    fn first_entry_at_another_index_rebases() {
        let m = Mapping::FRESH;
        let plan = m.plan_append(bounds(1, 1), 2, 1);
        let Ok(AppendPlan::Rebase(m)) = plan else {
            panic!("{plan:?}")
        };
        assert_eq!(entries(&m, bounds(1, 2)), vec![(2, 1)]);
        assert_eq!(m.plan_append(bounds(1, 2), 3, 1), Ok(AppendPlan::Continue));
        assert_eq!(
            m.plan_append(bounds(1, 2), 5, 1),
            Err(AppendRefusal::NotContiguous { expected: 3 })
        );
        assert_eq!(
            m.plan_append(bounds(1, 2), u64::MAX, 2),
            Err(AppendRefusal::Overflow)
        );
        // Entries at or below the purged point, appended to an empty log,
        // start a run but stay hidden: what is purged stays purged.
        let purged = Mapping {
            kept_from_index: 10,
            ..Mapping::FRESH
        };
        let plan = purged.plan_append(bounds(1, 1), 8, 3);
        let Ok(AppendPlan::Rebase(m)) = plan else {
            panic!("{plan:?}")
        };
        assert_eq!(entries(&m, bounds(1, 4)), vec![(10, 3)]);
    }

    #[test]
    fn purge_inside_the_log_hides_and_checkpoints() {
        // Indexes 0..=10 at LSNs 1..=11.
        let m = Mapping::FRESH;
        let b = bounds(1, 12);
        let plan = m.plan_purge(b, 5).expect("purge");
        assert_eq!(plan.mapping.kept_from_index, 6);
        assert_eq!((plan.mapping.base_lsn, plan.mapping.base_index), (1, 0));
        assert_eq!(plan.checkpoint_lsn, Some(6));
        assert_eq!(entries(&plan.mapping, b).first(), Some(&(6, 7)));
        assert_eq!(plan.mapping.plan_purge(b, 5), None, "purged already");
        assert_eq!(plan.mapping.plan_purge(b, 3), None, "purged already");
        // A checkpoint that kept some of the purged records changes nothing.
        assert_eq!(entries(&plan.mapping, bounds(4, 12)).first(), Some(&(6, 7)));
    }

    #[test]
    fn purge_to_the_last_entry_keeps_the_run() {
        let m = Mapping::FRESH;
        let b = bounds(1, 12);
        let plan = m.plan_purge(b, 10).expect("purge");
        assert_eq!(plan.mapping.base_lsn, 1);
        assert!(plan.mapping.visible(b).is_empty());
        assert_eq!(plan.checkpoint_lsn, Some(11));
        assert_eq!(plan.mapping.plan_append(b, 11, 1), Ok(AppendPlan::Continue));
    }

    #[test]
    fn purge_past_the_end_rebases_at_the_next_lsn() {
        let m = Mapping::FRESH;
        let b = bounds(1, 12); // indexes 0..=10
        let plan = m.plan_purge(b, 20).expect("purge");
        assert_eq!(
            plan.mapping,
            Mapping {
                base_lsn: 12,
                base_index: 21,
                kept_from_index: 21
            }
        );
        assert!(plan.mapping.visible(b).is_empty());
        assert_eq!(plan.checkpoint_lsn, Some(11));
        assert_eq!(plan.mapping.plan_append(b, 21, 2), Ok(AppendPlan::Continue));
        assert_eq!(
            entries(&plan.mapping, bounds(1, 14)),
            vec![(21, 12), (22, 13)]
        );
        // Old records stay readable to segwal but never map to an index.
        assert_eq!(plan.mapping.index_of(11), None);
    }

    #[test]
    fn purge_of_an_empty_log_has_nothing_to_checkpoint() {
        let plan = Mapping::FRESH.plan_purge(bounds(1, 1), 0).expect("purge");
        assert_eq!(plan.checkpoint_lsn, None);
        assert_eq!(plan.mapping.kept_from_index, 1);
        assert_eq!(
            plan.mapping.plan_append(bounds(1, 1), 1, 1),
            Ok(AppendPlan::Continue)
        );
    }

    #[test]
    fn truncate_cuts_at_the_index_lsn_and_the_next_append_continues() {
        let m = Mapping::FRESH;
        let b = bounds(1, 12); // indexes 0..=10
        assert_eq!(m.plan_truncate(b, 11), None, "nothing at or after 11");
        assert_eq!(m.plan_truncate(b, 50), None);
        assert_eq!(m.plan_truncate(b, 6), Some(6));
        // After truncate_after(6): next_lsn 7, next index 6.
        assert_eq!(m.plan_append(bounds(1, 7), 6, 1), Ok(AppendPlan::Continue));
        assert_eq!(m.plan_truncate(b, 0), Some(0));
        assert_eq!(m.plan_truncate(b, u64::MAX), None);
    }

    #[test]
    fn truncate_below_the_purged_point_removes_only_visible_entries() {
        let m = Mapping {
            kept_from_index: 4,
            ..Mapping::FRESH
        };
        let b = bounds(3, 12);
        assert_eq!(m.plan_truncate(b, 2), Some(4), "cut at LSN 5 = index 4");
        let rebased = Mapping {
            base_lsn: 12,
            base_index: 21,
            kept_from_index: 21,
        };
        let b = bounds(1, 15); // indexes 21..=23
        assert_eq!(rebased.plan_truncate(b, 3), Some(11));
        assert_eq!(rebased.plan_truncate(b, 22), Some(12));
    }

    #[test]
    fn ranges_are_clamped_to_what_is_visible() {
        let m = Mapping {
            base_lsn: 5,
            base_index: 10,
            kept_from_index: 12,
        };
        let b = bounds(1, 10); // visible LSNs 7..10 = indexes 12..15
        assert_eq!(m.lsns_for(b, 0..100), 7..10);
        assert_eq!(m.lsns_for(b, 13..14), 8..9);
        assert_eq!(m.lsns_for(b, 0..3), 7..7);
        assert_eq!(m.lsns_for(b, 20..30), 10..10);
        assert_eq!(m.lsns_for(b, 14..u64::MAX), 9..10);
        assert_eq!(m.lsns_for(b, 3..3), 7..7);
    }

    #[test]
    fn a_mapping_past_the_log_is_refused() {
        let m = Mapping {
            base_lsn: 20,
            base_index: 0,
            kept_from_index: 0,
        };
        assert!(m.check(bounds(1, 19)).is_err());
        assert!(m.check(bounds(1, 20)).is_ok());
    }

    /// Random histories of append, truncate and purge against a model:
    /// a plain list of the log's indexes and the last purged index.
    #[test]
    fn histories_match_a_model() {
        let mut seed = 0x5eed_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _history in 0..300 {
            let mut m = Mapping::FRESH;
            let mut b = bounds(1, 1);
            let mut model: Vec<u64> = Vec::new(); // visible indexes
            let mut kept_from = 0u64;
            for _op in 0..40 {
                match next(4) {
                    0 | 1 => {
                        let first = match model.last() {
                            Some(last) => last + 1,
                            None => kept_from.saturating_sub(2) + next(5),
                        };
                        let count = 1 + next(4);
                        match m.plan_append(b, first, count).expect("append") {
                            AppendPlan::Continue => {}
                            AppendPlan::Rebase(new) => m = new,
                        }
                        b.next_lsn += count;
                        model.extend((first..first + count).filter(|&i| i >= kept_from));
                    }
                    2 => {
                        let index = kept_from + next(12);
                        if let Some(lsn) = m.plan_truncate(b, index) {
                            assert!(lsn + 1 >= b.first_lsn && lsn < b.next_lsn);
                            b.next_lsn = lsn + 1;
                        }
                        model.retain(|&i| i < index);
                    }
                    _ => {
                        let index = kept_from + next(14);
                        if let Some(plan) = m.plan_purge(b, index) {
                            m = plan.mapping;
                            if let Some(lsn) = plan.checkpoint_lsn {
                                assert!(lsn >= b.first_lsn && lsn < b.next_lsn);
                                // A checkpoint drops some whole segments:
                                // anything up to `lsn + 1`.
                                b.first_lsn += next(lsn + 2 - b.first_lsn);
                            }
                            kept_from = kept_from.max(index + 1);
                        }
                        model.retain(|&i| i > index);
                    }
                }
                assert!(m.check(b).is_ok());
                let got: Vec<u64> = entries(&m, b).into_iter().map(|(i, _)| i).collect();
                assert_eq!(got, model, "mapping {m:?} bounds {b:?}");
            }
        }
    }
}
