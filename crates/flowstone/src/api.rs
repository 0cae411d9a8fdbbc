//! [`FlowStone`]: the public entry point, and its [`Builder`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use futures_util::future::try_join_all;
use serde::de::DeserializeOwned;

use crate::asset::Asset;
use crate::backfill::{Backfill, BackfillReport};
use crate::dispatch::Dispatcher;
use crate::error::{Error, Result};
use crate::executor::{Executor, ExecutorTable, SerialExecutor, SyncExecutor, TaskAsyncExecutor};
use crate::hook::{Hook, HookRegistry, Metrics, MetricsSnapshot};
use crate::ids::{BackfillId, RunId};
use crate::io::{IoManager, MemoryIo};
use crate::job::{Job, JobStatus};
use crate::lineage::{self, Direction, LineageEntry, LineageStore, MemoryLineage};
use crate::output::Output;
use crate::partition::Partition;
use crate::registry::Registry;
use crate::resource::ResourcesBuilder;
use crate::run::Run;
use crate::runtime::{Runtime, RuntimeParts};
use crate::store::{Materialization, MaterializationQuery, MaterializationStore, MemoryStore};

/// An (asset, partition) pair.
type Key = (String, Partition);

/// The name the default IO manager is registered under.
pub const DEFAULT_IO: &str = "default";

/// An asset graph with its storage and executors. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct FlowStone {
    dispatch: Dispatcher,
    defs: Arc<AutomationDefs>,
    automation: Arc<dyn crate::automation::AutomationStore>,
    #[cfg(feature = "database")]
    database: Option<flowstone_queue::Database>,
}

/// The schedules and sensors declared in the builder (conditions live on their assets).
#[derive(Debug, Default)]
pub(crate) struct AutomationDefs {
    pub(crate) schedules: Vec<crate::automation::Schedule>,
    pub(crate) sensors: Vec<crate::automation::Sensor>,
}

/// Assembles a [`FlowStone`]; [`Builder::build`] validates the graph.
#[must_use = "a builder does nothing until .build() or .connect().await"]
pub struct Builder {
    assets: Vec<Asset>,
    io_managers: HashMap<String, Arc<dyn IoManager>>,
    store: Option<Arc<dyn MaterializationStore>>,
    lineage: Option<Arc<dyn LineageStore>>,
    backfills: Option<Arc<dyn crate::backfill::BackfillStore>>,
    schedules: Vec<crate::automation::Schedule>,
    sensors: Vec<crate::automation::Sensor>,
    automation: Option<Arc<dyn crate::automation::AutomationStore>>,
    hooks: Vec<(String, Arc<dyn Hook>)>,
    resources: ResourcesBuilder,
    executors: Vec<(String, Arc<dyn Executor>)>,
    #[cfg(feature = "database")]
    database_url: Option<String>,
    #[cfg(feature = "database")]
    database: Option<flowstone_queue::Database>,
}

impl FlowStone {
    /// Starts a builder.
    pub fn builder() -> Builder {
        Builder {
            assets: Vec::new(),
            io_managers: HashMap::new(),
            store: None,
            lineage: None,
            backfills: None,
            schedules: Vec::new(),
            sensors: Vec::new(),
            automation: None,
            hooks: Vec::new(),
            resources: ResourcesBuilder::default(),
            executors: Vec::new(),
            #[cfg(feature = "database")]
            database_url: None,
            #[cfg(feature = "database")]
            database: None,
        }
    }

    /// The database holding the store, lineage, outputs and queue, when one is configured.
    #[cfg(feature = "database")]
    pub fn database(&self) -> Option<&flowstone_queue::Database> {
        self.database.as_ref()
    }

    /// The durable queue, when a database is configured.
    #[cfg(feature = "database")]
    pub fn queue(&self) -> Option<flowstone_queue::Queue> {
        self.database.clone().map(flowstone_queue::Queue::new)
    }

    /// Configures a worker that runs queued materializations with this registry.
    #[cfg(feature = "database")]
    pub fn worker(&self) -> crate::queue::worker::WorkerBuilder {
        crate::queue::worker::WorkerBuilder::new(self.clone())
    }

    /// The asset graph.
    pub fn registry(&self) -> &Registry {
        self.dispatch.registry()
    }

    /// The runtime (what executors use to run jobs in this process).
    pub fn runtime(&self) -> &Runtime {
        self.dispatch.runtime()
    }

    /// The registered executors.
    pub fn executors(&self) -> &ExecutorTable {
        self.dispatch.executors()
    }

    /// Picks executors and builds checked jobs (what backfills and workers use).
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.dispatch
    }

    /// Materialization counters of this process.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.runtime().metrics().snapshot()
    }

    /// Materializes `asset` and waits for its output.
    pub async fn materialize(&self, asset: &str, mut run: Run) -> Result<Output> {
        let asset = Arc::clone(self.registry().get(asset)?);
        let (name, executor) = self.dispatch.choose_executor(&asset, &run).await?;
        // Upstream jobs and the target share one run id.
        run.run_id = Some(run.run_id.unwrap_or_default());
        let job = self
            .dispatch
            .prepare_job(&asset, &run, &name, executor.as_ref())?;
        if run.with_upstream {
            self.materialize_upstream(&asset, &run, &name, executor.as_ref())
                .await?;
        }
        executor
            .execute(job, self.dispatch.exec_context(&run))
            .await
    }

    /// Runs the missing upstream partitions of `asset` at the run's partition, found through
    /// each dependency's mapping, each once, in dependency order (independent ones in
    /// parallel), all in the run's run id.
    async fn materialize_upstream(
        &self,
        asset: &Asset,
        run: &Run,
        name: &str,
        executor: &dyn Executor,
    ) -> Result<()> {
        for level in self.missing_upstream(asset, run).await? {
            let jobs = level
                .into_iter()
                .map(|(ancestor, partition)| {
                    let dep = self.registry().get(&ancestor)?;
                    let dep_run = Run {
                        partition,
                        ..run.clone()
                    };
                    self.dispatch.prepare_job(dep, &dep_run, name, executor)
                })
                .collect::<Result<Vec<Job>>>()?;
            try_join_all(
                jobs.into_iter()
                    .map(|job| executor.execute(job, self.dispatch.exec_context(run))),
            )
            .await?;
        }
        Ok(())
    }

    /// The (asset, partition)s upstream of `asset` at the run's partition that have no stored
    /// output, in levels: each level needs only earlier ones. A depth-first walk with its own
    /// stack, so a long chain (a cumulative asset's previous days) cannot overflow.
    async fn missing_upstream(&self, asset: &Asset, run: &Run) -> Result<Vec<Vec<Key>>> {
        let registry = self.registry();
        let upstream_of = |name: &str, partition: &Partition| -> Result<Vec<Key>> {
            let asset = registry.get(name)?;
            let mut keys = Vec::new();
            for dep in asset.dependencies() {
                for p in registry
                    .upstream_partitions(asset, dep, partition)?
                    .partitions
                {
                    keys.push((dep.clone(), p));
                }
            }
            Ok(keys)
        };
        let mut level: HashMap<Key, usize> = HashMap::new();
        let mut present: HashSet<Key> = HashSet::new();
        // (key, whether its dependencies have been pushed)
        let mut stack: Vec<(Key, bool)> = upstream_of(asset.name(), &run.partition)?
            .into_iter()
            .map(|key| (key, false))
            .collect();
        while let Some((key, expanded)) = stack.pop() {
            if level.contains_key(&key) || present.contains(&key) {
                continue;
            }
            let deps = upstream_of(&key.0, &key.1)?;
            if expanded {
                let depth = deps
                    .iter()
                    .filter_map(|d| level.get(d))
                    .max()
                    .map_or(0, |l| l + 1);
                level.insert(key, depth);
                continue;
            }
            let dep = registry.get(&key.0)?;
            let io = match &run.io_manager {
                Some(chosen) => self.runtime().io_manager(chosen)?,
                None => self.runtime().io_of(dep)?,
            };
            if io.exists(&key.0, &key.1).await? {
                present.insert(key);
                continue;
            }
            stack.push((key, true));
            stack.extend(
                deps.into_iter()
                    .filter(|d| !level.contains_key(d) && !present.contains(d))
                    .map(|d| (d, false)),
            );
        }
        let mut levels: Vec<Vec<Key>> = Vec::new();
        let mut keys: Vec<(Key, usize)> = level.into_iter().collect();
        keys.sort();
        for (key, depth) in keys {
            if levels.len() <= depth {
                levels.resize_with(depth + 1, Vec::new);
            }
            levels[depth].push(key);
        }
        Ok(levels)
    }

    /// Schedules `asset` without waiting; returns the job for `job_status` and `cancel_job`.
    pub async fn schedule(&self, asset: &str, run: Run) -> Result<Job> {
        if run.with_upstream {
            return Err(Error::invalid_options(
                "with_upstream is supported by materialize, not schedule; materialize the \
                 upstream assets first or use materialize",
            ));
        }
        let asset = Arc::clone(self.registry().get(asset)?);
        // schedule does not wait, so Auto may enqueue for a worker that is yet to come.
        let (name, executor) = self
            .dispatch
            .select_executor(&asset, run.strategy.as_ref())?;
        let job = self
            .dispatch
            .prepare_job(&asset, &run, &name, executor.as_ref())?;
        executor
            .schedule(job, self.dispatch.exec_context(&run))
            .await
    }

    /// Where `job` stands, asked of the executor recorded in the job.
    pub async fn job_status(&self, job: &Job) -> Result<JobStatus> {
        let executor = self.executors().get(&job.executor)?;
        executor.status(job, self.runtime()).await
    }

    /// Cancels `job` through the executor recorded in the job.
    pub async fn cancel_job(&self, job: &Job) -> Result<()> {
        let executor = self.executors().get(&job.executor)?;
        executor.cancel(job, self.runtime()).await
    }

    /// Materializes `asset` over many partitions.
    pub async fn backfill(&self, asset: &str, backfill: Backfill) -> Result<BackfillReport> {
        self.registry().get(asset)?;
        crate::backfill::run(&self.dispatch, backfill.select(asset).anchor(asset)).await
    }

    /// The declared schedules, in the order they were added.
    pub fn schedules(&self) -> &[crate::automation::Schedule] {
        &self.defs.schedules
    }

    pub(crate) fn defs(&self) -> &AutomationDefs {
        &self.defs
    }

    pub(crate) fn automation_state(&self) -> &dyn crate::automation::AutomationStore {
        self.automation.as_ref()
    }

    /// Whether schedule `name` is on: its stored switch, else its definition's default. An
    /// unknown name is `NotFound` with the nearest one.
    pub async fn schedule_enabled(&self, name: &str) -> Result<bool> {
        let schedule = self.find_schedule(name)?;
        Ok(self
            .automation
            .enabled("schedule", name)
            .await?
            .unwrap_or(schedule.is_default_on()))
    }

    /// Turns schedule `name` on or off, for every process on this database.
    pub async fn set_schedule_enabled(&self, name: &str, on: bool) -> Result<()> {
        self.find_schedule(name)?;
        self.automation.set_enabled("schedule", name, on).await
    }

    pub(crate) fn find_schedule(&self, name: &str) -> Result<&crate::automation::Schedule> {
        self.schedules()
            .iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                let hint =
                    crate::suggest::did_you_mean(name, self.schedules().iter().map(|s| s.name()));
                Error::not_found(format!("schedule '{name}' is not declared{hint}"))
            })
    }

    /// The next `n` ticks of schedule `name` after `after`, with the partitions they target,
    /// without launching anything. An unknown name is `NotFound` with the nearest one.
    pub fn preview_schedule(
        &self,
        name: &str,
        after: chrono::DateTime<chrono::Utc>,
        n: usize,
    ) -> Result<Vec<crate::automation::TickPreview>> {
        self.find_schedule(name)?.preview(self.registry(), after, n)
    }

    /// Stored backfills (of this process and others sharing the database), newest first, at
    /// most `limit`.
    pub async fn backfills(&self, limit: usize) -> Result<Vec<crate::backfill::BackfillRecord>> {
        self.runtime().storage().backfills().list(limit).await
    }

    /// The stored backfill `id` with the outcomes of its ended partitions, a page at a time:
    /// ordered by (asset, partition), after `after` (the last of the previous page), at most
    /// `limit`. An unknown id is `NotFound`.
    pub async fn backfill_status(
        &self,
        id: BackfillId,
        after: Option<(&str, &Partition)>,
        limit: usize,
    ) -> Result<(
        crate::backfill::BackfillRecord,
        Vec<crate::backfill::PartitionRecord>,
    )> {
        let store = self.runtime().storage().backfills();
        let record = store
            .get(id)
            .await?
            .ok_or_else(|| crate::backfill::not_found(id))?;
        let outcomes = store.outcomes(id, after, limit).await?;
        Ok((record, outcomes))
    }

    /// Cancels backfill `id` from any process: it stops planning (the process running it sees
    /// the request within a second and cancels what it runs), and on the queue its pending
    /// rows are cancelled and its running ones signalled. A backfill nobody runs any more
    /// (its record has not moved for 5 s) is marked cancelled at once. An unknown id is
    /// `NotFound`; an ended one `AlreadyFinished`.
    pub async fn cancel_backfill(&self, id: BackfillId) -> Result<crate::backfill::BackfillRecord> {
        use crate::backfill::BackfillStatus;
        let store = self.runtime().storage().backfills();
        let before = store
            .get(id)
            .await?
            .ok_or_else(|| crate::backfill::not_found(id))?;
        if before.status.is_finished() {
            return Err(Error::already_finished(
                format!("backfill {id}"),
                before.status.as_str(),
            ));
        }
        let mut record = store
            .request_cancel(id)
            .await?
            .ok_or_else(|| crate::backfill::not_found(id))?;
        #[cfg(feature = "database")]
        if let Some(db) = &self.database {
            flowstone_queue::Queue::new(db.clone())
                .cancel_batch(&id.to_string())
                .await
                .map_err(crate::queue::queue_error)?;
        }
        let idle = chrono::Utc::now() - record.updated_at > chrono::TimeDelta::seconds(5)
            && chrono::Utc::now() - before.updated_at > chrono::TimeDelta::seconds(5);
        if idle {
            store
                .update(id, BackfillStatus::Cancelled, &record.counts, None)
                .await?;
            record = store
                .get(id)
                .await?
                .ok_or_else(|| crate::backfill::not_found(id))?;
        }
        Ok(record)
    }

    /// Goes on with backfill `id` after the process running it died: runs its stored request
    /// again under the same id in this process, skipping what it materialized; on the queue,
    /// the rows it left are followed, not inserted again. No partition runs twice, none is
    /// forgotten. An unknown id is `NotFound`; an ended one `AlreadyFinished`.
    pub async fn resume_backfill(&self, id: BackfillId) -> Result<BackfillReport> {
        crate::backfill::resume(&self.dispatch, id).await
    }

    /// What `backfill` would run, without running it: its (asset, partition)s and what each
    /// waits for. Errors are the ones running it would give before anything runs.
    pub fn plan_backfill(&self, backfill: &Backfill) -> Result<crate::backfill::BackfillPlan> {
        crate::backfill::BackfillPlan::new(self.registry(), backfill)
    }

    /// Runs a backfill over the assets it selects ([`Backfill::assets`],
    /// [`Backfill::select`]): each partition as soon as the partitions it needs in the
    /// backfill have succeeded, independent branches in parallel.
    pub async fn run_backfill(&self, backfill: Backfill) -> Result<BackfillReport> {
        crate::backfill::run(&self.dispatch, backfill).await
    }

    /// The stored output of `asset` for `partition`, as `T`.
    pub async fn load<T>(&self, asset: &str, partition: impl Into<Partition>) -> Result<T>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let partition = partition.into();
        let def = self.registry().get(asset)?;
        match self.runtime().io_of(def)?.load(asset, &partition).await? {
            Some(stored) => stored.output.value::<T>(),
            None => Err(Error::not_found(format!(
                "asset '{asset}' has no stored output for partition {partition}; materialize it first"
            ))
            .with_asset(asset)),
        }
    }

    /// Materialization records matching `query`, newest first.
    pub async fn materializations(
        &self,
        query: &MaterializationQuery,
    ) -> Result<Vec<Materialization>> {
        if let Some(asset) = &query.asset {
            self.registry().get(asset)?;
        }
        self.runtime().store().list(query).await
    }

    /// Lineage of `asset` at `partition` (newest run), `depth` steps in `direction`.
    pub async fn lineage(
        &self,
        asset: &str,
        partition: impl Into<Partition>,
        direction: Direction,
        depth: u32,
    ) -> Result<Vec<LineageEntry>> {
        self.lineage_of_run(asset, partition, None, direction, depth)
            .await
    }

    /// Lineage of one run of `asset` at `partition` (`None`: newest run upstream, every run
    /// downstream).
    pub async fn lineage_of_run(
        &self,
        asset: &str,
        partition: impl Into<Partition>,
        run_id: Option<RunId>,
        direction: Direction,
        depth: u32,
    ) -> Result<Vec<LineageEntry>> {
        self.registry().get(asset)?;
        let partition = partition.into();
        let store = self.runtime().lineage().as_ref();
        match direction {
            Direction::Upstream => lineage::upstream(store, asset, &partition, run_id, depth).await,
            Direction::Downstream => {
                lineage::downstream(store, asset, &partition, run_id, depth).await
            }
        }
    }

    /// Every materialization downstream of any materialization of `asset`.
    pub async fn impact(&self, asset: &str) -> Result<Vec<LineageEntry>> {
        self.registry().get(asset)?;
        lineage::impact(self.runtime().lineage().as_ref(), asset).await
    }
}

impl Builder {
    /// Adds a schedule (checked by the build: its expression, zone, target and the partition
    /// its next tick targets).
    pub fn schedule(mut self, schedule: crate::automation::Schedule) -> Self {
        self.schedules.push(schedule);
        self
    }

    /// Adds a sensor (checked by the build: its name, function and interval).
    pub fn sensor(mut self, sensor: crate::automation::Sensor) -> Self {
        self.sensors.push(sensor);
        self
    }

    /// Adds an asset.
    pub fn asset(mut self, asset: Asset) -> Self {
        self.assets.push(asset);
        self
    }

    /// Adds several assets.
    pub fn assets(mut self, assets: impl IntoIterator<Item = Asset>) -> Self {
        self.assets.extend(assets);
        self
    }

    /// Sets the default IO manager (default: in memory).
    pub fn io_manager(self, io: impl IoManager) -> Self {
        self.named_io_manager(DEFAULT_IO, io)
    }

    /// Registers an IO manager under `name`, for assets and runs that name it.
    pub fn named_io_manager(mut self, name: impl Into<String>, io: impl IoManager) -> Self {
        self.io_managers.insert(name.into(), Arc::new(io));
        self
    }

    /// Sets the materialization store (default: in memory).
    pub fn store(mut self, store: impl MaterializationStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Sets the lineage store (default: in memory).
    pub fn lineage_store(mut self, lineage: impl LineageStore) -> Self {
        self.lineage = Some(Arc::new(lineage));
        self
    }

    /// Registers a hook under `name`, for jobs whose stack names it.
    pub fn hook(mut self, name: impl Into<String>, hook: impl Hook) -> Self {
        self.hooks.push((name.into(), Arc::new(hook)));
        self
    }

    /// Registers a resource; `setup` runs once, on first use by an asset that requires it.
    pub fn resource<F, Fut, T, E>(mut self, name: impl Into<String>, setup: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Send + Sync + 'static,
        E: std::fmt::Display + 'static,
    {
        self.resources.add(name.into(), setup);
        self
    }

    /// Registers a ready-made resource value.
    pub fn resource_value<T: Clone + Send + Sync + 'static>(
        self,
        name: impl Into<String>,
        value: T,
    ) -> Self {
        self.resource(name, move || {
            let value = value.clone();
            async move { Ok::<T, std::convert::Infallible>(value) }
        })
    }

    /// Registers an executor under its own [`Executor::name`], replacing a built-in of the same
    /// name (e.g. a TaskAsync executor with another concurrency as `async`).
    pub fn executor(mut self, executor: impl Executor) -> Self {
        let name = executor.name().to_owned();
        self.executors.push((name, Arc::new(executor)));
        self
    }

    /// Registers an executor under `name`.
    pub fn named_executor(mut self, name: impl Into<String>, executor: Arc<dyn Executor>) -> Self {
        self.executors.push((name.into(), executor));
        self
    }

    /// Keeps materialization records, lineage, outputs and the durable queue in the database
    /// at `url` (`sqlite://flowstone.db`, `postgres://user@host/db`). Finish with
    /// [`Builder::connect`], which connects and migrates. An IO manager, store or lineage store
    /// set explicitly wins over the database's.
    #[cfg(feature = "database")]
    pub fn database(mut self, url: impl Into<String>) -> Self {
        self.database_url = Some(url.into());
        self
    }

    /// Uses an already connected (and migrated, see [`crate::sql::migrate`]) database.
    #[cfg(feature = "database")]
    pub fn database_handle(mut self, database: flowstone_queue::Database) -> Self {
        self.database = Some(database);
        self
    }

    /// Connects to the configured database, creates or upgrades its tables, and builds.
    /// Without a database this is [`Builder::build`].
    pub async fn connect(self) -> Result<FlowStone> {
        #[cfg(feature = "database")]
        let mut builder = self;
        #[cfg(not(feature = "database"))]
        let builder = self;
        #[cfg(feature = "database")]
        if let Some(url) = builder.database_url.take() {
            let db = flowstone_queue::Database::connect(&url)
                .await
                .map_err(crate::queue::queue_error)?;
            flowstone_queue::Queue::new(db.clone())
                .migrate()
                .await
                .map_err(crate::queue::queue_error)?;
            crate::sql::migrate(&db).await?;
            builder.database = Some(db);
        }
        builder.build()
    }

    /// Validates the graph and assembles the FlowStone.
    pub fn build(self) -> Result<FlowStone> {
        #[cfg(feature = "database")]
        let mut this = self;
        #[cfg(not(feature = "database"))]
        let this = self;
        #[cfg(feature = "database")]
        if this.database_url.is_some() {
            return Err(Error::config(
                "a database needs an async connection: finish the builder with .connect().await \
                 instead of .build()",
            ));
        }
        #[cfg(feature = "database")]
        let database = this.database.take();
        #[cfg(feature = "database")]
        if let Some(db) = &database {
            let sql = crate::sql::SqlStorage::new(db.clone());
            this.io_managers
                .entry("sql".to_owned())
                .or_insert_with(|| Arc::new(sql.io));
            let sql_io = Arc::clone(&this.io_managers["sql"]);
            this.io_managers
                .entry(DEFAULT_IO.to_owned())
                .or_insert(sql_io);
            this.store.get_or_insert_with(|| Arc::new(sql.store));
            this.lineage.get_or_insert_with(|| Arc::new(sql.lineage));
            this.backfills
                .get_or_insert_with(|| Arc::new(crate::sql::SqlBackfills::new(db.clone())));
            this.automation
                .get_or_insert_with(|| Arc::new(crate::sql::SqlAutomation::new(db.clone())));
            this.executors.insert(
                0,
                (
                    "queue".to_owned(),
                    Arc::new(crate::queue::QueueExecutor::new(
                        flowstone_queue::Queue::new(db.clone()),
                    )),
                ),
            );
        }
        let built = this.build_parts()?;
        Ok(FlowStone {
            #[cfg(feature = "database")]
            database,
            ..built
        })
    }

    fn build_parts(self) -> Result<FlowStone> {
        let resource_names: BTreeSet<String> = self.resources.names();
        let registry = Registry::build(self.assets, &resource_names)?;
        let mut io_managers = self.io_managers;
        io_managers
            .entry(DEFAULT_IO.to_owned())
            .or_insert_with(|| Arc::new(MemoryIo::new()));
        for asset in registry.assets() {
            if let Some(io) = asset.io_manager_name()
                && !io_managers.contains_key(io)
            {
                return Err(Error::config(format!(
                    "asset '{}' uses IO manager '{io}', which is not registered; register it with \
                     builder.named_io_manager(\"{io}\", ..)",
                    asset.name()
                )));
            }
        }
        let metrics = Arc::new(Metrics::default());
        let hooks = HookRegistry::new(self.hooks, Arc::clone(&metrics))?;
        let runtime = Runtime::new(RuntimeParts {
            registry,
            io_managers,
            default_io: DEFAULT_IO.to_owned(),
            store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
            lineage: self
                .lineage
                .unwrap_or_else(|| Arc::new(MemoryLineage::new())),
            backfills: self
                .backfills
                .unwrap_or_else(|| Arc::new(crate::backfill::MemoryBackfills::new())),
            hooks,
            resources: self.resources.build(),
            metrics,
        });
        let executors = ExecutorTable::default();
        executors.register("sync", Arc::new(SyncExecutor::new()));
        executors.register("async", Arc::new(TaskAsyncExecutor::new()));
        executors.register("serial", Arc::new(SerialExecutor::new()));
        for (name, executor) in self.executors {
            executor.check().map_err(|e| {
                Error::invalid_options(format!("executor '{name}': {}", e.message()))
            })?;
            executors.register(name, executor);
        }
        for asset in runtime.registry().assets() {
            if let Some(name) = asset.default_executor()
                && !matches!(name, "auto" | "queue")
                && !executors.contains(name)
            {
                return Err(Error::config(format!(
                    "asset '{}' names executor '{name}', which is not registered (registered: {})",
                    asset.name(),
                    executors.names().join(", ")
                )));
            }
        }
        crate::automation::check_definitions(runtime.registry(), &self.schedules, &self.sensors)?;
        Ok(FlowStone {
            dispatch: Dispatcher::new(runtime, executors),
            defs: Arc::new(AutomationDefs {
                schedules: self.schedules,
                sensors: self.sensors,
            }),
            automation: self
                .automation
                .unwrap_or_else(|| Arc::new(crate::automation::MemoryAutomation::new())),
            #[cfg(feature = "database")]
            database: None,
        })
    }
}

impl std::fmt::Debug for FlowStone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowStone")
            .field("runtime", self.runtime())
            .field("executors", &self.executors().names())
            .finish()
    }
}
