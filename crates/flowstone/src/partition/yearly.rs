//! One partition per calendar year.

use chrono::{Datelike, NaiveDate, Utc};

use super::bounds::{Bounds, DateSpec, check_expansion};
use super::window::{Grain, TimeWindows};
use super::{Partition, PartitionsDefinition, parse};
use crate::error::{Error, Result};

/// One [`Partition::Date`] per year, holding its January 1st, from a start year to an
/// inclusive end year (the current year, UTC, by default).
///
/// ```
/// use flowstone::partition::{Partition, PartitionsDefinition, Yearly};
///
/// let years = Yearly::from("2010").to("2013");
/// assert_eq!(years.partitions()?.len(), 4);
/// assert_eq!(years.parse("2013")?, Partition::ymd(2013, 1, 1)?);
/// assert_eq!(years.parse("2013-01-01")?, Partition::ymd(2013, 1, 1)?);
/// assert!(years.parse("2013-02-01").is_err()); // not a year start
/// # Ok::<(), flowstone::Error>(())
/// ```
///
/// `parse` and the bounds accept `2013`, `2013-01-01` and `d:2013-01-01`; a bound may also be
/// a [`NaiveDate`] on a January 1st.
#[derive(Debug, Clone)]
pub struct Yearly {
    bounds: Bounds<NaiveDate>,
}

impl Yearly {
    /// Years from `start` (inclusive) to the current year.
    pub fn from(start: impl Into<DateSpec>) -> Yearly {
        Yearly {
            bounds: Bounds::new(resolve(start.into(), "start")),
        }
    }

    /// Ends the range at the year `end`, inclusive.
    pub fn to(self, end: impl Into<DateSpec>) -> Yearly {
        Yearly {
            bounds: self.bounds.with_end(resolve(end.into(), "end")),
        }
    }

    /// January 1st of the first year, or the error for a bad start.
    pub fn start(&self) -> Result<NaiveDate> {
        self.bounds.start()
    }

    /// January 1st of the last year (the current one when no end was given), or the error for
    /// a bad end.
    pub fn end(&self) -> Result<NaiveDate> {
        self.bounds.end(current_year)
    }

    fn in_range(&self, year: NaiveDate) -> Result<bool> {
        let (start, end) = self.bounds.resolve(current_year)?;
        Ok(start <= year && year <= end)
    }
}

fn current_year() -> NaiveDate {
    let today = Utc::now().date_naive();
    NaiveDate::from_ymd_opt(today.year(), 1, 1).unwrap_or(today)
}

const FORM: &str = "a year like 2013 (or its first day, 2013-01-01)";

/// `2013`, `2013-01-01` or `d:2013-01-01`.
fn year_start(input: &str) -> std::result::Result<NaiveDate, String> {
    let trimmed = input.trim();
    let date = match parse::day(trimmed) {
        Some(date) => date,
        None if trimmed.len() == 4 && trimmed.bytes().all(|b| b.is_ascii_digit()) => trimmed
            .parse::<i32>()
            .ok()
            .and_then(|y| NaiveDate::from_ymd_opt(y, 1, 1))
            .ok_or_else(|| String::from("not a year"))?,
        None => return Err(String::from("not a year")),
    };
    if date.ordinal() == 1 {
        Ok(date)
    } else {
        Err(format!("{date} is not the first day of a year"))
    }
}

fn resolve(spec: DateSpec, role: &str) -> Result<NaiveDate> {
    let expected = || format!("a {role} for Yearly: {FORM}");
    match spec {
        DateSpec::Text(text) => {
            year_start(&text).map_err(|_| Error::invalid_partition(&text, expected()))
        }
        DateSpec::Date(d) if d.ordinal() == 1 => Ok(d),
        other => Err(Error::invalid_partition(&other.to_string(), expected())),
    }
}

impl PartitionsDefinition for Yearly {
    fn partitions(&self) -> Result<Vec<Partition>> {
        let (start, end) = self.bounds.resolve(current_year)?;
        let count = (i128::from(end.year()) - i128::from(start.year()) + 1).max(0);
        check_expansion(&format!("Yearly from {start} to {end}"), count)?;
        Ok((start.year()..=end.year())
            .filter_map(|y| NaiveDate::from_ymd_opt(y, 1, 1))
            .map(Partition::Date)
            .collect())
    }

    fn parse(&self, input: &str) -> Result<Partition> {
        let year = year_start(input).map_err(|reason| {
            Error::invalid_partition(input, format!("{} ({reason})", self.expected_form()))
        })?;
        if self.in_range(year)? {
            Ok(Partition::Date(year))
        } else {
            Err(Error::invalid_partition(input, self.expected_form()))
        }
    }

    fn expected_form(&self) -> String {
        match self
            .bounds
            .describe("the current year", |d| d.year().to_string())
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
            Partition::Date(year) if year.ordinal() == 1 => self.in_range(*year),
            _ => Ok(false),
        }
    }

    fn time_windows(&self) -> Option<Result<TimeWindows>> {
        Some(super::bounds::windows(&self.bounds, Grain::Year))
    }
}
