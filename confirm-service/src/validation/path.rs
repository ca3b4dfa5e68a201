//! Paths to an anchor: strict parsing, each candidate path with its links' signatures,
//! algorithms and key sizes, bounded in paths and signature checks.

use super::*;

impl TrustStore {
    pub(super) fn authority(&self, index: usize) -> Result<&Authority, CertError> {
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
    pub(super) fn build_paths(&self, leaf: &SignedPart) -> Result<Vec<Vec<Link>>, CertError> {
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

    pub(super) fn extend_path(
        &self,
        child: &SignedPart,
        current: &mut Vec<Link>,
        search: &mut PathSearch,
    ) {
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
}

/// Path-building state: bounded work, the paths found, the most conclusive failure.
pub(super) struct PathSearch {
    paths: Vec<Vec<Link>>,
    best_error: Option<CertError>,
    signature_checks: usize,
}

impl PathSearch {
    pub(super) fn note(&mut self, e: CertError) {
        if self.best_error.as_ref().is_none_or(|b| e.rank() > b.rank()) {
            self.best_error = Some(e);
        }
    }
}

impl SpkiKey {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            SpkiKey::Rsa { der, .. } => der,
            SpkiKey::Ec { point, .. } => point,
            SpkiKey::Unsupported { oid } => oid.as_bytes(),
        }
    }
}

/// What is wrong with bytes that are not strict DER, for messages about things other than a
/// certificate (CertError's texts say "the certificate").
pub(super) fn der_problem(e: &DerError) -> String {
    match e {
        DerError::Malformed(detail) => format!("malformed: {detail}"),
        DerError::NonCanonical(detail) => format!("BER, not canonical DER: {detail}"),
        DerError::Trailing(bytes) => format!("followed by {bytes} trailing bytes"),
    }
}

/// The version from a raw TBSCertificate: 0 (v1) when the explicit [0] field is absent.
pub(super) fn raw_version(tbs: &[u8]) -> Result<u64, CertError> {
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
pub(super) fn parse_strict(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
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

pub(super) fn signed_part(cert: &X509Certificate<'_>) -> SignedPart {
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

pub(super) fn parse_authority(der: &[u8], is_anchor: bool) -> Result<Authority, String> {
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

pub(super) fn spki_key(cert: &X509Certificate<'_>) -> SpkiKey {
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
pub(super) fn verify_signed(
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
