//! The write-ahead log over a directory of segment files: [`Wal`] for one
//! owner, [`SharedWal`] for many threads with group commit.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use segwal::{
    BlockDevice, ChecksumKind, Durability, Lsn, OpenVerification, RecoveryMode,
    SEQUENTIAL_WINDOW_BYTES, SegmentInfo, SegmentStore, VerifyReport, WalConfig, WalTailState,
};

use crate::dir::{AccessMode, DirStore};
use crate::error::{Error, Result};

/// Segments a log can hold before it must be checkpointed: 64 GiB of
/// 64 MiB segments. The list lives inside the log (about 64 KiB), so open
/// time and memory stay fixed.
pub const MAX_SEGMENTS: usize = 1024;

/// Longest a group-commit leader waits for the callers it expects before
/// it syncs without them, as a fraction of the last fdatasync's duration
/// (the wait buys a share of the next sync; past half a sync it costs more
/// latency than it saves).
const GATHER_WAIT_PER_SYNC: u32 = 2;

/// Yields a follower makes while a sync runs before it parks: about one
/// fdatasync's worth on a loaded two-core machine.
const FOLLOW_YIELDS_MAX: u32 = 200;

/// Cap on the gather wait, whatever the device's sync latency.
const GATHER_WAIT_MAX: Duration = Duration::from_millis(1);

/// The least write-behind buffer of a [`SharedWal`]: a group's records go
/// out in one `pwrite`.
const SHARED_WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// The read buffer of a log: one sequential read-ahead window.
const BUFFER_BYTES: usize = 64 * 1024;
const _: () = assert!(BUFFER_BYTES as u64 == SEQUENTIAL_WINDOW_BYTES);

type CoreWal = segwal::Wal<DirStore, Box<[u8]>, MAX_SEGMENTS>;

/// How a log is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// Size of each segment file (default 64 MiB, at most 4 GiB - 1).
    pub segment_size_bytes: u64,
    /// When appends are durable (default: every append is fdatasync'd).
    pub durability: Durability,
    /// Checksum of new segments.
    pub checksum_kind: ChecksumKind,
    /// Largest payload; `None` allows anything a segment holds.
    pub record_len_max: Option<u32>,
    /// What open does with corruption in the newest segment.
    pub recovery_mode: RecoveryMode,
    /// How much open verifies.
    pub verification: OpenVerification,
    /// Prepare the next segment file in the background, so a rotation
    /// renames a ready file instead of writing 64 MiB of zeros.
    pub prepare_next_segment: bool,
    /// Bytes of appends held in memory and written with one `pwrite` (at
    /// the latest by the next sync). `0`, the default, writes each append
    /// at once, so an append that returned survives a crash of this
    /// process (not a power cut) even before `sync()`, and other
    /// processes' readers see it. With [`Durability::Manual`], 64 KiB
    /// (for example) turns thousands of small `pwrite`s into one: appends
    /// then reach the file when the buffer fills or at `sync()`, and a
    /// crash of this process loses the unsynced ones, as a power cut
    /// would. With [`Durability::Sync`] it changes nothing. [`SharedWal`]
    /// always holds at least 64 KiB back, to write a whole group at once
    /// (its appends return only when synced anyway).
    pub write_buffer_bytes: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size_bytes: 64 << 20,
            durability: Durability::Sync,
            checksum_kind: ChecksumKind::Crc32c,
            record_len_max: None,
            recovery_mode: RecoveryMode::Strict,
            verification: OpenVerification::Tail,
            prepare_next_segment: true,
            write_buffer_bytes: 0,
        }
    }
}

impl WalOptions {
    fn config(&self, read_only: bool) -> Result<WalConfig> {
        let segment_size_bytes = u32::try_from(self.segment_size_bytes)
            .map_err(|_| segwal::Error::Config(segwal::ConfigError::SegmentSize))?;
        Ok(WalConfig {
            segment_size_bytes,
            checksum_kind: self.checksum_kind,
            record_len_max: self.record_len_max,
            durability: self.durability,
            recovery_mode: self.recovery_mode,
            verification: self.verification,
            read_only,
        })
    }
}

fn open_core(dir: &Path, options: &WalOptions, mode: AccessMode) -> Result<Box<CoreWal>> {
    let read_only = mode == AccessMode::ReadOnly;
    let config = options.config(read_only)?;
    let mut store = DirStore::open(dir, mode)?;
    if !read_only {
        store.set_prepare_ahead(options.prepare_next_segment);
        store.set_write_buffer_bytes(options.write_buffer_bytes);
    }
    let buffer = vec![0u8; BUFFER_BYTES].into_boxed_slice();
    Ok(Box::new(segwal::Wal::open(store, config, buffer)?))
}

/// A write-ahead log in a directory: dense LSNs from 1, segment files that
/// rotate, checkpoint and truncate, one writer per directory.
///
/// # Example
///
/// ```
/// use segwal_std::Wal;
///
/// let dir = tempfile::tempdir()?;
/// let mut wal = Wal::open(dir.path())?;
/// let first = wal.append(b"first entry")?;   // durable when it returns
/// let second = wal.append(b"second entry")?;
/// assert_eq!(second.0, first.0 + 1);
/// for entry in wal.iter() {
///     let (lsn, data) = entry?;
///     println!("{lsn}: {}", String::from_utf8_lossy(&data));
/// }
/// wal.close()?; // the next open reads no records
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Wal {
    inner: Box<CoreWal>,
    dir: PathBuf,
}

impl Wal {
    /// Opens (or creates) the log in `dir` with the default options.
    ///
    /// # Errors
    ///
    /// As for [`open_with`](Self::open_with).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, &WalOptions::default())
    }

    /// Opens (or creates) the log in `dir` for writing.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] when another writer holds the directory (in this
    /// process or another); [`Error::NotADirectory`] and [`Error::Io`] for a
    /// path that cannot hold a log; [`Error::Log`] for a log that is not
    /// consistent, naming the segment and offset.
    pub fn open_with(dir: impl AsRef<Path>, options: &WalOptions) -> Result<Self> {
        let dir = dir.as_ref();
        let inner = open_core(dir, options, AccessMode::ReadWrite)?;
        Ok(Wal {
            inner,
            dir: dir.to_path_buf(),
        })
    }

    /// Opens the log in `dir` for reading only: takes no lock, writes
    /// nothing, and can follow a log another process writes
    /// ([`refresh`](Self::refresh)).
    ///
    /// # Errors
    ///
    /// As for [`open_with`](Self::open_with), but never `Locked`.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let inner = open_core(dir, &WalOptions::default(), AccessMode::ReadOnly)?;
        Ok(Wal {
            inner,
            dir: dir.to_path_buf(),
        })
    }

    /// Re-reads the directory of a read-only log to see what its writer has
    /// added (or checkpointed, or truncated) since.
    ///
    /// # Errors
    ///
    /// [`segwal::Error::ReadOnly`] on a writable log; as for opening.
    pub fn refresh(&mut self) -> Result<()> {
        if !self.inner.config().read_only {
            return Err(segwal::Error::ReadOnly.into());
        }
        self.inner = open_core(&self.dir, &WalOptions::default(), AccessMode::ReadOnly)?;
        Ok(())
    }

    /// Appends a record and returns its LSN. With [`Durability::Sync`] (the
    /// default) it has been fdatasync'd when this returns `Ok`.
    ///
    /// # Errors
    ///
    /// [`segwal::Error::RecordTooLarge`] writes nothing; a failed write or
    /// sync (a full disk included) poisons the log:
    /// [`segwal::Error::Poisoned`] until it is reopened.
    #[inline]
    pub fn append(&mut self, payload: &[u8]) -> Result<Lsn> {
        Ok(self.inner.append(payload)?)
    }

    /// Appends records as one atomic batch: one `pwritev` (per 64 records)
    /// and one fdatasync; after a crash all of them are there or none.
    ///
    /// # Errors
    ///
    /// As for [`append`](Self::append).
    pub fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<Range<Lsn>> {
        Ok(self.inner.append_batch(payloads)?)
    }

    /// Makes every appended record durable ([`Durability::Manual`]).
    ///
    /// # Errors
    ///
    /// A failed fdatasync poisons the log.
    pub fn sync(&mut self) -> Result<()> {
        Ok(self.inner.sync()?)
    }

    /// Reads the record at `lsn`, checksum verified, without scanning
    /// earlier segments.
    ///
    /// # Errors
    ///
    /// [`segwal::Error::LsnOutOfRange`] for an LSN checkpointed away or not
    /// yet written; corruption errors naming segment and offset.
    pub fn read(&mut self, lsn: Lsn) -> Result<Vec<u8>> {
        Ok(self.inner.read(lsn)?.to_vec())
    }

    /// Reads the record at `lsn` into `out` (cleared first), reusing its
    /// allocation.
    ///
    /// # Errors
    ///
    /// As for [`read`](Self::read).
    pub fn read_into(&mut self, lsn: Lsn, out: &mut Vec<u8>) -> Result<()> {
        let payload = self.inner.read(lsn)?;
        out.clear();
        out.extend_from_slice(&payload);
        Ok(())
    }

    /// Iterates over every record, oldest first.
    pub fn iter(&mut self) -> Iter<'_> {
        Iter {
            inner: self.inner.iter(),
        }
    }

    /// Iterates from `lsn`, found without scanning earlier segments.
    ///
    /// # Errors
    ///
    /// [`segwal::Error::LsnOutOfRange`] unless `first_lsn <= lsn <= next_lsn`.
    pub fn iter_from(&mut self, lsn: Lsn) -> Result<Iter<'_>> {
        Ok(Iter {
            inner: self.inner.iter_from(lsn)?,
        })
    }

    /// Durably removes every sealed segment whose records are all `<= lsn`;
    /// never the active one. Returns how many were removed.
    ///
    /// # Errors
    ///
    /// [`segwal::Error::LsnOutOfRange`] for an LSN outside the log.
    pub fn checkpoint(&mut self, lsn: Lsn) -> Result<usize> {
        Ok(self.inner.checkpoint(lsn)?)
    }

    /// Durably removes every record after `lsn`; the next append gets
    /// `lsn + 1`. Atomic across a crash.
    ///
    /// # Errors
    ///
    /// [`segwal::Error::LsnOutOfRange`] unless `first_lsn - 1 <= lsn < next_lsn`.
    pub fn truncate_after(&mut self, lsn: Lsn) -> Result<()> {
        Ok(self.inner.truncate_after(lsn)?)
    }

    /// How the records ended at open.
    pub fn tail_state(&self) -> WalTailState {
        self.inner.tail_state()
    }

    /// The first LSN still in the log.
    pub fn first_lsn(&self) -> Lsn {
        self.inner.first_lsn()
    }

    /// The LSN the next append gets.
    pub fn next_lsn(&self) -> Lsn {
        self.inner.next_lsn()
    }

    /// Segment files in the log.
    pub fn segment_count(&self) -> usize {
        self.inner.segment_count()
    }

    /// The segments, oldest first.
    pub fn segments(&self) -> &[SegmentInfo] {
        self.inner.segments()
    }

    /// Scans every segment and checks every checksum and record count.
    ///
    /// # Errors
    ///
    /// A read failure; damage is in the report.
    pub fn verify(&mut self) -> Result<VerifyReport> {
        Ok(self.inner.verify()?)
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Closes cleanly: writes the clean-close marker, so the next open
    /// reads no records. Dropping the log does the same, ignoring errors.
    ///
    /// # Errors
    ///
    /// When the final sync fails.
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<()> {
        if self.inner.config().read_only || self.inner.is_poisoned() {
            return Ok(());
        }
        Ok(self.inner.close_in_place()?)
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        let _ = self.close_inner();
    }
}

/// Iterator over `(lsn, payload)`; payloads are copied out of the log's
/// buffer ([`Iter::next_borrowed`] lends them instead).
#[derive(Debug)]
pub struct Iter<'w> {
    inner: segwal::WalIter<'w, DirStore, Box<[u8]>, MAX_SEGMENTS>,
}

impl Iter<'_> {
    /// The next record with its payload borrowed from the log's read
    /// buffer: no copy and no allocation for a record that fits the
    /// buffer's 64 KiB (a larger one is copied out). The payload lives
    /// until the next call; `Iterator::next` copies it instead.
    ///
    /// # Errors
    ///
    /// As for [`Iterator::next`]; after an error the iteration ends.
    ///
    /// # Example
    ///
    /// ```
    /// use segwal_std::Wal;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let mut wal = Wal::open(dir.path())?;
    /// wal.append_batch(&[b"a", b"bb", b"ccc"])?;
    /// let mut records = wal.iter();
    /// let mut total_bytes = 0;
    /// while let Some(record) = records.next_borrowed() {
    ///     let (_lsn, payload) = record?;
    ///     total_bytes += payload.len();
    /// }
    /// assert_eq!(total_bytes, 6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[inline]
    pub fn next_borrowed(&mut self) -> Option<Result<(Lsn, segwal::Payload<'_>)>> {
        Some(self.inner.next_record()?.map_err(Error::from))
    }
}

impl Iterator for Iter<'_> {
    type Item = Result<(Lsn, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next_record()?;
        Some(
            item.map(|(lsn, payload)| (lsn, payload.to_vec()))
                .map_err(Error::from),
        )
    }
}

/// State behind a [`SharedWal`]'s lock.
#[derive(Debug)]
struct Shared {
    wal: Box<CoreWal>,
    /// A leader is fdatasyncing outside the lock.
    syncing: bool,
    /// A leader is waiting for expected callers before it syncs.
    gathering: bool,
    /// Callers that appended since the last sync began: the next sync
    /// covers them.
    callers_pending: usize,
    /// Callers the next leader expects: those the last sync released (they
    /// come back with their next record while the sync ran) plus those
    /// that appended during it. A sync that covers them all needs no
    /// second one.
    callers_expected: usize,
    /// How long the last fdatasync took: bounds the gather wait.
    sync_duration_last: Duration,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<Shared>,
    /// A sync finished (or failed to start).
    synced: Condvar,
    /// The log's durable LSN, for followers that wait without the lock.
    durable_lsn: AtomicU64,
    /// Syncs finished (or failed): a follower waiting without the lock
    /// takes a change as its cue to look again.
    syncs_finished: AtomicU64,
    dir: PathBuf,
}

/// A log many threads append to at once, with group commit: each `append`
/// returns once its own record is durable, and one fdatasync covers every
/// record appended while the previous one ran.
///
/// The first thread to find no sync running becomes the leader: it takes a
/// ticket for everything written so far, releases the lock, fdatasyncs, and
/// publishes the durable LSN; the followers, yielding meanwhile rather than
/// parked, see it and return; a follower whose record the ticket did not
/// cover becomes the next leader.
///
/// Before its sync, a leader waits (at most half the last sync's duration)
/// for the callers it expects: the ones the last sync released, which are
/// about to append their next record. Without that wait the writers split
/// into two halves that alternate between syncs, each sync covering half
/// of them; with it, one sync covers them all. A lone writer expects only
/// itself and never waits.
///
/// # Example
///
/// ```
/// use segwal_std::SharedWal;
///
/// let dir = tempfile::tempdir()?;
/// let wal = SharedWal::open(dir.path(), &Default::default())?;
/// let threads: Vec<_> = (0..4)
///     .map(|t| {
///         let wal = wal.clone();
///         std::thread::spawn(move || wal.append(format!("from thread {t}").as_bytes()))
///     })
///     .collect();
/// for thread in threads {
///     thread.join().expect("thread")?; // each Ok(lsn) is durable
/// }
/// assert_eq!(wal.next_lsn().0, 5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SharedWal {
    inner: Arc<Inner>,
}

impl SharedWal {
    /// Opens (or creates) the log in `dir`. Appends are always durable when
    /// they return; `options.durability` is ignored, and appends are held
    /// in a write-behind buffer of at least 64 KiB until the group's sync.
    ///
    /// # Errors
    ///
    /// As for [`Wal::open_with`].
    pub fn open(dir: impl AsRef<Path>, options: &WalOptions) -> Result<Self> {
        let dir = dir.as_ref();
        let options = WalOptions {
            durability: Durability::Manual,
            write_buffer_bytes: options.write_buffer_bytes.max(SHARED_WRITE_BUFFER_BYTES),
            ..options.clone()
        };
        let wal = open_core(dir, &options, AccessMode::ReadWrite)?;
        let inner = Inner {
            state: Mutex::new(Shared {
                wal,
                syncing: false,
                gathering: false,
                callers_pending: 0,
                callers_expected: 0,
                sync_duration_last: Duration::ZERO,
            }),
            synced: Condvar::new(),
            durable_lsn: AtomicU64::new(0),
            syncs_finished: AtomicU64::new(0),
            dir: dir.to_path_buf(),
        };
        Ok(SharedWal {
            inner: Arc::new(inner),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves the log poisoned-safe: the
        // core refuses writes after any failure, so the data is usable.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The lock, once no leader is syncing outside it.
    fn lock_between_syncs(&self) -> MutexGuard<'_, Shared> {
        let mut state = self.lock();
        while state.syncing {
            state = self.wait(&self.inner.synced, state);
        }
        state
    }

    /// Appends a record and returns its LSN once it is durable.
    ///
    /// # Errors
    ///
    /// As for [`Wal::append`].
    pub fn append(&self, payload: &[u8]) -> Result<Lsn> {
        Ok(self.append_batch(&[payload])?.start)
    }

    /// Appends an atomic batch and returns once all of it is durable.
    ///
    /// # Errors
    ///
    /// As for [`Wal::append_batch`].
    pub fn append_batch(&self, payloads: &[&[u8]]) -> Result<Range<Lsn>> {
        let mut state = self.lock();
        let range = state.wal.append_batch(payloads)?;
        state.callers_pending += 1;
        self.wait_durable(state, range.end)?;
        Ok(range)
    }

    /// Blocks until every LSN below `end` is durable, leading a sync when
    /// none is running.
    ///
    /// The caller whose record completes the expected group leads the sync
    /// at once; the first caller that finds the group incomplete keeps the
    /// time instead (see [`gather`](Self::gather)) and leads when it runs
    /// out. Everyone else waits for the sync.
    fn wait_durable<'a>(&'a self, mut state: MutexGuard<'a, Shared>, end: Lsn) -> Result<()> {
        loop {
            if state.wal.durable_lsn() >= end {
                return Ok(());
            }
            if state.wal.is_poisoned() {
                return Err(segwal::Error::Poisoned.into());
            }
            if state.syncing {
                match self.follow_sync(state, end) {
                    Some(next) => state = next,
                    None => return Ok(()),
                }
                continue;
            }
            if state.callers_pending >= state.callers_expected {
                state = self.lead_sync(state)?;
                continue;
            }
            if state.gathering {
                // Spin as a follower does, not park: this caller's record
                // goes into the sync the gatherer is about to start, and a
                // parked caller would be woken (and its thread scheduled)
                // only after that sync, a turn too late for the next group.
                match self.follow_sync(state, end) {
                    Some(next) => state = next,
                    None => return Ok(()),
                }
                continue;
            }
            state = self.gather(state);
            if !state.syncing {
                state = self.lead_sync(state)?;
            }
        }
    }

    /// Waits for the running sync (or the one a gatherer is about to start)
    /// without the lock: yields while the leader is in `fdatasync` (the CPU
    /// is idle then), so that when it ends the covered callers return at
    /// once instead of being woken and queueing on the lock one by one;
    /// parks on the condition variable after [`FOLLOW_YIELDS_MAX`] yields.
    ///
    /// Returns `None` once everything below `end` is durable: a covered
    /// caller returns without taking the lock again, so it does not queue
    /// behind the leader and the callers appending the next group.
    /// Otherwise returns the lock, and the caller checks again.
    fn follow_sync<'a>(
        &'a self,
        state: MutexGuard<'a, Shared>,
        end: Lsn,
    ) -> Option<MutexGuard<'a, Shared>> {
        let finished_before = self.inner.syncs_finished.load(Ordering::Acquire);
        drop(state);
        for _ in 0..FOLLOW_YIELDS_MAX {
            if self.inner.durable_lsn.load(Ordering::Acquire) >= end.0 {
                return None;
            }
            if self.inner.syncs_finished.load(Ordering::Acquire) != finished_before {
                return Some(self.lock());
            }
            std::thread::yield_now();
        }
        let mut state = self.lock();
        if state.syncing && self.inner.syncs_finished.load(Ordering::Acquire) == finished_before {
            state = self.wait(&self.inner.synced, state);
        }
        Some(state)
    }

    /// Waits on `condvar`, releasing the lock meanwhile.
    fn wait<'a>(&self, condvar: &Condvar, state: MutexGuard<'a, Shared>) -> MutexGuard<'a, Shared> {
        condvar.wait(state).unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps the time while the expected callers append: returns when one
    /// of them has started the sync, or when the wait is over (the caller
    /// then leads the sync with the records it has). Bounded by the
    /// deadline: at most half the last sync, and [`GATHER_WAIT_MAX`].
    fn gather<'a>(&'a self, mut state: MutexGuard<'a, Shared>) -> MutexGuard<'a, Shared> {
        let wait_max = (state.sync_duration_last / GATHER_WAIT_PER_SYNC).min(GATHER_WAIT_MAX);
        let deadline = Instant::now() + wait_max;
        state.gathering = true;
        // Yields between looks, not a condition variable: the caller that
        // completes the group then starts the sync at once, without first
        // waking this thread (on a virtual machine a wake-up is an
        // interrupt to another CPU, microseconds before the fdatasync).
        while !state.syncing && state.callers_pending < state.callers_expected {
            if Instant::now() >= deadline {
                break;
            }
            drop(state);
            std::thread::yield_now();
            state = self.lock();
        }
        state.gathering = false;
        state
    }

    /// As the leader, fdatasyncs everything written so far outside the
    /// lock and wakes the waiting callers.
    fn lead_sync<'a>(
        &'a self,
        mut state: MutexGuard<'a, Shared>,
    ) -> Result<MutexGuard<'a, Shared>> {
        let ticket = match state.wal.begin_sync() {
            Ok(ticket) => ticket,
            Err(e) => {
                // Callers waiting behind the gather re-check and fail too.
                self.wake_followers();
                return Err(e.into());
            }
        };
        let mut device = match state.wal.store_mut().device(ticket.segment_id) {
            Ok((device, _)) => device.clone(),
            Err(e) => {
                self.wake_followers();
                return Err(segwal::Error::Device(e).into());
            }
        };
        let callers_in_sync = core::mem::take(&mut state.callers_pending);
        state.syncing = true;
        drop(state);
        let started = Instant::now();
        let outcome = device.sync();
        let duration = started.elapsed();
        if outcome.is_ok() {
            // Durable now: the covered followers may return before this
            // leader has the lock back.
            self.inner
                .durable_lsn
                .fetch_max(ticket.durable_end().0, Ordering::Release);
        }
        let mut state = self.lock();
        state.syncing = false;
        state.sync_duration_last = duration;
        state.callers_expected = callers_in_sync + state.callers_pending;
        let finished = state.wal.finish_sync(ticket, outcome);
        self.inner
            .durable_lsn
            .store(state.wal.durable_lsn().0, Ordering::Release);
        self.wake_followers();
        finished?;
        Ok(state)
    }

    /// Tells the waiting callers that a sync ended or will not start: the
    /// spinning ones see the count move, the parked ones are woken.
    fn wake_followers(&self) {
        self.inner.syncs_finished.fetch_add(1, Ordering::Release);
        self.inner.synced.notify_all();
    }

    /// Makes everything appended so far durable.
    ///
    /// # Errors
    ///
    /// A failed fdatasync poisons the log.
    pub fn sync(&self) -> Result<()> {
        let state = self.lock();
        let end = state.wal.next_lsn();
        self.wait_durable(state, end)
    }

    /// Reads the record at `lsn`.
    ///
    /// # Errors
    ///
    /// As for [`Wal::read`].
    pub fn read(&self, lsn: Lsn) -> Result<Vec<u8>> {
        Ok(self.lock().wal.read(lsn)?.to_vec())
    }

    /// Durably removes sealed segments whose records are all `<= lsn`.
    ///
    /// # Errors
    ///
    /// As for [`Wal::checkpoint`].
    pub fn checkpoint(&self, lsn: Lsn) -> Result<usize> {
        Ok(self.lock().wal.checkpoint(lsn)?)
    }

    /// Durably removes every record after `lsn`.
    ///
    /// # Errors
    ///
    /// As for [`Wal::truncate_after`].
    pub fn truncate_after(&self, lsn: Lsn) -> Result<()> {
        // Not while a leader syncs the segment the cut may seal.
        let mut state = self.lock_between_syncs();
        let truncated = state.wal.truncate_after(lsn);
        // The cut lowers the durable LSN (the LSNs after it are handed out
        // again): followers must not take the old figure for their new
        // records.
        self.inner
            .durable_lsn
            .store(state.wal.durable_lsn().0, Ordering::Release);
        Ok(truncated?)
    }

    /// The first LSN still in the log.
    pub fn first_lsn(&self) -> Lsn {
        self.lock().wal.first_lsn()
    }

    /// The LSN the next append gets.
    pub fn next_lsn(&self) -> Lsn {
        self.lock().wal.next_lsn()
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Writes the clean-close marker (the log stays usable; the marker is
    /// wiped before the next append).
    ///
    /// # Errors
    ///
    /// When the final sync fails.
    pub fn close(&self) -> Result<()> {
        Ok(self.lock_between_syncs().wal.close_in_place()?)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if !state.wal.is_poisoned() {
            let _ = state.wal.close_in_place();
        }
    }
}

/// Convenience: `true` when `dir` holds a segwal log (a segment file).
///
/// # Errors
///
/// When the directory cannot be listed.
pub fn is_log_dir(dir: impl AsRef<Path>) -> Result<bool> {
    let dir = dir.as_ref();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if entry.file_name().to_string_lossy().ends_with(".seg") {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The durable LSN that followers read without the lock never runs
    /// ahead of the log's own: after `truncate_after` hands LSNs out again,
    /// a follower must not take its new record for durable by the old
    /// figure.
    #[test]
    fn published_durable_lsn_follows_a_truncation_down() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wal = SharedWal::open(dir.path(), &WalOptions::default()).expect("open");
        for byte in 0..10u8 {
            wal.append(&[byte]).expect("append");
        }
        assert_eq!(wal.inner.durable_lsn.load(Ordering::Acquire), 11);
        wal.truncate_after(Lsn(5)).expect("truncate");
        let state = wal.lock();
        assert_eq!(state.wal.next_lsn(), Lsn(6));
        assert_eq!(state.wal.durable_lsn(), Lsn(6));
        assert_eq!(wal.inner.durable_lsn.load(Ordering::Acquire), 6);
    }

    /// The backend's CRC32C kernel (installed by every device; its split
    /// path from 96-byte pieces on) and the core's tables give the same
    /// record checksums: a log written through either verifies and reads
    /// back through the other, for payloads of every length to 300 bytes.
    #[test]
    fn the_kernel_and_the_tables_read_each_others_logs() {
        let payload = |len: usize| -> Vec<u8> {
            (0..len)
                .map(|i| u8::try_from((i * 131 + len * 7) % 251).expect("below 251"))
                .collect()
        };
        let write = |accelerated: bool| {
            segwal::use_accelerated(accelerated);
            let dir = tempfile::tempdir().expect("temp dir");
            let options = WalOptions {
                durability: Durability::Manual,
                ..WalOptions::default()
            };
            let mut wal = Wal::open_with(dir.path(), &options).expect("open");
            for len in 0..=300 {
                wal.append(&payload(len)).expect("append");
            }
            wal.close().expect("close");
            dir
        };
        let read_back = |dir: &tempfile::TempDir, accelerated: bool| {
            segwal::use_accelerated(accelerated);
            let mut wal = Wal::open(dir.path()).expect("reopen");
            assert!(wal.verify().expect("verify").is_clean());
            let payloads: Vec<Vec<u8>> = wal.iter().map(|entry| entry.expect("record").1).collect();
            assert_eq!(payloads, (0..=300).map(payload).collect::<Vec<_>>());
        };
        let by_kernel = write(true);
        let by_tables = write(false);
        read_back(&by_kernel, false);
        read_back(&by_tables, true);
        segwal::use_accelerated(true);
    }
}
