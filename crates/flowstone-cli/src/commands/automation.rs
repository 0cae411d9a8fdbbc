//! `automation [status|ticks]`: who leads automation and how each schedule, sensor and asset
//! condition stands; and the parts `schedules` and `sensors` share (switches, tick tables).

use clap::{Args, Subcommand};
use flowstone::FlowStone;
use flowstone::automation::{Origin, TickQuery, TickRecord};
use serde_json::json;

use crate::output::{Table, print_json};
use crate::{CliError, GlobalOpts, Status};

/// What to show of automation.
#[derive(Debug, Subcommand)]
pub enum AutomationAction {
    /// The leader and every schedule, sensor and condition with its state and latest tick
    Status,
    /// The latest ticks of everything, newest first
    Ticks {
        /// How many
        #[arg(long, default_value_t = 20, value_name = "N")]
        limit: usize,
    },
}

/// Arguments of `schedules ticks` and `sensors ticks`.
#[derive(Debug, Args)]
pub struct TicksArgs {
    /// The name
    pub name: String,
    /// How many
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: usize,
}

/// Runs `automation ...`.
pub async fn run(
    fs: &FlowStone,
    globals: &GlobalOpts,
    action: Option<AutomationAction>,
) -> Result<Status, CliError> {
    match action.unwrap_or(AutomationAction::Status) {
        AutomationAction::Status => {
            let status = fs.automation_status().await?;
            if globals.json {
                print_json(&serde_json::to_value(&status).map_err(flowstone::Error::from)?);
                return Ok(Status::Ok);
            }
            match (&status.leader, status.lease_expires_at) {
                (Some(leader), Some(until)) => {
                    println!(
                        "leader: {leader} (lease until {})",
                        until.format("%H:%M:%S")
                    )
                }
                _ => println!("leader: none (start a worker with --automation)"),
            }
            if status.definitions.is_empty() {
                println!("no schedule, sensor or automation condition is declared");
                return Ok(Status::Ok);
            }
            let mut table = Table::new(["KIND", "NAME", "STATE", "WHAT", "LAST TICK"]);
            for d in &status.definitions {
                table.row([
                    d.origin.to_string(),
                    d.name.clone(),
                    if d.on { "on" } else { "off" }.to_owned(),
                    d.describe.clone(),
                    d.last_tick.as_ref().map_or_else(String::new, tick_summary),
                ]);
            }
            print!("{table}");
            Ok(Status::Ok)
        }
        AutomationAction::Ticks { limit } => {
            let ticks = fs.ticks(&TickQuery::default().limit(limit)).await?;
            print_ticks(globals, &ticks);
            Ok(Status::Ok)
        }
    }
}

/// `schedules ticks NAME` and `sensors ticks NAME`.
pub async fn ticks(
    fs: &FlowStone,
    globals: &GlobalOpts,
    origin: Origin,
    args: TicksArgs,
) -> Result<Status, CliError> {
    let ticks = fs
        .ticks(&TickQuery::of(origin, args.name).limit(args.limit))
        .await?;
    print_ticks(globals, &ticks);
    Ok(Status::Ok)
}

/// `schedules on|off NAME` and `sensors on|off NAME`.
pub async fn switch(
    fs: &FlowStone,
    globals: &GlobalOpts,
    origin: Origin,
    name: &str,
    on: bool,
) -> Result<Status, CliError> {
    match origin {
        Origin::Schedule => fs.set_schedule_enabled(name, on).await?,
        Origin::Sensor => fs.set_sensor_enabled(name, on).await?,
        Origin::Condition => fs.set_condition_enabled(name, on).await?,
    }
    let state = if on { "on" } else { "off" };
    if globals.json {
        print_json(&json!({ origin.as_str(): name, "on": on }));
    } else {
        println!("{origin} {name} is {state}");
    }
    Ok(Status::Ok)
}

fn tick_summary(t: &TickRecord) -> String {
    format!(
        "{} {}{}",
        t.at.format("%Y-%m-%d %H:%M:%S"),
        t.status,
        t.detail
            .as_deref()
            .map_or_else(String::new, |d| format!(": {d}"))
    )
}

fn print_ticks(globals: &GlobalOpts, ticks: &[TickRecord]) {
    if globals.json {
        print_json(&json!({ "ticks": ticks }));
        return;
    }
    if ticks.is_empty() {
        println!("no tick recorded");
        return;
    }
    let mut table = Table::new([
        "AT (UTC)",
        "KIND",
        "NAME",
        "STATUS",
        "LAUNCHED",
        "DETAIL",
        "BACKFILLS",
    ]);
    for t in ticks {
        table.row([
            t.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            t.origin.to_string(),
            t.name.clone(),
            t.status.to_string(),
            t.launched.to_string(),
            t.detail.clone().unwrap_or_default(),
            t.backfills
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        ]);
    }
    print!("{table}");
}
