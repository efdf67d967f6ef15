//! A child process for the tests that kill or starve a real writer.
//!
//! `segwal_child append DIR SEED SEGMENT_BYTES`: opens the log in DIR and
//! appends records whose payload is `segwal_tests::process::kill_payload(SEED, lsn)`
//! with durable acknowledgements, printing `ack LSN` after each append
//! returns, until killed or until an append fails, which it reports as
//! `error KIND: MESSAGE` before exiting with status 3.

use std::io::Write;

use segwal::Durability;
use segwal_std::{Wal, WalOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(mode), Some(dir), Some(seed), Some(segment)) =
        (args.get(1), args.get(2), args.get(3), args.get(4))
    else {
        eprintln!("usage: segwal_child append DIR SEED SEGMENT_BYTES");
        std::process::exit(2);
    };
    if mode != "append" {
        eprintln!("unknown mode {mode}");
        std::process::exit(2);
    }
    let seed: u64 = seed.parse().unwrap_or(0);
    let segment_size_bytes: u64 = segment.parse().unwrap_or(1 << 20);
    let options = WalOptions {
        segment_size_bytes,
        durability: Durability::Sync,
        prepare_next_segment: false,
        ..WalOptions::default()
    };
    let mut out = std::io::stdout().lock();
    let mut wal = match Wal::open_with(dir, &options) {
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
