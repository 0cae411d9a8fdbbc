//! Assets: named data artifacts, what they depend on, and the async function that computes them.
//!
//! An [`Asset`] is a builder; [`crate::FlowStone::builder`] turns a set of them into a validated
//! [`crate::Registry`]. The function is stored type-erased ([`AssetFn`]) so assets of different
//! output types live in one registry; the output type is recovered at the edges through
//! [`crate::Output`].

mod retry;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use retry::RetryPolicy;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::mapping::PartitionMapping;
use crate::output::Output;
use crate::partition::PartitionsDefinition;

/// The type-erased function of an asset.
pub type AssetFn = Arc<dyn Fn(Context) -> BoxFuture<'static, Result<Output>> + Send + Sync>;

/// A declared asset. Build it with [`Asset::new`] and the chained setters.
#[derive(Clone)]
#[must_use = "an asset does nothing until it is added to FlowStone::builder().asset(..)"]
pub struct Asset {
    // Shared with every `Context` of a materialization of this asset (no copy per run).
    pub(crate) name: Arc<str>,
    pub(crate) depends_on: Vec<String>,
    /// The mapping of every dependency: those given with `depends_on_mapped`, and the
    /// registry's defaults for the rest once the graph is built.
    pub(crate) mappings: BTreeMap<String, PartitionMapping>,
    pub(crate) optional: BTreeSet<String>,
    pub(crate) requires: Arc<[String]>,
    pub(crate) description: Option<String>,
    pub(crate) io_manager: Option<String>,
    pub(crate) retry: RetryPolicy,
    pub(crate) timeout: Option<Duration>,
    pub(crate) cancel_grace: Duration,
    pub(crate) executor: Option<String>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) metadata: serde_json::Map<String, serde_json::Value>,
    pub(crate) partitions: Option<Arc<dyn PartitionsDefinition>>,
    pub(crate) automation: Option<crate::automation::AutomationCondition>,
    pub(crate) func: Option<AssetFn>,
}

impl Asset {
    /// The default [`Asset::cancel_grace`]: 5 s.
    pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(5);

    /// Declares an asset called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Asset {
            automation: None,
            name: Arc::from(name.into()),
            depends_on: Vec::new(),
            mappings: BTreeMap::new(),
            optional: BTreeSet::new(),
            requires: Arc::from([]),
            description: None,
            io_manager: None,
            retry: RetryPolicy::NONE,
            timeout: None,
            cancel_grace: Asset::DEFAULT_CANCEL_GRACE,
            executor: None,
            tags: BTreeMap::new(),
            metadata: serde_json::Map::new(),
            partitions: None,
            func: None,
        }
    }

    /// Assets whose outputs this one reads, for the same partition (or unpartitioned).
    pub fn depends_on<I, S>(mut self, deps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for dep in deps {
            let dep = dep.into();
            if !self.depends_on.contains(&dep) {
                self.depends_on.push(dep);
            }
        }
        self
    }

    /// A dependency read through a [`PartitionMapping`]: which of its partitions each
    /// partition of this asset reads (a month its days, a year its months, a day the day
    /// before). The asset may name itself with a mapping that reads only earlier partitions
    /// (`PartitionMapping::time_window().offset(-1)`): a cumulative asset. Read the partitions
    /// with [`Context::deps`](crate::Context::deps).
    ///
    /// ```
    /// use flowstone::{Asset, PartitionMapping};
    /// use flowstone::partition::{Daily, Monthly};
    ///
    /// let monthly = Asset::new("monthly_total")
    ///     .partitioned_by(Monthly::from("2024-01"))
    ///     .depends_on_mapped("daily_sales", PartitionMapping::time_window())
    ///     .execute(|ctx| async move {
    ///         let days = ctx.deps::<f64>("daily_sales")?;
    ///         Ok::<_, flowstone::Error>(days.iter().map(|(_, v)| v).sum::<f64>())
    ///     });
    /// # let _ = monthly;
    /// ```
    pub fn depends_on_mapped(mut self, dep: impl Into<String>, mapping: PartitionMapping) -> Self {
        let dep = dep.into();
        if !self.depends_on.contains(&dep) {
            self.depends_on.push(dep.clone());
        }
        self.mappings.insert(dep, mapping);
        self
    }

    /// Marks some of `depends_on` optional: when missing they arrive as `None` instead of
    /// stopping the run with `DependencyNotReady`.
    pub fn optional<I, S>(mut self, deps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.optional.extend(deps.into_iter().map(Into::into));
        self
    }

    /// Resources this asset uses; only these are handed to it.
    pub fn requires<I, S>(mut self, resources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut all = self.requires.to_vec();
        all.extend(resources.into_iter().map(Into::into));
        self.requires = Arc::from(all);
        self
    }

    /// When this asset's partitions run by themselves (see [`crate::automation`]): evaluated
    /// by a worker that runs automation.
    pub fn automation(mut self, condition: crate::automation::AutomationCondition) -> Self {
        self.automation = Some(condition);
        self
    }

    /// The automation condition, if any.
    pub fn automation_condition(&self) -> Option<&crate::automation::AutomationCondition> {
        self.automation.as_ref()
    }

    /// A sentence for people: what this asset holds.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The IO manager (by registered name) that stores this asset's output.
    pub fn io_manager(mut self, name: impl Into<String>) -> Self {
        self.io_manager = Some(name.into());
        self
    }

    /// Attempts and backoff.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// The longest one attempt may run; overrides the executor's default.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long the function may go on after its cancellation token fires, to clean up, before
    /// its future is dropped (default [`Asset::DEFAULT_CANCEL_GRACE`]). A cancelled
    /// materialization ends `Cancelled` whatever the function returns in that time, so its
    /// output is not stored.
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = grace;
        self
    }

    /// The executor (by registered name: `sync`, `async`, `serial`, `queue` or a custom one) used
    /// when a run does not choose one.
    pub fn executor(mut self, name: impl Into<String>) -> Self {
        self.executor = Some(name.into());
        self
    }

    /// A key/value tag, for selection and display.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }

    /// Static metadata, copied into every materialization record of this asset.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The set of partitions this asset has.
    pub fn partitioned_by(mut self, definition: impl PartitionsDefinition) -> Self {
        self.partitions = Some(Arc::new(definition));
        self
    }

    /// The async function that computes the asset.
    pub fn execute<F, Fut, T, E>(mut self, f: F) -> Self
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<T, E>> + Send + 'static,
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Into<Error> + 'static,
    {
        self.func = Some(Arc::new(move |ctx| {
            f(ctx)
                .map(|result| result.map(Output::new).map_err(Into::into))
                .boxed()
        }));
        self
    }

    /// A blocking function that computes the asset; it runs on tokio's blocking pool.
    pub fn execute_blocking<F, T, E>(mut self, f: F) -> Self
    where
        F: Fn(Context) -> std::result::Result<T, E> + Send + Sync + 'static,
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        E: Into<Error> + Send + 'static,
    {
        let f = Arc::new(f);
        self.func = Some(Arc::new(move |ctx| {
            let f = Arc::clone(&f);
            let asset = ctx.asset().to_owned();
            async move {
                match tokio::task::spawn_blocking(move || f(ctx)).await {
                    Ok(result) => result.map(Output::new).map_err(Into::into),
                    Err(join) if join.is_panic() => {
                        Err(Error::panicked(&asset, &panic_message(join.into_panic())))
                    }
                    Err(_) => Err(Error::cancelled(&asset)),
                }
            }
            .boxed()
        }));
        self
    }

    /// The asset's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The assets it reads.
    pub fn dependencies(&self) -> &[String] {
        &self.depends_on
    }

    /// The dependencies other than the asset itself: the edges of the asset graph (a
    /// self-dependency reads earlier partitions, so it orders partitions, not assets).
    pub fn upstream_assets(&self) -> impl Iterator<Item = &str> {
        self.depends_on
            .iter()
            .map(String::as_str)
            .filter(|d| *d != &*self.name)
    }

    /// The mapping of dependency `dep`: the one given with
    /// [`Asset::depends_on_mapped`], or, once the asset is in a built registry, the default
    /// for its two definitions. `None` for an unknown dependency, or before the build for a
    /// dependency given without one.
    pub fn mapping(&self, dep: &str) -> Option<&PartitionMapping> {
        self.mappings.get(dep)
    }

    /// `dep` as people read it in listings: `dep`, `dep?` when optional, and its mapping in
    /// brackets when it is not the identity (`monthly_stats [time window]`).
    pub fn dependency_label(&self, dep: &str) -> String {
        let optional = if self.is_optional(dep) { "?" } else { "" };
        match self.mapping(dep).filter(|m| !m.is_identity()) {
            Some(mapping) => format!("{dep}{optional} [{}]", mapping.describe()),
            None => format!("{dep}{optional}"),
        }
    }

    /// Whether `dep` is optional.
    pub fn is_optional(&self, dep: &str) -> bool {
        self.optional.contains(dep)
    }

    /// The resources it declared.
    pub fn required_resources(&self) -> &[String] {
        &self.requires
    }

    /// Its description.
    pub fn description_text(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The IO manager it names, if any.
    pub fn io_manager_name(&self) -> Option<&str> {
        self.io_manager.as_deref()
    }

    /// Its retry policy.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry.clone()
    }

    /// Its own timeout, if set.
    pub fn timeout_value(&self) -> Option<Duration> {
        self.timeout
    }

    /// How long it may clean up after a cancel ([`Asset::cancel_grace`]).
    pub fn cancel_grace_value(&self) -> Duration {
        self.cancel_grace
    }

    /// The executor it names, if any.
    pub fn default_executor(&self) -> Option<&str> {
        self.executor.as_deref()
    }

    /// Its tags.
    pub fn tags(&self) -> &BTreeMap<String, String> {
        &self.tags
    }

    /// Its static metadata.
    pub fn static_metadata(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.metadata
    }

    /// Its partitions definition, if partitioned.
    pub fn partitions(&self) -> Option<&Arc<dyn PartitionsDefinition>> {
        self.partitions.as_ref()
    }

    pub(crate) fn function(&self) -> Option<&AssetFn> {
        self.func.as_ref()
    }
}

impl fmt::Debug for Asset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Asset")
            .field("name", &self.name)
            .field("depends_on", &self.depends_on)
            .field("mappings", &self.mappings)
            .field("optional", &self.optional)
            .field("requires", &self.requires)
            .field("partitions", &self.partitions)
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .field("executor", &self.executor)
            .finish_non_exhaustive()
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("a panic without a message")
    }
}
