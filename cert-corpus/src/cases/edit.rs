//! Cases made from the good g1 card by one byte-level edit, which a [`Leaf`] cannot express:
//! a field re-encoded before signing ([`TbsEdit`]), the signed certificate changed after
//! signing ([`DerEdit`]), or bytes that are no certificate at all.

use super::authorities::Pki;
use crate::der::tlv;
use crate::{find, sign_tbs, Generator, Leaf, SHA256_RSA};

/// One row: the case's name and reason, the edit, and our verdict (`reason` none: accepted;
/// `stricter`: why OpenSSL accepts what we reject).
pub(super) struct EditCase {
    pub name: &'static str,
    pub description: &'static str,
    pub edit: Edit,
    pub reason: Option<&'static str>,
    pub stricter: Option<&'static str>,
}

pub(super) enum Edit {
    /// The good card with serial `case_serial(serial)`, one TBS field replaced, signed by g1.
    Tbs { serial: u8, edit: TbsEdit },
    /// The DER of `good-g1` changed after signing.
    Der(DerEdit),
    /// These bytes.
    Bytes(&'static [u8]),
    /// g1's current CRL, given as a certificate.
    G1Crl,
}

/// A TBSCertificate field replaced by an encoding of the case's own.
pub(super) enum TbsEdit {
    /// The serial INTEGER with these content octets.
    Serial(Vec<u8>),
    /// This subject Name.
    Subject(Vec<u8>),
    /// This SubjectPublicKeyInfo.
    Spki(Vec<u8>),
    /// This version field (empty: absent).
    Version(Vec<u8>),
    /// This version field, and no extensions.
    VersionWithoutExtensions(Vec<u8>),
    /// This Validity.
    Validity(Vec<u8>),
    /// keyUsage's critical BOOLEAN with this content octet.
    KeyUsageCriticalOctet(u8),
    /// Unchanged, but the outer signatureAlgorithm labelled with this algorithm.
    OuterAlgorithm(&'static str),
}

/// An edit of the signed good card's DER (the signature is left as it was).
pub(super) enum DerEdit {
    /// The last signature byte flipped.
    FlipLastByte,
    /// One character of the subject CN changed (still a well-formed CN).
    ChangeSubjectCharacter,
    /// The first half only.
    FirstHalf,
    /// The last byte dropped.
    DropLastByte,
    /// These bytes appended.
    Append(&'static [u8]),
    /// The outer SEQUENCE's length in four octets with leading zeros.
    PaddedOuterLength,
    /// The outer SEQUENCE with an indefinite length.
    IndefiniteOuterLength,
    /// The TBS SEQUENCE's tag (after the 4-byte outer header) replaced by this one.
    TbsTag(u8),
    /// The TBS length one larger than its content.
    TbsLengthPlusOne,
}

impl DerEdit {
    fn apply(&self, good: &[u8]) -> Vec<u8> {
        let mut der = good.to_vec();
        match self {
            DerEdit::FlipLastByte => {
                if let Some(last) = der.last_mut() {
                    *last ^= 0x01;
                }
            }
            DerEdit::ChangeSubjectCharacter => {
                if let Some(pos) = find(&der, crate::card_common_name("good-g1").as_bytes()) {
                    der[pos] = if der[pos] == b'Z' { b'Y' } else { b'Z' };
                }
            }
            DerEdit::FirstHalf => der.truncate(good.len() / 2),
            DerEdit::DropLastByte => der.truncate(good.len() - 1),
            DerEdit::Append(tail) => der.extend_from_slice(tail),
            DerEdit::PaddedOuterLength => der = crate::der::tlv_padded_len(0x30, &good[4..]),
            DerEdit::IndefiniteOuterLength => {
                der = [&[0x30, 0x80][..], &good[4..], &[0, 0]].concat();
            }
            DerEdit::TbsTag(tag) => der[4] = *tag,
            DerEdit::TbsLengthPlusOne => {
                if der.len() > 8 {
                    der[7] = der[7].wrapping_add(1);
                }
            }
        }
        der
    }
}

impl Generator {
    /// The cases of a table of edits, in order, under the default configuration.
    pub(super) fn edit_cases(&mut self, pki: &Pki, cases: Vec<EditCase>) {
        for c in cases {
            let der = match c.edit {
                Edit::Tbs { serial, edit } => {
                    let leaf = Leaf {
                        serial: crate::case_serial(serial),
                        ..pki.good.clone()
                    };
                    let mut tbs = self.leaf_tbs(&pki.g1, &pki.card, &leaf, c.name);
                    let mut outer = SHA256_RSA;
                    match edit {
                        TbsEdit::Serial(raw) => tbs.serial = tlv(0x02, &raw),
                        TbsEdit::Subject(subject) => tbs.subject = subject,
                        TbsEdit::Spki(spki) => tbs.spki = spki,
                        TbsEdit::Version(version) => tbs.version = version,
                        TbsEdit::VersionWithoutExtensions(version) => {
                            tbs.version = version;
                            tbs.extensions.clear();
                        }
                        TbsEdit::Validity(validity) => tbs.validity = validity,
                        TbsEdit::KeyUsageCriticalOctet(octet) => {
                            if let Some(e) = tbs
                                .extensions
                                .iter_mut()
                                .find(|e| find(e, &[0x55, 0x1d, 0x0f]).is_some())
                            {
                                if let Some(p) = find(e, &[0x01, 0x01, 0xff]) {
                                    e[p + 2] = octet;
                                }
                            }
                        }
                        TbsEdit::OuterAlgorithm(alg) => outer = alg,
                    }
                    sign_tbs(&tbs.encode(), &pki.g1.key, SHA256_RSA, outer)
                }
                Edit::Der(edit) => {
                    let good = self.files.get("certs/good-g1.der").cloned();
                    edit.apply(&good.unwrap_or_default())
                }
                Edit::Bytes(bytes) => bytes.to_vec(),
                Edit::G1Crl => self.files.get(&pki.crl_g1).cloned().unwrap_or_default(),
            };
            let cert = self.write_cert(c.name, der);
            self.case(
                &pki.ctx,
                c.name,
                c.description,
                cert,
                &[],
                c.reason,
                c.stricter,
            );
        }
    }
}
