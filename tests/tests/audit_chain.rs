//! The service's own integrity (issue 14) on the SQLite store: a registration and its audit
//! record are one commit; `confirm-service audit verify` walks the audit log's hash chain and
//! names the first record edited, deleted, inserted or moved in the store; `audit prune`
//! removes records past the retention period and the chain still verifies.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use onshi_confirm_service::audit::{AuditQuery, AuditRecord};
use onshi_confirm_service::store::{SqliteStore, Store};
use onshi_e2e::grpc::{self, CardKeys};
use onshi_e2e::inproc::InProcService;
use onshi_e2e::World;
use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose};
use onshi_proto::v1::{self as pb, ResultCode};
use time::OffsetDateTime;

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "audit-chain-world", 8)
}

/// A private copy of the world's store and a service.toml using it (beside the world's, so
/// its relative paths resolve), with `top` added to the top-level keys.
fn private_store(tag: &str, top: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("onshi-audit-{tag}-"))
        .tempdir()
        .unwrap();
    let store = dir.path().join("onshi.sqlite");
    std::fs::copy(world().dir.join("store/onshi.sqlite"), &store).unwrap();
    let text = std::fs::read_to_string(world().dir.join("service.toml")).unwrap();
    let mut out = format!("{top}\n");
    for line in text.lines() {
        if line.trim_start().starts_with("store") && line.contains('=') {
            out.push_str(&format!("store = {:?}\n", store.to_str().unwrap()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    let config = world().dir.join(format!("service-{tag}.toml"));
    std::fs::write(&config, out).unwrap();
    (dir, store, config)
}

/// Runs `confirm-service audit ARGS`: exit code and stdout + stderr.
fn audit(args: &[&str]) -> (i32, String) {
    let out = Command::new(onshi_e2e::bin("confirm-service").unwrap())
        .arg("audit")
        .args(args)
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

fn verify(store: &Path) -> (i32, String) {
    audit(&["verify", "--store", store.to_str().unwrap()])
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn register(
    service: &InProcService,
    card: &CardKeys,
) -> Result<pb::RegisterResponse, tonic::Status> {
    let dir = world()
        .terminal("in-operation", 0)
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let mut c = grpc::client(world(), &service.url(), &dir).await.unwrap();
    let ch = c
        .issue_challenge(pb::IssueChallengeRequest {
            purpose: pb::Purpose::Register as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let signature = card
        .sign(&ChallengeBinding {
            purpose: Purpose::Register,
            challenge: &ch.challenge,
            terminal_name: &ch.terminal_name,
            certificate_der: &card.certificate,
            consents: ConsentBits::default(),
        })
        .unwrap();
    c.register_for_insurance(pb::RegisterRequest {
        certificate: card.certificate.clone(),
        challenge: ch.challenge,
        signature,
    })
    .await
    .map(tonic::Response::into_inner)
}

fn registrations(store: &SqliteStore) -> Vec<AuditRecord> {
    Store::query_audit(
        store,
        &AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        },
    )
    .unwrap()
    .into_iter()
    .filter(|r| r.purpose == "register")
    .collect()
}

/// When the registration's audit record cannot be written, the person is not registered
/// (before, the registration was committed first and stayed without its record); once the
/// record can be written, both land, and the chain verifies.
#[test]
fn a_registration_without_its_audit_record_is_not_made() {
    let (_dir, store_path, config) = private_store("register", "");
    let person = world().card("unregistered").unwrap()["person_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let card = CardKeys::of(world(), "unregistered").unwrap();
    let store = SqliteStore::open(&store_path).unwrap();
    // The audit log refuses registrations' records (as a full disk or a failing store would).
    store.with_connection(|c| {
        c.execute_batch(
            "CREATE TRIGGER refuse_register BEFORE INSERT ON audit
             WHEN NEW.purpose = 'register'
             BEGIN SELECT RAISE(ABORT, 'the audit log is failing'); END;",
        )
        .unwrap()
    });
    let service = InProcService::start(&config).unwrap();
    let refused = runtime().block_on(register(&service, &card)).unwrap_err();
    assert_eq!(
        onshi_confirm_service::outcome::result_code_of(&refused),
        Some(ResultCode::ServiceUnavailable),
        "{refused:?}"
    );
    assert!(
        !store
            .person(&person)
            .unwrap()
            .unwrap()
            .registered_for_insurance,
        "registered without an audit record"
    );
    assert!(registrations(&store).is_empty());

    store.with_connection(|c| c.execute_batch("DROP TRIGGER refuse_register").unwrap());
    let answer = runtime().block_on(register(&service, &card)).unwrap();
    assert_eq!(answer.result_code(), ResultCode::Ok);
    assert!(answer.newly_registered);
    assert!(
        store
            .person(&person)
            .unwrap()
            .unwrap()
            .registered_for_insurance
    );
    let again = runtime().block_on(register(&service, &card)).unwrap();
    assert!(!again.newly_registered);
    let records = registrations(&store);
    assert_eq!(records.len(), 2, "{records:#?}");
    assert_eq!(records[0].confirmation_id, answer.confirmation_id);
    assert_eq!(records[0].person_id.as_deref(), Some(person.as_str()));
    assert_eq!(records[0].returned, r#"{"newly_registered":true}"#);
    assert_eq!(records[1].returned, r#"{"newly_registered":false}"#);
    let (code, text) = verify(&store_path);
    assert_eq!(code, 0, "{text}");
}

fn record(id: &str, at: OffsetDateTime) -> AuditRecord {
    AuditRecord {
        confirmation_id: id.into(),
        at,
        institution_code: "1340123452".into(),
        terminal_id: "T01".into(),
        person_id: Some("P000000001".into()),
        method: "pin".into(),
        purpose: "confirm".into(),
        result_code: "RESULT_CODE_OK".into(),
        consents: 0,
        certificate_sha256: None,
        returned: r#"{"validity":1}"#.into(),
        claimed_at: None,
    }
}

/// A store holding records C1..C6 (positions 1..6).
fn six_records(tag: &str) -> (tempfile::TempDir, PathBuf, SqliteStore) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("onshi-chain-{tag}-"))
        .tempdir()
        .unwrap();
    let path = dir.path().join("onshi.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    let now = OffsetDateTime::now_utc();
    let records: Vec<AuditRecord> = (1..=6)
        .map(|i| record(&format!("C{i}"), now - time::Duration::days(7 - i)))
        .collect();
    Store::append_audit(&store, &records[..3]).unwrap();
    Store::append_audit(&store, &records[3..]).unwrap();
    (dir, path, store)
}

fn sql(store: &SqliteStore, statements: &str) {
    store.with_connection(|c| c.execute_batch(statements).unwrap());
}

fn assert_broken(store: &Path, expected: &str) {
    let (code, text) = verify(store);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("the chain is broken at ") && text.contains(expected),
        "expected {expected:?} in: {text}"
    );
}

#[test]
fn an_untouched_store_verifies() {
    let (_dir, path, _store) = six_records("untouched");
    let (code, text) = verify(&path);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("6 record(s) checked, the chain is intact"),
        "{text}"
    );
    // The head it printed, given back, is found.
    let head = text.split_whitespace().last().unwrap().to_owned();
    let (code, text) = audit(&["verify", "--store", path.to_str().unwrap(), "--head", &head]);
    assert_eq!(code, 0, "{text}");
    // The query usage still works beside the subcommands.
    let (code, text) = audit(&["--store", path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("6 record(s)"), "{text}");
    // Usage errors are clear, with exit code 2.
    let (code, text) = audit(&["verify", "--store", "/nonexistent/onshi.sqlite"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("no store file"), "{text}");
}

#[test]
fn an_edited_field_is_named() {
    let (_dir, path, store) = six_records("edited");
    sql(
        &store,
        "UPDATE audit SET person_id = 'P000000666' WHERE confirmation_id = 'C3'",
    );
    assert_broken(&path, "record 3 (C3): edited");
}

#[test]
fn an_edited_time_is_named() {
    let (_dir, path, store) = six_records("edited-time");
    sql(
        &store,
        "UPDATE audit SET at_ms = at_ms + 1 WHERE confirmation_id = 'C2'",
    );
    assert_broken(&path, "record 2 (C2): edited");
    let (_dir, path, store) = six_records("edited-text-time");
    sql(
        &store,
        "UPDATE audit SET at = '2020-01-01T00:00:00Z' WHERE confirmation_id = 'C5'",
    );
    assert_broken(&path, "record 5 (C5): edited");
}

#[test]
fn a_deleted_record_is_named() {
    let (_dir, path, store) = six_records("deleted");
    sql(&store, "DELETE FROM audit WHERE confirmation_id = 'C4'");
    assert_broken(&path, "record 5 (C5): deleted");
    // The positions closed up behind it: still found.
    let (_dir, path, store) = six_records("deleted-renumbered");
    sql(
        &store,
        "DELETE FROM audit WHERE confirmation_id = 'C4';
         UPDATE audit SET chain_seq = chain_seq - 1 WHERE chain_seq > 4;",
    );
    assert_broken(&path, "record 4 (C5): deleted");
    // The last record: the head still names it.
    let (_dir, path, store) = six_records("deleted-last");
    sql(&store, "DELETE FROM audit WHERE confirmation_id = 'C6'");
    assert_broken(&path, "record 5 (C5): deleted");
    // The first ones, without pruning.
    let (_dir, path, store) = six_records("deleted-first");
    sql(
        &store,
        "DELETE FROM audit WHERE confirmation_id IN ('C1', 'C2')",
    );
    assert_broken(&path, "record 3 (C3): deleted");
}

#[test]
fn an_inserted_record_is_named() {
    // A forged row as the old log took them (no chain columns).
    let (_dir, path, store) = six_records("inserted");
    sql(
        &store,
        "INSERT INTO audit (confirmation_id, at, at_ms, institution_code, terminal_id,
             person_id, method, purpose, result_code, consents, returned)
         SELECT 'FORGED', at, at_ms, institution_code, terminal_id, person_id, method, purpose,
             result_code, consents, returned FROM audit WHERE confirmation_id = 'C2'",
    );
    assert_broken(&path, "(FORGED): inserted");
    // A forged copy of a record placed after it, at the same position, with its hashes.
    let (_dir, path, store) = six_records("inserted-copy");
    sql(
        &store,
        "INSERT INTO audit (confirmation_id, at, at_ms, institution_code, terminal_id,
             person_id, method, purpose, result_code, consents, returned, chain_seq,
             prev_hash, hash)
         SELECT 'FORGED', at, at_ms, institution_code, terminal_id, person_id, method, purpose,
             result_code, consents, returned, chain_seq, prev_hash, hash
         FROM audit WHERE confirmation_id = 'C2'",
    );
    assert_broken(&path, "record 2 (FORGED): inserted");
}

#[test]
fn reordered_records_are_named() {
    let (_dir, path, store) = six_records("reordered");
    sql(
        &store,
        "UPDATE audit SET chain_seq = 100 WHERE confirmation_id = 'C3';
         UPDATE audit SET chain_seq = 3 WHERE confirmation_id = 'C4';
         UPDATE audit SET chain_seq = 4 WHERE confirmation_id = 'C3';",
    );
    assert_broken(&path, "record 3 (C4): reordered");
}

/// `audit prune` removes what is older than `audit_retention_days` (from service.toml) and
/// anchors the chain so it still verifies; records removed by hand break it.
#[test]
fn prune_removes_what_is_past_retention_and_the_chain_still_verifies() {
    let (_dir, store_path, config) = private_store("prune", "audit_retention_days = 3");
    let store = SqliteStore::open(&store_path).unwrap();
    let before = Store::query_audit(
        &store,
        &AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        },
    )
    .unwrap()
    .len();
    let now = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let records: Vec<AuditRecord> = (1..=6)
        .map(|i| record(&format!("C{i}"), now - time::Duration::days(7 - i)))
        .collect();
    Store::append_audit(&store, &records).unwrap();
    // C1..C3 are about 6, 5 and 4 days old; C4..C6 less than 3.
    let (code, text) = audit(&["prune", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("{} record(s)", before + 3)),
        "{text}"
    );
    let left: Vec<String> = Store::query_audit(
        &store,
        &AuditQuery {
            limit: 1000,
            ..AuditQuery::default()
        },
    )
    .unwrap()
    .into_iter()
    .map(|r| r.confirmation_id)
    .collect();
    assert_eq!(left, ["C4", "C5", "C6"]);
    let (code, text) = verify(&store_path);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("3 record(s) checked"), "{text}");
    assert!(text.contains("were pruned"), "{text}");
    // Nothing more to prune; a retention of 0 keeps everything.
    let (code, text) = audit(&["prune", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(" 0 record(s)"), "{text}");
    let (code, text) = audit(&[
        "prune",
        "--store",
        store_path.to_str().unwrap(),
        "--retention-days",
        "0",
    ]);
    assert_eq!(code, 0, "{text}");
    // Removing the oldest record by hand is not pruning.
    sql(&store, "DELETE FROM audit WHERE confirmation_id = 'C4'");
    assert_broken(&store_path, "(C5): deleted");
}

/// A store of the layout before the chain (version 3) with records in it: opening it chains
/// them, in the order they were written.
#[test]
fn records_written_before_the_chain_are_chained_at_migration() {
    let (_dir, path, store) = six_records("migrated");
    sql(
        &store,
        "DROP INDEX audit_by_chain;
         ALTER TABLE audit DROP COLUMN chain_seq;
         ALTER TABLE audit DROP COLUMN prev_hash;
         ALTER TABLE audit DROP COLUMN hash;
         DROP TABLE audit_chain;
         ALTER TABLE audit DROP COLUMN claimed_at;
         DROP TABLE idempotency;
         PRAGMA user_version = 3;",
    );
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    let (code, text) = verify(&path);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("6 record(s) checked"), "{text}");
    Store::append_audit(&store, &[record("C7", OffsetDateTime::now_utc())]).unwrap();
    let (code, text) = verify(&path);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("7 record(s) checked"), "{text}");
}
