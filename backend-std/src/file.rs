//! [`FileDevice`]: a preallocated POSIX file as a [`BlockDevice`].
//!
//! All I/O is positional (`pread`, `pwritev`), so clones of one device can
//! read from many threads while one writes, with no shared cursor to race
//! on.
//!
//! # Why `create` writes the whole file
//!
//! `fallocate` alone leaves *unwritten* extents: the first write into one
//! turns it into a written extent, and that conversion is metadata the
//! file system must journal on the next `fdatasync`. Writing zeros over
//! the whole file once, at creation, does the conversion up front, so an
//! append followed by `fdatasync` flushes data blocks only. The file size
//! never changes after `create` for the same reason.
//! [`FileDevice::create_reserved`] skips the zeros, for the one case where
//! waiting for them costs more: a log filling segments faster than they
//! can be zero-filled ahead.
//!
//! # Power loss
//!
//! - During `create`: the file may be missing, short or partly zeroed.
//!   `create` returns only after the contents and the directory entry are
//!   durable, so a file whose creation returned `Ok` is whole.
//! - During `write` or `erase`: any part of the range may hold old or new
//!   bytes; bytes outside it are untouched, since the file size and extents
//!   are fixed.
//! - After `sync` returns `Ok`, every completed write is durable.
//!
//! # Write-behind
//!
//! A device made with [`FileDevice::with_write_buffer`] keeps small writes
//! that continue one another in memory and hands them to the kernel as one
//! `pwrite` when the run is full, before any write elsewhere, a read or
//! erase of the run, and `sync`. A log that syncs every append pays the
//! same two system calls as before; a log that syncs every thousand
//! appends pays one `pwrite` per 64 KiB instead of one per record, and a
//! group-commit leader writes every follower's record at once. Until then
//! the bytes are only in this process: a crash of the process loses them,
//! as a power cut loses any write not yet synced (the contract the log is
//! built on), and another process reading the file does not see them yet.
//!
//! Once a megabyte ([`WRITEBACK_CHUNK_BYTES`]) of such runs has gone to the
//! kernel, the device asks it to start writing them to the disk
//! (`sync_file_range` with `SYNC_FILE_RANGE_WRITE`, which does not wait),
//! from a helper thread ([`WritebackHints`]: the call does the starting in
//! its caller). Without the hint the kernel keeps them in the page cache
//! until the `sync`, which then writes everything at once while the
//! appender waits; with it the disk works while the appender fills the
//! next megabyte, and the `sync` finds little left to do. It changes
//! nothing about what is durable when: only `sync` (`fdatasync`) promises
//! anything.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use segwal::{BlockDevice, DeviceError, ErrorKind, ErrorType, Geometry, check_range};

use crate::sys;
use crate::writeback::WritebackHints;

/// Zeros for `create` and `erase` to write from. A static in `.bss`: it
/// costs no allocation and maps the shared zero page until touched.
static ZEROS: [u8; ZERO_CHUNK_BYTES] = [0; ZERO_CHUNK_BYTES];

/// Bytes per `pwrite` when zeroing: one page. Linux (6.x, ext4) caches a
/// large write in one large folio (1 MiB writes made 1 MiB folios here),
/// and every later append of a few bytes then dirties and writes back that
/// whole folio's bookkeeping: a durable append into a segment zeroed a
/// megabyte at a time measured 3-5% slower than into one zeroed a page at
/// a time (same I/O: one 4 KiB write and one flush per append). The cost
/// is 256 system calls per MiB once, when the segment is made, mostly in
/// the background (prepare-ahead).
const ZERO_CHUNK_BYTES: usize = 4096;

/// Iovecs on the stack for the common write of a few pieces. Filling a
/// 1024-entry array costs about 0.4 µs per call, 40% of a small `pwritev`
/// measured on ext4, so small writes use this array and only writes of
/// more pieces pay for the full [`sys::IOV_MAX`] one.
const IOVECS_INLINE: usize = 32;

/// Consecutive `EINTR`s tolerated before a call gives up. A signal storm
/// is not progress; without a limit the retry loops would have no bound.
const INTERRUPTS_MAX: u32 = 1000;

/// A failed file operation: the [`ErrorKind`] to act on, the OS error
/// number when there is one, and which call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileError {
    kind: ErrorKind,
    errno: Option<i32>,
    context: &'static str,
}

impl FileError {
    pub(crate) fn new(kind: ErrorKind, errno: Option<i32>, context: &'static str) -> Self {
        FileError {
            kind,
            errno,
            context,
        }
    }

    /// An error from an I/O call; the kind follows the errno.
    pub(crate) fn from_io(context: &'static str, error: &io::Error) -> Self {
        let errno = error.raw_os_error();
        FileError::new(errno.map_or(ErrorKind::Io, kind_for_errno), errno, context)
    }

    /// A failed `fdatasync`: [`ErrorKind::SyncFailed`] whatever the errno,
    /// since after any sync failure the unsynced writes are unknown.
    fn sync_failed(error: &io::Error) -> Self {
        FileError::new(ErrorKind::SyncFailed, error.raw_os_error(), "fdatasync")
    }

    /// The OS error number (`libc::ENOSPC`, ...), when the failure came from
    /// the kernel rather than from a check in this crate.
    pub fn raw_os_error(&self) -> Option<i32> {
        self.errno
    }
}

/// The kind for an errno from a read, write or preallocation. Sync failures
/// do not come here: whatever the errno, they are [`ErrorKind::SyncFailed`].
fn kind_for_errno(errno: i32) -> ErrorKind {
    match errno {
        // EDQUOT is a full disk as far as this user can tell.
        libc::ENOSPC | libc::EFBIG | libc::EDQUOT => ErrorKind::NoSpace,
        _ => ErrorKind::Io,
    }
}

impl DeviceError for FileError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.kind)?;
        match self.errno {
            Some(errno) => write!(f, " ({})", io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }
}

impl std::error::Error for FileError {}

impl From<FileError> for io::Error {
    /// Keeps the [`FileError`] as the payload (reach it with
    /// [`io::Error::get_ref`]) under the [`io::ErrorKind`] its errno has.
    fn from(error: FileError) -> Self {
        let kind = match (error.errno, error.kind) {
            (Some(errno), _) => io::Error::from_raw_os_error(errno).kind(),
            (None, ErrorKind::OutOfBounds | ErrorKind::Misaligned) => io::ErrorKind::InvalidInput,
            (None, ErrorKind::NoSpace) => io::ErrorKind::StorageFull,
            (None, _) => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

/// A preallocated file as a byte-addressable [`BlockDevice`]: write unit 1
/// byte, erased byte `0x00`, no erase before write, capacity fixed at the
/// file's length.
///
/// Cloning shares the open file: clones can `read` from other threads while
/// one clone writes. A read of a range that is being written may see any
/// mix of old and new bytes, so readers should keep to ranges whose `write`
/// has returned. Two clones writing the same range at once race the same
/// way.
///
/// # Example
///
/// ```
/// use segwal::BlockDevice;
/// use segwal_std::FileDevice;
///
/// let dir = tempfile::tempdir()?;
/// let mut device = FileDevice::create(&dir.path().join("segment-0"), 4096)?;
/// device.write(0, &[b"head", b"er"])?;
/// device.sync()?;
///
/// let mut header = [0u8; 6];
/// device.read(0, &mut header)?;
/// assert_eq!(&header, b"header");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FileDevice {
    file: Arc<File>,
    geometry: Geometry,
    writable: bool,
    /// Writes held back, shared by the clones (see the module's
    /// "Write-behind" section); `None` writes through.
    write_behind: Option<Arc<WriteBehind>>,
}

/// The writes a [`FileDevice`] holds back: one contiguous run of bytes not
/// yet given to the kernel.
#[derive(Debug)]
struct WriteBehind {
    file: Arc<File>,
    run: Mutex<PendingRun>,
    capacity_bytes: usize,
}

/// Bytes of flushed runs after which the kernel is asked to start their
/// writeback (see the module's "Write-behind" section): large enough that
/// the hint is one system call per sixteen 64 KiB runs, small enough that
/// the disk starts early (measured here: 4 MiB left nearly half the final
/// sync's work, 1 MiB a tenth).
pub(crate) const WRITEBACK_CHUNK_BYTES: u64 = 1 << 20;

#[derive(Debug, Default)]
struct PendingRun {
    /// Device offset of `bytes[0]`.
    offset: u64,
    /// Allocated once, at the first write, with the buffer's capacity.
    bytes: Vec<u8>,
    /// Flushed bytes whose writeback has not been asked for: one
    /// contiguous range, restarted where a run does not continue it.
    unstarted: core::ops::Range<u64>,
    /// Where the writeback of `unstarted` is asked for; made at the first
    /// megabyte, so a device synced more often never has a thread.
    hints: Option<WritebackHints>,
}

impl PendingRun {
    fn end(&self) -> u64 {
        self.offset + self.bytes.len() as u64
    }

    fn overlaps(&self, offset: u64, len_bytes: u64) -> bool {
        !self.bytes.is_empty() && offset < self.end() && self.offset < offset + len_bytes
    }

    /// Hands the run to the kernel. The run is emptied even on failure: the
    /// bytes' fate is then unknown, as after any failed write, and the log
    /// above stops writing (it is poisoned), so nothing would retry them.
    fn flush(&mut self, file: &Arc<File>) -> Result<(), FileError> {
        if self.bytes.is_empty() {
            return Ok(());
        }
        let written = write_all_vectored::<1>(&[&self.bytes], self.offset, |iovecs, at| {
            sys::pwritev(file, iovecs, at)
        });
        let end = self.end();
        self.bytes.clear();
        written.map_err(|error| FileError::from_io("pwritev", &error))?;
        if self.unstarted.end != self.offset {
            self.unstarted.start = self.offset;
        }
        self.unstarted.end = end;
        let unstarted_bytes = self.unstarted.end - self.unstarted.start;
        if unstarted_bytes >= WRITEBACK_CHUNK_BYTES {
            self.hints
                .get_or_insert_with(|| WritebackHints::new(Arc::clone(file)))
                .start(self.unstarted.start, unstarted_bytes);
            self.unstarted.start = end;
        }
        Ok(())
    }
}

impl WriteBehind {
    fn lock(&self) -> MutexGuard<'_, PendingRun> {
        // The run is plain bytes: a panic elsewhere leaves it consistent.
        self.run.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for WriteBehind {
    /// The last clone is gone: give the kernel what is left, so a log
    /// dropped without a sync in this process still reads back what it
    /// wrote. A failure here has no one to report to; the bytes were never
    /// promised durable.
    fn drop(&mut self) {
        let run = self.run.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = run.flush(&self.file);
    }
}

impl FileDevice {
    /// Creates a new file of `capacity_bytes` zeros at `path`, durably.
    ///
    /// The file is preallocated, zero-filled, `fdatasync`ed, and its
    /// directory `fsync`ed, so after `Ok` both contents and name survive a
    /// power cut. On failure the partial file is removed (best effort).
    ///
    /// # Errors
    ///
    /// [`io::ErrorKind::AlreadyExists`] when `path` exists (it is never
    /// touched), [`io::ErrorKind::InvalidInput`] when `capacity_bytes` is
    /// beyond a file offset, [`io::ErrorKind::StorageFull`] (`ENOSPC`), and
    /// any other error from creating, writing or syncing.
    pub fn create(path: &Path, capacity_bytes: u64) -> io::Result<FileDevice> {
        FileDevice::create_with(path, capacity_bytes, fill_new_file)
    }

    /// Creates a new file of `capacity_bytes` at `path` whose blocks are
    /// reserved but not written (`fallocate` alone), durably: milliseconds,
    /// where [`create`](Self::create) writes every byte. It reads as zeros
    /// and a full disk shows now, as with `create`; the difference is the
    /// first write into each of its extents, which turns the extent from
    /// unwritten to written, metadata the next `fdatasync` journals (see
    /// the module documentation), so a durable append into it may cost
    /// more. [`DirStore`](crate::DirStore) takes one only when the segment
    /// it is preparing ahead is not ready in time. Where the file system
    /// cannot reserve blocks this is `create`.
    ///
    /// # Errors
    ///
    /// As for [`create`](Self::create).
    pub fn create_reserved(path: &Path, capacity_bytes: u64) -> io::Result<FileDevice> {
        FileDevice::create_with(path, capacity_bytes, reserve_new_file)
    }

    /// [`create`](Self::create) with `fill` making the new file's
    /// `capacity_bytes` durable.
    fn create_with(
        path: &Path,
        capacity_bytes: u64,
        fill: fn(&File, u64) -> io::Result<()>,
    ) -> io::Result<FileDevice> {
        if i64::try_from(capacity_bytes).is_err() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "capacity_bytes is beyond the largest file offset",
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        let filled = fill(&file, capacity_bytes).and_then(|()| sync_dir(parent_dir(path)));
        if let Err(error) = filled {
            // Leaving a half-made file would make every retry fail with
            // AlreadyExists; the removal error is secondary to `error`.
            let _ = std::fs::remove_file(path);
            return Err(error);
        }
        Ok(FileDevice::from_file(file, capacity_bytes, true))
    }

    /// Opens an existing file for reading and writing; its length is the
    /// capacity.
    ///
    /// # Errors
    ///
    /// Any error from opening the file, and
    /// [`io::ErrorKind::InvalidInput`] when `path` is not a regular file.
    pub fn open(path: &Path) -> io::Result<FileDevice> {
        FileDevice::open_with(path, true)
    }

    /// Opens an existing file for reading only; `write` and `erase` fail
    /// with [`ErrorKind::Other`] (`EBADF`). `sync` is allowed and harmless.
    ///
    /// # Errors
    ///
    /// As for [`FileDevice::open`].
    pub fn open_read_only(path: &Path) -> io::Result<FileDevice> {
        FileDevice::open_with(path, false)
    }

    /// `true` when the device was opened with [`FileDevice::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        !self.writable
    }

    fn open_with(path: &Path, writable: bool) -> io::Result<FileDevice> {
        let file = OpenOptions::new().read(true).write(writable).open(path)?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(FileDevice::from_file(file, metadata.len(), writable))
    }

    fn from_file(file: File, capacity_bytes: u64, writable: bool) -> FileDevice {
        // Every record checksum of the std backend goes through a device;
        // after the first, this is two atomic loads.
        sys::install_crc32c_kernel();
        FileDevice {
            file: Arc::new(file),
            geometry: Geometry::byte_addressable(capacity_bytes),
            writable,
            write_behind: None,
        }
    }

    /// Holds back writes of less than `capacity_bytes` that continue one
    /// another, up to `capacity_bytes` in all, and writes them as one
    /// `pwrite` at the latest on `sync` (see the module's "Write-behind"
    /// section). The buffer is allocated at the first write and shared with
    /// this device's clones, which read the held bytes too. `0`, and a
    /// read-only device, write through.
    #[must_use]
    pub fn with_write_buffer(mut self, capacity_bytes: usize) -> FileDevice {
        self.write_behind = (self.writable && capacity_bytes > 0).then(|| {
            Arc::new(WriteBehind {
                file: Arc::clone(&self.file),
                run: Mutex::new(PendingRun::default()),
                capacity_bytes,
            })
        });
        self
    }

    /// Gives held-back writes to the kernel now (`sync` does this first).
    ///
    /// # Errors
    ///
    /// The `pwrite`'s error; the held bytes are then lost.
    pub fn flush(&self) -> Result<(), FileError> {
        match &self.write_behind {
            Some(write_behind) => write_behind.lock().flush(&self.file),
            None => Ok(()),
        }
    }

    /// Flushes the held run when it overlaps `offset..offset + len_bytes`,
    /// and returns the run's lock (held over the caller's I/O, so no flush
    /// by a clone lands in between), or `None` when nothing is held back.
    #[inline]
    fn settle_overlap(
        &self,
        offset: u64,
        len_bytes: u64,
    ) -> Result<Option<MutexGuard<'_, PendingRun>>, FileError> {
        let Some(write_behind) = &self.write_behind else {
            return Ok(None);
        };
        let mut run = write_behind.lock();
        if run.overlaps(offset, len_bytes) {
            run.flush(&self.file)?;
        }
        Ok(Some(run))
    }

    /// Refuses writes on a read-only device before the kernel does, so the
    /// error says why instead of a bare `EBADF` reported as [`ErrorKind::Io`].
    fn check_writable(&self) -> Result<(), FileError> {
        if self.writable {
            Ok(())
        } else {
            Err(FileError::new(
                ErrorKind::Other,
                Some(libc::EBADF),
                "write to a read-only device",
            ))
        }
    }
}

impl ErrorType for FileDevice {
    type Error = FileError;
}

impl BlockDevice for FileDevice {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), FileError> {
        let granularity = self.geometry.read_size_bytes;
        check_range(&self.geometry, offset, buf.len() as u64, granularity)
            .map_err(|kind| FileError::new(kind, None, "read"))?;
        let _run = self.settle_overlap(offset, buf.len() as u64)?;
        read_exact_at(buf, offset, |part, at| self.file.read_at(part, at)).map_err(|error| {
            if error.kind() == io::ErrorKind::UnexpectedEof {
                // The range is inside the geometry, so the file shrank
                // behind our back: a failure of the medium, not of the caller.
                FileError::new(
                    ErrorKind::Io,
                    None,
                    "pread: the file ends before its capacity",
                )
            } else {
                FileError::from_io("pread", &error)
            }
        })
    }

    fn write(&mut self, offset: u64, pieces: &[&[u8]]) -> Result<(), FileError> {
        let len_bytes = pieces
            .iter()
            .try_fold(0u64, |sum, piece| sum.checked_add(piece.len() as u64))
            .ok_or(FileError::new(ErrorKind::OutOfBounds, None, "write"))?;
        let granularity = self.geometry.write_size_bytes;
        check_range(&self.geometry, offset, len_bytes, granularity)
            .map_err(|kind| FileError::new(kind, None, "write"))?;
        self.check_writable()?;
        let Some(write_behind) = &mut self.write_behind else {
            return write_through(&self.file, offset, pieces);
        };
        let capacity_bytes = write_behind.capacity_bytes;
        // No clone of this device alive (a log's own segment): the run
        // without its lock, whose two atomic operations were a tenth of a
        // buffered append.
        if let Some(unshared) = Arc::get_mut(write_behind) {
            let run = unshared.run.get_mut().unwrap_or_else(|e| e.into_inner());
            return hold(run, &self.file, capacity_bytes, offset, pieces, len_bytes);
        }
        let mut run = write_behind.lock();
        hold(
            &mut run,
            &self.file,
            capacity_bytes,
            offset,
            pieces,
            len_bytes,
        )
    }

    fn erase(&mut self, offset: u64, len_bytes: u64) -> Result<(), FileError> {
        let granularity = self.geometry.erase_size_bytes;
        check_range(&self.geometry, offset, len_bytes, granularity)
            .map_err(|kind| FileError::new(kind, None, "erase"))?;
        self.check_writable()?;
        // A held run over the range would land on the zeros later.
        let _run = self.settle_overlap(offset, len_bytes)?;
        write_zeros(&self.file, offset, len_bytes)
            .map_err(|error| FileError::from_io("erase (pwrite of zeros)", &error))
    }

    fn sync(&mut self) -> Result<(), FileError> {
        self.flush()?;
        self.file
            .sync_data()
            .map_err(|error| FileError::sync_failed(&error))?;
        if let Some(write_behind) = &self.write_behind {
            // Written back by the sync: a hint for them would be for clean
            // pages, and a log syncing every few appends would send one (to
            // a thread started for it) every megabyte.
            write_behind.lock().unstarted = 0..0;
        }
        Ok(())
    }
}

/// Writes `pieces` at `offset` of `file` with one `pwritev` (or a few, past
/// `IOV_MAX` pieces).
fn write_through(file: &File, offset: u64, pieces: &[&[u8]]) -> Result<(), FileError> {
    let written = if pieces.len() <= IOVECS_INLINE {
        write_all_vectored::<IOVECS_INLINE>(pieces, offset, |iovecs, at| {
            sys::pwritev(file, iovecs, at)
        })
    } else {
        write_all_vectored::<{ sys::IOV_MAX }>(pieces, offset, |iovecs, at| {
            sys::pwritev(file, iovecs, at)
        })
    };
    written.map_err(|error| FileError::from_io("pwritev", &error))
}

/// Adds a write of `pieces` (`len_bytes` in all) at `offset` to the held
/// `run` of a buffer of `capacity_bytes`: flushes the run first when the
/// write does not continue it or does not fit, and writes through what is
/// too big to hold (after the flush, so it lands after the run).
// Inline: every buffered append goes through it (both of its callers).
#[inline(always)]
fn hold(
    run: &mut PendingRun,
    file: &Arc<File>,
    capacity_bytes: usize,
    offset: u64,
    pieces: &[&[u8]],
    len_bytes: u64,
) -> Result<(), FileError> {
    let continues = run.bytes.is_empty() || run.end() == offset;
    let fits = (run.bytes.len() as u64).saturating_add(len_bytes) <= capacity_bytes as u64;
    if !(continues && fits) {
        run.flush(file)?;
    }
    if len_bytes >= capacity_bytes as u64 {
        return write_through(file, offset, pieces);
    }
    if run.bytes.is_empty() {
        run.offset = offset;
        if run.bytes.capacity() == 0 {
            run.bytes.reserve_exact(capacity_bytes);
        }
    }
    for piece in pieces {
        run.bytes.extend_from_slice(piece);
    }
    Ok(())
}

/// `fsync`s the directory at `path`, making the creation, removal or
/// renaming of the files in it durable.
///
/// # Errors
///
/// Any error from opening the directory (`ENOTDIR` when `path` is not one)
/// or from `fsync`.
pub fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(path)?;
    dir.sync_all()
}

/// The directory holding `path`; `Path::parent` gives `""` for a bare file
/// name, which `open` rejects, so that becomes `"."`.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Preallocates, zero-fills and `fdatasync`s a freshly created file. The
/// `fdatasync` also makes the new file size durable.
fn fill_new_file(file: &File, capacity_bytes: u64) -> io::Result<()> {
    preallocate(file, capacity_bytes)?;
    write_zeros(file, 0, capacity_bytes)?;
    file.sync_data()
}

/// Reserves `[0, capacity_bytes)` of a new, empty `file` without writing
/// it, and makes its length durable; zero-fills it (as [`fill_new_file`])
/// where the file system cannot reserve.
fn reserve_new_file(file: &File, capacity_bytes: u64) -> io::Result<()> {
    if capacity_bytes == 0 {
        return file.sync_all();
    }
    match retry_interrupted(|| sys::fallocate(file, capacity_bytes)) {
        Err(error) if error.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            fill_new_file(file, capacity_bytes)
        }
        Err(error) => Err(error),
        // The length and the extents are metadata: `fsync`, not
        // `fdatasync`, says outright that they are durable.
        Ok(()) => file.sync_all(),
    }
}

/// Reserves `[0, len_bytes)` so that a full disk shows up now, at creation,
/// rather than as `ENOSPC` in the middle of an append.
fn preallocate(file: &File, len_bytes: u64) -> io::Result<()> {
    if len_bytes == 0 {
        // fallocate rejects an empty range with EINVAL.
        return Ok(());
    }
    match retry_interrupted(|| sys::fallocate(file, len_bytes)) {
        Err(error) if error.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
        result => return result,
    }
    match retry_interrupted(|| sys::posix_fallocate(file, len_bytes)) {
        // No way to preallocate here: the zero-fill that follows allocates
        // the blocks anyway, only without the early ENOSPC.
        Err(error) if matches!(error.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EINVAL)) => {
            Ok(())
        }
        result => result,
    }
}

/// Calls `call` again while it fails with `EINTR`, at most
/// [`INTERRUPTS_MAX`] times.
fn retry_interrupted(mut call: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    let mut interrupts = 0;
    loop {
        match call() {
            Err(error)
                if error.kind() == io::ErrorKind::Interrupted && interrupts < INTERRUPTS_MAX =>
            {
                interrupts += 1;
            }
            result => return result,
        }
    }
}

/// Writes zeros over `[offset, offset + len_bytes)`, [`ZERO_CHUNK_BYTES`]
/// per call. `write_all_at` already retries `EINTR` and short writes.
fn write_zeros(file: &File, offset: u64, len_bytes: u64) -> io::Result<()> {
    let mut done_bytes = 0u64;
    while done_bytes < len_bytes {
        let remaining = usize::try_from(len_bytes - done_bytes).unwrap_or(usize::MAX);
        let chunk = &ZEROS[..remaining.min(ZERO_CHUNK_BYTES)];
        file.write_all_at(chunk, offset + done_bytes)?;
        done_bytes += chunk.len() as u64;
    }
    Ok(())
}

/// Fills `buf` from `offset` through `pread`, continuing after short reads
/// and retrying `EINTR`.
///
/// The loop is bounded: every pass either reads at least one byte or counts
/// an interrupt, and interrupts in a row are capped.
///
/// # Errors
///
/// [`io::ErrorKind::UnexpectedEof`] when `pread` reports end of file first,
/// or the error of `pread`.
fn read_exact_at(
    buf: &mut [u8],
    offset: u64,
    mut pread: impl FnMut(&mut [u8], u64) -> io::Result<usize>,
) -> io::Result<()> {
    let mut filled_bytes = 0;
    let mut interrupts = 0;
    while filled_bytes < buf.len() {
        let rest = &mut buf[filled_bytes..];
        let rest_len = rest.len();
        match pread(rest, offset + filled_bytes as u64) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(read_bytes) => {
                assert!(read_bytes <= rest_len, "pread returned more than asked");
                filled_bytes += read_bytes;
                interrupts = 0;
            }
            Err(error)
                if error.kind() == io::ErrorKind::Interrupted && interrupts < INTERRUPTS_MAX =>
            {
                interrupts += 1;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Writes the concatenation of `pieces` at `offset` through `pwritev`,
/// handing it at most `N` iovecs per call: one call for the whole set when
/// `pieces.len() <= N` and the kernel writes it all.
///
/// After a short write, the iovecs are advanced past the bytes written
/// (splitting the piece the write ended in) and the rest is written at the
/// matching offset. The loop is bounded as in [`read_exact_at`].
///
/// # Errors
///
/// [`io::ErrorKind::WriteZero`] when `pwritev` writes nothing, or the
/// error of `pwritev`.
fn write_all_vectored<const N: usize>(
    pieces: &[&[u8]],
    offset: u64,
    mut pwritev: impl FnMut(&[IoSlice<'_>], u64) -> io::Result<usize>,
) -> io::Result<()> {
    let mut offset_next = offset;
    for chunk in pieces.chunks(N) {
        let mut iovecs = [IoSlice::new(&[]); N];
        for (iovec, piece) in iovecs.iter_mut().zip(chunk) {
            *iovec = IoSlice::new(piece);
        }
        let mut pending = &mut iovecs[..chunk.len()];
        // Drops leading empty pieces, so a chunk of nothing but empty
        // pieces costs no call.
        IoSlice::advance_slices(&mut pending, 0);
        let mut interrupts = 0;
        while !pending.is_empty() {
            match pwritev(pending, offset_next) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(written_bytes) => {
                    // Panics if the count exceeds what was handed over: a
                    // broken `pwritev`, not something to carry on from.
                    IoSlice::advance_slices(&mut pending, written_bytes);
                    offset_next += written_bytes as u64;
                    interrupts = 0;
                }
                Err(error)
                    if error.kind() == io::ErrorKind::Interrupted
                        && interrupts < INTERRUPTS_MAX =>
                {
                    interrupts += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::PathBuf;
    use std::thread;

    fn temp_path(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(name);
        (dir, path)
    }

    /// Deterministic bytes that differ from their neighbours and from zero,
    /// so a misplaced or missing byte shows.
    fn pattern(len_bytes: usize, seed: usize) -> Vec<u8> {
        let byte_at = |i: usize| u8::try_from(1 + (i + seed) % 251).expect("at most 251");
        (0..len_bytes).map(byte_at).collect()
    }

    #[test]
    fn create_makes_a_zero_filled_file_of_the_capacity() {
        let (_dir, path) = temp_path("segment");
        let capacity_bytes = 3 * ZERO_CHUNK_BYTES as u64 + 123;
        let mut device = FileDevice::create(&path, capacity_bytes).expect("create");
        assert_eq!(
            device.geometry(),
            Geometry::byte_addressable(capacity_bytes)
        );
        assert!(!device.is_read_only());

        let on_disk = std::fs::read(&path).expect("read file");
        assert_eq!(on_disk.len() as u64, capacity_bytes);
        assert!(on_disk.iter().all(|&byte| byte == 0));

        let mut last = [0xAAu8; 200];
        device.read(capacity_bytes - 200, &mut last).expect("read");
        assert_eq!(last, [0u8; 200]);
    }

    #[test]
    fn create_of_zero_bytes_works() {
        let (_dir, path) = temp_path("empty");
        let mut device = FileDevice::create(&path, 0).expect("create");
        assert_eq!(device.geometry().capacity_bytes, 0);
        device.write(0, &[]).expect("empty write");
        assert_eq!(
            device.read(0, &mut [0u8; 1]).unwrap_err().kind(),
            ErrorKind::OutOfBounds
        );
    }

    #[test]
    fn create_over_an_existing_path_fails_and_leaves_it_alone() {
        let (_dir, path) = temp_path("taken");
        std::fs::write(&path, b"keep me").expect("write");
        let error = FileDevice::create(&path, 4096).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).expect("read"), b"keep me");
    }

    #[test]
    fn create_rejects_a_capacity_beyond_file_offsets_without_creating() {
        let (_dir, path) = temp_path("huge");
        let error = FileDevice::create(&path, u64::MAX).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(!path.exists());
    }

    #[test]
    fn create_with_a_relative_path_syncs_the_current_directory() {
        assert_eq!(parent_dir(Path::new("segment")), Path::new("."));
        assert_eq!(parent_dir(Path::new("wal/segment")), Path::new("wal"));
        assert_eq!(parent_dir(Path::new("/segment")), Path::new("/"));
    }

    #[test]
    fn pieces_written_at_once_read_back_concatenated() {
        let (_dir, path) = temp_path("segment");
        let mut device = FileDevice::create(&path, 8192).expect("create");
        let header = pattern(16, 1);
        let payload = pattern(1000, 2);
        let trailer = pattern(3, 3);
        let pieces: [&[u8]; 5] = [&header, &[], &payload, &trailer, &[]];
        device.write(100, &pieces).expect("write");

        let expected = [header.as_slice(), &payload, &trailer].concat();
        let mut back = vec![0u8; expected.len()];
        device.read(100, &mut back).expect("read");
        assert_eq!(back, expected);

        let mut around = [0xAAu8; 100];
        device.read(0, &mut around).expect("read before");
        assert_eq!(around, [0u8; 100], "bytes before the write untouched");
        device
            .read(100 + expected.len() as u64, &mut around)
            .expect("read after");
        assert_eq!(around, [0u8; 100], "bytes after the write untouched");
    }

    #[test]
    fn more_pieces_than_iov_max_land_in_order() {
        let (_dir, path) = temp_path("segment");
        let mut device = FileDevice::create(&path, 1 << 20).expect("create");
        let buffers: Vec<Vec<u8>> = (0..3000).map(|i| pattern(i % 7, i)).collect();
        let pieces: Vec<&[u8]> = buffers.iter().map(Vec::as_slice).collect();
        device.write(5, &pieces).expect("write");

        let expected = buffers.concat();
        let mut back = vec![0u8; expected.len()];
        device.read(5, &mut back).expect("read");
        assert_eq!(back, expected);
    }

    #[test]
    fn out_of_bounds_requests_fail_before_touching_the_file() {
        let (_dir, path) = temp_path("segment");
        let mut device = FileDevice::create(&path, 100).expect("create");
        let kind_of = |result: Result<(), FileError>| result.unwrap_err().kind();

        assert_eq!(
            kind_of(device.write(90, &[&[1u8; 8], &[2u8; 8]])),
            ErrorKind::OutOfBounds
        );
        assert_eq!(
            kind_of(device.write(u64::MAX, &[&[1u8]])),
            ErrorKind::OutOfBounds
        );
        assert_eq!(
            kind_of(device.read(99, &mut [0u8; 2])),
            ErrorKind::OutOfBounds
        );
        assert_eq!(
            kind_of(device.read(u64::MAX, &mut [0u8; 2])),
            ErrorKind::OutOfBounds
        );
        assert_eq!(kind_of(device.erase(50, 51)), ErrorKind::OutOfBounds);

        let on_disk = std::fs::read(&path).expect("read file");
        assert_eq!(on_disk, vec![0u8; 100], "a refused write writes nothing");
        device
            .write(84, &[&[7u8; 8], &[9u8; 8]])
            .expect("write ending at the capacity");
    }

    #[test]
    fn erase_zeroes_only_its_range() {
        let (_dir, path) = temp_path("segment");
        let capacity_bytes = ZERO_CHUNK_BYTES as u64 + 4096;
        let mut device = FileDevice::create(&path, capacity_bytes).expect("create");
        let ones = vec![0xFFu8; usize::try_from(capacity_bytes).expect("fits")];
        device.write(0, &[&ones]).expect("write");
        device.erase(10, capacity_bytes - 20).expect("erase");
        device.sync().expect("sync");

        let on_disk = std::fs::read(&path).expect("read file");
        let (head, rest) = on_disk.split_at(10);
        let (middle, tail) = rest.split_at(rest.len() - 10);
        assert_eq!(head, [0xFFu8; 10]);
        assert!(middle.iter().all(|&byte| byte == 0));
        assert_eq!(tail, [0xFFu8; 10]);
    }

    #[test]
    fn open_takes_the_capacity_from_the_file_length() {
        let (_dir, path) = temp_path("segment");
        let mut created = FileDevice::create(&path, 5000).expect("create");
        created.write(4990, &[b"persisted!"]).expect("write");
        created.sync().expect("sync");
        drop(created);

        let mut opened = FileDevice::open(&path).expect("open");
        assert_eq!(opened.geometry(), Geometry::byte_addressable(5000));
        let mut back = [0u8; 10];
        opened.read(4990, &mut back).expect("read");
        assert_eq!(&back, b"persisted!");
        opened
            .write(0, &[b"again"])
            .expect("an opened device writes");
    }

    #[test]
    fn open_refuses_a_directory_and_a_missing_file() {
        let (dir, path) = temp_path("missing");
        assert_eq!(
            FileDevice::open(&path).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(FileDevice::open_read_only(dir.path()).is_err());
    }

    #[test]
    fn a_read_only_device_refuses_writes_with_an_error() {
        let (_dir, path) = temp_path("segment");
        FileDevice::create(&path, 64)
            .expect("create")
            .write(0, &[b"data"])
            .expect("write");
        let mut device = FileDevice::open_read_only(&path).expect("open read-only");
        assert!(device.is_read_only());

        let error = device.write(0, &[b"nope"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Other);
        assert_eq!(error.raw_os_error(), Some(libc::EBADF));
        assert_eq!(device.erase(0, 4).unwrap_err().kind(), ErrorKind::Other);

        let mut back = [0u8; 4];
        device.read(0, &mut back).expect("read");
        assert_eq!(&back, b"data");
        device.sync().expect("sync of a read-only device");
    }

    #[test]
    fn a_file_shrunk_behind_our_back_reads_as_an_io_error() {
        let (_dir, path) = temp_path("segment");
        let mut device = FileDevice::create(&path, 4096).expect("create");
        OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(100)
            .expect("truncate");
        let error = device.read(50, &mut [0u8; 100]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Io);
        assert_eq!(error.raw_os_error(), None);
    }

    /// The file's bytes as another process would read them: through a
    /// device of its own, with no share in the write-behind run.
    fn on_disk(path: &Path, offset: u64, len_bytes: usize) -> Vec<u8> {
        let mut outside = FileDevice::open_read_only(path).expect("open");
        let mut bytes = vec![0u8; len_bytes];
        outside.read(offset, &mut bytes).expect("read");
        bytes
    }

    #[test]
    fn held_writes_reach_the_file_at_sync_and_read_back_before() {
        let (_dir, path) = temp_path("held");
        let mut device = FileDevice::create(&path, 4096)
            .expect("create")
            .with_write_buffer(1024);
        device.write(10, &[b"abc", b"de"]).expect("write");
        device.write(15, &[b"fgh"]).expect("write");
        assert_eq!(on_disk(&path, 10, 8), [0; 8], "held, not yet in the file");
        let mut back = [0u8; 8];
        device
            .clone()
            .read(10, &mut back)
            .expect("read through a clone");
        assert_eq!(&back, b"abcdefgh", "reads see the held bytes");
        device.write(18, &[b"ij"]).expect("write");
        device.sync().expect("sync");
        assert_eq!(on_disk(&path, 10, 10), b"abcdefghij");
    }

    #[test]
    fn a_write_elsewhere_lands_after_the_held_run() {
        let (_dir, path) = temp_path("order");
        let mut device = FileDevice::create(&path, 4096)
            .expect("create")
            .with_write_buffer(1024);
        device.write(0, &[b"0123456789"]).expect("write");
        // Overlaps the run without continuing it: the run goes first.
        device.write(5, &[b"XYZ"]).expect("write");
        assert_eq!(on_disk(&path, 0, 10), b"0123456789", "the run, flushed");
        device.sync().expect("sync");
        assert_eq!(on_disk(&path, 0, 10), b"01234XYZ89");
    }

    #[test]
    fn a_write_too_big_to_hold_goes_through_after_the_run() {
        let (_dir, path) = temp_path("big");
        let mut device = FileDevice::create(&path, 4096)
            .expect("create")
            .with_write_buffer(16);
        device.write(0, &[b"small"]).expect("write");
        let big = pattern(100, 3);
        device.write(5, &[&big]).expect("write");
        let mut expected = b"small".to_vec();
        expected.extend_from_slice(&big);
        assert_eq!(
            on_disk(&path, 0, 105),
            expected,
            "both in the file, in order"
        );
        // A run that would overflow the buffer is flushed first.
        device.write(105, &[&pattern(10, 4)]).expect("write");
        device.write(115, &[&pattern(10, 5)]).expect("write");
        assert_eq!(on_disk(&path, 105, 10), pattern(10, 4));
        assert_eq!(on_disk(&path, 115, 10), [0; 10], "the second run is held");
    }

    #[test]
    fn create_reserved_makes_a_file_of_reserved_zeros() {
        use std::os::unix::fs::MetadataExt;
        let (_dir, path) = temp_path("reserved");
        let capacity_bytes = 256 * 1024;
        let mut device = FileDevice::create_reserved(&path, capacity_bytes).expect("create");
        let metadata = std::fs::metadata(&path).expect("metadata");
        assert_eq!(metadata.len(), capacity_bytes);
        assert!(
            metadata.blocks() * 512 >= capacity_bytes,
            "the blocks are reserved, not a sparse file"
        );
        assert_eq!(device.geometry().capacity_bytes, capacity_bytes);
        let mut back = vec![1u8; usize::try_from(capacity_bytes).expect("small")];
        device.read(0, &mut back).expect("read");
        assert!(back.iter().all(|&byte| byte == 0), "reads as zeros");
        device.write(1000, &[b"data"]).expect("write");
        device.sync().expect("sync");
        assert_eq!(on_disk(&path, 998, 8), b"\0\0data\0\0");
        let again = FileDevice::create_reserved(&path, capacity_bytes).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(on_disk(&path, 1000, 4), b"data", "never touched");
    }

    #[test]
    fn a_megabyte_of_runs_asks_for_writeback_through_a_thread() {
        let (_dir, path) = temp_path("hints");
        let capacity_bytes = 3 * WRITEBACK_CHUNK_BYTES;
        let mut device = FileDevice::create(&path, capacity_bytes)
            .expect("create")
            .with_write_buffer(64 * 1024);
        let has_hint_thread = |device: &FileDevice| {
            let write_behind = device.write_behind.as_ref().expect("a buffer");
            let run = write_behind.lock();
            run.hints.as_ref().is_some_and(WritebackHints::has_thread)
        };
        let piece = pattern(1000, 7);
        let mut offset = 0u64;
        while offset + 1000 <= WRITEBACK_CHUNK_BYTES {
            device.write(offset, &[&piece]).expect("write");
            offset += 1000;
        }
        assert!(!has_hint_thread(&device), "less than a megabyte flushed");
        while offset + 1000 <= 2 * WRITEBACK_CHUNK_BYTES {
            device.write(offset, &[&piece]).expect("write");
            offset += 1000;
        }
        assert!(has_hint_thread(&device), "the hint went to a thread");
        device.sync().expect("sync");
        let on_file = on_disk(&path, 0, usize::try_from(offset).expect("small"));
        assert!(
            on_file.chunks(1000).all(|chunk| chunk == piece),
            "every write in the file, in place"
        );
    }

    #[test]
    fn a_sync_leaves_nothing_to_hint() {
        let (_dir, path) = temp_path("synced-hints");
        let mut device = FileDevice::create(&path, 2 * WRITEBACK_CHUNK_BYTES)
            .expect("create")
            .with_write_buffer(64 * 1024);
        let piece = pattern(1000, 3);
        let mut offset = 0u64;
        // Most of a megabyte, synced; then most of one more: a megabyte and
        // more of runs in all, but none of it unsynced.
        for _ in 0..2 {
            for _ in 0..900 {
                device.write(offset, &[&piece]).expect("write");
                offset += 1000;
            }
            device.sync().expect("sync");
        }
        let write_behind = device.write_behind.as_ref().expect("a buffer");
        assert!(
            write_behind.lock().hints.is_none(),
            "no hint for pages a sync wrote back"
        );
    }

    #[test]
    fn erase_over_a_held_run_leaves_zeros() {
        let (_dir, path) = temp_path("erase");
        let mut device = FileDevice::create(&path, 4096)
            .expect("create")
            .with_write_buffer(1024);
        device.write(0, &[b"stale bytes"]).expect("write");
        device.erase(0, 4096).expect("erase");
        device.sync().expect("sync");
        assert_eq!(on_disk(&path, 0, 11), [0; 11]);
    }

    #[test]
    fn the_last_clone_dropped_writes_the_held_run() {
        let (_dir, path) = temp_path("drop");
        let mut device = FileDevice::create(&path, 4096)
            .expect("create")
            .with_write_buffer(1024);
        device.write(7, &[b"kept"]).expect("write");
        let clone = device.clone();
        drop(device);
        assert_eq!(on_disk(&path, 7, 4), [0; 4], "a clone still holds it");
        drop(clone);
        assert_eq!(on_disk(&path, 7, 4), b"kept");
    }

    #[test]
    fn a_read_only_device_ignores_the_buffer() {
        let (_dir, path) = temp_path("ro-buffer");
        drop(FileDevice::create(&path, 4096).expect("create"));
        let mut device = FileDevice::open_read_only(&path)
            .expect("open")
            .with_write_buffer(1024);
        let error = device.write(0, &[b"x"]).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn clones_share_the_file_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<FileDevice>();

        let (_dir, path) = temp_path("segment");
        let block_bytes = 4096usize;
        let device = FileDevice::create(&path, 4 * block_bytes as u64).expect("create");
        let workers: Vec<_> = (0..4u8)
            .map(|index| {
                let mut clone = device.clone();
                thread::spawn(move || {
                    let offset = u64::from(index) * block_bytes as u64;
                    let block = pattern(block_bytes, usize::from(index));
                    clone.write(offset, &[&block]).expect("write");
                    let mut back = vec![0u8; block_bytes];
                    clone.read(offset, &mut back).expect("read own block");
                    assert_eq!(back, block);
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("worker");
        }

        let mut reader = device.clone();
        for index in 0..4u8 {
            let mut back = vec![0u8; block_bytes];
            reader
                .read(u64::from(index) * block_bytes as u64, &mut back)
                .expect("read");
            assert_eq!(
                back,
                pattern(block_bytes, usize::from(index)),
                "block {index} seen by another clone"
            );
        }
    }

    #[test]
    fn sync_dir_accepts_a_directory_and_rejects_a_file() {
        let (dir, path) = temp_path("file");
        sync_dir(dir.path()).expect("sync dir");
        std::fs::write(&path, b"x").expect("write");
        assert_eq!(
            sync_dir(&path).unwrap_err().raw_os_error(),
            Some(libc::ENOTDIR)
        );
    }

    /// A `pwritev` that writes into `model` at most `write_max_bytes` per
    /// call, fails every third call with `EINTR`, and checks it is never
    /// handed more than `N` iovecs or an offset other than where the last
    /// call stopped.
    fn run_fake_pwritev<const N: usize>(
        pieces: &[&[u8]],
        offset: u64,
        write_max_bytes: usize,
    ) -> (Vec<u8>, usize) {
        let mut model = vec![0u8; usize::try_from(offset).expect("fits")];
        let mut calls = 0usize;
        write_all_vectored::<N>(pieces, offset, |iovecs, at| {
            calls += 1;
            assert!(iovecs.len() <= N, "{} iovecs, limit {N}", iovecs.len());
            assert_eq!(
                at,
                model.len() as u64,
                "writes continue where the last stopped"
            );
            if calls.is_multiple_of(3) {
                return Err(io::Error::from_raw_os_error(libc::EINTR));
            }
            let flat: Vec<u8> = iovecs
                .iter()
                .flat_map(|iovec| iovec.iter().copied())
                .collect();
            let written_bytes = flat.len().min(write_max_bytes);
            model.extend_from_slice(&flat[..written_bytes]);
            Ok(written_bytes)
        })
        .expect("write_all_vectored");
        (
            model.split_off(usize::try_from(offset).expect("fits")),
            calls,
        )
    }

    #[test]
    fn short_writes_advance_through_more_than_iov_max_pieces() {
        let buffers: Vec<Vec<u8>> = (0..2500).map(|i| pattern(i % 5, i)).collect();
        let pieces: Vec<&[u8]> = buffers.iter().map(Vec::as_slice).collect();
        let expected = buffers.concat();
        for write_max_bytes in [1, 3, 7, 4096, usize::MAX] {
            let (written, _) = run_fake_pwritev::<{ sys::IOV_MAX }>(&pieces, 11, write_max_bytes);
            assert_eq!(written, expected, "write_max_bytes {write_max_bytes}");
            let (written, _) = run_fake_pwritev::<IOVECS_INLINE>(&pieces, 0, write_max_bytes);
            assert_eq!(
                written, expected,
                "inline, write_max_bytes {write_max_bytes}"
            );
        }
    }

    #[test]
    fn whole_writes_take_one_call_per_iov_max_pieces() {
        let piece = [5u8; 3];
        let pieces = vec![&piece[..]; 2 * sys::IOV_MAX + 1];
        // Calls 3, 6, ... are the fake's EINTRs: 3 writes take 4 calls.
        let (written, calls) = run_fake_pwritev::<{ sys::IOV_MAX }>(&pieces, 0, usize::MAX);
        assert_eq!(written.len(), 3 * pieces.len());
        assert_eq!(calls, 4);
        let (_, calls) = run_fake_pwritev::<{ sys::IOV_MAX }>(&pieces[..2], 0, usize::MAX);
        assert_eq!(calls, 1, "two pieces, one pwritev");
        let empty: [&[u8]; 3] = [&[], &[], &[]];
        let (_, calls) = run_fake_pwritev::<4>(&empty, 0, usize::MAX);
        assert_eq!(calls, 0, "nothing to write, no call");
    }

    #[test]
    fn a_write_that_makes_no_progress_is_an_error_not_a_hang() {
        let result = write_all_vectored::<4>(&[b"abc"], 0, |_, _| Ok(0));
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::WriteZero);
        let mut calls = 0u32;
        let result = write_all_vectored::<4>(&[b"abc"], 0, |_, _| {
            calls += 1;
            Err(io::Error::from_raw_os_error(libc::EINTR))
        });
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::Interrupted);
        assert_eq!(calls, INTERRUPTS_MAX + 1);
    }

    #[test]
    fn short_reads_and_interrupts_still_fill_the_buffer() {
        let source = pattern(1000, 9);
        let mut calls = 0usize;
        let mut buf = vec![0u8; 900];
        read_exact_at(&mut buf, 100, |part, at| {
            calls += 1;
            if calls.is_multiple_of(2) {
                return Err(io::Error::from_raw_os_error(libc::EINTR));
            }
            let start = usize::try_from(at).expect("fits");
            let len_bytes = part.len().min(13);
            part[..len_bytes].copy_from_slice(&source[start..start + len_bytes]);
            Ok(len_bytes)
        })
        .expect("read_exact_at");
        assert_eq!(buf, source[100..]);

        let result = read_exact_at(&mut buf, 0, |_, _| Ok(0));
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn errnos_map_to_the_kinds_a_caller_acts_on() {
        assert_eq!(kind_for_errno(libc::ENOSPC), ErrorKind::NoSpace);
        assert_eq!(kind_for_errno(libc::EFBIG), ErrorKind::NoSpace);
        assert_eq!(kind_for_errno(libc::EDQUOT), ErrorKind::NoSpace);
        assert_eq!(kind_for_errno(libc::EIO), ErrorKind::Io);
        assert_eq!(kind_for_errno(libc::EBADF), ErrorKind::Io);

        let error = FileError::from_io("pwritev", &io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(error.kind(), ErrorKind::NoSpace);
        assert_eq!(error.raw_os_error(), Some(libc::ENOSPC));
        assert!(
            error
                .to_string()
                .starts_with("pwritev: no space left on device (")
        );

        let as_io = io::Error::from(error);
        assert_eq!(as_io.kind(), io::ErrorKind::StorageFull);
        let inner = as_io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<FileError>());
        assert_eq!(inner, Some(&error));

        let sync = FileError::sync_failed(&io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(
            sync.kind(),
            ErrorKind::SyncFailed,
            "even ENOSPC, when sync reports it"
        );
        assert_eq!(sync.raw_os_error(), Some(libc::ENOSPC));

        let bounds = io::Error::from(FileError::new(ErrorKind::OutOfBounds, None, "read"));
        assert_eq!(bounds.kind(), io::ErrorKind::InvalidInput);
    }
}
