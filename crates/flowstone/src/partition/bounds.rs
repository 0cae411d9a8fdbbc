//! The start and end of the time-based definitions ([`Daily`](super::Daily),
//! [`Hourly`](super::Hourly), [`Monthly`](super::Monthly)), the expansion limit, and
//! [`date_range`].
//!
//! A bound is given as text or as a chrono value and validated when the definition is built.
//! A bad bound is kept as an error and reported by `partitions()` and `parse()`, so building a
//! definition never panics and never needs a `?`.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use super::window::{Grain, TimeWindows};
use super::{MAX_PARTITIONS, Partition};
use crate::error::{Error, Result};

/// A start or end for a time-based definition: text a person wrote (`"2024-01-01"`,
/// `"2024-01-01T00:00"`, `"2024-01"`) or a chrono value. Each definition accepts the forms that
/// make sense for it and reports the others as `InvalidPartition`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateSpec {
    /// Text, parsed by the definition.
    Text(String),
    /// A calendar day.
    Date(NaiveDate),
    /// A UTC instant.
    DateTime(DateTime<Utc>),
    /// A wall-clock time, read as UTC.
    NaiveDateTime(NaiveDateTime),
}

impl fmt::Display for DateSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DateSpec::Text(s) => f.write_str(s),
            DateSpec::Date(d) => write!(f, "{d}"),
            DateSpec::DateTime(t) => write!(f, "{}", Partition::DateTime(*t)),
            DateSpec::NaiveDateTime(t) => write!(f, "{}", Partition::NaiveDateTime(*t)),
        }
    }
}

impl From<&str> for DateSpec {
    fn from(s: &str) -> Self {
        DateSpec::Text(s.to_owned())
    }
}

impl From<String> for DateSpec {
    fn from(s: String) -> Self {
        DateSpec::Text(s)
    }
}

impl From<&String> for DateSpec {
    fn from(s: &String) -> Self {
        DateSpec::Text(s.clone())
    }
}

impl From<NaiveDate> for DateSpec {
    fn from(d: NaiveDate) -> Self {
        DateSpec::Date(d)
    }
}

impl From<DateTime<Utc>> for DateSpec {
    fn from(t: DateTime<Utc>) -> Self {
        DateSpec::DateTime(t)
    }
}

impl From<NaiveDateTime> for DateSpec {
    fn from(t: NaiveDateTime) -> Self {
        DateSpec::NaiveDateTime(t)
    }
}

/// A validated start and an optional validated end (`None`: up to now).
#[derive(Debug, Clone)]
pub(super) struct Bounds<T> {
    start: Result<T>,
    end: Option<Result<T>>,
}

impl<T: Copy> Bounds<T> {
    pub(super) fn new(start: Result<T>) -> Self {
        Bounds { start, end: None }
    }

    pub(super) fn with_end(self, end: Result<T>) -> Self {
        Bounds {
            end: Some(end),
            ..self
        }
    }

    pub(super) fn start(&self) -> Result<T> {
        self.start.clone()
    }

    /// The end, or `now()` when none was given.
    pub(super) fn end(&self, now: impl FnOnce() -> T) -> Result<T> {
        match &self.end {
            Some(end) => end.clone(),
            None => Ok(now()),
        }
    }

    /// The end when one was given (`None`: the range grows with the clock).
    pub(super) fn fixed_end(&self) -> Option<Result<T>> {
        self.end.clone()
    }

    /// Both bounds, or the first bad one.
    pub(super) fn resolve(&self, now: impl FnOnce() -> T) -> Result<(T, T)> {
        Ok((self.start()?, self.end(now)?))
    }

    /// `from 2024-01-01 to 2024-12-31` or `from 2024-01-01 to <open_end>`, for messages.
    pub(super) fn describe(&self, open_end: &str, show: impl Fn(&T) -> String) -> Option<String> {
        let start = show(self.start.as_ref().ok()?);
        match &self.end {
            None => Some(format!("from {start} to {open_end}")),
            Some(Ok(end)) => Some(format!("from {start} to {}", show(end))),
            Some(Err(_)) => None,
        }
    }
}

/// A time-based definition's bounds as [`TimeWindows`] of `grain`.
pub(super) fn windows<T: Copy + WindowStart>(
    bounds: &Bounds<T>,
    grain: Grain,
) -> Result<TimeWindows> {
    Ok(TimeWindows {
        grain,
        first: bounds.start()?.window_start(),
        last: bounds
            .fixed_end()
            .transpose()?
            .map(WindowStart::window_start),
    })
}

/// A bound's instant, as the UTC wall-clock time windows are measured in.
pub(super) trait WindowStart {
    fn window_start(self) -> NaiveDateTime;
}

impl WindowStart for NaiveDate {
    fn window_start(self) -> NaiveDateTime {
        self.and_time(chrono::NaiveTime::MIN)
    }
}

impl WindowStart for DateTime<Utc> {
    fn window_start(self) -> NaiveDateTime {
        self.naive_utc()
    }
}

/// Fails with `InvalidOptions` when `count` partitions exceed [`MAX_PARTITIONS`].
pub(super) fn check_expansion(what: &str, count: i128) -> Result<()> {
    if count > MAX_PARTITIONS as i128 {
        Err(Error::invalid_options(format!(
            "{what} would expand to {count} partitions, more than the limit of {MAX_PARTITIONS}; \
             narrow its range"
        )))
    } else {
        Ok(())
    }
}

/// Every day from `from` to `to` inclusive, as [`Partition::Date`] values; empty when
/// `from > to`. For backfills. It allocates one value per day, so bound the range yourself
/// (the definitions refuse more than [`MAX_PARTITIONS`]).
pub fn date_range(from: NaiveDate, to: NaiveDate) -> Vec<Partition> {
    from.iter_days()
        .take_while(|d| *d <= to)
        .map(Partition::Date)
        .collect()
}
