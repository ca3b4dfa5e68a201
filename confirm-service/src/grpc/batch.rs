//! Batch confirmation (一括照会): a submission is stored as a job with its queries and answered
//! in the background, page by page. The job lives in the store, so it survives a restart (every
//! instance resumes unfinished jobs at start and rescans now and then) and is processed by one
//! instance at a time (a lease in the store). Each answered query is an access to a person's
//! data, audited durably before its answer is stored, i.e. before anyone can fetch it.
//!
//! The pages are answered by a few workers (`[batch] workers`) that serve the institutions
//! with work in turn, one page each, so one institution's thirty batches of 10,000 queries
//! neither take every store thread from other institutions' confirmations nor make another
//! institution's batch wait behind them. Within an institution, jobs are started in the order
//! they were submitted (with several workers and no other institution waiting, two of its jobs
//! may be answered at once). A reader streaming results is woken when answers of its job are
//! stored.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration as StdDuration;

use onshi_proto::v1::{self as pb, BatchItemResult, ConfirmationResult, ResultCode};
use prost::Message;
use time::Duration;
use tokio::sync::{mpsc, watch, Notify};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::answer;
use crate::clock::Clock;
use crate::config::BatchConfig;
use crate::outcome::Refusal;
use crate::service::{
    audit_record, blocking, confirm_numbers, new_confirmation_id, unavailable, AuditContext,
    ServiceState,
};
use crate::store::{BatchItem, BatchJob};
use crate::terminal::TerminalIdentity;

/// Queries answered per store round trip, and per turn of a worker.
const PAGE: u32 = 200;
/// How long a worker's claim on a job lasts without renewal. Renewed at each page and again
/// before the page's answers are audited, so only a page whose audit and storing together
/// take longer than this can be answered twice (by this worker and the lease's next holder;
/// the store keeps the first answer, the audit log has both accesses).
const LEASE: Duration = Duration::seconds(60);
/// How often a streaming reader looks at the store even without news from this instance's
/// workers: answers another instance sharing the store has written.
const FALLBACK_POLL: StdDuration = StdDuration::from_secs(2);

/// The batch jobs waiting for a worker: one queue per institution, institutions served in
/// turn. Jobs are known by their reception numbers; the work itself is in the store.
#[derive(Debug)]
pub struct Scheduler {
    shared: Arc<Shared>,
    /// The service's clock (lease holders' ids).
    clock: Arc<dyn Clock>,
    workers: u16,
    rescan: StdDuration,
}

#[derive(Debug)]
struct Shared {
    queues: Mutex<Queues>,
    /// A job was queued.
    ready: Notify,
    /// Per job being followed by a result stream: counts the pages of answers this instance
    /// stored for it. An entry lives while a stream follows the job.
    progress: Mutex<HashMap<String, watch::Sender<u64>>>,
}

#[derive(Debug, Default)]
struct Queues {
    /// The institutions with queued jobs, in the order they are served next.
    turn: VecDeque<String>,
    /// Each institution's queued jobs, oldest first.
    jobs: HashMap<String, VecDeque<Queued>>,
    /// Every job queued or being answered by a worker here, so none is queued twice.
    known: HashSet<String>,
}

/// A job as a worker holds it between its pages.
#[derive(Debug, Clone)]
struct Queued {
    reception_number: String,
    institution: String,
    /// The lease holder: this job's worker turn, not the instance, so that a rescan of the
    /// same instance never starts a second worker on the job.
    holder: String,
    /// The first ordinal not yet looked at.
    from: u32,
}

impl Scheduler {
    pub fn new(config: BatchConfig, clock: Arc<dyn Clock>) -> Self {
        Scheduler {
            clock,
            shared: Arc::new(Shared {
                queues: Mutex::new(Queues::default()),
                ready: Notify::new(),
                progress: Mutex::new(HashMap::new()),
            }),
            workers: config.workers.max(1),
            rescan: StdDuration::from_secs(u64::from(config.rescan_seconds.max(1))),
        }
    }

    /// Queues a job (unless it is queued or being answered here already).
    pub fn enqueue(&self, job: &BatchJob) {
        let holder = match new_confirmation_id(self.clock.now()) {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(error = %e, "no lease id for a batch job; the rescan retries");
                return;
            }
        };
        let queued = Queued {
            reception_number: job.reception_number.clone(),
            institution: job.institution_code.clone(),
            holder,
            from: 0,
        };
        if self.shared.push(queued, false) {
            self.shared.ready.notify_one();
        }
    }

    /// Jobs queued or being answered here.
    pub fn pending(&self) -> usize {
        self.shared.lock().known.len()
    }

    /// A receiver that changes whenever this instance stores answers of job
    /// `reception_number`.
    pub fn progress(&self, reception_number: &str) -> watch::Receiver<u64> {
        let mut map = self.shared.progress_lock();
        map.entry(reception_number.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes the streams following job `reception_number`; forgets jobs nobody follows.
    fn announce(&self, reception_number: &str) {
        let mut map = self.shared.progress_lock();
        if let Some(tx) = map.get(reception_number) {
            tx.send_modify(|n| *n += 1);
        }
        map.retain(|_, tx| tx.receiver_count() > 0);
    }
}

impl Shared {
    fn progress_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        // Each update is one insert, one send or one removal.
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        // Every update below leaves the queues consistent at each step.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a job at the back of its institution's queue (a new job), or at the front (a
    /// job a worker is putting back between pages, `resumed`). False if already known.
    fn push(&self, job: Queued, resumed: bool) -> bool {
        let mut q = self.lock();
        if !resumed && !q.known.insert(job.reception_number.clone()) {
            return false;
        }
        let institution = job.institution.clone();
        let jobs = q.jobs.entry(institution.clone()).or_default();
        let was_idle = jobs.is_empty();
        if resumed {
            jobs.push_front(job);
        } else {
            jobs.push_back(job);
        }
        if was_idle && !q.turn.contains(&institution) {
            q.turn.push_back(institution);
        }
        crate::observe::batch_queue(q.jobs.values().map(VecDeque::len).sum(), q.known.len());
        true
    }

    /// The next institution's oldest job; the institution goes to the back of the turn.
    fn take(&self) -> Option<Queued> {
        let mut q = self.lock();
        let institution = q.turn.pop_front()?;
        let jobs = q.jobs.get_mut(&institution)?;
        let job = jobs.pop_front();
        if jobs.is_empty() {
            q.jobs.remove(&institution);
        } else {
            q.turn.push_back(institution);
        }
        crate::observe::batch_queue(q.jobs.values().map(VecDeque::len).sum(), q.known.len());
        job
    }

    /// The job is finished, or left to the rescan.
    fn forget(&self, reception_number: &str) {
        let mut q = self.lock();
        q.known.remove(reception_number);
        crate::observe::batch_queue(q.jobs.values().map(VecDeque::len).sum(), q.known.len());
    }
}

/// Starts the workers and the rescan: every unfinished job in the store is queued now and at
/// each rescan, until the state is dropped.
pub fn resume(state: &Arc<ServiceState>) {
    let scheduler = &state.batches;
    for _ in 0..scheduler.workers {
        tokio::spawn(worker(
            Arc::downgrade(state),
            Arc::clone(&scheduler.shared),
            scheduler.rescan,
        ));
    }
    let weak: Weak<ServiceState> = Arc::downgrade(state);
    let rescan = scheduler.rescan;
    tokio::spawn(async move {
        loop {
            let Some(state) = weak.upgrade() else { return };
            match blocking(&state, |s| {
                s.store.unfinished_batches().map_err(unavailable)
            })
            .await
            {
                Ok(jobs) => jobs.iter().for_each(|job| state.batches.enqueue(job)),
                Err(e) => tracing::warn!(error = %e, "cannot list unfinished batches"),
            }
            drop(state);
            tokio::time::sleep(rescan).await;
        }
    });
}

/// One worker: takes the next institution's job, answers one page of it, puts it back.
async fn worker(state: Weak<ServiceState>, shared: Arc<Shared>, idle: StdDuration) {
    loop {
        let notified = shared.ready.notified();
        let Some(mut job) = shared.take() else {
            // Nothing queued: wait for a job (or look again now and then, and stop once the
            // service is gone).
            let _ = tokio::time::timeout(idle, notified).await;
            if state.strong_count() == 0 {
                return;
            }
            continue;
        };
        let Some(live) = state.upgrade() else { return };
        match answer_next_page(&live, &mut job).await {
            Ok(true) => {
                shared.push(job, true);
                shared.ready.notify_one();
            }
            Ok(false) => shared.forget(&job.reception_number),
            Err(e) => {
                tracing::warn!(error = %e, "batch processing stopped; it resumes at the next rescan");
                shared.forget(&job.reception_number);
            }
        }
    }
}

/// Answers the next page of a job, unless another worker holds its lease. True if the job
/// has more to answer.
async fn answer_next_page(state: &Arc<ServiceState>, job: &mut Queued) -> Result<bool, Refusal> {
    loop {
        let now = state.clock.now();
        let number = job.reception_number.clone();
        let worker = format!("{}/{}", state.instance_id, job.holder);
        let from = job.from;
        let claimed = blocking(state, move |s| {
            if !s
                .store
                .claim_batch(&number, &worker, now, now + LEASE)
                .map_err(unavailable)?
            {
                return Ok(None);
            }
            let stored = s
                .store
                .batch(&number)
                .map_err(unavailable)?
                .ok_or_else(|| Refusal::BatchUnknown(number.clone()))?;
            let items = s
                .store
                .batch_items(&number, from, PAGE)
                .map_err(unavailable)?;
            Ok(Some((stored, items)))
        })
        .await?;
        // Finished, or another worker is on it.
        let Some((stored, items)) = claimed else {
            return Ok(false);
        };
        if stored.finished_at.is_some() || items.is_empty() {
            return Ok(false);
        }
        job.from = items.last().map_or(from, |i| i.ordinal + 1);
        let todo: Vec<BatchItem> = items.into_iter().filter(|i| i.result.is_none()).collect();
        if todo.is_empty() {
            // Answered already (by a worker before a restart): look at the next page.
            continue;
        }
        let worker = format!("{}/{}", state.instance_id, job.holder);
        if !answer_page(state, &stored, &worker, todo).await? {
            // The lease ran out while the page was computed, and another worker may have
            // the job now: this page's answers are dropped unaudited, and that worker answers.
            tracing::warn!("a batch page outlasted its lease; left to the lease's new holder");
            return Ok(false);
        }
        state.batches.announce(&stored.reception_number);
        return Ok(job.from < stored.total);
    }
}

/// Answers one page: computes the answers, renews the lease (or gives the page up, false, if
/// another worker took the job meanwhile), audits them (one group commit), then stores them.
async fn answer_page(
    state: &Arc<ServiceState>,
    job: &BatchJob,
    worker: &str,
    todo: Vec<BatchItem>,
) -> Result<bool, Refusal> {
    let now = state.clock.now();
    let institution = job.institution_code.clone();
    let answered = blocking(state, move |s| {
        todo.iter()
            .map(|item| {
                let id = new_confirmation_id(now)?;
                let decoded = pb::NumbersQuery::decode(item.query.as_slice());
                let requery = decoded.as_ref().is_ok_and(|q| q.requery);
                let (mut result, person) = match decoded {
                    Ok(query) => match confirm_numbers(s, &institution, &query, now) {
                        Ok(answer) => answer,
                        Err(Refusal::Unavailable(e)) => return Err(Refusal::Unavailable(e)),
                        Err(refusal) => (
                            answer::error_result(
                                refusal.result_code(),
                                pb::ReferenceClassification::InsuranceCard,
                                now,
                            ),
                            None,
                        ),
                    },
                    Err(_) => (
                        answer::error_result(
                            ResultCode::BadRequest,
                            pb::ReferenceClassification::InsuranceCard,
                            now,
                        ),
                        None,
                    ),
                };
                result.confirmation_id = id.clone();
                Ok((item.ordinal, id, result, person, requery))
            })
            .collect::<Result<Vec<_>, Refusal>>()
    })
    .await?;
    let terminal = TerminalIdentity {
        institution_code: job.institution_code.clone(),
        terminal_id: job.terminal_id.clone(),
    };
    let records = answered
        .iter()
        .map(|(_, id, result, person, requery)| {
            let method = if *requery { "requery" } else { "numbers" };
            let mut ctx = AuditContext::new(method, "batch");
            ctx.person_id = person.clone();
            audit_record(
                &terminal,
                now,
                ctx,
                id.clone(),
                result.result_code(),
                answer::audit_summary(result),
            )
        })
        .collect();
    let renewed = {
        let (number, worker) = (job.reception_number.clone(), worker.to_owned());
        let now = state.clock.now();
        blocking(state, move |s| {
            s.store
                .claim_batch(&number, &worker, now, now + LEASE)
                .map_err(unavailable)
        })
        .await?
    };
    if !renewed {
        return Ok(false);
    }
    state.audit.append_many(records).await.map_err(|e| {
        tracing::error!(error = %e, "audit write failed; batch answers withheld");
        Refusal::Unavailable("the audit log cannot be written".into())
    })?;
    let results: Vec<(u32, Vec<u8>)> = answered
        .into_iter()
        .map(|(ordinal, _, result, _, _)| (ordinal, result.encode_to_vec()))
        .collect();
    let number = job.reception_number.clone();
    blocking(state, move |s| {
        s.store
            .complete_batch_items(&number, &results, now)
            .map_err(unavailable)
    })
    .await?;
    Ok(true)
}

/// A stored item as the API returns it.
pub fn item_result(item: &BatchItem) -> Result<BatchItemResult, Refusal> {
    let corrupt = |what: &str| Refusal::Internal(format!("stored batch {what} cannot be decoded"));
    let query = pb::NumbersQuery::decode(item.query.as_slice()).map_err(|_| corrupt("query"))?;
    let result = item
        .result
        .as_deref()
        .map(ConfirmationResult::decode)
        .transpose()
        .map_err(|_| corrupt("result"))?;
    Ok(BatchItemResult {
        ordinal: item.ordinal,
        query: Some(query),
        result,
    })
}

/// Streams a job's answers from ordinal `from` on, in order, as they are stored; ends after
/// the last one, or when the reader goes away. The reader waits for this instance's workers to
/// store answers (and looks at the store every [`FALLBACK_POLL`] for answers of another
/// instance), instead of polling the store.
pub fn stream_results(
    state: Arc<ServiceState>,
    job: BatchJob,
    from: u32,
) -> ReceiverStream<Result<BatchItemResult, Status>> {
    let (tx, rx) = mpsc::channel(64);
    let progress = state.batches.progress(&job.reception_number);
    let number = job.reception_number.clone();
    let read = move |next: u32| {
        let state = Arc::clone(&state);
        let number = number.clone();
        async move {
            blocking(&state, move |s| {
                s.store
                    .batch_items(&number, next, PAGE)
                    .map_err(unavailable)
            })
            .await
        }
    };
    tokio::spawn(follow(read, progress, tx, from, job.total, FALLBACK_POLL));
    ReceiverStream::new(rx)
}

/// Sends the answers `read` finds from ordinal `from` up to `total`, reading again each time
/// `progress` changes (or after `fallback` without a change).
async fn follow<R, F>(
    mut read: R,
    mut progress: watch::Receiver<u64>,
    tx: mpsc::Sender<Result<BatchItemResult, Status>>,
    from: u32,
    total: u32,
    fallback: StdDuration,
) where
    R: FnMut(u32) -> F,
    F: Future<Output = Result<Vec<BatchItem>, Refusal>>,
{
    let mut next = from;
    while next < total {
        // Marked as seen before reading: a page stored while the read runs wakes the next wait.
        progress.borrow_and_update();
        let items = match read(next).await {
            Ok(items) => items,
            Err(refusal) => {
                let _ = tx.send(Err(refusal.to_status())).await;
                return;
            }
        };
        let mut progressed = false;
        for item in items.iter().take_while(|i| i.result.is_some()) {
            let out = item_result(item).map_err(|r| r.to_status());
            if tx.send(out).await.is_err() {
                return;
            }
            next = item.ordinal + 1;
            progressed = true;
        }
        if !progressed {
            tokio::select! {
                changed = progress.changed() => {
                    if changed.is_err() {
                        // The scheduler is gone with the service.
                        tokio::time::sleep(fallback).await;
                    }
                }
                () = tokio::time::sleep(fallback) => {}
                () = tx.closed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn queued(number: &str, institution: &str) -> Queued {
        Queued {
            reception_number: number.into(),
            institution: institution.into(),
            holder: "h".into(),
            from: 0,
        }
    }

    fn shared() -> Shared {
        Shared {
            queues: Mutex::new(Queues::default()),
            ready: Notify::new(),
            progress: Mutex::new(HashMap::new()),
        }
    }

    /// Simulates workers answering one page per turn: one institution's 30 jobs of 50 pages
    /// each and another's 2-page job submitted after them. The second is done after at most
    /// 4 turns, not after the first's 1,500.
    #[test]
    fn institutions_are_served_in_turn_and_jobs_in_order_within_one() {
        let s = shared();
        let mut pages: HashMap<String, u32> = HashMap::new();
        for j in 0..30 {
            let n = format!("A{j:02}");
            assert!(s.push(queued(&n, "A"), false));
            pages.insert(n, 50);
        }
        assert!(s.push(queued("B00", "B"), false));
        pages.insert("B00".into(), 2);
        // Queued twice (a rescan while it waits): once.
        assert!(!s.push(queued("B00", "B"), false));
        let mut order = Vec::new();
        while let Some(job) = s.take() {
            order.push(job.reception_number.clone());
            let left = pages.get_mut(&job.reception_number).unwrap();
            *left -= 1;
            if *left > 0 {
                s.push(job, true);
            } else {
                s.forget(&job.reception_number);
            }
        }
        assert_eq!(order.len(), 30 * 50 + 2);
        let b_done = order.iter().rposition(|n| n == "B00").unwrap();
        assert!(
            b_done < 4,
            "B's last page was turn {b_done}: {:?}",
            &order[..8]
        );
        // A's jobs one after the other, in the order submitted.
        let a: Vec<&String> = order.iter().filter(|n| n.starts_with('A')).collect();
        let mut firsts: Vec<&String> = a.clone();
        firsts.dedup();
        assert_eq!(firsts.len(), 30, "A's jobs were interleaved");
        assert!(firsts.windows(2).all(|w| w[0] < w[1]));
        assert!(s.lock().known.is_empty());
    }

    /// Answers stored for one job wake only the streams of that job, and the scheduler
    /// forgets a job once nobody follows it.
    #[test]
    fn a_stored_page_wakes_only_its_own_jobs_streams() {
        let scheduler = Scheduler::new(BatchConfig::default(), Arc::new(crate::clock::SystemClock));
        let mut a = scheduler.progress("A");
        let mut b = scheduler.progress("B");
        a.borrow_and_update();
        b.borrow_and_update();
        scheduler.announce("A");
        assert!(a.has_changed().unwrap());
        assert!(!b.has_changed().unwrap());
        drop(a);
        scheduler.announce("B");
        assert!(b.has_changed().unwrap());
        let followed: Vec<String> = scheduler.shared.progress_lock().keys().cloned().collect();
        assert_eq!(followed, ["B"]);
    }

    fn answered(ordinal: u32) -> BatchItem {
        BatchItem {
            ordinal,
            query: pb::NumbersQuery::default().encode_to_vec(),
            result: Some(ConfirmationResult::default().encode_to_vec()),
        }
    }

    /// A reader waiting for answers reads the store when told answers were stored (and once
    /// per fallback period), not every 100 ms.
    #[tokio::test(start_paused = true)]
    async fn a_waiting_reader_reads_when_answers_are_stored_not_on_a_timer() {
        let reads = Arc::new(AtomicUsize::new(0));
        let stored = Arc::new(Mutex::new(Vec::<BatchItem>::new()));
        let read = {
            let (reads, stored) = (Arc::clone(&reads), Arc::clone(&stored));
            move |from: u32| {
                reads.fetch_add(1, Ordering::SeqCst);
                let items: Vec<BatchItem> = stored
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|i| i.ordinal >= from)
                    .cloned()
                    .collect();
                async move { Ok::<_, Refusal>(items) }
            }
        };
        let (progress, watcher) = watch::channel(0u64);
        let (tx, mut rx) = mpsc::channel(16);
        let reader = tokio::spawn(follow(read, watcher, tx, 0, 3, StdDuration::from_secs(2)));

        // Nothing stored for 10 s: one read, then one per fallback period (2 s).
        tokio::time::sleep(StdDuration::from_secs(10)).await;
        let idle_reads = reads.load(Ordering::SeqCst);
        assert!(
            (1..=6).contains(&idle_reads),
            "{idle_reads} reads in 10 s of waiting"
        );

        // Answers stored and announced: read at once, and sent.
        stored.lock().unwrap().extend([answered(0), answered(1)]);
        progress.send_modify(|n| *n += 1);
        for expected in 0..2 {
            let item = tokio::time::timeout(StdDuration::from_millis(10), rx.recv())
                .await
                .expect("an announced answer is sent at once")
                .unwrap()
                .unwrap();
            assert_eq!(item.ordinal, expected);
        }
        stored.lock().unwrap().push(answered(2));
        progress.send_modify(|n| *n += 1);
        let last = rx.recv().await.unwrap().unwrap();
        assert_eq!(last.ordinal, 2);
        // All 3 sent: the reader ends.
        assert!(rx.recv().await.is_none());
        reader.await.unwrap();
    }
}
