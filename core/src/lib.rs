#![no_std]
#![doc = "segwal core"]
mod device;
pub use device::{check_range, BlockDevice, Error as DeviceError, ErrorKind, ErrorType, Geometry};
