//! The smartphone マイナ保険証 (docs/smartphone.md) end to end: `virtual-phone` serving a
//! world phone on onshi's own simulator channel, `reader-agent confirm --phone`, and the
//! service (in process, mutual TLS); the credential-kind mix-ups through a gRPC client.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use onshi_confirm_service::audit::{AuditQuery, AuditRecord};
use onshi_confirm_service::store;
use onshi_e2e::grpc::{self, CardKeys};
use onshi_e2e::inproc::InProcService;
use onshi_e2e::{bin, run_with_stdin, Phone, World};
use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose};
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_proto::v1::{self as pb, ResultCode};

fn world() -> &'static World {
    // 13 cards: card-0013 is the first whose certificate is in its grace period.
    World::shared(env!("CARGO_TARGET_TMPDIR"), "smartphone-world", 13)
}

fn service() -> InProcService {
    InProcService::start(&world().dir.join("service.toml")).expect("confirm-service")
}

fn agent_toml() -> PathBuf {
    world().terminal("in-operation", 0).unwrap()
}

fn phone_entry(name: &str) -> &'static serde_json::Value {
    world().manifest["phones"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap()
}

/// A private directory for one test's sockets.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("smartphone-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn start_phone(name: &str, test: &str, refuse: bool) -> Phone {
    let profile = world().dir.join(format!("phones/{name}.json"));
    Phone::start(&profile, &scratch(test), refuse).unwrap()
}

struct Run {
    code: Option<i32>,
    json: serde_json::Value,
    stderr: String,
}

/// `reader-agent confirm --phone SOCKET --pin-stdin --json`, with `pins` on stdin.
fn confirm(svc: &InProcService, phone: &Phone, pins: &str, extra: &[&str]) -> Run {
    let mut cmd = Command::new(bin("reader-agent").unwrap());
    cmd.args(["confirm", "--pin-stdin", "--json", "--config"])
        .arg(agent_toml())
        .args(["--service", &svc.url(), "--phone"])
        .arg(&phone.socket)
        .args(extra);
    let out = run_with_stdin(cmd, pins, "reader-agent").unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {stdout}; stderr: {stderr}"));
    Run {
        code: out.status.code(),
        json,
        stderr,
    }
}

fn audit_record(confirmation_id: &str) -> AuditRecord {
    let store = store::open(&world().dir.join("store/onshi.sqlite").to_string_lossy()).unwrap();
    let mut found: Vec<AuditRecord> = store
        .query_audit(&AuditQuery::default())
        .unwrap()
        .into_iter()
        .filter(|r| r.confirmation_id == confirmation_id)
        .collect();
    assert_eq!(found.len(), 1, "one audit record for {confirmation_id}");
    found.remove(0)
}

fn assert_confirmed(run: &Run, method: &str, person: &str) {
    assert_eq!(run.code, Some(0), "{}; {}", run.json, run.stderr);
    assert_eq!(run.json["outcome"], "confirmed", "{}", run.json);
    assert_eq!(run.json["result_code"], "RESULT_CODE_OK");
    assert_eq!(run.json["result"]["validity"], 1);
    let id = run.json["result"]["confirmation_id"].as_str().unwrap();
    let record = audit_record(id);
    assert_eq!(record.method, method);
    assert_eq!(record.purpose, "confirm");
    assert_eq!(record.person_id.as_deref(), Some(person));
    assert_eq!(record.result_code, "RESULT_CODE_OK");
}

fn assert_refused(run: &Run, code: &str) {
    assert_eq!(run.code, Some(1), "{}; {}", run.json, run.stderr);
    assert_eq!(run.json["outcome"], "refused", "{}", run.json);
    assert_eq!(run.json["result_code"], code, "{}", run.json);
}

#[test]
fn an_android_phone_confirms_with_the_pin_typed_at_the_reader() {
    let svc = service();
    let entry = phone_entry("phone-01");
    let phone = start_phone("phone-01", "android-ok", false);
    let pin = entry["pin"].as_str().unwrap();
    let run = confirm(
        &svc,
        &phone,
        &format!("{pin}\n"),
        &["--consent", "medication"],
    );
    assert_confirmed(
        &run,
        "smartphone-android",
        entry["person_id"].as_str().unwrap(),
    );
    // The same consent rules as a card: the consent is recorded and echoed.
    assert_eq!(
        run.json["result"]["consents"]["medication"], true,
        "{}",
        run.json
    );
    // The PIN went to the phone only: not in anything the agent printed.
    assert!(!run.stderr.contains(pin) && !run.json.to_string().contains(pin));
}

#[test]
fn an_iphone_confirms_when_its_holder_verifies_on_the_phone() {
    let svc = service();
    let entry = phone_entry("phone-02");
    let phone = start_phone("phone-02", "iphone-ok", false);
    // No PIN at the reader.
    let run = confirm(&svc, &phone, "", &[]);
    assert_confirmed(
        &run,
        "smartphone-iphone",
        entry["person_id"].as_str().unwrap(),
    );
    assert!(run.stderr.contains("iPhone"), "{}", run.stderr);
}

#[test]
fn an_iphone_whose_holder_refuses_signs_nothing() {
    let svc = service();
    let phone = start_phone("phone-02", "iphone-refuse", true);
    let run = confirm(&svc, &phone, "", &[]);
    assert_refused(&run, "RESULT_CODE_PHONE_VERIFICATION_REFUSED");
}

#[test]
fn a_wrong_pin_is_counted_by_the_phone_and_the_right_one_then_confirms() {
    let svc = service();
    let entry = phone_entry("phone-01");
    let phone = start_phone("phone-01", "android-wrong", false);
    let pin = entry["pin"].as_str().unwrap();
    let wrong = if pin == "0000" { "1111" } else { "0000" };
    let run = confirm(&svc, &phone, &format!("{wrong}\n{pin}\n"), &[]);
    assert!(run.stderr.contains("tries left: 2"), "{}", run.stderr);
    assert_confirmed(
        &run,
        "smartphone-android",
        entry["person_id"].as_str().unwrap(),
    );
}

#[test]
fn three_wrong_pins_lock_the_phone_and_then_even_the_right_pin_is_refused() {
    let svc = service();
    let entry = phone_entry("phone-01");
    let phone = start_phone("phone-01", "android-lock", false);
    let pin = entry["pin"].as_str().unwrap();
    let wrong = if pin == "0000" { "1111" } else { "0000" };
    // Two wrong: not locked yet (the agent gives up for want of input).
    let run = confirm(&svc, &phone, &format!("{wrong}\n{wrong}\n"), &[]);
    assert_eq!(run.json["outcome"], "wrong-pin", "{}", run.json);
    assert_eq!(run.json["tries_left"], 1);
    // The third wrong PIN locks it.
    let run = confirm(&svc, &phone, &format!("{wrong}\n{pin}\n"), &[]);
    assert_refused(&run, "RESULT_CODE_PHONE_PIN_LOCKED");
    assert_eq!(run.json["tries_left"], 0);
    let run = confirm(&svc, &phone, &format!("{pin}\n"), &[]);
    assert_refused(&run, "RESULT_CODE_PHONE_PIN_LOCKED");
}

#[test]
fn a_revoked_phone_certificate_is_refused_as_revoked() {
    let svc = service();
    let entry = phone_entry("phone-03");
    assert_eq!(entry["kind"], "revoked");
    let phone = start_phone("phone-03", "revoked", false);
    let run = confirm(
        &svc,
        &phone,
        &format!("{}\n", entry["pin"].as_str().unwrap()),
        &[],
    );
    assert_refused(&run, "RESULT_CODE_CERTIFICATE_REVOKED");
}

#[test]
fn a_phone_certificate_expired_yesterday_is_refused_without_a_grace_period() {
    let svc = service();
    assert_eq!(phone_entry("phone-04")["kind"], "expired");
    let phone = start_phone("phone-04", "expired", false);
    let run = confirm(&svc, &phone, "", &[]);
    assert_refused(&run, "RESULT_CODE_CERTIFICATE_EXPIRED");
    // A card's certificate that expired yesterday is still confirmed (its grace period):
    // the refusal above is the phone's rule, not the date's.
    let card = CardKeys::of(world(), "grace").unwrap();
    let answer = runtime()
        .block_on(async {
            let mut c = client(&svc).await;
            let ch = challenge(&mut c, pb::Purpose::Confirm).await;
            let sig = sign(&card, Purpose::Confirm, &ch);
            c.confirm_by_card(request(&card, &ch, sig, pb::CredentialKind::Card))
                .await
        })
        .unwrap();
    assert_eq!(answer.get_ref().result_code(), ResultCode::Ok);
}

#[test]
fn a_phone_of_a_holder_not_registered_for_insurance_use_is_refused_as_for_a_card() {
    let svc = service();
    let entry = phone_entry("phone-05");
    let phone = start_phone("phone-05", "unregistered", false);
    let run = confirm(
        &svc,
        &phone,
        &format!("{}\n", entry["pin"].as_str().unwrap()),
        &[],
    );
    assert_refused(&run, "RESULT_CODE_CARD_NOT_REGISTERED");
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn client(svc: &InProcService) -> ConfirmationClient<tonic::transport::Channel> {
    let dir = agent_toml().parent().unwrap().to_owned();
    ConfirmationClient::new(
        grpc::channel(world(), &svc.url(), Some(&dir))
            .await
            .unwrap()
            .unwrap(),
    )
}

async fn challenge(
    c: &mut ConfirmationClient<tonic::transport::Channel>,
    purpose: pb::Purpose,
) -> pb::IssueChallengeResponse {
    c.issue_challenge(pb::IssueChallengeRequest {
        purpose: purpose as i32,
    })
    .await
    .unwrap()
    .into_inner()
}

fn sign(keys: &CardKeys, purpose: Purpose, ch: &pb::IssueChallengeResponse) -> Vec<u8> {
    keys.sign(&ChallengeBinding {
        purpose,
        challenge: &ch.challenge,
        terminal_name: &ch.terminal_name,
        certificate_der: &keys.certificate,
        consents: ConsentBits::default(),
    })
    .unwrap()
}

fn request(
    keys: &CardKeys,
    ch: &pb::IssueChallengeResponse,
    signature: Vec<u8>,
    kind: pb::CredentialKind,
) -> pb::ConfirmByCardRequest {
    pb::ConfirmByCardRequest {
        certificate: keys.certificate.clone(),
        challenge: ch.challenge.clone(),
        signature,
        consents: None,
        prescription_issue: 0,
        credential_kind: kind as i32,
        treatment: 0,
        requery_consent: false,
    }
}

/// Signs with `keys` for `purpose` over a challenge of `challenge_purpose`, claims `kind`.
fn attempt(
    svc: &InProcService,
    keys: &CardKeys,
    challenge_purpose: pb::Purpose,
    purpose: Purpose,
    kind: pb::CredentialKind,
) -> Result<pb::ConfirmationResult, Option<ResultCode>> {
    runtime().block_on(async {
        let mut c = client(svc).await;
        let ch = challenge(&mut c, challenge_purpose).await;
        let sig = sign(keys, purpose, &ch);
        c.confirm_by_card(request(keys, &ch, sig, kind))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| onshi_confirm_service::outcome::result_code_of(&s))
    })
}

#[test]
fn a_card_certificate_claimed_as_a_phone_s_is_refused_as_a_credential_kind_mismatch() {
    let svc = service();
    let card = CardKeys::of(world(), "valid").unwrap();
    for (pb_purpose, purpose, kind) in [
        (
            pb::Purpose::SmartphoneAndroid,
            Purpose::SmartphoneAndroid,
            pb::CredentialKind::SmartphoneAndroid,
        ),
        (
            pb::Purpose::SmartphoneIphone,
            Purpose::SmartphoneIphone,
            pb::CredentialKind::SmartphoneIphone,
        ),
    ] {
        assert_eq!(
            attempt(&svc, &card, pb_purpose, purpose, kind).unwrap_err(),
            Some(ResultCode::CredentialKindMismatch)
        );
    }
}

#[test]
fn a_phone_certificate_presented_as_a_card_s_is_refused_as_a_credential_kind_mismatch() {
    let svc = service();
    let phone = CardKeys::of_phone(world(), "phone-01").unwrap();
    for kind in [pb::CredentialKind::Unspecified, pb::CredentialKind::Card] {
        assert_eq!(
            attempt(&svc, &phone, pb::Purpose::Confirm, Purpose::Confirm, kind).unwrap_err(),
            Some(ResultCode::CredentialKindMismatch)
        );
    }
    // And the same phone, claimed as what it is, confirms.
    let ok = attempt(
        &svc,
        &phone,
        pb::Purpose::SmartphoneAndroid,
        Purpose::SmartphoneAndroid,
        pb::CredentialKind::SmartphoneAndroid,
    )
    .unwrap();
    assert_eq!(ok.result_code(), ResultCode::Ok);
}

#[test]
fn an_android_signature_never_passes_as_an_iphone_s() {
    let svc = service();
    let phone = CardKeys::of_phone(world(), "phone-01").unwrap();
    // An Android challenge and binding, claimed as an iPhone: the challenge is not one for
    // the iPhone's purpose.
    assert_eq!(
        attempt(
            &svc,
            &phone,
            pb::Purpose::SmartphoneAndroid,
            Purpose::SmartphoneAndroid,
            pb::CredentialKind::SmartphoneIphone,
        )
        .unwrap_err(),
        Some(ResultCode::ChallengeUnknown)
    );
    // An iPhone challenge with an Android binding: the signature is over other bytes.
    assert_eq!(
        attempt(
            &svc,
            &phone,
            pb::Purpose::SmartphoneIphone,
            Purpose::SmartphoneAndroid,
            pb::CredentialKind::SmartphoneIphone,
        )
        .unwrap_err(),
        Some(ResultCode::SignatureInvalid)
    );
}

/// A 居宅同意取得型 first visit reads the card (docs/domain.md): a phone's signature with the
/// re-query consent is refused as a bad request, whatever it signed.
#[test]
fn a_home_care_first_visit_is_not_made_with_a_phone() {
    let svc = service();
    let phone = CardKeys::of_phone(world(), "phone-01").unwrap();
    let refused = runtime().block_on(async {
        let mut c = client(&svc).await;
        let ch = challenge(&mut c, pb::Purpose::SmartphoneAndroid).await;
        let sig = sign(&phone, Purpose::SmartphoneAndroid, &ch);
        let mut req = request(&phone, &ch, sig, pb::CredentialKind::SmartphoneAndroid);
        req.set_treatment(pb::MedicalTreatment::HomeVisit);
        req.requery_consent = true;
        c.confirm_by_card(req)
            .await
            .map_err(|s| onshi_confirm_service::outcome::result_code_of(&s))
    });
    assert_eq!(refused.unwrap_err(), Some(ResultCode::BadRequest));
}

/// `confirm-service check-cert --config service.toml [--smartphone] CERT`: exit code and the
/// reason.
fn check_cert(cert: &str, smartphone: bool) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin("confirm-service").unwrap());
    cmd.arg("check-cert")
        .arg("--config")
        .arg(world().dir.join("service.toml"));
    if smartphone {
        cmd.arg("--smartphone");
    }
    let out = cmd.arg(world().dir.join(cert)).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_cert_checks_a_phone_certificate_against_the_smartphone_ca() {
    let (code, line) = check_cert("phones/phone-01.pem", true);
    assert_eq!(code, Some(0), "{line}");
    let (code, line) = check_cert("phones/phone-03.pem", true);
    assert_eq!(code, Some(1), "{line}");
    assert!(line.contains("rejected: revoked"), "{line}");
    let (code, line) = check_cert("phones/phone-04.pem", true);
    assert!(
        code == Some(1) && line.contains("rejected: expired"),
        "{line}"
    );
    // Each kind against the other's CA: untrusted.
    let (code, line) = check_cert("phones/phone-01.pem", false);
    assert!(
        code == Some(1) && line.contains("untrusted-issuer"),
        "{line}"
    );
    let (code, line) = check_cert("cards/card-0001.pem", true);
    assert!(
        code == Some(1) && line.contains("untrusted-issuer"),
        "{line}"
    );
}

#[test]
fn without_a_smartphone_ca_a_phone_is_untrusted_and_a_card_claimed_as_one_still_a_mismatch() {
    let text = std::fs::read_to_string(world().dir.join("service.toml")).unwrap();
    let cut = text.find("[validation.smartphone]").unwrap();
    let end = text[cut..].find("\n\n").map_or(text.len(), |i| cut + i);
    let path = world().dir.join("service-no-phones.toml");
    std::fs::write(&path, format!("{}{}", &text[..cut], &text[end..])).unwrap();
    let svc = InProcService::start(&path).unwrap();
    let phone = CardKeys::of_phone(world(), "phone-01").unwrap();
    assert_eq!(
        attempt(
            &svc,
            &phone,
            pb::Purpose::SmartphoneAndroid,
            Purpose::SmartphoneAndroid,
            pb::CredentialKind::SmartphoneAndroid,
        )
        .unwrap_err(),
        Some(ResultCode::CertificateUntrusted)
    );
    let card = CardKeys::of(world(), "valid").unwrap();
    assert_eq!(
        attempt(
            &svc,
            &card,
            pb::Purpose::SmartphoneIphone,
            Purpose::SmartphoneIphone,
            pb::CredentialKind::SmartphoneIphone,
        )
        .unwrap_err(),
        Some(ResultCode::CredentialKindMismatch)
    );
}
