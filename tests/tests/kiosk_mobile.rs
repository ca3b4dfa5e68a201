//! The kiosk's mobile mode (`reader-agent kiosk --mobile`, docs/kiosk.md "The mobile mode"):
//! the mobile device of a home visit or online care, in headless Chromium against the real
//! service. Every session is a 居宅同意取得型 first visit: the treatment screen first
//! (訪問診療・訪問看護 / オンライン診療), then the PIN or a staff member's visual check (never a
//! face match), and 受付完了 shows the re-query period; the staff view shows the treatment flag
//! and the period beside the method. The pharmacy's second terminal (T02) plays the mobile
//! device, as in home_care_e2e.rs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use onshi_e2e::kiosk::{Bench, STAFF_ID};
use onshi_e2e::webdriver::{Browser, Chromedriver};
use onshi_e2e::World;

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "kiosk-mobile-world", 8)
}

/// A mobile-mode kiosk on the world's T02 with a private copy of a `kind` card.
fn bench(kind: &str) -> Bench {
    Bench::start_on(world(), kind, 1, &["--mobile"], &[]).unwrap()
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

/// The kiosk page with the card placed: the treatment screen, in the mobile mode's header.
fn place_card(b: &Browser, bench: &Bench) {
    b.goto(&bench.rig.launch_url()).unwrap();
    b.wait_screen("insert_card").unwrap();
    assert!(b.text("#mobile-mode").unwrap().contains("居宅同意取得型"));
    bench.rig.insert(&bench.profile).unwrap();
    b.wait_screen("choose_treatment").unwrap();
    assert!(b
        .text("#treatment-question")
        .unwrap()
        .contains("診療の種類"));
}

fn answer_consents_no(b: &Browser) {
    for item in ["medication", "checkup", "clinical", "surgery"] {
        b.wait_for(
            &format!("#consent-question[data-item=\"{item}\"]"),
            Duration::from_secs(20),
        )
        .unwrap();
        b.click("#consent-no").unwrap();
    }
}

/// 受付完了 with the treatment and the re-query period (YYYY-MM-DD); returns the period.
fn done_with_period(b: &Browser, treatment: &str) -> String {
    b.wait_screen("done").unwrap();
    assert_eq!(b.text("#done").unwrap(), "受付完了");
    assert_eq!(
        b.attribute("#treatment", "data-treatment").unwrap(),
        treatment
    );
    let until = b.attribute("#requery-until", "data-until").unwrap();
    assert_eq!(until.len(), 10, "{until}");
    assert!(b.text("#requery-until").unwrap().contains(&until));
    until
}

/// The staff view's first entry: the method text, the treatment flag and the period
/// (YYYYMMDD) it shows.
fn staff_entry(staff: &Browser) -> (String, String, String) {
    staff
        .wait_for("#entry-1.confirmed", Duration::from_secs(20))
        .unwrap();
    (
        staff.text("#entry-1 .method").unwrap(),
        staff
            .attribute("#entry-1 .treatment", "data-treatment")
            .unwrap(),
        staff
            .attribute("#entry-1 .requery-until", "data-until")
            .unwrap(),
    )
}

/// Whether the service's audit log has a successful confirmation by T02 with `method`.
fn audited(method: &str) -> bool {
    let store =
        onshi_confirm_service::store::SqliteStore::open(&world().dir.join("store/onshi.sqlite"))
            .unwrap();
    onshi_confirm_service::store::Store::query_audit(
        &store,
        &onshi_confirm_service::audit::AuditQuery {
            limit: 10_000,
            ..Default::default()
        },
    )
    .unwrap()
    .iter()
    .any(|r| r.method == method && r.terminal_id == "T02" && r.result_code == "RESULT_CODE_OK")
}

#[test]
fn a_pin_first_visit_in_the_mobile_mode_shows_the_requery_period_to_patient_and_staff() {
    let bench = bench("valid");
    let chrome = Chromedriver::start().unwrap();
    let b = chrome.browser().unwrap();
    let staff = chrome.browser().unwrap();
    open_staff(&staff, &bench);
    place_card(&b, &bench);
    b.click("#treatment-home-visit").unwrap();
    b.wait_screen("choose_method").unwrap();
    // No face match at the mobile device: the button is there but not offered.
    assert_eq!(
        bench.rig.state().unwrap()["face"],
        "unavailable",
        "a face match makes no first visit"
    );
    b.click("#method-pin").unwrap();
    b.wait_screen("pin").unwrap();
    for d in bench.pin.chars() {
        b.click(&format!("#pin-key-{d}")).unwrap();
    }
    b.click("#pin-ok").unwrap();
    answer_consents_no(&b);
    let until = done_with_period(&b, "home-visit");
    assert!(b.text("#treatment").unwrap().contains("訪問診療"));

    let (method, treatment, staff_until) = staff_entry(&staff);
    assert!(method.contains("暗証番号"), "{method}");
    assert_eq!(treatment, "home-visit");
    assert_eq!(staff_until, until.replace('-', ""));
    assert!(staff
        .text("#entry-1 .treatment")
        .unwrap()
        .contains("訪問診療"));
}

#[test]
fn a_visual_check_first_visit_in_the_mobile_mode_names_the_staff_and_the_period() {
    // A face-only card (no PIN): at the mobile device only the staff's visual check is left.
    let bench = bench("face-only");
    let chrome = Chromedriver::start().unwrap();
    let b = chrome.browser().unwrap();
    let staff = chrome.browser().unwrap();
    open_staff(&staff, &bench);
    staff.click("#visual-on").unwrap();
    staff
        .wait_for("#visual-state[data-on=\"1\"]", Duration::from_secs(10))
        .unwrap();
    place_card(&b, &bench);
    b.click("#treatment-online").unwrap();
    b.wait_screen("choose_method").unwrap();
    assert!(b.try_find("#method-pin").unwrap().is_none());
    b.click("#method-visual").unwrap();
    answer_consents_no(&b);
    let until = done_with_period(&b, "online");
    assert!(b.text("#treatment").unwrap().contains("オンライン診療"));

    let (method, treatment, staff_until) = staff_entry(&staff);
    assert!(
        method.contains("目視確認") && method.contains(STAFF_ID),
        "{method}"
    );
    assert_eq!(treatment, "online");
    assert_eq!(staff_until, until.replace('-', ""));
    assert!(audited(&format!("mobile-visual:{STAFF_ID}")));
    // The staff's search finds the entry by its treatment and its period.
    staff.type_into("#search", "home-visit").unwrap();
    assert!(staff.try_find("#entry-1").unwrap().is_none());
    for q in ["online", staff_until.as_str()] {
        staff.type_into("#search", q).unwrap();
        staff.wait_for("#entry-1", Duration::from_secs(5)).unwrap();
    }
}
