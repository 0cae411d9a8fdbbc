//! Whether each schedule (and, later, sensor) is on: a persisted switch, shared by every
//! process on the same database, that falls back to the definition's default until someone
//! flips it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::{Error, Result};

/// Where the on/off switches are kept. Memory, SQLite and PostgreSQL implement it.
#[async_trait]
pub trait AutomationStore: Send + Sync + 'static {
    /// The stored switch of (`kind`, `name`), `None` when never set.
    async fn enabled(&self, kind: &str, name: &str) -> Result<Option<bool>>;

    /// Sets the switch of (`kind`, `name`).
    async fn set_enabled(&self, kind: &str, name: &str, on: bool) -> Result<()>;
}

/// Switches in process memory (the default without a database).
#[derive(Debug, Default)]
pub struct MemoryAutomation {
    switches: Mutex<BTreeMap<(String, String), bool>>,
}

impl MemoryAutomation {
    /// No switch set yet.
    pub fn new() -> Self {
        MemoryAutomation::default()
    }

    fn switches(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<(String, String), bool>>> {
        self.switches
            .lock()
            .map_err(|_| Error::store("the memory automation store's lock was poisoned"))
    }
}

#[async_trait]
impl AutomationStore for MemoryAutomation {
    async fn enabled(&self, kind: &str, name: &str) -> Result<Option<bool>> {
        Ok(self
            .switches()?
            .get(&(kind.to_owned(), name.to_owned()))
            .copied())
    }

    async fn set_enabled(&self, kind: &str, name: &str, on: bool) -> Result<()> {
        self.switches()?
            .insert((kind.to_owned(), name.to_owned()), on);
        Ok(())
    }
}
