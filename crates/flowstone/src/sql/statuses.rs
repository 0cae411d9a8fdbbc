//! The latest status of every partition of one asset, in one query and without decoding whole
//! records: the dashboard's partition grid reads 100 000 of them per page view, where
//! [`super::SqlStore::latest_per_partition`]'s full records (metadata, errors) would cost
//! most of the time.
//!
//! Both dialects walk the `flowstone_materializations_newest` index, (asset, partition_key,
//! started_at DESC, run_id DESC), so the newest row of each partition comes first.

#[cfg(feature = "postgres")]
use sqlx::PgPool;
use sqlx::Row;
#[cfg(feature = "sqlite")]
use sqlx::SqlitePool;

use super::sql_error;
use crate::error::{Error, Result};
use crate::store::MaterializationStatus;

/// (encoded partition, status) of the newest record of each partition of `asset`, on SQLite.
#[cfg(feature = "sqlite")]
pub(crate) async fn latest_statuses_sqlite(
    pool: &SqlitePool,
    asset: &str,
) -> Result<Vec<(String, MaterializationStatus)>> {
    let rows = sqlx::query(
        "SELECT partition_key, status FROM (
            SELECT partition_key, status, ROW_NUMBER() OVER (
                PARTITION BY partition_key ORDER BY started_at DESC, run_id DESC) AS newest
            FROM flowstone_materializations WHERE asset = ?
         ) ranked WHERE newest = 1",
    )
    .bind(asset)
    .fetch_all(pool)
    .await
    .map_err(|e| sql_error("read the latest statuses", e))?;
    rows.iter().map(decode).collect()
}

/// (encoded partition, status) of the newest record of each partition of `asset`, on
/// PostgreSQL (`DISTINCT ON` keeps the first row of each partition in the index's order).
#[cfg(feature = "postgres")]
pub(crate) async fn latest_statuses_postgres(
    pool: &PgPool,
    asset: &str,
) -> Result<Vec<(String, MaterializationStatus)>> {
    let rows = sqlx::query(
        "SELECT DISTINCT ON (partition_key) partition_key, status
           FROM flowstone_materializations WHERE asset = $1
          ORDER BY partition_key, started_at DESC, run_id DESC",
    )
    .bind(asset)
    .fetch_all(pool)
    .await
    .map_err(|e| sql_error("read the latest statuses", e))?;
    rows.iter().map(decode).collect()
}

fn decode<R: Row>(row: &R) -> Result<(String, MaterializationStatus)>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let key: String = row
        .try_get(0)
        .map_err(|e| sql_error("read a partition key", e))?;
    let status: String = row.try_get(1).map_err(|e| sql_error("read a status", e))?;
    let status = MaterializationStatus::parse(&status)
        .ok_or_else(|| Error::store(format!("unknown materialization status '{status}'")))?;
    Ok((key, status))
}
