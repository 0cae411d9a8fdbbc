//! [`Dispatcher`]: turns a caller's request into jobs and hands them to an executor.
//!
//! It picks the executor (the run's strategy, else the asset's, else Auto), builds the job from
//! a [`Run`] and checks everything the job names before it runs: the partition, the options the
//! executor must honour, the hook stack, the IO manager. The public API, backfills and the queue
//! worker all dispatch through it, so they sit on it rather than on each other.

use std::sync::Arc;

use crate::asset::Asset;
use crate::error::Result;
use crate::executor::{ExecContext, Executor, ExecutorTable, Strategy, check_options};
use crate::job::Job;
use crate::registry::Registry;
use crate::run::Run;
use crate::runtime::Runtime;

/// The runtime and the executors of one FlowStone. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    runtime: Runtime,
    executors: Arc<ExecutorTable>,
}

impl Dispatcher {
    pub(crate) fn new(runtime: Runtime, executors: ExecutorTable) -> Self {
        Dispatcher {
            runtime,
            executors: Arc::new(executors),
        }
    }

    /// The runtime jobs run with in this process.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The asset graph.
    pub fn registry(&self) -> &Registry {
        self.runtime.registry()
    }

    /// The registered executors.
    pub fn executors(&self) -> &ExecutorTable {
        &self.executors
    }

    /// The executor a run of `asset` uses: the run's strategy, else the asset's, else Auto.
    pub fn select_executor(
        &self,
        asset: &Asset,
        strategy: Option<&Strategy>,
    ) -> Result<(String, Arc<dyn Executor>)> {
        self.executors.select(&Self::strategy_of(asset, strategy))
    }

    /// The run's strategy, else the asset's, else Auto.
    fn strategy_of(asset: &Asset, strategy: Option<&Strategy>) -> Strategy {
        match (strategy, asset.default_executor()) {
            (Some(strategy), _) => strategy.clone(),
            (None, Some(name)) => Strategy::parse(name),
            (None, None) => Strategy::Auto,
        }
    }

    /// [`Dispatcher::select_executor`] for a caller that will wait for `run` (materialize,
    /// backfill); when that is Auto, only an executor that is ready for the run
    /// ([`Executor::ready`]): Auto picks the queue only while a live worker serves the run's
    /// queue, and otherwise runs in process (saying why at debug level), so a caller never waits
    /// on a queue nobody works. (`schedule` does not wait, and takes the plain selection.)
    pub async fn choose_executor(
        &self,
        asset: &Asset,
        run: &Run,
    ) -> Result<(String, Arc<dyn Executor>)> {
        let strategy = Self::strategy_of(asset, run.strategy.as_ref());
        let chosen = self.executors.select(&strategy)?;
        if !matches!(strategy, Strategy::Auto) || chosen.0 == "sync" {
            return Ok(chosen);
        }
        match chosen.1.ready(&run.options).await {
            Ok(()) => Ok(chosen),
            Err(reason) => {
                tracing::debug!(
                    asset = asset.name(),
                    executor = %chosen.0,
                    %reason,
                    "Auto runs in process instead"
                );
                self.executors.select(&Strategy::Sync)
            }
        }
    }

    /// Builds the job for `asset` from `run`, owned by `executor`, and checks that the partition
    /// belongs to the asset, that the executor can honour the run's options, and that the hooks
    /// and IO manager it names exist.
    pub fn prepare_job(
        &self,
        asset: &Asset,
        run: &Run,
        executor_name: &str,
        executor: &dyn Executor,
    ) -> Result<Job> {
        self.runtime.check_partition_member(asset, &run.partition)?;
        self.job_template(asset, run, executor_name, executor)
    }

    /// [`Dispatcher::prepare_job`] without the partition check: the template of a backfill's jobs,
    /// whose partitions are checked once for the whole set.
    pub fn job_template(
        &self,
        asset: &Asset,
        run: &Run,
        executor_name: &str,
        executor: &dyn Executor,
    ) -> Result<Job> {
        let mut job = Job::new(asset.name(), run.partition.clone());
        job.run_id = run.run_id.unwrap_or(job.run_id);
        job.priority = run.priority.unwrap_or(0);
        job.scheduled_at = run.scheduled_at;
        job.io_manager = run.io_manager.clone();
        job.hooks = run.hooks.clone();
        job.hook_config = run.hook_config.clone();
        job.record = run.record.unwrap_or(true);
        job.metadata = run.metadata.clone();
        job.executor = executor_name.to_owned();
        check_options(executor_name, executor.capabilities(), &job, &run.options)?;
        self.runtime.hooks().stack_for(&job)?;
        if let Some(io) = &job.io_manager {
            self.runtime.io_manager(io)?;
        }
        Ok(job)
    }

    /// The context an executor runs `run`'s jobs with: its options and this runtime.
    pub fn exec_context(&self, run: &Run) -> ExecContext {
        ExecContext {
            options: run.options.clone(),
            ..ExecContext::new(self.runtime.clone())
        }
    }
}
