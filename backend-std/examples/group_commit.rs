//! Group commit: many threads append durable records to one `SharedWal`,
//! and one fdatasync covers every record appended while the previous one
//! ran. For comparison, one thread appends durable records to a plain
//! `Wal`, one fdatasync per record, for the same time.
//!
//! The rates depend on the disk: group commit wins when an fdatasync costs
//! much more than handing work between threads (milliseconds on many SSDs
//! and network disks), and can lose where it costs tens of microseconds.
//! So the program prints both and checks only what must hold on any disk:
//! every acknowledged record is in the log, once, under the LSN it was
//! given.
//!
//! Run with `cargo run --release -p segwal-std --example group_commit`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use segwal::Lsn;
use segwal_std::{SharedWal, Wal, WalOptions};

/// Appending threads for the group-commit run.
const THREADS: usize = 8;
/// How long each run appends.
const RUN_TIME: Duration = Duration::from_secs(1);
/// Bounds each thread's loop whatever the disk's speed.
const APPENDS_PER_THREAD_MAX: u64 = 200_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join(format!("segwal-group-commit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let options = WalOptions {
        segment_size_bytes: 16 << 20,
        // The default prepares the next segment file in the background:
        // 16 MiB of zeros and an fsync, competing with the fdatasyncs being
        // timed. Off, so both runs measure appends alone.
        prepare_next_segment: false,
        ..WalOptions::default()
    };

    let single_rate = single_thread(&root.join("single"), &options)?;
    let shared_rate = group_commit(&root.join("shared"), &options)?;

    println!("single-thread Wal:           {single_rate:>10.0} durable records/s");
    println!("SharedWal with {THREADS} threads:    {shared_rate:>10.0} durable records/s");
    println!(
        "(ratio {:.1}x; it depends on what an fdatasync costs on this disk)",
        shared_rate / single_rate
    );

    std::fs::remove_dir_all(&root)?;
    println!("ok: removed {}", root.display());
    Ok(())
}

/// One thread, one fdatasync per `append`: the baseline.
fn single_thread(dir: &Path, options: &WalOptions) -> Result<f64, Box<dyn std::error::Error>> {
    let mut wal = Wal::open_with(dir, options)?;
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < RUN_TIME && count < APPENDS_PER_THREAD_MAX {
        let lsn = wal.append(format!("single {count}").as_bytes())?;
        count += 1;
        assert_eq!(lsn, Lsn(count), "LSNs are dense from 1");
    }
    let elapsed = started.elapsed();
    println!("single-thread Wal: {count} durable appends in {elapsed:.2?}");
    Ok(count as f64 / elapsed.as_secs_f64())
}

/// `THREADS` threads, each `append` returning once its record is durable.
fn group_commit(dir: &Path, options: &WalOptions) -> Result<f64, Box<dyn std::error::Error>> {
    let wal = SharedWal::open(dir, options)?;
    let started = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let wal = wal.clone();
            std::thread::spawn(move || -> segwal_std::Result<Vec<(Lsn, String)>> {
                let mut acknowledged = Vec::new();
                let mut i = 0u64;
                while started.elapsed() < RUN_TIME && i < APPENDS_PER_THREAD_MAX {
                    let payload = format!("thread {thread} record {i}");
                    let lsn = wal.append(payload.as_bytes())?; // durable now
                    acknowledged.push((lsn, payload));
                    i += 1;
                }
                Ok(acknowledged)
            })
        })
        .collect();
    let mut acknowledged = BTreeMap::new();
    for worker in workers {
        for (lsn, payload) in worker.join().map_err(|_| "append thread panicked")?? {
            let earlier = acknowledged.insert(lsn, payload);
            assert!(earlier.is_none(), "LSN {lsn} was handed out twice");
        }
    }
    let elapsed = started.elapsed();
    let count = acknowledged.len() as u64;
    println!("SharedWal, {THREADS} threads: {count} durable appends in {elapsed:.2?}");

    // Every acknowledged record is in the log under its LSN, and the LSNs
    // are dense: nothing unacknowledged slipped in between.
    assert_eq!(wal.next_lsn(), Lsn(count + 1), "LSNs are dense from 1");
    for (lsn, payload) in &acknowledged {
        assert_eq!(wal.read(*lsn)?, payload.as_bytes(), "record {lsn}");
    }
    drop(wal);

    // And they are still there after reopening.
    let mut reopened = Wal::open_with(dir, options)?;
    assert_eq!(reopened.next_lsn(), Lsn(count + 1));
    let mut checked = 0u64;
    for entry in reopened.iter() {
        let (lsn, data) = entry?;
        assert_eq!(
            Some(&data[..]),
            acknowledged.get(&lsn).map(String::as_bytes)
        );
        checked += 1;
    }
    assert_eq!(checked, count, "every acknowledged record reopened");
    println!("checked all {checked} records by LSN, and again after reopening");
    Ok(count as f64 / elapsed.as_secs_f64())
}
