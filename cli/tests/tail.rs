//! `segwal tail` prints the last records, and with `--follow` the records
//! another process appends after it started: the test starts it, reads
//! the existing records (which proves it is running), appends through the
//! library while it runs, reads them from its stdout, then kills it. The
//! wait is bounded by the number of lines expected; a timeout is only a
//! safety net.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::Duration;

use common::{args, log_with, payload, run, segwal, spawn, stdout};

/// Generous: only a hung `tail` ever waits this long.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn prints_the_last_n_records() {
    let (_temp, dir) = log_with(30);
    let text = stdout(&run(args("tail", &dir, &["-n", "3"])));
    let lsns: Vec<&str> = text
        .lines()
        .map(|line| line.split(' ').next().expect("lsn"))
        .collect();
    assert_eq!(lsns, ["lsn=28", "lsn=29", "lsn=30"]);
    let text = stdout(&run(args("tail", &dir, &["-n", "100"])));
    assert_eq!(text.lines().count(), 30);
}

#[test]
fn follow_prints_records_appended_after_it_started() {
    let (_temp, dir) = log_with(3);
    let mut child = spawn(&mut segwal(args(
        "tail",
        &dir,
        &["--follow", "-n", "3", "--format", "json", "--poll-ms", "20"],
    )));
    let out = child.stdout.take().expect("stdout is piped");
    let (sender, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || -> serde_json::Value {
        let line = lines
            .recv_timeout(LINE_TIMEOUT)
            .expect("tail printed a line");
        serde_json::from_str(&line).expect("JSON line")
    };
    for lsn in 1..=3 {
        assert_eq!(next_line()["lsn"], lsn);
    }
    // Written by this process while `tail` runs, 200 records: they rotate
    // into new segments, which the follower must find too.
    let mut wal = common::open_writer_with(
        &dir,
        &segwal_std::WalOptions {
            segment_size_bytes: common::SEGMENT_BYTES,
            ..Default::default()
        },
    );
    for lsn in 4..=203 {
        wal.append(&payload(lsn)).expect("append");
    }
    for lsn in 4..=203u64 {
        let line = next_line();
        assert_eq!(line["lsn"], lsn);
        assert_eq!(
            line["utf8"].as_str().expect("utf8").as_bytes(),
            &payload(lsn)[..]
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(wal);
    reader.join().expect("reader thread");
}
