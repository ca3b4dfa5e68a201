//! 医療扶助 at the kiosk, in headless Chromium against the real service (real time): the
//! recipient with registered tickets (card-0015) is confirmed at the pharmacy's kiosk and the
//! staff view shows the 医療券 and 調剤券, the 調剤券 as this pharmacy's; the recipient whose
//! ticket is not registered (card-0016) gets 有効（未登録） on the patient's screen and 未登録
//! in the staff view. The world has 16 cards, so its cycle holds both (testbed).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use onshi_e2e::kiosk::{Bench, STAFF_ID};
use onshi_e2e::webdriver::{Browser, Chromedriver};
use onshi_e2e::World;

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "kiosk-medical-aid-world", 16)
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

/// A PIN confirmation sharing nothing, up to 受付完了.
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
    for item in ["medication", "checkup", "clinical", "surgery"] {
        b.wait_for(
            &format!("#consent-question[data-item=\"{item}\"]"),
            Duration::from_secs(20),
        )
        .unwrap();
        b.click("#consent-no").unwrap();
    }
    b.wait_screen("done").unwrap();
    assert_eq!(b.text("#done").unwrap(), "受付完了");
}

#[test]
fn the_staff_view_shows_the_tickets_and_the_unregistered_state() {
    let chrome = Chromedriver::start().unwrap();

    // Registered tickets, at the pharmacy (the world's first in-operation terminal).
    let bench = Bench::start(world(), "card-0015", &[]).unwrap();
    let b = chrome.browser().unwrap();
    let staff = chrome.browser().unwrap();
    open_staff(&staff, &bench);
    confirm_with_pin(&b, &bench);
    assert!(b.text("#validity").unwrap().ends_with("有効"));
    staff
        .wait_for("#entry-1.confirmed", Duration::from_secs(20))
        .unwrap();
    let medical = staff.text("#ticket-1-0").unwrap();
    let dispensing = staff.text("#ticket-1-1").unwrap();
    assert!(
        medical.starts_with("医療券") && medical.contains("(他院)"),
        "{medical}"
    );
    assert!(
        dispensing.starts_with("調剤券") && dispensing.contains("(当院)"),
        "{dispensing}"
    );
    assert_eq!(staff.attribute("#ticket-1-1", "data-here").unwrap(), "1");
    assert!(staff
        .try_find("#entry-1 .aid-unregistered")
        .unwrap()
        .is_none());
    drop(bench);

    // Not registered: 有効（未登録） on the patient's screen, 未登録 for staff, no tickets.
    let bench = Bench::start(world(), "card-0016", &[]).unwrap();
    let b = chrome.browser().unwrap();
    let staff = chrome.browser().unwrap();
    open_staff(&staff, &bench);
    confirm_with_pin(&b, &bench);
    assert!(
        b.text("#validity").unwrap().contains("有効（未登録）"),
        "{}",
        b.text("#validity").unwrap()
    );
    staff
        .wait_for("#entry-1.confirmed", Duration::from_secs(20))
        .unwrap();
    assert_eq!(
        staff.text("#entry-1 .aid-unregistered").unwrap(),
        "医療券 未登録"
    );
    assert!(staff.try_find("#ticket-1-0").unwrap().is_none());
}
