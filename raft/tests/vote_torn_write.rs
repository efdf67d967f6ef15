//! A torn write of the vote never yields a vote that was not saved.
//!
//! The store keeps the vote (with the committed id, the last purged id and
//! the index mapping) in two slot files and writes each save to the slot
//! that does not hold the current state. These tests save three votes,
//! then put the slot the third one went to in every state a power cut in
//! the middle of that save could leave — the new bytes landed up to any
//! byte, then the old ones; the file cut short; the file emptied — and
//! reopen the store: it must return the third vote or the second, never
//! anything else. Damage to both slots is an error, not a fresh store;
//! a first save that was cut leaves a store with no vote.

use std::path::Path;

use openraft::storage::RaftLogStorage;
use openraft::{LogId, Vote};
use segwal_raft::{Error, SLOT_BYTES, SegwalLogStore, TypeConfig, slot_file_name};
use segwal_std::WalOptions;

fn options() -> WalOptions {
    WalOptions {
        segment_size_bytes: 64 << 10,
        prepare_next_segment: false,
        ..WalOptions::default()
    }
}

fn open(dir: &Path) -> Result<SegwalLogStore<TypeConfig>, Error> {
    SegwalLogStore::open(dir, &options())
}

fn slot(dir: &Path, slot: usize) -> Vec<u8> {
    std::fs::read(dir.join(slot_file_name(slot))).expect("read slot")
}

fn put_slot(dir: &Path, slot: usize, bytes: &[u8]) {
    std::fs::write(dir.join(slot_file_name(slot)), bytes).expect("write slot");
}

async fn read_back(dir: &Path) -> (Option<Vote<u64>>, Option<LogId<u64>>) {
    let mut store = open(dir).expect("reopen");
    let vote = store.read_vote().await.expect("read vote");
    let committed = store.read_committed().await.expect("read committed");
    (vote, committed)
}

#[tokio::test]
async fn a_save_cut_at_any_byte_returns_the_new_vote_or_the_previous_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (v1, v2, v3) = (Vote::new(1, 1), Vote::new(2, 2), Vote::new_committed(3, 3));
    let old_slot0 = {
        let mut store = open(dir.path()).expect("open");
        store.save_vote(&v1).await.expect("save v1"); // slot 0
        slot(dir.path(), 0)
    };
    let new_slot0 = {
        let mut store = open(dir.path()).expect("open");
        store.save_vote(&v2).await.expect("save v2"); // slot 1
        store.save_vote(&v3).await.expect("save v3"); // slot 0
        slot(dir.path(), 0)
    };
    assert_eq!(read_back(dir.path()).await.0, Some(v3));
    assert_eq!(new_slot0.len(), SLOT_BYTES);

    // Where the two versions of slot 0 differ: a cut beyond the last
    // difference is the whole new save.
    let differ_end = (0..SLOT_BYTES)
        .rev()
        .find(|&i| old_slot0[i] != new_slot0[i])
        .map_or(0, |i| i + 1);
    assert!(differ_end > 0);
    let mut seen_new = 0;
    for cut in 0..=differ_end {
        let mut torn = new_slot0[..cut].to_vec();
        torn.extend_from_slice(&old_slot0[cut..]);
        put_slot(dir.path(), 0, &torn);
        let (vote, _) = read_back(dir.path()).await;
        if cut == differ_end {
            assert_eq!(vote, Some(v3), "the whole save landed");
        }
        assert!(
            vote == Some(v2) || vote == Some(v3),
            "cut at byte {cut}: {vote:?} was never saved as the current vote"
        );
        seen_new += usize::from(vote == Some(v3));
        // Reopening never writes a slot: the torn bytes are still there.
        assert_eq!(slot(dir.path(), 0), torn);
    }
    assert_eq!(seen_new, 1, "only the complete save is taken");

    // The file cut short at any length (the rest reads as zeros) or
    // emptied: the previous vote, unless every written byte is there.
    let written_end = (0..SLOT_BYTES)
        .rev()
        .find(|&i| new_slot0[i] != 0)
        .map_or(0, |i| i + 1);
    for len in 0..=written_end {
        put_slot(dir.path(), 0, &new_slot0[..len]);
        let expected = if len == written_end { v3 } else { v2 };
        assert_eq!(
            read_back(dir.path()).await.0,
            Some(expected),
            "slot 0 cut to {len} bytes"
        );
    }

    // After a torn save the next save goes where the torn one did, and
    // the store moves on normally.
    put_slot(dir.path(), 0, &new_slot0[..20]);
    {
        let mut store = open(dir.path()).expect("open");
        assert_eq!(store.read_vote().await.expect("vote"), Some(v2));
        store.save_vote(&v3).await.expect("save v3 again");
    }
    assert_eq!(read_back(dir.path()).await.0, Some(v3));
}

#[tokio::test]
async fn committed_and_vote_survive_together() {
    let dir = tempfile::tempdir().expect("tempdir");
    let committed = openraft::testing::log_id(4, 2, 17);
    {
        let mut store = open(dir.path()).expect("open");
        store.save_vote(&Vote::new(4, 2)).await.expect("vote");
        store
            .save_committed(Some(committed))
            .await
            .expect("committed");
    }
    assert_eq!(
        read_back(dir.path()).await,
        (Some(Vote::new(4, 2)), Some(committed))
    );
}

#[tokio::test]
async fn both_slots_damaged_is_an_error_not_a_fresh_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store = open(dir.path()).expect("open");
        store.save_vote(&Vote::new(1, 1)).await.expect("save");
        store.save_vote(&Vote::new(2, 1)).await.expect("save");
    }
    for slot_index in 0..2 {
        let mut bytes = slot(dir.path(), slot_index);
        bytes[20] ^= 0x40;
        put_slot(dir.path(), slot_index, &bytes);
    }
    let opened = open(dir.path());
    assert!(
        matches!(opened, Err(Error::MetaCorrupt { .. })),
        "{opened:?}"
    );
}

#[tokio::test]
async fn a_first_save_that_was_cut_leaves_no_vote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let saved = {
        let mut store = open(dir.path()).expect("open");
        store.save_vote(&Vote::new(9, 9)).await.expect("save");
        slot(dir.path(), 0)
    };
    // The save cut: its first 30 bytes landed, slot 1 never written.
    let mut torn = saved[..30].to_vec();
    torn.resize(SLOT_BYTES, 0);
    put_slot(dir.path(), 0, &torn);
    assert_eq!(read_back(dir.path()).await.0, None);
}

#[tokio::test]
async fn a_slot_copied_over_the_other_does_not_validate() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store = open(dir.path()).expect("open");
        store.save_vote(&Vote::new(1, 1)).await.expect("save"); // slot 0
        store.save_vote(&Vote::new(2, 1)).await.expect("save"); // slot 1
    }
    // Slot 0's bytes in slot 1's file: slot 1 is damaged, slot 0 current.
    put_slot(dir.path(), 1, &slot(dir.path(), 0));
    assert_eq!(read_back(dir.path()).await.0, Some(Vote::new(1, 1)));
}
