//! The `record` hook: writes the materialization record, `Running` at the start and the final
//! status (success, failed, cancelled) with duration and error at the end. Skipped when the job's
//! `record` flag is off.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Hook, Materializing, Next};
use crate::error::{Error, ErrorKind, Result};
use crate::output::Output;
use crate::store::{Materialization, MaterializationStatus, MaterializationStore};

/// Records materializations.
#[derive(Debug, Default)]
pub struct RecordHook;

#[async_trait]
impl Hook for RecordHook {
    async fn call(&self, cx: &mut Materializing<'_>, next: Next<'_>) -> Result<Output> {
        if !cx.job.record {
            return next.run(cx).await;
        }
        let store = cx.storage.store();
        let mut metadata = cx.asset.static_metadata().clone();
        metadata.extend(cx.job.metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        let record = Materialization {
            asset: cx.asset.name().to_owned(),
            partition: cx.job.partition.clone(),
            run_id: cx.job.run_id,
            status: MaterializationStatus::Running,
            executor: cx.executor.to_owned(),
            attempt: cx.attempt,
            started_at: cx.started_at,
            finished_at: None,
            duration: None,
            error: None,
            metadata,
            backfill_id: cx.job.backfill_id,
        };
        store.record_start(&record).await?;

        // If the caller drops this future mid-run (a timeout around `materialize`, an aborted
        // task), the guard records the materialization as cancelled instead of leaving it
        // `running` forever.
        let mut guard = Unfinished {
            store: Arc::clone(store),
            record: Some(record),
        };
        let result = next.run(cx).await;
        let Some(mut record) = guard.record.take() else {
            unreachable!("the guard is disarmed only here")
        };

        record.finished_at = Some(chrono::Utc::now());
        record.duration = Some(cx.started.elapsed());
        record
            .metadata
            .extend(cx.metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        record.status = match &result {
            Ok(_) => MaterializationStatus::Success,
            Err(err) if err.kind() == ErrorKind::Cancelled => MaterializationStatus::Cancelled,
            Err(_) => MaterializationStatus::Failed,
        };
        record.error = result.as_ref().err().map(|e| e.to_record());
        store.record(&record).await?;
        result
    }
}

/// A `Running` record whose materialization has not returned yet.
struct Unfinished {
    store: Arc<dyn MaterializationStore>,
    record: Option<Materialization>,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        let Some(mut record) = self.record.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        record.status = MaterializationStatus::Cancelled;
        record.finished_at = Some(chrono::Utc::now());
        record.error = Some(
            Error::cancelled(&record.asset)
                .with_partition(record.partition.clone())
                .to_record(),
        );
        let store = Arc::clone(&self.store);
        runtime.spawn(async move {
            if let Err(err) = store.record(&record).await {
                tracing::warn!(asset = %record.asset, error = %err, "could not record a dropped materialization as cancelled");
            }
        });
    }
}
