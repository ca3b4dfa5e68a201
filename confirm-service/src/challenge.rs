//! Challenges: 32 random bytes, single use, short-lived and bound to the terminal that asked.
//!
//! Outstanding challenges live in the store, not in this process's memory, so several service
//! instances sharing one store agree on "unused" (architecture.md "Storage"). Consumption is a
//! single conditional UPDATE, so two concurrent uses of one challenge cannot both succeed.
//! Used challenges are kept until well past their expiry so a replay is reported as a replay,
//! not as an unknown challenge.

use std::sync::Arc;

use onshi_proto::binding::{Purpose, CHALLENGE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};

use crate::store::{Store, StoreError, StoredChallenge};

/// How long a used or expired challenge is remembered after its expiry.
const REMEMBER_FOR: Duration = Duration::hours(1);

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

/// Issues and consumes challenges in the shared store.
#[derive(Debug)]
pub struct Challenges {
    store: Arc<dyn Store>,
    ttl: Duration,
    rng: SystemRandom,
}

impl Challenges {
    pub fn new(store: Arc<dyn Store>, ttl: Duration) -> Self {
        Self {
            store,
            ttl,
            rng: SystemRandom::new(),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues a fresh challenge for `terminal` and `purpose`. Blocking.
    pub fn issue(
        &self,
        terminal: &str,
        purpose: Purpose,
        now: OffsetDateTime,
    ) -> Result<IssuedChallenge, ChallengeError> {
        let mut bytes = [0u8; CHALLENGE_LEN];
        self.rng
            .fill(&mut bytes)
            .map_err(|_| ChallengeError::Store("system random generator failed".into()))?;
        let expires_at = now + self.ttl;
        self.store.insert_challenge(&StoredChallenge {
            bytes,
            terminal: terminal.to_owned(),
            purpose: purpose as u8,
            expires_at,
        })?;
        // Forget long-dead challenges now and then (1 in 64 issues), keeping the table small.
        if bytes[0] & 0x3F == 0 {
            self.store.purge_challenges(now - REMEMBER_FOR)?;
        }
        Ok(IssuedChallenge { bytes, expires_at })
    }

    /// Consumes a challenge: it must be known, this terminal's, for this purpose, unexpired
    /// and unused. A challenge presented by another terminal is not consumed (that terminal
    /// could otherwise burn challenges it never received). Blocking.
    pub fn consume(
        &self,
        challenge: &[u8],
        terminal: &str,
        purpose: Purpose,
        now: OffsetDateTime,
    ) -> Result<(), ChallengeError> {
        if challenge.len() != CHALLENGE_LEN {
            return Err(ChallengeError::Unknown);
        }
        self.store
            .consume_challenge(challenge, terminal, purpose as u8, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &std::path::Path) -> Challenges {
        let store = crate::store::SqliteStore::open(path).unwrap();
        Challenges::new(Arc::new(store), Duration::seconds(60))
    }

    fn store(name: &str) -> (Challenges, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "onshi-challenge-{name}-{}.sqlite",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        (open(&path), path)
    }

    #[test]
    fn single_use_bound_to_terminal_purpose_and_time() {
        let (c, path) = store("rules");
        let now = OffsetDateTime::now_utc();
        let a = c.issue("0110113719-T01", Purpose::Confirm, now).unwrap();
        let b = c.issue("0110113719-T01", Purpose::Confirm, now).unwrap();
        assert_ne!(a.bytes, b.bytes, "challenges must be random");
        assert_eq!(a.expires_at, now + Duration::seconds(60));

        assert_eq!(
            c.consume(&a.bytes, "0110113719-T02", Purpose::Confirm, now),
            Err(ChallengeError::OtherTerminal)
        );
        assert_eq!(
            c.consume(&a.bytes, "0110113719-T01", Purpose::Register, now),
            Err(ChallengeError::WrongPurpose)
        );
        assert_eq!(
            c.consume(&a.bytes, "0110113719-T01", Purpose::Confirm, now),
            Ok(())
        );
        assert_eq!(
            c.consume(&a.bytes, "0110113719-T01", Purpose::Confirm, now),
            Err(ChallengeError::Reused)
        );
        assert_eq!(
            c.consume(
                &b.bytes,
                "0110113719-T01",
                Purpose::Confirm,
                now + Duration::seconds(61)
            ),
            Err(ChallengeError::Expired)
        );
        assert_eq!(
            c.consume(&[7u8; 32], "0110113719-T01", Purpose::Confirm, now),
            Err(ChallengeError::Unknown)
        );
        assert_eq!(
            c.consume(&[7u8; 3], "0110113719-T01", Purpose::Confirm, now),
            Err(ChallengeError::Unknown)
        );
        drop(c);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_second_instance_on_the_same_store_sees_the_use() {
        let (c1, path) = store("shared");
        let c2 = open(&path);
        let now = OffsetDateTime::now_utc();
        let a = c1.issue("T", Purpose::Confirm, now).unwrap();
        assert_eq!(c2.consume(&a.bytes, "T", Purpose::Confirm, now), Ok(()));
        assert_eq!(
            c1.consume(&a.bytes, "T", Purpose::Confirm, now),
            Err(ChallengeError::Reused)
        );
        drop((c1, c2));
        let _ = std::fs::remove_file(path);
    }
}
