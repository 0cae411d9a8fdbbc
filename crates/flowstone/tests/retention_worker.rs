//! A worker configured with a retention policy prunes old materialization records (and the
//! lineage they recorded) as its leader duty, on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use flowstone::store::RetentionPolicy;
use flowstone::{Asset, Error, Partition, Run, StaticPartitions, Strategy};
use flowstone_queue::testing::TestDb;

use common::queue::worker;
use common::records;
use common::wait::wait_for;

fn assets() -> Vec<Asset> {
    vec![
        Asset::new("raw")
            .partitioned_by(StaticPartitions::new(["eu", "us"]))
            .execute(|ctx| async move { Ok::<_, Error>(ctx.partition().to_string()) }),
        Asset::new("clean")
            .partitioned_by(StaticPartitions::new(["eu", "us"]))
            .depends_on(["raw"])
            .execute(|ctx| async move {
                let raw: String = ctx.dep("raw")?;
                Ok::<_, Error>(raw.len())
            }),
    ]
}

async fn a_worker_with_retention_keeps_the_newest_records(db: &TestDb) {
    let fs = common::queue::connect(db, assets()).await;
    for _ in 0..3 {
        for region in ["eu", "us"] {
            let run = Run::partition(Partition::from(region))
                .executor(Strategy::Sync)
                .with_upstream(true);
            fs.materialize("clean", run.clone()).await.unwrap();
            // Run `raw` again too, so each asset has three records per partition.
            fs.materialize(
                "raw",
                Run::partition(Partition::from(region)).executor(Strategy::Sync),
            )
            .await
            .unwrap();
        }
    }
    assert_eq!(records(&fs, "clean").await.len(), 6);
    let newest_clean: Vec<_> = {
        let mut by_region = records(&fs, "clean").await;
        by_region.sort_by_key(|m| std::cmp::Reverse(m.started_at));
        let mut seen = std::collections::BTreeMap::new();
        for m in by_region {
            seen.entry(m.partition.clone()).or_insert(m.run_id);
        }
        seen.into_values().collect()
    };

    let handle = worker(&fs, "assets", 2, "retention")
        .retention(
            RetentionPolicy::new().keep_latest(1),
            Duration::from_millis(100),
        )
        .start()
        .await
        .unwrap();
    wait_for("retention to prune to one record per partition", || async {
        (records(&fs, "clean").await.len() == 2 && records(&fs, "raw").await.len() == 2)
            .then_some(())
    })
    .await;
    let kept: Vec<_> = records(&fs, "clean")
        .await
        .into_iter()
        .map(|m| m.run_id)
        .collect();
    for run_id in &newest_clean {
        assert!(
            kept.contains(run_id),
            "the newest record of each partition is kept"
        );
    }
    // The kept records still have their lineage: each clean partition read its raw one.
    for region in ["eu", "us"] {
        let upstream = fs
            .lineage(
                "clean",
                Partition::from(region),
                flowstone::Direction::Upstream,
                1,
            )
            .await
            .unwrap();
        assert_eq!(upstream.len(), 1, "{region}: {upstream:?}");
    }
    handle.shutdown(Duration::from_secs(5)).await;
}

flowstone_queue::both_engines!(a_worker_with_retention_keeps_the_newest_records);
