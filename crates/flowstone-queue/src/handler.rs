//! What a handler sees and returns. A handler is an async function of a [`JobContext`]
//! that returns an [`Outcome`]; the worker turns the outcome into the row's next state
//! (complete, retry with backoff, discard, snooze, cancelled). Typed handlers get their
//! args decoded; args that do not decode discard the job with the reason.

use std::sync::Arc;
use std::time::Duration;

use flowstone_backoff::Backoff;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// Everything a handler knows about the attempt it runs.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// Job id.
    pub id: i64,
    /// Queue.
    pub queue: String,
    /// Kind (the handler's name).
    pub kind: String,
    /// This attempt, from 1. Every delivery of the job takes the next number, snoozes and
    /// re-deliveries of lost claims included, so `(id, attempt)` runs at most once.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Times the job snoozed before. A snooze takes an attempt number but raises
    /// `max_attempts` with it, so snoozes never use up the job's attempts (as in Oban);
    /// limit them here.
    pub snoozed: i32,
    /// Metadata.
    pub meta: Value,
    /// Fires when the job is cancelled, or the node shuts down past its grace period.
    pub cancel: CancellationToken,
    /// This node's name.
    pub node: Arc<str>,
    pub(crate) args: String,
}

impl JobContext {
    /// The args as stored (JSON text, unless the row was written by hand).
    pub fn args_raw(&self) -> &str {
        &self.args
    }

    /// The args as a JSON value.
    pub fn args_json(&self) -> Result<Value> {
        self.args()
    }

    /// The args decoded into `T`.
    pub fn args<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_str(&self.args).map_err(|e| Error::MalformedArgs {
            kind: self.kind.clone(),
            reason: format!(
                "{e} (expected JSON for `{}`, got {})",
                std::any::type_name::<T>(),
                preview(&self.args)
            ),
        })
    }

    /// True on the last allowed attempt.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

fn preview(text: &str) -> String {
    let mut p: String = text.chars().take(80).collect();
    if p.len() < text.len() {
        p.push('…');
    }
    format!("`{p}`")
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Done; the optional JSON is stored as the job's `result`.
    Complete(Option<Value>),
    /// Failed; try again after the backoff (the kind's, or `backoff` if given). Discarded
    /// when it was the last attempt.
    Retry {
        /// What went wrong (recorded in `errors`).
        error: String,
        /// Overrides the kind's backoff for this retry.
        backoff: Option<Duration>,
    },
    /// Failed for good: no more attempts.
    Discard {
        /// What went wrong.
        error: String,
    },
    /// Not now: run again after `Duration`, without using up an attempt (the next attempt
    /// number, with `max_attempts` raised by one).
    Snooze(Duration),
    /// Stop: the job ends `cancelled`.
    Cancelled {
        /// Why.
        reason: String,
    },
    /// Already completed by the handler itself, in its own transaction, with
    /// [`transaction::complete_sqlite`](crate::transaction::complete_sqlite) (which said it
    /// applied): the worker writes nothing. Return it only then; the row would otherwise stay
    /// `executing` until this node's orphan sweep gives it back.
    Committed,
}

impl Outcome {
    /// Complete with no result.
    pub fn complete() -> Self {
        Self::Complete(None)
    }

    /// Complete with a serializable result (stored as JSON; a value that fails to
    /// serialize completes with no result and a warning).
    pub fn complete_with<T: Serialize>(result: &T) -> Self {
        match serde_json::to_value(result) {
            Ok(v) => Self::Complete(Some(v)),
            Err(e) => {
                tracing::warn!(error = %e, "flowstone-queue: job result does not serialize");
                Self::Complete(None)
            }
        }
    }

    /// Retry with the kind's backoff.
    pub fn retry(error: impl std::fmt::Display) -> Self {
        Self::Retry {
            error: error.to_string(),
            backoff: None,
        }
    }

    /// Retry after exactly `after`.
    pub fn retry_in(error: impl std::fmt::Display, after: Duration) -> Self {
        Self::Retry {
            error: error.to_string(),
            backoff: Some(after),
        }
    }

    /// Discard (non-retryable error).
    pub fn discard(error: impl std::fmt::Display) -> Self {
        Self::Discard {
            error: error.to_string(),
        }
    }

    /// Snooze for `after`.
    pub fn snooze(after: Duration) -> Self {
        Self::Snooze(after)
    }

    /// Cancelled by the handler.
    pub fn cancelled(reason: impl std::fmt::Display) -> Self {
        Self::Cancelled {
            reason: reason.to_string(),
        }
    }
}

/// `Ok(())` completes; `Err(e)` retries with `e` as the error.
impl<E: std::fmt::Display> From<std::result::Result<(), E>> for Outcome {
    fn from(r: std::result::Result<(), E>) -> Self {
        match r {
            Ok(()) => Self::complete(),
            Err(e) => Self::retry(e),
        }
    }
}

/// A registered handler: an async function of the context.
pub type HandlerFn = Arc<dyn Fn(JobContext) -> BoxFuture<'static, Outcome> + Send + Sync>;

/// Per-kind settings.
#[derive(Debug, Clone)]
pub struct HandlerOptions {
    /// Retry delays for this kind (default: exponential with jitter).
    pub backoff: Backoff,
    /// How long a cancelled job's handler may go on after its token fires (a cancel, or a
    /// shutdown past its grace period) before it is aborted: its future is dropped at its
    /// next await, and the job ends `cancelled` (or, at shutdown, goes back to the queue).
    /// A handler that watches its token and returns sooner is never aborted. Default 5 s.
    pub cancel_grace: Duration,
}

impl HandlerOptions {
    /// The default [`cancel_grace`](Self::cancel_grace): 5 s.
    pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(5);
}

impl Default for HandlerOptions {
    fn default() -> Self {
        Self {
            backoff: Backoff::default(),
            cancel_grace: Self::DEFAULT_CANCEL_GRACE,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Handler {
    pub run: HandlerFn,
    pub options: HandlerOptions,
}

/// Wraps a typed handler: decodes the args first; args that do not decode discard the job
/// with the reason, and the worker goes on.
pub(crate) fn typed<T, F, Fut>(f: F) -> HandlerFn
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(JobContext, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |ctx: JobContext| {
        let f = Arc::clone(&f);
        Box::pin(async move {
            match ctx.args::<T>() {
                Ok(args) => f(ctx, args).await,
                Err(e) => Outcome::discard(e),
            }
        })
    })
}

/// Wraps an untyped handler.
pub(crate) fn untyped<F, Fut>(f: F) -> HandlerFn
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    Arc::new(move |ctx: JobContext| Box::pin(f(ctx)))
}
