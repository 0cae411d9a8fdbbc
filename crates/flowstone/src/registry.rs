//! The registry: the validated asset graph.
//!
//! Built once by [`crate::FlowStone::builder`]. Validation happens here so that every later
//! lookup can trust the graph: names are unique, dependencies exist, optional dependencies are
//! among the dependencies, resources are registered, and there is no cycle (the error names it).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use crate::asset::Asset;
use crate::error::{Error, Result};
use crate::mapping::{Mapped, PartitionMapping, Sides};
use crate::partition::{Partition, PartitionsDefinition};
use crate::suggest::did_you_mean;
pub use crate::suggest::suggest;

/// The validated set of assets, in topological order.
#[derive(Debug, Clone)]
pub struct Registry {
    assets: HashMap<String, Arc<Asset>>,
    order: Vec<String>,
}

impl Registry {
    /// Validates `assets` against the registered `resources` and builds the registry.
    pub(crate) fn build(assets: Vec<Asset>, resources: &BTreeSet<String>) -> Result<Registry> {
        let mut by_name: BTreeMap<String, Asset> = BTreeMap::new();
        for asset in assets {
            crate::limits::asset_name(asset.name())?;
            if let Some(timeout) = asset.timeout_value() {
                crate::limits::timeout("timeout", timeout).map_err(|e| {
                    Error::invalid_options(format!("asset '{}': {}", asset.name, e.message()))
                        .with_asset(asset.name())
                })?;
            }
            if by_name.contains_key(asset.name()) {
                return Err(Error::invalid_graph(format!(
                    "asset '{}' is declared twice; asset names must be unique",
                    asset.name
                )));
            }
            by_name.insert(asset.name.to_string(), asset);
        }
        for asset in by_name.values() {
            if asset.function().is_none() {
                return Err(Error::invalid_graph(format!(
                    "asset '{}' has no function; give it one with .execute(..) or .execute_blocking(..)",
                    asset.name
                )));
            }
            for dep in &asset.depends_on {
                if !by_name.contains_key(dep) {
                    let hint = did_you_mean(dep, by_name.keys().map(String::as_str));
                    return Err(Error::invalid_graph(format!(
                        "asset '{}' depends on unknown asset '{dep}'{hint}",
                        asset.name
                    )));
                }
            }
            for dep in &asset.optional {
                if !asset.depends_on.contains(dep) {
                    return Err(Error::invalid_graph(format!(
                        "asset '{}' marks '{dep}' optional, but '{dep}' is not in its depends_on",
                        asset.name
                    )));
                }
            }
            for resource in asset.requires.iter() {
                if !resources.contains(resource) {
                    return Err(Error::invalid_graph(format!(
                        "asset '{}' requires resource '{resource}', which is not registered; \
                         register it with builder.resource(\"{resource}\", ..)",
                        asset.name
                    )));
                }
            }
        }
        resolve_mappings(&mut by_name)?;
        let order = topological_order(&by_name)?;
        Ok(Registry {
            assets: by_name
                .into_iter()
                .map(|(name, asset)| (name, Arc::new(asset)))
                .collect(),
            order,
        })
    }

    /// The asset called `name`, or `AssetNotFound` with a near name when there is one.
    pub fn get(&self, name: &str) -> Result<&Arc<Asset>> {
        self.assets.get(name).ok_or_else(|| {
            let near = suggest(name, self.assets.keys().map(String::as_str));
            Error::asset_not_found(name, near)
        })
    }

    /// Whether an asset called `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.assets.contains_key(name)
    }

    /// Every asset name, dependencies before dependents.
    pub fn topological_order(&self) -> &[String] {
        &self.order
    }

    /// Every asset, dependencies before dependents.
    pub fn assets(&self) -> impl Iterator<Item = &Arc<Asset>> {
        self.order.iter().filter_map(|name| self.assets.get(name))
    }

    /// Number of assets.
    pub fn len(&self) -> usize {
        self.assets.len()
    }

    /// Whether there are no assets.
    pub fn is_empty(&self) -> bool {
        self.assets.is_empty()
    }

    /// The partitions of dependency `dep` that `asset` at `partition` reads, through the
    /// dependency's mapping (see [`crate::mapping`]).
    pub fn upstream_partitions(
        &self,
        asset: &Asset,
        dep: &str,
        partition: &Partition,
    ) -> Result<Mapped> {
        let (sides, mapping) = self.edge(asset, dep)?;
        mapping
            .upstream_of(sides, partition)
            .map_err(|e| edge_error(asset, dep, mapping, e))
    }

    /// The partitions of `asset` that read `partition` of its dependency `dep`: what a new
    /// materialization of that partition affects.
    pub fn downstream_partitions(
        &self,
        asset: &Asset,
        dep: &str,
        partition: &Partition,
    ) -> Result<Vec<Partition>> {
        let (sides, mapping) = self.edge(asset, dep)?;
        mapping
            .downstream_of(sides, partition)
            .map_err(|e| edge_error(asset, dep, mapping, e))
    }

    fn edge<'a>(
        &'a self,
        asset: &'a Asset,
        dep: &str,
    ) -> Result<(Sides<'a>, &'a PartitionMapping)> {
        let upstream = self.get(dep)?;
        let mapping = asset.mapping(dep).ok_or_else(|| {
            Error::invalid_options(format!(
                "asset '{}' does not depend on '{dep}'",
                asset.name()
            ))
            .with_asset(asset.name())
        })?;
        let sides = Sides::new(
            asset
                .partitions()
                .map(|d| d.as_ref() as &dyn PartitionsDefinition),
            upstream
                .partitions()
                .map(|d| d.as_ref() as &dyn PartitionsDefinition),
        );
        Ok((sides, mapping))
    }

    /// The transitive dependencies of `name` (not itself), dependencies first.
    pub fn ancestors(&self, name: &str) -> Result<Vec<String>> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&str> = self.get(name)?.upstream_assets().collect();
        while let Some(next) = stack.pop() {
            if seen.insert(next.to_owned()) {
                stack.extend(self.get(next)?.upstream_assets());
            }
        }
        Ok(self
            .order
            .iter()
            .filter(|n| seen.contains(n.as_str()))
            .cloned()
            .collect())
    }

    /// Everything downstream of `name` (not itself), dependencies first.
    pub fn descendants(&self, name: &str) -> Result<Vec<String>> {
        self.get(name)?;
        let mut seen = BTreeSet::new();
        let mut stack = vec![name.to_owned()];
        while let Some(next) = stack.pop() {
            for dependent in self.dependents(&next) {
                if seen.insert(dependent.clone()) {
                    stack.push(dependent);
                }
            }
        }
        Ok(self
            .order
            .iter()
            .filter(|n| seen.contains(n.as_str()))
            .cloned()
            .collect())
    }

    /// The assets that depend on `name` directly.
    pub fn dependents(&self, name: &str) -> Vec<String> {
        self.order
            .iter()
            .filter(|n| self.assets[n.as_str()].upstream_assets().any(|d| d == name))
            .cloned()
            .collect()
    }

    /// The graph as text: one line per asset with its dependencies, in topological order.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for asset in self.assets() {
            let _ = write!(out, "{}", asset.name);
            if !asset.depends_on.is_empty() {
                let deps: Vec<String> = asset
                    .depends_on
                    .iter()
                    .map(|d| asset.dependency_label(d))
                    .collect();
                let _ = write!(out, " <- {}", deps.join(", "));
            }
            if let Some(description) = &asset.description {
                let _ = write!(out, "  # {description}");
            }
            out.push('\n');
        }
        out
    }

    /// The graph as a Mermaid flowchart (optional dependencies drawn dashed).
    pub fn to_mermaid(&self) -> String {
        // Names that differ only in punctuation (`raw.events`, `raw_events`) sanitize to the same
        // id; later ones get a numeric suffix so every asset keeps its own node.
        let mut ids: HashMap<&str, String> = HashMap::new();
        let mut used: BTreeSet<String> = BTreeSet::new();
        for asset in self.assets() {
            let base = mermaid_id(asset.name());
            let mut id = base.clone();
            let mut n = 2;
            while used.contains(&id) {
                id = format!("{base}_{n}");
                n += 1;
            }
            used.insert(id.clone());
            ids.insert(asset.name(), id);
        }
        let mut out = String::from("flowchart LR\n");
        for asset in self.assets() {
            let _ = writeln!(out, "    {}[\"{}\"]", ids[asset.name()], asset.name);
        }
        for asset in self.assets() {
            for dep in &asset.depends_on {
                let arrow = if asset.optional.contains(dep) {
                    "-.->"
                } else {
                    "-->"
                };
                let _ = writeln!(
                    out,
                    "    {} {arrow} {}",
                    ids[dep.as_str()],
                    ids[asset.name()]
                );
            }
        }
        out
    }
}

/// Gives every dependency its mapping (the explicit one or the default for its two
/// definitions) and checks that each can apply; a self-dependency must read only earlier
/// partitions.
fn resolve_mappings(assets: &mut BTreeMap<String, Asset>) -> Result<()> {
    let mut resolved = Vec::new();
    for asset in assets.values() {
        for dep in &asset.depends_on {
            let upstream = &assets[dep];
            let sides = Sides::new(
                asset
                    .partitions()
                    .map(|d| d.as_ref() as &dyn PartitionsDefinition),
                upstream
                    .partitions()
                    .map(|d| d.as_ref() as &dyn PartitionsDefinition),
            );
            let mapping = asset
                .mapping(dep)
                .cloned()
                .unwrap_or_else(|| PartitionMapping::default_for(sides));
            if dep == asset.name() && !mapping.reads_only_earlier() {
                return Err(Error::invalid_graph(format!(
                    "the asset graph has a cycle: {0} -> {0} ('{0}' reads itself through {1}; \
                     an asset may read only its own earlier partitions, through \
                     PartitionMapping::time_window().offset(-1) or a more negative offset)",
                    asset.name,
                    mapping.describe()
                ))
                .with_asset(asset.name()));
            }
            mapping.check(sides).map_err(|why| {
                Error::invalid_graph(format!(
                    "asset '{}' reads '{dep}' through {}, which cannot apply: {why}",
                    asset.name,
                    mapping.describe()
                ))
                .with_asset(asset.name())
            })?;
            resolved.push((asset.name.to_string(), dep.clone(), mapping));
        }
    }
    for (asset, dep, mapping) in resolved {
        if let Some(asset) = assets.get_mut(&asset) {
            asset.mappings.insert(dep, mapping);
        }
    }
    Ok(())
}

/// Names the asset, the dependency and the mapping in a mapping's failure.
fn edge_error(asset: &Asset, dep: &str, mapping: &PartitionMapping, err: Error) -> Error {
    Error::new(
        err.kind(),
        format!(
            "asset '{}' reads '{dep}' through {}: {}",
            asset.name(),
            mapping.describe(),
            err.message()
        ),
    )
    .with_asset(asset.name())
}

fn mermaid_id(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Kahn's algorithm, deterministic (alphabetical among ready assets); on a cycle, names it.
fn topological_order(assets: &BTreeMap<String, Asset>) -> Result<Vec<String>> {
    let mut remaining: BTreeMap<&str, usize> = assets
        .values()
        .map(|a| (a.name(), a.upstream_assets().count()))
        .collect();
    let mut order = Vec::with_capacity(assets.len());
    loop {
        let ready: Vec<&str> = remaining
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(name, _)| *name)
            .collect();
        if ready.is_empty() {
            break;
        }
        for name in ready {
            remaining.remove(name);
            order.push(name.to_owned());
            for asset in assets.values() {
                if asset.upstream_assets().any(|d| d == name)
                    && let Some(n) = remaining.get_mut(asset.name())
                {
                    *n -= 1;
                }
            }
        }
    }
    if remaining.is_empty() {
        return Ok(order);
    }
    Err(Error::invalid_graph(format!(
        "the asset graph has a cycle: {}",
        find_cycle(assets, &remaining).join(" -> ")
    )))
}

/// Walks dependencies among the assets left over by Kahn's algorithm until one repeats.
fn find_cycle(assets: &BTreeMap<String, Asset>, stuck: &BTreeMap<&str, usize>) -> Vec<String> {
    let Some(start) = stuck.keys().next() else {
        return Vec::new();
    };
    let mut path: Vec<&str> = vec![start];
    loop {
        let current = path[path.len() - 1];
        let next = assets[current]
            .upstream_assets()
            .find(|d| stuck.contains_key(d));
        let Some(next) = next else {
            return path.iter().map(|s| (*s).to_owned()).collect();
        };
        if let Some(pos) = path.iter().position(|p| *p == next) {
            let mut cycle: Vec<String> = path[pos..].iter().map(|s| (*s).to_owned()).collect();
            cycle.push(next.to_owned());
            return cycle;
        }
        path.push(next);
    }
}
