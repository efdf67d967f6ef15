//! [`SensorLog`]: sensor events in a [`FlashLog`], written through a
//! [`RecordWriter`] and read back through a [`RecordReader`].

use embedded_io::{Read, ReadExactError, Write};
use embedded_storage::nor_flash::{NorFlash, NorFlashError};
use segwal::WalTailState;
use segwal::{Lsn, RecordIoError, RecordReader, RecordWriter, SCAN_SCRATCH_MIN_BYTES, WalConfig};
use segwal_flash::{FlashConfigError, FlashError, FlashLog, FlashRing, RingConfig, RingMode};

use crate::event::{EVENT_LEN_BYTES, Event};

/// Bytes of the buffer a [`SensorLog`] reads and scans through: the
/// smallest the log accepts. A larger one reads ahead further; this one
/// keeps RAM low.
pub const SCAN_BUFFER_BYTES: usize = SCAN_SCRATCH_MIN_BYTES;

/// Where the log lives on the flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Start of the log's region, a multiple of the flash's erase size.
    pub region_start: u32,
    /// Slots in the ring (one segment each), at least 2.
    pub slot_count: u32,
    /// Bytes per slot, whole erase blocks: also the segment size.
    pub slot_size_bytes: u32,
    /// Mixed into every segment's salt: a per-device value such as a chip
    /// id, so two boards never write records that validate on each other.
    pub salt_seed: u64,
}

impl Layout {
    /// The ring: a full ring drops its oldest segment, as a firmware event
    /// log wants (the newest events matter, and logging never stops).
    pub fn ring_config(&self) -> RingConfig {
        RingConfig {
            region_start: self.region_start,
            slot_count: self.slot_count,
            slot_size_bytes: self.slot_size_bytes,
            mode: RingMode::DropOldest,
            salt_seed: self.salt_seed,
        }
    }

    /// The log: one segment per slot, every append durable when it
    /// returns (on NOR flash a program is durable when it completes; there
    /// is nothing to sync).
    pub fn wal_config(&self) -> WalConfig {
        WalConfig {
            segment_size_bytes: self.slot_size_bytes,
            ..WalConfig::default()
        }
    }
}

/// What [`SensorLog`] calls can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum SensorLogError<E: NorFlashError> {
    /// The layout does not fit the flash (nothing was written).
    Layout(FlashConfigError),
    /// The log failed: a flash error (the log is then poisoned: remount),
    /// damaged synced data, or a full ring.
    Log(segwal::Error<FlashError<E>>),
    /// Something this crate rules out happened (a record writer refusing
    /// an event that fits it by construction): a bug here, reported
    /// instead of a panic.
    LogicBug,
}

impl<E: NorFlashError> core::fmt::Display for SensorLogError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SensorLogError::Layout(error) => write!(f, "flash layout: {error}"),
            SensorLogError::Log(error) => write!(f, "log: {error}"),
            SensorLogError::LogicBug => f.write_str("sensor-log logic bug"),
        }
    }
}

impl<E: NorFlashError> SensorLogError<E> {
    fn from_record_io(error: RecordIoError<segwal::Error<FlashError<E>>>) -> Self {
        match error {
            RecordIoError::Log(error) => SensorLogError::Log(error),
            // The record buffers hold an event exactly.
            _ => SensorLogError::LogicBug,
        }
    }
}

/// The state of the log as mounted: what survived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// The oldest event still in the log.
    pub first_lsn: Lsn,
    /// The LSN the next event gets.
    pub next_lsn: Lsn,
    /// How the records ended: clean, or a torn write that recovery cut.
    pub tail: WalTailState,
    /// Segments in use (slots of the ring).
    pub segment_count: usize,
}

impl Summary {
    /// Events in the log.
    pub fn event_count(&self) -> u64 {
        self.next_lsn.0 - self.first_lsn.0
    }
}

/// A log of sensor [`Event`]s in flash: a [`FlashLog`] over a `MAX_SEGMENTS`
/// ring, reading through a [`SCAN_BUFFER_BYTES`] buffer `B` (an array, or
/// `&mut` one).
#[derive(Debug)]
pub struct SensorLog<F: NorFlash, B, const MAX_SEGMENTS: usize> {
    log: FlashLog<F, B, MAX_SEGMENTS>,
    /// The tick of the next reading: one past the newest event's.
    next_tick: u32,
}

impl<F, B, const MAX_SEGMENTS: usize> SensorLog<F, B, MAX_SEGMENTS>
where
    F: NorFlash,
    F::Error: NorFlashError,
    B: AsMut<[u8]> + AsRef<[u8]>,
{
    /// Mounts the log in `flash`: recovery reads every slot's header and
    /// scans the newest segment, cutting a torn tail; a blank region
    /// becomes an empty log. Ticks resume after the newest event.
    ///
    /// # Errors
    ///
    /// [`SensorLogError::Layout`] when `layout` does not fit `flash`;
    /// [`SensorLogError::Log`] when the flash fails or holds damaged
    /// synced data (the log says where).
    pub fn mount(flash: F, layout: &Layout, buffer: B) -> Result<Self, SensorLogError<F::Error>> {
        let ring = FlashRing::new(flash, layout.ring_config()).map_err(SensorLogError::Layout)?;
        let log = FlashLog::open(ring, layout.wal_config(), buffer).map_err(SensorLogError::Log)?;
        let mut sensor_log = SensorLog { log, next_tick: 0 };
        let newest = Lsn(sensor_log.summary().next_lsn.0.saturating_sub(1));
        let mut newest_tick = None;
        sensor_log.for_each_event(newest, |_, event| newest_tick = event.map(|e| e.tick))?;
        // A newest record that is not an event (another firmware's) restarts
        // the ticks: they order readings, the LSNs order the log.
        sensor_log.next_tick = newest_tick.map_or(0, |tick| tick.wrapping_add(1));
        Ok(sensor_log)
    }

    /// What the log holds now.
    pub fn summary(&self) -> Summary {
        let wal = self.log.wal();
        Summary {
            first_lsn: wal.first_lsn(),
            next_lsn: wal.next_lsn(),
            tail: wal.tail_state(),
            segment_count: wal.segment_count(),
        }
    }

    /// The tick the next reading gets.
    pub fn next_tick(&self) -> u32 {
        self.next_tick
    }

    /// Appends `event` as one record, written field by field through a
    /// [`RecordWriter`]: durable when this returns `Ok`. After a power cut
    /// in the middle the record is absent, or whole when the cut spared
    /// all its bytes (it fell in the padding after them): never torn.
    ///
    /// # Errors
    ///
    /// [`SensorLogError::Log`]: the flash failed (the log is poisoned:
    /// remount); the event is not acknowledged.
    pub fn record(&mut self, event: &Event) -> Result<Lsn, SensorLogError<F::Error>> {
        let mut writer = RecordWriter::<_, EVENT_LEN_BYTES>::new(&mut self.log);
        event
            .write_to(&mut writer)
            .map_err(SensorLogError::from_record_io)?;
        writer.flush().map_err(SensorLogError::from_record_io)?;
        let lsn = writer.last_committed().ok_or(SensorLogError::LogicBug)?;
        self.next_tick = self.next_tick.max(event.tick.wrapping_add(1));
        Ok(lsn)
    }

    /// Takes the board's next reading ([`Event::reading`] at
    /// [`next_tick`](Self::next_tick)) and records it.
    ///
    /// # Errors
    ///
    /// As for [`record`](Self::record).
    pub fn record_reading(&mut self) -> Result<(Lsn, Event), SensorLogError<F::Error>> {
        let event = Event::reading(self.next_tick);
        Ok((self.record(&event)?, event))
    }

    /// Reads the records from `from` (or the oldest, if `from` is older;
    /// none if it is past the newest) to the newest through a
    /// [`RecordReader`], and calls `visit` with each LSN and its event
    /// (`None` for a record that is not an event). Returns how many records
    /// it visited.
    ///
    /// # Errors
    ///
    /// [`SensorLogError::Log`] when the flash fails or a record is damaged;
    /// the records before it were visited.
    pub fn for_each_event(
        &mut self,
        from: Lsn,
        mut visit: impl FnMut(Lsn, Option<Event>),
    ) -> Result<u64, SensorLogError<F::Error>> {
        let wal = self.log.wal_mut();
        let from = from.max(wal.first_lsn());
        let record_count = wal.next_lsn().0.saturating_sub(from.0);
        if record_count == 0 {
            // Past the newest record: nothing to visit (the log would call
            // an LSN beyond `next_lsn` out of range).
            return Ok(0);
        }
        let records = wal.iter_from(from).map_err(SensorLogError::Log)?;
        let mut reader = RecordReader::<_, _, MAX_SEGMENTS, EVENT_LEN_BYTES>::new(records);
        let mut visited = 0;
        // One record per pass: the log holds `record_count` from `from`.
        for _ in 0..record_count {
            let lsn = match reader.next_record() {
                Ok(Some(lsn)) => lsn,
                Ok(None) => break,
                // Longer than any event: not one.
                Err(RecordIoError::RecordTooLarge { .. }) => {
                    let lsn = reader.lsn().ok_or(SensorLogError::LogicBug)?;
                    visit(lsn, None);
                    visited += 1;
                    continue;
                }
                Err(error) => return Err(SensorLogError::from_record_io(error)),
            };
            let mut bytes = [0u8; EVENT_LEN_BYTES];
            let event = match reader.read_exact(&mut bytes) {
                Ok(()) => Event::decode(&bytes),
                // Shorter than any event: not one.
                Err(ReadExactError::UnexpectedEof) => None,
                Err(ReadExactError::Other(error)) => {
                    return Err(SensorLogError::from_record_io(error));
                }
            };
            visit(lsn, event);
            visited += 1;
        }
        Ok(visited)
    }

    /// The flash log, for what this type does not do (checkpoints,
    /// verification).
    pub fn flash_log_mut(&mut self) -> &mut FlashLog<F, B, MAX_SEGMENTS> {
        &mut self.log
    }

    /// Segments dropped to make room since mount (the ring is full and
    /// drops its oldest events).
    pub fn dropped_segments(&self) -> u64 {
        self.log.dropped_segments()
    }
}
