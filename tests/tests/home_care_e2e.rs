//! The 居宅同意取得型 mobile mode end to end (docs/domain.md "Home visits and online care"): a
//! private pcscd with a virtual card, the confirmation service and the reader agent as real
//! processes. The pharmacy's second terminal plays the mobile device at the patient's home:
//! `confirm --treatment home-visit --mobile` reads the card with its PIN and opens the re-query
//! period; then `numbers --treatment home-visit --requery` at the pharmacy's desk confirms
//! without the card, the clinic's is refused, and the staff view shows the flag and the period.
//! `confirm --treatment online --mobile --visual-check --staff-id ID` is the visual-check
//! first visit (purpose 61, audit method `mobile-visual:<staff id>`), after which the online
//! re-query answers.
//! Needs root (the private pcscd) and the binaries built.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;

use onshi_e2e::{run_agent, run_agent_by_reader, run_agent_raw, Card, Pcscd, Service, World};

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "home-care-e2e-world", 8)
}

/// `reader-agent numbers` for the holder of the first qualification of `result`, with `extra`.
fn numbers(
    agent: &Path,
    service: &Service,
    q: &serde_json::Value,
    extra: &[&str],
) -> (Option<i32>, String, serde_json::Value) {
    let text = |k: &str| q[k].as_str().unwrap_or_default().to_owned();
    let out = std::process::Command::new(onshi_e2e::bin("reader-agent").unwrap())
        .arg("numbers")
        .arg("--config")
        .arg(agent)
        .args(["--service", &service.url()])
        .args(["--insurer", &text("insurer_number")])
        .args(["--symbol", &text("symbol")])
        .args(["--number", &text("number")])
        .args(["--branch", &text("branch")])
        .args(["--birth-date", &text("birth_date")])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code(), stdout, json)
}

#[test]
fn the_mobile_mode_reads_the_card_at_home_and_the_desk_requeries_without_it() {
    let w = world();
    let pcscd = Pcscd::start().expect("private pcscd");
    let service = Service::start(&w.dir.join("service.toml")).expect("confirm-service");
    let tmp = tempfile::tempdir().unwrap();
    let (profile, pin) = w.private_card("valid", tmp.path()).unwrap();
    let _card = Card::attach(&profile, &pcscd.vpcd(), &[]).unwrap();
    let desk = w.terminal("in-operation", 0).unwrap();
    let mobile = w.terminal("in-operation", 1).unwrap();
    let clinic = w.terminal("in-operation", 2).unwrap();

    let run = run_agent(
        &pcscd,
        &mobile,
        &service,
        &format!("{pin}\n"),
        &["--treatment", "home-visit", "--mobile"],
    )
    .unwrap();
    assert_eq!(run.code, Some(0), "{run:?}");
    let result = &run.json["result"];
    assert_eq!(result["treatment"], "home-visit", "{run:?}");
    let until = result["requery_until"]
        .as_str()
        .expect("the re-query period");
    assert_eq!(until.len(), 8);
    let q = result["qualifications"][0].clone();

    // The mobile mode without a home-care treatment is a usage error before the card is read.
    let out = run_agent_raw(
        &pcscd,
        &mobile,
        &service,
        &format!("{pin}\n"),
        &["--mobile"],
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // At the desk, without the card: the re-query answers with the period.
    let (code, stdout, json) = numbers(
        &desk,
        &service,
        &q,
        &["--treatment", "home-visit", "--requery", "--json"],
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(json["result"]["requery_until"], until, "{stdout}");
    assert_eq!(json["result"]["treatment"], "home-visit", "{stdout}");
    // The staff view says both.
    let (code, stdout, _) = numbers(
        &desk,
        &service,
        &q,
        &["--treatment", "home-visit", "--requery"],
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("home-visit"), "{stdout}");
    assert!(stdout.contains(until), "{stdout}");
    // Another institution, and online care: refused, exit 1, with the code.
    let (code, stdout, json) = numbers(
        &clinic,
        &service,
        &q,
        &["--treatment", "home-visit", "--requery", "--json"],
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert_eq!(
        json["result_code"], "RESULT_CODE_REQUERY_NOT_CONSENTED",
        "{stdout}"
    );
    let (code, _, json) = numbers(
        &desk,
        &service,
        &q,
        &["--treatment", "online", "--requery", "--json"],
    );
    assert_eq!(code, Some(1));
    assert_eq!(json["result_code"], "RESULT_CODE_REQUERY_NOT_CONSENTED");

    // The visual-check first visit for online care: the mobile device's key attests the
    // staff member's check (purpose 61); then the online re-query answers with its period.
    let visual = ["--visual-check", "--staff-id", "sato.k"];
    let run = run_agent_by_reader(
        "confirm",
        &pcscd,
        &mobile,
        &service,
        &[&["--treatment", "online", "--mobile"][..], &visual].concat(),
    )
    .unwrap();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.json["result"]["treatment"], "online", "{run:?}");
    let online_until = run.json["result"]["requery_until"]
        .as_str()
        .expect("the re-query period");
    let (code, stdout, json) = numbers(
        &desk,
        &service,
        &q,
        &["--treatment", "online", "--requery", "--json"],
    );
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(json["result"]["requery_until"], online_until, "{stdout}");
    // A face match makes no first visit: a usage error before the card is read.
    let out = run_agent_raw(
        &pcscd,
        &mobile,
        &service,
        "",
        &["--treatment", "online", "--mobile", "--face"],
    )
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // The audit records name the mobile device's first visit and the re-query.
    let store =
        onshi_confirm_service::store::SqliteStore::open(&w.dir.join("store/onshi.sqlite")).unwrap();
    let records = onshi_confirm_service::store::Store::query_audit(
        &store,
        &onshi_confirm_service::audit::AuditQuery {
            limit: 10_000,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(records.iter().any(|r| r.method == "mobile-pin"
        && r.terminal_id == "T02"
        && r.result_code == "RESULT_CODE_OK"));
    assert!(records.iter().any(|r| r.method == "requery"
        && r.terminal_id == "T01"
        && r.result_code == "RESULT_CODE_OK"));
    assert!(records.iter().any(|r| r.method == "mobile-visual:sato.k"
        && r.terminal_id == "T02"
        && r.result_code == "RESULT_CODE_OK"));
}
