//! openraft's own storage test suite, `openraft::testing::Suite::test_all`,
//! over [`SegwalLogStore`] and [`KvStateMachine`]: about thirty scenarios
//! of append, truncate, purge (inside the log, to its end and past it),
//! votes, membership recovery, initial state and snapshot transfer, each
//! on a fresh temporary directory.

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use segwal_raft::{KvStateMachine, SegwalLogStore, TypeConfig};
use segwal_std::WalOptions;
use tempfile::TempDir;

struct Builder;

fn storage_error(e: impl std::error::Error + 'static) -> StorageError<u64> {
    openraft::StorageIOError::write(openraft::AnyError::new(&e)).into()
}

impl StoreBuilder<TypeConfig, SegwalLogStore<TypeConfig>, KvStateMachine, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, SegwalLogStore<TypeConfig>, KvStateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(storage_error)?;
        // Small segments: each test creates a log, and a segment file is
        // preallocated and zero-filled.
        let options = WalOptions {
            segment_size_bytes: 256 << 10,
            prepare_next_segment: false,
            ..WalOptions::default()
        };
        let store =
            SegwalLogStore::open(dir.path().join("raft"), &options).map_err(storage_error)?;
        let sm = KvStateMachine::open(dir.path().join("sm")).map_err(storage_error)?;
        Ok((dir, store, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("openraft's storage suite failed: {e}");
    }
}
