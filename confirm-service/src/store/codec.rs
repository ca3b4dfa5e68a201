//! One stored representation of the domain's values, and every row mapping, written once.
//!
//! Statements take [`Value`]s (a date, an instant, a text…) and hand back [`Row`]s; each store
//! binds and decodes them in its own representation at its edge: SQLite keeps dates as
//! `YYYY-MM-DD` text and instants as Unix milliseconds, PostgreSQL as `DATE` and `TIMESTAMPTZ`
//! (cut to the millisecond), integers in whatever width the column has. The mappings from rows
//! to the domain's types below are therefore the same for both stores, and a value the service
//! never writes (a negative count, a partly-null certificate, an unknown status) is
//! [`StoreError::Corrupt`] in both.

use time::{Date, OffsetDateTime};

use super::{
    corrupt, BatchItem, BatchJob, ChainHead, ChainedRecord, StoreError, Terminal, TerminalStatus,
};
use crate::audit::AuditRecord;
use crate::clinical::{Checkup, Medication};
use crate::consent::{ConsentGrant, ConsentKind};
use crate::eligibility::{
    ElderlyCertificate, HighCostLimit, InsurerNumber, Person, QualificationRecord, SpecificDisease,
};

/// A value bound to a statement, in the domain's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Null,
    Int(i64),
    Bool(bool),
    Text(&'a str),
    Bytes(&'a [u8]),
    Date(Date),
    Instant(OffsetDateTime),
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(v)
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Value::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Value::Bytes(v)
    }
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<u32> for Value<'_> {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}

impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<Date> for Value<'_> {
    fn from(v: Date) -> Self {
        Value::Date(v)
    }
}

impl From<OffsetDateTime> for Value<'_> {
    fn from(v: OffsetDateTime) -> Self {
        Value::Instant(v)
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// A row read back, column by position; each store decodes its own representation.
pub(crate) trait Row {
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    fn opt_bool(&self, i: usize) -> Result<Option<bool>, StoreError>;
    fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError>;
    fn opt_date(&self, i: usize) -> Result<Option<Date>, StoreError>;
    fn opt_instant(&self, i: usize) -> Result<Option<OffsetDateTime>, StoreError>;

    fn int(&self, i: usize) -> Result<i64, StoreError> {
        present(self.opt_int(i)?, i)
    }
    fn text(&self, i: usize) -> Result<String, StoreError> {
        present(self.opt_text(i)?, i)
    }
    fn bool(&self, i: usize) -> Result<bool, StoreError> {
        present(self.opt_bool(i)?, i)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        present(self.opt_bytes(i)?, i)
    }
    fn date(&self, i: usize) -> Result<Date, StoreError> {
        present(self.opt_date(i)?, i)
    }
    fn instant(&self, i: usize) -> Result<OffsetDateTime, StoreError> {
        present(self.opt_instant(i)?, i)
    }
}

fn present<T>(v: Option<T>, i: usize) -> Result<T, StoreError> {
    v.ok_or_else(|| corrupt("column", format_args!("column {i} is null")))
}

/// A stored integer as the narrower type the domain uses.
pub(crate) fn narrow<T: TryFrom<i64>>(what: &'static str, v: i64) -> Result<T, StoreError> {
    T::try_from(v).map_err(|_| corrupt(what, v))
}

pub(crate) const PERSON_COLUMNS: &str =
    "id, name, kana_name, sex, birth_date, address, postcode, registered_for_insurance";

pub(crate) fn person(r: &dyn Row) -> Result<Person, StoreError> {
    Ok(Person {
        id: r.text(0)?,
        name: r.text(1)?,
        kana_name: r.text(2)?,
        sex: narrow("sex", r.int(3)?)?,
        birth_date: r.date(4)?,
        address: r.text(5)?,
        postcode: r.text(6)?,
        registered_for_insurance: r.bool(7)?,
    })
}

/// The columns of a qualification record as inserted, in [`qualification`]'s order.
pub(crate) const QUALIFICATION_COLUMNS: &str = "person_id, insured_card_classification, \
     insurer_number, insurer_name, symbol, number, branch, personal_family, insured_person_name, \
     qualification_date, disqualification_date, loss_reason, card_issue_date, card_valid_from, \
     card_expiry, copay_ratio, preschool, elderly_valid_from, elderly_valid_until, \
     elderly_copay_ratio, high_cost_certificate_type, high_cost_bracket, high_cost_valid_from, \
     high_cost_valid_until";

/// A qualification record (without its 特定疾病) from [`QUALIFICATION_COLUMNS`]; the row's id
/// follows them (column 24), to attach the diseases.
pub(crate) fn qualification(r: &dyn Row) -> Result<(i64, QualificationRecord), StoreError> {
    let elderly = match (r.opt_date(17)?, r.opt_date(18)?, r.opt_text(19)?) {
        (Some(valid_from), Some(valid_until), Some(copay_ratio)) => Some(ElderlyCertificate {
            valid_from,
            valid_until,
            copay_ratio,
        }),
        (None, None, None) => None,
        _ => return Err(corrupt("elderly certificate", "partly null")),
    };
    let high_cost_limit = match (r.opt_text(21)?, r.opt_date(22)?, r.opt_date(23)?) {
        (Some(bracket), Some(valid_from), Some(valid_until)) => Some(HighCostLimit {
            certificate_type: r.opt_text(20)?,
            bracket,
            valid_from,
            valid_until,
        }),
        (None, None, None) => None,
        _ => return Err(corrupt("high-cost limit", "partly null")),
    };
    let insurer = r.text(2)?;
    let record = QualificationRecord {
        person_id: r.text(0)?,
        insured_card_classification: r.text(1)?,
        insurer_number: InsurerNumber::parse(&insurer).map_err(|e| corrupt("insurer number", e))?,
        insurer_name: r.text(3)?,
        symbol: r.opt_text(4)?,
        number: r.text(5)?,
        branch: r.opt_text(6)?,
        personal_family: narrow("personal/family", r.int(7)?)?,
        insured_person_name: r.text(8)?,
        qualification_date: r.date(9)?,
        disqualification_date: r.opt_date(10)?,
        loss_reason: r.opt_text(11)?,
        card_issue_date: r.date(12)?,
        card_valid_from: r.date(13)?,
        card_expiry: r.opt_date(14)?,
        copay_ratio: r.text(15)?,
        preschool: r.bool(16)?,
        elderly,
        high_cost_limit,
        specific_diseases: Vec::new(),
    };
    Ok((r.int(24)?, record))
}

/// `qualification_id, category, monthly_cap_yen, valid_from, valid_until`.
pub(crate) fn specific_disease(r: &dyn Row) -> Result<(i64, SpecificDisease), StoreError> {
    Ok((
        r.int(0)?,
        SpecificDisease {
            category: narrow("category", r.int(1)?)?,
            monthly_cap_yen: narrow("monthly cap", r.int(2)?)?,
            valid_from: r.date(3)?,
            valid_until: r.date(4)?,
        },
    ))
}

pub(crate) const MEDICATION_COLUMNS: &str = "person_id, dispensed_on, institution_code, \
     institution_name, drug_code, drug_name, usage, daily_quantity, days";

pub(crate) fn medication(r: &dyn Row) -> Result<Medication, StoreError> {
    Ok(Medication {
        person_id: r.text(0)?,
        dispensed_on: r.date(1)?,
        institution_code: r.text(2)?,
        institution_name: r.text(3)?,
        drug_code: r.text(4)?,
        drug_name: r.text(5)?,
        usage: r.text(6)?,
        daily_quantity: r.text(7)?,
        days: narrow("days", r.int(8)?)?,
    })
}

pub(crate) const CHECKUP_COLUMNS: &str = "person_id, examined_on, height_cm_x10, weight_kg_x10, \
     waist_cm_x10, bmi_x10, systolic_mmhg, diastolic_mmhg, hba1c_x10, ldl_mg_dl, judgement";

pub(crate) fn checkup(r: &dyn Row) -> Result<Checkup, StoreError> {
    Ok(Checkup {
        person_id: r.text(0)?,
        examined_on: r.date(1)?,
        height_cm_x10: narrow("height", r.int(2)?)?,
        weight_kg_x10: narrow("weight", r.int(3)?)?,
        waist_cm_x10: narrow("waist", r.int(4)?)?,
        bmi_x10: narrow("bmi", r.int(5)?)?,
        systolic_mmhg: narrow("systolic", r.int(6)?)?,
        diastolic_mmhg: narrow("diastolic", r.int(7)?)?,
        hba1c_x10: narrow("hba1c", r.int(8)?)?,
        ldl_mg_dl: narrow("ldl", r.int(9)?)?,
        judgement: r.text(10)?,
    })
}

pub(crate) const DOCUMENT_COLUMNS: &str = "person_id, kind, valid_from, valid_until";

pub(crate) fn insurance_document(
    r: &dyn Row,
) -> Result<crate::documents::InsuranceDocument, StoreError> {
    let kind = r.text(1)?;
    Ok(crate::documents::InsuranceDocument {
        person_id: r.text(0)?,
        kind: crate::documents::DocumentKind::parse(&kind)
            .ok_or_else(|| corrupt("document kind", &kind))?,
        valid_from: r.opt_date(2)?,
        valid_until: r.opt_date(3)?,
    })
}

pub(crate) const TICKET_COLUMNS: &str = "person_id, treatment_month, kind, issue_number, \
     valid_from, valid_until, institution_code, institution_name, self_pay_yen, registered_on";

pub(crate) fn medical_ticket(r: &dyn Row) -> Result<crate::medical_aid::MedicalTicket, StoreError> {
    use crate::medical_aid::{TicketKind, TreatmentMonth};
    let month = r.text(1)?;
    let kind = r.text(2)?;
    Ok(crate::medical_aid::MedicalTicket {
        person_id: r.text(0)?,
        month: TreatmentMonth::parse(&month).ok_or_else(|| corrupt("treatment month", &month))?,
        kind: TicketKind::parse(&kind).ok_or_else(|| corrupt("ticket kind", &kind))?,
        issue_number: r.text(3)?,
        valid_from: r.date(4)?,
        valid_until: r.date(5)?,
        institution_code: r.text(6)?,
        institution_name: r.text(7)?,
        self_pay_yen: narrow("self-pay amount", r.int(8)?)?,
        registered_on: r.opt_date(9)?,
    })
}

/// `kind, given_at, valid_until` of one person's grants to one institution.
pub(crate) fn consent(
    person_id: &str,
    institution_code: &str,
    r: &dyn Row,
) -> Result<ConsentGrant, StoreError> {
    let kind = r.text(0)?;
    Ok(ConsentGrant {
        person_id: person_id.to_owned(),
        institution_code: institution_code.to_owned(),
        kind: ConsentKind::parse(&kind).ok_or_else(|| corrupt("consent kind", &kind))?,
        given_at: r.instant(1)?,
        valid_until: r.instant(2)?,
    })
}

pub(crate) fn listed_institution(
    r: &dyn Row,
) -> Result<crate::institutions::ListedInstitution, StoreError> {
    Ok(crate::institutions::ListedInstitution {
        institution: crate::institutions::Institution {
            institution_code: r.text(0)?,
            name: r.text(1)?,
            started_on: r.date(2)?,
        },
        terminals_in_operation: narrow("terminal count", r.int(3)?)?,
    })
}

pub(crate) const TERMINAL_COLUMNS: &str =
    "institution_code, terminal_id, status, device_public_key";

pub(crate) fn terminal(r: &dyn Row) -> Result<Terminal, StoreError> {
    let status = r.text(2)?;
    Ok(Terminal {
        institution_code: r.text(0)?,
        terminal_id: r.text(1)?,
        status: TerminalStatus::parse(&status)
            .ok_or_else(|| corrupt("terminal status", &status))?,
        device_public_key: r.opt_bytes(3)?,
    })
}

macro_rules! audit_fields {
    () => {
        "institution_code, terminal_id, person_id, method, purpose, result_code, consents, \
         certificate_sha256, returned"
    };
}

/// The columns of an audit record after its time (which each store reads its own way).
pub(crate) const AUDIT_FIELDS: &str = concat!(audit_fields!(), ", claimed_at");

/// [`AUDIT_FIELDS`] for a table that has no `claimed_at` column yet (the migrations before
/// it): no claimed time, typed for each store.
pub(crate) const AUDIT_FIELDS_UNCLAIMED_SQLITE: &str = concat!(audit_fields!(), ", NULL");
pub(crate) const AUDIT_FIELDS_UNCLAIMED_PG: &str = concat!(audit_fields!(), ", NULL::timestamptz");

/// An audit record from `confirmation_id, <time>, AUDIT_FIELDS`.
pub(crate) fn audit_record(r: &dyn Row) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        confirmation_id: r.text(0)?,
        at: r.instant(1)?,
        institution_code: r.text(2)?,
        terminal_id: r.text(3)?,
        person_id: r.opt_text(4)?,
        method: r.text(5)?,
        purpose: r.text(6)?,
        result_code: r.text(7)?,
        consents: narrow("consent bits", r.int(8)?)?,
        certificate_sha256: r.opt_text(9)?,
        returned: r.text(10)?,
        claimed_at: r.opt_instant(11)?,
    })
}

/// The chain's columns before an audit record's: `seq, chain_seq, prev_hash, hash`.
pub(crate) const CHAIN_FIELDS: &str = "seq, chain_seq, prev_hash, hash";

/// A row of the audit table as the chain sees it: [`CHAIN_FIELDS`], then a record as
/// [`audit_record`] reads it (up to column 15), then whatever the store needs to check the
/// record's time.
/// Values the service never writes are a `defect`, not an error, so `verify` can name the
/// record: `time` is the store's reading of the time (at column 5) and its check of it.
pub(crate) fn chained_record(
    r: &dyn Row,
    time: impl Fn(&dyn Row) -> Result<(OffsetDateTime, Option<String>), StoreError>,
) -> Result<ChainedRecord, StoreError> {
    let (at, mut defect) = time(r)?;
    let consents = r.int(12)?;
    let consents = u8::try_from(consents).unwrap_or_else(|_| {
        defect = Some(format!("its consents {consents} are not a bitmask"));
        0
    });
    Ok(ChainedRecord {
        row: r.int(0)?,
        position: r.opt_int(1)?,
        prev_hash: r.opt_bytes(2)?,
        hash: r.opt_bytes(3)?,
        record: AuditRecord {
            confirmation_id: r.text(4)?,
            at,
            institution_code: r.text(6)?,
            terminal_id: r.text(7)?,
            person_id: r.opt_text(8)?,
            method: r.text(9)?,
            purpose: r.text(10)?,
            result_code: r.text(11)?,
            consents,
            certificate_sha256: r.opt_text(13)?,
            returned: r.text(14)?,
            claimed_at: r.opt_instant(15)?,
        },
        defect,
    })
}

pub(crate) const CHAIN_HEAD_COLUMNS: &str = "last_seq, last_hash, anchor_seq, anchor_hash";

pub(crate) fn chain_head(r: &dyn Row) -> Result<ChainHead, StoreError> {
    Ok(ChainHead {
        last_seq: r.int(0)?,
        last_hash: r.bytes(1)?,
        anchor_seq: r.int(2)?,
        anchor_hash: r.bytes(3)?,
    })
}

pub(crate) const BATCH_COLUMNS: &str =
    "reception_number, institution_code, terminal_id, submitted_at, total, completed, finished_at";

pub(crate) fn batch_job(r: &dyn Row) -> Result<BatchJob, StoreError> {
    Ok(BatchJob {
        reception_number: r.text(0)?,
        institution_code: r.text(1)?,
        terminal_id: r.text(2)?,
        submitted_at: r.instant(3)?,
        total: narrow("batch total", r.int(4)?)?,
        completed: narrow("batch completed count", r.int(5)?)?,
        finished_at: r.opt_instant(6)?,
    })
}

/// `ordinal, query, result`.
pub(crate) fn batch_item(r: &dyn Row) -> Result<BatchItem, StoreError> {
    Ok(BatchItem {
        ordinal: narrow("batch ordinal", r.int(0)?)?,
        query: r.bytes(1)?,
        result: r.opt_bytes(2)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    /// A row of values, as a store would decode them.
    struct Fake(Vec<Value<'static>>);

    impl Row for Fake {
        fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
            match self.0[i] {
                Value::Null => Ok(None),
                Value::Int(v) => Ok(Some(v)),
                other => panic!("column {i} is {other:?}"),
            }
        }
        fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
            match self.0[i] {
                Value::Null => Ok(None),
                Value::Text(v) => Ok(Some(v.to_owned())),
                other => panic!("column {i} is {other:?}"),
            }
        }
        fn opt_bool(&self, i: usize) -> Result<Option<bool>, StoreError> {
            match self.0[i] {
                Value::Null => Ok(None),
                Value::Bool(v) => Ok(Some(v)),
                other => panic!("column {i} is {other:?}"),
            }
        }
        fn opt_bytes(&self, i: usize) -> Result<Option<Vec<u8>>, StoreError> {
            match self.0[i] {
                Value::Null => Ok(None),
                Value::Bytes(v) => Ok(Some(v.to_vec())),
                other => panic!("column {i} is {other:?}"),
            }
        }
        fn opt_date(&self, i: usize) -> Result<Option<Date>, StoreError> {
            match self.0[i] {
                Value::Null => Ok(None),
                Value::Date(v) => Ok(Some(v)),
                other => panic!("column {i} is {other:?}"),
            }
        }
        fn opt_instant(&self, i: usize) -> Result<Option<OffsetDateTime>, StoreError> {
            match self.0[i] {
                Value::Null => Ok(None),
                Value::Instant(v) => Ok(Some(v)),
                other => panic!("column {i} is {other:?}"),
            }
        }
    }

    fn person_row(sex: i64) -> Fake {
        Fake(vec![
            Value::Text("P1"),
            Value::Text("山田\u{3000}花子"),
            Value::Text("ﾔﾏﾀﾞ ﾊﾅｺ"),
            Value::Int(sex),
            Value::Date(date!(1980 - 02 - 29)),
            Value::Text("東京都千代田区千代田1-1"),
            Value::Text("100-0001"),
            Value::Bool(true),
        ])
    }

    #[test]
    fn a_person_row_maps_and_a_bad_sex_is_corrupt() {
        let p = person(&person_row(2)).unwrap();
        assert_eq!(p.id, "P1");
        assert_eq!(p.sex, 2);
        assert_eq!(p.birth_date, date!(1980 - 02 - 29));
        assert!(p.registered_for_insurance);
        assert!(matches!(
            person(&person_row(300)),
            Err(StoreError::Corrupt { what: "sex", .. })
        ));
        assert!(matches!(
            person(&person_row(-1)),
            Err(StoreError::Corrupt { what: "sex", .. })
        ));
    }

    fn qualification_row(elderly_ratio: Value<'static>) -> Fake {
        let d = Value::Date(date!(2024 - 08 - 01));
        Fake(vec![
            Value::Text("P1"),
            Value::Text("01"),
            Value::Text("01130012"),
            Value::Text("協会けんぽ"),
            Value::Null,
            Value::Text("901"),
            Value::Null,
            Value::Int(1),
            Value::Text("山田\u{3000}花子"),
            d,
            Value::Null,
            Value::Null,
            d,
            d,
            Value::Null,
            Value::Text("030"),
            Value::Bool(false),
            d,
            d,
            elderly_ratio,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Int(42),
        ])
    }

    #[test]
    fn a_qualification_row_maps_with_its_id_and_a_partly_null_certificate_is_corrupt() {
        let (id, q) = qualification(&qualification_row(Value::Text("020"))).unwrap();
        assert_eq!(id, 42);
        assert_eq!(q.insurer_number.as_str(), "01130012");
        assert_eq!(q.symbol, None);
        assert_eq!(
            q.elderly,
            Some(ElderlyCertificate {
                valid_from: date!(2024 - 08 - 01),
                valid_until: date!(2024 - 08 - 01),
                copay_ratio: "020".into(),
            })
        );
        assert_eq!(q.high_cost_limit, None);
        assert!(q.specific_diseases.is_empty());
        assert!(matches!(
            qualification(&qualification_row(Value::Null)),
            Err(StoreError::Corrupt {
                what: "elderly certificate",
                ..
            })
        ));
    }

    #[test]
    fn unknown_spellings_and_nulls_are_corrupt() {
        let terminal_row = |status: &'static str| {
            Fake(vec![
                Value::Text("1340123452"),
                Value::Text("T01"),
                Value::Text(status),
                Value::Null,
            ])
        };
        assert_eq!(
            terminal(&terminal_row("suspended")).unwrap().status,
            TerminalStatus::Suspended
        );
        assert!(matches!(
            terminal(&terminal_row("retired")),
            Err(StoreError::Corrupt {
                what: "terminal status",
                ..
            })
        ));
        let consent_row = Fake(vec![
            Value::Text("dental"),
            Value::Instant(datetime!(2026-12-01 09:00 UTC)),
            Value::Instant(datetime!(2026-12-01 10:00 UTC)),
        ]);
        assert!(matches!(
            consent("P1", "1340123452", &consent_row),
            Err(StoreError::Corrupt {
                what: "consent kind",
                ..
            })
        ));
        let null_total = Fake(vec![
            Value::Text("1234567890123456"),
            Value::Text("1340123452"),
            Value::Text("T01"),
            Value::Instant(datetime!(2026-12-01 09:00 UTC)),
            Value::Null,
            Value::Int(0),
            Value::Null,
        ]);
        assert!(matches!(
            batch_job(&null_total),
            Err(StoreError::Corrupt { what: "column", .. })
        ));
    }

    #[test]
    fn a_chained_row_with_bad_consents_is_a_defect_not_an_error() {
        let at = datetime!(2026-12-01 09:00 UTC);
        let row = Fake(vec![
            Value::Int(7),
            Value::Int(3),
            Value::Bytes(&[0; 32]),
            Value::Bytes(&[1; 32]),
            Value::Text("C1"),
            Value::Instant(at),
            Value::Text("1340123452"),
            Value::Text("T01"),
            Value::Null,
            Value::Text("pin"),
            Value::Text("confirm"),
            Value::Text("RESULT_CODE_OK"),
            Value::Int(999),
            Value::Null,
            Value::Text("{}"),
            Value::Null,
        ]);
        let c = chained_record(&row, |r| Ok((r.instant(5)?, None))).unwrap();
        assert_eq!((c.row, c.position), (7, Some(3)));
        assert_eq!(c.record.at, at);
        assert_eq!(c.record.consents, 0);
        assert_eq!(
            c.defect.as_deref(),
            Some("its consents 999 are not a bitmask")
        );
        let timed = chained_record(&row, |r| {
            let t = r.instant(5)?;
            Ok((t, Some(format!("time {t}"))))
        })
        .unwrap();
        // The consents' defect is found after the time's, and named.
        assert!(timed.defect.unwrap().contains("consents"));
    }

    #[test]
    fn options_bind_as_null() {
        assert_eq!(Value::from(None::<&str>), Value::Null);
        assert_eq!(Value::from(Some("x")), Value::Text("x"));
        assert_eq!(Value::from(Some(7u32)), Value::Int(7));
    }
}
