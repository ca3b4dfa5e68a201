//! The load generator (see docs/load-harness.md).
