//! Running automation: one evaluator at a time per database, holding the lease
//! [`AUTOMATION_LEASE`]; the others stand by and take over within the lease's time when the
//! leader stops renewing it. Without a database there is one process, which always leads.
//!
//! The leader evaluates:
//! - at once when this process records a successful materialization, or when a job finishes
//!   (this process, other handles on the same SQLite file, any process on PostgreSQL through
//!   `LISTEN/NOTIFY`): the eager conditions only, reading just the new materializations;
//! - at each schedule tick and at least every [`Automation::poll`] (default 1 s): everything.
//!   Other processes' materializations on SQLite are seen here.
//!
//! Every ten seconds it also resumes automation's backfills whose process died (see
//! [`super::launch`]) and, hourly, prunes tick records older than [`Automation::keep_ticks`].

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::evaluate::{Evaluator, RoundReport};
use super::launch::Launcher;
use crate::api::FlowStone;
use crate::error::Result;
use crate::executor::Strategy;

/// The lease the automation leader holds.
pub const AUTOMATION_LEASE: &str = "flowstone.automation";

const SWEEP_EVERY: Duration = Duration::from_secs(10);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Configures automation for one process; from [`FlowStone::automation`].
#[derive(Clone)]
#[must_use = "automation does nothing until .start() or .run_until(..)"]
pub struct Automation {
    fs: FlowStone,
    node: String,
    /// Whether [`Automation::node`] named it (a worker's name is used otherwise).
    named: bool,
    lease_ttl: Duration,
    poll: Duration,
    keep_ticks: Duration,
    executor: Option<Strategy>,
    /// The evaluator [`Automation::evaluate_once`] and [`Automation::evaluate_incremental`]
    /// keep between calls, as a leader keeps its own.
    manual: std::sync::Arc<tokio::sync::Mutex<Option<Evaluator>>>,
}

impl Automation {
    pub(crate) fn new(fs: FlowStone) -> Self {
        Automation {
            fs,
            node: crate::backfill::this_process(),
            named: false,
            lease_ttl: Duration::from_secs(15),
            poll: Duration::from_secs(1),
            keep_ticks: Duration::from_secs(7 * 24 * 3600),
            executor: None,
            manual: Default::default(),
        }
    }

    /// This process's name as the lease holder (default: the worker's node name when a
    /// worker runs it, else host, process id and a suffix).
    pub fn node(mut self, node: impl Into<String>) -> Self {
        self.node = node.into();
        self.named = true;
        self
    }

    /// Named `node` unless [`Automation::node`] named it already (a worker passes its own).
    pub(crate) fn default_node(self, node: &str) -> Self {
        if self.named {
            self
        } else {
            Automation {
                node: node.to_owned(),
                ..self
            }
        }
    }

    /// How long the lease lasts unless renewed (default 15 s): how soon a standby takes
    /// over from a leader that died. It is renewed every third of that.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// The longest time between two full evaluations (default 1 s).
    pub fn poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// How long tick records are kept (default 7 days).
    pub fn keep_ticks(mut self, keep: Duration) -> Self {
        self.keep_ticks = keep;
        self
    }

    /// The executor launches run on (default: each asset's own, which with a database is
    /// the queue).
    pub fn executor(mut self, executor: Strategy) -> Self {
        self.executor = Some(executor);
        self
    }

    /// One full evaluation as of `now`, in this process, without the lease: for tools and
    /// tests. What it launches starts on tasks of this process.
    pub async fn evaluate_once(&self, now: DateTime<Utc>) -> RoundReport {
        let launcher = Launcher::new(self.fs.clone(), self.executor.clone());
        Evaluator::new(self.fs.clone(), launcher)
            .round(now, true)
            .await
    }

    /// Only the eager conditions as of `now`, as a wake-up by a new materialization runs
    /// them (reading just the materializations since the last look).
    pub async fn evaluate_incremental(&self, now: DateTime<Utc>) -> RoundReport {
        self.manual_round(now, false).await
    }

    async fn manual_round(&self, now: DateTime<Utc>, full: bool) -> RoundReport {
        let mut evaluator = self.manual.lock().await;
        evaluator
            .get_or_insert_with(|| self.evaluator())
            .round(now, full)
            .await
    }

    fn evaluator(&self) -> Evaluator {
        let launcher = Launcher::new(self.fs.clone(), self.executor.clone());
        Evaluator::new(self.fs.clone(), launcher)
    }

    /// Starts evaluating in the background.
    pub fn start(self) -> Result<AutomationHandle> {
        self.check()?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(self.run(stop.clone()));
        Ok(AutomationHandle { stop, task })
    }

    /// Evaluates until `signal` completes.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<()> {
        let handle = self.start()?;
        signal.await;
        handle.stop().await;
        Ok(())
    }

    fn check(&self) -> Result<()> {
        if self.lease_ttl < Duration::from_millis(300) || self.poll.is_zero() {
            return Err(crate::error::Error::invalid_options(format!(
                "automation needs a lease TTL of at least 300 ms (got {:?}) and a poll interval \
                 above zero (got {:?})",
                self.lease_ttl, self.poll
            )));
        }
        Ok(())
    }

    /// The evaluator loop, until `stop` fires (a worker runs it as a service).
    pub(crate) async fn run(self, stop: CancellationToken) {
        let mut evaluator = self.evaluator();
        let mut materialized = self.fs.runtime().storage().materialized();
        #[cfg(feature = "database")]
        let mut finished = match self.fs.database() {
            Some(db) => Some(db.finished_jobs().await),
            None => None,
        };
        let renew = self.lease_ttl / 3;
        let mut leading = false;
        let mut lease_checked: Option<Instant> = None;
        let mut last_full: Option<Instant> = None;
        let mut last_sweep: Option<Instant> = None;
        let mut last_prune: Option<Instant> = None;
        let mut woken = false;
        loop {
            if lease_checked.is_none_or(|at| at.elapsed() >= renew) {
                let was = leading;
                leading = self.hold_lease().await;
                lease_checked = Some(Instant::now());
                if leading != was {
                    tracing::info!(node = %self.node, leader = leading, "automation leadership changed");
                    // A new leader looks at everything at once.
                    last_full = None;
                }
            }
            if leading {
                let full = last_full.is_none_or(|at| at.elapsed() >= self.poll) || !woken;
                let now = Utc::now();
                evaluator.round(now, full).await;
                if full {
                    last_full = Some(Instant::now());
                }
                if last_sweep.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
                    last_sweep = Some(Instant::now());
                    if let Err(err) = evaluator.launcher().sweep().await {
                        tracing::warn!(error = %err, "automation: resuming orphaned backfills failed");
                    }
                }
                if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                    last_prune = Some(Instant::now());
                    self.prune(now).await;
                }
            }
            let wait = self.wait(leading, renew);
            woken = tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => false,
                changed = materialized.changed() => changed.is_ok(),
                () = finished_changed(
                    #[cfg(feature = "database")]
                    &mut finished,
                ) => true,
            };
        }
        self.release_lease().await;
    }

    /// How long to sleep: until the next schedule tick, the next full round or the next
    /// lease renewal, whichever is first.
    fn wait(&self, leading: bool, renew: Duration) -> Duration {
        let mut wait = renew.min(self.poll);
        if leading {
            let now = Utc::now();
            for schedule in self.fs.schedules() {
                if let Ok(ticks) = schedule.ticks_after(now, 1)
                    && let Some(next) = ticks.first()
                    && let Ok(until) = (next.at - now).to_std()
                {
                    wait = wait.min(until + Duration::from_millis(1));
                }
            }
        }
        wait
    }

    async fn prune(&self, now: DateTime<Utc>) {
        let Ok(keep) = chrono::TimeDelta::from_std(self.keep_ticks) else {
            return;
        };
        match self.fs.automation_store().prune_ticks(now - keep).await {
            Ok(n) if n > 0 => tracing::info!(ticks = n, "automation pruned old tick records"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "automation: pruning tick records failed"),
        }
    }

    /// Takes or renews the lease; a database that cannot answer means not leading.
    async fn hold_lease(&self) -> bool {
        #[cfg(feature = "database")]
        if let Some(db) = self.fs.database() {
            return match flowstone_queue::lease::acquire(
                db,
                AUTOMATION_LEASE,
                &self.node,
                self.lease_ttl,
            )
            .await
            {
                Ok(held) => held,
                Err(err) => {
                    tracing::warn!(error = %err, "automation: renewing the lease failed");
                    false
                }
            };
        }
        true
    }

    async fn release_lease(&self) {
        #[cfg(feature = "database")]
        if let Some(db) = self.fs.database()
            && let Err(err) =
                flowstone_queue::lease::release(db, AUTOMATION_LEASE, &self.node).await
        {
            tracing::warn!(error = %err, "automation: releasing the lease failed");
        }
    }
}

/// Resolves when a queue job finished; never without a database.
async fn finished_changed(
    #[cfg(feature = "database")] finished: &mut Option<flowstone_queue::FinishedJobs>,
) {
    #[cfg(feature = "database")]
    if let Some(finished) = finished {
        finished.changed().await;
        return;
    }
    std::future::pending().await
}

/// Automation running in the background; from [`Automation::start`].
#[must_use = "dropping the handle leaves automation running; call .stop().await"]
pub struct AutomationHandle {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl AutomationHandle {
    /// Stops evaluating and releases the lease (a standby takes over at once). Backfills it
    /// launched go on in this process until it exits.
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(e) = self.task.await {
            // Nothing is left to hand the lease over: a standby takes it when it lapses.
            tracing::error!(error = %e, "flowstone: the automation task ended by a panic");
        }
    }
}
