//! The kiosk writes the reception computer's `face/` file for each confirmation it completes
//! (`reader-agent kiosk --oqs-dir DIR`): a real pcscd, a virtual card in a rack, the real
//! service, the kiosk driven through its scriptable API (the state machine the browser drives),
//! and the file read back by the independent reader of `onshi_e2e::oqs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Duration;

use onshi_e2e::kiosk::Bench;
use onshi_e2e::oqs::{check_answer, value, values, wait_face_file};
use onshi_e2e::World;
use serde_json::json;

fn world() -> &'static World {
    World::shared(env!("CARGO_TARGET_TMPDIR"), "oqs-face-world", 8)
}

#[test]
fn a_pin_confirmation_at_the_kiosk_leaves_one_face_file() {
    let oqs = tempfile::tempdir().unwrap();
    let dir = oqs.path().to_str().unwrap().to_owned();
    let bench = Bench::start(world(), "valid", &["--oqs-dir", &dir]).unwrap();
    let rig = &bench.rig;
    rig.insert(&bench.profile).unwrap();
    let (status, s) = rig
        .post("/api/session", json!({"wait_seconds": 30}))
        .unwrap();
    assert_eq!(status, 200, "{s}");
    let session = s["session"].as_str().unwrap().to_owned();
    rig.post("/api/method", json!({"session": session, "method": "pin"}))
        .unwrap();
    rig.post("/api/pin", json!({"session": session, "pin": bench.pin}))
        .unwrap();
    let (_, s) = rig
        .post(
            "/api/consents",
            json!({"session": session, "medication": true, "checkup": false, "clinical": false, "surgery": false}),
        )
        .unwrap();
    assert_eq!(s["screen"], "done", "{s}");
    let id = s["confirmation_id"].as_str().unwrap().to_owned();
    // The file is named as public reception tools match it.
    let bytes = wait_face_file(oqs.path(), &id, Duration::from_secs(20)).unwrap();
    let leaves = check_answer(&bytes).unwrap();
    assert_eq!(
        value(&leaves, "MessageHeader/ReferenceClassification"),
        Some("1")
    );
    assert_eq!(value(&leaves, "MessageHeader/SegmentOfResult"), Some("1"));
    assert_eq!(
        value(&leaves, "MessageHeader/MedicalInstitutionCode"),
        Some("1340123452")
    );
    assert_eq!(
        value(&leaves, "MessageBody/QualificationValidity"),
        Some("1")
    );
    // A pharmacy's kiosk does not ask for the prescription choice: no element.
    assert_eq!(value(&leaves, "MessageBody/PrescriptionIssueSelect"), None);
    let result = "MessageBody/ResultList/ResultOfQualificationConfirmation";
    assert_eq!(values(&leaves, &format!("{result}/InsurerNumber")).len(), 1);
    assert_eq!(
        value(&leaves, &format!("{result}/PharmacistsInfoConsFlg")),
        Some("1"),
        "the consent given at the reader"
    );
    assert_eq!(
        value(
            &leaves,
            &format!("{result}/SpecificHealthCheckupsInfoConsFlg")
        ),
        None
    );
    // At the reader the limit information comes without a consent screen.
    assert_eq!(
        value(
            &leaves,
            &format!("{result}/LimitApplicationCertificateRelatedConsFlg")
        ),
        Some("1")
    );
}

/// At a clinic's kiosk the patient chooses a paper or an electronic prescription (電子処方箋)
/// after the consents; the face file carries it as PrescriptionIssueSelect (1 electronic,
/// 2 paper), which the independent reader accepts. The pharmacy's file above has none.
#[test]
fn the_prescription_choice_at_a_clinic_kiosk_is_in_the_face_file() {
    let oqs = tempfile::tempdir().unwrap();
    let dir = oqs.path().to_str().unwrap().to_owned();
    let bench = Bench::start_on(world(), "valid", 2, &["--oqs-dir", &dir], &[]).unwrap();
    let rig = &bench.rig;
    for (choice, code) in [("paper", "2"), ("electronic", "1")] {
        rig.insert(&bench.profile).unwrap();
        let (status, s) = rig
            .post("/api/session", json!({"wait_seconds": 30}))
            .unwrap();
        assert_eq!(status, 200, "{s}");
        let session = s["session"].as_str().unwrap().to_owned();
        rig.post("/api/method", json!({"session": session, "method": "pin"}))
            .unwrap();
        rig.post("/api/pin", json!({"session": session, "pin": bench.pin}))
            .unwrap();
        let (_, s) = rig
            .post("/api/consents", json!({"session": session, "all": true}))
            .unwrap();
        assert_eq!(s["screen"], "prescription", "{s}");
        let (_, s) = rig
            .post(
                "/api/prescription",
                json!({"session": session, "choice": choice}),
            )
            .unwrap();
        assert_eq!(s["screen"], "done", "{s}");
        assert_eq!(s["prescription"], choice, "{s}");
        let id = s["confirmation_id"].as_str().unwrap().to_owned();
        let bytes = wait_face_file(oqs.path(), &id, Duration::from_secs(20)).unwrap();
        let leaves = check_answer(&bytes).unwrap();
        assert_eq!(
            value(&leaves, "MessageHeader/MedicalInstitutionCode"),
            Some("1310156789")
        );
        assert_eq!(
            value(&leaves, "MessageBody/PrescriptionIssueSelect"),
            Some(code),
            "{choice}"
        );
        // 包括同意: every consent flag is set.
        let result = "MessageBody/ResultList/ResultOfQualificationConfirmation";
        for flag in [
            "PharmacistsInfoConsFlg",
            "SpecificHealthCheckupsInfoConsFlg",
        ] {
            assert_eq!(
                value(&leaves, &format!("{result}/{flag}")),
                Some("1"),
                "{flag}"
            );
        }
        rig.remove().unwrap();
        rig.wait_screen("insert_card").unwrap();
        // The reception software takes the file: the next confirmation's is the only one.
        for f in std::fs::read_dir(oqs.path().join("face")).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
        }
    }
}
