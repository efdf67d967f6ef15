//! A 3-node key-value cluster on loopback with segwal as every node's Raft
//! log: it writes keys, stops the leader, keeps writing through the new
//! leader (which snapshots and purges its log meanwhile), restarts the old
//! leader from its segwal directory and shows it catch up, then checks that
//! every acknowledged write is on every node.
//!
//! Run with `cargo run -p segwal-raft --example raft-kv`.

use segwal_raft::NodeOptions;
use segwal_raft::failover::{self, FailoverPlan};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join(format!("segwal-raft-kv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);

    // A snapshot every 20 entries, and tiny 1 KiB segments so that 40
    // writes span several segment files and a purge visibly removes some
    // (a real deployment keeps segwal's 64 MiB).
    let mut options = NodeOptions::new(20)?;
    options.wal.segment_size_bytes = 1 << 10;

    let started = std::time::Instant::now();
    let mut step = 0;
    let mut say = |line: String| {
        step += 1;
        let seconds = started.elapsed().as_secs_f64();
        println!("{step:>2}. [{seconds:5.2}s] {line}");
    };
    let outcome = failover::run(&root, options, &FailoverPlan::default(), &mut say).await?;

    let missing = failover::missing_writes(&outcome.cluster, &outcome.acked);
    let nodes = outcome.cluster.nodes().count();
    outcome.cluster.shutdown().await?;
    std::fs::remove_dir_all(&root)?;
    if !missing.is_empty() {
        return Err(format!("acknowledged writes missing: {missing:?}").into());
    }
    println!(
        "ok: all {} acknowledged writes are on all {nodes} nodes; removed {}",
        outcome.acked.len(),
        root.display()
    );
    Ok(())
}
