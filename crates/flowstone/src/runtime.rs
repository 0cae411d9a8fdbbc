//! The runtime: what every executor needs to materialize a job in this process.
//!
//! It holds the registry, the IO managers, the stores, the hooks and the resources, and knows how
//! to run one attempt of a job (load dependencies, run the hook stack) and how to run a job with
//! the asset's retry policy. Executors differ only in *where* and *when* they call it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::asset::Asset;
use crate::context::Dependencies;
use crate::error::{Error, ErrorKind, Result};
pub use crate::hook::LoadedDeps;
use crate::hook::{HookRegistry, Materializing, Metrics, Next};
use crate::io::IoManager;
use crate::job::Job;
use crate::lineage::{LineageStore, MaterializationKey};
use crate::mapping::PartitionMapping;
use crate::output::Output;
use crate::partition::Partition;
use crate::registry::Registry;
use crate::resource::Resources;
use crate::storage::Storage;
use crate::store::MaterializationStore;

/// A cheap handle on the runtime.
#[derive(Clone)]
pub struct Runtime(Arc<Inner>);

struct Inner {
    registry: Registry,
    storage: Storage,
    hooks: HookRegistry,
    resources: Resources,
    metrics: Arc<Metrics>,
}

/// The parts a runtime is made of (assembled by the builder).
pub(crate) struct RuntimeParts {
    pub registry: Registry,
    pub io_managers: HashMap<String, Arc<dyn IoManager>>,
    pub default_io: String,
    pub store: Arc<dyn MaterializationStore>,
    pub lineage: Arc<dyn LineageStore>,
    pub backfills: Arc<dyn crate::backfill::BackfillStore>,
    pub hooks: HookRegistry,
    pub resources: Resources,
    pub metrics: Arc<Metrics>,
}

/// How an executor wants a job run.
#[derive(Debug, Clone)]
pub struct RunEnv {
    /// The executor's registered name, recorded with the materialization.
    pub executor: String,
    /// A timeout the caller chose; wins over the asset's and the executor's default.
    pub timeout: Option<Duration>,
    /// The executor's default timeout, when neither the caller nor the asset sets one.
    pub default_timeout: Duration,
    /// Attempts the caller chose; wins over the asset's retry policy.
    pub max_attempts: Option<u32>,
    /// Fires to cancel the work.
    pub cancel: CancellationToken,
}

impl Runtime {
    pub(crate) fn new(parts: RuntimeParts) -> Self {
        Runtime(Arc::new(Inner {
            registry: parts.registry,
            storage: Storage::new(
                parts.io_managers,
                parts.default_io,
                parts.store,
                parts.lineage,
                parts.backfills,
            ),
            hooks: parts.hooks,
            resources: parts.resources,
            metrics: parts.metrics,
        }))
    }

    /// The asset graph.
    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    /// Where results go: IO managers, the materialization store, lineage.
    pub fn storage(&self) -> &Storage {
        &self.0.storage
    }

    /// The materialization store.
    pub fn store(&self) -> &Arc<dyn MaterializationStore> {
        self.0.storage.store()
    }

    /// The lineage store.
    pub fn lineage(&self) -> &Arc<dyn LineageStore> {
        self.0.storage.lineage()
    }

    /// The registered resources.
    pub fn resources(&self) -> &Resources {
        &self.0.resources
    }

    /// The registered hooks.
    pub fn hooks(&self) -> &HookRegistry {
        &self.0.hooks
    }

    /// Materialization counters of this process.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The IO manager registered as `name`.
    pub fn io_manager(&self, name: &str) -> Result<&Arc<dyn IoManager>> {
        self.0.storage.io_manager(name)
    }

    /// The IO manager for `asset`: the job's choice, else the asset's, else the default.
    pub fn io_for(&self, asset: &Asset, job: &Job) -> Result<&Arc<dyn IoManager>> {
        self.0.storage.io_for(asset, job)
    }

    /// The IO manager that holds `asset`'s outputs when no job overrides it.
    pub fn io_of(&self, asset: &Asset) -> Result<&Arc<dyn IoManager>> {
        self.0.storage.io_of(asset)
    }

    /// Checks that a partitioned `asset` got a partition. Assets without a definition take any
    /// partition (or none). Cheap: run on every attempt.
    pub fn check_partition(&self, asset: &Asset, partition: &Partition) -> Result<()> {
        match asset.partitions() {
            Some(def) if partition.is_unpartitioned() => {
                Err(not_a_partition_of(asset.name(), "(none)", def.as_ref()))
            }
            _ => Ok(()),
        }
    }

    /// [`Runtime::check_partition`], and that `partition` belongs to the asset's definition;
    /// an asset without a definition takes no partition (its output would be stored under a
    /// partition no dependent reads). Run where a caller hands a partition in; a custom
    /// definition may expand its whole set.
    pub fn check_partition_member(&self, asset: &Asset, partition: &Partition) -> Result<()> {
        self.check_partition(asset, partition)?;
        match asset.partitions() {
            Some(def) if !def.contains(partition)? => Err(not_a_partition_of(
                asset.name(),
                &partition.encode(),
                def.as_ref(),
            )),
            None if !partition.is_unpartitioned() => Err(not_partitioned(asset.name(), partition)),
            _ => Ok(()),
        }
    }

    /// Loads `asset`'s dependencies for the job's partition through `job`'s IO choice: each
    /// dependency's mapped partitions in one grouped read. Missing required partitions are a
    /// `DependencyNotReady` error naming them; a mapping that points outside its dependency's
    /// definition is an `InvalidPartition` error unless it allows missing partitions (or is a
    /// self-dependency, whose first partition has no predecessor).
    pub async fn load_dependencies(&self, asset: &Asset, job: &Job) -> Result<LoadedDeps> {
        if asset.dependencies().is_empty() {
            return Ok(LoadedDeps::default());
        }
        let mut outputs = Dependencies::with_capacity(asset.dependencies().len());
        let mut consumed = Vec::with_capacity(asset.dependencies().len());
        let mut missing = Vec::new();
        for name in asset.dependencies() {
            let dep = self.registry().get(name)?;
            let mapped = self
                .registry()
                .upstream_partitions(asset, name, &job.partition)?;
            let allows_missing = asset.is_optional(name)
                || asset
                    .mapping(name)
                    .is_some_and(PartitionMapping::allows_missing);
            if !mapped.outside.is_empty() && !allows_missing && name != asset.name() {
                return Err(outside_definition(asset, name, dep, &mapped.outside));
            }
            let io = match &job.io_manager {
                Some(chosen) => self.io_manager(chosen)?,
                None => self.io_of(dep)?,
            };
            let started = std::time::Instant::now();
            let stored = io.load_many(name, &mapped.partitions).await?;
            tracing::debug!(
                manager = self.storage().io_name_for(dep, job),
                input = %name,
                partitions = stored.len(),
                size_bytes = stored
                    .iter()
                    .flatten()
                    .filter_map(|s| s.meta.size_bytes)
                    .sum::<u64>(),
                duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                "loaded input"
            );
            let mut values = Vec::with_capacity(stored.len());
            for (partition, stored) in mapped.partitions.into_iter().zip(stored) {
                match stored {
                    Some(stored) => {
                        consumed.push(MaterializationKey {
                            asset: name.clone(),
                            partition: partition.clone(),
                            run_id: stored.meta.run_id,
                        });
                        values.push((partition, stored.output));
                    }
                    None if allows_missing => {}
                    None => missing.push((name.clone(), partition)),
                }
            }
            outputs.insert(name.clone(), values);
        }
        if !missing.is_empty() {
            return Err(Error::dependency_partitions_not_ready(
                asset.name(),
                &job.partition,
                &missing,
            )
            .with_partition(job.partition.clone()));
        }
        Ok(LoadedDeps {
            outputs: Arc::new(outputs),
            consumed,
        })
    }

    /// Runs attempt number `attempt` of `job`: loads dependencies and runs the hook stack.
    pub async fn run_attempt(&self, job: &Job, attempt: u32, env: &RunEnv) -> Result<Output> {
        let asset = self.registry().get(&job.asset)?;
        self.check_partition(asset, &job.partition)?;
        let stack = self.hooks().stack_for(job)?;
        let deps = self.load_dependencies(asset, job).await?;
        let mut cx = Materializing {
            job,
            asset,
            attempt,
            executor: &env.executor,
            deps: &deps,
            storage: self.storage(),
            resources: self.resources(),
            timeout: env
                .timeout
                .or(asset.timeout_value())
                .unwrap_or(env.default_timeout),
            cancel: &env.cancel,
            started_at: chrono::Utc::now(),
            started: Instant::now(),
            metadata: serde_json::Map::new(),
        };
        let result = crate::deferred::scope(Next::new(&stack).run(&mut cx))
            .await
            .map_err(|e| e.in_context(&job.asset, &job.partition));
        // Only now is the record committed (its write was deferred to the scope's end), so
        // only now may automation be told to look.
        if result.is_ok() && job.record {
            self.storage().announce_materialized();
        }
        result
    }

    /// Records a run that could not start (its dependencies are missing) as failed, so
    /// `retry_failed` finds it; a later run replaces it as the latest. In-process only: the
    /// queue worker snoozes such a job instead.
    async fn record_unstarted(
        &self,
        asset: &Asset,
        job: &Job,
        attempt: u32,
        env: &RunEnv,
        err: Error,
    ) -> Error {
        let err = err.in_context(&job.asset, &job.partition);
        if !job.record || err.kind() != ErrorKind::DependencyNotReady {
            return err;
        }
        let now = chrono::Utc::now();
        let mut metadata = asset.static_metadata().clone();
        metadata.extend(job.metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        let record = crate::store::Materialization {
            asset: job.asset.clone(),
            partition: job.partition.clone(),
            run_id: job.run_id,
            status: crate::store::MaterializationStatus::Failed,
            executor: env.executor.clone(),
            attempt,
            started_at: now,
            finished_at: Some(now),
            duration: Some(Duration::ZERO),
            error: Some(err.to_record()),
            metadata,
            backfill_id: job.backfill_id,
        };
        if let Err(store_err) = self.store().record(&record).await {
            // The missing dependency is what the caller must hear about; the store's failure
            // shows in the log.
            tracing::warn!(asset = %job.asset, error = %store_err, "could not record a run whose dependencies are missing");
        }
        err
    }

    /// Runs `job` with its retry policy: retryable failures are attempted again after the
    /// policy's backoff, until the attempts run out or the work is cancelled.
    pub async fn run(&self, job: &Job, env: &RunEnv) -> Result<Output> {
        let policy = self.registry().get(&job.asset)?.retry_policy();
        let max_attempts = env.max_attempts.unwrap_or(policy.max_attempts).max(1);
        let mut attempt = 1;
        loop {
            let result = self.run_attempt(job, attempt, env).await;
            match result {
                Err(err)
                    if attempt < max_attempts
                        && err.retryable()
                        && err.kind() != ErrorKind::DependencyNotReady
                        && err.kind() != ErrorKind::Cancelled =>
                {
                    tracing::debug!(asset = %job.asset, attempt, error = %err, "retrying");
                    tokio::select! {
                        () = env.cancel.cancelled() => return Err(Error::cancelled(&job.asset)
                            .with_partition(job.partition.clone())),
                        () = tokio::time::sleep(policy.delay_after(attempt)) => {}
                    }
                    attempt += 1;
                }
                Err(err) if err.kind() == ErrorKind::DependencyNotReady => {
                    let asset = self.registry().get(&job.asset)?;
                    return Err(self.record_unstarted(asset, job, attempt, env, err).await);
                }
                other => return other,
            }
        }
    }
}

/// `asset`'s mapping of `name` points at partitions `dep`'s definition does not have.
fn outside_definition(asset: &Asset, name: &str, dep: &Asset, outside: &[Partition]) -> Error {
    let form = dep
        .partitions()
        .map_or_else(|| String::from("none"), |d| d.expected_form());
    Error::invalid_partition(
        &crate::error::first_few(outside, Partition::encode),
        format!(
            "partitions of '{name}' ({form}): asset '{}' reads them through {}, but '{name}' \
             does not have them; narrow the run, or let the mapping skip them with \
             .allow_missing()",
            asset.name(),
            asset
                .mapping(name)
                .map_or_else(|| String::from("its mapping"), PartitionMapping::describe)
        ),
    )
    .with_asset(asset.name())
}

/// `asset` has no partitions definition, so it takes no `partition`.
pub(crate) fn not_partitioned(asset: &str, partition: &Partition) -> Error {
    Error::invalid_partition(
        &partition.encode(),
        format!(
            "no partition: asset '{asset}' has no partitions definition; run it unpartitioned \
             or give it one with .partitioned_by(..)"
        ),
    )
    .with_asset(asset)
}

/// `input` is not a partition of `asset`, whose partitions `def` defines.
pub(crate) fn not_a_partition_of(
    asset: &str,
    input: &str,
    def: &dyn crate::partition::PartitionsDefinition,
) -> Error {
    Error::invalid_partition(
        input,
        format!("a partition of asset '{asset}': {}", def.expected_form()),
    )
    .with_asset(asset)
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("assets", &self.0.registry.topological_order())
            .field("storage", &self.0.storage)
            .finish_non_exhaustive()
    }
}
