//! Time and revocation: cards expired or not yet valid (by a month and by a second), a card
//! outliving its CA, and revocation by each CA with stale, missing and future CRLs.

use time::Duration;

use super::authorities::Pki;
use super::year;
use crate::{Generator, Leaf, LeafCase, CHECK_AT};

pub(super) fn build(g: &mut Generator, p: &Pki) {
    g.leaf_cases(time(p));
    // The card above, unchanged, under a configuration with g1's certificate renewed.
    let cert = g
        .files
        .get("certs/outlives-ca-checked-late.der")
        .cloned()
        .unwrap_or_default();
    let cert = g.write_cert("renewed-ca-same-key", cert);
    g.case(
        &p.renewed,
        "renewed-ca-same-key",
        "the card above, with g1's certificate renewed (same key) among the anchors",
        cert,
        &[],
        None,
        None,
    );
    g.leaf_cases(revocation(p));
}

fn time(p: &Pki) -> Vec<LeafCase<'_>> {
    let base = p.base();
    let month = Duration::days(30);
    // One second either side of the validity: no clock-skew allowance by default.
    let second = Duration::seconds(1);
    vec![
        LeafCase {
            name: "expired",
            description: "notAfter a month before the check time",
            leaf: Leaf {
                from: year(2021),
                to: year(2026) - month,
                ..p.serial(0x15)
            },
            reason: Some("expired"),
            ..base.clone()
        },
        LeafCase {
            name: "not-yet-valid",
            description: "notBefore a month after the check time",
            leaf: Leaf {
                from: year(2026) + month,
                to: year(2031),
                ..p.serial(0x16)
            },
            reason: Some("not-yet-valid"),
            ..base.clone()
        },
        LeafCase {
            name: "expired-one-second",
            description: "notAfter one second before the check time",
            leaf: Leaf {
                from: year(2021),
                to: CHECK_AT - second,
                ..p.serial(0x3f)
            },
            reason: Some("expired"),
            ..base.clone()
        },
        LeafCase {
            name: "not-yet-valid-one-second",
            description: "notBefore one second after the check time",
            leaf: Leaf {
                from: CHECK_AT + second,
                to: year(2031),
                ..p.serial(0x40)
            },
            reason: Some("not-yet-valid"),
            ..base.clone()
        },
        LeafCase {
            name: "outlives-ca-checked-late",
            description: "a card valid until 2031 checked in 2030, after its CA (g1) expired",
            leaf: Leaf {
                from: year(2019),
                to: year(2031),
                ..p.serial(0x17)
            },
            ctx: &p.late,
            reason: Some("issuer-not-valid"),
            ..base
        },
    ]
}

fn revocation(p: &Pki) -> Vec<LeafCase<'_>> {
    let base = p.base();
    vec![
        LeafCase {
            name: "revoked-g1",
            description: "on generation 1's CRL (keyCompromise)",
            leaf: Leaf {
                serial: p.revoked_g1.clone(),
                ..p.good.clone()
            },
            reason: Some("revoked"),
            ..base.clone()
        },
        LeafCase {
            name: "revoked-g2",
            description: "on generation 2's CRL (cessationOfOperation)",
            issuer: &p.g2,
            leaf: Leaf {
                serial: p.revoked_g2.clone(),
                ..p.good.clone()
            },
            reason: Some("revoked"),
            ..base.clone()
        },
        LeafCase {
            name: "revoked-hold",
            description: "on hold (certificateHold)",
            leaf: Leaf {
                serial: p.hold_g1.clone(),
                ..p.good.clone()
            },
            reason: Some("revoked"),
            ..base.clone()
        },
        LeafCase {
            name: "revoked-by-intermediate",
            description: "on the intermediate's CRL",
            issuer: &p.sub,
            leaf: Leaf {
                serial: p.revoked_sub.clone(),
                ..p.good.clone()
            },
            intermediates: std::slice::from_ref(&p.sub.file),
            reason: Some("revoked"),
            ..base.clone()
        },
        LeafCase {
            name: "crl-stale",
            description: "the only CRL of g1 is past its nextUpdate (fail closed)",
            leaf: p.serial(0x18),
            ctx: &p.stale,
            reason: Some("crl-stale"),
            ..base.clone()
        },
        LeafCase {
            name: "crl-missing",
            description: "no CRL of g2 is configured",
            issuer: &p.g2,
            leaf: p.serial(0x19),
            ctx: &p.missing,
            reason: Some("crl-missing"),
            ..base.clone()
        },
        LeafCase {
            name: "crl-not-yet-valid",
            description: "g1's only CRL has a thisUpdate after the check time",
            leaf: p.serial(0x1a),
            ctx: &p.future,
            reason: Some("crl-missing"),
            ..base
        },
    ]
}
