//! The error a [`RamDevice`](crate::RamDevice) returns.

use core::fmt;

use segwal::{DeviceError, ErrorKind};

/// The device operation a [`RamError`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// [`BlockDevice::read`](segwal::BlockDevice::read).
    Read,
    /// [`BlockDevice::write`](segwal::BlockDevice::write).
    Write,
    /// [`BlockDevice::erase`](segwal::BlockDevice::erase).
    Erase,
    /// [`BlockDevice::sync`](segwal::BlockDevice::sync).
    Sync,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Erase => "erase",
            Operation::Sync => "sync",
        };
        f.write_str(text)
    }
}

/// Why a [`RamDevice`](crate::RamDevice) refused or failed a request, and
/// which request it was.
///
/// The [`ErrorKind`] is what a caller acts on; the operation, offset and
/// length are there so a failing test says which request was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RamError {
    kind: ErrorKind,
    operation: Operation,
    offset: u64,
    len_bytes: u64,
}

impl RamError {
    pub(crate) const fn new(
        kind: ErrorKind,
        operation: Operation,
        offset: u64,
        len_bytes: u64,
    ) -> Self {
        RamError {
            kind,
            operation,
            offset,
            len_bytes,
        }
    }

    /// The operation that failed.
    pub const fn operation(&self) -> Operation {
        self.operation
    }

    /// The offset of the failed request, in bytes from the start of the
    /// device (0 for a sync).
    pub const fn offset(&self) -> u64 {
        self.offset
    }

    /// The length of the failed request in bytes (0 for a sync).
    pub const fn len_bytes(&self) -> u64 {
        self.len_bytes
    }
}

impl DeviceError for RamError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for RamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.operation {
            Operation::Sync => write!(f, "ram device sync: {}", self.kind),
            operation => write!(
                f,
                "ram device {operation} of {} bytes at offset {}: {}",
                self.len_bytes, self.offset, self.kind
            ),
        }
    }
}

impl std::error::Error for RamError {}
