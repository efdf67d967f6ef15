//! `info`, `dump`, `verify` and `tail` open a log read-only: on a closed
//! log, on a log with a torn tail (which a writer would cut) and on a log
//! with a damaged record, every file keeps its bytes and no file (not even
//! `LOCK`) appears or goes.

mod common;

use common::{args, dump_json, field, flip_byte, log_with, run, segment_file, snapshot, write_at};

fn assert_read_only(dir: &std::path::Path) {
    let before = snapshot(dir);
    for command in ["info", "dump", "verify", "tail"] {
        let _ = run(args(command, dir, &[]));
        assert_eq!(snapshot(dir), before, "{command} changed the directory");
    }
}

#[test]
fn read_only_commands_change_nothing() {
    let (_temp, dir) = log_with(300);
    std::fs::remove_file(dir.join("LOCK")).expect("remove LOCK");
    assert_read_only(&dir);

    let last = dump_json(&dir).pop().expect("a record");
    let end = field(&last, "offset") + 120;
    write_at(
        &segment_file(&dir, field(&last, "segment")),
        end,
        &[0xCD; 16],
    );
    assert_read_only(&dir);

    let offset = field(&dump_json(&dir)[4], "offset");
    flip_byte(&segment_file(&dir, 1), offset + 30, 0x80);
    assert_read_only(&dir);
    assert!(!dir.join("LOCK").exists());
}
