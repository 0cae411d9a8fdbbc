//! The process-wide registry of event hubs. Wake-ups (inserts, finished jobs, cancels) are
//! published on a broadcast channel; every [`Database`](crate::Database) handle opened on
//! the same SQLite file in this process shares one channel, so an insert through one handle
//! wakes workers and waiters on all of them. Other processes are still seen by polling
//! (SQLite) or `LISTEN/NOTIFY` (PostgreSQL, where each handle keeps its own channel fed by
//! its own listener).
//!
//! The registry holds weak references: a hub lives as long as a handle uses it.

#[cfg(feature = "sqlite")]
use std::collections::HashMap;
#[cfg(feature = "sqlite")]
use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(feature = "sqlite")]
use std::sync::{LazyLock, Mutex, Weak};

use tokio::sync::broadcast;

use crate::database::Event;

/// A channel of job events shared by the handles of one database.
pub(crate) type Hub = Arc<broadcast::Sender<Event>>;

/// Events a slow receiver may fall behind by before it must resync.
const CAPACITY: usize = 4096;

#[cfg(feature = "sqlite")]
static SQLITE_HUBS: LazyLock<Mutex<HashMap<PathBuf, Weak<broadcast::Sender<Event>>>>> =
    LazyLock::new(Default::default);

/// A hub of this handle's own.
pub(crate) fn private() -> Hub {
    Arc::new(broadcast::channel(CAPACITY).0)
}

/// The hub of the SQLite database in `file`, shared with every other handle of this process
/// on the same file (the path is canonicalised, so relative paths and symlinks meet). A file
/// that cannot be resolved (an in-memory database) gets a hub of its own.
#[cfg(feature = "sqlite")]
pub(crate) fn for_sqlite_file(file: &Path) -> Hub {
    let Ok(key) = std::fs::canonicalize(file) else {
        return private();
    };
    // A poisoned lock only means another thread panicked mid-insert; the map is still whole.
    let mut hubs = SQLITE_HUBS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(hub) = hubs.get(&key).and_then(Weak::upgrade) {
        return hub;
    }
    hubs.retain(|_, hub| hub.strong_count() > 0);
    let hub = private();
    hubs.insert(key, Arc::downgrade(&hub));
    hub
}
