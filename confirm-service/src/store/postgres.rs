//! The PostgreSQL store, for deployments that outgrow one machine: several service instances
//! share one database and behave as one service (architecture.md "Storage", docs/storage.md).
//!
//! - **Connections**: an r2d2 pool of synchronous clients ([`::postgres`]), each with its own
//!   cache of prepared statements. The service calls the store from many blocking threads at
//!   once; a caller takes an idle connection, a new one while fewer than the pool size are
//!   open, or waits for one to come back. A connection that broke (server restart) is dropped
//!   instead of being returned, so the next caller gets a fresh one.
//! - **What lives here**: the schema and its migrations, the connections, the bulk load and
//!   the multi-row writes (the group commit's statements, consents, batch jobs) and the
//!   dialect; the lookups and the group-commit rule are shared with SQLite
//!   ([`super::queries`], [`super::group`], [`super::codec`]).
//! - **Durability**: every session runs with `synchronous_commit = on`, so a commit returns
//!   only after its WAL record is flushed (`fsync`), as SQLite's `synchronous=FULL` does. The
//!   audit group is one statement, hence one transaction and one flush.
//! - **Atomicity across instances**: consuming a challenge is one insert of its nonce under a
//!   primary key (`ON CONFLICT DO NOTHING`: a second insert of the same nonce waits for the
//!   first to commit and then inserts nothing), and claiming a batch job is one conditional
//!   `UPDATE` (under READ COMMITTED a second `UPDATE` of the same row waits for the first to
//!   commit and re-checks its `WHERE` clause), so two instances cannot both consume one
//!   challenge or both hold one lease.
//!   `complete_batch_items` locks the job row first (`SELECT … FOR UPDATE`).
//! - **Values**: dates are `DATE`; instants are `TIMESTAMPTZ` cut to the millisecond before they
//!   are written, exactly as the SQLite store keeps them (Unix milliseconds), so both stores
//!   compare and round-trip instants alike. Identifiers sort in the `"C"` collation (byte
//!   order, like SQLite), whatever the database's locale.
//! - **The audit chain** (crate::audit_chain): the group commit locks the chain's head row
//!   (`SELECT … FOR UPDATE`) after its challenges, registrations and consents and just before
//!   its records, so the appends of every instance are serialized in one chain order and the
//!   lock is held only for the insert and the commit.
//! - **Schema**: created or upgraded on open inside one transaction holding an advisory lock,
//!   so instances starting together do not race; its version lives in `onshi_schema`.
//!
//! Every method blocks (the service calls them from `spawn_blocking`); opening and dropping
//! the store may also happen on an async thread. Connections are plain TCP or Unix-socket
//! connections without TLS: run the database on the same host or a private network.
//!
//! Over 1,200 lines on purpose: one implementation of the whole `Store` trait, as `sqlite.rs`,
//! each method beside the SQL it runs.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use ::postgres::config::Host;
use ::postgres::error::SqlState;
use ::postgres::types::private::BytesMut;
use ::postgres::types::{to_sql_checked, FromSql, IsNull, ToSql, Type};
use ::postgres::{Client, Config, GenericClient, NoTls, Row, Statement};
use time::{Date, OffsetDateTime};

use super::codec::{self, Value};
use super::group::{self, last_per_key, GroupTx};
use super::pool;
use super::queries::{Backend, Session};
use super::{
    corrupt, instant, BatchJob, ChainHead, ChallengeUse, GroupWrite, LoadBatch, Refuse,
    Registration, RememberedAnswer, StoreError,
};
use crate::audit::AuditRecord;
use crate::audit_chain::{self, ChainColumns};
use crate::challenge::ChallengeError;
use crate::clinical::Checkup;
use crate::consent::ConsentGrant;
use crate::eligibility::{ElderlyCertificate, HighCostLimit};

/// The schema version this code writes and understands (`onshi_schema.version`).
pub const SCHEMA_VERSION: i32 = 8;

/// Connections one store keeps open at most, unless [`PgStore::open_with_pool`] says otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 16;

/// How long a caller waits for a pooled connection before giving up.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// How long opening a connection may take, unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The advisory lock key that serializes schema creation ("onshi" in ASCII).
const SCHEMA_LOCK: i64 = 0x006f_6e73_6869;

const SCHEMA_V1: &str = r#"
CREATE TABLE persons (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    kana_name TEXT NOT NULL,
    sex SMALLINT NOT NULL CHECK (sex IN (1, 2, 3)),
    birth_date DATE NOT NULL,
    address TEXT NOT NULL,
    postcode TEXT NOT NULL,
    registered_for_insurance BOOLEAN NOT NULL,
    registered_at TIMESTAMPTZ
);

CREATE TABLE qualifications (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    person_id TEXT COLLATE "C" NOT NULL REFERENCES persons(id),
    insured_card_classification TEXT NOT NULL,
    insurer_number TEXT NOT NULL,
    insurer_name TEXT NOT NULL,
    symbol TEXT,
    number TEXT NOT NULL,
    branch TEXT,
    personal_family SMALLINT NOT NULL CHECK (personal_family IN (1, 2)),
    insured_person_name TEXT NOT NULL,
    qualification_date DATE NOT NULL,
    disqualification_date DATE,
    loss_reason TEXT,
    card_issue_date DATE NOT NULL,
    card_valid_from DATE NOT NULL,
    card_expiry DATE,
    copay_ratio TEXT NOT NULL,
    preschool BOOLEAN NOT NULL,
    elderly_valid_from DATE,
    elderly_valid_until DATE,
    elderly_copay_ratio TEXT,
    high_cost_certificate_type TEXT,
    high_cost_bracket TEXT,
    high_cost_valid_from DATE,
    high_cost_valid_until DATE
);
CREATE INDEX qualifications_by_person ON qualifications(person_id);
-- For the card-less lookup by insurance numbers (記号 and 枝番 are compared after these).
CREATE INDEX qualifications_by_numbers ON qualifications(insurer_number, number);

CREATE TABLE specific_diseases (
    qualification_id BIGINT NOT NULL REFERENCES qualifications(id) ON DELETE CASCADE,
    ordinal SMALLINT NOT NULL,
    category SMALLINT NOT NULL CHECK (category IN (1, 2, 3)),
    monthly_cap_yen BIGINT NOT NULL,
    valid_from DATE NOT NULL,
    valid_until DATE NOT NULL,
    PRIMARY KEY (qualification_id, ordinal)
);

CREATE TABLE cards (
    issuer_key TEXT COLLATE "C" NOT NULL,
    serial TEXT COLLATE "C" NOT NULL,
    person_id TEXT COLLATE "C" NOT NULL REFERENCES persons(id),
    PRIMARY KEY (issuer_key, serial)
);
CREATE INDEX cards_by_person ON cards(person_id);

CREATE TABLE terminals (
    institution_code TEXT COLLATE "C" NOT NULL,
    terminal_id TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('in-operation', 'suspended')),
    PRIMARY KEY (institution_code, terminal_id)
);

CREATE TABLE medications (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    person_id TEXT COLLATE "C" NOT NULL REFERENCES persons(id),
    dispensed_on DATE NOT NULL,
    institution_code TEXT NOT NULL,
    institution_name TEXT NOT NULL,
    drug_code TEXT NOT NULL,
    drug_name TEXT NOT NULL,
    usage TEXT NOT NULL,
    daily_quantity TEXT NOT NULL,
    days BIGINT NOT NULL
);
CREATE INDEX medications_by_person ON medications(person_id, dispensed_on);

CREATE TABLE checkups (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    person_id TEXT COLLATE "C" NOT NULL REFERENCES persons(id),
    examined_on DATE NOT NULL,
    height_cm_x10 BIGINT NOT NULL,
    weight_kg_x10 BIGINT NOT NULL,
    waist_cm_x10 BIGINT NOT NULL,
    bmi_x10 BIGINT NOT NULL,
    systolic_mmhg BIGINT NOT NULL,
    diastolic_mmhg BIGINT NOT NULL,
    hba1c_x10 BIGINT NOT NULL,
    ldl_mg_dl BIGINT NOT NULL,
    judgement TEXT NOT NULL
);
CREATE INDEX checkups_by_person ON checkups(person_id, examined_on);

CREATE TABLE consents (
    person_id TEXT COLLATE "C" NOT NULL,
    institution_code TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    given_at TIMESTAMPTZ NOT NULL,
    valid_until TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (person_id, institution_code, kind)
);

CREATE TABLE challenges (
    challenge BYTEA PRIMARY KEY,
    terminal TEXT NOT NULL,
    purpose SMALLINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    used_at TIMESTAMPTZ
);
CREATE INDEX challenges_expiry ON challenges(expires_at);

CREATE TABLE audit (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    confirmation_id TEXT NOT NULL UNIQUE,
    at TIMESTAMPTZ NOT NULL,
    institution_code TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    person_id TEXT,
    method TEXT NOT NULL,
    purpose TEXT NOT NULL,
    result_code TEXT NOT NULL,
    consents SMALLINT NOT NULL,
    certificate_sha256 TEXT,
    returned TEXT NOT NULL
);
CREATE INDEX audit_by_person ON audit(person_id, at);
CREATE INDEX audit_by_institution ON audit(institution_code, at);
CREATE INDEX audit_by_time ON audit(at);

CREATE TABLE batch_jobs (
    reception_number TEXT COLLATE "C" PRIMARY KEY,
    institution_code TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    submitted_at TIMESTAMPTZ NOT NULL,
    total BIGINT NOT NULL,
    completed BIGINT NOT NULL DEFAULT 0,
    finished_at TIMESTAMPTZ,
    lease_owner TEXT,
    lease_until TIMESTAMPTZ
);
CREATE INDEX batch_jobs_unfinished ON batch_jobs(submitted_at) WHERE finished_at IS NULL;

CREATE TABLE batch_items (
    reception_number TEXT COLLATE "C" NOT NULL REFERENCES batch_jobs(reception_number),
    ordinal BIGINT NOT NULL,
    query BYTEA NOT NULL,
    result BYTEA,
    PRIMARY KEY (reception_number, ordinal)
);
"#;

/// The store. See the module documentation.
pub struct PgStore {
    /// `user@host:port/dbname`, for messages (never the password).
    target: String,
    /// Taken only when the store is dropped, to be dropped on a thread of its own.
    pool: Option<r2d2::Pool<Connections>>,
    pool_size: u32,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// Makes the pool's connections.
struct Connections {
    config: Config,
    target: String,
}

impl Connections {
    fn connect(&self) -> Result<Conn, StoreError> {
        let mut client = self.config.connect(NoTls).map_err(|e| StoreError::Open {
            location: self.target.clone(),
            reason: StoreError::from(e).to_string(),
        })?;
        // Whatever the server's default: a commit returns only once it is flushed to disk.
        client.batch_execute("SET synchronous_commit = on")?;
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }
}

impl r2d2::ManageConnection for Connections {
    type Connection = Conn;
    type Error = StoreError;

    fn connect(&self) -> Result<Conn, StoreError> {
        Connections::connect(self)
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), StoreError> {
        Ok(conn.client.batch_execute("")?)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        // A connection that broke (server restart) is dropped instead of being returned, so
        // the next caller gets a fresh one.
        conn.client.is_closed()
    }
}

/// One connection with its prepared statements (valid for that connection only).
struct Conn {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl Conn {
    /// The prepared statement for `sql`, prepared on first use on this connection.
    fn prepare(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

impl PgStore {
    /// Opens the store at a `postgres://` or `postgresql://` URL with up to
    /// [`DEFAULT_POOL_SIZE`] connections, creating or upgrading the schema. Refuses a database
    /// whose schema is newer than this build.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        Self::open_with_pool(url, DEFAULT_POOL_SIZE)
    }

    /// [`PgStore::open`] with another pool size (at least 1).
    pub fn open_with_pool(url: &str, pool_size: u32) -> Result<PgStore, StoreError> {
        let mut config = Config::from_str(url).map_err(|e| {
            // The parser's message names the bad part; the URL itself may hold a password.
            StoreError::BadLocation(format!("a PostgreSQL URL that cannot be parsed ({e})"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("onshi-confirm-service");
        }
        let target = describe(&config);
        let connections = Connections {
            config,
            target: target.clone(),
        };
        // The schema first, on a connection of its own: a server that cannot be reached fails
        // the open at once, rather than after the pool's wait.
        on_own_thread(|| -> Result<(), StoreError> {
            let mut conn = connections.connect()?;
            migrate(&mut conn.client, &target)?;
            warn_if_not_durable(&mut conn.client, &target)
        })?;
        let pool_size = pool_size.max(1);
        // Connections are made as callers need them, up to the pool's size.
        let pool = pool::builder(pool_size, POOL_WAIT)
            .min_idle(Some(0))
            .build_unchecked(connections);
        Ok(PgStore {
            target,
            pool: Some(pool),
            pool_size,
        })
    }

    /// `user@host:port/dbname` of this store, for messages.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether any person or terminal is stored (a copy refuses such a destination).
    pub fn holds_reference_data(&self) -> Result<bool, StoreError> {
        self.read(|s| {
            s.row(
                "SELECT EXISTS (SELECT 1 FROM persons) OR EXISTS (SELECT 1 FROM terminals)",
                &[],
                |r| r.bool(0),
            )
        })
        .map(|held| held.unwrap_or(false))
    }

    /// Lends a connection: an idle one, a new one while fewer than the pool size are open, or
    /// the next one returned.
    fn conn(&self) -> Result<r2d2::PooledConnection<Connections>, StoreError> {
        let pool = self.pool.as_ref().ok_or_else(|| StoreError::Busy {
            location: self.target.clone(),
            waited: Duration::ZERO,
            reason: "the store is closing".into(),
        })?;
        pool.get().map_err(|e| StoreError::Busy {
            location: self.target.clone(),
            waited: POOL_WAIT,
            reason: e.to_string(),
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            on_own_thread(move || drop(pool));
        }
    }
}

/// Runs `f` on a thread of its own and waits for it. Each synchronous client drives its
/// connection with a small runtime of its own, which can be neither started nor dropped on a
/// thread that is running async code: opening and dropping the store go through here, so the
/// service may do both from its async start-up and shutdown.
fn on_own_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// `user@host:port/dbname` without the password.
fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or("?"),
        config.get_dbname().unwrap_or("?")
    )
}

/// Version 2: the terminals' device public keys (face and visual-check attestations); a
/// terminal of an older database has none.
const SCHEMA_V2: &str = "
ALTER TABLE terminals ADD COLUMN device_public_key BYTEA
    CHECK (device_public_key IS NULL OR octet_length(device_public_key) = 65);
";

/// Version 3: the audit log's hash chain (crate::audit_chain); records already there are
/// chained at migration, in the order they were written.
const SCHEMA_V3: &str = "
ALTER TABLE audit ADD COLUMN IF NOT EXISTS chain_seq BIGINT;
ALTER TABLE audit ADD COLUMN IF NOT EXISTS prev_hash BYTEA;
ALTER TABLE audit ADD COLUMN IF NOT EXISTS hash BYTEA;
CREATE INDEX IF NOT EXISTS audit_by_chain ON audit(chain_seq, seq);
CREATE TABLE IF NOT EXISTS audit_chain (
    singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    last_seq BIGINT NOT NULL,
    last_hash BYTEA NOT NULL,
    anchor_seq BIGINT NOT NULL,
    anchor_hash BYTEA NOT NULL
);
";

/// Version 4 (one step): the visit time a caught-up confirmation claims, beside the receipt
/// time, and the answers remembered by idempotency key, shared by every instance
/// (crate::idempotency).
const SCHEMA_V4: &str = "
ALTER TABLE audit ADD COLUMN IF NOT EXISTS claimed_at TIMESTAMPTZ;
CREATE TABLE IF NOT EXISTS idempotency (
    terminal TEXT NOT NULL,
    method TEXT NOT NULL,
    key TEXT NOT NULL,
    answer BYTEA NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (terminal, method, key)
);
CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency(expires_at);
";

/// Version 5: the institutions' registry (導入医療機関リスト): name and the date online
/// confirmation started; the prefecture is the code's first two digits.
const SCHEMA_V5: &str = "
CREATE TABLE IF NOT EXISTS institutions (
    institution_code TEXT COLLATE \"C\" PRIMARY KEY,
    name TEXT NOT NULL CHECK (length(name) > 0),
    started_on DATE NOT NULL
);
";

/// Version 6: sealed challenges (crate::challenge): the nonces used (each begins with its
/// challenge's expiry, so the index grows at its end and is pruned by a key range) and the
/// keys that seal them, shared by the instances. Challenges outstanding at the upgrade are
/// dropped (a terminal asks for a new one).
const SCHEMA_V6: &str = "
DROP TABLE IF EXISTS challenges;
CREATE TABLE IF NOT EXISTS used_challenges (
    nonce BYTEA PRIMARY KEY CHECK (length(nonce) = 16)
);
CREATE TABLE IF NOT EXISTS challenge_keys (
    id BIGINT PRIMARY KEY,
    secret BYTEA NOT NULL CHECK (length(secret) = 32),
    created_at BIGINT NOT NULL
);
";

/// Version 7: the document each person holds in place of the paper insurance card
/// (資格確認書 with its validity period, or 資格情報のお知らせ without one).
const SCHEMA_V7: &str = "
CREATE TABLE IF NOT EXISTS insurance_documents (
    person_id TEXT COLLATE \"C\" PRIMARY KEY REFERENCES persons(id),
    kind TEXT NOT NULL CHECK (kind IN ('shikaku-kakuninsho', 'shikaku-joho-oshirase')),
    valid_from DATE,
    valid_until DATE
);
";

/// Version 8: 医療扶助 recipients' 医療券 / 調剤券 (the recipients themselves are
/// qualification records of classification A1). A ticket answers for its treatment month
/// from the day it was registered (`registered_on`, NULL while on paper only).
const SCHEMA_V8: &str = "
CREATE TABLE IF NOT EXISTS medical_tickets (
    person_id TEXT COLLATE \"C\" NOT NULL REFERENCES persons(id),
    treatment_month TEXT COLLATE \"C\" NOT NULL CHECK (length(treatment_month) = 6),
    kind TEXT NOT NULL CHECK (kind IN ('1', '2')),
    issue_number TEXT COLLATE \"C\" NOT NULL,
    valid_from DATE NOT NULL,
    valid_until DATE NOT NULL,
    institution_code TEXT NOT NULL,
    institution_name TEXT NOT NULL,
    self_pay_yen BIGINT NOT NULL CHECK (self_pay_yen >= 0),
    registered_on DATE,
    PRIMARY KEY (person_id, treatment_month, issue_number)
);
";

/// Creates or upgrades the schema in one transaction that holds an advisory lock, so two
/// instances opening a fresh database together do not both create it.
fn migrate(client: &mut Client, target: &str) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS onshi_schema (
             singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
             version INTEGER NOT NULL
         )",
    )?;
    let found: i32 = tx
        .query_opt("SELECT version FROM onshi_schema", &[])?
        .map(|r| r.try_get(0))
        .transpose()?
        .unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            location: target.to_owned(),
            found: i64::from(found),
            supported: i64::from(SCHEMA_VERSION),
        });
    }
    if found < 1 {
        tx.batch_execute(SCHEMA_V1)?;
    }
    if found < 2 {
        tx.batch_execute(SCHEMA_V2)?;
    }
    if found < 3 {
        tx.batch_execute(SCHEMA_V3)?;
        tx.execute(
            "INSERT INTO audit_chain (last_seq, last_hash, anchor_seq, anchor_hash)
             VALUES (0, $1, 0, $1) ON CONFLICT (singleton) DO NOTHING",
            &[&&audit_chain::GENESIS[..]],
        )?;
        chain_existing(&mut tx)?;
    }
    if found < 4 {
        tx.batch_execute(SCHEMA_V4)?;
    }
    if found < 5 {
        tx.batch_execute(SCHEMA_V5)?;
    }
    if found < 6 {
        tx.batch_execute(SCHEMA_V6)?;
    }
    if found < 7 {
        tx.batch_execute(SCHEMA_V7)?;
    }
    if found < 8 {
        tx.batch_execute(SCHEMA_V8)?;
    }
    if found < SCHEMA_VERSION {
        tx.execute(
            "INSERT INTO onshi_schema (version) VALUES ($1)
             ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
            &[&SCHEMA_VERSION],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// A server running with `fsync = off` acknowledges commits it may lose: say so loudly (the
/// audit log's guarantee depends on it), but let a developer's throwaway server run.
fn warn_if_not_durable(client: &mut Client, target: &str) -> Result<(), StoreError> {
    let fsync: String = client.query_one("SHOW fsync", &[])?.try_get(0)?;
    if fsync != "on" {
        tracing::warn!(
            target: "onshi::store",
            "PostgreSQL at {target} runs with fsync = {fsync}: committed audit records can be \
             lost in a crash"
        );
    }
    Ok(())
}

/// A column by position, with a type error reported rather than panicking.
fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, StoreError> {
    Ok(row.try_get(i)?)
}

/// Registers a person in one statement: whether it changed the person, and whether the
/// person exists.
const REGISTER: &str = "WITH marked AS (
         UPDATE persons SET registered_for_insurance = true, registered_at = $2
         WHERE id = $1 AND NOT registered_for_insurance
         RETURNING 1
     )
     SELECT EXISTS (SELECT 1 FROM marked),
            EXISTS (SELECT 1 FROM persons WHERE id = $1)";

fn register(
    client: &mut impl GenericClient,
    stmt: &Statement,
    person_id: &str,
    at: OffsetDateTime,
) -> Result<Registration, StoreError> {
    let rows = client.query(stmt, &[&person_id, &instant(at)])?;
    let row = rows
        .first()
        .ok_or_else(|| corrupt("registration", "its statement returned no row"))?;
    match (col::<bool>(row, 0)?, col::<bool>(row, 1)?) {
        (true, _) => Ok(Registration::Registered),
        (false, true) => Ok(Registration::AlreadyRegistered),
        (false, false) => Err(StoreError::UnknownPerson(person_id.to_owned())),
    }
}

/// Records consents; the latest grant per person, institution and kind wins.
const INSERT_CONSENTS: &str =
    "INSERT INTO consents (person_id, institution_code, kind, given_at, valid_until)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],
                          $5::timestamptz[])
     ON CONFLICT (person_id, institution_code, kind) DO UPDATE
     SET given_at = excluded.given_at, valid_until = excluded.valid_until";

fn insert_consents(
    client: &mut impl GenericClient,
    stmt: &Statement,
    grants: &[&ConsentGrant],
) -> Result<(), StoreError> {
    if grants.is_empty() {
        return Ok(());
    }
    // One statement may not update a row twice: keep each key's last grant.
    let grants: Vec<&ConsentGrant> = last_per_key(grants, |g| group::grant_key(g))
        .into_iter()
        .copied()
        .collect();
    let person: Vec<&str> = grants.iter().map(|g| g.person_id.as_str()).collect();
    let code: Vec<&str> = grants.iter().map(|g| g.institution_code.as_str()).collect();
    let kind: Vec<&str> = grants.iter().map(|g| g.kind.as_str()).collect();
    let given: Vec<OffsetDateTime> = grants.iter().map(|g| instant(g.given_at)).collect();
    let until: Vec<OffsetDateTime> = grants.iter().map(|g| instant(g.valid_until)).collect();
    client.execute(stmt, &[&person, &code, &kind, &given, &until])?;
    Ok(())
}

static INSERT_AUDIT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO audit (confirmation_id, at, {}, chain_seq, prev_hash, hash)
         SELECT id, at, code, terminal, person, method, purpose, result, consents, cert,
                returned, claimed, chain_seq, prev_hash, hash
         FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                     $6::text[], $7::text[], $8::text[], $9::int2[], $10::text[], $11::text[],
                     $12::int8[], $13::bytea[], $14::bytea[], $15::timestamptz[])
              WITH ORDINALITY AS u(id, at, code, terminal, person, method, purpose, result,
                                   consents, cert, returned, chain_seq, prev_hash, hash,
                                   claimed, n)
         ORDER BY n",
        codec::AUDIT_FIELDS
    )
});

/// Reads and locks the chain's head: every other instance's append waits here until this
/// transaction ends.
const LOCK_HEAD: &str =
    "SELECT last_seq, last_hash, anchor_seq, anchor_hash FROM audit_chain FOR UPDATE";

fn lock_head(client: &mut impl GenericClient, stmt: &Statement) -> Result<ChainHead, StoreError> {
    let rows = client.query(stmt, &[])?;
    let row = rows
        .first()
        .ok_or_else(|| corrupt("audit chain", "the head row is missing"))?;
    codec::chain_head(&PgRow(row))
}

/// Chains the records written before the chain existed, in the order they were written
/// (version 3's migration).
fn chain_existing(tx: &mut ::postgres::Transaction<'_>) -> Result<(), StoreError> {
    let rows = tx
        .query(
            &format!(
                "SELECT {}, confirmation_id, at, {} FROM audit
                 WHERE chain_seq IS NULL ORDER BY seq",
                codec::CHAIN_FIELDS,
                codec::AUDIT_FIELDS_UNCLAIMED_PG
            ),
            &[],
        )?
        .iter()
        .map(|r| codec::chained_record(&PgRow(r), PgStore::chained_time))
        .collect::<Result<Vec<_>, _>>()?;
    let lock = tx.prepare(LOCK_HEAD)?;
    let head = lock_head(tx, &lock)?;
    let (cols, seq, hash) = audit_chain::extend(
        head.last_seq,
        &head.last_hash,
        rows.iter().map(|r| &r.record),
    );
    let update =
        tx.prepare("UPDATE audit SET chain_seq = $2, prev_hash = $3, hash = $4 WHERE seq = $1")?;
    for (row, (position, prev, this)) in rows.iter().zip(&cols) {
        tx.execute(&update, &[&row.row, position, prev, this])?;
    }
    tx.execute(
        "UPDATE audit_chain SET last_seq = $1, last_hash = $2",
        &[&seq, &hash],
    )?;
    Ok(())
}

/// Appends audit records with one statement, in order, with their chain columns.
fn insert_audit(
    client: &mut impl GenericClient,
    stmt: &Statement,
    records: &[&AuditRecord],
    chain: &[ChainColumns],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let chain_seq: Vec<i64> = chain.iter().map(|c| c.0).collect();
    let prev: Vec<&[u8]> = chain.iter().map(|c| c.1.as_slice()).collect();
    let hash: Vec<&[u8]> = chain.iter().map(|c| c.2.as_slice()).collect();
    let id: Vec<&str> = records.iter().map(|r| r.confirmation_id.as_str()).collect();
    let at: Vec<OffsetDateTime> = records.iter().map(|r| instant(r.at)).collect();
    let code: Vec<&str> = records
        .iter()
        .map(|r| r.institution_code.as_str())
        .collect();
    let terminal: Vec<&str> = records.iter().map(|r| r.terminal_id.as_str()).collect();
    let person: Vec<Option<&str>> = records.iter().map(|r| r.person_id.as_deref()).collect();
    let method: Vec<&str> = records.iter().map(|r| r.method.as_str()).collect();
    let purpose: Vec<&str> = records.iter().map(|r| r.purpose.as_str()).collect();
    let result: Vec<&str> = records.iter().map(|r| r.result_code.as_str()).collect();
    let consents: Vec<i16> = records.iter().map(|r| i16::from(r.consents)).collect();
    let cert: Vec<Option<&str>> = records
        .iter()
        .map(|r| r.certificate_sha256.as_deref())
        .collect();
    let returned: Vec<&str> = records.iter().map(|r| r.returned.as_str()).collect();
    let claimed: Vec<Option<OffsetDateTime>> =
        records.iter().map(|r| r.claimed_at.map(instant)).collect();
    client.execute(
        stmt,
        &[
            &id, &at, &code, &terminal, &person, &method, &purpose, &result, &consents, &cert,
            &returned, &chain_seq, &prev, &hash, &claimed,
        ],
    )?;
    Ok(())
}

/// A foreign-key failure on insert means a person does not exist: say which.
fn unknown_person_or(e: ::postgres::Error) -> StoreError {
    let Some(db) = e.as_db_error() else {
        return e.into();
    };
    if db.code() != &SqlState::FOREIGN_KEY_VIOLATION {
        return e.into();
    }
    // "Key (person_id)=(P9) is not present in table "persons"."
    let id = db
        .detail()
        .and_then(|d| {
            d.split_once(")=(")?
                .1
                .rsplit_once(") is not present")
                .map(|p| p.0)
        })
        .unwrap_or("?");
    StoreError::UnknownPerson(id.to_owned())
}

/// Writes a [`LoadBatch`] in one transaction: one multi-row statement per table (arrays unnested on
/// the server), so a chunk of thousands of rows costs a handful of round trips.
fn load(conn: &mut Conn, batch: &LoadBatch) -> Result<(), StoreError> {
    let upsert_persons = conn.prepare(
        "INSERT INTO persons (id, name, kana_name, sex, birth_date, address, postcode,
                              registered_for_insurance)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int2[], $5::date[],
                              $6::text[], $7::text[], $8::bool[])
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, kana_name = excluded.kana_name,
             sex = excluded.sex, birth_date = excluded.birth_date, address = excluded.address,
             postcode = excluded.postcode,
             registered_for_insurance = excluded.registered_for_insurance",
    )?;
    let missing_persons = conn.prepare(
        "SELECT u.id FROM unnest($1::text[]) AS u(id)
         WHERE NOT EXISTS (SELECT 1 FROM persons p WHERE p.id = u.id)
         ORDER BY u.id COLLATE \"C\" LIMIT 1",
    )?;
    let next_ids = conn.prepare(
        "SELECT nextval(pg_get_serial_sequence('qualifications', 'id'))
         FROM generate_series(1, $1::int8)",
    )?;
    let insert_qualifications = conn.prepare(&format!(
        "INSERT INTO qualifications (id, {})
         SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::text[], $9::int2[], $10::text[], $11::date[],
             $12::date[], $13::text[], $14::date[], $15::date[], $16::date[], $17::text[],
             $18::bool[], $19::date[], $20::date[], $21::text[], $22::text[], $23::text[],
             $24::date[], $25::date[])",
        codec::QUALIFICATION_COLUMNS
    ))?;
    let insert_diseases = conn.prepare(
        "INSERT INTO specific_diseases (qualification_id, ordinal, category, monthly_cap_yen,
                                        valid_from, valid_until)
         SELECT * FROM unnest($1::int8[], $2::int2[], $3::int2[], $4::int8[], $5::date[],
                              $6::date[])",
    )?;
    let upsert_cards = conn.prepare(
        "INSERT INTO cards (issuer_key, serial, person_id)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
         ON CONFLICT (issuer_key, serial) DO UPDATE SET person_id = excluded.person_id",
    )?;
    let upsert_terminals = conn.prepare(
        "INSERT INTO terminals (institution_code, terminal_id, status, device_public_key)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[])
         ON CONFLICT (institution_code, terminal_id) DO UPDATE SET status = excluded.status,
             device_public_key = excluded.device_public_key",
    )?;
    let upsert_institutions = conn.prepare(
        "INSERT INTO institutions (institution_code, name, started_on)
         SELECT * FROM unnest($1::text[], $2::text[], $3::date[])
         ON CONFLICT (institution_code) DO UPDATE SET name = excluded.name,
             started_on = excluded.started_on",
    )?;
    let insert_medications = conn.prepare(
        "INSERT INTO medications (person_id, dispensed_on, institution_code, institution_name,
                                  drug_code, drug_name, usage, daily_quantity, days)
         SELECT person_id, dispensed_on, institution_code, institution_name, drug_code,
                drug_name, usage, daily_quantity, days
         FROM unnest($1::text[], $2::date[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::int8[])
              WITH ORDINALITY AS u(person_id, dispensed_on, institution_code, institution_name,
                                   drug_code, drug_name, usage, daily_quantity, days, n)
         ORDER BY n",
    )?;
    let upsert_documents = conn.prepare(
        "INSERT INTO insurance_documents (person_id, kind, valid_from, valid_until)
         SELECT * FROM unnest($1::text[], $2::text[], $3::date[], $4::date[])
         ON CONFLICT (person_id) DO UPDATE SET kind = excluded.kind,
             valid_from = excluded.valid_from, valid_until = excluded.valid_until",
    )?;
    let upsert_tickets = conn.prepare(
        "INSERT INTO medical_tickets (person_id, treatment_month, kind, issue_number, valid_from,
             valid_until, institution_code, institution_name, self_pay_yen, registered_on)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::date[],
             $6::date[], $7::text[], $8::text[], $9::int8[], $10::date[])
         ON CONFLICT (person_id, treatment_month, issue_number) DO UPDATE SET
             kind = excluded.kind, valid_from = excluded.valid_from,
             valid_until = excluded.valid_until, institution_code = excluded.institution_code,
             institution_name = excluded.institution_name,
             self_pay_yen = excluded.self_pay_yen, registered_on = excluded.registered_on",
    )?;
    let insert_checkups = conn.prepare(
        "INSERT INTO checkups (person_id, examined_on, height_cm_x10, weight_kg_x10,
                               waist_cm_x10, bmi_x10, systolic_mmhg, diastolic_mmhg, hba1c_x10,
                               ldl_mg_dl, judgement)
         SELECT person_id, examined_on, height, weight, waist, bmi, systolic, diastolic, hba1c,
                ldl, judgement
         FROM unnest($1::text[], $2::date[], $3::int8[], $4::int8[], $5::int8[], $6::int8[],
                     $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::text[])
              WITH ORDINALITY AS u(person_id, examined_on, height, weight, waist, bmi,
                                   systolic, diastolic, hba1c, ldl, judgement, n)
         ORDER BY n",
    )?;

    let mut tx = conn.client.transaction()?;

    if !batch.persons.is_empty() {
        let persons = last_per_key(&batch.persons, |p| p.id.as_str());
        let ids: Vec<&str> = persons.iter().map(|p| p.id.as_str()).collect();
        let names: Vec<&str> = persons.iter().map(|p| p.name.as_str()).collect();
        let kana: Vec<&str> = persons.iter().map(|p| p.kana_name.as_str()).collect();
        let sex: Vec<i16> = persons.iter().map(|p| i16::from(p.sex)).collect();
        let birth: Vec<Date> = persons.iter().map(|p| p.birth_date).collect();
        let address: Vec<&str> = persons.iter().map(|p| p.address.as_str()).collect();
        let postcode: Vec<&str> = persons.iter().map(|p| p.postcode.as_str()).collect();
        let registered: Vec<bool> = persons.iter().map(|p| p.registered_for_insurance).collect();
        tx.execute(
            &upsert_persons,
            &[
                &ids,
                &names,
                &kana,
                &sex,
                &birth,
                &address,
                &postcode,
                &registered,
            ],
        )?;
    }

    // Every row below names a person: find a missing one before the foreign keys do, so the
    // error says which.
    let mut referenced: Vec<&str> = batch
        .qualifications
        .iter()
        .map(|q| q.person_id.as_str())
        .chain(batch.cards.iter().map(|(_, p)| p.as_str()))
        .chain(batch.medications.iter().map(|m| m.person_id.as_str()))
        .chain(batch.checkups.iter().map(|c| c.person_id.as_str()))
        .chain(batch.documents.iter().map(|d| d.person_id.as_str()))
        .chain(batch.medical_tickets.iter().map(|t| t.person_id.as_str()))
        .collect();
    referenced.sort_unstable();
    referenced.dedup();
    if !referenced.is_empty() {
        if let Some(row) = tx.query_opt(&missing_persons, &[&referenced])? {
            return Err(StoreError::UnknownPerson(col(&row, 0)?));
        }
    }

    if !batch.qualifications.is_empty() {
        let qs = &batch.qualifications;
        let mut ids: Vec<i64> = tx
            .query(&next_ids, &[&(qs.len() as i64)])?
            .iter()
            .map(|r| col(r, 0))
            .collect::<Result<_, _>>()?;
        // Ascending ids in batch order keep "insertion order" for equal qualification dates.
        ids.sort_unstable();
        let person: Vec<&str> = qs.iter().map(|q| q.person_id.as_str()).collect();
        let class: Vec<&str> = qs
            .iter()
            .map(|q| q.insured_card_classification.as_str())
            .collect();
        let insurer: Vec<&str> = qs.iter().map(|q| q.insurer_number.as_str()).collect();
        let insurer_name: Vec<&str> = qs.iter().map(|q| q.insurer_name.as_str()).collect();
        let symbol: Vec<Option<&str>> = qs.iter().map(|q| q.symbol.as_deref()).collect();
        let number: Vec<&str> = qs.iter().map(|q| q.number.as_str()).collect();
        let branch: Vec<Option<&str>> = qs.iter().map(|q| q.branch.as_deref()).collect();
        let family: Vec<i16> = qs.iter().map(|q| i16::from(q.personal_family)).collect();
        let insured: Vec<&str> = qs.iter().map(|q| q.insured_person_name.as_str()).collect();
        let qualified: Vec<Date> = qs.iter().map(|q| q.qualification_date).collect();
        let disqualified: Vec<Option<Date>> = qs.iter().map(|q| q.disqualification_date).collect();
        let loss: Vec<Option<&str>> = qs.iter().map(|q| q.loss_reason.as_deref()).collect();
        let issued: Vec<Date> = qs.iter().map(|q| q.card_issue_date).collect();
        let valid_from: Vec<Date> = qs.iter().map(|q| q.card_valid_from).collect();
        let expiry: Vec<Option<Date>> = qs.iter().map(|q| q.card_expiry).collect();
        let copay: Vec<&str> = qs.iter().map(|q| q.copay_ratio.as_str()).collect();
        let preschool: Vec<bool> = qs.iter().map(|q| q.preschool).collect();
        let elderly = |f: &dyn Fn(&ElderlyCertificate) -> Date| -> Vec<Option<Date>> {
            qs.iter().map(|q| q.elderly.as_ref().map(f)).collect()
        };
        let elderly_from = elderly(&|e| e.valid_from);
        let elderly_until = elderly(&|e| e.valid_until);
        let elderly_ratio: Vec<Option<&str>> = qs
            .iter()
            .map(|q| q.elderly.as_ref().map(|e| e.copay_ratio.as_str()))
            .collect();
        let limit_type: Vec<Option<&str>> = qs
            .iter()
            .map(|q| {
                q.high_cost_limit
                    .as_ref()
                    .and_then(|l| l.certificate_type.as_deref())
            })
            .collect();
        let limit_bracket: Vec<Option<&str>> = qs
            .iter()
            .map(|q| q.high_cost_limit.as_ref().map(|l| l.bracket.as_str()))
            .collect();
        let limit = |f: &dyn Fn(&HighCostLimit) -> Date| -> Vec<Option<Date>> {
            qs.iter()
                .map(|q| q.high_cost_limit.as_ref().map(f))
                .collect()
        };
        let limit_from = limit(&|l| l.valid_from);
        let limit_until = limit(&|l| l.valid_until);
        tx.execute(
            &insert_qualifications,
            &[
                &ids,
                &person,
                &class,
                &insurer,
                &insurer_name,
                &symbol,
                &number,
                &branch,
                &family,
                &insured,
                &qualified,
                &disqualified,
                &loss,
                &issued,
                &valid_from,
                &expiry,
                &copay,
                &preschool,
                &elderly_from,
                &elderly_until,
                &elderly_ratio,
                &limit_type,
                &limit_bracket,
                &limit_from,
                &limit_until,
            ],
        )
        .map_err(unknown_person_or)?;

        let mut d_id = Vec::new();
        let mut d_ordinal = Vec::new();
        let mut d_category = Vec::new();
        let mut d_cap = Vec::new();
        let mut d_from = Vec::new();
        let mut d_until = Vec::new();
        for (q, id) in qs.iter().zip(&ids) {
            for (i, d) in q.specific_diseases.iter().enumerate() {
                d_id.push(*id);
                d_ordinal.push(i16::try_from(i).map_err(|_| corrupt("disease ordinal", i))?);
                d_category.push(i16::from(d.category));
                d_cap.push(i64::from(d.monthly_cap_yen));
                d_from.push(d.valid_from);
                d_until.push(d.valid_until);
            }
        }
        if !d_id.is_empty() {
            tx.execute(
                &insert_diseases,
                &[&d_id, &d_ordinal, &d_category, &d_cap, &d_from, &d_until],
            )?;
        }
    }

    if !batch.cards.is_empty() {
        let cards = last_per_key(&batch.cards, |(k, _)| k.clone());
        let issuer: Vec<&str> = cards.iter().map(|(k, _)| k.issuer_key.as_str()).collect();
        let serial: Vec<&str> = cards.iter().map(|(k, _)| k.serial.as_str()).collect();
        let person: Vec<&str> = cards.iter().map(|(_, p)| p.as_str()).collect();
        tx.execute(&upsert_cards, &[&issuer, &serial, &person])
            .map_err(unknown_person_or)?;
    }

    if !batch.terminals.is_empty() {
        let terminals = last_per_key(&batch.terminals, |t| {
            (t.institution_code.as_str(), t.terminal_id.as_str())
        });
        let code: Vec<&str> = terminals
            .iter()
            .map(|t| t.institution_code.as_str())
            .collect();
        let id: Vec<&str> = terminals.iter().map(|t| t.terminal_id.as_str()).collect();
        let status: Vec<&str> = terminals.iter().map(|t| t.status.as_str()).collect();
        let key: Vec<Option<&[u8]>> = terminals
            .iter()
            .map(|t| t.device_public_key.as_deref())
            .collect();
        tx.execute(&upsert_terminals, &[&code, &id, &status, &key])?;
    }

    if !batch.institutions.is_empty() {
        let institutions = last_per_key(&batch.institutions, |i| i.institution_code.as_str());
        let code: Vec<&str> = institutions
            .iter()
            .map(|i| i.institution_code.as_str())
            .collect();
        let name: Vec<&str> = institutions.iter().map(|i| i.name.as_str()).collect();
        let started: Vec<Date> = institutions.iter().map(|i| i.started_on).collect();
        tx.execute(&upsert_institutions, &[&code, &name, &started])?;
    }

    if !batch.medications.is_empty() {
        let ms = &batch.medications;
        let person: Vec<&str> = ms.iter().map(|m| m.person_id.as_str()).collect();
        let on: Vec<Date> = ms.iter().map(|m| m.dispensed_on).collect();
        let code: Vec<&str> = ms.iter().map(|m| m.institution_code.as_str()).collect();
        let name: Vec<&str> = ms.iter().map(|m| m.institution_name.as_str()).collect();
        let drug_code: Vec<&str> = ms.iter().map(|m| m.drug_code.as_str()).collect();
        let drug_name: Vec<&str> = ms.iter().map(|m| m.drug_name.as_str()).collect();
        let usage: Vec<&str> = ms.iter().map(|m| m.usage.as_str()).collect();
        let qty: Vec<&str> = ms.iter().map(|m| m.daily_quantity.as_str()).collect();
        let days: Vec<i64> = ms.iter().map(|m| i64::from(m.days)).collect();
        tx.execute(
            &insert_medications,
            &[
                &person, &on, &code, &name, &drug_code, &drug_name, &usage, &qty, &days,
            ],
        )
        .map_err(unknown_person_or)?;
    }

    if !batch.checkups.is_empty() {
        let cs = &batch.checkups;
        let n =
            |f: fn(&Checkup) -> u32| -> Vec<i64> { cs.iter().map(|c| i64::from(f(c))).collect() };
        let person: Vec<&str> = cs.iter().map(|c| c.person_id.as_str()).collect();
        let on: Vec<Date> = cs.iter().map(|c| c.examined_on).collect();
        let judgement: Vec<&str> = cs.iter().map(|c| c.judgement.as_str()).collect();
        tx.execute(
            &insert_checkups,
            &[
                &person,
                &on,
                &n(|c| c.height_cm_x10),
                &n(|c| c.weight_kg_x10),
                &n(|c| c.waist_cm_x10),
                &n(|c| c.bmi_x10),
                &n(|c| c.systolic_mmhg),
                &n(|c| c.diastolic_mmhg),
                &n(|c| c.hba1c_x10),
                &n(|c| c.ldl_mg_dl),
                &judgement,
            ],
        )
        .map_err(unknown_person_or)?;
    }

    if !batch.documents.is_empty() {
        let ds = last_per_key(&batch.documents, |d| d.person_id.as_str());
        let person: Vec<&str> = ds.iter().map(|d| d.person_id.as_str()).collect();
        let kind: Vec<&str> = ds.iter().map(|d| d.kind.as_str()).collect();
        let from: Vec<Option<Date>> = ds.iter().map(|d| d.valid_from).collect();
        let until: Vec<Option<Date>> = ds.iter().map(|d| d.valid_until).collect();
        tx.execute(&upsert_documents, &[&person, &kind, &from, &until])
            .map_err(unknown_person_or)?;
    }

    if !batch.medical_tickets.is_empty() {
        let ts = last_per_key(&batch.medical_tickets, |t| {
            (t.person_id.as_str(), t.month, t.issue_number.as_str())
        });
        let person: Vec<&str> = ts.iter().map(|t| t.person_id.as_str()).collect();
        let month: Vec<String> = ts.iter().map(|t| t.month.yyyymm()).collect();
        let kind: Vec<&str> = ts.iter().map(|t| t.kind.code()).collect();
        let number: Vec<&str> = ts.iter().map(|t| t.issue_number.as_str()).collect();
        let from: Vec<Date> = ts.iter().map(|t| t.valid_from).collect();
        let until: Vec<Date> = ts.iter().map(|t| t.valid_until).collect();
        let code: Vec<&str> = ts.iter().map(|t| t.institution_code.as_str()).collect();
        let name: Vec<&str> = ts.iter().map(|t| t.institution_name.as_str()).collect();
        let pay: Vec<i64> = ts.iter().map(|t| i64::from(t.self_pay_yen)).collect();
        let registered: Vec<Option<Date>> = ts.iter().map(|t| t.registered_on).collect();
        tx.execute(
            &upsert_tickets,
            &[
                &person,
                &month,
                &kind,
                &number,
                &from,
                &until,
                &code,
                &name,
                &pay,
                &registered,
            ],
        )
        .map_err(unknown_person_or)?;
    }

    tx.commit()?;
    Ok(())
}

/// The group commit's statements ([`group`]), prepared on the connection, inside the group's
/// transaction: one multi-row statement per step where a step writes many rows, so a group
/// costs a handful of round trips.
struct GroupStatements<'t, 'c> {
    tx: &'t mut ::postgres::Transaction<'c>,
    consume: Statement,
    insert_grants: Statement,
    insert_records: Statement,
    register_person: Statement,
    lock_chain: Statement,
    advance_chain: Statement,
}

impl GroupTx for GroupStatements<'_, '_> {
    fn remember(&mut self, answers: &[&RememberedAnswer]) -> Result<(), StoreError> {
        // Rare (a key-carrying card-less call): one unprepared statement per answer. A key
        // another instance wrote first keeps its answer.
        for a in answers {
            self.tx.execute(
                "INSERT INTO idempotency (terminal, method, key, answer, expires_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[
                    &a.terminal,
                    &a.method,
                    &a.key,
                    &a.answer,
                    &instant(a.expires_at),
                ],
            )?;
        }
        Ok(())
    }

    fn consume(&mut self, u: &ChallengeUse) -> Result<Result<(), ChallengeError>, StoreError> {
        // One insert of the nonce. A consumer on another instance that inserted it first and
        // has not committed yet makes this one wait, then find the conflict: reused.
        let inserted = self.tx.execute(&self.consume, &[&&u.nonce[..]])?;
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
        register(self.tx, &self.register_person, person_id, at)
    }

    fn insert_consents(&mut self, grants: &[&ConsentGrant]) -> Result<(), StoreError> {
        insert_consents(self.tx, &self.insert_grants, grants)
    }

    fn lock_chain_head(&mut self) -> Result<ChainHead, StoreError> {
        lock_head(self.tx, &self.lock_chain)
    }

    fn append_audit(
        &mut self,
        records: &[&AuditRecord],
        chain: &[ChainColumns],
        last_seq: i64,
        last_hash: &[u8],
    ) -> Result<(), StoreError> {
        insert_audit(self.tx, &self.insert_records, records, chain)?;
        self.tx
            .execute(&self.advance_chain, &[&last_seq, &last_hash])?;
        Ok(())
    }
}

/// Statements on one PostgreSQL connection (inside a transaction or not), each prepared once
/// per connection.
struct Pg<'a, C: GenericClient> {
    client: &'a mut C,
    statements: &'a mut HashMap<String, Statement>,
}

impl<C: GenericClient> Pg<'_, C> {
    fn prepare(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

impl<C: GenericClient> Session for Pg<'_, C> {
    fn query(
        &mut self,
        sql: &str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(&dyn codec::Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let stmt = self.prepare(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        for row in self.client.query(&stmt, &params)? {
            each(&PgRow(&row))?;
        }
        Ok(())
    }

    fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, StoreError> {
        let stmt = self.prepare(sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        Ok(self.client.execute(&stmt, &params)?)
    }
}

/// A value in PostgreSQL's representation: dates as `DATE`, instants as `TIMESTAMPTZ` cut to
/// the millisecond, integers in the width of the parameter's column.
impl ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Bool(v) => v.to_sql(ty, out),
            Value::Text(v) => v.to_sql(ty, out),
            Value::Bytes(v) => v.to_sql(ty, out),
            Value::Date(v) => v.to_sql(ty, out),
            Value::Instant(v) => instant(v).to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        // Checked per value in `to_sql`, against the parameter's type.
        true
    }

    to_sql_checked!();
}

/// A row in PostgreSQL's representation.
struct PgRow<'r>(&'r Row);

impl codec::Row for PgRow<'_> {
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        let ty = self.0.columns().get(i).map(|c| c.type_().clone());
        Ok(match ty {
            Some(Type::INT2) => self.0.try_get::<_, Option<i16>>(i)?.map(i64::from),
            Some(Type::INT4) => self.0.try_get::<_, Option<i32>>(i)?.map(i64::from),
            _ => self.0.try_get(i)?,
        })
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(self.0.try_get(i)?)
    }
    fn opt_bool(&self, i: usize) -> Result<Option<bool>, StoreError> {
        Ok(self.0.try_get(i)?)
    }
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.try_get(i)?)
    }
    fn opt_date(&self, i: usize) -> Result<Option<Date>, StoreError> {
        Ok(self.0.try_get(i)?)
    }
    fn opt_instant(&self, i: usize) -> Result<Option<OffsetDateTime>, StoreError> {
        Ok(self.0.try_get(i)?)
    }
}

impl PgStore {
    /// Runs `f` on a pooled connection, in a transaction when `transaction`.
    fn session<R>(
        &self,
        transaction: bool,
        f: impl FnOnce(&mut dyn Session) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut conn = self.conn()?;
        let Conn { client, statements } = &mut *conn;
        if !transaction {
            return f(&mut Pg { client, statements });
        }
        let mut tx = client.transaction()?;
        let out = f(&mut Pg {
            client: &mut tx,
            statements,
        })?;
        tx.commit()?;
        Ok(out)
    }
}

impl Backend for PgStore {
    const KIND: &'static str = "postgres";
    const AUDIT_TIME: &'static str = "at";
    const CHAIN_TIME_CHECK: &'static str = "";
    const FOR_UPDATE: &'static str = " FOR UPDATE";

    /// A `TIMESTAMPTZ` with digits below the millisecond was not written by the service.
    fn chained_time(r: &dyn codec::Row) -> Result<(OffsetDateTime, Option<String>), StoreError> {
        let at = r.instant(5)?;
        let defect =
            (instant(at) != at).then(|| format!("its time {at} is not a whole millisecond"));
        Ok((at, defect))
    }

    fn read<R>(
        &self,
        f: impl FnOnce(&mut dyn Session) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.session(false, f)
    }

    fn write<R>(
        &self,
        f: impl FnOnce(&mut dyn Session) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.session(true, f)
    }

    fn write_beside_groups<R>(
        &self,
        f: impl FnOnce(&mut dyn Session) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.session(true, f)
    }

    fn load_batch(&self, batch: &LoadBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn()?;
        load(&mut conn, batch)
    }

    fn register(&self, person_id: &str, at: OffsetDateTime) -> Result<Registration, StoreError> {
        let mut conn = self.conn()?;
        let stmt = conn.prepare(REGISTER)?;
        register(&mut conn.client, &stmt, person_id, at)
    }

    fn upsert_consents(&self, grants: &[ConsentGrant]) -> Result<(), StoreError> {
        let grants: Vec<&ConsentGrant> = grants.iter().collect();
        let mut conn = self.conn()?;
        let stmt = conn.prepare(INSERT_CONSENTS)?;
        insert_consents(&mut conn.client, &stmt, &grants)
    }

    fn group_commit(
        &self,
        writes: &mut [GroupWrite],
        refuse: &Refuse,
    ) -> Result<group::Verdicts, StoreError> {
        let mut conn = self.conn()?;
        let consume = conn.prepare(
            "INSERT INTO used_challenges (nonce) VALUES ($1) ON CONFLICT (nonce) DO NOTHING",
        )?;
        let insert_grants = conn.prepare(INSERT_CONSENTS)?;
        let insert_records = conn.prepare(&INSERT_AUDIT)?;
        let register_person = conn.prepare(REGISTER)?;
        let lock_chain = conn.prepare(LOCK_HEAD)?;
        let advance_chain = conn.prepare("UPDATE audit_chain SET last_seq = $1, last_hash = $2")?;
        let Conn { client, .. } = &mut *conn;
        let mut tx = client.transaction()?;
        let verdicts = group::commit(
            &mut GroupStatements {
                tx: &mut tx,
                consume,
                insert_grants,
                insert_records,
                register_person,
                lock_chain,
                advance_chain,
            },
            writes,
            refuse,
        )?;
        tx.commit()?;
        Ok(verdicts)
    }

    fn insert_batch(&self, job: &BatchJob, queries: &[Vec<u8>]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let insert_job = conn.prepare(&format!(
            "INSERT INTO batch_jobs ({}) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            codec::BATCH_COLUMNS
        ))?;
        let insert_items = conn.prepare(
            "INSERT INTO batch_items (reception_number, ordinal, query)
             SELECT $1, n - 1, q FROM unnest($2::bytea[]) WITH ORDINALITY AS u(q, n)",
        )?;
        let mut tx = conn.client.transaction()?;
        tx.execute(
            &insert_job,
            &[
                &job.reception_number,
                &job.institution_code,
                &job.terminal_id,
                &instant(job.submitted_at),
                &i64::from(job.total),
                &i64::from(job.completed),
                &job.finished_at.map(instant),
            ],
        )?;
        if !queries.is_empty() {
            tx.execute(&insert_items, &[&job.reception_number, &queries])?;
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
        // The first answer for an ordinal wins, within this call as across calls.
        let mut seen = std::collections::HashSet::new();
        let firsts: Vec<&(u32, Vec<u8>)> =
            results.iter().filter(|(o, _)| seen.insert(*o)).collect();
        let ordinals: Vec<i64> = firsts.iter().map(|(o, _)| i64::from(*o)).collect();
        let answers: Vec<&[u8]> = firsts.iter().map(|(_, r)| r.as_slice()).collect();

        let mut conn = self.conn()?;
        let lock_job =
            conn.prepare("SELECT 1 FROM batch_jobs WHERE reception_number = $1 FOR UPDATE")?;
        let answer = conn.prepare(
            "UPDATE batch_items b SET result = u.result
             FROM unnest($2::int8[], $3::bytea[]) AS u(ordinal, result)
             WHERE b.reception_number = $1 AND b.ordinal = u.ordinal AND b.result IS NULL",
        )?;
        let count = conn.prepare(
            "UPDATE batch_jobs SET completed = completed + $2,
                 finished_at = CASE WHEN finished_at IS NULL AND completed + $2 >= total
                                    THEN $3 ELSE finished_at END
             WHERE reception_number = $1",
        )?;
        let mut tx = conn.client.transaction()?;
        // Completions of one job from several instances take turns, so the count stays exact.
        tx.execute(&lock_job, &[&reception_number])?;
        let answered = tx.execute(&answer, &[&reception_number, &ordinals, &answers])?;
        let answered = i64::try_from(answered).map_err(|_| corrupt("answer count", answered))?;
        tx.execute(&count, &[&reception_number, &answered, &instant(now)])?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn messages_name_the_target_without_the_password() {
        let c = Config::from_str("postgres://onshi:SECRET@db.invalid:6543/onshi").unwrap();
        assert_eq!(describe(&c), "onshi@db.invalid:6543/onshi");
        let c = Config::from_str("postgresql://onshi@%2Fvar%2Frun%2Fpostgresql/onshi").unwrap();
        assert_eq!(describe(&c), "onshi@/var/run/postgresql:5432/onshi");
        match PgStore::open("postgres://onshi:SECRET@db.invalid:99999/onshi") {
            Err(StoreError::BadLocation(msg)) => assert!(!msg.contains("SECRET"), "{msg}"),
            other => panic!("expected BadLocation, got {other:?}"),
        }
    }

    #[test]
    fn instants_are_cut_to_the_millisecond() {
        assert_eq!(
            instant(datetime!(2026-11-24 09:00:00.123_999_999 UTC)),
            datetime!(2026-11-24 09:00:00.123 UTC)
        );
        let whole = datetime!(2026-11-24 09:00:00.5 +09:00);
        assert_eq!(instant(whole), whole);
    }
}
