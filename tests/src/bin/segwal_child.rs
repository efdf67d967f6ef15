//! A child process for the tests that kill or starve a real writer.
//!
//! `segwal_child append DIR SEED SEGMENT_BYTES`: opens the log in DIR and
//! appends records whose payload is `segwal_tests::process::kill_payload(SEED, lsn)`
//! with durable acknowledgements, printing `ack LSN` after each append
//! returns, until killed or until an append fails, which it reports as
//! `error KIND: MESSAGE` before exiting with status 3.
//!
//! `segwal_child buffered DIR SEED SEGMENT_BYTES`: the same records through
//! a buffered log (`Durability::Manual`, a 64 KiB write-behind buffer, the
//! next segment prepared ahead), synced every `BUFFERED_SYNC_EVERY`
//! appends, after which it prints `ack LSN` for each record the sync made
//! durable.
//!
//! `segwal_child shared DIR SEED SEGMENT_BYTES`: the same through a
//! `SharedWal` appended to by `SHARED_THREADS` threads (group commit),
//! each record `segwal_tests::process::tagged_payload(TAG)` with a tag
//! unique to the seed, thread and sequence number, printing `ack LSN TAG`
//! once the record is durable.
//!
//! `segwal_child shared-until-error DIR SEED SEGMENT_BYTES`: as `shared`,
//! but a thread whose append fails prints `error KIND: MESSAGE` and stops;
//! once every thread has stopped, the child prints `stopped` and exits with
//! status 3 (a thread that never returns keeps it from getting there).

use std::io::Write;

use segwal::Durability;
use segwal_std::{SharedWal, Wal, WalOptions};

/// Appending threads of the `shared` mode.
const SHARED_THREADS: u64 = 4;

/// Appends between syncs in the `buffered` mode: about 40 KiB of records,
/// so runs fill the write-behind buffer, a megabyte of them starts
/// writeback hints, and segments of a megabyte rotate every few syncs.
const BUFFERED_SYNC_EVERY: u64 = 256;

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
        "buffered" => buffered(
            dir,
            seed,
            &WalOptions {
                durability: Durability::Manual,
                write_buffer_bytes: 64 * 1024,
                prepare_next_segment: true,
                ..options
            },
        ),
        "shared" => shared(dir, seed, &options, false),
        "shared-until-error" => shared(dir, seed, &options, true),
        _ => {
            eprintln!("unknown mode {mode}");
            std::process::exit(2);
        }
    }
}

/// Threads append through one `SharedWal` until killed (or, with
/// `until_error`, each until its append fails); tags are
/// `seed << 40 | thread << 32 | sequence`.
fn shared(dir: &str, seed: u64, options: &WalOptions, until_error: bool) -> ! {
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
                    let appended = wal.append(&segwal_tests::process::tagged_payload(tag));
                    let line = match &appended {
                        Ok(lsn) => format!("ack {} {tag}", lsn.0),
                        Err(error) => format!("error {}: {error}", error_kind(error)),
                    };
                    let mut out = std::io::stdout().lock();
                    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                        std::process::exit(3);
                    }
                    if appended.is_err() {
                        if until_error {
                            return;
                        }
                        std::process::exit(3);
                    }
                }
            });
        }
    });
    if until_error {
        println!("stopped");
        std::process::exit(3);
    }
    std::process::exit(0)
}

/// What failed, in a word: the device error's kind, `Poisoned`, or `Other`.
fn error_kind(error: &segwal_std::Error) -> String {
    match error.as_log() {
        Some(segwal::Error::Device(e)) => format!("{:?}", segwal::DeviceError::kind(e)),
        Some(segwal::Error::Poisoned) => "Poisoned".to_string(),
        _ => "Other".to_string(),
    }
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
                let _ = writeln!(out, "error {}: {error}", error_kind(&error));
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

/// Appends with a buffered `Wal`, syncing every [`BUFFERED_SYNC_EVERY`]
/// appends and acknowledging what each sync made durable, until killed.
fn buffered(dir: &str, seed: u64, options: &WalOptions) -> ! {
    let mut out = std::io::stdout().lock();
    let fail = |out: &mut std::io::StdoutLock<'_>, error: &segwal_std::Error| -> ! {
        let _ = writeln!(out, "error {}: {error}", error_kind(error));
        let _ = out.flush();
        std::process::exit(3);
    };
    let mut wal = match Wal::open_with(dir, options) {
        Ok(wal) => wal,
        Err(error) => fail(&mut out, &error),
    };
    loop {
        let first = wal.next_lsn().0;
        for lsn in first..first + BUFFERED_SYNC_EVERY {
            if let Err(error) = wal.append(&segwal_tests::process::kill_payload(seed, lsn)) {
                fail(&mut out, &error);
            }
        }
        if let Err(error) = wal.sync() {
            fail(&mut out, &error);
        }
        for lsn in first..first + BUFFERED_SYNC_EVERY {
            if writeln!(out, "ack {lsn}").is_err() {
                std::process::exit(0);
            }
        }
        if out.flush().is_err() {
            std::process::exit(0);
        }
    }
}
