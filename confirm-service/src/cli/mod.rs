//! The bodies of the `confirm-service` commands; `main.rs` parses the command line and
//! dispatches here.

pub mod check_cert;
pub mod operator;
