//! `segwal info` describes a log made by the library: its segments with
//! their LSN ranges, sizes and fill, the first and next LSN, the checksum,
//! the tail state (clean, or torn after garbage is written past the last
//! record) and the lock holder (this test's pid while it holds the log);
//! a damaged record header leaves one segment's fill unknown, named.

mod common;

use common::{SEGMENT_BYTES, args, log_with, run, segment_file, stdout, write_at};

fn info_json(dir: &std::path::Path) -> serde_json::Value {
    let output = run(args("info", dir, &["--format", "json"]));
    assert!(output.status.success(), "{}", common::stderr(&output));
    serde_json::from_str(&stdout(&output)).expect("info --format json is one JSON object")
}

#[test]
fn text_report_names_segments_lsns_fill_checksum_tail_and_lock() {
    let (_temp, dir) = log_with(300);
    let output = run(args("info", &dir, &[]));
    assert!(output.status.success());
    let text = stdout(&output);
    assert!(
        text.contains("records    300 (LSN 1 to 300; the next append gets 301)"),
        "{text}"
    );
    assert!(text.contains("lock       free"), "{text}");
    assert!(text.contains("checksum   crc32c"), "{text}");
    assert!(text.contains("tail       clean"), "{text}");
    assert!(text.contains("16.00 KiB"), "{text}");
    assert!(text.contains("fill"), "{text}");
    assert!(output.stderr.is_empty());
}

#[test]
fn json_segments_cover_the_log_without_gaps() {
    let (_temp, dir) = log_with(300);
    let info = info_json(&dir);
    assert_eq!(info["first_lsn"], 1);
    assert_eq!(info["next_lsn"], 301);
    assert_eq!(info["records"], 300);
    assert_eq!(info["tail"]["state"], "clean");
    assert!(info["lock_holder_pid"].is_null());
    let segments = info["segments"].as_array().expect("segments");
    assert!(
        segments.len() >= 2,
        "300 records of 100 bytes span 16 KiB segments"
    );
    let mut next = 1;
    for (index, segment) in segments.iter().enumerate() {
        assert_eq!(segment["sequence"], index as u64 + 1);
        assert_eq!(segment["first_lsn"], next);
        assert_eq!(segment["size_bytes"], SEGMENT_BYTES);
        assert_eq!(segment["checksum"], "crc32c");
        let used = segment["used_bytes"].as_u64().expect("used");
        assert!(used > 64 && used <= SEGMENT_BYTES, "{segment}");
        let fill = segment["fill_percent"].as_f64().expect("fill");
        assert!(fill > 0.0 && fill <= 100.0);
        next += segment["records"].as_u64().expect("records");
        let file = segment["file"].as_str().expect("file");
        assert!(std::path::Path::new(file).exists(), "{file}");
    }
    assert_eq!(next, 301);
}

#[test]
fn shows_the_pid_of_the_process_holding_the_lock() {
    let (_temp, dir) = log_with(10);
    let wal = common::open_writer(&dir);
    let pid = std::process::id();
    let output = run(args("info", &dir, &[]));
    assert!(output.status.success());
    assert!(
        stdout(&output).contains(&format!("held by process {pid}")),
        "{}",
        stdout(&output)
    );
    assert_eq!(info_json(&dir)["lock_holder_pid"], u64::from(pid));
    drop(wal);
    assert!(info_json(&dir)["lock_holder_pid"].is_null());
}

#[test]
fn reports_a_torn_tail_with_its_place() {
    let (_temp, dir) = log_with(10);
    let info = info_json(&dir);
    let used = info["segments"][0]["used_bytes"].as_u64().expect("used");
    // Over the clean-close marker, as a write cut short would leave it.
    write_at(&segment_file(&dir, 1), used, &[0xAB; 40]);
    let info = info_json(&dir);
    assert_eq!(info["tail"]["state"], "torn");
    assert_eq!(info["tail"]["segment"], 1);
    assert_eq!(info["tail"]["offset"], used);
    let output = run(args("info", &dir, &[]));
    assert!(
        stdout(&output).contains("tail       torn: "),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_damaged_record_header_leaves_the_fill_unknown_and_says_where() {
    let (_temp, dir) = log_with(300);
    let offset = common::field(&common::dump_json(&dir)[9], "offset");
    // The top byte of LSN 10's length: far over any record.
    common::flip_byte(&segment_file(&dir, 1), offset + 3, 0x40);
    let output = run(args("info", &dir, &[]));
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let text = stdout(&output);
    let expected = format!("segment 1 has no valid record at offset {offset}");
    assert!(text.contains("damaged    "), "{text}");
    assert!(
        text.contains(&expected) && text.contains("(LSN 10)"),
        "{text}"
    );
    let info = info_json(&dir);
    assert!(info["segments"][0]["fill_percent"].is_null());
    assert!(info["segments"][1]["fill_percent"].is_number());
    assert!(
        info["segments"][0]["damage"]
            .as_str()
            .expect("damage")
            .contains(&expected)
    );
}
