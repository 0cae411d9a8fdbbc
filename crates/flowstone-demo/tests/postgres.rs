//! The command line on PostgreSQL: the demo, records and lineage across processes, and a worker
//! process running queued work, on a database of the test's own (`FLOWSTONE_TEST_PG_URL`).

mod common;

use common::{Worker, run, sandbox};
use flowstone_queue::testing::TestDb;

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_works_on_postgresql() {
    let Some(db) = TestDb::postgres().await else {
        return; // Said loudly by TestDb; fails under CI=true.
    };
    let url = db.url().to_owned();
    let dir = sandbox("postgres");
    let call = |line: &str| run(&dir, &format!("--database {url} {line}"));

    let ran = tokio::task::block_in_place(|| call("demo --executor async"));
    ran.expect_code(0).stdout_has("Reports:");
    assert!(dir.join("data/reports/seattle-weather-2014.md").exists());

    let records =
        tokio::task::block_in_place(|| call("--json materializations raw_weather -p 2014-03"))
            .expect_code(0)
            .json();
    assert_eq!(records["materializations"][0]["attempt"], 2);
    let lineage = tokio::task::block_in_place(|| call("--json lineage monthly_stats -p 2014-03"))
        .expect_code(0)
        .json();
    assert_eq!(lineage["lineage"].as_array().unwrap().len(), 2);

    tokio::task::block_in_place(|| {
        // `worker` comes first in Worker::start; the global option may follow it.
        let worker = Worker::start(&dir, &format!("--database {url} --queue assets=2"));
        call("backfill raw_weather --partitions 2015-01,2015-02 --executor queue --force")
            .expect_code(0);
        assert_eq!(worker.terminate(), 0);
    });

    db.cleanup().await;
}
