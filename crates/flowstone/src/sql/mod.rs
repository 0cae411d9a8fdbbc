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

mod blob_io;
mod lineage;
pub(crate) mod migrations;
mod postgres;
mod reader;
mod retention;
mod rows;
mod sqlite;
mod store;
mod writer;

use flowstone_queue::Database;

pub use blob_io::SqlBlobIo;
pub use lineage::SqlLineage;
pub use migrations::MIGRATIONS;
pub use store::SqlStore;

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
