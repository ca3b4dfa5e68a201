//! Validation as a library: CA generations, the certificate cache (never serving a verdict a
//! newer CRL or the passing of time changed), CRL reload without a window, large CRLs.
//! Certificates come from the committed corpus (cert-corpus/corpus); CRLs for reload tests
//! from the corpus generator.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::sync::Arc;

use onshi_cert_corpus::{case_serial, g1_with_crl, CHECK_AT, TEST_POLICY};
use onshi_confirm_service::cert_cache::{CertCache, Lookup};
use onshi_confirm_service::store::CardKey;
use onshi_confirm_service::trust_reload::{LiveTrust, Reload, TrustFiles, Watcher};
use onshi_confirm_service::validation::{CertError, EndEntityPolicy, TrustStore};
use time::Duration;

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

/// Anchors g0, g1, g2 (one name, three keys) with their CRLs.
fn generations() -> TrustStore {
    TrustStore::from_der(
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
    .unwrap()
}

#[test]
fn overlapping_generations_sharing_a_name_each_validate_their_cards() {
    let store = generations();
    let g1 = store
        .validate(&corpus("certs/good-g1.der"), CHECK_AT)
        .unwrap();
    let g2 = store
        .validate(&corpus("certs/good-g2.der"), CHECK_AT)
        .unwrap();
    assert_eq!(g1.issuer, g2.issuer, "same CA name");
    // The store key taken from a validated certificate is the one parsed from its DER.
    for (validated, der) in [(&g1, "certs/good-g1.der"), (&g2, "certs/good-g2.der")] {
        assert_eq!(
            CardKey::of_validated(validated),
            CardKey::from_der(&corpus(der)).unwrap()
        );
    }
    // The retired generation's CA has expired: its card is refused for that reason.
    let err = store
        .validate(&corpus("certs/retired-generation.der"), CHECK_AT)
        .unwrap_err();
    assert_eq!(err.reason(), "issuer-not-valid", "{err}");
    // g1 revoked serial 0x11; a g2 card with that serial is fine (CRLs are per CA key).
    store
        .validate(&corpus("certs/good-g2-serial-revoked-in-g1.der"), CHECK_AT)
        .unwrap();
    let err = store
        .validate(&corpus("certs/revoked-g1.der"), CHECK_AT)
        .unwrap_err();
    assert!(
        matches!(&err, CertError::Revoked { reason, .. } if reason == "keyCompromise"),
        "{err:?}"
    );
    let err = store
        .validate(&corpus("certs/revoked-g2.der"), CHECK_AT)
        .unwrap_err();
    assert!(
        matches!(&err, CertError::Revoked { reason, .. } if reason == "cessationOfOperation"),
        "{err:?}"
    );
}

#[test]
fn clock_skew_is_configurable() {
    // good-g1 is valid from 2025-04-01T00:00:00Z.
    let not_before = time::macros::datetime!(2025-04-01 00:00:00 UTC);
    let (ca, crl) = g1_with_crl(
        &[],
        not_before - Duration::days(1),
        not_before + Duration::days(6),
    );
    let cert = corpus("certs/good-g1.der");
    let store = |skew| {
        TrustStore::from_der(
            std::slice::from_ref(&ca),
            &[],
            std::slice::from_ref(&crl),
            EndEntityPolicy {
                clock_skew: skew,
                ..policy()
            },
        )
        .unwrap()
    };
    let early = not_before - Duration::minutes(4);
    store(Duration::minutes(5)).validate(&cert, early).unwrap();
    let err = store(Duration::ZERO).validate(&cert, early).unwrap_err();
    assert_eq!(err.reason(), "not-yet-valid");
}

#[test]
fn times_at_the_ends_of_the_calendar_are_verdicts_not_panics() {
    // check-cert --at accepts 9999-12-31T23:59:59Z; the skew must not overflow there.
    let store = generations();
    let cert = corpus("certs/good-g1.der");
    for (at, reason) in [
        (
            time::PrimitiveDateTime::MAX.assume_utc(),
            "issuer-not-valid",
        ),
        (
            time::PrimitiveDateTime::MIN.assume_utc(),
            "issuer-not-valid",
        ),
    ] {
        let err = store.validate(&cert, at).unwrap_err();
        assert_eq!(err.reason(), reason, "{at}: {err}");
    }
}

#[test]
fn cache_hits_recheck_time_and_never_outlive_the_store() {
    let store = generations();
    let cache = CertCache::new(100);
    let good = corpus("certs/good-g1.der");
    let (_, first) = cache.validate_traced(&store, &good, CHECK_AT).unwrap();
    let (v, second) = cache.validate_traced(&store, &good, CHECK_AT).unwrap();
    assert_eq!((first, second), (Lookup::Miss, Lookup::Hit));
    assert_eq!(v, store.validate(&good, CHECK_AT).unwrap());
    // The passing of time is re-checked on a hit: before the card's notBefore...
    let early = v.not_before - Duration::days(1);
    let err = cache.validate(&store, &good, early).unwrap_err();
    assert_eq!(err.reason(), "not-yet-valid");
    // ... after its CA generation expired (2029-04-01)...
    let late = time::macros::datetime!(2029-06-01 00:00:00 UTC);
    let err = cache.validate(&store, &good, late).unwrap_err();
    assert_eq!(err.reason(), "issuer-not-valid");
    // ... and a stale CRL is noticed on a hit too (g1's CRL has nextUpdate T+6 days).
    let err = cache
        .validate(&store, &good, CHECK_AT + Duration::days(8))
        .unwrap_err();
    assert_eq!(err.reason(), "crl-stale");
    // Refusals are not cached: a revoked card is refused every time.
    let revoked = corpus("certs/revoked-g1.der");
    for _ in 0..2 {
        assert_eq!(
            cache
                .validate(&store, &revoked, CHECK_AT)
                .unwrap_err()
                .reason(),
            "revoked"
        );
    }
    // A new store (a reloaded CRL) never uses the old store's entries.
    let (ca, crl) = g1_with_crl(
        &[case_serial(1)],
        CHECK_AT - Duration::hours(1),
        CHECK_AT + Duration::days(7),
    );
    let newer = TrustStore::from_der(&[ca], &[], &[crl], policy()).unwrap();
    assert_ne!(newer.generation(), store.generation());
    let err = cache.validate(&newer, &good, CHECK_AT).unwrap_err();
    assert_eq!(err.reason(), "revoked");
    // Bounded: a cache of 1 holds one entry.
    let small = CertCache::new(1);
    small.validate(&store, &good, CHECK_AT).unwrap();
    small
        .validate(&store, &corpus("certs/good-g2.der"), CHECK_AT)
        .unwrap();
    assert_eq!(small.len(), 1);
}

#[test]
fn crl_reload_swaps_atomically_and_keeps_the_old_store_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.der");
    let crl_path = dir.path().join("crl.der");
    let (ca, old_crl) = g1_with_crl(
        &[],
        CHECK_AT - Duration::days(2),
        CHECK_AT + Duration::days(5),
    );
    std::fs::write(&ca_path, &ca).unwrap();
    std::fs::write(&crl_path, &old_crl).unwrap();
    let files = TrustFiles {
        anchors: vec![ca_path],
        intermediates: vec![],
        crls: vec![crl_path.clone()],
        policy: policy(),
    };
    let live = Arc::new(LiveTrust::new(files.load().unwrap()));
    let mut watcher = Watcher::new(files);
    let cache = CertCache::default();
    let good = corpus("certs/good-g1.der");
    let check = |live: &LiveTrust| cache.validate(&live.current(), &good, CHECK_AT);
    check(&live).unwrap();
    assert!(matches!(watcher.poll(&live), Reload::Unchanged));

    // A half-written file: refused, the old store stays in force.
    let (_, new_crl) = g1_with_crl(
        &[case_serial(1)],
        CHECK_AT - Duration::days(1),
        CHECK_AT + Duration::days(6),
    );
    std::fs::write(&crl_path, &new_crl[..new_crl.len() / 2]).unwrap();
    assert!(matches!(watcher.poll(&live), Reload::Failed(_)));
    check(&live).unwrap();

    // The complete new CRL revokes the card: from the swap on, every request sees it (the
    // cached verdict belongs to the old generation).
    let before = live.current().generation();
    std::fs::write(&crl_path, &new_crl).unwrap();
    match watcher.poll(&live) {
        Reload::Replaced {
            generation,
            revoked,
        } => {
            assert_ne!(generation, before);
            assert_eq!(revoked, 1);
        }
        other => panic!("expected a reload, got {other:?}"),
    }
    assert_eq!(check(&live).unwrap_err().reason(), "revoked");

    // Going back to the older CRL would un-revoke the card: refused.
    std::fs::write(&crl_path, &old_crl).unwrap();
    assert!(matches!(watcher.poll(&live), Reload::Failed(m) if m.contains("older")));
    assert_eq!(check(&live).unwrap_err().reason(), "revoked");

    // A forged CRL (signature broken): refused.
    let mut forged = new_crl.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    std::fs::write(&crl_path, &forged).unwrap();
    assert!(matches!(watcher.poll(&live), Reload::Failed(_)));
    assert_eq!(check(&live).unwrap_err().reason(), "revoked");
}

#[test]
fn the_watcher_thread_reloads_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.der");
    let crl_path = dir.path().join("crl.der");
    let (ca, old_crl) = g1_with_crl(
        &[],
        CHECK_AT - Duration::days(2),
        CHECK_AT + Duration::days(5),
    );
    std::fs::write(&ca_path, &ca).unwrap();
    std::fs::write(&crl_path, &old_crl).unwrap();
    let files = TrustFiles {
        anchors: vec![ca_path],
        intermediates: vec![],
        crls: vec![crl_path.clone()],
        policy: policy(),
    };
    let live = Arc::new(LiveTrust::new(files.load().unwrap()));
    let handle = Watcher::new(files)
        .spawn(Arc::downgrade(&live), std::time::Duration::from_millis(20))
        .unwrap();
    let good = corpus("certs/good-g1.der");
    live.current().validate(&good, CHECK_AT).unwrap();
    let (_, new_crl) = g1_with_crl(
        &[case_serial(1)],
        CHECK_AT - Duration::days(1),
        CHECK_AT + Duration::days(6),
    );
    // Written to a temporary name and renamed, as an operator's tooling should.
    let tmp = dir.path().join("crl.der.tmp");
    std::fs::write(&tmp, &new_crl).unwrap();
    std::fs::rename(&tmp, &crl_path).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while live.current().validate(&good, CHECK_AT).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the reload never happened"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        live.current()
            .validate(&good, CHECK_AT)
            .unwrap_err()
            .reason(),
        "revoked"
    );
    // The thread ends once the live store is gone.
    drop(live);
    handle.join().unwrap();
}

#[test]
fn a_large_crl_loads_and_looks_up() {
    let revoked: Vec<Vec<u8>> = (0u32..100_000)
        .map(|i| [&[0x50u8][..], &i.to_be_bytes()].concat())
        .collect();
    let (ca, crl) = g1_with_crl(
        &revoked,
        CHECK_AT - Duration::days(1),
        CHECK_AT + Duration::days(6),
    );
    let store = TrustStore::from_der(&[ca], &[], &[crl], policy()).unwrap();
    assert_eq!(store.revoked_count(), 100_000);
    store
        .validate(&corpus("certs/good-g1.der"), CHECK_AT)
        .unwrap();
}

#[test]
fn every_reason_is_documented() {
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/result-codes.md"),
    )
    .unwrap();
    for reason in CertError::REASONS {
        assert!(
            doc.contains(&format!("| `{reason}` |")),
            "{reason} missing from result-codes.md"
        );
    }
}

#[test]
fn a_configuration_error_names_the_file_at_fault() {
    use onshi_confirm_service::validation::TrustLoadError;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.der");
    std::fs::write(&ca, corpus("ca/ca-g1.der")).unwrap();
    let good_crl = dir.path().join("good-crl.der");
    std::fs::write(&good_crl, corpus("crl/ca-g1.der")).unwrap();
    let bad_crl = dir.path().join("truncated-crl.der");
    let crl = corpus("crl/ca-g1.der");
    std::fs::write(&bad_crl, &crl[..crl.len() / 2]).unwrap();
    for load in [TrustStore::load, |a: &_, i: &_, c: &_, p| {
        TrustStore::load_diagnostic(a, i, c, p).map(|(s, _)| s)
    }] {
        let err = load(
            std::slice::from_ref(&ca),
            &[],
            &[good_crl.clone(), bad_crl.clone()],
            policy(),
        )
        .unwrap_err();
        match &err {
            TrustLoadError::Invalid { path, reason } => {
                assert_eq!(path, &bad_crl, "{err}");
                assert!(reason.starts_with("CRL is not strict DER"), "{reason}");
                assert!(!reason.contains("certificate"), "{reason}");
            }
            other => panic!("{other}"),
        }
    }
    // A CRL given as an anchor: the anchor's file is named.
    let err = TrustStore::load(&[ca.clone(), good_crl.clone()], &[], &[], policy()).unwrap_err();
    assert!(
        matches!(&err, TrustLoadError::Invalid { path, .. } if path == &good_crl),
        "{err}"
    );
}
