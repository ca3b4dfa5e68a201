//! The layout of the terminal's files: which request a file name holds, what a request says,
//! and the answer written for it, with no I/O and no gRPC. Element names follow the public
//! reception software that reads these files (docs/oqs-files.md names the source of each).
//!
//! Everything not public is an assumption kept in one place here: [`SEGMENT_ABNORMAL`], the
//! [`ErrorCode`] values, the consent-refusal code, the replacement character.

use onshi_proto::v1::{self as pb, ResultCode};

use super::codec::{Charset, Element};

/// SegmentOfResult 正常終了.
pub const SEGMENT_NORMAL: &str = "1";
/// SegmentOfResult 処理中 (a bulk result not yet ready).
pub const SEGMENT_PROCESSING: &str = "2";
/// SegmentOfResult 異常終了. **Assumption**: public parsers disagree (most read 9, one 3);
/// onshi writes 9. This constant is the only place the value lives.
pub const SEGMENT_ABNORMAL: &str = "9";

/// ProcessingResultStatus 正常終了 / エラー.
pub const STATUS_OK: &str = "1";
pub const STATUS_ERROR: &str = "2";

/// The kinds of request, by file-name prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `OQSsiquc01req_`: one confirmation by the insurance card's numbers.
    Single,
    /// `OQSmuquc01req_`: 一括照会, submit.
    BulkSubmit,
    /// `OQSmuquc02req_`: 一括照会, fetch by ReceptionNumber.
    BulkFetch,
    /// `YZKsiquc01req_`: 薬剤情報.
    Medications,
    /// `TKKsiquc01req_`: 特定健診情報.
    Checkups,
    /// 居宅同意取得型 re-query (再照会) for home visits: `OQSsihvq01req_` one,
    /// `OQSmuhvq01req_` / `OQSmuhvq02req_` bulk submit / fetch. **Assumption**: the prefixes are
    /// public, their layout is not; onshi reads them as the ordinary ones with every search a
    /// re-query for treatment 2 (docs/oqs-files.md).
    HomeVisitSingle,
    HomeVisitBulkSubmit,
    HomeVisitBulkFetch,
    /// The same for online care (treatment 3): `OQSsionq01req_`, `OQSmuonq01req_`,
    /// `OQSmuonq02req_`.
    OnlineSingle,
    OnlineBulkSubmit,
    OnlineBulkFetch,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Single,
        Kind::BulkSubmit,
        Kind::BulkFetch,
        Kind::Medications,
        Kind::Checkups,
        Kind::HomeVisitSingle,
        Kind::HomeVisitBulkSubmit,
        Kind::HomeVisitBulkFetch,
        Kind::OnlineSingle,
        Kind::OnlineBulkSubmit,
        Kind::OnlineBulkFetch,
    ];

    /// The MedicalTreatmentFlag of a re-query kind's searches (`None`: not a re-query kind).
    pub fn requery_treatment(self) -> Option<&'static str> {
        match self {
            Kind::HomeVisitSingle | Kind::HomeVisitBulkSubmit | Kind::HomeVisitBulkFetch => {
                Some("2")
            }
            Kind::OnlineSingle | Kind::OnlineBulkSubmit | Kind::OnlineBulkFetch => Some("3"),
            _ => None,
        }
    }

    pub fn request_prefix(self) -> &'static str {
        match self {
            Kind::Single => "OQSsiquc01req_",
            Kind::BulkSubmit => "OQSmuquc01req_",
            Kind::BulkFetch => "OQSmuquc02req_",
            Kind::Medications => "YZKsiquc01req_",
            Kind::Checkups => "TKKsiquc01req_",
            Kind::HomeVisitSingle => "OQSsihvq01req_",
            Kind::HomeVisitBulkSubmit => "OQSmuhvq01req_",
            Kind::HomeVisitBulkFetch => "OQSmuhvq02req_",
            Kind::OnlineSingle => "OQSsionq01req_",
            Kind::OnlineBulkSubmit => "OQSmuonq01req_",
            Kind::OnlineBulkFetch => "OQSmuonq02req_",
        }
    }

    /// The kind a request file's name announces (prefixes compared case-insensitively, as
    /// Windows file names are).
    pub fn of_file_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| {
            name.get(..k.request_prefix().len())
                .is_some_and(|p| p.eq_ignore_ascii_case(k.request_prefix()))
        })
    }
}

/// The answer's file name: the request's with `req` replaced by `res` (the first occurrence,
/// any case, keeping the case of the rest). A name without `req` gets `res_` in front.
pub fn answer_file_name(request: &str) -> String {
    match request.to_ascii_lowercase().find("req") {
        Some(at) => format!("{}res{}", &request[..at], &request[at + 3..]),
        None => format!("res_{request}"),
    }
}

/// Whether a file in `req/` is a request at all: `*.xml`, not hidden. Temporary names
/// (`.x.tmp`, `x.xml.part`) are left alone until they are renamed.
pub fn is_request_file_name(name: &str) -> bool {
    !name.starts_with('.')
        && name.len() > 4
        && name
            .get(name.len() - 4..)
            .is_some_and(|e| e.eq_ignore_ascii_case(".xml"))
}

/// The answer's ErrorCode. **Assumption**: the real codes are not public; onshi's own are
/// stable and listed in docs/oqs-files.md. Service refusals carry onshi's result code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The XML is not well-formed (or not an `XmlMsg`).
    Malformed,
    /// The bytes are not in the encoding the declaration names, or it names another.
    Encoding,
    /// The file name's prefix names no known kind of request.
    UnknownKind,
    /// A required element is missing or blank.
    MissingField,
    /// An element's value has the wrong form (a date that is not YYYYMMDD, a flag not 0/1,
    /// too many queries).
    InvalidField,
    /// Over the size limit.
    TooLarge,
    /// The service refused the request with this result code (check digits, quotas, …).
    Refused(ResultCode),
    /// The service could not be reached: nothing was confirmed.
    ServiceUnreachable,
}

impl ErrorCode {
    pub fn as_code(self) -> String {
        match self {
            ErrorCode::Malformed => "EOQ1001".into(),
            ErrorCode::Encoding => "EOQ1002".into(),
            ErrorCode::UnknownKind => "EOQ1003".into(),
            ErrorCode::MissingField => "EOQ1004".into(),
            ErrorCode::InvalidField => "EOQ1005".into(),
            ErrorCode::TooLarge => "EOQ1006".into(),
            ErrorCode::Refused(code) => format!("EOQ2{:03}", (code as i32).clamp(0, 999)),
            ErrorCode::ServiceUnreachable => "EOQ3001".into(),
        }
    }
}

/// A request that cannot be carried out, and why (for ErrorMessage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

/// `MessageHeader` of a request: what the answer echoes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestHeader {
    pub medical_institution_code: String,
    pub arbitrary_file_identifier: String,
    /// QualificationConfirmationDate (YYYYMMDD), the as-of date; absent means today.
    pub confirmation_date: Option<String>,
    /// The CharacterCodeIdentifier the answer is asked in; absent means Shift_JIS.
    pub answer_charset: Option<Charset>,
}

/// One `QualificationConfirmSearchInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchInfo {
    pub insurer_number: String,
    pub symbol: String,
    pub number: String,
    pub branch: String,
    pub birth_date: String,
    /// LimitApplicationCertificateRelatedConsFlg: 1 when the patient agreed to share the
    /// high-cost limit information.
    pub limit_consent: bool,
    pub arbitrary_identifier: String,
    /// MedicalTreatmentFlag: 1 外来, 2 訪問診療・訪問看護, 3 オンライン診療; empty when absent
    /// (外来).
    pub treatment: String,
    /// A 居宅同意取得型 re-query (the request's file kind says so).
    pub requery: bool,
}

impl SearchInfo {
    pub fn to_query(&self) -> pb::NumbersQuery {
        pb::NumbersQuery {
            insurer_number: self.insurer_number.clone(),
            symbol: self.symbol.clone(),
            number: self.number.clone(),
            branch: self.branch.clone(),
            birth_date: self.birth_date.clone(),
            treatment: self.treatment.parse().unwrap_or_default(),
            requery: self.requery,
            ..Default::default()
        }
    }

    /// The query asked for the request's as-of date (the header's
    /// QualificationConfirmationDate; `None`: today).
    pub fn to_query_as_of(&self, as_of: Option<&str>) -> pb::NumbersQuery {
        pb::NumbersQuery {
            as_of_date: as_of.unwrap_or_default().to_owned(),
            ..self.to_query()
        }
    }

    /// The echo in an answer: the elements the request carried.
    pub fn echo(&self) -> Element {
        let mut e = Element::new("QualificationConfirmSearchInfo");
        e.put_some("InsurerNumber", &self.insurer_number)
            .put_some("InsuredCardSymbol", &self.symbol)
            .put_some("InsuredIdentificationNumber", &self.number)
            .put_some("InsuredBranchNumber", &self.branch)
            .put_some("Birthdate", &self.birth_date)
            .put(
                "LimitApplicationCertificateRelatedConsFlg",
                if self.limit_consent { "1" } else { "0" },
            )
            .put_some("ArbitraryIdentifier", &self.arbitrary_identifier)
            .put_some("MedicalTreatmentFlag", &self.treatment);
        e
    }
}

/// A request file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Single {
        header: RequestHeader,
        search: SearchInfo,
    },
    BulkSubmit {
        header: RequestHeader,
        searches: Vec<SearchInfo>,
    },
    BulkFetch {
        header: RequestHeader,
        reception_number: String,
    },
    Medications {
        header: RequestHeader,
        search: SearchInfo,
        /// StartDate / EndDate (YYYYMM or YYYYMMDD): the months to answer; absent is all.
        period: Option<(String, String)>,
    },
    Checkups {
        header: RequestHeader,
        search: SearchInfo,
    },
}

impl Request {
    pub fn header(&self) -> &RequestHeader {
        match self {
            Request::Single { header, .. }
            | Request::BulkSubmit { header, .. }
            | Request::BulkFetch { header, .. }
            | Request::Medications { header, .. }
            | Request::Checkups { header, .. } => header,
        }
    }
}

/// The most queries one bulk submission may hold (the service's batch bound).
pub const MAX_BULK: usize = 10_000;

/// Reads a parsed request of a kind. The failure, when there is one, comes with whatever
/// header could be read, so that the error answer still echoes it.
pub fn read_request(kind: Kind, root: &Element) -> Result<Request, (Failure, RequestHeader)> {
    if root.name != "XmlMsg" {
        return Err((
            Failure::new(
                ErrorCode::Malformed,
                format!("the root element is <{}>, not <XmlMsg>", root.name),
            ),
            RequestHeader::default(),
        ));
    }
    let header = read_header(root);
    let fail = |f: Failure| (f, header.clone());
    if let Some(h) = root.child("MessageHeader") {
        if let Some(id) = h.text_of("CharacterCodeIdentifier") {
            if Charset::from_identifier(id).is_none() {
                return Err(fail(Failure::new(
                    ErrorCode::InvalidField,
                    format!(
                        "CharacterCodeIdentifier {id:?} is neither 0 (UTF-8) nor 1 (Shift_JIS)"
                    ),
                )));
            }
        }
    }
    if let Some(d) = &header.confirmation_date {
        check_date("QualificationConfirmationDate", d).map_err(fail)?;
    }
    let body = root.child("MessageBody").ok_or_else(|| {
        fail(Failure::new(
            ErrorCode::MissingField,
            "the request has no MessageBody",
        ))
    })?;
    let one_search = || -> Result<SearchInfo, (Failure, RequestHeader)> {
        let mut found = body.children_named("QualificationConfirmSearchInfo");
        let first = found.next().ok_or_else(|| {
            fail(Failure::new(
                ErrorCode::MissingField,
                "MessageBody has no QualificationConfirmSearchInfo",
            ))
        })?;
        if found.next().is_some() {
            return Err(fail(Failure::new(
                ErrorCode::InvalidField,
                "this request takes one QualificationConfirmSearchInfo",
            )));
        }
        read_search(first)
            .and_then(|s| as_requery(kind, s))
            .map_err(fail)
    };
    match kind {
        Kind::Single | Kind::HomeVisitSingle | Kind::OnlineSingle => Ok(Request::Single {
            search: one_search()?,
            header,
        }),
        Kind::Checkups => Ok(Request::Checkups {
            search: one_search()?,
            header,
        }),
        Kind::Medications => {
            let search = one_search()?;
            let start = body.text_of("StartDate").map(str::to_owned);
            let end = body.text_of("EndDate").map(str::to_owned);
            let period = match (start, end) {
                (None, None) => None,
                (Some(s), Some(e)) => {
                    for (name, v) in [("StartDate", &s), ("EndDate", &e)] {
                        check_month_or_date(name, v).map_err(fail)?;
                    }
                    Some((s, e))
                }
                (Some(_), None) | (None, Some(_)) => {
                    return Err(fail(Failure::new(
                        ErrorCode::MissingField,
                        "StartDate and EndDate go together",
                    )))
                }
            };
            Ok(Request::Medications {
                header,
                search,
                period,
            })
        }
        Kind::BulkSubmit | Kind::HomeVisitBulkSubmit | Kind::OnlineBulkSubmit => {
            let infos: Vec<&Element> = body
                .children_named("QualificationConfirmSearchInfo")
                .collect();
            if infos.is_empty() {
                return Err(fail(Failure::new(
                    ErrorCode::MissingField,
                    "MessageBody has no QualificationConfirmSearchInfo",
                )));
            }
            if infos.len() > MAX_BULK {
                return Err(fail(Failure::new(
                    ErrorCode::InvalidField,
                    format!(
                        "{} queries: one bulk request holds at most {MAX_BULK}",
                        infos.len()
                    ),
                )));
            }
            // Each query is judged by the service on its own (a bad check digit fails that
            // query, not the batch): only the shape is read here.
            let searches = infos
                .into_iter()
                .map(|e| as_requery(kind, read_search_lenient(e)))
                .collect::<Result<_, _>>()
                .map_err(fail)?;
            Ok(Request::BulkSubmit { header, searches })
        }
        Kind::BulkFetch | Kind::HomeVisitBulkFetch | Kind::OnlineBulkFetch => {
            let reception_number = body
                .text_of("ReceptionNumber")
                .or_else(|| {
                    root.child("MessageHeader")
                        .and_then(|h| h.text_of("ReceptionNumber"))
                })
                .ok_or_else(|| {
                    fail(Failure::new(
                        ErrorCode::MissingField,
                        "the request has no ReceptionNumber",
                    ))
                })?
                .to_owned();
            Ok(Request::BulkFetch {
                header,
                reception_number,
            })
        }
    }
}

fn read_header(root: &Element) -> RequestHeader {
    let Some(h) = root.child("MessageHeader") else {
        return RequestHeader::default();
    };
    let s = |n: &str| h.text_of(n).unwrap_or("").to_owned();
    RequestHeader {
        medical_institution_code: s("MedicalInstitutionCode"),
        arbitrary_file_identifier: s("ArbitraryFileIdentifier"),
        confirmation_date: h
            .text_of("QualificationConfirmationDate")
            .map(str::to_owned),
        answer_charset: h
            .text_of("CharacterCodeIdentifier")
            .and_then(Charset::from_identifier),
    }
}

fn read_search_lenient(e: &Element) -> SearchInfo {
    let s = |n: &str| e.text_of(n).unwrap_or("").to_owned();
    SearchInfo {
        insurer_number: s("InsurerNumber"),
        symbol: s("InsuredCardSymbol"),
        number: s("InsuredIdentificationNumber"),
        branch: s("InsuredBranchNumber"),
        birth_date: s("Birthdate"),
        limit_consent: e.text_of("LimitApplicationCertificateRelatedConsFlg") == Some("1"),
        arbitrary_identifier: s("ArbitraryIdentifier"),
        treatment: s("MedicalTreatmentFlag"),
        requery: false,
    }
}

/// A re-query kind's searches: each a re-query for the kind's treatment (the flag, when the
/// search carries one, must be that treatment).
fn as_requery(kind: Kind, mut search: SearchInfo) -> Result<SearchInfo, Failure> {
    let Some(flag) = kind.requery_treatment() else {
        return Ok(search);
    };
    if !search.treatment.is_empty() && search.treatment != flag {
        return Err(Failure::new(
            ErrorCode::InvalidField,
            format!(
                "MedicalTreatmentFlag {:?} in a {} request, whose treatment is {flag}",
                search.treatment,
                kind.request_prefix()
            ),
        ));
    }
    search.treatment = flag.to_owned();
    search.requery = true;
    Ok(search)
}

/// One search, with the checks that need no service: the required elements are present, the
/// flag is 0 or 1. Check digits, lengths and the calendar are the service's (one rule for every
/// client; its codes come back as `EOQ2nnn`).
fn read_search(e: &Element) -> Result<SearchInfo, Failure> {
    for required in ["InsurerNumber", "InsuredIdentificationNumber", "Birthdate"] {
        if e.text_of(required).is_none() {
            return Err(Failure::new(
                ErrorCode::MissingField,
                format!("QualificationConfirmSearchInfo has no {required}"),
            ));
        }
    }
    if let Some(flag) = e.text_of("LimitApplicationCertificateRelatedConsFlg") {
        if flag != "0" && flag != "1" {
            return Err(Failure::new(
                ErrorCode::InvalidField,
                format!("LimitApplicationCertificateRelatedConsFlg {flag:?} is neither 0 nor 1"),
            ));
        }
    }
    if let Some(flag) = e.text_of("MedicalTreatmentFlag") {
        if !matches!(flag, "1" | "2" | "3") {
            return Err(Failure::new(
                ErrorCode::InvalidField,
                format!("MedicalTreatmentFlag {flag:?} is not 1, 2 or 3"),
            ));
        }
    }
    Ok(read_search_lenient(e))
}

fn check_date(name: &str, v: &str) -> Result<(), Failure> {
    if v.len() == 8 && v.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Failure::new(
            ErrorCode::InvalidField,
            format!("{name} {v:?} is not YYYYMMDD"),
        ))
    }
}

fn check_month_or_date(name: &str, v: &str) -> Result<(), Failure> {
    if (v.len() == 6 || v.len() == 8) && v.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Failure::new(
            ErrorCode::InvalidField,
            format!("{name} {v:?} is neither YYYYMM nor YYYYMMDD"),
        ))
    }
}

// ---- answers ----------------------------------------------------------------------------------

/// What every answer's header says besides the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerContext {
    /// ProcessExecutionTime, YYYYMMDDHHmmss (JST).
    pub executed_at: String,
    /// QualificationConfirmationDate, YYYYMMDD: the request's, or today (JST).
    pub confirmation_date: String,
    pub medical_institution_code: String,
    pub arbitrary_file_identifier: String,
    /// 1 マイナンバーカード, 2 被保険者証等の記号番号.
    pub reference_classification: &'static str,
    pub charset: Charset,
}

fn header(ctx: &AnswerContext, segment: &str, failure: Option<&Failure>) -> Element {
    let mut h = Element::new("MessageHeader");
    h.put("ProcessExecutionTime", &ctx.executed_at)
        .put("QualificationConfirmationDate", &ctx.confirmation_date)
        .put_some("MedicalInstitutionCode", &ctx.medical_institution_code)
        .put_some("ArbitraryFileIdentifier", &ctx.arbitrary_file_identifier)
        .put("ReferenceClassification", ctx.reference_classification)
        .put("SegmentOfResult", segment);
    if let Some(f) = failure {
        h.put("ErrorCode", f.code.as_code())
            .put("ErrorMessage", &f.message);
    }
    h.put("CharacterCodeIdentifier", ctx.charset.identifier());
    h
}

fn message(h: Element, body: Option<Element>) -> Element {
    let mut root = Element::new("XmlMsg");
    root.push(h);
    if let Some(b) = body {
        root.push(b);
    }
    root
}

/// An answer to a request that could not be carried out: SegmentOfResult 異常終了 with the
/// ErrorCode and ErrorMessage; the search echoed when the request was read that far.
pub fn failure_answer(
    ctx: &AnswerContext,
    failure: &Failure,
    echo: Option<&SearchInfo>,
) -> Element {
    let body = echo.map(|s| {
        let mut b = Element::new("MessageBody");
        b.put("ProcessingResultStatus", STATUS_ERROR)
            .put("ProcessingResultCode", failure.code.as_code())
            .put("ProcessingResultMessage", &failure.message)
            .push(s.echo());
        b
    });
    message(header(ctx, SEGMENT_ABNORMAL, Some(failure)), body)
}

/// Consent times and flags of the answer, from the service's echo.
fn consent_block(r: &mut Element, prefix: &str, c: Option<&pb::ConsentRecord>) {
    let Some(c) = c.filter(|c| c.given) else {
        return;
    };
    r.put(&format!("{prefix}ConsFlg"), "1");
    if let Some(t) = &c.given_at {
        r.put(&format!("{prefix}ConsTime"), jst_timestamp(t.seconds));
    }
    if let Some(t) = &c.valid_until {
        r.put(&format!("{prefix}AvailableTime"), jst_timestamp(t.seconds));
    }
}

/// Whether an insurer number is 後期高齢者医療's (法別 39).
fn is_koki(insurer_number: &str) -> bool {
    insurer_number.len() == 8 && insurer_number.starts_with("39")
}

/// One `ResultOfQualificationConfirmation` from a qualification the service answered.
/// `limit_info`: include the high-cost limit information (the patient agreed, or the card was
/// read at the reader, where it needs no consent since October 2024); `consent_time` is then
/// its ConsTime.
pub fn result_of_qualification(
    q: &pb::Qualification,
    consents: Option<&pb::ConsentEcho>,
    limit_info: Option<&str>,
    tickets: &[pb::MedicalTicket],
) -> Element {
    let mut r = Element::new("ResultOfQualificationConfirmation");
    r.put_some("InsuredCardClassification", &q.insured_card_classification)
        .put_some("InsurerNumber", &q.insurer_number)
        .put_some("InsuredCardSymbol", &q.symbol)
        .put_some("InsuredIdentificationNumber", &q.number)
        .put_some("InsuredBranchNumber", &q.branch);
    if q.personal_family == 1 || q.personal_family == 2 {
        r.put(
            "PersonalFamilyClassification",
            q.personal_family.to_string(),
        );
    }
    r.put_some("InsuredName", &q.insured_person_name)
        .put_some("Name", &q.name)
        .put_some("NameKana", &q.kana_name);
    if (1..=3).contains(&q.sex) {
        r.put("Sex1", q.sex.to_string());
    }
    r.put_some("Birthdate", &q.birth_date)
        .put_some("Address", &q.address)
        .put_some("PostNumber", &q.postcode)
        .put_some("InsuredCertificateIssuanceDate", &q.card_issue_date)
        .put_some("InsuredCardValidDate", &q.card_valid_from)
        .put_some("InsuredCardExpirationDate", &q.card_expiry)
        .put_some("QualificationDate", &q.qualification_date)
        .put_some("DisqualificationDate", &q.disqualification_date);
    if is_koki(&q.insurer_number) {
        r.put_some("InsuredPartialContributionRatio", &q.copay_ratio);
    }
    if q.preschool {
        r.put("PreschoolClassification", "1");
    }
    r.put_some("ReasonOfLoss", &q.loss_reason)
        .put_some("InsurerName", &q.insurer_name);
    if let Some(e) = &q.elderly {
        let mut el = Element::new("ElderlyRecipientCertificateInfo");
        el.put_some("ElderlyRecipientValidStartDate", &e.valid_from)
            .put_some("ElderlyRecipientValidEndDate", &e.valid_until)
            .put_some("ElderlyRecipientContributionRatio", &e.copay_ratio);
        if !el.children.is_empty() {
            r.push(el);
        }
    }
    if let Some(time) = limit_info {
        r.put("LimitApplicationCertificateRelatedConsFlg", "1")
            .put("LimitApplicationCertificateRelatedConsTime", time);
        if let Some(h) = &q.high_cost_limit {
            let mut l = Element::new("LimitApplicationCertificateRelatedInfo");
            l.put_some(
                "LimitApplicationCertificateClassification",
                &h.certificate_type,
            )
            .put_some("LimitApplicationCertificateClassificationFlag", &h.bracket)
            .put_some("LimitApplicationCertificateValidStartDate", &h.valid_from)
            .put_some("LimitApplicationCertificateValidEndDate", &h.valid_until);
            if !l.children.is_empty() {
                r.push(l);
            }
        }
        if !q.specific_diseases.is_empty() {
            r.put("SpecificDiseasesCertificateRelatedConsFlg", "1")
                .put("SpecificDiseasesCertificateRelatedConsTime", time);
            let mut list = Element::new("SpecificDiseasesCertificateList");
            for d in &q.specific_diseases {
                let mut i = Element::new("SpecificDiseasesCertificateInfo");
                i.put(
                    "SpecificDiseasesDiseaseCategory",
                    format!("{:02}", d.category),
                )
                .put_some("SpecificDiseasesValidStartDate", &d.valid_from)
                .put_some("SpecificDiseasesValidEndDate", &d.valid_until)
                .put("SpecificDiseasesSelfPay", d.monthly_cap_yen.to_string());
                list.push(i);
            }
            r.push(list);
        }
    }
    // 医療扶助 (classification A1): the month's 医療券 / 調剤券, after the 特定疾病 list and
    // before the consent flags, as the public parsers read it (docs/oqs-files.md).
    if q.insured_card_classification == "A1" && !tickets.is_empty() {
        r.push(public_expense_result_list(tickets));
    }
    if let Some(c) = consents {
        consent_block(&mut r, "SpecificHealthCheckupsInfo", c.checkup.as_ref());
        consent_block(&mut r, "PharmacistsInfo", c.medication.as_ref());
        consent_block(&mut r, "DiagnosisInfo", c.clinical.as_ref());
        consent_block(&mut r, "OperationInfo", c.surgery.as_ref());
    }
    r
}

/// `PublicExpenseResultList` with one `MedicalTicketInfo` per ticket. TicketType 1 医療券,
/// 2 調剤券 and DesignatedMedicalInstitutionFlag 1 (this institution) / 0 are onshi's
/// choices (docs/oqs-files.md "医療扶助"); SelfPayAmount in yen.
fn public_expense_result_list(tickets: &[pb::MedicalTicket]) -> Element {
    let mut list = Element::new("PublicExpenseResultList");
    for t in tickets {
        let kind = match t.kind() {
            pb::MedicalTicketKind::Medical => "1",
            pb::MedicalTicketKind::Dispensing => "2",
            pb::MedicalTicketKind::Unspecified => "",
        };
        let mut i = Element::new("MedicalTicketInfo");
        i.put_some("TicketType", kind)
            .put_some("MedicalTicketValidDate", &t.valid_from)
            .put_some("MedicalTicketExpirationDate", &t.valid_until)
            .put_some("IssueNumber", &t.issue_number)
            .put_some("MedicalTreatmentMonth", &t.treatment_month)
            .put_some(
                "DesignatedMedicalInstitutionCode",
                &t.designated_institution_code,
            )
            .put(
                "DesignatedMedicalInstitutionFlag",
                if t.designated_here { "1" } else { "0" },
            )
            .put_some(
                "DesignatedMedicalInstitutionName",
                &t.designated_institution_name,
            )
            .put("SelfPayAmount", t.self_pay_yen.to_string());
        list.push(i);
    }
    list
}

/// The body elements of one confirmation result (single answer, face file, bulk unit):
/// status, validity, the echo, the results.
fn result_elements(
    target: &mut Element,
    result: &pb::ConfirmationResult,
    echo: Option<&SearchInfo>,
    limit_time: Option<&str>,
    result_list: bool,
) {
    target.put("ProcessingResultStatus", STATUS_OK);
    // A warning on success goes where the real answer puts it: ProcessingResultCode and
    // ProcessingResultMessage beside 正常終了 (docs/oqs-files.md).
    if let Some(code) = warning_code(result.warning) {
        target
            .put("ProcessingResultCode", code)
            .put("ProcessingResultMessage", &result.warning_message);
    }
    let validity = result.validity;
    // 6 有効（未登録）: a 医療扶助 recipient without a registered ticket this month.
    if (1..=6).contains(&validity) {
        target.put("QualificationValidity", validity.to_string());
    }
    // 電子処方箋: the patient's choice at the reader, 1 electronic or 2 paper; absent where
    // the reader did not ask (a pharmacy, a card-less query).
    match result.prescription_issue() {
        pb::PrescriptionIssue::Electronic => {
            target.put("PrescriptionIssueSelect", "1");
        }
        pb::PrescriptionIssue::Paper => {
            target.put("PrescriptionIssueSelect", "2");
        }
        pb::PrescriptionIssue::Unspecified => {}
    }
    if let Some(s) = echo {
        target.push(s.echo());
    }
    let results: Vec<Element> = result
        .qualifications
        .iter()
        .map(|q| {
            result_of_qualification(
                q,
                result.consents.as_ref(),
                limit_time,
                &result.medical_tickets,
            )
        })
        .collect();
    if results.is_empty() {
        return;
    }
    if result_list {
        let mut list = Element::new("ResultList");
        for r in results {
            list.push(r);
        }
        target.push(list);
    } else {
        for r in results {
            target.push(r);
        }
    }
}

/// The answer to `OQSsiquc01req` (and the face file's content): 正常終了 with the result.
pub fn confirmation_answer(
    ctx: &AnswerContext,
    result: &pb::ConfirmationResult,
    echo: Option<&SearchInfo>,
    limit_time: Option<&str>,
) -> Element {
    let mut body = Element::new("MessageBody");
    result_elements(&mut body, result, echo, limit_time, true);
    message(header(ctx, SEGMENT_NORMAL, None), Some(body))
}

/// The answer to `OQSmuquc01req`: the reception number to fetch with.
pub fn bulk_submit_answer(
    ctx: &AnswerContext,
    reception_number: &str,
    received_at: &str,
) -> Element {
    let mut body = Element::new("MessageBody");
    body.put("ProcessingResultStatus", STATUS_OK)
        .put("ReceptionNumber", reception_number)
        .put("ReceptionDateTime", received_at);
    message(header(ctx, SEGMENT_NORMAL, None), Some(body))
}

/// The answer to `OQSmuquc02req` while the batch is still running: 処理中.
pub fn bulk_processing_answer(ctx: &AnswerContext, reception_number: &str) -> Element {
    let mut h = header(ctx, SEGMENT_PROCESSING, None);
    insert_after(
        &mut h,
        "ArbitraryFileIdentifier",
        Element::leaf("ReceptionNumber", reception_number),
    );
    let mut body = Element::new("MessageBody");
    body.put("ProcessingResultStatus", STATUS_OK);
    message(h, Some(body))
}

/// One answered query of a batch.
#[derive(Debug, Clone)]
pub struct BulkItem {
    pub search: SearchInfo,
    pub result: pb::ConfirmationResult,
}

/// The answer to `OQSmuquc02req` once the batch is done: the counts in the header, one
/// `BulkConfirmUnit` per query, in the order submitted.
pub fn bulk_result_answer(
    ctx: &AnswerContext,
    reception_number: &str,
    items: &[BulkItem],
) -> Element {
    let errors = items
        .iter()
        .filter(|i| i.result.processing_status() == pb::ProcessingStatus::Error)
        .count();
    let mut h = header(ctx, SEGMENT_NORMAL, None);
    insert_after(
        &mut h,
        "ArbitraryFileIdentifier",
        Element::leaf("ReceptionNumber", reception_number),
    );
    let at = h
        .children
        .iter()
        .position(|c| c.name == "CharacterCodeIdentifier")
        .unwrap_or(h.children.len());
    for (i, (name, n)) in [
        ("NumberOfProcessingResult", items.len()),
        ("NumberOfNormalProcessing", items.len() - errors),
        ("NumberOfError", errors),
    ]
    .into_iter()
    .enumerate()
    {
        h.children
            .insert(at + i, Element::leaf(name, n.to_string()));
    }
    let mut body = Element::new("MessageBody");
    for item in items {
        let mut unit = Element::new("BulkConfirmUnit");
        if item.result.processing_status() == pb::ProcessingStatus::Error {
            let code = ErrorCode::Refused(item.result.result_code());
            unit.push(item.search.echo());
            unit.put("ProcessingResultStatus", STATUS_ERROR)
                .put("ProcessingResultCode", code.as_code())
                .put(
                    "ProcessingResultMessage",
                    refusal_text(item.result.result_code()),
                );
        } else {
            let limit = item
                .search
                .limit_consent
                .then_some(ctx.executed_at.as_str());
            let mut inner = Element::new("x");
            result_elements(&mut inner, &item.result, None, limit, false);
            unit.push(item.search.echo());
            unit.children.extend(inner.children);
        }
        body.push(unit);
    }
    message(h, Some(body))
}

fn insert_after(parent: &mut Element, after: &str, e: Element) {
    let at = parent
        .children
        .iter()
        .position(|c| c.name == after)
        .map_or_else(
            || {
                parent
                    .children
                    .iter()
                    .position(|c| c.name == "MedicalInstitutionCode")
                    .map_or(0, |p| p + 1)
            },
            |p| p + 1,
        );
    parent.children.insert(at, e);
}

/// The ProcessingResultCode of a warning on success: `WOQ` and the `Warning` value in four
/// digits (`WOQ0030` certificate expiring, `WOQ0031` certificate in its grace period); `None`
/// without a warning.
pub fn warning_code(warning: i32) -> Option<String> {
    (warning != pb::Warning::None as i32).then(|| format!("WOQ{:04}", warning.clamp(0, 9999)))
}

/// A short Japanese text for a refusal's code (ErrorMessage / ProcessingResultMessage).
pub fn refusal_text(code: ResultCode) -> String {
    let what = match code {
        ResultCode::InvalidInsurerNumber => "保険者番号が不正です（桁数・検証番号）",
        ResultCode::InvalidInstitutionCode => "医療機関コードが不正です",
        ResultCode::InvalidDate => "日付が不正です（YYYYMMDD）",
        ResultCode::InvalidBranch => "枝番が不正です（2桁）",
        ResultCode::MissingField => "必須項目が未設定です",
        ResultCode::FieldTooLong => "項目が長すぎます",
        ResultCode::InvalidField => "項目に使用できない文字または組合せがあります",
        ResultCode::PatientUnknown => "該当する患者が見つかりません",
        ResultCode::ConsentMissing => "本人の同意がありません",
        ResultCode::ConsentExpired => "本人の同意の有効期限が切れています",
        ResultCode::QuotaExceeded => "照会件数の上限を超えました",
        ResultCode::TooManyBirthDates => "同一番号への照会が制限されています",
        ResultCode::RateLimited => "照会が集中しています。しばらくして再送してください",
        ResultCode::BatchUnknown => "受付番号が見つかりません",
        ResultCode::BatchTooLarge => "一括照会の件数が上限を超えています",
        ResultCode::AsOfDateOutOfRange => {
            "資格確認日が照会可能な範囲（過去365日から31日先まで）の外です"
        }
        ResultCode::TerminalUnknown | ResultCode::TerminalNotInOperation => {
            "この端末は利用できません"
        }
        ResultCode::ServiceUnavailable => "資格確認システムが利用できません",
        ResultCode::RequeryNotConsented => "再照会の同意（居宅同意取得型）がありません",
        ResultCode::RequeryPeriodEnded => {
            "再照会の期間が終了しています。マイナンバーカードで資格確認してください"
        }
        _ => "照会できませんでした",
    };
    format!("{what} ({})", code.as_str_name())
}

/// 薬剤情報: one month's dispensing at one institution, by date.
///
/// The header's `QuaInf` (the patient) carries the birth date the request gave: onshi's
/// clinical-data call answers no identity, so Name, KanaName and AdmGendCode are omitted (an
/// assumption that public parsers tolerate: they read them as empty).
pub fn medications_answer(
    ctx: &AnswerContext,
    search: &SearchInfo,
    rows: &[pb::Medication],
) -> Element {
    let mut h = header(ctx, SEGMENT_NORMAL, None);
    let mut qua = Element::new("QuaInf");
    qua.put_some("Birth", &search.birth_date);
    h.push(qua);
    let mut body = Element::new("MessageBody");
    body.put("ProcessingResultStatus", STATUS_OK)
        .push(search.echo());
    // Group by (month, institution), then by date, keeping the service's order within.
    let mut rows: Vec<&pb::Medication> = rows.iter().collect();
    rows.sort_by(|a, b| {
        (
            a.dispensed_on.get(..6),
            &a.institution_code,
            &a.dispensed_on,
        )
            .cmp(&(
                b.dispensed_on.get(..6),
                &b.institution_code,
                &b.dispensed_on,
            ))
    });
    let mut i = 0;
    while i < rows.len() {
        let month = rows[i].dispensed_on.get(..6).unwrap_or("").to_owned();
        let inst = rows[i].institution_code.clone();
        let mut m = Element::new("MeTrMonthInf");
        m.put_some("MeTrDiHCd", &inst)
            .put_some("MeTrDiHNm", &rows[i].institution_name)
            .put("MeTrMonth", &month);
        let mut dates = Element::new("DiDateInfs");
        while i < rows.len()
            && rows[i].dispensed_on.get(..6).unwrap_or("") == month
            && rows[i].institution_code == inst
        {
            let date = rows[i].dispensed_on.clone();
            let mut d = Element::new("DiDateInf");
            d.put("DiDate", &date);
            let mut drugs = Element::new("DrugInfs");
            while i < rows.len() && rows[i].dispensed_on == date && rows[i].institution_code == inst
            {
                let r = rows[i];
                let (quantity, unit) = split_quantity(&r.daily_quantity);
                let mut drug = Element::new("DrugInf");
                drug.put_some("DrugC", &r.drug_code)
                    .put_some("DrugN", &r.drug_name)
                    .put_some("Qua1", quantity)
                    .put_some("UsageN", &r.usage)
                    .put("Times", r.days.to_string())
                    .put_some("Unit", unit);
                drugs.push(drug);
                i += 1;
            }
            d.push(drugs);
            dates.push(d);
        }
        m.push(dates);
        body.push(m);
    }
    message(h, Some(body))
}

/// onshi's daily quantity ("1錠", "2.5g") as Qua1 (the number) and Unit (the rest); a quantity
/// that does not start with a number is all unit.
fn split_quantity(q: &str) -> (&str, &str) {
    let end = q
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map_or(q.len(), |(i, _)| i);
    (&q[..end], q[end..].trim())
}

/// 特定健診: the JLAC10 item codes of the measurements onshi keeps (from the MHLW 特定健診
/// data standard), with ItemName, the value and the unit. One `SpecificHealthCheckupInfo` per
/// examination.
pub const CHECKUP_ITEMS: [(&str, &str, &str); 8] = [
    ("9N001000000000001", "身長", "cm"),
    ("9N006000000000001", "体重", "kg"),
    ("9N016160100000001", "腹囲（実測）", "cm"),
    ("9N011000000000001", "BMI", "kg/m2"),
    ("9A751000000000001", "収縮期血圧（その他）", "mmHg"),
    ("9A761000000000001", "拡張期血圧（その他）", "mmHg"),
    ("3D046000001906202", "HbA1c（NGSP値）（HPLC）", "%"),
    (
        "3F077000002327101",
        "LDLコレステロール（可視吸光光度法）",
        "mg/dl",
    ),
];

///
/// The header's `QualificationsInfo` carries the request's birth date only, as for medication.
pub fn checkups_answer(ctx: &AnswerContext, search: &SearchInfo, rows: &[pb::Checkup]) -> Element {
    let mut h = header(ctx, SEGMENT_NORMAL, None);
    let mut qua = Element::new("QualificationsInfo");
    qua.put_some("Birthday", &search.birth_date);
    h.push(qua);
    let mut body = Element::new("MessageBody");
    body.put("ProcessingResultStatus", STATUS_OK)
        .push(search.echo());
    let tenth = |v: u32| format!("{}.{}", v / 10, v % 10);
    for c in rows {
        let mut info = Element::new("SpecificHealthCheckupInfo");
        info.put("EffectiveTime", &c.examined_on);
        let values = [
            tenth(c.height_cm_x10),
            tenth(c.weight_kg_x10),
            tenth(c.waist_cm_x10),
            tenth(c.bmi_x10),
            c.systolic_mmhg.to_string(),
            c.diastolic_mmhg.to_string(),
            tenth(c.hba1c_x10),
            c.ldl_mg_dl.to_string(),
        ];
        let mut items = Element::new("HealthCheckupResultAndQuestionInfos");
        for ((code, name, unit), value) in CHECKUP_ITEMS.iter().zip(values) {
            let mut i = Element::new("HealthCheckupResultAndQuestionInfo");
            i.put("ItemCode", *code)
                .put("ItemName", *name)
                .put("DataType", "PQ")
                .put("DataValue", value)
                .put("Unit", *unit);
            items.push(i);
        }
        if !c.judgement.is_empty() {
            let mut i = Element::new("HealthCheckupResultAndQuestionInfo");
            i.put("ItemCode", "9N501000000000011")
                .put("ItemName", "メタボリックシンドローム判定")
                .put("DataType", "CD")
                .put("DataValue", &c.judgement);
            items.push(i);
        }
        info.push(items);
        body.push(info);
    }
    message(h, Some(body))
}

/// YYYYMMDDHHmmss in JST of a Unix time.
pub fn jst_timestamp(unix: i64) -> String {
    let t = jst(unix);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// YYYYMMDD in JST of a Unix time.
pub fn jst_date(unix: i64) -> String {
    jst_timestamp(unix)[..8].to_owned()
}

fn jst(unix: i64) -> time::OffsetDateTime {
    let offset = time::UtcOffset::from_hms(9, 0, 0).unwrap_or(time::UtcOffset::UTC);
    time::OffsetDateTime::from_unix_timestamp(unix)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oqs::codec;

    #[test]
    fn file_names() {
        assert_eq!(
            Kind::of_file_name("OQSsiquc01req_001.xml"),
            Some(Kind::Single)
        );
        assert_eq!(
            Kind::of_file_name("oqsmuquc02REQ_1.xml"),
            Some(Kind::BulkFetch)
        );
        assert_eq!(Kind::of_file_name("ABCsiquc01req_1.xml"), None);
        assert_eq!(
            answer_file_name("OQSsiquc01req_20250101.xml"),
            "OQSsiquc01res_20250101.xml"
        );
        assert_eq!(answer_file_name("weird.xml"), "res_weird.xml");
        assert!(is_request_file_name("a.XML"));
        assert!(!is_request_file_name(".a.xml"));
        assert!(!is_request_file_name("a.xml.tmp"));
    }

    #[test]
    fn a_quantity_splits_into_number_and_unit() {
        assert_eq!(split_quantity("1錠"), ("1", "錠"));
        assert_eq!(split_quantity("2.5g"), ("2.5", "g"));
        assert_eq!(split_quantity("適量"), ("", "適量"));
    }

    #[test]
    fn jst_formatting() {
        // 2025-01-01T00:00:00Z is 09:00 in Japan.
        assert_eq!(jst_timestamp(1_735_689_600), "20250101090000");
        assert_eq!(jst_date(1_735_689_600 - 9 * 3600 - 1), "20241231");
    }

    #[test]
    fn a_single_request_is_read_and_its_faults_named() {
        let xml = "<XmlMsg><MessageHeader><QualificationConfirmationDate>20250401</QualificationConfirmationDate>\
            <MedicalInstitutionCode>1340123452</MedicalInstitutionCode><ArbitraryFileIdentifier>abc</ArbitraryFileIdentifier>\
            <CharacterCodeIdentifier>0</CharacterCodeIdentifier></MessageHeader><MessageBody><QualificationConfirmSearchInfo>\
            <InsurerNumber>01130012</InsurerNumber><InsuredCardSymbol>髙１</InsuredCardSymbol>\
            <InsuredIdentificationNumber>901</InsuredIdentificationNumber><InsuredBranchNumber>00</InsuredBranchNumber>\
            <Birthdate>19800229</Birthdate><LimitApplicationCertificateRelatedConsFlg>1</LimitApplicationCertificateRelatedConsFlg>\
            </QualificationConfirmSearchInfo></MessageBody></XmlMsg>";
        let root = codec::parse(xml).unwrap();
        let Request::Single { header, search } = read_request(Kind::Single, &root).unwrap() else {
            panic!()
        };
        assert_eq!(header.answer_charset, Some(Charset::Utf8));
        assert_eq!(header.confirmation_date.as_deref(), Some("20250401"));
        assert_eq!(search.symbol, "髙１");
        assert!(search.limit_consent);
        let missing = xml.replace("<Birthdate>19800229</Birthdate>", "");
        let (f, h) = read_request(Kind::Single, &codec::parse(&missing).unwrap()).unwrap_err();
        assert_eq!(f.code, ErrorCode::MissingField);
        assert_eq!(h.arbitrary_file_identifier, "abc");
        let bad_date = xml.replace("20250401", "2025-04-01");
        let (f, _) = read_request(Kind::Single, &codec::parse(&bad_date).unwrap()).unwrap_err();
        assert_eq!(f.code, ErrorCode::InvalidField);
        let (f, _) = read_request(Kind::Single, &codec::parse("<Other/>").unwrap()).unwrap_err();
        assert_eq!(f.code, ErrorCode::Malformed);
    }

    /// 電子処方箋: the patient's choice is PrescriptionIssueSelect (1 electronic, 2 paper),
    /// right after QualificationValidity; not asked, the element is absent.
    #[test]
    fn the_prescription_choice_is_prescription_issue_select() {
        let ctx = AnswerContext {
            executed_at: "20250101090000".into(),
            confirmation_date: "20250101".into(),
            medical_institution_code: "1310156789".into(),
            arbitrary_file_identifier: String::new(),
            reference_classification: "1",
            charset: Charset::ShiftJis,
        };
        for (choice, expected) in [
            (pb::PrescriptionIssue::Electronic, Some("1")),
            (pb::PrescriptionIssue::Paper, Some("2")),
            (pb::PrescriptionIssue::Unspecified, None),
        ] {
            let result = pb::ConfirmationResult {
                validity: 1,
                prescription_issue: choice as i32,
                ..Default::default()
            };
            let a = confirmation_answer(&ctx, &result, None, None);
            let body = a.child("MessageBody").unwrap();
            assert_eq!(
                body.text_of("PrescriptionIssueSelect"),
                expected,
                "{choice:?}"
            );
            let xml = String::from_utf8(codec::write(&a, Charset::Utf8).bytes).unwrap();
            if expected.is_some() {
                let validity = xml.find("<QualificationValidity>").unwrap();
                let select = xml.find("<PrescriptionIssueSelect>").unwrap();
                assert!(validity < select, "{xml}");
            }
        }
    }

    /// Every element path of a document with its text, read with quick-xml directly (not our
    /// codec), as a reception system's parser walks it.
    fn paths(xml: &str) -> Vec<(String, String)> {
        let mut reader = quick_xml::Reader::from_str(xml);
        let mut stack: Vec<String> = Vec::new();
        let mut out = Vec::new();
        loop {
            match reader.read_event().unwrap() {
                quick_xml::events::Event::Start(e) => {
                    stack.push(String::from_utf8(e.local_name().as_ref().to_vec()).unwrap())
                }
                quick_xml::events::Event::End(_) => {
                    stack.pop();
                }
                quick_xml::events::Event::Text(t) => {
                    let text = t.decode().unwrap().trim().to_owned();
                    if !text.is_empty() {
                        out.push((stack.join("/"), text));
                    }
                }
                quick_xml::events::Event::Eof => break,
                _ => {}
            }
        }
        out
    }

    /// 医療扶助: the tickets are ResultOfQualificationConfirmation/PublicExpenseResultList/
    /// MedicalTicketInfo with the element names the public parsers read (TicketType,
    /// MedicalTicketValidDate, ..., SelfPayAmount), in Shift_JIS as the real files; an answer
    /// without a registered ticket carries QualificationValidity 6 and no list.
    #[test]
    fn medical_aid_tickets_are_public_expense_result_list_medical_ticket_info() {
        let ctx = AnswerContext {
            executed_at: "20261203090000".into(),
            confirmation_date: "20261203".into(),
            medical_institution_code: "1310156789".into(),
            arbitrary_file_identifier: String::new(),
            reference_classification: "1",
            charset: Charset::ShiftJis,
        };
        let ticket = |kind: pb::MedicalTicketKind, code: &str, here: bool| {
            let mut t = pb::MedicalTicket {
                issue_number: "20261201".into(),
                treatment_month: "202612".into(),
                valid_from: "20261201".into(),
                valid_until: "20261231".into(),
                designated_institution_code: code.into(),
                designated_institution_name: "さくら内科クリニック".into(),
                designated_here: here,
                self_pay_yen: 2300,
                ..Default::default()
            };
            t.set_kind(kind);
            t
        };
        let q = pb::Qualification {
            insured_card_classification: "A1".into(),
            insurer_number: "12131004".into(),
            number: "0000123".into(),
            ..Default::default()
        };
        let result = pb::ConfirmationResult {
            validity: 1,
            qualifications: vec![q.clone()],
            medical_tickets: vec![
                ticket(pb::MedicalTicketKind::Medical, "1310156789", true),
                ticket(pb::MedicalTicketKind::Dispensing, "1340123452", false),
            ],
            ..Default::default()
        };
        let a = confirmation_answer(&ctx, &result, None, None);
        let bytes = codec::write(&a, Charset::ShiftJis).bytes;
        let (xml, _, _) = encoding_rs::SHIFT_JIS.decode(&bytes);
        let found = paths(&xml);
        let at = |suffix: &str| -> Vec<&str> {
            found
                .iter()
                .filter(|(p, _)| p.ends_with(suffix))
                .map(|(_, t)| t.as_str())
                .collect()
        };
        let info = "MessageBody/ResultList/ResultOfQualificationConfirmation/PublicExpenseResultList/MedicalTicketInfo/";
        assert_eq!(at(&format!("{info}TicketType")), ["1", "2"], "{xml}");
        assert_eq!(at(&format!("{info}IssueNumber")), ["20261201", "20261201"]);
        assert_eq!(
            at(&format!("{info}MedicalTreatmentMonth")),
            ["202612", "202612"]
        );
        assert_eq!(at(&format!("{info}MedicalTicketValidDate"))[0], "20261201");
        assert_eq!(
            at(&format!("{info}MedicalTicketExpirationDate"))[0],
            "20261231"
        );
        assert_eq!(
            at(&format!("{info}DesignatedMedicalInstitutionCode")),
            ["1310156789", "1340123452"]
        );
        assert_eq!(
            at(&format!("{info}DesignatedMedicalInstitutionFlag")),
            ["1", "0"]
        );
        assert_eq!(
            at(&format!("{info}DesignatedMedicalInstitutionName"))[0],
            "さくら内科クリニック"
        );
        assert_eq!(at(&format!("{info}SelfPayAmount")), ["2300", "2300"]);
        assert_eq!(
            at("ResultOfQualificationConfirmation/InsuredCardClassification"),
            ["A1"]
        );
        assert_eq!(at("MessageBody/QualificationValidity"), ["1"]);
        // The list comes after InsurerName and before the consent flags (the public order).
        let list = xml.find("<PublicExpenseResultList>").unwrap();
        assert!(xml.find("<InsuredCardClassification>").unwrap() < list);

        // 有効（未登録）: validity 6, no list.
        let unregistered = pb::ConfirmationResult {
            validity: 6,
            qualifications: vec![q],
            ..Default::default()
        };
        let a = confirmation_answer(&ctx, &unregistered, None, None);
        let xml = String::from_utf8(codec::write(&a, Charset::Utf8).bytes).unwrap();
        let found = paths(&xml);
        assert!(found
            .iter()
            .any(|(p, t)| p.ends_with("MessageBody/QualificationValidity") && t == "6"));
        assert!(!xml.contains("PublicExpenseResultList"), "{xml}");
        // An insured person's answer never has the list, even with tickets in the result.
        let insured = pb::ConfirmationResult {
            validity: 1,
            qualifications: vec![pb::Qualification {
                insured_card_classification: "01".into(),
                ..Default::default()
            }],
            medical_tickets: result.medical_tickets.clone(),
            ..Default::default()
        };
        let a = confirmation_answer(&ctx, &insured, None, None);
        let xml = String::from_utf8(codec::write(&a, Charset::Utf8).bytes).unwrap();
        assert!(!xml.contains("MedicalTicketInfo"), "{xml}");
    }

    #[test]
    fn the_abnormal_segment_is_the_one_constant() {
        let ctx = AnswerContext {
            executed_at: "20250101090000".into(),
            confirmation_date: "20250101".into(),
            medical_institution_code: "1340123452".into(),
            arbitrary_file_identifier: String::new(),
            reference_classification: "2",
            charset: Charset::ShiftJis,
        };
        let a = failure_answer(&ctx, &Failure::new(ErrorCode::Malformed, "x"), None);
        let h = a.child("MessageHeader").unwrap();
        assert_eq!(h.text_of("SegmentOfResult"), Some(SEGMENT_ABNORMAL));
        assert_eq!(h.text_of("ErrorCode"), Some("EOQ1001"));
        // Absent elements are omitted, not emptied.
        assert!(h.child("ArbitraryFileIdentifier").is_none());
        assert!(a.child("MessageBody").is_none());
        assert_eq!(
            ErrorCode::Refused(ResultCode::InvalidInsurerNumber).as_code(),
            "EOQ2011"
        );
    }

    #[test]
    fn a_warning_on_success_is_the_processing_result_code_and_message() {
        let ctx = AnswerContext {
            executed_at: "20261203090000".into(),
            confirmation_date: "20261203".into(),
            medical_institution_code: "1340123452".into(),
            arbitrary_file_identifier: String::new(),
            reference_classification: "1",
            charset: Charset::ShiftJis,
        };
        let mut result = pb::ConfirmationResult {
            validity: 1,
            warning_message: "電子証明書の有効期限が切れています".into(),
            ..Default::default()
        };
        let plain = confirmation_answer(&ctx, &result, None, None);
        let body = plain.child("MessageBody").unwrap();
        assert_eq!(body.text_of("ProcessingResultStatus"), Some(STATUS_OK));
        assert!(body.child("ProcessingResultCode").is_none());
        for (warning, code) in [
            (pb::Warning::CertificateExpiring, "WOQ0030"),
            (pb::Warning::CertificateInGrace, "WOQ0031"),
        ] {
            result.set_warning(warning);
            let a = confirmation_answer(&ctx, &result, None, None);
            let body = a.child("MessageBody").unwrap();
            assert_eq!(body.text_of("ProcessingResultStatus"), Some(STATUS_OK));
            assert_eq!(body.text_of("ProcessingResultCode"), Some(code));
            assert_eq!(
                body.text_of("ProcessingResultMessage"),
                Some("電子証明書の有効期限が切れています")
            );
            assert_eq!(
                a.child("MessageHeader").unwrap().text_of("SegmentOfResult"),
                Some("1")
            );
        }
    }

    /// Every element name in `e` and below.
    fn element_names(e: &Element, into: &mut std::collections::BTreeSet<String>) {
        into.insert(e.name.clone());
        for c in &e.children {
            element_names(c, into);
        }
    }

    /// The public layout has no element for the 資格確認書 or the 資格情報のお知らせ
    /// (../shared/spec/reception-files.md: "no public code for 資格確認書 was found"), so
    /// the document the service reports is not carried: an answer with one is byte for byte
    /// the answer without, and every element of it, single or bulk, is one of the public
    /// layout's (docs/oqs-files.md "What the answers do not carry").
    #[test]
    fn the_insurance_document_is_not_carried_and_answers_stay_within_the_public_layout() {
        const PUBLIC: &[&str] = &[
            "XmlMsg",
            "MessageHeader",
            "MessageBody",
            "ProcessExecutionTime",
            "QualificationConfirmationDate",
            "MedicalInstitutionCode",
            "ArbitraryFileIdentifier",
            "ReceptionNumber",
            "ReceptionDateTime",
            "ReferenceClassification",
            "SegmentOfResult",
            "ErrorCode",
            "ErrorMessage",
            "CharacterCodeIdentifier",
            "NumberOfProcessingResult",
            "NumberOfNormalProcessing",
            "NumberOfError",
            "ProcessingResultStatus",
            "ProcessingResultCode",
            "ProcessingResultMessage",
            "QualificationValidity",
            "PrescriptionIssueSelect",
            "QualificationConfirmSearchInfo",
            "InsurerNumber",
            "InsuredCardSymbol",
            "InsuredIdentificationNumber",
            "InsuredBranchNumber",
            "Birthdate",
            "LimitApplicationCertificateRelatedConsFlg",
            "ArbitraryIdentifier",
            "ResultList",
            "ResultOfQualificationConfirmation",
            "InsuredCardClassification",
            "PersonalFamilyClassification",
            "InsuredName",
            "Name",
            "NameOfOther",
            "NameKana",
            "NameOfOtherKana",
            "Sex1",
            "Sex2",
            "Address",
            "PostNumber",
            "InsuredCertificateIssuanceDate",
            "InsuredCardValidDate",
            "InsuredCardExpirationDate",
            "QualificationDate",
            "DisqualificationDate",
            "InsuredPartialContributionRatio",
            "PreschoolClassification",
            "ReasonOfLoss",
            "InsurerName",
            "ElderlyRecipientCertificateInfo",
            "ElderlyRecipientCertificateDate",
            "ElderlyRecipientValidStartDate",
            "ElderlyRecipientValidEndDate",
            "ElderlyRecipientContributionRatio",
            "LimitApplicationCertificateRelatedConsTime",
            "LimitApplicationCertificateRelatedInfo",
            "LimitApplicationCertificateClassification",
            "LimitApplicationCertificateClassificationFlag",
            "LimitApplicationCertificateValidStartDate",
            "LimitApplicationCertificateValidEndDate",
            "SpecificDiseasesCertificateRelatedConsFlg",
            "SpecificDiseasesCertificateRelatedConsTime",
            "SpecificDiseasesCertificateList",
            "SpecificDiseasesCertificateInfo",
            "SpecificDiseasesDiseaseCategory",
            "SpecificDiseasesValidStartDate",
            "SpecificDiseasesValidEndDate",
            "SpecificDiseasesSelfPay",
            "BulkConfirmUnit",
            "ReferenceNumber",
        ];
        // The consent blocks for checkups, medication, diagnosis and operations.
        let consent = |n: &str| {
            [
                "SpecificHealthCheckupsInfo",
                "PharmacistsInfo",
                "DiagnosisInfo",
                "OperationInfo",
            ]
            .iter()
            .any(|p| {
                ["ConsFlg", "ConsTime", "AvailableTime"]
                    .iter()
                    .any(|s| n == format!("{p}{s}"))
            })
        };
        let ctx = AnswerContext {
            executed_at: "20261203090000".into(),
            confirmation_date: "20261203".into(),
            medical_institution_code: "1340123452".into(),
            arbitrary_file_identifier: "F1".into(),
            reference_classification: "2",
            charset: Charset::ShiftJis,
        };
        let given = pb::ConsentRecord {
            given: true,
            given_at: Some(prost_types::Timestamp {
                seconds: 1_796_000_000,
                nanos: 0,
            }),
            valid_until: Some(prost_types::Timestamp {
                seconds: 1_796_086_400,
                nanos: 0,
            }),
        };
        let plain = pb::ConfirmationResult {
            validity: 1,
            as_of_date: "20261203".into(),
            prescription_issue: pb::PrescriptionIssue::Electronic as i32,
            qualifications: vec![pb::Qualification {
                insured_card_classification: "01".into(),
                insurer_number: "39131016".into(),
                number: "12345678".into(),
                name: "山田　花子".into(),
                sex: 2,
                birth_date: "19450101".into(),
                copay_ratio: "010".into(),
                elderly: Some(pb::ElderlyRecipientCertificate {
                    valid_from: "20250801".into(),
                    valid_until: "20260731".into(),
                    copay_ratio: "020".into(),
                }),
                high_cost_limit: Some(pb::HighCostLimit {
                    bracket: "A03".into(),
                    certificate_type: "01".into(),
                    ..Default::default()
                }),
                specific_diseases: vec![pb::SpecificDiseaseCertificate {
                    category: 1,
                    monthly_cap_yen: 10_000,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            consents: Some(pb::ConsentEcho {
                medication: Some(given),
                checkup: Some(given),
                clinical: Some(given),
                surgery: Some(given),
                comprehensive: true,
            }),
            ..Default::default()
        };
        let mut with_document = plain.clone();
        let mut doc = pb::InsuranceDocument {
            valid_from: "20241202".into(),
            valid_until: "20260731".into(),
            valid_on_as_of_date: false,
            ..Default::default()
        };
        doc.set_kind(pb::DocumentKind::ShikakuKakuninsho);
        with_document.insurance_document = Some(doc);
        let search = SearchInfo {
            insurer_number: "39131016".into(),
            symbol: String::new(),
            number: "12345678".into(),
            branch: String::new(),
            birth_date: "19450101".into(),
            limit_consent: true,
            arbitrary_identifier: "A1".into(),
            treatment: String::new(),
            requery: false,
        };
        let answers = |r: &pb::ConfirmationResult| {
            [
                confirmation_answer(&ctx, r, Some(&search), Some("20261203090000")),
                confirmation_answer(&ctx, r, None, Some("20261203090000")),
                bulk_result_answer(
                    &ctx,
                    "R1",
                    &[BulkItem {
                        search: search.clone(),
                        result: r.clone(),
                    }],
                ),
            ]
        };
        for (a, b) in answers(&plain).iter().zip(answers(&with_document).iter()) {
            let (a, b) = (
                codec::write(a, Charset::Utf8).bytes,
                codec::write(b, Charset::Utf8).bytes,
            );
            assert_eq!(a, b, "the document changed the answer");
            let xml = String::from_utf8(b).unwrap();
            assert!(!xml.contains("20241202"), "{xml}");
        }
        let mut names = std::collections::BTreeSet::new();
        for a in answers(&with_document) {
            element_names(&a, &mut names);
        }
        let outside: Vec<&String> = names
            .iter()
            .filter(|n| !PUBLIC.contains(&n.as_str()) && !consent(n))
            .collect();
        assert!(outside.is_empty(), "not in the public layout: {outside:?}");
        // The answers did carry the qualification, the limit and the consents.
        for n in [
            "ElderlyRecipientCertificateInfo",
            "SpecificDiseasesSelfPay",
            "PharmacistsInfoConsFlg",
        ] {
            assert!(names.contains(n), "{n} missing: {names:?}");
        }
    }
}
