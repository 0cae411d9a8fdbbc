//! How often an asset is attempted, and how long to wait between attempts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Attempts and backoff for one asset. In-process executors retry within the call; the queue
/// stores the next attempt's time in the job row, so no worker sleeps holding a job.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Total attempts, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Wait before the second attempt.
    pub initial_backoff: Duration,
    /// Each further wait is the previous one times this factor.
    pub multiplier: f64,
    /// Upper bound for a wait.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// One attempt, no retry: the default.
    pub const NONE: RetryPolicy = RetryPolicy {
        max_attempts: 1,
        initial_backoff: Duration::from_secs(1),
        multiplier: 2.0,
        max_backoff: Duration::from_secs(300),
    };

    /// `max_attempts` attempts in all, with the default backoff (1 s, doubling, at most 5 min).
    pub fn attempts(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts: max_attempts.max(1),
            ..RetryPolicy::NONE
        }
    }

    /// Sets the first wait.
    pub fn backoff(mut self, initial: Duration) -> Self {
        self.initial_backoff = initial;
        self
    }

    /// Sets the growth factor of the waits (at least 1).
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier.is_finite() {
            multiplier.max(1.0)
        } else {
            1.0
        };
        self
    }

    /// Sets the longest wait.
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// The wait after failed attempt number `attempt` (1-based).
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let secs = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        Duration::try_from_secs_f64(secs)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
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
            .max_backoff(Duration::from_millis(350));
        assert_eq!(p.delay_after(1), Duration::from_millis(100));
        assert_eq!(p.delay_after(2), Duration::from_millis(200));
        assert_eq!(p.delay_after(3), Duration::from_millis(350));
        assert_eq!(p.delay_after(u32::MAX), Duration::from_millis(350));
        assert_eq!(RetryPolicy::attempts(0).max_attempts, 1);
    }
}
