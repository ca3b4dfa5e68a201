//! Replays the committed fuzz corpus (fuzz/corpus/<target>/) through the fuzz targets' code
//! (`onshi_confirm_service::fuzzing`) on stable: no input may panic, and the seeds whose
//! verdicts are known still get them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;

use onshi_confirm_service::fuzzing;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no corpus in {}", dir.display());
    out
}

#[test]
fn certificate_corpus() {
    let results: Vec<(String, Option<&str>)> = inputs("certificate")
        .into_iter()
        .map(|(name, data)| (name, fuzzing::certificate(&data)))
        .collect();
    let get = |n: &str| results.iter().find(|(f, _)| f == n).map(|(_, r)| *r);
    assert_eq!(get("good-g1.der"), Some(None));
    assert_eq!(get("good-intermediate.der"), Some(None));
    assert_eq!(get("revoked-g1.der"), Some(Some("revoked")));
    assert_eq!(get("trailing-garbage.der"), Some(Some("trailing-data")));
}

#[test]
fn crl_corpus() {
    let results: Vec<(String, bool)> = inputs("crl")
        .into_iter()
        .map(|(name, data)| (name, fuzzing::crl(&data)))
        .collect();
    assert!(results.iter().any(|(n, ok)| n == "ca-g1.der" && *ok));
    assert!(results.iter().any(|(n, ok)| n == "truncated.der" && !*ok));
}

#[test]
fn request_corpus() {
    let results: Vec<(String, Result<Option<&str>, &str>)> = inputs("request")
        .into_iter()
        .map(|(name, data)| (name, fuzzing::request(&data)))
        .collect();
    let get = |n: &str| results.iter().find(|(f, _)| f == n).map(|(_, r)| *r);
    assert_eq!(get("revoked"), Some(Ok(Some("revoked"))));
    assert_eq!(get("good-g1"), Some(Ok(None)));
    assert_eq!(get("short-challenge"), Some(Err("bounds")));
    assert_eq!(get("truncated-proto"), Some(Err("decode")));
}
