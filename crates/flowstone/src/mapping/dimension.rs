//! The dimension mapping: one dimension of a multi-dimensional partition mapped by an inner
//! mapping, the other dimensions read as they are.

use std::sync::Arc;

use super::{Mapped, PartitionMapping, Sides};
use crate::error::{Error, Result};
use crate::partition::{Partition, PartitionsDefinition};

type Dimensions<'a> = &'a [(String, Arc<dyn PartitionsDefinition>)];

#[derive(Debug)]
pub(super) struct DimensionMapping {
    pub(super) name: String,
    pub(super) inner: PartitionMapping,
}

/// Where the mapped dimension sits on each side: the downstream's index and, when the upstream
/// is multi-dimensional too, its dimensions and the index there.
struct Layout<'a> {
    down: Dimensions<'a>,
    down_at: usize,
    up: Option<(Dimensions<'a>, usize)>,
}

impl DimensionMapping {
    fn layout<'a>(&self, sides: Sides<'a>) -> std::result::Result<Layout<'a>, String> {
        let down = sides
            .downstream
            .and_then(PartitionsDefinition::dimensions)
            .ok_or_else(|| {
                format!(
                    "a dimension mapping needs a multi-dimensional asset (MultiPartitions) with \
                     the dimension '{}'",
                    self.name
                )
            })?;
        let down_at = index(down, &self.name, "asset")?;
        let up = match sides.upstream.and_then(PartitionsDefinition::dimensions) {
            None => None,
            Some(up) => {
                let up_at = index(up, &self.name, "dependency")?;
                let mut down_names: Vec<&str> = down.iter().map(|(n, _)| n.as_str()).collect();
                let mut up_names: Vec<&str> = up.iter().map(|(n, _)| n.as_str()).collect();
                down_names.sort_unstable();
                up_names.sort_unstable();
                if down_names != up_names {
                    return Err(format!(
                        "a dimension mapping keeps the other dimensions as they are, so both sides \
                         need the same dimensions; the asset has {} and the dependency {}",
                        down_names.join(", "),
                        up_names.join(", ")
                    ));
                }
                Some((up, up_at))
            }
        };
        Ok(Layout { down, down_at, up })
    }

    /// The sides the inner mapping sees: the dimension's definitions (or the whole upstream
    /// when it is single-dimensional).
    fn inner_sides<'a>(&self, sides: Sides<'a>, layout: &Layout<'a>) -> Sides<'a> {
        Sides::new(
            Some(layout.down[layout.down_at].1.as_ref()),
            match layout.up {
                Some((up, at)) => Some(up[at].1.as_ref()),
                None => sides.upstream,
            },
        )
    }

    pub(super) fn check(&self, sides: Sides<'_>) -> std::result::Result<(), String> {
        let layout = self.layout(sides)?;
        self.inner
            .check(self.inner_sides(sides, &layout))
            .map_err(|why| format!("dimension '{}': {why}", self.name))
    }

    pub(super) fn upstream_of(&self, sides: Sides<'_>, downstream: &Partition) -> Result<Mapped> {
        let layout = self.layout(sides).map_err(Error::invalid_options)?;
        let items = dimension_values(downstream, layout.down.len())?;
        let inner = self
            .inner
            .upstream_of(self.inner_sides(sides, &layout), &items[layout.down_at])?;
        let (Some((up, up_at)), Some(up_def)) = (layout.up, sides.upstream) else {
            return Ok(inner);
        };
        // Rebuild each upstream tuple in the upstream's dimension order.
        let rebuild = |value: Partition| {
            Partition::Tuple(
                up.iter()
                    .enumerate()
                    .map(|(i, (name, _))| {
                        if i == up_at {
                            value.clone()
                        } else {
                            let at = layout.down.iter().position(|(n, _)| n == name).unwrap_or(i);
                            items[at].clone()
                        }
                    })
                    .collect(),
            )
        };
        // The kept dimensions are checked too: the upstream may not have the asset's value in
        // one of them.
        let rebuilt =
            super::split_members(up_def, inner.partitions.into_iter().map(rebuild).collect())?;
        let mut outside: Vec<Partition> = inner.outside.into_iter().map(rebuild).collect();
        if !rebuilt.outside.is_empty() {
            outside.extend(rebuilt.outside);
            outside.sort();
        }
        Ok(Mapped {
            partitions: rebuilt.partitions,
            outside,
        })
    }

    pub(super) fn downstream_of(
        &self,
        sides: Sides<'_>,
        upstream: &Partition,
    ) -> Result<Vec<Partition>> {
        let layout = self.layout(sides).map_err(Error::invalid_options)?;
        let inner_sides = self.inner_sides(sides, &layout);
        match layout.up {
            Some((up, up_at)) => {
                let items = dimension_values(upstream, up.len())?;
                let values = self.inner.downstream_of(inner_sides, &items[up_at])?;
                let tuples = values
                    .into_iter()
                    .map(|value| {
                        Partition::Tuple(
                            layout
                                .down
                                .iter()
                                .enumerate()
                                .map(|(i, (name, _))| {
                                    if i == layout.down_at {
                                        value.clone()
                                    } else {
                                        let at =
                                            up.iter().position(|(n, _)| n == name).unwrap_or(i);
                                        items[at].clone()
                                    }
                                })
                                .collect(),
                        )
                    })
                    .collect();
                // The asset may not have the upstream's value in a kept dimension.
                match sides.downstream {
                    Some(down) => Ok(super::split_members(down, tuples)?.partitions),
                    None => Ok(Vec::new()),
                }
            }
            None => {
                // A single-dimensional upstream feeds every combination of the other
                // dimensions.
                let values = self.inner.downstream_of(inner_sides, upstream)?;
                let Some(down) = sides.downstream else {
                    return Ok(Vec::new());
                };
                Ok(down
                    .partitions()?
                    .into_iter()
                    .filter(|p| {
                        p.tuple()
                            .is_ok_and(|items| values.contains(&items[layout.down_at]))
                    })
                    .collect())
            }
        }
    }
}

fn index(dims: Dimensions<'_>, name: &str, side: &str) -> std::result::Result<usize, String> {
    dims.iter().position(|(n, _)| n == name).ok_or_else(|| {
        let names: Vec<&str> = dims.iter().map(|(n, _)| n.as_str()).collect();
        format!(
            "the {side} has no dimension '{name}' (its dimensions: {})",
            names.join(", ")
        )
    })
}

fn dimension_values(partition: &Partition, count: usize) -> Result<&[Partition]> {
    let items = partition.tuple()?;
    if items.len() == count {
        Ok(items)
    } else {
        Err(Error::invalid_partition(
            &partition.encode(),
            format!("a tuple of {count} dimensions"),
        ))
    }
}
