//! A small state machine: a key-value map in memory, with snapshots saved
//! to a file so a restarted node rebuilds it (the snapshot, then the
//! committed entries after it from the log).
//!
//! # Snapshot file (`kv-snapshot`), little-endian
//!
//! ```text
//! +--------+---------+----------+----------+-----------------------------------+
//! | magic  | version | checksum | body_len | body: postcard (meta, map bytes)   |
//! | 8 B    | u32     | u32      | u64      | body_len B                        |
//! +--------+---------+----------+----------+-----------------------------------+
//!   0..8     8..12     12..16     16..24     24..
//! ```
//!
//! The checksum is CRC32C over `body_len` and the body. A snapshot is
//! written to `kv-snapshot.tmp`, fsynced, renamed over `kv-snapshot` and the
//! directory fsynced: after a crash the file is the old snapshot or the new
//! one, so a damaged file is an error, never a reason to start empty.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::{Cursor, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A command of the key-value store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Sets `key` to `value`.
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
}

/// What applying a [`Request`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The key's value before the command.
    pub previous: Option<String>,
}

openraft::declare_raft_types!(
    /// The Raft types of the key-value store: [`Request`] and [`Response`],
    /// `u64` node ids, [`BasicNode`] addresses, snapshots in memory.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

/// A log id of [`TypeConfig`].
pub type KvLogId = LogId<u64>;

/// The snapshot file's name in the state machine's directory.
pub const SNAPSHOT_FILE_NAME: &str = "kv-snapshot";

const MAGIC: Range<usize> = 0..8;
const VERSION: Range<usize> = MAGIC.end..MAGIC.end + 4;
const CHECKSUM: Range<usize> = VERSION.end..VERSION.end + 4;
const BODY_LEN: Range<usize> = CHECKSUM.end..CHECKSUM.end + 8;
const HEADER_LEN: usize = BODY_LEN.end;
const MAGIC_BYTES: [u8; 8] = *b"SWRAFTSN";
const FORMAT_VERSION: u32 = 1;
/// Largest snapshot file read back (the map lives in memory anyway).
const SNAPSHOT_BYTES_MAX: u64 = 1 << 30;

const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// A snapshot as kept in memory and on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    /// The map, postcard-encoded: what openraft sends to followers.
    data: Vec<u8>,
}

#[derive(Debug, Default)]
struct KvState {
    last_applied: Option<KvLogId>,
    last_membership: StoredMembership<u64, BasicNode>,
    map: BTreeMap<String, String>,
}

#[derive(Debug)]
struct KvInner {
    dir: PathBuf,
    state: RwLock<KvState>,
    snapshot: Mutex<Option<StoredSnapshot>>,
    snapshots_built: AtomicU64,
}

/// The key-value state machine ([`RaftStateMachine`]); clones share it, so
/// a node can read the map while openraft applies to it.
///
/// # Example
///
/// ```
/// use segwal_raft::KvStateMachine;
///
/// let dir = tempfile::tempdir()?;
/// let sm = KvStateMachine::open(dir.path())?; // loads the last snapshot, if any
/// assert_eq!(sm.get("k"), None);
/// assert_eq!(sm.last_applied(), None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct KvStateMachine {
    inner: Arc<KvInner>,
}

fn encode_snapshot_file(snapshot: &StoredSnapshot) -> Result<Vec<u8>> {
    let body = postcard::to_allocvec(snapshot).map_err(|e| Error::Encode(e.to_string()))?;
    let body_len = (body.len() as u64).to_le_bytes();
    let mut digest = CRC32C.digest();
    digest.update(&body_len);
    digest.update(&body);
    let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
    bytes.extend_from_slice(&MAGIC_BYTES);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&digest.finalize().to_le_bytes());
    bytes.extend_from_slice(&body_len);
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

fn decode_snapshot_file(bytes: &[u8]) -> std::result::Result<StoredSnapshot, String> {
    let field = |range: Range<usize>| bytes.get(range).ok_or("shorter than its header");
    if field(MAGIC)? != MAGIC_BYTES {
        return Err("bad magic".into());
    }
    let version = u32::from_le_bytes(field(VERSION)?.try_into().map_err(|_| "version")?);
    if version != FORMAT_VERSION {
        return Err(format!("unknown format version {version}"));
    }
    let sum = u32::from_le_bytes(field(CHECKSUM)?.try_into().map_err(|_| "checksum")?);
    let body_len_bytes = field(BODY_LEN)?;
    let body_len = u64::from_le_bytes(body_len_bytes.try_into().map_err(|_| "length")?);
    let body = usize::try_from(body_len)
        .ok()
        .and_then(|len| bytes.get(HEADER_LEN..HEADER_LEN.checked_add(len)?))
        .ok_or("body length past the end of the file")?;
    if bytes.len() != HEADER_LEN + body.len() {
        return Err("bytes after the body".into());
    }
    let mut digest = CRC32C.digest();
    digest.update(body_len_bytes);
    digest.update(body);
    if digest.finalize() != sum {
        return Err("checksum mismatch".into());
    }
    postcard::from_bytes(body).map_err(|e| format!("does not decode: {e}"))
}

fn decode_map(bytes: &[u8]) -> Result<BTreeMap<String, String>, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("snapshot data does not decode: {e}"))
}

/// Writes the snapshot file atomically (temp file, fsync, rename, fsync
/// of the directory).
fn persist(dir: &Path, snapshot: &StoredSnapshot) -> Result<()> {
    let bytes = encode_snapshot_file(snapshot)?;
    let tmp = dir.join(format!("{SNAPSHOT_FILE_NAME}.tmp"));
    let path = dir.join(SNAPSHOT_FILE_NAME);
    let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(&bytes).map_err(|e| Error::io(&tmp, e))?;
    file.sync_all().map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    segwal_std::sync_dir(dir).map_err(|e| Error::io(dir, e))
}

fn load(dir: &Path) -> Result<Option<StoredSnapshot>> {
    let path = dir.join(SNAPSHOT_FILE_NAME);
    let bad = |reason: String| Error::BadSnapshot {
        path: path.clone(),
        reason,
    };
    let len = match std::fs::metadata(&path) {
        Ok(metadata) => metadata.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    if len > SNAPSHOT_BYTES_MAX {
        return Err(bad(format!("{len} bytes, more than {SNAPSHOT_BYTES_MAX}")));
    }
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    decode_snapshot_file(&bytes).map(Some).map_err(bad)
}

impl KvStateMachine {
    /// Opens the state machine whose snapshots live in `dir` (created if
    /// missing): the map is the last snapshot's, or empty.
    ///
    /// # Errors
    ///
    /// [`Error::Io`]; [`Error::BadSnapshot`] for a damaged snapshot file.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let snapshot = load(dir)?;
        let mut state = KvState::default();
        if let Some(snapshot) = &snapshot {
            state.last_applied = snapshot.meta.last_log_id;
            state.last_membership = snapshot.meta.last_membership.clone();
            state.map = decode_map(&snapshot.data).map_err(|reason| Error::BadSnapshot {
                path: dir.join(SNAPSHOT_FILE_NAME),
                reason,
            })?;
        }
        Ok(KvStateMachine {
            inner: Arc::new(KvInner {
                dir: dir.to_path_buf(),
                state: RwLock::new(state),
                snapshot: Mutex::new(snapshot),
                snapshots_built: AtomicU64::new(0),
            }),
        })
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, KvState> {
        self.inner.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn state_mut(&self) -> std::sync::RwLockWriteGuard<'_, KvState> {
        self.inner.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Option<StoredSnapshot>> {
        self.inner
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The value of `key`, as applied on this node.
    pub fn get(&self, key: &str) -> Option<String> {
        self.state().map.get(key).cloned()
    }

    /// A copy of the whole map.
    pub fn entries(&self) -> BTreeMap<String, String> {
        self.state().map.clone()
    }

    /// The last log id applied (or restored from a snapshot).
    pub fn last_applied(&self) -> Option<KvLogId> {
        self.state().last_applied
    }

    /// The last log id of the current snapshot, if there is one.
    pub fn snapshot_last_log_id(&self) -> Option<KvLogId> {
        self.current().as_ref().and_then(|s| s.meta.last_log_id)
    }

    fn snapshot_error(e: Error) -> StorageError<u64> {
        e.into_storage(ErrorSubject::Snapshot(None), ErrorVerb::Write)
    }

    /// Saves `snapshot` durably, then makes it current.
    async fn save_snapshot(&self, snapshot: StoredSnapshot) -> Result<(), StorageError<u64>> {
        let dir = self.inner.dir.clone();
        let saved =
            tokio::task::spawn_blocking(move || persist(&dir, &snapshot).map(|()| snapshot))
                .await
                .map_err(|e| Self::snapshot_error(Error::Task(e.to_string())))?
                .map_err(Self::snapshot_error)?;
        *self.current() = Some(saved);
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for KvStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let (data, last_log_id, last_membership) = {
            let state = self.state();
            let data = postcard::to_allocvec(&state.map)
                .map_err(|e| Self::snapshot_error(Error::Encode(e.to_string())))?;
            (data, state.last_applied, state.last_membership.clone())
        };
        let sequence = self.inner.snapshots_built.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot_id = match &last_log_id {
            Some(id) => format!("{}-{}-{sequence}", id.leader_id, id.index),
            None => format!("--{sequence}"),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        };
        self.save_snapshot(stored).await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for KvStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<KvLogId>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let state = self.state();
        Ok((state.last_applied, state.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut state = self.state_mut();
        let mut responses = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            let response = match entry.payload {
                EntryPayload::Blank => Response::default(),
                EntryPayload::Normal(Request::Set { key, value }) => Response {
                    previous: state.map.insert(key, value),
                },
                EntryPayload::Normal(Request::Delete { key }) => Response {
                    previous: state.map.remove(&key),
                },
                EntryPayload::Membership(membership) => {
                    state.last_membership = StoredMembership::new(Some(entry.log_id), membership);
                    Response::default()
                }
            };
            responses.push(response);
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let map = decode_map(&data).map_err(|reason| {
            StorageError::from(openraft::StorageIOError::new(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Read,
                openraft::AnyError::error(reason),
            ))
        })?;
        // Durable before the state machine moves to it.
        self.save_snapshot(StoredSnapshot {
            meta: meta.clone(),
            data,
        })
        .await?;
        let mut state = self.state_mut();
        state.last_applied = meta.last_log_id;
        state.last_membership = meta.last_membership.clone();
        state.map = map;
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        Ok(self.current().as_ref().map(|stored| Snapshot {
            meta: stored.meta.clone(),
            snapshot: Box::new(Cursor::new(stored.data.clone())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_file_round_trip_and_damage() {
        let mut map = BTreeMap::new();
        map.insert("k".to_string(), "v".to_string());
        let snapshot = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: Some(openraft::testing::log_id(2, 1, 9)),
                last_membership: StoredMembership::default(),
                snapshot_id: "s".into(),
            },
            data: postcard::to_allocvec(&map).expect("encode"),
        };
        let bytes = encode_snapshot_file(&snapshot).expect("encode");
        let back = decode_snapshot_file(&bytes).expect("decode");
        assert_eq!(back.meta, snapshot.meta);
        assert_eq!(decode_map(&back.data), Ok(map));
        for len in 0..bytes.len() {
            assert!(decode_snapshot_file(&bytes[..len]).is_err(), "cut at {len}");
        }
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_snapshot_file(&flipped).is_err(), "bit {bit}");
        }
    }
}
