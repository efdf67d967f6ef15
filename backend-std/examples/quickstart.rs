//! Quickstart: write a segment file, sync, reopen it, read everything back.
//!
//! Run with `cargo run --release -p segwal-std --example quickstart`.

use std::time::Instant;

use segwal::{ReadHint, TailState};
use segwal_std::{Reader, Writer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("segwal-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("segment.log");

    // 1. Create a preallocated 8 MiB segment and append 10,000 events.
    let started = Instant::now();
    let mut writer = Writer::create(&path, 8 << 20, 0)?;
    let mut offsets = Vec::new();
    for i in 0..10_000u32 {
        let event = format!("event {i}: temperature={}.{}C", 20 + i % 7, i % 10);
        offsets.push(writer.append(event.as_bytes())?.offset);
    }
    let flushed = writer.sync()?;
    println!(
        "wrote {} records ({} bytes of segment) and synced in {:?}",
        writer.record_count(),
        flushed,
        started.elapsed()
    );

    // 2. Readers in other threads see exactly what was synced.
    let flushed_offset = writer.flushed_offset();
    let reader_path = path.clone();
    let last = *offsets.last().ok_or("no records")?;
    let seen = std::thread::spawn(move || -> Result<Vec<u8>, segwal_std::Error> {
        let mut reader = Reader::open(&reader_path, Some(flushed_offset))?;
        Ok(reader.read_record(last, ReadHint::Random)?.payload.to_vec())
    })
    .join()
    .map_err(|_| "reader thread panicked")??;
    println!(
        "a reader thread read the last record: {:?}",
        String::from_utf8_lossy(&seen)
    );
    drop(writer);

    // 3. Reopen for writing: the scan finds a clean tail and appends go on.
    let started = Instant::now();
    let mut writer = Writer::open(&path)?;
    let tail = match writer.tail_state() {
        TailState::Clean => "clean".to_string(),
        TailState::TruncatedAt {
            offset,
            bytes_discarded,
        } => {
            format!("torn at {offset}, {bytes_discarded} bytes discarded")
        }
    };
    println!(
        "reopened in {:?}: {} records, tail {tail}",
        started.elapsed(),
        writer.record_count()
    );
    writer.append(b"one more after reopening")?;
    writer.sync()?;

    // 4. Read everything back sequentially, checksums verified.
    let started = Instant::now();
    let mut reader = writer.reader()?;
    let start = reader.records_start();
    let mut count = 0u64;
    let mut bytes = 0u64;
    let mut position = start;
    while position < reader.flushed_offset() {
        let record = reader.read_record(position, ReadHint::Sequential)?;
        count += 1;
        bytes += record.payload.len() as u64;
        position = record.next_offset;
    }
    println!(
        "read back {count} records ({bytes} payload bytes) in {:?}",
        started.elapsed()
    );
    assert_eq!(count, 10_001, "every record written is read back");

    std::fs::remove_dir_all(&dir)?;
    println!("ok: removed {}", dir.display());
    Ok(())
}
