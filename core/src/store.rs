//! Where a log's segments live: the one abstraction over a directory of
//! files, a set of in-memory segments and a ring of segments in one flash
//! region.
//!
//! A store hands out segments by [`SegmentId`]: for each, a device and the
//! offset on it where the segment starts. The log decides everything else
//! (sequence numbers, which segment to drop, what to write); the store only
//! makes room and gives it back, durably.
//!
//! # For implementers
//!
//! - [`allocate`](SegmentStore::allocate) **must** return space of at least
//!   the requested size whose allocation is durable (files: created,
//!   preallocated, fsynced, directory fsynced). The bytes need not be blank:
//!   the log writes a header with a fresh salt, and stale records under
//!   another salt never validate.
//! - [`release`](SegmentStore::release) **must** be durable when it returns
//!   (files: unlinked and directory fsynced). A power cut in the middle
//!   leaves the segment either present and whole or gone.
//! - [`segment_ids`](SegmentStore::segment_ids) lists every segment that may
//!   hold a log segment, including one whose allocation was cut short; the
//!   log reads each header to tell.
//! - [`fresh_salt`](SegmentStore::fresh_salt) **must** differ from every salt
//!   this space had before (random on hosts; a counter kept in flash, or a
//!   hardware RNG, on devices).

use crate::device::{BlockDevice, ErrorType};

/// Names a segment within its store: the sequence number for a directory
/// of files, a slot index for a flash ring.
pub type SegmentId = u64;

/// A place that holds a log's segments.
pub trait SegmentStore: ErrorType {
    /// The device segments are read and written through.
    type Device: BlockDevice<Error = Self::Error>;

    /// Calls `visit` with every segment id present, in any order.
    ///
    /// # Errors
    ///
    /// A device or file-system error while listing.
    fn segment_ids(&mut self, visit: &mut dyn FnMut(SegmentId)) -> Result<(), Self::Error>;

    /// The device holding segment `id`, and the offset where it starts.
    ///
    /// # Errors
    ///
    /// When the segment cannot be opened.
    fn device(&mut self, id: SegmentId) -> Result<(&mut Self::Device, u64), Self::Error>;

    /// Makes durable room for a segment of `size_bytes` that the log will
    /// give `sequence`, and returns its id.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::NoSpace`](crate::ErrorKind::NoSpace) when there is no
    /// room; any other device error.
    fn allocate(&mut self, sequence: u64, size_bytes: u32) -> Result<SegmentId, Self::Error>;

    /// Durably gives segment `id` back.
    ///
    /// # Errors
    ///
    /// A device or file-system error; the segment may then still be there.
    fn release(&mut self, id: SegmentId) -> Result<(), Self::Error>;

    /// A salt no earlier use of the space has had.
    fn fresh_salt(&mut self) -> u64;

    /// A hint that the log will soon [`allocate`](Self::allocate) segment
    /// `sequence` of `size_bytes`: a store that makes segments slowly (a
    /// file zero-filled and fsynced) may start now, in the background, so
    /// the rotation does not stall an append. The log sends it once per
    /// segment, when the active one is three-quarters full, so background
    /// I/O does not compete with the appends of a segment just begun. The
    /// default does nothing.
    fn prepare(&mut self, sequence: u64, size_bytes: u32) {
        let _ = (sequence, size_bytes);
    }

    /// For a store that names segments by their sequence number (a
    /// directory of files), the id a segment of `sequence` must have; the
    /// log refuses a segment whose header disagrees with its name. `None`
    /// (the default) for stores whose ids are slots.
    fn id_for_sequence(&self, sequence: u64) -> Option<SegmentId> {
        let _ = sequence;
        None
    }
}

impl<T: SegmentStore + ?Sized> SegmentStore for &mut T {
    type Device = T::Device;
    fn segment_ids(&mut self, visit: &mut dyn FnMut(SegmentId)) -> Result<(), Self::Error> {
        T::segment_ids(self, visit)
    }
    fn device(&mut self, id: SegmentId) -> Result<(&mut Self::Device, u64), Self::Error> {
        T::device(self, id)
    }
    fn allocate(&mut self, sequence: u64, size_bytes: u32) -> Result<SegmentId, Self::Error> {
        T::allocate(self, sequence, size_bytes)
    }
    fn release(&mut self, id: SegmentId) -> Result<(), Self::Error> {
        T::release(self, id)
    }
    fn fresh_salt(&mut self) -> u64 {
        T::fresh_salt(self)
    }
    fn id_for_sequence(&self, sequence: u64) -> Option<SegmentId> {
        T::id_for_sequence(self, sequence)
    }
    fn prepare(&mut self, sequence: u64, size_bytes: u32) {
        T::prepare(self, sequence, size_bytes);
    }
}
