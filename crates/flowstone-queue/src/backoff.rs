//! How long a failed job waits before its next attempt. The delay is computed by the node
//! that ran the attempt and stored in the row as `scheduled_at`: no worker sleeps holding a
//! job. Exponential with jitter by default (so a burst of failures does not retry in
//! lockstep), overridable per job kind.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A retry delay policy.
#[derive(Clone)]
pub enum Backoff {
    /// `base * 2^(attempt-1)`, capped at `max`, then spread by ±`jitter` (0.0–1.0).
    Exponential {
        /// Delay after the first attempt.
        base: Duration,
        /// Largest delay.
        max: Duration,
        /// Relative spread, e.g. 0.1 for ±10 %.
        jitter: f64,
    },
    /// The same delay every time.
    Constant(Duration),
    /// Any function of the attempt that just failed (1-based).
    Custom(Arc<dyn Fn(i32) -> Duration + Send + Sync>),
}

impl std::fmt::Debug for Backoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exponential { base, max, jitter } => f
                .debug_struct("Exponential")
                .field("base", base)
                .field("max", max)
                .field("jitter", jitter)
                .finish(),
            Self::Constant(d) => f.debug_tuple("Constant").field(d).finish(),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl Default for Backoff {
    /// 1 s, 2 s, 4 s, … up to one hour, ±10 %.
    fn default() -> Self {
        Self::Exponential {
            base: Duration::from_secs(1),
            max: Duration::from_secs(3600),
            jitter: 0.1,
        }
    }
}

impl Backoff {
    /// The delay after `attempt` (1-based) failed.
    pub fn delay(&self, attempt: i32) -> Duration {
        match self {
            Self::Exponential { base, max, jitter } => {
                let exp = attempt.saturating_sub(1).clamp(0, 62) as u32;
                let raw = base.as_secs_f64() * 2f64.powi(exp as i32);
                let capped = raw.min(max.as_secs_f64());
                let spread = jitter.clamp(0.0, 1.0) * capped;
                let secs = (capped + spread * (2.0 * unit_random() - 1.0)).max(0.0);
                Duration::try_from_secs_f64(secs).unwrap_or(*max)
            }
            Self::Constant(d) => *d,
            Self::Custom(f) => f(attempt),
        }
    }
}

/// A number in [0, 1): splitmix64 over a counter seeded from the clock. Jitter needs spread,
/// not cryptographic randomness.
fn unit_random() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut z = STATE
        .fetch_add(0x9e3779b97f4a7c15, Ordering::Relaxed)
        .wrapping_add(seed);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_grows_and_caps_within_jitter() {
        let b = Backoff::Exponential {
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
            jitter: 0.1,
        };
        for (attempt, expect) in [
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (4, 8.0),
            (5, 10.0),
            (40, 10.0),
        ] {
            let d = b.delay(attempt).as_secs_f64();
            assert!(
                d >= expect * 0.9 - 1e-9 && d <= expect * 1.1 + 1e-9,
                "{attempt}: {d}"
            );
        }
    }

    #[test]
    fn custom_and_constant() {
        assert_eq!(
            Backoff::Constant(Duration::from_millis(5)).delay(9),
            Duration::from_millis(5)
        );
        let b = Backoff::Custom(Arc::new(|a| Duration::from_secs(a as u64)));
        assert_eq!(b.delay(3), Duration::from_secs(3));
    }
}
