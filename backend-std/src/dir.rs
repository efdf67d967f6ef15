//! [`DirStore`]: a directory of segment files as a [`SegmentStore`].
//!
//! The layout, the lock and what a power cut leaves are documented on
//! [`DirStore`], where users of the re-export see them.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::thread::{self, JoinHandle};

use segwal::{ErrorKind, ErrorType, SegmentId, SegmentStore};

use crate::file::{FileDevice, FileError, sync_dir};
use crate::sys;

/// The suffix of a segment file's name.
const SEGMENT_SUFFIX: &str = ".seg";

/// Appended to a segment's name while it is made ahead of time.
const PREPARED_SUFFIX: &str = ".prepared";

/// The lock file's name within the directory.
const LOCK_FILE_NAME: &str = "LOCK";

/// Digits in a segment name this store writes: `u64::MAX` has 20.
const NAME_DIGITS: usize = 20;

/// Open segment files kept at most. Listing and opening cost a system call
/// each, so handles are cached, but a log with thousands of segments must
/// not hold thousands of descriptors.
const DEVICES_CACHED_MAX: usize = 64;

// The eviction in `DirStore::cache` keeps the highest id only if at least
// two handles fit.
const _: () = assert!(DEVICES_CACHED_MAX >= 2);

/// Bytes of `LOCK` read for the holder's pid: a `u32` and a newline take 11,
/// and a bound keeps a garbage `LOCK` from costing more.
const LOCK_TEXT_MAX_BYTES: usize = 32;

/// How [`DirStore::open`] uses the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMode {
    /// Creates the directory if missing, takes its exclusive lock, and
    /// allocates and releases segments.
    ReadWrite,
    /// Reads existing segments only: takes no lock and creates, removes or
    /// renames nothing, so it works beside a live writer (whose records
    /// still being written fail their checksums, as after a crash).
    ReadOnly,
}

/// Why [`DirStore::open`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirError {
    /// Another store holds the directory's lock: another process, or an
    /// earlier [`DirStore`] in this one that has not been dropped.
    #[error(
        "log directory {path} is locked by {}; stop it, or open the log read-only",
        describe_holder(.holder_pid)
    )]
    Locked {
        /// The directory.
        path: PathBuf,
        /// The holder's process id as it wrote it in `LOCK`; `None` when it
        /// is not there (yet) or not readable.
        holder_pid: Option<u32>,
    },
    /// The path exists but is not a directory.
    #[error("{0} is not a directory; give the log a directory of its own")]
    NotADirectory(PathBuf),
    /// Creating, locking or listing the directory failed: `NotFound` for a
    /// missing directory opened read-only, `PermissionDenied` or
    /// `ReadOnlyFilesystem` for one the writer cannot create `LOCK` in.
    #[error("log directory {path}: {source}")]
    Io {
        /// The path involved: the directory or its `LOCK`.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl DirError {
    fn io(path: &Path, source: io::Error) -> Self {
        DirError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn describe_holder(holder_pid: &Option<u32>) -> String {
    match holder_pid {
        Some(pid) => format!("process {pid}"),
        None => "another process or store (its pid is not recorded)".to_owned(),
    }
}

/// A directory of segment files, one per segment, as a [`SegmentStore`].
///
/// # Layout
///
/// ```text
/// wal/
/// ├── LOCK                                flock(2)ed by the writer; its pid as text
/// ├── 00000000000000000007.seg            segment 7: preallocated, zero-filled
/// ├── 00000000000000000008.seg            segment 8
/// └── 00000000000000000009.seg.prepared   segment 9, made ahead (optional)
/// ```
///
/// A segment's id is its sequence number, and its name that number in 20
/// decimal digits: any `u64` fits, and names sort in sequence order. Listing
/// also accepts other all-digit names (`000042.seg`, as older tools wrote);
/// when two names give one id, the 20-digit one is used. Anything else in
/// the directory, a `.seg` name that is not a regular file included, is
/// left alone.
///
/// # Locking
///
/// An [`AccessMode::ReadWrite`] store holds `flock(LOCK_EX)` on `LOCK` until
/// it drops. `flock` locks belong to the open file description, so a second
/// writer is refused even within the same process. The lock never waits:
/// a held lock is [`DirError::Locked`] at once. A read-only store takes no
/// lock and changes nothing, so tools can inspect a live log.
///
/// # Power loss
///
/// - `allocate`: the segment is created under its final name by
///   [`FileDevice::create`], which returns only once contents and name are
///   durable; a cut in the middle leaves no file, or a short or partly
///   zeroed one, which the log reads as an allocation cut short. A
///   prepared segment is renamed into place only once it is whole.
/// - `release`: one `unlink` and a directory `fsync`; a cut leaves the
///   segment whole or gone.
/// - A `.prepared` file is never a segment: a cut at any point leaves at
///   most a stale one, which the next writer's `open` removes.
///
/// # Open files
///
/// Open segment files are cached, at most 64 of them; past that, the lowest
/// ids are closed first, since the log appends to the highest and releases
/// the lowest. Closing loses nothing: the writes are in the page cache,
/// and a `sync` through the next descriptor flushes them. Those lowest ids
/// are segments the log sealed and synced long before anyway.
///
/// # Example
///
/// ```
/// use segwal::{BlockDevice, SegmentStore};
/// use segwal_std::{AccessMode, DirError, DirStore};
///
/// let dir = tempfile::tempdir()?;
/// let wal_dir = dir.path().join("wal");
/// let mut store = DirStore::open(&wal_dir, AccessMode::ReadWrite)?;
/// let id = store.allocate(1, 4096)?;
/// let (device, offset) = store.device(id)?;
/// device.write(offset, &[b"header"])?;
/// device.sync()?;
///
/// let mut ids = Vec::new();
/// store.segment_ids(&mut |id| ids.push(id))?;
/// assert_eq!(ids, [1]);
///
/// // One writer per directory: a second is refused at once, even in this
/// // process, and told who holds the lock. A reader takes no lock.
/// match DirStore::open(&wal_dir, AccessMode::ReadWrite) {
///     Err(DirError::Locked { holder_pid, .. }) => {
///         assert_eq!(holder_pid, Some(std::process::id()));
///     }
///     other => panic!("expected Locked, got {other:?}"),
/// }
/// DirStore::open(&wal_dir, AccessMode::ReadOnly)?;
///
/// // Dropping the writer releases the lock.
/// drop(store);
/// DirStore::open(&wal_dir, AccessMode::ReadWrite)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct DirStore {
    dir: PathBuf,
    mode: AccessMode,
    /// `LOCK`, holding the `flock` that makes this store the writer; `None`
    /// when read-only. Closing it, when the store drops, releases the lock.
    lock_file: Option<File>,
    /// Open segment files by id, at most [`DEVICES_CACHED_MAX`].
    devices: DeviceCache,
    /// Whether `open` saw a segment named other than in 20 digits: only then
    /// do `device` and `release` search the directory for such names.
    has_noncanonical_names: bool,
    prepare_ahead: bool,
    /// Write-behind buffer of each segment written (0: write through).
    write_buffer_bytes: usize,
    /// The one segment being made ahead, if any.
    prepared: Option<Prepared>,
}

/// A segment file being created in the background under its `.prepared`
/// name.
#[derive(Debug)]
struct Prepared {
    sequence: u64,
    size_bytes: u32,
    worker: JoinHandle<io::Result<FileDevice>>,
}

impl DirStore {
    /// Opens the log directory `dir`.
    ///
    /// [`AccessMode::ReadWrite`] creates `dir` (and missing parents) if
    /// needed, fsyncing each new directory's parent; takes the lock and
    /// writes this process's id into `LOCK`; and removes stale `.prepared`
    /// files. [`AccessMode::ReadOnly`] only checks that `dir` is a
    /// directory.
    ///
    /// # Errors
    ///
    /// [`DirError::Locked`] at once, without waiting, when another store
    /// holds the lock; [`DirError::NotADirectory`] when `dir` is a file;
    /// [`DirError::Io`] when `dir` is missing (read-only), cannot be
    /// created, or `LOCK` cannot be created or locked (`EACCES`, `EROFS`,
    /// a file system without `flock`).
    pub fn open(dir: &Path, mode: AccessMode) -> Result<DirStore, DirError> {
        ensure_dir(dir, mode)?;
        let lock_file = match mode {
            AccessMode::ReadWrite => Some(lock(dir)?),
            AccessMode::ReadOnly => None,
        };
        // After locking: removing `.prepared` files earlier could pull one
        // from under the writer still making it.
        let has_noncanonical_names =
            scan_at_open(dir, mode).map_err(|source| DirError::io(dir, source))?;
        Ok(DirStore {
            dir: dir.to_path_buf(),
            mode,
            lock_file,
            devices: DeviceCache::default(),
            has_noncanonical_names,
            prepare_ahead: false,
            write_buffer_bytes: 0,
            prepared: None,
        })
    }

    /// The process holding the lock on `dir`, without taking it: `Some(pid)`
    /// only while a writer holds the lock and has recorded its pid.
    ///
    /// Probes with a shared non-blocking `flock` on a fresh descriptor,
    /// dropped at once; a writer opening at that instant may see
    /// [`DirError::Locked`] and should retry.
    ///
    /// # Errors
    ///
    /// Any error but `NotFound` from opening `dir/LOCK` (a missing
    /// directory or `LOCK` is `Ok(None)`), or from `flock`.
    pub fn lock_holder(dir: &Path) -> io::Result<Option<u32>> {
        let file = match File::open(dir.join(LOCK_FILE_NAME)) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        match sys::try_lock_shared(&file) {
            // Nobody holds it; returning closes `file`, which drops the probe.
            // Unlike `fcntl` locks, closing one descriptor does not drop a
            // `flock` this process holds through another, so probing from
            // the writer's own process is safe.
            Ok(()) => Ok(None),
            Err(error) if is_would_block(&error) => Ok(read_holder_pid(&file)),
            Err(error) => Err(error),
        }
    }

    /// The directory this store was opened on.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Turns making the next segment ahead of time on or off (off at open).
    ///
    /// When on, a [`prepare`](SegmentStore::prepare) hint for `sequence`
    /// (the log sends one when its active segment is three-quarters full)
    /// starts a thread that creates that segment as
    /// `{sequence:020}.seg.prepared`; the next `allocate` renames it into
    /// place instead of zero-filling a file while an append waits. If the
    /// preparation is still running then, `allocate` does not wait: it
    /// creates that segment reserved but unwritten
    /// ([`FileDevice::create_reserved`]) and leaves the prepared file for
    /// the allocation after. A prepared file of another size is discarded.
    /// Turning it off stops new preparations; one already started is still
    /// used if it fits. Read-only stores ignore it.
    ///
    /// The cost: one segment's worth of disk is taken ahead of need, and
    /// dropping the store waits for a preparation still running.
    pub fn set_prepare_ahead(&mut self, on: bool) {
        self.prepare_ahead = on;
    }

    /// Gives every segment device this store hands out from now on a
    /// write-behind buffer of `capacity_bytes` (see
    /// [`FileDevice::with_write_buffer`]); `0`, the default, writes
    /// through. Read-only stores ignore it.
    ///
    /// The log syncs a segment before it moves on to the next, so only the
    /// segment being appended to holds bytes back.
    pub fn set_write_buffer_bytes(&mut self, capacity_bytes: usize) {
        self.write_buffer_bytes = capacity_bytes;
    }

    /// Where segment `sequence` lives under the name this store writes.
    fn segment_path(&self, sequence: u64) -> PathBuf {
        self.dir.join(segment_file_name(sequence))
    }

    fn prepared_path(&self, sequence: u64) -> PathBuf {
        let mut name = segment_file_name(sequence);
        name.push_str(PREPARED_SUFFIX);
        self.dir.join(name)
    }

    fn check_writable(&self, context: &'static str) -> Result<(), FileError> {
        match self.mode {
            AccessMode::ReadWrite => Ok(()),
            AccessMode::ReadOnly => Err(FileError::new(ErrorKind::Other, None, context)),
        }
    }

    /// Opens segment `id`: its 20-digit name, or else the first other name
    /// that gives `id`.
    fn open_segment(&self, id: SegmentId) -> io::Result<FileDevice> {
        let open = |path: &Path| match self.mode {
            AccessMode::ReadWrite => FileDevice::open(path),
            AccessMode::ReadOnly => FileDevice::open_read_only(path),
        };
        match open(&self.segment_path(id)) {
            Err(error)
                if error.kind() == io::ErrorKind::NotFound && self.has_noncanonical_names =>
            {
                match noncanonical_paths(&self.dir, id)?.first() {
                    Some(path) => open(path),
                    None => Err(error),
                }
            }
            result => result,
        }
    }

    /// Opens segment `id`'s file and caches its device: what
    /// [`SegmentStore::device`] does for a segment not cached.
    #[inline(never)]
    fn open_uncached(&mut self, id: SegmentId) -> Result<(&mut FileDevice, u64), FileError> {
        let device = self
            .open_segment(id)
            .map_err(|error| FileError::from_io("open a segment file", &error))?;
        Ok((self.cache(id, device), 0))
    }

    /// Caches `device` as segment `id`'s, replacing any handle it had.
    fn cache(&mut self, id: SegmentId, device: FileDevice) -> &mut FileDevice {
        let device = device.with_write_buffer(self.write_buffer_bytes);
        self.devices.insert(id, device)
    }

    /// The prepared segment, renamed into place as `sequence`, when its
    /// preparation succeeded (waiting for it if it still runs); otherwise
    /// removes the prepared file and returns `None`. Any sequence will do:
    /// a prepared file is zeros, named only while it is made.
    ///
    /// # Errors
    ///
    /// The directory `fsync` after the rename failed: the allocation is then
    /// not known to be durable.
    fn take_prepared(&mut self, sequence: u64) -> Result<Option<FileDevice>, FileError> {
        let Some(prepared) = self.prepared.take() else {
            return Ok(None);
        };
        let prepared_path = self.prepared_path(prepared.sequence);
        // A worker that panicked (none should) counts as a failed
        // preparation.
        let made = prepared
            .worker
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("segment preparation panicked")));
        // The rename replaces a leftover under the final name atomically.
        let placed = match made {
            Ok(device) => fs::rename(&prepared_path, self.segment_path(sequence))
                .ok()
                .map(|()| device),
            Err(_) => None,
        };
        let Some(device) = placed else {
            // A preparation is only a speed-up, so its failure is not this
            // allocation's: the caller creates the file itself. A file left
            // behind is stale, and removed at the next open.
            let _ = fs::remove_file(&prepared_path);
            return Ok(None);
        };
        sync_dir(&self.dir)
            .map_err(|error| FileError::from_io("fsync the log directory", &error))?;
        Ok(Some(device))
    }

    /// Waits for the preparation, if any, and removes what it made.
    fn discard_prepared(&mut self) {
        if let Some(prepared) = self.prepared.take() {
            let _ = prepared.worker.join();
            let _ = fs::remove_file(self.prepared_path(prepared.sequence));
        }
    }

    /// Creates segment `sequence` from scratch with `create`
    /// ([`FileDevice::create`] or [`FileDevice::create_reserved`]),
    /// removing a leftover of an allocation cut short first (neither
    /// overwrites).
    fn create_segment(
        &mut self,
        sequence: u64,
        size_bytes: u32,
        create: fn(&Path, u64) -> io::Result<FileDevice>,
    ) -> Result<FileDevice, FileError> {
        let path = self.segment_path(sequence);
        self.devices.remove(sequence);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir)
                .map_err(|error| FileError::from_io("fsync the log directory", &error))?,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(FileError::from_io("remove a leftover segment", &error)),
        }
        create(&path, u64::from(size_bytes))
            .map_err(|error| FileError::from_io("create a segment file", &error))
    }

    /// Starts making segment `sequence` in the background.
    fn start_prepare(&mut self, sequence: u64, size_bytes: u32) {
        assert!(
            self.prepared.is_none(),
            "allocate takes the previous preparation before starting one"
        );
        let path = self.prepared_path(sequence);
        let spawned = thread::Builder::new()
            .name("segwal-prepare".to_owned())
            .spawn(move || {
                // One left by a discarded preparation whose removal failed
                // would make `create` fail with AlreadyExists.
                match fs::remove_file(&path) {
                    Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                    _ => {}
                }
                FileDevice::create(&path, u64::from(size_bytes))
            });
        // A thread that cannot start costs only the speed-up.
        if let Ok(worker) = spawned {
            self.prepared = Some(Prepared {
                sequence,
                size_bytes,
                worker,
            });
        }
    }
}

/// A segment being prepared ahead, as [`plan_allocation`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Preparation {
    size_bytes: u32,
    /// The worker has returned: taking its file waits for nothing.
    finished: bool,
}

/// How `allocate` makes a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Allocation {
    /// Rename the prepared file into place.
    TakePrepared,
    /// Create the segment reserved but unwritten
    /// ([`FileDevice::create_reserved`]), at once, and leave the
    /// preparation running for the allocation after.
    Reserve,
    /// Discard any preparation and create a zero-filled segment.
    ZeroFill,
}

/// How to allocate a segment of `size_bytes` given the preparation under
/// way, if any: a pure decision.
///
/// A preparation still running means the log filled a segment faster than
/// a thread could zero-fill the next one (a quarter of a segment's
/// appends): buffered bulk appends. Waiting for it stalled such appends at
/// every rotation (two waits of 87-122 ms in a run of a million 128-byte
/// appends into 64 MiB segments, which took 320-370 ms against about 150
/// in one segment); a reserved segment takes milliseconds, and its cost
/// (the first write into each extent is journaled at the next
/// `fdatasync`) falls on a log that syncs rarely. The preparation then
/// serves the next rotation. A log that syncs often fills segments slowly,
/// so its preparations are finished when needed and its segments stay
/// zero-filled.
fn plan_allocation(preparation: Option<Preparation>, size_bytes: u32) -> Allocation {
    match preparation {
        Some(prepared) if prepared.size_bytes == size_bytes => {
            if prepared.finished {
                Allocation::TakePrepared
            } else {
                Allocation::Reserve
            }
        }
        _ => Allocation::ZeroFill,
    }
}

/// Open segment files by id, sorted, at most [`DEVICES_CACHED_MAX`]. A
/// `Vec` searched from the end, not a map: appends and reads go mostly to
/// the highest ids, found in a comparison or two, and the lookup runs for
/// every record (a map's was a sizeable part of a buffered append).
#[derive(Debug, Default)]
struct DeviceCache {
    entries: Vec<(SegmentId, FileDevice)>,
}

impl DeviceCache {
    /// Where segment `id`'s handle is, if cached.
    #[inline]
    fn position(&self, id: SegmentId) -> Option<usize> {
        self.entries.iter().rposition(|(cached, _)| *cached == id)
    }

    /// The handle at `position`.
    fn at(&mut self, position: usize) -> &mut FileDevice {
        &mut self.entries[position].1
    }

    /// Caches `device` as segment `id`'s, replacing any handle it had.
    ///
    /// Evicts the lowest ids first, before inserting: the log appends to
    /// the highest id, which is never the lowest while two or more are
    /// cached, and the id being inserted is not among those evicted.
    fn insert(&mut self, id: SegmentId, device: FileDevice) -> &mut FileDevice {
        if let Some(at) = self.position(id) {
            self.entries[at].1 = device;
            return &mut self.entries[at].1;
        }
        // Each pass removes one handle, so this ends within `len` passes.
        while self.entries.len() >= DEVICES_CACHED_MAX {
            self.entries.remove(0);
        }
        let at = self.entries.partition_point(|(cached, _)| *cached < id);
        self.entries.insert(at, (id, device));
        &mut self.entries[at].1
    }

    /// Drops segment `id`'s handle, if cached.
    fn remove(&mut self, id: SegmentId) {
        if let Some(at) = self.position(id) {
            self.entries.remove(at);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    fn contains(&self, id: SegmentId) -> bool {
        self.position(id).is_some()
    }
}

impl ErrorType for DirStore {
    type Error = FileError;
}

impl SegmentStore for DirStore {
    type Device = FileDevice;

    fn segment_ids(&mut self, visit: &mut dyn FnMut(SegmentId)) -> Result<(), FileError> {
        let ids = list_segment_ids(&self.dir)
            .map_err(|error| FileError::from_io("list the log directory", &error))?;
        for id in ids {
            visit(id);
        }
        Ok(())
    }

    // Inline, its opening path apart: every append and read asks for its
    // segment's device, nearly always cached.
    #[inline]
    fn device(&mut self, id: SegmentId) -> Result<(&mut FileDevice, u64), FileError> {
        match self.devices.position(id) {
            Some(at) => Ok((self.devices.at(at), 0)),
            None => self.open_uncached(id),
        }
    }

    fn allocate(&mut self, sequence: u64, size_bytes: u32) -> Result<SegmentId, FileError> {
        self.check_writable("allocate: the log directory was opened read-only")?;
        let preparation = self.prepared.as_ref().map(|prepared| Preparation {
            size_bytes: prepared.size_bytes,
            finished: prepared.worker.is_finished(),
        });
        let device = match plan_allocation(preparation, size_bytes) {
            Allocation::TakePrepared => match self.take_prepared(sequence)? {
                Some(device) => device,
                None => self.create_segment(sequence, size_bytes, FileDevice::create)?,
            },
            Allocation::Reserve => {
                self.create_segment(sequence, size_bytes, FileDevice::create_reserved)?
            }
            Allocation::ZeroFill => {
                self.discard_prepared();
                self.create_segment(sequence, size_bytes, FileDevice::create)?
            }
        };
        self.cache(sequence, device);
        Ok(sequence)
    }

    fn prepare(&mut self, sequence: u64, size_bytes: u32) {
        if !self.prepare_ahead || self.mode != AccessMode::ReadWrite {
            return;
        }
        match &self.prepared {
            // Made or on its way: it serves the next allocation, whichever
            // sequence that is.
            Some(prepared) if prepared.size_bytes == size_bytes => return,
            Some(_) => self.discard_prepared(),
            None => {}
        }
        self.start_prepare(sequence, size_bytes);
    }

    fn release(&mut self, id: SegmentId) -> Result<(), FileError> {
        self.check_writable("release: the log directory was opened read-only")?;
        self.devices.remove(id);
        let remove = |path: &Path| match fs::remove_file(path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                Err(FileError::from_io("remove a segment file", &error))
            }
            _ => Ok(()),
        };
        remove(&self.segment_path(id))?;
        if self.has_noncanonical_names {
            let paths = noncanonical_paths(&self.dir, id)
                .map_err(|error| FileError::from_io("list the log directory", &error))?;
            for path in &paths {
                remove(path)?;
            }
        }
        // Even when nothing was removed: an earlier release may have
        // unlinked the file and then failed this very fsync.
        sync_dir(&self.dir).map_err(|error| FileError::from_io("fsync the log directory", &error))
    }

    fn fresh_salt(&mut self) -> u64 {
        crate::salt::fresh_salt()
    }

    fn id_for_sequence(&self, sequence: u64) -> Option<SegmentId> {
        // Files are named by their sequence number.
        Some(sequence)
    }
}

impl Drop for DirStore {
    fn drop(&mut self) {
        // The worker must be done before the lock goes: the next writer
        // removes `.prepared` files at open, and must not race one being
        // written. Removing it only tidies up; the next open would too.
        self.discard_prepared();
        if let Some(lock_file) = &self.lock_file {
            // A released lock then names no holder. `lock_holder` reports one
            // only while the lock is held, so a failure here is harmless.
            let _ = lock_file.set_len(0);
        }
    }
}

/// The name segment `sequence` gets: 20 digits and `.seg`.
fn segment_file_name(sequence: u64) -> String {
    format!("{sequence:0width$}{SEGMENT_SUFFIX}", width = NAME_DIGITS)
}

/// What a directory entry's name makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EntryName {
    /// A segment; `canonical` when its name has the 20 digits this store
    /// writes.
    Segment { id: SegmentId, canonical: bool },
    /// A segment made ahead of time, not yet renamed into place.
    Prepared { sequence: u64 },
    /// Anything else: left alone.
    Other,
}

fn classify(name: &str) -> EntryName {
    if let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) {
        return match parse_digits(stem) {
            Some(id) => EntryName::Segment {
                id,
                canonical: stem.len() == NAME_DIGITS,
            },
            None => EntryName::Other,
        };
    }
    // Only names this store writes: another tool's `.prepared` files are
    // not ours to remove.
    let prepared = name
        .strip_suffix(PREPARED_SUFFIX)
        .and_then(|segment_name| segment_name.strip_suffix(SEGMENT_SUFFIX))
        .filter(|stem| stem.len() == NAME_DIGITS)
        .and_then(parse_digits);
    match prepared {
        Some(sequence) => EntryName::Prepared { sequence },
        None => EntryName::Other,
    }
}

/// `stem` as a number when it is nothing but ASCII digits (`u64::from_str`
/// alone would also take a leading `+`).
fn parse_digits(stem: &str) -> Option<u64> {
    if stem.is_empty() || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Calls `visit` with the name and file type of each entry of `dir` whose
/// name is UTF-8 (segment names always are). Entries that vanish while
/// listing (a writer releasing beside a read-only store) are skipped.
fn for_each_entry(
    dir: &Path,
    mut visit: impl FnMut(&str, fs::FileType) -> io::Result<()>,
) -> io::Result<()> {
    // `read_dir` yields each entry once, so this ends.
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        if let Some(name) = entry.file_name().to_str() {
            visit(name, file_type)?;
        }
    }
    Ok(())
}

/// The ids of the regular files in `dir` named as segments, each once.
fn list_segment_ids(dir: &Path) -> io::Result<BTreeSet<SegmentId>> {
    let mut ids = BTreeSet::new();
    for_each_entry(dir, |name, file_type| {
        if let EntryName::Segment { id, .. } = classify(name)
            && file_type.is_file()
        {
            ids.insert(id);
        }
        Ok(())
    })?;
    Ok(ids)
}

/// The regular files in `dir` whose names give `id` in other than 20
/// digits, sorted so the choice among them does not depend on the order
/// the directory lists them in.
fn noncanonical_paths(dir: &Path, id: SegmentId) -> io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for_each_entry(dir, |name, file_type| {
        if classify(name)
            == (EntryName::Segment {
                id,
                canonical: false,
            })
            && file_type.is_file()
        {
            paths.push(dir.join(name));
        }
        Ok(())
    })?;
    paths.sort();
    Ok(paths)
}

/// Removes stale `.prepared` files (read-write only) and reports whether
/// any segment has a name of other than 20 digits.
fn scan_at_open(dir: &Path, mode: AccessMode) -> io::Result<bool> {
    let mut has_noncanonical_names = false;
    for_each_entry(dir, |name, file_type| {
        match classify(name) {
            EntryName::Segment {
                canonical: false, ..
            } if file_type.is_file() => {
                has_noncanonical_names = true;
            }
            // No directory fsync: should the removal be lost, the next open
            // removes the file again.
            EntryName::Prepared { .. } if mode == AccessMode::ReadWrite => {
                match fs::remove_file(dir.join(name)) {
                    Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(has_noncanonical_names)
}

/// Makes sure `dir` is a directory, creating it when `mode` allows.
fn ensure_dir(dir: &Path, mode: AccessMode) -> Result<(), DirError> {
    match fs::metadata(dir) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(DirError::NotADirectory(dir.to_path_buf())),
        Err(error) if error.kind() == io::ErrorKind::NotFound && mode == AccessMode::ReadWrite => {
            create_dir_durably(dir).map_err(|source| DirError::io(dir, source))
        }
        Err(source) => Err(DirError::io(dir, source)),
    }
}

/// Creates `dir` and its missing parents, fsyncing each new directory's
/// parent so that the new names survive a power cut.
fn create_dir_durably(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut cursor = Some(dir);
    // Each pass moves to a parent, a shorter path, so this ends.
    while let Some(path) = cursor.filter(|path| !path.as_os_str().is_empty()) {
        match fs::metadata(path) {
            Ok(_) => break,
            Err(error) if error.kind() == io::ErrorKind::NotFound => missing.push(path),
            Err(error) => return Err(error),
        }
        cursor = path.parent();
    }
    for path in missing.iter().rev() {
        match fs::create_dir(path) {
            Err(error) if error.kind() != io::ErrorKind::AlreadyExists => return Err(error),
            _ => {}
        }
        sync_dir(parent_or_current(path))?;
    }
    Ok(())
}

/// The directory holding `path`: `Path::parent` gives `""` for a bare name.
fn parent_or_current(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Opens `dir/LOCK`, takes its exclusive lock and records this process's id
/// in it.
fn lock(dir: &Path) -> Result<File, DirError> {
    let path = dir.join(LOCK_FILE_NAME);
    // Not truncated: until the lock is ours, the text is the holder's.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| DirError::io(&path, source))?;
    match sys::try_lock_exclusive(&file) {
        Ok(()) => {}
        Err(error) if is_would_block(&error) => {
            return Err(DirError::Locked {
                path: dir.to_path_buf(),
                holder_pid: read_holder_pid(&file),
            });
        }
        Err(source) => return Err(DirError::io(&path, source)),
    }
    write_holder_pid(&file).map_err(|source| DirError::io(&path, source))?;
    Ok(file)
}

fn is_would_block(error: &io::Error) -> bool {
    error.raw_os_error() == Some(libc::EWOULDBLOCK)
}

/// Writes `"{pid}\n"` over the start of `LOCK`, then cuts what follows.
/// In this order a reader never finds the file empty, and the first line
/// holds the new pid from the moment the write lands.
fn write_holder_pid(file: &File) -> io::Result<()> {
    let text = format!("{}\n", std::process::id());
    file.write_all_at(text.as_bytes(), 0)?;
    file.set_len(text.len() as u64)
}

/// The pid recorded in `LOCK`, when there is one.
fn read_holder_pid(file: &File) -> Option<u32> {
    let mut text = [0u8; LOCK_TEXT_MAX_BYTES];
    let len_bytes = file.read_at(&mut text, 0).ok()?;
    parse_holder_pid(&text[..len_bytes])
}

/// The first line of `LOCK`'s text as a pid.
fn parse_holder_pid(text: &[u8]) -> Option<u32> {
    let line = text.split(|&byte| byte == b'\n').next()?;
    std::str::from_utf8(line).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Child, Command, Stdio};
    use std::sync::Mutex;

    use segwal::{BlockDevice, DeviceError};

    /// Held from spawning a child until the child has told us it runs, and
    /// while opening a store for writing: from fork until a moment after
    /// exec the child holds copies of every descriptor, `LOCK`s included,
    /// and with them their `flock`s.
    static FORK_GUARD: Mutex<()> = Mutex::new(());

    /// Names the directory the child of
    /// [`another_process_holding_the_lock_is_named`] locks.
    const CHILD_DIR_VAR: &str = "SEGWAL_DIR_STORE_LOCK_CHILD";
    const CHILD_READY: &str = "SEGWAL-DIR-STORE-LOCKED";

    /// Opens a writer, once no child is between fork and exec: a store this
    /// test dropped just before may still have its `LOCK` open in such a
    /// child.
    fn open_rw(dir: &Path) -> DirStore {
        let _guard = FORK_GUARD
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        open_rw_unguarded(dir)
    }

    fn open_rw_unguarded(dir: &Path) -> DirStore {
        DirStore::open(dir, AccessMode::ReadWrite).expect("open read-write")
    }

    fn ids_of(store: &mut DirStore) -> Vec<SegmentId> {
        let mut ids = Vec::new();
        store.segment_ids(&mut |id| ids.push(id)).expect("list");
        ids.sort_unstable();
        ids
    }

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read dir")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .into_string()
                    .expect("utf-8")
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn names_are_20_digits_and_sort_in_sequence_order() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(segment_file_name(u64::MAX), "18446744073709551615.seg");
        assert!(segment_file_name(9) < segment_file_name(10));
        for id in [0, 1, 42, u64::MAX] {
            assert_eq!(
                classify(&segment_file_name(id)),
                EntryName::Segment {
                    id,
                    canonical: true
                }
            );
        }
    }

    #[test]
    fn classify_takes_digit_stems_of_any_length_and_nothing_else() {
        let segment = |id, canonical| EntryName::Segment { id, canonical };
        let cases = [
            ("000042.seg", segment(42, false)),
            ("7.seg", segment(7, false)),
            ("0000000000000000000000042.seg", segment(42, false)),
            ("18446744073709551616.seg", EntryName::Other),
            ("99999999999999999999999.seg", EntryName::Other),
            (".seg", EntryName::Other),
            ("+5.seg", EntryName::Other),
            ("-5.seg", EntryName::Other),
            (" 5.seg", EntryName::Other),
            ("5a.seg", EntryName::Other),
            ("5.SEG", EntryName::Other),
            ("5.seg.bak", EntryName::Other),
            ("LOCK", EntryName::Other),
            ("notes.txt", EntryName::Other),
            (
                "00000000000000000009.seg.prepared",
                EntryName::Prepared { sequence: 9 },
            ),
            ("000009.seg.prepared", EntryName::Other),
            ("00000000000000000009.prepared", EntryName::Other),
            ("x0000000000000000009.seg.prepared", EntryName::Other),
        ];
        for (name, expected) in cases {
            assert_eq!(classify(name), expected, "{name}");
        }
    }

    #[test]
    fn holder_pid_is_the_first_line_of_lock() {
        assert_eq!(parse_holder_pid(b"1234\n"), Some(1234));
        assert_eq!(parse_holder_pid(b"1234"), Some(1234));
        assert_eq!(parse_holder_pid(b"99\n456\n"), Some(99), "mid-update");
        assert_eq!(parse_holder_pid(b""), None);
        assert_eq!(parse_holder_pid(b"\n"), None);
        assert_eq!(parse_holder_pid(b"pid\n"), None);
        assert_eq!(parse_holder_pid(b"\xff\xfe"), None);
        assert_eq!(parse_holder_pid(b"99999999999\n"), None);
    }

    #[test]
    fn allocate_list_device_release_round_trip() {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("wal");
        let mut store = open_rw(&dir);
        assert_eq!(store.dir(), dir);
        for sequence in 1..=3 {
            assert_eq!(store.allocate(sequence, 4096).expect("allocate"), sequence);
        }
        assert_eq!(ids_of(&mut store), [1, 2, 3]);
        assert_eq!(
            file_names(&dir),
            [
                "00000000000000000001.seg",
                "00000000000000000002.seg",
                "00000000000000000003.seg",
                "LOCK"
            ]
        );

        let (device, offset) = store.device(2).expect("device");
        assert_eq!(offset, 0);
        assert_eq!(device.geometry().capacity_bytes, 4096);
        device.write(100, &[b"two"]).expect("write");
        device.sync().expect("sync");

        store.release(2).expect("release");
        assert_eq!(ids_of(&mut store), [1, 3]);
        assert!(!dir.join("00000000000000000002.seg").exists());
        assert!(store.device(2).is_err(), "a released segment is gone");

        store
            .device(3)
            .expect("device")
            .0
            .write(0, &[b"three"])
            .expect("write");
        drop(store);
        let mut store = open_rw(&dir);
        assert_eq!(ids_of(&mut store), [1, 3]);
        let mut back = [0u8; 5];
        let (device, _) = store.device(3).expect("device after reopen");
        device.read(0, &mut back).expect("read");
        assert_eq!(&back, b"three");
    }

    #[test]
    fn a_name_of_six_digits_is_listed_opened_and_released() {
        let temp = tempfile::tempdir().expect("temp dir");
        fs::write(temp.path().join("000007.seg"), [7u8; 100]).expect("write");
        fs::write(temp.path().join("8.seg"), [8u8; 10]).expect("write");
        let mut store = open_rw(temp.path());
        assert_eq!(ids_of(&mut store), [7, 8]);

        let (device, _) = store.device(7).expect("device of a six-digit name");
        assert_eq!(device.geometry().capacity_bytes, 100);
        let mut back = [0u8; 1];
        device.read(99, &mut back).expect("read");
        assert_eq!(back, [7]);

        store.release(7).expect("release");
        assert!(!temp.path().join("000007.seg").exists());
        assert_eq!(ids_of(&mut store), [8]);
    }

    #[test]
    fn one_id_under_two_names_is_listed_once_and_released_whole() {
        let temp = tempfile::tempdir().expect("temp dir");
        fs::write(temp.path().join("000005.seg"), [1u8; 10]).expect("write");
        fs::write(temp.path().join("00000000000000000005.seg"), [2u8; 20]).expect("write");
        let mut store = open_rw(temp.path());
        assert_eq!(ids_of(&mut store), [5]);
        let (device, _) = store.device(5).expect("device");
        assert_eq!(
            device.geometry().capacity_bytes,
            20,
            "the 20-digit name wins"
        );
        store.release(5).expect("release");
        assert_eq!(ids_of(&mut store), [] as [SegmentId; 0]);
        assert_eq!(file_names(temp.path()), ["LOCK"]);
    }

    #[test]
    fn junk_is_ignored_and_left_alone() {
        let temp = tempfile::tempdir().expect("temp dir");
        let junk = [
            "notes.txt",
            "abc.seg",
            "12.seg.bak",
            "+3.seg",
            "000009.seg.prepared",
        ];
        for name in junk {
            fs::write(temp.path().join(name), b"junk").expect("write");
        }
        fs::create_dir(temp.path().join("00000000000000000004.seg")).expect("mkdir");
        std::os::unix::fs::symlink("notes.txt", temp.path().join("00000000000000000006.seg"))
            .expect("symlink");

        let mut store = open_rw(temp.path());
        assert_eq!(ids_of(&mut store), [] as [SegmentId; 0]);
        drop(store);
        for name in junk {
            assert!(temp.path().join(name).exists(), "{name} left alone");
        }
        assert!(temp.path().join("00000000000000000004.seg").is_dir());
    }

    #[test]
    fn a_second_writer_in_this_process_is_refused_with_our_pid() {
        let temp = tempfile::tempdir().expect("temp dir");
        let _store = open_rw(temp.path());
        let error = DirStore::open(temp.path(), AccessMode::ReadWrite).unwrap_err();
        let pid = std::process::id();
        match &error {
            DirError::Locked { path, holder_pid } => {
                assert_eq!(path, temp.path());
                assert_eq!(*holder_pid, Some(pid));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        let message = error.to_string();
        assert!(
            message.contains(&format!("is locked by process {pid}")),
            "{message}"
        );
        assert_eq!(
            DirStore::lock_holder(temp.path()).expect("probe"),
            Some(pid)
        );
        assert_eq!(
            fs::read_to_string(temp.path().join(LOCK_FILE_NAME)).expect("read"),
            format!("{pid}\n")
        );
    }

    #[test]
    fn after_drop_the_lock_is_free() {
        let temp = tempfile::tempdir().expect("temp dir");
        let _guard = FORK_GUARD
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let store = open_rw_unguarded(temp.path());
        drop(store);
        assert_eq!(DirStore::lock_holder(temp.path()).expect("probe"), None);
        assert_eq!(
            fs::read(temp.path().join(LOCK_FILE_NAME)).expect("read"),
            b"",
            "a released lock names no holder"
        );
        let _store = open_rw_unguarded(temp.path());
    }

    #[test]
    fn lock_holder_of_an_unused_or_missing_directory_is_none() {
        let temp = tempfile::tempdir().expect("temp dir");
        assert_eq!(DirStore::lock_holder(temp.path()).expect("probe"), None);
        let missing = temp.path().join("missing");
        assert_eq!(DirStore::lock_holder(&missing).expect("probe"), None);
        // A stale pid from a writer that crashed is not a holder.
        fs::write(temp.path().join(LOCK_FILE_NAME), b"1\n").expect("write");
        assert_eq!(DirStore::lock_holder(temp.path()).expect("probe"), None);
    }

    #[test]
    fn a_reader_opens_a_locked_directory_and_changes_nothing() {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut writer = open_rw(temp.path());
        writer.allocate(1, 64).expect("allocate");
        writer
            .device(1)
            .expect("device")
            .0
            .write(0, &[b"data"])
            .expect("write");
        let stale_prepared = temp.path().join("00000000000000000009.seg.prepared");
        fs::write(&stale_prepared, b"stale").expect("write");

        let mut reader = DirStore::open(temp.path(), AccessMode::ReadOnly).expect("open");
        assert_eq!(ids_of(&mut reader), [1]);
        let (device, _) = reader.device(1).expect("device");
        assert!(device.is_read_only());
        let mut back = [0u8; 4];
        device.read(0, &mut back).expect("read");
        assert_eq!(&back, b"data");

        assert_eq!(reader.allocate(2, 64).unwrap_err().kind(), ErrorKind::Other);
        assert_eq!(reader.release(1).unwrap_err().kind(), ErrorKind::Other);
        reader.set_prepare_ahead(true);
        assert!(reader.allocate(2, 64).is_err());
        drop(reader);
        assert!(stale_prepared.exists(), "a reader removes nothing");
        assert_eq!(ids_of(&mut writer), [1]);
        assert_eq!(
            DirStore::lock_holder(temp.path()).expect("probe"),
            Some(std::process::id()),
            "a reader neither takes nor drops the lock"
        );
    }

    #[test]
    fn a_reader_needs_an_existing_directory_and_creates_none() {
        let temp = tempfile::tempdir().expect("temp dir");
        let missing = temp.path().join("missing");
        match DirStore::open(&missing, AccessMode::ReadOnly).unwrap_err() {
            DirError::Io { path, source } => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("expected Io, got {other:?}"),
        }
        assert!(!missing.exists());
    }

    #[test]
    fn a_writer_creates_missing_directories() {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("a").join("b").join("wal");
        let mut store = open_rw(&dir);
        assert!(dir.is_dir());
        store.allocate(0, 16).expect("allocate");
        assert_eq!(ids_of(&mut store), [0]);
    }

    #[test]
    fn a_file_where_the_directory_should_be_is_refused() {
        let temp = tempfile::tempdir().expect("temp dir");
        let path = temp.path().join("wal");
        fs::write(&path, b"not a directory").expect("write");
        for mode in [AccessMode::ReadWrite, AccessMode::ReadOnly] {
            let error = DirStore::open(&path, mode).unwrap_err();
            assert!(
                matches!(&error, DirError::NotADirectory(at) if *at == path),
                "{mode:?}: {error:?}"
            );
            assert!(error.to_string().contains("is not a directory"));
        }
        assert_eq!(fs::read(&path).expect("read"), b"not a directory");
    }

    #[test]
    fn a_directory_the_writer_cannot_write_is_an_io_error() {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("wal");
        fs::create_dir(&dir).expect("mkdir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).expect("chmod");
        if fs::write(dir.join("probe"), b"").is_ok() {
            // Root (or CAP_DAC_OVERRIDE) writes anyway: nothing to test.
            return;
        }
        match DirStore::open(&dir, AccessMode::ReadWrite).unwrap_err() {
            DirError::Io { path, source } => {
                assert_eq!(path, dir.join(LOCK_FILE_NAME));
                assert_eq!(source.kind(), io::ErrorKind::PermissionDenied);
            }
            other => panic!("expected Io, got {other:?}"),
        }
        DirStore::open(&dir, AccessMode::ReadOnly).expect("reading needs no write access");
    }

    #[test]
    fn releasing_a_missing_segment_is_ok() {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut store = open_rw(temp.path());
        store.release(17).expect("release of nothing");
        store.allocate(3, 16).expect("allocate");
        store.release(3).expect("release");
        store.release(3).expect("release again");
    }

    #[test]
    fn allocate_replaces_a_leftover_file() {
        let temp = tempfile::tempdir().expect("temp dir");
        let path = temp.path().join("00000000000000000009.seg");
        fs::write(&path, [0xFFu8; 10]).expect("write");
        let mut store = open_rw(temp.path());
        // A handle cached before must not outlive the file it was opened on.
        store.device(9).expect("device of the leftover");
        store.allocate(9, 4096).expect("allocate");
        let on_disk = fs::read(&path).expect("read");
        assert_eq!(on_disk.len(), 4096);
        assert!(on_disk.iter().all(|&byte| byte == 0));
        let (device, _) = store.device(9).expect("device");
        assert_eq!(device.geometry().capacity_bytes, 4096);
    }

    /// Waits for the worker to finish preparing `sequence` (by joining it:
    /// no deadline, so a slow disk cannot fail the test), puts its result
    /// back for `allocate`, and returns the prepared file's path.
    fn wait_for_prepared(store: &mut DirStore, sequence: u64) -> PathBuf {
        let path = store.prepared_path(sequence);
        let prepared = store.prepared.take().expect("a preparation was started");
        assert_eq!(prepared.sequence, sequence);
        let made = prepared.worker.join().expect("the worker does not panic");
        assert!(
            made.is_ok() && path.is_file(),
            "segment {sequence} prepared"
        );
        store.prepared = Some(Prepared {
            sequence: prepared.sequence,
            size_bytes: prepared.size_bytes,
            worker: thread::spawn(move || made),
        });
        // Finished, as the one joined was: `allocate` takes a finished
        // preparation and leaves a running one for later.
        until_finished(store);
        path
    }

    /// Waits (yielding) until the preparation's worker has returned.
    fn until_finished(store: &DirStore) {
        while !store
            .prepared
            .as_ref()
            .is_some_and(|prepared| prepared.worker.is_finished())
        {
            thread::yield_now();
        }
    }

    /// Writes a mark at the start of the prepared file at `path`: a file
    /// created anew, zero-filled, would not have it.
    fn mark(path: &Path) {
        OpenOptions::new()
            .write(true)
            .open(path)
            .expect("open prepared")
            .write_all_at(b"mark", 0)
            .expect("mark");
    }

    #[test]
    fn a_prepared_segment_is_renamed_into_place() {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut store = open_rw(temp.path());
        store.set_prepare_ahead(true);
        store.allocate(1, 8192).expect("allocate");
        store.prepare(2, 8192);
        let prepared_path = wait_for_prepared(&mut store, 2);
        mark(&prepared_path);

        store.allocate(2, 8192).expect("allocate");
        let placed = fs::read(store.segment_path(2)).expect("segment 2");
        assert_eq!(&placed[..4], b"mark", "renamed, not created anew");
        assert_eq!(placed.len(), 8192);
        assert!(!prepared_path.exists());
        assert_eq!(ids_of(&mut store), [1, 2], "`.prepared` is never listed");
        let (device, _) = store.device(2).expect("device");
        device
            .write(8191, &[b"!"])
            .expect("write through the prepared handle");

        // Segment 3 is being prepared now; dropping waits and tidies up.
        store.prepare(3, 8192);
        drop(store);
        assert_eq!(
            file_names(temp.path()),
            [
                "00000000000000000001.seg",
                "00000000000000000002.seg",
                "LOCK"
            ]
        );
    }

    #[test]
    fn a_prepared_segment_that_does_not_fit_is_discarded() {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut store = open_rw(temp.path());
        store.set_prepare_ahead(true);
        store.allocate(1, 4096).expect("allocate");
        store.prepare(2, 4096);
        wait_for_prepared(&mut store, 2);

        store.allocate(2, 1024).expect("allocate of another size");
        store.prepare(3, 1024);
        assert_eq!(
            fs::metadata(store.segment_path(2)).expect("meta").len(),
            1024
        );
        let prepared_path = wait_for_prepared(&mut store, 3);
        store.set_prepare_ahead(false);
        mark(&prepared_path);

        // Of the right size, it serves another sequence: it is only zeros.
        store
            .allocate(7, 1024)
            .expect("allocate of another sequence");
        assert!(!prepared_path.exists());
        let placed = fs::read(store.segment_path(7)).expect("segment 7");
        assert_eq!(&placed[..4], b"mark", "the prepared file, renamed");
        store.prepare(8, 1024);
        assert!(store.prepared.is_none(), "prepare-ahead is off");
        assert_eq!(ids_of(&mut store), [1, 2, 7]);
    }

    #[test]
    fn allocation_takes_a_finished_preparation_and_does_not_wait_for_a_running_one() {
        let ready = |finished| {
            Some(Preparation {
                size_bytes: 4096,
                finished,
            })
        };
        assert_eq!(plan_allocation(ready(true), 4096), Allocation::TakePrepared);
        assert_eq!(plan_allocation(ready(false), 4096), Allocation::Reserve);
        assert_eq!(plan_allocation(ready(true), 8192), Allocation::ZeroFill);
        assert_eq!(plan_allocation(ready(false), 8192), Allocation::ZeroFill);
        assert_eq!(plan_allocation(None, 4096), Allocation::ZeroFill);
    }

    #[test]
    fn a_preparation_still_running_is_kept_for_the_next_allocation() {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut store = open_rw(temp.path());
        store.set_prepare_ahead(true);
        store.allocate(1, 4096).expect("allocate");
        // A preparation that cannot finish until the test lets it.
        let prepared_path = store.prepared_path(2);
        let (release, released) = std::sync::mpsc::channel::<()>();
        // Were `allocate` to wait for the preparation, this lets it go on
        // (into the assertions that then fail) instead of hanging.
        let watchdog = release.clone();
        thread::spawn(move || {
            thread::sleep(std::time::Duration::from_secs(60));
            let _ = watchdog.send(());
        });
        let made_path = prepared_path.clone();
        store.prepared = Some(Prepared {
            sequence: 2,
            size_bytes: 4096,
            worker: thread::spawn(move || {
                let made = FileDevice::create(&made_path, 4096);
                released.recv().expect("released");
                made
            }),
        });

        store.allocate(2, 4096).expect("allocate while preparing");
        let placed = fs::read(store.segment_path(2)).expect("segment 2");
        assert_eq!(placed, [0u8; 4096], "made at once, and zeros");
        let (device, _) = store.device(2).expect("device");
        device.write(0, &[b"two"]).expect("write");
        device.sync().expect("sync");
        assert!(store.prepared.is_some(), "the preparation kept");
        store.prepare(3, 4096);
        assert_eq!(
            store.prepared.as_ref().map(|p| p.sequence),
            Some(2),
            "no second preparation while one of the size runs"
        );

        release.send(()).expect("release");
        until_finished(&store);
        mark(&prepared_path);
        store.allocate(3, 4096).expect("allocate");
        let placed = fs::read(store.segment_path(3)).expect("segment 3");
        assert_eq!(&placed[..4], b"mark", "the earlier preparation, renamed");
        assert!(!prepared_path.exists());
        assert_eq!(
            &fs::read(store.segment_path(2)).expect("segment 2")[..3],
            b"two"
        );
        assert_eq!(ids_of(&mut store), [1, 2, 3]);
    }

    #[test]
    fn a_writer_removes_stale_prepared_files_at_open() {
        let temp = tempfile::tempdir().expect("temp dir");
        let stale = temp.path().join("00000000000000000004.seg.prepared");
        fs::write(&stale, [1u8; 3]).expect("write");
        let mut store = open_rw(temp.path());
        assert!(!stale.exists());
        assert_eq!(ids_of(&mut store), [] as [SegmentId; 0]);
    }

    #[test]
    fn the_handle_cache_is_bounded_and_keeps_the_highest_id() {
        let temp = tempfile::tempdir().expect("temp dir");
        let count = DEVICES_CACHED_MAX as u64 + 6;
        for id in 0..count {
            fs::write(temp.path().join(segment_file_name(id)), [0u8; 8]).expect("write");
        }
        let mut store = open_rw(temp.path());
        let highest = count - 1;
        store.device(highest).expect("device");
        for id in 0..count {
            store.device(id).expect("device");
            assert!(store.devices.len() <= DEVICES_CACHED_MAX);
            assert!(store.devices.contains(id), "the id just opened");
            assert!(store.devices.contains(highest), "after {id}");
        }
        store.device(0).expect("device of an evicted id reopens");
        assert!(store.devices.contains(highest));
        assert_eq!(store.devices.len(), DEVICES_CACHED_MAX);
    }

    #[test]
    fn salts_differ() {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut store = open_rw(temp.path());
        assert_ne!(store.fresh_salt(), store.fresh_salt());
    }

    /// Kills and reaps the child when the test ends, however it ends.
    struct ChildGuard(Child);

    impl Drop for ChildGuard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn another_process_holding_the_lock_is_named() {
        let temp = tempfile::tempdir().expect("temp dir");
        // Held until the child says it holds the lock: `spawn` returns once
        // the child execs, but the kernel closes the child's copies of this
        // process's descriptors (other tests' `LOCK`s among them) a moment
        // later. A child running its test has closed them all.
        let fork_guard = FORK_GUARD
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "dir::tests::hold_the_lock_until_stdin_closes",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_VAR, temp.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the lock holder");
        let mut child = ChildGuard(child);
        let child_pid = child.0.id();
        let mut stdout = BufReader::new(child.0.stdout.take().expect("stdout"));
        let mut line = String::new();
        // The child prints a bounded handful of harness lines first; EOF
        // (child gone) ends the loop too.
        while !line.contains(CHILD_READY) {
            line.clear();
            let read_bytes = stdout.read_line(&mut line).expect("read child");
            assert!(read_bytes > 0, "the child exited without locking");
        }
        drop(fork_guard);

        match DirStore::open(temp.path(), AccessMode::ReadWrite).unwrap_err() {
            DirError::Locked { holder_pid, .. } => assert_eq!(holder_pid, Some(child_pid)),
            other => panic!("expected Locked, got {other:?}"),
        }
        assert_eq!(
            DirStore::lock_holder(temp.path()).expect("probe"),
            Some(child_pid)
        );

        drop(child.0.stdin.take());
        let status = child.0.wait().expect("wait");
        assert!(status.success(), "child: {status}");
        let _store = open_rw(temp.path());
    }

    /// The child of [`another_process_holding_the_lock_is_named`]: locks the
    /// directory in the environment, says so, and holds the lock until
    /// stdin closes. Does nothing when run on its own.
    #[test]
    #[ignore = "run by another_process_holding_the_lock_is_named"]
    fn hold_the_lock_until_stdin_closes() {
        let Some(dir) = std::env::var_os(CHILD_DIR_VAR) else {
            return;
        };
        let _store = open_rw(Path::new(&dir));
        let mut stdout = io::stdout();
        writeln!(stdout, "{CHILD_READY}").expect("write");
        stdout.flush().expect("flush");
        let mut rest = Vec::new();
        io::stdin().read_to_end(&mut rest).expect("read stdin");
    }
}
