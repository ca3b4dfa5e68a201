//! The rules in force on 2026-12-02 that this binary checks through the service (gRPC over
//! mutual TLS, a real store): registration of a face-only card without a PIN
//! (`RegisterByReader`, binding purpose 40), 包括同意 (one consent for every kind), the
//! patient's 電子処方箋 choice carried and echoed, and 導入医療機関リスト (`ListInstitutions`
//! and `confirm-service institutions`).
//!
//! The reader's attestation is made here as the reader agent makes it: the terminal's device
//! key signs `ChallengeBinding::encode_attested`; the card's signature as the card makes it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::Command;

use onshi_confirm_service::audit::{AuditQuery, AuditRecord};
use onshi_confirm_service::store;
use onshi_e2e::grpc::{self, CardKeys, DeviceKey};
use onshi_e2e::inproc::InProcService;
use onshi_e2e::{bin, World};
use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose, ReaderCheck};
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_proto::v1::{self as pb, ResultCode};
use rsa::sha2::{Digest, Sha256};
use tonic::transport::Channel;

const PHARMACY_T01: &str = "1340123452-T01";
const CLINIC_T01: &str = "1310156789-T01";

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "rules-2026-reception-world", 8)
}

fn service() -> InProcService {
    InProcService::start(&world().dir.join("service.toml")).expect("confirm-service")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn client(service: &InProcService, terminal: &str) -> ConfirmationClient<Channel> {
    let dir = world().in_operation_terminal_dir(terminal).unwrap();
    grpc::client(world(), &service.url(), &dir).await.unwrap()
}

fn device_key(terminal: &str) -> DeviceKey {
    DeviceKey::of(&world().in_operation_terminal_dir(terminal).unwrap()).unwrap()
}

fn card(kind: &str) -> CardKeys {
    CardKeys::of(world(), kind).unwrap()
}

struct Challenge {
    bytes: Vec<u8>,
    terminal_name: String,
}

async fn challenge(c: &mut ConfirmationClient<Channel>, purpose: pb::Purpose) -> Challenge {
    let r = c
        .issue_challenge(pb::IssueChallengeRequest {
            purpose: purpose as i32,
        })
        .await
        .unwrap()
        .into_inner();
    Challenge {
        bytes: r.challenge,
        terminal_name: r.terminal_name,
    }
}

fn refusal(status: &tonic::Status) -> Option<ResultCode> {
    onshi_confirm_service::outcome::result_code_of(status)
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

const FACE: ReaderCheck<'static> = ReaderCheck::Face {
    score_permille: 912,
    threshold_permille: 800,
};

/// A registration by reader: `purpose` is the binding's (40 unless a test forges another).
fn register_request(
    key: &DeviceKey,
    card: &CardKeys,
    ch: &Challenge,
    check: ReaderCheck<'_>,
    purpose: Purpose,
) -> pb::RegisterByReaderRequest {
    let binding = ChallengeBinding {
        purpose,
        challenge: &ch.bytes,
        terminal_name: &ch.terminal_name,
        certificate_der: &card.certificate,
        consents: ConsentBits::default(),
    }
    .encode_attested(&check)
    .unwrap();
    let mut req = pb::RegisterByReaderRequest {
        certificate: card.certificate.clone(),
        challenge: ch.bytes.clone(),
        attestation: key.sign(&binding).unwrap(),
        ..Default::default()
    };
    match check {
        ReaderCheck::Face {
            score_permille,
            threshold_permille,
        } => {
            req.set_method(pb::ReaderMethod::Face);
            req.face_match = Some(pb::FaceMatch {
                score_permille: u32::from(score_permille),
                threshold_permille: u32::from(threshold_permille),
            });
        }
        ReaderCheck::Visual { staff_id } => {
            req.set_method(pb::ReaderMethod::VisualCheck);
            req.staff_id = staff_id.to_owned();
        }
    }
    req
}

/// A face confirmation of `card` with `consents` and `prescription`.
async fn confirm_by_face(
    c: &mut ConfirmationClient<Channel>,
    terminal: &str,
    card: &CardKeys,
    consents: pb::Consents,
    prescription: pb::PrescriptionIssue,
) -> Result<pb::ConfirmationResult, tonic::Status> {
    let ch = challenge(c, pb::Purpose::Face).await;
    let binding = ChallengeBinding {
        purpose: Purpose::Face,
        challenge: &ch.bytes,
        terminal_name: &ch.terminal_name,
        certificate_der: &card.certificate,
        consents: ConsentBits::from_request(&consents).unwrap_or_default(),
    }
    .encode_attested(&FACE)
    .unwrap();
    let req = pb::ConfirmByReaderRequest {
        certificate: card.certificate.clone(),
        challenge: ch.bytes,
        method: pb::ReaderMethod::Face as i32,
        face_match: Some(pb::FaceMatch {
            score_permille: 912,
            threshold_permille: 800,
        }),
        consents: Some(consents),
        attestation: device_key(terminal).sign(&binding).unwrap(),
        prescription_issue: prescription as i32,
        ..Default::default()
    };
    c.confirm_by_reader(req).await.map(|r| r.into_inner())
}

/// A PIN-mode confirmation: the card signs the binding with `signed` consent bits; the
/// request carries `consents` and `prescription` (raw, so a test may send a value this
/// version does not know).
async fn confirm_by_card(
    c: &mut ConfirmationClient<Channel>,
    card: &CardKeys,
    signed: ConsentBits,
    consents: pb::Consents,
    prescription: i32,
) -> Result<pb::ConfirmationResult, tonic::Status> {
    let ch = challenge(c, pb::Purpose::Confirm).await;
    let binding = ChallengeBinding {
        purpose: Purpose::Confirm,
        challenge: &ch.bytes,
        terminal_name: &ch.terminal_name,
        certificate_der: &card.certificate,
        consents: signed,
    }
    .encode()
    .unwrap();
    let signature = card
        .key
        .sign(
            rsa::Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(&binding),
        )
        .unwrap();
    c.confirm_by_card(pb::ConfirmByCardRequest {
        certificate: card.certificate.clone(),
        challenge: ch.bytes,
        signature,
        consents: Some(consents),
        prescription_issue: prescription,
        treatment: 0,
        requery_consent: false,
        credential_kind: 0,
    })
    .await
    .map(|r| r.into_inner())
}

fn comprehensive() -> pb::Consents {
    ConsentBits::comprehensive().into()
}

fn numbers_of(kind: &str) -> pb::NumbersQuery {
    let case = match kind {
        "valid" => "comprehensive-consent",
        other => panic!("no example for {other}"),
    };
    let e = world().manifest["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["case"] == case)
        .unwrap_or_else(|| panic!("world.json has no {case} example"));
    let text = |k: &str| e[k].as_str().unwrap_or("").to_owned();
    pb::NumbersQuery {
        insurer_number: text("insurer_number"),
        symbol: text("symbol"),
        number: text("number"),
        branch: text("branch"),
        birth_date: text("birth_date"),
        as_of_date: text("as_of_date"),
        treatment: 0,
        requery: false,
        public_expense_number: text("public_expense_number"),
        recipient_number: text("recipient_number"),
    }
}

// ---- 顔認証マイナンバーカード: registration without a PIN -----------------------------------

#[test]
fn a_face_only_card_registers_by_face_then_confirms() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let (card, key) = (card("face-only-unregistered"), device_key(PHARMACY_T01));
        // Before: not registered.
        let before = confirm_by_face(
            &mut c,
            PHARMACY_T01,
            &card,
            pb::Consents::default(),
            pb::PrescriptionIssue::Unspecified,
        )
        .await
        .unwrap_err();
        assert_eq!(refusal(&before), Some(ResultCode::CardNotRegistered));

        let ch = challenge(&mut c, pb::Purpose::RegisterByReader).await;
        let r = c
            .register_by_reader(register_request(
                &key,
                &card,
                &ch,
                FACE,
                Purpose::RegisterByReader,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.result_code(), ResultCode::Ok);
        assert!(r.newly_registered);
        let record = audit_record(&r.confirmation_id);
        assert_eq!(
            (record.method.as_str(), record.purpose.as_str()),
            ("face", "register")
        );
        assert_eq!(record.result_code, "RESULT_CODE_OK");

        // Idempotent: a second registration changes nothing.
        let ch = challenge(&mut c, pb::Purpose::RegisterByReader).await;
        let again = c
            .register_by_reader(register_request(
                &key,
                &card,
                &ch,
                FACE,
                Purpose::RegisterByReader,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(!again.newly_registered);

        // After: the face confirmation is answered.
        let after = confirm_by_face(
            &mut c,
            PHARMACY_T01,
            &card,
            pb::Consents::default(),
            pb::PrescriptionIssue::Unspecified,
        )
        .await
        .unwrap();
        assert_eq!(after.result_code(), ResultCode::Ok);
        assert_eq!(after.validity(), pb::QualificationValidity::Valid);
        // The holder's 資格確認書 is reported as recorded: registering at the reader does not
        // re-issue it (docs/domain.md "Insurance documents", an assumption).
        let d = after.insurance_document.expect("the holder's document");
        assert_eq!(d.kind(), pb::DocumentKind::ShikakuKakuninsho);
        assert!(!d.valid_until.is_empty());
    });
}

#[test]
fn a_visual_check_registers_and_the_record_names_the_staff_member() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        // The service cannot tell whether a card has a PIN: a PIN card's holder may be
        // registered this way too (docs/protocol.md, the assumption).
        let (card, key) = (card("unregistered"), device_key(PHARMACY_T01));
        let ch = challenge(&mut c, pb::Purpose::RegisterByReader).await;
        let check = ReaderCheck::Visual { staff_id: "N-0042" };
        let r = c
            .register_by_reader(register_request(
                &key,
                &card,
                &ch,
                check,
                Purpose::RegisterByReader,
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(r.newly_registered);
        let record = audit_record(&r.confirmation_id);
        assert_eq!(record.method, "visual:N-0042");
        assert_eq!(record.purpose, "register");
    });
}

#[test]
fn a_registration_by_reader_is_refused_for_anything_but_its_own_challenge_and_binding() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let (card, key) = (card("face-only-unregistered"), device_key(PHARMACY_T01));
        // A face confirmation's challenge, a PIN registration's: not for this.
        for purpose in [pb::Purpose::Face, pb::Purpose::Register] {
            let ch = challenge(&mut c, purpose).await;
            let err = c
                .register_by_reader(register_request(
                    &key,
                    &card,
                    &ch,
                    FACE,
                    Purpose::RegisterByReader,
                ))
                .await
                .unwrap_err();
            assert_eq!(
                refusal(&err),
                Some(ResultCode::ChallengeUnknown),
                "{purpose:?}"
            );
        }
        // A face confirmation's attestation (purpose 3) does not register.
        let ch = challenge(&mut c, pb::Purpose::RegisterByReader).await;
        let err = c
            .register_by_reader(register_request(&key, &card, &ch, FACE, Purpose::Face))
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::AttestationInvalid));
        // Another terminal's device key does not either.
        let ch = challenge(&mut c, pb::Purpose::RegisterByReader).await;
        let err = c
            .register_by_reader(register_request(
                &device_key(CLINIC_T01),
                &card,
                &ch,
                FACE,
                Purpose::RegisterByReader,
            ))
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::AttestationInvalid));
        // The face policy: a score one below its threshold is refused, at the threshold it
        // would pass (not sent here: it would register the holder for the other tests).
        let low = ReaderCheck::Face {
            score_permille: 799,
            threshold_permille: 800,
        };
        let ch = challenge(&mut c, pb::Purpose::RegisterByReader).await;
        let err = c
            .register_by_reader(register_request(
                &key,
                &card,
                &ch,
                low,
                Purpose::RegisterByReader,
            ))
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::AttestationInvalid));
        // No method: a missing field; an unknown one: its own code.
        let ch = challenge(&mut c, pb::Purpose::RegisterByReader).await;
        let mut req = register_request(&key, &card, &ch, FACE, Purpose::RegisterByReader);
        req.method = 0;
        let err = c.register_by_reader(req.clone()).await.unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::MissingField));
        req.method = 9;
        let err = c.register_by_reader(req).await.unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::UnknownEnumValue));
    });
}

// ---- 包括同意 ------------------------------------------------------------------------------

#[test]
fn a_comprehensive_consent_records_every_kind_and_opens_both_kinds_of_data() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let card = card("valid");
        let result = confirm_by_card(
            &mut c,
            &card,
            ConsentBits::comprehensive(),
            comprehensive(),
            0,
        )
        .await
        .unwrap();
        assert_eq!(result.result_code(), ResultCode::Ok);
        let echo = result.consents.unwrap();
        assert!(echo.comprehensive);
        for (kind, record) in [
            ("medication", &echo.medication),
            ("checkup", &echo.checkup),
            ("clinical", &echo.clinical),
            ("surgery", &echo.surgery),
        ] {
            let r = record.as_ref().unwrap();
            assert!(r.given, "{kind}");
            let (given, until) = (r.given_at.unwrap(), r.valid_until.unwrap());
            assert_eq!(until.seconds - given.seconds, 24 * 3600, "{kind}: 24 hours");
        }
        let record = audit_record(&result.confirmation_id);
        assert_eq!(record.consents, 0x1f, "the audit record says 包括同意");
        // Both kinds of data open to this institution.
        let patient = Some(numbers_of("valid"));
        let meds = c
            .get_medications(pb::ClinicalDataRequest {
                patient: patient.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(!meds.medications.is_empty());
        let checkups = c
            .get_checkups(pb::ClinicalDataRequest { patient })
            .await
            .unwrap()
            .into_inner();
        assert!(!checkups.checkups.is_empty());
    });
}

#[test]
fn a_comprehensive_consent_needs_every_kind_and_the_cards_signature_over_it() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let card = card("valid");
        // 包括同意 claimed without one kind: contradictory.
        for missing in 0..4 {
            let mut consents = comprehensive();
            match missing {
                0 => consents.medication = false,
                1 => consents.checkup = false,
                2 => consents.clinical = false,
                _ => consents.surgery = false,
            }
            let err = confirm_by_card(&mut c, &card, ConsentBits::comprehensive(), consents, 0)
                .await
                .unwrap_err();
            assert_eq!(refusal(&err), Some(ResultCode::InvalidField), "{missing}");
        }
        // The card signed four individual consents; the request claims 包括同意: the
        // signature does not cover it.
        let err = confirm_by_card(
            &mut c,
            &card,
            ConsentBits::new(true, true, true, true),
            comprehensive(),
            0,
        )
        .await
        .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::SignatureInvalid));
        // Four individual consents, signed as such: not echoed as 包括同意.
        let individual = confirm_by_card(
            &mut c,
            &card,
            ConsentBits::new(true, true, true, true),
            ConsentBits::new(true, true, true, true).into(),
            0,
        )
        .await
        .unwrap();
        assert!(!individual.consents.unwrap().comprehensive);
        assert_eq!(audit_record(&individual.confirmation_id).consents, 0x0f);
    });
}

// ---- 資格確認書 / 資格情報のお知らせ on card confirmations ---------------------------------

/// A card confirmation reports the holder's recorded document as a query by numbers does,
/// by PIN (ConfirmByCard) and by face (ConfirmByReader) alike: a registered holder's
/// 資格情報のお知らせ, with no period and valid on the day.
#[test]
fn a_card_confirmation_reports_the_holders_document_like_a_query_by_numbers() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let card = card("valid");
        let by_numbers = c
            .confirm_by_numbers(pb::ConfirmByNumbersRequest {
                query: Some(numbers_of("valid")),
                claimed_visit_time: None,
            })
            .await
            .unwrap()
            .into_inner()
            .insurance_document
            .expect("the numbers' answer carries the document");
        assert_eq!(by_numbers.kind(), pb::DocumentKind::ShikakuJohoOshirase);
        assert_eq!(
            (
                by_numbers.valid_from.as_str(),
                by_numbers.valid_until.as_str()
            ),
            ("", "")
        );
        assert!(by_numbers.valid_on_as_of_date);
        let by_pin = confirm_by_card(
            &mut c,
            &card,
            ConsentBits::default(),
            pb::Consents::default(),
            0,
        )
        .await
        .unwrap();
        assert_eq!(by_pin.insurance_document.as_ref(), Some(&by_numbers));
        let by_face = confirm_by_face(
            &mut c,
            PHARMACY_T01,
            &card,
            pb::Consents::default(),
            pb::PrescriptionIssue::Unspecified,
        )
        .await
        .unwrap();
        assert_eq!(by_face.insurance_document.as_ref(), Some(&by_numbers));
    });
}

// ---- 電子処方箋 ----------------------------------------------------------------------------

#[test]
fn the_prescription_choice_is_echoed_for_card_and_face_and_an_unknown_one_refused() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, CLINIC_T01).await;
        let card = card("valid");
        for choice in [
            pb::PrescriptionIssue::Unspecified,
            pb::PrescriptionIssue::Electronic,
            pb::PrescriptionIssue::Paper,
        ] {
            let r = confirm_by_card(
                &mut c,
                &card,
                ConsentBits::default(),
                pb::Consents::default(),
                choice as i32,
            )
            .await
            .unwrap();
            assert_eq!(r.prescription_issue(), choice);
        }
        let r = confirm_by_face(
            &mut c,
            CLINIC_T01,
            &card,
            pb::Consents::default(),
            pb::PrescriptionIssue::Paper,
        )
        .await
        .unwrap();
        assert_eq!(r.prescription_issue(), pb::PrescriptionIssue::Paper);
        // The first value past the known ones.
        let err = confirm_by_card(
            &mut c,
            &card,
            ConsentBits::default(),
            pb::Consents::default(),
            3,
        )
        .await
        .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::UnknownEnumValue));
    });
}

// ---- 導入医療機関リスト ----------------------------------------------------------------------

#[test]
fn the_institution_list_has_those_with_a_terminal_in_operation() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let list = c
            .list_institutions(pb::ListInstitutionsRequest {})
            .await
            .unwrap()
            .into_inner()
            .institutions;
        let registry = world().manifest["institutions"].as_array().unwrap();
        let mut listed: Vec<&serde_json::Value> =
            registry.iter().filter(|i| i["listed"] == true).collect();
        listed.sort_by_key(|i| i["institution_code"].as_str().unwrap().to_owned());
        assert_eq!(list.len(), listed.len());
        assert_eq!(
            list.len(),
            2,
            "the pharmacy and the clinic, not the dental clinic"
        );
        for (got, want) in list.iter().zip(listed) {
            assert_eq!(got.institution_code, want["institution_code"]);
            assert_eq!(got.name, want["name"]);
            assert_eq!(got.started_on, want["started_on"]);
            assert_eq!(got.prefecture, "13");
            assert_eq!(got.prefecture_name, "東京都");
        }
        let pharmacy = list
            .iter()
            .find(|i| i.institution_code == "1340123452")
            .unwrap();
        assert_eq!(pharmacy.terminals_in_operation, 2, "T09 is suspended");
    });
}

#[test]
fn a_suspended_terminal_cannot_ask_for_the_institution_list() {
    let svc = service();
    runtime().block_on(async {
        let agent_toml = world().terminal("suspended", 0).unwrap();
        let dir = agent_toml.parent().unwrap();
        let mut c = grpc::client(world(), &svc.url(), dir).await.unwrap();
        let err = c
            .list_institutions(pb::ListInstitutionsRequest {})
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::TerminalNotInOperation));
    });
}

#[test]
fn the_institutions_command_prints_csv_and_json() {
    let config = world().dir.join("service.toml");
    let run = |args: &[&str]| {
        Command::new(bin("confirm-service").unwrap())
            .arg("institutions")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--config", config.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let mut csv = csv::Reader::from_reader(&out.stdout[..]);
    assert_eq!(
        csv.headers().unwrap().iter().collect::<Vec<_>>(),
        onshi_confirm_service::institutions::CSV_HEADER
    );
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][0], "1310156789");
    assert_eq!(&rows[0][1], "さくら内科クリニック");
    assert_eq!(&rows[1][5], "2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 institution(s)"));

    let out = run(&["--config", config.to_str().unwrap(), "--format", "json"]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    assert_eq!(json[1]["name"], "みなと薬局");
    assert_eq!(json[1]["prefecture_name"], "東京都");

    // Usage errors: exit 2 with a reason.
    let out = run(&["--config", config.to_str().unwrap(), "--format", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["--store", "/nonexistent/onshi.sqlite"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no store file"));
}

#[test]
fn the_reader_agent_prints_the_institution_list() {
    let svc = service();
    let agent_toml = world().terminal("in-operation", 0).unwrap();
    let run = |extra: &[&str]| {
        Command::new(bin("reader-agent").unwrap())
            .arg("institutions")
            .arg("--config")
            .arg(&agent_toml)
            .args(["--service", &svc.url()])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(out.status.success(), "{out:?}");
    let mut csv = csv::Reader::from_reader(&out.stdout[..]);
    assert_eq!(
        csv.headers().unwrap().iter().collect::<Vec<_>>(),
        onshi_confirm_service::institutions::CSV_HEADER
    );
    let codes: Vec<String> = csv.records().map(|r| r.unwrap()[0].to_owned()).collect();
    assert_eq!(codes, ["1310156789", "1340123452"]);
    let out = run(&["--json"]);
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["name"], "さくら内科クリニック");
    assert_eq!(json[1]["terminals_in_operation"], 2);
}
