//! Batch confirmation (一括照会) over real mutual TLS: unary and streamed submission, the
//! reception number, 処理中 until every query is answered, answers in order with per-item
//! errors, paging, streamed results, other institutions kept out, size limits, and jobs that
//! survive a crash of the service (SIGKILL) and finish after a restart, every answer audited.
//!
//! The queries name world persons by the numbers read from the world's store (the valid and the
//! lost card's holders), numbers nobody has, and malformed ones.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use onshi_confirm_service::audit::{AuditQuery, AuditRecord};
use onshi_confirm_service::eligibility::InsurerNumber;
use onshi_confirm_service::store::{SqliteStore, Store};
use onshi_e2e::batch::{all_items, assert_refused, client, numbers_of, page, wait_done, Client};
use onshi_e2e::inproc::InProcService;
use onshi_e2e::{Service, World};
use onshi_proto::v1::{self as pb, BatchStatus, ResultCode};
use tonic::Code;

const PHARMACY_T01: &str = "1340123452-T01";
const PHARMACY_T02: &str = "1340123452-T02";
const CLINIC_T01: &str = "1310156789-T01";
const PHARMACY: &str = "1340123452";

fn shared_world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "batch-world", 8)
}

fn store_of(world: &World) -> SqliteStore {
    SqliteStore::open(&world.dir.join("store/onshi.sqlite")).expect("the world's store")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ---- the queries ------------------------------------------------------------------------------

/// What a batch item asks about, and so what its answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The valid card's holder: 有効.
    Valid,
    /// The lost card's holder: 無効.
    Lost,
    /// Numbers nobody has: 該当資格なし.
    Unknown,
    /// An insurer number with a wrong check digit: processing status 2, code 11.
    BadInsurer,
    /// No 番号: processing status 2, code 15.
    NoNumber,
}

const KINDS: [Kind; 5] = [
    Kind::Valid,
    Kind::Lost,
    Kind::Unknown,
    Kind::BadInsurer,
    Kind::NoNumber,
];

/// The numbers of the world persons the queries name.
#[derive(Debug, Clone)]
struct Mix {
    valid: pb::NumbersQuery,
    valid_person: String,
    lost: pb::NumbersQuery,
    lost_person: String,
}

impl Mix {
    fn of(world: &World) -> Mix {
        let store = store_of(world);
        let numbers = |kind: &str, current: bool| {
            let person_id = world.card(kind).unwrap()["person_id"]
                .as_str()
                .unwrap()
                .to_owned();
            let person = store.person(&person_id).unwrap().unwrap();
            let r = store
                .qualifications(&person_id)
                .unwrap()
                .into_iter()
                .find(|r| r.disqualification_date.is_none() == current)
                .unwrap_or_else(|| panic!("the {kind} card's holder has no such record"));
            (numbers_of(&r, person.birth_date), person_id)
        };
        let (valid, valid_person) = numbers("valid", true);
        let (lost, lost_person) = numbers("lost", false);
        Mix {
            valid,
            valid_person,
            lost,
            lost_person,
        }
    }

    fn query(&self, kind: Kind) -> pb::NumbersQuery {
        match kind {
            Kind::Valid => self.valid.clone(),
            Kind::Lost => self.lost.clone(),
            Kind::Unknown => pb::NumbersQuery {
                insurer_number: InsurerNumber::with_check_digit("0613998")
                    .unwrap()
                    .as_str()
                    .to_owned(),
                symbol: "NONE".into(),
                number: "404".into(),
                branch: "00".into(),
                birth_date: "19800101".into(),
                ..Default::default()
            },
            Kind::BadInsurer => {
                let good = &self.valid.insurer_number;
                let last = good.as_bytes()[7] - b'0';
                pb::NumbersQuery {
                    insurer_number: format!("{}{}", &good[..7], (last + 1) % 10),
                    ..self.valid.clone()
                }
            }
            Kind::NoNumber => pb::NumbersQuery {
                number: String::new(),
                ..self.valid.clone()
            },
        }
    }

    /// `n` queries cycling through every kind.
    fn cycle(&self, n: usize) -> Vec<pb::NumbersQuery> {
        (0..n).map(|i| self.query(KINDS[i % KINDS.len()])).collect()
    }

    /// The person an answer of this kind concerns, as the audit log names them.
    fn person(&self, kind: Kind) -> Option<&str> {
        match kind {
            Kind::Valid => Some(&self.valid_person),
            Kind::Lost => Some(&self.lost_person),
            _ => None,
        }
    }
}

/// Checks one answer against what its query asked.
#[track_caller]
fn assert_answer(mix: &Mix, kind: Kind, r: &pb::ConfirmationResult, what: &str) {
    use pb::QualificationValidity as V;
    assert!(!r.confirmation_id.is_empty(), "{what}: {r:?}");
    assert!(r.confirmed_at.is_some(), "{what}: {r:?}");
    assert_eq!(
        r.reference_classification(),
        pb::ReferenceClassification::InsuranceCard,
        "{what}"
    );
    let (status, validity, code, records) = match kind {
        Kind::Valid => (pb::ProcessingStatus::Completed, V::Valid, ResultCode::Ok, 1),
        Kind::Lost => (
            pb::ProcessingStatus::Completed,
            V::Invalid,
            ResultCode::Ok,
            1,
        ),
        Kind::Unknown => (
            pb::ProcessingStatus::Completed,
            V::None,
            ResultCode::NoQualification,
            0,
        ),
        Kind::BadInsurer => (
            pb::ProcessingStatus::Error,
            V::Unspecified,
            ResultCode::InvalidInsurerNumber,
            0,
        ),
        Kind::NoNumber => (
            pb::ProcessingStatus::Error,
            V::Unspecified,
            ResultCode::MissingField,
            0,
        ),
    };
    assert_eq!(
        (r.processing_status(), r.validity(), r.result_code()),
        (status, validity, code),
        "{what} ({kind:?}): {r:?}"
    );
    assert_eq!(r.qualifications.len(), records, "{what}: {r:?}");
    match kind {
        Kind::Valid => assert_eq!(r.qualifications[0].number, mix.valid.number, "{what}"),
        Kind::Lost => {
            assert_eq!(r.qualifications[0].number, mix.lost.number, "{what}");
            assert!(!r.qualifications[0].disqualification_date.is_empty());
        }
        _ => {}
    }
}

/// Checks a run of batch items: ordinals from `first` on, each echoing its query and answered
/// as its kind requires (the queries were made by [`Mix::cycle`]).
#[track_caller]
fn assert_items(mix: &Mix, items: &[pb::BatchItemResult], first: u32) {
    for (i, item) in items.iter().enumerate() {
        let ordinal = first + u32::try_from(i).unwrap();
        assert_eq!(item.ordinal, ordinal, "answers in order");
        let kind = KINDS[ordinal as usize % KINDS.len()];
        assert_eq!(
            item.query.as_ref(),
            Some(&mix.query(kind)),
            "item {ordinal}"
        );
        let result = item
            .result
            .as_ref()
            .unwrap_or_else(|| panic!("item {ordinal} has no answer"));
        assert_answer(mix, kind, result, &format!("item {ordinal}"));
    }
}

// ---- clients and refusals ---------------------------------------------------------------------

async fn submit(c: &mut Client, queries: Vec<pb::NumbersQuery>) -> pb::SubmitBatchResponse {
    c.submit_batch(pb::SubmitBatchRequest { queries })
        .await
        .unwrap()
        .into_inner()
}

#[track_caller]
fn assert_reception_number(r: &pb::SubmitBatchResponse, total: u32) {
    assert_eq!(r.reception_number.len(), 16, "{r:?}");
    assert!(
        r.reception_number.bytes().all(|b| b.is_ascii_digit()),
        "{r:?}"
    );
    assert_eq!(r.total, total);
    assert!(r.submitted_at.is_some());
}

/// The batch answers' audit records of an institution since the start.
fn batch_audit(store: &SqliteStore, institution: &str) -> Vec<AuditRecord> {
    store
        .query_audit(&AuditQuery {
            institution_code: Some(institution.to_owned()),
            limit: 1_000_000,
            ..AuditQuery::default()
        })
        .unwrap()
        .into_iter()
        .filter(|r| r.purpose == "batch")
        .collect()
}

/// Every answer has its own audit record (method `numbers`, purpose `batch`) naming the person
/// and the result code the answer carries.
#[track_caller]
fn assert_items_audited(
    store: &SqliteStore,
    mix: &Mix,
    institution: &str,
    items: &[pb::BatchItemResult],
) {
    let records = batch_audit(store, institution);
    let by_id: std::collections::HashMap<&str, &AuditRecord> = records
        .iter()
        .map(|r| (r.confirmation_id.as_str(), r))
        .collect();
    for item in items {
        let result = item.result.as_ref().unwrap();
        let record = by_id
            .get(result.confirmation_id.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "no audit record for item {} ({})",
                    item.ordinal, result.confirmation_id
                )
            });
        let kind = KINDS[item.ordinal as usize % KINDS.len()];
        assert_eq!(record.method, "numbers");
        assert_eq!(record.person_id.as_deref(), mix.person(kind), "{record:?}");
        assert_eq!(record.result_code, result.result_code().as_str_name());
    }
}

// ---- 6. unary submission, polling, paging, limits ---------------------------------------------

#[test]
fn a_batch_is_answered_in_order_with_per_item_errors_and_read_page_by_page() {
    let w = shared_world();
    let mix = Mix::of(w);
    let store = store_of(w);
    let svc = InProcService::start_running(&w.dir.join("service.toml")).expect("confirm-service");
    runtime().block_on(async {
        let mut t1 = client(w, &svc, PHARMACY_T01).await;
        let mut t2 = client(w, &svc, PHARMACY_T02).await;
        let mut clinic = client(w, &svc, CLINIC_T01).await;

        let submitted = submit(&mut t1, mix.cycle(KINDS.len())).await;
        assert_reception_number(&submitted, 5);
        let number = submitted.reception_number.clone();

        // Any terminal of the institution fetches it.
        let (_, done) = wait_done(&mut t2, &number, Duration::from_secs(60)).await;
        assert_eq!(done.total, 5);
        assert_eq!(done.submitted_at, submitted.submitted_at);
        assert_eq!(done.items.len(), 5);
        assert_items(&mix, &done.items, 0);
        assert_items_audited(&store, &mix, PHARMACY, &done.items);

        // Pages: from/limit, the default limit, past the end.
        let get = |from, limit| page(&number, from, limit);
        let r = t1.get_batch_result(get(1, 2)).await.unwrap().into_inner();
        assert_eq!(r.items.len(), 2);
        assert_items(&mix, &r.items, 1);
        let r = t1.get_batch_result(get(4, 0)).await.unwrap().into_inner();
        assert_eq!(r.items.len(), 1);
        assert_items(&mix, &r.items, 4);
        let r = t1.get_batch_result(get(5, 10)).await.unwrap().into_inner();
        assert_eq!((r.status(), r.items.len()), (BatchStatus::Done, 0));
        // Answers are stored, not recomputed: a second read is the same.
        let again = t1.get_batch_result(get(0, 0)).await.unwrap().into_inner();
        assert_eq!(again.items, done.items);

        // Another institution, or a number never issued: as unknown as each other.
        let err = clinic.get_batch_result(get(0, 0)).await.unwrap_err();
        assert_refused(
            &err,
            ResultCode::BatchUnknown,
            Code::NotFound,
            "another institution",
        );
        let err = clinic
            .stream_batch_results(get(0, 0))
            .await
            .expect_err("another institution's stream is refused");
        assert_refused(
            &err,
            ResultCode::BatchUnknown,
            Code::NotFound,
            "another institution's stream",
        );
        let unknown = if number == "0000000000000000" {
            "0000000000000001"
        } else {
            "0000000000000000"
        };
        let err = t1.get_batch_result(page(unknown, 0, 0)).await.unwrap_err();
        assert_refused(
            &err,
            ResultCode::BatchUnknown,
            Code::NotFound,
            "an unknown number",
        );
        let err = t1.get_batch_result(page("", 0, 0)).await.unwrap_err();
        assert_refused(
            &err,
            ResultCode::MissingField,
            Code::InvalidArgument,
            "no number",
        );

        // Limits: an empty batch, one query over the maximum.
        let err = t1
            .submit_batch(pb::SubmitBatchRequest { queries: vec![] })
            .await
            .unwrap_err();
        assert_refused(
            &err,
            ResultCode::BatchTooLarge,
            Code::InvalidArgument,
            "empty batch",
        );
        let err = t1
            .submit_batch(pb::SubmitBatchRequest {
                queries: mix.cycle(10_001),
            })
            .await
            .unwrap_err();
        assert_refused(
            &err,
            ResultCode::BatchTooLarge,
            Code::InvalidArgument,
            "10,001 queries",
        );

        // The maximum itself is accepted, 処理中 at first, then done with every answer.
        let big = submit(&mut t1, mix.cycle(10_000)).await;
        assert_reception_number(&big, 10_000);
        let started = Instant::now();
        let (seen, _) = wait_done(&mut t1, &big.reception_number, Duration::from_secs(300)).await;
        eprintln!("10,000 queries answered in {:?}", started.elapsed());
        assert_eq!(
            seen.first(),
            Some(&BatchStatus::Processing),
            "10,000 queries are not answered before the first poll"
        );
        let items = all_items(&mut t1, &big.reception_number, 10_000).await;
        assert_eq!(items.len(), 10_000);
        assert_items(&mix, &items, 0);
        assert_items_audited(&store, &mix, PHARMACY, &items);
        // Without a crash, each query is answered (and audited) exactly once: the batch
        // records of T01 (only this test submits from T01 in this world) are exactly the
        // stored answers' ones.
        let answered: HashSet<String> = done
            .items
            .iter()
            .chain(&items)
            .map(|i| i.result.as_ref().unwrap().confirmation_id.clone())
            .collect();
        let audited: Vec<String> = batch_audit(&store, PHARMACY)
            .into_iter()
            .filter(|r| r.terminal_id == "T01")
            .map(|r| r.confirmation_id)
            .collect();
        let orphans = audited.iter().filter(|id| !answered.contains(*id)).count();
        assert_eq!(
            (audited.len(), orphans),
            (answered.len(), 0),
            "batch audit records of T01: (count, records of answers never stored)"
        );
    });
}

// ---- 7. streamed submission and streamed results ----------------------------------------------

#[test]
fn a_streamed_batch_of_2000_streams_back_2000_answers_in_order() {
    let w = shared_world();
    let mix = Mix::of(w);
    let svc = InProcService::start_running(&w.dir.join("service.toml")).expect("confirm-service");
    runtime().block_on(async {
        let mut c = client(w, &svc, PHARMACY_T02).await;
        let err = c
            .submit_batch_stream(tokio_stream::iter(Vec::<pb::NumbersQuery>::new()))
            .await
            .unwrap_err();
        assert_refused(
            &err,
            ResultCode::BatchTooLarge,
            Code::InvalidArgument,
            "an empty stream",
        );
        // A stream holds at most 10,000 queries, like a unary batch.
        let err = c
            .submit_batch_stream(tokio_stream::iter(mix.cycle(10_001)))
            .await
            .unwrap_err();
        assert_refused(
            &err,
            ResultCode::BatchTooLarge,
            Code::InvalidArgument,
            "a stream of 10,001 queries",
        );
        let queries = mix.cycle(2000);
        let submitted = c
            .submit_batch_stream(tokio_stream::iter(queries))
            .await
            .unwrap()
            .into_inner();
        assert_reception_number(&submitted, 2000);

        // Read while the batch is still being answered: the stream waits for each answer.
        let collect = |from: u32| {
            let mut c = c.clone();
            let number = submitted.reception_number.clone();
            async move {
                let mut stream = c
                    .stream_batch_results(page(&number, from, 0))
                    .await
                    .unwrap()
                    .into_inner();
                let mut items = Vec::new();
                while let Some(item) = stream.message().await.unwrap() {
                    items.push(item);
                }
                items
            }
        };
        let items = tokio::time::timeout(Duration::from_secs(300), collect(0))
            .await
            .expect("the stream ends within 300 s");
        assert_eq!(items.len(), 2000);
        assert_items(&mix, &items, 0);
        // From the middle, once done.
        let tail = tokio::time::timeout(Duration::from_secs(60), collect(1995))
            .await
            .unwrap();
        assert_eq!(tail.len(), 5);
        assert_items(&mix, &tail, 1995);
        let r = c
            .get_batch_result(page(&submitted.reception_number, 0, 1))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((r.status(), r.completed), (BatchStatus::Done, 2000));
    });
}

// ---- 8. persisted jobs survive a crash ---------------------------------------------------------

#[test]
fn a_batch_interrupted_by_a_crash_finishes_after_a_restart() {
    const TOTAL: u32 = 5000;
    // Its own world: no other test's service may pick the job up.
    let w = World::build(
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("batch-restart-world"),
        8,
    )
    .expect("world");
    let mix = Mix::of(&w);
    let config = w.dir.join("service.toml");
    let svc = Service::start(&config).expect("confirm-service");
    let submitted = runtime().block_on(async {
        let mut c = client(&w, &svc, PHARMACY_T01).await;
        submit(&mut c, mix.cycle(TOTAL as usize)).await
    });
    assert_reception_number(&submitted, TOTAL);
    let number = submitted.reception_number.clone();
    svc.kill().expect("SIGKILL the service");

    // The crash came before the job was done: it is in the store, unfinished.
    let store = store_of(&w);
    let job = store.batch(&number).unwrap().expect("the job was stored");
    assert_eq!(job.total, TOTAL);
    assert!(
        job.finished_at.is_none() && job.completed < TOTAL,
        "the crash must interrupt the job for this test to mean anything: {job:?}"
    );

    // A new process on the same store takes the job over (once the dead one's lease has run
    // out) and finishes it.
    let svc = Service::start(&config).expect("confirm-service after the crash");
    runtime().block_on(async {
        let mut c = client(&w, &svc, PHARMACY_T02).await;
        let (_, done) = wait_done(&mut c, &number, Duration::from_secs(240)).await;
        assert_eq!(done.total, TOTAL);
        let items = all_items(&mut c, &number, TOTAL).await;
        assert_eq!(items.len(), TOTAL as usize);
        assert_items(&mix, &items, 0);
        // Each answer's own audit record exists; answers computed by the dead process but
        // never stored may have left extra records, never fewer.
        assert_items_audited(&store, &mix, PHARMACY, &items);
        let records = batch_audit(&store, PHARMACY);
        assert!(records.len() >= TOTAL as usize, "{} records", records.len());
        let ids: HashSet<&str> = records.iter().map(|r| r.confirmation_id.as_str()).collect();
        assert_eq!(ids.len(), records.len(), "confirmation ids are unique");
    });
}

// ---- exactly once -----------------------------------------------------------------------------

/// The largest streamed batch (10,000 queries) takes longer to answer than the period at which
/// the service looks for unfinished jobs (one second here), so a job is still being answered
/// when its own instance rescans: each query must still be answered, and audited, exactly once.
#[test]
fn the_largest_streamed_batch_is_answered_and_audited_exactly_once() {
    const TOTAL: u32 = 10_000;
    let w = shared_world();
    let mix = Mix::of(w);
    let store = store_of(w);
    let config = w
        .service_config_with("service-rescan-1s.toml", "[batch]\nrescan_seconds = 1\n")
        .unwrap();
    let svc = InProcService::start_running(&config).expect("confirm-service");
    runtime().block_on(async {
        // The clinic: no other test of this world submits from it.
        let mut c = client(w, &svc, CLINIC_T01).await;
        let submitted = c
            .submit_batch_stream(tokio_stream::iter(mix.cycle(TOTAL as usize)))
            .await
            .unwrap()
            .into_inner();
        assert_reception_number(&submitted, TOTAL);
        let started = Instant::now();
        wait_done(
            &mut c,
            &submitted.reception_number,
            Duration::from_secs(600),
        )
        .await;
        eprintln!("{TOTAL} queries answered in {:?}", started.elapsed());
        let items = all_items(&mut c, &submitted.reception_number, TOTAL).await;
        assert_items(&mix, &items, 0);
        let answered: HashSet<&str> = items
            .iter()
            .map(|i| i.result.as_ref().unwrap().confirmation_id.as_str())
            .collect();
        assert_eq!(answered.len(), TOTAL as usize);
        let audited = batch_audit(&store, "1310156789");
        let orphans = audited
            .iter()
            .filter(|r| !answered.contains(r.confirmation_id.as_str()))
            .count();
        assert_eq!(
            (audited.len(), orphans),
            (TOTAL as usize, 0),
            "batch audit records of the clinic: (count, records of answers never stored)"
        );
    });
}
