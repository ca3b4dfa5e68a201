//! The challenge binding: the one byte string that a card (PIN mode) or a reader's device key
//! (face and visual-check modes) signs. The reader agent, the confirmation service and the load
//! generator all encode it here and nowhere else, so a signature made for one purpose, terminal,
//! card or set of consents can never verify as another.
//!
//! Layout (docs/protocol.md has test vectors):
//!
//! ```text
//! "onshi/v1"                 8 bytes, ASCII
//! purpose                    1 byte: 1 confirm, 2 register, 3 face, 4 visual check
//! challenge                 32 bytes, as issued by the service
//! len(terminal name)         1 byte
//! terminal name              ASCII, 1..=64 bytes: "<医療機関コード>-<terminal id>"
//! SHA-256(certificate DER)  32 bytes
//! consents                   1 byte bitmask: 1 medication, 2 checkup, 4 clinical, 8 surgery
//! ```
//!
//! The card signs the DER DigestInfo of SHA-256 over this string (PKCS#1 v1.5), which is exactly
//! an RSASSA-PKCS1-v1_5 SHA-256 signature of the string itself, so the service verifies it with
//! `ring`'s `RSA_PKCS1_2048_8192_SHA256` over [`ChallengeBinding::encode`].

use ring::digest;

/// The 8-byte domain-separation prefix.
pub const MAGIC: &[u8; 8] = b"onshi/v1";
/// Length of a service challenge.
pub const CHALLENGE_LEN: usize = 32;
/// Longest terminal name the binding accepts.
pub const MAX_TERMINAL_NAME_LEN: usize = 64;

/// What a signature is for. The byte values are part of the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Purpose {
    Confirm = 1,
    Register = 2,
    Face = 3,
    VisualCheck = 4,
}

/// The four consents of the reception flow, as the binding's bitmask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ConsentBits(u8);

impl ConsentBits {
    pub const MEDICATION: u8 = 1;
    pub const CHECKUP: u8 = 2;
    pub const CLINICAL: u8 = 4;
    pub const SURGERY: u8 = 8;

    pub fn new(medication: bool, checkup: bool, clinical: bool, surgery: bool) -> Self {
        let mut bits = 0;
        if medication {
            bits |= Self::MEDICATION;
        }
        if checkup {
            bits |= Self::CHECKUP;
        }
        if clinical {
            bits |= Self::CLINICAL;
        }
        if surgery {
            bits |= Self::SURGERY;
        }
        Self(bits)
    }

    pub fn bits(self) -> u8 {
        self.0
    }
}

/// Why a binding could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    #[error("challenge must be {CHALLENGE_LEN} bytes, got {0}")]
    ChallengeLength(usize),
    #[error("terminal name must be 1 to {MAX_TERMINAL_NAME_LEN} printable ASCII bytes")]
    TerminalName,
}

/// Everything a signature commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeBinding<'a> {
    pub purpose: Purpose,
    pub challenge: &'a [u8],
    pub terminal_name: &'a str,
    pub certificate_der: &'a [u8],
    pub consents: ConsentBits,
}

impl ChallengeBinding<'_> {
    /// Encodes the binding. Fails on a challenge of the wrong length or a terminal name that
    /// does not fit the one-byte length prefix.
    pub fn encode(&self) -> Result<Vec<u8>, BindingError> {
        let cert_hash = digest::digest(&digest::SHA256, self.certificate_der);
        self.encode_with_cert_hash(cert_hash.as_ref())
    }

    /// As [`encode`](Self::encode), for a caller that already holds the certificate's SHA-256
    /// (the service's certificate cache does).
    pub fn encode_with_cert_hash(&self, cert_sha256: &[u8]) -> Result<Vec<u8>, BindingError> {
        if self.challenge.len() != CHALLENGE_LEN {
            return Err(BindingError::ChallengeLength(self.challenge.len()));
        }
        let name = self.terminal_name.as_bytes();
        if name.is_empty()
            || name.len() > MAX_TERMINAL_NAME_LEN
            || !name.iter().all(|b| b.is_ascii_graphic())
        {
            return Err(BindingError::TerminalName);
        }
        let mut out = Vec::with_capacity(8 + 1 + 32 + 1 + name.len() + 32 + 1);
        out.extend_from_slice(MAGIC);
        out.push(self.purpose as u8);
        out.extend_from_slice(self.challenge);
        out.push(name.len() as u8);
        out.extend_from_slice(name);
        out.extend_from_slice(cert_sha256);
        out.push(self.consents.bits());
        Ok(out)
    }
}

/// SHA-256 of an encoded binding: the hash whose DigestInfo the card signs
/// (`onshi_jpki::constants::sha256_digest_info` wraps it for COMPUTE DIGITAL SIGNATURE).
pub fn binding_sha256(encoded: &[u8]) -> [u8; 32] {
    let hash = digest::digest(&digest::SHA256, encoded);
    let mut out = [0u8; 32];
    out.copy_from_slice(hash.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector() -> ChallengeBinding<'static> {
        ChallengeBinding {
            purpose: Purpose::Confirm,
            challenge: &[0x11; 32],
            terminal_name: "0110113719-T01",
            certificate_der: b"certificate",
            consents: ConsentBits::new(true, false, false, true),
        }
    }

    /// The published vector of docs/protocol.md: changing the layout breaks this test.
    #[test]
    fn published_vector() {
        let bytes = vector().encode().unwrap();
        let expected = concat!(
            "6f6e7368692f7631",
            "01",
            "1111111111111111111111111111111111111111111111111111111111111111",
            "0e",
            "303131303131333731392d543031",
            "03d66dd08835c1ca3f128cceacd1f31ac94163096b20f445ae84285bc0832d72",
            "09"
        );
        assert_eq!(hex(&bytes), expected);
        // The hash whose DigestInfo the card signs.
        assert_eq!(
            hex(&binding_sha256(&bytes)),
            "b0e49b4aa10402e533207a875bbcfe9e2cd38475430b38928f66bcc5be7b217d"
        );
    }

    #[test]
    fn every_field_changes_the_bytes() {
        let base = vector().encode().unwrap();
        let mut v = vector();
        v.purpose = Purpose::Register;
        assert_ne!(v.encode().unwrap(), base);
        let mut v = vector();
        v.challenge = &[0x12; 32];
        assert_ne!(v.encode().unwrap(), base);
        let mut v = vector();
        v.terminal_name = "0110113719-T02";
        assert_ne!(v.encode().unwrap(), base);
        let mut v = vector();
        v.certificate_der = b"certificatf";
        assert_ne!(v.encode().unwrap(), base);
        let mut v = vector();
        v.consents = ConsentBits::default();
        assert_ne!(v.encode().unwrap(), base);
    }

    #[test]
    fn rejects_bad_inputs() {
        let mut v = vector();
        v.challenge = &[0; 31];
        assert_eq!(v.encode(), Err(BindingError::ChallengeLength(31)));
        let long = "x".repeat(65);
        let mut v = vector();
        v.terminal_name = &long;
        assert_eq!(v.encode(), Err(BindingError::TerminalName));
        let mut v = vector();
        v.terminal_name = "";
        assert_eq!(v.encode(), Err(BindingError::TerminalName));
        let mut v = vector();
        v.terminal_name = "端末";
        assert_eq!(v.encode(), Err(BindingError::TerminalName));
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
