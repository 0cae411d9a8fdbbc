//! Automation: what runs without anyone calling it.
//!
//! Three kinds of definitions, all declared in the builder:
//!
//! - [`Schedule`]: a cron expression in a time zone, an asset selection, and the partition
//!   each tick means (by default the time window that just closed: "yesterday" for a daily
//!   asset at 00:05), with the daylight-saving rules written on [`Schedule`] and a
//!   [`CatchUp`] setting for ticks missed during downtime.
//! - [`Sensor`]: a user's async function called at an interval with a persisted cursor,
//!   answering with [`RunRequest`]s (a run key launches once, ever).
//! - [`AutomationCondition`] on an asset: `eager`, `on_cron`, `on_missing`.
//!
//! They are evaluated inside the processes that run automation
//! ([`crate::queue::WorkerBuilder::automation`], or [`FlowStone::automation`] without a
//! worker): one leader per database at a time ([`AUTOMATION_LEASE`]), the others standing by.
//! Each definition has an on/off switch shared by every process ([`AutomationStore`]), and
//! every evaluation that does something writes a [`TickRecord`]. What they launch is a stored
//! backfill, once per launch key (the `launch` module explains how that survives a
//! leader's death).
//!
//! [`FlowStone::automation`]: crate::FlowStone::automation

mod api;
mod condition;
mod evaluate;
mod launch;
mod runner;
mod schedule;
mod sensor;
mod store;
mod tick;

pub use api::{AutomationStatus, DefinitionStatus};
pub use condition::AutomationCondition;
pub use evaluate::RoundReport;
pub use runner::{AUTOMATION_LEASE, Automation, AutomationHandle};
pub use schedule::{CatchUp, Schedule, Tick, TickPartition, TickPreview};
pub use sensor::{RunRequest, Sensor, SensorContext, SensorResult};
pub use store::{AutomationStore, MemoryAutomation};
pub use tick::{Origin, TickQuery, TickRecord, TickStatus};

/// The build's checks of every automation definition: names unique per kind, each schedule,
/// sensor and condition valid against `registry`.
pub(crate) fn check_definitions(
    registry: &crate::registry::Registry,
    schedules: &[Schedule],
    sensors: &[Sensor],
) -> crate::error::Result<()> {
    let now = chrono::Utc::now();
    let twice = |kind: &str, name: &str| {
        crate::error::Error::invalid_graph(format!(
            "{kind} '{name}' is declared twice; {kind} names must be unique"
        ))
    };
    for (i, schedule) in schedules.iter().enumerate() {
        if schedules[..i].iter().any(|s| s.name() == schedule.name()) {
            return Err(twice("schedule", schedule.name()));
        }
        schedule.check(registry, now)?;
    }
    for (i, sensor) in sensors.iter().enumerate() {
        if sensors[..i].iter().any(|s| s.name() == sensor.name()) {
            return Err(twice("sensor", sensor.name()));
        }
        sensor.check()?;
    }
    for asset in registry.assets() {
        if let Some(condition) = asset.automation_condition() {
            condition.check(registry, asset.name())?;
        }
    }
    Ok(())
}
