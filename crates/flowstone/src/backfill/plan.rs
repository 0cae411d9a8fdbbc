//! The plan of a backfill: every (asset, partition) it covers, and which of them wait for which.
//!
//! The partitions of the backfill's *anchor* asset come from its source (a list, a range, all);
//! the other selected assets' partitions are translated through the partition mappings: what
//! the anchor's partitions affect downstream, what they read upstream. An edge joins a
//! partition to each partition of the backfill it reads, so a partition is released as soon
//! as everything it needs *in this backfill* has succeeded (not level by level), and a failure
//! blocks exactly the partitions that need it. Nodes and edges are plain indices: planning ten
//! years of a daily -> monthly -> yearly chain is a few milliseconds.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::{BackfillSource, resolve_partitions};
use crate::asset::Asset;
use crate::error::{Error, Result};
use crate::partition::Partition;
use crate::registry::Registry;

/// One (asset, partition) of the plan; `asset` indexes [`Plan::assets`].
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) asset: usize,
    pub(crate) partition: Partition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waits for upstream nodes of the plan.
    Waiting,
    /// Handed out by [`Plan::roots`] or a release.
    Released,
    /// Will not run: an upstream node failed or was cancelled.
    Blocked,
}

/// The plan. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) assets: Vec<Arc<Asset>>,
    pub(crate) nodes: Vec<Node>,
    downstream: Vec<Vec<u32>>,
    waiting: Vec<u32>,
    state: Vec<State>,
    /// Whether a node of the plan that this one reads ran in this backfill (so what this one
    /// holds, if anything, is older than its inputs).
    stale: Vec<bool>,
}

impl Plan {
    /// Plans `selected` (asset names in topological order) over `source`, given in the
    /// partitions of `anchor` (default: the first selected asset).
    pub(crate) fn build(
        registry: &Registry,
        selected: &[String],
        anchor: Option<&str>,
        source: &BackfillSource,
    ) -> Result<Plan> {
        let assets: Vec<Arc<Asset>> = selected
            .iter()
            .map(|name| registry.get(name).map(Arc::clone))
            .collect::<Result<_>>()?;
        let position: HashMap<&str, usize> = assets
            .iter()
            .enumerate()
            .map(|(i, a)| (a.name(), i))
            .collect();
        let anchor = match anchor {
            Some(name) => *position.get(name).ok_or_else(|| {
                registry.get(name).err().unwrap_or_else(|| {
                    Error::invalid_options(format!(
                        "the backfill's anchor '{name}' is not among its selected assets ({})",
                        selected.join(", ")
                    ))
                })
            })?,
            None => 0,
        };
        let partitions = partitions_of(registry, &assets, &position, anchor, source)?;

        let mut nodes = Vec::new();
        let mut index: HashMap<(usize, Partition), u32> = HashMap::new();
        for (asset, list) in partitions.into_iter().enumerate() {
            for partition in list {
                let at = u32::try_from(nodes.len()).map_err(|_| too_large(nodes.len()))?;
                if index.insert((asset, partition.clone()), at).is_none() {
                    nodes.push(Node { asset, partition });
                }
            }
        }
        let mut downstream = vec![Vec::new(); nodes.len()];
        let mut waiting = vec![0u32; nodes.len()];
        for (at, node) in nodes.iter().enumerate() {
            let asset = &assets[node.asset];
            for dep in asset.dependencies() {
                let Some(&dep_at) = position.get(dep.as_str()) else {
                    continue;
                };
                let mapped = registry.upstream_partitions(asset, dep, &node.partition)?;
                for partition in mapped.partitions {
                    if let Some(&upstream) = index.get(&(dep_at, partition)) {
                        downstream[upstream as usize].push(at as u32);
                        waiting[at] += 1;
                    }
                }
            }
        }
        let state = vec![State::Waiting; nodes.len()];
        let stale = vec![false; nodes.len()];
        Ok(Plan {
            assets,
            nodes,
            downstream,
            waiting,
            state,
            stale,
        })
    }

    /// How many (asset, partition)s the plan covers.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    /// How many nodes of the plan `node` waits for, as planned.
    pub(crate) fn waiting_on(&self, node: usize) -> usize {
        self.waiting[node] as usize
    }

    /// The nodes that wait for nothing, now released.
    pub(crate) fn roots(&mut self) -> Vec<usize> {
        let roots: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.waiting[i] == 0)
            .collect();
        for &i in &roots {
            self.state[i] = State::Released;
        }
        roots
    }

    /// `node` will run (when the executor releases the plan): what reads it is stale.
    pub(crate) fn mark_ran(&mut self, node: usize) {
        for &next in &self.downstream[node] {
            self.stale[next as usize] = true;
        }
    }

    /// The nodes that read `node`.
    pub(crate) fn downstream_of(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        self.downstream[node].iter().map(|&n| n as usize)
    }

    /// Whether a node that `node` reads ran in this backfill.
    pub(crate) fn is_stale(&self, node: usize) -> bool {
        self.stale[node]
    }

    /// `node` succeeded (`ran`) or was skipped as already done: pushes the nodes it released.
    pub(crate) fn succeeded(&mut self, node: usize, ran: bool, released: &mut impl Extend<usize>) {
        for &next in &self.downstream[node] {
            let next = next as usize;
            self.stale[next] |= ran;
            self.waiting[next] -= 1;
            if self.waiting[next] == 0 && self.state[next] == State::Waiting {
                self.state[next] = State::Released;
                released.extend([next]);
            }
        }
    }

    /// `node` failed or was cancelled: every node downstream of it that has not been released
    /// will not run; returns them, each once.
    pub(crate) fn blocked_by(&mut self, node: usize) -> Vec<usize> {
        let mut blocked = Vec::new();
        let mut stack: Vec<usize> = self.downstream[node].iter().map(|&n| n as usize).collect();
        while let Some(next) = stack.pop() {
            if self.state[next] != State::Waiting {
                continue;
            }
            self.state[next] = State::Blocked;
            blocked.push(next);
            stack.extend(self.downstream[next].iter().map(|&n| n as usize));
        }
        blocked
    }
}

fn too_large(n: usize) -> Error {
    Error::invalid_options(format!(
        "a backfill of more than {n} partitions is more than one plan holds; split it"
    ))
}

/// Each selected asset's partitions, in order. The source names the anchor's; the assets
/// downstream of resolved ones take what those affect, the assets upstream what they read;
/// an asset connected to none takes the source as its own (and `All` is every asset's own).
fn partitions_of(
    registry: &Registry,
    assets: &[Arc<Asset>],
    position: &HashMap<&str, usize>,
    anchor: usize,
    source: &BackfillSource,
) -> Result<Vec<Vec<Partition>>> {
    let own = |asset: &Asset| -> Result<Vec<Partition>> {
        match (source, asset.partitions()) {
            (BackfillSource::All, None) => Ok(vec![Partition::Unpartitioned]),
            _ => {
                let mut seen = std::collections::HashSet::new();
                let mut list = resolve_partitions(registry, asset.name(), source)?;
                list.retain(|p| seen.insert(p.clone()));
                Ok(list)
            }
        }
    };
    let mut resolved: Vec<Option<Vec<Partition>>> = vec![None; assets.len()];
    resolved[anchor] = Some(own(&assets[anchor])?);
    if matches!(source, BackfillSource::All) {
        for (i, asset) in assets.iter().enumerate() {
            if resolved[i].is_none() {
                resolved[i] = Some(own(asset)?);
            }
        }
    }
    // Until nothing new is reached: an asset downstream of one that only the upstream pass
    // reached (`+mirror,monthly` with both over `daily`) takes what that one affects.
    loop {
        let mut grew = false;
        // Downstream, in topological order: what the resolved upstream partitions affect.
        for i in 0..assets.len() {
            if resolved[i].is_some() {
                continue;
            }
            let asset = &assets[i];
            let mut found: Option<BTreeSet<Partition>> = None;
            for dep in asset.upstream_assets() {
                let Some(Some(upstream)) = position.get(dep).map(|&at| &resolved[at]) else {
                    continue;
                };
                let set = found.get_or_insert_with(BTreeSet::new);
                for partition in upstream {
                    set.extend(registry.downstream_partitions(asset, dep, partition)?);
                }
            }
            if let Some(set) = found {
                resolved[i] = Some(set.into_iter().collect());
                grew = true;
            }
        }
        // Upstream, in reverse topological order: what the resolved downstream partitions read.
        for i in (0..assets.len()).rev() {
            if resolved[i].is_some() {
                continue;
            }
            let name = assets[i].name();
            let mut found: Option<BTreeSet<Partition>> = None;
            for (d, downstream) in assets.iter().enumerate().skip(i + 1) {
                let Some(partitions) = &resolved[d] else {
                    continue;
                };
                if !downstream.upstream_assets().any(|dep| dep == name) {
                    continue;
                }
                let set = found.get_or_insert_with(BTreeSet::new);
                for partition in partitions {
                    set.extend(
                        registry
                            .upstream_partitions(downstream, name, partition)?
                            .partitions,
                    );
                }
            }
            if let Some(set) = found {
                resolved[i] = Some(set.into_iter().collect());
                grew = true;
            }
        }
        if !grew {
            break;
        }
    }
    assets
        .iter()
        .zip(resolved)
        .map(|(asset, found)| match found {
            Some(list) => Ok(list),
            None => own(asset),
        })
        .collect()
}
