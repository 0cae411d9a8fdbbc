//! `assets`: the asset list, or the graph as text or Mermaid.

use clap::{Args, ValueEnum};
use flowstone::FlowStone;
use serde_json::json;

use crate::output::{Table, print_json};
use crate::{CliError, GlobalOpts, Status};

/// Arguments of `assets`.
#[derive(Debug, Args)]
pub struct AssetsArgs {
    /// Draw the dependency graph instead of the table
    #[arg(long, value_name = "FORMAT")]
    pub graph: Option<GraphFormat>,
}

/// How to draw the graph.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    /// One line per asset: `name <- dependencies`
    Text,
    /// A Mermaid flowchart
    Mermaid,
}

/// Runs `assets`.
pub fn run(fs: &FlowStone, globals: &GlobalOpts, args: AssetsArgs) -> Result<Status, CliError> {
    let registry = fs.registry();
    if let Some(format) = args.graph {
        let graph = match format {
            GraphFormat::Text => registry.to_text(),
            GraphFormat::Mermaid => registry.to_mermaid(),
        };
        if globals.json {
            print_json(&json!({ "graph": graph }));
        } else {
            print!("{graph}");
        }
        return Ok(Status::Ok);
    }
    if globals.json {
        let assets: Vec<_> = registry
            .assets()
            .map(|a| {
                json!({
                    "name": a.name(),
                    "depends_on": a.dependencies(),
                    "mappings": a
                        .dependencies()
                        .iter()
                        .map(|d| (d.clone(), json!(a.mapping(d).map(|m| m.describe()))))
                        .collect::<serde_json::Map<_, _>>(),
                    "partitions": a.partitions().map(|p| p.expected_form()),
                    "description": a.description_text(),
                    "max_attempts": a.retry_policy().max_attempts,
                    "executor": a.default_executor(),
                })
            })
            .collect();
        print_json(&json!({ "assets": assets }));
        return Ok(Status::Ok);
    }
    let mut table = Table::new([
        "ASSET",
        "DEPENDS ON",
        "ATTEMPTS",
        "PARTITIONS",
        "DESCRIPTION",
    ]);
    for asset in registry.assets() {
        let deps = if asset.dependencies().is_empty() {
            String::from("-")
        } else {
            let labels: Vec<String> = asset
                .dependencies()
                .iter()
                .map(|d| asset.dependency_label(d))
                .collect();
            labels.join(", ")
        };
        table.row([
            asset.name().to_owned(),
            deps,
            asset.retry_policy().max_attempts.to_string(),
            asset
                .partitions()
                .map_or_else(|| String::from("unpartitioned"), |p| p.expected_form()),
            asset.description_text().unwrap_or_default().to_owned(),
        ]);
    }
    print!("{table}");
    Ok(Status::Ok)
}
