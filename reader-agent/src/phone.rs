//! A confirmation by smartphone マイナ保険証 (docs/smartphone.md), through onshi's own
//! simulator channel to `virtual-phone` ([`onshi_virtual_card::phone`]): **not the real phone
//! protocol**, which is not public.
//!
//! 1. ask the phone what it presents (platform, certificate, PIN tries left);
//! 2. Android: take the PIN typed at the reader; iPhone: ask the patient to verify on the phone;
//! 3. get a challenge for the platform's purpose (50 Android, 51 iPhone) and build the binding;
//! 4. have the phone sign it: the Android phone checks the PIN (its own retry counter, locked
//!    after three wrong tries), the iPhone its holder's verification;
//! 5. send certificate, challenge, signature, consents and the credential kind.
//!
//! The PIN goes from the [`PinSource`] to the phone's socket and nowhere else: never to the
//! service, a log line or an error.

use std::path::Path;

use onshi_proto::binding::{ConsentBits, Purpose};
use onshi_proto::v1 as pb;
use onshi_virtual_card::phone::{self, PhoneRequest, PhoneResponse, Platform};
use zeroize::Zeroizing;

use crate::client;
use crate::config::AgentConfig;
use crate::confirm::{answered, binding_for, check_certificate_der, refused_by_service, PinSource};
use crate::report::Outcome;

/// The platform's binding purpose and credential kind.
pub fn kind_of(platform: Platform) -> (Purpose, pb::Purpose, pb::CredentialKind) {
    match platform {
        Platform::Android => (
            Purpose::SmartphoneAndroid,
            pb::Purpose::SmartphoneAndroid,
            pb::CredentialKind::SmartphoneAndroid,
        ),
        Platform::Iphone => (
            Purpose::SmartphoneIphone,
            pb::Purpose::SmartphoneIphone,
            pb::CredentialKind::SmartphoneIphone,
        ),
    }
}

/// A refusal the reader reports itself (the phone's, not the service's).
pub fn phone_refusal(code: pb::ResultCode, message: &str, tries_left: Option<u8>) -> Outcome {
    Outcome::Refused {
        result_code: code.as_str_name().to_owned(),
        message: message.to_owned(),
        tries_left,
    }
}

fn unavailable(message: String) -> Outcome {
    phone_refusal(pb::ResultCode::PhoneUnavailable, &message, None)
}

/// What the phone presents.
#[derive(Debug)]
pub struct Presented {
    pub platform: Platform,
    pub certificate: Vec<u8>,
    pub tries_left: Option<u8>,
}

/// Asks the phone on `socket` what it presents.
pub fn presented(socket: &Path) -> Result<Presented, Outcome> {
    match phone::call(socket, &PhoneRequest::Info) {
        Ok(PhoneResponse::Info {
            platform,
            certificate,
            pin_tries_left,
        }) => {
            let certificate = hex::decode(certificate)
                .map_err(|_| unavailable("the phone's certificate is not hex".into()))?;
            check_certificate_der(&certificate).map_err(unavailable)?;
            Ok(Presented {
                platform,
                certificate,
                tries_left: pin_tries_left,
            })
        }
        Ok(other) => Err(unavailable(format!("the phone answered {other:?}"))),
        Err(e) => Err(unavailable(e)),
    }
}

/// What the phone did with one signing request.
#[derive(Debug)]
pub enum Signed {
    Signature(Vec<u8>),
    WrongPin(u8),
    /// The reader's own refusal (locked, refused, unusable phone).
    Refused(Outcome),
}

/// Has the phone on `socket` sign `binding`; `pin` (Android) goes to the phone only.
pub fn sign(socket: &Path, binding: &[u8], pin: Option<Zeroizing<String>>) -> Signed {
    let request = PhoneRequest::Sign {
        binding: hex::encode(binding),
        pin: pin.as_ref().map(|p| p.to_string()),
    };
    let answer = phone::call(socket, &request);
    // The request's copy of the PIN is wiped with it.
    if let PhoneRequest::Sign { pin: Some(p), .. } = request {
        drop(Zeroizing::new(p));
    }
    match answer {
        Ok(PhoneResponse::Signature { signature }) => match hex::decode(signature) {
            Ok(s) => Signed::Signature(s),
            Err(_) => Signed::Refused(unavailable("the phone's signature is not hex".into())),
        },
        Ok(PhoneResponse::WrongPin { pin_tries_left: 0 }) | Ok(PhoneResponse::PinLocked) => {
            Signed::Refused(phone_refusal(
                pb::ResultCode::PhonePinLocked,
                "the phone's PIN is locked (too many wrong PINs): it must be reset at the \
                 municipal office",
                Some(0),
            ))
        }
        Ok(PhoneResponse::WrongPin { pin_tries_left }) => Signed::WrongPin(pin_tries_left),
        Ok(PhoneResponse::Refused) => Signed::Refused(phone_refusal(
            pb::ResultCode::PhoneVerificationRefused,
            "the patient did not pass the verification on the iPhone",
            None,
        )),
        Ok(other) => Signed::Refused(unavailable(format!("the phone answered {other:?}"))),
        Err(e) => Signed::Refused(unavailable(e)),
    }
}

/// Runs one confirmation by the phone on `socket`.
pub async fn run(
    config: &AgentConfig,
    service_override: Option<&str>,
    socket: &Path,
    consents: ConsentBits,
    prescription: pb::PrescriptionIssue,
    mut pins: Box<dyn PinSource>,
    progress: &(dyn Fn(&str) + Sync),
) -> Outcome {
    let mut grpc = match client::connect(config, service_override).await {
        Ok(c) => c,
        Err(message) => return Outcome::Error { message },
    };
    let Presented {
        platform,
        certificate,
        mut tries_left,
    } = match presented(socket) {
        Ok(p) => p,
        Err(o) => return o,
    };
    let (purpose, pb_purpose, kind) = kind_of(platform);
    let mut last_wrong = false;
    loop {
        let pin = match platform {
            Platform::Android => {
                let left = tries_left.unwrap_or(0);
                progress(&format!(
                    "スマートフォン用電子証明書の暗証番号を入力してください (enter the phone's 4-digit PIN at the reader) — tries left: {left}"
                ));
                match pins.next_pin(left) {
                    Ok(Some(p)) => Some(Zeroizing::new(
                        String::from_utf8_lossy(p.digits_for_credential()).into_owned(),
                    )),
                    Ok(None) if last_wrong => {
                        return Outcome::WrongPin {
                            tries_left: left,
                            message: "the PIN was wrong and no other PIN was entered".into(),
                        }
                    }
                    Ok(None) => {
                        return Outcome::Error {
                            message: "no PIN was entered".into(),
                        }
                    }
                    Err(message) => return Outcome::Error { message },
                }
            }
            Platform::Iphone => {
                progress("iPhoneで本人確認をしてください (verify yourself on the iPhone)");
                None
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
        let binding = match binding_for(purpose, &challenge, &certificate, consents) {
            Ok(b) => b,
            Err(o) => return o,
        };
        let signature = match sign(socket, &binding, pin) {
            Signed::Signature(s) => s,
            Signed::WrongPin(n) => {
                progress(&format!("暗証番号が違います (wrong PIN) — tries left: {n}"));
                tries_left = Some(n);
                last_wrong = true;
                continue;
            }
            Signed::Refused(o) => return o,
        };
        let answer = grpc
            .confirm_by_card(pb::ConfirmByCardRequest {
                certificate,
                challenge: challenge.challenge,
                signature,
                consents: Some(consents.into()),
                prescription_issue: prescription as i32,
                credential_kind: kind as i32,
                treatment: 0,
                requery_consent: false,
            })
            .await;
        return answered(answer);
    }
}
