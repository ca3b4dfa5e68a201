//! Unit tests of `card.rs` (kept beside it so the module itself stays readable).

use std::sync::{Arc, Mutex};

use onshi_jpki::constants::{sha256_digest_info, KENHOJO_AID, KENKAKU_AID};
use rsa::sha2::{Digest, Sha256};

use super::*;
use crate::test_support::{fake_certificate, test_key, PIN};

type Saved = Arc<Mutex<Vec<CardState>>>;

fn card_with(state: CardState, cert: Vec<u8>) -> (VirtualCard, Saved) {
    let saved: Saved = Arc::default();
    let sink = saved.clone();
    let contents = CardContents {
        name: "card-test".into(),
        atr: vec![0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14],
        user_auth_certificate: cert,
        user_auth_ca_certificate: fake_certificate(900, 0xCA),
        user_auth_key: test_key().clone(),
        user_auth_pin: Some(Pin::new(PIN).unwrap()),
        signature: None,
        kenhojo: None,
        kenkaku: None,
    };
    let persist: PersistHook = Box::new(move |s| {
        sink.lock().unwrap().push(s);
        Ok(())
    });
    let mut card = VirtualCard::new(contents, state, persist).unwrap();
    card.reset();
    (card, saved)
}

fn card() -> (VirtualCard, Saved) {
    card_with(CardState::default(), fake_certificate(1230, 0xC0))
}

/// Sends hex, returns the response as upper-case hex.
fn send(card: &mut VirtualCard, apdu: &str) -> String {
    hex::encode_upper(card.process(&hex::decode(apdu.replace(' ', "")).unwrap()))
}

fn sw(card: &mut VirtualCard, apdu: &str) -> String {
    let r = send(card, apdu);
    r[r.len() - 4..].to_string()
}

const SELECT_JPKI: &str = "00A4040C0AD392F000260100000001";
const SELECT_000A: &str = "00A4020C02000A";
const SELECT_000B: &str = "00A4020C02000B";
const SELECT_0017: &str = "00A4020C020017";
const SELECT_0018: &str = "00A4020C020018";
const VERIFY_RIGHT: &str = "002000800434373239"; // "4729"
const VERIFY_WRONG: &str = "002000800430303030"; // "0000"
const EMPTY_VERIFY: &str = "00200080";

fn sign_apdu(di: &[u8]) -> String {
    format!("802A0080{:02X}{}00", di.len(), hex::encode_upper(di))
}

fn binding_digest_info(message: &[u8]) -> [u8; 51] {
    sha256_digest_info(&Sha256::digest(message).into())
}

#[test]
fn atr_and_identity() {
    let (card, _) = card();
    assert_eq!(hex::encode_upper(card.atr()), "3BE000FF8131FE4514");
    assert_eq!(card.name(), "card-test");
    assert!(!format!("{card:?}").contains(PIN));
}

#[test]
fn select_application() {
    let (mut c, _) = card();
    assert_eq!(sw(&mut c, SELECT_JPKI), "9000");
    // P2=00 with Le=00 is accepted too, and answers no FCI.
    assert_eq!(send(&mut c, "00A404000AD392F00026010000000100"), "9000");
    assert_eq!(send(&mut c, "00A404000AD392F000260100000001"), "9000");
    // Applications the card lacks, including Kenhojo and Kenkaku for now.
    for aid in [
        KENHOJO_AID.to_vec(),
        KENKAKU_AID.to_vec(),
        hex::decode("A000000063504B43532D3135").unwrap(),
        hex::decode("D392F000260100000002").unwrap(),
    ] {
        let apdu = format!("00A4040C{:02X}{}", aid.len(), hex::encode(&aid));
        assert_eq!(sw(&mut c, &apdu), "6A82", "{apdu}");
    }
    // A prefix of the JPKI AID is not the JPKI AID.
    assert_eq!(sw(&mut c, "00A4040C05D392F00026"), "6A82");
    assert_eq!(sw(&mut c, "00A4040400"), "6A86"); // P2=04 (FCP)
    assert_eq!(sw(&mut c, "00A4080C020001"), "6A86"); // by path
    assert_eq!(sw(&mut c, "00A4000C023F00"), "6A86"); // by file id from the MF
    assert_eq!(sw(&mut c, "00A4040C"), "6700"); // no AID
    let too_long = format!("00A4040C11{}", "D3".repeat(17));
    assert_eq!(sw(&mut c, &too_long), "6700");
}

#[test]
fn select_ef() {
    let (mut c, _) = card();
    // Before an application is selected there is no EF to find.
    assert_eq!(sw(&mut c, SELECT_000A), "6A82");
    assert_eq!(sw(&mut c, SELECT_JPKI), "9000");
    for ef in [
        SELECT_000A,
        SELECT_000B,
        SELECT_0017,
        SELECT_0018,
        "00A4020C020006",
        "00A4020C020008",
        "00A4020C02001B",
    ] {
        assert_eq!(sw(&mut c, ef), "9000", "{ef}");
    }
    // Without a signature certificate in the profile: no 0001, 0002, 001A.
    for missing in ["0001", "0002", "001A", "3F00", "FFFF"] {
        assert_eq!(
            sw(&mut c, &format!("00A4020C02{missing}")),
            "6A82",
            "{missing}"
        );
    }
    // A failed SELECT leaves the current EF: still 001B, whose reads are refused.
    assert_eq!(sw(&mut c, "00B0000004"), "6982");
    assert_eq!(sw(&mut c, "00A4020C0100"), "6700");
    assert_eq!(sw(&mut c, "00A4020C03000A00"), "6700");
    assert_eq!(sw(&mut c, "00A4020402000A"), "6A86");
}

#[test]
fn read_binary_by_offset() {
    let cert = fake_certificate(1230, 0xC0);
    let (mut c, _) = card();
    sw(&mut c, SELECT_JPKI);
    // No EF selected yet.
    assert_eq!(sw(&mut c, "00B0000004"), "6986");
    sw(&mut c, SELECT_000A);
    assert_eq!(send(&mut c, "00B0000004"), "308204CE9000");
    // Le=00 is 256 bytes.
    let r = c.process(&[0x00, 0xB0, 0x00, 0x04, 0x00]);
    assert_eq!(r.len(), 258);
    assert_eq!(&r[..256], &cert[4..260]);
    // Odd offsets and lengths (the 7-byte-header clients).
    let r = c.process(&[0x00, 0xB0, 0x00, 0x07, 0x0B]);
    assert_eq!(&r[..11], &cert[7..18]);
    // The content ends at 1234 and FF filler follows up to 0x800.
    let r = c.process(&[0x00, 0xB0, 0x04, 0xC0, 0x20]);
    assert_eq!(&r[..18], &cert[0x4C0..]);
    assert!(r[18..32].iter().all(|&b| b == 0xFF));
    // Reading past the end returns what exists, with 9000.
    let r = c.process(&[0x00, 0xB0, 0x07, 0xF0, 0x00]);
    assert_eq!(r.len(), 16 + 2);
    assert!(r[..16].iter().all(|&b| b == 0xFF));
    assert_eq!(&r[16..], &[0x90, 0x00]);
    // At or past the end: 6B00.
    assert_eq!(sw(&mut c, "00B0080001"), "6B00");
    assert_eq!(sw(&mut c, "00B07FFF01"), "6B00");
    // Malformed READ BINARY.
    assert_eq!(sw(&mut c, "00B00000"), "6700"); // no Le
    assert_eq!(sw(&mut c, "00B000000100"), "6700"); // data
                                                    // The CA certificate EF.
    sw(&mut c, SELECT_000B);
    assert_eq!(send(&mut c, "00B0000004"), "308203849000");
}

#[test]
fn read_binary_by_short_file_id() {
    let cert = fake_certificate(1230, 0xC0);
    let (mut c, _) = card();
    // No application: nothing to read by short id.
    assert_eq!(sw(&mut c, "00B08A0004"), "6A82");
    sw(&mut c, SELECT_JPKI);
    assert_eq!(send(&mut c, "00B08A0004"), "308204CE9000");
    // It made 000A the current EF: a plain read continues in it.
    let r = c.process(&[0x00, 0xB0, 0x00, 0x04, 0x10]);
    assert_eq!(&r[..16], &cert[4..20]);
    assert_eq!(send(&mut c, "00B08B0004"), "308203849000");
    let r = c.process(&[0x00, 0xB0, 0x00, 0x00, 0x04]);
    assert_eq!(hex::encode_upper(&r), "308203849000"); // now 000B
                                                       // Offsets by SFI are one byte.
    let r = c.process(&[0x00, 0xB0, 0x8A, 0xFF, 0x01]);
    assert_eq!(r, vec![cert[255], 0x90, 0x00]);
    // Key and PIN EFs are never readable.
    assert_eq!(sw(&mut c, "00B0970004"), "6982");
    assert_eq!(sw(&mut c, "00B0980004"), "6982");
    assert_eq!(sw(&mut c, "00B09B0004"), "6982");
    assert_eq!(sw(&mut c, "00B0810004"), "6A82"); // SFI 01: not emulated
    assert_eq!(sw(&mut c, "00B0800004"), "6A86"); // SFI 0
    assert_eq!(sw(&mut c, "00B0A00004"), "6A86"); // P1 bits 6-7 set
}

#[test]
fn protected_efs_refuse_reads() {
    let (mut c, _) = card();
    sw(&mut c, SELECT_JPKI);
    for ef in [SELECT_0017, SELECT_0018] {
        sw(&mut c, ef);
        assert_eq!(sw(&mut c, "00B0000004"), "6982");
    }
    // Not even after the PIN is verified.
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
    sw(&mut c, SELECT_0017);
    assert_eq!(sw(&mut c, "00B0000000"), "6982");
}

#[test]
fn pin_counter_blocks_after_three_and_is_persisted() {
    let (mut c, saved) = card();
    sw(&mut c, SELECT_JPKI);
    sw(&mut c, SELECT_0018);
    assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C3");
    assert_eq!(sw(&mut c, VERIFY_WRONG), "63C2");
    assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C2");
    assert_eq!(sw(&mut c, VERIFY_WRONG), "63C1");
    // The attempt that uses the last try answers 63C0 ...
    assert_eq!(sw(&mut c, VERIFY_WRONG), "63C0");
    // ... every later VERIFY 6984, even with the right PIN ...
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "6984");
    assert_eq!(sw(&mut c, VERIFY_WRONG), "6984");
    // ... and the retry-counter query 63C0, not 6984.
    assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C0");
    let counts: Vec<u8> = saved
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.user_auth_pin_tries_left)
        .collect();
    assert_eq!(counts, vec![2, 1, 0]);
    assert_eq!(c.state().user_auth_pin_tries_left, 0);
    // Blocked survives power cycles (it is state, not session).
    c.power_off();
    c.reset();
    sw(&mut c, SELECT_JPKI);
    assert_eq!(sw(&mut c, "00200098"), "63C0");
    // Lc announcing data that is missing is malformed, not a PIN attempt.
    assert_eq!(sw(&mut c, "00200098043437"), "6700");
}

#[test]
fn correct_pin_resets_the_counter() {
    let (mut c, saved) = card_with(CardState::with_tries(1), fake_certificate(1230, 0xC0));
    sw(&mut c, SELECT_JPKI);
    sw(&mut c, SELECT_0018);
    assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C1");
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
    assert_eq!(
        saved.lock().unwrap().as_slice(),
        &[CardState::with_tries(3)]
    );
    // Verified, but the retry-counter query still answers 63Cx (OpenSC insists).
    assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C3");
    // A right PIN at full count writes nothing.
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
    assert_eq!(saved.lock().unwrap().len(), 1);
    // A wrong PIN un-verifies.
    assert_eq!(sw(&mut c, VERIFY_WRONG), "63C2");
    assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C2");
}

#[test]
fn verify_addressing() {
    let (mut c, _) = card();
    // No application.
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "6A82");
    sw(&mut c, SELECT_JPKI);
    // No current EF.
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "6986");
    // Current EF is not a PIN.
    sw(&mut c, SELECT_000A);
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "6981");
    assert_eq!(c.state().user_auth_pin_tries_left, 3);
    // By SFI: 98 names 0018 whatever is current.
    assert_eq!(sw(&mut c, "002000980434373239"), "9000");
    assert_eq!(sw(&mut c, "002000990434373239"), "6A82"); // SFI 19: no such EF
    assert_eq!(sw(&mut c, "0020008A0434373239"), "6981"); // SFI 0A: not a PIN
    assert_eq!(sw(&mut c, "002000010434373239"), "6A86");
    assert_eq!(sw(&mut c, "0020009F0434373239"), "6A86");
    assert_eq!(sw(&mut c, "002001800434373239"), "6A86");
    // PIN data longer than any PIN is malformed and costs nothing.
    assert_eq!(
        sw(&mut c, &format!("0020009811{}", "31".repeat(17))),
        "6700"
    );
    assert_eq!(c.state().user_auth_pin_tries_left, 3);
    // A wrong-length PIN is a wrong PIN.
    assert_eq!(sw(&mut c, "00200098053437323930"), "63C2");
}

#[test]
fn signature_password_is_presented_blocked() {
    let (mut c, saved) = card();
    sw(&mut c, SELECT_JPKI);
    assert_eq!(sw(&mut c, "00A4020C02001B"), "9000");
    assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C0");
    assert_eq!(sw(&mut c, "0020008006414243444546"), "6984");
    assert_eq!(sw(&mut c, "0020009B"), "63C0");
    assert!(saved.lock().unwrap().is_empty());
    assert_eq!(c.state().user_auth_pin_tries_left, 3);
}

#[test]
fn signs_only_after_verify_and_signature_verifies() {
    let (mut c, _) = card();
    let message = b"onshi/v1\x01 a binding-style message";
    let di = binding_digest_info(message);
    sw(&mut c, SELECT_JPKI);
    sw(&mut c, SELECT_0017);
    assert_eq!(sw(&mut c, &sign_apdu(&di)), "6982");
    sw(&mut c, SELECT_0018);
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
    sw(&mut c, SELECT_0017);
    let r = c.process(&hex::decode(sign_apdu(&di)).unwrap());
    assert_eq!(r.len(), 258);
    assert_eq!(&r[256..], &[0x90, 0x00]);
    // An ordinary RSASSA-PKCS1-v1_5 SHA-256 signature of the message.
    let public = test_key().to_public_key();
    public
        .verify(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(message),
            &r[..256],
        )
        .unwrap();
    // Repeated identical commands get identical answers; verification stays in force
    // across signatures and re-selection of the key EF.
    assert_eq!(c.process(&hex::decode(sign_apdu(&di)).unwrap()), r);
    sw(&mut c, SELECT_0017);
    assert_eq!(c.process(&hex::decode(sign_apdu(&di)).unwrap()), r);
    // Re-selecting the JPKI application keeps it too; P2=97 names the key by SFI.
    sw(&mut c, SELECT_JPKI);
    let by_sfi = sign_apdu(&di).replacen("802A0080", "802A0097", 1);
    assert_eq!(c.process(&hex::decode(by_sfi).unwrap()), r);
    // Case 3 (no Le) is accepted; a small Le is not.
    sw(&mut c, SELECT_0017);
    let no_le = &sign_apdu(&di)[..sign_apdu(&di).len() - 2];
    assert_eq!(c.process(&hex::decode(no_le).unwrap()), r);
    let small_le = format!("{no_le}80");
    assert_eq!(sw(&mut c, &small_le), "6700");
}

#[test]
fn verification_is_cleared_by_power_off_and_reset() {
    let di = binding_digest_info(b"m");
    for clear in [
        VirtualCard::power_off as fn(&mut VirtualCard),
        VirtualCard::reset,
    ] {
        let (mut c, _) = card();
        sw(&mut c, SELECT_JPKI);
        sw(&mut c, SELECT_0018);
        assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
        clear(&mut c);
        // The session is gone: no application either.
        assert_eq!(sw(&mut c, SELECT_0017), "6A82");
        sw(&mut c, SELECT_JPKI);
        sw(&mut c, SELECT_0017);
        assert_eq!(sw(&mut c, &sign_apdu(&di)), "6982");
    }
    // A failed SELECT of another application changes nothing.
    let (mut c, _) = card();
    sw(&mut c, SELECT_JPKI);
    assert_eq!(sw(&mut c, "002000980434373239"), "9000");
    let kenhojo = format!("00A4040C0A{}", hex::encode(KENHOJO_AID));
    assert_eq!(sw(&mut c, &kenhojo), "6A82");
    assert_eq!(
        sw(&mut c, &sign_apdu(&di).replacen("802A0080", "802A0097", 1)),
        "9000"
    );
}

#[test]
fn compute_signature_errors() {
    let (mut c, _) = card();
    let di = binding_digest_info(b"m");
    assert_eq!(sw(&mut c, &sign_apdu(&di)), "6A82"); // no application
    sw(&mut c, SELECT_JPKI);
    assert_eq!(sw(&mut c, &sign_apdu(&di)), "6986"); // no current EF
    sw(&mut c, SELECT_0018);
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
    assert_eq!(sw(&mut c, &sign_apdu(&di)), "6981"); // the PIN EF is not a key
    sw(&mut c, SELECT_0017);
    assert_eq!(
        sw(&mut c, &sign_apdu(&di).replacen("802A0080", "802A0180", 1)),
        "6A86"
    );
    assert_eq!(
        sw(&mut c, &sign_apdu(&di).replacen("802A0080", "802A0000", 1)),
        "6A86"
    );
    assert_eq!(sw(&mut c, "802A008000"), "6700"); // no data
    assert_eq!(sw(&mut c, &sign_apdu(&[0x01; 246])), "6700"); // too long to pad
                                                              // The longest input PKCS#1 type 1 allows is signed.
    assert_eq!(
        c.process(&hex::decode(sign_apdu(&[0x01; 245])).unwrap())
            .len(),
        258
    );
    // A bare hash is signed as given (the card does not check it is a DigestInfo).
    assert_eq!(
        c.process(&hex::decode(sign_apdu(&[0x01; 32])).unwrap())
            .len(),
        258
    );
    // The ISO class is not this command's.
    assert_eq!(
        sw(&mut c, &sign_apdu(&di).replacen("802A", "002A", 1)),
        "6E00"
    );
}

#[test]
fn unknown_class_instruction_and_malformed() {
    let (mut c, _) = card();
    assert_eq!(sw(&mut c, "00CA010000"), "6D00"); // GET DATA
    assert_eq!(sw(&mut c, "00C0000000"), "6D00"); // GET RESPONSE
    assert_eq!(sw(&mut c, "80CA9F7F00"), "6D00");
    assert_eq!(sw(&mut c, "FFCA000000"), "6E00"); // reader pseudo-APDU
    assert_eq!(sw(&mut c, "0CB0000004"), "6E00"); // secure messaging
    assert_eq!(sw(&mut c, "80A4040C0AD392F000260100000001"), "6E00");
    for malformed in [
        "",
        "00",
        "00A4",
        "00A404",
        "00A4040C05D392",
        "00B000000001",
        "00A4040C01D3D3D3",
    ] {
        assert_eq!(send(&mut c, malformed), "6700", "{malformed:?}");
    }
}

#[test]
fn persistence_failure_answers_memory_failure() {
    let contents = CardContents {
        name: "card-test".into(),
        atr: vec![0x3B, 0x00],
        user_auth_certificate: fake_certificate(100, 1),
        user_auth_ca_certificate: fake_certificate(100, 2),
        user_auth_key: test_key().clone(),
        user_auth_pin: Some(Pin::new(PIN).unwrap()),
        signature: None,
        kenhojo: None,
        kenkaku: None,
    };
    let failing: PersistHook = Box::new(|_| {
        Err(ProfileError::Invalid {
            path: "/nonexistent".into(),
            reason: "disk full".into(),
        })
    });
    let mut c = VirtualCard::new(contents, CardState::with_tries(2), failing).unwrap();
    sw(&mut c, SELECT_JPKI);
    sw(&mut c, SELECT_0018);
    // The wrong attempt is spent anyway ...
    assert_eq!(sw(&mut c, VERIFY_WRONG), "6581");
    assert_eq!(c.state().user_auth_pin_tries_left, 1);
    // ... a right PIN whose counter reset cannot be saved does not verify.
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "6581");
    assert_eq!(c.state().user_auth_pin_tries_left, 1);
    assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C1");
}

#[test]
fn file_sizes() {
    assert_eq!(stored_ef(&[0x30; 10], "x").unwrap().len(), 0x800);
    assert_eq!(stored_ef(&[0x30; 0x800], "x").unwrap().len(), 0x800);
    assert_eq!(stored_ef(&[0x30; 0x801], "x").unwrap().len(), 0x900);
    assert_eq!(stored_ef(&[0x30; 0x8000], "x").unwrap().len(), 0x8000);
    assert!(matches!(
        stored_ef(&[0x30; 0x8001], "x"),
        Err(CardBuildError::FileTooLarge { len: 0x8001, .. })
    ));
    let ef = stored_ef(&[0x30, 0x01, 0x00], "x").unwrap();
    assert!(ef[3..].iter().all(|&b| b == 0xFF));
    // A large certificate is served whole, then filler.
    let (mut c, _) = card_with(CardState::default(), fake_certificate(0x900, 7));
    sw(&mut c, SELECT_JPKI);
    sw(&mut c, SELECT_000A);
    // 4 + 0x900 bytes of content: the EF is 0xA00 bytes.
    assert_eq!(sw(&mut c, "00B0090301"), "9000");
    assert_eq!(send(&mut c, "00B0090401"), "FF9000");
    assert_eq!(sw(&mut c, "00B009FF01"), "9000");
    assert_eq!(sw(&mut c, "00B00A0001"), "6B00");
}

#[test]
fn clamps_an_impossible_counter() {
    let (c, _) = card_with(CardState::with_tries(9), fake_certificate(10, 1));
    assert_eq!(c.state().user_auth_pin_tries_left, 3);
}

/// Random bytes, and random commands built from the card's own vocabulary, never panic,
/// and every answer ends in a status word.
#[test]
fn never_panics() {
    let (mut plain, _) = card();
    fuzz(&mut plain);
    let (mut full, _) = full_card(true);
    fuzz(&mut full);
}

fn fuzz(c: &mut VirtualCard) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let clas = [0x00, 0x80, 0x0C, 0xFF];
    let inss = [0xA4, 0xB0, 0x20, 0x24, 0x2A, 0xCA, 0x00];
    let apps = [JPKI_AID, KENHOJO_AID, KENKAKU_AID];
    let efs: [u16; 9] = [0x01, 0x02, 0x06, 0x08, 0x0A, 0x11, 0x12, 0x17, 0x1B];
    for i in 0..40_000 {
        let r = next();
        // Now and then, a well-formed SELECT so every application and EF gets fuzzed.
        if i % 25 == 0 {
            let mut sel = vec![0x00, 0xA4, 0x04, 0x0C, 0x0A];
            sel.extend_from_slice(&apps[(r % 3) as usize]);
            c.process(&sel);
            let fid = efs[((r >> 8) % 9) as usize];
            c.process(&[0x00, 0xA4, 0x02, 0x0C, 0x02, 0x00, fid as u8]);
        }
        let apdu: Vec<u8> = if i % 2 == 0 {
            let len = (r % 300) as usize;
            (0..len).map(|_| next() as u8).collect()
        } else {
            let lc = (next() % 40) as usize;
            let mut a = vec![
                clas[(r % 4) as usize],
                inss[((r >> 8) % 7) as usize],
                (r >> 16) as u8 & 0x9F,
                (r >> 24) as u8,
            ];
            if lc > 0 {
                a.push(lc as u8);
                a.extend((0..lc).map(|_| next() as u8));
            }
            if (r >> 32) % 2 == 0 {
                a.push((r >> 40) as u8);
            }
            a
        };
        let answer = c.process(&apdu);
        assert!(answer.len() >= 2);
        if i % 1000 == 0 {
            c.reset();
        }
    }
}

fn full_card(face_export: bool) -> (VirtualCard, Saved) {
    card_of_kind(face_export, false)
}

/// Every application; `face_only`: issued without PINs and without the signature half.
fn card_of_kind(face_export: bool, face_only: bool) -> (VirtualCard, Saved) {
    use crate::contents::{KenhojoContents, KenkakuContents, SignatureContents};
    let saved: Saved = Arc::default();
    let sink = saved.clone();
    let contents = CardContents {
        name: "card-full".into(),
        atr: vec![0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14],
        user_auth_certificate: fake_certificate(1230, 0xC0),
        user_auth_ca_certificate: fake_certificate(900, 0xCA),
        user_auth_key: test_key().clone(),
        user_auth_pin: (!face_only).then(|| Pin::new(PIN).unwrap()),
        signature: (!face_only).then(|| SignatureContents {
            certificate: fake_certificate(1500, 0x51),
            ca_certificate: fake_certificate(950, 0x52),
            key: test_key().clone(),
            password: Zeroizing::new(b"SIGN2024".to_vec()),
        }),
        kenhojo: Some(KenhojoContents {
            pin: (!face_only).then(|| Zeroizing::new(PIN.as_bytes().to_vec())),
            my_number: "123456789018".into(),
            name: "山田\u{3000}太郎".into(),
            address: "東京都千代田区千代田1-1".into(),
            birth_date: "19800102".into(),
            sex: "1".into(),
        }),
        kenkaku: Some(KenkakuContents {
            birth_date_key: Zeroizing::new(b"550102".to_vec()),
            number_b: Zeroizing::new(b"55010220341234".to_vec()),
            face: crate::surface::tests::sample_face(),
            simulator_face_export: face_export,
        }),
    };
    let persist: PersistHook = Box::new(move |s| {
        sink.lock().unwrap().push(s);
        Ok(())
    });
    (
        VirtualCard::new(contents, CardState::default(), persist).unwrap(),
        saved,
    )
}

/// Reads a whole EF in 255-byte chunks until 6B00 or a short read.
fn read_all(c: &mut VirtualCard) -> (Vec<u8>, String) {
    let mut out = Vec::new();
    for _ in 0..200 {
        let r = c.process(&[0x00, 0xB0, (out.len() >> 8) as u8, out.len() as u8, 0xFF]);
        let (data, sw) = r.split_at(r.len() - 2);
        if sw != [0x90, 0x00] {
            return (out, hex::encode_upper(sw));
        }
        out.extend_from_slice(data);
        if data.len() < 255 {
            break;
        }
    }
    (out, "9000".into())
}

#[test]
fn token_info_and_certificate_presence() {
    let (mut c, _) = full_card(false);
    sw(&mut c, SELECT_JPKI);
    sw(&mut c, "00A4020C020006");
    let (info, _) = read_all(&mut c);
    assert_eq!(info.len(), 160);
    assert_eq!(&info[..32], format!("{:<32}", "JPKIAPICCTOKEN2").as_bytes());
    sw(&mut c, "00A4020C020008");
    assert_eq!(send(&mut c, "00B0000000"), "8F8F009000");
    let (mut plain, _) = card();
    sw(&mut plain, SELECT_JPKI);
    sw(&mut plain, "00A4020C020008");
    assert_eq!(send(&mut plain, "00B0000000"), "008F009000");
}

#[test]
fn signature_certificate_needs_the_password_which_has_five_tries() {
    let (mut c, saved) = full_card(false);
    sw(&mut c, SELECT_JPKI);
    // The CA certificate is free, the certificate is not.
    sw(&mut c, "00A4020C020002");
    assert_eq!(send(&mut c, "00B0000004"), "308203B69000");
    sw(&mut c, "00A4020C020001");
    assert_eq!(sw(&mut c, "00B0000004"), "6982");
    sw(&mut c, "00A4020C02001B");
    assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C5");
    assert_eq!(sw(&mut c, "0020008006414243313233"), "63C4"); // ABC123
    assert_eq!(
        saved
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .sign_password_tries_left,
        Some(4)
    );
    // The user-authentication PIN does not open the signature certificate.
    assert_eq!(sw(&mut c, "002000980434373239"), "9000");
    sw(&mut c, "00A4020C020001");
    assert_eq!(sw(&mut c, "00B0000004"), "6982");
    assert_eq!(sw(&mut c, "00200080085349474E32303234"), "6981"); // 0001 is no PIN
    assert_eq!(sw(&mut c, "0020009B085349474E32303234"), "9000"); // SIGN2024
    assert_eq!(send(&mut c, "00B0000004"), "308205DC9000");
    assert_eq!(c.state().sign_password_tries_left, Some(5));
    // The signature key signs after the password; by SFI 1A.
    let di = binding_digest_info(b"sig");
    let r = c.process(&hex::decode(sign_apdu(&di).replacen("802A0080", "802A009A", 1)).unwrap());
    assert_eq!(r.len(), 258);
    // Five wrong passwords block it.
    for left in (0..5).rev() {
        assert_eq!(sw(&mut c, "0020009B06414243313233"), format!("63C{left}"));
    }
    assert_eq!(sw(&mut c, "0020009B085349474E32303234"), "6984");
    assert_eq!(sw(&mut c, "0020009B"), "63C0");
}

#[test]
fn change_reference_data_changes_the_pin_and_persists_it() {
    let (mut c, saved) = card();
    sw(&mut c, SELECT_JPKI);
    sw(&mut c, SELECT_0018);
    // Without VERIFY first: refused, nothing spent.
    assert_eq!(sw(&mut c, "002401800431323334"), "6982");
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
    // Not four digits: 6A80.
    assert_eq!(sw(&mut c, "00240180043132333A"), "6A80");
    assert_eq!(sw(&mut c, "0024018003313233"), "6A80");
    assert_eq!(sw(&mut c, "002401800431323334"), "9000"); // 1234
    assert_eq!(
        saved
            .lock()
            .unwrap()
            .last()
            .unwrap()
            .user_auth_pin
            .as_deref(),
        Some("1234")
    );
    c.reset();
    sw(&mut c, SELECT_JPKI);
    sw(&mut c, SELECT_0018);
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "63C2"); // the old PIN is wrong now
    assert_eq!(sw(&mut c, "002000800431323334"), "9000");
    // P1=00: old and new in one command; a wrong old one costs a try.
    assert_eq!(sw(&mut c, "002400800430303030"), "6700"); // no new value
    assert_eq!(sw(&mut c, "00240080083030303034343434"), "63C2");
    assert_eq!(sw(&mut c, "00240080083132333434373239"), "9000");
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
    // The state's Debug never shows the PIN.
    assert!(!format!("{:?}", c.state()).contains("4729"));
    // Bad P1.
    assert_eq!(sw(&mut c, "002402800431323334"), "6A86");
}

#[test]
fn kenhojo_my_number_and_basic_four_facts() {
    let (mut c, _) = full_card(false);
    let kenhojo = format!("00A4040C0A{}", hex::encode(KENHOJO_AID));
    assert_eq!(sw(&mut c, &kenhojo), "9000");
    // JPKI EFs are not in Kenhojo.
    assert_eq!(sw(&mut c, SELECT_000A), "6A82");
    sw(&mut c, "00A4020C020001");
    assert_eq!(sw(&mut c, "00B0000000"), "6982");
    sw(&mut c, "00A4020C020011");
    assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C3");
    assert_eq!(sw(&mut c, VERIFY_WRONG), "63C2");
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "9000");
    sw(&mut c, "00A4020C020001");
    let mut expected = crate::surface::my_number_file("123456789018");
    expected.extend_from_slice(&[0x90, 0x00]);
    assert_eq!(c.process(&hex::decode("00B0000000").unwrap()), expected);
    sw(&mut c, "00A4020C020002");
    let (facts, _) = read_all(&mut c);
    let objects = crate::surface::tests::walk(&facts, 0xFF20, &[0xDF22, 0xDF23, 0xDF24, 0xDF25]);
    let expected_values: [&[u8]; 4] = [
        "山田\u{3000}太郎".as_bytes(),
        "東京都千代田区千代田1-1".as_bytes(),
        b"19800102",
        b"1",
    ];
    for (i, (_, value)) in objects.iter().enumerate() {
        assert_eq!(value.as_slice(), expected_values[i]);
    }
    // Selecting JPKI drops the Kenhojo verification.
    sw(&mut c, SELECT_JPKI);
    sw(&mut c, &kenhojo);
    sw(&mut c, "00A4020C020001");
    assert_eq!(sw(&mut c, "00B0000000"), "6982");
    // Applications missing from a profile are refused.
    let (mut plain, _) = card();
    assert_eq!(sw(&mut plain, &kenhojo), "6A82");
}

/// A face-only card: the certificate is free as on any card, every VERIFY of the PINs it
/// was issued without answers 6984 (the empty one first of all, before any secret), the
/// key refuses to sign (6982), nothing can set a PIN, and nothing is ever saved; the
/// card-face applications still open with the numbers printed on the card.
#[test]
fn a_face_only_card_has_no_pin_to_verify_and_signs_nothing() {
    let (mut c, saved) = card_of_kind(false, true);
    sw(&mut c, SELECT_JPKI);
    sw(&mut c, SELECT_000A);
    assert_eq!(send(&mut c, "00B0000004").len(), 12);
    sw(&mut c, "00A4020C020008");
    assert_eq!(send(&mut c, "00B0000000"), "008F009000");
    sw(&mut c, SELECT_0018);
    assert_eq!(sw(&mut c, EMPTY_VERIFY), "6984");
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "6984");
    assert_eq!(sw(&mut c, VERIFY_WRONG), "6984");
    assert_eq!(sw(&mut c, "0020009800"), "6984"); // by SFI, empty
    assert_eq!(sw(&mut c, "002000980434373239"), "6984");
    assert_eq!(sw(&mut c, "002401800431323334"), "6984");
    assert_eq!(sw(&mut c, "00240080083437323931323334"), "6984");
    sw(&mut c, SELECT_0017);
    assert_eq!(sw(&mut c, &sign_apdu(&binding_digest_info(b"x"))), "6982");
    // The signature half is absent: its password is presented as blocked (63C0), its
    // key and certificate are not there.
    sw(&mut c, "00A4020C02001B");
    assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C0");
    assert_eq!(sw(&mut c, "00A4020C020001"), "6A82");
    assert_eq!(sw(&mut c, "00A4020C02001A"), "6A82");
    // Kenhojo: no PIN either, but 照合番号A opens the My Number.
    let kenhojo = format!("00A4040C0A{}", hex::encode(KENHOJO_AID));
    sw(&mut c, &kenhojo);
    sw(&mut c, "00A4020C020011");
    assert_eq!(sw(&mut c, EMPTY_VERIFY), "6984");
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "6984");
    sw(&mut c, "00A4020C020014");
    assert_eq!(sw(&mut c, "002000800C313233343536373839303138"), "9000");
    sw(&mut c, "00A4020C020001");
    assert_eq!(sw(&mut c, "00B0000000"), "9000");
    // Kenkaku: 照合番号B opens the card face.
    let kenkaku = format!("00A4040C0A{}", hex::encode(KENKAKU_AID));
    sw(&mut c, &kenkaku);
    sw(&mut c, "00A4020C020012");
    assert_eq!(sw(&mut c, "002000800E3535303130323230333431323334"), "9000");
    sw(&mut c, "00A4020C020002");
    assert_eq!(sw(&mut c, "00B0000000"), "9000");
    assert!(saved.lock().unwrap().is_empty(), "nothing to save");
    // The same commands on a card issued with PINs: 63C3 and a signature.
    let (mut d, _) = card_of_kind(false, false);
    sw(&mut d, SELECT_JPKI);
    sw(&mut d, SELECT_0018);
    assert_eq!(sw(&mut d, EMPTY_VERIFY), "63C3");
}

#[test]
fn kenhojo_numbers_a_and_b_each_open_one_file_and_0012_is_blocked() {
    let (mut c, _) = full_card(false);
    let kenhojo = format!("00A4040C0A{}", hex::encode(KENHOJO_AID));
    sw(&mut c, &kenhojo);
    // 0012: blocked as issued, whatever is sent.
    sw(&mut c, "00A4020C020012");
    assert_eq!(sw(&mut c, EMPTY_VERIFY), "63C0");
    assert_eq!(sw(&mut c, VERIFY_RIGHT), "6984");
    // 照合番号A (0014): the My Number; opens EF 0001, not 0002.
    sw(&mut c, "00A4020C020014");
    assert_eq!(sw(&mut c, EMPTY_VERIFY), "63CA");
    assert_eq!(sw(&mut c, "002000800C313233343536373839303138"), "9000");
    sw(&mut c, "00A4020C020001");
    assert_eq!(sw(&mut c, "00B0000000"), "9000");
    sw(&mut c, "00A4020C020002");
    assert_eq!(sw(&mut c, "00B0000000"), "6982");
    // 照合番号B (0015): opens EF 0002, not 0001.
    c.reset();
    sw(&mut c, &kenhojo);
    sw(&mut c, "00A4020C020015");
    assert_eq!(sw(&mut c, "002000800E3535303130323230333431323335"), "63C9");
    assert_eq!(sw(&mut c, "002000800E3535303130323230333431323334"), "9000");
    sw(&mut c, "00A4020C020002");
    assert_eq!(sw(&mut c, "00B0000000"), "9000");
    sw(&mut c, "00A4020C020001");
    assert_eq!(sw(&mut c, "00B0000000"), "6982");
    // Ten wrong 照合番号B block it: 63C0 on the last, then 6984.
    for left in (0..10).rev() {
        assert_eq!(
            sw(&mut c, "002000950E3535303130323230333431323335"),
            format!("63C{left:X}")
        );
    }
    assert_eq!(sw(&mut c, "002000950E3535303130323230333431323334"), "6984");
    assert_eq!(sw(&mut c, "0020009500"), "63C0");
}

#[test]
fn kenkaku_card_face_and_the_simulator_only_face_path() {
    let face = crate::surface::tests::sample_face();
    let photo = &face.photo;
    let kenkaku = format!("00A4040C0A{}", hex::encode(KENKAKU_AID));
    let (mut c, _) = full_card(false);
    assert_eq!(sw(&mut c, &kenkaku), "9000");
    sw(&mut c, "00A4020C020002");
    assert_eq!(sw(&mut c, "00B0000000"), "6982");
    // The simulator-only read is refused like any unknown class without the flag.
    assert_eq!(sw(&mut c, "80B0000000"), "6E00");
    sw(&mut c, "00A4020C020012");
    assert_eq!(sw(&mut c, EMPTY_VERIFY), "63CA");
    assert_eq!(sw(&mut c, "002000800E3535303130323230333431323335"), "63C9");
    assert_eq!(sw(&mut c, "002000800E3535303130323230333431323334"), "9000");
    // 照合番号B cannot be changed.
    assert_eq!(sw(&mut c, "002401800E3535303130323230333431323335"), "6985");
    sw(&mut c, "00A4020C020002");
    let (file, _) = read_all(&mut c);
    assert_eq!(file, face.file());
    // The birth-date key does not open it (it opens only the age record, EF 0001).
    c.reset();
    sw(&mut c, &kenkaku);
    assert_eq!(sw(&mut c, "0020009106353530313232"), "63C9"); // 550122
    assert_eq!(sw(&mut c, "0020009106353530313032"), "9000"); // 550102
    sw(&mut c, "00A4020C020002");
    assert_eq!(sw(&mut c, "00B0000000"), "6982");
    // 照合番号A (the My Number, key 0013, by short id) opens it.
    assert_eq!(sw(&mut c, "0020009300"), "63CA");
    assert_eq!(sw(&mut c, "002000930C313233343536373839303137"), "63C9");
    assert_eq!(sw(&mut c, "002000930C313233343536373839303138"), "9000");
    sw(&mut c, "00A4020C020002");
    assert_eq!(sw(&mut c, "00B0000000"), "9000");

    let (mut c, _) = full_card(true);
    sw(&mut c, &kenkaku);
    let mut expected = photo[..256].to_vec();
    expected.extend_from_slice(&[0x90, 0x00]);
    assert_eq!(c.process(&hex::decode("80B0000000").unwrap()), expected);
    let mut expected = photo[256..].to_vec();
    expected.extend_from_slice(&[0x90, 0x00]);
    assert_eq!(c.process(&hex::decode("80B0010000").unwrap()), expected);
    assert_eq!(sw(&mut c, "80B0020000"), "6B00");
    // Only in Kenkaku.
    sw(&mut c, SELECT_JPKI);
    assert_eq!(sw(&mut c, "80B0000000"), "6E00");
}
