//! Turns the domain's assessment into the `onshi.v1` result (eligibility.md §2 fields).

use onshi_proto::v1 as pb;
use time::{Date, OffsetDateTime};

use crate::eligibility::{Assessment, Person, QualificationRecord, Validity};

/// `YYYYMMDD`, the date format of the real result files.
pub fn yyyymmdd(d: Date) -> String {
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

fn opt_date(d: Option<Date>) -> String {
    d.map(yyyymmdd).unwrap_or_default()
}

pub fn timestamp(t: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: t.nanosecond() as i32,
    }
}

fn validity(v: Validity) -> pb::QualificationValidity {
    match v {
        Validity::Valid => pb::QualificationValidity::Valid,
        Validity::Invalid => pb::QualificationValidity::Invalid,
        Validity::InvalidNewAvailable => pb::QualificationValidity::InvalidNewAvailable,
        Validity::None => pb::QualificationValidity::None,
        Validity::Multiple => pb::QualificationValidity::Multiple,
    }
}

/// The result code of a confirmation that was carried out.
pub fn carried_out_code(v: Validity) -> pb::ResultCode {
    match v {
        Validity::None => pb::ResultCode::NoQualification,
        Validity::Multiple => pb::ResultCode::MultipleQualifications,
        Validity::Valid | Validity::Invalid | Validity::InvalidNewAvailable => pb::ResultCode::Ok,
    }
}

pub fn qualification(record: &QualificationRecord, person: &Person) -> pb::Qualification {
    pb::Qualification {
        insured_card_classification: record.insured_card_classification.clone(),
        insurer_number: record.insurer_number.as_str().to_owned(),
        insurer_name: record.insurer_name.clone(),
        symbol: record.symbol.clone().unwrap_or_default(),
        number: record.number.clone(),
        branch: record.branch.clone().unwrap_or_default(),
        personal_family: u32::from(record.personal_family),
        insured_person_name: record.insured_person_name.clone(),
        name: person.name.clone(),
        kana_name: person.kana_name.clone(),
        sex: u32::from(person.sex),
        birth_date: yyyymmdd(person.birth_date),
        address: person.address.clone(),
        postcode: person.postcode.clone(),
        qualification_date: yyyymmdd(record.qualification_date),
        disqualification_date: opt_date(record.disqualification_date),
        loss_reason: record.loss_reason.clone().unwrap_or_default(),
        card_issue_date: yyyymmdd(record.card_issue_date),
        card_valid_from: yyyymmdd(record.card_valid_from),
        card_expiry: opt_date(record.card_expiry),
        copay_ratio: record.copay_ratio.clone(),
        preschool: record.preschool,
        elderly: record
            .elderly
            .as_ref()
            .map(|e| pb::ElderlyRecipientCertificate {
                valid_from: yyyymmdd(e.valid_from),
                valid_until: yyyymmdd(e.valid_until),
                copay_ratio: e.copay_ratio.clone(),
            }),
        high_cost_limit: record.high_cost_limit.as_ref().map(|h| pb::HighCostLimit {
            certificate_type: h.certificate_type.clone().unwrap_or_default(),
            bracket: h.bracket.clone(),
            valid_from: yyyymmdd(h.valid_from),
            valid_until: yyyymmdd(h.valid_until),
        }),
        specific_diseases: record
            .specific_diseases
            .iter()
            .map(|d| pb::SpecificDiseaseCertificate {
                category: u32::from(d.category),
                monthly_cap_yen: d.monthly_cap_yen,
                valid_from: yyyymmdd(d.valid_from),
                valid_until: yyyymmdd(d.valid_until),
            })
            .collect(),
    }
}

fn consent(given: bool, now: OffsetDateTime, until: OffsetDateTime) -> pb::ConsentRecord {
    pb::ConsentRecord {
        given,
        given_at: given.then(|| timestamp(now)),
        valid_until: given.then(|| timestamp(until)),
    }
}

/// The answer to a PIN-mode confirmation that was carried out.
pub fn confirmation_result(
    assessment: &Assessment,
    person: &Person,
    consents: pb::Consents,
    now: OffsetDateTime,
    consent_valid_until: OffsetDateTime,
) -> pb::ConfirmationResult {
    let mut result = pb::ConfirmationResult {
        processing_status: pb::ProcessingStatus::Completed as i32,
        reference_classification: pb::ReferenceClassification::MyNumberCard as i32,
        qualifications: assessment
            .records
            .iter()
            .map(|r| qualification(r, person))
            .collect(),
        consents: Some(pb::ConsentEcho {
            medication: Some(consent(consents.medication, now, consent_valid_until)),
            checkup: Some(consent(consents.checkup, now, consent_valid_until)),
            clinical: Some(consent(consents.clinical, now, consent_valid_until)),
            surgery: Some(consent(consents.surgery, now, consent_valid_until)),
        }),
        confirmed_at: Some(timestamp(now)),
        ..Default::default()
    };
    result.set_validity(validity(assessment.validity));
    result.set_result_code(carried_out_code(assessment.validity));
    result
}

/// What the audit log keeps of an answer: validity and which insurers' records were returned.
pub fn audit_summary(result: &pb::ConfirmationResult) -> String {
    serde_json::json!({
        "validity": result.validity,
        "insurers": result
            .qualifications
            .iter()
            .map(|q| q.insurer_number.as_str())
            .collect::<Vec<_>>(),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn dates_are_yyyymmdd() {
        assert_eq!(yyyymmdd(date!(2026 - 04 - 01)), "20260401");
        assert_eq!(opt_date(None), "");
    }

    #[test]
    fn carried_out_codes_follow_validity() {
        assert_eq!(carried_out_code(Validity::Valid), pb::ResultCode::Ok);
        assert_eq!(carried_out_code(Validity::Invalid), pb::ResultCode::Ok);
        assert_eq!(
            carried_out_code(Validity::None),
            pb::ResultCode::NoQualification
        );
        assert_eq!(
            carried_out_code(Validity::Multiple),
            pb::ResultCode::MultipleQualifications
        );
    }
}
