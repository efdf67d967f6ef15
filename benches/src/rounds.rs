//! Interleaved rounds for comparison benchmarks: every side of a workload
//! runs once per round, the starting side moving by one each round, and a
//! side's figure is the median of its rounds.
//!
//! Interleaving spreads the noise of a shared machine (another build, a
//! burst of writeback) over every side instead of letting it land on
//! whichever side happened to run then; moving the start keeps any side
//! from always following the same neighbour (whose dirty pages it could
//! otherwise inherit).
//!
//! A side whose run is a count of like items (durable appends) can be
//! *sliced*: every sliced side of the round is set up first, then each
//! runs a tenth (say) of its items in turn, ten times over, and its round
//! is the sum of its slices. On a disk whose `fdatasync` latency moves
//! between regimes for seconds at a time (another process's writeback),
//! every side then sees every regime, instead of one side drawing a slow
//! stretch for its whole run.

use std::time::Duration;

/// One library (or baseline) of a workload: either a run that does its
/// set-up, times the measured part and cleans up, or the reason it cannot
/// do the workload.
pub struct Side<'a> {
    /// Name printed in the table.
    pub name: &'static str,
    /// What the side does, or why it is not applicable.
    pub kind: SideKind<'a>,
}

/// A run in progress of a sliced side: set up when it was made, cleaned up
/// when dropped (neither timed).
pub trait Slices {
    /// Runs `items` more items and returns their wall time.
    fn run(&mut self, items: u64) -> Duration;
}

/// Makes a fresh run of a sliced side.
pub type SlicesFactory<'a> = Box<dyn FnMut() -> Box<dyn Slices + 'a> + 'a>;

/// What a [`Side`] does.
pub enum SideKind<'a> {
    /// Runs once and returns the measured wall time (set-up and clean-up
    /// are not in it).
    Run(Box<dyn FnMut() -> Duration + 'a>),
    /// Runs `items` items per round in `slices` slices, interleaved with
    /// the other sliced sides.
    Sliced {
        /// Items of one round.
        items: u64,
        /// Slices of one round.
        slices: u64,
        /// Sets up a fresh run.
        start: SlicesFactory<'a>,
    },
    /// The library cannot do the workload, and why.
    NotApplicable(&'static str),
}

impl<'a> Side<'a> {
    /// A side that runs `run` once per round.
    pub fn run(name: &'static str, run: impl FnMut() -> Duration + 'a) -> Self {
        Side {
            name,
            kind: SideKind::Run(Box::new(run)),
        }
    }

    /// A side that runs `items` items per round in `slices` slices, on a
    /// fresh run from `start` each round.
    ///
    /// # Panics
    ///
    /// When `slices` is 0 or above `items`.
    pub fn sliced<S: Slices + 'a>(
        name: &'static str,
        items: u64,
        slices: u64,
        mut start: impl FnMut() -> S + 'a,
    ) -> Self {
        assert!(
            slices > 0 && slices <= items,
            "every slice runs at least one item"
        );
        Side {
            name,
            kind: SideKind::Sliced {
                items,
                slices,
                start: Box::new(move || Box::new(start()) as Box<dyn Slices + 'a>),
            },
        }
    }

    /// A side that cannot do the workload, printed as n/a with `reason`.
    pub fn not_applicable(name: &'static str, reason: &'static str) -> Self {
        Side {
            name,
            kind: SideKind::NotApplicable(reason),
        }
    }
}

/// What one side measured: its rounds, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The measured time of each round, in the order they ran.
    Measured(Vec<Duration>),
    /// Why the side could not run the workload.
    NotApplicable(&'static str),
}

impl Outcome {
    /// The median round, `None` for a side that did not run.
    pub fn median(&self) -> Option<Duration> {
        match self {
            Outcome::Measured(durations) => Some(median(durations)),
            Outcome::NotApplicable(_) => None,
        }
    }

    /// The fastest and slowest rounds, `None` for a side that did not run.
    pub fn range(&self) -> Option<(Duration, Duration)> {
        match self {
            Outcome::Measured(durations) => {
                Some((*durations.iter().min()?, *durations.iter().max()?))
            }
            Outcome::NotApplicable(_) => None,
        }
    }
}

/// Items of slice `index` of `slices` over `items`: equal shares, the
/// first `items % slices` slices one more.
fn slice_items(items: u64, slices: u64, index: u64) -> u64 {
    items / slices + u64::from(index < items % slices)
}

/// Runs `rounds` rounds over `sides`: in round `r` the sides run in order
/// starting from side `r % sides.len()`, whole runs first, then the slices
/// of the sliced sides in turn. `after_each` is called with the side's name
/// and time after every round of it (progress output). Returns one outcome
/// per side, in the order of `sides`.
///
/// # Panics
///
/// When `rounds` is 0: there would be no median.
pub fn run_rounds(
    sides: &mut [Side<'_>],
    rounds: usize,
    mut after_each: impl FnMut(&str, Duration),
) -> Vec<Outcome> {
    assert!(rounds > 0, "a median needs at least one round");
    let mut measured: Vec<Vec<Duration>> = sides.iter().map(|_| Vec::new()).collect();
    let count = sides.len();
    for round in 0..rounds {
        let order: Vec<usize> = (0..count).map(|step| (round + step) % count).collect();
        let mut live: Vec<Option<Box<dyn Slices + '_>>> = sides.iter().map(|_| None).collect();
        for &index in &order {
            let side = &mut sides[index];
            match &mut side.kind {
                SideKind::Run(run) => {
                    let elapsed = run();
                    after_each(side.name, elapsed);
                    measured[index].push(elapsed);
                }
                SideKind::Sliced { start, .. } => live[index] = Some(start()),
                SideKind::NotApplicable(_) => {}
            }
        }
        run_slices(sides, &order, &mut live, &mut measured);
        for &index in &order {
            // Dropping the run cleans it up, outside any timed span.
            if live[index].take().is_some() {
                let elapsed = *measured[index].last().expect("just measured");
                after_each(sides[index].name, elapsed);
            }
        }
    }
    sides
        .iter()
        .zip(measured)
        .map(|(side, durations)| match side.kind {
            SideKind::NotApplicable(reason) => Outcome::NotApplicable(reason),
            _ => Outcome::Measured(durations),
        })
        .collect()
}

/// Runs the slices of the `live` runs in `order`, slice by slice, and
/// pushes each side's total onto `measured`.
fn run_slices(
    sides: &[Side<'_>],
    order: &[usize],
    live: &mut [Option<Box<dyn Slices + '_>>],
    measured: &mut [Vec<Duration>],
) {
    let plan = |index: usize| match sides[index].kind {
        SideKind::Sliced { items, slices, .. } => Some((items, slices)),
        _ => None,
    };
    let slices_max = order
        .iter()
        .filter_map(|&index| plan(index).map(|(_, slices)| slices))
        .max()
        .unwrap_or(0);
    let mut totals = vec![Duration::ZERO; sides.len()];
    for slice in 0..slices_max {
        for &index in order {
            if let (Some(run), Some((items, slices))) = (live[index].as_mut(), plan(index))
                && slice < slices
            {
                totals[index] += run.run(slice_items(items, slices, slice));
            }
        }
    }
    for &index in order {
        if live[index].is_some() {
            measured[index].push(totals[index]);
        }
    }
}

/// The median of `durations` (the mean of the two middle ones for an even
/// count).
///
/// # Panics
///
/// When `durations` is empty.
pub fn median(durations: &[Duration]) -> Duration {
    assert!(!durations.is_empty(), "no median of nothing");
    let mut sorted = durations.to_vec();
    sorted.sort_unstable();
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let ms = Duration::from_millis;
        assert_eq!(median(&[ms(5), ms(1), ms(3)]), ms(3));
        assert_eq!(
            median(&[ms(4), ms(1), ms(3), ms(2)]),
            Duration::from_micros(2500)
        );
    }

    #[test]
    fn every_side_runs_once_per_round_with_a_moving_start() {
        let order = std::cell::RefCell::new(Vec::new());
        let mut sides = vec![
            Side::run("a", || {
                order.borrow_mut().push("a");
                Duration::from_millis(1)
            }),
            Side::not_applicable("n/a", "cannot"),
            Side::run("b", || {
                order.borrow_mut().push("b");
                Duration::from_millis(2)
            }),
        ];
        let outcomes = run_rounds(&mut sides, 3, |_, _| {});
        drop(sides);
        assert_eq!(order.into_inner(), ["a", "b", "b", "a", "b", "a"]);
        assert_eq!(outcomes[0].median(), Some(Duration::from_millis(1)));
        assert_eq!(outcomes[1], Outcome::NotApplicable("cannot"));
        assert_eq!(
            outcomes[2].range().map(|(min, _)| min),
            Some(Duration::from_millis(2))
        );
    }
}
