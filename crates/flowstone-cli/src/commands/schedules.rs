//! `schedules [list|on NAME|off NAME|ticks NAME|preview NAME --next N]`: the declared
//! schedules, their switches (shared by every process on the database), their recorded
//! ticks, and when they fire next.

use clap::Subcommand;
use flowstone::FlowStone;
use serde_json::json;

use super::automation::{switch, ticks};
use crate::output::{Table, partition_json, partition_text, print_json};
use crate::{CliError, GlobalOpts, Status};
use flowstone::automation::Origin;

/// What to show of the schedules.
#[derive(Debug, Subcommand)]
pub enum SchedulesAction {
    /// The declared schedules and whether each is on
    List,
    /// Turn a schedule on (for every process on this database)
    On {
        /// The schedule's name
        name: String,
    },
    /// Turn a schedule off (for every process on this database)
    Off {
        /// The schedule's name
        name: String,
    },
    /// The recorded ticks of one schedule, newest first
    Ticks(super::automation::TicksArgs),
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
pub async fn run(
    fs: &FlowStone,
    globals: &GlobalOpts,
    action: Option<SchedulesAction>,
) -> Result<Status, CliError> {
    match action.unwrap_or(SchedulesAction::List) {
        SchedulesAction::On { name } => switch(fs, globals, Origin::Schedule, &name, true).await,
        SchedulesAction::Off { name } => switch(fs, globals, Origin::Schedule, &name, false).await,
        SchedulesAction::Ticks(args) => ticks(fs, globals, Origin::Schedule, args).await,
        SchedulesAction::List => {
            let schedules = fs.schedules();
            let mut on = Vec::with_capacity(schedules.len());
            for s in schedules {
                on.push(fs.schedule_enabled(s.name()).await?);
            }
            if globals.json {
                let list: Vec<_> = schedules
                    .iter()
                    .zip(&on)
                    .map(|(s, on)| {
                        json!({
                            "name": s.name(),
                            "cron": s.expression(),
                            "timezone": s.zone_name(),
                            "target": s.selection(),
                            "default_on": s.is_default_on(),
                            "on": on,
                        })
                    })
                    .collect();
                print_json(&json!({ "schedules": list }));
            } else if schedules.is_empty() {
                println!("no schedule is declared");
            } else {
                let mut table = Table::new(["SCHEDULE", "STATE", "CRON", "TIME ZONE", "TARGET"]);
                for (s, on) in schedules.iter().zip(&on) {
                    table.row([
                        s.name().to_owned(),
                        if *on { "on" } else { "off" }.to_owned(),
                        s.expression().to_owned(),
                        s.zone_name().to_owned(),
                        s.selection().to_owned(),
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
