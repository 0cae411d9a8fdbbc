//! Shared test suites: every implementation of a storage trait must pass the same checks.
//!
//! The memory implementations run these in this crate's tests; the SQLite and PostgreSQL
//! implementations run them against real databases. Each suite works under asset names unique to
//! the call, so one store instance can serve several suites and tests can run in parallel.
//! Enabled with the `testing` feature.
//!
//! One suite a file: [`store_suite`], [`lineage_suite`], [`io_suite`], [`retention_suite`];
//! this module holds what they share.

mod io;
mod lineage;
mod retention;
mod store;

pub use io::io_suite;
pub use lineage::lineage_suite;
pub use retention::retention_suite;
pub use store::store_suite;

use chrono::{DateTime, TimeZone, Utc};

use crate::ids::RunId;
use crate::lineage::MaterializationKey;
use crate::partition::Partition;
use crate::store::{Materialization, MaterializationStatus};

pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Partitions whose encodings stress a persisted boundary: tags, separators, unicode, control
/// characters, nesting.
pub fn awkward_partitions() -> Vec<Partition> {
    let day = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).expect("valid date");
    vec![
        Partition::Unpartitioned,
        Partition::Date(day),
        Partition::Int(-42),
        Partition::Str("42".into()),
        Partition::Str("a:b|c\\d".into()),
        Partition::Str("tenant/../x %2F".into()),
        Partition::Str("ünïcødé 🚀".into()),
        // Control characters, which the encoding escapes (PostgreSQL text holds no NUL).
        Partition::Str("nul\0 tab\t cr\r lf\n".into()),
        Partition::Tuple(vec![
            Partition::Date(day),
            Partition::Str("eu|west".into()),
            Partition::Tuple(vec![Partition::Int(1), Partition::Str(String::new())]),
        ]),
    ]
}

pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0)
        .single()
        .expect("valid timestamp")
}

pub(crate) fn record(
    asset: &str,
    partition: Partition,
    run_id: RunId,
    started: i64,
) -> Materialization {
    Materialization {
        asset: asset.to_owned(),
        partition,
        run_id,
        status: MaterializationStatus::Running,
        executor: "sync".into(),
        attempt: 1,
        started_at: at(started),
        finished_at: None,
        duration: None,
        error: None,
        metadata: serde_json::Map::new(),
        backfill_id: None,
    }
}

pub(crate) fn key(asset: &str, partition: &Partition, run_id: RunId) -> MaterializationKey {
    MaterializationKey {
        asset: asset.to_owned(),
        partition: partition.clone(),
        run_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{FileIo, MemoryIo};
    use crate::lineage::MemoryLineage;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn memory_store_passes_the_store_suite() {
        store_suite(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn memory_lineage_passes_the_lineage_suite() {
        lineage_suite(&MemoryLineage::new()).await;
    }

    #[tokio::test]
    async fn memory_store_and_lineage_pass_the_retention_suite() {
        retention_suite(&MemoryStore::new(), &MemoryLineage::new()).await;
    }

    #[tokio::test]
    async fn memory_io_passes_the_io_suite() {
        io_suite(&MemoryIo::new()).await;
    }

    #[tokio::test]
    async fn file_io_passes_the_io_suite() {
        let dir = std::env::temp_dir().join(unique("flowstone_file_io"));
        io_suite(&FileIo::new(&dir)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
