//! The catalogue: every case of the corpus, by family, in manifest order.
//!
//! A case is a row of a table in its family's module, with the one-line reason it exists next
//! to its data. Most rows are [`LeafCase`](crate::LeafCase)s (a card certificate that differs
//! from the good g1 card in a field or two); the rest are [`edit::EditCase`]s (the good card
//! changed byte-wise, before or after signing). `authorities` builds the CAs, CRLs and trust
//! configurations every row refers to.

mod authorities;
mod edit;
mod encoding;
mod paths;
mod profile;
mod validity;

use time::macros::datetime;
use time::OffsetDateTime;

use crate::{Generator, CHECK_AT};

/// 1 April of `y`, midnight UTC: the corpus's validity boundaries.
fn year(y: i32) -> OffsetDateTime {
    datetime!(2000-04-01 00:00:00 UTC)
        .replace_year(y)
        .unwrap_or(CHECK_AT)
}

impl Generator {
    /// Writes every file and case of the corpus.
    pub(crate) fn build(&mut self) {
        let pki = authorities::Pki::issue(self);
        paths::build(self, &pki);
        validity::build(self, &pki);
        profile::build(self, &pki);
        encoding::build(self, &pki);
    }
}
