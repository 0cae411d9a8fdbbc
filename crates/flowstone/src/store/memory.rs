//! The in-memory materialization store.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Materialization, MaterializationQuery, MaterializationStore, newest_first};
use super::{RetentionPolicy, expired_of_partition};
use crate::error::{Error, Result};
use crate::ids::RunId;
use crate::lineage::MaterializationKey;
use crate::partition::Partition;

/// Keeps records in process memory: asset → partition → records of each run.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: RwLock<HashMap<String, HashMap<Partition, Runs>>>,
}

/// The records of one (asset, partition), with the newest one tracked so that `latest` is O(1).
/// Most partitions see a handful of runs, found by a scan; past [`INDEX_FROM`] runs an index
/// by run id keeps upserts O(1) (an unpartitioned asset materialized millions of times).
#[derive(Debug, Default)]
struct Runs {
    records: Vec<Materialization>,
    by_run: Option<HashMap<RunId, usize>>,
    newest: usize,
}

const INDEX_FROM: usize = 16;

impl Runs {
    fn position(&self, run_id: RunId) -> Option<usize> {
        match &self.by_run {
            Some(index) => index.get(&run_id).copied(),
            None => self.records.iter().position(|r| r.run_id == run_id),
        }
    }

    fn push(&mut self, m: &Materialization) -> usize {
        self.records.push(m.clone());
        let index = self.records.len() - 1;
        if let Some(by_run) = &mut self.by_run {
            by_run.insert(m.run_id, index);
        } else if self.records.len() > INDEX_FROM {
            self.by_run = Some(
                self.records
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (r.run_id, i))
                    .collect(),
            );
        }
        index
    }

    fn upsert(&mut self, m: &Materialization) {
        match self.position(m.run_id) {
            Some(index) => {
                let got_older = newest_first(m, &self.records[index]).is_gt();
                self.records[index] = m.clone();
                if index == self.newest {
                    if got_older {
                        // Rare: the newest record moved back in time; find the newest again.
                        self.newest = (0..self.records.len())
                            .min_by(|&a, &b| newest_first(&self.records[a], &self.records[b]))
                            .unwrap_or(0);
                    }
                } else if newest_first(m, &self.records[self.newest]).is_lt() {
                    self.newest = index;
                }
            }
            None => {
                let index = self.push(m);
                if index == 0 || newest_first(m, &self.records[self.newest]).is_lt() {
                    self.newest = index;
                }
            }
        }
    }

    fn newest(&self) -> Option<&Materialization> {
        self.records.get(self.newest)
    }

    /// Removes the records of `runs`; returns how many there were.
    fn remove(&mut self, runs: &HashSet<RunId>) -> usize {
        let before = self.records.len();
        self.records.retain(|r| !runs.contains(&r.run_id));
        let removed = before - self.records.len();
        if removed > 0 {
            let records = std::mem::take(&mut self.records);
            *self = Runs::default();
            for m in &records {
                self.upsert(m);
            }
        }
        removed
    }
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
        runs.upsert(m);
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
            .and_then(|runs| runs.position(run_id).map(|i| runs.records[i].clone())))
    }

    async fn list(&self, query: &MaterializationQuery) -> Result<Vec<Materialization>> {
        let records = self.records.read().map_err(|_| poisoned())?;
        let mut found: Vec<Materialization> = records
            .iter()
            .filter(|(asset, _)| query.asset.as_ref().is_none_or(|a| a == *asset))
            .flat_map(|(_, partitions)| partitions.iter())
            .filter(|(partition, _)| query.partition.as_ref().is_none_or(|p| p == *partition))
            .flat_map(|(_, runs)| runs.records.iter())
            .filter(|m| query.matches(m))
            .cloned()
            .collect();
        found.sort_by(newest_first);
        if let Some(limit) = query.limit {
            found.truncate(limit);
        }
        Ok(found)
    }

    async fn expired(
        &self,
        policy: &RetentionPolicy,
        now: DateTime<Utc>,
        from: Option<&MaterializationKey>,
        limit: usize,
    ) -> Result<Vec<MaterializationKey>> {
        let records = self.records.read().map_err(|_| poisoned())?;
        // Groups in (asset, partition) order, from the group of `from` on.
        let mut groups: Vec<(&String, &Partition, &Runs)> = records
            .iter()
            .flat_map(|(asset, partitions)| {
                partitions
                    .iter()
                    .map(move |(partition, runs)| (asset, partition, runs))
            })
            .filter(|(asset, partition, _)| {
                from.is_none_or(|f| {
                    (asset.as_str(), *partition) >= (f.asset.as_str(), &f.partition)
                })
            })
            .collect();
        groups.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        let mut found = Vec::new();
        for (_, _, runs) in groups {
            let mut group: Vec<&Materialization> = runs.records.iter().collect();
            for m in expired_of_partition(policy, now, &mut group) {
                if found.len() == limit {
                    return Ok(found);
                }
                found.push(m.key());
            }
        }
        Ok(found)
    }

    async fn delete(&self, keys: &[MaterializationKey]) -> Result<u64> {
        let mut by_group: HashMap<(&str, &Partition), HashSet<RunId>> = HashMap::new();
        for key in keys {
            by_group
                .entry((key.asset.as_str(), &key.partition))
                .or_default()
                .insert(key.run_id);
        }
        let mut records = self.records.write().map_err(|_| poisoned())?;
        let mut deleted = 0;
        for ((asset, partition), runs) in by_group {
            let Some(partitions) = records.get_mut(asset) else {
                continue;
            };
            if let Some(group) = partitions.get_mut(partition) {
                deleted += group.remove(&runs);
                if group.records.is_empty() {
                    partitions.remove(partition);
                }
            }
            if partitions.is_empty() {
                records.remove(asset);
            }
        }
        Ok(deleted as u64)
    }

    async fn latest(&self, asset: &str, partition: &Partition) -> Result<Option<Materialization>> {
        let records = self.records.read().map_err(|_| poisoned())?;
        Ok(records
            .get(asset)
            .and_then(|p| p.get(partition))
            .and_then(Runs::newest)
            .cloned())
    }

    async fn latest_per_partition(&self, asset: &str) -> Result<Vec<Materialization>> {
        let records = self.records.read().map_err(|_| poisoned())?;
        Ok(records
            .get(asset)
            .into_iter()
            .flat_map(|partitions| partitions.values())
            .filter_map(Runs::newest)
            .cloned()
            .collect())
    }
}
