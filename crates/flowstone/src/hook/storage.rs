//! The `storage` hook: writes a successful output through the asset's IO manager, tagged with
//! the run that produced it (lineage reads that tag back).

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
        io.store(cx.asset.name(), &cx.job.partition, &output, &meta)
            .await
            .map_err(|e| e.in_context(cx.asset.name(), &cx.job.partition))?;
        Ok(output)
    }
}
