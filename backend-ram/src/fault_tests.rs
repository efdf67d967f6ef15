//! Unit tests of fault injection through the public API: each fault the
//! plan offers happens, does exactly what it says and nothing more, and the
//! same seed replays it byte for byte.
//!
//! Tests that draw random bytes take their seed from `SEGWAL_TEST_SEED`
//! (default fixed), print it, and name it in every assertion.

use segwal::{BlockDevice, DeviceError, ErrorKind, Geometry, SegmentStore};

use crate::{CrashModel, FaultPlan, FaultStats, RamDevice, RamStore, Survivors, TornFill};

fn seed(default: u64) -> u64 {
    crate::seed_from_env(default)
}

fn file(capacity_bytes: u64) -> Geometry {
    Geometry::byte_addressable(capacity_bytes)
}

fn nor_geometry(capacity_bytes: u64) -> Geometry {
    Geometry {
        read_size_bytes: 1,
        write_size_bytes: 4,
        erase_size_bytes: 4096,
        erased_byte: 0xFF,
        erase_before_write: true,
        capacity_bytes,
    }
}

fn read_vec(device: &mut impl BlockDevice, offset: u64, len_bytes: usize) -> Vec<u8> {
    let mut buf = vec![0xA5; len_bytes];
    device.read(offset, &mut buf).expect("read in bounds");
    buf
}

#[test]
fn a_byte_torn_write_keeps_the_prefix_and_fills_one_byte() {
    let seed = seed(0x7041);
    for (fill, want) in [
        (TornFill::Zero, Some(0x00)),
        (TornFill::Old, Some(b'.')),
        (TornFill::Random, None),
    ] {
        let plan = FaultPlan::new(seed)
            .power_cut_at_byte(16 + 5)
            .torn_unit_bytes(1)
            .torn_fill(fill);
        let mut device = RamDevice::from_image(file(64), vec![b'.'; 64]);
        device.set_fault_plan(plan.clone());
        device.write(0, &[b"0123456789abcdef"]).unwrap();
        device.sync().unwrap();
        let error = device.write(32, &[b"ABCDEFGHIJ"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Io, "{plan:?}");

        let image = device.crash_image(&CrashModel::Live);
        assert_eq!(&image[32..37], b"ABCDE", "{plan:?}: the prefix");
        if let Some(byte) = want {
            assert_eq!(image[37], byte, "{plan:?}: the torn byte");
        }
        assert_eq!(&image[38..], &[b'.'; 26], "{plan:?}: nothing after");
        assert_eq!(&image[..16], b"0123456789abcdef", "{plan:?}");
        assert_eq!(image, device.live_image(), "{plan:?}: live shows the tear");
        assert_eq!(
            device.crash_image(&CrashModel::Durable),
            device.durable_image()
        );
        assert_eq!(device.fault_stats().torn_operations, 1, "{plan:?}");
        assert!(device.is_power_cut());
        assert_eq!(
            device.write(0, &[b"x"]).unwrap_err().kind(),
            ErrorKind::Io,
            "{plan:?}: refused after the cut"
        );
        assert_eq!(device.sync().unwrap_err().kind(), ErrorKind::Io);
        assert_eq!(device.fault_stats().refused_after_cut, 2, "{plan:?}");
    }
}

#[test]
fn sector_atomicity_tears_whole_sectors_only() {
    const SECTOR_BYTES: usize = 512;
    const WRITE_BYTES: usize = 4 * SECTOR_BYTES;
    let seed = seed(0x5EC7);
    // Every tenth byte, plus both edges of every sector.
    let cuts = (0..WRITE_BYTES)
        .step_by(10)
        .chain((0..4).flat_map(|s| [s * SECTOR_BYTES, s * SECTOR_BYTES + SECTOR_BYTES - 1]));
    for cut in cuts {
        let plan = FaultPlan::new(seed.wrapping_add(cut as u64))
            .power_cut_at_byte(cut as u64)
            .torn_unit_bytes(512)
            .torn_fill(TornFill::Random);
        let mut device = RamDevice::from_image(file(8192), vec![0xAA; 8192]);
        device.set_fault_plan(plan.clone());
        assert!(device.write(1024, &[&[0x55; WRITE_BYTES]]).is_err());
        let image = device.crash_image(&CrashModel::Live);
        let torn_sector = cut / SECTOR_BYTES;
        for (index, sector) in image[1024..1024 + WRITE_BYTES]
            .chunks(SECTOR_BYTES)
            .enumerate()
        {
            let whole = |byte| sector.iter().all(|&b| b == byte);
            if index < torn_sector {
                assert!(whole(0x55), "{plan:?}: sector {index} before the cut");
            } else if index > torn_sector {
                assert!(whole(0xAA), "{plan:?}: sector {index} after the cut");
            } else {
                assert!(
                    !whole(0x55) && !whole(0xAA),
                    "{plan:?}: the torn sector holds random bytes"
                );
            }
        }
        assert_eq!(&image[..1024], &[0xAA; 1024][..], "{plan:?}");
        assert_eq!(&image[1024 + WRITE_BYTES..], &[0xAA; 5120][..], "{plan:?}");
    }
}

#[test]
fn a_torn_nor_write_only_clears_bits() {
    const PATTERN: [u8; 12] = [
        0x0F, 0xF0, 0x3C, 0xC3, 0x55, 0xAA, 0x5A, 0xA5, 0x81, 0x7E, 0x18, 0xE7,
    ];
    let seed = seed(0x0F1A);
    for round in 0..64u64 {
        let into = round % 8;
        let plan = FaultPlan::new(seed.wrapping_add(round))
            .power_cut_at_byte(12 + into)
            .torn_fill(TornFill::Random);
        let mut device = RamDevice::with_faults(nor_geometry(8192), plan.clone());
        // Three words half programmed, then cleared (not strict: a device
        // without a plan would allow it too).
        device.write(0, &[&PATTERN]).unwrap();
        let old = device.live_image();
        assert!(device.write(4, &[&[0x00; 8]]).is_err(), "{plan:?}");
        let image = device.crash_image(&CrashModel::Live);
        for (offset, (&new, &was)) in image.iter().zip(&old).enumerate() {
            assert_eq!(new & !was, 0, "{plan:?}: bit set at offset {offset}");
        }
        let torn_word = 4 + usize::try_from(into / 4 * 4).unwrap();
        assert_eq!(&image[..4], &PATTERN[..4], "{plan:?}: before the write");
        assert!(
            image[4..torn_word].iter().all(|&b| b == 0x00),
            "{plan:?}: words before the cut programmed"
        );
        assert_eq!(
            &image[torn_word + 4..12],
            &PATTERN[torn_word + 4..],
            "{plan:?}: words after the cut untouched"
        );
        assert!(image[12..].iter().all(|&b| b == 0xFF), "{plan:?}");
    }
}

#[test]
fn losing_subsets_gives_two_to_the_k_distinct_images() {
    const PENDING: usize = 5;
    let mut device = RamDevice::byte_addressable(64);
    device.write(0, &[b"synced"]).unwrap();
    device.sync().unwrap();
    for (index, letter) in (b'a'..).take(PENDING).enumerate() {
        let offset = 8 + 8 * index as u64;
        device.write(offset, &[&[letter; 4]]).unwrap();
    }
    assert_eq!(device.pending_writes(), PENDING);

    let mut images: Vec<Vec<u8>> = CrashModel::all_subsets(PENDING)
        .map(|model| device.crash_image(&model))
        .collect();
    assert_eq!(images.len(), 1 << PENDING);
    assert_eq!(images[0], device.durable_image(), "empty subset");
    assert_eq!(
        images[(1 << PENDING) - 1],
        device.live_image(),
        "full subset"
    );
    assert!(images.iter().all(|image| &image[..6] == b"synced"));
    images.sort();
    images.dedup();
    assert_eq!(images.len(), 1 << PENDING, "every subset distinct");
    assert_eq!(
        device.pending_writes(),
        PENDING,
        "building images changes nothing"
    );
}

#[test]
fn reordered_writes_apply_in_the_given_order() {
    let mut device = RamDevice::byte_addressable(16);
    device.write(0, &[b"AAAA"]).unwrap();
    device.write(2, &[b"BBBB"]).unwrap();
    device.write(4, &[b"CC"]).unwrap();

    let image = |order: Vec<usize>| device.crash_image(&CrashModel::Exactly(order))[..6].to_vec();
    assert_eq!(image(vec![0, 1, 2]), b"AABBCC", "issue order");
    assert_eq!(
        image(vec![2, 1, 0]),
        b"AAAABB",
        "reversed: the first write last"
    );
    assert_eq!(image(vec![1, 0]), b"AAAABB", "a lost write and a swap");
    assert_eq!(image(vec![2]), b"\0\0\0\0CC");
    assert_eq!(
        device.crash_image(&CrashModel::Live),
        device.crash_image(&CrashModel::Exactly(vec![0, 1, 2]))
    );
}

#[test]
fn a_failed_sync_drops_unsynced_writes_and_a_retry_succeeds() {
    let plan = FaultPlan::new(1).sync_failure(1);
    let mut device = RamDevice::with_faults(file(32), plan);
    device.write(0, &[b"kept"]).unwrap();
    device.sync().unwrap();
    device.write(4, &[b"lost"]).unwrap();
    device.erase(0, 1).unwrap();

    let error = device.sync().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::SyncFailed);
    assert_eq!(device.pending_writes(), 0, "nothing left to sync");
    assert_eq!(&device.live_image()[..8], b"\0eptlost", "the page cache");
    assert_eq!(&device.durable_image()[..8], b"kept\0\0\0\0");

    device.sync().expect("a retried sync succeeds");
    assert_eq!(
        &device.durable_image()[..8],
        b"kept\0\0\0\0",
        "and the dropped writes stay lost"
    );
    assert_eq!(
        &device.reboot(&CrashModel::Live).live_image()[..8],
        b"kept\0\0\0\0"
    );
    assert_eq!(
        device.fault_stats(),
        FaultStats {
            sync_failures: 1,
            dropped_operations: 2,
            ..FaultStats::default()
        }
    );
}

#[test]
fn no_space_and_io_errors_change_nothing() {
    let plan = FaultPlan::new(1)
        .no_space_after_bytes(10)
        .io_error_on_write(0);
    let mut device = RamDevice::with_faults(file(32), plan);
    let before = device.live_image();

    let error = device.write(0, &[b"eio"]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io);
    device.write(0, &[b"12345678"]).unwrap();
    let after_first = device.live_image();
    let error = device.write(8, &[b"abc"]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NoSpace);
    assert_eq!((error.offset(), error.len_bytes()), (8, 3));

    assert_ne!(after_first, before);
    assert_eq!(
        device.live_image(),
        after_first,
        "the refused write changed nothing"
    );
    assert_eq!(
        device.pending_writes(),
        1,
        "only the write that fit is pending"
    );
    assert_eq!(device.stats().write_bytes, 8);
    device
        .write(8, &[b"ab"])
        .expect("a write that fits still goes through");
    let stats = device.fault_stats();
    assert_eq!((stats.no_space_errors, stats.write_io_errors), (1, 1));
}

#[test]
fn a_misdirected_write_lands_at_the_other_offset() {
    let plan = FaultPlan::new(1).misdirect_write(1, 20);
    let mut device = RamDevice::with_faults(file(32), plan);
    device.write(0, &[b"aaaa"]).unwrap();
    device
        .write(8, &[b"bbbb"])
        .expect("a misdirected write reports success");
    device.write(12, &[b"cccc"]).unwrap();

    let live = device.live_image();
    assert_eq!(&live[8..12], b"\0\0\0\0", "not where it was asked to go");
    assert_eq!(&live[20..24], b"bbbb", "but at the other offset");
    assert_eq!(&live[12..16], b"cccc", "later writes go where asked");
    assert_eq!(device.crash_image(&CrashModel::Live), live);
    assert_eq!(device.fault_stats().misdirected_writes, 1);
}

#[test]
fn transient_flips_differ_between_reads_and_persistent_ones_stick() {
    let seed = seed(0xF11B);
    let truth: Vec<u8> = (0..=255).collect();

    // Chosen flips: the transient one shows once, the persistent one always.
    let plan = FaultPlan::new(seed)
        .read_bit_flip_at(3, 0, false)
        .read_bit_flip_at(9, 7, true);
    let mut device = RamDevice::from_image(file(256), truth.clone());
    device.set_fault_plan(plan);
    let first = read_vec(&mut device, 0, 16);
    let second = read_vec(&mut device, 0, 16);
    assert_eq!((first[3], first[9]), (3 ^ 0x01, 9 ^ 0x80));
    assert_eq!((second[3], second[9]), (3, 9 ^ 0x80));
    assert_eq!(device.live_image(), truth, "the stored bytes never change");

    // Random transient flips: two reads differ from each other and the truth.
    let plan = FaultPlan::new(seed).read_bit_flips(8, false);
    let mut device = RamDevice::from_image(file(256), truth.clone());
    device.set_fault_plan(plan.clone());
    let first = read_vec(&mut device, 0, 256);
    let second = read_vec(&mut device, 0, 256);
    assert_ne!(first, truth, "{plan:?}");
    assert_ne!(first, second, "{plan:?}: transient flips move");
    for (read, want) in first.iter().zip(&truth) {
        assert!(
            (read ^ want).count_ones() <= 1,
            "{plan:?}: one bit per byte"
        );
    }

    // Random persistent flips: they live with the device, so they stay
    // once the plan that drew them is replaced by one that flips nothing.
    let plan = FaultPlan::new(seed).read_bit_flips(8, true);
    let mut device = RamDevice::from_image(file(256), truth.clone());
    device.set_fault_plan(plan.clone());
    let first = read_vec(&mut device, 0, 256);
    assert_ne!(first, truth, "{plan:?}");
    let flipped = device.fault_stats().read_bit_flips;
    device.set_fault_plan(FaultPlan::new(seed));
    assert_eq!(read_vec(&mut device, 0, 256), first, "{plan:?}: stuck");
    assert_eq!(
        read_vec(&mut device, 0, 256),
        first,
        "{plan:?}: still stuck"
    );
    assert_eq!(device.fault_stats().read_bit_flips, 2 * flipped, "{plan:?}");
    assert_eq!(device.live_image(), truth, "{plan:?}: stored bytes intact");
    let mut rebooted = device.reboot(&CrashModel::Live);
    assert_eq!(
        read_vec(&mut rebooted, 0, 256),
        truth,
        "a reboot clears them"
    );
}

#[test]
#[should_panic(expected = "programmed twice without an erase")]
fn strict_mode_panics_on_a_word_programmed_twice() {
    let plan = FaultPlan::new(1).strict(true);
    let mut device = RamDevice::with_faults(nor_geometry(8192), plan);
    // All ones leaves the word looking erased: only tracking catches it.
    device.write(0, &[&[0xFF; 4]]).unwrap();
    let _ = device.write(0, &[&[0x00; 4]]);
}

#[test]
#[should_panic(expected = "over unerased flash")]
fn strict_mode_panics_on_a_write_over_unerased_bytes() {
    let mut image = vec![0xFF; 8192];
    image[6] = 0x7F;
    let mut device = RamDevice::from_image(nor_geometry(8192), image);
    device.set_fault_plan(FaultPlan::new(1).strict(true));
    let _ = device.write(4, &[&[0x00; 4]]);
}

#[test]
#[should_panic(expected = "misaligned write")]
fn strict_mode_panics_on_a_misaligned_write() {
    let plan = FaultPlan::new(1).strict(true);
    let mut device = RamDevice::with_faults(nor_geometry(8192), plan);
    let _ = device.write(2, &[&[0x00; 4]]);
}

#[test]
fn strict_mode_allows_programming_after_an_erase() {
    let plan = FaultPlan::new(1).strict(true);
    let mut device = RamDevice::with_faults(nor_geometry(8192), plan);
    device.write(0, &[&[0x12; 8]]).unwrap();
    device.write(8, &[&[0x34; 4]]).unwrap();
    device.erase(0, 4096).unwrap();
    device.write(0, &[&[0x56; 4]]).expect("erased again");
    device.write(8, &[&[0x78; 4]]).expect("erased again");
    assert_eq!(
        read_vec(&mut device, 0, 12),
        [[0x56; 4], [0xFF; 4], [0x78; 4]].concat()
    );
}

#[test]
fn a_torn_erase_leaves_erased_torn_and_old_bytes() {
    let seed = seed(0xE2A5);
    let plan = FaultPlan::new(seed)
        .power_cut_at_byte(4096 + 8 + 1000)
        .torn_unit_bytes(256)
        .torn_fill(TornFill::Zero);
    let mut device = RamDevice::from_image(nor_geometry(8192), vec![0x00; 8192]);
    device.set_fault_plan(plan.clone());
    device.erase(4096, 4096).unwrap();
    device.write(4096, &[&[0x11; 8]]).unwrap();
    assert!(device.erase(0, 4096).is_err(), "{plan:?}");
    let image = device.crash_image(&CrashModel::Live);
    // Byte 1000 of the erase is in the unit 768..1024.
    assert!(image[..768].iter().all(|&b| b == 0xFF), "{plan:?}: erased");
    assert!(
        image[768..1024].iter().all(|&b| b == 0x00),
        "{plan:?}: torn"
    );
    assert!(
        image[1024..4096].iter().all(|&b| b == 0x00),
        "{plan:?}: old"
    );
    assert_eq!(device.erase_counts(), vec![1, 1], "a torn erase wears");
    assert_eq!(
        &device.crash_image(&CrashModel::Subset(0b011))[..4],
        &[0x00; 4]
    );
}

/// A workload that exercises every random choice; returns everything a
/// test could observe.
fn observed_run(seed: u64) -> (Vec<Vec<u8>>, FaultStats) {
    let plan = FaultPlan::new(seed)
        .power_cut_at_byte(300)
        .torn_unit_bytes(8)
        .torn_fill(TornFill::Mixed)
        .read_bit_flips(16, false);
    let mut device = RamDevice::with_faults(file(1024), plan);
    let mut observed = Vec::new();
    for index in 0..10u8 {
        let offset = u64::from(index) * 40;
        let _ = device.write(offset, &[&[index; 40]]);
        if index % 3 == 0 {
            let _ = device.sync();
        }
        observed.push(read_vec(&mut device, 0, 512));
    }
    for crash_seed in 0..4 {
        observed.push(device.crash_image(&CrashModel::Random {
            seed: seed ^ crash_seed,
        }));
    }
    (observed, device.fault_stats())
}

#[test]
fn the_same_seed_gives_byte_identical_runs() {
    let seed = seed(0x1D3A);
    let (first, stats) = observed_run(seed);
    assert_eq!(observed_run(seed), (first.clone(), stats), "seed {seed:#x}");
    assert_eq!(stats.power_cuts, 1, "seed {seed:#x}");
    assert!(stats.read_bit_flips > 0, "seed {seed:#x}");
    assert_ne!(observed_run(seed ^ 1).0, first, "another seed, another run");
}

#[test]
fn power_cut_after_ops_refuses_everything_after() {
    let mut device = RamDevice::with_faults(file(16), FaultPlan::new(1).power_cut_after_ops(2));
    device.write(0, &[b"ab"]).unwrap();
    device.sync().unwrap();
    let before = device.live_image();
    assert_eq!(device.write(2, &[b"cd"]).unwrap_err().kind(), ErrorKind::Io);
    assert_eq!(device.erase(0, 1).unwrap_err().kind(), ErrorKind::Io);
    assert_eq!(device.live_image(), before);
    assert_eq!(read_vec(&mut device, 0, 2), b"ab", "reads still work");

    device.set_fault_plan(FaultPlan::new(2));
    device
        .write(2, &[b"cd"])
        .expect("a new plan brings the power back");
}

#[test]
fn a_store_counts_bytes_and_operations_across_segments() {
    const SEGMENT_BYTES: u32 = 64;
    // Cut at byte 40 of the store: the second segment's write of 32 bytes,
    // 8 bytes in.
    let plan = FaultPlan::new(9)
        .power_cut_at_byte(40)
        .torn_unit_bytes(1)
        .torn_fill(TornFill::Zero);
    let mut store = RamStore::with_faults(1, plan);
    let first = store.allocate(1, SEGMENT_BYTES).unwrap();
    let second = store.allocate(2, SEGMENT_BYTES).unwrap();
    store
        .device(first)
        .unwrap()
        .0
        .write(0, &[&[1; 32]])
        .unwrap();
    let error = store
        .device(second)
        .unwrap()
        .0
        .write(0, &[&[2; 32]])
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Io);
    assert!(store.is_power_cut());
    assert_eq!(store.operations(), 4, "two allocations and two writes");
    assert!(
        store.allocate(3, SEGMENT_BYTES).is_err(),
        "refused after the cut"
    );
    assert_eq!(store.pending_writes(), 2);

    // Numbered across the store: 0 is segment 1's write, 1 segment 2's.
    let rebooted = store.reboot_with(&CrashModel::Subset(0b10));
    let image = |store: &RamStore, id| store.segments()[&id].device().live_image();
    assert_eq!(image(&rebooted, first), vec![0; 64], "write 0 lost");
    assert_eq!(
        &image(&rebooted, second)[..10],
        &[2, 2, 2, 2, 2, 2, 2, 2, 0, 0]
    );
    assert!(!rebooted.is_power_cut());
    assert_eq!(rebooted.segments().len(), 2, "allocations are durable");

    // Cut again during "recovery", several times in a row.
    let mut store = rebooted;
    for round in 0..3u64 {
        store.set_fault_plan(FaultPlan::new(round).power_cut_after_ops(1));
        let (segment, _) = store.device(first).unwrap();
        segment.write(0, &[b"repair"]).unwrap();
        assert!(
            segment.sync().is_err(),
            "round {round}: cut before the sync"
        );
        store = store.reboot(Survivors::Durable);
        assert_eq!(image(&store, first), vec![0; 64], "round {round}");
    }
}

#[test]
fn a_store_fails_an_allocation_with_no_space() {
    let mut store = RamStore::with_faults(1, FaultPlan::new(1).no_space_on_allocation(1));
    store.allocate(1, 64).unwrap();
    let error = store.allocate(2, 64).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NoSpace);
    assert_eq!(store.segments().len(), 1, "nothing created");
    store.allocate(2, 64).expect("the next one fits");
    assert_eq!(store.fault_stats().no_space_errors, 1);
}

#[test]
fn without_faults_live_survivors_are_the_live_images() {
    let mut store = RamStore::new(5);
    let id = store.allocate(7, 32).unwrap();
    let (segment, _) = store.device(id).unwrap();
    segment.write(0, &[b"synced"]).unwrap();
    segment.sync().unwrap();
    segment.write(6, &[b"+live"]).unwrap();
    let live = store.segments()[&id].device().live_image();
    let durable = store.segments()[&id].device().durable_image();
    let image = |survivors| {
        store.reboot(survivors).segments()[&id]
            .device()
            .live_image()
    };
    assert_eq!(image(Survivors::Live), live);
    assert_eq!(image(Survivors::Durable), durable);
    assert_eq!(store.fault_stats(), FaultStats::default());
}
