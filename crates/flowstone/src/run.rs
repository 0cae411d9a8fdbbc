//! [`Run`]: the options of one `materialize` or `schedule` call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::executor::{ExecOptions, Step, Strategy};
use crate::ids::RunId;
use crate::partition::Partition;

/// Options of one run: the partition, the executor and what it should honour.
#[derive(Clone, Debug, Default)]
#[must_use = "a run does nothing until it is passed to materialize or schedule"]
pub struct Run {
    pub(crate) partition: Partition,
    pub(crate) strategy: Option<Strategy>,
    pub(crate) run_id: Option<RunId>,
    pub(crate) priority: Option<u8>,
    pub(crate) scheduled_at: Option<DateTime<Utc>>,
    pub(crate) io_manager: Option<String>,
    pub(crate) hooks: Option<Vec<String>>,
    pub(crate) hook_config: BTreeMap<String, serde_json::Value>,
    pub(crate) record: Option<bool>,
    pub(crate) metadata: serde_json::Map<String, serde_json::Value>,
    pub(crate) options: ExecOptions,
    pub(crate) with_upstream: bool,
}

impl Run {
    /// A run for `partition`.
    pub fn partition(partition: impl Into<crate::partition::Partition>) -> Self {
        Run {
            partition: partition.into(),
            ..Run::default()
        }
    }

    /// A run of an unpartitioned asset.
    pub fn unpartitioned() -> Self {
        Run::default()
    }

    /// The executor to use (default: the asset's, else [`Strategy::Auto`]).
    pub fn executor(mut self, strategy: Strategy) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// Uses this run id instead of a new one.
    pub fn run_id(mut self, run_id: RunId) -> Self {
        self.run_id = Some(run_id);
        self
    }

    /// Priority 0 (first) to 9 (last); needs an executor with priorities.
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Not before `at`; needs an executor that schedules (the queue).
    pub fn scheduled_at(mut self, at: DateTime<Utc>) -> Self {
        self.scheduled_at = Some(at);
        self
    }

    /// The queue to use; needs the queue executor.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.options.queue = Some(queue.into());
        self
    }

    /// Total attempts, overriding the asset's retry policy.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.options.max_attempts = Some(attempts);
        self
    }

    /// Longest one attempt may run.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = Some(timeout);
        self
    }

    /// Traces each step (serial executor).
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.options.verbose = Some(verbose);
        self
    }

    /// Waits between steps (serial executor).
    pub fn pause_between(mut self, pause: Duration) -> Self {
        self.options.pause_between = Some(pause);
        self
    }

    /// Called before and after each step (serial executor).
    pub fn on_step(mut self, on_step: impl Fn(&Step<'_>) + Send + Sync + 'static) -> Self {
        self.options.on_step = Some(Arc::new(on_step));
        self
    }

    /// Materializes missing upstream assets first, in topological order.
    pub fn with_upstream(mut self, with_upstream: bool) -> Self {
        self.with_upstream = with_upstream;
        self
    }

    /// Uses the hooks named, in order (must end with `core`).
    pub fn hooks<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.hooks = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// Configuration for hook `name`.
    pub fn hook_config(mut self, name: impl Into<String>, config: serde_json::Value) -> Self {
        self.hook_config.insert(name.into(), config);
        self
    }

    /// Whether to write materialization records (default: yes).
    pub fn record(mut self, record: bool) -> Self {
        self.record = Some(record);
        self
    }

    /// Uses the IO manager registered as `name` for this run.
    pub fn io_manager(mut self, name: impl Into<String>) -> Self {
        self.io_manager = Some(name.into());
        self
    }

    /// Adds metadata, copied into the materialization record.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The partition.
    pub fn partition_value(&self) -> &Partition {
        &self.partition
    }
}
