//! Partitions: which slice of an asset a materialization computes (a day, a tenant, both).
//!
//! STUB: the partition helper replaces this file with the full implementation (value,
//! encoding, definitions). The API below is the contract the rest of the crate uses.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::error::{Error, Result};

/// A partition value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Partition {
    /// The asset is not partitioned.
    #[default]
    Unpartitioned,
    /// A calendar day.
    Date(NaiveDate),
    /// A UTC instant.
    DateTime(DateTime<Utc>),
    /// A wall-clock time without zone.
    NaiveDateTime(NaiveDateTime),
    /// An integer.
    Int(i64),
    /// A string (tenant, region...).
    Str(String),
    /// Several dimensions at once.
    Tuple(Vec<Partition>),
}

impl Partition {
    /// The canonical, lossless string encoding.
    pub fn encode(&self) -> String {
        format!("{self:?}")
    }

    /// Inverse of [`Partition::encode`].
    pub fn decode(input: &str) -> Result<Partition> {
        Err(Error::invalid_partition(input, "an encoded partition"))
    }

    /// The date, or `InvalidPartition`.
    pub fn date(&self) -> Result<NaiveDate> {
        match self {
            Partition::Date(d) => Ok(*d),
            other => Err(Error::invalid_partition(&other.encode(), "a date partition")),
        }
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.encode())
    }
}

impl From<NaiveDate> for Partition {
    fn from(d: NaiveDate) -> Self {
        Partition::Date(d)
    }
}

/// The set of partitions an asset has, and how a person's input is parsed into one.
pub trait PartitionsDefinition: Send + Sync + std::fmt::Debug + 'static {
    /// Every partition, in order.
    fn partitions(&self) -> Result<Vec<Partition>>;
    /// Parses a person's input (`2024-01-05` for a daily asset).
    fn parse(&self, input: &str) -> Result<Partition>;
    /// The accepted input form, for error messages (`a date like 2024-01-05`).
    fn expected_form(&self) -> String;
}
