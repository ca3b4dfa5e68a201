//! `build_world`: everything in a world directory, in dependency order (keys, population,
//! issuing authority and cards, CRL, network PKI, store, configuration files, manifest).
//! The layout is documented in `docs/world.md`.
//!
//! Deterministic: every random choice comes from a generator seeded by the world seed and a
//! purpose label, every date is relative to `now`, and nothing reads the clock, so the same
//! seed and `now` give byte-identical files. The one exception is the terminals' reader device
//! keys (`device-key.p8`, and their public keys in the store's `terminals` table): ring
//! generates ECDSA keys from the system's generator only ([`crate::keys::DeviceKey`]).

use std::fs;
use std::path::{Path, PathBuf};

use onshi_confirm_service::eligibility::{birthday_in, InstitutionCode, Person};
use onshi_confirm_service::institutions::Institution;
use onshi_confirm_service::store::{self, CardKey, SqliteStore, Store, Terminal};
use onshi_virtual_card::profile::{
    CardProfile, KenhojoProfile, KenkakuProfile, SignatureProfile, DEFAULT_ATR, PROFILE_FORMAT,
};
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::card_data;
use crate::config::{
    self, AgentConfig, ServiceConfig, ServiceSmartphoneTrust, ServiceTls, ServiceValidation,
};
use crate::keys::{derive_seed, DeviceKey, RsaKey};
use crate::manifest::{self, CardEntry, CardKind, TerminalEntry, TerminalStatus, WorldManifest};
use crate::pki::{self, CardCertificateSpec, LeafSpec, Revocation};
use crate::population::{self, CardPlan, Examples, Population, PopulationSpec, Totals};
use crate::progress::{thousands, Progress};
use crate::TestbedError;
use onshi_virtual_card::surface::{rsa_public_key_value, sha256_digest_info, CardFace};

/// Default world seed.
pub const DEFAULT_SEED: u64 = 1;
/// Default and minimum number of cards (the six fixed roles need six).
pub const DEFAULT_CARDS: usize = 8;
pub const MIN_CARDS: usize = 6;
/// Card names have four digits.
pub const MAX_CARDS: usize = 9999;
/// Default number of persons (card holders included).
pub const DEFAULT_PERSONS: usize = 100;
/// At most this many distinct card keys; card `i` uses key `i % pool` (a simulation shortcut:
/// RSA-2048 key generation costs 0.1–1 s each).
pub const CARD_KEY_POOL: usize = 8;
/// The demo PIN of card-0001.
pub const DEMO_PIN: &str = "1234";
/// Where the service listens.
pub const SERVICE_LISTEN: &str = "127.0.0.1:50443";

/// Japan Standard Time, the service's calendar.
pub const JST: UtcOffset = match UtcOffset::from_hms(9, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};

/// The pharmacy's 9-digit code body: Tokyo (13), 調剤 (4), district 01, number 2345.
const PHARMACY_BODY: &str = "134012345";
/// The clinic's: Tokyo (13), 医科 (1), district 01, number 5678.
const CLINIC_BODY: &str = "131015678";
/// A dental clinic registered for online confirmation whose reader is not in operation yet:
/// Osaka (27), 歯科 (3), district 10, number 0000. It has no terminal, so it is not listed.
const DENTAL_BODY: &str = "273100000";

/// The institutions' registry (導入医療機関リスト): name and the date online confirmation
/// started, relative to the world's `now` (the dental clinic starts next month).
fn institution_registry(now: OffsetDateTime) -> Result<Vec<Institution>, TestbedError> {
    let entry = |body: &str, name: &str, started: OffsetDateTime| {
        Ok::<_, TestbedError>(Institution {
            institution_code: InstitutionCode::with_check_digit(body)?.as_str().to_owned(),
            name: name.to_owned(),
            started_on: started.to_offset(JST).date(),
        })
    };
    Ok(vec![
        entry(PHARMACY_BODY, "みなと薬局", add_years(now, -3)?)?,
        entry(CLINIC_BODY, "さくら内科クリニック", add_years(now, -1)?)?,
        entry(DENTAL_BODY, "なにわ歯科", days(now, 30)?)?,
    ])
}

/// What to build.
#[derive(Debug, Clone)]
pub struct WorldOptions {
    /// The world directory.
    pub out: PathBuf,
    pub seed: u64,
    /// The moment everything is dated from (truncated to whole seconds, kept in UTC).
    pub now: OffsetDateTime,
    pub cards: usize,
    pub persons: usize,
    /// Replace a non-empty `out`.
    pub force: bool,
    /// Print a line on stderr for each step, and a progress line while the population is
    /// written.
    pub progress: bool,
    /// Persons per store transaction (rounded to whole blocks). The store holds the same rows
    /// whatever the value, but only the same value gives a byte-identical file (SQLite lays
    /// pages out by transaction).
    pub chunk_persons: usize,
    /// Threads generating the population (0: one per core). Changes nothing in the world.
    pub workers: usize,
}

impl WorldOptions {
    /// The defaults (seed 1, 8 cards, 100 persons) for `out` at `now`.
    pub fn new(out: impl Into<PathBuf>, now: OffsetDateTime) -> Self {
        WorldOptions {
            out: out.into(),
            seed: DEFAULT_SEED,
            now,
            cards: DEFAULT_CARDS,
            persons: DEFAULT_PERSONS,
            force: false,
            progress: false,
            chunk_persons: population::DEFAULT_CHUNK_PERSONS,
            workers: 0,
        }
    }
}

/// The network CA's CRL (PEM), which `service.toml` names as `[tls] client_crl`;
/// `testbed revoke-terminal` adds to it.
pub const NETWORK_CRL_FILE: &str = "network-ca/crl.pem";
/// How long the network CA's CRL is good for: it changes only when a terminal is revoked.
pub const NETWORK_CRL_YEARS: i32 = 1;

/// The reader device key's file in each terminal's folder (PKCS#8 DER, mode 0600).
pub const DEVICE_KEY_FILE: &str = "device-key.p8";

/// A terminal to create.
struct TerminalPlan {
    code: InstitutionCode,
    terminal_id: &'static str,
    status: TerminalStatus,
    dir: String,
}

impl TerminalPlan {
    fn name(&self) -> String {
        format!("{}-{}", self.code, self.terminal_id)
    }
}

fn terminal_plans() -> Result<Vec<TerminalPlan>, TestbedError> {
    let pharmacy = InstitutionCode::with_check_digit(PHARMACY_BODY)?;
    let clinic = InstitutionCode::with_check_digit(CLINIC_BODY)?;
    let plan = |code: &InstitutionCode, terminal_id, status| TerminalPlan {
        code: code.clone(),
        terminal_id,
        status,
        dir: format!("terminals/{code}-{terminal_id}"),
    };
    Ok(vec![
        plan(&pharmacy, "T01", TerminalStatus::InOperation),
        plan(&pharmacy, "T02", TerminalStatus::InOperation),
        plan(&clinic, "T01", TerminalStatus::InOperation),
        plan(&pharmacy, "T09", TerminalStatus::Suspended),
        plan(&pharmacy, "T99", TerminalStatus::Unregistered),
        // The rogue claims to be the pharmacy's first terminal, so a test proves the CA check
        // (not the store lookup) is what turns it away.
        TerminalPlan {
            code: pharmacy.clone(),
            terminal_id: "T01",
            status: TerminalStatus::Untrusted,
            dir: "terminals/rogue".into(),
        },
    ])
}

/// `t` moved by whole calendar years; 29 February becomes 28 February in common years.
pub(crate) fn add_years(t: OffsetDateTime, years: i32) -> Result<OffsetDateTime, TestbedError> {
    let year = t.year() + years;
    t.replace_year(year)
        .or_else(|_| t.replace_day(28).and_then(|t| t.replace_year(year)))
        .map_err(|e| TestbedError::Date(e.to_string()))
}

fn days(t: OffsetDateTime, n: i64) -> Result<OffsetDateTime, TestbedError> {
    t.checked_add(Duration::days(n))
        .ok_or_else(|| TestbedError::Date("adding days".into()))
}

/// The end (23:59:59 JST) of the holder's fifth birthday after `issued`: when a real
/// user-authentication certificate expires (jpki-card.md §6). The card itself runs to the
/// tenth birthday for adults (fifth for minors), so the card never caps it earlier.
/// How many days before --now the expired card's certificate expired: well past its grace
/// period for eligibility (docs/domain.md "Certificate grace").
pub const EXPIRED_CARD_DAYS: i64 = 150;

fn certificate_expiry(birth: Date, issued: OffsetDateTime) -> Result<OffsetDateTime, TestbedError> {
    let issue_date = issued.to_offset(JST).date();
    let mut first = birthday_in(birth, issue_date.year());
    if first <= issue_date {
        first = birthday_in(birth, issue_date.year() + 1);
    }
    let fifth = birthday_in(birth, first.year() + 4);
    let end_of_day = Time::from_hms(23, 59, 59).map_err(|e| TestbedError::Date(e.to_string()))?;
    Ok(PrimitiveDateTime::new(fifth, end_of_day)
        .assume_offset(JST)
        .to_offset(UtcOffset::UTC))
}

/// The card's subject CN: `ONSHI` + 6 digits of the world + 12 digits of the card number,
/// 23 characters like a real JPKI user-authentication certificate's.
fn card_common_name(seed: u64, index: usize) -> String {
    let world = derive_seed(seed, "card-common-name");
    let world_digits = u32::from_be_bytes([world[0], world[1], world[2], world[3]]) % 1_000_000;
    format!("ONSHI{world_digits:06}{:012}", index + 1)
}

/// The PIN of card `index`: card-0001 has the demo PIN, the others four digits derived from
/// the seed.
fn card_pin(seed: u64, index: usize) -> String {
    if index == 0 {
        return DEMO_PIN.to_owned();
    }
    let d = derive_seed(seed, &format!("pin/{index}"));
    format!("{:04}", u16::from_be_bytes([d[0], d[1]]) % 10_000)
}

fn yyyymmdd(date: Date) -> String {
    format!(
        "{:04}{:02}{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// What a card face is drawn from.
struct CardFaceInput<'a> {
    seed: u64,
    holder_id: &'a str,
    birth_date: &'a str,
    sex: &'a str,
    expiry_date: &'a str,
    name: &'a str,
    address: &'a str,
    security_code: &'a str,
    public_key: &'a RsaKey,
    issuer: &'a RsaKey,
}

/// Kenkaku EF `0002` of a card: the printed fields as PNGs, the photo as JPEG 2000, and DF28
/// signed by the world's Kenkaku issuer key the way public clients check it (PKCS#1 v1.5 over a
/// SHA-256 DigestInfo holding the digests of three groups of objects).
fn card_face(input: CardFaceInput<'_>) -> Result<CardFace, TestbedError> {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::sha2::{Digest, Sha256};
    use rsa::traits::PublicKeyParts;
    let err = |reason: String| TestbedError::Encode {
        what: "a card face",
        reason: format!("{}: {reason}", input.holder_id),
    };
    let public = rsa::RsaPrivateKey::from_pkcs8_der(input.public_key.pkcs8_der())
        .map_err(|e| err(e.to_string()))?;
    let issuer = rsa::RsaPrivateKey::from_pkcs8_der(input.issuer.pkcs8_der())
        .map_err(|e| err(e.to_string()))?;
    let mut face = CardFace {
        birth_date: input.birth_date.to_owned(),
        sex: input.sex.to_owned(),
        public_key: rsa_public_key_value(&public.n().to_bytes_be(), &public.e().to_bytes_be()),
        name_image: card_data::printed_field(input.name, 12),
        address_image: card_data::printed_field(input.address, 12),
        photo: card_data::face_photo_jp2(input.seed, input.holder_id)?,
        signature: Vec::new(),
        expiry_date: input.expiry_date.to_owned(),
        security_code_image: card_data::printed_field(input.security_code, 12),
    };
    let digests: Vec<u8> = face
        .signed_groups()
        .iter()
        .flat_map(|group| Sha256::digest(group).to_vec())
        .collect();
    face.signature = issuer
        .sign(
            rsa::Pkcs1v15Sign::new_unprefixed(),
            &sha256_digest_info(&digests),
        )
        .map_err(|e| err(e.to_string()))?;
    Ok(face)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), TestbedError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(TestbedError::io("create", parent))?;
    }
    fs::write(path, bytes).map_err(TestbedError::io("write", path))
}

/// Private keys are readable by their owner only.
fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), TestbedError> {
    write_file(path, bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(TestbedError::io("restrict", path))?;
    }
    Ok(())
}

/// Replaces `path` in one step, for files a running program may read at any moment (the
/// service re-reads the network CRL when it changes): the bytes go to a temporary file in the
/// same folder, are flushed to disk, and the file is renamed over `path`, so a reader sees the
/// old file or the new one, never half of one. With `secret` the file is created with mode
/// 0600 (a private key is never readable by others, not even for an instant).
pub(crate) fn write_atomically(
    path: &Path,
    bytes: &[u8],
    secret: bool,
) -> Result<(), TestbedError> {
    use std::io::Write;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(TestbedError::World(format!(
            "{} is not a file path",
            path.display()
        )));
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    // A leftover of an interrupted run with the same process id.
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o666 });
    }
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(TestbedError::Io {
            action: "write",
            path: tmp,
            source: e,
        });
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(TestbedError::Io {
            action: "replace",
            path: path.to_owned(),
            source: e,
        });
    }
    // The rename itself survives a crash once the folder is flushed (best effort: not every
    // file system lets a directory be opened for that).
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Directories `--force` never deletes: the filesystem root and the home directory.
fn is_protected(canonical: &Path, home: Option<&Path>) -> bool {
    canonical.parent().is_none() || Some(canonical) == home
}

/// Written first into every world directory, so `--force` can tell a world (even one whose
/// build was interrupted before `world.json`) from any other directory.
const WORLD_MARKER: &str = ".onshi-world";

/// Creates `out`, or empties it when `force` is set and it holds a world; refuses a non-empty
/// one otherwise. `--force` never deletes a directory that is not a world, so a mistyped
/// `--out .` cannot wipe a checkout.
fn prepare_output(out: &Path, force: bool) -> Result<(), TestbedError> {
    prepare_dir(out, force)?;
    fs::write(out.join(WORLD_MARKER), b"").map_err(TestbedError::io("write", out))
}

fn prepare_dir(out: &Path, force: bool) -> Result<(), TestbedError> {
    match fs::read_dir(out) {
        Ok(entries) => {
            // A directory holding only the marker is an empty world.
            let mut entries =
                entries.filter(|e| e.as_ref().map_or(true, |e| e.file_name() != WORLD_MARKER));
            if entries.next().is_none() {
                return Ok(());
            }
            if !force {
                return Err(TestbedError::OutputNotEmpty {
                    path: out.to_owned(),
                });
            }
            // --force deletes a whole tree: refuse the obvious disasters.
            let canonical = out
                .canonicalize()
                .map_err(TestbedError::io("resolve", out))?;
            let home = std::env::var_os("HOME").map(PathBuf::from);
            if is_protected(&canonical, home.as_deref()) {
                return Err(TestbedError::Options(format!(
                    "refusing to replace {}",
                    canonical.display()
                )));
            }
            if !out.join(WORLD_MARKER).exists() && !out.join("world.json").exists() {
                return Err(TestbedError::Options(format!(
                    "--force replaces only a world directory, and {} holds no world \
                     (no world.json or {WORLD_MARKER}); remove it yourself if you mean it",
                    canonical.display()
                )));
            }
            fs::remove_dir_all(out).map_err(TestbedError::io("remove", out))?;
            fs::create_dir_all(out).map_err(TestbedError::io("create", out))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(out).map_err(TestbedError::io("create", out))
        }
        Err(e) => Err(TestbedError::Io {
            action: "read",
            path: out.to_owned(),
            source: e,
        }),
    }
}

fn check_options(opts: &WorldOptions) -> Result<(), TestbedError> {
    if opts.cards < MIN_CARDS || opts.cards > MAX_CARDS {
        return Err(TestbedError::Options(format!(
            "--cards must be between {MIN_CARDS} and {MAX_CARDS}, got {}",
            opts.cards
        )));
    }
    population::check_size(opts.persons, opts.cards)
}

/// Builds the world described by `opts` into `opts.out` and returns its manifest (also written
/// as `world.json`).
pub fn build_world(opts: &WorldOptions) -> Result<WorldManifest, TestbedError> {
    check_options(opts)?;
    let progress = Progress::new(opts.progress);
    let seed = opts.seed;
    let now = opts
        .now
        .to_offset(UtcOffset::UTC)
        .replace_nanosecond(0)
        .map_err(|e| TestbedError::Date(e.to_string()))?;
    let out = opts.out.as_path();
    prepare_output(out, opts.force)?;

    // Keys first, all at once, on every core.
    let pool = opts.cards.min(CARD_KEY_POOL);
    let terminals = terminal_plans()?;
    let registry = institution_registry(now)?;
    let mut purposes = vec![
        "issuing-ca".to_owned(),
        "network-ca".to_owned(),
        "service".to_owned(),
        "rogue-ca".to_owned(),
    ];
    purposes.extend((0..pool).map(|i| format!("card-key/{i}")));
    purposes.extend(
        terminals
            .iter()
            .map(|t| format!("terminal/{}/{}", t.dir, t.name())),
    );
    // Last, so adding it shifted no other key's place in the batch (each key depends only on
    // its own purpose label anyway).
    purposes.push("signature-ca".to_owned());
    // Signs the Kenkaku card faces (DF28), like the issuer key a real card's EF 0004 certifies.
    purposes.push("kenkaku-issuer".to_owned());
    // The smartphone CA and the phones' own keys (docs/smartphone.md), after every other.
    purposes.extend(crate::phones::key_purposes());
    progress.step(&format!("generating {} RSA-2048 keys", purposes.len()));
    let mut keys = RsaKey::generate_all(seed, &purposes)?.into_iter();
    let mut next_key = |what: &str| {
        keys.next().ok_or_else(|| TestbedError::KeyGeneration {
            purpose: what.to_owned(),
            reason: "missing from the batch".into(),
        })
    };
    let issuing_key = next_key("issuing-ca")?;
    let network_key = next_key("network-ca")?;
    let service_key = next_key("service")?;
    let rogue_key = next_key("rogue-ca")?;
    let card_keys = (0..pool)
        .map(|i| next_key(&format!("card-key/{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let terminal_keys = terminals
        .iter()
        .map(|t| next_key(&t.name()))
        .collect::<Result<Vec<_>, _>>()?;
    let signature_ca_key = next_key("signature-ca")?;
    let kenkaku_issuer_key = next_key("kenkaku-issuer")?;
    let smartphone_ca_key = next_key("smartphone-ca")?;
    let phone_keys = (1..=crate::phones::PHONES.len())
        .map(|i| next_key(&format!("phone-key/{i}")))
        .collect::<Result<Vec<_>, _>>()?;

    progress.step(&format!("generating the {} card holders", opts.cards));
    let plans: Vec<CardPlan> = (0..opts.cards).map(population::card_plan).collect();
    let today = now.to_offset(JST).date();
    let population = Population::new(PopulationSpec {
        seed,
        today,
        persons: opts.persons,
        plans: plans.clone(),
    })?;
    let layout = population.layout(opts.chunk_persons);
    // Chunk 0: the card holders, needed now for their cards.
    let mut holders = population.chunk(&layout, 0)?;

    progress.step("issuing authority CA");
    let issuing = pki::issuing_ca(
        &issuing_key,
        pki::serial_for(seed, "issuing-ca"),
        add_years(now, -2)?,
        add_years(now, 8)?,
    )?;
    write_file(&out.join("issuing-ca/ca.pem"), issuing.pem().as_bytes())?;
    write_secret(
        &out.join("issuing-ca/ca.key.pem"),
        issuing.key_pem().as_bytes(),
    )?;

    let signature_ca = pki::signature_ca(
        &signature_ca_key,
        pki::serial_for(seed, "signature-ca"),
        add_years(now, -2)?,
        add_years(now, 8)?,
    )?;
    write_file(
        &out.join("issuing-ca/signature-ca.pem"),
        signature_ca.pem().as_bytes(),
    )?;

    progress.step(&format!("issuing {} cards", opts.cards));
    let card_key_pairs = card_keys
        .iter()
        .map(RsaKey::key_pair)
        .collect::<Result<Vec<_>, _>>()?;
    let mut card_entries = Vec::with_capacity(opts.cards);
    let mut links: Vec<(CardKey, String)> = Vec::with_capacity(opts.cards);
    let mut revoked = Vec::new();
    for (index, plan) in plans.iter().enumerate() {
        let holder: &Person = holders
            .batch
            .persons
            .get(index)
            .ok_or_else(|| TestbedError::Options("fewer persons than cards".into()))?;
        let name = format!("card-{:04}", index + 1);
        let issued = add_years(now, -1)?;
        let (not_before, not_after) = match plan.kind {
            // Past the eligibility grace period (at most the end of the third month after the
            // month of expiry, about 122 days), so it is refused as expired.
            CardKind::Expired => (add_years(now, -5)?, days(now, -EXPIRED_CARD_DAYS)?),
            // Expired yesterday: always within the grace period (at least to the end of the
            // third month after this one).
            CardKind::Grace => (add_years(now, -5)?, days(now, -1)?),
            // Within the three months before expiry: the renewal warning.
            CardKind::Expiring => (add_years(now, -5)?, days(now, 30)?),
            _ => (issued, certificate_expiry(holder.birth_date, issued)?),
        };
        let spec = CardCertificateSpec {
            common_name: card_common_name(seed, index),
            serial: pki::serial_for(seed, &format!("card/{name}")),
            not_before,
            not_after,
        };
        let key_index = index % pool;
        let (key, key_pair) = match (card_keys.get(key_index), card_key_pairs.get(key_index)) {
            (Some(k), Some(p)) => (k, p),
            _ => {
                return Err(TestbedError::KeyGeneration {
                    purpose: format!("card-key/{key_index}"),
                    reason: "missing".into(),
                })
            }
        };
        let cert = pki::card_certificate(&issuing, key_pair, &spec)?;
        if plan.kind == CardKind::Revoked {
            revoked.push(Revocation {
                serial: spec.serial.clone(),
                revoked_at: days(now, -30)?,
            });
        }
        let face_only = matches!(
            plan.kind,
            CardKind::FaceOnly | CardKind::FaceOnlyUnregistered
        );
        // A face-only card is issued without PINs and without the signature certificate.
        let pin = if face_only {
            String::new()
        } else {
            card_pin(seed, index)
        };
        // The signature key is another key of the pool (a simulation shortcut, docs/world.md).
        let sign_index = (index + 1) % pool;
        let (sign_key, sign_key_pair) =
            match (card_keys.get(sign_index), card_key_pairs.get(sign_index)) {
                (Some(k), Some(p)) => (k, p),
                _ => {
                    return Err(TestbedError::KeyGeneration {
                        purpose: format!("card-key/{sign_index}"),
                        reason: "missing".into(),
                    })
                }
            };
        let sign_spec = CardCertificateSpec {
            serial: pki::serial_for(seed, &format!("signature/{name}")),
            ..spec.clone()
        };
        let sign_cert = pki::signature_certificate(&signature_ca, sign_key_pair, &sign_spec)?;
        let sign_password = card_data::sign_password(seed, index);
        let my_number = card_data::my_number(seed, index);
        // The card itself runs to the tenth birthday after issue.
        let card_expiry_year = certificate_expiry(holder.birth_date, add_years(issued, 5)?)?
            .to_offset(JST)
            .year();
        let card_expiry = certificate_expiry(holder.birth_date, add_years(issued, 5)?)?
            .to_offset(JST)
            .date();
        let number_b = card_data::number_b(seed, index, holder.birth_date, card_expiry_year);
        let birth_date = yyyymmdd(holder.birth_date);
        let sex = match holder.sex {
            1 => "1",
            2 => "2",
            _ => "9",
        };
        // The Kenkaku application's own key is another key of the pool (a simulation
        // shortcut like the signature key's).
        let kenkaku_public =
            card_keys
                .get((index + 2) % pool)
                .ok_or_else(|| TestbedError::KeyGeneration {
                    purpose: "kenkaku public key".into(),
                    reason: "missing".into(),
                })?;
        let face = card_face(CardFaceInput {
            seed,
            holder_id: &holder.id,
            birth_date: &birth_date,
            sex,
            expiry_date: &yyyymmdd(card_expiry),
            name: &holder.name,
            address: &holder.address,
            security_code: number_b.get(10..).unwrap_or_default(),
            public_key: kenkaku_public,
            issuer: &kenkaku_issuer_key,
        })?;
        let profile = CardProfile {
            format: PROFILE_FORMAT.to_owned(),
            name: name.clone(),
            atr: hex::encode_upper(DEFAULT_ATR),
            user_auth_pin: pin.clone(),
            face_only,
            user_auth_certificate: cert.pem(),
            user_auth_ca_certificate: issuing.pem(),
            user_auth_private_key: key.pkcs8_pem().to_owned(),
            signature: (!face_only).then(|| SignatureProfile {
                certificate: sign_cert.pem(),
                ca_certificate: signature_ca.pem(),
                private_key: sign_key.pkcs8_pem().to_owned(),
                password: sign_password.clone(),
            }),
            kenhojo: Some(KenhojoProfile {
                my_number: my_number.clone(),
                name: holder.name.clone(),
                address: holder.address.clone(),
                birth_date: birth_date.clone(),
                sex: sex.to_owned(),
            }),
            kenkaku: Some(KenkakuProfile {
                birth_date_key: card_data::era_yymmdd(holder.birth_date),
                number_b: number_b.clone(),
                face_photo: hex::encode_upper(&face.photo),
                simulator_face_export: true,
                birth_date,
                sex: sex.to_owned(),
                expiry_date: face.expiry_date.clone(),
                public_key: hex::encode_upper(&face.public_key),
                name_image: hex::encode_upper(&face.name_image),
                address_image: hex::encode_upper(&face.address_image),
                security_code_image: hex::encode_upper(&face.security_code_image),
                signature: hex::encode_upper(&face.signature),
            }),
            faults: Vec::new(),
        };
        let profile_rel = format!("cards/{name}.json");
        let profile_path = out.join(&profile_rel);
        if let Some(dir) = profile_path.parent() {
            fs::create_dir_all(dir).map_err(TestbedError::io("create", dir))?;
        }
        profile.save(&profile_path)?;
        // The certificate beside the profile, for `confirm-service check-cert` and the like.
        write_file(
            &out.join(format!("cards/{name}.pem")),
            cert.pem().as_bytes(),
        )?;
        let card_key = CardKey::from_der(cert.der())?;
        card_entries.push(CardEntry {
            name,
            profile: profile_rel,
            person_id: holder.id.clone(),
            pin,
            kind: plan.kind,
            serial: card_key.serial.clone(),
            description: plan.description.to_owned(),
            sign_password: (!face_only).then_some(sign_password),
            my_number: Some(my_number),
            number_b: Some(number_b),
        });
        links.push((card_key, holder.id.clone()));
    }

    progress.step("certificate revocation list");
    let crl = pki::crl(&issuing, &revoked, now, days(now, 7)?)?;
    write_file(&out.join("issuing-ca/crl.der"), crl.der())?;
    write_file(
        &out.join("issuing-ca/crl.pem"),
        pki::crl_pem(&crl)?.as_bytes(),
    )?;

    progress.step("smartphone CA, phones and their CRL");
    let smartphone_ca = pki::smartphone_ca(
        &smartphone_ca_key,
        pki::serial_for(seed, "smartphone-ca"),
        add_years(now, -2)?,
        add_years(now, 8)?,
    )?;
    write_file(
        &out.join("smartphone-ca/ca.pem"),
        smartphone_ca.pem().as_bytes(),
    )?;
    write_secret(
        &out.join("smartphone-ca/ca.key.pem"),
        smartphone_ca.key_pem().as_bytes(),
    )?;
    let phones = crate::phones::issue(
        seed,
        now,
        &smartphone_ca,
        &phone_keys,
        |i| card_entries.get(i).map(|c| c.person_id.clone()),
        out,
        write_file,
        write_secret,
    )?;
    links.extend(phones.links.iter().cloned());
    let phone_crl = pki::crl(&smartphone_ca, &phones.revoked, now, days(now, 7)?)?;
    write_file(&out.join("smartphone-ca/crl.der"), phone_crl.der())?;

    progress.step("network CA and its CRL, service and terminal certificates");
    let network = pki::network_ca(
        &network_key,
        pki::NETWORK_CA_COMMON_NAME,
        &[],
        pki::serial_for(seed, "network-ca"),
        add_years(now, -1)?,
        add_years(now, 10)?,
    )?;
    write_file(&out.join("network-ca/ca.pem"), network.pem().as_bytes())?;
    write_secret(
        &out.join("network-ca/ca.key.pem"),
        network.key_pem().as_bytes(),
    )?;
    // The terminals' CRL: nobody revoked yet. Dated an hour back so a service whose clock is
    // a little behind the builder's still takes it; `testbed revoke-terminal` re-issues it.
    let network_crl = pki::crl(
        &network,
        &[],
        now.checked_sub(Duration::hours(1))
            .ok_or_else(|| TestbedError::Date("an hour before now".into()))?,
        add_years(now, NETWORK_CRL_YEARS)?,
    )?;
    write_file(
        &out.join(NETWORK_CRL_FILE),
        pki::crl_pem(&network_crl)?.as_bytes(),
    )?;
    let leaf = |purpose: &str| -> Result<LeafSpec, TestbedError> {
        Ok(LeafSpec {
            serial: pki::serial_for(seed, purpose),
            not_before: days(now, -30)?,
            not_after: add_years(now, 3)?,
        })
    };
    let server = pki::server_certificate(&network, &service_key.key_pair()?, &leaf("service")?)?;
    write_file(&out.join("service/server.pem"), server.pem().as_bytes())?;
    write_secret(
        &out.join("service/server.key.pem"),
        service_key.pkcs8_pem().as_bytes(),
    )?;

    let rogue = pki::network_ca(
        &rogue_key,
        "onshi rogue CA",
        &["not trusted by the service"],
        pki::serial_for(seed, "rogue-ca"),
        add_years(now, -1)?,
        add_years(now, 10)?,
    )?;
    let mut terminal_entries = Vec::with_capacity(terminals.len());
    // Each terminal's reader device key: its public half goes into the store with the
    // terminal (for the terminals the store knows).
    let mut device_keys = Vec::with_capacity(terminals.len());
    for (plan, key) in terminals.iter().zip(&terminal_keys) {
        let name = plan.name();
        let untrusted = plan.status == TerminalStatus::Untrusted;
        let ca = if untrusted { &rogue } else { &network };
        let cert = pki::terminal_certificate(
            ca,
            &key.key_pair()?,
            plan.code.as_str(),
            plan.terminal_id,
            &leaf(&format!("terminal/{}", plan.dir))?,
        )?;
        let dir = out.join(&plan.dir);
        write_file(&dir.join("client.pem"), cert.pem().as_bytes())?;
        write_secret(&dir.join("client.key.pem"), key.pkcs8_pem().as_bytes())?;
        if untrusted {
            // For reference only: nothing trusts it.
            write_file(&dir.join("rogue-ca.pem"), rogue.pem().as_bytes())?;
        }
        let device_key = DeviceKey::generate(&format!("the device key of {}", plan.dir))?;
        write_secret(&dir.join(DEVICE_KEY_FILE), device_key.pkcs8_der())?;
        let agent = AgentConfig {
            service: format!("https://{SERVICE_LISTEN}"),
            server_name: "localhost".into(),
            ca: "../../network-ca/ca.pem".into(),
            certificate: "client.pem".into(),
            private_key: "client.key.pem".into(),
            terminal_name: name.clone(),
            device_key: Some(DEVICE_KEY_FILE.into()),
        };
        write_file(&dir.join("agent.toml"), config::to_toml(&agent)?.as_bytes())?;
        terminal_entries.push(TerminalEntry {
            name,
            institution_code: plan.code.as_str().to_owned(),
            terminal_id: plan.terminal_id.to_owned(),
            status: plan.status,
            dir: plan.dir.clone(),
        });
        device_keys.push(device_key);
    }

    let store_path = out.join("store/onshi.sqlite");
    fs::create_dir_all(out.join("store")).map_err(TestbedError::io("create", out.join("store")))?;
    let (totals, examples) = {
        let store = SqliteStore::open(&store_path)?;
        // Bulk-load settings of this connection only (the file keeps WAL, and the service
        // opens it with its own): a 256 MiB page cache, and no fsync at each chunk's commit,
        // since an interrupted build is thrown away anyway. Together they write a
        // million persons in 29 s instead of 42 s (docs/world.md).
        store
            .with_connection(|c| {
                c.execute_batch("PRAGMA cache_size = -262144; PRAGMA synchronous = OFF;")
            })
            .map_err(store::StoreError::from)?;
        // The first transaction: card holders, their card links, the terminals.
        holders.batch.cards = links;
        holders.batch.institutions = registry.clone();
        holders.batch.terminals = terminals
            .iter()
            .zip(&device_keys)
            .filter_map(|(plan, device_key)| {
                let status = match plan.status {
                    TerminalStatus::InOperation => store::TerminalStatus::InOperation,
                    TerminalStatus::Suspended => store::TerminalStatus::Suspended,
                    // Unregistered and rogue terminals are exactly the ones the store lacks.
                    TerminalStatus::Unregistered | TerminalStatus::Untrusted => return None,
                };
                Some(Terminal {
                    institution_code: plan.code.as_str().to_owned(),
                    terminal_id: plan.terminal_id.to_owned(),
                    status,
                    device_public_key: Some(device_key.public_key().to_vec()),
                })
            })
            .collect();
        let workers = match opts.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        progress.step(&format!(
            "store: {} persons in {} transactions, {workers} generator threads",
            thousands(opts.persons),
            layout.chunks()
        ));
        let mut totals = Totals::default();
        let mut examples = Examples::new();
        let mut meter = progress.meter(opts.persons);
        let mut write = |chunk: population::Chunk| -> Result<(), TestbedError> {
            store.load(&chunk.batch)?;
            totals.add(&chunk);
            examples.absorb(chunk.examples);
            meter.update(totals.persons);
            Ok(())
        };
        write(holders)?;
        population::stream(
            &population,
            &layout,
            1..layout.chunks(),
            workers,
            &mut write,
        )?;
        meter.finish(totals.persons);
        (totals, examples)
        // Dropping the store closes the connection, which checkpoints the WAL into the main
        // file and removes the -wal and -shm files: the world holds one self-contained file.
    };
    progress.step(&format!(
        "store: {} persons in {} households, {} qualification records, {} dispensed drugs, \
         {} checkups",
        thousands(totals.persons),
        thousands(totals.households),
        thousands(totals.qualifications),
        thousands(totals.medications),
        thousands(totals.checkups)
    ));

    progress.step("service.toml and world.json");
    let service = ServiceConfig {
        listen: SERVICE_LISTEN.into(),
        store: "store/onshi.sqlite".into(),
        challenge_ttl_seconds: 60,
        min_face_threshold_permille:
            onshi_confirm_service::config::DEFAULT_MIN_FACE_THRESHOLD_PERMILLE,
        tls: ServiceTls {
            certificate: "service/server.pem".into(),
            private_key: "service/server.key.pem".into(),
            client_ca: "network-ca/ca.pem".into(),
            client_crl: NETWORK_CRL_FILE.into(),
        },
        validation: ServiceValidation {
            trust_anchors: vec!["issuing-ca/ca.pem".into()],
            intermediates: Vec::new(),
            crls: vec!["issuing-ca/crl.der".into()],
            policy_oids: vec![pki::JPKI_TEST_POLICY_OID.into()],
            clock_skew_seconds: 300,
            smartphone: Some(ServiceSmartphoneTrust {
                trust_anchors: vec!["smartphone-ca/ca.pem".into()],
                crls: vec!["smartphone-ca/crl.der".into()],
            }),
        },
    };
    write_file(
        &out.join("service.toml"),
        config::to_toml(&service)?.as_bytes(),
    )?;

    let manifest = WorldManifest {
        format: manifest::FORMAT.into(),
        seed,
        now,
        cards: card_entries,
        terminals: terminal_entries,
        persons: totals.persons,
        examples: crate::phones::with_examples(examples.into_entries(), &phones.entries),
        phones: phones.entries.clone(),
        institutions: registry
            .iter()
            .map(|i| {
                let in_operation = terminals.iter().any(|t| {
                    t.code.as_str() == i.institution_code && t.status == TerminalStatus::InOperation
                });
                manifest::InstitutionEntry {
                    institution_code: i.institution_code.clone(),
                    name: i.name.clone(),
                    prefecture: i.prefecture().to_owned(),
                    started_on: format!(
                        "{:04}{:02}{:02}",
                        i.started_on.year(),
                        u8::from(i.started_on.month()),
                        i.started_on.day()
                    ),
                    listed: in_operation,
                }
            })
            .collect(),
    };
    let mut json = serde_json::to_string_pretty(&manifest).map_err(|e| TestbedError::Encode {
        what: "world.json",
        reason: e.to_string(),
    })?;
    json.push('\n');
    write_file(&out.join(manifest::FILE_NAME), json.as_bytes())?;
    progress.step(&format!("done: {}", out.display()));
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn certificate_expiry_is_the_fifth_birthday_after_issue() {
        let issued = datetime!(2024-11-24 03:00:00 UTC);
        // Birthday later in the year: the first birthday after issue is in the issue year.
        assert_eq!(
            certificate_expiry(date!(1980 - 12 - 01), issued).unwrap(),
            datetime!(2028-12-01 14:59:59 UTC)
        );
        // Birthday earlier in the year: next year's is the first.
        assert_eq!(
            certificate_expiry(date!(1980 - 03 - 10), issued).unwrap(),
            datetime!(2029-03-10 14:59:59 UTC)
        );
        // Issued on the birthday (JST): that one does not count.
        assert_eq!(
            certificate_expiry(date!(1980 - 11 - 24), issued).unwrap(),
            datetime!(2029-11-24 14:59:59 UTC)
        );
    }

    #[test]
    fn names_and_pins() {
        let cn = card_common_name(1, 0);
        assert_eq!(cn.len(), 23);
        assert!(cn.starts_with("ONSHI") && cn.ends_with("000000000001"));
        assert_eq!(card_pin(1, 0), DEMO_PIN);
        for i in 1..50 {
            let pin = card_pin(1, i);
            assert_eq!(pin.len(), 4);
            assert!(pin.bytes().all(|b| b.is_ascii_digit()));
        }
        assert_eq!(card_pin(3, 7), card_pin(3, 7));
    }

    #[test]
    fn years_move_on_the_calendar() {
        assert_eq!(
            add_years(datetime!(2024-02-29 10:00:00 UTC), 1).unwrap(),
            datetime!(2025-02-28 10:00:00 UTC)
        );
        assert_eq!(
            add_years(datetime!(2025-11-24 10:00:00 UTC), -2).unwrap(),
            datetime!(2023-11-24 10:00:00 UTC)
        );
    }

    #[test]
    fn terminal_codes_are_valid() {
        let plans = terminal_plans().unwrap();
        assert_eq!(plans[0].code.point_table(), 4, "a pharmacy");
        assert_eq!(plans[2].code.point_table(), 1, "a clinic");
        for p in &plans {
            InstitutionCode::parse(p.code.as_str()).unwrap();
        }
    }

    #[test]
    fn output_is_refused_unless_empty_or_forced() {
        let dir = std::env::temp_dir().join(format!("onshi-prepare-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        prepare_output(&dir, false).unwrap();
        prepare_output(&dir, false).unwrap(); // empty: fine
        fs::write(dir.join("old"), b"x").unwrap();
        assert!(matches!(
            prepare_output(&dir, false),
            Err(TestbedError::OutputNotEmpty { .. })
        ));
        // --force: refused while the directory holds no world, then it replaces the world.
        fs::remove_file(dir.join(WORLD_MARKER)).unwrap();
        assert!(matches!(
            prepare_output(&dir, true),
            Err(TestbedError::Options(_))
        ));
        assert!(
            dir.join("old").exists(),
            "a non-world directory is never emptied"
        );
        fs::write(dir.join("world.json"), b"{}").unwrap();
        prepare_output(&dir, true).unwrap();
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(WORLD_MARKER)]);
        fs::remove_dir_all(&dir).unwrap();
        // The guard is tested as a pure function: never point a deleting call at "/" in a test.
        assert!(is_protected(Path::new("/"), None));
        assert!(is_protected(Path::new("/root"), Some(Path::new("/root"))));
        assert!(!is_protected(Path::new("/tmp/w"), Some(Path::new("/root"))));
    }

    #[test]
    fn options_are_checked() {
        let now = datetime!(2025-11-24 03:00:00 UTC);
        let mut o = WorldOptions::new("/nonexistent", now);
        o.cards = 5;
        assert!(matches!(build_world(&o), Err(TestbedError::Options(_))));
        o.cards = 10;
        o.persons = 9;
        assert!(matches!(build_world(&o), Err(TestbedError::Options(_))));
    }
}
