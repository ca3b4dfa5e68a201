//! Batch confirmation (一括照会): a submission is stored as a job with its queries and answered
//! in the background, page by page. The job lives in the store, so it survives a restart (every
//! instance resumes unfinished jobs at start and rescans now and then) and is processed by one
//! instance at a time (a lease in the store). Each answered query is an access to a person's
//! data, audited durably before its answer is stored, i.e. before anyone can fetch it.

use std::sync::{Arc, Weak};
use std::time::Duration as StdDuration;

use onshi_proto::v1::{self as pb, BatchItemResult, ConfirmationResult, ResultCode};
use prost::Message;
use time::Duration;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::answer;
use crate::outcome::Refusal;
use crate::service::{
    audit_record, blocking, confirm_numbers, new_confirmation_id, unavailable, AuditContext,
    ServiceState,
};
use crate::store::{BatchItem, BatchJob};
use crate::terminal::TerminalIdentity;

/// Queries answered per store round trip.
const PAGE: u32 = 200;
/// How long a worker's claim on a job lasts without renewal.
const LEASE: Duration = Duration::seconds(30);
/// How often unfinished jobs are looked for (jobs of a crashed instance whose lease ran out).
const RESCAN: StdDuration = StdDuration::from_secs(10);
/// How often a streaming reader looks for new answers.
const POLL: StdDuration = StdDuration::from_millis(100);

/// Starts processing a job in the background.
pub fn spawn(state: Arc<ServiceState>, reception_number: String) {
    tokio::spawn(async move {
        if let Err(e) = process(&state, &reception_number).await {
            tracing::warn!(reception_number, error = %e, "batch processing stopped; it resumes later");
        }
    });
}

/// Resumes every unfinished job now, then rescans periodically until the state is dropped.
pub fn resume(state: &Arc<ServiceState>) {
    let weak: Weak<ServiceState> = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            let Some(state) = weak.upgrade() else { return };
            match blocking(&state, |s| {
                s.store.unfinished_batches().map_err(unavailable)
            })
            .await
            {
                Ok(jobs) => {
                    for job in jobs {
                        spawn(Arc::clone(&state), job.reception_number);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list unfinished batches"),
            }
            drop(state);
            tokio::time::sleep(RESCAN).await;
        }
    });
}

/// Answers every unanswered query of a job, unless another worker holds its lease.
pub async fn process(state: &Arc<ServiceState>, reception_number: &str) -> Result<(), Refusal> {
    let mut from = 0u32;
    loop {
        let now = state.clock.now();
        let number = reception_number.to_owned();
        let worker = state.instance_id.clone();
        let claimed = blocking(state, move |s| {
            s.store
                .claim_batch(&number, &worker, now, now + LEASE)
                .map_err(unavailable)
        })
        .await?;
        if !claimed {
            // Finished, or another worker is on it.
            return Ok(());
        }
        let number = reception_number.to_owned();
        let (job, items) = blocking(state, move |s| {
            let job = s
                .store
                .batch(&number)
                .map_err(unavailable)?
                .ok_or_else(|| Refusal::BatchUnknown(number.clone()))?;
            let items = s
                .store
                .batch_items(&number, from, PAGE)
                .map_err(unavailable)?;
            Ok((job, items))
        })
        .await?;
        if job.finished_at.is_some() || items.is_empty() {
            return Ok(());
        }
        from = items.last().map_or(from, |i| i.ordinal + 1);
        let todo: Vec<BatchItem> = items.into_iter().filter(|i| i.result.is_none()).collect();
        if todo.is_empty() {
            continue;
        }
        answer_page(state, &job, todo).await?;
    }
}

/// Answers one page: computes the answers, audits them (one group commit), then stores them.
async fn answer_page(
    state: &Arc<ServiceState>,
    job: &BatchJob,
    todo: Vec<BatchItem>,
) -> Result<(), Refusal> {
    let now = state.clock.now();
    let answered = blocking(state, move |s| {
        todo.iter()
            .map(|item| {
                let id = new_confirmation_id()?;
                let (mut result, person) = match pb::NumbersQuery::decode(item.query.as_slice()) {
                    Ok(query) => match confirm_numbers(s.store.as_ref(), &query, now) {
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
                Ok((item.ordinal, id, result, person))
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
        .map(|(_, id, result, person)| {
            let mut ctx = AuditContext::new("numbers", "batch");
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
    state.audit.append_many(records).await.map_err(|e| {
        tracing::error!(error = %e, "audit write failed; batch answers withheld");
        Refusal::Unavailable("the audit log cannot be written".into())
    })?;
    let results: Vec<(u32, Vec<u8>)> = answered
        .into_iter()
        .map(|(ordinal, _, result, _)| (ordinal, result.encode_to_vec()))
        .collect();
    let number = job.reception_number.clone();
    blocking(state, move |s| {
        s.store
            .complete_batch_items(&number, &results, now)
            .map_err(unavailable)
    })
    .await
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
/// the last one, or when the reader goes away.
pub fn stream_results(
    state: Arc<ServiceState>,
    job: BatchJob,
    from: u32,
) -> ReceiverStream<Result<BatchItemResult, Status>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let mut next = from;
        while next < job.total {
            let number = job.reception_number.clone();
            let page = blocking(&state, move |s| {
                s.store
                    .batch_items(&number, next, PAGE)
                    .map_err(unavailable)
            })
            .await;
            let items = match page {
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
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(POLL).await;
            }
        }
    });
    ReceiverStream::new(rx)
}
