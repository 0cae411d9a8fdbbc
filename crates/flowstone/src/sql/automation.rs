//! The automation switches on SQLite and PostgreSQL (`flowstone_automation_state`, migration
//! v5): one tiny table, so both dialects live here.

use async_trait::async_trait;
use flowstone_queue::Database;

use super::by_engine;
use super::sql_error;
use crate::automation::AutomationStore;
use crate::error::Result;

/// Automation switches in the database.
#[derive(Debug, Clone)]
pub struct SqlAutomation {
    db: Database,
}

impl SqlAutomation {
    /// Switches on `db` (run [`super::migrate`] once first).
    pub fn new(db: Database) -> Self {
        SqlAutomation { db }
    }
}

#[async_trait]
impl AutomationStore for SqlAutomation {
    async fn enabled(&self, kind: &str, name: &str) -> Result<Option<bool>> {
        let err = |e| sql_error("read an automation switch", e);
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlx::query_scalar(
                "SELECT enabled FROM flowstone_automation_state WHERE kind = ?1 AND name = ?2",
            )
            .bind(kind).bind(name)
            .fetch_optional(pool).await.map_err(err),
            postgres: sqlx::query_scalar(
                "SELECT enabled FROM flowstone_automation_state WHERE kind = $1 AND name = $2",
            )
            .bind(kind).bind(name)
            .fetch_optional(pool).await.map_err(err),
        })
    }

    async fn set_enabled(&self, kind: &str, name: &str, on: bool) -> Result<()> {
        let err = |e| sql_error("set an automation switch", e);
        let now = chrono::Utc::now();
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlx::query(
                "INSERT INTO flowstone_automation_state (kind, name, enabled, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, name) DO UPDATE
                     SET enabled = excluded.enabled, updated_at = excluded.updated_at",
            )
            .bind(kind).bind(name).bind(on).bind(now.timestamp_micros())
            .execute(pool).await.map(drop).map_err(err)?,
            postgres: sqlx::query(
                "INSERT INTO flowstone_automation_state (kind, name, enabled, updated_at)
                 VALUES ($1, $2, $3, now())
                 ON CONFLICT (kind, name) DO UPDATE
                     SET enabled = excluded.enabled, updated_at = excluded.updated_at",
            )
            .bind(kind).bind(name).bind(on)
            .execute(pool).await.map(drop).map_err(err)?,
        });
        Ok(())
    }
}
