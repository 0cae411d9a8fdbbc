//! [`Job`]: one request to materialize an asset for a partition, as plain data.
//!
//! Everything a worker needs is in the job, and it serializes whole: the Elixir original kept
//! part of it (hooks, IO options) in node-local memory, which broke as soon as a second node
//! picked the job up. Code (the asset, hooks, IO managers, resources) is resolved by name in the
//! registry of whichever process runs the job.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::ids::{BackfillId, JobId, RunId};
use crate::output::Output;
use crate::partition::Partition;

/// One materialization request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// This job.
    pub id: JobId,
    /// The asset to materialize.
    pub asset: String,
    /// The partition to materialize.
    pub partition: Partition,
    /// The run it belongs to.
    pub run_id: RunId,
    /// 0 (first) to 9 (last).
    #[serde(default)]
    pub priority: u8,
    /// Not before this time (executors that cannot wait reject it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<DateTime<Utc>>,
    /// The IO manager to use instead of the asset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_manager: Option<String>,
    /// The hook stack by name; `None` is the default stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Vec<String>>,
    /// Per-hook configuration, by hook name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hook_config: BTreeMap<String, serde_json::Value>,
    /// Whether to write materialization records (the seed's `use_repo`).
    #[serde(default = "yes")]
    pub record: bool,
    /// Free-form metadata, copied into the materialization record.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The registered name of the executor that owns this job; status and cancel route by it.
    pub executor: String,
    /// The backfill this job belongs to, if any (the queue groups a backfill's rows by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill_id: Option<BackfillId>,
}

fn yes() -> bool {
    true
}

impl Job {
    /// A job for `asset` at `partition` in a new run, owned by no executor yet.
    pub fn new(asset: impl Into<String>, partition: Partition) -> Self {
        Job {
            id: JobId::new(),
            asset: asset.into(),
            partition,
            run_id: RunId::new(),
            priority: 0,
            scheduled_at: None,
            io_manager: None,
            hooks: None,
            hook_config: BTreeMap::new(),
            record: true,
            metadata: serde_json::Map::new(),
            executor: String::new(),
            backfill_id: None,
        }
    }

    /// The configuration given to hook `name`, if any.
    pub fn hook_config(&self, name: &str) -> Option<&serde_json::Value> {
        self.hook_config.get(name)
    }
}

/// Where a job stands.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum JobStatus {
    /// Waiting to run.
    Pending {
        /// When it may run, if scheduled.
        scheduled_at: Option<DateTime<Utc>>,
        /// The attempt it will be (1-based).
        attempt: u32,
    },
    /// Running now.
    Running,
    /// Finished with an output.
    Completed(Output),
    /// Finished with an error.
    Failed(Error),
    /// Cancelled before or while running.
    Cancelled,
}

impl JobStatus {
    /// A one-word name: pending, running, completed, failed, cancelled.
    pub fn name(&self) -> &'static str {
        match self {
            JobStatus::Pending { .. } => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed(_) => "completed",
            JobStatus::Failed(_) => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the job has ended.
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            JobStatus::Completed(_) | JobStatus::Failed(_) | JobStatus::Cancelled
        )
    }

    /// The status a finished attempt's result stands for.
    pub fn from_result(result: &crate::error::Result<Output>) -> JobStatus {
        match result {
            Ok(output) => JobStatus::Completed(output.clone()),
            Err(err) if err.kind() == crate::error::ErrorKind::Cancelled => JobStatus::Cancelled,
            Err(err) => JobStatus::Failed(err.clone()),
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobStatus::Pending {
                scheduled_at: Some(at),
                attempt,
            } => write!(f, "pending (attempt {attempt}, at {at})"),
            JobStatus::Pending { attempt, .. } => write!(f, "pending (attempt {attempt})"),
            JobStatus::Failed(err) => write!(f, "failed: {err}"),
            other => f.write_str(other.name()),
        }
    }
}
