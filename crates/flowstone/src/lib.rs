//! FlowStone: asset-first data orchestration.
//!
//! Declare [`Asset`]s (named data artifacts, their dependencies, and an async function that
//! computes them); FlowStone materializes them per [`Partition`], records every run in a
//! [`store::MaterializationStore`], tracks [`lineage`], and executes through pluggable
//! [`executor`]s: inline ([`SyncExecutor`]), on local tasks ([`TaskAsyncExecutor`]), one step at a
//! time ([`SerialExecutor`]), or through your own [`Executor`].
//!
//! ```
//! use flowstone::{Asset, Daily, FlowStone, Monthly, PartitionMapping, Run};
//! # #[tokio::main]
//! # async fn main() -> flowstone::Result<()> {
//! let fs = FlowStone::builder()
//!     .asset(Asset::new("numbers").partitioned_by(Daily::from("2024-01-01").to("2024-12-31"))
//!         .execute(|_ctx| async move { Ok::<_, flowstone::Error>(vec![1u64, 2, 3]) }))
//!     // A month reads its days: a time-window partition mapping.
//!     .asset(Asset::new("monthly_total").partitioned_by(Monthly::from("2024-01").to("2024-12"))
//!         .depends_on_mapped("numbers", PartitionMapping::time_window())
//!         .execute(|ctx| async move {
//!             let days = ctx.deps::<Vec<u64>>("numbers")?;
//!             Ok::<_, flowstone::Error>(days.iter().flat_map(|(_, n)| n).sum::<u64>())
//!         }))
//!     .build()?; // the graph and its mappings are checked here
//! let january = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
//! let total: u64 = fs
//!     .materialize("monthly_total", Run::partition(january).with_upstream(true))
//!     .await?
//!     .value()?;
//! assert_eq!(total, 31 * 6);
//! # Ok(()) }
//! ```
//!
//! # Layers
//!
//! Modules depend on the ones below them, never on those above (no module cycles):
//!
//! 1. [`partition_key`] (the [`Partition`] value and its encoding), [`suggest`]: no crate deps.
//! 2. [`error`] (carries a partition); then [`ids`], [`output`], [`resource`], [`deferred`].
//! 3. The model: [`partition`] (definitions of partition sets), [`context`] (what an asset's
//!    function receives), [`asset`], [`registry`] (the validated graph), [`job`] (a request as
//!    plain data).
//! 4. Storage: [`io`], [`store`], [`lineage`], and [`storage`] (the three together), with their
//!    SQL implementations in `sql`.
//! 5. Running one attempt: [`hook`] (the middleware stack, which sees only storage and
//!    resources), [`runtime`] (loads dependencies, runs the stack, retries).
//! 6. Scheduling: [`executor`] (sync, async, serial, the trait), `queue` (the durable executor
//!    and its worker, which run jobs through the runtime), [`run`] (a caller's options).
//! 7. [`dispatch`] (picks the executor, builds checked jobs), [`backfill`] (many partitions
//!    through a dispatcher), and at the top [`api`] ([`FlowStone`] and its builder).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod asset;
pub mod automation;
pub mod backfill;
pub mod context;
pub mod deferred;
pub mod dispatch;
pub mod error;
pub mod executor;
pub mod hook;
pub mod ids;
pub mod io;
pub mod job;
pub mod limits;
pub mod lineage;
pub mod mapping;
pub mod output;
pub mod partition;
pub mod partition_key;
#[cfg(feature = "database")]
pub mod queue;
pub mod registry;
pub mod resource;
pub mod retention;
pub mod run;
pub mod runtime;
pub mod selection;
#[cfg(feature = "database")]
pub mod sql;
pub mod storage;
pub mod store;
pub mod suggest;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use api::FlowStone;
pub use asset::{Asset, RetryPolicy};
pub use automation::{
    AutomationCondition, RunRequest, Schedule, Sensor, SensorResult, TickPartition,
};
pub use backfill::{Backfill, BackfillReport, PartitionOutcome, PartitionResult, Progress};
pub use context::Context;
pub use error::{Error, ErrorKind, ErrorRecord, Result};
pub use executor::{
    Capabilities, Capability, ExecContext, ExecOptions, Executor, SerialExecutor, Step, Strategy,
    SyncExecutor, TaskAsyncExecutor,
};
pub use flowstone_backoff::{Backoff, Exponential};
pub use ids::{BackfillId, JobId, RunId};
pub use io::{FileIo, IoManager, MemoryIo};
pub use job::{Job, JobStatus};
pub use lineage::Direction;
pub use mapping::PartitionMapping;
pub use output::Output;
pub use partition::{
    CustomPartitions, Daily, DateSpec, Hourly, MAX_PARTITIONS, MAX_TUPLE_DEPTH, Monthly,
    MultiPartitions, Partition, PartitionKeyError, PartitionsDefinition, StaticPartitions, Yearly,
    date_range,
};
pub use registry::Registry;
pub use run::Run;
pub use selection::AssetSelection;
pub use tokio_util::sync::CancellationToken;
