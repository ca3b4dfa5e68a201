//! The eligibility domain (eligibility.md): insurer numbers and institution codes with their
//! check digits, persons, qualification records, the co-pay and high-cost-bracket rules, and the
//! assessment that turns a person's records into the result's qualification validity.
//!
//! Pure functions of their inputs: "today" is always a parameter, never read from a clock, so
//! every rule is tested with plain calls. Nothing here touches storage or the network.

use std::fmt;
use std::str::FromStr;

use time::{Date, Month};

/// Why a number from outside (a request, a generator, the store) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    /// The value has the wrong number of digits.
    #[error("{what} must have {expected} digits, got {actual} characters")]
    WrongLength {
        what: &'static str,
        expected: &'static str,
        actual: usize,
    },
    /// The value contains something other than ASCII digits.
    #[error("{what} must be ASCII digits only; character {position} is not a digit")]
    NonDigit { what: &'static str, position: usize },
    /// The digits are well formed but the last one is not the Luhn digit of the others.
    #[error("{what} {value} has check digit {found}, expected {expected}")]
    BadCheckDigit {
        what: &'static str,
        value: String,
        found: u8,
        expected: u8,
    },
    /// A required field is empty.
    #[error("{what} is required")]
    Empty { what: &'static str },
    /// A field is longer than the domain allows.
    #[error("{what} is at most {max} characters, got {actual}")]
    TooLong {
        what: &'static str,
        max: usize,
        actual: usize,
    },
    /// A field holds characters the domain never uses (controls, spaces).
    #[error("{what} contains a character that is not allowed at position {position}")]
    BadCharacter { what: &'static str, position: usize },
    /// A date that is not `YYYYMMDD` or not in the calendar.
    #[error("{what} must be a calendar date as YYYYMMDD, got {value:?}")]
    BadDate { what: &'static str, value: String },
    /// 後期高齢者医療 records have no 記号 and no 枝番.
    #[error("後期高齢者医療 (insurer number 39xxxxxx) has no {what}; leave it empty")]
    NotForKoki { what: &'static str },
    /// Fields that contradict each other (a 包括同意 without every kind).
    #[error("{what}")]
    Contradictory { what: &'static str },
    /// A well-formed 8-digit number whose 法別番号 is not 12 (生活保護) where a 公費負担者番号
    /// of 医療扶助 is expected, or one of 法別 12 where an insurer number is expected.
    #[error("{value} is not a 公費負担者番号 of 医療扶助 (法別番号 12) where one is expected, or is one where an insurer number is expected")]
    NotPublicAssistance { value: String },
    /// A query mixing insurance numbers and public-expense numbers, or with only one of the
    /// two public-expense numbers.
    #[error("{what}")]
    MixedQueryKinds { what: &'static str },
}

/// Field names in [`DomainError`]s, which the service maps to result codes.
pub const INSURER: &str = "insurer number";
pub const INSTITUTION: &str = "institution code";
pub const BRANCH: &str = "枝番 (branch)";

/// The Luhn digit of `body` as eligibility.md §3 defines it: from the rightmost body digit,
/// weights 2, 1, 2, …; two-digit products add their digits; 10 minus the last digit of the sum,
/// or 0. The caller has checked that `body` is ASCII digits.
fn luhn_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            let p = if i % 2 == 0 { d * 2 } else { d };
            p / 10 + p % 10
        })
        .sum();
    // `sum % 10` is below 10, so the result fits in a u8.
    ((10 - sum % 10) % 10) as u8
}

fn check_digits(what: &'static str, s: &str) -> Result<(), DomainError> {
    match s.bytes().position(|b| !b.is_ascii_digit()) {
        Some(position) => Err(DomainError::NonDigit { what, position }),
        None => Ok(()),
    }
}

/// Validates `s` as `body + Luhn digit`, the shape shared by insurer numbers and institution
/// codes. Length is checked by the caller (the two differ).
pub fn check_luhn(what: &'static str, s: &str) -> Result<(), DomainError> {
    check_digits(what, s)?;
    let bytes = s.as_bytes();
    let Some((&last, body)) = bytes.split_last() else {
        return Err(DomainError::WrongLength {
            what,
            expected: "more than 0",
            actual: 0,
        });
    };
    let expected = luhn_digit(body);
    let found = last - b'0';
    if found != expected {
        return Err(DomainError::BadCheckDigit {
            what,
            value: s.to_owned(),
            found,
            expected,
        });
    }
    Ok(())
}

pub fn append_luhn(what: &'static str, body: &str) -> Result<String, DomainError> {
    check_digits(what, body)?;
    let digit = luhn_digit(body.as_bytes());
    Ok(format!("{body}{digit}"))
}

/// 保険者番号: 法別 (2) + prefecture (2) + insurer (3) + check digit = 8 digits, or for municipal
/// 国保 (which has no 法別) prefecture + insurer + check digit = 6 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InsurerNumber(String);

impl InsurerNumber {
    /// Parses and validates length, digits and check digit.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.len() != 8 && s.len() != 6 {
            return Err(DomainError::WrongLength {
                what: INSURER,
                expected: "8 (or 6 for 国保)",
                actual: s.chars().count(),
            });
        }
        check_luhn(INSURER, s)?;
        Ok(Self(s.to_owned()))
    }

    /// Completes a 7-digit (or 5-digit 国保) body with its check digit; for generators.
    pub fn with_check_digit(body: &str) -> Result<Self, DomainError> {
        if body.len() != 7 && body.len() != 5 {
            return Err(DomainError::WrongLength {
                what: "insurer number body",
                expected: "7 (or 5 for 国保)",
                actual: body.chars().count(),
            });
        }
        append_luhn(INSURER, body).map(Self)
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Municipal 国民健康保険: the 6-digit form without a 法別.
    pub fn is_kokuho(&self) -> bool {
        self.0.len() == 6
    }

    /// The 法別番号 (e.g. `01` 協会けんぽ, `06` 組合, `31`–`34` 共済, `39` 後期高齢者医療);
    /// `None` for 国保.
    pub fn houbetsu(&self) -> Option<&str> {
        (!self.is_kokuho()).then(|| &self.0[..2])
    }

    /// The prefecture code (`01` 北海道 … `47` 沖縄県).
    pub fn prefecture(&self) -> &str {
        if self.is_kokuho() {
            &self.0[..2]
        } else {
            &self.0[2..4]
        }
    }

    /// 後期高齢者医療 (法別 39): its records have no 記号 and no 枝番.
    pub fn is_koki(&self) -> bool {
        self.houbetsu() == Some("39")
    }
}

impl fmt::Display for InsurerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for InsurerNumber {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Longest 記号 and 番号 accepted (the real files allow 38 bytes of full-width text for 記号;
/// the simulator's are shorter).
pub const MAX_SYMBOL_CHARS: usize = 38;
pub const MAX_NUMBER_CHARS: usize = 38;

/// A card-less confirmation's key (eligibility.md §1 "Other ways to confirm"): the insurance
/// card's 保険者番号 + 記号 + 番号 + 枝番 and the birth date, each validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NumbersQuery {
    pub insurer_number: InsurerNumber,
    /// `None` for 後期高齢者医療 (and when the card has none).
    pub symbol: Option<String>,
    pub number: String,
    /// 2 digits; `None` for 後期高齢者医療.
    pub branch: Option<String>,
    pub birth_date: Date,
}

impl NumbersQuery {
    /// Validates the fields as they arrive from a request (empty string = absent for 記号 and
    /// 枝番; the birth date as `YYYYMMDD`).
    pub fn parse(
        insurer_number: &str,
        symbol: &str,
        number: &str,
        branch: &str,
        birth_date: &str,
    ) -> Result<Self, DomainError> {
        if insurer_number.is_empty() {
            return Err(DomainError::Empty { what: INSURER });
        }
        let insurer_number = InsurerNumber::parse(insurer_number)?;
        let symbol = text_field("記号 (symbol)", symbol, MAX_SYMBOL_CHARS)?;
        let number =
            text_field("番号 (number)", number, MAX_NUMBER_CHARS)?.ok_or(DomainError::Empty {
                what: "番号 (number)",
            })?;
        let branch = if branch.is_empty() {
            None
        } else {
            if branch.len() != 2 {
                return Err(DomainError::WrongLength {
                    what: BRANCH,
                    expected: "2",
                    actual: branch.chars().count(),
                });
            }
            check_digits(BRANCH, branch)?;
            Some(branch.to_owned())
        };
        if insurer_number.is_koki() {
            if symbol.is_some() {
                return Err(DomainError::NotForKoki { what: "記号" });
            }
            if branch.is_some() {
                return Err(DomainError::NotForKoki { what: "枝番" });
            }
        }
        let birth_date = parse_yyyymmdd("birth date", birth_date)?;
        Ok(Self {
            insurer_number,
            symbol,
            number,
            branch,
            birth_date,
        })
    }
}

/// An optional free-text field: empty is `None`; otherwise bounded, no controls or spaces.
fn text_field(what: &'static str, s: &str, max: usize) -> Result<Option<String>, DomainError> {
    if s.is_empty() {
        return Ok(None);
    }
    let actual = s.chars().count();
    if actual > max {
        return Err(DomainError::TooLong { what, max, actual });
    }
    if let Some(position) = s.chars().position(|c| c.is_control() || c.is_whitespace()) {
        return Err(DomainError::BadCharacter { what, position });
    }
    Ok(Some(s.to_owned()))
}

/// Parses `YYYYMMDD` into a calendar date.
pub fn parse_yyyymmdd(what: &'static str, s: &str) -> Result<Date, DomainError> {
    let bad = || DomainError::BadDate {
        what,
        value: s.chars().take(16).collect(),
    };
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let year: i32 = s[..4].parse().map_err(|_| bad())?;
    let month: u8 = s[4..6].parse().map_err(|_| bad())?;
    let day: u8 = s[6..].parse().map_err(|_| bad())?;
    let month = Month::try_from(month).map_err(|_| bad())?;
    Date::from_calendar_date(year, month, day).map_err(|_| bad())
}

/// 医療機関コード: prefecture (2) + point-table code (1: 1 医科, 3 歯科, 4 調剤) + district (2) +
/// institution number (4) + check digit = 10 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstitutionCode(String);

/// Point-table code of a pharmacy (調剤).
pub const POINT_TABLE_PHARMACY: u8 = 4;
/// Point-table code of a medical clinic or hospital (医科).
pub const POINT_TABLE_MEDICAL: u8 = 1;
/// Point-table code of a dental clinic (歯科).
pub const POINT_TABLE_DENTAL: u8 = 3;

impl InstitutionCode {
    /// Parses and validates length, digits and check digit.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        if s.len() != 10 {
            return Err(DomainError::WrongLength {
                what: INSTITUTION,
                expected: "10",
                actual: s.chars().count(),
            });
        }
        check_luhn(INSTITUTION, s)?;
        Ok(Self(s.to_owned()))
    }

    /// Completes a 9-digit body with its check digit; for generators.
    pub fn with_check_digit(body: &str) -> Result<Self, DomainError> {
        if body.len() != 9 {
            return Err(DomainError::WrongLength {
                what: "institution code body",
                expected: "9",
                actual: body.chars().count(),
            });
        }
        append_luhn(INSTITUTION, body).map(Self)
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefecture code.
    pub fn prefecture(&self) -> &str {
        &self.0[..2]
    }

    /// The point-table code ([`POINT_TABLE_PHARMACY`], [`POINT_TABLE_MEDICAL`], …).
    pub fn point_table(&self) -> u8 {
        // Validated as ASCII digits on construction.
        self.0.as_bytes()[2] - b'0'
    }
}

impl fmt::Display for InstitutionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for InstitutionCode {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A person known to the insurance system, as the result echoes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// The simulator's stable person id (not a My Number).
    pub id: String,
    /// Kanji name, family and given name separated by U+3000.
    pub name: String,
    /// Reading in half-width katakana, family and given name separated by a space.
    pub kana_name: String,
    /// 1 男, 2 女, 3 未設定.
    pub sex: u8,
    pub birth_date: Date,
    pub address: String,
    /// `123-4567`.
    pub postcode: String,
    /// 健康保険証利用申込み done: a flag on the person, so a renewed certificate stays
    /// registered.
    pub registered_for_insurance: bool,
}

/// 高齢受給者証 (ages 70–74).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElderlyCertificate {
    pub valid_from: Date,
    pub valid_until: Date,
    /// `"020"`, or `"030"` for 現役並み所得.
    pub copay_ratio: String,
}

/// 限度額適用認定証 and/or the high-cost bracket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HighCostLimit {
    /// `"01"`, `"02"`, `"03"`; `None` when only the bracket is known (since October 2024 the
    /// bracket is provided without a certificate).
    pub certificate_type: Option<String>,
    /// `"A01"`…`"A06"`, `"B01"`…`"B10"`.
    pub bracket: String,
    pub valid_from: Date,
    pub valid_until: Date,
}

/// 特定疾病療養受療証.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecificDisease {
    /// 1 dialysis, 2 haemophilia, 3 HIV from blood products.
    pub category: u8,
    pub monthly_cap_yen: u32,
    pub valid_from: Date,
    pub valid_until: Date,
}

/// One insurance qualification (資格) of a person: the fields of the proto `Qualification`
/// message that belong to the record rather than to the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualificationRecord {
    pub person_id: String,
    /// `"01"` 一般, `"02"` 退職, … (eligibility.md §2).
    pub insured_card_classification: String,
    pub insurer_number: InsurerNumber,
    pub insurer_name: String,
    /// 記号; `None` for 後期高齢者医療.
    pub symbol: Option<String>,
    /// 番号.
    pub number: String,
    /// 枝番, 2 digits; `None` for 後期高齢者医療.
    pub branch: Option<String>,
    /// 1 本人, 2 家族.
    pub personal_family: u8,
    /// 被保険者 (世帯主 for 国保).
    pub insured_person_name: String,
    pub qualification_date: Date,
    /// `None` while the qualification is current.
    pub disqualification_date: Option<Date>,
    /// `"01"` 死亡, `"02"` 生活保護開始, `"03"` 他保険取得, `"99"` その他.
    pub loss_reason: Option<String>,
    pub card_issue_date: Date,
    pub card_valid_from: Date,
    pub card_expiry: Option<Date>,
    /// `"010"`, `"020"`, `"030"`.
    pub copay_ratio: String,
    /// 未就学者.
    pub preschool: bool,
    pub elderly: Option<ElderlyCertificate>,
    pub high_cost_limit: Option<HighCostLimit>,
    pub specific_diseases: Vec<SpecificDisease>,
}

impl QualificationRecord {
    /// In force on `today`: started, and not lost yet (the disqualification date is the first
    /// day without the qualification).
    pub fn is_current(&self, today: Date) -> bool {
        self.qualification_date <= today && self.disqualification_date.is_none_or(|d| d > today)
    }

    /// Lost on or before `today`.
    pub fn is_lost(&self, today: Date) -> bool {
        self.disqualification_date.is_some_and(|d| d <= today)
    }
}

/// Income levels that decide the co-pay ratio (70 and over) and the high-cost bracket. One scale
/// serves every age: under 70 the levels map to brackets ア–オ, from 70 to 現役並みⅢ–低所得Ⅰ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncomeBand {
    /// 住民税非課税 with no income after deductions: 低所得Ⅰ (under 70: オ).
    LowI,
    /// 住民税非課税: 低所得Ⅱ (under 70: オ).
    LowII,
    /// 一般 (under 70: エ). For 後期高齢者医療: 一般Ⅰ, 1割.
    General,
    /// 一般 with some income: for 後期高齢者医療 一般Ⅱ, 2割 since October 2022 (under 70: エ;
    /// 70–74: 一般).
    GeneralII,
    /// 現役並みⅠ (under 70: ウ).
    ActiveI,
    /// 現役並みⅡ (under 70: イ).
    ActiveII,
    /// 現役並みⅢ (under 70: ア).
    ActiveIII,
}

impl IncomeBand {
    /// 現役並み所得: income comparable to the working population; 3割 from 70.
    pub fn is_active(self) -> bool {
        matches!(self, Self::ActiveI | Self::ActiveII | Self::ActiveIII)
    }
}

/// Age in completed years on `today` (a birthday counts from the day itself; 29 February
/// birthdays count from 1 March in common years).
pub fn age_on(birth_date: Date, today: Date) -> u32 {
    let mut years = today.year() - birth_date.year();
    if (today.month() as u8, today.day()) < (birth_date.month() as u8, birth_date.day()) {
        years -= 1;
    }
    u32::try_from(years).unwrap_or(0)
}

/// The day school starts for a child born on `birth_date`: the first 1 April after the child
/// legally turns 6. Legal age increases the day before the birthday, so a child born on 1 April
/// starts a year earlier than one born on 2 April.
pub fn school_start(birth_date: Date) -> Date {
    let year = if (birth_date.month() as u8, birth_date.day()) <= (4, 1) {
        birth_date.year() + 6
    } else {
        birth_date.year() + 7
    };
    april_first(year)
}

fn april_first(year: i32) -> Date {
    // 1 April exists in every year; the clamp keeps the fallback inside time's range.
    Date::from_calendar_date(year.clamp(-9998, 9998), Month::April, 1).unwrap_or(Date::MIN)
}

/// 未就学者 on `today`.
pub fn is_preschool(birth_date: Date, today: Date) -> bool {
    today < school_start(birth_date)
}

/// The first day of the 高齢受給者 status: the first of the month after the 70th birthday, or
/// the birthday month itself for a birthday on the 1st (legally 70 the day before, i.e. in the
/// previous month).
pub fn elderly_start(birth_date: Date) -> Date {
    let year = birth_date.year() + 70;
    let month = birth_date.month();
    if birth_date.day() == 1 {
        first_of_month(year, month)
    } else if month == Month::December {
        first_of_month(year + 1, Month::January)
    } else {
        first_of_month(year, month.next())
    }
}

fn first_of_month(year: i32, month: Month) -> Date {
    Date::from_calendar_date(year.clamp(-9998, 9998), month, 1).unwrap_or(Date::MIN)
}

/// The 75th birthday: membership of 後期高齢者医療 starts on the day itself.
pub fn koki_start(birth_date: Date) -> Date {
    birthday_in(birth_date, birth_date.year() + 75)
}

/// The birthday of `birth_date` in `year`; 29 February becomes 1 March in common years.
pub fn birthday_in(birth_date: Date, year: i32) -> Date {
    let year = year.clamp(-9998, 9998);
    Date::from_calendar_date(year, birth_date.month(), birth_date.day())
        .or_else(|_| Date::from_calendar_date(year, Month::March, 1))
        .unwrap_or(Date::MIN)
}

/// 一部負担金割合 as the three-digit code (eligibility.md §2): 2割 before school age, 3割 from
/// school age to 69, from the month after the 70th birthday 2割 (3割 with 現役並み所得), and in
/// 後期高齢者医療 1割 / 2割 (一般Ⅱ) / 3割 (現役並み) by income.
///
/// `is_koki` is the insurer's kind, not the age: people aged 65–74 with certain disabilities
/// join 後期高齢者医療 too. A non-後期 person of 75 or over (which the real system does not
/// have) gets the 70–74 rule.
pub fn copay_ratio(
    birth_date: Date,
    today: Date,
    is_koki: bool,
    income: IncomeBand,
) -> &'static str {
    if is_koki {
        return if income.is_active() {
            "030"
        } else if income == IncomeBand::GeneralII {
            "020"
        } else {
            "010"
        };
    }
    if is_preschool(birth_date, today) {
        "020"
    } else if today < elderly_start(birth_date) || income.is_active() {
        // Working age, or 70 and over with 現役並み所得.
        "030"
    } else {
        "020"
    }
}

/// The high-cost-care bracket (限度額区分) for a person of `age`: A01 ア … A05 オ under 70;
/// from 70 B01–B03 現役並みⅢ–Ⅰ, B04 一般, B05 低所得Ⅱ, B06 低所得Ⅰ, and from 75
/// (後期高齢者医療) B09 一般Ⅱ / B10 一般Ⅰ for the ordinary bands.
pub fn limit_bracket(age: u32, income: IncomeBand) -> &'static str {
    use IncomeBand::*;
    if age < 70 {
        match income {
            ActiveIII => "A01",
            ActiveII => "A02",
            ActiveI => "A03",
            General | GeneralII => "A04",
            LowII | LowI => "A05",
        }
    } else {
        match income {
            ActiveIII => "B01",
            ActiveII => "B02",
            ActiveI => "B03",
            General if age >= 75 => "B10",
            GeneralII if age >= 75 => "B09",
            General | GeneralII => "B04",
            LowII => "B05",
            LowI => "B06",
        }
    }
}

/// 資格有効性 of a result (eligibility.md §2). The discriminants are the codes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Validity {
    /// 有効: exactly one current qualification.
    Valid = 1,
    /// 無効: no current qualification, the most recent one lost.
    Invalid = 2,
    /// 無効（新しい資格あり）: the qualification asked for is lost but the person has a newer
    /// one. Only the card-less lookup by insurance numbers can ask for a specific, lost record,
    /// so [`assess`] (the card lookup, which sees every record of the person) never returns it.
    InvalidNewAvailable = 3,
    /// 該当資格なし: no qualification at all.
    None = 4,
    /// 複数該当: several current qualifications.
    Multiple = 5,
}

impl Validity {
    /// The code on the wire (1–5).
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// The outcome of looking at a person's records on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub validity: Validity,
    /// The records the result shows: the current one (Valid), every current one (Multiple),
    /// the most recently lost one (Invalid), none (None).
    pub records: Vec<QualificationRecord>,
}

/// Assesses a card lookup: all of a person's records, as of `today`.
pub fn assess(records: &[QualificationRecord], today: Date) -> Assessment {
    let current: Vec<QualificationRecord> = records
        .iter()
        .filter(|r| r.is_current(today))
        .cloned()
        .collect();
    match current.len() {
        1 => Assessment {
            validity: Validity::Valid,
            records: current,
        },
        0 => {
            // The most recently lost record; among equal loss dates the later start, so a
            // deterministic answer does not depend on the order the store returned.
            let lost = records
                .iter()
                .filter(|r| r.is_lost(today))
                .max_by_key(|r| (r.disqualification_date, r.qualification_date));
            match lost {
                Some(r) => Assessment {
                    validity: Validity::Invalid,
                    records: vec![r.clone()],
                },
                None => Assessment {
                    validity: Validity::None,
                    records: Vec::new(),
                },
            }
        }
        _ => Assessment {
            validity: Validity::Multiple,
            records: current,
        },
    }
}

/// Assesses a card-less lookup (eligibility.md §1 "Other ways to confirm"): `records` are all
/// the records of the person the numbers and birth date found, `query` the numbers asked for.
///
/// When the record with those numbers is current, or is lost and nothing else is current, the
/// answer is the card lookup's ([`assess`]: 1, 5 or 2). When it is lost but the person has a
/// newer current qualification, the answer is [`Validity::InvalidNewAvailable`] (3) with the
/// record asked for first, then the current ones, so staff see both the old card and the new
/// qualification. Records with no matching numbers are assessed like a card lookup.
pub fn assess_by_numbers(
    records: &[QualificationRecord],
    query: &NumbersQuery,
    today: Date,
) -> Assessment {
    let asked = records
        .iter()
        .filter(|r| {
            r.insurer_number == query.insurer_number
                && r.symbol == query.symbol
                && r.number == query.number
                && r.branch == query.branch
        })
        .filter(|r| !r.is_current(today))
        .max_by_key(|r| (r.disqualification_date, r.qualification_date));
    let any_asked_current = records.iter().any(|r| {
        r.is_current(today)
            && r.insurer_number == query.insurer_number
            && r.symbol == query.symbol
            && r.number == query.number
            && r.branch == query.branch
    });
    let current: Vec<QualificationRecord> = records
        .iter()
        .filter(|r| r.is_current(today))
        .cloned()
        .collect();
    match asked {
        Some(lost) if !any_asked_current && !current.is_empty() && lost.is_lost(today) => {
            let mut shown = Vec::with_capacity(1 + current.len());
            shown.push(lost.clone());
            shown.extend(current);
            Assessment {
                validity: Validity::InvalidNewAvailable,
                records: shown,
            }
        }
        _ => assess(records, today),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn insurer_numbers_from_the_spec_pass() {
        for s in ["33120015", "01130012", "138057", "131011"] {
            let n = InsurerNumber::parse(s).unwrap();
            assert_eq!(n.as_str(), s);
            assert_eq!(n.to_string(), s);
        }
        let n = InsurerNumber::parse("01130012").unwrap();
        assert_eq!(n.houbetsu(), Some("01"));
        assert_eq!(n.prefecture(), "13");
        assert!(!n.is_kokuho());
        let k = InsurerNumber::parse("131011").unwrap();
        assert!(k.is_kokuho());
        assert_eq!(k.houbetsu(), None);
        assert_eq!(k.prefecture(), "13");
        assert!(!k.is_koki());
    }

    #[test]
    fn institution_codes_from_the_spec_pass() {
        for s in ["0110113719", "2714206386"] {
            assert_eq!(InstitutionCode::parse(s).unwrap().as_str(), s);
        }
        let c = InstitutionCode::parse("2714206386").unwrap();
        assert_eq!(c.prefecture(), "27");
        assert_eq!(c.point_table(), POINT_TABLE_MEDICAL);
        let pharmacy = InstitutionCode::with_check_digit("134012345").unwrap();
        assert_eq!(pharmacy.point_table(), POINT_TABLE_PHARMACY);
        assert_eq!(pharmacy.prefecture(), "13");
    }

    #[test]
    fn every_corrupted_check_digit_is_refused_with_the_expected_digit() {
        for good in ["33120015", "01130012", "138057", "131011"] {
            let (body, last) = good.split_at(good.len() - 1);
            let right: u8 = last.parse().unwrap();
            for d in (0..10u8).filter(|&d| d != right) {
                let bad = format!("{body}{d}");
                assert_eq!(
                    InsurerNumber::parse(&bad),
                    Err(DomainError::BadCheckDigit {
                        what: INSURER,
                        value: bad.clone(),
                        found: d,
                        expected: right,
                    })
                );
            }
        }
        for good in ["0110113719", "2714206386"] {
            let (body, last) = good.split_at(9);
            let right: u8 = last.parse().unwrap();
            let bad = format!("{body}{}", (right + 1) % 10);
            assert!(matches!(
                InstitutionCode::parse(&bad),
                Err(DomainError::BadCheckDigit { expected, .. }) if expected == right
            ));
        }
    }

    #[test]
    fn a_corrupted_body_digit_is_caught() {
        // Luhn catches every single-digit substitution.
        let good = "01130012";
        for pos in 0..7 {
            for d in b'0'..=b'9' {
                let mut bytes = good.as_bytes().to_vec();
                if bytes[pos] == d {
                    continue;
                }
                bytes[pos] = d;
                let bad = String::from_utf8(bytes).unwrap();
                assert!(
                    matches!(
                        InsurerNumber::parse(&bad),
                        Err(DomainError::BadCheckDigit { .. })
                    ),
                    "{bad} accepted"
                );
            }
        }
    }

    #[test]
    fn wrong_lengths_and_non_digits_are_refused() {
        for s in ["", "1", "1311", "1311011", "331200150", "3312001"] {
            assert!(
                matches!(
                    InsurerNumber::parse(s),
                    Err(DomainError::WrongLength { .. })
                ),
                "{s:?}"
            );
        }
        assert_eq!(
            InsurerNumber::parse("3312a015"),
            Err(DomainError::NonDigit {
                what: INSURER,
                position: 4
            })
        );
        assert!(matches!(
            InsurerNumber::parse("１３１０１１"),
            Err(DomainError::WrongLength { actual: 6, .. }) | Err(DomainError::NonDigit { .. })
        ));
        assert!(matches!(
            InstitutionCode::parse("011011371"),
            Err(DomainError::WrongLength { actual: 9, .. })
        ));
        assert!(matches!(
            InstitutionCode::parse("01101137190"),
            Err(DomainError::WrongLength { .. })
        ));
        assert!(matches!(
            InstitutionCode::parse("01101-3719"),
            Err(DomainError::NonDigit { position: 5, .. })
        ));
        assert!(InsurerNumber::parse("1310 1").is_err());
    }

    #[test]
    fn generators_add_the_right_check_digit() {
        assert_eq!(
            InsurerNumber::with_check_digit("3312001").unwrap().as_str(),
            "33120015"
        );
        assert_eq!(
            InsurerNumber::with_check_digit("13101").unwrap().as_str(),
            "131011"
        );
        assert_eq!(
            InstitutionCode::with_check_digit("271420638")
                .unwrap()
                .as_str(),
            "2714206386"
        );
        assert!(InsurerNumber::with_check_digit("331200").is_err());
        assert!(InsurerNumber::with_check_digit("33x2001").is_err());
        assert!(InstitutionCode::with_check_digit("0110113719").is_err());
        // Everything a generator makes parses back.
        for n in 0..2000u32 {
            let body = format!("{:09}", n * 499_979);
            let code = InstitutionCode::with_check_digit(&body).unwrap();
            assert_eq!(InstitutionCode::parse(code.as_str()).unwrap(), code);
        }
    }

    #[test]
    fn ages_count_from_the_birthday() {
        let b = date!(1990 - 06 - 15);
        assert_eq!(age_on(b, date!(2020 - 06 - 14)), 29);
        assert_eq!(age_on(b, date!(2020 - 06 - 15)), 30);
        let leap = date!(2000 - 02 - 29);
        assert_eq!(age_on(leap, date!(2001 - 02 - 28)), 0);
        assert_eq!(age_on(leap, date!(2001 - 03 - 01)), 1);
        assert_eq!(age_on(b, date!(1980 - 01 - 01)), 0);
    }

    #[test]
    fn preschool_ends_on_the_first_april_after_legally_turning_six() {
        // Born 2 April: school from April of the year after the 6th birthday.
        let b = date!(2015 - 04 - 02);
        assert_eq!(school_start(b), date!(2022 - 04 - 01));
        assert_eq!(
            copay_ratio(b, date!(2022 - 03 - 31), false, IncomeBand::General),
            "020"
        );
        assert_eq!(
            copay_ratio(b, date!(2022 - 04 - 01), false, IncomeBand::General),
            "030"
        );
        // Born 1 April: legally 6 on 31 March, so a year earlier.
        assert_eq!(school_start(date!(2015 - 04 - 01)), date!(2021 - 04 - 01));
        // Born in January: the April of the 6th birthday year.
        let j = date!(2016 - 01 - 10);
        assert_eq!(school_start(j), date!(2022 - 04 - 01));
        assert!(is_preschool(j, date!(2022 - 03 - 31)));
        assert!(!is_preschool(j, date!(2022 - 04 - 01)));
        assert!(is_preschool(j, j));
    }

    #[test]
    fn elderly_ratio_starts_the_month_after_the_70th_birthday() {
        let b = date!(1955 - 06 - 15);
        assert_eq!(elderly_start(b), date!(2025 - 07 - 01));
        assert_eq!(
            copay_ratio(b, date!(2025 - 06 - 30), false, IncomeBand::General),
            "030"
        );
        assert_eq!(
            copay_ratio(b, date!(2025 - 07 - 01), false, IncomeBand::General),
            "020"
        );
        assert_eq!(
            copay_ratio(b, date!(2025 - 07 - 01), false, IncomeBand::ActiveI),
            "030"
        );
        assert_eq!(
            copay_ratio(b, date!(2030 - 06 - 14), false, IncomeBand::LowI),
            "020"
        );
        // Born on the 1st: the birthday month itself.
        assert_eq!(elderly_start(date!(1955 - 06 - 01)), date!(2025 - 06 - 01));
        // December birthdays roll into January.
        assert_eq!(elderly_start(date!(1955 - 12 - 20)), date!(2026 - 01 - 01));
    }

    #[test]
    fn koki_ratio_follows_income() {
        let b = date!(1945 - 03 - 03);
        let today = date!(2025 - 11 - 01);
        assert_eq!(copay_ratio(b, today, true, IncomeBand::General), "010");
        assert_eq!(copay_ratio(b, today, true, IncomeBand::LowI), "010");
        assert_eq!(copay_ratio(b, today, true, IncomeBand::GeneralII), "020");
        assert_eq!(copay_ratio(b, today, true, IncomeBand::ActiveIII), "030");
        assert_eq!(koki_start(b), date!(2020 - 03 - 03));
        assert_eq!(koki_start(date!(1952 - 02 - 29)), date!(2027 - 03 - 01));
    }

    #[test]
    fn brackets_by_age_and_income() {
        assert_eq!(limit_bracket(69, IncomeBand::ActiveIII), "A01");
        assert_eq!(limit_bracket(40, IncomeBand::ActiveII), "A02");
        assert_eq!(limit_bracket(40, IncomeBand::ActiveI), "A03");
        assert_eq!(limit_bracket(40, IncomeBand::General), "A04");
        assert_eq!(limit_bracket(40, IncomeBand::LowI), "A05");
        assert_eq!(limit_bracket(70, IncomeBand::ActiveIII), "B01");
        assert_eq!(limit_bracket(72, IncomeBand::ActiveI), "B03");
        assert_eq!(limit_bracket(74, IncomeBand::GeneralII), "B04");
        assert_eq!(limit_bracket(70, IncomeBand::LowII), "B05");
        assert_eq!(limit_bracket(80, IncomeBand::LowI), "B06");
        assert_eq!(limit_bracket(75, IncomeBand::GeneralII), "B09");
        assert_eq!(limit_bracket(75, IncomeBand::General), "B10");
    }

    fn record(from: Date, until: Option<Date>) -> QualificationRecord {
        QualificationRecord {
            person_id: "P1".into(),
            insured_card_classification: "01".into(),
            insurer_number: InsurerNumber::parse("01130012").unwrap(),
            insurer_name: "全国健康保険協会 東京支部".into(),
            symbol: Some("1234".into()),
            number: "56".into(),
            branch: Some("00".into()),
            personal_family: 1,
            insured_person_name: "山田\u{3000}太郎".into(),
            qualification_date: from,
            disqualification_date: until,
            loss_reason: until.map(|_| "03".to_owned()),
            card_issue_date: from,
            card_valid_from: from,
            card_expiry: None,
            copay_ratio: "030".into(),
            preschool: false,
            elderly: None,
            high_cost_limit: None,
            specific_diseases: Vec::new(),
        }
    }

    #[test]
    fn a_lost_cards_numbers_with_a_newer_qualification_answer_3() {
        let today = date!(2026 - 11 - 24);
        let old = record(date!(2020 - 04 - 01), Some(date!(2026 - 08 - 26)));
        let mut new = record(date!(2026 - 08 - 26), None);
        new.insurer_number = InsurerNumber::parse("131011").unwrap();
        new.symbol = Some("67".into());
        new.number = "10000008".into();
        let records = vec![old.clone(), new.clone()];
        let query = |r: &QualificationRecord| NumbersQuery {
            insurer_number: r.insurer_number.clone(),
            symbol: r.symbol.clone(),
            number: r.number.clone(),
            branch: r.branch.clone(),
            birth_date: date!(1980 - 01 - 01),
        };
        // The old card's numbers: 3, the asked-for record first, then the current one.
        let a = assess_by_numbers(&records, &query(&old), today);
        assert_eq!(a.validity, Validity::InvalidNewAvailable);
        assert_eq!(a.records, vec![old.clone(), new.clone()]);
        // The new card's numbers: as a card lookup, 1.
        let a = assess_by_numbers(&records, &query(&new), today);
        assert_eq!(a.validity, Validity::Valid);
        assert_eq!(a.records, vec![new.clone()]);
        // Lost with nothing newer: 2.
        let a = assess_by_numbers(std::slice::from_ref(&old), &query(&old), today);
        assert_eq!(a.validity, Validity::Invalid);
        // Two current records, asked by one of them: 5.
        let mut other = new.clone();
        other.number = "99".into();
        let both = vec![new.clone(), other];
        assert_eq!(
            assess_by_numbers(&both, &query(&new), today).validity,
            Validity::Multiple
        );
    }

    #[test]
    fn currency_boundaries() {
        let today = date!(2025 - 05 - 10);
        assert!(record(today, None).is_current(today));
        assert!(!record(date!(2025 - 05 - 11), None).is_current(today));
        // Lost today: the disqualification date is the first day without cover.
        let r = record(date!(2020 - 01 - 01), Some(today));
        assert!(!r.is_current(today) && r.is_lost(today));
        let r = record(date!(2020 - 01 - 01), Some(date!(2025 - 05 - 11)));
        assert!(r.is_current(today) && !r.is_lost(today));
    }

    #[test]
    fn assess_each_validity() {
        let today = date!(2025 - 05 - 10);
        let current = record(date!(2020 - 04 - 01), None);
        let lost_old = record(date!(2010 - 04 - 01), Some(date!(2015 - 01 - 01)));
        let lost_new = record(date!(2015 - 01 - 01), Some(date!(2025 - 03 - 01)));
        let future = record(date!(2025 - 06 - 01), None);

        let a = assess(&[lost_old.clone(), current.clone()], today);
        assert_eq!(a.validity, Validity::Valid);
        assert_eq!(a.records, vec![current.clone()]);

        let a = assess(&[current.clone(), current.clone()], today);
        assert_eq!(a.validity, Validity::Multiple);
        assert_eq!(a.records.len(), 2);

        let a = assess(&[lost_new.clone(), lost_old.clone(), future.clone()], today);
        assert_eq!(a.validity, Validity::Invalid);
        assert_eq!(a.records, vec![lost_new]);
        assert_eq!(
            assess(std::slice::from_ref(&lost_old), today).records,
            vec![lost_old.clone()]
        );

        let a = assess(&[], today);
        assert_eq!(a.validity, Validity::None);
        assert!(a.records.is_empty());
        assert_eq!(assess(&[future], today).validity, Validity::None);

        assert_eq!(Validity::Valid.code(), 1);
        assert_eq!(Validity::InvalidNewAvailable.code(), 3);
        assert_eq!(Validity::Multiple.code(), 5);
    }
}

#[cfg(test)]
mod numbers_query_tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn a_well_formed_query_parses() {
        let q = NumbersQuery::parse("01130012", "12345678", "901", "00", "19800229").unwrap();
        assert_eq!(q.insurer_number.as_str(), "01130012");
        assert_eq!(q.symbol.as_deref(), Some("12345678"));
        assert_eq!(q.branch.as_deref(), Some("00"));
        assert_eq!(q.birth_date, date!(1980 - 02 - 29));
        let koki = NumbersQuery::parse("39131016", "", "12345678", "", "19400101");
        assert!(koki.is_ok(), "{koki:?}");
    }

    #[test]
    fn each_bad_field_has_its_own_error() {
        let p = |i, s, n, b, d| NumbersQuery::parse(i, s, n, b, d).unwrap_err();
        assert!(matches!(
            p("", "1", "1", "00", "19800101"),
            DomainError::Empty { .. }
        ));
        assert!(matches!(
            p("01130013", "1", "1", "00", "19800101"),
            DomainError::BadCheckDigit { .. }
        ));
        assert!(matches!(
            p("0113001", "1", "1", "00", "19800101"),
            DomainError::WrongLength { .. }
        ));
        assert!(matches!(
            p("0113001x", "1", "1", "00", "19800101"),
            DomainError::NonDigit { .. }
        ));
        assert!(matches!(
            p("01130012", "1", "", "00", "19800101"),
            DomainError::Empty { .. }
        ));
        assert!(matches!(
            p("01130012", "1", "1", "0", "19800101"),
            DomainError::WrongLength { .. }
        ));
        assert!(matches!(
            p("01130012", "1", "1", "0a", "19800101"),
            DomainError::NonDigit { .. }
        ));
        assert!(matches!(
            p("01130012", "1", "1", "00", "19800230"),
            DomainError::BadDate { .. }
        ));
        assert!(matches!(
            p("01130012", "1", "1", "00", "1980-01-01"),
            DomainError::BadDate { .. }
        ));
        let long = "9".repeat(39);
        assert!(matches!(
            p("01130012", &long, "1", "00", "19800101"),
            DomainError::TooLong { .. }
        ));
        assert!(matches!(
            p("01130012", "1 2", "1", "00", "19800101"),
            DomainError::BadCharacter { .. }
        ));
        assert!(matches!(
            p("39131016", "1", "1", "", "19400101"),
            DomainError::NotForKoki { .. }
        ));
        assert!(matches!(
            p("39131016", "", "1", "01", "19400101"),
            DomainError::NotForKoki { .. }
        ));
    }
}
