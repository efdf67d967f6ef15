//! The comparison benchmark of issue #6: the same seven workloads on segwal,
//! on the crates.io versions of the crates it replaces (seglog 0.3, walogs
//! 0.1) and of okaywal 0.3, and on a raw baseline of positional system
//! calls, interleaved in one run, with a table of medians and ratios.
//!
//! ```text
//! cargo bench -p segwal-benches --bench peers              # full, < 5 min
//! cargo bench -p segwal-benches --bench peers -- --quick   # quick, < 1 min
//! SEGWAL_BENCH_QUICK=1 cargo bench -p segwal-benches --bench peers
//! cargo bench -p segwal-benches --bench peers -- w1 w4     # some workloads
//! ```
//!
//! | id | workload | raw baseline |
//! |----|----------|--------------|
//! | W1 | 128-byte records, each durable before the next | `pwrite` + `fdatasync` |
//! | W2 | 128-byte records, durable every 64 | one `pwrite` of 64 records + `fdatasync` |
//! | W3 | 1,000,000 records of 128 bytes, one sync at the end | 64 KiB `pwrite`s + one `fdatasync` |
//! | W4 | 200,000 records of 100 bytes read in random order by their handle | `pread` of the 100 bytes |
//! | W5 | sequential scan of those records, checksums verified | 64 KiB `pread`s + hardware CRC32C |
//! | W6 | open a cleanly closed log of 1,000,000 records of 100 bytes | list, open, read the headers |
//! | W7 | 4 threads, 128-byte records, each durable when its append returns | 4 threads of `pwrite` + `fdatasync` |
//!
//! **Rounds.** Each workload runs its sides round-robin: every round runs
//! every side once, the first side moving by one each round
//! (`segwal_benches::rounds`), and a side's figure is the median of its
//! rounds. The durable workloads (W1, W2, W7) are sliced: each round
//! sets up every side, then runs a tenth of each side's records in turn,
//! ten times over, so that every side meets the same stretches of fast and
//! slow `fdatasync`s of a shared disk. Set-up (creating and preallocating
//! files, building the logs read in W4 to W6, a first unmeasured append and
//! sync) and clean-up are outside the measured span; each run of an
//! appending workload starts on a fresh directory, deleted afterwards so
//! its dirty pages are dropped. Reads look each record's handle (offset,
//! LSN, position) up in a table, the raw baseline's offsets included.
//!
//! **Same footing.** Every side appends the same payloads with the same
//! durability: in W1 each record is on disk (`fdatasync` returned) before
//! the next append starts, in W2 every 64th, in W3 only at the end. Where a
//! library has a knob for it, its space is preallocated for the whole
//! workload before the clock starts, as the raw baseline's zero-filled file
//! is (segwal's segment size, seglog's segment size, okaywal's
//! `preallocate_bytes`); W3 also shows segwal with its default 64 MiB
//! segments, rotating inside the measured span. A library that cannot do a
//! workload is printed as n/a with the reason.
//!
//! **segwal's figure** in the ratios is the best of the rows of its public
//! API that do the workload: the log (`Wal`, `SharedWal`) and the
//! single-segment `Writer`/`Reader` (the counterpart of seglog). Both rows
//! are printed.
//!
//! **Files.** Everything lives under the target directory's `tmp/` (a real
//! disk here, so `fdatasync` reaches the device; `/tmp` may be a tmpfs
//! elsewhere). The 10-million-record log of W6 is the one `wal.rs` builds
//! (`tmp/wal-bench/`), reused when present.
//!
//! The raw baselines use std's positional I/O (`FileExt::write_at`,
//! `read_exact_at`, `File::sync_data`), which issue exactly `pwrite64`,
//! `pread64` and `fdatasync` (checked with `strace`), without the `unsafe`
//! that direct `libc` calls would need and the workspace forbids.

// The sides and the report live beside this file, in `peers/`: a bench
// target's root resolves modules next to itself, hence the paths.
#[path = "peers/okaywal_side.rs"]
mod okaywal_side;
#[path = "peers/raw.rs"]
mod raw;
#[path = "peers/report.rs"]
mod report;
#[path = "peers/seglog_side.rs"]
mod seglog_side;
#[path = "peers/segwal_side.rs"]
mod segwal_side;
#[path = "peers/walogs_side.rs"]
mod walogs_side;

use std::path::Path;
use std::time::Instant;

use segwal_benches::rounds::{Side, run_rounds};
use segwal_benches::{payload, permutation, timed_threads};
use tempfile::TempDir;

use report::{Role, Row, Unit, WorkloadReport};

/// Payload of every appended record (W1, W2, W3, W7).
const APPEND_LEN_BYTES: usize = 128;
/// Records made durable together in W2.
const GROUP_RECORDS: usize = 64;
/// Payload of the records of the logs built for W4, W5 and W6.
const BUILT_LEN_BYTES: usize = 100;
/// Records per batch (and per sync) while building a log.
const BUILD_BATCH_RECORDS: usize = 1000;
/// Appending threads of W7.
const THREADS: usize = 4;
/// Preallocated space of W1, W2 and W7 (segment, file or preallocation).
const SMALL_CAPACITY_BYTES: u64 = 16 << 20;
/// Preallocated space of the logs read in W4 and W5.
const READ_CAPACITY_BYTES: u64 = 64 << 20;
/// Seed of the random order of W4: the same order on every run.
const READ_ORDER_SEED: u64 = 0x5EED_0F5E_6A11_0006;

/// How much each workload does.
#[derive(Debug, Clone, Copy)]
struct Scale {
    /// Printed in the report.
    name: &'static str,
    /// Rounds per workload.
    rounds: usize,
    /// Slices of each round of W1, W2 and W7 (see `rounds::Side::sliced`).
    slices: u64,
    /// W1 records per run.
    durable_records: u64,
    /// W2 groups of 64 per run.
    group_count: u64,
    /// W3 records per run.
    buffered_records: u64,
    /// W4 and W5: records of the log (each read once per W4 run).
    read_records: u64,
    /// W6: records of the log every side opens.
    open_records: u64,
    /// W6: records of segwal's larger log, to show its open is flat.
    open_records_large: u64,
    /// W7 records per run, all threads together.
    concurrent_records: u64,
}

/// The full comparison: under 5 minutes on the 2-core machine of
/// BENCHMARKS.md.
const FULL: Scale = Scale {
    name: "full",
    rounds: 5,
    slices: 10,
    durable_records: 1000,
    group_count: 200,
    buffered_records: 1_000_000,
    read_records: 200_000,
    open_records: 1_000_000,
    open_records_large: 10_000_000,
    concurrent_records: 2000,
};

/// The quick check: under a minute, same workloads, fewer records and
/// rounds. W6 opens logs of 100,000 records, segwal also one of 1,000,000.
const QUICK: Scale = Scale {
    name: "quick",
    rounds: 3,
    slices: 5,
    durable_records: 300,
    group_count: 60,
    buffered_records: 200_000,
    read_records: 50_000,
    open_records: 100_000,
    open_records_large: 1_000_000,
    concurrent_records: 800,
};

/// Preallocated space of W3 for `records` records: 200 bytes per record
/// (segwal's 144-byte extent stays under three quarters of it, where it
/// would start preparing a next segment), in whole MiB.
fn buffered_capacity_bytes(records: u64) -> u64 {
    (records * 200).next_multiple_of(1 << 20)
}

/// Space of a single-file log of W6 (seglog's segment, okaywal's
/// preallocation) for `records` records of 100 bytes: 128 bytes per record
/// covers either's framing, in whole MiB.
fn open_capacity_bytes(records: u64) -> u64 {
    (records * 128).next_multiple_of(1 << 20)
}

/// A fresh directory under the target directory (a real disk).
fn fresh_dir() -> TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("bench dir")
}

/// The payload of record `index` of a built log: the fixed pattern with
/// the index in its first 8 bytes, so a read can check it got the right
/// record.
fn indexed_payload(index: u64) -> Vec<u8> {
    let mut record = payload(BUILT_LEN_BYTES);
    record[..8].copy_from_slice(&index.to_le_bytes());
    record
}

/// The index a built record carries (see [`indexed_payload`]).
///
/// # Panics
///
/// When the record is shorter than 8 bytes.
fn index_of(record: &[u8]) -> u64 {
    u64::from_le_bytes(record[..8].try_into().expect("8 bytes"))
}

/// Runs the rounds of one workload and prints its progress on stderr.
fn measure(id: &'static str, rounds: usize, sides: &mut [Side<'_>]) -> Vec<report::Measured> {
    let started = Instant::now();
    let outcomes = run_rounds(sides, rounds, |name, elapsed| {
        eprintln!("  {id} {name:<34} {elapsed:>12.2?}");
    });
    eprintln!("{id} done in {:.1?}", started.elapsed());
    sides
        .iter()
        .zip(outcomes)
        .map(|(side, outcome)| (side.name, outcome))
        .collect()
}

/// The raw W1 variant on a fallocated file, shown for information.
const RAW_FALLOCATED: &str = "raw pwrite+fdatasync, fallocated file";

fn w1_durable(scale: &Scale) -> WorkloadReport {
    let (records, slices) = (scale.durable_records, scale.slices);
    let mut sides = vec![
        Side::sliced("raw pwrite+fdatasync", records, slices, || {
            raw::SyncedWrites::new(1)
        }),
        Side::sliced("segwal Wal (Sync)", records, slices, || {
            segwal_side::WalAppends::new(1)
        }),
        Side::sliced("segwal Writer (append+sync)", records, slices, || {
            segwal_side::WriterAppends::new(1)
        }),
        Side::sliced("seglog (append+commit)", records, slices, || {
            seglog_side::Appends::new(1)
        }),
        Side::sliced(
            "walogs (append)",
            records,
            slices,
            walogs_side::Appends::new,
        ),
        Side::sliced("okaywal (entry+commit)", records, slices, || {
            okaywal_side::Entries::new(1, 1)
        }),
        Side::sliced(RAW_FALLOCATED, records, slices, || {
            raw::SyncedWrites::new_fallocated(1)
        }),
    ];
    let measured = measure("W1", scale.rounds, &mut sides);
    WorkloadReport {
        id: "W1",
        title: format!(
            "durable append: {records} records of {APPEND_LEN_BYTES} B per run, each durable before the next"
        ),
        unit: Unit::PerItem {
            items: records,
            item: "record",
        },
        rows: roles(measured, &[RAW_FALLOCATED]),
        target: report::Target::OfRaw(0.9),
    }
}

fn w2_groups(scale: &Scale) -> WorkloadReport {
    let (groups, slices) = (scale.group_count, scale.slices);
    let records = groups * GROUP_RECORDS as u64;
    let mut sides = vec![
        Side::sliced("raw pwrite 8 KiB+fdatasync", groups, slices, || {
            raw::SyncedWrites::new(GROUP_RECORDS)
        }),
        Side::sliced("segwal Wal append_batch (Sync)", groups, slices, || {
            segwal_side::WalAppends::new(GROUP_RECORDS)
        }),
        Side::sliced("segwal Writer append_batch+sync", groups, slices, || {
            segwal_side::WriterAppends::new(GROUP_RECORDS)
        }),
        Side::sliced("seglog append_batch", groups, slices, || {
            seglog_side::Appends::new(GROUP_RECORDS)
        }),
        Side::not_applicable(
            "walogs",
            "no batch and no manual sync: every append fdatasyncs (that is W1)",
        ),
        Side::sliced("okaywal entry of 64 chunks", groups, slices, || {
            okaywal_side::Entries::new(GROUP_RECORDS, 1)
        }),
    ];
    let measured = measure("W2", scale.rounds, &mut sides);
    WorkloadReport {
        id: "W2",
        title: format!(
            "group durability: {groups} groups of {GROUP_RECORDS} records of {APPEND_LEN_BYTES} B per run, one fdatasync per group"
        ),
        unit: Unit::PerItem {
            items: records,
            item: "record",
        },
        rows: roles(measured, &[]),
        target: report::Target::OfRaw(0.8),
    }
}

fn w3_buffered(scale: &Scale) -> WorkloadReport {
    let records = scale.buffered_records;
    let mut sides = vec![
        Side::run("raw 64 KiB pwrites+fdatasync", || {
            raw::buffered(fresh_dir().path(), records)
        }),
        Side::run("segwal Wal (Manual, 64 KiB buffer)", || {
            segwal_side::wal_buffered(fresh_dir().path(), records)
        }),
        Side::run(
            "segwal Wal (Manual, 64 KiB buffer), 64 MiB segments",
            || segwal_side::wal_buffered_default_segments(fresh_dir().path(), records),
        ),
        Side::run("segwal Writer (64 KiB buffer)", || {
            segwal_side::writer_buffered(fresh_dir().path(), records)
        }),
        Side::run("seglog append+commit", || {
            seglog_side::buffered(fresh_dir().path(), records)
        }),
        Side::not_applicable("walogs", "every append fdatasyncs: no buffered appends"),
        Side::run("okaywal one entry", || {
            okaywal_side::buffered(fresh_dir().path(), records)
        }),
    ];
    let measured = measure("W3", scale.rounds, &mut sides);
    WorkloadReport {
        id: "W3",
        title: format!(
            "buffered append: {records} records of {APPEND_LEN_BYTES} B per run, one sync at the end"
        ),
        unit: Unit::PerItem {
            items: records,
            item: "record",
        },
        rows: roles(
            measured,
            &["segwal Wal (Manual, 64 KiB buffer), 64 MiB segments"],
        ),
        target: report::Target::OfRaw(0.95),
    }
}

/// W4 and W5 share their logs: each side builds its log of
/// `scale.read_records` records once, W4 reads it in random order, W5
/// scans it.
fn w4_w5_reads(scale: &Scale) -> [WorkloadReport; 2] {
    let records = scale.read_records;
    let count = usize::try_from(records).expect("fits memory");
    let order = permutation(count, READ_ORDER_SEED);
    eprintln!("W4/W5: building the logs of {records} records");
    let dir = fresh_dir();
    let mut raw = raw::Reads::build(&dir.path().join("raw"), records);
    let mut wal = segwal_side::WalReads::build(&dir.path().join("segwal-wal"), records);
    let mut segment = segwal_side::SegmentReads::build(&dir.path().join("segwal-seg"), records);
    let mut seglog = seglog_side::Reads::build(&dir.path().join("seglog"), records);
    let mut walogs = walogs_side::Reads::build(&dir.path().join("walogs"), records);
    let mut okaywal = okaywal_side::Reads::build(&dir.path().join("okaywal"), records);
    // One unmeasured pass of each: the page cache is warm for everyone
    // (each reads its own file once), and lazy state is built.
    raw.random_reads(&order);
    wal.random_reads(&order);
    segment.random_reads(&order);
    seglog.random_reads(&order);
    okaywal.random_reads(&order);
    walogs.scan();

    let mut random = vec![
        Side::run("raw pread 100 B", || raw.random_reads(&order)),
        Side::run("segwal Wal::read_into", || wal.random_reads(&order)),
        Side::run("segwal Reader::read_record", || {
            segment.random_reads(&order)
        }),
        Side::run("seglog Reader::read_record", || seglog.random_reads(&order)),
        Side::not_applicable(
            "walogs",
            "no read by LSN: iter() walks the log from its start",
        ),
        Side::run("okaywal read_at", || okaywal.random_reads(&order)),
    ];
    let random_measured = measure("W4", scale.rounds, &mut random);
    drop(random);
    // Two ways of scanning the one segment, by turns.
    let segment = std::cell::RefCell::new(segment);
    let mut scans = vec![
        Side::run("raw pread 64 KiB+crc32c", || raw.scan()),
        Side::run("segwal Wal::iter (next_borrowed)", || wal.scan()),
        Side::run("segwal Reader::read_record loop", || {
            segment.borrow_mut().scan()
        }),
        Side::run("segwal Reader::read_batch loop", || {
            segment.borrow_mut().scan_batches()
        }),
        Side::run("seglog Reader::iter", || seglog.scan()),
        Side::run("walogs iter", || walogs.scan()),
        Side::run("okaywal recovery scan", || okaywal.scan()),
    ];
    let scan_measured = measure("W5", scale.rounds, &mut scans);
    drop(scans);
    [
        WorkloadReport {
            id: "W4",
            title: format!(
                "random read: {records} records of {BUILT_LEN_BYTES} B, each read once per run in random order by its handle, page cache warm"
            ),
            unit: Unit::PerItem {
                items: records,
                item: "read",
            },
            rows: roles(random_measured, &[]),
            target: report::Target::OfRaw(0.8),
        },
        WorkloadReport {
            id: "W5",
            title: format!(
                "sequential scan of the {records} records, checksums verified, page cache warm"
            ),
            unit: Unit::Throughput {
                bytes: records * BUILT_LEN_BYTES as u64,
            },
            rows: roles(scan_measured, &[]),
            target: report::Target::OfPeer("seglog Reader::iter", 2.0),
        },
    ]
}

fn w6_open(scale: &Scale) -> WorkloadReport {
    let records = scale.open_records;
    let large = scale.open_records_large;
    eprintln!("W6: building the logs of {records} records");
    let dir = fresh_dir();
    let wal_dir = dir.path().join("segwal");
    segwal_side::build_log(&wal_dir, records);
    let large_dir = segwal_side::kept_log(large);
    let seglog = seglog_side::OpenFixture::build(&dir.path().join("seglog"), records);
    let walogs_dir = dir.path().join("walogs");
    walogs_side::write_log(&walogs_dir, records);
    let okaywal = okaywal_side::OpenFixture::build(&dir.path().join("okaywal"), records);
    let large_name: &'static str = if large == FULL.open_records_large {
        "segwal Wal::open, 10M records"
    } else {
        "segwal Wal::open, 1M records"
    };
    let mut buffer = vec![0u8; raw::HEADER_BLOCK_BYTES];
    let mut sides = vec![
        Side::run("raw list+open+read headers", || {
            raw::open_log(&wal_dir, &mut buffer)
        }),
        Side::run("segwal Wal::open", || segwal_side::open(&wal_dir, records)),
        Side::run(large_name, || segwal_side::open(&large_dir, large)),
        Side::run("seglog Writer::open", || seglog.open()),
        Side::run("walogs Wal::open", || {
            walogs_side::open(&walogs_dir, records)
        }),
        Side::run("okaywal recover", || okaywal.open()),
    ];
    let measured = measure("W6", scale.rounds, &mut sides);
    drop(sides);
    WorkloadReport {
        id: "W6",
        title: format!(
            "open: a cleanly closed log of {records} records of {BUILT_LEN_BYTES} B, until ready to append (segwal also at {large})"
        ),
        unit: Unit::Time,
        rows: roles(measured, &[large_name]),
        target: report::Target::OpenFlat {
            peer_factor: 20.0,
            small: "segwal Wal::open",
            large: large_name,
        },
    }
}

fn w7_concurrent(scale: &Scale) -> WorkloadReport {
    let (records, slices) = (scale.concurrent_records, scale.slices);
    let mut sides = vec![
        Side::sliced(
            "raw 4 threads pwrite+fdatasync",
            records,
            slices,
            raw::ThreadWrites::new,
        ),
        Side::sliced(
            "segwal SharedWal",
            records,
            slices,
            segwal_side::SharedAppends::new,
        ),
        Side::not_applicable("seglog", "one writer (`&mut self`), no group commit"),
        Side::not_applicable("walogs", "one writer (`&mut self`), no group commit"),
        Side::sliced("okaywal (its own group commit)", records, slices, || {
            okaywal_side::Entries::new(1, THREADS)
        }),
    ];
    let measured = measure("W7", scale.rounds, &mut sides);
    WorkloadReport {
        id: "W7",
        title: format!(
            "concurrent durable appends: {THREADS} threads, {records} records of {APPEND_LEN_BYTES} B per run, each durable when its append returns"
        ),
        unit: Unit::PerItem {
            items: records,
            item: "record",
        },
        rows: roles(measured, &[]),
        target: report::Target::AheadOfPeers,
    }
}

/// Tags each measured side: the first is the raw baseline, sides named
/// `segwal…` are segwal's (those in `informational` are shown but left out
/// of the ratios), the rest are peers.
fn roles(measured: Vec<report::Measured>, informational: &[&str]) -> Vec<Row> {
    measured
        .into_iter()
        .enumerate()
        .map(|(index, (name, outcome))| {
            let role = if index == 0 {
                Role::Raw
            } else if informational.contains(&name) {
                Role::Informational
            } else if name.starts_with("segwal") {
                Role::Segwal
            } else {
                Role::Peer
            };
            Row {
                name,
                role,
                outcome,
            }
        })
        .collect()
}

/// The workloads to run: all, or those named on the command line (`w1`
/// to `w7`).
fn selected(args: &[String]) -> Vec<&'static str> {
    const ALL: [&str; 7] = ["W1", "W2", "W3", "W4", "W5", "W6", "W7"];
    let named: Vec<&'static str> = ALL
        .into_iter()
        .filter(|id| args.iter().any(|arg| arg.eq_ignore_ascii_case(id)))
        .collect();
    if named.is_empty() {
        ALL.to_vec()
    } else {
        named
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|arg| arg == "--quick")
        || std::env::var("SEGWAL_BENCH_QUICK").is_ok_and(|value| value == "1");
    let scale = if quick { QUICK } else { FULL };
    let workloads = selected(&args);
    let started = Instant::now();
    eprintln!(
        "peers: {} mode, {} rounds, workloads {:?}, files under {}",
        scale.name,
        scale.rounds,
        workloads,
        Path::new(env!("CARGO_TARGET_TMPDIR")).display()
    );
    let mut reports = Vec::new();
    let wants = |id: &str| workloads.contains(&id);
    if wants("W1") {
        reports.push(w1_durable(&scale));
    }
    if wants("W2") {
        reports.push(w2_groups(&scale));
    }
    if wants("W3") {
        reports.push(w3_buffered(&scale));
    }
    if wants("W4") || wants("W5") {
        let [random, scan] = w4_w5_reads(&scale);
        reports.extend([random, scan].into_iter().filter(|r| wants(r.id)));
    }
    if wants("W6") {
        reports.push(w6_open(&scale));
    }
    if wants("W7") {
        reports.push(w7_concurrent(&scale));
    }
    report::print(&reports, scale.name, scale.rounds, started.elapsed());
}
