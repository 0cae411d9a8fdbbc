//! The `core` hook: runs the asset's function, with its timeout, its cancellation, and panics
//! turned into errors. It ends every stack and never calls `next`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::FutureExt;

use super::{Hook, Materializing, Next};
use crate::asset::panic_message;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::output::Output;

/// Runs the asset.
#[derive(Debug, Default)]
pub struct CoreHook;

#[async_trait]
impl Hook for CoreHook {
    async fn call(&self, cx: &mut Materializing<'_>, _next: Next<'_>) -> Result<Output> {
        let asset = cx.asset.name();
        let func = cx
            .asset
            .function()
            .ok_or_else(|| Error::config(format!("asset '{asset}' has no function")))?;
        let ctx = Context {
            asset: Arc::clone(&cx.asset.name),
            requires: Arc::clone(&cx.asset.requires),
            partition: cx.job.partition.clone(),
            run_id: cx.job.run_id,
            attempt: cx.attempt,
            deps: Arc::clone(&cx.deps.outputs),
            resources: cx.resources.clone(),
            metadata: Arc::new(cx.job.metadata.clone()),
            cancel: cx.cancel.clone(),
            span: tracing::Span::current(),
        };
        // The function's synchronous part (before it returns its future) may panic too.
        let run = match std::panic::catch_unwind(AssertUnwindSafe(|| func(ctx))) {
            Ok(future) => AssertUnwindSafe(future).catch_unwind(),
            Err(panic) => return Err(Error::panicked(asset, &panic_message(panic))),
        };
        let run = tokio::time::timeout(cx.timeout, run);
        tokio::pin!(run);
        let result = tokio::select! {
            biased;
            () = cx.cancel.cancelled() => {
                // The function sees its token fire too; it gets the grace to clean up, then
                // its future is dropped. Either way the materialization is cancelled.
                let _ = tokio::time::timeout(cx.asset.cancel_grace_value(), &mut run).await;
                return Err(Error::cancelled(asset));
            }
            timed = &mut run => timed,
        };
        match result {
            Ok(Ok(result)) => result.map_err(|e| e.with_asset(asset)),
            Ok(Err(panic)) => Err(Error::panicked(asset, &panic_message(panic))),
            Err(_elapsed) => Err(Error::timeout(asset, cx.timeout)),
        }
    }
}
