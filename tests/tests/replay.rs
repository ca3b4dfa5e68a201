//! Record and replay: the reader agent records a session's APDU trace (PINs redacted), and
//! `virtual-card replay` plays it back as a card through a private pcscd, so the agent meets
//! the same card-side behaviour anywhere — without the card, its keys or its PIN.
//!
//! What replay can honestly reproduce: every card answer (the certificate, the tries left, a
//! wrong PIN, a card pulled out mid-read). What it cannot: a valid signature, since the
//! challenge differs on every run and the recording holds the signature of the old one; the
//! service refuses it as SIGNATURE_INVALID, and the test checks exactly that.
//! Needs root (the private pcscd) and the binaries built.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::time::Duration;

use onshi_e2e::{run_agent, AgentRun, Card, Pcscd, Service, World};

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "replay-world", 6)
}

fn agent(pcscd: &Pcscd, service: &Service, pin: &str, trace: &Path) -> AgentRun {
    run_agent(
        pcscd,
        &world().terminal("in-operation", 0).unwrap(),
        service,
        &format!("{pin}\n"),
        &["--trace", trace.to_str().unwrap()],
    )
    .unwrap()
}

/// The lines of a trace up to phase B (the card's part that does not depend on the challenge).
fn phase_a(trace: &str) -> Vec<&str> {
    trace
        .lines()
        .take_while(|l| !l.starts_with("# phase B"))
        .collect()
}

#[test]
fn a_recorded_confirmation_replays_the_same_card_to_the_agent() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let service = Service::start(&w.dir.join("service.toml")).expect("confirm-service");
    let (profile, pin) = w.private_card("valid", tmp.path()).unwrap();

    // Record with the real (virtual) card.
    let recorded = tmp.path().join("recorded.trace");
    {
        let pcscd = Pcscd::start().expect("private pcscd");
        let _card = Card::attach(&profile, &pcscd.vpcd(), &[]).unwrap();
        let run = agent(&pcscd, &service, &pin, &recorded);
        assert_eq!(run.json["outcome"], "confirmed", "{run:?}");
    }
    let recorded_text = std::fs::read_to_string(&recorded).unwrap();
    assert!(
        recorded_text.starts_with("# atr 3B E0 00 FF 81 31 FE 45 14"),
        "{recorded_text}"
    );
    assert!(recorded_text.contains("<redacted 4 bytes>"));
    let pin_hex: Vec<String> = pin.bytes().map(|b| format!("{b:02X}")).collect();
    assert!(
        !recorded_text.contains(&format!("04 {}", pin_hex.join(" "))),
        "PIN in the trace"
    );

    // Replay elsewhere: a new pcscd, no profile, no key — and a PIN the card never knew.
    let pcscd = Pcscd::start().expect("second private pcscd");
    let card = Card::replay(&recorded, &pcscd.vpcd()).unwrap();
    let replayed = tmp.path().join("replayed.trace");
    let other_pin = if pin == "0000" { "0001" } else { "0000" };
    let run = agent(&pcscd, &service, other_pin, &replayed);
    // The card side is the same: the same certificate read the same way, the same tries left,
    // the PIN accepted as recorded ...
    let replayed_text = std::fs::read_to_string(&replayed).unwrap();
    assert_eq!(phase_a(&replayed_text), phase_a(&recorded_text));
    assert!(run.stderr.contains("tries left: 3"), "{}", run.stderr);
    // ... and the recorded signature, which belongs to the old challenge: the service says so.
    assert_eq!(run.json["outcome"], "refused", "{run:?}");
    assert_eq!(
        run.json["result_code"], "RESULT_CODE_SIGNATURE_INVALID",
        "{run:?}"
    );
    card.wait_line(
        "virtual-card: replay reached the end of the trace",
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(
        !card.printed().iter().any(|l| l.contains("diverged")),
        "the agent's second session diverged from the recording"
    );
}

#[test]
fn a_card_pulled_out_mid_read_is_pulled_out_again_on_replay() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let service = Service::start(&w.dir.join("service.toml")).expect("confirm-service");
    let (profile, pin) = w.private_card("valid", tmp.path()).unwrap();
    let recorded = tmp.path().join("recorded.trace");
    let first = {
        let pcscd = Pcscd::start().expect("private pcscd");
        let _card =
            Card::attach(&profile, &pcscd.vpcd(), &["--fault", "remove-at-read=3"]).unwrap();
        agent(&pcscd, &service, &pin, &recorded)
    };
    assert_eq!(first.json["outcome"], "error", "{first:?}");
    let pcscd = Pcscd::start().expect("second private pcscd");
    let _card = Card::replay(&recorded, &pcscd.vpcd()).unwrap();
    let again = agent(&pcscd, &service, &pin, &tmp.path().join("replayed.trace"));
    assert_eq!(again.json["outcome"], "error", "{again:?}");
    assert_eq!(again.json["message"], first.json["message"]);
}
