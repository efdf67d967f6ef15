//! # segwal-raft: segwal as the log store of an openraft cluster
//!
//! - [`SegwalLogStore`]: openraft 0.9's storage-v2 [`RaftLogStorage`] (and
//!   [`RaftLogReader`]) over a segwal log. Each entry is one record; an
//!   append is one atomic segwal batch made durable by one fdatasync
//!   before openraft is told; `truncate` is segwal's `truncate_after`,
//!   `purge` its `checkpoint`; reads seek by LSN. The vote, the committed
//!   id, the last purged id and the index <-> LSN mapping live in two
//!   alternating checksummed slot files, so a torn write never returns a
//!   state that was not saved.
//! - [`KvStateMachine`]: a key-value map with snapshots saved to a file,
//!   enough to run openraft's storage test suite and a small cluster.
//! - [`network`]: openraft's network over TCP (a length-prefixed postcard
//!   protocol on tokio streams).
//! - [`cluster`]: nodes and a local cluster over loopback; [`failover`]:
//!   the scenario the `raft-kv` example shows and the failover test checks
//!   (`cargo run -p segwal-raft --example raft-kv`).
//!
//! Async lives here only: segwal itself stays synchronous, and the store
//! runs its blocking calls on tokio's blocking pool.
//!
//! [`RaftLogStorage`]: openraft::storage::RaftLogStorage
//! [`RaftLogReader`]: openraft::RaftLogReader

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cluster;
mod codec;
mod error;
pub mod failover;
mod kv;
mod log_store;
mod mapping;
mod meta;
pub mod network;

pub use cluster::{ClusterError, KvNode, LocalCluster, NodeOptions, Recovered};
pub use error::{Error, Result};
pub use kv::{KvLogId, KvStateMachine, Request, Response, SNAPSHOT_FILE_NAME, TypeConfig};
pub use log_store::{LOG_DIR_NAME, LsnSpan, READ_BATCH_BYTES_MAX, SegwalLogReader, SegwalLogStore};
pub use meta::{SLOT_BYTES, slot_file_name};
