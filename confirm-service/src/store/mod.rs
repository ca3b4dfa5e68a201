//! The one storage interface of the service, [`Store`], and its two implementations: the
//! embedded default [`SqliteStore`] (one file, nothing to install) and [`postgres::PgStore`] for
//! deployments that outgrow one machine (architecture.md "Storage").
//!
//! Everything that must be shared by several service instances lives behind this trait:
//! the reference data (persons, qualification records, card links, terminals, clinical data),
//! registration for insurance use, consents, used challenges and their sealing keys, batch
//! jobs and the audit log. Service instances keep nothing else but caches, so instances sharing
//! one PostgreSQL behave as one service. The same conformance suite (`tests/src/store_suite.rs` in the `onshi-e2e` package)
//! runs against both implementations.
//!
//! The methods are blocking: the async service calls them from `spawn_blocking`. Dates are ISO
//! `YYYY-MM-DD` text in SQLite and `DATE` in PostgreSQL; instants are kept to the millisecond
//! in both, so values round-trip equal.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use time::format_description::FormatItem;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use crate::audit::{AuditQuery, AuditRecord};
use crate::challenge::ChallengeError;
use crate::clinical::{Checkup, Medication};
use crate::consent::ConsentGrant;
use crate::documents::InsuranceDocument;
use crate::eligibility::{NumbersQuery, Person, QualificationRecord};
use crate::institutions::{Institution, ListedInstitution};
use crate::medical_aid::MedicalTicket;

mod codec;
pub mod copy;
mod error;
pub(crate) mod group;
mod pool;
pub mod postgres;
mod queries;
pub mod sqlite;

pub use error::{DbError, DbErrorKind, StoreError};
pub use sqlite::{Bulk, SqliteStore};

const ISO_DATE: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// The store's key of a user-authentication certificate: which authority issued it and its
/// serial number, the pair that identifies a certificate (RFC 5280 §4.1.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardKey {
    /// Lowercase hex SHA-256 of the issuer Name's DER (tag and length included).
    pub issuer_key: String,
    /// Lowercase hex of the serial number's DER content bytes (a leading `00` kept).
    pub serial: String,
}

impl CardKey {
    /// The key from the issuer Name DER and the raw serial bytes, for callers that have already
    /// parsed the certificate.
    pub fn from_parts(issuer_name_der: &[u8], raw_serial: &[u8]) -> CardKey {
        let digest = ring::digest::digest(&ring::digest::SHA256, issuer_name_der);
        CardKey {
            issuer_key: hex::encode(digest.as_ref()),
            serial: hex::encode(raw_serial),
        }
    }

    /// The key of a certificate that passed validation (no parsing).
    pub fn of_validated(cert: &crate::validation::ValidatedCertificate) -> CardKey {
        CardKey {
            issuer_key: cert.issuer_key.clone(),
            serial: cert.serial_hex.clone(),
        }
    }

    /// The key of a DER certificate. Trailing bytes after the certificate are refused: the
    /// key must name exactly the certificate that was presented.
    pub fn from_der(cert_der: &[u8]) -> Result<CardKey, StoreError> {
        let (rest, cert) = x509_parser::parse_x509_certificate(cert_der)
            .map_err(|e| StoreError::Certificate(e.to_string()))?;
        if !rest.is_empty() {
            return Err(StoreError::Certificate(format!(
                "{} trailing bytes after the certificate",
                rest.len()
            )));
        }
        let tbs = &cert.tbs_certificate;
        Ok(Self::from_parts(tbs.issuer.as_raw(), tbs.raw_serial()))
    }
}

/// Whether a terminal may confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TerminalStatus {
    InOperation,
    Suspended,
}

impl TerminalStatus {
    /// The stored (and documented) spelling: `in-operation`, `suspended`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InOperation => "in-operation",
            Self::Suspended => "suspended",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "in-operation" => Some(Self::InOperation),
            "suspended" => Some(Self::Suspended),
            _ => None,
        }
    }
}

/// A reception terminal registered with the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    /// 医療機関コード, 10 digits.
    pub institution_code: String,
    /// Unique within the institution, e.g. `T01`.
    pub terminal_id: String,
    pub status: TerminalStatus,
    /// The public key of the terminal's reader device: an ECDSA P-256 point, uncompressed
    /// (`04 || x || y`, [`DEVICE_PUBLIC_KEY_LEN`] bytes). It verifies the attestations of face
    /// and visual-check confirmations; `None` for a terminal that confirms by PIN only.
    pub device_public_key: Option<Vec<u8>>,
}

/// Length of a terminal's device public key (an uncompressed P-256 point).
pub const DEVICE_PUBLIC_KEY_LEN: usize = 65;

/// Reference data written in one transaction: the testbed's population in chunks, a copy
/// from one store to another, or a test's fixture. Persons come before the rows that name them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadBatch {
    pub persons: Vec<Person>,
    pub qualifications: Vec<QualificationRecord>,
    /// Certificate → person links of the mock issuing authority.
    pub cards: Vec<(CardKey, String)>,
    pub terminals: Vec<Terminal>,
    pub medications: Vec<Medication>,
    pub checkups: Vec<Checkup>,
    /// The institutions' registry entries (導入医療機関リスト: name, start date).
    pub institutions: Vec<Institution>,
    /// The document each person holds (資格確認書 or 資格情報のお知らせ), at most one per
    /// person; a later one replaces an earlier one.
    pub documents: Vec<InsuranceDocument>,
    /// 医療扶助 recipients' 医療券 / 調剤券; one per person, month and issue number (a later
    /// one replaces an earlier one: the welfare office registering a ticket issued on paper).
    pub medical_tickets: Vec<MedicalTicket>,
}

impl LoadBatch {
    /// Rows in the batch, for progress output.
    pub fn len(&self) -> usize {
        self.persons.len()
            + self.qualifications.len()
            + self.cards.len()
            + self.terminals.len()
            + self.medications.len()
            + self.checkups.len()
            + self.institutions.len()
            + self.documents.len()
            + self.medical_tickets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What [`Store::register_for_insurance`] did. Registration is idempotent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// The person was not registered and now is.
    Registered,
    /// The person was already registered; nothing changed.
    AlreadyRegistered,
}

impl Registration {
    /// What the registration's audit record says was returned (`returned`).
    pub fn audit_summary(self) -> String {
        serde_json::json!({ "newly_registered": self == Registration::Registered }).to_string()
    }
}

/// A registration for insurance use (健康保険証利用申込み) carried by its request's
/// [`AuditWrite`], so that the registration and its audit record are committed together or
/// not at all. It is applied only when the write's challenge is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationWrite {
    pub person_id: String,
    pub at: OffsetDateTime,
    /// Set by the store in the group's transaction: what the registration did.
    pub outcome: Option<Registration>,
}

/// Length of a challenge's nonce: the part whose single use the store records
/// ([`crate::challenge`]).
pub const NONCE_LEN: usize = 16;

/// A request's use of a (sealed, already checked) challenge: its nonce, which the group
/// commit inserts into `used_challenges`; a nonce already there is a reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeUse {
    pub nonce: [u8; NONCE_LEN],
}

/// A key that seals challenges, shared by the instances through the store.
#[derive(Clone, PartialEq, Eq)]
pub struct ChallengeKey {
    pub id: i64,
    pub secret: Vec<u8>,
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for ChallengeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChallengeKey")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A request's durable trace, written in one transaction: its challenge consumed (when it
/// presented one), then, only if that succeeded, the consents it carried and its registration,
/// then its audit record (chained: [`crate::audit_chain`]). When the challenge is refused the
/// record is first rewritten by the group's `refuse` function, so it tells what was really
/// answered; a registration rewrites the record's `returned` with what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditWrite {
    pub record: AuditRecord,
    pub challenge: Option<ChallengeUse>,
    pub consents: Vec<ConsentGrant>,
    pub registration: Option<RegistrationWrite>,
    /// The answer to remember under the request's idempotency key, in the same transaction
    /// as its audit record (crate::idempotency).
    pub remember: Option<RememberedAnswer>,
}

/// An answer remembered by idempotency key: whoever sends the key again (after a restart, or
/// to another instance sharing the store) gets these bytes until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberedAnswer {
    /// `<医療機関コード>-<terminal id>`.
    pub terminal: String,
    /// The call (`numbers`, `medications`, …).
    pub method: String,
    pub key: String,
    /// The answer, encoded by crate::idempotency.
    pub answer: Vec<u8>,
    pub expires_at: OffsetDateTime,
}

impl AuditWrite {
    /// A write of a record alone (no challenge, consents or registration).
    pub fn record(record: AuditRecord) -> Self {
        Self {
            record,
            challenge: None,
            consents: Vec::new(),
            registration: None,
            remember: None,
        }
    }

    /// Notes what the write's registration did, and says so in its record.
    pub fn registered(&mut self, outcome: Registration) {
        if let Some(r) = &mut self.registration {
            r.outcome = Some(outcome);
            self.record.returned = outcome.audit_summary();
        }
    }
}

/// One write of a group commit ([`Store::commit_group`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupWrite {
    /// A challenge consumed on its own (before a request changes anything with it).
    Consume(ChallengeUse),
    /// A request's challenge, consents and audit record.
    Audit(Box<AuditWrite>),
}

/// The head of the audit chain ([`crate::audit_chain`]), kept in one row of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    /// Position of the last record appended (0 before any).
    pub last_seq: i64,
    /// Its hash (the anchor's while the chain is empty).
    pub last_hash: Vec<u8>,
    /// Position of the last record removed by pruning (0 when none was).
    pub anchor_seq: i64,
    /// Its hash: the previous hash of the first record kept ([`crate::audit_chain::GENESIS`]
    /// when none was removed).
    pub anchor_hash: Vec<u8>,
}

/// An audit record as the chain keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedRecord {
    /// The row's own id in the store (insertion order), for reports.
    pub row: i64,
    /// Its position in the chain (1, 2, …); `None` for a row the service never wrote.
    pub position: Option<i64>,
    pub record: AuditRecord,
    pub prev_hash: Option<Vec<u8>>,
    pub hash: Option<Vec<u8>>,
    /// A stored value that cannot belong to any record the service wrote (e.g. SQLite's two
    /// time columns disagreeing), which the record as read cannot show.
    pub defect: Option<String>,
}

/// How a group's audit record is rewritten when its challenge is refused.
pub type Refuse = dyn Fn(&mut AuditRecord, &ChallengeError) + Sync;

/// Leaves a record as it is (for callers whose records carry no challenge).
pub fn keep_record(_: &mut AuditRecord, _: &ChallengeError) {}

/// A batch confirmation job (一括照会), identified by its reception number (受付番号).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchJob {
    pub reception_number: String,
    pub institution_code: String,
    pub terminal_id: String,
    pub submitted_at: OffsetDateTime,
    /// Number of queries in the job.
    pub total: u32,
    /// Queries answered so far.
    pub completed: u32,
    /// Set when every query has its answer.
    pub finished_at: Option<OffsetDateTime>,
}

/// One query of a batch job and, once processed, its answer. Both are opaque to the store
/// (encoded protobuf messages), so the store needs no knowledge of the API's shapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    /// 0-based position in the submission.
    pub ordinal: u32,
    pub query: Vec<u8>,
    pub result: Option<Vec<u8>>,
}

/// The storage interface. Every method is one atomic operation; all are blocking.
pub trait Store: Send + Sync + fmt::Debug {
    /// Which implementation, for logs: `"sqlite"` or `"postgres"`.
    fn kind(&self) -> &'static str;

    // ---- reference data -------------------------------------------------------------------

    /// Writes a batch of reference data in one transaction (all or nothing). A person, card
    /// link or terminal that exists is replaced; qualification records, medications and
    /// checkups are appended.
    fn load(&self, batch: &LoadBatch) -> Result<(), StoreError>;

    /// 導入医療機関リスト: every institution of the registry with at least one terminal in
    /// operation, with how many, by institution code.
    fn institutions_in_operation(&self) -> Result<Vec<ListedInstitution>, StoreError>;

    /// A terminal by its institution code and terminal id.
    fn terminal(
        &self,
        institution_code: &str,
        terminal_id: &str,
    ) -> Result<Option<Terminal>, StoreError>;

    /// The person a certificate belongs to, if the issuing authority linked it.
    fn person_for_card(&self, card: &CardKey) -> Result<Option<String>, StoreError>;

    /// A person by id.
    fn person(&self, id: &str) -> Result<Option<Person>, StoreError>;

    /// All qualification records of a person, oldest first (by qualification date, then
    /// insertion order), with their 特定疾病 certificates in order.
    fn qualifications(&self, person_id: &str) -> Result<Vec<QualificationRecord>, StoreError>;

    /// The ids of the persons with a qualification record carrying these insurance-card
    /// numbers (保険者番号, 記号, 番号, 枝番; an absent 記号 or 枝番 matches only an absent one)
    /// and this birth date, sorted. Usually one; none when nothing matches.
    fn persons_by_numbers(&self, query: &NumbersQuery) -> Result<Vec<String>, StoreError>;

    /// A person's dispensed drugs, newest first.
    fn medications(&self, person_id: &str) -> Result<Vec<Medication>, StoreError>;

    /// A person's checkup results, newest first.
    fn checkups(&self, person_id: &str) -> Result<Vec<Checkup>, StoreError>;

    /// The document a person holds in place of the paper card, if one is recorded.
    fn insurance_document(&self, person_id: &str) -> Result<Option<InsuranceDocument>, StoreError>;

    /// A 医療扶助 recipient's 医療券 / 調剤券 of every month, by month and issue number.
    fn medical_tickets(&self, person_id: &str) -> Result<Vec<MedicalTicket>, StoreError>;

    // ---- registration and consents ---------------------------------------------------------

    /// 健康保険証利用申込み: marks the person registered for insurance use, recording when.
    /// Idempotent. [`StoreError::UnknownPerson`] when there is no such person.
    fn register_for_insurance(
        &self,
        person_id: &str,
        at: OffsetDateTime,
    ) -> Result<Registration, StoreError>;

    /// Records consents; a grant for the same person, institution and kind replaces the older
    /// one.
    fn record_consents(&self, grants: &[ConsentGrant]) -> Result<(), StoreError>;

    /// The latest grant of each kind that a person gave an institution (valid or not).
    fn consents(
        &self,
        person_id: &str,
        institution_code: &str,
    ) -> Result<Vec<ConsentGrant>, StoreError>;

    // ---- challenges and the audit log: the group commit ---------------------------------

    /// Commits `writes` in one durable transaction (fsync'd before it returns), in order:
    /// the service's one writer gathers whatever is waiting into one group, so a burst of N
    /// requests costs one sync and one write lock, not N. Challenge consumption (one insert of
    /// its nonce) is atomic across instances: two concurrent consumptions of one challenge
    /// cannot both succeed. A registration is
    /// applied only with an accepted challenge (its outcome is set on the write, see
    /// [`AuditWrite::registered`]). The audit records are appended to the store's one hash
    /// chain in the group's order, serialized with every other instance's appends. Returns,
    /// per write, the challenge's verdict (`Ok` for writes without one). A store failure, a
    /// duplicate confirmation id, or a registration of an unknown person fails the whole
    /// group.
    fn commit_group(
        &self,
        writes: &mut [GroupWrite],
        refuse: &Refuse,
    ) -> Result<Vec<Result<(), ChallengeError>>, StoreError>;

    /// Consumes a challenge's nonce (a group of one): refused as reused when it was consumed
    /// before. Store failures are [`ChallengeError::Store`].
    fn consume_challenge(&self, nonce: [u8; NONCE_LEN]) -> Result<(), ChallengeError> {
        let mut writes = [GroupWrite::Consume(ChallengeUse { nonce })];
        let verdicts = self
            .commit_group(&mut writes, &keep_record)
            .map_err(|e| ChallengeError::Store(e.to_string()))?;
        verdicts
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(ChallengeError::Store("no verdict".into())))
    }

    /// The keys that seal challenges, newest first (at most two): when there is none, or
    /// the newest was made before `now - rotate_after`, a new random key is made first (by
    /// whichever instance gets there first; the others read it).
    fn challenge_keys(
        &self,
        now: OffsetDateTime,
        rotate_after: time::Duration,
    ) -> Result<Vec<ChallengeKey>, StoreError>;

    /// Forgets the nonces of challenges, and answers remembered by idempotency key, that
    /// expired before `before`; returns how many nonces.
    fn purge_challenges(&self, before: OffsetDateTime) -> Result<u64, StoreError>;

    /// The answer remembered under `(terminal, method, key)`, unless it expired before `now`.
    fn remembered_answer(
        &self,
        terminal: &str,
        method: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Vec<u8>>, StoreError>;

    /// Appends audit records without challenges in one group commit.
    fn append_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        let mut writes: Vec<GroupWrite> = records
            .iter()
            .map(|r| GroupWrite::Audit(Box::new(AuditWrite::record(r.clone()))))
            .collect();
        self.commit_group(&mut writes, &keep_record).map(drop)
    }

    /// Audit records matching the query, oldest first.
    fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError>;

    // ---- the audit chain (crate::audit_chain) ----------------------------------------------

    /// The chain's head: its last position and hash, and its anchor (where the kept records
    /// begin after pruning).
    fn audit_chain_head(&self) -> Result<ChainHead, StoreError>;

    /// Up to `limit` chained records in chain order (position, then row), after `after`
    /// (`(position, row)` of the last one of the previous page). Records with no position are
    /// not included: see [`Store::unchained_audit`].
    fn audit_chain_page(
        &self,
        after: Option<(i64, i64)>,
        limit: u32,
    ) -> Result<Vec<ChainedRecord>, StoreError>;

    /// Up to `limit` records that have no position in the chain (none are ever written so:
    /// each was put there by someone else), in row order.
    fn unchained_audit(&self, limit: u32) -> Result<Vec<ChainedRecord>, StoreError>;

    /// Removes the chain's oldest records while they are older than `before`, in one
    /// transaction serialized with appends, and makes the last one removed the chain's new
    /// anchor, so the rest still verifies. Returns how many were removed.
    fn prune_audit(&self, before: OffsetDateTime) -> Result<u64, StoreError>;

    // ---- batch confirmation (一括照会) -------------------------------------------------------

    /// Stores a new job and its queries (ordinals 0..n) in one transaction.
    fn create_batch(&self, job: &BatchJob, queries: &[Vec<u8>]) -> Result<(), StoreError>;

    /// A job by reception number.
    fn batch(&self, reception_number: &str) -> Result<Option<BatchJob>, StoreError>;

    /// Jobs not finished yet, oldest first (to resume after a restart).
    fn unfinished_batches(&self) -> Result<Vec<BatchJob>, StoreError>;

    /// Takes (or renews) the right to process a job until `lease_until`: true when no other
    /// worker holds an unexpired lease. Lets several instances share one store without two
    /// of them processing the same job.
    fn claim_batch(
        &self,
        reception_number: &str,
        worker: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Up to `limit` items of a job from ordinal `from` on, in order.
    fn batch_items(
        &self,
        reception_number: &str,
        from: u32,
        limit: u32,
    ) -> Result<Vec<BatchItem>, StoreError>;

    /// Stores answers `(ordinal, result)` for items of a job, updates its completed count, and
    /// marks the job finished at `now` when every item has an answer; one transaction.
    /// Answering an item twice keeps the first answer.
    fn complete_batch_items(
        &self,
        reception_number: &str,
        results: &[(u32, Vec<u8>)],
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
}

pub(crate) fn corrupt(what: &'static str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        reason: value.to_string(),
    }
}

/// `YYYY-MM-DD`.
pub fn format_date(d: Date) -> Result<String, StoreError> {
    d.format(ISO_DATE).map_err(|e| corrupt("date", e))
}

pub(crate) fn format_opt_date(d: Option<Date>) -> Result<Option<String>, StoreError> {
    d.map(format_date).transpose()
}

/// Parses `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<Date, StoreError> {
    Date::parse(s, ISO_DATE).map_err(|e| corrupt("date", format!("{s:?}: {e}")))
}

pub(crate) fn parse_opt_date(s: Option<&str>) -> Result<Option<Date>, StoreError> {
    s.map(parse_date).transpose()
}

/// Unix milliseconds: the stores keep instants to the millisecond (SQLite as these, PostgreSQL
/// as a `TIMESTAMPTZ` cut to them), and the audit chain hashes them.
pub(crate) fn millis(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The instant of Unix milliseconds.
pub(crate) fn from_millis(ms: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| corrupt("instant", format!("{ms}: {e}")))
}

/// An instant as both stores keep it: cut to the millisecond.
pub(crate) fn instant(t: OffsetDateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis(t)) * 1_000_000).unwrap_or(t)
}

/// Whether a store location is a PostgreSQL URL rather than a SQLite file path.
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// Opens the store a configuration names: a `postgres://` or `postgresql://` URL, or else a
/// SQLite file path (created if missing).
pub fn open(location: &str) -> Result<Arc<dyn Store>, StoreError> {
    if is_postgres_url(location) {
        return Ok(Arc::new(self::postgres::PgStore::open(location)?));
    }
    if location.is_empty() {
        return Err(StoreError::BadLocation(location.to_owned()));
    }
    Ok(Arc::new(SqliteStore::open(&PathBuf::from(location))?))
}
