//! Real process kills: every acknowledged record survives SIGKILL.
//!
//! A child process (`segwal_child`) appends to a log in a directory with
//! durable acknowledgements, printing each LSN once it is durable. The
//! parent reads those lines and sends SIGKILL at a moment drawn from a
//! seed (after a random number of acknowledgements, so the kill lands
//! anywhere in the append / pwritev / fdatasync cycle, rotations included:
//! the segments are small). After each kill it reopens the log and checks
//! that every acknowledged LSN is there with its payload, that LSNs are
//! dense from 1, and that the log accepts a new append. The next child then
//! continues the same log. The run prints how many kills it made.
//!
//! Two children: one syncing every append (`append`), and one buffered
//! (`buffered`: a 64 KiB write-behind buffer, writeback hints, the next
//! segment prepared ahead and, when the preparation lags, a reserved
//! segment instead), syncing every 256 appends and acknowledging after the
//! sync.

use segwal::Lsn;
use segwal_tests::process::{acked_lsn, kill_payload, reopen_after_kill, spawn_child};
use segwal_tests::{XorShift, test_seed};

#[test]
fn every_acknowledged_record_survives_sigkill() {
    let seed = test_seed(0x005E_ED0F_C0DE);
    kill_rounds("append", seed, 60, 64 * 1024, 120);
}

#[test]
fn every_synced_record_of_a_buffered_log_survives_sigkill() {
    let seed = test_seed(0x0B0F_FE2E_D000);
    kill_rounds("buffered", seed, 30, 1 << 20, 5000);
}

/// `kills` rounds of: start the child in `mode` on the same log (segments
/// of `segment_bytes`), kill it after fewer than `acks_max` of its
/// acknowledgements, reopen, check every record of the log and append
/// one.
fn kill_rounds(mode: &str, seed: u64, kills: u32, segment_bytes: u64, acks_max: u64) {
    let mut rng = XorShift::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let child_exe = std::path::Path::new(env!("CARGO_BIN_EXE_segwal_child"));
    let context = |round: u32| format!("{mode} seed {seed:#x} round {round}");
    let mut acked_max = 0u64;
    for round in 0..kills {
        let mut writer = spawn_child(child_exe, mode, dir.path(), seed, segment_bytes, None);
        let acks_before_kill = rng.below(acks_max);
        let mut acks = 0;
        while acks <= acks_before_kill {
            let Some(Ok(line)) = writer.lines.next() else {
                panic!("{}: child stopped early", context(round));
            };
            if let Some(lsn) = acked_lsn(&line) {
                assert_eq!(
                    lsn,
                    acked_max + 1,
                    "{}: acknowledgements are dense",
                    context(round)
                );
                acked_max = lsn;
                acks += 1;
            } else {
                panic!("{}: child said {line:?}", context(round));
            }
        }
        writer.child.kill().expect("SIGKILL");
        let _ = writer.child.wait();

        // The child may have acknowledged more than we read before the
        // kill: drain what it printed.
        for line in writer.lines.map_while(Result::ok) {
            if let Some(lsn) = acked_lsn(&line) {
                acked_max = acked_max.max(lsn);
            }
        }
        let mut wal = reopen_after_kill(dir.path(), segment_bytes, &context(round));
        let next = wal.next_lsn().0;
        assert!(
            next > acked_max,
            "{}: acked {acked_max}, log ends before {next}",
            context(round)
        );
        check_payloads(&mut wal, seed, 1..next, &context(round));
        // Records past the last acknowledgement were appended but killed
        // before the child could say so: they are real appends, checked
        // above, and count from now on. The log takes a new append after
        // recovery.
        assert_eq!(
            wal.append(&kill_payload(seed, next))
                .expect("append after kill"),
            Lsn(next)
        );
        acked_max = next;
        wal.close().expect("close");
    }
    println!(
        "process kills ({mode}): {kills} SIGKILLs, {acked_max} records checked after the last one"
    );
}

/// Panics unless every LSN of `lsns` reads back as the child wrote it.
fn check_payloads(wal: &mut segwal_std::Wal, seed: u64, lsns: std::ops::Range<u64>, context: &str) {
    for lsn in lsns {
        let data = wal
            .read(Lsn(lsn))
            .unwrap_or_else(|e| panic!("{context}: lsn {lsn}: {e}"));
        assert_eq!(data, kill_payload(seed, lsn), "{context}: lsn {lsn}");
    }
}
