//! `lineage`: what a materialization consumed, or what consumed it.

use clap::Args;
use flowstone::{Direction, FlowStone};
use serde_json::json;

use crate::input;
use crate::output::{Table, partition_json, partition_text, print_json, short_id};
use crate::{CliError, GlobalOpts, Status};

/// Arguments of `lineage`.
#[derive(Debug, Args)]
pub struct LineageArgs {
    /// The asset
    pub asset: String,
    /// The partition, in the asset's form
    #[arg(long, short)]
    pub partition: Option<String>,
    /// What the materialization consumed (the default)
    #[arg(long, conflicts_with = "downstream")]
    pub upstream: bool,
    /// What consumed the materialization
    #[arg(long)]
    pub downstream: bool,
    /// How many steps to walk
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub depth: u32,
}

/// Runs `lineage`.
pub async fn run(
    fs: &FlowStone,
    globals: &GlobalOpts,
    args: LineageArgs,
) -> Result<Status, CliError> {
    let partition = input::partition(fs, &args.asset, args.partition.as_deref())?;
    let direction = if args.downstream {
        Direction::Downstream
    } else {
        Direction::Upstream
    };
    let entries = fs
        .lineage(&args.asset, partition.clone(), direction, args.depth)
        .await?;
    let way = match direction {
        Direction::Upstream => "upstream",
        Direction::Downstream => "downstream",
    };
    if globals.json {
        let entries: Vec<_> = entries
            .iter()
            .map(|e| {
                json!({
                    "depth": e.depth,
                    "asset": e.key.asset,
                    "partition": partition_json(&e.key.partition),
                    "run_id": e.key.run_id.to_string(),
                })
            })
            .collect();
        print_json(&json!({
            "asset": args.asset,
            "partition": partition_json(&partition),
            "direction": way,
            "lineage": entries,
        }));
    } else if entries.is_empty() {
        println!(
            "no {way} lineage recorded for {} {}",
            args.asset,
            partition_text(&partition)
        );
    } else {
        let mut table = Table::new(["DEPTH", "ASSET", "PARTITION", "RUN"]);
        for e in &entries {
            table.row([
                e.depth.to_string(),
                e.key.asset.clone(),
                partition_text(&e.key.partition),
                short_id(&e.key.run_id.to_string()),
            ]);
        }
        print!("{table}");
    }
    Ok(Status::Ok)
}
