//! The time-window mapping: interval overlap between two time-based definitions, with the
//! downstream window shifted by offsets counted in downstream partitions.

use chrono::{NaiveDateTime, TimeDelta};

use super::{Mapped, Sides};
use crate::error::{Error, Result};
use crate::partition::{Grain, MAX_PARTITIONS, Partition, PartitionsDefinition, TimeWindows};

/// How far the window a downstream partition reads is shifted, in downstream partitions:
/// the window of partition `p` is `[p + start, p + 1 + end)`. `(0, 0)` reads the overlapping
/// windows, `(-1, -1)` the previous partition's, `(-6, 0)` the last seven.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Offsets {
    pub(super) start: i64,
    pub(super) end: i64,
}

impl Offsets {
    pub(super) fn describe(&self) -> String {
        match (self.start, self.end) {
            (0, 0) => String::from("time window"),
            (start, end) if start == end => format!("time window (offset {start})"),
            (start, end) => format!("time window (offsets {start}..{end})"),
        }
    }

    pub(super) fn check(&self, sides: Sides<'_>) -> std::result::Result<(), String> {
        let (down, up) = both_windows(sides).map_err(|e| e.message().to_owned())?;
        if self.start > self.end {
            return Err(format!(
                "the start offset {} is after the end offset {}",
                self.start, self.end
            ));
        }
        let latest = down
            .last
            .unwrap_or_else(|| down.grain.floor(chrono::Utc::now().naive_utc()));
        let (latest_start, latest_end) = self
            .window(&down, latest)
            .map_err(|e| e.message().to_owned())?;
        // Each read allocates one value per upstream window: refuse a window wider than the
        // expansion limit at build rather than at run time.
        let shortest_hours = match up.grain {
            Grain::Hour => 1,
            Grain::Day => 24,
            Grain::Month => 28 * 24,
            Grain::Year => 365 * 24,
        };
        let windows = (latest_end - latest_start).num_hours() / shortest_hours;
        if windows > MAX_PARTITIONS as i64 {
            return Err(format!(
                "{} reads about {windows} partitions of the dependency per partition, more than \
                 the limit of {MAX_PARTITIONS}; narrow the offsets",
                self.describe()
            ));
        }
        if latest_end <= up.first {
            return Err(format!(
                "{} points before every partition of the dependency: even the latest partition \
                 ({}) would read windows that end at {latest_end}, and the dependency starts at {}",
                self.describe(),
                down.grain.partition_at(latest),
                up.first
            ));
        }
        if let Some(up_last) = up.last {
            let (first_start, _) = self
                .window(&down, down.first)
                .map_err(|e| e.message().to_owned())?;
            if up
                .grain
                .add(up_last, 1)
                .is_some_and(|end| first_start >= end)
            {
                return Err(format!(
                    "{} points after every partition of the dependency: even the first partition \
                     ({}) would read windows from {first_start}, and the dependency ends at {}",
                    self.describe(),
                    down.grain.partition_at(down.first),
                    up.grain.partition_at(up_last)
                ));
            }
        }
        Ok(())
    }

    /// `[start, end)` that the downstream window starting at `at` reads.
    fn window(
        &self,
        down: &TimeWindows,
        at: NaiveDateTime,
    ) -> Result<(NaiveDateTime, NaiveDateTime)> {
        let shifted = |n: i64| {
            down.grain.add(at, n).ok_or_else(|| {
                Error::invalid_options(format!(
                    "{} moves {} past the dates this library can represent",
                    self.describe(),
                    down.grain.partition_at(at)
                ))
            })
        };
        Ok((shifted(self.start)?, shifted(self.end.saturating_add(1))?))
    }

    pub(super) fn upstream_of(&self, sides: Sides<'_>, downstream: &Partition) -> Result<Mapped> {
        let (down, up) = both_windows(sides)?;
        let (from, to) = self.window(&down, down.grain.start_of(downstream)?)?;
        let overlap = up.overlapping(from, to);
        Ok(Mapped {
            partitions: overlap.inside,
            outside: overlap.outside,
        })
    }

    pub(super) fn downstream_of(
        &self,
        sides: Sides<'_>,
        upstream: &Partition,
    ) -> Result<Vec<Partition>> {
        let (down, up) = both_windows(sides)?;
        let down_def = sides.downstream.ok_or_else(not_time_based)?;
        let from = up.grain.start_of(upstream)?;
        let to = up.grain.add(from, 1).ok_or_else(not_time_based)?;
        // Downstream windows that can reach [from, to) start between these two (none when an
        // offset is too large to negate or to apply).
        let first = self
            .end
            .checked_neg()
            .and_then(|back| down.grain.add(down.grain.floor(from), back));
        let last = self.start.checked_neg().and_then(|back| {
            down.grain
                .add(down.grain.floor(to - TimeDelta::nanoseconds(1)), back)
        });
        let (Some(first), Some(last)) = (first, last) else {
            return Ok(Vec::new());
        };
        let mut hits = Vec::new();
        let mut at = Some(first);
        while let Some(start) = at.filter(|s| *s <= last) {
            let (read_from, read_to) = self.window(&down, start)?;
            let partition = down.grain.partition_at(start);
            if read_from < to && read_to > from && down_def.contains(&partition)? {
                hits.push(partition);
            }
            at = down.grain.add(start, 1);
        }
        Ok(hits)
    }
}

fn not_time_based() -> Error {
    Error::invalid_options(
        "a time-window mapping needs a time-based partitions definition (Hourly, Daily, Monthly, \
         Yearly) on both sides",
    )
}

/// The windows of both sides, or why the mapping cannot apply.
fn both_windows(sides: Sides<'_>) -> Result<(TimeWindows, TimeWindows)> {
    let windows = |def: Option<&dyn PartitionsDefinition>, side: &str| match def {
        Some(def) => def.time_windows().unwrap_or_else(|| {
            Err(Error::invalid_options(format!(
                "a time-window mapping needs a time-based partitions definition (Hourly, Daily, \
                 Monthly, Yearly) on both sides; the {side} has {def:?}"
            )))
        }),
        None => Err(Error::invalid_options(format!(
            "a time-window mapping needs a time-based partitions definition on both sides; the \
             {side} is not partitioned"
        ))),
    };
    Ok((
        windows(sides.downstream, "asset")?,
        windows(sides.upstream, "dependency")?,
    ))
}
