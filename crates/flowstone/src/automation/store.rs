//! What automation keeps, shared by every process on the same database: whether each
//! schedule, sensor and condition is on (falling back to the definition's default until
//! someone flips it), a cursor for each, the launch keys already used, and the tick records.
//!
//! The launch keys are what make launches happen once: a key is claimed for a backfill id
//! before that backfill is stored or started, and a key that is already claimed answers with
//! the backfill that holds it. So a leader that dies between claiming and starting leaves a
//! key that its successor finds, with the backfill to finish starting, never a second launch.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::tick::{TickQuery, TickRecord};
use crate::error::{Error, Result};
use crate::ids::BackfillId;

/// Where automation state is kept. Memory, SQLite and PostgreSQL implement it.
#[async_trait]
pub trait AutomationStore: Send + Sync + 'static {
    /// The stored switch of (`kind`, `name`), `None` when never set.
    async fn enabled(&self, kind: &str, name: &str) -> Result<Option<bool>>;

    /// Sets the switch of (`kind`, `name`).
    async fn set_enabled(&self, kind: &str, name: &str, on: bool) -> Result<()>;

    /// The cursor of (`kind`, `name`), `None` when never set.
    async fn cursor(&self, kind: &str, name: &str) -> Result<Option<String>>;

    /// Sets the cursor of (`kind`, `name`).
    async fn set_cursor(&self, kind: &str, name: &str, cursor: &str) -> Result<()>;

    /// Claims each of `keys` of (`kind`, `name`) for `backfill`, unless it is claimed
    /// already. Returns, in the order of `keys`, the backfill each key belongs to now:
    /// `backfill` for the keys claimed by this call.
    async fn claim_launches(
        &self,
        kind: &str,
        name: &str,
        keys: &[String],
        backfill: BackfillId,
    ) -> Result<Vec<BackfillId>>;

    /// Stores a tick record.
    async fn record_tick(&self, tick: &TickRecord) -> Result<()>;

    /// Tick records matching `query`, newest first.
    async fn ticks(&self, query: &TickQuery) -> Result<Vec<TickRecord>>;

    /// Deletes tick records older than `before`; returns how many.
    async fn prune_ticks(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// Automation state in process memory (the default without a database).
#[derive(Debug, Default)]
pub struct MemoryAutomation {
    kept: Mutex<Kept>,
}

type Named = (String, String);

#[derive(Debug, Default)]
struct Kept {
    switches: BTreeMap<Named, bool>,
    cursors: HashMap<Named, String>,
    launches: HashMap<(String, String, String), BackfillId>,
    /// Oldest first.
    ticks: VecDeque<TickRecord>,
}

impl MemoryAutomation {
    /// Nothing kept yet.
    pub fn new() -> Self {
        MemoryAutomation::default()
    }

    fn kept(&self) -> Result<std::sync::MutexGuard<'_, Kept>> {
        self.kept
            .lock()
            .map_err(|_| Error::store("the memory automation store's lock was poisoned"))
    }
}

fn named(kind: &str, name: &str) -> Named {
    (kind.to_owned(), name.to_owned())
}

#[async_trait]
impl AutomationStore for MemoryAutomation {
    async fn enabled(&self, kind: &str, name: &str) -> Result<Option<bool>> {
        Ok(self.kept()?.switches.get(&named(kind, name)).copied())
    }

    async fn set_enabled(&self, kind: &str, name: &str, on: bool) -> Result<()> {
        self.kept()?.switches.insert(named(kind, name), on);
        Ok(())
    }

    async fn cursor(&self, kind: &str, name: &str) -> Result<Option<String>> {
        Ok(self.kept()?.cursors.get(&named(kind, name)).cloned())
    }

    async fn set_cursor(&self, kind: &str, name: &str, cursor: &str) -> Result<()> {
        self.kept()?
            .cursors
            .insert(named(kind, name), cursor.to_owned());
        Ok(())
    }

    async fn claim_launches(
        &self,
        kind: &str,
        name: &str,
        keys: &[String],
        backfill: BackfillId,
    ) -> Result<Vec<BackfillId>> {
        let mut kept = self.kept()?;
        Ok(keys
            .iter()
            .map(|key| {
                *kept
                    .launches
                    .entry((kind.to_owned(), name.to_owned(), key.clone()))
                    .or_insert(backfill)
            })
            .collect())
    }

    async fn record_tick(&self, tick: &TickRecord) -> Result<()> {
        self.kept()?.ticks.push_back(tick.clone());
        Ok(())
    }

    async fn ticks(&self, query: &TickQuery) -> Result<Vec<TickRecord>> {
        Ok(self
            .kept()?
            .ticks
            .iter()
            .rev()
            .filter(|t| query.matches(t))
            .take(query.limit_or_default())
            .cloned()
            .collect())
    }

    async fn prune_ticks(&self, before: DateTime<Utc>) -> Result<u64> {
        let mut kept = self.kept()?;
        let was = kept.ticks.len();
        kept.ticks.retain(|t| t.at >= before);
        Ok((was - kept.ticks.len()) as u64)
    }
}
