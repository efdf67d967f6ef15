//! # segwal-flash: segwal on NOR flash, `no_std`
//!
//! Two layers over any [`embedded_storage::nor_flash::NorFlash`] driver:
//!
//! - [`NorFlashDevice`]: a region of the flash as a segwal
//!   [`BlockDevice`](segwal::BlockDevice). The flash's `READ_SIZE`,
//!   `WRITE_SIZE` and `ERASE_SIZE` are the geometry, erased bytes read
//!   `0xFF`, and no word is ever programmed twice, so flash with ECC words
//!   works too.
//! - [`FlashRing`]: a [`SegmentStore`](segwal::SegmentStore) that splits a
//!   region into equal slots of whole erase blocks and uses them as a ring,
//!   so wear spreads evenly. The core [`segwal::Wal`] runs over it
//!   unchanged; [`FlashLog`] adds the ring's full policy ([`RingMode`]):
//!   refuse, or drop the oldest segment like a ring buffer.
//!
//! On flash the log writes no clean-close markers (they could not be wiped)
//! and steps over torn words instead of rewriting them (see FORMAT.md); its
//! open reads every slot's header and scans the newest segment.
//!
//! No allocation, no `unsafe`.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod device;
mod error;
mod log;
pub mod ring;

pub use device::{NorFlashDevice, WORD_MAX_BYTES};
pub use error::{FlashConfigError, FlashError};
pub use log::{FlashLog, FlashLogError};
pub use ring::{FlashRing, RingConfig, RingMode, SLOT_COUNT_MAX, SlotDevice};
