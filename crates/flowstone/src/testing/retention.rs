//! The retention suite: what every store and lineage pair must do under a [`RetentionPolicy`].

use std::time::Duration;

use crate::ids::RunId;
use crate::lineage::LineageStore;
use crate::partition::Partition;
use crate::retention::{RetentionPolicy, RetentionReport};
use crate::store::{
    Materialization, MaterializationQuery, MaterializationStatus, MaterializationStore,
};

use super::{at, awkward_partitions, key, record, unique};

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
