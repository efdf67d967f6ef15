//! `segwal verify`: the log's own full checksum scan
//! ([`segwal::Wal::verify`]), read-only, with a progress bar on a terminal.
//!
//! The scan reads every segment to its end, so the bar counts bytes read
//! against the segments' total size. The log reports the newest segment's
//! tail whenever it is not blank; this command tells a torn tail (never
//! acknowledged, harmless) from damage, and only damage is a problem.

use std::io::{IsTerminal, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use segwal::{VerifyProblem, VerifyProblemKind, VerifyReport};
use serde::Serialize;

use crate::args::ReportFormat;
use crate::error::{Describe, Outcome, is_damage, segment_path};
use crate::log::{self, TailFinding};
use crate::text::{count, describe_tail};

/// The report, as JSON prints it.
#[derive(Debug, Serialize)]
struct Report {
    dir: String,
    clean: bool,
    segments: u64,
    records: u64,
    bytes: u64,
    /// Every problem the scan counted; `problems` lists at most 16.
    problem_count: u64,
    problems: Vec<Problem>,
    tail: TailFinding,
    /// The log did not open: its headers or chain are damaged.
    open_error: Option<String>,
}

/// One problem.
#[derive(Debug, Serialize)]
struct Problem {
    segment: u64,
    file: String,
    offset: u64,
    lsn: u64,
    what: String,
}

/// Runs `segwal verify`.
///
/// # Errors
///
/// A path that is not a log, a failed read. Damage is not an error: it is
/// reported, with [`Outcome::Problems`].
pub fn run(dir: &Path, format: ReportFormat, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let progress = std::io::stderr().is_terminal().then(new_bar);
    let opened = log::open_read_only(dir, progress.clone());
    let mut log = match opened {
        Ok(log) => log,
        Err(error) => {
            if let Some(bar) = &progress {
                bar.finish_and_clear();
            }
            if !is_damage(&error) {
                return Err(error);
            }
            print(out, format, &Report::unopened(dir, &error))?;
            return Ok(Outcome::Problems);
        }
    };
    if let Some(bar) = &progress {
        // Shown from here: the open's reads are not part of the scan.
        let total = log
            .segments()
            .iter()
            .map(|info| u64::from(info.header.segment_size_bytes))
            .sum();
        bar.set_length(total);
        bar.set_position(0);
        bar.set_draw_target(ProgressDrawTarget::stderr());
    }
    let scanned = log.verify().describe(dir);
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    let scanned = scanned?;
    let tail = log::newest_tail(&mut log, dir)?;
    let report = Report::new(dir, &scanned, tail);
    print(out, format, &report)?;
    Ok(if report.clean {
        Outcome::Success
    } else {
        Outcome::Problems
    })
}

impl Report {
    /// The report of a scan, without the problem a torn tail shows as: the
    /// log reports the newest segment's tail whenever it is not blank.
    fn new(dir: &Path, scanned: &VerifyReport, tail: TailFinding) -> Self {
        let torn_at = match tail {
            TailFinding::Torn {
                segment, offset, ..
            } => Some((segment, offset)),
            _ => None,
        };
        let is_torn_tail = |problem: &VerifyProblem| {
            torn_at == Some((problem.segment, problem.offset))
                && matches!(problem.kind, VerifyProblemKind::Corrupt)
        };
        let problems: Vec<Problem> = scanned
            .problems
            .iter()
            .filter(|problem| !is_torn_tail(problem))
            .map(|problem| Problem {
                segment: problem.segment,
                file: segment_path(dir, problem.segment).display().to_string(),
                offset: problem.offset,
                lsn: problem.lsn,
                what: describe_problem(problem.kind),
            })
            .collect();
        let torn_dropped = (scanned.problems.len() - problems.len()) as u64;
        let problem_count = scanned.problem_count - torn_dropped;
        Report {
            dir: dir.display().to_string(),
            clean: problem_count == 0,
            segments: scanned.segments,
            records: scanned.records,
            bytes: scanned.bytes,
            problem_count,
            problems,
            tail,
            open_error: None,
        }
    }

    /// The report of a log whose headers or chain are too damaged to open.
    fn unopened(dir: &Path, error: &anyhow::Error) -> Self {
        Report {
            dir: dir.display().to_string(),
            clean: false,
            segments: 0,
            records: 0,
            bytes: 0,
            problem_count: 1,
            problems: Vec::new(),
            tail: TailFinding::Clean,
            open_error: Some(format!("{error:#}")),
        }
    }
}

/// A bar drawn nowhere until the scan starts.
fn new_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
    let style = ProgressStyle::with_template(
        "verifying {bar:40} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
    );
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar
}

fn describe_problem(kind: VerifyProblemKind) -> String {
    match kind {
        VerifyProblemKind::Corrupt => {
            "damaged record: it does not validate, and acknowledged records were expected here"
                .to_owned()
        }
        VerifyProblemKind::MissingRecords { expected, found } => {
            format!("sealed segment ends after {found} of its {expected} records")
        }
        VerifyProblemKind::Header => "segment header unreadable".to_owned(),
        _ => "problem".to_owned(),
    }
}

fn print(out: &mut dyn Write, format: ReportFormat, report: &Report) -> anyhow::Result<()> {
    if format == ReportFormat::Json {
        serde_json::to_writer_pretty(&mut *out, report)?;
        writeln!(out)?;
        return Ok(());
    }
    if let Some(error) = &report.open_error {
        writeln!(out, "problem: the log does not open: {error}")?;
        writeln!(out, "{}: damaged", report.dir)?;
        return Ok(());
    }
    for problem in &report.problems {
        writeln!(
            out,
            "problem: segment {} offset {} LSN {}: {} ({})",
            problem.segment, problem.offset, problem.lsn, problem.what, problem.file
        )?;
    }
    let unlisted = report.problem_count - report.problems.len() as u64;
    if unlisted > 0 {
        writeln!(out, "problem: {unlisted} more not listed")?;
    }
    if report.tail != TailFinding::Clean {
        writeln!(out, "tail: {}", describe_tail(&report.tail))?;
    }
    let scanned = format!(
        "{}, {}, {} bytes of records checked",
        count(report.segments, "segment"),
        count(report.records, "record"),
        report.bytes
    );
    if report.clean {
        writeln!(out, "{}: clean ({scanned})", report.dir)?;
    } else {
        writeln!(
            out,
            "{}: {} ({scanned})",
            report.dir,
            count(report.problem_count, "problem")
        )?;
    }
    Ok(())
}
