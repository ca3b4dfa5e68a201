//! Replays the committed fuzz corpus of the `kiosk_body` target (fuzz/corpus/kiosk_body/)
//! through its code (`onshi_reader_agent::kiosk::fuzzing`) on stable: no input may panic,
//! and the seeds whose verdicts are known still get them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;

use onshi_reader_agent::kiosk::fuzzing;

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
fn kiosk_body_corpus() {
    let results: Vec<(String, Vec<&str>)> = inputs("kiosk_body")
        .into_iter()
        .map(|(name, data)| (name, fuzzing::kiosk_body(&data)))
        .collect();
    let get = |n: &str| {
        results
            .iter()
            .find(|(f, _)| f == n)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("seed {n} is missing"))
    };
    assert_eq!(get("start-empty"), ["start_session"]);
    assert_eq!(get("pin.json"), ["pin", "pin-valid"]);
    assert_eq!(get("pin-not-digits.json"), ["pin"]);
    assert_eq!(get("method-unknown.json"), ["method"]);
    assert_eq!(get("treatment.json"), ["treatment", "treatment-choice"]);
    assert_eq!(get("treatment-unknown.json"), ["treatment"]);
    // No handler takes a body with an unknown field; its three comma-separated pieces are a
    // 医療扶助 batch line to the raw CSV parser, which leaves the fields' checks to the service.
    assert_eq!(get("unknown-field.json"), ["raw-csv"]);
    assert!(get("face-image.json").contains(&"face-image"));
    assert!(!get("face-image-truncated.json").contains(&"face-image"));
    assert_eq!(get("batch.json"), ["batch", "batch-csv"]);
    assert_eq!(get("batch-four-fields.json"), ["batch"]);
    assert_eq!(get("reservations.csv"), ["raw-csv"]);
    assert_eq!(get("face.pgm"), ["raw-pgm"]);
    assert_eq!(get("not-json"), Vec::<&str>::new());
    // serde's derived Deserialize also takes a struct as the array of its fields (the fuzzer
    // found `[""]`): the handlers accept these bodies too.
    assert_eq!(
        get("pin-as-array.json"),
        ["method", "treatment", "pin", "pin-valid", "face", "login"]
    );
    assert!(get("batch-as-array.json").contains(&"batch"));
}

#[test]
fn oqs_request_corpus() {
    use onshi_reader_agent::oqs::fuzzing::request_file;
    let mut seen = 0;
    for (name, data) in inputs("oqs_request") {
        let verdict = request_file(&data);
        seen += 1;
        // The seeds taken from docs/oqs-samples are requests of their own kind.
        if let Some(sample) = name.strip_prefix("seed-") {
            let prefix = &sample[..14];
            assert!(verdict.contains(&prefix), "{name}: {verdict:?}");
        }
        if name.starts_with("bad-") || name == "doctype.xml" {
            assert_eq!(verdict, ["unreadable"], "{name}");
        }
    }
    assert!(seen >= 10);
}
