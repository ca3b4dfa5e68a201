//! The load generator (see docs/load-harness.md): many virtual terminals, each with its own
//! client certificate and TLS connection, drive the confirmation service (and, with
//! `--reference`, a bare tonic server doing only the same signature check) with prepared
//! PIN-mode confirmations, and report throughput, HDR latency percentiles, result codes and the
//! server's CPU time per request.
//!
//! The run is split in two phases per window: **preparation** (IssueChallenge for every
//! request, then RSA signatures over the challenge binding on all cores, exactly as the card
//! would sign) and the **measured phase**, which sends only `ConfirmByCard`.
#![forbid(unsafe_code)]

pub mod drive;
pub mod error;
pub mod mix;
pub mod output;
pub mod prepare;
pub mod process;
pub mod reference;
pub mod report;
pub mod run;
pub mod svg;
pub mod terminals;
pub mod world;

pub use error::LoadgenError;
