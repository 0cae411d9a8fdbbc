//! One error type for the whole library.
//!
//! Every failure carries a [`ErrorKind`] (what went wrong), the asset and partition it concerns
//! when there is one, a `retryable` flag that retry policies and the queue read, and the source
//! error. Messages name the input that caused them and, where possible, say what to do.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::partition_key::{Partition, PartitionKeyError};

/// A `Result` whose error is FlowStone's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, as a value callers can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// No asset of that name is registered.
    AssetNotFound,
    /// A dependency has no stored output for the partition.
    DependencyNotReady,
    /// The asset's function returned an error.
    ExecutionFailed,
    /// The asset's function panicked.
    Panicked,
    /// The asset ran longer than its timeout.
    ExecutionTimeout,
    /// The work was cancelled.
    Cancelled,
    /// A partition value or a person's partition input is malformed.
    InvalidPartition,
    /// An option was given that the chosen executor cannot honour, or an option's value is bad.
    InvalidOptions,
    /// The operation is not supported (e.g. `status` on an executor that keeps none).
    Unsupported,
    /// The asset graph is invalid: duplicate names, unknown dependencies, cycles.
    InvalidGraph,
    /// A resource is not registered, not declared, or its setup failed.
    Resource,
    /// Reading or writing an asset's output failed.
    Io,
    /// The materialization or lineage store failed.
    Store,
    /// The durable queue failed.
    Queue,
    /// The configuration is invalid (hooks, executors, URLs).
    Config,
    /// A job, or a stored output, that was asked for does not exist.
    NotFound,
    /// The job has already finished (completed, failed or discarded), so it cannot be
    /// cancelled any more.
    AlreadyFinished,
    /// Not attempted: a partition it needs failed (or was cancelled) in the same backfill.
    UpstreamFailed,
    /// A backfill's partition already has an active job (of an overlapping backfill, or of
    /// one whose process died), so it was not enqueued again.
    InFlight,
}

impl ErrorKind {
    /// Whether an error of this kind is worth retrying unless the error says otherwise.
    pub fn default_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::ExecutionFailed
                | ErrorKind::Panicked
                | ErrorKind::ExecutionTimeout
                | ErrorKind::DependencyNotReady
                | ErrorKind::Io
                | ErrorKind::Store
                | ErrorKind::Queue
        )
    }
}

/// FlowStone's error: a kind, a message naming the bad input, the asset and partition concerned,
/// whether a retry may help, and the underlying cause.
///
/// Cheap to clone (the source is shared), so results can be kept in status tables and handed to
/// several waiters.
#[derive(Clone)]
pub struct Error(Box<ErrorInner>);

#[derive(Clone)]
struct ErrorInner {
    kind: ErrorKind,
    message: String,
    asset: Option<String>,
    partition: Option<Partition>,
    retryable: bool,
    missing: Vec<String>,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

/// The first five of `items` as `show` writes them, comma-separated, then `and N more` for
/// the rest: how messages name a long list of inputs.
pub(crate) fn first_few<T>(items: &[T], show: impl Fn(&T) -> String) -> String {
    const SHOWN: usize = 5;
    let mut listed: Vec<String> = items.iter().take(SHOWN).map(show).collect();
    if items.len() > SHOWN {
        listed.push(format!("and {} more", items.len() - SHOWN));
    }
    listed.join(", ")
}

impl Error {
    /// An error of `kind` with a message; `retryable` follows [`ErrorKind::default_retryable`].
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(ErrorInner {
            kind,
            message: message.into(),
            asset: None,
            partition: None,
            retryable: kind.default_retryable(),
            missing: Vec::new(),
            source: None,
        }))
    }

    /// The asset's function failed; a retry may help. Use [`Error::permanent`] when it cannot.
    pub fn failed(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::ExecutionFailed, message)
    }

    /// The asset's function failed in a way no retry can fix (bad data, bad configuration).
    pub fn permanent(message: impl Into<String>) -> Self {
        Error::failed(message).with_retryable(false)
    }

    /// `name` is not a registered asset; `suggestion` is a near name, if there is one.
    pub fn asset_not_found(name: &str, suggestion: Option<&str>) -> Self {
        let hint = match suggestion {
            Some(near) => format!("; did you mean '{near}'?"),
            None => String::from("; list the registered assets with `assets`"),
        };
        Error::new(
            ErrorKind::AssetNotFound,
            format!("asset '{name}' is not registered{hint}"),
        )
        .with_asset(name)
    }

    /// `asset` cannot run because `missing` have no output for the partition.
    pub fn dependency_not_ready(asset: &str, missing: Vec<String>) -> Self {
        let mut err = Error::new(
            ErrorKind::DependencyNotReady,
            format!(
                "asset '{asset}' cannot run: dependencies not materialized for this partition: {} \
                 (materialize them first, or pass `with_upstream`)",
                missing.join(", ")
            ),
        )
        .with_asset(asset);
        err.0.missing = missing;
        err
    }

    /// `asset` at `partition` cannot run because the `missing` (dependency, partition)s have no
    /// output. When every one is at `partition` itself (or unpartitioned), this is
    /// [`Error::dependency_not_ready`]; otherwise the message names the first few
    /// (dependency, partition)s and how many more there are.
    pub fn dependency_partitions_not_ready(
        asset: &str,
        partition: &Partition,
        missing: &[(String, Partition)],
    ) -> Self {
        let mut names: Vec<String> = Vec::new();
        for (name, _) in missing {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        if missing
            .iter()
            .all(|(_, p)| p == partition || p.is_unpartitioned())
        {
            return Error::dependency_not_ready(asset, names);
        }
        let mut err = Error::new(
            ErrorKind::DependencyNotReady,
            format!(
                "asset '{asset}' cannot run: {} dependency partitions are not materialized: {} \
                 (materialize them first, or pass `with_upstream`)",
                missing.len(),
                first_few(missing, |(name, p)| format!("{name} {p}"))
            ),
        )
        .with_asset(asset);
        err.0.missing = names;
        err
    }

    /// The asset ran longer than `timeout`.
    pub fn timeout(asset: &str, timeout: std::time::Duration) -> Self {
        Error::new(
            ErrorKind::ExecutionTimeout,
            format!("asset '{asset}' timed out after {timeout:?}"),
        )
        .with_asset(asset)
    }

    /// The work on `asset` was cancelled.
    pub fn cancelled(asset: &str) -> Self {
        Error::new(
            ErrorKind::Cancelled,
            format!("asset '{asset}' was cancelled"),
        )
        .with_asset(asset)
    }

    /// The asset's function panicked with `message`.
    pub fn panicked(asset: &str, message: &str) -> Self {
        Error::new(
            ErrorKind::Panicked,
            format!("asset '{asset}' panicked: {message}"),
        )
        .with_asset(asset)
    }

    /// `job` cannot be cancelled: it has already finished in `state` (`completed`, `failed`,
    /// `discarded`).
    pub fn already_finished(job: impl fmt::Display, state: &str) -> Self {
        Error::new(
            ErrorKind::AlreadyFinished,
            format!(
                "job {job} cannot be cancelled: it is already {state}; only a pending or running \
                 job can be cancelled"
            ),
        )
    }

    /// `partition` of `asset` already has an active job, `job`, so a backfill did not
    /// enqueue it again.
    pub fn in_flight(asset: &str, partition: &Partition, job: impl fmt::Display) -> Self {
        Error::new(
            ErrorKind::InFlight,
            format!(
                "partition {partition} of asset '{asset}' already has an active job ({job}): not \
                 enqueued again, so it runs once, as that job"
            ),
        )
        .with_asset(asset)
        .with_partition(partition.clone())
    }

    /// `input` is not a valid partition; `expected` describes the accepted form.
    pub fn invalid_partition(input: &str, expected: impl fmt::Display) -> Self {
        PartitionKeyError::new(input, expected).into()
    }

    /// An option the chosen executor cannot honour, or an option with a bad value.
    pub fn invalid_options(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidOptions, message)
    }

    /// The operation is not supported by whatever was asked to do it.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Unsupported, message)
    }

    /// A configuration error (hooks, executors, resources, URLs).
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    /// A job or a stored output does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    /// The asset graph is invalid.
    pub fn invalid_graph(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidGraph, message)
    }

    /// Reading or writing an output failed.
    pub fn io(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Io, message)
    }

    /// The materialization or lineage store failed.
    pub fn store(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Store, message)
    }

    /// Attaches the asset this error concerns.
    pub fn with_asset(mut self, asset: impl Into<String>) -> Self {
        self.0.asset = Some(asset.into());
        self
    }

    /// Attaches the partition this error concerns.
    pub fn with_partition(mut self, partition: Partition) -> Self {
        self.0.partition = Some(partition);
        self
    }

    /// Overrides whether a retry may help.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.0.retryable = retryable;
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.0.source = Some(Arc::new(source));
        self
    }

    /// Fills in the asset and partition when the error does not name them yet.
    pub fn in_context(mut self, asset: &str, partition: &Partition) -> Self {
        if self.0.asset.is_none() {
            self.0.asset = Some(asset.to_owned());
        }
        if self.0.partition.is_none() {
            self.0.partition = Some(partition.clone());
        }
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message, without asset and partition.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The asset this error concerns.
    pub fn asset(&self) -> Option<&str> {
        self.0.asset.as_deref()
    }

    /// The partition this error concerns.
    pub fn partition(&self) -> Option<&Partition> {
        self.0.partition.as_ref()
    }

    /// Whether a retry may help.
    pub fn retryable(&self) -> bool {
        self.0.retryable
    }

    /// For [`ErrorKind::DependencyNotReady`]: the dependencies that had no output.
    pub fn missing_dependencies(&self) -> &[String] {
        &self.0.missing
    }

    /// A serializable snapshot of this error, for job rows and materialization records.
    pub fn to_record(&self) -> ErrorRecord {
        let e = &self.0;
        ErrorRecord {
            kind: e.kind,
            message: e.message.clone(),
            asset: e.asset.clone(),
            partition: e.partition.as_ref().map(Partition::encode),
            retryable: e.retryable,
            missing: e.missing.clone(),
            source: e.source.as_ref().map(|s| s.to_string()),
        }
    }

    /// Rebuilds an error from its record. The source survives as text only.
    pub fn from_record(record: ErrorRecord) -> Self {
        Error(Box::new(ErrorInner {
            kind: record.kind,
            message: match record.source {
                Some(source) if !record.message.contains(&source) => {
                    format!("{}: {source}", record.message)
                }
                _ => record.message,
            },
            asset: record.asset,
            partition: record
                .partition
                .and_then(|encoded| Partition::decode(&encoded).ok()),
            retryable: record.retryable,
            missing: record.missing,
            source: None,
        }))
    }
}

/// An [`Error`] as plain data: what travels in job rows and materialization records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorRecord {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The message.
    pub message: String,
    /// The asset concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// The partition concerned, encoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Whether a retry may help.
    pub retryable: bool,
    /// Missing dependencies, for `DependencyNotReady`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// The underlying cause, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl Error {
    /// The whole text: the message, what it concerns (the asset unless the message names it
    /// already, the partition as `show_partition` writes it), and the cause unless the message
    /// quotes it. `Display` writes partitions encoded; the CLI writes them as people type them.
    pub fn describe(&self, show_partition: impl Fn(&Partition) -> String) -> String {
        let mut text = self.0.message.clone();
        let asset = self
            .0
            .asset
            .as_deref()
            .filter(|asset| !text.contains(&format!("'{asset}'")));
        match (asset, &self.0.partition) {
            (Some(asset), Some(partition)) => {
                text.push_str(&format!(
                    " (asset '{asset}', partition {})",
                    show_partition(partition)
                ));
            }
            (Some(asset), None) => text.push_str(&format!(" (asset '{asset}')")),
            (None, Some(partition)) => {
                text.push_str(&format!(" (partition {})", show_partition(partition)));
            }
            (None, None) => {}
        }
        if let Some(source) = &self.0.source {
            // Messages often quote their cause already; say it once.
            let source = source.to_string();
            if !self.0.message.contains(&source) {
                text.push_str(": ");
                text.push_str(&source);
            }
        }
        text
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(Partition::encode))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.0.kind)
            .field("message", &self.0.message)
            .field("asset", &self.0.asset)
            .field("partition", &self.0.partition)
            .field("retryable", &self.0.retryable)
            .field("source", &self.0.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<PartitionKeyError> for Error {
    /// An `InvalidPartition` error with the same message.
    fn from(e: PartitionKeyError) -> Self {
        Error::new(ErrorKind::InvalidPartition, e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Error::io(err.to_string()).with_source(err)
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::io(format!("could not encode or decode a value as JSON: {err}")).with_source(err)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::failed(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::failed(message)
    }
}

impl From<Box<dyn std::error::Error + Send + Sync + 'static>> for Error {
    fn from(err: Box<dyn std::error::Error + Send + Sync + 'static>) -> Self {
        match err.downcast::<Error>() {
            Ok(err) => *err,
            Err(err) => {
                let mut wrapped = Error::failed("the asset's function failed");
                wrapped.0.source = Some(Arc::from(err));
                wrapped
            }
        }
    }
}
