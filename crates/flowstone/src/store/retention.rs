//! [`RetentionPolicy`]: which materialization records a retention pass drops. The policy is
//! data the stores evaluate ([`super::MaterializationStore::expired`]); the pass that applies
//! it to a store and its lineage is [`crate::retention`], above the stores.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Materialization, MaterializationStatus};

/// How much history to keep per (asset, partition). The default keeps everything.
///
/// With both limits set a record goes when either says so; the latest record and the latest
/// successful record of each (asset, partition) are always kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    keep_latest: Option<usize>,
    max_age: Option<Duration>,
}

impl RetentionPolicy {
    /// A policy that keeps everything; narrow it with [`keep_latest`](Self::keep_latest) and
    /// [`max_age`](Self::max_age).
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the newest `count` records of each (asset, partition) (newest by start time, then
    /// run id, as [`MaterializationStore::list`](super::MaterializationStore::list) orders them). 0 keeps one: the latest record is
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
}

/// The records of one (asset, partition) that `policy` drops at `now`, oldest first: the
/// definition every store's `expired` follows (the memory store uses it as it is).
pub(crate) fn expired_of_partition<'a>(
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    records: &mut [&'a Materialization],
) -> Vec<&'a Materialization> {
    records.sort_by(|a, b| super::newest_first(a, b));
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
