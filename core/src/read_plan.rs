//! What to read from the device for a record read: pure decisions, no I/O.
//!
//! A reader keeps one buffer and remembers which span of the segment it
//! holds (the [`Window`]). Reading a record is two decisions:
//!
//! 1. [`plan_header`]: is the record header already in the window, and if
//!    not, how much to read from the record's offset. A random read takes the
//!    header plus 2 KiB in one device read, so a record of 2 KiB or less never
//!    needs a second one; a read whose caller knows the record's extent (the
//!    log's offset index does) takes exactly the record; a sequential read
//!    takes a 64 KiB read-ahead window.
//! 2. [`plan_record`]: once the header gives the record's length, whether the
//!    whole record is in the window, the window can be extended in place, a
//!    fresh window must be read, or the record is larger than the buffer and
//!    spills into the caller's output.
//!
//! Nothing is ever planned past the flushed offset, so a reader never sees
//! bytes the writer has not made durable.

use crate::format::{RECORD_HEADER_LEN, RECORD_HEADER_LEN_U32};

/// How the caller is going to read: it picks how much to read ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReadHint {
    /// Records are read in no particular order: read the header and 2 KiB.
    #[default]
    Random,
    /// Records are read one after the other: read a 64 KiB window ahead.
    Sequential,
    /// The caller knows the record's extent in bytes (header, payload and
    /// padding), from an offset index: read exactly that, one read for a
    /// record of any size the buffer holds. A wrong value costs a second
    /// read, never a wrong record: the header still decides.
    Extent(u64),
}

/// Payload bytes a random read takes along with the header.
pub const RANDOM_READ_PAYLOAD_BYTES: u64 = 2048;
/// Bytes of one random read: a header and 2 KiB of payload.
pub const RANDOM_READ_BYTES: u64 = RECORD_HEADER_LEN as u64 + RANDOM_READ_PAYLOAD_BYTES;
/// Bytes of one sequential read-ahead window.
pub const SEQUENTIAL_WINDOW_BYTES: u64 = 64 * 1024;

/// A span of segment offsets `[start, start + len_bytes)` held in the buffer
/// from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// Segment offset of the buffer's first byte.
    pub start: u32,
    /// Valid bytes in the buffer.
    pub len_bytes: u32,
}

impl Window {
    /// One past the last offset held.
    pub const fn end(&self) -> u32 {
        self.start + self.len_bytes
    }

    /// `true` when `[start, start + len_bytes)` is entirely held.
    pub const fn contains(&self, start: u32, len_bytes: u32) -> bool {
        start >= self.start && start as u64 + len_bytes as u64 <= self.end() as u64
    }
}

/// One device read: `len_bytes` from segment offset `start` into the buffer
/// at `buffer_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// Segment offset to read from.
    pub start: u32,
    /// Bytes to read.
    pub len_bytes: u32,
    /// Where in the buffer they go.
    pub buffer_offset: u32,
}

/// [`RECORD_HEADER_LEN`] as a `u64`, for the checks made in that width.
const RECORD_HEADER_LEN_U64: u64 = RECORD_HEADER_LEN as u64;

/// [`RANDOM_READ_BYTES`] as a `u32` (checked at compile time).
// The cast is exact: the assertion holds.
#[allow(clippy::cast_possible_truncation)]
const RANDOM_READ_BYTES_U32: u32 = {
    assert!(RANDOM_READ_BYTES <= u32::MAX as u64);
    RANDOM_READ_BYTES as u32
};

/// [`SEQUENTIAL_WINDOW_BYTES`] as a `u32` (checked at compile time).
// The cast is exact: the assertion holds.
#[allow(clippy::cast_possible_truncation)]
const SEQUENTIAL_WINDOW_BYTES_U32: u32 = {
    assert!(SEQUENTIAL_WINDOW_BYTES <= u32::MAX as u64);
    SEQUENTIAL_WINDOW_BYTES as u32
};

/// `wanted` rounded up to whole units of `unit` (not zero); a unit larger
/// than `wanted` is one unit.
fn next_multiple_of_unit(wanted: u32, unit: u32) -> u32 {
    wanted.checked_next_multiple_of(unit).unwrap_or(u32::MAX)
}

/// The read, if any, needed before the header of the record at `offset`
/// can be decoded.
///
/// `offset + RECORD_HEADER_LEN <= flushed_offset` and
/// `buffer_len_bytes >= RANDOM_READ_BYTES` are the caller's to check.
// Inline on hosts, as plan_record: every read plans, from the generic
// view the backend's crate instantiates.
#[cfg_attr(not(target_os = "none"), inline)]
pub fn plan_header(
    hint: ReadHint,
    offset: u32,
    window: Window,
    flushed_offset: u32,
    buffer_len_bytes: u32,
    read_unit_bytes: u32,
) -> Option<Fill> {
    assert!(u64::from(offset) + RECORD_HEADER_LEN_U64 <= u64::from(flushed_offset));
    assert!(buffer_len_bytes >= RANDOM_READ_BYTES_U32);
    if window.contains(offset, RECORD_HEADER_LEN_U32) {
        return None;
    }
    // Whole read units: a 512-byte-sector device reads header + 2 KiB as
    // five sectors. The buffer and the flushed offset are unit multiples.
    let wanted = match hint {
        ReadHint::Random => RANDOM_READ_BYTES_U32,
        ReadHint::Sequential => SEQUENTIAL_WINDOW_BYTES_U32,
        // Clamped to the buffer first, so it fits the u32 rounding below.
        ReadHint::Extent(extent_bytes) => {
            let clamped = extent_bytes.clamp(RECORD_HEADER_LEN_U64, u64::from(buffer_len_bytes));
            u32::try_from(clamped).unwrap_or(u32::MAX)
        }
    };
    let wanted = next_multiple_of_unit(wanted, read_unit_bytes.max(1));
    Some(Fill {
        start: offset,
        len_bytes: wanted.min(buffer_len_bytes).min(flushed_offset - offset),
        buffer_offset: 0,
    })
}

/// What to do once the header says the record spans `record_len_bytes`
/// (header and payload) from `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordPlan {
    /// The whole record is in the window: no read.
    InWindow,
    /// Read the given span into the buffer; afterwards the record is in the
    /// window. The window after the read is `new_window`.
    Read {
        /// The read.
        fill: Fill,
        /// The window once the read is done.
        new_window: Window,
    },
    /// The record is larger than the buffer: copy `[offset, window end)` to
    /// the output, then read the remaining `rest_len_bytes` from
    /// `rest_start` straight into the output.
    Spill {
        /// Segment offset of the first byte not in the window.
        rest_start: u32,
        /// Bytes to read into the output.
        rest_len_bytes: u32,
    },
}

/// The reads, if any, that bring the whole record at `offset` into reach.
///
/// The header at `offset` must be in `window` (see [`plan_header`]) and the
/// record must end at or before `flushed_offset`.
#[cfg_attr(not(target_os = "none"), inline)]
pub fn plan_record(
    hint: ReadHint,
    offset: u32,
    record_len_bytes: u32,
    window: Window,
    flushed_offset: u32,
    buffer_len_bytes: u32,
) -> RecordPlan {
    assert!(u64::from(offset) + u64::from(record_len_bytes) <= u64::from(flushed_offset));
    let record_end = offset + record_len_bytes;
    assert!(window.contains(offset, RECORD_HEADER_LEN_U32));
    if window.contains(offset, record_len_bytes) {
        return RecordPlan::InWindow;
    }
    // The buffer can hold the record where the window already puts it:
    // read only the missing tail, so the header is never read twice.
    if record_end - window.start <= buffer_len_bytes {
        let read_end = match hint {
            ReadHint::Random | ReadHint::Extent(_) => record_end,
            ReadHint::Sequential => (window.start + buffer_len_bytes).min(flushed_offset),
        };
        return RecordPlan::Read {
            fill: Fill {
                start: window.end(),
                len_bytes: read_end - window.end(),
                buffer_offset: window.len_bytes,
            },
            new_window: Window {
                start: window.start,
                len_bytes: read_end - window.start,
            },
        };
    }
    // It fits in the buffer, but only from the buffer's first byte: start a
    // fresh window at the record.
    if record_len_bytes <= buffer_len_bytes {
        let read_end = match hint {
            ReadHint::Random | ReadHint::Extent(_) => record_end,
            ReadHint::Sequential => (offset + buffer_len_bytes).min(flushed_offset),
        };
        return RecordPlan::Read {
            fill: Fill {
                start: offset,
                len_bytes: read_end - offset,
                buffer_offset: 0,
            },
            new_window: Window {
                start: offset,
                len_bytes: read_end - offset,
            },
        };
    }
    RecordPlan::Spill {
        rest_start: window.end(),
        rest_len_bytes: record_end - window.end(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: u32 = RECORD_HEADER_LEN_U32;
    const EMPTY: Window = Window {
        start: 0,
        len_bytes: 0,
    };

    #[test]
    fn an_extent_hint_reads_exactly_the_record_and_never_overflows() {
        let fill = plan_header(ReadHint::Extent(120), 1000, EMPTY, 1_000_000, 65536, 1).unwrap();
        assert_eq!(fill.len_bytes, 120, "the record, not header + 2 KiB");
        let fill = plan_header(ReadHint::Extent(120), 1024, EMPTY, 1_000_000, 65536, 512).unwrap();
        assert_eq!(fill.len_bytes, 512, "whole read units");
        let fill = plan_header(ReadHint::Extent(3), 1000, EMPTY, 1_000_000, 65536, 1).unwrap();
        assert_eq!(fill.len_bytes, HEADER, "at least the header");
        let fill = plan_header(ReadHint::Extent(u64::MAX), 0, EMPTY, 1 << 31, 65536, 512).unwrap();
        assert_eq!(fill.len_bytes, 65536, "capped by the buffer");
        let fill = plan_header(ReadHint::Extent(120), 1000, EMPTY, 1050, 65536, 1).unwrap();
        assert_eq!(fill.len_bytes, 50, "never past the flushed offset");

        // A hint shorter than the record costs one more read of the rest.
        let window = Window {
            start: 1000,
            len_bytes: HEADER,
        };
        let plan = plan_record(
            ReadHint::Extent(u64::from(HEADER)),
            1000,
            120,
            window,
            1_000_000,
            65536,
        );
        assert_eq!(
            plan,
            RecordPlan::Read {
                fill: Fill {
                    start: 1000 + HEADER,
                    len_bytes: 120 - HEADER,
                    buffer_offset: HEADER,
                },
                new_window: Window {
                    start: 1000,
                    len_bytes: 120,
                },
            }
        );
    }

    #[test]
    fn random_header_read_takes_header_plus_2k_capped_by_flushed() {
        let fill = plan_header(ReadHint::Random, 1000, EMPTY, 1_000_000, 65536, 1).unwrap();
        assert_eq!(
            fill,
            Fill {
                start: 1000,
                len_bytes: HEADER + 2048,
                buffer_offset: 0
            }
        );
        let fill = plan_header(ReadHint::Random, 1000, EMPTY, 1100, 65536, 1).unwrap();
        assert_eq!(fill.len_bytes, 100, "never past the flushed offset");
    }

    #[test]
    fn sequential_header_read_takes_a_window_capped_by_buffer_and_flushed() {
        let fill = plan_header(ReadHint::Sequential, 64, EMPTY, 10_000_000, 65536, 1).unwrap();
        assert_eq!(fill.len_bytes, 65536);
        let fill = plan_header(ReadHint::Sequential, 64, EMPTY, 10_000_000, 4096, 1).unwrap();
        assert_eq!(fill.len_bytes, 4096);
        let fill = plan_header(ReadHint::Sequential, 64, EMPTY, 1064, 65536, 1).unwrap();
        assert_eq!(fill.len_bytes, 1000);
    }

    #[test]
    fn header_reads_are_whole_read_units() {
        let fill = plan_header(ReadHint::Random, 512, EMPTY, 1 << 20, 65536, 512).unwrap();
        assert_eq!(fill.len_bytes, 2560, "header + 2 KiB rounded up to sectors");
        let fill = plan_header(ReadHint::Random, 512, EMPTY, 1536, 65536, 512).unwrap();
        assert_eq!(fill.len_bytes, 1024, "never past the flushed offset");
    }

    #[test]
    fn header_in_window_needs_no_read() {
        let window = Window {
            start: 64,
            len_bytes: 4096,
        };
        assert_eq!(
            plan_header(ReadHint::Sequential, 64, window, 1 << 20, 65536, 1),
            None
        );
        assert_eq!(
            plan_header(ReadHint::Random, 4144, window, 1 << 20, 65536, 1),
            None
        );
        // Header straddles the window end: read.
        assert!(plan_header(ReadHint::Random, 4150, window, 1 << 20, 65536, 1).is_some());
        // Before the window: read.
        assert!(plan_header(ReadHint::Random, 0, window, 1 << 20, 65536, 1).is_some());
    }

    #[test]
    fn small_record_after_a_random_header_read_is_complete() {
        for payload in [0u32, 1, 100, 2048] {
            let fill = plan_header(ReadHint::Random, 64, EMPTY, 1 << 20, 65536, 1).unwrap();
            let window = Window {
                start: fill.start,
                len_bytes: fill.len_bytes,
            };
            assert_eq!(
                plan_record(
                    ReadHint::Random,
                    64,
                    HEADER + payload,
                    window,
                    1 << 20,
                    65536
                ),
                RecordPlan::InWindow,
                "payload {payload}"
            );
        }
    }

    #[test]
    fn large_random_record_reads_only_its_missing_tail() {
        let window = Window {
            start: 64,
            len_bytes: HEADER + 2048,
        };
        let plan = plan_record(ReadHint::Random, 64, HEADER + 5000, window, 1 << 20, 65536);
        assert_eq!(
            plan,
            RecordPlan::Read {
                fill: Fill {
                    start: 64 + HEADER + 2048,
                    len_bytes: 5000 - 2048,
                    buffer_offset: HEADER + 2048
                },
                new_window: Window {
                    start: 64,
                    len_bytes: HEADER + 5000
                },
            }
        );
    }

    #[test]
    fn record_straddling_the_window_end_starts_a_fresh_window() {
        let window = Window {
            start: 0,
            len_bytes: 65536,
        };
        let plan = plan_record(ReadHint::Sequential, 65000, 1000, window, 1 << 20, 65536);
        assert_eq!(
            plan,
            RecordPlan::Read {
                fill: Fill {
                    start: 65000,
                    len_bytes: 65536,
                    buffer_offset: 0
                },
                new_window: Window {
                    start: 65000,
                    len_bytes: 65536
                },
            }
        );
    }

    #[test]
    fn sequential_extension_stops_at_flushed() {
        let window = Window {
            start: 0,
            len_bytes: 100,
        };
        let plan = plan_record(ReadHint::Sequential, 64, 200, window, 500, 65536);
        assert_eq!(
            plan,
            RecordPlan::Read {
                fill: Fill {
                    start: 100,
                    len_bytes: 400,
                    buffer_offset: 100
                },
                new_window: Window {
                    start: 0,
                    len_bytes: 500
                },
            }
        );
    }

    #[test]
    fn record_larger_than_the_buffer_spills() {
        let window = Window {
            start: 64,
            len_bytes: 4096,
        };
        let plan = plan_record(ReadHint::Sequential, 64, 100_000, window, 1 << 20, 4096);
        assert_eq!(
            plan,
            RecordPlan::Spill {
                rest_start: 64 + 4096,
                rest_len_bytes: 100_000 - 4096
            }
        );
    }

    #[test]
    fn planned_reads_never_pass_flushed_or_overflow_the_buffer() {
        // Exhaustive over a small grid of shapes.
        let flushed = 3000u32;
        for buffer in [RANDOM_READ_BYTES_U32, 2100, 4096] {
            for offset in (0..flushed - HEADER).step_by(40) {
                let hints = [
                    ReadHint::Random,
                    ReadHint::Sequential,
                    ReadHint::Extent(0),
                    ReadHint::Extent(120),
                    ReadHint::Extent(2500),
                    ReadHint::Extent(u64::MAX),
                ];
                for hint in hints {
                    let fill = plan_header(hint, offset, EMPTY, flushed, buffer, 1).unwrap();
                    assert!(fill.start + fill.len_bytes <= flushed);
                    assert!(fill.buffer_offset + fill.len_bytes <= buffer);
                    let window = Window {
                        start: fill.start,
                        len_bytes: fill.len_bytes,
                    };
                    for len in (HEADER..=flushed - offset).step_by(97) {
                        match plan_record(hint, offset, len, window, flushed, buffer) {
                            RecordPlan::InWindow => assert!(window.contains(offset, len)),
                            RecordPlan::Read { fill, new_window } => {
                                assert!(fill.start + fill.len_bytes <= flushed);
                                assert!(fill.buffer_offset + fill.len_bytes <= buffer);
                                assert_eq!(new_window.start + fill.buffer_offset, fill.start);
                                assert!(new_window.contains(offset, len));
                            }
                            RecordPlan::Spill {
                                rest_start,
                                rest_len_bytes,
                            } => {
                                assert!(len > buffer);
                                assert_eq!(rest_start + rest_len_bytes, offset + len);
                            }
                        }
                    }
                }
            }
        }
    }
}
