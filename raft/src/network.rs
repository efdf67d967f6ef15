//! openraft's network over TCP: one length-prefixed postcard frame per
//! request and per response, one request at a time per connection.
//!
//! # Frame, little-endian
//!
//! ```text
//! +-----------+------------------------------------------+
//! | len u32   | body: postcard (RpcRequest / RpcResponse) |
//! +-----------+------------------------------------------+
//!   0..4        4..4+len   (len <= FRAME_BYTES_MAX)
//! ```
//!
//! A frame longer than [`FRAME_BYTES_MAX`] or a body that does not decode
//! closes the connection; nothing a peer sends can make a node allocate
//! more than one frame's bound or panic.
//!
//! Errors reach openraft as it expects: a peer that cannot be connected to
//! is `Unreachable` (openraft backs off); a connection that fails or times
//! out mid-request is a `NetworkError` (openraft retries, and the next
//! request connects anew); an error the peer's Raft returned is a
//! `RemoteError`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft, RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::kv::TypeConfig;

/// Largest frame body sent or accepted: an AppendEntries batch or a
/// snapshot chunk (openraft's default chunk is 3 MiB) fits.
pub const FRAME_BYTES_MAX: u32 = 64 << 20;

/// Pause after a failed `accept` (out of file descriptors, say) before the
/// next one, so the loop never spins.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(20);

/// A request between nodes.
#[derive(Debug, Serialize, Deserialize)]
enum RpcRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

/// The answer to an [`RpcRequest`] of the same name.
#[derive(Debug, Serialize, Deserialize)]
enum RpcResponse {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    InstallSnapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
}

async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    value: &impl Serialize,
) -> io::Result<()> {
    let mut frame = postcard::to_extend(value, vec![0u8; 4]).map_err(io::Error::other)?;
    let body_len = u32::try_from(frame.len() - 4)
        .ok()
        .filter(|&len| len <= FRAME_BYTES_MAX)
        .ok_or_else(|| {
            io::Error::other(format!("a {}-byte frame is too large", frame.len() - 4))
        })?;
    frame[..4].copy_from_slice(&body_len.to_le_bytes());
    writer.write_all(&frame).await?;
    writer.flush().await
}

async fn read_frame<R: AsyncRead + Unpin, T: DeserializeOwned>(reader: &mut R) -> io::Result<T> {
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len);
    if len > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a {len}-byte frame is larger than {FRAME_BYTES_MAX}"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    reader.read_exact(&mut body).await?;
    postcard::from_bytes(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Serves Raft RPCs from `listener` to `raft` until the returned task is
/// aborted (which closes every connection it accepted).
pub fn serve(listener: TcpListener, raft: Raft<TypeConfig>) -> JoinHandle<()> {
    tokio::spawn(async move {
        // Owned here: aborting this task drops the set, which aborts them.
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        connections.spawn(serve_connection(stream, raft.clone()));
                    }
                    Err(_) => tokio::time::sleep(ACCEPT_RETRY_DELAY).await,
                },
                Some(_finished) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    })
}

async fn serve_connection(mut stream: TcpStream, raft: Raft<TypeConfig>) {
    // Small frames go out at once rather than waiting for more.
    let _ = stream.set_nodelay(true);
    // Ends when the peer closes, sends something invalid, or a write fails.
    while let Ok(request) = read_frame::<_, RpcRequest>(&mut stream).await {
        let response = match request {
            RpcRequest::AppendEntries(rpc) => {
                RpcResponse::AppendEntries(raft.append_entries(rpc).await)
            }
            RpcRequest::Vote(rpc) => RpcResponse::Vote(raft.vote(rpc).await),
            RpcRequest::InstallSnapshot(rpc) => {
                RpcResponse::InstallSnapshot(raft.install_snapshot(rpc).await)
            }
        };
        if write_frame(&mut stream, &response).await.is_err() {
            return;
        }
    }
}

/// Creates a [`TcpConnection`] per peer; peers are found by the address in
/// their [`BasicNode`].
#[derive(Debug, Clone, Default)]
pub struct TcpNetworkFactory;

impl RaftNetworkFactory<TypeConfig> for TcpNetworkFactory {
    type Network = TcpConnection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> TcpConnection {
        TcpConnection {
            target,
            addr: node.addr.clone(),
            stream: None,
        }
    }
}

/// One peer: a TCP connection made on first use and again after a failure.
#[derive(Debug)]
pub struct TcpConnection {
    target: u64,
    addr: String,
    stream: Option<TcpStream>,
}

/// Why a call got no response.
enum CallError {
    /// No connection could be made.
    Unreachable(io::Error),
    /// The connection failed, timed out or sent nonsense.
    Network(io::Error),
}

impl CallError {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<u64, BasicNode, E> {
        match self {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }
}

fn mismatch() -> CallError {
    CallError::Network(io::Error::new(
        io::ErrorKind::InvalidData,
        "the response does not answer the request",
    ))
}

impl TcpConnection {
    async fn connect(&self, ttl: Duration) -> Result<TcpStream, CallError> {
        let addr: SocketAddr = self
            .addr
            .parse()
            .map_err(|e| CallError::Unreachable(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        let stream = tokio::time::timeout(ttl, TcpStream::connect(addr))
            .await
            .map_err(|elapsed| {
                CallError::Unreachable(io::Error::new(io::ErrorKind::TimedOut, elapsed))
            })?
            .map_err(CallError::Unreachable)?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Sends `request` and waits for its response, within `ttl`.
    async fn call(&mut self, request: RpcRequest, ttl: Duration) -> Result<RpcResponse, CallError> {
        let mut stream = match self.stream.take() {
            Some(stream) => stream,
            None => self.connect(ttl).await?,
        };
        let exchange = async {
            write_frame(&mut stream, &request).await?;
            read_frame::<_, RpcResponse>(&mut stream).await
        };
        let response = tokio::time::timeout(ttl, exchange)
            .await
            .map_err(|elapsed| {
                CallError::Network(io::Error::new(io::ErrorKind::TimedOut, elapsed))
            })?
            .map_err(CallError::Network)?;
        // Kept only after a whole exchange: a failed one may leave half a
        // frame in either direction.
        self.stream = Some(stream);
        Ok(response)
    }
}

impl RaftNetwork<TypeConfig> for TcpConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let response = self
            .call(RpcRequest::AppendEntries(rpc), option.hard_ttl())
            .await
            .map_err(CallError::into_rpc)?;
        match response {
            RpcResponse::AppendEntries(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(mismatch().into_rpc()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let response = self
            .call(RpcRequest::InstallSnapshot(rpc), option.hard_ttl())
            .await
            .map_err(CallError::into_rpc)?;
        match response {
            RpcResponse::InstallSnapshot(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(mismatch().into_rpc()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let response = self
            .call(RpcRequest::Vote(rpc), option.hard_ttl())
            .await
            .map_err(CallError::into_rpc)?;
        match response {
            RpcResponse::Vote(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(mismatch().into_rpc()),
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::error::{Fatal, SnapshotMismatch};
    use openraft::testing::log_id;
    use openraft::{
        AnyError, Entry, EntryPayload, Membership, SnapshotMeta, SnapshotSegmentId, StorageIOError,
        StoredMembership, Vote,
    };

    use super::*;
    use crate::kv::Request;

    /// Encodes and decodes through the frame code; compares by `Debug`
    /// (not every openraft message is `PartialEq`).
    async fn round_trip<T: Serialize + DeserializeOwned + std::fmt::Debug>(value: &T) {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_frame(&mut a, value).await.expect("write");
        let back: T = read_frame(&mut b).await.expect("read");
        assert_eq!(format!("{back:?}"), format!("{value:?}"));
    }

    #[tokio::test]
    async fn every_message_and_error_survives_the_wire() {
        let vote = Vote::new_committed(3, 1);
        let members = Membership::new(vec![[1u64, 2, 3].into_iter().collect()], None);
        round_trip(&RpcRequest::Vote(VoteRequest::new(
            vote,
            Some(log_id(2, 1, 9)),
        )))
        .await;
        round_trip(&RpcRequest::AppendEntries(AppendEntriesRequest {
            vote,
            prev_log_id: Some(log_id(2, 1, 9)),
            entries: vec![
                Entry {
                    log_id: log_id(3, 1, 10),
                    payload: EntryPayload::Normal(Request::Set {
                        key: "k".into(),
                        value: "v".into(),
                    }),
                },
                Entry {
                    log_id: log_id(3, 1, 11),
                    payload: EntryPayload::Membership(members.clone()),
                },
                Entry {
                    log_id: log_id(3, 1, 12),
                    payload: EntryPayload::Blank,
                },
            ],
            leader_commit: Some(log_id(2, 1, 8)),
        }))
        .await;
        round_trip(&RpcRequest::InstallSnapshot(InstallSnapshotRequest {
            vote,
            meta: SnapshotMeta {
                last_log_id: Some(log_id(3, 1, 12)),
                last_membership: StoredMembership::new(Some(log_id(3, 1, 11)), members),
                snapshot_id: "3-1-12-1".into(),
            },
            offset: 0,
            data: vec![1, 2, 3],
            done: true,
        }))
        .await;
        let storage: openraft::StorageError<u64> =
            StorageIOError::write(AnyError::error("disk on fire")).into();
        round_trip(&RpcResponse::AppendEntries(Err(RaftError::Fatal(
            Fatal::StorageError(storage),
        ))))
        .await;
        round_trip(&RpcResponse::Vote(Err(RaftError::Fatal(Fatal::Stopped)))).await;
        let segment = |offset| SnapshotSegmentId {
            id: "s".into(),
            offset,
        };
        round_trip(&RpcResponse::InstallSnapshot(Err(RaftError::APIError(
            InstallSnapshotError::SnapshotMismatch(SnapshotMismatch {
                expect: segment(0),
                got: segment(7),
            }),
        ))))
        .await;
        round_trip(&RpcResponse::AppendEntries(Ok(
            AppendEntriesResponse::Success,
        )))
        .await;
        round_trip(&RpcResponse::Vote(Ok(VoteResponse::new(vote, None, true)))).await;
    }

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_frame(&mut a, &(7u64, "hello".to_string()))
            .await
            .expect("write");
        let back: (u64, String) = read_frame(&mut b).await.expect("read");
        assert_eq!(back, (7, "hello".to_string()));

        a.write_all(&(FRAME_BYTES_MAX + 1).to_le_bytes())
            .await
            .expect("write");
        let refused = read_frame::<_, (u64, String)>(&mut b).await;
        assert_eq!(
            refused.map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::InvalidData)
        );

        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(&3u32.to_le_bytes()).await.expect("write");
        a.write_all(&[0xff, 0xff, 0xff]).await.expect("write");
        assert!(read_frame::<_, (u64, String)>(&mut b).await.is_err());
    }
}
