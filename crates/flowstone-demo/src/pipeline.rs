//! The pipeline: four assets over Seattle's daily weather.
//!
//! ```text
//! raw_weather (monthly) -> cleaned_weather (monthly) -> monthly_stats (monthly)
//!     -> yearly_report (yearly, reads its twelve months through a time-window mapping)
//! ```
//!
//! Automation (run by `worker --automation`): the schedule `refresh_latest_month` fetches the
//! data set's last month again every day at 00:05 UTC, and the three downstream assets are
//! `eager`, so a new materialization of any month of `raw_weather` (by the schedule, a
//! backfill or `materialize`) flows on to its cleaned month, its statistics and its year's
//! report. They react in every window, not only the latest: the data set is historical.

use std::time::Duration;

use chrono::Datelike;
use flowstone::api::Builder;
use flowstone::{
    Asset, AutomationCondition, Error, FlowStone, Monthly, Partition, PartitionMapping,
    RetryPolicy, Schedule, TickPartition, Yearly,
};

use crate::report::{ARCHIVE, Archive};
use crate::weather::{self, CleanedMonth, MonthlyStats, RawRow};

/// The first and last month of the data set.
pub const FIRST_MONTH: &str = "2012-01";
/// The last month of the data set.
pub const LAST_MONTH: &str = "2015-12";
/// The first year of the data set.
pub const FIRST_YEAR: i32 = 2012;
/// The last year of the data set.
pub const LAST_YEAR: i32 = 2015;
/// The selection the demo backfills: the source and everything downstream of it.
pub const PIPELINE: &str = "raw_weather+";

/// The delay `FLOWSTONE_DEMO_DELAY_MS` asks of `raw_weather`, if any.
fn source_delay() -> Option<Duration> {
    std::env::var("FLOWSTONE_DEMO_DELAY_MS")
        .ok()
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

fn months() -> Monthly {
    Monthly::from(FIRST_MONTH).to(LAST_MONTH)
}

fn years() -> Yearly {
    Yearly::from(FIRST_YEAR.to_string()).to(LAST_YEAR.to_string())
}

/// The name of the demo's schedule.
pub const SCHEDULE: &str = "refresh_latest_month";

fn downstream_of_new_data() -> AutomationCondition {
    AutomationCondition::eager().all_windows()
}

/// The pipeline's assets, with `archive` as the resource the yearly report is written through.
pub fn pipeline(archive: &Archive) -> Builder {
    let last_month = chrono::NaiveDate::from_ymd_opt(LAST_YEAR, 12, 1)
        .map(Partition::Date)
        .unwrap_or(Partition::Unpartitioned);
    FlowStone::builder()
        .resource_value(ARCHIVE, archive.clone())
        .schedule(
            Schedule::new(SCHEDULE, "5 0 * * *")
                .target("raw_weather")
                .partition(TickPartition::Fixed(last_month)),
        )
        .asset(
            Asset::new("raw_weather")
                .description("the month's rows of the shipped CSV, as text")
                .partitioned_by(months())
                // The source is "flaky": every first attempt fails, and the retry succeeds, so
                // `materializations raw_weather` shows attempt 2.
                .retry(RetryPolicy::attempts(3).backoff(Duration::from_millis(50)))
                .execute(|ctx| async move {
                    if ctx.attempt() == 1 {
                        return Err(Error::failed(
                            "the weather source timed out (simulated: every first attempt fails)",
                        ));
                    }
                    // `FLOWSTONE_DEMO_DELAY_MS` makes the source slow, to watch progress bars
                    // and graceful worker shutdowns.
                    if let Some(delay) = source_delay() {
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = ctx.cancellation().cancelled() => {
                                return Err(Error::cancelled(ctx.asset()));
                            }
                        }
                    }
                    let month = ctx.partition().date()?;
                    weather::rows_of_month(weather::CSV, month).map_err(Error::permanent)
                }),
        )
        .asset(
            Asset::new("cleaned_weather")
                .description("typed, validated days; bad rows dropped with a reason")
                .depends_on(["raw_weather"])
                .partitioned_by(months())
                .automation(downstream_of_new_data())
                .execute(|ctx| async move {
                    let rows: Vec<RawRow> = ctx.dep("raw_weather")?;
                    Ok::<_, Error>(weather::clean(ctx.partition().date()?, &rows))
                }),
        )
        .asset(
            Asset::new("monthly_stats")
                .description("days, precipitation, mean high/low, extremes, wind, weather types")
                .depends_on(["cleaned_weather"])
                .partitioned_by(months())
                .automation(downstream_of_new_data())
                .execute(|ctx| async move {
                    let cleaned: CleanedMonth = ctx.dep("cleaned_weather")?;
                    let month = ctx.partition().date()?;
                    weather::monthly_stats(month, &cleaned).ok_or_else(|| {
                        Error::permanent(format!(
                            "no valid day in {}; {} rows rejected",
                            month.format("%Y-%m"),
                            cleaned.rejected.len()
                        ))
                    })
                }),
        )
        .asset(
            Asset::new("yearly_report")
                .description("a Markdown report of the year's months, under <data-dir>/reports")
                .partitioned_by(years())
                .depends_on_mapped("monthly_stats", PartitionMapping::time_window())
                .automation(downstream_of_new_data())
                .requires([ARCHIVE])
                .execute(|ctx| async move {
                    let archive = ctx.resource::<Archive>(ARCHIVE).await?;
                    let year = ctx.partition().date()?.year();
                    let months: Vec<MonthlyStats> = ctx
                        .deps::<MonthlyStats>("monthly_stats")?
                        .into_iter()
                        .map(|(_, stats)| stats)
                        .collect();
                    archive.write_report(year, months).await
                }),
        )
}
