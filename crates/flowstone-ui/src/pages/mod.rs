//! The pages, one module each, and what several of them share: finding the asset or partition
//! a URL names (a 404 naming the input when there is none) and an asset's newest record.

pub(crate) mod asset;
pub(crate) mod automation;
pub(crate) mod backfills;
pub(crate) mod graph;
pub(crate) mod jobs;
pub(crate) mod overview;
pub(crate) mod partition;

use std::sync::Arc;

use axum::http::Uri;
use flowstone::store::{Materialization, MaterializationQuery};
use flowstone::{Asset, Partition};

use crate::error::{UiError, UiResult};
use crate::state::AppState;

/// The fallback: a 404 page naming the path.
pub(crate) async fn not_found(uri: Uri) -> UiError {
    UiError::not_found(format!("there is no page at '{}'", uri.path()))
}

/// The asset a URL names.
pub(crate) fn find_asset(state: &AppState, name: &str) -> UiResult<Arc<Asset>> {
    state
        .fs
        .registry()
        .get(name)
        .cloned()
        .map_err(|e| UiError::not_found(format!("unknown asset '{name}': {e}")))
}

/// The partition of `asset` a URL or form names, in the form people type (`-` for an
/// unpartitioned asset).
pub(crate) fn parse_partition(asset: &Asset, input: &str) -> UiResult<Partition> {
    match asset.partitions() {
        None if input == "-" || input.is_empty() => Ok(Partition::Unpartitioned),
        None => Err(UiError::not_found(format!(
            "asset '{}' is not partitioned, so it has no partition '{input}' (its only one is '-')",
            asset.name()
        ))),
        Some(def) => def.parse(input).map_err(|e| {
            UiError::not_found(format!(
                "malformed partition '{input}' of asset '{}': {e}",
                asset.name()
            ))
        }),
    }
}

/// The newest record of `asset`, any partition.
pub(crate) async fn newest_record(
    state: &AppState,
    asset: &str,
) -> UiResult<Option<Materialization>> {
    let query = MaterializationQuery::asset(asset).limit(1);
    Ok(state
        .fs
        .runtime()
        .store()
        .list(&query)
        .await?
        .into_iter()
        .next())
}

/// The readable message of a record's error, if it has one.
pub(crate) fn error_text(m: &Materialization) -> String {
    m.error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_default()
}

/// FlowStone stores a job's error record as JSON in the queue row; its message, else the text.
pub(crate) fn queue_error_text(text: &str) -> String {
    serde_json::from_str::<flowstone::ErrorRecord>(text)
        .map(|record| record.message)
        .unwrap_or_else(|_| text.to_owned())
}

/// The (asset, partition) a FlowStone queue job carries in its metadata.
pub(crate) fn job_target(job: &flowstone_queue::Job) -> (Option<String>, Option<Partition>) {
    let asset = job
        .meta
        .get("asset")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    let partition = job
        .meta
        .get("partition")
        .and_then(serde_json::Value::as_str)
        .and_then(|p| Partition::decode(p).ok());
    (asset, partition)
}
