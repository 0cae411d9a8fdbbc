//! One evaluation round of every schedule, sensor and condition, as the automation leader
//! runs it (and as [`super::Automation::evaluate_once`] runs it for tools and tests).
//!
//! A round never stops on one definition's error: it is recorded as a failed tick of that
//! definition (or logged, when the store itself fails) and the round goes on. This module
//! holds the round and what every kind shares (switches, cursors, tick records); each kind's
//! evaluation is in its own: `schedules`, `sensors`, `conditions`.

mod conditions;
mod schedules;
mod sensors;

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::condition::Rule;
use super::launch::{Launched, Launcher};
use super::tick::{Origin, TickRecord, TickStatus};
use crate::api::FlowStone;
use crate::error::Result;
use crate::partition::Partition;

/// The state an evaluator keeps between rounds (in memory: a new leader starts fresh, which
/// only costs it one look at what is already launched).
pub(crate) struct Evaluator {
    fs: FlowStone,
    launcher: Launcher,
    sensor_called: HashMap<String, Instant>,
    /// `on_missing` launch keys known to be claimed already, so a round does not ask again
    /// (at most one per partition; eager events are passed over by `events_seen`, and
    /// `on_cron` by its cursor, so neither grows this).
    claimed: HashSet<(String, String)>,
    /// Materializations the eager conditions have looked at, with when they finished (kept
    /// for the lookback).
    events_seen: HashMap<(String, Partition, crate::ids::RunId), DateTime<Utc>>,
    /// [`EVENTS_FLOOR`], once read.
    events_floor: Option<DateTime<Utc>>,
}

/// What a round did.
#[derive(Debug, Default, Clone)]
pub struct RoundReport {
    /// The ticks it recorded.
    pub ticks: Vec<TickRecord>,
}

impl Evaluator {
    pub(crate) fn new(fs: FlowStone, launcher: Launcher) -> Self {
        Evaluator {
            fs,
            launcher,
            sensor_called: HashMap::new(),
            claimed: HashSet::new(),
            events_seen: HashMap::new(),
            events_floor: None,
        }
    }

    pub(crate) fn launcher(&self) -> &Launcher {
        &self.launcher
    }

    /// Evaluates everything as of `now`; `full` also runs the checks that read whole assets
    /// (`on_missing`, `on_cron`) and the sensors, which a wake-up by a new materialization
    /// skips.
    pub(crate) async fn round(&mut self, now: DateTime<Utc>, full: bool) -> RoundReport {
        let mut report = RoundReport::default();
        if full {
            let fs = self.fs.clone();
            for schedule in fs.schedules() {
                let name = schedule.name();
                let (ticks, cursor) = match self.schedule(schedule, now).await {
                    Ok((ticks, cursor)) => (Ok(ticks), cursor),
                    Err(err) => (Err(err), None),
                };
                self.keep(&mut report, Origin::Schedule, name, ticks).await;
                if let Some(cursor) = cursor
                    && let Err(err) = self.set_cursor_time(Origin::Schedule, name, cursor).await
                {
                    tracing::warn!(schedule = %name, error = %err, "could not store a schedule's cursor");
                }
            }
            for sensor in fs.sensors() {
                let due = self
                    .sensor_called
                    .get(sensor.name())
                    .is_none_or(|at| at.elapsed() >= sensor.interval_of());
                if !due
                    || !self
                        .switch(Origin::Sensor, sensor.name(), sensor.is_default_on())
                        .await
                {
                    continue;
                }
                self.sensor_called
                    .insert(sensor.name().to_owned(), Instant::now());
                let ticks = self.sensor(sensor, now).await;
                self.keep(&mut report, Origin::Sensor, sensor.name(), ticks)
                    .await;
            }
        }
        // Each eager asset's own error is its failed tick; failing to read the new
        // materializations at all is only logged (the next round reads them again).
        match self.eager(now).await {
            Ok(ticks) => {
                self.keep(&mut report, Origin::Condition, "eager", Ok(ticks))
                    .await
            }
            Err(err) => {
                tracing::warn!(error = %err, "automation: reading new materializations failed")
            }
        }
        if full {
            let assets: Vec<_> = self.fs.registry().assets().cloned().collect();
            for asset in assets {
                let Some(condition) = self.condition_on(&asset).await else {
                    continue;
                };
                let ticks = match &condition.rule {
                    Rule::OnMissing => self.on_missing(&asset, now).await,
                    Rule::OnCron(cron) => self.on_cron(&asset, cron, now).await,
                    Rule::Eager => continue,
                };
                self.keep(&mut report, Origin::Condition, asset.name(), ticks)
                    .await;
            }
        }
        self.launcher.run_taken();
        report
    }

    /// Records the ticks of one definition; an error of the evaluation becomes a failed
    /// tick.
    async fn keep(
        &self,
        report: &mut RoundReport,
        origin: Origin,
        name: &str,
        ticks: Result<Vec<TickRecord>>,
    ) {
        let ticks = ticks.unwrap_or_else(|err| {
            vec![
                TickRecord::new(origin, name, Utc::now(), TickStatus::Failed)
                    .detail(err.to_string()),
            ]
        });
        for tick in ticks {
            if tick.status == TickStatus::Failed {
                tracing::warn!(%origin, name = %tick.name, error = ?tick.detail, "automation tick failed");
            }
            if let Err(err) = self.fs.automation_store().record_tick(&tick).await {
                tracing::warn!(%origin, %name, error = %err, "could not record an automation tick");
            }
            report.ticks.push(tick);
        }
    }

    /// The automation condition of `asset`, when it has one and it is on.
    async fn condition_on<'a>(
        &self,
        asset: &'a crate::asset::Asset,
    ) -> Option<&'a super::AutomationCondition> {
        let condition = asset.automation_condition()?;
        self.switch(Origin::Condition, asset.name(), condition.is_default_on())
            .await
            .then_some(condition)
    }

    /// Whether (`origin`, `name`) is on; a store that cannot say counts as off this round.
    async fn switch(&self, origin: Origin, name: &str, default_on: bool) -> bool {
        match self
            .fs
            .automation_store()
            .enabled(origin.as_str(), name)
            .await
        {
            Ok(on) => on.unwrap_or(default_on),
            Err(err) => {
                tracing::warn!(%origin, %name, error = %err, "could not read an automation switch");
                false
            }
        }
    }

    async fn cursor_time(&self, origin: Origin, name: &str) -> Result<Option<DateTime<Utc>>> {
        let cursor = self
            .fs
            .automation_store()
            .cursor(origin.as_str(), name)
            .await?;
        let Some(cursor) = cursor else {
            return Ok(None);
        };
        match DateTime::parse_from_rfc3339(&cursor) {
            Ok(at) => Ok(Some(at.to_utc())),
            // Written by this code, so only a hand-edited row gets here: say so once (a
            // failed tick) and start again from now rather than fail every round.
            Err(e) => {
                self.set_cursor_time(origin, name, Utc::now()).await?;
                Err(crate::error::Error::store(format!(
                    "the cursor of {origin} '{name}' was '{cursor}', not a time ({e}); it \
                     starts again from now"
                )))
            }
        }
    }

    async fn set_cursor_time(&self, origin: Origin, name: &str, at: DateTime<Utc>) -> Result<()> {
        self.fs
            .automation_store()
            .set_cursor(origin.as_str(), name, &at.to_rfc3339())
            .await
    }
}

/// The tick record of a launch.
pub(super) fn launched_tick(
    origin: Origin,
    name: &str,
    at: DateTime<Utc>,
    what: String,
    launched: Result<Launched>,
) -> TickRecord {
    match launched {
        Err(err) => {
            TickRecord::new(origin, name, at, TickStatus::Failed).detail(format!("{what}: {err}"))
        }
        Ok(launched) if launched.new == 0 => TickRecord {
            backfills: launched.backfills,
            ..TickRecord::new(origin, name, at, TickStatus::Skipped)
                .detail(format!("{what}: launched before"))
        },
        Ok(launched) => TickRecord {
            launched: launched.new,
            backfills: launched.backfills,
            ..TickRecord::new(origin, name, at, TickStatus::Launched).detail(what)
        },
    }
}
