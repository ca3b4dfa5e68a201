//! The service's configuration file (TOML). Relative paths are relative to the file's folder,
//! so a world directory built by the testbed can be moved as a whole.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::validation::{EndEntityPolicy, StaleCrlPolicy};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on, e.g. `127.0.0.1:50443`.
    pub listen: SocketAddr,
    /// Where the store is: a SQLite file path (relative to this file's folder), or a
    /// `postgres://` URL (docs/storage.md).
    pub store: String,
    /// Lifetime of a challenge.
    #[serde(default = "default_ttl")]
    pub challenge_ttl_seconds: u32,
    /// Threads that run store calls (lookups, PostgreSQL round trips). Few on purpose: under
    /// load they stay busy taking queued calls, where many would each be woken per request.
    #[serde(default = "default_store_threads")]
    pub store_threads: u16,
    /// The lowest face-match threshold (permille, 1–1000) the service accepts from a reader:
    /// a face confirmation whose reader held the score to a lower threshold is refused
    /// (`RESULT_CODE_ATTESTATION_INVALID`), whatever its score.
    #[serde(default = "default_min_face_threshold")]
    pub min_face_threshold_permille: u16,
    /// How long audit records are kept, in days: `confirm-service audit prune` removes the
    /// older ones (keeping the chain verifiable); 0 keeps them for ever. The default, five
    /// years, is an assumption: the real system's retention period is not public.
    #[serde(default = "default_audit_retention")]
    pub audit_retention_days: u32,
    pub tls: TlsConfig,
    pub validation: ValidationConfig,
    /// Per-terminal rate limit (architecture.md "Trust boundaries").
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// Bounds on connections, handshakes and HTTP/2 (docs/security.md).
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Per-institution quotas on card-less look-ups (docs/security.md, enumeration).
    #[serde(default)]
    pub quotas: QuotaConfig,
    /// How batch jobs are worked (docs/batch.md).
    #[serde(default)]
    pub batch: BatchConfig,
    /// Serve Prometheus metrics at http://ADDR/metrics (docs/operations.md). Off when unset.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// Serve gRPC health checking in plaintext on this loopback address, for orchestrators
    /// that cannot present a client certificate (docs/operations.md). Off when unset.
    #[serde(default)]
    pub health_listen: Option<SocketAddr>,
}

/// Quotas against enumeration through card-less look-ups (`ConfirmByNumbers`, every batch
/// item, `GetMedications` and `GetCheckups`), per institution (医療機関コード), over the last
/// 24 hours. 0 turns one off. The real service's quotas are not public: the defaults are this
/// project's choice, sized for a large hospital's day (a reservation list of 10,000 patients
/// checked the evening before and again on the day, and walk-in look-ups besides), far above a
/// clinic's tens to hundreds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// Card-less look-ups an institution may make in any 24 hours.
    pub lookups_per_day: u32,
    /// Different birth dates that matched nobody an institution may ask with the same
    /// insurance-card numbers (保険者番号, 記号, 番号) in 24 hours; then every look-up of these
    /// numbers by the institution is refused (`RESULT_CODE_TOO_MANY_BIRTH_DATES`) for the rest
    /// of the 24 hours, whether the numbers are anybody's or not. Needs `lookups_per_day`.
    pub birth_dates_per_numbers: u32,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            lookups_per_day: 30_000,
            birth_dates_per_numbers: 3,
        }
    }
}

/// How batch jobs are worked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Tasks that answer batch pages (200 queries each), shared fairly among institutions.
    /// Few on purpose: confirmations must keep their store threads (`store_threads`).
    pub workers: u16,
    /// How often unfinished jobs in the store are looked for (jobs of an instance that died,
    /// once their lease has run out).
    pub rescan_seconds: u32,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            workers: 2,
            rescan_seconds: 10,
        }
    }
}

/// The connection cap when none is configured (it is lowered below the process's descriptor
/// limit when that is smaller).
pub const DEFAULT_MAX_CONNECTIONS: u64 = 4096;

/// The largest queries a batch may carry (one reservation list of a large hospital's day).
pub const MAX_BATCH_QUERIES: usize = 10_000;

/// The largest encoded `NumbersQuery`: 記号 and 番号 of 38 characters each in up to 3 bytes of
/// UTF-8, the other fields, and their tags and lengths.
pub const MAX_QUERY_BYTES: u32 = 256;

/// Bounds on what a peer may hold or ask (docs/security.md, "The confirmation service"). Every
/// field has a default; 0 turns a time-out or age off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Connections at once (authenticated or not); 0: 4096, or fewer if the descriptor limit
    /// is lower. Accepting pauses at the cap.
    pub max_connections: u32,
    /// A peer must finish its TLS handshake (with a terminal certificate) within this.
    pub handshake_timeout_seconds: u32,
    /// TCP keepalive idle time.
    pub tcp_keepalive_seconds: u32,
    /// HTTP/2 streams one connection may have open at once (advertised in SETTINGS).
    pub max_concurrent_streams: u32,
    /// Every request is answered (or refused with DEADLINE_EXCEEDED) within this.
    pub request_timeout_seconds: u32,
    /// HTTP/2 pings on a connection idle this long; no answer within 10 s closes it.
    pub http2_keepalive_seconds: u32,
    /// A connection older than this is asked to go away (30 s of grace to finish).
    pub max_connection_age_seconds: u32,
    /// Largest header list of a request.
    pub max_header_list_bytes: u32,
    /// Largest request message; the default fits the largest legitimate request, a batch of
    /// [`MAX_BATCH_QUERIES`] queries of [`MAX_QUERY_BYTES`].
    pub max_message_bytes: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 0,
            handshake_timeout_seconds: 5,
            tcp_keepalive_seconds: 60,
            max_concurrent_streams: 100,
            request_timeout_seconds: 30,
            http2_keepalive_seconds: 30,
            max_connection_age_seconds: 3600,
            max_header_list_bytes: 16 << 10,
            max_message_bytes: MAX_BATCH_QUERIES as u32 * MAX_QUERY_BYTES,
        }
    }
}

/// Each terminal's requests are limited by a token bucket: `burst` requests at once, refilled
/// at `per_second`. A reception terminal makes a few requests a minute; the defaults leave room
/// for a busy desk and batch fetches, and stop a terminal stuck in a loop. A load test through
/// few terminals must raise them (or set `per_second = 0`, no limit), or it measures the limit.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests a second per terminal; 0 turns the limit off.
    #[serde(default = "default_rate")]
    pub per_second: f64,
    /// Requests a terminal may make at once before the sustained rate applies.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_second: default_rate(),
            burst: default_burst(),
        }
    }
}

fn default_rate() -> f64 {
    50.0
}

fn default_burst() -> u32 {
    500
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The service's certificate chain, PEM.
    pub certificate: PathBuf,
    /// Its private key, PEM.
    pub private_key: PathBuf,
    /// The network CA that issues terminal client certificates, PEM.
    pub client_ca: PathBuf,
    /// The network CA's CRL (PEM or DER): a terminal certificate on it fails the handshake.
    /// Re-read when it changes.
    #[serde(default)]
    pub client_crl: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationConfig {
    /// Issuing-authority CA certificates (several generations may be valid at once).
    pub trust_anchors: Vec<PathBuf>,
    #[serde(default)]
    pub intermediates: Vec<PathBuf>,
    /// The issuing authority's CRLs, DER or PEM.
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    /// Accepted certificate policy OIDs; a card must assert one of them.
    #[serde(default)]
    pub policy_oids: Vec<String>,
    /// Allowance for CRL dates (thisUpdate, nextUpdate), which come from the issuing
    /// authority's clock.
    #[serde(default = "default_skew")]
    pub clock_skew_seconds: u32,
    /// Allowance for certificates' notBefore/notAfter (the card's and its CAs'). The
    /// service's own clock is the reference for a certificate's validity, so none by default:
    /// one second past notAfter is expired.
    #[serde(default)]
    pub cert_clock_skew_seconds: u32,
    /// What a CRL past its nextUpdate means: `reject` (default, fail closed) or `accept`.
    #[serde(default)]
    pub stale_crl: StaleCrlPolicy,
    /// How often the trust files are checked for changes (CRL reload); 0 disables reloading.
    #[serde(default = "default_reload")]
    pub reload_interval_seconds: u32,
    /// Verified certificates kept in the cache; 0 disables the cache.
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
    /// `[validation.smartphone]`: the smartphone issuing CA (スマホ用電子証明書, its own CA
    /// generation) and its CRLs (docs/smartphone.md). Absent: smartphone confirmations are
    /// refused as untrusted.
    #[serde(default)]
    pub smartphone: Option<SmartphoneTrustConfig>,
}

/// The trust of smartphone certificates: anchors and CRLs of their own, kept apart from the
/// cards', so a certificate's kind is the CA it chains to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmartphoneTrustConfig {
    pub trust_anchors: Vec<PathBuf>,
    #[serde(default)]
    pub intermediates: Vec<PathBuf>,
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    /// Accepted policy OIDs of phone certificates; empty: the cards' `policy_oids`.
    #[serde(default)]
    pub policy_oids: Vec<String>,
}

fn default_reload() -> u32 {
    1
}

fn default_cache_entries() -> usize {
    crate::cert_cache::DEFAULT_CAPACITY
}

fn default_ttl() -> u32 {
    60
}

/// See [`Config::min_face_threshold_permille`].
pub const DEFAULT_MIN_FACE_THRESHOLD_PERMILLE: u16 = 800;

fn default_min_face_threshold() -> u16 {
    DEFAULT_MIN_FACE_THRESHOLD_PERMILLE
}

/// See [`Config::audit_retention_days`]: five years (an assumption, see there).
pub const DEFAULT_AUDIT_RETENTION_DAYS: u32 = 5 * 365 + 1;

fn default_audit_retention() -> u32 {
    DEFAULT_AUDIT_RETENTION_DAYS
}

/// See [`Config::store_threads`].
pub const DEFAULT_STORE_THREADS: u16 = 8;

fn default_store_threads() -> u16 {
    DEFAULT_STORE_THREADS
}

fn default_skew() -> u32 {
    300
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path} is invalid: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl Config {
    /// Loads the file and resolves relative paths against its folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            reason: toml_error_line(&e, &text),
        })?;
        if config.challenge_ttl_seconds == 0 || config.challenge_ttl_seconds > 3600 {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                reason: "challenge_ttl_seconds must be between 1 and 3600".into(),
            });
        }
        if config.store_threads == 0 || config.store_threads > 512 {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                reason: "store_threads must be between 1 and 512".into(),
            });
        }
        if !(1..=1000).contains(&config.min_face_threshold_permille) {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                reason: "min_face_threshold_permille must be between 1 and 1000".into(),
            });
        }
        if config.batch.workers == 0 || config.batch.workers > 64 {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                reason: "batch.workers must be between 1 and 64".into(),
            });
        }
        if config.batch.rescan_seconds == 0 || config.batch.rescan_seconds > 3600 {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                reason: "batch.rescan_seconds must be between 1 and 3600".into(),
            });
        }
        if config.quotas.birth_dates_per_numbers > 0 && config.quotas.lookups_per_day == 0 {
            // The missed birth dates are kept per look-up: without a look-up quota nothing
            // bounds them.
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                reason: "quotas: a birth-date limit (birth_dates_per_numbers) needs a look-up \
                         quota (lookups_per_day > 0); set both to 0 to turn both off"
                    .into(),
            });
        }
        let limit = config.rate_limit;
        if !(limit.per_second.is_finite() && limit.per_second >= 0.0) || limit.burst == 0 {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                reason: "rate_limit: per_second must be a number ≥ 0 (0: no limit) and burst at \
                         least 1"
                    .into(),
            });
        }
        if let Some(bad) = config
            .validation
            .policy_oids
            .iter()
            .find(|o| !is_dotted_oid(o))
        {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                reason: format!(
                    "validation.policy_oids: {bad:?} is not an OID (dotted decimal, e.g. 1.2.392.200149.8.5.1.0.30)"
                ),
            });
        }
        if config.validation.trust_anchors.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                reason: "validation.trust_anchors must name at least one CA".into(),
            });
        }
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve(base);
        Ok(config)
    }

    fn resolve(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if !crate::store::is_postgres_url(&self.store) && Path::new(&self.store).is_relative() {
            self.store = base.join(&self.store).to_string_lossy().into_owned();
        }
        fix(&mut self.tls.certificate);
        fix(&mut self.tls.private_key);
        fix(&mut self.tls.client_ca);
        self.tls.client_crl.iter_mut().for_each(fix);
        self.validation.trust_anchors.iter_mut().for_each(fix);
        self.validation.intermediates.iter_mut().for_each(fix);
        self.validation.crls.iter_mut().for_each(fix);
        if let Some(phone) = self.validation.smartphone.as_mut() {
            phone.trust_anchors.iter_mut().for_each(fix);
            phone.intermediates.iter_mut().for_each(fix);
            phone.crls.iter_mut().for_each(fix);
        }
    }
}

impl ValidationConfig {
    pub fn policy(&self) -> EndEntityPolicy {
        EndEntityPolicy {
            policy_oids: self.policy_oids.clone(),
            clock_skew: time::Duration::seconds(i64::from(self.cert_clock_skew_seconds)),
            crl_clock_skew: time::Duration::seconds(i64::from(self.clock_skew_seconds)),
            stale_crl: self.stale_crl,
        }
    }

    /// The trust files of cards.
    pub fn card_files(&self) -> crate::trust_reload::TrustFiles {
        crate::trust_reload::TrustFiles {
            anchors: self.trust_anchors.clone(),
            intermediates: self.intermediates.clone(),
            crls: self.crls.clone(),
            policy: self.policy(),
        }
    }

    /// The trust files of smartphone certificates, if configured: the cards' clock skews and
    /// stale-CRL policy, their own anchors, CRLs and (if given) policy OIDs.
    pub fn smartphone_files(&self) -> Option<crate::trust_reload::TrustFiles> {
        let phone = self.smartphone.as_ref()?;
        let mut policy = self.policy();
        if !phone.policy_oids.is_empty() {
            policy.policy_oids = phone.policy_oids.clone();
        }
        Some(crate::trust_reload::TrustFiles {
            anchors: phone.trust_anchors.clone(),
            intermediates: phone.intermediates.clone(),
            crls: phone.crls.clone(),
            policy,
        })
    }
}

/// Whether `s` is an OID in canonical dotted decimal (`1.2.392…`): at least two arcs, the
/// first 0–2, no empty arc or leading zero. Certificate policies are compared in this form, so
/// anything else would silently match no card.
pub fn is_dotted_oid(s: &str) -> bool {
    let arcs: Vec<&str> = s.split('.').collect();
    arcs.len() >= 2
        && matches!(arcs[0], "0" | "1" | "2")
        && arcs.iter().all(|a| {
            !a.is_empty()
                && a.len() <= 20
                && a.bytes().all(|b| b.is_ascii_digit())
                && (a.len() == 1 || !a.starts_with('0'))
        })
}

/// A TOML error on one line, "line L, column C: what": the toml crate's `Display` spans
/// several lines, quoting the source with a caret.
fn toml_error_line(e: &toml::de::Error, text: &str) -> String {
    let what = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {what}")
        }
        None => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smartphone_trust_is_its_own_with_the_cards_policy_by_default() {
        let dir = std::env::temp_dir().join(format!("onshi-config-phone-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("service.toml");
        let base = "listen = \"127.0.0.1:0\"\nstore = \"s\"\n[tls]\ncertificate = \"s.pem\"\n\
                    private_key = \"s.key\"\nclient_ca = \"ca.pem\"\n[validation]\n\
                    trust_anchors = [\"ca.pem\"]\npolicy_oids = [\"1.2.3\"]\n";
        std::fs::write(&path, base).unwrap();
        assert!(Config::load(&path)
            .unwrap()
            .validation
            .smartphone_files()
            .is_none());
        std::fs::write(
            &path,
            format!(
                "{base}[validation.smartphone]\ntrust_anchors = [\"phone-ca.pem\"]\n\
                 crls = [\"phone.crl\"]\n"
            ),
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        let phone = c.validation.smartphone_files().unwrap();
        assert_eq!(phone.anchors, vec![dir.join("phone-ca.pem")]);
        assert_eq!(phone.crls, vec![dir.join("phone.crl")]);
        assert_eq!(phone.policy.policy_oids, vec!["1.2.3".to_owned()]);
        assert_eq!(c.validation.card_files().anchors, vec![dir.join("ca.pem")]);
        std::fs::write(
            &path,
            format!(
                "{base}[validation.smartphone]\ntrust_anchors = [\"p.pem\"]\n\
                 policy_oids = [\"1.2.4\"]\nunknown = 1\n"
            ),
        )
        .unwrap();
        assert!(Config::load(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn resolves_relative_paths_and_rejects_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("onshi-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("service.toml");
        std::fs::write(
            &path,
            r#"listen = "127.0.0.1:0"
store = "store/onshi.sqlite"
[tls]
certificate = "s.pem"
private_key = "s.key"
client_ca = "/abs/ca.pem"
[validation]
trust_anchors = ["ca.pem"]
"#,
        )
        .unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.store, dir.join("store/onshi.sqlite").to_string_lossy());
        assert_eq!(c.tls.client_ca, PathBuf::from("/abs/ca.pem"));
        assert_eq!(c.challenge_ttl_seconds, 60);
        assert_eq!(c.store_threads, DEFAULT_STORE_THREADS);
        assert_eq!(c.min_face_threshold_permille, 800);
        assert_eq!(c.rate_limit, RateLimitConfig::default());
        assert_eq!(c.validation.stale_crl, StaleCrlPolicy::Reject);
        // Certificates' validity is checked against our own clock, exactly; CRL dates, from
        // the authority's clock, with five minutes' allowance.
        assert_eq!(c.validation.cert_clock_skew_seconds, 0);
        assert_eq!(c.validation.policy().clock_skew, time::Duration::ZERO);
        assert_eq!(
            c.validation.policy().crl_clock_skew,
            time::Duration::minutes(5)
        );

        std::fs::write(
            &path,
            "listen = \"127.0.0.1:0\"\nstore = \"s\"\nstore_threads = 0\n[tls]\n\
             certificate = \"s.pem\"\nprivate_key = \"s.key\"\nclient_ca = \"ca.pem\"\n\
             [validation]\ntrust_anchors = [\"ca.pem\"]\n",
        )
        .unwrap();
        assert!(matches!(
            Config::load(&path),
            Err(ConfigError::Invalid { reason, .. }) if reason.contains("store_threads")
        ));
        // The face threshold minimum: set, and out of range.
        let with_threshold = |value: &str| {
            format!(
                "listen = \"127.0.0.1:0\"\nstore = \"s\"\nmin_face_threshold_permille = {value}\n\
                 [tls]\ncertificate = \"s.pem\"\nprivate_key = \"s.key\"\nclient_ca = \"ca.pem\"\n\
                 [validation]\ntrust_anchors = [\"ca.pem\"]\n"
            )
        };
        std::fs::write(&path, with_threshold("950")).unwrap();
        assert_eq!(
            Config::load(&path).unwrap().min_face_threshold_permille,
            950
        );
        for bad in ["0", "1001"] {
            std::fs::write(&path, with_threshold(bad)).unwrap();
            let err = Config::load(&path).unwrap_err().to_string();
            assert!(err.contains("min_face_threshold_permille"), "{bad}: {err}");
        }
        for bad in ["-1", "70000", "\"high\""] {
            std::fs::write(&path, with_threshold(bad)).unwrap();
            assert!(Config::load(&path).is_err(), "{bad}");
        }
        std::fs::write(&path, "listen = \"127.0.0.1:0\"\nbogus = 1\n").unwrap();
        assert!(matches!(
            Config::load(&path),
            Err(ConfigError::Invalid { .. })
        ));
        // A policy that is not an OID would match no card: refused.
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:0\"\nstore = \"s\"\n[tls]\ncertificate = \"c\"\nprivate_key = \"k\"\nclient_ca = \"a\"\n[validation]\ntrust_anchors = [\"ca.pem\"]\npolicy_oids = [\"jpki-auth\"]\n",
        )
        .unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("\"jpki-auth\" is not an OID"), "{err}");
        for good in ["1.2.392.200149.8.5.1.0.30", "2.5.29.32.0", "0.0"] {
            assert!(is_dotted_oid(good), "{good}");
        }
        for bad in ["", "1", "3.1", "1..2", "1.02", "1.2.", "1.2a", " 1.2"] {
            assert!(!is_dotted_oid(bad), "{bad}");
        }
        // A syntax error is one line, saying where.
        std::fs::write(&path, "listen = \"127.0.0.1:0\"\ngarbage = \n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("line 2, column 11"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
