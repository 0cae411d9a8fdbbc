//! SQL storage on SQLite and PostgreSQL: the materialization store, lineage and a blob IO
//! manager, sharing one [`flowstone_queue::Database`] (and so one pool) with the durable queue.
//!
//! Laid out as flowstone-queue's engine is (and as sqlx's drivers are): what both engines share
//! lives once, everything that differs per engine lives in its dialect module.
//!
//! - `store`, `lineage` and `blob_io` implement the storage traits and pick the dialect
//!   for each call; the `writer` (group commit) and the `reader` (group reads) batch
//!   concurrent calls without knowing any SQL.
//! - `rows` encodes the model into the values the columns hold and decodes rows back, once for
//!   both engines: every SELECT of both dialects yields the same column names and types (ids and
//!   partitions as text, JSON as text, times as microseconds since the epoch).
//! - `sqlite` and `postgres` hold the SQL text, the binds and the transactions.
//! - `retention` walks the records table for retention in bounded steps.
//! - `migrations` creates and upgrades the tables.
//!
//! Each engine is a cargo feature (`sqlite`, `postgres`), and this module is where the crate
//! says so: the dialect modules are compiled only with their feature, and every choice of
//! dialect goes through `by_engine!`. Because cargo unifies features, flowstone-queue may
//! have an engine this crate was built without (another crate asked for it); a database of
//! that engine then gets an error saying which feature to enable, never a panic.

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!(
    "flowstone's `database` feature needs an engine: enable `sqlite`, `postgres`, or both \
     (the default)"
);

mod automation;
mod backfills;
mod blob_io;
mod lineage;
pub(crate) mod migrations;
#[cfg(feature = "postgres")]
mod postgres;
mod reader;
mod retention;
mod rows;
#[cfg(feature = "sqlite")]
mod sqlite;
mod statuses;
mod store;
mod writer;

/// Runs the arm for the engine of a [`flowstone_queue::Pool`] (from an `async fn` returning
/// [`Result`]):
/// `by_engine!(db.pool(), pool => { sqlite: sqlite::f(pool).await, postgres: postgres::f(pool).await })`.
/// The arm of an engine this build lacks is compiled out; a pool of that engine returns
/// [`engine_not_built`].
macro_rules! by_engine {
    ($pool:expr, $bind:pat => { sqlite: $sqlite:expr, postgres: $postgres:expr $(,)? }) => {
        match $pool {
            #[cfg(feature = "sqlite")]
            flowstone_queue::Pool::Sqlite($bind) => $sqlite,
            #[cfg(feature = "postgres")]
            flowstone_queue::Pool::Postgres($bind) => $postgres,
            // Reachable only when flowstone-queue has an engine this crate was built without.
            #[allow(unreachable_patterns)]
            _ => return Err($crate::sql::engine_not_built()),
        }
    };
}
pub(crate) use by_engine;

/// The error for a database of the one engine this build lacks (a build lacking both does
/// not compile).
pub(crate) fn engine_not_built() -> Error {
    let (engine, feature) = if cfg!(feature = "sqlite") {
        ("PostgreSQL", "postgres")
    } else {
        ("SQLite", "sqlite")
    };
    Error::store(format!(
        "this build of flowstone has no {engine} support: enable flowstone's `{feature}` feature"
    ))
}

use flowstone_queue::Database;

pub use automation::SqlAutomation;
pub use backfills::SqlBackfills;
pub use blob_io::SqlBlobIo;
pub use lineage::SqlLineage;
pub use migrations::MIGRATIONS;
pub use store::SqlStore;
pub(crate) use writer::{Completion, Held, hold};

use crate::error::{Error, Result};

/// The store, lineage and blob IO on one database, sharing one group-commit writer so that the
/// rows of a materialization go to the database in the same transactions.
#[derive(Debug, Clone)]
pub struct SqlStorage {
    /// Materialization records.
    pub store: SqlStore,
    /// Lineage.
    pub lineage: SqlLineage,
    /// Outputs.
    pub io: SqlBlobIo,
}

impl SqlStorage {
    /// All three on `db` (run [`migrate`] once first).
    pub fn new(db: Database) -> Self {
        let writer = std::sync::Arc::new(writer::Writer::new(db.clone()));
        SqlStorage {
            store: SqlStore::with_writer(db.clone(), std::sync::Arc::clone(&writer)),
            lineage: SqlLineage::with_writer(db.clone(), std::sync::Arc::clone(&writer)),
            io: SqlBlobIo::with_writer(db, writer),
        }
    }
}

/// Creates (or upgrades) FlowStone's own tables in `db`; idempotent, safe from many processes.
pub async fn migrate(db: &Database) -> Result<()> {
    // Refuse here rather than at the first store call: the tables could be made (the queue's
    // runner has the engine) but not used.
    by_engine!(db.pool(), _ => { sqlite: (), postgres: () });
    migrations::MIGRATOR
        .run(db)
        .await
        .map(drop)
        .map_err(|e| Error::store(format!("could not migrate FlowStone's tables: {e}")))
}

/// A database error as a FlowStone store error saying what was being done.
pub(crate) fn sql_error(action: &str, err: sqlx::Error) -> Error {
    Error::store(format!("could not {action}: {err}")).with_source(err)
}
