//! What a Thumb-2 (ARMv7-M) function does that matters to its stack: the
//! functions it calls, the branches it takes out of itself (tail calls),
//! calls and branches through a register (targets unknown), and the bytes
//! it pushes or subtracts from SP.
//!
//! Only code is decoded: the `$d` mapping symbols mark the literal pools
//! in `.text`, which are skipped, so a constant is never read as a call.

/// What [`decode`] found in a function's code.
#[derive(Debug, Default, Clone)]
pub struct Body {
    /// Addresses of `BL` targets.
    pub calls: Vec<u32>,
    /// Addresses of `B`/`B.W` targets outside the function (tail calls).
    pub branches_out: Vec<u32>,
    /// `BLX Rm`, `BX Rm` (other than `BX LR`), `MOV PC, Rm`, `LDR PC, ..`
    /// other than a return: control flow the decoder cannot follow.
    pub indirect: u32,
    /// `SUB SP, SP, Rm`: a frame sized at run time.
    pub dynamic_stack: u32,
    /// Bytes of every `PUSH`, `VPUSH`, `STR Rt, [SP, #-4]!` and
    /// `SUB SP, #imm` in the code: at least the function's frame, since
    /// each adjustment is counted once even when no path runs them all.
    pub pushed_bytes: u32,
}

/// `ThumbExpandImm` for the modified immediates of `SUB.W`.
fn expand_imm(imm12: u32) -> u32 {
    if imm12 >> 10 == 0 {
        let byte = imm12 & 0xFF;
        match (imm12 >> 8) & 3 {
            0 => byte,
            1 => byte << 16 | byte,
            2 => byte << 24 | byte << 8,
            _ => byte << 24 | byte << 16 | byte << 8 | byte,
        }
    } else {
        (0x80 | (imm12 & 0x7F)).rotate_right(imm12 >> 7)
    }
}

/// Sign-extends the low `bits` of `value`.
fn sign_extend(value: u32, bits: u32) -> i32 {
    let shift = 32 - bits;
    // Reinterpreting the bits as signed is the point.
    ((value << shift) as i32) >> shift
}

/// Where a branch at `pc` with `offset` goes: the CPU's PC reads 4 bytes
/// ahead, and addresses wrap as on the CPU.
fn branch_target(pc: u32, offset: i32) -> u32 {
    pc.wrapping_add(4).wrapping_add_signed(offset)
}

/// Decodes the code halfwords `code`, which start at `address`, for a
/// function spanning `[start, end)`.
pub fn decode(code: &[u8], address: u32, start: u32, end: u32, body: &mut Body) {
    let halfword = |at: usize| {
        code.get(at..at + 2)
            .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let mut pc = address;
    let mut at = 0;
    while let Some(hw1) = halfword(at) {
        if hw1 >> 11 >= 0b11101 {
            let Some(hw2) = halfword(at + 2) else { break };
            decode_32(hw1, hw2, pc, start, end, body);
            (at, pc) = (at + 4, pc.wrapping_add(4));
        } else {
            decode_16(hw1, body);
            (at, pc) = (at + 2, pc.wrapping_add(2));
        }
    }
}

fn decode_16(hw1: u32, body: &mut Body) {
    if hw1 & 0xFE00 == 0xB400 {
        // PUSH {reglist[, LR]}
        body.pushed_bytes += 4 * ((hw1 & 0xFF).count_ones() + ((hw1 >> 8) & 1));
    } else if hw1 & 0xFF80 == 0xB080 {
        // SUB SP, SP, #imm7 * 4
        body.pushed_bytes += (hw1 & 0x7F) * 4;
    } else if hw1 & 0xFF87 == 0x4780 {
        // BLX Rm
        body.indirect += 1;
    } else if hw1 & 0xFF87 == 0x4700 && (hw1 >> 3) & 0xF != 14 {
        // BX Rm, not a return through LR
        body.indirect += 1;
    } else if hw1 & 0xFF87 == 0x4687 {
        // MOV PC, Rm
        body.indirect += 1;
    }
}

fn decode_32(hw1: u32, hw2: u32, pc: u32, start: u32, end: u32, body: &mut Body) {
    let branch = hw1 >> 11 == 0b11110 && hw2 & 0x8000 != 0;
    if branch && hw2 & 0x5000 != 0 {
        // BL (T1) or B.W (T4): S:I1:I2:imm10:imm11:0, I = NOT(J XOR S).
        let s = (hw1 >> 10) & 1;
        let i1 = !((hw2 >> 13) & 1 ^ s) & 1;
        let i2 = !((hw2 >> 11) & 1 ^ s) & 1;
        let offset = s << 24 | i1 << 23 | i2 << 22 | (hw1 & 0x3FF) << 12 | (hw2 & 0x7FF) << 1;
        let target = branch_target(pc, sign_extend(offset, 25));
        if hw2 & 0x4000 != 0 {
            body.calls.push(target);
        } else if !(start..end).contains(&target) {
            body.branches_out.push(target);
        }
    } else if branch && hw2 & 0x5000 == 0 && (hw1 >> 7) & 7 != 7 {
        // B<cond>.W (T3): S:J2:J1:imm6:imm11:0.
        let offset = ((hw1 >> 10) & 1) << 20
            | ((hw2 >> 11) & 1) << 19
            | ((hw2 >> 13) & 1) << 18
            | (hw1 & 0x3F) << 12
            | (hw2 & 0x7FF) << 1;
        let target = branch_target(pc, sign_extend(offset, 21));
        if !(start..end).contains(&target) {
            body.branches_out.push(target);
        }
    } else if hw1 == 0xE92D {
        // PUSH.W {reglist}
        body.pushed_bytes += 4 * (hw2 & 0x5FFF).count_ones();
    } else if hw1 == 0xF84D && hw2 & 0x0FFF == 0x0D04 {
        // STR Rt, [SP, #-4]!: a one-register push
        body.pushed_bytes += 4;
    } else if hw1 & 0xFBEF == 0xF1AD && hw2 & 0x8F00 == 0x0D00 {
        // SUB.W SP, SP, #const
        let imm12 = ((hw1 >> 10) & 1) << 11 | ((hw2 >> 12) & 7) << 8 | (hw2 & 0xFF);
        body.pushed_bytes += expand_imm(imm12);
    } else if hw1 & 0xFBFF == 0xF2AD && hw2 & 0x8F00 == 0x0D00 {
        // SUBW SP, SP, #imm12
        body.pushed_bytes += ((hw1 >> 10) & 1) << 11 | ((hw2 >> 12) & 7) << 8 | (hw2 & 0xFF);
    } else if hw1 & 0xFFBF == 0xED2D && hw2 & 0x0E00 == 0x0A00 {
        // VPUSH {d or s registers}: imm8 words
        body.pushed_bytes += (hw2 & 0xFF) * 4;
    } else if hw1 & 0xFFEF == 0xEBAD && (hw2 >> 8) & 0xF == 13 {
        // SUB.W SP, SP, Rm
        body.dynamic_stack += 1;
    } else if hw1 & 0xFFF0 == 0xF8D0 && hw2 >> 12 == 0xF
        || hw1 & 0xFFF0 == 0xF850 && hw2 >> 12 == 0xF && hw1 & 0xF != 13
    {
        // LDR PC, [Rn, ..] other than a pop from SP: a computed jump
        body.indirect += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(hw: &[u16], pc: u32) -> Body {
        let bytes: Vec<u8> = hw.iter().flat_map(|h| h.to_le_bytes()).collect();
        let mut body = Body::default();
        let len = u32::try_from(bytes.len()).expect("a short test body");
        decode(&bytes, pc, pc, pc + len, &mut body);
        body
    }

    #[test]
    fn calls_and_frames_decode() {
        // bl 0x1000 from 0x2000: offset -0x1004.
        assert_eq!(one(&[0xF7FE, 0xFFFE], 0x2000).calls, [0x1000]);
        // bl +0x100 from 0x400.
        assert_eq!(one(&[0xF000, 0xF880], 0x400).calls, [0x504]);
        // b.w far forward: a tail call.
        assert_eq!(one(&[0xF000, 0xB880], 0x400).branches_out, [0x504]);
        // push {r4-r7, lr}; sub sp, #16; push.w {r4-r11, lr}; sub.w sp, sp, #4096
        let frame = one(&[0xB5F0, 0xB084, 0xE92D, 0x4FF0, 0xF5AD, 0x5D80], 0x400);
        assert_eq!(frame.pushed_bytes, 20 + 16 + 36 + 4096);
        // blx r3; bx lr; bx r2
        assert_eq!(one(&[0x4798, 0x4770, 0x4710], 0x400).indirect, 2);
    }
}
