//! `jobs`, `job status ID`, `job cancel ID`: the durable queue's jobs.

use clap::{Args, Subcommand, ValueEnum};
use flowstone::{FlowStone, JobId, Partition};
use flowstone_queue::{Job as Row, JobFilter, Queue};
use serde_json::{Value, json};

use crate::output::{Table, one_line, partition_text, print_json};
use crate::queue::require_queue;
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
    /// At most this many jobs, oldest first
    #[arg(long, default_value_t = 100, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
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

impl From<JobState> for flowstone_queue::JobState {
    fn from(state: JobState) -> Self {
        match state {
            JobState::Available => Self::Available,
            JobState::Scheduled => Self::Scheduled,
            JobState::Executing => Self::Executing,
            JobState::Retryable => Self::Retryable,
            JobState::Completed => Self::Completed,
            JobState::Discarded => Self::Discarded,
            JobState::Cancelled => Self::Cancelled,
        }
    }
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

/// A job as a person names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobRef {
    /// The queue row's number.
    Queue(i64),
    /// FlowStone's job id.
    Job(JobId),
}

impl std::fmt::Display for JobRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobRef::Queue(n) => write!(f, "{n}"),
            JobRef::Job(id) => write!(f, "{id}"),
        }
    }
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

fn queue_of(fs: &FlowStone, what: &str) -> Result<Queue, CliError> {
    require_queue(fs, what)?;
    fs.queue()
        .ok_or_else(|| CliError::usage(format!("{what} needs a database-backed queue")))
}

fn queue_error(err: flowstone_queue::Error) -> CliError {
    match err {
        flowstone_queue::Error::NotFound(id) => {
            CliError::usage(format!("no job {id} in the queue"))
        }
        flowstone_queue::Error::AlreadyFinished { id, state } => {
            flowstone::Error::already_finished(id, state.as_str()).into()
        }
        other => CliError::failed(format!("the queue failed: {other}")),
    }
}

/// Runs `jobs`.
pub async fn list(
    fs: &FlowStone,
    globals: &GlobalOpts,
    args: JobsArgs,
) -> Result<Status, CliError> {
    let queue = queue_of(fs, "`jobs`")?;
    let filter = JobFilter {
        queue: args.queue.clone(),
        state: args.state.map(Into::into),
        limit: Some(i64::from(args.limit)),
        ..JobFilter::default()
    };
    let rows = queue.list(&filter).await.map_err(queue_error)?;
    if globals.json {
        print_json(&json!({ "jobs": rows.iter().map(row_json).collect::<Vec<_>>() }));
        return Ok(Status::Ok);
    }
    if rows.is_empty() {
        println!("no jobs");
        return Ok(Status::Ok);
    }
    let mut table = Table::new([
        "ID",
        "STATE",
        "QUEUE",
        "ASSET",
        "PARTITION",
        "ATTEMPT",
        "SCHEDULED (UTC)",
        "LAST ERROR",
    ]);
    for row in &rows {
        let (asset, partition) = asset_and_partition(row);
        table.row([
            row.id.to_string(),
            row.state.as_str().to_owned(),
            row.queue.clone(),
            asset,
            partition,
            format!("{}/{}", row.attempt, row.max_attempts),
            row.scheduled_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            last_error(row),
        ]);
    }
    print!("{table}");
    Ok(Status::Ok)
}

/// Runs `job status ID` or `job cancel ID`.
pub async fn act(
    fs: &FlowStone,
    globals: &GlobalOpts,
    action: JobAction,
) -> Result<Status, CliError> {
    match action {
        JobAction::Status { id } => {
            let job = job_ref(&id)?;
            let queue = queue_of(fs, "`job status`")?;
            let row = find(&queue, job).await?;
            print_row(globals, &row);
            Ok(Status::Ok)
        }
        JobAction::Cancel { id } => {
            let job = job_ref(&id)?;
            let queue = queue_of(fs, "`job cancel`")?;
            let row = find(&queue, job).await?;
            let before = row.state;
            let row = queue.cancel(row.id).await.map_err(queue_error)?;
            if !globals.json {
                let what = match before {
                    flowstone_queue::JobState::Executing => {
                        "it was running; its worker is told to stop"
                    }
                    flowstone_queue::JobState::Cancelled => "it already was",
                    _ => "it will not run",
                };
                println!("job {}: {} ({what})", row.id, row.state.as_str());
            }
            print_row(globals, &row);
            Ok(Status::Ok)
        }
    }
}

/// The queue row of `job`: by number, or the row whose metadata carries the job's UUID.
async fn find(queue: &Queue, job: JobRef) -> Result<Row, CliError> {
    match job {
        JobRef::Queue(id) => queue.get(id).await.map_err(queue_error),
        JobRef::Job(id) => {
            let wanted = id.to_string();
            let mut after_id = None;
            loop {
                let page = queue
                    .list(&JobFilter {
                        after_id,
                        limit: Some(500),
                        ..JobFilter::default()
                    })
                    .await
                    .map_err(queue_error)?;
                if let Some(row) = page
                    .iter()
                    .find(|row| row.meta.get("job_id").and_then(Value::as_str) == Some(&wanted))
                {
                    return Ok(row.clone());
                }
                match page.last() {
                    Some(last) => after_id = Some(last.id),
                    None => {
                        return Err(CliError::usage(format!("no job {wanted} in the queue")));
                    }
                }
            }
        }
    }
}

fn asset_and_partition(row: &Row) -> (String, String) {
    let asset = row
        .meta
        .get("asset")
        .and_then(Value::as_str)
        .unwrap_or(&row.kind)
        .to_owned();
    let partition = row
        .meta
        .get("partition")
        .and_then(Value::as_str)
        .map(|encoded| {
            Partition::decode(encoded).map_or_else(|_| encoded.to_owned(), |p| partition_text(&p))
        })
        .unwrap_or_default();
    (asset, partition)
}

fn last_error(row: &Row) -> String {
    row.errors
        .last()
        .map(|e| one_line(&readable_error(&e.error)))
        .unwrap_or_default()
}

/// FlowStone stores an error record as JSON in the row; show its message.
fn readable_error(text: &str) -> String {
    serde_json::from_str::<flowstone::ErrorRecord>(text)
        .map(|record| record.message)
        .unwrap_or_else(|_| text.to_owned())
}

fn row_json(row: &Row) -> Value {
    let (asset, partition) = asset_and_partition(row);
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339());
    json!({
        "id": row.id,
        "job_id": row.meta.get("job_id"),
        "state": row.state.as_str(),
        "queue": row.queue,
        "kind": row.kind,
        "asset": asset,
        "partition": partition,
        "priority": row.priority,
        "attempt": row.attempt,
        "max_attempts": row.max_attempts,
        "snoozed": row.snoozed,
        "node": row.node,
        "batch": row.batch,
        "inserted_at": time(row.inserted_at),
        "scheduled_at": time(row.scheduled_at),
        "attempted_at": time(row.attempted_at),
        "completed_at": time(row.completed_at),
        "cancelled_at": time(row.cancelled_at),
        "discarded_at": time(row.discarded_at),
        "errors": row.errors.iter().map(|e| json!({
            "attempt": e.attempt,
            "at": e.at,
            "error": readable_error(&e.error),
        })).collect::<Vec<_>>(),
    })
}

fn print_row(globals: &GlobalOpts, row: &Row) {
    if globals.json {
        print_json(&row_json(row));
        return;
    }
    let (asset, partition) = asset_and_partition(row);
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| String::from("-"))
    };
    let mut table = Table::new(["FIELD", "VALUE"]);
    table.row(["job".into(), row.id.to_string()]);
    if let Some(id) = row.meta.get("job_id").and_then(Value::as_str) {
        table.row(["job id".into(), id.to_owned()]);
    }
    table.row(["state".into(), row.state.as_str().to_owned()]);
    table.row(["asset".into(), asset]);
    table.row(["partition".into(), partition]);
    table.row(["queue".into(), row.queue.clone()]);
    table.row(["priority".into(), row.priority.to_string()]);
    table.row([
        "attempt".into(),
        format!("{} of {}", row.attempt, row.max_attempts),
    ]);
    table.row(["scheduled at".into(), time(row.scheduled_at)]);
    table.row(["attempted at".into(), time(row.attempted_at)]);
    let ended = row.completed_at.or(row.cancelled_at).or(row.discarded_at);
    table.row(["finished at".into(), time(ended)]);
    table.row([
        "node".into(),
        row.node.clone().unwrap_or_else(|| String::from("-")),
    ]);
    print!("{table}");
    for e in &row.errors {
        println!(
            "attempt {} failed: {}",
            e.attempt,
            one_line(&readable_error(&e.error))
        );
    }
}
