//! The PostgreSQL dialect of FlowStone's storage. Columns have the types a PostgreSQL user
//! expects, as the queue's do: times are `timestamptz`, JSON is `jsonb`, outputs are `bytea`.
//! SELECTs hand times back as epoch microseconds and JSON as text, the shape the shared decoders
//! read on both engines. Placeholders are `$n`. A batch of writes is one statement that writes
//! all three tables from column arrays (`unnest`), so its text is the same for every batch and it
//! is prepared once per connection.

use std::borrow::Cow;

use sqlx::PgPool;
use sqlx::postgres::PgRow;

use super::retention::{self, Deleted, GroupStats, OrderKey};
use super::rows::{self, FilterArg, LineageSide, OutputRow, RecordFilter, RecordRow, from_micros};
use super::sql_error;
use super::writer::Batch;
use crate::error::Result;
use crate::ids::RunId;
use crate::io::{IoMetadata, Stored};
use crate::lineage::MaterializationKey;
use crate::store::Materialization;

/// The record columns as [`rows::materialization`] decodes them on both engines: times as
/// epoch microseconds (exact: `extract` yields numeric), JSON as text. Queries that sort by a
/// time name the table's column (`m.started_at`), not this list's microseconds, so that the
/// index serves the order.
const RECORD_COLUMNS: &str = "asset, partition_key, run_id, status, executor, attempt, \
     (extract(epoch FROM started_at) * 1000000)::int8 AS started_at, \
     (extract(epoch FROM finished_at) * 1000000)::int8 AS finished_at, \
     duration_us, error::text AS error, metadata::text AS metadata, backfill_id";
/// [`RECORD_COLUMNS`] of a subquery that selected them.
const RECORD_NAMES: &str = "asset, partition_key, run_id, status, executor, attempt, \
     started_at, finished_at, duration_us, error, metadata, backfill_id";
/// An output's `stored_at` as epoch microseconds.
const STORED_AT: &str = "(extract(epoch FROM stored_at) * 1000000)::int8 AS stored_at";

pub(crate) async fn record(
    pool: &PgPool,
    [asset, partition, run_id]: [&str; 3],
) -> Result<Option<Materialization>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM flowstone_materializations
         WHERE asset = $1 AND partition_key = $2 AND run_id = $3"
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
    pool: &PgPool,
    filter: RecordFilter<'_>,
) -> Result<Vec<Materialization>> {
    use std::fmt::Write as _;
    let set = filter.set();
    let mut sql = format!("SELECT {RECORD_COLUMNS} FROM flowstone_materializations m");
    for (i, arg) in set.iter().enumerate() {
        sql.push_str(if i == 0 { " WHERE " } else { " AND " });
        let _ = match arg {
            FilterArg::Text(column, _) => write!(sql, "m.{column} = ${}", i + 1),
            FilterArg::FinishedAfter(_) => write!(
                sql,
                "m.finished_at > to_timestamp(${}::float8 / 1000000)",
                i + 1
            ),
        };
    }
    let _ = write!(
        sql,
        " ORDER BY m.started_at DESC, m.run_id DESC LIMIT ${}",
        set.len() + 1
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for arg in set {
        query = match arg {
            FilterArg::Text(_, value) => query.bind(value),
            FilterArg::FinishedAfter(us) => query.bind(us as f64),
        };
    }
    let found: Vec<PgRow> = query
        .bind(filter.limit)
        .fetch_all(pool)
        .await
        .map_err(|e| sql_error("list materializations", e))?;
    found.iter().map(rows::materialization).collect()
}

pub(crate) async fn latest_record(
    pool: &PgPool,
    asset: &str,
    partition: &str,
) -> Result<Option<Materialization>> {
    // Both columns bound, no `IS NULL OR`: the planner uses the (asset, partition) index.
    let found: Option<PgRow> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM flowstone_materializations m
          WHERE m.asset = $1 AND m.partition_key = $2
          ORDER BY m.started_at DESC, m.run_id DESC LIMIT 1"
    )))
    .bind(asset)
    .bind(partition)
    .fetch_optional(pool)
    .await
    .map_err(|e| sql_error("read the latest materialization", e))?;
    found.as_ref().map(rows::materialization).transpose()
}

pub(crate) async fn succeeded_since(
    pool: &PgPool,
    after_us: i64,
    limit: i64,
) -> Result<Vec<Materialization>> {
    let found: Vec<PgRow> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM flowstone_materializations m
          WHERE m.finished_at > to_timestamp($1::float8 / 1000000) AND m.status = 'success'
          ORDER BY m.finished_at LIMIT $2"
    )))
    .bind(after_us as f64)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(|e| sql_error("read new materializations", e))?;
    found.iter().map(rows::materialization).collect()
}

pub(crate) async fn latest_records(pool: &PgPool, asset: &str) -> Result<Vec<Materialization>> {
    let found: Vec<PgRow> = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_NAMES} FROM (
            SELECT {RECORD_COLUMNS}, ROW_NUMBER() OVER (
                PARTITION BY m.partition_key ORDER BY m.started_at DESC, m.run_id DESC) AS newest
            FROM flowstone_materializations m WHERE asset = $1
         ) ranked WHERE newest = 1"
    )))
    .bind(asset)
    .fetch_all(pool)
    .await
    .map_err(|e| sql_error("read the latest materializations", e))?;
    found.iter().map(rows::materialization).collect()
}

pub(crate) async fn consumed_by(
    pool: &PgPool,
    [asset, partition, run]: [&str; 3],
) -> Result<Vec<MaterializationKey>> {
    let found: Vec<PgRow> = sqlx::query(
        "SELECT upstream_asset, upstream_partition, upstream_run
         FROM flowstone_lineage
         WHERE consumer_asset = $1 AND consumer_partition = $2 AND consumer_run = $3
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
    pool: &PgPool,
    asset: &str,
    partition: Option<&str>,
    run: Option<&str>,
) -> Result<Vec<MaterializationKey>> {
    let found: Vec<PgRow> = sqlx::query(
        "SELECT DISTINCT consumer_asset, consumer_partition, consumer_run
         FROM flowstone_lineage
         WHERE upstream_asset = $1
           AND ($2::text IS NULL OR upstream_partition = $2)
           AND ($3::text IS NULL OR upstream_run = $3)
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
    pool: &PgPool,
    asset: &str,
    partition: &str,
) -> Result<Option<RunId>> {
    let row = sqlx::query(
        "SELECT MAX(consumer_run) AS run FROM flowstone_lineage
         WHERE consumer_asset = $1 AND consumer_partition = $2",
    )
    .bind(asset)
    .bind(partition)
    .fetch_one(pool)
    .await
    .map_err(|e| sql_error("read lineage", e))?;
    rows::opt_run_id(&row)
}

pub(crate) async fn delete_output(pool: &PgPool, asset: &str, partition: &str) -> Result<bool> {
    sqlx::query("DELETE FROM flowstone_outputs WHERE asset = $1 AND partition_key = $2")
        .bind(asset)
        .bind(partition)
        .execute(pool)
        .await
        .map(|done| done.rows_affected() > 0)
        .map_err(|e| sql_error("delete an output", e))
}

pub(crate) async fn output_metadata(
    pool: &PgPool,
    asset: &str,
    partition: &str,
) -> Result<Option<IoMetadata>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT run_id, {STORED_AT}, size_bytes FROM flowstone_outputs
         WHERE asset = $1 AND partition_key = $2"
    )))
    .bind(asset)
    .bind(partition)
    .fetch_optional(pool)
    .await
    .map_err(|e| sql_error("read output metadata", e))?;
    row.as_ref().map(rows::io_metadata).transpose()
}

/// The outputs stored for `asset` at any of the encoded `partitions`, by encoded partition.
pub(crate) async fn outputs(
    pool: &PgPool,
    asset: &str,
    partitions: &[&str],
) -> Result<Vec<(String, Stored)>> {
    let mut sql = format!(
        "SELECT partition_key, run_id, {STORED_AT}, size_bytes, value
         FROM flowstone_outputs WHERE asset = $1 AND partition_key IN ("
    );
    for n in 0..partitions.len() {
        if n > 0 {
            sql.push_str(", ");
        }
        sql.push('$');
        sql.push_str(&(n + 2).to_string());
    }
    sql.push(')');
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(asset);
    for partition in partitions {
        q = q.bind(*partition);
    }
    let found: Vec<PgRow> = q
        .fetch_all(pool)
        .await
        .map_err(|e| sql_error("load outputs", e))?;
    found.iter().map(rows::stored_output).collect()
}

/// A page of the retention scan: records per (asset, partition) among the next `rows` rows
/// after the (asset, partition) `after`.
pub(crate) async fn group_page(
    pool: &PgPool,
    after: Option<(&str, &str)>,
    rows: i64,
) -> Result<Vec<GroupStats>> {
    // Two statement texts rather than `$1 IS NULL OR ..`, which would keep the index from
    // starting the scan at `after`.
    let (from, limit) = if after.is_some() {
        ("WHERE (asset, partition_key) > ($1, $2)", "$3")
    } else {
        ("", "$1")
    };
    let sql = format!(
        "SELECT asset, partition_key, count(*) AS records,
                (extract(epoch FROM min(started_at)) * 1000000)::int8 AS oldest
         FROM (
            SELECT asset, partition_key, started_at FROM flowstone_materializations {from}
            ORDER BY asset, partition_key LIMIT {limit}
         ) page GROUP BY asset, partition_key ORDER BY asset, partition_key"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    if let Some((asset, partition)) = after {
        q = q.bind(asset).bind(partition);
    }
    let found: Vec<PgRow> = q
        .bind(rows)
        .fetch_all(pool)
        .await
        .map_err(|e| sql_error("scan materializations for retention", e))?;
    found.iter().map(retention::group_stats).collect()
}

/// The order key of the record at `offset` (0 = newest) of (asset, partition).
pub(crate) async fn key_at(
    pool: &PgPool,
    asset: &str,
    partition: &str,
    offset: i64,
) -> Result<Option<OrderKey>> {
    let row = sqlx::query(
        "SELECT (extract(epoch FROM started_at) * 1000000)::int8 AS started_at, run_id
         FROM flowstone_materializations m
         WHERE asset = $1 AND partition_key = $2
         ORDER BY m.started_at DESC, m.run_id DESC LIMIT 1 OFFSET $3",
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
    pool: &PgPool,
    asset: &str,
    partition: &str,
) -> Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT run_id FROM flowstone_materializations
         WHERE asset = $1 AND partition_key = $2 AND status = 'success'
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
    pool: &PgPool,
    asset: &str,
    partition: &str,
    (started_at, run_id): &OrderKey,
    except: &str,
    limit: i64,
) -> Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT run_id FROM flowstone_materializations
         WHERE asset = $1 AND partition_key = $2 AND (started_at, run_id) < ($3, $4)
           AND run_id <> $5
         ORDER BY started_at, run_id LIMIT $6",
    )
    .bind(asset)
    .bind(partition)
    .bind(from_micros(*started_at)?)
    .bind(run_id)
    .bind(except)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(|e| sql_error("read materializations for retention", e))
}

/// Deletes the records of `keys` (asset, partition, run id), or the lineage they recorded.
pub(crate) async fn delete(pool: &PgPool, what: Deleted, keys: &[[String; 3]]) -> Result<u64> {
    let sql = match what {
        Deleted::Records => {
            "DELETE FROM flowstone_materializations m
             USING unnest($1::text[], $2::text[], $3::text[]) AS k(asset, partition_key, run_id)
             WHERE m.asset = k.asset AND m.partition_key = k.partition_key
               AND m.run_id = k.run_id"
        }
        Deleted::EdgesOfConsumers => {
            "DELETE FROM flowstone_lineage l
             USING unnest($1::text[], $2::text[], $3::text[]) AS k(asset, partition_key, run_id)
             WHERE l.consumer_asset = k.asset AND l.consumer_partition = k.partition_key
               AND l.consumer_run = k.run_id"
        }
    };
    let column = |i: usize| keys.iter().map(|k| k[i].as_str()).collect::<Vec<_>>();
    sqlx::query(sql)
        .bind(column(0))
        .bind(column(1))
        .bind(column(2))
        .execute(pool)
        .await
        .map(|done| done.rows_affected())
        .map_err(|e| sql_error("prune materializations or lineage", e))
}

/// Writes one batch in one transaction whose commit does not wait for the disk.
///
/// Safe here: PostgreSQL flushes its log in order, so these rows reach the disk no later than
/// the next durable commit after them, and the queue's acknowledgement of a job, written after
/// its rows, is durable. A crash before that ack re-runs the job (at-least-once), rewriting them.
pub(crate) async fn write(pool: &PgPool, batch: &Batch) -> Result<()> {
    let (records, edges, outputs) = (&batch.records, &batch.edges, &batch.outputs);
    let column = |f: fn(&RecordRow) -> &str| records.iter().map(f).collect::<Vec<_>>();
    let edge_column = |i: usize| {
        edges
            .iter()
            .map(|e| {
                if i < 3 {
                    &e.consumer[i]
                } else {
                    &e.upstream[i - 3]
                }
                .as_str()
            })
            .collect::<Vec<_>>()
    };
    let output_column = |f: fn(&OutputRow) -> &str| outputs.iter().map(f).collect::<Vec<_>>();
    let errors: Vec<Option<Cow<'_, str>>> = records
        .iter()
        .map(|r| r.error.as_deref().map(jsonb_text))
        .collect();
    let metadata: Vec<Cow<'_, str>> = records.iter().map(|r| jsonb_text(&r.metadata)).collect();
    let q = sqlx::query(WRITE)
        .bind(column(|r| &r.asset))
        .bind(column(|r| &r.partition))
        .bind(column(|r| &r.run_id))
        .bind(column(|r| r.status.as_str()))
        .bind(column(|r| &r.executor))
        .bind(records.iter().map(|r| r.attempt).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.started_at).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.finished_at).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.duration_us).collect::<Vec<_>>())
        .bind(errors.iter().map(Option::as_deref).collect::<Vec<_>>())
        .bind(metadata.iter().map(AsRef::as_ref).collect::<Vec<&str>>())
        .bind(
            records
                .iter()
                .map(|r| r.backfill_id.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(edge_column(0))
        .bind(edge_column(1))
        .bind(edge_column(2))
        .bind(edge_column(3))
        .bind(edge_column(4))
        .bind(edge_column(5))
        .bind(edges.iter().map(|e| e.recorded_at).collect::<Vec<_>>())
        .bind(output_column(|o| &o.asset))
        .bind(output_column(|o| &o.partition))
        .bind(output_column(|o| &o.run_id))
        .bind(outputs.iter().map(|o| o.stored_at).collect::<Vec<_>>())
        .bind(
            outputs
                .iter()
                .map(OutputRow::size_bytes)
                .collect::<Vec<_>>(),
        )
        .bind(outputs.iter().map(|o| &o.value[..]).collect::<Vec<_>>());
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| sql_error("get a connection to write", e))?;
    let mut written = sqlx::raw_sql(BEGIN).execute(&mut *conn).await.map(drop);
    if written.is_ok() {
        written = q.execute(&mut *conn).await.map(drop);
    }
    if written.is_ok() {
        written = sqlx::raw_sql("COMMIT").execute(&mut *conn).await.map(drop);
    }
    if written.is_err() {
        // The transaction may still be open (and aborted): closing the connection ends it.
        conn.close_on_drop();
    }
    written.map_err(|e| sql_error("write materializations, lineage and outputs", e))
}

/// JSON text that `jsonb` accepts. jsonb refuses the escape `\u0000` (its text cannot hold
/// NUL), and one refused row would fail every write of its batch, so NUL in strings and keys
/// is stored as U+FFFD instead. Only text that contains the escape is parsed again.
fn jsonb_text(json: &str) -> Cow<'_, str> {
    if !json.contains("\\u0000") {
        return Cow::Borrowed(json);
    }
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(mut value) => {
            replace_nul(&mut value);
            Cow::Owned(value.to_string())
        }
        // Not JSON: the database's own error will name the problem.
        Err(_) => Cow::Borrowed(json),
    }
}

fn replace_nul(value: &mut serde_json::Value) {
    use serde_json::Value;
    let clean = |text: &str| text.replace('\0', "\u{fffd}");
    match value {
        Value::String(text) if text.contains('\0') => *text = clean(text),
        Value::Array(items) => items.iter_mut().for_each(replace_nul),
        Value::Object(fields) => {
            let dirty: Vec<String> = fields
                .keys()
                .filter(|k| k.contains('\0'))
                .cloned()
                .collect();
            for key in dirty {
                if let Some(field) = fields.remove(&key) {
                    fields.insert(clean(&key), field);
                }
            }
            fields.values_mut().for_each(replace_nul);
        }
        _ => {}
    }
}

/// The write transaction's start: its commit does not wait for the disk (see [`write`]).
const BEGIN: &str = "BEGIN; SET LOCAL synchronous_commit = off";

/// All three tables in one statement; each table's rows arrive as one array per column.
const WRITE: &str = "WITH records AS (
    INSERT INTO flowstone_materializations
        (asset, partition_key, run_id, status, executor, attempt, started_at, finished_at,
         duration_us, error, metadata, backfill_id)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::int8[], $7::timestamptz[], $8::timestamptz[], $9::int8[],
                         $10::text[]::jsonb[], $11::text[]::jsonb[], $12::text[])
    ON CONFLICT (asset, partition_key, run_id) DO UPDATE SET
        status = excluded.status, executor = excluded.executor, attempt = excluded.attempt,
        started_at = excluded.started_at, finished_at = excluded.finished_at,
        duration_us = excluded.duration_us, error = excluded.error, metadata = excluded.metadata,
        backfill_id = excluded.backfill_id
), edges AS (
    INSERT INTO flowstone_lineage
        (consumer_asset, consumer_partition, consumer_run,
         upstream_asset, upstream_partition, upstream_run, recorded_at)
    SELECT * FROM unnest($13::text[], $14::text[], $15::text[], $16::text[], $17::text[],
                         $18::text[], $19::timestamptz[])
    ON CONFLICT DO NOTHING
)
INSERT INTO flowstone_outputs (asset, partition_key, run_id, stored_at, size_bytes, value)
SELECT * FROM unnest($20::text[], $21::text[], $22::text[], $23::timestamptz[], $24::int8[],
                     $25::bytea[])
ON CONFLICT (asset, partition_key) DO UPDATE SET
    run_id = excluded.run_id, stored_at = excluded.stored_at,
    size_bytes = excluded.size_bytes, value = excluded.value";

#[cfg(test)]
mod tests {
    use super::jsonb_text;

    #[test]
    fn jsonb_text_replaces_nul_and_keeps_everything_else() {
        assert_eq!(jsonb_text(r#"{"a":"x"}"#), r#"{"a":"x"}"#);
        let json = serde_json::json!({"k\u{0}": ["a\u{0}b", {"n": "\u{0}"}], "plain": 1});
        let cleaned: serde_json::Value =
            serde_json::from_str(&jsonb_text(&json.to_string())).expect("JSON");
        assert_eq!(
            cleaned,
            serde_json::json!({"k\u{fffd}": ["a\u{fffd}b", {"n": "\u{fffd}"}], "plain": 1})
        );
        // An escaped backslash followed by `u0000` is not a NUL and stays.
        let literal = serde_json::json!({"a": "\\u0000"}).to_string();
        assert_eq!(jsonb_text(&literal), literal);
    }
}
