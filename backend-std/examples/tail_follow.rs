//! Tail following: a writer thread appends to a log while the main thread
//! follows it read-only, as a replica or a `tail -f` would, printing each
//! record as it appears.
//!
//! The follower opens with `Wal::open_read_only` (no lock, no writes, so it
//! works beside a live writer, in this process or another), then loops:
//! `refresh()` re-reads the directory, `iter_from(next)` returns what was
//! added since. It stops after a fixed number of records.
//!
//! Run with `cargo run --release -p segwal-std --example tail_follow`.

use std::time::{Duration, Instant};

use segwal::Lsn;
use segwal_std::{Wal, WalOptions};

/// Records the writer appends and the follower waits for.
const RECORDS: u64 = 40;
/// The writer's pause between appends, so the follower sees them arrive.
const WRITE_INTERVAL: Duration = Duration::from_millis(10);
/// The follower's pause between refreshes.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Bounds the follow loop: a follower that falls this far behind fails.
const FOLLOW_TIME_MAX: Duration = Duration::from_secs(20);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("segwal-tail-follow-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    // Small segments, so the writer rotates and the follower crosses
    // segment files.
    let options = WalOptions {
        segment_size_bytes: 1024,
        ..WalOptions::default()
    };
    // Create the log before following it: a read-only open of a directory
    // with no segment is refused.
    let mut writer = Wal::open_with(&dir, &options)?;
    let writer = std::thread::spawn(move || -> segwal_std::Result<usize> {
        for i in 1..=RECORDS {
            writer.append(format!("event {i:02}: temperature {}C", 18 + i % 5).as_bytes())?;
            std::thread::sleep(WRITE_INTERVAL);
        }
        Ok(writer.segment_count())
    });

    let mut follower = Wal::open_read_only(&dir)?;
    let mut next = follower.first_lsn();
    let mut refreshes = 0u32;
    let started = Instant::now();
    while next.0 <= RECORDS {
        assert!(
            started.elapsed() < FOLLOW_TIME_MAX,
            "follower stuck at {next}"
        );
        follower.refresh()?;
        refreshes += 1;
        for entry in follower.iter_from(next)? {
            let (lsn, data) = entry?;
            assert_eq!(lsn, next, "records arrive in LSN order, with no gap");
            let text = String::from_utf8(data)?;
            assert!(text.starts_with(&format!("event {:02}:", lsn.0)), "{text}");
            println!("[{:>6.1?}] {lsn}: {text}", started.elapsed());
            next = Lsn(lsn.0 + 1);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    let segments = writer.join().map_err(|_| "writer panicked")??;
    println!(
        "followed {} records across {segments} segment files with {refreshes} refreshes",
        next.0 - 1
    );
    assert_eq!(next, Lsn(RECORDS + 1));
    assert!(segments > 1, "the writer rotated, the follower followed");

    drop(follower);
    std::fs::remove_dir_all(&dir)?;
    println!("ok: removed {}", dir.display());
    Ok(())
}
