//! Caller-supplied monotonic time.
//!
//! The core never reads a clock: every operation that depends on time (FDB
//! aging per IEEE 802.1D §7.9.2) takes a [`Timestamp`] from the caller. This
//! keeps the bridge deterministic and lets tests drive time explicitly.

use std::ops::Add;
use std::time::Duration;

/// Monotonic time in milliseconds since an arbitrary origin, supplied by the caller.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The origin, `0` ms.
    pub const ZERO: Timestamp = Timestamp(0);
    /// The latest representable instant; additions saturate here.
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// A timestamp `ms` milliseconds after the origin.
    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later
    /// (e.g. a caller whose clock stepped backwards).
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    /// Adds a duration, truncated to whole milliseconds and saturating at
    /// [`Timestamp::MAX`] (never panics).
    fn add(self, rhs: Duration) -> Timestamp {
        let ms = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_round_trip_and_ordering() {
        let t = Timestamp::from_millis(1234);
        assert_eq!(t.as_millis(), 1234);
        assert!(Timestamp::ZERO < t && t < Timestamp::MAX);
        assert_eq!(Timestamp::default(), Timestamp::ZERO);
    }

    #[test]
    fn duration_since_saturates() {
        let a = Timestamp::from_millis(1_000);
        let b = Timestamp::from_millis(3_500);
        assert_eq!(b.saturating_duration_since(a), Duration::from_millis(2_500));
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
    }

    #[test]
    fn add_truncates_and_saturates() {
        let t = Timestamp::from_millis(10);
        assert_eq!(t + Duration::from_micros(2_999), Timestamp::from_millis(12));
        assert_eq!(
            t + Duration::from_secs(300),
            Timestamp::from_millis(300_010)
        );
        assert_eq!(t + Duration::MAX, Timestamp::MAX);
        assert_eq!(Timestamp::MAX + Duration::from_millis(1), Timestamp::MAX);
    }
}
