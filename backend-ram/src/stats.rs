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
