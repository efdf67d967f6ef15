//! Crash safety of the write-ahead log at every byte it writes, under every
//! combination of unsynced writes a power cut may lose, and with the power
//! cut again during recovery.
//!
//! Six small workloads run on the core `Wal` over a `RamStore` with 4 KiB
//! segments, each from a prefix built once: synced appends that rotate into
//! a new segment; `Durability::Manual` appends and batches between `sync`s,
//! a clean close and appends after it (the marker wiped); manual batches
//! that start a new segment and that take two device writes; checkpoints
//! that remove sealed segments; `truncate_after` inside the active segment
//! (below unsynced appends, then into a batch); `truncate_after` inside a
//! sealed segment and down to an empty log.
//!
//! Each workload first runs without faults, checked against a model: the
//! payload of every LSN, the next LSNs that would split a batch, and after
//! each operation how far records are acknowledged (any operation under
//! `Durability::Sync`; a `sync` or `close_in_place` that returned `Ok`
//! under `Manual`, where a `truncate_after` acknowledges nothing but drops
//! what it cuts). Then it runs again from its prefix for
//! every byte `n` of its write stream with `FaultPlan::power_cut_at_byte(n)`
//! and 1-byte torn units, once with each torn fill (random, zero, old); for
//! every 32nd byte with 512-byte torn sectors (mixed fills); and for every
//! store operation count `k` with `power_cut_after_ops(k)` (the only cut a
//! checkpoint, which writes nothing, can meet). Each run stops at the first
//! operation that fails.
//!
//! After each cut the store is rebooted under every crash model of its
//! pending writes (every subset in every order for up to 3, every subset
//! for up to 6, `Durable`, `Live` and seeded random ones beyond) and
//! reopened. The log must open, iterate densely from `first_lsn` to
//! `next_lsn` (and `read` agree at both ends), and hold a state the history
//! allows: every acknowledged record with its LSN and bytes; beyond them
//! only a prefix of what was appended since, never splitting a batch and
//! never a record that was not appended; a `truncate_after` in flight
//! either not done (old records) or done exactly; a checkpoint in flight
//! with its first LSN between the old and the new one. Each such reboot
//! and check is one crash state.
//!
//! For one crash model of one byte cut in eight and of every sector and
//! operation cut (chosen from the seed), recovery itself is then cut:
//! after each `k` below the store operations the reopen took, the power
//! fails again, the store is rebooted under every crash model of what
//! recovery left pending, and the log must reopen to exactly what the
//! uninterrupted recovery found. Then an append (synced) must return `Ok`
//! with the next LSN and survive one more power cut that keeps only synced
//! bytes: the "phantom header" failure of flash logs, where a recovery
//! interrupted twice leaves a state in which new writes are lost.
//!
//! Each workload runs with three seeds derived from the printed one (each
//! moves every payload length and so every boundary), on as many threads
//! as the machine has. The test prints what each explored and the total,
//! which must reach 100,000 crash states (`--nocapture` shows them);
//! `SEGWAL_TEST_SEED` replaces the seed. A seventh workload, a clean close
//! of a segment too full for its marker, runs in an ignored test naming the
//! bug it finds.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::RangeInclusive;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use segwal::{BATCH_RECORDS_PER_WRITE, Durability, Error, Lsn, WalConfig};
use segwal_ram::{CrashModel, FaultPlan, RamStore, Survivors, TornFill};
use segwal_tests::{XorShift, payload, test_seed};

const SEGMENT_BYTES: u32 = 4096;
/// Segments a log may hold: far more than any workload creates.
const SEGMENTS_MAX: usize = 32;
/// Read and scan buffer: two segments, enough for full read-ahead here.
const BUFFER_BYTES: usize = 8192;
const DEFAULT_SEED: u64 = 0xC4A5_0E1D;
/// Sector-sized torn units are tried at every this many stream bytes: the
/// cuts between two sector boundaries of one write all tear the same unit.
const SECTOR_STRIDE_BYTES: usize = 32;
const SECTOR_BYTES: u32 = 512;
/// Bound on the stream of a workload; reaching it is a bug in the test.
const STREAM_BYTES_MAX: u64 = 64 * 1024;
/// Bound on the store operations of a workload.
const OPERATIONS_MAX: u64 = 4096;
/// Byte cuts (1-byte units) whose recovery is cut too: one in this many,
/// chosen from the seed. Sector and operation cuts all get one.
const BYTE_CUTS_PER_CHAIN: u64 = 8;
/// Seeds each workload runs with, derived from the printed one: each moves
/// every payload length and so every record and segment boundary.
const SEEDS_PER_WORKLOAD: u64 = 3;
/// Crash states the default run must reach.
const STATES_MIN: u64 = 100_000;
/// Pending writes up to which every subset in every order is tried.
const ARRANGED_PENDING_MAX: usize = 3;
/// Pending writes up to which every subset (in issue order) is tried.
const SUBSET_PENDING_MAX: usize = 6;
/// Seeded random crash models tried beyond that, besides `Durable`/`Live`.
const RANDOM_MODELS: usize = 24;
const FILLS: [TornFill; 3] = [TornFill::Random, TornFill::Zero, TornFill::Old];

type Wal<'s> = segwal::Wal<&'s mut RamStore, Box<[u8]>, SEGMENTS_MAX>;
type WalError = Error<segwal_ram::RamError>;

fn open(store: &mut RamStore, config: WalConfig) -> Result<Wal<'_>, WalError> {
    segwal::Wal::open(store, config, vec![0u8; BUFFER_BYTES].into_boxed_slice())
}

fn config(durability: Durability) -> WalConfig {
    WalConfig {
        segment_size_bytes: SEGMENT_BYTES,
        durability,
        ..WalConfig::default()
    }
}

/// One operation of a workload.
#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Batch(Vec<Vec<u8>>),
    Sync,
    /// `close_in_place`: a clean-close marker the next append must wipe.
    Close,
    Checkpoint(u64),
    TruncateAfter(u64),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Append(bytes) => write!(f, "append({} bytes)", bytes.len()),
            Op::Batch(payloads) => write!(f, "append_batch({} records)", payloads.len()),
            Op::Sync => f.write_str("sync"),
            Op::Close => f.write_str("close_in_place"),
            Op::Checkpoint(lsn) => write!(f, "checkpoint({lsn})"),
            Op::TruncateAfter(lsn) => write!(f, "truncate_after({lsn})"),
        }
    }
}

fn apply(wal: &mut Wal<'_>, op: &Op) -> Result<(), WalError> {
    match op {
        Op::Append(bytes) => wal.append(bytes).map(drop),
        Op::Batch(payloads) => {
            let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            wal.append_batch(&refs).map(drop)
        }
        Op::Sync => wal.sync(),
        Op::Close => wal.close_in_place(),
        Op::Checkpoint(lsn) => wal.checkpoint(Lsn(*lsn)).map(drop),
        Op::TruncateAfter(lsn) => wal.truncate_after(Lsn(*lsn)),
    }
}

/// `true` when `op` returning `Ok` acknowledges everything appended so far:
/// under `Manual` only `sync` and a close do (a `truncate_after` drops
/// what it cuts, acknowledged or not, and acknowledges nothing).
fn acknowledges(op: &Op, durability: Durability) -> bool {
    durability == Durability::Sync || matches!(op, Op::Sync | Op::Close)
}

/// The reference log: every payload by LSN (checkpointed ones kept, so an
/// interrupted checkpoint can be checked), and the first LSN.
#[derive(Debug, Clone)]
struct Model {
    first_lsn: u64,
    /// The payload of LSN `i + 1` at index `i`.
    payloads: Vec<Vec<u8>>,
    /// Next LSNs that would split a batch: the LSN of every record of a
    /// batch but its first.
    inside_batches: BTreeSet<u64>,
}

impl Model {
    fn new() -> Self {
        Model {
            first_lsn: segwal::FIRST_LSN,
            payloads: Vec::new(),
            inside_batches: BTreeSet::new(),
        }
    }

    fn next_lsn(&self) -> u64 {
        self.payloads.len() as u64 + 1
    }

    fn get(&self, lsn: u64) -> Option<&[u8]> {
        if lsn < self.first_lsn {
            return None;
        }
        let index = usize::try_from(lsn.checked_sub(1)?).ok()?;
        self.payloads.get(index).map(Vec::as_slice)
    }

    fn push_batch(&mut self, payloads: &[Vec<u8>]) {
        for (index, bytes) in payloads.iter().enumerate() {
            if index > 0 {
                self.inside_batches.insert(self.next_lsn());
            }
            self.payloads.push(bytes.clone());
        }
    }

    /// Applies `op`; a checkpoint's new first LSN is the log's to choose.
    fn apply(&mut self, op: &Op) {
        match op {
            Op::Append(bytes) => self.push_batch(std::slice::from_ref(bytes)),
            Op::Batch(payloads) => self.push_batch(payloads),
            Op::TruncateAfter(lsn) => {
                self.payloads
                    .truncate(usize::try_from(*lsn).expect("small LSN"));
                self.inside_batches.retain(|&next| next <= *lsn);
            }
            Op::Sync | Op::Close | Op::Checkpoint(_) => {}
        }
    }
}

/// What a reopened log holds, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Contents {
    first_lsn: u64,
    payloads: Vec<Vec<u8>>,
}

impl Contents {
    fn next_lsn(&self) -> u64 {
        self.first_lsn + self.payloads.len() as u64
    }
}

/// Reads the log by iteration, checking LSNs are dense from `first_lsn` to
/// `next_lsn`, and `read` at both ends against it.
fn read_back(wal: &mut Wal<'_>) -> Result<Contents, String> {
    let (first_lsn, next_lsn) = (wal.first_lsn().0, wal.next_lsn().0);
    let mut payloads = Vec::new();
    let mut iter = wal.iter();
    while let Some(item) = iter.next_record() {
        let (lsn, bytes) = item.map_err(|e| format!("iteration failed: {e}"))?;
        let expected = first_lsn + payloads.len() as u64;
        if lsn.0 != expected {
            return Err(format!(
                "iteration gave LSN {lsn} where {expected} was next"
            ));
        }
        payloads.push(bytes.to_vec());
    }
    let contents = Contents {
        first_lsn,
        payloads,
    };
    if contents.next_lsn() != next_lsn {
        return Err(format!(
            "iteration ended at LSN {} but next_lsn is {next_lsn}",
            contents.next_lsn()
        ));
    }
    for lsn in [first_lsn, next_lsn.saturating_sub(1)] {
        if lsn < first_lsn || lsn >= next_lsn {
            continue;
        }
        let got = wal
            .read(Lsn(lsn))
            .map_err(|e| format!("read({lsn}): {e}"))?;
        let index = usize::try_from(lsn - first_lsn).expect("small");
        if *got != contents.payloads[index][..] {
            return Err(format!("read({lsn}) differs from iteration"));
        }
    }
    Ok(contents)
}

/// One state the history allows after a crash.
struct Allowed<'m> {
    model: &'m Model,
    first_lsn: RangeInclusive<u64>,
    next_lsn: RangeInclusive<u64>,
}

impl Allowed<'_> {
    fn admits(&self, got: &Contents) -> bool {
        let next = got.next_lsn();
        self.first_lsn.contains(&got.first_lsn)
            && self.next_lsn.contains(&next)
            && (next == *self.next_lsn.start() || !self.model.inside_batches.contains(&next))
            && got
                .payloads
                .iter()
                .zip(got.first_lsn..)
                .all(|(bytes, lsn)| self.model.get(lsn) == Some(bytes.as_slice()))
    }
}

impl fmt::Display for Allowed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "first LSN in {:?}, next LSN in {:?}",
            self.first_lsn, self.next_lsn
        )
    }
}

/// The model after the prefix and after each operation, and for each
/// count of operations that returned `Ok`, the next LSN below which every
/// record is acknowledged.
struct Baseline {
    states: Vec<Model>,
    acked_next: Vec<u64>,
}

impl Baseline {
    /// The states a crash allows when operation `failed` (or none, at the
    /// end) was the first to fail.
    fn allowed(&self, ops: &[Op], failed: usize) -> Vec<Allowed<'_>> {
        let acked_next = self.acked_next[failed];
        let now = &self.states[failed];
        let old = |model: &Model| Allowed {
            first_lsn: now.first_lsn..=now.first_lsn,
            next_lsn: acked_next..=model.next_lsn(),
            model: now,
        };
        let Some(op) = ops.get(failed) else {
            return vec![old(now)];
        };
        let after = &self.states[failed + 1];
        match op {
            Op::Append(_) | Op::Batch(_) => vec![Allowed {
                model: after,
                ..old(after)
            }],
            Op::Sync | Op::Close => vec![old(now)],
            Op::Checkpoint(_) => vec![Allowed {
                first_lsn: now.first_lsn..=after.first_lsn,
                ..old(now)
            }],
            Op::TruncateAfter(_) => vec![
                old(now),
                Allowed {
                    model: after,
                    first_lsn: after.first_lsn..=after.first_lsn,
                    next_lsn: after.next_lsn()..=after.next_lsn(),
                },
            ],
        }
    }
}

/// Builds a workload from a seed.
type Build = fn(u64) -> Workload;

/// A workload: where it starts and what it does.
struct Workload {
    name: &'static str,
    durability: Durability,
    /// The store after the prefix, everything synced; every run starts
    /// from a copy.
    prefix: RamStore,
    prefix_model: Model,
    ops: Vec<Op>,
}

impl Workload {
    fn config(&self) -> WalConfig {
        config(self.durability)
    }

    /// Runs the workload without faults, checking each step against the
    /// model, and returns the model's states.
    fn baseline(&self, seed: u64) -> Baseline {
        let context = format!("{} (seed {seed:#x}, no power cut)", self.name);
        let mut store = self.prefix.reboot(Survivors::Durable);
        let mut wal = open(&mut store, self.config()).expect("open the prefix");
        let mut model = self.prefix_model.clone();
        let mut states = vec![model.clone()];
        let mut acked_next = vec![model.next_lsn()];
        for (index, op) in self.ops.iter().enumerate() {
            apply(&mut wal, op).unwrap_or_else(|e| panic!("{context}: {op}: {e}"));
            model.apply(op);
            if matches!(op, Op::Checkpoint(_)) {
                assert!(wal.first_lsn().0 >= model.first_lsn, "{context}: {op}");
                model.first_lsn = wal.first_lsn().0;
            }
            assert_eq!(
                (wal.first_lsn().0, wal.next_lsn().0),
                (model.first_lsn, model.next_lsn()),
                "{context}: after {op}"
            );
            states.push(model.clone());
            let acked = match op {
                _ if acknowledges(op, self.durability) => model.next_lsn(),
                Op::TruncateAfter(lsn) => acked_next[index].min(lsn + 1),
                _ => acked_next[index],
            };
            acked_next.push(acked);
        }
        let got = read_back(&mut wal).unwrap_or_else(|e| panic!("{context}: {e}"));
        let want = Allowed {
            model: &model,
            first_lsn: model.first_lsn..=model.first_lsn,
            next_lsn: model.next_lsn()..=model.next_lsn(),
        };
        assert!(want.admits(&got), "{context}: read back differs");
        Baseline { states, acked_next }
    }

    /// Runs the workload over a copy of the prefix with `plan` attached
    /// after the open, up to the first operation that fails. Returns the
    /// store as the power cut left it and the index of that operation
    /// (`ops.len()` when none failed).
    fn run(&self, plan: FaultPlan, context: &dyn Fn() -> String) -> (RamStore, usize) {
        let mut store = self.prefix.reboot(Survivors::Durable);
        let mut wal = open(&mut store, self.config()).expect("open the prefix");
        wal.store_mut().set_fault_plan(plan);
        let mut failed = self.ops.len();
        for (index, op) in self.ops.iter().enumerate() {
            match apply(&mut wal, op) {
                Ok(()) => {}
                Err(Error::Device(_) | Error::Poisoned) => {
                    failed = index;
                    break;
                }
                Err(other) => panic!("{}: {op} failed with {other}", context()),
            }
        }
        drop(wal);
        (store, failed)
    }
}

/// Where a check is, for failure messages: everything needed to replay it.
struct Place<'a> {
    workload: &'a Workload,
    seed: u64,
    plan: &'a FaultPlan,
    model: &'a CrashModel,
    failed: usize,
    power_cut: bool,
}

impl Place<'_> {
    fn fail(&self, what: &str) -> ! {
        let ops = &self.workload.ops;
        let in_flight = match ops.get(self.failed) {
            Some(op) => format!("operation {} ({op}) failed", self.failed),
            None => format!("all {} operations returned Ok", ops.len()),
        };
        let cut = if self.power_cut {
            "power cut"
        } else {
            "power never cut (the plan's cut lies past the workload), pending writes lost as \
             the model says"
        };
        panic!(
            "{} (seed {:#x}): {:?}: {cut}, {in_flight}, rebooted under {:?}: {what}",
            self.workload.name, self.seed, self.plan, self.model
        );
    }
}

/// Crash states explored by one workload.
#[derive(Debug, Default)]
struct Tally {
    cut_points: u64,
    states: u64,
    states_after_second_cut: u64,
    stream_bytes: u64,
    operations: u64,
}

/// The crash models tried for `pending` unsynced writes.
fn crash_models(pending: usize, rng: &mut XorShift) -> Vec<CrashModel> {
    if pending <= ARRANGED_PENDING_MAX {
        return CrashModel::all_arrangements(pending);
    }
    if pending <= SUBSET_PENDING_MAX {
        return CrashModel::all_subsets(pending).collect();
    }
    let mut models = vec![CrashModel::Durable, CrashModel::Live];
    models.extend((0..RANDOM_MODELS).map(|_| CrashModel::Random {
        seed: rng.next_u64(),
    }));
    models
}

/// Runs every cut of a workload; returns what was explored.
fn explore(workload: &Workload, seed: u64) -> Tally {
    let baseline = workload.baseline(seed);
    let mut rng = XorShift::new(seed ^ 0xC0FF_EE00);
    let mut tally = Tally::default();
    let cut = |plan: FaultPlan, chain_one_in: u64, rng: &mut XorShift, tally: &mut Tally| {
        crash_at(workload, &baseline, plan, seed, chain_one_in, rng, tally)
    };
    for fill in FILLS {
        for n in 0..=STREAM_BYTES_MAX {
            let plan = FaultPlan::new(seed ^ n)
                .power_cut_at_byte(n)
                .torn_unit_bytes(1)
                .torn_fill(fill);
            if !cut(plan, BYTE_CUTS_PER_CHAIN, &mut rng, &mut tally) {
                tally.stream_bytes = n;
                break;
            }
            assert!(n < STREAM_BYTES_MAX, "{}: stream unbounded", workload.name);
        }
    }
    let first_sector_cut = rng.below(SECTOR_STRIDE_BYTES as u64);
    for n in (first_sector_cut..=STREAM_BYTES_MAX).step_by(SECTOR_STRIDE_BYTES) {
        let plan = FaultPlan::new(seed ^ n)
            .power_cut_at_byte(n)
            .torn_unit_bytes(SECTOR_BYTES)
            .torn_fill(TornFill::Mixed);
        if !cut(plan, 1, &mut rng, &mut tally) {
            break;
        }
    }
    for k in 0..=OPERATIONS_MAX {
        let plan = FaultPlan::new(seed ^ k).power_cut_after_ops(k);
        if !cut(plan, 1, &mut rng, &mut tally) {
            tally.operations = k;
            break;
        }
        assert!(
            k < OPERATIONS_MAX,
            "{}: operations unbounded",
            workload.name
        );
    }
    tally
}

/// Runs the workload under `plan` and checks every crash model of what it
/// left pending; for one of them, with a chance of one in
/// `chain_one_in`, cuts recovery too. Returns `false` when the power was
/// never cut (the plan's cut lies past the end of the workload).
fn crash_at(
    workload: &Workload,
    baseline: &Baseline,
    plan: FaultPlan,
    seed: u64,
    chain_one_in: u64,
    rng: &mut XorShift,
    tally: &mut Tally,
) -> bool {
    let context = || format!("{} (seed {seed:#x}): {plan:?}", workload.name);
    let (store, failed) = workload.run(plan.clone(), &context);
    let cut = store.is_power_cut();
    let allowed = baseline.allowed(&workload.ops, failed);
    let models = crash_models(store.pending_writes(), rng);
    let chained = (rng.below(chain_one_in) == 0)
        .then(|| usize::try_from(rng.below(models.len() as u64)).expect("small"));
    for (index, model) in models.iter().enumerate() {
        let place = Place {
            workload,
            seed,
            plan: &plan,
            model,
            failed,
            power_cut: cut,
        };
        let (got, recovery_operations) = recover(&store, &allowed, &place);
        tally.states += 1;
        if chained == Some(index) {
            tally.states_after_second_cut +=
                cut_during_recovery(&store, &got, recovery_operations, &place);
        }
    }
    tally.cut_points += 1;
    cut
}

/// Reboots `store` under the place's crash model, reopens and checks the
/// log against `allowed`. Returns what it holds and the store operations
/// the reopen took.
fn recover(store: &RamStore, allowed: &[Allowed<'_>], place: &Place<'_>) -> (Contents, u64) {
    let mut rebooted = store.reboot_with(place.model);
    let got = {
        let mut wal = open(&mut rebooted, place.workload.config())
            .unwrap_or_else(|e| place.fail(&format!("reopen failed: {e}")));
        read_back(&mut wal).unwrap_or_else(|e| place.fail(&e))
    };
    if !allowed.iter().any(|state| state.admits(&got)) {
        let states: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        place.fail(&format!(
            "recovered LSNs {}..{} (first payload difference at LSN {:?}) match none of the \
             allowed states [{}]",
            got.first_lsn,
            got.next_lsn(),
            first_difference(&got, allowed),
            states.join("; ")
        ));
    }
    (got, rebooted.operations())
}

/// The first LSN whose payload differs from the first allowed model's.
fn first_difference(got: &Contents, allowed: &[Allowed<'_>]) -> Option<u64> {
    let model = allowed.first()?.model;
    (got.first_lsn..got.next_lsn()).find(|&lsn| {
        let index = usize::try_from(lsn - got.first_lsn).expect("small");
        model.get(lsn) != Some(got.payloads[index].as_slice())
    })
}

/// Cuts the power again after each `k` below the operations recovery took,
/// reboots under every crash model of what that left pending, and checks
/// the log reopens to `got` and takes a durable append. Returns the crash
/// states explored.
fn cut_during_recovery(
    store: &RamStore,
    got: &Contents,
    recovery_operations: u64,
    place: &Place<'_>,
) -> u64 {
    let config = place.workload.config();
    let mut explored = 0;
    // No operations: a second cut changes nothing, but the append must
    // still survive.
    if recovery_operations == 0 {
        append_survives(
            store.reboot_with(place.model),
            got,
            place,
            "no recovery writes",
        );
        return 1;
    }
    for k in 0..recovery_operations {
        let mut second = store.reboot_with(place.model);
        second.set_fault_plan(FaultPlan::new(place.seed ^ k).power_cut_after_ops(k));
        match open(&mut second, config) {
            Ok(_) | Err(Error::Device(_)) => {}
            Err(other) => place.fail(&format!(
                "reopen cut after {k} of its {recovery_operations} operations failed with \
                 {other}"
            )),
        }
        let models =
            CrashModel::all_arrangements(second.pending_writes().min(ARRANGED_PENDING_MAX));
        for model in &models {
            let step = format!("recovery cut after {k} operations, then rebooted under {model:?}");
            append_survives(second.reboot_with(model), got, place, &step);
            explored += 1;
        }
    }
    explored
}

/// Reopens `store`, which must hold `got`; appends one record, which must
/// take the next LSN, and checks it survives a power cut that keeps only
/// synced bytes.
fn append_survives(mut store: RamStore, got: &Contents, place: &Place<'_>, step: &str) {
    let config = place.workload.config();
    let extra = payload(place.seed, u64::MAX - got.next_lsn(), 40);
    {
        let mut wal = open(&mut store, config)
            .unwrap_or_else(|e| place.fail(&format!("{step}: reopen failed: {e}")));
        let again = read_back(&mut wal).unwrap_or_else(|e| place.fail(&format!("{step}: {e}")));
        if again != *got {
            place.fail(&format!(
                "{step}: reopened to LSNs {}..{}, the uninterrupted recovery to {}..{} \
                 (or payloads differ)",
                again.first_lsn,
                again.next_lsn(),
                got.first_lsn,
                got.next_lsn()
            ));
        }
        let lsn = wal
            .append(&extra)
            .and_then(|lsn| wal.sync().map(|()| lsn))
            .unwrap_or_else(|e| place.fail(&format!("{step}: append after recovery: {e}")));
        if lsn.0 != got.next_lsn() {
            place.fail(&format!("{step}: the append after recovery got LSN {lsn}"));
        }
    }
    let mut rebooted = store.reboot(Survivors::Durable);
    let mut wal = open(&mut rebooted, config).unwrap_or_else(|e| {
        place.fail(&format!(
            "{step}: reopen after the synced append failed: {e}"
        ))
    });
    let after = read_back(&mut wal)
        .unwrap_or_else(|e| place.fail(&format!("{step}, after the synced append: {e}")));
    let mut want = got.clone();
    want.payloads.push(extra);
    if after != want {
        place.fail(&format!(
            "{step}: after a synced append and a power cut the log holds LSNs {}..{}, \
             expected {}..{} ending with the append",
            after.first_lsn,
            after.next_lsn(),
            want.first_lsn,
            want.next_lsn()
        ));
    }
}

/// Payloads for one workload, each distinct, lengths drawn from the seed.
struct Payloads {
    seed: u64,
    rng: XorShift,
    tag: u64,
}

impl Payloads {
    fn new(seed: u64, workload: u64) -> Self {
        Payloads {
            seed,
            rng: XorShift::new(seed ^ workload.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            tag: workload << 32,
        }
    }

    fn make(&mut self, len_min: usize, len_max: usize) -> Vec<u8> {
        let len = self.rng.between(len_min, len_max);
        self.tag += 1;
        payload(self.seed, self.tag, len)
    }

    fn append(&mut self, len_min: usize, len_max: usize) -> Op {
        Op::Append(self.make(len_min, len_max))
    }

    fn batch(&mut self, count: usize, len_min: usize, len_max: usize) -> Op {
        Op::Batch((0..count).map(|_| self.make(len_min, len_max)).collect())
    }
}

/// The prefix of a workload: synced appends of `len_min..=len_max` bytes
/// on a fresh log until `done` says so, then a clean close or not.
struct Prefix {
    store: RamStore,
    model: Model,
    /// Base LSN of each segment, oldest first.
    bases: Vec<u64>,
    /// Bytes written to the active segment.
    active_written: u64,
}

fn build_prefix(
    payloads: &mut Payloads,
    (len_min, len_max): (usize, usize),
    done: impl Fn(&Wal<'_>) -> bool,
    clean_close: bool,
) -> Prefix {
    let mut store = RamStore::new(payloads.seed ^ payloads.tag);
    let mut model = Model::new();
    let (bases, active_written) = {
        let mut wal = open(&mut store, config(Durability::Sync)).expect("open a new log");
        for _ in 0..SEGMENT_BYTES {
            if done(&wal) {
                break;
            }
            let bytes = payloads.make(len_min, len_max);
            wal.append(&bytes).expect("prefix append");
            model.push_batch(std::slice::from_ref(&bytes));
        }
        assert!(done(&wal), "prefix unbounded");
        if clean_close {
            wal.close_in_place().expect("close the prefix");
        }
        let bases = wal.segments().iter().map(|s| s.header.base_lsn).collect();
        (bases, active_written(&wal))
    };
    Prefix {
        store,
        model,
        bases,
        active_written,
    }
}

fn active_written(wal: &Wal<'_>) -> u64 {
    wal.active_written_bytes()
}

fn rotation(seed: u64) -> Workload {
    let mut payloads = Payloads::new(seed, 1);
    let prefix = build_prefix(
        &mut payloads,
        (40, 200),
        |wal| active_written(wal) >= 3300,
        true,
    );
    let mut ops: Vec<Op> = (0..5).map(|_| payloads.append(150, 260)).collect();
    ops.push(payloads.batch(3, 20, 80));
    ops.push(payloads.append(0, 0));
    ops.push(payloads.append(80, 120));
    Workload {
        name: "synced appends rotating into a new segment",
        durability: Durability::Sync,
        prefix: prefix.store,
        prefix_model: prefix.model,
        ops,
    }
}

fn manual(seed: u64) -> Workload {
    let mut p = Payloads::new(seed, 2);
    let prefix = build_prefix(&mut p, (20, 100), |wal| wal.next_lsn().0 > 4, true);
    let ops = vec![
        p.append(10, 90),
        p.append(10, 90),
        p.batch(3, 10, 60),
        Op::Sync,
        p.append(10, 90),
        Op::Sync,
        p.batch(2, 10, 60),
        p.append(10, 90),
        p.append(0, 0),
        Op::Sync,
        Op::Close,
        p.append(10, 90),
        p.batch(2, 10, 60),
        p.append(10, 90),
        Op::Sync,
    ];
    Workload {
        name: "manual appends and batches between syncs, a clean close",
        durability: Durability::Manual,
        prefix: prefix.store,
        prefix_model: prefix.model,
        ops,
    }
}

fn batch_crossing(seed: u64) -> Workload {
    let mut payloads = Payloads::new(seed, 3);
    let prefix = build_prefix(
        &mut payloads,
        (40, 200),
        |wal| active_written(wal) >= 3500,
        false,
    );
    let ops = vec![
        payloads.append(60, 100),
        // 5 records of at least 96 bytes: more than the room left.
        payloads.batch(5, 80, 140),
        payloads.append(20, 60),
        Op::Sync,
        // More records than one device write carries.
        payloads.batch(BATCH_RECORDS_PER_WRITE + 6, 0, 16),
        Op::Sync,
    ];
    Workload {
        name: "manual batches starting a segment and spanning two device writes",
        durability: Durability::Manual,
        prefix: prefix.store,
        prefix_model: prefix.model,
        ops,
    }
}

fn checkpoint(seed: u64) -> Workload {
    let mut payloads = Payloads::new(seed, 4);
    let prefix = build_prefix(
        &mut payloads,
        (40, 300),
        |wal| wal.segment_count() == 4 && active_written(wal) > 1000,
        false,
    );
    let next = prefix.model.next_lsn();
    let ops = vec![
        // Every record of the two oldest segments: both go.
        Op::Checkpoint(prefix.bases[2] - 1),
        payloads.append(20, 100),
        // Everything but the active segment.
        Op::Checkpoint(next),
        payloads.append(20, 100),
    ];
    Workload {
        name: "checkpoints removing sealed segments",
        durability: Durability::Sync,
        prefix: prefix.store,
        prefix_model: prefix.model,
        ops,
    }
}

fn truncate_active(seed: u64) -> Workload {
    let mut payloads = Payloads::new(seed, 5);
    let prefix = build_prefix(
        &mut payloads,
        (40, 200),
        |wal| wal.segment_count() == 2 && wal.next_lsn().0 >= wal.segments()[1].header.base_lsn + 4,
        false,
    );
    let base = prefix.bases[1];
    let ops = vec![
        payloads.append(20, 80),
        payloads.append(20, 80),
        // Below the two unsynced appends, inside the active segment.
        Op::TruncateAfter(base + 1),
        payloads.append(20, 80),
        Op::Sync,
        payloads.batch(3, 20, 80),
        // Into the batch: keeps its first two records.
        Op::TruncateAfter(base + 4),
        payloads.append(20, 80),
        Op::Sync,
    ];
    Workload {
        name: "truncate_after inside the active segment",
        durability: Durability::Manual,
        prefix: prefix.store,
        prefix_model: prefix.model,
        ops,
    }
}

fn truncate_sealed(seed: u64) -> Workload {
    let mut payloads = Payloads::new(seed, 6);
    let prefix = build_prefix(
        &mut payloads,
        (40, 300),
        |wal| wal.segment_count() == 3 && active_written(wal) > 500,
        true,
    );
    let middle_of_first = (prefix.bases[0] + prefix.bases[1]) / 2;
    let ops = vec![
        Op::TruncateAfter(middle_of_first),
        payloads.append(20, 120),
        payloads.append(20, 120),
        // Down to an empty log.
        Op::TruncateAfter(prefix.model.first_lsn - 1),
        payloads.append(20, 120),
        payloads.batch(2, 20, 120),
    ];
    Workload {
        name: "truncate_after inside a sealed segment, then to an empty log",
        durability: Durability::Sync,
        prefix: prefix.store,
        prefix_model: prefix.model,
        ops,
    }
}

/// Leaves less room than a clean-close marker takes in the active segment,
/// unsynced, then closes.
fn close_when_full(seed: u64) -> Workload {
    let mut p = Payloads::new(seed, 7);
    let prefix = build_prefix(&mut p, (40, 200), |wal| wal.next_lsn().0 > 3, false);
    // 40 bytes take 56; then a record ending 24 bytes before the segment
    // end, where a marker takes 32.
    let written_after_first = prefix.active_written + 56;
    let last_extent = u64::from(SEGMENT_BYTES) - 24 - written_after_first;
    let last_len = usize::try_from(last_extent - 16).expect("small");
    let ops = vec![
        p.append(40, 40),
        Op::Sync,
        p.append(last_len, last_len),
        Op::Close,
    ];
    Workload {
        name: "a clean close of a segment with no room for its marker",
        durability: Durability::Manual,
        prefix: prefix.store,
        prefix_model: prefix.model,
        ops,
    }
}

/// Explores every workload with every derived seed, on as many threads as
/// the machine has; returns each one's name, seed and tally.
fn explore_all(seed: u64, builders: &[Build]) -> Vec<(String, u64, Tally)> {
    let jobs: Vec<(u64, Build)> = (0..SEEDS_PER_WORKLOAD)
        .map(|k| seed.wrapping_add(k.wrapping_mul(0x9E37_79B9)))
        .flat_map(|seed| builders.iter().map(move |&build| (seed, build)))
        .collect();
    let next_job = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    std::thread::scope(|scope| {
        for _ in 0..threads.min(jobs.len()) {
            scope.spawn(|| {
                while let Some(&(seed, build)) = jobs.get(next_job.fetch_add(1, Ordering::Relaxed))
                {
                    let workload = build(seed);
                    let tally = explore(&workload, seed);
                    let entry = (workload.name.to_owned(), seed, tally);
                    results.lock().expect("no panic holding it").push(entry);
                }
            });
        }
    });
    let mut results = results.into_inner().expect("no panic holding it");
    results.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    results
}

/// Prints what each workload explored and returns the total of crash
/// states, first cuts and cuts during recovery together.
fn report(results: &[(String, u64, Tally)]) -> (u64, u64) {
    let (mut states, mut second) = (0, 0);
    for (name, seed, tally) in results {
        println!(
            "{name} (seed {seed:#x}): {} stream bytes, {} store operations, {} cut points, \
             {} crash states, {} more with a second cut during recovery",
            tally.stream_bytes,
            tally.operations,
            tally.cut_points,
            tally.states,
            tally.states_after_second_cut
        );
        states += tally.states;
        second += tally.states_after_second_cut;
    }
    println!("{states} crash states explored, and {second} more with a second cut during recovery");
    (states, second)
}

#[test]
fn every_crash_point_recovers_to_a_state_the_history_allows() {
    let seed = test_seed(DEFAULT_SEED);
    let results = explore_all(
        seed,
        &[
            rotation,
            manual,
            batch_crossing,
            checkpoint,
            truncate_active,
            truncate_sealed,
        ],
    );
    let (states, _) = report(&results);
    assert!(
        states >= STATES_MIN,
        "{states} crash states explored, fewer than {STATES_MIN}"
    );
}

#[test]
fn close_of_a_segment_with_no_room_for_its_marker() {
    let seed = test_seed(DEFAULT_SEED);
    report(&explore_all(seed, &[close_when_full]));
}
