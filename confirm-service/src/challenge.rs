//! Challenges: 32 random bytes, single use, short-lived and bound to the terminal that asked.
//!
//! Outstanding challenges live in the store, not in this process's memory, so several service
//! instances sharing one store agree on "unused" (architecture.md "Storage"). Consumption is a
//! single conditional UPDATE, so two concurrent uses of one challenge cannot both succeed.
//! Used challenges are kept until well past their expiry so a replay is reported as a replay,
//! not as an unknown challenge.

use std::path::Path;
use std::sync::Mutex;

use onshi_proto::binding::{Purpose, CHALLENGE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{params, Connection, OptionalExtension};
use time::{Duration, OffsetDateTime};

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

impl From<rusqlite::Error> for ChallengeError {
    fn from(e: rusqlite::Error) -> Self {
        ChallengeError::Store(e.to_string())
    }
}

/// A challenge handed to a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedChallenge {
    pub bytes: [u8; CHALLENGE_LEN],
    pub expires_at: OffsetDateTime,
}

/// The challenge table of the store.
#[derive(Debug)]
pub struct Challenges {
    conn: Mutex<Connection>,
    ttl: Duration,
    rng: SystemRandom,
}

impl Challenges {
    /// Opens the challenge table in the store at `path`, creating it if needed.
    ///
    /// This connection uses `synchronous=NORMAL`: in WAL mode a committed "used" mark survives
    /// a crash of the process (SIGKILL included); only a power loss could forget marks of the
    /// last moments, and those challenges expire within the TTL anyway.
    pub fn open(path: &Path, ttl: Duration) -> Result<Self, ChallengeError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS challenges (
                 challenge  BLOB PRIMARY KEY,
                 terminal   TEXT NOT NULL,
                 purpose    INTEGER NOT NULL,
                 expires_at INTEGER NOT NULL,
                 used_at    INTEGER
             ) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS challenges_expiry ON challenges(expires_at);",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
            ttl,
            rng: SystemRandom::new(),
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, ChallengeError> {
        self.conn
            .lock()
            .map_err(|_| ChallengeError::Store("challenge store lock poisoned".into()))
    }

    /// Issues a fresh challenge for `terminal` and `purpose`.
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
        let conn = self.lock()?;
        conn.execute(
            "INSERT INTO challenges (challenge, terminal, purpose, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![&bytes[..], terminal, purpose as u8, millis(expires_at)],
        )?;
        // Forget long-dead challenges now and then (1 in 64 issues), keeping the table small.
        if bytes[0] & 0x3F == 0 {
            conn.execute(
                "DELETE FROM challenges WHERE expires_at < ?1",
                params![millis(now - REMEMBER_FOR)],
            )?;
        }
        Ok(IssuedChallenge { bytes, expires_at })
    }

    /// Consumes a challenge: it must be known, this terminal's, for this purpose, unexpired
    /// and unused. A challenge presented by another terminal is not consumed (that terminal
    /// could otherwise burn challenges it never received).
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
        let conn = self.lock()?;
        let row: Option<(String, u8, i64, Option<i64>)> = conn
            .query_row(
                "SELECT terminal, purpose, expires_at, used_at FROM challenges WHERE challenge = ?1",
                params![challenge],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((owner, stored_purpose, expires_at, used_at)) = row else {
            return Err(ChallengeError::Unknown);
        };
        if owner != terminal {
            return Err(ChallengeError::OtherTerminal);
        }
        if used_at.is_some() {
            return Err(ChallengeError::Reused);
        }
        if stored_purpose != purpose as u8 {
            return Err(ChallengeError::WrongPurpose);
        }
        if millis(now) > expires_at {
            return Err(ChallengeError::Expired);
        }
        let changed = conn.execute(
            "UPDATE challenges SET used_at = ?2 WHERE challenge = ?1 AND used_at IS NULL",
            params![challenge, millis(now)],
        )?;
        if changed == 1 {
            Ok(())
        } else {
            Err(ChallengeError::Reused)
        }
    }
}

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str) -> (Challenges, std::path::PathBuf) {
        let path = std::env::temp_dir().join(format!(
            "onshi-challenge-{name}-{}.sqlite",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&path);
        (
            Challenges::open(&path, Duration::seconds(60)).unwrap(),
            path,
        )
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
        let c2 = Challenges::open(&path, Duration::seconds(60)).unwrap();
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
