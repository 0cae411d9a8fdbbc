//! [`Storage`]: where a materialization's results go — outputs through IO managers, records into
//! the materialization store, consumed inputs into lineage.
//!
//! The hooks that write results (`record`, `lineage`, `storage`) need these and nothing else of
//! the runtime, so they get this value rather than the [`crate::runtime::Runtime`] that runs
//! them: dependencies point one way (the runtime sits on the hooks, the hooks on storage).

use std::collections::HashMap;
use std::sync::Arc;

use crate::asset::Asset;
use crate::backfill::BackfillStore;
use crate::error::{Error, Result};
use crate::io::IoManager;
use crate::job::Job;
use crate::lineage::LineageStore;
use crate::store::MaterializationStore;
use crate::suggest::did_you_mean;

/// IO managers by name, the materialization store and the lineage store of one FlowStone.
pub struct Storage {
    io_managers: HashMap<String, Arc<dyn IoManager>>,
    default_io: String,
    store: Arc<dyn MaterializationStore>,
    lineage: Arc<dyn LineageStore>,
    backfills: Arc<dyn BackfillStore>,
    /// Counts successful materializations recorded by this process: what wakes the
    /// automation evaluator at once (other processes are seen by polling or NOTIFY).
    materialized: tokio::sync::watch::Sender<u64>,
}

impl Storage {
    /// Assembles the storage; `default_io` must name one of `io_managers`.
    pub(crate) fn new(
        io_managers: HashMap<String, Arc<dyn IoManager>>,
        default_io: String,
        store: Arc<dyn MaterializationStore>,
        lineage: Arc<dyn LineageStore>,
        backfills: Arc<dyn BackfillStore>,
    ) -> Self {
        Storage {
            io_managers,
            default_io,
            store,
            lineage,
            backfills,
            materialized: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Changes each time a materialization of this process succeeded and its record is
    /// committed.
    pub fn materialized(&self) -> tokio::sync::watch::Receiver<u64> {
        self.materialized.subscribe()
    }

    /// Tells [`Storage::materialized`]'s receivers that a success was recorded.
    pub(crate) fn announce_materialized(&self) {
        self.materialized.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The backfill records.
    pub fn backfills(&self) -> &Arc<dyn BackfillStore> {
        &self.backfills
    }

    /// The materialization store.
    pub fn store(&self) -> &Arc<dyn MaterializationStore> {
        &self.store
    }

    /// The lineage store.
    pub fn lineage(&self) -> &Arc<dyn LineageStore> {
        &self.lineage
    }

    /// The IO manager registered as `name`.
    pub fn io_manager(&self, name: &str) -> Result<&Arc<dyn IoManager>> {
        self.io_managers.get(name).ok_or_else(|| {
            let hint = did_you_mean(name, self.io_managers.keys().map(String::as_str));
            Error::config(format!("IO manager '{name}' is not registered{hint}"))
        })
    }

    /// The IO manager for `asset`: the job's choice, else the asset's, else the default.
    pub fn io_for(&self, asset: &Asset, job: &Job) -> Result<&Arc<dyn IoManager>> {
        self.io_manager(self.io_name_for(asset, job))
    }

    /// The name of the IO manager [`Storage::io_for`] picks (for logs).
    pub fn io_name_for<'a>(&'a self, asset: &'a Asset, job: &'a Job) -> &'a str {
        job.io_manager
            .as_deref()
            .or(asset.io_manager_name())
            .unwrap_or(&self.default_io)
    }

    /// The IO manager that holds `asset`'s outputs when no job overrides it.
    pub fn io_of(&self, asset: &Asset) -> Result<&Arc<dyn IoManager>> {
        self.io_manager(asset.io_manager_name().unwrap_or(&self.default_io))
    }
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("io_managers", &self.io_managers.keys().collect::<Vec<_>>())
            .field("default_io", &self.default_io)
            .finish_non_exhaustive()
    }
}
