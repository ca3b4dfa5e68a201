//! Builds a consistent synthetic world for the simulator: the mock issuing authority's CA and
//! CRL, virtual card profiles with user-authentication certificates, a population with insurance
//! records in the service's store, the network PKI with the service's and the terminals'
//! certificates, and the configuration files that tie them together. `docs/world.md` documents
//! the result; [`manifest::WorldManifest`] lets tests and the demo find their way in it.
//!
//! Modules: [`keys`] (deterministic RSA keys), [`der`] (the few hand-encoded structures),
//! [`pki`] (certificates and CRL), [`population`] (persons, households, records, clinical
//! data), [`progress`] (stderr output), [`config`]
//! (`service.toml`, `agent.toml`), [`manifest`] (`world.json`), [`world`] (the builder) and
//! [`terminals`] (revoking and reissuing a built world's terminal certificates).
#![forbid(unsafe_code)]

pub mod card_data;
pub mod config;
pub mod der;
mod error;
pub mod keys;
pub mod manifest;
pub mod phones;
pub mod pki;
pub mod population;
pub mod progress;
pub mod terminals;
pub mod world;

pub use error::TestbedError;
pub use manifest::WorldManifest;
pub use world::{build_world, WorldOptions};
