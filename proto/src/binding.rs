//! The challenge binding: the one byte string that a card (PIN mode) or a reader's device key
//! (face and visual-check modes) signs. The reader agent, the confirmation service and the load
//! generator all encode it here and nowhere else, so a signature made for one purpose, terminal,
//! card or set of consents can never verify as another.
//!
//! Layout (docs/protocol.md has test vectors):
//!
//! ```text
//! "onshi/v1"                 8 bytes, ASCII
//! purpose                    1 byte: 1 confirm, 2 register, 3 face, 4 visual check,
//!                                    40 register by reader (a card without a PIN),
//!                                    60 居宅同意取得型 PIN, 61 居宅同意取得型 visual check
//!                                    50 smartphone Android (its PIN typed at the reader),
//!                                    51 smartphone iPhone (verified on the phone)
//! challenge                 32 bytes, as issued by the service
//! len(terminal name)         1 byte
//! terminal name              ASCII, 1..=64 bytes: "<医療機関コード>-<terminal id>"
//! SHA-256(certificate DER)  32 bytes
//! consents                   1 byte bitmask: 1 medication, 2 checkup, 4 clinical, 8 surgery,
//!                                    16 all four given as one 包括同意 (then 1..8 are all set)
//!
//! then, for purpose 3 (face) only, the reader check:
//! matched                    1 byte: 1
//! score                      2 bytes, big-endian: the face matcher's score, permille (0..=1000)
//! threshold                  2 bytes, big-endian: the threshold it was held to, permille
//!
//! or, for purposes 4 (visual check) and 61 (居宅同意取得型 visual check) only:
//! len(staff id)              1 byte: 1..=32
//! staff id                   printable ASCII (no space): who checked the face against the card
//!
//! or, for purpose 40 (register by reader) only:
//! check kind                 1 byte: 3 face or 4 visual check (the confirming purpose's byte)
//! the check                  as for purpose 3 or 4 above
//! ```
//!
//! PIN-mode purposes (1 confirm, 2 register) end after the consents byte and are built with
//! [`ChallengeBinding::encode`]; the reader purposes (3 face, 4 visual check, 40 register by
//! reader) always carry their check and are built only with [`ChallengeBinding::encode_attested`], which refuses a check
//! of the other kind, so a reader binding never exists without its suffix and a face
//! attestation can never verify as a visual one.
//!
//! The card signs the DER DigestInfo of SHA-256 over this string (PKCS#1 v1.5), which is exactly
//! an RSASSA-PKCS1-v1_5 SHA-256 signature of the string itself, so the service verifies it with
//! `ring`'s `RSA_PKCS1_2048_8192_SHA256` over [`ChallengeBinding::encode`]. In face and
//! visual-check modes the reader's device key signs the string with ECDSA P-256 / SHA-256 (ASN.1
//! DER signature), verified with `ring`'s `ECDSA_P256_SHA256_ASN1` against the device public key
//! registered to the terminal.

use ring::digest;

/// The 8-byte domain-separation prefix.
pub const MAGIC: &[u8; 8] = b"onshi/v1";
/// Length of a service challenge.
pub const CHALLENGE_LEN: usize = 32;
/// Longest terminal name the binding accepts.
pub const MAX_TERMINAL_NAME_LEN: usize = 64;
/// Longest staff id a visual check may name.
pub const MAX_STAFF_ID_LEN: usize = 32;
/// Scores and thresholds of a face match are permille: 0 to this.
pub const MAX_PERMILLE: u16 = 1000;

/// What a signature is for. The byte values are part of the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Purpose {
    Confirm = 1,
    Register = 2,
    Face = 3,
    VisualCheck = 4,
    /// 健康保険証利用申込み attested by the reader (face or visual check) for a card without a
    /// PIN (顔認証マイナンバーカード). Its check is prefixed with the check's kind.
    RegisterByReader = 40,
    /// 居宅同意取得型 first visit, PIN mode at a mobile device: as [`Purpose::Confirm`], and the
    /// purpose byte commits the patient's consent to later re-queries by the institution.
    HomeCareConfirm = 60,
    /// 居宅同意取得型 first visit by a staff member's visual check at a mobile device: as
    /// [`Purpose::VisualCheck`] (the same suffix), with the re-query consent of purpose 60.
    HomeCareVisualCheck = 61,
    /// A smartphone マイナ保険証 on Android: the phone's smartphone certificate signed after
    /// the PIN typed at the reader unlocked it (docs/smartphone.md). Encoded like
    /// [`Purpose::Confirm`], with no suffix.
    SmartphoneAndroid = 50,
    /// A smartphone マイナ保険証 on an iPhone: signed after the phone's own verification of its
    /// holder. Encoded like [`Purpose::Confirm`].
    SmartphoneIphone = 51,
}

impl Purpose {
    /// Whether a smartphone (its own certificate and key), not a card, signs bindings of this
    /// purpose.
    pub fn is_smartphone(self) -> bool {
        matches!(self, Purpose::SmartphoneAndroid | Purpose::SmartphoneIphone)
    }

    /// Whether the reader's device key, not the card, signs bindings of this purpose.
    pub fn is_reader(self) -> bool {
        matches!(
            self,
            Purpose::Face
                | Purpose::VisualCheck
                | Purpose::RegisterByReader
                | Purpose::HomeCareVisualCheck
        )
    }
}

/// The four consents of the reception flow, as the binding's bitmask.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ConsentBits(u8);

impl ConsentBits {
    pub const MEDICATION: u8 = 1;
    pub const CHECKUP: u8 = 2;
    pub const CLINICAL: u8 = 4;
    pub const SURGERY: u8 = 8;
    /// 包括同意: the four given together on one screen.
    pub const COMPREHENSIVE: u8 = 16;
    /// Every bit a binding may carry.
    pub const KNOWN: u8 = 31;

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

    /// 包括同意: every kind, given on one screen.
    pub fn comprehensive() -> Self {
        Self(Self::KNOWN)
    }

    /// The bits of a request's consents: 包括同意 only with all four kinds (a request that
    /// claims one without them is contradictory: `None`).
    pub fn from_request(consents: &crate::v1::Consents) -> Option<Self> {
        let bits = Self::new(
            consents.medication,
            consents.checkup,
            consents.clinical,
            consents.surgery,
        );
        if !consents.comprehensive {
            return Some(bits);
        }
        (bits.0 == Self::KNOWN & !Self::COMPREHENSIVE).then(Self::comprehensive)
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    /// The patient consented to all four kinds on one screen.
    pub fn is_comprehensive(self) -> bool {
        self.0 & Self::COMPREHENSIVE != 0
    }
}

impl From<ConsentBits> for crate::v1::Consents {
    /// The patient's answers as the request message carries them.
    fn from(bits: ConsentBits) -> Self {
        let b = bits.bits();
        crate::v1::Consents {
            medication: b & ConsentBits::MEDICATION != 0,
            checkup: b & ConsentBits::CHECKUP != 0,
            clinical: b & ConsentBits::CLINICAL != 0,
            surgery: b & ConsentBits::SURGERY != 0,
            comprehensive: b & ConsentBits::COMPREHENSIVE != 0,
        }
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
    /// A face or visual-check binding asked for without its reader check.
    #[error("purposes face and visual check carry a reader check: use encode_attested")]
    NeedsReaderCheck,
    /// A face check for another purpose than face, or a visual check for another than visual
    /// check (PIN-mode purposes take no check at all).
    #[error("a {check} check cannot be bound to purpose {purpose:?}")]
    CheckMismatch {
        purpose: Purpose,
        check: &'static str,
    },
    #[error("staff id must be 1 to {MAX_STAFF_ID_LEN} printable ASCII bytes")]
    StaffId,
    #[error("face score and threshold are permille, at most {MAX_PERMILLE}")]
    Permille,
}

/// What the reader checked in place of the card's PIN, appended to a face or visual-check
/// binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderCheck<'a> {
    /// A face match: the matcher's score and the threshold it was held to, in permille.
    Face {
        score_permille: u16,
        threshold_permille: u16,
    },
    /// A visual check (目視確認) by the named staff member.
    Visual { staff_id: &'a str },
}

impl ReaderCheck<'_> {
    /// Whether this check may be bound to `purpose`: its own confirming purpose, or
    /// registration by reader, or (a visual check) a 居宅同意取得型 first visit.
    pub fn fits(&self, purpose: Purpose) -> bool {
        purpose == self.purpose()
            || purpose == Purpose::RegisterByReader
            || (purpose == Purpose::HomeCareVisualCheck && self.purpose() == Purpose::VisualCheck)
    }

    /// The confirming purpose this check belongs to.
    pub fn purpose(&self) -> Purpose {
        match self {
            ReaderCheck::Face { .. } => Purpose::Face,
            ReaderCheck::Visual { .. } => Purpose::VisualCheck,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ReaderCheck::Face { .. } => "face",
            ReaderCheck::Visual { .. } => "visual",
        }
    }
}

/// Whether `staff_id` may be bound: 1 to [`MAX_STAFF_ID_LEN`] printable ASCII bytes, no space.
pub fn is_valid_staff_id(staff_id: &str) -> bool {
    let b = staff_id.as_bytes();
    !b.is_empty() && b.len() <= MAX_STAFF_ID_LEN && b.iter().all(u8::is_ascii_graphic)
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
    /// Encodes a PIN-mode binding (confirm, register). Fails on a challenge of the wrong
    /// length, a terminal name that does not fit the one-byte length prefix, or a reader
    /// purpose (face, visual check: [`encode_attested`](Self::encode_attested)).
    pub fn encode(&self) -> Result<Vec<u8>, BindingError> {
        let cert_hash = digest::digest(&digest::SHA256, self.certificate_der);
        self.encode_with_cert_hash(cert_hash.as_ref())
    }

    /// As [`encode`](Self::encode), for a caller that already holds the certificate's SHA-256
    /// (the service's certificate cache does).
    pub fn encode_with_cert_hash(&self, cert_sha256: &[u8]) -> Result<Vec<u8>, BindingError> {
        if self.purpose.is_reader() {
            return Err(BindingError::NeedsReaderCheck);
        }
        self.encode_common(cert_sha256, 0)
    }

    /// Encodes a face or visual-check binding: the common fields, then the reader's `check`.
    /// Fails as [`encode`](Self::encode) on the common fields, and on a check that does not
    /// belong to the purpose, a score or threshold over 1000, or an invalid staff id.
    pub fn encode_attested(&self, check: &ReaderCheck) -> Result<Vec<u8>, BindingError> {
        let cert_hash = digest::digest(&digest::SHA256, self.certificate_der);
        self.encode_attested_with_cert_hash(cert_hash.as_ref(), check)
    }

    /// As [`encode_attested`](Self::encode_attested), for a caller that already holds the
    /// certificate's SHA-256.
    pub fn encode_attested_with_cert_hash(
        &self,
        cert_sha256: &[u8],
        check: &ReaderCheck,
    ) -> Result<Vec<u8>, BindingError> {
        if !check.fits(self.purpose) {
            return Err(BindingError::CheckMismatch {
                purpose: self.purpose,
                check: check.kind(),
            });
        }
        // Registration by reader names the check's kind first, so a face registration can
        // never verify as a visual one.
        let kind: &[u8] = if self.purpose == Purpose::RegisterByReader {
            &[check.purpose() as u8]
        } else {
            &[]
        };
        match *check {
            ReaderCheck::Face {
                score_permille,
                threshold_permille,
            } => {
                if score_permille > MAX_PERMILLE || threshold_permille > MAX_PERMILLE {
                    return Err(BindingError::Permille);
                }
                let mut out = self.encode_common(cert_sha256, kind.len() + 5)?;
                out.extend_from_slice(kind);
                out.push(1);
                out.extend_from_slice(&score_permille.to_be_bytes());
                out.extend_from_slice(&threshold_permille.to_be_bytes());
                Ok(out)
            }
            ReaderCheck::Visual { staff_id } => {
                if !is_valid_staff_id(staff_id) {
                    return Err(BindingError::StaffId);
                }
                let mut out = self.encode_common(cert_sha256, kind.len() + 1 + staff_id.len())?;
                out.extend_from_slice(kind);
                out.push(staff_id.len() as u8);
                out.extend_from_slice(staff_id.as_bytes());
                Ok(out)
            }
        }
    }

    /// The fields every purpose shares, with room for `suffix` more bytes.
    fn encode_common(&self, cert_sha256: &[u8], suffix: usize) -> Result<Vec<u8>, BindingError> {
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
        let mut out = Vec::with_capacity(8 + 1 + 32 + 1 + name.len() + 32 + 1 + suffix);
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

    #[test]
    fn consent_bits_become_the_request_message_field_by_field() {
        let all = crate::v1::Consents::from(ConsentBits::new(true, true, true, true));
        assert!(all.medication && all.checkup && all.clinical && all.surgery);
        let some = crate::v1::Consents::from(ConsentBits::new(false, true, false, true));
        assert_eq!(
            (some.medication, some.checkup, some.clinical, some.surgery),
            (false, true, false, true)
        );
        assert_eq!(
            crate::v1::Consents::from(ConsentBits::default()),
            crate::v1::Consents::default()
        );
    }

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

    fn reader_vector(purpose: Purpose) -> ChallengeBinding<'static> {
        ChallengeBinding {
            purpose,
            ..vector()
        }
    }

    const FACE: ReaderCheck<'static> = ReaderCheck::Face {
        score_permille: 912,
        threshold_permille: 800,
    };
    const VISUAL: ReaderCheck<'static> = ReaderCheck::Visual { staff_id: "N-0042" };

    /// The published face vector of docs/protocol.md.
    #[test]
    fn published_face_vector() {
        let bytes = reader_vector(Purpose::Face).encode_attested(&FACE).unwrap();
        let expected = concat!(
            "6f6e7368692f7631",
            "03",
            "1111111111111111111111111111111111111111111111111111111111111111",
            "0e",
            "303131303131333731392d543031",
            "03d66dd08835c1ca3f128cceacd1f31ac94163096b20f445ae84285bc0832d72",
            "09",
            "01",
            "0390",
            "0320"
        );
        assert_eq!(hex(&bytes), expected);
        assert_eq!(bytes.len(), 94);
        assert_eq!(
            hex(&binding_sha256(&bytes)),
            "2fbadb6af79aa6e9bcda80c8887767d9b53793b9cc66b2fca151e5441db80617"
        );
    }

    /// The published visual-check vector of docs/protocol.md.
    #[test]
    fn published_visual_vector() {
        let bytes = reader_vector(Purpose::VisualCheck)
            .encode_attested(&VISUAL)
            .unwrap();
        let expected = concat!(
            "6f6e7368692f7631",
            "04",
            "1111111111111111111111111111111111111111111111111111111111111111",
            "0e",
            "303131303131333731392d543031",
            "03d66dd08835c1ca3f128cceacd1f31ac94163096b20f445ae84285bc0832d72",
            "09",
            "06",
            "4e2d30303432"
        );
        assert_eq!(hex(&bytes), expected);
        assert_eq!(bytes.len(), 96);
        assert_eq!(
            hex(&binding_sha256(&bytes)),
            "57be79af08e99e5cc411be1e29ac356800bf77b25cd2411d9f2e4884cacb2998"
        );
    }

    #[test]
    fn the_cert_hash_variant_gives_the_same_bytes() {
        let hash = digest::digest(&digest::SHA256, b"certificate");
        for (purpose, check) in [(Purpose::Face, FACE), (Purpose::VisualCheck, VISUAL)] {
            let v = reader_vector(purpose);
            assert_eq!(
                v.encode_attested_with_cert_hash(hash.as_ref(), &check),
                v.encode_attested(&check)
            );
        }
    }

    /// A reader binding cannot be built without its check, nor a PIN binding with one.
    #[test]
    fn reader_purposes_need_their_check() {
        for purpose in [Purpose::Face, Purpose::VisualCheck] {
            let v = reader_vector(purpose);
            assert_eq!(v.encode(), Err(BindingError::NeedsReaderCheck));
            assert_eq!(
                v.encode_with_cert_hash(&[0; 32]),
                Err(BindingError::NeedsReaderCheck)
            );
        }
        for purpose in [Purpose::Confirm, Purpose::Register] {
            for check in [FACE, VISUAL] {
                assert!(matches!(
                    reader_vector(purpose).encode_attested(&check),
                    Err(BindingError::CheckMismatch { .. })
                ));
            }
        }
        assert_eq!(
            reader_vector(Purpose::Face).encode_attested(&VISUAL),
            Err(BindingError::CheckMismatch {
                purpose: Purpose::Face,
                check: "visual"
            })
        );
        assert_eq!(
            reader_vector(Purpose::VisualCheck).encode_attested(&FACE),
            Err(BindingError::CheckMismatch {
                purpose: Purpose::VisualCheck,
                check: "face"
            })
        );
    }

    #[test]
    fn every_reader_field_changes_the_bytes() {
        let face = reader_vector(Purpose::Face);
        let base = face.encode_attested(&FACE).unwrap();
        for other in [
            ReaderCheck::Face {
                score_permille: 913,
                threshold_permille: 800,
            },
            ReaderCheck::Face {
                score_permille: 912,
                threshold_permille: 801,
            },
        ] {
            assert_ne!(face.encode_attested(&other).unwrap(), base);
        }
        let mut v = reader_vector(Purpose::Face);
        v.consents = ConsentBits::default();
        assert_ne!(v.encode_attested(&FACE).unwrap(), base);
        let visual = reader_vector(Purpose::VisualCheck);
        let base = visual.encode_attested(&VISUAL).unwrap();
        let other = ReaderCheck::Visual { staff_id: "N-0043" };
        assert_ne!(visual.encode_attested(&other).unwrap(), base);
        // A staff id is length-prefixed: "AB" then more fields cannot pass as "ABC".
        let short = ReaderCheck::Visual { staff_id: "N-004" };
        assert_ne!(
            visual.encode_attested(&short).unwrap(),
            base[..base.len() - 1]
        );
    }

    #[test]
    fn rejects_bad_reader_checks() {
        let face = reader_vector(Purpose::Face);
        for (score, threshold) in [(1001, 800), (900, 1001), (u16::MAX, u16::MAX)] {
            let check = ReaderCheck::Face {
                score_permille: score,
                threshold_permille: threshold,
            };
            assert_eq!(face.encode_attested(&check), Err(BindingError::Permille));
        }
        // The bounds themselves are fine; a score below its threshold is encodable (whether it
        // is accepted is the service's decision).
        for (score, threshold) in [(1000, 1000), (0, 0), (100, 900)] {
            let check = ReaderCheck::Face {
                score_permille: score,
                threshold_permille: threshold,
            };
            assert!(face.encode_attested(&check).is_ok(), "{score}/{threshold}");
        }
        let visual = reader_vector(Purpose::VisualCheck);
        let long = "x".repeat(MAX_STAFF_ID_LEN + 1);
        for bad in ["", "N 0042", "職員1", "N-0042\n", long.as_str()] {
            assert_eq!(
                visual.encode_attested(&ReaderCheck::Visual { staff_id: bad }),
                Err(BindingError::StaffId),
                "{bad:?}"
            );
        }
        let longest = "x".repeat(MAX_STAFF_ID_LEN);
        let bytes = visual
            .encode_attested(&ReaderCheck::Visual { staff_id: &longest })
            .unwrap();
        assert_eq!(bytes[bytes.len() - 33], 32);
        // The common fields are still checked.
        let mut v = reader_vector(Purpose::Face);
        v.challenge = &[0; 31];
        assert_eq!(
            v.encode_attested(&FACE),
            Err(BindingError::ChallengeLength(31))
        );
    }

    fn register_vector() -> ChallengeBinding<'static> {
        ChallengeBinding {
            purpose: Purpose::RegisterByReader,
            consents: ConsentBits::default(),
            ..vector()
        }
    }

    /// The published register-by-reader vectors of docs/protocol.md (face, then visual check).
    #[test]
    fn published_register_by_reader_vectors() {
        let common = concat!(
            "6f6e7368692f7631",
            "28",
            "1111111111111111111111111111111111111111111111111111111111111111",
            "0e",
            "303131303131333731392d543031",
            "03d66dd08835c1ca3f128cceacd1f31ac94163096b20f445ae84285bc0832d72",
            "00"
        );
        let face = register_vector().encode_attested(&FACE).unwrap();
        assert_eq!(hex(&face), format!("{common}03010390{}", "0320"));
        assert_eq!(face.len(), 95);
        assert_eq!(hex(&binding_sha256(&face)), PUBLISHED_REGISTER_FACE_SHA256);
        let visual = register_vector().encode_attested(&VISUAL).unwrap();
        assert_eq!(hex(&visual), format!("{common}0406{}", "4e2d30303432"));
        assert_eq!(visual.len(), 97);
        assert_eq!(
            hex(&binding_sha256(&visual)),
            PUBLISHED_REGISTER_VISUAL_SHA256
        );
        // The kind byte keeps the two apart even where the suffixes could collide.
        assert_ne!(face[..90], visual[..90]);
    }

    const PUBLISHED_REGISTER_FACE_SHA256: &str =
        "9e4e19fdc1d2a2dfb12b053793c909da5e2014a68f467e128c06e8044e830c10";
    const PUBLISHED_REGISTER_VISUAL_SHA256: &str =
        "ecb7a50ca6014679cbb6ec83857034ec172c1d19b90c9b463e3a776afd4c3bdf";
    const PUBLISHED_HOME_CARE_PIN_SHA256: &str =
        "9a0a92aae4ccb3573c306fe5f5b0ee2ab19534490f9669283031ec5d713e4961";
    const PUBLISHED_HOME_CARE_VISUAL_SHA256: &str =
        "b2d754e41d9dea01dd7baa02c615e6c6009b2a858a8a2cff1aafd56a6068f896";

    /// The published 居宅同意取得型 vectors of docs/protocol.md: purpose 60 is laid out as
    /// purpose 1, purpose 61 as purpose 4; only the purpose byte differs, so a home-care
    /// signature never verifies as an ordinary confirmation.
    #[test]
    fn published_home_care_vectors() {
        let pin = ChallengeBinding {
            purpose: Purpose::HomeCareConfirm,
            ..vector()
        };
        let bytes = pin.encode().unwrap();
        let mut expected = vector().encode().unwrap();
        expected[8] = 0x3c;
        assert_eq!(bytes, expected);
        assert_eq!(hex(&binding_sha256(&bytes)), PUBLISHED_HOME_CARE_PIN_SHA256);
        let visual = reader_vector(Purpose::HomeCareVisualCheck)
            .encode_attested(&VISUAL)
            .unwrap();
        let mut expected = reader_vector(Purpose::VisualCheck)
            .encode_attested(&VISUAL)
            .unwrap();
        expected[8] = 0x3d;
        assert_eq!(visual, expected);
        assert_eq!(
            hex(&binding_sha256(&visual)),
            PUBLISHED_HOME_CARE_VISUAL_SHA256
        );
        // Purpose 61 takes a visual check only, and purpose 60 no check at all.
        assert!(reader_vector(Purpose::HomeCareVisualCheck)
            .encode_attested(&FACE)
            .is_err());
        assert_eq!(
            reader_vector(Purpose::HomeCareVisualCheck).encode(),
            Err(BindingError::NeedsReaderCheck)
        );
        assert!(!Purpose::HomeCareConfirm.is_reader());
    }

    const PUBLISHED_ANDROID_SHA256: &str =
        "04d8592d8b6f8df17ac702e1a295de583a9f756926c3bd7405afb858d409bdc7";
    const PUBLISHED_IPHONE_SHA256: &str =
        "13645b5c9f0f06ba6f76cf5d7a147bde635346f892a746c0b3503bdadc54cc3c";
    const PUBLISHED_COMPREHENSIVE_SHA256: &str =
        "f0f45f0e5c0c9c80b27aa21a06d3a0ec67f37616f9e3dec3bab07813144fcc8d";

    /// The published smartphone vectors of docs/protocol.md: the first vector with purpose
    /// byte 50 (Android) or 51 (iPhone), nothing else changed.
    #[test]
    fn published_smartphone_vectors() {
        let card = vector().encode().unwrap();
        for (purpose, byte, sha) in [
            (Purpose::SmartphoneAndroid, 50u8, PUBLISHED_ANDROID_SHA256),
            (Purpose::SmartphoneIphone, 51u8, PUBLISHED_IPHONE_SHA256),
        ] {
            let v = ChallengeBinding {
                purpose,
                ..vector()
            };
            let bytes = v.encode().unwrap();
            let mut expected = card.clone();
            expected[8] = byte;
            assert_eq!(bytes, expected);
            assert_eq!(hex(&binding_sha256(&bytes)), sha);
            assert!(!purpose.is_reader());
        }
    }

    /// The published 包括同意 vector of docs/protocol.md: purpose 1, consents byte 1f.
    #[test]
    fn published_comprehensive_vector() {
        let v = ChallengeBinding {
            consents: ConsentBits::comprehensive(),
            ..vector()
        };
        let bytes = v.encode().unwrap();
        let mut expected = vector().encode().unwrap();
        *expected.last_mut().unwrap() = 0x1f;
        assert_eq!(bytes, expected);
        assert_eq!(hex(&binding_sha256(&bytes)), PUBLISHED_COMPREHENSIVE_SHA256);
        // One 包括同意 is not four individual consents: the signatures differ.
        let individual = ChallengeBinding {
            consents: ConsentBits::new(true, true, true, true),
            ..vector()
        };
        assert_ne!(individual.encode().unwrap(), bytes);
    }

    #[test]
    fn comprehensive_consent_needs_all_four_kinds() {
        let all = crate::v1::Consents {
            medication: true,
            checkup: true,
            clinical: true,
            surgery: true,
            comprehensive: true,
        };
        let bits = ConsentBits::from_request(&all).unwrap();
        assert!(bits.is_comprehensive());
        assert_eq!(bits.bits(), 0x1f);
        assert_eq!(crate::v1::Consents::from(bits), all);
        for missing in 0..4 {
            let mut c = all;
            match missing {
                0 => c.medication = false,
                1 => c.checkup = false,
                2 => c.clinical = false,
                _ => c.surgery = false,
            }
            assert_eq!(ConsentBits::from_request(&c), None, "{c:?}");
            c.comprehensive = false;
            assert!(!ConsentBits::from_request(&c).unwrap().is_comprehensive());
        }
        let individual = crate::v1::Consents {
            comprehensive: false,
            ..all
        };
        assert_eq!(ConsentBits::from_request(&individual).unwrap().bits(), 0x0f);
    }

    #[test]
    fn register_by_reader_needs_a_check_and_takes_either_kind() {
        let v = register_vector();
        assert_eq!(v.encode(), Err(BindingError::NeedsReaderCheck));
        assert!(v.encode_attested(&FACE).is_ok());
        assert!(v.encode_attested(&VISUAL).is_ok());
        // A registration attestation never verifies as a confirmation, nor the reverse.
        let face_confirm = reader_vector(Purpose::Face).encode_attested(&FACE).unwrap();
        let face_register = register_vector().encode_attested(&FACE).unwrap();
        assert_ne!(face_confirm[8], face_register[8]);
        assert!(Purpose::RegisterByReader.is_reader());
        assert!(!Purpose::Register.is_reader());
    }

    /// docs/protocol.md publishes the hashes above: each must be there, so the page and the
    /// code cannot drift apart.
    #[test]
    fn the_protocol_page_publishes_what_the_code_computes() {
        let page = include_str!("../../docs/protocol.md");
        let hashes = [
            hex(&binding_sha256(&vector().encode().unwrap())),
            hex(&binding_sha256(
                &reader_vector(Purpose::Face).encode_attested(&FACE).unwrap(),
            )),
            hex(&binding_sha256(
                &reader_vector(Purpose::VisualCheck)
                    .encode_attested(&VISUAL)
                    .unwrap(),
            )),
            hex(&binding_sha256(
                &register_vector().encode_attested(&FACE).unwrap(),
            )),
            hex(&binding_sha256(
                &register_vector().encode_attested(&VISUAL).unwrap(),
            )),
            PUBLISHED_ANDROID_SHA256.to_owned(),
            PUBLISHED_IPHONE_SHA256.to_owned(),
            hex(&binding_sha256(
                &ChallengeBinding {
                    consents: ConsentBits::comprehensive(),
                    ..vector()
                }
                .encode()
                .unwrap(),
            )),
            PUBLISHED_HOME_CARE_PIN_SHA256.to_owned(),
            PUBLISHED_HOME_CARE_VISUAL_SHA256.to_owned(),
        ];
        for h in hashes {
            assert!(page.contains(&h), "docs/protocol.md lacks {h}");
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
