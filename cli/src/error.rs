//! Errors as a person reads them: one line saying what went wrong and
//! where (the directory, or the segment file and offset), and the exit
//! codes.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use segwal_std::FileError;

/// How a command that ran to its end came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: verify found problems, or repair refused to cut
    /// acknowledged records.
    Problems,
}

/// Exit code for usage and environment errors (clap uses it too).
pub const EXIT_ERROR: u8 = 2;

/// A failure of the log, already worded for the user.
#[derive(Debug)]
pub struct LogError {
    message: String,
    /// The bytes of the log are damaged (as opposed to a path, lock or I/O
    /// problem): `verify` reports this as a problem found.
    pub damaged: bool,
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LogError {}

impl LogError {
    /// An error worded by the caller.
    pub fn new(message: String, damaged: bool) -> Self {
        LogError { message, damaged }
    }
}

/// Where segment `sequence` of the log in `dir` lives.
pub fn segment_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("{sequence:020}.seg"))
}

/// Words an error of the std backend.
pub fn describe(error: &segwal_std::Error, dir: &Path) -> LogError {
    let message = match error {
        segwal_std::Error::Locked { path, holder_pid } => {
            let holder = holder_pid.map_or_else(
                || "another process (its pid is not recorded)".to_owned(),
                |pid| format!("process {pid}"),
            );
            format!(
                "{}: log is locked by {holder}; stop that writer first \
                 (info, dump, verify and tail work beside it)",
                path.display()
            )
        }
        segwal_std::Error::NotADirectory(path) => {
            format!("{}: is a file, not a log directory", path.display())
        }
        segwal_std::Error::Io { path, source } => describe_io(path, source),
        segwal_std::Error::Log(error) => return describe_log(error, dir),
        other => format!("{}: {other}", dir.display()),
    };
    LogError::new(message, false)
}

/// Words an I/O error on `path`.
pub fn describe_io(path: &Path, error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => format!("{}: no such directory", path.display()),
        io::ErrorKind::PermissionDenied => format!("{}: permission denied", path.display()),
        _ => format!("{}: {error}", path.display()),
    }
}

/// Words an error of the core log over files.
pub fn describe_log(error: &segwal::Error<FileError>, dir: &Path) -> LogError {
    let dir_text = dir.display();
    let (message, damaged) = match error {
        segwal::Error::Corrupt {
            segment,
            offset,
            reason,
        } => (
            format!(
                "{}: segment {segment} is corrupt at offset {offset}: {reason}",
                segment_path(dir, *segment).display()
            ),
            true,
        ),
        segwal::Error::NotARecord {
            segment,
            offset,
            reason,
        } => (
            format!(
                "{}: segment {segment} has no valid record at offset {offset}: {reason}",
                segment_path(dir, *segment).display()
            ),
            true,
        ),
        segwal::Error::Chain { segment, reason } => (
            format!(
                "{dir_text}: segment {segment} ({}) breaks the log's chain: {reason}",
                segment_path(dir, *segment).display()
            ),
            true,
        ),
        segwal::Error::Device(error) => (format!("{dir_text}: {error}"), false),
        // A read-only open of a directory whose only segment files are
        // allocations cut short before their header was written.
        segwal::Error::ReadOnly => (
            format!("{dir_text}: not a segwal log (no complete segment in it)"),
            false,
        ),
        other => (format!("{dir_text}: {other}"), false),
    };
    LogError::new(message, damaged)
}

/// Converts results of the log into `anyhow` errors carrying a
/// [`LogError`].
pub trait Describe<T> {
    /// The result, with any error worded for the log in `dir`.
    ///
    /// # Errors
    ///
    /// The error, worded.
    fn describe(self, dir: &Path) -> anyhow::Result<T>;
}

impl<T> Describe<T> for Result<T, segwal_std::Error> {
    fn describe(self, dir: &Path) -> anyhow::Result<T> {
        self.map_err(|error| anyhow::Error::new(describe(&error, dir)))
    }
}

impl<T> Describe<T> for Result<T, segwal::Error<FileError>> {
    fn describe(self, dir: &Path) -> anyhow::Result<T> {
        self.map_err(|error| anyhow::Error::new(describe_log(&error, dir)))
    }
}

/// `true` when the error is damage to the log's bytes.
pub fn is_damage(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<LogError>()
        .is_some_and(|error| error.damaged)
}

/// `true` when the error is stdout closed by its reader (`segwal dump |
/// head`): not a failure of the command.
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|error| error.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// `text` on one line: a message must never spill over several.
pub fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
