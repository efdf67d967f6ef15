//! [`Console`]: the firmware's narration, formatted by hand.
//!
//! Why not `write!`: `core::fmt` costs a few KiB of flash (the formatting
//! machine, integer tables, padding logic) that a 12 KiB firmware budget
//! cannot spare. Everything printed here is text and unsigned or signed
//! integers, so only `write_str` and `write_char` are called, and over a
//! console that discards its input the whole narration compiles away.

use core::fmt::Write;

use segwal::{Lsn, WalTailState};

use crate::event::{Event, div_rem_10};

/// A `core::fmt::Write` console (a UART, RTT, a host's stdout), written to
/// with hand-formatted numbers.
///
/// Output is best effort: a console error is ignored, because the firmware
/// must keep logging to flash when its debug output fails.
#[derive(Debug)]
pub struct Console<'c, C: Write> {
    out: &'c mut C,
}

impl<'c, C: Write> Console<'c, C> {
    /// Narrates to `out`.
    pub fn new(out: &'c mut C) -> Self {
        Console { out }
    }

    /// Prints `text`.
    pub fn text(&mut self, text: &str) -> &mut Self {
        // Best effort, see the type's documentation.
        let _ = self.out.write_str(text);
        self
    }

    /// Prints `value` in decimal.
    pub fn number(&mut self, value: u64) -> &mut Self {
        // u64::MAX has 20 digits.
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        let mut rest = value;
        while start > 0 {
            start -= 1;
            let (quotient, digit) = div_rem_10(rest);
            digits[start] = b'0' + digit;
            rest = quotient;
            if rest == 0 {
                break;
            }
        }
        for &digit in &digits[start..] {
            let _ = self.out.write_char(char::from(digit));
        }
        self
    }

    /// Prints `value` in decimal, with a `-` when negative.
    pub fn signed(&mut self, value: i64) -> &mut Self {
        if value < 0 {
            self.text("-");
        }
        self.number(value.unsigned_abs())
    }

    /// Prints an LSN.
    pub fn lsn(&mut self, lsn: Lsn) -> &mut Self {
        self.number(lsn.0)
    }

    /// Prints an event as `tick 42, sensor 1, value -1234`.
    pub fn event(&mut self, event: &Event) -> &mut Self {
        self.text("tick ")
            .number(u64::from(event.tick))
            .text(", sensor ")
            .number(u64::from(event.sensor_id))
            .text(", value ")
            .signed(i64::from(event.value_raw))
    }

    /// Prints how the log's records ended at mount.
    pub fn tail(&mut self, tail: WalTailState) -> &mut Self {
        match tail {
            WalTailState::Clean => self.text("clean"),
            WalTailState::TruncatedAt {
                segment,
                offset,
                bytes_discarded,
                records_discarded,
            } => self
                .text("torn tail cut in segment ")
                .number(segment)
                .text(" at offset ")
                .number(offset)
                .text(" (")
                .number(bytes_discarded)
                .text(" bytes, of which ")
                .number(records_discarded)
                .text(" counted records)"),
        }
    }

    /// Ends the line.
    pub fn line(&mut self) {
        self.text("\n");
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::String;

    use super::*;

    #[test]
    fn numbers_print_as_decimal() {
        let mut out = String::new();
        Console::new(&mut out)
            .number(0)
            .text(" ")
            .number(u64::MAX)
            .text(" ")
            .signed(i64::MIN)
            .text(" ")
            .signed(-7)
            .text(" ")
            .event(&Event {
                tick: 42,
                sensor_id: 1,
                value_raw: -1234,
            })
            .line();
        assert_eq!(
            out,
            "0 18446744073709551615 -9223372036854775808 -7 tick 42, sensor 1, value -1234\n"
        );
    }
}
