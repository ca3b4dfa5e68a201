//! The kiosk's outage path at its edges (docs/operations.md, "The outage path"): the shared
//! [`OutageStore`], the probe that tells the flow whether the service answers, and the
//! catch-up that confirms each recorded visit by its declared numbers once it does.
//!
//! **Catch-up, exactly once.** Each visit is sent as `ConfirmByNumbers` (the card-less path:
//! the institution's quota applies; no certificate, no signature, so it never passes for a card
//! read) with the gRPC metadata `idempotency-key: outage-<record id>`. The record is deleted
//! only after the service's final answer. If the agent dies between the answer and the
//! deletion, the same key is sent again on restart and the service answers from its memory of
//! that key, without a second audit record or quota charge. An answer that says "try later"
//! (unreachable, unavailable, rate limited, quota, internal) keeps the record and ends the
//! round.
//!
//! **Disagreements.** A confirmation whose validity is not 有効, or whose qualification is not
//! the declared insurer and numbers, and a final refusal of the declared numbers, are listed
//! for staff (billing corrects the claim). Each is kept on disk beside the records
//! (`disagreement-<id>.json`, 0600) before its visit's record is deleted, so the list
//! survives a restart, until staff acknowledge it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use onshi_proto::v1 as pb;
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use serde::Serialize;
use tonic::transport::Channel;

use super::session::Kiosk;
use super::staff::StaffDesk;
use crate::confirm::refused_by_service;
use crate::outage::{Declaration, OutageError, OutageStore, OutageVisit};
use crate::report::{Outcome, StaffResult};

/// The gRPC metadata that carries the catch-up's idempotency key.
pub const IDEMPOTENCY_METADATA: &str = "idempotency-key";

/// A caught-up visit whose confirmation disagreed with the declaration.
#[derive(Debug, Clone, Serialize)]
pub struct Disagreement {
    pub visit: OutageVisit,
    /// What disagreed, for staff.
    pub reason: String,
    pub result_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<StaffResult>,
}

/// What the staff view shows.
#[derive(Debug, Clone, Serialize)]
pub struct OutageView {
    /// The service is known to be unreachable.
    pub outage: bool,
    pub capacity: usize,
    pub waiting: Vec<OutageVisit>,
    /// Kept on disk until staff acknowledge them ([`Disagreement`]s as written).
    pub disagreements: Vec<serde_json::Value>,
    /// Visits caught up since the kiosk started.
    pub caught_up: u64,
}

#[derive(Debug, Default)]
struct Inner {
    outage: bool,
    caught_up: u64,
}

/// The store and what the catch-up learnt; shared by the runner, the catch-up and the staff
/// view. Records are written one at a time (the lock is held across the write).
#[derive(Debug, Clone)]
pub struct OutageDesk {
    store: Arc<Mutex<OutageStore>>,
    inner: Arc<Mutex<Inner>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl OutageDesk {
    pub fn new(store: OutageStore) -> Self {
        OutageDesk {
            store: Arc::new(Mutex::new(store)),
            inner: Arc::default(),
        }
    }

    /// Records a visit with a fresh id and the current time; returns how many now wait.
    pub fn record(
        &self,
        declaration: Declaration,
        certificate_sha256: Option<String>,
        entered_by: String,
    ) -> Result<usize, OutageError> {
        let rng = ring::rand::SystemRandom::new();
        let id = super::web::random_hex(&rng, 16).map_err(OutageError::Io)?;
        let received_at_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let visit = OutageVisit {
            id,
            received_at_unix,
            declaration,
            certificate_sha256,
            entered_by,
        };
        let store = lock(&self.store);
        store.record(&visit)?;
        tracing::info!(id = %visit.id, "outage visit recorded");
        Ok(store.list()?.len())
    }

    pub fn waiting(&self) -> Result<Vec<OutageVisit>, OutageError> {
        lock(&self.store).list()
    }

    fn set_outage(&self, down: bool) {
        lock(&self.inner).outage = down;
    }

    pub fn view(&self) -> Result<OutageView, OutageError> {
        let (waiting, capacity, disagreements) = {
            let store = lock(&self.store);
            (store.list()?, store.capacity(), store.disagreements()?)
        };
        let inner = lock(&self.inner);
        Ok(OutageView {
            outage: inner.outage,
            capacity,
            waiting,
            disagreements,
            caught_up: inner.caught_up,
        })
    }

    /// Staff acknowledge the disagreement of visit `id` (billing has it): it leaves the list
    /// and the disk. `false` when there is none.
    pub fn acknowledge(&self, id: &str, staff_id: &str) -> Result<bool, OutageError> {
        let done = lock(&self.store).acknowledge(id)?;
        if done {
            tracing::info!(id, staff = staff_id, "outage disagreement acknowledged");
        }
        Ok(done)
    }
}

/// How the catch-up runs.
#[derive(Debug, Clone)]
pub struct CatchUp {
    pub client: ConfirmationClient<Channel>,
    pub channel: Channel,
    /// The bound on each probe and each catch-up call.
    pub wait: Duration,
    /// Time between probes.
    pub interval: Duration,
    pub staff: StaffDesk,
    pub face_files: Option<crate::oqs::face::FaceFiles>,
}

/// Probes the service every `interval` and, while it answers, catches up the waiting visits;
/// tells the kiosk's flow whether the service is reachable. Runs for ever.
pub async fn run(desk: OutageDesk, kiosk: Kiosk, catch_up: CatchUp) {
    let mut last: Option<bool> = None;
    loop {
        let mut up = probe(&catch_up).await;
        if up {
            up = round(&desk, &catch_up).await;
        }
        desk.set_outage(!up);
        if last != Some(up) {
            if up {
                tracing::info!("the confirmation service answers");
            } else {
                tracing::warn!("the confirmation service cannot be reached: outage path on");
            }
            kiosk.service_reachable(up);
            last = Some(up);
        }
        tokio::time::sleep(catch_up.interval).await;
    }
}

/// Whether the service answers its health check within the bound.
async fn probe(c: &CatchUp) -> bool {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let mut health = HealthClient::new(c.channel.clone());
    let check = health.check(HealthCheckRequest {
        service: String::new(),
    });
    matches!(tokio::time::timeout(c.wait, check).await, Ok(Ok(_)))
}

/// One catch-up round over the waiting visits, oldest first. Returns `false` when the service
/// stopped answering (the rest waits for the next round).
async fn round(desk: &OutageDesk, c: &CatchUp) -> bool {
    let visits = match desk.waiting() {
        Ok(v) => v,
        Err(e) => {
            tracing::error!("cannot read the outage store: {e}");
            return true;
        }
    };
    for visit in visits {
        let mut request = tonic::Request::new(pb::ConfirmByNumbersRequest {
            query: Some(visit.declaration.numbers().to_proto()),
            // When the patient was received, for the audit beside the service's own time.
            claimed_visit_time: Some(prost_types::Timestamp {
                seconds: visit.received_at_unix,
                nanos: 0,
            }),
        });
        request.set_timeout(c.wait);
        match visit.idempotency_key().parse() {
            Ok(key) => {
                request.metadata_mut().insert(IDEMPOTENCY_METADATA, key);
            }
            Err(_) => {
                tracing::error!(id = %visit.id, "unusable idempotency key");
                continue;
            }
        }
        let mut client = c.client.clone();
        let answer = tokio::time::timeout(c.wait, client.confirm_by_numbers(request)).await;
        let (outcome, disagreement) = match answer {
            Err(_) => return false,
            Ok(Ok(r)) => {
                let result = r.into_inner();
                if let Some(files) = &c.face_files {
                    files.write_logged(&result);
                }
                let disagreement =
                    disagreement(&visit.declaration, &result).map(|reason| Disagreement {
                        visit: visit.clone(),
                        reason,
                        result_code: result.result_code().as_str_name().to_owned(),
                        result: Some(StaffResult::from_proto(&result)),
                    });
                let outcome = Outcome::Confirmed {
                    result_code: result.result_code().as_str_name().to_owned(),
                    result: StaffResult::from_proto(&result),
                };
                (outcome, disagreement)
            }
            Ok(Err(status)) => {
                let outcome = refused_by_service(&status);
                if try_later(&outcome) {
                    tracing::warn!(id = %visit.id, "catch-up deferred: {outcome:?}");
                    return !matches!(outcome, Outcome::Error { .. });
                }
                let (code, message) = match &outcome {
                    Outcome::Refused {
                        result_code,
                        message,
                        ..
                    } => (result_code.clone(), message.clone()),
                    other => (String::new(), format!("{other:?}")),
                };
                let disagreement = Disagreement {
                    visit: visit.clone(),
                    reason: format!("the declared numbers were refused: {message}"),
                    result_code: code,
                    result: None,
                };
                (outcome, Some(disagreement))
            }
        };
        // The disagreement is on disk before the record goes: a crash between the two sends
        // the visit again (answered from the service's record of its key) and writes it again.
        if let Some(d) = disagreement {
            let kept = serde_json::to_value(&d)
                .map_err(|e| OutageError::Io(e.to_string()))
                .and_then(|v| lock(&desk.store).record_disagreement(&visit.id, &v));
            if let Err(e) = kept {
                tracing::error!(id = %visit.id, "cannot keep a disagreement; the visit waits: {e}");
                continue;
            }
        }
        c.staff.record("outage", None, &outcome, false);
        lock(&desk.inner).caught_up += 1;
        if let Err(e) = lock(&desk.store).remove(&visit.id) {
            tracing::error!("cannot delete a caught-up outage record: {e}");
        } else {
            tracing::info!(id = %visit.id, "outage visit caught up");
        }
    }
    true
}

/// An answer that says "try later": the record stays.
fn try_later(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Error { .. } => true,
        Outcome::Refused { result_code, .. } => [
            pb::ResultCode::ServiceUnavailable,
            pb::ResultCode::RateLimited,
            pb::ResultCode::InternalError,
            pb::ResultCode::QuotaExceeded,
        ]
        .iter()
        .any(|c| c.as_str_name() == result_code),
        _ => false,
    }
}

/// Why the service's confirmation disagrees with the declaration, if it does.
pub fn disagreement(declared: &Declaration, result: &pb::ConfirmationResult) -> Option<String> {
    if result.validity != pb::QualificationValidity::Valid as i32 {
        return Some(format!(
            "the qualification is not current: {}",
            crate::report::validity_label(result.validity)
        ));
    }
    let same = |q: &pb::Qualification| {
        q.insurer_number == declared.insurer_number
            && q.symbol == declared.symbol
            && q.number == declared.number
            && q.branch == declared.branch
    };
    if result.qualifications.iter().any(same) {
        None
    } else {
        let found: Vec<String> = result
            .qualifications
            .iter()
            .map(|q| format!("{} {}", q.insurer_number, q.insurer_name))
            .collect();
        Some(format!(
            "another insurer or other numbers than declared: {}",
            found.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declared() -> Declaration {
        Declaration {
            insurer_number: "01130012".into(),
            symbol: "7".into(),
            number: "10".into(),
            branch: "00".into(),
            birth_date: "19710605".into(),
        }
    }

    fn result(validity: pb::QualificationValidity, insurer: &str) -> pb::ConfirmationResult {
        pb::ConfirmationResult {
            validity: validity as i32,
            qualifications: vec![pb::Qualification {
                insurer_number: insurer.into(),
                symbol: "7".into(),
                number: "10".into(),
                branch: "00".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_current_qualification_with_the_declared_numbers_agrees() {
        let r = result(pb::QualificationValidity::Valid, "01130012");
        assert_eq!(disagreement(&declared(), &r), None);
    }

    #[test]
    fn a_lost_qualification_or_another_insurer_disagrees() {
        let lost = result(pb::QualificationValidity::Invalid, "01130012");
        assert!(disagreement(&declared(), &lost).is_some_and(|m| m.contains("無効")));
        let other = result(pb::QualificationValidity::Valid, "06401152");
        assert!(disagreement(&declared(), &other).is_some_and(|m| m.contains("06401152")));
    }

    #[test]
    fn only_final_answers_end_a_record() {
        assert!(try_later(&Outcome::Error {
            message: "down".into()
        }));
        let refused = |code: pb::ResultCode| Outcome::Refused {
            result_code: code.as_str_name().into(),
            message: String::new(),
            tries_left: None,
        };
        assert!(try_later(&refused(pb::ResultCode::QuotaExceeded)));
        assert!(!try_later(&refused(pb::ResultCode::InvalidInsurerNumber)));
    }
}
