//! [`WritebackHints`]: asking the kernel to start writing a file's dirty
//! pages to the disk, from a helper thread.
//!
//! A write-behind buffer hands a megabyte of runs to the kernel and then
//! asks it to start their writeback (`sync_file_range` with
//! `SYNC_FILE_RANGE_WRITE`), so that the disk works while the appender
//! fills the next megabyte and the final `fdatasync` finds little left.
//! The call does not wait for the disk, but it does the starting in the
//! caller: ext4 maps the dirty pages, builds and submits their I/O there,
//! and blocks while the device's queue is full. Made by the appender, that
//! is kernel time taken from appending. In a `/tmp` harness of W3 (a
//! million appends of 128 bytes through a 64 KiB buffer, one sync at the
//! end, on an AMD EPYC with virtio ext4) posting the hints to this thread
//! instead took a run from 179-190 ms to 149-162 ms (medians of three
//! runs of six), against 138-170 ms for 64 KiB `pwrite`s and one
//! `fdatasync`.
//!
//! A hint promises nothing, so a lost one costs speed and nothing else:
//! the thread ends after [`IDLE`] without hints (a sealed segment's
//! device keeps none alive), a hint sent as it ends is dropped, and the
//! next one starts a new thread. If no thread can be started the hint is
//! given in the caller, as before.

use std::fs::File;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, SendError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::sys;

/// How long the thread waits for the next hint before it ends: long next
/// to the few milliseconds between hints of a busy appender (one per MiB),
/// short enough that an idle device does not keep a thread.
const IDLE: Duration = Duration::from_secs(1);

/// Stack of the thread: it makes one system call in a loop.
const STACK_BYTES: usize = 64 * 1024;

/// A range of a file, `(offset, len_bytes)`, whose writeback to start.
type Range = (u64, u64);

/// Writeback hints for one file, given by a thread started at the first
/// hint and after every idle end (see the module documentation).
#[derive(Debug)]
pub(crate) struct WritebackHints {
    file: Arc<File>,
    worker: Option<Worker>,
}

#[derive(Debug)]
struct Worker {
    ranges: Sender<Range>,
    thread: JoinHandle<()>,
}

impl WritebackHints {
    /// Hints for `file`; no thread until the first hint.
    pub(crate) fn new(file: Arc<File>) -> WritebackHints {
        WritebackHints { file, worker: None }
    }

    /// Asks for the writeback of `[offset, offset + len_bytes)` to start,
    /// without waiting for the thread to ask.
    pub(crate) fn start(&mut self, offset: u64, len_bytes: u64) {
        let range = match &self.worker {
            Some(worker) => match worker.ranges.send((offset, len_bytes)) {
                Ok(()) => return,
                // The thread ended when idle: start another.
                Err(SendError(range)) => range,
            },
            None => (offset, len_bytes),
        };
        self.stop();
        match spawn(Arc::clone(&self.file)) {
            Ok(worker) => {
                // Just started, so it is waiting: the send cannot fail, and
                // were it to, the hint is only lost.
                let _ = worker.ranges.send(range);
                self.worker = Some(worker);
            }
            // No thread (a limit on threads or memory): the hint in the
            // caller, where it was before there was a thread. Its failure
            // loses nothing either.
            Err(_) => {
                let _ = sys::start_writeback(&self.file, range.0, range.1);
            }
        }
    }

    /// Ends the thread, after the hints sent to it.
    fn stop(&mut self) {
        if let Some(worker) = self.worker.take() {
            drop(worker.ranges);
            // Its loop cannot panic, and a panic would have lost hints only.
            let _ = worker.thread.join();
        }
    }

    /// `true` while a thread is taking hints.
    #[cfg(test)]
    pub(crate) fn has_thread(&self) -> bool {
        self.worker
            .as_ref()
            .is_some_and(|worker| !worker.thread.is_finished())
    }
}

impl Drop for WritebackHints {
    /// Joins the thread, so that the file is closed when its device is.
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a thread giving the hints it receives for `file`, until it has
/// none for [`IDLE`] or its sender is dropped.
fn spawn(file: Arc<File>) -> std::io::Result<Worker> {
    let (ranges, received) = mpsc::channel::<Range>();
    let thread = thread::Builder::new()
        .name("segwal-writeback".into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            loop {
                match received.recv_timeout(IDLE) {
                    // A hint: failing (a file system without it, or an I/O
                    // error the next fdatasync reports anyway) loses nothing.
                    Ok((offset, len_bytes)) => {
                        let _ = sys::start_writeback(&file, offset, len_bytes);
                    }
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
                }
            }
        })?;
    Ok(Worker { ranges, thread })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file() -> (tempfile::TempDir, Arc<File>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = File::create(dir.path().join("file")).expect("create");
        file.set_len(1 << 20).expect("set_len");
        (dir, Arc::new(file))
    }

    #[test]
    fn the_first_hint_starts_a_thread_and_dropping_joins_it() {
        let (_dir, file) = temp_file();
        let mut hints = WritebackHints::new(Arc::clone(&file));
        assert!(!hints.has_thread(), "no thread before a hint");
        hints.start(0, 4096);
        assert!(hints.has_thread(), "the hint went to a thread");
        assert_eq!(Arc::strong_count(&file), 3, "the thread holds the file");
        drop(hints);
        assert_eq!(
            Arc::strong_count(&file),
            1,
            "the thread ended and let the file go"
        );
    }

    #[test]
    fn a_hint_after_the_thread_ended_starts_another() {
        let (_dir, file) = temp_file();
        let mut hints = WritebackHints::new(Arc::clone(&file));
        hints.start(0, 4096);
        // What an idle end leaves behind: a worker whose receiver is gone.
        let (ranges, received) = mpsc::channel::<Range>();
        drop(received);
        let ended = thread::spawn(|| {});
        let old = hints.worker.replace(Worker {
            ranges,
            thread: ended,
        });
        if let Some(old) = old {
            drop(old.ranges);
            old.thread.join().expect("join");
        }
        hints.start(4096, 4096);
        assert!(hints.has_thread(), "a new thread took the hint");
        let worker = hints.worker.as_ref().expect("a worker");
        assert!(worker.ranges.send((8192, 4096)).is_ok(), "and takes more");
    }
}
