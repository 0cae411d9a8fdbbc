//! Asset conditions in a round: `eager` over the new materializations, `on_missing` over
//! each asset's statuses, `on_cron` at its ticks.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};

use super::schedules::{due_ticks, tick_key};
use super::{Evaluator, launched_tick};
use crate::asset::Asset;
use crate::automation::AutomationCondition;
use crate::automation::condition::Rule;
use crate::automation::launch::LaunchRequest;
use crate::automation::schedule::Schedule;
use crate::automation::tick::{Origin, TickRecord, TickStatus};
use crate::error::Result;
use crate::partition::Partition;
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

impl Evaluator {
    /// Eager conditions: the materializations since the last look, each mapped to the
    /// partitions of eager dependents it affects.
    pub(super) async fn eager(&mut self, now: DateTime<Utc>) -> Result<Vec<TickRecord>> {
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
            let Some(condition) = self.condition_on(&asset).await else {
                continue;
            };
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
        condition: &AutomationCondition,
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
    pub(super) async fn on_missing(
        &mut self,
        asset: &Asset,
        now: DateTime<Utc>,
    ) -> Result<Vec<TickRecord>> {
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
        let keys: Vec<(String, String)> = items
            .iter()
            .map(|(key, _)| (asset.name().to_owned(), key.clone()))
            .collect();
        let tick = self.launch_condition(asset, now, items).await?;
        self.claimed.extend(keys);
        Ok(tick.into_iter().collect())
    }

    /// `on_cron`: the latest tick since the last launch, once its inputs have all been
    /// materialized since the tick.
    pub(super) async fn on_cron(
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
