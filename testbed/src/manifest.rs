//! `world.json`: what a built world contains, for tests and the demo to find their way (which
//! card is revoked, which terminal is suspended, where the files are). Paths are relative to
//! the world directory. The format is documented in `docs/world.md`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The format tag of this version of the manifest.
pub const FORMAT: &str = "onshi-world/1";

/// The manifest's file name inside a world directory.
pub const FILE_NAME: &str = "world.json";

/// The manifest of a world.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorldManifest {
    /// Always [`FORMAT`].
    pub format: String,
    pub seed: u64,
    /// The "now" everything is dated from, RFC 3339 in UTC with whole seconds.
    #[serde(with = "rfc3339")]
    pub now: OffsetDateTime,
    pub cards: Vec<CardEntry>,
    pub terminals: Vec<TerminalEntry>,
    /// How many persons the store holds (card holders included).
    pub persons: usize,
    /// A person to try each case with, in the order of
    /// [`crate::population::CASES`]; a case no person of the world shows is left out.
    #[serde(default)]
    pub examples: Vec<ExampleEntry>,
    /// The institutions' registry (導入医療機関リスト) and whether each is listed (it has a
    /// terminal in operation): `confirm-service institutions` prints the listed ones.
    #[serde(default)]
    pub institutions: Vec<InstitutionEntry>,
    /// Smartphone マイナ保険証 phones issued to some card holders (docs/smartphone.md):
    /// their own certificates from the smartphone CA, served by `virtual-phone`.
    #[serde(default)]
    pub phones: Vec<PhoneEntry>,
}

/// A phone holding a smartphone user-authentication certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneEntry {
    /// `phone-01`, …
    pub name: String,
    /// The phone profile for `virtual-phone`, e.g. `phones/phone-01.json`.
    pub profile: String,
    pub person_id: String,
    /// `android` or `iphone`.
    pub platform: String,
    /// `valid`, `revoked` (on the smartphone CA's CRL) or `expired` (expired yesterday).
    pub kind: String,
    /// Android: the PIN typed at the reader (test data); empty for an iPhone.
    #[serde(default)]
    pub pin: String,
    /// The certificate's serial, lowercase hex (the store's card key spelling).
    pub serial: String,
    pub description: String,
}

/// An institution of the registry, as `confirm-service institutions` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstitutionEntry {
    pub institution_code: String,
    pub name: String,
    /// JIS X 0401 code: the institution code's first two digits.
    pub prefecture: String,
    /// `YYYYMMDD`.
    pub started_on: String,
    /// It has at least one terminal in operation, so the list shows it.
    pub listed: bool,
}

/// A person showing one case, with the insurance-card numbers of a card-less query
/// (保険者番号, 記号, 番号, 枝番 and birth date) and what that query answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExampleEntry {
    /// `validity-1` … `validity-5`, `not-registered`, `medication-history`,
    /// `checkup-results`, `as-of-before-loss`, `certificate-in-grace`, `certificate-expiring`,
    /// `document-kakuninsho`, `document-oshirase`, `document-lapsed`, then the card cases
    /// `face-only-card`, `face-only-registration`, `comprehensive-consent`,
    /// `prescription-choice`, `certificate-past-grace`.
    pub case: String,
    pub description: String,
    pub person_id: String,
    /// The card the person holds (`card-0001`, …), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    /// The phone the example is for (`phone-01`, …): the smartphone cases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    pub insurer_number: String,
    /// Absent for 後期高齢者医療.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    pub number: String,
    /// Two digits; absent for 後期高齢者医療.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// `YYYYMMDD`.
    pub birth_date: String,
    /// The as-of date (`YYYYMMDD`) the query asks for, when not today (the `as-of-before-loss`
    /// example); `validity` is the answer for that day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of_date: Option<String>,
    /// The qualification validity (1–6) a card-less query with these numbers answers.
    pub validity: u8,
    /// 医療扶助 examples: the 公費負担者番号 and 公費受給者番号 the query asks with instead of
    /// the insurance numbers (then `insurer_number` and `number` are empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_expense_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_number: Option<String>,
}

/// What a card is for in tests and demos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CardKind {
    /// Valid certificate, registered holder with exactly one current qualification.
    Valid,
    /// Certificate on the CRL.
    Revoked,
    /// Certificate expired 150 days ago, past the eligibility grace period.
    Expired,
    /// Holder not registered for insurance use.
    Unregistered,
    /// Holder's only qualification lost (validity 2).
    Lost,
    /// Holder with two current qualifications (validity 5).
    Multiple,
    /// A face-only card (顔認証マイナンバーカード): issued without PINs and without the
    /// signature certificate; valid and registered otherwise.
    #[serde(rename = "face-only")]
    FaceOnly,
    /// Certificate expired yesterday, within its eligibility grace period (to the end of the
    /// third month after the month of expiry): confirmed with a warning, no data shared.
    Grace,
    /// Certificate expiring in 30 days: confirmed with the renewal warning.
    Expiring,
    /// A face-only card whose holder is not registered for insurance use: registration
    /// without a PIN (RegisterByReader).
    #[serde(rename = "face-only-unregistered")]
    FaceOnlyUnregistered,
}

impl CardKind {
    /// The spelling in `world.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Unregistered => "unregistered",
            Self::Lost => "lost",
            Self::Multiple => "multiple",
            Self::FaceOnly => "face-only",
            Self::Grace => "grace",
            Self::Expiring => "expiring",
            Self::FaceOnlyUnregistered => "face-only-unregistered",
        }
    }
}

/// One virtual card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardEntry {
    /// `card-0001`, …
    pub name: String,
    /// The card profile, e.g. `cards/card-0001.json`.
    pub profile: String,
    pub person_id: String,
    /// The user-authentication PIN (test data, not a secret); empty for a face-only card.
    pub pin: String,
    pub kind: CardKind,
    /// The certificate's serial number: lowercase hex of its DER content bytes, the same
    /// spelling as the store's card key.
    pub serial: String,
    /// A sentence on what the card is for.
    #[serde(default)]
    pub description: String,
    /// The signature password (EF `001B`; test data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_password: Option<String>,
    /// The holder's My Number as on the card (Kenhojo EF `0001`; synthetic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub my_number: Option<String>,
    /// 照合番号B (Kenkaku EF `0012`; test data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_b: Option<String>,
}

/// How a terminal is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TerminalStatus {
    /// In the store, in operation.
    InOperation,
    /// In the store, suspended.
    Suspended,
    /// Valid network certificate, but not in the store.
    Unregistered,
    /// Certificate from a CA the service does not trust.
    Untrusted,
}

impl TerminalStatus {
    /// The spelling in `world.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InOperation => "in-operation",
            Self::Suspended => "suspended",
            Self::Unregistered => "unregistered",
            Self::Untrusted => "untrusted",
        }
    }
}

/// One reception terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalEntry {
    /// `<医療機関コード>-<terminal id>`, the name its certificate claims.
    pub name: String,
    pub institution_code: String,
    pub terminal_id: String,
    pub status: TerminalStatus,
    /// The folder with `client.pem`, `client.key.pem` and `agent.toml`.
    pub dir: String,
}

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a world manifest: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl WorldManifest {
    /// Loads `<dir>/world.json` and checks its format tag.
    pub fn load(dir: &Path) -> Result<WorldManifest, ManifestError> {
        let path = dir.join(FILE_NAME);
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Read {
            path: path.clone(),
            source,
        })?;
        let manifest: WorldManifest =
            serde_json::from_str(&text).map_err(|e| ManifestError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if manifest.format != FORMAT {
            return Err(ManifestError::Invalid {
                path,
                reason: format!("format is {:?}, expected {FORMAT:?}", manifest.format),
            });
        }
        Ok(manifest)
    }

    /// The first card of a kind.
    pub fn card(&self, kind: CardKind) -> Option<&CardEntry> {
        self.cards.iter().find(|c| c.kind == kind)
    }

    /// The example of a case (`validity-3`, `medication-history`, …).
    pub fn example(&self, case: &str) -> Option<&ExampleEntry> {
        self.examples.iter().find(|e| e.case == case)
    }

    /// The `nth` terminal with a status (0-based).
    pub fn terminal(&self, status: TerminalStatus, nth: usize) -> Option<&TerminalEntry> {
        self.terminals
            .iter()
            .filter(|t| t.status == status)
            .nth(nth)
    }

    /// For each example, the exact `reader-agent numbers` command that shows its case,
    /// run as the world's first in-operation terminal, with `world` as the world directory
    /// the reader will type (e.g. `world`): `(case, description, command)`. A world without
    /// an in-operation terminal has no commands to offer.
    pub fn example_commands(&self, world: &Path) -> Vec<(String, String, String)> {
        let Some(terminal) = self.terminal(TerminalStatus::InOperation, 0) else {
            return Vec::new();
        };
        let config = world.join(&terminal.dir).join("agent.toml");
        self.examples
            .iter()
            .map(|e| {
                let mut command = format!("reader-agent numbers --config {}", config.display());
                if let (Some(p), Some(r)) = (&e.public_expense_number, &e.recipient_number) {
                    command.push_str(&format!(" --public-expense {p} --recipient {r}"));
                } else {
                    command.push_str(&format!(" --insurer {}", e.insurer_number));
                    if let Some(symbol) = &e.symbol {
                        command.push_str(&format!(" --symbol {symbol}"));
                    }
                    command.push_str(&format!(" --number {}", e.number));
                    if let Some(branch) = &e.branch {
                        command.push_str(&format!(" --branch {branch}"));
                    }
                }
                command.push_str(&format!(" --birth-date {}", e.birth_date));
                if let Some(day) = &e.as_of_date {
                    command.push_str(&format!(" --as-of {day}"));
                }
                (e.case.clone(), e.description.clone(), command)
            })
            .collect()
    }
}

/// RFC 3339 (de)serialisation without time's `serde` feature.
mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let text = t.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_the_documented_spellings() {
        let m = WorldManifest {
            format: FORMAT.into(),
            seed: 1,
            now: time::macros::datetime!(2025-11-24 03:00:00 UTC),
            cards: vec![CardEntry {
                name: "card-0001".into(),
                profile: "cards/card-0001.json".into(),
                person_id: "P000000001".into(),
                pin: "1234".into(),
                kind: CardKind::Unregistered,
                serial: "40aa".into(),
                description: String::new(),
                sign_password: None,
                my_number: None,
                number_b: None,
            }],
            terminals: vec![TerminalEntry {
                name: "1340100017-T09".into(),
                institution_code: "1340100017".into(),
                terminal_id: "T09".into(),
                status: TerminalStatus::InOperation,
                dir: "terminals/1340100017-T09".into(),
            }],
            persons: 100,
            examples: vec![ExampleEntry {
                case: "validity-2".into(),
                description: String::new(),
                person_id: "P000000005".into(),
                card: None,
                phone: None,
                insurer_number: "39131015".into(),
                symbol: None,
                number: "10000004".into(),
                branch: None,
                birth_date: "19400101".into(),
                as_of_date: None,
                validity: 2,
                public_expense_number: None,
                recipient_number: None,
            }],
            institutions: vec![InstitutionEntry {
                institution_code: "1340100017".into(),
                name: "みなと薬局".into(),
                prefecture: "13".into(),
                started_on: "20231201".into(),
                listed: true,
            }],
            phones: Vec::new(),
        };
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains(r#""now":"2025-11-24T03:00:00Z""#), "{json}");
        assert!(json.contains(r#""kind":"unregistered""#));
        assert!(json.contains(r#""status":"in-operation""#));
        // 後期高齢者医療: no 記号, no 枝番, no card: the keys are absent.
        assert!(
            !json.contains(r#""symbol""#) && !json.contains(r#""branch""#),
            "{json}"
        );
        assert!(!json.contains(r#""card""#), "{json}");
        let back: WorldManifest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.card(CardKind::Unregistered).unwrap().pin, "1234");
        assert!(back.card(CardKind::Revoked).is_none());
        assert!(back.terminal(TerminalStatus::InOperation, 0).is_some());
        assert!(back.terminal(TerminalStatus::InOperation, 1).is_none());
        let commands = back.example_commands(Path::new("world"));
        assert_eq!(
            commands,
            vec![(
                "validity-2".to_owned(),
                String::new(),
                "reader-agent numbers --config world/terminals/1340100017-T09/agent.toml \
                 --insurer 39131015 --number 10000004 --birth-date 19400101"
                    .to_owned()
            )],
            "後期高齢者医療: no --symbol, no --branch"
        );
        // An example with an as-of date: the command asks for that day.
        let mut as_of = back.clone();
        as_of.examples[0].as_of_date = Some("20251001".into());
        assert!(as_of.example_commands(Path::new("world"))[0]
            .2
            .ends_with(" --birth-date 19400101 --as-of 20251001"));
        assert!(serde_json::to_string(&as_of)
            .unwrap()
            .contains(r#""as_of_date":"20251001""#));
        let mut no_terminal = back.clone();
        no_terminal.terminals[0].status = TerminalStatus::Suspended;
        assert!(no_terminal.example_commands(Path::new("world")).is_empty());
        assert_eq!(TerminalStatus::Untrusted.as_str(), "untrusted");
        assert_eq!(CardKind::Multiple.as_str(), "multiple");
        assert_eq!(
            CardKind::FaceOnlyUnregistered.as_str(),
            "face-only-unregistered"
        );
        for kind in [
            CardKind::Multiple,
            CardKind::FaceOnly,
            CardKind::FaceOnlyUnregistered,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<CardKind>(&json).unwrap(), kind);
        }
        assert_eq!(back.example("validity-2").unwrap().validity, 2);
        assert!(back.example("validity-3").is_none());
        // A manifest written before the examples existed still loads.
        let old = json.replace(&json[json.find(r#","examples""#).unwrap()..], "}");
        let old: WorldManifest = serde_json::from_str(&old).unwrap();
        assert!(old.examples.is_empty());
    }
}
