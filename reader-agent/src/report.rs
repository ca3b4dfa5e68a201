//! What staff (and scripts) see: the outcome of one confirmation, human-readable or JSON.

use onshi_proto::v1 as pb;
use serde::Serialize;

/// The outcome of one `reader-agent confirm` run.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// The service carried out the confirmation.
    Confirmed {
        result_code: String,
        result: StaffResult,
    },
    /// The service registered the card's holder for insurance use (or they already were).
    Registered {
        result_code: String,
        newly_registered: bool,
        confirmation_id: String,
    },
    /// The service or the card refused; `result_code` says why.
    Refused {
        result_code: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        tries_left: Option<u8>,
    },
    /// The patient typed a wrong PIN and gave up (no more input); the card keeps the count.
    WrongPin { tries_left: u8, message: String },
    /// The card, the reader or the connection failed.
    Error { message: String },
}

impl Outcome {
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Confirmed { .. } | Outcome::Registered { .. } => 0,
            Outcome::Refused { .. } | Outcome::WrongPin { .. } => 1,
            Outcome::Error { .. } => 3,
        }
    }
}

/// The result fields staff need (eligibility.md §2).
#[derive(Debug, Clone, Serialize)]
pub struct StaffResult {
    pub confirmation_id: String,
    pub processing_status: i32,
    pub reference_classification: i32,
    pub validity: i32,
    pub validity_label: &'static str,
    pub qualifications: Vec<StaffQualification>,
    pub consents: StaffConsents,
    /// The patient's 電子処方箋 choice at the reader: `electronic` or `paper`; absent when not
    /// asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prescription: Option<Prescription>,
    /// The as-of date and the certificate's warning, flattened into the same JSON object
    /// (boxed: kept out of line so the outcome stays small).
    #[serde(flatten)]
    pub notes: Box<AnswerNotes>,
}

/// What the rules of December 2026 add to an answer (docs/domain.md §7a).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AnswerNotes {
    /// The day the validity was assessed for, YYYYMMDD (JST).
    pub as_of_date: String,
    /// A warning on an answer carried out (the proto `Warning` name, e.g.
    /// `WARNING_CERTIFICATE_IN_GRACE`), with its message for staff; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub warning_message: String,
    /// Card confirmations: the certificate's notAfter and, in its grace period, the last
    /// instant of grace (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_not_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_until: Option<String>,
    /// The document the holder has in place of the paper insurance card (資格確認書 or
    /// 資格情報のお知らせ), when the service recorded one; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insurance_document: Option<StaffDocument>,
    /// The treatment the query was for: `outpatient`, `home-visit`, `online`; absent when the
    /// query gave none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub treatment: Option<&'static str>,
    /// A 居宅同意取得型 first visit or re-query: the last day (YYYYMMDD, JST) on which this
    /// institution may re-query without the card.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requery_until: Option<String>,
    /// 医療扶助 recipients: the 医療券 / 調剤券 of the as-of month (none with validity 6,
    /// 有効（未登録）); absent for everybody else.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub medical_tickets: Vec<StaffTicket>,
}

/// The holder's insurance document as staff see it (docs/domain.md "Insurance documents").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffDocument {
    /// The proto `DocumentKind` name, e.g. `DOCUMENT_KIND_SHIKAKU_KAKUNINSHO`.
    pub kind: String,
    /// 資格確認書 or 資格情報のお知らせ.
    pub kind_label: &'static str,
    /// A 資格確認書's validity period, YYYYMMDD, both ends inclusive (empty for the お知らせ).
    pub valid_from: String,
    pub valid_until: String,
    /// The document itself is valid on the answer's as-of date (the answer's validity is the
    /// qualification's, whatever this says).
    pub valid_on_as_of_date: bool,
}

impl StaffDocument {
    pub fn from_proto(d: &pb::InsuranceDocument) -> Self {
        let (kind, kind_label) = match pb::DocumentKind::try_from(d.kind) {
            Ok(k @ pb::DocumentKind::ShikakuKakuninsho) => {
                (k.as_str_name().to_owned(), "資格確認書")
            }
            Ok(k @ pb::DocumentKind::ShikakuJohoOshirase) => {
                (k.as_str_name().to_owned(), "資格情報のお知らせ")
            }
            Ok(pb::DocumentKind::Unspecified) | Err(_) => {
                (format!("DOCUMENT_KIND_{}", d.kind), "不明")
            }
        };
        StaffDocument {
            kind,
            kind_label,
            valid_from: d.valid_from.clone(),
            valid_until: d.valid_until.clone(),
            valid_on_as_of_date: d.valid_on_as_of_date,
        }
    }

    /// One line for staff: the kind, the period (if any) and whether it is valid on the day.
    pub fn summary(&self) -> String {
        let period = if self.valid_from.is_empty() && self.valid_until.is_empty() {
            "no validity period of its own".to_owned()
        } else {
            format!("valid {} – {}", self.valid_from, self.valid_until)
        };
        format!(
            "{} ({period}); {}",
            self.kind_label,
            if self.valid_on_as_of_date {
                "valid on the day asked for"
            } else {
                "NOT valid on the day asked for (期限切れ: ask for the renewed document)"
            }
        )
    }
}

/// The treatment's name in the staff view and the JSON.
pub fn treatment_name(treatment: i32) -> Option<&'static str> {
    match pb::MedicalTreatment::try_from(treatment) {
        Ok(pb::MedicalTreatment::Outpatient) => Some("outpatient"),
        Ok(pb::MedicalTreatment::HomeVisit) => Some("home-visit"),
        Ok(pb::MedicalTreatment::Online) => Some("online"),
        _ => None,
    }
}

/// One 医療券 or 調剤券 as staff see it.
#[derive(Debug, Clone, Serialize)]
pub struct StaffTicket {
    /// `医療券` or `調剤券`.
    pub kind: &'static str,
    pub issue_number: String,
    /// 診療年月, YYYYMM.
    pub treatment_month: String,
    pub valid_from: String,
    pub valid_until: String,
    pub designated_institution_code: String,
    pub designated_institution_name: String,
    /// This institution is the designated one.
    pub designated_here: bool,
    pub self_pay_yen: u32,
}

impl StaffTicket {
    fn from_proto(t: &pb::MedicalTicket) -> Self {
        StaffTicket {
            kind: match t.kind() {
                pb::MedicalTicketKind::Medical => "医療券",
                pb::MedicalTicketKind::Dispensing => "調剤券",
                pb::MedicalTicketKind::Unspecified => "不明",
            },
            issue_number: t.issue_number.clone(),
            treatment_month: t.treatment_month.clone(),
            valid_from: t.valid_from.clone(),
            valid_until: t.valid_until.clone(),
            designated_institution_code: t.designated_institution_code.clone(),
            designated_institution_name: t.designated_institution_name.clone(),
            designated_here: t.designated_here,
            self_pay_yen: t.self_pay_yen,
        }
    }
}

fn rfc3339(t: Option<&prost_types::Timestamp>) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(t?.seconds).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// The 電子処方箋 choice as staff see it (one byte, so an [`Outcome`] stays small).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Prescription {
    Electronic,
    Paper,
}

#[derive(Debug, Clone, Serialize)]
pub struct StaffQualification {
    pub insurer_number: String,
    pub insurer_name: String,
    pub insured_card_classification: String,
    pub symbol: String,
    pub number: String,
    pub branch: String,
    pub personal_family: u32,
    pub insured_person_name: String,
    pub name: String,
    pub kana_name: String,
    pub sex: u32,
    pub birth_date: String,
    pub address: String,
    pub postcode: String,
    pub qualification_date: String,
    pub disqualification_date: String,
    pub loss_reason: String,
    pub card_valid_from: String,
    pub card_expiry: String,
    pub copay_ratio: String,
    pub preschool: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elderly_copay_ratio: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_cost_limit_bracket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_cost_limit_certificate_type: Option<String>,
    pub specific_disease_categories: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StaffConsents {
    pub medication: bool,
    pub checkup: bool,
    pub clinical: bool,
    pub surgery: bool,
    /// Given as one 包括同意.
    pub comprehensive: bool,
}

pub fn validity_label(v: i32) -> &'static str {
    match pb::QualificationValidity::try_from(v) {
        Ok(pb::QualificationValidity::Valid) => "有効",
        Ok(pb::QualificationValidity::Invalid) => "無効",
        Ok(pb::QualificationValidity::InvalidNewAvailable) => "無効（新しい資格あり）",
        Ok(pb::QualificationValidity::None) => "該当資格なし",
        Ok(pb::QualificationValidity::Multiple) => "複数該当",
        Ok(pb::QualificationValidity::ValidUnregistered) => "有効（未登録）",
        _ => "不明",
    }
}

impl StaffResult {
    pub fn from_proto(r: &pb::ConfirmationResult) -> Self {
        let given = |c: &Option<pb::ConsentRecord>| c.as_ref().is_some_and(|c| c.given);
        let consents = r.consents.unwrap_or_default();
        StaffResult {
            confirmation_id: r.confirmation_id.clone(),
            processing_status: r.processing_status,
            reference_classification: r.reference_classification,
            validity: r.validity,
            validity_label: validity_label(r.validity),
            qualifications: r
                .qualifications
                .iter()
                .map(|q| StaffQualification {
                    insurer_number: q.insurer_number.clone(),
                    insurer_name: q.insurer_name.clone(),
                    insured_card_classification: q.insured_card_classification.clone(),
                    symbol: q.symbol.clone(),
                    number: q.number.clone(),
                    branch: q.branch.clone(),
                    personal_family: q.personal_family,
                    insured_person_name: q.insured_person_name.clone(),
                    name: q.name.clone(),
                    kana_name: q.kana_name.clone(),
                    sex: q.sex,
                    birth_date: q.birth_date.clone(),
                    address: q.address.clone(),
                    postcode: q.postcode.clone(),
                    qualification_date: q.qualification_date.clone(),
                    disqualification_date: q.disqualification_date.clone(),
                    loss_reason: q.loss_reason.clone(),
                    card_valid_from: q.card_valid_from.clone(),
                    card_expiry: q.card_expiry.clone(),
                    copay_ratio: q.copay_ratio.clone(),
                    preschool: q.preschool,
                    elderly_copay_ratio: q.elderly.as_ref().map(|e| e.copay_ratio.clone()),
                    high_cost_limit_bracket: q.high_cost_limit.as_ref().map(|h| h.bracket.clone()),
                    high_cost_limit_certificate_type: q
                        .high_cost_limit
                        .as_ref()
                        .map(|h| h.certificate_type.clone())
                        .filter(|t| !t.is_empty()),
                    specific_disease_categories: q
                        .specific_diseases
                        .iter()
                        .map(|d| d.category)
                        .collect(),
                })
                .collect(),
            consents: StaffConsents {
                medication: given(&consents.medication),
                checkup: given(&consents.checkup),
                clinical: given(&consents.clinical),
                surgery: given(&consents.surgery),
                comprehensive: consents.comprehensive,
            },
            prescription: match r.prescription_issue() {
                pb::PrescriptionIssue::Electronic => Some(Prescription::Electronic),
                pb::PrescriptionIssue::Paper => Some(Prescription::Paper),
                pb::PrescriptionIssue::Unspecified => None,
            },
            notes: Box::new(AnswerNotes {
                as_of_date: r.as_of_date.clone(),
                warning: match pb::Warning::try_from(r.warning) {
                    Ok(pb::Warning::None) => None,
                    Ok(w) => Some(w.as_str_name().to_owned()),
                    Err(_) => Some(format!("WARNING_{}", r.warning)),
                },
                warning_message: r.warning_message.clone(),
                certificate_not_after: rfc3339(r.certificate_not_after.as_ref()),
                grace_until: rfc3339(r.grace_until.as_ref()),
                insurance_document: r.insurance_document.as_ref().map(StaffDocument::from_proto),
                treatment: treatment_name(r.treatment),
                requery_until: r.home_care.as_ref().map(|p| p.requery_until.clone()),
                medical_tickets: r
                    .medical_tickets
                    .iter()
                    .map(StaffTicket::from_proto)
                    .collect(),
            }),
        }
    }
}

fn ratio(code: &str) -> String {
    match code {
        "010" => "1割".into(),
        "020" => "2割".into(),
        "030" => "3割".into(),
        other => other.into(),
    }
}

/// The human-readable view for staff at the reception terminal (資格確認端末).
pub fn render_human(outcome: &Outcome) -> String {
    let mut s = String::new();
    match outcome {
        Outcome::Registered {
            result_code,
            newly_registered,
            confirmation_id,
        } => {
            s.push_str("=== 健康保険証利用登録 (registration for insurance use) ===\n");
            s.push_str(if *newly_registered {
                "登録しました (registered)\n"
            } else {
                "登録済みです (already registered; nothing changed)\n"
            });
            s.push_str(&format!("result code        : {result_code}\n"));
            s.push_str(&format!("confirmation id    : {confirmation_id}\n"));
        }
        Outcome::Confirmed {
            result_code,
            result,
        } => {
            s.push_str("=== 資格確認結果 (eligibility result) ===\n");
            s.push_str(&format!(
                "資格有効性 validity : {} {}\n",
                result.validity, result.validity_label
            ));
            s.push_str(&format!("result code        : {result_code}\n"));
            if let Some(w) = &result.notes.warning {
                s.push_str(&format!("警告 warning        : {w}\n"));
                s.push_str(&format!("  {}\n", result.notes.warning_message));
            }
            if let Some(t) = &result.notes.certificate_not_after {
                s.push_str(&format!("証明書期限 notAfter : {t}\n"));
            }
            if let Some(t) = &result.notes.grace_until {
                s.push_str(&format!("猶予期限 grace until: {t}\n"));
            }
            if !result.notes.as_of_date.is_empty() {
                s.push_str(&format!(
                    "照会日 as of        : {}\n",
                    result.notes.as_of_date
                ));
            }
            if let Some(d) = &result.notes.insurance_document {
                s.push_str(&format!("書類 document       : {}\n", d.summary()));
            }
            if let Some(t) = result.notes.treatment {
                s.push_str(&format!("診療区分 treatment  : {t}\n"));
            }
            if let Some(until) = &result.notes.requery_until {
                s.push_str(&format!("再照会 requery until: {until} (居宅同意取得型)\n"));
            }
            s.push_str(&format!(
                "confirmation id    : {}\n",
                result.confirmation_id
            ));
            if result.consents.comprehensive {
                s.push_str("同意 consents      : 包括同意 (every kind, on one screen)\n");
            }
            match result.prescription {
                Some(Prescription::Electronic) => {
                    s.push_str("処方箋 prescription: 電子処方箋 (electronic)\n")
                }
                Some(Prescription::Paper) => s.push_str("処方箋 prescription: 紙 (paper)\n"),
                None => {}
            }
            if result.validity == pb::QualificationValidity::ValidUnregistered as i32 {
                s.push_str(
                    "医療券 tickets      : 未登録 (no 医療券/調剤券 of this month registered by the welfare office)\n",
                );
            }
            for t in &result.notes.medical_tickets {
                s.push_str(&format!(
                    "{} ticket        : 交付番号 {}  診療年月 {}  {}-{}  指定 {} {}{}  本人支払額 {}円\n",
                    t.kind,
                    t.issue_number,
                    t.treatment_month,
                    t.valid_from,
                    t.valid_until,
                    t.designated_institution_code,
                    t.designated_institution_name,
                    if t.designated_here {
                        " (当院)"
                    } else {
                        " (他院: not this institution)"
                    },
                    t.self_pay_yen
                ));
            }
            for (i, q) in result.qualifications.iter().enumerate() {
                s.push_str(&format!("--- qualification {} ---\n", i + 1));
                s.push_str(&format!(
                    "氏名 name          : {} ({})\n",
                    q.name, q.kana_name
                ));
                s.push_str(&format!(
                    "生年月日 birth date : {}  性別 sex: {}\n",
                    q.birth_date, q.sex
                ));
                s.push_str(&format!(
                    "保険者 insurer      : {} {}\n",
                    q.insurer_number, q.insurer_name
                ));
                s.push_str(&format!(
                    "記号・番号・枝番    : {} / {} / {}\n",
                    if q.symbol.is_empty() { "-" } else { &q.symbol },
                    q.number,
                    if q.branch.is_empty() { "-" } else { &q.branch }
                ));
                s.push_str(&format!(
                    "本人/家族          : {}\n",
                    if q.personal_family == 1 {
                        "本人"
                    } else {
                        "家族"
                    }
                ));
                s.push_str(&format!(
                    "資格取得日 / 喪失日 : {} / {}{}\n",
                    q.qualification_date,
                    if q.disqualification_date.is_empty() {
                        "-"
                    } else {
                        &q.disqualification_date
                    },
                    if q.loss_reason.is_empty() {
                        String::new()
                    } else {
                        format!(" (reason {})", q.loss_reason)
                    }
                ));
                s.push_str(&format!(
                    "一部負担金割合 co-pay: {}{}\n",
                    ratio(&q.copay_ratio),
                    if q.preschool { " (未就学)" } else { "" }
                ));
                if let Some(e) = &q.elderly_copay_ratio {
                    s.push_str(&format!("高齢受給者証        : {}\n", ratio(e)));
                }
                s.push_str(&format!(
                    "限度額区分 limit    : {}\n",
                    q.high_cost_limit_bracket.as_deref().unwrap_or("-")
                ));
                if !q.specific_disease_categories.is_empty() {
                    s.push_str(&format!(
                        "特定疾病            : {:?}\n",
                        q.specific_disease_categories
                    ));
                }
            }
            let c = &result.consents;
            s.push_str(&format!(
                "同意 consents       : 薬剤 {} / 健診 {} / 診療 {} / 手術 {}\n",
                yes(c.medication),
                yes(c.checkup),
                yes(c.clinical),
                yes(c.surgery)
            ));
        }
        Outcome::Refused {
            result_code,
            message,
            tries_left,
        } => {
            s.push_str("=== 資格確認できませんでした (not confirmed) ===\n");
            s.push_str(&format!("result code : {result_code}\n"));
            s.push_str(&format!("reason      : {message}\n"));
            if let Some(t) = tries_left {
                s.push_str(&format!("PIN tries left: {t}\n"));
            }
        }
        Outcome::WrongPin {
            tries_left,
            message,
        } => {
            s.push_str("=== 暗証番号が違います (wrong PIN) ===\n");
            s.push_str(&format!("{message}\nPIN tries left: {tries_left}\n"));
        }
        Outcome::Error { message } => {
            s.push_str("=== エラー (error) ===\n");
            s.push_str(&format!("{message}\n"));
        }
    }
    s
}

fn yes(b: bool) -> &'static str {
    if b {
        "あり"
    } else {
        "なし"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_distinguish_outcomes() {
        let refused = Outcome::Refused {
            result_code: "RESULT_CODE_CERTIFICATE_REVOKED".into(),
            message: "revoked".into(),
            tries_left: None,
        };
        assert_eq!(refused.exit_code(), 1);
        let json = serde_json::to_value(&refused).unwrap();
        assert_eq!(json["outcome"], "refused");
        assert_eq!(json["result_code"], "RESULT_CODE_CERTIFICATE_REVOKED");
        assert!(render_human(&refused).contains("RESULT_CODE_CERTIFICATE_REVOKED"));
        assert_eq!(
            Outcome::Error {
                message: "x".into()
            }
            .exit_code(),
            3
        );
    }

    #[test]
    fn staff_view_shows_the_comprehensive_consent_and_the_prescription_choice() {
        let mut r = pb::ConfirmationResult::default();
        r.set_validity(pb::QualificationValidity::Valid);
        let plain = StaffResult::from_proto(&r);
        assert_eq!(plain.prescription, None);
        assert!(!plain.consents.comprehensive);
        let json = serde_json::to_value(&plain).unwrap();
        assert!(json.get("prescription").is_none(), "{json}");
        r.set_prescription_issue(pb::PrescriptionIssue::Paper);
        r.consents = Some(pb::ConsentEcho {
            comprehensive: true,
            ..Default::default()
        });
        let staff = StaffResult::from_proto(&r);
        assert_eq!(staff.prescription, Some(Prescription::Paper));
        assert_eq!(
            serde_json::to_value(&staff).unwrap()["prescription"],
            "paper"
        );
        assert!(staff.consents.comprehensive);
        let text = render_human(&Outcome::Confirmed {
            result_code: "RESULT_CODE_OK".into(),
            result: staff,
        });
        assert!(text.contains("紙 (paper)"), "{text}");
        assert!(text.contains("包括同意"), "{text}");
    }

    #[test]
    fn staff_view_shows_validity_and_bracket() {
        let mut r = pb::ConfirmationResult::default();
        r.set_validity(pb::QualificationValidity::Valid);
        r.qualifications.push(pb::Qualification {
            insurer_number: "01130012".into(),
            copay_ratio: "030".into(),
            high_cost_limit: Some(pb::HighCostLimit {
                bracket: "A03".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        let out = Outcome::Confirmed {
            result_code: "RESULT_CODE_OK".into(),
            result: StaffResult::from_proto(&r),
        };
        let text = render_human(&out);
        assert!(text.contains("有効"));
        assert!(text.contains("3割"));
        assert!(text.contains("A03"));
        assert_eq!(out.exit_code(), 0);
    }

    #[test]
    fn the_warning_and_the_as_of_date_are_shown_and_in_the_json() {
        let mut r = pb::ConfirmationResult {
            as_of_date: "20261204".into(),
            warning_message: "電子証明書の有効期限が切れています".into(),
            grace_until: Some(prost_types::Timestamp {
                seconds: 1_796_050_799, // 2026-11-30 23:59:59 JST
                nanos: 0,
            }),
            ..Default::default()
        };
        r.set_validity(pb::QualificationValidity::Valid);
        r.set_warning(pb::Warning::CertificateInGrace);
        let out = Outcome::Confirmed {
            result_code: "RESULT_CODE_OK".into(),
            result: StaffResult::from_proto(&r),
        };
        let text = render_human(&out);
        assert!(text.contains("WARNING_CERTIFICATE_IN_GRACE"), "{text}");
        assert!(
            text.contains("電子証明書の有効期限が切れています"),
            "{text}"
        );
        assert!(text.contains("20261204"), "{text}");
        // The dates of the warning: the last instant of grace, in the text too.
        assert!(text.contains("grace until: 2026-11-30T14:59:59Z"), "{text}");
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["result"]["warning"], "WARNING_CERTIFICATE_IN_GRACE");
        assert_eq!(json["result"]["as_of_date"], "20261204");
        assert_eq!(json["result"]["grace_until"], "2026-11-30T14:59:59Z");
        // Without a warning, no warning keys.
        let plain = StaffResult::from_proto(&pb::ConfirmationResult::default());
        let json = serde_json::to_value(&plain).unwrap();
        assert!(json.get("warning").is_none() && json.get("warning_message").is_none());
    }

    #[test]
    fn the_insurance_document_is_shown_with_its_period_and_standing_and_in_the_json() {
        let mut r = pb::ConfirmationResult {
            as_of_date: "20261204".into(),
            ..Default::default()
        };
        r.set_validity(pb::QualificationValidity::Valid);
        let none = StaffResult::from_proto(&r);
        assert_eq!(none.notes.insurance_document, None);
        let json = serde_json::to_value(&none).unwrap();
        assert!(json.get("insurance_document").is_none(), "{json}");
        let mut doc = pb::InsuranceDocument {
            valid_from: "20251201".into(),
            valid_until: "20261203".into(),
            valid_on_as_of_date: false,
            ..Default::default()
        };
        doc.set_kind(pb::DocumentKind::ShikakuKakuninsho);
        r.insurance_document = Some(doc);
        let out = Outcome::Confirmed {
            result_code: "RESULT_CODE_OK".into(),
            result: StaffResult::from_proto(&r),
        };
        let text = render_human(&out);
        assert!(
            text.contains("資格確認書 (valid 20251201 – 20261203)"),
            "{text}"
        );
        assert!(text.contains("NOT valid on the day asked for"), "{text}");
        assert!(
            text.contains("有効"),
            "the validity stays the qualification's: {text}"
        );
        let json = serde_json::to_value(&out).unwrap();
        let d = &json["result"]["insurance_document"];
        assert_eq!(d["kind"], "DOCUMENT_KIND_SHIKAKU_KAKUNINSHO");
        assert_eq!(d["kind_label"], "資格確認書");
        assert_eq!(d["valid_from"], "20251201");
        assert_eq!(d["valid_until"], "20261203");
        assert_eq!(d["valid_on_as_of_date"], false);
        let mut oshirase = pb::InsuranceDocument {
            valid_on_as_of_date: true,
            ..Default::default()
        };
        oshirase.set_kind(pb::DocumentKind::ShikakuJohoOshirase);
        let d = StaffDocument::from_proto(&oshirase);
        assert_eq!(d.kind, "DOCUMENT_KIND_SHIKAKU_JOHO_OSHIRASE");
        assert_eq!(
            d.summary(),
            "資格情報のお知らせ (no validity period of its own); valid on the day asked for"
        );
    }
}
