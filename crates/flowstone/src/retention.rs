//! Retention: how much materialization history to keep, and the pass that prunes the rest.
//!
//! Records and lineage edges are otherwise kept forever: an asset materialized every minute
//! gains half a million records a year. A [`RetentionPolicy`] keeps the newest N records of each
//! (asset, partition), and/or the records younger than an age; [`RetentionPolicy::apply`] walks a
//! store in chunks and deletes the rest with the lineage they recorded.
//!
//! Whatever the policy, each (asset, partition) keeps its latest record (what backfills and
//! readiness read) and its latest successful record (the materialization whose output is
//! normally the one stored, and whose lineage says where that output came from).
//!
//! Lineage: the edges a dropped record recorded (what it read) go with it. Edges in which a
//! dropped record is the upstream stay: they are the history of a consumer that may be kept, and
//! still name the exact run it read.
//!
//! Outputs: the IO managers here keep one output per (asset, partition), replaced by each run
//! ([`crate::io::MemoryIo`], [`crate::io::FileIo`], the SQL blob manager), so there are no
//! outputs of superseded runs to prune; an output goes only when its asset and partition do.
//!
//! The pass is meant for one node at a time (a leader-only duty): it is safe to run beside
//! writers, and two passes at once only repeat each other's work.

use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::lineage::LineageStore;
use crate::store::MaterializationStore;
pub use crate::store::RetentionPolicy;

/// Records deleted per round (one read of candidates, one lineage delete, one record delete):
/// bounds every statement and transaction of a pass, however much there is to prune.
pub const CHUNK: usize = 1000;

/// What a retention pass deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Materialization records.
    pub records: u64,
    /// Lineage edges recorded by those materializations.
    pub lineage_edges: u64,
}

impl RetentionPolicy {
    /// Prunes `store` and `lineage` (which should describe the same materializations) by this
    /// policy, as of now.
    pub async fn apply(
        &self,
        store: &dyn MaterializationStore,
        lineage: &dyn LineageStore,
    ) -> Result<RetentionReport> {
        self.apply_at(Utc::now(), store, lineage).await
    }

    /// [`apply`](Self::apply) as of `now`.
    ///
    /// In rounds of at most [`CHUNK`] records: the store names the records it would drop, their
    /// lineage goes, then the records. A pass stopped between the two deletes leaves records
    /// without lineage, which the next pass drops; never lineage without its record.
    pub async fn apply_at(
        &self,
        now: DateTime<Utc>,
        store: &dyn MaterializationStore,
        lineage: &dyn LineageStore,
    ) -> Result<RetentionReport> {
        let mut report = RetentionReport::default();
        if self.keeps_everything() {
            return Ok(report);
        }
        let mut from = None;
        loop {
            let expired = store.expired(self, now, from.as_ref(), CHUNK).await?;
            let Some(last) = expired.last().cloned() else {
                break;
            };
            report.lineage_edges += lineage.forget_consumed_by(&expired).await?;
            let deleted = store.delete(&expired).await?;
            report.records += deleted;
            if deleted == 0 {
                // Nothing the store named was there to delete: stop rather than ask forever.
                break;
            }
            from = Some(last);
        }
        Ok(report)
    }
}
