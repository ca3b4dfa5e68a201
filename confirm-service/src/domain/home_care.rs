//! Home visits and online care (訪問診療・訪問看護, オンライン診療; docs/domain.md "Home visits
//! and online care"): the query's treatment flag, and the 居宅同意取得型 flow. A first visit
//! reads the patient's card with a mobile device (PIN, or a staff member's visual check attested
//! by the device's key) and records the patient's consent to later re-queries by this
//! institution for that treatment; later visits re-query without the card until the end of the
//! re-query period.
//!
//! The consent is stored as a consent of its own kind (one per treatment) in the consents table:
//! given at the first visit, valid until the instant after the period's last day.
//!
//! Assumption (documented in docs/domain.md): the period runs until the end of the month after
//! the first visit's month (JST); the public sources say only "while the continuous relationship
//! lasts". A re-query does not extend it; a new first visit with the card does.

use onshi_proto::v1::{self as pb, MedicalTreatment};
use time::{Date, Duration, Month, OffsetDateTime, Time};

use crate::consent::{ConsentGrant, ConsentKind};
use crate::eligibility::DomainError;
use crate::outcome::Refusal;
use crate::service::JST;

/// The request's treatment; a value this version does not know is refused.
pub fn treatment(value: i32) -> Result<MedicalTreatment, Refusal> {
    MedicalTreatment::try_from(value).map_err(|_| Refusal::UnknownEnum {
        what: "medical treatment",
        value,
    })
}

/// The consent kind that holds a 居宅同意取得型 consent for `treatment`: only home visits and
/// online care have one (a first visit or re-query for 外来 is contradictory).
pub fn requery_kind(treatment: MedicalTreatment) -> Result<ConsentKind, Refusal> {
    match treatment {
        MedicalTreatment::HomeVisit => Ok(ConsentKind::HomeVisitRequery),
        MedicalTreatment::Online => Ok(ConsentKind::OnlineRequery),
        MedicalTreatment::Unspecified | MedicalTreatment::Outpatient => {
            Err(Refusal::Invalid(DomainError::Contradictory {
                what: "a 居宅同意取得型 first visit or re-query needs treatment 2 (訪問診療・訪問看護) \
                       or 3 (オンライン診療)",
            }))
        }
    }
}

/// The last day (JST, inclusive) of the re-query period of a first visit on `first`: the last
/// day of the following month.
pub fn requery_until(first: Date) -> Date {
    let (year, month) = match first.month() {
        Month::December => (first.year() + 1, Month::January),
        m => (first.year(), m.next()),
    };
    let days = month.length(year);
    Date::from_calendar_date(year, month, days).unwrap_or(first)
}

/// The consent a first visit at `now` records: valid from `now` until the start (JST) of the
/// day after the period's last day.
pub fn first_visit_grant(
    person_id: &str,
    institution_code: &str,
    kind: ConsentKind,
    now: OffsetDateTime,
) -> ConsentGrant {
    let last = requery_until(now.to_offset(JST).date());
    let end = (last + Duration::days(1))
        .with_time(Time::MIDNIGHT)
        .assume_offset(JST);
    ConsentGrant {
        person_id: person_id.to_owned(),
        institution_code: institution_code.to_owned(),
        kind,
        given_at: now,
        valid_until: end,
    }
}

/// Whether a re-query at `now` may be answered from the person's grants to the institution:
/// the period the answer echoes, or the refusal.
pub fn check_requery(
    grants: &[ConsentGrant],
    institution_code: &str,
    kind: ConsentKind,
    now: OffsetDateTime,
) -> Result<pb::HomeCarePeriod, Refusal> {
    match crate::consent::check(grants, institution_code, kind, now) {
        crate::consent::ConsentCheck::Valid(g) => Ok(period(&g)),
        crate::consent::ConsentCheck::Missing => Err(Refusal::RequeryNotConsented),
        crate::consent::ConsentCheck::Expired(g) => Err(Refusal::RequeryPeriodEnded(
            crate::answer::yyyymmdd(last_day(&g)),
        )),
    }
}

/// The period a grant opened, as the answer carries it.
pub fn period(grant: &ConsentGrant) -> pb::HomeCarePeriod {
    let treatment = match grant.kind {
        ConsentKind::OnlineRequery => MedicalTreatment::Online,
        _ => MedicalTreatment::HomeVisit,
    };
    pb::HomeCarePeriod {
        treatment: treatment as i32,
        institution_code: grant.institution_code.clone(),
        consented_on: crate::answer::yyyymmdd(grant.given_at.to_offset(JST).date()),
        requery_until: crate::answer::yyyymmdd(last_day(grant)),
    }
}

fn last_day(grant: &ConsentGrant) -> Date {
    (grant.valid_until - Duration::nanoseconds(1))
        .to_offset(JST)
        .date()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn the_period_ends_with_the_following_month() {
        assert_eq!(requery_until(date!(2026 - 12 - 03)), date!(2027 - 01 - 31));
        assert_eq!(requery_until(date!(2026 - 01 - 31)), date!(2026 - 02 - 28));
        assert_eq!(requery_until(date!(2027 - 12 - 31)), date!(2028 - 01 - 31));
        assert_eq!(requery_until(date!(2028 - 01 - 01)), date!(2028 - 02 - 29));
    }

    #[test]
    fn a_requery_is_answered_through_the_last_day_jst_only() {
        // 2026-12-03 10:00 JST.
        let first = datetime!(2026-12-03 01:00 UTC);
        let g = first_visit_grant("P1", "1310000012", ConsentKind::HomeVisitRequery, first);
        let grants = vec![g];
        let kind = ConsentKind::HomeVisitRequery;
        // 2027-01-31 23:59:59 JST: the last day.
        let last = datetime!(2027-01-31 14:59:59 UTC);
        let period = check_requery(&grants, "1310000012", kind, last).unwrap();
        assert_eq!(period.requery_until, "20270131");
        assert_eq!(period.consented_on, "20261203");
        // 2027-02-01 00:00 JST: the day after.
        let after = datetime!(2027-01-31 15:00 UTC);
        assert!(matches!(
            check_requery(&grants, "1310000012", kind, after),
            Err(Refusal::RequeryPeriodEnded(d)) if d == "20270131"
        ));
        // Another institution, another treatment: no consent.
        assert!(matches!(
            check_requery(&grants, "1310000020", kind, last),
            Err(Refusal::RequeryNotConsented)
        ));
        assert!(matches!(
            check_requery(&grants, "1310000012", ConsentKind::OnlineRequery, last),
            Err(Refusal::RequeryNotConsented)
        ));
    }

    #[test]
    fn outpatient_has_no_requery() {
        assert!(requery_kind(MedicalTreatment::Outpatient).is_err());
        assert!(requery_kind(MedicalTreatment::Unspecified).is_err());
        assert!(treatment(9).is_err());
    }
}
