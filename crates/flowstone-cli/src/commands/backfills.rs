//! `backfills [list|status ID|cancel ID|resume ID]`: stored backfills, from any process.

use clap::Subcommand;
use flowstone::backfill::{BackfillRecord, PartitionRecord};
use flowstone::{BackfillId, FlowStone};
use serde_json::{Value, json};

use super::backfill::{TimedReport, print_backfill_summary, status_of};
use crate::output::{Table, one_line, partition_json, partition_text, print_json};
use crate::progress::BackfillProgress;
use crate::{CliError, GlobalOpts, Status};

/// What to do with stored backfills.
#[derive(Debug, Subcommand)]
pub enum BackfillsAction {
    /// The stored backfills, newest first
    List {
        /// At most this many
        #[arg(long, default_value_t = 20, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
    /// One backfill: its request, status, counts, and the outcomes of its partitions
    Status {
        /// The backfill's id, as `backfill` and `backfills list` print it
        id: String,
        /// At most this many partition outcomes (failures first in the text output)
        #[arg(long, default_value_t = 50, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
        /// Show its progress until it ends (it may run in another process)
        #[arg(long)]
        follow: bool,
    },
    /// Cancel a backfill running in any process: pending partitions never start, running ones
    /// are told to stop
    Cancel {
        /// The backfill's id
        id: String,
    },
    /// Go on with a backfill whose process died, in this process: nothing it did runs again
    Resume {
        /// The backfill's id
        id: String,
    },
}

/// Runs `backfills ...`.
pub async fn run(
    fs: &FlowStone,
    globals: &GlobalOpts,
    action: Option<BackfillsAction>,
) -> Result<Status, CliError> {
    match action.unwrap_or(BackfillsAction::List { limit: 20 }) {
        BackfillsAction::List { limit } => {
            let records = fs.backfills(limit as usize).await?;
            if globals.json {
                print_json(
                    &json!({ "backfills": records.iter().map(record_json).collect::<Vec<_>>() }),
                );
            } else if records.is_empty() {
                println!("no backfill is stored");
            } else {
                let mut table =
                    Table::new(["ID", "SELECTION", "STATUS", "DONE", "FAILED", "CREATED"]);
                for r in &records {
                    table.row([
                        r.id.to_string(),
                        r.request.selection.clone(),
                        r.status.to_string(),
                        format!("{}/{}", r.counts.done(), r.counts.total),
                        (r.counts.failed + r.counts.upstream_failed).to_string(),
                        r.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    ]);
                }
                print!("{table}");
            }
            Ok(Status::Ok)
        }
        BackfillsAction::Status { id, limit, follow } => {
            let id = parse_id(&id)?;
            if follow {
                follow_until_finished(fs, id).await?;
            }
            let (record, outcomes) = fs.backfill_status(id, None, limit as usize).await?;
            if globals.json {
                let mut doc = record_json(&record);
                doc["outcomes"] = Value::Array(outcomes.iter().map(outcome_json).collect());
                print_json(&doc);
            } else {
                print_record(&record);
                let mut table = Table::new(["ASSET", "PARTITION", "OUTCOME", "ERROR"]);
                let mut shown: Vec<&PartitionRecord> = outcomes.iter().collect();
                shown.sort_by_key(|o| o.error.is_none());
                for o in shown {
                    table.row([
                        o.asset.clone(),
                        partition_text(&o.partition),
                        o.outcome.clone(),
                        o.error.as_deref().map(one_line).unwrap_or_default(),
                    ]);
                }
                if !table.is_empty() {
                    println!();
                    print!("{table}");
                }
            }
            Ok(Status::Ok)
        }
        BackfillsAction::Cancel { id } => {
            let record = fs.cancel_backfill(parse_id(&id)?).await?;
            if globals.json {
                print_json(&record_json(&record));
            } else {
                println!("backfill {} is {}", record.id, record.status);
            }
            Ok(Status::Ok)
        }
        BackfillsAction::Resume { id } => {
            let id = parse_id(&id)?;
            let started = std::time::Instant::now();
            let report = fs.resume_backfill(id).await?;
            let reports = [TimedReport {
                report,
                elapsed: started.elapsed(),
            }];
            print_backfill_summary(globals, &reports);
            Ok(status_of(&reports))
        }
    }
}

/// Follows backfill `id` (run by any process) on stderr until it ends; Ctrl-C stops following
/// (not the backfill).
async fn follow_until_finished(fs: &FlowStone, id: BackfillId) -> Result<(), CliError> {
    let (record, _) = fs.backfill_status(id, None, 1).await?;
    let progress =
        BackfillProgress::new(record.request.selection.clone(), Some(record.counts.total));
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
        }
        let (record, _) = fs.backfill_status(id, None, 1).await?;
        let c = record.counts;
        progress.set_counts(c.done(), c.total, c.failed + c.upstream_failed);
        if record.status.is_finished() {
            break;
        }
    }
    progress.finish();
    Ok(())
}

fn parse_id(input: &str) -> Result<BackfillId, CliError> {
    input.parse::<BackfillId>().map_err(|_| {
        CliError::usage(format!(
            "'{input}' is not a backfill id; `backfills list` shows them"
        ))
    })
}

fn print_record(r: &BackfillRecord) {
    println!("backfill   {}", r.id);
    println!("selection  {}", r.request.selection);
    println!("status     {}", r.status);
    println!(
        "partitions {} done of {}: {} succeeded, {} failed, {} skipped, {} cancelled, {} in \
         flight, {} upstream failed",
        r.counts.done(),
        r.counts.total,
        r.counts.succeeded,
        r.counts.failed,
        r.counts.skipped,
        r.counts.cancelled,
        r.counts.in_flight,
        r.counts.upstream_failed
    );
    if let Some(owner) = &r.owner {
        println!("running in {owner}");
    }
}

fn record_json(r: &BackfillRecord) -> Value {
    json!({
        "backfill_id": r.id.to_string(),
        "request": r.request,
        "status": r.status,
        "counts": r.counts,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "finished_at": r.finished_at,
        "owner": r.owner,
    })
}

fn outcome_json(o: &PartitionRecord) -> Value {
    json!({
        "asset": o.asset,
        "partition": partition_json(&o.partition),
        "outcome": o.outcome,
        "error": o.error,
    })
}
