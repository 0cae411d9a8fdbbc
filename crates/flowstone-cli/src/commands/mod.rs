//! One module per subcommand: its clap arguments and what it does.

pub mod assets;
pub mod automation;
pub mod backfill;
pub mod backfills;
pub mod jobs;
pub mod lineage;
pub mod materializations;
pub mod materialize;
pub mod schedule;
pub mod schedules;
pub mod sensors;
#[cfg(feature = "ui")]
pub mod ui;
pub mod worker;
