//! In-memory lineage.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use async_trait::async_trait;

use super::{LineageStore, MaterializationKey};
use crate::error::{Error, Result};
use crate::ids::RunId;
use crate::partition::Partition;

/// Keeps lineage edges (consumer, consumed) in process memory, indexed both ways so that
/// recording and walking stay proportional to the edges touched, not to all of them.
#[derive(Debug, Default)]
pub struct MemoryLineage {
    edges: RwLock<Edges>,
}

#[derive(Debug, Default)]
struct Edges {
    /// What each consumer read, in the order recorded, each once.
    by_consumer: HashMap<MaterializationKey, Vec<MaterializationKey>>,
    /// (upstream, consumer) per upstream asset.
    by_upstream_asset: HashMap<String, Vec<(MaterializationKey, MaterializationKey)>>,
    /// The consumer runs of each (asset, partition).
    runs_of: HashMap<(String, Partition), Vec<RunId>>,
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
        if consumed.is_empty() {
            return Ok(());
        }
        let mut edges = self.edges.write().map_err(|_| poisoned())?;
        let Edges {
            by_consumer,
            by_upstream_asset,
            runs_of,
        } = &mut *edges;
        let read = by_consumer.entry(consumer.clone()).or_default();
        if read.is_empty() {
            runs_of
                .entry((consumer.asset.clone(), consumer.partition.clone()))
                .or_default()
                .push(consumer.run_id);
        }
        // A consumer of many partitions (a year of days) checks duplicates against a set.
        let mut seen: Option<HashSet<MaterializationKey>> =
            (read.len() + consumed.len() > 32).then(|| read.iter().cloned().collect());
        for upstream in consumed {
            let known = match &mut seen {
                Some(seen) => !seen.insert(upstream.clone()),
                None => read.contains(upstream),
            };
            if !known {
                read.push(upstream.clone());
                by_upstream_asset
                    .entry(upstream.asset.clone())
                    .or_default()
                    .push((upstream.clone(), consumer.clone()));
            }
        }
        Ok(())
    }

    async fn consumed_by(&self, consumer: &MaterializationKey) -> Result<Vec<MaterializationKey>> {
        let edges = self.edges.read().map_err(|_| poisoned())?;
        Ok(edges.by_consumer.get(consumer).cloned().unwrap_or_default())
    }

    async fn consumers_of(
        &self,
        asset: &str,
        partition: Option<&Partition>,
        run_id: Option<RunId>,
    ) -> Result<Vec<MaterializationKey>> {
        let edges = self.edges.read().map_err(|_| poisoned())?;
        let mut found: Vec<MaterializationKey> = edges
            .by_upstream_asset
            .get(asset)
            .into_iter()
            .flatten()
            .filter(|(u, _)| {
                partition.is_none_or(|p| *p == u.partition) && run_id.is_none_or(|r| r == u.run_id)
            })
            .map(|(_, c)| c.clone())
            .collect();
        found.sort();
        found.dedup();
        Ok(found)
    }

    async fn forget_consumed_by(&self, consumers: &[MaterializationKey]) -> Result<u64> {
        let consumers: HashSet<&MaterializationKey> = consumers.iter().collect();
        let mut edges = self.edges.write().map_err(|_| poisoned())?;
        let mut deleted = 0u64;
        let mut assets: HashSet<String> = HashSet::new();
        for consumer in &consumers {
            if let Some(read) = edges.by_consumer.remove(*consumer) {
                deleted += read.len() as u64;
                assets.extend(read.into_iter().map(|u| u.asset));
                let key = (consumer.asset.clone(), consumer.partition.clone());
                if let Some(runs) = edges.runs_of.get_mut(&key) {
                    runs.retain(|r| *r != consumer.run_id);
                    if runs.is_empty() {
                        edges.runs_of.remove(&key);
                    }
                }
            }
        }
        for asset in assets {
            if let Some(list) = edges.by_upstream_asset.get_mut(&asset) {
                list.retain(|(_, c)| !consumers.contains(c));
            }
        }
        Ok(deleted)
    }

    async fn latest_consumer_run(
        &self,
        asset: &str,
        partition: &Partition,
    ) -> Result<Option<RunId>> {
        let edges = self.edges.read().map_err(|_| poisoned())?;
        Ok(edges
            .runs_of
            .get(&(asset.to_owned(), partition.clone()))
            .and_then(|runs| runs.iter().max().copied()))
    }
}
