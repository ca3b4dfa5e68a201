//! Differential test: every case of the committed certificate corpus (cert-corpus/corpus,
//! made by `onshi-cert-corpus`) through `confirm-service check-cert` and through
//! `openssl verify`, requiring the verdicts the manifest records. Where our rules are
//! deliberately stricter than OpenSSL 3.0 the manifest says so per case
//! (`stricter_than_openssl`), and the test asserts that documented difference: OpenSSL
//! accepts, we reject. Every rejection must name the expected reason.
//!
//! OpenSSL is run as `openssl verify -attime T -CAfile anchors -untrusted intermediates
//! -CRLfile crls -crl_check_all -purpose sslclient -policy OID -explicit_policy cert.pem`.
//! It exits 2 both for a rejected certificate and for one it cannot load, so its printed
//! verdict is compared (`<file>: OK`), and "unable to load" counts as a rejection.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use onshi_e2e::bin;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cert-corpus/corpus")
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn pem_of(paths: &[String], tag: &str) -> String {
    paths
        .iter()
        .map(|p| {
            let der = std::fs::read(corpus().join(p)).unwrap();
            pem::encode(&pem::Pem::new(tag, der))
        })
        .collect()
}

/// Our verdict: (accepted, reason).
fn ours(case: &serde_json::Value) -> (bool, Option<String>) {
    let dir = corpus();
    let mut cmd = Command::new(bin("confirm-service").unwrap());
    cmd.arg("check-cert").arg("--json");
    cmd.arg("--at").arg(case["at"].as_str().unwrap());
    for a in strings(&case["anchors"]) {
        cmd.arg("--trust").arg(dir.join(a));
    }
    for i in strings(&case["intermediates"]) {
        cmd.arg("--intermediate").arg(dir.join(i));
    }
    for c in strings(&case["crls"]) {
        cmd.arg("--crl").arg(dir.join(c));
    }
    for p in strings(&case["policies"]) {
        cmd.arg("--policy").arg(p);
    }
    cmd.arg(dir.join(case["cert"].as_str().unwrap()));
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let code = out.status.code();
    assert!(
        code == Some(0) || code == Some(1),
        "{}: check-cert must give a verdict (exit 0/1), got {code:?}: {stdout} {}",
        case["name"],
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let accepted = v["verdict"] == "accepted";
    assert_eq!(
        accepted,
        code == Some(0),
        "{}: exit code and verdict",
        case["name"]
    );
    (accepted, v["reason"].as_str().map(str::to_owned))
}

/// OpenSSL's verdict: accepted, and its output for the failure message.
fn openssl(case: &serde_json::Value, tmp: &Path) -> (bool, String) {
    let name = case["name"].as_str().unwrap();
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let write = |file: &str, text: String| {
        let p = dir.join(file);
        std::fs::write(&p, text).unwrap();
        p
    };
    let anchors = write(
        "anchors.pem",
        pem_of(&strings(&case["anchors"]), "CERTIFICATE"),
    );
    let crls = write("crls.pem", pem_of(&strings(&case["crls"]), "X509 CRL"));
    // The certificate's exact bytes, PEM-wrapped (so broken DER reaches OpenSSL's decoder).
    let cert = write(
        "cert.pem",
        pem_of(&[case["cert"].as_str().unwrap().to_owned()], "CERTIFICATE"),
    );
    let at = unix_time(case["at"].as_str().unwrap());
    let mut cmd = Command::new("openssl");
    cmd.arg("verify")
        .arg("-attime")
        .arg(at.to_string())
        .arg("-CAfile")
        .arg(&anchors)
        .arg("-CRLfile")
        .arg(&crls)
        .arg("-crl_check_all")
        .args(["-purpose", "sslclient"]);
    for p in strings(&case["policies"]) {
        cmd.arg("-policy").arg(p);
    }
    cmd.arg("-explicit_policy");
    let intermediates = strings(&case["intermediates"]);
    if !intermediates.is_empty() {
        let untrusted = write("intermediates.pem", pem_of(&intermediates, "CERTIFICATE"));
        cmd.arg("-untrusted").arg(untrusted);
    }
    cmd.arg(&cert);
    let out = cmd.output().expect("run openssl (is it installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let ok_line = format!("{}: OK", cert.display());
    let accepted = out.status.success() && stdout.lines().any(|l| l.trim() == ok_line);
    if !accepted {
        // Exit 2 covers both "verification failed" and "unable to load": both are rejections,
        // but anything else (a usage error) is a broken test setup.
        let text = format!("{stdout}{stderr}");
        assert!(
            text.contains("error") || text.contains("nable to load"),
            "{name}: openssl neither verified nor refused: {text}"
        );
    }
    (accepted, format!("{stdout}{stderr}"))
}

/// Seconds since the epoch of a `YYYY-MM-DDTHH:MM:SSZ` time (the manifest's form).
fn unix_time(rfc3339: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| rfc3339[r].parse::<i64>().unwrap();
    assert!(rfc3339.len() == 20 && rfc3339.ends_with('Z'), "{rfc3339}");
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

#[test]
fn unix_time_conversion() {
    assert_eq!(unix_time("1970-01-01T00:00:00Z"), 0);
    assert_eq!(unix_time("2026-04-01T00:00:00Z"), 1_775_001_600);
    assert_eq!(unix_time("2000-03-01T12:30:15Z"), 951_913_815);
}

#[test]
fn every_corpus_case_matches_the_manifest_and_openssl() {
    let manifest: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(corpus().join("manifest.json")).unwrap())
            .unwrap();
    assert!(manifest.len() >= 40, "{} cases", manifest.len());
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut stricter = 0;
    for case in &manifest {
        let name = case["name"].as_str().unwrap();
        let (we_accept, reason) = ours(case);
        let (they_accept, their_output) = openssl(case, tmp.path());
        let expect_ours = case["expect"] == "accept";
        let expect_theirs = case["openssl"] == "accept";
        if we_accept != expect_ours {
            failures.push(format!(
                "{name}: check-cert {} (reason {reason:?}), manifest says {}",
                if we_accept { "accepted" } else { "rejected" },
                case["expect"]
            ));
        }
        if !we_accept && reason.as_deref() != case["reason"].as_str() {
            failures.push(format!(
                "{name}: reason {reason:?}, manifest says {}",
                case["reason"]
            ));
        }
        if they_accept != expect_theirs {
            failures.push(format!(
                "{name}: openssl {}, manifest says {}: {their_output}",
                if they_accept { "accepted" } else { "rejected" },
                case["openssl"]
            ));
        }
        match case.get("stricter_than_openssl") {
            // No documented difference: the verdicts must agree.
            None => {
                if we_accept != they_accept {
                    failures.push(format!(
                        "{name}: verdicts differ (ours {we_accept}, openssl {they_accept}) \
                         without a documented reason: {their_output}"
                    ));
                }
            }
            // A documented difference: exactly "OpenSSL accepts, we reject".
            Some(why) => {
                stricter += 1;
                if !they_accept || we_accept {
                    failures.push(format!(
                        "{name}: documented as stricter than OpenSSL ({why}) but ours \
                         {we_accept}, openssl {they_accept}"
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The corpus exercises both agreement and the documented differences.
    assert!(stricter > 0 && stricter < manifest.len() / 2);
}

/// The documented differences are documented: each reason a case gives where OpenSSL accepts
/// appears in docs/validation.md's table "Stricter than OpenSSL 3.0", with the case's own
/// explanation in the manifest; and every reason the service can give has a corpus case, so a
/// new rule cannot go without one.
#[test]
fn every_difference_is_in_the_docs_and_every_reason_has_a_case() {
    let manifest: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(corpus().join("manifest.json")).unwrap())
            .unwrap();
    let doc = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/validation.md"),
    )
    .unwrap();
    let start = doc.find("## Stricter than OpenSSL 3.0").unwrap();
    let table = &doc[start..];
    let table = &table[..table[3..].find("\n## ").map_or(table.len(), |e| e + 3)];
    let mut missing = Vec::new();
    for case in &manifest {
        let name = case["name"].as_str().unwrap();
        if let Some(why) = case.get("stricter_than_openssl") {
            assert!(
                why.as_str().is_some_and(|w| w.len() > 20),
                "{name}: the difference needs an explanation"
            );
            let reason = case["reason"].as_str().unwrap();
            if !table.contains(&format!("| `{reason}` |")) {
                missing.push(format!(
                    "{name}: reason {reason} not in the stricter-than table"
                ));
            }
        }
    }
    for reason in onshi_confirm_service::validation::CertError::REASONS {
        if !manifest.iter().any(|c| c["reason"] == *reason) {
            missing.push(format!("reason {reason} has no corpus case"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
