//! The store's small state (vote, committed id, last purged id, index <->
//! LSN mapping) in two alternating slot files, so that a torn write never
//! yields a state that was not saved.
//!
//! Each save goes to the slot that does **not** hold the current state,
//! with the next generation, and is fdatasync'd before it counts. The slot
//! holding the current state is never written, so a power cut in the middle
//! of a save leaves it intact; the torn slot fails its checksum.
//!
//! # Slot file (`raft-meta.0`, `raft-meta.1`), little-endian
//!
//! ```text
//! +--------+---------+----------+------------+------+----------+-----------------+------+
//! | magic  | version | body_len | generation | slot | checksum | body (postcard) | zero |
//! | 8 B    | u32     | u32      | u64        | u32  | u32      | body_len B      |      |
//! +--------+---------+----------+------------+------+----------+-----------------+------+
//!   0..8     8..12     12..16     16..24       24..28 28..32     32..32+body_len    ..4096
//! ```
//!
//! The checksum is CRC32C over bytes `0..28` and the body. `slot` is the
//! slot the bytes were written for: a slot file copied over the other one
//! does not validate. Each file is created at its full size (zeros) and
//! synced, with its directory, before the first save; a save rewrites the
//! whole slot at offset 0 and never changes the file's size.
//!
//! # Recovery decision table
//!
//! A slot reads as *empty* (all zeros: never written, or a write of which
//! nothing landed), *damaged* (anything else that fails to validate) or
//! *valid* with a generation. At most one save is in flight at a time.
//!
//! | slot 0      | slot 1      | state                    | why |
//! |-------------|-------------|--------------------------|-----|
//! | empty       | empty       | fresh (nothing saved)    | no save ever completed |
//! | empty       | damaged     | fresh                    | the first save was cut; it was never acknowledged |
//! | damaged     | empty       | fresh                    | the same |
//! | valid g     | empty       | slot 0                   | |
//! | valid g     | damaged     | slot 0                   | the save to slot 1 was cut |
//! | empty       | valid g     | slot 1                   | |
//! | damaged     | valid g     | slot 1                   | the save to slot 0 was cut |
//! | valid g     | valid h     | the higher generation    | the lower one is the state before |
//! | valid g     | valid g     | error                    | two saves never share a generation |
//! | damaged     | damaged     | error                    | one of them held a synced state: damage, not a torn save |
//!
//! What the table cannot see: a synced slot later overwritten with zeros
//! by something else, with the other slot empty or damaged, reads as fresh.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Size of a state slot file (`raft-meta.0`, `raft-meta.1`).
pub const SLOT_BYTES: usize = 4096;

const MAGIC: Range<usize> = 0..8;
const VERSION: Range<usize> = MAGIC.end..MAGIC.end + 4;
const BODY_LEN: Range<usize> = VERSION.end..VERSION.end + 4;
const GENERATION: Range<usize> = BODY_LEN.end..BODY_LEN.end + 8;
const SLOT: Range<usize> = GENERATION.end..GENERATION.end + 4;
const CHECKSUM: Range<usize> = SLOT.end..SLOT.end + 4;
const HEADER_LEN: usize = CHECKSUM.end;
const _: () = assert!(HEADER_LEN == 32);

/// Largest body a slot holds.
pub(crate) const BODY_MAX_BYTES: usize = SLOT_BYTES - HEADER_LEN;

const MAGIC_BYTES: [u8; 8] = *b"SWRAFTMD";
const FORMAT_VERSION: u32 = 1;

const CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// File name of state slot `slot` (0 or 1) in a store directory.
pub fn slot_file_name(slot: usize) -> String {
    format!("raft-meta.{slot}")
}

fn checksum(header: &[u8], body: &[u8]) -> u32 {
    let mut digest = CRC32C.digest();
    digest.update(header);
    digest.update(body);
    digest.finalize()
}

/// Builds the bytes of a slot. The body must fit ([`BODY_MAX_BYTES`]).
pub(crate) fn encode_slot(slot: u32, generation: u64, body: &[u8]) -> Result<Vec<u8>> {
    if body.len() > BODY_MAX_BYTES {
        return Err(Error::MetaTooLarge {
            len_bytes: body.len(),
            max_bytes: BODY_MAX_BYTES,
        });
    }
    let body_len = u32::try_from(body.len()).map_err(|_| Error::MetaTooLarge {
        len_bytes: body.len(),
        max_bytes: BODY_MAX_BYTES,
    })?;
    let mut bytes = vec![0u8; SLOT_BYTES];
    bytes[MAGIC].copy_from_slice(&MAGIC_BYTES);
    bytes[VERSION].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes[BODY_LEN].copy_from_slice(&body_len.to_le_bytes());
    bytes[GENERATION].copy_from_slice(&generation.to_le_bytes());
    bytes[SLOT].copy_from_slice(&slot.to_le_bytes());
    let sum = checksum(&bytes[..CHECKSUM.start], body);
    bytes[CHECKSUM].copy_from_slice(&sum.to_le_bytes());
    bytes[HEADER_LEN..HEADER_LEN + body.len()].copy_from_slice(body);
    // Checked again on the way out, as on the way in.
    debug_assert!(matches!(
        decode_slot(&bytes, slot),
        SlotState::Valid { generation: g, .. } if g == generation
    ));
    Ok(bytes)
}

/// What a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState<'a> {
    /// All zeros: never written, or a save of which nothing landed.
    Empty,
    /// Anything else that does not validate.
    Damaged(&'static str),
    /// A completed save.
    Valid {
        /// Its generation.
        generation: u64,
        /// The body.
        body: &'a [u8],
    },
}

fn field_u32(bytes: &[u8], range: Range<usize>) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(range)?.try_into().ok()?))
}

fn field_u64(bytes: &[u8], range: Range<usize>) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(range)?.try_into().ok()?))
}

/// Classifies the bytes read from slot `slot` (a short read counts as
/// zeros past its end). Never panics on any input.
pub(crate) fn decode_slot(bytes: &[u8], slot: u32) -> SlotState<'_> {
    if bytes.iter().all(|&b| b == 0) {
        return SlotState::Empty;
    }
    let damaged = SlotState::Damaged;
    if bytes.get(MAGIC) != Some(&MAGIC_BYTES[..]) {
        return damaged("bad magic");
    }
    let (Some(version), Some(body_len), Some(generation), Some(written_for), Some(sum)) = (
        field_u32(bytes, VERSION),
        field_u32(bytes, BODY_LEN),
        field_u64(bytes, GENERATION),
        field_u32(bytes, SLOT),
        field_u32(bytes, CHECKSUM),
    ) else {
        return damaged("short header");
    };
    if version != FORMAT_VERSION {
        return damaged("unknown format version");
    }
    let Some(body) = usize::try_from(body_len)
        .ok()
        .filter(|&len| len <= BODY_MAX_BYTES)
        .and_then(|len| bytes.get(HEADER_LEN..HEADER_LEN + len))
    else {
        return damaged("body length out of range");
    };
    if checksum(&bytes[..CHECKSUM.start], body) != sum {
        return damaged("checksum mismatch");
    }
    if written_for != slot {
        return damaged("written for the other slot");
    }
    SlotState::Valid { generation, body }
}

/// Which slot holds the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    /// No save ever completed.
    Fresh,
    /// This slot.
    Slot(usize),
}

/// The decision table (module docs) as a pure function.
pub(crate) fn choose(slots: [&SlotState<'_>; 2]) -> std::result::Result<Choice, &'static str> {
    use SlotState::{Damaged, Empty, Valid};
    match slots {
        [Empty | Damaged(_), Empty] | [Empty, Damaged(_)] => Ok(Choice::Fresh),
        [Valid { .. }, Empty | Damaged(_)] => Ok(Choice::Slot(0)),
        [Empty | Damaged(_), Valid { .. }] => Ok(Choice::Slot(1)),
        [Valid { generation: a, .. }, Valid { generation: b, .. }] => match a.cmp(b) {
            std::cmp::Ordering::Greater => Ok(Choice::Slot(0)),
            std::cmp::Ordering::Less => Ok(Choice::Slot(1)),
            std::cmp::Ordering::Equal => Err("both slots hold the same generation"),
        },
        [Damaged(_), Damaged(_)] => Err("both slots are damaged: a synced state was lost"),
    }
}

/// The two slot files of a store directory.
#[derive(Debug)]
pub(crate) struct MetaSlots {
    files: [File; 2],
    paths: [PathBuf; 2],
    /// The slot holding the current state, and its generation.
    current: Option<(usize, u64)>,
    /// A write or sync failed: what is on disk is unknown until reopened.
    poisoned: bool,
}

fn open_slot_file(path: &Path) -> Result<(File, bool)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len >= SLOT_BYTES as u64 {
        return Ok((file, false));
    }
    // New (or cut short while being created): full size, zeros, synced.
    file.set_len(SLOT_BYTES as u64)
        .map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))?;
    Ok((file, true))
}

fn read_slot(file: &File, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(SLOT_BYTES);
    file.take(SLOT_BYTES as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    // Reads start at the file's cursor: this file was just opened.
    bytes.resize(SLOT_BYTES, 0);
    Ok(bytes)
}

impl MetaSlots {
    /// Opens (creating) the slot files in `dir` and returns them with the
    /// body of the current state, `None` when fresh.
    ///
    /// # Errors
    ///
    /// I/O errors; [`Error::MetaCorrupt`] per the decision table.
    pub(crate) fn open(dir: &Path) -> Result<(Self, Option<Vec<u8>>)> {
        let paths = [dir.join(slot_file_name(0)), dir.join(slot_file_name(1))];
        let (file0, created0) = open_slot_file(&paths[0])?;
        let (file1, created1) = open_slot_file(&paths[1])?;
        if created0 || created1 {
            segwal_std::sync_dir(dir).map_err(|e| Error::io(dir, e))?;
        }
        let bytes = [read_slot(&file0, &paths[0])?, read_slot(&file1, &paths[1])?];
        let states = [decode_slot(&bytes[0], 0), decode_slot(&bytes[1], 1)];
        let choice = choose([&states[0], &states[1]]).map_err(|reason| Error::MetaCorrupt {
            path: dir.to_path_buf(),
            reason: format!(
                "{reason} ({} and {})",
                paths[0].display(),
                paths[1].display()
            ),
        })?;
        let (current, body) = match choice {
            Choice::Fresh => (None, None),
            Choice::Slot(slot) => match states[slot] {
                SlotState::Valid { generation, body } => {
                    (Some((slot, generation)), Some(body.to_vec()))
                }
                // `choose` picks valid slots only.
                SlotState::Empty | SlotState::Damaged(_) => unreachable!("chose an invalid slot"),
            },
        };
        let slots = MetaSlots {
            files: [file0, file1],
            paths,
            current,
            poisoned: false,
        };
        Ok((slots, body))
    }

    /// Saves `body` as the new current state: written to the other slot
    /// with the next generation and fdatasync'd before it returns.
    ///
    /// # Errors
    ///
    /// [`Error::MetaTooLarge`]; I/O errors, after which every later save is
    /// refused (the slot's contents are unknown) until the store is
    /// reopened.
    pub(crate) fn save(&mut self, body: &[u8]) -> Result<()> {
        let (target, generation) = match self.current {
            Some((slot, generation)) => (1 - slot, generation.checked_add(1)),
            None => (0, Some(1)),
        };
        let path = &self.paths[target];
        let generation = generation.ok_or_else(|| Error::MetaCorrupt {
            path: path.clone(),
            reason: "generation counter exhausted".into(),
        })?;
        if self.poisoned {
            return Err(Error::io(
                path,
                std::io::Error::other("an earlier save failed; reopen the store"),
            ));
        }
        let slot = u32::try_from(target).unwrap_or(u32::MAX);
        let bytes = encode_slot(slot, generation, body)?;
        let file = &self.files[target];
        let written = file.write_all_at(&bytes, 0).and_then(|()| file.sync_data());
        if let Err(e) = written {
            self.poisoned = true;
            return Err(Error::io(path, e));
        }
        self.current = Some((target, generation));
        Ok(())
    }

    /// The slot holding the current state and its generation.
    #[cfg(test)]
    pub(crate) fn current(&self) -> Option<(usize, u64)> {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(generation: u64) -> SlotState<'static> {
        SlotState::Valid {
            generation,
            body: b"",
        }
    }

    #[test]
    fn decision_table_every_combination() {
        use SlotState::{Damaged, Empty};
        let torn = Damaged("torn");
        let cases: [(
            SlotState<'_>,
            SlotState<'_>,
            std::result::Result<Choice, ()>,
        ); 12] = [
            (Empty, Empty, Ok(Choice::Fresh)),
            (Empty, torn, Ok(Choice::Fresh)),
            (torn, Empty, Ok(Choice::Fresh)),
            (valid(3), Empty, Ok(Choice::Slot(0))),
            (valid(3), torn, Ok(Choice::Slot(0))),
            (Empty, valid(3), Ok(Choice::Slot(1))),
            (torn, valid(3), Ok(Choice::Slot(1))),
            (valid(3), valid(4), Ok(Choice::Slot(1))),
            (valid(5), valid(4), Ok(Choice::Slot(0))),
            (valid(1), valid(u64::MAX), Ok(Choice::Slot(1))),
            (valid(4), valid(4), Err(())),
            (torn, torn, Err(())),
        ];
        for (a, b, expected) in cases {
            assert_eq!(choose([&a, &b]).map_err(|_| ()), expected, "{a:?} / {b:?}");
        }
    }

    #[test]
    fn slot_round_trip() {
        let bytes = encode_slot(1, 9, b"body bytes").expect("encode");
        assert_eq!(bytes.len(), SLOT_BYTES);
        assert_eq!(
            decode_slot(&bytes, 1),
            SlotState::Valid {
                generation: 9,
                body: b"body bytes"
            }
        );
        assert!(matches!(decode_slot(&bytes, 0), SlotState::Damaged(_)));
        assert_eq!(decode_slot(&[0u8; SLOT_BYTES], 0), SlotState::Empty);
        assert!(encode_slot(0, 1, &vec![1u8; BODY_MAX_BYTES + 1]).is_err());
        assert!(encode_slot(0, 1, &vec![1u8; BODY_MAX_BYTES]).is_ok());
    }

    #[test]
    fn every_torn_prefix_and_flipped_bit_is_refused() {
        let old = encode_slot(0, 1, b"vote term 1").expect("encode");
        let new = encode_slot(0, 3, b"vote term 3, a longer body").expect("encode");
        // A save cut after `len` bytes landed, over the old contents.
        for len in 0..HEADER_LEN + 32 {
            let mut torn = old.clone();
            torn[..len].copy_from_slice(&new[..len]);
            match decode_slot(&torn, 0) {
                SlotState::Valid { generation, body } => {
                    assert!(
                        (generation, body) == (1, &b"vote term 1"[..])
                            || (generation, body) == (3, &b"vote term 3, a longer body"[..]),
                        "cut at {len} gave generation {generation}"
                    );
                }
                SlotState::Damaged(_) | SlotState::Empty => {}
            }
        }
        for bit in 0..(HEADER_LEN + 26) * 8 {
            let mut flipped = new.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(decode_slot(&flipped, 0), SlotState::Valid { .. }),
                "bit {bit}"
            );
        }
        // Short reads and garbage never panic.
        for len in 0..HEADER_LEN {
            let _ = decode_slot(&new[..len], 0);
        }
    }

    #[test]
    fn saves_alternate_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut slots, body) = MetaSlots::open(dir.path()).expect("open");
        assert_eq!(body, None);
        slots.save(b"one").expect("save");
        assert_eq!(slots.current(), Some((0, 1)));
        slots.save(b"two").expect("save");
        assert_eq!(slots.current(), Some((1, 2)));
        slots.save(b"three").expect("save");
        assert_eq!(slots.current(), Some((0, 3)));
        drop(slots);
        let (slots, body) = MetaSlots::open(dir.path()).expect("reopen");
        assert_eq!(body.as_deref(), Some(&b"three"[..]));
        assert_eq!(slots.current(), Some((0, 3)));
    }
}
