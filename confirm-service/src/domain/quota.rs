//! Quotas against enumeration through card-less look-ups (`ConfirmByNumbers`, batch items,
//! clinical-data requests): how many look-ups an institution may make in 24 hours, and how
//! many different birth dates that matched nobody it may try with the same insurance-card
//! numbers (docs/security.md, "Another institution").
//!
//! The counts are kept in this instance's memory, in hourly buckets (look-ups) and per
//! numbers (missed birth dates), and forgotten after 24 hours; their size is bounded by the
//! look-up quota (every entry is one counted look-up; the configuration refuses a birth-date
//! limit without a look-up quota). A restart forgets them. Numbers are kept as a SHA-256 digest with
//! the institution, never in clear. Several instances sharing one store count apart, so behind
//! a load balancer an institution's allowance is the quota times the number of instances; that
//! limitation is documented in docs/security.md.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use time::{Date, Duration, OffsetDateTime};

use crate::config::QuotaConfig;
use crate::eligibility::NumbersQuery;
use crate::outcome::Refusal;

/// The window both quotas look back over.
const WINDOW: Duration = Duration::hours(24);
/// Look-ups are counted per hour of arrival; 25 buckets cover any 24 hours.
const BUCKET_SECONDS: i64 = 3600;

/// The quota state of one service instance.
#[derive(Debug)]
pub struct Quotas {
    config: QuotaConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Per institution: (hour, look-ups counted in it), oldest first.
    lookups: HashMap<String, VecDeque<(i64, u32)>>,
    /// Per digest of (institution, insurer number, 記号, 番号): the different birth dates
    /// asked and when each was first asked.
    birth_dates: HashMap<[u8; 32], Vec<(Date, OffsetDateTime)>>,
    /// When expired birth-date entries were last swept.
    swept: Option<OffsetDateTime>,
}

impl Quotas {
    pub fn new(config: QuotaConfig) -> Self {
        Quotas {
            config,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Counts `n` card-less look-ups of `institution` at `now`, or refuses them all when they
    /// would take the institution over its quota for the last 24 hours.
    pub fn charge_lookups(
        &self,
        institution: &str,
        n: u32,
        now: OffsetDateTime,
    ) -> Result<(), Refusal> {
        let limit = self.config.lookups_per_day;
        if limit == 0 {
            return Ok(());
        }
        let hour = now.unix_timestamp().div_euclid(BUCKET_SECONDS);
        let oldest = (now - WINDOW).unix_timestamp().div_euclid(BUCKET_SECONDS);
        let mut inner = self.lock();
        let buckets = inner.lookups.entry(institution.to_owned()).or_default();
        while buckets.front().is_some_and(|(h, _)| *h < oldest) {
            buckets.pop_front();
        }
        let used: u64 = buckets.iter().map(|(_, c)| u64::from(*c)).sum();
        if used + u64::from(n) > u64::from(limit) {
            crate::observe::refused("quota-exceeded");
            return Err(Refusal::QuotaExceeded { limit });
        }
        match buckets.back_mut() {
            Some((h, c)) if *h == hour => *c += n,
            _ => buckets.push_back((hour, n)),
        }
        Ok(())
    }

    /// Refuses a look-up of `query`'s numbers by `institution` when the institution has
    /// already asked about these numbers with as many different birth dates that matched
    /// nobody as allowed, within 24 hours. Only misses count: a family shares its 保険者番号,
    /// 記号 and 番号 (one 枝番 and one birth date each), and every member's true date is
    /// answered. The refusal depends only on misses the caller has already been told about,
    /// so it says nothing new about the numbers.
    pub fn check_numbers(
        &self,
        institution: &str,
        query: &NumbersQuery,
        now: OffsetDateTime,
    ) -> Result<(), Refusal> {
        let limit = self.config.birth_dates_per_numbers;
        if limit == 0 {
            return Ok(());
        }
        let key = numbers_key(institution, query);
        let since = now - WINDOW;
        let mut inner = self.lock();
        inner.sweep(now);
        let misses = inner.birth_dates.get(&key).map_or(0, |dates| {
            dates.iter().filter(|(_, at)| *at > since).count()
        });
        if misses >= limit as usize {
            crate::observe::refused("too-many-birth-dates");
            return Err(Refusal::TooManyBirthDates { limit });
        }
        Ok(())
    }

    /// Records that `query`'s birth date matched nobody with its numbers (a date already
    /// recorded is not counted twice).
    pub fn record_miss(&self, institution: &str, query: &NumbersQuery, now: OffsetDateTime) {
        if self.config.birth_dates_per_numbers == 0 {
            return;
        }
        let key = numbers_key(institution, query);
        let since = now - WINDOW;
        let mut inner = self.lock();
        let dates = inner.birth_dates.entry(key).or_default();
        dates.retain(|(_, at)| *at > since);
        if !dates.iter().any(|(d, _)| *d == query.birth_date) {
            dates.push((query.birth_date, now));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The counts stay consistent whatever a panicking holder was doing: each update is
        // one push or one addition.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    /// Forgets birth dates older than the window, at most once a minute.
    fn sweep(&mut self, now: OffsetDateTime) {
        if self
            .swept
            .is_some_and(|at| now - at < Duration::minutes(1) && now >= at)
        {
            return;
        }
        self.swept = Some(now);
        let since = now - WINDOW;
        self.birth_dates.retain(|_, dates| {
            dates.retain(|(_, at)| *at > since);
            !dates.is_empty()
        });
        self.lookups.retain(|_, buckets| {
            buckets
                .back()
                .is_some_and(|(h, _)| *h >= since.unix_timestamp().div_euclid(BUCKET_SECONDS))
        });
    }
}

/// The key of one institution's questions about one set of numbers. The branch (枝番) is left
/// out on purpose: varying it must not buy more birth dates.
fn numbers_key(institution: &str, query: &NumbersQuery) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [
        institution,
        query.insurer_number.as_str(),
        query.symbol.as_deref().unwrap_or(""),
        query.number.as_str(),
    ] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part.as_bytes());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn query(number: &str, birth: &str) -> NumbersQuery {
        NumbersQuery::parse("06139992", "67", number, "00", birth).expect("a valid query")
    }

    const NOW: OffsetDateTime = datetime!(2026-12-02 09:00 UTC);

    #[test]
    fn lookups_are_counted_per_institution_over_24_hours() {
        let q = Quotas::new(QuotaConfig {
            lookups_per_day: 10,
            birth_dates_per_numbers: 0,
        });
        q.charge_lookups("A", 6, NOW).unwrap();
        // A batch that does not fit is refused whole, and counts nothing.
        assert!(matches!(
            q.charge_lookups("A", 5, NOW),
            Err(Refusal::QuotaExceeded { limit: 10 })
        ));
        q.charge_lookups("A", 4, NOW + Duration::hours(3)).unwrap();
        assert!(q.charge_lookups("A", 1, NOW + Duration::hours(3)).is_err());
        // Another institution has its own quota.
        q.charge_lookups("B", 10, NOW).unwrap();
        // 24 hours (and the rest of the hour) after the first 6, they no longer count.
        assert!(q.charge_lookups("A", 6, NOW + Duration::hours(24)).is_err());
        q.charge_lookups("A", 6, NOW + Duration::hours(25)).unwrap();
        assert!(q.charge_lookups("A", 1, NOW + Duration::hours(25)).is_err());
    }

    #[test]
    fn a_zero_quota_is_no_quota() {
        let q = Quotas::new(QuotaConfig {
            lookups_per_day: 0,
            birth_dates_per_numbers: 0,
        });
        for i in 0..1000 {
            q.charge_lookups("A", 10_000, NOW).unwrap();
            let query = query("1", &format!("19{:02}0101", i % 100));
            q.check_numbers("A", &query, NOW).unwrap();
            q.record_miss("A", &query, NOW);
        }
        assert!(q.lock().birth_dates.is_empty());
    }

    /// Asks as the service does: check, then record the date if it matched nobody.
    fn ask(q: &Quotas, institution: &str, query: &NumbersQuery, matches: bool) -> bool {
        let allowed = q.check_numbers(institution, query, NOW).is_ok();
        if allowed && !matches {
            q.record_miss(institution, query, NOW);
        }
        allowed
    }

    #[test]
    fn after_as_many_missed_birth_dates_as_allowed_the_numbers_are_refused() {
        let q = Quotas::new(QuotaConfig {
            lookups_per_day: 0,
            birth_dates_per_numbers: 3,
        });
        for birth in ["19800101", "19800102", "19800102", "19800103"] {
            assert!(ask(&q, "A", &query("1234", birth), false), "{birth}");
        }
        // Three different misses (one asked twice): every further look-up of these numbers
        // is refused, the true date too.
        assert!(matches!(
            q.check_numbers("A", &query("1234", "19801112"), NOW),
            Err(Refusal::TooManyBirthDates { limit: 3 })
        ));
        // Another branch (枝番) is the same numbers.
        let other_branch = NumbersQuery::parse("06139992", "67", "1234", "01", "19801112").unwrap();
        assert!(q.check_numbers("A", &other_branch, NOW).is_err());
        // Other numbers, and another institution, count apart.
        assert!(ask(&q, "A", &query("5678", "19801112"), true));
        assert!(ask(&q, "B", &query("1234", "19801112"), true));
        // A day later the misses are forgotten.
        q.check_numbers("A", &query("1234", "19801112"), NOW + WINDOW)
            .unwrap();
    }

    /// A family shares 保険者番号, 記号 and 番号, each member with an 枝番 and a birth date:
    /// every member's true date is answered, however many members.
    #[test]
    fn a_family_sharing_numbers_is_never_refused_for_its_true_dates() {
        let q = Quotas::new(QuotaConfig {
            lookups_per_day: 0,
            birth_dates_per_numbers: 3,
        });
        for (branch, birth) in [
            ("00", "19700101"),
            ("01", "19720202"),
            ("02", "20050303"),
            ("03", "20080404"),
            ("04", "20110505"),
        ] {
            let member = NumbersQuery::parse("06139992", "67", "1234", branch, birth).unwrap();
            for _ in 0..3 {
                assert!(ask(&q, "A", &member, true), "{branch}");
            }
        }
        // Two typos still leave room.
        assert!(ask(&q, "A", &query("1234", "19700102"), false));
        assert!(ask(&q, "A", &query("1234", "19700110"), false));
        assert!(ask(&q, "A", &query("1234", "20110505"), true));
    }

    #[test]
    fn forgotten_entries_are_swept() {
        let q = Quotas::new(QuotaConfig::default());
        for i in 0..500 {
            let birth = format!("19{:02}0101", i % 100);
            q.record_miss("A", &query(&i.to_string(), &birth), NOW);
            q.charge_lookups(&format!("I{i}"), 1, NOW).unwrap();
        }
        assert_eq!(q.lock().birth_dates.len(), 500);
        q.check_numbers("A", &query("1", "19800101"), NOW + Duration::hours(26))
            .unwrap();
        let inner = q.lock();
        assert!(inner.birth_dates.is_empty());
        assert!(inner.lookups.is_empty());
    }
}
