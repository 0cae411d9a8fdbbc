//! In-memory lineage.

use std::sync::RwLock;

use async_trait::async_trait;

use super::{LineageStore, MaterializationKey};
use crate::error::{Error, Result};
use crate::ids::RunId;
use crate::partition::Partition;

/// Keeps lineage edges (consumer, consumed) in process memory.
#[derive(Debug, Default)]
pub struct MemoryLineage {
    edges: RwLock<Vec<(MaterializationKey, MaterializationKey)>>,
}

impl MemoryLineage {
    /// An empty lineage store.
    pub fn new() -> Self {
        MemoryLineage::default()
    }
}

fn poisoned() -> Error {
    Error::store("memory lineage lock poisoned by a panic in another thread")
}

#[async_trait]
impl LineageStore for MemoryLineage {
    async fn record(
        &self,
        consumer: &MaterializationKey,
        consumed: &[MaterializationKey],
    ) -> Result<()> {
        let mut edges = self.edges.write().map_err(|_| poisoned())?;
        for upstream in consumed {
            let edge = (consumer.clone(), upstream.clone());
            if !edges.contains(&edge) {
                edges.push(edge);
            }
        }
        Ok(())
    }

    async fn consumed_by(&self, consumer: &MaterializationKey) -> Result<Vec<MaterializationKey>> {
        let edges = self.edges.read().map_err(|_| poisoned())?;
        Ok(edges
            .iter()
            .filter(|(c, _)| c == consumer)
            .map(|(_, u)| u.clone())
            .collect())
    }

    async fn consumers_of(
        &self,
        asset: &str,
        partition: Option<&Partition>,
        run_id: Option<RunId>,
    ) -> Result<Vec<MaterializationKey>> {
        let edges = self.edges.read().map_err(|_| poisoned())?;
        let mut found: Vec<MaterializationKey> = edges
            .iter()
            .filter(|(_, u)| {
                u.asset == asset
                    && partition.is_none_or(|p| *p == u.partition)
                    && run_id.is_none_or(|r| r == u.run_id)
            })
            .map(|(c, _)| c.clone())
            .collect();
        found.sort();
        found.dedup();
        Ok(found)
    }

    async fn forget_consumed_by(&self, consumers: &[MaterializationKey]) -> Result<u64> {
        let consumers: std::collections::HashSet<&MaterializationKey> = consumers.iter().collect();
        let mut edges = self.edges.write().map_err(|_| poisoned())?;
        let before = edges.len();
        edges.retain(|(consumer, _)| !consumers.contains(consumer));
        Ok((before - edges.len()) as u64)
    }

    async fn latest_consumer_run(
        &self,
        asset: &str,
        partition: &Partition,
    ) -> Result<Option<RunId>> {
        let edges = self.edges.read().map_err(|_| poisoned())?;
        Ok(edges
            .iter()
            .filter(|(c, _)| c.asset == asset && c.partition == *partition)
            .map(|(c, _)| c.run_id)
            .max())
    }
}
