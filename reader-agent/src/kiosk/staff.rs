//! The staff's side of the kiosk (資格確認端末): the day's confirmations as they happen, the
//! card-less confirmation by numbers, the consent-gated medication and checkup data, and the
//! batch pre-check of reservations (一括照会) with its progress.
//!
//! Everything here lives in the agent's memory for as long as it runs; the service's audit log
//! is the durable record of every access.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use onshi_proto::v1 as pb;
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;
use tonic::transport::Channel;

use crate::desk::{self, ClinicalKind, Numbers};
use crate::report::{Outcome, StaffResult};

/// Japan Standard Time, for "the day".
const JST_OFFSET_SECONDS: u64 = 9 * 3600;
/// Longest a batch is followed before the page is told to fetch it later.
const BATCH_FOLLOW: Duration = Duration::from_secs(600);

/// One confirmation (or refusal) at this terminal.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// 1, 2, 3… in the order they happened.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `pin`, `face`, `visual`, `numbers`.
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staff_id: Option<String>,
    /// `confirmed`, `refused` or `error`.
    pub outcome: String,
    pub result_code: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The holder was registered for insurance use at this visit.
    pub registered_now: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<StaffResult>,
}

impl Entry {
    fn matches(&self, query: &str) -> bool {
        if query.is_empty() {
            return true;
        }
        let q = query.to_lowercase();
        let mut hay = format!(
            "{} {} {} {}",
            self.method, self.result_code, self.message, self.outcome
        );
        if let Some(r) = &self.result {
            hay.push(' ');
            hay.push_str(&r.confirmation_id);
            hay.push(' ');
            hay.push_str(r.validity_label);
            for qa in &r.qualifications {
                for f in [
                    &qa.name,
                    &qa.kana_name,
                    &qa.insurer_number,
                    &qa.insurer_name,
                    &qa.symbol,
                    &qa.number,
                    &qa.birth_date,
                ] {
                    hay.push(' ');
                    hay.push_str(f);
                }
            }
        }
        hay.to_lowercase().contains(&q)
    }

    fn jst_day(&self) -> u64 {
        (self.at_ms / 1000 + JST_OFFSET_SECONDS) / 86_400
    }
}

/// A batch the staff submitted.
#[derive(Debug, Clone, Serialize)]
pub struct BatchProgress {
    pub reception_number: String,
    pub total: u32,
    pub completed: u32,
    /// `processing`, `done` or `failed`.
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// What the staff page is pushed.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StaffEvent {
    Confirmation(Entry),
    Batch(BatchProgress),
}

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
    batches: HashMap<String, (BatchProgress, Option<String>)>,
}

/// Shared between the kiosk (which records card confirmations) and the staff page.
#[derive(Clone)]
pub struct StaffDesk {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<StaffEvent>,
    client: ConfirmationClient<Channel>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A failure as the staff page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeskError {
    pub result_code: String,
    pub message: String,
}

impl DeskError {
    fn of(outcome: Outcome) -> DeskError {
        match outcome {
            Outcome::Refused {
                result_code,
                message,
                ..
            } => DeskError {
                result_code,
                message,
            },
            Outcome::Error { message } => DeskError {
                result_code: String::new(),
                message,
            },
            other => DeskError {
                result_code: String::new(),
                message: format!("unexpected outcome {other:?}"),
            },
        }
    }

    pub fn bad_input(message: impl Into<String>) -> DeskError {
        DeskError {
            result_code: pb::ResultCode::BadRequest.as_str_name().to_owned(),
            message: message.into(),
        }
    }
}

impl std::fmt::Debug for StaffDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffDesk").finish_non_exhaustive()
    }
}

impl StaffDesk {
    pub fn new(client: ConfirmationClient<Channel>) -> Self {
        let (events, _) = broadcast::channel(256);
        Self {
            inner: Arc::default(),
            events,
            client,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<StaffEvent> {
        self.events.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an outcome of this terminal and pushes it to the staff page.
    pub fn record(
        &self,
        method: &str,
        staff_id: Option<String>,
        outcome: &Outcome,
        registered_now: bool,
    ) -> Entry {
        let (kind, result_code, message, result) = match outcome {
            Outcome::Confirmed {
                result_code,
                result,
            } => (
                "confirmed",
                result_code.clone(),
                String::new(),
                Some(result.clone()),
            ),
            Outcome::Registered { result_code, .. } => {
                ("registered", result_code.clone(), String::new(), None)
            }
            Outcome::Refused {
                result_code,
                message,
                ..
            } => ("refused", result_code.clone(), message.clone(), None),
            Outcome::WrongPin { message, .. } => (
                "refused",
                pb::ResultCode::PinAttemptsExhausted
                    .as_str_name()
                    .to_owned(),
                message.clone(),
                None,
            ),
            Outcome::Error { message } => ("error", String::new(), message.clone(), None),
        };
        let entry = {
            let mut inner = self.lock();
            let entry = Entry {
                seq: inner.entries.len() as u64 + 1,
                at_ms: now_ms(),
                method: method.to_owned(),
                staff_id,
                outcome: kind.to_owned(),
                result_code,
                message,
                registered_now,
                result,
            };
            inner.entries.push(entry.clone());
            entry
        };
        let _ = self.events.send(StaffEvent::Confirmation(entry.clone()));
        entry
    }

    /// Today's (JST) entries matching `query` (any of name, kana, numbers, insurer, result
    /// code, confirmation id), newest first.
    pub fn today(&self, query: &str) -> Vec<Entry> {
        let today = (now_ms() / 1000 + JST_OFFSET_SECONDS) / 86_400;
        let inner = self.lock();
        inner
            .entries
            .iter()
            .rev()
            .filter(|e| e.jst_day() == today && e.matches(query))
            .cloned()
            .collect()
    }

    fn entry(&self, seq: u64) -> Option<Entry> {
        self.lock().entries.iter().find(|e| e.seq == seq).cloned()
    }

    /// 記号・番号: a card-less confirmation, recorded like a card's.
    pub async fn confirm_numbers(&self, numbers: &Numbers) -> Entry {
        let mut client = self.client.clone();
        let outcome = desk::confirm_numbers(&mut client, numbers).await;
        self.record("numbers", None, &outcome, false)
    }

    /// Medication or checkup data of the patient of entry `seq` (their first qualification's
    /// numbers and birth date), if they consented here.
    pub async fn clinical(&self, seq: u64, kind: ClinicalKind) -> Result<Value, DeskError> {
        let entry = self
            .entry(seq)
            .ok_or_else(|| DeskError::bad_input(format!("no confirmation #{seq} today")))?;
        let q = entry
            .result
            .as_ref()
            .and_then(|r| r.qualifications.first())
            .ok_or_else(|| {
                DeskError::bad_input(format!("confirmation #{seq} found no qualification"))
            })?;
        let numbers = Numbers {
            insurer_number: q.insurer_number.clone(),
            symbol: q.symbol.clone(),
            number: q.number.clone(),
            branch: q.branch.clone(),
            birth_date: q.birth_date.clone(),
            as_of_date: String::new(),
            ..Numbers::default()
        };
        let mut client = self.client.clone();
        desk::clinical(&mut client, &numbers, kind)
            .await
            .map_err(DeskError::of)
    }

    /// Submits a reservations CSV and follows the batch in the background, pushing progress.
    pub async fn submit_batch(&self, csv: &str) -> Result<BatchProgress, DeskError> {
        let queries = desk::parse_csv(csv, "the uploaded file").map_err(DeskError::bad_input)?;
        let mut client = self.client.clone();
        let submitted = desk::submit(&mut client, queries, false)
            .await
            .map_err(DeskError::of)?;
        let progress = BatchProgress {
            reception_number: submitted.reception_number.clone(),
            total: submitted.total,
            completed: 0,
            status: "processing".into(),
            message: String::new(),
        };
        self.update_batch(progress.clone(), None);
        let desk = self.clone();
        let number = submitted.reception_number;
        tokio::spawn(async move {
            let report = |completed: u32, total: u32, done: bool| {
                desk.update_batch(
                    BatchProgress {
                        reception_number: number.clone(),
                        total,
                        completed,
                        status: if done { "done" } else { "processing" }.into(),
                        message: String::new(),
                    },
                    None,
                );
            };
            match desk::wait_and_fetch(&mut client, &number, BATCH_FOLLOW, &report).await {
                Ok((r, items)) => desk.update_batch(
                    BatchProgress {
                        reception_number: number.clone(),
                        total: r.total,
                        completed: r.completed,
                        status: "done".into(),
                        message: String::new(),
                    },
                    Some(desk::results_csv(&items)),
                ),
                Err(outcome) => desk.update_batch(
                    BatchProgress {
                        reception_number: number.clone(),
                        total: 0,
                        completed: 0,
                        status: "failed".into(),
                        message: DeskError::of(outcome).message,
                    },
                    None,
                ),
            }
        });
        Ok(progress)
    }

    fn update_batch(&self, progress: BatchProgress, csv: Option<String>) {
        {
            let mut inner = self.lock();
            let slot = inner
                .batches
                .entry(progress.reception_number.clone())
                .or_insert_with(|| (progress.clone(), None));
            // Progress only moves forward; the results, once there, stay.
            if slot.0.status != "done" || progress.status == "done" {
                slot.0 = progress.clone();
            }
            if csv.is_some() {
                slot.1 = csv;
            }
        }
        let _ = self.events.send(StaffEvent::Batch(progress));
    }

    pub fn batch(&self, reception_number: &str) -> Option<BatchProgress> {
        self.lock()
            .batches
            .get(reception_number)
            .map(|(p, _)| p.clone())
    }

    pub fn batches(&self) -> Vec<BatchProgress> {
        let mut all: Vec<BatchProgress> = self
            .lock()
            .batches
            .values()
            .map(|(p, _)| p.clone())
            .collect();
        all.sort_by(|a, b| b.reception_number.cmp(&a.reception_number));
        all
    }

    /// The results CSV of a finished batch.
    pub fn batch_csv(&self, reception_number: &str) -> Option<String> {
        self.lock()
            .batches
            .get(reception_number)
            .and_then(|(_, csv)| csv.clone())
    }
}
