//! `recover_image`: arbitrary device images through `Wal::open`.
//!
//! The input builds a store of one to four segments, each on its own file,
//! sector or NOR flash device at a fuzz-chosen offset, under fuzz-chosen ids
//! (named by sequence, as a directory of files is, or by slot). Either
//! freely: blank space, raw bytes, a valid header with fuzz-chosen chain
//! fields over raw bytes, or a segment the log's writer built and then
//! tore or damaged; or as a valid chain: segments the writer built with
//! sequences, predecessors and base LSNs that line up, only the newest with
//! a torn tail left in place, maybe a blank segment from an allocation cut
//! short.
//!
//! The log is opened strict or point-in-time, verifying the tail or every
//! segment, read-only or read-write. Checked on every input: nothing
//! panics, and whenever open succeeds:
//! - iteration yields dense LSNs from `first_lsn`, and `read(lsn)` returns
//!   the same bytes for every LSN iteration returned;
//! - when `verify` finds nothing wrong, iteration reaches `next_lsn`;
//! - read-write: an append reads back, and after `close` the log reopens to
//!   the same LSNs with the same bytes, the append included.
//!
//! For a valid chain, also: open succeeds in every mode, the log holds
//! exactly the records the writer appended under their LSNs, and `verify`
//! finds nothing wrong.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use segwal::{
    Error, ErrorKind, Lsn, OpenVerification, RecoveryMode, SCAN_SCRATCH_MIN_BYTES,
    SEQUENTIAL_WINDOW_BYTES, SegmentIdentity, Wal, WalConfig,
};
use segwal_fuzz::{
    Fill, GeometryChoice, HeaderFields, ImageStore, SEGMENT_BYTES_MAX, UNIT_BYTES, WriteLimits,
    WriteOp, header_image, image_with, write_segment,
};
use segwal_ram::RamDevice;

/// Segments the log may track: more than an input builds, so only a
/// rotation after open can run out.
const SEGMENTS_MAX: usize = 8;

/// Segments an input builds.
const BUILT_SEGMENTS_MAX: usize = 4;

/// Records read by iteration, at most (the store holds fewer).
const ITER_MAX: usize = 4096;

/// Extra LSNs read by number.
const READS_MAX: usize = 8;

type FuzzWal = Wal<ImageStore, Vec<u8>, SEGMENTS_MAX>;

#[derive(Arbitrary, Debug)]
enum Content {
    Blank,
    Raw(Vec<u8>),
    Header {
        fields: HeaderFields,
        body: Vec<u8>,
    },
    Written {
        fields: HeaderFields,
        user_area_seed: u64,
        ops: Vec<WriteOp>,
    },
}

#[derive(Arbitrary, Debug)]
struct SegmentSpec {
    id: u8,
    start_units: u8,
    size_units: u8,
    content: Content,
}

#[derive(Arbitrary, Debug)]
struct ChainSegment {
    start_units: u8,
    ops: Vec<WriteOp>,
}

#[derive(Arbitrary, Debug)]
struct ChainSpec {
    first_sequence: u8,
    /// The first segment's predecessor was checkpointed away.
    predecessor_gone: bool,
    base_lsn: u32,
    salt: u64,
    fields: HeaderFields,
    segments: Vec<ChainSegment>,
    /// A blank segment from an allocation cut short sits after the chain.
    unfinished: bool,
    /// Slot ids start here (stores not named by sequence).
    first_slot: u8,
}

#[derive(Arbitrary, Debug)]
enum Layout {
    Free(Vec<SegmentSpec>),
    Chain(ChainSpec),
}

#[derive(Arbitrary, Debug)]
struct Input {
    geometry: GeometryChoice,
    named_by_sequence: bool,
    read_only: bool,
    strict: bool,
    full_verification: bool,
    small_buffer: bool,
    /// Segment size of segments the log creates.
    size_units: u8,
    layout: Layout,
    reads: Vec<u16>,
    append: Option<(u16, Fill)>,
}

/// Records the log must hold: its first LSN and the payloads from there.
struct Expected {
    first_lsn: u64,
    payloads: Vec<Vec<u8>>,
}

fn unit_offset(units: u8) -> u64 {
    u64::from(units % 4) * u64::from(UNIT_BYTES)
}

fn free_segment(geometry: GeometryChoice, spec: &SegmentSpec) -> (RamDevice, u64) {
    let start = unit_offset(spec.start_units);
    let units = u64::from(spec.size_units) % u64::from(SEGMENT_BYTES_MAX / UNIT_BYTES) + 1;
    let raw_size = units * u64::from(UNIT_BYTES);
    let raw = |bytes: &[u8]| {
        let geometry = geometry.geometry(start + raw_size);
        RamDevice::from_image(geometry, image_with(&geometry, start as usize, bytes))
    };
    let device = match &spec.content {
        Content::Blank => raw(&[]),
        Content::Raw(bytes) => raw(bytes),
        Content::Header { fields, body } => match fields.header() {
            Some(header) => {
                let size = u64::from(header.segment_size_bytes);
                let geometry = geometry.geometry(start + size);
                let image = header_image(&geometry, start as usize, &header, body);
                RamDevice::from_image(geometry, image)
            }
            None => raw(body),
        },
        Content::Written {
            fields,
            user_area_seed,
            ops,
        } => {
            let config = fields.config();
            let device = geometry.device(start + u64::from(config.segment_size_bytes));
            let limits = WriteLimits {
                allow_damage: true,
                may_leave_torn_tail: true,
            };
            let identity = fields.identity();
            write_segment(
                device,
                start,
                &config,
                identity,
                *user_area_seed,
                ops,
                limits,
            )
            .device
        }
    };
    (device, start)
}

/// Builds a chain the log itself could have left; `None` when the writer
/// refused the layout.
fn chain(input: &Input, spec: &ChainSpec, store: &mut ImageStore) -> Option<Expected> {
    let config = spec.fields.config();
    let first_sequence = u64::from(spec.first_sequence) + 1;
    let first_lsn = u64::from(spec.base_lsn).max(1);
    let mut expected = Expected {
        first_lsn,
        payloads: Vec::new(),
    };
    let count = spec.segments.len().clamp(1, BUILT_SEGMENTS_MAX);
    let mut next_slot = u64::from(spec.first_slot);
    let mut id_for = |sequence: u64| {
        if input.named_by_sequence {
            sequence
        } else {
            next_slot += 1;
            next_slot
        }
    };
    for index in 0..count {
        let sequence = first_sequence + index as u64;
        let prev_sequence = match index {
            0 if spec.predecessor_gone => sequence - 1,
            0 => sequence,
            _ => sequence - 1,
        };
        let identity = SegmentIdentity {
            sequence,
            base_lsn: first_lsn + expected.payloads.len() as u64,
            salt: spec.salt ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            prev_sequence,
        };
        let segment = spec.segments.get(index);
        let start = unit_offset(segment.map_or(0, |s| s.start_units));
        // A sealed segment always holds a record: the log only rotates
        // for a record that does not fit, and never seals an empty one.
        let mut ops = Vec::new();
        if index + 1 < count {
            ops.push(WriteOp::Append {
                len: 1,
                fill: Fill::Byte(0xA5),
            });
        }
        ops.extend(segment.iter().flat_map(|s| s.ops.iter().cloned()));
        let device = input
            .geometry
            .device(start + u64::from(config.segment_size_bytes));
        let limits = WriteLimits {
            allow_damage: false,
            may_leave_torn_tail: index + 1 == count,
        };
        let written = write_segment(device, start, &config, identity, spec.salt, &ops, limits);
        written.header?;
        assert!(!written.damaged);
        if index + 1 < count && written.records.is_empty() {
            // No room for a record: the log would have refused to rotate.
            return None;
        }
        expected
            .payloads
            .extend(written.records.into_iter().map(|(_, payload)| payload));
        store.insert(id_for(sequence), written.device, start);
    }
    if spec.unfinished {
        let size = u64::from(config.segment_size_bytes);
        store.insert(
            id_for(first_sequence + count as u64),
            input.geometry.device(size),
            0,
        );
    }
    Some(expected)
}

fn config(input: &Input) -> WalConfig {
    WalConfig {
        segment_size_bytes: (u32::from(input.size_units) % 16 + 1) * UNIT_BYTES,
        durability: segwal::Durability::Sync,
        recovery_mode: if input.strict {
            RecoveryMode::Strict
        } else {
            RecoveryMode::TruncateAtCorruption
        },
        verification: if input.full_verification {
            OpenVerification::Full
        } else {
            OpenVerification::Tail
        },
        read_only: input.read_only,
        ..WalConfig::default()
    }
}

fn buffer(input: &Input) -> Vec<u8> {
    let len = if input.small_buffer {
        SCAN_SCRATCH_MIN_BYTES
    } else {
        SEQUENTIAL_WINDOW_BYTES as usize
    };
    vec![0u8; len]
}

/// Panics on a device error: the devices never fail, so one means the log
/// asked for a range off the device or its alignment.
fn no_bad_request<T>(
    result: Result<T, Error<ErrorKind>>,
    what: &str,
) -> Result<T, Error<ErrorKind>> {
    if let Err(Error::Device(kind)) = &result {
        panic!("{what}: the log made a device request the device refused: {kind:?}");
    }
    result
}

/// Everything iteration returns, checked dense; and whether it reached
/// `next_lsn`.
fn contents(wal: &mut FuzzWal) -> (Vec<(u64, Vec<u8>)>, bool) {
    let first = wal.first_lsn().0;
    let next = wal.next_lsn().0;
    assert!(first <= next, "first LSN {first} after next {next}");
    let mut records = Vec::new();
    let mut iter = wal.iter();
    let mut complete = false;
    for _ in 0..ITER_MAX {
        match iter.next_record() {
            None => {
                complete = true;
                break;
            }
            Some(Ok((lsn, payload))) => {
                let expected = first + records.len() as u64;
                assert_eq!(lsn.0, expected, "iteration skipped or repeated an LSN");
                records.push((lsn.0, payload.to_vec()));
            }
            Some(Err(e)) => {
                let _ = no_bad_request::<()>(Err(e), "iteration");
                break;
            }
        }
    }
    if complete {
        assert_eq!(
            first + records.len() as u64,
            next,
            "iteration ended early without an error"
        );
    }
    for (lsn, payload) in &records {
        let read = no_bad_request(wal.read(Lsn(*lsn)).map(|p| p.to_vec()), "read");
        let read = read.unwrap_or_else(|e| panic!("LSN {lsn} iterates but does not read: {e}"));
        assert_eq!(&read, payload, "iteration and read disagree at LSN {lsn}");
    }
    (records, complete)
}

/// Returns whether the log is sound: every LSN reads and `verify` finds
/// nothing wrong.
fn check_open(wal: &mut FuzzWal, input: &Input, expected: Option<&Expected>) -> bool {
    let (records, complete) = contents(wal);
    let report = no_bad_request(wal.verify(), "verify").expect("verify");
    if report.is_clean() {
        assert!(
            complete,
            "verify is clean but LSN {} does not read",
            wal.first_lsn().0 + records.len() as u64
        );
    }
    if let Some(expected) = expected {
        assert!(report.is_clean(), "verify of a valid log: {report:?}");
        assert_eq!(
            wal.first_lsn().0,
            expected.first_lsn,
            "first LSN of a valid log"
        );
        let payloads: Vec<&Vec<u8>> = records.iter().map(|(_, p)| p).collect();
        let wanted: Vec<&Vec<u8>> = expected.payloads.iter().collect();
        assert_eq!(payloads, wanted, "the records of a valid log");
        assert!(complete);
    }
    let (first, next) = (wal.first_lsn().0, wal.next_lsn().0);
    for &r in input.reads.iter().take(READS_MAX) {
        let span = (next - first).saturating_add(3);
        let lsn = first.saturating_sub(1).saturating_add(u64::from(r) % span);
        let _ = no_bad_request(wal.read(Lsn(lsn)).map(|p| p.len()), "read");
    }
    complete && report.is_clean()
}

/// Read-write: append, read back, close, reopen to the same log. A log
/// that was not sound (damage a tail-verified open does not look for) may
/// refuse the reopen: the clean-close marker that let the first open skip
/// the damaged records may not be found again.
fn check_reopen(mut wal: FuzzWal, input: &Input, sound: bool) {
    let (mut before, complete) = contents(&mut wal);
    if let Some((len, fill)) = input.append {
        let payload = fill.payload(len, wal.next_lsn().0);
        let next = wal.next_lsn();
        match no_bad_request(wal.append(&payload), "append") {
            Ok(lsn) => {
                assert_eq!(lsn, next, "append took another LSN than next_lsn");
                // Damage before it (which a tail-verified open does not
                // look for) may hide it from a read by LSN; else it reads.
                if complete {
                    let read = wal.read(lsn).map(|p| p.to_vec());
                    assert_eq!(
                        read.ok().as_ref(),
                        Some(&payload),
                        "an append does not read back"
                    );
                    before.push((lsn.0, payload));
                }
            }
            Err(_) => assert_eq!(wal.next_lsn(), next),
        }
    }
    let (first, next) = (wal.first_lsn(), wal.next_lsn());
    let store = no_bad_request(wal.close(), "close").expect("close of a healthy log");
    let reopened = no_bad_request(Wal::open(store, config(input), buffer(input)), "reopen");
    let mut reopened: FuzzWal = match reopened {
        Ok(wal) => wal,
        Err(_) if !sound => return,
        Err(e) => panic!("a sound log that opened and closed does not reopen: {e}"),
    };
    if !sound {
        let _ = contents(&mut reopened);
        return;
    }
    assert_eq!(
        (reopened.first_lsn(), reopened.next_lsn()),
        (first, next),
        "reopen moved the log"
    );
    let (after, _) = contents(&mut reopened);
    let common = before.len().min(after.len());
    assert!(
        after.len() >= before.len(),
        "reopen lost records: {} then {}",
        before.len(),
        after.len()
    );
    assert_eq!(before[..common], after[..common], "reopen changed records");
}

fuzz_target!(|input: Input| {
    let mut store = ImageStore::new(input.named_by_sequence, input.geometry, 0x5EED);
    let expected = match &input.layout {
        Layout::Free(specs) => {
            for spec in specs.iter().take(BUILT_SEGMENTS_MAX) {
                let (device, start) = free_segment(input.geometry, spec);
                store.insert(u64::from(spec.id), device, start);
            }
            None
        }
        Layout::Chain(spec) => match chain(&input, spec, &mut store) {
            Some(expected) => Some(expected),
            None => return,
        },
    };
    let opened: Result<FuzzWal, _> = Wal::open(store, config(&input), buffer(&input));
    let mut wal = match no_bad_request(opened, "open") {
        Ok(wal) => wal,
        Err(e) => {
            assert!(expected.is_none(), "a valid log does not open: {e}");
            return;
        }
    };
    let sound = check_open(&mut wal, &input, expected.as_ref());
    if !input.read_only && !wal.is_poisoned() {
        check_reopen(wal, &input, sound);
    }
});
