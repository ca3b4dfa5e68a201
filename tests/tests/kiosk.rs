//! The kiosk (reader-agent kiosk) end to end: a real pcscd with a virtual card inserted and
//! pulled by a rack, the real service, and the kiosk's pages driven in headless Chromium
//! through WebDriver, plus its scriptable API. Each test has its own rig (pcscd, rack,
//! service, kiosk) and its own copy of the card, so PIN and face counters are its own.
//!
//! Set `ONSHI_SCREENSHOTS=DIR` to keep a PNG of each kiosk screen (scripts/kiosk-screenshots.sh
//! writes docs/kiosk/).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::time::Duration;

use onshi_e2e::kiosk::{Bench, STAFF_ID};
use onshi_e2e::webdriver::{Browser, Chromedriver};
use onshi_e2e::{oqs, World};
use serde_json::json;

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "kiosk-world", 8)
}

/// A rig for the first in-operation terminal and a private copy of a `kind` card.
fn bench(kind: &str, extra: &[&str]) -> Bench {
    Bench::start(world(), kind, extra).unwrap()
}

fn wrong_pin(pin: &str) -> String {
    let first = (pin.as_bytes()[0] - b'0' + 1) % 10;
    format!("{first}{}", &pin[1..])
}

/// Keeps screenshots when asked to.
fn shot(browser: &Browser, name: &str) {
    if let Ok(dir) = std::env::var("ONSHI_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        browser
            .screenshot(&Path::new(&dir).join(format!("{name}.png")))
            .unwrap();
    }
}

/// The kiosk page, showing 「カードを置いてください」.
fn open_kiosk(b: &Browser, bench: &Bench) {
    b.goto(&bench.rig.launch_url()).unwrap();
    b.wait_screen("insert_card").unwrap();
}

/// Places the test's card and waits for the method choice.
fn place_card(b: &Browser, bench: &Bench) {
    bench.rig.insert(&bench.profile).unwrap();
    b.wait_screen("choose_method").unwrap();
}

/// What the staff API lists for today (logged in as the bench's staff member).
fn confirmations(bench: &Bench) -> serde_json::Value {
    bench.rig.staff_login().unwrap().confirmations().unwrap()
}

/// The staff view in `staff`, logged in through its form.
fn open_staff(staff: &Browser, bench: &Bench) {
    staff.goto(&bench.rig.staff_url("/")).unwrap();
    staff
        .wait_for("#login-form", Duration::from_secs(20))
        .unwrap();
    staff
        .wait_for("body[data-logged-in=\"0\"]", Duration::from_secs(20))
        .unwrap();
    shot(staff, "19-staff-login");
    staff.type_into("#login-staff-id", STAFF_ID).unwrap();
    staff
        .type_into("#login-password", &bench.rig.staff_password)
        .unwrap();
    staff.click("#login-submit").unwrap();
    staff
        .wait_for("body[data-ready=\"1\"]", Duration::from_secs(20))
        .unwrap();
    assert_eq!(staff.text("#whoami").unwrap(), STAFF_ID);
}

fn driver() -> Chromedriver {
    Chromedriver::start().unwrap()
}

fn type_pin(b: &Browser, pin: &str) {
    for d in pin.chars() {
        b.click(&format!("#pin-key-{d}")).unwrap();
    }
    assert_eq!(b.text("#pin-dots").unwrap(), "●●●●");
}

fn answer_consents(b: &Browser, answers: [bool; 4]) {
    for (i, (item, yes)) in ["medication", "checkup", "clinical", "surgery"]
        .iter()
        .zip(answers)
        .enumerate()
    {
        b.wait_for(
            &format!("#consent-question[data-item=\"{item}\"]"),
            Duration::from_secs(20),
        )
        .unwrap();
        if i == 0 {
            shot(b, "05-consent");
        }
        b.click(if yes { "#consent-yes" } else { "#consent-no" })
            .unwrap();
    }
}

#[test]
fn pin_confirmation_in_the_browser_with_staff_seeing_the_result_and_the_medication() {
    let bench = bench("valid", &[]);
    let chrome = driver();
    let b = chrome.browser().unwrap();
    let staff = chrome.browser().unwrap();
    open_staff(&staff, &bench);
    open_kiosk(&b, &bench);
    assert!(b
        .text("#screen")
        .unwrap()
        .contains("カードを置いてください"));
    shot(&b, "01-insert-card");

    place_card(&b, &bench);
    assert!(b.text("#pin-note").unwrap().contains("残り 3 回"));
    shot(&b, "02-choose-method");
    b.click("#method-pin").unwrap();
    b.wait_screen("pin").unwrap();
    type_pin(&b, &bench.pin);
    shot(&b, "03-pin-pad");
    b.click("#pin-ok").unwrap();
    // Medication yes, the rest no.
    answer_consents(&b, [true, false, false, false]);
    b.wait_screen("done").unwrap();
    assert_eq!(b.text("#done").unwrap(), "受付完了");
    assert!(b.text("#validity").unwrap().contains("有効"));
    shot(&b, "06-done");

    // The staff page got the confirmation pushed, with the result and the consent.
    let row = staff
        .wait_for("#entry-1.confirmed", Duration::from_secs(20))
        .map(|_| staff.text("#entry-1").unwrap())
        .unwrap();
    assert!(row.contains("暗証番号"), "{row}");
    assert!(staff.text("#entry-1 .validity").unwrap().contains("有効"));
    assert_eq!(staff.text("#entry-1 .copay").unwrap(), "3割");
    assert_eq!(staff.text("#entry-1 .bracket").unwrap(), "A03");
    assert_eq!(staff.text("#entry-1 .consents").unwrap(), "薬剤");
    staff.click("#med-1").unwrap();
    staff
        .wait_for("#clinical-medications tbody tr", Duration::from_secs(20))
        .unwrap();
    assert!(
        staff.try_find("#chk-1").unwrap().is_none(),
        "no checkup consent, no button"
    );
    shot(&staff, "20-staff-view");

    // Search narrows the list.
    staff.type_into("#search", "nobody-by-this-name").unwrap();
    assert!(staff.try_find("#entry-1").unwrap().is_none());
    staff.type_into("#search", "有効").unwrap();
    staff.wait_for("#entry-1", Duration::from_secs(5)).unwrap();

    // Pulling the card after 受付完了 returns to the start without a notice.
    bench.rig.remove().unwrap();
    b.wait_screen("insert_card").unwrap();
    assert!(b.try_find("#notice").unwrap().is_none());
}

#[test]
fn wrong_pins_lock_the_card_and_the_page_says_so() {
    let bench = bench("valid", &["--face-threshold", "1000"]);
    let chrome = driver();
    let b = chrome.browser().unwrap();
    open_kiosk(&b, &bench);
    place_card(&b, &bench);
    b.click("#method-pin").unwrap();
    let wrong = wrong_pin(&bench.pin);
    for left in [2, 1] {
        b.wait_screen("pin").unwrap();
        type_pin(&b, &wrong);
        b.click("#pin-ok").unwrap();
        b.wait_for("#pin-wrong", Duration::from_secs(20)).unwrap();
        assert!(b
            .text("#tries-left")
            .unwrap()
            .contains(&format!("残り {left} 回")));
        if left == 2 {
            shot(&b, "04-pin-wrong");
        }
    }
    type_pin(&b, &wrong);
    b.click("#pin-ok").unwrap();
    // Locked: back to the method choice, PIN disabled, face still offered.
    b.wait_screen("choose_method").unwrap();
    assert_eq!(b.attribute("#notice", "data-notice").unwrap(), "pin_locked");
    assert!(!b.enabled("#method-pin").unwrap());
    assert!(b.enabled("#method-face").unwrap());
    shot(&b, "07-pin-locked");

    // The lock lives on the card: pull it and place it again, the PIN stays locked.
    bench.rig.remove().unwrap();
    b.wait_screen("insert_card").unwrap();
    place_card(&b, &bench);
    assert!(!b.enabled("#method-pin").unwrap());
    assert!(b.text("#pin-note").unwrap().contains("ロック"));
}

#[test]
fn face_success_then_failures_lock_face_and_the_pin_remains() {
    let bench = bench("valid", &[]);
    let chrome = driver();
    let b = chrome.browser().unwrap();
    open_kiosk(&b, &bench);

    // Face success with the holder's face, consents, 受付完了, recorded as face.
    place_card(&b, &bench);
    b.click("#method-face").unwrap();
    b.wait_screen("face").unwrap();
    shot(&b, "08-face-camera");
    b.click("#camera-holder").unwrap();
    answer_consents(&b, [false, false, false, false]);
    b.wait_screen("done").unwrap();
    let list = confirmations(&bench);
    assert_eq!(list["confirmations"][0]["method"], "face");
    assert_eq!(list["confirmations"][0]["outcome"], "confirmed");
    bench.rig.remove().unwrap();
    b.wait_screen("insert_card").unwrap();

    // Ten strangers: face refused for this card, the PIN path remains and works.
    place_card(&b, &bench);
    b.click("#method-face").unwrap();
    for n in 1..=9 {
        b.wait_screen("face").unwrap();
        b.click("#camera-stranger").unwrap();
        b.wait_text(
            "#face-failures",
            &format!("失敗 {n} / 10 回"),
            Duration::from_secs(10),
        )
        .unwrap();
        if n == 1 {
            shot(&b, "09-face-mismatch");
        }
    }
    b.click("#camera-stranger").unwrap();
    b.wait_screen("choose_method").unwrap();
    assert_eq!(
        b.attribute("#notice", "data-notice").unwrap(),
        "face_locked"
    );
    assert!(!b.enabled("#method-face").unwrap());
    shot(&b, "10-face-locked");
    // The lock survives pulling the card.
    bench.rig.remove().unwrap();
    b.wait_screen("insert_card").unwrap();
    place_card(&b, &bench);
    assert!(!b.enabled("#method-face").unwrap());
    b.click("#method-pin").unwrap();
    b.wait_screen("pin").unwrap();
    type_pin(&b, &bench.pin);
    b.click("#pin-ok").unwrap();
    answer_consents(&b, [false, false, false, false]);
    b.wait_screen("done").unwrap();
}

/// A face-only card (顔認証マイナンバーカード): the method screen has no PIN button at all and
/// says why, the API refuses the PIN method, and face authentication confirms the holder.
#[test]
fn a_face_only_card_is_offered_face_but_never_the_pin_pad() {
    let bench = bench("face-only", &[]);
    assert!(bench.pin.is_empty());
    let chrome = driver();
    let b = chrome.browser().unwrap();
    open_kiosk(&b, &bench);
    place_card(&b, &bench);
    let state = bench.rig.state().unwrap();
    assert_eq!(state["screen"], "choose_method", "{state}");
    assert_eq!(state["pin_set"], false, "{state}");
    assert_eq!(state["face"], "available", "{state}");
    assert_eq!(b.try_find("#method-pin").unwrap(), None);
    assert!(b
        .text("#pin-note")
        .unwrap()
        .contains("顔認証マイナンバーカード"));
    shot(&b, "08b-face-only-card");
    // A script asking for the PIN pad anyway is refused, and nothing changes.
    let session = state["session"].as_str().unwrap();
    let (status, answer) = bench
        .rig
        .post("/api/method", json!({"session": session, "method": "pin"}))
        .unwrap();
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("not_offered")),
        "{answer}"
    );
    assert_eq!(bench.rig.state().unwrap()["screen"], "choose_method");
    b.click("#method-face").unwrap();
    b.wait_screen("face").unwrap();
    b.click("#camera-holder").unwrap();
    answer_consents(&b, [false, false, false, false]);
    b.wait_screen("done").unwrap();
    let list = confirmations(&bench);
    assert_eq!(list["confirmations"][0]["method"], "face");
    assert_eq!(list["confirmations"][0]["outcome"], "confirmed");
}

/// Face authentication in the browser, with the kiosk serving the reception computer's folders
/// (`--oqs-dir`): the confirmation leaves exactly one `face/` file, which the independent
/// reader of `onshi_e2e::oqs` accepts as a card confirmation (ReferenceClassification 1).
#[test]
fn a_face_confirmation_in_the_browser_leaves_one_face_file() {
    let oqs = tempfile::tempdir().unwrap();
    let bench = bench("valid", &["--oqs-dir", oqs.path().to_str().unwrap()]);
    let chrome = driver();
    let b = chrome.browser().unwrap();
    open_kiosk(&b, &bench);
    place_card(&b, &bench);
    b.click("#method-face").unwrap();
    b.wait_screen("face").unwrap();
    b.click("#camera-holder").unwrap();
    answer_consents(&b, [true, false, false, false]);
    b.wait_screen("done").unwrap();
    let id = bench.rig.state().unwrap()["confirmation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bytes = oqs::wait_face_file(oqs.path(), &id, Duration::from_secs(20)).unwrap();
    let leaves = oqs::check_answer(&bytes).unwrap();
    assert_eq!(
        oqs::value(&leaves, "MessageHeader/ReferenceClassification"),
        Some("1")
    );
    assert_eq!(
        oqs::value(&leaves, "MessageHeader/SegmentOfResult"),
        Some("1")
    );
    assert_eq!(
        oqs::value(&leaves, "MessageBody/QualificationValidity"),
        Some("1")
    );
    let list = confirmations(&bench);
    assert_eq!(list["confirmations"][0]["method"], "face");
}

#[test]
fn visual_check_switched_on_by_staff_is_recorded_with_the_staff_id() {
    let bench = bench("valid", &[]);
    let chrome = driver();
    let staff = chrome.browser().unwrap();
    let b = chrome.browser().unwrap();
    open_staff(&staff, &bench);
    // The staff id recorded is the logged-in staff member's.
    staff.click("#visual-on").unwrap();
    staff
        .wait_for("#visual-state[data-on=\"1\"]", Duration::from_secs(10))
        .unwrap();

    open_kiosk(&b, &bench);
    place_card(&b, &bench);
    shot(&b, "11-visual-check-offered");
    b.click("#method-visual").unwrap();
    answer_consents(&b, [false, false, false, false]);
    b.wait_screen("done").unwrap();
    let row = staff
        .wait_for("#entry-1.confirmed", Duration::from_secs(20))
        .map(|_| staff.text("#entry-1").unwrap())
        .unwrap();
    assert!(row.contains("目視確認") && row.contains(STAFF_ID), "{row}");
    // Switching it off takes the choice away.
    staff.click("#visual-off").unwrap();
    bench.rig.remove().unwrap();
    place_card(&b, &bench);
    assert!(b.try_find("#method-visual").unwrap().is_none());
}

#[test]
fn an_unregistered_card_is_offered_registration_then_confirmed() {
    let bench = bench("unregistered", &[]);
    let chrome = driver();
    let b = chrome.browser().unwrap();
    open_kiosk(&b, &bench);
    place_card(&b, &bench);
    // Face first: registration then needs the PIN.
    b.click("#method-face").unwrap();
    b.wait_screen("face").unwrap();
    b.click("#camera-holder").unwrap();
    answer_consents(&b, [false, false, false, false]);
    b.wait_screen("offer_registration").unwrap();
    shot(&b, "12-offer-registration");
    b.click("#register-yes").unwrap();
    b.wait_screen("pin").unwrap();
    assert!(b.text("#screen").unwrap().contains("利用登録"));
    type_pin(&b, &bench.pin);
    b.click("#pin-ok").unwrap();
    b.wait_screen("done").unwrap();
    assert!(b.try_find("#registered-now").unwrap().is_some());
    shot(&b, "13-registered-done");
    let list = confirmations(&bench);
    let entries = list["confirmations"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["outcome"] == "registered"),
        "{list}"
    );
    assert!(entries.iter().any(|e| e["outcome"] == "confirmed"
        && e["registered_now"] == true
        && e["method"] == "face"));
}

#[test]
fn a_card_pulled_mid_flow_ends_the_session_cleanly_and_the_next_card_starts_fresh() {
    let bench = bench("valid", &[]);
    let chrome = driver();
    let b = chrome.browser().unwrap();
    open_kiosk(&b, &bench);
    place_card(&b, &bench);
    b.click("#method-pin").unwrap();
    b.wait_screen("pin").unwrap();
    type_pin(&b, &bench.pin);
    b.click("#pin-ok").unwrap();
    // Verified, on the consent screen: pull the card.
    b.wait_screen("consent").unwrap();
    let session = bench.rig.state().unwrap()["session"].clone();
    assert!(session.as_str().is_some_and(|s| s.len() == 32), "{session}");
    bench.rig.remove().unwrap();
    b.wait_screen("insert_card").unwrap();
    assert_eq!(
        b.attribute("#notice", "data-notice").unwrap(),
        "card_removed"
    );
    shot(&b, "14-card-removed");
    // An action for the pulled card's session is refused, not applied to anything.
    let (status, answer) = bench
        .rig
        .post(
            "/api/consents",
            json!({"session": session, "medication": true}),
        )
        .unwrap();
    assert_eq!(status, 409);
    assert_eq!(answer["error"], "stale_session");
    // Nothing was confirmed, and the PIN count was not touched (3 left on the next visit).
    let list = confirmations(&bench);
    assert_eq!(list["confirmations"].as_array().unwrap().len(), 0, "{list}");
    place_card(&b, &bench);
    assert!(b.text("#pin-note").unwrap().contains("残り 3 回"));
    assert!(b.try_find("#notice").unwrap().is_none());
}

#[test]
fn the_english_toggle_translates_the_screens() {
    let bench = bench("valid", &[]);
    let chrome = driver();
    let b = chrome.browser().unwrap();
    open_kiosk(&b, &bench);
    b.click("#lang-toggle").unwrap();
    assert!(b
        .text("#screen")
        .unwrap()
        .contains("Please place your My Number card"));
    shot(&b, "15-english");
    place_card(&b, &bench);
    assert!(b.text("#pin-note").unwrap().contains("3 tries left"));
    b.click("#lang-toggle").unwrap();
    assert!(b.text("#pin-note").unwrap().contains("残り 3 回"));
}

/// The scriptable API alone (no browser): what a load test or reception-software test does.
#[test]
fn the_scriptable_api_runs_a_pin_confirmation_and_names_bad_input() {
    let bench = bench("valid", &[]);
    let rig = &bench.rig;
    assert_eq!(rig.state().unwrap()["screen"], "insert_card");
    // Nothing to act on yet.
    let (status, answer) = rig
        .post("/api/method", json!({"session": "0", "method": "pin"}))
        .unwrap();
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("stale_session"))
    );
    rig.insert(&bench.profile).unwrap();
    let (status, s) = rig
        .post("/api/session", json!({"wait_seconds": 30}))
        .unwrap();
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["screen"], "choose_method");
    let session = s["session"].as_str().unwrap().to_owned();
    // A session id is mandatory: an action without one is refused and changes nothing.
    let (status, answer) = rig.post("/api/method", json!({"method": "pin"})).unwrap();
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("bad_request"))
    );
    assert_eq!(rig.state().unwrap()["screen"], "choose_method");
    let (status, answer) = rig
        .post(
            "/api/method",
            json!({"session": session, "method": "retina"}),
        )
        .unwrap();
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("bad_request"))
    );
    // A PIN on the wrong screen is refused without costing a try.
    let (status, answer) = rig
        .post("/api/pin", json!({"session": session, "pin": bench.pin}))
        .unwrap();
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("wrong_screen"))
    );
    let (_, s) = rig
        .post("/api/method", json!({"session": session, "method": "pin"}))
        .unwrap();
    assert_eq!(
        (s["screen"].as_str(), s["tries_left"].as_u64()),
        (Some("pin"), Some(3))
    );
    let (status, answer) = rig
        .post("/api/pin", json!({"session": session, "pin": "12a4"}))
        .unwrap();
    assert_eq!((status, answer["error"].as_str()), (400, Some("bad_pin")));
    let (_, s) = rig
        .post("/api/pin", json!({"session": session, "pin": bench.pin}))
        .unwrap();
    assert_eq!(
        (s["screen"].as_str(), s["item"].as_str()),
        (Some("consent"), Some("medication"))
    );
    let (_, s) = rig
        .post(
            "/api/consents",
            json!({"session": session, "medication": true, "checkup": true, "clinical": false, "surgery": false}),
        )
        .unwrap();
    assert_eq!(s["screen"], "done", "{s}");
    assert_eq!(s["method"], "pin");
    assert_eq!(s["validity"], 1);
    assert!(s["confirmation_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));

    // Staff (logged in, on their own listener): card-less by numbers (bad numbers get the
    // service's own code), clinical data by the day's list.
    let staff = rig.staff_login().unwrap();
    let (status, entry) = staff
        .post(
            "/api/staff/numbers",
            json!({"insurer_number": "01130013", "number": "1", "birth_date": "19800101"}),
        )
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(entry["outcome"], "refused");
    assert_eq!(entry["result_code"], "RESULT_CODE_INVALID_INSURER_NUMBER");
    let (status, answer) = staff
        .post("/api/staff/checkups", json!({"seq": 1}))
        .unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["kind"], "checkups");
    let (status, answer) = staff
        .post("/api/staff/medications", json!({"seq": 99}))
        .unwrap();
    assert_eq!(status, 400, "{answer}");
}

#[test]
fn staff_upload_a_batch_watch_it_finish_and_download_the_results() {
    let bench = bench("valid", &[]);
    let w = world();
    let chrome = driver();
    let staff = chrome.browser().unwrap();
    open_staff(&staff, &bench);
    // Two patients by their numbers (the world's examples) and one malformed line.
    let examples = w.manifest["examples"].as_array().expect("examples");
    let valid_one = examples
        .iter()
        .find(|e| e["case"] == "validity-1")
        .expect("a validity-1 example");
    let mut csv = String::from("insurer_number,symbol,number,branch,birth_date\n");
    for q in [valid_one, valid_one] {
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            q["insurer_number"].as_str().unwrap(),
            q["symbol"].as_str().unwrap_or(""),
            q["number"].as_str().unwrap(),
            q["branch"].as_str().unwrap_or(""),
            q["birth_date"].as_str().unwrap()
        ));
    }
    csv.push_str("12345678,,1,,19800101\n");
    let file = bench.rig.state_path().join("reservations.csv");
    std::fs::write(&file, &csv).unwrap();
    staff
        .type_into("#batch-file", file.to_str().unwrap())
        .unwrap();
    staff.click("#batch-submit").unwrap();
    staff
        .wait_for(".batch[data-status=\"done\"]", Duration::from_secs(60))
        .unwrap();
    assert!(staff.text(".batch .count").unwrap().contains("3 / 3"));
    shot(&staff, "21-staff-batch");
    let href = staff.attribute(".batch a", "href").unwrap();
    // The attribute as written (relative), or the absolute URL.
    let path = href
        .split_once(&bench.rig.staff_addr)
        .map_or(href.clone(), |(_, p)| p.to_owned());
    assert!(path.starts_with("/api/staff/batch/"), "{href}");
    let answer = bench.rig.staff_login().unwrap().get(&path).unwrap();
    let (status, body) = (answer.status, answer.body);
    assert_eq!(status, 200);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 4, "{body}");
    assert!(
        lines[3].contains("RESULT_CODE_INVALID_INSURER_NUMBER"),
        "{body}"
    );
    assert!(lines[1].contains("RESULT_CODE_OK,1,"), "{body}");
    assert!(lines[2].contains("RESULT_CODE_OK,1,"), "{body}");
}

/// The kiosk's `/metrics` (`--metrics-listen`, port 0: it prints the port it got): a card
/// placed counts a session, a PIN confirmation an outcome by method, and nothing read from
/// the card or typed reaches a label.
#[test]
fn the_kiosk_metrics_count_sessions_and_outcomes_by_method() {
    let bench = bench("valid", &["--metrics-listen", "127.0.0.1:0"]);
    let rig = &bench.rig;
    let metrics = rig
        .metrics_addr
        .clone()
        .expect("the kiosk printed its metrics address");
    let scrape = || {
        let a = onshi_e2e::http::request(&metrics, "GET", "/metrics", &[], None).unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
        a.body
    };
    let value = |text: &str, prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let before = scrape();
    let sessions = value(&before, "onshi_kiosk_sessions_total");
    let pin_ok = "onshi_kiosk_outcomes_total{method=\"pin\",outcome=\"confirmed\"";
    let outcomes = value(&before, pin_ok);

    rig.insert(&bench.profile).unwrap();
    let (status, s) = rig
        .post("/api/session", json!({"wait_seconds": 30}))
        .unwrap();
    let session = s["session"]
        .as_str()
        .unwrap_or_else(|| panic!("no session in the kiosk's answer ({status}): {s}"))
        .to_owned();
    rig.post("/api/method", json!({"session": session, "method": "pin"}))
        .unwrap();
    let (_, s) = rig
        .post("/api/pin", json!({"session": session, "pin": bench.pin}))
        .unwrap();
    assert_eq!(s["screen"], "consent", "{s}");
    let (_, s) = rig
        .post(
            "/api/consents",
            json!({"session": session, "medication": false, "checkup": false, "clinical": false, "surgery": false}),
        )
        .unwrap();
    assert_eq!(s["screen"], "done", "{s}");

    let after = scrape();
    assert_eq!(
        value(&after, "onshi_kiosk_sessions_total") - sessions,
        1.0,
        "{after}"
    );
    assert_eq!(value(&after, pin_ok) - outcomes, 1.0, "{after}");
    let id = s["confirmation_id"].as_str().unwrap();
    assert!(!after.contains(id), "{id} in\n{after}");
}

// ---- the rules of December 2026 -----------------------------------------------------------------

/// 包括同意: the first consent screen offers one button for every kind; one tap confirms,
/// and the later screens no longer offer it.
#[test]
fn comprehensive_consent_is_one_tap_on_the_first_consent_screen() {
    let bench = bench("valid", &[]);
    let chrome = driver();
    let b = chrome.browser().unwrap();
    open_kiosk(&b, &bench);
    place_card(&b, &bench);
    b.click("#method-pin").unwrap();
    b.wait_screen("pin").unwrap();
    type_pin(&b, &bench.pin);
    b.click("#pin-ok").unwrap();
    b.wait_screen("consent").unwrap();
    assert!(b.text("#consent-all").unwrap().contains("包括同意"));
    shot(&b, "05b-consent-all");
    // The individual path hides it after the first answer.
    b.click("#consent-yes").unwrap();
    b.wait_for(
        "#consent-question[data-item=\"checkup\"]",
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(b.try_find("#consent-all").unwrap(), None);
    b.click("#cancel").unwrap();
    b.wait_screen("failed").unwrap();
    bench.rig.remove().unwrap();
    b.wait_screen("insert_card").unwrap();
    // Again, with one tap.
    place_card(&b, &bench);
    b.click("#method-pin").unwrap();
    b.wait_screen("pin").unwrap();
    type_pin(&b, &bench.pin);
    b.click("#pin-ok").unwrap();
    b.wait_screen("consent").unwrap();
    b.click("#consent-all").unwrap();
    b.wait_screen("done").unwrap();
    let list = confirmations(&bench);
    assert_eq!(list["confirmations"][0]["outcome"], "confirmed");
}

/// 電子処方箋: a clinic's kiosk asks after the consents; 受付完了 says what was chosen.
#[test]
fn a_clinic_kiosk_asks_for_the_prescription_and_shows_the_choice() {
    let bench = Bench::start_on(world(), "valid", 2, &[], &[]).unwrap();
    let chrome = driver();
    let b = chrome.browser().unwrap();
    open_kiosk(&b, &bench);
    place_card(&b, &bench);
    b.click("#method-pin").unwrap();
    b.wait_screen("pin").unwrap();
    type_pin(&b, &bench.pin);
    b.click("#pin-ok").unwrap();
    b.wait_screen("consent").unwrap();
    b.click("#consent-all").unwrap();
    b.wait_screen("prescription").unwrap();
    assert!(b
        .text("#prescription-electronic")
        .unwrap()
        .contains("電子処方箋"));
    shot(&b, "05c-prescription");
    b.click("#prescription-electronic").unwrap();
    b.wait_screen("done").unwrap();
    assert_eq!(bench.rig.state().unwrap()["prescription"], "electronic");
    assert!(b.text("#prescription").unwrap().contains("電子処方箋"));
    shot(&b, "06b-done-prescription");
}

/// A face-only card whose holder is not registered: identified by face, offered registration
/// without a PIN (the hint says so), registered by the reader's attestation, then confirmed.
#[test]
fn a_face_only_card_is_registered_by_face_and_confirmed() {
    let bench = bench("face-only-unregistered", &[]);
    let chrome = driver();
    let b = chrome.browser().unwrap();
    open_kiosk(&b, &bench);
    place_card(&b, &bench);
    assert_eq!(b.try_find("#method-pin").unwrap(), None);
    b.click("#method-face").unwrap();
    b.wait_screen("face").unwrap();
    b.click("#camera-holder").unwrap();
    answer_consents(&b, [false, false, false, false]);
    b.wait_screen("offer_registration").unwrap();
    assert_eq!(bench.rig.state().unwrap()["needs_pin"], false);
    assert!(b.text("#registration-hint").unwrap().contains("顔認証"));
    shot(&b, "12b-offer-registration-face-only");
    b.click("#register-yes").unwrap();
    b.wait_screen("done").unwrap();
    assert!(b.try_find("#registered-now").unwrap().is_some());
    let list = confirmations(&bench);
    let entries = list["confirmations"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["outcome"] == "registered" && e["method"] == "face"),
        "{list}"
    );
}
