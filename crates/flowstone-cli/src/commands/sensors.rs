//! `sensors [list|on NAME|off NAME|ticks NAME]`: the declared sensors, their switches (shared
//! by every process on the database) and their recorded ticks.

use clap::Subcommand;
use flowstone::FlowStone;
use flowstone::automation::Origin;
use serde_json::json;

use super::automation::{TicksArgs, switch, ticks};
use crate::output::{Table, print_json};
use crate::{CliError, GlobalOpts, Status};

/// What to show of the sensors.
#[derive(Debug, Subcommand)]
pub enum SensorsAction {
    /// The declared sensors and whether each is on
    List,
    /// Turn a sensor on (for every process on this database)
    On {
        /// The sensor's name
        name: String,
    },
    /// Turn a sensor off (for every process on this database)
    Off {
        /// The sensor's name
        name: String,
    },
    /// The recorded ticks of one sensor, newest first
    Ticks(TicksArgs),
}

/// Runs `sensors ...`.
pub async fn run(
    fs: &FlowStone,
    globals: &GlobalOpts,
    action: Option<SensorsAction>,
) -> Result<Status, CliError> {
    match action.unwrap_or(SensorsAction::List) {
        SensorsAction::On { name } => switch(fs, globals, Origin::Sensor, &name, true).await,
        SensorsAction::Off { name } => switch(fs, globals, Origin::Sensor, &name, false).await,
        SensorsAction::Ticks(args) => ticks(fs, globals, Origin::Sensor, args).await,
        SensorsAction::List => {
            let sensors = fs.sensors();
            let mut rows = Vec::with_capacity(sensors.len());
            for s in sensors {
                rows.push((s, fs.sensor_enabled(s.name()).await?));
            }
            if globals.json {
                let list: Vec<_> = rows
                    .iter()
                    .map(|(s, on)| {
                        json!({
                            "name": s.name(),
                            "interval_ms": s.interval_of().as_millis() as u64,
                            "default_on": s.is_default_on(),
                            "on": on,
                        })
                    })
                    .collect();
                print_json(&json!({ "sensors": list }));
            } else if rows.is_empty() {
                println!("no sensor is declared");
            } else {
                let mut table = Table::new(["SENSOR", "STATE", "INTERVAL"]);
                for (s, on) in &rows {
                    table.row([
                        s.name().to_owned(),
                        if *on { "on" } else { "off" }.to_owned(),
                        format!("{:?}", s.interval_of()),
                    ]);
                }
                print!("{table}");
            }
            Ok(Status::Ok)
        }
    }
}
