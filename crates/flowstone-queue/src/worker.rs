//! Running jobs. A [`Worker`] is one node: per queue a producer task claims up to the free
//! concurrency in one round trip, spawns a task per job, and writes the acks of finished
//! jobs in the same round trip as its next claim (so no-op jobs cost a fraction of a round
//! trip each). Beside the producers run a signal task (insert wake-ups, cancels), a
//! heartbeat task (this node is alive), and a maintenance task (rescue jobs of dead nodes,
//! give back jobs this node lost track of, prune old rows).
//!
//! Every ack is fenced by the attempt it claimed, so a node that was presumed dead and
//! rescued cannot overwrite the new attempt's outcome: delivery is at least once.
//!
//! Queue names are validated when a worker starts: each must be a valid name, and if the
//! application declared its queues with [`WorkerBuilder::known_queues`], each must be one
//! of them (an unknown name is almost always a typo, and would otherwise never run).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::database::{Database, Event};
use crate::engine::{self, Ack, ClaimSpec, Claimed, Conn, Role, Transition};
use crate::error::{Error, Result};
use crate::handler::{self, Handler, HandlerOptions, JobContext, Outcome};
use crate::job::JobState;

/// Checks a queue name: 1–64 characters from `[A-Za-z0-9_.:-]`.
pub(crate) fn validate_queue_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidQueueName(name.to_string()))
    }
}

/// Timings and limits of a worker. The defaults suit production; tests shorten them.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How often an idle producer looks for due jobs without a signal (scheduled and
    /// retryable jobs, other SQLite processes). Default 1 s.
    pub poll_interval: Duration,
    /// How often this node records that it is alive. Default 5 s.
    pub heartbeat_interval: Duration,
    /// A node silent for this long is presumed dead and its jobs are rescued. Default 60 s.
    pub rescue_after: Duration,
    /// How often this node looks for dead nodes' jobs. Default 15 s.
    pub rescue_interval: Duration,
    /// How often running jobs are checked for cancellation by polling (SQLite across
    /// processes; a safety net on PostgreSQL, where NOTIFY delivers cancels). Default 1 s.
    pub cancel_poll_interval: Duration,
    /// A job whose kind has no handler here is given back (attempt returned) this many
    /// times across all workers before it is discarded. Default 25.
    pub unknown_kind_limit: i32,
    /// How long a given-back job waits before it can be claimed again. Default 1 s.
    pub unknown_kind_delay: Duration,
    /// Finished rows older than this are deleted; `None` keeps them. Default 7 days.
    pub prune_after: Option<Duration>,
    /// How often pruning runs. Default 5 min.
    pub prune_interval: Duration,
    /// PostgreSQL: wait for the WAL flush when claiming. Default false: a claim is a lease,
    /// and one lost in a server crash only makes its job available again, which
    /// at-least-once delivery allows. Inserts and acks are always durable.
    pub durable_claims: bool,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(5),
            rescue_after: Duration::from_secs(60),
            rescue_interval: Duration::from_secs(15),
            cancel_poll_interval: Duration::from_secs(1),
            unknown_kind_limit: 25,
            unknown_kind_delay: Duration::from_secs(1),
            prune_after: Some(Duration::from_secs(7 * 24 * 3600)),
            prune_interval: Duration::from_secs(300),
            durable_claims: false,
        }
    }
}

/// Entry point: `Worker::builder(db)`.
pub struct Worker;

impl Worker {
    /// Starts configuring a worker on `db`.
    pub fn builder(db: Database) -> WorkerBuilder {
        WorkerBuilder {
            db,
            node: None,
            queues: Vec::new(),
            known_queues: None,
            handlers: HashMap::new(),
            settings: WorkerSettings::default(),
        }
    }
}

/// Configures and starts a worker.
///
/// A running worker holds, from the database's pool, one connection per queue plus one for
/// acks (PostgreSQL) and briefly one for heartbeats and maintenance; PostgreSQL also opens
/// one `LISTEN` connection per [`Database`]. Size the pool
/// ([`ConnectOptions::max_connections`](crate::ConnectOptions)) above the number of queues + 3.
pub struct WorkerBuilder {
    db: Database,
    node: Option<String>,
    queues: Vec<(String, usize)>,
    known_queues: Option<Vec<String>>,
    handlers: HashMap<String, Handler>,
    settings: WorkerSettings,
}

impl WorkerBuilder {
    /// Runs `queue` with at most `concurrency` jobs at once on this node.
    pub fn queue(mut self, queue: impl Into<String>, concurrency: usize) -> Self {
        self.queues.push((queue.into(), concurrency));
        self
    }

    /// Declares the application's queues; `start` rejects a queue not among them.
    pub fn known_queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.known_queues = Some(queues.into_iter().map(Into::into).collect());
        self
    }

    /// Names this node (default: host, process id and a random suffix). Must be unique
    /// among live nodes: heartbeats and rescue go by it.
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = Some(node.into());
        self
    }

    /// Replaces all timings and limits.
    pub fn settings(mut self, settings: WorkerSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Registers an async handler for `kind`.
    pub fn handler<F, Fut>(self, kind: impl Into<String>, f: F) -> Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        self.handler_with(kind, HandlerOptions::default(), f)
    }

    /// Registers an async handler for `kind` with its own options (backoff).
    pub fn handler_with<F, Fut>(
        mut self,
        kind: impl Into<String>,
        options: HandlerOptions,
        f: F,
    ) -> Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let run = handler::untyped(f);
        self.handlers.insert(kind.into(), Handler { run, options });
        self
    }

    /// Registers a handler whose args decode into `T`; a job whose args do not decode is
    /// discarded with an error saying why, and the worker goes on.
    pub fn typed_handler<T, F, Fut>(self, kind: impl Into<String>, f: F) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(JobContext, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        self.typed_handler_with(kind, HandlerOptions::default(), f)
    }

    /// [`typed_handler`](Self::typed_handler) with options.
    pub fn typed_handler_with<T, F, Fut>(
        mut self,
        kind: impl Into<String>,
        options: HandlerOptions,
        f: F,
    ) -> Self
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(JobContext, T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let run = handler::typed(f);
        self.handlers.insert(kind.into(), Handler { run, options });
        self
    }

    fn validate(&self) -> Result<()> {
        if self.queues.is_empty() {
            return Err(Error::InvalidConfig(
                "no queues: add at least one with `.queue(name, concurrency)`".into(),
            ));
        }
        for (i, (name, concurrency)) in self.queues.iter().enumerate() {
            validate_queue_name(name)?;
            if let Some(known) = &self.known_queues
                && !known.contains(name)
            {
                return Err(Error::UnknownQueue {
                    queue: name.clone(),
                    known: known.clone(),
                });
            }
            if *concurrency == 0 {
                return Err(Error::InvalidConfig(format!(
                    "queue `{name}` has concurrency 0: use at least 1"
                )));
            }
            if self.queues[..i].iter().any(|(n, _)| n == name) {
                return Err(Error::InvalidConfig(format!(
                    "queue `{name}` is configured twice"
                )));
            }
        }
        let s = &self.settings;
        if s.heartbeat_interval >= s.rescue_after {
            return Err(Error::InvalidConfig(format!(
                "heartbeat_interval ({:?}) must be shorter than rescue_after ({:?}), or live \
                 nodes would be rescued",
                s.heartbeat_interval, s.rescue_after
            )));
        }
        for (name, d) in [
            ("poll_interval", s.poll_interval),
            ("heartbeat_interval", s.heartbeat_interval),
            ("rescue_interval", s.rescue_interval),
            ("cancel_poll_interval", s.cancel_poll_interval),
            ("prune_interval", s.prune_interval),
        ] {
            if d.is_zero() {
                return Err(Error::InvalidConfig(format!(
                    "{name} is zero: use a positive duration"
                )));
            }
        }
        if s.unknown_kind_limit < 1 {
            return Err(Error::InvalidConfig(
                "unknown_kind_limit must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Validates the config, applies the queue's migrations if needed, registers this
    /// node and starts claiming.
    pub async fn start(self) -> Result<WorkerHandle> {
        self.validate()?;
        crate::migrate::QUEUE_MIGRATIONS.run(&self.db).await?;
        let node: Arc<str> = self.node.unwrap_or_else(default_node_name).into();
        engine::heartbeat(&self.db, &node).await?;
        let events = self.db.subscribe().await;
        let root = CancellationToken::new();
        let shared = Arc::new(Shared {
            db: self.db,
            node,
            handlers: self.handlers,
            settings: self.settings,
            running: Mutex::new(HashMap::new()),
            wake: self
                .queues
                .iter()
                .map(|(q, _)| (q.clone(), Arc::new(Notify::new())))
                .collect(),
            stop_claiming: root.child_token(),
            abandon: root.child_token(),
            stop: root.clone(),
        });
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        // With durable claims every claim waits for a WAL flush anyway: acks then ride in the
        // same statement, one flush for both, instead of competing flushes.
        let split = engine::separate_acker(&shared.db) && !shared.settings.durable_claims;
        let producers = self
            .queues
            .into_iter()
            .map(|(queue, concurrency)| {
                let acks = if split {
                    AckPath::Acker(ack_tx.clone())
                } else {
                    AckPath::Inline(Vec::new())
                };
                tokio::spawn(produce(Arc::clone(&shared), queue, concurrency, acks))
            })
            .collect();
        drop(ack_tx);
        let acker = tokio::spawn(acker(Arc::clone(&shared), ack_rx));
        let services = vec![
            tokio::spawn(signals(Arc::clone(&shared), events)),
            tokio::spawn(heartbeats(Arc::clone(&shared))),
            tokio::spawn(maintenance(Arc::clone(&shared))),
        ];
        Ok(WorkerHandle {
            shared,
            producers,
            acker: Some(acker),
            services,
        })
    }
}

fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".into());
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &id[id.len() - 8..])
}

struct Running {
    attempt: i32,
    cancel: CancellationToken,
}

struct Shared {
    db: Database,
    node: Arc<str>,
    handlers: HashMap<String, Handler>,
    settings: WorkerSettings,
    /// Jobs claimed here and not yet acknowledged, for cancel signals and orphan sweeps.
    running: Mutex<HashMap<i64, Running>>,
    wake: HashMap<String, Arc<Notify>>,
    stop_claiming: CancellationToken,
    abandon: CancellationToken,
    stop: CancellationToken,
}

impl Shared {
    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Running>> {
        // A panic while holding this lock cannot leave the map inconsistent: recover it.
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Acks written: these jobs are no longer running here.
    fn forget(&self, acks: &[Ack]) {
        let mut running = self.running();
        for ack in acks {
            running.remove(&ack.id());
        }
    }

    fn wake_all(&self) {
        for n in self.wake.values() {
            n.notify_one();
        }
    }

    fn cancel_running(&self, ids: &[i64]) {
        let running = self.running();
        for id in ids {
            if let Some(r) = running.get(id) {
                r.cancel.cancel();
            }
        }
    }
}

/// A running worker. Call [`shutdown`](Self::shutdown) to stop it gracefully; dropping it
/// stops it at once (its running jobs are then rescued by another node later).
pub struct WorkerHandle {
    shared: Arc<Shared>,
    producers: Vec<JoinHandle<usize>>,
    acker: Option<JoinHandle<()>>,
    services: Vec<JoinHandle<()>>,
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Jobs whose handlers had not returned by the grace period's end (plus a short wait
    /// after their tokens fired): returned to the queue, or discarded if that was their
    /// last attempt.
    pub abandoned: usize,
}

impl WorkerHandle {
    /// This node's name.
    pub fn node(&self) -> &str {
        &self.shared.node
    }

    /// Stops claiming, lets running jobs finish for up to `grace`, then fires the
    /// cancellation tokens of those still running and returns them to the queue; writes all
    /// acks, and unregisters the node.
    pub async fn shutdown(mut self, grace: Duration) -> ShutdownReport {
        self.shared.stop_claiming.cancel();
        let mut producers = std::mem::take(&mut self.producers);
        let all = futures_util::future::join_all(producers.iter_mut());
        let done = tokio::time::timeout(grace, all).await;
        let mut abandoned = 0;
        match done {
            Ok(results) => abandoned += results.into_iter().filter_map(|r| r.ok()).sum::<usize>(),
            Err(_) => {
                self.shared.abandon.cancel();
                for mut p in producers {
                    // A producer stuck on an unreachable database is stopped: its jobs stay
                    // `executing` and are rescued once this node's heartbeat is gone.
                    match tokio::time::timeout(FINAL_WAIT, &mut p).await {
                        Ok(n) => abandoned += n.unwrap_or(0),
                        Err(_) => p.abort(),
                    }
                }
            }
        }
        // Producers are done, so the acker's channel is closed: it ends once all is written.
        if let Some(mut acker) = self.acker.take()
            && tokio::time::timeout(FINAL_WAIT, &mut acker).await.is_err()
        {
            acker.abort();
        }
        self.shared.stop.cancel();
        for s in std::mem::take(&mut self.services) {
            let _ = s.await;
        }
        if let Err(e) = engine::remove_node(&self.shared.db, &self.shared.node).await {
            tracing::warn!(error = %e, "flowstone-queue: could not unregister node");
        }
        ShutdownReport { abandoned }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

/// Sleeps `d`, or returns early (false) when `token` fires.
async fn pause(token: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = token.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// At shutdown, how long to wait for the last database writes before giving up on them.
const FINAL_WAIT: Duration = Duration::from_secs(10);

/// After the grace period, how long handlers whose token fired may take to return.
const ABANDON_WAIT: Duration = Duration::from_millis(500);

/// Most acks written by one statement.
const ACK_BATCH: usize = 2000;

/// Where a producer's acks go: written with its next claim (SQLite: one writer at a time),
/// or handed to the worker's acker task (PostgreSQL: claims never wait for ack fsyncs).
enum AckPath {
    Inline(Vec<Ack>),
    Acker(mpsc::UnboundedSender<Ack>),
}

impl AckPath {
    fn push(&mut self, ack: Ack) {
        match self {
            Self::Inline(pending) => pending.push(ack),
            // The acker outlives every producer; a send can only fail after a hard stop.
            Self::Acker(tx) => {
                let _ = tx.send(ack);
            }
        }
    }

    fn pending(&self) -> &[Ack] {
        match self {
            Self::Inline(pending) => pending,
            Self::Acker(_) => &[],
        }
    }
}

/// One queue's claim loop. Returns the number of jobs abandoned at shutdown.
async fn produce(
    shared: Arc<Shared>,
    queue: String,
    concurrency: usize,
    mut acks: AckPath,
) -> usize {
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<Ack>();
    let wake = shared
        .wake
        .get(&queue)
        .cloned()
        .unwrap_or_else(|| Arc::new(Notify::new()));
    let role = Role::Claims {
        durable: shared.settings.durable_claims,
    };
    let mut in_flight: HashMap<i64, (i32, i32)> = HashMap::new();
    let mut maybe_more = true;
    let mut conn: Option<Conn> = None;
    let mut backoff = Duration::from_millis(20);
    loop {
        while let Ok(ack) = ack_rx.try_recv() {
            in_flight.remove(&ack.id());
            acks.push(ack);
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
            while let Ok(ack) = ack_rx.try_recv() {
                in_flight.remove(&ack.id());
                acks.push(ack);
                more = true;
            }
            if !more {
                break;
            }
        }
        if shared.stop.is_cancelled() {
            return 0;
        }
        if shared.abandon.is_cancelled() {
            // Tokens have fired: give handlers a moment to return their own outcome.
            let deadline = tokio::time::Instant::now() + ABANDON_WAIT;
            while !in_flight.is_empty() {
                tokio::select! {
                    ack = ack_rx.recv() => match ack {
                        Some(ack) => {
                            in_flight.remove(&ack.id());
                            acks.push(ack);
                        }
                        None => break,
                    },
                    _ = tokio::time::sleep_until(deadline) => break,
                }
            }
            let abandoned = in_flight.len();
            for (id, (attempt, max_attempts)) in in_flight.drain() {
                acks.push(abandon_ack(&shared.node, id, attempt, max_attempts));
            }
            if let AckPath::Inline(pending) = &acks {
                flush_final(&shared, &mut conn, pending).await;
            }
            return abandoned;
        }
        let stopping = shared.stop_claiming.is_cancelled();
        if stopping && in_flight.is_empty() {
            if let AckPath::Inline(pending) = &acks {
                flush_final(&shared, &mut conn, pending).await;
            }
            return 0;
        }
        let want = if stopping || !maybe_more {
            0
        } else {
            concurrency.saturating_sub(in_flight.len())
        };
        if !acks.pending().is_empty() || want > 0 {
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
            };
            match engine::ack_and_claim(&shared.db, c, acks.pending(), Some(spec)).await {
                Ok(claimed) => {
                    backoff = Duration::from_millis(20);
                    if let AckPath::Inline(pending) = &mut acks {
                        shared.forget(pending);
                        pending.clear();
                    }
                    if claimed.len() < want {
                        maybe_more = false;
                    }
                    for job in claimed {
                        in_flight.insert(job.id, (job.attempt, job.max_attempts));
                        start_job(&shared, job, ack_tx.clone());
                    }
                }
                Err(e) if rejected(&e) && !acks.pending().is_empty() => {
                    tracing::warn!(error = %e, queue, "flowstone-queue: acks rejected; writing them one by one");
                    if let AckPath::Inline(pending) = &mut acks {
                        isolate_poison(&shared, c, pending).await;
                        pending.clear();
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, queue, "flowstone-queue: claim failed; reconnecting");
                    if shared.db.single_connection() {
                        // `discard` below would close the only connection of an in-memory
                        // database, and with it the data: return it instead.
                        conn = None;
                    }
                    if let Some(c) = conn.take() {
                        c.discard();
                    }
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
            ack = ack_rx.recv() => {
                if let Some(ack) = ack {
                    in_flight.remove(&ack.id());
                    acks.push(ack);
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

/// Writes acks in batches on its own connection (PostgreSQL). Ends when every producer
/// has ended and everything received is written (or, after a hard stop, given up).
async fn acker(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Ack>) {
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
            Ok(mut c) => match engine::ack_and_claim(&shared.db, &mut c, &batch, None).await {
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
async fn flush_final(shared: &Shared, conn: &mut Option<Conn>, acks: &[Ack]) {
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
        match engine::ack_and_claim(&shared.db, &mut c, acks, None).await {
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

fn abandon_ack(node: &str, id: i64, attempt: i32, max_attempts: i32) -> Ack {
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
            give_back: 0,
            snoozed: 0,
            unhandled: 0,
            error: Some(format!(
                "node {node} shut down before attempt {attempt} finished"
            )),
        },
    }
}

fn start_job(shared: &Arc<Shared>, job: Claimed, ack_tx: mpsc::UnboundedSender<Ack>) {
    let Some(handler) = shared.handlers.get(&job.kind).cloned() else {
        // Rolling deploys: a node that knows this kind will take it. Give the attempt
        // back, count it, and discard only past the limit.
        let limit = shared.settings.unknown_kind_limit;
        let discard = job.unhandled + 1 >= limit;
        let to = Transition {
            state: if discard {
                JobState::Discarded
            } else {
                JobState::Available
            },
            delay: (!discard).then_some(shared.settings.unknown_kind_delay),
            give_back: i32::from(!discard),
            snoozed: 0,
            unhandled: 1,
            error: discard.then(|| {
                format!(
                    "no handler for job kind `{}`: {limit} workers claimed it and none has a \
                     handler registered for that kind",
                    job.kind
                )
            }),
        };
        let _ = ack_tx.send(Ack::Transition {
            id: job.id,
            attempt: job.attempt,
            to,
        });
        return;
    };
    let cancel = shared.abandon.child_token();
    shared.running().insert(
        job.id,
        Running {
            attempt: job.attempt,
            cancel: cancel.clone(),
        },
    );
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
    tokio::spawn(async move {
        let run = std::panic::catch_unwind(AssertUnwindSafe(|| (handler.run)(ctx)));
        let outcome = match run {
            Ok(fut) => AssertUnwindSafe(fut)
                .catch_unwind()
                .await
                .unwrap_or_else(|p| {
                    Outcome::retry(format!("handler panicked: {}", panic_text(&p)))
                }),
            Err(p) => Outcome::retry(format!("handler panicked: {}", panic_text(&p))),
        };
        let _ = ack_tx.send(outcome_ack(
            job.id,
            job.attempt,
            job.max_attempts,
            outcome,
            &handler.options,
        ));
    });
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

fn outcome_ack(
    id: i64,
    attempt: i32,
    max_attempts: i32,
    outcome: Outcome,
    options: &HandlerOptions,
) -> Ack {
    let transition = |state, delay: Option<Duration>, give_back, snoozed, error: Option<String>| {
        Ack::Transition {
            id,
            attempt,
            to: Transition {
                state,
                delay: delay.map(|d| d.min(MAX_DELAY)),
                give_back,
                snoozed,
                unhandled: 0,
                error: error.map(scrub_text),
            },
        }
    };
    match outcome {
        Outcome::Complete(result) => Ack::Complete {
            id,
            attempt,
            result: result.map(|mut v| {
                scrub_value(&mut v);
                v.to_string()
            }),
        },
        Outcome::Retry { error, backoff } if attempt < max_attempts => {
            let delay = backoff.unwrap_or_else(|| options.backoff.delay(attempt));
            transition(JobState::Retryable, Some(delay), 0, 0, Some(error))
        }
        Outcome::Retry { error, .. } => transition(JobState::Discarded, None, 0, 0, Some(error)),
        Outcome::Discard { error } => transition(JobState::Discarded, None, 0, 0, Some(error)),
        Outcome::Snooze(after) => transition(JobState::Scheduled, Some(after), 1, 1, None),
        Outcome::Cancelled { reason } => transition(JobState::Cancelled, None, 0, 0, Some(reason)),
    }
}

/// Longest retry or snooze delay stored (longer ones are cut to this): keeps `scheduled_at`
/// inside every engine's date range.
const MAX_DELAY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Text the databases refuse (PostgreSQL stores no NUL character) would make an ack fail
/// forever: replace NULs.
fn scrub_text(s: String) -> String {
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

/// After a batch of acks was rejected by the database (not a lost connection): writes them
/// one by one, so one bad ack cannot wedge the queue. An ack the database still rejects is
/// replaced by discarding its job with the database's reason; if even that fails, it is
/// dropped (logged) and the rescue machinery deals with the job.
async fn isolate_poison(shared: &Shared, conn: &mut Conn, acks: &[Ack]) {
    for ack in acks {
        let single = std::slice::from_ref(ack);
        let Err(e) = engine::ack_and_claim(&shared.db, conn, single, None).await else {
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
        if let Err(e) =
            engine::ack_and_claim(&shared.db, conn, std::slice::from_ref(&fallback), None).await
        {
            tracing::error!(error = %e, job = id, "flowstone-queue: dropping an ack the database rejects");
        }
    }
    shared.forget(acks);
}

/// True when the database answered with an error (as opposed to a lost connection).
fn rejected(e: &Error) -> bool {
    matches!(e, Error::Database(sqlx::Error::Database(_)))
}

/// Turns events into wake-ups and cancels; polls running jobs' rows where signals may not
/// arrive (SQLite across processes, after a reconnect).
async fn signals(shared: Arc<Shared>, mut events: broadcast::Receiver<Event>) {
    let mut tick = tokio::time::interval(shared.settings.cancel_poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let recheck = tokio::select! {
            _ = shared.stop.cancelled() => return,
            event = events.recv() => match event {
                Ok(Event::Inserted(queue)) => {
                    if let Some(n) = shared.wake.get(&*queue) {
                        n.notify_one();
                    }
                    false
                }
                Ok(Event::Finished(ids)) => {
                    shared.cancel_running(&ids);
                    false
                }
                Ok(Event::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    shared.wake_all();
                    true
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => true,
        };
        if recheck {
            check_running(&shared).await;
        }
    }
}

async fn check_running(shared: &Shared) {
    let running: Vec<(i64, i32)> = shared
        .running()
        .iter()
        .map(|(id, r)| (*id, r.attempt))
        .collect();
    match engine::no_longer_ours(&shared.db, &shared.node, &running).await {
        Ok(ids) => shared.cancel_running(&ids),
        Err(e) => tracing::debug!(error = %e, "flowstone-queue: cancel poll failed"),
    }
}

async fn heartbeats(shared: Arc<Shared>) {
    while pause(&shared.stop, shared.settings.heartbeat_interval).await {
        if let Err(e) = engine::heartbeat(&shared.db, &shared.node).await {
            tracing::warn!(error = %e, "flowstone-queue: heartbeat failed");
        }
    }
}

async fn maintenance(shared: Arc<Shared>) {
    let s = shared.settings.clone();
    let mut since_prune = Duration::ZERO;
    while pause(&shared.stop, s.rescue_interval).await {
        match engine::rescue(&shared.db, s.rescue_after).await {
            Ok(ids) if !ids.is_empty() => {
                tracing::info!(
                    count = ids.len(),
                    "flowstone-queue: rescued jobs of dead nodes"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "flowstone-queue: rescue failed"),
        }
        sweep_orphans(&shared).await;
        since_prune += s.rescue_interval;
        if let Some(after) = s.prune_after
            && since_prune >= s.prune_interval
        {
            since_prune = Duration::ZERO;
            if let Err(e) = engine::prune(&shared.db, after, 10_000).await {
                tracing::warn!(error = %e, "flowstone-queue: prune failed");
            }
        }
    }
}

/// Jobs the database says this node executes but this node does not know about (a claim
/// whose reply was lost with a dropped connection): give them back, attempt returned.
async fn sweep_orphans(shared: &Shared) {
    let rows =
        match engine::executing_on(&shared.db, &shared.node, shared.settings.rescue_after).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::debug!(error = %e, "flowstone-queue: orphan sweep failed");
                return;
            }
        };
    let orphans: Vec<(i64, i32)> = {
        let running = shared.running();
        rows.into_iter()
            .filter(|(id, _)| !running.contains_key(id))
            .collect()
    };
    for (id, attempt) in orphans {
        let to = Transition {
            state: JobState::Available,
            delay: Some(Duration::ZERO),
            give_back: 1,
            snoozed: 0,
            unhandled: 0,
            error: None,
        };
        if let Err(e) = engine::transition(&shared.db, id, attempt, &to).await {
            tracing::debug!(error = %e, "flowstone-queue: orphan give-back failed");
        }
    }
}
