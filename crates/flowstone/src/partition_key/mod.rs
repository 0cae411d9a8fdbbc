//! [`Partition`]: the value that names one slice of an asset (a day, a tenant, both), its
//! conversions, accessors and serde form, and its canonical encoding (the partition key every
//! store, job row and IO key holds).
//!
//! This is the bottom of the crate: the error type carries a partition, so the value must not
//! depend on the error type. Its own failures are [`PartitionKeyError`]s, which `?` turns into
//! [`crate::Error`]s of kind `InvalidPartition`. Definitions of partition *sets* (daily,
//! static, ...) sit above the error type, in [`crate::partition`].
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
//! Str("a\nb"), Str("x\0\\"), Str("\u{1b}")   e:a\nb   e:x\0\\   e:\u{1b}
//! Tuple([Date(2024-01-05), Str("eu")])       t:d:2024-01-05|eu
//! Tuple([Str("a|b"), Tuple([Int(1), Int(2)])])  t:s:a\|b|t:i:1\|i:2
//! Tuple([Str("a\tb|c"), Int(1)])             t:e:a\\tb\|c|i:1
//! Tuple([])                                  t:
//! ```
//!
//! A string is written as it is when it is not empty and contains none of `:`, `|` and `\`
//! (so it cannot be mistaken for a tagged value); otherwise it gets the `s:` tag and is written
//! verbatim after it. A string holding a control character (any of Unicode's `Cc`: NUL, tab,
//! LF, CR, ESC, DEL, ...) gets the `e:` tag instead, and is written with the control
//! characters and backslashes escaped: `\\`, `\0`, `\t`, `\n`, `\r`, and `\u{hex}` (lowercase,
//! no leading zeros) for the other control characters; everything else, `:` and `|` included, is
//! written as it is. So no encoding holds a control character: every partition can be stored in
//! PostgreSQL text (which refuses NUL), and a key never spans two lines. A tuple joins its elements' encodings with `|`, escaping `\` as `\\` and
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
//! ## Keys stored before the `e:` tag
//!
//! Versions before the `e:` tag wrote control characters verbatim (`a<LF>b`, `s:a<NUL>|b`;
//! PostgreSQL refused NUL but stored tab, LF and CR). Such keys may sit in SQLite and
//! PostgreSQL rows and in queued jobs' arguments, so [`Partition::decode`] still accepts them,
//! as the one documented exception to canonicity: an input holding a raw control character
//! decodes when it is exactly what the old encoder wrote for that partition, and to the same
//! partition the new `e:` form decodes to. [`Partition::encode`] never writes the old form, and
//! no canonical encoding holds a control character, so the two sets cannot overlap and equal
//! canonical strings still mean equal partitions.
//!
//! What the exception does not give: a store that looks a row up by key compares the
//! *canonical* string, so a legacy row is found when listed (it decodes to the right partition)
//! but missed by a lookup of its partition (the latest materialization of that partition reads
//! as absent until it is materialized again, under the new key). The stores' migration that
//! rewrites legacy keys to their canonical form closes that gap; decoding them stays accepted
//! for job arguments and copies no migration reaches.
//!
//! Decoding never panics: malformed input of any kind is a [`PartitionKeyError`] naming the
//! input and the expected form (it becomes an
//! [`ErrorKind::InvalidPartition`](crate::error::ErrorKind::InvalidPartition) [`crate::Error`]
//! through `?`).
//!

mod encoding;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use encoding::MAX_TUPLE_DEPTH;

/// A partition value (or a person's input for one) that is not valid: `input`, and a
/// description of the form that was `expected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKeyError {
    input: String,
    expected: String,
}

impl PartitionKeyError {
    /// `input` is not a valid partition; `expected` describes the accepted form.
    pub fn new(input: impl Into<String>, expected: impl fmt::Display) -> Self {
        PartitionKeyError {
            input: input.into(),
            expected: expected.to_string(),
        }
    }

    /// The rejected input.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// What was expected instead.
    pub fn expected(&self) -> &str {
        &self.expected
    }
}

impl fmt::Display for PartitionKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid partition '{}': expected {}",
            self.input, self.expected
        )
    }
}

impl std::error::Error for PartitionKeyError {}

type Result<T> = std::result::Result<T, PartitionKeyError>;

/// A partition value.
///
/// Compare, hash and sort freely; persist it with [`Partition::encode`] (or serde, which uses
/// the same string) and read it back with [`Partition::decode`]. See the
/// [module docs](self) for the encoding.
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
    /// or contains `:`, `|` or `\`, or `e:…` with escapes when it contains a control character.
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

    /// The partition as people read and type it: `2024-01-05` for a date, the string for a
    /// non-empty string key, `-` for [`Partition::Unpartitioned`], else the canonical
    /// encoding. The built-in definitions parse each of these back
    /// ([`crate::PartitionsDefinition::parse`]), so it serves in listings and in URLs alike.
    pub fn input_text(&self) -> String {
        match self {
            Partition::Unpartitioned => String::from("-"),
            Partition::Date(date) => date.format("%Y-%m-%d").to_string(),
            Partition::Str(s) if !s.is_empty() => s.clone(),
            other => other.encode(),
        }
    }

    /// Inverse of [`Partition::encode`]. Accepts exactly the canonical encodings, plus the
    /// encodings older versions wrote for strings with control characters (see
    /// [the module docs](self#keys-stored-before-the-e-tag)); anything else (unknown tag,
    /// malformed value, non-canonical spelling) is an `InvalidPartition` error naming the
    /// input. Never panics.
    pub fn decode(input: &str) -> Result<Partition> {
        encoding::decode(input)
    }

    /// A date partition from year, month and day; `InvalidPartition` if no such day exists.
    pub fn ymd(year: i32, month: u32, day: u32) -> Result<Partition> {
        NaiveDate::from_ymd_opt(year, month, day)
            .map(Partition::Date)
            .ok_or_else(|| {
                PartitionKeyError::new(
                    format!("{year:04}-{month:02}-{day:02}"),
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

    fn wrong_variant(&self, expected: &str) -> PartitionKeyError {
        PartitionKeyError::new(self.encode(), expected)
    }
}

impl fmt::Display for Partition {
    /// Prints the canonical encoding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.encode())
    }
}

impl FromStr for Partition {
    type Err = PartitionKeyError;

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
        Partition::decode(input).map_err(E::custom)
    }
}
