//! `worker`: run queued jobs until SIGINT or SIGTERM, then shut down gracefully.

use clap::Args;
use flowstone::FlowStone;

use crate::queue::not_wired;
use crate::{CliError, GlobalOpts, Status};

/// Arguments of `worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// A queue to work and how many of its jobs to run at once, e.g. `assets=10`; repeat for
    /// more queues (default: the `default` queue with 10)
    #[arg(long = "queue", value_name = "NAME=CONCURRENCY", value_parser = parse_queue)]
    pub queues: Vec<(String, usize)>,
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

/// The queues a worker serves: the ones given, or `default=10`.
pub fn queues_or_default(queues: &[(String, usize)]) -> Vec<(String, usize)> {
    if queues.is_empty() {
        vec![(String::from("default"), 10)]
    } else {
        queues.to_vec()
    }
}

/// Runs `worker`.
pub async fn run(
    _fs: &FlowStone,
    _globals: &GlobalOpts,
    args: WorkerArgs,
) -> Result<Status, CliError> {
    let _queues = queues_or_default(&args.queues);
    // TODO(lead): with `fs.worker()`:
    //   let mut worker = fs.worker();
    //   for (name, concurrency) in _queues { worker = worker.queue(name, concurrency); }
    //   worker.run_until(shutdown_signal()).await?;
    Err(not_wired("`worker`"))
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
    eprintln!("shutting down: finishing running jobs");
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
}
