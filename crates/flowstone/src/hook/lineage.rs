//! The `lineage` hook: after a success, records which upstream materializations were consumed.

use async_trait::async_trait;

use super::{Hook, Materializing, Next};
use crate::error::Result;
use crate::lineage::MaterializationKey;
use crate::output::Output;

/// Records lineage edges.
#[derive(Debug, Default)]
pub struct LineageHook;

#[async_trait]
impl Hook for LineageHook {
    async fn call(&self, cx: &mut Materializing<'_>, next: Next<'_>) -> Result<Output> {
        let output = next.run(cx).await?;
        if !cx.deps.consumed.is_empty() {
            let consumer = MaterializationKey {
                asset: cx.asset.name().to_owned(),
                partition: cx.job.partition.clone(),
                run_id: cx.job.run_id,
            };
            cx.storage
                .lineage()
                .record(&consumer, &cx.deps.consumed)
                .await?;
        }
        Ok(output)
    }
}
