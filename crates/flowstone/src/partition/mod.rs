//! Partitions: which slice of an asset a materialization computes (a day, a tenant, both).
//!
//! Two concepts, in two modules:
//!
//! - [`Partition`], a *value*: one day, one hour, one tenant, one `(day, region)` pair, or
//!   [`Partition::Unpartitioned`] for assets that are not partitioned. It and its canonical
//!   encoding live in [`crate::partition_key`], below the error type (which carries one), and
//!   are re-exported here.
//! - [`PartitionsDefinition`], a *set* of values and the parser for a person's input: [`Daily`],
//!   [`Hourly`], [`Monthly`], [`Yearly`], [`StaticPartitions`], [`MultiPartitions`] and [`CustomPartitions`]:
//!   this module.
//!
//! # Parsing a person's input
//!
//! People type `2024-01-05`, not `d:2024-01-05`. Each definition's
//! [`PartitionsDefinition::parse`] reads the natural form for its kind (and also the canonical
//! encoding), checks that the value belongs to the set, and says what it expected otherwise.
//!
//! # Expansion limit
//!
//! [`PartitionsDefinition::partitions`] materializes the whole set. A slip such as a daily
//! definition starting in year 1 would allocate forever, so the built-in definitions refuse to
//! expand to more than [`MAX_PARTITIONS`] values and return an
//! [`ErrorKind::InvalidOptions`](crate::error::ErrorKind::InvalidOptions) error instead.

mod bounds;
mod custom;
mod daily;
mod hourly;
mod monthly;
mod multi;
mod parse;
mod static_set;
mod window;
mod yearly;

use std::sync::Arc;

pub use crate::partition_key::{MAX_TUPLE_DEPTH, Partition, PartitionKeyError};
pub use bounds::{DateSpec, date_range};
pub use custom::CustomPartitions;
pub use daily::Daily;
pub use hourly::Hourly;
pub use monthly::Monthly;
pub use multi::MultiPartitions;
pub use static_set::StaticPartitions;
pub use window::{Grain, Overlap, TimeWindows};
pub use yearly::Yearly;

use crate::error::Result;

/// The most partitions a built-in definition expands to; beyond it `partitions()` fails with
/// `InvalidOptions` instead of allocating (10 million: 27 000 years of days, 1 100 years of hours).
pub const MAX_PARTITIONS: usize = 10_000_000;

/// The set of partitions an asset has, and how a person's input is parsed into one.
pub trait PartitionsDefinition: Send + Sync + std::fmt::Debug + 'static {
    /// Every partition, in order.
    fn partitions(&self) -> Result<Vec<Partition>>;

    /// Parses a person's input (`2024-01-05` for a daily asset) into a member of the set.
    ///
    /// The built-in definitions also accept the canonical encoding (`d:2024-01-05`). Input that
    /// is malformed or outside the set is an `InvalidPartition` error naming the input and
    /// the expected form.
    fn parse(&self, input: &str) -> Result<Partition>;

    /// The accepted input form, for error messages (`a date like 2024-01-05`).
    fn expected_form(&self) -> String;

    /// Whether `partition` belongs to the set. The default expands the set; the built-in
    /// definitions other than [`CustomPartitions`] answer without expanding.
    fn contains(&self, partition: &Partition) -> Result<bool> {
        Ok(self.partitions()?.contains(partition))
    }

    /// Whether [`PartitionsDefinition::contains`] answers without expanding the set (true for
    /// the built-in definitions other than [`CustomPartitions`]): mappings check membership on
    /// every read only when it is cheap.
    fn contains_is_cheap(&self) -> bool {
        false
    }

    /// The definition as time windows, when it is time-based ([`Hourly`], [`Daily`],
    /// [`Monthly`], [`Yearly`]): what lets a
    /// [time-window mapping](crate::mapping::PartitionMapping::time_window) translate between
    /// it and another time-based definition. `Some(Err(..))` when a bound is bad.
    fn time_windows(&self) -> Option<Result<TimeWindows>> {
        None
    }

    /// The dimensions, when this is a [`MultiPartitions`]: what a
    /// [dimension mapping](crate::mapping::PartitionMapping::dimension) maps through.
    fn dimensions(&self) -> Option<&[(String, Arc<dyn PartitionsDefinition>)]> {
        None
    }
}

impl<T: PartitionsDefinition + ?Sized> PartitionsDefinition for Arc<T> {
    fn partitions(&self) -> Result<Vec<Partition>> {
        (**self).partitions()
    }

    fn parse(&self, input: &str) -> Result<Partition> {
        (**self).parse(input)
    }

    fn expected_form(&self) -> String {
        (**self).expected_form()
    }

    fn contains(&self, partition: &Partition) -> Result<bool> {
        (**self).contains(partition)
    }

    fn contains_is_cheap(&self) -> bool {
        (**self).contains_is_cheap()
    }

    fn time_windows(&self) -> Option<Result<TimeWindows>> {
        (**self).time_windows()
    }

    fn dimensions(&self) -> Option<&[(String, Arc<dyn PartitionsDefinition>)]> {
        (**self).dimensions()
    }
}

impl<T: PartitionsDefinition + ?Sized> PartitionsDefinition for Box<T> {
    fn partitions(&self) -> Result<Vec<Partition>> {
        (**self).partitions()
    }

    fn parse(&self, input: &str) -> Result<Partition> {
        (**self).parse(input)
    }

    fn expected_form(&self) -> String {
        (**self).expected_form()
    }

    fn contains(&self, partition: &Partition) -> Result<bool> {
        (**self).contains(partition)
    }

    fn contains_is_cheap(&self) -> bool {
        (**self).contains_is_cheap()
    }

    fn time_windows(&self) -> Option<Result<TimeWindows>> {
        (**self).time_windows()
    }

    fn dimensions(&self) -> Option<&[(String, Arc<dyn PartitionsDefinition>)]> {
        (**self).dimensions()
    }
}
