//! A complete command line for any binary that declares FlowStone assets.
//!
//! ```no_run
//! use flowstone::{Asset, FlowStone};
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     let builder = FlowStone::builder().asset(
//!         Asset::new("numbers").execute(|_ctx| async { Ok::<_, flowstone::Error>(vec![1, 2, 3]) }),
//!     );
//!     flowstone_cli::run(builder).await
//! }
//! ```
//!
//! [`run`] takes the [`Builder`] rather than a built [`FlowStone`] because the global options
//! (`--database`, `--data-dir`) configure storage before the graph is built. Records, lineage
//! and the queue live in the database (`sqlite://flowstone.db` in the current folder unless
//! `--database` or `FLOWSTONE_DATABASE_URL` says otherwise); outputs are JSON files under
//! `--data-dir`. Binaries that add
//! their own subcommands compose the pieces instead: flatten [`GlobalOpts`] and [`Command`] into
//! their own clap parser, call [`prepare`] to build, and [`execute`] to run a command.
//!
//! Exit status: 0 when everything worked, 1 when some work failed (a materialization, a
//! partition of a backfill), 2 for a usage error (unknown asset, bad partition, bad option,
//! bad database URL).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod commands;
mod error;
pub mod input;
pub mod output;
pub mod progress;
mod queue;
mod storage;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use flowstone::FlowStone;
use flowstone::api::Builder;

pub use commands::backfill::{
    TimedReport, backfill_json, backfill_with_progress, print_backfill_summary, status_of,
};
pub use error::{CliError, Status};
pub use flowstone_queue::redact_url;
pub use storage::{DEFAULT_DATABASE_URL, configure_storage};

/// The command line: global options and one subcommand.
#[derive(Debug, Parser)]
#[command(
    about = "Materialize, backfill, schedule and inspect FlowStone assets",
    long_about = None
)]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub globals: GlobalOpts,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes (before or after the subcommand's name).
#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// Database for materialization records, lineage and the queue: sqlite://PATH or
    /// postgres://USER:PASSWORD@HOST/DB
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "FLOWSTONE_DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database: String,

    /// Folder of the filesystem IO manager (asset outputs as JSON files)
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "FLOWSTONE_DATA_DIR",
        hide_env_values = true,
        default_value = "data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,

    /// Log filter for stderr: error, warn, info, debug, trace, or a tracing filter like
    /// `flowstone=debug`
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "FLOWSTONE_LOG",
        hide_env_values = true,
        default_value = "warn",
        value_name = "FILTER"
    )]
    pub log_level: String,

    /// Print results as JSON on stdout (one document per command), for scripts
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the assets, or draw the asset graph as text or Mermaid
    Assets(commands::assets::AssetsArgs),
    /// Materialize one asset for one partition and wait for it
    Materialize(commands::materialize::MaterializeArgs),
    /// Materialize an asset (or a selection) over many partitions, with progress and a summary
    Backfill(commands::backfill::BackfillArgs),
    /// Stored backfills of any process: list, status ID, cancel ID, resume ID
    Backfills {
        /// What to do (default: list).
        #[command(subcommand)]
        action: Option<commands::backfills::BackfillsAction>,
    },
    /// Schedule a materialization without waiting (at a time, on a queue, with a priority)
    Schedule(commands::schedule::ScheduleArgs),
    /// The declared schedules: list, on NAME, off NAME, ticks NAME, preview NAME --next N
    Schedules {
        /// What to show (default: list).
        #[command(subcommand)]
        action: Option<commands::schedules::SchedulesAction>,
    },
    /// The declared sensors: list, on NAME, off NAME, ticks NAME
    Sensors {
        /// What to show (default: list).
        #[command(subcommand)]
        action: Option<commands::sensors::SensorsAction>,
    },
    /// Automation: status (the leader, every schedule, sensor and condition), ticks
    Automation {
        /// What to show (default: status).
        #[command(subcommand)]
        action: Option<commands::automation::AutomationAction>,
    },
    /// List the queue's jobs
    Jobs(commands::jobs::JobsArgs),
    /// Show or cancel one job
    Job {
        /// What to do with the job.
        #[command(subcommand)]
        action: commands::jobs::JobAction,
    },
    /// Run queued jobs until SIGINT or SIGTERM, then shut down gracefully
    Worker(commands::worker::WorkerArgs),
    /// List the materializations of an asset, newest first
    Materializations(commands::materializations::MaterializationsArgs),
    /// Show what a materialization consumed (upstream) or what consumed it (downstream)
    Lineage(commands::lineage::LineageArgs),
    /// Serve the web dashboard and /metrics (default http://127.0.0.1:3000/)
    #[cfg(feature = "ui")]
    Ui(commands::ui::UiArgs),
}

/// Parses the process's arguments, builds `builder` with the global options, runs the
/// subcommand, and returns the exit status.
pub async fn run(builder: Builder) -> ExitCode {
    run_with_args(builder, std::env::args_os()).await
}

/// [`run`] with explicit arguments (the first one is the program name).
pub async fn run_with_args<I, T>(builder: Builder, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => return clap_exit(&err),
    };
    let fs = match prepare(builder, &cli.globals).await {
        Ok(fs) => fs,
        Err(err) => return err.report(&cli.globals),
    };
    execute(&fs, &cli.globals, cli.command).await
}

/// Prints a clap error (or help) and returns clap's exit status (2 for usage errors).
pub fn clap_exit(err: &clap::Error) -> ExitCode {
    let _ = err.print();
    ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2))
}

/// Sets up logging, configures storage from the global options, connects to the database
/// (creating or upgrading its tables) and builds the graph.
pub async fn prepare(builder: Builder, globals: &GlobalOpts) -> Result<FlowStone, CliError> {
    init_logging(&globals.log_level)?;
    let builder = configure_storage(builder, globals)?;
    Ok(builder.connect().await?)
}

/// Runs one subcommand on a built FlowStone and returns the exit status; errors are printed.
pub async fn execute(fs: &FlowStone, globals: &GlobalOpts, command: Command) -> ExitCode {
    match dispatch(fs, globals, command).await {
        Ok(status) => status.exit_code(),
        Err(err) => err.report(globals),
    }
}

async fn dispatch(
    fs: &FlowStone,
    globals: &GlobalOpts,
    command: Command,
) -> Result<Status, CliError> {
    match command {
        Command::Assets(args) => commands::assets::run(fs, globals, args),
        Command::Materialize(args) => commands::materialize::run(fs, globals, args).await,
        Command::Backfill(args) => commands::backfill::run(fs, globals, args).await,
        Command::Backfills { action } => commands::backfills::run(fs, globals, action).await,
        Command::Schedule(args) => commands::schedule::run(fs, globals, args).await,
        Command::Schedules { action } => commands::schedules::run(fs, globals, action).await,
        Command::Sensors { action } => commands::sensors::run(fs, globals, action).await,
        Command::Automation { action } => commands::automation::run(fs, globals, action).await,
        Command::Jobs(args) => commands::jobs::list(fs, globals, args).await,
        Command::Job { action } => commands::jobs::act(fs, globals, action).await,
        Command::Worker(args) => commands::worker::run(fs, globals, args).await,
        Command::Materializations(args) => commands::materializations::run(fs, globals, args).await,
        Command::Lineage(args) => commands::lineage::run(fs, globals, args).await,
        #[cfg(feature = "ui")]
        Command::Ui(args) => commands::ui::run(fs, globals, args).await,
    }
}

/// Installs a stderr tracing subscriber with `filter` (once per process).
fn init_logging(filter: &str) -> Result<(), CliError> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).map_err(|err| {
        CliError::usage(format!(
            "invalid --log-level '{filter}': {err}; expected error, warn, info, debug, trace \
             or a filter like flowstone=debug"
        ))
    })?;
    // A second call in the same process (tests, embedding) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    Ok(())
}
