//! `confirm-service check-cert` as an operator runs it: verdicts, reasons, exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;

use onshi_e2e::{bin, World};

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "check-cert-world", 8)
}

/// Writes the card's certificate as PEM into `dir` and returns the path.
fn card_cert(kind: &str, dir: &Path) -> PathBuf {
    let w = world();
    let rel = w.card(kind).unwrap()["profile"]
        .as_str()
        .unwrap()
        .to_owned();
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.dir.join(rel)).unwrap()).unwrap();
    let path = dir.join(format!("{kind}.pem"));
    std::fs::write(&path, profile["user_auth_certificate"].as_str().unwrap()).unwrap();
    path
}

fn check(args: &[&str], cert: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(bin("confirm-service").unwrap())
        .arg("check-cert")
        .args(args)
        .arg(cert)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn verdicts_and_reasons_with_the_service_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let config = world().dir.join("service.toml");
    let config = config.to_str().unwrap();
    for (kind, code, reason) in [
        ("valid", 0, None),
        ("revoked", 1, Some("revoked")),
        ("expired", 1, Some("expired")),
        ("unregistered", 0, None),
    ] {
        let cert = card_cert(kind, tmp.path());
        let (status, stdout, stderr) = check(&["--config", config, "--json"], &cert);
        assert_eq!(status, Some(code), "{kind}: {stdout} {stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        match reason {
            None => assert_eq!(v["verdict"], "accepted", "{kind}"),
            Some(r) => {
                assert_eq!(v["verdict"], "rejected", "{kind}");
                assert_eq!(v["reason"], r, "{kind}");
            }
        }
    }
    // Human-readable line in the manner of openssl verify.
    let (status, stdout, _) = check(&["--config", config], &card_cert("revoked", tmp.path()));
    assert_eq!(status, Some(1));
    assert!(stdout.contains(": rejected: revoked:"), "{stdout}");
}

#[test]
fn explicit_trust_crl_policy_and_time() {
    let tmp = tempfile::tempdir().unwrap();
    let w = world();
    let ca = w.dir.join("issuing-ca/ca.pem");
    let crl = w.dir.join("issuing-ca/crl.der");
    let valid = card_cert("valid", tmp.path());
    let base = [
        "--trust",
        ca.to_str().unwrap(),
        "--crl",
        crl.to_str().unwrap(),
    ];
    let (status, stdout, stderr) = check(&base, &valid);
    assert_eq!(status, Some(0), "{stdout} {stderr}");
    assert!(stdout.contains(": OK"), "{stdout}");
    // A policy the card does not assert.
    let (status, stdout, _) = check(&[&base[..], &["--policy", "1.2.3.4"]].concat(), &valid);
    assert_eq!(status, Some(1));
    assert!(stdout.contains("wrong-policy"), "{stdout}");
    // Ten years on, the card has expired.
    let (status, stdout, _) = check(
        &[&base[..], &["--at", "2099-01-01T00:00:00Z"]].concat(),
        &valid,
    );
    assert_eq!(status, Some(1));
    assert!(stdout.contains("rejected"), "{stdout}");
    // A CRL whose issuer is not among the trusted CAs is refused when it is loaded: a
    // configuration error (exit 2), not a verdict on the card.
    let other_ca = w.dir.join("network-ca/ca.pem");
    let (status, _, stderr) = check(
        &[
            "--trust",
            other_ca.to_str().unwrap(),
            "--crl",
            crl.to_str().unwrap(),
        ],
        &valid,
    );
    assert_eq!(
        status,
        Some(2),
        "a CRL from an unconfigured issuer is a configuration error: {stderr}"
    );
}

#[test]
fn bad_input_is_a_verdict_or_a_usage_error_never_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let config = world().dir.join("service.toml");
    let config = config.to_str().unwrap();
    let garbage = tmp.path().join("garbage.der");
    std::fs::write(&garbage, b"\x30\x82\xff\xff garbage").unwrap();
    let (status, stdout, _) = check(&["--config", config], &garbage);
    assert_eq!(status, Some(1));
    assert!(stdout.contains("malformed"), "{stdout}");
    let text = tmp.path().join("text.pem");
    std::fs::write(&text, "hello").unwrap();
    // A file that is not a certificate at all is a usage error (exit 2), said on stderr.
    let (status, _, stderr) = check(&["--config", config], &text);
    assert_eq!(status, Some(2));
    assert!(stderr.contains("not a certificate"), "{stderr}");
    // Missing file, missing trust, bad time: usage or I/O errors, exit 2.
    let (status, _, stderr) = check(&["--config", config], &tmp.path().join("missing.pem"));
    assert_eq!(status, Some(2), "{stderr}");
    let (status, _, _) = check(&[], &garbage);
    assert_eq!(status, Some(2));
    let (status, _, stderr) = check(&["--config", config, "--at", "yesterday"], &garbage);
    assert_eq!(status, Some(2));
    assert!(stderr.contains("RFC 3339"), "{stderr}");
}

/// The corpus (cert-corpus/corpus) file at `rel`.
fn corpus(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../cert-corpus/corpus")
        .join(rel)
}

#[test]
fn clock_skew_and_stale_crl_policy_flags() {
    let ca = corpus("ca/ca-g1.der");
    let at = ["--at", "2026-04-01T00:00:00Z"];
    let base = |crl: &str| {
        vec![
            "--trust".to_owned(),
            ca.to_str().unwrap().to_owned(),
            "--crl".to_owned(),
            corpus(crl).to_str().unwrap().to_owned(),
        ]
    };
    let run = |args: Vec<String>, extra: &[&str], cert: &str| {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend(at);
        all.extend(extra);
        all.push("--json");
        let (status, stdout, stderr) = check(&all, &corpus(cert));
        let v: serde_json::Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
        (status, v["reason"].as_str().map(str::to_owned))
    };
    // A stale CRL: fail closed by default, accepted when the operator says so.
    let stale = base("crl/ca-g1-stale.der");
    assert_eq!(
        run(stale.clone(), &[], "certs/crl-stale.der"),
        (Some(1), Some("crl-stale".to_owned()))
    );
    assert_eq!(
        run(
            stale.clone(),
            &["--stale-crl", "accept"],
            "certs/crl-stale.der"
        ),
        (Some(0), None)
    );
    // Revocations of a stale CRL still apply under "accept".
    assert_eq!(
        run(stale, &["--stale-crl", "accept"], "certs/revoked-g1.der"),
        (Some(1), Some("revoked".to_owned()))
    );
    // A card valid from 30 days after the check time: a 31-day skew admits it.
    let current = base("crl/ca-g1.der");
    assert_eq!(
        run(current.clone(), &[], "certs/not-yet-valid.der"),
        (Some(1), Some("not-yet-valid".to_owned()))
    );
    assert_eq!(
        run(
            current,
            &["--clock-skew", "2678400"],
            "certs/not-yet-valid.der"
        ),
        (Some(0), None)
    );
}

#[test]
fn a_crl_that_fails_verification_is_left_out_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let mut forged = std::fs::read(corpus("crl/ca-g1.der")).unwrap();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let forged_path = tmp.path().join("forged.der");
    std::fs::write(&forged_path, forged).unwrap();
    let ca = corpus("ca/ca-g1.der");
    let (status, stdout, stderr) = check(
        &[
            "--trust",
            ca.to_str().unwrap(),
            "--crl",
            forged_path.to_str().unwrap(),
            "--at",
            "2026-04-01T00:00:00Z",
        ],
        &corpus("certs/good-g1.der"),
    );
    // As openssl verify does with a CRL whose signature fails: a rejection, not an error.
    assert_eq!(status, Some(1), "{stdout} {stderr}");
    assert!(stdout.contains("crl-missing"), "{stdout}");
    assert!(stderr.contains("CRL left out"), "{stderr}");
}

#[test]
fn card_profile_refusals_and_the_certificate_clock() {
    let ca = corpus("ca/ca-g1.der");
    let crl = corpus("crl/ca-g1.der");
    let base = [
        "--trust",
        ca.to_str().unwrap(),
        "--crl",
        crl.to_str().unwrap(),
        "--at",
        "2026-04-01T00:00:00Z",
    ];
    let run = |extra: &[&str], cert: &str| {
        let (status, stdout, stderr) = check(&[&base[..], extra].concat(), &corpus(cert));
        (status, stdout, stderr)
    };
    // Each profile rule names its own reason, in the human line too.
    for (cert, reason) in [
        ("certs/extra-key-usage-keycertsign.der", "extra-key-usage"),
        ("certs/no-eku.der", "missing-extended-key-usage"),
        ("certs/rsa-exponent-3.der", "wrong-rsa-exponent"),
        ("certs/serial-zero.der", "non-positive-serial"),
        ("certs/serial-21-octets.der", "serial-too-long"),
        ("certs/subject-cn-nul.der", "wrong-subject"),
    ] {
        let (status, stdout, stderr) = run(&[], cert);
        assert_eq!(status, Some(1), "{cert}: {stdout} {stderr}");
        assert!(
            stdout.contains(&format!(": rejected: {reason}: ")),
            "{stdout}"
        );
    }
    // The NUL is shown escaped, not written to the terminal.
    let (_, stdout, _) = run(&[], "certs/subject-cn-nul.der");
    assert!(
        !stdout.contains('\0') && stdout.contains("\\x00"),
        "{stdout:?}"
    );
    // One second past notAfter: expired with no allowance (the default), admitted by one.
    let (status, stdout, _) = run(&[], "certs/expired-one-second.der");
    assert_eq!(status, Some(1));
    assert!(stdout.contains(": rejected: expired: "), "{stdout}");
    let (status, stdout, stderr) = run(&["--clock-skew", "1"], "certs/expired-one-second.der");
    assert_eq!(status, Some(0), "{stdout} {stderr}");
    // The same from a service configuration: `cert_clock_skew_seconds`, 0 when absent;
    // `clock_skew_seconds` is for CRL dates only.
    let tmp = tempfile::tempdir().unwrap();
    let config = |extra: &str| {
        let path = tmp.path().join("service.toml");
        std::fs::write(
            &path,
            format!(
                "listen = \"127.0.0.1:0\"\nstore = \"store.sqlite\"\n\
                 [tls]\ncertificate = \"s.pem\"\nprivate_key = \"s.key\"\nclient_ca = \"ca.pem\"\n\
                 [validation]\ntrust_anchors = [{ca:?}]\ncrls = [{crl:?}]\n\
                 policy_oids = [\"1.2.392.200149.8.5.1.0.30\"]\nclock_skew_seconds = 300\n{extra}"
            ),
        )
        .unwrap();
        path
    };
    let at = ["--at", "2026-04-01T00:00:00Z", "--json"];
    for (extra, code, reason) in [
        ("", 1, Some("expired")),
        ("cert_clock_skew_seconds = 0\n", 1, Some("expired")),
        ("cert_clock_skew_seconds = 1\n", 0, None),
    ] {
        let path = config(extra);
        let args = [&["--config", path.to_str().unwrap()][..], &at[..]].concat();
        let (status, stdout, stderr) = check(&args, &corpus("certs/expired-one-second.der"));
        assert_eq!(status, Some(code), "{extra:?}: {stdout} {stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(v["reason"].as_str(), reason, "{extra:?}");
    }
}

/// The README's example, as written: every card's certificate sits beside its profile as
/// `cards/card-NNNN.pem`, and card-0001's is accepted with the world's configuration.
#[test]
fn the_readme_example_checks_the_certificate_beside_the_profile() {
    let w = world();
    for entry in w.manifest["cards"].as_array().unwrap() {
        let rel = entry["profile"].as_str().unwrap();
        let profile: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(w.dir.join(rel)).unwrap()).unwrap();
        let pem_path = w.dir.join(rel.replace(".json", ".pem"));
        assert_eq!(
            std::fs::read_to_string(&pem_path).unwrap(),
            profile["user_auth_certificate"].as_str().unwrap(),
            "{}",
            pem_path.display()
        );
    }
    let config = w.dir.join("service.toml");
    let (status, stdout, stderr) = check(
        &["--config", config.to_str().unwrap()],
        &w.dir.join("cards/card-0001.pem"),
    );
    assert_eq!(status, Some(0), "{stdout} {stderr}");
}
