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

/// Narrates a step.
type Say<'a> = &'a mut (dyn FnMut(String) + Send);

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
    say: Say<'_>,
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
    let leader = elected(&cluster, None, plan.timeout, say).await?;
    let mut acked = write_range(&cluster, 0..plan.writes_before, plan.timeout).await?;
    say(format!(
        "wrote key-0..key-{} through node {leader}: acknowledged at log indexes {}",
        plan.writes_before,
        index_span(&acked)
    ));

    let last_index_at_stop = stop(&mut cluster, leader, say).await?;
    let new_leader = elected(&cluster, Some(leader), plan.timeout, say).await?;
    let end = plan.writes_before + plan.writes_during;
    let during = write_range(&cluster, plan.writes_before..end, plan.timeout).await?;
    say(format!(
        "wrote key-{}..key-{end} through node {new_leader}: acknowledged at log indexes {}",
        plan.writes_before,
        index_span(&during)
    ));
    acked.extend(during);
    let leader_snapshot = report_compaction_state(&cluster, new_leader, say);

    let last_index_at_restart = restart(&mut cluster, leader, say).await?;
    let last_acked = acked.last().map_or(0, |a| a.log_id.index);
    catch_up(&cluster, leader, last_acked, plan.timeout, say).await?;
    compact(&cluster, plan.timeout, say).await?;

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

/// Waits for a leader other than `excluded` and says who it is.
async fn elected(
    cluster: &LocalCluster,
    excluded: Option<u64>,
    timeout: Duration,
    say: Say<'_>,
) -> Result<u64, ClusterError> {
    let leader = cluster.wait_for_leader(excluded, timeout).await?;
    let term = cluster.node(leader).map_or(0, |n| n.metrics().current_term);
    let new = if excluded.is_some() { "new " } else { "" };
    say(format!("node {leader} is the {new}leader (term {term})"));
    Ok(leader)
}

/// Stops `leader`; returns the last index it had.
async fn stop(
    cluster: &mut LocalCluster,
    leader: u64,
    say: Say<'_>,
) -> Result<Option<u64>, ClusterError> {
    let last_index = cluster
        .node(leader)
        .and_then(|n| n.metrics().last_log_index);
    cluster.stop_node(leader).await?;
    say(format!(
        "stopped node {leader}, the leader: Raft shut down, port closed, segwal log closed \
         (its log ended at index {})",
        show(last_index)
    ));
    Ok(last_index)
}

/// Says what the leader snapshotted and purged; returns its snapshot.
fn report_compaction_state(cluster: &LocalCluster, leader: u64, say: Say<'_>) -> Option<KvLogId> {
    let metrics = cluster.node(leader).map(|n| n.metrics());
    let snapshot = metrics.as_ref().and_then(|m| m.snapshot);
    let purged = metrics.as_ref().and_then(|m| m.purged);
    say(format!(
        "node {leader}: snapshot at index {}, log purged up to {} (openraft keeps 1000 \
         entries behind a snapshot by default), {} segment files",
        show(snapshot.map(|id| id.index)),
        show(purged.map(|id| id.index)),
        log_segments(cluster, leader),
    ));
    snapshot
}

/// Restarts `id` from its directory; returns the last index it found.
async fn restart(
    cluster: &mut LocalCluster,
    id: u64,
    say: Say<'_>,
) -> Result<Option<u64>, ClusterError> {
    cluster.restart_node(id).await?;
    let node = cluster.node(id).ok_or(ClusterError::NotRunning(id))?;
    let recovered = node.recovered();
    let last_index = recovered.last_log_id.map(|log_id| log_id.index);
    say(format!(
        "restarted node {id} from {}: its segwal store held vote term {}, entries up to \
         index {}, committed {}; the state machine re-applied them up to {} ({} keys)",
        cluster.node_dir(id).display(),
        recovered.vote.map_or(0, |v| v.leader_id.term),
        show(last_index),
        show(recovered.committed.map(|log_id| log_id.index)),
        show(
            node.state_machine()
                .last_applied()
                .map(|log_id| log_id.index)
        ),
        node.state_machine().entries().len(),
    ));
    Ok(last_index)
}

/// Waits until every node applied `index`, and says where `id` is.
async fn catch_up(
    cluster: &LocalCluster,
    id: u64,
    index: u64,
    timeout: Duration,
    say: Say<'_>,
) -> Result<(), ClusterError> {
    cluster.wait_applied(index, timeout).await?;
    let node = cluster.node(id).ok_or(ClusterError::NotRunning(id))?;
    let metrics = node.metrics();
    say(format!(
        "node {id} caught up: log up to {}, applied up to {}, {} keys",
        show(metrics.last_log_index),
        show(metrics.last_applied.map(|log_id| log_id.index)),
        node.state_machine().entries().len(),
    ));
    Ok(())
}

/// Snapshots and purges every node, and says what segwal removed.
async fn compact(
    cluster: &LocalCluster,
    timeout: Duration,
    say: Say<'_>,
) -> Result<(), ClusterError> {
    let before: Vec<(u64, usize)> = cluster
        .ids()
        .map(|id| (id, log_segments(cluster, id)))
        .collect();
    let purged = cluster.compact(timeout).await?;
    let nodes: Vec<String> = before
        .iter()
        .map(|&(id, files_before)| {
            let upto = purged.iter().find(|(node, _)| *node == id).map(|&(_, i)| i);
            format!(
                "node {id} purged up to {}, {files_before} -> {} segment files",
                show(upto),
                log_segments(cluster, id)
            )
        })
        .collect();
    say(format!(
        "compacted every node (snapshot, purge, segwal checkpoint): {}",
        nodes.join("; ")
    ));
    Ok(())
}
