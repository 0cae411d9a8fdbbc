//! `jobs`, `job status ID`, `job cancel ID`: the durable queue's jobs.

use clap::{Args, Subcommand, ValueEnum};
use flowstone::{FlowStone, JobId};

use crate::queue::needs_queue;
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
        /// The job id (a UUID, as printed by `schedule` and `jobs`)
        id: String,
    },
    /// Cancel a job: a pending one at once, a running one is told to stop
    Cancel {
        /// The job id
        id: String,
    },
}

/// Runs `jobs`.
pub async fn list(
    _fs: &FlowStone,
    _globals: &GlobalOpts,
    _args: JobsArgs,
) -> Result<Status, CliError> {
    // TODO(lead): list the queue's jobs (filtered by state and queue) once the API exposes it.
    Err(needs_queue("`jobs`"))
}

/// Runs `job status ID` or `job cancel ID`.
pub async fn act(
    _fs: &FlowStone,
    _globals: &GlobalOpts,
    action: JobAction,
) -> Result<Status, CliError> {
    match action {
        JobAction::Status { id } => {
            let _id = job_id(&id)?;
            // TODO(lead): look the job up by id in the queue, then `fs.job_status(&job)`.
            Err(needs_queue("`job status`"))
        }
        JobAction::Cancel { id } => {
            let _id = job_id(&id)?;
            // TODO(lead): look the job up by id in the queue, then `fs.cancel_job(&job)`.
            Err(needs_queue("`job cancel`"))
        }
    }
}

/// Parses a job id.
pub(crate) fn job_id(input: &str) -> Result<JobId, CliError> {
    uuid::Uuid::parse_str(input.trim()).map(JobId).map_err(|_| {
        CliError::usage(format!(
            "invalid job id '{input}': expected a UUID like \
                 0193a5c2-7d1e-7b3a-9f00-2c4d5e6f7a8b, as printed by `schedule` and `jobs`"
        ))
    })
}
