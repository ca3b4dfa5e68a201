//! Interoperability with an independent client: OpenSC's JPKI driver, its PKCS#15 emulation
//! and its PKCS#11 module drive the virtual card through a private pcscd (jpki-card.md §8).
//! Needs root (the private pcscd), the Debian `opensc` package and the binaries built.
//!
//! Every OpenSC tool runs as its own process with `PCSCLITE_CSOCK_NAME` naming the private
//! pcscd, `OPENSC_CONF` naming a configuration without file caching, and `HOME` a temporary
//! directory, so nothing is read from or left in the machine's OpenSC cache.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use onshi_e2e::{run_bounded, Card, Pcscd, World};

const TOOL_TIMEOUT: Duration = Duration::from_secs(60);
/// The slot the harness's card occupies.
const READER: &str = "Virtual PCD 00 00";

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "opensc-world", 6)
}

/// OpenSC's PKCS#11 module: Debian's path, or the other places the package has used.
fn pkcs11_module() -> PathBuf {
    [
        "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
        "/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so",
        "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
        "/usr/lib/opensc-pkcs11.so",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("OpenSC's PKCS#11 module (Debian package opensc-pkcs11) is not installed")
}

/// A private pcscd with one virtual card, and an OpenSC environment of the test's own.
struct Rig {
    pcscd: Pcscd,
    _card: Card,
    tmp: tempfile::TempDir,
    profile: PathBuf,
    pin: String,
}

impl Rig {
    fn new(kind: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let (profile, pin) = world().private_card(kind, tmp.path()).unwrap();
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&profile).unwrap()).unwrap();
        edit(&mut json);
        std::fs::write(&profile, serde_json::to_string_pretty(&json).unwrap()).unwrap();
        std::fs::write(
            tmp.path().join("opensc.conf"),
            "app default {\n  debug = 0;\n  framework pkcs15 {\n    use_file_caching = no;\n  }\n}\n",
        )
        .unwrap();
        let pcscd = Pcscd::start().expect("private pcscd");
        let card = Card::attach(&profile, &pcscd.vpcd(), &[]).unwrap();
        pcscd.wait_until_present(READER).unwrap();
        Rig {
            pcscd,
            _card: card,
            tmp,
            profile,
            pin,
        }
    }

    fn tool(&self, program: &str, args: &[&str]) -> Output {
        let mut c = Command::new(program);
        c.args(args)
            .env("PCSCLITE_CSOCK_NAME", self.pcscd.socket())
            .env("OPENSC_CONF", self.tmp.path().join("opensc.conf"))
            .env("HOME", self.tmp.path())
            .env_remove("OPENSC_DRIVER");
        run_bounded(c, TOOL_TIMEOUT).unwrap()
    }

    fn tries_left(&self) -> u64 {
        let path = self.profile.with_file_name(format!(
            "{}.state.json",
            self.profile.file_stem().unwrap().to_string_lossy()
        ));
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        state["user_auth_pin_tries_left"].as_u64().unwrap()
    }

    fn profile_pem(&self, field: &str) -> Vec<u8> {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&self.profile).unwrap()).unwrap();
        pem::parse(json[field].as_str().unwrap())
            .unwrap()
            .into_contents()
    }
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn opensc_names_the_card_jpki_and_sees_the_default_atr() {
    let r = Rig::new("valid", |_| {});
    let o = r.tool("opensc-tool", &["--reader", "0", "--name"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o).trim(), "jpki", "{}", text(&o));
    let o = r.tool("opensc-tool", &["--reader", "0", "--atr"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o).trim().to_ascii_uppercase(),
        "3B:E0:00:FF:81:31:FE:45:14",
        "{}",
        text(&o)
    );
}

#[test]
fn a_profile_atr_is_served_and_opensc_still_finds_jpki_by_selecting_it() {
    let r = Rig::new("valid", |p| {
        p["atr"] = "3B8A800150900000000000000000".into()
    });
    let o = r.tool("opensc-tool", &["--reader", "0", "--atr"]);
    assert_eq!(
        stdout(&o).trim().to_ascii_uppercase(),
        "3B:8A:80:01:50:90:00:00:00:00:00:00:00:00",
        "{}",
        text(&o)
    );
    let o = r.tool("opensc-tool", &["--reader", "0", "--name"]);
    assert_eq!(stdout(&o).trim(), "jpki", "{}", text(&o));
}

#[test]
fn foreign_applications_are_refused_like_a_real_card() {
    let r = Rig::new("valid", |_| {});
    // PIV, OpenPGP, EMV (Visa), a German eID, an ISO 7816-15 PKCS#15 DF, and Kenhojo / Kenkaku
    // with one byte changed: 6A82 each. The card's own three applications: 9000.
    let foreign = [
        "00A4040009A00000030800001000",
        "00A4040006D2760001240100",
        "00A4040007A000000004101000",
        "00A4040C07A0000000031010",
        "00A4040C0CA000000063504B43532D3135",
        "00A4040C0AD3921000310001010409",
    ];
    let mut args = vec!["--reader", "0"];
    for a in &foreign {
        args.push("--send-apdu");
        args.push(a);
    }
    let o = r.tool("opensc-tool", &args);
    let out = stdout(&o);
    let refusals = out.matches("SW1=0x6A, SW2=0x82").count();
    assert_eq!(refusals, foreign.len(), "{}", text(&o));
    assert!(!out.contains("SW1=0x90"), "{}", text(&o));
    let o = r.tool(
        "opensc-tool",
        &[
            "--reader",
            "0",
            "--send-apdu",
            "00A4040C0AD392F000260100000001",
        ],
    );
    let out = stdout(&o);
    assert!(out.contains("SW1=0x90, SW2=0x00"), "{}", text(&o));
}

#[test]
fn pkcs15_tool_reads_exactly_the_user_authentication_certificate() {
    let r = Rig::new("valid", |_| {});
    let o = r.tool(
        "pkcs15-tool",
        &["--reader", "0", "--read-certificate", "01"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let read = pem::parse(stdout(&o)).expect("pkcs15-tool printed a PEM certificate");
    assert_eq!(read.tag(), "CERTIFICATE");
    assert_eq!(
        read.contents(),
        r.profile_pem("user_auth_certificate").as_slice()
    );
}

#[test]
fn pkcs15_tool_verifies_the_pin_and_a_wrong_pin_costs_a_try() {
    let r = Rig::new("valid", |_| {});
    let pin = r.pin.clone();
    let o = r.tool(
        "pkcs15-tool",
        &[
            "--reader",
            "0",
            "--verify-pin",
            "--auth-id",
            "01",
            "--pin",
            &pin,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let wrong = if pin == "0000" { "0001" } else { "0000" };
    let o = r.tool(
        "pkcs15-tool",
        &[
            "--reader",
            "0",
            "--verify-pin",
            "--auth-id",
            "01",
            "--pin",
            wrong,
        ],
    );
    assert!(
        !o.status.success() || text(&o).to_lowercase().contains("incorrect"),
        "a wrong PIN was accepted: {}",
        text(&o)
    );
    assert_eq!(r.tries_left(), 2, "the card's counter after one wrong PIN");
    // The right PIN restores the counter.
    let o = r.tool(
        "pkcs15-tool",
        &[
            "--reader",
            "0",
            "--verify-pin",
            "--auth-id",
            "01",
            "--pin",
            &pin,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(r.tries_left(), 3);
}

#[test]
fn pkcs11_tool_signs_and_openssl_verifies_with_the_certificate_key() {
    let r = Rig::new("valid", |_| {});
    let dir = r.tmp.path();
    let data = dir.join("data.bin");
    std::fs::write(&data, b"onshi: signed through OpenSC's PKCS#11 module\n").unwrap();
    let sig = dir.join("sig.bin");
    let module = pkcs11_module();
    let o = r.tool(
        "pkcs11-tool",
        &[
            "--module",
            module.to_str().unwrap(),
            "--login",
            "--pin",
            &r.pin,
            "--id",
            "01",
            "--sign",
            "-m",
            "SHA256-RSA-PKCS",
            "--input-file",
            data.to_str().unwrap(),
            "--output-file",
            sig.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(std::fs::metadata(&sig).unwrap().len(), 256);

    let cert = dir.join("cert.pem");
    std::fs::write(
        &cert,
        pem::encode(&pem::Pem::new(
            "CERTIFICATE",
            r.profile_pem("user_auth_certificate"),
        )),
    )
    .unwrap();
    let pubkey = dir.join("pub.pem");
    let o = run_bounded(
        command("openssl", &["x509", "-pubkey", "-noout", "-in"], &cert, &[]),
        TOOL_TIMEOUT,
    )
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    std::fs::write(&pubkey, &o.stdout).unwrap();
    let verify = |file: &Path| {
        run_bounded(
            command(
                "openssl",
                &["dgst", "-sha256", "-verify"],
                &pubkey,
                &["-signature", sig.to_str().unwrap(), file.to_str().unwrap()],
            ),
            TOOL_TIMEOUT,
        )
        .unwrap()
    };
    let o = verify(&data);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("Verified OK"), "{}", text(&o));
    // And openssl is not simply agreeing: other data does not verify.
    let other = dir.join("other.bin");
    std::fs::write(&other, b"something else").unwrap();
    assert!(!verify(&other).status.success());
}

fn command(program: &str, before: &[&str], path: &Path, after: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(before).arg(path).args(after);
    c
}

#[test]
fn kenhojo_and_kenkaku_answer_through_pcscd() {
    let r = Rig::new("valid", |_| {});
    let card = world().card("valid").unwrap();
    let my_number = card["my_number"].as_str().unwrap();
    let pin_hex: String = r.pin.bytes().map(|b| format!("{b:02X}")).collect();
    let verify = format!("0020008004{pin_hex}");
    let o = r.tool(
        "opensc-tool",
        &[
            "--reader",
            "0",
            "--send-apdu",
            "00A4040C0AD3921000310001010408",
            "--send-apdu",
            "00A4020C020011",
            "--send-apdu",
            &verify,
            "--send-apdu",
            "00A4020C020001",
            "--send-apdu",
            "00B0000000",
        ],
    );
    let out = stdout(&o);
    // My Number: FF 10 0C and 12 ASCII digits.
    let mut expected = "FF 10 0C ".to_string();
    for b in my_number.bytes() {
        expected.push_str(&format!("{b:02X} "));
    }
    assert!(out.contains(expected.trim_end()), "{}", text(&o));
    // Kenkaku's card face needs 照合番号B: refused without it.
    let o = r.tool(
        "opensc-tool",
        &[
            "--reader",
            "0",
            "--send-apdu",
            "00A4040C0AD3921000310001010402",
            "--send-apdu",
            "00A4020C020002",
            "--send-apdu",
            "00B0000000",
        ],
    );
    assert!(stdout(&o).contains("SW1=0x69, SW2=0x82"), "{}", text(&o));
    // With 照合番号B the card face opens: FF 20 with a two-byte length, then DF21, the table
    // of nine offsets counted from the file's first byte: DF22 starts at 5 + 3 + 18 = 0x1A.
    let number_b = card["number_b"].as_str().unwrap();
    let nb_hex: String = number_b.bytes().map(|b| format!("{b:02X}")).collect();
    let o = r.tool(
        "opensc-tool",
        &[
            "--reader",
            "0",
            "--send-apdu",
            "00A4040C0AD3921000310001010402",
            "--send-apdu",
            "00A4020C020012",
            "--send-apdu",
            &format!("002000800E{nb_hex}"),
            "--send-apdu",
            "00A4020C020002",
            "--send-apdu",
            "00B000000A",
        ],
    );
    let out = stdout(&o);
    assert!(out.contains("FF 20 82"), "{}", text(&o));
    assert!(out.contains("DF 21 12 00 1A"), "{}", text(&o));
    // The simulator-only face read: the raw photo, no PIN (docs/virtual-card.md).
    let o = r.tool(
        "opensc-tool",
        &[
            "--reader",
            "0",
            "--send-apdu",
            "00A4040C0AD3921000310001010402",
            "--send-apdu",
            "80B000000C",
        ],
    );
    // A JP2 file: its signature box.
    assert!(
        stdout(&o).contains("00 00 00 0C 6A 50 20 20 0D 0A 87 0A"),
        "{}",
        text(&o)
    );
}

/// A face-only card (顔認証マイナンバーカード; docs/virtual-card.md): OpenSC still recognises
/// the JPKI application, but its PKCS#15 emulation queries the PIN counters when it binds, gets
/// `6984` instead of `63Cx`, and refuses the card, as PIN-based services refuse such a card. The
/// same profile with its PIN binds (the tests above).
#[test]
fn opensc_names_a_face_only_card_jpki_but_does_not_bind_it() {
    let r = Rig::new("valid", |p| {
        p["face_only"] = true.into();
        p["user_auth_pin"] = "".into();
        p["signature"] = serde_json::Value::Null;
    });
    let o = r.tool("opensc-tool", &["--reader", "0", "--name"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o).trim(), "jpki", "{}", text(&o));
    let o = r.tool(
        "pkcs15-tool",
        &["--reader", "0", "--read-certificate", "01"],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("binding failed"),
        "{}",
        text(&o)
    );
}
