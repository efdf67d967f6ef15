//! Shared by the tests that run a real writer process ([`segwal_child`]) and
//! the child binary itself.
//!
//! [`segwal_child`]: ../../src/bin/segwal_child.rs

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

/// The payload the child writes at `lsn`: from 1 to about 300 bytes, every
/// byte derived from the seed and the LSN, so the parent can check a record
/// it never saw.
pub fn kill_payload(seed: u64, lsn: u64) -> Vec<u8> {
    let mut state = seed ^ lsn.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let len = 1 + usize::try_from(lsn.wrapping_mul(37) % 300).unwrap_or(0);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .collect()
}

/// A running `segwal_child append` and its output.
#[derive(Debug)]
pub struct Writer {
    /// The process.
    pub child: Child,
    /// Its standard output, line by line.
    pub lines: std::io::Lines<BufReader<ChildStdout>>,
}

/// Starts `segwal_child append DIR SEED SEGMENT_BYTES`, through `sh` when
/// `shell_prefix` is given (for `ulimit` and `trap`).
///
/// # Panics
///
/// When the child cannot be started: the test cannot run.
pub fn spawn_writer(
    child_exe: &Path,
    dir: &Path,
    seed: u64,
    segment_bytes: u64,
    shell_prefix: Option<&str>,
) -> Writer {
    spawn_child(child_exe, "append", dir, seed, segment_bytes, shell_prefix)
}

/// Starts `segwal_child MODE DIR SEED SEGMENT_BYTES` (see
/// [`spawn_writer`]).
///
/// # Panics
///
/// When the child cannot be started: the test cannot run.
pub fn spawn_child(
    child_exe: &Path,
    mode: &str,
    dir: &Path,
    seed: u64,
    segment_bytes: u64,
    shell_prefix: Option<&str>,
) -> Writer {
    let args = [
        mode.to_string(),
        dir.display().to_string(),
        seed.to_string(),
        segment_bytes.to_string(),
    ];
    let mut command = match shell_prefix {
        Some(prefix) => {
            let mut command = Command::new("sh");
            command
                .arg("-c")
                .arg(format!("{prefix}; exec \"$0\" \"$@\""))
                .arg(child_exe)
                .args(args);
            command
        }
        None => {
            let mut command = Command::new(child_exe);
            command.args(args);
            command
        }
    };
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn segwal_child");
    let stdout = child.stdout.take().expect("child stdout");
    Writer {
        child,
        lines: BufReader::new(stdout).lines(),
    }
}

/// The LSN in an `ack LSN` line.
pub fn acked_lsn(line: &str) -> Option<u64> {
    line.strip_prefix("ack ")?.trim().parse().ok()
}

/// The payload of a record tagged `tag` by the `shared` child: the tag,
/// then bytes derived from it, so a record can be checked without knowing
/// which thread wrote it or whether it was acknowledged.
pub fn tagged_payload(tag: u64) -> Vec<u8> {
    let mut payload = tag.to_le_bytes().to_vec();
    payload.extend_from_slice(&kill_payload(tag, tag));
    payload
}

/// The tag of a payload made by [`tagged_payload`], if it is one.
pub fn tag_of(payload: &[u8]) -> Option<u64> {
    let tag = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    (payload == tagged_payload(tag).as_slice()).then_some(tag)
}

/// The LSN and tag in an `ack LSN TAG` line of the `shared` child.
pub fn acked_lsn_and_tag(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.strip_prefix("ack ")?.split_whitespace();
    let lsn = fields.next()?.parse().ok()?;
    let tag = fields.next()?.parse().ok()?;
    Some((lsn, tag))
}

/// Opens the log a killed child left in `dir`, as the next writer would,
/// and checks that it still starts at LSN 1.
///
/// # Panics
///
/// When the log does not open or lost its first records: `context` (the
/// seed and round) says which run failed.
pub fn reopen_after_kill(dir: &Path, segment_bytes: u64, context: &str) -> segwal_std::Wal {
    let options = segwal_std::WalOptions {
        segment_size_bytes: segment_bytes,
        ..segwal_std::WalOptions::default()
    };
    let wal = segwal_std::Wal::open_with(dir, &options)
        .unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"));
    assert_eq!(
        wal.first_lsn(),
        segwal::Lsn(1),
        "{context}: the log starts at 1"
    );
    wal
}
