//! The document each person holds in place of the paper insurance card (docs/world.md
//! "Insurance documents"), derived deterministically from the person and their records: no
//! random draw, so adding it changes nothing else in the world.
//!
//! - Registered for insurance use with a card: 資格情報のお知らせ (no validity period).
//! - Not registered: 資格確認書, valid from the later of its qualification's start and
//!   2024-12-02 (the first day no paper card was issued) until a 31 July (Assumption: the
//!   testbed's insurers renew on one day a year, one to three years ahead; real insurers set
//!   the period themselves, up to five years). One in five of them (by person index) has
//!   lapsed on the last 31 July before today while the qualification is still current
//!   (Assumption: a share chosen so small worlds show the case, not a statistic).
//! - No qualification at all: no document.

use onshi_confirm_service::documents::{DocumentKind, InsuranceDocument};
use onshi_confirm_service::eligibility::QualificationRecord;
use time::{Date, Month};

use super::gen::{date_err, person_index};
use super::Generated;
use crate::error::TestbedError;

/// The first day on which no paper insurance card was issued.
pub const NO_PAPER_CARDS_FROM: Date = time::macros::date!(2024 - 12 - 02);

/// Of the persons holding a 資格確認書, those whose index leaves this remainder modulo
/// [`LAPSED_EVERY`] hold one that lapsed (when their qualification allows).
pub const LAPSED_EVERY: usize = 5;
const LAPSED_REMAINDER: usize = 2;

fn july_31(year: i32) -> Result<Date, TestbedError> {
    Date::from_calendar_date(year, Month::July, 31).map_err(|_| date_err("31 July"))
}

/// The document `g` holds on `today`, or `None` for a person with no qualification.
pub fn document_for(g: &Generated, today: Date) -> Result<Option<InsuranceDocument>, TestbedError> {
    // A 医療扶助 recipient holds neither document (no health insurance).
    if g.records
        .iter()
        .any(onshi_confirm_service::medical_aid::is_medical_aid)
    {
        return Ok(None);
    }
    // The current qualification (the newest if several), else the newest one.
    let record: Option<&QualificationRecord> = g
        .records
        .iter()
        .filter(|r| r.is_current(today))
        .max_by_key(|r| r.qualification_date)
        .or_else(|| g.records.iter().max_by_key(|r| r.qualification_date));
    let Some(record) = record else {
        return Ok(None);
    };
    let person_id = g.person.id.clone();
    if g.person.registered_for_insurance {
        return Ok(Some(InsuranceDocument {
            person_id,
            kind: DocumentKind::Oshirase,
            valid_from: None,
            valid_until: None,
        }));
    }
    let index = person_index(&g.person.id).unwrap_or(0);
    let valid_from = record.qualification_date.max(NO_PAPER_CARDS_FROM);
    // The last 31 July before today.
    let last_renewal = match july_31(today.year())? {
        d if d < today => d,
        _ => july_31(today.year() - 1)?,
    };
    let lapsed = index % LAPSED_EVERY == LAPSED_REMAINDER
        && record.is_current(today)
        && last_renewal >= valid_from;
    let mut valid_until = if lapsed {
        last_renewal
    } else {
        july_31(last_renewal.year() + 1 + (index % 3) as i32)?
    };
    // A document of a lost qualification ends the day before the loss.
    if let Some(lost) = record.disqualification_date.and_then(Date::previous_day) {
        valid_until = valid_until.min(lost);
    }
    Ok(Some(InsuranceDocument {
        person_id,
        kind: DocumentKind::Kakuninsho,
        valid_from: Some(valid_from),
        valid_until: Some(valid_until.max(valid_from)),
    }))
}
