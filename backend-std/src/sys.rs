//! The raw libc calls std does not offer: vectored positional writes,
//! preallocation and `flock`.
//!
//! This is the only module with `unsafe`. Each wrapper makes exactly one
//! system call and turns its result into an `io::Result`; retrying on
//! `EINTR` and looping on short writes belong to the callers, where they can
//! be tested without a kernel.

use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;

/// The most iovecs one `pwritev` accepts on Linux (`UIO_MAXIOV`); more
/// fail with `EINVAL`. The libc crate does not export it for Linux.
pub(crate) const IOV_MAX: usize = 1024;

/// Converts a byte offset or length to `off_t`, failing with `EFBIG` (as the
/// kernel would) where it does not fit, e.g. past 2 GiB on 32-bit targets.
fn to_off_t(value: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(value).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))
}

/// One `pwritev(2)` of `iovecs` at `offset`; returns the bytes written,
/// which may be fewer than asked for.
///
/// # Errors
///
/// The OS error, `EINTR` included.
///
/// # Panics
///
/// When `iovecs` holds more than [`IOV_MAX`] slices: the caller must split.
pub(crate) fn pwritev(file: &File, iovecs: &[IoSlice<'_>], offset: u64) -> io::Result<usize> {
    assert!(
        iovecs.len() <= IOV_MAX,
        "pwritev given {} iovecs",
        iovecs.len()
    );
    let offset = to_off_t(offset)?;
    // The assert above bounds the count to 1024, which fits any `c_int`.
    let iovec_count = libc::c_int::try_from(iovecs.len()).expect("at most IOV_MAX iovecs");
    // SAFETY: std guarantees `IoSlice` is ABI-compatible with `struct iovec`
    // on Unix, so the pointer and count describe `iovec_count` valid iovecs,
    // each pointing into a slice that the borrow keeps alive for the whole
    // call. The kernel only reads through them. The descriptor stays open
    // because `file` is borrowed for the call.
    #[allow(unsafe_code)]
    let written = unsafe {
        libc::pwritev(
            file.as_raw_fd(),
            iovecs.as_ptr().cast(),
            iovec_count,
            offset,
        )
    };
    // A negative return is -1 with the cause in errno; `try_from` fails
    // exactly then.
    usize::try_from(written).map_err(|_| io::Error::last_os_error())
}

/// One `fallocate(2)` with mode 0: allocates `[0, len_bytes)` and extends the
/// file size to cover it.
///
/// # Errors
///
/// The OS error: `EOPNOTSUPP` where the file system cannot preallocate,
/// `ENOSPC`, `EINTR`.
pub(crate) fn fallocate(file: &File, len_bytes: u64) -> io::Result<()> {
    let len_bytes = to_off_t(len_bytes)?;
    // SAFETY: fallocate takes no pointers; the descriptor stays open because
    // `file` is borrowed for the call.
    #[allow(unsafe_code)]
    let status = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len_bytes) };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One `posix_fallocate(3)` of `[0, len_bytes)`.
///
/// # Errors
///
/// The error number the call returns (it does not set errno).
pub(crate) fn posix_fallocate(file: &File, len_bytes: u64) -> io::Result<()> {
    let len_bytes = to_off_t(len_bytes)?;
    // SAFETY: posix_fallocate takes no pointers; the descriptor stays open
    // because `file` is borrowed for the call.
    #[allow(unsafe_code)]
    let status = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len_bytes) };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(status))
    }
}

/// One non-blocking `flock(2)` taking the exclusive lock on `file`'s open
/// file description.
///
/// std's `File::try_lock` does the same but needs Rust 1.89, past this
/// workspace's `rust-version`.
///
/// # Errors
///
/// The OS error: `EWOULDBLOCK` when another open file description holds a
/// lock on the file (in this process or another), `ENOLCK`, or
/// `EOPNOTSUPP`/`ENOSYS` where the file system has no locks. The call never
/// waits, so it does not fail with `EINTR`.
pub(crate) fn try_lock_exclusive(file: &File) -> io::Result<()> {
    flock(file, libc::LOCK_EX | libc::LOCK_NB)
}

/// One non-blocking `flock(2)` taking a shared lock on `file`'s open file
/// description; closing the file releases it.
///
/// # Errors
///
/// As for [`try_lock_exclusive`]; `EWOULDBLOCK` when an exclusive lock is
/// held.
pub(crate) fn try_lock_shared(file: &File) -> io::Result<()> {
    flock(file, libc::LOCK_SH | libc::LOCK_NB)
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    // SAFETY: flock takes no pointers; the descriptor stays open because
    // `file` is borrowed for the call.
    #[allow(unsafe_code)]
    let status = unsafe { libc::flock(file.as_raw_fd(), operation) };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
