//! Every client reading pattern of jpki-card.md §4 through the real pcscd: the reader agent's
//! `read-certificate --pattern` reads EF 000A the way each kind of client does, the virtual
//! card's own trace shows the exact READ BINARY commands that arrived, and every pattern
//! yields exactly the card's certificate. (The same patterns against the card state machine
//! directly: virtual-card/tests/host_flows.rs.)
//! Needs root (the private pcscd) and the binaries built.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use onshi_e2e::{bin, run_bounded, Card, Pcscd, World};

#[test]
fn every_reading_pattern_reads_the_certificate_through_pcscd() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("read-patterns-world");
    let w = World::build(&dir, 6).expect("build the test world");
    let tmp = tempfile::tempdir().unwrap();
    let (profile, _) = w.private_card("valid", tmp.path()).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&profile).unwrap()).unwrap();
    let der = pem::parse(json["user_auth_certificate"].as_str().unwrap())
        .unwrap()
        .into_contents();
    let total = der.len();
    assert!(total > 1000 && (total - 4) % 256 != 0, "{total}");
    let card_trace = tmp.path().join("card.trace");
    let pcscd = Pcscd::start().expect("private pcscd");
    let _card = Card::attach(
        &profile,
        &pcscd.vpcd(),
        &["--trace", card_trace.to_str().unwrap()],
    )
    .unwrap();
    pcscd.wait_until_present("Virtual PCD 00 00").unwrap();

    let mut seen = 0;
    for pattern in ["canonical", "header7", "chunks255", "sfi"] {
        let out = tmp.path().join(format!("{pattern}.der"));
        let mut c = Command::new(bin("reader-agent").unwrap());
        c.args([
            "read-certificate",
            "--wait",
            "10",
            "--pattern",
            pattern,
            "--out",
        ])
        .arg(&out)
        .env("PCSCLITE_CSOCK_NAME", pcscd.socket());
        let o = run_bounded(c, Duration::from_secs(30)).unwrap();
        assert!(
            o.status.success(),
            "{pattern}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(std::fs::read(&out).unwrap(), der, "{pattern}");
        let text = std::fs::read_to_string(&card_trace).unwrap();
        let reads: Vec<&str> = text[seen..]
            .lines()
            .filter(|l| l.starts_with("> 00 B0"))
            .collect();
        seen = text.len();
        let last_le = format!("{:02X}", (total - 4) % 256);
        match pattern {
            "canonical" => {
                assert_eq!(reads[0], "> 00 B0 00 00 04");
                assert_eq!(reads[1], "> 00 B0 00 04 00");
                assert!(reads.last().unwrap().ends_with(&last_le), "{reads:?}");
                assert_eq!(reads.len(), 1 + (total - 4).div_ceil(256));
            }
            "header7" => {
                assert_eq!(reads[0], "> 00 B0 00 00 07");
                assert_eq!(reads[1], "> 00 B0 00 07 00");
                let last = format!("{:02X}", (total - 7) % 256);
                assert!(reads.last().unwrap().ends_with(&last), "{reads:?}");
            }
            "chunks255" => {
                assert!(reads.iter().all(|r| r.ends_with(" FF")), "{reads:?}");
                assert_eq!(reads[1], "> 00 B0 00 FF FF");
                // The 2048-byte EF is read to its end: 8 full chunks and a short one.
                assert_eq!(reads.len(), 9, "{reads:?}");
            }
            "sfi" => {
                assert_eq!(reads[0], "> 00 B0 8A 00 04");
                assert_eq!(reads[1], "> 00 B0 00 04 00");
            }
            _ => unreachable!(),
        }
    }
}
