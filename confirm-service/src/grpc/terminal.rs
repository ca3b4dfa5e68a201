//! Terminal identity: who is asking, taken from the TLS client certificate the handshake
//! already verified against the network CA, never from a request field.
//!
//! A terminal certificate's subject carries the institution's 医療機関コード in the
//! organizational unit and the terminal id in the common name; the terminal's name, used in the
//! challenge binding and the audit log, is `<医療機関コード>-<terminal id>`.

use x509_parser::prelude::{FromDer, X509Certificate};

use time::{Duration, OffsetDateTime};
use tonic::Request;

use crate::eligibility::InstitutionCode;
use crate::outcome::Refusal;
use crate::service::unavailable;
use crate::store::TerminalStatus;

/// An identified terminal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TerminalIdentity {
    pub institution_code: String,
    pub terminal_id: String,
}

impl TerminalIdentity {
    /// `<医療機関コード>-<terminal id>`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.institution_code, self.terminal_id)
    }

    /// Reads the identity from a verified client certificate.
    pub fn from_certificate(der: &[u8]) -> Result<Self, String> {
        let (_, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("client certificate does not parse: {e}"))?;
        let single = |values: Vec<String>, what: &str| -> Result<String, String> {
            match values.as_slice() {
                [one] => Ok(one.clone()),
                [] => Err(format!("client certificate has no {what}")),
                _ => Err(format!("client certificate has several {what} values")),
            }
        };
        let ou = single(
            cert.subject()
                .iter_organizational_unit()
                .map(|a| a.as_str().map(str::to_owned).unwrap_or_default())
                .collect(),
            "organizational unit (医療機関コード)",
        )?;
        let cn = single(
            cert.subject()
                .iter_common_name()
                .map(|a| a.as_str().map(str::to_owned).unwrap_or_default())
                .collect(),
            "common name (terminal id)",
        )?;
        let code = InstitutionCode::parse(&ou)
            .map_err(|e| format!("client certificate's 医療機関コード {ou:?}: {e}"))?;
        if cn.is_empty()
            || cn.len() > 32
            || !cn
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        {
            return Err(format!(
                "client certificate's terminal id {cn:?} must be 1-32 ASCII letters, digits, '_' or '.'"
            ));
        }
        Ok(Self {
            institution_code: code.as_str().to_owned(),
            terminal_id: cn,
        })
    }
}

/// A terminal's device public key (an uncompressed P-256 point), shared by the cache and the
/// requests that verify attestations with it.
pub type DevicePublicKey = std::sync::Arc<[u8]>;

/// What the cache remembers of a terminal the store knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownTerminal {
    pub identity: TerminalIdentity,
    pub status: TerminalStatus,
    /// The reader's device public key, when one is registered.
    pub device_public_key: Option<DevicePublicKey>,
}

/// Terminals seen in the last few seconds, by their client certificate: who the certificate
/// names, the status the store gave and the device key registered to it, so a busy terminal
/// costs neither a certificate parse nor a store round trip per request. Only terminals the
/// store knows are kept (a terminal registered a moment ago is found at once); a status change
/// (suspension) or a new device key takes effect within [`TerminalCache::TTL`] on every
/// instance.
#[derive(Debug, Default)]
pub struct TerminalCache {
    entries: std::sync::Mutex<std::collections::HashMap<Vec<u8>, (KnownTerminal, OffsetDateTime)>>,
}

impl TerminalCache {
    pub const TTL: Duration = Duration::seconds(5);
    /// Beyond this many terminals the cache starts over (Japan has ~230,000 institutions).
    const MAX_ENTRIES: usize = 500_000;

    /// The terminal a client certificate (DER) names, its status and device key, if read less
    /// than [`Self::TTL`] before `now` (the service's clock). An entry read "after" `now` (the
    /// clock was set back) is stale too.
    pub fn get(&self, certificate: &[u8], now: OffsetDateTime) -> Option<KnownTerminal> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(certificate)
            .filter(|(_, at)| *at <= now && now - *at < Self::TTL)
            .map(|(known, _)| known.clone())
    }

    /// Remembers `known` for `certificate`, read at `now` (the service's clock).
    pub fn put(&self, certificate: &[u8], known: KnownTerminal, now: OffsetDateTime) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= Self::MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(certificate.to_vec(), (known, now));
    }
}

/// Per-terminal token buckets (in this instance's memory: a terminal spread over several
/// instances by a load balancer gets each instance's allowance).
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: std::sync::Mutex<std::collections::HashMap<TerminalIdentity, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: OffsetDateTime,
}

impl RateLimiter {
    /// Beyond this many terminals the buckets start over (full).
    const MAX_ENTRIES: usize = 500_000;

    /// `per_second` 0 lets everything through.
    pub fn new(config: crate::config::RateLimitConfig) -> Self {
        RateLimiter {
            per_second: config.per_second,
            burst: f64::from(config.burst),
            buckets: Default::default(),
        }
    }

    /// Takes one request from `terminal`'s bucket at `now` (the service's clock); false when it
    /// is empty.
    pub fn allow(&self, terminal: &TerminalIdentity, now: OffsetDateTime) -> bool {
        if self.per_second <= 0.0 {
            return true;
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.get_mut(terminal) {
            return self.take(bucket, now);
        }
        // A terminal not seen yet starts with a full bucket.
        if buckets.len() >= Self::MAX_ENTRIES {
            buckets.clear();
        }
        let mut bucket = Bucket {
            tokens: self.burst,
            at: now,
        };
        let allowed = self.take(&mut bucket, now);
        buckets.insert(terminal.clone(), bucket);
        allowed
    }

    /// Refills `bucket` up to `now` and takes one request from it, if it holds one.
    fn take(&self, bucket: &mut Bucket, now: OffsetDateTime) -> bool {
        // A clock set back refills nothing and takes nothing back, and the bucket counts on
        // from the new time: a wall clock stepped back by an hour (NTP, a restored VM) must not
        // starve every terminal for that hour.
        let refill = (now - bucket.at).max(Duration::ZERO).as_seconds_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl crate::service::ConfirmationService {
    /// Identifies the calling terminal from its verified client certificate.
    pub(crate) async fn identify<T>(
        &self,
        request: &Request<T>,
    ) -> Result<TerminalIdentity, Refusal> {
        self.identify_with_device_key(request)
            .await
            .map(|(identity, _)| identity)
    }

    /// As [`identify`](Self::identify), also returning the device public key registered to
    /// the terminal, if any (face and visual-check confirmations verify their attestation
    /// with it).
    pub(crate) async fn identify_with_device_key<T>(
        &self,
        request: &Request<T>,
    ) -> Result<(TerminalIdentity, Option<DevicePublicKey>), Refusal> {
        let certs = request
            .peer_certs()
            .ok_or_else(|| Refusal::TerminalUnknown("no client certificate".into()))?;
        let leaf = certs
            .first()
            .ok_or_else(|| Refusal::TerminalUnknown("no client certificate".into()))?;
        let now = self.state.clock.now();
        let (identity, status, device_key) = match self.state.terminals.get(leaf.as_ref(), now) {
            Some(KnownTerminal {
                identity,
                status,
                device_public_key,
            }) => {
                crate::observe::cache_lookup("terminal", true);
                (identity, Some(status), device_public_key)
            }
            None => {
                crate::observe::cache_lookup("terminal", false);
                let identity = TerminalIdentity::from_certificate(leaf.as_ref())
                    .map_err(Refusal::TerminalUnknown)?;
                let lookup = identity.clone();
                let terminal = self
                    .blocking(move |s| {
                        s.store
                            .terminal(&lookup.institution_code, &lookup.terminal_id)
                            .map_err(unavailable)
                    })
                    .await?;
                match terminal {
                    Some(t) => {
                        let key = t.device_public_key.map(DevicePublicKey::from);
                        self.state.terminals.put(
                            leaf.as_ref(),
                            KnownTerminal {
                                identity: identity.clone(),
                                status: t.status,
                                device_public_key: key.clone(),
                            },
                            now,
                        );
                        (identity, Some(t.status), key)
                    }
                    None => (identity, None, None),
                }
            }
        };
        crate::observe::note_terminal(&identity.name());
        let identity = match status {
            None => Err(Refusal::TerminalUnknown(format!(
                "{} is not registered",
                identity.name()
            ))),
            // Over its limit: refused before anything is read, and not audited (no person's
            // data is touched; auditing it would let a looping terminal fill the log).
            Some(TerminalStatus::InOperation) if !self.state.rate_limiter.allow(&identity, now) => {
                crate::observe::refused("rate-limited");
                tracing::warn!(terminal = %identity.name(), "refused: rate-limited");
                Err(Refusal::RateLimited(identity.name()))
            }
            Some(TerminalStatus::InOperation) => Ok(identity),
            Some(_) => {
                crate::observe::refused("terminal-not-in-operation");
                tracing::warn!(
                    terminal = %identity.name(),
                    result = "RESULT_CODE_TERMINAL_NOT_IN_OPERATION",
                    "refused: the terminal is not in operation"
                );
                Err(Refusal::TerminalNotInOperation(identity.name()))
            }
        }?;
        Ok((identity, device_key))
    }
}

#[cfg(test)]
mod rate_tests {
    use super::*;
    use crate::config::RateLimitConfig;
    use time::macros::datetime;

    fn terminal(id: &str) -> TerminalIdentity {
        TerminalIdentity {
            institution_code: "1340123452".into(),
            terminal_id: id.into(),
        }
    }

    #[test]
    fn a_burst_then_the_sustained_rate_per_terminal() {
        let limiter = RateLimiter::new(RateLimitConfig {
            per_second: 2.0,
            burst: 3,
        });
        let (a, b) = (terminal("T01"), terminal("T02"));
        let t0 = datetime!(2026-04-01 09:00 UTC);
        let allowed = (0..5).filter(|_| limiter.allow(&a, t0)).count();
        assert_eq!(allowed, 3, "the burst, then refused");
        assert!(limiter.allow(&b, t0), "another terminal has its own bucket");
        // Half a second refills one request at 2/s, and no more.
        let t1 = t0 + Duration::milliseconds(500);
        assert!(limiter.allow(&a, t1));
        assert!(!limiter.allow(&a, t1));
        // A long pause refills up to the burst only.
        let t2 = t1 + Duration::seconds(60);
        let allowed = (0..10).filter(|_| limiter.allow(&a, t2)).count();
        assert_eq!(allowed, 3);
        // An earlier instant (clocks read on two threads) takes nothing back.
        assert!(!limiter.allow(&a, t1));
    }

    #[test]
    fn zero_per_second_is_no_limit() {
        let limiter = RateLimiter::new(RateLimitConfig {
            per_second: 0.0,
            burst: 1,
        });
        let t0 = datetime!(2026-04-01 09:00 UTC);
        assert!((0..10_000).all(|_| limiter.allow(&terminal("T01"), t0)));
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-04-01 09:00 UTC);

    #[test]
    fn a_cached_status_and_device_key_are_returned_per_terminal() {
        let cache = TerminalCache::default();
        let known = |id: &str, status, key: Option<&[u8]>| KnownTerminal {
            identity: TerminalIdentity {
                institution_code: "1340123452".into(),
                terminal_id: id.into(),
            },
            status,
            device_public_key: key.map(DevicePublicKey::from),
        };
        let (cert_a, cert_b) = (
            b"certificate of T01".as_slice(),
            b"certificate of T02".as_slice(),
        );
        assert_eq!(cache.get(cert_a, NOW), None);
        cache.put(cert_a, known("T01", TerminalStatus::Suspended, None), NOW);
        assert_eq!(
            cache.get(cert_a, NOW),
            Some(known("T01", TerminalStatus::Suspended, None))
        );
        assert_eq!(cache.get(cert_b, NOW), None);
        let key_a = [4u8; 65];
        let key_b = [5u8; 65];
        cache.put(
            cert_b,
            known("T02", TerminalStatus::InOperation, Some(&key_b)),
            NOW,
        );
        cache.put(
            cert_a,
            known("T01", TerminalStatus::InOperation, Some(&key_a)),
            NOW,
        );
        let a = cache.get(cert_a, NOW).unwrap();
        assert_eq!(a, known("T01", TerminalStatus::InOperation, Some(&key_a)));
        assert_eq!(a.device_public_key.as_deref(), Some(key_a.as_slice()));
        assert_eq!(
            cache.get(cert_b, NOW),
            Some(known("T02", TerminalStatus::InOperation, Some(&key_b)))
        );
    }
}

#[cfg(test)]
mod clock_tests {
    //! The cache and the limiter read time only through the service's clock: moving a manual
    //! clock is enough to show a window refilling and an entry going stale.
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::config::RateLimitConfig;
    use time::macros::datetime;

    fn t01() -> TerminalIdentity {
        TerminalIdentity {
            institution_code: "1340123452".into(),
            terminal_id: "T01".into(),
        }
    }

    #[test]
    fn the_rate_limit_window_refills_when_the_clock_moves() {
        let clock = ManualClock::new(datetime!(2026-04-01 09:00 UTC));
        let limiter = RateLimiter::new(RateLimitConfig {
            per_second: 1.0,
            burst: 2,
        });
        assert!(limiter.allow(&t01(), clock.now()));
        assert!(limiter.allow(&t01(), clock.now()));
        // However many requests, a clock standing still refills nothing.
        assert!((0..100).all(|_| !limiter.allow(&t01(), clock.now())));
        clock.advance(Duration::milliseconds(999));
        assert!(!limiter.allow(&t01(), clock.now()), "not yet one second");
        clock.advance(Duration::milliseconds(1));
        assert!(
            limiter.allow(&t01(), clock.now()),
            "one second: one request"
        );
        assert!(!limiter.allow(&t01(), clock.now()));
        // Set back by an hour: nothing refilled at that moment, and the bucket refills from
        // the new time on (the terminal is not refused for the hour the clock went back).
        clock.advance(-Duration::hours(1));
        assert!(!limiter.allow(&t01(), clock.now()));
        clock.advance(Duration::seconds(1));
        assert!(
            limiter.allow(&t01(), clock.now()),
            "one second after a step back: one request"
        );
        assert!(!limiter.allow(&t01(), clock.now()));
        clock.advance(Duration::seconds(10));
        assert_eq!(
            (0..5)
                .filter(|_| limiter.allow(&t01(), clock.now()))
                .count(),
            2
        );
    }

    #[test]
    fn a_terminal_cache_entry_expires_when_the_clock_moves() {
        let clock = ManualClock::new(datetime!(2026-04-01 09:00 UTC));
        let cache = TerminalCache::default();
        let known = KnownTerminal {
            identity: t01(),
            status: TerminalStatus::InOperation,
            device_public_key: None,
        };
        cache.put(b"certificate", known.clone(), clock.now());
        assert_eq!(cache.get(b"certificate", clock.now()), Some(known.clone()));
        clock.advance(TerminalCache::TTL - Duration::milliseconds(1));
        assert_eq!(cache.get(b"certificate", clock.now()), Some(known.clone()));
        clock.advance(Duration::milliseconds(1));
        assert_eq!(
            cache.get(b"certificate", clock.now()),
            None,
            "read TTL ago: stale"
        );
        // Read again: fresh for another TTL from the new time.
        cache.put(b"certificate", known.clone(), clock.now());
        assert_eq!(cache.get(b"certificate", clock.now()), Some(known));
        // A clock set back before the entry was read makes it stale as well.
        clock.advance(-Duration::seconds(1));
        assert_eq!(cache.get(b"certificate", clock.now()), None);
    }
}
