//! Revocation: a CRL's parsing and verification against its issuer, and a path's serials
//! checked against the current CRLs.

use super::*;

impl TrustStore {
    /// Total revoked serials over all CRLs.
    pub fn revoked_count(&self) -> usize {
        self.crls.iter().map(|c| c.revoked.len()).sum()
    }

    /// This store, also remembering every revocation `older` knew (on its CRLs or remembered
    /// by it) for a CA key this store has: a newer CRL that dropped an entry (the certificate
    /// expired) does not make the certificate unrevoked for its grace period. `certificateHold`
    /// entries are not carried over: a hold may be lifted.
    pub fn remembering_revocations_of(mut self, older: &TrustStore) -> Self {
        let mut remembered = older.remembered.clone();
        for (a, indexes) in older.authorities.iter().zip(&older.authority_crls) {
            let key = [a.subject_raw.as_slice(), a.spki.bytes()].concat();
            for &i in indexes {
                let Some(crl) = older.crls.get(i) else {
                    continue;
                };
                let entries = remembered.entry(key.clone()).or_default();
                for (serial, r) in &crl.revoked {
                    if r.reason != "certificateHold" {
                        entries.entry(serial.clone()).or_insert_with(|| r.clone());
                    }
                }
            }
        }
        let keys: std::collections::HashSet<Vec<u8>> = self
            .authorities
            .iter()
            .map(|a| [a.subject_raw.as_slice(), a.spki.bytes()].concat())
            .collect();
        remembered.retain(|k, _| keys.contains(k));
        self.remembered = remembered;
        self
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
    pub(super) fn parse_crl(&self, der: &[u8]) -> Result<(Crl, Vec<usize>), CrlRefused> {
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

    /// The revocation check of one link: the newest current CRL signed by the authority's
    /// key, fail closed when there is none or it is stale.
    pub(super) fn check_revocation(
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
        let remembered = || {
            let key = [a.subject_raw.as_slice(), a.spki.bytes()].concat();
            self.remembered.get(&key).and_then(|m| m.get(serial))
        };
        match crl.revoked.get(serial).or_else(remembered) {
            Some(r) => Err(CertError::Revoked {
                revoked_at: r.at,
                reason: r.reason.to_owned(),
            }),
            None => Ok(()),
        }
    }
}

/// Why a CRL was not loaded.
pub(super) enum CrlRefused {
    /// Not parseable, or from no configured CA: the configuration is wrong.
    Unusable(String),
    /// It names a configured CA but does not verify (signature, keyUsage, extensions).
    Unverified(String),
}

/// RFC 5280 CRLReason names.
pub(super) fn reason_name(code: u8) -> &'static str {
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
