//! The simulated smartphone マイナ保険証 and onshi's own channel to it.
//!
//! **Not the real phone protocol.** How a real phone talks to the general-purpose reader
//! beside the face-recognition reader is not public, so onshi does not invent APDUs for it:
//! the reader agent talks to this simulator over a channel of onshi's own, one JSON object per
//! line over a Unix socket (docs/smartphone.md has the messages). What is modelled is what is
//! public: an Android phone holds its own smartphone certificate and key, unlocked by a PIN
//! the patient types **at the reader**; an iPhone verifies its holder on the phone itself
//! (simulated by an approve / refuse switch) and then signs.
//!
//! The phone signs only an onshi challenge binding of its own platform's purpose (50 Android,
//! 51 iPhone; proto/src/binding.rs), so a terminal cannot have it sign anything else, and an
//! Android signature (PIN-verified) can never pass for an iPhone's or a card's.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The format string of a phone profile.
pub const PHONE_PROFILE_FORMAT: &str = "onshi-phone-profile/1";
/// Wrong PINs an Android phone's smartphone certificate takes before it locks (an
/// assumption: the card's user-authentication PIN's three, docs/domain.md).
pub const PHONE_PIN_MAX_TRIES: u8 = 3;
/// Longest request line the simulator reads.
pub const MAX_LINE: usize = 16 * 1024;
/// The binding's magic and purpose bytes (proto/src/binding.rs).
const BINDING_MAGIC: &[u8; 8] = b"onshi/v1";
/// Purpose byte of an Android smartphone binding.
pub const PURPOSE_ANDROID: u8 = 50;
/// Purpose byte of an iPhone smartphone binding.
pub const PURPOSE_IPHONE: u8 = 51;

/// Which phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// スマホ用電子証明書 on Android: the PIN is typed at the reader.
    Android,
    /// The certificate on an iPhone: verified on the phone (Face ID / Touch ID).
    Iphone,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Android => "android",
            Platform::Iphone => "iphone",
        }
    }

    /// The binding purpose byte this platform signs.
    pub fn purpose(self) -> u8 {
        match self {
            Platform::Android => PURPOSE_ANDROID,
            Platform::Iphone => PURPOSE_IPHONE,
        }
    }
}

/// A phone as the testbed writes it (`phones/phone-01.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhoneProfile {
    pub format: String,
    pub name: String,
    pub platform: Platform,
    /// The smartphone certificate's PIN (Android; test data). Empty for an iPhone.
    #[serde(default)]
    pub pin: String,
    /// The smartphone user-authentication certificate, PEM.
    pub certificate: String,
    /// Its issuing CA (the smartphone CA), PEM; for reference.
    pub ca_certificate: String,
    /// The phone's own key, PKCS#8 PEM.
    pub private_key: String,
}

impl PhoneProfile {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let p: PhoneProfile =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if p.format != PHONE_PROFILE_FORMAT {
            return Err(format!(
                "{}: format is not {PHONE_PROFILE_FORMAT}",
                path.display()
            ));
        }
        Ok(p)
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        let mut json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        json.push('\n');
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// One request line of the simulator channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum PhoneRequest {
    /// What the phone presents: platform, certificate, PIN tries left.
    Info,
    /// Sign `binding` (hex): an Android phone checks `pin` first; an iPhone asks its holder.
    Sign {
        binding: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pin: Option<String>,
    },
}

/// One answer line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum PhoneResponse {
    Info {
        platform: Platform,
        /// The certificate DER, hex.
        certificate: String,
        /// Android: PIN tries left; iPhone: absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pin_tries_left: Option<u8>,
    },
    /// RSASSA-PKCS1-v1_5 SHA-256 over the binding, hex.
    Signature { signature: String },
    /// Android: the PIN was wrong; `pin_tries_left` remain (0: now locked).
    WrongPin { pin_tries_left: u8 },
    /// Android: the PIN is locked; nothing is signed until it is reset at a municipal office
    /// (not modelled).
    PinLocked,
    /// iPhone: the holder refused or failed the verification on the phone.
    Refused,
    /// The request cannot be served: not a binding of this phone's purpose, a malformed line,
    /// an Android request without a PIN.
    Error { reason: String },
}

/// The phone's state: its key, certificate and PIN counter (in memory; a restarted
/// simulator starts with full tries).
pub struct Phone {
    platform: Platform,
    pin: Zeroizing<String>,
    certificate_der: Vec<u8>,
    key: SigningKey<rsa::sha2::Sha256>,
    tries_left: u8,
    /// iPhone: whether the holder passes the verification on the phone.
    approve: bool,
    /// iPhone: how long the holder takes to verify on the phone (simulated; zero by default).
    verify_delay: std::time::Duration,
}

impl std::fmt::Debug for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the PIN or the key.
        f.debug_struct("Phone")
            .field("platform", &self.platform)
            .field("tries_left", &self.tries_left)
            .field("approve", &self.approve)
            .finish_non_exhaustive()
    }
}

impl Phone {
    /// A phone from its profile; `approve` is the iPhone holder's answer to every request.
    pub fn from_profile(profile: &PhoneProfile, approve: bool) -> Result<Self, String> {
        let cert = pem::parse(&profile.certificate).map_err(|e| format!("certificate: {e}"))?;
        let key = RsaPrivateKey::from_pkcs8_pem(&profile.private_key)
            .map_err(|e| format!("private key: {e}"))?;
        if profile.platform == Platform::Android && profile.pin.is_empty() {
            return Err("an Android phone needs its PIN in the profile".into());
        }
        Ok(Self {
            platform: profile.platform,
            pin: Zeroizing::new(profile.pin.clone()),
            certificate_der: cert.contents().to_vec(),
            key: SigningKey::new(key),
            tries_left: PHONE_PIN_MAX_TRIES,
            approve,
            verify_delay: std::time::Duration::ZERO,
        })
    }

    /// An iPhone whose holder takes `delay` to verify (so a reader's wait screen can be seen).
    pub fn with_verify_delay(mut self, delay: std::time::Duration) -> Self {
        self.verify_delay = delay;
        self
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// Answers one request.
    pub fn handle(&mut self, request: &PhoneRequest) -> PhoneResponse {
        match request {
            PhoneRequest::Info => PhoneResponse::Info {
                platform: self.platform,
                certificate: hex::encode(&self.certificate_der),
                pin_tries_left: (self.platform == Platform::Android).then_some(self.tries_left),
            },
            PhoneRequest::Sign { binding, pin } => {
                let Ok(binding) = hex::decode(binding) else {
                    return error("the binding is not hex");
                };
                if binding.len() < 9
                    || &binding[..8] != BINDING_MAGIC
                    || binding[8] != self.platform.purpose()
                {
                    return error(&format!(
                        "this phone signs only onshi bindings of purpose {}",
                        self.platform.purpose()
                    ));
                }
                match self.platform {
                    Platform::Android => {
                        let Some(pin) = pin else {
                            return error("an Android phone needs the PIN typed at the reader");
                        };
                        if self.tries_left == 0 {
                            return PhoneResponse::PinLocked;
                        }
                        if !constant_time_eq(pin.as_bytes(), self.pin.as_bytes()) {
                            self.tries_left -= 1;
                            return PhoneResponse::WrongPin {
                                pin_tries_left: self.tries_left,
                            };
                        }
                        self.tries_left = PHONE_PIN_MAX_TRIES;
                    }
                    Platform::Iphone => {
                        std::thread::sleep(self.verify_delay);
                        if !self.approve {
                            return PhoneResponse::Refused;
                        }
                    }
                }
                let signature = self.key.sign(&binding);
                PhoneResponse::Signature {
                    signature: hex::encode(signature.to_bytes()),
                }
            }
        }
    }
}

fn error(reason: &str) -> PhoneResponse {
    PhoneResponse::Error {
        reason: reason.to_owned(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves `phone` on `socket` until the process ends: one request line, one answer line,
/// any number per connection. Requests are logged by kind only (never a PIN).
pub fn serve(phone: Phone, listener: UnixListener) {
    let phone = Arc::new(Mutex::new(phone));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let phone = Arc::clone(&phone);
        std::thread::spawn(move || {
            let _ = serve_connection(&phone, stream);
        });
    }
}

fn serve_connection(phone: &Mutex<Phone>, stream: UnixStream) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = Zeroizing::new(String::new());
        let n = std::io::Read::take(&mut reader, MAX_LINE as u64).read_line(&mut line)?;
        if n == 0 {
            return Ok(());
        }
        let response = match serde_json::from_str::<PhoneRequest>(line.trim_end()) {
            Ok(request) => {
                tracing::info!(
                    op = match request {
                        PhoneRequest::Info => "info",
                        PhoneRequest::Sign { .. } => "sign",
                    },
                    "phone request"
                );
                match phone.lock() {
                    Ok(mut p) => p.handle(&request),
                    Err(_) => error("the phone is broken"),
                }
            }
            Err(_) => error("not a request of the onshi phone simulator channel"),
        };
        let mut out = serde_json::to_string(&response).unwrap_or_default();
        out.push('\n');
        writer.write_all(out.as_bytes())?;
    }
}

/// The reader side of the channel: one request, one answer.
pub fn call(socket: &Path, request: &PhoneRequest) -> Result<PhoneResponse, String> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| format!("no phone on {}: {e}", socket.display()))?;
    let timeout = Some(std::time::Duration::from_secs(30));
    stream
        .set_read_timeout(timeout)
        .map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut line = Zeroizing::new(serde_json::to_string(request).map_err(|e| e.to_string())?);
    line.push('\n');
    writer
        .write_all(line.as_bytes())
        .map_err(|e| format!("phone channel: {e}"))?;
    let mut answer = String::new();
    std::io::Read::take(BufReader::new(stream), MAX_LINE as u64)
        .read_line(&mut answer)
        .map_err(|e| format!("phone channel: {e}"))?;
    serde_json::from_str(answer.trim_end()).map_err(|e| format!("phone answered nonsense: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;

    fn phone(platform: Platform, approve: bool) -> Phone {
        let key = crate::test_support::test_key().clone();
        Phone {
            platform,
            pin: Zeroizing::new("4321".into()),
            certificate_der: b"not a real certificate".to_vec(),
            key: SigningKey::new(key),
            tries_left: PHONE_PIN_MAX_TRIES,
            approve,
            verify_delay: std::time::Duration::ZERO,
        }
    }

    fn binding(purpose: u8) -> String {
        let mut b = BINDING_MAGIC.to_vec();
        b.push(purpose);
        b.extend_from_slice(&[0x11; 80]);
        hex::encode(b)
    }

    fn sign(p: &mut Phone, purpose: u8, pin: Option<&str>) -> PhoneResponse {
        p.handle(&PhoneRequest::Sign {
            binding: binding(purpose),
            pin: pin.map(str::to_owned),
        })
    }

    #[test]
    fn android_signs_with_the_right_pin_and_the_signature_verifies() {
        let mut p = phone(Platform::Android, true);
        let PhoneResponse::Signature { signature } = sign(&mut p, 50, Some("4321")) else {
            panic!("no signature");
        };
        let key =
            VerifyingKey::<rsa::sha2::Sha256>::new(crate::test_support::test_key().to_public_key());
        let sig = Signature::try_from(hex::decode(signature).unwrap().as_slice()).unwrap();
        key.verify(&hex::decode(binding(50)).unwrap(), &sig)
            .unwrap();
    }

    #[test]
    fn android_counts_wrong_pins_locks_after_three_and_a_right_pin_resets() {
        let mut p = phone(Platform::Android, true);
        assert_eq!(
            sign(&mut p, 50, Some("0000")),
            PhoneResponse::WrongPin { pin_tries_left: 2 }
        );
        assert!(matches!(
            sign(&mut p, 50, Some("4321")),
            PhoneResponse::Signature { .. }
        ));
        for left in [2, 1, 0] {
            assert_eq!(
                sign(&mut p, 50, Some("0000")),
                PhoneResponse::WrongPin {
                    pin_tries_left: left
                }
            );
        }
        // Locked: even the right PIN signs nothing.
        assert_eq!(sign(&mut p, 50, Some("4321")), PhoneResponse::PinLocked);
        assert!(matches!(
            p.handle(&PhoneRequest::Info),
            PhoneResponse::Info {
                pin_tries_left: Some(0),
                ..
            }
        ));
        // No PIN at all is an error, not a try.
        assert!(matches!(
            sign(&mut p, 50, None),
            PhoneResponse::Error { .. }
        ));
    }

    #[test]
    fn iphone_signs_when_its_holder_approves_and_refuses_otherwise() {
        let mut yes = phone(Platform::Iphone, true);
        assert!(matches!(
            sign(&mut yes, 51, None),
            PhoneResponse::Signature { .. }
        ));
        let mut no = phone(Platform::Iphone, false);
        assert_eq!(sign(&mut no, 51, None), PhoneResponse::Refused);
    }

    #[test]
    fn a_phone_signs_only_its_own_purpose() {
        let mut a = phone(Platform::Android, true);
        let mut i = phone(Platform::Iphone, true);
        for purpose in [1u8, 2, 3, 51] {
            assert!(matches!(
                sign(&mut a, purpose, Some("4321")),
                PhoneResponse::Error { .. }
            ));
        }
        for purpose in [1u8, 50] {
            assert!(matches!(
                sign(&mut i, purpose, None),
                PhoneResponse::Error { .. }
            ));
        }
        // A wrong purpose costs no PIN try.
        assert!(matches!(
            a.handle(&PhoneRequest::Info),
            PhoneResponse::Info {
                pin_tries_left: Some(3),
                ..
            }
        ));
    }

    #[test]
    fn the_channel_carries_requests_and_answers_over_a_unix_socket() {
        let dir = std::env::temp_dir().join(format!("onshi-phone-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("phone.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).unwrap();
        let p = phone(Platform::Android, true);
        std::thread::spawn(move || serve(p, listener));
        let info = call(&socket, &PhoneRequest::Info).unwrap();
        assert!(matches!(
            info,
            PhoneResponse::Info {
                platform: Platform::Android,
                ..
            }
        ));
        assert_eq!(
            call(
                &socket,
                &PhoneRequest::Sign {
                    binding: binding(50),
                    pin: Some("1111".into())
                }
            )
            .unwrap(),
            PhoneResponse::WrongPin { pin_tries_left: 2 }
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
