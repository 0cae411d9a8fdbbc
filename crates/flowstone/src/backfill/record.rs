//! Backfills as persisted objects: what was asked (selection, partitions, options), where it
//! stands (status, counts per outcome, which process runs it) and how each partition ended, in
//! a [`BackfillStore`] (memory, SQLite, PostgreSQL), so any process can list, follow, cancel
//! and resume them.
//!
//! The request is stored compactly: a range is its two ends, not one row per partition. A
//! partition's outcome is a row only once the partition has ended.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::{Backfill, BackfillSource};
use crate::error::{Error, Result};
use crate::executor::Strategy;
use crate::ids::BackfillId;
use crate::partition::Partition;

/// Where a backfill stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BackfillStatus {
    /// Stored, not started.
    Requested,
    /// A process is running it.
    Running,
    /// Every partition succeeded or was skipped.
    Completed,
    /// It ended with failed, upstream-failed or in-flight partitions.
    CompletedWithFailures,
    /// A cancel was asked; the running process is stopping it.
    Cancelling,
    /// It was cancelled.
    Cancelled,
}

impl BackfillStatus {
    /// The lower-case name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            BackfillStatus::Requested => "requested",
            BackfillStatus::Running => "running",
            BackfillStatus::Completed => "completed",
            BackfillStatus::CompletedWithFailures => "completed_with_failures",
            BackfillStatus::Cancelling => "cancelling",
            BackfillStatus::Cancelled => "cancelled",
        }
    }

    /// Parses [`BackfillStatus::as_str`].
    pub fn parse(input: &str) -> Option<Self> {
        [
            BackfillStatus::Requested,
            BackfillStatus::Running,
            BackfillStatus::Completed,
            BackfillStatus::CompletedWithFailures,
            BackfillStatus::Cancelling,
            BackfillStatus::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == input)
    }

    /// Whether it has ended (and can no longer be resumed or cancelled).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            BackfillStatus::Completed
                | BackfillStatus::CompletedWithFailures
                | BackfillStatus::Cancelled
        )
    }
}

impl std::fmt::Display for BackfillStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The partitions a backfill was given, as stored: a range by its ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredSource {
    /// Every partition of each selected asset.
    All,
    /// The anchor's partitions between two dates, inclusive.
    Range {
        /// First date.
        from: NaiveDate,
        /// Last date.
        to: NaiveDate,
    },
    /// These partitions of the anchor.
    Partitions(Vec<Partition>),
}

/// What a backfill was asked to do, enough to run it again from another process. Run options
/// beyond these (hooks, metadata, IO manager, timeouts) are not stored: a resumed backfill
/// runs with the assets' own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillRequest {
    /// The asset selection.
    pub selection: String,
    /// The asset the partitions are given in, when not the selection's first.
    pub anchor: Option<String>,
    /// The partitions.
    pub source: StoredSource,
    /// The executor by name (`async`, `queue`, ...), when one was chosen.
    pub executor: Option<String>,
    /// Run partitions already materialized.
    pub force: bool,
    /// Run only failed partitions (and what they kept from running).
    pub retry_failed: bool,
    /// Most partitions in flight in process.
    pub max_concurrency: Option<usize>,
    /// What launched it, when automation did (`schedule:nightly`, `sensor:new_files`,
    /// `condition:daily_report`); the automation leader finishes starting such a backfill
    /// when the process that launched it died.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launched_by: Option<String>,
}

impl BackfillRequest {
    /// The request `backfill` stands for.
    pub(crate) fn of(backfill: &Backfill) -> BackfillRequest {
        let executor = backfill.run.strategy.as_ref().map(Strategy::name);
        BackfillRequest {
            selection: backfill.selection.clone().unwrap_or_default(),
            anchor: backfill.anchor.clone(),
            source: match &backfill.source {
                BackfillSource::All => StoredSource::All,
                BackfillSource::Range(from, to) => StoredSource::Range {
                    from: *from,
                    to: *to,
                },
                BackfillSource::List(list) => StoredSource::Partitions(list.clone()),
            },
            executor,
            force: backfill.force,
            retry_failed: backfill.retry_failed,
            max_concurrency: backfill.max_concurrency,
            launched_by: None,
        }
    }

    /// A backfill doing what was asked.
    pub fn to_backfill(&self) -> Backfill {
        let mut backfill = match &self.source {
            StoredSource::All => Backfill::all(),
            StoredSource::Range { from, to } => Backfill::range(*from, *to),
            StoredSource::Partitions(list) => Backfill::partitions(list.clone()),
        }
        .select(&self.selection)
        .force(self.force)
        .retry_failed(self.retry_failed);
        if let Some(anchor) = &self.anchor {
            backfill = backfill.anchor(anchor);
        }
        if let Some(name) = &self.executor {
            backfill = backfill.executor(Strategy::parse(name));
        }
        if let Some(n) = self.max_concurrency {
            backfill = backfill.max_concurrency(n);
        }
        backfill
    }
}

/// How many partitions ended each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillCounts {
    /// Partitions the backfill covers.
    pub total: usize,
    /// Materialized.
    pub succeeded: usize,
    /// Failed.
    pub failed: usize,
    /// Already done.
    pub skipped: usize,
    /// Cancelled.
    pub cancelled: usize,
    /// Running elsewhere.
    pub in_flight: usize,
    /// Not attempted: something they need failed.
    pub upstream_failed: usize,
}

impl BackfillCounts {
    /// Partitions that have ended.
    pub fn done(&self) -> usize {
        self.succeeded
            + self.failed
            + self.skipped
            + self.cancelled
            + self.in_flight
            + self.upstream_failed
    }
}

/// A stored backfill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillRecord {
    /// Its id (the batch of its queue rows, the `backfill_id` of its materializations).
    pub id: BackfillId,
    /// What was asked.
    pub request: BackfillRequest,
    /// Where it stands.
    pub status: BackfillStatus,
    /// Outcomes so far.
    pub counts: BackfillCounts,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// The process running it (`host:pid`), while one is.
    pub owner: Option<String>,
}

/// How one (asset, partition) of a stored backfill ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// The asset.
    pub asset: String,
    /// The partition.
    pub partition: Partition,
    /// The outcome's name ([`super::PartitionOutcome::name`]).
    pub outcome: String,
    /// Its error, for the outcomes that have one.
    pub error: Option<String>,
}

/// Where backfills are kept. Memory, SQLite and PostgreSQL implement it.
#[async_trait]
pub trait BackfillStore: Send + Sync + 'static {
    /// Stores a new backfill; one already stored under its id is left as it is. Returns
    /// whether this call stored it.
    async fn create(&self, record: &BackfillRecord) -> Result<bool>;

    /// Takes backfill `id` for `owner` to run: a `requested` one becomes `running`, and a
    /// `running` or `cancelling` one whose progress was last written more than `stale_after`
    /// ago (its process died) is taken over, measured by the clock that wrote it (the
    /// database's on PostgreSQL). Returns whether `owner` took it; of two processes asking at
    /// once, one does.
    async fn take(&self, id: BackfillId, owner: &str, stale_after: TimeDelta) -> Result<bool>;

    /// Sets the status, counts and owner of backfill `id` (and `finished_at` when the status
    /// is final). A backfill asked to cancel stays `cancelling` until it ends; one that has
    /// ended is left as it is.
    async fn update(
        &self,
        id: BackfillId,
        status: BackfillStatus,
        counts: &BackfillCounts,
        owner: Option<&str>,
    ) -> Result<()>;

    /// The backfill `id`, if stored.
    async fn get(&self, id: BackfillId) -> Result<Option<BackfillRecord>>;

    /// Backfills, newest first, at most `limit`.
    async fn list(&self, limit: usize) -> Result<Vec<BackfillRecord>>;

    /// Backfills that have not ended (requested, running, cancelling), oldest first.
    async fn unfinished(&self) -> Result<Vec<BackfillRecord>>;

    /// Asks backfill `id` to cancel: `cancelling` unless it has ended; returns it as it is now.
    async fn request_cancel(&self, id: BackfillId) -> Result<Option<BackfillRecord>>;

    /// Stores (or replaces) the outcomes of ended partitions.
    async fn record_outcomes(&self, id: BackfillId, outcomes: Vec<PartitionRecord>) -> Result<()>;

    /// Outcomes of backfill `id` ordered by (asset, encoded partition), after `after` (the last
    /// (asset, partition) of the previous page), at most `limit`.
    async fn outcomes(
        &self,
        id: BackfillId,
        after: Option<(&str, &Partition)>,
        limit: usize,
    ) -> Result<Vec<PartitionRecord>>;
}

/// Backfills in process memory (the default without a database).
#[derive(Debug, Default)]
pub struct MemoryBackfills {
    inner: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    records: BTreeMap<BackfillId, BackfillRecord>,
    /// As recorded (a backfill records each partition once, at its end); ordered for paging
    /// when read, which is rare next to writing a large backfill's outcomes.
    outcomes: BTreeMap<BackfillId, Vec<PartitionRecord>>,
}

impl MemoryBackfills {
    /// No backfills yet.
    pub fn new() -> Self {
        MemoryBackfills::default()
    }

    fn kept(&self) -> Result<std::sync::MutexGuard<'_, Kept>> {
        self.inner
            .lock()
            .map_err(|_| Error::store("the memory backfill store's lock was poisoned"))
    }
}

/// The status an update leaves: a backfill asked to cancel stays `cancelling` until it ends,
/// and one that has ended stays as it ended (a late progress write cannot reopen it).
pub(crate) fn next_status(current: BackfillStatus, asked: BackfillStatus) -> BackfillStatus {
    if current.is_finished() || (current == BackfillStatus::Cancelling && !asked.is_finished()) {
        current
    } else {
        asked
    }
}

#[async_trait]
impl BackfillStore for MemoryBackfills {
    async fn create(&self, record: &BackfillRecord) -> Result<bool> {
        let mut kept = self.kept()?;
        if kept.records.contains_key(&record.id) {
            return Ok(false);
        }
        kept.records.insert(record.id, record.clone());
        Ok(true)
    }

    async fn take(&self, id: BackfillId, owner: &str, stale_after: TimeDelta) -> Result<bool> {
        let stale_before = Utc::now() - stale_after;
        let mut kept = self.kept()?;
        let Some(record) = kept.records.get_mut(&id) else {
            return Ok(false);
        };
        let free = match record.status {
            BackfillStatus::Requested => true,
            BackfillStatus::Running | BackfillStatus::Cancelling => {
                record.updated_at < stale_before
            }
            _ => false,
        };
        if free {
            if record.status == BackfillStatus::Requested {
                record.status = BackfillStatus::Running;
            }
            record.owner = Some(owner.to_owned());
            record.updated_at = Utc::now();
        }
        Ok(free)
    }

    async fn update(
        &self,
        id: BackfillId,
        status: BackfillStatus,
        counts: &BackfillCounts,
        owner: Option<&str>,
    ) -> Result<()> {
        let mut kept = self.kept()?;
        let record = kept.records.get_mut(&id).ok_or_else(|| not_found(id))?;
        if record.status.is_finished() {
            return Ok(());
        }
        let now = Utc::now();
        record.status = next_status(record.status, status);
        record.counts = *counts;
        record.owner = owner.map(str::to_owned);
        record.updated_at = now;
        if record.status.is_finished() {
            record.finished_at = Some(now);
        }
        Ok(())
    }

    async fn get(&self, id: BackfillId) -> Result<Option<BackfillRecord>> {
        Ok(self.kept()?.records.get(&id).cloned())
    }

    async fn list(&self, limit: usize) -> Result<Vec<BackfillRecord>> {
        Ok(self
            .kept()?
            .records
            .values()
            .rev()
            .take(limit)
            .cloned()
            .collect())
    }

    async fn unfinished(&self) -> Result<Vec<BackfillRecord>> {
        Ok(self
            .kept()?
            .records
            .values()
            .filter(|r| !r.status.is_finished())
            .cloned()
            .collect())
    }

    async fn request_cancel(&self, id: BackfillId) -> Result<Option<BackfillRecord>> {
        let mut kept = self.kept()?;
        Ok(kept.records.get_mut(&id).map(|record| {
            if !record.status.is_finished() {
                record.status = BackfillStatus::Cancelling;
                record.updated_at = Utc::now();
            }
            record.clone()
        }))
    }

    async fn record_outcomes(&self, id: BackfillId, outcomes: Vec<PartitionRecord>) -> Result<()> {
        let mut kept = self.kept()?;
        let rows = kept.outcomes.entry(id).or_default();
        if rows.is_empty() {
            *rows = outcomes;
            return Ok(());
        }
        // Recorded again (a resumed backfill): the newer outcome replaces the older.
        let newer: std::collections::HashSet<(String, Partition)> = outcomes
            .iter()
            .map(|o| (o.asset.clone(), o.partition.clone()))
            .collect();
        rows.retain(|o| !newer.contains(&(o.asset.clone(), o.partition.clone())));
        rows.extend(outcomes);
        Ok(())
    }

    async fn outcomes(
        &self,
        id: BackfillId,
        after: Option<(&str, &Partition)>,
        limit: usize,
    ) -> Result<Vec<PartitionRecord>> {
        let kept = self.kept()?;
        let Some(rows) = kept.outcomes.get(&id) else {
            return Ok(Vec::new());
        };
        let after = after.map(|(asset, p)| (asset.to_owned(), p.encode()));
        let mut keyed: Vec<((&str, String), &PartitionRecord)> = rows
            .iter()
            .map(|o| ((o.asset.as_str(), o.partition.encode()), o))
            .filter(|((asset, key), _)| {
                after
                    .as_ref()
                    .is_none_or(|(a, k)| (*asset, key.as_str()) > (a.as_str(), k.as_str()))
            })
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(keyed
            .into_iter()
            .take(limit)
            .map(|(_, o)| o.clone())
            .collect())
    }
}

/// `NotFound` for backfill `id`.
pub(crate) fn not_found(id: BackfillId) -> Error {
    Error::not_found(format!(
        "backfill {id} does not exist; list them with `backfills`"
    ))
}
