//! Lineage on SQLite and PostgreSQL.

use std::sync::Arc;

use async_trait::async_trait;
use flowstone_queue::Database;

use super::writer::{EdgeRow, Write, Writer};
use super::{RowExt, on_pool, parse_partition, parse_run_id, sql_error};
use crate::error::Result;
use crate::ids::RunId;
use crate::lineage::{LineageStore, MaterializationKey};
use crate::partition::Partition;

/// Lineage edges in the `flowstone_lineage` table.
#[derive(Debug, Clone)]
pub struct SqlLineage {
    db: Database,
    writer: Arc<Writer>,
}

impl SqlLineage {
    /// Lineage on `db` (run [`super::migrate`] once first).
    pub fn new(db: Database) -> Self {
        let writer = Arc::new(Writer::new(db.clone()));
        SqlLineage { db, writer }
    }

    pub(crate) fn with_writer(db: Database, writer: Arc<Writer>) -> Self {
        SqlLineage { db, writer }
    }
}

fn key(row: &impl RowExt, prefix: &str) -> Result<MaterializationKey> {
    Ok(MaterializationKey {
        asset: row.text(&format!("{prefix}_asset"))?,
        partition: parse_partition(&row.text(&format!("{prefix}_partition"))?)?,
        run_id: parse_run_id(&row.text(&format!("{prefix}_run"))?)?,
    })
}

#[async_trait]
impl LineageStore for SqlLineage {
    async fn record(
        &self,
        consumer: &MaterializationKey,
        consumed: &[MaterializationKey],
    ) -> Result<()> {
        if consumed.is_empty() {
            return Ok(());
        }
        let encode =
            |k: &MaterializationKey| [k.asset.clone(), k.partition.encode(), k.run_id.to_string()];
        let consumer_row = encode(consumer);
        let recorded_us = super::to_micros(chrono::Utc::now());
        let edges = consumed
            .iter()
            .map(|upstream| EdgeRow {
                consumer: consumer_row.clone(),
                upstream: encode(upstream),
                recorded_us,
            })
            .collect();
        self.writer.write(Write::Edges(edges)).await
    }

    async fn consumed_by(&self, consumer: &MaterializationKey) -> Result<Vec<MaterializationKey>> {
        const SQL: &str = "SELECT upstream_asset, upstream_partition, upstream_run
            FROM flowstone_lineage
            WHERE consumer_asset = $1 AND consumer_partition = $2 AND consumer_run = $3
            ORDER BY upstream_asset, upstream_partition, upstream_run";
        let partition = consumer.partition.encode();
        let run = consumer.run_id.to_string();
        on_pool!(self.db, pool => {
            let rows = sqlx::query(SQL)
                .bind(&consumer.asset)
                .bind(&partition)
                .bind(&run)
                .fetch_all(pool)
                .await
                .map_err(|e| sql_error("read lineage", e))?;
            rows.iter().map(|r| key(r, "upstream")).collect()
        })
    }

    async fn consumers_of(
        &self,
        asset: &str,
        partition: Option<&Partition>,
        run_id: Option<RunId>,
    ) -> Result<Vec<MaterializationKey>> {
        const SQL: &str = "SELECT DISTINCT consumer_asset, consumer_partition, consumer_run
            FROM flowstone_lineage
            WHERE upstream_asset = $1
              AND (CAST($2 AS TEXT) IS NULL OR upstream_partition = $2)
              AND (CAST($3 AS TEXT) IS NULL OR upstream_run = $3)
            ORDER BY consumer_asset, consumer_partition, consumer_run";
        let partition = partition.map(Partition::encode);
        let run = run_id.map(|r| r.to_string());
        on_pool!(self.db, pool => {
            let rows = sqlx::query(SQL)
                .bind(asset)
                .bind(partition.as_deref())
                .bind(run.as_deref())
                .fetch_all(pool)
                .await
                .map_err(|e| sql_error("read lineage", e))?;
            let mut keys = rows
                .iter()
                .map(|r| key(r, "consumer"))
                .collect::<Result<Vec<_>>>()?;
            keys.sort();
            Ok(keys)
        })
    }

    async fn latest_consumer_run(
        &self,
        asset: &str,
        partition: &Partition,
    ) -> Result<Option<RunId>> {
        const SQL: &str = "SELECT MAX(consumer_run) AS run FROM flowstone_lineage
            WHERE consumer_asset = $1 AND consumer_partition = $2";
        let partition = partition.encode();
        on_pool!(self.db, pool => {
            let row = sqlx::query(SQL)
                .bind(asset)
                .bind(&partition)
                .fetch_one(pool)
                .await
                .map_err(|e| sql_error("read lineage", e))?;
            row.opt_text("run")?.map(|r| parse_run_id(&r)).transpose()
        })
    }
}
