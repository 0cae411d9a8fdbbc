//! Tick records: one row per evaluation that did something (a schedule's tick, a sensor's
//! call, a condition that launched or failed), with what it launched or why it did not.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::BackfillId;

/// What an automation definition is: the `kind` its switches, cursors, launches and ticks
/// are stored under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A [`super::Schedule`].
    Schedule,
    /// A [`super::Sensor`].
    Sensor,
    /// An asset's [`super::AutomationCondition`] (the name is the asset's).
    Condition,
}

impl Origin {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Schedule => "schedule",
            Origin::Sensor => "sensor",
            Origin::Condition => "condition",
        }
    }

    /// Parses [`Origin::as_str`].
    pub fn parse(input: &str) -> Option<Self> {
        [Origin::Schedule, Origin::Sensor, Origin::Condition]
            .into_iter()
            .find(|o| o.as_str() == input)
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a tick ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TickStatus {
    /// It launched runs (see [`TickRecord::backfills`]).
    Launched,
    /// It launched nothing, for the reason in [`TickRecord::detail`].
    Skipped,
    /// It failed with the error in [`TickRecord::detail`].
    Failed,
}

impl TickStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            TickStatus::Launched => "launched",
            TickStatus::Skipped => "skipped",
            TickStatus::Failed => "failed",
        }
    }

    /// Parses [`TickStatus::as_str`].
    pub fn parse(input: &str) -> Option<Self> {
        [
            TickStatus::Launched,
            TickStatus::Skipped,
            TickStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == input)
    }
}

impl std::fmt::Display for TickStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recorded tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickRecord {
    /// What ticked.
    pub origin: Origin,
    /// Its name (a condition's is its asset's).
    pub name: String,
    /// When: a schedule tick's instant, else the evaluation's time.
    pub at: DateTime<Utc>,
    /// How it ended.
    pub status: TickStatus,
    /// What it was (a schedule's local tick time, the partitions a condition launched), why
    /// it skipped, or its error.
    pub detail: Option<String>,
    /// Partitions launched (new launch keys).
    pub launched: usize,
    /// The backfills that run what it launched.
    pub backfills: Vec<BackfillId>,
}

impl TickRecord {
    /// A tick of (`origin`, `name`) at `at` that ended as `status`, launching nothing yet.
    pub fn new(origin: Origin, name: &str, at: DateTime<Utc>, status: TickStatus) -> Self {
        TickRecord {
            origin,
            name: name.to_owned(),
            at,
            status,
            detail: None,
            launched: 0,
            backfills: Vec::new(),
        }
    }

    /// With `detail`.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// Which ticks to read, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickQuery {
    /// Only this kind.
    pub origin: Option<Origin>,
    /// Only this name.
    pub name: Option<String>,
    /// At most this many (default 50).
    pub limit: Option<usize>,
}

impl TickQuery {
    /// The ticks of (`origin`, `name`).
    pub fn of(origin: Origin, name: impl Into<String>) -> Self {
        TickQuery {
            origin: Some(origin),
            name: Some(name.into()),
            limit: None,
        }
    }

    /// At most `limit`.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Whether `tick` matches.
    pub(crate) fn matches(&self, tick: &TickRecord) -> bool {
        self.origin.is_none_or(|o| o == tick.origin)
            && self.name.as_deref().is_none_or(|n| n == tick.name)
    }

    /// The limit asked for, or the default.
    pub(crate) fn limit_or_default(&self) -> usize {
        self.limit.unwrap_or(50)
    }
}
