//! The reception computer's side of the file interface (`reader-agent oqs`), for the tests:
//! the agent as a child process serving a folder, request files dropped into `req/` the way
//! reception software does (written under another name, then renamed in), answers awaited
//! through inotify, and an **independent reader** of the answers: `roxmltree` (not the
//! agent's quick-xml) after decoding by the file's own declaration, checked against a field
//! list transcribed from public reception software ([`FIELDS`], each citing the file that
//! reads it), so a renamed element or a code outside the public tables fails a test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

use crate::{bin, spawn_until_ready, wait_for_line, Guard, Result};

/// `reader-agent oqs` serving `dir` as a terminal.
#[derive(Debug)]
pub struct OqsAgent {
    pub guard: Guard,
    pub lines: mpsc::Receiver<String>,
    pub dir: PathBuf,
}

impl OqsAgent {
    /// Starts the agent (answers in Shift_JIS unless asked) and waits for its "serving" line.
    pub fn start(config: &Path, dir: &Path, service_url: &str, extra: &[&str]) -> Result<Self> {
        let mut cmd = Command::new(bin("reader-agent")?);
        cmd.arg("oqs")
            .arg("--config")
            .arg(config)
            .arg("--dir")
            .arg(dir)
            .args(["--service", service_url])
            .args(extra);
        let (guard, lines, _) = spawn_until_ready(cmd, "reader-agent oqs", "oqs: serving ")?;
        Ok(Self {
            guard,
            lines,
            dir: dir.to_owned(),
        })
    }

    /// Waits (bounded) for a log line starting with `prefix`.
    pub fn wait_line(&self, prefix: &str, timeout: Duration) -> Result<String> {
        wait_for_line(&self.lines, prefix, timeout, "reader-agent oqs")
    }

    /// Kills the agent with SIGKILL and reaps it.
    pub fn kill_hard(&mut self) -> Result<()> {
        let pid = self.guard.id().ok_or("the agent has already stopped")?;
        crate::send_signal(pid, rustix::process::Signal::KILL)?;
        self.guard.wait(Duration::from_secs(10)).map(|_| ())
    }
}

/// Writes a request as reception software does: under a hidden temporary name in the root,
/// then renamed into `req/` (so it appears whole). Returns the instant of the rename.
pub fn drop_request(dir: &Path, name: &str, bytes: &[u8]) -> Result<Instant> {
    std::fs::create_dir_all(dir.join("req")).map_err(|e| e.to_string())?;
    let temp = dir.join(format!(".{name}.writing"));
    std::fs::write(&temp, bytes).map_err(|e| format!("write {}: {e}", temp.display()))?;
    let at = Instant::now();
    std::fs::rename(&temp, dir.join("req").join(name)).map_err(|e| format!("rename: {e}"))?;
    Ok(at)
}

/// The answer file's name for a request's.
pub fn answer_name(request: &str) -> String {
    match request.to_ascii_lowercase().find("req") {
        Some(at) => format!("{}res{}", &request[..at], &request[at + 3..]),
        None => format!("res_{request}"),
    }
}

/// Watches `res/` (or another folder) for files appearing by name, through inotify.
#[derive(Debug)]
pub struct Arrivals {
    folder: PathBuf,
    rx: mpsc::Receiver<(PathBuf, Instant)>,
    _watcher: notify::RecommendedWatcher,
    seen: Vec<(PathBuf, Instant)>,
}

impl Arrivals {
    pub fn watch(folder: &Path) -> Result<Self> {
        std::fs::create_dir_all(folder).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
            if let Ok(e) = e {
                let now = Instant::now();
                if matches!(
                    e.kind,
                    notify::EventKind::Create(_) | notify::EventKind::Modify(_)
                ) {
                    for p in e.paths {
                        let _ = tx.send((p, now));
                    }
                }
            }
        })
        .map_err(|e| e.to_string())?;
        watcher
            .watch(folder, RecursiveMode::NonRecursive)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            folder: folder.to_owned(),
            rx,
            _watcher: watcher,
            seen: Vec::new(),
        })
    }

    /// Waits (bounded) until `name` exists in the folder; returns its bytes and the instant
    /// it was seen appearing (or now, when it was already there).
    pub fn wait(&mut self, name: &str, timeout: Duration) -> Result<(Vec<u8>, Instant)> {
        let path = self.folder.join(name);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((_, at)) = self.seen.iter().find(|(p, _)| *p == path) {
                if let Ok(b) = std::fs::read(&path) {
                    return Ok((b, *at));
                }
            }
            if path.exists() && !self.seen.iter().any(|(p, _)| *p == path) {
                if let Ok(b) = std::fs::read(&path) {
                    return Ok((b, Instant::now()));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no {} within {timeout:?}", path.display()));
            }
            match self.rx.recv_timeout(left.min(Duration::from_millis(500))) {
                Ok((p, at)) => {
                    if !self.seen.iter().any(|(q, _)| *q == p) {
                        self.seen.push((p, at));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err("watcher gone".into()),
            }
        }
    }
}

/// Waits (bounded) for the one face file of confirmation `id` in `dir/face/` and checks its
/// name: `OQSsiquc01res_face_<id>_<YYYYMMDDHHmmss>.xml`, the pattern public reception tools
/// match; fails if another file is there. Returns the file's bytes.
pub fn wait_face_file(dir: &Path, id: &str, timeout: Duration) -> Result<Vec<u8>> {
    let face = dir.join("face");
    let deadline = Instant::now() + timeout;
    let name = loop {
        let names: Vec<String> = std::fs::read_dir(&face)
            .map_err(|e| format!("{}: {e}", face.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        match names.as_slice() {
            [] if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            [] => {
                return Err(format!(
                    "no face file in {} within {timeout:?}",
                    face.display()
                ))
            }
            [one] => break one.clone(),
            more => return Err(format!("more than one face file: {more:?}")),
        }
    };
    let prefix = format!("OQSsiquc01res_face_{id}_");
    let stamp = name
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(".xml"))
        .ok_or_else(|| format!("{name} is not named {prefix}<YYYYMMDDHHmmss>.xml"))?;
    if stamp.len() != 14 || !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{name}: the time is not YYYYMMDDHHmmss"));
    }
    Arrivals::watch(&face)?
        .wait(&name, Duration::from_secs(5))
        .map(|(b, _)| b)
}

// ---- the independent reader -------------------------------------------------------------------

/// An answer decoded by its own declaration and parsed by roxmltree.
#[derive(Debug)]
pub struct Answer {
    pub text: String,
    pub encoding: String,
}

/// Decodes an answer's bytes by its XML declaration (Shift_JIS is read as CP932, as Windows
/// does), refusing bytes invalid in that encoding.
pub fn decode_answer(bytes: &[u8]) -> Result<Answer> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(100)]).into_owned();
    let encoding = head
        .split("encoding=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .ok_or("no encoding in the declaration")?
        .to_owned();
    let text = match encoding.as_str() {
        "Shift_JIS" => {
            let (t, had_errors) = encoding_rs::SHIFT_JIS.decode_without_bom_handling(bytes);
            if had_errors {
                return Err("bytes invalid in Shift_JIS".into());
            }
            t.into_owned()
        }
        "UTF-8" => String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())?,
        other => return Err(format!("unexpected encoding {other}")),
    };
    Ok(Answer { text, encoding })
}

/// How a field's value must look.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// Exactly one of these codes.
    OneOf(&'static [&'static str]),
    /// YYYYMMDD.
    Date,
    /// YYYYMM.
    Month,
    /// YYYYMMDDHHmmss.
    Timestamp,
    /// Only ASCII digits, this many (0: any number of them).
    Digits(usize),
    /// A drug code: the 9-digit レセプト電算 code public parsers expect, or the 12-character YJ
    /// code onshi's synthetic drug data carries (a known deviation, docs/oqs-files.md).
    DrugCode,
    /// A JLAC10 result code: 17 upper-case letters and digits (特定健診 data standard).
    Jlac10,
    /// Half-width katakana, spaces and the half-width marks.
    HalfWidthKana,
    /// A decimal number.
    Decimal,
    /// Non-empty text.
    Text,
}

/// An element public reception software reads, the values it accepts, and where it is read.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// The element's path below `XmlMsg`, `*` standing for the repeated container of a result
    /// (`MessageBody/ResultList` in single answers, `MessageBody/BulkConfirmUnit` in bulk ones).
    pub path: &'static str,
    pub rule: Rule,
    pub source: &'static str,
}

const QCBI_RES: &str = "Sotatek-ChinhVu/smart-test UseCase/XmlDTD/QCBIXmlMsgResponse (XmlSerializer classes of OQSsiquc01res)";
const QCBID_RES: &str =
    "Sotatek-ChinhVu/smart-test UseCase/XmlDTD/QCBIDXmlMsgResponse (OQSmuquc02res)";
const OQSDRUG_BULK: &str = "YUKI-ENT/OQSDrug2 OQSDrug/BulkQualificationService.cs (ReadUploadResultAsync, ImportResultAsync)";
const OQSDRUG_BULK_REQ: &str =
    "YUKI-ENT/OQSDrug2 OQSDrug/BulkQualificationService.cs (CreateRequestAsync: MedicalTreatmentFlag 2 訪問, 3 オンライン)";
const OQSDRUG_FACE: &str = "YUKI-ENT/OQSDrug2 OQSDrug/QualificationFaceExporter.cs";
const OQSDRUG_FORM: &str =
    "YUKI-ENT/OQSDrug2 OQSDrug/Form1.cs (ProcessDrugInfoAsync, ProcessTKKAsync)";

/// The field list of ../shared/spec/reception-files.md (MessageBody: PrescriptionIssueSelect 1
/// 電子処方箋, 2 紙).
const RECEPTION_SPEC: &str = "../shared/spec/reception-files.md (MessageBody)";

const VALIDITY: &[&str] = &["1", "2", "3", "4", "5"];
const CARD_CLASS: &[&str] = &["01", "02", "03", "04", "05", "06", "07", "A1"];
const FLAGS: &[&str] = &[
    "A01", "A02", "A03", "A04", "A05", "A06", "B01", "B02", "B03", "B04", "B05", "B06", "B07",
    "B08", "B09", "B10",
];

/// The field list. Header and body fields, the result's, the bulk and clinical shapes.
pub const FIELDS: &[Field] = &[
    Field { path: "MessageHeader/ProcessExecutionTime", rule: Rule::Timestamp, source: QCBI_RES },
    Field { path: "MessageHeader/QualificationConfirmationDate", rule: Rule::Date, source: QCBI_RES },
    Field { path: "MessageHeader/MedicalInstitutionCode", rule: Rule::Digits(10), source: QCBI_RES },
    Field { path: "MessageHeader/ArbitraryFileIdentifier", rule: Rule::Text, source: QCBI_RES },
    Field { path: "MessageHeader/ReferenceClassification", rule: Rule::OneOf(&["1", "2"]), source: QCBI_RES },
    Field { path: "MessageHeader/SegmentOfResult", rule: Rule::OneOf(&["1", "2", "9"]), source: OQSDRUG_BULK },
    Field { path: "MessageHeader/ErrorCode", rule: Rule::Text, source: QCBI_RES },
    Field { path: "MessageHeader/ErrorMessage", rule: Rule::Text, source: QCBI_RES },
    Field { path: "MessageHeader/CharacterCodeIdentifier", rule: Rule::OneOf(&["0", "1"]), source: QCBI_RES },
    Field { path: "MessageHeader/ReceptionNumber", rule: Rule::Text, source: QCBID_RES },
    Field { path: "MessageHeader/NumberOfProcessingResult", rule: Rule::Digits(0), source: QCBID_RES },
    Field { path: "MessageHeader/NumberOfNormalProcessing", rule: Rule::Digits(0), source: QCBID_RES },
    Field { path: "MessageHeader/NumberOfError", rule: Rule::Digits(0), source: QCBID_RES },
    Field { path: "MessageHeader/QuaInf/Birth", rule: Rule::Date, source: OQSDRUG_FORM },
    Field { path: "MessageHeader/QualificationsInfo/Birthday", rule: Rule::Date, source: OQSDRUG_FORM },
    Field { path: "MessageBody/ProcessingResultStatus", rule: Rule::OneOf(&["1", "2"]), source: OQSDRUG_BULK },
    Field { path: "MessageBody/ProcessingResultCode", rule: Rule::Text, source: OQSDRUG_BULK },
    Field { path: "MessageBody/ProcessingResultMessage", rule: Rule::Text, source: OQSDRUG_BULK },
    Field { path: "MessageBody/QualificationValidity", rule: Rule::OneOf(VALIDITY), source: QCBI_RES },
    Field { path: "MessageBody/PrescriptionIssueSelect", rule: Rule::OneOf(&["1", "2"]), source: RECEPTION_SPEC },
    Field { path: "MessageBody/ReceptionNumber", rule: Rule::Text, source: OQSDRUG_BULK },
    Field { path: "MessageBody/ReceptionDateTime", rule: Rule::Timestamp, source: QCBID_RES },
    // The echo (in single answers under MessageBody, in bulk ones under BulkConfirmUnit).
    Field { path: "+QualificationConfirmSearchInfo/InsurerNumber", rule: Rule::Text, source: QCBID_RES },
    Field { path: "+QualificationConfirmSearchInfo/InsuredCardSymbol", rule: Rule::Text, source: QCBID_RES },
    Field { path: "+QualificationConfirmSearchInfo/InsuredIdentificationNumber", rule: Rule::Text, source: QCBID_RES },
    Field { path: "+QualificationConfirmSearchInfo/InsuredBranchNumber", rule: Rule::Text, source: QCBID_RES },
    Field { path: "+QualificationConfirmSearchInfo/Birthdate", rule: Rule::Text, source: QCBID_RES },
    Field { path: "+QualificationConfirmSearchInfo/LimitApplicationCertificateRelatedConsFlg", rule: Rule::OneOf(&["0", "1"]), source: QCBID_RES },
    Field { path: "+QualificationConfirmSearchInfo/ArbitraryIdentifier", rule: Rule::Text, source: QCBID_RES },
    // Written by public reception software in home-visit and online-care bulk requests; its echo
    // in the answer is onshi's assumption (docs/oqs-files.md).
    Field { path: "+QualificationConfirmSearchInfo/MedicalTreatmentFlag", rule: Rule::OneOf(&["1", "2", "3"]), source: OQSDRUG_BULK_REQ },
    Field { path: "MessageBody/BulkConfirmUnit/ProcessingResultStatus", rule: Rule::OneOf(&["1", "2"]), source: QCBID_RES },
    Field { path: "MessageBody/BulkConfirmUnit/ProcessingResultCode", rule: Rule::Text, source: QCBID_RES },
    Field { path: "MessageBody/BulkConfirmUnit/ProcessingResultMessage", rule: Rule::Text, source: QCBID_RES },
    Field { path: "MessageBody/BulkConfirmUnit/QualificationValidity", rule: Rule::OneOf(VALIDITY), source: QCBID_RES },
    // ResultOfQualificationConfirmation.
    Field { path: "*/InsuredCardClassification", rule: Rule::OneOf(CARD_CLASS), source: QCBID_RES },
    Field { path: "*/InsurerNumber", rule: Rule::Digits(0), source: QCBID_RES },
    Field { path: "*/InsuredCardSymbol", rule: Rule::Text, source: QCBID_RES },
    Field { path: "*/InsuredIdentificationNumber", rule: Rule::Text, source: QCBID_RES },
    Field { path: "*/InsuredBranchNumber", rule: Rule::Digits(2), source: QCBID_RES },
    Field { path: "*/PersonalFamilyClassification", rule: Rule::OneOf(&["1", "2"]), source: QCBID_RES },
    Field { path: "*/InsuredName", rule: Rule::Text, source: QCBID_RES },
    Field { path: "*/Name", rule: Rule::Text, source: QCBID_RES },
    Field { path: "*/NameKana", rule: Rule::HalfWidthKana, source: QCBID_RES },
    Field { path: "*/Sex1", rule: Rule::OneOf(&["1", "2", "3"]), source: QCBID_RES },
    Field { path: "*/Birthdate", rule: Rule::Date, source: QCBID_RES },
    Field { path: "*/Address", rule: Rule::Text, source: QCBID_RES },
    Field { path: "*/PostNumber", rule: Rule::Text, source: QCBID_RES },
    Field { path: "*/InsuredCertificateIssuanceDate", rule: Rule::Date, source: QCBID_RES },
    Field { path: "*/InsuredCardValidDate", rule: Rule::Date, source: QCBID_RES },
    Field { path: "*/InsuredCardExpirationDate", rule: Rule::Date, source: QCBID_RES },
    Field { path: "*/QualificationDate", rule: Rule::Date, source: OQSDRUG_FACE },
    Field { path: "*/DisqualificationDate", rule: Rule::Date, source: OQSDRUG_FACE },
    Field { path: "*/InsuredPartialContributionRatio", rule: Rule::OneOf(&["010", "020", "030"]), source: QCBID_RES },
    Field { path: "*/PreschoolClassification", rule: Rule::OneOf(&["1"]), source: QCBID_RES },
    Field { path: "*/ReasonOfLoss", rule: Rule::OneOf(&["01", "02", "03", "99"]), source: QCBID_RES },
    Field { path: "*/InsurerName", rule: Rule::Text, source: QCBID_RES },
    Field { path: "*/ElderlyRecipientCertificateInfo/ElderlyRecipientValidStartDate", rule: Rule::Date, source: QCBID_RES },
    Field { path: "*/ElderlyRecipientCertificateInfo/ElderlyRecipientValidEndDate", rule: Rule::Date, source: QCBID_RES },
    Field { path: "*/ElderlyRecipientCertificateInfo/ElderlyRecipientContributionRatio", rule: Rule::OneOf(&["020", "030"]), source: QCBID_RES },
    Field { path: "*/LimitApplicationCertificateRelatedConsFlg", rule: Rule::OneOf(&["0", "1"]), source: QCBI_RES },
    Field { path: "*/LimitApplicationCertificateRelatedConsTime", rule: Rule::Timestamp, source: QCBI_RES },
    Field { path: "*/LimitApplicationCertificateRelatedInfo/LimitApplicationCertificateClassification", rule: Rule::OneOf(&["01", "02", "03"]), source: QCBI_RES },
    Field { path: "*/LimitApplicationCertificateRelatedInfo/LimitApplicationCertificateClassificationFlag", rule: Rule::OneOf(FLAGS), source: QCBI_RES },
    Field { path: "*/LimitApplicationCertificateRelatedInfo/LimitApplicationCertificateValidStartDate", rule: Rule::Date, source: QCBI_RES },
    Field { path: "*/LimitApplicationCertificateRelatedInfo/LimitApplicationCertificateValidEndDate", rule: Rule::Date, source: QCBI_RES },
    Field { path: "*/SpecificDiseasesCertificateRelatedConsFlg", rule: Rule::OneOf(&["0", "1"]), source: QCBI_RES },
    Field { path: "*/SpecificDiseasesCertificateRelatedConsTime", rule: Rule::Timestamp, source: QCBI_RES },
    Field { path: "*/SpecificDiseasesCertificateList/SpecificDiseasesCertificateInfo/SpecificDiseasesDiseaseCategory", rule: Rule::OneOf(&["01", "02", "03"]), source: QCBI_RES },
    Field { path: "*/SpecificDiseasesCertificateList/SpecificDiseasesCertificateInfo/SpecificDiseasesValidStartDate", rule: Rule::Date, source: QCBI_RES },
    Field { path: "*/SpecificDiseasesCertificateList/SpecificDiseasesCertificateInfo/SpecificDiseasesValidEndDate", rule: Rule::Date, source: QCBI_RES },
    Field { path: "*/SpecificDiseasesCertificateList/SpecificDiseasesCertificateInfo/SpecificDiseasesSelfPay", rule: Rule::Digits(0), source: QCBI_RES },
    Field { path: "*/PharmacistsInfoConsFlg", rule: Rule::OneOf(&["1"]), source: QCBI_RES },
    Field { path: "*/PharmacistsInfoConsTime", rule: Rule::Timestamp, source: QCBI_RES },
    Field { path: "*/PharmacistsInfoAvailableTime", rule: Rule::Timestamp, source: QCBI_RES },
    Field { path: "*/SpecificHealthCheckupsInfoConsFlg", rule: Rule::OneOf(&["1"]), source: QCBI_RES },
    Field { path: "*/SpecificHealthCheckupsInfoConsTime", rule: Rule::Timestamp, source: QCBI_RES },
    Field { path: "*/SpecificHealthCheckupsInfoAvailableTime", rule: Rule::Timestamp, source: QCBI_RES },
    Field { path: "*/DiagnosisInfoConsFlg", rule: Rule::OneOf(&["1"]), source: QCBI_RES },
    Field { path: "*/DiagnosisInfoConsTime", rule: Rule::Timestamp, source: QCBI_RES },
    Field { path: "*/DiagnosisInfoAvailableTime", rule: Rule::Timestamp, source: QCBI_RES },
    Field { path: "*/OperationInfoConsFlg", rule: Rule::OneOf(&["1"]), source: QCBI_RES },
    Field { path: "*/OperationInfoConsTime", rule: Rule::Timestamp, source: QCBI_RES },
    Field { path: "*/OperationInfoAvailableTime", rule: Rule::Timestamp, source: QCBI_RES },
    // 薬剤情報 (YZKsiquc01res).
    Field { path: "MessageBody/MeTrMonthInf/MeTrDiHCd", rule: Rule::Digits(10), source: OQSDRUG_FORM },
    Field { path: "MessageBody/MeTrMonthInf/MeTrDiHNm", rule: Rule::Text, source: OQSDRUG_FORM },
    Field { path: "MessageBody/MeTrMonthInf/MeTrMonth", rule: Rule::Month, source: OQSDRUG_FORM },
    Field { path: "MessageBody/MeTrMonthInf/DiDateInfs/DiDateInf/DiDate", rule: Rule::Date, source: OQSDRUG_FORM },
    Field { path: "MessageBody/MeTrMonthInf/DiDateInfs/DiDateInf/DrugInfs/DrugInf/DrugC", rule: Rule::DrugCode, source: OQSDRUG_FORM },
    Field { path: "MessageBody/MeTrMonthInf/DiDateInfs/DiDateInf/DrugInfs/DrugInf/DrugN", rule: Rule::Text, source: OQSDRUG_FORM },
    Field { path: "MessageBody/MeTrMonthInf/DiDateInfs/DiDateInf/DrugInfs/DrugInf/Qua1", rule: Rule::Decimal, source: OQSDRUG_FORM },
    Field { path: "MessageBody/MeTrMonthInf/DiDateInfs/DiDateInf/DrugInfs/DrugInf/UsageN", rule: Rule::Text, source: OQSDRUG_FORM },
    Field { path: "MessageBody/MeTrMonthInf/DiDateInfs/DiDateInf/DrugInfs/DrugInf/Times", rule: Rule::Digits(0), source: OQSDRUG_FORM },
    Field { path: "MessageBody/MeTrMonthInf/DiDateInfs/DiDateInf/DrugInfs/DrugInf/Unit", rule: Rule::Text, source: OQSDRUG_FORM },
    // 特定健診 (TKKsiquc01res).
    Field { path: "MessageBody/SpecificHealthCheckupInfo/EffectiveTime", rule: Rule::Date, source: OQSDRUG_FORM },
    Field { path: "MessageBody/SpecificHealthCheckupInfo/HealthCheckupResultAndQuestionInfos/HealthCheckupResultAndQuestionInfo/ItemCode", rule: Rule::Jlac10, source: OQSDRUG_FORM },
    Field { path: "MessageBody/SpecificHealthCheckupInfo/HealthCheckupResultAndQuestionInfos/HealthCheckupResultAndQuestionInfo/ItemName", rule: Rule::Text, source: OQSDRUG_FORM },
    Field { path: "MessageBody/SpecificHealthCheckupInfo/HealthCheckupResultAndQuestionInfos/HealthCheckupResultAndQuestionInfo/DataType", rule: Rule::OneOf(&["PQ", "CD"]), source: OQSDRUG_FORM },
    Field { path: "MessageBody/SpecificHealthCheckupInfo/HealthCheckupResultAndQuestionInfos/HealthCheckupResultAndQuestionInfo/DataValue", rule: Rule::Text, source: OQSDRUG_FORM },
    Field { path: "MessageBody/SpecificHealthCheckupInfo/HealthCheckupResultAndQuestionInfos/HealthCheckupResultAndQuestionInfo/Unit", rule: Rule::Text, source: OQSDRUG_FORM },
];

fn rule_holds(rule: Rule, v: &str) -> bool {
    let digits = |n: usize| v.bytes().all(|b| b.is_ascii_digit()) && (n == 0 || v.len() == n);
    match rule {
        Rule::OneOf(codes) => codes.contains(&v),
        Rule::Date => v.len() == 8 && digits(8),
        Rule::Month => v.len() == 6 && digits(6),
        Rule::Timestamp => v.len() == 14 && digits(14),
        Rule::Digits(n) => !v.is_empty() && digits(n),
        Rule::HalfWidthKana => v
            .chars()
            .all(|c| ('\u{ff61}'..='\u{ff9f}').contains(&c) || c == ' '),
        Rule::Decimal => v.parse::<f64>().is_ok(),
        Rule::Jlac10 => {
            v.len() == 17
                && v.bytes()
                    .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        }
        Rule::DrugCode => {
            (v.len() == 9 && digits(9))
                || (v.len() == 12 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
        }
        Rule::Text => !v.trim().is_empty(),
    }
}

/// The field list entry an element path (below `XmlMsg`) matches.
fn field_of(path: &str) -> Option<&'static Field> {
    let result_prefixes = [
        "MessageBody/ResultList/ResultOfQualificationConfirmation/",
        "MessageBody/BulkConfirmUnit/ResultOfQualificationConfirmation/",
    ];
    let echo_prefixes = ["MessageBody/", "MessageBody/BulkConfirmUnit/"];
    FIELDS.iter().find(|f| {
        if let Some(rest) = f.path.strip_prefix("*/") {
            result_prefixes
                .iter()
                .any(|p| path.strip_prefix(p) == Some(rest))
        } else if let Some(rest) = f.path.strip_prefix('+') {
            echo_prefixes
                .iter()
                .any(|p| path.strip_prefix(p) == Some(rest))
        } else {
            f.path == path
        }
    })
}

/// Parses an answer with roxmltree and checks every leaf against [`FIELDS`]: a known path, a
/// value its rule accepts, nothing empty. Returns the leaves as (path, value), in order.
pub fn check_answer(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    let answer = decode_answer(bytes)?;
    let doc = roxmltree::Document::parse(&answer.text).map_err(|e| format!("not XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "XmlMsg" {
        return Err(format!("root <{}>", root.tag_name().name()));
    }
    let declared = answer.encoding == "Shift_JIS";
    let mut leaves = Vec::new();
    let mut problems = Vec::new();
    for node in root.descendants().filter(|n| n.is_element() && *n != root) {
        if node.children().any(|c| c.is_element()) {
            continue;
        }
        let path = node
            .ancestors()
            .filter(|a| a.is_element() && *a != root)
            .map(|a| a.tag_name().name().to_owned())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("/");
        let value = node.text().unwrap_or("").to_owned();
        match field_of(&path) {
            None => problems.push(format!("{path}: not an element the public parsers read")),
            Some(f) if !rule_holds(f.rule, &value) => problems.push(format!(
                "{path} = {value:?}: outside {:?} (read by {})",
                f.rule, f.source
            )),
            Some(_) => {}
        }
        leaves.push((path, value));
    }
    // CharacterCodeIdentifier says what the declaration says.
    if let Some((_, v)) = leaves
        .iter()
        .find(|(p, _)| p == "MessageHeader/CharacterCodeIdentifier")
    {
        if (v == "1") != declared {
            problems.push(format!(
                "CharacterCodeIdentifier {v} but the declaration says {}",
                answer.encoding
            ));
        }
    }
    if problems.is_empty() {
        Ok(leaves)
    } else {
        Err(problems.join("\n"))
    }
}

/// The first value at a path (below `XmlMsg`).
pub fn value<'a>(leaves: &'a [(String, String)], path: &str) -> Option<&'a str> {
    leaves
        .iter()
        .find(|(p, _)| p == path)
        .map(|(_, v)| v.as_str())
}

/// Every value at a path.
pub fn values<'a>(leaves: &'a [(String, String)], path: &str) -> Vec<&'a str> {
    leaves
        .iter()
        .filter(|(p, _)| p == path)
        .map(|(_, v)| v.as_str())
        .collect()
}

// ---- request files ----------------------------------------------------------------------------

/// One search as a request carries it.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub insurer_number: String,
    pub symbol: String,
    pub number: String,
    pub branch: String,
    pub birth_date: String,
    pub limit_consent: bool,
    pub arbitrary_identifier: String,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Search {
    /// The search of a `world.json` example (`insurer_number`, `symbol`, `number`, `branch`,
    /// `birth_date`; an absent one empty).
    pub fn from_example(e: &serde_json::Value, limit_consent: bool) -> Search {
        let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
        Search {
            insurer_number: s("insurer_number"),
            symbol: s("symbol"),
            number: s("number"),
            branch: s("branch"),
            birth_date: s("birth_date"),
            limit_consent,
            arbitrary_identifier: String::new(),
        }
    }

    pub fn xml(&self) -> String {
        let mut s = String::from("<QualificationConfirmSearchInfo>");
        let mut put = |n: &str, v: &str| {
            if !v.is_empty() {
                s.push_str(&format!("<{n}>{}</{n}>", esc(v)));
            }
        };
        put("InsurerNumber", &self.insurer_number);
        put("InsuredCardSymbol", &self.symbol);
        put("InsuredIdentificationNumber", &self.number);
        put("InsuredBranchNumber", &self.branch);
        put("Birthdate", &self.birth_date);
        put(
            "LimitApplicationCertificateRelatedConsFlg",
            if self.limit_consent { "1" } else { "0" },
        );
        put("ArbitraryIdentifier", &self.arbitrary_identifier);
        s.push_str("</QualificationConfirmSearchInfo>");
        s
    }
}

/// A request document: `header` elements (name, value) and the body's inner XML, encoded in
/// Shift_JIS (CP932) or UTF-8 with the matching declaration.
pub fn request(header: &[(&str, &str)], body: &str, shift_jis: bool) -> Vec<u8> {
    let mut h = String::new();
    for (n, v) in header {
        h.push_str(&format!("<{n}>{}</{n}>", esc(v)));
    }
    let doc = format!(
        "<XmlMsg><MessageHeader>{h}</MessageHeader><MessageBody>{body}</MessageBody></XmlMsg>\r\n"
    );
    if shift_jis {
        let (bytes, _, bad) = encoding_rs::SHIFT_JIS.encode(&doc);
        assert!(!bad, "a test request outside CP932");
        let mut out =
            b"<?xml version=\"1.0\" encoding=\"Shift_JIS\" standalone=\"no\"?>\r\n".to_vec();
        out.extend_from_slice(&bytes);
        out
    } else {
        let mut out = b"<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\r\n".to_vec();
        out.extend_from_slice(doc.as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_cites_a_source_and_rules_refuse_what_they_should() {
        assert!(FIELDS.iter().all(|f| f.source.contains('/')));
        assert!(!rule_holds(Rule::OneOf(VALIDITY), "6"));
        assert!(!rule_holds(Rule::Date, "2025-01-01"));
        assert!(rule_holds(Rule::HalfWidthKana, "ﾔﾏﾀﾞ ﾀﾛｳ"));
        assert!(!rule_holds(Rule::HalfWidthKana, "ヤマダ"));
        assert!(
            field_of("MessageBody/ResultList/ResultOfQualificationConfirmation/NameKana").is_some()
        );
        assert!(
            field_of("MessageBody/ResultList/ResultOfQualificationConfirmation/KanaName").is_none()
        );
    }
}
