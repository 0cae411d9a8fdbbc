//! The materialization store on SQLite and PostgreSQL.

use std::sync::Arc;

use async_trait::async_trait;
use flowstone_queue::Database;

use chrono::{DateTime, Utc};

use super::by_engine;
#[cfg(feature = "postgres")]
use super::postgres;
use super::retention::{self, Deleted};
use super::rows::{RecordFilter, RecordRow};
#[cfg(feature = "sqlite")]
use super::sqlite;
use super::statuses;
use super::writer::{Write, Writer};
use crate::error::Result;
use crate::ids::RunId;
use crate::lineage::MaterializationKey;
use crate::partition::Partition;
use crate::store::RetentionPolicy;
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

#[async_trait]
impl MaterializationStore for SqlStore {
    async fn record(&self, m: &Materialization) -> Result<()> {
        self.writer
            .write(Write::Record(RecordRow::encode(m)?))
            .await
    }

    async fn get(
        &self,
        asset: &str,
        partition: &Partition,
        run_id: RunId,
    ) -> Result<Option<Materialization>> {
        let (partition, run_id) = (partition.encode(), run_id.to_string());
        let key = [asset, partition.as_str(), run_id.as_str()];
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlite::record(pool, key).await,
            postgres: postgres::record(pool, key).await,
        })
    }

    async fn list(&self, query: &MaterializationQuery) -> Result<Vec<Materialization>> {
        let partition = query.partition.as_ref().map(Partition::encode);
        let run_id = query.run_id.map(|r| r.to_string());
        let filter = RecordFilter {
            asset: query.asset.as_deref(),
            partition: partition.as_deref(),
            run_id: run_id.as_deref(),
            status: query.status.map(MaterializationStatus::as_str),
            finished_after: query.finished_after.map(super::rows::to_micros),
            limit: query
                .limit
                .map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX)),
        };
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlite::records(pool, filter).await,
            postgres: postgres::records(pool, filter).await,
        })
    }

    async fn expired(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        from: Option<&MaterializationKey>,
        limit: usize,
    ) -> Result<Vec<MaterializationKey>> {
        retention::expired(&self.db, policy, now, from, limit).await
    }

    async fn delete(&self, keys: &[MaterializationKey]) -> Result<u64> {
        retention::delete(&self.db, Deleted::Records, keys).await
    }

    async fn latest(&self, asset: &str, partition: &Partition) -> Result<Option<Materialization>> {
        let partition = partition.encode();
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlite::latest_record(pool, asset, &partition).await,
            postgres: postgres::latest_record(pool, asset, &partition).await,
        })
    }

    async fn succeeded_since(
        &self,
        after: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Materialization>> {
        let (after, limit) = (
            super::rows::to_micros(after),
            i64::try_from(limit).unwrap_or(i64::MAX),
        );
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlite::succeeded_since(pool, after, limit).await,
            postgres: postgres::succeeded_since(pool, after, limit).await,
        })
    }

    async fn latest_per_partition(&self, asset: &str) -> Result<Vec<Materialization>> {
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlite::latest_records(pool, asset).await,
            postgres: postgres::latest_records(pool, asset).await,
        })
    }

    async fn latest_statuses(&self, asset: &str) -> Result<Vec<(String, MaterializationStatus)>> {
        by_engine!(self.db.pool(), pool => {
            sqlite: statuses::latest_statuses_sqlite(pool, asset).await,
            postgres: statuses::latest_statuses_postgres(pool, asset).await,
        })
    }
}
