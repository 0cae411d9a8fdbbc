//! Retention: how much materialization history to keep, and the pass that prunes the rest.
//!
//! Records and lineage edges are otherwise kept forever: an asset materialized every minute
//! gains half a million records a year. A [`RetentionPolicy`] keeps the newest N records of each
//! (asset, partition), and/or the records younger than an age; [`RetentionPolicy::apply`] walks a
//! store in chunks and deletes the rest with the lineage they recorded.
//!
//! Whatever the policy, each (asset, partition) keeps its latest record (what backfills and
//! readiness read) and its latest successful record (the materialization whose output is
//! normally the one stored, and whose lineage says where that output came from).
//!
//! Lineage: the edges a dropped record recorded (what it read) go with it. Edges in which a
//! dropped record is the upstream stay: they are the history of a consumer that may be kept, and
//! still name the exact run it read.
//!
//! Outputs: the IO managers here keep one output per (asset, partition), replaced by each run
//! ([`crate::io::MemoryIo`], [`crate::io::FileIo`], the SQL blob manager), so there are no
//! outputs of superseded runs to prune; an output goes only when its asset and partition do.
//!
//! The pass is meant for one node at a time (a leader-only duty): it is safe to run beside
//! writers, and two passes at once only repeat each other's work.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::lineage::LineageStore;
use crate::store::{Materialization, MaterializationStatus, MaterializationStore};

/// Records deleted per round (one read of candidates, one lineage delete, one record delete):
/// bounds every statement and transaction of a pass, however much there is to prune.
pub const CHUNK: usize = 1000;

/// How much history to keep per (asset, partition). The default keeps everything.
///
/// With both limits set a record goes when either says so; the latest record and the latest
/// successful record of each (asset, partition) are always kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    keep_latest: Option<usize>,
    max_age: Option<Duration>,
}

/// What a retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Materialization records.
    pub records: u64,
    /// Lineage edges recorded by those materializations.
    pub lineage_edges: u64,
}

impl RetentionPolicy {
    /// A policy that keeps everything; narrow it with [`keep_latest`](Self::keep_latest) and
    /// [`max_age`](Self::max_age).
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the newest `count` records of each (asset, partition) (newest by start time, then
    /// run id, as [`MaterializationStore::list`] orders them). 0 keeps one: the latest record is
    /// never dropped.
    pub fn keep_latest(mut self, count: usize) -> Self {
        self.keep_latest = Some(count.max(1));
        self
    }

    /// Drops records that started more than `age` ago.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// How many of the newest records of each (asset, partition) are kept by count, if limited.
    pub fn kept_newest(&self) -> Option<usize> {
        self.keep_latest
    }

    /// Records that started before this time are dropped by age, if limited.
    pub fn cutoff(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let age = chrono::Duration::from_std(self.max_age?).ok()?;
        // An age reaching before the earliest representable time drops nothing by age.
        now.checked_sub_signed(age)
    }

    /// Whether this policy keeps everything.
    pub fn keeps_everything(&self) -> bool {
        self.keep_latest.is_none() && self.max_age.is_none()
    }

    /// Whether the record at `rank` (0 = newest) of its (asset, partition), started at
    /// `started_at`, is past this policy at `now`, before the latest record and the latest
    /// successful one are set aside (stores apply those protections).
    pub fn is_past(&self, rank: usize, started_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        self.keep_latest.is_some_and(|keep| rank >= keep)
            || self.cutoff(now).is_some_and(|cutoff| started_at < cutoff)
    }

    /// Prunes `store` and `lineage` (which should describe the same materializations) by this
    /// policy, as of now.
    pub async fn apply(
        &self,
        store: &dyn MaterializationStore,
        lineage: &dyn LineageStore,
    ) -> Result<RetentionReport> {
        self.apply_at(Utc::now(), store, lineage).await
    }

    /// [`apply`](Self::apply) as of `now`.
    ///
    /// In rounds of at most [`CHUNK`] records: the store names the records it would drop, their
    /// lineage goes, then the records. A pass stopped between the two deletes leaves records
    /// without lineage, which the next pass drops; never lineage without its record.
    pub async fn apply_at(
        &self,
        now: DateTime<Utc>,
        store: &dyn MaterializationStore,
        lineage: &dyn LineageStore,
    ) -> Result<RetentionReport> {
        let mut report = RetentionReport::default();
        if self.keeps_everything() {
            return Ok(report);
        }
        let mut from = None;
        loop {
            let expired = store.expired(self, now, from.as_ref(), CHUNK).await?;
            let Some(last) = expired.last().cloned() else {
                break;
            };
            report.lineage_edges += lineage.forget_consumed_by(&expired).await?;
            let deleted = store.delete(&expired).await?;
            report.records += deleted;
            if deleted == 0 {
                // Nothing the store named was there to delete: stop rather than ask forever.
                break;
            }
            from = Some(last);
        }
        Ok(report)
    }
}

/// The records of one (asset, partition) that `policy` drops at `now`, oldest first: the
/// definition every store's `expired` follows (the memory store uses it as it is).
pub(crate) fn expired_of_partition<'a>(
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    records: &mut [&'a Materialization],
) -> Vec<&'a Materialization> {
    records.sort_by(|a, b| crate::store::newest_first(a, b));
    let latest_success = records
        .iter()
        .position(|m| m.status == MaterializationStatus::Success);
    let mut expired: Vec<&Materialization> = records
        .iter()
        .enumerate()
        .filter(|&(rank, m)| {
            rank > 0 && Some(rank) != latest_success && policy.is_past(rank, m.started_at, now)
        })
        .map(|(_, m)| *m)
        .collect();
    expired.reverse();
    expired
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeping_zero_keeps_one_and_the_default_keeps_everything() {
        assert_eq!(RetentionPolicy::new().keep_latest(0).kept_newest(), Some(1));
        assert!(RetentionPolicy::new().keeps_everything());
        let now = Utc::now();
        assert!(!RetentionPolicy::new().is_past(1_000_000, DateTime::UNIX_EPOCH, now));
    }

    #[test]
    fn an_age_beyond_the_calendar_drops_nothing_by_age() {
        let policy = RetentionPolicy::new().max_age(Duration::MAX);
        assert_eq!(policy.cutoff(Utc::now()), None);
        assert!(!policy.is_past(5, DateTime::UNIX_EPOCH, Utc::now()));
    }
}
