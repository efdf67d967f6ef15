//! Real process kills: every acknowledged record survives SIGKILL.
//!
//! A child process (`segwal_child`) appends to a log in a directory with
//! durable acknowledgements, printing each LSN once `append` has returned.
//! The parent reads those lines and sends SIGKILL at a moment drawn from a
//! seed (after a random number of acknowledgements, so the kill lands
//! anywhere in the append / pwritev / fdatasync cycle, rotations included:
//! the segments are small). After each kill it reopens the log and checks
//! that every acknowledged LSN is there with its payload, that LSNs are
//! dense from 1, and that the log accepts a new append. The next child then
//! continues the same log. The run prints how many kills it made.

use segwal::Lsn;
use segwal_tests::process::{acked_lsn, kill_payload, reopen_after_kill, spawn_writer};
use segwal_tests::{XorShift, test_seed};

const KILLS: u32 = 60;
const SEGMENT_BYTES: u64 = 64 * 1024;

#[test]
fn every_acknowledged_record_survives_sigkill() {
    let seed = test_seed(0x005E_ED0F_C0DE);
    let mut rng = XorShift::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let child_exe = std::path::Path::new(env!("CARGO_BIN_EXE_segwal_child"));
    let mut acked_max = 0u64;
    let mut kills = 0;
    for round in 0..KILLS {
        let mut writer = spawn_writer(child_exe, dir.path(), seed, SEGMENT_BYTES, None);
        let acks_before_kill = rng.below(120);
        let mut acks = 0;
        while acks <= acks_before_kill {
            let Some(Ok(line)) = writer.lines.next() else {
                panic!("seed {seed:#x} round {round}: child stopped early");
            };
            if let Some(lsn) = acked_lsn(&line) {
                assert_eq!(
                    lsn,
                    acked_max + 1,
                    "seed {seed:#x}: acknowledgements are dense"
                );
                acked_max = lsn;
                acks += 1;
            } else {
                panic!("seed {seed:#x} round {round}: child said {line:?}");
            }
        }
        writer.child.kill().expect("SIGKILL");
        let _ = writer.child.wait();
        kills += 1;

        // The child may have acknowledged more than we read before the
        // kill: drain what it printed.
        for line in writer.lines.map_while(Result::ok) {
            if let Some(lsn) = acked_lsn(&line) {
                acked_max = acked_max.max(lsn);
            }
        }
        let mut wal = reopen_after_kill(
            dir.path(),
            SEGMENT_BYTES,
            &format!("seed {seed:#x} round {round}"),
        );
        let next = wal.next_lsn().0;
        assert!(
            next > acked_max,
            "seed {seed:#x} round {round}: acked {acked_max}, log ends before {next}"
        );
        for lsn in 1..next {
            let data = wal
                .read(Lsn(lsn))
                .unwrap_or_else(|e| panic!("seed {seed:#x}: lsn {lsn}: {e}"));
            assert_eq!(
                data,
                kill_payload(seed, lsn),
                "seed {seed:#x} round {round}: lsn {lsn}"
            );
        }
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
    println!("process kills: {kills} SIGKILLs, {acked_max} records checked after the last one");
    assert_eq!(kills, KILLS);
}
