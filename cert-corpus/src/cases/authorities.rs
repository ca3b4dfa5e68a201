//! The CAs and CRLs every case is checked against, and the trust configurations
//! ([`CaseContext`]) the cases use: built once, before any card certificate.

use std::rc::Rc;

use time::Duration;

use super::year;
use crate::der::name;
use crate::{
    case_serial, Ca, CaSpec, CaseContext, Generator, Key, Leaf, LeafCase, CHECK_AT, ISSUER_RDNS,
    KU_CRL_SIGN, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, SHA256_RSA, TEST_POLICY,
};

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
    #[allow(clippy::too_many_lines)]
    pub fn issue(g: &mut Generator) -> Pki {
        let k0 = Rc::new(Key::new("ca-g0", 2048));
        let k1 = Rc::new(Key::new("ca-g1", 2048));
        let k2 = Rc::new(Key::new("ca-g2", 2048));
        let kr = Rc::new(Key::new("root", 2048));
        let ks = Rc::new(Key::new("sub", 2048));
        let kx = Rc::new(Key::new("rogue", 2048));
        let kw = Rc::new(Key::new("weak-ca", 1024));
        let card = Key::new("card", 2048);
        let card_weak = Key::new("card-1024", 1024);
        let card_e3 = Key::with_exponent("card-e3", 2048, 3);

        let y = year;
        let ca_spec = |file, rdns, key: &Rc<Key>, serial, from, to| CaSpec {
            file,
            rdns,
            key: Rc::clone(key),
            serial,
            from,
            to,
            ca: Some(None),
            key_usage: vec![KU_KEY_CERT_SIGN, KU_CRL_SIGN],
            any_policy: false,
        };
        // Three generations of the issuing CA share one name: g0 retired (expired), g1 and
        // g2 overlapping, as the real authority's 2019–2029 and 2023–2033 generations do.
        let g0 = g.ca(
            ca_spec("ca-g0", &ISSUER_RDNS, &k0, 1, y(2014), y(2024)),
            None,
        );
        let g1 = g.ca(
            ca_spec("ca-g1", &ISSUER_RDNS, &k1, 2, y(2019), y(2029)),
            None,
        );
        let g2 = g.ca(
            ca_spec("ca-g2", &ISSUER_RDNS, &k2, 3, y(2023), y(2033)),
            None,
        );
        let root_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", "onshi corpus root")];
        let root = g.ca(ca_spec("root", &root_rdns, &kr, 4, y(2020), y(2040)), None);
        // Intermediates under the root: pathLen 0 and anyPolicy unless the case is about
        // that.
        let sub_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", "onshi corpus sub CA")];
        let sub = g.ca(
            CaSpec {
                ca: Some(Some(0)),
                any_policy: true,
                ..ca_spec("sub", &sub_rdns, &ks, 5, y(2021), y(2031))
            },
            Some(&root),
        );
        let sub_revoked_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", "onshi revoked sub CA")];
        let sub_revoked = g.ca(
            CaSpec {
                ca: Some(Some(0)),
                any_policy: true,
                ..ca_spec("sub-revoked", &sub_revoked_rdns, &ks, 6, y(2021), y(2031))
            },
            Some(&root),
        );
        let no_kcs_rdns = [
            ("2.5.4.6", "JP"),
            ("2.5.4.10", "onshi sub CA no keyCertSign"),
        ];
        let sub_no_kcs = g.ca(
            CaSpec {
                key_usage: vec![KU_CRL_SIGN, KU_DIGITAL_SIGNATURE],
                any_policy: true,
                ..ca_spec("sub-no-keycertsign", &no_kcs_rdns, &ks, 7, y(2021), y(2031))
            },
            Some(&root),
        );
        let not_ca_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", "onshi sub not a CA")];
        let sub_not_ca = g.ca(
            CaSpec {
                ca: None,
                any_policy: true,
                ..ca_spec("sub-not-ca", &not_ca_rdns, &ks, 8, y(2021), y(2031))
            },
            Some(&root),
        );
        // A root that allows no intermediate, and an intermediate under it.
        let rp_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", "onshi pathlen-0 root")];
        let root_p0 = g.ca(
            CaSpec {
                ca: Some(Some(0)),
                ..ca_spec("root-pathlen0", &rp_rdns, &kr, 9, y(2020), y(2040))
            },
            None,
        );
        let sp_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", "onshi sub under pathlen-0")];
        let sub_p0 = g.ca(
            CaSpec {
                any_policy: true,
                ..ca_spec("sub-under-pathlen0", &sp_rdns, &ks, 10, y(2021), y(2031))
            },
            Some(&root_p0),
        );
        // Three stacked intermediates: a five-certificate path.
        let deep_rdns: [[(&str, &str); 2]; 3] = [
            [("2.5.4.6", "JP"), ("2.5.4.10", "onshi deep 1")],
            [("2.5.4.6", "JP"), ("2.5.4.10", "onshi deep 2")],
            [("2.5.4.6", "JP"), ("2.5.4.10", "onshi deep 3")],
        ];
        let deep1 = g.ca(
            CaSpec {
                any_policy: true,
                ..ca_spec("deep-1", &deep_rdns[0], &ks, 11, y(2021), y(2031))
            },
            Some(&root),
        );
        let deep2 = g.ca(
            CaSpec {
                any_policy: true,
                ..ca_spec("deep-2", &deep_rdns[1], &ks, 12, y(2021), y(2031))
            },
            Some(&deep1),
        );
        let deep3 = g.ca(
            CaSpec {
                any_policy: true,
                ..ca_spec("deep-3", &deep_rdns[2], &ks, 13, y(2021), y(2031))
            },
            Some(&deep2),
        );
        let rogue_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", "ROGUE")];
        let rogue = g.ca(
            ca_spec("rogue", &rogue_rdns, &kx, 14, y(2020), y(2040)),
            None,
        );
        let impostor = Ca {
            name: name(&ISSUER_RDNS),
            key: Rc::clone(&kx),
            file: String::new(),
        };
        let weak_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", "onshi weak CA")];
        let weak_ca = g.ca(
            ca_spec("weak-ca-1024", &weak_rdns, &kw, 15, y(2020), y(2040)),
            None,
        );
        // g1's certificate renewed by the authority: same name, same key, valid to 2038.
        let g1_renewed = g.ca(
            ca_spec("ca-g1-renewed", &ISSUER_RDNS, &k1, 16, y(2028), y(2038)),
            None,
        );

        let revoked_g1 = case_serial(0x11);
        let revoked_g2 = case_serial(0x12);
        let hold_g1 = case_serial(0x13);
        let revoked_sub = case_serial(0x21);
        let at = CHECK_AT;
        let month = Duration::days(30);
        let day = Duration::days(1);
        let week = Duration::days(7);

        // CRLs: (file, issuer, thisUpdate, nextUpdate, revoked serials with reason codes).
        let crl_g0 = g.crl("ca-g0", &g0, y(2024) - month, y(2024) - month + week, &[]);
        let crl_g1 = g.crl(
            "ca-g1",
            &g1,
            at - day,
            at + Duration::days(6),
            &[(revoked_g1.clone(), 1), (hold_g1.clone(), 6)],
        );
        let crl_g1_stale = g.crl(
            "ca-g1-stale",
            &g1,
            at - Duration::days(20),
            at - Duration::days(13),
            &[(revoked_g1.clone(), 1)],
        );
        let crl_g1_future = g.crl(
            "ca-g1-future",
            &g1,
            at + Duration::days(2),
            at + Duration::days(9),
            &[(revoked_g1.clone(), 1)],
        );
        let crl_g1_2030 = g.crl("ca-g1-2030", &g1, y(2030) - day, y(2030) + week, &[]);
        let crl_g2 = g.crl(
            "ca-g2",
            &g2,
            at - day,
            at + Duration::days(6),
            &[(revoked_g2.clone(), 5)],
        );
        // The revoked sub CA (serial 6), cACompromise.
        let crl_root = g.crl("root", &root, at - day, at + week, &[(vec![6], 2)]);
        g.crl(
            "sub",
            &sub,
            at - day,
            at + week,
            &[(revoked_sub.clone(), 1)],
        );
        // The other CAs' CRLs revoke nothing; a case configuring an intermediate adds its CRL.
        for (file, ca) in [
            ("sub-revoked", &sub_revoked),
            ("sub-no-keycertsign", &sub_no_kcs),
            ("sub-not-ca", &sub_not_ca),
        ] {
            g.crl(file, ca, at - day, at + week, &[]);
        }
        let crl_root_p0 = g.crl("root-pathlen0", &root_p0, at - day, at + week, &[]);
        for (file, ca) in [
            ("sub-under-pathlen0", &sub_p0),
            ("deep-1", &deep1),
            ("deep-2", &deep2),
            ("deep-3", &deep3),
            ("rogue", &rogue),
        ] {
            g.crl(file, ca, at - day, at + week, &[]);
        }

        let ctx = CaseContext {
            anchors: vec![
                g0.file.clone(),
                g1.file.clone(),
                g2.file.clone(),
                root.file.clone(),
                root_p0.file.clone(),
            ],
            // The anchors' CRLs; each case adds the CRLs of the intermediates it configures.
            crls: vec![
                crl_g0,
                crl_g1.clone(),
                crl_g2.clone(),
                crl_root,
                crl_root_p0,
            ],
            at,
        };
        let weak = CaseContext {
            anchors: vec![weak_ca.file.clone(), g1.file.clone()],
            crls: vec![crl_g1.clone()],
            at,
        };
        let late = CaseContext {
            at: y(2030),
            crls: vec![crl_g1_2030, crl_g2.clone()],
            ..ctx.clone()
        };
        let renewed = CaseContext {
            anchors: [late.anchors.clone(), vec![g1_renewed.file.clone()]].concat(),
            ..late.clone()
        };
        let stale = CaseContext {
            crls: vec![crl_g1_stale, crl_g2.clone()],
            ..ctx.clone()
        };
        let missing = CaseContext {
            crls: vec![crl_g1.clone()],
            ..ctx.clone()
        };
        let future = CaseContext {
            crls: vec![crl_g1_future, crl_g2],
            ..ctx.clone()
        };
        let good = Leaf {
            serial: case_serial(0x01),
            from: y(2025),
            to: y(2030),
            key_usage: Some(vec![KU_DIGITAL_SIGNATURE]),
            eku: Some(vec!["1.3.6.1.5.5.7.3.2"]),
            policy: Some(TEST_POLICY),
            extra: Vec::new(),
            basic_constraints_ca: false,
            alg: SHA256_RSA,
            authority_key_id: None,
        };
        let deep = vec![deep1.file.clone(), deep2.file.clone(), deep3.file.clone()];
        Pki {
            g0,
            g1,
            g2,
            sub,
            sub_revoked,
            sub_no_kcs,
            sub_not_ca,
            sub_p0,
            deep3,
            deep,
            rogue,
            impostor,
            weak_ca,
            card,
            card_weak,
            card_e3,
            revoked_g1,
            revoked_g2,
            hold_g1,
            revoked_sub,
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
