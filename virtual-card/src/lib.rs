//! The virtual My Number card.
#![forbid(unsafe_code)]

pub mod profile;
