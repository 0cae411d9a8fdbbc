//! The SQLite dialect of FlowStone's storage. Times are INTEGER microseconds since the epoch,
//! JSON is TEXT, outputs are BLOBs. Placeholders are plain `?`, taken in order: sqlx's SQLite
//! driver resolves each `$n` by name, which costs quadratic time on statements with thousands
//! of parameters. A batch of writes is one query string holding its whole transaction, so the
//! write lock is held for one round trip to the connection's thread.

use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Connection, SqlitePool};

use super::retention::{self, Deleted, GroupStats, OrderKey};
use super::rows::{
    self, EdgeRow, FilterArg, LineageSide, OutputRow, RecordFilter, RecordRow, to_micros,
};
use super::sql_error;
use super::writer::{Batch, Completion};
use crate::error::Result;
use crate::io::{IoMetadata, Stored};
use crate::lineage::MaterializationKey;
use crate::store::Materialization;
use flowstone_queue::Database;

/// The record columns, as [`rows::materialization`] decodes them.
const RECORD_COLUMNS: &str = "asset, partition_key, run_id, status, executor, attempt, \
     started_at, finished_at, duration_us, error, metadata, backfill_id";

/// Columns of a record row as [`Part::bind`] binds them (those of `RECORD_UPSERT_HEAD`).
const RECORD_WIDTH: usize = 12;

/// Rows per multi-row statement: 12 columns × 200 rows stays well under SQLite's 32,766
/// bind parameters.
const ROWS_PER_STATEMENT: usize = 200;

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, SqliteArguments>;

pub(crate) async fn record(
    pool: &SqlitePool,
    [asset, partition, run_id]: [&str; 3],
) -> Result<Option<Materialization>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM flowstone_materializations
         WHERE asset = ? AND partition_key = ? AND run_id = ?"
    )))
    .bind(asset)
    .bind(partition)
    .bind(run_id)
    .fetch_optional(pool)
    .await
    .map_err(|e| sql_error("read a materialization", e))?;
    row.as_ref().map(rows::materialization).transpose()
}

pub(crate) async fn records(
    pool: &SqlitePool,
    filter: RecordFilter<'_>,
) -> Result<Vec<Materialization>> {
    use std::fmt::Write as _;
    let set = filter.set();
    let mut sql = format!("SELECT {RECORD_COLUMNS} FROM flowstone_materializations");
    for (i, arg) in set.iter().enumerate() {
        sql.push_str(if i == 0 { " WHERE " } else { " AND " });
        let _ = match arg {
            FilterArg::Text(column, _) => write!(sql, "{column} = ?{}", i + 1),
            FilterArg::FinishedAfter(_) => write!(sql, "finished_at > ?{}", i + 1),
        };
    }
    let _ = write!(
        sql,
        " ORDER BY started_at DESC, run_id DESC LIMIT ?{}",
        set.len() + 1
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for arg in set {
        query = match arg {
            FilterArg::Text(_, value) => query.bind(value),
            FilterArg::FinishedAfter(us) => query.bind(us),
        };
    }
    let found: Vec<SqliteRow> = query
        .bind(filter.limit)
        .fetch_all(pool)
        .await
        .map_err(|e| sql_error("list materializations", e))?;
    found.iter().map(rows::materialization).collect()
}

pub(crate) async fn latest_record(
    pool: &SqlitePool,
    asset: &str,
    partition: &str,
) -> Result<Option<Materialization>> {
    // Both columns bound, no `IS NULL OR`: the planner uses the (asset, partition) index.
    let found: Option<SqliteRow> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM flowstone_materializations
          WHERE asset = ?1 AND partition_key = ?2
          ORDER BY started_at DESC, run_id DESC LIMIT 1"
    )))
    .bind(asset)
    .bind(partition)
    .fetch_optional(pool)
    .await
    .map_err(|e| sql_error("read the latest materialization", e))?;
    found.as_ref().map(rows::materialization).transpose()
}

pub(crate) async fn succeeded_since(
    pool: &SqlitePool,
    after_us: i64,
    limit: i64,
) -> Result<Vec<Materialization>> {
    let found: Vec<SqliteRow> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM flowstone_materializations
          WHERE finished_at > ?1 AND status = 'success'
          ORDER BY finished_at LIMIT ?2"
    )))
    .bind(after_us)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(|e| sql_error("read new materializations", e))?;
    found.iter().map(rows::materialization).collect()
}

pub(crate) async fn latest_records(pool: &SqlitePool, asset: &str) -> Result<Vec<Materialization>> {
    let found: Vec<SqliteRow> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM (
            SELECT {RECORD_COLUMNS}, ROW_NUMBER() OVER (
                PARTITION BY partition_key ORDER BY started_at DESC, run_id DESC) AS newest
            FROM flowstone_materializations WHERE asset = ?
         ) ranked WHERE newest = 1"
    )))
    .bind(asset)
    .fetch_all(pool)
    .await
    .map_err(|e| sql_error("read the latest materializations", e))?;
    found.iter().map(rows::materialization).collect()
}

pub(crate) async fn consumed_by(
    pool: &SqlitePool,
    [asset, partition, run]: [&str; 3],
) -> Result<Vec<MaterializationKey>> {
    let found: Vec<SqliteRow> = sqlx::query(
        "SELECT upstream_asset, upstream_partition, upstream_run
         FROM flowstone_lineage
         WHERE consumer_asset = ? AND consumer_partition = ? AND consumer_run = ?
         ORDER BY upstream_asset, upstream_partition, upstream_run",
    )
    .bind(asset)
    .bind(partition)
    .bind(run)
    .fetch_all(pool)
    .await
    .map_err(|e| sql_error("read lineage", e))?;
    found
        .iter()
        .map(|row| rows::lineage_key(row, LineageSide::Upstream))
        .collect()
}

pub(crate) async fn consumers_of(
    pool: &SqlitePool,
    asset: &str,
    partition: Option<&str>,
    run: Option<&str>,
) -> Result<Vec<MaterializationKey>> {
    let found: Vec<SqliteRow> = sqlx::query(
        "SELECT DISTINCT consumer_asset, consumer_partition, consumer_run
         FROM flowstone_lineage
         WHERE upstream_asset = ?1
           AND (?2 IS NULL OR upstream_partition = ?2)
           AND (?3 IS NULL OR upstream_run = ?3)
         ORDER BY consumer_asset, consumer_partition, consumer_run",
    )
    .bind(asset)
    .bind(partition)
    .bind(run)
    .fetch_all(pool)
    .await
    .map_err(|e| sql_error("read lineage", e))?;
    found
        .iter()
        .map(|row| rows::lineage_key(row, LineageSide::Consumer))
        .collect()
}

pub(crate) async fn latest_consumer_run(
    pool: &SqlitePool,
    asset: &str,
    partition: &str,
) -> Result<Option<crate::ids::RunId>> {
    let row = sqlx::query(
        "SELECT MAX(consumer_run) AS run FROM flowstone_lineage
         WHERE consumer_asset = ? AND consumer_partition = ?",
    )
    .bind(asset)
    .bind(partition)
    .fetch_one(pool)
    .await
    .map_err(|e| sql_error("read lineage", e))?;
    rows::opt_run_id(&row)
}

pub(crate) async fn delete_output(pool: &SqlitePool, asset: &str, partition: &str) -> Result<bool> {
    sqlx::query("DELETE FROM flowstone_outputs WHERE asset = ? AND partition_key = ?")
        .bind(asset)
        .bind(partition)
        .execute(pool)
        .await
        .map(|done| done.rows_affected() > 0)
        .map_err(|e| sql_error("delete an output", e))
}

pub(crate) async fn output_metadata(
    pool: &SqlitePool,
    asset: &str,
    partition: &str,
) -> Result<Option<IoMetadata>> {
    let row = sqlx::query(
        "SELECT run_id, stored_at, size_bytes FROM flowstone_outputs
         WHERE asset = ? AND partition_key = ?",
    )
    .bind(asset)
    .bind(partition)
    .fetch_optional(pool)
    .await
    .map_err(|e| sql_error("read output metadata", e))?;
    row.as_ref().map(rows::io_metadata).transpose()
}

/// The outputs stored for `asset` at any of the encoded `partitions`, by encoded partition.
pub(crate) async fn outputs(
    pool: &SqlitePool,
    asset: &str,
    partitions: &[&str],
) -> Result<Vec<(String, Stored)>> {
    let mut sql = String::from(
        "SELECT partition_key, run_id, stored_at, size_bytes, value
         FROM flowstone_outputs WHERE asset = ? AND partition_key IN (",
    );
    push_placeholders(&mut sql, partitions.len());
    sql.push(')');
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(asset);
    for partition in partitions {
        q = q.bind(*partition);
    }
    let found: Vec<SqliteRow> = q
        .fetch_all(pool)
        .await
        .map_err(|e| sql_error("load outputs", e))?;
    found.iter().map(rows::stored_output).collect()
}

/// Writes one batch: multi-row `VALUES` statements, all in one query string with its
/// `BEGIN IMMEDIATE` and `COMMIT`.
pub(crate) async fn write(db: &Database, pool: &SqlitePool, batch: &Batch) -> Result<()> {
    let statements = Statements::of(batch);
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "BEGIN IMMEDIATE;\n{}COMMIT;",
        statements.sql
    )))
    .persistent(false);
    for part in &statements.parts {
        q = part.bind(q);
    }
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| sql_error("get a connection to write", e))?;
    // Queue behind this process's other writers (the queue's acks) instead of in SQLite's
    // busy handler, which sleeps in steps of milliseconds.
    let _turn = db.write_gate().await;
    let written = q.execute(&mut *conn).await;
    if written.is_err() {
        // The transaction may still be open: closing the connection rolls it back.
        conn.close_on_drop();
    }
    written
        .map(drop)
        .map_err(|e| sql_error("write materializations, lineage and outputs", e))
}

/// Completes the queue jobs of `fences` (each fenced by its job's state) and writes
/// `build(applied)` in the same transaction: what was applied decides what is written (see the
/// writer's completing groups). Returns, per fence, whether its completion applied.
pub(crate) async fn write_completing(
    db: &Database,
    pool: &SqlitePool,
    fences: &[&Completion],
    build: impl FnOnce(&[bool]) -> Batch,
) -> Result<Vec<bool>> {
    const WHAT: &str = "write materializations and complete their queue jobs";
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| sql_error("get a connection to write", e))?;
    let _turn = db.write_gate().await;
    let written = async {
        let mut tx = conn
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| sql_error(WHAT, e))?;
        let jobs: Vec<_> = fences
            .iter()
            .map(|fence| (&fence.ctx, fence.result.as_ref()))
            .collect();
        let applied = flowstone_queue::transaction::complete_sqlite(&mut tx, &jobs)
            .await
            .map_err(crate::queue::queue_error)?;
        let batch = build(&applied);
        let statements = Statements::of(&batch);
        if !statements.parts.is_empty() {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(statements.sql)).persistent(false);
            for part in &statements.parts {
                q = part.bind(q);
            }
            q.execute(&mut *tx).await.map_err(|e| sql_error(WHAT, e))?;
        }
        tx.commit().await.map_err(|e| sql_error(WHAT, e))?;
        Ok::<Vec<bool>, crate::error::Error>(applied)
    }
    .await;
    if written.is_err() {
        // The transaction may still be open: closing the connection rolls it back.
        conn.close_on_drop();
    }
    written
}

/// The statements that write a batch (one per table chunk, each ending in `;`), and the rows
/// each binds, in order.
struct Statements<'a> {
    sql: String,
    parts: Vec<Part<'a>>,
}

impl<'a> Statements<'a> {
    fn of(batch: &'a Batch) -> Self {
        let mut sql = String::new();
        let mut parts = Vec::new();
        let mut add = |statement: String, part: Part<'a>| {
            sql.push_str(&statement);
            sql.push_str(";\n");
            parts.push(part);
        };
        for chunk in batch.records.chunks(ROWS_PER_STATEMENT) {
            add(
                values_sql(
                    RECORD_UPSERT_HEAD,
                    RECORD_WIDTH,
                    chunk.len(),
                    RECORD_UPSERT_TAIL,
                ),
                Part::Records(chunk),
            );
        }
        for chunk in batch.edges.chunks(ROWS_PER_STATEMENT) {
            add(
                values_sql(EDGE_INSERT_HEAD, 7, chunk.len(), EDGE_INSERT_TAIL),
                Part::Edges(chunk),
            );
        }
        for chunk in batch.outputs.chunks(ROWS_PER_STATEMENT) {
            add(
                values_sql(OUTPUT_UPSERT_HEAD, 6, chunk.len(), OUTPUT_UPSERT_TAIL),
                Part::Outputs(chunk),
            );
        }
        Statements { sql, parts }
    }
}

/// A page of the retention scan: records per (asset, partition) among the next `rows` rows
/// after the (asset, partition) `after`.
pub(crate) async fn group_page(
    pool: &SqlitePool,
    after: Option<(&str, &str)>,
    rows: i64,
) -> Result<Vec<GroupStats>> {
    // Two statement texts rather than `? IS NULL OR ..`, which would keep the index from
    // starting the scan at `after`.
    let from = if after.is_some() {
        "WHERE (asset, partition_key) > (?, ?)"
    } else {
        ""
    };
    let sql = format!(
        "SELECT asset, partition_key, count(*) AS records, min(started_at) AS oldest FROM (
            SELECT asset, partition_key, started_at FROM flowstone_materializations {from}
            ORDER BY asset, partition_key LIMIT ?
         ) page GROUP BY asset, partition_key ORDER BY asset, partition_key"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some((asset, partition)) = after {
        q = q.bind(asset).bind(partition);
    }
    let found: Vec<SqliteRow> = q
        .bind(rows)
        .fetch_all(pool)
        .await
        .map_err(|e| sql_error("scan materializations for retention", e))?;
    found.iter().map(retention::group_stats).collect()
}

/// The order key of the record at `offset` (0 = newest) of (asset, partition).
pub(crate) async fn key_at(
    pool: &SqlitePool,
    asset: &str,
    partition: &str,
    offset: i64,
) -> Result<Option<OrderKey>> {
    let row = sqlx::query(
        "SELECT started_at, run_id FROM flowstone_materializations
         WHERE asset = ? AND partition_key = ?
         ORDER BY started_at DESC, run_id DESC LIMIT 1 OFFSET ?",
    )
    .bind(asset)
    .bind(partition)
    .bind(offset)
    .fetch_optional(pool)
    .await
    .map_err(|e| sql_error("read materializations for retention", e))?;
    row.as_ref().map(retention::order_key).transpose()
}

/// The run of the newest successful record of (asset, partition).
pub(crate) async fn latest_success(
    pool: &SqlitePool,
    asset: &str,
    partition: &str,
) -> Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT run_id FROM flowstone_materializations
         WHERE asset = ? AND partition_key = ? AND status = 'success'
         ORDER BY started_at DESC, run_id DESC LIMIT 1",
    )
    .bind(asset)
    .bind(partition)
    .fetch_optional(pool)
    .await
    .map_err(|e| sql_error("read materializations for retention", e))
}

/// Run ids of (asset, partition) below `threshold` but `except`, oldest first, at most `limit`.
pub(crate) async fn older_than(
    pool: &SqlitePool,
    asset: &str,
    partition: &str,
    (started_at, run_id): &OrderKey,
    except: &str,
    limit: i64,
) -> Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT run_id FROM flowstone_materializations
         WHERE asset = ? AND partition_key = ? AND (started_at, run_id) < (?, ?)
           AND run_id <> ?
         ORDER BY started_at, run_id LIMIT ?",
    )
    .bind(asset)
    .bind(partition)
    .bind(started_at)
    .bind(run_id)
    .bind(except)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(|e| sql_error("read materializations for retention", e))
}

/// Deletes the records of `keys` (asset, partition, run id), or the lineage they recorded.
pub(crate) async fn delete(
    db: &Database,
    pool: &SqlitePool,
    what: Deleted,
    keys: &[[String; 3]],
) -> Result<u64> {
    let (table, columns) = match what {
        Deleted::Records => ("flowstone_materializations", "asset, partition_key, run_id"),
        Deleted::EdgesOfConsumers => (
            "flowstone_lineage",
            "consumer_asset, consumer_partition, consumer_run",
        ),
    };
    // `IN (SELECT .. FROM (VALUES ..))`, not `IN (VALUES ..)`: SQLite searches the key's
    // index for the former and scans the whole table for the latter.
    let mut sql = format!(
        "DELETE FROM {table} WHERE ({columns}) IN \
         (SELECT column1, column2, column3 FROM (VALUES "
    );
    for n in 0..keys.len() {
        sql.push_str(if n == 0 { "(?, ?, ?)" } else { ", (?, ?, ?)" });
    }
    sql.push_str("))");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
    for key in keys.iter().flatten() {
        q = q.bind(key);
    }
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| sql_error("get a connection to prune", e))?;
    let _turn = db.write_gate().await;
    q.execute(&mut *conn)
        .await
        .map(|done| done.rows_affected())
        .map_err(|e| sql_error(&format!("prune {table}"), e))
}

/// One multi-row statement's rows.
enum Part<'a> {
    Records(&'a [RecordRow]),
    Edges(&'a [EdgeRow]),
    Outputs(&'a [OutputRow]),
}

impl<'a> Part<'a> {
    /// Binds the rows to `q` in its placeholders' order.
    fn bind(&self, mut q: Query<'a>) -> Query<'a> {
        match self {
            Part::Records(rows) => {
                for r in rows.iter() {
                    q = q
                        .bind(&r.asset)
                        .bind(&r.partition)
                        .bind(&r.run_id)
                        .bind(r.status.as_str())
                        .bind(&r.executor)
                        .bind(r.attempt)
                        .bind(to_micros(r.started_at))
                        .bind(r.finished_at.map(to_micros))
                        .bind(r.duration_us)
                        .bind(&r.error)
                        .bind(&r.metadata)
                        .bind(&r.backfill_id);
                }
            }
            Part::Edges(rows) => {
                for e in rows.iter() {
                    for key in e.consumer.iter().chain(e.upstream.iter()) {
                        q = q.bind(key);
                    }
                    q = q.bind(to_micros(e.recorded_at));
                }
            }
            Part::Outputs(rows) => {
                for o in rows.iter() {
                    q = q
                        .bind(&o.asset)
                        .bind(&o.partition)
                        .bind(&o.run_id)
                        .bind(to_micros(o.stored_at))
                        .bind(o.size_bytes())
                        .bind(&o.value[..]);
                }
            }
        }
        q
    }
}

/// Appends `count` comma-separated `?`.
fn push_placeholders(sql: &mut String, count: usize) {
    for n in 0..count {
        sql.push_str(if n == 0 { "?" } else { ", ?" });
    }
}

/// `head VALUES (?, .., ?), (..) tail`.
fn values_sql(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * columns * 3);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        push_placeholders(&mut sql, columns);
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

const RECORD_UPSERT_HEAD: &str = "INSERT INTO flowstone_materializations
    (asset, partition_key, run_id, status, executor, attempt, started_at, finished_at,
     duration_us, error, metadata, backfill_id)";
const RECORD_UPSERT_TAIL: &str = "ON CONFLICT (asset, partition_key, run_id) DO UPDATE SET
    status = excluded.status, executor = excluded.executor, attempt = excluded.attempt,
    started_at = excluded.started_at, finished_at = excluded.finished_at,
    duration_us = excluded.duration_us, error = excluded.error, metadata = excluded.metadata,
    backfill_id = excluded.backfill_id";
const EDGE_INSERT_HEAD: &str = "INSERT INTO flowstone_lineage
    (consumer_asset, consumer_partition, consumer_run,
     upstream_asset, upstream_partition, upstream_run, recorded_at)";
const EDGE_INSERT_TAIL: &str = "ON CONFLICT DO NOTHING";
const OUTPUT_UPSERT_HEAD: &str = "INSERT INTO flowstone_outputs
    (asset, partition_key, run_id, stored_at, size_bytes, value)";
const OUTPUT_UPSERT_TAIL: &str = "ON CONFLICT (asset, partition_key) DO UPDATE SET
    run_id = excluded.run_id, stored_at = excluded.stored_at,
    size_bytes = excluded.size_bytes, value = excluded.value";

#[cfg(test)]
mod tests {
    use super::values_sql;

    #[test]
    fn values_have_a_placeholder_per_column_and_row() {
        assert_eq!(
            values_sql("INSERT", 2, 2, "X"),
            "INSERT VALUES (?, ?), (?, ?) X"
        );
    }
}
