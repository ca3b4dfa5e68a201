//! The sample files of docs/oqs-samples/: a request and its answer for every kind, built by
//! the same code that serves the folders from fixed inputs, so they are regenerated and
//! compared by `cargo test -p onshi-reader-agent samples` (set `ONSHI_REGENERATE=1` to
//! rewrite them after a deliberate change). Requests are read back through the request reader,
//! so every sample request is one the agent accepts.

use onshi_proto::v1 as pb;

use super::codec::{self, Charset, Element};
use super::message::{self as msg, AnswerContext, ErrorCode, Failure, Kind, SearchInfo};

fn ctx(reference: &'static str) -> AnswerContext {
    AnswerContext {
        executed_at: "20250401091530".into(),
        confirmation_date: "20250401".into(),
        medical_institution_code: "1340123452".into(),
        arbitrary_file_identifier: "UKETSUKE-0001".into(),
        reference_classification: reference,
        charset: Charset::ShiftJis,
    }
}

fn search() -> SearchInfo {
    SearchInfo {
        insurer_number: "06139999".into(),
        symbol: "髙１２".into(),
        number: "345".into(),
        branch: "01".into(),
        birth_date: "19550505".into(),
        limit_consent: true,
        arbitrary_identifier: "P-000123".into(),
        treatment: String::new(),
        requery: false,
    }
}

fn ts(unix: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: unix,
        nanos: 0,
    })
}

fn qualification() -> pb::Qualification {
    pb::Qualification {
        insured_card_classification: "01".into(),
        insurer_number: "06139999".into(),
        insurer_name: "ＯＮＳＨＩ健康保険組合".into(),
        symbol: "髙１２".into(),
        number: "345".into(),
        branch: "01".into(),
        personal_family: 1,
        insured_person_name: "髙橋　①子".into(),
        name: "髙橋　①子".into(),
        kana_name: "ﾀｶﾊｼ ﾏﾙｲﾁｺ".into(),
        sex: 2,
        birth_date: "19550505".into(),
        address: "東京都千代田区霞が関１－２－２～３".into(),
        postcode: "100-8916".into(),
        qualification_date: "20200401".into(),
        card_issue_date: "20200401".into(),
        card_valid_from: "20200401".into(),
        copay_ratio: "020".into(),
        elderly: Some(pb::ElderlyRecipientCertificate {
            valid_from: "20250601".into(),
            valid_until: "20260731".into(),
            copay_ratio: "020".into(),
        }),
        high_cost_limit: Some(pb::HighCostLimit {
            certificate_type: "01".into(),
            bracket: "B04".into(),
            valid_from: "20250401".into(),
            valid_until: "20260331".into(),
        }),
        specific_diseases: vec![pb::SpecificDiseaseCertificate {
            category: 1,
            monthly_cap_yen: 10_000,
            valid_from: "20240101".into(),
            valid_until: "20261231".into(),
        }],
        ..Default::default()
    }
}

fn result(validity: pb::QualificationValidity) -> pb::ConfirmationResult {
    // 2025-04-01 09:15:30 JST.
    let at = 1_743_466_530;
    pb::ConfirmationResult {
        result_code: pb::ResultCode::Ok as i32,
        processing_status: pb::ProcessingStatus::Completed as i32,
        reference_classification: pb::ReferenceClassification::InsuranceCard as i32,
        validity: validity as i32,
        qualifications: vec![qualification()],
        consents: Some(pb::ConsentEcho {
            medication: Some(pb::ConsentRecord {
                given: true,
                given_at: ts(at - 600),
                valid_until: ts(at - 600 + 86_400),
            }),
            ..Default::default()
        }),
        confirmation_id: "C0000000000000001".into(),
        confirmed_at: ts(at),
        prescription_issue: pb::PrescriptionIssue::Unspecified as i32,
        ..Default::default()
    }
}

fn request_file(header: &[(&str, &str)], body: Vec<Element>) -> Element {
    let mut root = Element::new("XmlMsg");
    let mut h = Element::new("MessageHeader");
    for (n, v) in header {
        h.put(n, *v);
    }
    let mut b = Element::new("MessageBody");
    b.children = body;
    root.push(h).push(b);
    root
}

/// Every sample: file name and document.
pub fn samples() -> Vec<(String, Element)> {
    let header = [
        ("QualificationConfirmationDate", "20250401"),
        ("MedicalInstitutionCode", "1340123452"),
        ("ArbitraryFileIdentifier", "UKETSUKE-0001"),
        ("CharacterCodeIdentifier", "1"),
    ];
    let s = search();
    // A 居宅同意取得型 re-query for a home visit, and its answer echoing the flag.
    let requery = SearchInfo {
        treatment: "2".into(),
        requery: true,
        ..search()
    };
    let mut out = vec![
        (
            "OQSsihvq01req_20250401091530.xml".to_owned(),
            request_file(&header, vec![requery.echo()]),
        ),
        (
            "OQSsihvq01res_20250401091530.xml".to_owned(),
            msg::confirmation_answer(
                &ctx("2"),
                &result(pb::QualificationValidity::Valid),
                Some(&requery),
                Some("20250401091530"),
            ),
        ),
        (
            "OQSsiquc01req_20250401091530.xml".to_owned(),
            request_file(&header, vec![s.echo()]),
        ),
        (
            "OQSsiquc01res_20250401091530.xml".to_owned(),
            msg::confirmation_answer(
                &ctx("2"),
                &result(pb::QualificationValidity::Valid),
                Some(&s),
                Some("20250401091530"),
            ),
        ),
        (
            "OQSsiquc01res_face_C0000000000000001_20250401091530.xml".to_owned(),
            {
                let mut c = ctx("1");
                c.arbitrary_file_identifier.clear();
                msg::confirmation_answer(
                    &c,
                    &result(pb::QualificationValidity::Valid),
                    None,
                    Some("20250401091530"),
                )
            },
        ),
        (
            "OQSsiquc01res_error_20250401091531.xml".to_owned(),
            msg::failure_answer(
                &ctx("2"),
                &Failure::new(
                    ErrorCode::Refused(pb::ResultCode::InvalidInsurerNumber),
                    msg::refusal_text(pb::ResultCode::InvalidInsurerNumber),
                ),
                Some(&s),
            ),
        ),
    ];
    let mut second = s.clone();
    second.arbitrary_identifier = "P-000124".into();
    second.insurer_number = "06139998".into();
    out.push((
        "OQSmuquc01req_20250331180000.xml".to_owned(),
        request_file(&header, vec![s.echo(), second.echo()]),
    ));
    out.push((
        "OQSmuquc01res_20250331180000.xml".to_owned(),
        msg::bulk_submit_answer(&ctx("2"), "1234567890123456", "20250331180001"),
    ));
    out.push((
        "OQSmuquc02req_20250331180500.xml".to_owned(),
        request_file(
            &header,
            vec![Element::leaf("ReceptionNumber", "1234567890123456")],
        ),
    ));
    out.push((
        "OQSmuquc02res_20250331180500_processing.xml".to_owned(),
        msg::bulk_processing_answer(&ctx("2"), "1234567890123456"),
    ));
    let mut refused = pb::ConfirmationResult {
        processing_status: pb::ProcessingStatus::Error as i32,
        ..Default::default()
    };
    refused.set_result_code(pb::ResultCode::InvalidInsurerNumber);
    out.push((
        "OQSmuquc02res_20250331181000.xml".to_owned(),
        msg::bulk_result_answer(
            &ctx("2"),
            "1234567890123456",
            &[
                msg::BulkItem {
                    search: s.clone(),
                    result: result(pb::QualificationValidity::Valid),
                },
                msg::BulkItem {
                    search: second,
                    result: refused,
                },
            ],
        ),
    ));
    let mut period = vec![s.echo()];
    period.push(Element::leaf("StartDate", "202501"));
    period.push(Element::leaf("EndDate", "202503"));
    out.push((
        "YZKsiquc01req_20250401091600.xml".to_owned(),
        request_file(&header, period),
    ));
    let drug = |on: &str, code: &str, name: &str, qty: &str, days: u32| pb::Medication {
        dispensed_on: on.into(),
        institution_code: "1340123452".into(),
        institution_name: "おんしファーマシー".into(),
        drug_code: code.into(),
        drug_name: name.into(),
        usage: "１日１回朝食後".into(),
        daily_quantity: qty.into(),
        days,
    };
    out.push((
        "YZKsiquc01res_20250401091600.xml".to_owned(),
        msg::medications_answer(
            &ctx("2"),
            &s,
            &[
                drug(
                    "20250210",
                    "2171022F2027",
                    "アムロジピン錠５ｍｇ",
                    "1錠",
                    28,
                ),
                drug(
                    "20250310",
                    "2171022F2027",
                    "アムロジピン錠５ｍｇ",
                    "1錠",
                    28,
                ),
                drug(
                    "20250310",
                    "2189015F1020",
                    "ロスバスタチン錠２．５ｍｇ",
                    "1錠",
                    28,
                ),
            ],
        ),
    ));
    out.push((
        "TKKsiquc01req_20250401091700.xml".to_owned(),
        request_file(&header, vec![s.echo()]),
    ));
    out.push((
        "TKKsiquc01res_20250401091700.xml".to_owned(),
        msg::checkups_answer(
            &ctx("2"),
            &s,
            &[pb::Checkup {
                examined_on: "20240915".into(),
                height_cm_x10: 1_582,
                weight_kg_x10: 553,
                waist_cm_x10: 801,
                bmi_x10: 221,
                systolic_mmhg: 128,
                diastolic_mmhg: 79,
                hba1c_x10: 57,
                ldl_mg_dl: 131,
                judgement: "B".into(),
            }],
        ),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_regenerated_and_match_docs() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/oqs-samples");
        let regenerate = std::env::var_os("ONSHI_REGENERATE").is_some();
        if regenerate {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let mut names = Vec::new();
        for (name, element) in samples() {
            let encoded = codec::write(&element, Charset::ShiftJis);
            assert_eq!(encoded.replaced, 0, "{name}");
            // Requests are ones the agent reads.
            if let Some(kind) = Kind::of_file_name(&name) {
                let (root, charset) = codec::read(&encoded.bytes).unwrap();
                assert_eq!(charset, Charset::ShiftJis);
                msg::read_request(kind, &root).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            }
            let path = dir.join(&name);
            if regenerate {
                std::fs::write(&path, &encoded.bytes).unwrap();
            } else {
                let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
                    panic!("{}: {e} (ONSHI_REGENERATE=1 writes it)", path.display())
                });
                assert!(
                    on_disk == encoded.bytes,
                    "{name} differs from what the code writes (ONSHI_REGENERATE=1 after a deliberate change)"
                );
            }
            names.push(name);
        }
        // No stale sample is left behind.
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".xml"))
            .collect();
        on_disk.sort();
        names.sort();
        assert_eq!(on_disk, names);
    }
}
