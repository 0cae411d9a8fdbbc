//! Backfill records on SQLite and PostgreSQL (`flowstone_backfills` and
//! `flowstone_backfill_outcomes`, migration v4).
//!
//! Small and rarely written (a backfill updates its row about once a second), so both
//! dialects live here: the SQL differs only in parameter style, JSON and time types, and every
//! SELECT yields the same columns (JSON as text, times as microseconds).

use async_trait::async_trait;
use flowstone_queue::Database;
use sqlx::Row;

use super::by_engine;
use super::rows::{from_micros, to_micros};
use super::sql_error;
use crate::backfill::{
    BackfillCounts, BackfillRecord, BackfillStatus, BackfillStore, PartitionRecord,
};
use crate::error::{Error, Result};
use crate::ids::BackfillId;
use crate::partition::Partition;
use chrono::{TimeDelta, Utc};

/// Backfill records in the database.
#[derive(Debug, Clone)]
pub struct SqlBackfills {
    db: Database,
}

impl SqlBackfills {
    /// Records on `db` (run [`super::migrate`] once first).
    pub fn new(db: Database) -> Self {
        SqlBackfills { db }
    }
}

/// The statuses an update may not take a cancelling backfill out of.
const FINAL: &str = "('completed', 'completed_with_failures', 'cancelled')";

#[cfg(feature = "sqlite")]
const SELECT_SQLITE: &str = "SELECT id, request, status, counts, created_at, updated_at, \
     finished_at, owner FROM flowstone_backfills";
#[cfg(feature = "postgres")]
const SELECT_POSTGRES: &str = "SELECT id, request::text AS request, status, counts::text AS counts, \
     (extract(epoch FROM created_at) * 1000000)::int8 AS created_at, \
     (extract(epoch FROM updated_at) * 1000000)::int8 AS updated_at, \
     (extract(epoch FROM finished_at) * 1000000)::int8 AS finished_at, owner \
     FROM flowstone_backfills";

fn record_of<R>(row: &R) -> Result<BackfillRecord>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database>,
{
    let read = |e: sqlx::Error| sql_error("read a backfill record", e);
    let id: String = row.try_get("id").map_err(read)?;
    let status: String = row.try_get("status").map_err(read)?;
    let request: String = row.try_get("request").map_err(read)?;
    let counts: String = row.try_get("counts").map_err(read)?;
    let finished: Option<i64> = row.try_get("finished_at").map_err(read)?;
    Ok(BackfillRecord {
        id: id.parse()?,
        request: serde_json::from_str(&request)?,
        status: BackfillStatus::parse(&status).ok_or_else(|| {
            Error::store(format!("backfill {id} has the unknown status '{status}'"))
        })?,
        counts: serde_json::from_str(&counts)?,
        created_at: from_micros(row.try_get("created_at").map_err(read)?)?,
        updated_at: from_micros(row.try_get("updated_at").map_err(read)?)?,
        finished_at: finished.map(from_micros).transpose()?,
        owner: row.try_get("owner").map_err(read)?,
    })
}

fn outcome_of<R>(row: &R) -> Result<PartitionRecord>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database>,
{
    let read = |e: sqlx::Error| sql_error("read a backfill outcome", e);
    let partition: String = row.try_get("partition_key").map_err(read)?;
    Ok(PartitionRecord {
        asset: row.try_get("asset").map_err(read)?,
        partition: Partition::decode(&partition)?,
        outcome: row.try_get("outcome").map_err(read)?,
        error: row.try_get("error").map_err(read)?,
    })
}

#[async_trait]
impl BackfillStore for SqlBackfills {
    async fn create(&self, r: &BackfillRecord) -> Result<bool> {
        let (id, request, counts) = (
            r.id.to_string(),
            serde_json::to_string(&r.request)?,
            serde_json::to_string(&r.counts)?,
        );
        let (created, updated) = (to_micros(r.created_at), to_micros(r.updated_at));
        let status = r.status.as_str();
        let owner = r.owner.as_deref();
        let err = |e| sql_error("store a backfill", e);
        let stored = by_engine!(self.db.pool(), pool => {
            sqlite: sqlx::query(
                "INSERT INTO flowstone_backfills
                     (id, request, status, counts, created_at, updated_at, owner)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id).bind(request).bind(status).bind(counts).bind(created).bind(updated)
            .bind(owner)
            .execute(pool).await.map_err(err)?.rows_affected(),
            postgres: sqlx::query(
                "INSERT INTO flowstone_backfills
                     (id, request, status, counts, created_at, updated_at, owner)
                 VALUES ($1, $2::jsonb, $3, $4::jsonb, to_timestamp($5::float8 / 1000000),
                         to_timestamp($6::float8 / 1000000), $7)
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(id).bind(request).bind(status).bind(counts).bind(created as f64)
            .bind(updated as f64).bind(owner)
            .execute(pool).await.map_err(err)?.rows_affected(),
        });
        Ok(stored == 1)
    }

    async fn take(&self, id: BackfillId, owner: &str, stale_after: TimeDelta) -> Result<bool> {
        let id = id.to_string();
        let err = |e| sql_error("take a backfill to run", e);
        // One statement: of two processes taking the same backfill, the second finds it
        // freshly updated and takes nothing.
        let taken = by_engine!(self.db.pool(), pool => {
            sqlite: sqlx::query(
                "UPDATE flowstone_backfills
                    SET status = CASE status WHEN 'requested' THEN 'running' ELSE status END,
                        owner = ?2, updated_at = ?3
                  WHERE id = ?1
                    AND (status = 'requested'
                         OR (status IN ('running', 'cancelling') AND updated_at < ?4))",
            )
            .bind(id).bind(owner).bind(to_micros(Utc::now())).bind(to_micros(Utc::now() - stale_after))
            .execute(pool).await.map_err(err)?.rows_affected(),
            postgres: sqlx::query(
                "UPDATE flowstone_backfills
                    SET status = CASE status WHEN 'requested' THEN 'running' ELSE status END,
                        owner = $2, updated_at = now()
                  WHERE id = $1
                    AND (status = 'requested'
                         OR (status IN ('running', 'cancelling')
                             AND updated_at < now() - make_interval(secs => $3::float8)))",
            )
            .bind(id).bind(owner).bind(stale_after.as_seconds_f64())
            .execute(pool).await.map_err(err)?.rows_affected(),
        });
        Ok(taken == 1)
    }

    async fn update(
        &self,
        id: BackfillId,
        status: BackfillStatus,
        counts: &BackfillCounts,
        owner: Option<&str>,
    ) -> Result<()> {
        let (key, counts) = (id.to_string(), serde_json::to_string(counts)?);
        let status = status.as_str();
        let err = |e| sql_error("update a backfill", e);
        let done = by_engine!(self.db.pool(), pool => {
            sqlite: sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE flowstone_backfills SET
                     status = CASE WHEN status = 'cancelling' AND ?2 NOT IN {FINAL}
                                   THEN status ELSE ?2 END,
                     counts = ?3, owner = ?4, updated_at = ?5,
                     finished_at = CASE WHEN ?2 IN {FINAL} THEN ?5 ELSE finished_at END
                  WHERE id = ?1 AND status NOT IN {FINAL}"
            )))
            .bind(key).bind(status).bind(counts).bind(owner)
            .bind(to_micros(chrono::Utc::now()))
            .execute(pool).await.map_err(err)?.rows_affected(),
            postgres: sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE flowstone_backfills SET
                     status = CASE WHEN status = 'cancelling' AND $2 NOT IN {FINAL}
                                   THEN status ELSE $2 END,
                     counts = $3::jsonb, owner = $4, updated_at = now(),
                     finished_at = CASE WHEN $2 IN {FINAL} THEN now() ELSE finished_at END
                  WHERE id = $1 AND status NOT IN {FINAL}"
            )))
            .bind(key).bind(status).bind(counts).bind(owner)
            .execute(pool).await.map_err(err)?.rows_affected(),
        });
        // Nothing changed: the backfill has ended (left as it ended), or it does not exist.
        if done == 0 && self.get(id).await?.is_none() {
            return Err(crate::backfill::not_found(id));
        }
        Ok(())
    }

    async fn get(&self, id: BackfillId) -> Result<Option<BackfillRecord>> {
        let key = id.to_string();
        let err = |e| sql_error("read a backfill", e);
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_SQLITE} WHERE id = ?1")))
                .bind(key).fetch_optional(pool).await.map_err(err)?
                .map(|row| record_of(&row)).transpose(),
            postgres: sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_POSTGRES} WHERE id = $1")))
                .bind(key).fetch_optional(pool).await.map_err(err)?
                .map(|row| record_of(&row)).transpose(),
        })
    }

    async fn list(&self, limit: usize) -> Result<Vec<BackfillRecord>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let err = |e| sql_error("list backfills", e);
        // Ids are UUIDv7: their text sorts by creation.
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_SQLITE} ORDER BY id DESC LIMIT ?1")))
                .bind(limit).fetch_all(pool).await.map_err(err)?
                .iter().map(record_of).collect(),
            postgres: sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_POSTGRES} ORDER BY id DESC LIMIT $1")))
                .bind(limit).fetch_all(pool).await.map_err(err)?
                .iter().map(record_of).collect(),
        })
    }

    async fn unfinished(&self) -> Result<Vec<BackfillRecord>> {
        let err = |e| sql_error("list unfinished backfills", e);
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlx::query(sqlx::AssertSqlSafe(format!(
                "{SELECT_SQLITE} WHERE status NOT IN {FINAL} ORDER BY created_at, id"
            )))
            .fetch_all(pool).await.map_err(err)?
            .iter().map(record_of).collect(),
            postgres: sqlx::query(sqlx::AssertSqlSafe(format!(
                "{SELECT_POSTGRES} WHERE status NOT IN {FINAL} ORDER BY created_at, id"
            )))
            .fetch_all(pool).await.map_err(err)?
            .iter().map(record_of).collect(),
        })
    }

    async fn request_cancel(&self, id: BackfillId) -> Result<Option<BackfillRecord>> {
        let key = id.to_string();
        let err = |e| sql_error("cancel a backfill", e);
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE flowstone_backfills SET status = 'cancelling', updated_at = ?2
                  WHERE id = ?1 AND status NOT IN {FINAL}"
            )))
            .bind(&key).bind(to_micros(chrono::Utc::now()))
            .execute(pool).await.map(drop).map_err(err)?,
            postgres: sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE flowstone_backfills SET status = 'cancelling', updated_at = now()
                  WHERE id = $1 AND status NOT IN {FINAL}"
            )))
            .bind(&key)
            .execute(pool).await.map(drop).map_err(err)?,
        });
        self.get(id).await
    }

    async fn record_outcomes(&self, id: BackfillId, outcomes: Vec<PartitionRecord>) -> Result<()> {
        let key = id.to_string();
        let err = |e| sql_error("store backfill outcomes", e);
        for chunk in outcomes.chunks(1000) {
            let rows: Vec<(&str, String, &str, Option<&str>)> = chunk
                .iter()
                .map(|o| {
                    (
                        o.asset.as_str(),
                        o.partition.encode(),
                        o.outcome.as_str(),
                        o.error.as_deref(),
                    )
                })
                .collect();
            let json = serde_json::to_string(&rows)?;
            by_engine!(self.db.pool(), pool => {
                sqlite: sqlx::query(
                    "INSERT INTO flowstone_backfill_outcomes
                         (backfill_id, asset, partition_key, outcome, error)
                     SELECT ?1, j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3
                       FROM json_each(?2) AS j WHERE true
                     ON CONFLICT (backfill_id, asset, partition_key)
                         DO UPDATE SET outcome = excluded.outcome, error = excluded.error",
                )
                .bind(&key).bind(json)
                .execute(pool).await.map(drop).map_err(err)?,
                postgres: sqlx::query(
                    "INSERT INTO flowstone_backfill_outcomes
                         (backfill_id, asset, partition_key, outcome, error)
                     SELECT $1, j ->> 0, j ->> 1, j ->> 2, j ->> 3
                       FROM jsonb_array_elements($2::jsonb) AS j
                     ON CONFLICT (backfill_id, asset, partition_key)
                         DO UPDATE SET outcome = excluded.outcome, error = excluded.error",
                )
                .bind(&key).bind(json)
                .execute(pool).await.map(drop).map_err(err)?,
            });
        }
        Ok(())
    }

    async fn outcomes(
        &self,
        id: BackfillId,
        after: Option<(&str, &Partition)>,
        limit: usize,
    ) -> Result<Vec<PartitionRecord>> {
        let key = id.to_string();
        let (asset, partition) = match after {
            Some((asset, partition)) => (asset.to_owned(), partition.encode()),
            None => (String::new(), String::new()),
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let err = |e| sql_error("read backfill outcomes", e);
        by_engine!(self.db.pool(), pool => {
            sqlite: sqlx::query(
                "SELECT asset, partition_key, outcome, error FROM flowstone_backfill_outcomes
                  WHERE backfill_id = ?1 AND (asset, partition_key) > (?2, ?3)
                  ORDER BY asset, partition_key LIMIT ?4",
            )
            .bind(key).bind(asset).bind(partition).bind(limit)
            .fetch_all(pool).await.map_err(err)?
            .iter().map(outcome_of).collect(),
            postgres: sqlx::query(
                "SELECT asset, partition_key, outcome, error FROM flowstone_backfill_outcomes
                  WHERE backfill_id = $1 AND (asset, partition_key) > ($2, $3)
                  ORDER BY asset, partition_key LIMIT $4",
            )
            .bind(key).bind(asset).bind(partition).bind(limit)
            .fetch_all(pool).await.map_err(err)?
            .iter().map(outcome_of).collect(),
        })
    }
}
