//! The kiosk against the web (docs/security.md, "The kiosk"): what a page on another origin in
//! the kiosk's own browser, a DNS-rebinding page, a request without the token or a staff
//! log-in can do — nothing — and what is left of the PIN in the kiosk's memory — nothing.
//!
//! Requests here are built header by header, exactly as a browser's cross-site `fetch` sends
//! them; a real page on another origin runs in headless Chromium with the kiosk's and the
//! staff's cookies in the same browser. After every refusal the card's PIN counter is read
//! again from the card itself (pull it, place it again): never a try spent.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use onshi_e2e::http::{request, Answer};
use onshi_e2e::kiosk::{Bench, STAFF_ID};
use onshi_e2e::proc_mem;
use onshi_e2e::webdriver::Chromedriver;
use onshi_e2e::World;
use serde_json::{json, Value};

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "kiosk-attack-world", 8)
}

/// A bench with a valid card placed and read: the kiosk shows the method choice.
fn placed() -> (Bench, String) {
    placed_with(&[])
}

/// [`placed`] with the kiosk started through `wrapper`.
fn placed_with(wrapper: &[&str]) -> (Bench, String) {
    let bench = Bench::start_with(world(), "valid", &[], wrapper).unwrap();
    bench.rig.insert(&bench.profile).unwrap();
    let s = bench.rig.wait_screen("choose_method").unwrap();
    assert_eq!(s["pin_tries_left"], 3);
    let session = s["session"].as_str().unwrap().to_owned();
    (bench, session)
}

/// The PIN tries left as the card itself says: pull it and place it again.
fn tries_left_on_the_card(bench: &Bench) -> u64 {
    bench.rig.remove().unwrap();
    bench.rig.wait_screen("insert_card").unwrap();
    bench.rig.insert(&bench.profile).unwrap();
    bench.rig.wait_screen("choose_method").unwrap()["pin_tries_left"]
        .as_u64()
        .unwrap()
}

/// A cross-site `fetch(…, {method: "POST", mode: "no-cors", body})`: `text/plain`, the
/// attacker's origin, no token.
fn cross_site_post(addr: &str, path: &str, body: &Value) -> Answer {
    request(
        addr,
        "POST",
        path,
        &[
            ("origin", "https://evil.example"),
            ("content-type", "text/plain;charset=UTF-8"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
        ],
        Some(&body.to_string()),
    )
    .unwrap()
}

#[test]
fn cross_site_requests_cannot_spend_pin_tries_choose_a_method_or_consent() {
    let (bench, session) = placed();
    let rig = &bench.rig;
    let wrong = if bench.pin == "0000" { "1111" } else { "0000" };
    // The issue's attack, as reproduced on the old kiosk: four POSTs blocked the card.
    for _ in 0..2 {
        let a = cross_site_post(
            &rig.addr,
            "/api/method",
            &json!({"session": session, "method": "pin"}),
        );
        assert_eq!(a.status, 403, "{}", a.body);
        let a = cross_site_post(
            &rig.addr,
            "/api/pin",
            &json!({"session": session, "pin": wrong}),
        );
        assert_eq!(a.status, 403, "{}", a.body);
    }
    // Each safeguard on its own: a request that gets every other part right is still refused.
    let origin = format!("http://{}", rig.addr);
    let good: [(&str, &str); 3] = [
        ("origin", &origin),
        ("content-type", "application/json"),
        ("x-onshi-token", &rig.token),
    ];
    for left_out in 0..good.len() {
        let headers: Vec<_> = good
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != left_out)
            .map(|(_, h)| *h)
            .collect();
        for (path, body) in [
            ("/api/method", json!({"session": session, "method": "pin"})),
            (
                "/api/treatment",
                json!({"session": session, "treatment": "home-visit"}),
            ),
            (
                "/api/consents",
                json!({"session": session, "medication": true}),
            ),
            ("/api/cancel", json!({"session": session})),
            ("/api/phone", json!({})),
        ] {
            let a = request(&rig.addr, "POST", path, &headers, Some(&body.to_string())).unwrap();
            assert_eq!(
                a.status, 403,
                "{path} without {}: {}",
                good[left_out].0, a.body
            );
        }
    }
    // A wrong token, and the right token from a foreign origin.
    for (origin, token) in [
        (origin.as_str(), "0".repeat(64)),
        ("http://127.0.0.1:1", rig.token.clone()),
    ] {
        let a = request(
            &rig.addr,
            "POST",
            "/api/method",
            &[
                ("origin", origin),
                ("content-type", "application/json"),
                ("x-onshi-token", &token),
            ],
            Some(&json!({"session": session, "method": "pin"}).to_string()),
        )
        .unwrap();
        assert_eq!(a.status, 403, "{}", a.body);
    }
    // With everything right but no session id (the old kiosk acted on the current card).
    let (status, answer) = rig.post("/api/method", json!({"method": "pin"})).unwrap();
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("bad_request"))
    );
    // A guessed session id.
    let (status, answer) = rig
        .post("/api/method", json!({"session": "1", "method": "pin"}))
        .unwrap();
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("stale_session"))
    );

    // Nothing happened: the same screen, and the card still has every try.
    let s = rig.state().unwrap();
    assert_eq!(s["screen"], "choose_method", "{s}");
    assert_eq!(s["session"], session.as_str());
    assert_eq!(tries_left_on_the_card(&bench), 3);
    // The session ids are random: the next card's is another.
    let next = rig.state().unwrap()["session"].as_str().unwrap().to_owned();
    assert_eq!(next.len(), 32);
    assert_ne!(next, session);
    // And the patient's own flow still works end to end.
    let staff = rig.staff_login().unwrap();
    assert_eq!(staff.confirmations().unwrap()["confirmations"], json!([]));
}

#[test]
fn a_rebinding_host_is_refused_on_both_listeners_with_no_side_effect() {
    let (bench, session) = placed();
    let rig = &bench.rig;
    let staff = rig.staff_login().unwrap();
    let launch = format!("/?token={}", rig.token);
    for (addr, path, secret) in [
        (&rig.addr, launch.as_str(), &rig.token),
        (&rig.addr, "/api/state", &rig.token),
        (&rig.staff_addr, "/", &staff.secret),
        (&rig.staff_addr, "/api/staff/confirmations", &staff.secret),
        (&rig.staff_addr, "/api/me", &staff.secret),
    ] {
        let port = addr.rsplit(':').next().unwrap();
        let host = format!("rebind.evil.example:{port}");
        // Even with the page's token, or the staff member's cookie and secret.
        let a = request(
            addr,
            "GET",
            path,
            &[
                ("host", &host),
                ("x-onshi-token", secret),
                ("cookie", &staff.cookie),
            ],
            None,
        )
        .unwrap();
        assert_eq!(a.status, 421, "{addr}{path}: {}", a.body);
        assert!(!a.body.contains("confirmations"), "{}", a.body);
    }
    let host = format!(
        "rebind.evil.example:{}",
        rig.addr.rsplit(':').next().unwrap()
    );
    let a = request(
        &rig.addr,
        "POST",
        "/api/method",
        &[
            ("host", &host),
            ("origin", &format!("http://{host}")),
            ("content-type", "application/json"),
            ("x-onshi-token", &rig.token),
        ],
        Some(&json!({"session": session, "method": "pin"}).to_string()),
    )
    .unwrap();
    assert_eq!(a.status, 421, "{}", a.body);
    assert_eq!(rig.state().unwrap()["screen"], "choose_method");
    // `localhost:PORT` is the listener's own name too.
    let port = rig.addr.rsplit(':').next().unwrap();
    let a = request(
        &rig.addr,
        "GET",
        "/api/state",
        &[
            ("host", &format!("localhost:{port}")),
            ("x-onshi-token", &rig.token),
        ],
        None,
    )
    .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
}

#[test]
fn the_staff_listener_shows_nothing_without_a_log_in_and_wrong_log_ins_say_nothing_more() {
    let bench = Bench::start(world(), "valid", &[]).unwrap();
    let rig = &bench.rig;
    // A confirmation by numbers, so that the day's list is not empty.
    let staff = rig.staff_login().unwrap();
    let (status, _) = staff
        .post(
            "/api/staff/numbers",
            json!({"insurer_number": "01130013", "number": "1", "birth_date": "19800101"}),
        )
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        staff.confirmations().unwrap()["confirmations"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The staff page carries no secret: not the patient's launch token, nothing to use.
    let page = request(&rig.staff_addr, "GET", "/", &[], None).unwrap();
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains(&rig.token),
        "the staff page gives the launch token away"
    );
    assert!(page.header("set-cookie").is_none());

    let origin = format!("http://{}", rig.staff_addr);
    let json_same_origin = [
        ("origin", origin.as_str()),
        ("content-type", "application/json"),
    ];
    // No log-in; the cookie without the log-in's secret (a stolen cookie: every port of
    // 127.0.0.1 receives it); the secret without the cookie; the launch token instead.
    let cookie_only = [("cookie", staff.cookie.as_str())];
    let secret_only = [("x-onshi-token", staff.secret.as_str())];
    let launch_token = [
        ("cookie", staff.cookie.as_str()),
        ("x-onshi-token", rig.token.as_str()),
    ];
    for shown in [
        &[][..],
        &cookie_only[..],
        &secret_only[..],
        &launch_token[..],
    ] {
        for path in [
            "/api/staff/confirmations",
            "/api/staff/events",
            "/api/staff/batch",
            "/api/state",
            "/api/events",
            "/api/me",
        ] {
            let a = request(&rig.staff_addr, "GET", path, shown, None).unwrap();
            assert_eq!(a.status, 401, "{path} with {shown:?}: {}", a.body);
        }
        for path in [
            "/api/staff/medications",
            "/api/staff/checkups",
            "/api/staff/visual-check",
            "/api/staff/numbers",
            "/api/logout",
        ] {
            let mut headers = json_same_origin.to_vec();
            headers.extend_from_slice(shown);
            let a = request(
                &rig.staff_addr,
                "POST",
                path,
                &headers,
                Some(r#"{"seq":1}"#),
            )
            .unwrap();
            assert!(
                a.status == 401 || (path == "/api/logout" && a.status == 200),
                "{path} with {shown:?}: {} {}",
                a.status,
                a.body
            );
        }
    }
    // The log-out above with partial credentials ended nothing.
    assert_eq!(staff.get("/api/me").unwrap().status, 200);
    // The staff API is not on the patient's listener at all.
    let a = request(
        &rig.addr,
        "GET",
        "/api/staff/confirmations",
        &[("x-onshi-token", &rig.token)],
        None,
    )
    .unwrap();
    assert_eq!(a.status, 404, "{}", a.body);

    // A wrong password and an unknown id get the same answer.
    let login = |id: &str, pw: &str| {
        request(
            &rig.staff_addr,
            "POST",
            "/api/login",
            &json_same_origin,
            Some(&json!({"staff_id": id, "password": pw}).to_string()),
        )
        .unwrap()
    };
    let wrong_pw = login(STAFF_ID, "not the password");
    let unknown = login("S999", &rig.staff_password);
    assert_eq!((wrong_pw.status, unknown.status), (401, 401));
    assert_eq!(wrong_pw.body, unknown.body);
    assert!(wrong_pw.header("set-cookie").is_none());
    // A log-in from another origin (log-in CSRF) is refused before the password is looked at.
    let a = request(
        &rig.staff_addr,
        "POST",
        "/api/login",
        &[
            ("origin", "http://127.0.0.1:1"),
            ("content-type", "application/json"),
        ],
        Some(&json!({"staff_id": STAFF_ID, "password": rig.staff_password}).to_string()),
    )
    .unwrap();
    assert_eq!(a.status, 403);
    // The right one: an HttpOnly, SameSite=Strict cookie and the secret in the body.
    let ok = login(STAFF_ID, &rig.staff_password);
    assert_eq!(ok.status, 200, "{}", ok.body);
    let cookie = ok.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert_eq!(ok.json().unwrap()["token"].as_str().unwrap().len(), 64);
    // Twelve wrong log-ins sent at once check no more passwords than five in a row would;
    // then even the right password is refused for a while.
    let attempts: Vec<_> = (0..12)
        .map(|i| {
            let addr = rig.staff_addr.clone();
            let headers: Vec<(String, String)> = json_same_origin
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            std::thread::spawn(move || {
                let h: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let body = json!({"staff_id": STAFF_ID, "password": format!("guess {i}")});
                request(&addr, "POST", "/api/login", &h, Some(&body.to_string()))
                    .unwrap()
                    .status
            })
        })
        .collect();
    let statuses: Vec<u16> = attempts.into_iter().map(|t| t.join().unwrap()).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(checked <= 5, "{checked} passwords checked: {statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert_eq!(login(STAFF_ID, &rig.staff_password).status, 429);
    // Log-out ends the session.
    let (status, _) = staff.post("/api/logout", json!({})).unwrap();
    assert_eq!(status, 200);
    assert_eq!(staff.get("/api/staff/confirmations").unwrap().status, 401);
}

#[test]
fn the_visual_check_records_the_logged_in_staff_member_never_a_typed_id() {
    let (bench, session) = placed();
    let rig = &bench.rig;
    let staff = rig.staff_login().unwrap();
    let (status, answer) = staff
        .post(
            "/api/staff/visual-check",
            json!({"on": true, "staff_id": "FORGED"}),
        )
        .unwrap();
    assert_eq!(status, 400, "{answer}");
    let (status, s) = staff
        .post("/api/staff/visual-check", json!({"on": true}))
        .unwrap();
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["visual_check_staff"], STAFF_ID);
    let s = rig.wait_screen("choose_method").unwrap();
    assert_eq!(s["visual_check"], true);
    let (_, s) = rig
        .post(
            "/api/method",
            json!({"session": session, "method": "visual"}),
        )
        .unwrap();
    assert_eq!(s["screen"], "consent", "{s}");
    let (_, s) = rig
        .post(
            "/api/consents",
            json!({"session": session, "medication": false, "checkup": false, "clinical": false, "surgery": false}),
        )
        .unwrap();
    assert_eq!(s["screen"], "done", "{s}");
    let list = staff.confirmations().unwrap();
    assert_eq!(list["confirmations"][0]["staff_id"], STAFF_ID, "{list}");
    // Logging out switches it off: nobody is there to look.
    staff.post("/api/logout", json!({})).unwrap();
    assert_eq!(rig.state().unwrap()["visual_check_staff"], Value::Null);

    // Removing the account ends its log-ins, and its visual check with them.
    let staff = rig.staff_login().unwrap();
    let (_, s) = staff
        .post("/api/staff/visual-check", json!({"on": true}))
        .unwrap();
    assert_eq!(s["visual_check_staff"], STAFF_ID);
    let out = std::process::Command::new(onshi_e2e::bin("reader-agent").unwrap())
        .args(["staff", "remove", "--staff-id", STAFF_ID, "--state-dir"])
        .arg(rig.state_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(staff.get("/api/me").unwrap().status, 401);
    rig.wait_state(Duration::from_secs(10), |s| {
        s["visual_check_staff"] == Value::Null
    })
    .expect("the visual check stayed on");
}

#[test]
fn every_answer_carries_the_security_headers_and_the_pages_no_inline_script() {
    let bench = Bench::start(world(), "valid", &[]).unwrap();
    let rig = &bench.rig;
    let launch = format!("/?token={}", rig.token);
    let answers = [
        // The launch address: the page, with the token for its requests.
        request(&rig.addr, "GET", &launch, &[], None).unwrap(),
        request(
            &rig.addr,
            "GET",
            "/api/state",
            &[("x-onshi-token", &rig.token)],
            None,
        )
        .unwrap(),
        request(&rig.addr, "GET", "/api/state", &[], None).unwrap(),
        request(&rig.addr, "POST", "/api/cancel", &[], Some("{}")).unwrap(),
        request(&rig.addr, "GET", "/", &[("host", "evil.example")], None).unwrap(),
        request(&rig.staff_addr, "GET", "/", &[], None).unwrap(),
        request(
            &rig.staff_addr,
            "GET",
            "/api/staff/confirmations",
            &[],
            None,
        )
        .unwrap(),
        // Without the launch token (another local user who cannot read it): no page, no
        // token, and a wrong token is no better.
        request(&rig.addr, "GET", "/", &[], None).unwrap(),
        request(&rig.addr, "GET", "/?token=00", &[], None).unwrap(),
    ];
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 200, 403, 403, 421, 200, 401, 403, 403]);
    assert!(!answers[7].body.contains(&rig.token) && !answers[8].body.contains(&rig.token));
    // No cookie anywhere: cookies of 127.0.0.1 reach every port of it.
    assert!(answers.iter().all(|a| a.header("set-cookie").is_none()));
    for a in &answers {
        let csp = a.header("content-security-policy").unwrap_or("");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(a.header("referrer-policy"), Some("no-referrer"));
    }
    // The pages: the token in place, every script from a file, no inline handlers.
    assert!(answers[0].body.contains(&rig.token));
    assert!(!answers[5].body.contains(&rig.token));
    for page in [&answers[0].body, &answers[5].body] {
        assert!(!page.contains("{{ONSHI_TOKEN}}"));
        for (i, _) in page.match_indices("<script") {
            let tag = &page[i..i + page[i..].find('>').unwrap()];
            assert!(tag.contains(" src="), "inline script: {tag}");
        }
        assert!(!page.contains(" onclick=") && !page.contains(" oninput="));
        assert!(!page.contains("<style"));
    }
    // Bodies are bounded.
    let big = format!("{{\"session\":\"{}\"}}", "x".repeat(3 << 20));
    let origin = format!("http://{}", rig.addr);
    let a = request(
        &rig.addr,
        "POST",
        "/api/cancel",
        &[
            ("origin", &origin),
            ("content-type", "application/json"),
            ("x-onshi-token", &rig.token),
        ],
        Some(&big),
    )
    .unwrap();
    assert_eq!(a.status, 413);
    // The token file is its owner's only.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(rig.state_path().join("kiosk-token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn the_pin_request_body_is_not_left_in_the_kiosks_memory_and_the_process_is_not_dumpable() {
    // Without capabilities, so that only dumpability decides who may read its memory.
    let (bench, session) = placed_with(&proc_mem::WITHOUT_CAPABILITIES);
    let rig = &bench.rig;
    let pid = rig.pid().unwrap();
    let (_, s) = rig
        .post("/api/method", json!({"session": session, "method": "pin"}))
        .unwrap();
    assert_eq!(s["screen"], "pin");
    // The exact body a script sends (serde_json writes keys in this order).
    let body = json!({"session": session, "pin": bench.pin}).to_string();
    assert_eq!(
        body,
        format!("{{\"pin\":\"{}\",\"session\":\"{session}\"}}", bench.pin)
    );
    let (_, s) = rig
        .post("/api/pin", json!({"session": session, "pin": bench.pin}))
        .unwrap();
    assert_eq!(s["screen"], "consent", "{s}");
    // The scan can see: the launch token is in the kiosk's memory (it checks every request).
    assert!(proc_mem::occurrences(pid, rig.token.as_bytes()).unwrap() > 0);
    // As soon as the PIN is verified, its request body is nowhere in the kiosk's memory, live
    // or freed (the old kiosk kept it in the HTTP library's read buffer).
    let field = format!("\"pin\":\"{}\"", bench.pin);
    assert_absent(pid, &body, "the PIN's request body");
    assert_absent(pid, &field, "the PIN's JSON field");
    let (_, s) = rig
        .post(
            "/api/consents",
            json!({"session": session, "medication": false, "checkup": false, "clinical": false, "surgery": false}),
        )
        .unwrap();
    assert_eq!(s["screen"], "done", "{s}");
    // And after the confirmation.
    assert_absent(pid, &body, "the PIN's request body");
    assert_absent(pid, &field, "the PIN's JSON field");

    // Non-dumpable: a process without privileges cannot read the kiosk's /proc files, while
    // it can read those of an ordinary process of the same user, started the same way.
    let mut ordinary = std::process::Command::new(proc_mem::WITHOUT_CAPABILITIES[0])
        .args(&proc_mem::WITHOUT_CAPABILITIES[1..])
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    // Until the wrapper has dropped its privileges and started `sleep`, the control is itself
    // briefly not dumpable (credentials changing): wait for the exec, bounded.
    let comm = format!("/proc/{}/comm", ordinary.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&comm).map_or(true, |c| c.trim() != "sleep") {
        assert!(Instant::now() < deadline, "the control never started sleep");
        std::thread::sleep(Duration::from_millis(10));
    }
    let ordinary_readable = proc_mem::readable_without_privileges(ordinary.id());
    let _ = ordinary.kill();
    let _ = ordinary.wait();
    assert!(ordinary_readable.unwrap(), "the control must be readable");
    assert!(!proc_mem::readable_without_privileges(pid).unwrap());
}

/// Asserts `needle` is not in process `pid`'s memory, allowing the connection that carried it
/// a moment (bounded) to finish closing.
fn assert_absent(pid: u32, needle: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let found = proc_mem::occurrences(pid, needle.as_bytes()).unwrap();
        if found == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} is {found}× in the kiosk's memory"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A page on another origin (same site: another port of 127.0.0.1, so the browser sends the
/// kiosk's SameSite=Strict cookies along) in the browser where the kiosk and a logged-in staff
/// view are open.
#[test]
fn a_page_from_another_origin_in_the_kiosks_browser_can_do_nothing() {
    let (bench, session) = placed();
    let rig = &bench.rig;
    let chrome = Chromedriver::start().unwrap();
    let b = chrome.browser().unwrap();
    // The kiosk page (its cookie) and the staff view, logged in (its cookie).
    b.goto(&rig.launch_url()).unwrap();
    b.wait_screen("choose_method").unwrap();
    b.goto(&rig.staff_url("/")).unwrap();
    b.wait_for("#login-form", Duration::from_secs(20)).unwrap();
    b.type_into("#login-staff-id", STAFF_ID).unwrap();
    b.type_into("#login-password", &rig.staff_password).unwrap();
    b.click("#login-submit").unwrap();
    b.wait_for("body[data-ready=\"1\"]", Duration::from_secs(20))
        .unwrap();

    let page = evil_page(&rig.addr, &rig.staff_addr, &session);
    let evil = EvilServer::start(page);
    b.goto(&format!("http://{}/", evil.addr)).unwrap();
    b.wait_for("body[data-done=\"1\"]", Duration::from_secs(30))
        .unwrap();
    let results: Value =
        serde_json::from_str(&b.attribute("body", "data-results").unwrap()).unwrap();
    // Nothing it could read: every read failed (CORS) or came back opaque.
    for (name, outcome) in results.as_object().unwrap() {
        let outcome = outcome.as_str().unwrap();
        assert!(
            outcome == "opaque" || outcome.starts_with("error"),
            "{name}: {outcome}"
        );
    }
    assert_eq!(results.as_object().unwrap().len(), 12, "{results}");
    // Nothing it could do: the same screen and session, no visual check, no confirmation, and
    // every PIN try still on the card.
    let s = rig.state().unwrap();
    assert_eq!(
        (s["screen"].as_str(), s["session"].as_str()),
        (Some("choose_method"), Some(session.as_str())),
        "{s}"
    );
    assert_eq!(s["visual_check_staff"], Value::Null);
    let staff = rig.staff_login().unwrap();
    assert_eq!(staff.confirmations().unwrap()["confirmations"], json!([]));
    assert_eq!(tries_left_on_the_card(&bench), 3);

    // The browser sent the staff view's log-in cookie to the attacker's port (cookies are
    // not kept apart by port), and it is worth nothing there: the log-in's secret lives in
    // the staff page's own tab.
    let stolen = evil.stolen_cookies();
    let staff_cookie = format!(
        "onshi_staff_{}=",
        rig.staff_addr.rsplit(':').next().unwrap()
    );
    let cookie = stolen
        .iter()
        .find(|c| c.contains(&staff_cookie))
        .unwrap_or_else(|| panic!("the browser sent no staff cookie along: {stolen:?}"));
    for path in ["/api/staff/confirmations", "/api/me", "/api/state"] {
        let a = request(&rig.staff_addr, "GET", path, &[("cookie", cookie)], None).unwrap();
        assert_eq!(a.status, 401, "{path} with the stolen cookie: {}", a.body);
    }
    // The patient's listener sets no cookie at all.
    assert!(
        stolen.iter().all(|c| !c.contains("onshi_kiosk")),
        "{stolen:?}"
    );
}

/// The attacker's page: every request a page can make without reading the kiosk's pages.
fn evil_page(kiosk: &str, staff: &str, session: &str) -> String {
    format!(
        r#"<!doctype html><html><body><script>
const K = "http://{kiosk}", S = "http://{staff}", SESSION = "{session}";
const results = {{}};
async function attempt(name, f) {{
  try {{
    const r = await f();
    results[name] = r.type === "opaque" ? "opaque" : "read " + r.status + " " + (await r.text()).slice(0, 200);
  }} catch (e) {{ results[name] = "error " + e; }}
}}
const plain = (url, body) => fetch(url, {{ method: "POST", mode: "no-cors", credentials: "include",
  headers: {{ "content-type": "text/plain" }}, body: JSON.stringify(body) }});
const json = (url, body) => fetch(url, {{ method: "POST", credentials: "include",
  headers: {{ "content-type": "application/json", "x-onshi-token": "guess" }}, body: JSON.stringify(body) }});
(async () => {{
  await attempt("start", () => plain(K + "/api/session", {{}}));
  await attempt("method", () => plain(K + "/api/method", {{ session: SESSION, method: "pin" }}));
  for (let i = 0; i < 4; i++) await attempt("pin" + i, () => plain(K + "/api/pin", {{ session: SESSION, pin: "0000" }}));
  await attempt("consents", () => plain(K + "/api/consents", {{ session: SESSION, medication: true, checkup: true, clinical: true, surgery: true }}));
  await attempt("method_json", () => json(K + "/api/method", {{ session: SESSION, method: "pin" }}));
  await attempt("visual", () => plain(S + "/api/staff/visual-check", {{ on: true }}));
  await attempt("state", () => fetch(K + "/api/state", {{ credentials: "include" }}));
  await attempt("staff_list", () => fetch(S + "/api/staff/confirmations", {{ credentials: "include" }}));
  await attempt("medications", () => json(S + "/api/staff/medications", {{ seq: 1 }}));
  document.body.dataset.results = JSON.stringify(results);
  document.body.dataset.done = "1";
}})();
</script></body></html>"#
    )
}

/// Serves one page on a free loopback port until dropped (bounded: at most 60 s).
struct EvilServer {
    addr: String,
    stop: Arc<AtomicBool>,
    /// The requests it received (what the browser sent it, cookies included).
    seen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl EvilServer {
    fn start(page: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seeing = seen.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stopping.load(Ordering::SeqCst) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                        let mut buf = [0u8; 4096];
                        let n = conn.read(&mut buf).unwrap_or(0);
                        if let Ok(mut seen) = seeing.lock() {
                            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                        }
                        let _ = write!(
                            conn,
                            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
                            page.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Self { addr, stop, seen }
    }

    /// The cookies the browser sent it.
    fn stolen_cookies(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| r.lines().map(str::to_owned).collect::<Vec<_>>())
            .filter_map(|l| {
                l.strip_prefix("Cookie: ")
                    .or_else(|| l.strip_prefix("cookie: "))
                    .map(str::to_owned)
            })
            .collect()
    }
}

impl Drop for EvilServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
