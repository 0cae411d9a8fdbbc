//! The `record` hook: writes the materialization record, `Running` at the start and the final
//! status (success, failed, cancelled) with duration and error at the end. Skipped when the job's
//! `record` flag is off.

use async_trait::async_trait;

use super::{Hook, Materializing, Next};
use crate::error::{ErrorKind, Result};
use crate::output::Output;
use crate::store::{Materialization, MaterializationStatus};

/// Records materializations.
#[derive(Debug, Default)]
pub struct RecordHook;

#[async_trait]
impl Hook for RecordHook {
    async fn call(&self, cx: &mut Materializing<'_>, next: Next<'_>) -> Result<Output> {
        if !cx.job.record {
            return next.run(cx).await;
        }
        let store = cx.runtime.store();
        let mut metadata = cx.asset.static_metadata().clone();
        metadata.extend(cx.job.metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut record = Materialization {
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
        };
        store.record(&record).await?;

        let result = next.run(cx).await;

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
