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

use crate::der::{self, DerError};

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
    #[error("the certificate expired at {not_after} (checked at {at})")]
    Expired {
        not_after: OffsetDateTime,
        at: OffsetDateTime,
    },
    #[error("the certificate is not valid before {not_before} (checked at {at})")]
    NotYetValid {
        not_before: OffsetDateTime,
        at: OffsetDateTime,
    },
    #[error("issuing CA {subject} is not valid at {at}")]
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
    #[error("the certificate was revoked at {revoked_at} (reason: {reason})")]
    Revoked {
        revoked_at: OffsetDateTime,
        reason: String,
    },
    #[error("no current CRL from issuer {issuer} is configured")]
    CrlMissing { issuer: String },
    #[error("the CRL from issuer {issuer} is stale (nextUpdate {next_update}, checked at {at})")]
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
}

impl Default for TrustStore {
    fn default() -> Self {
        TrustStore {
            authorities: Vec::new(),
            authority_crls: Vec::new(),
            crls: Vec::new(),
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

    /// [`load`](Self::load) with [`from_der_diagnostic`](Self::from_der_diagnostic)'s
    /// treatment of CRLs that fail verification.
    pub fn load_diagnostic(
        anchors: &[PathBuf],
        intermediates: &[PathBuf],
        crls: &[PathBuf],
        policy: EndEntityPolicy,
    ) -> Result<(Self, Vec<String>), TrustLoadError> {
        Self::load_with(anchors, intermediates, crls, policy, true)
    }

    /// Loads anchors, intermediates (PEM or DER, several per PEM file) and CRLs (PEM or DER).
    pub fn load(
        anchors: &[PathBuf],
        intermediates: &[PathBuf],
        crls: &[PathBuf],
        policy: EndEntityPolicy,
    ) -> Result<Self, TrustLoadError> {
        Self::load_with(anchors, intermediates, crls, policy, false).map(|(store, _)| store)
    }

    fn load_with(
        anchors: &[PathBuf],
        intermediates: &[PathBuf],
        crls: &[PathBuf],
        policy: EndEntityPolicy,
        skip_unverified: bool,
    ) -> Result<(Self, Vec<String>), TrustLoadError> {
        // The file each DER blob came from (a PEM file may hold several), so an error names
        // the file at fault.
        let mut origins: Vec<&Path> = Vec::new();
        let a = read_all(anchors, "CERTIFICATE", &mut origins)?;
        let i = read_all(intermediates, "CERTIFICATE", &mut origins)?;
        let c = read_all(crls, "X509 CRL", &mut origins)?;
        Self::build(&a, &i, &c, policy, skip_unverified).map_err(|(input, reason)| {
            TrustLoadError::Invalid {
                path: origins
                    .get(input)
                    .map(|p| p.to_path_buf())
                    .unwrap_or_default(),
                reason,
            }
        })
    }

    pub fn policy(&self) -> &EndEntityPolicy {
        &self.policy
    }

    /// A number unique to this store (within the process): cached verdicts carry it, so a
    /// reloaded store never reuses a verdict established against an older one.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Total revoked serials over all CRLs.
    pub fn revoked_count(&self) -> usize {
        self.crls.iter().map(|c| c.revoked.len()).sum()
    }

    /// The newest thisUpdate per CA key, to refuse a reload that would roll a CRL back.
    pub fn crl_this_updates(&self) -> Vec<(Vec<u8>, OffsetDateTime)> {
        let mut out: HashMap<Vec<u8>, OffsetDateTime> = HashMap::new();
        for (a, indexes) in self.authorities.iter().zip(&self.authority_crls) {
            for &i in indexes {
                let key = [a.subject_raw.as_slice(), a.spki.bytes()].concat();
                let t = self.crls[i].this_update;
                let e = out.entry(key).or_insert(t);
                if t > *e {
                    *e = t;
                }
            }
        }
        out.into_iter().collect()
    }

    /// Parses and verifies a CRL; returns it and the authorities whose key signed it.
    fn parse_crl(&self, der: &[u8]) -> Result<(Crl, Vec<usize>), CrlRefused> {
        use CrlRefused::{Unusable, Unverified};
        if der.len() > MAX_CRL_LEN {
            return Err(Unusable(format!("CRL is larger than {MAX_CRL_LEN} bytes")));
        }
        der::check(der)
            .map_err(|e| Unusable(format!("CRL is not strict DER: {}", der_problem(&e))))?;
        let (_, crl) = CertificateRevocationList::from_der(der)
            .map_err(|e| Unusable(format!("CRL is not valid DER: {e}")))?;
        let tbs = &crl.tbs_cert_list;
        if !self
            .authorities
            .iter()
            .any(|a| a.subject_raw == tbs.issuer.as_raw())
        {
            return Err(Unusable(format!(
                "CRL issuer {} is not a configured CA",
                tbs.issuer
            )));
        }
        // From here on the CRL names a configured CA but may fail verification.
        let verify_crl = || -> Result<(Crl, Vec<usize>), String> {
            if let Some(v) = tbs.version {
                if v.0 != 1 {
                    return Err(format!("CRL version {} is not v2", u64::from(v.0) + 1));
                }
            }
            if crl.signature_algorithm != tbs.signature {
                return Err("CRL signature algorithm mismatch".into());
            }
            for ext in tbs.extensions() {
                let oid = ext.oid.to_id_string();
                if ext.critical && ![OID_AUTHORITY_KEY_ID, OID_CRL_NUMBER].contains(&oid.as_str()) {
                    return Err(format!("CRL has unsupported critical extension {oid}"));
                }
            }
            let issuer_raw = tbs.issuer.as_raw();
            let algorithm = crl.signature_algorithm.algorithm.to_id_string();
            let mut signers = Vec::new();
            let mut last_err = format!("CRL issuer {} is not a configured CA", tbs.issuer);
            for (i, a) in self.authorities.iter().enumerate() {
                if a.subject_raw != issuer_raw {
                    continue;
                }
                match verify_signed(&a.spki, &algorithm, tbs.as_ref(), &crl.signature_value.data) {
                    Ok(()) if !a.may_sign_crls => {
                        last_err = format!("CA {} lacks the cRLSign key usage", a.subject);
                    }
                    Ok(()) => signers.push(i),
                    Err(e) => last_err = format!("CRL from {}: {e}", a.subject),
                }
            }
            if signers.is_empty() {
                return Err(last_err);
            }
            let mut revoked = HashMap::with_capacity(tbs.revoked_certificates.len());
            for entry in crl.iter_revoked_certificates() {
                let mut reason = "unspecified";
                for ext in entry.extensions() {
                    let oid = ext.oid.to_id_string();
                    match ext.parsed_extension() {
                        ParsedExtension::ReasonCode(code) => reason = reason_name(code.0),
                        _ if ext.critical
                            && ![OID_CRL_REASON, OID_INVALIDITY_DATE].contains(&oid.as_str()) =>
                        {
                            return Err(format!(
                                "CRL entry {} has unsupported critical extension {oid}",
                                hex::encode(entry.raw_serial())
                            ));
                        }
                        _ => {}
                    }
                }
                if reason == "removeFromCRL" {
                    // Only meaningful in delta CRLs, which are not supported: not a revocation.
                    continue;
                }
                revoked.insert(
                    entry.raw_serial().to_vec(),
                    Revocation {
                        at: entry.revocation_date.to_datetime(),
                        reason,
                    },
                );
            }
            Ok((
                Crl {
                    this_update: tbs.this_update.to_datetime(),
                    next_update: tbs.next_update.map(|t| t.to_datetime()),
                    revoked,
                },
                signers,
            ))
        };
        verify_crl().map_err(Unverified)
    }

    /// Validates a card's user-authentication certificate at time `at`.
    pub fn validate(
        &self,
        der: &[u8],
        at: OffsetDateTime,
    ) -> Result<ValidatedCertificate, CertError> {
        self.verify(der, at).map(|v| v.certificate)
    }

    /// Full validation (all three phases), returning what a cache keeps.
    pub fn verify(&self, der: &[u8], at: OffsetDateTime) -> Result<Verified, CertError> {
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
        self.recheck(&verified, at)?;
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
        let mut first = None;
        for path in &verified.paths {
            match self.check_path_at(path, &verified.certificate, at) {
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
        if earlier > leaf.not_after {
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

    fn authority(&self, index: usize) -> Result<&Authority, CertError> {
        // Indexes come from this store's own path building; a miss would be a bug, refused
        // rather than panicking.
        self.authorities
            .get(index)
            .ok_or_else(|| CertError::UntrustedIssuer {
                issuer: "(stale path)".into(),
            })
    }

    /// Every path from `leaf` to an anchor, each link's signature verified, each CA allowed
    /// to issue, lengths within bounds. Errs with the most conclusive reason when none exists.
    fn build_paths(&self, leaf: &SignedPart) -> Result<Vec<Vec<Link>>, CertError> {
        let mut search = PathSearch {
            paths: Vec::new(),
            best_error: None,
            signature_checks: 0,
        };
        let mut current = Vec::new();
        self.extend_path(leaf, &mut current, &mut search);
        if search.paths.is_empty() {
            return Err(search.best_error.unwrap_or(CertError::UntrustedIssuer {
                issuer: leaf.issuer.clone(),
            }));
        }
        Ok(search.paths)
    }

    fn extend_path(&self, child: &SignedPart, current: &mut Vec<Link>, search: &mut PathSearch) {
        let mut found = false;
        // Several CA generations share a name: when the child names its issuer's key
        // (authorityKeyIdentifier), a candidate with another subjectKeyIdentifier is not its
        // issuer, as in OpenSSL's X509_check_issued (a mismatch there is "unable to get local
        // issuer certificate"); candidates without a key identifier are tried.
        let key_id_differs = |auth: &Authority| {
            matches!(
                (&child.authority_key_id, &auth.key_id),
                (Some(aki), Some(ski)) if aki != ski
            )
        };
        for (index, auth) in self.authorities.iter().enumerate() {
            if auth.subject_raw != child.issuer_raw
                || key_id_differs(auth)
                || current.iter().any(|l| l.authority == index)
                || search.paths.len() >= MAX_PATHS
            {
                continue;
            }
            found = true;
            if search.signature_checks >= MAX_SIGNATURE_CHECKS {
                search.note(CertError::PathTooLong {
                    detail: "too many candidate issuers".into(),
                });
                return;
            }
            search.signature_checks += 1;
            if let Err(e) =
                verify_signed(&auth.spki, &child.algorithm, &child.tbs, &child.signature)
            {
                search.note(e);
                continue;
            }
            if let Some(problem) = &auth.problem {
                search.note(problem.clone());
                continue;
            }
            // current.len() intermediates lie between this authority and the leaf.
            if let Some(limit) = auth.path_len {
                if (current.len() as u64) > u64::from(limit) {
                    search.note(CertError::PathTooLong {
                        detail: format!("{} allows {limit} intermediate(s) below it", auth.subject),
                    });
                    continue;
                }
            }
            current.push(Link {
                authority: index,
                child_serial: child.serial.clone(),
            });
            if auth.is_anchor {
                search.paths.push(current.clone());
            } else if current.len() + 1 >= MAX_PATH_LEN {
                search.note(CertError::PathTooLong {
                    detail: format!("more than {MAX_PATH_LEN} certificates"),
                });
            } else {
                self.extend_path(&auth.signed, current, search);
            }
            current.pop();
        }
        if !found {
            search.note(CertError::UntrustedIssuer {
                issuer: child.issuer.clone(),
            });
        }
    }

    /// The revocation check of one link: the newest current CRL signed by the authority's
    /// key, fail closed when there is none or it is stale.
    fn check_revocation(
        &self,
        authority: usize,
        serial: &[u8],
        at: OffsetDateTime,
    ) -> Result<(), CertError> {
        let (later, earlier) = skewed(at, self.policy.crl_clock_skew);
        let a = self.authority(authority)?;
        let crl = self
            .authority_crls
            .get(authority)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.crls.get(i))
            .filter(|c| c.this_update <= later)
            .max_by_key(|c| c.this_update)
            .ok_or_else(|| CertError::CrlMissing {
                issuer: a.subject.clone(),
            })?;
        if let Some(next) = crl.next_update {
            if earlier > next && self.policy.stale_crl == StaleCrlPolicy::Reject {
                return Err(CertError::CrlStale {
                    issuer: a.subject.clone(),
                    next_update: next,
                    at,
                });
            }
        }
        match crl.revoked.get(serial) {
            Some(r) => Err(CertError::Revoked {
                revoked_at: r.at,
                reason: r.reason.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Phase 3: the card's own profile (jpki-card.md §6), in the order docs/validation.md
    /// gives. Returns its RSAPublicKey DER.
    fn check_profile(&self, cert: &X509Certificate<'_>) -> Result<Vec<u8>, CertError> {
        check_extensions(cert)?;
        let spki = cert.public_key();
        let leaf_key = match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => {
                let bits = rsa.key_size();
                if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                    return Err(CertError::WeakKey { bits });
                }
                // Strict DER (checked in parse_strict) makes the INTEGER minimal, so the
                // content octets are comparable as they stand.
                if rsa.exponent != CARD_RSA_EXPONENT {
                    return Err(CertError::WrongRsaExponent {
                        exponent: hex::encode(rsa.exponent),
                    });
                }
                spki.subject_public_key.data.to_vec()
            }
            Ok(_) => {
                return Err(CertError::UnsupportedAlgorithm {
                    oid: spki.algorithm.algorithm.to_id_string(),
                })
            }
            Err(e) => {
                return Err(CertError::Malformed {
                    detail: format!("public key: {e}"),
                })
            }
        };
        check_serial(cert.raw_serial())?;
        check_card_subject(cert)?;
        match cert.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => return Err(CertError::NotEndEntity),
            Ok(_) => {}
            Err(e) => {
                return Err(CertError::Malformed {
                    detail: format!("basicConstraints: {e}"),
                })
            }
        }
        match cert.key_usage() {
            Ok(Some(ku)) if ku.value.digital_signature() => {
                // Read from the BIT STRING itself rather than x509-parser's 16-bit flags, so
                // no bit beyond decipherOnly can hide.
                let raw = cert
                    .extensions()
                    .iter()
                    .find(|e| e.oid.to_id_string() == OID_KEY_USAGE)
                    .map(|e| e.value);
                if raw.is_none_or(key_usage_beyond_digital_signature) {
                    return Err(CertError::ExtraKeyUsage);
                }
            }
            Ok(_) => return Err(CertError::WrongKeyUsage),
            Err(e) => {
                return Err(CertError::Malformed {
                    detail: format!("keyUsage: {e}"),
                })
            }
        }
        match cert.extended_key_usage() {
            // clientAuth itself: anyExtendedKeyUsage does not stand in for it. Other
            // purposes beside clientAuth are tolerated.
            Ok(Some(eku)) if eku.value.client_auth => {}
            Ok(Some(_)) => return Err(CertError::WrongExtendedKeyUsage),
            Ok(None) => return Err(CertError::MissingExtendedKeyUsage),
            Err(e) => {
                return Err(CertError::Malformed {
                    detail: format!("extendedKeyUsage: {e}"),
                })
            }
        }
        if !self.policy.policy_oids.is_empty() {
            let asserted = certificate_policies(cert);
            if !asserted
                .iter()
                .any(|p| self.policy.policy_oids.iter().any(|want| want == p))
            {
                return Err(CertError::WrongPolicy);
            }
        }
        Ok(leaf_key)
    }
}

/// Whether `value` is a card subject's common name: exactly [`CARD_CN_LEN`] characters, each
/// an upper-case ASCII letter or a digit (the pattern of the ids on real cards, inferred from
/// public samples; the testbed's are `ONSHI` + 18 digits). The one definition of the pattern:
/// a NUL, a space, a lower-case letter or any non-ASCII byte is refused.
pub fn is_card_common_name(value: &[u8]) -> bool {
    value.len() == CARD_CN_LEN
        && value
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// The card's subject must be exactly `C=JP, CN=<id>`: two single-valued RDNs in that order,
/// the country a PrintableString `JP`, the common name a PrintableString or UTF8String that
/// [`is_card_common_name`] accepts. Nothing else (jpki-card.md §6: "nothing personal").
fn check_card_subject(cert: &X509Certificate<'_>) -> Result<(), CertError> {
    use x509_parser::asn1_rs::Tag;
    let wrong = |detail: String| Err(CertError::WrongSubject { detail });
    let rdns: Vec<_> = cert.subject().iter_rdn().collect();
    if rdns.len() != 2 {
        return wrong(format!("{} RDNs, not 2", rdns.len()));
    }
    let mut attributes = Vec::with_capacity(2);
    for rdn in &rdns {
        let mut atvs = rdn.iter();
        match (atvs.next(), atvs.next()) {
            (Some(atv), None) => attributes.push(atv),
            _ => return wrong("a multi-valued or empty RDN".into()),
        }
    }
    let (country, common_name) = (attributes[0], attributes[1]);
    if country.attr_type().to_id_string() != OID_COUNTRY_NAME
        || country.attr_value().tag() != Tag::PrintableString
        || country.attr_value().data != b"JP"
    {
        return wrong("the first RDN is not C=JP (PrintableString)".into());
    }
    let value = common_name.attr_value();
    if common_name.attr_type().to_id_string() != OID_COMMON_NAME {
        return wrong("the second RDN is not a CN".into());
    }
    if value.tag() != Tag::PrintableString && value.tag() != Tag::Utf8String {
        return wrong(format!(
            "the CN is a {}, not a PrintableString",
            value.tag()
        ));
    }
    if !is_card_common_name(value.data) {
        return wrong(format!(
            "CN \"{}\" ({} bytes)",
            value.data.escape_ascii(),
            value.data.len()
        ));
    }
    Ok(())
}

/// The serial (the DER INTEGER's content octets) must be positive and at most
/// [`MAX_SERIAL_OCTETS`] octets (RFC 5280 §4.1.2.2). Strict DER has made the INTEGER minimal,
/// so zero is exactly `00` and a negative number has its top bit set.
fn check_serial(raw: &[u8]) -> Result<(), CertError> {
    match raw.first() {
        None => return Err(CertError::NonPositiveSerial),
        Some(&first) if first & 0x80 != 0 => return Err(CertError::NonPositiveSerial),
        Some(_) if raw.iter().all(|&b| b == 0) => return Err(CertError::NonPositiveSerial),
        Some(_) => {}
    }
    if raw.len() > MAX_SERIAL_OCTETS {
        return Err(CertError::SerialTooLong { octets: raw.len() });
    }
    Ok(())
}

/// Whether a keyUsage extension value (a DER BIT STRING) sets any bit but digitalSignature
/// (bit 0, the first octet's top bit). Unparseable counts as yes.
fn key_usage_beyond_digital_signature(value: &[u8]) -> bool {
    let Ok(h) = der::header(value) else {
        return true;
    };
    let Some(content) = value.get(h.header_len..h.total_len()) else {
        return true;
    };
    // content[0] is the count of unused bits; the named bits follow.
    match content.get(1..) {
        Some([first, rest @ ..]) => first & 0x7f != 0 || rest.iter().any(|&b| b != 0),
        _ => true,
    }
}

/// Why a CRL was not loaded.
enum CrlRefused {
    /// Not parseable, or from no configured CA: the configuration is wrong.
    Unusable(String),
    /// It names a configured CA but does not verify (signature, keyUsage, extensions).
    Unverified(String),
}

/// Path-building state: bounded work, the paths found, the most conclusive failure.
struct PathSearch {
    paths: Vec<Vec<Link>>,
    best_error: Option<CertError>,
    signature_checks: usize,
}

impl PathSearch {
    fn note(&mut self, e: CertError) {
        if self.best_error.as_ref().is_none_or(|b| e.rank() > b.rank()) {
            self.best_error = Some(e);
        }
    }
}

impl SpkiKey {
    fn bytes(&self) -> &[u8] {
        match self {
            SpkiKey::Rsa { der, .. } => der,
            SpkiKey::Ec { point, .. } => point,
            SpkiKey::Unsupported { oid } => oid.as_bytes(),
        }
    }
}

/// Reads every file (PEM or DER), noting for each blob the file it came from.
fn read_all<'p>(
    paths: &'p [PathBuf],
    tag: &str,
    origins: &mut Vec<&'p Path>,
) -> Result<Vec<Vec<u8>>, TrustLoadError> {
    let mut out = Vec::new();
    for path in paths {
        let blobs = read_der_or_pem(path, tag)?;
        origins.extend(std::iter::repeat_n(path.as_path(), blobs.len()));
        out.extend(blobs);
    }
    Ok(out)
}

/// What is wrong with bytes that are not strict DER, for messages about things other than a
/// certificate (CertError's texts say "the certificate").
fn der_problem(e: &DerError) -> String {
    match e {
        DerError::Malformed(detail) => format!("malformed: {detail}"),
        DerError::NonCanonical(detail) => format!("BER, not canonical DER: {detail}"),
        DerError::Trailing(bytes) => format!("followed by {bytes} trailing bytes"),
    }
}

/// `at` widened by the clock skew both ways, `(at + skew, at - skew)`, clamped to the
/// calendar's ends rather than overflowing.
fn skewed(at: OffsetDateTime, skew: Duration) -> (OffsetDateTime, OffsetDateTime) {
    (at.saturating_add(skew), at.saturating_sub(skew))
}

/// The version from a raw TBSCertificate: 0 (v1) when the explicit [0] field is absent.
fn raw_version(tbs: &[u8]) -> Result<u64, CertError> {
    let outer = der::header(tbs)?;
    let content = &tbs[outer.header_len..outer.total_len()];
    let Ok(first) = der::header(content) else {
        return Ok(0);
    };
    if first.tag != 0xa0 {
        return Ok(0);
    }
    let inner = &content[first.header_len..first.total_len()];
    let int = der::header(inner)?;
    if int.tag != 0x02 {
        return Err(CertError::Malformed {
            detail: "version is not an INTEGER".into(),
        });
    }
    let bytes = &inner[int.header_len..int.total_len()];
    if bytes.len() > 4 || bytes.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(CertError::UnsupportedVersion { version: u64::MAX });
    }
    let v = bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if v == 0 {
        // DER omits a DEFAULT value: an explicit v1 is BER.
        return Err(CertError::NonCanonicalEncoding {
            detail: "explicitly encoded default version v1".into(),
        });
    }
    Ok(v)
}

/// Parses a certificate: strict DER first (so BER, bad lengths and trailing bytes are refused
/// whatever x509-parser would tolerate), then the X.509 structure, version v3 and matching
/// signature algorithm fields.
fn parse_strict(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    let unsorted = der::check_deferring_order(der)?;
    // The version before x509-parser, which refuses some versions with a generic error.
    let outer = der::header(der)?;
    let version = raw_version(&der[outer.header_len..outer.total_len()])?;
    if version > 2 {
        return Err(CertError::UnsupportedVersion {
            version: version.saturating_add(1),
        });
    }
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| CertError::Malformed {
        detail: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(CertError::TrailingData { bytes: rest.len() });
    }
    if version != 2 {
        return Err(CertError::UnsupportedVersion {
            version: version.saturating_add(1),
        });
    }
    if let Some(detail) = unsorted {
        return Err(CertError::NonCanonicalEncoding { detail });
    }
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(CertError::SignatureAlgorithmMismatch);
    }
    // Extension values and the RSA key are DER inside OCTET/BIT STRINGs: strict too.
    for ext in cert.extensions() {
        der::check(ext.value).map_err(|e| match CertError::from(e) {
            CertError::TrailingData { bytes } => CertError::Malformed {
                detail: format!("extension {}: {bytes} trailing bytes", ext.oid),
            },
            other => other,
        })?;
    }
    let spki = cert.public_key();
    if spki.algorithm.algorithm.to_id_string() == OID_RSA_ENCRYPTION {
        der::check(&spki.subject_public_key.data).map_err(|e| CertError::Malformed {
            detail: format!("RSA public key: {}", CertError::from(e)),
        })?;
    }
    Ok(cert)
}

fn signed_part(cert: &X509Certificate<'_>) -> SignedPart {
    SignedPart {
        issuer_raw: cert.issuer().as_raw().to_vec(),
        issuer: cert.issuer().to_string(),
        algorithm: cert.signature_algorithm.algorithm.to_id_string(),
        tbs: cert.tbs_certificate.as_ref().to_vec(),
        signature: cert.signature_value.data.to_vec(),
        serial: cert.raw_serial().to_vec(),
        authority_key_id: cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    aki.key_identifier.as_ref().map(|k| k.0.to_vec())
                }
                _ => None,
            }),
    }
}

fn parse_authority(der: &[u8], is_anchor: bool) -> Result<Authority, String> {
    let cert = parse_strict(der).map_err(|e| format!("CA certificate: {e}"))?;
    let subject = cert.subject().to_string();
    let not_ca = |detail: &str| CertError::IssuerNotCa {
        subject: subject.clone(),
        detail: detail.to_owned(),
    };
    let bc = cert
        .basic_constraints()
        .map_err(|e| format!("CA {subject}: {e}"))?;
    let ku = cert.key_usage().map_err(|e| format!("CA {subject}: {e}"))?;
    let mut problem = match (&bc, &ku) {
        (None, _) => Some(not_ca("no basicConstraints")),
        (Some(bc), _) if !bc.value.ca => Some(not_ca("basicConstraints cA is false")),
        (_, None) => Some(not_ca("no keyUsage")),
        (_, Some(ku)) if !ku.value.key_cert_sign() => Some(not_ca("keyUsage lacks keyCertSign")),
        _ => None,
    };
    if problem.is_none() {
        problem = check_extensions(&cert).err();
    }
    let spki = spki_key(&cert);
    if problem.is_none() {
        if let SpkiKey::Rsa { bits, .. } = spki {
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                problem = Some(CertError::WeakKey { bits });
            }
        }
    }
    Ok(Authority {
        subject_raw: cert.subject().as_raw().to_vec(),
        subject,
        spki,
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        is_anchor,
        problem,
        path_len: bc.and_then(|b| b.value.path_len_constraint),
        may_sign_crls: ku.is_none_or(|k| k.value.crl_sign()),
        signed: signed_part(&cert),
        key_id: cert
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            }),
    })
}

fn spki_key(cert: &X509Certificate<'_>) -> SpkiKey {
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => SpkiKey::Rsa {
            der: spki.subject_public_key.data.to_vec(),
            bits: rsa.key_size(),
        },
        Ok(PublicKey::EC(point)) => SpkiKey::Ec {
            point: spki.subject_public_key.data.to_vec(),
            p384: point.key_size() == 384,
        },
        _ => SpkiKey::Unsupported {
            oid: spki.algorithm.algorithm.to_id_string(),
        },
    }
}

/// Verifies `signature` over `message` with an approved algorithm. SHA-1 and MD5 are refused,
/// and RSA keys outside 2048–8192 bits.
fn verify_signed(
    key: &SpkiKey,
    oid: &str,
    message: &[u8],
    signature_bytes: &[u8],
) -> Result<(), CertError> {
    let rsa_ok = |bits: usize| (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits);
    let (ring_alg, der): (&'static dyn signature::VerificationAlgorithm, &[u8]) = match (oid, key) {
        ("1.2.840.113549.1.1.11", SpkiKey::Rsa { der, bits }) if rsa_ok(*bits) => {
            (&signature::RSA_PKCS1_2048_8192_SHA256, der)
        }
        ("1.2.840.113549.1.1.12", SpkiKey::Rsa { der, bits }) if rsa_ok(*bits) => {
            (&signature::RSA_PKCS1_2048_8192_SHA384, der)
        }
        ("1.2.840.113549.1.1.13", SpkiKey::Rsa { der, bits }) if rsa_ok(*bits) => {
            (&signature::RSA_PKCS1_2048_8192_SHA512, der)
        }
        ("1.2.840.10045.4.3.2", SpkiKey::Ec { point, p384: false }) => {
            (&signature::ECDSA_P256_SHA256_ASN1, point)
        }
        ("1.2.840.10045.4.3.3", SpkiKey::Ec { point, p384: true }) => {
            (&signature::ECDSA_P384_SHA384_ASN1, point)
        }
        (
            "1.2.840.113549.1.1.11" | "1.2.840.113549.1.1.12" | "1.2.840.113549.1.1.13",
            SpkiKey::Rsa { bits, .. },
        ) => return Err(CertError::WeakKey { bits: *bits }),
        _ => {
            return Err(CertError::UnsupportedAlgorithm {
                oid: oid.to_owned(),
            })
        }
    };
    signature::UnparsedPublicKey::new(ring_alg, der)
        .verify(message, signature_bytes)
        .map_err(|_| CertError::BadSignature)
}

/// Unknown critical extensions, and extensions x509-parser could not decode.
fn check_extensions(cert: &X509Certificate<'_>) -> Result<(), CertError> {
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        if let ParsedExtension::ParseError { error } = ext.parsed_extension() {
            return Err(CertError::Malformed {
                detail: format!("extension {oid}: {error}"),
            });
        }
        if ext.critical && !KNOWN_CRITICAL.contains(&oid.as_str()) {
            return Err(CertError::UnknownCriticalExtension { oid });
        }
    }
    Ok(())
}

fn certificate_policies(cert: &X509Certificate<'_>) -> Vec<String> {
    cert.extensions()
        .iter()
        .filter_map(|ext| match ext.parsed_extension() {
            ParsedExtension::CertificatePolicies(policies) => Some(
                policies
                    .iter()
                    .map(|p| p.policy_id.to_id_string())
                    .filter(|p| p != OID_ANY_POLICY)
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect()
}

/// RFC 5280 CRLReason names.
fn reason_name(code: u8) -> &'static str {
    match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => "unknown",
    }
}

/// Reads a file holding one DER object or one or more PEM blocks with the given tag.
pub fn read_der_or_pem(path: &Path, tag: &str) -> Result<Vec<Vec<u8>>, TrustLoadError> {
    let bytes = std::fs::read(path).map_err(|source| TrustLoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    decode_der_or_pem(&bytes, tag).map_err(|reason| TrustLoadError::Invalid {
        path: path.to_owned(),
        reason,
    })
}

/// Decodes DER (returned as is) or PEM blocks with the given tag.
pub fn decode_der_or_pem(bytes: &[u8], tag: &str) -> Result<Vec<Vec<u8>>, String> {
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes.to_vec()]);
    }
    let blocks = pem::parse_many(bytes).map_err(|e| format!("not DER and not PEM: {e}"))?;
    let out: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|b| b.tag() == tag)
        .map(|b| b.into_contents())
        .collect();
    if out.is_empty() {
        return Err(format!("no PEM block of type {tag}"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    //! The card-profile rules (jpki-card.md §6) one by one, at their boundaries, on
    //! certificates built to order by the corpus generator (issued by its CA generation 1).
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

    use std::sync::OnceLock;

    use onshi_cert_corpus::der::{oid, parse_oid, printable, seq, set, tlv};
    use onshi_cert_corpus::{
        card_common_name, card_subject, g1_card, g1_with_crl, CardSpec, EKU_CLIENT_AUTH,
        KU_CRL_SIGN, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, KU_KEY_ENCIPHERMENT, TEST_POLICY,
    };
    use time::macros::datetime;

    use super::*;

    const AT: OffsetDateTime = datetime!(2026-04-01 00:00:00 UTC);
    const SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
    const ANY_EKU: &str = "2.5.29.37.0";

    fn policy() -> EndEntityPolicy {
        EndEntityPolicy {
            policy_oids: vec![TEST_POLICY.to_owned()],
            ..EndEntityPolicy::default()
        }
    }

    fn store_with(policy: EndEntityPolicy, crl_from: OffsetDateTime) -> TrustStore {
        let (ca, crl) = g1_with_crl(&[], crl_from, crl_from + Duration::days(7));
        TrustStore::from_der(&[ca], &[], &[crl], policy).unwrap()
    }

    /// Generation 1 with a CRL current at [`AT`], default policy (no clock-skew allowance for
    /// certificates).
    fn store() -> &'static TrustStore {
        static STORE: OnceLock<TrustStore> = OnceLock::new();
        STORE.get_or_init(|| store_with(policy(), AT - Duration::days(1)))
    }

    fn verdict_at(spec: &CardSpec, at: OffsetDateTime) -> Result<(), &'static str> {
        store()
            .validate(&g1_card(spec), at)
            .map(|_| ())
            .map_err(|e| e.reason())
    }

    fn verdict(spec: &CardSpec) -> Result<(), &'static str> {
        verdict_at(spec, AT)
    }

    fn cn(case: &str) -> String {
        card_common_name(case)
    }

    #[test]
    fn a_card_of_the_profile_is_accepted() {
        let spec = CardSpec::default();
        assert_eq!(verdict(&spec), Ok(()));
        assert!(is_card_common_name(cn("x").as_bytes()));
    }

    #[test]
    fn key_usage_must_be_digital_signature_exactly() {
        let with = |bits: Option<Vec<u8>>| CardSpec {
            key_usage: bits,
            ..CardSpec::default()
        };
        assert_eq!(verdict(&with(Some(vec![KU_DIGITAL_SIGNATURE]))), Ok(()));
        for extra in [KU_KEY_CERT_SIGN, KU_CRL_SIGN, KU_KEY_ENCIPHERMENT, 1, 8] {
            assert_eq!(
                verdict(&with(Some(vec![KU_DIGITAL_SIGNATURE, extra]))),
                Err("extra-key-usage"),
                "digitalSignature + bit {extra}"
            );
        }
        assert_eq!(
            verdict(&with(Some(vec![KU_KEY_ENCIPHERMENT]))),
            Err("wrong-key-usage")
        );
        assert_eq!(verdict(&with(None)), Err("wrong-key-usage"));
        // The BIT STRING itself: only the first named bit may be set, however it is padded.
        assert!(!key_usage_beyond_digital_signature(&[
            0x03, 0x02, 0x07, 0x80
        ]));
        assert!(!key_usage_beyond_digital_signature(&[
            0x03, 0x02, 0x00, 0x80
        ]));
        assert!(!key_usage_beyond_digital_signature(&[
            0x03, 0x03, 0x00, 0x80, 0x00
        ]));
        assert!(key_usage_beyond_digital_signature(&[
            0x03, 0x02, 0x01, 0x82
        ]));
        assert!(key_usage_beyond_digital_signature(&[
            0x03, 0x03, 0x07, 0x80, 0x80
        ]));
        assert!(key_usage_beyond_digital_signature(&[0x03, 0x01, 0x00]));
        assert!(key_usage_beyond_digital_signature(&[0x04, 0x05]));
    }

    #[test]
    fn extended_key_usage_must_be_present_with_client_auth() {
        let with = |eku: Option<Vec<&'static str>>| CardSpec {
            eku,
            ..CardSpec::default()
        };
        assert_eq!(verdict(&with(Some(vec![EKU_CLIENT_AUTH]))), Ok(()));
        assert_eq!(
            verdict(&with(Some(vec![SERVER_AUTH, EKU_CLIENT_AUTH]))),
            Ok(()),
            "other purposes beside clientAuth are tolerated"
        );
        assert_eq!(verdict(&with(None)), Err("missing-extended-key-usage"));
        assert_eq!(
            verdict(&with(Some(vec![SERVER_AUTH]))),
            Err("wrong-extended-key-usage")
        );
        // anyExtendedKeyUsage does not stand in for clientAuth.
        assert_eq!(
            verdict(&with(Some(vec![ANY_EKU]))),
            Err("wrong-extended-key-usage")
        );
    }

    #[test]
    fn the_rsa_exponent_must_be_65537() {
        let e3 = CardSpec {
            rsa_exponent: 3,
            ..CardSpec::default()
        };
        let err = store().validate(&g1_card(&e3), AT).unwrap_err();
        assert_eq!(err.reason(), "wrong-rsa-exponent");
        assert!(err.to_string().contains("0x03"), "{err}");
    }

    #[test]
    fn serials_are_positive_and_at_most_20_octets() {
        let octets = |first: u8, len: usize| {
            let mut s = vec![first];
            s.resize(len, 0xa5);
            s
        };
        // The boundary: 20 content octets accepted, 21 refused, whether the 21st is a
        // significant octet or the 00 that keeps a 160-bit value positive.
        let padded_160_bits = [vec![0x00], octets(0x80, 20)].concat();
        for (serial, expected) in [
            (vec![0x01], Ok(())),
            (octets(0x7f, 20), Ok(())),
            ([vec![0x00], octets(0x80, 19)].concat(), Ok(())),
            (octets(0x01, 21), Err("serial-too-long")),
            (padded_160_bits, Err("serial-too-long")),
            (octets(0x7f, 32), Err("serial-too-long")),
            (vec![0x00], Err("non-positive-serial")),
            (vec![0xff], Err("non-positive-serial")),
            (vec![0x80, 0x00], Err("non-positive-serial")),
            (octets(0xc0, 21), Err("non-positive-serial")),
        ] {
            let len = serial.len();
            let spec = CardSpec {
                serial: serial.clone(),
                ..CardSpec::default()
            };
            assert_eq!(verdict(&spec), expected, "serial {}", hex::encode(&serial));
            assert_eq!(
                check_serial(&serial).map_err(|e| e.reason()),
                expected,
                "{len} octets"
            );
        }
        assert_eq!(check_serial(&[]), Err(CertError::NonPositiveSerial));
    }

    #[test]
    fn the_subject_is_c_jp_and_a_23_character_id() {
        // The pattern itself.
        let good = cn("subject");
        assert!(is_card_common_name(good.as_bytes()));
        for bad in [
            &good.as_bytes()[..22],
            format!("{good}A").as_bytes(),
            good.to_lowercase().as_bytes(),
            format!("{}\0{}", &good[..11], &good[12..]).as_bytes(),
            format!("{} {}", &good[..11], &good[12..]).as_bytes(),
            format!("{}-{}", &good[..11], &good[12..]).as_bytes(),
            "ＡＢＣＤＥＦＧＨ".as_bytes(), // 24 bytes of full-width letters
            b"",
        ] {
            assert!(!is_card_common_name(bad), "{}", bad.escape_ascii());
        }
        // Whole subjects.
        let atv = |attr: &str, value: Vec<u8>| seq(&[&oid(&parse_oid(attr)), &value]);
        let rdn = |attr: &str, value: Vec<u8>| set(&[&atv(attr, value)]);
        let utf8 = |s: &str| tlv(0x0c, s.as_bytes());
        let c_jp = || rdn("2.5.4.6", printable("JP"));
        let cn_rdn = |v: Vec<u8>| rdn("2.5.4.3", v);
        let with_nul = format!("{}\0{}", &good[..11], &good[12..]);
        let cases: Vec<(&str, Vec<u8>, Result<(), &str>)> = vec![
            ("profile", card_subject(good.as_bytes()), Ok(())),
            (
                "CN as UTF8String",
                seq(&[&c_jp(), &cn_rdn(utf8(&good))]),
                Ok(()),
            ),
            (
                "embedded NUL",
                card_subject(with_nul.as_bytes()),
                Err("wrong-subject"),
            ),
            (
                "22 characters",
                card_subject(&good.as_bytes()[..22]),
                Err("wrong-subject"),
            ),
            (
                "lower case",
                card_subject(good.to_lowercase().as_bytes()),
                Err("wrong-subject"),
            ),
            (
                "C=US",
                seq(&[&rdn("2.5.4.6", printable("US")), &cn_rdn(printable(&good))]),
                Err("wrong-subject"),
            ),
            (
                "country as UTF8String",
                seq(&[&rdn("2.5.4.6", utf8("JP")), &cn_rdn(printable(&good))]),
                Err("wrong-subject"),
            ),
            (
                "CN before C",
                seq(&[&cn_rdn(printable(&good)), &c_jp()]),
                Err("wrong-subject"),
            ),
            (
                "no C",
                seq(&[&cn_rdn(printable(&good))]),
                Err("wrong-subject"),
            ),
            (
                "an O as well",
                seq(&[
                    &c_jp(),
                    &rdn("2.5.4.10", printable("Personal")),
                    &cn_rdn(printable(&good)),
                ]),
                Err("wrong-subject"),
            ),
            (
                "two CNs",
                seq(&[
                    &c_jp(),
                    &cn_rdn(printable(&good)),
                    &cn_rdn(printable(&good)),
                ]),
                Err("wrong-subject"),
            ),
            (
                "serialNumber instead of CN",
                seq(&[&c_jp(), &rdn("2.5.4.5", printable(&good))]),
                Err("wrong-subject"),
            ),
            (
                "CN as IA5String",
                seq(&[&c_jp(), &cn_rdn(tlv(0x16, good.as_bytes()))]),
                Err("wrong-subject"),
            ),
            ("empty", seq(&[]), Err("wrong-subject")),
        ];
        for (what, subject, expected) in cases {
            let spec = CardSpec {
                subject,
                ..CardSpec::default()
            };
            assert_eq!(verdict(&spec), expected, "{what}");
        }
        // A multi-valued RDN (C and CN in one SET, in DER order).
        let mut pair = [
            atv("2.5.4.6", printable("JP")),
            atv("2.5.4.3", printable(&good)),
        ];
        pair.sort();
        let multi = seq(&[&set(&[&pair[0], &pair[1]])]);
        let spec = CardSpec {
            subject: multi,
            ..CardSpec::default()
        };
        assert_eq!(verdict(&spec), Err("wrong-subject"));
    }

    #[test]
    fn validity_is_exact_against_our_clock_by_default() {
        let second = Duration::seconds(1);
        let spec = CardSpec {
            not_before: AT - Duration::days(30),
            not_after: AT,
            ..CardSpec::default()
        };
        // notAfter is inclusive (RFC 5280 §4.1.2.5); one second past it is expired.
        assert_eq!(verdict_at(&spec, AT), Ok(()));
        assert_eq!(verdict_at(&spec, AT + second), Err("expired"));
        let spec = CardSpec {
            not_before: AT,
            not_after: AT + Duration::days(30),
            ..CardSpec::default()
        };
        assert_eq!(verdict_at(&spec, AT), Ok(()));
        assert_eq!(verdict_at(&spec, AT - second), Err("not-yet-valid"));
        // The CA's validity likewise: generation 1 ends 2029-04-01T00:00:00Z. At that
        // instant the CA is still valid (and the CRL, long past, is what fails); a second
        // later it is not.
        let late = CardSpec {
            not_after: datetime!(2031-01-01 00:00:00 UTC),
            ..CardSpec::default()
        };
        let ca_end = datetime!(2029-04-01 00:00:00 UTC);
        assert_eq!(verdict_at(&late, ca_end), Err("crl-stale"));
        assert_eq!(verdict_at(&late, ca_end + second), Err("issuer-not-valid"));
        assert_eq!(EndEntityPolicy::default().clock_skew, Duration::ZERO);
    }

    #[test]
    fn a_configured_allowance_widens_validity_and_crl_dates_keep_theirs() {
        let second = Duration::seconds(1);
        let spec = CardSpec {
            not_before: AT - Duration::days(30),
            not_after: AT,
            ..CardSpec::default()
        };
        let cert = g1_card(&spec);
        let skewed = store_with(
            EndEntityPolicy {
                clock_skew: Duration::seconds(5),
                ..policy()
            },
            AT - Duration::days(1),
        );
        skewed.validate(&cert, AT + Duration::seconds(5)).unwrap();
        let err = skewed.validate(&cert, AT + 6 * second).unwrap_err();
        assert_eq!(err.reason(), "expired");
        // A CRL issued by a clock two minutes ahead of ours: current within the CRL
        // allowance (five minutes by default), although certificates get none.
        let ahead = store_with(policy(), AT + Duration::minutes(2));
        let good = g1_card(&CardSpec::default());
        ahead.validate(&good, AT).unwrap();
        let exact = store_with(
            EndEntityPolicy {
                crl_clock_skew: Duration::ZERO,
                ..policy()
            },
            AT + Duration::minutes(2),
        );
        assert_eq!(
            exact.validate(&good, AT).unwrap_err().reason(),
            "crl-missing"
        );
    }

    #[test]
    fn profile_rules_are_checked_in_the_documented_order() {
        // Everything wrong at once; fixing one rule at a time reveals the next.
        let mut spec = CardSpec {
            rsa_exponent: 3,
            serial: vec![0x00],
            subject: card_subject(b"nope"),
            key_usage: Some(vec![KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN]),
            eku: None,
            ..CardSpec::default()
        };
        let mut seen = Vec::new();
        loop {
            match verdict(&spec) {
                Ok(()) => break,
                Err(reason) => {
                    seen.push(reason);
                    let good = CardSpec::default();
                    match reason {
                        "wrong-rsa-exponent" => spec.rsa_exponent = good.rsa_exponent,
                        "non-positive-serial" => spec.serial = good.serial,
                        "wrong-subject" => spec.subject = good.subject,
                        "extra-key-usage" => spec.key_usage = good.key_usage,
                        "missing-extended-key-usage" => spec.eku = good.eku,
                        other => panic!("unexpected {other}"),
                    }
                }
            }
        }
        assert_eq!(
            seen,
            [
                "wrong-rsa-exponent",
                "non-positive-serial",
                "wrong-subject",
                "extra-key-usage",
                "missing-extended-key-usage"
            ]
        );
    }

    #[test]
    fn reason_names_are_distinct_and_listed() {
        let now = AT;
        let new = [
            CertError::ExtraKeyUsage,
            CertError::MissingExtendedKeyUsage,
            CertError::WrongRsaExponent {
                exponent: "03".into(),
            },
            CertError::NonPositiveSerial,
            CertError::SerialTooLong { octets: 21 },
            CertError::WrongSubject {
                detail: String::new(),
            },
            CertError::Expired {
                not_after: now,
                at: now,
            },
        ];
        for e in &new {
            assert!(CertError::REASONS.contains(&e.reason()), "{}", e.reason());
        }
        let mut names = CertError::REASONS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CertError::REASONS.len());
    }
}
