//! Face and visual-check mode from the command line (`confirm --face`, `register --face`,
//! `--visual-check --staff-id ID`): what the kiosk does for a card without a PIN
//! (顔認証マイナンバーカード), in one run and without screens.
//!
//! 1. wait for a card and read its certificate and PIN status (no PIN is ever asked for);
//! 2. identify the holder: the face photo read from the card against one capture of the
//!    simulated camera (the holder stands before it), or the staff member's visual check;
//! 3. get a challenge for the purpose (face 30, visual check 31, registration by reader 40,
//!    a 居宅同意取得型 first visit by visual check at the mobile device 61);
//! 4. sign the attested binding (the check included) with the reader's device key;
//! 5. send ConfirmByReader or RegisterByReader and report the answer as `confirm` does.
//!
//! A registration by reader is for a card without a PIN only, as at the kiosk: a card with a
//! PIN is registered with it (`register` without these options). The command line keeps no
//! face-failure count (the kiosk's state folder does): one capture, one answer.

use std::time::Duration;

use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose};
use onshi_proto::v1 as pb;

use crate::client;
use crate::config::AgentConfig;
use crate::confirm::{check_certificate_der, refused_by_service, Action};
use crate::face::{match_score, Camera, Photo};
use crate::kiosk::flow::{reader_check, reader_claim, Identified};
use crate::pcsc_card::worker::CardHandle;
use crate::report::{Outcome, StaffResult};
use onshi_jpki::flows::PinStatus;

/// How the reader identifies the holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReaderMode {
    /// Face authentication, accepted at this threshold (permille).
    Face { threshold: u16 },
    /// A staff member's visual check (目視確認).
    Visual { staff_id: String },
}

/// Options of one run by the reader.
#[derive(Debug, Clone)]
pub struct ByReaderOptions {
    pub reader: Option<String>,
    pub wait: Duration,
    pub card_timeout: Duration,
    pub service_override: Option<String>,
    pub mode: ReaderMode,
    pub action: Action,
    /// The patient's consents (confirmations only; a registration carries none).
    pub consents: ConsentBits,
    pub prescription: pb::PrescriptionIssue,
    /// The treatment the confirmation is for (MedicalTreatmentFlag; unspecified is 外来).
    pub treatment: pb::MedicalTreatment,
    /// 居宅同意取得型 first visit (`--mobile`): a visual check only; the device key attests
    /// it under purpose 61 and the request carries the re-query consent.
    pub mobile: bool,
}

/// The result code staff see when the face did not match (reported by the reader, not a
/// service code).
pub const FACE_NOT_MATCHED: &str = "FACE_NOT_MATCHED";

fn error(message: impl Into<String>) -> Outcome {
    Outcome::Error {
        message: message.into(),
    }
}

/// Runs one confirmation or registration by the reader. Progress goes to `progress`.
pub async fn run(
    config: &AgentConfig,
    opts: &ByReaderOptions,
    progress: &(dyn Fn(&str) + Sync),
) -> Outcome {
    let key = match crate::kiosk::load_device_key(config) {
        Ok(Some(k)) => k,
        Ok(None) => {
            return error(
                "the terminal configuration names no device_key: face and visual-check mode \
                 need the reader's device key",
            )
        }
        Err(e) => return error(e),
    };
    if let ReaderMode::Visual { staff_id } = &opts.mode {
        if let Err(e) = crate::kiosk::staff_auth::check_staff_id(staff_id) {
            return error(format!("--staff-id: {e}"));
        }
    }
    let mut grpc = match client::connect(config, opts.service_override.as_deref()).await {
        Ok(c) => c,
        Err(message) => return error(message),
    };
    let waiting = || eprintln!("カードを置いてください (place the card on the reader)");
    let (card, found) = match CardHandle::wait_for_card(
        opts.reader.clone(),
        opts.wait,
        opts.card_timeout,
        None,
        waiting,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => return error(format!("reading the card: {e}")),
    };
    let reading = match card.read().await {
        Ok(r) => r,
        Err(e) => return error(format!("reading the card: {}", e.message)),
    };
    if let Err(message) = check_certificate_der(&reading.certificate) {
        return error(message);
    }
    progress(&format!(
        "card read in reader {:?}: certificate {} bytes, {}",
        found.reader,
        reading.certificate.len(),
        match reading.pin_status {
            PinStatus::NotSet => "no PIN (a face-only card)".to_owned(),
            PinStatus::Blocked => "PIN locked".to_owned(),
            PinStatus::TriesLeft(n) => format!("PIN tries left {n}"),
            PinStatus::Verified => "PIN verified".to_owned(),
        }
    ));
    if opts.action == Action::Register && reading.pin_status != PinStatus::NotSet {
        return error(
            "this card has a PIN: register it with the PIN (`reader-agent register` without \
             --face or --visual-check); registration by the reader is for a card without a PIN",
        );
    }
    let identified = match &opts.mode {
        ReaderMode::Visual { staff_id } => Identified::Visual {
            staff_id: staff_id.clone(),
        },
        ReaderMode::Face { threshold } => {
            let photo = match card.face_photo().await {
                Ok(bytes) => Photo::decode_card_photo(&bytes),
                Err(e) => Err(e.message),
            };
            let photo = match photo {
                Ok(p) => p,
                Err(e) => {
                    return error(format!(
                        "the card's face photo cannot be used ({e}): use --visual-check"
                    ))
                }
            };
            let score = match_score(&photo, &Camera::Holder.capture(&photo, 0));
            progress(&format!(
                "face match: score {score} / threshold {threshold} (permille)"
            ));
            if score < *threshold {
                return Outcome::Refused {
                    result_code: FACE_NOT_MATCHED.to_owned(),
                    message: format!(
                        "the face did not match the card's photo (score {score} below \
                         {threshold}): try again or use --visual-check"
                    ),
                    tries_left: None,
                };
            }
            Identified::Face {
                score,
                threshold: *threshold,
            }
        }
    };
    let (purpose, pb_purpose, consents) = match opts.action {
        Action::Register => (
            Purpose::RegisterByReader,
            pb::Purpose::RegisterByReader,
            ConsentBits::default(),
        ),
        Action::Confirm => {
            let (p, pb_p) = identified.purpose_for(opts.mobile);
            (p, pb_p, opts.consents)
        }
    };
    let challenge = match grpc
        .issue_challenge(pb::IssueChallengeRequest {
            purpose: pb_purpose as i32,
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(status) => return refused_by_service(&status),
    };
    let (Some(check), Some((method, face_match, staff_id))) =
        (reader_check(&identified), reader_claim(&identified))
    else {
        return error("a PIN is not a check by the reader");
    };
    let binding = match (ChallengeBinding {
        purpose,
        challenge: &challenge.challenge,
        terminal_name: &challenge.terminal_name,
        certificate_der: &reading.certificate,
        consents,
    })
    .encode_attested(&check)
    {
        Ok(b) => b,
        Err(e) => return error(format!("the service sent an unusable challenge: {e}")),
    };
    let attestation = match key.sign(&ring::rand::SystemRandom::new(), &binding) {
        Ok(sig) => sig.as_ref().to_vec(),
        Err(_) => return error("the device key failed to sign"),
    };
    drop(card);
    match opts.action {
        Action::Register => {
            let answer = grpc
                .register_by_reader(pb::RegisterByReaderRequest {
                    certificate: reading.certificate,
                    challenge: challenge.challenge,
                    method: method as i32,
                    face_match,
                    staff_id,
                    attestation,
                })
                .await;
            match answer {
                Ok(r) => {
                    let r = r.into_inner();
                    Outcome::Registered {
                        result_code: r.result_code().as_str_name().to_owned(),
                        newly_registered: r.newly_registered,
                        confirmation_id: r.confirmation_id,
                    }
                }
                Err(status) => refused_by_service(&status),
            }
        }
        Action::Confirm => {
            let answer = grpc
                .confirm_by_reader(pb::ConfirmByReaderRequest {
                    certificate: reading.certificate,
                    challenge: challenge.challenge,
                    method: method as i32,
                    face_match,
                    staff_id,
                    consents: Some(consents.into()),
                    attestation,
                    prescription_issue: opts.prescription as i32,
                    treatment: opts.treatment as i32,
                    requery_consent: opts.mobile,
                })
                .await;
            match answer {
                Ok(r) => {
                    let result = r.into_inner();
                    Outcome::Confirmed {
                        result_code: result.result_code().as_str_name().to_owned(),
                        result: StaffResult::from_proto(&result),
                    }
                }
                Err(status) => refused_by_service(&status),
            }
        }
    }
}
