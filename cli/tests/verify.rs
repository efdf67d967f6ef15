//! `segwal verify` runs the full checksum scan: exit 0 on a clean log
//! (and on a torn tail, reported but never acknowledged), exit 1 with the
//! segment, offset and LSN of a flipped byte in a sealed segment, and exit
//! 1 naming the file when a segment header is damaged. With stderr piped
//! there is no progress bar.

mod common;

use common::{args, dump_json, field, flip_byte, log_with, run, segment_file, stdout, write_at};

#[test]
fn a_clean_log_exits_zero_without_progress_output_when_piped() {
    let (_temp, dir) = log_with(300);
    let output = run(args("verify", &dir, &[]));
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.contains(": clean ("), "{text}");
    assert!(text.contains("300 records"), "{text}");
    assert!(output.stderr.is_empty(), "no progress bar on a pipe");
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_is_named_by_segment_offset_and_lsn() {
    let (_temp, dir) = log_with(300);
    let record = &dump_json(&dir)[2];
    assert_eq!(
        field(record, "segment"),
        1,
        "LSN 3 is in the sealed first segment"
    );
    let offset = field(record, "offset");
    flip_byte(&segment_file(&dir, 1), offset + 16 + 5, 0x01);

    let output = run(args("verify", &dir, &[]));
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let expected = format!("problem: segment 1 offset {offset} LSN 3: ");
    assert!(text.contains(&expected), "{expected:?} not in {text}");
    assert!(text.contains("1 problem ("), "{text}");

    let output = run(args("verify", &dir, &["--format", "json"]));
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(report["clean"], false);
    assert_eq!(report["problem_count"], 1);
    assert_eq!(report["problems"][0]["segment"], 1);
    assert_eq!(report["problems"][0]["offset"], offset);
    assert_eq!(report["problems"][0]["lsn"], 3);
}

#[test]
fn a_torn_tail_is_reported_but_is_not_a_problem() {
    let (_temp, dir) = log_with(5);
    let last = &dump_json(&dir)[4];
    // A 16-byte header and a 100-byte payload, padded to 8 bytes; the
    // garbage covers the clean-close marker after it.
    let end = field(last, "offset") + 120;
    write_at(&segment_file(&dir, 1), end, &[0x5A; 40]);
    let output = run(args("verify", &dir, &[]));
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let text = stdout(&output);
    assert!(
        text.contains(&format!(
            "tail: torn: 40 bytes after the last record (segment 1, offset {end})"
        )),
        "{text}"
    );
    assert!(text.contains(": clean ("), "{text}");
}

#[test]
fn a_damaged_segment_header_is_a_problem_naming_the_file() {
    let (_temp, dir) = log_with(300);
    // The sequence number field of segment 2's header.
    flip_byte(&segment_file(&dir, 2), 16, 0x40);
    let output = run(args("verify", &dir, &[]));
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let file = segment_file(&dir, 2).display().to_string();
    assert!(text.contains("problem: the log does not open"), "{text}");
    assert!(text.contains(&file), "{text}");
    assert!(text.contains("offset 0"), "{text}");
}
