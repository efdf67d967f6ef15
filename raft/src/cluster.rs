//! Key-value nodes ([`KvNode`]) and a cluster of them on loopback
//! ([`LocalCluster`]): what the `raft-kv` example runs and the failover
//! test checks.
//!
//! A node's directory holds its segwal log store (`raft/`) and its state
//! machine's snapshot (`sm/`). Stopping a node shuts its Raft down, closes
//! its port and drops its store (closing the log's files and lock);
//! restarting it opens the same directory: the vote, the log and the
//! snapshot come back from disk, and openraft re-applies the committed
//! entries after the snapshot before the node rejoins.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::storage::RaftLogStorage;
use openraft::{BasicNode, Config, Raft, RaftMetrics, ServerState, SnapshotPolicy, Vote};
use segwal_std::WalOptions;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::error::Error;
use crate::kv::{KvLogId, KvStateMachine, Request, TypeConfig};
use crate::log_store::SegwalLogStore;
use crate::network::{TcpNetworkFactory, serve};

/// How long a restarting node waits for the previous incarnation's tasks
/// to let go of its log directory (segwal's lock).
const STORE_LOCK_WAIT: Duration = Duration::from_secs(10);

/// Pause between polls while waiting for something that has no event.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Tries to bind a restarting node's old port (it may linger briefly).
const BIND_ATTEMPTS_MAX: usize = 50;

/// What can go wrong running a node or a cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// Opening or using a node's log store or state machine failed.
    #[error(transparent)]
    Store(#[from] Error),
    /// Binding a port or creating a directory failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// openraft refused or failed (a fatal error, an initialization that
    /// was refused, ...).
    #[error("raft: {0}")]
    Raft(String),
    /// Something did not happen within its time limit.
    #[error("timed out: {0}")]
    Timeout(String),
    /// No node has this id, or it is stopped.
    #[error("node {0} is not running")]
    NotRunning(u64),
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// How nodes are configured.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// openraft's configuration, the same on every node.
    pub raft: Arc<Config>,
    /// The segwal log of each node.
    pub wal: WalOptions,
}

impl NodeOptions {
    /// Timing for a loaded 2-core machine (heartbeat 100 ms, elections
    /// after 400-800 ms of silence), a snapshot every `snapshot_every`
    /// entries with openraft's default of 1000 entries kept behind it (so a
    /// node that was down for a while catches up from the log;
    /// [`LocalCluster::compact`] purges on demand), and 1 MiB segments.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Raft`] if openraft refuses the configuration.
    pub fn new(snapshot_every: u64) -> Result<Self, ClusterError> {
        let config = Config {
            cluster_name: "segwal-raft-kv".into(),
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(snapshot_every),
            ..Config::default()
        }
        .validate()
        .map_err(|e| ClusterError::Raft(e.to_string()))?;
        Ok(NodeOptions {
            raft: Arc::new(config),
            wal: WalOptions {
                segment_size_bytes: 1 << 20,
                ..WalOptions::default()
            },
        })
    }
}

/// What a node's log store held when the node started, before openraft
/// touched it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The saved vote.
    pub vote: Option<Vote<u64>>,
    /// The saved committed log id.
    pub committed: Option<KvLogId>,
    /// The last entry's log id (or the last purged one, with no entry).
    pub last_log_id: Option<KvLogId>,
    /// The last purged log id.
    pub last_purged: Option<KvLogId>,
}

/// One running node: its Raft, its state machine and its RPC server.
pub struct KvNode {
    id: u64,
    addr: SocketAddr,
    recovered: Recovered,
    raft: Raft<TypeConfig>,
    state_machine: KvStateMachine,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for KvNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvNode")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Opens the log store, waiting while an earlier incarnation's tasks still
/// hold the directory's lock.
async fn open_store(
    dir: PathBuf,
    wal: WalOptions,
) -> Result<SegwalLogStore<TypeConfig>, ClusterError> {
    let deadline = Instant::now() + STORE_LOCK_WAIT;
    loop {
        let (dir_again, wal_again) = (dir.clone(), wal.clone());
        let opened =
            tokio::task::spawn_blocking(move || SegwalLogStore::open(dir_again, &wal_again))
                .await
                .map_err(|e| ClusterError::Store(Error::Task(e.to_string())))?;
        match opened {
            Err(Error::Log(segwal_std::Error::Locked { .. })) if Instant::now() < deadline => {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
            other => return Ok(other?),
        }
    }
}

/// Reads what a store holds, as openraft will at start-up.
async fn recover(store: &mut SegwalLogStore<TypeConfig>) -> Result<Recovered, ClusterError> {
    let raft_error = |e: openraft::StorageError<u64>| ClusterError::Raft(e.to_string());
    let state = store.get_log_state().await.map_err(raft_error)?;
    Ok(Recovered {
        vote: store.read_vote().await.map_err(raft_error)?,
        committed: store.read_committed().await.map_err(raft_error)?,
        last_log_id: state.last_log_id,
        last_purged: state.last_purged_log_id,
    })
}

impl KvNode {
    /// Starts node `id` from `dir` (created if new), serving Raft RPCs on
    /// `listener`.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Store`] when the log store or the snapshot cannot be
    /// opened; [`ClusterError::Raft`] when openraft cannot start on them.
    pub async fn start(
        id: u64,
        dir: &Path,
        listener: TcpListener,
        options: &NodeOptions,
    ) -> Result<Self, ClusterError> {
        let addr = listener.local_addr().map_err(io_error("local address"))?;
        let mut store = open_store(dir.join("raft"), options.wal.clone()).await?;
        let recovered = recover(&mut store).await?;
        let sm_dir = dir.join("sm");
        let state_machine = tokio::task::spawn_blocking(move || KvStateMachine::open(sm_dir))
            .await
            .map_err(|e| ClusterError::Store(Error::Task(e.to_string())))??;
        let raft = Raft::new(
            id,
            Arc::clone(&options.raft),
            TcpNetworkFactory,
            store,
            state_machine.clone(),
        )
        .await
        .map_err(|e| ClusterError::Raft(e.to_string()))?;
        let server = serve(listener, raft.clone());
        Ok(KvNode {
            id,
            addr,
            recovered,
            raft,
            state_machine,
            server,
        })
    }

    /// The node's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The address it serves Raft RPCs on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What its log store held when it started.
    pub fn recovered(&self) -> &Recovered {
        &self.recovered
    }

    /// Its Raft handle.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// Its state machine (what it has applied).
    pub fn state_machine(&self) -> &KvStateMachine {
        &self.state_machine
    }

    /// Its latest metrics.
    pub fn metrics(&self) -> RaftMetrics<u64, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    /// Stops the node: shuts Raft down (its storage is dropped), then
    /// closes its port and every connection to it.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Raft`] when Raft's task did not end cleanly.
    pub async fn stop(self) -> Result<(), ClusterError> {
        let shutdown = self.raft.shutdown().await;
        self.server.abort();
        // Aborted: the join reports the cancellation, which is the point.
        let _ = self.server.await;
        shutdown.map_err(|e| ClusterError::Raft(e.to_string()))
    }
}

/// Nodes 1..=n on 127.0.0.1, each in its own directory under one root.
#[derive(Debug)]
pub struct LocalCluster {
    root: PathBuf,
    options: NodeOptions,
    addrs: BTreeMap<u64, SocketAddr>,
    nodes: BTreeMap<u64, KvNode>,
}

impl LocalCluster {
    /// Starts `count` nodes under `root` (node `i` in `root/node-i`), each
    /// on a free loopback port, and initializes them as one cluster on
    /// node 1 if it is new.
    ///
    /// # Errors
    ///
    /// As for [`KvNode::start`]; [`ClusterError::Io`] when no port can be
    /// bound.
    pub async fn start(
        root: &Path,
        count: u64,
        options: NodeOptions,
    ) -> Result<Self, ClusterError> {
        let mut cluster = LocalCluster {
            root: root.to_path_buf(),
            options,
            addrs: BTreeMap::new(),
            nodes: BTreeMap::new(),
        };
        let mut listeners = Vec::new();
        for id in 1..=count {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(io_error("bind a loopback port"))?;
            let addr = listener.local_addr().map_err(io_error("local address"))?;
            cluster.addrs.insert(id, addr);
            listeners.push((id, listener));
        }
        for (id, listener) in listeners {
            let node = KvNode::start(id, &cluster.node_dir(id), listener, &cluster.options).await?;
            cluster.nodes.insert(id, node);
        }
        let first = cluster.running(1)?;
        let initialized = first
            .raft
            .is_initialized()
            .await
            .map_err(|e| ClusterError::Raft(e.to_string()))?;
        if !initialized {
            let members: BTreeMap<u64, BasicNode> = cluster
                .addrs
                .iter()
                .map(|(&id, addr)| (id, BasicNode::new(addr.to_string())))
                .collect();
            first
                .raft
                .initialize(members)
                .await
                .map_err(|e| ClusterError::Raft(e.to_string()))?;
        }
        Ok(cluster)
    }

    /// The directory of node `id`.
    pub fn node_dir(&self, id: u64) -> PathBuf {
        self.root.join(format!("node-{id}"))
    }

    /// Node `id`, if it is running.
    pub fn node(&self, id: u64) -> Option<&KvNode> {
        self.nodes.get(&id)
    }

    fn running(&self, id: u64) -> Result<&KvNode, ClusterError> {
        self.nodes.get(&id).ok_or(ClusterError::NotRunning(id))
    }

    /// The running nodes.
    pub fn nodes(&self) -> impl Iterator<Item = &KvNode> {
        self.nodes.values()
    }

    /// Every node id, running or not.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.addrs.keys().copied()
    }

    /// The running node that is leader now, if a running node knows one
    /// and that node says so itself.
    pub fn leader(&self) -> Option<u64> {
        self.nodes.values().find_map(|node| {
            let leader = node.metrics().current_leader?;
            let metrics = self.nodes.get(&leader)?.metrics();
            (metrics.state == ServerState::Leader).then_some(leader)
        })
    }

    /// Waits until a running node other than `excluded` leads, and returns
    /// its id.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Timeout`] after `timeout`.
    pub async fn wait_for_leader(
        &self,
        excluded: Option<u64>,
        timeout: Duration,
    ) -> Result<u64, ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader().filter(|&l| Some(l) != excluded) {
                return Ok(leader);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Some(node) = self.nodes.values().next().filter(|_| !remaining.is_zero()) else {
                return Err(ClusterError::Timeout(format!(
                    "no leader within {timeout:?}"
                )));
            };
            // Wake on the next metrics change that names a leader, or poll.
            let _ = node
                .raft
                .wait(Some(remaining.min(POLL_INTERVAL * 10)))
                .metrics(
                    |m| m.current_leader.is_some_and(|l| Some(l) != excluded),
                    "a leader",
                )
                .await;
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Sets `key` to `value` through the leader, following leader changes,
    /// and returns the entry's log id once the cluster has committed and
    /// the leader applied it: an acknowledged write.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Timeout`] when no attempt is acknowledged within
    /// `timeout` (an unacknowledged attempt may still have been
    /// committed; setting a key twice is harmless).
    pub async fn write(
        &self,
        key: &str,
        value: &str,
        timeout: Duration,
    ) -> Result<KvLogId, ClusterError> {
        let deadline = Instant::now() + timeout;
        let mut target = self.leader();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ClusterError::Timeout(format!(
                    "writing {key} for {timeout:?}"
                )));
            }
            let Some(node) = target.and_then(|id| self.nodes.get(&id)) else {
                target = self.wait_for_leader(None, remaining).await.ok();
                continue;
            };
            let request = Request::Set {
                key: key.to_owned(),
                value: value.to_owned(),
            };
            let attempt = tokio::time::timeout(remaining, node.raft.client_write(request)).await;
            match attempt {
                Ok(Ok(response)) => return Ok(response.log_id),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                    target = forward.leader_id;
                }
                Ok(Err(_)) | Err(_) => target = None,
            }
            tokio::time::sleep(POLL_INTERVAL).await;
            target = target.or_else(|| self.leader());
        }
    }

    /// Starts a new node `id` in its own directory and adds it to the
    /// cluster as a learner, through the leader; returns once the leader
    /// has brought it up to date (by log entries, or by its snapshot when
    /// it has purged the entries the node lacks).
    ///
    /// # Errors
    ///
    /// As for [`KvNode::start`]; [`ClusterError::Timeout`] when no leader
    /// takes the change within `timeout`.
    pub async fn add_learner(&mut self, id: u64, timeout: Duration) -> Result<(), ClusterError> {
        if !self.addrs.contains_key(&id) {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(io_error("bind a loopback port"))?;
            let addr = listener.local_addr().map_err(io_error("local address"))?;
            let node = KvNode::start(id, &self.node_dir(id), listener, &self.options).await?;
            self.addrs.insert(id, addr);
            self.nodes.insert(id, node);
        }
        let node = BasicNode::new(
            self.addrs
                .get(&id)
                .ok_or(ClusterError::NotRunning(id))?
                .to_string(),
        );
        let deadline = Instant::now() + timeout;
        let mut target = self.leader();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ClusterError::Timeout(format!("adding learner {id}")));
            }
            let Some(leader) = target.and_then(|l| self.nodes.get(&l)) else {
                target = self.wait_for_leader(None, remaining).await.ok();
                continue;
            };
            let attempt =
                tokio::time::timeout(remaining, leader.raft.add_learner(id, node.clone(), true));
            match attempt.await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => {
                    target = forward.leader_id;
                }
                Ok(Err(_)) | Err(_) => target = None,
            }
            tokio::time::sleep(POLL_INTERVAL).await;
            target = target.or_else(|| self.leader());
        }
    }

    /// Stops node `id` (see [`KvNode::stop`]).
    ///
    /// # Errors
    ///
    /// [`ClusterError::NotRunning`]; as for [`KvNode::stop`].
    pub async fn stop_node(&mut self, id: u64) -> Result<(), ClusterError> {
        let node = self.nodes.remove(&id).ok_or(ClusterError::NotRunning(id))?;
        node.stop().await
    }

    /// Starts node `id` again from its directory, on its old address.
    ///
    /// # Errors
    ///
    /// As for [`KvNode::start`]; [`ClusterError::Io`] when its port stays
    /// taken.
    pub async fn restart_node(&mut self, id: u64) -> Result<(), ClusterError> {
        if self.nodes.contains_key(&id) {
            return Ok(());
        }
        let addr = *self.addrs.get(&id).ok_or(ClusterError::NotRunning(id))?;
        let mut attempt = 0;
        let listener = loop {
            attempt += 1;
            match TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < BIND_ATTEMPTS_MAX => {
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
                Err(e) => return Err(io_error(format!("bind {addr}"))(e)),
            }
        };
        let node = KvNode::start(id, &self.node_dir(id), listener, &self.options).await?;
        self.nodes.insert(id, node);
        Ok(())
    }

    /// Waits until every running node has applied `index`.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Timeout`] naming the node that did not.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        for node in self.nodes.values() {
            let remaining = deadline.saturating_duration_since(Instant::now());
            node.raft
                .wait(Some(remaining))
                .applied_index_at_least(Some(index), format!("node {} applies {index}", node.id))
                .await
                .map_err(|e| ClusterError::Timeout(e.to_string()))?;
        }
        Ok(())
    }

    /// Has every running node build a snapshot of what it applied and
    /// purge its log up to it (segwal checkpoints the segments it no
    /// longer needs). Returns each node's purged index.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Timeout`] when a snapshot or a purge does not happen
    /// within `timeout` (a leader postpones a purge while a follower still
    /// needs the entries).
    pub async fn compact(&self, timeout: Duration) -> Result<Vec<(u64, u64)>, ClusterError> {
        let deadline = Instant::now() + timeout;
        let mut purged = Vec::new();
        for node in self.nodes.values() {
            let fatal = |e: openraft::error::Fatal<u64>| ClusterError::Raft(e.to_string());
            let waited = |e: openraft::metrics::WaitError| ClusterError::Timeout(e.to_string());
            let applied = node.metrics().last_applied.map(|id| id.index);
            node.raft.trigger().snapshot().await.map_err(fatal)?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let metrics = node
                .raft
                .wait(Some(remaining))
                .metrics(
                    |m| m.snapshot.map(|id| id.index) >= applied,
                    format!("node {} snapshots", node.id),
                )
                .await
                .map_err(waited)?;
            let Some(upto) = metrics.snapshot.map(|id| id.index) else {
                continue;
            };
            node.raft.trigger().purge_log(upto).await.map_err(fatal)?;
            let remaining = deadline.saturating_duration_since(Instant::now());
            node.raft
                .wait(Some(remaining))
                .metrics(
                    |m| m.purged.map(|id| id.index) >= Some(upto),
                    format!("node {} purges", node.id),
                )
                .await
                .map_err(waited)?;
            purged.push((node.id, upto));
        }
        Ok(purged)
    }

    /// Stops every running node.
    ///
    /// # Errors
    ///
    /// The first error of [`KvNode::stop`].
    pub async fn shutdown(mut self) -> Result<(), ClusterError> {
        let mut first_error = None;
        for (_, node) in std::mem::take(&mut self.nodes) {
            if let Err(e) = node.stop().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
