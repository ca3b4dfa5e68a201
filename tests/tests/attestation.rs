//! Face and visual-check confirmations (`ConfirmByReader`) against a real service over mutual
//! TLS. The reader's attestation is made here exactly as the reader agent makes it: the
//! terminal's device key (`device-key.p8` in its folder, whose public key the testbed
//! registered in the store) signs `ChallengeBinding::encode_attested` with ECDSA P-256.
//!
//! In this binary's world the clinic's terminal `1310156789-T01` has its device key removed
//! from the store (its `device-key.p8` stays on disk), so it plays the in-operation terminal
//! without a registered reader; and the `multiple` card's holder gets a dispensed drug on
//! record, so the replay test has a patient whose medication history only a consent opens
//! (no other test here confirms that card, so nobody else gives them a consent).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::sync::OnceLock;

use onshi_confirm_service::answer::yyyymmdd;
use onshi_confirm_service::audit::{AuditQuery, AuditRecord};
use onshi_confirm_service::clinical::Medication;
use onshi_confirm_service::clock::{Clock, SystemClock};
use onshi_confirm_service::store::{self, LoadBatch, Terminal};
use onshi_e2e::grpc::{self, CardKeys, DeviceKey};
use onshi_e2e::inproc::InProcService;
use onshi_e2e::World;
use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose, ReaderCheck};
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_proto::v1::{self as pb, ResultCode};
use rsa::sha2::{Digest, Sha256};
use tonic::transport::Channel;

const PHARMACY: &str = "1340123452";
const PHARMACY_T01: &str = "1340123452-T01";
const PHARMACY_T02: &str = "1340123452-T02";
/// In operation, but without a device key in this binary's store.
const KEYLESS: &str = "1310156789-T01";

fn world() -> &'static World {
    static KEY_REMOVED: OnceLock<()> = OnceLock::new();
    let world = World::shared(env!("CARGO_TARGET_TMPDIR"), "attestation-world", 8);
    KEY_REMOVED.get_or_init(|| {
        let store = store::open(&world.dir.join("store/onshi.sqlite").to_string_lossy())
            .expect("open the world's store");
        let (code, id) = KEYLESS.split_once('-').unwrap();
        let before = store
            .terminal(code, id)
            .unwrap()
            .expect("the clinic terminal");
        assert!(
            before.device_public_key.is_some(),
            "the testbed registers a device key for every terminal in the store"
        );
        store
            .load(&LoadBatch {
                terminals: vec![Terminal {
                    device_public_key: None,
                    ..before
                }],
                ..LoadBatch::default()
            })
            .expect("remove the clinic terminal's device key");
        let person = holder(world, PATIENT_CARD);
        let today = SystemClock.now().date();
        store
            .load(&LoadBatch {
                medications: vec![Medication {
                    person_id: person,
                    dispensed_on: today - time::Duration::days(7),
                    institution_code: PHARMACY.into(),
                    institution_name: "テスト薬局".into(),
                    drug_code: PATIENT_DRUG.into(),
                    drug_name: "アムロジピン錠５ｍｇ".into(),
                    usage: "1日1回朝食後".into(),
                    daily_quantity: "1錠".into(),
                    days: 28,
                }],
                ..LoadBatch::default()
            })
            .expect("give the patient a dispensed drug");
    });
    world
}

/// The card of the replay test's patient (see the module comment).
const PATIENT_CARD: &str = "multiple";
/// The drug the world's setup puts on the patient's record.
const PATIENT_DRUG: &str = "621000000099";
/// How a confirmation of the patient is answered when carried out: they hold two current
/// qualifications (validity 5 複数該当).
const CARRIED_OUT: ResultCode = ResultCode::MultipleQualifications;

fn holder(world: &World, kind: &str) -> String {
    world.card(kind).unwrap()["person_id"]
        .as_str()
        .unwrap()
        .to_owned()
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

fn terminal_dir(name: &str) -> PathBuf {
    world().in_operation_terminal_dir(name).unwrap()
}

async fn client(service: &InProcService, terminal: &str) -> ConfirmationClient<Channel> {
    grpc::client(world(), &service.url(), &terminal_dir(terminal))
        .await
        .unwrap()
}

fn card(kind: &str) -> CardKeys {
    CardKeys::of(world(), kind).unwrap()
}

fn device_key(terminal: &str) -> DeviceKey {
    DeviceKey::of(&terminal_dir(terminal)).unwrap()
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

struct Challenge {
    bytes: Vec<u8>,
    terminal_name: String,
}

fn face(score: u16, threshold: u16) -> ReaderCheck<'static> {
    ReaderCheck::Face {
        score_permille: score,
        threshold_permille: threshold,
    }
}

/// The reader's attestation: `key` signs the binding of `check` (purpose 3 for a face check,
/// 4 for a visual one).
fn attest(
    key: &DeviceKey,
    card: &CardKeys,
    ch: &Challenge,
    check: ReaderCheck<'_>,
    consents: ConsentBits,
) -> Vec<u8> {
    let purpose = match check {
        ReaderCheck::Face { .. } => Purpose::Face,
        ReaderCheck::Visual { .. } => Purpose::VisualCheck,
    };
    let binding = ChallengeBinding {
        purpose,
        challenge: &ch.bytes,
        terminal_name: &ch.terminal_name,
        certificate_der: &card.certificate,
        consents,
    }
    .encode_attested(&check)
    .unwrap();
    key.sign(&binding).unwrap()
}

/// The request claiming `check`, carrying `attestation`.
fn request(
    card: &CardKeys,
    ch: &Challenge,
    check: ReaderCheck<'_>,
    consents: ConsentBits,
    attestation: Vec<u8>,
) -> pb::ConfirmByReaderRequest {
    let bits = consents.bits();
    let mut req = pb::ConfirmByReaderRequest {
        certificate: card.certificate.clone(),
        challenge: ch.bytes.clone(),
        consents: Some(pb::Consents {
            comprehensive: Default::default(),
            medication: bits & ConsentBits::MEDICATION != 0,
            checkup: bits & ConsentBits::CHECKUP != 0,
            clinical: bits & ConsentBits::CLINICAL != 0,
            surgery: bits & ConsentBits::SURGERY != 0,
        }),
        attestation,
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

fn refusal(status: &tonic::Status) -> Option<ResultCode> {
    onshi_confirm_service::outcome::result_code_of(status)
}

fn audit_log() -> Vec<AuditRecord> {
    let store = store::open(&world().dir.join("store/onshi.sqlite").to_string_lossy()).unwrap();
    store.query_audit(&AuditQuery::default()).unwrap()
}

fn audit_record(confirmation_id: &str) -> AuditRecord {
    let mut found: Vec<AuditRecord> = audit_log()
        .into_iter()
        .filter(|r| r.confirmation_id == confirmation_id)
        .collect();
    assert_eq!(found.len(), 1, "one audit record for {confirmation_id}");
    found.remove(0)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_face_confirmation_is_answered_and_audited_as_face() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let (card, key) = (card("valid"), device_key(PHARMACY_T01));
        let consents = ConsentBits::new(true, false, false, true);
        let ch = challenge(&mut c, pb::Purpose::Face).await;
        let check = face(912, 800);
        let attestation = attest(&key, &card, &ch, check, consents);
        let result = c
            .confirm_by_reader(request(&card, &ch, check, consents, attestation.clone()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(result.result_code(), ResultCode::Ok);
        assert_eq!(result.validity(), pb::QualificationValidity::Valid);
        assert_eq!(
            result.reference_classification(),
            pb::ReferenceClassification::MyNumberCard
        );
        assert!(!result.qualifications.is_empty());
        let echo = result.consents.as_ref().unwrap();
        assert!(echo.medication.as_ref().unwrap().given);
        assert!(echo.surgery.as_ref().unwrap().given);
        assert!(!echo.checkup.as_ref().is_some_and(|c| c.given));

        let record = audit_record(&result.confirmation_id);
        assert_eq!(record.method, "face");
        assert_eq!(record.purpose, "confirm");
        assert_eq!(record.result_code, "RESULT_CODE_OK");
        assert_eq!(record.terminal_id, "T01");
        assert_eq!(record.consents, consents.bits());
        assert_eq!(
            record.certificate_sha256.as_deref(),
            Some(sha256_hex(&card.certificate).as_str())
        );
        assert_eq!(
            record.person_id.as_deref(),
            world().card("valid").unwrap()["person_id"].as_str()
        );

        // The challenge is single use, attested or not.
        let err = c
            .confirm_by_reader(request(&card, &ch, check, consents, attestation))
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::ChallengeReused), "{err:?}");
    });
}

#[test]
fn a_visual_check_is_answered_and_audited_with_the_staff_id() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T02).await;
        let (card, key) = (card("valid"), device_key(PHARMACY_T02));
        let ch = challenge(&mut c, pb::Purpose::VisualCheck).await;
        let check = ReaderCheck::Visual { staff_id: "N-0042" };
        let attestation = attest(&key, &card, &ch, check, ConsentBits::default());
        let result = c
            .confirm_by_reader(request(
                &card,
                &ch,
                check,
                ConsentBits::default(),
                attestation,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(result.result_code(), ResultCode::Ok);
        assert_eq!(result.validity(), pb::QualificationValidity::Valid);
        let record = audit_record(&result.confirmation_id);
        assert_eq!(record.method, "visual:N-0042");
        assert_eq!(record.terminal_id, "T02");
        assert_eq!(record.result_code, "RESULT_CODE_OK");
    });
}

/// Every face attestation that does not hold is refused with ATTESTATION_INVALID and audited
/// as a face attempt; the same card, terminal and key then succeed, so each refusal is the
/// attestation's own fault. (Only this test uses the `lost` card, so its audit records are
/// exactly these.)
#[test]
fn face_attestations_that_do_not_hold_are_refused_and_audited() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let card = card("lost");
        let key = device_key(PHARMACY_T01);
        let another_terminals_key = device_key(PHARMACY_T02);
        assert_ne!(key.public_key(), another_terminals_key.public_key());
        let none = ConsentBits::default();
        let mut refused = 0;

        type Attempt = fn(
            &DeviceKey,
            &DeviceKey,
            &CardKeys,
            &Challenge,
        ) -> (ReaderCheck<'static>, ConsentBits, Vec<u8>);
        let attempts: [(&str, Attempt); 6] = [
            ("no attestation", |_, _, _, _| {
                (face(912, 800), ConsentBits::default(), Vec::new())
            }),
            (
                "attested by another terminal's key",
                |_, other, card, ch| {
                    let sig = attest(other, card, ch, face(912, 800), ConsentBits::default());
                    (face(912, 800), ConsentBits::default(), sig)
                },
            ),
            ("attested over another score", |key, _, card, ch| {
                let sig = attest(key, card, ch, face(950, 800), ConsentBits::default());
                (face(912, 800), ConsentBits::default(), sig)
            }),
            ("attested over other consents", |key, _, card, ch| {
                let all = ConsentBits::new(true, true, true, true);
                let sig = attest(key, card, ch, face(912, 800), all);
                (face(912, 800), ConsentBits::default(), sig)
            }),
            ("score below its threshold", |key, _, card, ch| {
                let sig = attest(key, card, ch, face(799, 800), ConsentBits::default());
                (face(799, 800), ConsentBits::default(), sig)
            }),
            (
                "threshold below the service's minimum (800)",
                |key, _, card, ch| {
                    let sig = attest(key, card, ch, face(990, 799), ConsentBits::default());
                    (face(990, 799), ConsentBits::default(), sig)
                },
            ),
        ];
        for (what, attempt) in attempts {
            let ch = challenge(&mut c, pb::Purpose::Face).await;
            let (check, consents, attestation) = attempt(&key, &another_terminals_key, &card, &ch);
            let err = c
                .confirm_by_reader(request(&card, &ch, check, consents, attestation))
                .await
                .expect_err(what);
            assert_eq!(
                refusal(&err),
                Some(ResultCode::AttestationInvalid),
                "{what}: {err:?}"
            );
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{what}");
            refused += 1;
        }
        // A malformed attestation (not DER) and an oversized one are refused the same way.
        for junk in [vec![0x30; 8], vec![0x30; 4096]] {
            let ch = challenge(&mut c, pb::Purpose::Face).await;
            let err = c
                .confirm_by_reader(request(&card, &ch, face(912, 800), none, junk))
                .await
                .unwrap_err();
            assert_eq!(refusal(&err), Some(ResultCode::AttestationInvalid));
            refused += 1;
        }
        // A visual-check attestation is no face attestation, even over the same challenge.
        let ch = challenge(&mut c, pb::Purpose::Face).await;
        let binding = ChallengeBinding {
            purpose: Purpose::VisualCheck,
            challenge: &ch.bytes,
            terminal_name: &ch.terminal_name,
            certificate_der: &card.certificate,
            consents: none,
        }
        .encode_attested(&ReaderCheck::Visual { staff_id: "N-0042" })
        .unwrap();
        let err = c
            .confirm_by_reader(request(
                &card,
                &ch,
                face(912, 800),
                none,
                key.sign(&binding).unwrap(),
            ))
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::AttestationInvalid));
        refused += 1;

        // The same card, terminal and key with a good attestation: carried out.
        let ch = challenge(&mut c, pb::Purpose::Face).await;
        let attestation = attest(&key, &card, &ch, face(800, 800), none);
        let ok = c
            .confirm_by_reader(request(&card, &ch, face(800, 800), none, attestation))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ok.result_code(), ResultCode::Ok);
        assert_eq!(ok.validity(), pb::QualificationValidity::Invalid, "lost");

        // Every refusal was audited, as a face attempt of this terminal with this card.
        let hash = sha256_hex(&card.certificate);
        let records: Vec<AuditRecord> = audit_log()
            .into_iter()
            .filter(|r| r.certificate_sha256.as_deref() == Some(hash.as_str()))
            .collect();
        let invalid: Vec<&AuditRecord> = records
            .iter()
            .filter(|r| r.result_code == "RESULT_CODE_ATTESTATION_INVALID")
            .collect();
        assert_eq!(invalid.len(), refused, "{records:#?}");
        for r in &invalid {
            assert_eq!(r.method, "face");
            assert_eq!(r.purpose, "confirm");
            assert_eq!(r.terminal_id, "T01");
            assert_eq!(r.person_id, None, "refused before the person was looked up");
        }
        assert_eq!(
            records.len(),
            refused + 1,
            "and the one that was carried out"
        );
    });
}

#[test]
fn a_visual_attestation_over_another_staff_id_is_refused() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let (card, key) = (card("valid"), device_key(PHARMACY_T01));
        let none = ConsentBits::default();
        let ch = challenge(&mut c, pb::Purpose::VisualCheck).await;
        let signed = attest(
            &key,
            &card,
            &ch,
            ReaderCheck::Visual { staff_id: "N-0042" },
            none,
        );
        let claimed = ReaderCheck::Visual { staff_id: "N-0043" };
        let err = c
            .confirm_by_reader(request(&card, &ch, claimed, none, signed))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(&err),
            Some(ResultCode::AttestationInvalid),
            "{err:?}"
        );
        // No attestation at all.
        let ch = challenge(&mut c, pb::Purpose::VisualCheck).await;
        let err = c
            .confirm_by_reader(request(&card, &ch, claimed, none, Vec::new()))
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::AttestationInvalid));
    });
}

/// A challenge serves the purpose it was issued for: a PIN-mode challenge cannot carry a face
/// confirmation, nor a face challenge a PIN-mode one or a visual check.
#[test]
fn challenges_serve_only_their_purpose() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let (card, key) = (card("valid"), device_key(PHARMACY_T01));
        let none = ConsentBits::default();

        // A PURPOSE_CONFIRM challenge, properly attested for face.
        let confirm = challenge(&mut c, pb::Purpose::Confirm).await;
        let attestation = attest(&key, &card, &confirm, face(912, 800), none);
        let err = c
            .confirm_by_reader(request(&card, &confirm, face(912, 800), none, attestation))
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::ChallengeUnknown), "{err:?}");
        // Refused for its purpose, not consumed: the card can still use it in PIN mode.
        let binding = ChallengeBinding {
            purpose: Purpose::Confirm,
            challenge: &confirm.bytes,
            terminal_name: &confirm.terminal_name,
            certificate_der: &card.certificate,
            consents: none,
        };
        let signature = card.sign(&binding).unwrap();
        let pin = pb::ConfirmByCardRequest {
            prescription_issue: Default::default(),
            credential_kind: 0,
            certificate: card.certificate.clone(),
            challenge: confirm.bytes.clone(),
            signature: signature.clone(),
            consents: None,
            treatment: 0,
            requery_consent: false,
        };
        let ok = c.confirm_by_card(pin).await.unwrap().into_inner();
        assert_eq!(ok.result_code(), ResultCode::Ok);

        // A PURPOSE_FACE challenge in PIN mode (the card signing purpose 1 over it).
        let face_challenge = challenge(&mut c, pb::Purpose::Face).await;
        let binding = ChallengeBinding {
            purpose: Purpose::Confirm,
            challenge: &face_challenge.bytes,
            terminal_name: &face_challenge.terminal_name,
            certificate_der: &card.certificate,
            consents: none,
        };
        let err = c
            .confirm_by_card(pb::ConfirmByCardRequest {
                prescription_issue: Default::default(),
                credential_kind: 0,
                certificate: card.certificate.clone(),
                challenge: face_challenge.bytes.clone(),
                signature: card.sign(&binding).unwrap(),
                consents: None,
                treatment: 0,
                requery_consent: false,
            })
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::ChallengeUnknown), "{err:?}");

        // The same face challenge for a visual check.
        let visual = ReaderCheck::Visual { staff_id: "N-0042" };
        let attestation = attest(&key, &card, &face_challenge, visual, none);
        let err = c
            .confirm_by_reader(request(&card, &face_challenge, visual, none, attestation))
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::ChallengeUnknown), "{err:?}");

        // And still good for what it was issued for.
        let attestation = attest(&key, &card, &face_challenge, face(912, 800), none);
        let ok = c
            .confirm_by_reader(request(
                &card,
                &face_challenge,
                face(912, 800),
                none,
                attestation,
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ok.result_code(), ResultCode::Ok);
    });
}

#[test]
fn a_terminal_without_a_registered_device_key_cannot_attest() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, KEYLESS).await;
        // The reader still holds a key on disk; the service knows none for the terminal.
        let (card, key) = (card("valid"), device_key(KEYLESS));
        let none = ConsentBits::default();
        let ch = challenge(&mut c, pb::Purpose::Face).await;
        let attestation = attest(&key, &card, &ch, face(912, 800), none);
        let err = c
            .confirm_by_reader(request(&card, &ch, face(912, 800), none, attestation))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(&err),
            Some(ResultCode::AttestationInvalid),
            "{err:?}"
        );
        assert!(err.message().contains("no device key"), "{err:?}");
        // PIN mode is unaffected on that terminal.
        let ch = challenge(&mut c, pb::Purpose::Confirm).await;
        let binding = ChallengeBinding {
            purpose: Purpose::Confirm,
            challenge: &ch.bytes,
            terminal_name: &ch.terminal_name,
            certificate_der: &card.certificate,
            consents: none,
        };
        let ok = c
            .confirm_by_card(pb::ConfirmByCardRequest {
                prescription_issue: Default::default(),
                credential_kind: 0,
                certificate: card.certificate.clone(),
                challenge: ch.bytes.clone(),
                signature: card.sign(&binding).unwrap(),
                consents: None,
                treatment: 0,
                requery_consent: false,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ok.result_code(), ResultCode::Ok);
    });
}

/// The card behind a reader confirmation is checked as in PIN mode: its certificate (here
/// revoked and expired ones, with good attestations) and its holder's registration.
#[test]
fn the_card_is_checked_as_in_pin_mode() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let key = device_key(PHARMACY_T01);
        let none = ConsentBits::default();
        for (kind, code) in [
            ("unregistered", ResultCode::CardNotRegistered),
            ("revoked", ResultCode::CertificateRevoked),
            ("expired", ResultCode::CertificateExpired),
        ] {
            let card = card(kind);
            let ch = challenge(&mut c, pb::Purpose::Face).await;
            let attestation = attest(&key, &card, &ch, face(912, 800), none);
            let err = c
                .confirm_by_reader(request(&card, &ch, face(912, 800), none, attestation))
                .await
                .unwrap_err();
            assert_eq!(refusal(&err), Some(code), "{kind}: {err:?}");
        }
    });
}

#[test]
fn malformed_reader_requests_get_specific_codes() {
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let (card, key) = (card("valid"), device_key(PHARMACY_T01));
        let none = ConsentBits::default();
        let ch = challenge(&mut c, pb::Purpose::Face).await;
        let good = request(
            &card,
            &ch,
            face(912, 800),
            none,
            attest(&key, &card, &ch, face(912, 800), none),
        );
        type Breakage = fn(&mut pb::ConfirmByReaderRequest);
        let cases: [(&str, Breakage, ResultCode); 7] = [
            ("no method", |r| r.method = 0, ResultCode::MissingField),
            (
                "unknown method",
                |r| r.method = 9,
                ResultCode::UnknownEnumValue,
            ),
            (
                "face without a face match",
                |r| r.face_match = None,
                ResultCode::MissingField,
            ),
            (
                "score over 1000",
                |r| r.face_match.as_mut().unwrap().score_permille = 1001,
                ResultCode::BadRequest,
            ),
            (
                "visual check without a staff id",
                |r| r.set_method(pb::ReaderMethod::VisualCheck),
                ResultCode::MissingField,
            ),
            (
                "staff id with a space",
                |r| {
                    r.set_method(pb::ReaderMethod::VisualCheck);
                    r.staff_id = "N 0042".into();
                },
                ResultCode::InvalidField,
            ),
            (
                "short challenge",
                |r| r.challenge.truncate(5),
                ResultCode::BadRequest,
            ),
        ];
        for (what, break_it, code) in cases {
            let mut bad = good.clone();
            break_it(&mut bad);
            let err = c.confirm_by_reader(bad).await.unwrap_err();
            assert_eq!(refusal(&err), Some(code), "{what}: {err:?}");
        }
        // None of these touched the challenge: the good request still goes through.
        let ok = c.confirm_by_reader(good).await.unwrap().into_inner();
        assert_eq!(ok.result_code(), ResultCode::Ok);
    });
}

/// The patient's insurance-card numbers, for the clinical-data look-ups (by numbers, as a
/// pharmacy's staff screen asks).
fn patient() -> (String, pb::ClinicalDataRequest) {
    let person_id = holder(world(), PATIENT_CARD);
    let store = store::open(&world().dir.join("store/onshi.sqlite").to_string_lossy()).unwrap();
    let person = store.person(&person_id).unwrap().expect("the patient");
    let record = store
        .qualifications(&person_id)
        .unwrap()
        .into_iter()
        .find(|r| r.disqualification_date.is_none())
        .expect("a current qualification");
    let query = pb::NumbersQuery {
        insurer_number: record.insurer_number.as_str().to_owned(),
        symbol: record.symbol.clone().unwrap_or_default(),
        number: record.number.clone(),
        branch: record.branch.clone().unwrap_or_default(),
        birth_date: yyyymmdd(person.birth_date),
        ..Default::default()
    };
    (
        person_id,
        pb::ClinicalDataRequest {
            patient: Some(query),
        },
    )
}

/// The patient's medication and checkup data stay closed to the pharmacy: both look-ups
/// answer CONSENT_MISSING and the store holds no consent of theirs for it.
async fn assert_no_clinical_data(
    c: &mut ConfirmationClient<Channel>,
    person_id: &str,
    patient: &pb::ClinicalDataRequest,
    after: &str,
) {
    let err = c.get_medications(patient.clone()).await.unwrap_err();
    assert_eq!(
        refusal(&err),
        Some(ResultCode::ConsentMissing),
        "medications after {after}: {err:?}"
    );
    let err = c.get_checkups(patient.clone()).await.unwrap_err();
    assert_eq!(
        refusal(&err),
        Some(ResultCode::ConsentMissing),
        "checkups after {after}: {err:?}"
    );
    let store = store::open(&world().dir.join("store/onshi.sqlite").to_string_lossy()).unwrap();
    assert_eq!(
        store.consents(person_id, PHARMACY).unwrap(),
        Vec::new(),
        "consents recorded after {after}"
    );
}

/// A terminal that once read a card (its certificate needs no PIN) cannot turn an earlier face
/// or visual-check attestation into a confirmation that opens clinical data: the attestation
/// is bound to the service's fresh single-use challenge and to the consents. Replaying the
/// request, changing its consents, or carrying the attestation over to a new challenge is
/// refused, and the patient's medication history stays closed; an honest attestation with the
/// consent opens it (so the look-up can succeed at all). What a terminal signing a new
/// attestation with its own device key can still do is the remaining risk of
/// docs/security-attestation-section.md.
#[test]
fn a_replayed_or_reused_attestation_opens_no_clinical_data() {
    let svc = service();
    let (person_id, patient) = patient();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let mut other = client(&svc, PHARMACY_T02).await;
        let (card, key) = (card(PATIENT_CARD), device_key(PHARMACY_T01));
        let another_card = self::card("valid");
        let none = ConsentBits::default();
        let medication = ConsentBits::new(true, false, false, false);
        let medication_checkup = pb::Consents {
            medication: true,
            checkup: true,
            ..Default::default()
        };
        let person = person_id.as_str();

        // The patient has drugs on record and never consented at this pharmacy.
        let store = store::open(&world().dir.join("store/onshi.sqlite").to_string_lossy()).unwrap();
        assert!(
            store
                .medications(person)
                .unwrap()
                .iter()
                .any(|m| m.drug_code == PATIENT_DRUG),
            "the patient has medication history"
        );
        assert_no_clinical_data(&mut c, person, &patient, "nothing").await;

        // (a) Replay. A legitimate face confirmation without consents...
        let check = face(912, 800);
        let ch = challenge(&mut c, pb::Purpose::Face).await;
        let attestation = attest(&key, &card, &ch, check, none);
        let honest = request(&card, &ch, check, none, attestation.clone());
        let ok = c
            .confirm_by_reader(honest.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ok.result_code(), CARRIED_OUT);
        assert!(!ok
            .consents
            .as_ref()
            .unwrap()
            .medication
            .as_ref()
            .is_some_and(|m| m.given));
        assert_no_clinical_data(
            &mut c,
            person,
            &patient,
            "a face confirmation without consents",
        )
        .await;
        // ...re-sent byte for byte: the challenge is spent.
        let err = c.confirm_by_reader(honest.clone()).await.unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::ChallengeReused), "{err:?}");
        assert_no_clinical_data(&mut c, person, &patient, "a byte-identical replay").await;
        // ...re-sent with the consents changed to medication and checkup (the attestation no
        // longer matches either; the spent challenge is what the service reports).
        let mut with_consents = honest;
        with_consents.consents = Some(medication_checkup);
        let err = c
            .confirm_by_reader(with_consents.clone())
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::ChallengeReused), "{err:?}");
        assert_no_clinical_data(&mut c, person, &patient, "a replay with consents").await;
        // ...re-sent by the pharmacy's other terminal: the challenge is not its own.
        let err = other.confirm_by_reader(with_consents).await.unwrap_err();
        assert_eq!(
            refusal(&err),
            Some(ResultCode::ChallengeOtherTerminal),
            "{err:?}"
        );
        assert_no_clinical_data(&mut c, person, &patient, "a replay by another terminal").await;

        // (b) Re-use: the earlier attestation with a new, fresh challenge, as signed (no
        // consents) and with the medication consent. The fresh challenge is in the signed
        // bytes, so the attestation does not verify.
        for consents in [none, medication] {
            let fresh = challenge(&mut c, pb::Purpose::Face).await;
            let err = c
                .confirm_by_reader(request(&card, &fresh, check, consents, attestation.clone()))
                .await
                .unwrap_err();
            assert_eq!(
                refusal(&err),
                Some(ResultCode::AttestationInvalid),
                "consents {:#04x}: {err:?}",
                consents.bits()
            );
            assert_eq!(err.code(), tonic::Code::Unauthenticated);
            assert_no_clinical_data(&mut c, person, &patient, "an attestation re-used").await;
        }

        // ...nor does an attestation made over a fresh challenge for another card (one this
        // terminal also read), sent with the patient's certificate: the certificate's hash is
        // in the signed bytes too.
        let fresh = challenge(&mut c, pb::Purpose::Face).await;
        let for_another_card = attest(&key, &another_card, &fresh, check, medication);
        let err = c
            .confirm_by_reader(request(&card, &fresh, check, medication, for_another_card))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(&err),
            Some(ResultCode::AttestationInvalid),
            "{err:?}"
        );
        assert_no_clinical_data(&mut c, person, &patient, "another card's attestation").await;

        // (c) The same for a visual check (目視確認).
        let visual = ReaderCheck::Visual { staff_id: "N-0042" };
        let ch = challenge(&mut c, pb::Purpose::VisualCheck).await;
        let visual_attestation = attest(&key, &card, &ch, visual, none);
        let honest_visual = request(&card, &ch, visual, none, visual_attestation.clone());
        let ok = c
            .confirm_by_reader(honest_visual.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ok.result_code(), CARRIED_OUT);
        assert_no_clinical_data(&mut c, person, &patient, "a visual check without consents").await;
        let err = c
            .confirm_by_reader(honest_visual.clone())
            .await
            .unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::ChallengeReused), "{err:?}");
        let mut with_consents = honest_visual;
        with_consents.consents = Some(medication_checkup);
        let err = c.confirm_by_reader(with_consents).await.unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::ChallengeReused), "{err:?}");
        let fresh = challenge(&mut c, pb::Purpose::VisualCheck).await;
        let err = c
            .confirm_by_reader(request(
                &card,
                &fresh,
                visual,
                medication,
                visual_attestation,
            ))
            .await
            .unwrap_err();
        assert_eq!(
            refusal(&err),
            Some(ResultCode::AttestationInvalid),
            "{err:?}"
        );
        assert_no_clinical_data(&mut c, person, &patient, "visual-check replays").await;

        // Every attempt was audited against this card, with its method and the consents it
        // claimed; none recorded a consent.
        let hash = sha256_hex(&card.certificate);
        let attempts: Vec<(String, String, u8)> = audit_log()
            .into_iter()
            .filter(|r| r.certificate_sha256.as_deref() == Some(hash.as_str()))
            .map(|r| (r.method, r.result_code, r.consents))
            .collect();
        let mc = ConsentBits::new(true, true, false, false).bits();
        let expected: Vec<(String, String, u8)> = [
            ("face", "RESULT_CODE_MULTIPLE_QUALIFICATIONS", 0),
            ("face", "RESULT_CODE_CHALLENGE_REUSED", 0),
            ("face", "RESULT_CODE_CHALLENGE_REUSED", mc),
            ("face", "RESULT_CODE_CHALLENGE_OTHER_TERMINAL", mc),
            ("face", "RESULT_CODE_ATTESTATION_INVALID", 0),
            ("face", "RESULT_CODE_ATTESTATION_INVALID", medication.bits()),
            ("face", "RESULT_CODE_ATTESTATION_INVALID", medication.bits()),
            ("visual:N-0042", "RESULT_CODE_MULTIPLE_QUALIFICATIONS", 0),
            ("visual:N-0042", "RESULT_CODE_CHALLENGE_REUSED", 0),
            ("visual:N-0042", "RESULT_CODE_CHALLENGE_REUSED", mc),
            (
                "visual:N-0042",
                "RESULT_CODE_ATTESTATION_INVALID",
                medication.bits(),
            ),
        ]
        .into_iter()
        .map(|(m, r, b)| (m.to_owned(), r.to_owned(), b))
        .collect();
        assert_eq!(attempts, expected);

        // Control: a fresh, honest face attestation with the medication consent opens the
        // medication history (and only that: no checkup consent was given).
        let ch = challenge(&mut c, pb::Purpose::Face).await;
        let attestation = attest(&key, &card, &ch, check, medication);
        let consented = request(&card, &ch, check, medication, attestation);
        let ok = c
            .confirm_by_reader(consented.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ok.result_code(), CARRIED_OUT);
        assert!(
            ok.consents
                .as_ref()
                .unwrap()
                .medication
                .as_ref()
                .unwrap()
                .given
        );
        let meds = c
            .get_medications(patient.clone())
            .await
            .unwrap()
            .into_inner();
        assert!(
            meds.medications.iter().any(|m| m.drug_code == PATIENT_DRUG),
            "{meds:?}"
        );
        assert_eq!(
            meds.medications.len(),
            store.medications(person).unwrap().len()
        );
        let err = c.get_checkups(patient.clone()).await.unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::ConsentMissing), "{err:?}");

        // Replaying even that consented request does not renew the consent (its 24 hours run
        // from the honest confirmation): consents are written only with an accepted challenge.
        let granted = store.consents(person, PHARMACY).unwrap();
        assert_eq!(granted.len(), 1, "{granted:?}");
        let err = c.confirm_by_reader(consented).await.unwrap_err();
        assert_eq!(refusal(&err), Some(ResultCode::ChallengeReused), "{err:?}");
        assert_eq!(store.consents(person, PHARMACY).unwrap(), granted);
    });
}
