//! Answers remembered by idempotency key, so a request sent again (a reception file answered
//! again after the terminal's agent crashed, a retried call) gets the first answer and writes
//! no second audit record, no second batch and no second quota charge.
//!
//! A client opts in with the gRPC metadata `idempotency-key` (1–128 printable ASCII
//! characters; the reader agent sends the SHA-256 of a request file's name and bytes). The key
//! is scoped to the calling terminal and the method: another terminal's identical key is
//! another request. Concurrent calls with one key run once; the others wait for its answer.
//!
//! Limits, on purpose: the memory is this instance's and is lost on restart (a key sent again
//! after a service restart is carried out again); it holds at most [`CAPACITY`] keys for at
//! most [`TTL`]; answers that say "try later" (service unavailable, rate limited, internal
//! errors, quota) are not remembered, so a retry is carried out.

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
