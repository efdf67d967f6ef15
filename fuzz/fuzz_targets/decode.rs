//! `decode`: arbitrary bytes as one segment, through the recovery scan,
//! the clean-close search and the readers.
//!
//! The segment is one of three things: the raw input bytes; a valid header
//! (encoded from fuzz-chosen fields) followed by raw input bytes; or a
//! segment the log's own writer built from fuzz-chosen appends, batches,
//! syncs, clean closes, torn tails and reopens, then optionally damaged.
//! It sits at a fuzz-chosen offset of a file, sector or NOR flash device.
//!
//! Checked, on every input: no call panics, and none makes a device request
//! the device refuses (which would mean the log asked for a range outside
//! the segment or off the device's alignment). Then:
//! - the scan report is self-consistent (`records_start <= records_end <=
//!   segment size`, tail offsets in range, a last record iff records) and
//!   the same for a smallest and a 64 KiB scratch buffer;
//! - a reader made ready by `recover_flushed_offset` reads every record the
//!   scan counted, walking from the first (unless the scan followed a flash
//!   hole), by both read hints and into a caller buffer, with equal bytes;
//!   in strict mode it refuses exactly the segments the scan calls corrupt;
//! - reads at fuzz-chosen offsets and flushed offsets return `Ok` or `Err`,
//!   and an `Ok` record lies inside what the reader may read.
//!
//! And for a segment the writer built and nothing damaged (a torn tail is
//! not damage): the scan counts exactly the records appended, each reads
//! back with its bytes at its offset, and the clean-close search finds the
//! marker exactly when the writer's last word was one, with its count.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use segwal::recovery::{self, TailClass};
use segwal::{
    BlockDevice, Error, RANDOM_READ_BYTES, ReadHint, RecordDefect, RecoveryMode,
    SCAN_SCRATCH_MIN_BYTES, SEQUENTIAL_WINDOW_BYTES, ScanReport, SegmentCursor, SegmentHeader,
    read_segment_header,
};
use segwal_fuzz::{
    GeometryChoice, HeaderFields, SEGMENT_BYTES_MAX, UNIT_BYTES, WriteLimits, WriteOp, Written,
    header_image, image_with, write_segment,
};
use segwal_ram::{RamDevice, RamError};

/// Reads at fuzz-chosen offsets per input.
const PROBES_MAX: usize = 16;

#[derive(Arbitrary, Debug)]
enum Layout {
    /// The raw bytes from the segment start.
    Raw,
    /// A valid header, then the raw bytes.
    Header(HeaderFields),
    /// What the writer makes of these operations.
    Written {
        fields: HeaderFields,
        user_area_seed: u64,
        ops: Vec<WriteOp>,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum BufferChoice {
    /// The smallest buffer a reader accepts.
    Smallest,
    /// A little more, not a multiple of any read unit.
    Odd,
    /// A full sequential window.
    Window,
}

impl BufferChoice {
    fn len(self) -> usize {
        let smallest = RANDOM_READ_BYTES as usize;
        match self {
            BufferChoice::Smallest => smallest,
            BufferChoice::Odd => smallest + UNIT_BYTES as usize + 7,
            BufferChoice::Window => SEQUENTIAL_WINDOW_BYTES as usize,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Probe {
    offset: u16,
    sequential: bool,
    /// Read into a caller buffer of this many bytes instead (0: borrowed).
    into_len: u8,
    /// Let the reader read up to here instead of the scan's records end.
    flushed_offset: Option<u16>,
    skip: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    geometry: GeometryChoice,
    start_units: u8,
    layout: Layout,
    buffer: BufferChoice,
    probes: Vec<Probe>,
    bytes: Vec<u8>,
}

type DecodeError = Error<RamError>;

/// `Ok` or an error that is not a refused device request.
fn no_bad_request<T>(result: Result<T, DecodeError>, what: &str) -> Result<T, DecodeError> {
    if let Err(Error::Device(e)) = &result {
        panic!("{what}: the log made a device request the device refused: {e:?}");
    }
    result
}

fn build(input: &Input) -> (RamDevice, u64, Option<Written>) {
    let start = u64::from(input.start_units % 4) * u64::from(UNIT_BYTES);
    let raw = |size: u64| {
        let geometry = input.geometry.geometry(start + size);
        let image = image_with(&geometry, start as usize, &input.bytes);
        RamDevice::from_image(geometry, image)
    };
    let raw_size = || {
        let len = (input.bytes.len() as u64).clamp(1, u64::from(SEGMENT_BYTES_MAX));
        len.div_ceil(u64::from(UNIT_BYTES)) * u64::from(UNIT_BYTES)
    };
    match &input.layout {
        Layout::Raw => (raw(raw_size()), start, None),
        Layout::Header(fields) => match fields.header() {
            Some(header) => {
                let size = u64::from(header.segment_size_bytes);
                let geometry = input.geometry.geometry(start + size);
                let image = header_image(&geometry, start as usize, &header, &input.bytes);
                (RamDevice::from_image(geometry, image), start, None)
            }
            None => (raw(raw_size()), start, None),
        },
        Layout::Written {
            fields,
            user_area_seed,
            ops,
        } => {
            let config = fields.config();
            let device = input
                .geometry
                .device(start + u64::from(config.segment_size_bytes));
            let limits = WriteLimits {
                allow_damage: true,
                may_leave_torn_tail: true,
            };
            let written = write_segment(
                device,
                start,
                &config,
                fields.identity(),
                *user_area_seed,
                ops,
                limits,
            );
            (written.device.clone(), start, Some(written))
        }
    }
}

fn check_report(header: &SegmentHeader, report: &ScanReport) {
    let records_start = header.records_start();
    let size = header.segment_size_bytes;
    assert!(
        records_start <= report.records_end && report.records_end <= size,
        "records end {} outside [{records_start}, {size}]",
        report.records_end
    );
    assert_eq!(
        report.record_count == 0,
        report.last_record_offset.is_none(),
        "a last record iff records: {report:?}"
    );
    if let Some(last) = report.last_record_offset {
        assert!(
            records_start <= last && last < report.records_end,
            "{report:?}"
        );
    }
    if let Some(marker) = report.trailing_marker {
        assert!(
            records_start <= marker && marker < report.records_end,
            "{report:?}"
        );
    }
    let records_max = u64::from(size - records_start) / 16;
    assert!(report.record_count <= records_max, "{report:?}");
    match report.tail {
        TailClass::Clean => {}
        TailClass::Torn { offset, dirty_end } => {
            assert_eq!(offset, report.records_end, "{report:?}");
            assert!(offset < dirty_end && dirty_end <= size, "{report:?}");
        }
        TailClass::Corrupt {
            offset,
            dirty_end,
            next_valid_offset,
        } => {
            assert_eq!(offset, report.records_end, "{report:?}");
            assert!(dirty_end <= size, "{report:?}");
            assert!(
                offset <= next_valid_offset && next_valid_offset < size,
                "{report:?}"
            );
        }
    }
}

/// Scans with the smallest scratch the device allows and with 64 KiB: both
/// must agree.
fn scan_both(device: &mut RamDevice, start: u64, header: &SegmentHeader) -> ScanReport {
    let read_size = device.geometry().read_size_bytes as usize;
    let smallest = SCAN_SCRATCH_MIN_BYTES.div_ceil(read_size) * read_size;
    let mut small = vec![0u8; smallest];
    let mut large = vec![0u8; SEQUENTIAL_WINDOW_BYTES as usize];
    // The floor is the documented minimum itself, whatever the read unit.
    let too_small = recovery::scan(
        device,
        start,
        header,
        &mut small[..SCAN_SCRATCH_MIN_BYTES - 1],
    );
    assert!(
        matches!(too_small, Err(Error::Config(_))),
        "a scratch under the minimum: {too_small:?}"
    );
    let a = no_bad_request(recovery::scan(device, start, header, &mut small), "scan");
    let b = no_bad_request(recovery::scan(device, start, header, &mut large), "scan");
    let (a, b) = (a.expect("scan of a healthy device"), b.expect("scan"));
    assert_eq!(a, b, "the scan depends on its scratch size");
    check_report(header, &a);
    a
}

/// Walks every record the scan counted, reading each three ways.
fn read_all(
    device: &mut RamDevice,
    cursor: &mut SegmentCursor<Vec<u8>>,
    report: &ScanReport,
) -> Vec<(u64, Vec<u8>)> {
    let mut records = Vec::new();
    let mut offset = cursor.records_start();
    // A clean-close marker at the end is not a record: readers stop there.
    let end = u64::from(report.trailing_marker.unwrap_or(report.records_end));
    let mut into = vec![0u8; segwal_fuzz::PAYLOAD_BYTES_MAX.max(SEGMENT_BYTES_MAX as usize)];
    for _ in 0..=report.records_end / 8 {
        if offset >= end {
            break;
        }
        let sequential = cursor.read_record(device, offset, ReadHint::Sequential);
        let (next, payload) = match no_bad_request(sequential, "read_record") {
            Ok(record) => {
                assert_eq!(record.offset, offset);
                assert!(offset < record.next_offset && record.next_offset <= end);
                (record.next_offset, record.payload.to_vec())
            }
            Err(Error::NotARecord {
                reason: RecordDefect::Marker,
                ..
            }) => {
                let skipped = no_bad_request(cursor.skip_record(device, offset), "skip_record");
                let (next, is_marker) = skipped.expect("a marker the reader named");
                assert!(is_marker && offset < next && next <= end);
                offset = next;
                continue;
            }
            Err(e) => panic!(
                "record {} at offset {offset}, counted by the scan ({report:?}), does not read: {e}",
                records.len()
            ),
        };
        let random = no_bad_request(cursor.read_record(device, offset, ReadHint::Random), "read");
        let random = random.expect("read a second time, randomly");
        assert_eq!(&*random.payload, &payload[..], "hints disagree at {offset}");
        assert_eq!(random.next_offset, next);
        let copied = cursor.read_record_into(device, offset, ReadHint::Random, &mut into);
        let (len, after) = no_bad_request(copied, "read_record_into").expect("read into a buffer");
        assert_eq!(
            (&into[..len], after),
            (&payload[..], next),
            "read_record_into at {offset}"
        );
        records.push((offset, payload));
        offset = next;
    }
    assert_eq!(
        offset, end,
        "walking the records stopped short of the records end"
    );
    assert_eq!(records.len() as u64, report.record_count, "{report:?}");
    records
}

fn probe(device: &mut RamDevice, cursor: &mut SegmentCursor<Vec<u8>>, probe: &Probe, size: u64) {
    if let Some(flushed) = probe.flushed_offset {
        cursor.set_flushed_offset(u64::from(flushed));
    }
    let flushed = cursor.flushed_offset();
    let offset = u64::from(probe.offset) % (size + 64);
    let hint = if probe.sequential {
        ReadHint::Sequential
    } else {
        ReadHint::Random
    };
    if probe.skip {
        if let Ok((next, _)) = no_bad_request(cursor.skip_record(device, offset), "skip_record") {
            assert!(
                offset < next && next <= flushed,
                "skip {offset} -> {next} past {flushed}"
            );
        }
    } else if probe.into_len == 0 {
        if let Ok(record) = no_bad_request(cursor.read_record(device, offset, hint), "read") {
            assert!(offset < record.next_offset && record.next_offset <= flushed);
            assert!(record.payload.len() as u64 <= u64::from(cursor.header().record_len_max));
        }
    } else {
        let mut out = vec![0u8; usize::from(probe.into_len)];
        let result = cursor.read_record_into(device, offset, hint, &mut out);
        if let Ok((len, next)) = no_bad_request(result, "read_record_into") {
            assert!(len <= out.len() && offset < next && next <= flushed);
        }
    }
}

fn check_model(
    device: &mut RamDevice,
    start: u64,
    header: &SegmentHeader,
    report: &ScanReport,
    read: &[(u64, Vec<u8>)],
    written: &Written,
) {
    assert_eq!(
        Some(*header),
        written.header,
        "the header read is not the one written"
    );
    assert_eq!(
        report.record_count,
        written.records.len() as u64,
        "scan of an undamaged segment: {report:?}"
    );
    if report.holes_skipped == 0 {
        assert_eq!(read, &written.records[..], "records read back differ");
    }
    let mut cursor = SegmentCursor::with_header::<RamError>(
        &device.geometry(),
        start,
        *header,
        vec![0u8; SEQUENTIAL_WINDOW_BYTES as usize],
    )
    .expect("a full window buffer");
    cursor.set_flushed_offset(u64::from(header.segment_size_bytes));
    for (offset, payload) in &written.records {
        let record = cursor.read_record(device, *offset, ReadHint::Random);
        let record = no_bad_request(record, "read").unwrap_or_else(|e| {
            panic!("appended record at {offset} does not read: {e}");
        });
        assert_eq!(&*record.payload, &payload[..], "record at {offset}");
    }
    let mut scratch = vec![0u8; SEQUENTIAL_WINDOW_BYTES as usize];
    let clean = recovery::find_clean_close(device, start, header, &mut scratch);
    let clean = no_bad_request(clean, "find_clean_close").expect("find_clean_close");
    let found = clean.map(|c| (c.marker_offset, c.record_count));
    assert_eq!(found, written.marker, "the clean-close search");
    if let Some((marker, _)) = written.marker {
        assert_eq!(report.trailing_marker, Some(marker), "{report:?}");
    }
}

fuzz_target!(|input: Input| {
    let (mut device, start, written) = build(&input);
    let header = match no_bad_request(read_segment_header(&mut device, start), "header") {
        Ok(header) => header,
        Err(_) => {
            let opened = SegmentCursor::open(&mut device, start, vec![0u8; input.buffer.len()]);
            assert!(
                opened.is_err(),
                "a cursor opened a segment whose header is bad"
            );
            assert!(
                written
                    .as_ref()
                    .is_none_or(|w| w.header.is_none() || w.damaged),
                "the header the writer wrote does not read"
            );
            return;
        }
    };
    let report = scan_both(&mut device, start, &header);
    let mut scratch = vec![0u8; SEQUENTIAL_WINDOW_BYTES as usize];
    let clean = recovery::find_clean_close(&mut device, start, &header, &mut scratch);
    if let Ok(Some(clean)) = no_bad_request(clean, "find_clean_close") {
        assert!(clean.marker_offset >= header.records_start());
        assert!(clean.marker_offset < header.segment_size_bytes);
    }

    let geometry = device.geometry();
    let buffer = vec![0u8; input.buffer.len()];
    let cursor = SegmentCursor::with_header::<RamError>(&geometry, start, header, buffer);
    let Ok(mut cursor) = cursor else {
        // Only a buffer under one random read, in read units, is refused.
        let usable = input.buffer.len() - input.buffer.len() % geometry.read_size_bytes as usize;
        assert!((usable as u64) < RANDOM_READ_BYTES);
        return;
    };
    let usable = input.buffer.len() - input.buffer.len() % geometry.read_size_bytes as usize;
    let strict = cursor.recover_flushed_offset(&mut device, RecoveryMode::Strict);
    match no_bad_request(strict, "recover_flushed_offset") {
        // A reader's buffer may be big enough to read but too small to
        // scan with: then the caller says how far to read.
        Err(Error::Config(_)) if usable < SCAN_SCRATCH_MIN_BYTES => {
            cursor.set_flushed_offset(u64::from(
                report.trailing_marker.unwrap_or(report.records_end),
            ));
        }
        strict => {
            assert_eq!(
                strict.is_err(),
                matches!(report.tail, TailClass::Corrupt { .. }),
                "strict recovery refuses exactly a corrupt middle: {strict:?} vs {report:?}"
            );
            let lenient =
                cursor.recover_flushed_offset(&mut device, RecoveryMode::TruncateAtCorruption);
            let lenient = no_bad_request(lenient, "recover_flushed_offset").expect("lenient");
            assert_eq!(lenient, report, "the reader's scan differs");
        }
    }
    assert_eq!(
        cursor.flushed_offset(),
        u64::from(report.trailing_marker.unwrap_or(report.records_end))
    );

    let read = if report.holes_skipped == 0 {
        read_all(&mut device, &mut cursor, &report)
    } else {
        Vec::new()
    };
    if let Some(written) = written.as_ref().filter(|w| !w.damaged) {
        check_model(&mut device, start, &header, &report, &read, written);
    }

    let mut user_area = vec![0u8; header.user_area_len_bytes as usize];
    let _ = no_bad_request(
        cursor.read_user_area(&mut device, &mut user_area),
        "user area",
    );
    let size = u64::from(header.segment_size_bytes);
    for p in input.probes.iter().take(PROBES_MAX) {
        probe(&mut device, &mut cursor, p, size);
    }
});
