//! Store benchmarks on a temporary SQLite store (docs/performance.md "Benchmarks of the
//! confirmation path"): the card lookup, the card-less lookup, a confirmation's group-commit
//! share (its challenge consumed and its audit record written, in groups of 1 and of 64
//! requests), challenges issued and consumed alone (groups of 64), and audit appends without
//! challenges in groups of 1 and of 64 records.
//!
//! `cargo bench -p onshi-confirm-service --bench store -- --warm-up-time 1 --measurement-time 3`
//!
//! The audit appends and the challenge writes are durable transactions (fsync'd), so their
//! figures are the disk's as much as the code's.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench setup: a panic is the report

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use onshi_confirm_service::audit::AuditRecord;
use onshi_confirm_service::eligibility::{
    InsurerNumber, NumbersQuery, Person, QualificationRecord,
};
use onshi_confirm_service::store::{
    keep_record, AuditWrite, CardKey, ChallengeUse, GroupWrite, LoadBatch, SqliteStore, Store,
};
use time::macros::date;
use time::{Date, Duration, OffsetDateTime};

const PERSONS: usize = 5_000;

/// A small deterministic generator (xorshift64*): the benches need spread, not secrecy.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

fn person_id(i: usize) -> String {
    format!("P{i:08}")
}

fn birth_date(i: usize) -> Date {
    date!(1940 - 01 - 01) + Duration::days((i * 7 % 25_000) as i64)
}

fn card(i: usize) -> CardKey {
    CardKey {
        issuer_key: "ab".repeat(32),
        serial: format!("{:016x}", 0x5001_0000_0000_0000u64 + i as u64),
    }
}

fn insurer(i: usize) -> InsurerNumber {
    InsurerNumber::with_check_digit(&format!("0613{:03}", i % 50)).unwrap()
}

fn record(i: usize) -> QualificationRecord {
    QualificationRecord {
        person_id: person_id(i),
        insured_card_classification: "01".into(),
        insurer_number: insurer(i),
        insurer_name: "ベンチ健康保険組合".into(),
        symbol: Some(format!("{:04}", i % 100)),
        number: format!("{i:06}"),
        branch: Some("00".into()),
        personal_family: 1,
        insured_person_name: "試験　太郎".into(),
        qualification_date: date!(2020 - 04 - 01),
        disqualification_date: None,
        loss_reason: None,
        card_issue_date: date!(2020 - 04 - 01),
        card_valid_from: date!(2020 - 04 - 01),
        card_expiry: None,
        copay_ratio: "030".into(),
        preschool: false,
        elderly: None,
        high_cost_limit: None,
        specific_diseases: Vec::new(),
    }
}

fn numbers_query(i: usize) -> NumbersQuery {
    NumbersQuery {
        insurer_number: insurer(i),
        symbol: Some(format!("{:04}", i % 100)),
        number: format!("{i:06}"),
        branch: Some("00".into()),
        birth_date: birth_date(i),
    }
}

fn population() -> LoadBatch {
    let mut batch = LoadBatch::default();
    for i in 0..PERSONS {
        batch.persons.push(Person {
            id: person_id(i),
            name: "試験　太郎".into(),
            kana_name: "ｼｹﾝ ﾀﾛｳ".into(),
            sex: 1,
            birth_date: birth_date(i),
            address: "東京都千代田区霞が関1-2-2".into(),
            postcode: "100-8916".into(),
            registered_for_insurance: true,
        });
        batch.qualifications.push(record(i));
        batch.cards.push((card(i), person_id(i)));
    }
    batch
}

fn audit_record(n: u64) -> AuditRecord {
    AuditRecord {
        confirmation_id: format!("bench-{n:016x}"),
        at: OffsetDateTime::now_utc(),
        institution_code: "0110113719".into(),
        terminal_id: "T01".into(),
        person_id: Some(person_id(n as usize % PERSONS)),
        method: "pin".into(),
        purpose: "confirm".into(),
        result_code: "RESULT_CODE_OK".into(),
        consents: 0,
        certificate_sha256: Some("cd".repeat(32)),
        returned: r#"{"validity":1,"insurers":["06130001"]}"#.into(),
        claimed_at: None,
    }
}

fn store_benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("bench.sqlite")).unwrap();
    sqlite.load(&population()).unwrap();
    let store: Arc<dyn Store> = Arc::new(sqlite);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);

    c.bench_function(
        "store/card lookup (person_for_card + person + qualifications)",
        |b| {
            b.iter(|| {
                let key = card(rng.below(PERSONS));
                let id = store.person_for_card(black_box(&key)).unwrap().unwrap();
                let person = store.person(&id).unwrap().unwrap();
                let records = store.qualifications(&id).unwrap();
                black_box((person, records))
            })
        },
    );
    c.bench_function("store/card-less lookup (persons_by_numbers)", |b| {
        b.iter(|| {
            let query = numbers_query(rng.below(PERSONS));
            let ids = store.persons_by_numbers(black_box(&query)).unwrap();
            assert_eq!(ids.len(), 1);
            black_box(ids)
        })
    });

    // A sealed challenge's nonce as the service makes one: the expiry first, then a counter
    // standing for the random part.
    let nonce = |next: u64, now: OffsetDateTime| -> [u8; 16] {
        let mut n = [0u8; 16];
        n[..8].copy_from_slice(&onshi_confirm_service::challenge::nonce_floor(
            now + Duration::seconds(60),
        ));
        n[8..].copy_from_slice(&next.to_be_bytes());
        n
    };

    // A confirmation's writes: its challenge's nonce inserted and its audit record written,
    // in one group commit with the other requests waiting.
    let mut next: u64 = 0;
    let mut group = c.benchmark_group("store/group commit: challenge consumed + audit record");
    for size in [1usize, 64] {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(format!("group of {size}"), |b| {
            b.iter_batched(
                || {
                    let now = OffsetDateTime::now_utc();
                    (0..size)
                        .map(|_| {
                            next += 1;
                            GroupWrite::Audit(Box::new(AuditWrite {
                                record: audit_record(next),
                                challenge: Some(ChallengeUse {
                                    nonce: nonce(next, now),
                                }),
                                consents: Vec::new(),
                                registration: None,
                                remember: None,
                            }))
                        })
                        .collect::<Vec<_>>()
                },
                |mut writes| {
                    let verdicts = store.commit_group(black_box(&mut writes), &keep_record);
                    assert!(verdicts.unwrap().iter().all(|v| v.is_ok()));
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();

    // Challenge uses alone, as registration's path writes them, in groups of 64 as the writer
    // commits them under load (issuing a challenge writes nothing).
    let mut group = c.benchmark_group("store/challenges (fsync'd)");
    group.throughput(Throughput::Elements(64));
    group.bench_function("consume, group of 64", |b| {
        b.iter_batched(
            || {
                let now = OffsetDateTime::now_utc();
                (0..64)
                    .map(|_| {
                        next += 1;
                        GroupWrite::Consume(ChallengeUse {
                            nonce: nonce(next, now),
                        })
                    })
                    .collect::<Vec<_>>()
            },
            |mut writes| {
                let verdicts = store.commit_group(black_box(&mut writes), &keep_record);
                assert!(verdicts.unwrap().iter().all(|v| v.is_ok()));
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("store/audit append (fsync'd)");
    for size in [1usize, 64] {
        // Per-record figures: criterion divides by the group size.
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(format!("group of {size}"), |b| {
            b.iter_batched(
                || {
                    (0..size)
                        .map(|_| {
                            next += 1;
                            audit_record(next)
                        })
                        .collect::<Vec<_>>()
                },
                |records| store.append_audit(black_box(&records)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, store_benches);
criterion_main!(benches);
