//! `worker`: run queued jobs until SIGINT or SIGTERM, then shut down gracefully.

use clap::Args;
use flowstone::FlowStone;
use flowstone::store::RetentionPolicy;
use serde_json::json;

use crate::output::print_json;
use crate::queue::require_queue;
use crate::{CliError, GlobalOpts, Status};

/// Arguments of `worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// A queue to work and how many of its jobs to run at once, e.g. `assets=10`; repeat for
    /// more queues (default: `assets=10`, the queue FlowStone puts jobs on)
    #[arg(long = "queue", value_name = "NAME=CONCURRENCY", value_parser = parse_queue)]
    pub queues: Vec<(String, usize)>,
    /// How long running jobs may take to finish after SIGINT/SIGTERM, in seconds
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub grace: u64,
    /// Retention: keep only the newest N materialization records of each asset and partition
    /// (the latest and the latest successful are always kept); pruned hourly by one worker
    #[arg(long, value_name = "N")]
    pub keep_latest: Option<usize>,
    /// Retention: drop materialization records older than this many days (the latest and the
    /// latest successful of each asset and partition are always kept)
    #[arg(long, value_name = "DAYS")]
    pub keep_days: Option<u64>,
    /// Also run automation (schedules, sensors, asset conditions): however many workers do,
    /// one leads at a time and the others stand by
    #[arg(long)]
    pub automation: bool,
    /// Serve Prometheus metrics (GET /metrics) on this address while the worker runs
    #[cfg(feature = "ui")]
    #[arg(long, value_name = "ADDR")]
    pub metrics_bind: Option<std::net::SocketAddr>,
}

/// How often a worker with `--keep-latest`/`--keep-days` prunes.
const RETENTION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// The retention policy `--keep-latest` and `--keep-days` ask for, if any.
fn retention_policy(args: &WorkerArgs) -> Option<RetentionPolicy> {
    if args.keep_latest.is_none() && args.keep_days.is_none() {
        return None;
    }
    let mut policy = RetentionPolicy::new();
    if let Some(n) = args.keep_latest {
        policy = policy.keep_latest(n);
    }
    if let Some(days) = args.keep_days {
        policy = policy.max_age(std::time::Duration::from_secs(days.saturating_mul(86_400)));
    }
    Some(policy)
}

/// Parses `NAME=CONCURRENCY`.
fn parse_queue(input: &str) -> Result<(String, usize), String> {
    let expected = "expected NAME=CONCURRENCY, e.g. assets=10";
    let (name, concurrency) = input
        .split_once('=')
        .ok_or_else(|| format!("'{input}': {expected}"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("'{input}' names no queue; {expected}"));
    }
    match concurrency.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok((name.to_owned(), n)),
        _ => Err(format!(
            "'{input}': concurrency must be a whole number of at least 1; {expected}"
        )),
    }
}

/// Runs `worker`.
pub async fn run(
    fs: &FlowStone,
    globals: &GlobalOpts,
    args: WorkerArgs,
) -> Result<Status, CliError> {
    require_queue(fs, "`worker`")?;
    let mut worker = fs.worker();
    let described = if args.queues.is_empty() {
        String::from("assets=10")
    } else {
        args.queues
            .iter()
            .map(|(name, n)| format!("{name}={n}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(policy) = retention_policy(&args) {
        worker = worker.retention(policy, RETENTION_INTERVAL);
    }
    for (name, concurrency) in args.queues {
        worker = worker.queue(name, concurrency);
    }
    #[cfg(feature = "ui")]
    let _metrics = start_metrics(fs, args.metrics_bind).await?;
    let handle = worker.automation(args.automation).start().await?;
    eprintln!(
        "worker {} on {described}{}: running jobs until SIGINT (Ctrl-C) or SIGTERM",
        handle.node(),
        if args.automation {
            " with automation"
        } else {
            ""
        }
    );
    // A worker that stops by itself (its SQLite file deleted) ends the command with its error.
    let fatal = tokio::select! {
        () = shutdown_signal() => None,
        error = handle.failed() => Some(error.to_string()),
    };
    if let Some(message) = fatal {
        let _ = handle
            .shutdown(std::time::Duration::from_secs(args.grace))
            .await;
        return Err(CliError::failed(message));
    }
    eprintln!(
        "shutting down: no new jobs; running ones have {} s to finish",
        args.grace
    );
    let report = handle
        .shutdown(std::time::Duration::from_secs(args.grace))
        .await;
    if globals.json {
        print_json(&json!({ "stopped": true, "abandoned": report.abandoned }));
    } else if report.abandoned > 0 {
        eprintln!(
            "stopped; {} jobs did not finish in time and went back to the queue",
            report.abandoned
        );
    } else {
        eprintln!("stopped cleanly");
    }
    Ok(if report.abandoned > 0 {
        Status::WorkFailed
    } else {
        Status::Ok
    })
}

/// Serves `/metrics` on `bind` (if given) until the returned guard drops with the command.
#[cfg(feature = "ui")]
async fn start_metrics(
    fs: &FlowStone,
    bind: Option<std::net::SocketAddr>,
) -> Result<Option<tokio_util::sync::DropGuard>, CliError> {
    let Some(bind) = bind else {
        return Ok(None);
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|e| CliError::usage(format!("--metrics-bind {bind}: could not listen: {e}")))?;
    let addr = listener.local_addr().unwrap_or(bind);
    eprintln!("metrics on http://{addr}/metrics");
    let (fs, stopped) = (fs.clone(), stop.clone());
    tokio::spawn(async move {
        if let Err(err) =
            flowstone_ui::metrics::serve_metrics_on(fs, listener, stopped.cancelled_owned()).await
        {
            eprintln!("the metrics endpoint stopped: {err}");
        }
    });
    Ok(Some(stop.drop_guard()))
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM: the worker's cue to stop taking jobs and
/// let the running ones finish.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = ctrl_c => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_queue_specs() {
        assert_eq!(parse_queue("assets=10").unwrap(), ("assets".into(), 10));
        assert!(
            parse_queue("assets")
                .unwrap_err()
                .contains("NAME=CONCURRENCY")
        );
        assert!(parse_queue("assets=0").is_err());
        assert!(parse_queue("=3").is_err());
    }

    fn args(keep_latest: Option<usize>, keep_days: Option<u64>) -> WorkerArgs {
        WorkerArgs {
            queues: Vec::new(),
            grace: 30,
            keep_latest,
            keep_days,
            automation: false,
            #[cfg(feature = "ui")]
            metrics_bind: None,
        }
    }

    #[test]
    fn retention_flags_make_a_policy() {
        assert_eq!(retention_policy(&args(None, None)), None);
        let policy = retention_policy(&args(Some(5), Some(2))).unwrap();
        assert_eq!(policy.kept_newest(), Some(5));
        let now = chrono::Utc::now();
        assert_eq!(policy.cutoff(now), Some(now - chrono::Duration::days(2)));
    }
}
