//! Turns the domain's assessment into the `onshi.v1` result (eligibility.md §2 fields).

use onshi_proto::v1 as pb;
use time::{Date, OffsetDateTime};

use crate::cert_grace::{Standing, JST};
use crate::clinical::{Checkup, Medication};
use crate::consent::{ConsentGrant, ConsentKind};
use crate::documents::{DocumentKind, InsuranceDocument};
use crate::eligibility::{
    Assessment, DomainError, NumbersQuery, Person, QualificationRecord, Validity,
};
use crate::medical_aid::{self, MedicalTicket, TicketKind};

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

/// The echo of one consent: the grant given in this confirmation, if any.
/// The document a person holds, as of `day` (the answer's as-of date): its kind, a
/// 資格確認書's period and whether the document itself is valid that day. The answer's
/// validity is the qualification's and does not depend on it.
pub fn insurance_document(d: &InsuranceDocument, day: Date) -> pb::InsuranceDocument {
    let kind = match d.kind {
        DocumentKind::Kakuninsho => pb::DocumentKind::ShikakuKakuninsho,
        DocumentKind::Oshirase => pb::DocumentKind::ShikakuJohoOshirase,
    };
    let mut out = pb::InsuranceDocument {
        valid_from: opt_date(d.valid_from),
        valid_until: opt_date(d.valid_until),
        valid_on_as_of_date: d.valid_on(day),
        ..Default::default()
    };
    out.set_kind(kind);
    out
}

pub fn consent_record(grant: Option<&ConsentGrant>) -> pb::ConsentRecord {
    pb::ConsentRecord {
        given: grant.is_some(),
        given_at: grant.map(|g| timestamp(g.given_at)),
        valid_until: grant.map(|g| timestamp(g.valid_until)),
    }
}

/// The answer to a confirmation that was carried out: by card (`MyNumberCard`, with the
/// consents given on the reader) or by numbers (`InsuranceCard`, no consents). `person` is
/// `None` when no person matched (validity 4).
pub fn confirmation_result(
    assessment: &Assessment,
    person: Option<&Person>,
    reference: pb::ReferenceClassification,
    consents: &[ConsentGrant],
    now: OffsetDateTime,
) -> pb::ConfirmationResult {
    let echo = |kind: ConsentKind| Some(consent_record(consents.iter().find(|g| g.kind == kind)));
    let mut result = pb::ConfirmationResult {
        processing_status: pb::ProcessingStatus::Completed as i32,
        qualifications: person
            .map(|p| {
                assessment
                    .records
                    .iter()
                    .map(|r| qualification(r, p))
                    .collect()
            })
            .unwrap_or_default(),
        consents: Some(pb::ConsentEcho {
            medication: echo(ConsentKind::Medication),
            checkup: echo(ConsentKind::Checkup),
            clinical: echo(ConsentKind::Clinical),
            surgery: echo(ConsentKind::Surgery),
            comprehensive: false,
        }),
        confirmed_at: Some(timestamp(now)),
        ..Default::default()
    };
    result.set_reference_classification(reference);
    result.set_validity(validity(assessment.validity));
    result.set_result_code(carried_out_code(assessment.validity));
    result
}

/// Puts the certificate's standing on a card confirmation carried out: the renewal warning in
/// the three months before expiry, the grace warning after it (docs/domain.md "Certificate
/// grace"), and the certificate's notAfter either way. The messages are for reception staff.
pub fn certificate_warning(result: &mut pb::ConfirmationResult, standing: Standing) {
    let jst_day = |t: OffsetDateTime| {
        let d = t.to_offset(JST).date();
        format!("{}年{}月{}日", d.year(), u8::from(d.month()), d.day())
    };
    match standing {
        Standing::Valid { not_after } => {
            result.certificate_not_after = Some(timestamp(not_after));
        }
        Standing::Expiring { not_after } => {
            result.certificate_not_after = Some(timestamp(not_after));
            result.set_warning(pb::Warning::CertificateExpiring);
            result.warning_message = format!(
                "電子証明書の有効期限が近づいています（{}まで）。市区町村での更新をご案内ください。",
                jst_day(not_after)
            );
        }
        Standing::InGrace {
            not_after,
            grace_until,
        } => {
            result.certificate_not_after = Some(timestamp(not_after));
            result.grace_until = Some(timestamp(grace_until));
            result.set_warning(pb::Warning::CertificateInGrace);
            result.warning_message = format!(
                "電子証明書の有効期限（{}）が切れています。{}までは資格確認のみ可能です（薬剤情報等の提供はできません）。市区町村での更新をご案内ください。",
                jst_day(not_after),
                jst_day(grace_until)
            );
        }
        // Refused before any answer is made; nothing to put on one.
        Standing::PastGrace { .. } => {}
    }
}

/// The answer to a query that could not be carried out (a batch item that failed validation):
/// processing status 2 (エラー) with its result code.
pub fn error_result(
    code: pb::ResultCode,
    reference: pb::ReferenceClassification,
    now: OffsetDateTime,
) -> pb::ConfirmationResult {
    let mut result = pb::ConfirmationResult {
        confirmed_at: Some(timestamp(now)),
        ..Default::default()
    };
    result.set_processing_status(pb::ProcessingStatus::Error);
    result.set_reference_classification(reference);
    result.set_result_code(code);
    result
}

/// A domain query from the request's numbers, validated: the insurance card's numbers, or a
/// 医療扶助 query's public-expense numbers (never both; docs/domain.md "医療扶助").
pub fn numbers_query(q: &pb::NumbersQuery) -> Result<NumbersQuery, DomainError> {
    if !q.public_expense_number.is_empty() || !q.recipient_number.is_empty() {
        if !(q.insurer_number.is_empty()
            && q.symbol.is_empty()
            && q.number.is_empty()
            && q.branch.is_empty())
        {
            return Err(DomainError::MixedQueryKinds {
                what:
                    "a query carries either insurance numbers or public-expense numbers, not both",
            });
        }
        return medical_aid::query(&q.public_expense_number, &q.recipient_number, &q.birth_date);
    }
    let query = NumbersQuery::parse(
        &q.insurer_number,
        &q.symbol,
        &q.number,
        &q.branch,
        &q.birth_date,
    )?;
    if query.insurer_number.houbetsu() == Some(medical_aid::HOUBETSU) {
        return Err(DomainError::NotPublicAssistance {
            value: q.insurer_number.clone(),
        });
    }
    Ok(query)
}

/// One 医療券 or 調剤券 as the answer carries it, flagged whether `institution` (the caller's
/// 医療機関コード) is the designated one.
pub fn medical_ticket(t: &MedicalTicket, institution: &str) -> pb::MedicalTicket {
    let mut out = pb::MedicalTicket {
        issue_number: t.issue_number.clone(),
        treatment_month: t.month.yyyymm(),
        valid_from: yyyymmdd(t.valid_from),
        valid_until: yyyymmdd(t.valid_until),
        designated_institution_code: t.institution_code.clone(),
        designated_institution_name: t.institution_name.clone(),
        designated_here: t.institution_code == institution,
        self_pay_yen: t.self_pay_yen,
        ..Default::default()
    };
    out.set_kind(match t.kind {
        TicketKind::Medical => pb::MedicalTicketKind::Medical,
        TicketKind::Dispensing => pb::MedicalTicketKind::Dispensing,
    });
    out
}

/// Completes an answer for a 医療扶助 recipient: when the answer is 有効 with an `A1`
/// qualification, the tickets of the as-of month registered by `today` (the service's day),
/// or validity 6 (有効（未登録）) when there are none. Any other answer is left as it is.
pub fn medical_aid_answer(
    result: &mut pb::ConfirmationResult,
    assessment: &Assessment,
    tickets: &[MedicalTicket],
    as_of: Date,
    today: Date,
    institution: &str,
) {
    if assessment.validity != Validity::Valid
        || !assessment.records.iter().any(medical_aid::is_medical_aid)
    {
        return;
    }
    let answer = medical_aid::tickets_for(tickets, as_of, today);
    result.medical_tickets = answer
        .tickets
        .iter()
        .map(|t| medical_ticket(t, institution))
        .collect();
    if answer.unregistered {
        result.set_validity(pb::QualificationValidity::ValidUnregistered);
    }
}

pub fn medication(m: &Medication) -> pb::Medication {
    pb::Medication {
        dispensed_on: yyyymmdd(m.dispensed_on),
        institution_code: m.institution_code.clone(),
        institution_name: m.institution_name.clone(),
        drug_code: m.drug_code.clone(),
        drug_name: m.drug_name.clone(),
        usage: m.usage.clone(),
        daily_quantity: m.daily_quantity.clone(),
        days: m.days,
    }
}

pub fn checkup(c: &Checkup) -> pb::Checkup {
    pb::Checkup {
        examined_on: yyyymmdd(c.examined_on),
        height_cm_x10: c.height_cm_x10,
        weight_kg_x10: c.weight_kg_x10,
        waist_cm_x10: c.waist_cm_x10,
        bmi_x10: c.bmi_x10,
        systolic_mmhg: c.systolic_mmhg,
        diastolic_mmhg: c.diastolic_mmhg,
        hba1c_x10: c.hba1c_x10,
        ldl_mg_dl: c.ldl_mg_dl,
        judgement: c.judgement.clone(),
    }
}

/// What the audit log keeps of an answer: validity and which insurers' records were returned;
/// the treatment when it is not 外来, and a 居宅同意取得型 answer's re-query period.
pub fn audit_summary(result: &pb::ConfirmationResult) -> String {
    let mut summary = serde_json::json!({
        "validity": result.validity,
        "insurers": result
            .qualifications
            .iter()
            .map(|q| q.insurer_number.as_str())
            .collect::<Vec<_>>(),
    });
    if result.treatment != 0 {
        summary["treatment"] = result.treatment.into();
    }
    if let Some(period) = &result.home_care {
        summary["requery_until"] = period.requery_until.clone().into();
    }
    summary.to_string()
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
