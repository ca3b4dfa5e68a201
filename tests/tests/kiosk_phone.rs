//! The kiosk's smartphone path (docs/kiosk.md "The smartphone マイナ保険証",
//! docs/smartphone.md): `reader-agent kiosk --phone SOCKET` with `virtual-phone` serving a
//! world phone on onshi's own simulator channel (not the real phone protocol), the real
//! service, pcscd (for the kiosk's card side, unused here), and the pages in headless
//! Chromium. Each test has its own rig and its own phone, so the phone's PIN counter is its
//! own; the phone stops when the test ends.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::time::Duration;

use onshi_confirm_service::audit::AuditQuery;
use onshi_confirm_service::store::{SqliteStore, Store};
use onshi_e2e::kiosk::{Bench, STAFF_ID};
use onshi_e2e::webdriver::{Browser, Chromedriver};
use onshi_e2e::{Phone, World};
use serde_json::json;

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "kiosk-world", 8)
}

/// A private directory for one test's phone socket.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("kiosk-phone-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `virtual-phone` serving the world's phone `name`, and a kiosk with `--phone` on it.
fn phone_bench(name: &str, test: &str, refuse: bool, extra: &[&str]) -> (Phone, Bench) {
    let profile = world().dir.join(format!("phones/{name}.json"));
    let phone = Phone::start_with(&profile, &scratch(test), refuse, extra).unwrap();
    let socket = phone.socket.to_str().unwrap().to_owned();
    let bench = Bench::start(world(), "valid", &["--phone", &socket]).unwrap();
    (phone, bench)
}

/// The Android PIN of the world's phone `name` (test data in world.json).
fn phone_pin(name: &str) -> String {
    world().manifest["phones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["pin"].as_str())
        .unwrap()
        .to_owned()
}

fn wrong_pin(pin: &str) -> String {
    let first = (pin.as_bytes()[0] - b'0' + 1) % 10;
    format!("{first}{}", &pin[1..])
}

/// The kiosk page at 「カードを置いてください」, then 「スマートフォンで受付」.
fn start_phone_session(b: &Browser, bench: &Bench) {
    b.goto(&bench.rig.launch_url()).unwrap();
    b.wait_screen("insert_card").unwrap();
    assert!(b
        .text("#phone-start")
        .unwrap()
        .contains("スマートフォンで受付"));
    b.click("#phone-start").unwrap();
}

fn answer_consents(b: &Browser, answers: [bool; 4]) {
    for (item, yes) in ["medication", "checkup", "clinical", "surgery"]
        .iter()
        .zip(answers)
    {
        b.wait_for(
            &format!("#consent-question[data-item=\"{item}\"]"),
            Duration::from_secs(20),
        )
        .unwrap();
        b.click(if yes { "#consent-yes" } else { "#consent-no" })
            .unwrap();
    }
}

fn type_pin(b: &Browser, pin: &str) {
    for d in pin.chars() {
        b.click(&format!("#pin-key-{d}")).unwrap();
    }
    b.click("#pin-ok").unwrap();
}

/// The service's audit method of the confirmation on the kiosk's 受付完了.
fn audited_method(bench: &Bench) -> String {
    let state = bench.rig.state().unwrap();
    let id = state["confirmation_id"].as_str().unwrap().to_owned();
    SqliteStore::open(&world().dir.join("store/onshi.sqlite"))
        .expect("the world's store")
        .query_audit(&AuditQuery::default())
        .unwrap()
        .into_iter()
        .find(|r| r.confirmation_id == id)
        .unwrap_or_else(|| panic!("no audit record {id}"))
        .method
}

/// The staff's list of today: its only entry.
fn only_entry(bench: &Bench) -> serde_json::Value {
    let list = bench.rig.staff_login().unwrap().confirmations().unwrap();
    let entries = list["confirmations"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(entries.len(), 1, "{list}");
    entries[0].clone()
}

#[test]
fn android_phone_with_a_wrong_pin_then_the_right_one_is_confirmed_with_its_audit_method() {
    let (_phone, bench) = phone_bench("phone-01", "android", false, &[]);
    let chrome = Chromedriver::start().unwrap();
    let b = chrome.browser().unwrap();
    start_phone_session(&b, &bench);
    // The consents come first: the phone signs them with the challenge (docs/kiosk.md).
    answer_consents(&b, [true, false, false, false]);
    b.wait_screen("pin").unwrap();
    assert_eq!(b.attribute("#pin-title", "data-purpose").unwrap(), "phone");
    assert!(b.text("#pin-title").unwrap().contains("スマホ用電子証明書"));
    assert!(b.text("#tries-left").unwrap().contains("残り 3 回"));
    let pin = phone_pin("phone-01");
    type_pin(&b, &wrong_pin(&pin));
    b.wait_for("#pin-wrong", Duration::from_secs(20)).unwrap();
    assert!(b.text("#tries-left").unwrap().contains("残り 2 回"));
    type_pin(&b, &pin);
    b.wait_screen("done").unwrap();
    assert_eq!(b.text("#done").unwrap(), "受付完了");
    assert!(b.text("#validity").unwrap().contains("有効"));

    assert_eq!(audited_method(&bench), "smartphone-android");
    let entry = only_entry(&bench);
    assert_eq!(entry["method"], "smartphone-android", "{entry}");
    assert_eq!(entry["outcome"], "confirmed", "{entry}");
    // The staff view names the credential kind.
    let staff = chrome.browser().unwrap();
    staff.goto(&bench.rig.staff_url("/")).unwrap();
    staff
        .wait_for("body[data-logged-in=\"0\"]", Duration::from_secs(20))
        .unwrap();
    staff.type_into("#login-staff-id", STAFF_ID).unwrap();
    staff
        .type_into("#login-password", &bench.rig.staff_password)
        .unwrap();
    staff.click("#login-submit").unwrap();
    staff
        .wait_for("#entry-1.confirmed", Duration::from_secs(20))
        .unwrap();
    let row = staff.text("#entry-1").unwrap();
    assert!(row.contains("スマートフォン（Android）"), "{row}");
}

#[test]
fn android_phone_locked_after_three_wrong_pins_shows_the_phone_lock() {
    let (_phone, bench) = phone_bench("phone-01", "android-lock", false, &[]);
    let chrome = Chromedriver::start().unwrap();
    let b = chrome.browser().unwrap();
    start_phone_session(&b, &bench);
    answer_consents(&b, [false, false, false, false]);
    let wrong = wrong_pin(&phone_pin("phone-01"));
    for left in [2, 1] {
        b.wait_screen("pin").unwrap();
        type_pin(&b, &wrong);
        b.wait_text(
            "#tries-left",
            &format!("残り {left} 回"),
            Duration::from_secs(20),
        )
        .unwrap();
    }
    type_pin(&b, &wrong);
    b.wait_screen("failed").unwrap();
    assert_eq!(
        b.text("#result-code").unwrap(),
        "RESULT_CODE_PHONE_PIN_LOCKED"
    );
    assert!(b.text("#result-message").unwrap().contains("ロック"));
    let entry = only_entry(&bench);
    assert_eq!(entry["method"], "smartphone-android", "{entry}");
    assert_eq!(entry["outcome"], "refused", "{entry}");
}

#[test]
fn iphone_is_verified_on_the_phone_behind_a_wait_screen_and_confirmed() {
    let (_phone, bench) = phone_bench("phone-02", "iphone", false, &["--verify-delay-ms", "4000"]);
    let chrome = Chromedriver::start().unwrap();
    let b = chrome.browser().unwrap();
    start_phone_session(&b, &bench);
    answer_consents(&b, [true, true, false, false]);
    // No PIN pad for an iPhone: the wait screen while its holder verifies on the phone.
    b.wait_text(
        "#screen",
        "スマートフォンで本人確認してください",
        Duration::from_secs(20),
    )
    .unwrap();
    b.wait_screen("done").unwrap();
    assert_eq!(b.text("#done").unwrap(), "受付完了");
    assert_eq!(audited_method(&bench), "smartphone-iphone");
    let entry = only_entry(&bench);
    assert_eq!(entry["method"], "smartphone-iphone", "{entry}");
    assert_eq!(entry["outcome"], "confirmed", "{entry}");
}

#[test]
fn iphone_refused_on_the_phone_shows_the_refusal() {
    let (_phone, bench) = phone_bench("phone-02", "iphone-refused", true, &[]);
    let chrome = Chromedriver::start().unwrap();
    let b = chrome.browser().unwrap();
    start_phone_session(&b, &bench);
    answer_consents(&b, [false, false, false, false]);
    b.wait_screen("failed").unwrap();
    assert_eq!(
        b.text("#result-code").unwrap(),
        "RESULT_CODE_PHONE_VERIFICATION_REFUSED"
    );
    assert!(b.text("#result-message").unwrap().contains("本人確認"));
    let entry = only_entry(&bench);
    assert_eq!(entry["method"], "smartphone-iphone", "{entry}");
    assert_eq!(entry["outcome"], "refused", "{entry}");
}

#[test]
fn a_kiosk_without_a_phone_channel_refuses_a_phone_session_and_offers_no_button() {
    let bench = Bench::start(world(), "valid", &[]).unwrap();
    let (status, answer) = bench.rig.post("/api/phone", json!({})).unwrap();
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"], "not_offered", "{answer}");
    assert_eq!(answer["state"]["phone"], false, "{answer}");
    assert_eq!(answer["state"]["screen"], "insert_card", "{answer}");
}
