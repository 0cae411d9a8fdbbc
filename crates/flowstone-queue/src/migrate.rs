//! A small migration runner that records what it applied in its OWN table,
//! `flowstone_migrations(component, version, name, applied_at)`, never in sqlx's
//! `_sqlx_migrations`, so it cannot collide with the application's migrations. Each
//! component (this queue is `"queue"`; the core crate uses its own name) has its own
//! version sequence in the same table.
//!
//! Concurrent runners (several nodes starting at once) are serialised: a PostgreSQL advisory
//! lock, or `BEGIN IMMEDIATE` on SQLite. Each migration runs in a transaction together with
//! its record, so a failure leaves the database at the previous version.

use sqlx::{Connection, Executor, Row};

use crate::database::{Database, Pool};
use crate::error::{Error, Result};

/// One schema step, with its SQL for each engine. The SQL may hold several statements.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version, increasing from 1 within a component.
    pub version: i64,
    /// Short name, recorded with the version.
    pub name: &'static str,
    /// SQL for SQLite.
    pub sqlite: &'static str,
    /// SQL for PostgreSQL.
    pub postgres: &'static str,
}

/// Applies a component's migrations in version order, each at most once.
#[derive(Debug, Clone, Copy)]
pub struct Migrator {
    component: &'static str,
    migrations: &'static [Migration],
}

/// Key of the PostgreSQL advisory lock that serialises migration runners ("fsmigrat").
const PG_LOCK_KEY: i64 = 0x6673_6d69_6772_6174;

const CREATE_TABLE_SQLITE: &str = "CREATE TABLE IF NOT EXISTS flowstone_migrations (
    component TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (component, version))";
const CREATE_TABLE_PG: &str = "CREATE TABLE IF NOT EXISTS flowstone_migrations (
    component text NOT NULL, version bigint NOT NULL, name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version))";

impl Migrator {
    /// A runner for `component`'s migrations (versions must increase).
    pub const fn new(component: &'static str, migrations: &'static [Migration]) -> Self {
        Self {
            component,
            migrations,
        }
    }

    /// The component name.
    pub fn component(&self) -> &'static str {
        self.component
    }

    /// Applies every migration not yet recorded; returns the versions applied now.
    pub async fn run(&self, db: &Database) -> Result<Vec<i64>> {
        match db.pool() {
            Pool::Postgres(pool) => {
                let mut conn = pool.acquire().await?;
                conn.execute(sqlx::query("SELECT pg_advisory_lock($1)").bind(PG_LOCK_KEY))
                    .await?;
                let outcome = self.run_pg(&mut conn).await;
                let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(PG_LOCK_KEY)
                    .execute(&mut *conn)
                    .await;
                if unlocked.is_err() {
                    // Closing the session releases the lock for sure.
                    conn.close_on_drop();
                }
                outcome
            }
            Pool::Sqlite(pool) => {
                let mut conn = pool.acquire().await?;
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                tx.execute(CREATE_TABLE_SQLITE).await?;
                let rows =
                    sqlx::query("SELECT version FROM flowstone_migrations WHERE component = ?")
                        .bind(self.component)
                        .fetch_all(&mut *tx)
                        .await?;
                let pending = self.pending(versions(rows)?)?;
                let mut done = Vec::new();
                for m in pending {
                    sqlx::raw_sql(m.sqlite)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| self.failed(m, e))?;
                    sqlx::query(
                        "INSERT INTO flowstone_migrations (component, version, name) VALUES (?, ?, ?)",
                    )
                    .bind(self.component)
                    .bind(m.version)
                    .bind(m.name)
                    .execute(&mut *tx)
                    .await?;
                    done.push(m.version);
                }
                tx.commit().await?;
                Ok(done)
            }
        }
    }

    async fn run_pg(&self, conn: &mut sqlx::PgConnection) -> Result<Vec<i64>> {
        conn.execute(CREATE_TABLE_PG).await?;
        let rows = sqlx::query("SELECT version FROM flowstone_migrations WHERE component = $1")
            .bind(self.component)
            .fetch_all(&mut *conn)
            .await?;
        let pending = self.pending(versions(rows)?)?;
        let mut done = Vec::new();
        for m in pending {
            let mut tx = conn.begin().await?;
            sqlx::raw_sql(m.postgres)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.failed(m, e))?;
            sqlx::query(
                "INSERT INTO flowstone_migrations (component, version, name) VALUES ($1, $2, $3)",
            )
            .bind(self.component)
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            done.push(m.version);
        }
        Ok(done)
    }

    fn pending(&self, applied: Vec<i64>) -> Result<Vec<&'static Migration>> {
        let known = self.migrations.iter().map(|m| m.version).max().unwrap_or(0);
        if let Some(&found) = applied.iter().max()
            && found > known
        {
            return Err(Error::NewerSchema {
                component: self.component.to_string(),
                found,
                known,
            });
        }
        Ok(self
            .migrations
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .collect())
    }

    fn failed(&self, m: &Migration, source: sqlx::Error) -> Error {
        Error::Migration {
            component: self.component.to_string(),
            version: m.version,
            name: m.name.to_string(),
            source,
        }
    }
}

fn versions<R: Row>(rows: Vec<R>) -> Result<Vec<i64>>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter()
        .map(|r| r.try_get::<i64, _>(0).map_err(Error::from))
        .collect()
}

/// The queue's own migrations (component `"queue"`).
pub static QUEUE_MIGRATIONS: Migrator = Migrator::new(
    "queue",
    &[Migration {
        version: 1,
        name: "jobs",
        sqlite: include_str!("../migrations/sqlite/0001_jobs.sql"),
        postgres: include_str!("../migrations/postgres/0001_jobs.sql"),
    }],
);
