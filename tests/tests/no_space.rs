//! A full file system (EFBIG from a file-size limit): the append fails with
//! a clear error, the log is poisoned, and a reopen recovers every
//! acknowledged record with nothing misplaced.
//!
//! The child runs under `ulimit -f` with SIGXFSZ ignored, so the kernel
//! fails a write past the limit with EFBIG instead of killing the process.
//! The limit is per file and segment files are preallocated, so the test
//! first builds the log with 64 KiB segments, then restarts the writer with
//! a 128 KiB limit and 256 KiB segments configured: it fills the current
//! segment, and creating the next one fails, exactly where a full disk
//! refuses a writer.
//!
//! The same for a `SharedWal` with four appending threads: every thread's
//! append fails with an error (none is left waiting on a sync that will
//! not come), and every record acknowledged before is in the log.

use std::collections::HashMap;
use std::path::Path;

use segwal::Lsn;
use segwal_std::{Wal, WalOptions};
use segwal_tests::process::{
    acked_lsn, acked_lsn_and_tag, kill_payload, spawn_child, spawn_writer, tagged_payload,
};

const FIRST_SEGMENT_BYTES: u64 = 64 * 1024;
const LATER_SEGMENT_BYTES: u64 = 256 * 1024;
/// 128 KiB, in the 512-byte blocks of POSIX sh's `ulimit -f`; SIGXFSZ
/// ignored so that the write fails with EFBIG.
const FILE_LIMIT_PREFIX: &str = "trap '' XFSZ; ulimit -f 256";
/// Appending threads of `segwal_child shared-until-error`.
const SHARED_THREADS: usize = 4;

/// Starts the log in `dir` with small segments, and stops that writer
/// after 20 acknowledged records.
fn start_small_log(child_exe: &Path, dir: &Path, seed: u64) {
    let mut first = spawn_writer(child_exe, dir, seed, FIRST_SEGMENT_BYTES, None);
    for _ in 0..20 {
        let line = first.lines.next().expect("child output").expect("line");
        assert!(acked_lsn(&line).is_some(), "{line}");
    }
    first.child.kill().expect("kill");
    let _ = first.child.wait();
}

#[test]
fn a_file_size_limit_poisons_the_log_and_loses_nothing_acknowledged() {
    let seed = 0x000F_512E;
    let dir = tempfile::tempdir().expect("tempdir");
    let child_exe = Path::new(env!("CARGO_BIN_EXE_segwal_child"));
    start_small_log(child_exe, dir.path(), seed);
    let writer = spawn_writer(
        child_exe,
        dir.path(),
        seed,
        LATER_SEGMENT_BYTES,
        Some(FILE_LIMIT_PREFIX),
    );
    let mut acked_max = 0;
    let mut error_line = None;
    let mut poisoned_line = None;
    for line in writer.lines.map_while(Result::ok) {
        if let Some(lsn) = acked_lsn(&line) {
            acked_max = lsn;
        } else if line.starts_with("error") {
            error_line = Some(line);
        } else if line.starts_with("poisoned") {
            poisoned_line = Some(line);
        }
    }
    let mut child = writer.child;
    let status = child.wait().expect("wait");
    let error_line = error_line.expect("the child reports the failed append");
    assert!(error_line.starts_with("error NoSpace"), "{error_line}");
    assert_eq!(
        poisoned_line.as_deref(),
        Some("poisoned true"),
        "later appends are refused"
    );
    assert_eq!(status.code(), Some(3));
    assert!(
        acked_max > 100,
        "the first segment filled before the limit: {acked_max}"
    );

    let options = WalOptions {
        segment_size_bytes: FIRST_SEGMENT_BYTES,
        ..WalOptions::default()
    };
    let mut wal = Wal::open_with(dir.path(), &options).expect("reopen");
    let next = wal.next_lsn().0;
    assert!(next > acked_max);
    for lsn in 1..next {
        assert_eq!(
            wal.read(Lsn(lsn)).expect("read"),
            kill_payload(seed, lsn),
            "lsn {lsn}"
        );
    }
    let verify = wal.verify().expect("verify");
    assert!(verify.is_clean(), "{verify:?}");
}

#[test]
fn a_file_size_limit_stops_every_shared_writer_and_loses_nothing_acknowledged() {
    let seed = 0x000F_512F;
    let dir = tempfile::tempdir().expect("tempdir");
    let child_exe = Path::new(env!("CARGO_BIN_EXE_segwal_child"));
    start_small_log(child_exe, dir.path(), seed);
    let writer = spawn_child(
        child_exe,
        "shared-until-error",
        dir.path(),
        seed,
        LATER_SEGMENT_BYTES,
        Some(FILE_LIMIT_PREFIX),
    );
    // A thread left waiting would keep the child from ever exiting: the
    // watchdog kills it, and the status below then fails the test.
    let pid = writer.child.id().to_string();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        // Until the child is reaped: its PID is not reused before.
        if finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .is_err()
        {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid])
                .status();
        }
    });
    let mut acked: HashMap<u64, u64> = HashMap::new();
    let mut errors = Vec::new();
    let mut stopped = false;
    for line in writer.lines.map_while(Result::ok) {
        if let Some((lsn, tag)) = acked_lsn_and_tag(&line) {
            assert!(
                acked.insert(lsn, tag).is_none(),
                "LSN {lsn} acknowledged twice"
            );
        } else if line.starts_with("error") {
            errors.push(line);
        } else if line == "stopped" {
            stopped = true;
        }
    }
    let mut child = writer.child;
    let status = child.wait().expect("wait");
    let _ = done.send(());
    watchdog.join().expect("watchdog");
    assert!(
        stopped && status.code() == Some(3),
        "every thread returned: {status:?}, {errors:?}"
    );
    assert_eq!(
        errors.len(),
        SHARED_THREADS,
        "one error per thread: {errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.starts_with("error NoSpace")),
        "the full file system is named: {errors:?}"
    );
    assert!(
        errors
            .iter()
            .all(|e| e.starts_with("error NoSpace") || e.starts_with("error Poisoned")),
        "{errors:?}"
    );
    assert!(
        acked.len() > 100,
        "the first segment filled first: {}",
        acked.len()
    );

    let options = WalOptions {
        segment_size_bytes: FIRST_SEGMENT_BYTES,
        ..WalOptions::default()
    };
    let mut wal = Wal::open_with(dir.path(), &options).expect("reopen");
    for (&lsn, &tag) in &acked {
        assert_eq!(
            wal.read(Lsn(lsn)).expect("read an acknowledged LSN"),
            tagged_payload(tag),
            "lsn {lsn}"
        );
    }
    let verify = wal.verify().expect("verify");
    assert!(verify.is_clean(), "{verify:?}");
}
