//! One handle over both engines. `Database` owns the connection pool (SQLite or PostgreSQL),
//! the URL it came from (password hidden, for error messages) and its place in the
//! in-process event hub that turns inserts, finished jobs and cancels into wake-ups (shared
//! by every handle of one SQLite file, see `hub.rs`). On PostgreSQL a single
//! `LISTEN` connection per `Database` feeds the same hub, so other processes' inserts and
//! cancels reach this one; on SQLite other processes are seen by polling.
//!
//! The core crate reuses this handle to keep its own tables in the same database: take the
//! pool with [`Database::pool`].

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::{OnceCell, broadcast};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::hub::{self, Hub};
use crate::redact::redact_url;

/// Which engine a [`Database`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite, embedded; several processes may share one file.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The underlying sqlx pool, for callers that keep their own tables in the same database.
#[derive(Debug, Clone)]
pub enum Pool {
    /// A SQLite pool (WAL mode, busy timeout set).
    Sqlite(SqlitePool),
    /// A PostgreSQL pool.
    Postgres(PgPool),
}

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Most connections the pool opens (default 10 on PostgreSQL, 8 on SQLite).
    pub max_connections: Option<u32>,
    /// How long to wait for a connection before giving up (default 10 s).
    pub acquire_timeout: Duration,
    /// SQLite only: how long a writer waits for the file lock (default 30 s).
    pub busy_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: None,
            acquire_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(30),
        }
    }
}

/// Something that happened to jobs, as seen by this process.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// Jobs became available on this queue.
    Inserted(Arc<str>),
    /// These jobs reached a final state (completed, discarded, cancelled).
    Finished(Arc<[i64]>),
    /// Signals may have been missed (reconnect, lag): re-check everything.
    Resync,
}

/// A database holding the queue: a pool plus the wake-up hub. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// A one-connection pool (`sqlite::memory:`): workers must not keep a connection.
    single_connection: bool,
    url: String,
    events: Hub,
    listener: OnceCell<()>,
    stop: CancellationToken,
    /// SQLite: this process's writers queue here instead of in SQLite's busy handler, which
    /// sleeps in steps of milliseconds. (Other processes still meet the busy timeout.)
    write_gate: tokio::sync::Mutex<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.inner.url)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Connects by URL: `sqlite://path/to/file.db` (created if missing), `sqlite::memory:`
    /// (one process only), or `postgres://user:password@host:port/database`.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, ConnectOptions::default()).await
    }

    /// Connects by URL with explicit pool settings.
    pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Self> {
        let shown = redact_url(url);
        let bad = |reason: String| Error::BadUrl {
            url: shown.clone(),
            reason,
        };
        let unreachable = |source| Error::Unreachable {
            url: shown.clone(),
            source,
        };
        let pool = if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)
                .map_err(|e| bad(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(options.busy_timeout)
                // Checkpoint (and fsync the database file) every ~40 MB of WAL rather
                // than every 4 MB: a busy queue rewrites the same few pages constantly.
                .pragma("wal_autocheckpoint", "10000");
            let in_memory = url.contains(":memory:") || url.contains("mode=memory");
            let mut pool = SqlitePoolOptions::new().acquire_timeout(options.acquire_timeout);
            pool = if in_memory {
                // One connection, never recycled: the database lives as long as it does.
                pool.max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
            } else {
                pool.max_connections(options.max_connections.unwrap_or(8))
            };
            // One direct connection first: fails at once (the pool would retry until its
            // acquire timeout) and says why.
            let probe = within(
                options.acquire_timeout,
                sqlx::SqliteConnection::connect_with(&opts),
            )
            .await
            .map_err(unreachable)?;
            let _ = probe.close().await;
            Pool::Sqlite(pool.connect_with(opts).await.map_err(unreachable)?)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let opts = PgConnectOptions::from_str(url).map_err(|e| bad(e.to_string()))?;
            let probe = within(
                options.acquire_timeout,
                sqlx::PgConnection::connect_with(&opts),
            )
            .await
            .map_err(unreachable)?;
            let _ = probe.close().await;
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections.unwrap_or(10))
                .acquire_timeout(options.acquire_timeout)
                .connect_with(opts)
                .await
                .map_err(unreachable)?;
            Pool::Postgres(pool)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            return Err(bad(format!(
                "unsupported scheme `{scheme}` (expected `sqlite:` or `postgres:`)"
            )));
        };
        let mut db = Self::from_pool_and_url(pool, shown);
        if let Some(inner) = Arc::get_mut(&mut db.inner) {
            inner.single_connection = url.starts_with("sqlite:")
                && (url.contains(":memory:") || url.contains("mode=memory"));
        }
        Ok(db)
    }

    /// Wraps a pool the caller already has. Signals from other processes still arrive on
    /// PostgreSQL; on SQLite they are polled.
    pub fn from_pool(pool: Pool) -> Self {
        Self::from_pool_and_url(pool, String::from("(caller's pool)"))
    }

    fn from_pool_and_url(pool: Pool, url: String) -> Self {
        let events = match &pool {
            Pool::Sqlite(p) => hub::for_sqlite_file(p.connect_options().get_filename()),
            Pool::Postgres(_) => hub::private(),
        };
        Self {
            inner: Arc::new(Inner {
                pool,
                single_connection: false,
                url,
                events,
                listener: OnceCell::new(),
                stop: CancellationToken::new(),
                write_gate: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The engine this database runs on.
    pub fn engine(&self) -> Engine {
        match self.inner.pool {
            Pool::Sqlite(_) => Engine::Sqlite,
            Pool::Postgres(_) => Engine::Postgres,
        }
    }

    /// The underlying sqlx pool.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Waits for this process's turn to write (SQLite); nothing to wait for on PostgreSQL.
    /// Other code writing to the same SQLite database through this handle may take the same
    /// turn around its write transactions, so that writers of this process queue here rather
    /// than in SQLite's sleeping busy handler. Acquire the connection first, then the turn,
    /// and hold the turn only for the write.
    pub async fn write_gate(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.inner.pool {
            Pool::Sqlite(_) => Some(self.inner.write_gate.lock().await),
            Pool::Postgres(_) => None,
        }
    }

    /// True for a one-connection pool (`sqlite::memory:`).
    pub(crate) fn single_connection(&self) -> bool {
        self.inner.single_connection
    }

    /// The URL this database was opened with, password hidden.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Closes the pool: waits for connections in use to be returned, then closes them all.
    pub async fn close(&self) {
        self.inner.stop.cancel();
        match &self.inner.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    pub(crate) fn publish(&self, event: Event) {
        // No receivers is fine: nobody is waiting.
        let _ = self.inner.events.send(event);
    }

    /// Subscribes to job events. On PostgreSQL the first call starts the `LISTEN`
    /// connection and returns once it listens (or after a few seconds if it cannot, in which
    /// case it keeps retrying in the background and callers fall back to polling).
    pub(crate) async fn subscribe(&self) -> broadcast::Receiver<Event> {
        let rx = self.inner.events.subscribe();
        if let Pool::Postgres(pool) = &self.inner.pool {
            self.inner
                .listener
                .get_or_init(|| async {
                    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                    tokio::spawn(listen(
                        pool.clone(),
                        broadcast::Sender::clone(&self.inner.events),
                        self.inner.stop.clone(),
                        ready_tx,
                    ));
                    let _ = tokio::time::timeout(Duration::from_secs(5), ready_rx).await;
                })
                .await;
        }
        rx
    }
}

/// Runs a connection attempt with a deadline (a silent host would otherwise hold it for
/// the operating system's TCP timeout).
async fn within<T>(
    limit: Duration,
    attempt: impl Future<Output = std::result::Result<T, sqlx::Error>>,
) -> std::result::Result<T, sqlx::Error> {
    match tokio::time::timeout(limit, attempt).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {limit:?}"),
        ))),
    }
}

/// Channels the PostgreSQL triggers notify (see `migrations/postgres`).
const INSERTED_CHANNEL: &str = "flowstone_jobs_inserted";
const FINISHED_CHANNEL: &str = "flowstone_jobs_finished";

async fn listen(
    pool: PgPool,
    events: broadcast::Sender<Event>,
    stop: CancellationToken,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut pause = Duration::from_millis(50);
    while !stop.is_cancelled() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "flowstone-queue: LISTEN connection failed; retrying");
                tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(pause) => {} }
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        if let Err(e) = listener
            .listen_all([INSERTED_CHANNEL, FINISHED_CHANNEL])
            .await
        {
            tracing::warn!(error = %e, "flowstone-queue: LISTEN failed; retrying");
            tokio::select! { _ = stop.cancelled() => return, _ = tokio::time::sleep(pause) => {} }
            continue;
        }
        pause = Duration::from_millis(50);
        if let Some(ready) = ready.take() {
            let _ = ready.send(());
        }
        // Anything that happened while we were not listening was missed.
        let _ = events.send(Event::Resync);
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = listener.try_recv() => next,
            };
            match next {
                Ok(Some(n)) => {
                    if let Some(event) = parse_notification(n.channel(), n.payload()) {
                        let _ = events.send(event);
                    }
                }
                // Connection lost; the listener reconnects on the next call.
                Ok(None) => {
                    let _ = events.send(Event::Resync);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "flowstone-queue: LISTEN connection broke; reconnecting");
                    let _ = events.send(Event::Resync);
                    break;
                }
            }
        }
    }
}

fn parse_notification(channel: &str, payload: &str) -> Option<Event> {
    match channel {
        INSERTED_CHANNEL => Some(Event::Inserted(Arc::from(payload))),
        FINISHED_CHANNEL => {
            if payload == "*" {
                return Some(Event::Resync);
            }
            let ids: Option<Vec<i64>> = payload.split(',').map(|s| s.parse().ok()).collect();
            Some(ids.map_or(Event::Resync, |ids| Event::Finished(ids.into())))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_parse() {
        assert!(matches!(
            parse_notification(FINISHED_CHANNEL, "1,2,3"),
            Some(Event::Finished(ids)) if ids.as_ref() == [1, 2, 3]
        ));
        assert!(matches!(
            parse_notification(FINISHED_CHANNEL, "*"),
            Some(Event::Resync)
        ));
        assert!(matches!(
            parse_notification(FINISHED_CHANNEL, "x"),
            Some(Event::Resync)
        ));
        assert!(parse_notification("other", "").is_none());
    }
}
