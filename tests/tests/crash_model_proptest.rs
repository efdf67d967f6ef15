//! Model-based test of the write-ahead log: random sequences of operations,
//! crashes and reboots agree with a simple in-memory model.
//!
//! Each case picks `Durability::Sync` or `Manual` and runs up to 60 steps
//! on the core `Wal` over a `RamStore` with 2 KiB segments (so rotations
//! are frequent): `append`, `append_batch`, `sync`, `checkpoint` and
//! `truncate_after` at LSNs valid at that moment, a clean close followed by
//! a power cut and a reopen, a crash between operations, a power cut at a
//! chosen byte of an append or a batch (1-byte or 512-byte torn units), and
//! a `sync` that fails (the writes since the last good sync dropped, as
//! Linux does after a writeback error). Every crash reboots under a crash
//! model drawn by the case (`Durable`, `Live`, a subset mask or a seeded
//! random subset in a random order).
//!
//! The model holds the payload of every LSN, the next LSNs that would split
//! a batch, and how far records are acknowledged (any `Ok` under `Sync`; a
//! `sync` or close under `Manual`, where a `truncate_after` acknowledges
//! nothing but drops what it cuts). After each operation the log's first
//! and next LSNs must be the model's; after a clean close and a power cut
//! its records must be exactly the model's, with no torn tail; after a
//! crash it must open and hold every acknowledged record, then at most a
//! prefix of the rest that splits no batch, each record with its LSN and
//! bytes. The model then adopts what survived. After a failed sync the log
//! must refuse `sync` and `append` with `Poisoned`: a later sync that
//! returned `Ok` would claim durability for writes the device dropped.
//! Counters of what the cases did (crashes that lost records, crashes that
//! kept unacknowledged ones, failed syncs, segments created) must show
//! each side was exercised.
//!
//! The proptest RNG is seeded from the printed seed (`SEGWAL_TEST_SEED`
//! replaces it), so a run replays exactly; a failure prints the shrunk
//! sequence of steps. 128 cases take about a second in a debug build. An
//! ignored test replays the case one in four seeds shrinks to, a bug: a
//! `Manual` close of a segment with no room for its marker does not sync.

use std::cell::RefCell;
use std::collections::BTreeSet;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use segwal::{Durability, Error, Lsn, WalConfig, WalTailState};
use segwal_ram::{CrashModel, FaultPlan, RamStore, TornFill};
use segwal_tests::{payload, test_seed};

const SEGMENT_BYTES: u32 = 2048;
const SEGMENTS_MAX: usize = 64;
const BUFFER_BYTES: usize = 8192;
const CASES: u32 = 128;
const STEPS_MAX: usize = 60;
const PAYLOAD_BYTES_MAX: usize = 300;
const BATCH_RECORDS_MAX: usize = 6;
const DEFAULT_SEED: u64 = 0x0DE1_BA5E;

type Wal = segwal::Wal<RamStore, Box<[u8]>, SEGMENTS_MAX>;

fn open(store: RamStore, durability: Durability) -> Result<Wal, Error<segwal_ram::RamError>> {
    let config = WalConfig {
        segment_size_bytes: SEGMENT_BYTES,
        durability,
        ..WalConfig::default()
    };
    segwal::Wal::open(store, config, vec![0u8; BUFFER_BYTES].into_boxed_slice())
}

/// What survives a crash.
#[derive(Debug, Clone)]
enum Survivors {
    Durable,
    Live,
    Subset(u64),
    Random(u64),
}

impl Survivors {
    fn model(&self) -> CrashModel {
        match *self {
            Survivors::Durable => CrashModel::Durable,
            Survivors::Live => CrashModel::Live,
            Survivors::Subset(mask) => CrashModel::Subset(mask),
            Survivors::Random(seed) => CrashModel::Random { seed },
        }
    }
}

/// One step of a case. LSN picks are reduced to a valid LSN when the step
/// runs; payload lengths become payloads from the seed.
#[derive(Debug, Clone)]
enum Step {
    Append(usize),
    Batch(Vec<usize>),
    Sync,
    Checkpoint(u64),
    TruncateAfter(u64),
    CloseAndReopen,
    Crash(Survivors),
    /// Cut the power at this byte of an append batch (1-byte or 512-byte
    /// torn unit), then crash.
    CutDuringBatch {
        byte: u64,
        sector: bool,
        lens: Vec<usize>,
        survivors: Survivors,
    },
    /// Append, with the next sync failing, then crash.
    SyncFails(usize, Survivors),
}

fn survivors() -> impl Strategy<Value = Survivors> {
    prop_oneof![
        Just(Survivors::Durable),
        Just(Survivors::Live),
        any::<u64>().prop_map(Survivors::Subset),
        any::<u64>().prop_map(Survivors::Random),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let len = || 0..=PAYLOAD_BYTES_MAX;
    let lens = move || vec(len(), 1..=BATCH_RECORDS_MAX);
    prop_oneof![
        30 => len().prop_map(Step::Append),
        10 => lens().prop_map(Step::Batch),
        10 => Just(Step::Sync),
        6 => any::<u64>().prop_map(Step::Checkpoint),
        6 => any::<u64>().prop_map(Step::TruncateAfter),
        6 => Just(Step::CloseAndReopen),
        10 => survivors().prop_map(Step::Crash),
        8 => (0u64..1200, any::<bool>(), lens(), survivors()).prop_map(
            |(byte, sector, lens, survivors)| Step::CutDuringBatch {
                byte,
                sector,
                lens,
                survivors,
            }
        ),
        4 => (len(), survivors()).prop_map(|(len, survivors)| Step::SyncFails(len, survivors)),
    ]
}

/// The reference log.
#[derive(Debug)]
struct Model {
    first_lsn: u64,
    /// The payload of LSN `i + 1` at index `i` (checkpointed ones kept).
    payloads: Vec<Vec<u8>>,
    /// Next LSNs that would split a batch.
    inside_batches: BTreeSet<u64>,
    /// Every LSN below this is acknowledged.
    acked_next: u64,
}

impl Model {
    fn next_lsn(&self) -> u64 {
        self.payloads.len() as u64 + 1
    }

    fn push_batch(&mut self, payloads: &[Vec<u8>]) {
        for (index, bytes) in payloads.iter().enumerate() {
            if index > 0 {
                self.inside_batches.insert(self.next_lsn());
            }
            self.payloads.push(bytes.clone());
        }
    }

    /// Drops every record after `lsn`; the acknowledged ones after it go
    /// too (a truncation acknowledges nothing: under `Manual` only `sync`
    /// and close do).
    fn truncate_after(&mut self, lsn: u64) {
        self.payloads
            .truncate(usize::try_from(lsn).expect("small LSN"));
        self.inside_batches.retain(|&next| next <= lsn);
        self.acked_next = self.acked_next.min(lsn + 1);
    }

    fn acknowledge(&mut self) {
        self.acked_next = self.next_lsn();
    }
}

/// What the cases did, summed: the proof that they exercise what the test
/// claims.
#[derive(Debug, Default)]
struct Coverage {
    steps: u64,
    crashes: u64,
    /// Crashes that lost appended records that were not acknowledged.
    crashes_losing_records: u64,
    /// Crashes after which unacknowledged records were still there.
    crashes_keeping_unacknowledged: u64,
    failed_syncs: u64,
    /// Segments created, by rotation or truncation.
    segments_created: u64,
}

/// One case being run: the log, the model and where payloads come from.
struct Case<'c> {
    seed: u64,
    durability: Durability,
    wal: Wal,
    model: Model,
    next_tag: u64,
    coverage: &'c RefCell<Coverage>,
}

impl Case<'_> {
    fn payload(&mut self, len: usize) -> Vec<u8> {
        self.next_tag += 1;
        payload(self.seed, self.next_tag, len)
    }

    fn check_lsns(&self, what: &str) -> Result<(), TestCaseError> {
        prop_assert_eq!(
            (self.wal.first_lsn().0, self.wal.next_lsn().0),
            (self.model.first_lsn, self.model.next_lsn()),
            "(first, next) LSN after {}",
            what
        );
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        let newest = self.newest_sequence();
        self.coverage.borrow_mut().steps += 1;
        match step {
            Step::Append(len) => {
                let bytes = self.payload(*len);
                self.append(vec![bytes])?;
            }
            Step::Batch(lens) => {
                let payloads = lens.iter().map(|&len| self.payload(len)).collect();
                self.append(payloads)?;
            }
            Step::Sync => {
                self.wal.sync().map_err(fail("sync"))?;
                self.model.acknowledge();
            }
            Step::Checkpoint(pick) => self.checkpoint(*pick)?,
            Step::TruncateAfter(pick) => self.truncate_after(*pick)?,
            Step::CloseAndReopen => self.close_and_reopen()?,
            Step::Crash(survivors) => self.crash(survivors)?,
            Step::CutDuringBatch {
                byte,
                sector,
                lens,
                survivors,
            } => self.cut_during_batch(*byte, *sector, lens, survivors)?,
            Step::SyncFails(len, survivors) => self.sync_fails(*len, survivors)?,
        }
        // A crash can delete a segment whose creation it cut short.
        self.coverage.borrow_mut().segments_created +=
            self.newest_sequence().saturating_sub(newest);
        self.check_lsns(&format!("{step:?}"))
    }

    fn newest_sequence(&self) -> u64 {
        self.wal.segments().last().map_or(0, |s| s.header.sequence)
    }

    fn append(&mut self, payloads: Vec<Vec<u8>>) -> Result<(), TestCaseError> {
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let lsns = self.wal.append_batch(&refs).map_err(fail("append"))?;
        prop_assert_eq!(
            lsns.start.0,
            self.model.next_lsn(),
            "first LSN of the batch"
        );
        self.model.push_batch(&payloads);
        if self.durability == Durability::Sync {
            self.model.acknowledge();
        }
        Ok(())
    }

    fn checkpoint(&mut self, pick: u64) -> Result<(), TestCaseError> {
        let (first, next) = (self.model.first_lsn, self.model.next_lsn());
        if next == first {
            return Ok(());
        }
        let lsn = first + pick % (next - first);
        self.wal.checkpoint(Lsn(lsn)).map_err(fail("checkpoint"))?;
        let new_first = self.wal.first_lsn().0;
        prop_assert!(
            first <= new_first && new_first <= lsn + 1,
            "checkpoint({}) moved the first LSN from {} to {}",
            lsn,
            first,
            new_first
        );
        self.model.first_lsn = new_first;
        Ok(())
    }

    fn truncate_after(&mut self, pick: u64) -> Result<(), TestCaseError> {
        let (first, next) = (self.model.first_lsn, self.model.next_lsn());
        let lsn = first - 1 + pick % (next - first + 1);
        self.wal
            .truncate_after(Lsn(lsn))
            .map_err(fail("truncate_after"))?;
        self.model.truncate_after(lsn);
        if self.durability == Durability::Sync {
            self.model.acknowledge();
        }
        Ok(())
    }

    /// A clean close, the power off (only synced bytes kept), and a reopen,
    /// which must find exactly the model's records and no torn tail.
    fn close_and_reopen(&mut self) -> Result<(), TestCaseError> {
        self.wal.close_in_place().map_err(fail("close"))?;
        self.model.acknowledge();
        let store = self.wal.store_mut().reboot_with(&CrashModel::Durable);
        self.wal = open(store, self.durability).map_err(fail("reopen after close"))?;
        prop_assert_eq!(self.wal.tail_state(), WalTailState::Clean, "after a close");
        let (first, payloads) = read_back(&mut self.wal)?;
        prop_assert_eq!(first, self.model.first_lsn, "first LSN after a close");
        let next = first + payloads.len() as u64;
        prop_assert_eq!(
            next,
            self.model.next_lsn(),
            "next LSN after a clean close and a power cut (records the close acknowledged \
             were lost)"
        );
        prop_assert!(
            payloads == self.model.payloads[model_index(first)..],
            "records after a clean close differ from the model"
        );
        Ok(())
    }

    /// The power fails now; the store reboots under `survivors`.
    fn crash(&mut self, survivors: &Survivors) -> Result<(), TestCaseError> {
        let store = self.wal.store_mut().reboot_with(&survivors.model());
        self.wal = open(store, self.durability).map_err(fail("reopen after a crash"))?;
        let (first, payloads) = read_back(&mut self.wal)?;
        let model = &mut self.model;
        let next = first + payloads.len() as u64;
        prop_assert_eq!(first, model.first_lsn, "first LSN after a crash");
        prop_assert!(
            model.acked_next <= next && next <= model.next_lsn(),
            "after a crash next LSN {} is outside {}..={} (acknowledged..appended)",
            next,
            model.acked_next,
            model.next_lsn()
        );
        prop_assert!(
            next == model.acked_next || !model.inside_batches.contains(&next),
            "after a crash the log ends inside a batch, at next LSN {}",
            next
        );
        for (lsn, bytes) in (first..).zip(&payloads) {
            prop_assert!(
                model.payloads[model_index(lsn)] == *bytes,
                "after a crash LSN {} holds bytes never appended there",
                lsn
            );
        }
        let mut coverage = self.coverage.borrow_mut();
        coverage.crashes += 1;
        coverage.crashes_losing_records += u64::from(next < model.next_lsn());
        coverage.crashes_keeping_unacknowledged += u64::from(next > model.acked_next);
        // What survived is durable now: the reboot made it so.
        model.truncate_after(next - 1);
        model.acknowledge();
        Ok(())
    }

    fn cut_during_batch(
        &mut self,
        byte: u64,
        sector: bool,
        lens: &[usize],
        survivors: &Survivors,
    ) -> Result<(), TestCaseError> {
        let plan = FaultPlan::new(self.seed ^ byte)
            .power_cut_at_byte(byte)
            .torn_unit_bytes(if sector { 512 } else { 1 })
            .torn_fill(TornFill::Mixed);
        self.wal.store_mut().set_fault_plan(plan);
        let payloads: Vec<Vec<u8>> = lens.iter().map(|&len| self.payload(len)).collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        match self.wal.append_batch(&refs) {
            Ok(_) if self.durability == Durability::Sync => {
                self.model.push_batch(&payloads);
                self.model.acknowledge();
            }
            Ok(_) | Err(Error::Device(_)) => self.model.push_batch(&payloads),
            Err(other) => return Err(fail("append_batch with a power cut")(other)),
        }
        self.crash(survivors)
    }

    fn sync_fails(&mut self, len: usize, survivors: &Survivors) -> Result<(), TestCaseError> {
        self.wal
            .store_mut()
            .set_fault_plan(FaultPlan::new(self.seed).sync_failure(0));
        let bytes = self.payload(len);
        let appended = self.wal.append(&bytes).and_then(|_| self.wal.sync());
        prop_assert!(
            matches!(appended, Err(Error::Device(_))),
            "append and sync with a failing sync returned {:?}",
            appended
        );
        self.model.push_batch(&[bytes]);
        self.coverage.borrow_mut().failed_syncs += 1;
        prop_assert!(
            matches!(self.wal.sync(), Err(Error::Poisoned)),
            "sync after a failed sync must refuse"
        );
        prop_assert!(
            matches!(self.wal.append(b"after"), Err(Error::Poisoned)),
            "append after a failed sync must refuse"
        );
        self.crash(survivors)
    }
}

fn model_index(lsn: u64) -> usize {
    usize::try_from(lsn - 1).expect("small LSN")
}

fn fail<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> TestCaseError {
    move |e| TestCaseError::fail(format!("{what}: {e}"))
}

/// The log's first LSN and payloads, by iteration (which must be dense up
/// to `next_lsn`).
fn read_back(wal: &mut Wal) -> Result<(u64, Vec<Vec<u8>>), TestCaseError> {
    let (first, next) = (wal.first_lsn().0, wal.next_lsn().0);
    let mut payloads = Vec::new();
    let mut iter = wal.iter();
    while let Some(item) = iter.next_record() {
        let (lsn, bytes) = item.map_err(fail("iterate"))?;
        prop_assert_eq!(lsn.0, first + payloads.len() as u64, "dense LSNs");
        payloads.push(bytes.to_vec());
    }
    prop_assert_eq!(
        first + payloads.len() as u64,
        next,
        "iteration ends at next_lsn"
    );
    Ok((first, payloads))
}

fn run_case(
    seed: u64,
    manual: bool,
    steps: &[Step],
    coverage: &RefCell<Coverage>,
) -> Result<(), TestCaseError> {
    let durability = if manual {
        Durability::Manual
    } else {
        Durability::Sync
    };
    let wal = open(RamStore::new(seed), durability).map_err(fail("open a new log"))?;
    let mut case = Case {
        seed,
        durability,
        wal,
        model: Model {
            first_lsn: segwal::FIRST_LSN,
            payloads: Vec::new(),
            inside_batches: BTreeSet::new(),
            acked_next: segwal::FIRST_LSN,
        },
        next_tag: 0,
        coverage,
    };
    for step in steps {
        case.step(step)?;
    }
    // Everything acknowledged must survive a crash that keeps nothing else.
    case.crash(&Survivors::Durable)?;
    case.close_and_reopen()
}

#[test]
fn random_operations_and_crashes_agree_with_the_model() {
    let seed = test_seed(DEFAULT_SEED);
    let config = Config {
        cases: CASES,
        rng_seed: RngSeed::Fixed(seed),
        // The seed replays a run; no regression files needed.
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = (any::<bool>(), vec(step(), 1..=STEPS_MAX));
    let coverage = RefCell::new(Coverage::default());
    let result = runner.run(&strategy, |(manual, steps)| {
        run_case(seed, manual, &steps, &coverage)
    });
    if let Err(error) = result {
        panic!("seed {seed:#x}: {error}");
    }
    let coverage = coverage.into_inner();
    println!("seed {seed:#x}: {CASES} cases, {coverage:?}");
    // Without these the model's two sides (lost, kept) go unchecked.
    assert!(coverage.crashes_losing_records > 0, "{coverage:?}");
    assert!(coverage.crashes_keeping_unacknowledged > 0, "{coverage:?}");
    assert!(coverage.failed_syncs > 0, "{coverage:?}");
    assert!(coverage.segments_created > u64::from(CASES), "{coverage:?}");
}

/// The case seed `0x10` shrinks to: `Manual` appends that leave the active
/// segment less room than a clean-close marker takes, one of them after
/// the last `sync`, then a clean close and a power cut.
#[test]
fn a_close_without_room_for_its_marker_still_makes_appends_durable() {
    let steps = [
        Step::Append(265),
        Step::Batch(vec![177, 161, 57, 25, 281, 129]),
        Step::Append(145),
        Step::Append(65),
        Step::Append(41),
        Step::Append(241),
        Step::Sync,
        Step::Append(97),
        Step::CloseAndReopen,
    ];
    let coverage = RefCell::new(Coverage::default());
    if let Err(error) = run_case(0x10, true, &steps, &coverage) {
        panic!("seed 0x10: {error}");
    }
}
