//! `materialize`: one asset, one partition, and wait for it.

use clap::Args;
use flowstone::store::MaterializationQuery;
use flowstone::{FlowStone, Run, RunId, Step, Strategy};
use serde_json::json;

use crate::input;
use crate::output::{materialization_json, materializations_table, partition_text, print_json};
use crate::{CliError, GlobalOpts, Status};

/// Arguments of `materialize`.
#[derive(Debug, Args)]
pub struct MaterializeArgs {
    /// The asset
    pub asset: String,
    /// The partition, in the asset's form (e.g. 2013-07 for a monthly asset)
    #[arg(long, short)]
    pub partition: Option<String>,
    /// How to run it: sync (here, now), async, serial, queue (needs a running `worker`), auto
    /// (the queue when configured), or a registered executor
    #[arg(long, default_value = "sync", value_name = "EXECUTOR")]
    pub executor: String,
    /// Materialize missing upstream assets first
    #[arg(long)]
    pub with_upstream: bool,
}

/// Runs `materialize`.
pub async fn run(
    fs: &FlowStone,
    globals: &GlobalOpts,
    args: MaterializeArgs,
) -> Result<Status, CliError> {
    let partition = input::partition(fs, &args.asset, args.partition.as_deref())?;
    let strategy = input::executor(fs, &args.executor)?;
    crate::queue::note_if_queued(fs, &strategy, globals.json);
    let run_id = RunId::new();
    let mut run = Run::partition(partition.clone())
        .run_id(run_id)
        .with_upstream(args.with_upstream);
    if matches!(strategy, Strategy::Serial) && !globals.json {
        run = run.on_step(print_step);
    }
    let run = run.executor(strategy);
    let result = fs.materialize(&args.asset, run).await;

    // Every materialization of this run: upstream ones and the target.
    let mut records = fs
        .materializations(&MaterializationQuery::default().run_id(run_id))
        .await?;
    records.reverse();
    match result {
        Ok(_) => {
            if globals.json {
                print_json(&json!({
                    "asset": args.asset,
                    "partition": crate::output::partition_json(&partition),
                    "status": "success",
                    "run_id": run_id.to_string(),
                    "materializations": records.iter().map(materialization_json).collect::<Vec<_>>(),
                }));
            } else {
                println!(
                    "materialized {} {} (run {run_id})",
                    args.asset,
                    partition_text(&partition)
                );
                if !records.is_empty() {
                    print!("{}", materializations_table(&records, true));
                }
            }
            Ok(Status::Ok)
        }
        Err(err) => {
            if !globals.json && !records.is_empty() {
                print!("{}", materializations_table(&records, true));
            }
            Err(err.into())
        }
    }
}

fn print_step(step: &Step<'_>) {
    match step {
        Step::Before(job) => eprintln!("-> {} {}", job.asset, partition_text(&job.partition)),
        Step::After(job, Ok(_)) => {
            eprintln!("ok {} {}", job.asset, partition_text(&job.partition))
        }
        Step::After(job, Err(err)) => {
            eprintln!("!! {} {}: {err}", job.asset, partition_text(&job.partition))
        }
    }
}
