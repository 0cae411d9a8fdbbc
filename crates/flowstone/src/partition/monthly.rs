//! One partition per calendar month.

use chrono::{Datelike, Months, NaiveDate, Utc};

use super::bounds::{Bounds, DateSpec, check_expansion};
use super::window::{Grain, TimeWindows};
use super::{Partition, PartitionsDefinition, parse};
use crate::error::{Error, Result};

/// One [`Partition::Date`] per month, holding the month's first day, from a start month to an
/// inclusive end month (the current month, UTC, by default).
///
/// ```
/// use flowstone::partition::{Monthly, Partition, PartitionsDefinition};
///
/// let months = Monthly::from("2024-01").to("2024-12");
/// assert_eq!(months.partitions()?.len(), 12);
/// assert_eq!(months.parse("2024-03")?, Partition::ymd(2024, 3, 1)?);
/// assert_eq!(months.parse("2024-03-01")?, Partition::ymd(2024, 3, 1)?);
/// assert!(months.parse("2024-03-15").is_err()); // not a month start
/// # Ok::<(), flowstone::Error>(())
/// ```
///
/// `parse` and the bounds accept `2024-03`, `2024-03-01` and `d:2024-03-01`; a bound may also
/// be a [`NaiveDate`] on the first of a month. Other days are errors rather than silently
/// rounded.
#[derive(Debug, Clone)]
pub struct Monthly {
    bounds: Bounds<NaiveDate>,
}

impl Monthly {
    /// Months from `start` (inclusive) to the current month.
    pub fn from(start: impl Into<DateSpec>) -> Monthly {
        Monthly {
            bounds: Bounds::new(resolve(start.into(), "start")),
        }
    }

    /// Ends the range at the month `end`, inclusive.
    pub fn to(self, end: impl Into<DateSpec>) -> Monthly {
        Monthly {
            bounds: self.bounds.with_end(resolve(end.into(), "end")),
        }
    }

    /// The first day of the first month, or the error for a bad start.
    pub fn start(&self) -> Result<NaiveDate> {
        self.bounds.start()
    }

    /// The first day of the last month (the current one when no end was given), or the error
    /// for a bad end.
    pub fn end(&self) -> Result<NaiveDate> {
        self.bounds.end(current_month)
    }

    fn in_range(&self, month: NaiveDate) -> Result<bool> {
        let (start, end) = self.bounds.resolve(current_month)?;
        Ok(start <= month && month <= end)
    }
}

fn current_month() -> NaiveDate {
    let today = Utc::now().date_naive();
    today - chrono::Days::new(u64::from(today.day0()))
}

const FORM: &str = "a month like 2024-03 (or its first day, 2024-03-01)";

fn resolve(spec: DateSpec, role: &str) -> Result<NaiveDate> {
    let expected = || format!("a {role} for Monthly: {FORM}");
    match spec {
        DateSpec::Text(text) => {
            parse::month_start(&text).map_err(|_| Error::invalid_partition(&text, expected()))
        }
        DateSpec::Date(d) if d.day() == 1 => Ok(d),
        other => Err(Error::invalid_partition(&other.to_string(), expected())),
    }
}

fn month_index(d: NaiveDate) -> i128 {
    i128::from(d.year()) * 12 + i128::from(d.month0())
}

impl PartitionsDefinition for Monthly {
    fn partitions(&self) -> Result<Vec<Partition>> {
        let (start, end) = self.bounds.resolve(current_month)?;
        let count = (month_index(end) - month_index(start) + 1).max(0);
        check_expansion(&format!("Monthly from {start} to {end}"), count)?;
        let mut months = Vec::new();
        let mut month = Some(start);
        while let Some(m) = month.filter(|m| *m <= end) {
            months.push(Partition::Date(m));
            month = m.checked_add_months(Months::new(1));
        }
        Ok(months)
    }

    fn parse(&self, input: &str) -> Result<Partition> {
        let month = parse::month_start(input).map_err(|reason| {
            Error::invalid_partition(input, format!("{} ({reason})", self.expected_form()))
        })?;
        if self.in_range(month)? {
            Ok(Partition::Date(month))
        } else {
            Err(Error::invalid_partition(input, self.expected_form()))
        }
    }

    fn expected_form(&self) -> String {
        match self
            .bounds
            .describe("the current month", |d| d.format("%Y-%m").to_string())
        {
            Some(range) => format!("{FORM}, {range}"),
            None => String::from(FORM),
        }
    }

    fn contains_is_cheap(&self) -> bool {
        true
    }

    fn contains(&self, partition: &Partition) -> Result<bool> {
        match partition {
            Partition::Date(month) if month.day() == 1 => self.in_range(*month),
            _ => Ok(false),
        }
    }

    fn time_windows(&self) -> Option<Result<TimeWindows>> {
        Some(super::bounds::windows(&self.bounds, Grain::Month))
    }
}
