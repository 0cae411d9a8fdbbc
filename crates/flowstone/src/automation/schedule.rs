//! Schedules: a cron expression (5 fields, or 6 with seconds first) in a time zone, targeting an
//! asset selection, each tick meaning one partition of the selection's anchor.
//!
//! # Ticks are wall-clock times
//!
//! A tick is a local time the expression matches, in the schedule's zone, and it fires once:
//!
//! - **Fall back** (a local hour happens twice): the tick fires at the first of the two
//!   instants. An hourly schedule fires 24 times that day, not 25: `01:00` is one tick.
//! - **Spring forward** (a local hour does not exist): a tick inside the gap fires at the
//!   first instant after it (`02:30` fires at `03:00`), as Vixie cron does; nothing is skipped.
//!   Two ticks in one gap (`*/30 2 * * *`) both fire at that instant, each once.
//!
//! So every tick has one instant, instants never go backwards, and the pair (schedule, local
//! time) names a tick uniquely: the key that makes its launch happen once. The matching
//! itself is croner's, run over local wall-clock times.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::error::{Error, Result};
use crate::partition::{Partition, PartitionsDefinition};
use crate::registry::Registry;
use crate::selection::AssetSelection;

/// One firing of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tick {
    /// The local wall-clock time the expression matched (names the tick).
    pub local: NaiveDateTime,
    /// When it fires.
    pub at: DateTime<Utc>,
}

/// A tick with the partition it targets, for [`Schedule::preview`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickPreview {
    /// The tick.
    pub tick: Tick,
    /// The anchor asset's partition it targets.
    pub partition: Partition,
}

/// Which partition of the anchor asset a tick targets.
#[derive(Clone)]
pub enum TickPartition {
    /// The time window of the anchor's definition that contains the tick's local time,
    /// moved by `offset` windows: `-1` (the default) is the window that just closed,
    /// "yesterday" for a daily asset at 00:05.
    Window {
        /// Windows to move by.
        offset: i64,
    },
    /// Always this partition (`Partition::Unpartitioned` for an unpartitioned asset).
    Fixed(Partition),
    /// What a function says, from the tick's local time.
    Custom(Arc<dyn Fn(NaiveDateTime) -> Result<Partition> + Send + Sync>),
}

impl TickPartition {
    /// The window that just closed ([`TickPartition::Window`] with offset -1).
    pub fn previous_window() -> Self {
        TickPartition::Window { offset: -1 }
    }

    /// The window the tick falls in.
    pub fn current_window() -> Self {
        TickPartition::Window { offset: 0 }
    }
}

impl fmt::Debug for TickPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TickPartition::Window { offset } => write!(f, "Window {{ offset: {offset} }}"),
            TickPartition::Fixed(p) => write!(f, "Fixed({p})"),
            TickPartition::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// Which ticks missed while no automation leader ran (or while the schedule was off) are
/// launched when it runs again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CatchUp {
    /// Only the latest missed tick; the others are recorded as one skipped tick (the default:
    /// no flood after downtime).
    #[default]
    Latest,
    /// The latest `max` missed ticks, oldest first; older ones are recorded as skipped.
    All {
        /// The most ticks launched at once.
        max: usize,
    },
}

/// A schedule. See the [module docs](self) for how ticks are counted.
#[derive(Clone)]
#[must_use = "a schedule does nothing until it is added to FlowStone::builder().schedule(..)"]
pub struct Schedule {
    name: String,
    expression: String,
    cron: std::result::Result<croner::Cron, String>,
    zone: std::result::Result<Tz, String>,
    selection: String,
    partition: Option<TickPartition>,
    default_on: bool,
    catch_up: CatchUp,
    executor: Option<crate::executor::Strategy>,
}

impl Schedule {
    /// The schedule `name`, firing on `expression`: five fields (minute, hour, day of
    /// month, month, day of week) or six with seconds first; in UTC unless
    /// [`Schedule::timezone`] says otherwise. A bad expression is reported by the build,
    /// naming the schedule.
    pub fn new(name: impl Into<String>, expression: impl Into<String>) -> Self {
        let expression = expression.into();
        Schedule {
            name: name.into(),
            cron: parse_cron(&expression),
            expression,
            zone: Ok(Tz::UTC),
            selection: String::new(),
            partition: None,
            default_on: true,
            catch_up: CatchUp::Latest,
            executor: None,
        }
    }

    /// The IANA time zone the expression is read in (`Europe/Berlin`).
    pub fn timezone(mut self, zone: &str) -> Self {
        self.zone = Tz::from_str(zone.trim()).map_err(|_| {
            format!("'{zone}' is not a time zone of the IANA database (like Europe/Berlin)")
        });
        self
    }

    /// The assets each tick runs (the selection syntax of [`crate::selection`]).
    pub fn target(mut self, selection: impl Into<String>) -> Self {
        self.selection = selection.into();
        self
    }

    /// The partition of the selection's anchor (its first named asset) a tick targets; by
    /// default the window that just closed for a time-partitioned anchor, none for an
    /// unpartitioned one.
    pub fn partition(mut self, partition: TickPartition) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Whether the schedule is on until someone turns it off (default on).
    pub fn default_on(mut self, on: bool) -> Self {
        self.default_on = on;
        self
    }

    /// Which missed ticks launch after downtime (default [`CatchUp::Latest`]).
    pub fn catch_up(mut self, catch_up: CatchUp) -> Self {
        self.catch_up = catch_up;
        self
    }

    /// The executor its ticks run on (default: the automation's, else each asset's own).
    pub fn executor(mut self, executor: crate::executor::Strategy) -> Self {
        self.executor = Some(executor);
        self
    }

    /// The executor it asks for, if any.
    pub fn executor_choice(&self) -> Option<&crate::executor::Strategy> {
        self.executor.as_ref()
    }

    /// Its catch-up setting.
    pub fn catch_up_policy(&self) -> CatchUp {
        self.catch_up
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cron expression as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Its time zone's name.
    pub fn zone_name(&self) -> &str {
        self.zone.as_ref().map_or("?", |z| z.name())
    }

    /// The selection it targets.
    pub fn selection(&self) -> &str {
        &self.selection
    }

    /// Whether it is on by default.
    pub fn is_default_on(&self) -> bool {
        self.default_on
    }

    /// The ticks after `after` (strictly), in order, at most `limit`.
    pub fn ticks_after(&self, after: DateTime<Utc>, limit: usize) -> Result<Vec<Tick>> {
        let cron = self.cron.as_ref().map_err(|why| self.error(why))?;
        let zone = *self.zone.as_ref().map_err(|why| self.error(why))?;
        let mut ticks = Vec::with_capacity(limit);
        let mut local = after.with_timezone(&zone).naive_local();
        // A tick of the repeated hour that already fired (fall back) is passed over below;
        // no expression needs more than a few years between matches.
        while ticks.len() < limit {
            let next = cron
                .find_next_occurrence(&local.and_utc(), false)
                .map_err(|e| self.error(&format!("no next time: {e}")))?
                .naive_utc();
            local = next;
            let at = instant(zone, next);
            if at > after {
                ticks.push(Tick { local: next, at });
            }
        }
        Ok(ticks)
    }

    /// The next `n` ticks after `after` and the partitions they target, without launching
    /// anything.
    pub fn preview(
        &self,
        registry: &Registry,
        after: DateTime<Utc>,
        n: usize,
    ) -> Result<Vec<TickPreview>> {
        let anchor = self.anchor(registry)?;
        self.ticks_after(after, n)?
            .into_iter()
            .map(|tick| {
                Ok(TickPreview {
                    partition: self.partition_of(registry, &anchor, tick)?,
                    tick,
                })
            })
            .collect()
    }

    /// The partition of `anchor` that `tick` targets.
    pub fn partition_of(&self, registry: &Registry, anchor: &str, tick: Tick) -> Result<Partition> {
        let def = registry.get(anchor)?.partitions().cloned();
        let chosen = match (&self.partition, &def) {
            (None, None) => return Ok(Partition::Unpartitioned),
            (Some(TickPartition::Fixed(p)), _) => p.clone(),
            (Some(TickPartition::Custom(f)), _) => f(tick.local)?,
            (None, Some(def)) => {
                window(def.as_ref(), tick.local, -1).map_err(|e| self.error(&e))?
            }
            (Some(TickPartition::Window { offset }), Some(def)) => {
                window(def.as_ref(), tick.local, *offset).map_err(|e| self.error(&e))?
            }
            (Some(TickPartition::Window { .. }), None) => {
                return Err(self.error(&format!(
                    "a window partition needs a time-partitioned asset, and '{anchor}' is not \
                     partitioned"
                )));
            }
        };
        match &def {
            Some(def) if !has_or_will_have(def.as_ref(), &chosen)? => Err(self.error(&format!(
                "its tick at {} targets partition {chosen}, which asset '{anchor}' does not have \
                 ({})",
                tick.local,
                def.expected_form()
            ))),
            None if !chosen.is_unpartitioned() => Err(self.error(&format!(
                "it targets partition {chosen}, but asset '{anchor}' is not partitioned"
            ))),
            _ => Ok(chosen),
        }
    }

    /// The asset the ticks' partitions belong to: the selection's first named asset.
    pub fn anchor(&self, registry: &Registry) -> Result<String> {
        let selection =
            AssetSelection::parse(&self.selection).map_err(|e| self.error(e.message()))?;
        let selected = selection
            .resolve(registry)
            .map_err(|e| self.error(e.message()))?;
        selection
            .anchor(&selected)
            .ok_or_else(|| self.error("its selection selects no asset"))
    }

    /// Checks what the build can: the expression, the zone, the selection, and that the next
    /// tick targets a partition the anchor has.
    pub(crate) fn check(&self, registry: &Registry, now: DateTime<Utc>) -> Result<()> {
        crate::limits::asset_name(&self.name)
            .map_err(|e| Error::invalid_graph(format!("schedule name: {}", e.message())))?;
        if self.selection.trim().is_empty() {
            return Err(self.error("it has no target; give it one with .target(\"asset+\")"));
        }
        self.cron.as_ref().map_err(|why| self.error(why))?;
        self.zone.as_ref().map_err(|why| self.error(why))?;
        self.preview(registry, now, 1).map(drop)
    }

    fn error(&self, why: &str) -> Error {
        Error::invalid_graph(format!(
            "schedule '{}' ({} in {}): {why}",
            self.name,
            self.expression,
            self.zone_name()
        ))
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("name", &self.name)
            .field("expression", &self.expression)
            .field("zone", &self.zone_name())
            .field("selection", &self.selection)
            .field("partition", &self.partition)
            .field("default_on", &self.default_on)
            .field("catch_up", &self.catch_up)
            .field("executor", &self.executor)
            .finish()
    }
}

/// Parses five fields (minute first) or six (seconds first); croner's error otherwise.
fn parse_cron(expression: &str) -> std::result::Result<croner::Cron, String> {
    let fields = expression.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "'{expression}' has {fields} fields; a cron expression has 5 (minute hour \
             day-of-month month day-of-week) or 6 (seconds first)"
        ));
    }
    // Six fields read seconds first.
    croner::Cron::from_str(expression)
        .map_err(|e| format!("'{expression}' is not a cron expression: {e}"))
}

/// When the local time `local` happens in `zone`: its first instant when it happens twice,
/// the first instant after the gap when it does not happen.
fn instant(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    if let Some(at) = zone.from_local_datetime(&local).earliest() {
        return at.with_timezone(&Utc);
    }
    // In a gap (at most a few hours): the first local minute after it that exists.
    let mut probe = local
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(local);
    for _ in 0..(24 * 60) {
        probe += TimeDelta::minutes(1);
        if let Some(at) = zone.from_local_datetime(&probe).earliest() {
            return at.with_timezone(&Utc);
        }
    }
    local.and_utc()
}

/// Whether `def` has `partition`, or will once the clock gets there (an open-ended time
/// definition ends today, and a tick may target tomorrow).
fn has_or_will_have(def: &dyn PartitionsDefinition, partition: &Partition) -> Result<bool> {
    if let Some(windows) = def.time_windows() {
        let windows = windows?;
        if let Ok(start) = windows.grain.start_of(partition) {
            return Ok(windows.holds(start));
        }
    }
    def.contains(partition)
}

/// The window of `def` containing `local` (read as the definition's UTC wall time), moved by
/// `offset` windows.
fn window(
    def: &dyn PartitionsDefinition,
    local: NaiveDateTime,
    offset: i64,
) -> std::result::Result<Partition, String> {
    let windows = match def.time_windows() {
        Some(Ok(windows)) => windows,
        Some(Err(e)) => return Err(e.message().to_owned()),
        None => {
            return Err(format!(
                "a window partition needs a time-based definition (Hourly, Daily, Monthly, \
                 Yearly); the anchor has {def:?}; give the schedule .partition(TickPartition::Fixed(..))"
            ));
        }
    };
    let start = windows
        .grain
        .add(windows.grain.floor(local), offset)
        .ok_or_else(|| format!("moving {local} by {offset} windows leaves the calendar"))?;
    Ok(windows.grain.partition_at(start))
}
