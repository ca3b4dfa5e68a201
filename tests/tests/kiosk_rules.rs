//! The kiosk's screens for the certificate warnings of the rules of 2024-12-02, in headless
//! Chromium against the real service (real time): a card whose certificate expires within
//! three months is confirmed with the renewal warning, one expired yesterday (in its grace
//! period) with the grace warning and without sharing the data the patient agreed to; the staff
//! view shows the service's warning message. The world has 14 cards, so its cycle holds both
//! (testbed: `grace`, `expiring`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use onshi_e2e::kiosk::{Bench, STAFF_ID};
use onshi_e2e::webdriver::{Browser, Chromedriver};
use onshi_e2e::World;

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "kiosk-rules-world", 14)
}

fn open_staff(staff: &Browser, bench: &Bench) {
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
        .wait_for("body[data-ready=\"1\"]", Duration::from_secs(20))
        .unwrap();
}

/// A PIN confirmation of the bench's card in the browser, agreeing to share medication only,
/// up to 受付完了.
fn confirm_with_pin(b: &Browser, bench: &Bench) {
    b.goto(&bench.rig.launch_url()).unwrap();
    b.wait_screen("insert_card").unwrap();
    bench.rig.insert(&bench.profile).unwrap();
    b.wait_screen("choose_method").unwrap();
    b.click("#method-pin").unwrap();
    b.wait_screen("pin").unwrap();
    for d in bench.pin.chars() {
        b.click(&format!("#pin-key-{d}")).unwrap();
    }
    b.click("#pin-ok").unwrap();
    for (item, yes) in [
        ("medication", true),
        ("checkup", false),
        ("clinical", false),
        ("surgery", false),
    ] {
        b.wait_for(
            &format!("#consent-question[data-item=\"{item}\"]"),
            Duration::from_secs(20),
        )
        .unwrap();
        b.click(if yes { "#consent-yes" } else { "#consent-no" })
            .unwrap();
    }
    b.wait_screen("done").unwrap();
    assert_eq!(b.text("#done").unwrap(), "受付完了");
    assert!(b.text("#validity").unwrap().contains("有効"));
}

#[test]
fn a_certificate_expiring_soon_is_confirmed_with_the_renewal_warning() {
    let bench = Bench::start(world(), "expiring", &[]).unwrap();
    let chrome = Chromedriver::start().unwrap();
    let b = chrome.browser().unwrap();
    let staff = chrome.browser().unwrap();
    open_staff(&staff, &bench);
    confirm_with_pin(&b, &bench);
    assert_eq!(
        b.attribute("#cert-warning", "data-warning").unwrap(),
        "expiring"
    );
    let text = b.text("#cert-warning").unwrap();
    assert!(text.contains("有効期限") && text.contains("更新"), "{text}");
    // The expiry day is on the screen (YYYY-MM-DD, JST).
    assert!(text.contains("-"), "{text}");

    // The staff view: the service's message beside the outcome; the consent was recorded.
    staff
        .wait_for("#entry-1.confirmed", Duration::from_secs(20))
        .unwrap();
    assert_eq!(
        staff
            .attribute("#entry-1 .warning", "data-warning")
            .unwrap(),
        "WARNING_CERTIFICATE_EXPIRING"
    );
    assert!(!staff.text("#entry-1 .warning").unwrap().is_empty());
    assert_eq!(staff.text("#entry-1 .consents").unwrap(), "薬剤");
    // The card holder's document beside the eligibility: a registered holder's お知らせ,
    // which has no period of its own.
    assert_eq!(
        staff.attribute("#entry-1 .document", "data-kind").unwrap(),
        "DOCUMENT_KIND_SHIKAKU_JOHO_OSHIRASE"
    );
    let text = staff.text("#entry-1 .document").unwrap();
    assert!(
        text.contains("資格情報のお知らせ") && text.contains("有効期間なし"),
        "{text}"
    );

    // A confirmation by numbers from the staff view: a 資格確認書 past its last day, shown
    // with its period and as lapsed, beside an eligibility that is still 有効.
    let example = world().manifest["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["case"] == "document-lapsed")
        .expect("world.json has the document-lapsed example")
        .clone();
    for (field, key) in [
        ("#n-insurer", "insurer_number"),
        ("#n-symbol", "symbol"),
        ("#n-number", "number"),
        ("#n-branch", "branch"),
        ("#n-birth", "birth_date"),
    ] {
        staff
            .type_into(field, example[key].as_str().unwrap_or(""))
            .unwrap();
    }
    staff.click("#n-submit").unwrap();
    staff
        .wait_for("#entry-2.confirmed", Duration::from_secs(20))
        .unwrap();
    assert!(staff.text("#entry-2 .validity").unwrap().contains("有効"));
    assert_eq!(
        staff.attribute("#entry-2 .document", "data-kind").unwrap(),
        "DOCUMENT_KIND_SHIKAKU_KAKUNINSHO"
    );
    assert_eq!(
        staff.attribute("#entry-2 .document", "data-valid").unwrap(),
        "false"
    );
    let text = staff.text("#entry-2 .document").unwrap();
    // The period, as the example's description gives it: "… lapsed (YYYYMMDD–YYYYMMDD) …".
    let description = example["description"].as_str().unwrap_or("");
    let period = description
        .split_once("lapsed (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(period, _)| period)
        .expect("the example names the period");
    assert!(
        text.contains("資格確認書") && text.contains("期限切れ") && text.contains(period),
        "{text} (period {period})"
    );
}

#[test]
fn a_certificate_in_grace_is_confirmed_with_the_grace_warning_and_shares_nothing() {
    let bench = Bench::start(world(), "grace", &[]).unwrap();
    let chrome = Chromedriver::start().unwrap();
    let b = chrome.browser().unwrap();
    let staff = chrome.browser().unwrap();
    open_staff(&staff, &bench);
    confirm_with_pin(&b, &bench);
    assert_eq!(
        b.attribute("#cert-warning", "data-warning").unwrap(),
        "in_grace"
    );
    let text = b.text("#cert-warning").unwrap();
    assert!(
        text.contains("切れています") && text.contains("薬剤情報"),
        "{text}"
    );

    staff
        .wait_for("#entry-1.confirmed", Duration::from_secs(20))
        .unwrap();
    assert_eq!(
        staff
            .attribute("#entry-1 .warning", "data-warning")
            .unwrap(),
        "WARNING_CERTIFICATE_IN_GRACE"
    );
    // The patient agreed to share medication; in grace nothing is recorded or offered.
    assert_ne!(staff.text("#entry-1 .consents").unwrap(), "薬剤");
    assert!(staff.try_find("#med-1").unwrap().is_none());

    // Pulling the card returns to the start.
    bench.rig.remove().unwrap();
    b.wait_screen("insert_card").unwrap();
}
