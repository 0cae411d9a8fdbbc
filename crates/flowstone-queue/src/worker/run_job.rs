//! Running one job: looking up its handler (or giving an unknown kind back), building its
//! [`JobContext`], catching a handler's panic as a retry, and turning the [`Outcome`] into
//! the fenced ack that records it, with text the databases refuse scrubbed first.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::mpsc;

use super::{Running, Shared};
use crate::engine::{self, Ack, Claimed, Transition};
use crate::handler::{HandlerOptions, JobContext, Outcome};
use crate::job::JobState;
use tokio_util::sync::CancellationToken;

/// How a job this node ran ended, as its task reports it to the producer.
pub(super) enum Ended {
    /// The ack to write.
    Ack(Ack),
    /// The handler completed the job in its own transaction ([`Outcome::Committed`]):
    /// nothing to write.
    Committed { id: i64 },
}

/// Registers a claimed job as running on this node (so cancel signals reach it and the orphan
/// sweep leaves it alone); returns the token that cancels it.
pub(super) fn register(shared: &Shared, job: &Claimed) -> CancellationToken {
    let cancel = shared.abandon.child_token();
    shared.running().insert(
        job.id,
        Running {
            attempt: job.attempt,
            cancel: cancel.clone(),
        },
    );
    cancel
}

/// Runs a [`register`]ed job on a task of its own; its [`Ended`] goes to `ack_tx`.
pub(super) fn start_job(
    shared: &Arc<Shared>,
    job: Claimed,
    cancel: CancellationToken,
    ack_tx: mpsc::UnboundedSender<Ended>,
) {
    let Some(handler) = shared.handlers.get(&job.kind).cloned() else {
        // Claims ask only for this node's kinds, so this is a row whose kind changed under
        // us: give it back for a node that has the kind, without using up an attempt.
        let _ = ack_tx.send(Ended::Ack(give_back_ack(job.id, job.attempt)));
        return;
    };
    let ctx = JobContext {
        id: job.id,
        queue: job.queue.clone(),
        kind: job.kind.clone(),
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        snoozed: job.snoozed,
        meta: engine::lenient_json(&job.meta),
        cancel,
        node: Arc::clone(&shared.node),
        args: job.args,
    };
    let results_hold_nul = engine::results_hold_nul(&shared.db);
    let fired = ctx.cancel.clone();
    // An INFO span per job, so what the handler logs (and FlowStone's materialization span
    // inside it) says which job and attempt it belongs to.
    let span = tracing::info_span!(
        "job",
        job = job.id,
        queue = %job.queue,
        kind = %job.kind,
        attempt = job.attempt,
    );
    let kind = job.kind.clone();
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            let run = std::panic::catch_unwind(AssertUnwindSafe(|| (handler.run)(ctx)));
            let grace = handler.options.cancel_grace;
            let outcome = match run {
                Ok(fut) => tokio::select! {
                    biased;
                    finished = AssertUnwindSafe(fut).catch_unwind() => finished.unwrap_or_else(|p| {
                        Outcome::retry(format!("handler panicked: {}", panic_text(&p)))
                    }),
                    // A handler that ignores its token is dropped here, at its next await.
                    () = overdue(&fired, grace) => Outcome::Cancelled {
                        reason: format!(
                            "the handler did not return within its cancel grace ({grace:?}) after \
                             the job was cancelled, and was aborted"
                        ),
                    },
                },
                Err(p) => Outcome::retry(format!("handler panicked: {}", panic_text(&p))),
            };
            let _ = ack_tx.send(ended_by(
                job.id,
                job.attempt,
                job.max_attempts,
                outcome,
                &handler.options,
                results_hold_nul,
                &kind,
            ));
        },
        span,
    ));
}

/// Resolves `grace` after `token` fires.
async fn overdue(token: &tokio_util::sync::CancellationToken, grace: Duration) {
    token.cancelled().await;
    tokio::time::sleep(grace).await;
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

fn ended_by(
    id: i64,
    attempt: i32,
    max_attempts: i32,
    outcome: Outcome,
    options: &HandlerOptions,
    results_hold_nul: bool,
    kind: &str,
) -> Ended {
    let discarded = || {
        metrics::counter!(super::metrics::DISCARDED, "kind" => kind.to_owned()).increment(1);
    };
    let transition =
        |state, delay: Option<Duration>, extra_attempt, snoozed, error: Option<String>| {
            Ack::Transition {
                id,
                attempt,
                to: Transition {
                    state,
                    delay: delay.map(|d| d.min(MAX_DELAY)),
                    extra_attempt,
                    snoozed,
                    unhandled: 0,
                    error: error.map(scrub_text),
                },
            }
        };
    Ended::Ack(match outcome {
        Outcome::Complete(result) => Ack::Complete {
            id,
            attempt,
            result: result.map(|mut v| {
                if !results_hold_nul {
                    scrub_value(&mut v);
                }
                v.to_string()
            }),
        },
        Outcome::Retry { error, backoff } if attempt < max_attempts => {
            let delay = backoff.unwrap_or_else(|| options.backoff.delay(attempt));
            transition(JobState::Retryable, Some(delay), 0, 0, Some(error))
        }
        Outcome::Retry { error, .. } => {
            discarded();
            transition(JobState::Discarded, None, 0, 0, Some(error))
        }
        Outcome::Discard { error } => {
            discarded();
            transition(JobState::Discarded, None, 0, 0, Some(error))
        }
        Outcome::Snooze(after) => transition(JobState::Scheduled, Some(after), 1, 1, None),
        Outcome::Cancelled { reason } => transition(JobState::Cancelled, None, 0, 0, Some(reason)),
        Outcome::Committed => return Ended::Committed { id },
    })
}

/// Longest retry or snooze delay stored (longer ones are cut to this): keeps `scheduled_at`
/// inside every engine's date range.
const MAX_DELAY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Text the databases refuse (PostgreSQL stores no NUL character) would make an ack fail
/// forever: replace NULs.
pub(super) fn scrub_text(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{fffd}")
    } else {
        s
    }
}

fn scrub_value(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{fffd}"),
        serde_json::Value::Array(items) => items.iter_mut().for_each(scrub_value),
        serde_json::Value::Object(map) if map.keys().any(|k| k.contains('\0')) => {
            let entries: Vec<(String, serde_json::Value)> =
                std::mem::take(map).into_iter().collect();
            for (k, mut item) in entries {
                scrub_value(&mut item);
                map.insert(scrub_text(k), item);
            }
        }
        serde_json::Value::Object(map) => map.values_mut().for_each(scrub_value),
        _ => {}
    }
}

/// Gives a claimed job that never started back to the queue (a kind this node lost, a
/// prefetched job at shutdown): its attempt number stays spent, and `max_attempts` grows so
/// it does not count.
pub(super) fn give_back_ack(id: i64, attempt: i32) -> Ack {
    Ack::Transition {
        id,
        attempt,
        to: give_back(),
    }
}

/// Back to the queue at once, the attempt number spent and `max_attempts` raised by one.
pub(super) fn give_back() -> Transition {
    Transition {
        state: JobState::Available,
        delay: Some(Duration::ZERO),
        extra_attempt: 1,
        snoozed: 0,
        unhandled: 0,
        error: None,
    }
}

pub(super) fn abandon_ack(node: &str, id: i64, attempt: i32, max_attempts: i32) -> Ack {
    let last = attempt >= max_attempts;
    Ack::Transition {
        id,
        attempt,
        to: Transition {
            state: if last {
                JobState::Discarded
            } else {
                JobState::Available
            },
            delay: Some(Duration::ZERO),
            extra_attempt: 0,
            snoozed: 0,
            unhandled: 0,
            error: Some(format!(
                "node {node} shut down before attempt {attempt} finished"
            )),
        },
    }
}
