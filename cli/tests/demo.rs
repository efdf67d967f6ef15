//! `segwal demo` runs the main job end to end (threads appending with
//! durable acknowledgements, a writer process killed with SIGKILL, a
//! reopen that checks every acknowledged record) and prints its summary;
//! it cleans up its temporary directory.

mod common;

use common::{run, stdout};

#[test]
fn demo_runs_and_every_acknowledged_record_survives() {
    let output = run(["demo"]);
    let text = stdout(&output);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}\n{}",
        common::stderr(&output)
    );
    for needle in [
        "threads appended",
        "records/s",
        "killed with SIGKILL after",
        "reopened in",
        "acknowledged records read back byte for byte",
        "full checksum scan",
        "OK: every acknowledged record survived the crash",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    let dir = text
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("segwal demo in "))
        .and_then(|rest| rest.strip_suffix(" (removed at the end)"))
        .expect("first line names the directory");
    assert!(!std::path::Path::new(dir).exists(), "{dir} was not removed");
}
