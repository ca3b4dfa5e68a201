//! The PIN-mode confirmation as the terminal runs it:
//!
//! 1. wait for a card (PC/SC status change, no polling) and connect;
//! 2. phase A, one transaction: read the user-authentication certificate and the PIN's retry
//!    counter, and show the patient the tries left;
//! 3. take the PIN (prompt or stdin), get a challenge bound to this terminal;
//! 4. phase B, one transaction: VERIFY and COMPUTE DIGITAL SIGNATURE over the challenge
//!    binding's DigestInfo;
//! 5. send certificate, challenge, signature and consents; report the answer for staff.
//!
//! **Where the PIN lives.** It is read into an `onshi_jpki::Pin` (zeroized on drop) by a
//! [`PinSource`], moved into the phase-B closure, turned into the VERIFY APDU (a sensitive
//! command whose buffers are zeroized and whose trace is redacted), and dropped when phase B
//! ends. It is never part of a gRPC message, a log line or an error: the only path out of this
//! process is the PC/SC transmit to the card.

use std::time::{Duration, Instant};

use onshi_jpki::constants::sha256_digest_info;
use onshi_jpki::flows::{self, CardReading, FlowError, PinStatus};
use onshi_jpki::Pin;
use onshi_proto::binding::{binding_sha256, ChallengeBinding, ConsentBits, Purpose};
use onshi_proto::v1 as pb;

use crate::client;
use crate::config::AgentConfig;
use crate::pcsc_card::{self, CardIoError, ConnectedCard, Trace, TransactionChannel, VerifiedCard};
use crate::report::{Outcome, StaffResult};

/// Where PINs come from. Implementations must not keep copies.
pub trait PinSource: Send {
    /// The next PIN the patient typed, or `None` when there is no more input.
    fn next_pin(&mut self, tries_left: u8) -> Result<Option<Pin>, String>;
}

/// Options of one confirmation run.
#[derive(Debug, Clone)]
pub struct ConfirmOptions {
    pub reader: Option<String>,
    pub wait: Duration,
    /// Bound on each card phase once the card is connected: pcscd and vpcd may wait far
    /// longer (or forever) for a mute card, the agent never does.
    pub card_timeout: Duration,
    pub consents: ConsentBits,
    /// The patient's choice of prescription (unspecified: not asked).
    pub prescription: pb::PrescriptionIssue,
    pub service_override: Option<String>,
    /// What the card's signature is for.
    pub action: Action,
    /// The treatment the confirmation is for (unspecified: 外来).
    pub treatment: pb::MedicalTreatment,
    /// 居宅同意取得型 first visit at a mobile device (`confirm --mobile`): the card signs the
    /// binding with purpose 60, which commits the patient's consent to later re-queries by this
    /// institution for the treatment (home visit or online care).
    pub mobile: bool,
}

impl ConfirmOptions {
    /// The binding's purpose of this confirmation or registration.
    fn purpose(&self) -> (pb::Purpose, Purpose) {
        match (self.action, self.mobile) {
            (Action::Register, _) => (pb::Purpose::Register, Purpose::Register),
            (Action::Confirm, false) => (pb::Purpose::Confirm, Purpose::Confirm),
            (Action::Confirm, true) => (pb::Purpose::HomeCareConfirm, Purpose::HomeCareConfirm),
        }
    }
}

/// What the PIN-mode exchange does at the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Confirm eligibility (ConfirmByCard, PURPOSE_CONFIRM).
    Confirm,
    /// Register the card's holder for insurance use (RegisterForInsurance, PURPOSE_REGISTER,
    /// no consents): 健康保険証利用申込み.
    Register,
}

type CardFlowError = FlowError<CardIoError>;

fn pin_exhausted(message: &str) -> Outcome {
    Outcome::Refused {
        result_code: pb::ResultCode::PinAttemptsExhausted
            .as_str_name()
            .to_owned(),
        message: message.to_owned(),
        tries_left: Some(0),
    }
}

/// The ATR of a My Number card (jpki-card.md §7).
pub const MY_NUMBER_ATR: [u8; 9] = [0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14];

/// A card failure, with the phase it happened in.
fn card_error(e: &CardFlowError, phase: &str, atr: &[u8]) -> Outcome {
    Outcome::Error {
        message: match e {
            FlowError::Channel(io) => format!("{phase}: {io}"),
            FlowError::NotFound { what } if *what == "JPKI application" || atr != MY_NUMBER_ATR => {
                format!(
                    "{phase}: this is not a My Number card: {e} (ATR {})",
                    hex_spaced(atr)
                )
            }
            other => format!("{phase}: the card did not behave as a My Number card: {other}"),
        },
    }
}

fn card_timeout(phase: &str, limit: Duration) -> Outcome {
    Outcome::Error {
        message: format!(
            "{phase}: the card did not answer within {} s (a mute card or a stuck reader); remove the card and place it again",
            limit.as_secs_f64()
        ),
    }
}

fn hex_spaced(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks that the certificate read from the card is one DER X.509 certificate, so a broken
/// card is reported as such rather than as a refusal by the service.
pub fn check_certificate_der(der: &[u8]) -> Result<(), String> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    match X509Certificate::from_der(der) {
        Ok(([], _)) => Ok(()),
        Ok((rest, _)) => Err(format!(
            "the card's certificate is not valid DER: {} bytes follow it",
            rest.len()
        )),
        Err(e) => Err(format!("the card's certificate is not valid DER: {e}")),
    }
}

/// What staff are told when PIN mode meets a card without a PIN.
fn pin_not_set_message(action: Action) -> &'static str {
    match action {
        Action::Confirm => {
            "this card has no PIN (a face-only card, 顔認証マイナンバーカード): no PIN was \
             asked for; confirm by face or a staff member's visual check (`confirm --face` or \
             `--visual-check --staff-id ID`, or at the kiosk)"
        }
        Action::Register => {
            "this card has no PIN (a face-only card, 顔認証マイナンバーカード): no PIN was \
             asked for; register it by face or a staff member's visual check (`register \
             --face` or `--visual-check --staff-id ID`, or at the kiosk)"
        }
    }
}

const PHASE_READ: &str = "reading the card";
const PHASE_SIGN: &str = "verifying the PIN and signing";

/// Runs one confirmation. Progress for the patient goes to `progress` (stderr in the CLI).
pub async fn run(
    config: &AgentConfig,
    opts: &ConfirmOptions,
    mut pins: Box<dyn PinSource>,
    trace: Option<Trace>,
    progress: &(dyn Fn(&str) + Sync),
) -> Outcome {
    // Connect first: if the service is unreachable, say so before the patient types a PIN.
    let mut grpc = match client::connect(config, opts.service_override.as_deref()).await {
        Ok(c) => c,
        Err(message) => return Outcome::Error { message },
    };

    // Phase A.
    let mut timing = Timing::default();
    let reader = opts.reader.clone();
    let wait = opts.wait;
    let limit = opts.card_timeout;
    // The connection (waiting for a card) has its own bound, `wait`; the APDU exchange is
    // bounded by `card_timeout` from the moment a card is connected.
    let (connected_tx, connected_rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
    let phase_a = tokio::task::spawn_blocking(move || {
        let mut trace = trace;
        let waiting = || eprintln!("カードを置いてください (place the card on the reader)");
        let mut connected = pcsc_card::wait_and_connect(reader.as_deref(), wait, waiting)
            .map_err(FlowError::Channel)?;
        let _ = connected_tx.send(connected.atr.clone());
        if let Some(t) = trace.as_mut() {
            t.note(&format!("atr {}", hex_spaced(&connected.atr)));
            t.note("phase A: read");
        }
        let read_start = Instant::now();
        let reading = {
            let mut ch = TransactionChannel::begin(&mut connected.card, trace.as_mut())
                .map_err(FlowError::Channel)?;
            let r = flows::read_phase(&mut ch);
            ch.end();
            r
        }?;
        Ok::<(ConnectedCard, CardReading, Option<Trace>, Duration), CardFlowError>((
            connected,
            reading,
            trace,
            read_start.elapsed(),
        ))
    });
    let mut phase_a = phase_a;
    let atr = match connection_signal(connected_rx, &mut phase_a).await {
        Started::Connected(atr) => atr,
        // Finished (or failed) without ever signalling a connection: a connect error.
        Started::Ended(done) => {
            return match done {
                Ok(Err(e)) => card_error(&e, PHASE_READ, &[]),
                Ok(Ok(_)) => Outcome::Error {
                    message: "card worker ended early".into(),
                },
                Err(e) => Outcome::Error {
                    message: format!("card worker failed: {e}"),
                },
            };
        }
    };
    let atr = atr.unwrap_or_default();
    if !atr.is_empty() && atr != MY_NUMBER_ATR {
        progress(&format!(
            "note: the card's ATR {} is not a My Number card's ({}); trying the JPKI application anyway",
            hex_spaced(&atr),
            hex_spaced(&MY_NUMBER_ATR)
        ));
    }
    let phase_a = match tokio::time::timeout(limit, phase_a).await {
        Ok(r) => r,
        Err(_) => return card_timeout(PHASE_READ, limit),
    };
    let (mut connected, reading, mut trace) = match phase_a {
        Ok(Ok((c, r, t, took))) => {
            timing.read = took;
            (c, r, t)
        }
        Ok(Err(e)) => return card_error(&e, PHASE_READ, &atr),
        Err(e) => {
            return Outcome::Error {
                message: format!("card worker failed: {e}"),
            }
        }
    };
    progress(&format!(
        "card read in reader {:?}: certificate {} bytes",
        connected.reader,
        reading.certificate.len()
    ));
    let mut tries_left = match reading.pin_status {
        PinStatus::Blocked => return pin_exhausted(
            "the card's PIN is locked (3 wrong entries); only the municipal office can unlock it",
        ),
        PinStatus::NotSet => {
            return Outcome::Refused {
                result_code: pb::ResultCode::PinNotSet.as_str_name().to_owned(),
                message: pin_not_set_message(opts.action).to_owned(),
                tries_left: None,
            }
        }
        PinStatus::TriesLeft(n) => n,
        PinStatus::Verified => 3,
    };
    let certificate = reading.certificate;
    if let Err(message) = check_certificate_der(&certificate) {
        return Outcome::Error { message };
    }
    let mut last_wrong = false;

    loop {
        progress(&format!(
            "暗証番号を入力してください (enter the 4-digit PIN) — tries left: {tries_left}"
        ));
        let pin = match pins.next_pin(tries_left) {
            Ok(Some(p)) => p,
            Ok(None) if last_wrong => {
                return Outcome::WrongPin {
                    tries_left,
                    message: "the PIN was wrong and no other PIN was entered".into(),
                }
            }
            Ok(None) => {
                return Outcome::Error {
                    message: "no PIN was entered".into(),
                }
            }
            Err(message) => return Outcome::Error { message },
        };

        let step = Instant::now();
        let challenge = match grpc
            .issue_challenge(pb::IssueChallengeRequest {
                purpose: opts.purpose().0 as i32,
            })
            .await
        {
            Ok(r) => r.into_inner(),
            Err(status) => return refused_by_service(&status),
        };
        let purpose = opts.purpose().1;
        let consents = match opts.action {
            Action::Confirm => opts.consents,
            Action::Register => ConsentBits::default(),
        };
        let binding = match binding_for(purpose, &challenge, &certificate, consents) {
            Ok(b) => b,
            Err(o) => return o,
        };
        let digest_info = sha256_digest_info(&binding_sha256(&binding));
        timing.challenge = step.elapsed();
        let step = Instant::now();

        // Phase B: the PIN moves into this closure and is dropped (zeroized) inside it.
        if let Some(t) = trace.as_mut() {
            t.note("phase B: verify and sign");
        }
        let phase_b = tokio::task::spawn_blocking(move || {
            // A verified PIN never outlives this phase: the guard resets the card.
            let result = match TransactionChannel::begin(&mut connected.card, trace.as_mut()) {
                Ok(ch) => {
                    VerifiedCard::run(ch, |ch| flows::authenticate_phase(ch, &pin, &digest_info))
                }
                Err(e) => Err(FlowError::Channel(e)),
            };
            drop(pin);
            (connected, trace, result)
        });
        let phase_b = match tokio::time::timeout(limit, phase_b).await {
            Ok(r) => r,
            Err(_) => return card_timeout(PHASE_SIGN, limit),
        };
        let signature = match phase_b {
            Ok((c, t, result)) => {
                connected = c;
                trace = t;
                match result {
                    Ok(sig) => sig,
                    Err(FlowError::WrongPin { tries_left: 0 }) | Err(FlowError::PinBlocked) => {
                        return pin_exhausted(
                            "wrong PIN: the card's PIN is now locked; only the municipal office can unlock it",
                        )
                    }
                    Err(FlowError::WrongPin { tries_left: n }) => {
                        progress(&format!(
                            "暗証番号が違います (wrong PIN) — tries left: {n}"
                        ));
                        tries_left = n;
                        last_wrong = true;
                        continue;
                    }
                    Err(e) => return card_error(&e, PHASE_SIGN, &atr),
                }
            }
            Err(e) => {
                return Outcome::Error {
                    message: format!("card worker failed: {e}"),
                }
            }
        };
        drop(trace);
        timing.sign = step.elapsed();

        if opts.action == Action::Register {
            let step = Instant::now();
            let answer = grpc
                .register_for_insurance(pb::RegisterRequest {
                    certificate,
                    challenge: challenge.challenge,
                    signature,
                })
                .await;
            timing.confirm = step.elapsed();
            progress(&timing.summary());
            return match answer {
                Ok(r) => {
                    let r = r.into_inner();
                    Outcome::Registered {
                        result_code: r.result_code().as_str_name().to_owned(),
                        newly_registered: r.newly_registered,
                        confirmation_id: r.confirmation_id,
                    }
                }
                Err(status) => refused_by_service(&status),
            };
        }
        let request = pb::ConfirmByCardRequest {
            certificate,
            challenge: challenge.challenge,
            signature,
            consents: Some(opts.consents.into()),
            prescription_issue: opts.prescription as i32,
            treatment: opts.treatment as i32,
            requery_consent: opts.mobile,
            credential_kind: pb::CredentialKind::Card as i32,
        };
        let step = Instant::now();
        let answer = grpc.confirm_by_card(request).await;
        timing.confirm = step.elapsed();
        progress(&timing.summary());
        return answered(answer);
    }
}

/// The outcome of a confirmation call as the service answered it.
pub fn answered(answer: Result<tonic::Response<pb::ConfirmationResult>, tonic::Status>) -> Outcome {
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

/// The binding the credential signs for a challenge, or the outcome of an unusable one.
pub fn binding_for(
    purpose: Purpose,
    challenge: &pb::IssueChallengeResponse,
    certificate: &[u8],
    consents: ConsentBits,
) -> Result<Vec<u8>, Outcome> {
    ChallengeBinding {
        purpose,
        challenge: &challenge.challenge,
        terminal_name: &challenge.terminal_name,
        certificate_der: certificate,
        consents,
    }
    .encode()
    .map_err(|e| Outcome::Error {
        message: format!("the service sent an unusable challenge: {e}"),
    })
}

/// How phase A's worker started: it connected to a card (its ATR, if it could be sent), or
/// it ended without connecting.
enum Started<T> {
    Connected(Option<Vec<u8>>),
    Ended(Result<T, tokio::task::JoinError>),
}

/// Waits until phase A's worker has connected to a card or has ended.
async fn connection_signal<T>(
    connected: tokio::sync::oneshot::Receiver<Vec<u8>>,
    worker: &mut tokio::task::JoinHandle<T>,
) -> Started<T> {
    tokio::select! {
        // Biased: the worker signals the connection before it reads, so when this task runs
        // late (a loaded machine) both branches can be ready at once; a worker that connected
        // must then still count as connected, its result taken later as the read.
        biased;
        atr = connected => Started::Connected(atr.ok()),
        done = worker => Started::Ended(done),
    }
}

/// Where a confirmation's time went (the PIN typing excluded), for the performance target
/// "PIN-mode confirmation through pcscd under 50 ms".
#[derive(Debug, Default)]
struct Timing {
    read: Duration,
    challenge: Duration,
    sign: Duration,
    confirm: Duration,
}

impl Timing {
    fn summary(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "timing: {:.1} ms (card read {:.1} ms, challenge {:.1} ms, VERIFY+SIGN {:.1} ms, confirmation {:.1} ms)",
            ms(self.read + self.challenge + self.sign + self.confirm),
            ms(self.read),
            ms(self.challenge),
            ms(self.sign),
            ms(self.confirm)
        )
    }
}

pub fn refused_by_service(status: &tonic::Status) -> Outcome {
    match client::refusal_code(status) {
        Some(code) => Outcome::Refused {
            result_code: code.as_str_name().to_owned(),
            message: status.message().to_owned(),
            tries_left: None,
        },
        None => Outcome::Error {
            message: format!(
                "the confirmation service failed ({:?}): {}{}",
                status.code(),
                client::describe_status(status),
                handshake_hint(status.code())
            ),
        },
    }
}

/// The service answers a terminal whose client certificate it does not accept with nothing
/// but a closed connection (by design: no details to an unauthenticated peer), so say what
/// the usual cause is.
fn handshake_hint(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Cancelled | tonic::Code::Unavailable | tonic::Code::Unknown => {
            " (if the connection was closed during the first call, the service may not accept \
             this terminal's client certificate: check that it was issued by the network CA)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_connection_without_a_code_hints_at_the_client_certificate() {
        let Outcome::Error { message } =
            refused_by_service(&tonic::Status::cancelled("connection closed"))
        else {
            panic!("a status without a result code is an error outcome");
        };
        assert!(message.contains("client certificate"), "{message}");
        let Outcome::Error { message } = refused_by_service(&tonic::Status::internal("boom"))
        else {
            panic!("a status without a result code is an error outcome");
        };
        assert!(!message.contains("client certificate"), "{message}");
    }

    #[test]
    fn a_worker_that_connected_and_already_finished_counts_as_connected() {
        // The loaded-machine case: by the time the async side looks, the worker has both
        // signalled the connection and finished reading. Unbiased, this was a coin toss
        // ("card worker ended early" for a card read without fault).
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for _ in 0..64 {
                let (tx, rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
                let mut worker = tokio::task::spawn_blocking(move || {
                    let _ = tx.send(vec![0x3B]);
                    42
                });
                while !worker.is_finished() {
                    tokio::task::yield_now().await;
                }
                match connection_signal(rx, &mut worker).await {
                    Started::Connected(atr) => assert_eq!(atr, Some(vec![0x3B])),
                    Started::Ended(_) => panic!("a connected worker was taken as ended"),
                }
                assert_eq!(worker.await.unwrap(), 42);
            }
            // A worker that ends without connecting is seen as ended.
            let (tx, rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
            let mut worker = tokio::task::spawn_blocking(move || drop(tx));
            assert!(matches!(
                connection_signal(rx, &mut worker).await,
                Started::Connected(None) | Started::Ended(Ok(()))
            ));
        });
    }

    #[test]
    fn certificate_der_check_names_the_problem() {
        let bad = [0x30, 0x82, 0x00, 0x04, 0xFF, 0x5A, 0xFF, 0x5A];
        let e = check_certificate_der(&bad).unwrap_err();
        assert!(
            e.starts_with("the card's certificate is not valid DER"),
            "{e}"
        );
        assert!(check_certificate_der(&[]).is_err());
    }
}
