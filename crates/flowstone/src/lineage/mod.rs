//! Lineage: which upstream materializations each materialization consumed.
//!
//! The lineage hook records, after a successful materialization, the exact (asset, partition,
//! run id) of every dependency it read (taken from the stored output's metadata). Stores implement
//! two one-step lookups; the walks with depth ([`upstream`], [`downstream`], [`impact`]) are
//! written once here on top of them, so every store answers them the same way.

mod memory;

use std::collections::{HashSet, VecDeque};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use memory::MemoryLineage;

use crate::error::Result;
use crate::ids::RunId;
use crate::partition::Partition;

/// One materialization: (asset, partition, run id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MaterializationKey {
    /// The asset.
    pub asset: String,
    /// The partition.
    pub partition: Partition,
    /// The run.
    pub run_id: RunId,
}

/// A materialization found by a lineage walk, and how many steps away it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageEntry {
    /// The materialization.
    pub key: MaterializationKey,
    /// Steps from the starting point (1 = direct).
    pub depth: u32,
}

/// Which way to walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// What the materialization consumed, transitively.
    Upstream,
    /// What consumed it, transitively.
    Downstream,
}

/// Persists lineage edges.
#[async_trait]
pub trait LineageStore: Send + Sync + 'static {
    /// Records that `consumer` read each of `consumed`.
    async fn record(
        &self,
        consumer: &MaterializationKey,
        consumed: &[MaterializationKey],
    ) -> Result<()>;

    /// What `consumer` read (one step).
    async fn consumed_by(&self, consumer: &MaterializationKey) -> Result<Vec<MaterializationKey>>;

    /// Materializations that read some run of `asset` (for `partition` when given, for any
    /// partition otherwise; for `run_id` when given, for any run otherwise). One step.
    async fn consumers_of(
        &self,
        asset: &str,
        partition: Option<&Partition>,
        run_id: Option<RunId>,
    ) -> Result<Vec<MaterializationKey>>;

    /// Deletes what each of `consumers` read (the edges it recorded); edges that name them as
    /// the upstream stay. Returns how many edges were deleted. Retention calls this for the
    /// records it drops.
    async fn forget_consumed_by(&self, consumers: &[MaterializationKey]) -> Result<u64>;

    /// The newest run of (asset, partition) that has recorded lineage as a consumer.
    async fn latest_consumer_run(
        &self,
        asset: &str,
        partition: &Partition,
    ) -> Result<Option<RunId>>;
}

/// Everything the materialization of `asset` at `partition` consumed, up to `depth` steps.
/// Without `run_id` the newest run with lineage is used.
pub async fn upstream(
    store: &dyn LineageStore,
    asset: &str,
    partition: &Partition,
    run_id: Option<RunId>,
    depth: u32,
) -> Result<Vec<LineageEntry>> {
    let run_id = match run_id {
        Some(run_id) => run_id,
        None => match store.latest_consumer_run(asset, partition).await? {
            Some(run_id) => run_id,
            None => return Ok(Vec::new()),
        },
    };
    let start = MaterializationKey {
        asset: asset.to_owned(),
        partition: partition.clone(),
        run_id,
    };
    let first = if depth == 0 {
        Vec::new()
    } else {
        store.consumed_by(&start).await?
    };
    walk(store, Direction::Upstream, first, depth).await
}

/// Every materialization that consumed `asset` at `partition` (any run, or `run_id`), up to
/// `depth` steps.
pub async fn downstream(
    store: &dyn LineageStore,
    asset: &str,
    partition: &Partition,
    run_id: Option<RunId>,
    depth: u32,
) -> Result<Vec<LineageEntry>> {
    let first = if depth == 0 {
        Vec::new()
    } else {
        store.consumers_of(asset, Some(partition), run_id).await?
    };
    walk(store, Direction::Downstream, first, depth).await
}

/// Every materialization downstream of any materialization of `asset`, at any depth.
pub async fn impact(store: &dyn LineageStore, asset: &str) -> Result<Vec<LineageEntry>> {
    let first = store.consumers_of(asset, None, None).await?;
    walk(store, Direction::Downstream, first, u32::MAX).await
}

/// Breadth-first from the one-step neighbours `first` (depth 1) in `direction`, up to `depth`
/// steps, each materialization once.
async fn walk(
    store: &dyn LineageStore,
    direction: Direction,
    first: Vec<MaterializationKey>,
    depth: u32,
) -> Result<Vec<LineageEntry>> {
    let mut seen = HashSet::new();
    let mut frontier = VecDeque::new();
    let mut found = Vec::new();
    let mut visit = |key: MaterializationKey, at: u32, frontier: &mut VecDeque<_>| {
        if seen.insert(key.clone()) {
            found.push(LineageEntry {
                key: key.clone(),
                depth: at,
            });
            frontier.push_back((key, at));
        }
    };
    if depth == 0 {
        return Ok(Vec::new());
    }
    for key in first {
        visit(key, 1, &mut frontier);
    }
    while let Some((key, at)) = frontier.pop_front() {
        if at >= depth {
            continue;
        }
        let next = match direction {
            Direction::Upstream => store.consumed_by(&key).await?,
            Direction::Downstream => {
                store
                    .consumers_of(&key.asset, Some(&key.partition), Some(key.run_id))
                    .await?
            }
        };
        for key in next {
            visit(key, at + 1, &mut frontier);
        }
    }
    Ok(found)
}
