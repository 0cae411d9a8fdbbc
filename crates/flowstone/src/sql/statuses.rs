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
///
/// The pairs come back as one string (`key US status RS key US status ...`, with the ASCII unit
/// and record separators): a row per partition costs sqlx's SQLite driver about a microsecond
/// each, most of the page's time at 100 000 partitions. No key written by
/// [`crate::Partition::encode`] holds a control character; a key stored by an older version
/// may, and then the answer cannot be split safely, so it is asked again a row per partition.
#[cfg(feature = "sqlite")]
pub(crate) async fn latest_statuses_sqlite(
    pool: &SqlitePool,
    asset: &str,
) -> Result<Vec<(String, MaterializationStatus)>> {
    let packed: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT group_concat(partition_key || char(31) || status, char(30)) FROM ({NEWEST_SQLITE})"
    )))
    .bind(asset)
    .fetch_one(pool)
    .await
    .map_err(|e| sql_error("read the latest statuses", e))?;
    let Some(packed) = packed else {
        return Ok(Vec::new());
    };
    if let Some(pairs) = unpack(&packed) {
        return Ok(pairs);
    }
    let rows = sqlx::query(NEWEST_SQLITE)
        .bind(asset)
        .fetch_all(pool)
        .await
        .map_err(|e| sql_error("read the latest statuses", e))?;
    rows.iter().map(decode).collect()
}

/// The newest record's (partition_key, status) of each partition of the asset bound first.
#[cfg(feature = "sqlite")]
const NEWEST_SQLITE: &str = "SELECT partition_key, status FROM (
        SELECT partition_key, status, ROW_NUMBER() OVER (
            PARTITION BY partition_key ORDER BY started_at DESC, run_id DESC) AS newest
        FROM flowstone_materializations WHERE asset = ?
     ) ranked WHERE newest = 1";

/// Splits what [`latest_statuses_sqlite`] packed; `None` when a key held a separator (a piece
/// then lacks its unit separator, or its status is not one).
#[cfg(feature = "sqlite")]
fn unpack(packed: &str) -> Option<Vec<(String, MaterializationStatus)>> {
    packed
        .split('\u{1e}')
        .map(|pair| {
            let (key, status) = pair.split_once('\u{1f}')?;
            let status = MaterializationStatus::parse(status)?;
            Some((key.to_owned(), status))
        })
        .collect()
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

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    #[test]
    fn unpacks_pairs_and_refuses_keys_holding_a_separator() {
        let packed = "d:2024-01-01\u{1f}success\u{1e}s:a:b\u{1f}failed";
        assert_eq!(
            unpack(packed),
            Some(vec![
                ("d:2024-01-01".to_owned(), MaterializationStatus::Success),
                ("s:a:b".to_owned(), MaterializationStatus::Failed),
            ])
        );
        // A key stored before the `e:` tag, holding a record or a unit separator.
        assert_eq!(unpack("a\u{1e}b\u{1f}success"), None);
        assert_eq!(unpack("a\u{1f}b\u{1f}success"), None);
    }
}
