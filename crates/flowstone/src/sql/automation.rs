//! Automation state on SQLite and PostgreSQL: switches (`flowstone_automation_state`,
//! migration v5), cursors, launch keys and tick records (migration v6). Small tables written
//! a few times a second at most, so both dialects live here; every SELECT yields the same
//! columns (times as microseconds, JSON as text).

use async_trait::async_trait;
use flowstone_queue::Database;

use super::by_engine;
use super::rows::{from_micros, to_micros};
use super::sql_error;
use crate::automation::{AutomationStore, Origin, TickQuery, TickRecord, TickStatus};
use crate::error::{Error, Result};
use crate::ids::BackfillId;
use chrono::{DateTime, Utc};
use sqlx::Row;

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

    async fn cursor(&self, kind: &str, name: &str) -> Result<Option<String>> {
        let err = |e| sql_error("read an automation cursor", e);
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlx::query_scalar(
                "SELECT cursor FROM flowstone_automation_cursors WHERE kind = ?1 AND name = ?2",
            )
            .bind(kind).bind(name)
            .fetch_optional(pool).await.map_err(err),
            postgres: sqlx::query_scalar(
                "SELECT cursor FROM flowstone_automation_cursors WHERE kind = $1 AND name = $2",
            )
            .bind(kind).bind(name)
            .fetch_optional(pool).await.map_err(err),
        })
    }

    async fn set_cursor(&self, kind: &str, name: &str, cursor: &str) -> Result<()> {
        let err = |e| sql_error("set an automation cursor", e);
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlx::query(
                "INSERT INTO flowstone_automation_cursors (kind, name, cursor, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, name) DO UPDATE
                     SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            )
            .bind(kind).bind(name).bind(cursor).bind(to_micros(Utc::now()))
            .execute(pool).await.map(drop).map_err(err)?,
            postgres: sqlx::query(
                "INSERT INTO flowstone_automation_cursors (kind, name, cursor, updated_at)
                 VALUES ($1, $2, $3, now())
                 ON CONFLICT (kind, name) DO UPDATE
                     SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            )
            .bind(kind).bind(name).bind(cursor)
            .execute(pool).await.map(drop).map_err(err)?,
        });
        Ok(())
    }

    async fn claim_launches(
        &self,
        kind: &str,
        name: &str,
        keys: &[String],
        backfill: BackfillId,
    ) -> Result<Vec<BackfillId>> {
        let err = |e| sql_error("claim automation launch keys", e);
        let id = backfill.to_string();
        let mut holders = std::collections::HashMap::with_capacity(keys.len());
        // Insert-if-absent, then read who holds the keys that were there: both statements
        // are idempotent, so a retry after a lost connection claims nothing twice.
        for chunk in keys.chunks(1000) {
            let json = serde_json::to_string(chunk)?;
            // Most keys are new: those inserted need no second look.
            let inserted: Vec<String> = by_engine!(self.db.pool(), pool => {
                sqlite: sqlx::query_scalar(
                    "INSERT INTO flowstone_automation_launches
                         (kind, name, launch_key, backfill_id, created_at)
                     SELECT ?1, ?2, j.value, ?3, ?4 FROM json_each(?5) AS j WHERE true
                     ON CONFLICT (kind, name, launch_key) DO NOTHING
                     RETURNING launch_key",
                )
                .bind(kind).bind(name).bind(&id).bind(to_micros(Utc::now())).bind(&json)
                .fetch_all(pool).await.map_err(err)?,
                postgres: sqlx::query_scalar(
                    "INSERT INTO flowstone_automation_launches
                         (kind, name, launch_key, backfill_id, created_at)
                     SELECT $1, $2, j, $3, now() FROM jsonb_array_elements_text($4::jsonb) AS j
                     ON CONFLICT (kind, name, launch_key) DO NOTHING
                     RETURNING launch_key",
                )
                .bind(kind).bind(name).bind(&id).bind(&json)
                .fetch_all(pool).await.map_err(err)?,
            });
            let all_new = inserted.len() == chunk.len();
            holders.extend(inserted.into_iter().map(|k| (k, id.clone())));
            if all_new {
                continue;
            }
            let rows: Vec<(String, String)> = by_engine!(self.db.pool(), pool => {
                sqlite: sqlx::query_as(
                    "SELECT l.launch_key, l.backfill_id FROM flowstone_automation_launches l
                       JOIN json_each(?3) AS j ON l.launch_key = j.value
                      WHERE l.kind = ?1 AND l.name = ?2",
                )
                .bind(kind).bind(name).bind(&json)
                .fetch_all(pool).await.map_err(err)?,
                postgres: sqlx::query_as(
                    "SELECT l.launch_key, l.backfill_id FROM flowstone_automation_launches l
                      WHERE l.kind = $1 AND l.name = $2
                        AND l.launch_key IN (SELECT jsonb_array_elements_text($3::jsonb))",
                )
                .bind(kind).bind(name).bind(&json)
                .fetch_all(pool).await.map_err(err)?,
            });
            holders.extend(rows);
        }
        keys.iter()
            .map(|key| {
                let holder = holders.get(key).ok_or_else(|| {
                    Error::store(format!(
                        "launch key '{key}' of {kind} '{name}' was not stored"
                    ))
                })?;
                holder.parse::<BackfillId>().map_err(|_| {
                    Error::store(format!(
                        "launch key '{key}' names backfill '{holder}', not an id"
                    ))
                })
            })
            .collect()
    }

    async fn record_tick(&self, t: &TickRecord) -> Result<()> {
        let err = |e| sql_error("record an automation tick", e);
        let backfills = serde_json::to_string(&t.backfills)?;
        let launched = i64::try_from(t.launched).unwrap_or(i64::MAX);
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlx::query(
                "INSERT INTO flowstone_automation_ticks
                     (kind, name, at, status, detail, launched, backfills)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .bind(t.origin.as_str()).bind(&t.name).bind(to_micros(t.at)).bind(t.status.as_str())
            .bind(t.detail.as_deref()).bind(launched).bind(backfills)
            .execute(pool).await.map(drop).map_err(err)?,
            postgres: sqlx::query(
                "INSERT INTO flowstone_automation_ticks
                     (kind, name, at, status, detail, launched, backfills)
                 VALUES ($1, $2, to_timestamp($3::float8 / 1000000), $4, $5, $6, $7::jsonb)",
            )
            .bind(t.origin.as_str()).bind(&t.name).bind(to_micros(t.at) as f64)
            .bind(t.status.as_str()).bind(t.detail.as_deref()).bind(launched).bind(backfills)
            .execute(pool).await.map(drop).map_err(err)?,
        });
        Ok(())
    }

    async fn ticks(&self, q: &TickQuery) -> Result<Vec<TickRecord>> {
        let err = |e| sql_error("read automation ticks", e);
        let origin = q.origin.map(Origin::as_str);
        let limit = i64::try_from(q.limit_or_default()).unwrap_or(i64::MAX);
        let rows = by_engine!(self.db.pool(), pool => {
            sqlite: sqlx::query(
                "SELECT kind, name, at, status, detail, launched, backfills
                   FROM flowstone_automation_ticks
                  WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR name = ?2)
                  ORDER BY id DESC LIMIT ?3",
            )
            .bind(origin).bind(q.name.as_deref()).bind(limit)
            .fetch_all(pool).await.map_err(err)?
            .iter().map(tick_of).collect::<Result<Vec<_>>>()?,
            postgres: sqlx::query(
                "SELECT kind, name, (extract(epoch FROM at) * 1000000)::int8 AS at, status,
                        detail, launched, backfills::text AS backfills
                   FROM flowstone_automation_ticks
                  WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR name = $2)
                  ORDER BY id DESC LIMIT $3",
            )
            .bind(origin).bind(q.name.as_deref()).bind(limit)
            .fetch_all(pool).await.map_err(err)?
            .iter().map(tick_of).collect::<Result<Vec<_>>>()?,
        });
        Ok(rows)
    }

    async fn prune_ticks(&self, before: DateTime<Utc>) -> Result<u64> {
        let err = |e| sql_error("prune automation ticks", e);
        let done = by_engine!(self.db.pool(), pool => {
            sqlite: sqlx::query("DELETE FROM flowstone_automation_ticks WHERE at < ?1")
                .bind(to_micros(before))
                .execute(pool).await.map_err(err)?.rows_affected(),
            postgres: sqlx::query(
                "DELETE FROM flowstone_automation_ticks
                  WHERE at < to_timestamp($1::float8 / 1000000)",
            )
            .bind(to_micros(before) as f64)
            .execute(pool).await.map_err(err)?.rows_affected(),
        });
        Ok(done)
    }
}

/// A tick record from a row of either engine.
fn tick_of<R>(row: &R) -> Result<TickRecord>
where
    R: Row,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let read = |e: sqlx::Error| sql_error("read an automation tick", e);
    let kind: String = row.try_get("kind").map_err(read)?;
    let status: String = row.try_get("status").map_err(read)?;
    let backfills: String = row.try_get("backfills").map_err(read)?;
    let launched: i64 = row.try_get("launched").map_err(read)?;
    Ok(TickRecord {
        origin: Origin::parse(&kind)
            .ok_or_else(|| Error::store(format!("a tick of unknown kind '{kind}'")))?,
        name: row.try_get("name").map_err(read)?,
        at: from_micros(row.try_get("at").map_err(read)?)?,
        status: TickStatus::parse(&status)
            .ok_or_else(|| Error::store(format!("a tick with unknown status '{status}'")))?,
        detail: row.try_get("detail").map_err(read)?,
        launched: usize::try_from(launched).unwrap_or(0),
        backfills: serde_json::from_str(&backfills)?,
    })
}
