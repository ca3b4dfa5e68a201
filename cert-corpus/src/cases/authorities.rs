//! The CAs and CRLs every case is checked against, and the trust configurations
//! ([`CaseContext`]) the cases use: tables, built once before any card certificate.

use std::collections::BTreeMap;
use std::rc::Rc;

use time::Duration;

use super::year;
use crate::der::name;
use crate::{
    case_serial, Ca, CaSpec, CaseContext, Generator, Key, Leaf, LeafCase, CHECK_AT, ISSUER_RDNS,
    KU_CRL_SIGN, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, SHA256_RSA, TEST_POLICY,
};

/// One CA certificate of the corpus.
struct CaRow {
    /// `ca/<file>.der`, and the name other rows use for it as issuer.
    file: &'static str,
    /// `None`: the real authority's name ([`ISSUER_RDNS`]); else `C=JP, O=<this>`.
    organisation: Option<&'static str>,
    /// The seeded key's label and size.
    key: (&'static str, usize),
    serial: u8,
    /// Valid from 1 April of the first year to 1 April of the second.
    years: (i32, i32),
    /// The issuing row's file; `None`: self-signed, a trust anchor candidate.
    issuer: Option<&'static str>,
    /// `Some(None)` CA without path length, `Some(Some(n))` with, `None` cA false.
    ca: Option<Option<u8>>,
    key_usage: &'static [u8],
    any_policy: bool,
}

const CA_KEY_USAGE: &[u8] = &[KU_KEY_CERT_SIGN, KU_CRL_SIGN];

/// A self-signed CA of the profile (keyCertSign and cRLSign, no path length, no policy).
const fn anchor(
    file: &'static str,
    organisation: Option<&'static str>,
    key: (&'static str, usize),
    serial: u8,
    years: (i32, i32),
) -> CaRow {
    CaRow {
        file,
        organisation,
        key,
        serial,
        years,
        issuer: None,
        ca: Some(None),
        key_usage: CA_KEY_USAGE,
        any_policy: false,
    }
}

/// An intermediate under `issuer` with the `sub` key, 2021–2031, anyPolicy, no path length.
const fn intermediate(
    file: &'static str,
    organisation: &'static str,
    serial: u8,
    issuer: &'static str,
) -> CaRow {
    CaRow {
        file,
        organisation: Some(organisation),
        key: ("sub", 2048),
        serial,
        years: (2021, 2031),
        issuer: Some(issuer),
        ca: Some(None),
        key_usage: CA_KEY_USAGE,
        any_policy: true,
    }
}

/// The CAs, issuers before what they issue.
const CAS: &[CaRow] = &[
    // Three generations of the issuing CA share one name: g0 retired (expired), g1 and g2
    // overlapping, as the real authority's 2019–2029 and 2023–2033 generations do.
    anchor("ca-g0", None, ("ca-g0", 2048), 1, (2014, 2024)),
    anchor("ca-g1", None, ("ca-g1", 2048), 2, (2019, 2029)),
    anchor("ca-g2", None, ("ca-g2", 2048), 3, (2023, 2033)),
    anchor(
        "root",
        Some("onshi corpus root"),
        ("root", 2048),
        4,
        (2020, 2040),
    ),
    // The good intermediate, allowing no further CA.
    CaRow {
        ca: Some(Some(0)),
        ..intermediate("sub", "onshi corpus sub CA", 5, "root")
    },
    // On the root's CRL.
    CaRow {
        ca: Some(Some(0)),
        ..intermediate("sub-revoked", "onshi revoked sub CA", 6, "root")
    },
    // keyUsage without keyCertSign.
    CaRow {
        key_usage: &[KU_CRL_SIGN, KU_DIGITAL_SIGNATURE],
        ..intermediate(
            "sub-no-keycertsign",
            "onshi sub CA no keyCertSign",
            7,
            "root",
        )
    },
    // basicConstraints cA false.
    CaRow {
        ca: None,
        ..intermediate("sub-not-ca", "onshi sub not a CA", 8, "root")
    },
    // A root that allows no intermediate, and an intermediate under it.
    CaRow {
        ca: Some(Some(0)),
        ..anchor(
            "root-pathlen0",
            Some("onshi pathlen-0 root"),
            ("root", 2048),
            9,
            (2020, 2040),
        )
    },
    intermediate(
        "sub-under-pathlen0",
        "onshi sub under pathlen-0",
        10,
        "root-pathlen0",
    ),
    // Three stacked intermediates: a five-certificate path.
    intermediate("deep-1", "onshi deep 1", 11, "root"),
    intermediate("deep-2", "onshi deep 2", 12, "deep-1"),
    intermediate("deep-3", "onshi deep 3", 13, "deep-2"),
    // An untrusted CA; and a CA whose 1024-bit key is too weak.
    anchor("rogue", Some("ROGUE"), ("rogue", 2048), 14, (2020, 2040)),
    anchor(
        "weak-ca-1024",
        Some("onshi weak CA"),
        ("weak-ca", 1024),
        15,
        (2020, 2040),
    ),
    // g1's certificate renewed by the authority: same name, same key, valid to 2038.
    anchor("ca-g1-renewed", None, ("ca-g1", 2048), 16, (2028, 2038)),
];

/// The serials (`case_serial(n)`) on the CAs' CRLs.
const REVOKED_G1: u8 = 0x11;
const REVOKED_G2: u8 = 0x12;
const HOLD_G1: u8 = 0x13;
const REVOKED_SUB: u8 = 0x21;

/// A CRL entry: a card's serial (`case_serial(n)`) or a CA's, and the CRLReason code.
enum Revoked {
    Card(u8, u8),
    Ca(u8, u8),
}

/// One CRL: `crl/<file>.der`, signed by the CA row `ca`, its thisUpdate and nextUpdate so many
/// days from 1 April of `around` (`None`: the check time).
struct CrlRow {
    file: &'static str,
    ca: &'static str,
    around: Option<i32>,
    days: (i64, i64),
    revoked: &'static [Revoked],
}

/// A current CRL of `ca` (a day old, valid a week) revoking nothing.
const fn current(file: &'static str) -> CrlRow {
    CrlRow {
        file,
        ca: file,
        around: None,
        days: (-1, 7),
        revoked: &[],
    }
}

const CRLS: &[CrlRow] = &[
    // g0's last CRL, a month before it expired.
    CrlRow {
        around: Some(2024),
        days: (-30, -23),
        ..current("ca-g0")
    },
    // keyCompromise and certificateHold.
    CrlRow {
        days: (-1, 6),
        revoked: &[Revoked::Card(REVOKED_G1, 1), Revoked::Card(HOLD_G1, 6)],
        ..current("ca-g1")
    },
    // Past its nextUpdate at the check time.
    CrlRow {
        ca: "ca-g1",
        days: (-20, -13),
        revoked: &[Revoked::Card(REVOKED_G1, 1)],
        ..current("ca-g1-stale")
    },
    // Issued after the check time.
    CrlRow {
        ca: "ca-g1",
        days: (2, 9),
        revoked: &[Revoked::Card(REVOKED_G1, 1)],
        ..current("ca-g1-future")
    },
    // Current in 2030, when g1 has expired.
    CrlRow {
        ca: "ca-g1",
        around: Some(2030),
        ..current("ca-g1-2030")
    },
    // cessationOfOperation.
    CrlRow {
        days: (-1, 6),
        revoked: &[Revoked::Card(REVOKED_G2, 5)],
        ..current("ca-g2")
    },
    // The revoked sub CA (serial 6), cACompromise.
    CrlRow {
        revoked: &[Revoked::Ca(6, 2)],
        ..current("root")
    },
    CrlRow {
        revoked: &[Revoked::Card(REVOKED_SUB, 1)],
        ..current("sub")
    },
    // The other CAs' CRLs revoke nothing; a case configuring an intermediate adds its CRL.
    current("sub-revoked"),
    current("sub-no-keycertsign"),
    current("sub-not-ca"),
    current("root-pathlen0"),
    current("sub-under-pathlen0"),
    current("deep-1"),
    current("deep-2"),
    current("deep-3"),
    current("rogue"),
];

/// Everything a case may name: issuers, card keys, the serials on the CRLs, the trust
/// configurations and the good card that cases change one thing of.
pub(super) struct Pki {
    pub g0: Ca,
    pub g1: Ca,
    pub g2: Ca,
    pub sub: Ca,
    pub sub_revoked: Ca,
    pub sub_no_kcs: Ca,
    pub sub_not_ca: Ca,
    pub sub_p0: Ca,
    pub deep3: Ca,
    /// The files of the three stacked intermediates, top first.
    pub deep: Vec<String>,
    pub rogue: Ca,
    /// A rogue key under the real issuer's name.
    pub impostor: Ca,
    pub weak_ca: Ca,
    pub card: Key,
    pub card_weak: Key,
    pub card_e3: Key,
    pub revoked_g1: Vec<u8>,
    pub revoked_g2: Vec<u8>,
    pub hold_g1: Vec<u8>,
    pub revoked_sub: Vec<u8>,
    /// The path of g1's current CRL.
    pub crl_g1: String,
    /// The default configuration: the anchors and their current CRLs.
    pub ctx: CaseContext,
    /// The 1024-bit CA and g1 as anchors, g1's CRL only.
    pub weak: CaseContext,
    /// Checked in 2030, after g1 expired, with a 2030 CRL of g1.
    pub late: CaseContext,
    /// `late` with g1's certificate renewed (same key) among the anchors.
    pub renewed: CaseContext,
    /// g1's only CRL is past its nextUpdate.
    pub stale: CaseContext,
    /// No CRL of g2.
    pub missing: CaseContext,
    /// g1's only CRL starts after the check time.
    pub future: CaseContext,
    /// The good card: a g1 card accepted under the default configuration.
    pub good: Leaf,
}

impl Pki {
    pub fn issue(g: &mut Generator) -> Pki {
        let mut keys: BTreeMap<&str, Rc<Key>> = BTreeMap::new();
        let mut cas: BTreeMap<&str, Ca> = BTreeMap::new();
        for row in CAS {
            let (label, bits) = row.key;
            let key = keys
                .entry(label)
                .or_insert_with(|| Rc::new(Key::new(label, bits)));
            let organisation_rdns;
            let rdns: &[(&str, &str)] = match row.organisation {
                None => &ISSUER_RDNS,
                Some(o) => {
                    organisation_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", o)];
                    &organisation_rdns
                }
            };
            let spec = CaSpec {
                file: row.file,
                rdns,
                key: Rc::clone(key),
                serial: row.serial,
                from: year(row.years.0),
                to: year(row.years.1),
                ca: row.ca,
                key_usage: row.key_usage.to_vec(),
                any_policy: row.any_policy,
            };
            let ca = g.ca(spec, row.issuer.map(|i| &cas[i]));
            cas.insert(row.file, ca);
        }
        let mut crls: BTreeMap<&str, String> = BTreeMap::new();
        for row in CRLS {
            let around = row.around.map_or(CHECK_AT, year);
            let entries: Vec<(Vec<u8>, u8)> = row
                .revoked
                .iter()
                .map(|r| match *r {
                    Revoked::Card(n, reason) => (case_serial(n), reason),
                    Revoked::Ca(serial, reason) => (vec![serial], reason),
                })
                .collect();
            let this = around + Duration::days(row.days.0);
            let next = around + Duration::days(row.days.1);
            let path = g.crl(row.file, &cas[row.ca], this, next, &entries);
            crls.insert(row.file, path);
        }

        let file = |f: &str| cas[f].file.clone();
        let crl = |f: &str| crls[f].clone();
        let ctx = CaseContext {
            anchors: ["ca-g0", "ca-g1", "ca-g2", "root", "root-pathlen0"]
                .map(file)
                .to_vec(),
            // The anchors' CRLs; each case adds the CRLs of the intermediates it configures.
            crls: ["ca-g0", "ca-g1", "ca-g2", "root", "root-pathlen0"]
                .map(crl)
                .to_vec(),
            at: CHECK_AT,
        };
        let weak = CaseContext {
            anchors: vec![file("weak-ca-1024"), file("ca-g1")],
            crls: vec![crl("ca-g1")],
            at: CHECK_AT,
        };
        let late = CaseContext {
            at: year(2030),
            crls: vec![crl("ca-g1-2030"), crl("ca-g2")],
            ..ctx.clone()
        };
        let renewed = CaseContext {
            anchors: [late.anchors.clone(), vec![file("ca-g1-renewed")]].concat(),
            ..late.clone()
        };
        let stale = CaseContext {
            crls: vec![crl("ca-g1-stale"), crl("ca-g2")],
            ..ctx.clone()
        };
        let missing = CaseContext {
            crls: vec![crl("ca-g1")],
            ..ctx.clone()
        };
        let future = CaseContext {
            crls: vec![crl("ca-g1-future"), crl("ca-g2")],
            ..ctx.clone()
        };
        let good = Leaf {
            serial: case_serial(0x01),
            from: year(2025),
            to: year(2030),
            key_usage: Some(vec![KU_DIGITAL_SIGNATURE]),
            eku: Some(vec!["1.3.6.1.5.5.7.3.2"]),
            policy: Some(TEST_POLICY),
            extra: Vec::new(),
            basic_constraints_ca: false,
            alg: SHA256_RSA,
            authority_key_id: None,
        };
        let deep = ["deep-1", "deep-2", "deep-3"].map(file).to_vec();
        let crl_g1 = crl("ca-g1");
        // A rogue key under the real issuer's name.
        let impostor = Ca {
            name: name(&ISSUER_RDNS),
            key: Rc::clone(&cas["rogue"].key),
            file: String::new(),
        };
        #[allow(clippy::expect_used)]
        let mut take = |f: &str| cas.remove(f).expect("a CA of the table");
        Pki {
            g0: take("ca-g0"),
            g1: take("ca-g1"),
            g2: take("ca-g2"),
            sub: take("sub"),
            sub_revoked: take("sub-revoked"),
            sub_no_kcs: take("sub-no-keycertsign"),
            sub_not_ca: take("sub-not-ca"),
            sub_p0: take("sub-under-pathlen0"),
            deep3: take("deep-3"),
            deep,
            rogue: take("rogue"),
            impostor,
            weak_ca: take("weak-ca-1024"),
            card: Key::new("card", 2048),
            card_weak: Key::new("card-1024", 1024),
            card_e3: Key::with_exponent("card-e3", 2048, 3),
            revoked_g1: case_serial(REVOKED_G1),
            revoked_g2: case_serial(REVOKED_G2),
            hold_g1: case_serial(HOLD_G1),
            revoked_sub: case_serial(REVOKED_SUB),
            crl_g1,
            ctx,
            weak,
            late,
            renewed,
            stale,
            missing,
            future,
            good,
        }
    }

    /// What most leaf cases share: a card key under g1, the default configuration, accepted.
    pub fn base(&self) -> LeafCase<'_> {
        LeafCase {
            name: "",
            description: "",
            issuer: &self.g1,
            key: &self.card,
            leaf: self.good.clone(),
            ctx: &self.ctx,
            intermediates: &[],
            reason: None,
            stricter: None,
        }
    }

    /// The good card with serial `case_serial(n)`.
    pub fn serial(&self, n: u8) -> Leaf {
        Leaf {
            serial: case_serial(n),
            ..self.good.clone()
        }
    }
}
