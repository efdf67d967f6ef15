//! `segwal dump` prints every record with its LSN, segment, offset and
//! length: JSON lines parse and match the payloads the library wrote, and
//! each offset is where the record's bytes really are in its segment file;
//! `--from`/`--to` select an inclusive range; text quotes printable
//! payloads and shows others as hex; hex prints a hex dump; after a
//! checkpoint and a suffix truncation, dump shows exactly the log's LSNs.

mod common;

use common::{args, dump_json, field, log_with, payload, run, segment_file, stdout};

/// Bytes before a record's payload.
const RECORD_HEADER_BYTES: u64 = 16;

#[test]
fn json_lines_match_the_payloads_and_their_places_on_disk() {
    let (_temp, dir) = log_with(300);
    let lines = dump_json(&dir);
    assert_eq!(lines.len(), 300);
    let mut segments_seen = std::collections::BTreeSet::new();
    for (index, line) in lines.iter().enumerate() {
        let lsn = index as u64 + 1;
        assert_eq!(field(line, "lsn"), lsn);
        let expected = payload(lsn);
        assert_eq!(
            line["utf8"].as_str().expect("utf8").as_bytes(),
            &expected[..]
        );
        assert_eq!(line["len"], expected.len());
        let segment = field(line, "segment");
        segments_seen.insert(segment);
        let bytes = std::fs::read(segment_file(&dir, segment)).expect("segment file");
        let at = usize::try_from(field(line, "offset") + RECORD_HEADER_BYTES).expect("fits");
        assert_eq!(&bytes[at..at + expected.len()], &expected[..], "LSN {lsn}");
    }
    assert!(segments_seen.len() >= 2);
}

#[test]
fn from_and_to_are_inclusive() {
    let (_temp, dir) = log_with(20);
    let output = run(args("dump", &dir, &["--from", "3", "--to", "5"]));
    assert!(output.status.success());
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (line, lsn) in lines.iter().zip(3..) {
        assert!(
            line.starts_with(&format!("lsn={lsn} segment=1 offset=")),
            "{line}"
        );
        let quoted = format!("\"{}\"", String::from_utf8(payload(lsn)).expect("text"));
        assert!(line.ends_with(&quoted), "{line}");
    }
    let output = run(args("dump", &dir, &["--from", "21"]));
    assert!(output.status.success());
    assert!(output.stdout.is_empty());
}

#[test]
fn binary_payloads_show_as_hex() {
    let (_temp, dir) = log_with(0);
    let mut wal = common::open_writer(&dir);
    wal.append(&[0x00, 0x01, 0xfe, 0xff]).expect("append");
    wal.append(b"line\nbreak").expect("append");
    drop(wal);
    let text = stdout(&run(args("dump", &dir, &[])));
    assert!(
        text.contains("lsn=1 segment=1 offset=64 len=4 hex:0001feff"),
        "{text}"
    );
    assert!(text.contains("len=10 hex:6c696e650a627265616b"), "{text}");
    let lines = dump_json(&dir);
    assert_eq!(lines[0]["hex"], "0001feff");
    assert!(lines[0]["utf8"].is_null(), "not UTF-8");
    assert_eq!(lines[1]["utf8"], "line\nbreak");
}

#[test]
fn hex_format_prints_a_hex_dump() {
    let (_temp, dir) = log_with(1);
    let text = stdout(&run(args("dump", &dir, &["--format", "hex"])));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("lsn=1 segment=1 offset=64 len=100"));
    assert_eq!(
        lines.next(),
        Some("  00000000  72 65 63 6f 72 64 20 30  30 30 30 31 20 2e 2e 2e  |record 00001 ...|")
    );
    assert_eq!(text.lines().count(), 1 + 7, "100 bytes are 7 rows");
}

#[test]
fn follows_checkpoints_and_truncations() {
    let (_temp, dir) = log_with(300);
    let mut wal = common::open_writer_with(
        &dir,
        &segwal_std::WalOptions {
            segment_size_bytes: common::SEGMENT_BYTES,
            ..Default::default()
        },
    );
    assert!(wal.checkpoint(segwal::Lsn(200)).expect("checkpoint") > 0);
    wal.truncate_after(segwal::Lsn(250)).expect("truncate");
    wal.append(b"after the truncation").expect("append");
    let first = wal.first_lsn().0;
    drop(wal);
    assert!(first > 1);
    let lines = dump_json(&dir);
    let lsns: Vec<u64> = lines.iter().map(|line| field(line, "lsn")).collect();
    assert_eq!(lsns, (first..=251).collect::<Vec<_>>());
    assert_eq!(
        lines.last().expect("a record")["utf8"],
        "after the truncation"
    );
    // --from below the first LSN starts at the first.
    let output = run(args(
        "dump",
        &dir,
        &["--from", "1", "--to", &first.to_string()],
    ));
    assert_eq!(stdout(&output).lines().count(), 1);
}
