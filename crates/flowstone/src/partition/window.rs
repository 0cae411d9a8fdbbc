//! Time windows: what the time-based definitions ([`Hourly`](super::Hourly),
//! [`Daily`](super::Daily), [`Monthly`](super::Monthly), [`Yearly`](super::Yearly)) have in
//! common, so that a partition mapping can translate between any two of them.
//!
//! Each partition of such a definition stands for a half-open window of UTC time, `[start,
//! start + one grain)`: the day 2024-03-05 is `[2024-03-05T00:00, 2024-03-06T00:00)`, the month
//! 2024-03 is `[2024-03-01T00:00, 2024-04-01T00:00)`. Mapping between definitions is then plain
//! interval overlap, whatever the two grains are. All arithmetic is on UTC wall-clock time, so
//! there is no daylight-saving gap or repeat to handle.

use chrono::{Datelike, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike};

use super::Partition;
use crate::error::{Error, Result};

/// How long one partition of a time-based definition lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grain {
    /// One UTC hour: [`Partition::DateTime`] on the hour.
    Hour,
    /// One calendar day: [`Partition::Date`].
    Day,
    /// One calendar month: [`Partition::Date`] on its first day.
    Month,
    /// One calendar year: [`Partition::Date`] on January 1st.
    Year,
}

impl Grain {
    /// `hour`, `day`, `month`, `year`: for messages.
    pub fn name(self) -> &'static str {
        match self {
            Grain::Hour => "hour",
            Grain::Day => "day",
            Grain::Month => "month",
            Grain::Year => "year",
        }
    }

    /// The start of the window that contains `t`.
    pub fn floor(self, t: NaiveDateTime) -> NaiveDateTime {
        let date = t.date();
        match self {
            Grain::Hour => t
                .with_minute(0)
                .and_then(|t| t.with_second(0))
                .and_then(|t| t.with_nanosecond(0))
                .unwrap_or(t),
            Grain::Day => midnight(date),
            Grain::Month => midnight(date.with_day(1).unwrap_or(date)),
            Grain::Year => midnight(NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap_or(date)),
        }
    }

    /// `t` moved by `n` grains (back when negative); `None` past chrono's range.
    pub fn add(self, t: NaiveDateTime, n: i64) -> Option<NaiveDateTime> {
        match self {
            Grain::Hour => t.checked_add_signed(TimeDelta::try_hours(n)?),
            Grain::Day => t.checked_add_signed(TimeDelta::try_days(n)?),
            Grain::Month => add_months(t, n),
            Grain::Year => add_months(t, n.checked_mul(12)?),
        }
    }

    /// The start of the window `partition` stands for, or `InvalidPartition` when it is not a
    /// window start of this grain (a month partition on the 15th, an hour at 03:30).
    pub fn start_of(self, partition: &Partition) -> Result<NaiveDateTime> {
        let start = match (self, partition) {
            (Grain::Hour, Partition::DateTime(t)) => Some(t.naive_utc()),
            (Grain::Day | Grain::Month | Grain::Year, Partition::Date(d)) => Some(midnight(*d)),
            _ => None,
        };
        match start {
            Some(start) if self.floor(start) == start => Ok(start),
            _ => Err(Error::invalid_partition(
                &partition.encode(),
                format!("the start of a {} window", self.name()),
            )),
        }
    }

    /// The partition of this grain whose window starts at `start` (a window start).
    pub fn partition_at(self, start: NaiveDateTime) -> Partition {
        match self {
            Grain::Hour => Partition::DateTime(start.and_utc()),
            Grain::Day | Grain::Month | Grain::Year => Partition::Date(start.date()),
        }
    }
}

fn midnight(date: NaiveDate) -> NaiveDateTime {
    date.and_time(NaiveTime::MIN)
}

fn add_months(t: NaiveDateTime, n: i64) -> Option<NaiveDateTime> {
    let months = Months::new(u32::try_from(n.unsigned_abs()).ok()?);
    if n >= 0 {
        t.checked_add_months(months)
    } else {
        t.checked_sub_months(months)
    }
}

/// A time-based definition as windows: its grain, the start of its first window and, when its
/// end is fixed, the start of its last one (`None`: it grows with the clock, so windows past
/// today are not there *yet* rather than outside the set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    /// How long each window lasts.
    pub grain: Grain,
    /// The start of the first window.
    pub first: NaiveDateTime,
    /// The start of the last window, when the end is fixed.
    pub last: Option<NaiveDateTime>,
}

impl TimeWindows {
    /// Whether the window starting at `start` lies before the first one.
    pub fn is_before(&self, start: NaiveDateTime) -> bool {
        start < self.first
    }

    /// Whether the window starting at `start` lies after a fixed last one.
    pub fn is_after(&self, start: NaiveDateTime) -> bool {
        self.last.is_some_and(|last| start > last)
    }

    /// Whether the window starting at `start` is one of the set's (an open end takes any
    /// later window).
    pub fn holds(&self, start: NaiveDateTime) -> bool {
        !self.is_before(start) && !self.is_after(start)
    }

    /// The partitions of this set whose windows overlap `[from, to)`, in order, split into
    /// those that belong to the set and those that fall outside it (before the first window
    /// or after a fixed last one).
    pub fn overlapping(&self, from: NaiveDateTime, to: NaiveDateTime) -> Overlap {
        let mut overlap = Overlap::default();
        let first = self.grain.floor(from);
        if self.grain == Grain::Day {
            // The common case (a month or a year over days) steps dates, which is several
            // times cheaper than stepping date-times.
            let inside = |day: NaiveDate| self.holds(midnight(day));
            overlap
                .inside
                .reserve(usize::try_from((to - first).num_days()).unwrap_or(0));
            for day in first.date().iter_days().take_while(|d| midnight(*d) < to) {
                if inside(day) {
                    overlap.inside.push(Partition::Date(day));
                } else {
                    overlap.outside.push(Partition::Date(day));
                }
            }
            return overlap;
        }
        let mut at = Some(first);
        while let Some(start) = at.filter(|s| *s < to) {
            let partition = self.grain.partition_at(start);
            if self.holds(start) {
                overlap.inside.push(partition);
            } else {
                overlap.outside.push(partition);
            }
            at = self.grain.add(start, 1);
        }
        overlap
    }
}

/// The answer of [`TimeWindows::overlapping`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlap {
    /// Partitions of the set, in order.
    pub inside: Vec<Partition>,
    /// Windows the set does not have, in order.
    pub outside: Vec<Partition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").unwrap()
    }

    #[test]
    fn floors_to_each_grain() {
        let t = at("2024-02-29T13:45");
        assert_eq!(Grain::Hour.floor(t), at("2024-02-29T13:00"));
        assert_eq!(Grain::Day.floor(t), at("2024-02-29T00:00"));
        assert_eq!(Grain::Month.floor(t), at("2024-02-01T00:00"));
        assert_eq!(Grain::Year.floor(t), at("2024-01-01T00:00"));
    }

    #[test]
    fn adds_months_across_years_and_backwards() {
        let jan = at("2024-01-01T00:00");
        assert_eq!(Grain::Month.add(jan, -1), Some(at("2023-12-01T00:00")));
        assert_eq!(Grain::Month.add(jan, 13), Some(at("2025-02-01T00:00")));
        assert_eq!(Grain::Year.add(jan, -2), Some(at("2022-01-01T00:00")));
        assert_eq!(Grain::Hour.add(jan, -1), Some(at("2023-12-31T23:00")));
    }

    #[test]
    fn window_start_must_be_aligned() {
        let mid_month = Partition::ymd(2024, 3, 15).unwrap();
        assert!(Grain::Month.start_of(&mid_month).is_err());
        assert!(Grain::Day.start_of(&mid_month).is_ok());
        assert!(Grain::Hour.start_of(&mid_month).is_err());
    }

    #[test]
    fn overlap_splits_inside_and_outside() {
        let days = TimeWindows {
            grain: Grain::Day,
            first: at("2024-01-03T00:00"),
            last: Some(at("2024-01-04T00:00")),
        };
        let overlap = days.overlapping(at("2024-01-01T00:00"), at("2024-01-06T00:00"));
        assert_eq!(overlap.inside.len(), 2);
        assert_eq!(overlap.outside.len(), 3);
    }
}
