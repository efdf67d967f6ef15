//! [`Event`]: one sensor reading, and its record in the log.
//!
//! A record is the event as fixed-width ASCII, so a hex dump of the flash
//! reads as a log, and the decoder checks every byte (a record that passes
//! its checksum but is not an event, say from another firmware version, is
//! reported, never trusted):
//!
//! ```text
//!  0    2            12     15      18     21  22          27
//!  ┌────┬────────────┬──────┬───────┬──────┬───┬───────────┐
//!  │ t= │ tick       │  s=  │ sensor│  v=  │ ± │ |value|   │
//!  │    │ 10 digits  │      │ 3 dig.│      │   │ 5 digits  │
//!  └────┴────────────┴──────┴───────┴──────┴───┴───────────┘
//!  e.g. "t=0000000042 s=001 v=-01234"
//! ```
//!
//! Digits are decimal, most significant first, zero-padded. Each field's
//! range follows from the previous one.

use core::ops::Range;

/// Bytes of `"t="`.
pub const TICK_TAG: Range<usize> = 0..2;
/// The tick, 10 digits (any `u32`).
pub const TICK: Range<usize> = TICK_TAG.end..TICK_TAG.end + 10;
/// Bytes of `" s="`.
pub const SENSOR_TAG: Range<usize> = TICK.end..TICK.end + 3;
/// The sensor id, 3 digits (any `u8`).
pub const SENSOR: Range<usize> = SENSOR_TAG.end..SENSOR_TAG.end + 3;
/// Bytes of `" v="`.
pub const VALUE_TAG: Range<usize> = SENSOR.end..SENSOR.end + 3;
/// `+` or `-`.
pub const SIGN: Range<usize> = VALUE_TAG.end..VALUE_TAG.end + 1;
/// The value's magnitude, 5 digits (any `i16`: 32768 at most).
pub const MAGNITUDE: Range<usize> = SIGN.end..SIGN.end + 5;
/// Bytes of an event record.
pub const EVENT_LEN_BYTES: usize = MAGNITUDE.end;

/// Sensors the simulated board has.
pub const SENSOR_COUNT: u8 = 3;

/// One sensor reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Event {
    /// When it was taken, in ticks since the log was first used (ticks go
    /// on across reboots: a boot resumes after the last event that
    /// survived).
    pub tick: u32,
    /// Which sensor, `0..SENSOR_COUNT`.
    pub sensor_id: u8,
    /// The reading, raw sensor units.
    pub value_raw: i16,
}

impl Event {
    /// The simulated board's reading at `tick`: sensors take turns, and
    /// the value is a hash of the tick, so a test can recompute every
    /// event the firmware logged from its tick alone.
    pub fn reading(tick: u32) -> Event {
        // splitmix32-style mixing: cheap, no tables, spreads every bit.
        let mut mixed = tick.wrapping_add(0x9E37_79B9);
        mixed = (mixed ^ (mixed >> 16)).wrapping_mul(0x85EB_CA6B);
        mixed = (mixed ^ (mixed >> 13)).wrapping_mul(0xC2B2_AE35);
        mixed ^= mixed >> 16;
        let value_raw = i16::from_le_bytes([mixed.to_le_bytes()[0], mixed.to_le_bytes()[1]]);
        Event {
            tick,
            sensor_id: u8::try_from(tick % u32::from(SENSOR_COUNT)).unwrap_or(0),
            value_raw,
        }
    }

    /// Writes the record to `out` field by field (a tag, then the digits,
    /// and so on), as a formatter would: into a
    /// [`RecordWriter`](segwal::RecordWriter) the pieces gather into one
    /// record, committed whole or not at all.
    ///
    /// # Errors
    ///
    /// What `out` returns; it may then hold part of the record.
    pub fn write_to<W: embedded_io::Write>(&self, out: &mut W) -> Result<(), W::Error> {
        let mut digits = [0u8; TICK.end - TICK.start];
        out.write_all(b"t=")?;
        out.write_all(put_digits(u64::from(self.tick), &mut digits[..TICK.len()]))?;
        out.write_all(b" s=")?;
        out.write_all(put_digits(
            u64::from(self.sensor_id),
            &mut digits[..SENSOR.len()],
        ))?;
        out.write_all(b" v=")?;
        out.write_all(if self.value_raw < 0 { b"-" } else { b"+" })?;
        let magnitude = u64::from(self.value_raw.unsigned_abs());
        out.write_all(put_digits(magnitude, &mut digits[..MAGNITUDE.len()]))
    }

    /// The record's bytes.
    pub fn encode(&self) -> [u8; EVENT_LEN_BYTES] {
        let mut bytes = [0u8; EVENT_LEN_BYTES];
        let mut out = &mut bytes[..];
        let written = self.write_to(&mut out).map(|()| out.is_empty());
        assert_eq!(written, Ok(true), "an event fills its record exactly");
        assert_eq!(
            Event::decode(&bytes),
            Some(*self),
            "an encoded event decodes to itself"
        );
        bytes
    }

    /// The event a record holds, or `None` when the bytes are not exactly
    /// an encoded event (wrong length, tag, digit, or a number out of its
    /// type's range). Any bytes are fine: this never panics.
    pub fn decode(bytes: &[u8]) -> Option<Event> {
        if bytes.len() != EVENT_LEN_BYTES
            || bytes.get(TICK_TAG)? != b"t="
            || bytes.get(SENSOR_TAG)? != b" s="
            || bytes.get(VALUE_TAG)? != b" v="
        {
            return None;
        }
        let tick = u32::try_from(digits(bytes.get(TICK)?)?).ok()?;
        let sensor_id = u8::try_from(digits(bytes.get(SENSOR)?)?).ok()?;
        let magnitude = i64::try_from(digits(bytes.get(MAGNITUDE)?)?).ok()?;
        let value = match bytes.get(SIGN.start)? {
            b'+' => magnitude,
            // "-00000" is accepted: it is still the value zero.
            b'-' => -magnitude,
            _ => return None,
        };
        Some(Event {
            tick,
            sensor_id,
            value_raw: i16::try_from(value).ok()?,
        })
    }
}

/// Writes `value` into `out` as zero-padded decimal digits, and returns
/// `out`.
///
/// # Panics
///
/// When `value` needs more digits than `out` holds: the field widths are
/// chosen for their types, so that is a bug here.
fn put_digits(mut value: u64, out: &mut [u8]) -> &[u8] {
    for slot in out.iter_mut().rev() {
        let (quotient, digit) = div_rem_10(value);
        *slot = b'0' + digit;
        value = quotient;
    }
    assert_eq!(value, 0, "a number wider than its field");
    out
}

/// `(value / 10, value % 10)` in three `u32` divisions, 16 bits at a
/// time: a `u64` division would link compiler-builtins' (about 0.9 KiB of
/// Thumb code) into the firmware, which has no 64-bit divide.
pub(crate) fn div_rem_10(value: u64) -> (u64, u8) {
    // Each step divides `rem << 16 | next 16 bits` with `rem < 10`: below
    // 10 << 16, a `u32`, and its quotient fits in 16 bits.
    let high = u32::try_from(value >> 32).unwrap_or(u32::MAX);
    let (quotient_high, rem) = (high / 10, high % 10);
    let middle = rem << 16 | u32::try_from((value >> 16) & 0xFFFF).unwrap_or(0);
    let (quotient_middle, rem) = (middle / 10, middle % 10);
    let low = rem << 16 | u32::try_from(value & 0xFFFF).unwrap_or(0);
    let (quotient_low, rem) = (low / 10, low % 10);
    let quotient =
        u64::from(quotient_high) << 32 | u64::from(quotient_middle) << 16 | u64::from(quotient_low);
    // A remainder by 10 is a single digit.
    (quotient, u8::try_from(rem).unwrap_or(0))
}

/// The number `field`'s decimal digits spell, or `None` on any other
/// byte. Fields are at most 10 digits, so the `u64` cannot overflow.
fn digits(field: &[u8]) -> Option<u64> {
    field.iter().try_fold(0u64, |value, &byte| {
        byte.is_ascii_digit()
            .then(|| value * 10 + u64::from(byte - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dividing_by_ten_in_u32_steps_matches_the_operator() {
        let mut value = u64::MAX;
        for _ in 0..200 {
            for probe in [value, value.wrapping_add(1), value / 3, value >> 17] {
                let (quotient, digit) = div_rem_10(probe);
                assert_eq!((quotient, u64::from(digit)), (probe / 10, probe % 10));
            }
            value = value
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
        }
        for probe in 0..100_000 {
            assert_eq!(
                div_rem_10(probe),
                (probe / 10, u8::try_from(probe % 10).unwrap())
            );
        }
    }

    #[test]
    fn extremes_round_trip_and_read_as_text() {
        for event in [
            Event {
                tick: 0,
                sensor_id: 0,
                value_raw: 0,
            },
            Event {
                tick: u32::MAX,
                sensor_id: u8::MAX,
                value_raw: i16::MIN,
            },
            Event {
                tick: 42,
                sensor_id: 1,
                value_raw: i16::MAX,
            },
        ] {
            assert_eq!(Event::decode(&event.encode()), Some(event));
        }
        let event = Event {
            tick: 42,
            sensor_id: 1,
            value_raw: -1234,
        };
        assert_eq!(&event.encode(), b"t=0000000042 s=001 v=-01234");
    }

    #[test]
    fn readings_round_trip() {
        for tick in (0..2000).chain(u32::MAX - 100..=u32::MAX) {
            let event = Event::reading(tick);
            assert!(event.sensor_id < SENSOR_COUNT);
            assert_eq!(Event::decode(&event.encode()), Some(event), "tick {tick}");
        }
    }

    #[test]
    fn anything_else_is_not_an_event() {
        let good = Event {
            tick: 7,
            sensor_id: 2,
            value_raw: 5,
        }
        .encode();
        assert_eq!(Event::decode(&good[..EVENT_LEN_BYTES - 1]), None, "short");
        let mut long = [b'0'; EVENT_LEN_BYTES + 1];
        long[..EVENT_LEN_BYTES].copy_from_slice(&good);
        assert_eq!(Event::decode(&long), None, "long");
        // Every single-byte change is refused but a digit for a digit
        // (checked below where it overflows) or the other sign.
        for index in 0..EVENT_LEN_BYTES {
            for byte in 0..=u8::MAX {
                if good[index].is_ascii_digit() && byte.is_ascii_digit() {
                    continue;
                }
                let mut bytes = good;
                bytes[index] = byte;
                let still_valid = bytes == good || (index == SIGN.start && byte == b'-');
                assert_eq!(
                    Event::decode(&bytes).is_some(),
                    still_valid,
                    "byte {index} = {byte:#x}"
                );
            }
        }
        // Digits that overflow the field's type.
        assert_eq!(Event::decode(b"t=4294967296 s=001 v=+00001"), None);
        assert_eq!(Event::decode(b"t=0000000001 s=256 v=+00001"), None);
        assert_eq!(Event::decode(b"t=0000000001 s=001 v=+32768"), None);
        assert!(Event::decode(b"t=0000000001 s=001 v=-32768").is_some());
    }
}
