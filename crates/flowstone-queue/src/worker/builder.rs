//! Configuring and starting a worker: [`Worker::builder`], the [`WorkerBuilder`] that
//! collects queues, handlers and settings, the checks run before anything starts (queue
//! names, concurrency, settings), and `start`, which migrates, registers the node and
//! spawns the worker's tasks.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::acker::{AckPath, acker};
use super::handle::WorkerHandle;
use super::leader::{self, LeaderDuty};
use super::producer::produce;
use super::settings::WorkerSettings;
use super::{Shared, database_file, heartbeat, prune, rescue, signals};
use crate::database::Database;
use crate::engine;
use crate::error::{Error, Result};
use crate::handler::{self, Handler, HandlerOptions, JobContext, Outcome};

/// The most jobs one queue runs at once on one node; larger concurrencies are clamped to it.
/// About a million: beyond what a node can run, and inside every integer type a claim's limit
/// passes through (`i32` parameters included).
pub const MAX_CONCURRENCY: usize = 1 << 20;

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
            leader_duties: Vec::new(),
            services: Vec::new(),
            settings: WorkerSettings::default(),
        }
    }
}

/// Configures and starts a worker.
///
/// A running worker holds, from the database's pool, one connection per queue plus one for
/// acks (PostgreSQL) and briefly one each for heartbeats, the lease and the maintenance
/// duties (orphan sweep, and on the leader rescue, pruning and leader duties); PostgreSQL
/// also opens one `LISTEN` connection per [`Database`]. Size the pool
/// ([`ConnectOptions::max_connections`](crate::ConnectOptions)) above the number of queues + 3.
pub struct WorkerBuilder {
    db: Database,
    node: Option<String>,
    queues: Vec<(String, usize)>,
    known_queues: Option<Vec<String>>,
    handlers: HashMap<String, Handler>,
    leader_duties: Vec<LeaderDuty>,
    services: Vec<Service>,
    settings: WorkerSettings,
}

/// A task of the application that lives as long as the worker (see [`WorkerBuilder::service`]).
type Service = Box<dyn FnOnce(Database, CancellationToken) -> BoxFuture<'static, ()> + Send>;

impl WorkerBuilder {
    /// Runs `queue` with at most `concurrency` jobs at once on this node: at least 1 (0 is
    /// refused by `start`), at most [`MAX_CONCURRENCY`] (larger values are clamped, so a claim's
    /// `LIMIT` never overflows).
    pub fn queue(mut self, queue: impl Into<String>, concurrency: usize) -> Self {
        self.queues
            .push((queue.into(), concurrency.min(MAX_CONCURRENCY)));
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

    /// Registers a periodic duty that one node of the cluster runs at a time: `f` is called
    /// with the database every `interval` on the node holding the maintenance lease
    /// ([`MAINTENANCE_LEASE`](crate::lease::MAINTENANCE_LEASE)), and on no other. When that
    /// node stops, another takes over (at once after a graceful shutdown, after
    /// `lease_ttl` otherwise). An error is logged as a warning naming the duty and the next
    /// round comes as usual; it never stops the worker. A round under way at shutdown is
    /// awaited. A leader that stalls past its lease may overlap with the next for one
    /// round: make duties safe to repeat.
    pub fn leader_duty<F, Fut, E>(
        mut self,
        name: impl Into<String>,
        interval: Duration,
        f: F,
    ) -> Self
    where
        F: Fn(Database) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: std::fmt::Display + 'static,
    {
        self.leader_duties.push(LeaderDuty::new(name, interval, f));
        self
    }

    /// Runs `f` beside the worker for as long as it runs: it is started with the database and
    /// a token that fires at shutdown once the jobs have finished (or at once when the handle
    /// is dropped), and shutdown waits for it to return. For the application's long-lived
    /// duties that are not periodic rounds, such as an evaluator that holds a lease of its own.
    pub fn service<F, Fut>(mut self, f: F) -> Self
    where
        F: FnOnce(Database, CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.services
            .push(Box::new(move |db, stop| Box::pin(f(db, stop))));
        self
    }

    fn validate(&self) -> Result<()> {
        if self.queues.is_empty() {
            return Err(Error::InvalidConfig(
                "no queues: add at least one with `.queue(name, concurrency)`".into(),
            ));
        }
        for (i, (name, concurrency)) in self.queues.iter().enumerate() {
            crate::job::validate_queue_name(name)?;
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
        for (i, duty) in self.leader_duties.iter().enumerate() {
            if duty.name.is_empty() || BUILT_IN_DUTIES.contains(&duty.name.as_str()) {
                return Err(Error::InvalidConfig(format!(
                    "leader duty name `{}` is empty or taken by a built-in duty ({}): pick \
                     another name",
                    duty.name,
                    BUILT_IN_DUTIES.join(", ")
                )));
            }
            if self.leader_duties[..i].iter().any(|d| d.name == duty.name) {
                return Err(Error::InvalidConfig(format!(
                    "leader duty `{}` is registered twice",
                    duty.name
                )));
            }
            if duty.interval.is_zero() {
                return Err(Error::InvalidConfig(format!(
                    "leader duty `{}` has a zero interval: use a positive duration",
                    duty.name
                )));
            }
        }
        self.settings.validate()
    }

    /// Validates the config, applies the queue's migrations if needed, registers this
    /// node and starts claiming.
    pub async fn start(self) -> Result<WorkerHandle> {
        self.validate()?;
        crate::migrate::QUEUE_MIGRATIONS.run(&self.db).await?;
        let node: Arc<str> = self.node.unwrap_or_else(default_node_name).into();
        let queues: Vec<&str> = self.queues.iter().map(|(q, _)| q.as_str()).collect();
        let mut kinds: Vec<String> = self.handlers.keys().cloned().collect();
        kinds.sort_unstable();
        engine::heartbeat(&self.db, &node, &queues, &kinds).await?;
        let events = self.db.subscribe().await;
        let root = CancellationToken::new();
        let shared = Arc::new(Shared {
            db: self.db,
            node,
            handlers: self.handlers,
            kinds_json: serde_json::to_string(&kinds)?,
            kinds,
            settings: self.settings,
            running: Mutex::new(HashMap::new()),
            wake: self
                .queues
                .iter()
                .map(|(q, _)| (q.clone(), Arc::new(Notify::new())))
                .collect(),
            leader: AtomicBool::new(false),
            stop_claiming: root.child_token(),
            abandon: root.child_token(),
            stop: root.clone(),
            counters: Default::default(),
            fatal: std::sync::OnceLock::new(),
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
        let mut services = vec![
            tokio::spawn(signals::signals(Arc::clone(&shared), events)),
            tokio::spawn(heartbeat::heartbeats(Arc::clone(&shared))),
            tokio::spawn(rescue::sweeper(Arc::clone(&shared))),
            tokio::spawn(leader::keep_lease(Arc::clone(&shared))),
        ];
        if let Some(path) = database_file::watched_file(&shared) {
            services.push(tokio::spawn(database_file::watch(
                Arc::clone(&shared),
                path,
            )));
        }
        let built_in = [
            Some(rescue::rescue_duty(&shared.settings)),
            Some(rescue::unserved_duty(&shared.settings)),
            Some(rescue::blocked_duty(&shared.settings)),
            prune::prune_duty(&shared.settings),
        ];
        for duty in built_in.into_iter().flatten().chain(self.leader_duties) {
            services.push(tokio::spawn(leader::run_duty(Arc::clone(&shared), duty)));
        }
        for service in self.services {
            services.push(tokio::spawn(service(
                shared.db.clone(),
                shared.stop.clone(),
            )));
        }
        Ok(WorkerHandle::new(shared, producers, acker, services))
    }
}

/// Names of the built-in leader duties (see `rescue` and `prune`), which the application's
/// duties may not take.
const BUILT_IN_DUTIES: [&str; 4] = ["rescue", "unserved", "blocked", "prune"];

/// A name for this process that no other process shares: `host-pid-suffix`. What a worker
/// is called unless it is given a name, and what FlowStone records as a backfill's owner.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".into());
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &id[id.len() - 8..])
}
