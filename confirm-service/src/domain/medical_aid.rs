//! 医療扶助 (public assistance) online confirmation (docs/domain.md "医療扶助"): recipients of
//! 生活保護 hold no health insurance; their assistance is a qualification record of insured
//! card classification `A1` whose 保険者番号 field holds the 公費負担者番号 (法別番号 12) and
//! whose 番号 holds the 公費受給者番号. Each month the welfare office registers the month's
//! 医療券 (for a clinic or hospital) and 調剤券 (for a pharmacy); an answer for a recipient
//! whose assistance is current carries the tickets of the as-of month, or validity 6
//! 有効（未登録） when none is registered.
//!
//! Pure functions: "today" and the as-of date are parameters.

use time::{Date, Month};

use crate::eligibility::{
    check_luhn, DomainError, InsurerNumber, NumbersQuery, QualificationRecord,
};

/// The insured card classification of a 医療扶助 record (OQSCD010 `A1`).
pub const CLASSIFICATION: &str = "A1";
/// 法別番号 of 生活保護法による医療扶助.
pub const HOUBETSU: &str = "12";
/// Field names in [`DomainError`]s, mapped to result codes 110 and 111.
pub const PUBLIC_EXPENSE: &str = "公費負担者番号 (public expense number)";
pub const RECIPIENT: &str = "公費受給者番号 (recipient number)";

/// Whether a qualification record is a 医療扶助 one.
pub fn is_medical_aid(record: &QualificationRecord) -> bool {
    record.insured_card_classification == CLASSIFICATION
}

/// 医療券・調剤券別.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketKind {
    /// 医療券: for a clinic or hospital.
    Medical,
    /// 調剤券: for a pharmacy.
    Dispensing,
}

impl TicketKind {
    /// The stored spelling, also the answer file's TicketType value (an assumption).
    pub fn code(self) -> &'static str {
        match self {
            Self::Medical => "1",
            Self::Dispensing => "2",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "1" => Some(Self::Medical),
            "2" => Some(Self::Dispensing),
            _ => None,
        }
    }
}

/// A treatment month (診療年月).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TreatmentMonth {
    pub year: i32,
    pub month: Month,
}

impl TreatmentMonth {
    /// The month `day` falls in.
    pub fn of(day: Date) -> Self {
        Self {
            year: day.year(),
            month: day.month(),
        }
    }

    /// `YYYYMM`.
    pub fn yyyymm(self) -> String {
        format!("{:04}{:02}", self.year, u8::from(self.month))
    }

    /// Parses `YYYYMM`.
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let year: i32 = s[..4].parse().ok()?;
        let month = Month::try_from(s[4..].parse::<u8>().ok()?).ok()?;
        Some(Self { year, month })
    }

    /// First day of the month.
    pub fn first_day(self) -> Date {
        Date::from_calendar_date(self.year, self.month, 1).expect("day 1 exists")
    }

    /// Last day of the month.
    pub fn last_day(self) -> Date {
        Date::from_calendar_date(self.year, self.month, self.month.length(self.year))
            .expect("the month's length is a day of it")
    }

    /// Whether `day` falls in this month.
    pub fn contains(self, day: Date) -> bool {
        Self::of(day) == self
    }
}

/// One 医療券 or 調剤券 the welfare office issued for a recipient and a treatment month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicalTicket {
    pub person_id: String,
    pub month: TreatmentMonth,
    pub kind: TicketKind,
    /// 交付番号, unique per recipient and month.
    pub issue_number: String,
    /// The ticket's validity inside its month (both ends inclusive).
    pub valid_from: Date,
    pub valid_until: Date,
    /// 指定医療機関 (or 指定薬局 for a 調剤券): code and name.
    pub institution_code: String,
    pub institution_name: String,
    /// 本人支払額, yen.
    pub self_pay_yen: u32,
    /// The day the welfare office registered it on the intermediate server; `None` while
    /// issued on paper only. It answers from that day on (service clock, JST).
    pub registered_on: Option<Date>,
}

impl MedicalTicket {
    /// Registered on or before `today` (the service's day, not the as-of date).
    pub fn registered_by(&self, today: Date) -> bool {
        self.registered_on.is_some_and(|d| d <= today)
    }
}

/// What a 医療扶助 answer carries beyond the qualification: its validity (1 or 6) and the
/// tickets to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketAnswer<'a> {
    pub unregistered: bool,
    pub tickets: Vec<&'a MedicalTicket>,
}

/// The tickets of a recipient whose assistance is current on `as_of`: those of `as_of`'s
/// month registered by `today`. None registered → 有効（未登録）; a ticket of another month
/// never answers (a ticket for month M answers as-of dates inside M only).
pub fn tickets_for(tickets: &[MedicalTicket], as_of: Date, today: Date) -> TicketAnswer<'_> {
    let month = TreatmentMonth::of(as_of);
    let mut shown: Vec<&MedicalTicket> = tickets
        .iter()
        .filter(|t| t.month == month && t.registered_by(today))
        .collect();
    shown.sort_by(|a, b| (a.kind.code(), &a.issue_number).cmp(&(b.kind.code(), &b.issue_number)));
    TicketAnswer {
        unregistered: shown.is_empty(),
        tickets: shown,
    }
}

/// 公費負担者番号: 法別番号 12 + prefecture (2) + 実施機関 (3) + check digit, 8 digits; the
/// check digit as for 保険者番号.
pub fn parse_public_expense_number(s: &str) -> Result<InsurerNumber, DomainError> {
    if s.len() != 8 {
        return Err(DomainError::WrongLength {
            what: PUBLIC_EXPENSE,
            expected: "8",
            actual: s.chars().count(),
        });
    }
    check_luhn(PUBLIC_EXPENSE, s)?;
    if &s[..2] != HOUBETSU {
        return Err(DomainError::NotPublicAssistance {
            value: s.to_owned(),
        });
    }
    InsurerNumber::parse(s)
}

/// 公費受給者番号: 6 digits + check digit.
pub fn parse_recipient_number(s: &str) -> Result<String, DomainError> {
    if s.len() != 7 {
        return Err(DomainError::WrongLength {
            what: RECIPIENT,
            expected: "7",
            actual: s.chars().count(),
        });
    }
    check_luhn(RECIPIENT, s)?;
    Ok(s.to_owned())
}

/// A card-less 医療扶助 query (bulk or single): the two public-expense numbers and the birth
/// date, as the [`NumbersQuery`] the store looks up (保険者番号 = 公費負担者番号, 番号 =
/// 受給者番号, no 記号 and no 枝番), so quotas and look-ups are those of any query.
pub fn query(
    public_expense_number: &str,
    recipient_number: &str,
    birth_date: &str,
) -> Result<NumbersQuery, DomainError> {
    if public_expense_number.is_empty() || recipient_number.is_empty() {
        return Err(DomainError::MixedQueryKinds {
            what: "a 医療扶助 query needs both the 公費負担者番号 and the 公費受給者番号",
        });
    }
    let insurer_number = parse_public_expense_number(public_expense_number)?;
    let number = parse_recipient_number(recipient_number)?;
    let birth_date = crate::eligibility::parse_yyyymmdd("birth date", birth_date)?;
    Ok(NumbersQuery {
        insurer_number,
        symbol: None,
        number,
        branch: None,
        birth_date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn ticket(month: &str, registered_on: Option<Date>) -> MedicalTicket {
        let month = TreatmentMonth::parse(month).unwrap();
        MedicalTicket {
            person_id: "P1".into(),
            month,
            kind: TicketKind::Medical,
            issue_number: "0001".into(),
            valid_from: month.first_day(),
            valid_until: month.last_day(),
            institution_code: "1311234567".into(),
            institution_name: "クリニック".into(),
            self_pay_yen: 0,
            registered_on,
        }
    }

    #[test]
    fn a_ticket_answers_on_the_first_and_last_day_of_its_month_only() {
        let t = [ticket("202602", Some(date!(2026 - 02 - 01)))];
        let today = date!(2026 - 03 - 10);
        assert!(tickets_for(&t, date!(2026 - 01 - 31), today).unregistered);
        assert_eq!(
            tickets_for(&t, date!(2026 - 02 - 01), today).tickets.len(),
            1
        );
        // February 2026 has 28 days.
        assert_eq!(
            tickets_for(&t, date!(2026 - 02 - 28), today).tickets.len(),
            1
        );
        assert!(tickets_for(&t, date!(2026 - 03 - 01), today).unregistered);
    }

    #[test]
    fn an_unregistered_ticket_answers_from_its_registration_day() {
        let t = [ticket("202612", Some(date!(2026 - 12 - 15)))];
        assert!(tickets_for(&t, date!(2026 - 12 - 03), date!(2026 - 12 - 14)).unregistered);
        assert!(!tickets_for(&t, date!(2026 - 12 - 03), date!(2026 - 12 - 15)).unregistered);
        let paper_only = [ticket("202612", None)];
        assert!(
            tickets_for(&paper_only, date!(2026 - 12 - 03), date!(2027 - 01 - 01)).unregistered
        );
        assert!(tickets_for(&[], date!(2026 - 12 - 03), date!(2026 - 12 - 03)).unregistered);
    }

    #[test]
    fn months_and_kinds_round_trip() {
        let m = TreatmentMonth::parse("202402").unwrap();
        assert_eq!(m.yyyymm(), "202402");
        assert_eq!(m.last_day(), date!(2024 - 02 - 29));
        assert!(m.contains(date!(2024 - 02 - 29)));
        assert!(!m.contains(date!(2024 - 03 - 01)));
        assert_eq!(TreatmentMonth::parse("202413"), None);
        assert_eq!(TreatmentMonth::parse("2024-1"), None);
        for k in [TicketKind::Medical, TicketKind::Dispensing] {
            assert_eq!(TicketKind::parse(k.code()), Some(k));
        }
        assert_eq!(TicketKind::parse("3"), None);
    }

    #[test]
    fn public_expense_and_recipient_numbers_are_checked() {
        // 12 13 001 + check digit, 000012 + check digit.
        let pen = InsurerNumber::with_check_digit("1213001").unwrap();
        let rn = crate::eligibility::append_luhn(RECIPIENT, "000012").unwrap();
        let q = query(pen.as_str(), &rn, "19600101").unwrap();
        assert_eq!(q.insurer_number, pen);
        assert_eq!(q.number, rn);
        assert_eq!((q.symbol, q.branch), (None, None));
        assert!(matches!(
            parse_public_expense_number("1213001"),
            Err(DomainError::WrongLength {
                what: PUBLIC_EXPENSE,
                ..
            })
        ));
        let insurer = InsurerNumber::with_check_digit("0113001").unwrap();
        assert!(matches!(
            parse_public_expense_number(insurer.as_str()),
            Err(DomainError::NotPublicAssistance { .. })
        ));
        let mut bad = pen.as_str().to_owned();
        let last = bad.pop().unwrap();
        bad.push(if last == '9' {
            '0'
        } else {
            (last as u8 + 1) as char
        });
        assert!(matches!(
            parse_public_expense_number(&bad),
            Err(DomainError::BadCheckDigit {
                what: PUBLIC_EXPENSE,
                ..
            })
        ));
        assert!(matches!(
            parse_recipient_number("12345"),
            Err(DomainError::WrongLength {
                what: RECIPIENT,
                ..
            })
        ));
        assert!(matches!(
            query(pen.as_str(), "", "19600101"),
            Err(DomainError::MixedQueryKinds { .. })
        ));
    }
}
