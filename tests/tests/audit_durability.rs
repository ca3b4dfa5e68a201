//! The audit log under a crash: the service is killed with SIGKILL while many terminals'
//! confirmations are in flight; after the kill, every confirmation a client saw acknowledged
//! has its audit record in the store, and the service starts again on that store.
//! (Records are group-committed: an answer leaves only after the transaction holding its
//! record has committed, so no acknowledged access can be lost.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use onshi_confirm_service::audit::AuditQuery;
use onshi_confirm_service::store::{SqliteStore, Store};
use onshi_e2e::{grpc, Service, World};
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_proto::v1::{self as pb, ResultCode};
use tonic::transport::Channel;

/// A client with the identity of the terminal whose agent.toml is `terminal`.
async fn client(world: &World, service_url: &str, terminal: &Path) -> ConfirmationClient<Channel> {
    grpc::client(world, service_url, terminal.parent().unwrap())
        .await
        .unwrap()
}

/// The insurance-card numbers of the valid card's holder, from the store.
fn numbers_of_valid_holder(world: &World, store: &SqliteStore) -> pb::NumbersQuery {
    let person_id = world.card("valid").unwrap()["person_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let person = Store::person(store, &person_id).unwrap().unwrap();
    let record = Store::qualifications(store, &person_id)
        .unwrap()
        .into_iter()
        .last()
        .unwrap();
    pb::NumbersQuery {
        insurer_number: record.insurer_number.as_str().to_owned(),
        symbol: record.symbol.unwrap_or_default(),
        number: record.number,
        branch: record.branch.unwrap_or_default(),
        birth_date: onshi_confirm_service::answer::yyyymmdd(person.birth_date),
        ..Default::default()
    }
}

#[test]
fn every_acknowledged_confirmation_survives_a_sigkill_under_load() {
    let tmp = tempfile::tempdir().unwrap();
    let world = World::build(&tmp.path().join("world"), 6).unwrap();
    let store_path = world.dir.join("store/onshi.sqlite");
    let query = numbers_of_valid_holder(&world, &SqliteStore::open(&store_path).unwrap());
    // A load test through two terminals: no per-terminal limit.
    let config = world
        .service_config_with("service-unlimited.toml", "[rate_limit]\nper_second = 0")
        .unwrap();
    let mut service = Service::start(&config).unwrap();
    let terminals = [
        world.terminal("in-operation", 0).unwrap(),
        world.terminal("in-operation", 1).unwrap(),
    ];

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = service.url();
    // 16 streams over two terminals' connections, each sending until its connection dies
    // (or 30 s pass: the backstop so the loop always ends).
    let mut tasks = Vec::new();
    for i in 0..16 {
        let c = runtime.block_on(client(&world, &url, &terminals[i % 2]));
        let (acked, query) = (Arc::clone(&acked), query.clone());
        tasks.push(runtime.spawn(async move {
            let mut c = c;
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let request = pb::ConfirmByNumbersRequest {
                    query: Some(query.clone()),
                    claimed_visit_time: None,
                };
                match c.confirm_by_numbers(request).await {
                    Ok(r) => {
                        let r = r.into_inner();
                        assert_eq!(r.result_code(), ResultCode::Ok);
                        acked.lock().unwrap().push(r.confirmation_id);
                    }
                    Err(_) => break,
                }
            }
        }));
    }
    // Let the load run until a good number of answers were acknowledged, then kill the
    // service in the middle of it.
    let start = Instant::now();
    while acked.lock().unwrap().len() < 400 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the service acknowledged only {} confirmations in 20 s",
            acked.lock().unwrap().len()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    service.kill_hard().unwrap();
    let in_flight_at_kill = acked.lock().unwrap().len();
    for t in tasks {
        runtime.block_on(t).unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= in_flight_at_kill,
        "answers acknowledged: {}",
        acked.len()
    );

    // After the crash: the store opens (WAL recovery) and holds every acknowledged record.
    let store = SqliteStore::open(&store_path).unwrap();
    let records = store
        .query_audit(&AuditQuery {
            limit: 1_000_000,
            ..AuditQuery::default()
        })
        .unwrap();
    let recorded: HashSet<&str> = records.iter().map(|r| r.confirmation_id.as_str()).collect();
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !recorded.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged confirmations have no audit record, e.g. {:?}",
        missing.len(),
        acked.len(),
        missing.first()
    );
    let numbers_records = records
        .iter()
        .filter(|r| r.method == "numbers" && r.purpose == "confirm")
        .count();
    assert!(numbers_records >= acked.len());
    eprintln!(
        "{} confirmations acknowledged before the SIGKILL, {} audit records after it",
        acked.len(),
        numbers_records
    );

    // And the service starts again on the same store and answers.
    let service = Service::start(&world.dir.join("service.toml")).unwrap();
    let answer = runtime.block_on(async {
        let mut c = client(&world, &service.url(), &terminals[0]).await;
        c.confirm_by_numbers(pb::ConfirmByNumbersRequest {
            query: Some(query.clone()),
            claimed_visit_time: None,
        })
        .await
    });
    assert_eq!(answer.unwrap().into_inner().result_code(), ResultCode::Ok);
}
