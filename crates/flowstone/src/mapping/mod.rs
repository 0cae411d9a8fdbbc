//! Partition mappings: which partitions of a dependency one partition of an asset reads.
//!
//! A dependency is read for the same partition by default. A monthly asset over daily data, a
//! yearly report over its months, a cumulative asset over its own previous day need more: a
//! [`PartitionMapping`] on the dependency, given with
//! [`Asset::depends_on_mapped`](crate::Asset::depends_on_mapped). The built-in mappings are the
//! ones a Dagster user knows:
//!
//! | mapping | a downstream partition reads |
//! |---|---|
//! | [`identity`](PartitionMapping::identity) | the same partition (the default when both sides share their partitions) |
//! | [`all_partitions`](PartitionMapping::all_partitions) | every upstream partition (the default for an unpartitioned asset over a partitioned one) |
//! | [`time_window`](PartitionMapping::time_window) | the upstream windows overlapping its own, shifted by offsets in its own grain (the default between two time-based definitions of different grains) |
//! | [`last_partition`](PartitionMapping::last_partition) | the upstream's latest partition |
//! | [`static_map`](PartitionMapping::static_map) | the upstream keys an explicit table maps to it |
//! | [`dimension`](PartitionMapping::dimension) | one dimension mapped, the others the same |
//! | [`custom`](PartitionMapping::custom) | what a function says (and the answer is still checked) |
//!
//! A mapping is checked against the two definitions when the graph is built
//! ([`PartitionMapping::check`]), so a mapping that cannot apply is a build error, not a
//! surprise at run time. It answers both ways: [`PartitionMapping::upstream_of`] for reading
//! and readiness, [`PartitionMapping::downstream_of`] for impact and backfill planning.
//!
//! # Partitions a definition does not have
//!
//! A mapping may point at windows the upstream definition does not have: the previous day of
//! the first day, the days of a month before the daily data starts. Those are reported apart
//! ([`Mapped::outside`]). Reading a dependency whose mapping points outside its definition is
//! an error unless the mapping [`allow_missing`](PartitionMapping::allow_missing) (a
//! self-dependency always allows it: the first partition of a cumulative asset has no
//! previous one).

mod dimension;
mod static_map;
mod time_window;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::partition::{Partition, PartitionsDefinition};

/// The definitions on the two sides of a dependency (`None`: that side is not partitioned).
#[derive(Clone, Copy)]
pub struct Sides<'a> {
    /// The asset that reads.
    pub downstream: Option<&'a dyn PartitionsDefinition>,
    /// The dependency it reads.
    pub upstream: Option<&'a dyn PartitionsDefinition>,
}

impl<'a> Sides<'a> {
    /// Both sides.
    pub fn new(
        downstream: Option<&'a dyn PartitionsDefinition>,
        upstream: Option<&'a dyn PartitionsDefinition>,
    ) -> Self {
        Sides {
            downstream,
            upstream,
        }
    }
}

/// What a mapping answers for one partition: the partitions of the other side's definition, in
/// order, and the ones it points at that the definition does not have.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapped {
    /// Partitions of the definition, in order.
    pub partitions: Vec<Partition>,
    /// Partitions the mapping points at that the definition does not have, in order.
    pub outside: Vec<Partition>,
}

impl Mapped {
    fn of(partitions: Vec<Partition>) -> Self {
        Mapped {
            partitions,
            outside: Vec::new(),
        }
    }
}

/// A user's mapping function: the upstream partitions a downstream partition reads.
type MapFn = Arc<dyn Fn(&Partition) -> Result<Vec<Partition>> + Send + Sync>;

#[derive(Clone)]
enum Kind {
    Identity,
    AllPartitions,
    LastPartition,
    TimeWindow(time_window::Offsets),
    Static(Arc<static_map::StaticMap>),
    Dimension(Arc<dimension::DimensionMapping>),
    Custom {
        name: Arc<str>,
        upstream: MapFn,
        downstream: Option<MapFn>,
    },
}

/// Which partitions of a dependency a partition of an asset reads. See the
/// [module docs](self).
#[derive(Clone)]
pub struct PartitionMapping {
    kind: Kind,
    allow_missing: bool,
}

impl PartitionMapping {
    fn new(kind: Kind) -> Self {
        PartitionMapping {
            kind,
            allow_missing: false,
        }
    }

    /// The same partition on both sides.
    pub fn identity() -> Self {
        PartitionMapping::new(Kind::Identity)
    }

    /// Every partition of the upstream (an unpartitioned or coarser summary over all of it).
    pub fn all_partitions() -> Self {
        PartitionMapping::new(Kind::AllPartitions)
    }

    /// The upstream's latest partition (the last of its definition; for an open-ended time
    /// definition, the current window).
    pub fn last_partition() -> Self {
        PartitionMapping::new(Kind::LastPartition)
    }

    /// Between two time-based definitions ([`Hourly`](crate::partition::Hourly),
    /// [`Daily`](crate::partition::Daily), [`Monthly`](crate::partition::Monthly),
    /// [`Yearly`](crate::partition::Yearly)) of any grains: a downstream partition reads every
    /// upstream partition whose window overlaps its own. A month reads its days, a day reads
    /// the month that contains it. Shift the window with [`PartitionMapping::offset`] or
    /// [`PartitionMapping::offsets`].
    ///
    /// ```
    /// use flowstone::mapping::{PartitionMapping, Sides};
    /// use flowstone::partition::{Daily, Monthly, Partition};
    ///
    /// let (days, months) = (Daily::from("2024-01-01").to("2024-12-31"), Monthly::from("2024-01").to("2024-12"));
    /// let february = Partition::ymd(2024, 2, 1)?;
    /// let read = PartitionMapping::time_window().upstream_of(Sides::new(Some(&months), Some(&days)), &february)?;
    /// assert_eq!(read.partitions.len(), 29); // a leap year
    /// # Ok::<(), flowstone::Error>(())
    /// ```
    pub fn time_window() -> Self {
        PartitionMapping::new(Kind::TimeWindow(time_window::Offsets::default()))
    }

    /// Shifts a time-window mapping by `n` downstream partitions: `-1` reads the previous one
    /// (a day reads yesterday; an asset that depends on itself reads its previous partition).
    pub fn offset(self, n: i64) -> Self {
        self.offsets(n, n)
    }

    /// Shifts the start and the end of a time-window mapping's window separately, in downstream
    /// partitions: `offsets(-6, 0)` on a daily asset reads the last 7 days. On another mapping
    /// it makes it a time window (and the build checks that both sides are time-based).
    pub fn offsets(mut self, start: i64, end: i64) -> Self {
        self.kind = Kind::TimeWindow(time_window::Offsets { start, end });
        self
    }

    /// An explicit table: each `(upstream, downstream)` pair says that the downstream partition
    /// reads the upstream one. Keys are checked against both definitions at build.
    pub fn static_map<I, U, D>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (U, D)>,
        U: Into<Partition>,
        D: Into<Partition>,
    {
        let mut map: BTreeMap<Partition, Vec<Partition>> = BTreeMap::new();
        for (upstream, downstream) in pairs {
            let targets = map.entry(upstream.into()).or_default();
            let downstream = downstream.into();
            if !targets.contains(&downstream) {
                targets.push(downstream);
            }
        }
        PartitionMapping::new(Kind::Static(Arc::new(static_map::StaticMap::new(map))))
    }

    /// For multi-dimensional partitions: maps the dimension `name` with `inner` and keeps the
    /// other dimensions the same. Both sides are [`MultiPartitions`] with the same dimension
    /// names, or the upstream is a single definition that `inner` maps the dimension to.
    ///
    /// [`MultiPartitions`]: crate::partition::MultiPartitions
    pub fn dimension(name: impl Into<String>, inner: PartitionMapping) -> Self {
        PartitionMapping::new(Kind::Dimension(Arc::new(dimension::DimensionMapping {
            name: name.into(),
            inner,
        })))
    }

    /// A mapping of your own: `upstream` gives the upstream partitions a downstream partition
    /// reads. Its answers are checked: a partition outside the upstream definition is reported
    /// like any mapping's. Without [`PartitionMapping::with_downstream`], the reverse question
    /// (what an upstream partition affects) is answered by asking `upstream` for every
    /// downstream partition.
    pub fn custom(
        name: impl Into<String>,
        upstream: impl Fn(&Partition) -> Result<Vec<Partition>> + Send + Sync + 'static,
    ) -> Self {
        PartitionMapping::new(Kind::Custom {
            name: Arc::from(name.into()),
            upstream: Arc::new(upstream),
            downstream: None,
        })
    }

    /// The inverse of a [`custom`](PartitionMapping::custom) mapping: the downstream partitions
    /// that read an upstream partition. Ignored by the built-in mappings.
    pub fn with_downstream(
        mut self,
        downstream: impl Fn(&Partition) -> Result<Vec<Partition>> + Send + Sync + 'static,
    ) -> Self {
        if let Kind::Custom {
            downstream: slot, ..
        } = &mut self.kind
        {
            *slot = Some(Arc::new(downstream));
        }
        self
    }

    /// Mapped upstream partitions that are not materialized, or that the upstream definition
    /// does not have, are left out instead of stopping the run: the function reads what is
    /// there.
    pub fn allow_missing(mut self) -> Self {
        self.allow_missing = true;
        self
    }

    /// Whether missing upstream partitions are left out ([`PartitionMapping::allow_missing`]).
    pub fn allows_missing(&self) -> bool {
        self.allow_missing
    }

    /// The mapping FlowStone uses when a dependency names none: the unpartitioned output for
    /// an unpartitioned dependency, every partition for an unpartitioned asset over a
    /// partitioned one, a time window between time-based definitions of different grains, and
    /// the same partition otherwise.
    pub fn default_for(sides: Sides<'_>) -> Self {
        match (sides.downstream, sides.upstream) {
            (None, Some(_)) => PartitionMapping::all_partitions(),
            (Some(down), Some(up)) => match (down.time_windows(), up.time_windows()) {
                (Some(Ok(d)), Some(Ok(u))) if d.grain != u.grain => PartitionMapping::time_window(),
                _ => PartitionMapping::identity(),
            },
            _ => PartitionMapping::identity(),
        }
    }

    /// Whether a dependency of an asset on itself may use this mapping: only a time window
    /// that ends before the partition being computed (`offset(-1)` and earlier), so each
    /// partition reads strictly older ones and the graph stays acyclic over partitions.
    pub fn reads_only_earlier(&self) -> bool {
        matches!(&self.kind, Kind::TimeWindow(offsets) if offsets.end < 0)
    }

    /// Checks that the mapping can apply to the two definitions; the error says why not.
    pub fn check(&self, sides: Sides<'_>) -> std::result::Result<(), String> {
        match &self.kind {
            Kind::Identity => check_identity(sides),
            Kind::AllPartitions | Kind::LastPartition | Kind::Custom { .. } => Ok(()),
            Kind::TimeWindow(offsets) => offsets.check(sides),
            Kind::Static(map) => map.check(sides),
            Kind::Dimension(mapping) => mapping.check(sides),
        }
    }

    /// The partitions of the upstream that `downstream` (a partition of the downstream side)
    /// reads, in order. An unpartitioned upstream is always read whole
    /// ([`Partition::Unpartitioned`]).
    pub fn upstream_of(&self, sides: Sides<'_>, downstream: &Partition) -> Result<Mapped> {
        let Some(up) = sides.upstream else {
            return Ok(Mapped::of(vec![Partition::Unpartitioned]));
        };
        match &self.kind {
            Kind::Identity => identity(up, downstream),
            Kind::AllPartitions => Ok(Mapped::of(up.partitions()?)),
            Kind::LastPartition => Ok(Mapped::of(last_partition(up)?.into_iter().collect())),
            Kind::TimeWindow(offsets) => offsets.upstream_of(sides, downstream),
            Kind::Static(map) => Ok(map.upstream_of(downstream)),
            Kind::Dimension(mapping) => mapping.upstream_of(sides, downstream),
            Kind::Custom { name, upstream, .. } => {
                split_members(up, upstream(downstream).map_err(|e| custom_error(name, e))?)
            }
        }
    }

    /// The partitions of the downstream that read `upstream` (a partition of the upstream
    /// side), in order: what a change to it affects.
    pub fn downstream_of(&self, sides: Sides<'_>, upstream: &Partition) -> Result<Vec<Partition>> {
        let Some(down) = sides.downstream else {
            return Ok(vec![Partition::Unpartitioned]);
        };
        if sides.upstream.is_none() {
            return down.partitions();
        }
        match &self.kind {
            Kind::Identity => Ok(identity(down, upstream)?.partitions),
            Kind::AllPartitions => down.partitions(),
            Kind::LastPartition => {
                let latest = sides.upstream.map(last_partition).transpose()?.flatten();
                if latest.as_ref() == Some(upstream) {
                    down.partitions()
                } else {
                    Ok(Vec::new())
                }
            }
            Kind::TimeWindow(offsets) => offsets.downstream_of(sides, upstream),
            Kind::Static(map) => Ok(map.downstream_of(upstream)),
            Kind::Dimension(mapping) => mapping.downstream_of(sides, upstream),
            Kind::Custom {
                name,
                upstream: forward,
                downstream,
            } => match downstream {
                Some(inverse) => Ok(split_members(
                    down,
                    inverse(upstream).map_err(|e| custom_error(name, e))?,
                )?
                .partitions),
                None => {
                    let mut hits = Vec::new();
                    for candidate in down.partitions()? {
                        if forward(&candidate)
                            .map_err(|e| custom_error(name, e))?
                            .contains(upstream)
                        {
                            hits.push(candidate);
                        }
                    }
                    Ok(hits)
                }
            },
        }
    }

    /// A short description for people: `identity`, `time window (offset -1)`, ...
    pub fn describe(&self) -> String {
        let text = match &self.kind {
            Kind::Identity => String::from("identity"),
            Kind::AllPartitions => String::from("all partitions"),
            Kind::LastPartition => String::from("last partition"),
            Kind::TimeWindow(offsets) => offsets.describe(),
            Kind::Static(map) => format!("static map of {} keys", map.len()),
            Kind::Dimension(mapping) => {
                format!("dimension '{}': {}", mapping.name, mapping.inner.describe())
            }
            Kind::Custom { name, .. } => format!("custom '{name}'"),
        };
        if self.allow_missing {
            format!("{text}, missing allowed")
        } else {
            text
        }
    }

    /// Whether this is the identity mapping (the CLI shows only the others).
    pub fn is_identity(&self) -> bool {
        matches!(self.kind, Kind::Identity)
    }
}

impl Default for PartitionMapping {
    fn default() -> Self {
        PartitionMapping::identity()
    }
}

impl fmt::Debug for PartitionMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Identity needs the same partitions on both sides; what can be checked cheaply is checked:
/// a partitioned side against an unpartitioned one, and two time definitions of different
/// grains.
fn check_identity(sides: Sides<'_>) -> std::result::Result<(), String> {
    match (sides.downstream, sides.upstream) {
        (None, Some(_)) => Err(String::from(
            "an unpartitioned asset cannot read a partitioned dependency partition by partition; \
             use PartitionMapping::all_partitions() or last_partition()",
        )),
        (Some(down), Some(up)) => match (down.time_windows(), up.time_windows()) {
            (Some(Ok(d)), Some(Ok(u))) if d.grain != u.grain => Err(format!(
                "identity needs the same partitions on both sides, but one is by {} and the \
                 other by {}; use PartitionMapping::time_window()",
                d.grain.name(),
                u.grain.name()
            )),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The latest partition of `def`: the current window of an open-ended time definition, else
/// the last of its partitions.
fn last_partition(def: &dyn PartitionsDefinition) -> Result<Option<Partition>> {
    match def.time_windows() {
        Some(windows) => {
            let windows = windows?;
            let last = windows
                .last
                .unwrap_or_else(|| windows.grain.floor(chrono::Utc::now().naive_utc()));
            Ok((last >= windows.first).then(|| windows.grain.partition_at(last)))
        }
        None => Ok(def.partitions()?.pop()),
    }
}

/// The same partition on the other side, when `def` has it. Checked only when that is cheap
/// (a [`CustomPartitions`](crate::partition::CustomPartitions) would expand its whole set on
/// every read; a partition it lacks then shows as not materialized).
fn identity(def: &dyn PartitionsDefinition, partition: &Partition) -> Result<Mapped> {
    if def.contains_is_cheap() {
        split_members(def, vec![partition.clone()])
    } else {
        Ok(Mapped::of(vec![partition.clone()]))
    }
}

/// `partitions` split into members of `def` and the others.
fn split_members(def: &dyn PartitionsDefinition, partitions: Vec<Partition>) -> Result<Mapped> {
    let mut mapped = Mapped::default();
    for partition in partitions {
        if def.contains(&partition)? {
            mapped.partitions.push(partition);
        } else {
            mapped.outside.push(partition);
        }
    }
    Ok(mapped)
}

fn custom_error(name: &str, err: Error) -> Error {
    Error::new(
        err.kind(),
        format!(
            "custom partition mapping '{name}' failed: {}",
            err.message()
        ),
    )
}
