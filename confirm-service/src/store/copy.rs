//! `confirm-service store copy`: moves a world's reference data from a SQLite file (what the
//! testbed builds) into PostgreSQL, so several service instances can share it
//! (docs/storage.md).
//!
//! The copy streams: [`SqliteStore::export`] hands over chunks of persons with their records,
//! each written by one [`Store::load`] transaction, so a world of millions of persons never
//! sits in memory. What is copied is the reference data (persons with their registration
//! flag, qualification records, card links, terminals, medications, checkups); the service's
//! own history (audit log, consents, challenges, batch jobs) stays where it was written.
//!
//! Each chunk commits on its own: a copy that fails half-way leaves the chunks before the
//! failure in the destination. Copying refuses a destination that already holds reference
//! data (records would be appended twice), so recreate the database and copy again.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use super::postgres::PgStore;
use super::{is_postgres_url, LoadBatch, SqliteStore, Store, StoreError};

/// Persons per chunk: a few thousand rows per transaction.
pub const CHUNK_PERSONS: usize = 1000;

/// What a copy wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub persons: u64,
    pub qualifications: u64,
    pub cards: u64,
    pub terminals: u64,
    pub medications: u64,
    pub checkups: u64,
    /// Transactions committed in the destination.
    pub chunks: u64,
}

impl CopyStats {
    fn add(&mut self, batch: &LoadBatch) {
        self.persons += batch.persons.len() as u64;
        self.qualifications += batch.qualifications.len() as u64;
        self.cards += batch.cards.len() as u64;
        self.terminals += batch.terminals.len() as u64;
        self.medications += batch.medications.len() as u64;
        self.checkups += batch.checkups.len() as u64;
        self.chunks += 1;
    }
}

impl fmt::Display for CopyStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} persons, {} qualification records, {} cards, {} terminals, {} medications, \
             {} checkups in {} transactions",
            self.persons,
            self.qualifications,
            self.cards,
            self.terminals,
            self.medications,
            self.checkups,
            self.chunks
        )
    }
}

/// Copies the reference data of the SQLite store at `from` into the (empty) PostgreSQL
/// database at `to`, creating its schema. With `progress`, one line per chunk goes to stderr.
pub fn run_copy(from: &Path, to: &str, progress: bool) -> Result<CopyStats, StoreError> {
    if !is_postgres_url(to) {
        return Err(StoreError::BadLocation(format!(
            "{to} (the destination of a copy must be a postgres:// URL)"
        )));
    }
    // Opening a SQLite store creates a missing file: a mistyped source would copy nothing.
    if !from.is_file() {
        return Err(StoreError::Open {
            location: from.display().to_string(),
            reason: "no such file".into(),
        });
    }
    let source = SqliteStore::open(from)?;
    let destination = PgStore::open(to)?;
    copy(&source, &destination, CHUNK_PERSONS, progress)
}

/// [`run_copy`] between open stores, in chunks of `chunk_persons` persons.
pub fn copy(
    source: &SqliteStore,
    destination: &PgStore,
    chunk_persons: usize,
    progress: bool,
) -> Result<CopyStats, StoreError> {
    if destination.holds_reference_data()? {
        return Err(StoreError::NotEmpty {
            location: destination.target().to_owned(),
        });
    }
    let started = Instant::now();
    let mut stats = CopyStats::default();
    let mut stderr = std::io::stderr();
    source.export(chunk_persons, |batch| {
        destination.load(&batch)?;
        stats.add(&batch);
        if progress {
            // Progress is a courtesy: a closed stderr must not fail the copy.
            let _ = writeln!(
                stderr,
                "store copy: {} persons, {} rows so far ({:.1} s)",
                stats.persons,
                stats.persons
                    + stats.qualifications
                    + stats.cards
                    + stats.terminals
                    + stats.medications
                    + stats.checkups,
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    })?;
    if progress {
        let _ = writeln!(
            stderr,
            "store copy: done in {:.1} s: {stats}",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(stats)
}
