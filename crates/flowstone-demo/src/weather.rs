//! The data and the computations of the pipeline, as plain functions: reading the shipped CSV,
//! validating rows, and the statistics of a month. The assets in `pipeline.rs` call these.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// Seattle's daily weather, 2012-2015 (vega-datasets 0.9.0; see `data/SOURCE.md`), embedded so
/// the binary runs from any folder.
pub const CSV: &str = include_str!("../data/seattle-weather.csv");

/// The header the CSV must have.
pub const HEADER: &str = "date,precipitation,temp_max,temp_min,wind,weather";

/// The weather types the data set uses.
pub const WEATHER_TYPES: [&str; 5] = ["sun", "rain", "fog", "drizzle", "snow"];

/// One CSV row as it is in the file: its line number and its fields, unparsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawRow {
    /// 1-based line number in the CSV (the header is line 1).
    pub line: usize,
    /// The fields, split on commas.
    pub fields: Vec<String>,
}

/// One validated day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Day {
    /// The day.
    pub date: NaiveDate,
    /// Precipitation, mm.
    pub precipitation_mm: f64,
    /// Highest temperature, °C.
    pub temp_max_c: f64,
    /// Lowest temperature, °C.
    pub temp_min_c: f64,
    /// Mean wind speed, m/s.
    pub wind_ms: f64,
    /// One of [`WEATHER_TYPES`].
    pub weather: String,
}

/// A row that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    /// Its line in the CSV.
    pub line: usize,
    /// Why it was dropped.
    pub reason: String,
}

/// The validated days of a month and the rows dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CleanedMonth {
    /// Valid days, in date order.
    pub days: Vec<Day>,
    /// Dropped rows.
    pub rejected: Vec<Rejected>,
}

/// The statistics of one month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthlyStats {
    /// `YYYY-MM`.
    pub month: String,
    /// Valid days.
    pub days: u32,
    /// Rows dropped by validation.
    pub rejected: u32,
    /// Sum of the daily precipitation, mm.
    pub total_precipitation_mm: f64,
    /// Days with precipitation above zero.
    pub wet_days: u32,
    /// Mean of the daily highs, °C.
    pub mean_temp_max_c: f64,
    /// Mean of the daily lows, °C.
    pub mean_temp_min_c: f64,
    /// Highest daily high, °C.
    pub highest_temp_c: f64,
    /// Lowest daily low, °C.
    pub lowest_temp_c: f64,
    /// Highest daily wind speed, m/s.
    pub max_wind_ms: f64,
    /// Days per weather type (every type of [`WEATHER_TYPES`] present, zero included).
    pub weather_days: BTreeMap<String, u32>,
}

/// The data rows of `csv` whose date falls in `month` (`date` is `YYYY/MM/DD` in the file).
pub fn rows_of_month(csv: &str, month: NaiveDate) -> Result<Vec<RawRow>, String> {
    let mut lines = csv.lines();
    let header = lines.next().unwrap_or_default().trim();
    if header != HEADER {
        return Err(format!("the CSV header is '{header}', expected '{HEADER}'"));
    }
    let prefix = format!("{:04}/{:02}/", month.year(), month.month());
    Ok(lines
        .enumerate()
        .filter(|(_, line)| line.starts_with(&prefix))
        .map(|(i, line)| RawRow {
            line: i + 2,
            fields: line.trim_end().split(',').map(str::to_owned).collect(),
        })
        .collect())
}

/// Validates the rows of `month`: six fields, a date in the month (once), numbers that parse
/// and are finite, no negative precipitation or wind, the low not above the high, a known
/// weather type. Bad rows are dropped with their reason.
pub fn clean(month: NaiveDate, rows: &[RawRow]) -> CleanedMonth {
    let mut days: Vec<Day> = Vec::with_capacity(rows.len());
    let mut rejected = Vec::new();
    for row in rows {
        match parse_day(month, row) {
            Ok(day) if days.iter().any(|d| d.date == day.date) => rejected.push(Rejected {
                line: row.line,
                reason: format!("{} appears twice", day.date),
            }),
            Ok(day) => days.push(day),
            Err(reason) => rejected.push(Rejected {
                line: row.line,
                reason,
            }),
        }
    }
    days.sort_by_key(|d| d.date);
    CleanedMonth { days, rejected }
}

fn parse_day(month: NaiveDate, row: &RawRow) -> Result<Day, String> {
    let [date, precipitation, temp_max, temp_min, wind, weather] = row.fields.as_slice() else {
        return Err(format!(
            "{} fields, expected 6 ({HEADER})",
            row.fields.len()
        ));
    };
    let date = NaiveDate::parse_from_str(date.trim(), "%Y/%m/%d")
        .map_err(|_| format!("date '{date}' is not YYYY/MM/DD"))?;
    if (date.year(), date.month()) != (month.year(), month.month()) {
        return Err(format!("date {date} is outside {}", month.format("%Y-%m")));
    }
    let number = |name: &str, text: &str| -> Result<f64, String> {
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("{name} '{text}' is not a number"))
    };
    let precipitation_mm = number("precipitation", precipitation)?;
    let temp_max_c = number("temp_max", temp_max)?;
    let temp_min_c = number("temp_min", temp_min)?;
    let wind_ms = number("wind", wind)?;
    if precipitation_mm < 0.0 || wind_ms < 0.0 {
        return Err(String::from("negative precipitation or wind"));
    }
    if temp_min_c > temp_max_c {
        return Err(format!(
            "temp_min {temp_min_c} is above temp_max {temp_max_c}"
        ));
    }
    let weather = weather.trim();
    if !WEATHER_TYPES.contains(&weather) {
        return Err(format!(
            "weather '{weather}' is not one of {}",
            WEATHER_TYPES.join(", ")
        ));
    }
    Ok(Day {
        date,
        precipitation_mm,
        temp_max_c,
        temp_min_c,
        wind_ms,
        weather: weather.to_owned(),
    })
}

/// The statistics of a cleaned month; `None` when it has no valid day.
pub fn monthly_stats(month: NaiveDate, cleaned: &CleanedMonth) -> Option<MonthlyStats> {
    let days = &cleaned.days;
    let first = days.first()?;
    let n = days.len() as f64;
    let mut weather_days: BTreeMap<String, u32> =
        WEATHER_TYPES.iter().map(|w| ((*w).to_owned(), 0)).collect();
    for day in days {
        *weather_days.entry(day.weather.clone()).or_default() += 1;
    }
    Some(MonthlyStats {
        month: month.format("%Y-%m").to_string(),
        days: days.len() as u32,
        rejected: cleaned.rejected.len() as u32,
        total_precipitation_mm: round(days.iter().map(|d| d.precipitation_mm).sum(), 6),
        wet_days: days.iter().filter(|d| d.precipitation_mm > 0.0).count() as u32,
        mean_temp_max_c: days.iter().map(|d| d.temp_max_c).sum::<f64>() / n,
        mean_temp_min_c: days.iter().map(|d| d.temp_min_c).sum::<f64>() / n,
        highest_temp_c: days
            .iter()
            .map(|d| d.temp_max_c)
            .fold(first.temp_max_c, f64::max),
        lowest_temp_c: days
            .iter()
            .map(|d| d.temp_min_c)
            .fold(first.temp_min_c, f64::min),
        max_wind_ms: days.iter().map(|d| d.wind_ms).fold(first.wind_ms, f64::max),
        weather_days,
    })
}

/// `value` rounded to `digits` decimals (sums of one-decimal readings stay readable).
fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(y: i32, m: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, 1).unwrap()
    }

    #[test]
    fn selects_the_rows_of_a_month() {
        let rows = rows_of_month(CSV, month(2013, 7)).unwrap();
        assert_eq!(rows.len(), 31);
        assert!(rows[0].fields[0].starts_with("2013/07/01"));
    }

    #[test]
    fn drops_bad_rows_with_a_reason() {
        let row = |line, text: &str| RawRow {
            line,
            fields: text.split(',').map(str::to_owned).collect(),
        };
        let rows = [
            row(2, "2013/07/01,0.0,20.0,10.0,2.0,sun"),
            row(3, "2013/07/02,abc,20.0,10.0,2.0,sun"),
            row(4, "2013/07/03,0.0,5.0,10.0,2.0,sun"),
            row(5, "2013/07/04,0.0,20.0,10.0,2.0,hail"),
            row(6, "2013/07/01,0.0,20.0,10.0,2.0,sun"),
            row(7, "2013/08/01,0.0,20.0,10.0,2.0,sun"),
            row(8, "2013/07/05,0.0"),
        ];
        let cleaned = clean(month(2013, 7), &rows);
        assert_eq!(cleaned.days.len(), 1);
        let lines: Vec<usize> = cleaned.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 8]);
        assert!(cleaned.rejected[0].reason.contains("'abc'"));
    }

    #[test]
    fn every_month_of_the_data_set_is_clean_and_complete() {
        for year in 2012..=2015 {
            for m in 1..=12 {
                let first = month(year, m);
                let cleaned = clean(first, &rows_of_month(CSV, first).unwrap());
                assert!(
                    cleaned.rejected.is_empty(),
                    "{first}: {:?}",
                    cleaned.rejected
                );
                let stats = monthly_stats(first, &cleaned).unwrap();
                let last = first
                    .checked_add_months(chrono::Months::new(1))
                    .unwrap()
                    .pred_opt()
                    .unwrap();
                assert_eq!(stats.days, last.day(), "{first}");
            }
        }
    }
}
