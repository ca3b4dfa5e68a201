//! The domain API of `onshi.v1.Confirmation` over real mutual TLS: confirmation by the
//! insurance card's numbers (every qualification validity and the result fields), the per-field
//! validation codes, consent-gated medication and checkup data, registration for insurance use
//! (idempotent, kept by a renewed certificate), and the audit record every request leaves.
//!
//! The data these tests need beyond the world's fixed card roles (clinical rows, a person who
//! changed insurer, a 後期高齢者医療 member) is written into the world's store by the tests
//! themselves, before the first service starts: the population generator is not relied on.
//! Every test starts its own service on the shared world; the fixture persons are the tests'
//! own, so parallel tests cannot disturb each other's expectations.
//!
//! Over 1,200 lines on purpose: one world and one set of fixtures for every domain rule the
//! service answers, in numbered sections (by numbers, input validation, consents, registration).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;
use std::sync::OnceLock;

use onshi_confirm_service::answer::yyyymmdd;
use onshi_confirm_service::audit::{AuditQuery, AuditRecord};
use onshi_confirm_service::clinical::{Checkup, Medication};
use onshi_confirm_service::clock::{Clock, SystemClock};
use onshi_confirm_service::consent::CONSENT_VALIDITY;
use onshi_confirm_service::eligibility::{
    parse_yyyymmdd, HighCostLimit, InsurerNumber, Person, QualificationRecord,
};
use onshi_confirm_service::outcome::result_code_of;
use onshi_confirm_service::store::{CardKey, LoadBatch, SqliteStore, Store};
use onshi_e2e::grpc::{self, CardKeys};
use onshi_e2e::inproc::InProcService;
use onshi_e2e::World;
use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose};
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_proto::v1::{self as pb, ResultCode};
use rsa::pkcs8::DecodePrivateKey;
use rsa::sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tonic::transport::Channel;
use tonic::Code;
use tonic_types::StatusExt;

const PHARMACY_T01: &str = "1340123452-T01";
const PHARMACY_T02: &str = "1340123452-T02";
const CLINIC_T01: &str = "1310156789-T01";
const PHARMACY: &str = "1340123452";
const CLINIC: &str = "1310156789";

/// A person who changed insurer: the old record was lost (03 他保険取得) the day the new one
/// started. Fixture data of these tests.
const CHANGED: &str = "P900000001";
/// A 後期高齢者医療 member (法別 39: no 記号, no 枝番), 2割. Fixture data of these tests.
const KOKI: &str = "P900000002";

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "domain-world", 8)
}

fn store() -> SqliteStore {
    SqliteStore::open(&world().dir.join("store/onshi.sqlite")).expect("the world's store")
}

/// The service on the world, in this process with its clock standing still, with the fixtures
/// loaded first.
fn service() -> InProcService {
    fixtures();
    InProcService::start(&world().dir.join("service.toml")).expect("confirm-service")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Milliseconds since the epoch of a protobuf timestamp (the store keeps milliseconds).
macro_rules! ms {
    ($t:expr) => {{
        let t = $t;
        t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
    }};
}

// ---- fixtures ---------------------------------------------------------------------------------

/// One person's insurance-card numbers as a query, with the record they name.
#[derive(Debug, Clone)]
struct Case {
    person: String,
    numbers: pb::NumbersQuery,
    record: QualificationRecord,
}

#[derive(Debug)]
struct Fixtures {
    /// The valid card's holder (world card role).
    valid: Case,
    /// The lost card's holder: their only record lost.
    lost: Case,
    /// The multiple card's holder: two current records.
    multiple: Case,
    multiple_insurers: BTreeSet<String>,
    /// [`CHANGED`]'s old (lost) and new (current) records.
    changed_old: Case,
    changed_new: Case,
    koki: Case,
    /// Numbers nobody has.
    unknown: pb::NumbersQuery,
    /// The valid card holder's clinical rows as loaded (deliberately not in date order).
    medications: Vec<Medication>,
    checkups: Vec<Checkup>,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| load_fixtures(&store()))
}

fn holder(kind: &str) -> String {
    world().card(kind).unwrap()["person_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn numbers_of(record: &QualificationRecord, person: &Person) -> pb::NumbersQuery {
    pb::NumbersQuery {
        insurer_number: record.insurer_number.as_str().to_owned(),
        symbol: record.symbol.clone().unwrap_or_default(),
        number: record.number.clone(),
        branch: record.branch.clone().unwrap_or_default(),
        birth_date: yyyymmdd(person.birth_date),
        ..Default::default()
    }
}

/// A world person's record chosen by `pick`, read from the store.
fn world_case(
    store: &SqliteStore,
    person_id: &str,
    pick: impl Fn(&QualificationRecord) -> bool,
) -> Case {
    let person = store.person(person_id).unwrap().expect("world person");
    let record = store
        .qualifications(person_id)
        .unwrap()
        .into_iter()
        .find(|r| pick(r))
        .unwrap_or_else(|| panic!("{person_id} has no record of the expected kind"));
    Case {
        person: person_id.to_owned(),
        numbers: numbers_of(&record, &person),
        record,
    }
}

fn insurer(body: &str) -> InsurerNumber {
    InsurerNumber::with_check_digit(body).unwrap()
}

fn load_fixtures(store: &SqliteStore) -> Fixtures {
    let valid = world_case(store, &holder("valid"), |r| {
        r.disqualification_date.is_none()
    });
    let lost = world_case(store, &holder("lost"), |r| {
        r.disqualification_date.is_some()
    });
    let multiple = world_case(store, &holder("multiple"), |_| true);
    let multiple_insurers = store
        .qualifications(&multiple.person)
        .unwrap()
        .iter()
        .map(|r| r.insurer_number.as_str().to_owned())
        .collect();

    // Dates relative to today (UTC; every margin is far wider than the JST offset).
    let today = SystemClock.now().date();
    let day = CONSENT_VALIDITY; // 24 hours
    let template_person = store.person(&valid.person).unwrap().unwrap();
    let template = valid.record.clone();

    let changed = Person {
        id: CHANGED.into(),
        name: "変更　花子".into(),
        kana_name: "ﾍﾝｺｳ ﾊﾅｺ".into(),
        birth_date: parse_yyyymmdd("birth date", "19850614").unwrap(),
        registered_for_insurance: true,
        ..template_person.clone()
    };
    let old = QualificationRecord {
        person_id: CHANGED.into(),
        insurer_number: insurer("0613999"),
        insurer_name: "テスト健康保険組合".into(),
        insured_person_name: "変更　花子".into(),
        symbol: Some("T900".into()),
        number: "3001".into(),
        branch: Some("00".into()),
        qualification_date: today - day * 800,
        disqualification_date: Some(today - day * 40),
        loss_reason: Some("03".into()),
        card_issue_date: today - day * 800,
        card_valid_from: today - day * 800,
        card_expiry: None,
        copay_ratio: "030".into(),
        high_cost_limit: None,
        elderly: None,
        specific_diseases: Vec::new(),
        ..template.clone()
    };
    let new = QualificationRecord {
        insurer_number: insurer("0113999"),
        insurer_name: "全国健康保険協会テスト支部".into(),
        symbol: Some("T901".into()),
        number: "3002".into(),
        qualification_date: today - day * 40,
        disqualification_date: None,
        loss_reason: None,
        card_issue_date: today - day * 40,
        card_valid_from: today - day * 40,
        ..old.clone()
    };

    let koki_person = Person {
        id: KOKI.into(),
        name: "後期　一郎".into(),
        kana_name: "ｺｳｷ ｲﾁﾛｳ".into(),
        birth_date: parse_yyyymmdd("birth date", "19450302").unwrap(),
        registered_for_insurance: true,
        ..template_person.clone()
    };
    let koki = QualificationRecord {
        person_id: KOKI.into(),
        insured_card_classification: "01".into(),
        insurer_number: insurer("3913999"),
        insurer_name: "テスト後期高齢者医療広域連合".into(),
        insured_person_name: "後期　一郎".into(),
        symbol: None,
        number: "90000001".into(),
        branch: None,
        personal_family: 1,
        qualification_date: today - day * 3000,
        disqualification_date: None,
        loss_reason: None,
        card_issue_date: today - day * 100,
        card_valid_from: today - day * 100,
        card_expiry: Some(today + day * 200),
        copay_ratio: "020".into(),
        preschool: false,
        elderly: None,
        high_cost_limit: Some(HighCostLimit {
            certificate_type: None,
            bracket: "B09".into(),
            valid_from: today - day * 100,
            valid_until: today + day * 200,
        }),
        specific_diseases: Vec::new(),
    };

    let medication = |days_ago: i32, code: &str, name: &str| Medication {
        person_id: valid.person.clone(),
        dispensed_on: today - day * days_ago,
        institution_code: PHARMACY.into(),
        institution_name: "テスト薬局".into(),
        drug_code: code.into(),
        drug_name: name.into(),
        usage: "1日1回朝食後".into(),
        daily_quantity: "1錠".into(),
        days: 28,
    };
    let medications = vec![
        medication(30, "621000000001", "アムロジピン錠５ｍｇ"),
        medication(3, "621000000002", "ロスバスタチン錠２．５ｍｇ"),
        medication(10, "621000000003", "メトホルミン塩酸塩錠２５０ｍｇ"),
    ];
    let checkup = |days_ago: i32, weight: u32, judgement: &str| Checkup {
        person_id: valid.person.clone(),
        examined_on: today - day * days_ago,
        height_cm_x10: 1713,
        weight_kg_x10: weight,
        waist_cm_x10: 842,
        bmi_x10: 231,
        systolic_mmhg: 128,
        diastolic_mmhg: 82,
        hba1c_x10: 56,
        ldl_mg_dl: 131,
        judgement: judgement.into(),
    };
    let checkups = vec![checkup(400, 690, "B"), checkup(30, 702, "C")];

    // The generated population may already give this person drugs and checkups: the answers
    // must hold those and the fixture's, in the store's order (newest first, then as written).
    let mut all_medications = store.medications(&valid.person).unwrap();
    all_medications.extend(medications.iter().cloned());
    let mut all_checkups = store.checkups(&valid.person).unwrap();
    all_checkups.extend(checkups.iter().cloned());
    store
        .load(&LoadBatch {
            persons: vec![changed.clone(), koki_person.clone()],
            qualifications: vec![old.clone(), new.clone(), koki.clone()],
            medications: medications.clone(),
            checkups: checkups.clone(),
            ..LoadBatch::default()
        })
        .expect("fixture data loads");

    let case = |record: &QualificationRecord, person: &Person| Case {
        person: person.id.clone(),
        numbers: numbers_of(record, person),
        record: record.clone(),
    };
    Fixtures {
        unknown: pb::NumbersQuery {
            insurer_number: insurer("0613998").as_str().to_owned(),
            symbol: "NONE".into(),
            number: "404".into(),
            branch: "00".into(),
            birth_date: "19800101".into(),
            ..Default::default()
        },
        valid,
        lost,
        multiple,
        multiple_insurers,
        changed_old: case(&old, &changed),
        changed_new: case(&new, &changed),
        koki: case(&koki, &koki_person),
        medications: all_medications,
        checkups: all_checkups,
    }
}

// ---- clients, cards, refusals -----------------------------------------------------------------

type Client = ConfirmationClient<Channel>;

/// A mutual-TLS client with the identity of terminal `name`.
async fn client(service: &InProcService, name: &str) -> Client {
    let dir = world().in_operation_terminal_dir(name).unwrap();
    grpc::client(world(), &service.url(), &dir).await.unwrap()
}

fn card(kind: &str) -> CardKeys {
    CardKeys::of(world(), kind).unwrap()
}

/// The card's signature over the challenge binding, exactly as the card makes it.
fn sign(
    card: &CardKeys,
    purpose: Purpose,
    ch: &pb::IssueChallengeResponse,
    consents: ConsentBits,
) -> Vec<u8> {
    let binding = ChallengeBinding {
        purpose,
        challenge: &ch.challenge,
        terminal_name: &ch.terminal_name,
        certificate_der: &card.certificate,
        consents,
    }
    .encode()
    .unwrap();
    card.key
        .sign(
            rsa::Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(&binding),
        )
        .unwrap()
}

async fn challenge(c: &mut Client, purpose: pb::Purpose) -> pb::IssueChallengeResponse {
    c.issue_challenge(pb::IssueChallengeRequest {
        purpose: purpose as i32,
    })
    .await
    .unwrap()
    .into_inner()
}

/// ConfirmByCard in PIN mode with the given consents, signed for a fresh challenge.
async fn confirm_card(
    c: &mut Client,
    card: &CardKeys,
    consents: pb::Consents,
) -> Result<pb::ConfirmationResult, tonic::Status> {
    let ch = challenge(c, pb::Purpose::Confirm).await;
    let bits = ConsentBits::new(
        consents.medication,
        consents.checkup,
        consents.clinical,
        consents.surgery,
    );
    let signature = sign(card, Purpose::Confirm, &ch, bits);
    c.confirm_by_card(pb::ConfirmByCardRequest {
        prescription_issue: Default::default(),
        credential_kind: 0,
        certificate: card.certificate.clone(),
        challenge: ch.challenge,
        signature,
        consents: Some(consents),
        treatment: 0,
        requery_consent: false,
    })
    .await
    .map(tonic::Response::into_inner)
}

/// RegisterForInsurance over a challenge issued for `challenge_purpose`, signed as a
/// registration.
async fn register(
    c: &mut Client,
    card: &CardKeys,
    challenge_purpose: pb::Purpose,
) -> Result<pb::RegisterResponse, tonic::Status> {
    let ch = challenge(c, challenge_purpose).await;
    let signature = sign(card, Purpose::Register, &ch, ConsentBits::default());
    c.register_for_insurance(pb::RegisterRequest {
        certificate: card.certificate.clone(),
        challenge: ch.challenge,
        signature,
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn by_numbers(
    c: &mut Client,
    q: &pb::NumbersQuery,
) -> Result<pb::ConfirmationResult, tonic::Status> {
    c.confirm_by_numbers(pb::ConfirmByNumbersRequest {
        query: Some(q.clone()),
        claimed_visit_time: None,
    })
    .await
    .map(tonic::Response::into_inner)
}

fn clinical(q: &pb::NumbersQuery) -> pb::ClinicalDataRequest {
    pb::ClinicalDataRequest {
        patient: Some(q.clone()),
    }
}

/// A refusal carries the result code three ways: the gRPC status code it maps to, the
/// ErrorInfo reason in domain onshi.v1, and the numeric `result-code` metadata.
#[track_caller]
fn assert_refused(status: &tonic::Status, code: ResultCode, grpc: Code, what: &str) {
    assert_eq!(result_code_of(status), Some(code), "{what}: {status:?}");
    assert_eq!(status.code(), grpc, "{what}: {status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("{what}: no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, onshi_proto::ERROR_DOMAIN, "{what}");
    assert_eq!(info.reason, code.as_str_name(), "{what}");
    assert_eq!(
        status
            .metadata()
            .get(onshi_proto::RESULT_CODE_METADATA)
            .and_then(|v| v.to_str().ok()),
        Some((code as i32).to_string().as_str()),
        "{what}"
    );
}

/// A confirmation that was carried out (processing status 1) by numbers.
#[track_caller]
fn assert_carried_out(
    r: &pb::ConfirmationResult,
    validity: pb::QualificationValidity,
    code: ResultCode,
    records: usize,
    what: &str,
) {
    assert_eq!(r.validity(), validity, "{what}: {r:?}");
    assert_eq!(r.result_code(), code, "{what}: {r:?}");
    assert_eq!(
        r.processing_status(),
        pb::ProcessingStatus::Completed,
        "{what}"
    );
    assert_eq!(
        r.reference_classification(),
        pb::ReferenceClassification::InsuranceCard,
        "{what}"
    );
    assert_eq!(r.qualifications.len(), records, "{what}: {r:?}");
    assert!(!r.confirmation_id.is_empty(), "{what}");
    assert!(r.confirmed_at.is_some(), "{what}");
}

// ---- audit ------------------------------------------------------------------------------------

fn audit(store: &SqliteStore, query: AuditQuery) -> Vec<AuditRecord> {
    store
        .query_audit(&AuditQuery {
            limit: 100_000,
            ..query
        })
        .unwrap()
}

/// The audit record of an answer, found by the confirmation id the answer quoted, among the
/// records of `person` (or, for no person, of the institution).
#[track_caller]
fn audit_of(
    store: &SqliteStore,
    person: Option<&str>,
    institution: &str,
    confirmation_id: &str,
) -> AuditRecord {
    let records = audit(
        store,
        AuditQuery {
            person_id: person.map(str::to_owned),
            institution_code: Some(institution.to_owned()),
            ..AuditQuery::default()
        },
    );
    let found: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| r.confirmation_id == confirmation_id)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one audit record for {confirmation_id} (person {person:?})"
    );
    found[0].clone()
}

/// Checks an audit record's method, purpose, person and result code.
#[track_caller]
fn assert_audit(
    r: &AuditRecord,
    method: &str,
    purpose: &str,
    person: Option<&str>,
    code: ResultCode,
) {
    assert_eq!(r.method, method, "{r:?}");
    assert_eq!(r.purpose, purpose, "{r:?}");
    assert_eq!(r.person_id.as_deref(), person, "{r:?}");
    assert_eq!(r.result_code, code.as_str_name(), "{r:?}");
}

/// The audit records written from now on: `AuditQuery::from` set to the service's time.
fn from_now(service: &InProcService) -> AuditQuery {
    AuditQuery {
        from: Some(service.now()),
        ..AuditQuery::default()
    }
}

/// How many records of a refusal there are since `since` (from [`from_now`]): matched on
/// terminal, method, purpose, person and code (a refusal quotes no confirmation id).
fn refusals_audited(
    store: &SqliteStore,
    since: &AuditQuery,
    terminal: &str,
    (method, purpose): (&str, &str),
    person: Option<&str>,
    code: ResultCode,
) -> usize {
    let (institution, terminal_id) = terminal.split_once('-').unwrap();
    audit(
        store,
        AuditQuery {
            person_id: person.map(str::to_owned),
            institution_code: Some(institution.to_owned()),
            ..since.clone()
        },
    )
    .iter()
    .filter(|r| {
        r.terminal_id == terminal_id
            && r.method == method
            && r.purpose == purpose
            && r.person_id.as_deref() == person
            && r.result_code == code.as_str_name()
    })
    .count()
}

// ---- 1. confirmation by numbers ---------------------------------------------------------------

/// What a query asks, whose record it names, and the validity, code and record count expected.
type NumbersCase<'a> = (
    &'a str,
    &'a pb::NumbersQuery,
    Option<&'a str>,
    pb::QualificationValidity,
    ResultCode,
    usize,
);

#[test]
fn confirm_by_numbers_reproduces_each_validity_with_its_fields() {
    use pb::QualificationValidity as V;
    let fx = fixtures();
    let svc = service();
    let store = store();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let cases: [NumbersCase; 6] = [
            (
                "valid",
                &fx.valid.numbers,
                Some(&fx.valid.person),
                V::Valid,
                ResultCode::Ok,
                1,
            ),
            (
                "lost",
                &fx.lost.numbers,
                Some(&fx.lost.person),
                V::Invalid,
                ResultCode::Ok,
                1,
            ),
            (
                "new numbers after a change of insurer",
                &fx.changed_new.numbers,
                Some(CHANGED),
                V::Valid,
                ResultCode::Ok,
                1,
            ),
            (
                "unknown",
                &fx.unknown,
                None,
                V::None,
                ResultCode::NoQualification,
                0,
            ),
            (
                "multiple",
                &fx.multiple.numbers,
                Some(&fx.multiple.person),
                V::Multiple,
                ResultCode::MultipleQualifications,
                2,
            ),
            (
                "後期高齢",
                &fx.koki.numbers,
                Some(KOKI),
                V::Valid,
                ResultCode::Ok,
                1,
            ),
        ];
        let mut answers = Vec::new();
        for (what, numbers, person, validity, code, records) in cases {
            let r = by_numbers(&mut c, numbers)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e:?}"));
            // Card-less confirmations echo no consents.
            let echo = r.consents.unwrap_or_default();
            for e in [echo.medication, echo.checkup, echo.clinical, echo.surgery] {
                let e = e.unwrap_or_default();
                assert!(!e.given && e.given_at.is_none(), "{what}: {e:?}");
            }
            // The audit record of this very answer.
            let record = audit_of(&store, person, PHARMACY, &r.confirmation_id);
            assert_audit(&record, "numbers", "confirm", person, code);
            assert_eq!(record.terminal_id, "T01");
            answers.push((what, r));
            // Checked last, so an unexpected validity still leaves the audit checked.
            let (_, r) = answers.last().unwrap();
            assert_carried_out(r, validity, code, records, what);
        }
        let by = |what: &str| &answers.iter().find(|(w, _)| *w == what).unwrap().1;

        // 1 有効, with the record's fields: 協会けんぽ 本人 of working age pays 3割, and the
        // high-cost bracket comes without any consent.
        let q = &by("valid").qualifications[0];
        let n = &fx.valid.numbers;
        assert_eq!(
            (
                &q.insurer_number,
                &q.symbol,
                &q.number,
                &q.branch,
                &q.birth_date
            ),
            (
                &n.insurer_number,
                &n.symbol,
                &n.number,
                &n.branch,
                &n.birth_date
            )
        );
        assert!(q.disqualification_date.is_empty() && q.loss_reason.is_empty());
        assert_eq!(q.copay_ratio, "030");
        assert_eq!(q.copay_ratio, fx.valid.record.copay_ratio);
        let bracket = &fx
            .valid
            .record
            .high_cost_limit
            .as_ref()
            .expect("the valid card's holder has a 限度額 bracket (docs/world.md)")
            .bracket;
        assert_eq!(
            q.high_cost_limit.as_ref().map(|h| &h.bracket),
            Some(bracket),
            "{q:?}"
        );

        // 2 無効: the lost record, with its loss.
        let q = &by("lost").qualifications[0];
        assert_eq!(q.insurer_number, fx.lost.numbers.insurer_number);
        assert_eq!(
            q.disqualification_date,
            yyyymmdd(fx.lost.record.disqualification_date.unwrap())
        );
        assert_eq!(Some(&q.loss_reason), fx.lost.record.loss_reason.as_ref());

        // After a change of insurer, the new numbers alone: 有効, the new record only.
        let q = &by("new numbers after a change of insurer").qualifications[0];
        assert_eq!(q.insurer_number, fx.changed_new.numbers.insurer_number);

        // 5 複数該当: every current record of the person.
        let insurers: BTreeSet<String> = by("multiple")
            .qualifications
            .iter()
            .map(|q| q.insurer_number.clone())
            .collect();
        assert_eq!(insurers, fx.multiple_insurers);

        // 後期高齢者医療: no 記号, no 枝番, the co-pay and bracket of its record.
        let q = &by("後期高齢").qualifications[0];
        assert!(q.insurer_number.starts_with("39"), "{q:?}");
        assert_eq!((q.symbol.as_str(), q.branch.as_str()), ("", ""));
        assert_eq!(q.number, fx.koki.numbers.number);
        assert_eq!(q.copay_ratio, "020");
        let limit = q.high_cost_limit.as_ref().expect("bracket without consent");
        assert_eq!(
            (limit.bracket.as_str(), limit.certificate_type.as_str()),
            ("B09", "")
        );
    });
}

/// 3 無効（新しい資格あり）: the card-less lookup names one record; when that record is lost
/// and the person holds a newer one, the answer says so and shows both.
#[test]
fn old_numbers_after_a_change_of_insurer_answer_invalid_new_available() {
    let fx = fixtures();
    let svc = service();
    let store = store();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let r = by_numbers(&mut c, &fx.changed_old.numbers).await.unwrap();
        let record = audit_of(&store, Some(CHANGED), PHARMACY, &r.confirmation_id);
        assert_audit(&record, "numbers", "confirm", Some(CHANGED), ResultCode::Ok);
        assert_carried_out(
            &r,
            pb::QualificationValidity::InvalidNewAvailable,
            ResultCode::Ok,
            2,
            "old numbers after a change of insurer",
        );
        // 3 無効（新しい資格あり）: both the lost record asked for and the new one.
        let old = r
            .qualifications
            .iter()
            .find(|q| q.insurer_number == fx.changed_old.numbers.insurer_number)
            .expect("the lost record asked for is returned");
        assert_eq!(
            old.disqualification_date,
            yyyymmdd(fx.changed_old.record.disqualification_date.unwrap())
        );
        assert_eq!(old.loss_reason, "03");
        let new = r
            .qualifications
            .iter()
            .find(|q| q.insurer_number == fx.changed_new.numbers.insurer_number)
            .expect("the new record is returned");
        assert!(new.disqualification_date.is_empty());
        assert_eq!(new.number, fx.changed_new.numbers.number);
    });
}

// ---- 2. input validation ----------------------------------------------------------------------

#[test]
fn malformed_numbers_are_refused_with_the_fields_own_code() {
    let fx = fixtures();
    let svc = service();
    let store = store();
    let since = from_now(&svc);
    let base = fx.valid.numbers.clone();
    let with = |f: &dyn Fn(&mut pb::NumbersQuery)| {
        let mut q = base.clone();
        f(&mut q);
        q
    };
    let insurer = base.insurer_number.clone();
    let last = insurer.as_bytes()[7] - b'0';
    let wrong_check = format!("{}{}", &insurer[..7], (last + 1) % 10);
    let koki = fx.koki.numbers.clone();
    let cases: Vec<(&str, pb::NumbersQuery, ResultCode)> = vec![
        (
            "wrong insurer check digit",
            with(&|q| q.insurer_number = wrong_check.clone()),
            ResultCode::InvalidInsurerNumber,
        ),
        (
            "7-digit insurer number",
            with(&|q| q.insurer_number.truncate(7)),
            ResultCode::InvalidInsurerNumber,
        ),
        (
            "9-digit insurer number",
            with(&|q| q.insurer_number.push('0')),
            ResultCode::InvalidInsurerNumber,
        ),
        (
            "insurer number with a letter",
            with(&|q| q.insurer_number = format!("{}A", &insurer[..7])),
            ResultCode::InvalidInsurerNumber,
        ),
        (
            "birth date 20230230",
            with(&|q| q.birth_date = "20230230".into()),
            ResultCode::InvalidDate,
        ),
        (
            "birth date 1980-01-01",
            with(&|q| q.birth_date = "1980-01-01".into()),
            ResultCode::InvalidDate,
        ),
        (
            "empty birth date",
            with(&|q| q.birth_date.clear()),
            ResultCode::InvalidDate,
        ),
        (
            "one-digit 枝番",
            with(&|q| q.branch = "1".into()),
            ResultCode::InvalidBranch,
        ),
        (
            "枝番 0a",
            with(&|q| q.branch = "0a".into()),
            ResultCode::InvalidBranch,
        ),
        (
            "empty 番号",
            with(&|q| q.number.clear()),
            ResultCode::MissingField,
        ),
        (
            "empty insurer number",
            with(&|q| q.insurer_number.clear()),
            ResultCode::MissingField,
        ),
        (
            "39-character 記号",
            with(&|q| q.symbol = "記".repeat(39)),
            ResultCode::FieldTooLong,
        ),
        (
            "39-character 番号",
            with(&|q| q.number = "9".repeat(39)),
            ResultCode::FieldTooLong,
        ),
        (
            "記号 for a 後期高齢者医療 insurer",
            pb::NumbersQuery {
                symbol: "1".into(),
                ..koki.clone()
            },
            ResultCode::InvalidField,
        ),
        (
            "枝番 for a 後期高齢者医療 insurer",
            pb::NumbersQuery {
                branch: "00".into(),
                ..koki.clone()
            },
            ResultCode::InvalidField,
        ),
        (
            "記号 with a space",
            with(&|q| q.symbol = "12 34".into()),
            ResultCode::InvalidField,
        ),
    ];
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T02).await;
        for (what, query, code) in &cases {
            let err = by_numbers(&mut c, query)
                .await
                .expect_err(&format!("{what} must be refused"));
            assert_refused(&err, *code, Code::InvalidArgument, what);
        }
        // Just inside the limits: a 38-character 記号 is looked up (and matches nobody).
        let r = by_numbers(&mut c, &with(&|q| q.symbol = "記".repeat(38)))
            .await
            .unwrap();
        assert_eq!(r.result_code(), ResultCode::NoQualification);
        // The clinical-data requests validate the patient's numbers the same way.
        let err = c.get_medications(clinical(&cases[0].1)).await.unwrap_err();
        assert_refused(
            &err,
            ResultCode::InvalidInsurerNumber,
            Code::InvalidArgument,
            "GetMedications",
        );
        // An enum value this version does not know.
        let err = c
            .issue_challenge(pb::IssueChallengeRequest { purpose: 99 })
            .await
            .unwrap_err();
        assert_refused(
            &err,
            ResultCode::UnknownEnumValue,
            Code::InvalidArgument,
            "purpose 99",
        );
    });
    // Every refusal was audited, without a person (none was identified).
    let mut expected = std::collections::BTreeMap::<ResultCode, usize>::new();
    for (_, _, code) in &cases {
        *expected.entry(*code).or_default() += 1;
    }
    for (code, n) in expected {
        let audited = refusals_audited(
            &store,
            &since,
            PHARMACY_T02,
            ("numbers", "confirm"),
            None,
            code,
        );
        assert_eq!(audited, n, "audit records of {}", code.as_str_name());
    }
    assert_eq!(
        refusals_audited(
            &store,
            &since,
            PHARMACY_T02,
            ("numbers", "medication"),
            None,
            ResultCode::InvalidInsurerNumber
        ),
        1
    );
}

// ---- 3. consents ------------------------------------------------------------------------------

#[test]
fn clinical_data_needs_a_fresh_consent_of_the_institution_for_its_kind() {
    let fx = fixtures();
    let svc = service();
    let store = store();
    let since = from_now(&svc);
    let person = fx.valid.person.as_str();
    let patient = clinical(&fx.valid.numbers);
    let valid_card = card("valid");
    runtime().block_on(async {
        let mut t1 = client(&svc, PHARMACY_T01).await;
        let mut t2 = client(&svc, PHARMACY_T02).await;
        let mut clinic = client(&svc, CLINIC_T01).await;

        // Before any consent, the pharmacy gets nothing.
        let err = t1.get_medications(patient.clone()).await.unwrap_err();
        assert_refused(
            &err,
            ResultCode::ConsentMissing,
            Code::FailedPrecondition,
            "before consent",
        );

        // The patient consents to share medication information at the pharmacy's reader.
        let before = svc.now().unix_timestamp();
        let r = confirm_card(
            &mut t1,
            &valid_card,
            pb::Consents {
                medication: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let after = svc.now().unix_timestamp();
        assert_eq!(r.result_code(), ResultCode::Ok);
        assert_eq!(
            r.reference_classification(),
            pb::ReferenceClassification::MyNumberCard
        );
        let echo = r.consents.unwrap();
        let medication = echo.medication.unwrap();
        assert!(medication.given);
        let given_at = medication.given_at.expect("given_at");
        let valid_until = medication.valid_until.expect("valid_until");
        assert!(
            (before..=after).contains(&given_at.seconds),
            "given now: {given_at:?}"
        );
        assert_eq!(
            ms!(&valid_until) - ms!(&given_at),
            24 * 3600 * 1000,
            "valid for 24 hours"
        );
        for other in [echo.checkup, echo.clinical, echo.surgery] {
            let other = other.unwrap();
            assert!(!other.given && other.given_at.is_none() && other.valid_until.is_none());
        }
        // The high-cost bracket comes without any consent for it.
        let bracket = &fx.valid.record.high_cost_limit.as_ref().unwrap().bracket;
        assert_eq!(
            r.qualifications[0]
                .high_cost_limit
                .as_ref()
                .map(|h| &h.bracket),
            Some(bracket)
        );
        let plain = confirm_card(&mut t1, &valid_card, pb::Consents::default())
            .await
            .unwrap();
        assert_eq!(
            plain.qualifications[0]
                .high_cost_limit
                .as_ref()
                .map(|h| &h.bracket),
            Some(bracket),
            "no consent given at all"
        );

        // Any terminal of the pharmacy now reads the medication, newest first, and is told
        // which consent allowed it. (A confirmation without consents took nothing back.)
        let meds = t2
            .get_medications(patient.clone())
            .await
            .unwrap()
            .into_inner();
        let mut expected = fx.medications.clone();
        expected.sort_by_key(|m| std::cmp::Reverse(m.dispensed_on));
        let got: Vec<(String, String)> = meds
            .medications
            .iter()
            .map(|m| (m.dispensed_on.clone(), m.drug_code.clone()))
            .collect();
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|m| (yyyymmdd(m.dispensed_on), m.drug_code.clone()))
            .collect();
        assert_eq!(got, want);
        let first = &meds.medications[0];
        assert_eq!(first.drug_name, expected[0].drug_name);
        assert_eq!(first.institution_code, PHARMACY);
        assert_eq!((first.usage.as_str(), first.days), ("1日1回朝食後", 28));
        let consent = meds.consent.expect("consent echoed");
        assert!(consent.given);
        assert_eq!(ms!(consent.given_at.as_ref().unwrap()), ms!(&given_at));
        assert_eq!(
            ms!(consent.valid_until.as_ref().unwrap()),
            ms!(&valid_until)
        );
        assert!(!meds.confirmation_id.is_empty());

        // No checkup consent at the pharmacy; no consent at all at the clinic.
        let err = t1.get_checkups(patient.clone()).await.unwrap_err();
        assert_refused(
            &err,
            ResultCode::ConsentMissing,
            Code::FailedPrecondition,
            "checkups at the pharmacy",
        );
        let err = clinic.get_medications(patient.clone()).await.unwrap_err();
        assert_refused(
            &err,
            ResultCode::ConsentMissing,
            Code::FailedPrecondition,
            "medication at the clinic",
        );

        // A checkup consent given at the clinic's reader...
        let given = svc.now();
        let at_clinic = confirm_card(
            &mut clinic,
            &valid_card,
            pb::Consents {
                checkup: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(at_clinic.result_code(), ResultCode::Ok);
        // ...still holds 23 hours later (the service's clock moved, no row back-dated): the
        // checkups come newest first.
        let hour = CONSENT_VALIDITY / 24;
        svc.advance(hour * 23);
        let checkups = clinic
            .get_checkups(patient.clone())
            .await
            .unwrap()
            .into_inner();
        let mut expected = fx.checkups.clone();
        expected.sort_by_key(|c| std::cmp::Reverse(c.examined_on));
        let got: Vec<(String, u32, String)> = checkups
            .checkups
            .iter()
            .map(|c| (c.examined_on.clone(), c.weight_kg_x10, c.judgement.clone()))
            .collect();
        let want: Vec<(String, u32, String)> = expected
            .iter()
            .map(|c| {
                (
                    yyyymmdd(c.examined_on),
                    c.weight_kg_x10,
                    c.judgement.clone(),
                )
            })
            .collect();
        assert_eq!(got, want);
        let consent = checkups.consent.unwrap();
        assert_eq!(
            consent.given_at.map(|t| t.seconds),
            Some(given.unix_timestamp())
        );
        // 25 hours after it was given, it has lapsed.
        svc.advance(hour * 2);
        let err = clinic.get_checkups(patient.clone()).await.unwrap_err();
        assert_refused(
            &err,
            ResultCode::ConsentExpired,
            Code::FailedPrecondition,
            "a 25-hour-old consent",
        );
        // The clinic's checkup consent does not open the medication.
        let err = clinic.get_medications(patient.clone()).await.unwrap_err();
        assert_refused(
            &err,
            ResultCode::ConsentMissing,
            Code::FailedPrecondition,
            "medication at the clinic after a checkup consent",
        );

        // Numbers nobody has: no patient.
        let err = t1.get_medications(clinical(&fx.unknown)).await.unwrap_err();
        assert_refused(
            &err,
            ResultCode::PatientUnknown,
            Code::NotFound,
            "unknown patient",
        );

        // 5. Audit: every answer by its confirmation id, every refusal by its details.
        let rec = audit_of(&store, Some(person), PHARMACY, &r.confirmation_id);
        assert_audit(&rec, "pin", "confirm", Some(person), ResultCode::Ok);
        assert_eq!(rec.consents, ConsentBits::MEDICATION);
        assert!(rec.certificate_sha256.is_some());
        let rec = audit_of(&store, Some(person), PHARMACY, &meds.confirmation_id);
        assert_audit(&rec, "numbers", "medication", Some(person), ResultCode::Ok);
        assert_eq!(rec.terminal_id, "T02");
        let rec = audit_of(&store, Some(person), CLINIC, &checkups.confirmation_id);
        assert_audit(&rec, "numbers", "checkup", Some(person), ResultCode::Ok);
        for (terminal, purpose, code, n) in [
            (PHARMACY_T01, "medication", ResultCode::ConsentMissing, 1),
            (PHARMACY_T01, "checkup", ResultCode::ConsentMissing, 1),
            (CLINIC_T01, "medication", ResultCode::ConsentMissing, 2),
            (CLINIC_T01, "checkup", ResultCode::ConsentExpired, 1),
        ] {
            assert_eq!(
                refusals_audited(
                    &store,
                    &since,
                    terminal,
                    ("numbers", purpose),
                    Some(person),
                    code
                ),
                n,
                "{terminal} {purpose} {}",
                code.as_str_name()
            );
        }
        assert_eq!(
            refusals_audited(
                &store,
                &since,
                PHARMACY_T01,
                ("numbers", "medication"),
                None,
                ResultCode::PatientUnknown
            ),
            1
        );
    });
}

// ---- 4. registration for insurance use --------------------------------------------------------

/// A renewal of `cert` by the issuing authority: the same subject and key under a new serial
/// number, signed by the issuing CA. (Serials are 16 bytes, so the DER keeps its layout.)
fn renewed_certificate(cert: &[u8], serial_hex: &str) -> Vec<u8> {
    let w = world();
    let ca_key = rsa::RsaPrivateKey::from_pkcs8_pem(
        &std::fs::read_to_string(w.dir.join("issuing-ca/ca.key.pem")).unwrap(),
    )
    .unwrap();
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue BIT STRING }
    assert_eq!(&cert[..2], &[0x30, 0x82]);
    assert_eq!(&cert[4..6], &[0x30, 0x82]);
    let tbs_end = 8 + usize::from(u16::from_be_bytes([cert[6], cert[7]]));
    let serial: Vec<u8> = (0..serial_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&serial_hex[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(serial.len(), 16);
    let mut field = vec![0x02, 0x10];
    field.extend_from_slice(&serial);
    let at = cert[4..tbs_end]
        .windows(field.len())
        .position(|w| w == field.as_slice())
        .expect("the serial number in the TBS")
        + 4
        + 2;
    let mut renewed = cert.to_vec();
    renewed[at + 15] ^= 0xA5;
    let signature = ca_key
        .sign(
            rsa::Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(&renewed[4..tbs_end]),
        )
        .unwrap();
    let sig_at = renewed.len() - signature.len();
    assert_eq!(
        &renewed[sig_at - 5..sig_at],
        &[0x03, 0x82, 0x01, 0x01, 0x00]
    );
    renewed[sig_at..].copy_from_slice(&signature);
    renewed
}

#[test]
fn registration_is_idempotent_and_kept_by_a_renewed_certificate() {
    fixtures();
    let svc = service();
    let store = store();
    let since = from_now(&svc);
    let person = holder("unregistered");
    let person = person.as_str();
    let unregistered = card("unregistered");
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;

        let err = confirm_card(&mut c, &unregistered, pb::Consents::default())
            .await
            .unwrap_err();
        assert_refused(
            &err,
            ResultCode::CardNotRegistered,
            Code::FailedPrecondition,
            "before registration",
        );

        // A challenge issued for a confirmation does not serve a registration.
        let err = register(&mut c, &unregistered, pb::Purpose::Confirm)
            .await
            .unwrap_err();
        assert_refused(
            &err,
            ResultCode::ChallengeUnknown,
            Code::FailedPrecondition,
            "a PURPOSE_CONFIRM challenge",
        );
        assert!(
            !store
                .person(person)
                .unwrap()
                .unwrap()
                .registered_for_insurance
        );

        // 健康保険証利用申込み, then the same again: nothing changes the second time.
        let first = register(&mut c, &unregistered, pb::Purpose::Register)
            .await
            .unwrap();
        assert_eq!(first.result_code(), ResultCode::Ok);
        assert!(first.newly_registered);
        assert!(first.registered_at.is_some() && !first.confirmation_id.is_empty());
        let again = register(&mut c, &unregistered, pb::Purpose::Register)
            .await
            .unwrap();
        assert_eq!(again.result_code(), ResultCode::Ok);
        assert!(!again.newly_registered);
        assert!(
            store
                .person(person)
                .unwrap()
                .unwrap()
                .registered_for_insurance
        );

        let ok = confirm_card(&mut c, &unregistered, pb::Consents::default())
            .await
            .unwrap();
        assert_eq!(ok.result_code(), ResultCode::Ok);
        assert_eq!(ok.validity(), pb::QualificationValidity::Valid);

        // A renewed certificate (same key, new serial): unknown until the issuing authority
        // links it to the holder, then confirmed without registering again.
        let serial = world().card("unregistered").unwrap()["serial"]
            .as_str()
            .unwrap()
            .to_owned();
        let renewed = CardKeys {
            certificate: renewed_certificate(&unregistered.certificate, &serial),
            key: unregistered.key.clone(),
        };
        let renewed_key = CardKey::from_der(&renewed.certificate).unwrap();
        assert_ne!(
            renewed_key,
            CardKey::from_der(&unregistered.certificate).unwrap()
        );
        let err = confirm_card(&mut c, &renewed, pb::Consents::default())
            .await
            .unwrap_err();
        assert_refused(
            &err,
            ResultCode::CardUnknown,
            Code::Unauthenticated,
            "renewed certificate before it is linked",
        );
        store
            .load(&LoadBatch {
                cards: vec![(renewed_key, person.to_owned())],
                ..LoadBatch::default()
            })
            .unwrap();
        let renewed_ok = confirm_card(&mut c, &renewed, pb::Consents::default())
            .await
            .unwrap();
        assert_eq!(renewed_ok.result_code(), ResultCode::Ok, "{renewed_ok:?}");
        assert_eq!(
            ok.qualifications[0].number,
            renewed_ok.qualifications[0].number
        );
        let renewed_register = register(&mut c, &renewed, pb::Purpose::Register)
            .await
            .unwrap();
        assert!(
            !renewed_register.newly_registered,
            "the person stays registered"
        );

        // 5. Audit.
        for (id, purpose) in [
            (&first.confirmation_id, "register"),
            (&again.confirmation_id, "register"),
            (&renewed_register.confirmation_id, "register"),
            (&ok.confirmation_id, "confirm"),
            (&renewed_ok.confirmation_id, "confirm"),
        ] {
            let rec = audit_of(&store, Some(person), PHARMACY, id);
            assert_audit(&rec, "pin", purpose, Some(person), ResultCode::Ok);
        }
        let rec = audit_of(&store, Some(person), PHARMACY, &renewed_ok.confirmation_id);
        let renewed_sha: String = Sha256::digest(&renewed.certificate)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            rec.certificate_sha256.as_deref(),
            Some(renewed_sha.as_str())
        );
        assert_eq!(
            refusals_audited(
                &store,
                &since,
                PHARMACY_T01,
                ("pin", "confirm"),
                Some(person),
                ResultCode::CardNotRegistered
            ),
            1
        );
        // Refused before the certificate was looked at: no person yet.
        assert_eq!(
            refusals_audited(
                &store,
                &since,
                PHARMACY_T01,
                ("pin", "register"),
                None,
                ResultCode::ChallengeUnknown
            ),
            1
        );
        assert_eq!(
            refusals_audited(
                &store,
                &since,
                PHARMACY_T01,
                ("pin", "confirm"),
                None,
                ResultCode::CardUnknown
            ),
            1
        );
    });
}

/// The examples world.json offers newcomers (docs/world.md, README) answer, through the
/// running service, the validity they promise.
#[test]
fn the_world_json_examples_answer_what_they_promise() {
    let _ = fixtures();
    let svc = service();
    let examples = world().manifest["examples"]
        .as_array()
        .expect("world.json has examples")
        .clone();
    let cases: Vec<&str> = examples.iter().filter_map(|e| e["case"].as_str()).collect();
    for case in [
        "validity-1",
        "validity-2",
        "validity-3",
        "validity-4",
        "validity-5",
        "home-visit-requery",
        "online-care-requery",
    ] {
        assert!(cases.contains(&case), "no example for {case}: {cases:?}");
    }
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        for e in &examples {
            let text = |k: &str| e[k].as_str().unwrap_or("").to_owned();
            let query = pb::NumbersQuery {
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
            };
            let answer = c
                .confirm_by_numbers(pb::ConfirmByNumbersRequest {
                    query: Some(query),
                    claimed_visit_time: None,
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                i64::from(answer.validity),
                e["validity"].as_i64().unwrap(),
                "example {}: {answer:?}",
                e["case"]
            );
        }
    });
}

// ---- rate limits ------------------------------------------------------------------------------

/// A terminal over its per-terminal limit is refused with RATE_LIMITED (RESOURCE_EXHAUSTED)
/// before anything is read, and not audited; another terminal keeps its own allowance.
#[test]
fn a_terminal_over_its_rate_limit_is_refused_and_another_is_not() {
    let config = world()
        .service_config_with(
            "service-rate-limited.toml",
            "[rate_limit]\nper_second = 0.01\nburst = 3",
        )
        .unwrap();
    let svc = InProcService::start(&config).expect("confirm-service with a tight rate limit");
    let store = store();
    let since = from_now(&svc);
    let query = fixtures().valid.numbers.clone();
    let answered = runtime().block_on(async {
        let mut t01 = client(&svc, PHARMACY_T01).await;
        let mut answered = Vec::new();
        for i in 0..3 {
            let r = by_numbers(&mut t01, &query)
                .await
                .unwrap_or_else(|e| panic!("request {i} is within the burst: {e}"));
            answered.push(r.confirmation_id);
        }
        let err = by_numbers(&mut t01, &query)
            .await
            .expect_err("the fourth request is over the burst");
        assert_refused(
            &err,
            ResultCode::RateLimited,
            Code::ResourceExhausted,
            "over the limit",
        );
        let mut t02 = client(&svc, PHARMACY_T02).await;
        by_numbers(&mut t02, &query)
            .await
            .expect("another terminal has its own allowance");
        // The bucket refills with the service's clock: 100 s at 0.01/s is one request more,
        // and only one.
        svc.advance(time::Duration::seconds(99));
        let err = by_numbers(&mut t01, &query)
            .await
            .expect_err("99 s refill less than a request");
        assert_refused(
            &err,
            ResultCode::RateLimited,
            Code::ResourceExhausted,
            "99 s",
        );
        svc.advance(time::Duration::seconds(1));
        let r = by_numbers(&mut t01, &query)
            .await
            .expect("100 s refill one request");
        answered.push(r.confirmation_id);
        let err = by_numbers(&mut t01, &query)
            .await
            .expect_err("and only one");
        assert_refused(
            &err,
            ResultCode::RateLimited,
            Code::ResourceExhausted,
            "refilled once",
        );
        answered
    });
    assert_eq!(
        refusals_audited(
            &store,
            &since,
            PHARMACY_T01,
            ("numbers", "confirm"),
            None,
            ResultCode::RateLimited
        ),
        0
    );
    // Other tests of this file use the same terminal at the same time: look for this test's
    // own answers by their confirmation ids.
    let log = audit(
        &store,
        AuditQuery {
            institution_code: Some(PHARMACY.to_owned()),
            ..since.clone()
        },
    );
    for id in &answered {
        assert!(
            log.iter()
                .any(|r| &r.confirmation_id == id && r.terminal_id == "T01"),
            "the answer {id} within the burst is audited"
        );
    }
}

// ---- the outage path's catch-up: claimed visit time and idempotency keys -----------------------

fn claimed(t: OffsetDateTime) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: 0,
    })
}

fn numbers_claiming(
    q: &pb::NumbersQuery,
    at: Option<prost_types::Timestamp>,
) -> pb::ConfirmByNumbersRequest {
    pb::ConfirmByNumbersRequest {
        query: Some(q.clone()),
        claimed_visit_time: at,
    }
}

/// A key no earlier run of these tests used (the world's store outlives a run).
fn fresh_key(what: &str) -> String {
    format!(
        "test-{what}-{}",
        OffsetDateTime::now_utc().unix_timestamp_nanos()
    )
}

#[test]
fn a_claimed_visit_time_is_audited_beside_the_receipt_time_within_its_bounds() {
    use time::Duration as D;
    let fx = fixtures();
    let svc = service();
    let store = store();
    let person = fx.valid.person.as_str();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let now = svc.now();
        // Accepted: within the clock skew ahead, and up to 31 days old.
        for d in [D::hours(-2), D::days(-30), D::minutes(4)] {
            let r = c
                .confirm_by_numbers(numbers_claiming(&fx.valid.numbers, claimed(now + d)))
                .await
                .unwrap()
                .into_inner();
            let record = audit_of(&store, Some(person), PHARMACY, &r.confirmation_id);
            assert_audit(&record, "numbers", "confirm", Some(person), ResultCode::Ok);
            assert_eq!(
                record.claimed_at.map(OffsetDateTime::unix_timestamp),
                Some((now + d).unix_timestamp()),
                "{d}"
            );
            // Beside the service's own receipt time, which is not the claimed one.
            assert_eq!(record.at.unix_timestamp(), now.unix_timestamp());
        }
        // Without a claim, none is recorded.
        let r = by_numbers(&mut c, &fx.valid.numbers).await.unwrap();
        let record = audit_of(&store, Some(person), PHARMACY, &r.confirmation_id);
        assert_eq!(record.claimed_at, None);

        // Refused, and each refusal audited (without the claim): too far ahead, too old, not
        // a time. At the clinic's terminal, whose other tests refuse nothing as BAD_REQUEST;
        // the service's clock stands still, so the count since then grows by one each time.
        let mut clinic = client(&svc, CLINIC_T01).await;
        let since = from_now(&svc);
        let not_a_time = Some(prost_types::Timestamp {
            seconds: now.unix_timestamp(),
            nanos: -1,
        });
        for (n, (at, words)) in [
            (claimed(now + D::minutes(6)), "in the future"),
            (claimed(now - D::days(32)), "more than 31 days old"),
            (not_a_time, "not a time"),
        ]
        .into_iter()
        .enumerate()
        {
            let refused = clinic
                .confirm_by_numbers(numbers_claiming(&fx.valid.numbers, at))
                .await
                .unwrap_err();
            assert_refused(
                &refused,
                ResultCode::BadRequest,
                Code::InvalidArgument,
                words,
            );
            assert!(refused.message().contains(words), "{}", refused.message());
            let audited = refusals_audited(
                &store,
                &since,
                CLINIC_T01,
                ("numbers", "confirm"),
                None,
                ResultCode::BadRequest,
            );
            assert_eq!(audited, n + 1, "{words}");
        }
    });
}

#[test]
fn an_idempotency_key_is_answered_from_the_record_after_a_restart() {
    let fx = fixtures();
    let store = store();
    let person = fx.valid.person.as_str();
    let key = fresh_key("restart");
    let refused_key = fresh_key("refused");
    let keyed = |key: &str, claim| {
        let mut r = tonic::Request::new(numbers_claiming(&fx.valid.numbers, claim));
        r.metadata_mut()
            .insert("idempotency-key", key.parse().unwrap());
        r
    };
    let records_of = |id: &str| {
        audit(
            &store,
            AuditQuery {
                person_id: Some(person.to_owned()),
                ..AuditQuery::default()
            },
        )
        .iter()
        .filter(|r| r.confirmation_id == id)
        .count()
    };
    let (first, since) = {
        let svc = service();
        runtime().block_on(async {
            let mut c = client(&svc, PHARMACY_T01).await;
            let since = from_now(&svc);
            let first = c
                .confirm_by_numbers(keyed(&key, claimed(svc.now())))
                .await
                .unwrap()
                .into_inner();
            // A final refusal is remembered as well.
            let too_old = claimed(svc.now() - time::Duration::days(40));
            let refused = c
                .confirm_by_numbers(keyed(&refused_key, too_old))
                .await
                .unwrap_err();
            assert_eq!(refused.code(), Code::InvalidArgument);
            (first, since)
        })
        // The service stops here: its memory of keys is gone.
    };
    let total = |since: &AuditQuery| audit(&store, since.clone()).len();
    let after_first = total(&since);
    let svc = service();
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let again = c
            .confirm_by_numbers(keyed(&key, claimed(svc.now())))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(again, first, "answered from the record");
        assert_eq!(records_of(&first.confirmation_id), 1);
        let refused = c
            .confirm_by_numbers(keyed(&refused_key, claimed(svc.now())))
            .await
            .unwrap_err();
        assert_refused(
            &refused,
            ResultCode::BadRequest,
            Code::InvalidArgument,
            "the remembered refusal",
        );
        assert!(
            refused.message().contains("days old"),
            "{}",
            refused.message()
        );
        assert_eq!(total(&since), after_first, "nothing carried out again");

        // The key is the terminal's: another terminal's same key is another request.
        let mut other = client(&svc, PHARMACY_T02).await;
        let theirs = other
            .confirm_by_numbers(keyed(&key, None))
            .await
            .unwrap()
            .into_inner();
        assert_ne!(theirs.confirmation_id, first.confirmation_id);
    });
}

// ---- deadlines -----------------------------------------------------------------------------------

/// A call whose `grpc-timeout` passes while the service still works on it (here: a batch
/// whose queries stop coming) is ended by the service at the deadline and carries out
/// nothing: no batch job, no audit record.
#[test]
fn a_call_past_its_grpc_timeout_is_ended_by_the_service_and_carries_out_nothing() {
    use std::time::{Duration, Instant};
    let fx = fixtures();
    let svc = service();
    let store = store();
    let since = from_now(&svc);
    let jobs_here = |store: &SqliteStore| {
        store
            .unfinished_batches()
            .unwrap()
            .into_iter()
            .filter(|j| j.institution_code == CLINIC && j.submitted_at >= svc.now())
            .count()
    };
    runtime().block_on(async {
        let mut c = client(&svc, CLINIC_T01).await;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tx.send(fx.valid.numbers.clone()).await.unwrap();
        let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        request.set_timeout(Duration::from_millis(500));
        let started = Instant::now();
        // The client itself would wait for ever: only the service can end this call.
        let ended = tokio::time::timeout(Duration::from_secs(20), c.submit_batch_stream(request))
            .await
            .expect("the service ended the call at its deadline");
        let status = ended.unwrap_err();
        assert!(
            matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
            "{status:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        drop(tx);
    });
    let batch_records = |store: &SqliteStore| {
        audit(
            store,
            AuditQuery {
                institution_code: Some(CLINIC.to_owned()),
                ..since.clone()
            },
        )
        .into_iter()
        .filter(|r| r.purpose == "batch-submit")
        .count()
    };
    assert_eq!(batch_records(&store), 0, "an ended call leaves no record");
    assert_eq!(jobs_here(&store), 0, "an ended call submits no batch");
}

// ---- the holder cache ------------------------------------------------------------------------

/// A known card's holder is answered from memory for 2 s of the service's clock
/// (docs/performance.md, "Holders from memory"): a change made to the store outside the
/// service (a reload by an operator) is answered from the cached record until then, and from
/// the store after. Both halves matter: the first shows the cache is used at all, the second
/// that its entries end.
#[test]
fn a_record_changed_outside_the_service_is_answered_once_the_holder_cache_entry_ends() {
    let config = world()
        .own_store_config("holder-cache", &world().dir.join("service.toml"))
        .unwrap();
    let store_path = world().dir.join("store-holder-cache/onshi.sqlite");
    let svc = InProcService::start(&config).unwrap();
    let card = card("valid");
    let person = holder("valid");
    runtime().block_on(async {
        let mut c = client(&svc, PHARMACY_T01).await;
        let before = confirm_card(&mut c, &card, pb::Consents::default())
            .await
            .unwrap();
        assert_eq!(before.validity(), pb::QualificationValidity::Valid);

        // An operator's change, straight into the store: the holder's qualification ends.
        let ended = svc.now().date() - time::Duration::days(3);
        let changed = SqliteStore::open(&store_path)
            .unwrap()
            .with_connection(|c| {
                c.execute(
                    "UPDATE qualifications SET disqualification_date = ?1, loss_reason = '03' \
                 WHERE person_id = ?2",
                    [ended.to_string(), person.clone()],
                )
                .unwrap()
            });
        assert!(changed >= 1, "the holder has a qualification to end");

        // Within the entry's lifetime: the record as it was read before the change.
        svc.advance(time::Duration::milliseconds(1_900));
        let cached = confirm_card(&mut c, &card, pb::Consents::default())
            .await
            .unwrap();
        assert_eq!(cached.validity(), pb::QualificationValidity::Valid);

        // Past it: the store's record.
        svc.advance(time::Duration::milliseconds(200));
        let after = confirm_card(&mut c, &card, pb::Consents::default())
            .await
            .unwrap();
        assert_eq!(after.validity(), pb::QualificationValidity::Invalid);
        assert!(after
            .qualifications
            .iter()
            .all(|q| q.disqualification_date == ended.to_string().replace('-', "")));
    });
}
