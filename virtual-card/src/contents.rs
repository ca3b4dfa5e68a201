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

use crate::profile::CardProfile;

/// Why a card cannot be built from a profile. No variant carries key material or the PIN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CardBuildError {
    #[error("profile ATR is unusable: {0}")]
    Atr(String),
    #[error("the user-authentication PIN is not exactly 4 ASCII digits")]
    Pin,
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
    /// EF `0018`.
    pub user_auth_pin: Pin,
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

impl CardContents {
    /// Decodes and checks a profile: PEM certificates to DER (each must parse as X.509 and
    /// start `30 82`), the PKCS#8 key (PKCS#1 is accepted too) must be a valid RSA-2048 key
    /// whose public half is the certificate's, the PIN must be 4 digits.
    pub fn from_profile(profile: &CardProfile) -> Result<Self, CardBuildError> {
        let atr = profile.atr_bytes().map_err(CardBuildError::Atr)?;
        let user_auth_pin = Pin::new(&profile.user_auth_pin).map_err(|_| CardBuildError::Pin)?;
        let user_auth_certificate = certificate_der(&profile.user_auth_certificate, WHAT_CERT)?;
        let user_auth_ca_certificate = certificate_der(&profile.user_auth_ca_certificate, WHAT_CA)?;
        let user_auth_key = private_key(&profile.user_auth_private_key)?;
        check_key_matches_certificate(&user_auth_key, &user_auth_certificate)?;
        Ok(Self {
            name: profile.name.clone(),
            atr,
            user_auth_certificate,
            user_auth_ca_certificate,
            user_auth_key,
            user_auth_pin,
        })
    }
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
