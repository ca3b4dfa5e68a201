//! The committed corpus is exactly what the generator makes: regenerate and diff.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn committed(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            committed(&path, base, out);
        } else {
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(rel);
        }
    }
}

#[test]
fn committed_corpus_matches_the_generator() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let generated = onshi_cert_corpus::generate();
    let mut on_disk = BTreeSet::new();
    committed(&dir, &dir, &mut on_disk);
    let made: BTreeSet<String> = generated.iter().map(|f| f.path.clone()).collect();
    assert_eq!(
        on_disk, made,
        "files differ: regenerate with `cargo run -p onshi-cert-corpus -- cert-corpus/corpus`"
    );
    for file in &generated {
        let bytes = std::fs::read(dir.join(&file.path)).unwrap();
        assert!(
            bytes == file.bytes,
            "{} differs from the generator's output: regenerate with \
             `cargo run -p onshi-cert-corpus -- cert-corpus/corpus` and review the diff",
            file.path
        );
    }
}

#[test]
fn manifest_covers_the_required_cases() {
    let generated = onshi_cert_corpus::generate();
    let manifest = generated
        .iter()
        .find(|f| f.path == "manifest.json")
        .unwrap();
    let cases: Vec<serde_json::Value> = serde_json::from_slice(&manifest.bytes).unwrap();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for required in [
        "good-g1",
        "good-g2",
        "good-intermediate",
        "expired",
        "not-yet-valid",
        "wrong-issuer",
        "bad-signature",
        "tampered-tbs",
        "revoked-g1",
        "ca-without-keycertsign",
        "wrong-key-usage",
        "wrong-policy",
        "sha1-signed",
        "rsa-1024-card",
        "truncated-half",
        "trailing-garbage",
        "version-v4",
        "ber-outer-length",
        "unknown-critical-ext",
        // The card profile (jpki-card.md §6), one case per rule.
        "no-eku",
        "eku-any-only",
        "extra-key-usage-keycertsign",
        "extra-key-usage-crlsign",
        "rsa-exponent-3",
        "serial-zero",
        "serial-negative",
        "serial-20-octets",
        "serial-21-octets",
        "subject-cn-nul",
        "subject-cn-22-chars",
        "subject-country-us",
        "subject-extra-rdn",
        "expired-one-second",
        "not-yet-valid-one-second",
    ] {
        assert!(
            cases.iter().any(|c| c["name"] == required),
            "missing case {required}"
        );
    }
    for c in &cases {
        // A rejection names its reason; an accepted case names none.
        assert_eq!(c["expect"] == "reject", c.get("reason").is_some(), "{c}");
        // Where OpenSSL's verdict differs, the manifest says why.
        assert_eq!(
            c["expect"] != c["openssl"],
            c.get("stricter_than_openssl").is_some(),
            "{c}"
        );
    }
}

#[test]
fn card_common_names_have_the_profile_shape() {
    for case in ["good-g1", "subject-cn-nul", ""] {
        let cn = onshi_cert_corpus::card_common_name(case);
        assert_eq!(cn.len(), 23, "{cn}");
        assert!(
            cn.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
            "{cn}"
        );
    }
    assert_ne!(
        onshi_cert_corpus::card_common_name("a"),
        onshi_cert_corpus::card_common_name("b")
    );
}
