//! The card profile (jpki-card.md §6): key usage, extended key usage, RSA exponent, serial,
//! subject, policy, basicConstraints, critical extensions and size, each rule with its reason
//! and, where OpenSSL does not check it, why we are stricter.

use super::authorities::Pki;
use super::edit::{Edit, EditCase, TbsEdit};
use crate::der::{name, null, octets, seq, tlv};
use crate::{
    card_common_name, card_subject, ext, Generator, Leaf, LeafCase, KU_CRL_SIGN,
    KU_DIGITAL_SIGNATURE, KU_KEY_AGREEMENT, KU_KEY_CERT_SIGN, KU_KEY_ENCIPHERMENT,
    PRODUCTION_POLICY,
};

pub(super) fn build(g: &mut Generator, p: &Pki) {
    g.leaf_cases(usage(p));
    g.edit_cases(p, serials());
    g.edit_cases(p, subjects());
    g.leaf_cases(extensions(p));
}

const EXTRA_KEY_USAGE: &str = "the card profile's keyUsage is digitalSignature only; OpenSSL's sslclient purpose needs digitalSignature and ignores other bits in a certificate that is not a CA";

fn usage(p: &Pki) -> Vec<LeafCase<'_>> {
    let base = p.base();
    vec![
        LeafCase {
            name: "wrong-key-usage",
            description: "keyUsage keyEncipherment only",
            leaf: Leaf {
                key_usage: Some(vec![KU_KEY_ENCIPHERMENT]),
                ..p.serial(0x1b)
            },
            reason: Some("wrong-key-usage"),
            ..base.clone()
        },
        LeafCase {
            name: "no-key-usage",
            description: "no keyUsage extension",
            leaf: Leaf {
                key_usage: None,
                ..p.serial(0x1c)
            },
            reason: Some("wrong-key-usage"),
            stricter: Some("the card profile requires keyUsage digitalSignature; OpenSSL accepts a certificate without keyUsage for any purpose"),
            ..base.clone()
        },
        LeafCase {
            name: "key-agreement-only",
            description: "keyUsage keyAgreement only",
            leaf: Leaf {
                key_usage: Some(vec![KU_KEY_AGREEMENT]),
                ..p.serial(0x1d)
            },
            reason: Some("wrong-key-usage"),
            stricter: Some("a card signs, so digitalSignature is required; OpenSSL's sslclient purpose also accepts keyAgreement"),
            ..base.clone()
        },
        LeafCase {
            name: "wrong-eku",
            description: "extendedKeyUsage serverAuth only",
            leaf: Leaf {
                eku: Some(vec!["1.3.6.1.5.5.7.3.1"]),
                ..p.serial(0x1e)
            },
            reason: Some("wrong-extended-key-usage"),
            ..base.clone()
        },
        LeafCase {
            name: "no-eku",
            description: "no extendedKeyUsage",
            leaf: Leaf {
                eku: None,
                ..p.serial(0x04)
            },
            reason: Some("missing-extended-key-usage"),
            stricter: Some("the card profile requires extendedKeyUsage clientAuth; OpenSSL accepts a certificate without EKU for any purpose"),
            ..base.clone()
        },
        LeafCase {
            name: "eku-any-only",
            description: "extendedKeyUsage anyExtendedKeyUsage only, no clientAuth",
            leaf: Leaf {
                eku: Some(vec!["2.5.29.37.0"]),
                ..p.serial(0x34)
            },
            reason: Some("wrong-extended-key-usage"),
            ..base.clone()
        },
        LeafCase {
            name: "extra-key-usage-keycertsign",
            description: "keyUsage digitalSignature and keyCertSign",
            leaf: Leaf {
                key_usage: Some(vec![KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN]),
                ..p.serial(0x35)
            },
            reason: Some("extra-key-usage"),
            stricter: Some(EXTRA_KEY_USAGE),
            ..base.clone()
        },
        LeafCase {
            name: "extra-key-usage-crlsign",
            description: "keyUsage digitalSignature and cRLSign",
            leaf: Leaf {
                key_usage: Some(vec![KU_DIGITAL_SIGNATURE, KU_CRL_SIGN]),
                ..p.serial(0x36)
            },
            reason: Some("extra-key-usage"),
            stricter: Some(EXTRA_KEY_USAGE),
            ..base.clone()
        },
        LeafCase {
            name: "rsa-exponent-3",
            description: "the card's RSA-2048 key has public exponent 3",
            key: &p.card_e3,
            leaf: p.serial(0x37),
            reason: Some("wrong-rsa-exponent"),
            stricter: Some(
                "the card profile's exponent is 65537; OpenSSL accepts any RSA exponent",
            ),
            ..base
        },
    ]
}

/// Serial numbers, written as raw INTEGER content octets.
fn serials() -> Vec<EditCase> {
    let serial = |raw: Vec<u8>| Edit::Tbs {
        serial: 0x01,
        edit: TbsEdit::Serial(raw),
    };
    let twenty = [vec![0x7f], vec![0xa5; 18], vec![0x38]].concat();
    let twenty_one = [vec![0x01], vec![0xa5; 19], vec![0x39]].concat();
    vec![
        EditCase {
            name: "serial-20-octets",
            description: "a serial of 20 octets, the most RFC 5280 allows",
            edit: serial(twenty),
            reason: None,
            stricter: None,
        },
        EditCase {
            name: "serial-21-octets",
            description: "a serial of 21 octets",
            edit: serial(twenty_one),
            reason: Some("serial-too-long"),
            stricter: Some(
                "serials are at most 20 octets (RFC 5280 §4.1.2.2); OpenSSL accepts longer ones",
            ),
        },
        EditCase {
            name: "serial-zero",
            description: "serial number 0",
            edit: serial(vec![0x00]),
            reason: Some("non-positive-serial"),
            stricter: Some("a serial must be positive (RFC 5280 §4.1.2.2); OpenSSL 3.0 accepts 0"),
        },
        EditCase {
            name: "serial-negative",
            description: "a negative serial number",
            edit: serial(vec![0xc0, 0, 0, 0, 0, 0, 0, 0x3a]),
            reason: Some("non-positive-serial"),
            stricter: Some(
                "a serial must be positive (RFC 5280 §4.1.2.2); OpenSSL 3.0 accepts negative ones",
            ),
        },
    ]
}

const WRONG_SUBJECT: &str = "the card profile's subject is C=JP and a CN of 23 upper-case letters and digits; OpenSSL does not look at the subject";

/// Subjects other than C=JP, CN=<23 upper-case letters and digits>, each with the CN its case
/// name gives.
fn subjects() -> Vec<EditCase> {
    let subject = |serial, subject| Edit::Tbs {
        serial,
        edit: TbsEdit::Subject(subject),
    };
    let cn = card_common_name;
    let nul = cn("subject-cn-nul");
    let with_nul = format!("{}\0{}", &nul[..11], &nul[12..]);
    let row = |name, description, edit| EditCase {
        name,
        description,
        edit,
        reason: Some("wrong-subject"),
        stricter: Some(WRONG_SUBJECT),
    };
    vec![
        row(
            "subject-cn-nul",
            "a 23-character CN with an embedded NUL",
            subject(0x3b, card_subject(with_nul.as_bytes())),
        ),
        row(
            "subject-cn-22-chars",
            "a CN of 22 characters",
            subject(
                0x3c,
                card_subject(&cn("subject-cn-22-chars").as_bytes()[..22]),
            ),
        ),
        row(
            "subject-country-us",
            "C=US instead of C=JP",
            subject(
                0x3d,
                name(&[("2.5.4.6", "US"), ("2.5.4.3", &cn("subject-country-us"))]),
            ),
        ),
        row(
            "subject-extra-rdn",
            "an O= between C=JP and the CN (the profile's subject has nothing else)",
            subject(
                0x3e,
                name(&[
                    ("2.5.4.6", "JP"),
                    ("2.5.4.10", "Someone Personal"),
                    ("2.5.4.3", &cn("subject-extra-rdn")),
                ]),
            ),
        ),
    ]
}

fn extensions(p: &Pki) -> Vec<LeafCase<'_>> {
    let base = p.base();
    // nameConstraints is not processed for a leaf, so a critical one is refused.
    let name_constraints = ext(
        "2.5.29.30",
        true,
        &seq(&[&tlv(0xa0, &seq(&[&tlv(0x82, b"example.jp")]))]),
    );
    vec![
        LeafCase {
            name: "wrong-policy",
            description: "asserts the production policy, not the test one",
            leaf: Leaf {
                policy: Some(PRODUCTION_POLICY),
                ..p.serial(0x1f)
            },
            reason: Some("wrong-policy"),
            ..base.clone()
        },
        LeafCase {
            name: "no-policy",
            description: "no certificatePolicies",
            leaf: Leaf {
                policy: None,
                ..p.serial(0x20)
            },
            reason: Some("wrong-policy"),
            ..base.clone()
        },
        LeafCase {
            name: "leaf-is-ca",
            description: "the card certificate claims to be a CA",
            leaf: Leaf {
                basic_constraints_ca: true,
                ..p.serial(0x22)
            },
            reason: Some("not-end-entity"),
            stricter: Some("a card's certificate must not be a CA; OpenSSL does not check the leaf's basicConstraints"),
            ..base.clone()
        },
        LeafCase {
            name: "unknown-critical-ext",
            description: "an unknown critical extension",
            leaf: Leaf {
                extra: vec![ext("1.2.3.4.5", true, &null())],
                ..p.serial(0x23)
            },
            reason: Some("unknown-critical-extension"),
            ..base.clone()
        },
        LeafCase {
            name: "leaf-name-constraints",
            description: "a critical nameConstraints extension in a card certificate",
            leaf: Leaf {
                extra: vec![name_constraints],
                ..p.serial(0x24)
            },
            reason: Some("unknown-critical-extension"),
            stricter: Some("nameConstraints are not processed, so a critical one is refused; OpenSSL knows the extension (and ignores it in a leaf)"),
            ..base.clone()
        },
        LeafCase {
            name: "too-large",
            description: "a 9 KB certificate",
            leaf: Leaf {
                extra: vec![ext("1.2.3.4.6", false, &octets(&vec![0x41u8; 9000]))],
                ..p.serial(0x25)
            },
            reason: Some("too-large"),
            stricter: Some(
                "certificates from a card are bounded to 8 KB; OpenSSL has no such bound",
            ),
            ..base
        },
    ]
}
