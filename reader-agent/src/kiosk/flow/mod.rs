//! The kiosk's reception flow (eligibility.md §1) as a pure step function:
//! [`step`]`(State, Event) -> (State, Vec<Effect>)`. No I/O happens here: the card, the
//! service, the device key, the face-failure file, the staff's list and the `face/` folder
//! are reached through [`Effect`]s that the runner ([`super::session`]) performs, feeding each
//! request's answer back as an [`Event`]. The flow is tested with plain function calls
//! (`tests.rs`), without pcscd, the service or a browser.
//!
//! The screens, in order: 「カードを置いてください」 → reading → method choice (face / PIN, and
//! 目視確認 when staff switched it on) → PIN pad or camera → consent screens (medication,
//! checkup, clinical, surgery) → confirming → 「受付完了」 or a failure screen; and, when the
//! service says the card is not registered for insurance use, the offer to register (which
//! needs the PIN) before confirming again. Pulling the card at any step ends the session:
//! the card worker goes, a verified PIN is cleared by the card reset, and the screen returns
//! to the start with a note.
//!
//! A smartphone マイナ保険証 (`--phone`, docs/kiosk.md) starts from 「スマートフォンで受付」 on
//! the start screen: the phone is read, the consent screens follow, then the PIN pad (Android)
//! or the wait screen (iPhone) while the phone signs, and the card's confirmation and result.
//!
//! The card signs the consents as part of the challenge binding, so the consent screens come
//! before the confirmation is sent; the service alone knows whether the card is registered
//! and answers only a signed request, so the offer to register follows the first answer.
//!
//! **Where the PIN lives.** Only in [`Action::EnterPin`] (the event that carries it in) and
//! [`Effect::VerifyPin`] (the effect that carries it to the card worker, which drops it after
//! VERIFY). No [`Stage`] holds a [`Pin`]: the state keeps only whether the card is verified
//! ([`PinState::verified`]), and a verified card is reset ([`Effect::ResetCard`]) whenever a
//! session reaches its outcome.
//!
//! **Adding a screen** is local: a [`Stage`] variant with the data it needs, its arm in
//! [`State::screen`] (what the page shows), and the transitions into and out of it.

mod transitions;
pub mod view;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use onshi_jpki::flows::CardReading;
use onshi_jpki::Pin;
use onshi_proto::binding::{ConsentBits, Purpose};
use onshi_proto::v1 as pb;

pub use transitions::{reader_check, reader_claim, step};

pub use view::{
    ActionError, ActionRefused, FaceOffer, FailReason, KioskState, Method, Notice, PinPadPurpose,
    Screen, Task,
};

use super::card::{CardFailure, VerifyError};
use crate::face::{Camera, Photo, MAX_FACE_FAILURES};
pub use crate::outage::Declaration;
pub use crate::phone::{Presented, Signed};
use crate::report::Outcome;
pub use onshi_virtual_card::phone::Platform;

/// The consent screens, in order (eligibility.md §1 step 4).
pub const CONSENT_ITEMS: [&str; 4] = ["medication", "checkup", "clinical", "surgery"];

/// The page's name of a prescription choice (`None`: not asked).
pub fn prescription_name(p: pb::PrescriptionIssue) -> Option<&'static str> {
    match p {
        pb::PrescriptionIssue::Unspecified => None,
        pb::PrescriptionIssue::Electronic => Some("electronic"),
        pb::PrescriptionIssue::Paper => Some("paper"),
    }
}

/// How the patient chose to be identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodChoice {
    Pin,
    Face,
    Visual,
}

/// The treatment of a 居宅同意取得型 first visit, chosen on the mobile device's first screen
/// (`reader-agent kiosk --mobile`; docs/domain.md "Home visits and online care").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    /// 訪問診療・訪問看護 (MedicalTreatmentFlag 2).
    HomeVisit,
    /// オンライン診療 (3).
    Online,
}

impl Treatment {
    pub fn to_proto(self) -> pb::MedicalTreatment {
        match self {
            Treatment::HomeVisit => pb::MedicalTreatment::HomeVisit,
            Treatment::Online => pb::MedicalTreatment::Online,
        }
    }

    /// The page's name, as `treatment_name` gives it in the staff view.
    pub fn name(self) -> &'static str {
        match self {
            Treatment::HomeVisit => "home-visit",
            Treatment::Online => "online",
        }
    }

    /// The treatment of a page's name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Treatment::HomeVisit, Treatment::Online]
            .into_iter()
            .find(|t| t.name() == name)
    }
}

/// The consent answers of one request; absent ones stay unanswered.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentAnswers {
    pub medication: Option<bool>,
    pub checkup: Option<bool>,
    pub clinical: Option<bool>,
    pub surgery: Option<bool>,
    /// 包括同意: `true` consents to every kind at once; offered only before any single
    /// answer, and never together with a refusal.
    #[serde(default)]
    pub all: Option<bool>,
}

/// The patient's choice of prescription on the 電子処方箋 screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrescriptionChoice {
    Electronic,
    Paper,
}

impl PrescriptionChoice {
    pub fn to_proto(self) -> pb::PrescriptionIssue {
        match self {
            PrescriptionChoice::Electronic => pb::PrescriptionIssue::Electronic,
            PrescriptionChoice::Paper => pb::PrescriptionIssue::Paper,
        }
    }
}

/// What the patient (or a script) does.
#[derive(Debug)]
pub enum Action {
    /// The mobile device's treatment choice (訪問診療・訪問看護 / オンライン診療).
    ChooseTreatment(Treatment),
    ChooseMethod(MethodChoice),
    /// The PIN typed on the pad. Moved into [`Effect::VerifyPin`], never into the state.
    EnterPin(Pin),
    Face(Camera),
    Consents(ConsentAnswers),
    /// The 電子処方箋 screen's answer.
    Prescription(PrescriptionChoice),
    Register(bool),
    /// The insurance numbers the patient declared on the outage path (資格申立書).
    Declare(Declaration),
    Cancel,
}

impl Action {
    /// The screen the action belongs to (`None`: every screen of a session).
    fn screen(&self) -> Option<&'static str> {
        match self {
            Action::ChooseTreatment(_) => Some("choose_treatment"),
            Action::ChooseMethod(_) => Some("choose_method"),
            Action::EnterPin(_) => Some("pin"),
            Action::Face(_) => Some("face"),
            Action::Consents(_) => Some("consent"),
            Action::Prescription(_) => Some("prescription"),
            Action::Register(_) => Some("offer_registration"),
            Action::Declare(_) => Some("outage_declare"),
            Action::Cancel => None,
        }
    }
}

/// Staff's switch for 目視確認.
#[derive(Debug)]
pub enum VisualCheck {
    /// On, by this logged-in staff member.
    On(String),
    /// Off.
    Off,
    /// Off if this staff member switched it on (their log-in ended).
    OffIfBy(String),
}

/// What the flow needs to know about the kiosk it runs on; fixed at start.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The reader has a device key, so it can attest a face match or a visual check.
    pub device_key: bool,
    pub face_threshold_permille: u16,
    /// The institution issues prescriptions (a clinic or hospital, not a pharmacy): after the
    /// consents the patient chooses a paper or an electronic prescription (電子処方箋).
    pub prescription_choice: bool,
    /// The mobile device of a home visit or online care (`kiosk --mobile`): every session
    /// is a 居宅同意取得型 first visit; the treatment is chosen first, then the PIN or a
    /// staff visual check (no face match: it cannot make a first visit).
    pub mobile: bool,
    /// The kiosk has a smartphone channel (`--phone`): the start screen offers
    /// 「スマートフォンで受付」.
    pub phone: bool,
}

/// Whatever happened: the reader's events, the patient's actions, staff's switch, the idle
/// timer, and the answers to the runner's requests.
#[derive(Debug)]
pub enum Event {
    /// A card was placed; `session_id` is a fresh random id (or why none could be drawn).
    CardInserted {
        reader: String,
        session_id: Result<String, String>,
    },
    CardRemoved {
        reader: String,
    },
    /// The patient chose 「スマートフォンで受付」 and held the phone to the general-purpose
    /// reader; `session_id` as for a card.
    PhoneHeld {
        session_id: Result<String, String>,
    },
    /// Answers [`Effect::ReadPhone`]: what the phone presents, or the reader's refusal.
    PhoneRead(Result<Presented, Outcome>),
    /// Answers [`Effect::PhoneSign`].
    PhoneSigned(Signed),
    /// pcscd went away or failed.
    ReaderTrouble(String),
    /// An action for session `session`.
    Action {
        session: String,
        action: Action,
    },
    Visual(VisualCheck),
    /// A screen that waits for the patient got no answer for the idle timeout.
    IdleTimeout,
    /// Answers [`Effect::ReadCard`]; `face_failures` is the card's count in the face-failure
    /// file (keyed by [`card_key`]).
    CardRead(Result<(CardReading, u8), CardFailure>),
    /// Answers [`Effect::ReadFacePhoto`]: the decoded photo, or why there is none.
    FacePhoto(Result<Photo, CardFailure>),
    /// Answers [`Effect::VerifyPin`]: the outer result is the card's, the inner one VERIFY's.
    PinChecked(Result<Result<(), VerifyError>, CardFailure>),
    /// Answers [`Effect::Sign`].
    Signed(Result<Vec<u8>, CardFailure>),
    /// Answers [`Effect::IssueChallenge`].
    Challenge(Result<pb::IssueChallengeResponse, Outcome>),
    /// Answers [`Effect::Attest`]: the device key's signature, or why it failed.
    Attested(Result<Vec<u8>, String>),
    /// Answers [`Effect::ConfirmByCard`] and [`Effect::ConfirmByReader`].
    Answered(Result<Box<pb::ConfirmationResult>, Outcome>),
    /// Answers [`Effect::Register`].
    Registered(Result<pb::RegisterResponse, Outcome>),
    /// The runner's probe of the service: reachable again (`true`) or not (`false`).
    ServiceReachable(bool),
    /// Answers [`Effect::RecordOutage`]: how many visits now wait for catch-up, or why the
    /// visit could not be recorded.
    OutageRecorded(Result<usize, String>),
}

/// What the runner must do. The requests (the first group) are answered by exactly one
/// event each, and a step asks for at most one, as its last effect; the others are done at
/// once, in order, before the new screen is shown.
#[derive(Debug)]
pub enum Effect {
    /// Connect to the card in `reader` on a new card worker and read its certificate and
    /// PIN status: [`Event::CardRead`].
    ReadCard { reader: String },
    /// [`Event::FacePhoto`].
    ReadFacePhoto,
    /// Ask the phone on the kiosk's smartphone channel what it presents: [`Event::PhoneRead`].
    ReadPhone,
    /// Have the phone sign these binding bytes; an Android phone's PIN goes with them to the
    /// phone and nowhere else: [`Event::PhoneSigned`].
    PhoneSign { binding: Vec<u8>, pin: Option<Pin> },
    /// VERIFY with the patient's PIN; the worker drops it at once: [`Event::PinChecked`].
    VerifyPin(Pin),
    /// Have the verified card sign this DigestInfo: [`Event::Signed`].
    Sign(Vec<u8>),
    /// [`Event::Challenge`].
    IssueChallenge(pb::Purpose),
    /// Sign these attested-binding bytes with the reader's device key: [`Event::Attested`].
    Attest(Vec<u8>),
    /// [`Event::Answered`].
    ConfirmByCard(pb::ConfirmByCardRequest),
    /// [`Event::Answered`].
    ConfirmByReader(pb::ConfirmByReaderRequest),
    /// [`Event::Registered`].
    Register(pb::RegisterRequest),
    /// 健康保険証利用申込み attested by the reader (a card without a PIN):
    /// [`Event::Registered`].
    RegisterByReader(pb::RegisterByReaderRequest),
    /// Record the visit in the outage store, fsync'd before it answers:
    /// [`Event::OutageRecorded`]. No PIN and no signature: the declaration and the card's
    /// certificate hash, if a card was read.
    RecordOutage {
        declaration: Declaration,
        certificate_sha256: Option<String>,
    },

    /// End a verified card's exclusive transaction with a card reset.
    ResetCard,
    /// Let the card worker go (it resets a verified card as it goes).
    DropCard,
    /// Add an entry to the staff's list of the day.
    Record(Record),
    /// Count a face failure for the card in the face-failure file.
    RecordFaceFailure { card_key: String },
    /// A face success: the card's count starts again.
    ResetFaceFailures { card_key: String },
    /// Write the completed confirmation to the reception computer's `face/` folder, if the
    /// kiosk has one.
    WriteFaceFile(Box<pb::ConfirmationResult>),
    /// The action was not taken: answer its sender with this (and the current state).
    Refuse {
        error: ActionRefused,
        message: String,
    },
}

impl Effect {
    /// Whether the runner must wait for an answer (an [`Event`]) to this effect.
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            Effect::ReadCard { .. }
                | Effect::ReadFacePhoto
                | Effect::ReadPhone
                | Effect::PhoneSign { .. }
                | Effect::VerifyPin(_)
                | Effect::Sign(_)
                | Effect::IssueChallenge(_)
                | Effect::Attest(_)
                | Effect::ConfirmByCard(_)
                | Effect::ConfirmByReader(_)
                | Effect::Register(_)
                | Effect::RegisterByReader(_)
                | Effect::RecordOutage { .. }
        )
    }
}

/// An entry for the staff's list.
#[derive(Debug, Clone)]
pub struct Record {
    /// `pin`, `face`, `visual`, `smartphone-android`, `smartphone-iphone`, or `reader` (the
    /// reader's own refusal).
    pub method: &'static str,
    pub staff_id: Option<String>,
    pub outcome: Outcome,
    pub registered_now: bool,
}

/// The key of a card's face-failure count: the SHA-256 of its certificate, hex.
pub fn card_key(certificate: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, certificate))
}

/// The card's PIN as far as the kiosk knows it. The PIN itself is never here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinState {
    /// `false` for a face-only card: its empty VERIFY answered `6984`, and no PIN is ever
    /// asked for or sent to it.
    pub set: bool,
    pub tries_left: u8,
    /// The card worker holds the card verified in an exclusive transaction.
    pub verified: bool,
}

/// The card's face photo, once asked for.
#[derive(Debug, Clone)]
pub enum FacePhoto {
    NotRead,
    Read(Arc<Photo>),
    /// The card has none, or it could not be decoded.
    Unavailable,
}

/// The card in the reader and what this session learnt about it.
#[derive(Debug, Clone)]
pub struct CardSession {
    pub id: String,
    pub reader: String,
    pub certificate: Vec<u8>,
    /// [`card_key`] of the certificate.
    pub card_key: String,
    pub pin: PinState,
    pub face_photo: FacePhoto,
    /// Captures taken this session (seeds the simulated camera's noise).
    pub face_captures: u32,
    /// The card's consecutive face failures (the face-failure file's count).
    pub face_failures: u8,
    /// The card was registered for insurance use in this session.
    pub registered_now: bool,
    /// The mobile mode's treatment choice: a 居宅同意取得型 first visit (`None`: an ordinary
    /// confirmation at the kiosk).
    pub treatment: Option<Treatment>,
}

/// How the holder was identified in this session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identified {
    Pin,
    Face {
        score: u16,
        threshold: u16,
    },
    Visual {
        staff_id: String,
    },
    /// A smartphone マイナ保険証 (docs/smartphone.md): the phone signs; an Android phone after
    /// checking the PIN typed at the kiosk, an iPhone after its holder's verification.
    Phone(Platform),
}

impl Identified {
    pub fn method(&self) -> Method {
        match self {
            Identified::Pin => Method::Pin,
            Identified::Face { .. } => Method::Face,
            Identified::Visual { .. } => Method::Visual,
            Identified::Phone(Platform::Android) => Method::SmartphoneAndroid,
            Identified::Phone(Platform::Iphone) => Method::SmartphoneIphone,
        }
    }

    fn staff_id(&self) -> Option<String> {
        match self {
            Identified::Visual { staff_id } => Some(staff_id.clone()),
            _ => None,
        }
    }

    /// The binding's and the challenge's purpose of a confirmation so identified.
    pub fn purpose(&self) -> (Purpose, pb::Purpose) {
        match self {
            Identified::Pin => (Purpose::Confirm, pb::Purpose::Confirm),
            Identified::Face { .. } => (Purpose::Face, pb::Purpose::Face),
            Identified::Visual { .. } => (Purpose::VisualCheck, pb::Purpose::VisualCheck),
            Identified::Phone(platform) => {
                let (purpose, pb_purpose, _) = crate::phone::kind_of(*platform);
                (purpose, pb_purpose)
            }
        }
    }

    /// The purpose of a confirmation so identified, a 居宅同意取得型 first visit when
    /// `first_visit`: the card's PIN signs purpose 60, the device key attests a visual check
    /// under 61. A face match makes no first visit: it keeps its own purpose, which the
    /// service refuses with a re-query consent.
    pub fn purpose_for(&self, first_visit: bool) -> (Purpose, pb::Purpose) {
        match (self, first_visit) {
            (Identified::Pin, true) => (Purpose::HomeCareConfirm, pb::Purpose::HomeCareConfirm),
            (Identified::Visual { .. }, true) => (
                Purpose::HomeCareVisualCheck,
                pb::Purpose::HomeCareVisualCheck,
            ),
            _ => self.purpose(),
        }
    }
}

/// A holder identified and every consent answered: what a confirmation is sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reception {
    pub identified: Identified,
    pub consents: ConsentBits,
    /// The 電子処方箋 choice (unspecified where the kiosk does not ask).
    pub prescription: pb::PrescriptionIssue,
}

/// What the PIN pad is for.
#[derive(Debug, Clone)]
pub enum PinPurpose {
    /// Identify the holder.
    Confirm,
    /// Register the card for insurance use, then confirm this reception again.
    Register(Reception),
}

/// Where a confirmation or registration exchange with the service stands.
#[derive(Debug, Clone)]
pub enum Exchange {
    /// Waiting for the challenge.
    Challenge,
    /// Waiting for the card's (PIN path) or the device key's (face, visual) signature.
    Signing(pb::IssueChallengeResponse),
    /// Waiting for the service's answer.
    Answer,
}

/// The completed confirmation, as 受付完了 shows it.
#[derive(Debug, Clone)]
pub struct Completed {
    pub confirmation_id: String,
    pub validity: i32,
    pub method: Method,
    pub registered_now: bool,
    pub warning: Option<view::CertificateWarning>,
    pub certificate_expiry: Option<String>,
    pub grace_until: Option<String>,
    /// The prescription choice the service echoed.
    pub prescription: pb::PrescriptionIssue,
    /// The treatment the service echoed (`None`: 外来).
    pub treatment: Option<&'static str>,
    /// A first visit's re-query period: its last day, YYYY-MM-DD (JST).
    pub requery_until: Option<String>,
}

/// Why the session failed, as the failure screen shows it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub reason: FailReason,
    pub result_code: Option<String>,
    pub message: String,
}

impl Failure {
    fn new(reason: FailReason, code: Option<pb::ResultCode>, message: impl Into<String>) -> Self {
        Failure {
            reason,
            result_code: code.map(|c| c.as_str_name().to_owned()),
            message: message.into(),
        }
    }
}

/// One variant per screen, each with the data it needs.
#[derive(Debug, Clone)]
pub enum Stage {
    InsertCard,
    ReadingCard {
        reader: String,
    },
    /// The mobile mode's first screen for a card: 訪問診療・訪問看護 or オンライン診療.
    ChooseTreatment {
        card: CardSession,
    },
    /// Asking the phone held to the general-purpose reader what it presents.
    ReadingPhone,
    /// Android: the PIN pad for the phone's PIN, once the consents are answered and the
    /// challenge is here (the phone checks the PIN as it signs, so no PIN is kept waiting).
    PhonePin {
        card: CardSession,
        reception: Reception,
        challenge: pb::IssueChallengeResponse,
        wrong_pin: bool,
    },
    ChooseMethod {
        card: CardSession,
    },
    ReadingFace {
        card: CardSession,
    },
    Pin {
        card: CardSession,
        purpose: PinPurpose,
        wrong_pin: bool,
    },
    VerifyingPin {
        card: CardSession,
        purpose: PinPurpose,
    },
    Face {
        card: CardSession,
        photo: Arc<Photo>,
        last_score: Option<u16>,
    },
    Consent {
        card: CardSession,
        identified: Identified,
        answers: [Option<bool>; 4],
    },
    /// 電子処方箋: paper or electronic, after the consents.
    Prescription {
        card: CardSession,
        identified: Identified,
        consents: ConsentBits,
    },
    Confirming {
        card: CardSession,
        reception: Reception,
        exchange: Exchange,
    },
    OfferRegistration {
        card: CardSession,
        reception: Reception,
    },
    Registering {
        card: CardSession,
        reception: Reception,
        exchange: Exchange,
    },
    Done {
        card: CardSession,
        completed: Completed,
    },
    /// The outage path (the service could not be reached): the declaration form. No PIN is
    /// asked for here; `error` is the last declaration's fault.
    Declare {
        card: CardSession,
        error: Option<String>,
    },
    /// Writing the outage record.
    RecordingOutage {
        card: CardSession,
    },
    /// The visit is on disk and waits for catch-up.
    OutageRecorded {
        card: CardSession,
        waiting: usize,
    },
    /// `card` is `None` when the card could not be read at all: no session began, so
    /// pulling the card changes nothing and the next card starts afresh.
    Failed {
        card: Option<CardSession>,
        failure: Failure,
    },
}

impl Stage {
    /// The session's card, while one is in the reader.
    pub fn card(&self) -> Option<&CardSession> {
        match self {
            Stage::InsertCard | Stage::ReadingCard { .. } | Stage::ReadingPhone => None,
            Stage::Failed { card, .. } => card.as_ref(),
            Stage::ChooseTreatment { card }
            | Stage::ChooseMethod { card }
            | Stage::ReadingFace { card }
            | Stage::Pin { card, .. }
            | Stage::VerifyingPin { card, .. }
            | Stage::Face { card, .. }
            | Stage::Consent { card, .. }
            | Stage::Prescription { card, .. }
            | Stage::Confirming { card, .. }
            | Stage::OfferRegistration { card, .. }
            | Stage::Registering { card, .. }
            | Stage::Done { card, .. }
            | Stage::Declare { card, .. }
            | Stage::RecordingOutage { card }
            | Stage::PhonePin { card, .. }
            | Stage::OutageRecorded { card, .. } => Some(card),
        }
    }

    fn into_card(self) -> Option<CardSession> {
        match self {
            Stage::InsertCard | Stage::ReadingCard { .. } | Stage::ReadingPhone => None,
            Stage::Failed { card, .. } => card,
            Stage::ChooseTreatment { card }
            | Stage::ChooseMethod { card }
            | Stage::ReadingFace { card }
            | Stage::Pin { card, .. }
            | Stage::VerifyingPin { card, .. }
            | Stage::Face { card, .. }
            | Stage::Consent { card, .. }
            | Stage::Prescription { card, .. }
            | Stage::Confirming { card, .. }
            | Stage::OfferRegistration { card, .. }
            | Stage::Registering { card, .. }
            | Stage::Done { card, .. }
            | Stage::Declare { card, .. }
            | Stage::RecordingOutage { card }
            | Stage::PhonePin { card, .. }
            | Stage::OutageRecorded { card, .. } => Some(card),
        }
    }

    /// Screens that wait for the patient (and time out).
    pub fn waits_for_patient(&self) -> bool {
        matches!(
            self,
            Stage::ChooseTreatment { .. }
                | Stage::ChooseMethod { .. }
                | Stage::Pin { .. }
                | Stage::Face { .. }
                | Stage::Consent { .. }
                | Stage::Prescription { .. }
                | Stage::OfferRegistration { .. }
                | Stage::Declare { .. }
                | Stage::PhonePin { .. }
        )
    }

    /// A phone's session at its outcome: no card is pulled to end it, so it ends when the
    /// next patient starts (a card placed, a phone held) or after the idle timeout.
    pub fn phone_finished(&self) -> bool {
        self.finished()
            && self
                .card()
                .is_some_and(|c| c.reader == transitions::PHONE_READER)
    }

    /// A session is under way (or a card or phone is being read): the next patient waits.
    fn busy(&self) -> bool {
        matches!(self, Stage::ReadingCard { .. } | Stage::ReadingPhone)
            || (self.card().is_some() && !self.phone_finished())
    }

    fn finished(&self) -> bool {
        matches!(
            self,
            Stage::Done { .. } | Stage::Failed { .. } | Stage::OutageRecorded { .. }
        )
    }
}

/// The whole kiosk: the screen and what stays across sessions.
#[derive(Debug, Clone)]
pub struct State {
    pub settings: Settings,
    /// The last session's id; it stays after the card goes, so that a late action for it is
    /// refused as stale.
    pub session_id: Option<String>,
    /// The staff member who switched on 目視確認, if it is on.
    pub visual_check_staff: Option<String>,
    pub notice: Option<Notice>,
    pub reader_error: Option<String>,
    /// The service is known to be unreachable: a card goes straight to the outage path.
    pub outage: bool,
    pub stage: Stage,
}

impl State {
    /// The kiosk at start: 「カードを置いてください」.
    pub fn new(settings: Settings) -> Self {
        State {
            settings,
            session_id: None,
            visual_check_staff: None,
            notice: None,
            reader_error: None,
            outage: false,
            stage: Stage::InsertCard,
        }
    }

    /// What the page shows.
    pub fn view(&self) -> KioskState {
        KioskState {
            session: self.session_id.clone(),
            screen: self.screen(),
            visual_check_staff: self.visual_check_staff.clone(),
            mobile: self.settings.mobile,
            notice: self.notice,
            reader_error: self.reader_error.clone(),
            outage: self.outage,
            phone: self.settings.phone,
        }
    }

    fn screen(&self) -> Screen {
        let working = |task| Screen::Working { task };
        match &self.stage {
            Stage::InsertCard => Screen::InsertCard,
            Stage::ReadingCard { .. } => working(Task::ReadingCard),
            Stage::ReadingPhone => working(Task::ReadingPhone),
            // 「スマートフォンで本人確認してください」 while the iPhone's holder verifies.
            Stage::Confirming {
                reception,
                exchange: Exchange::Signing(_),
                ..
            } if reception.identified == Identified::Phone(Platform::Iphone) => {
                working(Task::PhoneVerification)
            }
            Stage::ReadingFace { .. } => working(Task::ReadingFace),
            Stage::VerifyingPin { .. } => working(Task::VerifyingPin),
            Stage::Confirming { .. } => working(Task::Confirming),
            Stage::Registering { .. } => working(Task::Registering),
            Stage::RecordingOutage { .. } => working(Task::RecordingOutage),
            Stage::Declare { error, .. } => Screen::OutageDeclare {
                error: error.clone(),
            },
            Stage::OutageRecorded { waiting, .. } => Screen::OutageRecorded { waiting: *waiting },
            Stage::ChooseTreatment { .. } => Screen::ChooseTreatment,
            Stage::ChooseMethod { card } => Screen::ChooseMethod {
                face: self.face_offer(card),
                face_failures: card.face_failures,
                pin_tries_left: card.pin.tries_left,
                pin_set: card.pin.set,
                visual_check: self.visual_check_offered(),
            },
            Stage::Pin {
                card,
                purpose,
                wrong_pin,
            } => Screen::Pin {
                purpose: match purpose {
                    PinPurpose::Confirm => PinPadPurpose::Confirm,
                    PinPurpose::Register(_) => PinPadPurpose::Register,
                },
                tries_left: card.pin.tries_left,
                wrong_pin: *wrong_pin,
            },
            Stage::PhonePin {
                card, wrong_pin, ..
            } => Screen::Pin {
                purpose: PinPadPurpose::Phone,
                tries_left: card.pin.tries_left,
                wrong_pin: *wrong_pin,
            },
            Stage::Face {
                card, last_score, ..
            } => Screen::Face {
                failures: card.face_failures,
                max_failures: MAX_FACE_FAILURES,
                threshold_permille: self.settings.face_threshold_permille,
                last_score_permille: *last_score,
            },
            Stage::Consent { answers, .. } => {
                // A consent stage always has an unanswered item (all answered: confirming).
                let i = answers.iter().position(Option::is_none).unwrap_or(0);
                Screen::Consent {
                    item: CONSENT_ITEMS[i],
                    index: i as u8 + 1,
                    total: CONSENT_ITEMS.len() as u8,
                    comprehensive_offered: answers.iter().all(Option::is_none),
                }
            }
            Stage::Prescription { .. } => Screen::Prescription,
            Stage::OfferRegistration { card, .. } => Screen::OfferRegistration {
                needs_pin: card.pin.set,
            },
            Stage::Done { completed, .. } => Screen::Done {
                confirmation_id: completed.confirmation_id.clone(),
                validity: completed.validity,
                validity_label: crate::report::validity_label(completed.validity),
                method: completed.method,
                registered_now: completed.registered_now,
                warning: completed.warning,
                certificate_expiry: completed.certificate_expiry.clone(),
                grace_until: completed.grace_until.clone(),
                prescription: prescription_name(completed.prescription),
                treatment: completed.treatment,
                requery_until: completed.requery_until.clone(),
            },
            Stage::Failed { failure, .. } => Screen::Failed {
                reason: failure.reason,
                result_code: failure.result_code.clone(),
                message: failure.message.clone(),
            },
        }
    }

    fn visual_check_offered(&self) -> bool {
        self.visual_check_staff.is_some() && self.settings.device_key
    }

    /// The face offer for `card` (never in the mobile mode: a face match makes no first
    /// visit).
    fn face_offer(&self, card: &CardSession) -> FaceOffer {
        if !self.settings.device_key
            || self.settings.mobile
            || matches!(card.face_photo, FacePhoto::Unavailable)
        {
            FaceOffer::Unavailable
        } else if card.face_failures >= MAX_FACE_FAILURES {
            FaceOffer::Locked
        } else {
            FaceOffer::Available
        }
    }
}
