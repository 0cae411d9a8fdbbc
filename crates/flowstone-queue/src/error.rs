//! The crate's error type. Every variant says what went wrong and what to do about it, and
//! never shows a database password.

use std::time::Duration;

/// Errors returned by flowstone-queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A job that has already completed or been discarded cannot be cancelled.
    #[error(
        "job {id} cannot be cancelled: it is already {state}; only a pending or running job can \
         be cancelled"
    )]
    AlreadyFinished {
        /// The job.
        id: i64,
        /// `completed` or `discarded`.
        state: crate::job::JobState,
    },

    /// The connection URL could not be used. The URL is shown with its password hidden.
    #[error(
        "bad database URL `{url}`: {reason}. Use `sqlite://path/to/file.db` or \
         `postgres://user:password@host:5432/database`"
    )]
    BadUrl {
        /// The URL, password hidden.
        url: String,
        /// Why it was rejected.
        reason: String,
    },

    /// The URL names an engine this build was compiled without.
    #[error(
        "cannot open `{url}`: this build of flowstone-queue has no {engine} support: enable \
         the `{feature}` feature"
    )]
    EngineNotBuilt {
        /// The URL, password hidden.
        url: String,
        /// The engine the URL names ("SQLite", "PostgreSQL").
        engine: &'static str,
        /// The cargo feature that builds it.
        feature: &'static str,
    },

    /// The database could not be reached or refused the connection.
    #[error(
        "cannot reach the database at `{url}`: {source}. Check that the server is running and \
         listening on that host and port, that the database exists, and that the user and \
         password are right (for SQLite: that the directory exists and is writable)"
    )]
    Unreachable {
        /// The URL, password hidden.
        url: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// A worker config names a queue that is not among the declared queues.
    #[error(
        "unknown queue `{queue}` in the worker config: the declared queues are [{}]. Add it to \
         `WorkerBuilder::known_queues` or fix the name",
        known.join(", ")
    )]
    UnknownQueue {
        /// The queue the config named.
        queue: String,
        /// The queues that were declared.
        known: Vec<String>,
    },

    /// A queue name is empty, too long or uses characters outside `[A-Za-z0-9_.:-]`.
    #[error(
        "invalid queue name `{0}`: use 1 to 64 characters from letters, digits, `_`, `-`, `.` \
         and `:`"
    )]
    InvalidQueueName(String),

    /// A worker was configured in a way that cannot work (say, a concurrency of 0).
    #[error("invalid worker config: {0}")]
    InvalidConfig(String),

    /// A job to insert is not valid (say, priority 12).
    #[error("invalid job: {0}")]
    InvalidJob(String),

    /// A job of a batch given to `Queue::insert_many` is not valid; nothing was inserted.
    #[error(
        "job {index} of the batch (counting from 0) is not valid: {reason}. Nothing of the \
         batch was inserted; fix that job and insert the batch again"
    )]
    InvalidBatchJob {
        /// The job's position in the batch.
        index: usize,
        /// What is wrong with it.
        reason: Box<Error>,
    },

    /// The database rejected a job of a batch given to `Queue::insert_many`; the batch's
    /// transaction was rolled back, nothing was inserted.
    #[error(
        "the database rejected {} of the batch (counting from 0): {source}. Nothing of the \
         batch was inserted; fix it and insert the batch again",
        shown_rows(rows)
    )]
    BatchRejected {
        /// Position in the batch of the job the database rejects (`index..index + 1`); a
        /// wider range when no one job is rejected by itself, only several together.
        rows: std::ops::Range<usize>,
        /// The database's reason.
        #[source]
        source: sqlx::Error,
    },

    /// A job's args are not valid JSON for the type the handler asked for.
    #[error("malformed args for job kind `{kind}`: {reason}")]
    MalformedArgs {
        /// The job kind.
        kind: String,
        /// What serde said.
        reason: String,
    },

    /// `wait` gave up before the job finished.
    #[error(
        "timed out after {waited:?} waiting for job {id} to finish (it is still `{state}`); \
         check that a worker runs its queue, or wait longer"
    )]
    WaitTimeout {
        /// The job id.
        id: i64,
        /// Its state when the wait gave up.
        state: String,
        /// How long the wait lasted.
        waited: Duration,
    },

    /// No job with this id (it may have been pruned).
    #[error("job {0} not found (it may never have existed, or was pruned)")]
    NotFound(i64),

    /// A migration failed; the database is left at the previous version.
    #[error(
        "migration {component} v{version} `{name}` failed: {source}. The database stays at the \
         previous version; fix the cause and run the migrations again"
    )]
    Migration {
        /// Component whose migration failed.
        component: String,
        /// Its version.
        version: i64,
        /// Its name.
        name: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// A migration recorded as applied has different SQL in this build: the database was
    /// built by other SQL than this build ships.
    #[error(
        "migration {component} v{version} `{name}` was changed after it was applied to this \
         database (recorded checksum {recorded}, this build's {current}): an applied migration \
         must not change. Restore its original SQL and put the change in a new migration"
    )]
    MigrationChanged {
        /// Component whose migration changed.
        component: String,
        /// Its version.
        version: i64,
        /// Its name (as this build calls it).
        name: String,
        /// The checksum recorded when it was applied.
        recorded: String,
        /// The checksum of this build's SQL.
        current: String,
    },

    /// The database is at a newer migration version than this build knows.
    #[error(
        "the database has {component} migration v{found}, newer than this build knows (v{known}); \
         upgrade flowstone-queue on this node"
    )]
    NewerSchema {
        /// Component.
        component: String,
        /// Highest version in the database.
        found: i64,
        /// Highest version this build ships.
        known: i64,
    },

    /// A running worker's SQLite database file was deleted or replaced (or its directory
    /// removed): the worker stopped, since what it would write no other process could see.
    #[error(
        "the SQLite database file `{}` of this worker is gone ({reason}): the worker stopped. \
         Restore the file or point the worker at the new one, then start it again",
        path.display()
    )]
    DatabaseFileGone {
        /// The database file, as resolved when the worker started.
        path: std::path::PathBuf,
        /// What the check found.
        reason: String,
    },

    /// A value could not be turned into JSON.
    #[error("could not encode JSON: {0}")]
    Json(#[from] serde_json::Error),

    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl Error {
    /// True when the statement did not reach a verdict: the connection was lost or closed
    /// (PostgreSQL terminated the backend, restarted or failed over; the socket broke; the
    /// pool timed out), or the database was momentarily busy (SQLite's lock, a serialization
    /// failure, a deadlock, a full disk). The same statement may succeed on a fresh
    /// connection, so work that must not be lost, like an ack of finished work, is retried.
    /// Only an error the database returns for the statement itself is a rejection.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Database(e) => transient_sqlx(e),
            _ => false,
        }
    }

    /// True when the database answered the statement with an error of its own (bad data,
    /// a violated constraint): retrying it unchanged would fail again.
    pub fn is_rejection(&self) -> bool {
        matches!(self, Error::Database(sqlx::Error::Database(_))) && !self.is_transient()
    }
}

/// Which driver errors say nothing about the statement (see [`Error::is_transient`]): a
/// broken connection or pool, and the codes of a statement that may succeed when run again:
/// PostgreSQL's SQLSTATE classes 08 (connection exception), 57 (operator intervention:
/// terminated by an administrator, a crash or a shutdown) and 53 (insufficient resources),
/// serialization failures and deadlocks; SQLite's BUSY, LOCKED, IOERR, FULL and CANTOPEN
/// families.
fn transient_sqlx(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let Some(code) = db.code() else { return false };
            if from_sqlite(db.as_ref()) {
                // Extended result codes keep the primary code in their low byte.
                code.parse::<u32>()
                    .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14))
            } else {
                code.starts_with("08")
                    || code.starts_with("57")
                    || code.starts_with("53")
                    || code == "40001"
                    || code == "40P01"
            }
        }
        _ => false,
    }
}

/// Whether the database error came from SQLite (its codes are numbers, PostgreSQL's are
/// SQLSTATEs).
fn from_sqlite(db: &dyn sqlx::error::DatabaseError) -> bool {
    #[cfg(feature = "sqlite")]
    {
        db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
    }
    #[cfg(not(feature = "sqlite"))]
    {
        let _ = db;
        false
    }
}

/// `job 7`, or `jobs 7..9` for a range of several.
fn shown_rows(rows: &std::ops::Range<usize>) -> String {
    if rows.len() == 1 {
        format!("job {}", rows.start)
    } else {
        format!("jobs {}..{}", rows.start, rows.end)
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_connections_are_transient_not_rejections() {
        let lost = [
            Error::Database(sqlx::Error::Io(std::io::Error::from(
                std::io::ErrorKind::BrokenPipe,
            ))),
            Error::Database(sqlx::Error::PoolTimedOut),
            Error::Database(sqlx::Error::Protocol("unexpected EOF".into())),
        ];
        for e in &lost {
            assert!(e.is_transient(), "{e}");
            assert!(!e.is_rejection(), "{e}");
        }
        let verdicts = [
            Error::Database(sqlx::Error::RowNotFound),
            Error::InvalidJob("priority 12".into()),
        ];
        for e in &verdicts {
            assert!(!e.is_transient(), "{e}");
        }
    }
}
