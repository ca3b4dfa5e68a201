//! The reception desk's functions that need no card (資格確認端末): confirmation by the
//! insurance card's numbers, the consent-gated medication and checkup data, and batch
//! confirmation (一括照会) of a CSV of reservations. The terminal's identity is its client
//! certificate, as for the card flow.

use std::path::Path;
use std::time::{Duration, Instant};

use onshi_proto::v1::confirmation_client::ConfirmationClient;
use onshi_proto::v1::{self as pb};
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::confirm::refused_by_service;
use crate::report::Outcome;

/// The patient's insurance-card numbers, as typed by staff.
#[derive(Debug, Clone, Default)]
pub struct Numbers {
    pub insurer_number: String,
    pub symbol: String,
    pub number: String,
    pub branch: String,
    /// YYYYMMDD.
    pub birth_date: String,
    /// The day the eligibility is asked for, YYYYMMDD (JST); empty for today.
    pub as_of_date: String,
    /// 医療扶助: 公費負担者番号 and 公費受給者番号 instead of the insurance numbers.
    pub public_expense_number: String,
    pub recipient_number: String,
}

impl Numbers {
    pub fn to_proto(&self) -> pb::NumbersQuery {
        pb::NumbersQuery {
            insurer_number: self.insurer_number.clone(),
            symbol: self.symbol.clone(),
            number: self.number.clone(),
            branch: self.branch.clone(),
            birth_date: self.birth_date.clone(),
            as_of_date: self.as_of_date.clone(),
            treatment: 0,
            requery: false,
            public_expense_number: self.public_expense_number.clone(),
            recipient_number: self.recipient_number.clone(),
        }
    }
}

/// A card-less confirmation; the outcome renders like a card confirmation's.
pub async fn confirm_numbers(
    client: &mut ConfirmationClient<Channel>,
    numbers: &Numbers,
) -> Outcome {
    confirm_query(client, numbers.to_proto()).await
}

/// [`confirm_numbers`] of a query as it goes on the wire (with its treatment and re-query
/// flags).
pub async fn confirm_query(
    client: &mut ConfirmationClient<Channel>,
    query: pb::NumbersQuery,
) -> Outcome {
    let request = pb::ConfirmByNumbersRequest {
        query: Some(query),
        claimed_visit_time: None,
    };
    crate::confirm::answered(client.confirm_by_numbers(request).await)
}

/// A time as people and scripts read it: RFC 3339, UTC.
fn rfc3339(unix: Option<i64>) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(unix?).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// Which consent-gated data to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClinicalKind {
    Medications,
    Checkups,
}

fn consent_json(c: Option<&pb::ConsentRecord>) -> Value {
    let ts = |t: Option<&prost_types::Timestamp>| t.map(|t| t.seconds);
    match c {
        Some(c) => json!({
            "given": c.given,
            "given_at": rfc3339(ts(c.given_at.as_ref())),
            "valid_until": rfc3339(ts(c.valid_until.as_ref())),
            "given_at_unix": ts(c.given_at.as_ref()),
            "valid_until_unix": ts(c.valid_until.as_ref()),
        }),
        None => Value::Null,
    }
}

/// Fetches medication or checkup data as JSON (`{"outcome": "data", ...}`), or the refusal.
pub async fn clinical(
    client: &mut ConfirmationClient<Channel>,
    numbers: &Numbers,
    kind: ClinicalKind,
) -> Result<Value, Outcome> {
    let request = pb::ClinicalDataRequest {
        patient: Some(numbers.to_proto()),
    };
    match kind {
        ClinicalKind::Medications => {
            let r = client
                .get_medications(request)
                .await
                .map_err(|s| refused_by_service(&s))?
                .into_inner();
            let rows: Vec<Value> = r
                .medications
                .iter()
                .map(|m| {
                    json!({
                        "dispensed_on": m.dispensed_on, "institution_code": m.institution_code,
                        "institution_name": m.institution_name, "drug_code": m.drug_code,
                        "drug_name": m.drug_name, "usage": m.usage,
                        "daily_quantity": m.daily_quantity, "days": m.days,
                    })
                })
                .collect();
            Ok(json!({
                "outcome": "data", "kind": "medications", "confirmation_id": r.confirmation_id,
                "consent": consent_json(r.consent.as_ref()), "medications": rows,
            }))
        }
        ClinicalKind::Checkups => {
            let r = client
                .get_checkups(request)
                .await
                .map_err(|s| refused_by_service(&s))?
                .into_inner();
            let rows: Vec<Value> = r
                .checkups
                .iter()
                .map(|c| {
                    json!({
                        "examined_on": c.examined_on, "height_cm_x10": c.height_cm_x10,
                        "weight_kg_x10": c.weight_kg_x10, "waist_cm_x10": c.waist_cm_x10,
                        "bmi_x10": c.bmi_x10, "systolic_mmhg": c.systolic_mmhg,
                        "diastolic_mmhg": c.diastolic_mmhg, "hba1c_x10": c.hba1c_x10,
                        "ldl_mg_dl": c.ldl_mg_dl, "judgement": c.judgement,
                    })
                })
                .collect();
            Ok(json!({
                "outcome": "data", "kind": "checkups", "confirmation_id": r.confirmation_id,
                "consent": consent_json(r.consent.as_ref()), "checkups": rows,
            }))
        }
    }
}

/// Renders clinical data for staff.
pub fn render_clinical(data: &Value) -> String {
    let mut s = String::new();
    let tenth = |v: &Value| format!("{:.1}", v.as_f64().unwrap_or(0.0) / 10.0);
    if let Some(rows) = data["medications"].as_array() {
        s.push_str(&format!(
            "=== 薬剤情報 (medication history): {} ===\n",
            rows.len()
        ));
        for m in rows {
            s.push_str(&format!(
                "{}  {}  {}  {} × {}日  ({})\n",
                m["dispensed_on"].as_str().unwrap_or(""),
                m["drug_name"].as_str().unwrap_or(""),
                m["usage"].as_str().unwrap_or(""),
                m["daily_quantity"].as_str().unwrap_or(""),
                m["days"],
                m["institution_name"].as_str().unwrap_or("")
            ));
        }
    }
    if let Some(rows) = data["checkups"].as_array() {
        s.push_str(&format!(
            "=== 特定健診情報 (checkup results): {} ===\n",
            rows.len()
        ));
        for c in rows {
            s.push_str(&format!(
                "{}  身長 {} cm  体重 {} kg  BMI {}  腹囲 {} cm  血圧 {}/{}  HbA1c {}%  LDL {}  判定 {}\n",
                c["examined_on"].as_str().unwrap_or(""),
                tenth(&c["height_cm_x10"]),
                tenth(&c["weight_kg_x10"]),
                tenth(&c["bmi_x10"]),
                tenth(&c["waist_cm_x10"]),
                c["systolic_mmhg"],
                c["diastolic_mmhg"],
                tenth(&c["hba1c_x10"]),
                c["ldl_mg_dl"],
                c["judgement"].as_str().unwrap_or("")
            ));
        }
    }
    s.push_str(&format!(
        "confirmation id: {}\n",
        data["confirmation_id"].as_str().unwrap_or("")
    ));
    s
}

/// Reads a reservations CSV: `insurer_number,symbol,number,branch,birth_date` per line, or
/// for a 医療扶助 recipient `public_expense_number,recipient_number,birth_date` (公費負担者番号,
/// 公費受給者番号; three fields). A header line starting with `insurer` or `public` is
/// skipped; empty lines too. Fields are taken as written: the service validates them and
/// answers a malformed line with its own code.
pub fn read_csv(path: &Path) -> Result<Vec<pb::NumbersQuery>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_csv(&text, &path.display().to_string())
}

/// As [`read_csv`], for text from elsewhere (an upload); `source` names it in errors.
/// Quoted fields (`"1,234"`, `""` for a quote) are read as CSV means them.
pub fn parse_csv(text: &str, source: &str) -> Result<Vec<pb::NumbersQuery>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("{source}: {e}"))?;
        let line = record.position().map_or(i as u64 + 1, |p| p.line());
        if record.iter().all(str::is_empty)
            || (i == 0
                && record
                    .get(0)
                    .is_some_and(|f| f.starts_with("insurer") || f.starts_with("public")))
        {
            continue;
        }
        out.push(match record.len() {
            5 => pb::NumbersQuery {
                insurer_number: record[0].to_owned(),
                symbol: record[1].to_owned(),
                number: record[2].to_owned(),
                branch: record[3].to_owned(),
                birth_date: record[4].to_owned(),
                ..Default::default()
            },
            // 医療扶助: the public-expense numbers instead of an insurance card's.
            3 => pb::NumbersQuery {
                public_expense_number: record[0].to_owned(),
                recipient_number: record[1].to_owned(),
                birth_date: record[2].to_owned(),
                ..Default::default()
            },
            n => {
                return Err(format!(
                    "{source} line {line}: expected 5 fields (insurer_number,symbol,number,branch,birth_date) or 3 for 医療扶助 (public_expense_number,recipient_number,birth_date), got {n}"
                ))
            }
        });
    }
    if out.is_empty() {
        return Err(format!("{source} holds no queries"));
    }
    Ok(out)
}

/// Sets the as-of date of every query that has none (a batch for tomorrow's appointments
/// asks for tomorrow); an empty `as_of` changes nothing.
/// Gives every query the treatment and the re-query flag `(treatment, requery)` (treatment 0
/// and no re-query change nothing).
pub fn with_care(queries: &mut [pb::NumbersQuery], (treatment, requery): (i32, bool)) {
    for q in queries.iter_mut() {
        if treatment != 0 {
            q.treatment = treatment;
        }
        q.requery |= requery;
    }
}

pub fn with_as_of(queries: &mut [pb::NumbersQuery], as_of: &str) {
    for q in queries.iter_mut().filter(|q| q.as_of_date.is_empty()) {
        q.as_of_date = as_of.to_owned();
    }
}

/// Submits a batch (streamed when `stream`); returns the reception number and total.
pub async fn submit(
    client: &mut ConfirmationClient<Channel>,
    queries: Vec<pb::NumbersQuery>,
    stream: bool,
) -> Result<pb::SubmitBatchResponse, Outcome> {
    let answer = if stream {
        client
            .submit_batch_stream(tokio_stream::iter(queries))
            .await
    } else {
        client
            .submit_batch(pb::SubmitBatchRequest { queries })
            .await
    };
    answer
        .map(|r| r.into_inner())
        .map_err(|s| refused_by_service(&s))
}

/// Polls a batch until it is done (or `wait` passes), reporting progress (answered, total,
/// done) whenever it moves, then reads every answer page by page.
pub async fn wait_and_fetch(
    client: &mut ConfirmationClient<Channel>,
    reception_number: &str,
    wait: Duration,
    progress: &(dyn Fn(u32, u32, bool) + Sync),
) -> Result<(pb::BatchResult, Vec<pb::BatchItemResult>), Outcome> {
    let deadline = Instant::now() + wait;
    let mut last = None;
    loop {
        let r = client
            .get_batch_result(pb::GetBatchResultRequest {
                reception_number: reception_number.to_owned(),
                from: 0,
                limit: 0,
            })
            .await
            .map_err(|s| refused_by_service(&s))?
            .into_inner();
        if last != Some(r.completed) {
            progress(
                r.completed,
                r.total,
                r.status() != pb::BatchStatus::Processing,
            );
            last = Some(r.completed);
        }
        if r.status() == pb::BatchStatus::Done {
            let mut items = r.items.clone();
            while (items.len() as u32) < r.total {
                let page = client
                    .get_batch_result(pb::GetBatchResultRequest {
                        reception_number: reception_number.to_owned(),
                        from: items.len() as u32,
                        limit: 0,
                    })
                    .await
                    .map_err(|s| refused_by_service(&s))?
                    .into_inner();
                if page.items.is_empty() {
                    break;
                }
                items.extend(page.items);
            }
            return Ok((r, items));
        }
        if Instant::now() >= deadline {
            return Err(Outcome::Error {
                message: format!(
                    "batch {reception_number} is still 処理中 ({} / {}) after {} s; fetch it later",
                    r.completed,
                    r.total,
                    wait.as_secs()
                ),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The answers as CSV (a header line, then one escaped record per answer): the query, then
/// result code, validity, insurer, co-pay and bracket of the first qualification, the as-of
/// date, and the holder's insurance document (kind, period, valid on the as-of date; empty
/// when the answer carries none).
pub fn results_csv(items: &[pb::BatchItemResult]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "ordinal",
        "insurer_number",
        "symbol",
        "number",
        "branch",
        "birth_date",
        "result_code",
        "validity",
        "name",
        "current_insurer",
        "copay_ratio",
        "high_cost_bracket",
        "as_of_date",
        "document_kind",
        "document_valid_from",
        "document_valid_until",
        "document_valid_on_as_of_date",
    ];
    // Writing to a Vec cannot fail.
    let _ = w.write_record(header);
    for item in items {
        let q = item.query.clone().unwrap_or_default();
        let r = item.result.clone().unwrap_or_default();
        let first = r.qualifications.first();
        let doc = r
            .insurance_document
            .as_ref()
            .map(crate::report::StaffDocument::from_proto);
        let _ = w.write_record([
            item.ordinal.to_string().as_str(),
            &q.insurer_number,
            &q.symbol,
            &q.number,
            &q.branch,
            &q.birth_date,
            r.result_code().as_str_name(),
            r.validity.to_string().as_str(),
            first.map(|q| q.name.as_str()).unwrap_or(""),
            first.map(|q| q.insurer_number.as_str()).unwrap_or(""),
            first.map(|q| q.copay_ratio.as_str()).unwrap_or(""),
            first
                .and_then(|q| q.high_cost_limit.as_ref())
                .map(|h| h.bracket.as_str())
                .unwrap_or(""),
            &r.as_of_date,
            doc.as_ref().map(|d| d.kind.as_str()).unwrap_or(""),
            doc.as_ref().map(|d| d.valid_from.as_str()).unwrap_or(""),
            doc.as_ref().map(|d| d.valid_until.as_str()).unwrap_or(""),
            match &doc {
                Some(d) if d.valid_on_as_of_date => "true",
                Some(_) => "false",
                None => "",
            },
        ]);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_become_queries_and_bad_lines_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(
            &path,
            "insurer_number,symbol,number,branch,birth_date\n01130012,1234,901,00,19800229\n\n39131016,,55,,19400101\r\n",
        )
        .unwrap();
        let q = read_csv(&path).unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q[1].insurer_number, "39131016");
        assert_eq!(q[1].symbol, "");
        std::fs::write(&path, "01130012,1234,901,00\n").unwrap();
        let err = read_csv(&path).unwrap_err();
        assert!(err.contains("line 1") && err.contains("5 fields"), "{err}");
        // Three fields: a 医療扶助 query by the public-expense numbers (header skipped).
        std::fs::write(
            &path,
            "public_expense_number,recipient_number,birth_date\n12131004,0000123,19600401\n",
        )
        .unwrap();
        let q = read_csv(&path).unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(
            (
                q[0].public_expense_number.as_str(),
                q[0].recipient_number.as_str(),
                q[0].birth_date.as_str(),
                q[0].insurer_number.as_str()
            ),
            ("12131004", "0000123", "19600401", "")
        );
        std::fs::write(&path, "insurer_number,symbol,number,branch,birth_date\n").unwrap();
        assert!(read_csv(&path).unwrap_err().contains("no queries"));
    }

    #[test]
    fn a_batch_as_of_date_fills_the_queries_without_one() {
        let mut q = vec![
            pb::NumbersQuery::default(),
            pb::NumbersQuery {
                as_of_date: "20261210".into(),
                ..Default::default()
            },
        ];
        with_as_of(&mut q, "");
        assert_eq!(q[0].as_of_date, "");
        with_as_of(&mut q, "20261204");
        assert_eq!(q[0].as_of_date, "20261204");
        assert_eq!(q[1].as_of_date, "20261210");
    }

    #[test]
    fn results_csv_has_one_line_per_answer() {
        let mut result = pb::ConfirmationResult::default();
        result.set_result_code(pb::ResultCode::InvalidInsurerNumber);
        let items = vec![pb::BatchItemResult {
            ordinal: 0,
            query: Some(pb::NumbersQuery {
                insurer_number: "01130013".into(),
                ..Default::default()
            }),
            result: Some(result),
        }];
        let csv = results_csv(&items);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("0,01130013,"));
        assert!(lines[1].contains("RESULT_CODE_INVALID_INSURER_NUMBER"));
        assert!(
            lines[0].ends_with(
                ",as_of_date,document_kind,document_valid_from,document_valid_until,document_valid_on_as_of_date"
            ),
            "{}",
            lines[0]
        );
        // No document: the four columns are empty.
        assert!(lines[1].ends_with(",,,,"), "{}", lines[1]);
    }

    #[test]
    fn results_csv_reports_the_insurance_document() {
        let mut result = pb::ConfirmationResult {
            as_of_date: "20261204".into(),
            ..Default::default()
        };
        let mut doc = pb::InsuranceDocument {
            valid_from: "20251201".into(),
            valid_until: "20261203".into(),
            ..Default::default()
        };
        doc.set_kind(pb::DocumentKind::ShikakuKakuninsho);
        result.insurance_document = Some(doc);
        let items = vec![pb::BatchItemResult {
            ordinal: 3,
            query: None,
            result: Some(result),
        }];
        let csv = results_csv(&items);
        let line = csv.lines().nth(1).unwrap();
        assert!(
            line.ends_with(",20261204,DOCUMENT_KIND_SHIKAKU_KAKUNINSHO,20251201,20261203,false"),
            "{line}"
        );
    }

    #[test]
    fn consent_times_are_rfc3339() {
        let c = pb::ConsentRecord {
            given: true,
            given_at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            ..Default::default()
        };
        let v = consent_json(Some(&c));
        assert_eq!(v["given_at"], "2023-11-14T22:13:20Z");
        assert_eq!(v["given_at_unix"], 1_700_000_000);
        assert!(v["valid_until"].is_null());
    }

    #[test]
    fn quoted_fields_are_read_and_written_back_escaped() {
        let q = parse_csv(
            "\"01130012\",\"12,34\",901,00,19800229\n\"39131016\",\"a\"\"b\",55,,19400101\n",
            "t",
        )
        .unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].symbol, "12,34");
        assert_eq!(q[1].symbol, "a\"b");
        let items: Vec<_> = q
            .into_iter()
            .enumerate()
            .map(|(i, query)| pb::BatchItemResult {
                ordinal: i as u32,
                query: Some(query),
                result: None,
            })
            .collect();
        let text = results_csv(&items);
        assert!(text.starts_with("ordinal,insurer_number,"), "{text}");
        assert!(text.contains("\"12,34\""), "{text}");
        assert!(text.contains("\"a\"\"b\""), "{text}");
        // What is written reads back as the same fields.
        let back: Vec<csv::StringRecord> = csv::Reader::from_reader(text.as_bytes())
            .records()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(&back[0][2], "12,34");
        assert_eq!(&back[1][2], "a\"b");
    }
}
