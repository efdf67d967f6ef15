//! Write-ahead log quickstart: open a log directory, append, append a
//! batch, read by LSN, iterate, close, and reopen.
//!
//! Run with `cargo run --release -p segwal-std --example wal_quickstart`.

use segwal::{Lsn, WalTailState};
use segwal_std::Wal;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("segwal-wal-quickstart-{}", std::process::id()));
    // The log creates its directory; a fresh name keeps earlier runs out.
    let _ = std::fs::remove_dir_all(&dir);

    // 1. Open (or create) the log. LSNs start at 1.
    let mut wal = Wal::open(&dir)?;
    println!("opened {}: next_lsn {}", dir.display(), wal.next_lsn());
    assert_eq!(wal.next_lsn(), Lsn(1), "a new log starts at LSN 1");

    // 2. One record: fdatasync'd before `append` returns (the default
    //    durability), so a crash after this line cannot lose it.
    let first = wal.append(b"set x = 1")?;
    println!("append       -> lsn {first}");

    // 3. An atomic batch: one write, one fdatasync; after a crash all three
    //    records are there or none is.
    let batch = wal.append_batch(&[b"set y = 2", b"set z = 3", b"commit"])?;
    println!("append_batch -> lsns {}..{}", batch.start, batch.end);
    assert_eq!(batch, Lsn(2)..Lsn(5), "LSNs are dense");

    // 4. Read by LSN: a binary search over segments, no scan.
    let data = wal.read(Lsn(3))?;
    println!("read(3)      -> {:?}", String::from_utf8_lossy(&data));
    assert_eq!(data, b"set z = 3");

    // 5. Iterate from any LSN.
    let mut seen = Vec::new();
    for entry in wal.iter_from(Lsn(2))? {
        let (lsn, data) = entry?;
        println!("iter_from(2)  {lsn}: {}", String::from_utf8_lossy(&data));
        seen.push(lsn.0);
    }
    assert_eq!(seen, [2, 3, 4]);

    // 6. Close cleanly: a clean-close marker lets the next open skip the
    //    tail scan.
    wal.close()?;
    println!("closed");

    // 7. Reopen: everything is there and the next LSN carries on.
    let mut wal = Wal::open(&dir)?;
    println!(
        "reopened: tail_state {:?}, first_lsn {}, next_lsn {}, {} segment file(s)",
        wal.tail_state(),
        wal.first_lsn(),
        wal.next_lsn(),
        wal.segment_count()
    );
    assert_eq!(wal.tail_state(), WalTailState::Clean);
    assert_eq!(wal.next_lsn(), Lsn(5), "no LSN is reused after reopening");
    assert_eq!(wal.read(first)?, b"set x = 1");
    let lsn = wal.append(b"after reopen")?;
    println!("append       -> lsn {lsn}");
    assert_eq!(lsn, Lsn(5));
    drop(wal); // dropping closes cleanly too, ignoring errors

    std::fs::remove_dir_all(&dir)?;
    println!("ok: removed {}", dir.display());
    Ok(())
}
