//! [`SegwalLogStore`]: openraft's storage-v2 log store over a segwal log.
//!
//! A store directory holds:
//!
//! ```text
//! <dir>/log/          the segwal log (segment files, LOCK): one record per entry
//! <dir>/raft-meta.0   the small state, in two alternating slots (see `meta`):
//! <dir>/raft-meta.1     vote, committed id, last purged id, index <-> LSN mapping
//! ```
//!
//! # Blocking I/O
//!
//! segwal is synchronous. Every call that may write, fdatasync or read the
//! disk runs on tokio's blocking pool (`spawn_blocking`) so that it never
//! stalls the runtime's workers; reads of the small state kept in memory
//! take a `std` mutex that is never held across an `.await`.
//!
//! # Locks
//!
//! - The segwal log is a [`SharedWal`]: its leader fdatasyncs outside its
//!   lock, so readers (openraft's replication tasks) read while an append
//!   is being made durable.
//! - `meta` (a mutex) serializes saves of the small state.
//! - `mapping` (a read-write lock) is read for the length of every read,
//!   and written while the mapping changes and while a truncation cuts
//!   records: a reader never maps an index with one mapping and reads
//!   the record after another has replaced it.
//!
//! Locks are taken in that order (`meta`, then `mapping`), never the other.

use std::fmt::Debug;
use std::ops::{Bound, Range, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    ErrorSubject, ErrorVerb, LogId, NodeId, OptionalSend, RaftLogId, RaftLogReader, RaftTypeConfig,
    StorageError, Vote,
};
use segwal::Lsn;
use segwal_std::{SharedWal, WalOptions};
use serde::{Deserialize, Serialize};

use crate::codec::{decode_entry, encode_entry};
use crate::error::{Error, Result};
use crate::mapping::{AppendPlan, AppendRefusal, Bounds, Mapping};
use crate::meta::MetaSlots;

/// The segwal log's directory inside a store directory.
pub const LOG_DIR_NAME: &str = "log";

/// Most entry bytes one `limited_get_log_entries` returns (at least one
/// entry is always returned), so a replication batch stays bounded.
pub const READ_BATCH_BYTES_MAX: usize = 4 << 20;

/// Record header and alignment segwal adds to each payload, for sizing
/// append chunks (FORMAT.md: 16-byte header, padded to 8 bytes).
const RECORD_OVERHEAD_BYTES: u64 = 16 + 8;

/// Where a store's entries are in its segwal log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsnSpan {
    /// The LSNs holding the log's entries (empty when every entry is
    /// purged).
    pub entries: Range<u64>,
    /// The segwal log's first LSN: records from it up to `entries.start`
    /// are purged (or of an earlier run) and wait for their segment to be
    /// checkpointed away.
    pub log_first_lsn: u64,
}

/// The small state, as saved in a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
struct MetaBody<NID: NodeId> {
    vote: Option<Vote<NID>>,
    committed: Option<LogId<NID>>,
    last_purged: Option<LogId<NID>>,
    base_lsn: u64,
    base_index: u64,
}

impl<NID: NodeId> MetaBody<NID> {
    fn fresh() -> Self {
        MetaBody {
            vote: None,
            committed: None,
            last_purged: None,
            base_lsn: Mapping::FRESH.base_lsn,
            base_index: Mapping::FRESH.base_index,
        }
    }

    fn mapping(&self) -> Mapping {
        Mapping {
            base_lsn: self.base_lsn,
            base_index: self.base_index,
            kept_from_index: self
                .last_purged
                .as_ref()
                .map_or(0, |id| id.index.saturating_add(1)),
        }
    }
}

/// The small state in memory and its slot files.
struct Meta<NID: NodeId> {
    slots: MetaSlots,
    body: MetaBody<NID>,
}

impl<NID: NodeId> Meta<NID> {
    /// Saves `body` durably, then makes it the state in memory.
    fn save(&mut self, body: MetaBody<NID>) -> Result<()> {
        let bytes = postcard::to_allocvec(&body).map_err(|e| Error::Encode(e.to_string()))?;
        self.slots.save(&bytes)?;
        self.body = body;
        Ok(())
    }
}

struct Shared<C: RaftTypeConfig> {
    wal: SharedWal,
    dir: PathBuf,
    meta: Mutex<Meta<C::NodeId>>,
    mapping: RwLock<Mapping>,
    /// Bytes of records per segwal batch: a batch must fit a segment.
    batch_bytes_max: u64,
}

/// openraft's log store ([`RaftLogStorage`]) over a segwal log: entries are
/// records, appends are durable (one atomic batch, one fdatasync) before
/// openraft hears of it, and the vote is saved crash-safely.
///
/// One store per directory: segwal's lock refuses a second writer
/// ([`segwal_std::Error::Locked`]). An entry must fit in one segment
/// (`WalOptions::segment_size_bytes`, 64 MiB by default); an append of
/// many entries is split into batches that do.
///
/// # Example
///
/// ```
/// use openraft::storage::RaftLogStorage;
/// use openraft::{LogId, RaftLogReader, Vote};
/// use segwal_raft::{SegwalLogStore, TypeConfig};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let mut store = SegwalLogStore::<TypeConfig>::open(dir.path(), &Default::default())?;
///
/// // The vote is durable when `save_vote` returns, and so is a reopened store's.
/// store.save_vote(&Vote::new(1, 7)).await?;
/// assert_eq!(store.read_vote().await?, Some(Vote::new(1, 7)));
///
/// let state = store.get_log_state().await?;
/// assert_eq!(state.last_log_id, None::<LogId<u64>>);
/// assert!(store.try_get_log_entries(0..10).await?.is_empty());
/// # Ok(())
/// # }
/// ```
pub struct SegwalLogStore<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
}

/// Reads a [`SegwalLogStore`]'s entries from other tasks (openraft's
/// replication streams); cheap to clone.
pub struct SegwalLogReader<C: RaftTypeConfig> {
    shared: Arc<Shared<C>>,
}

impl<C: RaftTypeConfig> Clone for SegwalLogReader<C> {
    fn clone(&self) -> Self {
        SegwalLogReader {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C: RaftTypeConfig> Debug for SegwalLogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegwalLogStore")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

impl<C: RaftTypeConfig> Debug for SegwalLogReader<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegwalLogReader")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

/// Takes a mutex; a panic elsewhere while it was held does not make the
/// state unusable (every change is saved before it is applied in memory).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// Creates `dir` if needed, syncing its parent so the entry survives.
fn create_store_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        segwal_std::sync_dir(parent).map_err(|e| Error::io(parent, e))?;
    }
    Ok(())
}

/// Turns any `RangeBounds` into a half-open range of indexes.
fn index_range(range: &impl RangeBounds<u64>) -> Range<u64> {
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => i.saturating_add(1),
        Bound::Excluded(&i) => i,
        Bound::Unbounded => u64::MAX,
    };
    start..end.max(start)
}

/// Runs blocking storage work on tokio's blocking pool.
async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

impl<C: RaftTypeConfig> SegwalLogStore<C> {
    /// Opens (or creates) the store in `dir`; `options` configures the
    /// segwal log (`durability` is ignored: every append is made durable
    /// before openraft is told).
    ///
    /// Opening recovers the log (a torn tail is cut), picks the newest
    /// valid slot of the small state, checks the two against each other,
    /// checks that the last entry is where the mapping says, and finishes a
    /// purge a crash interrupted.
    ///
    /// # Errors
    ///
    /// [`Error::Log`] (with [`segwal_std::Error::Locked`] when another
    /// store has the directory open); [`Error::Io`];
    /// [`Error::MetaCorrupt`] when both state slots are damaged or the
    /// state does not fit the log; [`Error::BadRecord`] /
    /// [`Error::Misplaced`] when the last entry is not what it should be.
    pub fn open(dir: impl AsRef<Path>, options: &WalOptions) -> Result<Self> {
        let dir = dir.as_ref();
        create_store_dir(dir)?;
        // The log first: its lock keeps a second store out of the slots.
        let wal = SharedWal::open(dir.join(LOG_DIR_NAME), options)?;
        let (slots, body) = MetaSlots::open(dir)?;
        let corrupt = |reason: String| Error::MetaCorrupt {
            path: dir.to_path_buf(),
            reason,
        };
        let body = match body {
            None => MetaBody::fresh(),
            Some(bytes) => postcard::from_bytes(&bytes)
                .map_err(|e| corrupt(format!("the saved state does not decode: {e}")))?,
        };
        let mapping = body.mapping();
        let shared = Shared {
            wal,
            dir: dir.to_path_buf(),
            meta: Mutex::new(Meta { slots, body }),
            mapping: RwLock::new(mapping),
            batch_bytes_max: (options.segment_size_bytes / 2).max(1),
        };
        let bounds = shared.bounds();
        mapping.check(bounds).map_err(corrupt)?;
        let visible = mapping.visible(bounds);
        if visible.start > bounds.first_lsn {
            // A purge saved its state and crashed before its checkpoint.
            shared.wal.checkpoint(Lsn(visible.start - 1))?;
        }
        if !visible.is_empty() {
            shared.read_entry(&mapping, visible.end - 1)?;
        }
        Ok(SegwalLogStore {
            shared: Arc::new(shared),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Where the entries are in the segwal log now, for inspection.
    pub fn lsn_span(&self) -> LsnSpan {
        let bounds = self.shared.bounds();
        let entries = read(&self.shared.mapping).visible(bounds);
        LsnSpan {
            entries,
            log_first_lsn: bounds.first_lsn,
        }
    }

    /// The segwal LSN of log index `index`, when the entry is in the log.
    pub fn lsn_of(&self, index: u64) -> Option<u64> {
        let bounds = self.shared.bounds();
        let mapping = read(&self.shared.mapping);
        let lsns = mapping.lsns_for(bounds, index..index.saturating_add(1));
        (!lsns.is_empty()).then_some(lsns.start)
    }
}

impl<C: RaftTypeConfig> Shared<C> {
    fn bounds(&self) -> Bounds {
        Bounds {
            first_lsn: self.wal.first_lsn().0,
            next_lsn: self.wal.next_lsn().0,
        }
    }

    /// Reads and checks the entry at `lsn`.
    fn read_entry(&self, mapping: &Mapping, lsn: u64) -> Result<C::Entry> {
        let bytes = self.wal.read(Lsn(lsn))?;
        Self::decode_at(mapping, lsn, &bytes)
    }

    /// Decodes the record read at `lsn` and checks that it holds the index
    /// the mapping gives that LSN.
    fn decode_at(mapping: &Mapping, lsn: u64, bytes: &[u8]) -> Result<C::Entry> {
        let entry: C::Entry = decode_entry(lsn, bytes)?;
        let found = entry.get_log_id().index;
        let expected = mapping.index_of(lsn);
        if expected != Some(found) {
            return Err(Error::Misplaced {
                lsn,
                expected: expected.unwrap_or(u64::MAX),
                found,
            });
        }
        Ok(entry)
    }

    /// Reads the visible entries of `indexes`, by seeking to the first
    /// (segwal's `read(lsn)`: a binary search over segments and an offset
    /// index within), stopping after `bytes_max` bytes (one entry at least).
    fn read_range(&self, indexes: Range<u64>, bytes_max: usize) -> Result<Vec<C::Entry>> {
        let mapping = read(&self.mapping);
        let lsns = mapping.lsns_for(self.bounds(), indexes);
        let count = usize::try_from(lsns.end - lsns.start).unwrap_or(usize::MAX);
        let mut entries = Vec::with_capacity(count.min(1024));
        let mut bytes_read = 0usize;
        for lsn in lsns {
            let bytes = self.wal.read(Lsn(lsn))?;
            bytes_read = bytes_read.saturating_add(bytes.len());
            entries.push(Self::decode_at(&mapping, lsn, &bytes)?);
            if bytes_read >= bytes_max {
                break;
            }
        }
        Ok(entries)
    }

    fn log_state(&self) -> Result<LogState<C>> {
        let last_purged = lock(&self.meta).body.last_purged.clone();
        let mapping = read(&self.mapping);
        let visible = mapping.visible(self.bounds());
        let last_log_id = if visible.is_empty() {
            last_purged.clone()
        } else {
            Some(
                self.read_entry(&mapping, visible.end - 1)?
                    .get_log_id()
                    .clone(),
            )
        };
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id,
        })
    }

    fn update_meta(&self, change: impl FnOnce(&mut MetaBody<C::NodeId>)) -> Result<()> {
        let mut meta = lock(&self.meta);
        let mut body = meta.body.clone();
        change(&mut body);
        meta.save(body)
    }

    /// Appends encoded entries from index `first`, durable on return.
    fn append(&self, first: u64, payloads: &[Vec<u8>]) -> Result<()> {
        let count = payloads.len() as u64;
        let plan = read(&self.mapping).plan_append(self.bounds(), first, count);
        match plan {
            Ok(AppendPlan::Continue) => {}
            Ok(AppendPlan::Rebase(mapping)) => {
                // Saved before the records that need it.
                let mut meta = lock(&self.meta);
                let mut body = meta.body.clone();
                body.base_lsn = mapping.base_lsn;
                body.base_index = mapping.base_index;
                meta.save(body)?;
                *write(&self.mapping) = mapping;
            }
            Err(AppendRefusal::NotContiguous { expected }) => {
                return Err(Error::NotContiguous { first, expected });
            }
            Err(AppendRefusal::Overflow) => return Err(Error::IndexOverflow { index: first }),
        }
        let mut expected_lsn = read(&self.mapping)
            .lsn_of(first)
            .ok_or(Error::IndexOverflow { index: first })?;
        for chunk in chunks_by_bytes(payloads, self.batch_bytes_max) {
            let records: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            // One pwritev and one fdatasync (shared with any concurrent
            // appender by segwal's group commit); durable on return.
            let lsns = self.wal.append_batch(&records)?;
            assert_eq!(
                lsns.start.0, expected_lsn,
                "entries land where the mapping says"
            );
            expected_lsn = lsns.end.0;
        }
        Ok(())
    }

    fn truncate(&self, index: u64) -> Result<()> {
        // Written: no reader maps an index to a record being cut.
        let mapping = write(&self.mapping);
        if let Some(lsn) = mapping.plan_truncate(self.bounds(), index) {
            self.wal.truncate_after(Lsn(lsn))?;
        }
        Ok(())
    }

    fn purge(&self, log_id: LogId<C::NodeId>) -> Result<()> {
        let mut meta = lock(&self.meta);
        let plan = read(&self.mapping).plan_purge(self.bounds(), log_id.index);
        let Some(plan) = plan else {
            return Ok(());
        };
        let mut body = meta.body.clone();
        body.last_purged = Some(log_id);
        body.base_lsn = plan.mapping.base_lsn;
        body.base_index = plan.mapping.base_index;
        debug_assert_eq!(body.mapping(), plan.mapping);
        // The state first: a crash before the checkpoint leaves records
        // the saved state hides; the other order would leave a hole.
        meta.save(body)?;
        // Waits for readers of the old mapping to finish.
        *write(&self.mapping) = plan.mapping;
        drop(meta);
        if let Some(lsn) = plan.checkpoint_lsn {
            self.wal.checkpoint(Lsn(lsn))?;
        }
        Ok(())
    }
}

/// Splits payloads into runs whose records take at most `bytes_max` in a
/// segment (a run holds one payload at least).
fn chunks_by_bytes(payloads: &[Vec<u8>], bytes_max: u64) -> impl Iterator<Item = &[Vec<u8>]> {
    let mut rest = payloads;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0u64;
        let mut len = 0;
        for payload in rest {
            let record = payload.len() as u64 + RECORD_OVERHEAD_BYTES;
            if len > 0 && bytes + record > bytes_max {
                break;
            }
            bytes += record;
            len += 1;
        }
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        Some(chunk)
    })
}

fn read_error<NID: NodeId>(e: Error) -> StorageError<NID> {
    e.into_storage(ErrorSubject::Logs, ErrorVerb::Read)
}

async fn try_get<C: RaftTypeConfig>(
    shared: &Arc<Shared<C>>,
    indexes: Range<u64>,
    bytes_max: usize,
) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
    let shared = Arc::clone(shared);
    blocking(move || shared.read_range(indexes, bytes_max))
        .await
        .map_err(read_error)
}

impl<C: RaftTypeConfig> RaftLogReader<C> for SegwalLogReader<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        try_get(&self.shared, index_range(&range), usize::MAX).await
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        try_get(&self.shared, start..end.max(start), READ_BATCH_BYTES_MAX).await
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for SegwalLogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        try_get(&self.shared, index_range(&range), usize::MAX).await
    }

    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        try_get(&self.shared, start..end.max(start), READ_BATCH_BYTES_MAX).await
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for SegwalLogStore<C> {
    type LogReader = SegwalLogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let shared = Arc::clone(&self.shared);
        blocking(move || shared.log_state())
            .await
            .map_err(read_error)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        SegwalLogReader {
            shared: Arc::clone(&self.shared),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let shared = Arc::clone(&self.shared);
        let vote = vote.clone();
        blocking(move || shared.update_meta(|body| body.vote = Some(vote)))
            .await
            .map_err(|e| e.into_storage(ErrorSubject::Vote, ErrorVerb::Write))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        // In memory since open; the mutex is only ever held by this
        // store's own saves, which `&mut self` keeps from running now.
        Ok(lock(&self.shared.meta).body.vote.clone())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let shared = Arc::clone(&self.shared);
        blocking(move || shared.update_meta(|body| body.committed = committed))
            .await
            .map_err(|e| e.into_storage(ErrorSubject::Store, ErrorVerb::Write))
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(lock(&self.shared.meta).body.committed.clone())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let write_error = |e: Error| e.into_storage(ErrorSubject::Logs, ErrorVerb::Write);
        let mut first = None;
        let mut payloads = Vec::new();
        for entry in entries {
            let index = entry.get_log_id().index;
            let first_index = *first.get_or_insert(index);
            let expected = first_index.checked_add(payloads.len() as u64);
            if expected != Some(index) {
                return Err(write_error(Error::NotContiguous {
                    first: index,
                    expected: expected.unwrap_or(u64::MAX),
                }));
            }
            payloads.push(encode_entry(&entry).map_err(write_error)?);
        }
        if let Some(first) = first {
            let shared = Arc::clone(&self.shared);
            blocking(move || shared.append(first, &payloads))
                .await
                .map_err(write_error)?;
        }
        // Durable: segwal's append_batch returned after its fdatasync.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let shared = Arc::clone(&self.shared);
        blocking(move || shared.truncate(log_id.index))
            .await
            .map_err(|e| e.into_storage(ErrorSubject::Logs, ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let shared = Arc::clone(&self.shared);
        blocking(move || shared.purge(log_id))
            .await
            .map_err(|e| e.into_storage(ErrorSubject::Logs, ErrorVerb::Delete))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_ranges_of_every_bound() {
        assert_eq!(index_range(&(3..7)), 3..7);
        assert_eq!(index_range(&(3..=7)), 3..8);
        assert_eq!(index_range(&(3..)), 3..u64::MAX);
        assert_eq!(index_range(&..), 0..u64::MAX);
        assert_eq!(index_range(&(..=u64::MAX)), 0..u64::MAX);
        let reversed = Range { start: 7, end: 3 };
        assert_eq!(index_range(&reversed), 7..7);
        let excluded = (Bound::Excluded(2), Bound::Excluded(5));
        assert_eq!(index_range(&excluded), 3..5);
    }

    #[test]
    fn chunks_fit_the_byte_budget() {
        let payloads: Vec<Vec<u8>> = (0..10).map(|i| vec![0u8; 10 * i]).collect();
        let chunks: Vec<&[Vec<u8>]> = chunks_by_bytes(&payloads, 100).collect();
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 10);
        for chunk in &chunks {
            let bytes: u64 = chunk
                .iter()
                .map(|p| p.len() as u64 + RECORD_OVERHEAD_BYTES)
                .sum();
            assert!(chunk.len() == 1 || bytes <= 100, "{bytes}");
        }
        // One oversized payload still makes progress.
        let big = vec![vec![0u8; 1000]];
        assert_eq!(chunks_by_bytes(&big, 100).count(), 1);
        assert_eq!(chunks_by_bytes(&[], 100).count(), 0);
    }
}
