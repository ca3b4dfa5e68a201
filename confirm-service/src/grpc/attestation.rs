//! A reader's attestation (face and visual-check modes): what the request claims, checked for
//! shape, and the pure check of the attestation over the binding with the terminal's device
//! key and of the face policy. No I/O: the handler passes the binding and the key.

use onshi_proto::binding::{
    is_valid_staff_id, Purpose, ReaderCheck, MAX_PERMILLE, MAX_STAFF_ID_LEN,
};
use onshi_proto::v1::{ConfirmByReaderRequest, ReaderMethod};

use super::service::*;
use crate::eligibility::DomainError;
use crate::outcome::Refusal;

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
    match ReaderMethod::try_from(req.method) {
        Ok(ReaderMethod::Face) => {
            ctx.method = "face".into();
            let face = req
                .face_match
                .as_ref()
                .ok_or(Refusal::Invalid(DomainError::Empty { what: "face match" }))?;
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
            let staff_id = req.staff_id.as_str();
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
            value: req.method,
        }),
    }
}
