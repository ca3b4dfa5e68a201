//! The jpki host flows against the virtual card state machine, in process: both phases of a
//! PIN-mode confirmation, the PIN counter, every read pattern, and building cards from
//! profiles.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::fmt;
use std::sync::{Arc, Mutex};

use common::{identity, profile, raw_contents, temp_dir, PIN};
use onshi_jpki::constants::{sha256_digest_info, EF_USER_AUTH_CERT};
use onshi_jpki::flows::{self, FlowError, PinStatus, ReadPattern};
use onshi_jpki::{commands, CardChannel, CommandApdu, Pin, ResponseApdu};
use onshi_virtual_card::contents::summarize_certificate;
use onshi_virtual_card::{
    CardBuildError, CardContents, CardProfile, CardState, PersistHook, VirtualCard,
};
use rsa::sha2::{Digest, Sha256};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

#[derive(Debug)]
struct BadResponse;

impl fmt::Display for BadResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the card answered fewer than 2 bytes")
    }
}

impl std::error::Error for BadResponse {}

/// The card in the same process, with a trace of what was sent as a log would show it.
struct Direct<'a> {
    card: &'a mut VirtualCard,
    trace: Vec<String>,
}

impl<'a> Direct<'a> {
    fn new(card: &'a mut VirtualCard) -> Self {
        card.reset();
        Self {
            card,
            trace: Vec::new(),
        }
    }
}

impl CardChannel for Direct<'_> {
    type Error = BadResponse;

    fn transmit(&mut self, command: &CommandApdu) -> Result<ResponseApdu, BadResponse> {
        self.trace.push(command.to_string());
        let answer = self.card.process(&command.to_bytes());
        ResponseApdu::parse(&answer).map_err(|_| BadResponse)
    }
}

fn pin() -> Pin {
    Pin::new(PIN).unwrap()
}

fn wrong_pin() -> Pin {
    Pin::new("0000").unwrap()
}

/// A binding-style message and its DigestInfo.
fn binding() -> (Vec<u8>, [u8; 51]) {
    let mut message = b"onshi/v1\x01".to_vec();
    message.extend_from_slice(&[0x11; 32]);
    message.push(14);
    message.extend_from_slice(b"0110113719-T01");
    message.extend_from_slice(&Sha256::digest(&identity().certificate_der));
    message.push(0x09);
    let digest_info = sha256_digest_info(&Sha256::digest(&message).into());
    (message, digest_info)
}

/// The public key as the service would take it: from the certificate.
fn certificate_public_key(der: &[u8]) -> RsaPublicKey {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    match cert.public_key().parsed().unwrap() {
        PublicKey::RSA(k) => RsaPublicKey::new(
            BigUint::from_bytes_be(k.modulus),
            BigUint::from_bytes_be(k.exponent),
        )
        .unwrap(),
        other => panic!("not RSA: {other:?}"),
    }
}

/// The canonical phase A trace for a certificate of `total` bytes.
fn expected_phase_a(total: usize) -> Vec<String> {
    let mut lines = vec![
        "00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01".to_string(),
        "00 A4 02 0C 02 00 0A".into(),
        "00 B0 00 00 04".into(),
    ];
    let mut offset = 4;
    while offset < total {
        let want = 256.min(total - offset);
        lines.push(format!(
            "00 B0 {:02X} {:02X} {:02X}",
            offset >> 8,
            offset & 0xFF,
            want & 0xFF
        ));
        offset += want;
    }
    lines.push("00 A4 02 0C 02 00 18".into());
    lines.push("00 20 00 80".into());
    lines
}

#[test]
fn pin_mode_confirmation_both_phases() {
    let id = identity();
    let mut card = common::card(CardState::default());
    let mut ch = Direct::new(&mut card);

    let reading = flows::read_phase(&mut ch).unwrap();
    assert_eq!(reading.certificate, id.certificate_der);
    assert_eq!(reading.pin_status, PinStatus::TriesLeft(3));
    assert_eq!(ch.trace, expected_phase_a(id.certificate_der.len()));

    ch.trace.clear();
    let (message, digest_info) = binding();
    let signature = flows::authenticate_phase(&mut ch, &pin(), &digest_info).unwrap();
    assert_eq!(signature.len(), 256);
    assert_eq!(
        ch.trace[..4],
        [
            "00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01",
            "00 A4 02 0C 02 00 18",
            "00 20 00 80 04 <redacted 4 bytes>",
            "00 A4 02 0C 02 00 17",
        ]
    );
    assert!(ch.trace[4].starts_with("80 2A 00 80 33 30 31 30 0D 06 09 60 86 48 01 65"));
    assert!(ch.trace.iter().all(|l| !l.contains(common::PIN_HEX)));

    // What the service does: RSASSA-PKCS1-v1_5 SHA-256 over the binding, with the key taken
    // from the certificate the card served.
    certificate_public_key(&reading.certificate)
        .verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(&message),
            &signature,
        )
        .unwrap();

    // Still verified in this session, yet the retry counter answers 63C3, not 9000: OpenSC
    // refuses a card whose empty VERIFY answers anything but 63xx.
    assert_eq!(
        flows::user_auth_pin_status(&mut ch).unwrap(),
        PinStatus::TriesLeft(3)
    );
    // A second signature in the same session needs no new VERIFY.
    assert_eq!(
        flows::sign_with_user_auth_key(&mut ch, &digest_info).unwrap(),
        signature
    );
}

#[test]
fn wrong_pins_count_down_and_block() {
    let mut card = common::card(CardState::default());
    let (_, digest_info) = binding();
    let mut ch = Direct::new(&mut card);
    for expected_left in [2u8, 1] {
        match flows::authenticate_phase(&mut ch, &wrong_pin(), &digest_info) {
            Err(FlowError::WrongPin { tries_left }) => assert_eq!(tries_left, expected_left),
            r => panic!("{r:?}"),
        }
        assert_eq!(
            flows::read_phase(&mut ch).unwrap().pin_status,
            PinStatus::TriesLeft(expected_left)
        );
    }
    // The attempt that blocks it is still a wrong PIN, with 0 left.
    assert!(matches!(
        flows::authenticate_phase(&mut ch, &wrong_pin(), &digest_info),
        Err(FlowError::WrongPin { tries_left: 0 })
    ));
    assert_eq!(
        flows::read_phase(&mut ch).unwrap().pin_status,
        PinStatus::Blocked
    );
    // From then on, even the right PIN: PinBlocked.
    assert!(matches!(
        flows::authenticate_phase(&mut ch, &pin(), &digest_info),
        Err(FlowError::PinBlocked)
    ));
    drop(ch);
    assert_eq!(card.state().user_auth_pin_tries_left, 0);
}

#[test]
fn a_right_pin_restores_the_counter() {
    let mut card = common::card(CardState::with_tries(1));
    let (_, digest_info) = binding();
    let mut ch = Direct::new(&mut card);
    assert_eq!(
        flows::read_phase(&mut ch).unwrap().pin_status,
        PinStatus::TriesLeft(1)
    );
    flows::authenticate_phase(&mut ch, &pin(), &digest_info).unwrap();
    ch.card.power_off();
    ch.card.reset();
    assert_eq!(
        flows::read_phase(&mut ch).unwrap().pin_status,
        PinStatus::TriesLeft(3)
    );
}

#[test]
fn signing_needs_verify_in_the_same_session() {
    let mut card = common::card(CardState::default());
    let (_, digest_info) = binding();
    let mut ch = Direct::new(&mut card);
    flows::select_jpki(&mut ch).unwrap();
    assert!(matches!(
        flows::sign_with_user_auth_key(&mut ch, &digest_info),
        Err(FlowError::SecurityNotSatisfied)
    ));
    flows::verify_user_auth_pin(&mut ch, &pin()).unwrap();
    flows::sign_with_user_auth_key(&mut ch, &digest_info).unwrap();
    // The reader powers the card down between transactions: verification is gone.
    ch.card.power_off();
    ch.card.reset();
    flows::select_jpki(&mut ch).unwrap();
    assert!(matches!(
        flows::sign_with_user_auth_key(&mut ch, &digest_info),
        Err(FlowError::SecurityNotSatisfied)
    ));
}

#[test]
fn the_counter_is_saved_before_the_answer() {
    let dir = temp_dir("persist");
    let state_path = dir.join("card.state.json");
    let path = state_path.clone();
    let persist: PersistHook = Box::new(move |s: CardState| s.save(&path));
    let contents = CardContents::from_profile(&profile("card-persist")).unwrap();
    let mut card = VirtualCard::new(contents, CardState::default(), persist).unwrap();
    let mut ch = Direct::new(&mut card);
    flows::select_jpki(&mut ch).unwrap();
    assert!(matches!(
        flows::verify_user_auth_pin(&mut ch, &wrong_pin()),
        Err(FlowError::WrongPin { tries_left: 2 })
    ));
    // The file already says so when the host holds the answer.
    assert_eq!(
        CardState::load(&state_path)
            .unwrap()
            .user_auth_pin_tries_left,
        2
    );
    flows::verify_user_auth_pin(&mut ch, &pin()).unwrap();
    assert_eq!(
        CardState::load(&state_path)
            .unwrap()
            .user_auth_pin_tries_left,
        3
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn every_client_read_pattern_gets_the_certificate() {
    let der = &identity().certificate_der;
    let mut card = common::card(CardState::default());
    let mut ch = Direct::new(&mut card);
    flows::select_jpki(&mut ch).unwrap();
    for pattern in [
        ReadPattern::Canonical,
        ReadPattern::HeaderThenRest {
            header_len: 7,
            chunk: 256,
        },
        ReadPattern::HeaderThenRest {
            header_len: 7,
            chunk: 255,
        },
        ReadPattern::HeaderThenReread {
            header_len: 7,
            chunk: 256,
        },
        ReadPattern::HeaderThenReread {
            header_len: 4,
            chunk: 100,
        },
    ] {
        ch.transmit(&commands::select_ef(EF_USER_AUTH_CERT))
            .unwrap();
        assert_eq!(
            &flows::read_ef_by_chunks(&mut ch, pattern).unwrap(),
            der,
            "{pattern:?}"
        );
    }
    for chunk in [255u16, 256, 1] {
        ch.transmit(&commands::select_ef(EF_USER_AUTH_CERT))
            .unwrap();
        let file = flows::read_ef_by_chunks(&mut ch, ReadPattern::UntilEnd { chunk }).unwrap();
        assert_eq!(file.len(), 0x800, "chunk {chunk}");
        assert_eq!(&file[..der.len()], &der[..]);
        assert!(file[der.len()..].iter().all(|&b| b == 0xFF));
    }
    // By short file id, without selecting the EF (the PIN EF is current).
    flows::user_auth_pin_status(&mut ch).unwrap();
    assert_eq!(
        &flows::read_ef_by_chunks(&mut ch, ReadPattern::BySfi { sfi: 0x0A }).unwrap(),
        der
    );
    assert_eq!(
        flows::read_ef_by_chunks(&mut ch, ReadPattern::BySfi { sfi: 0x0B }).unwrap(),
        identity().ca_der
    );
}

#[test]
fn certificate_edge_cases_through_the_flows() {
    // A certificate filling the EF exactly, and one needing a larger EF.
    for len in [0x800 - 4, 0x1000] {
        let mut der = vec![0x30, 0x82];
        der.extend_from_slice(&(len as u16).to_be_bytes());
        der.extend((0..len).map(|i| i as u8));
        let mut card = VirtualCard::new(
            raw_contents(der.clone()),
            CardState::default(),
            Box::new(|_| Ok(())),
        )
        .unwrap();
        let mut ch = Direct::new(&mut card);
        assert_eq!(flows::read_phase(&mut ch).unwrap().certificate, der);
    }
    // A card whose certificate EF was never written: FF only.
    let mut card = VirtualCard::new(
        raw_contents(Vec::new()),
        CardState::default(),
        Box::new(|_| Ok(())),
    )
    .unwrap();
    let mut ch = Direct::new(&mut card);
    assert!(matches!(
        flows::read_phase(&mut ch),
        Err(FlowError::NotFound { .. })
    ));
}

#[test]
fn profiles_are_checked() {
    let good = profile("card-check");
    let contents = CardContents::from_profile(&good).unwrap();
    assert_eq!(contents.user_auth_certificate, identity().certificate_der);
    assert_eq!(contents.user_auth_ca_certificate, identity().ca_der);
    assert_eq!(contents.user_auth_key.size(), 256);
    assert!(!format!("{contents:?}").contains(PIN));

    let check = |edit: &dyn Fn(&mut CardProfile)| {
        let mut p = profile("card-bad");
        edit(&mut p);
        CardContents::from_profile(&p).unwrap_err()
    };
    assert!(matches!(
        check(&|p| p.user_auth_private_key = "not a key".into()),
        CardBuildError::PrivateKey { .. }
    ));
    // The CA certificate does not certify the card key (and is not even RSA).
    let ca = identity().ca_pem.clone();
    assert!(matches!(
        check(&|p| p.user_auth_certificate = ca.clone()),
        CardBuildError::KeyMismatch
    ));
    assert!(matches!(
        check(&|p| p.user_auth_certificate = "garbage".into()),
        CardBuildError::CertificatePem { .. }
    ));
    let key_as_cert = identity().key_pem.clone();
    assert!(matches!(
        check(&|p| p.user_auth_certificate = key_as_cert.clone()),
        CardBuildError::CertificatePem { .. }
    ));
    let not_der = pem::encode(&pem::Pem::new(
        "CERTIFICATE",
        vec![0x30, 0x82, 0x00, 0x01, 0x00],
    ));
    assert!(matches!(
        check(&|p| p.user_auth_ca_certificate = not_der.clone()),
        CardBuildError::Certificate { .. }
    ));
    assert!(matches!(
        check(&|p| p.user_auth_pin = "12345".into()),
        CardBuildError::Pin
    ));
    assert!(matches!(
        check(&|p| p.atr = "3BZZ".into()),
        CardBuildError::Atr(_)
    ));
    // Errors never echo the key.
    let e = check(&|p| {
        p.user_auth_private_key =
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into()
    });
    assert!(!e.to_string().contains("AAAA"));
}

#[test]
fn rsa_1024_keys_are_refused() {
    use rand_chacha::rand_core::SeedableRng;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1024);
    let small = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
    let mut p = profile("card-small");
    p.user_auth_private_key = small.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    assert!(matches!(
        CardContents::from_profile(&p),
        Err(CardBuildError::KeySize { bits: 1024 })
    ));
}

#[test]
fn certificate_summary() {
    let s = summarize_certificate(&identity().certificate_der).unwrap();
    assert!(
        s.subject.contains("CN=TESTCARD000000000000001"),
        "{}",
        s.subject
    );
    assert!(s.issuer.contains("O=JPKI-TEST"), "{}", s.issuer);
    assert!(!s.serial.is_empty());
    assert!(!s.not_after.is_empty());
}

/// The card is `Send`, so the transport can run it on its own thread.
#[test]
fn card_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let card = common::card(CardState::default());
    assert_send(&card);
    let shared = Arc::new(Mutex::new(card));
    std::thread::spawn(move || shared.lock().unwrap().reset())
        .join()
        .unwrap();
}

#[test]
fn the_pin_change_flow_changes_the_pin_on_the_card() {
    let mut card = common::card(CardState::default());
    let new = Pin::new("8642").unwrap();
    {
        let mut ch = Direct::new(&mut card);
        // A wrong current PIN: nothing changes, a try is spent.
        assert!(matches!(
            flows::change_user_auth_pin(&mut ch, &wrong_pin(), &new),
            Err(FlowError::WrongPin { tries_left: 2 })
        ));
        flows::change_user_auth_pin(&mut ch, &pin(), &new).unwrap();
        // The exact commands, PINs redacted.
        assert_eq!(
            ch.trace[ch.trace.len() - 2..],
            [
                "00 20 00 80 04 <redacted 4 bytes>".to_owned(),
                "00 24 01 80 04 <redacted 4 bytes>".to_owned()
            ]
        );
    }
    assert_eq!(card.state().user_auth_pin.as_deref(), Some("8642"));
    assert_eq!(card.state().user_auth_pin_tries_left, 3);
    let mut ch = Direct::new(&mut card);
    let (_, digest_info) = binding();
    assert!(matches!(
        flows::authenticate_phase(&mut ch, &pin(), &digest_info),
        Err(FlowError::WrongPin { tries_left: 2 })
    ));
    assert_eq!(
        flows::authenticate_phase(&mut ch, &new, &digest_info)
            .unwrap()
            .len(),
        256
    );
}
