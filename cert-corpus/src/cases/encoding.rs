//! Algorithms, keys, signatures and encodings: weak or mismatched algorithms, non-RSA keys,
//! broken signatures, truncation, trailing data, BER where DER is required, wrong versions and
//! bytes that are no certificate.

use super::authorities::Pki;
use super::edit::{DerEdit, Edit, EditCase, TbsEdit};
use crate::der::{bits, oid, parse_oid, printable, seq, small_int, tlv};
use crate::{
    card_common_name, Generator, Leaf, LeafCase, MD5_RSA, P256_GENERATOR, SHA1_RSA, SHA384_RSA,
};

pub(super) fn build(g: &mut Generator, p: &Pki) {
    g.leaf_cases(algorithms(p));
    g.edit_cases(p, edits());
}

fn algorithms(p: &Pki) -> Vec<LeafCase<'_>> {
    let base = p.base();
    vec![
        LeafCase {
            name: "sha1-signed",
            description: "sha1WithRSAEncryption",
            leaf: Leaf {
                alg: SHA1_RSA,
                ..p.serial(0x26)
            },
            reason: Some("unsupported-algorithm"),
            stricter: Some("SHA-1 signatures are refused; OpenSSL 3.0 accepts them at its default security level 1"),
            ..base.clone()
        },
        LeafCase {
            name: "md5-signed",
            description: "md5WithRSAEncryption",
            leaf: Leaf {
                alg: MD5_RSA,
                ..p.serial(0x27)
            },
            reason: Some("unsupported-algorithm"),
            ..base.clone()
        },
        LeafCase {
            name: "rsa-1024-card",
            description: "the card's key is RSA-1024",
            key: &p.card_weak,
            leaf: p.serial(0x28),
            reason: Some("weak-key"),
            stricter: Some("RSA keys under 2048 bits are refused; OpenSSL 3.0's default level 1 accepts 1024 bits"),
            ..base
        },
    ]
}

const ONLY_DER: &str = "only DER is accepted; OpenSSL 3.0 accepts BER lengths";
const TRAILING: &str = "bytes after the certificate are refused; OpenSSL 3.0 ignores them";

#[allow(clippy::too_many_lines)]
fn edits() -> Vec<EditCase> {
    let tbs = |serial, edit| Edit::Tbs { serial, edit };
    let ec_spki = seq(&[
        &seq(&[
            &oid(&parse_oid("1.2.840.10045.2.1")),
            &oid(&parse_oid("1.2.840.10045.3.1.7")),
        ]),
        &bits(&P256_GENERATOR),
    ]);
    // In DER a SET's elements are sorted by encoding: CN (…55 04 03) before C.
    let cn = seq(&[
        &oid(&parse_oid("2.5.4.3")),
        &printable(&card_common_name("unsorted-set")),
    ]);
    let c_jp = seq(&[&oid(&parse_oid("2.5.4.6")), &printable("JP")]);
    let (a, b) = if cn < c_jp { (c_jp, cn) } else { (cn, c_jp) };
    let unsorted = seq(&[&tlv(0x31, &[a, b].concat())]);
    let padded_serial = [&[0u8][..], &crate::case_serial(0x2f)].concat();
    vec![
        // ---- Algorithms and keys the TBS itself gets wrong.
        EditCase {
            name: "ec-card",
            description: "the card's key is ECDSA P-256 (a card's key is RSA)",
            edit: tbs(0x29, TbsEdit::Spki(ec_spki)),
            reason: Some("unsupported-algorithm"),
            stricter: Some("a card's key must be RSA (the challenge signature is RSA PKCS#1 v1.5); OpenSSL accepts any key type"),
        },
        EditCase {
            name: "sig-alg-mismatch",
            description: "outer signatureAlgorithm sha384, inner sha256",
            edit: tbs(0x2a, TbsEdit::OuterAlgorithm(SHA384_RSA)),
            reason: Some("signature-algorithm-mismatch"),
            stricter: None,
        },
        // ---- Signatures.
        EditCase {
            name: "bad-signature",
            description: "the last signature byte flipped",
            edit: Edit::Der(DerEdit::FlipLastByte),
            reason: Some("bad-signature"),
            stricter: None,
        },
        EditCase {
            name: "tampered-tbs",
            description: "one byte of the subject changed after signing",
            edit: Edit::Der(DerEdit::ChangeSubjectCharacter),
            reason: Some("bad-signature"),
            stricter: None,
        },
        // ---- Encoding of the whole certificate.
        EditCase {
            name: "truncated-half",
            description: "cut in half",
            edit: Edit::Der(DerEdit::FirstHalf),
            reason: Some("malformed"),
            stricter: None,
        },
        EditCase {
            name: "truncated-one-byte",
            description: "last byte missing",
            edit: Edit::Der(DerEdit::DropLastByte),
            reason: Some("malformed"),
            stricter: None,
        },
        EditCase {
            name: "trailing-garbage",
            description: "four bytes after the certificate",
            edit: Edit::Der(DerEdit::Append(b"JUNK")),
            reason: Some("trailing-data"),
            stricter: Some(TRAILING),
        },
        EditCase {
            name: "trailing-zeros",
            description: "two zero bytes after the certificate",
            edit: Edit::Der(DerEdit::Append(&[0, 0])),
            reason: Some("trailing-data"),
            stricter: Some(TRAILING),
        },
        EditCase {
            name: "ber-outer-length",
            description: "the outer SEQUENCE length in four octets with leading zeros (BER)",
            edit: Edit::Der(DerEdit::PaddedOuterLength),
            reason: Some("non-canonical-der"),
            stricter: Some(ONLY_DER),
        },
        EditCase {
            name: "indefinite-length",
            description: "the outer SEQUENCE with an indefinite length (BER)",
            edit: Edit::Der(DerEdit::IndefiniteOuterLength),
            reason: Some("non-canonical-der"),
            stricter: Some("only DER is accepted; OpenSSL 3.0 accepts indefinite lengths"),
        },
        // ---- BER and wrong values inside the TBS, signed as such.
        EditCase {
            name: "ber-inner-length",
            description: "the version field's length in long form (BER), signed as such",
            edit: tbs(
                0x2b,
                TbsEdit::Version(vec![0xa0, 0x81, 0x03, 0x02, 0x01, 0x02]),
            ),
            reason: Some("non-canonical-der"),
            stricter: Some(
                "only DER is accepted; OpenSSL 3.0 verifies the signature over the BER as received",
            ),
        },
        EditCase {
            name: "boolean-not-ff",
            description: "keyUsage critical flag encoded as BOOLEAN 01 (BER)",
            edit: tbs(0x2c, TbsEdit::KeyUsageCriticalOctet(0x01)),
            reason: Some("non-canonical-der"),
            stricter: Some("only DER is accepted; OpenSSL 3.0 accepts any non-zero BOOLEAN"),
        },
        EditCase {
            name: "utctime-no-seconds",
            description: "UTCTime without seconds (allowed in BER, not in DER)",
            edit: tbs(
                0x2d,
                TbsEdit::Validity(seq(&[
                    &tlv(0x17, b"2504010000Z"),
                    &tlv(0x17, b"3004010000Z"),
                ])),
            ),
            reason: Some("non-canonical-der"),
            stricter: None,
        },
        EditCase {
            name: "unsorted-set",
            description: "a multi-valued RDN whose SET elements are not in DER order",
            edit: tbs(0x2e, TbsEdit::Subject(unsorted)),
            reason: Some("non-canonical-der"),
            stricter: Some(
                "only DER is accepted; OpenSSL 3.0 accepts (and re-sorts) an unsorted SET",
            ),
        },
        EditCase {
            name: "serial-padded",
            description: "serial INTEGER with a redundant leading zero",
            edit: tbs(0x2f, TbsEdit::Serial(padded_serial)),
            reason: Some("non-canonical-der"),
            stricter: None,
        },
        EditCase {
            name: "version-v4",
            description: "version INTEGER 3 (no such version)",
            edit: tbs(0x30, TbsEdit::Version(tlv(0xa0, &small_int(3)))),
            reason: Some("unsupported-version"),
            stricter: Some(
                "only v3 certificates are accepted; OpenSSL 3.0 accepts an unknown version number",
            ),
        },
        EditCase {
            name: "version-v2",
            description: "version v2 with extensions",
            edit: tbs(0x31, TbsEdit::Version(tlv(0xa0, &small_int(1)))),
            reason: Some("unsupported-version"),
            stricter: Some("only v3 certificates are accepted (extensions need v3); OpenSSL 3.0 accepts a v2 certificate with extensions"),
        },
        EditCase {
            name: "version-v1",
            description: "a v1 certificate (no extensions, so no policy)",
            edit: tbs(0x32, TbsEdit::VersionWithoutExtensions(Vec::new())),
            reason: Some("unsupported-version"),
            stricter: None,
        },
        EditCase {
            name: "version-explicit-v1",
            description: "v1 written explicitly (a DEFAULT value encoded: BER)",
            edit: tbs(
                0x33,
                TbsEdit::VersionWithoutExtensions(tlv(0xa0, &small_int(0))),
            ),
            reason: Some("non-canonical-der"),
            stricter: None,
        },
        // ---- Not a certificate, or one whose structure is broken after signing.
        EditCase {
            name: "garbage",
            description: "a length far past the end",
            edit: Edit::Bytes(b"\x30\x82\xff\xff not a certificate"),
            reason: Some("malformed"),
            stricter: None,
        },
        EditCase {
            name: "crl-as-certificate",
            description: "a CRL where a certificate belongs",
            edit: Edit::G1Crl,
            reason: Some("malformed"),
            stricter: None,
        },
        EditCase {
            name: "tbs-wrong-tag",
            description: "the TBSCertificate tagged SET instead of SEQUENCE",
            edit: Edit::Der(DerEdit::TbsTag(0x31)),
            reason: Some("malformed"),
            stricter: None,
        },
        EditCase {
            name: "tbs-bad-length",
            description: "the TBSCertificate length one too large",
            edit: Edit::Der(DerEdit::TbsLengthPlusOne),
            reason: Some("malformed"),
            stricter: None,
        },
    ]
}
