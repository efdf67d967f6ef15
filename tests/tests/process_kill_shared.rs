//! Real process kills of a group-committing writer: every record a
//! `SharedWal` acknowledged survives SIGKILL.
//!
//! A child process (`segwal_child shared`) appends from four threads
//! through one `SharedWal` (leader/follower `fdatasync`, the group's
//! records held in the write-behind buffer until its sync), printing
//! `ack LSN TAG` once each record is durable. The parent sends SIGKILL
//! after a number of acknowledgements drawn from a seed, reopens the log
//! and checks that LSNs are dense from 1; that every record in the log is
//! one the child wrote (its payload carries its tag and bytes derived from
//! it) and was written once; that every acknowledged LSN holds the record
//! acknowledged with it; and that the log takes an append. The next child
//! continues the same log. The run prints how many kills it made.

use std::collections::{HashMap, HashSet};

use segwal::Lsn;
use segwal_tests::process::{
    acked_lsn_and_tag, reopen_after_kill, spawn_child, tag_of, tagged_payload,
};
use segwal_tests::{XorShift, test_seed};

const KILLS: u32 = 20;
const SEGMENT_BYTES: u64 = 64 * 1024;

#[test]
fn every_record_a_shared_wal_acknowledged_survives_sigkill() {
    let seed = test_seed(0x05EE_D5A2_ED00);
    let mut rng = XorShift::new(seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let child_exe = std::path::Path::new(env!("CARGO_BIN_EXE_segwal_child"));
    // Every acknowledgement of every round, by LSN.
    let mut acked: HashMap<u64, u64> = HashMap::new();
    let mut kills = 0;
    let mut records = 0;
    for round in 0..KILLS {
        // A child seed per round keeps tags unique across rounds.
        let child_seed = (seed.wrapping_add(u64::from(round))) & 0xFF_FFFF;
        let mut writer = spawn_child(
            child_exe,
            "shared",
            dir.path(),
            child_seed,
            SEGMENT_BYTES,
            None,
        );
        let acks_before_kill = 1 + rng.below(200);
        let mut acks = 0;
        while acks < acks_before_kill {
            let Some(Ok(line)) = writer.lines.next() else {
                panic!("seed {seed:#x} round {round}: child stopped early");
            };
            let Some((lsn, tag)) = acked_lsn_and_tag(&line) else {
                panic!("seed {seed:#x} round {round}: child said {line:?}");
            };
            assert!(
                acked.insert(lsn, tag).is_none(),
                "seed {seed:#x}: LSN {lsn} acknowledged twice"
            );
            acks += 1;
        }
        writer.child.kill().expect("SIGKILL");
        let _ = writer.child.wait();
        kills += 1;
        // Acknowledgements printed before the kill but not read yet.
        for line in writer.lines.map_while(Result::ok) {
            if let Some((lsn, tag)) = acked_lsn_and_tag(&line) {
                acked.insert(lsn, tag);
            }
        }

        let mut wal = reopen_after_kill(
            dir.path(),
            SEGMENT_BYTES,
            &format!("seed {seed:#x} round {round}"),
        );
        let next = wal.next_lsn().0;
        let mut tags = HashSet::new();
        for lsn in 1..next {
            let data = wal
                .read(Lsn(lsn))
                .unwrap_or_else(|e| panic!("seed {seed:#x} round {round}: lsn {lsn}: {e}"));
            let tag = tag_of(&data).unwrap_or_else(|| {
                panic!("seed {seed:#x} round {round}: lsn {lsn} holds bytes nobody wrote")
            });
            assert!(
                tags.insert(tag),
                "seed {seed:#x}: tag {tag:#x} twice in the log"
            );
            if let Some(&acked_tag) = acked.get(&lsn) {
                assert_eq!(tag, acked_tag, "seed {seed:#x} round {round}: lsn {lsn}");
            }
        }
        let acked_max = acked.keys().copied().max().unwrap_or(0);
        assert!(
            next > acked_max,
            "seed {seed:#x} round {round}: acknowledged {acked_max}, log ends before {next}"
        );
        // The log takes an append after recovery; tags of the parent's
        // records are out of every child's range.
        let tag = u64::MAX - u64::from(round);
        assert_eq!(
            wal.append(&tagged_payload(tag)).expect("append after kill"),
            Lsn(next)
        );
        acked.insert(next, tag);
        records = next;
        wal.close().expect("close");
    }
    println!(
        "process kills (SharedWal, 4 threads): {kills} SIGKILLs, {records} records checked after the last one"
    );
    assert_eq!(kills, KILLS);
}
