//! A 3-node key-value cluster on loopback, with segwal as every node's Raft
//! log, loses its leader, keeps taking writes through a new leader, and
//! gets the old leader back from its segwal directory (the same scenario
//! as the `raft-kv` example, from `segwal_raft::failover`). Then every
//! write the cluster acknowledged must be on every node, and the restarted
//! node must have found its own entries in its directory before it heard
//! from the others.
//!
//! Waits use openraft's metrics helpers (`Raft::wait`) with generous
//! limits; nothing asserts how long a step took.

use std::time::Duration;

use segwal_raft::NodeOptions;
use segwal_raft::failover::{self, FailoverPlan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_is_on_every_node_after_the_old_leader_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = NodeOptions::new(20).expect("options");
    // Small segments: the run rotates and checkpoints real segment files.
    options.wal.segment_size_bytes = 1 << 10;
    let plan = FailoverPlan {
        timeout: Duration::from_secs(60),
        ..FailoverPlan::default()
    };
    let mut say = |line: String| println!("{line}");
    let outcome = failover::run(dir.path(), options, &plan, &mut say)
        .await
        .expect("the scenario runs");

    assert_ne!(
        outcome.new_leader, outcome.stopped,
        "a new leader took over"
    );
    assert_eq!(outcome.acked.len(), plan.writes_before + plan.writes_during);
    assert_eq!(outcome.cluster.nodes().count(), 3, "every node runs again");

    // Appends are durable before openraft hears of them, and a leader
    // appends before it replicates: the stopped leader's directory held
    // every write acknowledged before it stopped.
    let acked_before_stop = &outcome.acked[plan.writes_before - 1];
    assert!(
        outcome.last_index_at_restart >= Some(acked_before_stop.log_id.index),
        "restarted with log up to {:?}, but {} was acknowledged before the stop",
        outcome.last_index_at_restart,
        acked_before_stop.log_id.index
    );

    let missing = failover::missing_writes(&outcome.cluster, &outcome.acked);
    assert!(
        missing.is_empty(),
        "acknowledged writes missing: {missing:?}"
    );

    // Every node applied the same entries, so they agree on the last one.
    let last_applied: Vec<_> = outcome
        .cluster
        .nodes()
        .map(|node| node.state_machine().last_applied())
        .collect();
    assert!(
        last_applied.windows(2).all(|pair| pair[0] == pair[1]),
        "{last_applied:?}"
    );
    outcome.cluster.shutdown().await.expect("shutdown");
}
