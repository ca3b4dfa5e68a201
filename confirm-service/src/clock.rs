//! The one clock the service reads. Tests and `check-cert --at` set it; nothing else in the
//! service calls `now()` directly: challenges, certificates, consents, confirmation ids, the
//! rate limiter and the terminal cache all read the time from here.

use time::OffsetDateTime;

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> OffsetDateTime;
}

/// The real time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A fixed instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// A clock that stands still until moved: tests set it and move it forward (or back) to show
/// what time does (a consent expiring, a rate limit refilling, a cache entry going stale).
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(at: OffsetDateTime) -> Self {
        ManualClock(std::sync::Mutex::new(at))
    }

    /// Moves the clock by `by` (negative moves it back).
    pub fn advance(&self, by: time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    /// Sets the clock to `at`.
    pub fn set(&self, at: OffsetDateTime) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_manual_clock_stands_still_until_moved() {
        let clock = ManualClock::new(datetime!(2026-04-01 09:00 UTC));
        assert_eq!(clock.now(), datetime!(2026-04-01 09:00 UTC));
        assert_eq!(clock.now(), datetime!(2026-04-01 09:00 UTC));
        clock.advance(time::Duration::hours(25));
        assert_eq!(clock.now(), datetime!(2026-04-02 10:00 UTC));
        clock.advance(-time::Duration::minutes(1));
        assert_eq!(clock.now(), datetime!(2026-04-02 09:59 UTC));
        clock.set(datetime!(2027-01-01 00:00 UTC));
        assert_eq!(clock.now(), datetime!(2027-01-01 00:00 UTC));
    }
}
