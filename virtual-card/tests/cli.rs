//! The `virtual-card` binary as tests and scripts use it: `info`, `attach` against a listener
//! playing vpcd (readiness line, trace, state file, removal fault) and its exit codes.

// Test helpers outside #[test] functions unwrap too: a failure is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{profile, temp_dir, PIN, PIN_HEX};
use onshi_virtual_card::{CardProfile, CardState};

const BIN: &str = env!("CARGO_BIN_EXE_virtual-card");
const WAIT: Duration = Duration::from_secs(20);

/// Kills the child if a test fails before it exits on its own.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_profile(dir: &Path, name: &str) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.json"));
    profile(name).save(&path).unwrap();
    path
}

#[test]
fn info_prints_the_card_but_never_the_pin() {
    let dir = temp_dir("cli-info");
    let path = write_profile(&dir, "card-0007");
    CardState::with_tries(1)
        .save(&CardProfile::state_path(&path))
        .unwrap();
    let out = Command::new(BIN)
        .args(["info", "--profile"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("name: card-0007"), "{stdout}");
    assert!(
        stdout.contains("ATR: 3B E0 00 FF 81 31 FE 45 14"),
        "{stdout}"
    );
    assert!(stdout.contains("CN=TESTCARD000000000000001"), "{stdout}");
    assert!(stdout.contains("PIN tries left: 1 of 3"), "{stdout}");
    assert!(!stdout.contains(PIN));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_profiles_and_usage_exit_2_with_one_line() {
    let dir = temp_dir("cli-bad");
    let missing = dir.join("missing.json");
    let broken = dir.join("broken.json");
    let mut p = profile("card-broken");
    p.user_auth_private_key = "not a key".into();
    p.save(&broken).unwrap();
    for args in [
        vec!["info", "--profile", missing.to_str().unwrap()],
        vec!["attach", "--profile", broken.to_str().unwrap()],
        vec!["attach", "--profile", missing.to_str().unwrap()],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("virtual-card: "), "{stderr}");
    }
    let good = write_profile(&dir, "card-good");
    let out = Command::new(BIN)
        .args([
            "attach",
            "--profile",
            good.to_str().unwrap(),
            "--vpcd",
            "no-port",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args([
            "attach",
            "--profile",
            good.to_str().unwrap(),
            "--remove-after-apdus",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout).unwrap().contains("attach"));
    std::fs::remove_dir_all(dir).unwrap();
}

fn send(stream: &mut TcpStream, payload: &[u8]) {
    let mut frame = (payload.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    stream.write_all(&frame).unwrap();
}

fn receive(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut payload = vec![0; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut payload).ok()?;
    Some(payload)
}

#[test]
fn attach_serves_apdus_persists_the_counter_and_can_be_pulled_out() {
    let dir = temp_dir("cli-attach");
    let path = write_profile(&dir, "card-cli");
    let trace_path = dir.join("trace.log");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let mut child = Running(
        Command::new(BIN)
            .args(["attach", "--profile"])
            .arg(&path)
            .args(["--vpcd", &address, "--remove-after-apdus", "3", "--trace"])
            .arg(&trace_path)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );

    // Readiness: the one stdout line, read on a thread so a silent card fails the test.
    let stdout = child.0.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let first = lines.recv_timeout(WAIT).expect("no readiness line");
    assert_eq!(
        first,
        format!("virtual-card: attached card-cli to {address}")
    );

    let (mut vpcd, _) = listener.accept().unwrap();
    vpcd.set_read_timeout(Some(WAIT)).unwrap();
    send(&mut vpcd, &[0x01]);
    send(
        &mut vpcd,
        &hex::decode("00A4040C0AD392F000260100000001").unwrap(),
    );
    assert_eq!(receive(&mut vpcd).unwrap(), vec![0x90, 0x00]);
    // A wrong PIN by short id: the counter is on disk by the time the answer arrives.
    send(&mut vpcd, &hex::decode("002000980430303030").unwrap());
    assert_eq!(receive(&mut vpcd).unwrap(), vec![0x63, 0xC2]);
    let state = CardState::load(&CardProfile::state_path(&path)).unwrap();
    assert_eq!(state.user_auth_pin_tries_left, 2);
    // The third command APDU pulls the card out.
    send(&mut vpcd, &hex::decode("00A4020C02000A").unwrap());
    assert_eq!(receive(&mut vpcd), None);

    let removed = lines.recv_timeout(WAIT).expect("no removal line");
    assert!(
        removed.starts_with("virtual-card: removed card-cli"),
        "{removed}"
    );
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");

    let trace = std::fs::read_to_string(&trace_path).unwrap();
    assert_eq!(
        trace,
        "# power on\n\
         > 00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01\n\
         < 90 00\n\
         > 00 20 00 98 04 <redacted 4 bytes>\n\
         < 63 C2\n\
         > 00 A4 02 0C 02 00 0A\n\
         # card removed before answering\n"
    );
    let mut stderr = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    // The wrong PIN sent was 0000. (Only hex forms are checked on stderr: its timestamps
    // could contain any four digits.)
    for log in [&trace, &stderr] {
        assert!(
            !log.contains("30 30 30 30") && !log.contains("30303030"),
            "{log}"
        );
        assert!(!log.contains(PIN_HEX), "{log}");
    }
    assert!(!trace.contains(PIN));
    std::fs::remove_dir_all(dir).unwrap();
}
