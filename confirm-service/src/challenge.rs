//! Challenges: 32 bytes, single use, short-lived and bound to the terminal and purpose that
//! asked, **sealed** by the service so that issuing one writes nothing.
//!
//! A challenge is (docs/protocol.md "Challenges"):
//!
//! | bytes | what |
//! |---|---|
//! | 0–7 | its expiry, Unix milliseconds, big-endian |
//! | 8–14 | 7 random bytes from the system CSPRNG |
//! | 15 | the low byte of the sealing key's id |
//! | 16–23 | HMAC-SHA-256(key, `"onshi challenge v1\0"` ‖ bytes 0–15), first 8 bytes |
//! | 24–31 | HMAC-SHA-256(key, `"onshi challenge binding v1\0"` ‖ bytes 0–15 ‖ purpose ‖ terminal name), first 8 bytes |
//!
//! Checking one is computation: the first tag says the service issued it (else *unknown*), the
//! second that it was issued to this terminal (else *other terminal*, unless it matches this
//! terminal with another purpose: *wrong purpose*), the expiry that it is still fresh. Its
//! single use is then one insert of its first 16 bytes (the **nonce**) into the store's
//! `used_challenges` table, in the same group commit as the request's audit record
//! ([`crate::audit`]): a second use, on any instance sharing the store, finds the nonce there
//! and is refused as *reused*. Nonces begin with the expiry, so the table's index grows at its
//! end and expired nonces are pruned by a key range.
//!
//! The sealing keys live in the store (`challenge_keys`), shared by every instance: a new key
//! is created when the newest is older than [`ROTATE_AFTER`], every instance re-reads the keys
//! every [`REFRESH_EVERY`], and a key seals challenges only once it is [`ACTIVATE_AFTER`] old
//! (so every instance knows it before any terminal holds a challenge under it). Challenges
//! under the current and the previous key are accepted.

use std::sync::{Arc, RwLock, Weak};

use onshi_proto::binding::{Purpose, CHALLENGE_LEN};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};

use crate::audit::AuditLog;
use crate::clock::Clock;
use crate::store::{ChallengeKey, ChallengeUse, Store, StoreError, NONCE_LEN};

/// How long a used nonce is remembered after its challenge's expiry (a margin for instances
/// whose clocks disagree; an expired challenge is refused by computation before its nonce is
/// looked at).
const REMEMBER_FOR: Duration = Duration::hours(1);

/// A new sealing key is made when the newest is older than this.
pub const ROTATE_AFTER: Duration = Duration::hours(24);

/// How often each instance re-reads the sealing keys (and rotates them when due).
pub const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// A new key seals challenges only once it is this old: every instance has read it by then.
pub const ACTIVATE_AFTER: Duration = Duration::seconds(150);

const SEAL_CONTEXT: &[u8] = b"onshi challenge v1\0";
const BIND_CONTEXT: &[u8] = b"onshi challenge binding v1\0";
const TAG_LEN: usize = 8;

/// Why a challenge cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    #[error("the challenge is unknown to the service")]
    Unknown,
    #[error("the challenge has expired")]
    Expired,
    #[error("the challenge was already used")]
    Reused,
    #[error("the challenge was issued to another terminal")]
    OtherTerminal,
    #[error("the challenge was issued for another purpose")]
    WrongPurpose,
    #[error("challenge store: {0}")]
    Store(String),
}

impl From<StoreError> for ChallengeError {
    fn from(e: StoreError) -> Self {
        ChallengeError::Store(e.to_string())
    }
}

/// A challenge handed to a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedChallenge {
    pub bytes: [u8; CHALLENGE_LEN],
    pub expires_at: OffsetDateTime,
}

/// A sealing key in memory.
#[derive(Debug)]
struct Key {
    id: i64,
    created_at: OffsetDateTime,
    hmac: hmac::Key,
}

/// The keys accepted (newest first, at most two) and the one that seals.
#[derive(Debug, Default)]
struct KeyRing {
    keys: Vec<Key>,
}

impl KeyRing {
    fn from_store(keys: &[ChallengeKey]) -> Self {
        let mut keys: Vec<Key> = keys
            .iter()
            .map(|k| Key {
                id: k.id,
                created_at: k.created_at,
                hmac: hmac::Key::new(hmac::HMAC_SHA256, &k.secret),
            })
            .collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.id));
        keys.truncate(2);
        Self { keys }
    }

    /// The newest key old enough to be known everywhere; the only one when there is one.
    fn sealing(&self, now: OffsetDateTime) -> Option<&Key> {
        match self.keys.as_slice() {
            [] => None,
            [only] => Some(only),
            [newest, previous, ..] => Some(if newest.created_at + ACTIVATE_AFTER <= now {
                newest
            } else {
                previous
            }),
        }
    }

    fn by_low_byte(&self, b: u8) -> Option<&Key> {
        self.keys.iter().find(|k| (k.id & 0xFF) as u8 == b)
    }
}

fn seal_tag(key: &hmac::Key, head: &[u8]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(SEAL_CONTEXT);
    ctx.update(head);
    ctx.sign()
}

fn bind_tag(key: &hmac::Key, head: &[u8], purpose: u8, terminal: &str) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(BIND_CONTEXT);
    ctx.update(head);
    ctx.update(&[purpose]);
    ctx.update(terminal.as_bytes());
    ctx.sign()
}

/// Constant-time comparison of a truncated tag.
fn tag_matches(tag: &hmac::Tag, presented: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(&tag.as_ref()[..TAG_LEN], presented).into()
}

/// Every purpose a challenge can be sealed for (a test checks it against the proto enum).
const PURPOSES: [Purpose; 9] = [
    Purpose::Confirm,
    Purpose::Register,
    Purpose::Face,
    Purpose::VisualCheck,
    Purpose::RegisterByReader,
    Purpose::SmartphoneAndroid,
    Purpose::SmartphoneIphone,
    Purpose::HomeCareConfirm,
    Purpose::HomeCareVisualCheck,
];

/// Issues sealed challenges and checks presented ones by computation.
#[derive(Debug)]
pub struct Challenges {
    keys: RwLock<KeyRing>,
    writer: AuditLog,
    ttl: Duration,
    rng: SystemRandom,
}

impl Challenges {
    /// Challenges sealed with `keys` (as [`Store::challenge_keys`] returns them); the writer
    /// purges old nonces now and then.
    pub fn new(writer: AuditLog, ttl: Duration, keys: &[ChallengeKey]) -> Self {
        Self {
            keys: RwLock::new(KeyRing::from_store(keys)),
            writer,
            ttl,
            rng: SystemRandom::new(),
        }
    }

    /// Reads (and when due rotates) the sealing keys in `store`, then makes the challenges.
    pub fn open(
        store: &dyn Store,
        writer: AuditLog,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Self, StoreError> {
        // On a thread of its own: the PostgreSQL client runs its own runtime, which cannot
        // start inside the caller's (the server builds its state on its runtime).
        let keys = std::thread::scope(|s| {
            s.spawn(|| store.challenge_keys(now, ROTATE_AFTER))
                .join()
                .unwrap_or(Err(StoreError::Internal(
                    "reading the challenge keys failed",
                )))
        })?;
        Ok(Self::new(writer, ttl, &keys))
    }

    /// Replaces the keys with those now in the store (rotating them when due).
    pub fn refresh(&self, store: &dyn Store, now: OffsetDateTime) -> Result<(), StoreError> {
        let ring = KeyRing::from_store(&store.challenge_keys(now, ROTATE_AFTER)?);
        if let Ok(mut keys) = self.keys.write() {
            *keys = ring;
        }
        Ok(())
    }

    /// What the key thread does every [`REFRESH_EVERY`]: re-reads the keys (rotating them when
    /// due) and asks the writer to forget expired nonces and idempotency answers, so the
    /// tables stay bounded even on a service that issues no challenge (card-less traffic
    /// only: the purge on issue never runs there).
    pub fn housekeeping(&self, store: &dyn Store, now: OffsetDateTime) -> Result<(), StoreError> {
        self.writer.purge_challenges(now - REMEMBER_FOR);
        self.refresh(store, now)
    }

    /// Starts a thread that refreshes the keys every [`REFRESH_EVERY`]; it ends once the
    /// challenges are dropped.
    pub fn spawn_refresh(
        this: &Arc<Self>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<()> {
        let weak: Weak<Self> = Arc::downgrade(this);
        std::thread::Builder::new()
            .name("challenge-keys".into())
            .spawn(move || loop {
                std::thread::sleep(REFRESH_EVERY);
                let Some(challenges) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = challenges.housekeeping(store.as_ref(), clock.now()) {
                    tracing::warn!(error = %e, "reading the challenge keys failed; will retry");
                }
            })
            .map(drop)
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues a fresh challenge for `terminal` and `purpose`: computation only.
    pub fn issue(
        &self,
        terminal: &str,
        purpose: Purpose,
        now: OffsetDateTime,
    ) -> Result<IssuedChallenge, ChallengeError> {
        let expires_at = now + self.ttl;
        let mut bytes = [0u8; CHALLENGE_LEN];
        let expiry = u64::try_from(expires_at.unix_timestamp_nanos() / 1_000_000)
            .map_err(|_| ChallengeError::Store("the clock is before 1970".into()))?;
        bytes[..8].copy_from_slice(&expiry.to_be_bytes());
        self.rng
            .fill(&mut bytes[8..15])
            .map_err(|_| ChallengeError::Store("system random generator failed".into()))?;
        {
            let ring = self
                .keys
                .read()
                .map_err(|_| ChallengeError::Store("challenge keys poisoned".into()))?;
            let key = ring
                .sealing(now)
                .ok_or_else(|| ChallengeError::Store("no challenge key".into()))?;
            bytes[15] = (key.id & 0xFF) as u8;
            let (head, tail) = bytes.split_at_mut(NONCE_LEN);
            tail[..TAG_LEN].copy_from_slice(&seal_tag(&key.hmac, head).as_ref()[..TAG_LEN]);
            tail[TAG_LEN..].copy_from_slice(
                &bind_tag(&key.hmac, head, purpose as u8, terminal).as_ref()[..TAG_LEN],
            );
        }
        // Forget long-dead nonces now and then (1 in 64 issues), keeping the table small.
        if bytes[8] & 0x3F == 0 {
            self.writer.purge_challenges(now - REMEMBER_FOR);
        }
        Ok(IssuedChallenge { bytes, expires_at })
    }

    /// Checks a presented challenge for a request of `terminal` and `purpose` at `now`: that
    /// the service sealed it, for this terminal and purpose, and that it has not expired.
    /// Returns its use, to be consumed with the request's audit record (the store then refuses
    /// a second use). A challenge refused here is not consumed: another terminal could
    /// otherwise burn challenges it never received.
    pub fn check(
        &self,
        challenge: &[u8],
        terminal: &str,
        purpose: Purpose,
        now: OffsetDateTime,
    ) -> Result<ChallengeUse, ChallengeError> {
        let Ok(bytes) = <&[u8; CHALLENGE_LEN]>::try_from(challenge) else {
            return Err(ChallengeError::Unknown);
        };
        let (head, tail) = bytes.split_at(NONCE_LEN);
        let ring = self
            .keys
            .read()
            .map_err(|_| ChallengeError::Store("challenge keys poisoned".into()))?;
        let key = ring.by_low_byte(head[15]).ok_or(ChallengeError::Unknown)?;
        if !tag_matches(&seal_tag(&key.hmac, head), &tail[..TAG_LEN]) {
            return Err(ChallengeError::Unknown);
        }
        let bound = &tail[TAG_LEN..];
        if !tag_matches(&bind_tag(&key.hmac, head, purpose as u8, terminal), bound) {
            let other_purpose = PURPOSES
                .iter()
                .filter(|p| **p != purpose)
                .any(|p| tag_matches(&bind_tag(&key.hmac, head, *p as u8, terminal), bound));
            return Err(if other_purpose {
                ChallengeError::WrongPurpose
            } else {
                ChallengeError::OtherTerminal
            });
        }
        let mut expiry = [0u8; 8];
        expiry.copy_from_slice(&head[..8]);
        let expiry = i128::from(u64::from_be_bytes(expiry)) * 1_000_000;
        if now.unix_timestamp_nanos() > expiry {
            return Err(ChallengeError::Expired);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(head);
        Ok(ChallengeUse { nonce })
    }
}

/// The first bytes of the nonces of challenges that expired before `before`: every nonce
/// below it is prunable.
pub fn nonce_floor(before: OffsetDateTime) -> [u8; 8] {
    let ms = u64::try_from(before.unix_timestamp_nanos() / 1_000_000).unwrap_or_default();
    ms.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-03 09:00 UTC);

    fn key(id: i64, byte: u8, created_at: OffsetDateTime) -> ChallengeKey {
        ChallengeKey {
            id,
            secret: vec![byte; 32],
            created_at,
        }
    }

    fn challenges(keys: &[ChallengeKey]) -> Challenges {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!(
            "onshi-challenge-unit-{}-{n}.sqlite",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let store = crate::store::SqliteStore::open(&path).unwrap();
        let writer = AuditLog::start(Arc::new(store)).unwrap();
        let _ = std::fs::remove_file(&path);
        Challenges::new(writer, Duration::seconds(60), keys)
    }

    #[tokio::test]
    async fn bound_to_terminal_purpose_and_time_and_random() {
        let c = challenges(&[key(1, 7, NOW)]);
        let a = c.issue("0110113719-T01", Purpose::Confirm, NOW).unwrap();
        let b = c.issue("0110113719-T01", Purpose::Confirm, NOW).unwrap();
        assert_ne!(a.bytes, b.bytes, "challenges must be random");
        assert_eq!(a.expires_at, NOW + Duration::seconds(60));
        let used = c
            .check(&a.bytes, "0110113719-T01", Purpose::Confirm, NOW)
            .unwrap();
        assert_eq!(used.nonce[..], a.bytes[..16]);
        assert_eq!(
            c.check(&a.bytes, "0110113719-T02", Purpose::Confirm, NOW),
            Err(ChallengeError::OtherTerminal)
        );
        assert_eq!(
            c.check(&a.bytes, "0110113719-T01", Purpose::Register, NOW),
            Err(ChallengeError::WrongPurpose)
        );
        // A smartphone challenge of one platform presented for the other (or as a card's).
        let phone = c
            .issue("0110113719-T01", Purpose::SmartphoneAndroid, NOW)
            .unwrap();
        for other in [Purpose::SmartphoneIphone, Purpose::Confirm] {
            assert_eq!(
                c.check(&phone.bytes, "0110113719-T01", other, NOW),
                Err(ChallengeError::WrongPurpose)
            );
        }
        // Another terminal presenting it for another purpose: other terminal first.
        assert_eq!(
            c.check(&a.bytes, "0110113719-T02", Purpose::Face, NOW),
            Err(ChallengeError::OtherTerminal)
        );
        let last = NOW + Duration::seconds(60);
        assert!(c
            .check(&b.bytes, "0110113719-T01", Purpose::Confirm, last)
            .is_ok());
        assert_eq!(
            c.check(
                &b.bytes,
                "0110113719-T01",
                Purpose::Confirm,
                last + Duration::milliseconds(1)
            ),
            Err(ChallengeError::Expired)
        );
    }

    #[tokio::test]
    async fn anything_the_service_did_not_seal_is_unknown() {
        let c = challenges(&[key(1, 7, NOW)]);
        let a = c.issue("T", Purpose::Confirm, NOW).unwrap();
        assert_eq!(
            c.check(&[7u8; 32], "T", Purpose::Confirm, NOW),
            Err(ChallengeError::Unknown)
        );
        assert_eq!(
            c.check(&a.bytes[..31], "T", Purpose::Confirm, NOW),
            Err(ChallengeError::Unknown)
        );
        // Any changed bit of the sealed part (the expiry moved later, the random part) or of
        // the first tag: unknown.
        for i in 0..24 {
            let mut forged = a.bytes;
            forged[i] ^= 1;
            assert_eq!(
                c.check(&forged, "T", Purpose::Confirm, NOW),
                Err(ChallengeError::Unknown),
                "byte {i}"
            );
        }
        // Another service's key (same id, other secret): unknown.
        let other = challenges(&[key(1, 8, NOW)]);
        assert_eq!(
            other.check(&a.bytes, "T", Purpose::Confirm, NOW),
            Err(ChallengeError::Unknown)
        );
    }

    #[tokio::test]
    async fn rotation_accepts_the_previous_key_and_seals_with_the_new_once_active() {
        let old = key(1, 1, NOW - Duration::days(2));
        let new = key(2, 2, NOW);
        let c_old = challenges(std::slice::from_ref(&old));
        let sealed_by_old = c_old.issue("T", Purpose::Confirm, NOW).unwrap();
        let c = challenges(&[old.clone(), new.clone()]);
        // Just rotated: the previous key still seals (other instances may not know the new).
        let early = c.issue("T", Purpose::Confirm, NOW).unwrap();
        assert_eq!(early.bytes[15], 1);
        let later = NOW + ACTIVATE_AFTER;
        let late = c.issue("T", Purpose::Confirm, later).unwrap();
        assert_eq!(late.bytes[15], 2);
        assert!(c
            .check(&sealed_by_old.bytes, "T", Purpose::Confirm, NOW)
            .is_ok());
        assert!(c.check(&late.bytes, "T", Purpose::Confirm, later).is_ok());
        // Two rotations later the oldest key is no longer accepted.
        let c3 = challenges(&[new, key(3, 3, later)]);
        assert_eq!(
            c3.check(&sealed_by_old.bytes, "T", Purpose::Confirm, NOW),
            Err(ChallengeError::Unknown)
        );
    }

    #[test]
    fn nonces_sort_by_expiry() {
        let a = nonce_floor(NOW);
        let b = nonce_floor(NOW + Duration::milliseconds(1));
        assert!(a < b);
    }

    /// The key thread's housekeeping forgets expired idempotency answers (and nonces) with no
    /// challenge issued: a service answering only card-less calls keeps the table bounded.
    #[tokio::test]
    async fn housekeeping_prunes_expired_idempotency_answers_without_any_issue() {
        use crate::store::{AuditWrite, GroupWrite, RememberedAnswer, Store};
        let path = std::env::temp_dir().join(format!(
            "onshi-challenge-housekeeping-{}.sqlite",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        let store = Arc::new(crate::store::SqliteStore::open(&path).unwrap());
        let record = |id: &str| crate::audit::AuditRecord {
            confirmation_id: id.into(),
            at: NOW,
            institution_code: "1340123452".into(),
            terminal_id: "T01".into(),
            person_id: None,
            method: "numbers".into(),
            purpose: "confirm".into(),
            result_code: "RESULT_CODE_OK".into(),
            consents: 0,
            certificate_sha256: None,
            returned: "{}".into(),
            claimed_at: None,
        };
        let remembered = |id: &str, key: &str, expires_at| {
            let mut write = AuditWrite::record(record(id));
            write.remember = Some(RememberedAnswer {
                terminal: "1340123452-T01".into(),
                method: "numbers".into(),
                key: key.into(),
                answer: b"answer".to_vec(),
                expires_at,
            });
            GroupWrite::Audit(Box::new(write))
        };
        Store::commit_group(
            store.as_ref(),
            &mut [
                remembered("C1", "old", NOW - Duration::days(2)),
                remembered("C2", "fresh", NOW + Duration::hours(1)),
            ],
            &crate::store::keep_record,
        )
        .unwrap();
        let count = || {
            store.with_connection(|c| {
                c.query_row("SELECT count(*) FROM idempotency", [], |r| {
                    r.get::<_, i64>(0)
                })
                .unwrap()
            })
        };
        assert_eq!(count(), 2);
        let writer = AuditLog::start(store.clone()).unwrap();
        let c = Challenges::new(writer, Duration::seconds(60), &[key(1, 7, NOW)]);
        c.housekeeping(store.as_ref(), NOW).unwrap();
        // The purge is the writer's: wait for it, bounded.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while count() != 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(
            count(),
            1,
            "the expired answer is pruned, the fresh one kept"
        );
        assert_eq!(
            store
                .remembered_answer("1340123452-T01", "numbers", "fresh", NOW)
                .unwrap(),
            Some(b"answer".to_vec())
        );
        drop(c);
        let _ = std::fs::remove_file(&path);
    }

    /// A challenge presented for the wrong purpose is told apart from another terminal's only
    /// for the purposes listed: every purpose of the proto must be there.
    #[test]
    fn every_proto_purpose_is_known_to_the_challenges() {
        for v in 1..=255 {
            if onshi_proto::v1::Purpose::try_from(v).is_ok() {
                assert!(
                    PURPOSES.iter().any(|p| *p as i32 == v),
                    "purpose {v} missing from PURPOSES"
                );
            }
        }
    }
}
