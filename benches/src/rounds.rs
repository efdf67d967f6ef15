//! Interleaved rounds for comparison benchmarks: every side of a workload
//! runs once per round, the starting side moving by one each round, and a
//! side's figure is the median of its rounds.
//!
//! Interleaving spreads the noise of a shared machine (another build, a
//! burst of writeback) over every side instead of letting it land on
//! whichever side happened to run then; moving the start keeps any side
//! from always following the same neighbour (whose dirty pages it could
//! otherwise inherit).

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

/// What a [`Side`] does.
pub enum SideKind<'a> {
    /// Runs once and returns the measured wall time (set-up and clean-up
    /// are not in it).
    Run(Box<dyn FnMut() -> Duration + 'a>),
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

/// Runs `rounds` rounds over `sides`: in round `r` the sides run in order
/// starting from side `r % sides.len()`. `after_each` is called with the
/// side's name and time after every run (progress output). Returns one
/// outcome per side, in the order of `sides`.
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
        for step in 0..count {
            let index = (round + step) % count;
            let side = &mut sides[index];
            if let SideKind::Run(run) = &mut side.kind {
                let elapsed = run();
                after_each(side.name, elapsed);
                measured[index].push(elapsed);
            }
        }
    }
    sides
        .iter()
        .zip(measured)
        .map(|(side, durations)| match side.kind {
            SideKind::Run(_) => Outcome::Measured(durations),
            SideKind::NotApplicable(reason) => Outcome::NotApplicable(reason),
        })
        .collect()
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
