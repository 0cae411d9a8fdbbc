//! The lineage suite: what every [`LineageStore`] must do.

use crate::ids::RunId;
use crate::lineage::{self, LineageStore};
use crate::partition::Partition;

use super::{key, unique};

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
