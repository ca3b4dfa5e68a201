//! Builds worlds and checks them from the outside: byte-for-byte determinism (but for the
//! terminals' reader device keys, which ring draws from the system's generator), the certificate
//! and CRL profiles (parsed with x509-parser, signatures checked with ring), the store's card
//! links and records, and OpenSSL's verdicts as an independent check.

// Helpers outside `#[test]` functions fail loudly too; clippy's in-test allowance does not
// reach them.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use onshi_confirm_service::eligibility::{
    age_on, assess, assess_by_numbers, NumbersQuery, Validity,
};
use onshi_confirm_service::store::{CardKey, SqliteStore, Store, TerminalStatus as StoreStatus};
use onshi_testbed::manifest::{CardKind, TerminalStatus, WorldManifest};
use onshi_testbed::world::JST;
use onshi_testbed::{build_world, WorldOptions};
use onshi_virtual_card::profile::{CardProfile, CardState};
use ring::signature::{self, KeyPair};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::{parse_x509_certificate, parse_x509_crl};

const NOW: OffsetDateTime = datetime!(2025-11-24 00:00:00 UTC);
const POLICY: &str = "1.2.392.200149.8.5.1.0.30";

/// A fresh directory under cargo's per-target temporary folder (so the shared world, which no
/// test can remove while others may still read it, is cleaned by `cargo clean`).
fn temp_dir(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("testbed-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// One world with sixteen cards (all roles, every holder variant, the certificates in grace
/// and expiring and the two 医療扶助 recipients of the cycle), shared by the tests that only
/// read it.
fn world() -> &'static (PathBuf, WorldManifest) {
    static WORLD: OnceLock<(PathBuf, WorldManifest)> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = temp_dir("shared");
        let mut options = WorldOptions::new(&dir, NOW);
        options.cards = 16;
        options.persons = 40;
        options.seed = 7;
        let manifest = build_world(&options).expect("build the shared world");
        assert_eq!(WorldManifest::load(&dir).unwrap(), manifest);
        (dir, manifest)
    })
}

fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_owned();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[test]
fn same_seed_and_now_give_identical_bytes() {
    let (a, b, c) = (temp_dir("det-a"), temp_dir("det-b"), temp_dir("det-c"));
    for (dir, chunk, workers) in [(&a, 10_000, 0), (&b, 10_000, 1), (&c, 16, 1)] {
        let mut options = WorldOptions::new(dir, NOW);
        options.cards = 6;
        options.persons = 90;
        options.chunk_persons = chunk;
        options.workers = workers;
        build_world(&options).unwrap();
    }
    let (fa, fb, fc) = (files(&a), files(&b), files(&c));
    assert!(fa.len() > 25, "{:?}", fa.keys());
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    assert_eq!(fa.keys().collect::<Vec<_>>(), fc.keys().collect::<Vec<_>>());
    // Every file but the store and the device keys is byte-identical, whatever the number of
    // generator threads or the chunk size. The device keys (and so their public keys in the
    // store's terminals) are the one thing ring draws from the system's generator; another
    // chunk size also commits other transactions, which SQLite lays out differently. So the
    // stores are compared by content, terminals but their device keys included.
    let store = Path::new("store/onshi.sqlite");
    let device_key = |p: &Path| p.file_name().is_some_and(|n| n == "device-key.p8");
    assert_eq!(fa.keys().filter(|p| device_key(p)).count(), 6);
    for (path, bytes) in &fa {
        if path != store && !device_key(path) {
            assert!(&fb[path] == bytes, "{} differs", path.display());
            assert!(&fc[path] == bytes, "{} differs", path.display());
        }
    }
    let (sa, sb, sc) = (
        SqliteStore::open(&a.join(store)).unwrap(),
        SqliteStore::open(&b.join(store)).unwrap(),
        SqliteStore::open(&c.join(store)).unwrap(),
    );
    for other in [&sb, &sc] {
        for i in 0..90 {
            let id = onshi_testbed::population::person_id(i);
            assert!(sa.person(&id).unwrap().is_some());
            assert_eq!(sa.person(&id).unwrap(), other.person(&id).unwrap());
            assert_eq!(
                sa.qualifications(&id).unwrap(),
                other.qualifications(&id).unwrap()
            );
            assert_eq!(
                sa.medications(&id).unwrap(),
                other.medications(&id).unwrap()
            );
            assert_eq!(sa.checkups(&id).unwrap(), other.checkups(&id).unwrap());
            assert_eq!(sa.cards_of(&id).unwrap(), other.cards_of(&id).unwrap());
        }
        let without_keys = |s: &SqliteStore| {
            s.terminals()
                .unwrap()
                .into_iter()
                .map(|t| (t.institution_code, t.terminal_id, t.status))
                .collect::<Vec<_>>()
        };
        assert_eq!(without_keys(&sa), without_keys(other));
    }
    drop((sa, sb, sc));
    // No WAL left behind: the store is one file.
    assert!(fa.contains_key(store));
    assert!(!fa.keys().any(|p| p.to_string_lossy().ends_with("-wal")));
    for dir in [&a, &b, &c] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

fn pem_der(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text).unwrap().into_contents()
}

fn ca_der(dir: &Path) -> Vec<u8> {
    pem_der(&std::fs::read_to_string(dir.join("issuing-ca/ca.pem")).unwrap())
}

/// Verifies `signed` (a TBS) against `sig` with the RSA key of `issuer`.
fn rsa_verifies(issuer: &X509Certificate<'_>, signed: &[u8], sig: &[u8]) -> bool {
    let key = &issuer.public_key().subject_public_key.data;
    signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, key)
        .verify(signed, sig)
        .is_ok()
}

#[test]
fn issuing_ca_profile() {
    let (dir, _) = world();
    let der = ca_der(dir);
    let (rest, ca) = parse_x509_certificate(&der).unwrap();
    assert!(rest.is_empty());
    assert_eq!(ca.subject(), ca.issuer());
    let units: Vec<_> = ca
        .subject()
        .iter_organizational_unit()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(
        units,
        [
            "JPKI for user authentication",
            "Japan Agency for Local Authority Information Systems"
        ]
    );
    let bc = ca.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && bc.value.ca);
    let ku = ca.key_usage().unwrap().unwrap();
    assert!(ku.critical && ku.value.key_cert_sign() && ku.value.crl_sign());
    assert!(!ku.value.digital_signature());
    assert!(ca.extensions().iter().any(|e| matches!(
        e.parsed_extension(),
        ParsedExtension::SubjectKeyIdentifier(_)
    )));
    assert_eq!(
        ca.validity().not_before.to_datetime(),
        datetime!(2023-11-24 00:00:00 UTC)
    );
    assert_eq!(
        ca.validity().not_after.to_datetime(),
        datetime!(2033-11-24 00:00:00 UTC)
    );
    assert!(rsa_verifies(
        &ca,
        ca.tbs_certificate.as_ref(),
        &ca.signature_value.data
    ));
    assert_eq!(
        ca.public_key()
            .parsed()
            .map(|k| match k {
                x509_parser::public_key::PublicKey::RSA(rsa) => rsa.key_size(),
                _ => 0,
            })
            .unwrap(),
        2048
    );
}

fn card_certificate_der(dir: &Path, profile: &str) -> Vec<u8> {
    let p = CardProfile::load(&dir.join(profile)).unwrap();
    pem_der(&p.user_auth_certificate)
}

#[test]
fn card_certificates_follow_the_jpki_profile() {
    let (dir, manifest) = world();
    let ca_bytes = ca_der(dir);
    let (_, ca) = parse_x509_certificate(&ca_bytes).unwrap();
    let ca_ski = ca
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .unwrap();
    let mut serials = std::collections::HashSet::new();
    let mut common_names = std::collections::HashSet::new();
    assert_eq!(manifest.cards.len(), 16);
    assert_eq!(manifest.cards[7].kind, CardKind::FaceOnlyUnregistered);
    assert_eq!(manifest.cards[12].kind, CardKind::Grace);
    assert_eq!(manifest.cards[13].kind, CardKind::Expiring);
    // The cycle's 医療扶助 recipients hold ordinary valid cards.
    assert_eq!(manifest.cards[14].kind, CardKind::Valid);
    assert_eq!(manifest.cards[15].kind, CardKind::Valid);
    for card in &manifest.cards {
        let der = card_certificate_der(dir, &card.profile);
        assert_eq!(&der[..2], &[0x30, 0x82], "{}", card.name);
        let (rest, cert) = parse_x509_certificate(&der).unwrap();
        assert!(rest.is_empty());
        assert_eq!(cert.issuer(), ca.subject());
        assert!(rsa_verifies(
            &ca,
            cert.tbs_certificate.as_ref(),
            &cert.signature_value.data
        ));

        // Subject: C=JP and a 23-character CN, nothing else.
        let subject = cert.subject();
        assert_eq!(subject.iter().count(), 2, "{subject}");
        assert_eq!(
            subject.iter_country().next().unwrap().as_str().unwrap(),
            "JP"
        );
        let cn = subject.iter_common_name().next().unwrap().as_str().unwrap();
        assert_eq!(cn.len(), 23, "{cn}");
        assert!(common_names.insert(cn.to_owned()));

        // Serial: positive, unique, as in the manifest and the store key.
        let raw = cert.raw_serial();
        assert!(raw[0] < 0x80 && raw[0] != 0);
        assert_eq!(hex::encode(raw), card.serial);
        assert!(serials.insert(card.serial.clone()));
        assert_eq!(CardKey::from_der(&der).unwrap().serial, card.serial);

        let ku = cert.key_usage().unwrap().unwrap();
        assert!(ku.critical);
        assert_eq!(ku.value.flags, 1, "digitalSignature only");
        let eku = cert.extended_key_usage().unwrap().unwrap();
        assert!(eku.value.client_auth && !eku.value.server_auth && !eku.value.any);
        assert!(cert.basic_constraints().unwrap().is_none());

        let mut saw = (false, false, false, false);
        for ext in cert.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::CertificatePolicies(policies) => {
                    assert!(ext.critical, "certificatePolicies must be critical");
                    let oids: Vec<String> = policies
                        .iter()
                        .map(|p| p.policy_id.to_id_string())
                        .collect();
                    assert_eq!(oids, [POLICY]);
                    saw.0 = true;
                }
                ParsedExtension::CRLDistributionPoints(points) => {
                    assert!(!ext.critical);
                    assert_eq!(points.len(), 1);
                    match &points[0].distribution_point {
                        Some(DistributionPointName::FullName(names)) => match &names[..] {
                            [GeneralName::DirectoryName(name)] => {
                                assert!(name.to_string().contains("O=JPKI-TEST"), "{name}");
                            }
                            other => panic!("CRL DP names: {other:?}"),
                        },
                        other => panic!("CRL DP: {other:?}"),
                    }
                    saw.1 = true;
                }
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    assert_eq!(aki.key_identifier.as_ref().unwrap().0, &ca_ski[..]);
                    saw.2 = true;
                }
                ParsedExtension::SubjectKeyIdentifier(_) => saw.3 = true,
                ParsedExtension::KeyUsage(_) | ParsedExtension::ExtendedKeyUsage(_) => {}
                other => panic!("unexpected extension {other:?}"),
            }
        }
        assert_eq!(saw, (true, true, true, true), "{}", card.name);

        // Validity relative to now.
        let (nb, na) = (
            cert.validity().not_before.to_datetime(),
            cert.validity().not_after.to_datetime(),
        );
        match card.kind {
            CardKind::Expired => {
                // Past its eligibility grace period (at most ~122 days after expiry).
                assert_eq!(na, NOW - Duration::days(150));
                assert_eq!(nb, datetime!(2020-11-24 00:00:00 UTC));
            }
            CardKind::Grace => {
                assert_eq!(na, NOW - Duration::days(1));
                assert_eq!(nb, datetime!(2020-11-24 00:00:00 UTC));
            }
            CardKind::Expiring => {
                assert_eq!(na, NOW + Duration::days(30));
                assert_eq!(nb, datetime!(2020-11-24 00:00:00 UTC));
            }
            _ => {
                assert_eq!(nb, datetime!(2024-11-24 00:00:00 UTC));
                // The fifth birthday after issue, at the end of the day in Japan.
                assert!(na > NOW + Duration::days(3 * 365), "{na}");
                assert!(na < NOW + Duration::days(5 * 366), "{na}");
                let local = na.to_offset(JST);
                assert_eq!((local.hour(), local.minute(), local.second()), (23, 59, 59));
            }
        }

        // The profile: loads, PIN shape, fresh state, and its key matches the certificate.
        let path = dir.join(&card.profile);
        let profile = CardProfile::load(&path).unwrap();
        assert_eq!(profile.user_auth_pin, card.pin);
        assert_eq!(profile.name, card.name);
        assert!(!CardProfile::state_path(&path).exists());
        assert_eq!(
            CardState::load(&CardProfile::state_path(&path)).unwrap(),
            CardState::default()
        );
        assert_eq!(pem_der(&profile.user_auth_ca_certificate), ca_bytes);
        let key =
            signature::RsaKeyPair::from_pkcs8(&pem_der(&profile.user_auth_private_key)).unwrap();
        assert_eq!(
            key.public_key().as_ref(),
            &cert.public_key().subject_public_key.data[..]
        );
    }
    assert_eq!(manifest.cards[0].pin, "1234");
}

#[test]
fn crl_lists_the_revoked_card_and_verifies() {
    let (dir, manifest) = world();
    let ca_bytes = ca_der(dir);
    let (_, ca) = parse_x509_certificate(&ca_bytes).unwrap();
    let crl_der = std::fs::read(dir.join("issuing-ca/crl.der")).unwrap();
    let crl_pem = std::fs::read_to_string(dir.join("issuing-ca/crl.pem")).unwrap();
    assert_eq!(pem_der(&crl_pem), crl_der);
    let (rest, crl) = parse_x509_crl(&crl_der).unwrap();
    assert!(rest.is_empty());
    assert_eq!(crl.issuer(), ca.subject());
    assert_eq!(crl.last_update().to_datetime(), NOW);
    assert_eq!(
        crl.next_update().unwrap().to_datetime(),
        NOW + Duration::days(7)
    );
    assert!(crl.crl_number().is_some());
    assert!(crl.extensions().iter().any(|e| matches!(
        e.parsed_extension(),
        ParsedExtension::AuthorityKeyIdentifier(_)
    )));
    assert!(rsa_verifies(
        &ca,
        crl.tbs_cert_list.as_ref(),
        &crl.signature_value.data
    ));

    let revoked: Vec<_> = crl.iter_revoked_certificates().collect();
    let expected: Vec<_> = manifest
        .cards
        .iter()
        .filter(|c| c.kind == CardKind::Revoked)
        .collect();
    assert_eq!(revoked.len(), expected.len());
    assert_eq!(expected.len(), 1);
    assert_eq!(hex::encode(revoked[0].raw_serial()), expected[0].serial);
    assert_eq!(
        revoked[0].reason_code().map(|(_, r)| r),
        Some(x509_parser::x509::ReasonCode::KeyCompromise)
    );
    assert!(revoked[0].revocation_date.to_datetime() < NOW);
}

#[test]
fn store_links_cards_to_the_right_people() {
    let (dir, manifest) = world();
    let store = SqliteStore::open(&dir.join("store/onshi.sqlite")).unwrap();
    let today = NOW.to_offset(JST).date();
    for card in &manifest.cards {
        let der = card_certificate_der(dir, &card.profile);
        let key = CardKey::from_der(&der).unwrap();
        assert_eq!(
            store.person_for_card(&key).unwrap().as_deref(),
            Some(card.person_id.as_str()),
            "{}",
            card.name
        );
        let person = store.person(&card.person_id).unwrap().unwrap();
        assert_eq!(
            person.registered_for_insurance,
            !matches!(
                card.kind,
                CardKind::Unregistered | CardKind::FaceOnlyUnregistered
            ),
            "{}",
            card.name
        );
        let records = store.qualifications(&card.person_id).unwrap();
        let validity = assess(&records, today).validity;
        let expected = match card.kind {
            CardKind::Lost => Validity::Invalid,
            CardKind::Multiple => Validity::Multiple,
            _ => Validity::Valid,
        };
        assert_eq!(validity, expected, "{}: {records:?}", card.name);
        if card.kind == CardKind::Lost {
            assert_eq!(records[0].loss_reason.as_deref(), Some("03"));
        }
    }

    // The holder variants of cards 9 to 12 (cards 7 and 8 are the face-only cards).
    let first = |i: usize| {
        let records = store.qualifications(&manifest.cards[i].person_id).unwrap();
        assert_eq!(records.len(), 1);
        records.into_iter().next().unwrap()
    };
    let standard = first(0);
    assert_eq!(standard.insurer_number.houbetsu(), Some("01"));
    assert_eq!(
        (standard.personal_family, standard.copay_ratio.as_str()),
        (1, "030")
    );
    assert!(standard.high_cost_limit.is_some());
    let koki = first(8);
    assert!(koki.insurer_number.is_koki() && koki.symbol.is_none() && koki.branch.is_none());
    assert_eq!(koki.copay_ratio, "010");
    let child = first(9);
    assert!(child.preschool);
    assert_eq!(child.copay_ratio, "020");
    let elderly = first(10);
    let elderly_person = store
        .person(&manifest.cards[10].person_id)
        .unwrap()
        .unwrap();
    assert!((70..75).contains(&age_on(elderly_person.birth_date, today)));
    assert_eq!(elderly.elderly.as_ref().unwrap().copay_ratio, "020");
    assert!(matches!(
        elderly.insurer_number.houbetsu(),
        Some("31" | "32" | "33" | "34")
    ));
    let kokuho = first(11);
    assert_eq!(kokuho.insurer_number.as_str().len(), 6);
    assert_eq!(kokuho.specific_diseases.len(), 1);

    // Persons without cards are in the store too.
    assert!(store.person("P000000040").unwrap().is_some());
    assert!(store.person("P000000041").unwrap().is_none());

    for t in &manifest.terminals {
        let stored = store.terminal(&t.institution_code, &t.terminal_id).unwrap();
        match t.status {
            TerminalStatus::InOperation => {
                assert_eq!(stored.unwrap().status, StoreStatus::InOperation)
            }
            TerminalStatus::Suspended => assert_eq!(stored.unwrap().status, StoreStatus::Suspended),
            TerminalStatus::Unregistered => assert!(stored.is_none()),
            // The rogue impersonates a registered terminal; its certificate is what fails.
            TerminalStatus::Untrusted => assert!(stored.is_some()),
        }
    }
}

#[test]
fn terminals_and_configs() {
    let (dir, manifest) = world();
    let statuses: Vec<_> = manifest
        .terminals
        .iter()
        .map(|t| t.status.as_str())
        .collect();
    assert_eq!(
        statuses,
        [
            "in-operation",
            "in-operation",
            "in-operation",
            "suspended",
            "unregistered",
            "untrusted"
        ]
    );
    let network_ca = pem_der(&std::fs::read_to_string(dir.join("network-ca/ca.pem")).unwrap());
    let (_, network_ca) = parse_x509_certificate(&network_ca).unwrap();
    for t in &manifest.terminals {
        assert_eq!(t.name, format!("{}-{}", t.institution_code, t.terminal_id));
        onshi_confirm_service::eligibility::InstitutionCode::parse(&t.institution_code).unwrap();
        let tdir = dir.join(&t.dir);
        let agent = std::fs::read_to_string(tdir.join("agent.toml")).unwrap();
        assert!(agent.contains(&format!("terminal_name = \"{}\"", t.name)));
        assert!(agent.contains("ca = \"../../network-ca/ca.pem\""));
        assert!(tdir.join("../../network-ca/ca.pem").exists());
        let der = pem_der(&std::fs::read_to_string(tdir.join("client.pem")).unwrap());
        let (_, cert) = parse_x509_certificate(&der).unwrap();
        let subject = cert.subject();
        assert_eq!(
            subject
                .iter_organizational_unit()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            t.institution_code
        );
        assert_eq!(
            subject.iter_common_name().next().unwrap().as_str().unwrap(),
            t.terminal_id
        );
        assert!(
            cert.extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .client_auth
        );
        let trusted = rsa_verifies(
            &network_ca,
            cert.tbs_certificate.as_ref(),
            &cert.signature_value.data,
        );
        assert_eq!(trusted, t.status != TerminalStatus::Untrusted, "{}", t.dir);
    }
    let pharmacy = &manifest.terminals[0].institution_code;
    assert_eq!(&pharmacy[2..3], "4", "a pharmacy");

    // Every terminal folder holds its reader's device key, which agent.toml names; the store
    // holds the public key of each terminal it knows, and a signature by the file's key
    // verifies with it.
    let store = SqliteStore::open(&dir.join("store/onshi.sqlite")).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let mut public_keys = Vec::new();
    for t in &manifest.terminals {
        let tdir = dir.join(&t.dir);
        let path = tdir.join("device-key.p8");
        let agent = std::fs::read_to_string(tdir.join("agent.toml")).unwrap();
        assert!(
            agent.contains("device_key = \"device-key.p8\""),
            "{}: {agent}",
            t.dir
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        }
        let pkcs8 = std::fs::read(&path).unwrap();
        let pair = signature::EcdsaKeyPair::from_pkcs8(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &pkcs8,
            &rng,
        )
        .unwrap();
        public_keys.push(pair.public_key().as_ref().to_vec());
        let stored = store.terminal(&t.institution_code, &t.terminal_id).unwrap();
        match t.status {
            TerminalStatus::InOperation | TerminalStatus::Suspended => {
                let stored = stored.unwrap().device_public_key.unwrap();
                assert_eq!(stored.len(), 65);
                let sig = pair.sign(&rng, b"attested binding").unwrap();
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, &stored)
                    .verify(b"attested binding", sig.as_ref())
                    .unwrap();
            }
            TerminalStatus::Unregistered => assert_eq!(stored, None, "{}", t.dir),
            // The rogue shares its name with the pharmacy's T01, whose key is T01's own.
            TerminalStatus::Untrusted => {
                let stored = stored.unwrap().device_public_key.unwrap();
                assert_ne!(&stored, public_keys.last().unwrap());
            }
        }
    }
    public_keys.sort();
    public_keys.dedup();
    assert_eq!(public_keys.len(), manifest.terminals.len(), "distinct keys");

    let server = pem_der(&std::fs::read_to_string(dir.join("service/server.pem")).unwrap());
    let (_, server) = parse_x509_certificate(&server).unwrap();
    assert!(
        server
            .extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .server_auth
    );
    let sans = server.subject_alternative_name().unwrap().unwrap();
    let names: Vec<String> = sans
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");

    let service = std::fs::read_to_string(dir.join("service.toml")).unwrap();
    for path in [
        "store/onshi.sqlite",
        "service/server.pem",
        "service/server.key.pem",
        "network-ca/ca.pem",
        "issuing-ca/ca.pem",
        "issuing-ca/crl.der",
    ] {
        assert!(service.contains(&format!("\"{path}\"")), "{path}");
        assert!(dir.join(path).exists(), "{path}");
    }
}

/// OpenSSL must be there: `scripts/setup.sh` installs it, and a cross-check that quietly
/// passes without it would check nothing.
fn require_openssl() {
    match Command::new("openssl").arg("version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "`openssl version` failed ({}); scripts/setup.sh installs OpenSSL",
            o.status
        ),
        Err(e) => panic!("openssl cannot be run ({e}); scripts/setup.sh installs OpenSSL"),
    }
}

/// OpenSSL, an independent implementation, agrees: valid cards verify against the CA and CRL,
/// the revoked one is reported revoked, the expired one expired.
#[test]
fn openssl_agrees() {
    require_openssl();
    let (dir, manifest) = world();
    let work = temp_dir("openssl");
    std::fs::create_dir_all(&work).unwrap();
    let at = NOW.unix_timestamp().to_string();
    for card in &manifest.cards {
        let profile = CardProfile::load(&dir.join(&card.profile)).unwrap();
        let pem_path = work.join(format!("{}.pem", card.name));
        std::fs::write(&pem_path, &profile.user_auth_certificate).unwrap();
        let out = Command::new("openssl")
            .args(["verify", "-attime", &at, "-crl_check", "-CAfile"])
            .arg(dir.join("issuing-ca/ca.pem"))
            .arg("-CRLfile")
            .arg(dir.join("issuing-ca/crl.pem"))
            .arg(&pem_path)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        match card.kind {
            CardKind::Revoked => {
                assert!(
                    !out.status.success() && text.contains("certificate revoked"),
                    "{text}"
                )
            }
            // OpenSSL judges the certificate alone: the grace period is an eligibility rule.
            CardKind::Expired | CardKind::Grace => {
                assert!(
                    !out.status.success() && text.contains("certificate has expired"),
                    "{text}"
                )
            }
            _ => assert!(
                out.status.success() && text.contains(": OK"),
                "{}: {text}",
                card.name
            ),
        }
    }
    // The CRL's signature, by OpenSSL.
    let out = Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-in"])
        .arg(dir.join("issuing-ca/crl.der"))
        .arg("-CAfile")
        .arg(dir.join("issuing-ca/ca.pem"))
        .output()
        .unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stderr).contains("verify OK"));

    // Terminal certificates chain to the network CA (the rogue's does not); the server
    // certificate is good for localhost.
    for t in &manifest.terminals {
        let out = Command::new("openssl")
            .args(["verify", "-attime", &at, "-purpose", "sslclient", "-CAfile"])
            .arg(dir.join("network-ca/ca.pem"))
            .arg(dir.join(&t.dir).join("client.pem"))
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            t.status != TerminalStatus::Untrusted,
            "{}",
            t.dir
        );
    }
    let out = Command::new("openssl")
        .args([
            "verify",
            "-attime",
            &at,
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "localhost",
            "-CAfile",
        ])
        .arg(dir.join("network-ca/ca.pem"))
        .arg(dir.join("service/server.pem"))
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::remove_dir_all(&work).unwrap();
}

#[test]
fn cli_refuses_a_non_empty_directory_and_explains_itself() {
    let dir = temp_dir("cli");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), b"mine").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["build", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read(dir.join("keep.txt")).unwrap(), b"mine");

    let out = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["build", "--cards", "5", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());

    let out = Command::new(env!("CARGO_BIN_EXE_testbed"))
        .args(["build", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "--out",
        "--seed",
        "--now",
        "--cards",
        "--persons",
        "--force",
        "world.json",
    ] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every card carries the whole card: a signature certificate from the signature CA whose key
/// is the profile's, the Kenhojo facts of the very person the store links the card to (with a
/// valid My Number), and Kenkaku keys derived from that person's birth date.
#[test]
fn cards_hold_the_whole_card_consistent_with_their_holder() {
    use onshi_virtual_card::contents::{is_valid_my_number, CardContents};
    let (dir, manifest) = world();
    let store = SqliteStore::open(&dir.join("store/onshi.sqlite")).unwrap();
    let sig_ca = std::fs::read_to_string(dir.join("issuing-ca/signature-ca.pem")).unwrap();
    let mut numbers = std::collections::BTreeSet::new();
    for card in &manifest.cards {
        let profile = CardProfile::load(&dir.join(&card.profile)).unwrap();
        // The card builds: keys match certificates, every field has its shape.
        CardContents::from_profile(&profile).unwrap();
        let person = store.person(&card.person_id).unwrap().unwrap();
        if matches!(
            card.kind,
            CardKind::FaceOnly | CardKind::FaceOnlyUnregistered
        ) {
            // Issued without PINs and without the signature half; everything else as usual.
            // The second one's holder is not registered: it registers without a PIN.
            let (name, registered) = if card.kind == CardKind::FaceOnly {
                ("card-0007", true)
            } else {
                ("card-0008", false)
            };
            assert_eq!(card.name, name);
            assert!(profile.face_only && profile.user_auth_pin.is_empty());
            assert!(card.pin.is_empty() && card.sign_password.is_none());
            assert!(profile.signature.is_none());
            assert_eq!(person.registered_for_insurance, registered);
        } else {
            assert!(!profile.face_only);
            assert_eq!(profile.user_auth_pin.len(), 4);
        }
        if let Some(sig) = profile.signature.as_ref() {
            assert_eq!(sig.ca_certificate, sig_ca);
            assert_eq!(card.sign_password.as_deref(), Some(sig.password.as_str()));
            let sig_der = pem::parse(&sig.certificate).unwrap().into_contents();
            let (_, sig_cert) = parse_x509_certificate(&sig_der).unwrap();
            assert!(sig_cert
                .issuer()
                .to_string()
                .contains("JPKI for digital signature"));
        } else {
            assert!(
                matches!(
                    card.kind,
                    CardKind::FaceOnly | CardKind::FaceOnlyUnregistered
                ),
                "{}",
                card.name
            );
        }
        let k = profile.kenhojo.as_ref().unwrap();
        assert!(is_valid_my_number(&k.my_number), "{}", k.my_number);
        assert!(numbers.insert(k.my_number.clone()), "duplicate My Number");
        assert_eq!(card.my_number.as_deref(), Some(k.my_number.as_str()));
        assert_eq!(k.name, person.name);
        assert_eq!(k.address, person.address);
        let b = person.birth_date;
        assert_eq!(
            k.birth_date,
            format!("{:04}{:02}{:02}", b.year(), u8::from(b.month()), b.day())
        );
        assert_eq!(
            k.sex,
            if person.sex == 3 {
                "9".to_string()
            } else {
                person.sex.to_string()
            }
        );
        let kk = profile.kenkaku.as_ref().unwrap();
        assert_eq!(kk.birth_date_key.len(), 6);
        assert!(kk.number_b.starts_with(&kk.birth_date_key));
        assert_eq!(card.number_b.as_deref(), Some(kk.number_b.as_str()));
        // The photo is a JPEG 2000 JP2 file; the card face agrees with Kenhojo.
        assert!(hex::decode(&kk.face_photo)
            .unwrap()
            .starts_with(&onshi_virtual_card::surface::JP2_SIGNATURE));
        assert_eq!(kk.birth_date, k.birth_date);
        assert_eq!(kk.sex, k.sex);
        assert_eq!(kk.expiry_date.len(), 8);
        assert!(kk.expiry_date.starts_with(&kk.number_b[6..10]));
        assert_eq!(hex::decode(&kk.signature).unwrap().len(), 256);
        assert!(kk.simulator_face_export);
        // And the virtual card accepts the profile.
        onshi_virtual_card::CardContents::from_profile(&profile).unwrap();
    }
}

/// Every example of world.json reproduces against the store: the card-less query finds the
/// person (nobody for validity 4) and answers the example's validity; the clinical examples
/// have their data; card examples name the card of that person.
#[test]
fn the_examples_reproduce_against_the_store() {
    let (dir, manifest) = world();
    let store = SqliteStore::open(&dir.join("store/onshi.sqlite")).unwrap();
    let today = NOW.to_offset(JST).date();
    let cases: Vec<&str> = manifest.examples.iter().map(|e| e.case.as_str()).collect();
    let expected: Vec<&str> = onshi_testbed::population::CASES
        .iter()
        .chain(&onshi_testbed::population::CARD_CASES)
        .chain(&onshi_testbed::phones::PHONE_CASES)
        .copied()
        .collect();
    assert_eq!(cases, expected);
    for e in &manifest.examples {
        assert!(
            !e.description.contains("  "),
            "a lost line continuation: {:?}",
            e.description
        );
        if let (Some(pen), Some(rn)) = (&e.public_expense_number, &e.recipient_number) {
            // 医療扶助: asked by the public-expense numbers; 1 with a registered ticket of the
            // month, else 6.
            let query = onshi_confirm_service::medical_aid::query(pen, rn, &e.birth_date).unwrap();
            let ids = store.persons_by_numbers(&query).unwrap();
            assert_eq!(ids, std::slice::from_ref(&e.person_id), "{e:?}");
            let records = store.qualifications(&e.person_id).unwrap();
            assert_eq!(
                assess_by_numbers(&records, &query, today).validity.code(),
                1,
                "{e:?}"
            );
            let tickets = store.medical_tickets(&e.person_id).unwrap();
            let answer = onshi_confirm_service::medical_aid::tickets_for(&tickets, today, today);
            assert_eq!(if answer.unregistered { 6 } else { 1 }, e.validity, "{e:?}");
            continue;
        }
        let query = NumbersQuery::parse(
            &e.insurer_number,
            e.symbol.as_deref().unwrap_or(""),
            &e.number,
            e.branch.as_deref().unwrap_or(""),
            &e.birth_date,
        )
        .unwrap();
        let ids = store.persons_by_numbers(&query).unwrap();
        let records = store.qualifications(&e.person_id).unwrap();
        if e.validity == 4 {
            assert!(ids.is_empty(), "{e:?}");
            assert!(records.is_empty(), "{e:?}");
        } else {
            assert_eq!(ids, std::slice::from_ref(&e.person_id), "{e:?}");
            let day = e.as_of_date.as_deref().map_or(today, |d| {
                onshi_confirm_service::eligibility::parse_yyyymmdd("as-of", d).unwrap()
            });
            let validity = assess_by_numbers(&records, &query, day).validity;
            assert_eq!(validity.code(), e.validity, "{e:?}");
        }
        if let Some(card) = &e.card {
            let entry = manifest.cards.iter().find(|c| &c.name == card).unwrap();
            assert_eq!(entry.person_id, e.person_id);
            match e.case.as_str() {
                "certificate-in-grace" => assert_eq!(entry.kind, CardKind::Grace),
                "certificate-expiring" => assert_eq!(entry.kind, CardKind::Expiring),
                _ => {}
            }
        }
        match e.case.as_str() {
            "medication-history" => assert!(!store.medications(&e.person_id).unwrap().is_empty()),
            "checkup-results" => assert!(!store.checkups(&e.person_id).unwrap().is_empty()),
            "not-registered" | "face-only-registration" => {
                assert!(
                    !store
                        .person(&e.person_id)
                        .unwrap()
                        .unwrap()
                        .registered_for_insurance
                )
            }
            "comprehensive-consent" => {
                assert!(!store.medications(&e.person_id).unwrap().is_empty());
                assert!(!store.checkups(&e.person_id).unwrap().is_empty());
            }
            _ => {}
        }
        // A smartphone example names a valid phone of its person, of the case's platform,
        // whose certificate the store links to that person.
        if let Some(name) = &e.phone {
            let phone = manifest.phones.iter().find(|p| &p.name == name).unwrap();
            assert_eq!(phone.person_id, e.person_id);
            assert_eq!(phone.kind, "valid");
            assert_eq!(format!("smartphone-{}", phone.platform), e.case);
            let pem = std::fs::read_to_string(dir.join(format!("phones/{name}.pem"))).unwrap();
            let der = pem::parse(pem).unwrap().into_contents();
            let key = onshi_confirm_service::store::CardKey::from_der(&der).unwrap();
            assert_eq!(
                store.person_for_card(&key).unwrap().as_deref(),
                Some(e.person_id.as_str())
            );
        }
        let kind = |name: &str| manifest.cards.iter().find(|c| c.name == name).unwrap().kind;
        match e.case.as_str() {
            "face-only-card" => assert_eq!(kind(e.card.as_ref().unwrap()), CardKind::FaceOnly),
            "face-only-registration" => assert_eq!(
                kind(e.card.as_ref().unwrap()),
                CardKind::FaceOnlyUnregistered
            ),
            "comprehensive-consent" | "prescription-choice" => {
                assert_eq!(kind(e.card.as_ref().unwrap()), CardKind::Valid)
            }
            "certificate-past-grace" => {
                assert_eq!(kind(e.card.as_ref().unwrap()), CardKind::Expired)
            }
            _ => {}
        }
    }
    // 導入医療機関リスト: the world.json registry says what the store lists.
    let listed: Vec<(String, String, String, u32)> = store
        .institutions_in_operation()
        .unwrap()
        .into_iter()
        .map(|l| {
            let i = onshi_confirm_service::institutions::to_proto(&l);
            (
                i.institution_code,
                i.name,
                i.started_on,
                i.terminals_in_operation,
            )
        })
        .collect();
    let mut expected: Vec<(String, String, String, u32)> = manifest
        .institutions
        .iter()
        .filter(|i| i.listed)
        .map(|i| {
            let in_operation = manifest
                .terminals
                .iter()
                .filter(|t| {
                    t.institution_code == i.institution_code
                        && t.status == TerminalStatus::InOperation
                        && t.dir != "terminals/rogue"
                })
                .count() as u32;
            (
                i.institution_code.clone(),
                i.name.clone(),
                i.started_on.clone(),
                in_operation,
            )
        })
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(listed.len(), 2, "the pharmacy and the clinic");
    assert_eq!(
        listed[1].3, 2,
        "the pharmacy's suspended T09 is not counted"
    );
    assert!(listed[0].0 < listed[1].0, "by institution code");
    assert!(
        manifest.institutions.iter().any(|i| !i.listed),
        "the dental clinic, registered without a terminal, is not listed"
    );
    // The card lookup never says 3; the example's person is valid by card.
    let changed = manifest.example("validity-3").unwrap();
    let records = store.qualifications(&changed.person_id).unwrap();
    assert_eq!(assess(&records, today).validity, Validity::Valid);
}
