//! segwal over files.
mod file;
mod sys;
pub use file::{FileDevice, FileError, sync_dir};
