//! Exponential backoff: each wait is the previous one times a factor, up to a cap, then spread
//! by a random ±jitter so that a burst of failures does not retry in lockstep.

use std::time::Duration;

use crate::jitter;

/// `base * factor^(attempt-1)`, capped at `max`, then spread by ±`jitter` (so a capped wait may
/// come out up to `jitter` above `max`: the spread matters most where many retries meet).
///
/// The fields are public for literal construction; the builder methods keep the values in range.
/// Whatever the fields hold, [`delay`](Self::delay) never panics: a negative or NaN wait is zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exponential {
    /// Wait after the first attempt.
    pub base: Duration,
    /// Growth of each further wait (at least 1 through [`factor`](Self::factor)).
    pub factor: f64,
    /// Largest wait before jitter.
    pub max: Duration,
    /// Relative spread, from 0.0 (exact waits) to 1.0; 0.1 is ±10 %.
    pub jitter: f64,
}

impl Exponential {
    /// The jitter of [`new`](Self::new): ±10 %.
    pub const DEFAULT_JITTER: f64 = 0.1;

    /// Waits of `base`, doubling after each attempt, at most `max`, ±10 %.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            factor: 2.0,
            max,
            jitter: Self::DEFAULT_JITTER,
        }
    }

    /// Sets the first wait.
    pub fn base(mut self, base: Duration) -> Self {
        self.base = base;
        self
    }

    /// Sets the growth factor; below 1 (the waits would shrink) or not finite, it is 1.
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = if factor.is_finite() {
            factor.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// Sets the longest wait (before jitter).
    pub fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Sets the relative spread, clamped to 0.0–1.0 (NaN is 0.0: exact waits).
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = clamp_unit(jitter);
        self
    }

    /// The wait after attempt number `attempt` (1-based; 0 counts as 1) failed.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let raw = self.base.as_secs_f64() * self.factor.powi(exponent);
        // NaN only comes from a zero base times an infinite growth (or a NaN factor written
        // into the field): no wait, rather than the cap that `f64::min` would pick.
        let capped = if raw.is_nan() {
            0.0
        } else {
            raw.min(self.max.as_secs_f64())
        };
        let spread = clamp_unit(self.jitter);
        let secs = if spread == 0.0 {
            capped
        } else {
            capped * (1.0 + spread * jitter::signed_unit())
        };
        Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(self.max)
    }
}

fn clamp_unit(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(base_ms: u64, max_ms: u64) -> Exponential {
        Exponential::new(
            Duration::from_millis(base_ms),
            Duration::from_millis(max_ms),
        )
        .jitter(0.0)
    }

    #[test]
    fn without_jitter_the_waits_are_exact_and_capped() {
        let e = exact(100, 350);
        assert_eq!(e.delay(1), Duration::from_millis(100));
        assert_eq!(e.delay(2), Duration::from_millis(200));
        assert_eq!(e.delay(3), Duration::from_millis(350));
        assert_eq!(e.delay(u32::MAX), Duration::from_millis(350));
        assert_eq!(e.delay(0), Duration::from_millis(100));
    }

    #[test]
    fn the_factor_sets_the_growth() {
        let e = exact(100, 10_000).factor(3.0);
        assert_eq!(e.delay(3), Duration::from_millis(900));
        assert_eq!(
            exact(100, 10_000).factor(1.0).delay(9),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn builders_keep_values_in_range() {
        let e = exact(1, 2);
        assert_eq!(e.factor(0.5).factor, 1.0);
        assert_eq!(e.factor(f64::NAN).factor, 1.0);
        assert_eq!(e.factor(f64::INFINITY).factor, 1.0);
        assert_eq!(e.jitter(-1.0).jitter, 0.0);
        assert_eq!(e.jitter(7.0).jitter, 1.0);
        assert_eq!(e.jitter(f64::NAN).jitter, 0.0);
        let e = e.base(Duration::from_secs(3)).max(Duration::from_secs(4));
        assert_eq!(
            (e.base, e.max),
            (Duration::from_secs(3), Duration::from_secs(4))
        );
    }

    #[test]
    fn jitter_stays_within_its_spread() {
        let e = Exponential::new(Duration::from_secs(10), Duration::from_secs(10)).jitter(0.5);
        for attempt in 1..200 {
            let d = e.delay(attempt).as_secs_f64();
            assert!((5.0 - 1e-9..=15.0 + 1e-9).contains(&d), "{attempt}: {d}");
        }
    }

    #[test]
    fn odd_field_values_never_panic() {
        let zero_base = Exponential {
            base: Duration::ZERO,
            factor: f64::INFINITY,
            max: Duration::from_secs(5),
            jitter: 0.0,
        };
        assert_eq!(zero_base.delay(3), Duration::ZERO);
        let wild = Exponential {
            base: Duration::MAX,
            factor: f64::NAN,
            max: Duration::MAX,
            jitter: f64::NAN,
        };
        assert_eq!(wild.delay(2), Duration::ZERO);
        let huge = Exponential {
            base: Duration::from_secs(1),
            factor: 1e300,
            max: Duration::MAX,
            jitter: 1.0,
        };
        assert!(huge.delay(u32::MAX) <= Duration::MAX);
    }
}
