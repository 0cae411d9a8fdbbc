//! A small migration runner that records what it applied in its OWN table,
//! `flowstone_migrations(component, version, name, applied_at, checksum)`, never in sqlx's
//! `_sqlx_migrations`, so it cannot collide with the application's migrations. Each
//! component (this queue is `"queue"`; the core crate uses its own name) has its own
//! version sequence in the same table.
//!
//! Each applied migration's SQL is recorded by checksum (FNV-1a 64 of the engine's SQL,
//! carriage returns ignored so a Windows checkout hashes alike). A runner whose migration
//! differs from the one applied refuses to start: the database was built by other SQL than
//! this build ships, and re-applying or skipping it would both be wrong. Rows recorded before
//! checksums existed get theirs on the next run (they were applied from the same file).
//!
//! Concurrent runners (several nodes starting at once) are serialised: a PostgreSQL advisory
//! lock, or `BEGIN IMMEDIATE` on SQLite. Each migration runs in a transaction together with
//! its record, so a failure leaves the database at the previous version.

use sqlx::Row;

use crate::database::{Database, Engine};
use crate::engine::by_engine;
#[cfg(feature = "postgres")]
use crate::engine::postgres;
#[cfg(feature = "sqlite")]
use crate::engine::sqlite;
use crate::error::{Error, Result};

/// One schema step, with its SQL for each engine. The SQL may hold several statements.
/// Once applied anywhere, a migration must not change: put changes in a new one.
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

impl Migration {
    /// The SQL this migration runs on `engine`.
    pub fn sql(&self, engine: Engine) -> &'static str {
        match engine {
            #[cfg(feature = "sqlite")]
            Engine::Sqlite => self.sqlite,
            #[cfg(feature = "postgres")]
            Engine::Postgres => self.postgres,
        }
    }

    /// The checksum recorded for this migration on `engine`: FNV-1a 64 of its SQL (without
    /// carriage returns), as 16 hex digits.
    pub fn checksum(&self, engine: Engine) -> String {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let hash = self
            .sql(engine)
            .bytes()
            .filter(|&b| b != b'\r')
            .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME));
        format!("{hash:016x}")
    }
}

/// Applies a component's migrations in version order, each at most once.
#[derive(Debug, Clone, Copy)]
pub struct Migrator {
    component: &'static str,
    migrations: &'static [Migration],
}

/// What a run has to do, decided from the recorded rows before anything is written.
pub(crate) struct Plan {
    /// Applied rows without a checksum yet: (version, checksum to record).
    pub backfill: Vec<(i64, String)>,
    /// Migrations not applied yet, in version order, with their checksums.
    pub pending: Vec<(&'static Migration, String)>,
}

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

    /// The migrations, oldest first.
    pub fn migrations(&self) -> &'static [Migration] {
        self.migrations
    }

    /// Applies every migration not yet recorded; returns the versions applied now. Fails,
    /// changing nothing, when an applied migration's SQL differs from this build's
    /// ([`Error::MigrationChanged`]) or the database is newer than this build.
    pub async fn run(&self, db: &Database) -> Result<Vec<i64>> {
        by_engine!(db.pool(), pool => {
            sqlite: sqlite::run_migrations(pool, self).await,
            postgres: postgres::run_migrations(pool, self).await,
        })
    }

    /// Compares the recorded rows `(version, checksum)` with this build's migrations.
    pub(crate) fn plan(&self, engine: Engine, applied: Vec<(i64, Option<String>)>) -> Result<Plan> {
        let known = self.migrations.iter().map(|m| m.version).max().unwrap_or(0);
        if let Some(found) = applied.iter().map(|(v, _)| *v).max()
            && found > known
        {
            return Err(Error::NewerSchema {
                component: self.component.to_string(),
                found,
                known,
            });
        }
        let mut plan = Plan {
            backfill: Vec::new(),
            pending: Vec::new(),
        };
        for m in self.migrations {
            let current = m.checksum(engine);
            match applied.iter().find(|(v, _)| *v == m.version) {
                None => plan.pending.push((m, current)),
                Some((_, None)) => plan.backfill.push((m.version, current)),
                Some((_, Some(recorded))) if *recorded == current => {}
                Some((_, Some(recorded))) => {
                    return Err(Error::MigrationChanged {
                        component: self.component.to_string(),
                        version: m.version,
                        name: m.name.to_string(),
                        recorded: recorded.clone(),
                        current,
                    });
                }
            }
        }
        Ok(plan)
    }

    pub(crate) fn failed(&self, m: &Migration, source: sqlx::Error) -> Error {
        Error::Migration {
            component: self.component.to_string(),
            version: m.version,
            name: m.name.to_string(),
            source,
        }
    }
}

/// Decodes `(version, checksum)` rows.
pub(crate) fn recorded<R: Row>(rows: Vec<R>) -> Result<Vec<(i64, Option<String>)>>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// The queue's own migrations (component `"queue"`).
pub static QUEUE_MIGRATIONS: Migrator = Migrator::new(
    "queue",
    &[
        Migration {
            version: 1,
            name: "jobs",
            sqlite: include_str!("../migrations/sqlite/0001_jobs.sql"),
            postgres: include_str!("../migrations/postgres/0001_jobs.sql"),
        },
        Migration {
            version: 2,
            name: "leases",
            sqlite: include_str!("../migrations/sqlite/0002_leases.sql"),
            postgres: include_str!("../migrations/postgres/0002_leases.sql"),
        },
        Migration {
            version: 3,
            name: "node_queues",
            sqlite: include_str!("../migrations/sqlite/0003_node_queues.sql"),
            postgres: include_str!("../migrations/postgres/0003_node_queues.sql"),
        },
        Migration {
            version: 4,
            name: "served_kinds",
            sqlite: include_str!("../migrations/sqlite/0004_served_kinds.sql"),
            postgres: include_str!("../migrations/postgres/0004_served_kinds.sql"),
        },
        Migration {
            version: 5,
            name: "job_dependencies",
            sqlite: include_str!("../migrations/sqlite/0005_job_dependencies.sql"),
            postgres: include_str!("../migrations/postgres/0005_job_dependencies.sql"),
        },
    ],
);

// The vectors compare both engines' checksums.
#[cfg(all(test, feature = "sqlite", feature = "postgres"))]
mod tests {
    use super::*;

    fn migration(sql: &'static str) -> Migration {
        Migration {
            version: 1,
            name: "m",
            sqlite: sql,
            postgres: sql,
        }
    }

    #[test]
    fn checksum_is_fnv1a_64_of_the_engines_sql() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(migration("").checksum(Engine::Sqlite), "cbf29ce484222325");
        assert_eq!(
            migration("a").checksum(Engine::Postgres),
            "af63dc4c8601ec8c"
        );
        let split = Migration {
            postgres: "b",
            ..migration("a")
        };
        assert_ne!(
            split.checksum(Engine::Sqlite),
            split.checksum(Engine::Postgres)
        );
    }

    #[test]
    fn checksum_ignores_carriage_returns() {
        assert_eq!(
            migration("CREATE TABLE t (id int);\r\n").checksum(Engine::Sqlite),
            migration("CREATE TABLE t (id int);\n").checksum(Engine::Sqlite)
        );
    }
}
