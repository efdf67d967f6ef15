//! A single preallocated segment file: one writer, many concurrent readers.
//!
//! The writer publishes a [`FlushedOffset`] after every successful sync
//! (`Release`); readers load it (`Acquire`) before each read and never read
//! past it, so they see only durable, complete records, lock-free.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use segwal::{
    Appended, Batch, ChecksumKind, ReadHint, Record, RecoveryMode, SEQUENTIAL_WINDOW_BYTES,
    SegmentConfig, SegmentIdentity, SegmentReader, SegmentWriter, TailState,
};

use crate::error::{Error, Result};

/// Each reader's buffer and the recovery scan's scratch: one sequential
/// read-ahead window.
const BUFFER_BYTES: usize = 64 * 1024;
const _: () = assert!(BUFFER_BYTES as u64 == SEQUENTIAL_WINDOW_BYTES);
use crate::file::FileDevice;
use crate::salt::fresh_salt;

/// How a new segment file is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentOptions {
    /// Size of the file, header included. At most `u32::MAX`.
    pub segment_size_bytes: u64,
    /// Bytes reserved right after the header for the application.
    pub user_area_len_bytes: u32,
    /// Checksum of the header and records.
    pub checksum_kind: ChecksumKind,
    /// Largest payload; `None` allows anything that fits.
    pub record_len_max: Option<u32>,
    /// The writer's write-behind buffer ([`FileDevice::with_write_buffer`]):
    /// appends between syncs go to the kernel a buffer at a time instead of
    /// one `pwritev` each. `0`, the default, writes through.
    pub write_buffer_bytes: usize,
}

impl SegmentOptions {
    /// A segment of `segment_size_bytes`, CRC32C, no user area.
    pub fn new(segment_size_bytes: u64) -> Self {
        SegmentOptions {
            segment_size_bytes,
            user_area_len_bytes: 0,
            checksum_kind: ChecksumKind::Crc32c,
            record_len_max: None,
            write_buffer_bytes: 0,
        }
    }

    fn config(&self) -> Result<SegmentConfig> {
        let segment_size_bytes = u32::try_from(self.segment_size_bytes)
            .map_err(|_| segwal::Error::Config(segwal::ConfigError::SegmentSize))?;
        Ok(SegmentConfig {
            segment_size_bytes,
            user_area_len_bytes: self.user_area_len_bytes,
            checksum_kind: self.checksum_kind,
            record_len_max: self.record_len_max,
        })
    }
}

/// The writer's durable offset, shared with readers.
///
/// Cloning is cheap (an `Arc`); every clone sees the writer's latest sync.
#[derive(Debug, Clone)]
pub struct FlushedOffset(Arc<AtomicU64>);

impl FlushedOffset {
    fn new(offset: u64) -> Self {
        FlushedOffset(Arc::new(AtomicU64::new(offset)))
    }

    /// The end of the durable records. `Acquire`: bytes below it were
    /// synced before it was published.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    fn publish(&self, offset: u64) {
        debug_assert!(
            offset >= self.0.load(Ordering::Relaxed),
            "flushed offset never moves back"
        );
        self.0.store(offset, Ordering::Release);
    }
}

/// Appends records to a segment file.
///
/// # Example
///
/// ```
/// use segwal_std::{Reader, Writer};
/// use segwal::ReadHint;
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("segment.log");
/// let mut writer = Writer::create(&path, 1 << 20, 0)?;
/// let appended = writer.append(b"event data")?;
/// writer.sync()?;
///
/// let mut reader = Reader::open(&path, Some(writer.flushed_offset()))?;
/// let record = reader.read_record(appended.offset, ReadHint::Random)?;
/// assert_eq!(&*record.payload, b"event data");
/// // With the whole handle, the read takes exactly the record's bytes.
/// let record = reader.read_record(appended.offset, appended.read_hint())?;
/// assert_eq!(&*record.payload, b"event data");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Writer {
    inner: SegmentWriter<FileDevice>,
    path: PathBuf,
    flushed: FlushedOffset,
    tail: TailState,
}

impl Writer {
    /// Creates a preallocated, zero-filled segment file of
    /// `segment_size_bytes` with `user_area_len_bytes` reserved after the
    /// header (seglog's header support), and makes it durable.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file exists or cannot be created;
    /// [`Error::Log`] for a size the format cannot hold.
    pub fn create(
        path: impl AsRef<Path>,
        segment_size_bytes: u64,
        user_area_len_bytes: u32,
    ) -> Result<Self> {
        let options = SegmentOptions {
            user_area_len_bytes,
            ..SegmentOptions::new(segment_size_bytes)
        };
        Self::create_with(path, &options, &[])
    }

    /// Creates a segment file with full options and initial user-area bytes.
    ///
    /// # Errors
    ///
    /// As for [`create`](Self::create).
    pub fn create_with(
        path: impl AsRef<Path>,
        options: &SegmentOptions,
        user_area: &[u8],
    ) -> Result<Self> {
        let path = path.as_ref();
        let config = options.config()?;
        let device = FileDevice::create(path, options.segment_size_bytes)
            .map_err(|e| Error::io(path, e))?
            .with_write_buffer(options.write_buffer_bytes);
        let identity = SegmentIdentity::first(0, 0, fresh_salt());
        let inner = SegmentWriter::create(device, 0, &config, identity, user_area);
        let inner = match inner {
            Ok(inner) => inner,
            Err(error) => {
                // A segment that never got its header is of no use to anyone.
                let _ = std::fs::remove_file(path);
                return Err(error.into());
            }
        };
        let flushed = FlushedOffset::new(inner.flushed_offset());
        Ok(Writer {
            inner,
            path: path.to_path_buf(),
            flushed,
            tail: TailState::Clean,
        })
    }

    /// Opens an existing segment file for appending, in strict recovery.
    ///
    /// # Errors
    ///
    /// As for [`open_with`](Self::open_with).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, RecoveryMode::Strict)
    }

    /// Opens an existing segment file for appending: scans it, zeroes a torn
    /// tail and syncs. [`tail_state`](Self::tail_state) says what was found.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be opened; [`Error::Log`] with
    /// [`segwal::Error::Corrupt`] for a bad header, or for damaged synced
    /// records in [`RecoveryMode::Strict`].
    pub fn open_with(path: impl AsRef<Path>, mode: RecoveryMode) -> Result<Self> {
        Self::open_buffered(path, mode, 0)
    }

    /// [`open_with`](Self::open_with), with a write-behind buffer of
    /// `write_buffer_bytes` (as [`SegmentOptions::write_buffer_bytes`]).
    ///
    /// # Errors
    ///
    /// As for [`open_with`](Self::open_with).
    pub fn open_buffered(
        path: impl AsRef<Path>,
        mode: RecoveryMode,
        write_buffer_bytes: usize,
    ) -> Result<Self> {
        let path = path.as_ref();
        let device = FileDevice::open(path)
            .map_err(|e| Error::io(path, e))?
            .with_write_buffer(write_buffer_bytes);
        let mut scratch = vec![0u8; BUFFER_BYTES];
        let (inner, recovered) = SegmentWriter::open(device, 0, mode, &mut scratch)?;
        let flushed = FlushedOffset::new(inner.flushed_offset());
        Ok(Writer {
            inner,
            path: path.to_path_buf(),
            flushed,
            tail: recovered.tail,
        })
    }

    /// Appends a record; it is durable once [`sync`](Self::sync) returns.
    /// Returns its offset (the handle to read it by) and length.
    ///
    /// # Errors
    ///
    /// [`segwal::Error::RecordTooLarge`] and [`segwal::Error::Full`] write
    /// nothing; a device error poisons the writer
    /// ([`segwal::Error::Poisoned`] from then on).
    pub fn append(&mut self, payload: &[u8]) -> Result<Appended> {
        Ok(self.inner.append(payload)?)
    }

    /// Appends records as one atomic batch (all or none after a crash), in
    /// one `pwritev` per 64 records. Returns the offsets they occupy.
    ///
    /// # Errors
    ///
    /// As for [`append`](Self::append).
    pub fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<std::ops::Range<u64>> {
        Ok(self.inner.append_batch(payloads)?)
    }

    /// `fdatasync`s the file, then publishes the new flushed offset to
    /// readers. Returns it.
    ///
    /// # Errors
    ///
    /// A failed sync poisons the writer: the pages may be lost even if a
    /// retry succeeds, so reopen to recover.
    pub fn sync(&mut self) -> Result<u64> {
        let flushed = self.inner.sync()?;
        self.flushed.publish(flushed);
        Ok(flushed)
    }

    /// A handle on the flushed offset for readers in any thread.
    pub fn flushed_offset(&self) -> FlushedOffset {
        self.flushed.clone()
    }

    /// A reader of this segment that follows the writer's syncs.
    ///
    /// # Errors
    ///
    /// [`Error::Log`] when the header cannot be read back.
    pub fn reader(&self) -> Result<Reader> {
        let device = self.inner.device().clone();
        Reader::from_device(device, Some(self.flushed.clone()))
    }

    /// End of everything appended (synced or not).
    pub fn written_offset(&self) -> u64 {
        self.inner.written_offset()
    }

    /// Bytes left for records.
    pub fn remaining_bytes(&self) -> u64 {
        self.inner.remaining_bytes()
    }

    /// Records in the segment.
    pub fn record_count(&self) -> u64 {
        self.inner.record_count()
    }

    /// What opening found at the end of the records.
    pub fn tail_state(&self) -> TailState {
        self.tail
    }

    /// Offset of the first record.
    pub fn records_start(&self) -> u64 {
        u64::from(self.inner.header().records_start())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads records of a segment file, concurrently with its writer.
///
/// Each reader owns a 64 KiB buffer; records that fit come back borrowed
/// from it.
#[derive(Debug)]
pub struct Reader {
    inner: SegmentReader<FileDevice, Box<[u8]>>,
    flushed: Option<FlushedOffset>,
}

impl Reader {
    /// Opens a segment file for reading. With a writer's
    /// [`FlushedOffset`], the reader follows its syncs; without one, it
    /// scans the file once to find the end of the valid records.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be opened; [`Error::Log`] for a
    /// bad header or a failed read.
    pub fn open(path: impl AsRef<Path>, flushed: Option<FlushedOffset>) -> Result<Self> {
        let path = path.as_ref();
        let device = FileDevice::open_read_only(path).map_err(|e| Error::io(path, e))?;
        Self::from_device(device, flushed)
    }

    fn from_device(device: FileDevice, flushed: Option<FlushedOffset>) -> Result<Self> {
        let buffer = vec![0u8; BUFFER_BYTES].into_boxed_slice();
        let mut inner = SegmentReader::open(device, 0, buffer)?;
        match &flushed {
            Some(flushed) => inner.set_flushed_offset(flushed.get()),
            None => {
                inner.recover_flushed_offset(segwal::RecoveryMode::Strict)?;
            }
        }
        Ok(Reader { inner, flushed })
    }

    #[inline]
    fn refresh(&mut self) {
        if let Some(flushed) = &self.flushed {
            self.inner.set_flushed_offset(flushed.get());
        }
    }

    /// Reads and checks the record at `offset`.
    ///
    /// # Errors
    ///
    /// [`segwal::Error::OutOfRange`] for an offset past the flushed offset
    /// or not on a record boundary; [`segwal::Error::NotARecord`] when the
    /// bytes there do not validate; a device error.
    #[inline]
    pub fn read_record(&mut self, offset: u64, hint: ReadHint) -> Result<Record<'_>> {
        self.refresh();
        Ok(self.inner.read_record(offset, hint)?)
    }

    /// Reads the record at `offset` and the ones after it that the same
    /// 64 KiB window holds, checked together (see
    /// [`segwal::SegmentCursor::read_batch`]): the fastest way to scan.
    /// Continue at [`Batch::next_offset`] until the flushed offset.
    ///
    /// # Errors
    ///
    /// As for [`read_record`](Self::read_record).
    #[inline]
    pub fn read_batch(&mut self, offset: u64) -> Result<Batch<'_>> {
        self.refresh();
        Ok(self.inner.read_batch(offset)?)
    }

    /// Reads the record at `offset` into `out`; returns its length and the
    /// next record's offset.
    ///
    /// # Errors
    ///
    /// As for [`read_record`](Self::read_record), plus
    /// [`segwal::Error::BufferTooSmall`].
    pub fn read_record_into(
        &mut self,
        offset: u64,
        hint: ReadHint,
        out: &mut [u8],
    ) -> Result<(usize, u64)> {
        self.refresh();
        Ok(self.inner.read_record_into(offset, hint, out)?)
    }

    /// Iterates over the records from `offset` to the flushed offset (as it
    /// is when each record is read), with sequential read-ahead. Payloads
    /// are copied out; for zero-copy iteration loop over
    /// [`read_record`](Self::read_record) and [`Record::next_offset`].
    pub fn iter_from(&mut self, offset: u64) -> Records<'_> {
        Records {
            reader: self,
            position: offset,
            failed: false,
        }
    }

    /// End of the records this reader may read, as of the last refresh.
    pub fn flushed_offset(&mut self) -> u64 {
        self.refresh();
        self.inner.flushed_offset()
    }

    /// Offset of the first record.
    pub fn records_start(&self) -> u64 {
        self.inner.records_start()
    }

    /// Reads the user area into `out` (exactly its length), checked.
    ///
    /// # Errors
    ///
    /// [`segwal::Error::BufferTooSmall`], [`segwal::Error::Corrupt`].
    pub fn read_user_area(&mut self, out: &mut [u8]) -> Result<()> {
        Ok(self.inner.read_user_area(out)?)
    }
}

/// Iterator over `(offset, payload)` of a segment file's records.
#[derive(Debug)]
pub struct Records<'r> {
    reader: &'r mut Reader,
    position: u64,
    failed: bool,
}

impl Iterator for Records<'_> {
    type Item = Result<(u64, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.position >= self.reader.flushed_offset() {
            return None;
        }
        match self
            .reader
            .inner
            .read_record(self.position, ReadHint::Sequential)
        {
            Ok(record) => {
                let item = (record.offset, record.payload.to_vec());
                self.position = record.next_offset;
                Some(Ok(item))
            }
            Err(error) => {
                self.failed = true;
                Some(Err(error.into()))
            }
        }
    }
}
