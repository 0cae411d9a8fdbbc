//! # flowstone-queue
//!
//! A durable job queue for FlowStone, after Elixir's Oban, on one API over two engines:
//! SQLite (embedded; several processes may share one file) and PostgreSQL (many nodes).
//!
//! Jobs live in a `flowstone_jobs` table and stay there after they finish (until pruned),
//! so a job's status can always be read by id. A job moves through `available`,
//! `scheduled`, `executing`, `retryable` and ends `completed`, `discarded` or `cancelled`.
//! Workers claim in batches with `FOR UPDATE SKIP LOCKED` (PostgreSQL) or
//! `BEGIN IMMEDIATE` + `UPDATE … RETURNING` (SQLite), are woken by `LISTEN/NOTIFY` or
//! in-process signals plus polling, heartbeat while they run, and fence every
//! acknowledgement by the attempt they claimed. Delivery is at least once.
//!
//! Duties one node does for all (rescue of dead nodes' jobs, pruning, and the application's
//! [`WorkerBuilder::leader_duty`]) run on the worker holding the [`lease`]
//! [`MAINTENANCE_LEASE`]. Migrations ([`Migrator`]) record a checksum of each applied step
//! and refuse to run against a database whose applied SQL differs from this build's.
//!
//! ```no_run
//! use flowstone_queue::{Database, NewJob, Outcome, Queue, Worker};
//! use serde_json::json;
//! use std::time::Duration;
//!
//! # async fn demo() -> flowstone_queue::Result<()> {
//! let db = Database::connect("sqlite://jobs.db").await?;
//! let queue = Queue::new(db.clone());
//! queue.migrate().await?;
//!
//! let worker = Worker::builder(db)
//!     .queue("default", 10)
//!     .handler("greet", |ctx| async move {
//!         let name: String = match ctx.args() { Ok(n) => n, Err(e) => return Outcome::discard(e) };
//!         Outcome::complete_with(&format!("hello {name}"))
//!     })
//!     .start()
//!     .await?;
//!
//! let job = queue.insert(NewJob::new("greet", json!("ada"))).await?.job;
//! let done = queue.wait(job.id, Duration::from_secs(5)).await?;
//! assert_eq!(done.result, Some(json!("hello ada")));
//! worker.shutdown(Duration::from_secs(10)).await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client;
pub mod database;
mod durability;
mod engine;
pub mod error;
pub mod handler;
mod hub;
pub mod job;
pub mod lease;
pub mod migrate;
mod redact;
#[cfg(all(feature = "testing", feature = "sqlite", feature = "postgres"))]
pub mod testing;
pub mod transaction;
mod worker;

pub use client::Queue;
pub use database::{ConnectOptions, Database, Engine, FinishedJobs, Pool};
pub use durability::Durability;
pub use engine::UPSTREAM_FAILED;
pub use error::{Error, Result};
pub use flowstone_backoff::{Backoff, Exponential};
pub use handler::{HandlerOptions, JobContext, Outcome};
pub use job::{AttemptError, Inserted, InsertedId, Job, JobFilter, JobState, NewJob, Unique};
pub use lease::{LeaseHolder, MAINTENANCE_LEASE};
pub use migrate::{Migration, Migrator, QUEUE_MIGRATIONS};
pub use redact::{redact_url, redact_url_in};
pub use tokio_util::sync::CancellationToken;
pub use worker::{
    MAX_CONCURRENCY, ShutdownReport, Worker, WorkerBuilder, WorkerHandle, WorkerMetrics,
    WorkerSettings, default_node_name, describe_metrics,
};
/// The names of the queue's `metrics` (claim and ack latency, rescued and discarded jobs).
pub mod metric_names {
    pub use crate::worker::{ACK_SECONDS, CLAIM_SECONDS, DISCARDED, RESCUED};
}

/// Compiles the README's example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
