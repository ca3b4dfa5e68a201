//! Operator commands that read the store directly: `confirm-service audit` queries the audit
//! log by person, institution and time.

use std::io::Write;

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

use crate::audit::{AuditQuery, AuditRecord};
use crate::service::JST;
use crate::store::Store;

/// Most records one query prints.
pub const MAX_LIMIT: u32 = 1_000_000;

/// Parses a time bound: RFC 3339 (`2026-11-24T09:00:00+09:00`) or a calendar day
/// (`2026-11-24`, meaning 00:00 Japan time).
pub fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let day = time::macros::format_description!("[year]-[month]-[day]");
    match Date::parse(s, day) {
        Ok(d) => Ok(PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_offset(JST)),
        Err(_) => Err(format!(
            "{s:?} is neither an RFC 3339 time (2026-11-24T09:00:00+09:00) nor a day (2026-11-24)"
        )),
    }
}

#[derive(Serialize)]
struct JsonRecord<'a> {
    confirmation_id: &'a str,
    at: String,
    /// The visit time the terminal claimed (a confirmation caught up after an outage).
    claimed_at: Option<String>,
    institution_code: &'a str,
    terminal_id: &'a str,
    person_id: Option<&'a str>,
    method: &'a str,
    purpose: &'a str,
    result_code: &'a str,
    consents: Vec<&'static str>,
    certificate_sha256: Option<&'a str>,
    returned: serde_json::Value,
}

fn at_jst(r: &AuditRecord) -> String {
    r.at.to_offset(JST)
        .format(&Rfc3339)
        .unwrap_or_else(|_| r.at.unix_timestamp().to_string())
}

/// The claimed visit time in JST, RFC 3339.
fn claimed_jst(r: &AuditRecord) -> Option<String> {
    r.claimed_at.map(|t| {
        t.to_offset(JST)
            .format(&Rfc3339)
            .unwrap_or_else(|_| t.unix_timestamp().to_string())
    })
}

fn consents(bits: u8) -> Vec<&'static str> {
    crate::consent::ConsentKind::from_bits(bits)
        .into_iter()
        .map(|k| k.as_str())
        .collect()
}

/// Runs a query and prints the records oldest first: one JSON object per line with `json`,
/// else aligned columns with a header. Returns how many were printed.
pub fn print_audit(
    store: &dyn Store,
    query: &AuditQuery,
    json: bool,
    out: &mut dyn Write,
) -> Result<usize, String> {
    let records = store.query_audit(query).map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| format!("cannot write the output: {e}");
    if json {
        for r in &records {
            let line = JsonRecord {
                confirmation_id: &r.confirmation_id,
                at: at_jst(r),
                claimed_at: claimed_jst(r),
                institution_code: &r.institution_code,
                terminal_id: &r.terminal_id,
                person_id: r.person_id.as_deref(),
                method: &r.method,
                purpose: &r.purpose,
                result_code: &r.result_code,
                consents: consents(r.consents),
                certificate_sha256: r.certificate_sha256.as_deref(),
                returned: serde_json::from_str(&r.returned)
                    .unwrap_or_else(|_| serde_json::Value::String(r.returned.clone())),
            };
            let text = serde_json::to_string(&line).map_err(|e| e.to_string())?;
            writeln!(out, "{text}").map_err(io)?;
        }
    } else {
        writeln!(
            out,
            "{:<32}  {:<29}  {:<29}  {:<10}  {:<4}  {:<10}  {:<8}  {:<12}  {:<38}  {:<24}  returned",
            "confirmation id",
            "at (JST)",
            "claimed visit (JST)",
            "institution",
            "term",
            "person",
            "method",
            "purpose",
            "result",
            "consents"
        )
        .map_err(io)?;
        for r in &records {
            writeln!(
                out,
                "{:<32}  {:<29}  {:<29}  {:<10}  {:<4}  {:<10}  {:<8}  {:<12}  {:<38}  {:<24}  {}",
                r.confirmation_id,
                at_jst(r),
                claimed_jst(r).unwrap_or_else(|| "-".to_owned()),
                r.institution_code,
                r.terminal_id,
                r.person_id.as_deref().unwrap_or("-"),
                r.method,
                r.purpose,
                r.result_code,
                match consents(r.consents).join(",") {
                    s if s.is_empty() => "-".to_owned(),
                    s => s,
                },
                r.returned
            )
            .map_err(io)?;
        }
    }
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn time_bounds_are_rfc3339_or_a_japanese_day() {
        assert_eq!(
            parse_time("2026-11-24").unwrap(),
            datetime!(2026-11-24 00:00 +09:00)
        );
        assert_eq!(
            parse_time("2026-11-24T01:00:00Z").unwrap(),
            datetime!(2026-11-24 01:00 UTC)
        );
        let err = parse_time("yesterday").unwrap_err();
        assert!(err.contains("RFC 3339"), "{err}");
        assert!(parse_time("2026-02-30").is_err());
    }

    #[test]
    fn records_print_as_columns_or_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SqliteStore::open(&dir.path().join("s.sqlite")).unwrap();
        let record = |id: &str, person: &str, at| AuditRecord {
            confirmation_id: id.into(),
            at,
            institution_code: "1340123452".into(),
            terminal_id: "T01".into(),
            person_id: Some(person.into()),
            method: "pin".into(),
            purpose: "confirm".into(),
            result_code: "RESULT_CODE_OK".into(),
            consents: 1 | 2,
            certificate_sha256: None,
            returned: r#"{"validity":1}"#.into(),
            claimed_at: None,
        };
        Store::append_audit(
            &store,
            &[
                record("a1", "P1", datetime!(2026-11-24 00:30 UTC)),
                record("a2", "P2", datetime!(2026-11-24 01:30 UTC)),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        let query = AuditQuery {
            person_id: Some("P2".into()),
            limit: 10,
            ..AuditQuery::default()
        };
        assert_eq!(print_audit(&store, &query, true, &mut out).unwrap(), 1);
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["confirmation_id"], "a2");
        assert_eq!(line["at"], "2026-11-24T10:30:00+09:00");
        assert_eq!(
            line["consents"],
            serde_json::json!(["medication", "checkup"])
        );
        assert_eq!(line["returned"]["validity"], 1);

        let mut out = Vec::new();
        let query = AuditQuery {
            until: Some(datetime!(2026-11-24 01:00 UTC)),
            limit: 10,
            ..AuditQuery::default()
        };
        assert_eq!(print_audit(&store, &query, false, &mut out).unwrap(), 1);
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().next().unwrap().starts_with("confirmation id"));
        assert!(text.contains("a1") && !text.contains("a2"), "{text}");
        assert!(text.contains("medication,checkup"), "{text}");
    }
}
