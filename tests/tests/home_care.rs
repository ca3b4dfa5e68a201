//! Home visits and online care (issue 20 item 2; docs/domain.md "Home visits and online care"),
//! through the service over mutual TLS with a clock the test moves: the treatment flag, the
//! 居宅同意取得型 first visit at a mobile device (PIN: binding purpose 60; a staff member's
//! visual check attested by the device's key: purpose 61), the re-query without the card up to
//! the last day of its period and not a moment later, for this institution and treatment only,
//! each with its own audit method, and the batch variant.
//!
//! The world's second pharmacy terminal (1340123452-T02) plays the mobile device: any terminal of
//! the institution with a registered device key may (an assumption, docs/domain.md).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::sync::OnceLock;

use onshi_confirm_service::audit::{AuditQuery, AuditRecord};
use onshi_confirm_service::cert_grace::JST;
use onshi_confirm_service::store;
use onshi_e2e::grpc::{self, CardKeys, DeviceKey};
use onshi_e2e::inproc::InProcService;
use onshi_e2e::World;
use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose, ReaderCheck};
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_proto::v1::{self as pb, MedicalTreatment, ResultCode};
use time::{Duration, OffsetDateTime, Time};
use tonic::transport::Channel;

const PHARMACY_T01: &str = "1340123452-T01";
const MOBILE: &str = "1340123452-T02";
const CLINIC_T01: &str = "1310156789-T01";

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "home-care-world", 8)
}

/// The world's service.toml with stale CRLs accepted: the clock moves two months ahead.
fn config() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let w = world();
        let text = std::fs::read_to_string(w.dir.join("service.toml")).unwrap();
        let text = text.replacen(
            "[validation]\n",
            "[validation]\nstale_crl = \"accept\"\n",
            1,
        );
        assert!(text.contains("stale_crl"));
        let path = w.dir.join("service-stale-crl-accepted.toml");
        std::fs::write(&path, text).unwrap();
        path
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn client(svc: &InProcService, terminal: &str) -> ConfirmationClient<Channel> {
    let dir = world().in_operation_terminal_dir(terminal).unwrap();
    grpc::client(world(), &svc.url(), &dir).await.unwrap()
}

fn code_of(status: &tonic::Status) -> Option<ResultCode> {
    onshi_confirm_service::outcome::result_code_of(status)
}

fn audit_record(confirmation_id: &str) -> AuditRecord {
    let store = store::open(&world().dir.join("store/onshi.sqlite").to_string_lossy()).unwrap();
    let found: Vec<AuditRecord> = store
        .query_audit(&AuditQuery::default())
        .unwrap()
        .into_iter()
        .filter(|r| r.confirmation_id == confirmation_id)
        .collect();
    assert_eq!(found.len(), 1, "one audit record for {confirmation_id}");
    found.into_iter().next().unwrap()
}

/// The method of the newest audit record of a refused request of `terminal` (refusals carry no
/// confirmation id back).
fn last_method(terminal: &str) -> (String, String) {
    let store = store::open(&world().dir.join("store/onshi.sqlite").to_string_lossy()).unwrap();
    let (code, tid) = terminal.split_once('-').unwrap();
    let r = store
        .query_audit(&AuditQuery::default())
        .unwrap()
        .into_iter()
        .filter(|r| r.institution_code == code && r.terminal_id == tid)
        .max_by_key(|r| r.at)
        .unwrap();
    (r.method, r.result_code)
}

async fn challenge(c: &mut ConfirmationClient<Channel>, purpose: pb::Purpose) -> (Vec<u8>, String) {
    let r = c
        .issue_challenge(pb::IssueChallengeRequest {
            purpose: purpose as i32,
        })
        .await
        .unwrap()
        .into_inner();
    (r.challenge, r.terminal_name)
}

/// A PIN-mode confirmation over a challenge of `challenge_purpose`, the card signing a binding
/// of `signed` purpose, the request saying `treatment` and `requery_consent`.
async fn by_card(
    c: &mut ConfirmationClient<Channel>,
    card: &CardKeys,
    challenge_purpose: pb::Purpose,
    signed: Purpose,
    treatment: MedicalTreatment,
    requery_consent: bool,
) -> Result<pb::ConfirmationResult, tonic::Status> {
    let (ch, name) = challenge(c, challenge_purpose).await;
    let signature = card
        .sign(&ChallengeBinding {
            purpose: signed,
            challenge: &ch,
            terminal_name: &name,
            certificate_der: &card.certificate,
            consents: ConsentBits::default(),
        })
        .unwrap();
    c.confirm_by_card(pb::ConfirmByCardRequest {
        certificate: card.certificate.clone(),
        challenge: ch,
        signature,
        treatment: treatment as i32,
        requery_consent,
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

/// A 居宅同意取得型 first visit in PIN mode at the mobile device.
async fn first_visit_pin(
    c: &mut ConfirmationClient<Channel>,
    card: &CardKeys,
    treatment: MedicalTreatment,
) -> Result<pb::ConfirmationResult, tonic::Status> {
    by_card(
        c,
        card,
        pb::Purpose::HomeCareConfirm,
        Purpose::HomeCareConfirm,
        treatment,
        true,
    )
    .await
}

/// A first visit by a visual check at `terminal`, attested by its device key over `purpose`.
async fn first_visit_visual(
    c: &mut ConfirmationClient<Channel>,
    terminal: &str,
    card: &CardKeys,
    treatment: MedicalTreatment,
    method: pb::ReaderMethod,
) -> Result<pb::ConfirmationResult, tonic::Status> {
    let (ch, name) = challenge(c, pb::Purpose::HomeCareVisualCheck).await;
    let staff = "N-0042";
    let binding = ChallengeBinding {
        purpose: Purpose::HomeCareVisualCheck,
        challenge: &ch,
        terminal_name: &name,
        certificate_der: &card.certificate,
        consents: ConsentBits::default(),
    }
    .encode_attested(&ReaderCheck::Visual { staff_id: staff })
    .unwrap();
    let key = DeviceKey::of(&world().in_operation_terminal_dir(terminal).unwrap()).unwrap();
    c.confirm_by_reader(pb::ConfirmByReaderRequest {
        certificate: card.certificate.clone(),
        challenge: ch,
        method: method as i32,
        staff_id: staff.into(),
        face_match: Some(pb::FaceMatch {
            score_permille: 900,
            threshold_permille: 800,
        }),
        attestation: key.sign(&binding).unwrap(),
        treatment: treatment as i32,
        requery_consent: true,
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

fn numbers_of(q: &pb::Qualification) -> pb::NumbersQuery {
    pb::NumbersQuery {
        insurer_number: q.insurer_number.clone(),
        symbol: q.symbol.clone(),
        number: q.number.clone(),
        branch: q.branch.clone(),
        birth_date: q.birth_date.clone(),
        ..Default::default()
    }
}

fn requery(numbers: &pb::NumbersQuery, treatment: MedicalTreatment) -> pb::ConfirmByNumbersRequest {
    pb::ConfirmByNumbersRequest {
        query: Some(pb::NumbersQuery {
            treatment: treatment as i32,
            requery: true,
            ..numbers.clone()
        }),
        ..Default::default()
    }
}

fn yyyymmdd(d: time::Date) -> String {
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The last day of the month after `d`'s, computed here independently of the service.
fn end_of_next_month(d: time::Date) -> time::Date {
    let mut day = d;
    while day.month() == d.month() {
        day = day.next_day().unwrap();
    }
    let next = day.month();
    while day.next_day().unwrap().month() == next {
        day = day.next_day().unwrap();
    }
    day
}

/// The first instant of a JST day.
fn jst_midnight(d: time::Date) -> OffsetDateTime {
    d.with_time(Time::MIDNIGHT).assume_offset(JST)
}

async fn batch(
    c: &mut ConfirmationClient<Channel>,
    queries: Vec<pb::NumbersQuery>,
) -> Vec<pb::BatchItemResult> {
    let submitted = c
        .submit_batch(pb::SubmitBatchRequest { queries })
        .await
        .unwrap()
        .into_inner();
    for _ in 0..200 {
        let r = c
            .get_batch_result(pb::GetBatchResultRequest {
                reception_number: submitted.reception_number.clone(),
                from: 0,
                limit: 10,
            })
            .await
            .unwrap()
            .into_inner();
        if r.status() == pb::BatchStatus::Done {
            return r.items;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the batch did not finish within 20 s");
}

/// The whole period of a home-visit first visit in PIN mode: the answer's period, the re-query
/// on its last day (23:59:59 JST) and refused from the first instant of the day after, refused
/// for another institution and for the other treatment, the batch variant, and each step's
/// audit method.
#[test]
fn a_home_visit_first_visit_opens_a_requery_period_until_the_end_of_the_next_month() {
    let card = CardKeys::of(world(), "valid").unwrap();
    // Now, with the world's CRLs current: the first visit.
    let svc = InProcService::start(config()).unwrap();
    let first = svc.now();
    runtime().block_on(async {
        let mut mobile = client(&svc, MOBILE).await;
        let mut clinic = client(&svc, CLINIC_T01).await;
        let r = first_visit_pin(&mut mobile, &card, MedicalTreatment::HomeVisit)
            .await
            .unwrap();
        assert_eq!(r.result_code(), ResultCode::Ok);
        assert_eq!(r.treatment(), MedicalTreatment::HomeVisit);
        let period = r.home_care.clone().expect("the period");
        let last = end_of_next_month(first.to_offset(JST).date());
        assert_eq!(period.requery_until, yyyymmdd(last));
        let until = yyyymmdd(last);
        assert_eq!(period.consented_on, yyyymmdd(first.to_offset(JST).date()));
        assert_eq!(period.institution_code, "1340123452");
        assert_eq!(period.treatment(), MedicalTreatment::HomeVisit);
        let record = audit_record(&r.confirmation_id);
        assert_eq!(record.method, "mobile-pin");
        assert!(
            record.returned.contains("\"treatment\":2"),
            "{}",
            record.returned
        );
        assert!(record.returned.contains(&until), "{}", record.returned);
        let numbers = numbers_of(&r.qualifications[0]);
        // world.json names this holder for the case.
        let e = world().manifest["examples"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["case"] == "home-visit-requery")
            .expect("the home-visit-requery example")
            .clone();
        assert_eq!(e["insurer_number"], numbers.insurer_number.as_str());
        assert_eq!(e["number"], numbers.number.as_str());
        assert_eq!(e["birth_date"], numbers.birth_date.as_str());

        // The last instant of the period: the re-query answers, from any terminal of the
        // institution, without the card, with the period.
        svc.advance(jst_midnight(last.next_day().unwrap()) - Duration::seconds(1) - svc.now());
        let mut desk = client(&svc, PHARMACY_T01).await;
        let r = desk
            .confirm_by_numbers(requery(&numbers, MedicalTreatment::HomeVisit))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.result_code(), ResultCode::Ok);
        assert_eq!(r.validity(), pb::QualificationValidity::Valid);
        assert_eq!(r.treatment(), MedicalTreatment::HomeVisit);
        assert_eq!(r.home_care.as_ref().unwrap().requery_until, until);
        assert_eq!(audit_record(&r.confirmation_id).method, "requery");

        // Another institution, the other treatment, 外来: refused, each with its code.
        let s = clinic
            .confirm_by_numbers(requery(&numbers, MedicalTreatment::HomeVisit))
            .await
            .unwrap_err();
        assert_eq!(code_of(&s), Some(ResultCode::RequeryNotConsented));
        assert_eq!(
            last_method(CLINIC_T01),
            ("requery".into(), "RESULT_CODE_REQUERY_NOT_CONSENTED".into())
        );
        let s = desk
            .confirm_by_numbers(requery(&numbers, MedicalTreatment::Online))
            .await
            .unwrap_err();
        assert_eq!(code_of(&s), Some(ResultCode::RequeryNotConsented));
        let s = desk
            .confirm_by_numbers(requery(&numbers, MedicalTreatment::Outpatient))
            .await
            .unwrap_err();
        assert_eq!(code_of(&s), Some(ResultCode::InvalidField));
        // Numbers nobody has: the same refusal as no consent (nothing told about who has them).
        let nobody = pb::NumbersQuery {
            birth_date: "19000101".into(),
            ..numbers.clone()
        };
        let s = desk
            .confirm_by_numbers(requery(&nobody, MedicalTreatment::HomeVisit))
            .await
            .unwrap_err();
        assert_eq!(code_of(&s), Some(ResultCode::RequeryNotConsented));
        // An ordinary query by numbers carries the flag and needs no consent.
        let r = clinic
            .confirm_by_numbers(pb::ConfirmByNumbersRequest {
                query: Some(pb::NumbersQuery {
                    treatment: MedicalTreatment::Online as i32,
                    ..numbers.clone()
                }),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.result_code(), ResultCode::Ok);
        assert_eq!(r.treatment(), MedicalTreatment::Online);
        assert!(r.home_care.is_none());
        assert_eq!(audit_record(&r.confirmation_id).method, "numbers");

        // The batch variant on the last day: the re-query answers, the unconsented one is an
        // error item with its own code.
        let items = batch(
            &mut desk,
            vec![
                requery(&numbers, MedicalTreatment::HomeVisit)
                    .query
                    .unwrap(),
                requery(&numbers, MedicalTreatment::Online).query.unwrap(),
            ],
        )
        .await;
        let r0 = items[0].result.clone().unwrap();
        assert_eq!(r0.result_code(), ResultCode::Ok);
        assert_eq!(r0.home_care.unwrap().requery_until, until);
        assert_eq!(audit_record(&r0.confirmation_id).method, "requery");
        let r1 = items[1].result.clone().unwrap();
        assert_eq!(r1.processing_status(), pb::ProcessingStatus::Error);
        assert_eq!(r1.result_code(), ResultCode::RequeryNotConsented);
        assert!(items[1].query.as_ref().unwrap().requery);

        // The first instant of the day after: the period has ended, alone and in a batch.
        svc.advance(Duration::seconds(1));
        let s = desk
            .confirm_by_numbers(requery(&numbers, MedicalTreatment::HomeVisit))
            .await
            .unwrap_err();
        assert_eq!(code_of(&s), Some(ResultCode::RequeryPeriodEnded));
        assert!(s.message().contains(&until), "{}", s.message());
        let items = batch(
            &mut desk,
            vec![requery(&numbers, MedicalTreatment::HomeVisit)
                .query
                .unwrap()],
        )
        .await;
        let r = items[0].result.clone().unwrap();
        assert_eq!(r.result_code(), ResultCode::RequeryPeriodEnded);

        // A new first visit with the card opens a new period.
        let r = first_visit_pin(&mut mobile, &card, MedicalTreatment::HomeVisit)
            .await
            .unwrap();
        let renewed = end_of_next_month(last.next_day().unwrap());
        assert_eq!(r.home_care.unwrap().requery_until, yyyymmdd(renewed));
        let r = desk
            .confirm_by_numbers(requery(&numbers, MedicalTreatment::HomeVisit))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.result_code(), ResultCode::Ok);
    });
}

/// The binding's purpose commits the re-query consent: an ordinary signature sent as a first
/// visit, or a first-visit challenge used for an ordinary confirmation, are refused; a first
/// visit needs treatment 2 or 3; an ordinary confirmation echoes its treatment and opens no
/// period.
#[test]
fn a_first_visit_needs_its_own_purpose_and_a_home_care_treatment() {
    let card = CardKeys::of(world(), "valid").unwrap();
    let svc = InProcService::start(config()).unwrap();
    runtime().block_on(async {
        let mut mobile = client(&svc, MOBILE).await;
        let s = by_card(
            &mut mobile,
            &card,
            pb::Purpose::HomeCareConfirm,
            Purpose::Confirm,
            MedicalTreatment::HomeVisit,
            true,
        )
        .await
        .unwrap_err();
        assert_eq!(code_of(&s), Some(ResultCode::SignatureInvalid));
        assert_eq!(last_method(MOBILE).0, "mobile-pin");
        let s = by_card(
            &mut mobile,
            &card,
            pb::Purpose::HomeCareConfirm,
            Purpose::HomeCareConfirm,
            MedicalTreatment::HomeVisit,
            false,
        )
        .await
        .unwrap_err();
        // The challenge is sealed for its purpose: refused as a challenge of another use.
        assert!(
            matches!(
                code_of(&s),
                Some(ResultCode::ChallengeUnknown | ResultCode::ChallengeOtherTerminal)
            ),
            "{s:?}"
        );
        let s = first_visit_pin(&mut mobile, &card, MedicalTreatment::Outpatient)
            .await
            .unwrap_err();
        assert_eq!(code_of(&s), Some(ResultCode::InvalidField));
        let s = by_card(
            &mut mobile,
            &card,
            pb::Purpose::Confirm,
            Purpose::Confirm,
            MedicalTreatment::Outpatient,
            false,
        )
        .await;
        let r = s.unwrap();
        assert_eq!(r.treatment(), MedicalTreatment::Outpatient);
        assert!(r.home_care.is_none());
        assert_eq!(audit_record(&r.confirmation_id).method, "pin");
        let s = by_card(
            &mut mobile,
            &card,
            pb::Purpose::Confirm,
            Purpose::Confirm,
            MedicalTreatment::Unspecified,
            false,
        )
        .await
        .unwrap();
        assert_eq!(s.treatment, 0, "no flag sent, none echoed");
        let mut raw = pb::ConfirmByCardRequest {
            treatment: 9,
            ..Default::default()
        };
        raw.certificate = card.certificate.clone();
        let s = mobile.confirm_by_card(raw).await.unwrap_err();
        assert_eq!(code_of(&s), Some(ResultCode::UnknownEnumValue));
    });
}

/// Online care by a staff member's visual check at the mobile device, attested by its key:
/// its own audit method, then the re-query for online care (at the institution of the first
/// visit only); a face match cannot make a first visit.
#[test]
fn an_online_care_first_visit_by_visual_check_allows_online_requeries() {
    let card = CardKeys::of(world(), "valid").unwrap();
    let svc = InProcService::start(config()).unwrap();
    runtime().block_on(async {
        let mut clinic = client(&svc, CLINIC_T01).await;
        let r = first_visit_visual(
            &mut clinic,
            CLINIC_T01,
            &card,
            MedicalTreatment::Online,
            pb::ReaderMethod::VisualCheck,
        )
        .await
        .unwrap();
        assert_eq!(r.result_code(), ResultCode::Ok);
        assert_eq!(r.treatment(), MedicalTreatment::Online);
        let period = r.home_care.clone().unwrap();
        assert_eq!(period.treatment(), MedicalTreatment::Online);
        assert_eq!(
            period.requery_until,
            yyyymmdd(end_of_next_month(svc.now().to_offset(JST).date()))
        );
        assert_eq!(
            audit_record(&r.confirmation_id).method,
            "mobile-visual:N-0042"
        );
        let numbers = numbers_of(&r.qualifications[0]);
        let r = clinic
            .confirm_by_numbers(requery(&numbers, MedicalTreatment::Online))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.result_code(), ResultCode::Ok);
        assert_eq!(r.home_care.unwrap().treatment(), MedicalTreatment::Online);

        let s = first_visit_visual(
            &mut clinic,
            CLINIC_T01,
            &card,
            MedicalTreatment::Online,
            pb::ReaderMethod::Face,
        )
        .await
        .unwrap_err();
        assert_eq!(code_of(&s), Some(ResultCode::InvalidField));
        // Another terminal's key cannot attest for this one.
        let s = first_visit_visual(
            &mut clinic,
            PHARMACY_T01,
            &card,
            MedicalTreatment::Online,
            pb::ReaderMethod::VisualCheck,
        )
        .await
        .unwrap_err();
        assert_eq!(code_of(&s), Some(ResultCode::AttestationInvalid));
    });
}
