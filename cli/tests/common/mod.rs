//! Helpers shared by the CLI tests: run the `segwal` binary as a user
//! would, make logs with `segwal_std::Wal`, and damage their files.
//!
//! Every spawn, and every open of a log for writing in this process, holds
//! [`FORK_GUARD`]: between fork and exec a child holds copies of every
//! descriptor of this process, `LOCK` files included and with them their
//! `flock`s, so a lock released by one test could still be held by another
//! test's child. `spawn` returns once the child execs, but the kernel
//! closes the child's copies a moment after that, so a log made and closed
//! here is made and closed whole under the guard (no child can copy its
//! `LOCK`), and opening a log for writing retries a `Locked` briefly.

#![allow(dead_code)] // Each test file uses its own share of the helpers.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

use segwal::Lsn;
use segwal_std::{Wal, WalOptions};
use tempfile::TempDir;

/// Held while a child process is spawned; see the module doc.
static FORK_GUARD: Mutex<()> = Mutex::new(());

fn fork_guard() -> MutexGuard<'static, ()> {
    FORK_GUARD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Segment size of the test logs: small, so a few hundred records span
/// several segments.
pub const SEGMENT_BYTES: u64 = 16 * 1024;

/// The payload the test logs hold at `lsn`: printable, 100 bytes.
pub fn payload(lsn: u64) -> Vec<u8> {
    let mut bytes = format!("record {lsn:05} ").into_bytes();
    bytes.resize(100, b'.');
    bytes
}

/// A command running the `segwal` binary with `args`.
pub fn segwal<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new(assert_cmd::cargo::cargo_bin!("segwal"));
    command.args(args);
    command
}

/// Spawns `command` with piped stdio.
pub fn spawn(command: &mut Command) -> Child {
    let _guard = fork_guard();
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn segwal")
}

/// Runs `segwal args` with `stdin` and waits for it.
pub fn run_with_input<I, S>(args: I, stdin: &[u8]) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = spawn(&mut segwal(args));
    let mut input = child.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_vec();
    // From a thread, so a large input cannot block against a full stdout;
    // a command that fails before reading closes the pipe, which is fine.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let output = child.wait_with_output().expect("wait for segwal");
    writer.join().expect("stdin writer");
    output
}

/// Runs `segwal args` with empty stdin and waits for it.
pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with_input(args, b"")
}

/// Tries to take a lock a child of another test may still hold a copy of
/// for a moment; see the module doc.
const LOCK_ATTEMPTS_MAX: u32 = 100;

/// Opens the log in `dir` for writing (taking its lock) with `options`.
pub fn open_writer_with(dir: &Path, options: &WalOptions) -> Wal {
    let _guard = fork_guard();
    open_under_guard(dir, options)
}

fn open_under_guard(dir: &Path, options: &WalOptions) -> Wal {
    for _ in 1..LOCK_ATTEMPTS_MAX {
        match Wal::open_with(dir, options) {
            Err(segwal_std::Error::Locked { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            opened => return opened.expect("open the log for writing"),
        }
    }
    Wal::open_with(dir, options).expect("open the log for writing")
}

/// Opens the log in `dir` for writing with the default options.
pub fn open_writer(dir: &Path) -> Wal {
    open_writer_with(dir, &WalOptions::default())
}

/// A temporary directory holding a closed log of `records` records
/// ([`payload`]) in [`SEGMENT_BYTES`] segments, at `dir.path()/wal`.
pub fn log_with(records: u64) -> (TempDir, PathBuf) {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("wal");
    let options = WalOptions {
        segment_size_bytes: SEGMENT_BYTES,
        ..WalOptions::default()
    };
    let _guard = fork_guard();
    let mut wal = open_under_guard(&dir, &options);
    for lsn in 1..=records {
        assert_eq!(wal.append(&payload(lsn)).expect("append"), Lsn(lsn));
    }
    wal.close().expect("close");
    (temp, dir)
}

/// The path of segment `sequence` in `dir`.
pub fn segment_file(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("{sequence:020}.seg"))
}

/// Every file in `dir` with its bytes, sorted by name.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .expect("list dir")
        .map(|entry| {
            let entry = entry.expect("dir entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, fs::read(entry.path()).expect("read file"))
        })
        .collect();
    files.sort();
    files
}

/// XORs the byte at `offset` of `path` with `mask`.
pub fn flip_byte(path: &Path, offset: u64, mask: u8) {
    let mut bytes = fs::read(path).expect("read segment");
    let at = usize::try_from(offset).expect("offset fits");
    bytes[at] ^= mask;
    fs::write(path, bytes).expect("write segment");
}

/// Writes `bytes` at `offset` of `path`.
pub fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let mut contents = fs::read(path).expect("read segment");
    let at = usize::try_from(offset).expect("offset fits");
    contents[at..at + bytes.len()].copy_from_slice(bytes);
    fs::write(path, contents).expect("write segment");
}

/// stdout as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

/// stderr as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

/// `segwal dump DIR --format json`, parsed line by line.
pub fn dump_json(dir: &Path) -> Vec<serde_json::Value> {
    let output = run([
        OsStr::new("dump"),
        dir.as_os_str(),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    assert!(output.status.success(), "dump failed: {}", stderr(&output));
    stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each dump line is JSON"))
        .collect()
}

/// A `u64` field of a JSON object.
pub fn field(value: &serde_json::Value, name: &str) -> u64 {
    value[name]
        .as_u64()
        .unwrap_or_else(|| panic!("field {name} in {value}"))
}

/// Asserts `output` failed with exit code 2 and exactly one stderr line,
/// `segwal: ...`, containing every one of `needles`; no panic, no
/// backtrace.
pub fn assert_error_line(output: &Output, needles: &[&str]) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "exit code; stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("segwal: "), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
    for needle in needles {
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    }
}

/// The argument list `[command, dir, rest...]` as OS strings.
pub fn args<'a>(command: &'a str, dir: &'a Path, rest: &[&'a str]) -> Vec<&'a OsStr> {
    let mut all = vec![OsStr::new(command), dir.as_os_str()];
    all.extend(rest.iter().map(|arg| OsStr::new(*arg)));
    all
}
