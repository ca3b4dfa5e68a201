//! The `onshi.v1.Confirmation` gRPC service, by seam: [`service`] (the shared state and the
//! confirmation path every call shares), [`terminal`] (who is calling, its cache and rate
//! limit), [`attestation`] (the pure check of a reader's attestation), [`batch`] and
//! `batch_rpc` (batch confirmation in the background, and its calls), `handlers` (the RPC
//! handlers) and [`idempotency`].

pub mod attestation;
pub mod batch;
mod batch_rpc;
mod handlers;
pub mod idempotency;
pub mod service;
pub mod terminal;
