//! The kiosk's runner: one task owns the flow's [`State`] and feeds it events one at a time
//! (card events from the PC/SC watcher, the patient's or a script's actions, staff's
//! 目視確認 switch, the idle timer); it performs the [`Effect`]s that [`step`] asks for (the
//! card worker, the service, the device key, the face-failure file, the staff's list, the
//! `face/` folder) and feeds each request's answer back as an event. Every change of screen
//! is published on a `watch` channel that the page's event stream follows.
//!
//! The flow itself, its screens and where the PIN lives are in [`super::flow`].

use std::sync::Arc;
use std::time::Duration;

use onshi_proto::v1 as pb;
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use ring::rand::SystemRandom;
use ring::signature::EcdsaKeyPair;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tonic::transport::Channel;

use super::flow::{card_key, step, Effect, Event, Settings, State};
pub use super::flow::{
    Action, ActionError, ActionRefused, ConsentAnswers, KioskState, MethodChoice,
    PrescriptionChoice, Screen, Treatment, VisualCheck, CONSENT_ITEMS,
};

use super::card::{CardEvent, CardFailure, CardHandle};
use super::staff::StaffDesk;
use crate::confirm::refused_by_service;
use crate::face::{FaceFailures, Photo};
use crate::report::Outcome;

enum Msg {
    Card(CardEvent),
    Action {
        session: String,
        action: Action,
        reply: oneshot::Sender<Result<KioskState, ActionError>>,
    },
    Visual(VisualCheck, oneshot::Sender<KioskState>),
    /// The outage probe's finding (see [`super::outage`]).
    Service(bool),
    /// 「スマートフォンで受付」: a phone was held to the general-purpose reader.
    Phone(oneshot::Sender<Result<KioskState, ActionError>>),
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

    fn stopped(&self) -> ActionError {
        ActionError {
            error: ActionRefused::Stopped,
            message: "the kiosk has stopped".into(),
            state: self.state(),
        }
    }

    /// Applies an action to session `session` and returns the state it led to.
    pub async fn act(&self, session: String, action: Action) -> Result<KioskState, ActionError> {
        let (reply, rx) = oneshot::channel();
        let msg = Msg::Action {
            session,
            action,
            reply,
        };
        if self.tx.send(msg).is_err() {
            return Err(self.stopped());
        }
        rx.await.map_err(|_| self.stopped())?
    }

    /// Switches 目視確認 on (by a logged-in staff member) or off.
    pub async fn set_visual_check(&self, switch: VisualCheck) -> KioskState {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Msg::Visual(switch, reply));
        rx.await.unwrap_or_else(|_| self.state())
    }

    /// Tells the flow whether the service answers (the outage probe's finding).
    pub fn service_reachable(&self, up: bool) {
        let _ = self.tx.send(Msg::Service(up));
    }

    /// 「スマートフォンで受付」: starts a phone session (refused while a session is under
    /// way, or when the kiosk has no smartphone channel) and returns the state it led to.
    pub async fn phone_held(&self) -> Result<KioskState, ActionError> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Msg::Phone(reply)).is_err() {
            return Err(self.stopped());
        }
        rx.await.map_err(|_| self.stopped())?
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
    /// Ask for the 電子処方箋 choice (the institution issues prescriptions).
    pub prescription_choice: bool,
    /// The mobile device of a home visit or online care (`kiosk --mobile`).
    pub mobile: bool,
    pub face_failures: FaceFailures,
    pub card_timeout: Duration,
    pub idle_timeout: Duration,
    pub staff: StaffDesk,
    /// The reception computer's `face/` folder, when the kiosk writes one file per completed
    /// confirmation there (`reader-agent kiosk --oqs-dir`, docs/oqs-files.md).
    pub face_files: Option<crate::oqs::face::FaceFiles>,
    /// The outage store (docs/operations.md, "The outage path").
    pub outage: super::outage::OutageDesk,
    /// The bounded wait for the service's challenge; past it, the outage path is offered.
    pub service_wait: Duration,
    /// The smartphone simulator channel's socket (docs/smartphone.md), if any.
    pub phone: Option<std::path::PathBuf>,
}

/// Starts the kiosk's task.
pub fn start(setup: KioskSetup) -> Kiosk {
    let state = State::new(Settings {
        device_key: setup.device_key.is_some(),
        face_threshold_permille: setup.face_threshold_permille,
        prescription_choice: setup.prescription_choice,
        mobile: setup.mobile,
        phone: setup.phone.is_some(),
    });
    let (publish, state_rx) = watch::channel(state.view());
    let (tx, rx) = mpsc::unbounded_channel();
    let runner = Runner {
        setup,
        state,
        publish,
        card: None,
        deadline: Instant::now(),
        rng: SystemRandom::new(),
    };
    tokio::spawn(runner.run(rx));
    Kiosk {
        tx,
        state: state_rx,
    }
}

/// When a screen that waits for the patient times out, after an action: an accepted action
/// starts the wait again; a refused one (a stale session, the wrong screen) leaves it as it
/// was, so nothing on loopback can keep a verified session open by sending refused actions.
fn deadline_after_action(
    deadline: Instant,
    accepted: bool,
    now: Instant,
    idle: Duration,
) -> Instant {
    if accepted {
        now + idle
    } else {
        deadline
    }
}

struct Runner {
    setup: KioskSetup,
    state: State,
    publish: watch::Sender<KioskState>,
    /// The card worker of the session's card.
    card: Option<CardHandle>,
    /// When a screen that waits for the patient times out.
    deadline: Instant,
    rng: SystemRandom,
}

impl Runner {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        loop {
            let msg = if self.state.stage.waits_for_patient() || self.state.stage.phone_finished() {
                tokio::select! {
                    m = rx.recv() => m,
                    () = tokio::time::sleep_until(self.deadline) => {
                        self.handle(Event::IdleTimeout).await;
                        continue;
                    }
                }
            } else {
                rx.recv().await
            };
            let Some(msg) = msg else { return };
            match msg {
                Msg::Card(event) => {
                    let event = match event {
                        CardEvent::ServiceError(message) => Event::ReaderTrouble(message),
                        CardEvent::Removed { reader } => Event::CardRemoved { reader },
                        CardEvent::Inserted { reader } => Event::CardInserted {
                            reader,
                            session_id: crate::kiosk::web::random_hex(&self.rng, 16),
                        },
                    };
                    let had_card = self.state.stage.card().is_some();
                    self.handle(event).await;
                    // A session that began waits for the patient from now.
                    if !had_card && self.state.stage.card().is_some() {
                        self.deadline = Instant::now() + self.setup.idle_timeout;
                    }
                }
                Msg::Phone(reply) => {
                    let event = Event::PhoneHeld {
                        session_id: crate::kiosk::web::random_hex(&self.rng, 16),
                    };
                    let refused = self.handle(event).await;
                    // A session that began waits for the patient from now.
                    self.deadline = Instant::now() + self.setup.idle_timeout;
                    let view = self.state.view();
                    let _ = reply.send(match refused {
                        Some((error, message)) => Err(ActionError {
                            error,
                            message,
                            state: view,
                        }),
                        None => Ok(view),
                    });
                }
                Msg::Action {
                    session,
                    action,
                    reply,
                } => {
                    let refused = self.handle(Event::Action { session, action }).await;
                    self.deadline = deadline_after_action(
                        self.deadline,
                        refused.is_none(),
                        Instant::now(),
                        self.setup.idle_timeout,
                    );
                    let view = self.state.view();
                    let _ = reply.send(match refused {
                        Some((error, message)) => Err(ActionError {
                            error,
                            message,
                            state: view,
                        }),
                        None => Ok(view),
                    });
                }
                Msg::Visual(switch, reply) => {
                    self.handle(Event::Visual(switch)).await;
                    let _ = reply.send(self.state.view());
                }
                Msg::Service(up) => {
                    self.handle(Event::ServiceReachable(up)).await;
                }
            }
        }
    }

    /// Steps the flow with `event` and performs what it asks, feeding each request's answer
    /// back, until nothing is left to do. Returns the refusal of an action, if it was refused.
    async fn handle(&mut self, event: Event) -> Option<(ActionRefused, String)> {
        let mut refused = None;
        let mut next = Some(event);
        while let Some(event) = next.take() {
            let settings = self.state.settings;
            let state = std::mem::replace(&mut self.state, State::new(settings));
            let (state, effects) = step(state, event);
            self.state = state;
            for effect in effects {
                if effect.is_request() {
                    // The busy screen is shown while the card or the service works.
                    self.push();
                    next = Some(self.request(effect).await);
                } else if let Some(r) = self.perform(effect).await {
                    refused = Some(r);
                }
            }
        }
        self.push();
        refused
    }

    fn push(&self) {
        let view = self.state.view();
        self.publish.send_if_modified(|shown| {
            let changed = *shown != view;
            if changed {
                *shown = view;
            }
            changed
        });
    }

    /// Performs an effect that needs no answer.
    async fn perform(&mut self, effect: Effect) -> Option<(ActionRefused, String)> {
        match effect {
            Effect::ResetCard => {
                if let Some(card) = &self.card {
                    card.release().await;
                }
            }
            Effect::DropCard => self.card = None,
            Effect::Record(r) => {
                super::metrics::outcome(r.method, &r.outcome);
                self.setup
                    .staff
                    .record(r.method, r.staff_id, &r.outcome, r.registered_now);
            }
            Effect::RecordFaceFailure { card_key } => {
                if let Err(message) = self.setup.face_failures.record_failure(&card_key) {
                    tracing::warn!("{message}");
                }
            }
            Effect::ResetFaceFailures { card_key } => {
                if let Err(message) = self.setup.face_failures.reset(&card_key) {
                    tracing::warn!("{message}");
                }
            }
            Effect::WriteFaceFile(result) => {
                if let Some(files) = &self.setup.face_files {
                    files.write_logged(&result);
                }
            }
            Effect::Refuse { error, message } => return Some((error, message)),
            request => {
                debug_assert!(request.is_request());
                tracing::error!("a request effect performed as a plain one: {request:?}");
            }
        }
        None
    }

    /// Performs a request and returns its answer.
    async fn request(&mut self, effect: Effect) -> Event {
        let no_worker = || CardFailure {
            message: "the card worker ended".into(),
            removed: true,
        };
        let mut client = self.setup.client.clone();
        match effect {
            Effect::ReadCard { reader } => {
                super::metrics::session_started();
                self.card = None;
                let read = async {
                    let card = CardHandle::connect(&reader, self.setup.card_timeout).await?;
                    let reading = card.read().await;
                    self.card = Some(card);
                    reading
                };
                Event::CardRead(read.await.map(|reading| {
                    let failures = self
                        .setup
                        .face_failures
                        .failures(&card_key(&reading.certificate));
                    (reading, failures)
                }))
            }
            Effect::ReadPhone => {
                super::metrics::session_started();
                self.card = None;
                let socket = self.setup.phone.clone();
                Event::PhoneRead(
                    blocking(move || match socket {
                        Some(s) => crate::phone::presented(&s),
                        None => Err(no_phone()),
                    })
                    .await
                    .unwrap_or_else(Err),
                )
            }
            Effect::PhoneSign { binding, pin } => {
                let socket = self.setup.phone.clone();
                // The PIN goes from the pad to the phone's socket only (docs/smartphone.md).
                let pin = pin.map(|p| {
                    zeroize::Zeroizing::new(
                        String::from_utf8_lossy(p.digits_for_credential()).into_owned(),
                    )
                });
                Event::PhoneSigned(
                    blocking(move || match socket {
                        Some(s) => crate::phone::sign(&s, &binding, pin),
                        None => crate::phone::Signed::Refused(no_phone()),
                    })
                    .await
                    .unwrap_or_else(crate::phone::Signed::Refused),
                )
            }
            Effect::ReadFacePhoto => Event::FacePhoto(match &self.card {
                Some(card) => card.face_photo().await.and_then(|bytes| {
                    Photo::decode_card_photo(&bytes).map_err(|message| CardFailure {
                        message,
                        removed: false,
                    })
                }),
                None => Err(no_worker()),
            }),
            Effect::VerifyPin(pin) => Event::PinChecked(match &self.card {
                Some(card) => card.verify(pin).await,
                None => Err(no_worker()),
            }),
            Effect::Sign(digest_info) => Event::Signed(match &self.card {
                Some(card) => card.sign(digest_info).await,
                None => Err(no_worker()),
            }),
            Effect::IssueChallenge(purpose) => {
                let asked = client.issue_challenge(pb::IssueChallengeRequest {
                    purpose: purpose as i32,
                });
                Event::Challenge(
                    match tokio::time::timeout(self.setup.service_wait, asked).await {
                        Ok(answer) => answer
                            .map(tonic::Response::into_inner)
                            .map_err(|status| refused_by_service(&status)),
                        Err(_) => Err(Outcome::Error {
                            message: format!(
                                "the confirmation service did not answer within {} s",
                                self.setup.service_wait.as_secs_f32()
                            ),
                        }),
                    },
                )
            }
            Effect::RecordOutage {
                declaration,
                certificate_sha256,
            } => {
                let outage = self.setup.outage.clone();
                let written = tokio::task::spawn_blocking(move || {
                    outage.record(declaration, certificate_sha256, "kiosk".into())
                })
                .await;
                Event::OutageRecorded(match written {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(e) => Err(format!("the outage store's writer failed: {e}")),
                })
            }
            Effect::Attest(bytes) => Event::Attested(match &self.setup.device_key {
                None => Err("this reader has no device key".into()),
                Some(key) => key
                    .sign(&self.rng, &bytes)
                    .map(|sig| sig.as_ref().to_vec())
                    .map_err(|_| "the device key failed to sign".into()),
            }),
            Effect::ConfirmByCard(request) => {
                Event::Answered(answer_boxed(client.confirm_by_card(request).await))
            }
            Effect::ConfirmByReader(request) => {
                Event::Answered(answer_boxed(client.confirm_by_reader(request).await))
            }
            Effect::Register(request) => {
                Event::Registered(answer(client.register_for_insurance(request).await))
            }
            Effect::RegisterByReader(request) => {
                Event::Registered(answer(client.register_by_reader(request).await))
            }
            other => {
                unreachable!("not a request: {other:?}")
            }
        }
    }
}

/// The reader's refusal when the kiosk has no smartphone channel.
fn no_phone() -> Outcome {
    crate::phone::phone_refusal(
        pb::ResultCode::PhoneUnavailable,
        "this kiosk has no smartphone reader",
        None,
    )
}

/// Runs a blocking phone call off the runner's thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Outcome> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        crate::phone::phone_refusal(pb::ResultCode::PhoneUnavailable, &e.to_string(), None)
    })
}

fn answer_boxed<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<Box<T>, Outcome> {
    answer(r).map(Box::new)
}

fn answer<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Result<T, Outcome> {
    r.map(tonic::Response::into_inner)
        .map_err(|status| refused_by_service(&status))
}

/// Shared so the HTTP layer can hold it.
pub type SharedKiosk = Arc<Kiosk>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kiosk::flow::{FailReason, Task};

    /// A kiosk whose service is never reached (nothing listens on the discard port) and
    /// whose reader does not exist.
    fn setup() -> KioskSetup {
        let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        let client = ConfirmationClient::new(channel);
        KioskSetup {
            client: client.clone(),
            device_key: None,
            face_threshold_permille: crate::face::DEFAULT_THRESHOLD_PERMILLE,
            prescription_choice: false,
            mobile: false,
            face_failures: FaceFailures::in_memory(),
            card_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(60),
            staff: StaffDesk::new(client),
            face_files: None,
            // This test records no outage visit: the folder may go with its guard.
            outage: super::super::outage::OutageDesk::new(
                crate::outage::OutageStore::open(
                    tempfile::tempdir().expect("a temporary folder").path(),
                    10,
                )
                .expect("a private folder"),
            ),
            service_wait: Duration::from_secs(2),
            phone: None,
        }
    }

    #[test]
    fn only_an_accepted_action_moves_the_idle_deadline() {
        let now = Instant::now();
        let deadline = now + Duration::from_secs(5);
        let idle = Duration::from_secs(60);
        assert_eq!(deadline_after_action(deadline, false, now, idle), deadline);
        assert_eq!(deadline_after_action(deadline, true, now, idle), now + idle);
    }

    #[tokio::test]
    async fn the_runner_publishes_each_screen_and_answers_actions() {
        let kiosk = start(setup());
        let mut screens = kiosk.subscribe();

        kiosk.card_event(CardEvent::ServiceError("pcscd went away".into()));
        let shown = screens
            .wait_for(|s| s.reader_error.is_some())
            .await
            .expect("published")
            .clone();
        assert_eq!(shown.reader_error.as_deref(), Some("pcscd went away"));

        let refused = kiosk
            .act("0123".into(), Action::Cancel)
            .await
            .expect_err("no card yet");
        assert_eq!(refused.error, ActionRefused::StaleSession);
        assert_eq!(refused.state.screen, Screen::InsertCard);

        let state = kiosk
            .set_visual_check(VisualCheck::On("staff-1".into()))
            .await;
        assert_eq!(state.visual_check_staff.as_deref(), Some("staff-1"));

        // A card in a reader that cannot be reached: the runner performs the read and shows
        // its failure (the reading screen before it may already be gone when looked at).
        kiosk.card_event(CardEvent::Inserted {
            reader: "no such reader".into(),
        });
        let reading = screens
            .wait_for(|s| s.session.is_some())
            .await
            .expect("published")
            .clone();
        let failed = screens
            .wait_for(|s| matches!(s.screen, Screen::Failed { .. }))
            .await
            .expect("published")
            .clone();
        assert!(
            reading.screen
                == Screen::Working {
                    task: Task::ReadingCard
                }
                || reading.screen == failed.screen,
            "{reading:?}"
        );
        assert!(matches!(
            failed.screen,
            Screen::Failed {
                reason: FailReason::CardUnreadable,
                ..
            }
        ));
        assert_eq!(failed.reader_error, None, "a placed card clears it");
    }
}
