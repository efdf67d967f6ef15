//! Crash safety of the multi-segment log at every store operation and
//! inside every write.
//!
//! Six workloads run on the core `Wal` over a `RamStore` with 4 KiB
//! segments: appends that rotate across several segments; checkpoints;
//! `truncate_after` inside the active segment; `truncate_after` inside a
//! sealed segment (then back to an empty log); batches that cross a segment
//! boundary, one larger than a single device write; and a seeded mix of all
//! of them with clean closes. Each runs under three seeds (the printed one
//! and two derived from it, which move every segment boundary).
//!
//! Each workload first runs without a power cut, checked operation by
//! operation against a `LogModel`, counting its store operations (writes,
//! erases, syncs, allocations, releases). Then it runs again from the same
//! prefix state with the power cut: after each `n` in `0..=count`
//! operations, and inside the writes every 23 bytes (the unit holding that
//! byte torn to zeros, random bytes or the old contents). Each run stops at
//! its first error and the store is rebooted under every crash model its
//! unsynced writes allow (every subset in every order for up to three,
//! every subset for up to eight). Each reboot must reopen to the state
//! after the last acknowledged operation or to the one after the operation
//! in flight: every acknowledged record present with its LSN and bytes,
//! LSNs dense from the first, no record that was never appended, a
//! checkpoint between its old and its new first LSN, a truncation whole or
//! not at all. `verify` must then find nothing wrong, a second power cut
//! right after recovery must change nothing, and one more append must
//! survive a clean close and reopen.
//!
//! The crash states explored are printed (`--nocapture`) and must reach a
//! floor computed from the fewest store operations, and the bytes of
//! records, each workload must take. Tearing runs in 16-byte units; tearing
//! at any byte, which a byte-addressable device allows, is its own test.

use segwal_tests::wal_support;

use segwal::{Error, Lsn, WalConfig, WalTailState};
use segwal_ram::{CrashModel, FaultPlan, RamStore, Survivors, TornFill};
use wal_support::{
    LogContents, LogModel, RamWal, RamWalError, open_ram, payload, payload_with_len, ram_config,
    ram_contents,
};

const SEGMENT_BYTES: u32 = 4096;

/// Records one device write of a batch carries at most.
const BATCH_RECORDS_PER_WRITE: usize = segwal::BATCH_RECORDS_PER_WRITE;

fn config() -> WalConfig {
    ram_config(SEGMENT_BYTES)
}

/// One operation of a workload.
#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Batch(Vec<Vec<u8>>),
    Checkpoint(u64),
    TruncateAfter(u64),
    /// `close_in_place`: a clean-close marker the next append must wipe.
    Close,
}

/// A workload: the state it starts from and what it does.
struct Workload {
    name: &'static str,
    /// The store after the prefix; every run starts from a copy of it.
    prefix: RamStore,
    prefix_model: LogModel,
    ops: Vec<Op>,
    /// Segments the workload must create (rotations and truncations): the
    /// proof it exercises what its name says.
    segments_created_min: u64,
    /// Segments it must release (checkpoints and truncations).
    segments_released_min: u64,
    /// Batches that must start a new segment (they did not fit).
    crossing_batches_min: usize,
}

/// What the run without a power cut found.
struct Baseline {
    /// The model after the prefix and after each operation.
    states: Vec<LogModel>,
    operations: u64,
    operations_floor: u64,
    /// Bytes of the records the workload appends: fewer than it writes.
    bytes_floor: u64,
}

/// Payload tags of workload `index`: distinct from every other workload's.
fn tags(index: u64) -> impl FnMut() -> u64 {
    let mut next = index << 32;
    move || {
        next += 1;
        next
    }
}

/// Builds the prefix: `count` synced appends on a fresh store, then a clean
/// close (`close`) or a copy of the store as the log left it.
fn prefix(seed: u64, count: u64, next_tag: &mut impl FnMut() -> u64) -> (RamWal, LogModel) {
    let mut wal = open_ram(RamStore::new(seed), config()).expect("open a new log");
    let mut model = LogModel::new();
    for _ in 0..count {
        append_prefix(&mut wal, &mut model, payload(seed, next_tag()));
    }
    (wal, model)
}

fn append_prefix(wal: &mut RamWal, model: &mut LogModel, bytes: Vec<u8>) {
    let lsn = wal.append(&bytes).expect("prefix append");
    assert_eq!(lsn.0, model.append(bytes), "prefix LSN");
}

/// The store a workload starts from: closed cleanly (a marker to wipe on
/// the first append) or as an open log leaves it (everything synced).
fn finish_prefix(mut wal: RamWal, clean_close: bool) -> RamStore {
    if clean_close {
        wal.close().expect("close the prefix")
    } else {
        wal.store_mut().reboot(Survivors::Live)
    }
}

fn appends(seed: u64, count: u64, next_tag: &mut impl FnMut() -> u64) -> Vec<Op> {
    (0..count)
        .map(|_| Op::Append(payload(seed, next_tag())))
        .collect()
}

fn rotation(seed: u64) -> Workload {
    let mut next_tag = tags(1);
    let (wal, model) = prefix(seed, 5, &mut next_tag);
    Workload {
        name: "rotation",
        prefix: finish_prefix(wal, true),
        prefix_model: model,
        ops: appends(seed, 80, &mut next_tag),
        segments_created_min: 3,
        segments_released_min: 0,
        crossing_batches_min: 0,
    }
}

fn checkpoint(seed: u64) -> Workload {
    let mut next_tag = tags(2);
    let (wal, model) = prefix(seed, 120, &mut next_tag);
    let segments = wal.segments().to_vec();
    assert!(
        segments.len() >= 5,
        "checkpoint prefix: {} segments",
        segments.len()
    );
    // The first record of the fourth segment: the three before it go.
    let first_cut = segments[3].header.base_lsn;
    let mut ops = vec![Op::Checkpoint(first_cut)];
    ops.extend(appends(seed, 5, &mut next_tag));
    // Everything but the active segment.
    ops.push(Op::Checkpoint(model.next_lsn() + 5 - 1));
    ops.extend(appends(seed, 3, &mut next_tag));
    Workload {
        name: "checkpoint",
        prefix: finish_prefix(wal, false),
        prefix_model: model,
        ops,
        segments_created_min: 0,
        segments_released_min: 4,
        crossing_batches_min: 0,
    }
}

fn truncate_in_active(seed: u64) -> Workload {
    let mut next_tag = tags(3);
    let (mut wal, mut model) = prefix(seed, 60, &mut next_tag);
    // At least four records in the active segment, so the cut falls
    // strictly inside it. Bounded: a segment holds a few dozen records.
    for _ in 0..100 {
        let active_base = wal.segments().last().expect("a segment").header.base_lsn;
        if model.next_lsn() - active_base >= 4 {
            break;
        }
        append_prefix(&mut wal, &mut model, payload(seed, next_tag()));
    }
    let active_base = wal.segments().last().expect("a segment").header.base_lsn;
    let cut = active_base + (model.next_lsn() - active_base) / 2;
    assert!(
        active_base <= cut && cut + 1 < model.next_lsn(),
        "cut {cut} inside the active segment"
    );
    let mut ops = vec![Op::TruncateAfter(cut)];
    ops.extend(appends(seed, 30, &mut next_tag));
    Workload {
        name: "truncate_after in the active segment",
        prefix: finish_prefix(wal, true),
        prefix_model: model,
        ops,
        segments_created_min: 2,
        segments_released_min: 0,
        crossing_batches_min: 0,
    }
}

fn truncate_in_sealed(seed: u64) -> Workload {
    let mut next_tag = tags(4);
    let (wal, model) = prefix(seed, 100, &mut next_tag);
    let segments = wal.segments().to_vec();
    assert!(
        segments.len() >= 4,
        "truncate prefix: {} segments",
        segments.len()
    );
    // Inside the segment two before the active one: it and the next
    // sealed one are cut off with the active segment.
    let sealed = &segments[segments.len() - 3];
    let cut = sealed.header.base_lsn + 2;
    let sealed_end = segments[segments.len() - 2].header.base_lsn;
    assert!(
        cut + 1 < sealed_end,
        "cut {cut} strictly inside a sealed segment"
    );
    let mut ops = vec![Op::TruncateAfter(cut)];
    ops.extend(appends(seed, 30, &mut next_tag));
    // Back to an empty log: the new first segment starts at LSN 1 again.
    ops.push(Op::TruncateAfter(0));
    ops.extend(appends(seed, 5, &mut next_tag));
    Workload {
        name: "truncate_after in a sealed segment",
        prefix: finish_prefix(wal, false),
        prefix_model: model,
        ops,
        segments_created_min: 2,
        segments_released_min: 3,
        crossing_batches_min: 0,
    }
}

fn batch_crossing(seed: u64) -> Workload {
    let mut next_tag = tags(5);
    let (mut wal, mut model) = prefix(seed, 10, &mut next_tag);
    // Fill the active segment until the first batch cannot fit. Bounded:
    // every append takes at least 16 bytes of a 4 KiB segment.
    for _ in 0..SEGMENT_BYTES / 16 {
        if u64::from(SEGMENT_BYTES) - wal.active_written_bytes() < 500 {
            break;
        }
        let len = usize::try_from(seed.wrapping_add(next_tag()) % 100).expect("small");
        append_prefix(
            &mut wal,
            &mut model,
            payload_with_len(seed, next_tag(), len),
        );
    }
    let mut batch = |count: usize, low: u64, high: u64| {
        let mut rng = wal_support::Rng::new(seed ^ next_tag());
        let payloads = (0..count)
            .map(|_| {
                let len = usize::try_from(rng.between(low, high)).expect("small");
                payload_with_len(seed, next_tag(), len)
            })
            .collect();
        Op::Batch(payloads)
    };
    // 6 records of at least 136 bytes each: more than the 500 left.
    let first = batch(6, 120, 200);
    // 40 records of 56 bytes: fits after the first, in two device writes.
    let second = batch(BATCH_RECORDS_PER_WRITE + 8, 40, 40);
    // The same again no longer fits: a new segment, two writes again.
    let third = batch(BATCH_RECORDS_PER_WRITE + 8, 40, 40);
    Workload {
        name: "append_batch crossing a segment boundary",
        prefix: finish_prefix(wal, true),
        prefix_model: model,
        ops: vec![first, second, third],
        segments_created_min: 2,
        segments_released_min: 0,
        crossing_batches_min: 2,
    }
}

/// A random mix of every operation, each chosen from the log's state as a
/// copy of it runs: truncations to segment boundaries and between them,
/// checkpoints, clean closes followed by appends, batches.
fn mixed(seed: u64) -> Workload {
    let mut next_tag = tags(6);
    let (wal, model) = prefix(seed, 30, &mut next_tag);
    let store = finish_prefix(wal, false);
    let mut scratch = open_ram(store.reboot(Survivors::Live), config()).expect("open a copy");
    let mut rng = wal_support::Rng::new(seed ^ 6);
    let mut ops = Vec::new();
    for _ in 0..40 {
        let (first, next) = (scratch.first_lsn().0, scratch.next_lsn().0);
        let segments = scratch.segments().to_vec();
        let roll = rng.between(0, 99);
        let op = if roll < 45 || next == first {
            Op::Append(payload(seed, next_tag()))
        } else if roll < 60 {
            let count = rng.between(1, 5);
            Op::Batch((0..count).map(|_| payload(seed, next_tag())).collect())
        } else if roll < 70 && !matches!(ops.last(), Some(Op::Close)) {
            Op::Close
        } else if roll < 82 && segments.len() > 1 {
            Op::Checkpoint(rng.between(first, next - 1))
        } else if rng.percent(50) {
            // The last record of a segment: a cut on a segment boundary.
            let index = usize::try_from(rng.between(0, segments.len() as u64 - 1)).expect("small");
            Op::TruncateAfter(segments[index].header.base_lsn - 1)
        } else {
            Op::TruncateAfter(rng.between(first - 1, next - 1))
        };
        apply(&mut scratch, &op).unwrap_or_else(|e| panic!("mixed: {}: {e}", describe(&op)));
        ops.push(op);
    }
    Workload {
        name: "mixed",
        prefix: store,
        prefix_model: model,
        ops,
        segments_created_min: 1,
        segments_released_min: 0,
        crossing_batches_min: 0,
    }
}

fn apply(wal: &mut RamWal, op: &Op) -> Result<(), RamWalError> {
    match op {
        Op::Append(bytes) => wal.append(bytes).map(drop),
        Op::Batch(payloads) => {
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            wal.append_batch(&refs).map(drop)
        }
        Op::Checkpoint(lsn) => wal.checkpoint(Lsn(*lsn)).map(drop),
        Op::TruncateAfter(lsn) => wal.truncate_after(Lsn(*lsn)),
        Op::Close => wal.close_in_place(),
    }
}

fn open_prefix(workload: &Workload, context: &str) -> RamWal {
    let wal = open_ram(workload.prefix.reboot(Survivors::Live), config())
        .unwrap_or_else(|e| panic!("{context}: open the prefix: {e}"));
    assert_eq!(
        (wal.first_lsn().0, wal.next_lsn().0),
        (
            workload.prefix_model.first_lsn,
            workload.prefix_model.next_lsn()
        ),
        "{context}: prefix"
    );
    wal
}

/// Runs the workload without a power cut, checking each operation against
/// the model; returns the model after every step and the operation count.
fn baseline(workload: &Workload, seed: u64) -> Baseline {
    let context = format!("{} (seed {seed:#x}, no power cut)", workload.name);
    let mut wal = open_prefix(workload, &context);
    let mut model = workload.prefix_model.clone();
    let mut states = vec![model.clone()];
    let start_operations = wal.store_mut().operations();
    let start_sequence = wal.segments().last().expect("a segment").header.sequence;
    let start_segments = wal.segment_count() as u64;
    let mut floor = 0u64;
    let mut bytes_floor = 0u64;
    let mut crossing = 0;
    for (index, op) in workload.ops.iter().enumerate() {
        let context = format!("{context}: operation {index} {}", describe(op));
        let sequence_before = wal.segments().last().expect("a segment").header.sequence;
        apply(&mut wal, op).unwrap_or_else(|e| panic!("{context}: {e}"));
        match op {
            Op::Append(bytes) => {
                model.append(bytes.clone());
                floor += 2; // the write and its sync
                bytes_floor += wal_support::extent(bytes.len());
            }
            Op::Batch(payloads) => {
                let first = model.next_lsn();
                for bytes in payloads {
                    model.append(bytes.clone());
                    bytes_floor += wal_support::extent(bytes.len());
                }
                floor += payloads.len().div_ceil(BATCH_RECORDS_PER_WRITE) as u64 + 1;
                let active = wal.segments().last().expect("a segment").header;
                if active.sequence != sequence_before && active.base_lsn == first {
                    crossing += 1;
                }
            }
            Op::Checkpoint(lsn) => {
                let first = wal.first_lsn().0;
                assert!(first <= lsn + 1, "{context}: removed records above {lsn}");
                if let Some(second) = wal.segments().get(1) {
                    assert!(
                        second.header.base_lsn > lsn + 1,
                        "{context}: a segment with only records <= {lsn} was kept"
                    );
                }
                model.drop_before(first);
            }
            Op::TruncateAfter(lsn) => model.truncate_after(*lsn),
            // None when already closed, or when the marker does not fit.
            Op::Close => {}
        }
        assert_eq!(
            (wal.first_lsn().0, wal.next_lsn().0),
            (model.first_lsn, model.next_lsn()),
            "{context}"
        );
        states.push(model.clone());
    }
    let got = ram_contents(&mut wal).unwrap_or_else(|e| panic!("{context}: read back: {e}"));
    got.assert_matches(&model.contents(), &context);
    let created = wal.segments().last().expect("a segment").header.sequence - start_sequence;
    let released = start_segments + created - wal.segment_count() as u64;
    assert!(
        created >= workload.segments_created_min,
        "{context}: {created} segments created, the workload needs {}",
        workload.segments_created_min
    );
    assert!(
        released >= workload.segments_released_min,
        "{context}: {released} segments released, the workload needs {}",
        workload.segments_released_min
    );
    assert!(
        crossing >= workload.crossing_batches_min,
        "{context}: {crossing} batches started a segment, the workload needs {}",
        workload.crossing_batches_min
    );
    // A segment costs at least an allocation, a header write and a sync.
    floor += 3 * created + released;
    let operations = wal.store_mut().operations() - start_operations;
    assert!(
        operations >= floor,
        "{context}: {operations} store operations, below the floor of {floor}"
    );
    // Everything acknowledged is durable: a power cut now loses nothing.
    let store = wal.store_mut().reboot(Survivors::Durable);
    let mut reopened = open_ram(store, config()).unwrap_or_else(|e| panic!("{context}: {e}"));
    ram_contents(&mut reopened)
        .unwrap_or_else(|e| panic!("{context}: read back: {e}"))
        .assert_matches(
            &model.contents(),
            &format!("{context}, after a power cut at the end"),
        );
    Baseline {
        states,
        operations,
        operations_floor: floor,
        bytes_floor,
    }
}

fn describe(op: &Op) -> String {
    match op {
        Op::Append(bytes) => format!("append({} bytes)", bytes.len()),
        Op::Batch(payloads) => format!("append_batch({} records)", payloads.len()),
        Op::Checkpoint(lsn) => format!("checkpoint({lsn})"),
        Op::TruncateAfter(lsn) => format!("truncate_after({lsn})"),
        Op::Close => "close_in_place".to_owned(),
    }
}

/// `true` when `got` is `candidate`, allowing a first LSN anywhere between
/// `acked`'s and `candidate`'s (a checkpoint cut short).
fn is_state(got: &LogContents, acked: &LogModel, candidate: &LogModel) -> bool {
    let first_low = acked.first_lsn.min(candidate.first_lsn);
    let first_high = acked.first_lsn.max(candidate.first_lsn);
    got.next_lsn == candidate.next_lsn()
        && (first_low..=first_high).contains(&got.first_lsn)
        && (got.first_lsn..got.next_lsn).all(|lsn| {
            // Below the candidate's first LSN only while a checkpoint was in
            // flight, which changes no payload.
            let want = candidate.get(lsn).or_else(|| acked.get(lsn));
            want.is_some() && got.get(lsn) == want
        })
}

/// Reopens a rebooted store and checks it against the states the crash
/// allows; then verify, a second power cut, and append-close-reopen.
fn check_recovery(store: RamStore, states: &[LogModel], acked: usize, seed: u64, context: &str) {
    let mut wal =
        open_ram(store, config()).unwrap_or_else(|e| panic!("{context}: reopen failed: {e}"));
    let got = ram_contents(&mut wal).unwrap_or_else(|e| panic!("{context}: read back: {e}"));
    let in_flight = (acked + 1).min(states.len() - 1);
    let acked_state = &states[acked];
    assert!(
        (acked..=in_flight).any(|j| is_state(&got, acked_state, &states[j])),
        "{context}: recovered LSNs {}..{} match neither the state after the {acked} acknowledged \
         operations ({}..{}) nor the one after the operation in flight ({}..{})",
        got.first_lsn,
        got.next_lsn,
        acked_state.first_lsn,
        acked_state.next_lsn(),
        states[in_flight].first_lsn,
        states[in_flight].next_lsn()
    );
    let report = wal
        .verify()
        .unwrap_or_else(|e| panic!("{context}: verify: {e}"));
    assert!(
        report.is_clean(),
        "{context}: verify after recovery: {report:?}"
    );

    // Recovery's own repairs are durable: another power cut changes nothing.
    let again = wal.store_mut().reboot(Survivors::Durable);
    let mut second = open_ram(again, config())
        .unwrap_or_else(|e| panic!("{context}: reopen after a second power cut: {e}"));
    ram_contents(&mut second)
        .unwrap_or_else(|e| panic!("{context}: read back after a second power cut: {e}"))
        .assert_matches(&got, &format!("{context}, after a second power cut"));
    drop(second);

    // Recovery then append still works, and survives a clean close.
    let extra = payload(seed, u64::MAX - got.next_lsn);
    let lsn = wal
        .append(&extra)
        .unwrap_or_else(|e| panic!("{context}: append after recovery: {e}"));
    assert_eq!(
        lsn.0, got.next_lsn,
        "{context}: LSN of the append after recovery"
    );
    let store = wal
        .close()
        .unwrap_or_else(|e| panic!("{context}: close after recovery: {e}"));
    let mut wal =
        open_ram(store, config()).unwrap_or_else(|e| panic!("{context}: reopen after close: {e}"));
    assert_eq!(
        wal.tail_state(),
        WalTailState::Clean,
        "{context}: after close"
    );
    let mut want = got;
    want.records.push(extra);
    want.next_lsn += 1;
    ram_contents(&mut wal)
        .unwrap_or_else(|e| panic!("{context}: read back after close: {e}"))
        .assert_matches(&want, &format!("{context}, after append, close and reopen"));
}

/// Where the power fails.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// Between store operations, after this many of the workload's.
    AfterOperations(u64),
    /// Inside a write: at this byte of the workload's writes, counted across
    /// segments. The aligned unit of the given size holding that byte is
    /// torn with the given fill; the units before it land, the rest of the
    /// write never does.
    AtByte {
        byte: u64,
        unit_bytes: u32,
        fill: TornFill,
    },
}

/// Pending writes up to which every subset in every order is tried.
const ARRANGED_PENDING_MAX: usize = 3;
/// Pending writes up to which every subset (in issue order) is tried.
const SUBSET_PENDING_MAX: usize = 8;

/// The crash states a power cut with `pending` unsynced writes can leave:
/// which of them reached the medium, and in which order.
fn crash_models(pending: usize, seed: u64) -> Vec<CrashModel> {
    if pending <= ARRANGED_PENDING_MAX {
        CrashModel::all_arrangements(pending)
    } else if pending <= SUBSET_PENDING_MAX {
        CrashModel::all_subsets(pending).collect()
    } else {
        let random = (0..8).map(|k| CrashModel::Random { seed: seed ^ k });
        [CrashModel::Durable, CrashModel::Live]
            .into_iter()
            .chain(random)
            .collect()
    }
}

/// Runs the workload with the power failing at `cut`, then reboots under
/// every crash model its unsynced writes allow and checks each. Returns
/// the crash states checked and whether the power failed at all.
fn crash_at(workload: &Workload, states: &[LogModel], cut: Cut, seed: u64) -> (u64, bool) {
    let context = format!("{} (seed {seed:#x}) power cut {cut:?}", workload.name);
    let mut wal = open_prefix(workload, &context);
    match cut {
        Cut::AfterOperations(n) => wal.store_mut().cut_power_after(n),
        Cut::AtByte {
            byte,
            unit_bytes,
            fill,
        } => wal.store_mut().set_fault_plan(
            FaultPlan::new(seed ^ byte)
                .power_cut_at_byte(byte)
                .torn_unit_bytes(unit_bytes)
                .torn_fill(fill),
        ),
    }
    let mut acked = 0;
    for op in &workload.ops {
        match apply(&mut wal, op) {
            Ok(()) => acked += 1,
            Err(Error::Device(_) | Error::Poisoned) => break,
            Err(other) => panic!("{context}: {} failed with {other}", describe(op)),
        }
    }
    let power_cut = wal.store_mut().is_power_cut();
    let models = crash_models(wal.store_mut().pending_writes(), seed);
    for model in &models {
        let store = wal.store_mut().reboot_with(model);
        let context = format!("{context}, survivors {model:?}, {acked} acknowledged");
        check_recovery(store, states, acked, seed, &context);
    }
    (models.len() as u64, power_cut)
}

/// Bytes between two byte-level cuts: a prime, so successive cuts fall at
/// every position within records and headers.
const TORN_STRIDE_BYTES: u64 = 23;

/// Seeds derived from the printed one: each moves every segment boundary.
const SEEDS_PER_RUN: u64 = 3;

/// Every workload under every seed of the run, with its baseline.
fn workloads() -> Vec<(u64, Workload, Baseline)> {
    let base_seed = wal_support::seed(0x5E63_A1C4);
    let seeds = (0..SEEDS_PER_RUN).map(|k| base_seed.wrapping_add(k.wrapping_mul(0x9E37_79B9)));
    seeds
        .flat_map(|seed| {
            [
                rotation(seed),
                checkpoint(seed),
                truncate_in_active(seed),
                truncate_in_sealed(seed),
                batch_crossing(seed),
                mixed(seed),
            ]
            .map(|workload| {
                let baseline = baseline(&workload, seed);
                (seed, workload, baseline)
            })
        })
        .collect()
}

#[test]
fn every_power_cut_between_operations_recovers_to_an_acknowledged_state() {
    let (mut explored, mut floor) = (0u64, 0u64);
    for (seed, workload, baseline) in &workloads() {
        let mut here = 0;
        // n == operations: the power fails just after the last one.
        for n in 0..=baseline.operations {
            let cut = Cut::AfterOperations(n);
            here += crash_at(workload, &baseline.states, cut, *seed).0;
        }
        println!(
            "seed {seed:#x} {}: {} operations (floor {}), {here} crash states",
            workload.name, baseline.operations, baseline.operations_floor
        );
        explored += here;
        // At least one crash state per cut: more when writes are pending.
        floor += baseline.operations_floor + 1;
    }
    println!("{explored} crash states between operations explored (floor {floor})");
    assert!(
        explored >= floor,
        "{explored} crash states explored, fewer than the floor of {floor}"
    );
}

/// Cuts the power inside the writes of every workload, every
/// [`TORN_STRIDE_BYTES`] bytes, tearing the `unit_bytes` unit at the cut
/// with each of `fills` in turn.
fn torn_writes(unit_bytes: u32, fills: &[TornFill]) {
    let (mut explored, mut floor) = (0u64, 0u64);
    for (seed, workload, baseline) in &workloads() {
        let mut here = 0;
        // Bounded: the workload writes fewer bytes than four times its
        // records' extents plus a thousand strides of headers and markers.
        for k in 0..baseline.bytes_floor * 4 / TORN_STRIDE_BYTES + 1000 {
            let byte = k * TORN_STRIDE_BYTES + seed % TORN_STRIDE_BYTES;
            let fill = fills[usize::try_from(k).expect("small") % fills.len()];
            let cut = Cut::AtByte {
                byte,
                unit_bytes,
                fill,
            };
            let (checked, power_cut) = crash_at(workload, &baseline.states, cut, *seed);
            here += checked;
            if !power_cut {
                break;
            }
        }
        println!(
            "seed {seed:#x} {}: {here} crash states inside writes ({} bytes of records)",
            workload.name, baseline.bytes_floor
        );
        explored += here;
        floor += baseline.bytes_floor / TORN_STRIDE_BYTES;
    }
    println!("{explored} crash states inside writes explored (floor {floor})");
    assert!(
        explored >= floor,
        "{explored} crash states explored, fewer than the floor of {floor}"
    );
}

/// Tearing in 16-byte units: zeros, random bytes or the old contents.
#[test]
fn every_write_torn_in_16_byte_units_recovers_to_an_acknowledged_state() {
    torn_writes(16, &[TornFill::Zero, TornFill::Random, TornFill::Old]);
}

/// Tearing at any byte, as the geometry of a byte-addressable device
/// (write unit 1) allows. A segment header write cut after its 8 magic
/// bytes leaves a version of 0 or a random one.
#[test]
fn every_write_torn_at_any_byte_recovers_to_an_acknowledged_state() {
    torn_writes(1, &[TornFill::Zero, TornFill::Random, TornFill::Old]);
}
