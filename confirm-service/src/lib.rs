//! The confirmation service: validates a card's certificate and its signature over a
//! challenge, identifies the terminal from its TLS client certificate, and answers with the
//! holder's insurance eligibility from the store, auditing every access first.
//!
//! Modules in folders by group (docs/architecture.md lists what each may touch):
//! [`validation`] (certificates and CRLs: path, CRL, profile, files, with [`der`] for strict DER,
//! [`cert_cache`] for verdicts per certificate and [`trust_reload`] for CRL updates),
//! [`domain`] (eligibility, consent, clinical data, the answer, quotas), [`grpc`] (terminal
//! identity and rate limit, attestation, batch, the handlers), [`store`], with [`challenge`],
//! [`audit`], [`outcome`] (the one mapping of failures to result codes and gRPC statuses),
//! [`clock`] (the one clock), [`server`] and [`transport`] (wiring) and [`cli`] (the commands).
#![forbid(unsafe_code)]

pub mod audit;
pub mod audit_chain;
pub mod challenge;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod fuzzing;
pub mod grpc;
pub mod holders;
pub mod keyfile;
pub mod observe;
pub mod outcome;
pub mod server;
pub mod store;
pub mod transport;
pub mod validation;

// The modules' paths before they were grouped in folders, kept so that `use` lines elsewhere
// (the other crates, the tests) read as before.
pub use cli::{check_cert, operator};
pub use domain::{
    answer, as_of, cert_grace, clinical, consent, documents, eligibility, home_care, institutions,
    medical_aid, quota,
};
pub use grpc::{batch, idempotency, service, terminal};
pub use validation::{cert_cache, der, trust_reload};
