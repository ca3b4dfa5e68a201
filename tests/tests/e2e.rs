//! End to end: a private pcscd with the vpcd driver, virtual cards, the confirmation service
//! and the reader agent, all as real processes, over real TLS and a real SQLite store.
//! Needs root (the private pcscd runs in its own mount namespace) and the binaries built.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use onshi_e2e::{
    run_agent, run_agent_by_reader, run_agent_json, run_change_pin, Card, Pcscd, Service, World,
};

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "e2e-world", 8)
}

/// A fresh pcscd, service and temp dir for one test.
struct Rig {
    pcscd: Pcscd,
    service: Service,
    tmp: tempfile::TempDir,
}

fn rig() -> Rig {
    let w = world();
    Rig {
        pcscd: Pcscd::start().expect("private pcscd"),
        service: Service::start(&w.dir.join("service.toml")).expect("confirm-service"),
        tmp: tempfile::tempdir().expect("tempdir"),
    }
}

fn code(run: &onshi_e2e::AgentRun) -> &str {
    run.json["result_code"].as_str().unwrap_or("")
}

#[test]
fn valid_card_is_confirmed_with_expected_fields_and_audited() {
    let w = world();
    let r = rig();
    let (profile, pin) = w.private_card("valid", r.tmp.path()).unwrap();
    let _card = Card::attach(&profile, &r.pcscd.vpcd(), &[]).unwrap();
    let trace = r.tmp.path().join("trace.txt");
    let run = run_agent(
        &r.pcscd,
        &w.terminal("in-operation", 0).unwrap(),
        &r.service,
        &format!("{pin}\n"),
        &[
            "--consent",
            "medication,surgery",
            "--trace",
            trace.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.json["outcome"], "confirmed", "{run:?}");
    assert_eq!(code(&run), "RESULT_CODE_OK");
    let result = &run.json["result"];
    assert_eq!(result["validity"], 1);
    assert_eq!(result["processing_status"], 1);
    assert_eq!(result["reference_classification"], 1);
    let q = &result["qualifications"][0];
    let insurer = q["insurer_number"].as_str().unwrap();
    assert!(insurer.len() == 8 || insurer.len() == 6, "{insurer}");
    assert!(!q["insurer_name"].as_str().unwrap().is_empty());
    assert_eq!(q["copay_ratio"], "030");
    assert!(q["high_cost_limit_bracket"].as_str().is_some(), "{q}");
    assert_eq!(result["consents"]["medication"], true);
    assert_eq!(result["consents"]["surgery"], true);
    assert_eq!(result["consents"]["checkup"], false);
    assert!(run.stderr.contains("tries left: 3"), "{}", run.stderr);

    // The audit record is in the store, with the consents and the person.
    let id = result["confirmation_id"].as_str().unwrap();
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
    let rec = records
        .iter()
        .find(|r| r.confirmation_id == id)
        .expect("audit record of the confirmation");
    assert_eq!(rec.result_code, "RESULT_CODE_OK");
    assert_eq!(rec.consents, 1 | 8);
    assert_eq!(
        rec.person_id.as_deref(),
        w.card("valid").unwrap()["person_id"].as_str()
    );

    // The trace is the documented sequence and never carries the PIN.
    let trace = std::fs::read_to_string(&trace).unwrap();
    assert!(
        !trace.contains(&hex_ascii(&pin)),
        "PIN leaked into the trace"
    );
    let commands: Vec<&str> = trace.lines().filter(|l| l.starts_with("> ")).collect();
    assert_eq!(
        commands[0],
        "> 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01"
    );
    assert_eq!(commands[1], "> 00 A4 02 0C 02 00 0A");
    assert_eq!(commands[2], "> 00 B0 00 00 04");
    let sel_pin = commands
        .iter()
        .position(|c| *c == "> 00 A4 02 0C 02 00 18")
        .unwrap();
    assert!(commands[3..sel_pin]
        .iter()
        .all(|c| c.starts_with("> 00 B0 ")));
    assert_eq!(commands[sel_pin + 1], "> 00 20 00 80");
    assert_eq!(
        commands[sel_pin + 2],
        "> 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01"
    );
    assert_eq!(commands[sel_pin + 3], "> 00 A4 02 0C 02 00 18");
    assert_eq!(commands[sel_pin + 4], "> 00 20 00 80 04 <redacted 4 bytes>");
    assert_eq!(commands[sel_pin + 5], "> 00 A4 02 0C 02 00 17");
    assert!(commands[sel_pin + 6]
        .starts_with("> 80 2A 00 80 33 30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20 "));
    assert!(commands[sel_pin + 6].ends_with(" 00"));
    assert_eq!(commands.len(), sel_pin + 7);
}

fn hex_ascii(pin: &str) -> String {
    pin.bytes()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn wrong_pin_shows_and_decrements_tries_left() {
    let w = world();
    let r = rig();
    let (profile, pin) = w.private_card("valid", r.tmp.path()).unwrap();
    let _card = Card::attach(&profile, &r.pcscd.vpcd(), &[]).unwrap();
    let wrong = if pin == "0000" { "1111" } else { "0000" };
    let terminal = w.terminal("in-operation", 0).unwrap();

    let run = run_agent(&r.pcscd, &terminal, &r.service, &format!("{wrong}\n"), &[]).unwrap();
    assert_eq!(run.json["outcome"], "wrong-pin", "{run:?}");
    assert_eq!(run.json["tries_left"], 2);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("tries left: 2"), "{}", run.stderr);

    // The counter lives on the card: the next visit starts at 2, and a right PIN resets it.
    let run = run_agent(
        &r.pcscd,
        &terminal,
        &r.service,
        &format!("{wrong}\n{pin}\n"),
        &[],
    )
    .unwrap();
    assert!(run.stderr.contains("tries left: 2"), "{}", run.stderr);
    assert!(run.stderr.contains("tries left: 1"), "{}", run.stderr);
    assert_eq!(run.json["outcome"], "confirmed", "{run:?}");
    let run = run_agent(&r.pcscd, &terminal, &r.service, &format!("{pin}\n"), &[]).unwrap();
    assert!(run.stderr.contains("tries left: 3"), "{}", run.stderr);
    assert_eq!(run.json["outcome"], "confirmed", "{run:?}");
}

#[test]
fn three_wrong_pins_block_the_card_and_the_block_survives_a_restart() {
    let w = world();
    let r = rig();
    let (profile, pin) = w.private_card("valid", r.tmp.path()).unwrap();
    let wrong = if pin == "0000" { "1111" } else { "0000" };
    let terminal = w.terminal("in-operation", 0).unwrap();
    {
        let _card = Card::attach(&profile, &r.pcscd.vpcd(), &[]).unwrap();
        let run = run_agent(
            &r.pcscd,
            &terminal,
            &r.service,
            &format!("{wrong}\n{wrong}\n{wrong}\n"),
            &[],
        )
        .unwrap();
        assert_eq!(run.json["outcome"], "refused", "{run:?}");
        assert_eq!(code(&run), "RESULT_CODE_PIN_ATTEMPTS_EXHAUSTED");
        assert_eq!(run.code, Some(1));
    }
    // A new virtual-card process on the same profile: still blocked, even with the right PIN.
    r.pcscd.wait_until_empty().unwrap();
    let _card = Card::attach(&profile, &r.pcscd.vpcd(), &[]).unwrap();
    let run = run_agent(&r.pcscd, &terminal, &r.service, &format!("{pin}\n"), &[]).unwrap();
    assert_eq!(code(&run), "RESULT_CODE_PIN_ATTEMPTS_EXHAUSTED", "{run:?}");
    assert!(run.json["message"].as_str().unwrap().contains("locked"));
}

/// A face-only card (顔認証マイナンバーカード, card-0007): the agent reads the certificate,
/// learns from the empty VERIFY (6984) that the card has no PIN, and stops there: it prompts
/// for nothing, sends no PIN (the card's own trace holds no VERIFY with data and no signature)
/// and calls no service. `change-pin` likewise sends neither PIN to it.
#[test]
fn a_face_only_card_is_never_asked_for_a_pin() {
    let w = world();
    let r = rig();
    let (profile, pin) = w.private_card("face-only", r.tmp.path()).unwrap();
    assert!(pin.is_empty());
    let card_trace = r.tmp.path().join("card-trace.txt");
    let card = Card::attach(
        &profile,
        &r.pcscd.vpcd(),
        &["--trace", card_trace.to_str().unwrap()],
    )
    .unwrap();
    let run = run_agent(
        &r.pcscd,
        &w.terminal("in-operation", 0).unwrap(),
        &r.service,
        "1234\n",
        &[],
    )
    .unwrap();
    assert_eq!(run.json["outcome"], "refused", "{run:?}");
    assert_eq!(code(&run), "RESULT_CODE_PIN_NOT_SET", "{run:?}");
    assert_eq!(run.code, Some(1));
    let message = run.json["message"].as_str().unwrap();
    assert!(message.contains("顔認証マイナンバーカード"), "{message}");
    assert!(!run.stderr.contains("暗証番号を入力"), "{}", run.stderr);
    let out = run_change_pin(&r.pcscd, "1234\n5678\n", &[]).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("has no PIN"), "{stdout}");
    drop(card);
    let trace = std::fs::read_to_string(&card_trace).unwrap();
    let commands: Vec<&str> = trace.lines().filter(|l| l.starts_with("> ")).collect();
    // The certificate was read; the only VERIFYs are the empty counter queries, answered 6984.
    assert!(commands.contains(&"> 00 A4 02 0C 02 00 0A"), "{trace}");
    let verifies: Vec<&&str> = commands
        .iter()
        .filter(|c| c.starts_with("> 00 20"))
        .collect();
    assert_eq!(verifies, [&"> 00 20 00 80", &"> 00 20 00 80"], "{trace}");
    assert_eq!(trace.matches("< 69 84").count(), 2, "{trace}");
    assert!(
        !commands
            .iter()
            .any(|c| c.starts_with("> 80 2A") || c.starts_with("> 00 24")),
        "{trace}"
    );
}

fn refused_card(kind: &str, expected: &str) {
    let w = world();
    let r = rig();
    let (profile, pin) = w.private_card(kind, r.tmp.path()).unwrap();
    let _card = Card::attach(&profile, &r.pcscd.vpcd(), &[]).unwrap();
    let run = run_agent(
        &r.pcscd,
        &w.terminal("in-operation", 0).unwrap(),
        &r.service,
        &format!("{pin}\n"),
        &[],
    )
    .unwrap();
    assert_eq!(run.json["outcome"], "refused", "{run:?}");
    assert_eq!(code(&run), expected, "{run:?}");
    assert_eq!(run.code, Some(1));
}

#[test]
fn revoked_certificate_is_refused_as_revoked() {
    refused_card("revoked", "RESULT_CODE_CERTIFICATE_REVOKED");
}

#[test]
fn expired_certificate_is_refused_as_expired() {
    refused_card("expired", "RESULT_CODE_CERTIFICATE_EXPIRED");
}

#[test]
fn unregistered_card_is_refused_as_not_registered() {
    refused_card("unregistered", "RESULT_CODE_CARD_NOT_REGISTERED");
}

/// 健康保険証利用申込み at the reader: the unregistered card is refused, registered with the PIN
/// (a PURPOSE_REGISTER challenge signed by the card through pcscd), registering again changes
/// nothing, and the card then confirms. A private world: registration changes the store.
#[test]
fn an_unregistered_card_is_registered_with_its_pin_and_then_confirms() {
    let tmp = tempfile::tempdir().unwrap();
    let w = World::build(&tmp.path().join("world"), 6).unwrap();
    let pcscd = Pcscd::start().unwrap();
    let service = Service::start(&w.dir.join("service.toml")).unwrap();
    let (profile, pin) = w.private_card("unregistered", tmp.path()).unwrap();
    let _card = Card::attach(&profile, &pcscd.vpcd(), &[]).unwrap();
    let terminal = w.terminal("in-operation", 0).unwrap();
    let pins = format!("{pin}\n");

    let run = run_agent_json("confirm", &pcscd, &terminal, &service, &pins).unwrap();
    assert_eq!(code(&run), "RESULT_CODE_CARD_NOT_REGISTERED", "{run:?}");

    let run = run_agent_json("register", &pcscd, &terminal, &service, &pins).unwrap();
    assert_eq!(run.json["outcome"], "registered", "{run:?}");
    assert_eq!(run.json["newly_registered"], true, "{run:?}");
    assert_eq!(run.code, Some(0));

    let run = run_agent_json("register", &pcscd, &terminal, &service, &pins).unwrap();
    assert_eq!(run.json["outcome"], "registered", "{run:?}");
    assert_eq!(run.json["newly_registered"], false, "idempotent: {run:?}");

    let run = run_agent_json("confirm", &pcscd, &terminal, &service, &pins).unwrap();
    assert_eq!(run.json["outcome"], "confirmed", "{run:?}");
    assert_eq!(code(&run), "RESULT_CODE_OK", "{run:?}");

    // Both registrations and the confirmations are in the audit log, with their purposes.
    let store =
        onshi_confirm_service::store::SqliteStore::open(&w.dir.join("store/onshi.sqlite")).unwrap();
    let person = w.card("unregistered").unwrap()["person_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let records = onshi_confirm_service::store::Store::query_audit(
        &store,
        &onshi_confirm_service::audit::AuditQuery {
            person_id: Some(person),
            limit: 100,
            ..Default::default()
        },
    )
    .unwrap();
    let purposes: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r.purpose.as_str(), r.result_code.as_str()))
        .collect();
    assert_eq!(
        purposes,
        [
            ("confirm", "RESULT_CODE_CARD_NOT_REGISTERED"),
            ("register", "RESULT_CODE_OK"),
            ("register", "RESULT_CODE_OK"),
            ("confirm", "RESULT_CODE_OK"),
        ]
    );
}

/// A face-only card whose holder is not registered (card-0008), from the command line: PIN
/// mode answers RESULT_CODE_PIN_NOT_SET and points to face mode; `register --face` registers
/// it (RegisterByReader, attested with the terminal's device key) and `confirm --face` then
/// confirms it; the visual check works the same way and names the staff member. A card with
/// a PIN is not registered by the reader. A private world: registration changes the store.
#[test]
fn a_face_only_card_is_registered_by_face_from_the_command_line_and_then_confirms() {
    let tmp = tempfile::tempdir().unwrap();
    let w = World::build(&tmp.path().join("world"), 8).unwrap();
    let pcscd = Pcscd::start().unwrap();
    let service = Service::start(&w.dir.join("service.toml")).unwrap();
    let (profile, pin) = w
        .private_card("face-only-unregistered", tmp.path())
        .unwrap();
    assert!(pin.is_empty());
    let card = Card::attach(&profile, &pcscd.vpcd(), &[]).unwrap();
    let terminal = w.terminal("in-operation", 0).unwrap();
    let face = ["--face"];
    let visual = ["--visual-check", "--staff-id", "sato.k"];

    // PIN mode: a clear refusal, no failure.
    let run = run_agent_json("register", &pcscd, &terminal, &service, "1234\n").unwrap();
    assert_eq!(run.json["outcome"], "refused", "{run:?}");
    assert_eq!(code(&run), "RESULT_CODE_PIN_NOT_SET", "{run:?}");
    assert_eq!(run.code, Some(1));
    let message = run.json["message"].as_str().unwrap();
    assert!(message.contains("register --face"), "{message}");

    let run = run_agent_by_reader("confirm", &pcscd, &terminal, &service, &face).unwrap();
    assert_eq!(code(&run), "RESULT_CODE_CARD_NOT_REGISTERED", "{run:?}");
    assert_eq!(run.code, Some(1));

    let run = run_agent_by_reader("register", &pcscd, &terminal, &service, &face).unwrap();
    assert_eq!(run.json["outcome"], "registered", "{run:?}");
    assert_eq!(run.json["newly_registered"], true, "{run:?}");
    assert_eq!(run.code, Some(0));
    assert!(run.stderr.contains("face match: score"), "{}", run.stderr);

    let run = run_agent_by_reader("confirm", &pcscd, &terminal, &service, &face).unwrap();
    assert_eq!(run.json["outcome"], "confirmed", "{run:?}");
    assert_eq!(code(&run), "RESULT_CODE_OK", "{run:?}");
    assert_eq!(run.json["result"]["validity"], 1, "{run:?}");
    assert_eq!(
        run.json["result"]["insurance_document"]["kind"], "DOCUMENT_KIND_SHIKAKU_KAKUNINSHO",
        "the holder's 資格確認書, as recorded: {run:?}"
    );

    // The visual check: registering again changes nothing; the confirmation names the staff.
    let run = run_agent_by_reader("register", &pcscd, &terminal, &service, &visual).unwrap();
    assert_eq!(run.json["outcome"], "registered", "{run:?}");
    assert_eq!(run.json["newly_registered"], false, "idempotent: {run:?}");
    let run = run_agent_by_reader("confirm", &pcscd, &terminal, &service, &visual).unwrap();
    assert_eq!(code(&run), "RESULT_CODE_OK", "{run:?}");

    let store =
        onshi_confirm_service::store::SqliteStore::open(&w.dir.join("store/onshi.sqlite")).unwrap();
    let person = w.card("face-only-unregistered").unwrap()["person_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let records = onshi_confirm_service::store::Store::query_audit(
        &store,
        &onshi_confirm_service::audit::AuditQuery {
            person_id: Some(person),
            limit: 100,
            ..Default::default()
        },
    )
    .unwrap();
    let seen: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| {
            (
                r.method.as_str(),
                r.purpose.as_str(),
                r.result_code.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("face", "confirm", "RESULT_CODE_CARD_NOT_REGISTERED"),
            ("face", "register", "RESULT_CODE_OK"),
            ("face", "confirm", "RESULT_CODE_OK"),
            ("visual:sato.k", "register", "RESULT_CODE_OK"),
            ("visual:sato.k", "confirm", "RESULT_CODE_OK"),
        ]
    );

    // A card with a PIN is registered with it, never by the reader.
    drop(card);
    pcscd.wait_until_empty().unwrap();
    let (profile, _) = w.private_card("unregistered", tmp.path()).unwrap();
    let _card = Card::attach(&profile, &pcscd.vpcd(), &[]).unwrap();
    let run = run_agent_by_reader("register", &pcscd, &terminal, &service, &face).unwrap();
    assert_eq!(run.json["outcome"], "error", "{run:?}");
    assert!(
        run.json["message"].as_str().unwrap().contains("has a PIN"),
        "{run:?}"
    );
}

#[test]
fn card_removed_mid_read_gives_a_clear_error() {
    let w = world();
    let r = rig();
    let (profile, pin) = w.private_card("valid", r.tmp.path()).unwrap();
    // SELECT AP, SELECT EF, READ header, then the card is pulled out during the 4th APDU.
    let _card = Card::attach(&profile, &r.pcscd.vpcd(), &["--remove-after-apdus", "4"]).unwrap();
    let run = run_agent(
        &r.pcscd,
        &w.terminal("in-operation", 0).unwrap(),
        &r.service,
        &format!("{pin}\n"),
        &[],
    )
    .unwrap();
    assert_eq!(run.json["outcome"], "error", "{run:?}");
    assert_eq!(run.code, Some(3));
    let message = run.json["message"].as_str().unwrap();
    assert!(message.contains("removed"), "{message}");
    assert!(message.contains("place the card again"), "{message}");
}

#[test]
fn card_survives_a_pcscd_restart() {
    let w = world();
    let mut r = rig();
    let (profile, pin) = w.private_card("valid", r.tmp.path()).unwrap();
    let _card = Card::attach(&profile, &r.pcscd.vpcd(), &[]).unwrap();
    r.pcscd.restart().unwrap();
    let run = run_agent(
        &r.pcscd,
        &w.terminal("in-operation", 0).unwrap(),
        &r.service,
        &format!("{pin}\n"),
        &[],
    )
    .unwrap();
    assert_eq!(run.json["outcome"], "confirmed", "{run:?}");
}

/// At a terminal (a pty, through util-linux's `script`), a malformed PIN is said and asked
/// again; it never reaches the card (no try spent), and the right PIN then confirms.
#[test]
fn a_malformed_pin_at_the_terminal_is_asked_again_and_costs_no_try() {
    use std::io::{Read as _, Write as _};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};
    let w = world();
    let r = rig();
    let (profile, pin) = w.private_card("valid", r.tmp.path()).unwrap();
    let _card = Card::attach(&profile, &r.pcscd.vpcd(), &[]).unwrap();
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let command = format!(
        "{} confirm --wait 20 --config {} --service {}",
        quote(onshi_e2e::bin("reader-agent").unwrap().to_str().unwrap()),
        quote(w.terminal("in-operation", 0).unwrap().to_str().unwrap()),
        quote(&r.service.url()),
    );
    let mut child = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("PCSCLITE_CSOCK_NAME", r.pcscd.socket())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) from util-linux");
    let seen = Arc::new(Mutex::new(String::new()));
    let mut out = child.stdout.take().unwrap();
    let sink = Arc::clone(&seen);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let wait_for = |what: &str, count: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.lock().unwrap().matches(what).count() < count {
            assert!(
                Instant::now() < deadline,
                "no {what:?} (x{count}) in {:?}",
                seen.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let mut stdin = child.stdin.take().unwrap();
    wait_for("PIN: ", 1);
    stdin.write_all(b"12a4\n").unwrap();
    wait_for("try again", 1);
    wait_for("PIN: ", 2);
    stdin.write_all(format!("{pin}\n").as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "{:?}", seen.lock().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(stdin);
    reader.join().unwrap();
    let transcript = seen.lock().unwrap().clone();
    assert_eq!(status.code(), Some(0), "{transcript}");
    assert!(transcript.contains("4桁"), "{transcript}");
    // The card was asked once, with the right PIN: all three tries are left.
    assert!(transcript.contains("tries left: 3"), "{transcript}");
    // No echo: the PIN typed at the prompt is not in the transcript.
    assert!(!transcript.contains(&pin), "{transcript}");
}

/// The certificate warnings as staff read them from `reader-agent confirm` through pcscd: the
/// grace card (card-0013 of a 14-card world) in text, with the warning's name, its message, the
/// certificate's notAfter, the last instant of grace and the as-of date, and the holder's
/// document; the expiring card (card-0014) in JSON with the renewal warning and its notAfter.
#[test]
fn the_agent_shows_the_certificate_warnings_with_their_message_and_dates() {
    let tmp = tempfile::tempdir().unwrap();
    let w = World::build(&tmp.path().join("world"), 14).unwrap();
    let pcscd = Pcscd::start().unwrap();
    let service = Service::start(&w.dir.join("service.toml")).unwrap();
    let terminal = w.terminal("in-operation", 0).unwrap();

    let (profile, pin) = w.private_card("grace", tmp.path()).unwrap();
    let card = Card::attach(&profile, &pcscd.vpcd(), &[]).unwrap();
    let out =
        onshi_e2e::run_agent_raw(&pcscd, &terminal, &service, &format!("{pin}\n"), &[]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for expected in [
        "警告 warning        : WARNING_CERTIFICATE_IN_GRACE",
        "証明書期限 notAfter :",
        "猶予期限 grace until:",
        "照会日 as of        :",
        "書類 document       : 資格情報のお知らせ",
    ] {
        assert!(text.contains(expected), "{expected:?} missing: {text}");
    }
    let warning_line = text
        .lines()
        .skip_while(|l| !l.starts_with("警告 warning"))
        .nth(1)
        .unwrap_or("");
    assert!(warning_line.trim().len() > 10, "the message: {text}");
    drop(card);
    pcscd.wait_until_empty().unwrap();

    let (profile, pin) = w.private_card("expiring", tmp.path()).unwrap();
    let _card = Card::attach(&profile, &pcscd.vpcd(), &[]).unwrap();
    let run = run_agent(&pcscd, &terminal, &service, &format!("{pin}\n"), &[]).unwrap();
    assert_eq!(run.code, Some(0), "{run:?}");
    let result = &run.json["result"];
    assert_eq!(result["warning"], "WARNING_CERTIFICATE_EXPIRING", "{run:?}");
    assert!(!result["warning_message"].as_str().unwrap().is_empty());
    assert!(
        result["certificate_not_after"].as_str().is_some(),
        "{run:?}"
    );
    assert!(result.get("grace_until").is_none(), "{run:?}");
    assert_eq!(result["as_of_date"].as_str().unwrap().len(), 8, "{run:?}");
}

/// The reader agent's `confirm --consent all --prescription paper` at the clinic: the card
/// signs a 包括同意, the service records every kind and echoes the choice, the staff view says
/// both; `all` beside another kind is a usage error before the card is touched.
#[test]
fn the_agent_sends_a_comprehensive_consent_and_the_prescription_choice() {
    let w = world();
    let r = rig();
    let (profile, pin) = w.private_card("valid", r.tmp.path()).unwrap();
    let _card = Card::attach(&profile, &r.pcscd.vpcd(), &[]).unwrap();
    // The clinic's terminal: the third in operation.
    let clinic = w.terminal("in-operation", 2).unwrap();
    let run = run_agent(
        &r.pcscd,
        &clinic,
        &r.service,
        &format!("{pin}\n"),
        &["--consent", "all", "--prescription", "paper"],
    )
    .unwrap();
    assert_eq!(run.code, Some(0), "{run:?}");
    let result = &run.json["result"];
    assert_eq!(result["prescription"], "paper", "{run:?}");
    for kind in [
        "medication",
        "checkup",
        "clinical",
        "surgery",
        "comprehensive",
    ] {
        assert_eq!(result["consents"][kind], true, "{kind}");
    }
    let id = result["confirmation_id"].as_str().unwrap();
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
    let rec = records.iter().find(|r| r.confirmation_id == id).unwrap();
    assert_eq!(rec.consents, 0x1f, "包括同意 in the audit record");

    let bad = onshi_e2e::run_agent_raw(
        &r.pcscd,
        &clinic,
        &r.service,
        &format!("{pin}\n"),
        &["--consent", "all,medication"],
    )
    .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("give it alone"), "{stderr}");
}
