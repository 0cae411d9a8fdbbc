//! [`Context`]: what an asset's function receives.
//!
//! It owns everything the function may need, so the function's future is `'static` and can run on
//! any task: the asset and partition, the run and attempt, the loaded dependencies, the declared
//! resources, the job's metadata, a cancellation token and a tracing span.

use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind, Result};
use crate::ids::RunId;
use crate::output::Output;
use crate::partition::Partition;
use crate::resource::Resources;

/// The outputs of an asset's dependencies for the partition being materialized: for each
/// dependency, the (partition, output)s its mapping reads, in partition order. A missing
/// optional dependency (or a partition a mapping allows to be missing) is left out.
pub type Dependencies = HashMap<String, Vec<(Partition, Output)>>;

/// What an asset's function receives.
pub struct Context {
    pub(crate) asset: Arc<str>,
    /// The resources the asset declared with `requires`: the only ones it is handed.
    pub(crate) requires: Arc<[String]>,
    pub(crate) partition: Partition,
    pub(crate) run_id: RunId,
    pub(crate) attempt: u32,
    pub(crate) deps: Arc<Dependencies>,
    pub(crate) resources: Resources,
    pub(crate) metadata: Arc<serde_json::Map<String, serde_json::Value>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) span: tracing::Span,
}

impl Context {
    /// The asset being materialized.
    pub fn asset(&self) -> &str {
        &self.asset
    }

    /// The partition being materialized.
    pub fn partition(&self) -> &Partition {
        &self.partition
    }

    /// The run this materialization belongs to.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// The attempt number, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The output of dependency `name`, as `T`: for a dependency read for one partition (the
    /// same one, the unpartitioned output, or any mapping that maps to one). A mapping that
    /// reads several partitions is read with [`Context::deps`].
    ///
    /// For an optional dependency that is missing, `T` must accept JSON `null` (read it as
    /// `Option<U>`), or use [`Context::optional_dep`].
    pub fn dep<T: DeserializeOwned + Send + Sync + 'static>(&self, name: &str) -> Result<T> {
        match self.single(name)? {
            Some(output) => self.typed(name, output.clone().value::<T>()),
            None => serde_json::from_value(serde_json::Value::Null)
                .map_err(|_| self.not_materialized(name)),
        }
    }

    /// The output of dependency `name` without copying it when it is held in memory.
    pub fn dep_arc<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        name: &str,
    ) -> Result<Arc<T>> {
        match self.single(name)? {
            Some(output) => self.typed(name, output.get::<T>()),
            None => Err(self.not_materialized(name)),
        }
    }

    /// The output of an optional dependency, `None` when it is not materialized.
    pub fn optional_dep<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        name: &str,
    ) -> Result<Option<T>> {
        self.single(name)?
            .map(|output| self.typed(name, output.clone().value::<T>()))
            .transpose()
    }

    /// Every partition of dependency `name` that this partition reads through its mapping, as
    /// (partition, `T`) in partition order: a month's days, a year's months, the previous day
    /// (none for the first partition of a self-dependency).
    pub fn deps<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        name: &str,
    ) -> Result<Vec<(Partition, T)>> {
        self.lookup(name)?
            .iter()
            .map(|(partition, output)| {
                Ok((
                    partition.clone(),
                    self.typed(name, output.clone().value::<T>())?,
                ))
            })
            .collect()
    }

    /// [`Context::deps`] without copying outputs held in memory.
    pub fn deps_arc<T: DeserializeOwned + Send + Sync + 'static>(
        &self,
        name: &str,
    ) -> Result<Vec<(Partition, Arc<T>)>> {
        self.lookup(name)?
            .iter()
            .map(|(partition, output)| {
                Ok((partition.clone(), self.typed(name, output.get::<T>())?))
            })
            .collect()
    }

    fn not_materialized(&self, name: &str) -> Error {
        Error::new(
            ErrorKind::DependencyNotReady,
            format!(
                "dependency '{name}' of asset '{}' has nothing to read for this partition (a \
                 dependency marked optional that is not materialized, or a mapping that reads no \
                 partition here, like the first partition of a self-dependency); read it as \
                 Option<_>, with ctx.optional_dep, or with ctx.deps",
                self.asset()
            ),
        )
    }

    /// Names the dependency and this asset in a failed typed read (the output's error names
    /// the stored and the expected type).
    fn typed<T>(&self, name: &str, read: Result<T>) -> Result<T> {
        read.map_err(|err| {
            Error::new(
                err.kind(),
                format!(
                    "asset '{}' cannot read dependency '{name}': {}",
                    self.asset(),
                    err.message()
                ),
            )
            .with_retryable(err.retryable())
            .with_asset(self.asset())
        })
    }

    /// The one output of a dependency read for a single partition (`None`: it is missing).
    fn single(&self, name: &str) -> Result<Option<&Output>> {
        match self.lookup(name)? {
            [] => Ok(None),
            [(_, output)] => Ok(Some(output)),
            many => Err(Error::invalid_options(format!(
                "asset '{}' read dependency '{name}' as one value, but its mapping reads {} \
                 partitions; read them with ctx.deps::<T>(\"{name}\")",
                self.asset(),
                many.len()
            ))
            .with_asset(self.asset())),
        }
    }

    fn lookup(&self, name: &str) -> Result<&[(Partition, Output)]> {
        match self.deps.get(name) {
            Some(found) => Ok(found),
            None => Err(Error::invalid_options(format!(
                "asset '{}' read dependency '{name}', which it does not declare in depends_on",
                self.asset()
            ))),
        }
    }

    /// The resource `name`, which the asset must declare with `requires`.
    pub async fn resource<T: Send + Sync + 'static>(&self, name: &str) -> Result<Arc<T>> {
        if !self.requires.iter().any(|r| r == name) {
            return Err(Error::new(
                ErrorKind::Resource,
                format!(
                    "asset '{}' used resource '{name}' without declaring it; add .requires([\"{name}\"])",
                    self.asset()
                ),
            ));
        }
        self.resources.get(name).await
    }

    /// The job's metadata.
    pub fn metadata(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.metadata
    }

    /// Fires when the work is cancelled; long loops should check it.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Whether the work was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The tracing span of this materialization.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }
}
