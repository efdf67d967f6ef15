//! `crash_ops`: arbitrary operations and faults on the fault-injecting
//! RAM store, checked against a model of the log.
//!
//! The input picks the log's configuration (segment size, durability,
//! recovery mode, verification), a `FaultPlan` (its seed, a power cut at a
//! byte or after some operations, the torn unit and its fill, an I/O error
//! on a write, a failed sync, `ENOSPC` on writes or on an allocation;
//! strict, so a misaligned request panics) and up to 64 operations: appends,
//! batches, syncs, checkpoints, truncations, reads, clean close and reopen,
//! and crashes (a power cut now, what survives chosen by a `CrashModel`,
//! maybe a new fault plan that cuts the power again during recovery).
//!
//! The model is every record the log may hold, by LSN, each with its bytes
//! and whether it was acknowledged (below `durable_lsn` after any call, or
//! after an open from a crash image). While the log runs: an append takes
//! the next LSN, and every LSN in the log reads back its bytes. After each
//! reopen, crash or not (a power cut during recovery is followed by one
//! more reboot):
//! - the log opens;
//! - its LSNs are dense: iteration yields `first_lsn..next_lsn`, and
//!   `read(lsn)` agrees;
//! - every record it returns was appended under that LSN with those bytes,
//!   and not cut off by a truncation that returned;
//! - every acknowledged record is there with its bytes, unless a checkpoint
//!   or a truncation that may have happened allowed it to go;
//! - `first_lsn` never moves back past a checkpoint that returned.
//!
//! A violation panics: that is a finding.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use segwal::{
    Durability, Error, Lsn, OpenVerification, RecoveryMode, SEQUENTIAL_WINDOW_BYTES, Wal, WalConfig,
};
use segwal_ram::{CrashModel, FaultPlan, RamStore, TornFill};

/// Operations per input.
const OPS_MAX: usize = 64;

/// Largest payload.
const PAYLOAD_BYTES_MAX: usize = 512;

/// Records per batch.
const BATCH_RECORDS_MAX: usize = 8;

/// Segments the log may track: enough that only long inputs hit the limit
/// (a clean refusal, `TooManySegments`).
const SEGMENTS_MAX: usize = 64;

/// The log borrows the store, so that the harness keeps it when an open
/// fails and can reboot it.
type FuzzWal<'s> = Wal<&'s mut RamStore, Vec<u8>, SEGMENTS_MAX>;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Cut {
    None,
    AtByte(u16),
    AfterOps(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum FillChoice {
    Random,
    Zero,
    Old,
    Mixed,
}

#[derive(Arbitrary, Debug, Clone)]
struct PlanChoice {
    seed: u64,
    cut: Cut,
    torn_unit_log2: u8,
    fill: FillChoice,
    io_error_on_write: Option<u8>,
    sync_failure: Option<u8>,
    no_space_after_bytes: Option<u16>,
    no_space_on_allocation: Option<u8>,
}

impl PlanChoice {
    fn plan(&self) -> FaultPlan {
        let mut plan = FaultPlan::new(self.seed)
            .strict(true)
            .torn_unit_bytes(1 << (self.torn_unit_log2 % 10))
            .torn_fill(match self.fill {
                FillChoice::Random => TornFill::Random,
                FillChoice::Zero => TornFill::Zero,
                FillChoice::Old => TornFill::Old,
                FillChoice::Mixed => TornFill::Mixed,
            });
        plan = match self.cut {
            Cut::None => plan,
            Cut::AtByte(byte) => plan.power_cut_at_byte(u64::from(byte) * 4),
            Cut::AfterOps(ops) => plan.power_cut_after_ops(u64::from(ops)),
        };
        if let Some(write) = self.io_error_on_write {
            plan = plan.io_error_on_write(u64::from(write));
        }
        if let Some(sync) = self.sync_failure {
            plan = plan.sync_failure(u64::from(sync));
        }
        if let Some(bytes) = self.no_space_after_bytes {
            plan = plan.no_space_after_bytes(u64::from(bytes) * 4);
        }
        if let Some(allocation) = self.no_space_on_allocation {
            plan = plan.no_space_on_allocation(u64::from(allocation % 8));
        }
        plan
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum ModelChoice {
    Durable,
    Live,
    Subset(u64),
    Random(u64),
}

impl ModelChoice {
    fn model(self) -> CrashModel {
        match self {
            ModelChoice::Durable => CrashModel::Durable,
            ModelChoice::Live => CrashModel::Live,
            ModelChoice::Subset(mask) => CrashModel::Subset(mask),
            ModelChoice::Random(seed) => CrashModel::Random { seed },
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Append {
        len: u16,
        byte: u8,
    },
    AppendBatch {
        lens: Vec<u16>,
        byte: u8,
    },
    Sync,
    Checkpoint {
        lsn_hint: u16,
    },
    TruncateAfter {
        lsn_hint: u16,
    },
    Read {
        lsn_hint: u16,
    },
    CloseReopen,
    Crash {
        model: ModelChoice,
        plan: Option<PlanChoice>,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    segment_units: u8,
    manual_durability: bool,
    point_in_time: bool,
    full_verification: bool,
    plan: PlanChoice,
    ops: Vec<Op>,
}

#[derive(Debug, Clone)]
struct Entry {
    payload: Vec<u8>,
    acked: bool,
}

/// What the log may hold.
#[derive(Debug, Default)]
struct Model {
    /// Records by LSN: appended (or maybe appended, by a call that failed)
    /// and not cut off by a truncation that returned.
    records: BTreeMap<u64, Entry>,
    /// The log's `first_lsn` after the last checkpoint that returned: it
    /// never moves back.
    first_lsn_min: u64,
    /// Acknowledged records at or below this may be gone: a checkpoint
    /// was asked for up to it.
    checkpoint_floor: u64,
    /// Acknowledged records above this may be gone: a truncation to it
    /// failed, and may or may not have happened.
    truncation_unsure: Option<u64>,
    /// Payloads handed out so far: each is unique.
    appended: u64,
}

impl Model {
    /// A payload no other append had: its number, then `byte`.
    fn payload(&mut self, len: u16, byte: u8) -> Vec<u8> {
        self.appended += 1;
        let len = usize::from(len) % (PAYLOAD_BYTES_MAX + 1);
        let mut payload = vec![byte; len];
        let id = self.appended.to_le_bytes();
        let n = len.min(id.len());
        payload[..n].copy_from_slice(&id[..n]);
        payload
    }

    /// Marks everything below the log's durable LSN acknowledged.
    fn ack_below(&mut self, durable_lsn: u64) {
        for (_, entry) in self.records.range_mut(..durable_lsn) {
            entry.acked = true;
        }
    }
}

/// How an epoch (one open of the log) ended.
enum End {
    /// The open failed under a fault plan.
    OpenFailed,
    /// A `Crash` operation.
    Crash(ModelChoice, Option<PlanChoice>),
    /// A `CloseReopen` operation.
    Reopen,
    /// No operations left.
    Done,
}

struct Harness<'i> {
    config: WalConfig,
    model: Model,
    ops: std::iter::Take<std::slice::Iter<'i, Op>>,
    /// A fault plan is attached to the store.
    plan_armed: bool,
}

/// The LSN a hint names: mostly one from `first_lsn - 1` to `next_lsn`,
/// with the top bit set any small number.
fn lsn_of(hint: u16, wal: &FuzzWal<'_>) -> u64 {
    let first = wal.first_lsn().0;
    let next = wal.next_lsn().0;
    if hint & 0x8000 != 0 {
        return u64::from(hint & 0x7FFF);
    }
    first.saturating_sub(1) + u64::from(hint) % (next - first + 2)
}

fn buffer() -> Vec<u8> {
    vec![0u8; SEQUENTIAL_WINDOW_BYTES as usize]
}

impl Harness<'_> {
    /// One open of the log and the operations until the next reopen.
    fn epoch(&mut self, store: &mut RamStore) -> End {
        let plan_armed = self.plan_armed;
        let mut wal: FuzzWal<'_> = match Wal::open(store, self.config, buffer()) {
            Ok(wal) => wal,
            Err(Error::Device(_)) if plan_armed => return End::OpenFailed,
            Err(e) => panic!("the log does not reopen: {e}"),
        };
        self.check_recovered(&mut wal);
        while let Some(op) = self.ops.next() {
            match op {
                Op::Crash { model, plan } => return End::Crash(*model, plan.clone()),
                Op::CloseReopen => {
                    if wal.is_poisoned() {
                        return End::Reopen;
                    }
                    let next = wal.next_lsn().0;
                    if wal.close().is_ok() {
                        self.model.ack_below(next);
                    }
                    return End::Reopen;
                }
                op => self.apply(&mut wal, op),
            }
            self.model.ack_below(wal.durable_lsn().0);
        }
        End::Done
    }

    fn apply(&mut self, wal: &mut FuzzWal<'_>, op: &Op) {
        match op {
            Op::Append { len, byte } => {
                let payload = self.model.payload(*len, *byte);
                self.append(wal, vec![payload]);
            }
            Op::AppendBatch { lens, byte } => {
                let payloads = lens
                    .iter()
                    .take(BATCH_RECORDS_MAX)
                    .map(|&len| self.model.payload(len, *byte))
                    .collect();
                self.append(wal, payloads);
            }
            Op::Sync => {
                let _ = wal.sync();
            }
            Op::Checkpoint { lsn_hint } => {
                let lsn = lsn_of(*lsn_hint, wal);
                let result = wal.checkpoint(Lsn(lsn));
                let first = wal.first_lsn().0;
                match result {
                    Err(Error::LsnOutOfRange { .. }) => {}
                    Ok(_) => {
                        assert!(
                            first <= lsn + 1,
                            "checkpoint({lsn}) removed LSN {}",
                            first - 1
                        );
                        self.model.checkpoint_floor = self.model.checkpoint_floor.max(lsn);
                    }
                    Err(_) => self.model.checkpoint_floor = self.model.checkpoint_floor.max(lsn),
                }
                assert!(
                    first >= self.model.first_lsn_min,
                    "first LSN moved back to {first}"
                );
                // Releases are durable: what went stays gone.
                self.model.first_lsn_min = first;
                self.model.records = self.model.records.split_off(&first);
            }
            Op::TruncateAfter { lsn_hint } => {
                let lsn = lsn_of(*lsn_hint, wal);
                match wal.truncate_after(Lsn(lsn)) {
                    Ok(()) => {
                        assert_eq!(wal.next_lsn().0, lsn + 1, "truncate_after({lsn})");
                        let _cut_off = self.model.records.split_off(&(lsn + 1));
                        self.model.first_lsn_min = wal.first_lsn().0;
                    }
                    Err(Error::Device(_)) => {
                        let unsure = self.model.truncation_unsure.map_or(lsn, |t| t.min(lsn));
                        self.model.truncation_unsure = Some(unsure);
                    }
                    Err(_) => {}
                }
            }
            Op::Read { lsn_hint } => {
                let lsn = lsn_of(*lsn_hint, wal);
                let in_log = wal.first_lsn().0 <= lsn && lsn < wal.next_lsn().0;
                let read = wal.read(Lsn(lsn)).map(|p| p.to_vec());
                match (in_log, read) {
                    (true, Ok(payload)) => self.expect_record(lsn, &payload),
                    (true, Err(e)) => panic!("LSN {lsn} of the running log does not read: {e}"),
                    (false, Err(Error::LsnOutOfRange { .. })) => {}
                    (false, other) => panic!("LSN {lsn} outside the log reads as {other:?}"),
                }
            }
            Op::CloseReopen | Op::Crash { .. } => unreachable!("handled by the epoch"),
        }
    }

    fn append(&mut self, wal: &mut FuzzWal<'_>, payloads: Vec<Vec<u8>>) {
        let next = wal.next_lsn().0;
        let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        match wal.append_batch(&slices) {
            Ok(range) => {
                let count = payloads.len() as u64;
                assert_eq!(
                    (range.start.0, range.end.0),
                    (next, next + count),
                    "LSNs of an append"
                );
                for (lsn, payload) in (next..).zip(payloads) {
                    let read = wal.read(Lsn(lsn)).map(|p| p.to_vec());
                    let read = read.unwrap_or_else(|e| panic!("LSN {lsn} just appended: {e}"));
                    assert_eq!(read, payload, "LSN {lsn} just appended reads other bytes");
                    self.model.records.insert(
                        lsn,
                        Entry {
                            payload,
                            acked: false,
                        },
                    );
                }
            }
            // Maybe written, in whole or in part: never acknowledged.
            Err(Error::Device(_)) => {
                for (lsn, payload) in (next..).zip(payloads) {
                    self.model.records.insert(
                        lsn,
                        Entry {
                            payload,
                            acked: false,
                        },
                    );
                }
            }
            Err(_) => assert_eq!(wal.next_lsn().0, next, "a refused append moved the log"),
        }
    }

    /// `payload` read at `lsn` is what was appended there.
    fn expect_record(&self, lsn: u64, payload: &[u8]) {
        match self.model.records.get(&lsn) {
            Some(entry) => assert!(
                entry.payload == payload,
                "LSN {lsn} holds {} bytes that were never appended under it (appended: {} bytes)",
                payload.len(),
                entry.payload.len()
            ),
            None => panic!("LSN {lsn} holds a record never appended (or truncated away)"),
        }
    }

    /// After an open: the log against the model; then the model is what
    /// the log holds.
    fn check_recovered(&mut self, wal: &mut FuzzWal<'_>) {
        let first = wal.first_lsn().0;
        let next = wal.next_lsn().0;
        let model = &self.model;
        assert!(first <= next, "first LSN {first} after next {next}");
        assert!(
            first >= model.first_lsn_min,
            "first LSN {first} moved back past a checkpoint (was {})",
            model.first_lsn_min
        );
        let mut payloads = Vec::new();
        let mut iter = wal.iter();
        while let Some(item) = iter.next_record() {
            let lsn = first + payloads.len() as u64;
            match item {
                Ok((got, payload)) => {
                    assert_eq!(got.0, lsn, "iteration skipped or repeated an LSN");
                    payloads.push(payload.to_vec());
                }
                Err(e) => panic!("LSN {lsn} of the recovered log does not read: {e}"),
            }
            assert!(
                payloads.len() <= model.records.len() + 1,
                "iteration does not end"
            );
        }
        assert_eq!(
            first + payloads.len() as u64,
            next,
            "iteration ended before next_lsn"
        );
        for (lsn, payload) in (first..).zip(&payloads) {
            let read = wal.read(Lsn(lsn)).map(|p| p.to_vec());
            assert_eq!(
                read.ok().as_ref(),
                Some(payload),
                "read and iteration disagree at {lsn}"
            );
            self.expect_record(lsn, payload);
        }
        for (&lsn, entry) in &model.records {
            let may_be_gone =
                lsn <= model.checkpoint_floor || model.truncation_unsure.is_some_and(|t| lsn > t);
            if entry.acked && !may_be_gone {
                assert!(
                    first <= lsn && lsn < next,
                    "acknowledged LSN {lsn} lost (the log holds {first}..{next})"
                );
            }
        }
        self.model.records = (first..)
            .zip(payloads)
            .map(|(lsn, payload)| {
                (
                    lsn,
                    Entry {
                        payload,
                        acked: false,
                    },
                )
            })
            .collect();
        self.model.ack_below(wal.durable_lsn().0);
        self.model.first_lsn_min = first;
        self.model.checkpoint_floor = 0;
        self.model.truncation_unsure = None;
    }
}

/// What survives when the power goes while the plan has already done its
/// worst: a failed sync dropped writes from the durable copy, so only it
/// is what the medium holds; otherwise everything that reached the device.
fn survivors_after(store: &RamStore) -> CrashModel {
    if store.fault_stats().sync_failures > 0 {
        CrashModel::Durable
    } else {
        CrashModel::Live
    }
}

fuzz_target!(|input: Input| {
    let config = WalConfig {
        segment_size_bytes: (u32::from(input.segment_units) % 8 + 2) * 512,
        durability: if input.manual_durability {
            Durability::Manual
        } else {
            Durability::Sync
        },
        recovery_mode: if input.point_in_time {
            RecoveryMode::TruncateAtCorruption
        } else {
            RecoveryMode::Strict
        },
        verification: if input.full_verification {
            OpenVerification::Full
        } else {
            OpenVerification::Tail
        },
        ..WalConfig::default()
    };
    let mut harness = Harness {
        config,
        model: Model {
            first_lsn_min: segwal::FIRST_LSN,
            ..Model::default()
        },
        ops: input.ops.iter().take(OPS_MAX),
        plan_armed: true,
    };
    let mut store = RamStore::with_faults(input.plan.seed, input.plan.plan());
    loop {
        match harness.epoch(&mut store) {
            End::OpenFailed => {
                store = store.reboot_with(&survivors_after(&store));
                harness.plan_armed = false;
            }
            End::Crash(model, plan) => {
                store = store.reboot_with(&model.model());
                harness.plan_armed = plan.is_some();
                if let Some(plan) = plan {
                    store.set_fault_plan(plan.plan());
                }
            }
            End::Reopen => {
                // Without a power cut the store stays as it is, unless the
                // plan cut the power or a sync failed: then the process can
                // only come back after a reboot.
                if store.is_power_cut() || store.fault_stats().sync_failures > 0 {
                    store = store.reboot_with(&survivors_after(&store));
                    harness.plan_armed = false;
                }
            }
            End::Done => {
                // One last power cut, losing everything unsynced.
                store = store.reboot_with(&CrashModel::Durable);
                harness.plan_armed = false;
                harness.ops = [].iter().take(0);
                let end = harness.epoch(&mut store);
                assert!(matches!(end, End::Done));
                break;
            }
        }
    }
});
