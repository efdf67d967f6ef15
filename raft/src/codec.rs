//! How a Raft log entry is a segwal record.
//!
//! ```text
//! +---------+--------------------------------------------------------+
//! | version | entry: postcard (serde; varint integers)               |
//! | u8 = 1  | log id (term, node, index), then the payload           |
//! +---------+--------------------------------------------------------+
//!   0         1..len
//! ```
//!
//! segwal checksums the record (salt, position, header and payload), so
//! the bytes are the ones written; decoding still refuses what it cannot
//! parse instead of panicking. The entry carries its own log index, so a
//! record read at the wrong LSN is detected ([`Error::Misplaced`]).
//!
//! [`Error::Misplaced`]: crate::Error::Misplaced

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// The record format this version writes and reads.
pub(crate) const ENTRY_FORMAT_V1: u8 = 1;

/// Encodes an entry as a record payload.
pub(crate) fn encode_entry<T: Serialize>(entry: &T) -> Result<Vec<u8>> {
    postcard::to_extend(entry, vec![ENTRY_FORMAT_V1]).map_err(|e| Error::Encode(e.to_string()))
}

/// Decodes the record at `lsn`.
pub(crate) fn decode_entry<T: DeserializeOwned>(lsn: u64, bytes: &[u8]) -> Result<T> {
    let bad = |reason: String| Error::BadRecord { lsn, reason };
    let (version, body) = bytes
        .split_first()
        .ok_or_else(|| bad("empty record".into()))?;
    if *version != ENTRY_FORMAT_V1 {
        return Err(bad(format!("unknown entry format {version}")));
    }
    let (entry, rest) = postcard::take_from_bytes(body).map_err(|e| bad(e.to_string()))?;
    if !rest.is_empty() {
        return Err(bad(format!("{} bytes after the entry", rest.len())));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let value = (7u64, String::from("set k = v"));
        let bytes = encode_entry(&value).expect("encode");
        assert_eq!(bytes[0], ENTRY_FORMAT_V1);
        let back: (u64, String) = decode_entry(1, &bytes).expect("decode");
        assert_eq!(back, value);

        assert!(matches!(
            decode_entry::<(u64, String)>(1, &[]),
            Err(Error::BadRecord { lsn: 1, .. })
        ));
        let mut other_version = bytes.clone();
        other_version[0] = 2;
        assert!(decode_entry::<(u64, String)>(1, &other_version).is_err());
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_entry::<(u64, String)>(1, &trailing).is_err());
        // Every truncation is an error, never a panic.
        for len in 0..bytes.len() {
            assert!(decode_entry::<(u64, String)>(1, &bytes[..len]).is_err());
        }
    }
}
