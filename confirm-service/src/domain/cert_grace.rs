//! The user-authentication certificate's standing for eligibility (rules of 2024-12-02,
//! docs/domain.md "Certificate grace"): a certificate in the three months before its expiry
//! confirms with a renewal warning; an expired one still confirms eligibility until the end of
//! the third month after the month in which it expired, with a warning and without the
//! consent-gated data. Past that it is refused as expired.
//!
//! Months are calendar months in Japan Standard Time (JST, UTC+9, no daylight saving): an
//! expiry on 2026-08-15 (JST) confirms until 2026-11-30 23:59:59.999… JST. Pure functions of
//! the certificate's notAfter and the time asked about; validation itself (`check-cert`, the
//! certificate cache) is unchanged and still calls such a certificate expired.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Japan Standard Time.
pub const JST: UtcOffset = match UtcOffset::from_hms(9, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// Calendar months after the expiry month during which eligibility is still confirmed.
pub const GRACE_MONTHS: u8 = 3;
/// Calendar months before the expiry during which the answer carries a renewal warning.
pub const RENEWAL_WARNING_MONTHS: u8 = 3;

/// Where a certificate stands at one instant, for a confirmation of eligibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Valid, and more than three months from its expiry.
    Valid { not_after: OffsetDateTime },
    /// Valid, expiring within three months: confirm, with a renewal warning.
    Expiring { not_after: OffsetDateTime },
    /// Expired, within the grace period: confirm eligibility with a warning; no data sharing.
    InGrace {
        not_after: OffsetDateTime,
        grace_until: OffsetDateTime,
    },
    /// Expired and past the grace period: refused as expired.
    PastGrace {
        not_after: OffsetDateTime,
        grace_until: OffsetDateTime,
    },
}

impl Standing {
    /// Whether the consent-gated data (medication, checkups, clinical, surgery) may be shared.
    pub fn shares_data(self) -> bool {
        matches!(self, Self::Valid { .. } | Self::Expiring { .. })
    }
}

/// The certificate's standing at `at` (validity periods are inclusive: at exactly notAfter
/// the certificate is still valid, as in validation).
pub fn standing(not_after: OffsetDateTime, at: OffsetDateTime) -> Standing {
    if at <= not_after {
        if at >= renewal_warning_from(not_after) {
            Standing::Expiring { not_after }
        } else {
            Standing::Valid { not_after }
        }
    } else {
        let grace_until = grace_until(not_after);
        if at <= grace_until {
            Standing::InGrace {
                not_after,
                grace_until,
            }
        } else {
            Standing::PastGrace {
                not_after,
                grace_until,
            }
        }
    }
}

/// The last instant a certificate expired at `not_after` still confirms eligibility: the end
/// (23:59:59.999999999 JST) of the last day of the third month after the JST month of expiry.
pub fn grace_until(not_after: OffsetDateTime) -> OffsetDateTime {
    let expiry = not_after.to_offset(JST).date();
    let (year, month) = months_after(expiry.year(), expiry.month(), GRACE_MONTHS);
    let last_day = month.length(year);
    let date = Date::from_calendar_date(year, month, last_day).unwrap_or(Date::MAX);
    PrimitiveDateTime::new(date, Time::MAX).assume_offset(JST)
}

/// The first instant of the renewal warning: 00:00 JST of the day three calendar months
/// before the JST day of expiry (a day the earlier month lacks becomes its last day, so an
/// expiry on 31 May warns from 28 or 29 February).
pub fn renewal_warning_from(not_after: OffsetDateTime) -> OffsetDateTime {
    let expiry = not_after.to_offset(JST).date();
    let (year, month) = months_before(expiry.year(), expiry.month(), RENEWAL_WARNING_MONTHS);
    let day = expiry.day().min(month.length(year));
    let date = Date::from_calendar_date(year, month, day).unwrap_or(Date::MIN);
    PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_offset(JST)
}

fn months_after(year: i32, month: Month, n: u8) -> (i32, Month) {
    let index = i32::from(month as u8) - 1 + i32::from(n);
    month_of(year + index.div_euclid(12), index.rem_euclid(12))
}

fn months_before(year: i32, month: Month, n: u8) -> (i32, Month) {
    let index = i32::from(month as u8) - 1 - i32::from(n);
    month_of(year + index.div_euclid(12), index.rem_euclid(12))
}

fn month_of(year: i32, zero_based: i32) -> (i32, Month) {
    // `zero_based` is in 0..12, so the conversion cannot fail; January is the fallback.
    let month = u8::try_from(zero_based + 1)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .unwrap_or(Month::January);
    (year.clamp(-9998, 9998), month)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn grace_runs_to_the_end_of_the_third_month_after_the_expiry_month() {
        let not_after = datetime!(2026-08-15 14:59:59 UTC); // 23:59:59 JST
        let until = grace_until(not_after);
        assert_eq!(
            until.to_offset(JST).date(),
            time::macros::date!(2026 - 11 - 30)
        );
        assert_eq!(until.to_offset(JST).time(), Time::MAX);
        // The last instant of 30 November JST is 14:59:59.999… UTC.
        assert!(until > datetime!(2026-11-30 14:59:59 UTC));
        assert!(until < datetime!(2026-11-30 15:00:00 UTC));
    }

    #[test]
    fn the_expiry_month_is_the_jst_month() {
        // 2026-08-31 16:00 UTC is 1 September JST: grace to the end of December.
        let until = grace_until(datetime!(2026-08-31 16:00 UTC));
        assert_eq!(
            until.to_offset(JST).date(),
            time::macros::date!(2026 - 12 - 31)
        );
        // 15:00 UTC on 31 August is still 31 August 23:59:59 JST + 1 s = 1 September.
        let until = grace_until(datetime!(2026-08-31 14:59:59 UTC));
        assert_eq!(
            until.to_offset(JST).date(),
            time::macros::date!(2026 - 11 - 30)
        );
    }

    #[test]
    fn grace_crosses_the_year_and_knows_february() {
        let until = grace_until(datetime!(2026-11-10 00:00 +09:00));
        assert_eq!(
            until.to_offset(JST).date(),
            time::macros::date!(2027 - 02 - 28)
        );
        let until = grace_until(datetime!(2027-11-10 00:00 +09:00));
        assert_eq!(
            until.to_offset(JST).date(),
            time::macros::date!(2028 - 02 - 29)
        );
    }

    #[test]
    fn standing_at_each_boundary() {
        let not_after = datetime!(2026-08-15 23:59:59 +09:00);
        let warn_from = datetime!(2026-05-15 00:00 +09:00);
        assert_eq!(renewal_warning_from(not_after), warn_from);
        let just_before_warning = warn_from - time::Duration::nanoseconds(1);
        assert_eq!(
            standing(not_after, just_before_warning),
            Standing::Valid { not_after }
        );
        assert_eq!(
            standing(not_after, warn_from),
            Standing::Expiring { not_after }
        );
        assert_eq!(
            standing(not_after, not_after),
            Standing::Expiring { not_after }
        );
        let grace_until = datetime!(2026-11-30 23:59:59.999_999_999 +09:00);
        assert_eq!(
            standing(not_after, not_after + time::Duration::seconds(1)),
            Standing::InGrace {
                not_after,
                grace_until
            }
        );
        assert_eq!(
            standing(not_after, grace_until),
            Standing::InGrace {
                not_after,
                grace_until
            }
        );
        assert_eq!(
            standing(not_after, datetime!(2026-12-01 00:00 +09:00)),
            Standing::PastGrace {
                not_after,
                grace_until
            }
        );
        assert!(!standing(not_after, grace_until).shares_data());
        assert!(standing(not_after, warn_from).shares_data());
    }

    #[test]
    fn the_renewal_warning_clamps_to_a_shorter_month() {
        let from = renewal_warning_from(datetime!(2026-05-31 12:00 +09:00));
        assert_eq!(from, datetime!(2026-02-28 00:00 +09:00));
        let from = renewal_warning_from(datetime!(2027-01-15 12:00 +09:00));
        assert_eq!(from, datetime!(2026-10-15 00:00 +09:00));
    }
}
