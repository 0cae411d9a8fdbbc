//! One partition per calendar day.

use chrono::{NaiveDate, Utc};

use super::bounds::{Bounds, DateSpec, check_expansion, date_range};
use super::window::{Grain, TimeWindows};
use super::{Partition, PartitionsDefinition, parse};
use crate::error::{Error, Result};

/// One [`Partition::Date`] per day, from a start to an inclusive end (today, UTC, by default).
///
/// ```
/// use flowstone::partition::{Daily, Partition, PartitionsDefinition};
///
/// let days = Daily::from("2024-01-01").to("2024-01-31");
/// assert_eq!(days.partitions()?.len(), 31);
/// assert_eq!(days.parse("2024-01-05")?, Partition::ymd(2024, 1, 5)?);
/// assert!(days.parse("2024-02-01").is_err()); // outside the range
/// # Ok::<(), flowstone::Error>(())
/// ```
///
/// Bounds are dates (`"2024-01-01"` or a [`NaiveDate`]); a bad bound is reported by
/// `partitions()` and `parse()`. An empty range (start after end) has no partitions.
#[derive(Debug, Clone)]
pub struct Daily {
    bounds: Bounds<NaiveDate>,
}

impl Daily {
    /// Days from `start` (inclusive) to today.
    pub fn from(start: impl Into<DateSpec>) -> Daily {
        Daily {
            bounds: Bounds::new(resolve(start.into(), "start")),
        }
    }

    /// Ends the range at `end`, inclusive.
    pub fn to(self, end: impl Into<DateSpec>) -> Daily {
        Daily {
            bounds: self.bounds.with_end(resolve(end.into(), "end")),
        }
    }

    /// The first day, or the error for a bad start.
    pub fn start(&self) -> Result<NaiveDate> {
        self.bounds.start()
    }

    /// The last day (today, UTC, when no end was given), or the error for a bad end.
    pub fn end(&self) -> Result<NaiveDate> {
        self.bounds.end(today)
    }

    fn in_range(&self, day: NaiveDate) -> Result<bool> {
        let (start, end) = self.bounds.resolve(today)?;
        Ok(start <= day && day <= end)
    }
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn resolve(spec: DateSpec, role: &str) -> Result<NaiveDate> {
    let expected = || format!("a {role} date like 2024-01-05 for Daily");
    match spec {
        DateSpec::Date(d) => Ok(d),
        DateSpec::Text(text) => {
            parse::day(&text).ok_or_else(|| Error::invalid_partition(&text, expected()))
        }
        other => Err(Error::invalid_partition(&other.to_string(), expected())),
    }
}

impl PartitionsDefinition for Daily {
    fn partitions(&self) -> Result<Vec<Partition>> {
        let (start, end) = self.bounds.resolve(today)?;
        check_expansion(
            &format!("Daily from {start} to {end}"),
            i128::from((end - start).num_days()) + 1,
        )?;
        Ok(date_range(start, end))
    }

    fn parse(&self, input: &str) -> Result<Partition> {
        let day = parse::day(input)
            .ok_or_else(|| Error::invalid_partition(input, self.expected_form()))?;
        if self.in_range(day)? {
            Ok(Partition::Date(day))
        } else {
            Err(Error::invalid_partition(input, self.expected_form()))
        }
    }

    fn expected_form(&self) -> String {
        match self.bounds.describe("today (UTC)", |d| d.to_string()) {
            Some(range) => format!("a date like 2024-01-05, {range}"),
            None => String::from("a date like 2024-01-05"),
        }
    }

    fn contains_is_cheap(&self) -> bool {
        true
    }

    fn contains(&self, partition: &Partition) -> Result<bool> {
        match partition {
            Partition::Date(day) => self.in_range(*day),
            _ => Ok(false),
        }
    }

    fn time_windows(&self) -> Option<Result<TimeWindows>> {
        Some(super::bounds::windows(&self.bounds, Grain::Day))
    }
}
