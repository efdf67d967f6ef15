//! The command line: every subcommand, flag and exit code, as `clap`
//! derives them. The doc comments here are the `--help` text.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// What `--help` says after the list of commands.
const AFTER_HELP: &str = "\
Exit codes:
  0  success (verify: the log is clean; a torn tail counts as clean, see `verify --help`)
  1  problems found (verify), or repair refused to cut acknowledged records
  2  usage or environment error: a missing directory, a path that is a file,
     a directory that is not a segwal log, a locked log, a corrupt segment
     in a command other than verify, a failed read or write

info, dump, verify and tail open the log read-only: they take no lock and
write nothing, so they work beside a live writer. repair and append take the
log's lock, and refuse a log another process holds.";

/// Inspect, verify, repair, append to and follow a segwal write-ahead log
/// directory.
#[derive(Debug, Parser)]
#[command(name = "segwal", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the log's segments, LSNs, checksum, tail state and lock holder.
    ///
    /// For each segment: its sequence number, LSN range, size and fill; for
    /// the log: its first and next LSN, checksum kind, how its newest
    /// segment ends (clean, torn, damaged) and the pid of a writer holding
    /// its lock.
    Info {
        /// The log directory.
        dir: PathBuf,
        /// Output format: a table for people, or one JSON object.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Print records with their LSN, segment, offset and length.
    ///
    /// `text` prints a printable UTF-8 payload quoted and anything else as
    /// hex, both cut after 256 bytes; `hex` prints every payload in full as
    /// a hex dump; `json` prints one JSON object per line, with the payload
    /// in full as `hex` and, when it is UTF-8, as `utf8`.
    Dump {
        /// The log directory.
        dir: PathBuf,
        /// First LSN to print (default: the log's first).
        #[arg(long, value_name = "LSN")]
        from: Option<u64>,
        /// Last LSN to print, inclusive (default: the log's last).
        #[arg(long, value_name = "LSN")]
        to: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = RecordFormat::Text)]
        format: RecordFormat,
    },
    /// Read every segment and check every checksum and record count.
    ///
    /// Prints the segment, offset and LSN of every problem and exits 1 when
    /// there is one. A torn tail (bytes a writer was writing when it
    /// stopped, never acknowledged) is reported but is not a problem: the
    /// next read-write open, or `segwal repair`, cuts it. Shows a progress
    /// bar when stderr is a terminal.
    Verify {
        /// The log directory.
        dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Cut a torn tail, and damaged records only when told to.
    ///
    /// A torn tail (bytes a writer was writing when it stopped, never
    /// acknowledged) is cut. With --truncate-at-corruption, the log is also
    /// cut just before its first damaged record.
    ///
    /// Without --truncate-at-corruption, damage to records that were
    /// acknowledged is refused (exit 1) and nothing is written. repair never
    /// creates a log, and never touches a log whose lock another process
    /// holds.
    Repair {
        /// The log directory.
        dir: PathBuf,
        /// Cut the log just before the first damaged record, dropping that
        /// record and every later one (point-in-time recovery).
        #[arg(long)]
        truncate_at_corruption: bool,
        /// Say what repair would do, and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Append records read from stdin, one per line or length-prefixed.
    ///
    /// A line becomes a record without its newline. The records are durable
    /// when the command exits 0; they are not one atomic batch. Creates the
    /// log when DIR is missing or empty; refuses a directory that holds
    /// other files but no segment.
    Append {
        /// The log directory.
        dir: PathBuf,
        /// Read records as a little-endian u32 length followed by that many
        /// bytes, instead of lines.
        #[arg(long)]
        length_prefixed: bool,
        /// Size of new segment files (default: the newest segment's size,
        /// or 64 MiB for a new log).
        #[arg(long, value_name = "BYTES")]
        segment_size: Option<u64>,
    },
    /// Print the last records; with --follow, the new ones as they come.
    ///
    /// --follow polls the log read-only and runs until interrupted.
    Tail {
        /// The log directory.
        dir: PathBuf,
        /// Keep polling the log for new records.
        #[arg(short, long)]
        follow: bool,
        /// How many of the existing records to print first.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: u64,
        /// Output format, as for dump.
        #[arg(long, value_enum, default_value_t = RecordFormat::Text)]
        format: RecordFormat,
        /// How often --follow looks for new records, in milliseconds.
        #[arg(long, value_name = "MS", default_value_t = 100)]
        poll_ms: u64,
    },
    /// Show the main job: durable appends, a writer killed, nothing lost.
    ///
    /// In a temporary directory: several threads append with durable
    /// acknowledgements, a writer process is killed with SIGKILL in the
    /// middle of writing, and the reopened log is checked for every
    /// acknowledged record. Prints the figures: records, throughput,
    /// recovery time, what was discarded.
    Demo,
    /// The writer process the demo kills (not for direct use).
    #[command(hide = true)]
    DemoWriter {
        /// The log directory.
        dir: PathBuf,
        /// Appending threads.
        #[arg(long)]
        threads: u32,
        /// Size of new segment files.
        #[arg(long)]
        segment_size: u64,
    },
}

/// Output of the reporting commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// For people.
    Text,
    /// One JSON object.
    Json,
}

/// Output of the commands that print records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecordFormat {
    /// One line per record.
    Text,
    /// One JSON object per line.
    Json,
    /// A header line and a hex dump per record.
    Hex,
}
