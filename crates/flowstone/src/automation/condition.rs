//! Automation conditions on assets: when an asset's partitions should run without anyone
//! asking, declared with [`crate::Asset::automation`] and evaluated by the automation leader.
//!
//! - [`AutomationCondition::eager`]: a partition runs when one of the upstream partitions it
//!   reads is materialized and every upstream partition it reads is present; never while it
//!   is running already. By default only the asset's latest time window reacts (the window
//!   that closed last), as in Dagster; [`AutomationCondition::all_windows`] lets every
//!   partition react. It reacts to materializations after the condition was first evaluated
//!   (or turned on), not to history.
//! - [`AutomationCondition::on_cron`]: once per cron tick, the partition the tick means (the
//!   window that just closed) runs as soon as every upstream partition it reads has been
//!   materialized since the tick.
//! - [`AutomationCondition::on_missing`]: partitions that were never materialized run once
//!   their upstream partitions are present, each at most once ever (a failure is not
//!   retried by the condition): it fills gaps, then stops.

use super::schedule::Schedule;
use crate::error::Result;
use crate::registry::Registry;

/// When an asset's partitions run by themselves. See the [module docs](self).
#[derive(Debug, Clone)]
#[must_use = "a condition does nothing until it is given to Asset::automation(..)"]
pub struct AutomationCondition {
    pub(crate) rule: Rule,
    pub(crate) all_windows: bool,
    pub(crate) default_on: bool,
}

/// What the condition reacts to.
#[derive(Debug, Clone)]
pub(crate) enum Rule {
    Eager,
    /// The ticks come from a schedule-shaped cron (expression and zone).
    OnCron(Box<Schedule>),
    OnMissing,
}

impl AutomationCondition {
    /// Runs a partition when an upstream partition it reads is materialized and all it reads
    /// are present.
    pub fn eager() -> Self {
        Self::of(Rule::Eager)
    }

    /// Runs the partition each tick of `expression` (cron, 5 or 6 fields, UTC unless
    /// [`AutomationCondition::timezone`]) means, once its upstream partitions have all been
    /// materialized since the tick.
    pub fn on_cron(expression: &str) -> Self {
        Self::of(Rule::OnCron(Box::new(Schedule::new("on_cron", expression))))
    }

    /// Runs partitions that were never materialized, once their upstream partitions are
    /// present.
    pub fn on_missing() -> Self {
        Self::of(Rule::OnMissing)
    }

    fn of(rule: Rule) -> Self {
        AutomationCondition {
            rule,
            all_windows: false,
            default_on: true,
        }
    }

    /// The time zone an [`on_cron`](Self::on_cron) expression is read in.
    pub fn timezone(mut self, zone: &str) -> Self {
        if let Rule::OnCron(cron) = &mut self.rule {
            **cron = cron.as_ref().clone().timezone(zone);
        }
        self
    }

    /// Lets every partition of a time-partitioned asset react, not only its latest window
    /// ([`eager`](Self::eager)).
    pub fn all_windows(mut self) -> Self {
        self.all_windows = true;
        self
    }

    /// Whether the condition is on until someone turns it off (default on).
    pub fn default_on(mut self, on: bool) -> Self {
        self.default_on = on;
        self
    }

    /// Its kind's name: `eager`, `on_cron` or `on_missing`.
    pub fn kind(&self) -> &'static str {
        match self.rule {
            Rule::Eager => "eager",
            Rule::OnCron(_) => "on_cron",
            Rule::OnMissing => "on_missing",
        }
    }

    /// A short description (`eager`, `on_cron(0 1 * * *, UTC)`).
    pub fn describe(&self) -> String {
        match &self.rule {
            Rule::OnCron(cron) => format!("on_cron({}, {})", cron.expression(), cron.zone_name()),
            _ if self.all_windows => format!("{} (all windows)", self.kind()),
            _ => self.kind().to_owned(),
        }
    }

    /// Whether it is on by default.
    pub fn is_default_on(&self) -> bool {
        self.default_on
    }

    /// Checks what the build can: an `on_cron` expression and zone, and that its ticks mean a
    /// partition of `asset`.
    pub(crate) fn check(&self, registry: &Registry, asset: &str) -> Result<()> {
        match &self.rule {
            Rule::OnCron(cron) => cron
                .as_ref()
                .clone()
                .target(asset)
                .check(registry, chrono::Utc::now())
                .map_err(|e| {
                    crate::error::Error::invalid_graph(format!(
                        "asset '{asset}', automation condition {}: {}",
                        self.describe(),
                        e.message()
                    ))
                }),
            Rule::Eager | Rule::OnMissing => Ok(()),
        }
    }
}
