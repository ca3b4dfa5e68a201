//! Answers remembered by idempotency key, so a request sent again (a reception file answered
//! again after the terminal's agent crashed, a retried call) gets the first answer and writes
//! no second audit record, no second batch and no second quota charge.
//!
//! A client opts in with the gRPC metadata `idempotency-key` (1–128 printable ASCII
//! characters; the reader agent sends the SHA-256 of a request file's name and bytes). The key
//! is scoped to the calling terminal and the method: another terminal's identical key is
//! another request. Concurrent calls with one key run once; the others wait for its answer.
//!
//! Two layers. In memory, per instance, concurrent calls with one key wait for the first
//! ([`Idempotency::once`]). In the store, the answer is written **in the same transaction as
//! the call's audit record** (the group commit, [`crate::store::AuditWrite::remember`]), so a
//! key sent again after a service restart, or to another instance sharing the PostgreSQL
//! store, is answered from the record: the call was carried out exactly when its record
//! exists. Two instances receiving one key at the same moment may both carry it out (the
//! second answer is not remembered); a client sends a key to one instance at a time.
//!
//! Limits, on purpose: a key is remembered for [`TTL`] (expired keys are pruned with the
//! expired challenges); in memory at most [`CAPACITY`] keys; answers that say "try later"
//! (service unavailable, rate limited, internal errors, quota) are not remembered, so a retry
//! is carried out.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use onshi_proto::v1::ResultCode;
use tokio::sync::OnceCell;
use tonic::{Request, Status};

/// The metadata key.
pub const METADATA: &str = "idempotency-key";
/// Keys remembered at most (the oldest is forgotten first).
pub const CAPACITY: usize = 100_000;
/// How long a key is remembered.
pub const TTL: Duration = Duration::from_secs(24 * 3600);

type Slot = Arc<OnceCell<Result<Vec<u8>, Status>>>;
type Key = (String, &'static str, String);

/// The remembered answers.
#[derive(Debug, Default)]
pub struct Idempotency {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<Key, (Instant, Slot)>,
    order: VecDeque<(Instant, Key)>,
}

/// The key a call is carried out under, put in the request's extensions by
/// [`crate::service::ConfirmationService`] so that its answer is remembered with its audit
/// record.
#[derive(Debug, Clone)]
pub struct RememberKey {
    /// `<医療機関コード>-<terminal id>`.
    pub terminal: String,
    pub method: &'static str,
    pub key: String,
}

/// An answer as the store keeps it.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredAnswer {
    /// The answer's message, encoded (when not refused).
    #[prost(bytes = "vec", tag = "1")]
    message: Vec<u8>,
    #[prost(bool, tag = "2")]
    refused: bool,
    /// A refusal's gRPC code, message and details.
    #[prost(int32, tag = "3")]
    code: i32,
    #[prost(string, tag = "4")]
    status_message: String,
    #[prost(bytes = "vec", tag = "5")]
    details: Vec<u8>,
}

/// The bytes to remember for an answer (its message encoded, or a refusal), or `None` when
/// it is not to be remembered (a "try later" refusal, or an answer that is not a message).
pub fn encode_answer(answer: &Option<Result<Vec<u8>, Status>>) -> Option<Vec<u8>> {
    let stored = match answer.as_ref()? {
        Ok(message) => StoredAnswer {
            message: message.clone(),
            ..Default::default()
        },
        Err(status) if is_final(status) => StoredAnswer {
            refused: true,
            code: status.code() as i32,
            status_message: status.message().to_owned(),
            details: status.details().to_vec(),
            ..Default::default()
        },
        Err(_) => return None,
    };
    Some(prost::Message::encode_to_vec(&stored))
}

/// The answer remembered in `bytes`, as `T` or the refusal.
pub fn decode_answer<T: prost::Message + Default>(bytes: &[u8]) -> Result<T, Status> {
    let stored = <StoredAnswer as prost::Message>::decode(bytes)
        .map_err(|e| Status::internal(format!("a remembered answer: {e}")))?;
    if stored.refused {
        let mut status = Status::with_details(
            tonic::Code::from_i32(stored.code),
            stored.status_message,
            stored.details.into(),
        );
        // The result code's metadata, as a refusal carries it (it is in the details too).
        if let Some(code) = onshi_proto::status::result_code_of(&status) {
            if let Ok(v) = (code as i32).to_string().parse() {
                status
                    .metadata_mut()
                    .insert(onshi_proto::RESULT_CODE_METADATA, v);
            }
        }
        return Err(status);
    }
    T::decode(stored.message.as_slice())
        .map_err(|e| Status::internal(format!("a remembered answer: {e}")))
}

/// The message of an answer, encoded, if it is one of the calls that take a key.
pub fn encode_message<T: 'static>(t: &T) -> Option<Vec<u8>> {
    use onshi_proto::v1 as pb;
    use prost::Message;
    let any = t as &dyn std::any::Any;
    if let Some(m) = any.downcast_ref::<pb::ConfirmationResult>() {
        return Some(m.encode_to_vec());
    }
    if let Some(m) = any.downcast_ref::<pb::MedicationsResponse>() {
        return Some(m.encode_to_vec());
    }
    if let Some(m) = any.downcast_ref::<pb::CheckupsResponse>() {
        return Some(m.encode_to_vec());
    }
    if let Some(m) = any.downcast_ref::<pb::SubmitBatchResponse>() {
        return Some(m.encode_to_vec());
    }
    None
}

/// The request's key, if it carries a usable one.
pub fn key_of<T>(request: &Request<T>) -> Option<String> {
    let v = request.metadata().get(METADATA)?.to_str().ok()?;
    let ok = (1..=128).contains(&v.len()) && v.bytes().all(|b| (0x21..=0x7e).contains(&b));
    ok.then(|| v.to_owned())
}

/// Whether a refusal is final (remembered) or says "try later" (carried out again).
fn is_final(status: &Status) -> bool {
    !matches!(
        onshi_proto::status::result_code_of(status),
        None | Some(
            ResultCode::ServiceUnavailable
                | ResultCode::RateLimited
                | ResultCode::InternalError
                | ResultCode::QuotaExceeded
                | ResultCode::RevocationUnavailable
        )
    )
}

impl Idempotency {
    fn slot(&self, key: Key, now: Instant) -> Slot {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Forget what is too old or over capacity.
        while let Some((at, k)) = inner.order.front().cloned() {
            let expired = now.duration_since(at) > TTL;
            if !expired && inner.order.len() <= CAPACITY {
                break;
            }
            inner.order.pop_front();
            if inner.slots.get(&k).is_some_and(|(t, _)| *t == at) {
                inner.slots.remove(&k);
            }
        }
        if let Some((_, slot)) = inner.slots.get(&key) {
            return slot.clone();
        }
        let slot: Slot = Arc::new(OnceCell::new());
        inner.slots.insert(key.clone(), (now, slot.clone()));
        inner.order.push_back((now, key));
        slot
    }

    /// Runs `call` once per (terminal, method, key); a repeated key gets the remembered
    /// answer. `T` is the answer's protobuf message.
    pub async fn once<T, F, Fut>(
        &self,
        terminal: &str,
        method: &'static str,
        key: String,
        call: F,
    ) -> Result<T, Status>
    where
        T: prost::Message + Default,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let slot = self.slot((terminal.to_owned(), method, key), Instant::now());
        let answer = slot
            .get_or_try_init(|| async {
                match call().await {
                    Ok(t) => Ok(Ok(t.encode_to_vec())),
                    Err(s) if is_final(&s) => Ok(Err(s)),
                    Err(s) => Err(s),
                }
            })
            .await?;
        match answer {
            Ok(bytes) => T::decode(bytes.as_slice())
                .map_err(|e| Status::internal(format!("a remembered answer: {e}"))),
            Err(s) => Err(s.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn a_repeated_key_is_answered_from_memory_per_terminal_and_method() {
        let memo = Idempotency::default();
        let calls = AtomicU32::new(0);
        let call = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Status>(onshi_proto::v1::SubmitBatchResponse {
                reception_number: "R1".into(),
                total: 3,
                submitted_at: None,
            })
        };
        let a = memo.once("T01", "submit", "k".into(), call).await.unwrap();
        let b = memo.once("T01", "submit", "k".into(), call).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        memo.once("T02", "submit", "k".into(), call).await.unwrap();
        memo.once("T01", "numbers", "k".into(), call).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn try_later_is_not_remembered() {
        let memo = Idempotency::default();
        let calls = AtomicU32::new(0);
        let call = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<onshi_proto::v1::SubmitBatchResponse, _>(Status::unavailable("down"))
        };
        assert!(memo.once("T", "m", "k".into(), call).await.is_err());
        assert!(memo.once("T", "m", "k".into(), call).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_remembered_answer_decodes_to_what_was_answered_and_try_later_is_not_kept() {
        let ok = onshi_proto::v1::SubmitBatchResponse {
            reception_number: "R1".into(),
            total: 3,
            submitted_at: None,
        };
        let bytes = encode_answer(&encode_message(&ok).map(Ok)).unwrap();
        assert_eq!(
            decode_answer::<onshi_proto::v1::SubmitBatchResponse>(&bytes).unwrap(),
            ok
        );
        let refused = onshi_proto::status::refusal(
            tonic::Code::InvalidArgument,
            ResultCode::BadRequest,
            "no",
            Default::default(),
        );
        let bytes = encode_answer(&Some(Err(refused.clone()))).unwrap();
        let back = decode_answer::<onshi_proto::v1::SubmitBatchResponse>(&bytes).unwrap_err();
        assert_eq!(
            (back.code(), back.message(), back.details()),
            (tonic::Code::InvalidArgument, "no", refused.details())
        );
        assert_eq!(
            onshi_proto::status::result_code_of(&back),
            Some(ResultCode::BadRequest)
        );
        assert_eq!(
            back.metadata().get(onshi_proto::RESULT_CODE_METADATA),
            refused.metadata().get(onshi_proto::RESULT_CODE_METADATA)
        );
        assert_eq!(encode_answer(&Some(Err(Status::unavailable("down")))), None);
        assert_eq!(encode_message(&"not a message"), None);
    }

    #[test]
    fn keys_are_bounded_printable_ascii() {
        let mut r = Request::new(());
        assert_eq!(key_of(&r), None);
        r.metadata_mut().insert(METADATA, "abc".parse().unwrap());
        assert_eq!(key_of(&r).as_deref(), Some("abc"));
        r.metadata_mut()
            .insert(METADATA, "x".repeat(129).parse().unwrap());
        assert_eq!(key_of(&r), None);
    }
}
