//! The storage conformance suite (onshi_e2e::store_suite) against the PostgreSQL store: one
//! private server for this test binary (onshi_e2e::pg, stopped when the binary ends however it
//! ends), a fresh database for each case, opened through `store::open` like the service opens
//! it. Then what only the PostgreSQL store has: server errors, schema creation by instances
//! starting together, a newer schema.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;

use onshi_confirm_service::audit::AuditRecord;
use onshi_confirm_service::store::postgres::{PgStore, SCHEMA_VERSION};
use onshi_confirm_service::store::{self, DbErrorKind, Store, StoreError};
use onshi_e2e::pg::PgServer;
use onshi_e2e::store_suite::Fixture;

fn fixture(case: &str) -> Fixture {
    let url = PgServer::shared()
        .create_database(case)
        .expect("a database on the private PostgreSQL");
    Fixture::new(
        move || -> Arc<dyn Store> {
            let store = store::open(&url).expect("open the PostgreSQL store");
            assert_eq!(store.kind(), "postgres");
            store
        },
        (),
    )
}

onshi_e2e::store_suite!(fixture);

// ---- PostgreSQL only ---------------------------------------------------------------------------

fn audit_record(id: &str) -> AuditRecord {
    AuditRecord {
        confirmation_id: id.into(),
        at: time::OffsetDateTime::UNIX_EPOCH,
        institution_code: "1340123452".into(),
        terminal_id: "T01".into(),
        person_id: None,
        method: "pin".into(),
        purpose: "confirm".into(),
        result_code: "RESULT_CODE_OK".into(),
        consents: 0,
        certificate_sha256: None,
        returned: "{}".into(),
        claimed_at: None,
    }
}

/// The driver's own text is only the error's kind ("db error"): the server's reason must
/// follow it, on one line.
#[test]
fn errors_carry_the_servers_reason() {
    let url = PgServer::shared().create_database("errors").unwrap();
    let store = PgStore::open(&url).unwrap();
    store.append_audit(&[audit_record("C1")]).unwrap();
    match store.append_audit(&[audit_record("C1")]) {
        Err(e @ StoreError::Database { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("duplicate key"), "{msg}");
            assert!(!msg.contains('\n'), "{msg}");
            let StoreError::Database { source, .. } = e else {
                unreachable!()
            };
            assert_eq!(source.kind, DbErrorKind::UniqueViolation);
            assert_eq!(source.code.as_deref(), Some("23505"));
        }
        other => panic!("expected a PostgreSQL error, got {other:?}"),
    }
}

/// Instances starting together on a fresh database create the schema once, without failing.
#[test]
fn concurrent_first_opens_create_the_schema_once() {
    let url = PgServer::shared().create_database("first_opens").unwrap();
    let opened: Vec<Result<PgStore, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6).map(|_| s.spawn(|| PgStore::open(&url))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &opened {
        assert!(o.is_ok(), "{o:?}");
    }
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let rows = admin
        .query("SELECT version FROM onshi_schema", &[])
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), SCHEMA_VERSION);
}

/// A database whose schema is newer than this build is refused, not used.
#[test]
fn a_newer_schema_is_refused() {
    let url = PgServer::shared().create_database("newer").unwrap();
    drop(PgStore::open(&url).unwrap());
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .execute(
            "UPDATE onshi_schema SET version = $1",
            &[&(SCHEMA_VERSION + 1)],
        )
        .unwrap();
    match PgStore::open(&url) {
        Err(
            e @ StoreError::SchemaTooNew {
                found, supported, ..
            },
        ) => {
            assert!(e.to_string().contains("newer"), "{e}");
            assert_eq!(
                (found, supported),
                (i64::from(SCHEMA_VERSION + 1), i64::from(SCHEMA_VERSION))
            );
        }
        other => panic!("expected the newer schema to be refused, got {other:?}"),
    }
}

/// A database of schema version 1 (before the terminals' device keys) is upgraded on open: its
/// terminals are kept, without a device key, and can be given one.
#[test]
fn a_version_1_database_is_migrated() {
    use onshi_confirm_service::store::{LoadBatch, Terminal, TerminalStatus};
    let url = PgServer::shared().create_database("v1").unwrap();
    drop(PgStore::open(&url).unwrap());
    // Back to version 1's layout, with a terminal in it.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "ALTER TABLE terminals DROP COLUMN device_public_key;
             INSERT INTO terminals (institution_code, terminal_id, status)
             VALUES ('1340123452', 'T01', 'in-operation');
             UPDATE onshi_schema SET version = 1;",
        )
        .unwrap();
    let store = PgStore::open(&url).unwrap();
    let old = store.terminal("1340123452", "T01").unwrap().unwrap();
    assert_eq!(old.status, TerminalStatus::InOperation);
    assert_eq!(old.device_public_key, None);
    let keyed = Terminal {
        device_public_key: Some((0..65).collect()),
        ..old
    };
    store
        .load(&LoadBatch {
            terminals: vec![keyed.clone()],
            ..LoadBatch::default()
        })
        .unwrap();
    assert_eq!(store.terminal("1340123452", "T01").unwrap(), Some(keyed));
    let rows = admin
        .query("SELECT version FROM onshi_schema", &[])
        .unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), SCHEMA_VERSION);
}

/// A database of schema version 4 (before the institutions' registry) is upgraded on open:
/// its terminals stay, nothing is listed until the registry is loaded, then it is.
#[test]
fn a_version_4_database_gets_the_institutions_registry() {
    use onshi_confirm_service::institutions::Institution;
    use onshi_confirm_service::store::LoadBatch;
    let url = PgServer::shared().create_database("v3").unwrap();
    drop(PgStore::open(&url).unwrap());
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "DROP TABLE institutions;
             INSERT INTO terminals (institution_code, terminal_id, status)
             VALUES ('1340123452', 'T01', 'in-operation');
             UPDATE onshi_schema SET version = 4;",
        )
        .unwrap();
    let store = PgStore::open(&url).unwrap();
    assert_eq!(store.institutions_in_operation().unwrap(), vec![]);
    let pharmacy = Institution {
        institution_code: "1340123452".into(),
        name: "みなと薬局".into(),
        started_on: time::macros::date!(2023 - 04 - 01),
    };
    store
        .load(&LoadBatch {
            institutions: vec![pharmacy.clone()],
            ..LoadBatch::default()
        })
        .unwrap();
    let listed = store.institutions_in_operation().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].institution, pharmacy);
    assert_eq!(listed[0].terminals_in_operation, 1);
    let rows = admin
        .query("SELECT version FROM onshi_schema", &[])
        .unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), SCHEMA_VERSION);
}

/// A database of schema version 5 (challenges stored when issued) is upgraded on open: the
/// old challenges are dropped, nonces are single use and the sealing keys are made.
#[test]
fn a_version_5_database_is_migrated_to_sealed_challenges() {
    use onshi_confirm_service::challenge::ChallengeError;
    let url = PgServer::shared().create_database("v3").unwrap();
    drop(PgStore::open(&url).unwrap());
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "DROP TABLE used_challenges;
             DROP TABLE challenge_keys;
             CREATE TABLE challenges (
                 challenge BYTEA PRIMARY KEY,
                 terminal TEXT NOT NULL,
                 purpose SMALLINT NOT NULL,
                 expires_at TIMESTAMPTZ NOT NULL,
                 used_at TIMESTAMPTZ
             );
             INSERT INTO challenges VALUES ('\\x00', 'T', 1, now(), NULL);
             UPDATE onshi_schema SET version = 5;",
        )
        .unwrap();
    let store = PgStore::open(&url).unwrap();
    let old = admin
        .query("SELECT to_regclass('challenges') IS NULL", &[])
        .unwrap();
    assert!(old[0].get::<_, bool>(0), "the old table is dropped");
    assert_eq!(store.consume_challenge([3; 16]), Ok(()));
    assert_eq!(
        store.consume_challenge([3; 16]),
        Err(ChallengeError::Reused)
    );
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(
        store
            .challenge_keys(now, time::Duration::days(1))
            .unwrap()
            .len(),
        1
    );
    let rows = admin
        .query("SELECT version FROM onshi_schema", &[])
        .unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), SCHEMA_VERSION);
}

/// A database of schema version 6 (before insurance documents) is upgraded on open: its
/// persons stay, without a document until one is loaded.
#[test]
fn a_version_6_database_gets_the_insurance_documents() {
    use onshi_confirm_service::documents::{DocumentKind, InsuranceDocument};
    use onshi_confirm_service::eligibility::Person;
    use onshi_confirm_service::store::LoadBatch;
    let url = PgServer::shared().create_database("v5").unwrap();
    let person = Person {
        id: "P1".into(),
        name: "山田\u{3000}太郎".into(),
        kana_name: "ﾔﾏﾀﾞ ﾀﾛｳ".into(),
        sex: 1,
        birth_date: time::macros::date!(1980 - 02 - 29),
        address: "東京都港区".into(),
        postcode: "105-0001".into(),
        registered_for_insurance: true,
    };
    PgStore::open(&url)
        .unwrap()
        .load(&LoadBatch {
            persons: vec![person],
            ..LoadBatch::default()
        })
        .unwrap();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "DROP TABLE insurance_documents;
             UPDATE onshi_schema SET version = 6;",
        )
        .unwrap();
    let store = PgStore::open(&url).unwrap();
    assert_eq!(store.insurance_document("P1").unwrap(), None);
    let doc = InsuranceDocument {
        person_id: "P1".into(),
        kind: DocumentKind::Oshirase,
        valid_from: None,
        valid_until: None,
    };
    store
        .load(&LoadBatch {
            documents: vec![doc.clone()],
            ..LoadBatch::default()
        })
        .unwrap();
    assert_eq!(store.insurance_document("P1").unwrap(), Some(doc));
    let rows = admin
        .query("SELECT version FROM onshi_schema", &[])
        .unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), SCHEMA_VERSION);
}

/// A database of schema version 7 (before 医療扶助 tickets) is upgraded on open: its persons
/// stay, without tickets until some are loaded; a later load replaces a ticket.
#[test]
fn a_version_7_database_gets_the_medical_tickets() {
    use onshi_confirm_service::eligibility::Person;
    use onshi_confirm_service::medical_aid::{MedicalTicket, TicketKind, TreatmentMonth};
    use onshi_confirm_service::store::LoadBatch;
    let url = PgServer::shared().create_database("v7aid").unwrap();
    let person = Person {
        id: "P1".into(),
        name: "生保\u{3000}花子".into(),
        kana_name: "ｾｲﾎ ﾊﾅｺ".into(),
        sex: 2,
        birth_date: time::macros::date!(1955 - 05 - 05),
        address: "東京都港区".into(),
        postcode: "105-0001".into(),
        registered_for_insurance: true,
    };
    PgStore::open(&url)
        .unwrap()
        .load(&LoadBatch {
            persons: vec![person],
            ..LoadBatch::default()
        })
        .unwrap();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .batch_execute(
            "DROP TABLE medical_tickets;
             UPDATE onshi_schema SET version = 7;",
        )
        .unwrap();
    let store = PgStore::open(&url).unwrap();
    assert_eq!(store.medical_tickets("P1").unwrap(), Vec::new());
    let month = TreatmentMonth::parse("202612").unwrap();
    let paper = MedicalTicket {
        person_id: "P1".into(),
        month,
        kind: TicketKind::Medical,
        issue_number: "20261201".into(),
        valid_from: month.first_day(),
        valid_until: month.last_day(),
        institution_code: "1310156789".into(),
        institution_name: "さくら内科クリニック".into(),
        self_pay_yen: 1_000,
        registered_on: None,
    };
    store
        .load(&LoadBatch {
            medical_tickets: vec![paper.clone()],
            ..LoadBatch::default()
        })
        .unwrap();
    assert_eq!(store.medical_tickets("P1").unwrap(), vec![paper.clone()]);
    let registered = MedicalTicket {
        registered_on: Some(time::macros::date!(2026 - 12 - 15)),
        ..paper
    };
    store
        .load(&LoadBatch {
            medical_tickets: vec![registered.clone()],
            ..LoadBatch::default()
        })
        .unwrap();
    assert_eq!(store.medical_tickets("P1").unwrap(), vec![registered]);
    let rows = admin
        .query("SELECT version FROM onshi_schema", &[])
        .unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), SCHEMA_VERSION);
}

// ---- the audit chain, tampered with in the database ---------------------------------------------

/// A database holding records C1..C6 (positions 1..6), and an admin connection to it.
fn six_records(case: &str) -> (String, postgres::Client) {
    let url = PgServer::shared().create_database(case).unwrap();
    let store = PgStore::open(&url).unwrap();
    let records: Vec<AuditRecord> = (1..=6)
        .map(|i| AuditRecord {
            at: time::OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(i),
            ..audit_record(&format!("C{i}"))
        })
        .collect();
    store.append_audit(&records[..2]).unwrap();
    store.append_audit(&records[2..]).unwrap();
    let admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    (url, admin)
}

/// `confirm-service audit verify --store URL`: exit code and output.
fn verify(url: &str) -> (i32, String) {
    let out = std::process::Command::new(onshi_e2e::bin("confirm-service").unwrap())
        .args(["audit", "verify", "--store", url])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("panicked"), "{text}");
    (out.status.code().unwrap_or(-1), text)
}

fn assert_broken(url: &str, expected: &str) {
    let (code, text) = verify(url);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("the chain is broken at ") && text.contains(expected),
        "expected {expected:?} in: {text}"
    );
}

#[test]
fn an_untouched_chain_verifies() {
    let (url, _admin) = six_records("chain_untouched");
    let (code, text) = verify(&url);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("6 record(s) checked"), "{text}");
}

#[test]
fn an_edited_record_is_named() {
    let (url, mut admin) = six_records("chain_edited");
    admin
        .execute(
            "UPDATE audit SET result_code = 'RESULT_CODE_CARD_UNKNOWN' WHERE confirmation_id = 'C4'",
            &[],
        )
        .unwrap();
    assert_broken(&url, "record 4 (C4): edited");
    let (url, mut admin) = six_records("chain_edited_time");
    admin
        .execute(
            "UPDATE audit SET at = at + interval '1 hour' WHERE confirmation_id = 'C2'",
            &[],
        )
        .unwrap();
    assert_broken(&url, "record 2 (C2): edited");
}

#[test]
fn a_deleted_record_is_named() {
    let (url, mut admin) = six_records("chain_deleted");
    admin
        .execute("DELETE FROM audit WHERE confirmation_id = 'C3'", &[])
        .unwrap();
    assert_broken(&url, "record 4 (C4): deleted");
}

#[test]
fn an_inserted_record_is_named() {
    let (url, mut admin) = six_records("chain_inserted");
    admin
        .execute(
            "INSERT INTO audit (confirmation_id, at, institution_code, terminal_id, method,
                 purpose, result_code, consents, returned)
             VALUES ('FORGED', now(), '1340123452', 'T01', 'pin', 'confirm', 'RESULT_CODE_OK',
                 0, '{}')",
            &[],
        )
        .unwrap();
    assert_broken(&url, "(FORGED): inserted");
    let (url, mut admin) = six_records("chain_inserted_position");
    admin
        .execute(
            "INSERT INTO audit (confirmation_id, at, institution_code, terminal_id, method,
                 purpose, result_code, consents, returned, chain_seq, prev_hash, hash)
             SELECT 'FORGED', at, institution_code, terminal_id, method, purpose, result_code,
                 consents, returned, chain_seq, prev_hash, hash
             FROM audit WHERE confirmation_id = 'C5'",
            &[],
        )
        .unwrap();
    assert_broken(&url, "record 5 (FORGED): inserted");
}

/// A database of schema version 2 (before the chain) with records: opened, they are chained.
#[test]
fn records_written_before_the_chain_are_chained_at_migration() {
    let (url, mut admin) = six_records("chain_migrated");
    admin
        .batch_execute(
            "DROP INDEX audit_by_chain;
             ALTER TABLE audit DROP COLUMN chain_seq, DROP COLUMN prev_hash, DROP COLUMN hash;
             DROP TABLE audit_chain;
             UPDATE onshi_schema SET version = 2;",
        )
        .unwrap();
    let store = PgStore::open(&url).unwrap();
    store.append_audit(&[audit_record("C7")]).unwrap();
    let (code, text) = verify(&url);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("7 record(s) checked"), "{text}");
}

/// A database of schema version 3 (before the claimed visit time and the remembered answers)
/// with records: opened, it is upgraded, its records still verify and a claimed time and a
/// remembered answer can be written.
#[test]
fn a_version_3_database_is_migrated() {
    let (url, mut admin) = six_records("v3");
    admin
        .batch_execute(
            "DROP TABLE idempotency;
             ALTER TABLE audit DROP COLUMN claimed_at;
             UPDATE onshi_schema SET version = 3;",
        )
        .unwrap();
    let store = PgStore::open(&url).unwrap();
    let rows = admin
        .query("SELECT version FROM onshi_schema", &[])
        .unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), SCHEMA_VERSION);
    let mut caught_up = audit_record("C7");
    caught_up.claimed_at = Some(time::macros::datetime!(2026-11-24 08:00:00.5 UTC));
    let mut write = store::AuditWrite::record(caught_up.clone());
    write.remember = Some(store::RememberedAnswer {
        terminal: "1340123452-T01".into(),
        method: "numbers".into(),
        key: "k".into(),
        answer: b"answer".to_vec(),
        expires_at: time::macros::datetime!(2026-11-25 00:00 UTC),
    });
    store
        .commit_group(
            &mut [store::GroupWrite::Audit(Box::new(write))],
            &store::keep_record,
        )
        .unwrap();
    let all = store
        .query_audit(&onshi_confirm_service::audit::AuditQuery::default())
        .unwrap();
    assert_eq!(
        all.iter().find(|r| r.confirmation_id == "C7"),
        Some(&caught_up)
    );
    assert_eq!(
        store
            .remembered_answer(
                "1340123452-T01",
                "numbers",
                "k",
                time::macros::datetime!(2026-11-24 00:00 UTC)
            )
            .unwrap(),
        Some(b"answer".to_vec())
    );
    let (code, text) = verify(&url);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("7 record(s) checked"), "{text}");
}
