//! Unit tests of [`RamDevice`] through its public API and the
//! [`BlockDevice`] trait, the way the log and the integration tests use it.

use std::thread;

use segwal::{BlockDevice, DeviceError, ErrorKind, Geometry};

use crate::{Operation, RamDevice, Stats};

const NOR_CAPACITY_BYTES: u64 = 8192;
const NOR_WRITE_SIZE_BYTES: u32 = 4;
const NOR_ERASE_SIZE_BYTES: u32 = 4096;

fn nor() -> RamDevice {
    RamDevice::nor_flash(
        NOR_CAPACITY_BYTES,
        NOR_WRITE_SIZE_BYTES,
        NOR_ERASE_SIZE_BYTES,
    )
}

fn read_vec(device: &mut RamDevice, offset: u64, len_bytes: usize) -> Vec<u8> {
    let mut buf = vec![0xA5; len_bytes];
    device.read(offset, &mut buf).expect("read in bounds");
    buf
}

#[test]
fn ram_device_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<RamDevice>();
}

#[test]
fn write_then_read_round_trips() {
    let mut device = RamDevice::byte_addressable(64);
    assert_eq!(read_vec(&mut device, 0, 64), vec![0x00; 64], "erased to 0");

    device.write(5, &[b"abc", b"", b"defg"]).unwrap();
    assert_eq!(read_vec(&mut device, 5, 7), b"abcdefg");
    assert_eq!(read_vec(&mut device, 4, 1), [0x00], "byte before untouched");
    assert_eq!(read_vec(&mut device, 12, 1), [0x00], "byte after untouched");

    // A file overwrites: no NOR masking.
    device.write(5, &[&[0xFF, 0x00]]).unwrap();
    assert_eq!(read_vec(&mut device, 5, 3), [0xFF, 0x00, b'c']);
}

#[test]
fn nor_programming_only_clears_bits() {
    let mut device = nor();
    assert_eq!(read_vec(&mut device, 0, 8), [0xFF; 8], "erased to 0xFF");

    device.write(0, &[&[0xF0, 0x0F], &[0xAA, 0xFF]]).unwrap();
    device.write(0, &[&[0x3C, 0x3C, 0x55, 0x00]]).unwrap();
    assert_eq!(read_vec(&mut device, 0, 4), [0x30, 0x0C, 0x00, 0x00]);

    device.erase(0, u64::from(NOR_ERASE_SIZE_BYTES)).unwrap();
    assert_eq!(read_vec(&mut device, 0, 4), [0xFF; 4], "erase resets bits");
    device.write(0, &[&[0x12, 0x34, 0x56, 0x78]]).unwrap();
    assert_eq!(read_vec(&mut device, 0, 4), [0x12, 0x34, 0x56, 0x78]);
}

#[test]
fn out_of_bounds_requests_are_refused() {
    let mut device = nor();
    let mut buf = [0u8; 8];
    let error = device.read(NOR_CAPACITY_BYTES - 4, &mut buf).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::OutOfBounds);
    assert_eq!(error.operation(), Operation::Read);
    assert_eq!(
        (error.offset(), error.len_bytes()),
        (NOR_CAPACITY_BYTES - 4, 8)
    );

    let error = device.write(NOR_CAPACITY_BYTES, &[&[0; 4]]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::OutOfBounds);
    assert_eq!(error.operation(), Operation::Write);

    let error = device.write(u64::MAX - 3, &[&[0; 8]]).unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::OutOfBounds,
        "offset + len overflows"
    );

    let error = device
        .erase(u64::from(NOR_ERASE_SIZE_BYTES), NOR_CAPACITY_BYTES)
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::OutOfBounds);
    assert_eq!(error.operation(), Operation::Erase);
}

#[test]
fn misaligned_requests_are_refused() {
    let mut device = nor();
    let cases = [
        device.write(2, &[&[0; 4]]).unwrap_err(),
        device.write(0, &[&[0; 3], &[0; 3]]).unwrap_err(),
        device
            .erase(512, u64::from(NOR_ERASE_SIZE_BYTES))
            .unwrap_err(),
        device.erase(0, 512).unwrap_err(),
    ];
    for error in cases {
        assert_eq!(error.kind(), ErrorKind::Misaligned, "{error}");
    }

    let mut coarse = RamDevice::new(Geometry {
        read_size_bytes: 512,
        write_size_bytes: 512,
        erase_size_bytes: 512,
        erased_byte: 0x00,
        erase_before_write: false,
        capacity_bytes: 4096,
    });
    let error = coarse.read(0, &mut [0u8; 100]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Misaligned, "read granularity");
}

#[test]
fn refused_requests_change_nothing() {
    let mut device = nor();
    device.write(0, &[&[0x00; 4]]).unwrap();
    device.sync().unwrap();
    let before = device.live_image();

    assert!(device.write(2, &[&[0x00; 4]]).is_err());
    assert!(device.write(NOR_CAPACITY_BYTES, &[&[0x00; 4]]).is_err());
    assert!(device.erase(0, 1).is_err());

    assert_eq!(device.live_image(), before);
    assert_eq!(device.pending_writes(), 0);
    assert_eq!(device.erase_counts(), vec![0, 0]);
}

#[test]
fn errors_display_the_request_and_the_kind() {
    let mut device = nor();
    let error = device.write(2, &[&[0; 4]]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "ram device write of 4 bytes at offset 2: misaligned"
    );
    let boxed: Box<dyn std::error::Error> = Box::new(error);
    assert!(boxed.to_string().contains("misaligned"));
}

#[test]
fn stats_count_calls_and_accepted_bytes() {
    let mut device = nor();
    device.write(0, &[&[1, 2, 3], &[4, 5], &[6, 7, 8]]).unwrap();
    assert_eq!(
        device.stats(),
        Stats {
            write_calls: 1,
            write_bytes: 8,
            ..Stats::default()
        },
        "one multi-piece write is one call"
    );

    read_vec(&mut device, 0, 6);
    read_vec(&mut device, 6, 2);
    assert!(device.write(1, &[&[0; 4]]).is_err());
    device.erase(0, NOR_CAPACITY_BYTES).unwrap();
    device.sync().unwrap();
    device.sync().unwrap();
    assert_eq!(
        device.stats(),
        Stats {
            read_calls: 2,
            read_bytes: 8,
            write_calls: 2,
            write_bytes: 8,
            erase_calls: 1,
            sync_calls: 2,
        },
        "the refused write counts as a call, not as bytes"
    );

    let clone = device.clone();
    clone.reset_stats();
    assert_eq!(device.stats(), Stats::default(), "clones share counters");
}

#[test]
fn unsynced_writes_are_live_but_not_durable() {
    let mut device = RamDevice::byte_addressable(16);
    device.write(0, &[b"abcd"]).unwrap();
    device.erase(8, 4).unwrap();
    device.write(8, &[b"ef"]).unwrap();

    assert_eq!(device.pending_writes(), 3, "two writes and an erase");
    assert_eq!(&device.live_image()[..10], b"abcd\0\0\0\0ef");
    assert_eq!(device.durable_image(), vec![0; 16]);
}

#[test]
fn sync_makes_durable_equal_live() {
    let mut device = nor();
    device.write(0, &[&[0xF0; 4]]).unwrap();
    device.write(0, &[&[0x3C; 4]]).unwrap();
    device.erase(4096, 4096).unwrap();
    device.write(4096, &[&[0x11; 8]]).unwrap();
    device.sync().unwrap();

    assert_eq!(device.pending_writes(), 0);
    assert_eq!(device.durable_image(), device.live_image());
    assert_eq!(&device.durable_image()[..4], &[0x30; 4], "NOR AND replayed");

    device.write(8, &[&[0x00; 4]]).unwrap();
    assert_eq!(device.pending_writes(), 1);
    assert_eq!(&device.durable_image()[8..12], &[0xFF; 4]);
    assert_eq!(&device.live_image()[8..12], &[0x00; 4]);
}

#[test]
fn from_image_reboots_into_the_durable_copy() {
    let mut device = nor();
    device.write(0, &[b"sync", b"ed!!"]).unwrap();
    device.sync().unwrap();
    device.write(8, &[b"lost"]).unwrap();

    let geometry = device.geometry();
    let mut rebooted = RamDevice::from_image(geometry, device.durable_image());
    assert_eq!(rebooted.geometry(), geometry);
    assert_eq!(read_vec(&mut rebooted, 0, 12), b"synced!!\xFF\xFF\xFF\xFF");
    assert_eq!(rebooted.live_image(), rebooted.durable_image());
    assert_eq!(rebooted.pending_writes(), 0);
    assert_eq!(rebooted.stats().read_calls, 1, "fresh counters");

    // The reboot is a new device, not a clone.
    rebooted.write(8, &[b"new!"]).unwrap();
    assert_eq!(&device.live_image()[8..12], b"lost");
}

#[test]
fn erase_counts_track_each_block() {
    let mut device = nor();
    assert_eq!(device.erase_counts(), vec![0, 0]);
    device.erase(0, NOR_CAPACITY_BYTES).unwrap();
    device.erase(4096, 4096).unwrap();
    device.erase(4096, 4096).unwrap();
    assert_eq!(device.erase_counts(), vec![1, 3]);

    device.reset_stats();
    assert_eq!(
        device.erase_counts(),
        vec![1, 3],
        "wear survives reset_stats"
    );
}

#[test]
fn clones_share_state_across_threads() {
    const RECORD_COUNT: usize = 200;
    const RECORD_SIZE_BYTES: usize = 8;
    const DEVICE_SIZE_BYTES: usize = RECORD_COUNT * RECORD_SIZE_BYTES;
    // Far more than a writer of 200 records needs; only bounds the loop.
    const READ_PASSES_MAX: usize = 1_000_000;

    let device = RamDevice::byte_addressable(DEVICE_SIZE_BYTES as u64);
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let mut reader = device.clone();
            thread::spawn(move || {
                // Each record is written as two 4-byte pieces in one call; a
                // reader must never see one piece without the other.
                for _ in 0..READ_PASSES_MAX {
                    let image = read_vec(&mut reader, 0, DEVICE_SIZE_BYTES);
                    let records = image.chunks_exact(RECORD_SIZE_BYTES);
                    for record in records.clone() {
                        let (head, tail) = record.split_at(RECORD_SIZE_BYTES / 2);
                        assert_eq!(head, tail, "torn record seen");
                    }
                    if records
                        .clone()
                        .all(|record| record != [0; RECORD_SIZE_BYTES])
                    {
                        return true;
                    }
                    thread::yield_now();
                }
                false
            })
        })
        .collect();

    let mut writer = device.clone();
    let writer = thread::spawn(move || {
        for index in 0..RECORD_COUNT {
            let value = u32::try_from(index + 1).expect("small index");
            let half = value.to_le_bytes();
            let offset = (index * RECORD_SIZE_BYTES) as u64;
            writer
                .write(offset, &[&half, &half])
                .expect("write in bounds");
        }
        writer.sync().expect("sync");
    });

    writer.join().expect("writer thread");
    for reader in readers {
        let saw_everything = reader.join().expect("reader thread");
        assert!(saw_everything, "reader never saw the finished log");
    }
    let image = device.durable_image();
    assert_eq!(&image[8..16], &[2, 0, 0, 0, 2, 0, 0, 0]);
    assert_eq!(device.stats().write_calls, RECORD_COUNT as u64);
    assert_eq!(device.pending_writes(), 0);
}

#[test]
#[should_panic(expected = "multiple of erase_size_bytes")]
fn capacity_not_a_multiple_of_erase_size_panics() {
    RamDevice::nor_flash(5000, 4, 4096);
}

#[test]
#[should_panic(expected = "powers of two")]
fn invalid_granularity_panics() {
    RamDevice::nor_flash(8192, 6, 4096);
}

#[test]
#[should_panic(expected = "image of 3 bytes for a device of 16 bytes")]
fn from_image_of_the_wrong_length_panics() {
    RamDevice::from_image(Geometry::byte_addressable(16), vec![0; 3]);
}
