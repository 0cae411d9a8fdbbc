//! `backfill`: one asset, or a selection of assets, over many partitions, with progress and a
//! summary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{ArgGroup, Args};
use flowstone::{Backfill, BackfillReport, CancellationToken, FlowStone, PartitionOutcome};
use serde_json::{Value, json};

use crate::input;
use crate::output::{Table, duration_text, one_line, partition_json, partition_text, print_json};
use crate::progress::BackfillProgress;
use crate::{CliError, GlobalOpts, Status};

/// Arguments of `backfill`.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("source").required(true).args(["from", "partitions", "all"])
))]
pub struct BackfillArgs {
    /// The asset (or give --select)
    #[arg(required_unless_present = "select", conflicts_with = "select")]
    pub asset: Option<String>,
    /// Several assets: names, name+ (with downstream), +name (with upstream), tag:key=value,
    /// comma-separated. The range and partitions are in the first named asset's form; the
    /// others' follow through the partition mappings
    #[arg(long, value_name = "SELECTION")]
    pub select: Option<String>,
    /// First partition of a range (inclusive), in the asset's form
    #[arg(long, requires = "to", value_name = "PARTITION")]
    pub from: Option<String>,
    /// Last partition of a range (inclusive)
    #[arg(long, requires = "from", value_name = "PARTITION")]
    pub to: Option<String>,
    /// These partitions, comma-separated
    #[arg(long, value_delimiter = ',', value_name = "P1,P2,...")]
    pub partitions: Vec<String>,
    /// Every partition of the asset's definition
    #[arg(long)]
    pub all: bool,
    /// How to run each partition: async (tasks in this process), sync, serial, queue (needs a
    /// running `worker`), auto (the queue when configured), or a registered executor
    #[arg(long, default_value = "async", value_name = "EXECUTOR")]
    pub executor: String,
    /// At most this many partitions in flight (default: the number of cores)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_concurrency: Option<u64>,
    /// Run partitions that are already materialized too
    #[arg(long, conflicts_with = "retry_failed")]
    pub force: bool,
    /// Run only the partitions whose latest materialization failed
    #[arg(long)]
    pub retry_failed: bool,
}

/// A backfill report and how long the backfill took.
#[derive(Debug, Clone)]
pub struct TimedReport {
    /// What the backfill did.
    pub report: BackfillReport,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `backfill`.
pub async fn run(
    fs: &FlowStone,
    globals: &GlobalOpts,
    args: BackfillArgs,
) -> Result<Status, CliError> {
    let selection = match (&args.asset, &args.select) {
        (Some(asset), _) => asset.clone(),
        (None, Some(selection)) => selection.clone(),
        (None, None) => return Err(CliError::usage("give an asset or --select SELECTION")),
    };
    // Ranges and partitions are written in the first selected asset's form.
    let parsed = flowstone::AssetSelection::parse(&selection)?;
    let anchor = parsed
        .anchor(&parsed.resolve(fs.registry())?)
        .ok_or_else(|| CliError::usage(format!("--select '{selection}' selects no asset")))?;
    let mut backfill = if args.all {
        Backfill::all()
    } else if let (Some(from), Some(to)) = (&args.from, &args.to) {
        let from = input::range_bound(fs, &anchor, "--from", from)?;
        let to = input::range_bound(fs, &anchor, "--to", to)?;
        if from > to {
            return Err(CliError::usage(format!(
                "--from {} is after --to {}",
                args.from.as_deref().unwrap_or_default(),
                args.to.as_deref().unwrap_or_default()
            )));
        }
        Backfill::range(from, to)
    } else {
        let partitions = args
            .partitions
            .iter()
            .map(|p| input::partition(fs, &anchor, Some(p)))
            .collect::<Result<Vec<_>, _>>()?;
        Backfill::partitions(partitions)
    }
    .select(&selection)
    .anchor(&anchor);
    let strategy = input::executor(fs, &args.executor)?;
    crate::queue::note_if_queued(fs, &strategy, globals.json);
    backfill = backfill
        .executor(strategy)
        .force(args.force)
        .retry_failed(args.retry_failed);
    if let Some(n) = args.max_concurrency {
        backfill = backfill.max_concurrency(usize::try_from(n).unwrap_or(usize::MAX));
    }
    let timed = backfill_with_progress(fs, &selection, backfill).await?;
    let reports = [timed];
    print_backfill_summary(globals, &reports);
    Ok(status_of(&reports))
}

/// Runs `backfill` (which names its assets with [`Backfill::select`]) with a progress display
/// on stderr labelled `label`; Ctrl-C cancels it (running partitions stop, the report counts
/// them as cancelled).
pub async fn backfill_with_progress(
    fs: &FlowStone,
    label: &str,
    backfill: Backfill,
) -> Result<TimedReport, CliError> {
    let progress = Arc::new(BackfillProgress::new(label, None));
    let cancel = CancellationToken::new();
    let on_ctrl_c = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: cancelling the backfill (Ctrl-C again to abort)");
                cancel.cancel();
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        })
    };
    let started = Instant::now();
    let callback = Arc::clone(&progress);
    let result = fs
        .run_backfill(
            backfill
                .on_progress(move |p| callback.update(p))
                .cancel_on(cancel),
        )
        .await;
    on_ctrl_c.abort();
    progress.finish();
    Ok(TimedReport {
        report: result?,
        elapsed: started.elapsed(),
    })
}

/// Exit status for backfills: work failed when any partition failed or was cancelled.
pub fn status_of(reports: &[TimedReport]) -> Status {
    if reports
        .iter()
        .any(|t| t.report.failed > 0 || t.report.cancelled > 0)
    {
        Status::WorkFailed
    } else {
        Status::Ok
    }
}

/// Prints the summary of one or more backfills: a table and the failures (or JSON).
pub fn print_backfill_summary(globals: &GlobalOpts, reports: &[TimedReport]) {
    if globals.json {
        let docs: Vec<Value> = reports.iter().map(backfill_json).collect();
        match docs.as_slice() {
            [one] => print_json(one),
            _ => print_json(&json!({ "backfills": docs })),
        }
        return;
    }
    let mut table = Table::new([
        "ASSET",
        "PARTITIONS",
        "SUCCEEDED",
        "FAILED",
        "SKIPPED",
        "CANCELLED",
        "IN FLIGHT",
        "UPSTREAM FAILED",
        "TIME",
    ]);
    for timed in reports {
        let r = &timed.report;
        for asset in &r.assets {
            let count = |name: &str| {
                r.of_asset(asset)
                    .filter(|o| o.outcome.name() == name)
                    .count()
                    .to_string()
            };
            table.row([
                asset.clone(),
                r.of_asset(asset).count().to_string(),
                count("succeeded"),
                count("failed"),
                count("skipped"),
                count("cancelled"),
                count("in_flight"),
                count("upstream_failed"),
                duration_text(timed.elapsed),
            ]);
        }
    }
    print!("{table}");
    for timed in reports {
        println!(
            "backfill {}: `backfills status {}` shows it again",
            timed.report.backfill_id, timed.report.backfill_id
        );
    }
    let mut failures = Table::new(["FAILED", "PARTITION", "ERROR"]);
    for timed in reports {
        for result in &timed.report.outcomes {
            if let PartitionOutcome::Failed(err) = &result.outcome {
                failures.row([
                    result.asset.clone(),
                    partition_text(&result.partition),
                    one_line(&err.to_string()),
                ]);
            }
        }
    }
    if !failures.is_empty() {
        println!();
        print!("{failures}");
    }
}

/// One backfill as JSON: counts, duration and each partition's outcome.
pub fn backfill_json(timed: &TimedReport) -> Value {
    let r = &timed.report;
    let outcomes: Vec<Value> = r
        .outcomes
        .iter()
        .map(|result| {
            let error = result
                .outcome
                .error()
                .map(|err| json!({ "kind": err.kind(), "message": err.to_string() }));
            json!({
                "asset": result.asset,
                "partition": partition_json(&result.partition),
                "outcome": result.outcome.name(),
                "error": error,
            })
        })
        .collect();
    json!({
        "backfill_id": r.backfill_id.to_string(),
        "asset": r.asset,
        "assets": r.assets,
        "total": r.total,
        "succeeded": r.succeeded,
        "failed": r.failed,
        "skipped": r.skipped,
        "cancelled": r.cancelled,
        "in_flight": r.in_flight,
        "upstream_failed": r.upstream_failed,
        "duration_ms": timed.elapsed.as_millis() as u64,
        "outcomes": outcomes,
    })
}
