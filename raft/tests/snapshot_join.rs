//! A node that joins after the cluster purged its log gets the leader's
//! snapshot over TCP, and its segwal store starts its log after it.
//!
//! Three nodes take writes, snapshot and purge everything they applied;
//! a fourth, empty node joins as a learner. The entries it lacks are gone,
//! so openraft sends the snapshot (chunked `install_snapshot` RPCs), and
//! then has the new node's store purge up to the snapshot's last index:
//! a purge past the end of an empty log, which moves the store's index
//! mapping so that the next entry, one past the snapshot, goes at the
//! next LSN. The node then takes further writes, is stopped and restarted
//! from its directory, and must come back with the snapshot, the purge
//! point and every entry after it, and every acknowledged write.

use std::time::Duration;

use segwal_raft::{LocalCluster, NodeOptions};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn write(cluster: &LocalCluster, keys: std::ops::Range<usize>) -> u64 {
    let mut last = 0;
    for i in keys {
        let log_id = cluster
            .write(&format!("key-{i}"), &format!("value-{i}"), TIMEOUT)
            .await
            .expect("write acknowledged");
        last = log_id.index;
    }
    last
}

fn assert_has_keys(cluster: &LocalCluster, id: u64, keys: std::ops::Range<usize>) {
    let map = cluster.node(id).expect("running").state_machine().entries();
    for i in keys {
        assert_eq!(
            map.get(&format!("key-{i}")),
            Some(&format!("value-{i}")),
            "node {id}, key-{i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joining_after_a_purge_installs_the_snapshot_and_keeps_it_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = NodeOptions::new(20).expect("options");
    options.wal.segment_size_bytes = 1 << 10;
    let mut cluster = LocalCluster::start(dir.path(), 3, options)
        .await
        .expect("start");
    cluster
        .wait_for_leader(None, TIMEOUT)
        .await
        .expect("leader");

    write(&cluster, 0..30).await;
    let purged = cluster.compact(TIMEOUT).await.expect("compact");
    let purged_upto = purged.iter().map(|&(_, i)| i).min().expect("a node purged");
    println!("purged: {purged:?}");

    cluster
        .add_learner(4, TIMEOUT)
        .await
        .expect("learner added");
    let last = write(&cluster, 30..40).await;
    cluster.wait_applied(last, TIMEOUT).await.expect("applied");
    assert_has_keys(&cluster, 4, 0..40);

    let learner = cluster.node(4).expect("running");
    let snapshot = learner.state_machine().snapshot_last_log_id();
    assert!(
        snapshot.is_some_and(|id| id.index >= purged_upto),
        "node 4 installed a snapshot covering the purged entries: {snapshot:?}"
    );
    let metrics = learner.metrics();
    println!(
        "node 4: snapshot {snapshot:?}, purged {:?}, last log index {:?}",
        metrics.purged, metrics.last_log_index
    );

    cluster.stop_node(4).await.expect("stop");
    cluster.restart_node(4).await.expect("restart");
    let recovered = cluster.node(4).expect("running").recovered().clone();
    println!("node 4 restarted with {recovered:?}");
    assert!(
        recovered.last_purged >= snapshot,
        "the purge up to the snapshot survived: {recovered:?}"
    );
    assert_eq!(
        recovered.last_log_id.map(|id| id.index),
        Some(last),
        "every entry after the snapshot came back from the segwal log"
    );
    // The snapshot file and the committed entries after it rebuild the
    // state machine before the node hears from anyone.
    assert_has_keys(&cluster, 4, 0..30);

    let last = write(&cluster, 40..45).await;
    cluster.wait_applied(last, TIMEOUT).await.expect("applied");
    for id in 1..=4 {
        assert_has_keys(&cluster, id, 0..45);
    }
    cluster.shutdown().await.expect("shutdown");
}
