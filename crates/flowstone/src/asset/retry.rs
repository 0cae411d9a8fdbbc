//! How often an asset is attempted, and how long to wait between attempts. The wait is a
//! [`Backoff`], the same type the durable queue computes job retries with, so an asset's
//! retries are spread by jitter wherever they run.

use std::time::Duration;

use flowstone_backoff::{Backoff, Exponential};

/// Attempts and backoff for one asset. In-process executors retry within the call; the queue
/// stores the next attempt's time in the job row, so no worker sleeps holding a job.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The wait after each failed attempt.
    pub backoff: Backoff,
}

/// 1 s, doubling, at most 5 min, ±10 %.
const DEFAULT_BACKOFF: Exponential =
    Exponential::new(Duration::from_secs(1), Duration::from_secs(300));

impl RetryPolicy {
    /// One attempt, no retry: the default.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        backoff: Backoff::Exponential(DEFAULT_BACKOFF),
    };

    /// `max_attempts` attempts in all, with the default backoff (1 s, doubling, at most 5 min,
    /// ±10 %).
    pub fn attempts(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            ..RetryPolicy::NONE
        }
    }

    /// Waits by `backoff`: any [`Backoff`], e.g. [`Backoff::Constant`].
    pub fn with_backoff(mut self, backoff: impl Into<Backoff>) -> Self {
        self.backoff = backoff.into();
        self
    }

    /// Sets the first wait. This and the other exponential settings below turn a constant or
    /// custom backoff into the default exponential one before changing it.
    pub fn backoff(self, initial: Duration) -> Self {
        self.tune_exponential(|e| e.base(initial))
    }

    /// Sets the growth factor of the waits (at least 1).
    pub fn multiplier(self, multiplier: f64) -> Self {
        self.tune_exponential(|e| e.factor(multiplier))
    }

    /// Sets the longest wait (before jitter).
    pub fn max_backoff(self, max: Duration) -> Self {
        self.tune_exponential(|e| e.max(max))
    }

    /// Sets the relative spread of the waits, 0.0 (exact) to 1.0; the default is 0.1 (±10 %),
    /// so that assets failing together do not retry in lockstep.
    pub fn jitter(self, jitter: f64) -> Self {
        self.tune_exponential(|e| e.jitter(jitter))
    }

    /// The wait after failed attempt number `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        self.backoff.delay(attempt)
    }

    fn tune_exponential(mut self, tune: impl FnOnce(Exponential) -> Exponential) -> Self {
        let current = match &self.backoff {
            Backoff::Exponential(exponential) => *exponential,
            Backoff::Constant(_) | Backoff::Custom(_) => DEFAULT_BACKOFF,
        };
        self.backoff = Backoff::Exponential(tune(current));
        self
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::attempts(5)
            .backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(350))
            .jitter(0.0);
        assert_eq!(p.delay_after(1), Duration::from_millis(100));
        assert_eq!(p.delay_after(2), Duration::from_millis(200));
        assert_eq!(p.delay_after(3), Duration::from_millis(350));
        assert_eq!(p.delay_after(u32::MAX), Duration::from_millis(350));
        assert_eq!(RetryPolicy::attempts(0).max_attempts, 1);
    }

    #[test]
    fn the_multiplier_sets_the_growth_and_is_at_least_one() {
        let p = RetryPolicy::attempts(4)
            .backoff(Duration::from_millis(100))
            .multiplier(3.0)
            .jitter(0.0);
        assert_eq!(p.delay_after(3), Duration::from_millis(900));
        let flat = p.clone().multiplier(0.5);
        assert_eq!(flat.delay_after(3), Duration::from_millis(100));
        assert_eq!(
            p.multiplier(f64::NAN).delay_after(3),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn waits_are_spread_by_ten_percent_by_default() {
        let p = RetryPolicy::attempts(3).backoff(Duration::from_secs(10));
        let Backoff::Exponential(e) = &p.backoff else {
            panic!("the default backoff is exponential: {p:?}");
        };
        assert_eq!(e.jitter, 0.1);
        for _ in 0..100 {
            let wait = p.delay_after(1).as_secs_f64();
            assert!((9.0 - 1e-9..=11.0 + 1e-9).contains(&wait), "{wait}");
        }
    }

    #[test]
    fn any_backoff_may_be_used_and_tuning_makes_it_exponential_again() {
        let constant =
            RetryPolicy::attempts(3).with_backoff(Backoff::Constant(Duration::from_millis(7)));
        assert_eq!(constant.delay_after(1), Duration::from_millis(7));
        assert_eq!(constant.delay_after(2), Duration::from_millis(7));
        let tuned = constant.backoff(Duration::from_millis(10)).jitter(0.0);
        assert_eq!(tuned.delay_after(2), Duration::from_millis(20));
        let custom = RetryPolicy::attempts(2).with_backoff(Backoff::custom(|attempt| {
            Duration::from_secs(u64::from(attempt))
        }));
        assert_eq!(custom.delay_after(4), Duration::from_secs(4));
    }
}
