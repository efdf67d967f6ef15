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

use segwal::Lsn;
use segwal_std::{Wal, WalOptions};
use segwal_tests::process::{acked_lsn, kill_payload, spawn_writer};

const FIRST_SEGMENT_BYTES: u64 = 64 * 1024;
const LATER_SEGMENT_BYTES: u64 = 256 * 1024;

#[test]
fn a_file_size_limit_poisons_the_log_and_loses_nothing_acknowledged() {
    let seed = 0x000F_512E;
    let dir = tempfile::tempdir().expect("tempdir");
    let child_exe = std::path::Path::new(env!("CARGO_BIN_EXE_segwal_child"));
    // Start the log with small segments, and stop that writer early.
    let mut first = spawn_writer(child_exe, dir.path(), seed, FIRST_SEGMENT_BYTES, None);
    for _ in 0..20 {
        let line = first.lines.next().expect("child output").expect("line");
        assert!(acked_lsn(&line).is_some(), "{line}");
    }
    first.child.kill().expect("kill");
    let _ = first.child.wait();
    // 128 KiB, in the 512-byte blocks of POSIX sh's `ulimit -f`.
    let prefix = "trap '' XFSZ; ulimit -f 256";
    let writer = spawn_writer(
        child_exe,
        dir.path(),
        seed,
        LATER_SEGMENT_BYTES,
        Some(prefix),
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
