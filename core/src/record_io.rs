//! Records as [`embedded_io`] byte streams: [`RecordWriter`] collects the
//! bytes of one record and commits them on `flush`; [`RecordReader`] hands
//! out the payloads of successive records.
//!
//! A firmware logger that formats events with `write!` (or any encoder
//! that writes to an `embedded_io::Write`) can write straight into the
//! log, and a parser that reads from an `embedded_io::Read` can read back
//! from it, with no allocation: each side holds one record in a buffer of
//! `N` bytes, a const-generic capacity on the stack or in a static.
//!
//! # Atomicity
//!
//! Bytes written to a [`RecordWriter`] reach the log only when `flush`
//! appends them as one record. A power cut before the append completes
//! leaves nothing of the record (the recovery scan discards a torn record
//! whole), and a failed append leaves nothing either: the log refuses
//! writes after a device failure (it is poisoned) and nothing is retried
//! behind the caller's back.

use embedded_io::{ErrorKind, ErrorType, Read, Write};
use heapless::Vec;

use crate::device::Error as DeviceError;
use crate::error::Error;
use crate::store::SegmentStore;
use crate::wal::{Lsn, Wal, WalIter};

/// A log that appends one record at a time: what a [`RecordWriter`]
/// commits to. The core [`Wal`] is one; backends that wrap it (a flash
/// log with its full-region policy, for example) implement it too.
pub trait AppendRecord {
    /// Why an append failed.
    type Error: core::fmt::Debug + core::fmt::Display;

    /// Appends `payload` as one record and returns its LSN.
    ///
    /// # Errors
    ///
    /// Whatever the log's own append returns; **must** leave no part of
    /// `payload` in the log when it fails.
    fn append_record(&mut self, payload: &[u8]) -> Result<Lsn, Self::Error>;
}

impl<S: SegmentStore, B: AsMut<[u8]> + AsRef<[u8]>, const MAX_SEGMENTS: usize> AppendRecord
    for Wal<S, B, MAX_SEGMENTS>
{
    type Error = Error<S::Error>;

    fn append_record(&mut self, payload: &[u8]) -> Result<Lsn, Self::Error> {
        self.append(payload)
    }
}

impl<L: AppendRecord + ?Sized> AppendRecord for &mut L {
    type Error = L::Error;

    fn append_record(&mut self, payload: &[u8]) -> Result<Lsn, Self::Error> {
        L::append_record(self, payload)
    }
}

/// Why a [`RecordWriter`] or [`RecordReader`] call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordIoError<E> {
    /// The log failed (see its error).
    #[error("log: {0}")]
    Log(E),
    /// The record does not fit the `N`-byte record buffer. A write that
    /// would overflow it takes no byte of its input.
    #[error("record larger than the {capacity_bytes}-byte record buffer")]
    RecordTooLarge {
        /// The buffer's capacity, `N`.
        capacity_bytes: usize,
    },
}

impl<E: core::fmt::Debug + core::fmt::Display> embedded_io::Error for RecordIoError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            RecordIoError::Log(_) => ErrorKind::Other,
            RecordIoError::RecordTooLarge { .. } => ErrorKind::OutOfMemory,
        }
    }
}

/// An [`embedded_io::Write`] that collects one record of at most `N` bytes
/// and appends it to the log on `flush`.
///
/// Dropping the writer with bytes pending discards them: a record is
/// committed only by an explicit `flush`, never half of it by accident.
///
/// # Example
///
/// ```
/// # use segwal::{AppendRecord, Lsn};
/// # #[derive(Default)]
/// # struct Log(Vec<Vec<u8>>);
/// # impl AppendRecord for Log {
/// #     type Error = core::convert::Infallible;
/// #     fn append_record(&mut self, payload: &[u8]) -> Result<Lsn, Self::Error> {
/// #         self.0.push(payload.to_vec());
/// #         Ok(Lsn(self.0.len() as u64))
/// #     }
/// # }
/// use embedded_io::Write;
/// use segwal::RecordWriter;
///
/// let mut log = Log::default(); // a segwal::Wal, or a segwal_flash::FlashLog
/// let mut writer = RecordWriter::<_, 64>::new(&mut log);
/// write!(writer, "temp={} ", 21)?;
/// writer.write_all(b"unit=C")?;
/// writer.flush()?; // one record
/// assert_eq!(writer.last_committed(), Some(Lsn(1)));
/// assert_eq!(log.0, [b"temp=21 unit=C".to_vec()]);
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct RecordWriter<L: AppendRecord, const N: usize> {
    log: L,
    pending: Vec<u8, N>,
    last_committed: Option<Lsn>,
}

impl<L: AppendRecord, const N: usize> RecordWriter<L, N> {
    /// A writer with an empty record, appending to `log` (often `&mut` a
    /// log).
    pub fn new(log: L) -> Self {
        RecordWriter {
            log,
            pending: Vec::new(),
            last_committed: None,
        }
    }

    /// The bytes of the record not yet committed.
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    /// Drops the pending bytes without committing them.
    pub fn discard(&mut self) {
        self.pending.clear();
    }

    /// The LSN of the last record this writer committed.
    pub fn last_committed(&self) -> Option<Lsn> {
        self.last_committed
    }

    /// The log, for what the writer does not do.
    pub fn log_mut(&mut self) -> &mut L {
        &mut self.log
    }

    /// Gives the log back; pending bytes are discarded.
    pub fn into_log(self) -> L {
        self.log
    }
}

impl<L: AppendRecord, const N: usize> ErrorType for RecordWriter<L, N> {
    type Error = RecordIoError<L::Error>;
}

impl<L: AppendRecord, const N: usize> Write for RecordWriter<L, N> {
    /// Adds all of `buf` to the pending record, or none of it when the
    /// record would outgrow `N` bytes.
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.pending
            .extend_from_slice(buf)
            .map_err(|_| RecordIoError::RecordTooLarge { capacity_bytes: N })?;
        Ok(buf.len())
    }

    /// Appends the pending bytes as one record (nothing when none are
    /// pending). On failure the log holds no part of them and they stay
    /// pending: the caller may retry after making room, or `discard`.
    fn flush(&mut self) -> Result<(), Self::Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let lsn = self
            .log
            .append_record(&self.pending)
            .map_err(RecordIoError::Log)?;
        self.pending.clear();
        self.last_committed = Some(lsn);
        Ok(())
    }
}

/// An [`embedded_io::Read`] over the payloads of a log's records, from a
/// starting LSN: [`next_record`](Self::next_record) moves to the next
/// record, and `read` returns its payload's bytes, then `Ok(0)` at its end.
///
/// Each record is copied once into the reader's `N`-byte buffer (checksum
/// verified as the log reads it); a record larger than `N` is
/// [`RecordIoError::RecordTooLarge`].
///
/// # Example
///
/// A function any log can be handed (`segwal_ram`'s tests and the
/// firmware example run the same over real devices):
///
/// ```
/// use embedded_io::Read;
/// use segwal::{Error, Lsn, RecordIoError, RecordReader, SegmentStore, Wal};
///
/// /// Counts the records from `from` whose payload starts with `prefix`.
/// fn count_events<S: SegmentStore, B: AsMut<[u8]> + AsRef<[u8]>, const M: usize>(
///     wal: &mut Wal<S, B, M>,
///     from: Lsn,
///     prefix: &[u8; 4],
/// ) -> Result<usize, RecordIoError<Error<S::Error>>> {
///     let iter = wal.iter_from(from).map_err(RecordIoError::Log)?;
///     let mut reader = RecordReader::<_, _, M, 256>::new(iter);
///     let mut count = 0;
///     while reader.next_record()?.is_some() {
///         let mut head = [0u8; 4];
///         if reader.read(&mut head)? == 4 && &head == prefix {
///             count += 1;
///         }
///     }
///     Ok(count)
/// }
/// ```
#[derive(Debug)]
pub struct RecordReader<'w, S: SegmentStore, B, const MAX_SEGMENTS: usize, const N: usize> {
    records: WalIter<'w, S, B, MAX_SEGMENTS>,
    record: Vec<u8, N>,
    /// Bytes of `record` already read.
    consumed_bytes: usize,
    lsn: Option<Lsn>,
}

impl<'w, S, B, const MAX_SEGMENTS: usize, const N: usize> RecordReader<'w, S, B, MAX_SEGMENTS, N>
where
    S: SegmentStore,
    B: AsMut<[u8]> + AsRef<[u8]>,
{
    /// A reader over the records `records` yields (from
    /// [`Wal::iter`] or [`Wal::iter_from`]), before the first of them:
    /// call [`next_record`](Self::next_record) to start.
    pub fn new(records: WalIter<'w, S, B, MAX_SEGMENTS>) -> Self {
        RecordReader {
            records,
            record: Vec::new(),
            consumed_bytes: 0,
            lsn: None,
        }
    }

    /// Moves to the next record and returns its LSN, or `None` at the end
    /// of the log. Unread bytes of the current record are skipped.
    ///
    /// # Errors
    ///
    /// [`RecordIoError::Log`] when the log cannot read the record (the
    /// reader then stays at the end), [`RecordIoError::RecordTooLarge`]
    /// when it does not fit `N` bytes (the reader is then on that record,
    /// with nothing to read, and the next call moves past it).
    pub fn next_record(&mut self) -> Result<Option<Lsn>, RecordIoError<Error<S::Error>>>
    where
        S::Error: DeviceError,
    {
        self.record.clear();
        self.consumed_bytes = 0;
        self.lsn = None;
        let Some(item) = self.records.next_record() else {
            return Ok(None);
        };
        let (lsn, payload) = item.map_err(RecordIoError::Log)?;
        self.lsn = Some(lsn);
        self.record
            .extend_from_slice(&payload)
            .map_err(|_| RecordIoError::RecordTooLarge { capacity_bytes: N })?;
        Ok(Some(lsn))
    }

    /// The LSN of the current record.
    pub fn lsn(&self) -> Option<Lsn> {
        self.lsn
    }

    /// The current record's payload, whole.
    pub fn record(&self) -> &[u8] {
        &self.record
    }
}

impl<S, B, const MAX_SEGMENTS: usize, const N: usize> ErrorType
    for RecordReader<'_, S, B, MAX_SEGMENTS, N>
where
    S: SegmentStore,
{
    type Error = RecordIoError<Error<S::Error>>;
}

impl<S, B, const MAX_SEGMENTS: usize, const N: usize> Read
    for RecordReader<'_, S, B, MAX_SEGMENTS, N>
where
    S: SegmentStore,
    B: AsMut<[u8]> + AsRef<[u8]>,
{
    /// Copies the current record's next bytes into `buf`; `Ok(0)` at its
    /// end (and before the first [`next_record`](Self::next_record)).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let rest = self.record.get(self.consumed_bytes..).unwrap_or_default();
        let len_bytes = rest.len().min(buf.len());
        buf[..len_bytes].copy_from_slice(&rest[..len_bytes]);
        self.consumed_bytes += len_bytes;
        Ok(len_bytes)
    }
}

#[cfg(test)]
mod tests {
    use core::fmt::Write as _;
    use std::vec::Vec;

    use embedded_io::Error as _;

    use super::*;
    use crate::test_device::MemStore;
    use crate::wal::{Durability, WalConfig};

    type TestWal = Wal<MemStore, [u8; 8192], 64>;

    fn open(store: MemStore) -> TestWal {
        let config = WalConfig {
            segment_size_bytes: 4096,
            durability: Durability::Sync,
            ..WalConfig::default()
        };
        Wal::open(store, config, [0u8; 8192]).expect("open")
    }

    fn records(wal: &mut TestWal) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut iter = wal.iter();
        while let Some(item) = iter.next_record() {
            let (lsn, payload) = item.expect("record");
            out.push((lsn.0, payload.to_vec()));
        }
        out
    }

    /// Formats into an `embedded_io::Write` through `core::fmt`.
    struct Fmt<'a, W>(&'a mut W);

    impl<W: Write> core::fmt::Write for Fmt<'_, W> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            self.0.write_all(s.as_bytes()).map_err(|_| core::fmt::Error)
        }
    }

    #[test]
    fn pieces_written_become_one_record_at_flush() {
        let mut wal = open(MemStore::default());
        let mut writer = RecordWriter::<_, 64>::new(&mut wal);
        writer.write_all(b"temp=").expect("write");
        write!(Fmt(&mut writer), "{}", 21).expect("format");
        writer.write_all(b"C").expect("write");
        assert_eq!(writer.pending(), b"temp=21C");
        writer.flush().expect("flush");
        assert_eq!(writer.last_committed(), Some(Lsn(1)));
        assert!(writer.pending().is_empty());
        writer.flush().expect("a flush with nothing pending");
        writer.write_all(b"second").expect("write");
        writer.flush().expect("flush");
        assert_eq!(writer.last_committed(), Some(Lsn(2)));
        drop(writer);
        assert_eq!(
            records(&mut wal),
            [(1, b"temp=21C".to_vec()), (2, b"second".to_vec())]
        );
    }

    #[test]
    fn a_write_past_the_capacity_takes_nothing_and_keeps_the_record() {
        let mut wal = open(MemStore::default());
        let mut writer = RecordWriter::<_, 8>::new(&mut wal);
        writer.write_all(b"12345").expect("write");
        let error = writer.write(b"6789").unwrap_err();
        assert!(
            matches!(error, RecordIoError::RecordTooLarge { capacity_bytes: 8 }),
            "{error:?}"
        );
        assert_eq!(error.kind(), ErrorKind::OutOfMemory);
        assert_eq!(writer.pending(), b"12345", "nothing of the refused write");
        writer.write_all(b"678").expect("exactly full");
        writer.flush().expect("flush");
        drop(writer);
        assert_eq!(records(&mut wal), [(1, b"12345678".to_vec())]);
    }

    #[test]
    fn dropped_or_discarded_bytes_never_reach_the_log() {
        let mut wal = open(MemStore::default());
        let mut writer = RecordWriter::<_, 32>::new(&mut wal);
        writer.write_all(b"half an ev").expect("write");
        writer.discard();
        writer.write_all(b"whole").expect("write");
        writer.flush().expect("flush");
        writer.write_all(b"never flushed").expect("write");
        drop(writer);
        assert_eq!(records(&mut wal), [(1, b"whole".to_vec())]);
        assert_eq!(wal.next_lsn(), Lsn(2));
    }

    #[test]
    fn a_failed_flush_leaves_nothing_in_the_log_and_keeps_the_bytes() {
        let mut wal = open(MemStore::default());
        let mut writer = RecordWriter::<_, 32>::new(&mut wal);
        writer.write_all(b"kept").expect("write");
        writer.flush().expect("flush");
        let active = *writer
            .log_mut()
            .store_mut()
            .segments
            .keys()
            .last()
            .expect("a segment");
        let device = writer
            .log_mut()
            .store_mut()
            .segments
            .get_mut(&active)
            .expect("active segment");
        device.writes_before_failure = Some(0);
        writer.write_all(b"lost").expect("write");
        let error = writer.flush().unwrap_err();
        assert!(
            matches!(error, RecordIoError::Log(Error::Device(_))),
            "{error:?}"
        );
        assert_eq!(error.kind(), ErrorKind::Other);
        assert_eq!(writer.pending(), b"lost", "still pending");
        assert!(matches!(
            writer.flush(),
            Err(RecordIoError::Log(Error::Poisoned))
        ));
        let mut store = writer.into_log().store_mut().clone();
        store
            .segments
            .get_mut(&active)
            .expect("active segment")
            .writes_before_failure = None;
        let mut wal = open(store);
        assert_eq!(records(&mut wal), [(1, b"kept".to_vec())]);
    }

    #[test]
    fn the_reader_returns_each_payload_in_pieces_across_segments() {
        let mut wal = open(MemStore::default());
        let payloads: Vec<Vec<u8>> = (0..120u8)
            .map(|i| (0..i % 50).map(|j| i ^ j).collect())
            .collect();
        for payload in &payloads {
            wal.append(payload).expect("append");
        }
        assert!(wal.segment_count() > 1, "the records span segments");
        let mut reader = RecordReader::<_, _, 64, 64>::new(wal.iter_from(Lsn(3)).expect("seek"));
        let mut chunk = [0u8; 7];
        for (index, payload) in payloads.iter().enumerate().skip(2) {
            let lsn = reader.next_record().expect("next");
            assert_eq!(lsn, Some(Lsn(index as u64 + 1)));
            assert_eq!(reader.lsn(), lsn);
            let mut back = Vec::new();
            loop {
                let len = reader.read(&mut chunk).expect("read");
                if len == 0 {
                    break;
                }
                back.extend_from_slice(&chunk[..len]);
            }
            assert_eq!(&back, payload, "record {}", index + 1);
            assert_eq!(reader.record(), payload.as_slice());
        }
        assert_eq!(reader.next_record().expect("end"), None);
        assert_eq!(reader.read(&mut chunk).expect("read"), 0);
    }

    #[test]
    fn a_record_larger_than_the_reader_is_an_error_and_skipped() {
        let mut wal = open(MemStore::default());
        wal.append(b"short").expect("append");
        wal.append(&[7u8; 40]).expect("append");
        wal.append(b"after").expect("append");
        let mut reader = RecordReader::<_, _, 64, 16>::new(wal.iter());
        assert_eq!(reader.next_record().expect("first"), Some(Lsn(1)));
        let error = reader.next_record().unwrap_err();
        assert!(
            matches!(error, RecordIoError::RecordTooLarge { capacity_bytes: 16 }),
            "{error:?}"
        );
        let mut buf = [0u8; 16];
        assert_eq!(reader.read(&mut buf).expect("read"), 0, "nothing half-read");
        assert_eq!(reader.next_record().expect("third"), Some(Lsn(3)));
        reader.read_exact(&mut buf[..5]).expect("read");
        assert_eq!(&buf[..5], b"after");
    }
}
