//! The embedded default store: one SQLite file (WAL mode) holding everything the [`Store`]
//! trait names. Nothing to install; the testbed builds it and the demo runs on it.
//!
//! Connections by role, each committing with `synchronous=FULL` (fsync at every commit, so an
//! acknowledged write survives power loss): the **writer** connection takes the service's
//! group commits (challenges issued and consumed, consents, audit records: the hot path's only
//! writes, gathered by one thread so they never wait for each other's write lock); the main
//! connection takes the rare other writes (loading, registration, batch jobs); a small pool of
//! **reader** connections (`query_only`) serves lookups, which WAL lets run beside a writer, so
//! concurrent requests do not queue behind one connection.
//! `PRAGMA user_version` is the schema version below.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, Transaction};

use time::OffsetDateTime;

use super::group::{self, GroupTx};
use super::{
    corrupt, explain_challenge, format_date, format_opt_date, from_millis, millis, parse_date,
    parse_opt_date, BatchItem, BatchJob, CardKey, ChainHead, ChainedRecord, ChallengeRow,
    ChallengeUse, DbErrorKind, GroupWrite, LoadBatch, Refuse, Registration, Store, StoreError,
    StoredChallenge, Terminal, TerminalStatus,
};
use crate::audit::{AuditQuery, AuditRecord};
use crate::audit_chain::{self, ChainColumns};
use crate::challenge::ChallengeError;
use crate::clinical::{Checkup, Medication};
use crate::consent::{ConsentGrant, ConsentKind};
use crate::eligibility::{
    ElderlyCertificate, HighCostLimit, InsurerNumber, NumbersQuery, Person, QualificationRecord,
    SpecificDisease,
};

/// The schema version this code writes and understands (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 4;

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

/// Logs the failures of the pool's own connection attempts (a caller sees its own).
#[derive(Debug)]
pub(crate) struct LogPoolErrors;

impl r2d2::HandleError<StoreError> for LogPoolErrors {
    fn handle_error(&self, error: StoreError) {
        tracing::warn!(target: "onshi::store", "{error}");
    }
}

/// A pool's own thread (r2d2 makes connections there): one is plenty for a pool this small.
pub(crate) fn pool_thread() -> Arc<scheduled_thread_pool::ScheduledThreadPool> {
    Arc::new(
        scheduled_thread_pool::ScheduledThreadPool::builder()
            .num_threads(1)
            .thread_name_pattern("onshi-store-pool-{}")
            .build(),
    )
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
        let readers = r2d2::Pool::builder()
            .max_size(READERS)
            .min_idle(None)
            .test_on_check_out(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connection_timeout(READER_WAIT)
            .thread_pool(pool_thread())
            .error_handler(Box::new(LogPoolErrors))
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

    /// The person a certificate belongs to, if the issuing authority linked it.
    pub fn person_for_card(&self, card: &CardKey) -> Result<Option<String>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn
            .prepare_cached("SELECT person_id FROM cards WHERE issuer_key = ?1 AND serial = ?2")?;
        Ok(stmt
            .query_row(params![card.issuer_key, card.serial], |r| r.get(0))
            .optional()?)
    }

    /// A person by id.
    pub fn person(&self, id: &str) -> Result<Option<Person>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, name, kana_name, sex, birth_date, address, postcode,
                    registered_for_insurance
             FROM persons WHERE id = ?1",
        )?;
        let raw = stmt.query_row([id], RawPerson::from_row).optional()?;
        raw.map(RawPerson::into_person).transpose()
    }

    /// All qualification records of a person, oldest first (by qualification date, then
    /// insertion order).
    pub fn qualifications(&self, person_id: &str) -> Result<Vec<QualificationRecord>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {QUALIFICATION_COLUMNS} FROM qualifications
             WHERE person_id = ?1 ORDER BY qualification_date, id"
        ))?;
        let raws = stmt
            .query_map([person_id], RawQualification::from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        if raws.is_empty() {
            return Ok(Vec::new());
        }
        let mut stmt = conn.prepare_cached(
            "SELECT d.qualification_id, d.category, d.monthly_cap_yen, d.valid_from,
                    d.valid_until
             FROM specific_diseases d JOIN qualifications q ON q.id = d.qualification_id
             WHERE q.person_id = ?1 ORDER BY d.qualification_id, d.ordinal",
        )?;
        let diseases = stmt
            .query_map([person_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut records = Vec::with_capacity(raws.len());
        for raw in raws {
            let id = raw.id;
            let mut record = raw.into_record()?;
            for (_, category, cap, from, until) in diseases.iter().filter(|d| d.0 == id) {
                record.specific_diseases.push(SpecificDisease {
                    category: u8::try_from(*category).map_err(|_| corrupt("category", category))?,
                    monthly_cap_yen: u32::try_from(*cap)
                        .map_err(|_| corrupt("monthly cap", cap))?,
                    valid_from: parse_date(from)?,
                    valid_until: parse_date(until)?,
                });
            }
            records.push(record);
        }
        Ok(records)
    }

    /// A terminal by its institution code and terminal id.
    pub fn terminal(
        &self,
        institution_code: &str,
        terminal_id: &str,
    ) -> Result<Option<Terminal>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT status, device_public_key FROM terminals
             WHERE institution_code = ?1 AND terminal_id = ?2",
        )?;
        let row: Option<(String, Option<Vec<u8>>)> = stmt
            .query_row([institution_code, terminal_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        row.map(|(s, device_public_key)| {
            Ok(Terminal {
                institution_code: institution_code.to_owned(),
                terminal_id: terminal_id.to_owned(),
                status: TerminalStatus::parse(&s).ok_or_else(|| corrupt("terminal status", &s))?,
                device_public_key,
            })
        })
        .transpose()
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
            "INSERT INTO qualifications ({QUALIFICATION_INSERT_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                     ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)"
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

fn to_u32(what: &'static str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| corrupt(what, v))
}

const AUDIT_COLUMNS: &str = "confirmation_id, at_ms, institution_code, terminal_id, person_id, \
     method, purpose, result_code, consents, certificate_sha256, returned";

fn audit_from_row(r: &Row<'_>) -> rusqlite::Result<(AuditRecord, i64)> {
    let at_ms: i64 = r.get(1)?;
    Ok((
        AuditRecord {
            confirmation_id: r.get(0)?,
            at: OffsetDateTime::UNIX_EPOCH,
            institution_code: r.get(2)?,
            terminal_id: r.get(3)?,
            person_id: r.get(4)?,
            method: r.get(5)?,
            purpose: r.get(6)?,
            result_code: r.get(7)?,
            consents: r.get(8)?,
            certificate_sha256: r.get(9)?,
            returned: r.get(10)?,
        },
        at_ms,
    ))
}

const BATCH_COLUMNS: &str =
    "reception_number, institution_code, terminal_id, submitted_at, total, completed, finished_at";

fn batch_from_row(r: &Row<'_>) -> rusqlite::Result<(BatchJob, i64, Option<i64>)> {
    let submitted: i64 = r.get(3)?;
    let finished: Option<i64> = r.get(6)?;
    Ok((
        BatchJob {
            reception_number: r.get(0)?,
            institution_code: r.get(1)?,
            terminal_id: r.get(2)?,
            submitted_at: OffsetDateTime::UNIX_EPOCH,
            total: r.get(4)?,
            completed: r.get(5)?,
            finished_at: None,
        },
        submitted,
        finished,
    ))
}

fn batch_job(
    (mut job, submitted, finished): (BatchJob, i64, Option<i64>),
) -> Result<BatchJob, StoreError> {
    job.submitted_at = from_millis(submitted)?;
    job.finished_at = finished.map(from_millis).transpose()?;
    Ok(job)
}

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
        for m in &batch.medications {
            self.insert_medication(m)?;
        }
        for c in &batch.checkups {
            self.insert_checkup(c)?;
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

    /// Every terminal, by institution code and id.
    pub fn terminals(&self) -> Result<Vec<Terminal>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT institution_code, terminal_id, status, device_public_key FROM terminals
             ORDER BY institution_code, terminal_id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<Vec<u8>>>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(
                |(institution_code, terminal_id, status, device_public_key)| {
                    Ok(Terminal {
                        institution_code,
                        terminal_id,
                        status: TerminalStatus::parse(&status)
                            .ok_or_else(|| corrupt("terminal status", &status))?,
                        device_public_key,
                    })
                },
            )
            .collect()
    }

    /// The certificates linked to a person.
    pub fn cards_of(&self, person_id: &str) -> Result<Vec<CardKey>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT issuer_key, serial FROM cards WHERE person_id = ?1 ORDER BY issuer_key, serial",
        )?;
        let rows = stmt
            .query_map([person_id], |r| {
                Ok(CardKey {
                    issuer_key: r.get(0)?,
                    serial: r.get(1)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

impl Store for SqliteStore {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn load(&self, batch: &LoadBatch) -> Result<(), StoreError> {
        self.bulk(|b| b.load(batch))
    }

    fn terminal(
        &self,
        institution_code: &str,
        terminal_id: &str,
    ) -> Result<Option<Terminal>, StoreError> {
        SqliteStore::terminal(self, institution_code, terminal_id)
    }

    fn person_for_card(&self, card: &CardKey) -> Result<Option<String>, StoreError> {
        SqliteStore::person_for_card(self, card)
    }

    fn person(&self, id: &str) -> Result<Option<Person>, StoreError> {
        SqliteStore::person(self, id)
    }

    fn qualifications(&self, person_id: &str) -> Result<Vec<QualificationRecord>, StoreError> {
        SqliteStore::qualifications(self, person_id)
    }

    fn persons_by_numbers(&self, q: &NumbersQuery) -> Result<Vec<String>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT q.person_id FROM qualifications q JOIN persons p ON p.id = q.person_id
             WHERE q.insurer_number = ?1 AND q.number = ?2
               AND q.symbol IS ?3 AND q.branch IS ?4 AND p.birth_date = ?5
             ORDER BY q.person_id",
        )?;
        let rows = stmt
            .query_map(
                params![
                    q.insurer_number.as_str(),
                    q.number,
                    q.symbol,
                    q.branch,
                    format_date(q.birth_date)?
                ],
                |r| r.get(0),
            )?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(rows)
    }

    fn medications(&self, person_id: &str) -> Result<Vec<Medication>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT person_id, dispensed_on, institution_code, institution_name, drug_code,
                    drug_name, usage, daily_quantity, days
             FROM medications WHERE person_id = ?1 ORDER BY dispensed_on DESC, id",
        )?;
        let rows = stmt
            .query_map([person_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, i64>(8)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(
                |(person_id, on, code, iname, dcode, dname, usage, qty, days)| {
                    Ok(Medication {
                        person_id,
                        dispensed_on: parse_date(&on)?,
                        institution_code: code,
                        institution_name: iname,
                        drug_code: dcode,
                        drug_name: dname,
                        usage,
                        daily_quantity: qty,
                        days: to_u32("days", days)?,
                    })
                },
            )
            .collect()
    }

    fn checkups(&self, person_id: &str) -> Result<Vec<Checkup>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT person_id, examined_on, height_cm_x10, weight_kg_x10, waist_cm_x10, bmi_x10,
                    systolic_mmhg, diastolic_mmhg, hba1c_x10, ldl_mg_dl, judgement
             FROM checkups WHERE person_id = ?1 ORDER BY examined_on DESC, id",
        )?;
        let rows = stmt
            .query_map([person_id], |r| {
                let mut n = [0i64; 8];
                for (i, v) in n.iter_mut().enumerate() {
                    *v = r.get(i + 2)?;
                }
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    n,
                    r.get::<_, String>(10)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(person_id, on, n, judgement)| {
                Ok(Checkup {
                    person_id,
                    examined_on: parse_date(&on)?,
                    height_cm_x10: to_u32("height", n[0])?,
                    weight_kg_x10: to_u32("weight", n[1])?,
                    waist_cm_x10: to_u32("waist", n[2])?,
                    bmi_x10: to_u32("bmi", n[3])?,
                    systolic_mmhg: to_u32("systolic", n[4])?,
                    diastolic_mmhg: to_u32("diastolic", n[5])?,
                    hba1c_x10: to_u32("hba1c", n[6])?,
                    ldl_mg_dl: to_u32("ldl", n[7])?,
                    judgement,
                })
            })
            .collect()
    }

    fn register_for_insurance(
        &self,
        person_id: &str,
        at: OffsetDateTime,
    ) -> Result<Registration, StoreError> {
        register(&self.lock(), person_id, at)
    }

    fn record_consents(&self, grants: &[ConsentGrant]) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        insert_consents(&tx, grants)?;
        tx.commit()?;
        Ok(())
    }

    fn consents(
        &self,
        person_id: &str,
        institution_code: &str,
    ) -> Result<Vec<ConsentGrant>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(
            "SELECT kind, given_at, valid_until FROM consents
             WHERE person_id = ?1 AND institution_code = ?2 ORDER BY kind",
        )?;
        let rows = stmt
            .query_map([person_id, institution_code], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(kind, given, until)| {
                Ok(ConsentGrant {
                    person_id: person_id.to_owned(),
                    institution_code: institution_code.to_owned(),
                    kind: ConsentKind::parse(&kind)
                        .ok_or_else(|| corrupt("consent kind", &kind))?,
                    given_at: from_millis(given)?,
                    valid_until: from_millis(until)?,
                })
            })
            .collect()
    }

    fn commit_group(
        &self,
        writes: &mut [GroupWrite],
        refuse: &Refuse,
    ) -> Result<Vec<Result<(), ChallengeError>>, StoreError> {
        let mut conn = self.lock_writer();
        // The immediate transaction holds the file's write lock: appends to the chain are
        // serialized with every other connection's, in any process.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let verdicts = group::commit(&mut GroupStatements(&tx), writes, refuse)?;
        tx.commit()?;
        Ok(verdicts)
    }

    fn purge_challenges(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let conn = self.lock_writer();
        let n = conn
            .prepare_cached("DELETE FROM challenges WHERE expires_at < ?1")?
            .execute(params![millis(before)])?;
        Ok(n as u64)
    }

    fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.reader()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit
             WHERE (?1 IS NULL OR person_id = ?1)
               AND (?2 IS NULL OR institution_code = ?2)
               AND (?3 IS NULL OR at_ms >= ?3)
               AND (?4 IS NULL OR at_ms < ?4)
             ORDER BY at_ms, seq LIMIT ?5"
        ))?;
        let rows = stmt
            .query_map(
                params![
                    q.person_id,
                    q.institution_code,
                    q.from.map(millis),
                    q.until.map(millis),
                    q.row_limit()
                ],
                audit_from_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(mut r, at)| {
                r.at = from_millis(at)?;
                Ok(r)
            })
            .collect()
    }

    fn audit_chain_head(&self) -> Result<ChainHead, StoreError> {
        chain_head(&*self.reader()?)
    }

    fn audit_chain_page(
        &self,
        after: Option<(i64, i64)>,
        limit: u32,
    ) -> Result<Vec<ChainedRecord>, StoreError> {
        let (position, row) = after.unwrap_or((i64::MIN, i64::MIN));
        let conn = self.reader()?;
        let rows = conn
            .prepare_cached(&format!(
                "SELECT {CHAIN_COLUMNS} FROM audit
                 WHERE chain_seq IS NOT NULL AND (chain_seq, seq) > (?1, ?2)
                 ORDER BY chain_seq, seq LIMIT ?3"
            ))?
            .query_map(params![position, row, limit], chained_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn unchained_audit(&self, limit: u32) -> Result<Vec<ChainedRecord>, StoreError> {
        let conn = self.reader()?;
        let rows = conn
            .prepare_cached(&format!(
                "SELECT {CHAIN_COLUMNS} FROM audit WHERE chain_seq IS NULL ORDER BY seq LIMIT ?1"
            ))?
            .query_map(params![limit], chained_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn prune_audit(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut conn = self.lock_writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let head = chain_head(&tx)?;
        // The oldest records in chain order, up to the first one not older than `before`.
        let last: Option<(i64, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT chain_seq, hash FROM audit
                 WHERE chain_seq > ?1 AND chain_seq < coalesce(
                     (SELECT min(chain_seq) FROM audit WHERE chain_seq > ?1 AND at_ms >= ?2),
                     ?3 + 1)
                 ORDER BY chain_seq DESC LIMIT 1",
            )?
            .query_row(
                params![head.anchor_seq, millis(before), head.last_seq],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((anchor_seq, anchor_hash)) = last else {
            return Ok(0);
        };
        let removed = tx
            .prepare_cached("DELETE FROM audit WHERE chain_seq > ?1 AND chain_seq <= ?2")?
            .execute(params![head.anchor_seq, anchor_seq])?;
        tx.prepare_cached("UPDATE audit_chain SET anchor_seq = ?1, anchor_hash = ?2")?
            .execute(params![anchor_seq, anchor_hash])?;
        tx.commit()?;
        Ok(removed as u64)
    }

    fn create_batch(&self, job: &BatchJob, queries: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.prepare_cached(&format!(
            "INSERT INTO batch_jobs ({BATCH_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
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

    fn batch(&self, reception_number: &str) -> Result<Option<BatchJob>, StoreError> {
        let conn = self.lock();
        let row = conn
            .prepare_cached(&format!(
                "SELECT {BATCH_COLUMNS} FROM batch_jobs WHERE reception_number = ?1"
            ))?
            .query_row([reception_number], batch_from_row)
            .optional()?;
        row.map(batch_job).transpose()
    }

    fn unfinished_batches(&self) -> Result<Vec<BatchJob>, StoreError> {
        let conn = self.lock();
        let rows = conn
            .prepare_cached(&format!(
                "SELECT {BATCH_COLUMNS} FROM batch_jobs WHERE finished_at IS NULL
                 ORDER BY submitted_at, reception_number"
            ))?
            .query_map([], batch_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(batch_job).collect()
    }

    fn claim_batch(
        &self,
        reception_number: &str,
        worker: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let conn = self.lock();
        let changed = conn
            .prepare_cached(
                "UPDATE batch_jobs SET lease_owner = ?2, lease_until = ?4
                 WHERE reception_number = ?1 AND finished_at IS NULL
                   AND (lease_owner IS NULL OR lease_owner = ?2 OR lease_until <= ?3)",
            )?
            .execute(params![
                reception_number,
                worker,
                millis(now),
                millis(lease_until)
            ])?;
        Ok(changed == 1)
    }

    fn batch_items(
        &self,
        reception_number: &str,
        from: u32,
        limit: u32,
    ) -> Result<Vec<BatchItem>, StoreError> {
        let conn = self.lock();
        let rows = conn
            .prepare_cached(
                "SELECT ordinal, query, result FROM batch_items
                 WHERE reception_number = ?1 AND ordinal >= ?2 ORDER BY ordinal LIMIT ?3",
            )?
            .query_map(params![reception_number, from, limit], |r| {
                Ok(BatchItem {
                    ordinal: r.get(0)?,
                    query: r.get(1)?,
                    result: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn complete_batch_items(
        &self,
        reception_number: &str,
        results: &[(u32, Vec<u8>)],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
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
        tx.prepare_cached(
            "UPDATE batch_jobs SET completed = completed + ?2,
                 finished_at = CASE WHEN finished_at IS NULL AND completed + ?2 >= total
                                    THEN ?3 ELSE finished_at END
             WHERE reception_number = ?1",
        )?
        .execute(params![reception_number, answered, millis(now)])?;
        tx.commit()?;
        Ok(())
    }
}

/// The group commit's statements ([`group`]) inside the writer's immediate transaction:
/// row by row, each a cached prepared statement, which in-process SQLite runs as fast as a
/// multi-row one.
struct GroupStatements<'t>(&'t Connection);

impl GroupTx for GroupStatements<'_> {
    fn insert_challenges(&mut self, new: &[&StoredChallenge]) -> Result<(), StoreError> {
        let mut stmt = self.0.prepare_cached(
            "INSERT INTO challenges (challenge, terminal, purpose, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for c in new {
            stmt.execute(params![
                &c.bytes[..],
                c.terminal,
                c.purpose,
                millis(c.expires_at)
            ])?;
        }
        Ok(())
    }

    fn consume(&mut self, u: &ChallengeUse) -> Result<Result<(), ChallengeError>, StoreError> {
        // One statement decides and marks: only an unused, unexpired challenge of this
        // terminal and purpose is marked used. Anything else is then explained by a read.
        let changed = self
            .0
            .prepare_cached(
                "UPDATE challenges SET used_at = ?4
                 WHERE challenge = ?1 AND terminal = ?2 AND purpose = ?3
                   AND used_at IS NULL AND expires_at >= ?4",
            )?
            .execute(params![u.bytes, u.terminal, u.purpose, millis(u.at)])?;
        if changed == 1 {
            return Ok(Ok(()));
        }
        let row = self
            .0
            .prepare_cached(
                "SELECT terminal, purpose, used_at FROM challenges WHERE challenge = ?1",
            )?
            .query_row(params![u.bytes], |r| {
                Ok(ChallengeRow {
                    terminal: r.get(0)?,
                    purpose: r.get(1)?,
                    used: r.get::<_, Option<i64>>(2)?.is_some(),
                })
            })
            .optional()?;
        Ok(Err(explain_challenge(row, &u.terminal, u.purpose)))
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

    fn lock_chain_head(&mut self) -> Result<ChainHead, StoreError> {
        // The immediate transaction already holds the file's write lock.
        chain_head(self.0)
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

/// The chain's head as the transaction sees it.
fn chain_head(tx: &Connection) -> Result<ChainHead, StoreError> {
    tx.prepare_cached("SELECT last_seq, last_hash, anchor_seq, anchor_hash FROM audit_chain")?
        .query_row([], |r| {
            Ok(ChainHead {
                last_seq: r.get(0)?,
                last_hash: r.get(1)?,
                anchor_seq: r.get(2)?,
                anchor_hash: r.get(3)?,
            })
        })
        .optional()?
        .ok_or_else(|| corrupt("audit chain", "the head row is missing"))
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
             chain_seq, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
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
    ])?;
    Ok(())
}

const CHAIN_COLUMNS: &str = "seq, chain_seq, prev_hash, hash, confirmation_id, at, at_ms, \
     institution_code, terminal_id, person_id, method, purpose, result_code, consents, \
     certificate_sha256, returned";

/// A row of the audit table as the chain sees it; values the service never writes are a
/// `defect`, not an error, so `verify` can name the record.
fn chained_from_row(r: &Row<'_>) -> rusqlite::Result<ChainedRecord> {
    let mut defect = None;
    let at_ms: i64 = r.get(6)?;
    let at = from_millis(at_ms).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let text: String = r.get(5)?;
    let parsed = OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339);
    if parsed.map(millis).ok() != Some(at_ms) {
        defect = Some(format!("its time {text:?} is not its at_ms {at_ms}"));
    }
    let consents: i64 = r.get(13)?;
    let consents = u8::try_from(consents).unwrap_or_else(|_| {
        defect = Some(format!("its consents {consents} are not a bitmask"));
        0
    });
    Ok(ChainedRecord {
        row: r.get(0)?,
        position: r.get(1)?,
        prev_hash: r.get(2)?,
        hash: r.get(3)?,
        record: AuditRecord {
            confirmation_id: r.get(4)?,
            at,
            institution_code: r.get(7)?,
            terminal_id: r.get(8)?,
            person_id: r.get(9)?,
            method: r.get(10)?,
            purpose: r.get(11)?,
            result_code: r.get(12)?,
            consents,
            certificate_sha256: r.get(14)?,
            returned: r.get(15)?,
        },
        defect,
    })
}

/// Chains the records written before the chain existed, in the order they were written
/// (version 4's migration).
fn chain_existing(tx: &Connection) -> Result<(), StoreError> {
    let rows = tx
        .prepare(&format!(
            "SELECT {CHAIN_COLUMNS} FROM audit WHERE chain_seq IS NULL ORDER BY seq"
        ))?
        .query_map([], chained_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    let head = chain_head(tx)?;
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
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}

// The inserted columns, in the order of `insert_qualification`'s parameters.
const QUALIFICATION_INSERT_COLUMNS: &str = "person_id, insured_card_classification, \
     insurer_number, insurer_name, symbol, number, branch, personal_family, insured_person_name, \
     qualification_date, disqualification_date, loss_reason, card_issue_date, card_valid_from, \
     card_expiry, copay_ratio, preschool, elderly_valid_from, elderly_valid_until, \
     elderly_copay_ratio, high_cost_certificate_type, high_cost_bracket, high_cost_valid_from, \
     high_cost_valid_until";

const QUALIFICATION_COLUMNS: &str = "id, person_id, insured_card_classification, \
     insurer_number, insurer_name, symbol, number, branch, personal_family, insured_person_name, \
     qualification_date, disqualification_date, loss_reason, card_issue_date, card_valid_from, \
     card_expiry, copay_ratio, preschool, elderly_valid_from, elderly_valid_until, \
     elderly_copay_ratio, high_cost_certificate_type, high_cost_bracket, high_cost_valid_from, \
     high_cost_valid_until";

struct RawPerson {
    id: String,
    name: String,
    kana_name: String,
    sex: i64,
    birth_date: String,
    address: String,
    postcode: String,
    registered: bool,
}

impl RawPerson {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            name: r.get(1)?,
            kana_name: r.get(2)?,
            sex: r.get(3)?,
            birth_date: r.get(4)?,
            address: r.get(5)?,
            postcode: r.get(6)?,
            registered: r.get(7)?,
        })
    }

    fn into_person(self) -> Result<Person, StoreError> {
        Ok(Person {
            sex: u8::try_from(self.sex).map_err(|_| corrupt("sex", self.sex))?,
            birth_date: parse_date(&self.birth_date)?,
            id: self.id,
            name: self.name,
            kana_name: self.kana_name,
            address: self.address,
            postcode: self.postcode,
            registered_for_insurance: self.registered,
        })
    }
}

struct RawQualification {
    id: i64,
    person_id: String,
    classification: String,
    insurer_number: String,
    insurer_name: String,
    symbol: Option<String>,
    number: String,
    branch: Option<String>,
    personal_family: i64,
    insured_person_name: String,
    qualification_date: String,
    disqualification_date: Option<String>,
    loss_reason: Option<String>,
    card_issue_date: String,
    card_valid_from: String,
    card_expiry: Option<String>,
    copay_ratio: String,
    preschool: bool,
    elderly_valid_from: Option<String>,
    elderly_valid_until: Option<String>,
    elderly_copay_ratio: Option<String>,
    limit_type: Option<String>,
    limit_bracket: Option<String>,
    limit_valid_from: Option<String>,
    limit_valid_until: Option<String>,
}

impl RawQualification {
    fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            person_id: r.get(1)?,
            classification: r.get(2)?,
            insurer_number: r.get(3)?,
            insurer_name: r.get(4)?,
            symbol: r.get(5)?,
            number: r.get(6)?,
            branch: r.get(7)?,
            personal_family: r.get(8)?,
            insured_person_name: r.get(9)?,
            qualification_date: r.get(10)?,
            disqualification_date: r.get(11)?,
            loss_reason: r.get(12)?,
            card_issue_date: r.get(13)?,
            card_valid_from: r.get(14)?,
            card_expiry: r.get(15)?,
            copay_ratio: r.get(16)?,
            preschool: r.get(17)?,
            elderly_valid_from: r.get(18)?,
            elderly_valid_until: r.get(19)?,
            elderly_copay_ratio: r.get(20)?,
            limit_type: r.get(21)?,
            limit_bracket: r.get(22)?,
            limit_valid_from: r.get(23)?,
            limit_valid_until: r.get(24)?,
        })
    }

    fn into_record(self) -> Result<QualificationRecord, StoreError> {
        let elderly = match (
            self.elderly_valid_from,
            self.elderly_valid_until,
            self.elderly_copay_ratio,
        ) {
            (Some(from), Some(until), Some(ratio)) => Some(ElderlyCertificate {
                valid_from: parse_date(&from)?,
                valid_until: parse_date(&until)?,
                copay_ratio: ratio,
            }),
            (None, None, None) => None,
            _ => return Err(corrupt("elderly certificate", "partly null")),
        };
        let high_cost_limit = match (
            self.limit_bracket,
            self.limit_valid_from,
            self.limit_valid_until,
        ) {
            (Some(bracket), Some(from), Some(until)) => Some(HighCostLimit {
                certificate_type: self.limit_type,
                bracket,
                valid_from: parse_date(&from)?,
                valid_until: parse_date(&until)?,
            }),
            (None, None, None) => None,
            _ => return Err(corrupt("high-cost limit", "partly null")),
        };
        Ok(QualificationRecord {
            insurer_number: InsurerNumber::parse(&self.insurer_number)
                .map_err(|e| corrupt("insurer number", e))?,
            personal_family: u8::try_from(self.personal_family)
                .map_err(|_| corrupt("personal/family", self.personal_family))?,
            qualification_date: parse_date(&self.qualification_date)?,
            disqualification_date: parse_opt_date(self.disqualification_date.as_deref())?,
            card_issue_date: parse_date(&self.card_issue_date)?,
            card_valid_from: parse_date(&self.card_valid_from)?,
            card_expiry: parse_opt_date(self.card_expiry.as_deref())?,
            person_id: self.person_id,
            insured_card_classification: self.classification,
            insurer_name: self.insurer_name,
            symbol: self.symbol,
            number: self.number,
            branch: self.branch,
            insured_person_name: self.insured_person_name,
            loss_reason: self.loss_reason,
            copay_ratio: self.copay_ratio,
            preschool: self.preschool,
            elderly,
            high_cost_limit,
            specific_diseases: Vec::new(),
        })
    }
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
