//! The failover scenario the `raft-kv` example shows and the failover test
//! checks: a cluster on loopback takes writes, loses its leader, keeps
//! taking writes through a new leader (enough of them that the new leader
//! snapshots and purges its log), and gets the old leader back from its
//! directory, which catches up.
//!
//! [`run`] narrates each step through a callback and returns the cluster
//! (still running) with every acknowledged write, so the caller can check
//! the nodes itself ([`missing_writes`]).

use std::path::Path;
use std::time::Duration;

use crate::cluster::{ClusterError, LocalCluster, NodeOptions};
use crate::kv::KvLogId;
use crate::log_store::LOG_DIR_NAME;

/// The shape of a run.
#[derive(Debug, Clone)]
pub struct FailoverPlan {
    /// Nodes in the cluster (3 tolerates the loss of one).
    pub nodes: u64,
    /// Writes before the leader is stopped.
    pub writes_before: usize,
    /// Writes while it is down.
    pub writes_during: usize,
    /// Limit for each wait (a leader, a write, a catch-up): generous, as
    /// the scenario asserts outcomes, not timings.
    pub timeout: Duration,
}

impl Default for FailoverPlan {
    fn default() -> Self {
        FailoverPlan {
            nodes: 3,
            writes_before: 10,
            writes_during: 30,
            timeout: Duration::from_secs(30),
        }
    }
}

/// A write the cluster acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// The entry's log id.
    pub log_id: KvLogId,
}

/// What a run did; the cluster is still running.
#[derive(Debug)]
pub struct FailoverOutcome {
    /// The cluster, every node running again and caught up.
    pub cluster: LocalCluster,
    /// Every acknowledged write, in order.
    pub acked: Vec<Acked>,
    /// The leader that was stopped and restarted.
    pub stopped: u64,
    /// The leader elected while it was down.
    pub new_leader: u64,
    /// The last log index the stopped node had written when it stopped.
    pub last_index_at_stop: Option<u64>,
    /// The last log index the restarted node found in its directory,
    /// before hearing from the cluster.
    pub last_index_at_restart: Option<u64>,
    /// The snapshot the new leader had built by the restart, if any.
    pub leader_snapshot: Option<KvLogId>,
}

/// Every `(node, key)` whose acknowledged value a running node lacks.
pub fn missing_writes(cluster: &LocalCluster, acked: &[Acked]) -> Vec<(u64, String)> {
    let mut missing = Vec::new();
    for node in cluster.nodes() {
        let map = node.state_machine().entries();
        for write in acked {
            if map.get(&write.key) != Some(&write.value) {
                missing.push((node.id(), write.key.clone()));
            }
        }
    }
    missing
}

/// An optional index as text.
fn show(index: Option<u64>) -> String {
    index.map_or_else(|| "-".into(), |i| i.to_string())
}

/// Segment files in node `id`'s segwal log.
fn log_segments(cluster: &LocalCluster, id: u64) -> usize {
    let dir = cluster.node_dir(id).join("raft").join(LOG_DIR_NAME);
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".seg"))
            .count()
    })
}

fn index_span(acked: &[Acked]) -> String {
    match (acked.first(), acked.last()) {
        (Some(first), Some(last)) => format!("{}..={}", first.log_id.index, last.log_id.index),
        _ => "none".into(),
    }
}

/// Writes `key-{from}..key-{to}` (exclusive), each acknowledged.
async fn write_range(
    cluster: &LocalCluster,
    keys: std::ops::Range<usize>,
    timeout: Duration,
) -> Result<Vec<Acked>, ClusterError> {
    let mut acked = Vec::with_capacity(keys.len());
    for i in keys {
        let (key, value) = (format!("key-{i}"), format!("value-{i}"));
        let log_id = cluster.write(&key, &value, timeout).await?;
        acked.push(Acked { key, value, log_id });
    }
    Ok(acked)
}

/// Runs the scenario under `root` and narrates it through `say`.
///
/// # Errors
///
/// Whatever a step fails with; [`ClusterError::Timeout`] when a leader, a
/// write or a catch-up does not happen within `plan.timeout`.
pub async fn run(
    root: &Path,
    options: NodeOptions,
    plan: &FailoverPlan,
    say: &mut (dyn FnMut(String) + Send),
) -> Result<FailoverOutcome, ClusterError> {
    let mut cluster = LocalCluster::start(root, plan.nodes, options).await?;
    let addrs: Vec<String> = cluster
        .nodes()
        .map(|node| format!("node {} at {}", node.id(), node.addr()))
        .collect();
    say(format!(
        "started {} nodes on loopback ({}), directories under {}",
        plan.nodes,
        addrs.join(", "),
        root.display()
    ));

    let leader = cluster.wait_for_leader(None, plan.timeout).await?;
    let term = cluster.node(leader).map(|n| n.metrics().current_term);
    say(format!(
        "node {leader} is the leader (term {})",
        term.unwrap_or(0)
    ));

    let mut acked = write_range(&cluster, 0..plan.writes_before, plan.timeout).await?;
    say(format!(
        "wrote key-0..key-{} through node {leader}: acknowledged at log indexes {}",
        plan.writes_before,
        index_span(&acked)
    ));

    let last_index_at_stop = cluster
        .node(leader)
        .and_then(|n| n.metrics().last_log_index);
    cluster.stop_node(leader).await?;
    say(format!(
        "stopped node {leader}, the leader: Raft shut down, port closed, segwal log closed \
         (its log ended at index {})",
        show(last_index_at_stop)
    ));

    let new_leader = cluster.wait_for_leader(Some(leader), plan.timeout).await?;
    let term = cluster.node(new_leader).map(|n| n.metrics().current_term);
    say(format!(
        "node {new_leader} is the new leader (term {})",
        term.unwrap_or(0)
    ));

    let end = plan.writes_before + plan.writes_during;
    let during = write_range(&cluster, plan.writes_before..end, plan.timeout).await?;
    say(format!(
        "wrote key-{}..key-{end} through node {new_leader}: acknowledged at log indexes {}",
        plan.writes_before,
        index_span(&during)
    ));
    acked.extend(during);

    let leader_metrics = cluster.node(new_leader).map(|n| n.metrics());
    let leader_snapshot = leader_metrics.as_ref().and_then(|m| m.snapshot);
    say(format!(
        "node {new_leader}: snapshot at index {}, log purged up to {} (openraft keeps what \
         the stopped node still needs), {} segment files",
        show(leader_snapshot.map(|id| id.index)),
        show(
            leader_metrics
                .as_ref()
                .and_then(|m| m.purged)
                .map(|id| id.index)
        ),
        log_segments(&cluster, new_leader),
    ));

    cluster.restart_node(leader).await?;
    let (recovered, applied, keys) = match cluster.node(leader) {
        Some(node) => (
            node.recovered().clone(),
            node.state_machine().last_applied(),
            node.state_machine().entries().len(),
        ),
        None => return Err(ClusterError::NotRunning(leader)),
    };
    let last_index_at_restart = recovered.last_log_id.map(|id| id.index);
    say(format!(
        "restarted node {leader} from {}: its segwal store held vote term {}, entries up to \
         index {}, committed {}; the state machine re-applied them up to {} ({keys} keys)",
        cluster.node_dir(leader).display(),
        recovered.vote.map_or(0, |v| v.leader_id.term),
        show(last_index_at_restart),
        show(recovered.committed.map(|id| id.index)),
        show(applied.map(|id| id.index)),
    ));

    let last_acked = acked.last().map_or(0, |a| a.log_id.index);
    cluster.wait_applied(last_acked, plan.timeout).await?;
    let caught_up = cluster.node(leader).map(|n| n.metrics());
    say(format!(
        "node {leader} caught up: log up to {}, applied up to {}, {} keys",
        show(caught_up.as_ref().and_then(|m| m.last_log_index)),
        show(
            caught_up
                .as_ref()
                .and_then(|m| m.last_applied)
                .map(|id| id.index)
        ),
        cluster
            .node(leader)
            .map_or(0, |n| n.state_machine().entries().len()),
    ));

    let ids: Vec<u64> = cluster.ids().collect();
    let before: Vec<usize> = ids.iter().map(|&id| log_segments(&cluster, id)).collect();
    let purged = cluster.compact(plan.timeout).await?;
    let files: Vec<String> = ids
        .iter()
        .zip(before)
        .map(|(&id, before)| format!("node {id} {before} -> {}", log_segments(&cluster, id)))
        .collect();
    say(format!(
        "compacted: every node snapshotted and purged its log (purged up to {:?}); \
         segwal checkpoints left segment files: {}",
        purged,
        files.join(", ")
    ));

    Ok(FailoverOutcome {
        cluster,
        acked,
        stopped: leader,
        new_leader,
        last_index_at_stop,
        last_index_at_restart,
        leader_snapshot,
    })
}
