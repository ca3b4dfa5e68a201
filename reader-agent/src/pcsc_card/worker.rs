//! The card worker: one thread per card that owns the PC/SC connection and runs the card's
//! commands one at a time.
//!
//! **Where the PIN goes.** [`CardHandle::verify`] moves the patient's [`Pin`] into the worker,
//! which turns it into the VERIFY APDU inside a PC/SC transaction and drops (zeroizes) it at
//! once. A verified card is then kept in that **exclusive** transaction, so no other process
//! can use the verified PIN, until [`CardHandle::release`] (or the handle being dropped, or
//! the card being pulled) ends it with a card reset, which clears the verification. The PIN
//! itself is never kept across screens.

use std::ffi::CString;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use onshi_jpki::flows::{self, CardReading, FlowError};
use onshi_jpki::Pin;
use pcsc::{Context, Protocols, Scope, ShareMode};
use tokio::sync::oneshot;

pub use super::watch::CardEvent;
use super::{CardIoError, Trace, TransactionChannel, VerifiedCard};

/// Why VERIFY did not succeed.
#[derive(Debug)]
pub enum VerifyError {
    Wrong { tries_left: u8 },
    Blocked,
}

type Reply<T> = oneshot::Sender<Result<T, CardFailure>>;

/// A card command failed; `removed` when the card left the reader.
#[derive(Debug, Clone)]
pub struct CardFailure {
    pub message: String,
    pub removed: bool,
}

impl From<FlowError<CardIoError>> for CardFailure {
    fn from(e: FlowError<CardIoError>) -> Self {
        let removed = matches!(
            e,
            FlowError::Channel(CardIoError::CardRemoved | CardIoError::NoAnswer)
        );
        CardFailure {
            message: e.to_string(),
            removed,
        }
    }
}

impl From<CardIoError> for CardFailure {
    fn from(e: CardIoError) -> Self {
        FlowError::Channel(e).into()
    }
}

enum Request {
    Read(Reply<CardReading>),
    FacePhoto(Reply<Vec<u8>>),
    /// The outer result is the card's; the inner one VERIFY's.
    Verify(Pin, Reply<Result<(), VerifyError>>),
    Sign(Vec<u8>, Reply<Vec<u8>>),
    Release(oneshot::Sender<()>),
    /// Any job of the command line's flows, run on the worker's thread with the card and the
    /// worker's trace; it answers through a channel of its own.
    Job(Job),
}

type Job = Box<dyn FnOnce(&mut pcsc::Card, Option<&mut Trace>) + Send>;

/// Where the worker found its card.
#[derive(Debug, Clone)]
pub struct Found {
    pub reader: String,
    /// The answer-to-reset, as pcscd reports it (empty if it could not be read).
    pub atr: Vec<u8>,
}

/// A handle on the card in the reader (the kiosk's, and the command line's). Dropping it ends
/// the worker (resetting the card if it was verified).
#[derive(Debug)]
pub struct CardHandle {
    requests: std_mpsc::Sender<Request>,
    timeout: Duration,
}

impl CardHandle {
    /// Connects to the card in `reader` on a new worker thread.
    pub async fn connect(reader: &str, timeout: Duration) -> Result<CardHandle, CardFailure> {
        let reader = reader.to_owned();
        let connect = move || {
            let ctx = Context::establish(Scope::User).map_err(CardIoError::NoService)?;
            let name = CString::new(reader.clone())
                .map_err(|_| CardIoError::ReaderNotFound(reader.clone()))?;
            let card = ctx.connect(&name, ShareMode::Shared, Protocols::ANY)?;
            Ok((
                card,
                Found {
                    reader,
                    atr: Vec::new(),
                },
            ))
        };
        let (handle, ready) = Self::spawn(connect, None, timeout)?;
        match tokio::time::timeout(timeout, ready).await {
            Ok(Ok(Ok(_))) => Ok(handle),
            Ok(Ok(Err(e))) => Err(e.into()),
            Ok(Err(_)) => Err(worker_ended()),
            Err(_) => Err(handle.timed_out()),
        }
    }

    /// Waits up to `wait` for a card in `reader` (or any reader; `on_waiting` is called once
    /// if none is there yet) and connects to it on a new worker thread, which records the
    /// APDUs in `trace`. Each later command is bounded by `timeout`.
    pub async fn wait_for_card(
        reader: Option<String>,
        wait: Duration,
        timeout: Duration,
        trace: Option<Trace>,
        on_waiting: impl FnMut() + Send + 'static,
    ) -> Result<(CardHandle, Found), CardIoError> {
        let connect = move || {
            let connected = super::wait_and_connect(reader.as_deref(), wait, on_waiting)?;
            let found = Found {
                reader: connected.reader,
                atr: connected.atr,
            };
            Ok((connected.card, found))
        };
        let (handle, ready) =
            Self::spawn(connect, trace, timeout).map_err(|e| CardIoError::Worker(e.message))?;
        // `wait_and_connect` bounds itself by `wait`; the margin covers a stuck pcscd.
        match tokio::time::timeout(wait + timeout, ready).await {
            Ok(Ok(found)) => found.map(|found| (handle, found)),
            Ok(Err(_)) | Err(_) => Err(CardIoError::NoCard(wait)),
        }
    }

    /// Starts a worker that connects with `connect`; the receiver hears how that went.
    #[allow(clippy::type_complexity)]
    fn spawn(
        connect: impl FnOnce() -> Result<(pcsc::Card, Found), CardIoError> + Send + 'static,
        trace: Option<Trace>,
        timeout: Duration,
    ) -> Result<(CardHandle, oneshot::Receiver<Result<Found, CardIoError>>), CardFailure> {
        let (tx, rx) = std_mpsc::channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("card-worker".into())
            .spawn(move || worker(connect, trace, rx, ready_tx))
            .map_err(|e| CardFailure {
                message: format!("cannot start the card worker: {e}"),
                removed: false,
            })?;
        let handle = CardHandle {
            requests: tx,
            timeout,
        };
        Ok((handle, ready_rx))
    }

    /// Runs `job` in one PC/SC transaction on the worker's thread, which then ends leaving
    /// the card as it is. `Err` when the worker did not answer within the handle's timeout
    /// (or has ended).
    pub async fn transaction<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut TransactionChannel<'_, '_>) -> Result<R, FlowError<CardIoError>>
            + Send
            + 'static,
    ) -> Result<Result<R, FlowError<CardIoError>>, CardFailure> {
        self.job(move |card, trace| {
            let mut ch = TransactionChannel::begin(card, trace).map_err(FlowError::Channel)?;
            let r = job(&mut ch);
            ch.end();
            r
        })
        .await
    }

    /// Runs `job`, which sends VERIFY, in one PC/SC transaction held by a [`VerifiedCard`]:
    /// the card is reset when it ends, unless the card refused the PIN.
    pub async fn verified_transaction<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut TransactionChannel<'_, '_>) -> Result<R, FlowError<CardIoError>>
            + Send
            + 'static,
    ) -> Result<Result<R, FlowError<CardIoError>>, CardFailure> {
        self.job(move |card, trace| {
            let ch = TransactionChannel::begin(card, trace).map_err(FlowError::Channel)?;
            VerifiedCard::run(ch, job)
        })
        .await
    }

    /// Writes a note line to the worker's trace, if it has one.
    pub async fn note(&self, text: String) {
        let _ = self
            .job(move |_, trace| {
                if let Some(t) = trace {
                    t.note(&text);
                }
            })
            .await;
    }

    async fn job<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut pcsc::Card, Option<&mut Trace>) -> R + Send + 'static,
    ) -> Result<R, CardFailure> {
        self.ask(move |reply| {
            Request::Job(Box::new(move |card, trace| {
                let _ = reply.send(Ok(job(card, trace)));
            }))
        })
        .await
    }

    async fn wait<T>(
        &self,
        rx: oneshot::Receiver<Result<T, CardFailure>>,
    ) -> Result<T, CardFailure> {
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(worker_ended()),
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> CardFailure {
        CardFailure {
            message: format!(
                "the card did not answer within {} s; remove the card and place it again",
                self.timeout.as_secs_f64()
            ),
            removed: false,
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, CardFailure> {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(make(tx)).is_err() {
            return Err(worker_ended());
        }
        self.wait(rx).await
    }

    /// Phase A: the certificate and the PIN's retry counter.
    pub async fn read(&self) -> Result<CardReading, CardFailure> {
        self.ask(Request::Read).await
    }

    /// The face photo through the simulator-only path.
    pub async fn face_photo(&self) -> Result<Vec<u8>, CardFailure> {
        self.ask(Request::FacePhoto).await
    }

    /// VERIFY; on success the card stays verified, in an exclusive transaction, until
    /// [`release`](Self::release).
    pub async fn verify(&self, pin: Pin) -> Result<Result<(), VerifyError>, CardFailure> {
        self.ask(|r| Request::Verify(pin, r)).await
    }

    /// COMPUTE DIGITAL SIGNATURE over a DigestInfo; needs a verified card.
    pub async fn sign(&self, digest_info: Vec<u8>) -> Result<Vec<u8>, CardFailure> {
        self.ask(|r| Request::Sign(digest_info, r)).await
    }

    /// Ends a verified transaction with a card reset (nothing if none is open).
    pub async fn release(&self) {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(Request::Release(tx)).is_ok() {
            let _ = tokio::time::timeout(self.timeout, rx).await;
        }
    }
}

fn worker_ended() -> CardFailure {
    CardFailure {
        message: "the card worker ended".into(),
        removed: true,
    }
}

fn worker(
    connect: impl FnOnce() -> Result<(pcsc::Card, Found), CardIoError>,
    mut trace: Option<Trace>,
    requests: std_mpsc::Receiver<Request>,
    ready: oneshot::Sender<Result<Found, CardIoError>>,
) {
    let mut card = match connect() {
        Ok((card, found)) => {
            let _ = ready.send(Ok(found));
            card
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    while let Ok(request) = requests.recv() {
        match request {
            Request::Job(job) => job(&mut card, trace.as_mut()),
            Request::Read(reply) => {
                let _ = reply.send(read_from_unverified(&mut card));
            }
            Request::FacePhoto(reply) => {
                let r = with_transaction(&mut card, |ch| flows::read_simulator_face_photo(ch));
                let _ = reply.send(r);
            }
            Request::Sign(_, reply) => {
                let _ = reply.send(Err(CardFailure {
                    message: "the PIN has not been verified".into(),
                    removed: false,
                }));
            }
            Request::Release(done) => {
                let _ = done.send(());
            }
            Request::Verify(pin, reply) => {
                let ch = match TransactionChannel::begin(&mut card, None) {
                    Ok(ch) => ch,
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                        continue;
                    }
                };
                let verified = VerifiedCard::verify(ch, |ch| {
                    flows::select_jpki(ch).and_then(|()| flows::verify_user_auth_pin(ch, &pin))
                });
                drop(pin);
                match verified {
                    Ok((mut verified, ())) => {
                        if reply.send(Ok(Ok(()))).is_err() {
                            // Nobody heard that the PIN was verified (the caller stopped
                            // waiting, e.g. the card answered after --card-timeout): the card
                            // must not stay verified. Dropping the guard resets it.
                            drop(verified);
                            continue;
                        }
                        let released = verified_session(&mut verified, &requests);
                        // The reset clears the verification before anyone hears it ended.
                        drop(verified);
                        if let Some(done) = released {
                            let _ = done.send(());
                        }
                    }
                    Err(e) => {
                        let _ = reply.send(match e {
                            FlowError::WrongPin { tries_left } => {
                                Ok(Err(VerifyError::Wrong { tries_left }))
                            }
                            FlowError::PinBlocked => Ok(Err(VerifyError::Blocked)),
                            other => Err(other.into()),
                        });
                    }
                }
            }
        }
    }
}

/// Serves requests while the card is verified, until a release (returned, to be answered once
/// the card is reset) or the handle goes.
fn verified_session(
    ch: &mut TransactionChannel<'_, '_>,
    requests: &std_mpsc::Receiver<Request>,
) -> Option<oneshot::Sender<()>> {
    while let Ok(request) = requests.recv() {
        match request {
            Request::Sign(digest_info, reply) => {
                let r = flows::select_jpki(ch)
                    .and_then(|()| flows::sign_with_user_auth_key(ch, &digest_info))
                    .map_err(CardFailure::from);
                let _ = reply.send(r);
            }
            Request::Read(reply) => {
                let _ = reply.send(flows::read_phase(ch).map_err(CardFailure::from));
            }
            Request::FacePhoto(reply) => {
                let r = flows::read_simulator_face_photo(ch).map_err(CardFailure::from);
                let _ = reply.send(r);
            }
            Request::Verify(pin, reply) => {
                // A second PIN on a verified card is refused, never answered "verified"
                // without the card having checked it.
                drop(pin);
                let _ = reply.send(Err(CardFailure {
                    message: "the card is already verified in this session".into(),
                    removed: false,
                }));
            }
            Request::Release(done) => return Some(done),
            // The command line's jobs never meet a kiosk's verified session; dropping the job
            // drops its answer channel, and its caller hears that the worker ended.
            Request::Job(job) => drop(job),
        }
    }
    None
}

/// The read phase on a card this session has not verified. A card that says its PIN is
/// verified already was left so by another client of the same pcscd (a crashed program, a
/// foreign tool): it is reset, so nothing in this session can sign on someone else's
/// verification, and read again for the tries left.
fn read_from_unverified(card: &mut pcsc::Card) -> Result<flows::CardReading, CardFailure> {
    let mut ch = TransactionChannel::begin(card, None)?;
    match flows::read_phase(&mut ch) {
        Ok(reading) if reading.pin_status == flows::PinStatus::Verified => {
            ch.end_with_reset();
            with_transaction(card, |ch| flows::read_phase(ch))
        }
        other => {
            ch.end();
            other.map_err(CardFailure::from)
        }
    }
}

fn with_transaction<T>(
    card: &mut pcsc::Card,
    f: impl FnOnce(&mut TransactionChannel<'_, '_>) -> Result<T, FlowError<CardIoError>>,
) -> Result<T, CardFailure> {
    let mut ch = TransactionChannel::begin(card, None)?;
    let r = f(&mut ch);
    ch.end();
    r.map_err(CardFailure::from)
}
