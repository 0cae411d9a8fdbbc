//! Group commit for the SQL storage: writes from concurrent materializations share transactions.
//!
//! A materialization writes several rows (its record twice, lineage, its output). Written one
//! autocommit statement at a time, a busy worker spends its time waiting for commits (an fsync
//! on PostgreSQL, the single writer lock on SQLite). Instead every write goes to one background
//! task per storage, which takes everything queued, deduplicates by key (the last write of a row
//! wins, as it would have one statement later), writes each table with multi-row statements in
//! one transaction, and only then answers each caller. A caller still returns after its write is
//! committed, so reads after a write see it; what changes is how many writes share a commit.

use std::collections::HashMap;
use std::sync::OnceLock;

use flowstone_queue::Database;
use tokio::sync::{mpsc, oneshot};

use super::{push_placeholders, sql_error};
use crate::error::{Error, Result};

/// Most writes committed together.
const MAX_BATCH: usize = 512;
/// Rows per multi-row statement (well under both engines' bind-parameter limits).
const ROWS_PER_STATEMENT: usize = 200;

/// A materialization record, encoded.
#[derive(Debug, Clone)]
pub(crate) struct RecordRow {
    pub asset: String,
    pub partition: String,
    pub run_id: String,
    pub status: &'static str,
    pub executor: String,
    pub attempt: i64,
    pub started_us: i64,
    pub finished_us: Option<i64>,
    pub duration_us: Option<i64>,
    pub error: Option<String>,
    pub metadata: String,
}

/// A lineage edge, encoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct EdgeRow {
    pub consumer: [String; 3],
    pub upstream: [String; 3],
    pub recorded_us: i64,
}

/// A stored output, encoded.
#[derive(Debug, Clone)]
pub(crate) struct OutputRow {
    pub asset: String,
    pub partition: String,
    pub run_id: String,
    pub stored_us: i64,
    pub value: Vec<u8>,
}

impl OutputRow {
    /// The stored value's size, as the `size_bytes` column holds it.
    fn size_bytes(&self) -> i64 {
        i64::try_from(self.value.len()).unwrap_or(i64::MAX)
    }
}

/// One write.
#[derive(Debug)]
pub(crate) enum Write {
    Record(RecordRow),
    Edges(Vec<EdgeRow>),
    Output(OutputRow),
}

type Request = (Write, oneshot::Sender<Result<()>>);

/// The handle to a storage's writer task (started on first write).
#[derive(Debug)]
pub(crate) struct Writer {
    db: Database,
    tx: OnceLock<mpsc::UnboundedSender<Request>>,
}

impl Writer {
    pub(crate) fn new(db: Database) -> Self {
        Writer {
            db,
            tx: OnceLock::new(),
        }
    }

    /// Writes `write`: returns once it is committed, or, inside a materialization, once it is
    /// queued, leaving the wait for the commit to the materialization ([`crate::deferred`]).
    pub(crate) async fn write(&self, write: Write) -> Result<()> {
        let answer = self.enqueue(write)?;
        let committed = async move {
            answer
                .await
                .map_err(|_| Error::store("the SQL writer task stopped before committing"))?
        };
        match crate::deferred::defer(committed) {
            None => Ok(()),
            Some(committed) => committed.await,
        }
    }

    /// Queues `write` behind every write queued before it.
    fn enqueue(&self, write: Write) -> Result<oneshot::Receiver<Result<()>>> {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(run(self.db.clone(), rx));
            tx
        });
        let (done, answer) = oneshot::channel();
        tx.send((write, done))
            .map_err(|_| Error::store("the SQL writer task has stopped"))?;
        Ok(answer)
    }
}

async fn run(db: Database, mut rx: mpsc::UnboundedReceiver<Request>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (writes, waiters): (Vec<Write>, Vec<_>) = batch.drain(..).unzip();
        let result = commit(&db, writes).await;
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
    }
}

/// Deduplicates and writes one batch in one transaction.
async fn commit(db: &Database, writes: Vec<Write>) -> Result<()> {
    let mut records: HashMap<(String, String, String), RecordRow> = HashMap::new();
    let mut edges: Vec<EdgeRow> = Vec::new();
    let mut outputs: HashMap<(String, String), OutputRow> = HashMap::new();
    for write in writes {
        match write {
            Write::Record(r) => {
                records.insert((r.asset.clone(), r.partition.clone(), r.run_id.clone()), r);
            }
            Write::Edges(e) => edges.extend(e),
            Write::Output(o) => {
                outputs.insert((o.asset.clone(), o.partition.clone()), o);
            }
        }
    }
    edges.sort_by(|a, b| (&a.consumer, &a.upstream).cmp(&(&b.consumer, &b.upstream)));
    edges.dedup_by(|a, b| a.consumer == b.consumer && a.upstream == b.upstream);
    let records: Vec<RecordRow> = records.into_values().collect();
    let outputs: Vec<OutputRow> = outputs.into_values().collect();

    let batch = Batch {
        records,
        edges,
        outputs,
    };
    match db.pool() {
        flowstone_queue::Pool::Sqlite(pool) => commit_sqlite(db, pool, &batch).await,
        flowstone_queue::Pool::Postgres(pool) => commit_postgres(pool, &batch).await,
    }
}

/// One transaction's rows, deduplicated (PostgreSQL refuses to upsert a row twice in one
/// statement).
struct Batch {
    records: Vec<RecordRow>,
    edges: Vec<EdgeRow>,
    outputs: Vec<OutputRow>,
}

/// SQLite: multi-row `VALUES` statements, the whole transaction in one query string, so the
/// write lock is held for one round trip to the connection's thread instead of one per
/// statement. Its `?` parameters are taken by the statements in order.
async fn commit_sqlite(db: &Database, pool: &sqlx::SqlitePool, batch: &Batch) -> Result<()> {
    let mut parts: Vec<(String, Part<'_>)> = Vec::new();
    for chunk in batch.records.chunks(ROWS_PER_STATEMENT) {
        let sql = values_sql(RECORD_UPSERT_HEAD, 11, chunk.len(), RECORD_UPSERT_TAIL);
        parts.push((sql, Part::Records(chunk)));
    }
    for chunk in batch.edges.chunks(ROWS_PER_STATEMENT) {
        let sql = values_sql(EDGE_INSERT_HEAD, 7, chunk.len(), EDGE_INSERT_TAIL);
        parts.push((sql, Part::Edges(chunk)));
    }
    for chunk in batch.outputs.chunks(ROWS_PER_STATEMENT) {
        let sql = values_sql(OUTPUT_UPSERT_HEAD, 6, chunk.len(), OUTPUT_UPSERT_TAIL);
        parts.push((sql, Part::Outputs(chunk)));
    }
    let mut sql = String::from("BEGIN IMMEDIATE;\n");
    for (part_sql, _) in &parts {
        sql.push_str(part_sql);
        sql.push_str(";\n");
    }
    sql.push_str("COMMIT;");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(false);
    for (_, part) in &parts {
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

/// PostgreSQL: one statement writes all three tables from column arrays (`unnest`), so its
/// text is the same for every batch and it is prepared once per connection.
async fn commit_postgres(pool: &sqlx::PgPool, batch: &Batch) -> Result<()> {
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
    let q = sqlx::query(PG_WRITE)
        .bind(column(|r| &r.asset))
        .bind(column(|r| &r.partition))
        .bind(column(|r| &r.run_id))
        .bind(column(|r| r.status))
        .bind(column(|r| &r.executor))
        .bind(records.iter().map(|r| r.attempt).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.started_us).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.finished_us).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.duration_us).collect::<Vec<_>>())
        .bind(
            records
                .iter()
                .map(|r| r.error.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(column(|r| &r.metadata))
        .bind(edge_column(0))
        .bind(edge_column(1))
        .bind(edge_column(2))
        .bind(edge_column(3))
        .bind(edge_column(4))
        .bind(edge_column(5))
        .bind(edges.iter().map(|e| e.recorded_us).collect::<Vec<_>>())
        .bind(outputs.iter().map(|o| o.asset.as_str()).collect::<Vec<_>>())
        .bind(
            outputs
                .iter()
                .map(|o| o.partition.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            outputs
                .iter()
                .map(|o| o.run_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(outputs.iter().map(|o| o.stored_us).collect::<Vec<_>>())
        .bind(
            outputs
                .iter()
                .map(OutputRow::size_bytes)
                .collect::<Vec<_>>(),
        )
        .bind(
            outputs
                .iter()
                .map(|o| o.value.as_slice())
                .collect::<Vec<_>>(),
        );
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| sql_error("get a connection to write", e))?;
    let mut written = sqlx::raw_sql(PG_BEGIN).execute(&mut *conn).await.map(drop);
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

/// One multi-row statement's rows.
enum Part<'a> {
    Records(&'a [RecordRow]),
    Edges(&'a [EdgeRow]),
    Outputs(&'a [OutputRow]),
}

impl<'a> Part<'a> {
    /// Binds the rows to `q` in its placeholders' order.
    fn bind(&self, mut q: SqliteQuery<'a>) -> SqliteQuery<'a> {
        match self {
            Part::Records(rows) => {
                for r in rows.iter() {
                    q = q
                        .bind(&r.asset)
                        .bind(&r.partition)
                        .bind(&r.run_id)
                        .bind(r.status)
                        .bind(&r.executor)
                        .bind(r.attempt)
                        .bind(r.started_us)
                        .bind(r.finished_us)
                        .bind(r.duration_us)
                        .bind(&r.error)
                        .bind(&r.metadata);
                }
            }
            Part::Edges(rows) => {
                for e in rows.iter() {
                    for key in e.consumer.iter().chain(e.upstream.iter()) {
                        q = q.bind(key);
                    }
                    q = q.bind(e.recorded_us);
                }
            }
            Part::Outputs(rows) => {
                for o in rows.iter() {
                    q = q
                        .bind(&o.asset)
                        .bind(&o.partition)
                        .bind(&o.run_id)
                        .bind(o.stored_us)
                        .bind(o.size_bytes())
                        .bind(&o.value);
                }
            }
        }
        q
    }
}

type SqliteQuery<'a> = sqlx::query::Query<'a, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// PostgreSQL: the transaction's commit does not wait for the disk.
///
/// Safe here: PostgreSQL flushes its log in order, so these rows reach the disk no later than
/// the next durable commit after them, and the queue's acknowledgement of a job, written after
/// its rows, is durable. A crash before that ack re-runs the job (at-least-once), rewriting them.
const PG_BEGIN: &str = "BEGIN; SET LOCAL synchronous_commit = off";

/// All three tables in one statement; each table's rows arrive as one array per column.
const PG_WRITE: &str = "WITH records AS (
    INSERT INTO flowstone_materializations
        (asset, partition_key, run_id, status, executor, attempt, started_us, finished_us,
         duration_us, error, metadata)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::text[],
                         $11::text[])
    ON CONFLICT (asset, partition_key, run_id) DO UPDATE SET
        status = excluded.status, executor = excluded.executor, attempt = excluded.attempt,
        started_us = excluded.started_us, finished_us = excluded.finished_us,
        duration_us = excluded.duration_us, error = excluded.error, metadata = excluded.metadata
), edges AS (
    INSERT INTO flowstone_lineage
        (consumer_asset, consumer_partition, consumer_run,
         upstream_asset, upstream_partition, upstream_run, recorded_us)
    SELECT * FROM unnest($12::text[], $13::text[], $14::text[], $15::text[], $16::text[],
                         $17::text[], $18::int8[])
    ON CONFLICT DO NOTHING
)
INSERT INTO flowstone_outputs (asset, partition_key, run_id, stored_us, size_bytes, value)
SELECT * FROM unnest($19::text[], $20::text[], $21::text[], $22::int8[], $23::int8[],
                     $24::bytea[])
ON CONFLICT (asset, partition_key) DO UPDATE SET
    run_id = excluded.run_id, stored_us = excluded.stored_us,
    size_bytes = excluded.size_bytes, value = excluded.value";

/// `head VALUES (?, .., ?), (..) tail` (SQLite).
fn values_sql(head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * columns * 3);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        push_placeholders(&mut sql, false, row * columns + 1, columns);
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

const RECORD_UPSERT_HEAD: &str = "INSERT INTO flowstone_materializations
    (asset, partition_key, run_id, status, executor, attempt, started_us, finished_us,
     duration_us, error, metadata)";
const RECORD_UPSERT_TAIL: &str = "ON CONFLICT (asset, partition_key, run_id) DO UPDATE SET
    status = excluded.status, executor = excluded.executor, attempt = excluded.attempt,
    started_us = excluded.started_us, finished_us = excluded.finished_us,
    duration_us = excluded.duration_us, error = excluded.error, metadata = excluded.metadata";
const EDGE_INSERT_HEAD: &str = "INSERT INTO flowstone_lineage
    (consumer_asset, consumer_partition, consumer_run,
     upstream_asset, upstream_partition, upstream_run, recorded_us)";
const EDGE_INSERT_TAIL: &str = "ON CONFLICT DO NOTHING";
const OUTPUT_UPSERT_HEAD: &str = "INSERT INTO flowstone_outputs
    (asset, partition_key, run_id, stored_us, size_bytes, value)";
const OUTPUT_UPSERT_TAIL: &str = "ON CONFLICT (asset, partition_key) DO UPDATE SET
    run_id = excluded.run_id, stored_us = excluded.stored_us,
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
