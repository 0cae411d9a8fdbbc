//! Jobs that wait for other jobs (`Queue::insert_graph`), on SQLite and PostgreSQL: released
//! by the acknowledgement of their last upstream job, once; ended without running when an
//! upstream job gives up or is cancelled.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{StartForTest, fast_worker, migrated, wait_until};
use flowstone_queue::testing::TestDb;
use flowstone_queue::{JobState, NewJob, Outcome, Queue, UPSTREAM_FAILED};
use serde_json::json;

flowstone_queue::both_engines!(
    a_job_runs_only_after_all_its_upstream_jobs_completed,
    a_failed_upstream_job_ends_what_waits_for_it_without_running,
    cancelling_an_upstream_job_cancels_what_waits_for_it,
    edges_naming_jobs_outside_the_graph_are_refused,
    a_cancelled_waiting_job_stays_cancelled_when_its_upstream_completes,
);

async fn state(q: &Queue, id: i64) -> JobState {
    q.get(id).await.expect("get job").state
}

/// A worker whose `step` jobs record their `args.n` in order and complete, and whose `fail`
/// jobs fail for good.
fn worker(
    t: &TestDb,
    concurrency: usize,
) -> (Arc<Mutex<Vec<i64>>>, flowstone_queue::WorkerBuilder) {
    let ran = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ran);
    let builder = fast_worker(&t.db, concurrency)
        .handler("step", move |ctx| {
            seen.lock().unwrap().push(
                ctx.args_json()
                    .ok()
                    .and_then(|a| a["n"].as_i64())
                    .unwrap_or(-1),
            );
            async { Outcome::complete() }
        })
        .handler("fail", |_ctx| async {
            Outcome::discard("this step never works")
        });
    (ran, builder)
}

fn step(n: i64) -> NewJob {
    NewJob::new("step", json!({ "n": n }))
}

async fn a_job_runs_only_after_all_its_upstream_jobs_completed(t: &TestDb) {
    let q = migrated(t).await;
    // 0 and 1 feed 2; 2 feeds 3; 4 is on its own.
    let jobs = vec![step(0), step(1), step(2), step(3), step(4)];
    let ids = q
        .insert_graph(&jobs, &[(0, 2), (1, 2), (2, 3)])
        .await
        .unwrap();
    let ids: Vec<i64> = ids.iter().map(|i| i.id).collect();
    let waiting = q.get(ids[2]).await.unwrap();
    assert_eq!(
        waiting.state,
        JobState::Scheduled,
        "a waiting job is not due"
    );
    assert_eq!(state(&q, ids[3]).await, JobState::Scheduled);
    assert_eq!(state(&q, ids[0]).await, JobState::Available);

    let (ran, builder) = worker(t, 4);
    let w = builder.started().await;
    wait_until("the graph ran", || async {
        state(&q, ids[3]).await == JobState::Completed
    })
    .await;
    w.shutdown(Duration::from_secs(10)).await;
    let order = ran.lock().unwrap().clone();
    let at = |n: i64| order.iter().position(|x| *x == n).unwrap();
    assert_eq!(order.len(), 5, "each job ran once: {order:?}");
    assert!(
        at(2) > at(0) && at(2) > at(1),
        "2 after both of its inputs: {order:?}"
    );
    assert!(at(3) > at(2), "3 after 2: {order:?}");
    for id in &ids {
        assert_eq!(state(&q, *id).await, JobState::Completed);
    }
}

async fn a_failed_upstream_job_ends_what_waits_for_it_without_running(t: &TestDb) {
    let q = migrated(t).await;
    // fail -> 1 -> 2, and 3 waits for both the failure and 4.
    let jobs = vec![
        NewJob::new("fail", json!({})).max_attempts(1),
        step(1),
        step(2),
        step(3),
        step(4),
    ];
    let ids: Vec<i64> = q
        .insert_graph(&jobs, &[(0, 1), (1, 2), (0, 3), (4, 3)])
        .await
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    let (ran, builder) = worker(t, 2);
    let w = builder.started().await;
    wait_until("the failure reached its dependents", || async {
        state(&q, ids[2]).await.is_final()
            && state(&q, ids[3]).await.is_final()
            && state(&q, ids[4]).await.is_final()
    })
    .await;
    w.shutdown(Duration::from_secs(10)).await;
    assert_eq!(state(&q, ids[0]).await, JobState::Discarded);
    for blocked in [ids[1], ids[2], ids[3]] {
        let job = q.get(blocked).await.unwrap();
        assert_eq!(job.state, JobState::Discarded, "job {blocked}");
        assert_eq!(job.attempt, 0, "job {blocked} never ran");
        let error = &job.errors.last().expect("an error says why").error;
        assert!(error.starts_with(UPSTREAM_FAILED), "{error}");
        assert!(error.contains(&ids[0].to_string()), "{error}");
    }
    assert_eq!(state(&q, ids[4]).await, JobState::Completed);
    assert_eq!(
        *ran.lock().unwrap(),
        vec![4],
        "only the independent job ran"
    );
}

async fn cancelling_an_upstream_job_cancels_what_waits_for_it(t: &TestDb) {
    let q = migrated(t).await;
    let ids: Vec<i64> = q
        .insert_graph(&[step(0), step(1), step(2)], &[(0, 1), (1, 2)])
        .await
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    q.cancel(ids[0]).await.unwrap();
    for id in &ids {
        assert_eq!(state(&q, *id).await, JobState::Cancelled, "job {id}");
    }
}

async fn edges_naming_jobs_outside_the_graph_are_refused(t: &TestDb) {
    let q = migrated(t).await;
    for edges in [vec![(0, 2)], vec![(1, 1)]] {
        let err = q
            .insert_graph(&[step(0), step(1)], &edges)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("edge"), "{err}");
    }
    assert!(
        q.list(&Default::default()).await.unwrap().is_empty(),
        "nothing was inserted"
    );
}

async fn a_cancelled_waiting_job_stays_cancelled_when_its_upstream_completes(t: &TestDb) {
    let q = migrated(t).await;
    let ids: Vec<i64> = q
        .insert_graph(&[step(0), step(1)], &[(0, 1)])
        .await
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    q.cancel(ids[1]).await.unwrap();
    let (ran, builder) = worker(t, 2);
    let w = builder.started().await;
    wait_until("the upstream job completed", || async {
        state(&q, ids[0]).await == JobState::Completed
    })
    .await;
    w.shutdown(Duration::from_secs(10)).await;
    assert_eq!(state(&q, ids[1]).await, JobState::Cancelled);
    assert_eq!(*ran.lock().unwrap(), vec![0], "the cancelled job never ran");
}
