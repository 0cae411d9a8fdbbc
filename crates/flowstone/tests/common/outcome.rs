//! Reading what a materialization, a job or the store ended with, in one call each: the
//! output or the error of a run, a scheduled job and its status, the newest record of an
//! asset, its lineage, and the check every error test makes (its kind and what its message
//! names).
//!
//! Each helper panics with a message naming the asset and what was expected instead, so a
//! test body holds only the assertions that differ between tests.

use flowstone::lineage::{LineageEntry, MaterializationKey};
use flowstone::store::{Materialization, MaterializationStatus};
use flowstone::{
    Direction, Error, ErrorKind, ErrorRecord, FlowStone, Job, JobStatus, Output, Partition, Run,
    RunId,
};
use serde::de::DeserializeOwned;

use super::records;

/// Materializes `asset` with `run`, which must succeed, and returns its output.
pub async fn materialized(fs: &FlowStone, asset: &str, run: Run) -> Output {
    fs.materialize(asset, run)
        .await
        .unwrap_or_else(|err| panic!("materializing '{asset}' failed: {err}"))
}

/// Materializes `asset` with `run`, which must succeed, and returns its output as a `T`.
pub async fn output<T>(fs: &FlowStone, asset: &str, run: Run) -> T
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    materialized(fs, asset, run)
        .await
        .value()
        .unwrap_or_else(|err| panic!("the output of '{asset}' does not decode: {err}"))
}

/// Materializes `asset` with `run`, which must fail, and returns the error.
pub async fn failure(fs: &FlowStone, asset: &str, run: Run) -> Error {
    match fs.materialize(asset, run).await {
        Ok(_) => panic!("materializing '{asset}' succeeded; the test expects an error"),
        Err(err) => err,
    }
}

/// Asserts that `err` is of `kind` and that its message contains every one of `mentions`.
#[track_caller]
pub fn assert_error(err: &Error, kind: ErrorKind, mentions: &[&str]) {
    check_error("", err, kind, mentions);
}

/// [`assert_error`] for one row of a table: a failure names the row's `case`.
#[track_caller]
pub fn assert_error_in(case: &str, err: &Error, kind: ErrorKind, mentions: &[&str]) {
    check_error(&format!("{case}: "), err, kind, mentions);
}

#[track_caller]
fn check_error(prefix: &str, err: &Error, kind: ErrorKind, mentions: &[&str]) {
    assert_eq!(err.kind(), kind, "{prefix}{err}");
    for mention in mentions {
        assert!(
            err.to_string().contains(mention),
            "{prefix}the error should mention {mention:?}: {err}"
        );
    }
}

/// Schedules `asset` with `run`, which must be accepted, and returns the job.
pub async fn scheduled(fs: &FlowStone, asset: &str, run: Run) -> Job {
    fs.schedule(asset, run)
        .await
        .unwrap_or_else(|err| panic!("scheduling '{asset}' failed: {err}"))
}

/// Schedules `asset` with `run`, which must be refused, and returns the error.
pub async fn schedule_failure(fs: &FlowStone, asset: &str, run: Run) -> Error {
    match fs.schedule(asset, run).await {
        Ok(job) => panic!(
            "scheduling '{asset}' was accepted as job {}; the test expects an error",
            job.id
        ),
        Err(err) => err,
    }
}

/// Where `job` is now, as its executor reports it.
pub async fn job_status(fs: &FlowStone, job: &Job) -> JobStatus {
    fs.job_status(job)
        .await
        .unwrap_or_else(|err| panic!("the status of job {} could not be read: {err}", job.id))
}

/// The output of a job that must have completed, as a `T`.
#[track_caller]
pub fn completed<T>(status: JobStatus) -> T
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    match status {
        JobStatus::Completed(out) => out
            .value()
            .unwrap_or_else(|err| panic!("the job's output does not decode: {err}")),
        other => panic!("expected completed, got {other}"),
    }
}

/// The error of a job that must have failed.
#[track_caller]
pub fn failed(status: JobStatus) -> Error {
    match status {
        JobStatus::Failed(err) => err,
        other => panic!("expected failed, got {other}"),
    }
}

/// The newest materialization record of `asset`, which must have one.
pub async fn latest_record(fs: &FlowStone, asset: &str) -> Materialization {
    records(fs, asset)
        .await
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("'{asset}' has no materialization record"))
}

/// The stored error of the newest record of `asset`, which must be `Failed` with an error of
/// `kind`.
pub async fn failed_record(fs: &FlowStone, asset: &str, kind: ErrorKind) -> ErrorRecord {
    let record = latest_record(fs, asset).await;
    assert_eq!(
        record.status,
        MaterializationStatus::Failed,
        "the newest record of '{asset}': {record:?}"
    );
    let stored = record
        .error
        .unwrap_or_else(|| panic!("the failed record of '{asset}' has no error"));
    assert_eq!(
        stored.kind, kind,
        "the error recorded for '{asset}': {stored:?}"
    );
    stored
}

/// The lineage of `asset`'s newest materialization of `partition`, `depth` steps `direction`.
pub async fn lineage(
    fs: &FlowStone,
    asset: &str,
    partition: impl Into<Partition>,
    direction: Direction,
    depth: u32,
) -> Vec<LineageEntry> {
    fs.lineage(asset, partition, direction, depth)
        .await
        .unwrap_or_else(|err| panic!("the lineage of '{asset}' could not be read: {err}"))
}

/// The lineage entry for `asset`'s materialization of `partition` in `run_id`, `depth` steps
/// away.
pub fn entry(
    asset: &str,
    partition: impl Into<Partition>,
    run_id: RunId,
    depth: u32,
) -> LineageEntry {
    LineageEntry {
        key: MaterializationKey {
            asset: asset.into(),
            partition: partition.into(),
            run_id,
        },
        depth,
    }
}
