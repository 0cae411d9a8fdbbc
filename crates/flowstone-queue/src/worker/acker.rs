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
        let c = match conn.take() {
            Some(c) => Ok(c),
            None => Conn::acquire(&shared.db, Role::Acks).await,
        };
        let result = match c {
            Ok(mut c) => match shared.ack_and_claim(&mut c, &batch, None).await {
                Ok(_) => {
                    conn = Some(c);
                    Ok(())
                }
                Err(e) if rejected(&e) => {
                    tracing::warn!(error = %e, "flowstone-queue: acks rejected; writing them one by one");
                    isolate_poison(&shared, &mut c, &batch).await;
                    conn = Some(c);
                    Ok(())
                }
                Err(e) => {
                    c.discard();
                    Err(e)
                }
            },
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                failures = 0;
                shared.forget(&batch);
                batch.clear();
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "flowstone-queue: writing acks failed; retrying");
                if shared.stop.is_cancelled() && failures > 5 {
                    // Left executing: the rescuer returns them to the queue later.
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20 << failures.min(6))).await;
            }
        }
    }
}

/// Last writes of an inline producer: retried a few times, then left to the rescuer.
pub(super) async fn flush_final(shared: &Shared, conn: &mut Option<Conn>, acks: &[Ack]) {
    for _ in 0..5 {
        if acks.is_empty() {
            return;
        }
        let mut c = match conn.take() {
            Some(c) => c,
            None => match Conn::acquire(&shared.db, Role::Acks).await {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        match shared.ack_and_claim(&mut c, acks, None).await {
            Ok(_) => {
                shared.forget(acks);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "flowstone-queue: final acks failed; retrying");
                c.discard();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// After a batch of acks was rejected by the database (not a lost connection): writes them
/// one by one, so one bad ack cannot wedge the queue. An ack the database still rejects is
/// replaced by discarding its job with the database's reason; if even that fails, it is
/// dropped (logged) and the rescue machinery deals with the job.
pub(super) async fn isolate_poison(shared: &Shared, conn: &mut Conn, acks: &[Ack]) {
    for ack in acks {
        let single = std::slice::from_ref(ack);
        let Err(e) = shared.ack_and_claim(conn, single, None).await else {
            continue;
        };
        tracing::error!(error = %e, job = ack.id(), "flowstone-queue: the database rejected an ack");
        let (id, attempt) = match ack {
            Ack::Complete { id, attempt, .. } | Ack::Transition { id, attempt, .. } => {
                (*id, *attempt)
            }
        };
        let fallback = Ack::Transition {
            id,
            attempt,
            to: Transition {
                state: JobState::Discarded,
                delay: None,
                give_back: 0,
                snoozed: 0,
                unhandled: 0,
                error: Some(scrub_text(format!(
                    "the job's outcome could not be stored: {e}"
                ))),
            },
        };
        if let Err(e) = shared
            .ack_and_claim(conn, std::slice::from_ref(&fallback), None)
            .await
        {
            tracing::error!(error = %e, job = id, "flowstone-queue: dropping an ack the database rejects");
        }
    }
    shared.forget(acks);
}

/// True when the database answered with an error (as opposed to a lost connection).
pub(super) fn rejected(e: &Error) -> bool {
    matches!(e, Error::Database(sqlx::Error::Database(_)))
}
