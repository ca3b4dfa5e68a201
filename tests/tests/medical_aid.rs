//! 医療扶助 (public assistance) online confirmation (issue 20 item 1, docs/domain.md
//! "医療扶助"), through the service over mutual TLS: a recipient's card answers classification
//! A1 with the as-of month's 医療券 / 調剤券 and whether the calling institution is the
//! designated one, or validity 6 有効（未登録） when no ticket of the month is registered;
//! the treatment month's edges; registration taking effect on its day; the public-expense
//! queries of ConfirmByNumbers and 一括照会 with their own validation codes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::time::Duration as StdDuration;

use onshi_confirm_service::cert_grace::JST;
use onshi_confirm_service::eligibility::{InsurerNumber, Person, QualificationRecord};
use onshi_confirm_service::medical_aid::{self, MedicalTicket, TicketKind, TreatmentMonth};
use onshi_confirm_service::store::{LoadBatch, SqliteStore, Store};
use onshi_e2e::grpc::{self, CardKeys};
use onshi_e2e::inproc::InProcService;
use onshi_e2e::World;
use onshi_proto::binding::{ChallengeBinding, ConsentBits, Purpose};
use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_proto::v1::{self as pb, QualificationValidity as V, ResultCode};
use time::{Date, Duration, OffsetDateTime};
use tonic::transport::Channel;

const PHARMACY_T01: &str = "1340123452-T01";
const CLINIC_T01: &str = "1310156789-T01";
const CLINIC: &str = "1310156789";
const PHARMACY: &str = "1340123452";

/// 16 cards: card-0015 is the cycle's recipient with registered tickets, card-0016 the one
/// whose ticket is not registered.
fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "medical-aid-world", 16)
}

/// The world's service on a store of the calling test's own (`name`), with the test's
/// recipients loaded, stale CRLs accepted (the clock moves up to a month). Own stores: batch
/// jobs live in the store and any service on it leases them, each on its own moved clock.
fn config(name: &str) -> PathBuf {
    let w = world();
    let dir = w.dir.join(format!("store-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("onshi.sqlite");
    let _ = std::fs::remove_file(&copy);
    let source = SqliteStore::open(&w.dir.join("store/onshi.sqlite")).unwrap();
    source
        .with_connection(|c| c.execute("VACUUM INTO ?1", [copy.to_str().unwrap()]))
        .unwrap();
    drop(source);
    let store = SqliteStore::open(&copy).unwrap();
    store.load(&own_recipients(today())).unwrap();
    let text = std::fs::read_to_string(w.dir.join("service.toml")).unwrap();
    let text = text
        .replacen(
            "[validation]\n",
            "[validation]\nstale_crl = \"accept\"\n",
            1,
        )
        .replacen(
            "store = \"store/onshi.sqlite\"",
            &format!("store = \"store-{name}/onshi.sqlite\""),
            1,
        );
    assert!(text.contains(&format!("store-{name}/")) && text.contains("stale_crl"));
    let path = w.dir.join(format!("service-{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn today() -> Date {
    OffsetDateTime::now_utc().to_offset(JST).date()
}

/// Public-expense numbers of this test's recipients (Tokyo, 実施機関 200).
fn public_expense_number() -> InsurerNumber {
    InsurerNumber::with_check_digit("1213200").unwrap()
}

fn recipient_number(n: u32) -> String {
    onshi_confirm_service::eligibility::append_luhn(medical_aid::RECIPIENT, &format!("{n:06}"))
        .unwrap()
}

fn person(id: &str) -> Person {
    Person {
        id: id.into(),
        name: "生保\u{3000}太郎".into(),
        kana_name: "ｾｲﾎ ﾀﾛｳ".into(),
        sex: 1,
        birth_date: time::macros::date!(1960 - 04 - 01),
        address: "東京都新宿区西新宿2-8-1".into(),
        postcode: "163-8001".into(),
        registered_for_insurance: false,
    }
}

fn aid_record(id: &str, n: u32, lost: Option<Date>) -> QualificationRecord {
    let since = time::macros::date!(2020 - 04 - 01);
    QualificationRecord {
        person_id: id.into(),
        insured_card_classification: medical_aid::CLASSIFICATION.into(),
        insurer_number: public_expense_number(),
        insurer_name: "新宿区福祉事務所".into(),
        symbol: None,
        number: recipient_number(n),
        branch: None,
        personal_family: 1,
        insured_person_name: "生保\u{3000}太郎".into(),
        qualification_date: since,
        disqualification_date: lost,
        loss_reason: lost.map(|_| "99".into()),
        card_issue_date: since,
        card_valid_from: since,
        card_expiry: None,
        copay_ratio: String::new(),
        preschool: false,
        elderly: None,
        high_cost_limit: None,
        specific_diseases: Vec::new(),
    }
}

fn ticket(id: &str, month: TreatmentMonth, registered_on: Option<Date>) -> MedicalTicket {
    MedicalTicket {
        person_id: id.into(),
        month,
        kind: TicketKind::Medical,
        issue_number: format!("{}77", month.yyyymm()),
        valid_from: month.first_day(),
        valid_until: month.last_day(),
        institution_code: CLINIC.into(),
        institution_name: "さくら内科クリニック".into(),
        self_pay_yen: 2_300,
        registered_on,
    }
}

/// MA-REG: registered 医療券 at the clinic this month, with a self-pay amount. MA-LATE: this
/// month's ticket registered tomorrow. MA-ENDED: assistance ended ten days ago.
fn own_recipients(today: Date) -> LoadBatch {
    let month = TreatmentMonth::of(today);
    LoadBatch {
        persons: vec![person("MA-REG"), person("MA-LATE"), person("MA-ENDED")],
        qualifications: vec![
            aid_record("MA-REG", 900_001, None),
            aid_record("MA-LATE", 900_002, None),
            aid_record("MA-ENDED", 900_003, Some(today - Duration::days(10))),
        ],
        medical_tickets: vec![
            ticket("MA-REG", month, Some(month.first_day())),
            ticket("MA-LATE", month, Some(today + Duration::days(1))),
        ],
        ..LoadBatch::default()
    }
}

fn aid_query(n: u32) -> pb::NumbersQuery {
    pb::NumbersQuery {
        public_expense_number: public_expense_number().as_str().to_owned(),
        recipient_number: recipient_number(n),
        birth_date: "19600401".into(),
        ..Default::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn client(svc: &InProcService, terminal: &str) -> ConfirmationClient<Channel> {
    let dir = world().in_operation_terminal_dir(terminal).unwrap();
    ConfirmationClient::new(
        grpc::channel(world(), &svc.url(), Some(&dir))
            .await
            .unwrap()
            .unwrap(),
    )
}

/// The keys of card `card-00NN` (1-based).
fn card_keys(n: usize) -> CardKeys {
    let card = &world().manifest["cards"][n - 1];
    let rel = card["profile"].as_str().unwrap();
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(world().dir.join(rel)).unwrap()).unwrap();
    use rsa::pkcs8::DecodePrivateKey;
    CardKeys {
        certificate: pem::parse(profile["user_auth_certificate"].as_str().unwrap())
            .unwrap()
            .into_contents(),
        key: rsa::RsaPrivateKey::from_pkcs8_pem(profile["user_auth_private_key"].as_str().unwrap())
            .unwrap(),
    }
}

async fn confirm(c: &mut ConfirmationClient<Channel>, card: &CardKeys) -> pb::ConfirmationResult {
    let ch = c
        .issue_challenge(pb::IssueChallengeRequest {
            purpose: pb::Purpose::Confirm as i32,
        })
        .await
        .unwrap()
        .into_inner();
    let signature = card
        .sign(&ChallengeBinding {
            purpose: Purpose::Confirm,
            challenge: &ch.challenge,
            terminal_name: &ch.terminal_name,
            certificate_der: &card.certificate,
            consents: ConsentBits::default(),
        })
        .unwrap();
    c.confirm_by_card(pb::ConfirmByCardRequest {
        certificate: card.certificate.clone(),
        challenge: ch.challenge,
        signature,
        consents: Some(pb::Consents::default()),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
}

async fn by_numbers(
    c: &mut ConfirmationClient<Channel>,
    query: pb::NumbersQuery,
) -> Result<pb::ConfirmationResult, tonic::Status> {
    c.confirm_by_numbers(pb::ConfirmByNumbersRequest {
        query: Some(query),
        claimed_visit_time: None,
    })
    .await
    .map(tonic::Response::into_inner)
}

fn yyyymmdd(d: Date) -> String {
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Moves the service's clock to `day` (same time of day).
fn move_to_day(svc: &InProcService, day: Date) {
    let now = svc.now().to_offset(JST);
    svc.advance(Duration::days((day - now.date()).whole_days()));
}

fn code_of(status: &tonic::Status) -> Option<ResultCode> {
    onshi_confirm_service::outcome::result_code_of(status)
}

/// card-0015: A1, the month's 医療券 (clinic) and 調剤券 (pharmacy), each designated at its
/// own institution only; card-0016: 有効（未登録）, no tickets. At the clinic and at the
/// pharmacy.
#[test]
fn a_recipients_card_answers_a1_with_the_months_tickets_or_unregistered() {
    let svc = InProcService::start(&config("card")).unwrap();
    runtime().block_on(async {
        let month = TreatmentMonth::of(svc.now().to_offset(JST).date());
        for (terminal, here) in [(CLINIC_T01, CLINIC), (PHARMACY_T01, PHARMACY)] {
            let mut c = client(&svc, terminal).await;
            let r = confirm(&mut c, &card_keys(15)).await;
            assert_eq!(r.result_code(), ResultCode::Ok);
            assert_eq!(r.validity(), V::Valid, "{r:?}");
            let q = &r.qualifications[0];
            assert_eq!(q.insured_card_classification, "A1");
            assert!(q.insurer_number.starts_with("12"), "{q:?}");
            assert_eq!(q.number.len(), 7);
            let kinds: Vec<pb::MedicalTicketKind> =
                r.medical_tickets.iter().map(|t| t.kind()).collect();
            assert_eq!(
                kinds,
                [
                    pb::MedicalTicketKind::Medical,
                    pb::MedicalTicketKind::Dispensing
                ]
            );
            for t in &r.medical_tickets {
                assert_eq!(t.treatment_month, month.yyyymm());
                assert_eq!(
                    t.designated_here,
                    t.designated_institution_code == here,
                    "{t:?}"
                );
            }
            assert_eq!(
                r.medical_tickets
                    .iter()
                    .filter(|t| t.designated_here)
                    .count(),
                1,
                "exactly one ticket names {here}"
            );

            let r = confirm(&mut c, &card_keys(16)).await;
            assert_eq!(r.result_code(), ResultCode::Ok);
            assert_eq!(r.validity(), V::ValidUnregistered, "{r:?}");
            assert_eq!(r.qualifications[0].insured_card_classification, "A1");
            assert!(r.medical_tickets.is_empty());
        }
        // An insured person's answer carries no tickets.
        let mut c = client(&svc, CLINIC_T01).await;
        let r = confirm(&mut c, &card_keys(1)).await;
        assert_eq!(r.validity(), V::Valid);
        assert!(r.medical_tickets.is_empty());
        assert_ne!(r.qualifications[0].insured_card_classification, "A1");
    });
}

/// A ticket for month M answers on M's first and last day, not on the day before or after:
/// a query by numbers with as-of dates at each edge, and card-0015 (its tickets registered on
/// M's first day) with the service's clock moved to M's last day and the day after.
#[test]
fn the_treatment_months_first_and_last_day_answer_and_the_days_around_do_not() {
    let svc = InProcService::start(&config("edges")).unwrap();
    runtime().block_on(async {
        let month = TreatmentMonth::of(svc.now().to_offset(JST).date());
        let (first, last) = (month.first_day(), month.last_day());

        // By numbers with as-of dates, on the clock of today.
        let mut c = client(&svc, CLINIC_T01).await;
        for (day, expected, tickets) in [
            (first.previous_day().unwrap(), V::ValidUnregistered, 0),
            (first, V::Valid, 1),
            (last, V::Valid, 1),
            (last.next_day().unwrap(), V::ValidUnregistered, 0),
        ] {
            let r = by_numbers(
                &mut c,
                pb::NumbersQuery {
                    as_of_date: yyyymmdd(day),
                    ..aid_query(900_001)
                },
            )
            .await
            .unwrap();
            assert_eq!(r.validity(), expected, "as of {day}");
            assert_eq!(r.medical_tickets.len(), tickets, "as of {day}");
            assert_eq!(r.as_of_date, yyyymmdd(day));
            if let Some(t) = r.medical_tickets.first() {
                assert_eq!(t.self_pay_yen, 2_300);
                assert!(t.designated_here);
                assert_eq!(t.treatment_month, month.yyyymm());
            }
        }

        // By card, the clock moved to each edge (the holder cache keeps a holder 2 s; the
        // clock moves by days).
        // The clock only moves forward here: before today the world's CRL (issued today) is
        // not yet current. The first day is asked by as-of date above.
        for (day, expected) in [
            (last, V::Valid),
            (last.next_day().unwrap(), V::ValidUnregistered),
        ] {
            move_to_day(&svc, day);
            let r = confirm(&mut c, &card_keys(15)).await;
            assert_eq!(r.validity(), expected, "on {day}: {r:?}");
            assert_eq!(r.as_of_date, yyyymmdd(day));
        }
    });
}

/// A ticket registered tomorrow is 有効（未登録） today and answers from its registration
/// day; a recipient whose assistance ended answers 無効 with the A1 record and no tickets.
#[test]
fn registration_takes_effect_on_its_day_and_an_ended_assistance_is_invalid() {
    let svc = InProcService::start(&config("registration")).unwrap();
    runtime().block_on(async {
        let mut c = client(&svc, CLINIC_T01).await;
        let today = svc.now().to_offset(JST).date();
        let r = by_numbers(&mut c, aid_query(900_002)).await.unwrap();
        assert_eq!(r.validity(), V::ValidUnregistered);
        assert!(r.medical_tickets.is_empty());
        // The registration day is the service's, whatever the as-of date.
        let r = by_numbers(
            &mut c,
            pb::NumbersQuery {
                as_of_date: yyyymmdd(today.next_day().unwrap()),
                ..aid_query(900_002)
            },
        )
        .await
        .unwrap();
        if TreatmentMonth::of(today.next_day().unwrap()) == TreatmentMonth::of(today) {
            assert_eq!(r.validity(), V::ValidUnregistered);
        }
        move_to_day(&svc, today.next_day().unwrap());
        let r = by_numbers(
            &mut c,
            pb::NumbersQuery {
                as_of_date: yyyymmdd(today),
                ..aid_query(900_002)
            },
        )
        .await
        .unwrap();
        assert_eq!(r.validity(), V::Valid, "registered today: {r:?}");
        assert_eq!(r.medical_tickets.len(), 1);

        let r = by_numbers(&mut c, aid_query(900_003)).await.unwrap();
        assert_eq!(r.validity(), V::Invalid);
        assert_eq!(r.result_code(), ResultCode::Ok);
        assert_eq!(r.qualifications[0].insured_card_classification, "A1");
        assert!(!r.qualifications[0].disqualification_date.is_empty());
        assert!(r.medical_tickets.is_empty());
    });
}

/// The world's card-less recipients (their examples) by ConfirmByNumbers: designated
/// elsewhere answers 有効 with a ticket not designated here; without a ticket this month,
/// 有効（未登録）. Unknown numbers answer 該当資格なし.
#[test]
fn the_card_less_recipients_of_the_world_answer_by_public_expense_numbers() {
    let svc = InProcService::start(&config("world-recipients")).unwrap();
    let example = |case: &str| -> pb::NumbersQuery {
        let e = world().manifest["examples"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["case"] == case)
            .unwrap_or_else(|| panic!("no example {case}"));
        let text = |k: &str| e[k].as_str().unwrap_or("").to_owned();
        assert_eq!(text("insurer_number"), "");
        pb::NumbersQuery {
            public_expense_number: text("public_expense_number"),
            recipient_number: text("recipient_number"),
            birth_date: text("birth_date"),
            ..Default::default()
        }
    };
    runtime().block_on(async {
        let mut c = client(&svc, CLINIC_T01).await;
        let r = by_numbers(&mut c, example("medical-aid-elsewhere"))
            .await
            .unwrap();
        assert_eq!(r.validity(), V::Valid);
        assert_eq!(r.medical_tickets.len(), 1);
        assert!(!r.medical_tickets[0].designated_here);
        assert_ne!(r.medical_tickets[0].designated_institution_code, CLINIC);
        let r = by_numbers(&mut c, example("medical-aid-no-ticket"))
            .await
            .unwrap();
        assert_eq!(r.validity(), V::ValidUnregistered);
        let r = by_numbers(&mut c, example("medical-aid-registered"))
            .await
            .unwrap();
        assert_eq!(r.validity(), V::Valid);
        assert_eq!(r.medical_tickets.len(), 2);
        let r = by_numbers(&mut c, aid_query(999_999)).await.unwrap();
        assert_eq!(r.validity(), V::None);
    });
}

/// Each malformed 医療扶助 query has its own code: 110 for the 公費負担者番号 (length, check
/// digit, 法別 not 12, and a 法別 12 number in the insurer field), 111 for the 受給者番号,
/// 112 for mixed or half queries.
#[test]
fn malformed_public_expense_queries_are_refused_with_their_own_codes() {
    let svc = InProcService::start(&config("malformed")).unwrap();
    runtime().block_on(async {
        let mut c = client(&svc, CLINIC_T01).await;
        let good = aid_query(900_001);
        let mut bad_check = good.public_expense_number.clone();
        let last = bad_check.pop().unwrap();
        bad_check.push(if last == '9' {
            '0'
        } else {
            (last as u8 + 1) as char
        });
        let cases = [
            (
                pb::NumbersQuery {
                    public_expense_number: "1213200".into(),
                    ..good.clone()
                },
                ResultCode::InvalidPublicExpenseNumber,
            ),
            (
                pb::NumbersQuery {
                    public_expense_number: bad_check,
                    ..good.clone()
                },
                ResultCode::InvalidPublicExpenseNumber,
            ),
            (
                pb::NumbersQuery {
                    // A valid insurer number (協会けんぽ), not 法別 12.
                    public_expense_number: InsurerNumber::with_check_digit("0113001")
                        .unwrap()
                        .as_str()
                        .to_owned(),
                    ..good.clone()
                },
                ResultCode::InvalidPublicExpenseNumber,
            ),
            (
                pb::NumbersQuery {
                    insurer_number: good.public_expense_number.clone(),
                    number: good.recipient_number.clone(),
                    birth_date: good.birth_date.clone(),
                    ..Default::default()
                },
                ResultCode::InvalidPublicExpenseNumber,
            ),
            (
                pb::NumbersQuery {
                    recipient_number: "12345678".into(),
                    ..good.clone()
                },
                ResultCode::InvalidRecipientNumber,
            ),
            (
                pb::NumbersQuery {
                    recipient_number: "123456".into(),
                    ..good.clone()
                },
                ResultCode::InvalidRecipientNumber,
            ),
            (
                pb::NumbersQuery {
                    recipient_number: String::new(),
                    ..good.clone()
                },
                ResultCode::MixedQueryKinds,
            ),
            (
                pb::NumbersQuery {
                    symbol: "01".into(),
                    ..good.clone()
                },
                ResultCode::MixedQueryKinds,
            ),
        ];
        for (q, code) in cases {
            let e = by_numbers(&mut c, q.clone()).await.expect_err("refused");
            assert_eq!(code_of(&e), Some(code), "{q:?}: {e:?}");
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
        }
    });
}

/// 一括照会 with 医療扶助 items beside an insurance item and a malformed one: each answered
/// in order, the malformed one with processing status エラー and its own code.
#[test]
fn a_batch_answers_public_expense_queries_item_by_item() {
    let svc = InProcService::start_running(&config("batch")).unwrap();
    runtime().block_on(async {
        let mut c = client(&svc, CLINIC_T01).await;
        let insured = {
            let e = world().manifest["examples"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["case"] == "validity-1")
                .unwrap()
                .clone();
            let text = |k: &str| e[k].as_str().unwrap_or("").to_owned();
            pb::NumbersQuery {
                insurer_number: text("insurer_number"),
                symbol: text("symbol"),
                number: text("number"),
                branch: text("branch"),
                birth_date: text("birth_date"),
                ..Default::default()
            }
        };
        let queries = vec![
            aid_query(900_001),
            aid_query(900_002),
            insured,
            pb::NumbersQuery {
                recipient_number: "1".into(),
                ..aid_query(900_001)
            },
        ];
        let submitted = c
            .submit_batch(pb::SubmitBatchRequest { queries })
            .await
            .unwrap()
            .into_inner();
        onshi_e2e::batch::wait_done(
            &mut c,
            &submitted.reception_number,
            StdDuration::from_secs(60),
        )
        .await;
        let items = onshi_e2e::batch::all_items(&mut c, &submitted.reception_number, 4).await;
        let got: Vec<(i32, i32, usize)> = items
            .iter()
            .map(|i| {
                let r = i.result.as_ref().unwrap();
                (r.validity, r.result_code, r.medical_tickets.len())
            })
            .collect();
        assert_eq!(
            got,
            [
                (V::Valid as i32, ResultCode::Ok as i32, 1),
                (V::ValidUnregistered as i32, ResultCode::Ok as i32, 0),
                (V::Valid as i32, ResultCode::Ok as i32, 0),
                (0, ResultCode::InvalidRecipientNumber as i32, 0),
            ]
        );
        assert_eq!(
            items[3].result.as_ref().unwrap().processing_status(),
            pb::ProcessingStatus::Error
        );
    });
}

/// The reader agent's desk commands: `numbers --public-expense … --recipient …` (the command
/// world.json prints for a 医療扶助 example) shows the tickets in JSON and in the staff view;
/// `batch --csv` takes three-field 医療扶助 lines beside insurance lines.
#[test]
fn the_reader_agent_asks_by_public_expense_numbers_and_in_a_batch_csv() {
    let svc = InProcService::start_running(&config("agent")).unwrap();
    let agent = world().terminal("in-operation", 0).unwrap();
    let q = aid_query(900_001);
    let run = |args: &[&str]| {
        let out = std::process::Command::new(onshi_e2e::bin("reader-agent").unwrap())
            .args(args)
            .arg("--config")
            .arg(&agent)
            .args(["--service", &svc.url()])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let numbers = [
        "numbers",
        "--public-expense",
        &q.public_expense_number,
        "--recipient",
        &q.recipient_number,
        "--birth-date",
        &q.birth_date,
    ];
    let (code, out, err) = run(&[&numbers[..], &["--json"]].concat());
    assert_eq!(code, Some(0), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["result"]["validity"], 1, "{v}");
    assert_eq!(v["result"]["medical_tickets"][0]["kind"], "医療券", "{v}");
    // The world's first terminal is the pharmacy: the clinic's 医療券 is another's.
    assert_eq!(v["result"]["medical_tickets"][0]["designated_here"], false);
    let (code, out, _) = run(&numbers);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("医療券 ticket") && out.contains("他院"),
        "{out}"
    );
    let (_, out, _) = run(&[
        "numbers",
        "--public-expense",
        &q.public_expense_number,
        "--recipient",
        &recipient_number(900_002),
        "--birth-date",
        &q.birth_date,
    ]);
    assert!(
        out.contains("有効（未登録）") && out.contains("未登録"),
        "{out}"
    );

    let csv = world().dir.join("medical-aid-batch.csv");
    std::fs::write(
        &csv,
        format!(
            "public_expense_number,recipient_number,birth_date\n{},{},{}\n{},{},{}\n",
            q.public_expense_number,
            q.recipient_number,
            q.birth_date,
            q.public_expense_number,
            recipient_number(900_002),
            q.birth_date
        ),
    )
    .unwrap();
    let (code, out, err) = run(&["batch", "--csv", csv.to_str().unwrap(), "--wait", "60"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(&q.birth_date)).collect();
    assert_eq!(lines.len(), 2, "{out}");
}
