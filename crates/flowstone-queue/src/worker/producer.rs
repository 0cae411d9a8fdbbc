//! Claiming: one producer task per queue claims up to its free concurrency plus a small
//! prefetch in one round trip, starts a task per claimed job (the prefetched ones as slots
//! free up), and hands the finished jobs' acks to its [`AckPath`] (on SQLite they ride in the
//! next claim's statement). At shutdown it gives back what it prefetched, waits for running
//! jobs, then abandons those still running.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use super::acker::{AckPath, flush_final, write_acks};
use super::run_job::{Ended, abandon_ack, give_back_ack, register, start_job};
use super::{Shared, WorkerSettings, pause};
use crate::engine::{ClaimSpec, Claimed, Conn, Role};
use tokio_util::sync::CancellationToken;

/// Longest the ack of a finished job waits while the producer runs buffered jobs, so one
/// round trip acknowledges and refills a whole buffer's worth.
const ACK_DEFER: Duration = Duration::from_millis(5);

/// Longest the acks of an idle producer (nothing left to claim) wait for a job to claim in
/// their transaction; a job's completion is visible at most this much later.
const IDLE_ACK_HOLD: Duration = Duration::from_millis(1);

/// Jobs that ended in the current and the previous [`WorkerSettings::PREFETCH_WINDOW`].
struct Pace {
    since: std::time::Instant,
    current: usize,
    previous: usize,
}

impl Pace {
    fn new() -> Self {
        Pace {
            since: std::time::Instant::now(),
            current: 0,
            previous: 0,
        }
    }

    fn roll(&mut self) {
        let elapsed = self.since.elapsed();
        if elapsed >= WorkerSettings::PREFETCH_WINDOW {
            // A window with nothing in it since: the pace is gone.
            self.previous = if elapsed >= 2 * WorkerSettings::PREFETCH_WINDOW {
                0
            } else {
                self.current
            };
            self.current = 0;
            self.since = std::time::Instant::now();
        }
    }

    fn ended(&mut self) {
        self.roll();
        self.current += 1;
    }

    /// Jobs ended within about one window.
    fn recent(&mut self) -> usize {
        self.roll();
        self.previous.max(self.current)
    }
}

/// After the grace period, how long handlers whose token fired may take to return.
const ABANDON_WAIT: Duration = Duration::from_millis(500);

/// One queue's claim loop. Returns the number of jobs abandoned at shutdown.
pub(super) async fn produce(
    shared: Arc<Shared>,
    queue: String,
    concurrency: usize,
    mut acks: AckPath,
) -> usize {
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<Ended>();
    let wake = shared
        .wake
        .get(&queue)
        .cloned()
        .unwrap_or_else(|| Arc::new(Notify::new()));
    let role = Role::Claims {
        durable: shared.settings.durable_claims,
    };
    let mut in_flight: HashMap<i64, (i32, i32)> = HashMap::new();
    // Claimed ahead of free slots, in claim order: registered as running here (so cancels
    // reach them and the orphan sweep leaves them alone), rescued with this node if it dies.
    let mut buffered: VecDeque<(Claimed, CancellationToken)> = VecDeque::new();
    // How many jobs ended lately: what the adaptive prefetch may buffer.
    let mut pace = Pace::new();
    let mut acks_pending_since: Option<std::time::Instant> = None;
    let mut maybe_more = true;
    let mut conn: Option<Conn> = None;
    let mut backoff = Duration::from_millis(20);
    loop {
        while let Ok(ended) = ack_rx.try_recv() {
            take(&shared, ended, &mut in_flight, &mut acks);
            pace.ended();
        }
        // Jobs that finish at once (spawned just now, or siblings of one that woke us):
        // let them run and collect their acks, so one round trip acknowledges and refills
        // a whole batch. A slow job costs only a yield here.
        for _ in 0..4 {
            if in_flight.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
            let mut more = false;
            while let Ok(ended) = ack_rx.try_recv() {
                take(&shared, ended, &mut in_flight, &mut acks);
                pace.ended();
                more = true;
            }
            if !more {
                break;
            }
        }
        while in_flight.len() < concurrency
            && !shared.stop_claiming.is_cancelled()
            && let Some((job, token)) = buffered.pop_front()
        {
            if token.is_cancelled() {
                // Cancelled while it waited here: the row says so already; never start it.
                shared.forget_id(job.id);
                continue;
            }
            in_flight.insert(job.id, (job.attempt, job.max_attempts));
            start_job(&shared, job, token, ack_tx.clone());
        }
        if shared.stop.is_cancelled() {
            return 0;
        }
        if shared.stop_claiming.is_cancelled() {
            // Shutting down: what never started goes back to the queue at once.
            for (job, _) in buffered.drain(..) {
                acks.push(give_back_ack(job.id, job.attempt));
            }
        }
        if shared.abandon.is_cancelled() {
            // Tokens have fired: give handlers a moment to return their own outcome.
            let deadline = tokio::time::Instant::now() + ABANDON_WAIT;
            while !in_flight.is_empty() {
                tokio::select! {
                    ended = ack_rx.recv() => match ended {
                        Some(ended) => take(&shared, ended, &mut in_flight, &mut acks),
                        None => break,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            let abandoned = in_flight.len();
            for (id, (attempt, max_attempts)) in in_flight.drain() {
                acks.push(abandon_ack(&shared.node, id, attempt, max_attempts));
            }
            if let AckPath::Inline(pending) = &mut acks {
                flush_final(&shared, &mut conn, pending).await;
            }
            return abandoned;
        }
        let stopping = shared.stop_claiming.is_cancelled();
        if stopping && in_flight.is_empty() {
            if let AckPath::Inline(pending) = &mut acks {
                flush_final(&shared, &mut conn, pending).await;
            }
            return 0;
        }
        if !stopping && !buffered.is_empty() {
            let waited = acks_pending_since.map(|t: std::time::Instant| t.elapsed());
            let defer = match waited {
                Some(waited) => waited < ACK_DEFER,
                None => buffered.len() >= concurrency,
            };
            if defer {
                let until = tokio::time::Instant::now()
                    + waited.map_or(ACK_DEFER, |w| ACK_DEFER.saturating_sub(w));
                tokio::select! {
                    ended = ack_rx.recv() => if let Some(ended) = ended {
                        take(&shared, ended, &mut in_flight, &mut acks);
                        pace.ended();
                    },
                    _ = tokio::time::sleep_until(until) => {}
                    _ = shared.stop_claiming.cancelled() => {}
                }
                if acks_pending_since.is_none() && !acks.pending().is_empty() {
                    acks_pending_since = Some(std::time::Instant::now());
                }
                continue;
            }
        }
        let want = if stopping || !maybe_more {
            0
        } else {
            let prefetch = shared.settings.prefetch_after(pace.recent());
            (concurrency + prefetch).saturating_sub(in_flight.len() + buffered.len())
        };
        if want == 0 && !stopping && !acks.pending().is_empty() {
            // Acks with nothing to claim beside them: held a moment, so that a job inserted
            // meanwhile is claimed by the transaction that writes them. Written at once, they
            // would hold SQLite's one writer while that insert waits for their commit.
            let since = *acks_pending_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() < IDLE_ACK_HOLD {
                let until = tokio::time::Instant::from_std(since + IDLE_ACK_HOLD);
                tokio::select! {
                    ended = ack_rx.recv() => if let Some(ended) = ended {
                        take(&shared, ended, &mut in_flight, &mut acks);
                        pace.ended();
                    },
                    _ = wake.notified() => maybe_more = true,
                    _ = tokio::time::sleep_until(until) => {}
                    _ = shared.stop_claiming.cancelled() => {}
                }
                continue;
            }
        }
        if !acks.pending().is_empty() || want > 0 {
            acks_pending_since = None;
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match Conn::acquire(&shared.db, role).await {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        tracing::warn!(error = %e, queue, "flowstone-queue: no connection; retrying");
                        pause(&shared.stop, backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue;
                    }
                },
            };
            let spec = ClaimSpec {
                queue: &queue,
                node: &shared.node,
                limit: want as i64,
                kinds: &shared.kinds,
                kinds_json: &shared.kinds_json,
            };
            let started = std::time::Instant::now();
            match shared.ack_and_claim(c, acks.pending(), Some(spec)).await {
                Ok(claimed) => {
                    metrics::histogram!(super::metrics::CLAIM_SECONDS, "queue" => queue.clone())
                        .record(started.elapsed().as_secs_f64());
                    backoff = Duration::from_millis(20);
                    if let AckPath::Inline(pending) = &mut acks {
                        pending.clear();
                    }
                    if claimed.len() < want {
                        maybe_more = false;
                    }
                    for job in claimed {
                        let token = register(&shared, &job);
                        if in_flight.len() < concurrency && buffered.is_empty() {
                            in_flight.insert(job.id, (job.attempt, job.max_attempts));
                            start_job(&shared, job, token, ack_tx.clone());
                        } else {
                            buffered.push_back((job, token));
                        }
                    }
                }
                Err(e) if e.is_rejection() && !acks.pending().is_empty() => {
                    tracing::warn!(error = %e, queue, "flowstone-queue: acks rejected; writing them one by one");
                    if let AckPath::Inline(pending) = &mut acks
                        && let Err(e) = write_acks(&shared, c, pending).await
                    {
                        // Lost the connection while isolating: the rest is written again.
                        tracing::warn!(error = %e, queue, "flowstone-queue: writing acks failed; reconnecting");
                        drop_failed(&shared, &mut conn);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, queue, "flowstone-queue: claim failed; reconnecting");
                    drop_failed(&shared, &mut conn);
                    pause(&shared.stop, backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
            if shared.db.single_connection() {
                // The only connection: give it back between cycles.
                conn = None;
            }
            continue;
        }
        tokio::select! {
            ended = ack_rx.recv() => {
                if let Some(ended) = ended {
                    take(&shared, ended, &mut in_flight, &mut acks);
                    pace.ended();
                }
            }
            _ = wake.notified() => maybe_more = true,
            _ = tokio::time::sleep(shared.settings.poll_interval) => maybe_more = true,
            _ = shared.stop_claiming.cancelled(), if !stopping => {}
            _ = shared.abandon.cancelled() => {}
            _ = shared.stop.cancelled() => return 0,
        }
    }
}

/// A job that ended: no longer in flight; its ack goes to `acks`, unless the handler
/// completed the job in its own transaction.
fn take(
    shared: &Shared,
    ended: Ended,
    in_flight: &mut HashMap<i64, (i32, i32)>,
    acks: &mut AckPath,
) {
    match ended {
        Ended::Ack(ack) => {
            in_flight.remove(&ack.id());
            acks.push(ack);
        }
        Ended::Committed { id } => {
            in_flight.remove(&id);
            shared.forget_id(id);
        }
    }
}

/// Drops a connection a statement failed on, so the next cycle takes a fresh one.
fn drop_failed(shared: &Shared, conn: &mut Option<Conn>) {
    match conn.take() {
        // Closing the only connection of an in-memory database would lose the data: it is
        // returned to its pool instead.
        Some(_) if shared.db.single_connection() => {}
        Some(c) => c.discard(),
        None => {}
    }
}
