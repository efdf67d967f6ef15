//! Log indexes keep their meaning across purge, truncate, restarts and a
//! purge interrupted by a crash.
//!
//! segwal's LSNs are dense and never reused; a Raft log's indexes start
//! anywhere and jump forward when a snapshot covers more than the log
//! holds. The store maps one onto the other with a run (`base_lsn` holds
//! `base_index`) saved with the vote. Each test drives a store through
//! appends, truncations and purges over tiny segments (so segments rotate
//! and checkpoints delete files), reopens it, and compares every readable
//! range with what the log must hold. The last tests make the saved state
//! and the log disagree and expect an error, and put back segments a
//! purge's checkpoint had deleted (a crash between the two steps) and
//! expect the purged entries to stay hidden.

use std::path::Path;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, LogId, RaftLogId, RaftLogReader};
use segwal_raft::{Error, LOG_DIR_NAME, Request, SegwalLogStore, TypeConfig, slot_file_name};
use segwal_std::WalOptions;

fn options(segment_size_bytes: u64) -> WalOptions {
    WalOptions {
        segment_size_bytes,
        prepare_next_segment: false,
        ..WalOptions::default()
    }
}

fn open(dir: &Path) -> SegwalLogStore<TypeConfig> {
    SegwalLogStore::open(dir, &options(1 << 10)).expect("open")
}

fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(Request::Set {
            key: format!("k{index}"),
            value: format!("term {term}"),
        }),
    }
}

async fn append(store: &mut SegwalLogStore<TypeConfig>, term: u64, indexes: std::ops::Range<u64>) {
    let entries: Vec<_> = indexes.map(|i| entry(term, i)).collect();
    for batch in entries.chunks(7) {
        store.blocking_append(batch.to_vec()).await.expect("append");
    }
}

/// `(index, term)` of what a read returns.
async fn read(
    store: &mut SegwalLogStore<TypeConfig>,
    range: std::ops::Range<u64>,
) -> Vec<(u64, u64)> {
    store
        .try_get_log_entries(range)
        .await
        .expect("read")
        .iter()
        .map(|e| (e.get_log_id().index, e.get_log_id().leader_id.term))
        .collect()
}

/// Every sub-range of `0..end` reads as the same slice of `model`.
async fn check_ranges(store: &mut SegwalLogStore<TypeConfig>, model: &[(u64, u64)], end: u64) {
    for start in (0..end).step_by(3) {
        for stop in (start..=end).step_by(5) {
            let want: Vec<(u64, u64)> = model
                .iter()
                .copied()
                .filter(|(i, _)| (start..stop).contains(i))
                .collect();
            assert_eq!(
                read(store, start..stop).await,
                want,
                "range {start}..{stop}"
            );
        }
    }
}

fn model(spans: &[(u64, std::ops::Range<u64>)]) -> Vec<(u64, u64)> {
    spans
        .iter()
        .flat_map(|(term, range)| range.clone().map(|i| (i, *term)))
        .collect()
}

#[tokio::test]
async fn truncate_and_purge_keep_indexes_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store = open(dir.path());
        append(&mut store, 1, 0..60).await;
        assert_eq!(store.lsn_of(0), Some(1), "index 0 is LSN 1");
        assert_eq!(store.lsn_of(59), Some(60));
        store.purge(log_id(1, 1, 29)).await.expect("purge");
        store.truncate(log_id(1, 1, 40)).await.expect("truncate");
        append(&mut store, 2, 40..50).await;
        assert!(
            store.lsn_span().log_first_lsn > 1,
            "the purge's checkpoint removed segments"
        );
    }
    let mut store = open(dir.path());
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 29)));
    assert_eq!(state.last_log_id, Some(log_id(2, 1, 49)));
    assert_eq!(store.lsn_of(40), Some(41), "truncation kept the run");
    assert_eq!(store.lsn_of(29), None, "purged");
    let want = model(&[(1, 30..40), (2, 40..50)]);
    check_ranges(&mut store, &want, 60).await;
    assert_eq!(read(&mut store, 0..u64::MAX).await, want);
}

#[tokio::test]
async fn a_purge_past_the_end_starts_a_new_run_that_survives_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store = open(dir.path());
        append(&mut store, 1, 0..10).await;
        // A snapshot up to 100 installed over a log that ends at 9.
        store.purge(log_id(3, 2, 100)).await.expect("purge");
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_purged_log_id, Some(log_id(3, 2, 100)));
        assert_eq!(state.last_log_id, Some(log_id(3, 2, 100)));
        assert!(read(&mut store, 0..u64::MAX).await.is_empty());
    }
    {
        let mut store = open(dir.path());
        let state = store.get_log_state().await.expect("state");
        assert_eq!(state.last_log_id, Some(log_id(3, 2, 100)));
        append(&mut store, 3, 101..111).await;
    }
    let mut store = open(dir.path());
    assert_eq!(
        store.lsn_of(101),
        Some(11),
        "the run starts at the next LSN"
    );
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_log_id, Some(log_id(3, 1, 110)));
    check_ranges(&mut store, &model(&[(3, 101..111)]), 115).await;
}

#[tokio::test]
async fn a_first_entry_at_any_index_starts_the_log_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut store = open(dir.path());
        append(&mut store, 5, 1000..1010).await;
    }
    let mut store = open(dir.path());
    assert_eq!(store.lsn_of(1000), Some(1));
    check_ranges(&mut store, &model(&[(5, 1000..1010)]), 1012).await;
    // Deleting from below the first entry empties the log, which then
    // continues from where the deletion began.
    store.truncate(log_id(5, 1, 990)).await.expect("truncate");
    assert!(read(&mut store, 0..u64::MAX).await.is_empty());
    append(&mut store, 6, 990..995).await;
    assert_eq!(read(&mut store, 0..u64::MAX).await, model(&[(6, 990..995)]));
}

#[tokio::test]
async fn an_append_that_leaves_a_hole_is_refused_and_the_log_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = open(dir.path());
    append(&mut store, 1, 0..5).await;
    let hole = store.blocking_append(vec![entry(1, 7)]).await;
    assert!(hole.is_err(), "index 7 after 4");
    let gap_inside = store.blocking_append(vec![entry(1, 5), entry(1, 7)]).await;
    assert!(gap_inside.is_err(), "5 then 7 in one batch");
    append(&mut store, 1, 5..8).await;
    assert_eq!(read(&mut store, 0..100).await, model(&[(1, 0..8)]));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for item in std::fs::read_dir(from).expect("list") {
        let item = item.expect("entry");
        std::fs::copy(item.path(), to.join(item.file_name())).expect("copy");
    }
}

#[tokio::test]
async fn a_purge_cut_between_its_saved_state_and_its_checkpoint_hides_the_purged_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_dir = dir.path().join(LOG_DIR_NAME);
    let backup = dir.path().join("log-before-checkpoint");
    {
        let mut store = open(dir.path());
        append(&mut store, 1, 0..60).await;
    }
    copy_dir(&log_dir, &backup);
    {
        let mut store = open(dir.path());
        store.purge(log_id(1, 1, 39)).await.expect("purge");
        assert!(
            store.lsn_span().log_first_lsn > 1,
            "checkpoint removed segments"
        );
    }
    // The crash: the state says "purged up to 39", the segments are back.
    std::fs::remove_dir_all(&log_dir).expect("rm");
    copy_dir(&backup, &log_dir);

    let mut store = open(dir.path());
    let state = store.get_log_state().await.expect("state");
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 39)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 59)));
    check_ranges(&mut store, &model(&[(1, 40..60)]), 62).await;
    assert!(
        store.lsn_span().log_first_lsn > 1,
        "open finished the checkpoint"
    );
}

#[tokio::test]
async fn a_saved_state_from_another_log_is_refused() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    {
        let mut store = open(a.path());
        append(&mut store, 1, 0..5).await;
    }
    {
        let mut store = open(b.path());
        append(&mut store, 1, 10..15).await;
    }
    // A's records (indexes 0..5) with B's mapping (LSN 1 holds 10).
    for slot in 0..2 {
        let name = slot_file_name(slot);
        std::fs::copy(b.path().join(&name), a.path().join(&name)).expect("copy");
    }
    let opened = SegwalLogStore::<TypeConfig>::open(a.path(), &options(1 << 10));
    assert!(
        matches!(
            opened,
            Err(Error::Misplaced {
                lsn: 5,
                expected: 14,
                found: 4
            })
        ),
        "{opened:?}"
    );
}

#[tokio::test]
async fn large_appends_are_split_to_fit_segments_and_reads_are_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let segment_size_bytes = 4 << 20;
    let mut store =
        SegwalLogStore::<TypeConfig>::open(dir.path(), &options(segment_size_bytes)).expect("open");
    let value = "v".repeat(512 << 10);
    let entries: Vec<Entry<TypeConfig>> = (0..20)
        .map(|i| Entry {
            log_id: log_id(1, 1, i),
            payload: EntryPayload::Normal(Request::Set {
                key: format!("k{i}"),
                value: value.clone(),
            }),
        })
        .collect();
    // 10 MiB in one append: more than a segment holds.
    store.blocking_append(entries).await.expect("append");
    let limited = store.limited_get_log_entries(0, 20).await.expect("read");
    let limited_bytes = limited.len() * value.len();
    assert!(!limited.is_empty());
    assert!(
        limited_bytes <= segwal_raft::READ_BATCH_BYTES_MAX + value.len(),
        "{} entries",
        limited.len()
    );
    let all = store.try_get_log_entries(3..20).await.expect("read");
    let indexes: Vec<u64> = all.iter().map(|e| e.get_log_id().index).collect();
    assert_eq!(indexes, (3..20).collect::<Vec<_>>());
    let _: Option<LogId<u64>> = store.get_log_state().await.expect("state").last_log_id;
}
