//! The store suite: what every [`MaterializationStore`] must do.

use std::time::Duration;

use serde_json::json;

use crate::error::{Error, ErrorKind};
use crate::ids::RunId;
use crate::partition::Partition;
use crate::store::{MaterializationQuery, MaterializationStatus, MaterializationStore};

use super::{at, awkward_partitions, record, unique};

/// Checks a [`MaterializationStore`]: upsert by key, get, list with every filter and the order,
/// latest per partition, and lossless round trips of partitions, errors and metadata.
pub async fn store_suite(store: &dyn MaterializationStore) {
    let asset = unique("store");
    let p1 = Partition::Int(1);
    let p2 = Partition::Int(2);

    // Upsert: running, then success, under one key → one record with the final fields.
    let run_a = RunId::new();
    let mut m = record(&asset, p1.clone(), run_a, 0);
    store.record(&m).await.expect("record running");
    let got = store
        .get(&asset, &p1, run_a)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got.status, MaterializationStatus::Running);
    m.status = MaterializationStatus::Success;
    m.finished_at = Some(at(2));
    m.duration = Some(Duration::from_millis(1_500));
    m.attempt = 2;
    m.metadata.insert("rows".into(), json!(12));
    m.metadata
        .insert("nested".into(), json!({"a": [1, 2, {"b": null}]}));
    m.backfill_id = Some(crate::ids::BackfillId::new());
    store.record(&m).await.expect("record success");
    let got = store
        .get(&asset, &p1, run_a)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got, m, "the second record replaces the first");
    assert_eq!(
        store
            .list(&MaterializationQuery::asset(&asset))
            .await
            .expect("list")
            .len(),
        1,
        "one record per (asset, partition, run)"
    );

    // A failed run later on the same partition, and one on another partition.
    let run_b = RunId::new();
    let mut failed = record(&asset, p1.clone(), run_b, 10);
    failed.status = MaterializationStatus::Failed;
    failed.error = Some(
        Error::permanent("bad row 7")
            .in_context(&asset, &p1)
            .to_record(),
    );
    store.record(&failed).await.expect("record failed");
    let run_c = RunId::new();
    let mut other = record(&asset, p2.clone(), run_c, 5);
    other.status = MaterializationStatus::Success;
    store.record(&other).await.expect("record other");

    let all = store
        .list(&MaterializationQuery::asset(&asset))
        .await
        .expect("list");
    let runs: Vec<RunId> = all.iter().map(|m| m.run_id).collect();
    assert_eq!(runs, vec![run_b, run_c, run_a], "newest first");
    let got_failed = store
        .get(&asset, &p1, run_b)
        .await
        .expect("get")
        .expect("present");
    let error = got_failed.error.expect("error kept");
    assert_eq!(error.kind, ErrorKind::ExecutionFailed);
    assert!(!error.retryable);
    assert_eq!(error.message, "bad row 7");

    let by_partition = store
        .list(&MaterializationQuery::asset(&asset).partition(p1.clone()))
        .await
        .expect("list by partition");
    assert_eq!(by_partition.len(), 2);
    let by_status = store
        .list(&MaterializationQuery::asset(&asset).status(MaterializationStatus::Success))
        .await
        .expect("list by status");
    assert_eq!(by_status.len(), 2);
    let by_run = store
        .list(&MaterializationQuery::asset(&asset).run_id(run_c))
        .await
        .expect("list by run");
    assert_eq!(by_run.len(), 1);
    assert_eq!(by_run[0].partition, p2);
    let limited = store
        .list(&MaterializationQuery::asset(&asset).limit(1))
        .await
        .expect("list limited");
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].run_id, run_b);

    let latest = store
        .latest(&asset, &p1)
        .await
        .expect("latest")
        .expect("some");
    assert_eq!(latest.run_id, run_b);
    assert!(
        store
            .latest(&asset, &Partition::Int(3))
            .await
            .expect("latest")
            .is_none()
    );
    let mut per_partition = store
        .latest_per_partition(&asset)
        .await
        .expect("latest per partition");
    per_partition.sort_by(|a, b| a.partition.cmp(&b.partition));
    let summary: Vec<(Partition, MaterializationStatus)> = per_partition
        .iter()
        .map(|m| (m.partition.clone(), m.status))
        .collect();
    assert_eq!(
        summary,
        vec![
            (p1.clone(), MaterializationStatus::Failed),
            (p2.clone(), MaterializationStatus::Success)
        ]
    );
    // The compact form says the same, keyed by the encoded partition.
    let mut statuses = store
        .latest_statuses(&asset)
        .await
        .expect("latest statuses");
    statuses.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected_statuses: Vec<(String, MaterializationStatus)> =
        summary.iter().map(|(p, s)| (p.encode(), *s)).collect();
    expected_statuses.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(statuses, expected_statuses);
    assert!(
        store
            .latest_statuses(&unique("never_recorded"))
            .await
            .expect("latest statuses of an unknown asset")
            .is_empty()
    );
    assert!(
        store
            .get(&asset, &p1, RunId::new())
            .await
            .expect("get")
            .is_none()
    );

    // Awkward partitions come back exactly, and each is its own key.
    let awkward_asset = unique("awkward");
    let run = RunId::new();
    for (i, partition) in awkward_partitions().into_iter().enumerate() {
        store
            .record(&record(&awkward_asset, partition, run, i as i64))
            .await
            .expect("record awkward");
    }
    let mut back: Vec<Partition> = store
        .list(&MaterializationQuery::asset(&awkward_asset))
        .await
        .expect("list awkward")
        .into_iter()
        .map(|m| m.partition)
        .collect();
    let mut expected = awkward_partitions();
    back.sort();
    expected.sort();
    assert_eq!(back, expected);
    for partition in awkward_partitions() {
        let found = store
            .list(&MaterializationQuery::asset(&awkward_asset).partition(partition.clone()))
            .await
            .expect("list one awkward");
        assert_eq!(found.len(), 1, "partition {partition} is its own key");
    }
}
