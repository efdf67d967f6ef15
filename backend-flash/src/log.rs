//! [`FlashLog`]: the core [`Wal`] over a [`FlashRing`], with the ring's
//! full policy applied before a rotation needs a slot.
//!
//! Why a wrapper: a store cannot drop a segment by itself (the log still
//! lists it and would read an erased slot), and a failed allocation inside
//! a rotation poisons the log. So the wrapper looks ahead: when the next
//! append will rotate and no slot is free, it checkpoints the oldest segment
//! first ([`RingMode::DropOldest`]) or refuses without touching the log
//! ([`RingMode::RefuseWhenFull`]).

use core::ops::Range;

use embedded_storage::nor_flash::NorFlash;
use segwal::format::record_extent_bytes;
use segwal::{AppendRecord, Error, Lsn, Wal, WalConfig};

use crate::error::FlashError;
use crate::ring::{FlashRing, RingMode};

/// The errors of a [`FlashLog`].
pub type FlashLogError<F> = Error<FlashError<<F as embedded_storage::nor_flash::ErrorType>::Error>>;

/// A write-ahead log in a flash ring: [`segwal::Wal`] plus the ring's full
/// policy. Everything but appending goes through [`wal`](Self::wal) and
/// [`wal_mut`](Self::wal_mut).
///
/// # Example
///
/// ```
/// # use embedded_storage::nor_flash::{ErrorType, NorFlash, NorFlashErrorKind, ReadNorFlash};
/// # struct Chip(Vec<u8>);
/// # impl ErrorType for Chip { type Error = NorFlashErrorKind; }
/// # impl ReadNorFlash for Chip {
/// #     const READ_SIZE: usize = 1;
/// #     fn read(&mut self, o: u32, b: &mut [u8]) -> Result<(), Self::Error> {
/// #         b.copy_from_slice(&self.0[o as usize..o as usize + b.len()]); Ok(())
/// #     }
/// #     fn capacity(&self) -> usize { self.0.len() }
/// # }
/// # impl NorFlash for Chip {
/// #     const WRITE_SIZE: usize = 4;
/// #     const ERASE_SIZE: usize = 4096;
/// #     fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
/// #         self.0[from as usize..to as usize].fill(0xFF); Ok(())
/// #     }
/// #     fn write(&mut self, o: u32, b: &[u8]) -> Result<(), Self::Error> {
/// #         for (d, s) in self.0[o as usize..].iter_mut().zip(b) { *d &= *s; } Ok(())
/// #     }
/// # }
/// use segwal::{Lsn, WalConfig};
/// use segwal_flash::{FlashLog, FlashRing, RingConfig, RingMode};
///
/// let config = RingConfig {
///     region_start: 0,
///     slot_count: 2,
///     slot_size_bytes: 4096,
///     mode: RingMode::DropOldest,
///     salt_seed: 0x1234,
/// };
/// let ring = FlashRing::new(Chip(vec![0xFF; 8192]), config).unwrap();
/// let wal_config = WalConfig { segment_size_bytes: 4096, ..WalConfig::default() };
/// let mut log: FlashLog<_, [u8; 8192], 2> = FlashLog::open(ring, wal_config, [0u8; 8192])?;
/// for i in 0..1000u32 {
///     log.append(&i.to_le_bytes())?;
/// }
/// // Two 4 KiB slots hold the newest records only.
/// assert!(log.wal().first_lsn() > Lsn(1));
/// assert_eq!(log.wal().next_lsn(), Lsn(1001));
/// # Ok::<(), segwal::Error<segwal_flash::FlashError<NorFlashErrorKind>>>(())
/// ```
#[derive(Debug)]
pub struct FlashLog<F: NorFlash, B, const MAX_SEGMENTS: usize> {
    wal: Wal<FlashRing<F>, B, MAX_SEGMENTS>,
    dropped_segments: u64,
}

impl<F: NorFlash, B: AsMut<[u8]> + AsRef<[u8]>, const MAX_SEGMENTS: usize>
    FlashLog<F, B, MAX_SEGMENTS>
{
    /// Opens (or creates) the log in `ring`: see [`Wal::open`].
    ///
    /// # Errors
    ///
    /// As for [`Wal::open`].
    pub fn open(
        ring: FlashRing<F>,
        config: WalConfig,
        buffer: B,
    ) -> Result<Self, FlashLogError<F>> {
        Ok(FlashLog {
            wal: Wal::open(ring, config, buffer)?,
            dropped_segments: 0,
        })
    }

    /// Appends one record: see [`Wal::append`].
    ///
    /// # Errors
    ///
    /// As for [`append_batch`](Self::append_batch).
    pub fn append(&mut self, payload: &[u8]) -> Result<Lsn, FlashLogError<F>> {
        Ok(self.append_batch(&[payload])?.start)
    }

    /// Appends an atomic batch: see [`Wal::append_batch`]. When the batch
    /// needs a new segment and every slot is in use, a
    /// [`RingMode::DropOldest`] ring first checkpoints the oldest segment
    /// (its records are gone for good); a [`RingMode::RefuseWhenFull`] ring
    /// refuses.
    ///
    /// # Errors
    ///
    /// [`Error::Device`] with [`FlashError::NoSpace`] when the ring is full
    /// and may not drop anything (the log is not poisoned, nothing is
    /// written: checkpoint and retry); otherwise as for
    /// [`Wal::append_batch`].
    pub fn append_batch(&mut self, payloads: &[&[u8]]) -> Result<Range<Lsn>, FlashLogError<F>> {
        self.make_room(payloads)?;
        self.wal.append_batch(payloads)
    }

    /// Segments dropped to make room since the log was opened.
    pub fn dropped_segments(&self) -> u64 {
        self.dropped_segments
    }

    /// The log, for reading, iterating, syncing and checkpointing.
    pub fn wal(&self) -> &Wal<FlashRing<F>, B, MAX_SEGMENTS> {
        &self.wal
    }

    /// The log, mutably. Appends made through it directly skip the ring's
    /// full policy: a full ring then fails the rotation, which poisons it.
    pub fn wal_mut(&mut self) -> &mut Wal<FlashRing<F>, B, MAX_SEGMENTS> {
        &mut self.wal
    }

    /// Gives the log back.
    pub fn into_wal(self) -> Wal<FlashRing<F>, B, MAX_SEGMENTS> {
        self.wal
    }

    /// Frees a slot when the batch will rotate into a full ring.
    fn make_room(&mut self, payloads: &[&[u8]]) -> Result<(), FlashLogError<F>> {
        let Some(active) = self.wal.segments().last().map(|info| info.header) else {
            return Ok(());
        };
        let align = active.record_align_bytes();
        let mut needed_bytes = 0u64;
        for payload in payloads {
            // Too large for a record: the log says so itself.
            let Ok(len) = u32::try_from(payload.len()) else {
                return Ok(());
            };
            needed_bytes += record_extent_bytes(len, align);
        }
        let size = u64::from(active.segment_size_bytes);
        let remaining = size.saturating_sub(self.wal.active_written_bytes());
        let fresh = size - u64::from(active.records_start());
        if needed_bytes <= remaining || needed_bytes > fresh {
            return Ok(());
        }
        let ring_full =
            self.wal.store_mut().free_slot_count() == 0 || self.wal.segment_count() >= MAX_SEGMENTS;
        if !ring_full {
            return Ok(());
        }
        let second = self.wal.segments().get(1).map(|info| info.header.base_lsn);
        match (self.wal.store_mut().mode(), second) {
            (RingMode::DropOldest, Some(second_base)) => {
                self.wal.checkpoint(Lsn(second_base - 1))?;
                self.dropped_segments += 1;
                Ok(())
            }
            _ => Err(Error::Device(FlashError::NoSpace)),
        }
    }
}

/// A [`RecordWriter`](segwal::RecordWriter) over a flash log commits with
/// the log's full-region policy ([`FlashLog::append`]).
impl<F: NorFlash, B: AsMut<[u8]> + AsRef<[u8]>, const MAX_SEGMENTS: usize> AppendRecord
    for FlashLog<F, B, MAX_SEGMENTS>
{
    type Error = FlashLogError<F>;

    fn append_record(&mut self, payload: &[u8]) -> Result<Lsn, Self::Error> {
        self.append(payload)
    }
}
