//! The SQL blob IO manager: outputs as JSON bytes in the `flowstone_outputs` table, in the
//! same database as the records and the queue, so every worker sees every output.

use std::sync::Arc;

use async_trait::async_trait;
use flowstone_queue::Database;

use super::by_engine;
#[cfg(feature = "postgres")]
use super::postgres;
use super::reader::Reader;
use super::rows::{OutputRow, stored_time};
#[cfg(feature = "sqlite")]
use super::sqlite;
use super::writer::{Write, Writer};
use crate::error::Result;
use crate::io::{IoManager, IoMetadata, Stored};
use crate::output::Output;
use crate::partition::Partition;

/// Stores outputs in the database.
#[derive(Debug, Clone)]
pub struct SqlBlobIo {
    db: Database,
    writer: Arc<Writer>,
    reader: Arc<Reader>,
}

impl SqlBlobIo {
    /// Outputs in `db` (run [`super::migrate`] once first).
    pub fn new(db: Database) -> Self {
        let writer = Arc::new(Writer::new(db.clone()));
        Self::with_writer(db, writer)
    }

    pub(crate) fn with_writer(db: Database, writer: Arc<Writer>) -> Self {
        let reader = Arc::new(Reader::new(db.clone()));
        SqlBlobIo { db, writer, reader }
    }
}

#[async_trait]
impl IoManager for SqlBlobIo {
    async fn store(
        &self,
        asset: &str,
        partition: &Partition,
        output: &Output,
        meta: &IoMetadata,
    ) -> Result<()> {
        let row = OutputRow {
            asset: asset.to_owned(),
            partition: partition.encode(),
            run_id: meta.run_id.to_string(),
            stored_at: stored_time(meta.stored_at),
            value: output.to_json_bytes()?.into(),
        };
        self.writer.write(Write::Output(row)).await
    }

    async fn load(&self, asset: &str, partition: &Partition) -> Result<Option<Stored>> {
        self.reader.load(asset, partition.encode()).await
    }

    async fn delete(&self, asset: &str, partition: &Partition) -> Result<bool> {
        let partition = partition.encode();
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlite::delete_output(pool, asset, &partition).await,
            postgres: postgres::delete_output(pool, asset, &partition).await,
        })
    }

    async fn metadata(&self, asset: &str, partition: &Partition) -> Result<Option<IoMetadata>> {
        let partition = partition.encode();
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlite::output_metadata(pool, asset, &partition).await,
            postgres: postgres::output_metadata(pool, asset, &partition).await,
        })
    }
}
