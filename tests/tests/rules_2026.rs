//! The rules in force on 2026-12-02 (issue 19), through the service over mutual TLS with a
//! clock the test moves: the certificate grace period and its renewal warning, at each
//! boundary (docs/domain.md "Certificate grace"), and the as-of date of queries by numbers
//! with the edges of its window (docs/domain.md "As-of dates").

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use onshi_confirm_service::cert_grace::{self, JST};
use onshi_e2e::grpc::{self, CardKeys};
use onshi_e2e::inproc::InProcService;
use onshi_e2e::World;
use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose};
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_proto::v1::{self as pb, ResultCode};
use time::{Duration, OffsetDateTime};
use tonic::transport::Channel;

/// 14 cards: the cycle's `grace` (card-0013) and `expiring` (card-0014) cards are in it.
fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "rules-2026-world", 14)
}

/// The world's service.toml with stale CRLs accepted: these tests move the clock months and
/// years ahead, past the world's CRL (good for a week), which is not what they test.
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
        assert!(
            text.contains("stale_crl"),
            "service.toml has no [validation]"
        );
        let path = w.dir.join("service-stale-crl-accepted.toml");
        std::fs::write(&path, text).unwrap();
        path
    })
}

/// A configuration like [`config`] on a copy of the world's store of this test's own. Batch
/// jobs live in the store, and every service started on it leases unfinished ones: the other
/// tests' services, each on a clock of its own (moved to a grace boundary, say), would answer
/// a batch for their day instead of this test's.
fn own_store_config(name: &str) -> PathBuf {
    world().own_store_config(name, config()).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn terminal_dir() -> PathBuf {
    world()
        .terminal("in-operation", 0)
        .unwrap()
        .parent()
        .unwrap()
        .to_owned()
}

async fn client(svc: &InProcService, dir: &Path) -> ConfirmationClient<Channel> {
    ConfirmationClient::new(
        grpc::channel(world(), &svc.url(), Some(dir))
            .await
            .unwrap()
            .unwrap(),
    )
}

fn not_after(card: &CardKeys) -> OffsetDateTime {
    let (_, cert) = x509_parser::parse_x509_certificate(&card.certificate).unwrap();
    cert.validity().not_after.to_datetime()
}

fn move_to(svc: &InProcService, at: OffsetDateTime) {
    svc.advance(at - svc.now());
}

fn code_of(status: &tonic::Status) -> Option<ResultCode> {
    onshi_confirm_service::outcome::result_code_of(status)
}

/// A confirmation by card in PIN mode with `consents`, signed as the card would.
async fn confirm(
    c: &mut ConfirmationClient<Channel>,
    card: &CardKeys,
    consents: ConsentBits,
) -> Result<pb::ConfirmationResult, tonic::Status> {
    let ch = c
        .issue_challenge(pb::IssueChallengeRequest {
            purpose: pb::Purpose::Confirm as i32,
        })
        .await?
        .into_inner();
    let sig = card
        .sign(&ChallengeBinding {
            purpose: Purpose::Confirm,
            challenge: &ch.challenge,
            terminal_name: &ch.terminal_name,
            certificate_der: &card.certificate,
            consents,
        })
        .unwrap();
    let b = consents.bits();
    c.confirm_by_card(pb::ConfirmByCardRequest {
        certificate: card.certificate.clone(),
        challenge: ch.challenge,
        signature: sig,
        consents: Some(pb::Consents {
            medication: b & 1 != 0,
            checkup: b & 2 != 0,
            clinical: b & 4 != 0,
            surgery: b & 8 != 0,
            comprehensive: false,
        }),
        prescription_issue: 0,
        treatment: 0,
        requery_consent: false,
        credential_kind: 0,
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn register(
    c: &mut ConfirmationClient<Channel>,
    card: &CardKeys,
) -> Result<pb::RegisterResponse, tonic::Status> {
    let ch = c
        .issue_challenge(pb::IssueChallengeRequest {
            purpose: pb::Purpose::Register as i32,
        })
        .await?
        .into_inner();
    let sig = card
        .sign(&ChallengeBinding {
            purpose: Purpose::Register,
            challenge: &ch.challenge,
            terminal_name: &ch.terminal_name,
            certificate_der: &card.certificate,
            consents: ConsentBits::default(),
        })
        .unwrap();
    c.register_for_insurance(pb::RegisterRequest {
        certificate: card.certificate.clone(),
        challenge: ch.challenge,
        signature: sig,
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

fn ts(t: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    }
}

#[test]
fn an_expired_certificate_confirms_with_a_warning_until_the_end_of_its_grace_period() {
    let card = CardKeys::of(world(), "valid").unwrap();
    let expiry = not_after(&card);
    let warn_from = cert_grace::renewal_warning_from(expiry);
    let grace_until = cert_grace::grace_until(expiry);
    // The rule as the issue states it, independently of the library: the last day of grace is
    // the last day of the third month after the JST month of expiry.
    let expiry_day = expiry.to_offset(JST).date();
    let grace_day = grace_until.to_offset(JST).date();
    let months = (grace_day.year() - expiry_day.year()) * 12 + i32::from(grace_day.month() as u8)
        - i32::from(expiry_day.month() as u8);
    assert_eq!(months, 3);
    assert_eq!(grace_day.next_day().unwrap().day(), 1);

    let svc = InProcService::start_at(config(), warn_from - Duration::seconds(1)).unwrap();
    runtime().block_on(async {
        let mut c = client(&svc, &terminal_dir()).await;
        let all = ConsentBits::new(true, true, true, true);

        // The second before the renewal warning: a plain answer, with the notAfter.
        let r = confirm(&mut c, &card, ConsentBits::default())
            .await
            .unwrap();
        assert_eq!(r.result_code(), ResultCode::Ok);
        assert_eq!(r.warning(), pb::Warning::None);
        assert!(r.warning_message.is_empty());
        assert_eq!(r.certificate_not_after, Some(ts(expiry)));

        // From the first instant of the renewal warning to notAfter itself: the warning, data
        // shared as usual (consents recorded only at the first, so that none is still current
        // a second after notAfter: consents recorded before grace are not withdrawn).
        for (at, consents) in [(warn_from, all), (expiry, ConsentBits::default())] {
            move_to(&svc, at);
            let r = confirm(&mut c, &card, consents).await.unwrap();
            assert_eq!(r.result_code(), ResultCode::Ok, "{at}");
            assert_eq!(r.warning(), pb::Warning::CertificateExpiring, "{at}");
            assert!(!r.warning_message.is_empty());
            assert_eq!(
                r.consents.unwrap().medication.unwrap().given,
                consents.bits() != 0,
                "{at}"
            );
        }

        // A second after notAfter, and at the last instant of the grace period: eligibility
        // confirmed, with the grace warning, no consent recorded.
        for at in [expiry + Duration::seconds(1), grace_until] {
            move_to(&svc, at);
            let r = confirm(&mut c, &card, all).await.unwrap();
            assert_eq!(r.result_code(), ResultCode::Ok, "{at}");
            assert_eq!(r.processing_status(), pb::ProcessingStatus::Completed);
            assert_eq!(r.validity(), pb::QualificationValidity::Valid);
            assert_eq!(r.warning(), pb::Warning::CertificateInGrace, "{at}");
            assert!(!r.warning_message.is_empty());
            assert_eq!(r.grace_until, Some(ts(grace_until)));
            let echo = r.consents.unwrap();
            for (kind, given) in [
                ("medication", echo.medication.unwrap().given),
                ("checkup", echo.checkup.unwrap().given),
                ("clinical", echo.clinical.unwrap().given),
                ("surgery", echo.surgery.unwrap().given),
            ] {
                assert!(!given, "{kind} consent recorded in grace at {at}");
            }
            // No medication information for this confirmation: the consent given at the
            // renewal warning has long expired, and none was recorded now.
            let refused = c
                .get_medications(pb::ClinicalDataRequest {
                    patient: Some(numbers_of(&r.qualifications[0])),
                })
                .await
                .unwrap_err();
            assert!(
                matches!(
                    code_of(&refused),
                    Some(ResultCode::ConsentExpired | ResultCode::ConsentMissing)
                ),
                "{refused:?}"
            );
            // Registration is not an eligibility check: no grace for it.
            let refused = register(&mut c, &card).await.unwrap_err();
            assert_eq!(code_of(&refused), Some(ResultCode::CertificateExpired));
        }

        // The first instant after the grace period (00:00 JST on the first of the fourth
        // month): refused as expired.
        move_to(&svc, grace_until + Duration::nanoseconds(1));
        let refused = confirm(&mut c, &card, ConsentBits::default())
            .await
            .unwrap_err();
        assert_eq!(code_of(&refused), Some(ResultCode::CertificateExpired));
    });
}

#[test]
fn a_certificate_revoked_before_it_expired_stays_refused_in_grace() {
    let card = CardKeys::of(world(), "revoked").unwrap();
    let expiry = not_after(&card);
    let svc = InProcService::start_at(config(), expiry + Duration::days(1)).unwrap();
    runtime().block_on(async {
        let mut c = client(&svc, &terminal_dir()).await;
        let refused = confirm(&mut c, &card, ConsentBits::default())
            .await
            .unwrap_err();
        assert_eq!(code_of(&refused), Some(ResultCode::CertificateRevoked));
        // A day later still (the CRL read again at each request): the same.
        move_to(&svc, expiry + Duration::days(2));
        let refused = confirm(&mut c, &card, ConsentBits::default())
            .await
            .unwrap_err();
        assert_eq!(code_of(&refused), Some(ResultCode::CertificateRevoked));
    });
}

#[test]
fn the_expired_card_of_the_world_is_past_its_grace_and_refused() {
    let svc = InProcService::start(config()).unwrap();
    let card = CardKeys::of(world(), "expired").unwrap();
    assert!(svc.now() > cert_grace::grace_until(not_after(&card)));
    runtime().block_on(async {
        let mut c = client(&svc, &terminal_dir()).await;
        let refused = confirm(&mut c, &card, ConsentBits::default())
            .await
            .unwrap_err();
        assert_eq!(code_of(&refused), Some(ResultCode::CertificateExpired));
    });
}

/// The numbers of the world's example `case` (world.json `examples`).
fn example(case: &str) -> pb::NumbersQuery {
    let e = world().manifest["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["case"] == case)
        .unwrap_or_else(|| panic!("no example {case}"));
    let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
    pb::NumbersQuery {
        insurer_number: s("insurer_number"),
        symbol: s("symbol"),
        number: s("number"),
        branch: s("branch"),
        birth_date: s("birth_date"),
        ..Default::default()
    }
}

fn yyyymmdd(d: time::Date) -> String {
    format!("{:04}{:02}{:02}", d.year(), d.month() as u8, d.day())
}

fn parse_day(s: &str) -> time::Date {
    let f = time::macros::format_description!("[year][month][day]");
    time::Date::parse(s, &f).unwrap()
}

#[test]
fn a_query_by_numbers_answers_for_its_as_of_date_within_the_window() {
    let svc = InProcService::start(config()).unwrap();
    runtime().block_on(async {
        let mut c = client(&svc, &terminal_dir()).await;
        let ask = |q: pb::NumbersQuery| pb::ConfirmByNumbersRequest {
            query: Some(q),
            claimed_visit_time: None,
        };
        // The lost qualification (validity 2) today...
        let lost = example("validity-2");
        let today = svc.now().to_offset(JST).date();
        let r = c
            .confirm_by_numbers(ask(lost.clone()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.validity(), pb::QualificationValidity::Invalid);
        assert_eq!(r.as_of_date, yyyymmdd(today));
        let lost_on = parse_day(&r.qualifications[0].disqualification_date);

        // ...was valid the day before it was lost, and invalid from that day: move the clock
        // so both days are inside the window, and ask for each.
        move_to(&svc, svc.now() + (lost_on - today) + Duration::days(10));
        for (day, validity) in [
            (
                lost_on.previous_day().unwrap(),
                pb::QualificationValidity::Valid,
            ),
            (lost_on, pb::QualificationValidity::Invalid),
        ] {
            let q = pb::NumbersQuery {
                as_of_date: yyyymmdd(day),
                ..lost.clone()
            };
            let r = c.confirm_by_numbers(ask(q)).await.unwrap().into_inner();
            assert_eq!(r.validity(), validity, "as of {day}");
            assert_eq!(r.as_of_date, yyyymmdd(day));
        }

        // The window's edges, inclusive: 365 days back and 31 ahead; a day beyond either is
        // refused with its own code, a malformed date as an invalid date.
        let today = svc.now().to_offset(JST).date();
        let valid = example("validity-1");
        for (days, ok) in [
            (-365, true),
            (-366, false),
            (31, true),
            (32, false),
            (1, true),
        ] {
            let day = today + Duration::days(days);
            let q = pb::NumbersQuery {
                as_of_date: yyyymmdd(day),
                ..valid.clone()
            };
            match c.confirm_by_numbers(ask(q)).await {
                Ok(r) => {
                    assert!(ok, "{days} days accepted");
                    assert_eq!(r.into_inner().as_of_date, yyyymmdd(day));
                }
                Err(s) => {
                    assert!(!ok, "{days} days refused: {s:?}");
                    assert_eq!(code_of(&s), Some(ResultCode::AsOfDateOutOfRange));
                    assert_eq!(s.code(), tonic::Code::InvalidArgument);
                }
            }
        }
        for bad in ["20261332", "2026-12-1", "tomorrow"] {
            let q = pb::NumbersQuery {
                as_of_date: bad.into(),
                ..valid.clone()
            };
            let s = c.confirm_by_numbers(ask(q)).await.unwrap_err();
            assert_eq!(code_of(&s), Some(ResultCode::InvalidDate), "{bad}");
        }
    });
}

#[test]
fn a_batch_for_tomorrow_answers_for_tomorrow() {
    let svc = InProcService::start_running(&own_store_config("batch")).unwrap();
    runtime().block_on(async {
        let mut c = client(&svc, &terminal_dir()).await;
        let today = svc.now().to_offset(JST).date();
        let tomorrow = yyyymmdd(today.next_day().unwrap());
        let too_far = yyyymmdd(today + Duration::days(40));
        let with = |case: &str, as_of: &str| pb::NumbersQuery {
            as_of_date: as_of.into(),
            ..example(case)
        };
        let queries = vec![
            with("validity-1", &tomorrow),
            with("validity-1", ""),
            with("validity-1", &too_far),
        ];
        let submitted = c
            .submit_batch(pb::SubmitBatchRequest { queries })
            .await
            .unwrap()
            .into_inner();
        let mut done = None;
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
                done = Some(r);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let done = done.expect("the batch finished within 20 s");
        let items = done.items;
        assert_eq!(items.len(), 3);
        let r0 = items[0].result.clone().unwrap();
        assert_eq!(r0.result_code(), ResultCode::Ok);
        assert_eq!(r0.as_of_date, tomorrow);
        assert_eq!(items[0].query.as_ref().unwrap().as_of_date, tomorrow);
        let r1 = items[1].result.clone().unwrap();
        assert_eq!(r1.as_of_date, yyyymmdd(today));
        let r2 = items[2].result.clone().unwrap();
        assert_eq!(r2.processing_status(), pb::ProcessingStatus::Error);
        assert_eq!(r2.result_code(), ResultCode::AsOfDateOutOfRange);
    });
}

/// The world's `grace` and `expiring` cards at the world's own time: the service confirms them
/// with their warnings, and `check-cert` still calls the one in grace expired (validation is
/// unchanged; grace is an eligibility rule).
#[test]
fn the_worlds_grace_and_expiring_cards_get_their_warnings_and_check_cert_says_expired() {
    let svc = InProcService::start(config()).unwrap();
    runtime().block_on(async {
        let mut c = client(&svc, &terminal_dir()).await;
        for (kind, warning) in [
            ("grace", pb::Warning::CertificateInGrace),
            ("expiring", pb::Warning::CertificateExpiring),
        ] {
            let card = CardKeys::of(world(), kind).unwrap();
            let r = confirm(&mut c, &card, ConsentBits::default())
                .await
                .unwrap();
            assert_eq!(r.result_code(), ResultCode::Ok, "{kind}");
            assert_eq!(r.warning(), warning, "{kind}");
        }
    });
    let rel = world().card("grace").unwrap()["profile"]
        .as_str()
        .unwrap()
        .replace(".json", ".pem");
    let out = std::process::Command::new(onshi_e2e::bin("confirm-service").unwrap())
        .arg("check-cert")
        .arg("--config")
        .arg(world().dir.join("service.toml"))
        .arg("--json")
        .arg(world().dir.join(rel))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reason"], "expired", "{v}");
}

/// `reader-agent numbers --as-of` and `batch --as-of` through the binary: the answer names the
/// day; a day out of the window is refused with its code; `--help` explains the option.
#[test]
fn the_reader_agent_asks_for_an_as_of_date() {
    let svc = InProcService::start(config()).unwrap();
    let agent = world().terminal("in-operation", 0).unwrap();
    let e = example("validity-1");
    let today = svc.now().to_offset(JST).date();
    let tomorrow = yyyymmdd(today.next_day().unwrap());
    let numbers = |as_of: &str| {
        let mut cmd = std::process::Command::new(onshi_e2e::bin("reader-agent").unwrap());
        cmd.arg("numbers")
            .arg("--config")
            .arg(&agent)
            .args(["--service", &svc.url()])
            .args(["--insurer", &e.insurer_number])
            .args(["--symbol", &e.symbol])
            .args(["--number", &e.number])
            .args(["--branch", &e.branch])
            .args(["--birth-date", &e.birth_date])
            .args(["--as-of", as_of, "--json"]);
        let out = cmd.output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), v)
    };
    let (code, v) = numbers(&tomorrow);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["result"]["as_of_date"], tomorrow.as_str(), "{v}");
    let (code, v) = numbers(&yyyymmdd(today + Duration::days(32)));
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(
        v["result_code"], "RESULT_CODE_AS_OF_DATE_OUT_OF_RANGE",
        "{v}"
    );

    for sub in ["numbers", "batch"] {
        let out = std::process::Command::new(onshi_e2e::bin("reader-agent").unwrap())
            .args([sub, "--help"])
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("--as-of"), "{sub}: {help}");
    }
}

/// What staff see of the document from the reader agent: `numbers` in text and JSON, and the
/// answers' CSV of `batch --wait`, for the lapsed 資格確認書 of the `document-lapsed` example
/// (its own store: batch jobs live in the store, see [`own_store_config`]).
#[test]
fn the_reader_agent_shows_the_insurance_document_for_numbers_and_batches() {
    let svc = InProcService::start_running(&own_store_config("agent-documents")).unwrap();
    let agent = world().terminal("in-operation", 0).unwrap();
    let e = example("document-lapsed");
    let agent_cmd = |sub: &str| {
        let mut cmd = std::process::Command::new(onshi_e2e::bin("reader-agent").unwrap());
        cmd.arg(sub)
            .arg("--config")
            .arg(&agent)
            .args(["--service", &svc.url()]);
        cmd
    };
    let numbers = |json: bool| {
        let mut cmd = agent_cmd("numbers");
        cmd.args(["--insurer", &e.insurer_number])
            .args(["--symbol", &e.symbol])
            .args(["--number", &e.number])
            .args(["--branch", &e.branch])
            .args(["--birth-date", &e.birth_date]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let text = numbers(false);
    assert!(text.contains("有効"), "{text}");
    assert!(
        text.contains("書類 document       : 資格確認書 (valid "),
        "{text}"
    );
    assert!(text.contains("NOT valid on the day asked for"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&numbers(true)).unwrap();
    let d = &v["result"]["insurance_document"];
    assert_eq!(d["kind"], "DOCUMENT_KIND_SHIKAKU_KAKUNINSHO", "{v}");
    assert_eq!(d["valid_on_as_of_date"], false, "{v}");
    let until = d["valid_until"].as_str().unwrap().to_owned();

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("reservations.csv");
    std::fs::write(
        &csv,
        format!(
            "{},{},{},{},{}\n",
            e.insurer_number, e.symbol, e.number, e.branch, e.birth_date
        ),
    )
    .unwrap();
    let out = agent_cmd("batch")
        .arg("--csv")
        .arg(&csv)
        .args(["--wait", "60"])
        .output()
        .unwrap();
    let answers = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{answers}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = answers.lines().collect();
    assert!(
        lines[0].ends_with(",document_valid_on_as_of_date"),
        "{answers}"
    );
    assert!(
        lines[1].ends_with(&format!(
            ",DOCUMENT_KIND_SHIKAKU_KAKUNINSHO,{},{until},false",
            d["valid_from"].as_str().unwrap()
        )),
        "{answers}"
    );
}

/// The document each person holds in place of the paper card (docs/domain.md "Insurance
/// documents"): a query by numbers answers from the qualification and reports the document
/// beside it: the お知らせ without a period; a 資格確認書 valid through its last day and
/// reported lapsed from the day after, while the qualification still answers 有効.
#[test]
fn a_query_by_numbers_reports_the_document_and_answers_from_the_qualification() {
    let svc = InProcService::start(config()).unwrap();
    runtime().block_on(async {
        let mut c = client(&svc, &terminal_dir()).await;
        let ask = |q: pb::NumbersQuery| pb::ConfirmByNumbersRequest {
            query: Some(q),
            claimed_visit_time: None,
        };
        let today = svc.now().to_offset(JST).date();

        // 資格情報のお知らせ: no period, reported valid.
        let r = c
            .confirm_by_numbers(ask(example("document-oshirase")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.validity(), pb::QualificationValidity::Valid);
        let d = r.insurance_document.expect("a document");
        assert_eq!(d.kind(), pb::DocumentKind::ShikakuJohoOshirase);
        assert_eq!((d.valid_from.as_str(), d.valid_until.as_str()), ("", ""));
        assert!(d.valid_on_as_of_date);

        // A 資格確認書 valid today.
        let r = c
            .confirm_by_numbers(ask(example("document-kakuninsho")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.validity(), pb::QualificationValidity::Valid);
        let d = r.insurance_document.expect("a document");
        assert_eq!(d.kind(), pb::DocumentKind::ShikakuKakuninsho);
        assert!(parse_day(&d.valid_from) <= today && today <= parse_day(&d.valid_until));
        assert!(d.valid_on_as_of_date);

        // A 資格確認書 that lapsed while the qualification is current: 有効 today, the
        // document reported lapsed.
        let lapsed = example("document-lapsed");
        let r = c
            .confirm_by_numbers(ask(lapsed.clone()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.result_code(), ResultCode::Ok);
        assert_eq!(r.validity(), pb::QualificationValidity::Valid);
        let d = r.insurance_document.expect("a document");
        assert_eq!(d.kind(), pb::DocumentKind::ShikakuKakuninsho);
        assert!(!d.valid_on_as_of_date);
        let last_day = parse_day(&d.valid_until);
        assert!(last_day < today, "lapsed on {last_day}");

        // The boundary, asked by as-of date: valid on its last day, lapsed the day after;
        // the qualification answers 有効 on both.
        for (day, document_valid) in [(last_day, true), (last_day.next_day().unwrap(), false)] {
            let q = pb::NumbersQuery {
                as_of_date: yyyymmdd(day),
                ..lapsed.clone()
            };
            let r = c.confirm_by_numbers(ask(q)).await.unwrap().into_inner();
            assert_eq!(
                r.validity(),
                pb::QualificationValidity::Valid,
                "as of {day}"
            );
            let d = r.insurance_document.expect("a document");
            assert_eq!(d.valid_on_as_of_date, document_valid, "as of {day}");
            assert_eq!(r.as_of_date, yyyymmdd(day));
        }

        // The valid 資格確認書's own last day and the day after, with the clock moved to
        // each (no as-of date): the qualification answers 有効 on both.
        let kakuninsho = example("document-kakuninsho");
        let until = {
            let r = c
                .confirm_by_numbers(ask(kakuninsho.clone()))
                .await
                .unwrap()
                .into_inner();
            parse_day(&r.insurance_document.unwrap().valid_until)
        };
        for (day, document_valid) in [(until, true), (until.next_day().unwrap(), false)] {
            let now = svc.now().to_offset(JST);
            move_to(&svc, svc.now() + (day - now.date()));
            let r = c
                .confirm_by_numbers(ask(kakuninsho.clone()))
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.as_of_date, yyyymmdd(day));
            assert_eq!(r.validity(), pb::QualificationValidity::Valid, "on {day}");
            let d = r.insurance_document.expect("a document");
            assert_eq!(d.valid_on_as_of_date, document_valid, "on {day}");
        }
    });
}
