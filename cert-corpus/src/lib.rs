//! The certificate corpus generator (see docs/validation.md).
