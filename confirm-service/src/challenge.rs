//! Challenges: 32 random bytes, single use, short-lived and bound to the terminal that asked.
//!
//! Outstanding challenges live in the store, not in this process's memory, so several service
//! instances sharing one store agree on "unused" (architecture.md "Storage"). They are written
//! by the service's one writer ([`AuditLog`]): an issued challenge is durable before it is
//! handed out, and a confirmation consumes its challenge in the same transaction as its audit
//! record, by a single conditional UPDATE, so two concurrent uses cannot both succeed. Used
//! challenges are kept until well past their expiry so a replay is reported as a replay, not
//! as an unknown challenge.

use onshi_proto::binding::{Purpose, CHALLENGE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use time::{Duration, OffsetDateTime};

use crate::audit::{AuditError, AuditLog};
use crate::store::{ChallengeUse, StoreError, StoredChallenge};

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

impl From<AuditError> for ChallengeError {
    fn from(e: AuditError) -> Self {
        ChallengeError::Store(e.to_string())
    }
}

/// Issues and consumes challenges in the shared store, through the writer.
#[derive(Debug)]
pub struct Challenges {
    writer: AuditLog,
    ttl: Duration,
    rng: SystemRandom,
}

impl Challenges {
    pub fn new(writer: AuditLog, ttl: Duration) -> Self {
        Self {
            writer,
            ttl,
            rng: SystemRandom::new(),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues a fresh challenge for `terminal` and `purpose`; resolves once it is stored.
    pub async fn issue(
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
        self.writer
            .insert_challenge(StoredChallenge {
                bytes,
                terminal: terminal.to_owned(),
                purpose: purpose as u8,
                expires_at,
            })
            .await?;
        // Forget long-dead challenges now and then (1 in 64 issues), keeping the table small.
        if bytes[0] & 0x3F == 0 {
            self.writer.purge_challenges(now - REMEMBER_FOR);
        }
        Ok(IssuedChallenge { bytes, expires_at })
    }

    /// What consuming `challenge` means for a request of `terminal` and `purpose` at `now`
    /// (for the writer, now or with the request's audit record).
    pub fn use_of(
        challenge: &[u8],
        terminal: &str,
        purpose: Purpose,
        now: OffsetDateTime,
    ) -> ChallengeUse {
        ChallengeUse {
            bytes: challenge.to_vec(),
            terminal: terminal.to_owned(),
            purpose: purpose as u8,
            at: now,
        }
    }

    /// Consumes a challenge now: it must be known, this terminal's, for this purpose,
    /// unexpired and unused. A challenge presented by another terminal is not consumed (that
    /// terminal could otherwise burn challenges it never received).
    pub async fn consume(
        &self,
        challenge: &[u8],
        terminal: &str,
        purpose: Purpose,
        now: OffsetDateTime,
    ) -> Result<(), ChallengeError> {
        if challenge.len() != CHALLENGE_LEN {
            return Err(ChallengeError::Unknown);
        }
        self.writer
            .consume(Self::use_of(challenge, terminal, purpose, now))
            .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    fn open(path: &std::path::Path) -> Challenges {
        let store = crate::store::SqliteStore::open(path).unwrap();
        let writer = AuditLog::start(Arc::new(store)).unwrap();
        Challenges::new(writer, Duration::seconds(60))
    }

    fn store(name: &str) -> (Challenges, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "onshi-challenge-{name}-{}.sqlite",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        (open(&path), path)
    }

    #[tokio::test]
    async fn single_use_bound_to_terminal_purpose_and_time() {
        let (c, path) = store("rules");
        let now = OffsetDateTime::now_utc();
        let a = c
            .issue("0110113719-T01", Purpose::Confirm, now)
            .await
            .unwrap();
        let b = c
            .issue("0110113719-T01", Purpose::Confirm, now)
            .await
            .unwrap();
        assert_ne!(a.bytes, b.bytes, "challenges must be random");
        assert_eq!(a.expires_at, now + Duration::seconds(60));

        assert_eq!(
            c.consume(&a.bytes, "0110113719-T02", Purpose::Confirm, now)
                .await,
            Err(ChallengeError::OtherTerminal)
        );
        assert_eq!(
            c.consume(&a.bytes, "0110113719-T01", Purpose::Register, now)
                .await,
            Err(ChallengeError::WrongPurpose)
        );
        assert_eq!(
            c.consume(&a.bytes, "0110113719-T01", Purpose::Confirm, now)
                .await,
            Ok(())
        );
        assert_eq!(
            c.consume(&a.bytes, "0110113719-T01", Purpose::Confirm, now)
                .await,
            Err(ChallengeError::Reused)
        );
        assert_eq!(
            c.consume(
                &b.bytes,
                "0110113719-T01",
                Purpose::Confirm,
                now + Duration::seconds(61)
            )
            .await,
            Err(ChallengeError::Expired)
        );
        assert_eq!(
            c.consume(&[7u8; 32], "0110113719-T01", Purpose::Confirm, now)
                .await,
            Err(ChallengeError::Unknown)
        );
        assert_eq!(
            c.consume(&[7u8; 3], "0110113719-T01", Purpose::Confirm, now)
                .await,
            Err(ChallengeError::Unknown)
        );
        drop(c);
        let _ = std::fs::remove_file(path);
    }

    #[tokio::test]
    async fn a_second_instance_on_the_same_store_sees_the_use() {
        let (c1, path) = store("shared");
        let c2 = open(&path);
        let now = OffsetDateTime::now_utc();
        let a = c1.issue("T", Purpose::Confirm, now).await.unwrap();
        assert_eq!(
            c2.consume(&a.bytes, "T", Purpose::Confirm, now).await,
            Ok(())
        );
        assert_eq!(
            c1.consume(&a.bytes, "T", Purpose::Confirm, now).await,
            Err(ChallengeError::Reused)
        );
        drop((c1, c2));
        let _ = std::fs::remove_file(path);
    }
}
