//! The batch calls' own checks: a submission's queries as they arrive, storing the job, and
//! finding the calling institution's job (the background work is [`super::batch`]).

use onshi_proto::v1::{self as pb, ResultCode, SubmitBatchResponse};
use prost::Message;
use time::OffsetDateTime;

use super::service::*;
use crate::answer;
use crate::eligibility::{self, DomainError};
use crate::outcome::Refusal;
use crate::store::BatchJob;
use crate::terminal::TerminalIdentity;

/// Most queries in one unary batch submission, and in one streamed submission.
pub const MAX_BATCH: usize = crate::config::MAX_BATCH_QUERIES;
/// Most answers in one GetBatchResult page.
pub const MAX_PAGE: u32 = 1000;
/// Most bytes of answers in one GetBatchResult page (at least one answer is always sent); the
/// client asks for the rest from where the page ended.
pub const MAX_PAGE_BYTES: usize = 1 << 20;

/// Refuses a query of a batch as it arrives, before it is kept, when it is larger than any
/// legitimate query ([`crate::config::MAX_QUERY_BYTES`]) or a field is longer than the domain
/// gives it: a batch's bytes are bounded by its count. A query within those lengths but invalid
/// (a check digit, a date) is kept and answered with its own error, like a card-less
/// confirmation.
pub(super) fn check_arrival(index: usize, query: &pb::NumbersQuery) -> Result<(), Refusal> {
    let bytes = Message::encoded_len(query);
    let max = crate::config::MAX_QUERY_BYTES as usize;
    if bytes > max {
        return Err(Refusal::TooLarge(format!(
            "query {index} of the batch takes {bytes} bytes; a query is at most {max}"
        )));
    }
    // Each field within the length the domain gives it (its content is checked when the
    // query is answered, and a bad one answered with its own code).
    let fields = [
        ("保険者番号", &query.insurer_number, 8),
        ("記号", &query.symbol, eligibility::MAX_SYMBOL_CHARS),
        ("番号", &query.number, eligibility::MAX_NUMBER_CHARS),
        ("枝番", &query.branch, 2),
        ("birth date", &query.birth_date, 8),
        ("as-of date", &query.as_of_date, 8),
    ];
    for (what, value, max) in fields {
        let chars = value.chars().count();
        if chars > max {
            return Err(Refusal::TooLarge(format!(
                "query {index} of the batch: {what} has {chars} characters; at most {max}"
            )));
        }
    }
    Ok(())
}

impl ConfirmationService {
    /// Checks a submission's size, stores the job and starts processing it; the answer comes
    /// with its result code and the audit log's summary.
    pub(super) async fn submit_batch(
        &self,
        terminal: &TerminalIdentity,
        queries: Vec<pb::NumbersQuery>,
        now: OffsetDateTime,
    ) -> Result<(SubmitBatchResponse, ResultCode, String), Refusal> {
        // The store keeps milliseconds: answer with the instant GetBatchResult will report.
        let now = now.replace_millisecond(now.millisecond()).unwrap_or(now);
        let total = match u32::try_from(queries.len()) {
            Ok(n) if n > 0 && queries.len() <= MAX_BATCH => n,
            _ => {
                return Err(Refusal::BatchTooLarge {
                    max: MAX_BATCH,
                    got: queries.len(),
                })
            }
        };
        for (i, q) in queries.iter().enumerate() {
            check_arrival(i, q)?;
        }
        // Every item is a look-up: the whole batch counts towards the institution's quota, or
        // is refused whole.
        self.state
            .quotas
            .charge_lookups(&terminal.institution_code, total, now)?;
        let encoded: Vec<Vec<u8>> = queries.iter().map(Message::encode_to_vec).collect();
        let institution = terminal.institution_code.clone();
        let terminal_id = terminal.terminal_id.clone();
        let job = self
            .blocking(move |s| {
                // A reception number is 16 random digits; on the rare collision, draw again
                // (four draws in all; the last one's failure is the answer).
                let mut draws = 1;
                loop {
                    let job = BatchJob {
                        reception_number: new_reception_number()?,
                        institution_code: institution.clone(),
                        terminal_id: terminal_id.clone(),
                        submitted_at: now,
                        total,
                        completed: 0,
                        finished_at: None,
                    };
                    match s.store.create_batch(&job, &encoded) {
                        Ok(()) => return Ok(job),
                        Err(e) if draws == 4 => return Err(unavailable(e)),
                        Err(_) => draws += 1,
                    }
                }
            })
            .await?;
        self.state.batches.enqueue(&job);
        let summary = serde_json::json!({
            "reception_number": job.reception_number, "total": total
        })
        .to_string();
        let response = SubmitBatchResponse {
            reception_number: job.reception_number,
            total,
            submitted_at: Some(answer::timestamp(now)),
        };
        Ok((response, ResultCode::Ok, summary))
    }

    /// A batch job of the calling institution.
    pub(super) async fn own_batch(
        &self,
        terminal: &TerminalIdentity,
        reception_number: &str,
    ) -> Result<BatchJob, Refusal> {
        if reception_number.is_empty() {
            return Err(Refusal::Invalid(DomainError::Empty {
                what: "reception number",
            }));
        }
        if reception_number.len() > 64 {
            return Err(Refusal::TooLarge("reception number".into()));
        }
        let number = reception_number.to_owned();
        let job = self
            .blocking(move |s| s.store.batch(&number).map_err(unavailable))
            .await?;
        match job {
            Some(job) if job.institution_code == terminal.institution_code => Ok(job),
            // Another institution's batch is as unknown as a missing one.
            _ => Err(Refusal::BatchUnknown(reception_number.to_owned())),
        }
    }
}
