//! Launching: what schedules, sensors and conditions start is a stored backfill (its
//! selection at the partitions asked for), started in this process and followed to its end.
//!
//! A launch happens once per key, whichever leader does it and however often it is asked:
//!
//! 1. the keys are claimed for a fresh backfill id ([`AutomationStore::claim_launches`]);
//! 2. the backfill record is stored as `running` by this process, for the keys this call
//!    claimed;
//! 3. it is started (on the queue: its rows inserted, then followed).
//!
//! A leader that dies after 1 leaves keys whose backfill is not stored: the next evaluation
//! asks for the same keys, finds them claimed, stores that backfill as `requested`, and
//! starts it if it can take it ([`BackfillStore::take`]: of two leaders at once, one does).
//! One that dies after 2 or 3 leaves a backfill `running` with nobody writing its progress:
//! [`Launcher::sweep`] on the next leader takes and resumes it, which on the queue follows
//! the rows it already has rather than inserting them again.
//!
//! [`AutomationStore::claim_launches`]: super::AutomationStore::claim_launches
//! [`BackfillStore::take`]: crate::backfill::BackfillStore::take

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{TimeDelta, Utc};

use super::tick::Origin;
use crate::api::FlowStone;
use crate::backfill::{
    BackfillCounts, BackfillRecord, BackfillRequest, BackfillStatus, StoredSource,
};
use crate::error::Result;
use crate::executor::Strategy;
use crate::ids::BackfillId;
use crate::partition::Partition;

/// A running backfill whose progress has not been written for this long is taken to have
/// lost its process (a live one writes every half second).
pub(crate) const STALE_AFTER: TimeDelta = TimeDelta::seconds(30);

/// What one launch call asks for: `selection` at these partitions of `anchor`, each under its
/// own key.
pub(crate) struct LaunchRequest<'a> {
    pub origin: Origin,
    pub name: &'a str,
    pub selection: &'a str,
    pub anchor: &'a str,
    pub items: Vec<(String, Partition)>,
    /// The executor this definition asks for, over the launcher's.
    pub executor: Option<&'a Strategy>,
}

/// What a launch call did.
#[derive(Debug, Default)]
pub(crate) struct Launched {
    /// Partitions launched under keys this call claimed.
    pub new: usize,
    /// The backfills holding the keys (new or earlier).
    pub backfills: Vec<BackfillId>,
}

/// Starts backfills for automation and remembers which run in this process.
#[derive(Clone)]
pub(crate) struct Launcher {
    fs: FlowStone,
    executor: Option<Strategy>,
    running: Arc<Mutex<HashSet<BackfillId>>>,
    /// Taken by this process, to be run once the round that launched them has recorded its
    /// ticks ([`Launcher::run_taken`]): the round is not slowed by what it launched.
    taken: Arc<Mutex<Vec<BackfillId>>>,
}

impl Launcher {
    pub(crate) fn new(fs: FlowStone, executor: Option<Strategy>) -> Self {
        Launcher {
            fs,
            executor,
            running: Arc::default(),
            taken: Arc::default(),
        }
    }

    /// Launches what `request` asks for under keys not launched before; finishes starting
    /// the backfills of keys an earlier leader claimed but did not start.
    pub(crate) async fn launch(&self, request: LaunchRequest<'_>) -> Result<Launched> {
        let automation = self.fs.automation_store();
        let keys: Vec<String> = request.items.iter().map(|(k, _)| k.clone()).collect();
        let fresh = BackfillId::new();
        let holders = automation
            .claim_launches(request.origin.as_str(), request.name, &keys, fresh)
            .await?;
        let mut by_backfill: BTreeMap<BackfillId, Vec<Partition>> = BTreeMap::new();
        for ((_, partition), holder) in request.items.into_iter().zip(holders) {
            by_backfill.entry(holder).or_default().push(partition);
        }
        let mut launched = Launched::default();
        for (id, partitions) in by_backfill {
            if id == fresh {
                launched.new += partitions.len();
            }
            let stored = BackfillRequest {
                selection: request.selection.to_owned(),
                anchor: Some(request.anchor.to_owned()),
                source: StoredSource::Partitions(partitions),
                executor: request
                    .executor
                    .or(self.executor.as_ref())
                    .map(Strategy::name),
                force: true,
                retry_failed: false,
                max_concurrency: None,
                launched_by: Some(format!("{}:{}", request.origin, request.name)),
            };
            self.ensure_started(id, id == fresh, stored).await?;
            launched.backfills.push(id);
        }
        Ok(launched)
    }

    /// Stores backfill `id` unless it is stored, and starts it unless someone runs it. One
    /// this call `claimed` is stored as running here and started at once; another's (an
    /// earlier leader claimed its keys and may have died before storing it) is stored as
    /// requested and started only if it can be taken.
    async fn ensure_started(
        &self,
        id: BackfillId,
        claimed: bool,
        request: BackfillRequest,
    ) -> Result<()> {
        let now = Utc::now();
        let owner = crate::backfill::this_process();
        let record = BackfillRecord {
            id,
            request,
            status: if claimed {
                BackfillStatus::Running
            } else {
                BackfillStatus::Requested
            },
            counts: BackfillCounts::default(),
            created_at: now,
            updated_at: now,
            finished_at: None,
            owner: claimed.then_some(owner),
        };
        let stored = self
            .fs
            .runtime()
            .storage()
            .backfills()
            .create(&record)
            .await?;
        if claimed && stored {
            if self.lock().insert(id) {
                self.run(id);
            }
            return Ok(());
        }
        self.start(id).await.map(drop)
    }

    /// Resumes automation's backfills that nobody runs: requested but not started, or
    /// running with no progress written for [`STALE_AFTER`].
    pub(crate) async fn sweep(&self) -> Result<usize> {
        let mut started = 0;
        for record in self.fs.runtime().storage().backfills().unfinished().await? {
            if record.request.launched_by.is_some() && self.start(record.id).await? {
                started += 1;
            }
        }
        self.run_taken();
        Ok(started)
    }

    /// Runs backfill `id` on a task of its own if it is free: not run by this process, and
    /// taken in the store (requested, or running without progress for [`STALE_AFTER`]), so
    /// that of two leaders at once only one runs it. Returns whether it started it.
    async fn start(&self, id: BackfillId) -> Result<bool> {
        if !self.lock().insert(id) {
            return Ok(false);
        }
        let owner = crate::backfill::this_process();
        let taken = self
            .fs
            .runtime()
            .storage()
            .backfills()
            .take(id, &owner, STALE_AFTER)
            .await;
        if !matches!(taken, Ok(true)) {
            self.lock().remove(&id);
            return taken;
        }
        self.run(id);
        Ok(true)
    }

    /// Runs backfill `id` (taken by this process) once [`Launcher::run_taken`] is called.
    fn run(&self, id: BackfillId) {
        self.taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(id);
    }

    /// Runs every backfill taken since the last call, each on a task of its own.
    pub(crate) fn run_taken(&self) {
        let taken = std::mem::take(
            &mut *self
                .taken
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for id in taken {
            self.spawn(id);
        }
    }

    fn spawn(&self, id: BackfillId) {
        let (fs, running) = (self.fs.clone(), Arc::clone(&self.running));
        tokio::spawn(async move {
            match fs.resume_backfill(id).await {
                Ok(report) => tracing::info!(
                    backfill = %id,
                    succeeded = report.succeeded,
                    failed = report.failed,
                    "automation backfill ended"
                ),
                Err(err) => {
                    tracing::warn!(backfill = %id, error = %err, "automation backfill failed")
                }
            }
            running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&id);
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<BackfillId>> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
