//! A first end-to-end check of the Queue executor on SQLite: a worker in this process runs what
//! `materialize` enqueues, and the caller gets the output back through the job row.

use std::time::Duration;

use flowstone::{Asset, FlowStone, Partition, Run, Strategy};
use flowstone_queue::WorkerSettings;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_materialize_returns_the_output_from_an_in_process_worker() {
    let dir = std::env::temp_dir().join(format!("fs_smoke_{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("fs.db").display());
    let fs = FlowStone::builder()
        .asset(Asset::new("base").execute(|_ctx| async move { Ok::<u64, flowstone::Error>(20) }))
        .asset(
            Asset::new("doubled")
                .depends_on(["base"])
                .execute(|ctx| async move {
                    let base: u64 = ctx.dep("base")?;
                    Ok::<u64, flowstone::Error>(base * 2 + 2)
                }),
        )
        .database(url)
        .connect()
        .await
        .expect("connect");
    let worker = fs
        .worker()
        .queue("assets", 4)
        .settings(WorkerSettings {
            poll_interval: Duration::from_millis(50),
            ..WorkerSettings::default()
        })
        .start()
        .await
        .expect("worker starts");
    let out: u64 = fs
        .materialize(
            "doubled",
            Run::unpartitioned()
                .executor(Strategy::Queue)
                .with_upstream(true),
        )
        .await
        .expect("materialize through the queue")
        .value()
        .expect("typed");
    assert_eq!(out, 42);
    let loaded: u64 = fs.load("doubled", Partition::Unpartitioned).await.unwrap();
    assert_eq!(loaded, 42);
    worker.shutdown(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&dir);
}
