//! Card profiles on disk: what a virtual card is (keys, certificates, PIN) and what it
//! remembers between runs (the PIN retry counter).
//!
//! A profile is two JSON files side by side:
//! - `<name>.json`, written once by the world builder and never by the card: the identity;
//! - `<name>.state.json`, rewritten atomically by the card whenever a counter changes, so a
//!   PIN blocked in one run stays blocked in the next.
//!
//! The format is documented in `docs/world.md`; fields added later are optional so older
//! profiles keep loading.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// The ATR that OpenSC's JPKI driver recognises (jpki-card.md §7).
pub const DEFAULT_ATR: [u8; 9] = [0x3B, 0xE0, 0x00, 0xFF, 0x81, 0x31, 0xFE, 0x45, 0x14];

/// Version tag written in every profile; loading refuses any other.
pub const PROFILE_FORMAT: &str = "onshi-card-profile/1";

/// The user-authentication PIN allows this many consecutive wrong entries.
pub const USER_AUTH_PIN_MAX_TRIES: u8 = 3;

/// A virtual card's identity. Secrets are wiped from memory when the profile is dropped.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct CardProfile {
    /// Always [`PROFILE_FORMAT`].
    pub format: String,
    /// A short name for logs and traces, e.g. `card-0001`. Not a secret, not personal.
    pub name: String,
    /// Answer-to-reset, hex. Defaults to [`DEFAULT_ATR`].
    #[serde(default = "default_atr_hex")]
    pub atr: String,
    /// The user-authentication PIN (EF `0018`): exactly 4 ASCII digits; empty on a
    /// face-only card.
    #[serde(deserialize_with = "secret::string")]
    pub user_auth_pin: String,
    /// A face-only card (顔認証マイナンバーカード): issued without any PIN, and without the
    /// signature certificate. Its user-authentication PIN and Kenhojo PIN answer `6984` to every
    /// VERIFY, the empty one included (docs/virtual-card.md, "Face-only cards").
    #[serde(default, skip_serializing_if = "is_false")]
    pub face_only: bool,
    /// User-authentication certificate (EF `000A`), PEM.
    pub user_auth_certificate: String,
    /// Issuing CA certificate for the user-authentication certificate (EF `000B`), PEM.
    pub user_auth_ca_certificate: String,
    /// User-authentication private key (EF `0017`), PKCS#8 PEM, RSA-2048.
    pub user_auth_private_key: String,
    /// The signature half of JPKI (EFs `0001`, `0002`, `001A`, `001B`). Absent: the card has
    /// no signature certificate and presents the signature password as blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureProfile>,
    /// The Kenhojo application (券面事項入力補助). Absent: the card refuses its AID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kenhojo: Option<KenhojoProfile>,
    /// The Kenkaku application (券面事項確認). Absent: the card refuses its AID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kenkaku: Option<KenkakuProfile>,
    /// Scripted faults, in the syntax of `virtual-card attach --fault` (docs/virtual-card.md),
    /// applied whenever this profile is attached.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<String>,
}

/// The signature certificate, its CA, its key and the signature password.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct SignatureProfile {
    /// Signature certificate (EF `0001`), PEM.
    pub certificate: String,
    /// Its CA certificate (EF `0002`), PEM.
    pub ca_certificate: String,
    /// Signature private key (EF `001A`), PKCS#8 PEM, RSA-2048.
    pub private_key: String,
    /// Signature password (EF `001B`): 6–16 characters of `A–Z0–9`.
    #[serde(deserialize_with = "secret::string")]
    pub password: String,
}

/// What the Kenhojo application holds. Its PIN (EF `0011`) is the user-authentication PIN,
/// as on a real card at issue.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct KenhojoProfile {
    /// 個人番号: 12 ASCII digits, the last a valid check digit.
    pub my_number: String,
    /// Name: family and given name separated by U+3000.
    pub name: String,
    pub address: String,
    /// `YYYYMMDD`.
    pub birth_date: String,
    /// `1` male, `2` female, `9` not applicable.
    pub sex: String,
}

/// What the Kenkaku application holds.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct KenkakuProfile {
    /// PIN EF `0011`: the birth date as era `YYMMDD`, 6 digits.
    #[serde(deserialize_with = "secret::string")]
    pub birth_date_key: String,
    /// PIN EF `0012`, 照合番号B: era `YYMMDD` birth date, expiry year `YYYY`, 4-digit
    /// security code; 14 digits.
    #[serde(deserialize_with = "secret::string")]
    pub number_b: String,
    /// The face photo (DF27 of EF `0002`), hex: a greyscale JPEG 2000 as a JP2 file, as on a
    /// real card (the world builder encodes a small synthetic face with OpenJPEG).
    pub face_photo: String,
    /// The rest of the card face (Kenkaku EF `0002`, docs/virtual-card.md). Profiles written
    /// before these fields existed lack them; such a card is refused with a message to
    /// rebuild the world. DF22: birth date `YYYYMMDD`.
    #[serde(default)]
    pub birth_date: String,
    /// DF23: sex `1`/`2`/`9`.
    #[serde(default)]
    pub sex: String,
    /// DF29: the card's expiry date `YYYYMMDD`.
    #[serde(default)]
    pub expiry_date: String,
    /// DF24, hex: the application's RSA public key as `90` exponent and `91` modulus objects.
    #[serde(default)]
    pub public_key: String,
    /// DF25, hex: the name as printed, a 1-bit greyscale PNG.
    #[serde(default)]
    pub name_image: String,
    /// DF26, hex: the address as printed, a 1-bit greyscale PNG.
    #[serde(default)]
    pub address_image: String,
    /// DF2A, hex: the security code as printed, a 1-bit greyscale PNG.
    #[serde(default)]
    pub security_code_image: String,
    /// DF28, hex: 256 bytes, the issuer's signature over DF22–DF27.
    #[serde(default)]
    pub signature: String,
    /// Simulator only: answer the proprietary READ BINARY `80 B0` in Kenkaku with the face
    /// photo without 照合番号B (docs/virtual-card.md). No real card does this.
    #[serde(default)]
    pub simulator_face_export: bool,
}

/// Deserializers for PINs and passwords: serde's type errors quote the value they found
/// ("invalid type: integer `1234`, expected a string"), which would print a secret written
/// as a number in a profile or state file. These refuse such values without showing them.
mod secret {
    use std::fmt;

    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    enum Found {
        Text(String),
        Null,
        Other,
    }

    struct AnyValue;

    impl<'de> Visitor<'de> for AnyValue {
        type Value = Found;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Found, E> {
            Ok(Found::Text(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Found, E> {
            Ok(Found::Text(v))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Found, E> {
            Ok(Found::Other)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Found, E> {
            Ok(Found::Other)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Found, E> {
            Ok(Found::Other)
        }
        fn visit_i128<E: de::Error>(self, _: i128) -> Result<Found, E> {
            Ok(Found::Other)
        }
        fn visit_u128<E: de::Error>(self, _: u128) -> Result<Found, E> {
            Ok(Found::Other)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Found, E> {
            Ok(Found::Other)
        }
        fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Found, E> {
            Ok(Found::Other)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Found, E> {
            Ok(Found::Null)
        }
        fn visit_none<E: de::Error>(self) -> Result<Found, E> {
            Ok(Found::Null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Found, D::Error> {
            d.deserialize_any(AnyValue)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Found, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Found::Other)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Found::Other)
        }
    }

    fn refused<E: de::Error>() -> E {
        E::custom("a PIN or password must be a JSON string (the value found is not shown)")
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        match d.deserialize_any(AnyValue)? {
            Found::Text(s) => Ok(s),
            Found::Null | Found::Other => Err(refused()),
        }
    }

    pub fn optional_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        match d.deserialize_any(AnyValue)? {
            Found::Text(s) => Ok(Some(s)),
            Found::Null => Ok(None),
            Found::Other => Err(refused()),
        }
    }
}

impl std::fmt::Debug for CardProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardProfile")
            .field("name", &self.name)
            .field("atr", &self.atr)
            .finish_non_exhaustive()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn default_atr_hex() -> String {
    hex::encode_upper(DEFAULT_ATR)
}

/// The mutable part of a card, persisted beside the profile. Fields other than the first are
/// optional (absent: the fresh value), so older state files keep loading.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct CardState {
    /// Tries left on the user-authentication PIN; 0 means blocked.
    pub user_auth_pin_tries_left: u8,
    /// The user-authentication PIN set by CHANGE REFERENCE DATA, replacing the profile's.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "secret::optional_string"
    )]
    pub user_auth_pin: Option<String>,
    /// Tries left on the signature password (5 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_password_tries_left: Option<u8>,
    /// The signature password set by CHANGE REFERENCE DATA.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "secret::optional_string"
    )]
    pub sign_password: Option<String>,
    /// Tries left on the Kenhojo PIN (3 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kenhojo_pin_tries_left: Option<u8>,
    /// The Kenhojo PIN set by CHANGE REFERENCE DATA.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "secret::optional_string"
    )]
    pub kenhojo_pin: Option<String>,
    /// Tries left on Kenkaku's birth-date key (10 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kenkaku_birth_key_tries_left: Option<u8>,
    /// Tries left on 照合番号B (10 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kenkaku_number_b_tries_left: Option<u8>,
    /// Tries left on Kenhojo's 照合番号A, key `0014` (10 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kenhojo_number_a_tries_left: Option<u8>,
    /// Tries left on Kenhojo's 照合番号B, key `0015` (10 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kenhojo_number_b_tries_left: Option<u8>,
    /// Tries left on Kenkaku's 照合番号A, key `0013` (10 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kenkaku_number_a_tries_left: Option<u8>,
}

impl std::fmt::Debug for CardState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardState")
            .field("user_auth_pin_tries_left", &self.user_auth_pin_tries_left)
            .field("user_auth_pin_changed", &self.user_auth_pin.is_some())
            .field("sign_password_tries_left", &self.sign_password_tries_left)
            .field("kenhojo_pin_tries_left", &self.kenhojo_pin_tries_left)
            .finish_non_exhaustive()
    }
}

impl Default for CardState {
    fn default() -> Self {
        Self::with_tries(USER_AUTH_PIN_MAX_TRIES)
    }
}

impl CardState {
    /// A state with this many user-authentication PIN tries left and everything else fresh.
    pub fn with_tries(user_auth_pin_tries_left: u8) -> Self {
        Self {
            user_auth_pin_tries_left,
            user_auth_pin: None,
            sign_password_tries_left: None,
            sign_password: None,
            kenhojo_pin_tries_left: None,
            kenhojo_pin: None,
            kenkaku_birth_key_tries_left: None,
            kenkaku_number_b_tries_left: None,
            kenhojo_number_a_tries_left: None,
            kenhojo_number_b_tries_left: None,
            kenkaku_number_a_tries_left: None,
        }
    }
}

/// Why a profile could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid card profile: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl CardProfile {
    /// Loads and checks a profile (format tag, PIN shape, ATR hex). Key and certificate
    /// contents are checked when the card is built from the profile.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        // The text holds the PINs too: wiped like the profile.
        let text =
            Zeroizing::new(
                fs::read_to_string(path).map_err(|source| ProfileError::Read {
                    path: path.to_owned(),
                    source,
                })?,
            );
        let profile: CardProfile =
            serde_json::from_str(&text).map_err(|e| ProfileError::Invalid {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        profile.check().map_err(|reason| ProfileError::Invalid {
            path: path.to_owned(),
            reason,
        })?;
        Ok(profile)
    }

    fn check(&self) -> Result<(), String> {
        if self.format != PROFILE_FORMAT {
            return Err(format!(
                "format is {:?}, expected {PROFILE_FORMAT:?}",
                self.format
            ));
        }
        if self.face_only {
            if !self.user_auth_pin.is_empty() {
                return Err("a face-only card has no PIN: user_auth_pin must be empty".into());
            }
            if self.signature.is_some() {
                return Err("a face-only card carries no signature certificate".into());
            }
        } else if self.user_auth_pin.len() != 4
            || !self.user_auth_pin.bytes().all(|b| b.is_ascii_digit())
        {
            return Err("user_auth_pin must be exactly 4 ASCII digits".into());
        }
        let atr = self.atr_bytes()?;
        if atr.len() < 2 || atr.len() > 33 {
            return Err(format!("atr must be 2 to 33 bytes, got {}", atr.len()));
        }
        Ok(())
    }

    /// The ATR as bytes.
    pub fn atr_bytes(&self) -> Result<Vec<u8>, String> {
        hex::decode(self.atr.replace([' ', ':'], "")).map_err(|e| format!("atr is not hex: {e}"))
    }

    /// Writes the profile (world builder only; a card never rewrites its identity).
    pub fn save(&self, path: &Path) -> Result<(), ProfileError> {
        let text = Zeroizing::new(serde_json::to_string_pretty(self).map_err(|e| {
            ProfileError::Invalid {
                path: path.to_owned(),
                reason: e.to_string(),
            }
        })?);
        write_atomically(path, text.as_bytes())
    }

    /// Where the state of the profile at `profile_path` lives: `x.json` → `x.state.json`.
    pub fn state_path(profile_path: &Path) -> PathBuf {
        let stem = profile_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "card".into());
        profile_path.with_file_name(format!("{stem}.state.json"))
    }
}

impl CardState {
    /// Loads the state; a missing file is a fresh card.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        match fs::read_to_string(path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                let state: CardState =
                    serde_json::from_str(&text).map_err(|e| ProfileError::Invalid {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    })?;
                if state.user_auth_pin_tries_left > USER_AUTH_PIN_MAX_TRIES {
                    return Err(ProfileError::Invalid {
                        path: path.to_owned(),
                        reason: format!(
                            "user_auth_pin_tries_left {} exceeds {USER_AUTH_PIN_MAX_TRIES}",
                            state.user_auth_pin_tries_left
                        ),
                    });
                }
                Ok(state)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(ProfileError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Persists the state durably (write to a temporary file, fsync, rename), so a crash
    /// never leaves a half-written counter and a blocked PIN stays blocked.
    pub fn save(&self, path: &Path) -> Result<(), ProfileError> {
        let text =
            Zeroizing::new(
                serde_json::to_string(self).map_err(|e| ProfileError::Invalid {
                    path: path.to_owned(),
                    reason: e.to_string(),
                })?,
            );
        write_atomically(path, text.as_bytes())
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ProfileError> {
    let err = |source| ProfileError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp).map_err(err)?;
    file.write_all(bytes).map_err(err)?;
    file.sync_all().map_err(err)?;
    fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the rename itself durable.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

impl fmt::Debug for SignatureProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignatureProfile(..)")
    }
}

impl fmt::Debug for KenhojoProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KenhojoProfile(..)")
    }
}

impl fmt::Debug for KenkakuProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KenkakuProfile(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CardProfile {
        CardProfile {
            format: PROFILE_FORMAT.into(),
            name: "card-0001".into(),
            atr: default_atr_hex(),
            user_auth_pin: "1234".into(),
            user_auth_certificate: String::new(),
            user_auth_ca_certificate: String::new(),
            user_auth_private_key: String::new(),
            signature: None,
            kenhojo: None,
            kenkaku: None,
            face_only: false,
            faults: Vec::new(),
        }
    }

    #[test]
    fn a_face_only_profile_has_no_pin_and_no_signature_half() {
        let mut p = sample();
        p.face_only = true;
        assert!(p.check().unwrap_err().contains("no PIN"));
        p.user_auth_pin = String::new();
        assert!(p.check().is_ok());
        p.signature = Some(SignatureProfile {
            certificate: String::new(),
            ca_certificate: String::new(),
            private_key: String::new(),
            password: "SIGN2024".into(),
        });
        assert!(p.check().unwrap_err().contains("signature"));
        // A card with PINs still needs its four digits; the flag is written only when set.
        let mut p = sample();
        p.user_auth_pin = String::new();
        assert!(p.check().unwrap_err().contains("4 ASCII digits"));
        assert!(!serde_json::to_string(&sample())
            .unwrap()
            .contains("face_only"));
    }

    #[test]
    fn state_path_sits_beside_profile() {
        assert_eq!(
            CardProfile::state_path(Path::new("/w/cards/card-0001.json")),
            PathBuf::from("/w/cards/card-0001.state.json")
        );
    }

    #[test]
    fn rejects_bad_pin_and_format() {
        let mut p = sample();
        assert!(p.check().is_ok());
        p.user_auth_pin = "12a4".into();
        assert!(p.check().unwrap_err().contains("4 ASCII digits"));
        let mut p = sample();
        p.format = "other".into();
        assert!(p.check().is_err());
        let mut p = sample();
        p.atr = "zz".into();
        assert!(p.check().is_err());
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_refused_without_being_echoed() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["user_auth_pin"] = serde_json::json!(9650);
        let err = serde_json::from_value::<CardProfile>(v.clone())
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("9650"), "{err}");
        assert!(err.contains("not shown"), "{err}");
        v["user_auth_pin"] = serde_json::json!("9650");
        assert_eq!(
            serde_json::from_value::<CardProfile>(v)
                .unwrap()
                .user_auth_pin,
            "9650"
        );
        for field in ["user_auth_pin", "sign_password", "kenhojo_pin"] {
            let text = format!(r#"{{"user_auth_pin_tries_left":3,"{field}":48213957}}"#);
            let err = serde_json::from_str::<CardState>(&text)
                .err()
                .unwrap()
                .to_string();
            assert!(!err.contains("48213957"), "{field}: {err}");
            let text = format!(r#"{{"user_auth_pin_tries_left":3,"{field}":null}}"#);
            assert!(serde_json::from_str::<CardState>(&text).is_ok(), "{field}");
        }
    }

    #[test]
    fn state_round_trips_and_missing_is_fresh() {
        let dir = std::env::temp_dir().join(format!("onshi-state-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.state.json");
        let _ = fs::remove_file(&path);
        assert_eq!(CardState::load(&path).unwrap(), CardState::default());
        let blocked = CardState::with_tries(0);
        blocked.save(&path).unwrap();
        assert_eq!(CardState::load(&path).unwrap(), blocked);
        fs::write(&path, r#"{"user_auth_pin_tries_left":9}"#).unwrap();
        assert!(CardState::load(&path).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
