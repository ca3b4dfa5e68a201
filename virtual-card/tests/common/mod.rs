//! Shared by the integration tests: one seeded RSA-2048 key, a real certificate for it issued
//! by a test CA, and card profiles on disk.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use onshi_jpki::Pin;
use onshi_virtual_card::profile::{CardProfile, PROFILE_FORMAT};
use onshi_virtual_card::{no_persistence, CardContents, CardState, VirtualCard};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rcgen::{CertificateParams, DistinguishedName, DnType, Issuer, KeyPair, PKCS_RSA_SHA256};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use rsa::RsaPrivateKey;

/// The PIN of test cards (not 1234, so a leak cannot hide among common bytes).
pub const PIN: &str = "4729";
/// The PIN's bytes as a trace would show them if it leaked.
pub const PIN_HEX: &str = "34 37 32 39";

/// A card's identity for tests: key, certificate and CA, DER and PEM.
pub struct Identity {
    pub key: RsaPrivateKey,
    pub key_pem: String,
    pub certificate_der: Vec<u8>,
    pub certificate_pem: String,
    pub ca_der: Vec<u8>,
    pub ca_pem: String,
}

/// Built once per test binary: RSA key generation is slow.
pub fn identity() -> &'static Identity {
    static IDENTITY: OnceLock<Identity> = OnceLock::new();
    IDENTITY.get_or_init(|| {
        let mut rng = ChaCha20Rng::seed_from_u64(0x0457_4A50_4B49);
        let key = RsaPrivateKey::new(&mut rng, 2048).expect("RSA key generation");
        let key_pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let card_key = KeyPair::from_pkcs8_pem_and_sign_algo(&key_pem, &PKCS_RSA_SHA256).unwrap();

        // The CA key need not be RSA for these tests; ECDSA is instant.
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut ca_dn = DistinguishedName::new();
        ca_dn.push(DnType::CountryName, "JP");
        ca_dn.push(DnType::OrganizationName, "JPKI-TEST");
        ca_dn.push(
            DnType::OrganizationalUnitName,
            "JPKI for user authentication",
        );
        ca_params.distinguished_name = ca_dn;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CountryName, "JP");
        dn.push(DnType::CommonName, "TESTCARD000000000000001");
        params.distinguished_name = dn;
        let cert = params
            .signed_by(&card_key, &Issuer::new(ca_params, &ca_key))
            .unwrap();
        Identity {
            key,
            key_pem,
            certificate_der: cert.der().to_vec(),
            certificate_pem: cert.pem(),
            ca_der: ca.der().to_vec(),
            ca_pem: ca.pem(),
        }
    })
}

pub fn profile(name: &str) -> CardProfile {
    let id = identity();
    CardProfile {
        format: PROFILE_FORMAT.into(),
        name: name.into(),
        atr: "3BE000FF8131FE4514".into(),
        user_auth_pin: PIN.into(),
        user_auth_certificate: id.certificate_pem.clone(),
        user_auth_ca_certificate: id.ca_pem.clone(),
        user_auth_private_key: id.key_pem.clone(),
        signature: None,
        kenhojo: None,
        kenkaku: None,
        face_only: false,
        faults: Vec::new(),
    }
}

/// A fresh card built from the test profile, counter not persisted.
pub fn card(state: CardState) -> VirtualCard {
    let contents = CardContents::from_profile(&profile("card-test")).unwrap();
    VirtualCard::new(contents, state, no_persistence()).unwrap()
}

/// Contents without the profile checks, for cards the profile format cannot describe.
pub fn raw_contents(certificate: Vec<u8>) -> CardContents {
    let id = identity();
    CardContents {
        name: "card-raw".into(),
        atr: vec![0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14],
        user_auth_certificate: certificate,
        user_auth_ca_certificate: id.ca_der.clone(),
        user_auth_key: id.key.clone(),
        user_auth_pin: Some(Pin::new(PIN).unwrap()),
        signature: None,
        kenhojo: None,
        kenkaku: None,
    }
}

/// A new empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "onshi-vc-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
