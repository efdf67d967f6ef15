//! `NorFlashDevice`: gathered writes of pieces split anywhere program every
//! word exactly once (strict device: a word programmed twice panics) and
//! read back; the region is a window onto the flash; misuse is a typed
//! error, not a panic.
// Test geometries are small: every cast between lengths fits.
#![allow(clippy::cast_possible_truncation)]

mod support;

use segwal::{BlockDevice, DeviceError, ErrorKind};
use segwal_flash::{FlashConfigError, FlashError, NorFlashDevice};
use segwal_ram::{FaultPlan, RamDevice, RamNorError, RamNorFlash};

fn strict_flash<const W: usize>(seed: u64) -> RamNorFlash<W, 4096> {
    let device = RamDevice::nor_flash(4 * 4096, W as u32, 4096);
    device.set_fault_plan(FaultPlan::new(seed).strict(true));
    RamNorFlash::from_device(device)
}

/// A small deterministic generator: the split points of one seed.
fn next(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

fn split_writes<const W: usize>(seed: u64) {
    let flash = strict_flash::<W>(seed);
    let ram = flash.device().clone();
    let mut device = NorFlashDevice::new(flash, 4096, 2 * 4096).unwrap();
    device.erase(0, 2 * 4096).unwrap();
    let mut state = seed;
    let mut offset = 0u64;
    let mut expected = Vec::new();
    while offset < 2 * 4096 - 600 {
        let words = 1 + next(&mut state) % 150 / W as u64;
        let data: Vec<u8> = (0..words * W as u64)
            .map(|_| next(&mut state) as u8)
            .collect();
        let mut pieces: Vec<&[u8]> = Vec::new();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let take = (next(&mut state) % 40) as usize % (rest.len() + 1);
            pieces.push(&rest[..take]);
            rest = &rest[take..];
        }
        let before = ram.stats().write_bytes;
        device.write(offset, &pieces).unwrap();
        assert_eq!(
            ram.stats().write_bytes - before,
            data.len() as u64,
            "seed {seed}"
        );
        expected.extend_from_slice(&data);
        offset += data.len() as u64;
    }
    let mut read = vec![0u8; expected.len()];
    device.read(0, &mut read).unwrap();
    assert_eq!(read, expected, "seed {seed}");
    // The region starts one block into the flash.
    let mut raw = vec![0u8; 16];
    ram.clone().read(4096, &mut raw).unwrap();
    assert_eq!(&raw[..], &expected[..16]);
}

#[test]
fn pieces_split_anywhere_program_each_word_once() {
    for seed in 0..200 {
        split_writes::<4>(seed);
        split_writes::<16>(seed);
        split_writes::<1>(seed);
    }
}

#[test]
fn bad_regions_and_words_are_refused_at_construction() {
    assert_eq!(
        NorFlashDevice::new(strict_flash::<4>(1), 100, 4096).unwrap_err(),
        FlashConfigError::Region
    );
    assert_eq!(
        NorFlashDevice::new(strict_flash::<4>(1), 4096, 4 * 4096).unwrap_err(),
        FlashConfigError::Region,
        "past the end of the flash"
    );
    assert_eq!(
        NorFlashDevice::new(strict_flash::<4>(1), 0, 0).unwrap_err(),
        FlashConfigError::Region
    );
    let device = RamDevice::nor_flash(4 * 4096, 512, 4096);
    assert_eq!(
        NorFlashDevice::new(RamNorFlash::<512, 4096>::from_device(device), 0, 4096).unwrap_err(),
        FlashConfigError::WordTooLarge {
            write_size_bytes: 512
        }
    );
}

#[test]
fn bad_requests_are_typed_errors() {
    let mut device = NorFlashDevice::new(strict_flash::<4>(2), 0, 4096).unwrap();
    let geometry = device.geometry();
    assert_eq!(
        (
            geometry.write_size_bytes,
            geometry.erase_size_bytes,
            geometry.erased_byte
        ),
        (4, 4096, 0xFF)
    );
    assert!(geometry.erase_before_write);
    let error = device.write(2, &[b"abcd"]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Misaligned);
    let error = device.write(4096, &[b"abcd"]).unwrap_err();
    assert!(matches!(error, FlashError::OutOfBounds));
    let error = device.erase(0, 100).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Misaligned);
    // A driver error keeps its kind.
    device
        .flash()
        .device()
        .set_fault_plan(FaultPlan::new(3).io_error_on_write(0));
    device.erase(0, 4096).unwrap();
    let error = device.write(0, &[b"abcd"]).unwrap_err();
    assert!(matches!(error, FlashError::Flash(_)));
    assert_eq!(error.kind(), ErrorKind::Io);
    assert_eq!(
        FlashError::<RamNorError>::NoSpace.kind(),
        ErrorKind::NoSpace
    );
}
