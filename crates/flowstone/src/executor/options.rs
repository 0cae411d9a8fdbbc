//! Options a caller gives an executor for one job, and the check that the executor can honour
//! them.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Capabilities, Capability, Job};
use crate::error::{Error, Result};
use crate::output::Output;
use crate::runtime::{RunEnv, Runtime};

/// One step of the serial executor, handed to `on_step`.
#[derive(Debug)]
pub enum Step<'a> {
    /// About to run `job`.
    Before(&'a Job),
    /// Ran `job`, with this result.
    After(&'a Job, &'a Result<Output>),
}

impl std::fmt::Display for Step<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Before(job) => write!(f, "before {} [{}]", job.asset, job.partition),
            Step::After(job, Ok(_)) => write!(f, "after {} [{}]: ok", job.asset, job.partition),
            Step::After(job, Err(err)) => {
                write!(f, "after {} [{}]: {err}", job.asset, job.partition)
            }
        }
    }
}

/// The `on_step` callback.
pub type StepCallback = Arc<dyn Fn(&Step<'_>) + Send + Sync>;

/// Per-call executor options. Each one set needs a capability of the executor.
#[derive(Clone, Default)]
pub struct ExecOptions {
    /// Longest one attempt may run (needs [`Capability::Timeout`]).
    pub timeout: Option<Duration>,
    /// The queue to use (needs [`Capability::Queues`]).
    pub queue: Option<String>,
    /// Total attempts (needs [`Capability::Retries`]).
    pub max_attempts: Option<u32>,
    /// Log each step at debug level (needs [`Capability::Stepping`]).
    pub verbose: Option<bool>,
    /// Wait between steps (needs [`Capability::Stepping`]).
    pub pause_between: Option<Duration>,
    /// Called before and after each step (needs [`Capability::Stepping`]).
    pub on_step: Option<StepCallback>,
}

impl std::fmt::Debug for ExecOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecOptions")
            .field("timeout", &self.timeout)
            .field("queue", &self.queue)
            .field("max_attempts", &self.max_attempts)
            .field("verbose", &self.verbose)
            .field("pause_between", &self.pause_between)
            .field("on_step", &self.on_step.as_ref().map(|_| "callback"))
            .finish()
    }
}

/// What an executor gets with each job: the runtime, the options and a cancellation token.
#[derive(Clone)]
pub struct ExecContext {
    /// The runtime that materializes jobs in this process.
    pub runtime: Runtime,
    /// The caller's options.
    pub options: ExecOptions,
    /// Fires to cancel the work (a cancelled backfill fires it for all its jobs).
    pub cancel: CancellationToken,
}

impl ExecContext {
    /// A context with no options.
    pub fn new(runtime: Runtime) -> Self {
        ExecContext {
            runtime,
            options: ExecOptions::default(),
            cancel: CancellationToken::new(),
        }
    }

    /// The [`RunEnv`] for running a job in this process under `executor`.
    pub fn run_env(&self, executor: &str, default_timeout: Duration) -> RunEnv {
        RunEnv {
            executor: executor.to_owned(),
            timeout: self.options.timeout,
            default_timeout,
            max_attempts: self.options.max_attempts,
            cancel: self.cancel.child_token(),
        }
    }
}

/// Refuses options `executor` cannot honour, naming the option and the executor.
pub fn check_options(
    executor: &str,
    capabilities: Capabilities,
    job: &Job,
    options: &ExecOptions,
) -> Result<()> {
    let wanted: [(bool, &str, Capability); 8] = [
        (
            job.scheduled_at.is_some(),
            "scheduled_at",
            Capability::Scheduled,
        ),
        (job.priority != 0, "priority", Capability::Priority),
        (options.timeout.is_some(), "timeout", Capability::Timeout),
        (options.queue.is_some(), "queue", Capability::Queues),
        (
            options.max_attempts.is_some(),
            "max_attempts",
            Capability::Retries,
        ),
        (options.verbose.is_some(), "verbose", Capability::Stepping),
        (
            options.pause_between.is_some(),
            "pause_between",
            Capability::Stepping,
        ),
        (options.on_step.is_some(), "on_step", Capability::Stepping),
    ];
    for (given, option, needed) in wanted {
        if given && !capabilities.has(needed) {
            return Err(Error::invalid_options(format!(
                "executor '{executor}' cannot honour option '{option}' (it lacks the '{needed}' \
                 capability; it has {capabilities:?}); choose an executor that supports it, \
                 e.g. {}",
                suggestion_for(needed)
            ))
            .with_asset(&job.asset));
        }
    }
    if job.priority > 9 {
        return Err(Error::invalid_options(format!(
            "priority {} is out of range: use 0 (first) to 9 (last)",
            job.priority
        )));
    }
    if let Some(timeout) = options.timeout {
        crate::limits::timeout("timeout", timeout)?;
    }
    if options.max_attempts == Some(0) {
        return Err(Error::invalid_options(
            "max_attempts must be at least 1 (1 means no retry)",
        ));
    }
    Ok(())
}

fn suggestion_for(cap: Capability) -> &'static str {
    match cap {
        Capability::Scheduled | Capability::Queues | Capability::Priority => "Strategy::Queue",
        Capability::Stepping => "Strategy::Serial",
        _ => "Strategy::Sync or Strategy::Async",
    }
}
