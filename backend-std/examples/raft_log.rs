//! A Raft-style log on segwal: entry index == LSN.
//!
//! Raft needs three things from its log, and each maps onto one call:
//!
//! - append entries, each `(term, index, command)`: `append` /
//!   `append_batch`, whose LSNs are dense from 1, so an entry's index is its
//!   LSN;
//! - when a new leader's entries conflict with the follower's suffix, drop
//!   that suffix and take the leader's: `truncate_after(last_matching)`,
//!   atomic across a crash, after which the next append gets
//!   `last_matching + 1`;
//! - after a snapshot, forget the entries it covers: `checkpoint(index)`,
//!   which drops whole segments whose entries are all `<= index`.
//!
//! The program plays a follower through a leader change and a snapshot,
//! reopens the log, and checks that indexes kept their meaning and that
//! nothing truncated came back.
//!
//! Run with `cargo run --release -p segwal-std --example raft_log`.

use segwal::Lsn;
use segwal_std::{Wal, WalOptions};

/// An entry as the log stores it:
///
/// ```text
/// term u64 LE | index u64 LE | command bytes
/// ```
///
/// The index is redundant with the LSN; storing it lets every read check
/// that the two agree.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    term: u64,
    index: u64,
    command: String,
}

const TERM: std::ops::Range<usize> = 0..8;
const INDEX: std::ops::Range<usize> = TERM.end..TERM.end + 8;
const COMMAND_START: usize = INDEX.end;

impl Entry {
    fn new(term: u64, index: u64, command: &str) -> Self {
        Entry {
            term,
            index,
            command: command.to_owned(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(COMMAND_START + self.command.len());
        bytes.extend_from_slice(&self.term.to_le_bytes());
        bytes.extend_from_slice(&self.index.to_le_bytes());
        bytes.extend_from_slice(self.command.as_bytes());
        bytes
    }

    /// Bytes from the log are checksummed, but decoding still refuses what
    /// it cannot parse rather than panicking.
    fn decode(bytes: &[u8]) -> Result<Self, String> {
        let field = |range: std::ops::Range<usize>| -> Result<u64, String> {
            let slice = bytes.get(range).ok_or("entry shorter than its header")?;
            Ok(u64::from_le_bytes(slice.try_into().map_err(|_| "field")?))
        };
        let command = bytes.get(COMMAND_START..).ok_or("no command")?;
        Ok(Entry {
            term: field(TERM)?,
            index: field(INDEX)?,
            command: String::from_utf8(command.to_vec()).map_err(|e| e.to_string())?,
        })
    }
}

/// Appends `entries` as one atomic batch and checks index == LSN.
fn append_entries(wal: &mut Wal, entries: &[Entry]) -> Result<(), Box<dyn std::error::Error>> {
    let encoded: Vec<Vec<u8>> = entries.iter().map(Entry::encode).collect();
    let payloads: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
    let lsns = wal.append_batch(&payloads)?;
    for (entry, lsn) in entries.iter().zip(lsns.start.0..lsns.end.0) {
        assert_eq!(entry.index, lsn, "entry index is its LSN");
    }
    Ok(())
}

fn read_entry(wal: &mut Wal, index: u64) -> Result<Entry, Box<dyn std::error::Error>> {
    let entry = Entry::decode(&wal.read(Lsn(index))?)?;
    assert_eq!(
        entry.index, index,
        "LSN {index} holds entry {}",
        entry.index
    );
    Ok(entry)
}

/// The first index in each segment file, oldest first.
fn segment_starts(wal: &Wal) -> Vec<u64> {
    wal.segments().iter().map(|s| s.header.base_lsn).collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("segwal-raft-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Small segments so a snapshot can drop whole ones (a real log keeps
    // the 64 MiB default).
    let options = WalOptions {
        segment_size_bytes: 512,
        ..WalOptions::default()
    };
    let mut wal = Wal::open_with(&dir, &options)?;

    // 1. Term 1: the leader replicates entries 1..=30 to this follower,
    //    in batches of 5 (one AppendEntries RPC each).
    for first in (1..=30).step_by(5) {
        let batch: Vec<Entry> = (first..first + 5)
            .map(|i| Entry::new(1, i, &format!("set k{i} = v{i}")))
            .collect();
        append_entries(&mut wal, &batch)?;
    }
    println!(
        "term 1: appended entries 1..=30; log is {}..{}, segments start at {:?}",
        wal.first_lsn(),
        wal.next_lsn(),
        segment_starts(&wal)
    );

    // 2. Leader change. The term 2 leader only had entries up to 20 from
    //    term 1; its AppendEntries says prev_log_index 20, prev_log_term 1,
    //    entries 21.. of term 2. Our entry 21 is term 1: a conflict, so the
    //    suffix from 21 goes, atomically, and the leader's entries follow.
    let prev_log_index = 20;
    assert_eq!(
        read_entry(&mut wal, prev_log_index)?.term,
        1,
        "prev entry matches"
    );
    assert_eq!(
        read_entry(&mut wal, 21)?.term,
        1,
        "entry 21 conflicts with term 2"
    );
    wal.truncate_after(Lsn(prev_log_index))?;
    println!(
        "term 2: conflict at 21, truncate_after(20); next_lsn {}",
        wal.next_lsn()
    );
    assert_eq!(wal.next_lsn(), Lsn(21), "the next entry is index 21 again");
    let leader_entries: Vec<Entry> = (21..=40)
        .map(|i| Entry::new(2, i, &format!("put q{i}")))
        .collect();
    for chunk in leader_entries.chunks(5) {
        append_entries(&mut wal, chunk)?;
    }
    println!(
        "term 2: appended the leader's entries 21..=40; log is {}..{}, segments start at {:?}",
        wal.first_lsn(),
        wal.next_lsn(),
        segment_starts(&wal)
    );

    // 3. Snapshot: the state machine has applied everything up to 25 and
    //    saved it; entries <= 25 are no longer needed. Only whole segments
    //    go, so some entries <= 25 may stay (first_lsn <= 26) until a later
    //    checkpoint: Raft only needs everything after the snapshot.
    let snapshot_index = 25;
    let segments_before = wal.segment_count();
    let removed = wal.checkpoint(Lsn(snapshot_index))?;
    println!(
        "snapshot at {snapshot_index}: checkpoint removed {removed} of {segments_before} segments; first_lsn {}",
        wal.first_lsn()
    );
    assert!(removed > 0, "the snapshot freed whole segments");
    assert!(wal.first_lsn() > Lsn(1) && wal.first_lsn() <= Lsn(snapshot_index + 1));
    let first_after_checkpoint = wal.first_lsn();
    wal.close()?;

    // 4. Restart: the log opens where it was, indexes still mean LSNs, and
    //    the truncated term 1 entries 21..=30 are gone for good.
    let mut wal = Wal::open_with(&dir, &options)?;
    println!(
        "reopened: first_lsn {}, next_lsn {}, {} segments, tail {:?}",
        wal.first_lsn(),
        wal.next_lsn(),
        wal.segment_count(),
        wal.tail_state()
    );
    assert_eq!(wal.first_lsn(), first_after_checkpoint);
    assert_eq!(wal.next_lsn(), Lsn(41));
    assert!(
        matches!(
            wal.read(Lsn(1)),
            Err(segwal_std::Error::Log(segwal::Error::LsnOutOfRange { .. }))
        ),
        "entries before the snapshot's segments are gone"
    );
    let mut checked = 0;
    for entry in wal.iter_from(first_after_checkpoint)? {
        let (lsn, bytes) = entry?;
        let entry = Entry::decode(&bytes)?;
        assert_eq!(entry.index, lsn.0, "index == LSN after reopening");
        let expected_term = if entry.index <= 20 { 1 } else { 2 };
        assert_eq!(
            entry.term, expected_term,
            "entry {} has term {}",
            entry.index, entry.term
        );
        checked += 1;
    }
    println!(
        "checked {checked} entries {}..=40: index == LSN, term 1 up to 20 and 2 after: no truncated entry came back",
        first_after_checkpoint
    );
    let last = read_entry(&mut wal, 40)?;
    println!("last entry: {last:?}");

    // A new term 3 entry continues at 41.
    append_entries(&mut wal, &[Entry::new(3, 41, "noop")])?;
    drop(wal);

    std::fs::remove_dir_all(&dir)?;
    println!("ok: removed {}", dir.display());
    Ok(())
}
