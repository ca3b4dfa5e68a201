//! The gRPC side of batch confirmation as the tests drive it: a terminal's client, refusals
//! checked by result code, and waiting for a job and reading all its answers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::{Duration, Instant};

use onshi_confirm_service::answer::yyyymmdd;
use onshi_confirm_service::eligibility::QualificationRecord;
use onshi_confirm_service::outcome::result_code_of;
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_proto::v1::{self as pb, BatchStatus, ResultCode};
use tonic::transport::Channel;
use tonic::Code;
use tonic_types::StatusExt;

use crate::inproc::ServiceUrl;
use crate::{grpc, World};

/// Most answers in one GetBatchResult page (the service's documented maximum).
pub const MAX_PAGE: u32 = 1000;

pub type Client = ConfirmationClient<Channel>;

pub async fn client(world: &World, service: &impl ServiceUrl, name: &str) -> Client {
    let dir = world.in_operation_terminal_dir(name).unwrap();
    grpc::client(world, &service.url(), &dir).await.unwrap()
}

#[track_caller]
pub fn assert_refused(status: &tonic::Status, code: ResultCode, grpc: Code, what: &str) {
    assert_eq!(result_code_of(status), Some(code), "{what}: {status:?}");
    assert_eq!(status.code(), grpc, "{what}: {status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("{what}: no ErrorInfo in {status:?}"));
    assert_eq!(
        (info.domain.as_str(), info.reason.as_str()),
        (onshi_proto::ERROR_DOMAIN, code.as_str_name()),
        "{what}"
    );
}

pub fn page(reception_number: &str, from: u32, limit: u32) -> pb::GetBatchResultRequest {
    pb::GetBatchResultRequest {
        reception_number: reception_number.to_owned(),
        from,
        limit,
    }
}

/// Polls GetBatchResult (bounded by `timeout`) until the batch is done; checks on the way that
/// a batch in progress shows no answers and its progress only grows. Returns the statuses seen
/// and the final (done) result with its first page.
pub async fn wait_done(
    c: &mut Client,
    reception_number: &str,
    timeout: Duration,
) -> (Vec<BatchStatus>, pb::BatchResult) {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut completed = 0;
    loop {
        let r = c
            .get_batch_result(page(reception_number, 0, 0))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.reception_number, reception_number);
        assert!(r.completed >= completed, "progress never goes back");
        completed = r.completed;
        seen.push(r.status());
        match r.status() {
            BatchStatus::Done => {
                assert_eq!(r.completed, r.total);
                assert!(r.finished_at.is_some());
                return (seen, r);
            }
            BatchStatus::Processing => {
                assert!(r.items.is_empty(), "no answers while 処理中");
                assert!(r.completed < r.total);
                assert!(r.finished_at.is_none());
            }
            other => panic!("unexpected batch status {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "batch {reception_number} not done within {timeout:?}: {completed}/{} answered",
            r.total
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every answer of a done batch, page by page.
pub async fn all_items(
    c: &mut Client,
    reception_number: &str,
    total: u32,
) -> Vec<pb::BatchItemResult> {
    let mut items = Vec::new();
    while (items.len() as u32) < total {
        let r = c
            .get_batch_result(page(reception_number, items.len() as u32, MAX_PAGE))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status(), BatchStatus::Done);
        assert!(!r.items.is_empty(), "a page short of the total");
        assert!(r.items.len() as u32 <= MAX_PAGE);
        items.extend(r.items);
    }
    items
}

/// The card-less query naming a qualification record's numbers, with the holder's birth date.
pub fn numbers_of(record: &QualificationRecord, birth_date: time::Date) -> pb::NumbersQuery {
    pb::NumbersQuery {
        insurer_number: record.insurer_number.as_str().to_owned(),
        symbol: record.symbol.clone().unwrap_or_default(),
        number: record.number.clone(),
        branch: record.branch.clone().unwrap_or_default(),
        birth_date: yyyymmdd(birth_date),
        ..Default::default()
    }
}
