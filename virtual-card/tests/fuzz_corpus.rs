//! Replays the committed fuzz corpus of the `apdu` target (fuzz/corpus/apdu/) through its
//! code (`onshi_virtual_card::fuzzing`) on stable: no input may panic, and the seeds whose
//! answers are known still get them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::PathBuf;

use onshi_virtual_card::fuzzing;

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
fn apdu_corpus() {
    let results: Vec<(String, Vec<u16>)> = inputs("apdu")
        .into_iter()
        .map(|(name, data)| (name, fuzzing::apdu_session(&data)))
        .collect();
    let get = |n: &str| {
        results
            .iter()
            .find(|(f, _)| f == n)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("seed {n} is missing"))
    };
    // Phase A of docs/apdu-sequence.md: two SELECTs, six READ BINARYs of a 1234-byte
    // certificate, SELECT EF 0018, the retry counter.
    let mut phase_a = vec![0x9000; 9];
    phase_a.push(0x63C3);
    assert_eq!(get("phase-a"), phase_a);
    assert_eq!(get("phase-b"), vec![0x9000; 5]);
    assert_eq!(
        get("wrong-pin-blocks"),
        vec![0x9000, 0x9000, 0x63C2, 0x63C1, 0x63C0, 0x6984, 0x63C0]
    );
    assert_eq!(get("sign-unverified"), vec![0x9000, 0x9000, 0x6982]);
    assert_eq!(
        get("reset-drops-pin"),
        vec![0x9000, 0x9000, 0x9000, 0x9000, 0x9000, 0x6982]
    );
    assert_eq!(get("malformed").first(), Some(&0x6700));
}
