//! The body of the `apdu` fuzz target (fuzz/), here so that the committed corpus is replayed
//! on stable by an ordinary test (tests/fuzz_corpus.rs) through exactly the same code.
//!
//! The input is a session with a freshly built card holding all three applications (JPKI
//! with the signature half, Kenhojo, Kenkaku with the simulator's face export): a sequence of
//! records ([`onshi_jpki::fuzzing::records`]: a two-byte big-endian header, its top bit
//! "reset the card first", its low 15 bits the length of the command APDU that follows). Each
//! command goes through [`VirtualCard::process`], so through the APDU parser
//! ([`CommandApdu::parse`]: CLA INS P1 P2, Lc and data, Le; extended lengths refused) and the
//! card's dispatch and state machine. The card does no I/O; its persistence hook here keeps
//! the last saved state in memory.
//!
//! The key is RSA-1024, not the RSA-2048 of a real card, so that the signatures the fuzzer
//! reaches cost less; every length check of the card is relative to the key's size.

use std::sync::{Arc, Mutex, PoisonError};

use onshi_jpki::apdu::{redacted_command_hex, CommandApdu, ResponseApdu, StatusWord};
use onshi_jpki::constants::{SIGN_PASSWORD_MAX_TRIES, USER_AUTH_PIN_MAX_TRIES};
use onshi_jpki::fuzzing::records;
use onshi_jpki::Pin;
use rsa::{BigUint, RsaPrivateKey};
use zeroize::Zeroizing;

use crate::card::{KENHOJO_PIN_MAX_TRIES, KENKAKU_PIN_MAX_TRIES};
use crate::contents::{KenhojoContents, KenkakuContents, SignatureContents};
use crate::{CardContents, CardState, PersistHook, VirtualCard};

/// The card's user-authentication PIN (and Kenhojo PIN).
pub const PIN: &str = "4729";
/// The signature password.
pub const SIGN_PASSWORD: &str = "SIGN4729";
/// Kenkaku's birth-date key and 照合番号B.
pub const BIRTH_DATE_KEY: &str = "630401";
pub const NUMBER_B: &str = "63040120341234";

/// The primes of the fixed RSA-1024 test key (generated once with OpenSSL; a test key only).
const P_HEX: &str = "e16871d60bc4056483fdcd4c7366541fd7465452ae923438b4ca61ecff3b97ee74264066cd29bf01b4860c7590f6b1ff21b245b2d6c5b486934d876434eecaff";
const Q_HEX: &str = "d93cb8aaa9459276fed70ce712d3c32a62e339fc5b865dfce3842066b3dce8646ccbc993d7ffecde85c5ef3bcbaf26b62b4a4cf60d98102b73350a4c267b107f";

fn key() -> RsaPrivateKey {
    static KEY: std::sync::OnceLock<RsaPrivateKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let prime = |hex: &str| BigUint::parse_bytes(hex.as_bytes(), 16);
        match (prime(P_HEX), prime(Q_HEX)) {
            (Some(p), Some(q)) => RsaPrivateKey::from_p_q(p, q, BigUint::from(65_537u32))
                .unwrap_or_else(|e| panic!("the fixed test key is invalid: {e}")),
            _ => panic!("the fixed test key's primes are not hex"),
        }
    })
    .clone()
}

/// `30 82 HH LL` and `content_len` bytes: what card clients read as a certificate.
fn fake_certificate(content_len: u16, fill: u8) -> Vec<u8> {
    let mut der = vec![0x30, 0x82];
    der.extend_from_slice(&content_len.to_be_bytes());
    der.extend((0..content_len).map(|i| fill ^ (i % 251) as u8));
    der
}

/// A fresh card with every application; `persist` sees each saved state.
fn card(persist: PersistHook) -> VirtualCard {
    let pin = Pin::new(PIN).unwrap_or_else(|_| unreachable!("four digits"));
    let contents = CardContents {
        name: "fuzz".into(),
        atr: vec![0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14],
        user_auth_certificate: fake_certificate(1230, 0xC0),
        user_auth_ca_certificate: fake_certificate(900, 0xCA),
        user_auth_key: key(),
        user_auth_pin: Some(pin),
        signature: Some(SignatureContents {
            certificate: fake_certificate(1500, 0x51),
            ca_certificate: fake_certificate(900, 0x5C),
            key: key(),
            password: Zeroizing::new(SIGN_PASSWORD.as_bytes().to_vec()),
        }),
        kenhojo: Some(KenhojoContents {
            pin: Some(Zeroizing::new(PIN.as_bytes().to_vec())),
            my_number: "123456789018".into(),
            name: "番号 花子".into(),
            address: "東京都千代田区霞が関1-2-2".into(),
            birth_date: "19880401".into(),
            sex: "2".into(),
        }),
        kenkaku: Some(KenkakuContents {
            birth_date_key: Zeroizing::new(BIRTH_DATE_KEY.as_bytes().to_vec()),
            number_b: Zeroizing::new(NUMBER_B.as_bytes().to_vec()),
            face: crate::surface::example_card_face(),
            simulator_face_export: true,
        }),
    };
    let mut card = VirtualCard::new(contents, CardState::default(), persist)
        .unwrap_or_else(|e| panic!("the fuzz card cannot be built: {e}"));
    card.reset();
    card
}

fn within_limits(state: &CardState) -> bool {
    state.user_auth_pin_tries_left <= USER_AUTH_PIN_MAX_TRIES
        && state
            .sign_password_tries_left
            .is_none_or(|n| n <= SIGN_PASSWORD_MAX_TRIES)
        && state
            .kenhojo_pin_tries_left
            .is_none_or(|n| n <= KENHOJO_PIN_MAX_TRIES)
        && state
            .kenkaku_birth_key_tries_left
            .is_none_or(|n| n <= KENKAKU_PIN_MAX_TRIES)
        && state
            .kenkaku_number_b_tries_left
            .is_none_or(|n| n <= KENKAKU_PIN_MAX_TRIES)
}

/// Runs the commands of `data` (module docs) through a fresh card and returns the status word
/// of each answer. Checks that every answer is a status word with at most Le (or 256) bytes of
/// data before it, that a command that does not parse gets `6700`, and that the card's state
/// is always the one it last saved, within the retry limits.
pub fn apdu_session(data: &[u8]) -> Vec<u16> {
    let saved: Arc<Mutex<Option<CardState>>> = Arc::default();
    let sink = saved.clone();
    let mut card = card(Box::new(move |state| {
        *sink.lock().unwrap_or_else(PoisonError::into_inner) = Some(state);
        Ok(())
    }));
    let mut statuses = Vec::new();
    for (reset, apdu) in records(data) {
        if reset {
            card.power_off();
            card.reset();
        }
        let answer = card.process(apdu);
        let response = ResponseApdu::parse(&answer)
            .unwrap_or_else(|_| panic!("answer {answer:02X?} holds no status word"));
        match CommandApdu::parse(apdu) {
            Ok(command) => {
                let most = usize::from(command.le().unwrap_or(256));
                assert!(
                    response.data.len() <= most,
                    "{} bytes answered to {}",
                    response.data.len(),
                    redacted_command_hex(apdu)
                );
                if !response.data.is_empty() {
                    assert_eq!(response.sw, StatusWord::SUCCESS, "data with an error");
                }
            }
            Err(_) => assert_eq!(response.sw, StatusWord::WRONG_LENGTH),
        }
        let state = card.state();
        assert!(within_limits(&state), "a retry counter past its maximum");
        if let Some(last) = saved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            assert!(*last == state, "the card's state is not the one it saved");
        }
        statuses.push(response.sw.0);
    }
    statuses
}
