//! The SQL blob IO manager: outputs as JSON bytes in the `flowstone_outputs` table, in the
//! same database as the records and the queue, so every worker sees every output.

use std::sync::Arc;

use async_trait::async_trait;
use flowstone_queue::Database;

use super::reader::Reader;
use super::writer::{OutputRow, Write, Writer};
use super::{RowExt, from_micros, on_pool, parse_run_id, sql_error, to_micros};
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

pub(super) fn meta(row: &impl RowExt) -> Result<IoMetadata> {
    Ok(IoMetadata {
        run_id: parse_run_id(&row.text("run_id")?)?,
        stored_at: from_micros(row.int("stored_us")?)?,
        size_bytes: Some(u64::try_from(row.int("size_bytes")?).unwrap_or(0)),
    })
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
            stored_us: to_micros(meta.stored_at),
            value: output.to_json_bytes()?,
        };
        self.writer.write(Write::Output(row)).await
    }

    async fn load(&self, asset: &str, partition: &Partition) -> Result<Option<Stored>> {
        self.reader.load(asset, partition.encode()).await
    }

    async fn delete(&self, asset: &str, partition: &Partition) -> Result<bool> {
        const SQL: &str = "DELETE FROM flowstone_outputs WHERE asset = $1 AND partition_key = $2";
        let partition = partition.encode();
        on_pool!(self.db, pool => sqlx::query(SQL)
            .bind(asset)
            .bind(&partition)
            .execute(pool)
            .await
            .map(|done| done.rows_affected() > 0))
        .map_err(|e| sql_error("delete an output", e))
    }

    async fn metadata(&self, asset: &str, partition: &Partition) -> Result<Option<IoMetadata>> {
        const SQL: &str = "SELECT run_id, stored_us, size_bytes FROM flowstone_outputs
            WHERE asset = $1 AND partition_key = $2";
        let partition = partition.encode();
        on_pool!(self.db, pool => {
            let row = sqlx::query(SQL)
                .bind(asset)
                .bind(&partition)
                .fetch_optional(pool)
                .await
                .map_err(|e| sql_error("read output metadata", e))?;
            row.as_ref().map(meta).transpose()
        })
    }
}
