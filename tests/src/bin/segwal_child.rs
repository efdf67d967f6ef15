//! A child process for the tests that kill or starve a real writer.
//!
//! `segwal_child append DIR SEED SEGMENT_BYTES`: opens the log in DIR and
//! appends records whose payload is `segwal_tests::process::kill_payload(SEED, lsn)`
//! with durable acknowledgements, printing `ack LSN` after each append
//! returns, until killed or until an append fails, which it reports as
//! `error KIND: MESSAGE` before exiting with status 3.
//!
//! `segwal_child shared DIR SEED SEGMENT_BYTES`: the same through a
//! `SharedWal` appended to by `SHARED_THREADS` threads (group commit),
//! each record `segwal_tests::process::tagged_payload(TAG)` with a tag
//! unique to the seed, thread and sequence number, printing `ack LSN TAG`
//! once the record is durable.

use std::io::Write;

use segwal::Durability;
use segwal_std::{SharedWal, Wal, WalOptions};

/// Appending threads of the `shared` mode.
const SHARED_THREADS: u64 = 4;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(dir), Some(seed), Some(segment)) =
        (args.get(1), args.get(2), args.get(3), args.get(4))
    else {
        eprintln!("usage: segwal_child append DIR SEED SEGMENT_BYTES");
        std::process::exit(2);
    };
    let seed: u64 = seed.parse().unwrap_or(0);
    let segment_size_bytes: u64 = segment.parse().unwrap_or(1 << 20);
    let options = WalOptions {
        segment_size_bytes,
        durability: Durability::Sync,
        prepare_next_segment: false,
        ..WalOptions::default()
    };
    match mode.as_str() {
        "append" => append(dir, seed, &options),
        "shared" => shared(dir, seed, &options),
        _ => {
            eprintln!("unknown mode {mode}");
            std::process::exit(2);
        }
    }
}

/// Threads append through one `SharedWal` until killed; tags are
/// `seed << 40 | thread << 32 | sequence`.
fn shared(dir: &str, seed: u64, options: &WalOptions) -> ! {
    let wal = match SharedWal::open(dir, options) {
        Ok(wal) => wal,
        Err(error) => {
            println!("error open: {error}");
            std::process::exit(3);
        }
    };
    std::thread::scope(|scope| {
        for thread in 0..SHARED_THREADS {
            let wal = &wal;
            scope.spawn(move || {
                for sequence in 0..u64::from(u32::MAX) {
                    let tag = (seed << 40) | (thread << 32) | sequence;
                    let line = match wal.append(&segwal_tests::process::tagged_payload(tag)) {
                        Ok(lsn) => format!("ack {} {tag}", lsn.0),
                        Err(error) => format!("error {error}"),
                    };
                    let mut out = std::io::stdout().lock();
                    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err()
                        || line.starts_with("error")
                    {
                        std::process::exit(3);
                    }
                }
            });
        }
    });
    std::process::exit(0)
}

/// Appends with `Wal` until killed (see the module documentation).
fn append(dir: &str, seed: u64, options: &WalOptions) -> ! {
    let mut out = std::io::stdout().lock();
    let mut wal = match Wal::open_with(dir, options) {
        Ok(wal) => wal,
        Err(error) => {
            let _ = writeln!(out, "error open: {error}");
            std::process::exit(3);
        }
    };
    loop {
        let lsn = wal.next_lsn().0;
        match wal.append(&segwal_tests::process::kill_payload(seed, lsn)) {
            Ok(acked) => {
                // One line per acknowledged, durable record.
                if writeln!(out, "ack {}", acked.0)
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    std::process::exit(0);
                }
            }
            Err(error) => {
                let kind = match error.as_log() {
                    Some(segwal::Error::Device(e)) => format!("{:?}", segwal::DeviceError::kind(e)),
                    Some(segwal::Error::Poisoned) => "Poisoned".to_string(),
                    _ => "Other".to_string(),
                };
                let _ = writeln!(out, "error {kind}: {error}");
                let _ = out.flush();
                // The log must now refuse writes until it is reopened.
                let again = wal.append(b"after the failure");
                let poisoned = matches!(
                    again.as_ref().err().and_then(|e| e.as_log()),
                    Some(segwal::Error::Poisoned)
                );
                let _ = writeln!(out, "poisoned {poisoned}");
                let _ = out.flush();
                std::process::exit(3);
            }
        }
    }
}
