//! Fresh segment salts without a random-number dependency.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A salt no earlier use of the same space has had (with overwhelming
/// probability): std's randomly keyed SipHash over the time, the process id
/// and a counter. The salt is what makes stale records fail their checksums,
/// so it must differ between uses, not be secret.
pub(crate) fn fresh_salt() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::hash::RandomState::new().build_hasher();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(now);
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish()
}

#[cfg(test)]
mod tests {
    #[test]
    fn salts_differ() {
        let a = super::fresh_salt();
        let b = super::fresh_salt();
        assert_ne!(a, b);
    }
}
