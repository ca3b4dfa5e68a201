//! The append-only audit log: every confirmation attempt by an identified terminal, written
//! durably **before** the answer leaves the service.
//!
//! "Durably" means committed with `synchronous=FULL` in WAL mode, i.e. fsync'd. To keep
//! throughput, one writer thread commits whatever records are waiting as one transaction
//! (group commit): a burst of N requests costs one fsync, not N. A request's future resolves
//! only after the transaction holding its record has committed.

use std::path::Path;
use std::sync::mpsc;
use std::thread;

use rusqlite::{params, Connection};
use time::OffsetDateTime;
use tokio::sync::oneshot;

/// Most records committed in one transaction.
const MAX_GROUP: usize = 512;

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The id quoted to staff in the answer.
    pub confirmation_id: String,
    pub at: OffsetDateTime,
    pub institution_code: String,
    pub terminal_id: String,
    /// Absent when the request was refused before a person was identified.
    pub person_id: Option<String>,
    /// `pin` for PIN mode.
    pub method: String,
    /// `confirm`, `register`, ...
    pub purpose: String,
    /// The result code's proto name.
    pub result_code: String,
    /// The binding's consent bitmask.
    pub consents: u8,
    /// Lowercase hex SHA-256 of the card certificate, when one was presented.
    pub certificate_sha256: Option<String>,
    /// What was returned (validity, insurers), as JSON.
    pub returned: String,
}

/// Which audit records an operator asks for; every given condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub person_id: Option<String>,
    pub institution_code: Option<String>,
    /// Records at or after this instant.
    pub from: Option<OffsetDateTime>,
    /// Records before this instant.
    pub until: Option<OffsetDateTime>,
    /// At most this many records (the oldest matching ones).
    pub limit: u32,
}

/// Why an audit record could not be written. The request must then fail: no answer leaves
/// without its record.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("audit store: {0}")]
    Store(String),
    #[error("the audit writer has stopped")]
    WriterGone,
}

struct Pending {
    record: AuditRecord,
    done: oneshot::Sender<Result<(), AuditError>>,
}

/// Handle to the audit writer. Cloneable; the writer thread stops when every handle is gone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("confirmation_id", &self.record.confirmation_id)
            .finish()
    }
}

/// Creates the audit table if needed.
pub fn ensure_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS audit (
             seq                INTEGER PRIMARY KEY AUTOINCREMENT,
             confirmation_id    TEXT NOT NULL UNIQUE,
             at                 TEXT NOT NULL,
             institution_code   TEXT NOT NULL,
             terminal_id        TEXT NOT NULL,
             person_id          TEXT,
             method             TEXT NOT NULL,
             purpose            TEXT NOT NULL,
             result_code        TEXT NOT NULL,
             consents           INTEGER NOT NULL,
             certificate_sha256 TEXT,
             returned           TEXT NOT NULL
         );
         CREATE INDEX IF NOT EXISTS audit_person ON audit(person_id, at);
         CREATE INDEX IF NOT EXISTS audit_institution ON audit(institution_code, at);",
    )
}

impl AuditLog {
    /// Opens the audit table in the store at `path` and starts the writer thread.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let conn = Connection::open(path).map_err(|e| AuditError::Store(e.to_string()))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
        )
        .map_err(|e| AuditError::Store(e.to_string()))?;
        ensure_schema(&conn).map_err(|e| AuditError::Store(e.to_string()))?;
        let (tx, rx) = mpsc::channel::<Pending>();
        thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer(conn, rx))
            .map_err(|e| AuditError::Store(format!("cannot start the audit writer: {e}")))?;
        Ok(Self { tx })
    }

    /// Appends a record; resolves once it is durable.
    pub async fn append(&self, record: AuditRecord) -> Result<(), AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Pending { record, done })
            .map_err(|_| AuditError::WriterGone)?;
        wait.await.map_err(|_| AuditError::WriterGone)?
    }
}

fn writer(mut conn: Connection, rx: mpsc::Receiver<Pending>) {
    // Block for the first record, then take whatever else is already waiting.
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        let result = commit(&mut conn, &group).map_err(|e| AuditError::Store(e.to_string()));
        for p in group {
            // A request whose client went away no longer waits; nothing to do then.
            let _ = p.done.send(result.clone());
        }
    }
}

fn commit(conn: &mut Connection, group: &[Pending]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO audit (confirmation_id, at, institution_code, terminal_id, person_id,
                 method, purpose, result_code, consents, certificate_sha256, returned)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for p in group {
            let r = &p.record;
            stmt.execute(params![
                r.confirmation_id,
                r.at.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                r.institution_code,
                r.terminal_id,
                r.person_id,
                r.method,
                r.purpose,
                r.result_code,
                r.consents,
                r.certificate_sha256,
                r.returned,
            ])?;
        }
    }
    tx.commit()
}

/// Reads audit records back (operators, tests), oldest first.
pub fn read_all(path: &Path) -> rusqlite::Result<Vec<AuditRecord>> {
    let conn = Connection::open(path)?;
    ensure_schema(&conn)?;
    let mut stmt = conn.prepare(
        "SELECT confirmation_id, at, institution_code, terminal_id, person_id, method, purpose,
                result_code, consents, certificate_sha256, returned FROM audit ORDER BY seq",
    )?;
    let rows = stmt.query_map([], |r| {
        let at: String = r.get(1)?;
        Ok(AuditRecord {
            confirmation_id: r.get(0)?,
            at: OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            institution_code: r.get(2)?,
            terminal_id: r.get(3)?,
            person_id: r.get(4)?,
            method: r.get(5)?,
            purpose: r.get(6)?,
            result_code: r.get(7)?,
            consents: r.get(8)?,
            certificate_sha256: r.get(9)?,
            returned: r.get(10)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> AuditRecord {
        AuditRecord {
            confirmation_id: id.into(),
            at: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
            institution_code: "0110113719".into(),
            terminal_id: "T01".into(),
            person_id: Some("P000001".into()),
            method: "pin".into(),
            purpose: "confirm".into(),
            result_code: "RESULT_CODE_OK".into(),
            consents: 9,
            certificate_sha256: Some("ab".into()),
            returned: "{}".into(),
        }
    }

    #[tokio::test]
    async fn concurrent_appends_are_all_durable_and_readable() {
        let path = std::env::temp_dir().join(format!("onshi-audit-{}.sqlite", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = AuditLog::open(&path).unwrap();
        let mut handles = Vec::new();
        for i in 0..50 {
            let log = log.clone();
            handles.push(tokio::spawn(async move {
                log.append(record(&format!("C{i:03}"))).await
            }));
        }
        for h in handles {
            h.await.unwrap().unwrap();
        }
        let all = read_all(&path).unwrap();
        assert_eq!(all.len(), 50);
        assert!(all.iter().any(|r| r.confirmation_id == "C049"));
        assert_eq!(all[0].at, record("x").at);
        // A duplicate id violates the UNIQUE constraint: the append must fail, not pass silently.
        assert!(log.append(record("C000")).await.is_err());
        drop(log);
        let _ = std::fs::remove_file(path);
    }
}
