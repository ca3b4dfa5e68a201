//! A reader's attestation (face and visual-check modes): what the request claims, checked for
//! shape, and the pure check of the attestation over the binding with the terminal's device
//! key and of the face policy. No I/O: the handler passes the binding and the key.

use onshi_proto::binding::{
    is_valid_staff_id, Purpose, ReaderCheck, MAX_PERMILLE, MAX_STAFF_ID_LEN,
};
use onshi_proto::v1::{ConfirmByReaderRequest, FaceMatch, ReaderMethod};
use ring::signature;

use super::service::AuditContext;
use crate::eligibility::DomainError;
use crate::outcome::Refusal;

/// Longest reader attestation accepted: an ASN.1 DER ECDSA P-256 signature is at most 72
/// bytes; anything longer is malformed and is refused before it is parsed.
pub(super) const MAX_ATTESTATION_LEN: usize = 80;

/// What a reader attests in place of the card's signature (face and visual-check modes), as
/// checked from the request: the purpose its challenge and binding carry, and the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ReaderClaim {
    Face {
        score_permille: u16,
        threshold_permille: u16,
    },
    Visual {
        staff_id: String,
    },
}

impl ReaderClaim {
    pub(super) fn purpose(&self) -> Purpose {
        match self {
            ReaderClaim::Face { .. } => Purpose::Face,
            ReaderClaim::Visual { .. } => Purpose::VisualCheck,
        }
    }

    pub(super) fn check(&self) -> ReaderCheck<'_> {
        match self {
            ReaderClaim::Face {
                score_permille,
                threshold_permille,
            } => ReaderCheck::Face {
                score_permille: *score_permille,
                threshold_permille: *threshold_permille,
            },
            ReaderClaim::Visual { staff_id } => ReaderCheck::Visual { staff_id },
        }
    }
}

/// What a reader confirmation claims, checked for shape before anything is looked up: the
/// method, then the face match (present, permille) or the staff id (1 to 32 printable ASCII
/// characters). Sets the audit record's method as soon as it is known: `face`, `visual:<staff
/// id>`, or `visual` while the staff id is refused. The field of the other method is ignored.
pub(super) fn reader_claim(
    req: &ConfirmByReaderRequest,
    ctx: &mut AuditContext,
) -> Result<ReaderClaim, Refusal> {
    claim_of(req.method, req.face_match.as_ref(), &req.staff_id, ctx)
}

/// [`reader_claim`] from the fields a reader request carries (a confirmation's or a
/// registration's).
pub(super) fn claim_of(
    method: i32,
    face_match: Option<&FaceMatch>,
    staff_id: &str,
    ctx: &mut AuditContext,
) -> Result<ReaderClaim, Refusal> {
    match ReaderMethod::try_from(method) {
        Ok(ReaderMethod::Face) => {
            ctx.method = "face".into();
            let face =
                face_match.ok_or(Refusal::Invalid(DomainError::Empty { what: "face match" }))?;
            let permille = |v: u32, what: &str| {
                u16::try_from(v)
                    .ok()
                    .filter(|v| *v <= MAX_PERMILLE)
                    .ok_or_else(|| {
                        Refusal::BadRequest(format!(
                            "the face match's {what} is permille, 0 to {MAX_PERMILLE}; got {v}"
                        ))
                    })
            };
            Ok(ReaderClaim::Face {
                score_permille: permille(face.score_permille, "score")?,
                threshold_permille: permille(face.threshold_permille, "threshold")?,
            })
        }
        Ok(ReaderMethod::VisualCheck) => {
            ctx.method = "visual".into();
            if staff_id.is_empty() {
                return Err(Refusal::Invalid(DomainError::Empty { what: "staff id" }));
            }
            if staff_id.len() > MAX_STAFF_ID_LEN {
                return Err(Refusal::Invalid(DomainError::TooLong {
                    what: "staff id",
                    max: MAX_STAFF_ID_LEN,
                    actual: staff_id.chars().count(),
                }));
            }
            if !is_valid_staff_id(staff_id) {
                let position = staff_id
                    .bytes()
                    .position(|b| !b.is_ascii_graphic())
                    .unwrap_or_default();
                return Err(Refusal::Invalid(DomainError::BadCharacter {
                    what: "staff id",
                    position,
                }));
            }
            ctx.method = format!("visual:{staff_id}").into();
            Ok(ReaderClaim::Visual {
                staff_id: staff_id.to_owned(),
            })
        }
        Ok(ReaderMethod::Unspecified) => Err(Refusal::Invalid(DomainError::Empty {
            what: "reader method",
        })),
        Err(_) => Err(Refusal::UnknownEnum {
            what: "reader method",
            value: method,
        }),
    }
}

/// The reader's attestation for a request whose challenge and certificate passed: a device key
/// registered to the terminal, an attestation of plausible length, its ECDSA P-256 signature
/// over `binding` with that key, then the face policy (the reader's threshold at least the
/// service's `minimum_threshold`, the score at least the threshold). `binding` is the encoded
/// challenge binding, or the refusal its encoding gave (reported after the attestation's own
/// shape, as the handler always did). Pure: no store, no clock.
pub(super) fn check_attestation(
    terminal_name: &str,
    device_key: Option<&[u8]>,
    attestation: &[u8],
    binding: Result<Vec<u8>, Refusal>,
    claim: &ReaderClaim,
    minimum_threshold: u16,
) -> Result<(), Refusal> {
    let device_key = device_key.ok_or_else(|| {
        Refusal::AttestationInvalid(format!("no device key is registered for {terminal_name}"))
    })?;
    if attestation.is_empty() {
        return Err(Refusal::AttestationInvalid(
            "the attestation is missing".into(),
        ));
    }
    if attestation.len() > MAX_ATTESTATION_LEN {
        return Err(Refusal::AttestationInvalid(format!(
            "the attestation is over {MAX_ATTESTATION_LEN} bytes"
        )));
    }
    let binding = binding?;
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, device_key)
        .verify(&binding, attestation)
        .map_err(|_| {
            Refusal::AttestationInvalid(
                "the attestation does not verify with the terminal's device key".into(),
            )
        })?;
    if let ReaderClaim::Face {
        score_permille,
        threshold_permille,
    } = *claim
    {
        if threshold_permille < minimum_threshold {
            return Err(Refusal::AttestationInvalid(format!(
                "the face threshold {threshold_permille}‰ is below the service's minimum \
                 {minimum_threshold}‰"
            )));
        }
        if score_permille < threshold_permille {
            return Err(Refusal::AttestationInvalid(format!(
                "the face score {score_permille}‰ is below its threshold \
                 {threshold_permille}‰"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    use super::*;

    const BINDING: &[u8] = b"the encoded challenge binding";

    /// A device key pair, its public key and its attestation over `message`.
    fn device(message: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let signed = pair.sign(&rng, message).unwrap();
        (
            pair.public_key().as_ref().to_vec(),
            signed.as_ref().to_vec(),
        )
    }

    fn face(score: u16, threshold: u16) -> ReaderClaim {
        ReaderClaim::Face {
            score_permille: score,
            threshold_permille: threshold,
        }
    }

    fn visual() -> ReaderClaim {
        ReaderClaim::Visual {
            staff_id: "S001".into(),
        }
    }

    /// The refusal's message, or "ok".
    fn verdict(
        key: Option<&[u8]>,
        attestation: &[u8],
        binding: Result<Vec<u8>, Refusal>,
        claim: &ReaderClaim,
        minimum: u16,
    ) -> String {
        match check_attestation("1340123452-T01", key, attestation, binding, claim, minimum) {
            Ok(()) => "ok".into(),
            Err(Refusal::AttestationInvalid(why)) => why,
            Err(other) => format!("other refusal: {other:?}"),
        }
    }

    #[test]
    fn a_good_attestation_passes_for_both_methods() {
        let (key, attestation) = device(BINDING);
        let good = || Ok(BINDING.to_vec());
        assert_eq!(
            verdict(Some(&key), &attestation, good(), &visual(), 800),
            "ok"
        );
        assert_eq!(
            verdict(Some(&key), &attestation, good(), &face(900, 850), 800),
            "ok"
        );
        // At the boundaries: the threshold equal to the minimum, the score to the threshold.
        assert_eq!(
            verdict(Some(&key), &attestation, good(), &face(800, 800), 800),
            "ok"
        );
    }

    #[test]
    fn each_shape_refusal_comes_before_the_signature() {
        let (key, attestation) = device(BINDING);
        let bad_binding = || Err(Refusal::BadRequest("binding".into()));
        assert_eq!(
            verdict(None, &attestation, bad_binding(), &visual(), 0),
            "no device key is registered for 1340123452-T01"
        );
        assert_eq!(
            verdict(Some(&key), &[], bad_binding(), &visual(), 0),
            "the attestation is missing"
        );
        assert_eq!(
            verdict(
                Some(&key),
                &[0x30; MAX_ATTESTATION_LEN + 1],
                bad_binding(),
                &visual(),
                0
            ),
            format!("the attestation is over {MAX_ATTESTATION_LEN} bytes")
        );
        // A binding that did not encode is reported once the attestation's shape is good.
        assert!(matches!(
            check_attestation("t", Some(&key), &attestation, bad_binding(), &visual(), 0),
            Err(Refusal::BadRequest(_))
        ));
        // Exactly the longest length accepted gets as far as the signature.
        assert_eq!(
            verdict(
                Some(&key),
                &[0x30; MAX_ATTESTATION_LEN],
                Ok(BINDING.to_vec()),
                &visual(),
                0
            ),
            "the attestation does not verify with the terminal's device key"
        );
    }

    #[test]
    fn an_attestation_over_anything_else_or_by_another_key_is_refused() {
        let (key, attestation) = device(BINDING);
        let (other_key, _) = device(BINDING);
        let refused = "the attestation does not verify with the terminal's device key";
        let other_binding = Ok(b"another binding".to_vec());
        assert_eq!(
            verdict(Some(&key), &attestation, other_binding, &visual(), 0),
            refused
        );
        assert_eq!(
            verdict(
                Some(&other_key),
                &attestation,
                Ok(BINDING.to_vec()),
                &visual(),
                0
            ),
            refused
        );
        let mut flipped = attestation.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(
            verdict(Some(&key), &flipped, Ok(BINDING.to_vec()), &visual(), 0),
            refused
        );
    }

    #[test]
    fn the_face_policy_is_checked_after_the_signature() {
        let (key, attestation) = device(BINDING);
        let good = || Ok(BINDING.to_vec());
        assert_eq!(
            verdict(Some(&key), &attestation, good(), &face(900, 799), 800),
            "the face threshold 799‰ is below the service's minimum 800‰"
        );
        assert_eq!(
            verdict(Some(&key), &attestation, good(), &face(849, 850), 800),
            "the face score 849‰ is below its threshold 850‰"
        );
        // A bad signature is reported before the face policy.
        assert_eq!(
            verdict(
                Some(&key),
                &attestation,
                Ok(b"x".to_vec()),
                &face(0, 0),
                800
            ),
            "the attestation does not verify with the terminal's device key"
        );
        // The visual check has no face policy.
        assert_eq!(
            verdict(Some(&key), &attestation, good(), &visual(), 1000),
            "ok"
        );
    }
}
