//! The end-entity profile (jpki-card.md §6): extensions, key, serial, subject, key usage,
//! extended key usage and policy of a card's certificate.

use super::*;

impl TrustStore {
    /// Phase 3: the card's own profile (jpki-card.md §6), in the order docs/validation.md
    /// gives. Returns its RSAPublicKey DER.
    pub(super) fn check_profile(&self, cert: &X509Certificate<'_>) -> Result<Vec<u8>, CertError> {
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
pub(super) fn check_card_subject(cert: &X509Certificate<'_>) -> Result<(), CertError> {
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
pub(super) fn check_serial(raw: &[u8]) -> Result<(), CertError> {
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
pub(super) fn key_usage_beyond_digital_signature(value: &[u8]) -> bool {
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

/// Unknown critical extensions, and extensions x509-parser could not decode.
pub(super) fn check_extensions(cert: &X509Certificate<'_>) -> Result<(), CertError> {
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

pub(super) fn certificate_policies(cert: &X509Certificate<'_>) -> Vec<String> {
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
