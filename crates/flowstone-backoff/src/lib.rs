//! The delay before the next attempt.
//!
//! [`Backoff`] says how long to wait after an attempt failed: [`Exponential`] with jitter (the
//! default), [`Constant`](Backoff::Constant), or any function of the attempt
//! ([`Custom`](Backoff::Custom)). FlowStone's durable queue computes job retries with it and
//! its asset retry policies hold one, so both spread their retries the same way; this crate has
//! no dependencies so that the core crate can share the type without the queue.
//!
//! ```
//! use std::time::Duration;
//! use flowstone_backoff::{Backoff, Exponential};
//!
//! let exact: Backoff = Exponential::new(Duration::from_secs(1), Duration::from_secs(60))
//!     .jitter(0.0)
//!     .into();
//! assert_eq!(exact.delay(1), Duration::from_secs(1));
//! assert_eq!(exact.delay(3), Duration::from_secs(4));
//! assert_eq!(exact.delay(30), Duration::from_secs(60));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod exponential;
mod jitter;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use exponential::Exponential;

/// How long to wait after a failed attempt before the next one.
#[derive(Clone)]
pub enum Backoff {
    /// Growing waits, capped and spread by jitter: see [`Exponential`].
    Exponential(Exponential),
    /// The same wait every time.
    Constant(Duration),
    /// Any function of the attempt that just failed (1-based).
    Custom(Arc<dyn Fn(u32) -> Duration + Send + Sync>),
}

impl Backoff {
    /// A backoff computed by `f` from the attempt that just failed (1-based).
    pub fn custom(f: impl Fn(u32) -> Duration + Send + Sync + 'static) -> Self {
        Self::Custom(Arc::new(f))
    }

    /// The wait after attempt number `attempt` (1-based) failed. Takes the attempt in whatever
    /// integer type the caller counts in (the queue's rows count in `i32`); attempts below 1
    /// count as 0, which an exponential backoff treats as the first.
    pub fn delay(&self, attempt: impl Into<i64>) -> Duration {
        let attempt = u32::try_from(attempt.into().max(0)).unwrap_or(u32::MAX);
        match self {
            Self::Exponential(exponential) => exponential.delay(attempt),
            Self::Constant(wait) => *wait,
            Self::Custom(f) => f(attempt),
        }
    }
}

impl Default for Backoff {
    /// 1 s, 2 s, 4 s, … up to one hour, ±10 %.
    fn default() -> Self {
        Self::Exponential(Exponential::new(
            Duration::from_secs(1),
            Duration::from_secs(3600),
        ))
    }
}

impl From<Exponential> for Backoff {
    fn from(exponential: Exponential) -> Self {
        Self::Exponential(exponential)
    }
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exponential(exponential) => {
                f.debug_tuple("Exponential").field(exponential).finish()
            }
            Self::Constant(wait) => f.debug_tuple("Constant").field(wait).finish(),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// The README's example, compiled and run with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExample;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_grows_and_caps_within_jitter() {
        let b = Backoff::Exponential(Exponential {
            base: Duration::from_secs(1),
            factor: 2.0,
            max: Duration::from_secs(10),
            jitter: 0.1,
        });
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
        assert_eq!(
            Backoff::custom(|a| Duration::from_millis(u64::from(a))).delay(7u32),
            Duration::from_millis(7)
        );
    }

    #[test]
    fn attempts_below_one_count_as_zero_and_any_integer_type_is_taken() {
        let seen = Backoff::custom(|a| Duration::from_secs(u64::from(a)));
        assert_eq!(seen.delay(-5i32), Duration::ZERO);
        assert_eq!(seen.delay(4u32), Duration::from_secs(4));
        assert_eq!(
            seen.delay(i64::MAX),
            Duration::from_secs(u64::from(u32::MAX))
        );
        let exact: Backoff = Exponential::new(Duration::from_secs(1), Duration::from_secs(60))
            .jitter(0.0)
            .into();
        assert_eq!(exact.delay(0), exact.delay(1));
        assert_eq!(exact.delay(-1), Duration::from_secs(1));
    }

    #[test]
    fn the_default_is_one_second_doubling_to_an_hour_within_ten_percent() {
        let Backoff::Exponential(e) = Backoff::default() else {
            panic!("the default is exponential");
        };
        assert_eq!(
            e,
            Exponential {
                base: Duration::from_secs(1),
                factor: 2.0,
                max: Duration::from_secs(3600),
                jitter: 0.1,
            }
        );
    }

    #[test]
    fn debug_shows_the_parameters_but_not_a_closure() {
        assert_eq!(
            format!("{:?}", Backoff::Constant(Duration::from_secs(2))),
            "Constant(2s)"
        );
        assert_eq!(
            format!("{:?}", Backoff::custom(|_| Duration::ZERO)),
            "Custom(..)"
        );
        assert!(format!("{:?}", Backoff::default()).starts_with("Exponential(Exponential {"));
    }
}
