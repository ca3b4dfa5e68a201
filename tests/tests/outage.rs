//! The kiosk's outage path end to end (docs/operations.md, "The outage path"): the real
//! service stopped and started again on its address, a real pcscd with a virtual card, and
//! `reader-agent kiosk` killed with SIGKILL and started again on its state folder. The
//! service's audit (the world's SQLite store) tells how many times each visit was confirmed.
//!
//! Each test uses its own patients (the world's examples), so the audit records it counts are
//! its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use onshi_confirm_service::audit::{AuditQuery, AuditRecord};
use onshi_confirm_service::store::{SqliteStore, Store};
use onshi_e2e::kiosk::{Bench, KioskRig, Staff};
use onshi_e2e::webdriver::{Browser, Chromedriver};
use onshi_e2e::World;
use serde_json::{json, Value};

/// Probe every second, give up on the service after two.
const FAST: [&str; 4] = ["--service-wait", "2", "--outage-probe", "1"];
const WAIT: Duration = Duration::from_secs(60);

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "outage-world", 8)
}

fn example(case: &str) -> Value {
    world().manifest["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["case"] == case)
        .unwrap_or_else(|| panic!("no example {case}"))
        .clone()
}

/// The example's numbers as a declaration.
fn declaration(e: &Value) -> Value {
    json!({
        "insurer_number": e["insurer_number"],
        "symbol": e["symbol"].as_str().unwrap_or(""),
        "number": e["number"],
        "branch": e["branch"].as_str().unwrap_or(""),
        "birth_date": e["birth_date"],
    })
}

/// The service's audit records about the example's holder.
fn audit(e: &Value) -> Vec<AuditRecord> {
    SqliteStore::open(&world().dir.join("store/onshi.sqlite"))
        .expect("the world's store")
        .query_audit(&AuditQuery {
            person_id: Some(e["person_id"].as_str().unwrap().to_owned()),
            ..Default::default()
        })
        .unwrap()
}

fn by_numbers(records: &[AuditRecord]) -> usize {
    records
        .iter()
        .filter(|r| r.certificate_sha256.is_none())
        .count()
}

fn outage_dir(rig: &KioskRig) -> PathBuf {
    rig.state_path().join("outage")
}

fn records_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("visit-"))
        })
        .collect();
    v.sort();
    v
}

/// The staff view's outage state.
fn outage_view(rig: &KioskRig) -> Value {
    view_as(&rig.staff_login().unwrap())
}

fn view_as(staff: &Staff<'_>) -> Value {
    let a = staff.get("/api/staff/outage").unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    a.json().unwrap()
}

/// Waits (bounded) until the staff view's outage state satisfies `done`. The catch-up runs in
/// the background and sends no event of its own, so this asks the staff API every 200 ms.
fn wait_outage(rig: &KioskRig, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    let staff = rig.staff_login().unwrap();
    loop {
        let view = view_as(&staff);
        if done(&view) {
            return view;
        }
        assert!(Instant::now() < deadline, "{what}: {view}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The kiosk has noticed the service is down (its probe failed).
fn wait_outage_on(rig: &KioskRig) {
    rig.wait_state(WAIT, |s| s["outage"] == true)
        .expect("the kiosk notices the outage");
}

/// A visit recorded by staff for a patient without a card.
fn staff_records(rig: &KioskRig, e: &Value) -> Value {
    let (status, answer) = rig
        .staff_login()
        .unwrap()
        .post("/api/staff/outage/visits", declaration(e))
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["recorded"], true);
    answer
}

#[test]
fn an_outage_morning_three_patients_a_killed_agent_and_all_caught_up_once() {
    let w = world();
    let mut bench = Bench::start(w, "valid", &FAST).unwrap();
    let (with_card, lost, without_card) = (
        example("validity-1"),
        example("validity-2"),
        example("not-registered"),
    );
    let before: Vec<usize> = [&with_card, &lost, &without_card]
        .iter()
        .map(|e| by_numbers(&audit(e)))
        .collect();
    // Whole seconds: the record keeps the terminal's clock to the second.
    let morning = time::OffsetDateTime::now_utc().unix_timestamp();

    // Mid-morning the service stops.
    bench.rig.service.kill_hard().unwrap();
    wait_outage_on(&bench.rig);

    // Patient 1 places a card: straight to the declaration, no PIN pad on the way.
    bench.rig.insert(&bench.profile).unwrap();
    let s = bench.rig.wait_screen("outage_declare").unwrap();
    assert_eq!(s["outage"], true);
    let session = s["session"].as_str().unwrap().to_owned();
    // A declaration with a fault is shown again, not recorded.
    let mut bad = declaration(&with_card);
    bad["birth_date"] = json!("1971");
    let (status, answer) = bench
        .rig
        .post(
            "/api/declaration",
            json!({"session": session, "declaration": bad}),
        )
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["screen"], "outage_declare");
    assert!(answer["error"].as_str().unwrap().contains("birth date"));
    assert!(records_in(&outage_dir(&bench.rig)).is_empty());
    let (status, answer) = bench
        .rig
        .post(
            "/api/declaration",
            json!({"session": session, "declaration": declaration(&with_card)}),
        )
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    // The answer comes after the record is on disk (fsync'd).
    assert_eq!(answer["screen"], "outage_recorded", "{answer}");
    assert_eq!(answer["waiting"], 1);
    let records = records_in(&outage_dir(&bench.rig));
    assert_eq!(records.len(), 1);
    let text = std::fs::read_to_string(&records[0]).unwrap();
    // Nothing about a PIN: no such field, and the record's keys are the documented ones.
    assert!(!text.to_lowercase().contains("pin"), "{text}");
    let mut keys: Vec<String> = serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "certificate_sha256",
            "declaration",
            "entered_by",
            "id",
            "received_at_unix"
        ]
    );
    assert!(text.contains("\"certificate_sha256\": \""), "{text}");
    bench.rig.remove().unwrap();
    bench.rig.wait_screen("insert_card").unwrap();

    // Patient 2 has no card: staff record the declaration.
    assert_eq!(staff_records(&bench.rig, &lost)["waiting"], 2);

    // The agent dies (SIGKILL) between the second and the third patient, and comes back.
    bench.rig.kill_kiosk_hard().unwrap();
    bench.rig.restart_kiosk().unwrap();
    wait_outage_on(&bench.rig);
    let view = outage_view(&bench.rig);
    assert_eq!(view["waiting"].as_array().unwrap().len(), 2, "{view}");

    // Patient 3 has no card either.
    assert_eq!(staff_records(&bench.rig, &without_card)["waiting"], 3);
    for record in records_in(&outage_dir(&bench.rig)) {
        let mode = std::fs::metadata(&record).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", record.display());
    }
    // Nothing reached the service yet.
    for (e, n) in [&with_card, &lost, &without_card].iter().zip(&before) {
        assert_eq!(by_numbers(&audit(e)), *n);
    }

    // The service comes back on its address: all three are caught up, once each.
    bench.rig.restart_service().unwrap();
    let view = wait_outage(&bench.rig, "all caught up", |v| {
        v["waiting"].as_array().is_some_and(Vec::is_empty) && v["outage"] == false
    });
    assert_eq!(view["caught_up"], 3, "{view}");
    assert!(records_in(&outage_dir(&bench.rig)).is_empty());
    for (e, n) in [&with_card, &lost, &without_card].iter().zip(&before) {
        let records = audit(e);
        assert_eq!(by_numbers(&records), n + 1, "{}", e["case"]);
        // The catch-up never passes for a card read.
        let last = records.last().unwrap();
        assert_eq!(last.certificate_sha256, None);
        // The visit time the terminal claims, beside the service's later receipt time.
        let claimed = last
            .claimed_at
            .expect("a claimed visit time")
            .unix_timestamp();
        assert!(
            morning <= claimed && claimed <= last.at.unix_timestamp(),
            "claimed {claimed}, received {}, the morning began {morning}",
            last.at
        );
    }
    // One disagreement for billing: the lost qualification.
    let disagreements = view["disagreements"].as_array().unwrap();
    assert_eq!(disagreements.len(), 1, "{view}");
    assert_eq!(
        disagreements[0]["visit"]["declaration"]["number"],
        lost["number"]
    );
    assert!(disagreements[0]["reason"]
        .as_str()
        .unwrap()
        .contains("無効"));
    // Staff's list of the day has the three catch-ups.
    let list = bench.rig.staff_login().unwrap().confirmations().unwrap();
    let outage_entries = list["confirmations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["method"] == "outage")
        .count();
    assert_eq!(outage_entries, 3, "{list}");
    // The disagreement is kept on disk, private, and survives a kiosk restart (SIGKILL).
    let lost_id = disagreements[0]["visit"]["id"].as_str().unwrap().to_owned();
    let kept = outage_dir(&bench.rig).join(format!("disagreement-{lost_id}.json"));
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    bench.rig.kill_kiosk_hard().unwrap();
    bench.rig.restart_kiosk().unwrap();
    let view = outage_view(&bench.rig);
    assert_eq!(view["disagreements"], json!(disagreements), "{view}");
    // Until staff acknowledge it (billing corrected the claim): then it is gone, on disk too.
    let staff = bench.rig.staff_login().unwrap();
    let (status, answer) = staff
        .post("/api/staff/outage/acknowledge", json!({"id": lost_id}))
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert!(!kept.exists());
    assert_eq!(view_as(&staff)["disagreements"], json!([]));
    let (status, _) = staff
        .post("/api/staff/outage/acknowledge", json!({"id": lost_id}))
        .unwrap();
    assert_eq!(status, 404, "acknowledged once");
    let (status, _) = staff
        .post("/api/staff/outage/acknowledge", json!({"id": "../visit"}))
        .unwrap();
    assert_eq!(status, 400);
    // The kiosk's own token does not reach the staff's API.
    let (status, _) = bench
        .rig
        .post("/api/staff/outage/acknowledge", json!({"id": lost_id}))
        .unwrap();
    assert_ne!(status, 200);

    // With the service back, the next card gets the usual method choice.
    bench.rig.insert(&bench.profile).unwrap();
    bench.rig.wait_screen("choose_method").unwrap();
}

#[test]
fn a_catch_up_killed_before_it_deleted_its_records_confirms_nothing_twice_after_a_service_restart()
{
    let w = world();
    let mut bench = Bench::start(w, "valid", &FAST).unwrap();
    let patients = [example("validity-3"), example("validity-5")];
    let before: Vec<usize> = patients.iter().map(|e| by_numbers(&audit(e))).collect();
    bench.rig.service.kill_hard().unwrap();
    wait_outage_on(&bench.rig);
    for e in &patients {
        staff_records(&bench.rig, e);
    }
    // The records as they are before the catch-up: what a kill between the service's answer
    // and the deletion leaves behind.
    let kept = tempfile::tempdir().unwrap();
    for record in records_in(&outage_dir(&bench.rig)) {
        std::fs::copy(&record, kept.path().join(record.file_name().unwrap())).unwrap();
    }
    bench.rig.restart_service().unwrap();
    wait_outage(&bench.rig, "caught up", |v| {
        v["waiting"].as_array().is_some_and(Vec::is_empty) && v["caught_up"] == 2
    });
    for (e, n) in patients.iter().zip(&before) {
        assert_eq!(by_numbers(&audit(e)), n + 1, "{}", e["case"]);
    }

    // The service is killed (SIGKILL) and started again: whatever it kept in memory is gone.
    bench.rig.service.kill_hard().unwrap();
    bench.rig.restart_service().unwrap();
    // SIGKILL; the records put back as the killed catch-up would have left them.
    bench.rig.kill_kiosk_hard().unwrap();
    for record in records_in(kept.path()) {
        std::fs::copy(
            &record,
            outage_dir(&bench.rig).join(record.file_name().unwrap()),
        )
        .unwrap();
    }
    bench.rig.restart_kiosk().unwrap();
    // Resumed: the same idempotency keys are answered from the service's record of them
    // (written with the audit record), not from its memory, which the restart emptied.
    let view = wait_outage(&bench.rig, "resumed", |v| {
        v["waiting"].as_array().is_some_and(Vec::is_empty) && v["caught_up"] == 2
    });
    assert!(records_in(&outage_dir(&bench.rig)).is_empty(), "{view}");
    for (e, n) in patients.iter().zip(&before) {
        assert_eq!(
            by_numbers(&audit(e)),
            n + 1,
            "{}: confirmed once, not twice",
            e["case"]
        );
    }
}

#[test]
fn an_outage_record_readable_by_others_stops_the_agent_with_a_clear_message() {
    let w = world();
    let mut bench = Bench::start(w, "valid", &FAST).unwrap();
    bench.rig.service.kill_hard().unwrap();
    wait_outage_on(&bench.rig);
    staff_records(&bench.rig, &example("validity-1"));
    bench.rig.kill_kiosk_hard().unwrap();
    let record = records_in(&outage_dir(&bench.rig)).remove(0);
    std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o644)).unwrap();

    let out = bench.rig.run_kiosk_once(WAIT).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it must not start: {stderr}");
    assert!(stderr.contains("open to others (mode 644)"), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(stderr.contains(&record.display().to_string()), "{stderr}");
    // The mode is left as found, for staff to look into.
    let mode = std::fs::metadata(&record).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);

    // Fixed as the message says, the agent starts and keeps the visit.
    std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o600)).unwrap();
    bench.rig.restart_kiosk().unwrap();
    wait_outage_on(&bench.rig);
    assert_eq!(
        outage_view(&bench.rig)["waiting"].as_array().unwrap().len(),
        1
    );
}

/// Keeps screenshots when asked to (`ONSHI_SCREENSHOTS=DIR`, as tests/tests/kiosk.rs).
fn shot(browser: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("ONSHI_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        browser
            .screenshot(&Path::new(&dir).join(format!("{name}.png")))
            .unwrap();
    }
}

#[test]
fn the_outage_screens_in_the_browser() {
    let w = world();
    let mut bench = Bench::start(w, "valid", &FAST).unwrap();
    let chrome = Chromedriver::start().unwrap();
    let b = chrome.browser().unwrap();
    b.goto(&bench.rig.launch_url()).unwrap();
    b.wait_screen("insert_card").unwrap();
    bench.rig.service.kill_hard().unwrap();
    wait_outage_on(&bench.rig);

    bench.rig.insert(&bench.profile).unwrap();
    b.wait_screen("outage_declare").unwrap();
    assert!(b.try_find("#pin-key-1").unwrap().is_none(), "no PIN pad");
    let e = example("validity-1");
    b.type_into("#decl-insurer", e["insurer_number"].as_str().unwrap())
        .unwrap();
    b.type_into("#decl-symbol", e["symbol"].as_str().unwrap())
        .unwrap();
    b.type_into("#decl-number", e["number"].as_str().unwrap())
        .unwrap();
    b.type_into("#decl-branch", e["branch"].as_str().unwrap())
        .unwrap();
    b.type_into("#decl-birth", e["birth_date"].as_str().unwrap())
        .unwrap();
    shot(&b, "16-outage-declare");
    b.click("#declare-submit").unwrap();
    b.wait_screen("outage_recorded").unwrap();
    assert!(b.text("#outage-waiting").unwrap().contains('1'));
    shot(&b, "17-outage-recorded");
    assert_eq!(records_in(&outage_dir(&bench.rig)).len(), 1);
}

/// The staff view lists a disagreement with a button; pressing it (billing corrected the
/// claim) takes it off the list and off the disk.
#[test]
fn staff_acknowledge_a_disagreement_in_the_browser() {
    let w = world();
    let mut bench = Bench::start(w, "valid", &FAST).unwrap();
    bench.rig.service.kill_hard().unwrap();
    wait_outage_on(&bench.rig);
    staff_records(&bench.rig, &example("validity-4"));
    bench.rig.restart_service().unwrap();
    let view = wait_outage(&bench.rig, "a disagreement", |v| {
        v["disagreements"].as_array().is_some_and(|d| d.len() == 1)
    });
    let id = view["disagreements"][0]["visit"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let kept = outage_dir(&bench.rig).join(format!("disagreement-{id}.json"));
    assert!(kept.exists());

    let chrome = Chromedriver::start().unwrap();
    let b = chrome.browser().unwrap();
    b.goto(&bench.rig.staff_url("/")).unwrap();
    b.wait_for("#login-form", WAIT).unwrap();
    b.type_into("#login-staff-id", onshi_e2e::kiosk::STAFF_ID)
        .unwrap();
    b.type_into("#login-password", &bench.rig.staff_password)
        .unwrap();
    b.click("#login-submit").unwrap();
    b.wait_for("body[data-ready=\"1\"]", WAIT).unwrap();
    let row = format!("#outage-disagreements li[data-id=\"{id}\"]");
    b.wait_for(&row, WAIT).unwrap();
    shot(&b, "18-outage-disagreement");
    b.click(&format!("button.acknowledge[data-id=\"{id}\"]"))
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while b.try_find(&row).unwrap().is_some() {
        assert!(Instant::now() < deadline, "the row stays");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!kept.exists());
    assert_eq!(outage_view(&bench.rig)["disagreements"], json!([]));
}
