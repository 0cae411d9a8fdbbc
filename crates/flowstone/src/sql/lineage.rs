//! Lineage on SQLite and PostgreSQL.

use std::sync::Arc;

use async_trait::async_trait;
use flowstone_queue::Database;

use super::by_engine;
#[cfg(feature = "postgres")]
use super::postgres;
use super::retention::{self, Deleted};
use super::rows::{EdgeRow, encode_key, stored_time};
#[cfg(feature = "sqlite")]
use super::sqlite;
use super::writer::{Write, Writer};
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
        let consumer_row = encode_key(consumer);
        let recorded_at = stored_time(chrono::Utc::now());
        let edges = consumed
            .iter()
            .map(|upstream| EdgeRow {
                consumer: consumer_row.clone(),
                upstream: encode_key(upstream),
                recorded_at,
            })
            .collect();
        self.writer.write(Write::Edges(edges)).await
    }

    async fn consumed_by(&self, consumer: &MaterializationKey) -> Result<Vec<MaterializationKey>> {
        let [asset, partition, run] = encode_key(consumer);
        let key = [asset.as_str(), partition.as_str(), run.as_str()];
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlite::consumed_by(pool, key).await,
            postgres: postgres::consumed_by(pool, key).await,
        })
    }

    async fn consumers_of(
        &self,
        asset: &str,
        partition: Option<&Partition>,
        run_id: Option<RunId>,
    ) -> Result<Vec<MaterializationKey>> {
        let partition = partition.map(Partition::encode);
        let run = run_id.map(|r| r.to_string());
        let (partition, run) = (partition.as_deref(), run.as_deref());
        let mut keys = by_engine!(self.db.pool(), pool => {
            sqlite: sqlite::consumers_of(pool, asset, partition, run).await?,
            postgres: postgres::consumers_of(pool, asset, partition, run).await?,
        });
        // The model's order, which the encoded text's order need not follow.
        keys.sort();
        Ok(keys)
    }

    async fn forget_consumed_by(&self, consumers: &[MaterializationKey]) -> Result<u64> {
        retention::delete(&self.db, Deleted::EdgesOfConsumers, consumers).await
    }

    async fn latest_consumer_run(
        &self,
        asset: &str,
        partition: &Partition,
    ) -> Result<Option<RunId>> {
        let partition = partition.encode();
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlite::latest_consumer_run(pool, asset, &partition).await,
            postgres: postgres::latest_consumer_run(pool, asset, &partition).await,
        })
    }
}
