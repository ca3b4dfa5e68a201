//! The confirmation service: validates a card's certificate and its signature over a
//! challenge, identifies the terminal from its TLS client certificate, and answers with the
//! holder's insurance eligibility from the store, auditing every access first.
//!
//! Modules by domain concept: [`validation`] (certificates and CRLs, with [`der`] for strict
//! DER, [`cert_cache`] for verdicts per certificate and [`trust_reload`] for CRL updates),
//! [`challenge`],
//! [`terminal`] (identity), [`eligibility`] (the domain), [`store`], [`audit`], [`outcome`]
//! (the one mapping of failures to result codes and gRPC statuses), [`service`] (the gRPC
//! handlers) and [`server`] (wiring).
#![forbid(unsafe_code)]

pub mod answer;
pub mod audit;
pub mod audit_chain;
pub mod batch;
pub mod cert_cache;
pub mod challenge;
pub mod check_cert;
pub mod clinical;
pub mod clock;
pub mod config;
pub mod consent;
pub mod der;
pub mod eligibility;
pub mod fuzzing;
pub mod idempotency;
pub mod keyfile;
pub mod operator;
pub mod outcome;
pub mod quota;
pub mod server;
pub mod service;
pub mod store;
pub mod terminal;
pub mod transport;
pub mod trust_reload;
pub mod validation;
