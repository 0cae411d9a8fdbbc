//! Acknowledging: where finished jobs' acks go ([`AckPath`]), the acker task that writes
//! them in batches on a connection of its own (PostgreSQL), the final flush of an inline
//! producer at shutdown, and poison isolation, so that one ack the database rejects cannot
//! wedge the queue.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Shared;
use super::run_job::scrub_text;
use crate::engine::{Ack, Conn, Role, Transition};
use crate::error::Error;
use crate::job::JobState;

/// Most acks written by one statement.
const ACK_BATCH: usize = 2000;

/// Where a producer's acks go: written with its next claim (SQLite: one writer at a time),
/// or handed to the worker's acker task (PostgreSQL: claims never wait for ack fsyncs).
pub(super) enum AckPath {
    Inline(Vec<Ack>),
    Acker(mpsc::UnboundedSender<Ack>),
}

impl AckPath {
    pub(super) fn push(&mut self, ack: Ack) {
        match self {
            Self::Inline(pending) => pending.push(ack),
            // The acker outlives every producer; a send can only fail after a hard stop.
            Self::Acker(tx) => {
                let _ = tx.send(ack);
            }
        }
    }

    pub(super) fn pending(&self) -> &[Ack] {
        match self {
            Self::Inline(pending) => pending,
            Self::Acker(_) => &[],
        }
    }
}

/// Writes acks in batches on its own connection (PostgreSQL). Ends when every producer
/// has ended and everything received is written (or, after a hard stop, given up).
pub(super) async fn acker(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Ack>) {
    let mut batch: Vec<Ack> = Vec::new();
    let mut conn: Option<Conn> = None;
    let mut failures = 0u32;
    loop {
        if batch.is_empty() {
            match rx.recv().await {
                Some(ack) => batch.push(ack),
                None => return,
            }
        }
        while batch.len() < ACK_BATCH {
            match rx.try_recv() {
                Ok(ack) => batch.push(ack),
                Err(_) => break,
            }
        }
        let written = match conn.take() {
            Some(c) => Ok(c),
            None => Conn::acquire(&shared.db, Role::Acks).await,
        };
        let written = match written {
            Ok(mut c) => {
                let written = write_acks(&shared, &mut c, &mut batch).await;
                match written {
                    Ok(()) => conn = Some(c),
                    Err(_) => c.discard(),
                }
                written
            }
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                // A lost connection is not a verdict on the acks: they are written again, on
                // a fresh connection, until they land (or the worker is stopped hard).
                tracing::warn!(error = %e, pending = batch.len(), "flowstone-queue: writing acks failed; retrying on a new connection");
                if shared.stop.is_cancelled() && failures > 5 {
                    // Left executing: the rescuer returns them to the queue later.
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20 << failures.min(6))).await;
            }
        }
    }
}

/// Last writes of an inline producer at shutdown: retried on fresh connections until they
/// land or the worker is stopped hard (`WorkerHandle::shutdown` bounds that wait); what is
/// left stays `executing` and is rescued once this node's heartbeat is gone.
pub(super) async fn flush_final(shared: &Shared, conn: &mut Option<Conn>, acks: &mut Vec<Ack>) {
    let mut failures = 0u32;
    while !acks.is_empty() && !shared.stop.is_cancelled() {
        let mut c = match conn.take() {
            Some(c) => c,
            None => match Conn::acquire(&shared.db, Role::Acks).await {
                Ok(c) => c,
                Err(_) => {
                    failures += 1;
                    tokio::time::sleep(Duration::from_millis(20 << failures.min(6))).await;
                    continue;
                }
            },
        };
        match write_acks(shared, &mut c, acks).await {
            Ok(()) => *conn = Some(c),
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "flowstone-queue: final acks failed; retrying");
                c.discard();
                tokio::time::sleep(Duration::from_millis(20 << failures.min(6))).await;
            }
        }
    }
}

/// Writes `acks` (no claim) and removes what was written from it: everything, or on a lost
/// connection the acks from the first unwritten one on stay, with the error. A batch the
/// database rejects is written one by one ([`isolate_poison`]).
pub(super) async fn write_acks(
    shared: &Shared,
    conn: &mut Conn,
    acks: &mut Vec<Ack>,
) -> Result<(), Error> {
    let started = std::time::Instant::now();
    match shared.ack_and_claim(conn, acks, None).await {
        Ok(_) => {
            metrics::histogram!(super::metrics::ACK_SECONDS)
                .record(started.elapsed().as_secs_f64());
            acks.clear();
            Ok(())
        }
        Err(e) if e.is_rejection() => match isolate_poison(shared, conn, acks).await {
            Ok(()) => {
                acks.clear();
                Ok(())
            }
            Err(unwritten) => {
                acks.drain(..unwritten.from);
                Err(unwritten.error)
            }
        },
        Err(e) => Err(e),
    }
}

/// Where one-by-one writing stopped because the connection was lost (not a rejection):
/// the acks from `from` on are unwritten and must be written again.
pub(super) struct Unwritten {
    pub from: usize,
    pub error: Error,
}

/// After a batch of acks was rejected by the database (not a lost connection): writes them
/// one by one, so one bad ack cannot wedge the queue. An ack the database still rejects is
/// replaced by discarding its job with the database's reason; if even that is rejected, it
/// is dropped (logged) and the rescue machinery deals with the job. A lost connection stops
/// the isolation: nothing after it is dropped, the caller writes it again.
pub(super) async fn isolate_poison(
    shared: &Shared,
    conn: &mut Conn,
    acks: &[Ack],
) -> Result<(), Unwritten> {
    for (index, ack) in acks.iter().enumerate() {
        let unwritten = |error| Unwritten { from: index, error };
        let e = match shared
            .ack_and_claim(conn, std::slice::from_ref(ack), None)
            .await
        {
            Ok(_) => continue,
            Err(e) if e.is_rejection() => e,
            Err(e) => return Err(unwritten(e)),
        };
        tracing::error!(error = %e, job = ack.id(), "flowstone-queue: the database rejected an ack");
        let fallback = Ack::Transition {
            id: ack.id(),
            attempt: ack.attempt(),
            to: Transition {
                state: JobState::Discarded,
                delay: None,
                extra_attempt: 0,
                snoozed: 0,
                unhandled: 0,
                error: Some(scrub_text(format!(
                    "the job's outcome could not be stored: {e}"
                ))),
            },
        };
        match shared
            .ack_and_claim(conn, std::slice::from_ref(&fallback), None)
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_rejection() => {
                tracing::error!(error = %e, job = ack.id(), "flowstone-queue: dropping an ack the database rejects");
                shared.forget(std::slice::from_ref(ack));
            }
            Err(e) => return Err(unwritten(e)),
        }
    }
    Ok(())
}
