//! I/O counters, for tests that count what the log asks of its device.

/// How many times each device operation was called, and how many bytes the
/// accepted ones moved.
///
/// Calls are counted per call to a [`BlockDevice`](segwal::BlockDevice)
/// method, rejected calls included: one `write` of several pieces is one
/// write call. Byte counts cover accepted requests only, since a rejected
/// request moved nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls to `read`.
    pub read_calls: u64,
    /// Bytes returned by accepted reads.
    pub read_bytes: u64,
    /// Calls to `write`.
    pub write_calls: u64,
    /// Bytes written by accepted writes (the total of all their pieces).
    pub write_bytes: u64,
    /// Calls to `erase`.
    pub erase_calls: u64,
    /// Calls to `sync`.
    pub sync_calls: u64,
}

/// How many faults a [`FaultPlan`](crate::FaultPlan) injected, by kind, so
/// a test can assert that the faults it asked for happened.
///
/// Counted from when the plan was attached; in a store, across every
/// segment. Strict-mode checks panic rather than count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Times the power went off (by byte or by operation count).
    pub power_cuts: u64,
    /// Writes and erases a power cut interrupted, leaving a torn unit.
    pub torn_operations: u64,
    /// Writes, erases, syncs, allocations and releases refused because the
    /// power was off.
    pub refused_after_cut: u64,
    /// Bits flipped in the buffers reads returned, transient and persistent
    /// alike (a persistent flip counts once per read it shows in).
    pub read_bit_flips: u64,
    /// Writes sent to another offset.
    pub misdirected_writes: u64,
    /// Writes and allocations refused with `ErrorKind::NoSpace`.
    pub no_space_errors: u64,
    /// Writes failed with `ErrorKind::Io` by the plan (not by a power cut).
    pub write_io_errors: u64,
    /// Syncs failed with `ErrorKind::SyncFailed`.
    pub sync_failures: u64,
    /// Writes and erases a failed sync dropped from the durable copy.
    pub dropped_operations: u64,
}
