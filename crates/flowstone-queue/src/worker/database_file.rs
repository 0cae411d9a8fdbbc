//! The watch over a SQLite worker's database file. Deleting the file (or its directory)
//! under a running worker does not break its open connections: they keep a database no
//! other process can see, and a worker would claim and heartbeat into it forever. So every
//! heartbeat interval the worker checks that its path still names the file it opened (same
//! device and inode on Unix); when it does not, the worker stops with
//! [`Error::DatabaseFileGone`], which its owner reads from
//! [`WorkerHandle::failed`](super::WorkerHandle::failed).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Shared, pause};
use crate::engine::by_engine;
use crate::error::Error;

/// What identifies the file a path named when the worker started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    device: u64,
    inode: u64,
}

fn identity(path: &Path) -> std::io::Result<Identity> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        Ok(Identity {
            device: meta.dev(),
            inode: meta.ino(),
        })
    }
    #[cfg(not(unix))]
    {
        // Elsewhere only the file's existence is checked.
        let _ = meta;
        Ok(Identity {
            device: 0,
            inode: 0,
        })
    }
}

/// The database file to watch: SQLite on a file that exists now (not in memory).
pub(super) fn watched_file(shared: &Shared) -> Option<PathBuf> {
    if shared.db.single_connection() {
        return None;
    }
    by_engine!(shared.db.pool(), pool => {
        sqlite: std::fs::canonicalize(pool.connect_options().get_filename()).ok(),
        postgres: {
            let _ = pool;
            None
        },
    })
}

/// Stops the worker with [`Error::DatabaseFileGone`] once `path` no longer names the file it
/// named at the start.
pub(super) async fn watch(shared: Arc<Shared>, path: PathBuf) {
    let Ok(started) = identity(&path) else {
        return;
    };
    while pause(&shared.stop, shared.settings.heartbeat_interval).await {
        let reason = match identity(&path) {
            Ok(now) if now == started => continue,
            Ok(_) => "it was replaced by another file".to_string(),
            Err(e) => e.to_string(),
        };
        let error = Error::DatabaseFileGone {
            path: path.clone(),
            reason,
        };
        tracing::error!(error = %error, node = %shared.node, "flowstone-queue: worker stops");
        shared.fail(error);
        return;
    }
}
