//! The as-of date of a query by numbers (docs/domain.md "As-of dates"): the JST calendar day
//! the eligibility is asked for. Empty means today; otherwise `YYYYMMDD` within a window around
//! today, so a batch for tomorrow's appointments asks for tomorrow and a claim check asks for
//! the day of a past visit, while a typo (a year off) is refused rather than answered.

use time::{Date, Duration};

use crate::eligibility::{parse_yyyymmdd, DomainError};

/// How far back an as-of date may lie (days before today, inclusive).
pub const MAX_PAST_DAYS: i64 = 365;
/// How far ahead an as-of date may lie (days after today, inclusive).
pub const MAX_FUTURE_DAYS: i64 = 31;

/// Why an as-of date was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AsOfError {
    /// Not `YYYYMMDD` or not in the calendar.
    #[error(transparent)]
    Format(#[from] DomainError),
    /// A calendar date outside the window.
    #[error("as-of date {date} is outside the window {earliest} to {latest} (today {today}, JST)")]
    OutOfRange {
        date: Date,
        today: Date,
        earliest: Date,
        latest: Date,
    },
}

/// The window of as-of dates accepted on `today` (JST), inclusive at both ends.
pub fn window(today: Date) -> (Date, Date) {
    (
        today
            .checked_sub(Duration::days(MAX_PAST_DAYS))
            .unwrap_or(Date::MIN),
        today
            .checked_add(Duration::days(MAX_FUTURE_DAYS))
            .unwrap_or(Date::MAX),
    )
}

/// The day a query asks about: `today` when `text` is empty, else the date `text` names if it
/// lies within [`window`].
pub fn resolve(text: &str, today: Date) -> Result<Date, AsOfError> {
    if text.is_empty() {
        return Ok(today);
    }
    let date = parse_yyyymmdd("as-of date", text)?;
    let (earliest, latest) = window(today);
    if date < earliest || date > latest {
        return Err(AsOfError::OutOfRange {
            date,
            today,
            earliest,
            latest,
        });
    }
    Ok(date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn empty_is_today_and_the_window_edges_are_inclusive() {
        let today = date!(2026 - 12 - 03);
        assert_eq!(resolve("", today), Ok(today));
        assert_eq!(resolve("20261204", today), Ok(date!(2026 - 12 - 04)));
        assert_eq!(resolve("20270103", today), Ok(date!(2027 - 01 - 03)));
        assert_eq!(resolve("20251203", today), Ok(date!(2025 - 12 - 03)));
        assert!(matches!(
            resolve("20270104", today),
            Err(AsOfError::OutOfRange { .. })
        ));
        assert!(matches!(
            resolve("20251202", today),
            Err(AsOfError::OutOfRange { .. })
        ));
    }

    #[test]
    fn malformed_dates_are_format_errors() {
        let today = date!(2026 - 12 - 03);
        for bad in ["2026123", "20261232", "2026-12-03", "20260230", "abcdefgh"] {
            assert!(
                matches!(resolve(bad, today), Err(AsOfError::Format(_))),
                "{bad}"
            );
        }
    }
}
