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
//! This file holds the encoders (keys, extensions, TBS, CA, CRL and card certificates) and the
//! public entry points; the catalogue of cases is in `cases/`, one module per family, each case
//! a row of a table with the reason it exists.

mod cases;
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
