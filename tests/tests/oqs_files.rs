//! The reception computer's file interface end to end: `reader-agent oqs` serving real
//! folders against a running confirmation service, driven the way reception software drives
//! it (request files renamed into `req/`), answers read back from `res/` by an XML parser that
//! knows nothing of onshi (`onshi_e2e::oqs::check_answer`: roxmltree after decoding by the
//! declaration, every element and code checked against a field list transcribed from public
//! reception software).
//!
//! Every kind (single confirmation for each validity, bulk submit and fetch of 10,000 queries,
//! medication, checkups), Shift_JIS with kanji, half-width kana and CP932 extension characters,
//! UTF-8 on request, a consent refusal, each error class, the service unreachable, a request
//! written in two halves, SIGKILL between reading a request and answering it, and a replayed
//! request file (one audit record).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use onshi_confirm_service::audit::{AuditQuery, AuditRecord};
use onshi_confirm_service::store::{SqliteStore, Store};
use onshi_e2e::grpc::{self, CardKeys};
use onshi_e2e::oqs::{self, check_answer, value, values, Arrivals, OqsAgent, Search};
use onshi_e2e::{send_signal, Service, World};
use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose};
use onshi_proto::v1 as pb;
use rsa::sha2::{Digest, Sha256};

const PHARMACY_T01: &str = "1340123452-T01";
const PHARMACY_T02: &str = "1340123452-T02";
const CLINIC_T01: &str = "1310156789-T01";
const WAIT: Duration = Duration::from_secs(30);

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "oqs-world", 8)
}

/// The world's service without rate limit or quotas: the bulk test alone makes 10,000
/// look-ups.
fn service() -> Service {
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        world()
            .service_config_with(
                "service-oqs.toml",
                "[rate_limit]\nper_second = 0\n[quotas]\nlookups_per_day = 0\nbirth_dates_per_numbers = 0\n",
            )
            .unwrap()
    });
    Service::start(config).expect("confirm-service")
}

fn terminal_config(name: &str) -> PathBuf {
    world()
        .in_operation_terminal_dir(name)
        .unwrap()
        .join("agent.toml")
}

fn agent(terminal: &str, dir: &Path, svc: &Service) -> OqsAgent {
    OqsAgent::start(
        &terminal_config(terminal),
        dir,
        &svc.url(),
        &["--settle-ms", "1000"],
    )
    .expect("reader-agent oqs")
}

/// The world's example of a case as a search.
fn example(case: &str) -> (Search, serde_json::Value) {
    let e = world().manifest["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["case"] == case)
        .unwrap_or_else(|| panic!("no example {case}"))
        .clone();
    (Search::from_example(&e, false), e)
}

fn header(institution: &str, file_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MedicalInstitutionCode", institution.to_owned()),
        ("ArbitraryFileIdentifier", file_id.to_owned()),
    ]
}

fn request(h: &[(&'static str, String)], body: &str, shift_jis: bool) -> Vec<u8> {
    let h: Vec<(&str, &str)> = h.iter().map(|(n, v)| (*n, v.as_str())).collect();
    oqs::request(&h, body, shift_jis)
}

/// Drops a request and returns the answer's leaves (checked against the field list).
fn ask(
    dir: &Path,
    arrivals: &mut Arrivals,
    name: &str,
    bytes: &[u8],
) -> (Vec<(String, String)>, Vec<u8>) {
    oqs::drop_request(dir, name, bytes).unwrap();
    let (answer, _) = arrivals.wait(&oqs::answer_name(name), WAIT).unwrap();
    let leaves = check_answer(&answer)
        .unwrap_or_else(|e| panic!("{name}: the answer fails the public field list:\n{e}"));
    (leaves, answer)
}

/// Waits (bounded) until `req/` is empty: a request is moved to `done/` just after its answer
/// appears.
fn wait_req_empty(dir: &Path) {
    let deadline = Instant::now() + WAIT;
    while !files_in(&dir.join("req")).is_empty() {
        assert!(
            Instant::now() < deadline,
            "req/ never emptied: {:?}",
            files_in(&dir.join("req"))
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

const RESULT: &str = "MessageBody/ResultList/ResultOfQualificationConfirmation";

#[test]
fn every_validity_round_trips_in_shift_jis_and_utf8_on_request() {
    let svc = service();
    let dir = tempfile::tempdir().unwrap();
    let _agent = agent(PHARMACY_T01, dir.path(), &svc);
    let mut arrivals = Arrivals::watch(&dir.path().join("res")).unwrap();
    // Kanji, half-width kana and CP932 extension characters (IBM 髙, NEC ①, full-width ～).
    let file_id = "受付ﾃｽﾄ①";
    for (n, case) in [
        "validity-1",
        "validity-2",
        "validity-3",
        "validity-4",
        "validity-5",
    ]
    .into_iter()
    .enumerate()
    {
        let (mut search, e) = example(case);
        search.arbitrary_identifier = format!("髙橋～ｱｲｳ-{n}");
        search.limit_consent = case == "validity-1";
        let name = format!("OQSsiquc01req_{case}.xml");
        let bytes = request(&header("1340123452", file_id), &search.xml(), true);
        let (leaves, raw) = ask(dir.path(), &mut arrivals, &name, &bytes);
        assert!(
            raw.starts_with(b"<?xml version=\"1.0\" encoding=\"Shift_JIS\" standalone=\"no\"?>")
        );
        assert_eq!(
            value(&leaves, "MessageHeader/SegmentOfResult"),
            Some("1"),
            "{case}"
        );
        assert_eq!(
            value(&leaves, "MessageHeader/ReferenceClassification"),
            Some("2")
        );
        assert_eq!(
            value(&leaves, "MessageHeader/CharacterCodeIdentifier"),
            Some("1")
        );
        assert_eq!(
            value(&leaves, "MessageHeader/ArbitraryFileIdentifier"),
            Some(file_id)
        );
        assert_eq!(
            value(&leaves, "MessageHeader/MedicalInstitutionCode"),
            Some("1340123452")
        );
        assert_eq!(value(&leaves, "MessageHeader/ErrorCode"), None);
        assert_eq!(
            value(&leaves, "MessageBody/ProcessingResultStatus"),
            Some("1")
        );
        let validity = e["validity"].as_u64().unwrap().to_string();
        assert_eq!(
            value(&leaves, "MessageBody/QualificationValidity"),
            Some(validity.as_str()),
            "{case}"
        );
        assert_eq!(
            value(
                &leaves,
                "MessageBody/QualificationConfirmSearchInfo/ArbitraryIdentifier"
            ),
            Some(search.arbitrary_identifier.as_str()),
            "the echo survives CP932 both ways"
        );
        let results = values(&leaves, &format!("{RESULT}/InsurerNumber"));
        match case {
            "validity-4" => assert!(results.is_empty(), "該当資格なし carries no result"),
            "validity-5" => assert!(results.len() >= 2, "複数該当: {results:?}"),
            _ => assert!(!results.is_empty(), "{case}"),
        }
        if case == "validity-1" {
            assert_eq!(results, [search.insurer_number.as_str()]);
            assert!(value(&leaves, &format!("{RESULT}/Name")).is_some());
            assert!(value(&leaves, &format!("{RESULT}/NameKana")).is_some());
            assert_eq!(
                value(&leaves, &format!("{RESULT}/Birthdate")),
                Some(search.birth_date.as_str())
            );
            // Asked with the limit-information flag: the consent time is there.
            assert_eq!(
                value(
                    &leaves,
                    &format!("{RESULT}/LimitApplicationCertificateRelatedConsFlg")
                ),
                Some("1")
            );
        }
        if case == "validity-2" {
            // Lost: the loss is told with its date and reason code.
            assert!(value(&leaves, &format!("{RESULT}/DisqualificationDate")).is_some());
            assert!(value(&leaves, &format!("{RESULT}/ReasonOfLoss")).is_some());
        }
        if case != "validity-1" {
            assert_eq!(
                value(
                    &leaves,
                    &format!("{RESULT}/LimitApplicationCertificateRelatedConsFlg")
                ),
                None,
                "no limit information without the flag"
            );
        }
    }
    // UTF-8 when the request asks for it (CharacterCodeIdentifier 0), whatever it is written in.
    let (search, _) = example("validity-1");
    let mut h = header("1340123452", "utf8");
    h.push(("CharacterCodeIdentifier", "0".into()));
    let (leaves, raw) = ask(
        dir.path(),
        &mut arrivals,
        "OQSsiquc01req_utf8.xml",
        &request(&h, &search.xml(), true),
    );
    assert!(raw.starts_with(b"<?xml version=\"1.0\" encoding=\"UTF-8\""));
    assert_eq!(
        value(&leaves, "MessageHeader/CharacterCodeIdentifier"),
        Some("0")
    );
    assert_eq!(
        value(&leaves, "MessageBody/QualificationValidity"),
        Some("1")
    );
    // Every request was moved to done/ once answered; nothing is left in req/.
    wait_req_empty(dir.path());
    assert_eq!(files_in(&dir.path().join("done")).len(), 6);
    assert_eq!(files_in(&dir.path().join("res")).len(), 6);
}

#[test]
fn each_error_class_gets_one_abnormal_answer_with_its_code() {
    let svc = service();
    let dir = tempfile::tempdir().unwrap();
    let _agent = agent(PHARMACY_T01, dir.path(), &svc);
    let mut arrivals = Arrivals::watch(&dir.path().join("res")).unwrap();
    let (good, _) = example("validity-1");
    let h = header("1340123452", "err");
    let with = |f: &dyn Fn(&mut Search)| {
        let mut s = good.clone();
        f(&mut s);
        request(&h, &s.xml(), true)
    };
    let mut sjis_decl_utf8_bytes =
        b"<?xml version=\"1.0\" encoding=\"Shift_JIS\" standalone=\"no\"?>".to_vec();
    sjis_decl_utf8_bytes.extend_from_slice(
        b"<XmlMsg><MessageHeader><ArbitraryFileIdentifier>\x81\x20</ArbitraryFileIdentifier></MessageHeader></XmlMsg>",
    );
    let mut utf8_decl_sjis_bytes =
        b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>".to_vec();
    utf8_decl_sjis_bytes.extend_from_slice(b"<XmlMsg><MessageHeader><ArbitraryFileIdentifier>\xfb\xfc</ArbitraryFileIdentifier></MessageHeader></XmlMsg>");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "OQSsiquc01req_badxml.xml",
            b"<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><XmlMsg><MessageHeader></XmlMsg>"
                .to_vec(),
            "EOQ1001",
        ),
        (
            "OQSsiquc01req_root.xml",
            b"<Other><A>1</A></Other>".to_vec(),
            "EOQ1001",
        ),
        ("OQSsiquc01req_sjis.xml", sjis_decl_utf8_bytes, "EOQ1002"),
        ("OQSsiquc01req_utf8.xml", utf8_decl_sjis_bytes, "EOQ1002"),
        (
            "OQSsiquc01req_euc.xml",
            b"<?xml version=\"1.0\" encoding=\"EUC-JP\"?><XmlMsg/>".to_vec(),
            "EOQ1002",
        ),
        ("ABCsiquc01req_unknown.xml", with(&|_| {}), "EOQ1003"),
        (
            "OQSsiquc01req_nobirth.xml",
            with(&|s| s.birth_date.clear()),
            "EOQ1004",
        ),
        (
            "OQSsiquc01req_nobody.xml",
            request(&h, "", true).into_iter().collect::<Vec<u8>>(),
            "EOQ1004",
        ),
        (
            "OQSsiquc01req_flag.xml",
            String::from_utf8(with(&|s| s.limit_consent = true))
                .map(|t| t.replace("ConsFlg>1<", "ConsFlg>7<").into_bytes())
                .unwrap_or_default(),
            "EOQ1005",
        ),
        (
            "OQSsiquc01req_checkdigit.xml",
            with(&|s| {
                let mut d: Vec<u8> = s.insurer_number.bytes().collect();
                let last = d.len() - 1;
                d[last] = if d[last] == b'9' { b'0' } else { d[last] + 1 };
                s.insurer_number = String::from_utf8(d).unwrap();
            }),
            "EOQ2011",
        ),
        (
            "OQSsiquc01req_date.xml",
            with(&|s| s.birth_date = "19801332".into()),
            "EOQ2013",
        ),
        (
            "OQSsiquc01req_branch.xml",
            with(&|s| s.branch = "1".into()),
            "EOQ2014",
        ),
        (
            "OQSmuquc02req_unknown.xml",
            request(
                &h,
                "<ReceptionNumber>0000000000000000</ReceptionNumber>",
                true,
            ),
            "EOQ2090",
        ),
    ];
    // The check-digit case must really have a bad check digit (and the flag case bytes).
    for (name, bytes, code) in &cases {
        assert!(!bytes.is_empty(), "{name}");
        let (leaves, _) = ask(dir.path(), &mut arrivals, name, bytes);
        assert_eq!(
            value(&leaves, "MessageHeader/SegmentOfResult"),
            Some("9"),
            "{name}: {leaves:?}"
        );
        assert_eq!(
            value(&leaves, "MessageHeader/ErrorCode"),
            Some(*code),
            "{name}"
        );
        assert!(
            value(&leaves, "MessageHeader/ErrorMessage").is_some(),
            "{name}"
        );
    }
    assert_eq!(files_in(&dir.path().join("res")).len(), cases.len());
    wait_req_empty(dir.path());
}

#[test]
fn an_unreachable_service_gets_one_outage_answer() {
    let dir = tempfile::tempdir().unwrap();
    let _agent = OqsAgent::start(
        &terminal_config(PHARMACY_T01),
        dir.path(),
        "https://127.0.0.1:1",
        &[],
    )
    .unwrap();
    let mut arrivals = Arrivals::watch(&dir.path().join("res")).unwrap();
    let (search, _) = example("validity-1");
    let (leaves, _) = ask(
        dir.path(),
        &mut arrivals,
        "OQSsiquc01req_down.xml",
        &request(&header("1340123452", "down"), &search.xml(), true),
    );
    assert_eq!(value(&leaves, "MessageHeader/SegmentOfResult"), Some("9"));
    assert_eq!(value(&leaves, "MessageHeader/ErrorCode"), Some("EOQ3001"));
    wait_req_empty(dir.path());
    assert_eq!(
        files_in(&dir.path().join("res")),
        ["OQSsiquc01res_down.xml"]
    );
    assert_eq!(
        files_in(&dir.path().join("done")),
        ["OQSsiquc01req_down.xml"]
    );
}

// ---- clinical data ----------------------------------------------------------------------------

/// The valid card's holder consents at the pharmacy's reader (PIN mode over gRPC, as the
/// kiosk would).
async fn consent_at_pharmacy(svc: &Service, medication: bool, checkup: bool) {
    let w = world();
    let card = CardKeys::of(w, "valid").unwrap();
    let t = w.in_operation_terminal_dir(PHARMACY_T01).unwrap();
    let mut c = grpc::client(w, &svc.url(), &t).await.unwrap();
    let ch = c
        .issue_challenge(pb::IssueChallengeRequest {
            purpose: pb::Purpose::Confirm as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let bits = ConsentBits::new(medication, checkup, false, false);
    let binding = ChallengeBinding {
        purpose: Purpose::Confirm,
        challenge: &ch.challenge,
        terminal_name: &ch.terminal_name,
        certificate_der: &card.certificate,
        consents: bits,
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
    let r = c
        .confirm_by_card(pb::ConfirmByCardRequest {
            certificate: card.certificate.clone(),
            challenge: ch.challenge,
            signature,
            consents: Some(pb::Consents {
                medication,
                checkup,
                ..Default::default()
            }),
            prescription_issue: pb::PrescriptionIssue::Unspecified as i32,
            credential_kind: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.result_code(), pb::ResultCode::Ok);
}

#[test]
fn medication_and_checkups_in_their_shapes_and_a_refusal_without_consent() {
    let svc = service();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(consent_at_pharmacy(&svc, true, true));
    let dir = tempfile::tempdir().unwrap();
    let _agent = agent(PHARMACY_T01, dir.path(), &svc);
    let mut arrivals = Arrivals::watch(&dir.path().join("res")).unwrap();
    let (search, _) = example("medication-history");
    let h = header("1340123452", "clinical");
    let (leaves, _) = ask(
        dir.path(),
        &mut arrivals,
        "YZKsiquc01req_1.xml",
        &request(&h, &search.xml(), true),
    );
    assert_eq!(value(&leaves, "MessageHeader/SegmentOfResult"), Some("1"));
    let drug = "MessageBody/MeTrMonthInf/DiDateInfs/DiDateInf/DrugInfs/DrugInf";
    let codes = values(&leaves, &format!("{drug}/DrugC"));
    assert!(
        !codes.is_empty(),
        "the holder has drugs on record: {leaves:?}"
    );
    assert_eq!(values(&leaves, &format!("{drug}/DrugN")).len(), codes.len());
    assert_eq!(values(&leaves, &format!("{drug}/Times")).len(), codes.len());
    // A period with nothing in it answers no month.
    let body = format!(
        "{}<StartDate>190001</StartDate><EndDate>190012</EndDate>",
        search.xml()
    );
    let (leaves, _) = ask(
        dir.path(),
        &mut arrivals,
        "YZKsiquc01req_2.xml",
        &request(&h, &body, true),
    );
    assert_eq!(value(&leaves, "MessageHeader/SegmentOfResult"), Some("1"));
    assert!(values(&leaves, &format!("{drug}/DrugC")).is_empty());

    let (leaves, _) = ask(
        dir.path(),
        &mut arrivals,
        "TKKsiquc01req_1.xml",
        &request(&h, &search.xml(), true),
    );
    assert_eq!(value(&leaves, "MessageHeader/SegmentOfResult"), Some("1"));
    let item = "MessageBody/SpecificHealthCheckupInfo/HealthCheckupResultAndQuestionInfos/HealthCheckupResultAndQuestionInfo";
    let items = values(&leaves, &format!("{item}/ItemCode"));
    assert!(items.contains(&"9N001000000000001"), "height: {items:?}");
    assert!(!values(
        &leaves,
        "MessageBody/SpecificHealthCheckupInfo/EffectiveTime"
    )
    .is_empty());

    // Another institution, to which the patient never consented: refused, with its code.
    let other = tempfile::tempdir().unwrap();
    let _clinic = agent(CLINIC_T01, other.path(), &svc);
    let mut other_arrivals = Arrivals::watch(&other.path().join("res")).unwrap();
    for name in ["YZKsiquc01req_c.xml", "TKKsiquc01req_c.xml"] {
        let (leaves, _) = ask(
            other.path(),
            &mut other_arrivals,
            name,
            &request(&header("1310156789", "c"), &search.xml(), true),
        );
        assert_eq!(
            value(&leaves, "MessageHeader/SegmentOfResult"),
            Some("9"),
            "{name}"
        );
        assert_eq!(
            value(&leaves, "MessageHeader/ErrorCode"),
            Some("EOQ2070"),
            "{name}"
        );
        assert_eq!(
            value(&leaves, "MessageBody/ProcessingResultStatus"),
            Some("2")
        );
    }
}

// ---- bulk -------------------------------------------------------------------------------------

#[test]
fn a_bulk_of_ten_thousand_is_submitted_then_fetched_in_order() {
    let svc = service();
    let dir = tempfile::tempdir().unwrap();
    let _agent = agent(CLINIC_T01, dir.path(), &svc);
    let mut arrivals = Arrivals::watch(&dir.path().join("res")).unwrap();
    let cases = [
        "validity-1",
        "validity-2",
        "validity-3",
        "validity-4",
        "validity-5",
    ];
    let examples: Vec<(Search, u64)> = cases
        .iter()
        .map(|c| {
            let (s, e) = example(c);
            (s, e["validity"].as_u64().unwrap())
        })
        .collect();
    let mut body = String::new();
    let mut expected = Vec::new();
    for i in 0..10_000usize {
        let (mut s, validity) = examples[i % examples.len()].clone();
        s.arbitrary_identifier = format!("{i:05}");
        // Every 7th query has a bad check digit: that query fails, not the batch.
        let bad = i % 7 == 3;
        if bad {
            s.insurer_number = "01130013".into();
        }
        body.push_str(&s.xml());
        expected.push((s.arbitrary_identifier.clone(), bad, validity));
    }
    let h = header("1310156789", "bulk");
    let started = Instant::now();
    let (leaves, _) = ask(
        dir.path(),
        &mut arrivals,
        "OQSmuquc01req_bulk.xml",
        &request(&h, &body, true),
    );
    assert_eq!(value(&leaves, "MessageHeader/SegmentOfResult"), Some("1"));
    let reception = value(&leaves, "MessageBody/ReceptionNumber")
        .expect("a reception number")
        .to_owned();
    assert!(value(&leaves, "MessageBody/ReceptionDateTime").is_some());
    let fetch = request(
        &h,
        &format!("<ReceptionNumber>{reception}</ReceptionNumber>"),
        true,
    );
    let mut polls = 0;
    let leaves = loop {
        polls += 1;
        let name = format!("OQSmuquc02req_bulk_{polls}.xml");
        let (leaves, _) = ask(dir.path(), &mut arrivals, &name, &fetch);
        match value(&leaves, "MessageHeader/SegmentOfResult") {
            Some("2") => {
                assert!(started.elapsed() < Duration::from_secs(300), "still 処理中");
                assert_eq!(
                    value(&leaves, "MessageHeader/ReceptionNumber"),
                    Some(reception.as_str())
                );
                std::thread::sleep(Duration::from_millis(500));
            }
            Some("1") => break leaves,
            other => panic!(
                "fetch answered {other:?}: {:?}",
                &leaves[..leaves.len().min(20)]
            ),
        }
    };
    eprintln!(
        "bulk of 10,000: answered after {:.1} s and {polls} fetch(es)",
        started.elapsed().as_secs_f64()
    );
    let errors = expected.iter().filter(|e| e.1).count();
    assert_eq!(
        value(&leaves, "MessageHeader/NumberOfProcessingResult"),
        Some("10000")
    );
    assert_eq!(
        value(&leaves, "MessageHeader/NumberOfError"),
        Some(errors.to_string().as_str())
    );
    assert_eq!(
        value(&leaves, "MessageHeader/NumberOfNormalProcessing"),
        Some((10_000 - errors).to_string().as_str())
    );
    let ids = values(
        &leaves,
        "MessageBody/BulkConfirmUnit/QualificationConfirmSearchInfo/ArbitraryIdentifier",
    );
    assert_eq!(ids.len(), 10_000);
    assert!(
        ids.iter().zip(&expected).all(|(a, e)| *a == e.0),
        "the order of submission"
    );
    // Walk the units: each has its status, and a validity or an error code.
    let mut unit = 0usize;
    let mut statuses = Vec::new();
    let mut validities = Vec::new();
    let mut codes = Vec::new();
    for (p, v) in &leaves {
        match p.as_str() {
            "MessageBody/BulkConfirmUnit/QualificationConfirmSearchInfo/ArbitraryIdentifier" => {
                unit = v.parse().unwrap()
            }
            "MessageBody/BulkConfirmUnit/ProcessingResultStatus" => {
                statuses.push((unit, v.clone()))
            }
            "MessageBody/BulkConfirmUnit/QualificationValidity" => {
                validities.push((unit, v.clone()))
            }
            "MessageBody/BulkConfirmUnit/ProcessingResultCode" => codes.push((unit, v.clone())),
            _ => {}
        }
    }
    assert_eq!(statuses.len(), 10_000);
    for (u, s) in &statuses {
        let (_, bad, _) = &expected[*u];
        assert_eq!(s, if *bad { "2" } else { "1" }, "unit {u}");
    }
    assert_eq!(codes.len(), errors);
    assert!(codes.iter().all(|(_, c)| c == "EOQ2011"));
    assert_eq!(validities.len(), 10_000 - errors);
    for (u, v) in &validities {
        assert_eq!(v, &expected[*u].2.to_string(), "unit {u}");
    }
}

// ---- durability and exactly once --------------------------------------------------------------

fn store() -> SqliteStore {
    SqliteStore::open(&world().dir.join("store/onshi.sqlite")).expect("the world's store")
}

/// The audit records of the pharmacy's T02 about the validity-2 example's holder.
fn t02_records() -> Vec<AuditRecord> {
    let (_, e) = example("validity-2");
    store()
        .query_audit(&AuditQuery {
            person_id: Some(e["person_id"].as_str().unwrap().to_owned()),
            institution_code: Some("1340123452".into()),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter(|r| r.terminal_id == "T02")
        .collect()
}

/// Every test of T02 is in this one function, so the records counted are its own.
#[test]
fn killed_between_reading_and_answering_then_replayed_the_request_is_answered_and_audited_once() {
    let mut svc = service();
    let dir = tempfile::tempdir().unwrap();
    let (search, _) = example("validity-2");
    let before = t02_records().len();
    let bytes = request(&header("1340123452", "crash"), &search.xml(), true);
    {
        let mut first = agent(PHARMACY_T02, dir.path(), &svc);
        // The service stops answering: the agent reads the request and waits on its call.
        let service_pid = svc.pid().unwrap();
        send_signal(service_pid, rustix::process::Signal::STOP).unwrap();
        oqs::drop_request(dir.path(), "OQSsiquc01req_crash.xml", &bytes).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            files_in(&dir.path().join("res")).is_empty(),
            "no answer yet"
        );
        first.kill_hard().unwrap();
        send_signal(service_pid, rustix::process::Signal::CONT).unwrap();
    }
    // Restarted, the agent answers the request it found, once.
    let mut arrivals = Arrivals::watch(&dir.path().join("res")).unwrap();
    let second = agent(PHARMACY_T02, dir.path(), &svc);
    let (answer, _) = arrivals.wait("OQSsiquc01res_crash.xml", WAIT).unwrap();
    let leaves = check_answer(&answer).unwrap();
    assert_eq!(value(&leaves, "MessageHeader/SegmentOfResult"), Some("1"));
    assert_eq!(
        value(&leaves, "MessageBody/QualificationValidity"),
        Some("2")
    );
    wait_req_empty(dir.path());
    assert_eq!(
        files_in(&dir.path().join("res")),
        ["OQSsiquc01res_crash.xml"]
    );
    assert_eq!(
        files_in(&dir.path().join("done")),
        ["OQSsiquc01req_crash.xml"]
    );
    assert_eq!(
        t02_records().len(),
        before + 1,
        "one audit record, whether or not the killed agent's call was carried out"
    );

    // The reception software takes the answer and (a retry) writes the same file again: it is
    // answered again, from the service's memory, with no second audit record.
    std::fs::remove_file(dir.path().join("res/OQSsiquc01res_crash.xml")).unwrap();
    let (leaves, _) = ask(dir.path(), &mut arrivals, "OQSsiquc01req_crash.xml", &bytes);
    assert_eq!(
        value(&leaves, "MessageBody/QualificationValidity"),
        Some("2")
    );
    assert_eq!(
        t02_records().len(),
        before + 1,
        "a replayed file is not audited twice"
    );
    // Another request file (another name) is another request.
    let (leaves, _) = ask(dir.path(), &mut arrivals, "OQSsiquc01req_other.xml", &bytes);
    assert_eq!(
        value(&leaves, "MessageBody/QualificationValidity"),
        Some("2")
    );
    assert_eq!(t02_records().len(), before + 2);
    drop(second);
    svc.kill_hard().unwrap();
}

#[test]
fn a_request_written_in_two_halves_is_read_whole() {
    let svc = service();
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(PHARMACY_T01, dir.path(), &svc);
    let mut arrivals = Arrivals::watch(&dir.path().join("res")).unwrap();
    let (search, _) = example("validity-1");
    let bytes = request(&header("1340123452", "half"), &search.xml(), true);
    let (a, b) = bytes.split_at(bytes.len() / 2);
    // Written in place, kept open between the halves.
    let path = dir.path().join("req/OQSsiquc01req_open.xml");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(a).unwrap();
    f.sync_all().unwrap();
    std::thread::sleep(Duration::from_millis(400));
    f.write_all(b).unwrap();
    drop(f);
    let (answer, _) = arrivals.wait("OQSsiquc01res_open.xml", WAIT).unwrap();
    let leaves = check_answer(&answer).unwrap();
    assert_eq!(
        value(&leaves, "MessageHeader/SegmentOfResult"),
        Some("1"),
        "{leaves:?}"
    );
    // Written, closed, then appended to: the first close shows a document cut short, which is
    // waited for while it is fresh.
    let path = dir.path().join("req/OQSsiquc01req_closed.xml");
    std::fs::write(&path, a).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b)
        .unwrap();
    let (answer, _) = arrivals.wait("OQSsiquc01res_closed.xml", WAIT).unwrap();
    let leaves = check_answer(&answer).unwrap();
    assert_eq!(
        value(&leaves, "MessageHeader/SegmentOfResult"),
        Some("1"),
        "{leaves:?}"
    );
    // A writer that never finishes gets an answer once the file has settled.
    std::fs::write(dir.path().join("req/OQSsiquc01req_never.xml"), a).unwrap();
    let (answer, _) = arrivals.wait("OQSsiquc01res_never.xml", WAIT).unwrap();
    let leaves = check_answer(&answer).unwrap();
    assert_eq!(value(&leaves, "MessageHeader/ErrorCode"), Some("EOQ1001"));
    // One answer each, one log line each (the line follows the answer).
    assert_eq!(files_in(&dir.path().join("res")).len(), 3);
    let mut lines: Vec<String> = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !lines.iter().any(|l| l.contains("OQSsiquc01req_never.xml")) {
        let left = deadline.saturating_duration_since(Instant::now());
        lines.push(
            agent
                .lines
                .recv_timeout(left)
                .expect("the agent's log line"),
        );
    }
    lines.extend(agent.lines.try_iter());
    for name in ["open", "closed", "never"] {
        let n = lines
            .iter()
            .filter(|l| l.contains(&format!("OQSsiquc01req_{name}.xml")))
            .count();
        assert_eq!(n, 1, "{name}: {lines:?}");
    }
}

/// The request header's QualificationConfirmationDate is the as-of date of the query (rules
/// of 2026, docs/oqs-files.md): tomorrow is answered for tomorrow, the header echoing it; a
/// day outside the window gets an abnormal answer with the service's code (EOQ2100).
#[test]
fn the_confirmation_date_of_a_request_is_its_as_of_date() {
    let svc = service();
    let dir = tempfile::tempdir().unwrap();
    let _agent = agent(PHARMACY_T01, dir.path(), &svc);
    let mut arrivals = Arrivals::watch(&dir.path().join("res")).unwrap();
    let (search, _) = example("validity-1");
    let jst = time::UtcOffset::from_hms(9, 0, 0).unwrap();
    let today = time::OffsetDateTime::now_utc().to_offset(jst).date();
    let day = |d: time::Date| format!("{:04}{:02}{:02}", d.year(), d.month() as u8, d.day());
    let tomorrow = day(today.next_day().unwrap());
    let mut h = header("1340123452", "asof");
    h.push(("QualificationConfirmationDate", tomorrow.clone()));
    let (leaves, _) = ask(
        dir.path(),
        &mut arrivals,
        "OQSsiquc01req_asof_tomorrow.xml",
        &request(&h, &search.xml(), true),
    );
    assert_eq!(value(&leaves, "MessageHeader/SegmentOfResult"), Some("1"));
    assert_eq!(
        value(&leaves, "MessageHeader/QualificationConfirmationDate"),
        Some(tomorrow.as_str())
    );
    assert_eq!(
        value(&leaves, "MessageBody/QualificationValidity"),
        Some("1")
    );
    assert_eq!(value(&leaves, "MessageBody/ProcessingResultCode"), None);

    let too_far = day(today + time::Duration::days(32));
    let mut h = header("1340123452", "asof");
    h.push(("QualificationConfirmationDate", too_far));
    let (leaves, _) = ask(
        dir.path(),
        &mut arrivals,
        "OQSsiquc01req_asof_far.xml",
        &request(&h, &search.xml(), true),
    );
    assert_eq!(value(&leaves, "MessageHeader/SegmentOfResult"), Some("9"));
    assert_eq!(value(&leaves, "MessageHeader/ErrorCode"), Some("EOQ2100"));
}
