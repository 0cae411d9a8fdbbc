//! The materialization store: one record per (asset, partition, run id).
//!
//! The record hook writes a `Running` record when a materialization starts and its final status
//! when it ends. Backfills read the latest record per partition to skip what is done and to find
//! what failed. Memory, SQLite and PostgreSQL implementations pass one shared test suite
//! (`flowstone::testing::store_suite`).

mod memory;
mod retention;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use memory::MemoryStore;
pub use retention::RetentionPolicy;
pub(crate) use retention::expired_of_partition;

use crate::error::{ErrorRecord, Result};
use crate::ids::{BackfillId, RunId};
use crate::lineage::MaterializationKey;
use crate::partition::Partition;

/// Where a materialization stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MaterializationStatus {
    /// Started, not finished.
    Running,
    /// Finished with an output.
    Success,
    /// Finished with an error.
    Failed,
    /// Not run because it was already materialized.
    Skipped,
    /// Stopped by a cancel.
    Cancelled,
}

impl MaterializationStatus {
    /// The lower-case name used in rows and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            MaterializationStatus::Running => "running",
            MaterializationStatus::Success => "success",
            MaterializationStatus::Failed => "failed",
            MaterializationStatus::Skipped => "skipped",
            MaterializationStatus::Cancelled => "cancelled",
        }
    }

    /// Parses [`MaterializationStatus::as_str`].
    pub fn parse(input: &str) -> Option<Self> {
        Some(match input {
            "running" => MaterializationStatus::Running,
            "success" => MaterializationStatus::Success,
            "failed" => MaterializationStatus::Failed,
            "skipped" => MaterializationStatus::Skipped,
            "cancelled" => MaterializationStatus::Cancelled,
            _ => return None,
        })
    }

    /// Whether the materialization has ended.
    pub fn is_finished(self) -> bool {
        self != MaterializationStatus::Running
    }
}

impl std::fmt::Display for MaterializationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One materialization of an asset for a partition in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Materialization {
    /// The asset.
    pub asset: String,
    /// The partition.
    pub partition: Partition,
    /// The run.
    pub run_id: RunId,
    /// Where it stands.
    pub status: MaterializationStatus,
    /// The executor that ran it.
    pub executor: String,
    /// The attempt number (1-based) of the latest attempt.
    pub attempt: u32,
    /// When the latest attempt started.
    pub started_at: DateTime<Utc>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// How long the latest attempt took.
    pub duration: Option<Duration>,
    /// The error, when it failed or was cancelled.
    pub error: Option<ErrorRecord>,
    /// Metadata: the asset's static metadata, the job's, and what hooks added.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The backfill this materialization ran for, if any.
    #[serde(default)]
    pub backfill_id: Option<BackfillId>,
}

/// Which records to list. Results are newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaterializationQuery {
    /// Only this asset.
    pub asset: Option<String>,
    /// Only this partition.
    pub partition: Option<Partition>,
    /// Only this run.
    pub run_id: Option<RunId>,
    /// Only this status.
    pub status: Option<MaterializationStatus>,
    /// Only records that finished after this time (strictly).
    pub finished_after: Option<DateTime<Utc>>,
    /// At most this many.
    pub limit: Option<usize>,
}

impl MaterializationQuery {
    /// Records of `asset`.
    pub fn asset(asset: impl Into<String>) -> Self {
        MaterializationQuery {
            asset: Some(asset.into()),
            ..Default::default()
        }
    }

    /// Only `partition`.
    pub fn partition(mut self, partition: Partition) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Only `run_id`.
    pub fn run_id(mut self, run_id: RunId) -> Self {
        self.run_id = Some(run_id);
        self
    }

    /// Only `status`.
    pub fn status(mut self, status: MaterializationStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only records that finished after `at` (what automation reads to see what is new).
    pub fn finished_after(mut self, at: DateTime<Utc>) -> Self {
        self.finished_after = Some(at);
        self
    }

    /// At most `limit` records.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Whether `m` matches every filter that is set.
    pub fn matches(&self, m: &Materialization) -> bool {
        self.asset.as_ref().is_none_or(|a| *a == m.asset)
            && self.partition.as_ref().is_none_or(|p| *p == m.partition)
            && self.run_id.is_none_or(|r| r == m.run_id)
            && self.status.is_none_or(|s| s == m.status)
            && self
                .finished_after
                .is_none_or(|at| m.finished_at.is_some_and(|f| f > at))
    }
}

/// Persists materialization records.
#[async_trait]
pub trait MaterializationStore: Send + Sync + 'static {
    /// Inserts the record, or replaces the one with the same (asset, partition, run id).
    async fn record(&self, materialization: &Materialization) -> Result<()>;

    /// Records that a materialization started; the default is [`MaterializationStore::record`].
    /// Inside a materialization a store may return once the write is queued and leave the wait
    /// for its commit to the materialization ([`crate::deferred`]), as the SQL store does.
    async fn record_start(&self, materialization: &Materialization) -> Result<()> {
        self.record(materialization).await
    }

    /// The record for (asset, partition, run id).
    async fn get(
        &self,
        asset: &str,
        partition: &Partition,
        run_id: RunId,
    ) -> Result<Option<Materialization>>;

    /// Records matching `query`, newest (latest `started_at`, then run id) first.
    async fn list(&self, query: &MaterializationQuery) -> Result<Vec<Materialization>>;

    /// Successful records that finished after `after`, oldest first, at most `limit`: what
    /// automation reads to see what is new, often, so the SQL store answers it from an index.
    async fn succeeded_since(
        &self,
        after: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Materialization>> {
        let mut found = self
            .list(
                &MaterializationQuery::default()
                    .status(MaterializationStatus::Success)
                    .finished_after(after),
            )
            .await?;
        found.sort_by_key(|m| m.finished_at);
        found.truncate(limit);
        Ok(found)
    }

    /// For each partition of `asset`, its newest record.
    async fn latest_per_partition(&self, asset: &str) -> Result<Vec<Materialization>>;

    /// For each partition of `asset`, the status of its newest record, with the partition as
    /// [`Partition::encode`] writes it: what a status grid needs of
    /// [`MaterializationStore::latest_per_partition`], which stores may answer without
    /// reading whole records (the SQL store does, in one query). In no particular order.
    async fn latest_statuses(&self, asset: &str) -> Result<Vec<(String, MaterializationStatus)>> {
        Ok(self
            .latest_per_partition(asset)
            .await?
            .into_iter()
            .map(|m| (m.partition.encode(), m.status))
            .collect())
    }

    /// Up to `limit` records that `policy` drops at `now` (see [`crate::retention`]), oldest
    /// first within an (asset, partition), beginning with the (asset, partition) of `from` and
    /// going on in the store's own order of (asset, partition). Deleting what it returns and
    /// asking again from the last key returned visits every (asset, partition) once.
    async fn expired(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        from: Option<&MaterializationKey>,
        limit: usize,
    ) -> Result<Vec<MaterializationKey>>;

    /// Deletes the records of `keys`; returns how many there were.
    async fn delete(&self, keys: &[MaterializationKey]) -> Result<u64>;

    /// The newest record of (asset, partition).
    async fn latest(&self, asset: &str, partition: &Partition) -> Result<Option<Materialization>> {
        let query = MaterializationQuery::asset(asset)
            .partition(partition.clone())
            .limit(1);
        Ok(self.list(&query).await?.into_iter().next())
    }
}

impl Materialization {
    /// The record's key: (asset, partition, run id).
    pub fn key(&self) -> MaterializationKey {
        MaterializationKey {
            asset: self.asset.clone(),
            partition: self.partition.clone(),
            run_id: self.run_id,
        }
    }
}

/// The order of [`MaterializationStore::list`]: newest first.
pub fn newest_first(a: &Materialization, b: &Materialization) -> std::cmp::Ordering {
    (b.started_at, b.run_id).cmp(&(a.started_at, a.run_id))
}
