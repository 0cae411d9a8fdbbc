//! The static mapping: an explicit table from upstream keys to the downstream keys that read
//! them.

use std::collections::BTreeMap;

use super::{Mapped, Sides};
use crate::partition::{Partition, PartitionsDefinition};

/// Upstream key -> downstream keys, and the reverse, built once.
#[derive(Debug)]
pub(super) struct StaticMap {
    forward: BTreeMap<Partition, Vec<Partition>>,
    reverse: BTreeMap<Partition, Vec<Partition>>,
}

impl StaticMap {
    pub(super) fn new(forward: BTreeMap<Partition, Vec<Partition>>) -> Self {
        let mut reverse: BTreeMap<Partition, Vec<Partition>> = BTreeMap::new();
        for (upstream, downstreams) in &forward {
            for downstream in downstreams {
                reverse
                    .entry(downstream.clone())
                    .or_default()
                    .push(upstream.clone());
            }
        }
        StaticMap { forward, reverse }
    }

    pub(super) fn len(&self) -> usize {
        self.forward.len()
    }

    pub(super) fn check(&self, sides: Sides<'_>) -> std::result::Result<(), String> {
        if self.forward.is_empty() {
            return Err(String::from("the static map is empty"));
        }
        check_keys(self.forward.keys(), sides.upstream, "dependency")?;
        check_keys(self.reverse.keys(), sides.downstream, "asset")
    }

    pub(super) fn upstream_of(&self, downstream: &Partition) -> Mapped {
        Mapped::of(self.reverse.get(downstream).cloned().unwrap_or_default())
    }

    pub(super) fn downstream_of(&self, upstream: &Partition) -> Vec<Partition> {
        self.forward.get(upstream).cloned().unwrap_or_default()
    }
}

fn check_keys<'a>(
    keys: impl Iterator<Item = &'a Partition>,
    def: Option<&dyn PartitionsDefinition>,
    side: &str,
) -> std::result::Result<(), String> {
    let Some(def) = def else {
        return Err(format!(
            "a static map needs partitions on both sides; the {side} is not partitioned"
        ));
    };
    for key in keys {
        match def.contains(key) {
            Ok(true) => {}
            Ok(false) => {
                return Err(format!(
                    "the static map names {key}, which is not a partition of the {side} ({})",
                    def.expected_form()
                ));
            }
            Err(err) => return Err(err.message().to_owned()),
        }
    }
    Ok(())
}
