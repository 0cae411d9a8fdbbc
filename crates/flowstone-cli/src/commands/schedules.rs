//! `schedules [list|preview NAME --next N]`: the declared schedules and when they fire.

use clap::Subcommand;
use flowstone::FlowStone;
use serde_json::json;

use crate::output::{Table, partition_json, partition_text, print_json};
use crate::{CliError, GlobalOpts, Status};

/// What to show of the schedules.
#[derive(Debug, Subcommand)]
pub enum SchedulesAction {
    /// The declared schedules
    List,
    /// The next ticks of one schedule and the partitions they target, without launching
    Preview {
        /// The schedule's name
        name: String,
        /// How many ticks
        #[arg(long, default_value_t = 5, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=1000))]
        next: u32,
    },
}

/// Runs `schedules ...`.
pub fn run(
    fs: &FlowStone,
    globals: &GlobalOpts,
    action: Option<SchedulesAction>,
) -> Result<Status, CliError> {
    match action.unwrap_or(SchedulesAction::List) {
        SchedulesAction::List => {
            let schedules = fs.schedules();
            if globals.json {
                let list: Vec<_> = schedules
                    .iter()
                    .map(|s| {
                        json!({
                            "name": s.name(),
                            "cron": s.expression(),
                            "timezone": s.zone_name(),
                            "target": s.selection(),
                            "default_on": s.is_default_on(),
                        })
                    })
                    .collect();
                print_json(&json!({ "schedules": list }));
            } else if schedules.is_empty() {
                println!("no schedule is declared");
            } else {
                let mut table = Table::new(["SCHEDULE", "CRON", "TIME ZONE", "TARGET", "DEFAULT"]);
                for s in schedules {
                    table.row([
                        s.name().to_owned(),
                        s.expression().to_owned(),
                        s.zone_name().to_owned(),
                        s.selection().to_owned(),
                        if s.is_default_on() { "on" } else { "off" }.to_owned(),
                    ]);
                }
                print!("{table}");
            }
            Ok(Status::Ok)
        }
        SchedulesAction::Preview { name, next } => {
            let ticks = fs.preview_schedule(&name, chrono::Utc::now(), next as usize)?;
            if globals.json {
                let list: Vec<_> = ticks
                    .iter()
                    .map(|t| {
                        json!({
                            "local": t.tick.local.to_string(),
                            "at": t.tick.at,
                            "partition": partition_json(&t.partition),
                        })
                    })
                    .collect();
                print_json(&json!({ "schedule": name, "ticks": list }));
            } else {
                let mut table = Table::new(["LOCAL TIME", "FIRES AT (UTC)", "PARTITION"]);
                for t in &ticks {
                    table.row([
                        t.tick.local.format("%Y-%m-%d %H:%M:%S").to_string(),
                        t.tick.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        partition_text(&t.partition),
                    ]);
                }
                print!("{table}");
            }
            Ok(Status::Ok)
        }
    }
}
