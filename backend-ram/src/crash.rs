//! What a power cut leaves: which of the operations accepted since the last
//! sync reach the medium, and in which order.
//!
//! The device contract allows any outcome between "every unsynced write
//! lost" and "every one kept", in whole or in part and in any order. A
//! [`CrashModel`] names one outcome; [`survivors`] turns it into, for each
//! device, the list of its pending operations to replay over the durable
//! copy, in replay order. Overlapping operations therefore resolve as the
//! order says: the last one applied wins. An operation the cut interrupted
//! is one pending operation like the others, torn as the plan said.
//!
//! Enumerating crash states is then a loop over [`CrashModel::all_subsets`]
//! (every subset, in issue order) or [`CrashModel::all_arrangements`]
//! (every subset in every order).

use crate::rng::Rng;

/// Most pending operations [`CrashModel::all_subsets`] enumerates: 2^20
/// states is already a long test.
pub const SUBSETS_PENDING_MAX: usize = 20;

/// Most pending operations [`CrashModel::all_arrangements`] enumerates:
/// 1957 states for 6.
pub const ARRANGEMENTS_PENDING_MAX: usize = 6;

/// What survives a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survivors {
    /// Only synced bytes: every unsynced write is lost.
    Durable,
    /// Every accepted write, synced or not.
    Live,
}

/// Which unsynced operations a power cut lets reach the medium, and in
/// which order.
///
/// Pending operations are numbered from 0, oldest first: on a
/// [`RamDevice`](crate::RamDevice), its own (see
/// [`RamDevice::pending_writes`](crate::RamDevice::pending_writes)); on a
/// [`RamStore`](crate::RamStore), each segment's in turn, segments in
/// sequence order (see
/// [`RamStore::pending_writes`](crate::RamStore::pending_writes)). Order only
/// matters within a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CrashModel {
    /// Every unsynced operation lost.
    Durable,
    /// Every unsynced operation kept, in issue order.
    Live,
    /// The operations whose bit is set in the mask (bit `i` for operation
    /// `i`), in issue order; operations from 64 on are lost.
    Subset(u64),
    /// Exactly these operations, replayed in this order.
    ///
    /// The device panics on an index that is not pending or is listed
    /// twice: that is a bug in the test.
    Exactly(Vec<usize>),
    /// Each operation kept with probability 1/2, the survivors replayed in
    /// a random order, drawn from `seed`.
    Random {
        /// The seed of every choice.
        seed: u64,
    },
}

impl From<Survivors> for CrashModel {
    fn from(survivors: Survivors) -> Self {
        match survivors {
            Survivors::Durable => CrashModel::Durable,
            Survivors::Live => CrashModel::Live,
        }
    }
}

impl CrashModel {
    /// Every subset of `pending_count` operations, each replayed in issue
    /// order: `2^pending_count` models, `Durable`-like first and `Live`-like
    /// last.
    ///
    /// # Panics
    ///
    /// When `pending_count` exceeds [`SUBSETS_PENDING_MAX`].
    pub fn all_subsets(pending_count: usize) -> impl Iterator<Item = CrashModel> {
        assert!(
            pending_count <= SUBSETS_PENDING_MAX,
            "CrashModel::all_subsets: {pending_count} pending operations, at most \
             {SUBSETS_PENDING_MAX} enumerated"
        );
        (0..1u64 << pending_count).map(CrashModel::Subset)
    }

    /// Every subset of `pending_count` operations in every order, as
    /// `Exactly` models: the empty one first.
    ///
    /// # Panics
    ///
    /// When `pending_count` exceeds [`ARRANGEMENTS_PENDING_MAX`].
    pub fn all_arrangements(pending_count: usize) -> Vec<CrashModel> {
        assert!(
            pending_count <= ARRANGEMENTS_PENDING_MAX,
            "CrashModel::all_arrangements: {pending_count} pending operations, at most \
             {ARRANGEMENTS_PENDING_MAX} enumerated"
        );
        let mut models = Vec::new();
        let mut prefix = Vec::with_capacity(pending_count);
        let mut used = vec![false; pending_count];
        arrange(&mut prefix, &mut used, &mut models);
        models
    }
}

/// Pushes `prefix` and, recursively, every extension of it by unused
/// indices. Depth is bounded by `used.len()`.
fn arrange(prefix: &mut Vec<usize>, used: &mut [bool], models: &mut Vec<CrashModel>) {
    models.push(CrashModel::Exactly(prefix.clone()));
    for index in 0..used.len() {
        if used[index] {
            continue;
        }
        used[index] = true;
        prefix.push(index);
        arrange(prefix, used, models);
        prefix.pop();
        used[index] = false;
    }
}

/// For devices with `pending_counts` pending operations each, the indices
/// of each device's operations that `model` replays, in replay order.
///
/// # Panics
///
/// When an `Exactly` model names an index that is not pending, or one
/// twice.
pub(crate) fn survivors(model: &CrashModel, pending_counts: &[usize]) -> Vec<Vec<usize>> {
    let every = || pending_counts.iter().map(|&count| (0..count).collect());
    match model {
        CrashModel::Durable => vec![Vec::new(); pending_counts.len()],
        CrashModel::Live => every().collect(),
        CrashModel::Subset(mask) => {
            let mut first = 0usize;
            let mut lists = Vec::with_capacity(pending_counts.len());
            for &count in pending_counts {
                let kept = (0..count)
                    .filter(|index| {
                        u32::try_from(first + index)
                            .ok()
                            .and_then(|bit| mask.checked_shr(bit))
                            .is_some_and(|shifted| shifted & 1 == 1)
                    })
                    .collect();
                lists.push(kept);
                first += count;
            }
            lists
        }
        CrashModel::Exactly(order) => exactly(order, pending_counts),
        CrashModel::Random { seed } => {
            let mut rng = Rng::new(*seed);
            let mut lists: Vec<Vec<usize>> = every().collect();
            for list in &mut lists {
                list.retain(|_| rng.next_u64() & 1 == 1);
                rng.shuffle(list);
            }
            lists
        }
    }
}

fn exactly(order: &[usize], pending_counts: &[usize]) -> Vec<Vec<usize>> {
    let total: usize = pending_counts.iter().sum();
    let mut seen = vec![false; total];
    let mut lists = vec![Vec::new(); pending_counts.len()];
    for &global in order {
        assert!(
            global < total,
            "CrashModel::Exactly: operation {global} is not pending ({total} are)"
        );
        assert!(
            !seen[global],
            "CrashModel::Exactly: operation {global} listed twice"
        );
        seen[global] = true;
        let mut local = global;
        for (device, &count) in pending_counts.iter().enumerate() {
            if local < count {
                lists[device].push(local);
                break;
            }
            local -= count;
        }
    }
    lists
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_and_live_are_the_extremes() {
        assert_eq!(
            survivors(&CrashModel::Durable, &[2, 0, 1]),
            vec![vec![], vec![], vec![]]
        );
        assert_eq!(
            survivors(&CrashModel::Live, &[2, 0, 1]),
            vec![vec![0, 1], vec![], vec![0]]
        );
        assert_eq!(
            CrashModel::from(Survivors::Live),
            CrashModel::Live,
            "the old names map over"
        );
    }

    #[test]
    fn a_subset_numbers_operations_across_devices() {
        // Bits 0 and 2: device 0's first, device 1's only.
        assert_eq!(
            survivors(&CrashModel::Subset(0b101), &[2, 1]),
            vec![vec![0], vec![0]]
        );
        assert_eq!(
            survivors(&CrashModel::Subset(u64::MAX), &[70]),
            vec![(0..64).collect::<Vec<_>>()],
            "operations from 64 on are lost"
        );
    }

    #[test]
    fn exactly_keeps_the_order_within_each_device() {
        assert_eq!(
            survivors(&CrashModel::Exactly(vec![2, 1, 0]), &[2, 1]),
            vec![vec![1, 0], vec![0]]
        );
    }

    #[test]
    #[should_panic(expected = "listed twice")]
    fn exactly_refuses_a_repeated_operation() {
        survivors(&CrashModel::Exactly(vec![0, 0]), &[2]);
    }

    #[test]
    #[should_panic(expected = "operation 3 is not pending")]
    fn exactly_refuses_an_operation_that_is_not_pending() {
        survivors(&CrashModel::Exactly(vec![3]), &[2, 1]);
    }

    #[test]
    fn random_is_a_deterministic_reordered_subset() {
        let model = CrashModel::Random { seed: 42 };
        let lists = survivors(&model, &[10, 10]);
        assert_eq!(lists, survivors(&model, &[10, 10]), "same seed, same crash");
        for list in &lists {
            let mut sorted = list.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), list.len(), "no repeats");
            assert!(sorted.iter().all(|&index| index < 10));
        }
        let shapes: Vec<_> = (0..20)
            .map(|seed| survivors(&CrashModel::Random { seed }, &[6]))
            .collect();
        assert!(shapes.iter().any(|l| l[0].len() < 6), "something lost");
        assert!(
            shapes.iter().any(|l| l[0].windows(2).any(|w| w[0] > w[1])),
            "something reordered"
        );
    }

    #[test]
    fn enumeration_counts() {
        assert_eq!(CrashModel::all_subsets(3).count(), 8);
        let arrangements = CrashModel::all_arrangements(3);
        // 1 + 3 + 3*2 + 3*2*1 ordered subsets.
        assert_eq!(arrangements.len(), 16);
        assert_eq!(arrangements[0], CrashModel::Exactly(vec![]));
        let mut unique = arrangements.clone();
        unique.sort_by_key(|model| format!("{model:?}"));
        unique.dedup();
        assert_eq!(unique.len(), 16, "no arrangement twice");
    }

    #[test]
    #[should_panic(expected = "at most 20 enumerated")]
    fn too_many_subsets_panics() {
        let _ = CrashModel::all_subsets(21);
    }
}
