//! The kiosk's reception flow (eligibility.md §1) as one state machine, run by one task that
//! owns it: card events from the PC/SC watcher and the patient's (or a script's) actions
//! arrive as messages, are handled one at a time, and every change of screen is published on
//! a `watch` channel that the page's event stream follows.
//!
//! The screens, in order: 「カードを置いてください」 → reading → method choice (face / PIN, and
//! 目視確認 when staff switched it on) → PIN pad or camera → consent screens (medication,
//! checkup, clinical, surgery) → confirming → 「受付完了」 or a failure screen; and, when the
//! service says the card is not registered for insurance use, the offer to register (which
//! needs the PIN) before confirming again. Pulling the card at any step ends the session:
//! the card worker goes, a verified PIN is cleared by the card reset, and the screen returns
//! to the start with a note.
//!
//! The card signs the consents as part of the challenge binding, so the consent screens come
//! before the confirmation is sent; the service alone knows whether the card is registered
//! and answers only a signed request, so the offer to register follows the first answer.

use std::sync::Arc;
use std::time::Duration;

use onshi_jpki::constants::sha256_digest_info;
use onshi_jpki::flows::PinStatus;
use onshi_jpki::Pin;
use onshi_proto::binding::{binding_sha256, ChallengeBinding, ConsentBits, Purpose, ReaderCheck};
use onshi_proto::v1 as pb;
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use ring::rand::SystemRandom;
use ring::signature::EcdsaKeyPair;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tonic::transport::Channel;

use super::card::{CardEvent, CardFailure, CardHandle, VerifyError};
use super::staff::StaffDesk;
use crate::confirm::{check_certificate_der, refused_by_service};
use crate::face::{self, Camera, FaceFailures, Photo, MAX_FACE_FAILURES};
use crate::report::{Outcome, StaffResult};

/// The consent screens, in order (eligibility.md §1 step 4).
pub const CONSENT_ITEMS: [&str; 4] = ["medication", "checkup", "clinical", "surgery"];

/// What the page shows; serialised as the state the page and scripts read.
#[derive(Debug, Clone, Serialize)]
pub struct KioskState {
    /// The card session's id: 128 random bits, hex; `null` before the first card. Every
    /// action names the session it is for, so an action meant for a pulled card never
    /// touches the next one, and an id cannot be guessed.
    pub session: Option<String>,
    #[serde(flatten)]
    pub screen: Screen,
    /// The staff member who switched on 目視確認, if it is on.
    pub visual_check_staff: Option<String>,
    /// Why the last session ended early, shown on the start screen: `card_removed`,
    /// `timed_out`; or a note on the current screen: `face_locked`, `pin_locked`,
    /// `face_unavailable`.
    pub notice: Option<&'static str>,
    /// The PC/SC service's trouble, if any.
    pub reader_error: Option<String>,
}

/// One screen and what it needs.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "screen", rename_all = "snake_case")]
pub enum Screen {
    /// 「カードを置いてください」
    InsertCard,
    /// Busy: `reading_card`, `reading_face`, `verifying_pin`, `matching_face`, `confirming`,
    /// `registering`.
    Working {
        task: &'static str,
    },
    ChooseMethod {
        /// `available`, `locked` (10 failures) or `unavailable` (no face photo or no device
        /// key).
        face: &'static str,
        face_failures: u8,
        pin_tries_left: u8,
        /// `false`: the card has no PIN (a face-only card, 顔認証マイナンバーカード); the PIN
        /// pad is not offered at all.
        pin_set: bool,
        visual_check: bool,
    },
    /// The PIN pad: `purpose` is `confirm` or `register`.
    Pin {
        purpose: &'static str,
        tries_left: u8,
        wrong_pin: bool,
    },
    /// The camera.
    Face {
        failures: u8,
        max_failures: u8,
        threshold_permille: u16,
        last_score_permille: Option<u16>,
    },
    Consent {
        item: &'static str,
        index: u8,
        total: u8,
    },
    OfferRegistration,
    /// 「受付完了」
    Done {
        confirmation_id: String,
        validity: i32,
        validity_label: &'static str,
        method: &'static str,
        registered_now: bool,
    },
    /// A clear failure; `reason` is a stable key the page translates, `result_code` the
    /// service's or the reader's code when there is one.
    Failed {
        reason: &'static str,
        result_code: Option<String>,
        message: String,
    },
}

impl Screen {
    fn name(&self) -> &'static str {
        match self {
            Screen::InsertCard => "insert_card",
            Screen::Working { .. } => "working",
            Screen::ChooseMethod { .. } => "choose_method",
            Screen::Pin { .. } => "pin",
            Screen::Face { .. } => "face",
            Screen::Consent { .. } => "consent",
            Screen::OfferRegistration => "offer_registration",
            Screen::Done { .. } => "done",
            Screen::Failed { .. } => "failed",
        }
    }

    /// Screens that wait for the patient (and time out).
    fn waits_for_patient(&self) -> bool {
        matches!(
            self,
            Screen::ChooseMethod { .. }
                | Screen::Pin { .. }
                | Screen::Face { .. }
                | Screen::Consent { .. }
                | Screen::OfferRegistration
        )
    }
}

/// How the patient chose to be identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodChoice {
    Pin,
    Face,
    Visual,
}

/// The consent answers of one request; absent ones stay unanswered.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentAnswers {
    pub medication: Option<bool>,
    pub checkup: Option<bool>,
    pub clinical: Option<bool>,
    pub surgery: Option<bool>,
}

/// What the patient (or a script) does.
#[derive(Debug)]
pub enum Action {
    ChooseMethod(MethodChoice),
    /// The PIN typed on the pad. Moved to the card worker and dropped there.
    EnterPin(Pin),
    Face(Camera),
    Consents(ConsentAnswers),
    Register(bool),
    Cancel,
}

/// Why an action was not taken.
#[derive(Debug, Clone, Serialize)]
pub struct ActionError {
    /// `stale_session`, `wrong_screen`, `not_offered`.
    pub error: &'static str,
    pub message: String,
    pub state: KioskState,
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

enum Msg {
    Card(CardEvent),
    Action {
        session: String,
        action: Action,
        reply: oneshot::Sender<Result<KioskState, ActionError>>,
    },
    Visual(VisualCheck, oneshot::Sender<KioskState>),
}

/// The handle the web server holds.
#[derive(Clone)]
pub struct Kiosk {
    tx: mpsc::UnboundedSender<Msg>,
    state: watch::Receiver<KioskState>,
}

impl std::fmt::Debug for Kiosk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kiosk").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for KioskSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KioskSetup")
            .field("device_key", &self.device_key.is_some())
            .field("face_threshold_permille", &self.face_threshold_permille)
            .finish_non_exhaustive()
    }
}

impl Kiosk {
    pub fn state(&self) -> KioskState {
        self.state.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<KioskState> {
        self.state.clone()
    }

    /// Applies an action to session `session` and returns the state it led to.
    pub async fn act(&self, session: String, action: Action) -> Result<KioskState, ActionError> {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Msg::Action {
                session,
                action,
                reply,
            })
            .is_err()
        {
            return Err(ActionError {
                error: "stopped",
                message: "the kiosk has stopped".into(),
                state: self.state(),
            });
        }
        rx.await.map_err(|_| ActionError {
            error: "stopped",
            message: "the kiosk has stopped".into(),
            state: self.state(),
        })?
    }

    /// Switches 目視確認 on (by a logged-in staff member) or off.
    pub async fn set_visual_check(&self, switch: VisualCheck) -> KioskState {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Msg::Visual(switch, reply));
        rx.await.unwrap_or_else(|_| self.state())
    }

    /// Feeds a card event (the PC/SC watcher's).
    pub fn card_event(&self, event: CardEvent) {
        let _ = self.tx.send(Msg::Card(event));
    }
}

/// What the kiosk needs to run.
pub struct KioskSetup {
    pub client: ConfirmationClient<Channel>,
    pub device_key: Option<EcdsaKeyPair>,
    pub face_threshold_permille: u16,
    pub face_failures: FaceFailures,
    pub card_timeout: Duration,
    pub idle_timeout: Duration,
    pub staff: StaffDesk,
    /// The reception computer's `face/` folder, when the kiosk writes one file per completed
    /// confirmation there (`reader-agent kiosk --oqs-dir`, docs/oqs-files.md).
    pub face_files: Option<crate::oqs::face::FaceFiles>,
}

/// Starts the kiosk's task.
pub fn start(setup: KioskSetup) -> Kiosk {
    let initial = KioskState {
        session: None,
        screen: Screen::InsertCard,
        visual_check_staff: None,
        notice: None,
        reader_error: None,
    };
    let (state_tx, state_rx) = watch::channel(initial.clone());
    let (tx, rx) = mpsc::unbounded_channel();
    let machine = Machine {
        setup,
        state: initial,
        publish: state_tx,
        session: None,
        rng: SystemRandom::new(),
    };
    tokio::spawn(machine.run(rx));
    Kiosk {
        tx,
        state: state_rx,
    }
}

/// How the holder was identified in this session.
#[derive(Debug, Clone)]
enum Identified {
    Pin,
    Face { score: u16, threshold: u16 },
    Visual { staff_id: String },
}

impl Identified {
    fn method(&self) -> &'static str {
        match self {
            Identified::Pin => "pin",
            Identified::Face { .. } => "face",
            Identified::Visual { .. } => "visual",
        }
    }
}

struct Session {
    id: String,
    reader: String,
    card: CardHandle,
    certificate: Vec<u8>,
    /// SHA-256 of the certificate, hex: the key of the face-failure count.
    card_key: String,
    pin_tries_left: u8,
    /// `false` for a face-only card: its empty VERIFY answered `6984`, and no PIN is ever asked
    /// for or sent to it.
    pin_set: bool,
    pin_verified: bool,
    face_photo: Option<Result<Photo, String>>,
    face_captures: u32,
    identified: Option<Identified>,
    consents: [Option<bool>; 4],
    registered_now: bool,
    deadline: Instant,
}

struct Machine {
    setup: KioskSetup,
    state: KioskState,
    publish: watch::Sender<KioskState>,
    session: Option<Session>,
    rng: SystemRandom,
}

fn wrong_screen(state: &KioskState, wanted: &str) -> ActionError {
    ActionError {
        error: "wrong_screen",
        message: format!(
            "this action belongs to the {wanted} screen; the kiosk shows {}",
            state.screen.name()
        ),
        state: state.clone(),
    }
}

impl Machine {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        loop {
            let deadline = self
                .session
                .as_ref()
                .filter(|_| self.state.screen.waits_for_patient())
                .map(|s| s.deadline);
            let msg = match deadline {
                Some(d) => tokio::select! {
                    m = rx.recv() => m,
                    () = tokio::time::sleep_until(d) => {
                        self.time_out().await;
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let Some(msg) = msg else { return };
            match msg {
                Msg::Card(event) => self.on_card_event(event).await,
                Msg::Action {
                    session,
                    action,
                    reply,
                } => {
                    let r = self.on_action(session, action).await;
                    if let Some(s) = self.session.as_mut() {
                        s.deadline = Instant::now() + self.setup.idle_timeout;
                    }
                    self.release_when_finished().await;
                    let _ = reply.send(r.map(|()| self.state.clone()));
                }
                Msg::Visual(switch, reply) => {
                    match switch {
                        VisualCheck::On(staff) => self.state.visual_check_staff = Some(staff),
                        VisualCheck::Off => self.state.visual_check_staff = None,
                        VisualCheck::OffIfBy(staff) => {
                            if self.state.visual_check_staff.as_ref() == Some(&staff) {
                                self.state.visual_check_staff = None;
                            }
                        }
                    }
                    if matches!(self.state.screen, Screen::ChooseMethod { .. }) {
                        self.show_methods(None);
                    } else {
                        self.push();
                    }
                    let _ = reply.send(self.state.clone());
                }
            }
        }
    }

    fn push(&mut self) {
        self.publish.send_replace(self.state.clone());
    }

    fn show(&mut self, screen: Screen) {
        self.state.screen = screen;
        self.push();
    }

    fn working(&mut self, task: &'static str) {
        self.show(Screen::Working { task });
    }

    async fn on_card_event(&mut self, event: CardEvent) {
        match event {
            CardEvent::ServiceError(message) => {
                self.state.reader_error = Some(message);
                self.push();
            }
            CardEvent::Removed { reader } => {
                if self.session.as_ref().is_some_and(|s| s.reader == reader) {
                    let mid_flow = !matches!(
                        self.state.screen,
                        Screen::Done { .. } | Screen::Failed { .. }
                    );
                    self.end_session(mid_flow.then_some("card_removed"));
                }
            }
            CardEvent::Inserted { reader } => {
                self.state.reader_error = None;
                if self.session.is_some() {
                    // One patient at a time: a second reader's card waits.
                    return;
                }
                self.begin_session(reader).await;
            }
        }
    }

    /// Drops the session (the card worker resets a verified card as it goes) and shows the
    /// start screen.
    fn end_session(&mut self, notice: Option<&'static str>) {
        self.session = None;
        self.state.notice = notice;
        self.show(Screen::InsertCard);
    }

    async fn begin_session(&mut self, reader: String) {
        let id = match crate::kiosk::web::random_hex(&self.rng, 16) {
            Ok(id) => id,
            Err(message) => {
                self.state.reader_error = Some(message);
                return self.push();
            }
        };
        self.state.session = Some(id.clone());
        self.state.notice = None;
        self.working("reading_card");
        let card = match CardHandle::connect(&reader, self.setup.card_timeout).await {
            Ok(c) => c,
            Err(e) => return self.card_failed_before_session(e),
        };
        let reading = match card.read().await {
            Ok(r) => r,
            Err(e) => return self.card_failed_before_session(e),
        };
        if let Err(message) = check_certificate_der(&reading.certificate) {
            return self.show(Screen::Failed {
                reason: "card_unreadable",
                result_code: None,
                message,
            });
        }
        let card_key = hex::encode(ring::digest::digest(
            &ring::digest::SHA256,
            &reading.certificate,
        ));
        let pin_tries_left = match reading.pin_status {
            PinStatus::Blocked | PinStatus::NotSet => 0,
            PinStatus::TriesLeft(n) => n,
            PinStatus::Verified => 3,
        };
        let pin_set = reading.pin_status != PinStatus::NotSet;
        self.session = Some(Session {
            id,
            reader,
            card,
            certificate: reading.certificate,
            card_key,
            pin_tries_left,
            pin_set,
            pin_verified: false,
            face_photo: None,
            face_captures: 0,
            identified: None,
            consents: [None; 4],
            registered_now: false,
            deadline: Instant::now() + self.setup.idle_timeout,
        });
        self.show_methods(None);
    }

    fn card_failed_before_session(&mut self, e: CardFailure) {
        self.card_failed_as(e, "card_unreadable");
    }

    /// The face offer for the current card.
    fn face_offer(&self) -> &'static str {
        let Some(s) = &self.session else {
            return "unavailable";
        };
        if self.setup.device_key.is_none() || matches!(s.face_photo, Some(Err(_))) {
            "unavailable"
        } else if self.setup.face_failures.locked(&s.card_key) {
            "locked"
        } else {
            "available"
        }
    }

    /// The method choice, or a failure when no method is left.
    fn show_methods(&mut self, notice: Option<&'static str>) {
        let Some(s) = &self.session else { return };
        let face = self.face_offer();
        let pin_tries_left = s.pin_tries_left;
        let pin_set = s.pin_set;
        let face_failures = self.setup.face_failures.failures(&s.card_key);
        let visual_check =
            self.state.visual_check_staff.is_some() && self.setup.device_key.is_some();
        if notice.is_some() {
            self.state.notice = notice;
        }
        if face != "available" && pin_tries_left == 0 && !visual_check {
            let (reason, code) = if face == "locked" {
                ("no_method_left", pb::ResultCode::FaceAttemptsExhausted)
            } else if !pin_set {
                ("no_pin_on_card", pb::ResultCode::PinNotSet)
            } else {
                ("pin_locked", pb::ResultCode::PinAttemptsExhausted)
            };
            self.record_reader_refusal(code, "no way to identify the holder is left");
            let pin = if pin_set {
                "the PIN is locked (only the municipal office can unlock it)"
            } else {
                "this card has no PIN (顔認証マイナンバーカード)"
            };
            return self.show(Screen::Failed {
                reason,
                result_code: Some(code.as_str_name().to_owned()),
                message: format!(
                    "{pin} and face authentication is not possible: staff can switch on \
                     目視確認, or confirm by the insurance card's numbers"
                ),
            });
        }
        self.show(Screen::ChooseMethod {
            face,
            face_failures,
            pin_tries_left,
            pin_set,
            visual_check,
        });
    }

    fn record_reader_refusal(&self, code: pb::ResultCode, message: &str) {
        self.setup.staff.record(
            "reader",
            None,
            &Outcome::Refused {
                result_code: code.as_str_name().to_owned(),
                message: message.to_owned(),
                tries_left: None,
            },
            false,
        );
    }

    async fn time_out(&mut self) {
        if let Some(s) = &self.session {
            s.card.release().await;
        }
        self.state.notice = Some("timed_out");
        self.show(Screen::Failed {
            reason: "timed_out",
            result_code: None,
            message: "no answer for a while: the session ended; remove the card".into(),
        });
    }

    async fn on_action(&mut self, session: String, action: Action) -> Result<(), ActionError> {
        let current = self.session.as_ref().map(|s| s.id.as_str());
        if !current.is_some_and(|c| crate::kiosk::web::secrets_equal(c, &session)) {
            return Err(ActionError {
                error: "stale_session",
                message: match current {
                    Some(_) => "the action is not for the card in the reader".into(),
                    None => "no card is in the reader".into(),
                },
                state: self.state.clone(),
            });
        }
        if !matches!(action, Action::Cancel) {
            self.state.notice = None;
        }
        match action {
            Action::Cancel => {
                if let Some(s) = &self.session {
                    s.card.release().await;
                }
                self.show(Screen::Failed {
                    reason: "cancelled",
                    result_code: None,
                    message: "cancelled; remove the card".into(),
                });
                Ok(())
            }
            Action::ChooseMethod(choice) => self.choose(choice).await,
            Action::EnterPin(pin) => self.enter_pin(pin).await,
            Action::Face(camera) => self.face(camera).await,
            Action::Consents(answers) => self.consents(answers).await,
            Action::Register(accept) => self.registration(accept).await,
        }
    }

    async fn choose(&mut self, choice: MethodChoice) -> Result<(), ActionError> {
        if !matches!(self.state.screen, Screen::ChooseMethod { .. }) {
            return Err(wrong_screen(&self.state, "choose_method"));
        }
        let not_offered = |state: &KioskState, what: &str| ActionError {
            error: "not_offered",
            message: format!("{what} is not offered for this card"),
            state: state.clone(),
        };
        match choice {
            MethodChoice::Pin => {
                let tries_left = self.session.as_ref().map_or(0, |s| s.pin_tries_left);
                if self.session.as_ref().is_some_and(|s| !s.pin_set) {
                    return Err(not_offered(
                        &self.state,
                        "the PIN (this card has none: 顔認証マイナンバーカード)",
                    ));
                }
                if tries_left == 0 {
                    return Err(not_offered(&self.state, "the PIN (it is locked)"));
                }
                self.show(Screen::Pin {
                    purpose: "confirm",
                    tries_left,
                    wrong_pin: false,
                });
            }
            MethodChoice::Visual => {
                let Some(staff_id) = self.state.visual_check_staff.clone() else {
                    return Err(not_offered(
                        &self.state,
                        "目視確認 (staff have not switched it on)",
                    ));
                };
                if self.setup.device_key.is_none() {
                    return Err(not_offered(
                        &self.state,
                        "目視確認 (the reader has no device key)",
                    ));
                }
                self.identified(Identified::Visual { staff_id }).await;
            }
            MethodChoice::Face => {
                if self.face_offer() != "available" {
                    return Err(not_offered(&self.state, "face authentication"));
                }
                if self
                    .session
                    .as_ref()
                    .is_some_and(|s| s.face_photo.is_none())
                {
                    self.working("reading_face");
                    let s = self.session.as_ref().expect("checked by on_action");
                    let photo = match s.card.face_photo().await {
                        Ok(bytes) => Photo::decode_card_photo(&bytes),
                        Err(e) if e.removed => {
                            self.end_session(Some("card_removed"));
                            return Ok(());
                        }
                        Err(e) => Err(e.message),
                    };
                    let unavailable = photo.is_err();
                    if let Some(s) = self.session.as_mut() {
                        s.face_photo = Some(photo);
                    }
                    if unavailable {
                        self.show_methods(Some("face_unavailable"));
                        return Ok(());
                    }
                }
                self.show_face(None);
            }
        }
        Ok(())
    }

    /// The holder is identified: the consent screens, then the confirmation.
    async fn identified(&mut self, how: Identified) {
        if let Some(s) = self.session.as_mut() {
            s.identified = Some(how);
        }
        self.next_consent();
        if matches!(self.state.screen, Screen::Working { .. }) {
            self.confirm().await;
        }
    }

    fn show_face(&mut self, last_score: Option<u16>) {
        let failures = self
            .session
            .as_ref()
            .map_or(0, |s| self.setup.face_failures.failures(&s.card_key));
        self.show(Screen::Face {
            failures,
            max_failures: MAX_FACE_FAILURES,
            threshold_permille: self.setup.face_threshold_permille,
            last_score_permille: last_score,
        });
    }

    async fn enter_pin(&mut self, pin: Pin) -> Result<(), ActionError> {
        let Screen::Pin { purpose, .. } = self.state.screen else {
            return Err(wrong_screen(&self.state, "pin"));
        };
        self.working("verifying_pin");
        let s = self.session.as_mut().expect("checked by on_action");
        let verified = s.card.verify(pin).await;
        let s = self.session.as_mut().expect("checked by on_action");
        match verified {
            Err(e) => self.card_failed(e),
            Ok(Ok(())) => {
                s.pin_verified = true;
                s.pin_tries_left = 3;
                if purpose == "register" {
                    self.register().await;
                } else {
                    self.identified(Identified::Pin).await;
                }
            }
            Ok(Err(VerifyError::Wrong { tries_left })) if tries_left > 0 => {
                s.pin_tries_left = tries_left;
                self.show(Screen::Pin {
                    purpose,
                    tries_left,
                    wrong_pin: true,
                });
            }
            Ok(Err(VerifyError::Wrong { .. } | VerifyError::Blocked)) => {
                s.pin_tries_left = 0;
                self.record_reader_refusal(
                    pb::ResultCode::PinAttemptsExhausted,
                    "three wrong PINs: the card's PIN is locked",
                );
                if purpose == "register" {
                    self.show(Screen::Failed {
                        reason: "pin_locked",
                        result_code: Some(
                            pb::ResultCode::PinAttemptsExhausted
                                .as_str_name()
                                .to_owned(),
                        ),
                        message: "the PIN is locked, so the card cannot be registered here; \
                                  only the municipal office can unlock it"
                            .into(),
                    });
                } else {
                    self.show_methods(Some("pin_locked"));
                }
            }
            Ok(Err(VerifyError::Card(message, removed))) => {
                self.card_failed(CardFailure { message, removed })
            }
        }
        Ok(())
    }

    fn card_failed(&mut self, e: CardFailure) {
        self.card_failed_as(e, "card_error");
    }

    /// A card command failed: a pulled card ends the session, anything else is a failure
    /// screen with `reason`.
    fn card_failed_as(&mut self, e: CardFailure, reason: &'static str) {
        if e.removed {
            self.end_session(Some("card_removed"));
        } else {
            self.show(Screen::Failed {
                reason,
                result_code: None,
                message: e.message,
            });
        }
    }

    async fn face(&mut self, camera: Camera) -> Result<(), ActionError> {
        if !matches!(self.state.screen, Screen::Face { .. }) {
            return Err(wrong_screen(&self.state, "face"));
        }
        let threshold = self.setup.face_threshold_permille;
        let s = self.session.as_mut().expect("checked by on_action");
        let Some(Ok(photo)) = &s.face_photo else {
            return Err(wrong_screen(&self.state, "face"));
        };
        s.face_captures += 1;
        let captured = camera.capture(photo, s.face_captures);
        let score = face::match_score(photo, &captured);
        let key = s.card_key.clone();
        let saved = if score >= threshold {
            self.setup.face_failures.reset(&key)
        } else {
            self.setup.face_failures.record_failure(&key).map(drop)
        };
        if let Err(message) = saved {
            tracing::warn!("{message}");
        }
        if score >= threshold {
            self.identified(Identified::Face { score, threshold }).await;
        } else if self.setup.face_failures.locked(&key) {
            self.record_reader_refusal(
                pb::ResultCode::FaceAttemptsExhausted,
                "ten face-authentication failures: face authentication is refused for this card",
            );
            self.show_methods(Some("face_locked"));
        } else {
            self.show_face(Some(score));
        }
        Ok(())
    }

    /// The next unanswered consent screen, or the confirmation once all are answered.
    fn next_consent(&mut self) {
        let s = self.session.as_ref().expect("a session");
        match s.consents.iter().position(Option::is_none) {
            Some(i) => self.show(Screen::Consent {
                item: CONSENT_ITEMS[i],
                index: i as u8 + 1,
                total: CONSENT_ITEMS.len() as u8,
            }),
            None => self.state.screen = Screen::Working { task: "confirming" },
        }
    }

    async fn consents(&mut self, answers: ConsentAnswers) -> Result<(), ActionError> {
        if !matches!(self.state.screen, Screen::Consent { .. }) {
            return Err(wrong_screen(&self.state, "consent"));
        }
        let s = self.session.as_mut().expect("checked by on_action");
        for (slot, answer) in s.consents.iter_mut().zip([
            answers.medication,
            answers.checkup,
            answers.clinical,
            answers.surgery,
        ]) {
            if answer.is_some() {
                *slot = answer;
            }
        }
        self.next_consent();
        if matches!(self.state.screen, Screen::Working { .. }) {
            self.confirm().await;
        }
        Ok(())
    }

    fn consent_bits(s: &Session) -> ConsentBits {
        let c = |i: usize| s.consents[i].unwrap_or(false);
        ConsentBits::new(c(0), c(1), c(2), c(3))
    }

    /// Asks the service: PIN mode with the card's signature, face and visual-check modes
    /// with the reader's attestation.
    async fn confirm(&mut self) {
        self.working("confirming");
        let s = self.session.as_ref().expect("a session");
        let identified = s.identified.clone().expect("identified before consents");
        let consents = Self::consent_bits(s);
        let purpose = match identified {
            Identified::Pin => pb::Purpose::Confirm,
            Identified::Face { .. } => pb::Purpose::Face,
            Identified::Visual { .. } => pb::Purpose::VisualCheck,
        };
        let mut client = self.setup.client.clone();
        let challenge = match client
            .issue_challenge(pb::IssueChallengeRequest {
                purpose: purpose as i32,
            })
            .await
        {
            Ok(c) => c.into_inner(),
            Err(status) => return self.refused(&identified, refused_by_service(&status)),
        };
        let binding = ChallengeBinding {
            purpose: match identified {
                Identified::Pin => Purpose::Confirm,
                Identified::Face { .. } => Purpose::Face,
                Identified::Visual { .. } => Purpose::VisualCheck,
            },
            challenge: &challenge.challenge,
            terminal_name: &challenge.terminal_name,
            certificate_der: &s.certificate,
            consents,
        };
        let pb_consents = Some(consents.into());
        let answer = match &identified {
            Identified::Pin => {
                let signature = match card_signature(&s.card, &binding).await {
                    Ok(sig) => sig,
                    Err(failed) => return self.signing_failed(&identified, failed),
                };
                client
                    .confirm_by_card(pb::ConfirmByCardRequest {
                        certificate: s.certificate.clone(),
                        challenge: challenge.challenge.clone(),
                        signature,
                        consents: pb_consents,
                    })
                    .await
            }
            Identified::Face { .. } | Identified::Visual { .. } => {
                let (check, method, face_match, staff_id) = match &identified {
                    Identified::Face { score, threshold } => (
                        ReaderCheck::Face {
                            score_permille: *score,
                            threshold_permille: *threshold,
                        },
                        pb::ReaderMethod::Face,
                        Some(pb::FaceMatch {
                            score_permille: u32::from(*score),
                            threshold_permille: u32::from(*threshold),
                        }),
                        String::new(),
                    ),
                    Identified::Visual { staff_id } => (
                        ReaderCheck::Visual { staff_id },
                        pb::ReaderMethod::VisualCheck,
                        None,
                        staff_id.clone(),
                    ),
                    Identified::Pin => unreachable!("handled above"),
                };
                let bytes = match binding.encode_attested(&check) {
                    Ok(b) => b,
                    Err(e) => return self.unusable_challenge(&identified, &e.to_string()),
                };
                let Some(key) = &self.setup.device_key else {
                    return self.refused(
                        &identified,
                        Outcome::Error {
                            message: "this reader has no device key".into(),
                        },
                    );
                };
                let attestation = match key.sign(&self.rng, &bytes) {
                    Ok(sig) => sig.as_ref().to_vec(),
                    Err(_) => {
                        return self.refused(
                            &identified,
                            Outcome::Error {
                                message: "the device key failed to sign".into(),
                            },
                        )
                    }
                };
                client
                    .confirm_by_reader(pb::ConfirmByReaderRequest {
                        certificate: s.certificate.clone(),
                        challenge: challenge.challenge.clone(),
                        method: method as i32,
                        face_match,
                        staff_id,
                        consents: pb_consents,
                        attestation,
                    })
                    .await
            }
        };
        match answer {
            Ok(result) => {
                let result = result.into_inner();
                if let Some(files) = &self.setup.face_files {
                    files.write_logged(&result);
                }
                let code = result.result_code().as_str_name().to_owned();
                let staff = StaffResult::from_proto(&result);
                let registered_now = s.registered_now;
                let outcome = Outcome::Confirmed {
                    result_code: code,
                    result: staff,
                };
                self.setup.staff.record(
                    identified.method(),
                    staff_of(&identified),
                    &outcome,
                    registered_now,
                );
                self.release().await;
                self.show(Screen::Done {
                    confirmation_id: result.confirmation_id,
                    validity: result.validity,
                    validity_label: crate::report::validity_label(result.validity),
                    method: identified.method(),
                    registered_now,
                });
            }
            Err(status) => {
                let outcome = refused_by_service(&status);
                let not_registered = matches!(
                    &outcome,
                    Outcome::Refused { result_code, .. }
                        if result_code == pb::ResultCode::CardNotRegistered.as_str_name()
                );
                if not_registered && !s.registered_now {
                    self.show(Screen::OfferRegistration);
                } else {
                    self.refused(&identified, outcome);
                }
            }
        }
    }

    fn signing_failed(&mut self, identified: &Identified, failed: SigningFailed) {
        match failed {
            SigningFailed::Binding(why) => self.unusable_challenge(identified, &why),
            SigningFailed::Card(e) => self.card_failed(e),
        }
    }

    fn unusable_challenge(&mut self, identified: &Identified, why: &str) {
        self.refused(
            identified,
            Outcome::Error {
                message: format!("the service sent an unusable challenge: {why}"),
            },
        )
    }

    /// Once a session has its outcome (受付完了 or a failure) while the card is still in the
    /// reader, a verified card is reset: nothing may sign with it any more.
    async fn release_when_finished(&mut self) {
        let finished = matches!(
            self.state.screen,
            Screen::Done { .. } | Screen::Failed { .. }
        );
        if let Some(s) = self.session.as_mut().filter(|s| finished && s.pin_verified) {
            s.card.release().await;
            s.pin_verified = false;
        }
    }

    async fn release(&self) {
        if let Some(s) = &self.session {
            s.card.release().await;
        }
    }

    /// Records a refusal or failure for staff and shows it.
    fn refused(&mut self, identified: &Identified, outcome: Outcome) {
        self.setup
            .staff
            .record(identified.method(), staff_of(identified), &outcome, false);
        let (reason, result_code, message) = match outcome {
            Outcome::Refused {
                result_code,
                message,
                ..
            } => ("refused", Some(result_code), message),
            Outcome::Error { message } => ("service_unreachable", None, message),
            other => ("refused", None, format!("{other:?}")),
        };
        // The verified card is reset when the session goes; nothing else waits for it.
        self.show(Screen::Failed {
            reason,
            result_code,
            message,
        });
    }

    async fn registration(&mut self, accept: bool) -> Result<(), ActionError> {
        if !matches!(self.state.screen, Screen::OfferRegistration) {
            return Err(wrong_screen(&self.state, "offer_registration"));
        }
        let s = self.session.as_ref().expect("checked by on_action");
        if !accept {
            let identified = s.identified.clone().expect("identified before the offer");
            self.release().await;
            self.refused(
                &identified,
                Outcome::Refused {
                    result_code: pb::ResultCode::CardNotRegistered.as_str_name().to_owned(),
                    message: "the holder declined to register the card for insurance use".into(),
                    tries_left: None,
                },
            );
            return Ok(());
        }
        if s.pin_verified {
            self.register().await;
        } else if !s.pin_set {
            self.show(Screen::Failed {
                reason: "pin_not_set",
                result_code: Some(pb::ResultCode::PinNotSet.as_str_name().to_owned()),
                message: "this kiosk registers a card for insurance use with its PIN, and this \
                          card has none (顔認証マイナンバーカード): registration by face \
                          authentication is not simulated yet"
                    .into(),
            });
        } else if s.pin_tries_left == 0 {
            self.show(Screen::Failed {
                reason: "pin_locked",
                result_code: Some(
                    pb::ResultCode::PinAttemptsExhausted
                        .as_str_name()
                        .to_owned(),
                ),
                message: "registration needs the PIN, and it is locked".into(),
            });
        } else {
            let tries_left = s.pin_tries_left;
            self.show(Screen::Pin {
                purpose: "register",
                tries_left,
                wrong_pin: false,
            });
        }
        Ok(())
    }

    /// 健康保険証利用申込み with the verified card, then the confirmation again.
    async fn register(&mut self) {
        self.working("registering");
        let s = self.session.as_ref().expect("a session");
        let identified = s.identified.clone().unwrap_or(Identified::Pin);
        let mut client = self.setup.client.clone();
        let challenge = match client
            .issue_challenge(pb::IssueChallengeRequest {
                purpose: pb::Purpose::Register as i32,
            })
            .await
        {
            Ok(c) => c.into_inner(),
            Err(status) => return self.refused(&identified, refused_by_service(&status)),
        };
        let binding = ChallengeBinding {
            purpose: Purpose::Register,
            challenge: &challenge.challenge,
            terminal_name: &challenge.terminal_name,
            certificate_der: &s.certificate,
            consents: ConsentBits::default(),
        };
        let signature = match card_signature(&s.card, &binding).await {
            Ok(sig) => sig,
            Err(failed) => return self.signing_failed(&identified, failed),
        };
        match client
            .register_for_insurance(pb::RegisterRequest {
                certificate: s.certificate.clone(),
                challenge: challenge.challenge,
                signature,
            })
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                self.setup.staff.record(
                    "pin",
                    None,
                    &Outcome::Registered {
                        result_code: r.result_code().as_str_name().to_owned(),
                        newly_registered: r.newly_registered,
                        confirmation_id: r.confirmation_id,
                    },
                    true,
                );
                let s = self.session.as_mut().expect("a session");
                s.registered_now = true;
                if s.identified.is_none() {
                    s.identified = Some(Identified::Pin);
                }
                self.confirm().await;
            }
            Err(status) => self.refused(&identified, refused_by_service(&status)),
        }
    }
}

/// Why the card's signature over a binding could not be had.
enum SigningFailed {
    Binding(String),
    Card(CardFailure),
}

/// Has the (verified) card sign the DigestInfo of the binding's SHA-256.
async fn card_signature(
    card: &CardHandle,
    binding: &ChallengeBinding<'_>,
) -> Result<Vec<u8>, SigningFailed> {
    let bytes = binding
        .encode()
        .map_err(|e| SigningFailed::Binding(e.to_string()))?;
    let digest_info = sha256_digest_info(&binding_sha256(&bytes));
    card.sign(digest_info.to_vec())
        .await
        .map_err(SigningFailed::Card)
}

fn staff_of(identified: &Identified) -> Option<String> {
    match identified {
        Identified::Visual { staff_id } => Some(staff_id.clone()),
        _ => None,
    }
}

/// Shared so the HTTP layer can hold it.
pub type SharedKiosk = Arc<Kiosk>;
