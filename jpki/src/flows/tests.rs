//! Unit tests of `flows.rs` (kept beside it so the module itself stays readable).

use std::collections::VecDeque;

use super::*;
use crate::constants::sha256_digest_info;

#[derive(Debug, thiserror::Error)]
#[error("scripted transport failure")]
struct ScriptError;

enum Reply {
    Bytes(Vec<u8>),
    Fail,
}

/// A card that expects exact command bytes and answers with canned responses.
struct Script {
    steps: VecDeque<(String, Reply)>,
    /// What was sent, as a trace would show it (redacted).
    trace: Vec<String>,
}

impl Script {
    fn new() -> Self {
        Self {
            steps: VecDeque::new(),
            trace: Vec::new(),
        }
    }

    /// Expect `command` (hex, spaces ignored) and answer `response` (hex).
    fn step(mut self, command: &str, response: &str) -> Self {
        let response = hex::decode(response.replace(' ', "")).unwrap();
        self.steps
            .push_back((norm(command), Reply::Bytes(response)));
        self
    }

    fn step_bytes(mut self, command: &str, response: Vec<u8>) -> Self {
        self.steps
            .push_back((norm(command), Reply::Bytes(response)));
        self
    }

    fn step_fail(mut self, command: &str) -> Self {
        self.steps.push_back((norm(command), Reply::Fail));
        self
    }

    fn done(&self) {
        assert!(
            self.steps.is_empty(),
            "{} scripted commands not sent",
            self.steps.len()
        );
    }
}

fn norm(hex: &str) -> String {
    hex.replace(' ', "").to_uppercase()
}

impl CardChannel for Script {
    type Error = ScriptError;

    fn transmit(&mut self, command: &CommandApdu) -> Result<ResponseApdu, ScriptError> {
        let sent = hex::encode_upper(&*command.to_bytes());
        self.trace.push(command.to_string());
        let (expected, reply) = self
            .steps
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected command {command}"));
        assert_eq!(sent, expected, "command {} of the script", self.trace.len());
        match reply {
            Reply::Bytes(bytes) => ResponseApdu::parse(&bytes).map_err(|_| ScriptError),
            Reply::Fail => Err(ScriptError),
        }
    }
}

const SELECT_JPKI: &str = "00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01";
const SELECT_000A: &str = "00 A4 02 0C 02 00 0A";
const SELECT_0017: &str = "00 A4 02 0C 02 00 17";
const SELECT_0018: &str = "00 A4 02 0C 02 00 18";
const OK: &str = "9000";
const PIN: &str = "4729";
const VERIFY_PIN: &str = "00 20 00 80 04 34 37 32 39";

/// A fake certificate: `30 82 HH LL` and `len` content bytes.
fn cert(content_len: usize) -> Vec<u8> {
    let mut c = vec![0x30, 0x82];
    c.extend_from_slice(&(content_len as u16).to_be_bytes());
    c.extend((0..content_len).map(|i| (i * 7 % 251) as u8));
    c
}

fn with_sw(data: &[u8], sw: u16) -> Vec<u8> {
    let mut v = data.to_vec();
    v.extend_from_slice(&sw.to_be_bytes());
    v
}

/// Adds the canonical reads of `cert` to a script.
fn canonical_reads(mut s: Script, cert: &[u8]) -> Script {
    s = s.step_bytes("00 B0 00 00 04", with_sw(&cert[..4], 0x9000));
    let mut offset = 4;
    while offset < cert.len() {
        let want = 256.min(cert.len() - offset);
        let cmd = format!(
            "00B0{:04X}{:02X}",
            offset,
            if want == 256 { 0 } else { want }
        );
        s = s.step_bytes(&cmd, with_sw(&cert[offset..offset + want], 0x9000));
        offset += want;
    }
    s
}

fn digest_info() -> [u8; 51] {
    sha256_digest_info(&[0x5A; 32])
}

fn sign_command() -> String {
    format!("802A008033{}00", hex::encode_upper(digest_info()))
}

fn pin() -> Pin {
    Pin::new(PIN).unwrap()
}

#[test]
fn phase_a_exact_sequence() {
    let c = cert(1230); // 1234 bytes: 4 full chunks and a final Le of CE
    let mut s = Script::new().step(SELECT_JPKI, OK).step(SELECT_000A, OK);
    s = canonical_reads(s, &c);
    s = s.step(SELECT_0018, OK).step("00 20 00 80", "63C3");
    let reading = read_phase(&mut s).unwrap();
    s.done();
    assert_eq!(reading.certificate, c);
    assert_eq!(reading.pin_status, PinStatus::TriesLeft(3));
    assert_eq!(
        s.trace,
        vec![
            "00 A4 04 0C 0A D3 92 F0 00 26 01 00 00 00 01",
            "00 A4 02 0C 02 00 0A",
            "00 B0 00 00 04",
            "00 B0 00 04 00",
            "00 B0 01 04 00",
            "00 B0 02 04 00",
            "00 B0 03 04 00",
            "00 B0 04 04 CE",
            "00 A4 02 0C 02 00 18",
            "00 20 00 80",
        ]
    );
}

#[test]
fn phase_b_exact_sequence_and_redacted_trace() {
    let signature = vec![0xAB; 256];
    let mut s = Script::new()
        .step(SELECT_JPKI, OK)
        .step(SELECT_0018, OK)
        .step(VERIFY_PIN, OK)
        .step(SELECT_0017, OK)
        .step_bytes(&sign_command(), with_sw(&signature, 0x9000));
    let got = authenticate_phase(&mut s, &pin(), &digest_info()).unwrap();
    s.done();
    assert_eq!(got, signature);
    assert_eq!(s.trace[2], "00 20 00 80 04 <redacted 4 bytes>");
    assert!(s.trace[4]
        .starts_with("80 2A 00 80 33 30 31 30 0D 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20"));
    assert!(s.trace[4].ends_with(" 00"));
    for line in &s.trace {
        assert!(!line.contains("34 37 32 39"), "PIN leaked: {line}");
    }
}

#[test]
fn certificate_lengths_at_chunk_boundaries() {
    // Content that ends exactly on a chunk boundary: no short final read.
    for content in [0usize, 1, 252, 256, 512, 1020] {
        let c = cert(content);
        let mut s = Script::new().step(SELECT_000A, OK);
        s = canonical_reads(s, &c);
        assert_eq!(read_user_auth_certificate(&mut s).unwrap(), c, "{content}");
        s.done();
    }
}

#[test]
fn accepts_short_header_forms() {
    // 30 81 LL: header 3 bytes; the first read already holds one content byte.
    let mut c = vec![0x30, 0x81, 0x90];
    c.extend(0..0x90u8);
    // 3 + 0x90 = 147 bytes in all; 143 remain after the first read: exact Le 8F.
    let mut s = Script::new()
        .step(SELECT_000A, OK)
        .step_bytes("00B0000004", with_sw(&c[..4], 0x9000))
        .step_bytes("00B000048F", with_sw(&c[4..], 0x9000));
    assert_eq!(read_user_auth_certificate(&mut s).unwrap(), c);
    s.done();
    // 30 02 xx xx: a whole object inside the header read.
    let short = [0x30, 0x02, 0x05, 0x00];
    let mut s = Script::new()
        .step(SELECT_000A, OK)
        .step_bytes("00B0000004", with_sw(&short, 0x9000));
    assert_eq!(read_user_auth_certificate(&mut s).unwrap(), short);
    s.done();
    // 30 01 xx and filler: trimmed to the object.
    let mut s = Script::new()
        .step(SELECT_000A, OK)
        .step_bytes("00B0000004", with_sw(&[0x30, 0x01, 0x05, 0xFF], 0x9000));
    assert_eq!(
        read_user_auth_certificate(&mut s).unwrap(),
        vec![0x30, 0x01, 0x05]
    );
}

fn cert_error(first: Vec<u8>) -> FlowError<ScriptError> {
    let mut s = Script::new()
        .step(SELECT_000A, OK)
        .step_bytes("00B0000004", first);
    read_user_auth_certificate(&mut s).unwrap_err()
}

#[test]
fn rejects_bad_certificate_headers() {
    for (first, needle) in [
        (
            with_sw(&[0x31, 0x82, 0x04, 0xCE], 0x9000),
            "not a DER SEQUENCE",
        ),
        (with_sw(&[0x30, 0x80, 0x00, 0x00], 0x9000), "indefinite"),
        (with_sw(&[0x30, 0x83, 0x01, 0x00], 0x9000), "64 KiB"),
        (with_sw(&[0x30, 0x82, 0x20, 0x00], 0x9000), "limit"),
        (with_sw(&[0x30, 0x82, 0xFF, 0xFF], 0x9000), "limit"),
        (
            with_sw(&[0x30, 0x82, 0x04], 0x9000),
            "inside the DER header",
        ),
        (with_sw(&[], 0x9000), "empty"),
        (
            with_sw(&[0x30, 0x82, 0x04, 0xCE, 0x00], 0x9000),
            "5 bytes returned for Le 4",
        ),
        (with_sw(&[], 0x6B00), "empty"),
    ] {
        match cert_error(first) {
            FlowError::MalformedResponse { command, reason } => {
                assert_eq!(command, "READ BINARY");
                assert!(reason.contains(needle), "{reason} lacks {needle}");
            }
            e => panic!("{e:?}"),
        }
    }
    // The 8 KiB cap is inclusive: exactly 8192 bytes in all is accepted.
    let c = cert(8192 - 4);
    let mut s = Script::new().step(SELECT_000A, OK);
    s = canonical_reads(s, &c);
    assert_eq!(read_user_auth_certificate(&mut s).unwrap().len(), 8192);
    // Blank EF: the certificate was never written.
    assert!(matches!(
        cert_error(with_sw(&[0xFF; 4], 0x9000)),
        FlowError::NotFound { what } if what.contains("000A")
    ));
}

#[test]
fn truncated_certificates() {
    let c = cert(600);
    // The card's file ends early: a short chunk.
    let mut s = Script::new()
        .step(SELECT_000A, OK)
        .step_bytes("00B0000004", with_sw(&c[..4], 0x9000))
        .step_bytes("00B0000400", with_sw(&c[4..260], 0x9000))
        .step_bytes("00B0010400", with_sw(&c[260..300], 0x9000));
    let e = read_user_auth_certificate(&mut s).unwrap_err();
    assert!(e.to_string().contains("ends after 300 bytes"), "{e}");
    // ... or 6B00 at the next offset.
    let mut s = Script::new()
        .step(SELECT_000A, OK)
        .step_bytes("00B0000004", with_sw(&c[..4], 0x9000))
        .step("00B0000400", "6B00");
    let e = read_user_auth_certificate(&mut s).unwrap_err();
    assert!(e.to_string().contains("ends after 4 bytes"), "{e}");
    // ... or 9000 with no data.
    let mut s = Script::new()
        .step(SELECT_000A, OK)
        .step_bytes("00B0000004", with_sw(&c[..4], 0x9000))
        .step("00B0000400", "9000");
    assert!(matches!(
        read_user_auth_certificate(&mut s),
        Err(FlowError::MalformedResponse { .. })
    ));
    // ... or a chunk longer than asked.
    let mut s = Script::new()
        .step(SELECT_000A, OK)
        .step_bytes("00B0000004", with_sw(&c[..4], 0x9000))
        .step_bytes("00B0000400", with_sw(&[0; 257], 0x9000));
    assert!(read_user_auth_certificate(&mut s)
        .unwrap_err()
        .to_string()
        .contains("257 bytes returned for Le 256"));
}

#[test]
fn status_word_mapping() {
    // Application missing.
    let mut s = Script::new().step(SELECT_JPKI, "6A82");
    assert!(matches!(
        read_phase(&mut s),
        Err(FlowError::NotFound {
            what: "JPKI application"
        })
    ));
    // EF missing.
    let mut s = Script::new().step(SELECT_000A, "6A82");
    assert!(matches!(
        read_user_auth_certificate(&mut s),
        Err(FlowError::NotFound { what }) if what.contains("000A")
    ));
    // Anything else is UnexpectedStatus with the command's name.
    let mut s = Script::new().step(SELECT_JPKI, "6E00");
    match select_jpki(&mut s) {
        Err(FlowError::UnexpectedStatus { command, sw }) => {
            assert_eq!(command, "SELECT application");
            assert_eq!(sw, StatusWord::CLA_NOT_SUPPORTED);
        }
        r => panic!("{r:?}"),
    }
    let mut s = Script::new()
        .step(SELECT_000A, OK)
        .step("00B0000004", "6982");
    assert!(matches!(
        read_user_auth_certificate(&mut s),
        Err(FlowError::SecurityNotSatisfied)
    ));
    let mut s = Script::new()
        .step(SELECT_000A, OK)
        .step("00B0000004", "6A86");
    assert!(matches!(
        read_user_auth_certificate(&mut s),
        Err(FlowError::UnexpectedStatus {
            command: "READ BINARY",
            ..
        })
    ));
}

fn pin_status(answer: &str) -> Result<PinStatus, FlowError<ScriptError>> {
    let mut s = Script::new()
        .step(SELECT_0018, OK)
        .step("00 20 00 80", answer);
    let r = user_auth_pin_status(&mut s);
    s.done();
    r
}

#[test]
fn retry_counter_mapping() {
    assert_eq!(pin_status("63C3").unwrap(), PinStatus::TriesLeft(3));
    assert_eq!(pin_status("63C1").unwrap(), PinStatus::TriesLeft(1));
    assert_eq!(pin_status("63C0").unwrap(), PinStatus::Blocked);
    assert_eq!(pin_status("6984").unwrap(), PinStatus::NotSet);
    assert_eq!(pin_status("6983").unwrap(), PinStatus::Blocked);
    assert_eq!(pin_status("9000").unwrap(), PinStatus::Verified);
    assert!(matches!(
        pin_status("6A86"),
        Err(FlowError::UnexpectedStatus {
            command: "VERIFY (retry counter)",
            ..
        })
    ));
    let mut s = Script::new().step(SELECT_0018, "6A82");
    assert!(matches!(
        user_auth_pin_status(&mut s),
        Err(FlowError::NotFound { what }) if what.contains("0018")
    ));
}

fn verify_answer(answer: &str) -> Result<(), FlowError<ScriptError>> {
    let mut s = Script::new().step(SELECT_0018, OK).step(VERIFY_PIN, answer);
    let r = verify_user_auth_pin(&mut s, &pin());
    s.done();
    r
}

#[test]
fn verify_mapping() {
    assert!(verify_answer("9000").is_ok());
    assert!(matches!(
        verify_answer("63C2"),
        Err(FlowError::WrongPin { tries_left: 2 })
    ));
    // The attempt that used up the last try is still a wrong PIN, with 0 left.
    assert!(matches!(
        verify_answer("63C0"),
        Err(FlowError::WrongPin { tries_left: 0 })
    ));
    assert!(matches!(verify_answer("6984"), Err(FlowError::PinBlocked)));
    assert!(matches!(verify_answer("6983"), Err(FlowError::PinBlocked)));
    assert!(matches!(
        verify_answer("6700"),
        Err(FlowError::UnexpectedStatus {
            command: "VERIFY",
            ..
        })
    ));
}

#[test]
fn sign_mapping() {
    let sign = |answer: Vec<u8>| {
        let mut s = Script::new()
            .step(SELECT_0017, OK)
            .step_bytes(&sign_command(), answer);
        let r = sign_with_user_auth_key(&mut s, &digest_info());
        s.done();
        r
    };
    assert_eq!(sign(with_sw(&[1; 256], 0x9000)).unwrap(), vec![1; 256]);
    assert!(matches!(
        sign(with_sw(&[], 0x6982)),
        Err(FlowError::SecurityNotSatisfied)
    ));
    for wrong in [0usize, 128, 255, 257] {
        assert!(matches!(
            sign(with_sw(&vec![1; wrong], 0x9000)),
            Err(FlowError::MalformedResponse {
                command: "COMPUTE DIGITAL SIGNATURE",
                ..
            })
        ));
    }
    assert!(matches!(
        sign(with_sw(&[], 0x6A86)),
        Err(FlowError::UnexpectedStatus { .. })
    ));
    let mut s = Script::new().step(SELECT_0017, "6A82");
    assert!(matches!(
        sign_with_user_auth_key(&mut s, &digest_info()),
        Err(FlowError::NotFound { what }) if what.contains("0017")
    ));
}

#[test]
fn invalid_digest_info_is_refused_before_any_apdu() {
    let mut s = Script::new();
    assert!(matches!(
        authenticate_phase(&mut s, &pin(), &[0u8; 32]),
        Err(FlowError::InvalidDigestInfo { len: 32 })
    ));
    let mut wrong_prefix = digest_info();
    wrong_prefix[0] = 0x31;
    assert!(matches!(
        authenticate_phase(&mut s, &pin(), &wrong_prefix),
        Err(FlowError::InvalidDigestInfo { len: 51 })
    ));
    assert!(matches!(
        sign_with_user_auth_key(&mut s, &[]),
        Err(FlowError::InvalidDigestInfo { len: 0 })
    ));
    assert!(matches!(
        sign_with_user_auth_key(&mut s, &[0; 246]),
        Err(FlowError::InvalidDigestInfo { len: 246 })
    ));
    s.done();
    assert!(s.trace.is_empty());
}

#[test]
fn phase_b_stops_at_a_wrong_pin() {
    let mut s = Script::new()
        .step(SELECT_JPKI, OK)
        .step(SELECT_0018, OK)
        .step(VERIFY_PIN, "63C1");
    assert!(matches!(
        authenticate_phase(&mut s, &pin(), &digest_info()),
        Err(FlowError::WrongPin { tries_left: 1 })
    ));
    s.done();
}

#[test]
fn transport_failures_and_garbage_responses() {
    // The channel fails mid-read.
    let mut s = Script::new()
        .step(SELECT_JPKI, OK)
        .step(SELECT_000A, OK)
        .step_fail("00B0000004");
    let e = read_phase(&mut s).unwrap_err();
    assert!(matches!(e, FlowError::Channel(ScriptError)));
    assert!(std::error::Error::source(&e).is_some());
    // A one-byte response cannot hold a status word: the channel reports it.
    let mut s = Script::new().step_bytes(SELECT_JPKI, vec![0x90]);
    assert!(matches!(select_jpki(&mut s), Err(FlowError::Channel(_))));
    // An empty response likewise.
    let mut s = Script::new().step_bytes(SELECT_JPKI, vec![]);
    assert!(matches!(select_jpki(&mut s), Err(FlowError::Channel(_))));
}

#[test]
fn other_read_patterns() {
    let c = cert(700);
    let file: Vec<u8> = c
        .iter()
        .copied()
        .chain(std::iter::repeat_n(0xFF, 2048 - c.len()))
        .collect();

    // 7-byte header, then the rest from offset 7.
    let mut s = Script::new()
        .step_bytes("00B0000007", with_sw(&c[..7], 0x9000))
        .step_bytes("00B0000700", with_sw(&c[7..263], 0x9000))
        .step_bytes("00B0010700", with_sw(&c[263..519], 0x9000))
        .step_bytes("00B00207B9", with_sw(&c[519..704], 0x9000));
    let pattern = ReadPattern::HeaderThenRest {
        header_len: 7,
        chunk: 256,
    };
    assert_eq!(read_ef_by_chunks(&mut s, pattern).unwrap(), c);
    s.done();

    // 7-byte header, then re-read from offset 0.
    let mut s = Script::new()
        .step_bytes("00B0000007", with_sw(&c[..7], 0x9000))
        .step_bytes("00B0000000", with_sw(&c[..256], 0x9000))
        .step_bytes("00B0010000", with_sw(&c[256..512], 0x9000))
        .step_bytes("00B00200C0", with_sw(&c[512..704], 0x9000));
    let pattern = ReadPattern::HeaderThenReread {
        header_len: 7,
        chunk: 256,
    };
    assert_eq!(read_ef_by_chunks(&mut s, pattern).unwrap(), c);
    s.done();

    // 255-byte chunks until 6B00 (the file is a multiple of 255? no: ends short).
    let mut s = Script::new();
    let mut off = 0;
    while off < file.len() {
        let n = 255.min(file.len() - off);
        s = s.step_bytes(
            &format!("00B0{off:04X}FF"),
            with_sw(&file[off..off + n], 0x9000),
        );
        off += n;
    }
    assert_eq!(
        read_ef_by_chunks(&mut s, ReadPattern::UntilEnd { chunk: 255 }).unwrap(),
        file
    );
    s.done();

    // 256-byte chunks of a 2048-byte file: ends with 6B00 at offset 0x800.
    let mut s = Script::new();
    for off in (0..2048).step_by(256) {
        s = s.step_bytes(
            &format!("00B0{off:04X}00"),
            with_sw(&file[off..off + 256], 0x9000),
        );
    }
    s = s.step("00B0080000", "6B00");
    assert_eq!(
        read_ef_by_chunks(&mut s, ReadPattern::UntilEnd { chunk: 256 }).unwrap(),
        file
    );
    s.done();

    // By SFI: header by short id, the rest by offset.
    let mut s = Script::new().step_bytes("00B08A0004", with_sw(&c[..4], 0x9000));
    s = s
        .step_bytes("00B0000400", with_sw(&c[4..260], 0x9000))
        .step_bytes("00B0010400", with_sw(&c[260..516], 0x9000))
        .step_bytes("00B00204BC", with_sw(&c[516..704], 0x9000));
    assert_eq!(
        read_ef_by_chunks(&mut s, ReadPattern::BySfi { sfi: 0x0A }).unwrap(),
        c
    );
    s.done();
}

#[test]
fn invalid_read_patterns() {
    let mut s = Script::new();
    for pattern in [
        ReadPattern::HeaderThenRest {
            header_len: 3,
            chunk: 256,
        },
        ReadPattern::HeaderThenRest {
            header_len: 7,
            chunk: 0,
        },
        ReadPattern::HeaderThenReread {
            header_len: 7,
            chunk: 257,
        },
        ReadPattern::UntilEnd { chunk: 0 },
    ] {
        assert!(matches!(
            read_ef_by_chunks(&mut s, pattern),
            Err(FlowError::InvalidReadPattern { .. })
        ));
    }
    assert!(matches!(
        read_ef_by_chunks(&mut s, ReadPattern::BySfi { sfi: 0 }),
        Err(FlowError::Encoding(ApduError::InvalidSfi { sfi: 0 }))
    ));
    s.done();
}

const SELECT_KENKAKU: &str = "00 A4 04 0C 0A D3 92 10 00 31 00 01 01 04 02";

#[test]
fn the_simulator_face_photo_is_read_in_chunks_until_a_short_read() {
    let photo: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    let mut card = Script::new()
        .step(SELECT_KENKAKU, OK)
        .step_bytes("80 B0 00 00 00", with_sw(&photo[..256], 0x9000))
        .step_bytes("80 B0 01 00 00", with_sw(&photo[256..], 0x9000));
    assert_eq!(read_simulator_face_photo(&mut card).unwrap(), photo);
    card.done();
}

#[test]
fn the_simulator_face_photo_ends_at_6b00_and_a_real_card_refuses_it() {
    let photo = vec![7u8; 256];
    let mut card = Script::new()
        .step(SELECT_KENKAKU, OK)
        .step_bytes("80 B0 00 00 00", with_sw(&photo, 0x9000))
        .step("80 B0 01 00 00", "6B00");
    assert_eq!(read_simulator_face_photo(&mut card).unwrap(), photo);
    card.done();

    let mut real = Script::new()
        .step(SELECT_KENKAKU, OK)
        .step("80 B0 00 00 00", "6E00");
    assert!(matches!(
        read_simulator_face_photo(&mut real),
        Err(FlowError::UnexpectedStatus { .. })
    ));
    let mut no_kenkaku = Script::new().step(SELECT_KENKAKU, "6A82");
    assert!(matches!(
        read_simulator_face_photo(&mut no_kenkaku),
        Err(FlowError::NotFound { .. })
    ));
    let mut empty = Script::new()
        .step(SELECT_KENKAKU, OK)
        .step("80 B0 00 00 00", "6B00");
    assert!(read_simulator_face_photo(&mut empty).is_err());
}

#[test]
fn read_until_end_is_bounded() {
    /// A card that answers every READ BINARY with a full chunk, forever.
    struct Endless(usize);
    impl CardChannel for Endless {
        type Error = ScriptError;
        fn transmit(&mut self, c: &CommandApdu) -> Result<ResponseApdu, ScriptError> {
            self.0 += 1;
            let n = usize::from(c.le().unwrap_or(0));
            Ok(ResponseApdu::new(vec![0xFF; n], StatusWord::SUCCESS))
        }
    }
    let mut card = Endless(0);
    assert!(matches!(
        read_ef_by_chunks(&mut card, ReadPattern::UntilEnd { chunk: 256 }),
        Err(FlowError::MalformedResponse { .. })
    ));
    assert_eq!(card.0, 128);
}

/// A card that answers anything with pseudo-random bytes: no flow may panic or loop.
#[test]
fn random_answers_never_panic() {
    struct Chaos {
        state: u64,
        sent: usize,
    }
    impl Chaos {
        fn next(&mut self) -> u64 {
            // xorshift64*
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
    }
    impl CardChannel for Chaos {
        type Error = ScriptError;
        fn transmit(&mut self, c: &CommandApdu) -> Result<ResponseApdu, ScriptError> {
            self.sent += 1;
            assert!(self.sent < 10_000, "flow does not terminate");
            let r = self.next();
            let sws = [
                0x9000u16, 0x9000, 0x9000, 0x6B00, 0x63C0, 0x63C2, 0x6984, 0x6982, 0x6A82, 0x6F00,
            ];
            let sw = StatusWord(sws[(r % sws.len() as u64) as usize]);
            let len = match (r >> 8) % 4 {
                0 => 0,
                1 => usize::from(c.le().unwrap_or(4)),
                2 => ((r >> 16) % 300) as usize,
                _ => 256,
            };
            let mut data: Vec<u8> = (0..len).map(|_| self.next() as u8).collect();
            if (r >> 32) % 3 == 0 && data.len() >= 4 {
                data[0] = 0x30;
                data[1] = [0x82, 0x81, 0x10, 0x83][((r >> 40) % 4) as usize];
            }
            if (r >> 48) % 7 == 0 {
                return Err(ScriptError);
            }
            Ok(ResponseApdu::new(data, sw))
        }
    }
    let pin = pin();
    for seed in 1..3000u64 {
        let mut card = Chaos {
            state: seed,
            sent: 0,
        };
        let _ = read_phase(&mut card);
        let _ = authenticate_phase(&mut card, &pin, &digest_info());
        for pattern in [
            ReadPattern::Canonical,
            ReadPattern::HeaderThenRest {
                header_len: 7,
                chunk: 256,
            },
            ReadPattern::HeaderThenReread {
                header_len: 7,
                chunk: 100,
            },
            ReadPattern::UntilEnd { chunk: 255 },
            ReadPattern::BySfi { sfi: 0x0A },
        ] {
            let _ = read_ef_by_chunks(&mut card, pattern);
        }
    }
}

#[test]
fn errors_never_show_the_pin() {
    let errors: Vec<FlowError<ScriptError>> = vec![
        FlowError::WrongPin { tries_left: 2 },
        FlowError::PinBlocked,
        FlowError::UnexpectedStatus {
            command: VERIFY,
            sw: StatusWord(0x6700),
        },
    ];
    for e in errors {
        assert!(!e.to_string().contains(PIN));
        assert!(!format!("{e:?}").contains(PIN));
    }
    assert_eq!(
        FlowError::<ScriptError>::UnexpectedStatus {
            command: VERIFY,
            sw: StatusWord(0x6700)
        }
        .to_string(),
        "VERIFY answered 6700 (wrong length)"
    );
}
