//! [`FlashRing`]: a log's segments in one flash region, used as a ring of
//! equal slots.
//!
//! ```text
//!  region_start
//!  ┌─────────────┬─────────────┬─────────────┬─────┬─────────────────────┐
//!  │ slot 0      │ slot 1      │ slot 2      │ ... │ slot slot_count - 1 │
//!  └─────────────┴─────────────┴─────────────┴─────┴─────────────────────┘
//!    each slot: slot_size_bytes, a whole number of erase blocks; a slot
//!    holds one segment, its header at the slot's first byte
//! ```
//!
//! Segment ids are slot indexes. The ring keeps nothing on flash besides
//! the segments: which slots are in use, which is newest and where the salt
//! counter stands are all read back from the segment headers.
//!
//! # Slot states, and what decides them
//!
//! | first 8 bytes of the slot         | state   | listed by `segment_ids` |
//! |-----------------------------------|---------|-------------------------|
//! | the segment magic `SEGWAL\0\x1A`  | in use  | yes: the log reads the header and decides (a header torn while being written, with nothing after it, is an allocation cut short, which the log releases) |
//! | anything else (erased, or a torn erase) | free | no |
//!
//! A slot goes free when [`release`](segwal::SegmentStore::release) erases its
//! **first erase block** (the header's block); the rest of the slot is
//! erased when the slot is reused, which is when the log lays out the new
//! segment ([`SegmentAppender::create`](segwal::SegmentAppender::create)
//! erases the whole segment on flash). The block erased at release is
//! remembered, and the erase at reuse skips it while nothing has been
//! programmed there since: every erase block is then erased once per trip
//! round the ring, so wear is even. After a reboot the memory is gone and
//! the reuse erases the whole slot again (one extra erase of one block per
//! free slot per reboot): a block that reads erased after an interrupted
//! erase may hold weakly erased cells, so only an erase that completed in
//! this power cycle is trusted.
//!
//! # Power cuts
//!
//! - **During a release** (the erase of the first block): erase reaches the
//!   magic first or last. If the magic survives whole, so does the header
//!   in every torn state the fault device models, and the segment stays
//!   whole; otherwise the slot reads as free, and the log's chain treats it
//!   as checkpointed. Either way the log opens.
//! - **During the erase at reuse** (`SegmentAppender::create`): the slot was
//!   free (its first block erased by the release), so a torn erase leaves a
//!   free slot, or a torn unit of garbage in the header with erased bytes
//!   after it, which the log discards as an allocation cut short. The next
//!   allocation erases the slot whole again.
//! - **During the header write**: an allocation cut short, as above.
//!
//! The trade-off: a slot whose magic bytes were damaged (rather than
//! erased) reads as free, like a torn erase. A NOR cell does not rot into
//! exactly those eight bytes often, and a damaged magic in the middle of the
//! log is still caught by the chain (a missing predecessor); one in the
//! newest segment is not.
//!
//! # Salts
//!
//! No RNG on a bare microcontroller: salts are `splitmix64(counter ^
//! salt_seed)`, a bijection, so distinct counters give distinct salts. The
//! counter starts each power cycle at `(newest sequence on flash + 1) <<
//! 32` and counts up: every segment that ever held a record had a durable
//! header whose sequence the next power cycle sees, so no salt that reached
//! a record is ever handed out again (up to 2^32 segments per power cycle).

use embedded_storage::nor_flash::NorFlash;
use segwal::format::{MAGIC, SEGMENT_HEADER_LEN};
use segwal::{BlockDevice, ErrorType, Geometry, SegmentHeader, SegmentId, SegmentStore};

use crate::device::NorFlashDevice;
use crate::error::{FlashConfigError, FlashError};

/// Most slots a ring can have: the ring keeps two bits per slot in RAM.
pub const SLOT_COUNT_MAX: u32 = 256;

/// What a full ring does when the log needs a new segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RingMode {
    /// Refuse: the append fails with a [`FlashError::NoSpace`] device error
    /// until the application checkpoints. Nothing is lost.
    #[default]
    RefuseWhenFull,
    /// Drop the oldest segment to make room (a ring buffer: what firmware
    /// logs usually want). Done by [`FlashLog`](crate::FlashLog), which
    /// checkpoints the oldest segment before the rotation that needs its
    /// slot.
    DropOldest,
}

/// How a [`FlashRing`] is laid out on the flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingConfig {
    /// Where slot 0 starts on the flash; a multiple of `ERASE_SIZE`.
    pub region_start: u32,
    /// Slots in the ring, 1 to [`SLOT_COUNT_MAX`]. At least 2 for
    /// [`RingMode::DropOldest`] (the segment being appended to is never
    /// dropped).
    pub slot_count: u32,
    /// Bytes per slot, a whole number of erase blocks; the log's
    /// `segment_size_bytes` must not be larger.
    pub slot_size_bytes: u32,
    /// What a full ring does.
    pub mode: RingMode,
    /// Mixed into every salt: give each device (or each formatting of the
    /// region) its own, such as a unique chip id.
    pub salt_seed: u64,
}

/// A set of slots, two bits of RAM per slot ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct SlotSet([u32; SLOT_COUNT_MAX as usize / 32]);

impl SlotSet {
    fn contains(&self, slot: u32) -> bool {
        self.0[(slot / 32) as usize] & (1 << (slot % 32)) != 0
    }
    // Out of line: inlined at each caller it cost 28 more bytes of Thumb
    // code in firmware (examples/firmware/FIGURES.md).
    #[inline(never)]
    fn set(&mut self, slot: u32, member: bool) {
        let word = &mut self.0[(slot / 32) as usize];
        if member {
            *word |= 1 << (slot % 32);
        } else {
            *word &= !(1 << (slot % 32));
        }
    }
}

/// The device a [`FlashRing`] hands out: one slot of the region at a time,
/// as a device of its own (offset 0 is the slot's first byte, the capacity
/// is the slot). The log asks the ring for it before every use, so it
/// always points at the segment being worked on; a request outside the slot
/// fails with [`FlashError::OutOfBounds`].
#[derive(Debug)]
pub struct SlotDevice<F> {
    region: NorFlashDevice<F>,
    /// The slot this device shows.
    slot: u32,
    slot_size_bytes: u32,
    /// Slots whose first erase block was erased by a release in this power
    /// cycle and not programmed since: reuse need not erase it again.
    first_block_erased: SlotSet,
}

impl<F: NorFlash> SlotDevice<F> {
    fn slot_start(&self, slot: u32) -> u64 {
        u64::from(slot) * u64::from(self.slot_size_bytes)
    }

    fn erase_size_bytes(&self) -> u64 {
        u64::from(self.region.geometry().erase_size_bytes)
    }

    /// Checks a request against the slot and returns its region offset.
    fn in_slot(&self, offset: u64, len_bytes: u64) -> Result<u64, FlashError<F::Error>> {
        let end = offset
            .checked_add(len_bytes)
            .ok_or(FlashError::OutOfBounds)?;
        if end > u64::from(self.slot_size_bytes) {
            return Err(FlashError::OutOfBounds);
        }
        Ok(self.slot_start(self.slot) + offset)
    }

    /// Erases the first erase block of `slot`: the header goes, so the slot
    /// reads as free.
    fn erase_first_block(&mut self, slot: u32) -> Result<(), FlashError<F::Error>> {
        self.first_block_erased.set(slot, false);
        let erase = self.erase_size_bytes();
        self.region.erase(self.slot_start(slot), erase)?;
        self.first_block_erased.set(slot, true);
        Ok(())
    }
}

impl<F: NorFlash> ErrorType for SlotDevice<F> {
    type Error = FlashError<F::Error>;
}

impl<F: NorFlash> BlockDevice for SlotDevice<F> {
    fn geometry(&self) -> Geometry {
        Geometry {
            capacity_bytes: u64::from(self.slot_size_bytes),
            ..self.region.geometry()
        }
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        let at = self.in_slot(offset, buf.len() as u64)?;
        self.region.read(at, buf)
    }

    fn write(&mut self, offset: u64, pieces: &[&[u8]]) -> Result<(), Self::Error> {
        let total: u64 = pieces.iter().map(|piece| piece.len() as u64).sum();
        let at = self.in_slot(offset, total)?;
        if offset < self.erase_size_bytes() {
            self.first_block_erased.set(self.slot, false);
        }
        self.region.write(at, pieces)
    }

    /// Erases the range, skipping the slot's first block when a release in
    /// this power cycle erased it and nothing was programmed there since.
    fn erase(&mut self, offset: u64, len_bytes: u64) -> Result<(), Self::Error> {
        let mut at = self.in_slot(offset, len_bytes)?;
        let mut len = len_bytes;
        let erase = self.erase_size_bytes();
        if offset == 0 && len >= erase && self.first_block_erased.contains(self.slot) {
            at += erase;
            len -= erase;
        }
        self.first_block_erased.set(self.slot, false);
        self.region.erase(at, len)
    }

    fn sync(&mut self) -> Result<(), Self::Error> {
        self.region.sync()
    }
}

/// The newest segment seen: its slot and sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Newest {
    slot: u32,
    sequence: u64,
}

/// A [`SegmentStore`] over one flash region split into equal slots, used
/// round-robin so wear spreads evenly. See the [module docs](crate::ring) for the
/// layout, the slot states and what a power cut leaves.
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
/// use segwal::{Lsn, Wal, WalConfig};
/// use segwal_flash::{FlashRing, RingConfig, RingMode};
///
/// let config = RingConfig {
///     region_start: 0,
///     slot_count: 4,
///     slot_size_bytes: 4096,
///     mode: RingMode::RefuseWhenFull,
///     salt_seed: 0x1234,
/// };
/// let ring = FlashRing::new(Chip(vec![0xFF; 16384]), config).unwrap();
/// let wal_config = WalConfig { segment_size_bytes: 4096, ..WalConfig::default() };
/// let mut wal: Wal<_, [u8; 8192], 4> = Wal::open(ring, wal_config, [0u8; 8192])?;
/// assert_eq!(wal.append(b"boot")?, Lsn(1));
/// assert_eq!(&*wal.read(Lsn(1))?, b"boot");
/// # Ok::<(), segwal::Error<segwal_flash::FlashError<NorFlashErrorKind>>>(())
/// ```
#[derive(Debug)]
pub struct FlashRing<F> {
    slots: SlotDevice<F>,
    slot_count: u32,
    mode: RingMode,
    /// Slots that hold (or may hold) a segment.
    in_use: SlotSet,
    /// Whether `in_use` and `newest` were read from the flash yet.
    scanned: bool,
    newest: Option<Newest>,
    salt_seed: u64,
    salt_counter: u64,
}

impl<F: NorFlash> FlashRing<F> {
    /// A ring over the region `config` describes. Reads nothing yet: the
    /// slots are read when the log opens.
    ///
    /// # Errors
    ///
    /// [`FlashConfigError`] for a flash or a layout that cannot work.
    pub fn new(flash: F, config: RingConfig) -> Result<Self, FlashConfigError> {
        if config.slot_count == 0 || config.slot_count > SLOT_COUNT_MAX {
            return Err(FlashConfigError::SlotCount);
        }
        let geometry = crate::device::flash_geometry::<F>()?;
        let erase = geometry.erase_size_bytes;
        if config.slot_size_bytes == 0 || !config.slot_size_bytes.is_multiple_of(erase) {
            return Err(FlashConfigError::SlotSize);
        }
        let region_len = config
            .slot_size_bytes
            .checked_mul(config.slot_count)
            .ok_or(FlashConfigError::Region)?;
        let region = NorFlashDevice::new(flash, config.region_start, region_len)?;
        Ok(FlashRing {
            slots: SlotDevice {
                region,
                slot: 0,
                slot_size_bytes: config.slot_size_bytes,
                first_block_erased: SlotSet::default(),
            },
            slot_count: config.slot_count,
            mode: config.mode,
            in_use: SlotSet::default(),
            scanned: false,
            newest: None,
            salt_seed: config.salt_seed,
            salt_counter: 0,
        })
    }

    /// What the ring does when full.
    pub fn mode(&self) -> RingMode {
        self.mode
    }

    /// Slots in the ring.
    pub fn slot_count(&self) -> u32 {
        self.slot_count
    }

    /// Bytes per slot.
    pub fn slot_size_bytes(&self) -> u32 {
        self.slots.slot_size_bytes
    }

    /// Slots that hold no segment, as of the last listing, allocation or
    /// release.
    pub fn free_slot_count(&self) -> u32 {
        (0..self.slot_count)
            .map(|slot| u32::from(!self.in_use.contains(slot)))
            .sum()
    }

    /// The flash driver.
    pub fn flash(&self) -> &F {
        self.slots.region.flash()
    }

    /// The flash driver, for what the log does not do itself.
    pub fn flash_mut(&mut self) -> &mut F {
        self.slots.region.flash_mut()
    }

    /// Gives the flash driver back.
    pub fn into_flash(self) -> F {
        self.slots.region.into_flash()
    }

    fn check_slot(&self, id: SegmentId) -> Result<u32, FlashError<F::Error>> {
        u32::try_from(id)
            .ok()
            .filter(|&slot| slot < self.slot_count)
            .ok_or(FlashError::OutOfBounds)
    }

    /// Reads the start of every slot: which are in use, which is newest,
    /// and where the salt counter starts. One header read per slot.
    fn scan(&mut self) -> Result<(), FlashError<F::Error>> {
        let mut in_use = SlotSet::default();
        let mut newest: Option<Newest> = None;
        for slot in 0..self.slot_count {
            let mut bytes = [0u8; SEGMENT_HEADER_LEN];
            let start = self.slots.slot_start(slot);
            self.slots.region.read(start, &mut bytes)?;
            if bytes[..MAGIC.len()] != MAGIC {
                continue;
            }
            in_use.set(slot, true);
            if let Ok(header) = SegmentHeader::decode(&bytes)
                && newest.is_none_or(|n| header.sequence > n.sequence)
            {
                newest = Some(Newest {
                    slot,
                    sequence: header.sequence,
                });
            }
        }
        self.in_use = in_use;
        self.newest = newest;
        let boot_counter = newest.map_or(1, |n| n.sequence.saturating_add(1)) << 32;
        self.salt_counter = self.salt_counter.max(boot_counter);
        self.scanned = true;
        Ok(())
    }

    /// The first free slot in ring order after the newest segment's.
    fn next_free_slot(&self) -> Option<u32> {
        let first = self.newest.map_or(0, |n| (n.slot + 1) % self.slot_count);
        (0..self.slot_count)
            .map(|step| (first + step) % self.slot_count)
            .find(|&slot| !self.in_use.contains(slot))
    }
}

/// A bijective 64-bit mixer (splitmix64's finaliser).
const fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl<F: NorFlash> ErrorType for FlashRing<F> {
    type Error = FlashError<F::Error>;
}

impl<F: NorFlash> SegmentStore for FlashRing<F> {
    type Device = SlotDevice<F>;

    /// Lists the slots whose first bytes are the segment magic.
    fn segment_ids(&mut self, visit: &mut dyn FnMut(SegmentId)) -> Result<(), Self::Error> {
        self.scan()?;
        for slot in (0..self.slot_count).filter(|&slot| self.in_use.contains(slot)) {
            visit(SegmentId::from(slot));
        }
        Ok(())
    }

    fn device(&mut self, id: SegmentId) -> Result<(&mut Self::Device, u64), Self::Error> {
        self.slots.slot = self.check_slot(id)?;
        Ok((&mut self.slots, 0))
    }

    /// Picks the next free slot in ring order. Erases nothing: the log
    /// erases the segment when it lays it out, and nothing is on flash
    /// until then, so the allocation is durable trivially.
    fn allocate(&mut self, sequence: u64, size_bytes: u32) -> Result<SegmentId, Self::Error> {
        if size_bytes > self.slots.slot_size_bytes {
            return Err(FlashError::OutOfBounds);
        }
        if !self.scanned {
            self.scan()?;
        }
        let slot = self.next_free_slot().ok_or(FlashError::NoSpace)?;
        self.in_use.set(slot, true);
        self.newest = Some(Newest { slot, sequence });
        Ok(SegmentId::from(slot))
    }

    /// Erases the slot's first erase block (durable when it returns); the
    /// rest is erased when the slot is reused.
    fn release(&mut self, id: SegmentId) -> Result<(), Self::Error> {
        let slot = self.check_slot(id)?;
        self.slots.erase_first_block(slot)?;
        self.in_use.set(slot, false);
        Ok(())
    }

    // Out of line: inlined at both of the log's callers (open and rotate)
    // it cost 64 more bytes of Thumb code in the minimal firmware, 484 in
    // the sensor-log one (examples/firmware/FIGURES.md).
    #[inline(never)]
    fn fresh_salt(&mut self) -> u64 {
        let counter = self.salt_counter;
        self.salt_counter = self.salt_counter.wrapping_add(1);
        splitmix64(counter ^ self.salt_seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_separates_neighbouring_counters() {
        let salts = [0u64, 1, 2, 1 << 32, (1 << 32) + 1].map(|c| splitmix64(c ^ 7));
        for (i, a) in salts.iter().enumerate() {
            for b in &salts[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn slot_set_round_trips() {
        let mut set = SlotSet::default();
        for slot in [0, 31, 32, 255] {
            assert!(!set.contains(slot));
            set.set(slot, true);
            assert!(set.contains(slot));
        }
        set.set(32, false);
        assert!(!set.contains(32) && set.contains(31) && set.contains(255));
    }
}
