//! The reception terminal's agent: reads the My Number card through PC/SC, has it sign the
//! service's challenge after the patient's PIN, and asks the confirmation service.
//!
//! The PIN's whole life is in [`confirm`] (read by a [`pin_input`] source, used in phase B,
//! dropped there) and, at the kiosk, in one action and one effect of [`kiosk::flow`];
//! [`pcsc_card`] is the only code that talks to the reader, and its
//! [`VerifiedCard`](pcsc_card::VerifiedCard) resets a card that may hold a verified PIN.
//! This crate talks to PC/SC through the `pcsc` crate, which wraps the C library; the agent's
//! own code is safe Rust.
#![forbid(unsafe_code)]

pub mod by_reader;
pub mod change_pin;
pub mod client;
pub mod config;
pub mod confirm;
pub mod desk;
pub mod face;
pub mod kiosk;
pub mod oqs;
pub mod outage;
pub mod pcsc_card;
pub mod phone;
pub mod pin_input;
pub mod report;
