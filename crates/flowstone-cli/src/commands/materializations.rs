//! `materializations`: the records of an asset, newest first.

use clap::Args;
use flowstone::FlowStone;
use flowstone::store::{MaterializationQuery, MaterializationStatus};
use serde_json::json;

use crate::input;
use crate::output::{materialization_json, materializations_table, print_json};
use crate::{CliError, GlobalOpts, Status};

/// Arguments of `materializations`.
#[derive(Debug, Args)]
pub struct MaterializationsArgs {
    /// The asset
    pub asset: String,
    /// Only this partition, in the asset's form
    #[arg(long, short)]
    pub partition: Option<String>,
    /// Only records with this status: running, success, failed, skipped, cancelled
    #[arg(long, value_name = "STATUS", value_parser = parse_status)]
    pub status: Option<MaterializationStatus>,
    /// At most this many records
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub limit: usize,
}

fn parse_status(input: &str) -> Result<MaterializationStatus, String> {
    MaterializationStatus::parse(input.trim()).ok_or_else(|| {
        format!("'{input}': expected one of running, success, failed, skipped, cancelled")
    })
}

/// Runs `materializations`.
pub async fn run(
    fs: &FlowStone,
    globals: &GlobalOpts,
    args: MaterializationsArgs,
) -> Result<Status, CliError> {
    let mut query = MaterializationQuery::asset(&args.asset).limit(args.limit);
    if args.partition.is_some() {
        query = query.partition(input::partition(
            fs,
            &args.asset,
            args.partition.as_deref(),
        )?);
    }
    if let Some(status) = args.status {
        query = query.status(status);
    }
    let records = fs.materializations(&query).await?;
    if globals.json {
        print_json(&json!({
            "asset": args.asset,
            "materializations": records.iter().map(materialization_json).collect::<Vec<_>>(),
        }));
    } else if records.is_empty() {
        println!("no materializations of '{}' recorded", args.asset);
    } else {
        print!("{}", materializations_table(&records, false));
    }
    Ok(Status::Ok)
}
