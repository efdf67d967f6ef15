//! The tables the comparison prints: one per workload with every side's
//! median, spread and speed relative to the raw baseline, then a summary
//! with segwal's ratios against the raw baseline and the best peer and the
//! targets of issue #6. All of it is Markdown, to paste into
//! BENCHMARKS.md.
//!
//! Every side of a workload does the same work (the same records), so a
//! ratio of speeds is the inverse ratio of median times: "segwal/raw 0.9"
//! means segwal gets through the workload at 90% of the raw baseline's
//! speed, "segwal/best peer 2.0" twice as fast as the fastest peer.

use std::time::Duration;

use segwal_benches::rounds::Outcome;

/// A side's name and what it measured.
pub(crate) type Measured = (&'static str, Outcome);

/// What a row is to the ratios.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The raw baseline (the first row).
    Raw,
    /// A way of doing the workload with segwal's public API; the fastest
    /// counts as segwal's figure.
    Segwal,
    /// A segwal row shown for information, left out of the ratios.
    Informational,
    /// Another library.
    Peer,
}

/// One row of a workload's table.
#[derive(Debug)]
pub(crate) struct Row {
    /// The side's name.
    pub(crate) name: &'static str,
    /// What it is to the ratios.
    pub(crate) role: Role,
    /// Its rounds.
    pub(crate) outcome: Outcome,
}

/// How a workload's time is printed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Unit {
    /// A time per item and a rate of items per second.
    PerItem {
        /// Items per run.
        items: u64,
        /// What one item is ("record", "read").
        item: &'static str,
    },
    /// Megabytes (10^6 bytes) of payload per second.
    Throughput {
        /// Payload bytes per run.
        bytes: u64,
    },
    /// The time of one run.
    Time,
}

/// What issue #6 asks of segwal in a workload, on top of being ahead of
/// every peer that does it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// At least this fraction of the raw baseline's speed.
    OfRaw(f64),
    /// At least this many times the named peer's speed.
    OfPeer(&'static str, f64),
    /// Open at least `peer_factor` times faster than the fastest peer, and
    /// flat: the `large` log opens in at most twice the time of the
    /// `small` one.
    OpenFlat {
        /// Required speed-up over the fastest peer.
        peer_factor: f64,
        /// segwal's row of the log every side opens.
        small: &'static str,
        /// segwal's row of the larger log.
        large: &'static str,
    },
    /// Only ahead of every peer.
    AheadOfPeers,
}

/// Everything one workload measured.
#[derive(Debug)]
pub(crate) struct WorkloadReport {
    /// "W1" to "W7".
    pub(crate) id: &'static str,
    /// What was run.
    pub(crate) title: String,
    /// How to print times.
    pub(crate) unit: Unit,
    /// Raw first, then segwal's rows and the peers.
    pub(crate) rows: Vec<Row>,
    /// What segwal should reach.
    pub(crate) target: Target,
}

/// A flatness bound: the large log may take at most this many times the
/// small one's open time (10 times the records for the full run).
const FLAT_FACTOR_MAX: f64 = 2.0;

impl WorkloadReport {
    fn median_of(&self, role: Role) -> Option<(&'static str, Duration)> {
        self.rows
            .iter()
            .filter(|row| row.role == role)
            .filter_map(|row| Some((row.name, row.outcome.median()?)))
            .min_by_key(|(_, median)| *median)
    }

    fn median_named(&self, name: &str) -> Option<Duration> {
        self.rows
            .iter()
            .find(|row| row.name == name)
            .and_then(|row| row.outcome.median())
    }

    /// segwal's fastest row.
    fn segwal(&self) -> Option<(&'static str, Duration)> {
        self.median_of(Role::Segwal)
    }

    /// The fastest peer.
    fn best_peer(&self) -> Option<(&'static str, Duration)> {
        self.median_of(Role::Peer)
    }

    fn raw(&self) -> Option<Duration> {
        self.median_of(Role::Raw).map(|(_, median)| median)
    }

    /// How the target reads, and whether segwal met it.
    fn verdict(&self) -> (String, bool) {
        let Some((_, segwal)) = self.segwal() else {
            return ("segwal did not run".to_string(), false);
        };
        let ahead = self
            .best_peer()
            .is_none_or(|(_, peer)| speed_ratio(segwal, peer) > 1.0);
        let ahead_text = "ahead of every peer";
        match self.target {
            Target::OfRaw(fraction) => {
                let met = self
                    .raw()
                    .is_some_and(|raw| speed_ratio(segwal, raw) >= fraction);
                (format!("≥ {fraction} of raw, {ahead_text}"), met && ahead)
            }
            Target::OfPeer(name, factor) => {
                let met = self
                    .median_named(name)
                    .is_some_and(|peer| speed_ratio(segwal, peer) >= factor);
                (format!("≥ {factor}× {name}, {ahead_text}"), met && ahead)
            }
            Target::OpenFlat {
                peer_factor,
                small,
                large,
            } => {
                let fast = self
                    .best_peer()
                    .is_none_or(|(_, peer)| speed_ratio(segwal, peer) >= peer_factor);
                let flat = match (self.median_named(small), self.median_named(large)) {
                    (Some(small), Some(large)) => {
                        large.as_secs_f64() / small.as_secs_f64() <= FLAT_FACTOR_MAX
                    }
                    _ => false,
                };
                (
                    format!(
                        "≥ {peer_factor}× the fastest peer; flat (larger log ≤ {FLAT_FACTOR_MAX}× the time)"
                    ),
                    fast && flat,
                )
            }
            Target::AheadOfPeers => (ahead_text.to_string(), ahead),
        }
    }
}

/// How many times faster `ours` is than `theirs` (their time over ours).
fn speed_ratio(ours: Duration, theirs: Duration) -> f64 {
    theirs.as_secs_f64() / ours.as_secs_f64()
}

/// A duration with a unit that keeps three or four significant digits.
fn human(duration: Duration) -> String {
    let nanos = duration.as_secs_f64() * 1e9;
    if nanos < 1e3 {
        format!("{nanos:.0} ns")
    } else if nanos < 1e6 {
        format!("{:.2} µs", nanos / 1e3)
    } else if nanos < 1e9 {
        format!("{:.2} ms", nanos / 1e6)
    } else {
        format!("{:.2} s", nanos / 1e9)
    }
}

/// A rate with thousands separators.
fn rate(per_second: f64) -> String {
    let digits = format!("{per_second:.0}");
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The figure of a median in the workload's unit.
fn figure(unit: Unit, median: Duration) -> String {
    match unit {
        Unit::PerItem { items, item } => {
            let per_item = median / u32::try_from(items).unwrap_or(u32::MAX);
            let per_second = items as f64 / median.as_secs_f64();
            format!(
                "{} per {item}, {} {item}s/s",
                human(per_item),
                rate(per_second)
            )
        }
        Unit::Throughput { bytes } => {
            format!("{:.0} MB/s", bytes as f64 / median.as_secs_f64() / 1e6)
        }
        Unit::Time => human(median),
    }
}

fn print_workload(report: &WorkloadReport) {
    println!("### {}: {}\n", report.id, report.title);
    println!("| side | median run | figure | rounds (min–max) | speed vs raw |");
    println!("|---|---:|---|---|---:|");
    let raw = report.raw();
    for row in &report.rows {
        let (Some(median), Some((min, max))) = (row.outcome.median(), row.outcome.range()) else {
            if let Outcome::NotApplicable(reason) = row.outcome {
                println!("| {} | n/a | {reason} | | |", row.name);
            }
            continue;
        };
        let versus_raw = raw.map_or(String::new(), |raw| {
            format!("{:.2}", speed_ratio(median, raw))
        });
        let note = if row.role == Role::Informational {
            " (not in the ratios)"
        } else {
            ""
        };
        println!(
            "| {}{note} | {} | {} | {} – {} | {versus_raw} |",
            row.name,
            human(median),
            figure(report.unit, median),
            human(min),
            human(max),
        );
    }
    println!();
}

/// Prints every workload's table, then the summary.
pub(crate) fn print(reports: &[WorkloadReport], mode: &str, rounds: usize, elapsed: Duration) {
    println!("## segwal against its peers ({mode} mode, {rounds} rounds, medians)\n");
    for report in reports {
        print_workload(report);
    }
    println!("### Summary\n");
    println!(
        "| workload | raw | segwal (fastest API) | fastest peer | segwal/raw | segwal/best peer | target | met |"
    );
    println!("|---|---|---|---|---:|---:|---|---|");
    for report in reports {
        let raw = report.raw();
        let segwal = report.segwal();
        let peer = report.best_peer();
        let (target, met) = report.verdict();
        let cell =
            |median: Option<Duration>| median.map_or("n/a".to_string(), |m| figure(report.unit, m));
        let ratio = |theirs: Option<Duration>| match (segwal, theirs) {
            (Some((_, ours)), Some(theirs)) => format!("{:.2}", speed_ratio(ours, theirs)),
            _ => "n/a".to_string(),
        };
        println!(
            "| {} | {} | {}: {} | {} | {} | {} | {target} | {} |",
            report.id,
            cell(raw),
            segwal.map_or("n/a", |(name, _)| name),
            cell(segwal.map(|(_, m)| m)),
            peer.map_or("n/a".to_string(), |(name, m)| format!(
                "{name}: {}",
                figure(report.unit, m)
            )),
            ratio(raw),
            ratio(peer.map(|(_, m)| m)),
            if met { "yes" } else { "**no**" },
        );
    }
    for report in reports {
        if let Target::OpenFlat { small, large, .. } = report.target
            && let (Some(small_median), Some(large_median)) =
                (report.median_named(small), report.median_named(large))
        {
            println!(
                "\n{}: flatness: `{large}` takes {:.2}× the time of `{small}`.",
                report.id,
                large_median.as_secs_f64() / small_median.as_secs_f64()
            );
        }
    }
    println!("\nTotal time of the run: {elapsed:.1?}.");
}
