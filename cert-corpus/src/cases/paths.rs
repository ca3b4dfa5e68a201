//! Good cards of each CA generation and path shape, and the path problems: retired or
//! untrusted issuers, impostor keys, intermediates that may not issue, over-long paths.

use super::authorities::Pki;
use super::year;
use crate::{ext, Generator, Leaf, LeafCase, SHA384_RSA};

pub(super) fn build(g: &mut Generator, p: &Pki) {
    g.leaf_cases(good(p));
    g.leaf_cases(path_problems(p));
}

fn good(p: &Pki) -> Vec<LeafCase<'_>> {
    let base = p.base();
    vec![
        LeafCase {
            name: "good-g1",
            description: "card of CA generation 1 (2019–2029)",
            ..base.clone()
        },
        LeafCase {
            name: "good-g2",
            description: "card of CA generation 2 (2023–2033), same CA name, other key",
            issuer: &p.g2,
            leaf: p.serial(0x02),
            ..base.clone()
        },
        LeafCase {
            name: "good-g2-sha384",
            description: "sha384WithRSAEncryption",
            issuer: &p.g2,
            leaf: Leaf {
                alg: SHA384_RSA,
                ..p.serial(0x03)
            },
            ..base.clone()
        },
        LeafCase {
            name: "good-g2-serial-revoked-in-g1",
            description: "a g2 card whose serial g1 revoked: CRLs are per CA key",
            issuer: &p.g2,
            leaf: Leaf {
                serial: p.revoked_g1.clone(),
                ..p.good.clone()
            },
            ..base.clone()
        },
        LeafCase {
            name: "good-unknown-noncritical-ext",
            description: "an unknown non-critical extension is ignored",
            leaf: Leaf {
                extra: vec![ext("1.2.3.4.5", false, &crate::der::null())],
                ..p.serial(0x05)
            },
            ..base.clone()
        },
        LeafCase {
            name: "good-intermediate",
            description: "card under an intermediate CA",
            issuer: &p.sub,
            leaf: p.serial(0x06),
            intermediates: std::slice::from_ref(&p.sub.file),
            ..base.clone()
        },
        LeafCase {
            name: "good-eku-server-and-client",
            description: "EKU with clientAuth among others",
            leaf: Leaf {
                eku: Some(vec!["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]),
                ..p.serial(0x07)
            },
            ..base
        },
    ]
}

fn path_problems(p: &Pki) -> Vec<LeafCase<'_>> {
    let base = p.base();
    vec![
        LeafCase {
            name: "retired-generation",
            description: "card of the retired generation 0, whose CA expired in 2024",
            issuer: &p.g0,
            leaf: Leaf {
                from: year(2019),
                to: year(2030),
                ..p.serial(0x08)
            },
            reason: Some("issuer-not-valid"),
            ..base.clone()
        },
        LeafCase {
            name: "intermediate-missing",
            description: "card under an intermediate that is not configured",
            issuer: &p.sub,
            leaf: p.serial(0x09),
            reason: Some("untrusted-issuer"),
            ..base.clone()
        },
        LeafCase {
            name: "wrong-issuer",
            description: "issued by an untrusted CA",
            issuer: &p.rogue,
            leaf: p.serial(0x0a),
            reason: Some("untrusted-issuer"),
            ..base.clone()
        },
        LeafCase {
            name: "impostor-same-name",
            description: "issuer name of the real CA, signed by another key",
            issuer: &p.impostor,
            leaf: p.serial(0x0b),
            reason: Some("untrusted-issuer"),
            ..base.clone()
        },
        LeafCase {
            name: "aki-names-another-key",
            description: "signed by the real CA, but its authorityKeyIdentifier names another key",
            leaf: Leaf {
                authority_key_id: Some(p.impostor.key.key_id()),
                ..p.serial(0x0b)
            },
            reason: Some("untrusted-issuer"),
            ..base.clone()
        },
        LeafCase {
            name: "revoked-intermediate",
            description: "the intermediate CA is on the root's CRL (cACompromise)",
            issuer: &p.sub_revoked,
            leaf: p.serial(0x0c),
            intermediates: std::slice::from_ref(&p.sub_revoked.file),
            reason: Some("revoked"),
            ..base.clone()
        },
        LeafCase {
            name: "ca-without-keycertsign",
            description: "intermediate CA whose keyUsage lacks keyCertSign",
            issuer: &p.sub_no_kcs,
            leaf: p.serial(0x0d),
            intermediates: std::slice::from_ref(&p.sub_no_kcs.file),
            reason: Some("issuer-not-ca"),
            ..base.clone()
        },
        LeafCase {
            name: "issuer-not-ca",
            description: "intermediate with basicConstraints cA false",
            issuer: &p.sub_not_ca,
            leaf: p.serial(0x0e),
            intermediates: std::slice::from_ref(&p.sub_not_ca.file),
            reason: Some("issuer-not-ca"),
            ..base.clone()
        },
        LeafCase {
            name: "pathlen-exceeded",
            description: "intermediate under a root with pathLenConstraint 0",
            issuer: &p.sub_p0,
            leaf: p.serial(0x0f),
            intermediates: std::slice::from_ref(&p.sub_p0.file),
            reason: Some("path-too-long"),
            ..base.clone()
        },
        LeafCase {
            name: "path-too-long",
            description: "five certificates: three intermediates",
            issuer: &p.deep3,
            leaf: p.serial(0x10),
            intermediates: &p.deep,
            reason: Some("path-too-long"),
            stricter: Some("paths are limited to 4 certificates; OpenSSL allows 100"),
            ..base.clone()
        },
        LeafCase {
            name: "weak-ca-key",
            description: "issued by a CA with a 1024-bit key (whose CRL cannot be trusted either)",
            issuer: &p.weak_ca,
            leaf: p.serial(0x14),
            ctx: &p.weak,
            reason: Some("weak-key"),
            ..base
        },
    ]
}
