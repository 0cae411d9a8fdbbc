//! Test support (cargo feature `testing`): a fresh database per test on either engine, and
//! a macro that runs one async scenario against both engines.
//!
//! PostgreSQL tests create `fsq_<uuid>` from `FLOWSTONE_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and drop it on [`TestDb::cleanup`] (or, best
//! effort, on drop). When PostgreSQL cannot be reached the test is skipped with a loud
//! message, unless `CI=true`, where it fails.

use std::path::PathBuf;

use sqlx::{Connection, Executor, PgConnection};

use crate::client::Queue;
use crate::database::{Database, Engine};

/// Default PostgreSQL URL for tests.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The PostgreSQL URL tests use: `FLOWSTONE_TEST_PG_URL` or [`DEFAULT_PG_URL`].
pub fn pg_base_url() -> String {
    std::env::var("FLOWSTONE_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_string())
}

/// A database of its own for one test.
pub struct TestDb {
    /// The open database.
    pub db: Database,
    url: String,
    pg: Option<(String, String)>,
    sqlite_path: Option<PathBuf>,
    cleaned: bool,
}

impl TestDb {
    /// A fresh SQLite database in a temporary file.
    pub async fn sqlite() -> TestDb {
        let path = std::env::temp_dir().join(format!("fsq_{}.db", uuid::Uuid::now_v7().simple()));
        let url = format!("sqlite://{}", path.display());
        let db = Database::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot open test SQLite database: {e}"));
        TestDb {
            db,
            url,
            pg: None,
            sqlite_path: Some(path),
            cleaned: false,
        }
    }

    /// A fresh PostgreSQL database, or `None` (after a loud message) when PostgreSQL
    /// cannot be reached and `CI` is not `true`.
    pub async fn postgres() -> Option<TestDb> {
        let base = pg_base_url();
        let shown = crate::redact_url(&base);
        let mut admin = match PgConnection::connect(&base).await {
            Ok(c) => c,
            Err(e) => {
                let msg = format!(
                    "\n==================== POSTGRESQL UNREACHABLE ====================\n\
                     cannot connect to {shown}: {e}\n\
                     Set FLOWSTONE_TEST_PG_URL or start PostgreSQL. \
                     PostgreSQL tests are SKIPPED (they fail when CI=true).\n\
                     ================================================================\n"
                );
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("{msg}");
                }
                eprintln!("{msg}");
                return None;
            }
        };
        let name = format!("fsq_{}", uuid::Uuid::now_v7().simple());
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = admin.close().await;
        let url = with_database(&base, &name);
        let db = Database::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot open test database {name}: {e}"));
        Some(TestDb {
            db,
            url,
            pg: Some((base, name)),
            sqlite_path: None,
            cleaned: false,
        })
    }

    /// The URL of this test's database (to open more connections or child processes).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.db.engine()
    }

    /// A queue handle on this database.
    pub fn queue(&self) -> Queue {
        Queue::new(self.db.clone())
    }

    /// Closes the pool and deletes the database.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        self.db.close().await;
        if let Some((base, name)) = self.pg.take() {
            drop_pg(&base, &name).await;
        }
        if let Some(path) = self.sqlite_path.take() {
            remove_sqlite(&path);
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        if let Some(path) = self.sqlite_path.take() {
            remove_sqlite(&path);
        }
        if let Some((base, name)) = self.pg.take() {
            // Best effort, on a thread of its own: Drop cannot await.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_pg(&base, &name));
                }
            })
            .join();
        }
    }
}

async fn drop_pg(base: &str, name: &str) {
    if let Ok(mut admin) = PgConnection::connect(base).await {
        let _ = admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await;
        let _ = admin.close().await;
    }
}

fn remove_sqlite(path: &std::path::Path) {
    let _ = std::fs::remove_file(path);
    for suffix in ["-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// `base` with its database name replaced by `name`.
pub fn with_database(base: &str, name: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base, None),
    };
    let authority_start = head.find("://").map_or(0, |i| i + 3);
    let path_start = head[authority_start..]
        .find('/')
        .map_or(head.len(), |i| authority_start + i);
    let mut url = format!("{}/{name}", &head[..path_start]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

/// Runs each named async scenario `fn name(db: &TestDb)` against both engines: generates
/// `sqlite::name` and `postgres::name` tests, each on a fresh database (cleaned up after a
/// pass; dropped best effort after a failure). The calling crate needs `tokio` with the
/// `macros` and `rt-multi-thread` features.
///
/// ```ignore
/// async fn inserts(db: &TestDb) { /* ... */ }
/// flowstone_queue::both_engines!(inserts);
/// ```
#[macro_export]
macro_rules! both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::testing::TestDb::sqlite().await;
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::testing::TestDb::postgres().await else { return };
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            super::with_database("postgres://u@h:5432/test?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://u@h", "x"),
            "postgres://u@h/x"
        );
    }
}
