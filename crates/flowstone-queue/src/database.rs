//! One handle over both engines. `Database` owns the connection pool (SQLite or PostgreSQL),
//! the URL it came from (password hidden, for error messages) and its place in the
//! in-process event hub that turns inserts, finished jobs and cancels into wake-ups (shared
//! by every handle of one SQLite file, see `hub.rs`). On PostgreSQL a single
//! `LISTEN` connection per `Database` feeds the same hub, so other processes' inserts and
//! cancels reach this one; on SQLite other processes are seen by polling.
//!
//! The core crate reuses this handle to keep its own tables in the same database: take the
//! pool with [`Database::pool`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OnceCell, broadcast};
use tokio_util::sync::CancellationToken;

use crate::durability::{self, Durability};
use crate::engine::{self, by_engine};
use crate::error::{Error, Result};
use crate::hub::{self, Hub};
use crate::redact::redact_url;

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!(
    "flowstone-queue needs a database engine: enable its `sqlite` feature, its `postgres` \
     feature, or both (the default)"
);

/// Which engine a [`Database`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite, embedded; several processes may share one file (cargo feature `sqlite`).
    #[cfg(feature = "sqlite")]
    Sqlite,
    /// PostgreSQL (cargo feature `postgres`).
    #[cfg(feature = "postgres")]
    Postgres,
}

/// The engine a URL names by its scheme, whether or not this build has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Sqlite,
    Postgres,
}

impl Scheme {
    /// `sqlite:`, `postgres:` or `postgresql:`; `None` for any other scheme.
    fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Self::Postgres)
        } else {
            None
        }
    }

    /// The engine's name, for messages.
    fn engine(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }

    /// The cargo feature that builds the engine.
    fn feature(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The underlying sqlx pool, for callers that keep their own tables in the same database.
#[derive(Debug, Clone)]
pub enum Pool {
    /// A SQLite pool (WAL mode, busy timeout set).
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    /// A PostgreSQL pool.
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
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
    /// How much a commit that returned Ok survives (default [`Durability::Full`]: power
    /// loss). A `durability=full|relaxed` parameter in the URL wins over this.
    pub durability: Durability,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            max_connections: None,
            acquire_timeout: Duration::from_secs(10),
            busy_timeout: Duration::from_secs(30),
            durability: Durability::Full,
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

/// A subscription to finished jobs, from [`Database::finished_jobs`].
#[derive(Debug)]
pub struct FinishedJobs {
    events: broadcast::Receiver<Event>,
}

impl FinishedJobs {
    /// Resolves when a job has finished since the last call (or when events may have been
    /// missed, which callers treat the same: look again). Pending forever once the database
    /// handle is closed.
    pub async fn changed(&mut self) {
        loop {
            match self.events.recv().await {
                Ok(Event::Finished(_) | Event::Resync) => return,
                Ok(Event::Inserted(_)) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
            }
        }
    }
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
    /// PostgreSQL: the `LISTEN` connection, started by the first subscriber.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    listener: OnceCell<()>,
    stop: CancellationToken,
    /// SQLite: this process's writers queue here instead of in SQLite's busy handler, which
    /// sleeps in steps of milliseconds. (Other processes still meet the busy timeout.)
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
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

    /// Connects by URL with explicit pool settings. A `durability=full|relaxed` parameter
    /// in the URL sets [`ConnectOptions::durability`].
    pub async fn connect_with(url: &str, mut options: ConnectOptions) -> Result<Self> {
        let shown = redact_url(url);
        let (url, durability) = durability::take_from_url(url, &shown)?;
        let url = url.as_str();
        if let Some(durability) = durability {
            options.durability = durability;
        }
        let pool = match Scheme::of(url) {
            #[cfg(feature = "sqlite")]
            Some(Scheme::Sqlite) => {
                Pool::Sqlite(engine::sqlite::connect(url, &shown, &options).await?)
            }
            #[cfg(feature = "postgres")]
            Some(Scheme::Postgres) => {
                Pool::Postgres(engine::postgres::connect(url, &shown, &options).await?)
            }
            // Reachable only in a build without one of the engines.
            #[allow(unreachable_patterns)]
            Some(missing) => {
                return Err(Error::EngineNotBuilt {
                    url: shown,
                    engine: missing.engine(),
                    feature: missing.feature(),
                });
            }
            None => {
                let scheme = url.split(':').next().unwrap_or_default();
                return Err(bad_url(
                    &shown,
                    format!("unsupported scheme `{scheme}` (expected `sqlite:` or `postgres:`)"),
                ));
            }
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
        let events = by_engine!(&pool, p => {
            sqlite: hub::for_sqlite_file(p.connect_options().get_filename()),
            postgres: {
                let _ = p;
                hub::private()
            },
        });
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

    /// True when `other` is this handle or a clone of it (one pool, one hub), as opposed to
    /// another handle, even one on the same database.
    pub fn is_same_handle(&self, other: &Database) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// The engine this database runs on.
    pub fn engine(&self) -> Engine {
        by_engine!(&self.inner.pool, _ => {
            sqlite: Engine::Sqlite,
            postgres: Engine::Postgres,
        })
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
        by_engine!(&self.inner.pool, _ => {
            sqlite: Some(self.inner.write_gate.lock().await),
            postgres: None,
        })
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
        by_engine!(&self.inner.pool, p => {
            sqlite: p.close().await,
            postgres: p.close().await,
        })
    }

    pub(crate) fn publish(&self, event: Event) {
        // No receivers is fine: nobody is waiting.
        let _ = self.inner.events.send(event);
    }

    /// Wakes when jobs reach a final state: jobs of this process and of other handles on the
    /// same SQLite file at once, other processes' on PostgreSQL through `LISTEN/NOTIFY`. Other
    /// processes on SQLite are not seen: poll beside it.
    pub async fn finished_jobs(&self) -> FinishedJobs {
        FinishedJobs {
            events: self.subscribe().await,
        }
    }

    /// Subscribes to job events. On PostgreSQL the first call starts the `LISTEN`
    /// connection and returns once it listens (or after a few seconds if it cannot, in which
    /// case it keeps retrying in the background and callers fall back to polling).
    pub(crate) async fn subscribe(&self) -> broadcast::Receiver<Event> {
        let rx = self.inner.events.subscribe();
        by_engine!(&self.inner.pool, pool => {
            // Other processes' writes are seen by polling.
            sqlite: {
                let _ = pool;
            },
            postgres: {
                self.inner
                    .listener
                    .get_or_init(|| async {
                        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
                        tokio::spawn(engine::notify::listen(
                            pool.clone(),
                            broadcast::Sender::clone(&self.inner.events),
                            self.inner.stop.clone(),
                            ready_tx,
                        ));
                        let _ = tokio::time::timeout(Duration::from_secs(5), ready_rx).await;
                    })
                    .await;
            },
        });
        rx
    }
}

/// The URL `shown` (password hidden) cannot be used, for `reason`.
pub(crate) fn bad_url(shown: &str, reason: impl std::fmt::Display) -> Error {
    Error::BadUrl {
        url: shown.to_string(),
        reason: reason.to_string(),
    }
}

/// The database at `shown` (password hidden) did not answer or refused the connection.
pub(crate) fn unreachable(shown: &str, source: sqlx::Error) -> Error {
    Error::Unreachable {
        url: shown.to_string(),
        source,
    }
}

/// Runs a connection attempt with a deadline (a silent host would otherwise hold it for
/// the operating system's TCP timeout).
pub(crate) async fn within<T>(
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Connecting to `url` fails at once, naming the engine and the feature to enable.
    #[allow(dead_code)] // Used only by the builds that lack an engine.
    async fn refused_for_lack_of(url: &str, engine: &str, feature: &str) {
        let err = Database::connect(url)
            .await
            .expect_err("a build without the engine must refuse its URL");
        assert!(
            matches!(&err, Error::EngineNotBuilt { engine: e, feature: f, .. }
                if *e == engine && *f == feature),
            "unexpected error: {err:?}"
        );
        let shown = err.to_string();
        assert!(
            shown.contains(&format!(
                "this build of flowstone-queue has no {engine} support: enable the `{feature}` feature"
            )),
            "{shown}"
        );
        assert!(!shown.contains("secret"), "password shown: {shown}");
    }

    #[cfg(not(feature = "postgres"))]
    #[tokio::test]
    async fn a_build_without_postgres_refuses_postgres_urls() {
        refused_for_lack_of(
            "postgres://user:secret@127.0.0.1:5432/db",
            "PostgreSQL",
            "postgres",
        )
        .await;
        refused_for_lack_of("postgresql://localhost/db", "PostgreSQL", "postgres").await;
    }

    #[cfg(not(feature = "sqlite"))]
    #[tokio::test]
    async fn a_build_without_sqlite_refuses_sqlite_urls() {
        refused_for_lack_of("sqlite::memory:", "SQLite", "sqlite").await;
        refused_for_lack_of("sqlite://jobs.db", "SQLite", "sqlite").await;
    }

    #[tokio::test]
    async fn an_unknown_scheme_is_a_bad_url() {
        let err = Database::connect("mysql://localhost/db").await.unwrap_err();
        assert!(
            matches!(&err, Error::BadUrl { reason, .. } if reason.contains("`mysql`")),
            "{err:?}"
        );
    }
}
