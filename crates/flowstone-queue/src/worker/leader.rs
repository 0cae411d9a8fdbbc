//! Leadership: the lease keeper, which takes or renews [`MAINTENANCE_LEASE`] every
//! `lease_renew_interval` and tells the worker's tasks whether this node leads, and the
//! leader duties, each a task that runs its round every `interval` while this node leads.
//! The built-in duties (rescue of dead nodes' jobs, pruning) and the application's
//! ([`WorkerBuilder::leader_duty`](super::WorkerBuilder::leader_duty)) run the same way, so
//! one node in the cluster does each at a time and another takes over when it stops.

use std::fmt::Display;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Shared, pause};
use crate::database::Database;
use crate::lease::{self, MAINTENANCE_LEASE};

/// One round of a duty; its error is only logged, so it is text by then.
type Round = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A periodic duty that only the lease holder runs.
pub(super) struct LeaderDuty {
    /// Shown in logs.
    pub(super) name: String,
    /// Pause between the end of one round and the start of the next.
    pub(super) interval: Duration,
    run: Arc<dyn Fn(Database) -> Round + Send + Sync>,
}

impl LeaderDuty {
    pub(super) fn new<F, Fut, E>(name: impl Into<String>, interval: Duration, f: F) -> Self
    where
        F: Fn(Database) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display + 'static,
    {
        let run = Arc::new(move |db: Database| -> Round {
            let round = f(db);
            Box::pin(async move { round.await.map_err(|e| e.to_string()) })
        });
        Self {
            name: name.into(),
            interval,
            run,
        }
    }
}

/// Takes or renews the lease until the worker stops. A renewal that fails (database
/// unreachable) counts as lost at once: better no leader for a while than two.
pub(super) async fn keep_lease(shared: Arc<Shared>) {
    let s = &shared.settings;
    loop {
        let held = match lease::acquire(&shared.db, MAINTENANCE_LEASE, &shared.node, s.lease_ttl)
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, "flowstone-queue: renewing the maintenance lease failed");
                false
            }
        };
        let was = shared.leader.swap(held, Ordering::SeqCst);
        if held != was {
            tracing::info!(
                node = %shared.node,
                leader = held,
                "flowstone-queue: this node {} the maintenance lease",
                if held { "took" } else { "lost" }
            );
        }
        if !pause(&shared.stop, s.lease_renew_interval).await {
            return;
        }
    }
}

/// Runs `duty` every `interval` while this node holds the lease. A round that fails is
/// logged and the next round comes as usual; a round under way at shutdown is finished.
pub(super) async fn run_duty(shared: Arc<Shared>, duty: LeaderDuty) {
    while pause(&shared.stop, duty.interval).await {
        if !shared.leader.load(Ordering::SeqCst) {
            continue;
        }
        if let Err(error) = (duty.run)(shared.db.clone()).await {
            tracing::warn!(duty = %duty.name, %error, "flowstone-queue: leader duty failed");
        }
    }
}

/// At graceful shutdown, after the lease keeper has stopped: hands the lease over at once
/// rather than after its TTL.
pub(super) async fn resign(shared: &Shared) {
    if let Err(e) = lease::release(&shared.db, MAINTENANCE_LEASE, &shared.node).await {
        tracing::warn!(error = %e, "flowstone-queue: could not release the maintenance lease");
    }
    shared.leader.store(false, Ordering::SeqCst);
}
