//! Replays the committed fuzz corpus of the `card_response` target
//! (fuzz/corpus/card_response/) through its code (`onshi_jpki::fuzzing`) on stable: no input
//! may panic, and the seeds whose verdicts are known still get them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;

use onshi_jpki::fuzzing::{self, CardResponseVerdict};

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
fn card_response_corpus() {
    let results: Vec<(String, CardResponseVerdict)> = inputs("card_response")
        .into_iter()
        .map(|(name, data)| (name, fuzzing::card_responses(&data)))
        .collect();
    let get = |n: &str| {
        results
            .iter()
            .find(|(f, _)| f == n)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("seed {n} is missing"))
    };
    // A real certificate (cert-corpus good-g1.der, 963 bytes) read the canonical way.
    let good = get("phase-a-good-g1");
    assert_eq!(good.read_phase, Ok(963));
    assert_eq!(good.pin_status, Some(3));
    assert_eq!(get("phase-a-verified").pin_status, Some(16));
    assert_eq!(get("phase-b-ok").authenticate_phase, Ok(256));
    assert_eq!(
        get("phase-b-wrong-pin").authenticate_phase,
        Err("wrong-pin")
    );
    assert_eq!(
        get("phase-b-short-signature").authenticate_phase,
        Err("malformed-response")
    );
    assert_eq!(get("blank-certificate-ef").read_phase, Err("not-found"));
    assert_eq!(get("header-too-long").read_phase, Err("malformed-response"));
    assert_eq!(
        get("chunk-longer-than-le").read_phase,
        Err("malformed-response")
    );
    assert_eq!(get("face-photo").face_photo, Ok(356));
    assert_eq!(get("face-photo-6e00").face_photo, Err("unexpected-status"));
    assert_eq!(get("transport-failure").read_phase, Err("channel"));
    // The fuzzer's finding: a card that answers `30 82 00 02` to the header read and other
    // bytes to the re-read from offset 0 got them through `ReadPattern::HeaderThenReread`
    // (index 3) as if they were the object (`returned-not-der`); the flow now compares the
    // re-read header with the first.
    assert_eq!(
        get("reread-header-changes").read_patterns[3],
        Err("malformed-response")
    );
}
