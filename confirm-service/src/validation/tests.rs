//! The card-profile rules (jpki-card.md §6) one by one, at their boundaries, on
//! certificates built to order by the corpus generator (issued by its CA generation 1).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::OnceLock;

use onshi_cert_corpus::der::{oid, parse_oid, printable, seq, set, tlv};
use onshi_cert_corpus::{
    card_common_name, card_subject, g1_card, g1_with_crl, CardSpec, EKU_CLIENT_AUTH, KU_CRL_SIGN,
    KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, KU_KEY_ENCIPHERMENT, TEST_POLICY,
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

#[test]
fn times_in_certificate_errors_are_rfc3339() {
    let e = CertError::Expired {
        not_after: time::macros::datetime!(2026-12-01 00:00 UTC),
        at: time::macros::datetime!(2026-12-03 09:30:15 +09:00),
    };
    assert_eq!(
        e.to_string(),
        "the certificate expired at 2026-12-01T00:00:00Z (checked at 2026-12-03T00:30:15Z)"
    );
    let e = CertError::CrlStale {
        issuer: "CA".into(),
        next_update: time::macros::datetime!(2026-12-02 12:00 UTC),
        at: time::macros::datetime!(2026-12-03 00:00 UTC),
    };
    assert!(
        e.to_string().contains("nextUpdate 2026-12-02T12:00:00Z"),
        "{e}"
    );
}

#[test]
fn grace_validation_skips_only_the_expiry_and_a_dropped_revocation_is_remembered() {
    let spec = CardSpec {
        not_before: AT - Duration::days(30),
        not_after: AT - Duration::days(1),
        ..CardSpec::default()
    };
    let der = g1_card(&spec);
    let (ca, listing_crl) = g1_with_crl(
        std::slice::from_ref(&spec.serial),
        AT - Duration::days(2),
        AT + Duration::days(5),
    );
    // A newer CRL that dropped the entry (the certificate expired).
    let (_, empty_crl) = g1_with_crl(&[], AT - Duration::hours(1), AT + Duration::days(6));
    let listing =
        TrustStore::from_der(std::slice::from_ref(&ca), &[], &[listing_crl], policy()).unwrap();
    let empty = || {
        TrustStore::from_der(
            std::slice::from_ref(&ca),
            &[],
            std::slice::from_ref(&empty_crl),
            policy(),
        )
        .unwrap()
    };
    // Validation is unchanged: expired.
    assert_eq!(
        empty()
            .validate(&der, AT)
            .map(|_| ())
            .map_err(|e| e.reason()),
        Err("expired")
    );
    // The grace validation accepts it when nothing else is wrong...
    assert!(empty().validate_in_grace(&der, AT).is_ok());
    // ...refuses it while a CRL lists it...
    assert_eq!(
        listing
            .validate_in_grace(&der, AT)
            .err()
            .map(|e| e.reason()),
        Some("revoked")
    );
    // ...and still after a newer CRL dropped it, by the remembered revocation.
    let live = crate::trust_reload::LiveTrust::new(listing);
    live.replace(empty());
    assert_eq!(
        live.current()
            .validate_in_grace(&der, AT)
            .err()
            .map(|e| e.reason()),
        Some("revoked")
    );
    // Everything else still holds in grace: not yet valid, an untrusted issuer.
    let early = CardSpec {
        not_before: AT + Duration::days(1),
        not_after: AT + Duration::days(30),
        ..CardSpec::default()
    };
    assert_eq!(
        empty()
            .validate_in_grace(&g1_card(&early), AT)
            .err()
            .map(|e| e.reason()),
        Some("not-yet-valid")
    );
}
