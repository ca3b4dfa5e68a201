//! Certificate validation benchmarks (docs/performance.md "Certificate validation"):
//! cold validation, cache-hit validation, and loading and looking up a 500,000-entry CRL.
//!
//! `cargo bench -p onshi-confirm-service --bench validation -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench setup: a panic is the report

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use onshi_cert_corpus::{g1_with_crl, CHECK_AT, TEST_POLICY};
use onshi_confirm_service::cert_cache::CertCache;
use onshi_confirm_service::validation::{EndEntityPolicy, TrustStore};

fn corpus(path: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../cert-corpus/corpus")
            .join(path),
    )
    .unwrap()
}

fn policy() -> EndEntityPolicy {
    EndEntityPolicy {
        policy_oids: vec![TEST_POLICY.to_owned()],
        ..EndEntityPolicy::default()
    }
}

fn validation(c: &mut Criterion) {
    let store = TrustStore::from_der(
        &[
            corpus("ca/ca-g0.der"),
            corpus("ca/ca-g1.der"),
            corpus("ca/ca-g2.der"),
        ],
        &[],
        &[
            corpus("crl/ca-g0.der"),
            corpus("crl/ca-g1.der"),
            corpus("crl/ca-g2.der"),
        ],
        policy(),
    )
    .unwrap();
    let cert = corpus("certs/good-g1.der");
    store.validate(&cert, CHECK_AT).unwrap();

    c.bench_function("validate/cold (parse + CA signature + CRL)", |b| {
        b.iter(|| store.validate(black_box(&cert), CHECK_AT).unwrap())
    });
    let cache = CertCache::default();
    cache.validate(&store, &cert, CHECK_AT).unwrap();
    c.bench_function("validate/cache hit (hash + time + CRL lookup)", |b| {
        b.iter(|| cache.validate(&store, black_box(&cert), CHECK_AT).unwrap())
    });
}

fn large_crl(c: &mut Criterion) {
    const ENTRIES: u32 = 500_000;
    let revoked: Vec<Vec<u8>> = (0..ENTRIES)
        .map(|i| [&[0x50u8, 0x01][..], &i.to_be_bytes()].concat())
        .collect();
    let (ca, crl) = g1_with_crl(
        &revoked,
        CHECK_AT - time::Duration::days(1),
        CHECK_AT + time::Duration::days(6),
    );
    eprintln!("500,000-entry CRL: {} bytes", crl.len());
    let mut group = c.benchmark_group("crl-500k");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("load (strict DER + parse + signature + index)", |b| {
        b.iter(|| {
            let s = TrustStore::from_der(
                black_box(std::slice::from_ref(&ca)),
                &[],
                black_box(std::slice::from_ref(&crl)),
                policy(),
            )
            .unwrap();
            assert_eq!(s.revoked_count(), ENTRIES as usize);
            s
        })
    });
    group.finish();

    let store = TrustStore::from_der(&[ca], &[], &[crl], policy()).unwrap();
    let cert = corpus("certs/good-g1.der");
    let cache = CertCache::default();
    cache.validate(&store, &cert, CHECK_AT).unwrap();
    c.bench_function("crl-500k/cache hit (lookup in the 500k CRL)", |b| {
        b.iter(|| cache.validate(&store, black_box(&cert), CHECK_AT).unwrap())
    });
    c.bench_function("crl-500k/cold validation", |b| {
        b.iter(|| store.validate(black_box(&cert), CHECK_AT).unwrap())
    });
}

criterion_group!(benches, validation, large_crl);
criterion_main!(benches);
