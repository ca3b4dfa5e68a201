//! The embedded default store: one SQLite file (WAL mode) holding everything the [`Store`]
//! trait names. Nothing to install; the testbed builds it and the demo runs on it.
//!
//! Connections by role, each committing with `synchronous=FULL` (fsync at every commit, so an
//! acknowledged write survives power loss): the **writer** connection takes the service's
//! group commits (challenges consumed, consents, audit records: the hot path's only
//! writes, gathered by one thread so they never wait for each other's write lock); the main
//! connection takes the rare other writes (loading, registration, batch jobs); an r2d2 pool of
//! **reader** connections (`query_only`) serves lookups, which WAL lets run beside a writer, so
//! concurrent requests do not queue behind one connection.
//! `PRAGMA user_version` is the schema version below.
//!
//! What lives here: the schema and its migrations, the connections, the bulk load ([`Bulk`]),
//! the hot writes (the group commit's statements, registration, consents, batch jobs) and the
//! dialect; the lookups and the group-commit rule are shared with PostgreSQL
//! ([`super::queries`], [`super::group`], [`super::codec`]).
//!
//! Over 1,200 lines on purpose: one implementation of the whole `Store` trait, each method
//! beside the SQL it runs; split by table it would scatter one transaction's statements.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};

use time::{Date, OffsetDateTime};

use super::codec::{self, Value};
use super::group::{self, GroupTx};
use super::pool;
use super::queries::{self, Backend, Session};
use super::{
    corrupt, format_date, format_opt_date, from_millis, millis, parse_opt_date, BatchJob, CardKey,
    ChainHead, ChallengeUse, DbErrorKind, GroupWrite, LoadBatch, Refuse, Registration,
    RememberedAnswer, Store, StoreError, Terminal,
};
use crate::audit::AuditRecord;
use crate::audit_chain::{self, ChainColumns};
use crate::challenge::ChallengeError;
use crate::clinical::{Checkup, Medication};
use crate::consent::ConsentGrant;
use crate::documents::InsuranceDocument;
use crate::eligibility::{Person, QualificationRecord};
use crate::institutions::Institution;
use crate::medical_aid::MedicalTicket;

/// The schema version this code writes and understands (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 9;

const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS persons (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    kana_name TEXT NOT NULL,
    sex INTEGER NOT NULL CHECK (sex IN (1, 2, 3)),
    birth_date TEXT NOT NULL,
    address TEXT NOT NULL,
    postcode TEXT NOT NULL,
    registered_for_insurance INTEGER NOT NULL CHECK (registered_for_insurance IN (0, 1))
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS qualifications (
    id INTEGER PRIMARY KEY,
    person_id TEXT NOT NULL REFERENCES persons(id),
    insured_card_classification TEXT NOT NULL,
    insurer_number TEXT NOT NULL,
    insurer_name TEXT NOT NULL,
    symbol TEXT,
    number TEXT NOT NULL,
    branch TEXT,
    personal_family INTEGER NOT NULL CHECK (personal_family IN (1, 2)),
    insured_person_name TEXT NOT NULL,
    qualification_date TEXT NOT NULL,
    disqualification_date TEXT,
    loss_reason TEXT,
    card_issue_date TEXT NOT NULL,
    card_valid_from TEXT NOT NULL,
    card_expiry TEXT,
    copay_ratio TEXT NOT NULL,
    preschool INTEGER NOT NULL CHECK (preschool IN (0, 1)),
    elderly_valid_from TEXT,
    elderly_valid_until TEXT,
    elderly_copay_ratio TEXT,
    high_cost_certificate_type TEXT,
    high_cost_bracket TEXT,
    high_cost_valid_from TEXT,
    high_cost_valid_until TEXT
);
CREATE INDEX IF NOT EXISTS qualifications_by_person ON qualifications(person_id);
-- For the card-less lookup by insurance numbers.
CREATE INDEX IF NOT EXISTS qualifications_by_numbers
    ON qualifications(insurer_number, number, symbol, branch);

CREATE TABLE IF NOT EXISTS specific_diseases (
    qualification_id INTEGER NOT NULL REFERENCES qualifications(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    category INTEGER NOT NULL CHECK (category IN (1, 2, 3)),
    monthly_cap_yen INTEGER NOT NULL,
    valid_from TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    PRIMARY KEY (qualification_id, ordinal)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS cards (
    issuer_key TEXT NOT NULL,
    serial TEXT NOT NULL,
    person_id TEXT NOT NULL REFERENCES persons(id),
    PRIMARY KEY (issuer_key, serial)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cards_by_person ON cards(person_id);

CREATE TABLE IF NOT EXISTS terminals (
    institution_code TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('in-operation', 'suspended')),
    PRIMARY KEY (institution_code, terminal_id)
) WITHOUT ROWID;
";

/// Reader connections in one store.
const READERS: u32 = 4;

/// Most bytes of the file each connection maps (SQLite caps it at its compile-time limit).
const MMAP_SIZE: i64 = 1 << 34;

/// The writer's page cache, in KiB (negative `cache_size`): the audit and challenge indexes
/// take random keys, so a group touches many pages; keeping them saves re-reading them.
const WRITER_CACHE_KIB: i64 = 65_536;

/// WAL pages before the writer checkpoints: pages dirtied again between checkpoints are
/// copied back once.
const WAL_AUTOCHECKPOINT: i64 = 8_000;

/// How long a lookup waits for a reader connection before giving up.
const READER_WAIT: Duration = Duration::from_secs(30);

/// The eligibility store. See the module documentation.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The group commits ([`Store::commit_group`]).
    writer: Mutex<Connection>,
    /// A fixed pool of `query_only` connections.
    readers: r2d2::Pool<ReaderConnections>,
}

/// Makes the pool's reader connections.
#[derive(Debug)]
struct ReaderConnections {
    path: PathBuf,
}

impl r2d2::ManageConnection for ReaderConnections {
    type Connection = Connection;
    type Error = StoreError;

    fn connect(&self) -> Result<Connection, StoreError> {
        let conn = connect(&self.path, "FULL")?;
        conn.pragma_update(None, "query_only", true)
            .map_err(open_error(&self.path))?;
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut Connection) -> Result<(), StoreError> {
        Ok(conn.execute_batch("")?)
    }

    fn has_broken(&self, _: &mut Connection) -> bool {
        // A file connection does not break; an I/O failure fails its statement.
        false
    }
}

/// How an error of opening the file at `path` is told.
fn open_error(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::Open {
        location: path.display().to_string(),
        reason: e.to_string(),
    }
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file and the schema if missing. Refuses a file
    /// whose schema is newer than this build.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let mut conn = connect(path, "FULL")?;
        migrate(&mut conn, path)?;
        let writer = connect(path, "FULL")?;
        let tune = |name, value: i64| {
            writer
                .pragma_update(None, name, value)
                .map_err(open_error(path))
        };
        tune("cache_size", -WRITER_CACHE_KIB)?;
        tune("wal_autocheckpoint", WAL_AUTOCHECKPOINT)?;
        // All the readers at once: a file's connections open in microseconds.
        let readers = pool::builder(READERS, READER_WAIT)
            .min_idle(None)
            .build(ReaderConnections {
                path: path.to_owned(),
            })
            .map_err(|e| StoreError::Open {
                location: path.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            writer: Mutex::new(writer),
            readers,
        })
    }

    /// A reader connection, waiting for one when all are lent.
    fn reader(&self) -> Result<r2d2::PooledConnection<ReaderConnections>, StoreError> {
        self.readers.get().map_err(|e| StoreError::Busy {
            location: "the SQLite store's readers".to_owned(),
            waited: READER_WAIT,
            reason: e.to_string(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock unwinds through any open `Transaction`, whose drop
        // rolls back, so the connection is consistent and the poison can be ignored rather than
        // taking the whole service down.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` with the connection, for the service's other modules that keep their own
    /// tables in the same file. Blocking: call it from `spawn_blocking`.
    pub fn with_connection<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(&mut self.lock())
    }

    /// Runs `f` inside one transaction, committed if `f` succeeds and rolled back otherwise.
    /// Thousands of inserts in one transaction cost one fsync, not thousands.
    pub fn bulk<R>(
        &self,
        f: impl FnOnce(&mut Bulk<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut bulk = Bulk { tx };
        let out = f(&mut bulk)?;
        bulk.tx.commit()?;
        Ok(out)
    }

    /// Adds a person.
    pub fn insert_person(&self, person: &Person) -> Result<(), StoreError> {
        self.bulk(|b| b.insert_person(person))
    }

    /// Adds a qualification record (its person must exist); returns the record's row id.
    pub fn insert_qualification(&self, record: &QualificationRecord) -> Result<i64, StoreError> {
        self.bulk(|b| b.insert_qualification(record))
    }

    /// Records that the certificate `card` belongs to `person_id` (the issuing authority's
    /// link). Linking the same certificate again replaces the link.
    pub fn link_card(&self, card: &CardKey, person_id: &str) -> Result<(), StoreError> {
        self.bulk(|b| b.link_card(card, person_id))
    }

    /// Adds or updates a terminal.
    pub fn upsert_terminal(&self, terminal: &Terminal) -> Result<(), StoreError> {
        self.bulk(|b| b.upsert_terminal(terminal))
    }

    /// Marks a person as registered (or not) for insurance use.
    pub fn set_registered(&self, person_id: &str, registered: bool) -> Result<(), StoreError> {
        self.bulk(|b| b.set_registered(person_id, registered))
    }
}

/// Writes inside one transaction; see [`SqliteStore::bulk`].
#[derive(Debug)]
pub struct Bulk<'c> {
    tx: Transaction<'c>,
}

impl Bulk<'_> {
    /// Adds a person.
    pub fn insert_person(&mut self, p: &Person) -> Result<(), StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO persons (id, name, kana_name, sex, birth_date, address, postcode,
                                  registered_for_insurance)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        stmt.execute(params![
            p.id,
            p.name,
            p.kana_name,
            p.sex,
            format_date(p.birth_date)?,
            p.address,
            p.postcode,
            p.registered_for_insurance,
        ])?;
        Ok(())
    }

    /// Adds a qualification record; returns its row id.
    pub fn insert_qualification(&mut self, q: &QualificationRecord) -> Result<i64, StoreError> {
        let mut stmt = self.tx.prepare_cached(&format!(
            "INSERT INTO qualifications ({})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                     ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)",
            codec::QUALIFICATION_COLUMNS
        ))?;
        let elderly = q.elderly.as_ref();
        let limit = q.high_cost_limit.as_ref();
        stmt.execute(params![
            q.person_id,
            q.insured_card_classification,
            q.insurer_number.as_str(),
            q.insurer_name,
            q.symbol,
            q.number,
            q.branch,
            q.personal_family,
            q.insured_person_name,
            format_date(q.qualification_date)?,
            format_opt_date(q.disqualification_date)?,
            q.loss_reason,
            format_date(q.card_issue_date)?,
            format_date(q.card_valid_from)?,
            format_opt_date(q.card_expiry)?,
            q.copay_ratio,
            q.preschool,
            format_opt_date(elderly.map(|e| e.valid_from))?,
            format_opt_date(elderly.map(|e| e.valid_until))?,
            elderly.map(|e| e.copay_ratio.as_str()),
            limit.and_then(|l| l.certificate_type.as_deref()),
            limit.map(|l| l.bracket.as_str()),
            format_opt_date(limit.map(|l| l.valid_from))?,
            format_opt_date(limit.map(|l| l.valid_until))?,
        ])
        .map_err(|e| unknown_person_or(e, &q.person_id))?;
        let id = self.tx.last_insert_rowid();
        if !q.specific_diseases.is_empty() {
            let mut stmt = self.tx.prepare_cached(
                "INSERT INTO specific_diseases
                     (qualification_id, ordinal, category, monthly_cap_yen, valid_from,
                      valid_until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (ordinal, d) in q.specific_diseases.iter().enumerate() {
                stmt.execute(params![
                    id,
                    ordinal as i64,
                    d.category,
                    d.monthly_cap_yen,
                    format_date(d.valid_from)?,
                    format_date(d.valid_until)?,
                ])?;
            }
        }
        Ok(id)
    }

    /// Links a certificate to a person; see [`SqliteStore::link_card`].
    pub fn link_card(&mut self, card: &CardKey, person_id: &str) -> Result<(), StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO cards (issuer_key, serial, person_id) VALUES (?1, ?2, ?3)
             ON CONFLICT (issuer_key, serial) DO UPDATE SET person_id = excluded.person_id",
        )?;
        stmt.execute(params![card.issuer_key, card.serial, person_id])
            .map_err(|e| unknown_person_or(e, person_id))?;
        Ok(())
    }

    /// Adds or updates a terminal.
    pub fn upsert_terminal(&mut self, t: &Terminal) -> Result<(), StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO terminals (institution_code, terminal_id, status, device_public_key)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (institution_code, terminal_id) DO UPDATE SET status = excluded.status,
                 device_public_key = excluded.device_public_key",
        )?;
        stmt.execute(params![
            t.institution_code,
            t.terminal_id,
            t.status.as_str(),
            t.device_public_key,
        ])?;
        Ok(())
    }

    /// Adds or replaces an institution's registry entry.
    pub fn upsert_institution(&mut self, i: &Institution) -> Result<(), StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO institutions (institution_code, name, started_on) VALUES (?1, ?2, ?3)
             ON CONFLICT (institution_code) DO UPDATE SET name = excluded.name,
                 started_on = excluded.started_on",
        )?;
        stmt.execute(params![
            i.institution_code,
            i.name,
            format_date(i.started_on)?
        ])?;
        Ok(())
    }

    /// Marks a person as registered (or not) for insurance use.
    pub fn set_registered(&mut self, person_id: &str, registered: bool) -> Result<(), StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("UPDATE persons SET registered_for_insurance = ?2 WHERE id = ?1")?;
        if stmt.execute(params![person_id, registered])? == 0 {
            return Err(StoreError::UnknownPerson(person_id.to_owned()));
        }
        Ok(())
    }
}

/// One connection to the file in WAL mode with the given `synchronous` level.
fn connect(path: &Path, synchronous: &str) -> Result<Connection, StoreError> {
    let open_err = open_error(path);
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(&open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(&open_err)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(&open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Open {
            location: path.display().to_string(),
            reason: format!("it did not switch to WAL mode (journal mode is {mode})"),
        });
    }
    // FULL: in WAL mode the log is fsync'd at every commit, so a committed row survives
    // power loss, which the audit log relies on.
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(&open_err)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(&open_err)?;
    // Read pages through a memory map: every commit of the writer makes a reader drop its
    // page cache at its next read, and without the map each lookup would then copy its pages
    // in again with pread(2). (Writes still go through the WAL; the map is read-only.)
    conn.pragma_update(None, "mmap_size", MMAP_SIZE)
        .map_err(&open_err)?;
    Ok(conn)
}

/// Version 5 (one step): the visit time a caught-up confirmation claims, beside the receipt
/// time (`claimed_at`, Unix milliseconds), and the answers remembered by idempotency key, so a
/// key sent again after a restart is answered from the record (crate::idempotency).
const SCHEMA_V5: &str = "
ALTER TABLE audit ADD COLUMN claimed_at INTEGER;
CREATE TABLE idempotency (
    terminal   TEXT NOT NULL,
    method     TEXT NOT NULL,
    key        TEXT NOT NULL,
    answer     BLOB NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (terminal, method, key)
);
CREATE INDEX idempotency_by_expiry ON idempotency(expires_at);
";

/// Version 6: the institutions' registry (導入医療機関リスト): name and the date online
/// confirmation started; the prefecture is the code's first two digits. An older store has no
/// entries, so it lists no institution until the world is loaded again.
const SCHEMA_V6: &str = "
CREATE TABLE IF NOT EXISTS institutions (
    institution_code TEXT PRIMARY KEY,
    name TEXT NOT NULL CHECK (length(name) > 0),
    started_on TEXT NOT NULL
) WITHOUT ROWID;
";

/// Version 7: sealed challenges (crate::challenge). Issuing writes nothing; a use inserts the
/// challenge's nonce, which begins with its expiry, so the table grows at its end and is pruned
/// by a key range. The sealing keys are shared by the instances here. Challenges outstanding
/// at the upgrade were random bytes the service no longer recognises: they are dropped (a
/// terminal asks for a new one, as after any refusal).
const SCHEMA_V7: &str = "
DROP TABLE IF EXISTS challenges;
CREATE TABLE IF NOT EXISTS used_challenges (
    nonce BLOB PRIMARY KEY CHECK (length(nonce) = 16)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS challenge_keys (
    id INTEGER PRIMARY KEY,
    secret BLOB NOT NULL CHECK (length(secret) = 32),
    created_at INTEGER NOT NULL
);
";

/// Version 8: the document each person holds in place of the paper insurance card
/// (資格確認書 with its validity period, or 資格情報のお知らせ without one). An older store
/// has none, so its answers carry no document until the world is loaded again.
const SCHEMA_V8: &str = "
CREATE TABLE IF NOT EXISTS insurance_documents (
    person_id TEXT PRIMARY KEY REFERENCES persons(id),
    kind TEXT NOT NULL CHECK (kind IN ('shikaku-kakuninsho', 'shikaku-joho-oshirase')),
    valid_from TEXT,
    valid_until TEXT
) WITHOUT ROWID;
";

/// Version 9: 医療扶助 recipients' 医療券 / 調剤券 (the recipients themselves are
/// qualification records of classification A1). A ticket answers for its treatment month
/// from the day it was registered (`registered_on`, NULL while on paper only).
const SCHEMA_V9: &str = "
CREATE TABLE IF NOT EXISTS medical_tickets (
    person_id TEXT NOT NULL REFERENCES persons(id),
    treatment_month TEXT NOT NULL CHECK (length(treatment_month) = 6),
    kind TEXT NOT NULL CHECK (kind IN ('1', '2')),
    issue_number TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    institution_code TEXT NOT NULL,
    institution_name TEXT NOT NULL,
    self_pay_yen INTEGER NOT NULL CHECK (self_pay_yen >= 0),
    registered_on TEXT,
    PRIMARY KEY (person_id, treatment_month, issue_number)
) WITHOUT ROWID;
";

/// Version 4: the audit log's hash chain (crate::audit_chain): each record's position, its
/// predecessor's hash and its own; the head and anchor in `audit_chain`'s one row. Records
/// already there are chained at migration, in the order they were written.
const SCHEMA_V4: &str = "
ALTER TABLE audit ADD COLUMN chain_seq INTEGER;
ALTER TABLE audit ADD COLUMN prev_hash BLOB;
ALTER TABLE audit ADD COLUMN hash BLOB;
CREATE INDEX audit_by_chain ON audit(chain_seq, seq);
CREATE TABLE audit_chain (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    last_seq INTEGER NOT NULL,
    last_hash BLOB NOT NULL,
    anchor_seq INTEGER NOT NULL,
    anchor_hash BLOB NOT NULL
);
";

/// Version 3: the terminals' device public keys (face and visual-check attestations); a
/// terminal of an older store has none.
const SCHEMA_V3: &str = "
ALTER TABLE terminals ADD COLUMN device_public_key BLOB
    CHECK (device_public_key IS NULL OR length(device_public_key) = 65);
";

/// Version 2: registration time, clinical data, consents, challenges, audit and batch jobs
/// (the last two were created by their modules before; `IF NOT EXISTS` adopts them).
const SCHEMA_V2: &str = "
ALTER TABLE persons ADD COLUMN registered_at INTEGER;

CREATE TABLE IF NOT EXISTS medications (
    id INTEGER PRIMARY KEY,
    person_id TEXT NOT NULL REFERENCES persons(id),
    dispensed_on TEXT NOT NULL,
    institution_code TEXT NOT NULL,
    institution_name TEXT NOT NULL,
    drug_code TEXT NOT NULL,
    drug_name TEXT NOT NULL,
    usage TEXT NOT NULL,
    daily_quantity TEXT NOT NULL,
    days INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS medications_by_person ON medications(person_id, dispensed_on);

CREATE TABLE IF NOT EXISTS checkups (
    id INTEGER PRIMARY KEY,
    person_id TEXT NOT NULL REFERENCES persons(id),
    examined_on TEXT NOT NULL,
    height_cm_x10 INTEGER NOT NULL,
    weight_kg_x10 INTEGER NOT NULL,
    waist_cm_x10 INTEGER NOT NULL,
    bmi_x10 INTEGER NOT NULL,
    systolic_mmhg INTEGER NOT NULL,
    diastolic_mmhg INTEGER NOT NULL,
    hba1c_x10 INTEGER NOT NULL,
    ldl_mg_dl INTEGER NOT NULL,
    judgement TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checkups_by_person ON checkups(person_id, examined_on);

-- Instants are Unix milliseconds.
CREATE TABLE IF NOT EXISTS consents (
    person_id TEXT NOT NULL,
    institution_code TEXT NOT NULL,
    kind TEXT NOT NULL,
    given_at INTEGER NOT NULL,
    valid_until INTEGER NOT NULL,
    PRIMARY KEY (person_id, institution_code, kind)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS challenges (
    challenge  BLOB PRIMARY KEY,
    terminal   TEXT NOT NULL,
    purpose    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS challenges_expiry ON challenges(expires_at);

CREATE TABLE IF NOT EXISTS audit (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT,
    confirmation_id    TEXT NOT NULL UNIQUE,
    at                 TEXT NOT NULL,
    institution_code   TEXT NOT NULL,
    terminal_id        TEXT NOT NULL,
    person_id          TEXT,
    method             TEXT NOT NULL,
    purpose            TEXT NOT NULL,
    result_code        TEXT NOT NULL,
    consents           INTEGER NOT NULL,
    certificate_sha256 TEXT,
    returned           TEXT NOT NULL
);
ALTER TABLE audit ADD COLUMN at_ms INTEGER NOT NULL DEFAULT 0;
UPDATE audit SET at_ms = CAST(ROUND((julianday(at) - 2440587.5) * 86400000) AS INTEGER);
DROP INDEX IF EXISTS audit_person;
DROP INDEX IF EXISTS audit_institution;
CREATE INDEX audit_by_person ON audit(person_id, at_ms);
CREATE INDEX audit_by_institution ON audit(institution_code, at_ms);
CREATE INDEX audit_by_time ON audit(at_ms);

CREATE TABLE IF NOT EXISTS batch_jobs (
    reception_number TEXT PRIMARY KEY NOT NULL,
    institution_code TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    total INTEGER NOT NULL,
    completed INTEGER NOT NULL DEFAULT 0,
    finished_at INTEGER,
    lease_owner TEXT,
    lease_until INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS batch_jobs_unfinished ON batch_jobs(finished_at, submitted_at);

CREATE TABLE IF NOT EXISTS batch_items (
    reception_number TEXT NOT NULL REFERENCES batch_jobs(reception_number),
    ordinal INTEGER NOT NULL,
    query BLOB NOT NULL,
    result BLOB,
    PRIMARY KEY (reception_number, ordinal)
) WITHOUT ROWID;
";

impl Bulk<'_> {
    /// Adds a dispensed drug.
    pub fn insert_medication(&mut self, m: &Medication) -> Result<(), StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO medications (person_id, dispensed_on, institution_code,
                 institution_name, drug_code, drug_name, usage, daily_quantity, days)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        stmt.execute(params![
            m.person_id,
            format_date(m.dispensed_on)?,
            m.institution_code,
            m.institution_name,
            m.drug_code,
            m.drug_name,
            m.usage,
            m.daily_quantity,
            m.days,
        ])
        .map_err(|e| unknown_person_or(e, &m.person_id))?;
        Ok(())
    }

    /// Records the document a person holds, replacing the one recorded before.
    pub fn upsert_document(&mut self, d: &InsuranceDocument) -> Result<(), StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO insurance_documents (person_id, kind, valid_from, valid_until)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (person_id) DO UPDATE SET kind = excluded.kind,
                 valid_from = excluded.valid_from, valid_until = excluded.valid_until",
        )?;
        stmt.execute(params![
            d.person_id,
            d.kind.as_str(),
            format_opt_date(d.valid_from)?,
            format_opt_date(d.valid_until)?,
        ])
        .map_err(|e| unknown_person_or(e, &d.person_id))?;
        Ok(())
    }

    /// Records a 医療券 / 調剤券, replacing the one with the same person, month and number.
    pub fn upsert_ticket(&mut self, t: &MedicalTicket) -> Result<(), StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO medical_tickets (person_id, treatment_month, kind, issue_number,
                 valid_from, valid_until, institution_code, institution_name, self_pay_yen,
                 registered_on)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (person_id, treatment_month, issue_number) DO UPDATE SET
                 kind = excluded.kind, valid_from = excluded.valid_from,
                 valid_until = excluded.valid_until,
                 institution_code = excluded.institution_code,
                 institution_name = excluded.institution_name,
                 self_pay_yen = excluded.self_pay_yen, registered_on = excluded.registered_on",
        )?;
        stmt.execute(params![
            t.person_id,
            t.month.yyyymm(),
            t.kind.code(),
            t.issue_number,
            format_date(t.valid_from)?,
            format_date(t.valid_until)?,
            t.institution_code,
            t.institution_name,
            t.self_pay_yen,
            format_opt_date(t.registered_on)?,
        ])
        .map_err(|e| unknown_person_or(e, &t.person_id))?;
        Ok(())
    }

    /// Adds a checkup result.
    pub fn insert_checkup(&mut self, c: &Checkup) -> Result<(), StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO checkups (person_id, examined_on, height_cm_x10, weight_kg_x10,
                 waist_cm_x10, bmi_x10, systolic_mmhg, diastolic_mmhg, hba1c_x10, ldl_mg_dl,
                 judgement)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        stmt.execute(params![
            c.person_id,
            format_date(c.examined_on)?,
            c.height_cm_x10,
            c.weight_kg_x10,
            c.waist_cm_x10,
            c.bmi_x10,
            c.systolic_mmhg,
            c.diastolic_mmhg,
            c.hba1c_x10,
            c.ldl_mg_dl,
            c.judgement,
        ])
        .map_err(|e| unknown_person_or(e, &c.person_id))?;
        Ok(())
    }

    /// Writes a whole [`LoadBatch`]; see [`Store::load`].
    pub fn load(&mut self, batch: &LoadBatch) -> Result<(), StoreError> {
        for p in &batch.persons {
            self.upsert_person(p)?;
        }
        for q in &batch.qualifications {
            self.insert_qualification(q)?;
        }
        for (card, person) in &batch.cards {
            self.link_card(card, person)?;
        }
        for t in &batch.terminals {
            self.upsert_terminal(t)?;
        }
        for i in &batch.institutions {
            self.upsert_institution(i)?;
        }
        for m in &batch.medications {
            self.insert_medication(m)?;
        }
        for c in &batch.checkups {
            self.insert_checkup(c)?;
        }
        for d in &batch.documents {
            self.upsert_document(d)?;
        }
        for t in &batch.medical_tickets {
            self.upsert_ticket(t)?;
        }
        Ok(())
    }

    /// Adds a person, or replaces one with the same id (its records stay).
    pub fn upsert_person(&mut self, p: &Person) -> Result<(), StoreError> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO persons (id, name, kana_name, sex, birth_date, address, postcode,
                                  registered_for_insurance)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                 kana_name = excluded.kana_name, sex = excluded.sex,
                 birth_date = excluded.birth_date, address = excluded.address,
                 postcode = excluded.postcode,
                 registered_for_insurance = excluded.registered_for_insurance",
        )?;
        stmt.execute(params![
            p.id,
            p.name,
            p.kana_name,
            p.sex,
            format_date(p.birth_date)?,
            p.address,
            p.postcode,
            p.registered_for_insurance,
        ])?;
        Ok(())
    }
}

impl SqliteStore {
    fn lock_writer(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Streams the reference data out in chunks of up to `chunk_persons` persons (with their
    /// qualification records, card links, medications and checkups; the terminals come with
    /// the first chunk), in person-id order: for copying a world into another store without
    /// holding it in memory. Stops at the first error `f` returns.
    pub fn export(
        &self,
        chunk_persons: usize,
        mut f: impl FnMut(LoadBatch) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let chunk = chunk_persons.max(1);
        let mut batch = LoadBatch {
            terminals: self.terminals()?,
            institutions: self.institutions()?,
            ..LoadBatch::default()
        };
        let mut after = String::new();
        loop {
            let ids: Vec<String> = {
                let conn = self.lock();
                let mut stmt = conn
                    .prepare_cached("SELECT id FROM persons WHERE id > ?1 ORDER BY id LIMIT ?2")?;
                let rows = stmt
                    .query_map(params![after, chunk as i64], |r| r.get(0))?
                    .collect::<Result<Vec<String>, _>>()?;
                rows
            };
            let Some(last) = ids.last() else { break };
            after = last.clone();
            for id in &ids {
                let person = self
                    .person(id)?
                    .ok_or_else(|| StoreError::UnknownPerson(id.clone()))?;
                batch.persons.push(person);
                batch.qualifications.extend(self.qualifications(id)?);
                batch.medications.extend(self.medications(id)?);
                batch.checkups.extend(self.checkups(id)?);
                batch.documents.extend(self.insurance_document(id)?);
                batch.medical_tickets.extend(self.medical_tickets(id)?);
                batch
                    .cards
                    .extend(self.cards_of(id)?.into_iter().map(|k| (k, id.clone())));
            }
            f(std::mem::take(&mut batch))?;
        }
        if !batch.is_empty() {
            f(batch)?;
        }
        Ok(())
    }

    /// Every institution's registry entry, by code (with or without terminals).
    pub fn institutions(&self) -> Result<Vec<Institution>, StoreError> {
        self.read(|s| {
            s.rows(
                "SELECT institution_code, name, started_on FROM institutions
                 ORDER BY institution_code",
                &[],
                |r| {
                    Ok(Institution {
                        institution_code: r.text(0)?,
                        name: r.text(1)?,
                        started_on: r.date(2)?,
                    })
                },
            )
        })
    }

    /// Every terminal, by institution code and id.
    pub fn terminals(&self) -> Result<Vec<Terminal>, StoreError> {
        self.read(|s| {
            s.rows(
                &format!(
                    "SELECT {} FROM terminals ORDER BY institution_code, terminal_id",
                    codec::TERMINAL_COLUMNS
                ),
                &[],
                codec::terminal,
            )
        })
    }

    /// The certificates linked to a person.
    pub fn cards_of(&self, person_id: &str) -> Result<Vec<CardKey>, StoreError> {
        self.read(|s| {
            s.rows(
                "SELECT issuer_key, serial FROM cards WHERE person_id = $1
                 ORDER BY issuer_key, serial",
                &[person_id.into()],
                |r| {
                    Ok(CardKey {
                        issuer_key: r.text(0)?,
                        serial: r.text(1)?,
                    })
                },
            )
        })
    }
}

/// Statements on one SQLite connection: the shared SQL's `$1` placeholders bound as `?1`, each
/// statement prepared once per connection (`prepare_cached`).
struct Lite<'c>(&'c Connection);

/// The shared SQL in SQLite's spelling of placeholders (`?1` for `$1`).
fn sqlite_sql(sql: &str) -> std::borrow::Cow<'_, str> {
    if sql.contains('$') {
        std::borrow::Cow::Owned(sql.replace('$', "?"))
    } else {
        std::borrow::Cow::Borrowed(sql)
    }
}

impl Session for Lite<'_> {
    fn query(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(&dyn codec::Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut stmt = self.0.prepare_cached(&sqlite_sql(sql))?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            each(&LiteRow(row))?;
        }
        Ok(())
    }

    fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, StoreError> {
        let changed = self
            .0
            .prepare_cached(&sqlite_sql(sql))?
            .execute(rusqlite::params_from_iter(params))?;
        Ok(changed as u64)
    }
}

/// A value in SQLite's representation: dates as `YYYY-MM-DD` text, instants as Unix
/// milliseconds, booleans as 0 and 1.
impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as Owned;
        Ok(match *self {
            Value::Null => ToSqlOutput::Owned(Owned::Null),
            Value::Int(v) => ToSqlOutput::Owned(Owned::Integer(v)),
            Value::Bool(v) => ToSqlOutput::Owned(Owned::Integer(i64::from(v))),
            Value::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Value::Bytes(v) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
            Value::Date(d) => ToSqlOutput::Owned(Owned::Text(
                format_date(d).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
            )),
            Value::Instant(t) => ToSqlOutput::Owned(Owned::Integer(millis(t))),
        })
    }
}

/// A row in SQLite's representation.
struct LiteRow<'r, 's>(&'r rusqlite::Row<'s>);

impl codec::Row for LiteRow<'_, '_> {
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(self.0.get(i)?)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.0.get(i)?)
    }
    fn opt_bool(&self, i: usize) -> Result<Option<bool>, StoreError> {
        Ok(self.0.get(i)?)
    }
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(i)?)
    }
    fn opt_date(&self, i: usize) -> Result<Option<Date>, StoreError> {
        parse_opt_date(
            self.0
                .get_ref(i)?
                .as_str_or_null()
                .map_err(|e| corrupt("date", e))?,
        )
    }
    fn opt_instant(&self, i: usize) -> Result<Option<OffsetDateTime>, StoreError> {
        self.0
            .get::<_, Option<i64>>(i)?
            .map(from_millis)
            .transpose()
    }
}

impl Backend for SqliteStore {
    const KIND: &'static str = "sqlite";
    const AUDIT_TIME: &'static str = "at_ms";
    const CHAIN_TIME_CHECK: &'static str = ", at";
    const FOR_UPDATE: &'static str = "";

    /// `at_ms` is the instant; the RFC 3339 text `at` (column 16) must say the same.
    fn chained_time(r: &dyn codec::Row) -> Result<(OffsetDateTime, Option<String>), StoreError> {
        let at_ms = r.int(5)?;
        let at = from_millis(at_ms).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let text = r.text(16)?;
        let parsed = OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339);
        let defect = (parsed.map(millis).ok() != Some(at_ms))
            .then(|| format!("its time {text:?} is not its at_ms {at_ms}"));
        Ok((at, defect))
    }

    fn read<R>(
        &self,
        f: impl FnOnce(&mut dyn Session) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let conn = self.reader()?;
        f(&mut Lite(&conn))
    }

    fn write<R>(
        &self,
        f: impl FnOnce(&mut dyn Session) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&mut Lite(&tx))?;
        tx.commit()?;
        Ok(out)
    }

    fn write_beside_groups<R>(
        &self,
        f: impl FnOnce(&mut dyn Session) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.lock_writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = f(&mut Lite(&tx))?;
        tx.commit()?;
        Ok(out)
    }

    fn load_batch(&self, batch: &LoadBatch) -> Result<(), StoreError> {
        self.bulk(|b| b.load(batch))
    }

    fn register(&self, person_id: &str, at: OffsetDateTime) -> Result<Registration, StoreError> {
        register(&self.lock(), person_id, at)
    }

    fn upsert_consents(&self, grants: &[ConsentGrant]) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        insert_consents(&tx, grants)?;
        tx.commit()?;
        Ok(())
    }

    fn group_commit(
        &self,
        writes: &mut [GroupWrite],
        refuse: &Refuse,
    ) -> Result<group::Verdicts, StoreError> {
        let mut conn = self.lock_writer();
        // The immediate transaction holds the file's write lock: appends to the chain are
        // serialized with every other connection's, in any process.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let verdicts = group::commit(&mut GroupStatements(&tx), writes, refuse)?;
        tx.commit()?;
        Ok(verdicts)
    }

    fn insert_batch(&self, job: &BatchJob, queries: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.prepare_cached(&format!(
            "INSERT INTO batch_jobs ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            codec::BATCH_COLUMNS
        ))?
        .execute(params![
            job.reception_number,
            job.institution_code,
            job.terminal_id,
            millis(job.submitted_at),
            job.total,
            job.completed,
            job.finished_at.map(millis),
        ])?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO batch_items (reception_number, ordinal, query) VALUES (?1, ?2, ?3)",
            )?;
            for (i, q) in queries.iter().enumerate() {
                stmt.execute(params![job.reception_number, i as i64, q])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn answer_batch_items(
        &self,
        reception_number: &str,
        results: &[(u32, Vec<u8>)],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // The immediate transaction holds the file: completions take turns.
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut answered = 0i64;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE batch_items SET result = ?3
                 WHERE reception_number = ?1 AND ordinal = ?2 AND result IS NULL",
            )?;
            for (ordinal, result) in results {
                answered += stmt.execute(params![reception_number, ordinal, result])? as i64;
            }
        }
        tx.prepare_cached(COUNT_ANSWERS)?.execute(params![
            reception_number,
            answered,
            millis(now)
        ])?;
        tx.commit()?;
        Ok(())
    }
}

/// Counts a job's new answers, and marks it finished when every item has one.
const COUNT_ANSWERS: &str = "UPDATE batch_jobs SET completed = completed + ?2,
         finished_at = CASE WHEN finished_at IS NULL AND completed + ?2 >= total
                            THEN ?3 ELSE finished_at END
     WHERE reception_number = ?1";

/// The group commit's statements ([`group`]) inside the writer's immediate transaction:
/// row by row, each a cached prepared statement, which in-process SQLite runs as fast as a
/// multi-row one.
struct GroupStatements<'t>(&'t Connection);

impl GroupTx for GroupStatements<'_> {
    fn consume(&mut self, u: &ChallengeUse) -> Result<Result<(), ChallengeError>, StoreError> {
        // One append-only insert: the nonce is there already when the challenge was used.
        let inserted = self
            .0
            .prepare_cached("INSERT OR IGNORE INTO used_challenges (nonce) VALUES (?1)")?
            .execute(params![&u.nonce[..]])?;
        Ok(if inserted == 1 {
            Ok(())
        } else {
            Err(ChallengeError::Reused)
        })
    }

    fn register(
        &mut self,
        person_id: &str,
        at: OffsetDateTime,
    ) -> Result<Registration, StoreError> {
        register(self.0, person_id, at)
    }

    fn insert_consents(&mut self, grants: &[&ConsentGrant]) -> Result<(), StoreError> {
        insert_consents(self.0, grants.iter().copied())
    }

    fn remember(&mut self, answers: &[&RememberedAnswer]) -> Result<(), StoreError> {
        let mut stmt = self.0.prepare_cached(
            "INSERT INTO idempotency (terminal, method, key, answer, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )?;
        for a in answers {
            stmt.execute(params![
                a.terminal,
                a.method,
                a.key,
                a.answer,
                millis(a.expires_at)
            ])?;
        }
        Ok(())
    }

    fn lock_chain_head(&mut self) -> Result<ChainHead, StoreError> {
        // The immediate transaction already holds the file's write lock.
        queries::chain_head(&mut Lite(self.0), "")
    }

    fn append_audit(
        &mut self,
        records: &[&AuditRecord],
        chain: &[ChainColumns],
        last_seq: i64,
        last_hash: &[u8],
    ) -> Result<(), StoreError> {
        for (record, (position, prev, this)) in records.iter().zip(chain) {
            insert_audit(self.0, record, *position, prev, this)?;
        }
        self.0
            .prepare_cached("UPDATE audit_chain SET last_seq = ?1, last_hash = ?2")?
            .execute(params![last_seq, last_hash])?;
        Ok(())
    }
}

fn insert_consents<'g>(
    tx: &Connection,
    grants: impl IntoIterator<Item = &'g ConsentGrant>,
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO consents (person_id, institution_code, kind, given_at, valid_until)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (person_id, institution_code, kind) DO UPDATE
         SET given_at = excluded.given_at, valid_until = excluded.valid_until",
    )?;
    for g in grants {
        stmt.execute(params![
            g.person_id,
            g.institution_code,
            g.kind.as_str(),
            millis(g.given_at),
            millis(g.valid_until)
        ])?;
    }
    Ok(())
}

/// Marks a person registered (see [`Store::register_for_insurance`]).
fn register(
    conn: &Connection,
    person_id: &str,
    at: OffsetDateTime,
) -> Result<Registration, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE persons SET registered_for_insurance = 1, registered_at = ?2
             WHERE id = ?1 AND registered_for_insurance = 0",
        )?
        .execute(params![person_id, millis(at)])?;
    if changed == 1 {
        return Ok(Registration::Registered);
    }
    let exists: Option<i64> = conn
        .prepare_cached("SELECT 1 FROM persons WHERE id = ?1")?
        .query_row([person_id], |r| r.get(0))
        .optional()?;
    match exists {
        Some(_) => Ok(Registration::AlreadyRegistered),
        None => Err(StoreError::UnknownPerson(person_id.to_owned())),
    }
}

/// The RFC 3339 text of the `at` column.
fn at_text(at: OffsetDateTime) -> Result<String, StoreError> {
    at.format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| corrupt("audit time", e))
}

fn insert_audit(
    tx: &Connection,
    r: &AuditRecord,
    position: i64,
    prev_hash: &[u8],
    hash: &[u8],
) -> Result<(), StoreError> {
    let at = at_text(r.at)?;
    tx.prepare_cached(
        "INSERT INTO audit (confirmation_id, at, at_ms, institution_code, terminal_id,
             person_id, method, purpose, result_code, consents, certificate_sha256, returned,
             chain_seq, prev_hash, hash, claimed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        r.confirmation_id,
        at,
        millis(r.at),
        r.institution_code,
        r.terminal_id,
        r.person_id,
        r.method,
        r.purpose,
        r.result_code,
        r.consents,
        r.certificate_sha256,
        r.returned,
        position,
        prev_hash,
        hash,
        r.claimed_at.map(millis),
    ])?;
    Ok(())
}

/// Chains the records written before the chain existed, in the order they were written
/// (version 4's migration).
fn chain_existing(tx: &Connection) -> Result<(), StoreError> {
    let session: &mut dyn Session = &mut Lite(tx);
    let rows = session.rows(
        &format!(
            "SELECT {}, confirmation_id, at_ms, {}, at FROM audit
             WHERE chain_seq IS NULL ORDER BY seq",
            codec::CHAIN_FIELDS,
            codec::AUDIT_FIELDS_UNCLAIMED_SQLITE
        ),
        &[],
        |r| codec::chained_record(r, SqliteStore::chained_time),
    )?;
    let head = queries::chain_head(session, "")?;
    let (cols, seq, hash) = audit_chain::extend(
        head.last_seq,
        &head.last_hash,
        rows.iter().map(|r| &r.record),
    );
    let mut update =
        tx.prepare("UPDATE audit SET chain_seq = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?1")?;
    for (row, (position, prev, this)) in rows.iter().zip(&cols) {
        update.execute(params![row.row, position, prev, this])?;
    }
    tx.execute(
        "UPDATE audit_chain SET last_seq = ?1, last_hash = ?2",
        params![seq, hash],
    )?;
    Ok(())
}

/// Creates or checks the schema inside one immediate transaction, so two processes opening a
/// fresh file at once do not both create it.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            location: path.display().to_string(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        // Version 0 is a fresh file (or one where only other modules' tables exist yet).
        tx.execute_batch(SCHEMA_V1)?;
    }
    if version < 2 {
        tx.execute_batch(SCHEMA_V2)?;
    }
    if version < 3 {
        tx.execute_batch(SCHEMA_V3)?;
    }
    if version < 4 {
        tx.execute_batch(SCHEMA_V4)?;
        tx.execute(
            "INSERT INTO audit_chain (singleton, last_seq, last_hash, anchor_seq, anchor_hash)
             VALUES (1, 0, ?1, 0, ?1)",
            params![&audit_chain::GENESIS[..]],
        )?;
        chain_existing(&tx)?;
    }
    if version < 5 {
        tx.execute_batch(SCHEMA_V5)?;
    }
    if version < 6 {
        tx.execute_batch(SCHEMA_V6)?;
    }
    if version < 7 {
        tx.execute_batch(SCHEMA_V7)?;
    }
    if version < 8 {
        tx.execute_batch(SCHEMA_V8)?;
    }
    if version < 9 {
        tx.execute_batch(SCHEMA_V9)?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}

/// A foreign-key failure on insert means the person does not exist: say so.
fn unknown_person_or(e: rusqlite::Error, person_id: &str) -> StoreError {
    match StoreError::from(e) {
        StoreError::Database { source, .. } if source.kind == DbErrorKind::ForeignKeyViolation => {
            StoreError::UnknownPerson(person_id.to_owned())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditQuery;
    use crate::eligibility::{ElderlyCertificate, HighCostLimit, InsurerNumber, SpecificDisease};
    use crate::store::{parse_date, TerminalStatus};
    use std::path::PathBuf;
    use time::macros::date;

    /// A temporary store file, removed (with its WAL files) on drop.
    struct TempStore {
        dir: PathBuf,
    }

    impl TempStore {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "onshi-store-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self { dir }
        }
        fn path(&self) -> PathBuf {
            self.dir.join("onshi.sqlite")
        }
    }

    impl Drop for TempStore {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn person(id: &str) -> Person {
        Person {
            id: id.into(),
            name: "山田\u{3000}花子".into(),
            kana_name: "ﾔﾏﾀﾞ ﾊﾅｺ".into(),
            sex: 2,
            birth_date: date!(1980 - 02 - 29),
            address: "東京都千代田区千代田1-1".into(),
            postcode: "100-0001".into(),
            registered_for_insurance: true,
        }
    }

    fn full_record(person_id: &str) -> QualificationRecord {
        QualificationRecord {
            person_id: person_id.into(),
            insured_card_classification: "01".into(),
            insurer_number: InsurerNumber::parse("01130012").unwrap(),
            insurer_name: "全国健康保険協会 東京支部".into(),
            symbol: Some("12345678".into()),
            number: "901".into(),
            branch: Some("00".into()),
            personal_family: 1,
            insured_person_name: "山田\u{3000}花子".into(),
            qualification_date: date!(2015 - 04 - 01),
            disqualification_date: Some(date!(2025 - 01 - 01)),
            loss_reason: Some("03".into()),
            card_issue_date: date!(2015 - 04 - 10),
            card_valid_from: date!(2015 - 04 - 01),
            card_expiry: Some(date!(2026 - 07 - 31)),
            copay_ratio: "030".into(),
            preschool: false,
            elderly: Some(ElderlyCertificate {
                valid_from: date!(2024 - 08 - 01),
                valid_until: date!(2025 - 07 - 31),
                copay_ratio: "020".into(),
            }),
            high_cost_limit: Some(HighCostLimit {
                certificate_type: None,
                bracket: "A03".into(),
                valid_from: date!(2024 - 08 - 01),
                valid_until: date!(2025 - 07 - 31),
            }),
            specific_diseases: vec![
                SpecificDisease {
                    category: 1,
                    monthly_cap_yen: 10_000,
                    valid_from: date!(2020 - 01 - 01),
                    valid_until: date!(2030 - 12 - 31),
                },
                SpecificDisease {
                    category: 2,
                    monthly_cap_yen: 20_000,
                    valid_from: date!(2021 - 01 - 01),
                    valid_until: date!(2031 - 12 - 31),
                },
            ],
        }
    }

    fn koki_record(person_id: &str) -> QualificationRecord {
        QualificationRecord {
            insurer_number: InsurerNumber::with_check_digit("3913100").unwrap(),
            insurer_name: "東京都後期高齢者医療広域連合".into(),
            symbol: None,
            branch: None,
            number: "12345678".into(),
            qualification_date: date!(2025 - 01 - 01),
            disqualification_date: None,
            loss_reason: None,
            card_expiry: None,
            copay_ratio: "010".into(),
            elderly: None,
            high_cost_limit: None,
            specific_diseases: Vec::new(),
            ..full_record(person_id)
        }
    }

    #[test]
    fn round_trips_persons_records_cards_and_terminals() {
        let tmp = TempStore::new("roundtrip");
        let store = SqliteStore::open(&tmp.path()).unwrap();
        store.insert_person(&person("P1")).unwrap();
        store.insert_person(&person("P2")).unwrap();
        assert_eq!(store.person("P1").unwrap(), Some(person("P1")));
        assert_eq!(store.person("nobody").unwrap(), None);

        let a = full_record("P1");
        let b = koki_record("P1");
        // Inserted out of order: read back by qualification date.
        store.insert_qualification(&b).unwrap();
        store.insert_qualification(&a).unwrap();
        store.insert_qualification(&koki_record("P2")).unwrap();
        assert_eq!(store.qualifications("P1").unwrap(), vec![a, b]);
        assert!(store.qualifications("P3").unwrap().is_empty());

        let key = CardKey {
            issuer_key: "ab".repeat(32),
            serial: "01ff".into(),
        };
        assert_eq!(store.person_for_card(&key).unwrap(), None);
        store.link_card(&key, "P1").unwrap();
        assert_eq!(store.person_for_card(&key).unwrap().as_deref(), Some("P1"));
        store.link_card(&key, "P2").unwrap();
        assert_eq!(store.person_for_card(&key).unwrap().as_deref(), Some("P2"));

        let t = Terminal {
            institution_code: "2714206386".into(),
            terminal_id: "T01".into(),
            status: TerminalStatus::InOperation,
            device_public_key: Some(vec![4; 65]),
        };
        store.upsert_terminal(&t).unwrap();
        assert_eq!(
            store.terminal("2714206386", "T01").unwrap(),
            Some(t.clone())
        );
        assert_eq!(store.terminal("2714206386", "T02").unwrap(), None);
        let suspended = Terminal {
            status: TerminalStatus::Suspended,
            device_public_key: None,
            ..t
        };
        store.upsert_terminal(&suspended).unwrap();
        assert_eq!(
            store.terminal("2714206386", "T01").unwrap(),
            Some(suspended)
        );

        store.set_registered("P1", false).unwrap();
        assert!(
            !store
                .person("P1")
                .unwrap()
                .unwrap()
                .registered_for_insurance
        );
        assert!(matches!(
            store.set_registered("nobody", true),
            Err(StoreError::UnknownPerson(_))
        ));

        // Everything survives a reopen.
        drop(store);
        let store = SqliteStore::open(&tmp.path()).unwrap();
        assert_eq!(store.qualifications("P2").unwrap().len(), 1);
        assert_eq!(store.person_for_card(&key).unwrap().as_deref(), Some("P2"));
    }

    #[test]
    fn foreign_keys_are_enforced() {
        let tmp = TempStore::new("fk");
        let store = SqliteStore::open(&tmp.path()).unwrap();
        assert!(matches!(
            store.insert_qualification(&full_record("ghost")),
            Err(StoreError::UnknownPerson(id)) if id == "ghost"
        ));
        let key = CardKey {
            issuer_key: "00".into(),
            serial: "01".into(),
        };
        assert!(matches!(
            store.link_card(&key, "ghost"),
            Err(StoreError::UnknownPerson(_))
        ));
    }

    #[test]
    fn a_failed_bulk_rolls_back() {
        let tmp = TempStore::new("bulk");
        let store = SqliteStore::open(&tmp.path()).unwrap();
        let r = store.bulk(|b| {
            for i in 0..100 {
                b.insert_person(&person(&format!("P{i}")))?;
            }
            b.insert_person(&person("P7")) // duplicate: the whole batch goes
        });
        assert!(matches!(r, Err(StoreError::Database { .. })));
        assert_eq!(store.person("P1").unwrap(), None);
        store
            .bulk(|b| {
                for i in 0..1000 {
                    b.insert_person(&person(&format!("P{i}")))?;
                    b.insert_qualification(&koki_record(&format!("P{i}")))?;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(store.qualifications("P999").unwrap().len(), 1);
    }

    #[test]
    fn pragmas_are_set() {
        let tmp = TempStore::new("pragmas");
        let store = SqliteStore::open(&tmp.path()).unwrap();
        store.with_connection(|c| {
            let mode: String = c
                .pragma_query_value(None, "journal_mode", |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
            let sync: i64 = c
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap();
            assert_eq!(sync, 2, "FULL");
            let fk: i64 = c
                .pragma_query_value(None, "foreign_keys", |r| r.get(0))
                .unwrap();
            assert_eq!(fk, 1);
            let v: i64 = c
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap();
            assert_eq!(v, SCHEMA_VERSION);
        });
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let tmp = TempStore::new("newer");
        {
            let c = Connection::open(tmp.path()).unwrap();
            c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        match SqliteStore::open(&tmp.path()) {
            Err(StoreError::SchemaTooNew {
                found, supported, ..
            }) => {
                assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    #[test]
    fn a_version_6_store_is_migrated_to_sealed_challenges() {
        let tmp = TempStore::new("v6");
        {
            // A version-6 file with an outstanding challenge of the old kind.
            let c = Connection::open(tmp.path()).unwrap();
            for step in [
                SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6,
            ] {
                c.execute_batch(step).unwrap();
            }
            c.execute_batch(
                "INSERT INTO audit_chain VALUES (1, 0, x'00', 0, x'00');
                 INSERT INTO challenges (challenge, terminal, purpose, expires_at)
                 VALUES (zeroblob(32), '1340123452-T01', 1, 0);
                 PRAGMA user_version = 6;",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&tmp.path()).unwrap();
        let tables: Vec<String> = store.with_connection(|c| {
            c.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        });
        assert!(!tables.contains(&"challenges".to_owned()), "{tables:?}");
        assert!(tables.contains(&"used_challenges".to_owned()));
        let nonce = [9u8; 16];
        assert_eq!(store.consume_challenge(nonce), Ok(()));
        assert_eq!(
            store.consume_challenge(nonce),
            Err(crate::challenge::ChallengeError::Reused)
        );
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let keys = store.challenge_keys(now, time::Duration::days(1)).unwrap();
        assert_eq!(keys.len(), 1);
        let version: i64 = store.with_connection(|c| {
            c.pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap()
        });
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn a_version_2_store_is_migrated_and_its_terminals_have_no_device_key() {
        let tmp = TempStore::new("v2");
        {
            let c = Connection::open(tmp.path()).unwrap();
            c.execute_batch(SCHEMA_V1).unwrap();
            c.execute_batch(SCHEMA_V2).unwrap();
            c.execute_batch(
                "INSERT INTO terminals (institution_code, terminal_id, status)
                 VALUES ('1340123452', 'T01', 'in-operation');
                 PRAGMA user_version = 2;",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&tmp.path()).unwrap();
        let old = store.terminal("1340123452", "T01").unwrap().unwrap();
        assert_eq!(old.status, TerminalStatus::InOperation);
        assert_eq!(old.device_public_key, None);
        let keyed = Terminal {
            device_public_key: Some((0..65).collect()),
            ..old
        };
        store.upsert_terminal(&keyed).unwrap();
        assert_eq!(
            store.terminal("1340123452", "T01").unwrap(),
            Some(keyed.clone())
        );
        assert_eq!(store.terminals().unwrap(), vec![keyed.clone()]);
        // Anything but a 65-byte point is refused by the schema.
        let short = Terminal {
            device_public_key: Some(vec![4; 64]),
            ..keyed
        };
        assert!(matches!(
            store.upsert_terminal(&short),
            Err(StoreError::Database { .. })
        ));
        let version: i64 = store.with_connection(|c| {
            c.pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap()
        });
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn a_version_4_store_is_migrated_its_records_still_verify_and_keys_are_remembered() {
        let tmp = TempStore::new("v4");
        let old = AuditRecord {
            confirmation_id: "C1".into(),
            at: time::macros::datetime!(2026-11-24 01:02:03.25 UTC),
            institution_code: "1340123452".into(),
            terminal_id: "T01".into(),
            person_id: None,
            method: "numbers".into(),
            purpose: "confirm".into(),
            result_code: "RESULT_CODE_OK".into(),
            consents: 0,
            certificate_sha256: None,
            returned: "{}".into(),
            claimed_at: None,
        };
        {
            // A store of version 4: this version's, less what version 5 added.
            let store = SqliteStore::open(&tmp.path()).unwrap();
            Store::append_audit(&store, std::slice::from_ref(&old)).unwrap();
            store.with_connection(|c| {
                c.execute_batch(
                    "DROP TABLE idempotency;
                     ALTER TABLE audit DROP COLUMN claimed_at;
                     PRAGMA user_version = 4;",
                )
                .unwrap()
            });
        }
        let store = SqliteStore::open(&tmp.path()).unwrap();
        let version: i64 = store.with_connection(|c| {
            c.pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap()
        });
        assert_eq!(version, SCHEMA_VERSION);
        let claimed = AuditRecord {
            confirmation_id: "C2".into(),
            claimed_at: Some(time::macros::datetime!(2026-11-23 23:00:00.5 UTC)),
            ..old.clone()
        };
        let mut write = crate::store::AuditWrite::record(claimed.clone());
        write.remember = Some(RememberedAnswer {
            terminal: "1340123452-T01".into(),
            method: "numbers".into(),
            key: "k".into(),
            answer: b"answer".to_vec(),
            expires_at: claimed.at,
        });
        Store::commit_group(
            &store,
            &mut [GroupWrite::Audit(Box::new(write))],
            &crate::store::keep_record,
        )
        .unwrap();
        let all = Store::query_audit(&store, &AuditQuery::default()).unwrap();
        assert_eq!(all, vec![old, claimed.clone()]);
        crate::audit_chain::verify(&store, None).unwrap();
        assert_eq!(
            store
                .remembered_answer("1340123452-T01", "numbers", "k", claimed.at)
                .unwrap(),
            Some(b"answer".to_vec())
        );
    }

    #[test]
    fn a_version_1_store_is_migrated_with_its_audit_records() {
        let tmp = TempStore::new("v1");
        {
            // The layout of version 1, with the audit table its module created then.
            let c = Connection::open(tmp.path()).unwrap();
            c.execute_batch(SCHEMA_V1).unwrap();
            c.execute_batch(
                "CREATE TABLE audit (
                     seq INTEGER PRIMARY KEY AUTOINCREMENT,
                     confirmation_id TEXT NOT NULL UNIQUE, at TEXT NOT NULL,
                     institution_code TEXT NOT NULL, terminal_id TEXT NOT NULL,
                     person_id TEXT, method TEXT NOT NULL, purpose TEXT NOT NULL,
                     result_code TEXT NOT NULL, consents INTEGER NOT NULL,
                     certificate_sha256 TEXT, returned TEXT NOT NULL);
                 INSERT INTO audit (confirmation_id, at, institution_code, terminal_id, method,
                     purpose, result_code, consents, returned)
                 VALUES ('C1', '2026-11-24T01:02:03.25Z', '1340123452', 'T01', 'pin',
                     'confirm', 'RESULT_CODE_OK', 0, '{}');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&tmp.path()).unwrap();
        store.insert_person(&person("P1")).unwrap();
        let all = Store::query_audit(
            &store,
            &AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            },
        )
        .unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(
            all[0].at,
            time::macros::datetime!(2026-11-24 01:02:03.25 UTC)
        );
        let version: i64 = store.with_connection(|c| {
            c.pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap()
        });
        assert_eq!(version, SCHEMA_VERSION);
    }

    /// A version 5 store (before the institutions' registry) gets the table on open: its
    /// terminals stay, nothing is listed until the registry is loaded, then it is.
    #[test]
    fn a_version_5_store_gets_the_institutions_registry() {
        use crate::institutions::Institution;
        let tmp = TempStore::new("v5");
        {
            let c = Connection::open(tmp.path()).unwrap();
            for step in [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5] {
                c.execute_batch(step).unwrap();
            }
            c.execute(
                "INSERT INTO audit_chain (singleton, last_seq, last_hash, anchor_seq, anchor_hash)
                 VALUES (1, 0, ?1, 0, ?1)",
                params![&audit_chain::GENESIS[..]],
            )
            .unwrap();
            c.execute_batch(
                "INSERT INTO terminals (institution_code, terminal_id, status)
                 VALUES ('1340123452', 'T01', 'in-operation');
                 PRAGMA user_version = 5;",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&tmp.path()).unwrap();
        assert_eq!(store.institutions_in_operation().unwrap(), vec![]);
        let pharmacy = Institution {
            institution_code: "1340123452".into(),
            name: "みなと薬局".into(),
            started_on: time::macros::date!(2023 - 04 - 01),
        };
        Store::load(
            &store,
            &LoadBatch {
                institutions: vec![pharmacy.clone()],
                ..LoadBatch::default()
            },
        )
        .unwrap();
        let listed = store.institutions_in_operation().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].institution, pharmacy);
        assert_eq!(listed[0].terminals_in_operation, 1);
        assert_eq!(store.institutions().unwrap(), vec![pharmacy]);
        let version: i64 = store.with_connection(|c| {
            c.pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap()
        });
        assert_eq!(version, SCHEMA_VERSION);
    }

    /// A version 7 store (before insurance documents) gets the table on open: its persons stay,
    /// without a document until one is loaded; a corrupt kind is reported, not guessed.
    #[test]
    fn a_version_7_store_gets_the_insurance_documents() {
        use crate::documents::{DocumentKind, InsuranceDocument};
        let tmp = TempStore::new("v7");
        {
            let c = Connection::open(tmp.path()).unwrap();
            for step in [
                SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7,
            ] {
                c.execute_batch(step).unwrap();
            }
            c.execute(
                "INSERT INTO audit_chain (singleton, last_seq, last_hash, anchor_seq, anchor_hash)
                 VALUES (1, 0, ?1, 0, ?1)",
                params![&audit_chain::GENESIS[..]],
            )
            .unwrap();
            c.execute_batch("PRAGMA user_version = 7;").unwrap();
        }
        let store = SqliteStore::open(&tmp.path()).unwrap();
        store.insert_person(&person("P1")).unwrap();
        assert_eq!(store.insurance_document("P1").unwrap(), None);
        let doc = InsuranceDocument {
            person_id: "P1".into(),
            kind: DocumentKind::Kakuninsho,
            valid_from: Some(time::macros::date!(2025 - 08 - 01)),
            valid_until: Some(time::macros::date!(2026 - 07 - 31)),
        };
        Store::load(
            &store,
            &LoadBatch {
                documents: vec![doc.clone()],
                ..LoadBatch::default()
            },
        )
        .unwrap();
        assert_eq!(store.insurance_document("P1").unwrap(), Some(doc));
        let version: i64 = store.with_connection(|c| {
            c.pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap()
        });
        assert_eq!(version, SCHEMA_VERSION);
        store.with_connection(|c| {
            c.execute_batch(
                "PRAGMA ignore_check_constraints = ON;
                 UPDATE insurance_documents SET kind = 'paper-card';",
            )
            .unwrap()
        });
        let err = store.insurance_document("P1").unwrap_err().to_string();
        assert!(err.contains("paper-card"), "{err}");
    }

    /// A version 8 store (before 医療扶助 tickets) gets `medical_tickets` on open: a recipient
    /// has no ticket until one is loaded; a corrupt treatment month is reported.
    #[test]
    fn a_version_8_store_gets_the_medical_tickets() {
        use crate::medical_aid::{MedicalTicket, TicketKind, TreatmentMonth};
        let tmp = TempStore::new("v8");
        {
            let c = Connection::open(tmp.path()).unwrap();
            for step in [
                SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7,
                SCHEMA_V8,
            ] {
                c.execute_batch(step).unwrap();
            }
            c.execute(
                "INSERT INTO audit_chain (singleton, last_seq, last_hash, anchor_seq, anchor_hash)
                 VALUES (1, 0, ?1, 0, ?1)",
                params![&audit_chain::GENESIS[..]],
            )
            .unwrap();
            c.execute_batch("PRAGMA user_version = 8;").unwrap();
        }
        let store = SqliteStore::open(&tmp.path()).unwrap();
        store.insert_person(&person("P1")).unwrap();
        assert_eq!(store.medical_tickets("P1").unwrap(), Vec::new());
        let month = TreatmentMonth::parse("202612").unwrap();
        let ticket = MedicalTicket {
            person_id: "P1".into(),
            month,
            kind: TicketKind::Dispensing,
            issue_number: "20261201".into(),
            valid_from: month.first_day(),
            valid_until: month.last_day(),
            institution_code: "1340123452".into(),
            institution_name: "みなと薬局".into(),
            self_pay_yen: 500,
            registered_on: Some(month.first_day()),
        };
        Store::load(
            &store,
            &LoadBatch {
                medical_tickets: vec![ticket.clone()],
                ..LoadBatch::default()
            },
        )
        .unwrap();
        assert_eq!(store.medical_tickets("P1").unwrap(), vec![ticket]);
        let version: i64 = store.with_connection(|c| {
            c.pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap()
        });
        assert_eq!(version, SCHEMA_VERSION);
        store.with_connection(|c| {
            c.execute_batch(
                "PRAGMA ignore_check_constraints = ON;
                 UPDATE medical_tickets SET treatment_month = '202613';",
            )
            .unwrap()
        });
        let err = store.medical_tickets("P1").unwrap_err().to_string();
        assert!(err.contains("202613"), "{err}");
    }

    #[test]
    fn corrupt_values_are_reported() {
        let tmp = TempStore::new("corrupt");
        let store = SqliteStore::open(&tmp.path()).unwrap();
        store.insert_person(&person("P1")).unwrap();
        store.with_connection(|c| {
            c.execute("UPDATE persons SET birth_date = '1980/02/29'", [])
                .unwrap();
        });
        assert!(matches!(
            store.person("P1"),
            Err(StoreError::Corrupt { what: "date", .. })
        ));
    }

    /// Made by OpenSSL (`openssl req -x509 … -set_serial 0x9f`), an independent encoder: the
    /// serial's DER content is `00 9f` (a leading zero keeps it positive) and the issuer Name
    /// occupies bytes 29..103 of the DER, whose SHA-256 `sha256sum` gave.
    const OPENSSL_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIB1DCCAXmgAwIBAgICAJ8wCgYIKoZIzj0EAwIwSDELMAkGA1UEBhMCSlAxEjAQ
BgNVBAoMCUpQS0ktVEVTVDElMCMGA1UECwwcSlBLSSBmb3IgdXNlciBhdXRoZW50
aWNhdGlvbjAeFw0yNjExMjQwNDA3NTJaFw0yNjExMjUwNDA3NTJaMEgxCzAJBgNV
BAYTAkpQMRIwEAYDVQQKDAlKUEtJLVRFU1QxJTAjBgNVBAsMHEpQS0kgZm9yIHVz
ZXIgYXV0aGVudGljYXRpb24wWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATwwmvP
DBbPHh6QnHmGiV2jfiqW/ACq1iqLH5w72eZlo/A9dtAdvh84NW17Vuey/GC5zwkD
wspGkGX4MZwhU70Wo1MwUTAdBgNVHQ4EFgQUfvcyeF1UDzEVBA2ouFBCNpk80aYw
HwYDVR0jBBgwFoAUfvcyeF1UDzEVBA2ouFBCNpk80aYwDwYDVR0TAQH/BAUwAwEB
/zAKBggqhkjOPQQDAgNJADBGAiEAi92lj4Yr9VTlH6u4WYA8LTTznSXRnrI/KnA6
kDrBf28CIQDdSzwwxcY2633UEeqr6bQNtDBEeaD2HXjnfVBEEH8yWg==
-----END CERTIFICATE-----
";

    #[test]
    fn card_key_from_a_certificate() {
        let der = pem::parse(OPENSSL_CERT).unwrap().into_contents();
        let key = CardKey::from_der(&der).unwrap();
        assert_eq!(key.serial, "009f");
        assert_eq!(
            key.issuer_key,
            "fdf87b83080611782b9c5c800defc9e96933b91c4c10727a47a6a84e846ee770"
        );
        assert_eq!(key, CardKey::from_parts(&der[29..103], &[0x00, 0x9f]));

        let mut trailing = der.clone();
        trailing.push(0);
        assert!(matches!(
            CardKey::from_der(&trailing),
            Err(StoreError::Certificate(_))
        ));
        assert!(matches!(
            CardKey::from_der(&der[..der.len() - 1]),
            Err(StoreError::Certificate(_))
        ));
        assert!(matches!(
            CardKey::from_der(b"not a certificate"),
            Err(StoreError::Certificate(_))
        ));
    }

    #[test]
    fn dates_are_iso() {
        assert_eq!(format_date(date!(2025 - 01 - 09)).unwrap(), "2025-01-09");
        assert_eq!(parse_date("2024-02-29").unwrap(), date!(2024 - 02 - 29));
        assert!(parse_date("2023-02-29").is_err());
    }
}
