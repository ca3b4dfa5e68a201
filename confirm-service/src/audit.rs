//! The append-only audit log: every confirmation attempt by an identified terminal, written
//! durably **before** the answer leaves the service.
//!
//! "Durably" means committed by [`Store::append_audit`] (fsync'd: `synchronous=FULL` in
//! SQLite, a committed transaction in PostgreSQL). To keep throughput, one writer thread
//! commits whatever records are waiting as one transaction (group commit): a burst of N
//! requests costs one sync, not N. A request's future resolves only after the transaction
//! holding its record has committed.

use std::sync::{mpsc, Arc};
use std::thread;

use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::store::Store;

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
    /// At most this many records (the oldest matching ones); 0 means no limit.
    pub limit: u32,
}

impl AuditQuery {
    /// The limit as the stores' SQL takes it.
    pub fn row_limit(&self) -> i64 {
        match self.limit {
            0 => i64::MAX,
            n => i64::from(n),
        }
    }
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

impl AuditLog {
    /// Starts the writer thread over `store`.
    pub fn start(store: Arc<dyn Store>) -> Result<Self, AuditError> {
        let (tx, rx) = mpsc::channel::<Pending>();
        thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer(store, rx))
            .map_err(|e| AuditError::Store(format!("cannot start the audit writer: {e}")))?;
        Ok(Self { tx })
    }

    /// Appends several records (they travel in the same group commit when the writer is idle);
    /// resolves once all are durable, or with the first failure.
    pub async fn append_many(&self, records: Vec<AuditRecord>) -> Result<(), AuditError> {
        let mut waits = Vec::with_capacity(records.len());
        for record in records {
            let (done, wait) = oneshot::channel();
            self.tx
                .send(Pending { record, done })
                .map_err(|_| AuditError::WriterGone)?;
            waits.push(wait);
        }
        for wait in waits {
            wait.await.map_err(|_| AuditError::WriterGone)??;
        }
        Ok(())
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

fn writer(store: Arc<dyn Store>, rx: mpsc::Receiver<Pending>) {
    // Block for the first record, then take whatever else is already waiting.
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        let (records, waiters): (Vec<AuditRecord>, Vec<_>) =
            group.into_iter().map(|p| (p.record, p.done)).unzip();
        let result = store
            .append_audit(&records)
            .map_err(|e| AuditError::Store(e.to_string()));
        for done in waiters {
            // A request whose client went away no longer waits; nothing to do then.
            let _ = done.send(result.clone());
        }
    }
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
        let store: Arc<dyn Store> = Arc::new(crate::store::SqliteStore::open(&path).unwrap());
        let log = AuditLog::start(Arc::clone(&store)).unwrap();
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
        let all = store
            .query_audit(&AuditQuery {
                limit: 1000,
                ..AuditQuery::default()
            })
            .unwrap();
        assert_eq!(all.len(), 50);
        assert!(all.iter().any(|r| r.confirmation_id == "C049"));
        assert_eq!(all[0].at, record("x").at);
        // A duplicate id violates the UNIQUE constraint: the append must fail, not pass silently.
        assert!(log.append(record("C000")).await.is_err());
        drop(log);
        let _ = std::fs::remove_file(path);
    }
}
