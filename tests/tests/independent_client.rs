//! An independent client: `myna-card` (crates.io, not written by onshi), a JPKI library that
//! reads all three applications, drives the virtual card through a private pcscd exactly as it
//! drives a real card: the JPKI certificate, PIN status, VERIFY and a signature checked with
//! the certificate's key; Kenhojo's My Number and basic four facts (the library checks the
//! DF21 offset table); Kenkaku's card face with its JPEG 2000 photo, decoded again by
//! OpenJPEG's `opj_decompress`; the wrong-PIN and blocked paths; and a face-only card
//! (顔認証マイナンバーカード), whose certificate and card face read as usual while its PINs
//! answer `6984` even to the counter query.
//!
//! The PC/SC client library reads `PCSCLITE_CSOCK_NAME` once per process, so everything that
//! talks to the card is in one test function, which sets it before its first PC/SC call.
//! Needs root (the private pcscd), the binaries built and `opj_decompress`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::Command;

use myna_card::ap::jpki::{JpkiAp, SignatureScheme};
use myna_card::ap::surface::{self, SurfaceAp};
use myna_card::ap::text::{self, TextAp};
use myna_card::data::ImageFormat;
use myna_card::transport::pcsc::{self, Sharing};
use myna_card::{Error, Pin, Retries};
use onshi_e2e::{Card, Pcscd, World};

const READER: &str = "Virtual PCD 00 00";

fn world() -> &'static World {
    // Seven cards: the seventh is the face-only card.
    World::shared(env!("CARGO_TARGET_TMPDIR"), "independent-client-world", 7)
}

fn hex_bytes(v: &serde_json::Value) -> Vec<u8> {
    let text = v.as_str().unwrap();
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn pem_der(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text).unwrap().into_contents()
}

#[test]
fn myna_card_reads_every_application_of_the_virtual_card() {
    let tmp = tempfile::tempdir().unwrap();
    let (profile_path, pin) = world().private_card("valid", tmp.path()).unwrap();
    let entry = world().card("valid").unwrap();
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&profile_path).unwrap()).unwrap();
    let pcscd = Pcscd::start().expect("private pcscd");
    let attached = Card::attach(&profile_path, &pcscd.vpcd(), &[]).unwrap();
    pcscd.wait_until_present(READER).unwrap();
    // The only PC/SC user in this process, set before its first call (module docs).
    std::env::set_var("PCSCLITE_CSOCK_NAME", pcscd.socket());
    let mut card = pcsc::connect(READER, Sharing::Exclusive).unwrap();

    // JPKI: certificate, PIN status, VERIFY, a signature the certificate's key verifies.
    let mut jpki = JpkiAp::select(&mut card).unwrap();
    let der = jpki.read_auth_certificate_der().unwrap();
    assert_eq!(
        der,
        pem_der(profile["user_auth_certificate"].as_str().unwrap())
    );
    let certificate = jpki.read_auth_certificate().unwrap();
    assert_eq!(jpki.auth_pin_retries().unwrap(), Retries::Remaining(3));
    jpki.verify_auth_pin(&Pin::numeric(&pin).unwrap()).unwrap();
    let message = b"onshi independent client";
    let signature = jpki
        .sign_with_auth_key_checked(SignatureScheme::Verbatim, &digest_info(message))
        .unwrap();
    certificate
        .public_key()
        .unwrap()
        .verify_pkcs1_sha256(message, &signature)
        .unwrap();
    // The signature password (5 tries) is there too.
    assert_eq!(jpki.sign_pin_retries().unwrap(), Retries::Remaining(5));

    // Kenhojo: My Number and the basic four facts, the offset table checked by the library.
    let mut kenhojo = TextAp::select(&mut card).unwrap();
    assert_eq!(
        kenhojo.retries(text::ef::PIN).unwrap(),
        Retries::Remaining(3)
    );
    kenhojo.verify_pin(&Pin::numeric(&pin).unwrap()).unwrap();
    let my_number = kenhojo.read_my_number().unwrap();
    assert_eq!(my_number.as_str(), entry["my_number"].as_str().unwrap());
    let facts = kenhojo.read_attributes().unwrap();
    let k = &profile["kenhojo"];
    assert_eq!(facts.name, k["name"].as_str().unwrap());
    assert_eq!(facts.address, k["address"].as_str().unwrap());
    let birth = k["birth_date"].as_str().unwrap();
    assert_eq!(
        format!(
            "{:04}{:02}{:02}",
            facts.birth_date.year, facts.birth_date.month, facts.birth_date.day
        ),
        birth
    );
    assert_eq!(sex_digit(&facts.sex), k["sex"].as_str().unwrap());
    // The physical My Number file is 17 bytes, filler included, as on a real card.
    assert_eq!(kenhojo.read_my_number_file().unwrap().len(), 17);

    // Kenkaku: the whole card face with 照合番号B.
    let mut kenkaku = SurfaceAp::select(&mut card).unwrap();
    assert_eq!(
        kenkaku.retries(surface::ef::CODE_B).unwrap(),
        Retries::Remaining(10)
    );
    let number_b = entry["number_b"].as_str().unwrap();
    kenkaku
        .verify_code_b(&Pin::numeric(number_b).unwrap())
        .unwrap();
    let face = kenkaku.read_card_face().unwrap();
    let kk = &profile["kenkaku"];
    assert_eq!(
        format!(
            "{:04}{:02}{:02}",
            face.birth_date.year, face.birth_date.month, face.birth_date.day
        ),
        birth
    );
    assert_eq!(sex_digit(&face.sex), kk["sex"].as_str().unwrap());
    assert_eq!(
        format!(
            "{:04}{:02}{:02}",
            face.expiry.year, face.expiry.month, face.expiry.day
        ),
        kk["expiry_date"].as_str().unwrap()
    );
    assert_eq!(face.public_key.bits(), 2048);
    assert_eq!(face.signature.len(), 256);
    assert_eq!(face.photo.format, ImageFormat::Jpeg2000);
    assert_eq!(face.photo.data, hex_bytes(&kk["face_photo"]));
    for image in [
        &face.name_image,
        &face.address_image,
        &face.security_code_image,
    ] {
        assert_eq!(image.format, ImageFormat::Png);
    }
    assert_eq!(face.name_image.data, hex_bytes(&kk["name_image"]));
    // The photo is a real JPEG 2000: OpenJPEG's own decoder reads it back as a greyscale image.
    let jp2 = tmp.path().join("face.jp2");
    let pgm = tmp.path().join("face.pgm");
    std::fs::write(&jp2, &face.photo.data).unwrap();
    let out = Command::new("opj_decompress")
        .arg("-i")
        .arg(&jp2)
        .arg("-o")
        .arg(&pgm)
        .output()
        .expect("opj_decompress (Debian libopenjp2-tools, scripts/setup.sh)");
    assert!(out.status.success(), "{out:?}");
    let decoded = std::fs::read(&pgm).unwrap();
    // A binary PGM (opj_decompress adds a comment line) of the testbed's 32×40 face.
    let header = String::from_utf8_lossy(&decoded[..decoded.len().min(64)]).into_owned();
    assert!(header.starts_with("P5\n"), "{header:?}");
    assert!(header.contains("\n32 40\n255\n"), "{header:?}");

    // Wrong and blocked: the Kenhojo PIN counts down and blocks; VERIFY then answers 6984 and
    // the counter query 63C0, which the library reports as blocked.
    let mut kenhojo = TextAp::select(&mut card).unwrap();
    let wrong = Pin::numeric(if pin == "0000" { "1111" } else { "0000" }).unwrap();
    for left in [2u8, 1] {
        match kenhojo.verify_pin(&wrong) {
            Err(Error::PinIncorrect { retries }) => assert_eq!(retries, Some(left)),
            other => panic!("expected a wrong PIN, got {other:?}"),
        }
    }
    assert!(matches!(kenhojo.verify_pin(&wrong), Err(Error::PinBlocked)));
    assert!(matches!(
        kenhojo.verify_pin(&Pin::numeric(&pin).unwrap()),
        Err(Error::PinBlocked)
    ));
    assert_eq!(kenhojo.retries(text::ef::PIN).unwrap(), Retries::Blocked);
    kenhojo.card().select_ef(text::ef::MY_NUMBER).unwrap();
    assert!(kenhojo.card().read_binary_all().is_err());
    // The JPKI PIN has its own counter, untouched.
    let mut jpki = JpkiAp::select(&mut card).unwrap();
    assert_eq!(jpki.auth_pin_retries().unwrap(), Retries::Remaining(3));
    drop(card);
    drop(attached);
    pcscd.wait_until_empty().unwrap();

    // A face-only card: no PIN was ever set. The library reads the certificate and, with the
    // numbers printed on the card, the My Number and the card face, as on any card; the
    // counter query of the JPKI and Kenhojo PINs answers 6984, which this library reports as
    // blocked (it maps 6984 there to Retries::Blocked), and VERIFY is refused as blocked
    // whatever is sent; the key signs nothing; there is no signature certificate.
    let (face_only_path, no_pin) = world().private_card("face-only", tmp.path()).unwrap();
    assert!(no_pin.is_empty());
    let entry = world().card("face-only").unwrap();
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&face_only_path).unwrap()).unwrap();
    assert_eq!(profile["face_only"], true);
    let _attached = Card::attach(&face_only_path, &pcscd.vpcd(), &[]).unwrap();
    pcscd.wait_until_present(READER).unwrap();
    let mut card = pcsc::connect(READER, Sharing::Exclusive).unwrap();
    let mut jpki = JpkiAp::select(&mut card).unwrap();
    assert_eq!(
        jpki.read_auth_certificate_der().unwrap(),
        pem_der(profile["user_auth_certificate"].as_str().unwrap())
    );
    assert_eq!(jpki.auth_pin_retries().unwrap(), Retries::Blocked);
    jpki.card().select_ef(0x0018).unwrap();
    // The counter query itself, as the library sends it: 6984, not 63Cx.
    let query = myna_card::Command::new(0x00, 0x20, 0x00, 0x80);
    assert_eq!(jpki.card().call(&query).unwrap().status.value(), 0x6984);
    assert!(matches!(
        jpki.verify_auth_pin(&Pin::numeric("1234").unwrap()),
        Err(Error::PinBlocked)
    ));
    assert!(jpki
        .sign_with_auth_key_checked(SignatureScheme::Verbatim, &digest_info(b"x"))
        .is_err());
    assert!(jpki.read_sign_certificate_der().is_err());
    let mut kenhojo = TextAp::select(&mut card).unwrap();
    assert_eq!(kenhojo.retries(text::ef::PIN).unwrap(), Retries::Blocked);
    let my_number = entry["my_number"].as_str().unwrap();
    kenhojo
        .verify_code_a(&Pin::numeric(my_number).unwrap())
        .unwrap();
    assert_eq!(kenhojo.read_my_number().unwrap().as_str(), my_number);
    let mut kenkaku = SurfaceAp::select(&mut card).unwrap();
    kenkaku
        .verify_code_b(&Pin::numeric(entry["number_b"].as_str().unwrap()).unwrap())
        .unwrap();
    let face = kenkaku.read_card_face().unwrap();
    assert_eq!(
        face.photo.data,
        hex_bytes(&profile["kenkaku"]["face_photo"])
    );
}

/// SHA-256 DigestInfo of `message` (what the card signs with P1=00).
fn digest_info(message: &[u8]) -> Vec<u8> {
    use rsa::sha2::{Digest, Sha256};
    let mut out = vec![
        0x30, 0x31, 0x30, 0x0D, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
    ];
    out.extend_from_slice(&[0x01, 0x05, 0x00, 0x04, 0x20]);
    out.extend_from_slice(&Sha256::digest(message));
    out
}

fn sex_digit(sex: &myna_card::Sex) -> &'static str {
    match format!("{sex:?}").as_str() {
        "Male" => "1",
        "Female" => "2",
        "NotApplicable" => "9",
        _ => "?",
    }
}
