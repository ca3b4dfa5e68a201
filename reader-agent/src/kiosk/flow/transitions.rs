//! The flow's transitions: [`step`] and what it calls. Each transition takes the stage by
//! value and returns the next one, pushing the effects the runner must perform.

use std::sync::Arc;

use onshi_jpki::constants::sha256_digest_info;
use onshi_jpki::flows::{CardReading, PinStatus};
use onshi_jpki::Pin;
use onshi_proto::binding::{binding_sha256, ChallengeBinding, ConsentBits, Purpose, ReaderCheck};
use onshi_proto::v1 as pb;

use super::*;
use crate::face::{self, Camera, Photo, MAX_FACE_FAILURES};
use crate::kiosk::card::{CardFailure, VerifyError};
use crate::report::{Outcome, StaffResult};

/// One step of the flow: the state `event` leads to, and what the runner must do.
pub fn step(mut state: State, event: Event) -> (State, Vec<Effect>) {
    let mut fx = Vec::new();
    let stage = std::mem::replace(&mut state.stage, Stage::InsertCard);
    state.stage = state.on(stage, event, &mut fx);
    (state, fx)
}

/// Transitions: each takes the stage by value and returns the next one.
impl State {
    fn on(&mut self, stage: Stage, event: Event, fx: &mut Vec<Effect>) -> Stage {
        match (stage, event) {
            (stage, Event::ReaderTrouble(message)) => {
                self.reader_error = Some(message);
                stage
            }
            (stage, Event::CardInserted { reader, session_id }) => {
                self.reader_error = None;
                if stage.busy() {
                    // One patient at a time: a second reader's card waits.
                    return stage;
                }
                match session_id {
                    Ok(id) => {
                        self.session_id = Some(id);
                        self.notice = None;
                        fx.push(Effect::ReadCard {
                            reader: reader.clone(),
                        });
                        Stage::ReadingCard { reader }
                    }
                    Err(message) => {
                        self.reader_error = Some(message);
                        stage
                    }
                }
            }
            (stage, Event::PhoneHeld { session_id }) => self.phone_held(stage, session_id, fx),
            (Stage::ReadingPhone, Event::PhoneRead(read)) => self.phone_read(read, fx),
            (stage, Event::CardRemoved { reader }) => {
                if stage.card().is_some_and(|c| c.reader == reader) {
                    let mid_flow = !stage.finished();
                    self.end_session(mid_flow.then_some(Notice::CardRemoved), fx)
                } else {
                    stage
                }
            }
            (stage, Event::Visual(switch)) => {
                match switch {
                    VisualCheck::On(staff) => self.visual_check_staff = Some(staff),
                    VisualCheck::Off => self.visual_check_staff = None,
                    VisualCheck::OffIfBy(staff) => {
                        if self.visual_check_staff.as_ref() == Some(&staff) {
                            self.visual_check_staff = None;
                        }
                    }
                }
                match stage {
                    Stage::ChooseMethod { card } => self.methods(card, None, fx),
                    // The patient was identified by a staff member's visual check and is still
                    // answering the consents: if that staff member's switch went off (their
                    // log-in ended, or it was switched off), the check no longer stands.
                    Stage::Consent {
                        card,
                        identified: Identified::Visual { staff_id },
                        ..
                    } if self.visual_check_staff.as_ref() != Some(&staff_id) => self.fail(
                        card,
                        Failure::new(
                            FailReason::Cancelled,
                            None,
                            "the staff member who checked the patient is no longer logged in: \
                             the visual check was withdrawn",
                        ),
                        fx,
                    ),
                    other => other,
                }
            }
            (stage, Event::IdleTimeout) if stage.phone_finished() => self.end_session(None, fx),
            (stage, Event::IdleTimeout) if stage.waits_for_patient() => {
                let card = stage.into_card().expect("a waiting screen has a card");
                self.notice = Some(Notice::TimedOut);
                self.fail(
                    card,
                    Failure::new(
                        FailReason::TimedOut,
                        None,
                        "no answer for a while: the session ended; remove the card",
                    ),
                    fx,
                )
            }
            (stage, Event::Action { session, action }) => self.act(stage, session, action, fx),
            (stage, Event::ServiceReachable(up)) => {
                self.outage = !up;
                stage
            }
            (Stage::RecordingOutage { card }, Event::OutageRecorded(recorded)) => {
                self.outage_recorded(card, recorded, fx)
            }

            (Stage::ReadingCard { reader }, Event::CardRead(read)) => {
                self.card_read(reader, read, fx)
            }
            (Stage::ReadingFace { card }, Event::FacePhoto(photo)) => {
                self.face_photo(card, photo, fx)
            }
            (Stage::VerifyingPin { card, purpose }, Event::PinChecked(checked)) => {
                self.pin_checked(card, purpose, checked, fx)
            }
            (
                Stage::Confirming {
                    card,
                    reception,
                    exchange,
                },
                event,
            ) => self.confirming(card, reception, exchange, event, fx),
            (
                Stage::Registering {
                    card,
                    reception,
                    exchange,
                },
                event,
            ) => self.registering(card, reception, exchange, event, fx),
            // An answer the stage does not wait for (cannot happen with the runner, which
            // waits for each answer before the next event), or a timeout on a busy screen.
            (stage, _) => stage,
        }
    }

    /// Drops the session (the card worker resets a verified card as it goes) and shows the
    /// start screen.
    fn end_session(&mut self, notice: Option<Notice>, fx: &mut Vec<Effect>) -> Stage {
        fx.push(Effect::DropCard);
        self.notice = notice;
        Stage::InsertCard
    }

    /// The session reached its outcome with the card still in the reader: a verified card
    /// is reset, so nothing may sign with it any more.
    fn finish(card: &mut CardSession, fx: &mut Vec<Effect>) {
        if card.pin.verified {
            fx.push(Effect::ResetCard);
            card.pin.verified = false;
        }
    }

    fn fail(&mut self, mut card: CardSession, failure: Failure, fx: &mut Vec<Effect>) -> Stage {
        Self::finish(&mut card, fx);
        Stage::Failed {
            card: Some(card),
            failure,
        }
    }

    /// A card command failed: a pulled card ends the session, anything else is a failure
    /// screen with `reason`.
    fn card_failed(
        &mut self,
        card: CardSession,
        e: CardFailure,
        reason: FailReason,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        if e.removed {
            self.end_session(Some(Notice::CardRemoved), fx)
        } else {
            self.fail(card, Failure::new(reason, None, e.message), fx)
        }
    }

    /// Records a refusal or failure for staff and shows it.
    fn refused(
        &mut self,
        card: CardSession,
        identified: &Identified,
        outcome: Outcome,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        fx.push(Effect::Record(Record {
            method: identified.method().as_str(),
            staff_id: identified.staff_id(),
            outcome: outcome.clone(),
            registered_now: false,
        }));
        let failure = match outcome {
            Outcome::Refused {
                result_code,
                message,
                ..
            } => Failure {
                reason: FailReason::Refused,
                result_code: Some(result_code),
                message,
            },
            Outcome::Error { message } => Failure {
                reason: FailReason::ServiceUnreachable,
                result_code: None,
                message,
            },
            other => Failure {
                reason: FailReason::Refused,
                result_code: None,
                message: format!("{other:?}"),
            },
        };
        self.fail(card, failure, fx)
    }

    fn record_reader_refusal(code: pb::ResultCode, message: &str, fx: &mut Vec<Effect>) {
        fx.push(Effect::Record(Record {
            method: "reader",
            staff_id: None,
            outcome: Outcome::Refused {
                result_code: code.as_str_name().to_owned(),
                message: message.to_owned(),
                tries_left: None,
            },
            registered_now: false,
        }));
    }

    fn card_read(
        &mut self,
        reader: String,
        read: Result<(CardReading, u8), CardFailure>,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        // No session began: the card worker goes, and the next card starts afresh.
        let unreadable = |message: String, fx: &mut Vec<Effect>| {
            fx.push(Effect::DropCard);
            Stage::Failed {
                card: None,
                failure: Failure::new(FailReason::CardUnreadable, None, message),
            }
        };
        let (reading, face_failures) = match read {
            Ok(r) => r,
            Err(e) if e.removed => return self.end_session(Some(Notice::CardRemoved), fx),
            Err(e) => return unreadable(e.message, fx),
        };
        if let Err(message) = crate::confirm::check_certificate_der(&reading.certificate) {
            return unreadable(message, fx);
        }
        let Some(id) = self.session_id.clone() else {
            return unreadable("no session id".into(), fx);
        };
        let card = CardSession {
            id,
            reader,
            card_key: card_key(&reading.certificate),
            certificate: reading.certificate,
            pin: PinState {
                set: reading.pin_status != PinStatus::NotSet,
                tries_left: match reading.pin_status {
                    PinStatus::Blocked | PinStatus::NotSet => 0,
                    PinStatus::TriesLeft(n) => n,
                    PinStatus::Verified => 3,
                },
                verified: false,
            },
            face_photo: FacePhoto::NotRead,
            face_captures: 0,
            face_failures,
            registered_now: false,
            treatment: None,
        };
        if self.outage {
            // The service is known to be down: straight to the declaration, no PIN asked.
            return Stage::Declare { card, error: None };
        }
        self.methods(card, None, fx)
    }

    /// The method choice, or a failure when no method is left.
    fn methods(
        &mut self,
        card: CardSession,
        notice: Option<Notice>,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        if notice.is_some() {
            self.notice = notice;
        }
        let face = self.face_offer(&card);
        if face != FaceOffer::Available && card.pin.tries_left == 0 && !self.visual_check_offered()
        {
            let (reason, code) = if face == FaceOffer::Locked {
                (
                    FailReason::NoMethodLeft,
                    pb::ResultCode::FaceAttemptsExhausted,
                )
            } else if !card.pin.set {
                (FailReason::NoPinOnCard, pb::ResultCode::PinNotSet)
            } else {
                (FailReason::PinLocked, pb::ResultCode::PinAttemptsExhausted)
            };
            Self::record_reader_refusal(code, "no way to identify the holder is left", fx);
            let pin = if card.pin.set {
                "the PIN is locked (only the municipal office can unlock it)"
            } else {
                "this card has no PIN (顔認証マイナンバーカード)"
            };
            let message = format!(
                "{pin} and face authentication is not possible: staff can switch on \
                 目視確認, or confirm by the insurance card's numbers"
            );
            return self.fail(card, Failure::new(reason, Some(code), message), fx);
        }
        if self.settings.mobile && card.treatment.is_none() {
            return Stage::ChooseTreatment { card };
        }
        Stage::ChooseMethod { card }
    }

    fn act(
        &mut self,
        stage: Stage,
        session: String,
        action: Action,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        let current = stage.card().map(|c| c.id.as_str());
        if !current.is_some_and(|c| crate::kiosk::web::secrets_equal(c, &session)) {
            fx.push(Effect::Refuse {
                error: ActionRefused::StaleSession,
                message: match current {
                    Some(_) => "the action is not for the card in the reader".into(),
                    None => "no card is in the reader".into(),
                },
            });
            return stage;
        }
        if !matches!(action, Action::Cancel) {
            self.notice = None;
        }
        match (stage, action) {
            (stage, Action::Cancel) => {
                let card = stage.into_card().expect("checked: a session");
                self.fail(
                    card,
                    Failure::new(FailReason::Cancelled, None, "cancelled; remove the card"),
                    fx,
                )
            }
            (Stage::ChooseTreatment { mut card }, Action::ChooseTreatment(treatment)) => {
                card.treatment = Some(treatment);
                self.methods(card, None, fx)
            }
            (Stage::ChooseMethod { card }, Action::ChooseMethod(choice)) => {
                self.choose(card, choice, fx)
            }
            (Stage::Pin { card, purpose, .. }, Action::EnterPin(pin)) => {
                fx.push(Effect::VerifyPin(pin));
                Stage::VerifyingPin { card, purpose }
            }
            (
                Stage::PhonePin {
                    card,
                    reception,
                    challenge,
                    ..
                },
                Action::EnterPin(pin),
            ) => self.phone_sign(card, reception, challenge, Some(pin), fx),
            (
                Stage::Face {
                    card,
                    photo,
                    last_score: _,
                },
                Action::Face(camera),
            ) => self.face(card, photo, &camera, fx),
            (
                Stage::Consent {
                    card,
                    identified,
                    answers,
                },
                Action::Consents(given),
            ) => self.consents(card, identified, answers, given, fx),
            (
                Stage::Prescription {
                    card,
                    identified,
                    consents,
                },
                Action::Prescription(choice),
            ) => {
                let reception = Reception {
                    identified,
                    consents,
                    prescription: choice.to_proto(),
                };
                Self::confirm(card, reception, fx)
            }
            (Stage::OfferRegistration { card, reception }, Action::Register(accept)) => {
                self.registration(card, reception, accept, fx)
            }
            (Stage::Declare { card, .. }, Action::Declare(declaration)) => {
                match declaration.check() {
                    Err(e) => Stage::Declare {
                        card,
                        error: Some(e.to_string()),
                    },
                    Ok(()) => {
                        fx.push(Effect::RecordOutage {
                            declaration,
                            certificate_sha256: Some(card.card_key.clone()),
                        });
                        Stage::RecordingOutage { card }
                    }
                }
            }
            (stage, action) => {
                let wanted = action.screen().unwrap_or("any");
                fx.push(Effect::Refuse {
                    error: ActionRefused::WrongScreen,
                    message: format!(
                        "this action belongs to the {wanted} screen; the kiosk shows {}",
                        stage_name(&stage)
                    ),
                });
                stage
            }
        }
    }

    fn not_offered(stage: Stage, what: &str, fx: &mut Vec<Effect>) -> Stage {
        fx.push(Effect::Refuse {
            error: ActionRefused::NotOffered,
            message: format!("{what} is not offered for this card"),
        });
        stage
    }

    fn choose(&mut self, card: CardSession, choice: MethodChoice, fx: &mut Vec<Effect>) -> Stage {
        match choice {
            MethodChoice::Pin => {
                if !card.pin.set {
                    return Self::not_offered(
                        Stage::ChooseMethod { card },
                        "the PIN (this card has none: 顔認証マイナンバーカード)",
                        fx,
                    );
                }
                if card.pin.tries_left == 0 {
                    return Self::not_offered(
                        Stage::ChooseMethod { card },
                        "the PIN (it is locked)",
                        fx,
                    );
                }
                Stage::Pin {
                    card,
                    purpose: PinPurpose::Confirm,
                    wrong_pin: false,
                }
            }
            MethodChoice::Visual => {
                let Some(staff_id) = self.visual_check_staff.clone() else {
                    return Self::not_offered(
                        Stage::ChooseMethod { card },
                        "目視確認 (staff have not switched it on)",
                        fx,
                    );
                };
                if !self.settings.device_key {
                    return Self::not_offered(
                        Stage::ChooseMethod { card },
                        "目視確認 (the reader has no device key)",
                        fx,
                    );
                }
                Self::identified(card, Identified::Visual { staff_id })
            }
            MethodChoice::Face => {
                if self.face_offer(&card) != FaceOffer::Available {
                    return Self::not_offered(
                        Stage::ChooseMethod { card },
                        "face authentication",
                        fx,
                    );
                }
                match &card.face_photo {
                    FacePhoto::Read(photo) => Stage::Face {
                        photo: photo.clone(),
                        card,
                        last_score: None,
                    },
                    _ => {
                        fx.push(Effect::ReadFacePhoto);
                        Stage::ReadingFace { card }
                    }
                }
            }
        }
    }

    fn face_photo(
        &mut self,
        mut card: CardSession,
        photo: Result<Photo, CardFailure>,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        match photo {
            Ok(photo) => {
                let photo = Arc::new(photo);
                card.face_photo = FacePhoto::Read(photo.clone());
                Stage::Face {
                    card,
                    photo,
                    last_score: None,
                }
            }
            Err(e) if e.removed => self.end_session(Some(Notice::CardRemoved), fx),
            Err(_) => {
                card.face_photo = FacePhoto::Unavailable;
                self.methods(card, Some(Notice::FaceUnavailable), fx)
            }
        }
    }

    /// The holder is identified: the consent screens, then the confirmation.
    fn identified(card: CardSession, identified: Identified) -> Stage {
        Stage::Consent {
            card,
            identified,
            answers: [None; 4],
        }
    }

    fn face(
        &mut self,
        mut card: CardSession,
        photo: Arc<Photo>,
        camera: &Camera,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        let threshold = self.settings.face_threshold_permille;
        card.face_captures += 1;
        let captured = camera.capture(&photo, card.face_captures);
        let score = face::match_score(&photo, &captured);
        let card_key = card.card_key.clone();
        if score >= threshold {
            card.face_failures = 0;
            fx.push(Effect::ResetFaceFailures { card_key });
            return Self::identified(card, Identified::Face { score, threshold });
        }
        card.face_failures = card.face_failures.saturating_add(1).min(MAX_FACE_FAILURES);
        fx.push(Effect::RecordFaceFailure { card_key });
        if card.face_failures >= MAX_FACE_FAILURES {
            Self::record_reader_refusal(
                pb::ResultCode::FaceAttemptsExhausted,
                "ten face-authentication failures: face authentication is refused for this card",
                fx,
            );
            self.methods(card, Some(Notice::FaceLocked), fx)
        } else {
            Stage::Face {
                card,
                photo,
                last_score: Some(score),
            }
        }
    }

    fn pin_checked(
        &mut self,
        mut card: CardSession,
        purpose: PinPurpose,
        checked: Result<Result<(), VerifyError>, CardFailure>,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        match checked {
            Err(e) => {
                // The VERIFY's outcome is unknown (the card failed, or answered after the
                // worker stopped waiting): the card may be verified, so it is reset.
                card.pin.verified = true;
                self.card_failed(card, e, FailReason::CardError, fx)
            }
            Ok(Ok(())) => {
                card.pin.verified = true;
                card.pin.tries_left = 3;
                match purpose {
                    PinPurpose::Register(reception) => Self::register(card, reception, fx),
                    PinPurpose::Confirm => Self::identified(card, Identified::Pin),
                }
            }
            Ok(Err(VerifyError::Wrong { tries_left })) if tries_left > 0 => {
                card.pin.tries_left = tries_left;
                Stage::Pin {
                    card,
                    purpose,
                    wrong_pin: true,
                }
            }
            Ok(Err(VerifyError::Wrong { .. } | VerifyError::Blocked)) => {
                card.pin.tries_left = 0;
                Self::record_reader_refusal(
                    pb::ResultCode::PinAttemptsExhausted,
                    "three wrong PINs: the card's PIN is locked",
                    fx,
                );
                match purpose {
                    PinPurpose::Register(_) => self.fail(
                        card,
                        Failure::new(
                            FailReason::PinLocked,
                            Some(pb::ResultCode::PinAttemptsExhausted),
                            "the PIN is locked, so the card cannot be registered here; only \
                             the municipal office can unlock it",
                        ),
                        fx,
                    ),
                    PinPurpose::Confirm => self.methods(card, Some(Notice::PinLocked), fx),
                }
            }
        }
    }

    fn consents(
        &mut self,
        card: CardSession,
        identified: Identified,
        mut answers: [Option<bool>; 4],
        given: ConsentAnswers,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        if given.all == Some(true) {
            let refusal = [
                given.medication,
                given.checkup,
                given.clinical,
                given.surgery,
            ]
            .contains(&Some(false));
            if answers.iter().any(Option::is_some) || refusal {
                fx.push(Effect::Refuse {
                    error: ActionRefused::NotOffered,
                    message: if refusal {
                        "包括同意 consents to every kind: it cannot come with a refusal".into()
                    } else {
                        "包括同意 is offered only before any single consent is answered".into()
                    },
                });
                return Stage::Consent {
                    card,
                    identified,
                    answers,
                };
            }
            return self.consented(card, identified, ConsentBits::comprehensive(), fx);
        }
        for (slot, answer) in answers.iter_mut().zip([
            given.medication,
            given.checkup,
            given.clinical,
            given.surgery,
        ]) {
            if answer.is_some() {
                *slot = answer;
            }
        }
        match answers {
            [Some(a), Some(b), Some(c), Some(d)] => {
                self.consented(card, identified, ConsentBits::new(a, b, c, d), fx)
            }
            _ => Stage::Consent {
                card,
                identified,
                answers,
            },
        }
    }

    /// Every consent answered: the 電子処方箋 screen where the institution issues
    /// prescriptions, else the confirmation.
    fn consented(
        &mut self,
        card: CardSession,
        identified: Identified,
        consents: ConsentBits,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        if self.settings.prescription_choice {
            return Stage::Prescription {
                card,
                identified,
                consents,
            };
        }
        let reception = Reception {
            identified,
            consents,
            prescription: pb::PrescriptionIssue::Unspecified,
        };
        Self::confirm(card, reception, fx)
    }

    /// Asks the service: PIN mode with the card's signature, face and visual-check modes
    /// with the reader's attestation.
    fn confirm(card: CardSession, reception: Reception, fx: &mut Vec<Effect>) -> Stage {
        let first_visit = card.treatment.is_some();
        fx.push(Effect::IssueChallenge(
            reception.identified.purpose_for(first_visit).1,
        ));
        Stage::Confirming {
            card,
            reception,
            exchange: Exchange::Challenge,
        }
    }

    fn unusable_challenge(
        &mut self,
        card: CardSession,
        identified: &Identified,
        why: &str,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        let outcome = Outcome::Error {
            message: format!("the service sent an unusable challenge: {why}"),
        };
        self.refused(card, identified, outcome, fx)
    }

    fn confirming(
        &mut self,
        card: CardSession,
        reception: Reception,
        exchange: Exchange,
        event: Event,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        let identified = reception.identified.clone();
        match (exchange, event) {
            // The bounded wait for the service ran out, or it could not be reached: the
            // outage path. Nothing was sent that could confirm, so nothing is pending.
            (Exchange::Challenge, Event::Challenge(Err(outcome))) if is_unreachable(&outcome) => {
                let mut card = card;
                fx.push(Effect::Record(Record {
                    method: identified.method().as_str(),
                    staff_id: identified.staff_id(),
                    outcome: Outcome::Error {
                        message: format!(
                            "{}; the outage path (資格申立書) was offered",
                            match &outcome {
                                Outcome::Error { message } | Outcome::Refused { message, .. } => {
                                    message.clone()
                                }
                                other => format!("{other:?}"),
                            }
                        ),
                    },
                    registered_now: false,
                }));
                Self::finish(&mut card, fx);
                self.outage = true;
                Stage::Declare { card, error: None }
            }
            (Exchange::Challenge, Event::Challenge(Err(outcome))) => {
                self.refused(card, &identified, outcome, fx)
            }
            // Not registered: offered once; after registering here, a refusal like any other.
            // A phone cannot register here: setting it up needed a registered card.
            (Exchange::Answer, Event::Answered(Err(outcome)))
                if is_not_registered(&outcome)
                    && !card.registered_now
                    && !matches!(identified, Identified::Phone(_)) =>
            {
                Stage::OfferRegistration { card, reception }
            }
            (Exchange::Answer, Event::Answered(Err(outcome))) => {
                self.refused(card, &identified, outcome, fx)
            }
            (Exchange::Challenge, Event::Challenge(Ok(challenge))) => {
                if let Identified::Phone(platform) = identified {
                    return match platform {
                        Platform::Android => Stage::PhonePin {
                            card,
                            reception,
                            challenge,
                            wrong_pin: false,
                        },
                        Platform::Iphone => self.phone_sign(card, reception, challenge, None, fx),
                    };
                }
                let (purpose, _) = identified.purpose_for(card.treatment.is_some());
                let binding = ChallengeBinding {
                    purpose,
                    challenge: &challenge.challenge,
                    terminal_name: &challenge.terminal_name,
                    certificate_der: &card.certificate,
                    consents: reception.consents,
                };
                let signing = match reader_check(&identified) {
                    None => binding.encode().map(|bytes| {
                        Effect::Sign(sha256_digest_info(&binding_sha256(&bytes)).to_vec())
                    }),
                    Some(check) => binding.encode_attested(&check).map(Effect::Attest),
                };
                match signing {
                    Err(e) => self.unusable_challenge(card, &identified, &e.to_string(), fx),
                    Ok(Effect::Attest(_)) if !self.settings.device_key => {
                        let outcome = Outcome::Error {
                            message: "this reader has no device key".into(),
                        };
                        self.refused(card, &identified, outcome, fx)
                    }
                    Ok(effect) => {
                        fx.push(effect);
                        Stage::Confirming {
                            card,
                            reception,
                            exchange: Exchange::Signing(challenge),
                        }
                    }
                }
            }
            (Exchange::Signing(challenge), Event::Signed(signed)) => match signed {
                Err(e) => self.card_failed(card, e, FailReason::CardError, fx),
                Ok(signature) => {
                    fx.push(Effect::ConfirmByCard(pb::ConfirmByCardRequest {
                        certificate: card.certificate.clone(),
                        challenge: challenge.challenge,
                        signature,
                        consents: Some(reception.consents.into()),
                        prescription_issue: reception.prescription as i32,
                        treatment: treatment_of(&card),
                        requery_consent: card.treatment.is_some(),
                        credential_kind: pb::CredentialKind::Card as i32,
                    }));
                    Stage::Confirming {
                        card,
                        reception,
                        exchange: Exchange::Answer,
                    }
                }
            },
            (Exchange::Signing(challenge), Event::PhoneSigned(signed)) => {
                self.phone_signed(card, reception, challenge, signed, fx)
            }
            (Exchange::Signing(challenge), Event::Attested(attested)) => match attested {
                Err(message) => {
                    let outcome = Outcome::Error { message };
                    self.refused(card, &identified, outcome, fx)
                }
                Ok(attestation) => {
                    // The PIN path is signed by the card, never attested.
                    let Some((method, face_match, staff_id)) = reader_claim(&identified) else {
                        return Stage::Confirming {
                            card,
                            reception,
                            exchange: Exchange::Signing(challenge),
                        };
                    };
                    fx.push(Effect::ConfirmByReader(pb::ConfirmByReaderRequest {
                        certificate: card.certificate.clone(),
                        challenge: challenge.challenge,
                        method: method as i32,
                        face_match,
                        staff_id,
                        consents: Some(reception.consents.into()),
                        attestation,
                        prescription_issue: reception.prescription as i32,
                        treatment: treatment_of(&card),
                        requery_consent: card.treatment.is_some(),
                    }));
                    Stage::Confirming {
                        card,
                        reception,
                        exchange: Exchange::Answer,
                    }
                }
            },
            (Exchange::Answer, Event::Answered(Ok(result))) => {
                let (mut card, result) = (card, *result);
                fx.push(Effect::WriteFaceFile(Box::new(result.clone())));
                fx.push(Effect::Record(Record {
                    method: identified.method().as_str(),
                    staff_id: identified.staff_id(),
                    outcome: Outcome::Confirmed {
                        result_code: result.result_code().as_str_name().to_owned(),
                        result: StaffResult::from_proto(&result),
                    },
                    registered_now: card.registered_now,
                }));
                Self::finish(&mut card, fx);
                let prescription = result.prescription_issue();
                Stage::Done {
                    completed: {
                        let warning = super::view::CertificateWarning::of(&result);
                        let day = |t: &Option<prost_types::Timestamp>| {
                            warning.and(t.as_ref().and_then(super::view::jst_day))
                        };
                        Completed {
                            certificate_expiry: day(&result.certificate_not_after),
                            grace_until: day(&result.grace_until),
                            warning,
                            confirmation_id: result.confirmation_id,
                            validity: result.validity,
                            method: identified.method(),
                            registered_now: card.registered_now,
                            prescription,
                            treatment: crate::report::treatment_name(result.treatment)
                                .filter(|_| card.treatment.is_some()),
                            requery_until: result
                                .home_care
                                .as_ref()
                                .map(|p| dashed_day(&p.requery_until)),
                        }
                    },
                    card,
                }
            }
            (exchange, _) => Stage::Confirming {
                card,
                reception,
                exchange,
            },
        }
    }

    fn outage_recorded(
        &mut self,
        card: CardSession,
        recorded: Result<usize, String>,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        match recorded {
            Ok(waiting) => Stage::OutageRecorded { card, waiting },
            Err(message) => self.fail(
                card,
                Failure::new(FailReason::OutageNotRecorded, None, message),
                fx,
            ),
        }
    }

    fn registration(
        &mut self,
        card: CardSession,
        reception: Reception,
        accept: bool,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        if !accept {
            let outcome = Outcome::Refused {
                result_code: pb::ResultCode::CardNotRegistered.as_str_name().to_owned(),
                message: "the holder declined to register the card for insurance use".into(),
                tries_left: None,
            };
            return self.refused(card, &reception.identified, outcome, fx);
        }
        if card.pin.verified {
            Self::register(card, reception, fx)
        } else if !card.pin.set {
            // A face-only card (顔認証マイナンバーカード): the check that identified the holder
            // (face or visual) registers it, attested by the reader (purpose 40).
            if reader_check(&reception.identified).is_none() || !self.settings.device_key {
                let failure = Failure::new(
                    FailReason::PinNotSet,
                    Some(pb::ResultCode::PinNotSet),
                    "this card has no PIN (顔認証マイナンバーカード): it registers by face \
                     authentication or a visual check, which this reader cannot attest",
                );
                return self.fail(card, failure, fx);
            }
            fx.push(Effect::IssueChallenge(pb::Purpose::RegisterByReader));
            Stage::Registering {
                card,
                reception,
                exchange: Exchange::Challenge,
            }
        } else if card.pin.tries_left == 0 {
            let failure = Failure::new(
                FailReason::PinLocked,
                Some(pb::ResultCode::PinAttemptsExhausted),
                "registration needs the PIN, and it is locked",
            );
            self.fail(card, failure, fx)
        } else {
            Stage::Pin {
                card,
                purpose: PinPurpose::Register(reception),
                wrong_pin: false,
            }
        }
    }

    /// 健康保険証利用申込み with the verified card, then the confirmation again.
    fn register(card: CardSession, reception: Reception, fx: &mut Vec<Effect>) -> Stage {
        fx.push(Effect::IssueChallenge(pb::Purpose::Register));
        Stage::Registering {
            card,
            reception,
            exchange: Exchange::Challenge,
        }
    }

    fn registering(
        &mut self,
        card: CardSession,
        reception: Reception,
        exchange: Exchange,
        event: Event,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        let identified = reception.identified.clone();
        match (exchange, event) {
            (Exchange::Challenge, Event::Challenge(Err(outcome)))
            | (Exchange::Answer, Event::Registered(Err(outcome))) => {
                self.refused(card, &identified, outcome, fx)
            }
            (Exchange::Challenge, Event::Challenge(Ok(challenge))) => {
                // A verified card signs (PIN); a card without a PIN is vouched for by the
                // reader with the check that identified its holder.
                let by_reader = !card.pin.verified;
                let binding = ChallengeBinding {
                    purpose: if by_reader {
                        Purpose::RegisterByReader
                    } else {
                        Purpose::Register
                    },
                    challenge: &challenge.challenge,
                    terminal_name: &challenge.terminal_name,
                    certificate_der: &card.certificate,
                    consents: ConsentBits::default(),
                };
                let signing = match (by_reader, reader_check(&identified)) {
                    (false, _) => binding.encode().map(|bytes| {
                        Effect::Sign(sha256_digest_info(&binding_sha256(&bytes)).to_vec())
                    }),
                    (true, Some(check)) => binding.encode_attested(&check).map(Effect::Attest),
                    (true, None) => Err(onshi_proto::binding::BindingError::NeedsReaderCheck),
                };
                match signing {
                    Err(e) => self.unusable_challenge(card, &identified, &e.to_string(), fx),
                    Ok(effect) => {
                        fx.push(effect);
                        Stage::Registering {
                            card,
                            reception,
                            exchange: Exchange::Signing(challenge),
                        }
                    }
                }
            }
            (Exchange::Signing(challenge), Event::Attested(attested)) => match attested {
                Err(message) => {
                    let outcome = Outcome::Error { message };
                    self.refused(card, &identified, outcome, fx)
                }
                Ok(attestation) => {
                    // Never attested: a PIN registration is signed by the card.
                    let Some((method, face_match, staff_id)) = reader_claim(&identified) else {
                        return Stage::Registering {
                            card,
                            reception,
                            exchange: Exchange::Signing(challenge),
                        };
                    };
                    fx.push(Effect::RegisterByReader(pb::RegisterByReaderRequest {
                        certificate: card.certificate.clone(),
                        challenge: challenge.challenge,
                        method: method as i32,
                        face_match,
                        staff_id,
                        attestation,
                    }));
                    Stage::Registering {
                        card,
                        reception,
                        exchange: Exchange::Answer,
                    }
                }
            },
            (Exchange::Signing(challenge), Event::Signed(signed)) => match signed {
                Err(e) => self.card_failed(card, e, FailReason::CardError, fx),
                Ok(signature) => {
                    fx.push(Effect::Register(pb::RegisterRequest {
                        certificate: card.certificate.clone(),
                        challenge: challenge.challenge,
                        signature,
                    }));
                    Stage::Registering {
                        card,
                        reception,
                        exchange: Exchange::Answer,
                    }
                }
            },
            (Exchange::Answer, Event::Registered(Ok(r))) => {
                let mut card = card;
                let by_reader = !card.pin.verified;
                fx.push(Effect::Record(Record {
                    method: if by_reader {
                        identified.method().as_str()
                    } else {
                        "pin"
                    },
                    staff_id: if by_reader {
                        identified.staff_id()
                    } else {
                        None
                    },
                    outcome: Outcome::Registered {
                        result_code: r.result_code().as_str_name().to_owned(),
                        newly_registered: r.newly_registered,
                        confirmation_id: r.confirmation_id,
                    },
                    registered_now: true,
                }));
                card.registered_now = true;
                Self::confirm(card, reception, fx)
            }
            (exchange, _) => Stage::Registering {
                card,
                reception,
                exchange,
            },
        }
    }
}

/// The smartphone path (docs/smartphone.md, docs/kiosk.md): the phone takes the card's place
/// in a [`CardSession`] whose `reader` is [`PHONE_READER`] (no PC/SC reader's name), so the
/// consent, prescription, confirmation and result stages are the card's.
impl State {
    fn phone_held(
        &mut self,
        stage: Stage,
        session_id: Result<String, String>,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        let refusal = if !self.settings.phone {
            Some((
                ActionRefused::NotOffered,
                "this kiosk has no smartphone reader (reader-agent kiosk --phone)".to_owned(),
            ))
        } else if stage.busy() {
            Some((
                ActionRefused::WrongScreen,
                format!(
                    "a session is under way (the kiosk shows {}): one patient at a time",
                    stage_name(&stage)
                ),
            ))
        } else {
            None
        };
        if let Some((error, message)) = refusal {
            fx.push(Effect::Refuse { error, message });
            return stage;
        }
        match session_id {
            Ok(id) => {
                self.session_id = Some(id);
                self.notice = None;
                fx.push(Effect::ReadPhone);
                Stage::ReadingPhone
            }
            Err(message) => {
                self.reader_error = Some(message);
                stage
            }
        }
    }

    fn phone_read(&mut self, read: Result<Presented, Outcome>, fx: &mut Vec<Effect>) -> Stage {
        let unusable = |failure: Failure, fx: &mut Vec<Effect>| {
            fx.push(Effect::DropCard);
            Stage::Failed {
                card: None,
                failure,
            }
        };
        let presented = match read {
            Ok(p) => p,
            Err(outcome) => {
                let (code, message) = match outcome {
                    Outcome::Refused {
                        result_code,
                        message,
                        ..
                    } => (Some(result_code), message),
                    other => (None, format!("{other:?}")),
                };
                return unusable(
                    Failure {
                        reason: FailReason::Refused,
                        result_code: code,
                        message,
                    },
                    fx,
                );
            }
        };
        let Some(id) = self.session_id.clone() else {
            return unusable(
                Failure::new(FailReason::CardUnreadable, None, "no session id"),
                fx,
            );
        };
        let android = presented.platform == Platform::Android;
        let card = CardSession {
            id,
            reader: PHONE_READER.to_owned(),
            card_key: card_key(&presented.certificate),
            certificate: presented.certificate,
            pin: PinState {
                set: android,
                tries_left: presented.tries_left.unwrap_or(0),
                verified: false,
            },
            face_photo: FacePhoto::Unavailable,
            face_captures: 0,
            face_failures: 0,
            registered_now: false,
            // A 居宅同意取得型 first visit reads the card (`kiosk --phone` and `--mobile`
            // exclude each other).
            treatment: None,
        };
        if self.outage {
            return Stage::Declare { card, error: None };
        }
        let identified = Identified::Phone(presented.platform);
        if android && card.pin.tries_left == 0 {
            let outcome = crate::phone::phone_refusal(
                pb::ResultCode::PhonePinLocked,
                "the phone's PIN is locked (too many wrong PINs): it must be reset at the \
                 municipal office",
                Some(0),
            );
            return self.refused(card, &identified, outcome, fx);
        }
        Self::identified(card, identified)
    }

    /// Has the phone sign the binding of `challenge` (Android: with the PIN just typed).
    fn phone_sign(
        &mut self,
        card: CardSession,
        reception: Reception,
        challenge: pb::IssueChallengeResponse,
        pin: Option<Pin>,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        let (purpose, _) = reception.identified.purpose();
        match crate::confirm::binding_for(
            purpose,
            &challenge,
            &card.certificate,
            reception.consents,
        ) {
            Err(outcome) => {
                let identified = reception.identified.clone();
                self.refused(card, &identified, outcome, fx)
            }
            Ok(binding) => {
                fx.push(Effect::PhoneSign { binding, pin });
                Stage::Confirming {
                    card,
                    reception,
                    exchange: Exchange::Signing(challenge),
                }
            }
        }
    }

    fn phone_signed(
        &mut self,
        mut card: CardSession,
        reception: Reception,
        challenge: pb::IssueChallengeResponse,
        signed: Signed,
        fx: &mut Vec<Effect>,
    ) -> Stage {
        let identified = reception.identified.clone();
        match signed {
            Signed::Signature(signature) => {
                let Identified::Phone(platform) = identified else {
                    return self.unusable_challenge(card, &identified, "not a phone", fx);
                };
                let (_, _, kind) = crate::phone::kind_of(platform);
                fx.push(Effect::ConfirmByCard(pb::ConfirmByCardRequest {
                    certificate: card.certificate.clone(),
                    challenge: challenge.challenge,
                    signature,
                    consents: Some(reception.consents.into()),
                    prescription_issue: reception.prescription as i32,
                    treatment: 0,
                    requery_consent: false,
                    credential_kind: kind as i32,
                }));
                Stage::Confirming {
                    card,
                    reception,
                    exchange: Exchange::Answer,
                }
            }
            // The challenge was not used: the same one is signed after the next PIN.
            Signed::WrongPin(tries_left) => {
                card.pin.tries_left = tries_left;
                Stage::PhonePin {
                    card,
                    reception,
                    challenge,
                    wrong_pin: true,
                }
            }
            Signed::Refused(outcome) => self.refused(card, &identified, outcome, fx),
        }
    }
}

/// The `reader` of a phone's session: no PC/SC reader is called this, so pulling a card
/// never ends a phone's session.
pub const PHONE_READER: &str = "(smartphone)";

/// The name of the screen `stage` shows.
fn stage_name(stage: &Stage) -> &'static str {
    match stage {
        Stage::InsertCard => "insert_card",
        Stage::PhonePin { .. } => "pin",
        Stage::ReadingPhone
        | Stage::ReadingCard { .. }
        | Stage::ReadingFace { .. }
        | Stage::VerifyingPin { .. }
        | Stage::Confirming { .. }
        | Stage::Registering { .. } => "working",
        Stage::ChooseTreatment { .. } => "choose_treatment",
        Stage::ChooseMethod { .. } => "choose_method",
        Stage::Pin { .. } => "pin",
        Stage::Face { .. } => "face",
        Stage::Consent { .. } => "consent",
        Stage::Prescription { .. } => "prescription",
        Stage::OfferRegistration { .. } => "offer_registration",
        Stage::Done { .. } => "done",
        Stage::Failed { .. } => "failed",
        Stage::Declare { .. } => "outage_declare",
        Stage::RecordingOutage { .. } => "working",
        Stage::OutageRecorded { .. } => "outage_recorded",
    }
}

/// The reader's own check behind a face or visual-check confirmation (`None`: the PIN path,
/// signed by the card).
pub fn reader_check(identified: &Identified) -> Option<ReaderCheck<'_>> {
    match identified {
        Identified::Pin | Identified::Phone(_) => None,
        Identified::Face { score, threshold } => Some(ReaderCheck::Face {
            score_permille: *score,
            threshold_permille: *threshold,
        }),
        Identified::Visual { staff_id } => Some(ReaderCheck::Visual { staff_id }),
    }
}

/// The request's treatment: the mobile mode's choice, or unspecified (外来).
fn treatment_of(card: &CardSession) -> i32 {
    card.treatment
        .map_or(pb::MedicalTreatment::Unspecified, |t| t.to_proto()) as i32
}

/// YYYYMMDD as the page shows days, YYYY-MM-DD (anything else as it came).
fn dashed_day(day: &str) -> String {
    match (day.get(..4), day.get(4..6), day.get(6..8)) {
        (Some(y), Some(m), Some(d)) if day.len() == 8 => format!("{y}-{m}-{d}"),
        _ => day.to_owned(),
    }
}

/// The service could not be reached (or said it is unavailable): no answer came.
fn is_unreachable(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Error { .. } => true,
        Outcome::Refused { result_code, .. } => {
            result_code == pb::ResultCode::ServiceUnavailable.as_str_name()
        }
        _ => false,
    }
}

/// The service's answer that the card is not registered for insurance use.
fn is_not_registered(outcome: &Outcome) -> bool {
    matches!(
        outcome,
        Outcome::Refused { result_code, .. }
            if result_code == pb::ResultCode::CardNotRegistered.as_str_name()
    )
}

/// What the reader claims about how it identified the holder (the method, the face match, the
/// staff member), for a confirmation or a registration by the reader; `None` for the PIN, which
/// the card signs and the reader never attests.
pub fn reader_claim(
    identified: &Identified,
) -> Option<(pb::ReaderMethod, Option<pb::FaceMatch>, String)> {
    match identified {
        Identified::Face { score, threshold } => Some((
            pb::ReaderMethod::Face,
            Some(pb::FaceMatch {
                score_permille: u32::from(*score),
                threshold_permille: u32::from(*threshold),
            }),
            String::new(),
        )),
        Identified::Visual { staff_id } => {
            Some((pb::ReaderMethod::VisualCheck, None, staff_id.clone()))
        }
        Identified::Pin | Identified::Phone(_) => None,
    }
}
