//! Retention on the SQL store: which rows to ask each dialect for, so that a pass reads each
//! (asset, partition) once and every statement touches a bounded number of rows.
//!
//! The table is read in pages of [`PAGE_ROWS`] rows in (asset, partition) order, counted per
//! (asset, partition). Those with more records than the policy keeps, or with a record older
//! than its cutoff, are then looked at alone through the `newest` index: the key of the newest
//! record, of the N-th newest, the latest success, and finally the records below the threshold
//! those give, oldest first, at most as many as asked for. So an (asset, partition) with a
//! million records costs a few index probes per chunk, not a million-row sort.

use chrono::{DateTime, Utc};
use flowstone_queue::Database;
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::by_engine;
#[cfg(feature = "postgres")]
use super::postgres;
use super::rows::{column, parse_partition, parse_run_id, to_micros};
#[cfg(feature = "sqlite")]
use super::sqlite;
use crate::error::Result;
use crate::lineage::MaterializationKey;
use crate::store::RetentionPolicy;

/// Rows read per page of the table scan.
const PAGE_ROWS: i64 = 1_000;

/// An (asset, partition) as a page of the scan saw it.
#[derive(Debug)]
pub(crate) struct GroupStats {
    pub asset: String,
    pub partition: String,
    /// Its records on the page (all of them, but for the page's last group).
    pub records: i64,
    /// The oldest start among them, epoch µs.
    pub oldest: i64,
}

/// A record's place in the newest-first order: (start in epoch µs, run id). Records strictly
/// below a key are older.
pub(crate) type OrderKey = (i64, String);

/// Decodes a row of `asset, partition_key, records, oldest`.
pub(crate) fn group_stats<'r, R>(row: &'r R) -> Result<GroupStats>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(GroupStats {
        asset: column(row, "asset")?,
        partition: column(row, "partition_key")?,
        records: column(row, "records")?,
        oldest: column(row, "oldest")?,
    })
}

/// Decodes a row of `started_at, run_id`.
pub(crate) fn order_key<'r, R>(row: &'r R) -> Result<OrderKey>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok((column(row, "started_at")?, column(row, "run_id")?))
}

/// [`crate::store::MaterializationStore::expired`] on `db`.
pub(crate) async fn expired(
    db: &Database,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    from: Option<&MaterializationKey>,
    limit: usize,
) -> Result<Vec<MaterializationKey>> {
    let rule = Rule {
        keep: policy.kept_newest(),
        cutoff: policy.cutoff(now).map(to_micros),
    };
    let mut found = Vec::new();
    let mut after: Option<(String, String)> = None;
    if let Some(from) = from {
        let group = (from.asset.clone(), from.partition.encode());
        rule.expired_of_group(db, &group, limit, &mut found).await?;
        after = Some(group);
    }
    while found.len() < limit {
        let page = group_page(db, after.as_ref()).await?;
        let full = page.iter().map(|g| g.records).sum::<i64>() >= PAGE_ROWS;
        for (i, stats) in page.iter().enumerate() {
            // The page's last group may go on past it: look at it whatever its count says.
            let cut_off_by_the_page = full && i + 1 == page.len();
            if cut_off_by_the_page || rule.may_expire(stats) {
                let group = (stats.asset.clone(), stats.partition.clone());
                rule.expired_of_group(db, &group, limit, &mut found).await?;
                if found.len() >= limit {
                    return Ok(found);
                }
            }
        }
        match page.into_iter().last() {
            Some(last) if full => after = Some((last.asset, last.partition)),
            _ => break,
        }
    }
    Ok(found)
}

/// The policy in the columns' terms.
struct Rule {
    keep: Option<usize>,
    cutoff: Option<i64>,
}

impl Rule {
    /// Whether a group might hold records past the policy (the protected ones aside).
    fn may_expire(&self, stats: &GroupStats) -> bool {
        let over_count = self
            .keep
            .is_some_and(|keep| stats.records > i64::try_from(keep).unwrap_or(i64::MAX));
        let too_old = stats.records > 1 && self.cutoff.is_some_and(|cutoff| stats.oldest < cutoff);
        over_count || too_old
    }

    /// Appends to `found`, up to `limit` in all, the records of `group` past the policy,
    /// oldest first, but for its latest record and its latest success.
    async fn expired_of_group(
        &self,
        db: &Database,
        (asset, partition): &(String, String),
        limit: usize,
        found: &mut Vec<MaterializationKey>,
    ) -> Result<()> {
        let room = limit.saturating_sub(found.len());
        if room == 0 {
            return Ok(());
        }
        let Some(newest) = key_at(db, asset, partition, 0).await? else {
            return Ok(());
        };
        let by_count = match self.keep {
            Some(keep) => key_at(db, asset, partition, keep - 1).await?,
            None => None,
        };
        let by_age = self.cutoff.map(|cutoff| (cutoff, String::new()));
        // Past either limit means below the higher threshold; never the newest record.
        let Some(threshold) = by_count.into_iter().chain(by_age).max() else {
            return Ok(());
        };
        let threshold = threshold.min(newest);
        let success = latest_success(db, asset, partition).await?;
        let runs = older_than(db, asset, partition, &threshold, success.as_deref(), room).await?;
        let decoded = parse_partition(partition)?;
        for run in runs {
            found.push(MaterializationKey {
                asset: asset.clone(),
                partition: decoded.clone(),
                run_id: parse_run_id(&run)?,
            });
        }
        Ok(())
    }
}

async fn group_page(db: &Database, after: Option<&(String, String)>) -> Result<Vec<GroupStats>> {
    let after = after.map(|(asset, partition)| (asset.as_str(), partition.as_str()));
    by_engine!(db.pool(), pool => {
        sqlite: sqlite::group_page(pool, after, PAGE_ROWS).await,
        postgres: postgres::group_page(pool, after, PAGE_ROWS).await,
    })
}

/// The order key of the record at `offset` (0 = newest) of (asset, partition).
async fn key_at(
    db: &Database,
    asset: &str,
    partition: &str,
    offset: usize,
) -> Result<Option<OrderKey>> {
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    by_engine!(db.pool(), pool => {
        sqlite: sqlite::key_at(pool, asset, partition, offset).await,
        postgres: postgres::key_at(pool, asset, partition, offset).await,
    })
}

async fn latest_success(db: &Database, asset: &str, partition: &str) -> Result<Option<String>> {
    by_engine!(db.pool(), pool => {
        sqlite: sqlite::latest_success(pool, asset, partition).await,
        postgres: postgres::latest_success(pool, asset, partition).await,
    })
}

/// Run ids of (asset, partition) below `threshold`, but `except`, oldest first, at most `limit`.
async fn older_than(
    db: &Database,
    asset: &str,
    partition: &str,
    threshold: &OrderKey,
    except: Option<&str>,
    limit: usize,
) -> Result<Vec<String>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let except = except.unwrap_or("");
    by_engine!(db.pool(), pool => {
        sqlite: {
            sqlite::older_than(pool, asset, partition, threshold, except, limit).await
        },
        postgres: {
            postgres::older_than(pool, asset, partition, threshold, except, limit).await
        },
    })
}

/// Keys per delete statement.
const KEYS_PER_DELETE: usize = 1000;

/// What a retention delete removes: the records of some keys, or the lineage they recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Deleted {
    Records,
    EdgesOfConsumers,
}

/// Deletes the records of `keys`, or the lineage edges they recorded, in statements of at most
/// [`KEYS_PER_DELETE`] keys; returns how many rows went.
pub(crate) async fn delete(
    db: &Database,
    what: Deleted,
    keys: &[MaterializationKey],
) -> Result<u64> {
    let mut deleted = 0;
    for chunk in keys.chunks(KEYS_PER_DELETE) {
        let keys: Vec<[String; 3]> = chunk.iter().map(super::rows::encode_key).collect();
        deleted += by_engine!(db.pool(), pool => {
            sqlite: sqlite::delete(db, pool, what, &keys).await?,
            postgres: postgres::delete(pool, what, &keys).await?,
        });
    }
    Ok(deleted)
}
