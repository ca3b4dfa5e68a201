//! What is written on a card when it is issued: the certificates, the key and the PIN, decoded
//! from a [`CardProfile`] and checked, so a broken profile is refused with a clear message
//! before the card ever answers an APDU.

use std::fmt;

use onshi_jpki::constants::USER_AUTH_SIGNATURE_LEN;
use onshi_jpki::Pin;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPrivateKey};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;
use zeroize::Zeroizing;

use crate::profile::{CardProfile, KenkakuProfile};
use crate::surface::{CardFace, JP2_SIGNATURE, PNG_SIGNATURE};

/// Why a card cannot be built from a profile. No variant carries key material or the PIN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CardBuildError {
    #[error("profile ATR is unusable: {0}")]
    Atr(String),
    #[error("the user-authentication PIN is not exactly 4 ASCII digits")]
    Pin,
    #[error("a face-only card has no PIN and no signature certificate")]
    FaceOnly,
    #[error("{what} is not a PEM certificate: {reason}")]
    CertificatePem { what: &'static str, reason: String },
    #[error("{what} is not a DER X.509 certificate: {reason}")]
    Certificate { what: &'static str, reason: String },
    #[error(
        "{what} must start 30 82 (a SEQUENCE with a two-byte length) for card clients to read it"
    )]
    CertificateHeader { what: &'static str },
    #[error("the user-authentication private key cannot be decoded: {reason}")]
    PrivateKey { reason: String },
    #[error("the user-authentication key is RSA-{bits}; the card holds an RSA-2048 key")]
    KeySize { bits: usize },
    #[error("the user-authentication certificate does not certify the profile's private key")]
    KeyMismatch,
    #[error("the signature password must be 6 to 16 characters of A-Z and 0-9")]
    SignPassword,
    #[error("the signature private key cannot be decoded or does not match the signature certificate: {reason}")]
    SignatureKey { reason: String },
    #[error("Kenhojo: {0}")]
    Kenhojo(String),
    #[error("Kenkaku: {0}")]
    Kenkaku(String),
    #[error("{what} is {len} bytes; an EF of this card holds at most {max}")]
    FileTooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
}

/// Everything a card holds apart from its PIN retry counter. Fields are public so tests and
/// fault scenarios can build unusual cards; [`from_profile`](Self::from_profile) is the checked
/// way.
pub struct CardContents {
    /// A short name for logs and traces.
    pub name: String,
    pub atr: Vec<u8>,
    /// EF `000A`, DER.
    pub user_auth_certificate: Vec<u8>,
    /// EF `000B`, DER.
    pub user_auth_ca_certificate: Vec<u8>,
    /// EF `0017`. `RsaPrivateKey` zeroizes itself on drop.
    pub user_auth_key: RsaPrivateKey,
    /// EF `0018`; `None` on a face-only card, whose PINs were never set.
    pub user_auth_pin: Option<Pin>,
    /// EFs `0001`, `0002`, `001A`, `001B`; `None`: no signature certificate.
    pub signature: Option<SignatureContents>,
    /// The Kenhojo application; `None`: not on this card.
    pub kenhojo: Option<KenhojoContents>,
    /// The Kenkaku application; `None`: not on this card.
    pub kenkaku: Option<KenkakuContents>,
}

/// The signature half of JPKI.
pub struct SignatureContents {
    /// EF `0001`, DER.
    pub certificate: Vec<u8>,
    /// EF `0002`, DER.
    pub ca_certificate: Vec<u8>,
    /// EF `001A`.
    pub key: RsaPrivateKey,
    /// EF `001B`: 6–16 of `A–Z0–9`.
    pub password: Zeroizing<Vec<u8>>,
}

/// The Kenhojo application (jpki-card.md §5).
pub struct KenhojoContents {
    /// PIN EF `0011`: 4 ASCII digits (the user-authentication PIN at issue); `None` on a
    /// face-only card.
    pub pin: Option<Zeroizing<Vec<u8>>>,
    /// 12 ASCII digits with a valid check digit.
    pub my_number: String,
    pub name: String,
    pub address: String,
    /// `YYYYMMDD`.
    pub birth_date: String,
    /// `1`, `2` or `9`.
    pub sex: String,
}

/// The Kenkaku application (jpki-card.md §5).
pub struct KenkakuContents {
    /// PIN EF `0011`: 6 ASCII digits.
    pub birth_date_key: Zeroizing<Vec<u8>>,
    /// PIN EF `0012`: 14 ASCII digits.
    pub number_b: Zeroizing<Vec<u8>>,
    /// EF `0002`.
    pub face: CardFace,
    /// Simulator only: the proprietary READ BINARY `80 B0` serves the photo freely.
    pub simulator_face_export: bool,
}

/// The check digit of a My Number (個人番号) from its first 11 digits: weights 2–7 then 2–6
/// from the right, remainder mod 11, `0` for remainders 0 and 1, else 11 − remainder.
pub fn my_number_check_digit(first_eleven: &[u8; 11]) -> Option<u8> {
    let mut sum: u32 = 0;
    for (n, &c) in (1u32..).zip(first_eleven.iter().rev()) {
        if !c.is_ascii_digit() {
            return None;
        }
        let weight = if n <= 6 { n + 1 } else { n - 5 };
        sum += u32::from(c - b'0') * weight;
    }
    let r = sum % 11;
    Some(if r <= 1 { 0 } else { (11 - r) as u8 })
}

/// True for 12 ASCII digits whose last is the check digit of the first 11.
pub fn is_valid_my_number(s: &str) -> bool {
    let b = s.as_bytes();
    let Ok(first) = <[u8; 11]>::try_from(b.get(..11).unwrap_or_default()) else {
        return false;
    };
    b.len() == 12
        && b.iter().all(u8::is_ascii_digit)
        && my_number_check_digit(&first).is_some_and(|d| b.get(11) == Some(&(b'0' + d)))
}

fn digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// 6–16 characters of `A–Z0–9`.
pub fn is_valid_sign_password(s: &[u8]) -> bool {
    (6..=16).contains(&s.len())
        && s.iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl fmt::Debug for CardContents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardContents")
            .field("name", &self.name)
            .field("atr", &hex::encode_upper(&self.atr))
            .field(
                "user_auth_certificate_len",
                &self.user_auth_certificate.len(),
            )
            .field(
                "user_auth_ca_certificate_len",
                &self.user_auth_ca_certificate.len(),
            )
            .finish_non_exhaustive()
    }
}

const WHAT_CERT: &str = "user-authentication certificate";
const WHAT_CA: &str = "user-authentication CA certificate";
const WHAT_SIGN_CERT: &str = "signature certificate";
const WHAT_SIGN_CA: &str = "signature CA certificate";

impl CardContents {
    /// Decodes and checks a profile: PEM certificates to DER (each must parse as X.509 and
    /// start `30 82`), the PKCS#8 key (PKCS#1 is accepted too) must be a valid RSA-2048 key
    /// whose public half is the certificate's, the PIN must be 4 digits.
    pub fn from_profile(profile: &CardProfile) -> Result<Self, CardBuildError> {
        let atr = profile.atr_bytes().map_err(CardBuildError::Atr)?;
        let user_auth_pin = if profile.face_only {
            if !profile.user_auth_pin.is_empty() || profile.signature.is_some() {
                return Err(CardBuildError::FaceOnly);
            }
            None
        } else {
            Some(Pin::new(&profile.user_auth_pin).map_err(|_| CardBuildError::Pin)?)
        };
        let user_auth_certificate = certificate_der(&profile.user_auth_certificate, WHAT_CERT)?;
        let user_auth_ca_certificate = certificate_der(&profile.user_auth_ca_certificate, WHAT_CA)?;
        let user_auth_key = private_key(&profile.user_auth_private_key)?;
        check_key_matches_certificate(&user_auth_key, &user_auth_certificate)?;
        let signature = match &profile.signature {
            None => None,
            Some(sig) => {
                if !is_valid_sign_password(sig.password.as_bytes()) {
                    return Err(CardBuildError::SignPassword);
                }
                let certificate = certificate_der(&sig.certificate, WHAT_SIGN_CERT)?;
                let ca_certificate = certificate_der(&sig.ca_certificate, WHAT_SIGN_CA)?;
                let key =
                    private_key(&sig.private_key).map_err(|e| CardBuildError::SignatureKey {
                        reason: e.to_string(),
                    })?;
                check_key_matches_certificate(&key, &certificate).map_err(|_| {
                    CardBuildError::SignatureKey {
                        reason: "the key is not the certificate's".into(),
                    }
                })?;
                Some(SignatureContents {
                    certificate,
                    ca_certificate,
                    key,
                    password: Zeroizing::new(sig.password.as_bytes().to_vec()),
                })
            }
        };
        let kenhojo = match &profile.kenhojo {
            None => None,
            Some(k) => {
                if !is_valid_my_number(&k.my_number) {
                    return Err(CardBuildError::Kenhojo(
                        "my_number must be 12 digits with a valid check digit".into(),
                    ));
                }
                if !digits(&k.birth_date, 8) {
                    return Err(CardBuildError::Kenhojo(
                        "birth_date must be YYYYMMDD".into(),
                    ));
                }
                if !matches!(k.sex.as_str(), "1" | "2" | "9") {
                    return Err(CardBuildError::Kenhojo("sex must be 1, 2 or 9".into()));
                }
                if k.name.len() + k.address.len() > 1500 {
                    return Err(CardBuildError::Kenhojo(
                        "name and address are too long".into(),
                    ));
                }
                Some(KenhojoContents {
                    pin: user_auth_pin
                        .is_some()
                        .then(|| Zeroizing::new(profile.user_auth_pin.as_bytes().to_vec())),
                    my_number: k.my_number.clone(),
                    name: k.name.clone(),
                    address: k.address.clone(),
                    birth_date: k.birth_date.clone(),
                    sex: k.sex.clone(),
                })
            }
        };
        let kenkaku = match &profile.kenkaku {
            None => None,
            Some(k) => {
                if !digits(&k.birth_date_key, 6) {
                    return Err(CardBuildError::Kenkaku(
                        "birth_date_key must be 6 digits (era YYMMDD)".into(),
                    ));
                }
                if !digits(&k.number_b, 14) {
                    return Err(CardBuildError::Kenkaku("number_b must be 14 digits".into()));
                }
                let face = card_face(k)?;
                Some(KenkakuContents {
                    birth_date_key: Zeroizing::new(k.birth_date_key.as_bytes().to_vec()),
                    number_b: Zeroizing::new(k.number_b.as_bytes().to_vec()),
                    face,
                    simulator_face_export: k.simulator_face_export,
                })
            }
        };
        Ok(Self {
            name: profile.name.clone(),
            atr,
            user_auth_certificate,
            user_auth_ca_certificate,
            user_auth_key,
            user_auth_pin,
            signature,
            kenhojo,
            kenkaku,
        })
    }
}

/// Kenkaku EF `0002` from a profile, each object checked for the shape real cards use.
fn card_face(k: &KenkakuProfile) -> Result<CardFace, CardBuildError> {
    let refuse = |what: &str| CardBuildError::Kenkaku(what.to_owned());
    let bytes = |hex_text: &str, field: &str| {
        hex::decode(hex_text).map_err(|e| refuse(&format!("{field} is not hex: {e}")))
    };
    if k.birth_date.is_empty() {
        return Err(refuse(
            "the profile has no card face (birth_date, sex, images, signature...): it predates \
             the full Kenkaku EF 0002; rebuild the world with testbed build",
        ));
    }
    if !digits(&k.birth_date, 8) || !digits(&k.expiry_date, 8) {
        return Err(refuse("birth_date and expiry_date must be YYYYMMDD"));
    }
    if !matches!(k.sex.as_str(), "1" | "2" | "9") {
        return Err(refuse("sex must be 1, 2 or 9"));
    }
    let photo = bytes(&k.face_photo, "face_photo")?;
    if !photo.starts_with(&JP2_SIGNATURE) {
        return Err(refuse(
            "face_photo must be a JPEG 2000 JP2 file (it starts 0000000C6A5020200D0A870A)",
        ));
    }
    let public_key = bytes(&k.public_key, "public_key")?;
    if public_key.first() != Some(&0x90) {
        return Err(refuse(
            "public_key must be 90 (exponent) then 91 (modulus) objects",
        ));
    }
    let mut images = Vec::with_capacity(3);
    for (text, field) in [
        (&k.name_image, "name_image"),
        (&k.address_image, "address_image"),
        (&k.security_code_image, "security_code_image"),
    ] {
        let image = bytes(text, field)?;
        if !image.starts_with(&PNG_SIGNATURE) {
            return Err(refuse(&format!("{field} must be a PNG")));
        }
        images.push(image);
    }
    let signature = bytes(&k.signature, "signature")?;
    if signature.len() != 256 {
        return Err(refuse("signature must be 256 bytes"));
    }
    let [name_image, address_image, security_code_image] =
        <[Vec<u8>; 3]>::try_from(images).map_err(|_| refuse("images"))?;
    Ok(CardFace {
        birth_date: k.birth_date.clone(),
        sex: k.sex.clone(),
        public_key,
        name_image,
        address_image,
        photo,
        signature,
        expiry_date: k.expiry_date.clone(),
        security_code_image,
    })
}

fn certificate_der(pem_text: &str, what: &'static str) -> Result<Vec<u8>, CardBuildError> {
    let block = pem::parse(pem_text).map_err(|e| CardBuildError::CertificatePem {
        what,
        reason: e.to_string(),
    })?;
    if block.tag() != "CERTIFICATE" {
        return Err(CardBuildError::CertificatePem {
            what,
            reason: format!("the PEM label is {:?}, not \"CERTIFICATE\"", block.tag()),
        });
    }
    let der = block.into_contents();
    parse_certificate(&der, what)?;
    if !der.starts_with(&[0x30, 0x82]) {
        return Err(CardBuildError::CertificateHeader { what });
    }
    Ok(der)
}

fn parse_certificate<'a>(
    der: &'a [u8],
    what: &'static str,
) -> Result<X509Certificate<'a>, CardBuildError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok((rest, _)) => Err(CardBuildError::Certificate {
            what,
            reason: format!("{} bytes follow the certificate", rest.len()),
        }),
        Err(e) => Err(CardBuildError::Certificate {
            what,
            reason: e.to_string(),
        }),
    }
}

fn private_key(pem_text: &str) -> Result<RsaPrivateKey, CardBuildError> {
    let key = if pem_text.contains("BEGIN RSA PRIVATE KEY") {
        RsaPrivateKey::from_pkcs1_pem(pem_text).map_err(|e| CardBuildError::PrivateKey {
            reason: e.to_string(),
        })?
    } else {
        RsaPrivateKey::from_pkcs8_pem(pem_text).map_err(|e| CardBuildError::PrivateKey {
            reason: e.to_string(),
        })?
    };
    key.validate().map_err(|e| CardBuildError::PrivateKey {
        reason: e.to_string(),
    })?;
    if key.size() != USER_AUTH_SIGNATURE_LEN {
        return Err(CardBuildError::KeySize {
            bits: key.n().bits(),
        });
    }
    Ok(key)
}

fn check_key_matches_certificate(
    key: &RsaPrivateKey,
    certificate: &[u8],
) -> Result<(), CardBuildError> {
    let cert = parse_certificate(certificate, WHAT_CERT)?;
    match cert.public_key().parsed() {
        Ok(PublicKey::RSA(public))
            if BigUint::from_bytes_be(public.modulus) == *key.n()
                && BigUint::from_bytes_be(public.exponent) == *key.e() =>
        {
            Ok(())
        }
        _ => Err(CardBuildError::KeyMismatch),
    }
}

/// The facts `virtual-card info` prints about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    pub subject: String,
    pub issuer: String,
    /// Colon-separated hex.
    pub serial: String,
    pub not_before: String,
    pub not_after: String,
}

/// Summarises a DER certificate (already checked by [`CardContents::from_profile`]).
pub fn summarize_certificate(der: &[u8]) -> Result<CertificateSummary, CardBuildError> {
    let cert = parse_certificate(der, WHAT_CERT)?;
    let validity = cert.validity();
    Ok(CertificateSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string(),
        not_before: validity.not_before.to_string(),
        not_after: validity.not_after.to_string(),
    })
}

impl fmt::Debug for SignatureContents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignatureContents(..)")
    }
}

impl fmt::Debug for KenhojoContents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KenhojoContents(..)")
    }
}

impl fmt::Debug for KenkakuContents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KenkakuContents(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn my_number_check_digits() {
        // Worked by hand: 12345678901 → weights from the right 2,3,4,5,6,7,2,3,4,5,6 over
        // 1,0,9,8,7,6,5,4,3,2,1: 2+0+36+40+42+42+10+12+12+10+6 = 212, 212 mod 11 = 3,
        // check digit 11 - 3 = 8.
        assert_eq!(my_number_check_digit(b"12345678901"), Some(8));
        assert!(is_valid_my_number("123456789018"));
        assert!(!is_valid_my_number("123456789017"));
        assert!(!is_valid_my_number("12345678901"));
        assert!(!is_valid_my_number("1234567890188"));
        assert!(!is_valid_my_number("12345678901a"));
        // Remainders 0 and 1 give 0: 00000000000 sums to 0.
        assert_eq!(my_number_check_digit(b"00000000000"), Some(0));
        // 10000000000: the leftmost digit has weight 6 → 6 mod 11 = 6 → 5.
        assert_eq!(my_number_check_digit(b"10000000000"), Some(5));
        // 00000000001: weight 2 → 2 → 9.
        assert_eq!(my_number_check_digit(b"00000000001"), Some(9));
        // 00000000005: 10 → 10 → 1; 00000000006: 12 → 1 → 0 (remainder 1 gives 0).
        assert_eq!(my_number_check_digit(b"00000000005"), Some(1));
        assert_eq!(my_number_check_digit(b"00000000006"), Some(0));
        assert_eq!(my_number_check_digit(b"0000000000x"), None);
    }

    #[test]
    fn sign_passwords() {
        assert!(is_valid_sign_password(b"ABC123"));
        assert!(is_valid_sign_password(b"ABCDEFGHIJ123456"));
        assert!(!is_valid_sign_password(b"ABC12"));
        assert!(!is_valid_sign_password(b"ABCDEFGHIJ1234567"));
        assert!(!is_valid_sign_password(b"abc123"));
    }
}
