//! Many cards, one process: `virtual-card serve` over two vpcd port pairs (four slots) —
//! two private pcscds, one per reception terminal, since vpcd's driver cannot keep two
//! readers of one pcscd apart — driven with `virtual-card ctl` the way a developer scripts a
//! morning of patients, and the reader agent confirming whoever is in the slot it is pointed
//! at.
//! Needs root (the private pcscd) and the binaries built.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;

use onshi_e2e::{run_agent, AgentRun, Pcscd, Rack, Service, World};

fn world() -> World {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("many-cards-world");
    World::build(&dir, 6).expect("build the test world")
}

fn confirm(w: &World, pcscd: &Pcscd, service: &Service, slot: u16, pin: &str) -> AgentRun {
    run_agent(
        pcscd,
        &w.terminal("in-operation", 0).unwrap(),
        service,
        &format!("{pin}\n"),
        &["--reader", &Pcscd::slot_reader(slot)],
    )
    .unwrap()
}

#[test]
fn patients_insert_and_remove_cards_in_several_slots_of_several_readers() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let pcscd = Pcscd::start().expect("private pcscd");
    let second = Pcscd::start().expect("second private pcscd");
    let service = Service::start(&w.dir.join("service.toml")).expect("confirm-service");
    let rack = Rack::start(&[&pcscd, &second]).unwrap();

    let (a, pin_a) = w.private_card("valid", tmp.path()).unwrap();
    let (b, pin_b) = w.private_card("multiple", tmp.path()).unwrap();
    let (c, pin_c) = w.private_card("lost", tmp.path()).unwrap();

    let (code, status) = rack.ctl(&["status"]).unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(status.matches("empty").count(), 4, "{status}");

    // Patient A inserts into slot 0 and is confirmed (validity 1).
    let (code, out) = rack.ctl(&["insert", "0", a.to_str().unwrap()]).unwrap();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.starts_with("ok inserted card-0001 into slot 0"),
        "{out}"
    );
    pcscd.wait_until_present(&Pcscd::slot_reader(0)).unwrap();
    let run = confirm(&w, &pcscd, &service, 0, &pin_a);
    assert_eq!(run.json["outcome"], "confirmed", "{run:?}");
    assert_eq!(run.json["result"]["validity"], 1);

    // Inserting into an occupied slot is refused.
    let (code, out) = rack.ctl(&["insert", "0", b.to_str().unwrap()]).unwrap();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("remove it first"), "{out}");

    // A removes; B inserts into the same slot and is confirmed as B (validity 5).
    let (code, out) = rack.ctl(&["remove", "0"]).unwrap();
    assert_eq!(code, Some(0), "{out}");
    pcscd
        .wait_until_reader_empty(&Pcscd::slot_reader(0))
        .unwrap();
    let (code, out) = rack.ctl(&["insert", "0", b.to_str().unwrap()]).unwrap();
    assert_eq!(code, Some(0), "{out}");
    pcscd.wait_until_present(&Pcscd::slot_reader(0)).unwrap();
    let run = confirm(&w, &pcscd, &service, 0, &pin_b);
    assert_eq!(run.json["outcome"], "confirmed", "{run:?}");
    assert_eq!(run.json["result"]["validity"], 5);

    // A fault armed on the card in the reader, at run time: B's next read pulls it out.
    let (code, out) = rack.ctl(&["arm", "0", "remove-at-read=2"]).unwrap();
    assert_eq!(code, Some(0), "{out}");
    let run = confirm(&w, &pcscd, &service, 0, &pin_b);
    assert_eq!(run.json["outcome"], "error", "{run:?}");
    let message = run.json["message"].as_str().unwrap();
    assert!(message.starts_with("reading the card: "), "{message}");
    assert!(message.contains("removed"), "{message}");
    let (_, status) = rack.ctl(&["status"]).unwrap();
    assert!(
        status.contains("empty (card-0006 pulled out by a fault)"),
        "{status}"
    );
    // Content faults cannot be armed on a running card.
    let (code, out) = rack.ctl(&["arm", "0", "pin-blocked"]).unwrap();
    assert_eq!(code, Some(1), "{out}");
    // B inserts again (the slot is free once the card was pulled out).
    let (code, out) = rack.ctl(&["insert", "0", b.to_str().unwrap()]).unwrap();
    assert_eq!(code, Some(0), "{out}");

    // Meanwhile patient C at the second terminal's second slot (slot 3), with a slow card.
    let (code, out) = rack
        .ctl(&["insert", "3", c.to_str().unwrap(), "latency=20"])
        .unwrap();
    assert_eq!(code, Some(0), "{out}");
    second.wait_until_present(&Pcscd::slot_reader(1)).unwrap();
    // The first terminal's slot 1 stays empty: the slots are independent.
    pcscd
        .wait_until_reader_empty(&Pcscd::slot_reader(1))
        .unwrap();
    let run = confirm(&w, &second, &service, 1, &pin_c);
    assert_eq!(run.json["outcome"], "confirmed", "{run:?}");
    assert_eq!(run.json["result"]["validity"], 2);

    let (_, status) = rack.ctl(&["status"]).unwrap();
    assert!(status.contains("0 127.0.0.1:"), "{status}");
    assert!(status.contains("card-0006"), "{status}");
    assert!(status.contains("card-0005"), "{status}");
    assert_eq!(status.matches("empty").count(), 2, "{status}");

    // Bad commands are errors with a reason, and the rack keeps serving.
    let (code, out) = rack.ctl(&["remove", "9"]).unwrap();
    assert_eq!(code, Some(1));
    assert!(out.contains("no slot"), "{out}");
    let (code, out) = rack.ctl(&["shutdown"]).unwrap();
    assert_eq!(code, Some(0), "{out}");
    pcscd
        .wait_until_reader_empty(&Pcscd::slot_reader(0))
        .unwrap();
    second
        .wait_until_reader_empty(&Pcscd::slot_reader(1))
        .unwrap();
}
