//! The certificate corpus generator (see docs/validation.md "Differential test").
//!
//! Builds, from seeded RSA keys and fixed timestamps, a set of CAs, CRLs and card
//! certificates — good ones of each CA generation and a catalogue of broken and hostile ones —
//! with a manifest giving, per case, the trust configuration, the check time, our expected
//! verdict and reason, and OpenSSL 3.0's expected verdict (which differs where our rules are
//! deliberately stricter). Everything is hand-encoded DER so that the bad encodings (BER
//! lengths, wrong versions, SHA-1, 1024-bit keys, ...) can be written at all; signatures are
//! RSA PKCS#1 v1.5 and therefore deterministic, so the output is byte-for-byte reproducible.
//! `cargo run -p onshi-cert-corpus -- cert-corpus/corpus` rewrites the committed corpus; a
//! test regenerates it and fails on any difference.
//!
//! Why this file is long: `Generator::build` is the catalogue itself, about a hundred cases,
//! each a few lines of data with the reason it exists. The plain end-entity cases are tables of
//! [`LeafCase`] (only what differs from a g1 card accepted under the default configuration);
//! the rest are hand-made byte edits (tampered signatures, BER lengths, bad versions) that do
//! not fit one shape, and stay next to the table so that the corpus reads in one place.

pub mod der;

use std::collections::BTreeMap;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde::Serialize;
use time::macros::datetime;
use time::OffsetDateTime;

use der::{bits, name, octets, oid, parse_oid, seq, small_int, tlv, uint};

/// The instant every case is checked at (unless the case says otherwise).
pub const CHECK_AT: OffsetDateTime = datetime!(2026-04-01 00:00:00 UTC);
/// The JPKI test-card policy (jpki-card.md §6).
pub const TEST_POLICY: &str = "1.2.392.200149.8.5.1.0.30";
/// The (presumed) production policy: not accepted by the test configuration.
pub const PRODUCTION_POLICY: &str = "1.2.392.200149.8.5.1.3.30";

const SHA256_RSA: &str = "1.2.840.113549.1.1.11";
const SHA384_RSA: &str = "1.2.840.113549.1.1.12";
const SHA1_RSA: &str = "1.2.840.113549.1.1.5";
const MD5_RSA: &str = "1.2.840.113549.1.1.4";

const ISSUER_RDNS: [(&str, &str); 4] = [
    ("2.5.4.6", "JP"),
    ("2.5.4.10", "JPKI-TEST"),
    ("2.5.4.11", "JPKI for user authentication"),
    (
        "2.5.4.11",
        "Japan Agency for Local Authority Information Systems",
    ),
];

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Path relative to the corpus directory.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// What a verifier should say.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Case {
    pub name: String,
    pub description: String,
    pub cert: String,
    pub anchors: Vec<String>,
    pub intermediates: Vec<String>,
    pub crls: Vec<String>,
    pub policies: Vec<String>,
    /// RFC 3339.
    pub at: String,
    /// `accept` or `reject`: our verdict.
    pub expect: String,
    /// Our reason name when rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `accept` or `reject`: OpenSSL 3.0's verdict with the options in docs/validation.md.
    pub openssl: String,
    /// Why OpenSSL's verdict differs from ours, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stricter_than_openssl: Option<String>,
}

/// The whole corpus: files (manifest.json included) in a stable order.
pub fn generate() -> Vec<File> {
    let mut g = Generator::new();
    g.build();
    let manifest = serde_json::to_string_pretty(&g.cases).unwrap_or_default() + "\n";
    let mut files: Vec<File> = g
        .files
        .into_iter()
        .map(|(path, bytes)| File { path, bytes })
        .collect();
    files.push(File {
        path: "manifest.json".into(),
        bytes: manifest.into_bytes(),
    });
    files
}

/// A seeded RSA key.
#[derive(Clone)]
struct Key {
    private: RsaPrivateKey,
    /// RSAPublicKey DER.
    public_der: Vec<u8>,
}

impl Key {
    fn new(label: &str, bits: usize) -> Key {
        Key::with_exponent(label, bits, 65537)
    }

    /// A seeded key with public exponent `e` (the profile's is 65537).
    fn with_exponent(label: &str, bits: usize, e: u32) -> Key {
        let seed = ring::digest::digest(
            &ring::digest::SHA256,
            format!("onshi-cert-corpus/1/{label}").as_bytes(),
        );
        let mut s = [0u8; 32];
        s.copy_from_slice(seed.as_ref());
        let mut rng = ChaCha20Rng::from_seed(s);
        // A seeded generator and a fixed size cannot fail in practice; the corpus test would
        // show a broken generator at once.
        #[allow(clippy::expect_used)]
        let private = if e == 65537 {
            RsaPrivateKey::new(&mut rng, bits)
        } else {
            RsaPrivateKey::new_with_exp(&mut rng, bits, &rsa::BigUint::from(e))
        }
        .expect("RSA key generation");
        let public_der = seq(&[
            &uint(&private.n().to_bytes_be()),
            &uint(&private.e().to_bytes_be()),
        ]);
        Key {
            private,
            public_der,
        }
    }

    fn spki(&self) -> Vec<u8> {
        seq(&[
            &seq(&[&oid(&parse_oid("1.2.840.113549.1.1.1")), &der::null()]),
            &bits(&self.public_der),
        ])
    }

    /// The key identifier: SHA-1 of the RSAPublicKey (RFC 5280 §4.2.1.2 method 1).
    fn key_id(&self) -> Vec<u8> {
        ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.public_der)
            .as_ref()
            .to_vec()
    }

    fn sign(&self, alg: &str, message: &[u8]) -> Vec<u8> {
        let (prefix, digest): (&[u8], Vec<u8>) = match alg {
            SHA1_RSA => (
                &[
                    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00,
                    0x04, 0x14,
                ],
                ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, message)
                    .as_ref()
                    .to_vec(),
            ),
            SHA384_RSA => (
                &[
                    0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
                    0x02, 0x02, 0x05, 0x00, 0x04, 0x30,
                ],
                ring::digest::digest(&ring::digest::SHA384, message)
                    .as_ref()
                    .to_vec(),
            ),
            // SHA-256 (and the MD5 case, whose signature need not verify: both verifiers
            // refuse MD5 before looking at it).
            _ => (
                &[
                    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
                    0x02, 0x01, 0x05, 0x00, 0x04, 0x20,
                ],
                ring::digest::digest(&ring::digest::SHA256, message)
                    .as_ref()
                    .to_vec(),
            ),
        };
        let digest_info = [prefix, &digest].concat();
        #[allow(clippy::expect_used)]
        self.private
            .sign(Pkcs1v15Sign::new_unprefixed(), &digest_info)
            .expect("RSA signing")
    }
}

fn alg_id(alg: &str) -> Vec<u8> {
    seq(&[&oid(&parse_oid(alg)), &der::null()])
}

fn ext(oid_s: &str, critical: bool, value: &[u8]) -> Vec<u8> {
    if critical {
        seq(&[&oid(&parse_oid(oid_s)), &[0x01, 0x01, 0xff], &octets(value)])
    } else {
        seq(&[&oid(&parse_oid(oid_s)), &octets(value)])
    }
}

/// keyUsage BIT STRING from bit numbers (0 digitalSignature … 8 decipherOnly), DER-minimal.
fn key_usage(bits_set: &[u8]) -> Vec<u8> {
    let mut value: u16 = 0;
    for &b in bits_set {
        value |= 1 << (15 - u16::from(b));
    }
    let bytes = value.to_be_bytes();
    let used = if bytes[1] != 0 { 2 } else { 1 };
    let content = &bytes[..used];
    let last = content[used - 1];
    let unused = last.trailing_zeros().min(7) as u8;
    let mut c = vec![unused];
    c.extend_from_slice(content);
    tlv(0x03, &c)
}

/// keyUsage bit numbers (RFC 5280 §4.2.1.3), for [`CardSpec::key_usage`].
pub const KU_DIGITAL_SIGNATURE: u8 = 0;
pub const KU_KEY_ENCIPHERMENT: u8 = 2;
pub const KU_KEY_AGREEMENT: u8 = 4;
pub const KU_KEY_CERT_SIGN: u8 = 5;
pub const KU_CRL_SIGN: u8 = 6;
/// extendedKeyUsage clientAuth.
pub const EKU_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";

/// The parts of a TBSCertificate, each already encoded, so cases can swap one for a broken
/// encoding.
#[derive(Clone)]
struct Tbs {
    version: Vec<u8>,
    serial: Vec<u8>,
    inner_alg: Vec<u8>,
    issuer: Vec<u8>,
    validity: Vec<u8>,
    subject: Vec<u8>,
    spki: Vec<u8>,
    extensions: Vec<Vec<u8>>,
}

impl Tbs {
    fn encode(&self) -> Vec<u8> {
        let exts = if self.extensions.is_empty() {
            Vec::new()
        } else {
            tlv(0xa3, &tlv(0x30, &self.extensions.concat()))
        };
        tlv(
            0x30,
            &[
                self.version.as_slice(),
                &self.serial,
                &self.inner_alg,
                &self.issuer,
                &self.validity,
                &self.subject,
                &self.spki,
                &exts,
            ]
            .concat(),
        )
    }
}

fn validity(from: OffsetDateTime, to: OffsetDateTime) -> Vec<u8> {
    seq(&[&der::time(from), &der::time(to)])
}

/// A CA: its name, key and certificate.
struct Ca {
    name: Vec<u8>,
    key: std::rc::Rc<Key>,
    file: String,
}

struct CaSpec<'a> {
    file: &'a str,
    rdns: &'a [(&'a str, &'a str)],
    key: std::rc::Rc<Key>,
    serial: u8,
    from: OffsetDateTime,
    to: OffsetDateTime,
    /// `Some(None)` CA without path length, `Some(Some(n))` with, `None` cA false.
    ca: Option<Option<u8>>,
    key_usage: Vec<u8>,
    any_policy: bool,
}

/// What distinguishes a card certificate of a case from the good one.
#[derive(Clone)]
struct Leaf {
    serial: Vec<u8>,
    from: OffsetDateTime,
    to: OffsetDateTime,
    key_usage: Option<Vec<u8>>,
    eku: Option<Vec<&'static str>>,
    policy: Option<&'static str>,
    extra: Vec<Vec<u8>>,
    basic_constraints_ca: bool,
    alg: &'static str,
    /// The authorityKeyIdentifier's keyIdentifier; `None`: the issuer's key id.
    authority_key_id: Option<Vec<u8>>,
}

struct Generator {
    files: BTreeMap<String, Vec<u8>>,
    cases: Vec<Case>,
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Generator {
    fn new() -> Self {
        Generator {
            files: BTreeMap::new(),
            cases: Vec::new(),
        }
    }

    fn ca(&mut self, spec: CaSpec<'_>, issuer: Option<&Ca>) -> Ca {
        let name_der = name(spec.rdns);
        let mut exts = Vec::new();
        match spec.ca {
            Some(path_len) => {
                let mut content = vec![0x01, 0x01, 0xff];
                if let Some(n) = path_len {
                    content.extend(small_int(n));
                }
                exts.push(ext("2.5.29.19", true, &tlv(0x30, &content)));
            }
            None => exts.push(ext("2.5.29.19", true, &seq(&[]))),
        }
        exts.push(ext("2.5.29.15", true, &key_usage(&spec.key_usage)));
        exts.push(ext("2.5.29.14", false, &octets(&spec.key.key_id())));
        let (issuer_name, issuer_key) = match issuer {
            Some(i) => (i.name.clone(), std::rc::Rc::clone(&i.key)),
            None => (name_der.clone(), std::rc::Rc::clone(&spec.key)),
        };
        if issuer.is_some() {
            exts.push(ext(
                "2.5.29.35",
                false,
                &seq(&[&tlv(0x80, &issuer_key.key_id())]),
            ));
        }
        if spec.any_policy {
            exts.push(ext(
                "2.5.29.32",
                false,
                &seq(&[&seq(&[&oid(&parse_oid("2.5.29.32.0"))])]),
            ));
        }
        let tbs = Tbs {
            version: tlv(0xa0, &small_int(2)),
            serial: uint(&[spec.serial]),
            inner_alg: alg_id(SHA256_RSA),
            issuer: issuer_name,
            validity: validity(spec.from, spec.to),
            subject: name_der.clone(),
            spki: spec.key.spki(),
            extensions: exts,
        };
        let der = sign_tbs(&tbs.encode(), &issuer_key, SHA256_RSA, SHA256_RSA);
        let file = format!("ca/{}.der", spec.file);
        self.files.insert(file.clone(), der);
        Ca {
            name: name_der,
            key: spec.key,
            file,
        }
    }

    fn crl(
        &mut self,
        file: &str,
        ca: &Ca,
        this: OffsetDateTime,
        next: OffsetDateTime,
        revoked: &[(Vec<u8>, u8)],
    ) -> String {
        let mut entries = Vec::new();
        for (serial, reason) in revoked {
            let reason_ext = ext("2.5.29.21", false, &tlv(0x0a, &[*reason]));
            entries.push(seq(&[
                &uint(serial),
                &der::time(this - time::Duration::days(10)),
                &seq(&[&reason_ext]),
            ]));
        }
        let revoked_part = if entries.is_empty() {
            Vec::new()
        } else {
            tlv(0x30, &entries.concat())
        };
        let crl_exts = tlv(
            0xa0,
            &seq(&[
                &ext("2.5.29.35", false, &seq(&[&tlv(0x80, &ca.key.key_id())])),
                &ext("2.5.29.20", false, &uint(&[1])),
            ]),
        );
        let tbs = tlv(
            0x30,
            &[
                small_int(1),
                alg_id(SHA256_RSA),
                ca.name.clone(),
                der::time(this),
                der::time(next),
                revoked_part,
                crl_exts,
            ]
            .concat(),
        );
        let der = sign_tbs(&tbs, &ca.key, SHA256_RSA, SHA256_RSA);
        let path = format!("crl/{file}.der");
        self.files.insert(path.clone(), der);
        path
    }

    fn leaf_tbs(&self, issuer: &Ca, key: &Key, leaf: &Leaf, case: &str) -> Tbs {
        let mut exts = Vec::new();
        if leaf.basic_constraints_ca {
            exts.push(ext("2.5.29.19", true, &seq(&[&[0x01, 0x01, 0xff][..]])));
        }
        if let Some(ku) = &leaf.key_usage {
            exts.push(ext("2.5.29.15", true, &key_usage(ku)));
        }
        if let Some(ekus) = &leaf.eku {
            let oids: Vec<Vec<u8>> = ekus.iter().map(|o| oid(&parse_oid(o))).collect();
            let refs: Vec<&[u8]> = oids.iter().map(|o| o.as_slice()).collect();
            exts.push(ext("2.5.29.37", false, &seq(&refs)));
        }
        if let Some(p) = leaf.policy {
            exts.push(ext(
                "2.5.29.32",
                true,
                &seq(&[&seq(&[&oid(&parse_oid(p))])]),
            ));
        }
        exts.push(ext(
            "2.5.29.35",
            false,
            &seq(&[&tlv(
                0x80,
                leaf.authority_key_id
                    .as_deref()
                    .unwrap_or(&issuer.key.key_id()),
            )]),
        ));
        exts.push(ext("2.5.29.14", false, &octets(&key.key_id())));
        exts.extend(leaf.extra.iter().cloned());
        Tbs {
            version: tlv(0xa0, &small_int(2)),
            serial: uint(&leaf.serial),
            inner_alg: alg_id(leaf.alg),
            issuer: issuer.name.clone(),
            validity: validity(leaf.from, leaf.to),
            subject: card_subject(card_common_name(case).as_bytes()),
            spki: key.spki(),
            extensions: exts,
        }
    }

    fn write_cert(&mut self, case: &str, der: Vec<u8>) -> String {
        let path = format!("certs/{case}.der");
        self.files.insert(path.clone(), der);
        path
    }

    #[allow(clippy::too_many_lines)]
    fn build(&mut self) {
        use std::rc::Rc;
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

        let y = |year: i32| {
            datetime!(2000-04-01 00:00:00 UTC)
                .replace_year(year)
                .unwrap_or(CHECK_AT)
        };
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
        let g0 = self.ca(
            ca_spec("ca-g0", &ISSUER_RDNS, &k0, 1, y(2014), y(2024)),
            None,
        );
        let g1 = self.ca(
            ca_spec("ca-g1", &ISSUER_RDNS, &k1, 2, y(2019), y(2029)),
            None,
        );
        let g2 = self.ca(
            ca_spec("ca-g2", &ISSUER_RDNS, &k2, 3, y(2023), y(2033)),
            None,
        );
        let root_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", "onshi corpus root")];
        let root = self.ca(ca_spec("root", &root_rdns, &kr, 4, y(2020), y(2040)), None);
        let sub_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", "onshi corpus sub CA")];
        let sub = self.ca(
            CaSpec {
                ca: Some(Some(0)),
                any_policy: true,
                ..ca_spec("sub", &sub_rdns, &ks, 5, y(2021), y(2031))
            },
            Some(&root),
        );
        let sub_revoked_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", "onshi revoked sub CA")];
        let sub_revoked = self.ca(
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
        let sub_no_kcs = self.ca(
            CaSpec {
                key_usage: vec![KU_CRL_SIGN, KU_DIGITAL_SIGNATURE],
                any_policy: true,
                ..ca_spec("sub-no-keycertsign", &no_kcs_rdns, &ks, 7, y(2021), y(2031))
            },
            Some(&root),
        );
        let not_ca_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", "onshi sub not a CA")];
        let sub_not_ca = self.ca(
            CaSpec {
                ca: None,
                any_policy: true,
                ..ca_spec("sub-not-ca", &not_ca_rdns, &ks, 8, y(2021), y(2031))
            },
            Some(&root),
        );
        // A root that allows no intermediate, and an intermediate under it.
        let rp_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", "onshi pathlen-0 root")];
        let root_p0 = self.ca(
            CaSpec {
                ca: Some(Some(0)),
                ..ca_spec("root-pathlen0", &rp_rdns, &kr, 9, y(2020), y(2040))
            },
            None,
        );
        let sp_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", "onshi sub under pathlen-0")];
        let sub_p0 = self.ca(
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
        let deep1 = self.ca(
            CaSpec {
                any_policy: true,
                ..ca_spec("deep-1", &deep_rdns[0], &ks, 11, y(2021), y(2031))
            },
            Some(&root),
        );
        let deep2 = self.ca(
            CaSpec {
                any_policy: true,
                ..ca_spec("deep-2", &deep_rdns[1], &ks, 12, y(2021), y(2031))
            },
            Some(&deep1),
        );
        let deep3 = self.ca(
            CaSpec {
                any_policy: true,
                ..ca_spec("deep-3", &deep_rdns[2], &ks, 13, y(2021), y(2031))
            },
            Some(&deep2),
        );
        let rogue_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", "ROGUE")];
        let rogue = self.ca(
            ca_spec("rogue", &rogue_rdns, &kx, 14, y(2020), y(2040)),
            None,
        );
        // A rogue key under the real issuer's name.
        let impostor = Ca {
            name: name(&ISSUER_RDNS),
            key: Rc::clone(&kx),
            file: String::new(),
        };
        let weak_rdns = [("2.5.4.6", "JP"), ("2.5.4.10", "onshi weak CA")];
        let weak_ca = self.ca(
            ca_spec("weak-ca-1024", &weak_rdns, &kw, 15, y(2020), y(2040)),
            None,
        );

        let serial = |n: u8| vec![0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, n];
        let revoked_g1 = serial(0x11);
        let revoked_g2 = serial(0x12);
        let hold_g1 = serial(0x13);
        let revoked_sub = serial(0x21);
        let at = CHECK_AT;
        let month = time::Duration::days(30);

        let crl_g0 = self.crl(
            "ca-g0",
            &g0,
            y(2024) - month,
            y(2024) - month + time::Duration::days(7),
            &[],
        );
        let crl_g1 = self.crl(
            "ca-g1",
            &g1,
            at - time::Duration::days(1),
            at + time::Duration::days(6),
            &[(revoked_g1.clone(), 1), (hold_g1.clone(), 6)],
        );
        let crl_g1_stale = self.crl(
            "ca-g1-stale",
            &g1,
            at - time::Duration::days(20),
            at - time::Duration::days(13),
            &[(revoked_g1.clone(), 1)],
        );
        let crl_g1_future = self.crl(
            "ca-g1-future",
            &g1,
            at + time::Duration::days(2),
            at + time::Duration::days(9),
            &[(revoked_g1.clone(), 1)],
        );
        let crl_g2 = self.crl(
            "ca-g2",
            &g2,
            at - time::Duration::days(1),
            at + time::Duration::days(6),
            &[(revoked_g2.clone(), 5)],
        );
        let day = time::Duration::days(1);
        let week = time::Duration::days(7);
        let crl_root = self.crl(
            "root",
            &root,
            at - day,
            at + week,
            &[(vec![6], 2)], // the revoked sub CA (serial 6), cACompromise
        );
        let crl_sub = self.crl(
            "sub",
            &sub,
            at - day,
            at + week,
            &[(revoked_sub.clone(), 1)],
        );
        let crl_sub_revoked = self.crl("sub-revoked", &sub_revoked, at - day, at + week, &[]);
        let crl_sub_no_kcs = self.crl("sub-no-keycertsign", &sub_no_kcs, at - day, at + week, &[]);
        self.crl("sub-not-ca", &sub_not_ca, at - day, at + week, &[]);
        let crl_root_p0 = self.crl("root-pathlen0", &root_p0, at - day, at + week, &[]);
        let crl_sub_p0 = self.crl("sub-under-pathlen0", &sub_p0, at - day, at + week, &[]);
        let crl_deep: Vec<String> = [("deep-1", &deep1), ("deep-2", &deep2), ("deep-3", &deep3)]
            .into_iter()
            .map(|(f, ca)| self.crl(f, ca, at - day, at + week, &[]))
            .collect();
        self.crl("rogue", &rogue, at - day, at + week, &[]);

        let anchors = vec![
            g0.file.clone(),
            g1.file.clone(),
            g2.file.clone(),
            root.file.clone(),
            root_p0.file.clone(),
        ];
        // The anchors' CRLs; each case adds the CRLs of the intermediates it configures.
        let crls = vec![
            crl_g0.clone(),
            crl_g1.clone(),
            crl_g2.clone(),
            crl_root.clone(),
            crl_root_p0.clone(),
        ];
        let _ = (
            &crl_sub,
            &crl_sub_revoked,
            &crl_sub_no_kcs,
            &crl_sub_p0,
            &crl_deep,
        );
        let good = Leaf {
            serial: serial(0x01),
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
        let ctx = CaseContext { anchors, crls, at };
        // What most cases share: a card key under g1, the default configuration, accepted.
        let base = LeafCase {
            name: "",
            description: "",
            issuer: &g1,
            key: &card,
            leaf: good.clone(),
            ctx: &ctx,
            intermediates: &[],
            reason: None,
            stricter: None,
        };

        // ---- Good certificates of each generation and path shape.
        self.leaf_cases(vec![
            LeafCase {
                name: "good-g1",
                description: "card of CA generation 1 (2019–2029)",
                leaf: good.clone(),
                ..base.clone()
            },
            LeafCase {
                name: "good-g2",
                description: "card of CA generation 2 (2023–2033), same CA name, other key",
                issuer: &g2,
                leaf: Leaf {
                    serial: serial(0x02),
                    ..good.clone()
                },
                ..base.clone()
            },
            LeafCase {
                name: "good-g2-sha384",
                description: "sha384WithRSAEncryption",
                issuer: &g2,
                leaf: Leaf {
                    serial: serial(0x03),
                    alg: SHA384_RSA,
                    ..good.clone()
                },
                ..base.clone()
            },
            LeafCase {
                name: "good-g2-serial-revoked-in-g1",
                description: "a g2 card whose serial g1 revoked: CRLs are per CA key",
                issuer: &g2,
                leaf: Leaf {
                    serial: revoked_g1.clone(),
                    ..good.clone()
                },
                ..base.clone()
            },
            LeafCase {
                name: "good-unknown-noncritical-ext",
                description: "an unknown non-critical extension is ignored",
                leaf: Leaf {
                    serial: serial(0x05),
                    extra: vec![ext("1.2.3.4.5", false, &der::null())],
                    ..good.clone()
                },
                ..base.clone()
            },
            LeafCase {
                name: "good-intermediate",
                description: "card under an intermediate CA",
                issuer: &sub,
                leaf: Leaf {
                    serial: serial(0x06),
                    ..good.clone()
                },
                intermediates: std::slice::from_ref(&sub.file),
                ..base.clone()
            },
            LeafCase {
                name: "good-eku-server-and-client",
                description: "EKU with clientAuth among others",
                leaf: Leaf {
                    serial: serial(0x07),
                    eku: Some(vec!["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]),
                    ..good.clone()
                },
                ..base.clone()
            },
        ]);

        // ---- Path problems.
        self.leaf_cases(vec![
            LeafCase {
                name: "retired-generation",
                description: "card of the retired generation 0, whose CA expired in 2024",
                issuer: &g0,
                leaf: Leaf {
                    serial: serial(0x08),
                    from: y(2019),
                    to: y(2030),
                    ..good.clone()
                },
                reason: Some("issuer-not-valid"),
                ..base.clone()
            },
            LeafCase {
                name: "intermediate-missing",
                description: "card under an intermediate that is not configured",
                issuer: &sub,
                leaf: Leaf {
                    serial: serial(0x09),
                    ..good.clone()
                },
                reason: Some("untrusted-issuer"),
                ..base.clone()
            },
            LeafCase {
                name: "wrong-issuer",
                description: "issued by an untrusted CA",
                issuer: &rogue,
                leaf: Leaf {
                    serial: serial(0x0a),
                    ..good.clone()
                },
                reason: Some("untrusted-issuer"),
                ..base.clone()
            },
            LeafCase {
                name: "impostor-same-name",
                description: "issuer name of the real CA, signed by another key",
                issuer: &impostor,
                leaf: Leaf {
                    serial: serial(0x0b),
                    ..good.clone()
                },
                reason: Some("untrusted-issuer"),
                ..base.clone()
            },
            LeafCase {
                name: "aki-names-another-key",
                description:
                    "signed by the real CA, but its authorityKeyIdentifier names another key",
                leaf: Leaf {
                    serial: serial(0x0b),
                    authority_key_id: Some(impostor.key.key_id()),
                    ..good.clone()
                },
                reason: Some("untrusted-issuer"),
                ..base.clone()
            },
            LeafCase {
                name: "revoked-intermediate",
                description: "the intermediate CA is on the root's CRL (cACompromise)",
                issuer: &sub_revoked,
                leaf: Leaf {
                    serial: serial(0x0c),
                    ..good.clone()
                },
                intermediates: std::slice::from_ref(&sub_revoked.file),
                reason: Some("revoked"),
                ..base.clone()
            },
            LeafCase {
                name: "ca-without-keycertsign",
                description: "intermediate CA whose keyUsage lacks keyCertSign",
                issuer: &sub_no_kcs,
                leaf: Leaf {
                    serial: serial(0x0d),
                    ..good.clone()
                },
                intermediates: std::slice::from_ref(&sub_no_kcs.file),
                reason: Some("issuer-not-ca"),
                ..base.clone()
            },
            LeafCase {
                name: "issuer-not-ca",
                description: "intermediate with basicConstraints cA false",
                issuer: &sub_not_ca,
                leaf: Leaf {
                    serial: serial(0x0e),
                    ..good.clone()
                },
                intermediates: std::slice::from_ref(&sub_not_ca.file),
                reason: Some("issuer-not-ca"),
                ..base.clone()
            },
            LeafCase {
                name: "pathlen-exceeded",
                description: "intermediate under a root with pathLenConstraint 0",
                issuer: &sub_p0,
                leaf: Leaf {
                    serial: serial(0x0f),
                    ..good.clone()
                },
                intermediates: std::slice::from_ref(&sub_p0.file),
                reason: Some("path-too-long"),
                ..base.clone()
            },
            LeafCase {
                name: "path-too-long",
                description: "five certificates: three intermediates",
                issuer: &deep3,
                leaf: Leaf {
                    serial: serial(0x10),
                    ..good.clone()
                },
                intermediates: &[deep1.file.clone(), deep2.file.clone(), deep3.file.clone()],
                reason: Some("path-too-long"),
                stricter: Some("paths are limited to 4 certificates; OpenSSL allows 100"),
                ..base.clone()
            },
        ]);
        let c = self.leaf(
            &weak_ca,
            &card,
            &Leaf {
                serial: serial(0x14),
                ..good.clone()
            },
            "weak-ca-key",
        );
        let weak_ctx = CaseContext {
            anchors: vec![weak_ca.file.clone(), g1.file.clone()],
            crls: vec![crl_g1.clone()],
            at,
        };
        self.case(
            &weak_ctx,
            "weak-ca-key",
            "issued by a CA with a 1024-bit key (whose CRL cannot be trusted either)",
            c,
            &[],
            Some("weak-key"),
            None,
        );

        // ---- Time.
        self.leaf_cases(vec![
            LeafCase {
                name: "expired",
                description: "notAfter a month before the check time",
                leaf: Leaf {
                    serial: serial(0x15),
                    from: y(2021),
                    to: y(2026) - month,
                    ..good.clone()
                },
                reason: Some("expired"),
                ..base.clone()
            },
            LeafCase {
                name: "not-yet-valid",
                description: "notBefore a month after the check time",
                leaf: Leaf {
                    serial: serial(0x16),
                    from: y(2026) + month,
                    to: y(2031),
                    ..good.clone()
                },
                reason: Some("not-yet-valid"),
                ..base.clone()
            },
        ]);
        // One second either side of the validity: no clock-skew allowance by default.
        let second = time::Duration::seconds(1);
        self.leaf_cases(vec![
            LeafCase {
                name: "expired-one-second",
                description: "notAfter one second before the check time",
                leaf: Leaf {
                    serial: serial(0x3f),
                    from: y(2021),
                    to: at - second,
                    ..good.clone()
                },
                reason: Some("expired"),
                ..base.clone()
            },
            LeafCase {
                name: "not-yet-valid-one-second",
                description: "notBefore one second after the check time",
                leaf: Leaf {
                    serial: serial(0x40),
                    from: at + second,
                    to: y(2031),
                    ..good.clone()
                },
                reason: Some("not-yet-valid"),
                ..base.clone()
            },
        ]);
        let c = self.leaf(
            &g1,
            &card,
            &Leaf {
                serial: serial(0x17),
                from: y(2019),
                to: y(2031),
                ..good.clone()
            },
            "outlives-ca-checked-late",
        );
        let late = CaseContext {
            at: y(2030),
            crls: vec![
                self.crl("ca-g1-2030", &g1, y(2030) - day, y(2030) + week, &[]),
                crl_g2.clone(),
            ],
            ..ctx.clone()
        };
        self.case(
            &late,
            "outlives-ca-checked-late",
            "a card valid until 2031 checked in 2030, after its CA (g1) expired",
            c,
            &[],
            Some("issuer-not-valid"),
            None,
        );
        // The same card when the authority has renewed g1's certificate (same name, same key,
        // validity to 2038) and configured it beside the old one: two paths, one valid.
        let g1_renewed = self.ca(
            ca_spec("ca-g1-renewed", &ISSUER_RDNS, &k1, 16, y(2028), y(2038)),
            None,
        );
        let renewed = CaseContext {
            anchors: [late.anchors.clone(), vec![g1_renewed.file.clone()]].concat(),
            ..late.clone()
        };
        let c = self
            .files
            .get("certs/outlives-ca-checked-late.der")
            .cloned()
            .unwrap_or_default();
        let c = self.write_cert("renewed-ca-same-key", c);
        self.case(
            &renewed,
            "renewed-ca-same-key",
            "the card above, with g1's certificate renewed (same key) among the anchors",
            c,
            &[],
            None,
            None,
        );

        // ---- Revocation.
        self.leaf_cases(vec![
            LeafCase {
                name: "revoked-g1",
                description: "on generation 1's CRL (keyCompromise)",
                leaf: Leaf {
                    serial: revoked_g1.clone(),
                    ..good.clone()
                },
                reason: Some("revoked"),
                ..base.clone()
            },
            LeafCase {
                name: "revoked-g2",
                description: "on generation 2's CRL (cessationOfOperation)",
                issuer: &g2,
                leaf: Leaf {
                    serial: revoked_g2.clone(),
                    ..good.clone()
                },
                reason: Some("revoked"),
                ..base.clone()
            },
            LeafCase {
                name: "revoked-hold",
                description: "on hold (certificateHold)",
                leaf: Leaf {
                    serial: hold_g1.clone(),
                    ..good.clone()
                },
                reason: Some("revoked"),
                ..base.clone()
            },
            LeafCase {
                name: "revoked-by-intermediate",
                description: "on the intermediate's CRL",
                issuer: &sub,
                leaf: Leaf {
                    serial: revoked_sub.clone(),
                    ..good.clone()
                },
                intermediates: std::slice::from_ref(&sub.file),
                reason: Some("revoked"),
                ..base.clone()
            },
        ]);
        let c = self.leaf(
            &g1,
            &card,
            &Leaf {
                serial: serial(0x18),
                ..good.clone()
            },
            "crl-stale",
        );
        let stale = CaseContext {
            crls: vec![crl_g1_stale.clone(), crl_g2.clone()],
            ..ctx.clone()
        };
        self.case(
            &stale,
            "crl-stale",
            "the only CRL of g1 is past its nextUpdate (fail closed)",
            c,
            &[],
            Some("crl-stale"),
            None,
        );
        let c = self.leaf(
            &g2,
            &card,
            &Leaf {
                serial: serial(0x19),
                ..good.clone()
            },
            "crl-missing",
        );
        let missing = CaseContext {
            crls: vec![crl_g1.clone()],
            ..ctx.clone()
        };
        self.case(
            &missing,
            "crl-missing",
            "no CRL of g2 is configured",
            c,
            &[],
            Some("crl-missing"),
            None,
        );
        let c = self.leaf(
            &g1,
            &card,
            &Leaf {
                serial: serial(0x1a),
                ..good.clone()
            },
            "crl-not-yet-valid",
        );
        let future = CaseContext {
            crls: vec![crl_g1_future.clone(), crl_g2.clone()],
            ..ctx.clone()
        };
        self.case(
            &future,
            "crl-not-yet-valid",
            "g1's only CRL has a thisUpdate after the check time",
            c,
            &[],
            Some("crl-missing"),
            None,
        );

        // ---- End-entity profile.
        self.leaf_cases(vec![
            LeafCase {
                name: "wrong-key-usage",
                description: "keyUsage keyEncipherment only",
                leaf: Leaf {
                    serial: serial(0x1b),
                    key_usage: Some(vec![KU_KEY_ENCIPHERMENT]),
                    ..good.clone()
                },
                reason: Some("wrong-key-usage"),
                ..base.clone()
            },
            LeafCase {
                name: "no-key-usage",
                description: "no keyUsage extension",
                leaf: Leaf {
                    serial: serial(0x1c),
                    key_usage: None,
                    ..good.clone()
                },
                reason: Some("wrong-key-usage"),
                stricter: Some("the card profile requires keyUsage digitalSignature; OpenSSL accepts a certificate without keyUsage for any purpose"),
                ..base.clone()
            },
            LeafCase {
                name: "key-agreement-only",
                description: "keyUsage keyAgreement only",
                leaf: Leaf {
                    serial: serial(0x1d),
                    key_usage: Some(vec![KU_KEY_AGREEMENT]),
                    ..good.clone()
                },
                reason: Some("wrong-key-usage"),
                stricter: Some("a card signs, so digitalSignature is required; OpenSSL's sslclient purpose also accepts keyAgreement"),
                ..base.clone()
            },
            LeafCase {
                name: "wrong-eku",
                description: "extendedKeyUsage serverAuth only",
                leaf: Leaf {
                    serial: serial(0x1e),
                    eku: Some(vec!["1.3.6.1.5.5.7.3.1"]),
                    ..good.clone()
                },
                reason: Some("wrong-extended-key-usage"),
                ..base.clone()
            },
        ]);
        // The card profile (jpki-card.md §6) beyond what OpenSSL checks: each rule its reason.
        self.leaf_cases(vec![
            LeafCase {
                name: "no-eku",
                description: "no extendedKeyUsage",
                leaf: Leaf {
                    serial: serial(0x04),
                    eku: None,
                    ..good.clone()
                },
                reason: Some("missing-extended-key-usage"),
                stricter: Some("the card profile requires extendedKeyUsage clientAuth; OpenSSL accepts a certificate without EKU for any purpose"),
                ..base.clone()
            },
            LeafCase {
                name: "eku-any-only",
                description: "extendedKeyUsage anyExtendedKeyUsage only, no clientAuth",
                leaf: Leaf {
                    serial: serial(0x34),
                    eku: Some(vec!["2.5.29.37.0"]),
                    ..good.clone()
                },
                reason: Some("wrong-extended-key-usage"),
                ..base.clone()
            },
        ]);
        for (n, (case, bit, label)) in [
            (
                "extra-key-usage-keycertsign",
                KU_KEY_CERT_SIGN,
                "keyCertSign",
            ),
            ("extra-key-usage-crlsign", KU_CRL_SIGN, "cRLSign"),
        ]
        .into_iter()
        .enumerate()
        {
            let c = self.leaf(
                &g1,
                &card,
                &Leaf {
                    serial: serial(0x35 + n as u8),
                    key_usage: Some(vec![KU_DIGITAL_SIGNATURE, bit]),
                    ..good.clone()
                },
                case,
            );
            self.case(
                &ctx,
                case,
                &format!("keyUsage digitalSignature and {label}"),
                c,
                &[],
                Some("extra-key-usage"),
                Some("the card profile's keyUsage is digitalSignature only; OpenSSL's sslclient purpose needs digitalSignature and ignores other bits in a certificate that is not a CA"),
            );
        }
        self.leaf_cases(vec![LeafCase {
            name: "rsa-exponent-3",
            description: "the card's RSA-2048 key has public exponent 3",
            key: &card_e3,
            leaf: Leaf {
                serial: serial(0x37),
                ..good.clone()
            },
            reason: Some("wrong-rsa-exponent"),
            stricter: Some(
                "the card profile's exponent is 65537; OpenSSL accepts any RSA exponent",
            ),
            ..base.clone()
        }]);
        // Serial numbers, written as raw INTEGER content octets.
        let mut twenty = vec![0x7f];
        twenty.extend(std::iter::repeat_n(0xa5, 18));
        twenty.push(0x38);
        let mut twenty_one = vec![0x01];
        twenty_one.extend(std::iter::repeat_n(0xa5, 19));
        twenty_one.push(0x39);
        for (case, raw, description, reason, stricter) in [
            (
                "serial-20-octets",
                twenty,
                "a serial of 20 octets, the most RFC 5280 allows",
                None,
                None,
            ),
            (
                "serial-21-octets",
                twenty_one,
                "a serial of 21 octets",
                Some("serial-too-long"),
                Some("serials are at most 20 octets (RFC 5280 §4.1.2.2); OpenSSL accepts longer ones"),
            ),
            (
                "serial-zero",
                vec![0x00],
                "serial number 0",
                Some("non-positive-serial"),
                Some("a serial must be positive (RFC 5280 §4.1.2.2); OpenSSL 3.0 accepts 0"),
            ),
            (
                "serial-negative",
                vec![0xc0, 0, 0, 0, 0, 0, 0, 0x3a],
                "a negative serial number",
                Some("non-positive-serial"),
                Some("a serial must be positive (RFC 5280 §4.1.2.2); OpenSSL 3.0 accepts negative ones"),
            ),
        ] {
            let mut tbs = self.leaf_tbs(&g1, &card, &good, case);
            tbs.serial = tlv(0x02, &raw);
            let c = self.write_cert(
                case,
                sign_tbs(&tbs.encode(), &g1.key, SHA256_RSA, SHA256_RSA),
            );
            self.case(&ctx, case, description, c, &[], reason, stricter);
        }
        // Subjects other than C=JP, CN=<23 upper-case letters and digits>.
        let cn = card_common_name("subject-cn-nul");
        let with_nul = format!("{}\0{}", &cn[..11], &cn[12..]);
        let cn22 = card_common_name("subject-cn-22-chars");
        let cn_extra = card_common_name("subject-extra-rdn");
        let cn_us = card_common_name("subject-country-us");
        for (n, (case, subject, description)) in [
            (
                "subject-cn-nul",
                card_subject(with_nul.as_bytes()),
                "a 23-character CN with an embedded NUL",
            ),
            (
                "subject-cn-22-chars",
                card_subject(&cn22.as_bytes()[..22]),
                "a CN of 22 characters",
            ),
            (
                "subject-country-us",
                name(&[("2.5.4.6", "US"), ("2.5.4.3", &cn_us)]),
                "C=US instead of C=JP",
            ),
            (
                "subject-extra-rdn",
                name(&[
                    ("2.5.4.6", "JP"),
                    ("2.5.4.10", "Someone Personal"),
                    ("2.5.4.3", &cn_extra),
                ]),
                "an O= between C=JP and the CN (the profile's subject has nothing else)",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let mut tbs = self.leaf_tbs(
                &g1,
                &card,
                &Leaf {
                    serial: serial(0x3b + n as u8),
                    ..good.clone()
                },
                case,
            );
            tbs.subject = subject;
            let c = self.write_cert(
                case,
                sign_tbs(&tbs.encode(), &g1.key, SHA256_RSA, SHA256_RSA),
            );
            self.case(&ctx, case, description, c, &[], Some("wrong-subject"), Some("the card profile's subject is C=JP and a CN of 23 upper-case letters and digits; OpenSSL does not look at the subject"));
        }
        self.leaf_cases(vec![
            LeafCase {
                name: "wrong-policy",
                description: "asserts the production policy, not the test one",
                leaf: Leaf {
                    serial: serial(0x1f),
                    policy: Some(PRODUCTION_POLICY),
                    ..good.clone()
                },
                reason: Some("wrong-policy"),
                ..base.clone()
            },
            LeafCase {
                name: "no-policy",
                description: "no certificatePolicies",
                leaf: Leaf {
                    serial: serial(0x20),
                    policy: None,
                    ..good.clone()
                },
                reason: Some("wrong-policy"),
                ..base.clone()
            },
            LeafCase {
                name: "leaf-is-ca",
                description: "the card certificate claims to be a CA",
                leaf: Leaf {
                    serial: serial(0x22),
                    basic_constraints_ca: true,
                    ..good.clone()
                },
                reason: Some("not-end-entity"),
                stricter: Some("a card's certificate must not be a CA; OpenSSL does not check the leaf's basicConstraints"),
                ..base.clone()
            },
            LeafCase {
                name: "unknown-critical-ext",
                description: "an unknown critical extension",
                leaf: Leaf {
                    serial: serial(0x23),
                    extra: vec![ext("1.2.3.4.5", true, &der::null())],
                    ..good.clone()
                },
                reason: Some("unknown-critical-extension"),
                ..base.clone()
            },
        ]);
        let nc = {
            // nameConstraints is not processed for a leaf, so a critical one is refused.
            let v = seq(&[&tlv(0xa0, &seq(&[&tlv(0x82, b"example.jp")]))]);
            ext("2.5.29.30", true, &v)
        };
        self.leaf_cases(vec![
            LeafCase {
                name: "leaf-name-constraints",
                description: "a critical nameConstraints extension in a card certificate",
                leaf: Leaf {
                    serial: serial(0x24),
                    extra: vec![nc],
                    ..good.clone()
                },
                reason: Some("unknown-critical-extension"),
                stricter: Some("nameConstraints are not processed, so a critical one is refused; OpenSSL knows the extension (and ignores it in a leaf)"),
                ..base.clone()
            },
        ]);
        let big = ext("1.2.3.4.6", false, &octets(&vec![0x41u8; 9000]));
        self.leaf_cases(vec![LeafCase {
            name: "too-large",
            description: "a 9 KB certificate",
            leaf: Leaf {
                serial: serial(0x25),
                extra: vec![big],
                ..good.clone()
            },
            reason: Some("too-large"),
            stricter: Some(
                "certificates from a card are bounded to 8 KB; OpenSSL has no such bound",
            ),
            ..base.clone()
        }]);

        // ---- Algorithms and keys.
        self.leaf_cases(vec![
            LeafCase {
                name: "sha1-signed",
                description: "sha1WithRSAEncryption",
                leaf: Leaf {
                    serial: serial(0x26),
                    alg: SHA1_RSA,
                    ..good.clone()
                },
                reason: Some("unsupported-algorithm"),
                stricter: Some("SHA-1 signatures are refused; OpenSSL 3.0 accepts them at its default security level 1"),
                ..base.clone()
            },
            LeafCase {
                name: "md5-signed",
                description: "md5WithRSAEncryption",
                leaf: Leaf {
                    serial: serial(0x27),
                    alg: MD5_RSA,
                    ..good.clone()
                },
                reason: Some("unsupported-algorithm"),
                ..base.clone()
            },
            LeafCase {
                name: "rsa-1024-card",
                description: "the card's key is RSA-1024",
                key: &card_weak,
                leaf: Leaf {
                    serial: serial(0x28),
                    ..good.clone()
                },
                reason: Some("weak-key"),
                stricter: Some("RSA keys under 2048 bits are refused; OpenSSL 3.0's default level 1 accepts 1024 bits"),
                ..base.clone()
            },
        ]);
        let ec_spki = seq(&[
            &seq(&[
                &oid(&parse_oid("1.2.840.10045.2.1")),
                &oid(&parse_oid("1.2.840.10045.3.1.7")),
            ]),
            &bits(&P256_GENERATOR),
        ]);
        let mut tbs = self.leaf_tbs(
            &g1,
            &card,
            &Leaf {
                serial: serial(0x29),
                ..good.clone()
            },
            "ec-card",
        );
        tbs.spki = ec_spki;
        let c = self.write_cert(
            "ec-card",
            sign_tbs(&tbs.encode(), &g1.key, SHA256_RSA, SHA256_RSA),
        );
        self.case(&ctx, "ec-card", "the card's key is ECDSA P-256 (a card's key is RSA)", c, &[], Some("unsupported-algorithm"), Some("a card's key must be RSA (the challenge signature is RSA PKCS#1 v1.5); OpenSSL accepts any key type"));
        let tbs = self.leaf_tbs(
            &g1,
            &card,
            &Leaf {
                serial: serial(0x2a),
                ..good.clone()
            },
            "sig-alg-mismatch",
        );
        let c = self.write_cert(
            "sig-alg-mismatch",
            sign_tbs(&tbs.encode(), &g1.key, SHA256_RSA, SHA384_RSA),
        );
        self.case(
            &ctx,
            "sig-alg-mismatch",
            "outer signatureAlgorithm sha384, inner sha256",
            c,
            &[],
            Some("signature-algorithm-mismatch"),
            None,
        );

        // ---- Signatures.
        let good_der = self
            .files
            .get("certs/good-g1.der")
            .cloned()
            .unwrap_or_default();
        let mut bad_sig = good_der.clone();
        if let Some(last) = bad_sig.last_mut() {
            *last ^= 0x01;
        }
        let c = self.write_cert("bad-signature", bad_sig);
        self.case(
            &ctx,
            "bad-signature",
            "the last signature byte flipped",
            c,
            &[],
            Some("bad-signature"),
            None,
        );
        let mut tampered = good_der.clone();
        if let Some(pos) = find(&tampered, card_common_name("good-g1").as_bytes()) {
            // Still a well-formed CN: only the signature can tell.
            tampered[pos] = if tampered[pos] == b'Z' { b'Y' } else { b'Z' };
        }
        let c = self.write_cert("tampered-tbs", tampered);
        self.case(
            &ctx,
            "tampered-tbs",
            "one byte of the subject changed after signing",
            c,
            &[],
            Some("bad-signature"),
            None,
        );

        // ---- Encoding.
        let c = self.write_cert("truncated-half", good_der[..good_der.len() / 2].to_vec());
        self.case(
            &ctx,
            "truncated-half",
            "cut in half",
            c,
            &[],
            Some("malformed"),
            None,
        );
        let c = self.write_cert(
            "truncated-one-byte",
            good_der[..good_der.len() - 1].to_vec(),
        );
        self.case(
            &ctx,
            "truncated-one-byte",
            "last byte missing",
            c,
            &[],
            Some("malformed"),
            None,
        );
        let c = self.write_cert("trailing-garbage", [good_der.as_slice(), b"JUNK"].concat());
        self.case(
            &ctx,
            "trailing-garbage",
            "four bytes after the certificate",
            c,
            &[],
            Some("trailing-data"),
            Some("bytes after the certificate are refused; OpenSSL 3.0 ignores them"),
        );
        let c = self.write_cert("trailing-zeros", [good_der.as_slice(), &[0, 0]].concat());
        self.case(
            &ctx,
            "trailing-zeros",
            "two zero bytes after the certificate",
            c,
            &[],
            Some("trailing-data"),
            Some("bytes after the certificate are refused; OpenSSL 3.0 ignores them"),
        );
        let inner = &good_der[4..];
        let c = self.write_cert("ber-outer-length", der::tlv_padded_len(0x30, inner));
        self.case(
            &ctx,
            "ber-outer-length",
            "the outer SEQUENCE length in four octets with leading zeros (BER)",
            c,
            &[],
            Some("non-canonical-der"),
            Some("only DER is accepted; OpenSSL 3.0 accepts BER lengths"),
        );
        let mut indefinite = vec![0x30, 0x80];
        indefinite.extend_from_slice(inner);
        indefinite.extend_from_slice(&[0, 0]);
        let c = self.write_cert("indefinite-length", indefinite);
        self.case(
            &ctx,
            "indefinite-length",
            "the outer SEQUENCE with an indefinite length (BER)",
            c,
            &[],
            Some("non-canonical-der"),
            Some("only DER is accepted; OpenSSL 3.0 accepts indefinite lengths"),
        );
        let mut tbs = self.leaf_tbs(
            &g1,
            &card,
            &Leaf {
                serial: serial(0x2b),
                ..good.clone()
            },
            "ber-inner-length",
        );
        tbs.version = vec![0xa0, 0x81, 0x03, 0x02, 0x01, 0x02];
        let c = self.write_cert(
            "ber-inner-length",
            sign_tbs(&tbs.encode(), &g1.key, SHA256_RSA, SHA256_RSA),
        );
        self.case(
            &ctx,
            "ber-inner-length",
            "the version field's length in long form (BER), signed as such",
            c,
            &[],
            Some("non-canonical-der"),
            Some(
                "only DER is accepted; OpenSSL 3.0 verifies the signature over the BER as received",
            ),
        );
        let mut tbs = self.leaf_tbs(
            &g1,
            &card,
            &Leaf {
                serial: serial(0x2c),
                ..good.clone()
            },
            "boolean-not-ff",
        );
        if let Some(e) = tbs
            .extensions
            .iter_mut()
            .find(|e| find(e, &[0x55, 0x1d, 0x0f]).is_some())
        {
            if let Some(p) = find(e, &[0x01, 0x01, 0xff]) {
                e[p + 2] = 0x01;
            }
        }
        let c = self.write_cert(
            "boolean-not-ff",
            sign_tbs(&tbs.encode(), &g1.key, SHA256_RSA, SHA256_RSA),
        );
        self.case(
            &ctx,
            "boolean-not-ff",
            "keyUsage critical flag encoded as BOOLEAN 01 (BER)",
            c,
            &[],
            Some("non-canonical-der"),
            Some("only DER is accepted; OpenSSL 3.0 accepts any non-zero BOOLEAN"),
        );
        let mut tbs = self.leaf_tbs(
            &g1,
            &card,
            &Leaf {
                serial: serial(0x2d),
                ..good.clone()
            },
            "utctime-no-seconds",
        );
        tbs.validity = seq(&[&tlv(0x17, b"2504010000Z"), &tlv(0x17, b"3004010000Z")]);
        let c = self.write_cert(
            "utctime-no-seconds",
            sign_tbs(&tbs.encode(), &g1.key, SHA256_RSA, SHA256_RSA),
        );
        self.case(
            &ctx,
            "utctime-no-seconds",
            "UTCTime without seconds (allowed in BER, not in DER)",
            c,
            &[],
            Some("non-canonical-der"),
            None,
        );
        let mut tbs = self.leaf_tbs(
            &g1,
            &card,
            &Leaf {
                serial: serial(0x2e),
                ..good.clone()
            },
            "unsorted-set",
        );
        let cn = seq(&[
            &oid(&parse_oid("2.5.4.3")),
            &der::printable(&card_common_name("unsorted-set")),
        ]);
        let c_jp = seq(&[&oid(&parse_oid("2.5.4.6")), &der::printable("JP")]);
        // In DER the SET's elements are sorted by encoding: CN (…55 04 03) before C.
        let (a, b) = if cn < c_jp { (c_jp, cn) } else { (cn, c_jp) };
        tbs.subject = seq(&[&tlv(0x31, &[a, b].concat())]);
        let c = self.write_cert(
            "unsorted-set",
            sign_tbs(&tbs.encode(), &g1.key, SHA256_RSA, SHA256_RSA),
        );
        self.case(
            &ctx,
            "unsorted-set",
            "a multi-valued RDN whose SET elements are not in DER order",
            c,
            &[],
            Some("non-canonical-der"),
            Some("only DER is accepted; OpenSSL 3.0 accepts (and re-sorts) an unsorted SET"),
        );
        let mut tbs = self.leaf_tbs(
            &g1,
            &card,
            &Leaf {
                serial: serial(0x2f),
                ..good.clone()
            },
            "serial-padded",
        );
        tbs.serial = tlv(0x02, &[&[0u8][..], &serial(0x2f)].concat());
        let c = self.write_cert(
            "serial-padded",
            sign_tbs(&tbs.encode(), &g1.key, SHA256_RSA, SHA256_RSA),
        );
        self.case(
            &ctx,
            "serial-padded",
            "serial INTEGER with a redundant leading zero",
            c,
            &[],
            Some("non-canonical-der"),
            None,
        );
        let mut tbs = self.leaf_tbs(
            &g1,
            &card,
            &Leaf {
                serial: serial(0x30),
                ..good.clone()
            },
            "version-v4",
        );
        tbs.version = tlv(0xa0, &small_int(3));
        let c = self.write_cert(
            "version-v4",
            sign_tbs(&tbs.encode(), &g1.key, SHA256_RSA, SHA256_RSA),
        );
        self.case(
            &ctx,
            "version-v4",
            "version INTEGER 3 (no such version)",
            c,
            &[],
            Some("unsupported-version"),
            Some(
                "only v3 certificates are accepted; OpenSSL 3.0 accepts an unknown version number",
            ),
        );
        let mut tbs = self.leaf_tbs(
            &g1,
            &card,
            &Leaf {
                serial: serial(0x31),
                ..good.clone()
            },
            "version-v2",
        );
        tbs.version = tlv(0xa0, &small_int(1));
        let c = self.write_cert(
            "version-v2",
            sign_tbs(&tbs.encode(), &g1.key, SHA256_RSA, SHA256_RSA),
        );
        self.case(&ctx, "version-v2", "version v2 with extensions", c, &[], Some("unsupported-version"), Some("only v3 certificates are accepted (extensions need v3); OpenSSL 3.0 accepts a v2 certificate with extensions"));
        let mut tbs = self.leaf_tbs(
            &g1,
            &card,
            &Leaf {
                serial: serial(0x32),
                ..good.clone()
            },
            "version-v1",
        );
        tbs.version = Vec::new();
        tbs.extensions.clear();
        let c = self.write_cert(
            "version-v1",
            sign_tbs(&tbs.encode(), &g1.key, SHA256_RSA, SHA256_RSA),
        );
        self.case(
            &ctx,
            "version-v1",
            "a v1 certificate (no extensions, so no policy)",
            c,
            &[],
            Some("unsupported-version"),
            None,
        );
        let mut tbs = self.leaf_tbs(
            &g1,
            &card,
            &Leaf {
                serial: serial(0x33),
                ..good.clone()
            },
            "version-explicit-v1",
        );
        tbs.version = tlv(0xa0, &small_int(0));
        tbs.extensions.clear();
        let c = self.write_cert(
            "version-explicit-v1",
            sign_tbs(&tbs.encode(), &g1.key, SHA256_RSA, SHA256_RSA),
        );
        self.case(
            &ctx,
            "version-explicit-v1",
            "v1 written explicitly (a DEFAULT value encoded: BER)",
            c,
            &[],
            Some("non-canonical-der"),
            None,
        );
        let c = self.write_cert("garbage", b"\x30\x82\xff\xff not a certificate".to_vec());
        self.case(
            &ctx,
            "garbage",
            "a length far past the end",
            c,
            &[],
            Some("malformed"),
            None,
        );
        let crl_bytes = self.files.get(&crl_g1).cloned().unwrap_or_default();
        let c = self.write_cert("crl-as-certificate", crl_bytes);
        self.case(
            &ctx,
            "crl-as-certificate",
            "a CRL where a certificate belongs",
            c,
            &[],
            Some("malformed"),
            None,
        );
        let mut wrong_tag = good_der.clone();
        // The TBS SEQUENCE tag (after the 4-byte outer header) turned into a SET.
        wrong_tag[4] = 0x31;
        let c = self.write_cert("tbs-wrong-tag", wrong_tag);
        self.case(
            &ctx,
            "tbs-wrong-tag",
            "the TBSCertificate tagged SET instead of SEQUENCE",
            c,
            &[],
            Some("malformed"),
            None,
        );
        let mut long_len = good_der.clone();
        // The TBS length one larger than the content: runs into the algorithm identifier.
        if long_len.len() > 8 {
            long_len[7] = long_len[7].wrapping_add(1);
        }
        let c = self.write_cert("tbs-bad-length", long_len);
        self.case(
            &ctx,
            "tbs-bad-length",
            "the TBSCertificate length one too large",
            c,
            &[],
            Some("malformed"),
            None,
        );
    }

    fn leaf(&mut self, issuer: &Ca, key: &Key, leaf: &Leaf, case: &str) -> String {
        let tbs = self.leaf_tbs(issuer, key, leaf, case);
        let der = sign_tbs(&tbs.encode(), &issuer.key, leaf.alg, leaf.alg);
        self.write_cert(case, der)
    }

    /// The cases of a table, in order.
    fn leaf_cases(&mut self, cases: Vec<LeafCase<'_>>) {
        for c in cases {
            let cert = self.leaf(c.issuer, c.key, &c.leaf, c.name);
            self.case(
                c.ctx,
                c.name,
                c.description,
                cert,
                c.intermediates,
                c.reason,
                c.stricter,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn case(
        &mut self,
        ctx: &CaseContext,
        name: &str,
        description: &str,
        cert: String,
        intermediates: &[String],
        reason: Option<&str>,
        stricter: Option<&str>,
    ) {
        let expect = if reason.is_some() { "reject" } else { "accept" };
        let openssl = if stricter.is_some() { "accept" } else { expect };
        self.cases.push(Case {
            name: name.to_owned(),
            description: description.to_owned(),
            cert,
            anchors: ctx.anchors.clone(),
            intermediates: intermediates.to_vec(),
            crls: ctx
                .crls
                .iter()
                .cloned()
                .chain(intermediates.iter().map(|i| i.replace("ca/", "crl/")))
                .collect(),
            policies: vec![TEST_POLICY.to_owned()],
            at: rfc3339(ctx.at),
            expect: expect.to_owned(),
            reason: reason.map(str::to_owned),
            openssl: openssl.to_owned(),
            stricter_than_openssl: stricter.map(str::to_owned),
        });
    }
}

/// One end-entity case of the table in `build`: a card certificate made from `leaf` under
/// `issuer`, checked with `ctx` and these intermediates; `reason` is our rejection (none:
/// accepted), `stricter` why OpenSSL accepts what we reject.
#[derive(Clone)]
struct LeafCase<'a> {
    name: &'a str,
    description: &'a str,
    issuer: &'a Ca,
    key: &'a Key,
    leaf: Leaf,
    ctx: &'a CaseContext,
    intermediates: &'a [String],
    reason: Option<&'a str>,
    stricter: Option<&'a str>,
}

#[derive(Clone)]
struct CaseContext {
    anchors: Vec<String>,
    crls: Vec<String>,
    at: OffsetDateTime,
}

/// `Certificate ::= SEQUENCE { tbs, signatureAlgorithm, signature }`, signed with `sign_alg`
/// and labelled `outer_alg`.
fn sign_tbs(tbs: &[u8], key: &Key, sign_alg: &str, outer_alg: &str) -> Vec<u8> {
    let signature = key.sign(sign_alg, tbs);
    seq(&[tbs, &alg_id(outer_alg), &bits(&signature)])
}

/// The subject CN of a case's card: 23 upper-case letters and digits like a real card's
/// (jpki-card.md §6), `CORPUS` and 17 characters derived from the case name.
pub fn card_common_name(case: &str) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let digest = ring::digest::digest(&ring::digest::SHA256, case.as_bytes());
    let tail: String = digest.as_ref()[..17]
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    format!("CORPUS{tail}")
}

/// A card subject `C=JP, CN=<cn>`, the CN a PrintableString holding `cn`'s bytes as given (so
/// characters a PrintableString cannot hold, such as NUL, can be written).
pub fn card_subject(cn: &[u8]) -> Vec<u8> {
    let atv = |attr: &str, value: &[u8]| seq(&[&oid(&parse_oid(attr)), &tlv(0x13, value)]);
    seq(&[
        &der::set(&[&atv("2.5.4.6", b"JP")]),
        &der::set(&[&atv("2.5.4.3", cn)]),
    ])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The P-256 base point, uncompressed: a valid public key that needs no random generator.
const P256_GENERATOR: [u8; 65] = [
    0x04, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40,
    0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2,
    0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e,
    0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51,
    0xf5,
];

/// Generation 1 of the corpus's issuing CA (the same certificate as `ca/ca-g1.der`) and a CRL
/// it signs revoking `revoked` serials (raw magnitude bytes, reason keyCompromise): for tests
/// of CRL reloading and for the 500,000-entry CRL benchmark.
pub fn g1_with_crl(
    revoked: &[Vec<u8>],
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
) -> (Vec<u8>, Vec<u8>) {
    let mut g = Generator::new();
    let key = std::rc::Rc::new(Key::new("ca-g1", 2048));
    let y = |year: i32| {
        datetime!(2000-04-01 00:00:00 UTC)
            .replace_year(year)
            .unwrap_or(CHECK_AT)
    };
    let ca = g.ca(
        CaSpec {
            file: "ca-g1",
            rdns: &ISSUER_RDNS,
            key,
            serial: 2,
            from: y(2019),
            to: y(2029),
            ca: Some(None),
            key_usage: vec![KU_KEY_CERT_SIGN, KU_CRL_SIGN],
            any_policy: false,
        },
        None,
    );
    let entries: Vec<(Vec<u8>, u8)> = revoked.iter().map(|s| (s.clone(), 1)).collect();
    let crl = g.crl("g1", &ca, this_update, next_update, &entries);
    let ca_der = g.files.remove(&ca.file).unwrap_or_default();
    let crl_der = g.files.remove(&crl).unwrap_or_default();
    (ca_der, crl_der)
}

/// The serial number of the case certificates (`good-g1` is `case_serial(1)`).
pub fn case_serial(n: u8) -> Vec<u8> {
    vec![0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, n]
}

/// A card certificate built to order by [`g1_card`]: the good card of the corpus (issued by
/// generation 1, `ca/ca-g1.der`) with any of these changed, for unit tests of single profile
/// rules at their boundaries.
#[derive(Debug, Clone)]
pub struct CardSpec {
    /// The serial's INTEGER content octets, written as given (so zero, negative and
    /// over-long serials can be made).
    pub serial: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// The subject Name, DER ([`card_subject`] makes the profile's).
    pub subject: Vec<u8>,
    /// keyUsage bit numbers (`KU_*`); `None`: no keyUsage extension.
    pub key_usage: Option<Vec<u8>>,
    /// extendedKeyUsage purposes (dotted OIDs); `None`: no extension.
    pub eku: Option<Vec<&'static str>>,
    /// The card key's RSA public exponent (the profile's is 65537).
    pub rsa_exponent: u32,
}

impl Default for CardSpec {
    /// A card of the profile: valid 2025-04-01 to 2030-04-01, serial `case_serial(0x70)`.
    fn default() -> Self {
        CardSpec {
            serial: case_serial(0x70),
            not_before: datetime!(2025-04-01 00:00:00 UTC),
            not_after: datetime!(2030-04-01 00:00:00 UTC),
            subject: card_subject(card_common_name("card-spec").as_bytes()),
            key_usage: Some(vec![KU_DIGITAL_SIGNATURE]),
            eku: Some(vec![EKU_CLIENT_AUTH]),
            rsa_exponent: 65537,
        }
    }
}

/// The seeded key `label` with exponent `e`, generated once per process.
fn shared_key(label: &str, e: u32) -> std::sync::Arc<Key> {
    use std::sync::{Arc, Mutex, OnceLock};
    type Keys = Mutex<BTreeMap<(String, u32), Arc<Key>>>;
    static KEYS: OnceLock<Keys> = OnceLock::new();
    let keys = KEYS.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut keys = keys
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Arc::clone(
        keys.entry((label.to_owned(), e))
            .or_insert_with(|| Arc::new(Key::with_exponent(label, 2048, e))),
    )
}

/// The DER of a card certificate as `spec` describes, issued and signed by the corpus CA's
/// generation 1 (the CA of [`g1_with_crl`]), with the test policy.
pub fn g1_card(spec: &CardSpec) -> Vec<u8> {
    let g1 = shared_key("ca-g1", 65537);
    let card_label = if spec.rsa_exponent == 65537 {
        "card".to_owned()
    } else {
        format!("card-e{}", spec.rsa_exponent)
    };
    let card = shared_key(&card_label, spec.rsa_exponent);
    let issuer = Ca {
        name: name(&ISSUER_RDNS),
        key: std::rc::Rc::new((*g1).clone()),
        file: String::new(),
    };
    let leaf = Leaf {
        serial: vec![1],
        from: spec.not_before,
        to: spec.not_after,
        key_usage: spec.key_usage.clone(),
        eku: spec.eku.clone(),
        policy: Some(TEST_POLICY),
        extra: Vec::new(),
        basic_constraints_ca: false,
        alg: SHA256_RSA,
        authority_key_id: None,
    };
    let mut tbs = Generator::new().leaf_tbs(&issuer, &card, &leaf, "card-spec");
    tbs.serial = tlv(0x02, &spec.serial);
    tbs.subject = spec.subject.clone();
    sign_tbs(&tbs.encode(), &g1, SHA256_RSA, SHA256_RSA)
}
