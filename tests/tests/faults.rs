//! Scripted card faults (docs/virtual-card.md) end to end: each fault is armed on a virtual
//! card attached to a private pcscd, the reader agent runs a confirmation, and the test checks
//! what the agent reports — a specific message, never a hang or a panic.
//! Needs root (the private pcscd) and the binaries built.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::time::{Duration, Instant};

use onshi_e2e::{run_agent, run_change_pin, AgentRun, Card, Pcscd, Service, World};

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "faults-world", 6)
}

struct Rig {
    pcscd: Pcscd,
    service: Service,
    tmp: tempfile::TempDir,
    profile: PathBuf,
    pin: String,
    card: Option<Card>,
}

/// A private pcscd, the service, and the valid card attached with these extra arguments.
fn rig(card_args: &[&str]) -> Rig {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let (profile, pin) = w.private_card("valid", tmp.path()).unwrap();
    let pcscd = Pcscd::start().expect("private pcscd");
    let card = Card::attach(&profile, &pcscd.vpcd(), card_args).unwrap();
    Rig {
        pcscd,
        service: Service::start(&w.dir.join("service.toml")).expect("confirm-service"),
        tmp,
        profile,
        pin,
        card: Some(card),
    }
}

/// Like [`rig`], with the faults written into the card profile's `faults` list.
fn rig_with_profile_faults(faults: &[&str]) -> Rig {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let (profile, pin) = w.private_card("valid", tmp.path()).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&profile).unwrap()).unwrap();
    json["faults"] = serde_json::json!(faults);
    std::fs::write(&profile, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let pcscd = Pcscd::start().expect("private pcscd");
    let card = Card::attach(&profile, &pcscd.vpcd(), &[]).unwrap();
    Rig {
        pcscd,
        service: Service::start(&w.dir.join("service.toml")).expect("confirm-service"),
        tmp,
        profile,
        pin,
        card: Some(card),
    }
}

impl Rig {
    fn confirm(&self, pins: &str, extra: &[&str]) -> AgentRun {
        run_agent(
            &self.pcscd,
            &world().terminal("in-operation", 0).unwrap(),
            &self.service,
            pins,
            extra,
        )
        .unwrap()
    }

    fn state(&self) -> serde_json::Value {
        let path = self.profile.with_file_name(format!(
            "{}.state.json",
            self.profile.file_stem().unwrap().to_string_lossy()
        ));
        // No state file: a fresh card.
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|_| r#"{"user_auth_pin_tries_left":3}"#.into());
        serde_json::from_str(&text).unwrap()
    }
}

fn message(run: &AgentRun) -> String {
    run.json["message"].as_str().unwrap_or("").to_owned()
}

fn assert_error(run: &AgentRun, needles: &[&str]) {
    assert_eq!(run.code, Some(3), "{run:?}");
    assert_eq!(run.json["outcome"], "error", "{run:?}");
    let m = message(run);
    for n in needles {
        assert!(m.contains(n), "{n:?} not in {m:?}");
    }
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn card_removed_in_the_middle_of_reading_the_certificate() {
    let r = rig(&["--fault", "remove-at-read=3"]);
    let run = r.confirm(&format!("{}\n", r.pin), &[]);
    assert_error(&run, &["reading the card", "removed"]);
}

#[test]
fn card_removed_before_the_signature() {
    let r = rig(&["--fault", "remove-before-sign"]);
    let run = r.confirm(&format!("{}\n", r.pin), &[]);
    assert_error(&run, &["verifying the PIN and signing", "removed"]);
    // The PIN was verified before the card vanished: no try was spent.
    assert_eq!(r.state()["user_auth_pin_tries_left"], 3);
}

#[test]
fn a_slow_card_is_slow_but_confirmed() {
    let r = rig(&["--fault", "latency=150"]);
    let started = Instant::now();
    let run = r.confirm(&format!("{}\n", r.pin), &[]);
    assert_eq!(run.json["outcome"], "confirmed", "{run:?}");
    // Phase A is 10 APDUs for a ~1.1 KB certificate: at least 1.5 s of card time.
    let line = run
        .stderr
        .lines()
        .find(|l| l.starts_with("timing:"))
        .unwrap();
    let read_ms: f64 = line
        .split("card read ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(read_ms >= 1300.0, "{line}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_card_slower_than_the_agent_allows_times_out() {
    let r = rig(&["--fault", "latency=3000"]);
    let started = Instant::now();
    let run = r.confirm(&format!("{}\n", r.pin), &["--card-timeout", "1"]);
    assert_error(&run, &["reading the card", "did not answer within 1 s"]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_mute_card_never_hangs_the_agent() {
    let mut r = rig(&["--fault", "mute-at-apdu=3"]);
    let started = Instant::now();
    let run = r.confirm(&format!("{}\n", r.pin), &["--card-timeout", "2"]);
    assert_error(&run, &["reading the card", "did not answer within 2 s"]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // Unplug the mute card before pcscd is stopped, so the daemon is not left waiting.
    drop(r.card.take());
}

#[test]
fn a_short_chunk_is_a_malformed_response() {
    let r = rig(&["--fault", "short-read=2"]);
    let run = r.confirm(&format!("{}\n", r.pin), &[]);
    assert_error(
        &run,
        &["reading the card", "malformed response to READ BINARY"],
    );
}

#[test]
fn a_long_chunk_is_a_malformed_response() {
    let r = rig(&["--fault", "long-read=2"]);
    let run = r.confirm(&format!("{}\n", r.pin), &[]);
    assert_error(
        &run,
        &["reading the card", "malformed response to READ BINARY"],
    );
}

#[test]
fn a_bad_status_word_is_reported_with_the_command() {
    let r = rig(&["--fault", "bad-sw=6F00"]);
    let run = r.confirm(&format!("{}\n", r.pin), &[]);
    assert_error(&run, &["reading the card", "READ BINARY answered", "6F"]);
}

#[test]
fn a_certificate_that_is_not_der_is_named_as_such() {
    let r = rig(&["--fault", "cert-not-der"]);
    let run = r.confirm(&format!("{}\n", r.pin), &[]);
    assert_error(&run, &["the card's certificate is not valid DER"]);
    // Found before the PIN was asked for: nothing was verified, nothing spent.
    assert!(
        !run.stderr.contains("enter the 4-digit PIN"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_wrong_atr_is_noted_and_the_jpki_application_still_used() {
    let r = rig(&["--fault", "atr=3B8A800150900000000000000000"]);
    let run = r.confirm(&format!("{}\n", r.pin), &[]);
    assert_eq!(run.json["outcome"], "confirmed", "{run:?}");
    assert!(
        run.stderr
            .contains("note: the card's ATR 3B 8A 80 01 50 90 00 00 00 00 00 00 00 00 is not a My Number card's"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_blocked_pin_is_refused_before_any_pin_is_asked() {
    // Armed through the profile's `faults` list rather than the command line.
    let r = rig_with_profile_faults(&["pin-blocked"]);
    let run = r.confirm(&format!("{}\n", r.pin), &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert_eq!(
        run.json["result_code"],
        "RESULT_CODE_PIN_ATTEMPTS_EXHAUSTED"
    );
    assert_eq!(run.json["tries_left"], 0);
    assert!(message(&run).contains("locked"), "{run:?}");
    assert_eq!(r.state()["user_auth_pin_tries_left"], 0);
}

#[test]
fn the_pin_can_be_changed_and_only_the_new_one_works() {
    let r = rig(&[]);
    let new_pin = if r.pin == "2580" { "2581" } else { "2580" };
    // A wrong current PIN changes nothing and costs a try.
    let wrong = if r.pin == "0000" { "0001" } else { "0000" };
    let out = run_change_pin(&r.pcscd, &format!("{wrong}\n{new_pin}\n"), &[]).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("tries left: 2"), "{stdout}");
    let out = run_change_pin(&r.pcscd, &format!("{}\n{new_pin}\n", r.pin), &[]).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("the PIN was changed"), "{stdout}");
    // Saved with the card's state, and the counter is full again.
    assert_eq!(r.state()["user_auth_pin"], new_pin);
    assert_eq!(r.state()["user_auth_pin_tries_left"], 3);
    // The old PIN is now wrong; the new one confirms.
    let trace = r.tmp.path().join("trace.txt");
    let run = r.confirm(
        &format!("{}\n{new_pin}\n", r.pin),
        &["--trace", trace.to_str().unwrap()],
    );
    assert_eq!(run.json["outcome"], "confirmed", "{run:?}");
    assert!(
        run.stderr.contains("wrong PIN) — tries left: 2"),
        "{}",
        run.stderr
    );
    let trace = std::fs::read_to_string(trace).unwrap();
    assert!(
        !trace.contains(&hex_digits(new_pin)),
        "PIN in the trace: {trace}"
    );
}

fn hex_digits(pin: &str) -> String {
    pin.bytes()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}
