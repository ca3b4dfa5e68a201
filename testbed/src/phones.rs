//! Smartphone マイナ保険証 phones (docs/smartphone.md): a few card holders also carry a phone
//! with a smartphone user-authentication certificate of its own, issued by the smartphone CA
//! (its own CA generation and CRL), its own key, and for Android its own PIN. The phones are
//! world items of their own (`world.json` `phones`, `phones/phone-NN.json` for
//! `virtual-phone`); the cards and their layout are untouched.

use std::path::Path;

use onshi_confirm_service::store::CardKey;
use onshi_virtual_card::phone::{PhoneProfile, Platform, PHONE_PROFILE_FORMAT};
use time::OffsetDateTime;

use crate::keys::{derive_seed, RsaKey};
use crate::manifest::PhoneEntry;
use crate::pki::{self, Authority, CardCertificateSpec, Revocation};
use crate::TestbedError;

/// What a phone is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneKind {
    Valid,
    /// On the smartphone CA's CRL.
    Revoked,
    /// Expired yesterday: a card's certificate that old is still in its grace period, a
    /// phone's is refused (docs/domain.md, assumption).
    Expired,
}

impl PhoneKind {
    fn as_str(self) -> &'static str {
        match self {
            PhoneKind::Valid => "valid",
            PhoneKind::Revoked => "revoked",
            PhoneKind::Expired => "expired",
        }
    }
}

/// One phone of the world: platform, kind, the card (index) whose holder carries it, and
/// what it is for.
#[derive(Debug)]
pub struct PhonePlan {
    pub platform: Platform,
    pub kind: PhoneKind,
    pub card_index: usize,
    pub description: &'static str,
}

/// The phones, in order (`phone-01` first). Their holders are those of the first four cards,
/// which every world has (at least six cards).
pub const PHONES: [PhonePlan; 5] = [
    PhonePlan {
        platform: Platform::Android,
        kind: PhoneKind::Valid,
        card_index: 0,
        description: "Android, valid; the card-0001 holder: PIN typed at the reader (validity 1)",
    },
    PhonePlan {
        platform: Platform::Iphone,
        kind: PhoneKind::Valid,
        card_index: 0,
        description: "iPhone, valid; the card-0001 holder again (a testbed convenience): \
                      verified on the phone (validity 1)",
    },
    PhonePlan {
        platform: Platform::Android,
        kind: PhoneKind::Revoked,
        card_index: 1,
        description: "Android, certificate on the smartphone CA's CRL; the card-0002 holder \
                      (whose card is revoked too)",
    },
    PhonePlan {
        platform: Platform::Iphone,
        kind: PhoneKind::Expired,
        card_index: 2,
        description: "iPhone, certificate expired yesterday (no grace period for a phone); \
                      the card-0003 holder (whose card expired too)",
    },
    PhonePlan {
        platform: Platform::Android,
        kind: PhoneKind::Valid,
        card_index: 3,
        description: "Android, valid; the card-0004 holder, not registered for insurance use",
    },
];

/// The key labels of the phones and the smartphone CA, in the order [`issue`] takes them.
pub fn key_purposes() -> Vec<String> {
    let mut v = vec!["smartphone-ca".to_owned()];
    v.extend((1..=PHONES.len()).map(|i| format!("phone-key/{i}")));
    v
}

/// The name of phone `i` (0-based).
pub fn phone_name(i: usize) -> String {
    format!("phone-{:02}", i + 1)
}

/// A phone's 23-character common name, distinct from every card's (`ONSHI…`).
fn phone_common_name(seed: u64, i: usize) -> String {
    let world = derive_seed(seed, "phone-common-name");
    let digits = u32::from_be_bytes([world[0], world[1], world[2], world[3]]) % 1_000_000;
    format!("PHONE{digits:06}{:012}", i + 1)
}

/// The Android PIN of phone `i`: four digits from the seed.
fn phone_pin(seed: u64, i: usize) -> String {
    let d = derive_seed(seed, &format!("phone-pin/{i}"));
    format!("{:04}", u16::from_be_bytes([d[0], d[1]]) % 10_000)
}

/// What [`issue`] made.
#[derive(Debug)]
pub struct Issued {
    pub entries: Vec<PhoneEntry>,
    /// Certificate → person, written to the store as the authority's link (as for cards).
    pub links: Vec<(CardKey, String)>,
    pub revoked: Vec<Revocation>,
}

/// Issues the phones: certificates under `ca`, profiles under `out/phones/`.
#[allow(clippy::too_many_arguments)]
pub fn issue(
    seed: u64,
    now: OffsetDateTime,
    ca: &Authority,
    keys: &[RsaKey],
    holder_of_card: impl Fn(usize) -> Option<String>,
    out: &Path,
    write: impl Fn(&Path, &[u8]) -> Result<(), TestbedError>,
    write_secret: impl Fn(&Path, &[u8]) -> Result<(), TestbedError>,
) -> Result<Issued, TestbedError> {
    let days = |n: i64| {
        now.checked_add(time::Duration::days(n))
            .ok_or_else(|| TestbedError::Date("adding days".into()))
    };
    let mut issued = Issued {
        entries: Vec::new(),
        links: Vec::new(),
        revoked: Vec::new(),
    };
    for (i, plan) in PHONES.iter().enumerate() {
        let Some(person_id) = holder_of_card(plan.card_index) else {
            continue;
        };
        let key = keys.get(i).ok_or_else(|| TestbedError::KeyGeneration {
            purpose: format!("phone-key/{}", i + 1),
            reason: "missing".into(),
        })?;
        let name = phone_name(i);
        let (not_before, not_after) = match plan.kind {
            PhoneKind::Expired => (days(-400)?, days(-1)?),
            _ => (days(-90)?, days(365 * 3)?),
        };
        let spec = CardCertificateSpec {
            common_name: phone_common_name(seed, i),
            serial: pki::serial_for(seed, &format!("phone/{name}")),
            not_before,
            not_after,
        };
        let cert = pki::phone_certificate(ca, &key.key_pair()?, &spec)?;
        if plan.kind == PhoneKind::Revoked {
            issued.revoked.push(Revocation {
                serial: spec.serial.clone(),
                revoked_at: days(-10)?,
            });
        }
        let pin = match plan.platform {
            Platform::Android => phone_pin(seed, i),
            Platform::Iphone => String::new(),
        };
        let profile = PhoneProfile {
            format: PHONE_PROFILE_FORMAT.to_owned(),
            name: name.clone(),
            platform: plan.platform,
            pin: pin.clone(),
            certificate: cert.pem(),
            ca_certificate: ca.pem(),
            private_key: key.pkcs8_pem().to_owned(),
        };
        let rel = format!("phones/{name}.json");
        let mut json =
            serde_json::to_string_pretty(&profile).map_err(|e| TestbedError::Encode {
                what: "a phone profile",
                reason: e.to_string(),
            })?;
        json.push('\n');
        write_secret(&out.join(&rel), json.as_bytes())?;
        write(
            &out.join(format!("phones/{name}.pem")),
            cert.pem().as_bytes(),
        )?;
        let card_key = CardKey::from_der(cert.der())?;
        issued.entries.push(PhoneEntry {
            name,
            profile: rel,
            person_id: person_id.clone(),
            platform: plan.platform.as_str().to_owned(),
            kind: plan.kind.as_str().to_owned(),
            pin,
            serial: card_key.serial.clone(),
            description: plan.description.to_owned(),
        });
        issued.links.push((card_key, person_id));
    }
    Ok(issued)
}

/// The smartphone cases, in the order `world.json` lists them (after the card cases).
pub const PHONE_CASES: [&str; 2] = ["smartphone-android", "smartphone-iphone"];

/// The world's examples with the smartphone cases added after them: `smartphone-android` and
/// `smartphone-iphone`, the first valid phone of each platform whose holder already has an
/// example (whose insurance-card numbers the case reuses).
pub fn with_examples(
    mut examples: Vec<crate::manifest::ExampleEntry>,
    phones: &[PhoneEntry],
) -> Vec<crate::manifest::ExampleEntry> {
    for (case, platform, description) in [
        (
            PHONE_CASES[0],
            "android",
            "smartphone マイナ保険証 on Android: `virtual-phone` serves the phone, the PIN is \
             typed at the reader (`confirm --phone SOCKET --pin PIN`)",
        ),
        (
            PHONE_CASES[1],
            "iphone",
            "smartphone マイナ保険証 on an iPhone: verified on the phone, no PIN at the reader \
             (`confirm --phone SOCKET`)",
        ),
    ] {
        let found = phones.iter().find_map(|p| {
            (p.platform == platform && p.kind == "valid")
                .then(|| {
                    examples
                        .iter()
                        .find(|e| e.person_id == p.person_id && e.as_of_date.is_none())
                        .map(|e| (p, e.clone()))
                })
                .flatten()
        });
        if let Some((phone, mut e)) = found {
            e.case = case.to_owned();
            e.description = description.to_owned();
            e.phone = Some(phone.name.clone());
            examples.push(e);
        }
    }
    examples
}
