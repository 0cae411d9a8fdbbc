//! Cancelling a job that has finished is an `AlreadyFinished` error naming its state, on every
//! executor; cancelling one that is already cancelled is harmless.

mod common;

use std::time::Duration;

use flowstone::{Asset, Error, ErrorKind, FlowStone, JobStatus, Run, Strategy};
use flowstone_queue::testing::TestDb;

use common::queue::{connect, start_worker};
use common::wait::wait_finished;

fn ok_asset() -> Asset {
    Asset::new("fine").execute(|_ctx| async { Ok::<_, Error>(1u8) })
}

fn failing_asset() -> Asset {
    Asset::new("broken").execute(|_ctx| async { Err::<u8, _>(Error::permanent("no input")) })
}

#[track_caller]
fn assert_already(err: Error, state: &str) {
    assert_eq!(err.kind(), ErrorKind::AlreadyFinished, "{err}");
    assert!(
        err.to_string().contains(&format!("already {state}")),
        "does not name the state {state}: {err}"
    );
}

#[tokio::test]
async fn in_process_executors_refuse_to_cancel_finished_jobs_naming_the_state() {
    let fs = FlowStone::builder()
        .asset(ok_asset())
        .asset(failing_asset())
        .build()
        .unwrap();
    for strategy in [Strategy::Sync, Strategy::Async, Strategy::Serial] {
        for (asset, state) in [("fine", "completed"), ("broken", "failed")] {
            let job = fs
                .schedule(asset, Run::unpartitioned().executor(strategy.clone()))
                .await
                .unwrap();
            wait_finished(&fs, &job).await;
            let err = fs.cancel_job(&job).await.unwrap_err();
            assert_already(err, state);
        }
    }
}

#[tokio::test]
async fn cancelling_a_cancelled_task_async_job_again_is_ok() {
    let fs = FlowStone::builder()
        .asset(Asset::new("waits").execute(|ctx| async move {
            ctx.cancellation().cancelled().await;
            Ok::<_, Error>(0u8)
        }))
        .build()
        .unwrap();
    let job = fs
        .schedule("waits", Run::unpartitioned().executor(Strategy::Async))
        .await
        .unwrap();
    fs.cancel_job(&job).await.unwrap();
    assert!(matches!(
        fs.job_status(&job).await.unwrap(),
        JobStatus::Cancelled
    ));
    fs.cancel_job(&job).await.unwrap();
}

async fn queue_jobs_that_finished_cannot_be_cancelled(db: &TestDb) {
    let fs = connect(db, vec![ok_asset(), failing_asset()]).await;
    let worker = start_worker(&fs, "cancel-finished").await;
    for (asset, state) in [("fine", "completed"), ("broken", "discarded")] {
        let job = fs
            .schedule(asset, Run::unpartitioned().executor(Strategy::Queue))
            .await
            .unwrap();
        wait_finished(&fs, &job).await;
        let err = fs.cancel_job(&job).await.unwrap_err();
        assert_already(err, state);
    }
    worker.shutdown(Duration::from_secs(5)).await;
}

async fn a_cancelled_queue_job_can_be_cancelled_again(db: &TestDb) {
    let fs = connect(db, vec![ok_asset()]).await;
    // No worker: the job stays pending until it is cancelled.
    let job = fs
        .schedule("fine", Run::unpartitioned().executor(Strategy::Queue))
        .await
        .unwrap();
    fs.cancel_job(&job).await.unwrap();
    assert!(matches!(
        fs.job_status(&job).await.unwrap(),
        JobStatus::Cancelled
    ));
    fs.cancel_job(&job).await.unwrap();
}

flowstone_queue::both_engines!(
    queue_jobs_that_finished_cannot_be_cancelled,
    a_cancelled_queue_job_can_be_cancelled_again,
);
