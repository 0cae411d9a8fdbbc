//! In-memory IO: live values in a map. The library's default, and the fastest path.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;

use super::{IoManager, IoMetadata, Stored};
use crate::error::{Error, Result};
use crate::output::Output;
use crate::partition::Partition;

/// Keeps outputs in process memory. Lost when the process ends.
#[derive(Debug, Default)]
pub struct MemoryIo {
    outputs: RwLock<HashMap<String, HashMap<Partition, Stored>>>,
}

impl MemoryIo {
    /// An empty store.
    pub fn new() -> Self {
        MemoryIo::default()
    }
}

fn poisoned() -> Error {
    Error::io("memory IO lock poisoned by a panic in another thread")
}

#[async_trait]
impl IoManager for MemoryIo {
    async fn store(
        &self,
        asset: &str,
        partition: &Partition,
        output: &Output,
        meta: &IoMetadata,
    ) -> Result<()> {
        let stored = Stored {
            output: output.clone(),
            meta: meta.clone(),
        };
        let mut outputs = self.outputs.write().map_err(|_| poisoned())?;
        match outputs.get_mut(asset) {
            Some(partitions) => {
                partitions.insert(partition.clone(), stored);
            }
            None => {
                outputs.insert(
                    asset.to_owned(),
                    HashMap::from([(partition.clone(), stored)]),
                );
            }
        }
        Ok(())
    }

    async fn load(&self, asset: &str, partition: &Partition) -> Result<Option<Stored>> {
        let outputs = self.outputs.read().map_err(|_| poisoned())?;
        Ok(outputs.get(asset).and_then(|p| p.get(partition)).cloned())
    }

    async fn delete(&self, asset: &str, partition: &Partition) -> Result<bool> {
        let mut outputs = self.outputs.write().map_err(|_| poisoned())?;
        Ok(outputs
            .get_mut(asset)
            .is_some_and(|p| p.remove(partition).is_some()))
    }

    async fn metadata(&self, asset: &str, partition: &Partition) -> Result<Option<IoMetadata>> {
        let outputs = self.outputs.read().map_err(|_| poisoned())?;
        Ok(outputs
            .get(asset)
            .and_then(|p| p.get(partition))
            .map(|s| s.meta.clone()))
    }
}
