//! Shared test suites: every implementation of a storage trait must pass the same checks.
//!
//! The memory implementations run these in this crate's tests; the SQLite and PostgreSQL
//! implementations run them against real databases. Each suite works under asset names unique to
//! the call, so one store instance can serve several suites and tests can run in parallel.
//! Enabled with the `testing` feature.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use crate::error::{Error, ErrorKind};
use crate::ids::RunId;
use crate::io::{IoManager, IoMetadata};
use crate::lineage::{self, LineageStore, MaterializationKey};
use crate::output::Output;
use crate::partition::Partition;
use crate::retention::{RetentionPolicy, RetentionReport};
use crate::store::{
    Materialization, MaterializationQuery, MaterializationStatus, MaterializationStore,
};

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Partitions whose encodings stress a persisted boundary: tags, separators, unicode, nesting.
pub fn awkward_partitions() -> Vec<Partition> {
    let day = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).expect("valid date");
    vec![
        Partition::Unpartitioned,
        Partition::Date(day),
        Partition::Int(-42),
        Partition::Str("42".into()),
        Partition::Str("a:b|c\\d".into()),
        Partition::Str("tenant/../x %2F".into()),
        Partition::Str("ünïcødé 🚀".into()),
        Partition::Tuple(vec![
            Partition::Date(day),
            Partition::Str("eu|west".into()),
            Partition::Tuple(vec![Partition::Int(1), Partition::Str(String::new())]),
        ]),
    ]
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0)
        .single()
        .expect("valid timestamp")
}

fn record(asset: &str, partition: Partition, run_id: RunId, started: i64) -> Materialization {
    Materialization {
        asset: asset.to_owned(),
        partition,
        run_id,
        status: MaterializationStatus::Running,
        executor: "sync".into(),
        attempt: 1,
        started_at: at(started),
        finished_at: None,
        duration: None,
        error: None,
        metadata: serde_json::Map::new(),
        backfill_id: None,
    }
}

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

fn key(asset: &str, partition: &Partition, run_id: RunId) -> MaterializationKey {
    MaterializationKey {
        asset: asset.to_owned(),
        partition: partition.clone(),
        run_id,
    }
}

/// Checks a [`LineageStore`]: edges, one-step lookups with filters, idempotent recording, the
/// newest consumer run, and the walks with depth built on top.
pub async fn lineage_suite(store: &dyn LineageStore) {
    let a = unique("lin_a");
    let b = unique("lin_b");
    let c = unique("lin_c");
    let p = Partition::Tuple(vec![Partition::Str("x|y".into()), Partition::Int(7)]);
    let q = Partition::Int(8);
    let (ra, rb, rc) = (RunId::new(), RunId::new(), RunId::new());

    store
        .record(&key(&b, &p, rb), &[key(&a, &Partition::Unpartitioned, ra)])
        .await
        .expect("record b");
    store
        .record(
            &key(&c, &p, rc),
            &[key(&b, &p, rb), key(&a, &Partition::Unpartitioned, ra)],
        )
        .await
        .expect("record c");
    // Recording the same edges again changes nothing.
    store
        .record(&key(&c, &p, rc), &[key(&b, &p, rb)])
        .await
        .expect("record c again");

    let mut consumed = store
        .consumed_by(&key(&c, &p, rc))
        .await
        .expect("consumed_by");
    consumed.sort();
    let mut expected = vec![key(&b, &p, rb), key(&a, &Partition::Unpartitioned, ra)];
    expected.sort();
    assert_eq!(consumed, expected);

    assert_eq!(
        store
            .consumers_of(&b, Some(&p), None)
            .await
            .expect("consumers"),
        vec![key(&c, &p, rc)]
    );
    assert!(
        store
            .consumers_of(&b, Some(&q), None)
            .await
            .expect("consumers other partition")
            .is_empty()
    );
    assert!(
        store
            .consumers_of(&b, Some(&p), Some(RunId::new()))
            .await
            .expect("consumers other run")
            .is_empty()
    );
    let mut of_a = store
        .consumers_of(&a, None, None)
        .await
        .expect("consumers of a");
    of_a.sort();
    let mut expected = vec![key(&b, &p, rb), key(&c, &p, rc)];
    expected.sort();
    assert_eq!(of_a, expected);

    assert_eq!(
        store.latest_consumer_run(&c, &p).await.expect("latest"),
        Some(rc)
    );
    let rc2 = RunId::new();
    store
        .record(&key(&c, &p, rc2), &[key(&b, &p, rb)])
        .await
        .expect("record c run 2");
    assert_eq!(
        store.latest_consumer_run(&c, &p).await.expect("latest"),
        Some(rc2)
    );
    assert_eq!(store.latest_consumer_run(&c, &q).await.expect("none"), None);

    // Walks.
    let up = lineage::upstream(store, &c, &p, Some(rc), 1)
        .await
        .expect("up 1");
    assert_eq!(up.len(), 2);
    assert!(up.iter().all(|e| e.depth == 1));
    let up_newest = lineage::upstream(store, &c, &p, None, 5)
        .await
        .expect("up newest");
    let assets: Vec<(&str, u32)> = up_newest
        .iter()
        .map(|e| (e.key.asset.as_str(), e.depth))
        .collect();
    assert_eq!(assets, vec![(b.as_str(), 1), (a.as_str(), 2)]);
    let down = lineage::downstream(store, &a, &Partition::Unpartitioned, None, 1)
        .await
        .expect("down 1");
    assert_eq!(down.len(), 2, "b and c read a directly");
    let down_b = lineage::downstream(store, &b, &p, Some(rb), 3)
        .await
        .expect("down b");
    let mut runs: Vec<RunId> = down_b.iter().map(|e| e.key.run_id).collect();
    runs.sort();
    let mut expected = vec![rc, rc2];
    expected.sort();
    assert_eq!(runs, expected);
    let impact = lineage::impact(store, &a).await.expect("impact");
    assert_eq!(impact.len(), 3, "b, c and c's second run");
    assert!(
        lineage::downstream(store, &a, &Partition::Unpartitioned, None, 0)
            .await
            .expect("depth 0")
            .is_empty()
    );
}

/// Checks an [`IoManager`]: typed round trips with metadata, overwrite, exists, delete, and that
/// awkward partitions map to distinct keys.
pub async fn io_suite(io: &dyn IoManager) {
    let asset = unique("io");
    let p = Partition::Date(chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"));
    assert!(io.load(&asset, &p).await.expect("load missing").is_none());
    assert!(!io.exists(&asset, &p).await.expect("exists missing"));
    assert!(
        io.metadata(&asset, &p)
            .await
            .expect("meta missing")
            .is_none()
    );
    assert!(!io.delete(&asset, &p).await.expect("delete missing"));

    let run = RunId::new();
    let meta = IoMetadata {
        run_id: run,
        stored_at: at(0),
        size_bytes: None,
    };
    let value = vec![(String::from("a"), 1u32), (String::from("ü:|"), 2)];
    io.store(&asset, &p, &Output::new(value.clone()), &meta)
        .await
        .expect("store");
    assert!(io.exists(&asset, &p).await.expect("exists"));
    let stored = io.load(&asset, &p).await.expect("load").expect("present");
    assert_eq!(stored.meta.run_id, run);
    assert_eq!(stored.meta.stored_at, meta.stored_at);
    assert_eq!(
        stored.output.value::<Vec<(String, u32)>>().expect("typed"),
        value
    );
    assert_eq!(
        io.metadata(&asset, &p)
            .await
            .expect("meta")
            .map(|m| m.run_id),
        Some(run)
    );

    let run2 = RunId::new();
    io.store(
        &asset,
        &p,
        &Output::new(String::from("replaced")),
        &IoMetadata {
            run_id: run2,
            ..meta.clone()
        },
    )
    .await
    .expect("overwrite");
    let stored = io.load(&asset, &p).await.expect("load").expect("present");
    assert_eq!(stored.meta.run_id, run2);
    assert_eq!(stored.output.value::<String>().expect("typed"), "replaced");

    let awkward = awkward_partitions();
    for (i, partition) in awkward.iter().enumerate() {
        io.store(&asset, partition, &Output::new(i as u64), &meta)
            .await
            .expect("store awkward");
    }
    for (i, partition) in awkward.iter().enumerate() {
        let back = io
            .load(&asset, partition)
            .await
            .expect("load awkward")
            .expect("present");
        assert_eq!(
            back.output.value::<u64>().expect("typed"),
            i as u64,
            "{partition}"
        );
    }

    // Loads at the same time (which a store may answer together): each gets its own key's
    // output, the same key asked twice gets it twice, a missing key or another asset's
    // partition gets nothing.
    let other = unique("io_other");
    io.store(&other, &awkward[0], &Output::new(u64::MAX), &meta)
        .await
        .expect("store other asset");
    let missing = Partition::Str(String::from("never stored"));
    let mut wanted: Vec<(&str, &Partition, Option<u64>)> = awkward
        .iter()
        .enumerate()
        .flat_map(|(i, partition)| [(asset.as_str(), partition, Some(i as u64)); 2])
        .collect();
    wanted.push((asset.as_str(), &missing, None));
    wanted.push((other.as_str(), &awkward[0], Some(u64::MAX)));
    wanted.push((other.as_str(), &awkward[1], None));
    let loaded = futures_util::future::join_all(
        wanted
            .iter()
            .map(|(asset, partition, _)| io.load(asset, partition)),
    )
    .await;
    for ((asset, partition, expected), got) in wanted.iter().zip(loaded) {
        let got = got
            .expect("concurrent load")
            .map(|stored| stored.output.value::<u64>().expect("typed"));
        assert_eq!(got, *expected, "{asset} {partition}");
    }

    assert!(io.delete(&asset, &p).await.expect("delete"));
    assert!(io.load(&asset, &p).await.expect("load deleted").is_none());
    assert!(!io.exists(&asset, &p).await.expect("exists deleted"));
}

/// Checks retention on a store and a lineage store of their own (a policy applies to all they
/// hold): keep-latest and max-age, the latest and latest successful records always kept, the
/// lineage of dropped records (and only theirs) dropped with them, a long history pruned in
/// several chunks, and a second pass finding nothing.
pub async fn retention_suite(store: &dyn MaterializationStore, lineage: &dyn LineageStore) {
    let a = unique("ret_a");
    let b = unique("ret_b");
    let (p1, p2) = (Partition::Int(1), Partition::Int(2));
    let p3 = awkward_partitions().pop().expect("a nested partition");
    let u = Partition::Unpartitioned;
    let with_status = |mut m: Materialization, status| {
        m.status = status;
        m
    };
    use MaterializationStatus::{Failed, Success};

    // p1: two successes, then three failures; p2: one old failure; p3: three successes;
    // b: a long history.
    let r1: Vec<RunId> = (0..5).map(|_| RunId::new()).collect();
    for (i, run) in r1.iter().enumerate() {
        let status = if i < 2 { Success } else { Failed };
        let m = with_status(record(&a, p1.clone(), *run, i as i64), status);
        store.record(&m).await.expect("record p1");
    }
    let r2 = RunId::new();
    store
        .record(&with_status(record(&a, p2.clone(), r2, -1_000), Failed))
        .await
        .expect("record p2");
    let r3: Vec<RunId> = (0..3).map(|_| RunId::new()).collect();
    for (i, run) in r3.iter().enumerate() {
        let m = with_status(record(&a, p3.clone(), *run, 10 + i as i64), Success);
        store.record(&m).await.expect("record p3");
    }
    let rb: Vec<RunId> = (0..1_200).map(|_| RunId::new()).collect();
    let writes = rb.iter().enumerate().map(|(i, run)| {
        let m = with_status(record(&b, u.clone(), *run, 20 + i as i64), Success);
        async move { store.record(&m).await }
    });
    for written in futures_util::future::join_all(writes).await {
        written.expect("record b");
    }

    let x = key(&unique("ret_x"), &u, RunId::new());
    lineage
        .record(&key(&a, &p1, r1[2]), &[key(&b, &u, rb[0]), x.clone()])
        .await
        .expect("lineage of a dropped record");
    lineage
        .record(&key(&a, &p1, r1[4]), &[key(&a, &p1, r1[0])])
        .await
        .expect("lineage of a kept record that read a dropped one");
    lineage
        .record(&key(&a, &p3, r3[0]), &[key(&b, &u, rb[5])])
        .await
        .expect("lineage of another dropped record");
    lineage
        .record(&key(&b, &u, rb[1_199]), &[key(&a, &p3, r3[2])])
        .await
        .expect("lineage of the newest record");

    let runs_of = |asset: String, partition: Partition| async move {
        let mut runs: Vec<RunId> = store
            .list(&MaterializationQuery::asset(asset).partition(partition))
            .await
            .expect("list")
            .into_iter()
            .map(|m| m.run_id)
            .collect();
        runs.sort();
        runs
    };
    let sorted = |mut runs: Vec<RunId>| {
        runs.sort();
        runs
    };

    let nothing = RetentionPolicy::new()
        .apply_at(at(10_000), store, lineage)
        .await
        .expect("keep everything");
    assert_eq!(nothing, RetentionReport::default());
    assert_eq!(runs_of(a.clone(), p1.clone()).await.len(), 5);

    // Keep the newest two: p1 keeps r1[4], r1[3] and its latest success r1[1]; p2 its only
    // record; p3 its newest two; b its newest two (1,198 records, more than one chunk, go).
    let by_count = RetentionPolicy::new().keep_latest(2);
    let report = by_count
        .apply_at(at(10_000), store, lineage)
        .await
        .expect("keep the newest two");
    assert_eq!(
        report,
        RetentionReport {
            records: 2 + 1 + 1_198,
            lineage_edges: 3,
        }
    );
    assert_eq!(
        runs_of(a.clone(), p1.clone()).await,
        sorted(vec![r1[1], r1[3], r1[4]])
    );
    assert_eq!(runs_of(a.clone(), p2.clone()).await, vec![r2]);
    assert_eq!(
        runs_of(a.clone(), p3.clone()).await,
        sorted(vec![r3[1], r3[2]])
    );
    assert_eq!(
        runs_of(b.clone(), u.clone()).await,
        sorted(vec![rb[1_198], rb[1_199]])
    );
    assert!(
        lineage
            .consumed_by(&key(&a, &p1, r1[2]))
            .await
            .expect("lineage")
            .is_empty(),
        "a dropped record's lineage goes with it"
    );
    assert!(
        lineage
            .consumed_by(&key(&a, &p3, r3[0]))
            .await
            .expect("lineage")
            .is_empty()
    );
    assert_eq!(
        lineage
            .consumed_by(&key(&a, &p1, r1[4]))
            .await
            .expect("lineage"),
        vec![key(&a, &p1, r1[0])],
        "a kept record still names the run it read, dropped or not"
    );
    assert_eq!(
        lineage
            .consumed_by(&key(&b, &u, rb[1_199]))
            .await
            .expect("lineage"),
        vec![key(&a, &p3, r3[2])]
    );
    let again = by_count
        .apply_at(at(10_000), store, lineage)
        .await
        .expect("second pass");
    assert_eq!(
        again,
        RetentionReport::default(),
        "a second pass finds nothing"
    );

    // Drop what started more than 100 s before at(111), i.e. before at(11): p1 loses r1[3]
    // (r1[4] is its latest, r1[1] its latest success); p2's only record is its latest; p3's
    // at(11) is not older than the cutoff.
    let by_age = RetentionPolicy::new().max_age(Duration::from_secs(100));
    let report = by_age
        .apply_at(at(111), store, lineage)
        .await
        .expect("drop by age");
    assert_eq!(
        report,
        RetentionReport {
            records: 1,
            lineage_edges: 0,
        }
    );
    assert_eq!(
        runs_of(a.clone(), p1.clone()).await,
        sorted(vec![r1[1], r1[4]])
    );
    assert_eq!(runs_of(a.clone(), p2.clone()).await, vec![r2]);
    assert_eq!(runs_of(a.clone(), p3.clone()).await.len(), 2);

    // Both limits: a record goes when either says so. Keeping one, and nothing older than
    // at(12) at at(112): p3's at(11) goes by both rules, b's older record by count.
    let both = RetentionPolicy::new()
        .keep_latest(1)
        .max_age(Duration::from_secs(100));
    let report = both
        .apply_at(at(112), store, lineage)
        .await
        .expect("both limits");
    assert_eq!(report.records, 2, "p3's older record and b's older record");
    // p1 keeps its latest and its latest success whatever the policy says.
    assert_eq!(
        runs_of(a.clone(), p1.clone()).await,
        sorted(vec![r1[1], r1[4]])
    );
    assert_eq!(runs_of(a.clone(), p3.clone()).await, vec![r3[2]]);
    assert_eq!(runs_of(b, u).await, vec![rb[1_199]]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{FileIo, MemoryIo};
    use crate::lineage::MemoryLineage;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn memory_store_passes_the_store_suite() {
        store_suite(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn memory_lineage_passes_the_lineage_suite() {
        lineage_suite(&MemoryLineage::new()).await;
    }

    #[tokio::test]
    async fn memory_store_and_lineage_pass_the_retention_suite() {
        retention_suite(&MemoryStore::new(), &MemoryLineage::new()).await;
    }

    #[tokio::test]
    async fn memory_io_passes_the_io_suite() {
        io_suite(&MemoryIo::new()).await;
    }

    #[tokio::test]
    async fn file_io_passes_the_io_suite() {
        let dir = std::env::temp_dir().join(unique("flowstone_file_io"));
        io_suite(&FileIo::new(&dir)).await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
