//! The in-memory materialization store.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;

use super::{Materialization, MaterializationQuery, MaterializationStore, newest_first};
use crate::error::{Error, Result};
use crate::ids::RunId;
use crate::partition::Partition;

/// Keeps records in process memory: asset → partition → records of each run.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: RwLock<HashMap<String, HashMap<Partition, Vec<Materialization>>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

fn poisoned() -> Error {
    Error::store("memory store lock poisoned by a panic in another thread")
}

#[async_trait]
impl MaterializationStore for MemoryStore {
    async fn record(&self, m: &Materialization) -> Result<()> {
        let mut records = self.records.write().map_err(|_| poisoned())?;
        let runs = match records.get_mut(&m.asset) {
            Some(partitions) => partitions.entry(m.partition.clone()).or_default(),
            None => records
                .entry(m.asset.clone())
                .or_default()
                .entry(m.partition.clone())
                .or_default(),
        };
        match runs.iter_mut().find(|r| r.run_id == m.run_id) {
            Some(existing) => *existing = m.clone(),
            None => runs.push(m.clone()),
        }
        Ok(())
    }

    async fn get(
        &self,
        asset: &str,
        partition: &Partition,
        run_id: RunId,
    ) -> Result<Option<Materialization>> {
        let records = self.records.read().map_err(|_| poisoned())?;
        Ok(records
            .get(asset)
            .and_then(|p| p.get(partition))
            .and_then(|runs| runs.iter().find(|r| r.run_id == run_id))
            .cloned())
    }

    async fn list(&self, query: &MaterializationQuery) -> Result<Vec<Materialization>> {
        let records = self.records.read().map_err(|_| poisoned())?;
        let mut found: Vec<Materialization> = records
            .iter()
            .filter(|(asset, _)| query.asset.as_ref().is_none_or(|a| a == *asset))
            .flat_map(|(_, partitions)| partitions.iter())
            .filter(|(partition, _)| query.partition.as_ref().is_none_or(|p| p == *partition))
            .flat_map(|(_, runs)| runs.iter())
            .filter(|m| query.matches(m))
            .cloned()
            .collect();
        found.sort_by(newest_first);
        if let Some(limit) = query.limit {
            found.truncate(limit);
        }
        Ok(found)
    }

    async fn latest_per_partition(&self, asset: &str) -> Result<Vec<Materialization>> {
        let records = self.records.read().map_err(|_| poisoned())?;
        Ok(records
            .get(asset)
            .into_iter()
            .flat_map(|partitions| partitions.values())
            .filter_map(|runs| runs.iter().min_by(|a, b| newest_first(a, b)))
            .cloned()
            .collect())
    }
}
