//! The `storage` hook: writes a successful output through the asset's IO manager, tagged with
//! the run that produced it (lineage reads that tag back), and logs the write at DEBUG with the
//! manager, the stored size and how long it took.

use async_trait::async_trait;

use super::{Hook, Materializing, Next};
use crate::error::Result;
use crate::io::IoMetadata;
use crate::output::Output;

/// Stores outputs.
#[derive(Debug, Default)]
pub struct StorageHook;

#[async_trait]
impl Hook for StorageHook {
    async fn call(&self, cx: &mut Materializing<'_>, next: Next<'_>) -> Result<Output> {
        let output = next.run(cx).await?;
        let io = cx.storage.io_for(cx.asset, cx.job)?;
        let meta = IoMetadata {
            run_id: cx.job.run_id,
            stored_at: chrono::Utc::now(),
            size_bytes: None,
        };
        let started = std::time::Instant::now();
        io.store(cx.asset.name(), &cx.job.partition, &output, &meta)
            .await
            .map_err(|e| e.in_context(cx.asset.name(), &cx.job.partition))?;
        if tracing::enabled!(tracing::Level::DEBUG) {
            let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            // The size is the manager's encoding, so ask it (only when the event is wanted).
            let size_bytes = io
                .metadata(cx.asset.name(), &cx.job.partition)
                .await
                .ok()
                .flatten()
                .and_then(|m| m.size_bytes);
            tracing::debug!(
                manager = cx.storage.io_name_for(cx.asset, cx.job),
                size_bytes,
                duration_us,
                "stored output"
            );
        }
        Ok(output)
    }
}
