//! `schedule`: start a materialization without waiting for it.

use clap::Args;
use flowstone::{FlowStone, JobStatus, Run, Strategy};
use serde_json::json;

use crate::input;
use crate::output::{partition_json, partition_text, print_json};
use crate::queue::require_queue;
use crate::{CliError, GlobalOpts, Status};

/// Arguments of `schedule`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// The asset
    pub asset: String,
    /// The partition, in the asset's form
    #[arg(long, short)]
    pub partition: Option<String>,
    /// Not before this time: RFC 3339, 'YYYY-MM-DD HH:MM' (UTC), or a delay like +10m
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// The queue to put the job on
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,
    /// Priority from 0 (first) to 9 (last)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=9))]
    pub priority: Option<u8>,
    /// The executor: auto, queue, or an in-process one (which runs the job now)
    #[arg(long, default_value = "auto", value_name = "EXECUTOR")]
    pub executor: String,
}

/// Runs `schedule`.
pub async fn run(
    fs: &FlowStone,
    globals: &GlobalOpts,
    args: ScheduleArgs,
) -> Result<Status, CliError> {
    let partition = input::partition(fs, &args.asset, args.partition.as_deref())?;
    let at = args.at.as_deref().map(input::time).transpose()?;
    let strategy = input::executor(fs, &args.executor)?;
    let wants_queue = at.is_some() || args.queue.is_some() || args.priority.is_some();
    if wants_queue && matches!(strategy, Strategy::Auto | Strategy::Queue) {
        require_queue(fs, "schedule --at/--queue/--priority")?;
    }
    let mut run = Run::partition(partition.clone()).executor(strategy);
    if let Some(at) = at {
        run = run.scheduled_at(at);
    }
    if let Some(queue) = &args.queue {
        run = run.queue(queue.clone());
    }
    if let Some(priority) = args.priority {
        run = run.priority(priority);
    }
    let job = fs.schedule(&args.asset, run).await?;
    let queue_number = job
        .metadata
        .get(flowstone::queue::QUEUE_JOB_ID)
        .and_then(serde_json::Value::as_i64);
    let status = fs.job_status(&job).await.ok();
    let failed = matches!(status, Some(JobStatus::Failed(_)));
    if globals.json {
        print_json(&json!({
            "job_id": job.id.to_string(),
            "queue_job": queue_number,
            "asset": job.asset,
            "partition": partition_json(&job.partition),
            "executor": job.executor,
            "scheduled_at": job.scheduled_at.map(|t| t.to_rfc3339()),
            "status": status.as_ref().map(JobStatus::name),
        }));
    } else {
        let number = queue_number
            .map(|n| format!(" (queue job {n})"))
            .unwrap_or_default();
        println!(
            "scheduled {} {} as job {}{number} on executor '{}'",
            job.asset,
            partition_text(&job.partition),
            job.id,
            job.executor
        );
        if let Some(status) = &status {
            println!("status: {status}");
        }
    }
    Ok(if failed {
        Status::WorkFailed
    } else {
        Status::Ok
    })
}
