//! `jobs`, `job status ID`, `job cancel ID`: the durable queue's jobs.

use clap::{Args, Subcommand, ValueEnum};
use flowstone::{FlowStone, JobId};

use crate::queue::not_wired;
use crate::{CliError, GlobalOpts, Status};

/// Arguments of `jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Only jobs in this state
    #[arg(long, value_name = "STATE")]
    pub state: Option<JobState>,
    /// Only jobs on this queue
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    /// At most this many jobs, newest first
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: usize,
}

/// A queue job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JobState {
    /// Ready to run.
    Available,
    /// Waiting for its time.
    Scheduled,
    /// Running.
    Executing,
    /// Failed, will run again.
    Retryable,
    /// Done.
    Completed,
    /// Failed for good.
    Discarded,
    /// Cancelled.
    Cancelled,
}

/// `job status ID` and `job cancel ID`.
#[derive(Debug, Subcommand)]
pub enum JobAction {
    /// Where a job stands
    Status {
        /// The job: the queue's job number or the job UUID, as printed by `schedule`
        id: String,
    },
    /// Cancel a job: a pending one at once, a running one is told to stop
    Cancel {
        /// The job: the queue's job number or the job UUID
        id: String,
    },
}

/// Runs `jobs`.
pub async fn list(
    _fs: &FlowStone,
    _globals: &GlobalOpts,
    _args: JobsArgs,
) -> Result<Status, CliError> {
    // TODO(lead): `fs.queue()` → `Queue::list(&JobFilter { state, queue, limit, .. })`, a table
    // (id, state, queue, asset and partition from the row's meta, attempt, scheduled_at).
    Err(not_wired("`jobs`"))
}

/// Runs `job status ID` or `job cancel ID`.
pub async fn act(
    _fs: &FlowStone,
    _globals: &GlobalOpts,
    action: JobAction,
) -> Result<Status, CliError> {
    match action {
        JobAction::Status { id } => {
            let _id = job_ref(&id)?;
            // TODO(lead): `Queue::get(row id)` (or find the row whose meta has this job id), then
            // show its state, attempt, errors.
            Err(not_wired("`job status`"))
        }
        JobAction::Cancel { id } => {
            let _id = job_ref(&id)?;
            // TODO(lead): `Queue::cancel(row id)`.
            Err(not_wired("`job cancel`"))
        }
    }
}

/// A job as a person names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobRef {
    /// The queue row's number.
    Queue(i64),
    /// FlowStone's job id.
    Job(JobId),
}

/// Parses a job id: the queue row's number or FlowStone's job UUID, both printed by `schedule`.
pub(crate) fn job_ref(input: &str) -> Result<JobRef, CliError> {
    let trimmed = input.trim();
    if let Ok(number) = trimmed.parse::<i64>()
        && number > 0
    {
        return Ok(JobRef::Queue(number));
    }
    uuid::Uuid::parse_str(trimmed)
        .map(|id| JobRef::Job(JobId(id)))
        .map_err(|_| {
            CliError::usage(format!(
                "invalid job id '{input}': expected the queue's job number (like 42) or a job \
                 UUID (like 0193a5c2-7d1e-7b3a-9f00-2c4d5e6f7a8b), as printed by `schedule`"
            ))
        })
}
