//! One partition per UTC hour.

use chrono::{DateTime, TimeDelta, Timelike, Utc};

use super::bounds::{Bounds, DateSpec, check_expansion};
use super::window::{Grain, TimeWindows};
use super::{Partition, PartitionsDefinition, parse};
use crate::error::{Error, Result};

/// One [`Partition::DateTime`] per hour (UTC, on the hour), from a start to an inclusive end
/// (the current hour by default).
///
/// ```
/// use flowstone::partition::{Hourly, PartitionsDefinition};
///
/// let hours = Hourly::from("2024-01-01T00:00").to("2024-01-01T23:00");
/// assert_eq!(hours.partitions()?.len(), 24);
/// let p = hours.parse("2024-01-01 03:00")?;
/// assert_eq!(p.encode(), "dt:2024-01-01T03:00:00Z");
/// # Ok::<(), flowstone::Error>(())
/// ```
///
/// `parse` accepts `2024-01-05T03:00`, `2024-01-05 03:00`, with seconds and a trailing `Z`,
/// RFC 3339 times with an offset (converted to UTC), and `dt:2024-01-05T03:00:00Z`. Minutes,
/// seconds and fractions must be zero. Bounds accept the same text, a `DateTime<Utc>`, a
/// `NaiveDateTime` (read as UTC) or a `NaiveDate` (its midnight, UTC).
#[derive(Debug, Clone)]
pub struct Hourly {
    bounds: Bounds<DateTime<Utc>>,
}

impl Hourly {
    /// Hours from `start` (inclusive) to the current hour.
    pub fn from(start: impl Into<DateSpec>) -> Hourly {
        Hourly {
            bounds: Bounds::new(resolve(start.into(), "start")),
        }
    }

    /// Ends the range at `end`, inclusive.
    pub fn to(self, end: impl Into<DateSpec>) -> Hourly {
        Hourly {
            bounds: self.bounds.with_end(resolve(end.into(), "end")),
        }
    }

    /// The first hour, or the error for a bad start.
    pub fn start(&self) -> Result<DateTime<Utc>> {
        self.bounds.start()
    }

    /// The last hour (the current one when no end was given), or the error for a bad end.
    pub fn end(&self) -> Result<DateTime<Utc>> {
        self.bounds.end(current_hour)
    }

    fn in_range(&self, hour: DateTime<Utc>) -> Result<bool> {
        let (start, end) = self.bounds.resolve(current_hour)?;
        Ok(start <= hour && hour <= end)
    }
}

fn current_hour() -> DateTime<Utc> {
    let now = Utc::now();
    now - TimeDelta::seconds(i64::from(now.minute() * 60 + now.second()))
        - TimeDelta::nanoseconds(i64::from(now.nanosecond()))
}

const FORM: &str = "an hour like 2024-01-05T03:00 (UTC, minutes and seconds zero)";

fn resolve(spec: DateSpec, role: &str) -> Result<DateTime<Utc>> {
    let text = spec.to_string();
    let instant = match spec {
        DateSpec::Text(text) => parse::instant(&text),
        DateSpec::DateTime(t) => Some(t),
        DateSpec::NaiveDateTime(t) => Some(t.and_utc()),
        DateSpec::Date(d) => d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
    };
    instant
        .filter(parse::is_hour_start)
        .ok_or_else(|| Error::invalid_partition(&text, format!("a {role} for Hourly: {FORM}")))
}

impl PartitionsDefinition for Hourly {
    fn partitions(&self) -> Result<Vec<Partition>> {
        let (start, end) = self.bounds.resolve(current_hour)?;
        let count = if start > end {
            0
        } else {
            i128::from((end - start).num_hours()) + 1
        };
        check_expansion(
            &format!(
                "Hourly from {} to {}",
                Partition::DateTime(start),
                Partition::DateTime(end)
            ),
            count,
        )?;
        let mut hours = Vec::new();
        let mut hour = Some(start);
        while let Some(h) = hour.filter(|h| *h <= end) {
            hours.push(Partition::DateTime(h));
            hour = h.checked_add_signed(TimeDelta::hours(1));
        }
        Ok(hours)
    }

    fn parse(&self, input: &str) -> Result<Partition> {
        let hour = parse::instant(input)
            .filter(parse::is_hour_start)
            .ok_or_else(|| Error::invalid_partition(input, self.expected_form()))?;
        if self.in_range(hour)? {
            Ok(Partition::DateTime(hour))
        } else {
            Err(Error::invalid_partition(input, self.expected_form()))
        }
    }

    fn expected_form(&self) -> String {
        match self.bounds.describe("the current hour", |t| {
            t.format("%Y-%m-%dT%H:%M").to_string()
        }) {
            Some(range) => format!("{FORM}, {range}"),
            None => String::from(FORM),
        }
    }

    fn contains_is_cheap(&self) -> bool {
        true
    }

    fn contains(&self, partition: &Partition) -> Result<bool> {
        match partition {
            Partition::DateTime(hour) if parse::is_hour_start(hour) => self.in_range(*hour),
            _ => Ok(false),
        }
    }

    fn time_windows(&self) -> Option<Result<TimeWindows>> {
        Some(super::bounds::windows(&self.bounds, Grain::Hour))
    }
}
