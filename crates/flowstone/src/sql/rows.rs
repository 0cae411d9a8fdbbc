//! FlowStone's rows, engine-neutral: the model encoded into the values its columns hold, and
//! rows decoded back into the model.
//!
//! Both dialects write these row types and select the same column names with the same types
//! (ids and partitions as text, JSON as text, times as microseconds since the epoch), so the
//! decoders here serve both engines and the dialects only move values in and out of SQL.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::sql_error;
use crate::error::{Error, Result};
use crate::ids::RunId;
use crate::io::{IoMetadata, Stored};
use crate::lineage::MaterializationKey;
use crate::output::Output;
use crate::partition::Partition;
use crate::store::{Materialization, MaterializationStatus};

/// A materialization record, encoded for writing.
#[derive(Debug, Clone)]
pub(crate) struct RecordRow {
    pub asset: String,
    pub partition: String,
    pub run_id: String,
    pub status: MaterializationStatus,
    pub executor: String,
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_us: Option<i64>,
    pub error: Option<String>,
    pub metadata: String,
    pub backfill_id: Option<String>,
}

impl RecordRow {
    pub(crate) fn encode(m: &Materialization) -> Result<Self> {
        Ok(RecordRow {
            asset: m.asset.clone(),
            partition: m.partition.encode(),
            run_id: m.run_id.to_string(),
            status: m.status,
            executor: m.executor.clone(),
            attempt: i64::from(m.attempt),
            started_at: stored_time(m.started_at),
            finished_at: m.finished_at.map(stored_time),
            duration_us: m
                .duration
                .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            error: m.error.as_ref().map(serde_json::to_string).transpose()?,
            metadata: serde_json::to_string(&m.metadata)?,
            backfill_id: m.backfill_id.map(|id| id.to_string()),
        })
    }
}

/// A lineage edge, encoded: (asset, partition, run id) of the consumer and of what it read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct EdgeRow {
    pub consumer: [String; 3],
    pub upstream: [String; 3],
    pub recorded_at: DateTime<Utc>,
}

/// A materialization key as the three text columns that hold it.
pub(crate) fn encode_key(key: &MaterializationKey) -> [String; 3] {
    [
        key.asset.clone(),
        key.partition.encode(),
        key.run_id.to_string(),
    ]
}

/// A stored output, encoded.
#[derive(Debug, Clone)]
pub(crate) struct OutputRow {
    pub asset: String,
    pub partition: String,
    pub run_id: String,
    pub stored_at: DateTime<Utc>,
    /// Shared, so the writer can keep a write for a retry without copying the bytes.
    pub value: std::sync::Arc<[u8]>,
}

impl OutputRow {
    /// The stored value's size, as the `size_bytes` column holds it.
    pub(crate) fn size_bytes(&self) -> i64 {
        i64::try_from(self.value.len()).unwrap_or(i64::MAX)
    }
}

/// Which records to list, encoded (`None` matches anything).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordFilter<'a> {
    pub asset: Option<&'a str>,
    pub partition: Option<&'a str>,
    pub run_id: Option<&'a str>,
    pub status: Option<&'static str>,
    /// Microseconds.
    pub finished_after: Option<i64>,
    pub limit: i64,
}

/// One condition of a [`RecordFilter`] that is set: a column and the value it is compared
/// with (equal, or for `finished_at` after).
#[derive(Debug, Clone, Copy)]
pub(crate) enum FilterArg<'a> {
    Text(&'static str, &'a str),
    /// `finished_at` after this many microseconds.
    FinishedAfter(i64),
}

impl<'a> RecordFilter<'a> {
    /// The conditions that are set, in a fixed order. Each dialect writes only these: a
    /// statement with `(? IS NULL OR column = ?)` for every filter cannot use the indexes.
    pub(crate) fn set(&self) -> Vec<FilterArg<'a>> {
        let text = [
            ("asset", self.asset),
            ("partition_key", self.partition),
            ("run_id", self.run_id),
            ("status", self.status),
        ];
        text.into_iter()
            .filter_map(|(column, value)| value.map(|v| FilterArg::Text(column, v)))
            .chain(self.finished_after.map(FilterArg::FinishedAfter))
            .collect()
    }
}

/// A time as the tables keep it: to the microsecond, which both engines store exactly.
pub(crate) fn stored_time(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

pub(crate) fn to_micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(crate) fn from_micros(micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| Error::store(format!("timestamp {micros} µs is out of range")))
}

/// Reads one column, with a FlowStone error naming it.
pub(crate) fn column<'r, R, T>(row: &'r R, name: &'static str) -> Result<T>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    T: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get(name)
        .map_err(|e| sql_error(&format!("read column {name}"), e))
}

/// Decodes a record row (the dialects' record column list).
pub(crate) fn materialization<'r, R>(row: &'r R) -> Result<Materialization>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let status: String = column(row, "status")?;
    let error: Option<String> = column(row, "error")?;
    let metadata: String = column(row, "metadata")?;
    let duration_us: Option<i64> = column(row, "duration_us")?;
    let finished_at: Option<i64> = column(row, "finished_at")?;
    let backfill_id: Option<String> = column(row, "backfill_id")?;
    Ok(Materialization {
        asset: column(row, "asset")?,
        partition: parse_partition(&column::<_, String>(row, "partition_key")?)?,
        run_id: parse_run_id(&column::<_, String>(row, "run_id")?)?,
        status: MaterializationStatus::parse(&status)
            .ok_or_else(|| Error::store(format!("stored status '{status}' is unknown")))?,
        executor: column(row, "executor")?,
        attempt: u32::try_from(column::<_, i64>(row, "attempt")?).unwrap_or(u32::MAX),
        started_at: from_micros(column(row, "started_at")?)?,
        finished_at: finished_at.map(from_micros).transpose()?,
        duration: duration_us.map(|us| Duration::from_micros(u64::try_from(us).unwrap_or(0))),
        error: error
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| Error::store(format!("stored error is malformed: {e}")))?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| Error::store(format!("stored metadata is malformed: {e}")))?,
        backfill_id: backfill_id
            .map(|id| id.parse())
            .transpose()
            .map_err(|e| Error::store(format!("stored backfill id is malformed: {e}")))?,
    })
}

/// Decodes the three columns `{side}_asset`, `{side}_partition`, `{side}_run` of a lineage row.
pub(crate) fn lineage_key<'r, R>(row: &'r R, side: LineageSide) -> Result<MaterializationKey>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    let [asset, partition, run] = side.columns();
    Ok(MaterializationKey {
        asset: column(row, asset)?,
        partition: parse_partition(&column::<_, String>(row, partition)?)?,
        run_id: parse_run_id(&column::<_, String>(row, run)?)?,
    })
}

/// Which end of a lineage edge a row's key columns name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LineageSide {
    Consumer,
    Upstream,
}

impl LineageSide {
    fn columns(self) -> [&'static str; 3] {
        match self {
            LineageSide::Consumer => ["consumer_asset", "consumer_partition", "consumer_run"],
            LineageSide::Upstream => ["upstream_asset", "upstream_partition", "upstream_run"],
        }
    }
}

/// Decodes `run_id, stored_at, size_bytes` of an output row.
pub(crate) fn io_metadata<'r, R>(row: &'r R) -> Result<IoMetadata>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(IoMetadata {
        run_id: parse_run_id(&column::<_, String>(row, "run_id")?)?,
        stored_at: from_micros(column(row, "stored_at")?)?,
        size_bytes: Some(u64::try_from(column::<_, i64>(row, "size_bytes")?).unwrap_or(0)),
    })
}

/// Decodes `partition_key, run_id, stored_at, size_bytes, value` of an output row: the encoded
/// partition and the output.
pub(crate) fn stored_output<'r, R>(row: &'r R) -> Result<(String, Stored)>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    let stored = Stored {
        meta: io_metadata(row)?,
        output: Output::from_json_bytes(column::<_, Vec<u8>>(row, "value")?),
    };
    Ok((column(row, "partition_key")?, stored))
}

/// Decodes the one text column `run` (the newest consumer run, or NULL).
pub(crate) fn opt_run_id<'r, R>(row: &'r R) -> Result<Option<RunId>>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    column::<_, Option<String>>(row, "run")?
        .map(|r| parse_run_id(&r))
        .transpose()
}

pub(crate) fn parse_run_id(text: &str) -> Result<RunId> {
    text.parse()
        .map_err(|_| Error::store(format!("stored run id '{text}' is not a UUID")))
}

pub(crate) fn parse_partition(text: &str) -> Result<Partition> {
    Partition::decode(text).map_err(|e| Error::store(format!("stored partition is malformed: {e}")))
}
