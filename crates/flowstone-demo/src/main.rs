//! FlowStone's demo: a real pipeline on Seattle's daily weather, 2012-2015.
//!
//! ```text
//! cargo run --release -p flowstone-demo            # the whole pipeline, then where the reports are
//! cargo run --release -p flowstone-demo -- assets --graph text
//! cargo run --release -p flowstone-demo -- materialize monthly_stats --partition 2013-07 --with-upstream
//! ```
//!
//! Every FlowStone subcommand (`assets`, `materialize`, `backfill`, `materializations`,
//! `lineage`, ...) comes from `flowstone-cli`; this binary adds `demo`, which backfills the four
//! assets over every partition and says where the yearly reports are. It is also what runs
//! when no subcommand is given.

mod pipeline;
mod report;
mod weather;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use flowstone::store::{MaterializationQuery, MaterializationStatus};
use flowstone::{Backfill, FlowStone};
use flowstone_cli::output::Table;
use flowstone_cli::{CliError, GlobalOpts, Status, TimedReport};
use serde_json::json;

use crate::pipeline::{FIRST_YEAR, LAST_YEAR, PIPELINE, pipeline};
use crate::report::Archive;

/// The demo's command line: FlowStone's subcommands plus `demo`.
#[derive(Debug, Parser)]
#[command(
    name = "flowstone-demo",
    about = "FlowStone's demo pipeline on Seattle's daily weather 2012-2015. Without a \
             subcommand, runs `demo`."
)]
struct DemoCli {
    #[command(flatten)]
    globals: GlobalOpts,
    #[command(subcommand)]
    command: Option<DemoCommand>,
}

#[derive(Debug, Subcommand)]
enum DemoCommand {
    /// Run the whole pipeline (every asset, every partition) and print where the reports are
    Demo(DemoArgs),
    #[command(flatten)]
    Cli(flowstone_cli::Command),
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// How to run the partitions: sync, async, serial, queue, auto
    #[arg(long, default_value = "async", value_name = "EXECUTOR")]
    executor: String,
    /// Re-run partitions that are already materialized
    #[arg(long)]
    force: bool,
}

impl Default for DemoArgs {
    fn default() -> Self {
        DemoArgs {
            executor: String::from("async"),
            force: false,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match DemoCli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return flowstone_cli::clap_exit(&err),
    };
    let archive = Archive::new(cli.globals.data_dir.join("reports"));
    let fs = match flowstone_cli::prepare(pipeline(&archive), &cli.globals).await {
        Ok(fs) => fs,
        Err(err) => return err.report(&cli.globals),
    };
    match cli
        .command
        .unwrap_or_else(|| DemoCommand::Demo(DemoArgs::default()))
    {
        DemoCommand::Demo(args) => match demo(&fs, &cli.globals, &archive, args).await {
            Ok(status) => status.exit_code(),
            Err(err) => err.report(&cli.globals),
        },
        DemoCommand::Cli(command) => flowstone_cli::execute(&fs, &cli.globals, command).await,
    }
}

/// Backfills every asset over all its partitions, in dependency order, then reports.
async fn demo(
    fs: &FlowStone,
    globals: &GlobalOpts,
    archive: &Archive,
    args: DemoArgs,
) -> Result<Status, CliError> {
    let strategy = flowstone_cli::input::executor(fs, &args.executor)?;
    // The whole pipeline in one backfill: each month's partitions run as soon as what they
    // read is there, and a year's report as soon as its twelve months are.
    let backfill = Backfill::assets(PIPELINE)
        .executor(strategy)
        .force(args.force);
    let backfills: Vec<TimedReport> =
        vec![flowstone_cli::backfill_with_progress(fs, PIPELINE, backfill).await?];
    let status = flowstone_cli::status_of(&backfills);

    let reports: Vec<(String, std::path::PathBuf)> = (FIRST_YEAR..=LAST_YEAR)
        .map(|year| (year.to_string(), archive.report_path(year)))
        .filter(|(_, path)| path.exists())
        .map(|(year, path)| (year, std::path::absolute(&path).unwrap_or(path)))
        .collect();
    let retried = fs
        .materializations(
            &MaterializationQuery::asset("raw_weather").status(MaterializationStatus::Success),
        )
        .await?
        .iter()
        .filter(|m| m.attempt > 1)
        .map(|m| m.partition.encode())
        .collect::<std::collections::BTreeSet<_>>()
        .len();

    if globals.json {
        flowstone_cli::output::print_json(&json!({
            "backfills": backfills.iter().map(flowstone_cli::backfill_json).collect::<Vec<_>>(),
            "reports": reports
                .iter()
                .map(|(year, path)| json!({ "year": year, "path": path }))
                .collect::<Vec<_>>(),
            "retried_partitions": { "raw_weather": retried },
        }));
        return Ok(status);
    }
    flowstone_cli::print_backfill_summary(globals, &backfills);
    if retried > 0 {
        println!(
            "\nraw_weather needed a retry in {retried} partitions: its source fails every first \
             attempt, and the retry policy (3 attempts, 50 ms backoff) recovers."
        );
    }
    if reports.is_empty() {
        println!(
            "\nno report is under {}: if the partitions were skipped because the database \
             records them as done (with outputs in another --data-dir), run `demo --force`",
            globals.data_dir.display()
        );
    } else {
        println!("\nReports:");
        let mut table = Table::new(["YEAR", "FILE"]);
        for (year, path) in &reports {
            table.row([year.clone(), path.display().to_string()]);
        }
        print!("{table}");
    }
    println!(
        "\nRecords and lineage are in {}; outputs are files under {}. Look around:\n  \
         cargo run --release -p flowstone-demo -- materializations raw_weather --partition 2013-07\n  \
         cargo run --release -p flowstone-demo -- lineage yearly_report --partition 2013 --upstream",
        flowstone_cli::redact_url(&globals.database),
        globals.data_dir.display()
    );
    Ok(status)
}
