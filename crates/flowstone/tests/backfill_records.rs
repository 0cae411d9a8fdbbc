//! Every materialization record of a backfill carries the backfill's id, whichever executor ran
//! it, in the SQL store on SQLite and PostgreSQL.

mod common;

use std::time::Duration;

use flowstone::{Asset, Backfill, Error, Run, StaticPartitions, Strategy};
use flowstone_queue::testing::TestDb;

use common::queue::{connect, start_worker};
use common::records;

fn regions() -> Asset {
    Asset::new("regions")
        .partitioned_by(StaticPartitions::new(["eu", "us", "ap"]))
        .execute(|ctx| async move { Ok::<_, Error>(ctx.partition().to_string()) })
}

async fn backfill_records_carry_the_backfill_id(db: &TestDb) {
    let fs = connect(db, vec![regions()]).await;
    let worker = start_worker(&fs, "backfill-ids").await;
    for strategy in [Strategy::Async, Strategy::Queue] {
        let report = fs
            .backfill(
                "regions",
                Backfill::all().executor(strategy.clone()).force(true),
            )
            .await
            .unwrap();
        assert_eq!(report.succeeded, 3, "{strategy:?}: {report:?}");
        let of_this: Vec<_> = records(&fs, "regions")
            .await
            .into_iter()
            .filter(|m| m.backfill_id == Some(report.backfill_id))
            .collect();
        assert_eq!(of_this.len(), 3, "{strategy:?}: one record per partition");
    }
    // A run outside a backfill carries none.
    fs.materialize("regions", Run::partition("eu").executor(Strategy::Sync))
        .await
        .unwrap();
    let outside = records(&fs, "regions")
        .await
        .into_iter()
        .filter(|m| m.backfill_id.is_none())
        .count();
    assert_eq!(outside, 1);
    worker.shutdown(Duration::from_secs(5)).await;
}

flowstone_queue::both_engines!(backfill_records_carry_the_backfill_id);
