//! The reception flow driven by plain calls to [`step`]: no pcscd, no service, no browser.
//! Each test plays the runner's part, answering the requests the flow makes.

use onshi_jpki::flows::{CardReading, PinStatus};
use onshi_jpki::Pin;
use onshi_proto::binding::ConsentBits;
use onshi_proto::v1 as pb;

use super::*;
use crate::kiosk::card::{CardFailure, VerifyError};

const SESSION: &str = "00112233445566778899aabbccddeeff";
const READER: &str = "Virtual PCD 00 00";

fn certificate() -> Vec<u8> {
    use std::sync::OnceLock;
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| {
        rcgen::generate_simple_self_signed(vec!["kiosk.test".into()])
            .expect("a test certificate")
            .cert
            .der()
            .to_vec()
    })
    .clone()
}

/// A card photo with enough contrast for the matcher: a diagonal gradient.
fn photo() -> Photo {
    let (w, h) = (24usize, 32usize);
    let mut pgm = format!("P5\n{w} {h}\n255\n").into_bytes();
    pgm.extend((0..w * h).map(|i| ((i % w) * 7 + (i / w) * 5) as u8));
    Photo::parse_pgm(&pgm).expect("a valid PGM")
}

fn settings() -> Settings {
    Settings {
        device_key: true,
        face_threshold_permille: crate::face::DEFAULT_THRESHOLD_PERMILLE,
        prescription_choice: false,
        mobile: false,
        phone: false,
    }
}

/// The flow and the effects of its last step.
struct Kiosk {
    state: Option<State>,
    effects: Vec<Effect>,
}

impl Kiosk {
    fn new(settings: Settings) -> Self {
        Kiosk {
            state: Some(State::new(settings)),
            effects: Vec::new(),
        }
    }

    fn state(&self) -> &State {
        self.state.as_ref().expect("a state")
    }

    fn feed(&mut self, event: Event) -> &mut Self {
        let (state, effects) = step(self.state.take().expect("a state"), event);
        self.state = Some(state);
        self.effects = effects;
        self
    }

    fn act(&mut self, action: Action) -> &mut Self {
        self.act_as(SESSION, action)
    }

    fn act_as(&mut self, session: &str, action: Action) -> &mut Self {
        self.feed(Event::Action {
            session: session.into(),
            action,
        })
    }

    fn view(&self) -> KioskState {
        self.state().view()
    }

    fn screen(&self) -> Screen {
        self.view().screen
    }

    /// Places a card and answers the read with `pin_status` and `face_failures`.
    fn card(settings: Settings, pin_status: PinStatus, face_failures: u8) -> Self {
        let mut k = Kiosk::new(settings);
        k.feed(Event::CardInserted {
            reader: READER.into(),
            session_id: Ok(SESSION.into()),
        });
        assert!(matches!(&k.effects[..], [Effect::ReadCard { reader }] if reader == READER));
        assert_eq!(
            k.screen(),
            Screen::Working {
                task: Task::ReadingCard
            }
        );
        k.feed(Event::CardRead(Ok((
            CardReading {
                certificate: certificate(),
                pin_status,
            },
            face_failures,
        ))));
        k
    }

    fn ready() -> Self {
        Kiosk::card(settings(), PinStatus::TriesLeft(3), 0)
    }

    fn pin(&mut self, digits: &str) -> &mut Self {
        self.act(Action::EnterPin(Pin::new(digits).expect("four digits")))
    }

    fn all_consents(&mut self) -> &mut Self {
        self.act(Action::Consents(ConsentAnswers {
            medication: Some(true),
            checkup: Some(false),
            clinical: Some(true),
            surgery: Some(false),
            all: None,
        }))
    }

    /// From the method choice: the PIN, verified, and every consent answered.
    fn pin_verified_and_consented(&mut self) -> &mut Self {
        self.act(Action::ChooseMethod(MethodChoice::Pin))
            .pin("1234")
            .feed(Event::PinChecked(Ok(Ok(()))))
            .all_consents()
    }

    fn challenge(&mut self) -> &mut Self {
        self.feed(Event::Challenge(Ok(pb::IssueChallengeResponse {
            challenge: vec![7; 32],
            terminal_name: "1312345678-01".into(),
            ..Default::default()
        })))
    }

    fn refusal(&self) -> Option<(ActionRefused, &str)> {
        self.effects.iter().find_map(|e| match e {
            Effect::Refuse { error, message } => Some((*error, message.as_str())),
            _ => None,
        })
    }

    fn records(&self) -> Vec<&Record> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Record(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    fn resets_card(&self) -> bool {
        self.effects.iter().any(|e| matches!(e, Effect::ResetCard))
    }

    fn drops_card(&self) -> bool {
        self.effects.iter().any(|e| matches!(e, Effect::DropCard))
    }

    fn failed(&self) -> (FailReason, Option<String>) {
        match self.screen() {
            Screen::Failed {
                reason,
                result_code,
                ..
            } => (reason, result_code),
            other => panic!("not the failure screen: {other:?}"),
        }
    }
}

fn confirmed(id: &str) -> Event {
    Event::Answered(Ok(Box::new(pb::ConfirmationResult {
        result_code: pb::ResultCode::Ok as i32,
        validity: 1,
        confirmation_id: id.into(),
        ..Default::default()
    })))
}

fn refused(code: pb::ResultCode) -> Outcome {
    Outcome::Refused {
        result_code: code.as_str_name().to_owned(),
        message: "refused".into(),
        tries_left: None,
    }
}

fn code(c: pb::ResultCode) -> Option<String> {
    Some(c.as_str_name().to_owned())
}

#[test]
fn a_pin_confirmation_signs_the_consents_and_resets_the_card_at_the_end() {
    let mut k = Kiosk::ready();
    assert_eq!(
        k.screen(),
        Screen::ChooseMethod {
            face: FaceOffer::Available,
            face_failures: 0,
            pin_tries_left: 3,
            pin_set: true,
            visual_check: false,
        }
    );
    k.act(Action::ChooseMethod(MethodChoice::Pin));
    assert_eq!(
        k.screen(),
        Screen::Pin {
            purpose: PinPadPurpose::Confirm,
            tries_left: 3,
            wrong_pin: false
        }
    );
    k.pin("1234");
    assert!(matches!(&k.effects[..], [Effect::VerifyPin(_)]));
    assert_eq!(
        k.screen(),
        Screen::Working {
            task: Task::VerifyingPin
        }
    );
    k.feed(Event::PinChecked(Ok(Ok(()))));
    assert_eq!(
        k.screen(),
        Screen::Consent {
            item: "medication",
            index: 1,
            total: 4,
            comprehensive_offered: true,
        }
    );
    k.all_consents();
    assert!(matches!(
        &k.effects[..],
        [Effect::IssueChallenge(pb::Purpose::Confirm)]
    ));
    k.challenge();
    let [Effect::Sign(digest_info)] = &k.effects[..] else {
        panic!("the card signs: {:?}", k.effects)
    };
    // A SHA-256 DigestInfo: 19 bytes of header and the 32-byte hash.
    assert_eq!(digest_info.len(), 51);
    k.feed(Event::Signed(Ok(vec![9; 256])));
    let [Effect::ConfirmByCard(request)] = &k.effects[..] else {
        panic!("the confirmation is sent: {:?}", k.effects)
    };
    assert_eq!(request.certificate, certificate());
    assert_eq!(request.challenge, vec![7; 32]);
    assert_eq!(request.signature, vec![9; 256]);
    assert_eq!(
        request.consents,
        Some(ConsentBits::new(true, false, true, false).into())
    );
    k.feed(confirmed("C-1"));
    assert!(k.resets_card(), "a verified card is reset at 受付完了");
    assert!(matches!(k.effects[0], Effect::WriteFaceFile(_)));
    let records = k.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].method, "pin");
    assert!(matches!(records[0].outcome, Outcome::Confirmed { .. }));
    assert_eq!(
        k.screen(),
        Screen::Done {
            confirmation_id: "C-1".into(),
            validity: 1,
            validity_label: crate::report::validity_label(1),
            method: Method::Pin,
            registered_now: false,
            warning: None,
            certificate_expiry: None,
            grace_until: None,
            prescription: None,
            treatment: None,
            requery_until: None,
        }
    );
    // Pulling the card after 受付完了: the start screen, without a notice.
    k.feed(Event::CardRemoved {
        reader: READER.into(),
    });
    assert!(k.drops_card());
    assert_eq!(k.screen(), Screen::InsertCard);
    assert_eq!(k.view().notice, None);
}

#[test]
fn three_wrong_pins_lock_the_pin_and_face_remains() {
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Pin));
    for tries_left in [2, 1] {
        k.pin("9999")
            .feed(Event::PinChecked(Ok(Err(VerifyError::Wrong {
                tries_left,
            }))));
        assert_eq!(
            k.screen(),
            Screen::Pin {
                purpose: PinPadPurpose::Confirm,
                tries_left,
                wrong_pin: true
            }
        );
        assert!(k.records().is_empty());
    }
    k.pin("9999")
        .feed(Event::PinChecked(Ok(Err(VerifyError::Wrong {
            tries_left: 0,
        }))));
    let records = k.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].method, "reader");
    assert!(matches!(&records[0].outcome,
        Outcome::Refused { result_code, .. } if result_code == pb::ResultCode::PinAttemptsExhausted.as_str_name()));
    assert_eq!(k.view().notice, Some(Notice::PinLocked));
    assert!(matches!(
        k.screen(),
        Screen::ChooseMethod {
            pin_tries_left: 0,
            face: FaceOffer::Available,
            ..
        }
    ));
    // The PIN pad is not offered any more.
    k.act(Action::ChooseMethod(MethodChoice::Pin));
    assert_eq!(
        k.refusal(),
        Some((
            ActionRefused::NotOffered,
            "the PIN (it is locked) is not offered for this card"
        ))
    );
    assert!(matches!(k.screen(), Screen::ChooseMethod { .. }));
}

#[test]
fn a_locked_pin_without_face_or_visual_check_ends_on_a_clear_failure() {
    let no_key = Settings {
        device_key: false,
        ..settings()
    };
    let mut k = Kiosk::card(no_key, PinStatus::TriesLeft(1), 0);
    k.act(Action::ChooseMethod(MethodChoice::Pin))
        .pin("9999")
        .feed(Event::PinChecked(Ok(Err(VerifyError::Blocked))));
    assert_eq!(
        k.failed(),
        (
            FailReason::PinLocked,
            code(pb::ResultCode::PinAttemptsExhausted)
        )
    );
    // The wrong PIN and "no method left" are both recorded.
    assert_eq!(k.records().len(), 2);

    // A card already blocked when placed fails at once.
    let k = Kiosk::card(no_key, PinStatus::Blocked, 0);
    assert_eq!(k.failed().0, FailReason::PinLocked);
    assert_eq!(k.records().len(), 1);
}

/// Each screen of a session, reached from a fresh card, and whether it is mid-flow.
fn at_each_screen() -> Vec<(&'static str, Kiosk, bool)> {
    let mut screens = Vec::new();
    let k = Kiosk::ready();
    screens.push(("choose_method", k, true));
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Face));
    screens.push(("reading_face", k, true));
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Face))
        .feed(Event::FacePhoto(Ok(photo())));
    screens.push(("face", k, true));
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Pin));
    screens.push(("pin", k, true));
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Pin)).pin("1234");
    screens.push(("verifying_pin", k, true));
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Pin))
        .pin("1234")
        .feed(Event::PinChecked(Ok(Ok(()))));
    screens.push(("consent", k, true));
    let mut k = Kiosk::ready();
    k.pin_verified_and_consented();
    screens.push(("confirming", k, true));
    let mut k = Kiosk::ready();
    k.pin_verified_and_consented()
        .challenge()
        .feed(Event::Signed(Ok(vec![1])))
        .feed(Event::Answered(Err(refused(
            pb::ResultCode::CardNotRegistered,
        ))));
    screens.push(("offer_registration", k, true));
    let mut k = Kiosk::ready();
    k.pin_verified_and_consented()
        .challenge()
        .feed(Event::Signed(Ok(vec![1])))
        .feed(Event::Answered(Err(refused(
            pb::ResultCode::CardNotRegistered,
        ))))
        .act(Action::Register(true));
    screens.push(("registering", k, true));
    let mut k = Kiosk::ready();
    k.pin_verified_and_consented()
        .challenge()
        .feed(Event::Signed(Ok(vec![1])))
        .feed(confirmed("C-2"));
    screens.push(("done", k, false));
    let mut k = Kiosk::ready();
    k.act(Action::Cancel);
    screens.push(("failed", k, false));
    screens
}

#[test]
fn a_card_pulled_at_any_screen_ends_the_session() {
    for (name, mut k, mid_flow) in at_each_screen() {
        // Another reader's card going changes nothing.
        let before = k.view();
        k.feed(Event::CardRemoved {
            reader: "another reader".into(),
        });
        assert_eq!(k.view(), before, "{name}");
        assert!(k.effects.is_empty(), "{name}");

        k.feed(Event::CardRemoved {
            reader: READER.into(),
        });
        assert_eq!(k.screen(), Screen::InsertCard, "{name}");
        assert!(k.drops_card(), "{name}: the card worker goes (and resets)");
        let notice = mid_flow.then_some(Notice::CardRemoved);
        assert_eq!(k.view().notice, notice, "{name}");
        // The old session's actions are refused, by name.
        k.act(Action::Cancel);
        assert_eq!(
            k.refusal(),
            Some((ActionRefused::StaleSession, "no card is in the reader")),
            "{name}"
        );
        // The next card starts afresh.
        k.feed(Event::CardInserted {
            reader: READER.into(),
            session_id: Ok("ffff".into()),
        });
        assert_eq!(k.view().session.as_deref(), Some("ffff"), "{name}");
        assert_eq!(k.view().notice, None, "{name}");
    }
}

#[test]
fn a_card_command_that_finds_the_card_gone_ends_the_session() {
    let gone = || CardFailure {
        message: "the card was removed".into(),
        removed: true,
    };
    let mut k = Kiosk::ready();
    k.pin_verified_and_consented()
        .challenge()
        .feed(Event::Signed(Err(gone())));
    assert_eq!(k.screen(), Screen::InsertCard);
    assert_eq!(k.view().notice, Some(Notice::CardRemoved));
    assert!(k.drops_card());

    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Pin))
        .pin("1234")
        .feed(Event::PinChecked(Err(gone())));
    assert_eq!(k.view().notice, Some(Notice::CardRemoved));

    let mut k = Kiosk::new(settings());
    k.feed(Event::CardInserted {
        reader: READER.into(),
        session_id: Ok(SESSION.into()),
    })
    .feed(Event::CardRead(Err(gone())));
    assert_eq!(k.screen(), Screen::InsertCard);
    assert_eq!(k.view().notice, Some(Notice::CardRemoved));

    // A card error that is not a removal: the failure screen; the session goes on until
    // the card is pulled.
    let mut k = Kiosk::ready();
    k.pin_verified_and_consented()
        .challenge()
        .feed(Event::Signed(Err(CardFailure {
            message: "6982".into(),
            removed: false,
        })));
    assert_eq!(k.failed().0, FailReason::CardError);
    assert!(k.resets_card());
    assert!(k.state().stage.card().is_some());
}

#[test]
fn an_unreadable_card_fails_without_a_session_and_the_next_card_is_read() {
    let mut k = Kiosk::new(settings());
    k.feed(Event::CardInserted {
        reader: READER.into(),
        session_id: Ok(SESSION.into()),
    })
    .feed(Event::CardRead(Ok((
        CardReading {
            certificate: vec![0x30, 0x03, 1, 2, 3],
            pin_status: PinStatus::TriesLeft(3),
        },
        0,
    ))));
    assert_eq!(k.failed().0, FailReason::CardUnreadable);
    assert!(k.drops_card());
    assert!(k.state().stage.card().is_none());
    // Pulling it changes nothing; its actions are refused.
    k.feed(Event::CardRemoved {
        reader: READER.into(),
    });
    assert_eq!(k.failed().0, FailReason::CardUnreadable);
    k.act(Action::Cancel);
    assert_eq!(k.refusal().map(|r| r.0), Some(ActionRefused::StaleSession));
    k.feed(Event::CardInserted {
        reader: READER.into(),
        session_id: Ok("next".into()),
    });
    assert!(matches!(&k.effects[..], [Effect::ReadCard { .. }]));
}

#[test]
fn a_second_card_waits_while_a_session_runs() {
    let mut k = Kiosk::ready();
    k.feed(Event::CardInserted {
        reader: "second reader".into(),
        session_id: Ok("other".into()),
    });
    assert!(k.effects.is_empty());
    assert_eq!(k.view().session.as_deref(), Some(SESSION));
}

#[test]
fn registration_with_the_verified_pin_then_the_confirmation_again() {
    let mut k = Kiosk::ready();
    k.pin_verified_and_consented()
        .challenge()
        .feed(Event::Signed(Ok(vec![1])))
        .feed(Event::Answered(Err(refused(
            pb::ResultCode::CardNotRegistered,
        ))));
    assert_eq!(k.screen(), Screen::OfferRegistration { needs_pin: true });
    assert!(k.records().is_empty(), "the offer is not a refusal yet");
    assert!(
        !k.resets_card(),
        "the verified card is kept for registering"
    );
    k.act(Action::Register(true));
    assert!(matches!(
        &k.effects[..],
        [Effect::IssueChallenge(pb::Purpose::Register)]
    ));
    k.challenge();
    assert!(matches!(&k.effects[..], [Effect::Sign(_)]));
    k.feed(Event::Signed(Ok(vec![2])));
    let [Effect::Register(request)] = &k.effects[..] else {
        panic!("the registration is sent: {:?}", k.effects)
    };
    assert_eq!(request.signature, vec![2]);
    k.feed(Event::Registered(Ok(pb::RegisterResponse {
        result_code: pb::ResultCode::Ok as i32,
        newly_registered: true,
        confirmation_id: "R-1".into(),
        ..Default::default()
    })));
    let records = k.records();
    assert!(matches!(
        &records[..],
        [Record {
            method: "pin",
            registered_now: true,
            outcome: Outcome::Registered {
                newly_registered: true,
                ..
            },
            ..
        }]
    ));
    assert!(matches!(
        &k.effects[..],
        [_, Effect::IssueChallenge(pb::Purpose::Confirm)]
    ));
    k.challenge().feed(Event::Signed(Ok(vec![3])));
    // Not registered a second time: a refusal, no second offer.
    let mut again = Kiosk {
        state: k.state.clone(),
        effects: Vec::new(),
    };
    again.feed(Event::Answered(Err(refused(
        pb::ResultCode::CardNotRegistered,
    ))));
    assert_eq!(
        again.failed(),
        (FailReason::Refused, code(pb::ResultCode::CardNotRegistered))
    );
    k.feed(confirmed("C-3"));
    assert!(matches!(
        k.screen(),
        Screen::Done {
            registered_now: true,
            method: Method::Pin,
            ..
        }
    ));
    assert!(k.resets_card());
}

#[test]
fn registration_after_a_face_confirmation_asks_for_the_pin_then_confirms_by_face() {
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Face))
        .feed(Event::FacePhoto(Ok(photo())))
        .act(Action::Face(Camera::Holder))
        .all_consents()
        .challenge();
    assert!(matches!(&k.effects[..], [Effect::Attest(_)]));
    k.feed(Event::Attested(Ok(vec![4])));
    let [Effect::ConfirmByReader(request)] = &k.effects[..] else {
        panic!("the attested confirmation is sent: {:?}", k.effects)
    };
    assert_eq!(request.method, pb::ReaderMethod::Face as i32);
    assert_eq!(request.attestation, vec![4]);
    k.feed(Event::Answered(Err(refused(
        pb::ResultCode::CardNotRegistered,
    ))));
    k.act(Action::Register(true));
    assert_eq!(
        k.screen(),
        Screen::Pin {
            purpose: PinPadPurpose::Register,
            tries_left: 3,
            wrong_pin: false
        }
    );
    k.pin("1234").feed(Event::PinChecked(Ok(Ok(()))));
    assert!(matches!(
        &k.effects[..],
        [Effect::IssueChallenge(pb::Purpose::Register)]
    ));
    k.challenge()
        .feed(Event::Signed(Ok(vec![5])))
        .feed(Event::Registered(Ok(pb::RegisterResponse::default())));
    // The reception goes on as it began: by face.
    assert!(matches!(
        &k.effects[..],
        [_, Effect::IssueChallenge(pb::Purpose::Face)]
    ));
}

#[test]
fn registration_declined_or_impossible() {
    let offer = |pin_status| {
        let mut k = Kiosk::card(settings(), pin_status, 0);
        k.act(Action::ChooseMethod(MethodChoice::Face))
            .feed(Event::FacePhoto(Ok(photo())))
            .act(Action::Face(Camera::Holder))
            .all_consents()
            .challenge()
            .feed(Event::Attested(Ok(vec![4])))
            .feed(Event::Answered(Err(refused(
                pb::ResultCode::CardNotRegistered,
            ))));
        assert!(matches!(k.screen(), Screen::OfferRegistration { .. }));
        k
    };
    let mut k = offer(PinStatus::TriesLeft(3));
    k.act(Action::Register(false));
    assert_eq!(
        k.failed(),
        (FailReason::Refused, code(pb::ResultCode::CardNotRegistered))
    );
    assert_eq!(k.records()[0].method, "face");

    // A card without a PIN registers by the face that identified its holder (its own test
    // below follows the exchange to the end).
    let mut k = offer(PinStatus::NotSet);
    assert_eq!(k.screen(), Screen::OfferRegistration { needs_pin: false });
    k.act(Action::Register(true));
    assert!(matches!(
        &k.effects[..],
        [Effect::IssueChallenge(pb::Purpose::RegisterByReader)]
    ));

    let mut k = offer(PinStatus::Blocked);
    k.act(Action::Register(true));
    assert_eq!(
        k.failed(),
        (
            FailReason::PinLocked,
            code(pb::ResultCode::PinAttemptsExhausted)
        )
    );

    // Three wrong PINs on the registration pad: locked, no registration.
    let mut k = offer(PinStatus::TriesLeft(1));
    k.act(Action::Register(true))
        .pin("9999")
        .feed(Event::PinChecked(Ok(Err(VerifyError::Wrong {
            tries_left: 0,
        }))));
    assert_eq!(k.failed().0, FailReason::PinLocked);
}

#[test]
fn face_failures_are_counted_and_the_tenth_locks_face() {
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Face));
    assert!(matches!(&k.effects[..], [Effect::ReadFacePhoto]));
    k.feed(Event::FacePhoto(Ok(photo())));
    k.act(Action::Face(Camera::Stranger));
    assert!(matches!(&k.effects[..], [Effect::RecordFaceFailure { .. }]));
    let Screen::Face {
        failures: 1,
        last_score_permille: Some(score),
        ..
    } = k.screen()
    else {
        panic!("the camera again: {:?}", k.screen())
    };
    assert!(score < crate::face::DEFAULT_THRESHOLD_PERMILLE);

    // A card placed with nine failures already: the tenth locks face, the PIN remains.
    let mut k = Kiosk::card(settings(), PinStatus::TriesLeft(3), 9);
    k.act(Action::ChooseMethod(MethodChoice::Face))
        .feed(Event::FacePhoto(Ok(photo())))
        .act(Action::Face(Camera::Stranger));
    assert!(matches!(
        &k.records()[..],
        [Record { method: "reader", outcome: Outcome::Refused { result_code, .. }, .. }]
            if result_code == pb::ResultCode::FaceAttemptsExhausted.as_str_name()
    ));
    assert_eq!(k.view().notice, Some(Notice::FaceLocked));
    assert!(matches!(
        k.screen(),
        Screen::ChooseMethod {
            face: FaceOffer::Locked,
            face_failures: 10,
            pin_tries_left: 3,
            ..
        }
    ));
    k.act(Action::ChooseMethod(MethodChoice::Face));
    assert_eq!(k.refusal().map(|r| r.0), Some(ActionRefused::NotOffered));

    // Locked face and a locked PIN: no method left.
    let k = Kiosk::card(settings(), PinStatus::Blocked, 10);
    assert_eq!(
        k.failed(),
        (
            FailReason::NoMethodLeft,
            code(pb::ResultCode::FaceAttemptsExhausted)
        )
    );
}

#[test]
fn a_face_match_resets_the_count_and_the_photo_is_read_once() {
    let mut k = Kiosk::card(settings(), PinStatus::TriesLeft(3), 4);
    k.act(Action::ChooseMethod(MethodChoice::Face))
        .feed(Event::FacePhoto(Ok(photo())))
        .act(Action::Cancel);
    // Cancelled: the card stays; a new session for the same card reads the photo again, but
    // within a session it is read once (see below).
    assert_eq!(k.failed().0, FailReason::Cancelled);

    let mut k = Kiosk::card(settings(), PinStatus::TriesLeft(3), 4);
    k.act(Action::ChooseMethod(MethodChoice::Face))
        .feed(Event::FacePhoto(Ok(photo())))
        .act(Action::Face(Camera::Holder));
    assert!(matches!(&k.effects[..], [Effect::ResetFaceFailures { .. }]));
    assert!(matches!(k.screen(), Screen::Consent { index: 1, .. }));
    assert!(matches!(
        k.state().stage,
        Stage::Consent {
            identified: Identified::Face { .. },
            ..
        }
    ));
}

#[test]
fn a_card_without_a_face_photo_leaves_the_pin() {
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Face))
        .feed(Event::FacePhoto(Err(CardFailure {
            message: "no photo".into(),
            removed: false,
        })));
    assert_eq!(k.view().notice, Some(Notice::FaceUnavailable));
    assert!(matches!(
        k.screen(),
        Screen::ChooseMethod {
            face: FaceOffer::Unavailable,
            ..
        }
    ));
}

#[test]
fn a_face_only_card_is_never_offered_the_pin_pad() {
    let mut k = Kiosk::card(settings(), PinStatus::NotSet, 0);
    assert!(matches!(
        k.screen(),
        Screen::ChooseMethod {
            pin_set: false,
            pin_tries_left: 0,
            face: FaceOffer::Available,
            ..
        }
    ));
    k.act(Action::ChooseMethod(MethodChoice::Pin));
    assert_eq!(
        k.refusal(),
        Some((
            ActionRefused::NotOffered,
            "the PIN (this card has none: 顔認証マイナンバーカード) is not offered for this card"
        ))
    );
    // Without a device key there is no face either.
    let k = Kiosk::card(
        Settings {
            device_key: false,
            ..settings()
        },
        PinStatus::NotSet,
        0,
    );
    assert_eq!(
        k.failed(),
        (FailReason::NoPinOnCard, code(pb::ResultCode::PinNotSet))
    );
}

#[test]
fn consent_screens_come_one_at_a_time_in_order() {
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Pin))
        .pin("1234")
        .feed(Event::PinChecked(Ok(Ok(()))));
    for (i, item) in CONSENT_ITEMS.iter().enumerate() {
        assert_eq!(
            k.screen(),
            Screen::Consent {
                item,
                index: i as u8 + 1,
                total: 4,
                comprehensive_offered: i == 0,
            }
        );
        let mut answers = ConsentAnswers::default();
        match i {
            0 => answers.medication = Some(false),
            1 => answers.checkup = Some(true),
            2 => answers.clinical = Some(false),
            _ => answers.surgery = Some(true),
        }
        k.act(Action::Consents(answers));
    }
    assert!(matches!(
        &k.state().stage,
        Stage::Confirming { reception, .. }
            if reception.consents == ConsentBits::new(false, true, false, true)
    ));
    // An empty answer changes nothing.
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Pin))
        .pin("1234")
        .feed(Event::PinChecked(Ok(Ok(()))))
        .act(Action::Consents(ConsentAnswers::default()));
    assert!(matches!(k.screen(), Screen::Consent { index: 1, .. }));
}

#[test]
fn stale_and_misplaced_actions_are_refused_and_change_nothing() {
    let mut k = Kiosk::ready();
    let before = k.view();
    k.act_as("0123", Action::ChooseMethod(MethodChoice::Pin));
    assert_eq!(
        k.refusal(),
        Some((
            ActionRefused::StaleSession,
            "the action is not for the card in the reader"
        ))
    );
    assert_eq!(k.view(), before);
    // A PIN for another screen is refused and never reaches the card.
    k.pin("1234");
    assert_eq!(
        k.refusal(),
        Some((
            ActionRefused::WrongScreen,
            "this action belongs to the pin screen; the kiosk shows choose_method"
        ))
    );
    assert!(!k.effects.iter().any(|e| matches!(e, Effect::VerifyPin(_))));
    // Before any card.
    let mut k = Kiosk::new(settings());
    k.act(Action::Cancel);
    assert_eq!(
        k.refusal(),
        Some((ActionRefused::StaleSession, "no card is in the reader"))
    );
}

#[test]
fn visual_check_is_offered_only_while_staff_keep_it_on() {
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Visual));
    assert_eq!(k.refusal().map(|r| r.0), Some(ActionRefused::NotOffered));
    k.feed(Event::Visual(VisualCheck::On("staff-1".into())));
    assert!(matches!(
        k.screen(),
        Screen::ChooseMethod {
            visual_check: true,
            ..
        }
    ));
    // Another staff member's log-in ending leaves it on.
    k.feed(Event::Visual(VisualCheck::OffIfBy("staff-2".into())));
    assert_eq!(k.view().visual_check_staff.as_deref(), Some("staff-1"));
    k.act(Action::ChooseMethod(MethodChoice::Visual))
        .all_consents()
        .challenge()
        .feed(Event::Attested(Ok(vec![6])));
    let [Effect::ConfirmByReader(request)] = &k.effects[..] else {
        panic!("the attested confirmation is sent: {:?}", k.effects)
    };
    assert_eq!(request.method, pb::ReaderMethod::VisualCheck as i32);
    assert_eq!(request.staff_id, "staff-1");
    k.feed(confirmed("C-4"));
    assert_eq!(k.records()[0].staff_id.as_deref(), Some("staff-1"));

    // Switched off while it was the only way left: no method left.
    let mut k = Kiosk::card(settings(), PinStatus::Blocked, 10);
    assert_eq!(k.failed().0, FailReason::NoMethodLeft);
    let mut k2 = Kiosk::new(settings());
    k2.feed(Event::Visual(VisualCheck::On("staff-1".into())));
    k2.feed(Event::CardInserted {
        reader: READER.into(),
        session_id: Ok(SESSION.into()),
    })
    .feed(Event::CardRead(Ok((
        CardReading {
            certificate: certificate(),
            pin_status: PinStatus::Blocked,
        },
        10,
    ))));
    assert!(matches!(k2.screen(), Screen::ChooseMethod { .. }));
    k2.feed(Event::Visual(VisualCheck::OffIfBy("staff-1".into())));
    assert_eq!(k2.failed().0, FailReason::NoMethodLeft);
    k.feed(Event::Visual(VisualCheck::Off));
    assert_eq!(k.failed().0, FailReason::NoMethodLeft);
}

#[test]
fn a_visual_check_withdrawn_while_the_patient_answers_the_consents_ends_the_session() {
    let switches: [fn() -> VisualCheck; 2] = [
        || VisualCheck::Off,
        || VisualCheck::OffIfBy("staff-1".into()),
    ];
    for switch in switches {
        let mut k = Kiosk::ready();
        k.feed(Event::Visual(VisualCheck::On("staff-1".into())))
            .act(Action::ChooseMethod(MethodChoice::Visual));
        assert!(
            matches!(k.screen(), Screen::Consent { .. }),
            "{:?}",
            k.screen()
        );
        k.feed(Event::Visual(switch()));
        assert_eq!(k.failed().0, FailReason::Cancelled, "{:?}", switch());
        // Nothing is attested or sent in the staff member's name afterwards.
        k.all_consents().challenge();
        assert!(
            !k.effects
                .iter()
                .any(|e| matches!(e, Effect::ConfirmByReader(_))),
            "{:?}",
            k.effects
        );
    }
    // Another staff member's log-in ending changes nothing.
    let mut k = Kiosk::ready();
    k.feed(Event::Visual(VisualCheck::On("staff-1".into())))
        .act(Action::ChooseMethod(MethodChoice::Visual))
        .feed(Event::Visual(VisualCheck::OffIfBy("staff-2".into())));
    assert!(matches!(k.screen(), Screen::Consent { .. }));
}

#[test]
fn a_verify_whose_outcome_is_unknown_resets_the_card() {
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Pin))
        .pin("1234")
        .feed(Event::PinChecked(Err(CardFailure {
            message: "the card did not answer within 5 s".into(),
            removed: false,
        })));
    assert_eq!(k.failed().0, FailReason::CardError);
    assert!(
        k.resets_card(),
        "a VERIFY the card may have accepted ends with a reset: {:?}",
        k.effects
    );
}

#[test]
fn an_idle_timeout_ends_a_waiting_screen_and_resets_a_verified_card() {
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Pin))
        .pin("1234")
        .feed(Event::PinChecked(Ok(Ok(()))));
    assert!(k.state().stage.waits_for_patient());
    k.feed(Event::IdleTimeout);
    assert_eq!(k.failed().0, FailReason::TimedOut);
    assert_eq!(k.view().notice, Some(Notice::TimedOut));
    assert!(k.resets_card());
    // A busy screen does not time out.
    let mut k = Kiosk::ready();
    k.pin_verified_and_consented();
    assert!(!k.state().stage.waits_for_patient());
    k.feed(Event::IdleTimeout);
    assert_eq!(
        k.screen(),
        Screen::Working {
            task: Task::Confirming
        }
    );
    assert!(k.effects.is_empty());
}

#[test]
fn cancel_resets_a_verified_card_and_refusals_are_recorded() {
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Pin))
        .pin("1234")
        .feed(Event::PinChecked(Ok(Ok(()))))
        .act(Action::Cancel);
    assert_eq!(k.failed().0, FailReason::Cancelled);
    assert!(k.resets_card());
    // After the outcome, only Cancel belongs to the session.
    k.act(Action::Consents(ConsentAnswers::default()));
    assert_eq!(k.refusal().map(|r| r.0), Some(ActionRefused::WrongScreen));

    // The service unreachable when asked for a challenge: the outage path (no PIN kept, the
    // verified card reset, the outage noted in staff's list).
    let mut k = Kiosk::ready();
    k.pin_verified_and_consented()
        .feed(Event::Challenge(Err(Outcome::Error {
            message: "down".into(),
        })));
    assert_eq!(k.screen(), Screen::OutageDeclare { error: None });
    assert!(k.resets_card());
    assert_eq!(k.records().len(), 1);
    // Unreachable after the signed request went out: the answer is unknown, so a failure
    // (the confirmation may have been made; nothing is recorded for catch-up).
    let mut k = Kiosk::ready();
    k.pin_verified_and_consented()
        .challenge()
        .feed(Event::Signed(Ok(vec![1])))
        .feed(Event::Answered(Err(Outcome::Error {
            message: "down".into(),
        })));
    assert_eq!(k.failed(), (FailReason::ServiceUnreachable, None));
    assert!(k.resets_card());
    assert_eq!(k.records().len(), 1);
    // A refusal names the service's code.
    let mut k = Kiosk::ready();
    k.pin_verified_and_consented()
        .challenge()
        .feed(Event::Signed(Ok(vec![1])))
        .feed(Event::Answered(Err(refused(
            pb::ResultCode::CertificateRevoked,
        ))));
    assert_eq!(
        k.failed(),
        (
            FailReason::Refused,
            code(pb::ResultCode::CertificateRevoked)
        )
    );
}

#[test]
fn the_device_key_failing_to_sign_is_a_clear_failure() {
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Face))
        .feed(Event::FacePhoto(Ok(photo())))
        .act(Action::Face(Camera::Holder))
        .all_consents()
        .challenge()
        .feed(Event::Attested(Err("the device key failed to sign".into())));
    assert_eq!(k.failed().0, FailReason::ServiceUnreachable);
    assert_eq!(k.records()[0].method, "face");
}

#[test]
fn reader_trouble_is_shown_and_a_placed_card_clears_it() {
    let mut k = Kiosk::new(settings());
    k.feed(Event::ReaderTrouble("pcscd is gone".into()));
    assert_eq!(k.view().reader_error.as_deref(), Some("pcscd is gone"));
    k.feed(Event::CardInserted {
        reader: READER.into(),
        session_id: Ok(SESSION.into()),
    });
    assert_eq!(k.view().reader_error, None);
}

mod outage;
mod phone;

// ---- the rules of December 2026: 包括同意, 電子処方箋, a face-only card's registration ----

fn consent_all() -> Action {
    Action::Consents(ConsentAnswers {
        all: Some(true),
        ..ConsentAnswers::default()
    })
}

#[test]
fn comprehensive_consent_gives_every_kind_in_one_step() {
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Pin))
        .pin("1234")
        .feed(Event::PinChecked(Ok(Ok(()))))
        .act(consent_all());
    assert!(matches!(
        &k.effects[..],
        [Effect::IssueChallenge(pb::Purpose::Confirm)]
    ));
    k.challenge().feed(Event::Signed(Ok(vec![9; 256])));
    let [Effect::ConfirmByCard(request)] = &k.effects[..] else {
        panic!("the confirmation is sent: {:?}", k.effects)
    };
    let consents = request.consents.expect("consents");
    assert!(consents.comprehensive);
    assert!(consents.medication && consents.checkup && consents.clinical && consents.surgery);
    assert_eq!(
        request.consents,
        Some(ConsentBits::comprehensive().into()),
        "the same bits the card signed"
    );
}

#[test]
fn comprehensive_consent_only_before_any_answer_and_never_with_a_refusal() {
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Pin))
        .pin("1234")
        .feed(Event::PinChecked(Ok(Ok(()))))
        .act(Action::Consents(ConsentAnswers {
            medication: Some(true),
            ..ConsentAnswers::default()
        }));
    let second = Screen::Consent {
        item: "checkup",
        index: 2,
        total: 4,
        comprehensive_offered: false,
    };
    assert_eq!(k.screen(), second);
    k.act(consent_all());
    assert_eq!(k.refusal().map(|r| r.0), Some(ActionRefused::NotOffered));
    assert_eq!(k.screen(), second, "the screen stays");

    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Pin))
        .pin("1234")
        .feed(Event::PinChecked(Ok(Ok(()))))
        .act(Action::Consents(ConsentAnswers {
            surgery: Some(false),
            all: Some(true),
            ..ConsentAnswers::default()
        }));
    assert_eq!(k.refusal().map(|r| r.0), Some(ActionRefused::NotOffered));
    assert!(matches!(
        k.screen(),
        Screen::Consent {
            index: 1,
            comprehensive_offered: true,
            ..
        }
    ));
    // `all: false` is no answer: the individual screens go on.
    k.act(Action::Consents(ConsentAnswers {
        medication: Some(false),
        all: Some(false),
        ..ConsentAnswers::default()
    }));
    assert!(matches!(k.screen(), Screen::Consent { index: 2, .. }));
}

fn clinic() -> Settings {
    Settings {
        prescription_choice: true,
        ..settings()
    }
}

#[test]
fn a_clinic_asks_for_the_prescription_after_the_consents_and_sends_the_choice() {
    for (choice, name) in [
        (PrescriptionChoice::Electronic, "electronic"),
        (PrescriptionChoice::Paper, "paper"),
    ] {
        let mut k = Kiosk::card(clinic(), PinStatus::TriesLeft(3), 0);
        k.act(Action::ChooseMethod(MethodChoice::Pin))
            .pin("1234")
            .feed(Event::PinChecked(Ok(Ok(()))))
            .all_consents();
        assert_eq!(k.screen(), Screen::Prescription);
        assert!(k.effects.is_empty(), "nothing is sent before the choice");
        // The prescription belongs to its own screen, and the consents to theirs.
        k.act(consent_all());
        assert_eq!(k.refusal().map(|r| r.0), Some(ActionRefused::WrongScreen));
        k.act(Action::Prescription(choice));
        assert!(matches!(
            &k.effects[..],
            [Effect::IssueChallenge(pb::Purpose::Confirm)]
        ));
        k.challenge().feed(Event::Signed(Ok(vec![9; 256])));
        let [Effect::ConfirmByCard(request)] = &k.effects[..] else {
            panic!("the confirmation is sent: {:?}", k.effects)
        };
        assert_eq!(request.prescription_issue(), choice.to_proto());
        k.feed(Event::Answered(Ok(Box::new(pb::ConfirmationResult {
            result_code: pb::ResultCode::Ok as i32,
            validity: 1,
            confirmation_id: "C-9".into(),
            prescription_issue: choice.to_proto() as i32,
            ..Default::default()
        }))));
        assert!(matches!(
            k.screen(),
            Screen::Done { prescription: Some(p), .. } if p == name
        ));
    }
}

#[test]
fn the_prescription_screen_waits_for_the_patient_and_a_pharmacy_never_shows_it() {
    let mut k = Kiosk::card(clinic(), PinStatus::TriesLeft(3), 0);
    k.act(Action::ChooseMethod(MethodChoice::Pin))
        .pin("1234")
        .feed(Event::PinChecked(Ok(Ok(()))))
        .all_consents();
    assert_eq!(k.screen(), Screen::Prescription);
    k.feed(Event::IdleTimeout);
    assert_eq!(k.failed().0, FailReason::TimedOut);
    assert!(k.resets_card(), "the verified card is reset");

    // A pharmacy (the default settings): straight from the consents to the confirmation,
    // and a prescription action is refused.
    let mut k = Kiosk::ready();
    k.act(Action::ChooseMethod(MethodChoice::Pin))
        .pin("1234")
        .feed(Event::PinChecked(Ok(Ok(()))))
        .all_consents();
    assert!(matches!(
        &k.effects[..],
        [Effect::IssueChallenge(pb::Purpose::Confirm)]
    ));
    k.act(Action::Prescription(PrescriptionChoice::Paper));
    assert_eq!(k.refusal().map(|r| r.0), Some(ActionRefused::WrongScreen));
}

/// A face-only card identified by `identify`, refused as not registered: the offer.
fn face_only_offer(identify: impl FnOnce(&mut Kiosk)) -> Kiosk {
    let mut k = Kiosk::card(settings(), PinStatus::NotSet, 0);
    identify(&mut k);
    k.all_consents()
        .challenge()
        .feed(Event::Attested(Ok(vec![4])))
        .feed(Event::Answered(Err(refused(
            pb::ResultCode::CardNotRegistered,
        ))));
    assert_eq!(k.screen(), Screen::OfferRegistration { needs_pin: false });
    k
}

#[test]
fn a_face_only_card_registers_by_face_then_confirms_again() {
    let mut k = face_only_offer(|k| {
        k.act(Action::ChooseMethod(MethodChoice::Face))
            .feed(Event::FacePhoto(Ok(photo())))
            .act(Action::Face(Camera::Holder));
    });
    k.act(Action::Register(true));
    assert!(matches!(
        &k.effects[..],
        [Effect::IssueChallenge(pb::Purpose::RegisterByReader)]
    ));
    k.challenge();
    let [Effect::Attest(binding)] = &k.effects[..] else {
        panic!("the reader attests: {:?}", k.effects)
    };
    // Purpose 40, no consents, then the face check's kind (3) and the check.
    assert_eq!(binding[8], 40);
    let suffix = &binding[binding.len() - 7..];
    assert_eq!(suffix[0], 0, "a registration carries no consents");
    assert_eq!(suffix[1..3], [3, 1]);
    k.feed(Event::Attested(Ok(vec![5])));
    let [Effect::RegisterByReader(request)] = &k.effects[..] else {
        panic!("the registration is sent: {:?}", k.effects)
    };
    assert_eq!(request.method(), pb::ReaderMethod::Face);
    assert!(request.face_match.is_some());
    assert_eq!(request.attestation, vec![5]);
    assert_eq!(request.challenge, vec![7; 32]);
    k.feed(Event::Registered(Ok(pb::RegisterResponse {
        result_code: pb::ResultCode::Ok as i32,
        newly_registered: true,
        confirmation_id: "C-R".into(),
        ..Default::default()
    })));
    let records = k.records();
    assert_eq!(records[0].method, "face");
    assert!(records[0].registered_now);
    assert!(matches!(
        &k.effects[..],
        [Effect::Record(_), Effect::IssueChallenge(pb::Purpose::Face)]
    ));
    k.challenge()
        .feed(Event::Attested(Ok(vec![6])))
        .feed(confirmed("C-2"));
    assert!(matches!(
        k.screen(),
        Screen::Done {
            method: Method::Face,
            registered_now: true,
            ..
        }
    ));
}

#[test]
fn a_face_only_card_registers_by_a_staff_members_visual_check() {
    let mut k = face_only_offer(|k| {
        k.feed(Event::Visual(VisualCheck::On("N-0042".into())))
            .act(Action::ChooseMethod(MethodChoice::Visual));
    });
    k.act(Action::Register(true)).challenge();
    let [Effect::Attest(binding)] = &k.effects[..] else {
        panic!("the reader attests: {:?}", k.effects)
    };
    assert_eq!(binding[8], 40);
    assert!(binding.ends_with(&[0, 4, 6, b'N', b'-', b'0', b'0', b'4', b'2']));
    k.feed(Event::Attested(Ok(vec![5])));
    let [Effect::RegisterByReader(request)] = &k.effects[..] else {
        panic!("the registration is sent: {:?}", k.effects)
    };
    assert_eq!(request.method(), pb::ReaderMethod::VisualCheck);
    assert_eq!(request.staff_id, "N-0042");
    // The service refuses: a refusal like any other, recorded with the staff member.
    k.feed(Event::Registered(Err(refused(
        pb::ResultCode::AttestationInvalid,
    ))));
    assert_eq!(
        k.failed(),
        (
            FailReason::Refused,
            code(pb::ResultCode::AttestationInvalid)
        )
    );
    assert_eq!(k.records()[0].staff_id.as_deref(), Some("N-0042"));
    // A failed attestation ends it too, and no PIN is ever asked.
    let mut k = face_only_offer(|k| {
        k.act(Action::ChooseMethod(MethodChoice::Face))
            .feed(Event::FacePhoto(Ok(photo())))
            .act(Action::Face(Camera::Holder));
    });
    k.act(Action::Register(true))
        .challenge()
        .feed(Event::Attested(Err("the device key failed".into())));
    assert_eq!(k.failed().0, FailReason::ServiceUnreachable);
}

fn mobile() -> Settings {
    Settings {
        mobile: true,
        ..settings()
    }
}

/// The first visit's answer: the treatment echoed and the re-query period.
fn first_visit_confirmed(treatment: pb::MedicalTreatment) -> Event {
    Event::Answered(Ok(Box::new(pb::ConfirmationResult {
        result_code: pb::ResultCode::Ok as i32,
        validity: 1,
        confirmation_id: "C-M".into(),
        treatment: treatment as i32,
        home_care: Some(pb::HomeCarePeriod {
            treatment: treatment as i32,
            institution_code: "1340123452".into(),
            consented_on: "20261203".into(),
            requery_until: "20270131".into(),
        }),
        ..Default::default()
    })))
}

#[test]
fn the_mobile_mode_asks_the_treatment_first_and_the_pin_signs_a_first_visit() {
    let mut k = Kiosk::card(mobile(), PinStatus::TriesLeft(3), 0);
    assert_eq!(k.screen(), Screen::ChooseTreatment);
    assert!(k.view().mobile);
    // The method belongs to the next screen; the treatment screen waits for the patient.
    k.act(Action::ChooseMethod(MethodChoice::Pin));
    assert_eq!(k.refusal().map(|r| r.0), Some(ActionRefused::WrongScreen));
    assert!(k.state().stage.waits_for_patient());
    k.act(Action::ChooseTreatment(Treatment::HomeVisit));
    // No face match at the mobile device: it cannot make a first visit.
    assert!(matches!(
        k.screen(),
        Screen::ChooseMethod {
            face: FaceOffer::Unavailable,
            ..
        }
    ));
    k.act(Action::ChooseMethod(MethodChoice::Face));
    assert_eq!(k.refusal().map(|r| r.0), Some(ActionRefused::NotOffered));
    k.pin_verified_and_consented();
    assert!(matches!(
        &k.effects[..],
        [Effect::IssueChallenge(pb::Purpose::HomeCareConfirm)]
    ));
    k.challenge().feed(Event::Signed(Ok(vec![9; 256])));
    let [Effect::ConfirmByCard(request)] = &k.effects[..] else {
        panic!("the confirmation is sent: {:?}", k.effects)
    };
    assert_eq!(request.treatment(), pb::MedicalTreatment::HomeVisit);
    assert!(request.requery_consent);
    k.feed(first_visit_confirmed(pb::MedicalTreatment::HomeVisit));
    assert!(matches!(
        k.screen(),
        Screen::Done {
            treatment: Some("home-visit"),
            requery_until: Some(ref until),
            ..
        } if until == "2027-01-31"
    ));
}

#[test]
fn the_mobile_mode_attests_a_visual_check_as_a_first_visit() {
    let k = Kiosk::card(mobile(), PinStatus::NotSet, 0);
    // A face-only card and no visual check: no method is left, before any treatment.
    assert_eq!(k.failed().0, FailReason::NoPinOnCard);
    let mut k = Kiosk::new(mobile());
    k.feed(Event::Visual(VisualCheck::On("sato".into())));
    k.feed(Event::CardInserted {
        reader: READER.into(),
        session_id: Ok(SESSION.into()),
    })
    .feed(Event::CardRead(Ok((
        CardReading {
            certificate: certificate(),
            pin_status: PinStatus::NotSet,
        },
        0,
    ))));
    assert_eq!(k.screen(), Screen::ChooseTreatment);
    k.act(Action::ChooseTreatment(Treatment::Online))
        .act(Action::ChooseMethod(MethodChoice::Visual))
        .all_consents();
    assert!(matches!(
        &k.effects[..],
        [Effect::IssueChallenge(pb::Purpose::HomeCareVisualCheck)]
    ));
    k.challenge();
    let [Effect::Attest(binding)] = &k.effects[..] else {
        panic!("the device key attests: {:?}", k.effects)
    };
    assert_eq!(
        binding[8],
        Purpose::HomeCareVisualCheck as u8,
        "after the magic"
    );
    k.feed(Event::Attested(Ok(vec![4])));
    let [Effect::ConfirmByReader(request)] = &k.effects[..] else {
        panic!("the confirmation is sent: {:?}", k.effects)
    };
    assert_eq!(request.treatment(), pb::MedicalTreatment::Online);
    assert!(request.requery_consent);
    assert_eq!(request.staff_id, "sato");
    k.feed(first_visit_confirmed(pb::MedicalTreatment::Online));
    assert!(matches!(
        k.screen(),
        Screen::Done {
            treatment: Some("online"),
            requery_until: Some(_),
            method: Method::Visual,
            ..
        }
    ));
}

#[test]
fn the_kiosk_outside_the_mobile_mode_asks_no_treatment_and_sends_an_ordinary_confirmation() {
    let mut k = Kiosk::ready();
    assert!(matches!(k.screen(), Screen::ChooseMethod { .. }));
    assert!(!k.view().mobile);
    k.act(Action::ChooseTreatment(Treatment::HomeVisit));
    assert_eq!(k.refusal().map(|r| r.0), Some(ActionRefused::WrongScreen));
    k.pin_verified_and_consented()
        .challenge()
        .feed(Event::Signed(Ok(vec![9; 256])));
    let [Effect::ConfirmByCard(request)] = &k.effects[..] else {
        panic!("the confirmation is sent: {:?}", k.effects)
    };
    assert_eq!(request.treatment(), pb::MedicalTreatment::Unspecified);
    assert!(!request.requery_consent);
    k.feed(confirmed("C-1"));
    assert!(matches!(
        k.screen(),
        Screen::Done {
            treatment: None,
            requery_until: None,
            ..
        }
    ));
}
