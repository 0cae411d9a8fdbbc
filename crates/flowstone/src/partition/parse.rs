//! Reading the forms people type for days, hours and months (and the canonical encodings of
//! the same values). These return `None` or a reason; the definitions build the errors, since
//! they know the expected form and the range.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Timelike, Utc};

use super::Partition;

/// `2024-01-05` or `d:2024-01-05`.
pub(super) fn day(input: &str) -> Option<NaiveDate> {
    let input = input.trim();
    if input.starts_with("d:") {
        return Partition::decode(input).ok()?.date().ok();
    }
    NaiveDate::parse_from_str(input, "%Y-%m-%d").ok()
}

/// An instant: `2024-01-05T03:00`, `2024-01-05 03:00`, with or without seconds and a trailing
/// `Z`, an RFC 3339 time with any offset (converted to UTC), or `dt:2024-01-05T03:00:00Z`.
pub(super) fn instant(input: &str) -> Option<DateTime<Utc>> {
    let input = input.trim();
    if input.starts_with("dt:") {
        return Partition::decode(input).ok()?.datetime().ok();
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(input) {
        return Some(t.to_utc());
    }
    let naive = input
        .strip_suffix('Z')
        .or_else(|| input.strip_suffix('z'))
        .unwrap_or(input);
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(naive, format).ok())
    .map(|t| t.and_utc())
}

/// Whether `t` falls exactly on an hour.
pub(super) fn is_hour_start(t: &DateTime<Utc>) -> bool {
    t.minute() == 0 && t.second() == 0 && t.nanosecond() == 0
}

/// `2024-03`, `2024-03-01` or `d:2024-03-01`. `Err` carries the reason: not a date at all, or
/// a date that is not the first of its month.
pub(super) fn month_start(input: &str) -> Result<NaiveDate, String> {
    let trimmed = input.trim();
    let date = match day(trimmed) {
        Some(date) => date,
        None => NaiveDate::parse_from_str(&format!("{trimmed}-01"), "%Y-%m-%d")
            .map_err(|_| String::from("not a month"))?,
    };
    if date.day() == 1 {
        Ok(date)
    } else {
        Err(format!("{date} is not the first day of a month"))
    }
}
