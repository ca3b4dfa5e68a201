//! Validation of the user-authentication certificate a card presents: path to a configured
//! trust anchor, validity at an explicit time, the end-entity profile (key usage, extended key
//! usage, policy), approved algorithms and key sizes, and revocation against the issuing
//! authority's CRL.
//!
//! Pure: [`TrustStore::validate`] takes the certificate bytes and the time, and touches no
//! clock, file or network. Loading the anchors and CRLs from files is [`TrustStore::load`].
//! Every reason a certificate is refused is its own [`CertError`] variant with a stable
//! [`CertError::reason`] name, shared by the service's result codes and `check-cert`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ring::signature;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::Oid;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::revocation_list::CertificateRevocationList;

/// Longest certificate the service accepts from a card (real ones are 1.2–1.6 KB).
pub const MAX_CERTIFICATE_LEN: usize = 8 * 1024;
/// Smallest RSA modulus accepted anywhere in a path.
pub const MIN_RSA_BITS: usize = 2048;
/// Most certificates in a path, anchor included.
pub const MAX_PATH_LEN: usize = 4;

const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_EXT_KEY_USAGE: &str = "2.5.29.37";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_CERT_POLICIES: &str = "2.5.29.32";
const OID_NAME_CONSTRAINTS: &str = "2.5.29.30";
const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";
const OID_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";

/// Why a certificate was refused. The [`reason`](Self::reason) names are stable and documented
/// (docs/result-codes.md); operators and scripts rely on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    #[error("the certificate is not valid DER X.509: {detail}")]
    Malformed { detail: String },
    #[error("the certificate is larger than {MAX_CERTIFICATE_LEN} bytes")]
    TooLarge,
    #[error("signature algorithm {oid} is not approved")]
    UnsupportedAlgorithm { oid: String },
    #[error("RSA key of {bits} bits is below the {MIN_RSA_BITS}-bit minimum")]
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
    #[error("issuing certificate {subject} is not a CA allowed to sign certificates")]
    IssuerNotCa { subject: String },
    #[error("the certificate is a CA certificate, not a card's end-entity certificate")]
    NotEndEntity,
    #[error("key usage must include digitalSignature")]
    WrongKeyUsage,
    #[error("extended key usage does not allow client authentication")]
    WrongExtendedKeyUsage,
    #[error("certificate policy is not one of the accepted policies")]
    WrongPolicy,
    #[error("unknown critical extension {oid}")]
    UnknownCriticalExtension { oid: String },
    #[error("the path is longer than {MAX_PATH_LEN} certificates")]
    PathTooLong,
    #[error("the certificate was revoked at {revoked_at} (reason: {reason})")]
    Revoked {
        revoked_at: OffsetDateTime,
        reason: String,
    },
    #[error("no CRL from issuer {issuer} is configured")]
    CrlMissing { issuer: String },
    #[error("the CRL from issuer {issuer} is stale (nextUpdate {next_update}, checked at {at})")]
    CrlStale {
        issuer: String,
        next_update: OffsetDateTime,
        at: OffsetDateTime,
    },
}

impl CertError {
    /// The stable, documented reason name (`expired`, `revoked`, `untrusted-issuer`, ...).
    pub fn reason(&self) -> &'static str {
        match self {
            CertError::Malformed { .. } => "malformed",
            CertError::TooLarge => "too-large",
            CertError::UnsupportedAlgorithm { .. } => "unsupported-algorithm",
            CertError::WeakKey { .. } => "weak-key",
            CertError::UntrustedIssuer { .. } => "untrusted-issuer",
            CertError::BadSignature => "bad-signature",
            CertError::Expired { .. } => "expired",
            CertError::NotYetValid { .. } => "not-yet-valid",
            CertError::IssuerNotValid { .. } => "issuer-not-valid",
            CertError::IssuerNotCa { .. } => "issuer-not-ca",
            CertError::NotEndEntity => "not-end-entity",
            CertError::WrongKeyUsage => "wrong-key-usage",
            CertError::WrongExtendedKeyUsage => "wrong-extended-key-usage",
            CertError::WrongPolicy => "wrong-policy",
            CertError::UnknownCriticalExtension { .. } => "unknown-critical-extension",
            CertError::PathTooLong => "path-too-long",
            CertError::Revoked { .. } => "revoked",
            CertError::CrlMissing { .. } => "crl-missing",
            CertError::CrlStale { .. } => "crl-stale",
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

/// What a CRL that is past its nextUpdate means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StaleCrlPolicy {
    /// Refuse every certificate of that issuer (fail closed). The default.
    #[default]
    Reject,
    /// Keep using the stale CRL's revocations.
    Accept,
}

/// The rules a card certificate must satisfy, besides the path itself.
#[derive(Debug, Clone)]
pub struct EndEntityPolicy {
    /// At least one of these policy OIDs must be asserted; empty means no policy requirement.
    pub policy_oids: Vec<String>,
    /// Whether an extendedKeyUsage extension is required (when present it must include
    /// clientAuth either way).
    pub require_client_auth_eku: bool,
    /// Allowance for clocks that disagree, applied to validity periods and CRL dates.
    pub clock_skew: Duration,
    pub stale_crl: StaleCrlPolicy,
}

impl Default for EndEntityPolicy {
    fn default() -> Self {
        Self {
            policy_oids: Vec::new(),
            require_client_auth_eku: false,
            clock_skew: Duration::minutes(5),
            stale_crl: StaleCrlPolicy::Reject,
        }
    }
}

/// A CA certificate kept parsed into what path validation needs.
#[derive(Debug, Clone)]
struct Authority {
    der: Vec<u8>,
    subject_raw: Vec<u8>,
    subject: String,
    issuer_raw: Vec<u8>,
    spki: SpkiKey,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    is_anchor: bool,
}

/// A public key in the form ring wants.
#[derive(Debug, Clone)]
enum SpkiKey {
    /// RSAPublicKey DER and the modulus size.
    Rsa { der: Vec<u8>, bits: usize },
    /// Uncompressed EC point on P-256 or P-384.
    Ec { point: Vec<u8>, p384: bool },
}

/// One issuer's CRL, reduced to a constant-time lookup.
#[derive(Debug, Clone)]
struct Crl {
    issuer_raw: Vec<u8>,
    this_update: OffsetDateTime,
    next_update: Option<OffsetDateTime>,
    revoked: HashMap<Vec<u8>, Revocation>,
}

#[derive(Debug, Clone)]
struct Revocation {
    at: OffsetDateTime,
    reason: String,
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
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Trust anchors, intermediates and CRLs: everything a verdict depends on besides the time.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    authorities: Vec<Authority>,
    crls: Vec<Crl>,
    policy: EndEntityPolicy,
}

impl TrustStore {
    /// Builds a store from DER blobs. CRLs are verified against the anchors/intermediates here,
    /// once, so a forged CRL is refused at load time rather than trusted later.
    pub fn from_der(
        anchors: &[Vec<u8>],
        intermediates: &[Vec<u8>],
        crls: &[Vec<u8>],
        policy: EndEntityPolicy,
    ) -> Result<Self, String> {
        let mut authorities = Vec::new();
        for (der, is_anchor) in anchors
            .iter()
            .map(|d| (d, true))
            .chain(intermediates.iter().map(|d| (d, false)))
        {
            authorities.push(parse_authority(der, is_anchor)?);
        }
        let mut store = TrustStore {
            authorities,
            crls: Vec::new(),
            policy,
        };
        for der in crls {
            let crl = store.parse_crl(der)?;
            store.crls.push(crl);
        }
        Ok(store)
    }

    /// Loads anchors, intermediates (PEM or DER, several per PEM file) and CRLs (PEM or DER).
    pub fn load(
        anchors: &[PathBuf],
        intermediates: &[PathBuf],
        crls: &[PathBuf],
        policy: EndEntityPolicy,
    ) -> Result<Self, TrustLoadError> {
        let read_all = |paths: &[PathBuf], tag: &str| -> Result<Vec<Vec<u8>>, TrustLoadError> {
            let mut out = Vec::new();
            for path in paths {
                let blobs = read_der_or_pem(path, tag)?;
                out.extend(blobs);
            }
            Ok(out)
        };
        let a = read_all(anchors, "CERTIFICATE")?;
        let i = read_all(intermediates, "CERTIFICATE")?;
        let c = read_all(crls, "X509 CRL")?;
        TrustStore::from_der(&a, &i, &c, policy).map_err(|reason| TrustLoadError::Invalid {
            path: anchors
                .first()
                .or(crls.first())
                .cloned()
                .unwrap_or_default(),
            reason,
        })
    }

    pub fn policy(&self) -> &EndEntityPolicy {
        &self.policy
    }

    fn parse_crl(&self, der: &[u8]) -> Result<Crl, String> {
        let (rest, crl) = CertificateRevocationList::from_der(der)
            .map_err(|e| format!("CRL is not valid DER: {e}"))?;
        if !rest.is_empty() {
            return Err("CRL has trailing bytes".into());
        }
        let issuer_raw = crl.tbs_cert_list.issuer.as_raw().to_vec();
        let issuer = self
            .authorities
            .iter()
            .find(|a| a.subject_raw == issuer_raw)
            .ok_or_else(|| {
                format!(
                    "CRL issuer {} is not a configured CA",
                    crl.tbs_cert_list.issuer
                )
            })?;
        verify_signed(
            &issuer.spki,
            &crl.signature_algorithm.algorithm,
            crl.tbs_cert_list.as_ref(),
            &crl.signature_value.data,
        )
        .map_err(|e| format!("CRL from {}: {e}", issuer.subject))?;
        let mut revoked = HashMap::new();
        for entry in crl.iter_revoked_certificates() {
            let reason = entry
                .reason_code()
                .map(|(_, code)| reason_name(code.0))
                .unwrap_or("unspecified");
            revoked.insert(
                entry.raw_serial().to_vec(),
                Revocation {
                    at: entry.revocation_date.to_datetime(),
                    reason: reason.to_owned(),
                },
            );
        }
        Ok(Crl {
            issuer_raw,
            this_update: crl.tbs_cert_list.this_update.to_datetime(),
            next_update: crl.tbs_cert_list.next_update.map(|t| t.to_datetime()),
            revoked,
        })
    }

    /// Validates a card's user-authentication certificate at time `at`.
    pub fn validate(
        &self,
        der: &[u8],
        at: OffsetDateTime,
    ) -> Result<ValidatedCertificate, CertError> {
        if der.len() > MAX_CERTIFICATE_LEN {
            return Err(CertError::TooLarge);
        }
        let cert = parse_strict(der)?;
        let skew = self.policy.clock_skew;

        // The path: leaf → intermediates* → anchor, each link's signature checked.
        let mut subject_raw = cert.tbs_certificate.issuer.as_raw().to_vec();
        let mut child_alg = cert.signature_algorithm.algorithm.clone();
        let mut child_tbs: Vec<u8> = cert.tbs_certificate.as_ref().to_vec();
        let mut child_sig: Vec<u8> = cert.signature_value.data.to_vec();
        let mut child_serial = cert.raw_serial().to_vec();
        let mut depth = 1;
        let mut revocation_checks: Vec<(&Authority, Vec<u8>)> = Vec::new();
        let leaf_issuer_name = cert.tbs_certificate.issuer.to_string();
        loop {
            depth += 1;
            if depth > MAX_PATH_LEN {
                return Err(CertError::PathTooLong);
            }
            // Several CA generations may share a name; try each whose key verifies.
            let candidates: Vec<&Authority> = self
                .authorities
                .iter()
                .filter(|a| a.subject_raw == subject_raw)
                .collect();
            if candidates.is_empty() {
                return Err(CertError::UntrustedIssuer {
                    issuer: leaf_issuer_name,
                });
            }
            let mut verified = None;
            let mut last_err = CertError::BadSignature;
            for auth in candidates {
                match verify_signed(&auth.spki, &child_alg, &child_tbs, &child_sig) {
                    Ok(()) => {
                        verified = Some(auth);
                        break;
                    }
                    Err(e) => last_err = e,
                }
            }
            let auth = verified.ok_or(last_err)?;
            if at + skew < auth.not_before || at - skew > auth.not_after {
                return Err(CertError::IssuerNotValid {
                    subject: auth.subject.clone(),
                    at,
                });
            }
            revocation_checks.push((auth, child_serial.clone()));
            if auth.is_anchor {
                break;
            }
            // Continue upward from the intermediate.
            let (_, inter) =
                X509Certificate::from_der(&auth.der).map_err(|e| CertError::Malformed {
                    detail: format!("intermediate: {e}"),
                })?;
            subject_raw = auth.issuer_raw.clone();
            child_alg = inter.signature_algorithm.algorithm.clone();
            child_tbs = inter.tbs_certificate.as_ref().to_vec();
            child_sig = inter.signature_value.data.to_vec();
            child_serial = inter.raw_serial().to_vec();
        }

        // Then time, then revocation: staff need "expired" rather than "revoked" for a card
        // whose expiry already ended its life (authorities drop expired serials from CRLs).
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        if at + skew < not_before {
            return Err(CertError::NotYetValid { not_before, at });
        }
        if at - skew > not_after {
            return Err(CertError::Expired { not_after, at });
        }
        for (auth, serial) in &revocation_checks {
            self.check_revocation(&auth.subject_raw, &auth.subject, serial, at)?;
        }

        // The end-entity profile: properties of the card itself, read only once the issuer's
        // signature has shown the content is the authority's.
        check_critical_extensions(&cert)?;
        let leaf_key = match cert.public_key().parsed() {
            Ok(PublicKey::RSA(rsa)) => {
                let bits = rsa.key_size();
                if bits < MIN_RSA_BITS {
                    return Err(CertError::WeakKey { bits });
                }
                cert.public_key().subject_public_key.data.to_vec()
            }
            Ok(_) => {
                return Err(CertError::UnsupportedAlgorithm {
                    oid: cert.public_key().algorithm.algorithm.to_id_string(),
                })
            }
            Err(e) => {
                return Err(CertError::Malformed {
                    detail: format!("public key: {e}"),
                })
            }
        };
        if let Ok(Some(bc)) = cert.basic_constraints() {
            if bc.value.ca {
                return Err(CertError::NotEndEntity);
            }
        }
        match cert.key_usage() {
            Ok(Some(ku)) if ku.value.digital_signature() => {}
            Ok(_) => return Err(CertError::WrongKeyUsage),
            Err(e) => {
                return Err(CertError::Malformed {
                    detail: format!("keyUsage: {e}"),
                })
            }
        }
        match cert.extended_key_usage() {
            Ok(Some(eku)) => {
                let client_auth = eku.value.client_auth
                    || eku.value.any
                    || eku
                        .value
                        .other
                        .iter()
                        .any(|o| o.to_id_string() == OID_CLIENT_AUTH);
                if !client_auth {
                    return Err(CertError::WrongExtendedKeyUsage);
                }
            }
            Ok(None) if self.policy.require_client_auth_eku => {
                return Err(CertError::WrongExtendedKeyUsage)
            }
            Ok(None) => {}
            Err(e) => {
                return Err(CertError::Malformed {
                    detail: format!("extendedKeyUsage: {e}"),
                })
            }
        }
        if !self.policy.policy_oids.is_empty() {
            let asserted = certificate_policies(&cert);
            if !asserted
                .iter()
                .any(|p| self.policy.policy_oids.iter().any(|want| want == p))
            {
                return Err(CertError::WrongPolicy);
            }
        }

        let hash = ring::digest::digest(&ring::digest::SHA256, der);
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(hash.as_ref());
        Ok(ValidatedCertificate {
            sha256,
            rsa_public_key: leaf_key,
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial_hex: hex::encode(cert.raw_serial()),
            not_before,
            not_after,
        })
    }

    fn check_revocation(
        &self,
        issuer_raw: &[u8],
        issuer: &str,
        serial: &[u8],
        at: OffsetDateTime,
    ) -> Result<(), CertError> {
        let skew = self.policy.clock_skew;
        // With several CRLs of one issuer (a reload in flight), the newest wins.
        let crl = self
            .crls
            .iter()
            .filter(|c| c.issuer_raw == issuer_raw && c.this_update <= at + skew)
            .max_by_key(|c| c.this_update)
            .ok_or_else(|| CertError::CrlMissing {
                issuer: issuer.to_owned(),
            })?;
        if let Some(next) = crl.next_update {
            if at - skew > next && self.policy.stale_crl == StaleCrlPolicy::Reject {
                return Err(CertError::CrlStale {
                    issuer: issuer.to_owned(),
                    next_update: next,
                    at,
                });
            }
        }
        match crl.revoked.get(serial) {
            Some(r) => Err(CertError::Revoked {
                revoked_at: r.at,
                reason: r.reason.clone(),
            }),
            None => Ok(()),
        }
    }
}

/// Parses a certificate, refusing trailing bytes.
fn parse_strict(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| CertError::Malformed {
        detail: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(CertError::Malformed {
            detail: format!("{} trailing bytes after the certificate", rest.len()),
        });
    }
    Ok(cert)
}

fn parse_authority(der: &[u8], is_anchor: bool) -> Result<Authority, String> {
    let cert = parse_strict(der).map_err(|e| format!("CA certificate: {e}"))?;
    let subject = cert.subject().to_string();
    let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    let can_sign = matches!(cert.key_usage(), Ok(Some(ku)) if ku.value.key_cert_sign());
    if !is_ca || !can_sign {
        return Err(CertError::IssuerNotCa { subject }.to_string());
    }
    let spki = spki_key(&cert).map_err(|e| format!("CA {subject}: {e}"))?;
    Ok(Authority {
        der: der.to_vec(),
        subject_raw: cert.subject().as_raw().to_vec(),
        subject,
        issuer_raw: cert.issuer().as_raw().to_vec(),
        spki,
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        is_anchor,
    })
}

fn spki_key(cert: &X509Certificate<'_>) -> Result<SpkiKey, CertError> {
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let bits = rsa.key_size();
            if bits < MIN_RSA_BITS {
                return Err(CertError::WeakKey { bits });
            }
            Ok(SpkiKey::Rsa {
                der: spki.subject_public_key.data.to_vec(),
                bits,
            })
        }
        Ok(PublicKey::EC(point)) => {
            let p384 = point.key_size() == 384;
            Ok(SpkiKey::Ec {
                point: spki.subject_public_key.data.to_vec(),
                p384,
            })
        }
        Ok(_) => Err(CertError::UnsupportedAlgorithm {
            oid: spki.algorithm.algorithm.to_id_string(),
        }),
        Err(e) => Err(CertError::Malformed {
            detail: format!("public key: {e}"),
        }),
    }
}

/// Verifies `signature` over `message` with an approved algorithm. SHA-1 and MD5 are refused.
fn verify_signed(
    key: &SpkiKey,
    alg: &Oid<'_>,
    message: &[u8],
    signature_bytes: &[u8],
) -> Result<(), CertError> {
    let oid = alg.to_id_string();
    let (ring_alg, der): (&'static dyn signature::VerificationAlgorithm, &[u8]) =
        match (oid.as_str(), key) {
            ("1.2.840.113549.1.1.11", SpkiKey::Rsa { der, bits }) if *bits >= MIN_RSA_BITS => {
                (&signature::RSA_PKCS1_2048_8192_SHA256, der)
            }
            ("1.2.840.113549.1.1.12", SpkiKey::Rsa { der, bits }) if *bits >= MIN_RSA_BITS => {
                (&signature::RSA_PKCS1_2048_8192_SHA384, der)
            }
            ("1.2.840.113549.1.1.13", SpkiKey::Rsa { der, bits }) if *bits >= MIN_RSA_BITS => {
                (&signature::RSA_PKCS1_2048_8192_SHA512, der)
            }
            ("1.2.840.10045.4.3.2", SpkiKey::Ec { point, p384: false }) => {
                (&signature::ECDSA_P256_SHA256_ASN1, point)
            }
            ("1.2.840.10045.4.3.3", SpkiKey::Ec { point, p384: true }) => {
                (&signature::ECDSA_P384_SHA384_ASN1, point)
            }
            (_, SpkiKey::Rsa { bits, .. }) if *bits < MIN_RSA_BITS => {
                return Err(CertError::WeakKey { bits: *bits })
            }
            _ => return Err(CertError::UnsupportedAlgorithm { oid }),
        };
    signature::UnparsedPublicKey::new(ring_alg, der)
        .verify(message, signature_bytes)
        .map_err(|_| CertError::BadSignature)
}

fn check_critical_extensions(cert: &X509Certificate<'_>) -> Result<(), CertError> {
    const KNOWN: [&str; 6] = [
        OID_KEY_USAGE,
        OID_EXT_KEY_USAGE,
        OID_BASIC_CONSTRAINTS,
        OID_CERT_POLICIES,
        OID_NAME_CONSTRAINTS,
        OID_SUBJECT_ALT_NAME,
    ];
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        if ext.critical && !KNOWN.contains(&oid.as_str()) {
            return Err(CertError::UnknownCriticalExtension { oid });
        }
        if let ParsedExtension::ParseError { error } = ext.parsed_extension() {
            return Err(CertError::Malformed {
                detail: format!("extension {oid}: {error}"),
            });
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
