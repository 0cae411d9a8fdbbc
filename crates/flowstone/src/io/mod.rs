//! IO managers: where asset outputs live between materializations.
//!
//! The storage hook writes an asset's output through its IO manager; dependency loading reads it
//! back. Every stored output carries [`IoMetadata`] (which run wrote it), which is how lineage
//! knows exactly which upstream materialization a run consumed.
//!
//! - [`MemoryIo`]: the library default; keeps live values, no serialization on the hot path.
//! - [`FileIo`]: one file per asset and partition under a folder, written atomically.
//! - The SQL blob manager (SQLite/PostgreSQL) arrives with the queue executor.

mod file;
mod memory;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use file::FileIo;
pub use memory::MemoryIo;

use crate::error::Result;
use crate::ids::RunId;
use crate::output::Output;
use crate::partition::Partition;

/// Facts about a stored output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoMetadata {
    /// The run that wrote it.
    pub run_id: RunId,
    /// When it was written.
    pub stored_at: DateTime<Utc>,
    /// Its encoded size, when the manager encodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
}

/// An output read back with its metadata.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The value.
    pub output: Output,
    /// Who wrote it and when.
    pub meta: IoMetadata,
}

/// Stores and loads asset outputs by (asset, partition).
#[async_trait]
pub trait IoManager: Send + Sync + 'static {
    /// Stores `output`, replacing any earlier one for the same asset and partition.
    async fn store(
        &self,
        asset: &str,
        partition: &Partition,
        output: &Output,
        meta: &IoMetadata,
    ) -> Result<()>;

    /// The stored output, or `None` when there is none.
    async fn load(&self, asset: &str, partition: &Partition) -> Result<Option<Stored>>;

    /// The stored outputs of many partitions of `asset`, in the order asked (`None` where
    /// there is none): what a partition mapping that reads a month of days asks for. The
    /// default issues the loads concurrently, which the SQL manager's group reader answers
    /// with one query per 256 keys; override it when the store can do better.
    async fn load_many(
        &self,
        asset: &str,
        partitions: &[Partition],
    ) -> Result<Vec<Option<Stored>>> {
        match partitions {
            [] => Ok(Vec::new()),
            [one] => Ok(vec![self.load(asset, one).await?]),
            many => {
                futures_util::future::try_join_all(many.iter().map(|p| self.load(asset, p))).await
            }
        }
    }

    /// Deletes the stored output; `true` when there was one.
    async fn delete(&self, asset: &str, partition: &Partition) -> Result<bool>;

    /// Whether an output is stored.
    async fn exists(&self, asset: &str, partition: &Partition) -> Result<bool> {
        Ok(self.metadata(asset, partition).await?.is_some())
    }

    /// The metadata of the stored output, without loading it.
    async fn metadata(&self, asset: &str, partition: &Partition) -> Result<Option<IoMetadata>>;
}
