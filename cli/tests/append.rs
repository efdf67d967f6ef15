//! `segwal append` appends stdin to a log, durable when it exits 0: one
//! record per line (without the newline) or length-prefixed binary
//! records; `dump` then shows them with dense LSNs. It creates a log in a
//! missing or empty directory, refuses a directory holding other files,
//! refuses a locked log, and on input cut inside a record says how many
//! records before it are durable; a segment size the log cannot use is
//! refused before anything is created.

mod common;

use common::{args, assert_error_line, dump_json, field, log_with, run_with_input, stdout};
use segwal_std::Wal;

#[test]
fn lines_from_stdin_become_records_then_dump_shows_them() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("new").join("wal");
    let output = run_with_input(
        args("append", &dir, &[]),
        b"first\nsecond\n\nlast without newline",
    );
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    assert_eq!(stdout(&output), "appended 4 records, durable: LSN 1 to 4\n");
    let lines = dump_json(&dir);
    let texts: Vec<&str> = lines
        .iter()
        .map(|line| line["utf8"].as_str().expect("utf8"))
        .collect();
    assert_eq!(texts, ["first", "second", "", "last without newline"]);

    let output = run_with_input(args("append", &dir, &[]), b"fifth\n");
    assert_eq!(stdout(&output), "appended 1 record, durable: LSN 5 to 5\n");
    let mut wal = Wal::open_read_only(&dir).expect("open");
    assert_eq!(wal.read(segwal::Lsn(5)).expect("read"), b"fifth");
}

#[test]
fn length_prefixed_records_carry_any_bytes() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("wal");
    let output = run_with_input(
        args("append", &dir, &["--segment-size", "1048576"]),
        b"one\ntwo\n",
    );
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    // Larger than the 64 KiB read buffer too.
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let records: [&[u8]; 4] = [&[0, 0xff, b'\n', 13], b"", &[7; 3000], &big];
    let mut input = Vec::new();
    for record in records {
        input.extend_from_slice(&u32::try_from(record.len()).expect("small").to_le_bytes());
        input.extend_from_slice(record);
    }
    let output = run_with_input(args("append", &dir, &["--length-prefixed"]), &input);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    assert_eq!(stdout(&output), "appended 4 records, durable: LSN 3 to 6\n");
    let mut wal = Wal::open_read_only(&dir).expect("open");
    for (lsn, record) in (3..).zip(records) {
        assert_eq!(wal.read(segwal::Lsn(lsn)).expect("read"), record);
    }
    let lines = dump_json(&dir);
    assert_eq!(lines[5]["hex"].as_str().expect("hex").len(), 200_000);
    assert_eq!(field(&lines[5], "len"), 100_000);
}

#[test]
fn input_cut_inside_a_record_keeps_the_records_before_it() {
    let (_temp, dir) = log_with(0);
    let mut input = 2u32.to_le_bytes().to_vec();
    input.extend_from_slice(b"ok");
    input.extend_from_slice(&10u32.to_le_bytes());
    input.extend_from_slice(b"cut");
    let output = run_with_input(args("append", &dir, &["--length-prefixed"]), &input);
    assert_error_line(
        &output,
        &[
            "stdin ends inside record 2 (3 of 10 bytes)",
            "1 record before it durable: LSN 1 to 1",
        ],
    );
    let lines = dump_json(&dir);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["utf8"], "ok");
}

#[test]
fn a_new_log_gets_the_segment_size_asked_for() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("wal");
    let input: Vec<u8> = (0..200)
        .flat_map(|i| format!("line {i:04} of the test input\n").into_bytes())
        .collect();
    let output = run_with_input(args("append", &dir, &["--segment-size", "8192"]), &input);
    assert_eq!(output.status.code(), Some(0), "{}", common::stderr(&output));
    let lines = dump_json(&dir);
    assert_eq!(lines.len(), 200);
    assert!(field(&lines[199], "segment") > 1, "8 KiB segments rotate");
    let info = common::run(args("info", &dir, &["--format", "json"]));
    let info: serde_json::Value = serde_json::from_str(&stdout(&info)).expect("JSON");
    assert_eq!(info["segments"][0]["size_bytes"], 8192);
}

#[test]
fn refuses_a_directory_with_other_files_and_a_locked_log() {
    let temp = tempfile::tempdir().expect("tempdir");
    std::fs::write(temp.path().join("notes.txt"), "not a log").expect("write");
    let output = run_with_input(args("append", temp.path(), &[]), b"x\n");
    assert_error_line(&output, &["not a segwal log", "missing or empty directory"]);
    assert_eq!(std::fs::read_dir(temp.path()).expect("list").count(), 1);

    let (_temp, dir) = log_with(3);
    let holder = common::open_writer(&dir);
    let output = run_with_input(args("append", &dir, &[]), b"x\n");
    assert_error_line(
        &output,
        &["locked by process", &std::process::id().to_string()],
    );
    drop(holder);
    assert_eq!(dump_json(&dir).len(), 3);
}

#[test]
fn an_unusable_segment_size_creates_nothing() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("wal");
    for size in ["100", "4294967295", "99999999999"] {
        let output = run_with_input(args("append", &dir, &["--segment-size", size]), b"x\n");
        assert_error_line(
            &output,
            &[&format!("--segment-size {size}"), "multiple of 8 bytes"],
        );
        assert!(!dir.exists(), "{size} created the log");
    }
}
