//! The partition value: its variants, conversions, accessors and serde form.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::encoding;
use crate::error::{Error, Result};

/// A partition value.
///
/// Compare, hash and sort freely; persist it with [`Partition::encode`] (or serde, which uses
/// the same string) and read it back with [`Partition::decode`]. See the
/// [module docs](crate::partition) for the encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Partition {
    /// The asset is not partitioned. Encoded `u:`.
    #[default]
    Unpartitioned,
    /// A calendar day. Encoded `d:2024-01-01`.
    Date(NaiveDate),
    /// A UTC instant. Encoded `dt:2024-01-01T00:00:00Z` (sub-second digits when present).
    DateTime(DateTime<Utc>),
    /// A wall-clock time without zone. Encoded `ndt:2024-01-01T12:30:00`.
    NaiveDateTime(NaiveDateTime),
    /// An integer. Encoded `i:42`.
    Int(i64),
    /// A string (tenant, region...). Encoded as it is (`tenant_123`), or `s:…` when it is empty
    /// or contains `:`, `|` or `\`.
    Str(String),
    /// Several dimensions at once. Encoded `t:` followed by the elements' encodings joined by `|`.
    Tuple(Vec<Partition>),
}

impl Partition {
    /// The canonical, lossless string encoding: `decode(encode(p)) == p`, and two partitions
    /// encode to the same string only when they are equal.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encoding::encode_into(self, &mut out);
        out
    }

    /// Inverse of [`Partition::encode`]. Accepts exactly the canonical encodings; anything else
    /// (unknown tag, malformed value, non-canonical spelling) is an `InvalidPartition` error
    /// naming the input. Never panics.
    pub fn decode(input: &str) -> Result<Partition> {
        encoding::decode(input)
    }

    /// A date partition from year, month and day; `InvalidPartition` if no such day exists.
    pub fn ymd(year: i32, month: u32, day: u32) -> Result<Partition> {
        NaiveDate::from_ymd_opt(year, month, day)
            .map(Partition::Date)
            .ok_or_else(|| {
                Error::invalid_partition(
                    &format!("{year:04}-{month:02}-{day:02}"),
                    "a calendar date that exists",
                )
            })
    }

    /// Whether this is [`Partition::Unpartitioned`].
    pub fn is_unpartitioned(&self) -> bool {
        matches!(self, Partition::Unpartitioned)
    }

    /// The date, or `InvalidPartition` naming this value.
    pub fn date(&self) -> Result<NaiveDate> {
        match self {
            Partition::Date(d) => Ok(*d),
            other => Err(other.wrong_variant("a date partition like d:2024-01-05")),
        }
    }

    /// The UTC instant, or `InvalidPartition` naming this value.
    pub fn datetime(&self) -> Result<DateTime<Utc>> {
        match self {
            Partition::DateTime(t) => Ok(*t),
            other => {
                Err(other.wrong_variant("a UTC datetime partition like dt:2024-01-05T03:00:00Z"))
            }
        }
    }

    /// The wall-clock time, or `InvalidPartition` naming this value.
    pub fn naive_datetime(&self) -> Result<NaiveDateTime> {
        match self {
            Partition::NaiveDateTime(t) => Ok(*t),
            other => {
                Err(other.wrong_variant("a naive datetime partition like ndt:2024-01-05T03:00:00"))
            }
        }
    }

    /// The integer, or `InvalidPartition` naming this value.
    pub fn int(&self) -> Result<i64> {
        match self {
            Partition::Int(n) => Ok(*n),
            other => Err(other.wrong_variant("an integer partition like i:42")),
        }
    }

    /// The string, or `InvalidPartition` naming this value.
    pub fn str(&self) -> Result<&str> {
        match self {
            Partition::Str(s) => Ok(s),
            other => Err(other.wrong_variant("a string partition like tenant_123")),
        }
    }

    /// The tuple's elements, or `InvalidPartition` naming this value.
    pub fn tuple(&self) -> Result<&[Partition]> {
        match self {
            Partition::Tuple(items) => Ok(items),
            other => Err(other.wrong_variant("a tuple partition like t:d:2024-01-05|eu")),
        }
    }

    fn wrong_variant(&self, expected: &str) -> Error {
        Error::invalid_partition(&self.encode(), expected)
    }
}

impl fmt::Display for Partition {
    /// Prints the canonical encoding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl FromStr for Partition {
    type Err = Error;

    /// Same as [`Partition::decode`].
    fn from_str(input: &str) -> Result<Partition> {
        Partition::decode(input)
    }
}

impl From<NaiveDate> for Partition {
    fn from(d: NaiveDate) -> Self {
        Partition::Date(d)
    }
}

impl From<DateTime<Utc>> for Partition {
    fn from(t: DateTime<Utc>) -> Self {
        Partition::DateTime(t)
    }
}

impl From<NaiveDateTime> for Partition {
    fn from(t: NaiveDateTime) -> Self {
        Partition::NaiveDateTime(t)
    }
}

impl From<i64> for Partition {
    fn from(n: i64) -> Self {
        Partition::Int(n)
    }
}

impl From<i32> for Partition {
    fn from(n: i32) -> Self {
        Partition::Int(i64::from(n))
    }
}

impl From<&str> for Partition {
    fn from(s: &str) -> Self {
        Partition::Str(s.to_owned())
    }
}

impl From<String> for Partition {
    fn from(s: String) -> Self {
        Partition::Str(s)
    }
}

impl From<Vec<Partition>> for Partition {
    fn from(items: Vec<Partition>) -> Self {
        Partition::Tuple(items)
    }
}

impl Serialize for Partition {
    /// Serializes as the canonical encoding string.
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for Partition {
    /// Deserializes from the canonical encoding string.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_str(EncodedVisitor)
    }
}

struct EncodedVisitor;

impl serde::de::Visitor<'_> for EncodedVisitor {
    type Value = Partition;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an encoded partition string such as d:2024-01-05 or tenant_123")
    }

    fn visit_str<E: serde::de::Error>(self, input: &str) -> std::result::Result<Partition, E> {
        Partition::decode(input).map_err(|err| E::custom(err.message()))
    }
}
