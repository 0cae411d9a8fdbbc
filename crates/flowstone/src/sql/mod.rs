//! SQL storage on SQLite and PostgreSQL: the materialization store, lineage and a blob IO
//! manager, sharing one [`flowstone_queue::Database`] (and so one pool) with the durable queue.
//!
//! One set of SQL serves both engines: timestamps are stored as microseconds since the epoch,
//! ids and partitions as text (the partition's canonical encoding), JSON as text. Placeholders
//! are `$n`, numbered in order of first use, which both engines accept. The only per-engine code
//! is the schema (the `BYTEA`/`BLOB` spelling), in [`migrations`]. Every query is written once and
//! expanded for both pool types by [`on_pool!`].

mod blob_io;
mod lineage;
pub(crate) mod migrations;
mod reader;
mod store;
mod writer;

use chrono::{DateTime, Utc};
use flowstone_queue::Database;

pub use blob_io::SqlBlobIo;
pub use lineage::SqlLineage;
pub use store::SqlStore;

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

use crate::error::{Error, Result};

/// Runs `$body` with `$pool` bound to the SQLite or the PostgreSQL pool of `$db`.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db.pool() {
            flowstone_queue::Pool::Sqlite($pool) => $body,
            flowstone_queue::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Creates (or upgrades) FlowStone's own tables in `db`; idempotent, safe from many processes.
pub async fn migrate(db: &Database) -> Result<()> {
    migrations::MIGRATOR
        .run(db)
        .await
        .map(drop)
        .map_err(|e| Error::store(format!("could not migrate FlowStone's tables: {e}")))
}

/// Appends `count` comma-separated placeholders: `$first`, `$first+1`.. for PostgreSQL, plain
/// `?` for SQLite (whose driver resolves each `$n` by name, which costs quadratic time on
/// statements with thousands of parameters).
pub(crate) fn push_placeholders(sql: &mut String, numbered: bool, first: usize, count: usize) {
    for n in first..first + count {
        if n > first {
            sql.push_str(", ");
        }
        if numbered {
            sql.push('$');
            sql.push_str(&n.to_string());
        } else {
            sql.push('?');
        }
    }
}

pub(crate) fn sql_error(action: &str, err: sqlx::Error) -> Error {
    Error::store(format!("could not {action}: {err}")).with_source(err)
}

pub(crate) fn to_micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(crate) fn from_micros(micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| Error::store(format!("timestamp {micros} µs is out of range")))
}

/// Typed column reads with FlowStone errors, for the row types of both engines.
pub(crate) trait RowExt {
    fn text(&self, column: &str) -> Result<String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn int(&self, column: &str) -> Result<i64>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>>;
}

macro_rules! row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn text(&self, column: &str) -> Result<String> {
                sqlx::Row::try_get(self, column).map_err(|e| sql_error("read a row", e))
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>> {
                sqlx::Row::try_get(self, column).map_err(|e| sql_error("read a row", e))
            }
            fn int(&self, column: &str) -> Result<i64> {
                sqlx::Row::try_get(self, column).map_err(|e| sql_error("read a row", e))
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>> {
                sqlx::Row::try_get(self, column).map_err(|e| sql_error("read a row", e))
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>> {
                sqlx::Row::try_get(self, column).map_err(|e| sql_error("read a row", e))
            }
        }
    };
}
row_ext!(sqlx::sqlite::SqliteRow);
row_ext!(sqlx::postgres::PgRow);

pub(crate) fn parse_run_id(text: &str) -> Result<crate::ids::RunId> {
    text.parse()
        .map_err(|_| Error::store(format!("stored run id '{text}' is not a UUID")))
}

pub(crate) fn parse_partition(text: &str) -> Result<crate::partition::Partition> {
    crate::partition::Partition::decode(text)
        .map_err(|e| Error::store(format!("stored partition is malformed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::push_placeholders;

    #[test]
    fn placeholders_are_numbered_for_postgres_and_plain_for_sqlite() {
        let mut numbered = String::new();
        push_placeholders(&mut numbered, true, 3, 3);
        assert_eq!(numbered, "$3, $4, $5");
        let mut plain = String::new();
        push_placeholders(&mut plain, false, 3, 2);
        assert_eq!(plain, "?, ?");
    }
}
