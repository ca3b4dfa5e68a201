//! Validation of the user-authentication certificate a card presents: path to a configured
//! trust anchor, validity at an explicit time, the end-entity profile (key usage, extended key
//! usage, policy), approved algorithms and key sizes, strict DER, and revocation against the
//! issuing authority's CRLs. The rules and their order are documented in docs/validation.md.
//!
//! Pure: [`TrustStore::validate`] takes the certificate bytes and the time, and touches no
//! clock, file or network. Loading the anchors and CRLs from files is [`TrustStore::load`];
//! reloading them while the service runs is [`crate::trust_reload`]; the per-certificate
//! cache is [`crate::cert_cache`]. Every reason a certificate is refused is its own
//! [`CertError`] variant with a stable [`CertError::reason`] name, shared by the service's
//! result codes and `check-cert`.
//!
//! By file: `path` (strict parsing and the paths to an anchor), `crl` (revocation),
//! `profile` (the end-entity profile), `files` (loading), `tests` (the profile's rules one by
//! one); this file holds the types, the policy and the three phases below.
//!
//! Validation runs in three phases, so that a cached verdict can be re-checked cheaply:
//!
//! 1. **structure** (time-independent, the expensive part): strict DER, parsing, version,
//!    every candidate path to an anchor with each link's signature, algorithms and key sizes,
//!    CA-ness and path length;
//! 2. **time and revocation** (cheap, re-run on every cache hit): each CA's validity, the
//!    card's validity, each link's serial against its issuer's current CRL;
//! 3. **end-entity profile** (time-independent): the JPKI user-authentication profile
//!    (jpki-card.md §6) — unknown critical extensions, key (RSA, size, exponent 65537), serial
//!    number, subject `C=JP, CN=<23 characters>`, basic constraints, key usage exactly
//!    digitalSignature, extended key usage with clientAuth, policy.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ring::signature;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::revocation_list::CertificateRevocationList;

use der::DerError;

pub mod cert_cache;
mod crl;
pub mod der;
mod files;
mod path;
mod profile;
pub mod trust_reload;

use crl::*;
pub use files::{decode_der_or_pem, read_der_or_pem};
use path::*;
pub use profile::is_card_common_name;
use profile::*;

/// Longest certificate the service accepts from a card (real ones are 1.2–1.6 KB).
pub const MAX_CERTIFICATE_LEN: usize = 8 * 1024;
/// Longest CRL file loaded (a 500,000-entry CRL is about 20 MB).
pub const MAX_CRL_LEN: usize = 256 * 1024 * 1024;
/// Smallest RSA modulus accepted anywhere in a path.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted (ring's limit).
pub const MAX_RSA_BITS: usize = 8192;
/// Most certificates in a path, anchor included.
pub const MAX_PATH_LEN: usize = 4;
/// Most signature checks one validation may make while building paths (bounded work).
const MAX_SIGNATURE_CHECKS: usize = 16;
/// Most candidate paths kept for one certificate.
const MAX_PATHS: usize = 8;
/// The card key's RSA public exponent, 65537 (jpki-card.md §6), as the content octets of its
/// DER INTEGER.
const CARD_RSA_EXPONENT: [u8; 3] = [0x01, 0x00, 0x01];
/// Longest serial number accepted (RFC 5280 §4.1.2.2), counted in content octets of the DER
/// INTEGER, so a leading 00 that keeps a value positive counts: the largest serial is
/// 2^159 − 1.
pub const MAX_SERIAL_OCTETS: usize = 20;
/// Length of the card subject's common name (jpki-card.md §6: `CN=<23-character id>`).
pub const CARD_CN_LEN: usize = 23;

const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_EXT_KEY_USAGE: &str = "2.5.29.37";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_CERT_POLICIES: &str = "2.5.29.32";
const OID_ANY_POLICY: &str = "2.5.29.32.0";
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_COUNTRY_NAME: &str = "2.5.4.6";
const OID_COMMON_NAME: &str = "2.5.4.3";
// CRL extensions this implementation processes (or may safely ignore).
const OID_AUTHORITY_KEY_ID: &str = "2.5.29.35";
const OID_CRL_NUMBER: &str = "2.5.29.20";
const OID_CRL_REASON: &str = "2.5.29.21";
const OID_INVALIDITY_DATE: &str = "2.5.29.24";

/// Critical extensions a certificate may carry: the ones validation processes. Name
/// constraints are not processed, so a critical one is refused like any unknown extension.
const KNOWN_CRITICAL: [&str; 4] = [
    OID_KEY_USAGE,
    OID_EXT_KEY_USAGE,
    OID_BASIC_CONSTRAINTS,
    OID_CERT_POLICIES,
];

/// Why a certificate was refused. The [`reason`](Self::reason) names are stable and documented
/// (docs/result-codes.md, docs/validation.md); operators and scripts rely on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("the certificate is not valid DER X.509: {detail}")]
    Malformed { detail: String },
    #[error("the certificate is followed by {bytes} trailing bytes")]
    TrailingData { bytes: usize },
    #[error("the certificate is BER, not canonical DER: {detail}")]
    NonCanonicalEncoding { detail: String },
    #[error("certificate version {version} is not accepted (only v3)")]
    UnsupportedVersion { version: u64 },
    #[error("the outer signature algorithm differs from the one inside the signed part")]
    SignatureAlgorithmMismatch,
    #[error("the certificate is larger than {MAX_CERTIFICATE_LEN} bytes")]
    TooLarge,
    #[error("algorithm {oid} is not approved")]
    UnsupportedAlgorithm { oid: String },
    #[error("RSA key of {bits} bits is outside the approved {MIN_RSA_BITS}–{MAX_RSA_BITS} bits")]
    WeakKey { bits: usize },
    #[error(
        "no configured trust anchor or intermediate issued this certificate (issuer {issuer})"
    )]
    UntrustedIssuer { issuer: String },
    #[error("the issuer's signature on the certificate does not verify")]
    BadSignature,
    #[error("the certificate expired at {} (checked at {})", rfc3339(.not_after), rfc3339(.at))]
    Expired {
        not_after: OffsetDateTime,
        at: OffsetDateTime,
    },
    #[error("the certificate is not valid before {} (checked at {})", rfc3339(.not_before), rfc3339(.at))]
    NotYetValid {
        not_before: OffsetDateTime,
        at: OffsetDateTime,
    },
    #[error("issuing CA {subject} is not valid at {}", rfc3339(.at))]
    IssuerNotValid { subject: String, at: OffsetDateTime },
    #[error("issuing certificate {subject} is not a CA allowed to sign certificates: {detail}")]
    IssuerNotCa { subject: String, detail: String },
    #[error("the certificate is a CA certificate, not a card's end-entity certificate")]
    NotEndEntity,
    #[error("key usage must include digitalSignature")]
    WrongKeyUsage,
    #[error("key usage must be digitalSignature only, but other bits are set")]
    ExtraKeyUsage,
    #[error("extended key usage does not include clientAuth")]
    WrongExtendedKeyUsage,
    #[error("the certificate has no extendedKeyUsage (the card profile requires clientAuth)")]
    MissingExtendedKeyUsage,
    #[error("the card's RSA public exponent is 0x{exponent}, not 65537")]
    WrongRsaExponent { exponent: String },
    #[error("the serial number is zero or negative")]
    NonPositiveSerial,
    #[error("the serial number is {octets} octets long (at most {MAX_SERIAL_OCTETS})")]
    SerialTooLong { octets: usize },
    #[error("the subject is not C=JP, CN=<{CARD_CN_LEN} upper-case letters and digits>: {detail}")]
    WrongSubject { detail: String },
    #[error("certificate policy is not one of the accepted policies")]
    WrongPolicy,
    #[error("unknown critical extension {oid}")]
    UnknownCriticalExtension { oid: String },
    #[error("the path is too long: {detail}")]
    PathTooLong { detail: String },
    #[error("the certificate was revoked at {} (reason: {reason})", rfc3339(.revoked_at))]
    Revoked {
        revoked_at: OffsetDateTime,
        reason: String,
    },
    #[error("no current CRL from issuer {issuer} is configured")]
    CrlMissing { issuer: String },
    #[error("the CRL from issuer {issuer} is stale (nextUpdate {}, checked at {})", rfc3339(.next_update), rfc3339(.at))]
    CrlStale {
        issuer: String,
        next_update: OffsetDateTime,
        at: OffsetDateTime,
    },
}

/// The reason names in one table: `reason()` and `REASONS` are both made from it, and the
/// match it expands to has no catch-all, so a new [`CertError`] variant does not compile until
/// it has a name here, and then the documentation and corpus tests that walk `REASONS`
/// (docs/result-codes.md, the differential test) fail until it is documented and has a case.
macro_rules! cert_reasons {
    ($($variant:ident => $name:literal,)*) => {
        impl CertError {
            /// The stable, documented reason name (`expired`, `revoked`, `untrusted-issuer`,
            /// ...).
            pub fn reason(&self) -> &'static str {
                match self {
                    $(CertError::$variant { .. } => $name,)*
                }
            }

            /// Every reason name, in the order of the table, for documentation checks and
            /// tests.
            pub const REASONS: &'static [&'static str] = &[$($name),*];
        }
    };
}

cert_reasons! {
    Malformed => "malformed",
    TrailingData => "trailing-data",
    NonCanonicalEncoding => "non-canonical-der",
    UnsupportedVersion => "unsupported-version",
    SignatureAlgorithmMismatch => "signature-algorithm-mismatch",
    TooLarge => "too-large",
    UnsupportedAlgorithm => "unsupported-algorithm",
    WeakKey => "weak-key",
    UntrustedIssuer => "untrusted-issuer",
    BadSignature => "bad-signature",
    Expired => "expired",
    NotYetValid => "not-yet-valid",
    IssuerNotValid => "issuer-not-valid",
    IssuerNotCa => "issuer-not-ca",
    NotEndEntity => "not-end-entity",
    WrongKeyUsage => "wrong-key-usage",
    ExtraKeyUsage => "extra-key-usage",
    WrongExtendedKeyUsage => "wrong-extended-key-usage",
    MissingExtendedKeyUsage => "missing-extended-key-usage",
    WrongRsaExponent => "wrong-rsa-exponent",
    NonPositiveSerial => "non-positive-serial",
    SerialTooLong => "serial-too-long",
    WrongSubject => "wrong-subject",
    WrongPolicy => "wrong-policy",
    UnknownCriticalExtension => "unknown-critical-extension",
    PathTooLong => "path-too-long",
    Revoked => "revoked",
    CrlMissing => "crl-missing",
    CrlStale => "crl-stale",
}

impl CertError {
    /// How conclusive an error found while building paths is: a path that got further
    /// explains the refusal better.
    fn rank(&self) -> u8 {
        match self {
            CertError::UntrustedIssuer { .. } => 0,
            CertError::BadSignature => 1,
            CertError::UnsupportedAlgorithm { .. } | CertError::WeakKey { .. } => 2,
            _ => 3,
        }
    }
}

impl From<DerError> for CertError {
    fn from(e: DerError) -> Self {
        match e {
            DerError::Malformed(detail) => CertError::Malformed { detail },
            DerError::NonCanonical(detail) => CertError::NonCanonicalEncoding { detail },
            DerError::Trailing(bytes) => CertError::TrailingData { bytes },
        }
    }
}

/// Errors loading the trust configuration (anchors, intermediates, CRLs) from files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustLoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// What a CRL that is past its nextUpdate (plus the clock skew) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StaleCrlPolicy {
    /// Refuse every certificate of that issuer (fail closed). The default.
    #[default]
    Reject,
    /// Keep using the stale CRL's revocations (fail open; for an outage of the authority's
    /// publication, decided by an operator).
    Accept,
}

/// The rules a card certificate must satisfy, besides the path itself and the fixed card
/// profile (jpki-card.md §6, enforced by [`TrustStore::validate`] whatever the policy).
#[derive(Debug, Clone)]
pub struct EndEntityPolicy {
    /// At least one of these policy OIDs must be asserted; empty means no policy requirement.
    pub policy_oids: Vec<String>,
    /// Allowance applied to certificates' validity periods (the card's and each CA's
    /// notBefore/notAfter). The service's own clock is the reference for them, so the default
    /// is [`DEFAULT_CERT_CLOCK_SKEW`], none: one second past notAfter is expired.
    /// `cert_clock_skew_seconds` in service.toml, `--clock-skew` for `check-cert`.
    pub clock_skew: Duration,
    /// Allowance applied to CRL dates (thisUpdate, nextUpdate), which come from the issuing
    /// authority's clock: [`DEFAULT_CRL_CLOCK_SKEW`] by default. `clock_skew_seconds` in
    /// service.toml.
    pub crl_clock_skew: Duration,
    pub stale_crl: StaleCrlPolicy,
}

/// Default allowance for certificates' notBefore/notAfter: none.
pub const DEFAULT_CERT_CLOCK_SKEW: Duration = Duration::ZERO;
/// Default allowance for CRL thisUpdate/nextUpdate: five minutes.
pub const DEFAULT_CRL_CLOCK_SKEW: Duration = Duration::minutes(5);

impl Default for EndEntityPolicy {
    fn default() -> Self {
        Self {
            policy_oids: Vec::new(),
            clock_skew: DEFAULT_CERT_CLOCK_SKEW,
            crl_clock_skew: DEFAULT_CRL_CLOCK_SKEW,
            stale_crl: StaleCrlPolicy::Reject,
        }
    }
}

/// A CA certificate kept parsed into what path validation needs.
#[derive(Debug, Clone)]
struct Authority {
    subject_raw: Vec<u8>,
    subject: String,
    spki: SpkiKey,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    is_anchor: bool,
    /// Why it may not issue certificates (not a CA, no keyCertSign, unknown critical
    /// extension, weak key), found at load time and reported when a path uses it.
    problem: Option<CertError>,
    path_len: Option<u32>,
    /// keyUsage absent, or present with cRLSign.
    may_sign_crls: bool,
    /// How the authority itself is signed, to continue a path upward from an intermediate.
    signed: SignedPart,
    /// subjectKeyIdentifier, matched against a child's authorityKeyIdentifier.
    key_id: Option<Vec<u8>>,
}

/// A signed object reduced to what checking its signature needs.
#[derive(Debug, Clone)]
struct SignedPart {
    issuer_raw: Vec<u8>,
    issuer: String,
    algorithm: String,
    tbs: Vec<u8>,
    signature: Vec<u8>,
    serial: Vec<u8>,
    /// The authorityKeyIdentifier's keyIdentifier, if any.
    authority_key_id: Option<Vec<u8>>,
}

/// A public key in the form ring wants.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SpkiKey {
    /// RSAPublicKey DER and the modulus size.
    Rsa { der: Vec<u8>, bits: usize },
    /// Uncompressed EC point on P-256 or P-384.
    Ec { point: Vec<u8>, p384: bool },
    /// A key type no approved algorithm uses.
    Unsupported { oid: String },
}

/// One CRL, reduced to a constant-time lookup.
#[derive(Debug, Clone)]
struct Crl {
    this_update: OffsetDateTime,
    next_update: Option<OffsetDateTime>,
    revoked: HashMap<Vec<u8>, Revocation>,
}

#[derive(Debug, Clone)]
struct Revocation {
    at: OffsetDateTime,
    reason: &'static str,
}

/// A certificate that passed validation: what the confirmation needs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedCertificate {
    /// SHA-256 of the certificate DER (the binding commits to it).
    pub sha256: [u8; 32],
    /// RSAPublicKey DER of the card's key, for the challenge signature.
    pub rsa_public_key: Vec<u8>,
    pub subject: String,
    pub issuer: String,
    /// Lowercase hex of the raw serial.
    pub serial_hex: String,
    /// Lowercase hex SHA-256 of the issuer Name DER: with `serial_hex`, the key the store
    /// links to a person (`store::CardKey`), so a cache hit needs no parsing.
    pub issuer_key: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// One link of a path: the authority (index into the store) that signed the certificate
/// below it, and that certificate's serial (checked against the authority's CRLs).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    authority: usize,
    child_serial: Vec<u8>,
}

/// What phase 1 established about a certificate: everything phases 2 needs to re-check it at
/// another time. Kept by the certificate cache.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The store generation this was established against.
    generation: u64,
    paths: Vec<Vec<Link>>,
    pub certificate: ValidatedCertificate,
}

impl Verified {
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// Trust anchors, intermediates and CRLs: everything a verdict depends on besides the time.
#[derive(Debug, Clone)]
pub struct TrustStore {
    authorities: Vec<Authority>,
    /// Per authority, the CRLs its key signed (several CA certificates may share one key).
    authority_crls: Vec<Vec<usize>>,
    crls: Vec<Crl>,
    policy: EndEntityPolicy,
    generation: u64,
    /// Revocations seen on earlier CRLs of the same CA key (subject and key, as in
    /// [`crl_this_updates`](Self::crl_this_updates)) that a newer CRL dropped, typically
    /// because the certificate expired: a certificate revoked before it expired stays revoked
    /// during its eligibility grace period (docs/domain.md "Certificate grace"). Kept for the
    /// life of the process; `certificateHold` entries are not kept (a hold may be lifted).
    remembered: HashMap<Vec<u8>, HashMap<Vec<u8>, Revocation>>,
}

impl Default for TrustStore {
    fn default() -> Self {
        TrustStore {
            authorities: Vec::new(),
            authority_crls: Vec::new(),
            crls: Vec::new(),
            remembered: HashMap::new(),
            policy: EndEntityPolicy::default(),
            generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
        }
    }
}

impl TrustStore {
    /// Builds a store from DER blobs. Anchors and intermediates must be parseable strict-DER
    /// certificates; one that may not issue certificates (not a CA, no keyCertSign, ...) is
    /// kept, and a path through it is refused as `issuer-not-ca`. CRLs are verified against
    /// the authorities here, once, so a forged CRL is refused at load time rather than
    /// trusted later.
    pub fn from_der(
        anchors: &[Vec<u8>],
        intermediates: &[Vec<u8>],
        crls: &[Vec<u8>],
        policy: EndEntityPolicy,
    ) -> Result<Self, String> {
        Self::build(anchors, intermediates, crls, policy, false)
            .map(|(store, _)| store)
            .map_err(|(_, reason)| reason)
    }

    /// As [`from_der`](Self::from_der), for diagnosis (`check-cert`, in the manner of
    /// `openssl verify`): a CRL that parses and names a configured CA but fails verification
    /// (bad signature, no cRLSign, unsupported critical extension, ...) is left out with a
    /// warning instead of failing the whole load, so the certificate gets a verdict (typically
    /// `crl-missing`). A CRL that cannot be parsed, or whose issuer is not configured, is
    /// still an error.
    pub fn from_der_diagnostic(
        anchors: &[Vec<u8>],
        intermediates: &[Vec<u8>],
        crls: &[Vec<u8>],
        policy: EndEntityPolicy,
    ) -> Result<(Self, Vec<String>), String> {
        Self::build(anchors, intermediates, crls, policy, true).map_err(|(_, reason)| reason)
    }

    /// Builds the store; an error says which input (in the order anchors, intermediates,
    /// CRLs, counted across all three) it is about, so a caller can name the file.
    fn build(
        anchors: &[Vec<u8>],
        intermediates: &[Vec<u8>],
        crls: &[Vec<u8>],
        policy: EndEntityPolicy,
        skip_unverified: bool,
    ) -> Result<(Self, Vec<String>), (usize, String)> {
        let mut authorities = Vec::new();
        for (input, (der, is_anchor)) in anchors
            .iter()
            .map(|d| (d, true))
            .chain(intermediates.iter().map(|d| (d, false)))
            .enumerate()
        {
            authorities.push(parse_authority(der, is_anchor).map_err(|e| (input, e))?);
        }
        let first_crl = anchors.len() + intermediates.len();
        let mut store = TrustStore {
            authority_crls: vec![Vec::new(); authorities.len()],
            authorities,
            policy,
            ..TrustStore::default()
        };
        let mut warnings = Vec::new();
        for (n, der) in crls.iter().enumerate() {
            let (crl, signers) = match store.parse_crl(der) {
                Ok(parsed) => parsed,
                Err(CrlRefused::Unverified(reason)) if skip_unverified => {
                    warnings.push(format!("CRL left out: {reason}"));
                    continue;
                }
                Err(CrlRefused::Unverified(reason) | CrlRefused::Unusable(reason)) => {
                    return Err((first_crl + n, reason))
                }
            };
            let index = store.crls.len();
            store.crls.push(crl);
            for s in signers {
                store.authority_crls[s].push(index);
            }
        }
        Ok((store, warnings))
    }

    pub fn policy(&self) -> &EndEntityPolicy {
        &self.policy
    }

    /// A number unique to this store (within the process): cached verdicts carry it, so a
    /// reloaded store never reuses a verdict established against an older one.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Validates a card's user-authentication certificate at time `at`.
    pub fn validate(
        &self,
        der: &[u8],
        at: OffsetDateTime,
    ) -> Result<ValidatedCertificate, CertError> {
        self.verify(der, at).map(|v| v.certificate)
    }

    /// Validates an expired certificate for the eligibility grace period: every check of
    /// [`validate`](Self::validate) at `at` (chain, issuers' validity, signature, revocation on
    /// the current CRLs and the remembered revocations, profile) except the certificate's own
    /// notAfter. The caller decides whether `at` is within the grace period
    /// ([`crate::cert_grace`]); `validate` and `check-cert` still call the certificate expired.
    pub fn validate_in_grace(
        &self,
        der: &[u8],
        at: OffsetDateTime,
    ) -> Result<ValidatedCertificate, CertError> {
        self.verify_with(der, at, LeafExpiry::Ignore)
            .map(|v| v.certificate)
    }

    /// Full validation (all three phases), returning what a cache keeps.
    pub fn verify(&self, der: &[u8], at: OffsetDateTime) -> Result<Verified, CertError> {
        self.verify_with(der, at, LeafExpiry::Enforce)
    }

    fn verify_with(
        &self,
        der: &[u8],
        at: OffsetDateTime,
        leaf_expiry: LeafExpiry,
    ) -> Result<Verified, CertError> {
        if der.len() > MAX_CERTIFICATE_LEN {
            return Err(CertError::TooLarge);
        }
        // Phase 1: structure.
        let cert = parse_strict(der)?;
        let leaf = signed_part(&cert);
        let paths = self.build_paths(&leaf)?;
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        let hash = ring::digest::digest(&ring::digest::SHA256, der);
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(hash.as_ref());
        let verified = Verified {
            generation: self.generation,
            paths,
            certificate: ValidatedCertificate {
                sha256,
                rsa_public_key: Vec::new(),
                subject: cert.subject().to_string(),
                issuer: cert.issuer().to_string(),
                serial_hex: hex::encode(cert.raw_serial()),
                issuer_key: hex::encode(
                    ring::digest::digest(&ring::digest::SHA256, cert.issuer().as_raw()).as_ref(),
                ),
                not_before,
                not_after,
            },
        };
        // Phase 2: time and revocation. Before the profile, so staff see "expired" rather
        // than a profile complaint for a card whose expiry already ended its life.
        self.recheck_with(&verified, at, leaf_expiry)?;
        // Phase 3: the end-entity profile, read only once the issuer's signature has shown
        // the content is the authority's.
        let rsa_public_key = self.check_profile(&cert)?;
        Ok(Verified {
            certificate: ValidatedCertificate {
                rsa_public_key,
                ..verified.certificate
            },
            ..verified
        })
    }

    /// Phase 2 for an already verified certificate: some path whose CAs are valid at `at`,
    /// the certificate valid at `at`, and no link revoked on its issuer's current CRL. Cheap:
    /// a few comparisons and hash lookups, no parsing and no signature.
    pub fn recheck(&self, verified: &Verified, at: OffsetDateTime) -> Result<(), CertError> {
        self.recheck_with(verified, at, LeafExpiry::Enforce)
    }

    fn recheck_with(
        &self,
        verified: &Verified,
        at: OffsetDateTime,
        leaf_expiry: LeafExpiry,
    ) -> Result<(), CertError> {
        let mut first = None;
        for path in &verified.paths {
            match self.check_path_at(path, &verified.certificate, at, leaf_expiry) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        Err(first.unwrap_or(CertError::UntrustedIssuer {
            issuer: verified.certificate.issuer.clone(),
        }))
    }

    fn check_path_at(
        &self,
        path: &[Link],
        leaf: &ValidatedCertificate,
        at: OffsetDateTime,
        leaf_expiry: LeafExpiry,
    ) -> Result<(), CertError> {
        // Saturating: `check-cert --at` accepts any time up to 9999-12-31, and the skew must
        // not overflow the calendar there. Validity periods are inclusive at both ends
        // (RFC 5280 §4.1.2.5): at exactly notAfter a certificate is still valid.
        let (later, earlier) = skewed(at, self.policy.clock_skew);
        for link in path {
            let a = self.authority(link.authority)?;
            if later < a.not_before || earlier > a.not_after {
                return Err(CertError::IssuerNotValid {
                    subject: a.subject.clone(),
                    at,
                });
            }
        }
        if later < leaf.not_before {
            return Err(CertError::NotYetValid {
                not_before: leaf.not_before,
                at,
            });
        }
        if earlier > leaf.not_after && leaf_expiry == LeafExpiry::Enforce {
            return Err(CertError::Expired {
                not_after: leaf.not_after,
                at,
            });
        }
        for link in path {
            self.check_revocation(link.authority, &link.child_serial, at)?;
        }
        Ok(())
    }
}

/// Whether a validation checks the end entity's own notAfter (the eligibility grace period
/// does not; nothing else may skip it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeafExpiry {
    Enforce,
    Ignore,
}

/// `at` widened by the clock skew both ways, `(at + skew, at - skew)`, clamped to the
/// calendar's ends rather than overflowing.
fn skewed(at: OffsetDateTime, skew: Duration) -> (OffsetDateTime, OffsetDateTime) {
    (at.saturating_add(skew), at.saturating_sub(skew))
}

#[cfg(test)]
mod tests;

/// An instant as RFC 3339 (UTC), as every message shows times.
pub fn rfc3339(t: &OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
