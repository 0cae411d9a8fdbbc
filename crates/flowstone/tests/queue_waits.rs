//! Nothing waits forever on the queue: `Strategy::Auto` picks the queue only while a live worker
//! serves the run's queue, and a queue `materialize` honours `Run::timeout` as its wait limit.

mod common;

use std::time::Duration;

use flowstone::{Asset, Error, ErrorKind, Run, Strategy};
use flowstone_queue::JobState;
use flowstone_queue::testing::TestDb;

use common::queue::{connect, start_worker, worker};
use common::records;

fn answer() -> Asset {
    Asset::new("answer").execute(|_ctx| async { Ok::<_, Error>(42u32) })
}

/// The executor the newest record of `answer` names.
async fn last_executor(fs: &flowstone::FlowStone) -> String {
    let mut all = records(fs, "answer").await;
    all.sort_by_key(|m| m.started_at);
    all.pop().expect("a record").executor
}

async fn auto_runs_in_process_when_no_worker_serves_the_queue(db: &TestDb) {
    let fs = connect(db, vec![answer()]).await;
    let materialize = || async {
        let out: u32 = fs
            .materialize("answer", Run::unpartitioned())
            .await
            .unwrap()
            .value()
            .unwrap();
        assert_eq!(out, 42);
    };
    // A database, but no worker: Auto must not wait on the queue.
    materialize().await;
    assert_eq!(last_executor(&fs).await, "sync");

    // A worker on another queue does not count either.
    let elsewhere = worker(&fs, "reports", 1, "elsewhere")
        .start()
        .await
        .unwrap();
    materialize().await;
    assert_eq!(last_executor(&fs).await, "sync");
    elsewhere.shutdown(Duration::from_secs(5)).await;

    // Once a worker serves `assets`, Auto uses the queue.
    let serving = start_worker(&fs, "serving").await;
    materialize().await;
    assert_eq!(last_executor(&fs).await, "queue");
    serving.shutdown(Duration::from_secs(5)).await;

    // After a graceful shutdown the node is gone, so Auto is back in process.
    materialize().await;
    assert_eq!(last_executor(&fs).await, "sync");

    // schedule does not wait: Auto enqueues for a worker that is yet to come.
    let job = fs.schedule("answer", Run::unpartitioned()).await.unwrap();
    assert_eq!(job.executor, "queue");
}

async fn the_queue_reports_which_workers_serve_a_queue(db: &TestDb) {
    let fs = connect(db, vec![answer()]).await;
    let queue = fs.queue().unwrap();
    let within = Duration::from_secs(60);
    assert!(
        queue
            .workers_serving("assets", within)
            .await
            .unwrap()
            .is_empty()
    );
    let handle = worker(&fs, "assets", 1, "lister").start().await.unwrap();
    let nodes = queue.workers_serving("assets", within).await.unwrap();
    assert_eq!(nodes, vec![handle.node().to_owned()]);
    assert!(
        queue
            .workers_serving("reports", within)
            .await
            .unwrap()
            .is_empty()
    );
    let err = queue
        .workers_serving("bad name!", within)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bad name!"), "{err}");
    handle.shutdown(Duration::from_secs(5)).await;
}

async fn a_queue_materialize_gives_up_waiting_after_its_timeout(db: &TestDb) {
    let fs = connect(db, vec![answer()]).await;
    // No worker: the job cannot finish, so the wait limit is what ends the call.
    let err = fs
        .materialize(
            "answer",
            Run::unpartitioned()
                .executor(Strategy::Queue)
                .timeout(Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ExecutionTimeout, "{err}");
    assert!(err.to_string().contains("stays queued"), "{err}");
    assert!(
        err.to_string().contains("queue row"),
        "names the job: {err}"
    );
    // The job is still there, and a worker runs it later.
    let rows = fs
        .queue()
        .unwrap()
        .list(&flowstone_queue::JobFilter::default())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, JobState::Available);
    let handle = start_worker(&fs, "later").await;
    let row = fs
        .queue()
        .unwrap()
        .wait(rows[0].id, common::wait::PATIENCE)
        .await
        .unwrap();
    assert_eq!(row.state, JobState::Completed);
    handle.shutdown(Duration::from_secs(5)).await;

    // schedule does not wait, so a timeout there is refused by name.
    let err = fs
        .schedule(
            "answer",
            Run::unpartitioned()
                .executor(Strategy::Queue)
                .timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{err}");
    assert!(err.to_string().contains("timeout"), "{err}");
}

flowstone_queue::both_engines!(
    auto_runs_in_process_when_no_worker_serves_the_queue,
    the_queue_reports_which_workers_serve_a_queue,
    a_queue_materialize_gives_up_waiting_after_its_timeout,
);
