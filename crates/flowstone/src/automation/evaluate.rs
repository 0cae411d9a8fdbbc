//! One evaluation round of every schedule, sensor and condition, as the automation leader
//! runs it (and as [`super::Automation::evaluate_once`] runs it for tools and tests).
//!
//! A round never stops on one definition's error: it is recorded as a failed tick of that
//! definition (or logged, when the store itself fails) and the round goes on.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};

use super::condition::Rule;
use super::launch::{LaunchRequest, Launched, Launcher};
use super::schedule::{CatchUp, Schedule, Tick};
use super::sensor::{SensorContext, SensorResult};
use super::tick::{Origin, TickRecord, TickStatus};
use crate::api::FlowStone;
use crate::asset::Asset;
use crate::error::{Error, Result};
use crate::partition::Partition;
use crate::selection::AssetSelection;
use crate::store::{Materialization, MaterializationStatus};

/// How far back each look for new materializations reaches before the last one seen: a
/// record that committed late (PostgreSQL commits out of order; a success written in the
/// transaction that completes its job) is still found. Events seen before are passed over
/// in memory, and their launch keys make seeing one twice harmless anyway.
const EVENTS_LOOKBACK: TimeDelta = TimeDelta::seconds(10);

/// The most new materializations one look reads.
const EVENTS_PER_LOOK: usize = 10_000;

/// The cursor name under which the eager conditions' high-water mark is kept.
const EVENTS_CURSOR: &str = "*materializations*";

/// The cursor name of when the eager conditions started watching: the lookback never reaches
/// before it, so history is not reacted to.
const EVENTS_FLOOR: &str = "*materializations-since*";

/// A schedule with more missed ticks than this skips them all with one record, and starts
/// again from now.
const MAX_MISSED: usize = 100_000;

/// The state an evaluator keeps between rounds (in memory: a new leader starts fresh, which
/// only costs it one look at what is already launched).
pub(crate) struct Evaluator {
    fs: FlowStone,
    launcher: Launcher,
    sensor_called: HashMap<String, Instant>,
    /// Launch keys known to be claimed already, so a round does not ask again.
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
            for schedule in self.fs.schedules().to_vec() {
                let name = schedule.name();
                let (ticks, cursor) = match self.schedule(&schedule, now).await {
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
            for sensor in self.fs.sensors().to_vec() {
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
                let ticks = self.sensor(&sensor, now).await;
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
                let Some(condition) = asset.automation_condition() else {
                    continue;
                };
                if !self
                    .switch(Origin::Condition, asset.name(), condition.is_default_on())
                    .await
                {
                    continue;
                }
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
        Ok(cursor.and_then(|c| DateTime::parse_from_rfc3339(&c).ok().map(|t| t.to_utc())))
    }

    async fn set_cursor_time(&self, origin: Origin, name: &str, at: DateTime<Utc>) -> Result<()> {
        self.fs
            .automation_store()
            .set_cursor(origin.as_str(), name, &at.to_rfc3339())
            .await
    }

    /// The due ticks of `schedule` since its cursor: the latest launched (or the latest few,
    /// by its catch-up setting), the others recorded as skipped. Returns the ticks and the
    /// cursor to store once they are recorded (so a leader that dies in between evaluates
    /// the same ticks again, and their launch keys keep that from launching twice).
    async fn schedule(
        &self,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<(Vec<TickRecord>, Option<DateTime<Utc>>)> {
        let name = schedule.name();
        if !self
            .switch(Origin::Schedule, name, schedule.is_default_on())
            .await
        {
            return Ok((Vec::new(), None));
        }
        // First evaluation: nothing before now is launched.
        let Some(cursor) = self.cursor_time(Origin::Schedule, name).await? else {
            return Ok((Vec::new(), Some(now)));
        };
        let (due, missed) = due_ticks(schedule, cursor, now)?;
        let Some(last) = due.last().copied() else {
            if missed == 0 {
                return Ok((Vec::new(), None));
            }
            let skipped =
                TickRecord::new(Origin::Schedule, name, now, TickStatus::Skipped).detail(format!(
                    "more than {missed} ticks missed after {cursor}: all skipped, starting \
                     again from now"
                ));
            return Ok((vec![skipped], Some(now)));
        };
        let keep = match schedule.catch_up_policy() {
            CatchUp::Latest => 1,
            CatchUp::All { max } => max.max(1),
        };
        // The latest `keep` instants, with every tick at them: two ticks in one
        // spring-forward gap fire at the same instant, and both are the latest.
        let mut instants = 0;
        let mut first_kept = due.len();
        while first_kept > 0 {
            let at = due[first_kept - 1].at;
            if first_kept == due.len() || at != due[first_kept].at {
                if instants == keep {
                    break;
                }
                instants += 1;
            }
            first_kept -= 1;
        }
        let skipped = missed + first_kept;
        let mut ticks = Vec::new();
        if skipped > 0 {
            ticks.push(
                TickRecord::new(Origin::Schedule, name, last.at, TickStatus::Skipped).detail(
                    format!(
                        "{skipped} missed tick(s) after {cursor} skipped (catch-up keeps the \
                         latest {keep})"
                    ),
                ),
            );
        }
        let registry = self.fs.registry();
        let anchor = schedule.anchor(registry)?;
        for tick in &due[first_kept..] {
            let record = match schedule.partition_of(registry, &anchor, *tick) {
                Err(err) => TickRecord::new(Origin::Schedule, name, tick.at, TickStatus::Failed)
                    .detail(err.to_string()),
                Ok(partition) => {
                    let launched = self
                        .launcher
                        .launch(LaunchRequest {
                            origin: Origin::Schedule,
                            name,
                            selection: schedule.selection(),
                            anchor: &anchor,
                            items: vec![(tick_key(tick), partition.clone())],
                            executor: schedule.executor_choice(),
                        })
                        .await;
                    launched_tick(
                        Origin::Schedule,
                        name,
                        tick.at,
                        format!("tick {} → {anchor} {}", tick.local, partition.input_text()),
                        launched,
                    )
                }
            };
            ticks.push(record);
        }
        Ok((ticks, Some(last.at)))
    }

    async fn sensor(&self, sensor: &super::Sensor, now: DateTime<Utc>) -> Result<Vec<TickRecord>> {
        let name = sensor.name();
        let store = self.fs.automation_store();
        let cursor = store.cursor(Origin::Sensor.as_str(), name).await?;
        let result = sensor
            .call(SensorContext {
                name: name.to_owned(),
                cursor,
                now,
            })
            .await;
        let SensorResult {
            run_requests,
            cursor,
            skip_reason,
        } = match result {
            Ok(result) => result,
            Err(err) => {
                return Ok(vec![
                    TickRecord::new(Origin::Sensor, name, now, TickStatus::Failed)
                        .detail(err.to_string()),
                ]);
            }
        };
        let mut tick = if run_requests.is_empty() {
            TickRecord::new(Origin::Sensor, name, now, TickStatus::Skipped)
                .detail(skip_reason.unwrap_or_else(|| String::from("it returned no run requests")))
        } else {
            TickRecord::new(Origin::Sensor, name, now, TickStatus::Launched)
        };
        let mut errors = Vec::new();
        let mut launch_failed = false;
        let mut already = 0;
        for request in run_requests {
            let anchor = match self.request_anchor(&request.selection, &request.partition) {
                Ok(anchor) => anchor,
                Err(err) => {
                    errors.push(err.to_string());
                    continue;
                }
            };
            let key = request
                .run_key
                .clone()
                .unwrap_or_else(|| format!("run:{}", uuid::Uuid::now_v7()));
            match self
                .launcher
                .launch(LaunchRequest {
                    origin: Origin::Sensor,
                    name,
                    selection: &request.selection,
                    anchor: &anchor,
                    items: vec![(key, request.partition.clone())],
                    executor: None,
                })
                .await
            {
                Ok(launched) => {
                    if launched.new == 0 {
                        already += 1;
                    }
                    tick.launched += launched.new;
                    tick.backfills.extend(launched.backfills);
                }
                Err(err) => {
                    launch_failed = true;
                    errors.push(err.to_string());
                }
            }
        }
        if !errors.is_empty() {
            tick.status = TickStatus::Failed;
            tick.detail = Some(errors.join("; "));
        } else if tick.status == TickStatus::Launched && tick.launched == 0 {
            tick.status = TickStatus::Skipped;
            tick.detail = Some(format!(
                "every run key was launched before ({already} request(s))"
            ));
        }
        // The cursor moves only once its requests are launched: a leader that dies before
        // calls again from the old cursor, and the run keys keep that from launching twice.
        // A request the sensor got wrong (an unknown asset) would be wrong again; one the
        // store failed to launch is asked for again with the same cursor.
        if let Some(cursor) = cursor.filter(|_| !launch_failed) {
            store
                .set_cursor(Origin::Sensor.as_str(), name, &cursor)
                .await?;
        }
        Ok(vec![tick])
    }

    /// The anchor of a sensor's request, checking its selection and partition.
    fn request_anchor(&self, selection: &str, partition: &Partition) -> Result<String> {
        let registry = self.fs.registry();
        let parsed = AssetSelection::parse(selection)?;
        let selected = parsed.resolve(registry)?;
        let anchor = parsed.anchor(&selected).ok_or_else(|| {
            Error::invalid_options(format!("selection '{selection}' selects no asset"))
        })?;
        let asset = registry.get(&anchor)?;
        self.fs.runtime().check_partition_member(asset, partition)?;
        Ok(anchor)
    }

    /// Eager conditions: the materializations since the last look, each mapped to the
    /// partitions of eager dependents it affects.
    async fn eager(&mut self, now: DateTime<Utc>) -> Result<Vec<TickRecord>> {
        let fs = self.fs.clone();
        let registry = fs.registry();
        let eager: Vec<_> = registry
            .assets()
            .filter(|a| matches!(a.automation_condition().map(|c| &c.rule), Some(Rule::Eager)))
            .cloned()
            .collect();
        if eager.is_empty() {
            return Ok(Vec::new());
        }
        let Some(seen) = self.cursor_time(Origin::Condition, EVENTS_CURSOR).await? else {
            self.set_cursor_time(Origin::Condition, EVENTS_FLOOR, now)
                .await?;
            self.set_cursor_time(Origin::Condition, EVENTS_CURSOR, now)
                .await?;
            return Ok(Vec::new());
        };
        let floor = match self.events_floor {
            Some(floor) => floor,
            None => {
                let floor = self
                    .cursor_time(Origin::Condition, EVENTS_FLOOR)
                    .await?
                    .unwrap_or(seen);
                self.events_floor = Some(floor);
                floor
            }
        };
        let events = fs
            .runtime()
            .store()
            .succeeded_since((seen - EVENTS_LOOKBACK).max(floor), EVENTS_PER_LOOK)
            .await?;
        let newest = events.iter().filter_map(|m| m.finished_at).max();
        let events: Vec<Materialization> = events
            .into_iter()
            .filter(|e| {
                let key = (e.asset.clone(), e.partition.clone(), e.run_id);
                self.events_seen
                    .insert(key, e.finished_at.unwrap_or(e.started_at))
                    .is_none()
            })
            .collect();
        let horizon = newest.unwrap_or(seen).min(seen) - EVENTS_LOOKBACK;
        self.events_seen.retain(|_, at| *at >= horizon);
        let mut ticks = Vec::new();
        for asset in eager {
            let Some(condition) = asset.automation_condition() else {
                continue;
            };
            if !self
                .switch(Origin::Condition, asset.name(), condition.is_default_on())
                .await
            {
                continue;
            }
            // One asset's error is its failed tick; the others go on.
            match self.eager_asset(&asset, condition, &events, now).await {
                Ok(Some(tick)) => ticks.push(tick),
                Ok(None) => {}
                Err(err) => ticks.push(
                    TickRecord::new(Origin::Condition, asset.name(), now, TickStatus::Failed)
                        .detail(err.to_string()),
                ),
            }
        }
        if let Some(newest) = newest.filter(|n| *n > seen) {
            self.set_cursor_time(Origin::Condition, EVENTS_CURSOR, newest)
                .await?;
        }
        Ok(ticks)
    }

    /// The eager condition of `asset` over `events`: what they affect, launched.
    async fn eager_asset(
        &mut self,
        asset: &Asset,
        condition: &super::AutomationCondition,
        events: &[Materialization],
        now: DateTime<Utc>,
    ) -> Result<Option<TickRecord>> {
        let fs = self.fs.clone();
        let registry = fs.registry();
        let mut items = Vec::new();
        for event in events
            .iter()
            .filter(|e| e.asset != asset.name() && asset.upstream_assets().any(|d| d == e.asset))
        {
            let targets = registry.downstream_partitions(asset, &event.asset, &event.partition)?;
            for partition in targets {
                if !condition.all_windows && !is_latest_window(asset, &partition, now) {
                    continue;
                }
                let key = format!(
                    "eager:{}:{}:{}:{}",
                    partition.encode(),
                    event.asset,
                    event.partition.encode(),
                    event.run_id
                );
                if self
                    .claimed
                    .contains(&(asset.name().to_owned(), key.clone()))
                {
                    continue;
                }
                match self.eager_ready(asset, &partition, event).await? {
                    Ready::Yes => items.push((key, partition)),
                    Ready::No => {}
                    // Looked at again in the next rounds, while the lookback holds it.
                    Ready::InFlight => {
                        self.events_seen.remove(&(
                            event.asset.clone(),
                            event.partition.clone(),
                            event.run_id,
                        ));
                    }
                }
            }
        }
        self.launch_condition(asset, now, items).await
    }

    /// Whether `partition` of `asset` should run for `event`: it is not running, it has not
    /// run since the event, and everything it reads is present.
    async fn eager_ready(
        &self,
        asset: &Asset,
        partition: &Partition,
        event: &Materialization,
    ) -> Result<Ready> {
        let store = self.fs.runtime().store();
        if let Some(latest) = store.latest(asset.name(), partition).await? {
            if latest.status == MaterializationStatus::Running {
                return Ok(Ready::InFlight);
            }
            if latest.started_at >= event.finished_at.unwrap_or(event.started_at) {
                return Ok(Ready::No);
            }
        }
        Ok(if self.inputs_present(asset, partition, None).await? {
            Ready::Yes
        } else {
            Ready::No
        })
    }

    /// Whether every partition `asset` at `partition` reads (optional ones aside) has a
    /// successful materialization (finished at or after `since`, when given).
    async fn inputs_present(
        &self,
        asset: &Asset,
        partition: &Partition,
        since: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let registry = self.fs.registry();
        let store = self.fs.runtime().store();
        for dep in asset.upstream_assets() {
            if asset.is_optional(dep) {
                continue;
            }
            let mapped = registry.upstream_partitions(asset, dep, partition)?;
            for upstream in &mapped.partitions {
                let present = store.latest(dep, upstream).await?.is_some_and(|m| {
                    m.status == MaterializationStatus::Success
                        && since.is_none_or(|t| m.finished_at.is_some_and(|f| f >= t))
                });
                if !present {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// `on_missing`: the partitions never materialized whose inputs are all present.
    async fn on_missing(&mut self, asset: &Asset, now: DateTime<Utc>) -> Result<Vec<TickRecord>> {
        let registry = self.fs.registry();
        let store = self.fs.runtime().store();
        let all = match asset.partitions() {
            Some(def) => def.partitions()?,
            None => vec![Partition::Unpartitioned],
        };
        // Statuses by encoded partition, one light query per asset (not whole records).
        let done: HashSet<String> = store
            .latest_statuses(asset.name())
            .await?
            .into_iter()
            .filter(|(_, status)| {
                matches!(
                    status,
                    MaterializationStatus::Success | MaterializationStatus::Running
                )
            })
            .map(|(key, _)| key)
            .collect();
        // Each dependency's present partitions, read once for the whole asset.
        let mut present: HashMap<&str, HashSet<String>> = HashMap::new();
        for dep in asset.upstream_assets() {
            if asset.is_optional(dep) || present.contains_key(dep) {
                continue;
            }
            let ok = store
                .latest_statuses(dep)
                .await?
                .into_iter()
                .filter(|(_, status)| *status == MaterializationStatus::Success)
                .map(|(key, _)| key)
                .collect();
            present.insert(dep, ok);
        }
        let mut items = Vec::new();
        for partition in all {
            let encoded = partition.encode();
            if done.contains(&encoded) {
                continue;
            }
            let key = format!("missing:{encoded}");
            if self
                .claimed
                .contains(&(asset.name().to_owned(), key.clone()))
            {
                continue;
            }
            let mut ready = true;
            for (dep, ok) in &present {
                let mapped = registry.upstream_partitions(asset, dep, &partition)?;
                if !mapped.partitions.iter().all(|p| ok.contains(&p.encode())) {
                    ready = false;
                    break;
                }
            }
            if ready {
                items.push((key, partition));
            }
        }
        Ok(self
            .launch_condition(asset, now, items)
            .await?
            .into_iter()
            .collect())
    }

    /// `on_cron`: the latest tick since the last launch, once its inputs have all been
    /// materialized since the tick.
    async fn on_cron(
        &mut self,
        asset: &Asset,
        cron: &Schedule,
        now: DateTime<Utc>,
    ) -> Result<Vec<TickRecord>> {
        let cursor_name = format!("{}:on_cron", asset.name());
        let Some(cursor) = self.cursor_time(Origin::Condition, &cursor_name).await? else {
            self.set_cursor_time(Origin::Condition, &cursor_name, now)
                .await?;
            return Ok(Vec::new());
        };
        let (due, _) = due_ticks(cron, cursor, now)?;
        let Some(tick) = due.last().copied() else {
            return Ok(Vec::new());
        };
        let partition = cron.partition_of(self.fs.registry(), asset.name(), tick)?;
        if !self
            .inputs_present(asset, &partition, Some(tick.at))
            .await?
        {
            return Ok(Vec::new());
        }
        let key = format!("cron:{}:{}", tick_key(&tick), partition.encode());
        let launched = self
            .launch_condition(asset, now, vec![(key, partition)])
            .await?;
        self.set_cursor_time(Origin::Condition, &cursor_name, tick.at)
            .await?;
        Ok(launched.into_iter().collect())
    }

    /// Launches a condition's partitions of `asset` as one backfill; a tick record when it
    /// launched something new.
    async fn launch_condition(
        &mut self,
        asset: &Asset,
        now: DateTime<Utc>,
        items: Vec<(String, Partition)>,
    ) -> Result<Option<TickRecord>> {
        if items.is_empty() {
            return Ok(None);
        }
        let keys: Vec<String> = items.iter().map(|(k, _)| k.clone()).collect();
        let shown = describe_partitions(items.iter().map(|(_, p)| p));
        let launched = self
            .launcher
            .launch(LaunchRequest {
                origin: Origin::Condition,
                name: asset.name(),
                selection: asset.name(),
                anchor: asset.name(),
                items,
                executor: None,
            })
            .await?;
        self.claimed
            .extend(keys.into_iter().map(|k| (asset.name().to_owned(), k)));
        if launched.new == 0 {
            return Ok(None);
        }
        Ok(Some(launched_tick(
            Origin::Condition,
            asset.name(),
            now,
            format!(
                "{} {shown}",
                asset.automation_condition().map_or("", |c| c.kind())
            ),
            Ok(launched),
        )))
    }
}

/// What an eager condition makes of one event for one partition.
enum Ready {
    Yes,
    No,
    /// The partition is running: it may have read the upstream before the event.
    InFlight,
}

/// The tick record of a launch.
fn launched_tick(
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

/// The ticks of `schedule` after `cursor` up to `now` (at most [`MAX_MISSED`]), and how many
/// more there were beyond that.
fn due_ticks(
    schedule: &Schedule,
    cursor: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(Vec<Tick>, usize)> {
    let mut due = Vec::new();
    let mut after = cursor;
    loop {
        let batch = schedule.ticks_after(after, 256)?;
        let Some(last) = batch.last() else {
            return Ok((due, 0));
        };
        after = last.at;
        let done = last.at > now;
        due.extend(batch.into_iter().filter(|t| t.at <= now));
        if done {
            return Ok((due, 0));
        }
        if due.len() > MAX_MISSED {
            return Ok((Vec::new(), due.len()));
        }
    }
}

/// A tick's launch key: its local time, which names it (see [`super::schedule`]).
fn tick_key(tick: &Tick) -> String {
    tick.local.format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Whether `partition` is the latest closed window of a time-partitioned `asset` (any
/// partition of another asset counts as latest).
fn is_latest_window(asset: &Asset, partition: &Partition, now: DateTime<Utc>) -> bool {
    let Some(Ok(windows)) = asset.partitions().and_then(|d| d.time_windows()) else {
        return true;
    };
    let closed = windows
        .grain
        .add(windows.grain.floor(now.naive_utc()), -1)
        .unwrap_or(windows.first);
    let latest = windows.last.map_or(closed, |last| last.min(closed));
    windows
        .grain
        .start_of(partition)
        .is_ok_and(|start| start == latest)
}

/// `a, b, c` or `a … z (n partitions)` for many, in the form people type.
fn describe_partitions<'a>(partitions: impl ExactSizeIterator<Item = &'a Partition>) -> String {
    let n = partitions.len();
    let all: Vec<&Partition> = partitions.collect();
    match all.as_slice() {
        [first, .., last] if n > 3 => format!(
            "{} … {} ({n} partitions)",
            first.input_text(),
            last.input_text()
        ),
        _ => all
            .iter()
            .map(|p| p.input_text())
            .collect::<Vec<_>>()
            .join(", "),
    }
}
