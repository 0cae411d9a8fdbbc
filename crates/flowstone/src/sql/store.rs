//! The materialization store on SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flowstone_queue::Database;

use super::writer::{RecordRow, Write, Writer};
use super::{RowExt, from_micros, on_pool, parse_partition, parse_run_id, sql_error, to_micros};
use crate::error::{Error, Result};
use crate::ids::RunId;
use crate::partition::Partition;
use crate::store::{
    Materialization, MaterializationQuery, MaterializationStatus, MaterializationStore,
};

/// Materialization records in the `flowstone_materializations` table.
#[derive(Debug, Clone)]
pub struct SqlStore {
    db: Database,
    writer: Arc<Writer>,
}

impl SqlStore {
    /// A store on `db` (run [`super::migrate`] once first).
    pub fn new(db: Database) -> Self {
        let writer = Arc::new(Writer::new(db.clone()));
        SqlStore { db, writer }
    }

    pub(crate) fn with_writer(db: Database, writer: Arc<Writer>) -> Self {
        SqlStore { db, writer }
    }
}

const COLUMNS: &str = "asset, partition_key, run_id, status, executor, attempt, started_us, \
                       finished_us, duration_us, error, metadata";

fn decode(row: &impl RowExt) -> Result<Materialization> {
    let status = row.text("status")?;
    Ok(Materialization {
        asset: row.text("asset")?,
        partition: parse_partition(&row.text("partition_key")?)?,
        run_id: parse_run_id(&row.text("run_id")?)?,
        status: MaterializationStatus::parse(&status)
            .ok_or_else(|| Error::store(format!("stored status '{status}' is unknown")))?,
        executor: row.text("executor")?,
        attempt: u32::try_from(row.int("attempt")?).unwrap_or(u32::MAX),
        started_at: from_micros(row.int("started_us")?)?,
        finished_at: row.opt_int("finished_us")?.map(from_micros).transpose()?,
        duration: row
            .opt_int("duration_us")?
            .map(|us| Duration::from_micros(u64::try_from(us).unwrap_or(0))),
        error: row
            .opt_text("error")?
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| Error::store(format!("stored error is malformed: {e}")))?,
        metadata: serde_json::from_str(&row.text("metadata")?)
            .map_err(|e| Error::store(format!("stored metadata is malformed: {e}")))?,
    })
}

fn record_row(m: &Materialization) -> Result<RecordRow> {
    Ok(RecordRow {
        asset: m.asset.clone(),
        partition: m.partition.encode(),
        run_id: m.run_id.to_string(),
        status: m.status.as_str(),
        executor: m.executor.clone(),
        attempt: i64::from(m.attempt),
        started_us: to_micros(m.started_at),
        finished_us: m.finished_at.map(to_micros),
        duration_us: m
            .duration
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        error: m.error.as_ref().map(serde_json::to_string).transpose()?,
        metadata: serde_json::to_string(&m.metadata)?,
    })
}

#[async_trait]
impl MaterializationStore for SqlStore {
    async fn record(&self, m: &Materialization) -> Result<()> {
        self.writer.write(Write::Record(record_row(m)?)).await
    }

    async fn get(
        &self,
        asset: &str,
        partition: &Partition,
        run_id: RunId,
    ) -> Result<Option<Materialization>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM flowstone_materializations
             WHERE asset = $1 AND partition_key = $2 AND run_id = $3"
        );
        let partition = partition.encode();
        let run_id = run_id.to_string();
        on_pool!(self.db, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(asset)
                .bind(&partition)
                .bind(&run_id)
                .fetch_optional(pool)
                .await
                .map_err(|e| sql_error("read a materialization", e))?;
            row.as_ref().map(decode).transpose()
        })
    }

    async fn list(&self, query: &MaterializationQuery) -> Result<Vec<Materialization>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM flowstone_materializations
             WHERE (CAST($1 AS TEXT) IS NULL OR asset = $1)
               AND (CAST($2 AS TEXT) IS NULL OR partition_key = $2)
               AND (CAST($3 AS TEXT) IS NULL OR run_id = $3)
               AND (CAST($4 AS TEXT) IS NULL OR status = $4)
             ORDER BY started_us DESC, run_id DESC
             LIMIT $5"
        );
        let partition = query.partition.as_ref().map(Partition::encode);
        let run_id = query.run_id.map(|r| r.to_string());
        let status = query.status.map(MaterializationStatus::as_str);
        let limit = query
            .limit
            .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        on_pool!(self.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(query.asset.as_deref())
                .bind(partition.as_deref())
                .bind(run_id.as_deref())
                .bind(status)
                .bind(limit)
                .fetch_all(pool)
                .await
                .map_err(|e| sql_error("list materializations", e))?;
            rows.iter().map(decode).collect()
        })
    }

    async fn latest_per_partition(&self, asset: &str) -> Result<Vec<Materialization>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM (
                SELECT {COLUMNS}, ROW_NUMBER() OVER (
                    PARTITION BY partition_key ORDER BY started_us DESC, run_id DESC) AS newest
                FROM flowstone_materializations WHERE asset = $1
             ) ranked WHERE newest = 1"
        );
        on_pool!(self.db, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(asset)
                .fetch_all(pool)
                .await
                .map_err(|e| sql_error("read the latest materializations", e))?;
            rows.iter().map(decode).collect()
        })
    }
}
