//! The yearly report: twelve months of statistics in one Markdown file.
//!
//! `yearly_report` reads its year's `monthly_stats` through a time-window partition mapping;
//! the [`Archive`] resource only knows where reports go and writes them atomically.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use flowstone::Error;
use serde::{Deserialize, Serialize};

use crate::weather::{MonthlyStats, WEATHER_TYPES};

/// The name the [`Archive`] resource is registered under.
pub const ARCHIVE: &str = "archive";

/// Where reports go, and how they are written. Cheap to clone.
#[derive(Clone)]
pub struct Archive {
    reports_dir: PathBuf,
}

/// What `yearly_report` produces: the figures and the file they were written to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct YearlyReport {
    /// The year.
    pub year: i32,
    /// The Markdown file.
    pub path: PathBuf,
    /// Days in the year's data.
    pub days: u32,
    /// Precipitation over the year, mm.
    pub total_precipitation_mm: f64,
    /// Days with precipitation.
    pub wet_days: u32,
    /// The month with the highest mean daily high.
    pub warmest_month: String,
    /// The month with the most precipitation.
    pub wettest_month: String,
    /// Each month's statistics.
    pub months: Vec<MonthlyStats>,
}

impl Archive {
    /// An archive writing reports under `reports_dir`.
    pub fn new(reports_dir: impl Into<PathBuf>) -> Self {
        Archive {
            reports_dir: reports_dir.into(),
        }
    }

    /// Where the report of `year` goes.
    pub fn report_path(&self, year: i32) -> PathBuf {
        self.reports_dir.join(format!("seattle-weather-{year}.md"))
    }

    /// Builds the report of `year` from its `months` and writes it (atomically).
    pub async fn write_report(
        &self,
        year: i32,
        months: Vec<MonthlyStats>,
    ) -> Result<YearlyReport, Error> {
        let report = summarize(year, self.report_path(year), months);
        write_atomic(&report.path, render(&report).as_bytes()).await?;
        Ok(report)
    }
}

/// The year's figures from its months.
pub fn summarize(year: i32, path: PathBuf, months: Vec<MonthlyStats>) -> YearlyReport {
    let pick = |key: fn(&MonthlyStats) -> f64| {
        months
            .iter()
            .max_by(|a, b| key(a).total_cmp(&key(b)))
            .map(|m| m.month.clone())
            .unwrap_or_default()
    };
    YearlyReport {
        year,
        path,
        days: months.iter().map(|m| m.days).sum(),
        total_precipitation_mm: months.iter().map(|m| m.total_precipitation_mm).sum(),
        wet_days: months.iter().map(|m| m.wet_days).sum(),
        warmest_month: pick(|m| m.mean_temp_max_c),
        wettest_month: pick(|m| m.total_precipitation_mm),
        months,
    }
}

/// The report as Markdown: one table row per month, then the year's figures.
pub fn render(report: &YearlyReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Seattle weather, {}\n", report.year);
    let _ = writeln!(
        out,
        "Daily observations from `seattle-weather.csv` (vega-datasets 0.9.0, NOAA data), \
         materialized by FlowStone: raw_weather → cleaned_weather → monthly_stats → \
         yearly_report.\n"
    );
    let _ = write!(
        out,
        "| Month | Days | Precipitation (mm) | Wet days | Mean high (°C) | Mean low (°C) | \
         Highest (°C) | Lowest (°C) | Max wind (m/s) |"
    );
    for weather in WEATHER_TYPES {
        let _ = write!(out, " {weather} |");
    }
    out.push('\n');
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    out.push_str(&"---:|".repeat(WEATHER_TYPES.len()));
    out.push('\n');
    for m in &report.months {
        let _ = write!(
            out,
            "| {} | {} | {:.1} | {} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} |",
            m.month,
            m.days,
            m.total_precipitation_mm,
            m.wet_days,
            m.mean_temp_max_c,
            m.mean_temp_min_c,
            m.highest_temp_c,
            m.lowest_temp_c,
            m.max_wind_ms
        );
        for weather in WEATHER_TYPES {
            let _ = write!(out, " {} |", m.weather_days.get(weather).unwrap_or(&0));
        }
        out.push('\n');
    }
    let rejected: u32 = report.months.iter().map(|m| m.rejected).sum();
    let _ = writeln!(
        out,
        "\n**{}**: {} days, {:.1} mm of precipitation on {} wet days. Warmest month (mean \
         high): {}. Wettest month: {}. Rows rejected by validation: {rejected}.",
        report.year,
        report.days,
        report.total_precipitation_mm,
        report.wet_days,
        report.warmest_month,
        report.wettest_month
    );
    out
}

async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::io(format!("'{}' has no parent folder", path.display())))?;
    let describe = |what: &str, err: std::io::Error| {
        Error::io(format!("could not {what} '{}': {err}", path.display())).with_source(err)
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| describe("create the folder of", e))?;
    let tmp = path.with_extension("md.tmp");
    tokio::fs::write(&tmp, bytes)
        .await
        .map_err(|e| describe("write", e))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| describe("write", e))
}
