//! Partitions: which slice of an asset a materialization computes (a day, a tenant, both).
//!
//! Two concepts live here:
//!
//! - [`Partition`], a *value*: one day, one hour, one tenant, one `(day, region)` pair, or
//!   [`Partition::Unpartitioned`] for assets that are not partitioned.
//! - [`PartitionsDefinition`], a *set* of values and the parser for a person's input: [`Daily`],
//!   [`Hourly`], [`Monthly`], [`StaticPartitions`], [`MultiPartitions`] and [`CustomPartitions`].
//!
//! # One lossless, canonical encoding
//!
//! A partition crosses a persistence boundary all the time: it is a column in materialization
//! and lineage rows, an argument of queued jobs, part of IO keys. Every one of those boundaries
//! uses the single encoding produced by [`Partition::encode`] and read back by
//! [`Partition::decode`] (and by `Serialize`/`Deserialize`, which carry the same string).
//!
//! The system FlowStone replaces guessed a partition's type from its text: an integer partition
//! came back as the string `"42"`, and a tenant named `"2024-01-01"` came back as a date. So the
//! encoding is *tagged* and *lossless*: `decode(encode(p)) == p` for every value, and the string
//! `"42"` and the integer `42` encode differently. The tags are short so rows stay readable:
//!
//! ```text
//! Unpartitioned                              u:
//! Date(2024-01-01)                           d:2024-01-01
//! DateTime(2024-01-01 00:00:00 UTC)          dt:2024-01-01T00:00:00Z
//!   ... with sub-second precision            dt:2024-01-01T00:00:00.250Z
//! NaiveDateTime(2024-01-01 12:30:00)         ndt:2024-01-01T12:30:00
//! Int(42)                                    i:42
//! Str("tenant_123")                          tenant_123        (no tag)
//! Str(""), Str("a:b"), Str("a|b")            s:   s:a:b   s:a|b
//! Tuple([Date(2024-01-05), Str("eu")])       t:d:2024-01-05|eu
//! Tuple([Str("a|b"), Tuple([Int(1), Int(2)])])  t:s:a\|b|t:i:1\|i:2
//! Tuple([])                                  t:
//! ```
//!
//! A string is written as it is when it is not empty and contains none of `:`, `|` and `\`
//! (so it cannot be mistaken for a tagged value); otherwise it gets the `s:` tag and is written
//! verbatim after it. A tuple joins its elements' encodings with `|`, escaping `\` as `\\` and
//! `|` as `\|` inside each element, so strings containing `|` and nested tuples round-trip.
//! Sub-second digits of times are printed in groups of 3 (milli, micro, nano), only when
//! non-zero; leap seconds print as second `60`.
//!
//! The encoding is also *canonical*: [`Partition::decode`] accepts exactly the strings `encode`
//! produces, and rejects other spellings of the same value (`s:abc`, `i:+42`, `i:042`,
//! `dt:…+00:00`) with an error naming the canonical form. Two encoded strings are therefore
//! equal exactly when the partitions are equal, which is what lets stores use the encoded
//! string as a key. Tuples may nest at most [`MAX_TUPLE_DEPTH`] levels deep; each level doubles
//! the escaping of the levels below it, so keep nesting shallow (a multi-dimensional partition
//! is a single level).
//!
//! Decoding never panics: malformed input of any kind is an
//! [`ErrorKind::InvalidPartition`](crate::error::ErrorKind::InvalidPartition) error naming the
//! input and the expected form.
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
mod encoding;
mod hourly;
mod monthly;
mod multi;
mod parse;
mod static_set;
mod value;

use std::sync::Arc;

pub use bounds::{DateSpec, date_range};
pub use custom::CustomPartitions;
pub use daily::Daily;
pub use encoding::MAX_TUPLE_DEPTH;
pub use hourly::Hourly;
pub use monthly::Monthly;
pub use multi::MultiPartitions;
pub use static_set::StaticPartitions;
pub use value::Partition;

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
}
