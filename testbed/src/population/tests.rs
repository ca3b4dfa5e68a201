//! Tests of the population generator, on small populations.
