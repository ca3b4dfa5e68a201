//! The append-only audit log: every confirmation attempt by an identified terminal, written
//! durably **before** the answer leaves the service; and the service's one writer.
//!
//! "Durably" means committed by [`Store::commit_group`] (fsync'd: `synchronous=FULL` in
//! SQLite, a committed transaction in PostgreSQL). To keep throughput, one writer thread
//! commits whatever is waiting as one transaction (group commit): a burst of N requests costs
//! one sync, not N. A request's future resolves only after the transaction holding its writes
//! has committed.
//!
//! The writer also carries the hot path's other writes, so they never contend for the store's
//! write lock: a confirmation's challenge consumed (its nonce inserted) in the same
//! transaction as its audit record (with the consents it carried, recorded only when the
//! challenge was good). A refused challenge rewrites the record before it is written
//! ([`challenge_refused`]), so the log says what the terminal was really told.

use std::sync::Arc;
use std::thread;

use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::challenge::ChallengeError;
use crate::outcome::Refusal;
use crate::store::{AuditWrite, GroupWrite, Refuse, Registration, Store, StoreError};

/// Most records committed in one transaction.
const MAX_GROUP: usize = 512;

/// Most writes waiting for the writer. When it is full, a request waits to hand over its
/// write (back-pressure on the requests) instead of the queue growing without bound while
/// the store is slow.
pub const MAX_QUEUE: usize = 4 * MAX_GROUP;

/// What the writer needs of a store: a group commit and the purge of old challenges.
pub trait Committer: Send + Sync + 'static {
    fn commit_group(
        &self,
        writes: &mut [GroupWrite],
        refuse: &Refuse,
    ) -> Result<Vec<Result<(), ChallengeError>>, StoreError>;
    fn purge_challenges(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}

impl<S: Store + ?Sized + 'static> Committer for S {
    fn commit_group(
        &self,
        writes: &mut [GroupWrite],
        refuse: &Refuse,
    ) -> Result<Vec<Result<(), ChallengeError>>, StoreError> {
        Store::commit_group(self, writes, refuse)
    }

    fn purge_challenges(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        Store::purge_challenges(self, before)
    }
}

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
    /// `pin` (PIN mode), `numbers` (card-less), `face` or `visual:<staff id>` (attested by the
    /// reader; docs/storage.md lists the rest).
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
    /// The visit time the terminal claimed (a confirmation caught up after an outage), beside
    /// `at`, the service's own receipt time; `None` for every other request.
    pub claimed_at: Option<OffsetDateTime>,
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

/// A challenge's verdict once its group committed, or why the group could not be written.
pub type Verdict = Result<Result<(), ChallengeError>, AuditError>;

/// What a write did once its group committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Its challenge's verdict (`Ok` without one).
    pub verdict: Result<(), ChallengeError>,
    /// What its registration did (`None` without one, or when the challenge was refused).
    pub registration: Option<Registration>,
}

enum Job {
    Write {
        write: GroupWrite,
        done: oneshot::Sender<Result<Committed, AuditError>>,
    },
    /// Forget challenges that expired before this instant (outside any group).
    Purge(OffsetDateTime),
}

/// Handle to the writer. Cloneable; the writer thread stops when every handle is gone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Job>,
}

impl AuditLog {
    /// Starts the writer thread over `store`.
    pub fn start(store: Arc<dyn Store>) -> Result<Self, AuditError> {
        Self::start_with(store)
    }

    /// Starts the writer thread over anything that commits groups.
    pub fn start_with<C: Committer + ?Sized>(store: Arc<C>) -> Result<Self, AuditError> {
        let (tx, rx) = mpsc::channel::<Job>(MAX_QUEUE);
        thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer(store, rx))
            .map_err(|e| AuditError::Store(format!("cannot start the audit writer: {e}")))?;
        Ok(Self { tx })
    }

    /// Hands a write to the writer, waiting for room in its queue.
    async fn send(
        &self,
        write: GroupWrite,
    ) -> Result<oneshot::Receiver<Result<Committed, AuditError>>, AuditError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Job::Write { write, done })
            .await
            .map_err(|_| AuditError::WriterGone)?;
        Ok(wait)
    }

    /// Writes waiting for the writer now.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    async fn committed(
        wait: oneshot::Receiver<Result<Committed, AuditError>>,
    ) -> Result<Committed, AuditError> {
        wait.await.map_err(|_| AuditError::WriterGone)?
    }

    async fn wait(wait: oneshot::Receiver<Result<Committed, AuditError>>) -> Verdict {
        Self::committed(wait).await.map(|c| c.verdict)
    }

    /// Writes a request's trace (challenge, consents, record); resolves once it is durable,
    /// with the challenge's verdict.
    pub async fn append_with(&self, write: AuditWrite) -> Verdict {
        Self::wait(self.send(GroupWrite::Audit(Box::new(write))).await?).await
    }

    /// As [`append_with`](Self::append_with), also telling what the write's registration did:
    /// the registration and its record are one commit, both or neither.
    pub async fn commit(&self, write: AuditWrite) -> Result<Committed, AuditError> {
        Self::committed(self.send(GroupWrite::Audit(Box::new(write))).await?).await
    }

    /// Appends several records (they travel in the same group commit when the writer is idle);
    /// resolves once all are durable, or with the first failure.
    pub async fn append_many(&self, records: Vec<AuditRecord>) -> Result<(), AuditError> {
        let mut waits = Vec::with_capacity(records.len());
        for record in records {
            waits.push(
                self.send(GroupWrite::Audit(Box::new(AuditWrite::record(record))))
                    .await?,
            );
        }
        for wait in waits {
            // Records without a challenge have no verdict to give.
            let _ = Self::wait(wait).await?;
        }
        Ok(())
    }

    /// Appends a record; resolves once it is durable.
    pub async fn append(&self, record: AuditRecord) -> Result<(), AuditError> {
        self.append_many(vec![record]).await
    }

    /// Asks the writer to forget challenges that expired before `before`, when it next can.
    pub fn purge_challenges(&self, before: OffsetDateTime) {
        // A stopped writer has nothing left to purge; a full queue will be purged next time.
        let _ = self.tx.try_send(Job::Purge(before));
    }
}

/// The audit record of a request whose challenge was refused: the refusal's code and
/// summary, and no person (the answer disclosed none). Whatever the request would otherwise
/// have been answered, the terminal is told the challenge's refusal.
pub fn challenge_refused(record: &mut AuditRecord, e: &ChallengeError) {
    let refusal = Refusal::Challenge(e.clone());
    record.result_code = refusal.result_code().as_str_name().to_owned();
    record.returned = refusal.audit_summary();
    record.person_id = None;
}

fn writer<C: Committer + ?Sized>(store: Arc<C>, mut rx: mpsc::Receiver<Job>) {
    let mut writes = Vec::new();
    let mut waiters = Vec::new();
    let mut purge: Option<OffsetDateTime> = None;
    // Block for the first job, then take whatever else is already waiting.
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Write { write, done } => {
                    writes.push(write);
                    waiters.push(done);
                }
                Job::Purge(before) => purge = Some(purge.map_or(before, |p| p.max(before))),
            }
            if writes.len() < MAX_GROUP {
                next = rx.try_recv().ok();
            }
        }
        if !writes.is_empty() {
            let started = std::time::Instant::now();
            let verdicts = store
                .commit_group(&mut writes, &challenge_refused)
                .map_err(|e| AuditError::Store(e.to_string()));
            crate::observe::group_commit(writes.len(), started.elapsed().as_secs_f64());
            match verdicts {
                Ok(verdicts) => {
                    for ((done, verdict), write) in waiters.drain(..).zip(verdicts).zip(&writes) {
                        let registration = match write {
                            GroupWrite::Audit(a) => a.registration.as_ref().and_then(|r| r.outcome),
                            _ => None,
                        };
                        // A request whose client went away no longer waits; nothing to do.
                        let _ = done.send(Ok(Committed {
                            verdict,
                            registration,
                        }));
                    }
                }
                Err(e) => {
                    for done in waiters.drain(..) {
                        let _ = done.send(Err(e.clone()));
                    }
                }
            }
            writes.clear();
        }
        if let Some(before) = purge.take() {
            if let Err(e) = store.purge_challenges(before) {
                tracing::warn!(error = %e, "purging old challenges failed; will retry");
            }
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
            claimed_at: None,
        }
    }

    /// A store whose commits wait at a gate, counting what reached it.
    struct Gated {
        open: std::sync::Mutex<bool>,
        opened: std::sync::Condvar,
        committed: std::sync::atomic::AtomicUsize,
    }

    impl Committer for Gated {
        fn commit_group(
            &self,
            writes: &mut [GroupWrite],
            _refuse: &Refuse,
        ) -> Result<Vec<Result<(), ChallengeError>>, StoreError> {
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
            self.committed
                .fetch_add(writes.len(), std::sync::atomic::Ordering::SeqCst);
            Ok(writes.iter().map(|_| Ok(())).collect())
        }

        fn purge_challenges(&self, _before: OffsetDateTime) -> Result<u64, StoreError> {
            Ok(0)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_store_holds_requests_back_instead_of_growing_the_queue() {
        let store = Arc::new(Gated {
            open: std::sync::Mutex::new(false),
            opened: std::sync::Condvar::new(),
            committed: std::sync::atomic::AtomicUsize::new(0),
        });
        let log = AuditLog::start_with(Arc::clone(&store)).unwrap();
        let total = MAX_QUEUE + MAX_GROUP + 300;
        let handed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..total {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                log.append(record(&format!("C{i:05}"))).await
            }));
        }
        // Let every task try to hand over its write.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while log.queued() < MAX_QUEUE {
            assert!(
                std::time::Instant::now() < deadline,
                "the queue never filled"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        // The queue is full and stays at its bound; the rest wait (nothing is committed).
        assert_eq!(log.queued(), MAX_QUEUE);
        assert_eq!(store.committed.load(std::sync::atomic::Ordering::SeqCst), 0);
        let done = tasks.iter().filter(|t| t.is_finished()).count();
        assert_eq!(done, 0);
        // Open the gate: every write is committed, none lost.
        *store.open.lock().unwrap() = true;
        store.opened.notify_all();
        for t in tasks {
            t.await.unwrap().unwrap();
            handed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        assert_eq!(
            store.committed.load(std::sync::atomic::Ordering::SeqCst),
            total
        );
        assert_eq!(handed.load(std::sync::atomic::Ordering::SeqCst), total);
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
