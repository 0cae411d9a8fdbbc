//! The automation part of the [`FlowStone`] API: the declared sensors and conditions, their
//! switches, tick records, the leader, and [`FlowStone::automation`] to run it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::runner::Automation;
use super::sensor::Sensor;
use super::store::AutomationStore;
use super::tick::{Origin, TickQuery, TickRecord};
use crate::api::FlowStone;
use crate::error::{Error, Result};
use crate::suggest::did_you_mean;

/// A schedule, sensor or condition as [`FlowStone::automation_status`] shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefinitionStatus {
    /// What it is.
    pub origin: Origin,
    /// Its name (a condition's is its asset's).
    pub name: String,
    /// What it does (`0 1 * * * UTC → daily+`, `every 30s`, `eager`).
    pub describe: String,
    /// Whether it is on.
    pub on: bool,
    /// Its latest tick record, if any.
    pub last_tick: Option<TickRecord>,
}

/// Where automation stands, from any process on the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AutomationStatus {
    /// The process leading automation now (`None`: nobody runs it, or no database).
    pub leader: Option<String>,
    /// Until when its lease lasts unless renewed.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Every definition.
    pub definitions: Vec<DefinitionStatus>,
}

impl FlowStone {
    /// Automation for this process: [`Automation::start`] it, or let a worker run it with
    /// `fs.worker().automation(true)`.
    pub fn automation(&self) -> Automation {
        Automation::new(self.clone())
    }

    /// The declared sensors, in the order they were added.
    pub fn sensors(&self) -> &[Sensor] {
        &self.defs().sensors
    }

    /// Whether sensor `name` is on. An unknown name is `NotFound` with the nearest one.
    pub async fn sensor_enabled(&self, name: &str) -> Result<bool> {
        let default = self.find_sensor(name)?.is_default_on();
        self.switch(Origin::Sensor, name, default).await
    }

    /// Turns sensor `name` on or off, for every process on this database.
    pub async fn set_sensor_enabled(&self, name: &str, on: bool) -> Result<()> {
        self.find_sensor(name)?;
        self.automation_store()
            .set_enabled(Origin::Sensor.as_str(), name, on)
            .await
    }

    /// Whether the automation condition of `asset` is on. An asset without one is
    /// `NotFound`.
    pub async fn condition_enabled(&self, asset: &str) -> Result<bool> {
        let default = self.find_condition(asset)?.is_default_on();
        self.switch(Origin::Condition, asset, default).await
    }

    /// Turns the automation condition of `asset` on or off, for every process.
    pub async fn set_condition_enabled(&self, asset: &str, on: bool) -> Result<()> {
        self.find_condition(asset)?;
        self.automation_store()
            .set_enabled(Origin::Condition.as_str(), asset, on)
            .await
    }

    /// Tick records matching `query`, newest first. A query naming an unknown schedule,
    /// sensor or asset is `NotFound`.
    pub async fn ticks(&self, query: &TickQuery) -> Result<Vec<TickRecord>> {
        if let (Some(origin), Some(name)) = (query.origin, &query.name) {
            match origin {
                Origin::Schedule => self.find_schedule(name).map(drop)?,
                Origin::Sensor => self.find_sensor(name).map(drop)?,
                Origin::Condition => self.find_condition(name).map(drop)?,
            }
        }
        self.automation_store().ticks(query).await
    }

    /// Who leads automation, and every definition with its switch and latest tick.
    pub async fn automation_status(&self) -> Result<AutomationStatus> {
        let mut definitions = Vec::new();
        for s in self.schedules() {
            definitions.push((
                Origin::Schedule,
                s.name().to_owned(),
                format!("{} {} → {}", s.expression(), s.zone_name(), s.selection()),
                s.is_default_on(),
            ));
        }
        for s in self.sensors() {
            definitions.push((
                Origin::Sensor,
                s.name().to_owned(),
                format!("every {:?}", s.interval_of()),
                s.is_default_on(),
            ));
        }
        for asset in self.registry().assets() {
            if let Some(c) = asset.automation_condition() {
                definitions.push((
                    Origin::Condition,
                    asset.name().to_owned(),
                    c.describe(),
                    c.is_default_on(),
                ));
            }
        }
        let mut shown = Vec::with_capacity(definitions.len());
        for (origin, name, describe, default) in definitions {
            let last_tick = self
                .automation_store()
                .ticks(&TickQuery::of(origin, name.as_str()).limit(1))
                .await?
                .pop();
            shown.push(DefinitionStatus {
                on: self.switch(origin, &name, default).await?,
                origin,
                name,
                describe,
                last_tick,
            });
        }
        let (leader, lease_expires_at) = self.automation_leader().await?;
        Ok(AutomationStatus {
            leader,
            lease_expires_at,
            definitions: shown,
        })
    }

    async fn automation_leader(&self) -> Result<(Option<String>, Option<DateTime<Utc>>)> {
        #[cfg(feature = "database")]
        if let Some(db) = self.database() {
            let holder = flowstone_queue::lease::holder(db, super::AUTOMATION_LEASE)
                .await
                .map_err(crate::queue::queue_error)?;
            return Ok(match holder {
                Some(h) => (Some(h.holder), Some(h.expires_at)),
                None => (None, None),
            });
        }
        Ok((None, None))
    }

    async fn switch(&self, origin: Origin, name: &str, default: bool) -> Result<bool> {
        Ok(self
            .automation_store()
            .enabled(origin.as_str(), name)
            .await?
            .unwrap_or(default))
    }

    fn find_sensor(&self, name: &str) -> Result<&Sensor> {
        self.sensors()
            .iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                let hint = did_you_mean(name, self.sensors().iter().map(|s| s.name()));
                Error::not_found(format!("sensor '{name}' is not declared{hint}"))
            })
    }

    fn find_condition(&self, asset: &str) -> Result<&super::AutomationCondition> {
        self.registry()
            .get(asset)?
            .automation_condition()
            .ok_or_else(|| {
                Error::not_found(format!(
                    "asset '{asset}' has no automation condition; give it one with \
                 Asset::automation(AutomationCondition::eager())"
                ))
            })
    }

    /// The automation state store.
    pub fn automation_store(&self) -> &dyn AutomationStore {
        self.automation_state()
    }
}
