//! Why the store refused or failed, in the store's own terms: the same variants whichever
//! database is behind it. A driver's error is reduced at the edge (the `From` conversions
//! below) to a [`DbError`]: what kind of failure, the database's code and its message on one
//! line, never a password.

use std::time::Duration;

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be opened: a missing file, a server that refused the connection, a
    /// setting the database would not take.
    #[error("cannot open the store at {location}: {reason}")]
    Open { location: String, reason: String },
    #[error(
        "the store at {location} has schema version {found}, newer than the {supported} this \
         build understands; use a newer build"
    )]
    SchemaTooNew {
        location: String,
        found: i64,
        supported: i64,
    },
    /// A statement or transaction failed in the database; `during` says what the store was
    /// doing.
    #[error("store {during} failed: {source}")]
    Database {
        during: &'static str,
        #[source]
        source: DbError,
    },
    /// Every pooled connection stayed busy (or none could be made) for `waited`.
    #[error("no connection to {location} could be had within {waited:?}: {reason}")]
    Busy {
        location: String,
        waited: Duration,
        reason: String,
    },
    /// The store location cannot be understood.
    #[error("bad store location {0:?}: expected a SQLite file path or a postgres:// URL")]
    BadLocation(String),
    /// A copy's destination already holds reference data (records would be appended twice).
    #[error("{location} already holds persons or terminals; copy into an empty database")]
    NotEmpty { location: String },
    /// A stored value that this code never writes: the file was edited or damaged.
    #[error("the store holds an invalid {what}: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error("no person with id {0}")]
    UnknownPerson(String),
    #[error("not a parseable X.509 certificate: {0}")]
    Certificate(String),
    /// A registry entry that may not be stored (an institution with a bad code or name).
    #[error("institution {code} cannot be registered: {reason}")]
    InvalidInstitution { code: String, reason: String },
    /// A failure inside the service's own store code (the system random generator failed
    /// making a challenge key, a thread reading the keys died).
    #[error("store: {0}")]
    Internal(&'static str),
}

impl StoreError {
    /// Names what the store was doing when a database error happened (the first name given
    /// wins, so the innermost operation is kept).
    pub(crate) fn during(self, what: &'static str) -> StoreError {
        match self {
            StoreError::Database {
                during: QUERY,
                source,
            } => StoreError::Database {
                during: what,
                source,
            },
            other => other,
        }
    }
}

/// The `during` of an error no operation has named yet.
const QUERY: &str = "query";

/// What kind of database failure, as far as the service acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DbErrorKind {
    /// A unique or primary key already holds the value (e.g. a duplicate confirmation id).
    UniqueViolation,
    /// A row names a row that does not exist.
    ForeignKeyViolation,
    /// A value the schema's `CHECK` refuses.
    CheckViolation,
    /// The connection to the server broke.
    Connection,
    Other,
}

/// A database's report of a failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DbError {
    pub kind: DbErrorKind,
    /// The database's own code: PostgreSQL's SQLSTATE, SQLite's extended result code.
    pub code: Option<String>,
    /// The database's message with its causes, on one line.
    pub message: String,
}

impl DbError {
    fn into_store_error(self) -> StoreError {
        StoreError::Database {
            during: QUERY,
            source: self,
        }
    }
}

/// An error and its causes on one line (a server error's DETAIL and HINT come on lines of
/// their own; drivers' own texts are often only the kind, e.g. "db error").
fn one_line(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::Error as E;
        if let E::FromSqlConversionFailure(..)
        | E::InvalidColumnType(..)
        | E::IntegralValueOutOfRange(..) = e
        {
            // A stored value of the wrong type: nothing this code writes.
            return StoreError::Corrupt {
                what: "column",
                reason: one_line(&e),
            };
        }
        let (kind, code) = match &e {
            E::SqliteFailure(f, _) => {
                let kind = match f.extended_code {
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => DbErrorKind::UniqueViolation,
                    rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => DbErrorKind::ForeignKeyViolation,
                    rusqlite::ffi::SQLITE_CONSTRAINT_CHECK => DbErrorKind::CheckViolation,
                    _ => DbErrorKind::Other,
                };
                (kind, Some(f.extended_code.to_string()))
            }
            _ => (DbErrorKind::Other, None),
        };
        DbError {
            kind,
            code,
            message: one_line(&e),
        }
        .into_store_error()
    }
}

impl From<::postgres::Error> for StoreError {
    fn from(e: ::postgres::Error) -> Self {
        use ::postgres::error::SqlState;
        let (kind, code) = match e.as_db_error() {
            Some(db) => {
                let kind = match db.code() {
                    c if c == &SqlState::UNIQUE_VIOLATION => DbErrorKind::UniqueViolation,
                    c if c == &SqlState::FOREIGN_KEY_VIOLATION => DbErrorKind::ForeignKeyViolation,
                    c if c == &SqlState::CHECK_VIOLATION => DbErrorKind::CheckViolation,
                    _ => DbErrorKind::Other,
                };
                (kind, Some(db.code().code().to_owned()))
            }
            None if e.is_closed() => (DbErrorKind::Connection, None),
            None => (DbErrorKind::Other, None),
        };
        DbError {
            kind,
            code,
            message: one_line(&e),
        }
        .into_store_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_innermost_operation_names_the_failure() {
        let e = DbError {
            kind: DbErrorKind::UniqueViolation,
            code: None,
            message: "UNIQUE constraint failed: audit.confirmation_id".into(),
        }
        .into_store_error()
        .during("commit a group")
        .during("outer");
        assert_eq!(
            e.to_string(),
            "store commit a group failed: UNIQUE constraint failed: audit.confirmation_id"
        );
        // Other errors are left as they are.
        let e = StoreError::UnknownPerson("P1".into()).during("load");
        assert!(matches!(e, StoreError::UnknownPerson(id) if id == "P1"));
    }

    #[test]
    fn sqlite_constraint_failures_are_classified() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE p (id TEXT PRIMARY KEY, n INTEGER CHECK (n > 0));
             INSERT INTO p VALUES ('a', 1);",
        )
        .unwrap();
        let dup: StoreError = c
            .execute("INSERT INTO p VALUES ('a', 2)", [])
            .unwrap_err()
            .into();
        assert!(
            matches!(&dup, StoreError::Database { source, .. }
                if source.kind == DbErrorKind::UniqueViolation),
            "{dup:?}"
        );
        let check: StoreError = c
            .execute("INSERT INTO p VALUES ('b', 0)", [])
            .unwrap_err()
            .into();
        assert!(
            matches!(&check, StoreError::Database { source, .. }
                if source.kind == DbErrorKind::CheckViolation),
            "{check:?}"
        );
        let typed: StoreError = c
            .query_row("SELECT id FROM p", [], |r| r.get::<_, i64>(0))
            .unwrap_err()
            .into();
        assert!(
            matches!(typed, StoreError::Corrupt { what: "column", .. }),
            "{typed:?}"
        );
    }

    #[test]
    fn messages_are_one_line() {
        #[derive(Debug)]
        struct Outer(Inner);
        #[derive(Debug)]
        struct Inner;
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("db error")
            }
        }
        impl std::fmt::Display for Inner {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("ERROR: duplicate key\nDETAIL: Key (id)=(C1) already exists.")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        impl std::error::Error for Inner {}
        assert_eq!(
            one_line(&Outer(Inner)),
            "db error: ERROR: duplicate key; DETAIL: Key (id)=(C1) already exists."
        );
    }
}
