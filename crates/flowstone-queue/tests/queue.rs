//! The queue's behaviour, one suite run against SQLite and PostgreSQL (`sqlite::<name>` and
//! `postgres::<name>`), each test on a fresh database.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use common::{
    Flag, RUNS_TABLE, StartForTest, enqueue, enqueue_many, exec, fast, fast_worker, gated_worker,
    migrated, record_run, runs, scalar, start_refused, wait_until,
};
use flowstone_queue::lease::{self, MAINTENANCE_LEASE};
use flowstone_queue::testing::TestDb;
use flowstone_queue::{
    Backoff, Database, Engine, Error, HandlerOptions, Job, JobFilter, JobState, NewJob, Outcome,
    Queue, Unique, Worker,
};
use serde_json::json;

flowstone_queue::both_engines!(
    counts_by_queue_and_state,
    priority_and_schedule_order_claims,
    retry_then_complete_records_errors,
    out_of_attempts_discards,
    non_retryable_error_discards_at_once,
    snooze_does_not_use_up_an_attempt,
    concurrent_unique_inserts_make_one_job,
    four_workers_never_run_a_job_twice,
    cancel_pending_job_never_runs,
    cancelling_a_finished_job_names_its_state,
    cancel_running_job_fires_token,
    a_handler_ignoring_its_token_is_aborted_after_the_grace,
    prefetched_jobs_wait_and_go_back_at_shutdown,
    a_busy_worker_leaves_the_queue_to_others,
    malformed_args_are_discarded_and_worker_goes_on,
    a_worker_never_claims_a_kind_it_lacks,
    unserved_kinds_are_discarded_served_ones_wait,
    batch_list_count_cancel,
    wait_returns_result_and_times_out,
    wait_all_hands_over_each_job_once,
    prune_deletes_old_finished_jobs,
    migrations_are_recorded_in_own_table_once,
    stale_ack_does_not_overwrite_rescued_attempt,
    graceful_shutdown_finishes_or_returns_jobs,
    bulk_insert_spans_chunks,
    keyless_bulk_insert_ids_name_their_rows_beside_other_inserts,
    bulk_insert_is_all_or_nothing_and_names_the_bad_job,
    unstorable_text_is_scrubbed_and_queue_goes_on,
);

async fn job_state(q: &Queue, id: i64) -> JobState {
    q.get(id).await.expect("get job").state
}

async fn all_final(q: &Queue, ids: &[i64]) -> bool {
    for id in ids {
        if !job_state(q, *id).await.is_final() {
            return false;
        }
    }
    true
}

/// A worker whose `kind` handler completes at once and records the ids it ran, in order.
fn recording_worker(
    db: &Database,
    concurrency: usize,
    kind: &str,
) -> (Arc<Mutex<Vec<i64>>>, flowstone_queue::WorkerBuilder) {
    let ran = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ran);
    let worker = fast_worker(db, concurrency).handler(kind, move |ctx| {
        seen.lock().unwrap().push(ctx.id);
        async { Outcome::complete() }
    });
    (ran, worker)
}

async fn priority_and_schedule_order_claims(t: &TestDb) {
    let q = migrated(t).await;
    let now = Utc::now();
    let p5 = enqueue(&q, NewJob::new("rec", json!(1)).priority(5)).await;
    // Same priority: the earlier scheduled_at goes first, whatever the id order.
    let p0_late = enqueue(
        &q,
        NewJob::new("rec", json!(2)).scheduled_at(now - chrono::Duration::seconds(1)),
    )
    .await;
    let p0_early = enqueue(
        &q,
        NewJob::new("rec", json!(3)).scheduled_at(now - chrono::Duration::seconds(10)),
    )
    .await;
    let p9 = enqueue(&q, NewJob::new("rec", json!(4)).priority(9)).await;
    let future = q
        .insert(NewJob::new("rec", json!(5)).schedule_in(Duration::from_secs(3600)))
        .await
        .unwrap()
        .job;
    assert_eq!(future.state, JobState::Scheduled);

    let (order, worker) = recording_worker(&t.db, 1, "rec");
    let worker = worker.started().await;
    let expected = vec![p0_early, p0_late, p5, p9];
    wait_until("four due jobs completed", || all_final(&q, &expected)).await;
    worker.shutdown(Duration::from_secs(10)).await;
    // Had the future job (priority 0) been claimable, it would sit before `p5` here.
    assert_eq!(*order.lock().unwrap(), expected);
    let future = q.get(future.id).await.unwrap();
    assert_eq!(
        future.state,
        JobState::Scheduled,
        "a future job must not run early"
    );
    assert_eq!(future.attempt, 0);
}

/// Runs `job` on a worker whose handlers retry, fail, refuse or snooze by kind; returns the
/// job in its final state.
async fn run_on_flaky_worker(t: &TestDb, job: NewJob) -> Job {
    let q = migrated(t).await;
    let id = enqueue(&q, job).await;
    let worker = flaky_worker(&t.db).started().await;
    let job = q.wait(id, common::PATIENCE).await.unwrap();
    worker.shutdown(Duration::from_secs(10)).await;
    job
}

fn flaky_worker(db: &Database) -> flowstone_queue::WorkerBuilder {
    let quick = HandlerOptions {
        backoff: Backoff::Constant(Duration::from_millis(10)),
        ..HandlerOptions::default()
    };
    fast_worker(db, 4)
        .handler_with("fail_twice", quick.clone(), |ctx| async move {
            if ctx.attempt < 3 {
                Outcome::retry(format!("boom on attempt {}", ctx.attempt))
            } else {
                Outcome::complete_with(&"ok")
            }
        })
        .handler_with("always_fails", quick, |_ctx| async {
            Outcome::retry("still broken")
        })
        .handler("bad_input", |_ctx| async {
            Outcome::discard("input can never work")
        })
        .handler("sleepy", |ctx| async move {
            if ctx.snoozed == 0 {
                Outcome::snooze(Duration::from_millis(20))
            } else {
                Outcome::complete_with(&ctx.snoozed)
            }
        })
}

async fn retry_then_complete_records_errors(t: &TestDb) {
    let job = run_on_flaky_worker(t, NewJob::new("fail_twice", json!({}))).await;
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.attempt, 3);
    assert_eq!(job.errors.len(), 2);
    assert_eq!(job.errors[0].attempt, 1);
    assert_eq!(job.errors[0].error, "boom on attempt 1");
    assert_eq!(job.errors[1].attempt, 2);
    assert_eq!(job.result, Some(json!("ok")));
    assert!(job.completed_at.is_some());
}

async fn out_of_attempts_discards(t: &TestDb) {
    let job = run_on_flaky_worker(t, NewJob::new("always_fails", json!({})).max_attempts(3)).await;
    assert_eq!(job.state, JobState::Discarded);
    assert_eq!(job.attempt, 3);
    assert_eq!(job.errors.len(), 3);
    assert!(job.discarded_at.is_some());
}

async fn non_retryable_error_discards_at_once(t: &TestDb) {
    let job = run_on_flaky_worker(t, NewJob::new("bad_input", json!({}))).await;
    assert_eq!(job.state, JobState::Discarded);
    assert_eq!(job.attempt, 1);
    assert_eq!(job.errors.len(), 1);
    assert_eq!(job.errors[0].error, "input can never work");
}

async fn snooze_does_not_use_up_an_attempt(t: &TestDb) {
    let job = run_on_flaky_worker(t, NewJob::new("sleepy", json!({})).max_attempts(1)).await;
    // One attempt allowed, yet it snoozed once and still completed: the snooze took attempt
    // number 1 (numbers are never reused) and raised the limit with it.
    assert_eq!(job.state, JobState::Completed);
    assert_eq!((job.attempt, job.max_attempts), (2, 2));
    assert_eq!(job.snoozed, 1);
    assert_eq!(
        job.result,
        Some(json!(1)),
        "the handler saw its snooze count"
    );
    assert!(job.errors.is_empty());
}

async fn concurrent_unique_inserts_make_one_job(t: &TestDb) {
    let q = migrated(t).await;
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            q.insert(NewJob::new("once", json!({"user": 7})).unique(Unique::ByArgs))
                .await
                .unwrap()
        }));
    }
    let mut ids = HashSet::new();
    let mut fresh = 0;
    for t in tasks {
        let ins = t.await.unwrap();
        ids.insert(ins.job.id);
        if !ins.conflict {
            fresh += 1;
        }
    }
    assert_eq!(ids.len(), 1, "all inserts return the same job");
    assert_eq!(fresh, 1, "exactly one insert created it");
    let listed = q
        .list(&JobFilter {
            queue: Some("default".into()),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);

    let worker = fast_worker(&t.db, 2)
        .handler("once", |_| async { Outcome::complete() })
        .started()
        .await;
    let first = *ids.iter().next().unwrap();
    q.wait(first, common::PATIENCE).await.unwrap();
    let again = q
        .insert(NewJob::new("once", json!({"user": 7})).unique(Unique::ByArgs))
        .await
        .unwrap();
    assert!(!again.conflict, "a completed job does not block a new run");
    assert_ne!(again.job.id, first);
    q.wait(again.job.id, common::PATIENCE).await.unwrap();
    worker.shutdown(Duration::from_secs(10)).await;
}

async fn four_workers_never_run_a_job_twice(t: &TestDb) {
    let q = migrated(t).await;
    exec(&t.db, RUNS_TABLE).await;
    let running = Arc::new(Mutex::new(HashSet::new()));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let duplicates = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for n in 0..4 {
        // Each worker has its own pool, as separate processes would.
        let db = Database::connect(t.url()).await.unwrap();
        let recorder = t.db.clone();
        let (running, overlaps, duplicates) = (
            Arc::clone(&running),
            Arc::clone(&overlaps),
            Arc::clone(&duplicates),
        );
        let w = Worker::builder(db)
            .node(format!("w{n}"))
            .queue("default", 5)
            .settings(fast())
            .handler("count", move |ctx| {
                let (recorder, running, overlaps, duplicates) = (
                    recorder.clone(),
                    Arc::clone(&running),
                    Arc::clone(&overlaps),
                    Arc::clone(&duplicates),
                );
                async move {
                    if !running.lock().unwrap().insert(ctx.id) {
                        overlaps.fetch_add(1, Ordering::SeqCst);
                    }
                    if !record_run(&recorder, ctx.id, ctx.attempt, &ctx.node).await {
                        duplicates.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    running.lock().unwrap().remove(&ctx.id);
                    Outcome::complete()
                }
            })
            .started()
            .await;
        workers.push(w);
    }
    // Inserted once all four listen, so all four are woken for them.
    let jobs: Vec<NewJob> = (0..400).map(|i| NewJob::new("count", json!(i))).collect();
    let ids: Vec<i64> = enqueue_many(&q, &jobs).await;
    wait_until("400 jobs completed", || async {
        scalar(
            &t.db,
            "SELECT count(*) FROM flowstone_jobs WHERE state = 'completed'",
        )
        .await
            == 400
    })
    .await;
    for w in workers {
        w.shutdown(Duration::from_secs(10)).await;
    }
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "a job ran on two workers at once"
    );
    assert_eq!(duplicates.load(Ordering::SeqCst), 0, "an attempt ran twice");
    let runs = runs(&t.db).await;
    assert_eq!(runs.len(), 400);
    assert!(runs.iter().all(|r| r.1 == 1));
    let nodes: HashSet<&str> = runs.iter().map(|r| r.2.as_str()).collect();
    assert!(nodes.len() > 1, "work was shared: {nodes:?}");
    assert_eq!(ids.len(), 400);
}

async fn cancel_pending_job_never_runs(t: &TestDb) {
    let q = migrated(t).await;
    let doomed = enqueue(&q, NewJob::new("track", json!("doomed"))).await;
    let cancelled = q.cancel(doomed).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(cancelled.cancelled_at.is_some());
    let (ran, worker) = recording_worker(&t.db, 2, "track");
    let worker = worker.started().await;
    // A later job on the same queue runs: the worker did look at the queue.
    let later = enqueue(&q, NewJob::new("track", json!("later"))).await;
    q.wait(later, common::PATIENCE).await.unwrap();
    worker.shutdown(Duration::from_secs(10)).await;
    assert_eq!(*ran.lock().unwrap(), vec![later]);
    let doomed = q.get(doomed).await.unwrap();
    assert_eq!(doomed.state, JobState::Cancelled);
    assert_eq!(doomed.attempt, 0);
}

async fn cancelling_a_finished_job_names_its_state(t: &TestDb) {
    let q = migrated(t).await;
    let worker = fast_worker(&t.db, 2)
        .handler("ok", |_| async { Outcome::complete() })
        .handler("bad", |_| async { Outcome::discard("no") })
        .started()
        .await;
    for (kind, state) in [("ok", JobState::Completed), ("bad", JobState::Discarded)] {
        let id = enqueue(&q, NewJob::new(kind, json!({}))).await;
        assert_eq!(q.wait(id, common::PATIENCE).await.unwrap().state, state);
        match q.cancel(id).await {
            Err(err @ Error::AlreadyFinished { .. }) => {
                assert!(
                    err.to_string().contains(&format!("already {state}")),
                    "{err}"
                );
            }
            other => panic!("cancelling a {state} job: {other:?}"),
        }
        assert_eq!(q.get(id).await.unwrap().state, state, "left as it was");
    }
    worker.shutdown(Duration::from_secs(5)).await;
    // A cancelled job cancelled again stays cancelled, harmlessly.
    let id = enqueue(&q, NewJob::new("none", json!({}))).await;
    q.cancel(id).await.unwrap();
    assert_eq!(q.cancel(id).await.unwrap().state, JobState::Cancelled);
}

async fn cancel_running_job_fires_token(t: &TestDb) {
    let q = migrated(t).await;
    let (fired, started) = (Flag::default(), Flag::default());
    let (f, s) = (fired.clone(), started.clone());
    let worker = fast_worker(&t.db, 2)
        .handler("block", move |ctx| {
            let (f, s) = (f.clone(), s.clone());
            async move {
                s.set();
                tokio::select! {
                    _ = ctx.cancel.cancelled() => {
                        f.set();
                        Outcome::cancelled("saw the token")
                    }
                    _ = tokio::time::sleep(common::PATIENCE) => Outcome::complete(),
                }
            }
        })
        .started()
        .await;
    let id = enqueue(&q, NewJob::new("block", json!({}))).await;
    started.wait("handler started").await;
    // Cancel from another connection pool (another process, as far as signals go).
    let other = Queue::connect(t.url()).await.unwrap();
    other.cancel(id).await.unwrap();
    fired.wait("token fired").await;
    worker.shutdown(Duration::from_secs(10)).await;
    let job = q.get(id).await.unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert!(job.cancelled_at.is_some());
    assert!(job.completed_at.is_none());
}

/// A worker with one slot claims three more jobs ahead (`prefetch`): they are `executing` on
/// its node but do not run; one cancelled while it waits never runs; at shutdown the others go
/// back to the queue without using up an attempt, and a new worker runs them.
async fn prefetched_jobs_wait_and_go_back_at_shutdown(t: &TestDb) {
    let q = migrated(t).await;
    let (started, release) = (Flag::default(), Arc::new(tokio::sync::Notify::new()));
    let ran = Arc::new(Mutex::new(Vec::new()));
    let (st, rel, seen) = (started.clone(), Arc::clone(&release), Arc::clone(&ran));
    let mut s = fast();
    s.prefetch = Some(3);
    let worker = Worker::builder(t.db.clone())
        .node("prefetcher")
        .queue("default", 1)
        .settings(s)
        .handler("job", move |ctx| {
            let (st, rel, seen) = (st.clone(), Arc::clone(&rel), Arc::clone(&seen));
            async move {
                seen.lock().unwrap().push(ctx.id);
                st.set();
                rel.notified().await;
                Outcome::complete()
            }
        })
        .started()
        .await;
    let ids = enqueue_many(
        &q,
        &(0..4)
            .map(|i| NewJob::new("job", json!(i)))
            .collect::<Vec<_>>(),
    )
    .await;
    started.wait("the first job runs").await;
    wait_until("three more claimed ahead", || async {
        let mut executing = 0;
        for id in &ids {
            executing += usize::from(job_state(&q, *id).await == JobState::Executing);
        }
        executing == 4
    })
    .await;
    assert_eq!(*ran.lock().unwrap(), [ids[0]], "only the slot's job runs");
    q.cancel(ids[1]).await.unwrap();
    let shutdown = tokio::spawn(worker.shutdown(Duration::from_secs(10)));
    wait_until("the prefetched jobs go back", || async {
        job_state(&q, ids[2]).await == JobState::Available
            && job_state(&q, ids[3]).await == JobState::Available
    })
    .await;
    release.notify_one();
    assert_eq!(shutdown.await.unwrap().abandoned, 0);
    assert_eq!(job_state(&q, ids[0]).await, JobState::Completed);
    assert_eq!(job_state(&q, ids[1]).await, JobState::Cancelled);
    for id in &ids[2..] {
        let row = q.get(*id).await.unwrap();
        assert_eq!(
            (row.attempt, row.max_attempts),
            (1, 21),
            "the attempt number is spent, not counted"
        );
    }
    assert_eq!(*ran.lock().unwrap(), [ids[0]], "no prefetched job ran");

    let (order, next) = recording_worker(&t.db, 1, "job");
    let next = next.started().await;
    for id in &ids[2..] {
        assert_eq!(
            q.wait(*id, common::PATIENCE).await.unwrap().state,
            JobState::Completed
        );
    }
    assert_eq!(*order.lock().unwrap(), ids[2..]);
    next.shutdown(Duration::from_secs(10)).await;
}

/// The default prefetch adapts: a worker whose job is slow buffers nothing more, so another
/// worker takes the rest of the queue while the first one is busy.
async fn a_busy_worker_leaves_the_queue_to_others(t: &TestDb) {
    let q = migrated(t).await;
    let (started, release, slow) = gated_worker(&t.db, "job", fast());
    let slow = slow.node("slow").started().await;
    let first = enqueue(&q, NewJob::new("job", json!(0))).await;
    started.wait("the slow worker runs the first job").await;
    let rest = enqueue_many(
        &q,
        &(1..4)
            .map(|i| NewJob::new("job", json!(i)))
            .collect::<Vec<_>>(),
    )
    .await;
    let (ran, other) = recording_worker(&t.db, 1, "job");
    let other = other.node("other").started().await;
    for id in &rest {
        let done = q.wait(*id, common::PATIENCE).await.unwrap();
        assert_eq!(done.node.as_deref(), Some("other"), "{done:?}");
    }
    assert_eq!(*ran.lock().unwrap(), rest);
    release.notify_one();
    assert_eq!(
        q.wait(first, common::PATIENCE).await.unwrap().state,
        JobState::Completed
    );
    slow.shutdown(Duration::from_secs(10)).await;
    other.shutdown(Duration::from_secs(10)).await;
}

/// Sets its flag when dropped: tells that a handler's future was dropped.
struct DropFlag(Flag);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// A handler that ignores its token is aborted (its future dropped) once its cancel grace has
/// passed, and its slot is free: the worker's only slot runs the next job.
async fn a_handler_ignoring_its_token_is_aborted_after_the_grace(t: &TestDb) {
    let q = migrated(t).await;
    let (started, dropped) = (Flag::default(), Flag::default());
    let (s, d) = (started.clone(), dropped.clone());
    let options = HandlerOptions {
        cancel_grace: Duration::from_millis(200),
        ..HandlerOptions::default()
    };
    let (ran, worker) = recording_worker(&t.db, 1, "next");
    let worker = worker
        .handler_with("stubborn", options, move |_ctx| {
            let (s, guard) = (s.clone(), DropFlag(d.clone()));
            async move {
                let _guard = guard;
                s.set();
                // Never looks at its token.
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
        .started()
        .await;
    let id = enqueue(&q, NewJob::new("stubborn", json!({}))).await;
    started.wait("the stubborn handler runs").await;
    let next = enqueue(&q, NewJob::new("next", json!({}))).await;
    q.cancel(id).await.unwrap();
    dropped.wait("the stubborn handler is aborted").await;
    assert_eq!(
        q.wait(next, common::PATIENCE).await.unwrap().state,
        JobState::Completed,
        "the aborted handler's slot runs the next job"
    );
    assert_eq!(*ran.lock().unwrap(), [next]);
    assert_eq!(job_state(&q, id).await, JobState::Cancelled);
    worker.shutdown(Duration::from_secs(10)).await;
}

#[derive(serde::Deserialize)]
struct Typed {
    n: u32,
}

async fn malformed_args_are_discarded_and_worker_goes_on(t: &TestDb) {
    let q = migrated(t).await;
    let now = Utc::now().timestamp_micros();
    let bad_sql = match t.engine() {
        Engine::Postgres => {
            "INSERT INTO flowstone_jobs (queue, kind, args) VALUES ('default', 'typed', '{\"n\": \"nope\"}')".to_string()
        }
        Engine::Sqlite => format!(
            "INSERT INTO flowstone_jobs (queue, kind, args, inserted_at, scheduled_at) VALUES \
             ('default', 'typed', '{{\"n\": \"nope\"}}', {now}, {now}), \
             ('default', 'typed', 'this is not json', {now}, {now})"
        ),
    };
    exec(&t.db, &bad_sql).await;
    let good = enqueue(&q, NewJob::new("typed", json!({"n": 41}))).await;
    let worker = fast_worker(&t.db, 2)
        .typed_handler("typed", |_ctx, args: Typed| async move {
            Outcome::complete_with(&(args.n + 1))
        })
        .started()
        .await;
    let good = q.wait(good, common::PATIENCE).await.unwrap();
    assert_eq!(good.result, Some(json!(42)));
    let bad: Vec<_> = q
        .list(&JobFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.id != good.id)
        .collect();
    assert!(!bad.is_empty());
    for job in bad {
        let job = q.wait(job.id, common::PATIENCE).await.unwrap();
        assert_eq!(job.state, JobState::Discarded);
        let error = &job.errors[0].error;
        assert!(
            error.contains("malformed args for job kind `typed`"),
            "{error}"
        );
        assert!(error.contains("expected JSON for"), "{error}");
    }
    worker.shutdown(Duration::from_secs(10)).await;
}

async fn a_worker_never_claims_a_kind_it_lacks(t: &TestDb) {
    let q = migrated(t).await;
    // An old node that does not know the new kind.
    let old = Worker::builder(t.db.clone())
        .node("old")
        .queue("default", 2)
        .settings(fast())
        .handler("legacy", |_| async { Outcome::complete() })
        .started()
        .await;
    let new_job = enqueue(&q, NewJob::new("new_kind", json!({})).max_attempts(1)).await;
    // Inserted after the new kind's job: a claim that reaches it has passed the other.
    let legacy = enqueue(&q, NewJob::new("legacy", json!({}))).await;
    let done = q.wait(legacy, common::PATIENCE).await.unwrap();
    assert_eq!(done.state, JobState::Completed);
    let untouched = q.get(new_job).await.unwrap();
    assert_eq!(
        (
            untouched.state,
            untouched.attempt,
            untouched.node.as_deref()
        ),
        (JobState::Available, 0, None),
        "the old node must leave a kind it lacks alone"
    );

    let new = Worker::builder(t.db.clone())
        .node("new")
        .queue("default", 2)
        .settings(fast())
        .handler("new_kind", |_| async { Outcome::complete() })
        .started()
        .await;
    let job = q.wait(new_job, common::PATIENCE).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!((job.attempt, job.node.as_deref()), (1, Some("new")));
    new.shutdown(Duration::from_secs(10)).await;
    old.shutdown(Duration::from_secs(10)).await;
}

async fn unserved_kinds_are_discarded_served_ones_wait(t: &TestDb) {
    let q = migrated(t).await;
    let mut s = fast();
    s.unserved_kind_after = Duration::from_secs(1);
    s.prune_interval = Duration::from_millis(100);
    // No claiming ahead: the served job must stay queued while the only slot is busy.
    s.prefetch = Some(0);
    let (started, release, worker) = gated_worker(&t.db, "slow", s);
    let worker = worker.started().await;
    let blocker = enqueue(&q, NewJob::new("slow", json!(1))).await;
    started.wait("the slow job runs").await;
    // Both due long ago; the only slot is busy, so neither can be claimed now.
    let long_ago = Utc::now() - chrono::Duration::seconds(30);
    let waiting = enqueue(&q, NewJob::new("slow", json!(2)).scheduled_at(long_ago)).await;
    let unserved = enqueue(
        &q,
        NewJob::new("nobody_knows", json!(3)).scheduled_at(long_ago),
    )
    .await;
    let job = q.wait(unserved, common::PATIENCE).await.unwrap();
    assert_eq!(job.state, JobState::Discarded);
    assert_eq!(job.attempt, 0, "an unserved job never ran");
    let error = &job.errors.last().expect("the discard says why").error;
    assert!(
        error.contains("`nobody_knows`") && error.contains("`default`"),
        "{error}"
    );
    // The statement that discarded it passed over the served kind's job.
    assert_eq!(job_state(&q, waiting).await, JobState::Available);
    release.notify_waiters();
    release.notify_one();
    for id in [blocker, waiting] {
        assert_eq!(
            q.wait(id, common::PATIENCE).await.unwrap().state,
            JobState::Completed
        );
    }
    worker.shutdown(Duration::from_secs(10)).await;
}

async fn counts_by_queue_and_state(t: &TestDb) {
    let q = migrated(t).await;
    assert_eq!(
        q.counts().await.unwrap(),
        vec![],
        "an empty queue has no counts"
    );
    enqueue_many(
        &q,
        &[
            NewJob::new("a", json!({})),
            NewJob::new("a", json!({})),
            NewJob::new("a", json!({})).schedule_in(Duration::from_secs(3600)),
            NewJob::new("b", json!({})).queue("other"),
        ],
    )
    .await;
    let cancelled = enqueue(&q, NewJob::new("b", json!({})).queue("other")).await;
    q.cancel(cancelled).await.unwrap();
    assert_eq!(
        q.counts().await.unwrap(),
        vec![
            ("default".to_owned(), JobState::Available, 2),
            ("default".to_owned(), JobState::Scheduled, 1),
            ("other".to_owned(), JobState::Available, 1),
            ("other".to_owned(), JobState::Cancelled, 1),
        ]
    );
}

async fn batch_list_count_cancel(t: &TestDb) {
    let q = migrated(t).await;
    let (started, fired) = (Flag::default(), Flag::default());
    let (s, f) = (started.clone(), fired.clone());
    let worker = fast_worker(&t.db, 2)
        .handler("block", move |ctx| {
            let (s, f) = (s.clone(), f.clone());
            async move {
                s.set();
                ctx.cancel.cancelled().await;
                f.set();
                Outcome::complete()
            }
        })
        .started()
        .await;
    let mut jobs = vec![NewJob::new("block", json!({})).batch("b1")];
    for i in 0..4 {
        jobs.push(
            NewJob::new("block", json!(i))
                .batch("b1")
                .schedule_in(Duration::from_secs(3600)),
        );
    }
    jobs.push(
        NewJob::new("other", json!({}))
            .queue("elsewhere")
            .batch("b2"),
    );
    q.insert_many(&jobs).await.unwrap();
    started.wait("batch job running").await;
    let counts = q.count_batch("b1").await.unwrap();
    assert!(counts.contains(&(JobState::Scheduled, 4)), "{counts:?}");
    assert!(counts.contains(&(JobState::Executing, 1)), "{counts:?}");
    assert_eq!(q.list_batch("b1", None, None).await.unwrap().len(), 5);
    assert_eq!(q.cancel_batch("b1").await.unwrap(), 5);
    fired.wait("running batch job signalled").await;
    worker.shutdown(Duration::from_secs(10)).await;
    assert_eq!(
        q.count_batch("b1").await.unwrap(),
        vec![(JobState::Cancelled, 5)]
    );
    assert_eq!(
        q.count_batch("b2").await.unwrap(),
        vec![(JobState::Available, 1)]
    );
}

async fn wait_returns_result_and_times_out(t: &TestDb) {
    let q = migrated(t).await;
    let worker = fast_worker(&t.db, 2)
        .handler("add", |ctx| async move {
            let (a, b): (i64, i64) = match ctx.args() {
                Ok(v) => v,
                Err(e) => return Outcome::discard(e),
            };
            Outcome::complete_with(&json!({"sum": a + b}))
        })
        .started()
        .await;
    // Waiting from another pool: woken by NOTIFY (PostgreSQL) or polling (SQLite).
    let other = Queue::connect(t.url()).await.unwrap();
    let id = enqueue(&q, NewJob::new("add", json!([2, 3]))).await;
    let done = other.wait(id, common::PATIENCE).await.unwrap();
    assert_eq!(done.result, Some(json!({"sum": 5})));
    let stuck = enqueue(
        &q,
        NewJob::new("add", json!([1, 1])).queue("nobody_runs_this"),
    )
    .await;
    let err = q.wait(stuck, Duration::from_millis(200)).await.unwrap_err();
    assert!(matches!(err, Error::WaitTimeout { .. }), "{err}");
    assert!(err.to_string().contains("still `available`"), "{err}");
    worker.shutdown(Duration::from_secs(10)).await;
}

async fn wait_all_hands_over_each_job_once(t: &TestDb) {
    let q = migrated(t).await;
    let worker = fast_worker(&t.db, 32)
        .handler("double", |ctx| async move {
            let n: i64 = match ctx.args() {
                Ok(v) => v,
                Err(e) => return Outcome::discard(e),
            };
            if n % 10 == 0 {
                return Outcome::discard("multiples of ten are refused");
            }
            Outcome::complete_with(&json!(n * 2))
        })
        .started()
        .await;
    // More jobs than one poll looks at, so polling takes them in turn.
    let jobs: Vec<NewJob> = (1..=2_500)
        .map(|n| NewJob::new("double", json!(n)).max_attempts(1))
        .collect();
    let ids: Vec<i64> = enqueue_many(&q, &jobs).await;
    // Followed from this pool (woken by the worker's acks) and from another one (NOTIFY on
    // PostgreSQL, polling on SQLite): every job once, in its final state.
    let other = Queue::connect(t.url()).await.unwrap();
    for follower in [&q, &other] {
        let mut seen = std::collections::HashMap::new();
        follower
            .wait_all(&ids, |job| {
                assert!(job.state.is_final(), "{job:?}");
                assert!(
                    seen.insert(job.id, job).is_none(),
                    "a job was handed over twice"
                );
            })
            .await
            .unwrap();
        assert_eq!(seen.len(), ids.len());
        for (n, id) in (1..=2_500i64).zip(&ids) {
            let job = &seen[id];
            if n % 10 == 0 {
                assert_eq!(job.state, JobState::Discarded);
            } else {
                assert_eq!(job.result, Some(json!(n * 2)));
            }
        }
    }
    let missing = ids.iter().max().unwrap() + 1_000;
    let err = q.wait_all(&[ids[0], missing], |_| {}).await.unwrap_err();
    assert!(matches!(err, Error::NotFound(id) if id == missing), "{err}");
    worker.shutdown(Duration::from_secs(10)).await;
}

async fn prune_deletes_old_finished_jobs(t: &TestDb) {
    let q = migrated(t).await;
    let worker = fast_worker(&t.db, 2)
        .handler("noop", |_| async { Outcome::complete() })
        .started()
        .await;
    let done = enqueue(&q, NewJob::new("noop", json!({}))).await;
    q.wait(done, common::PATIENCE).await.unwrap();
    worker.shutdown(Duration::from_secs(10)).await;
    let pending = enqueue(&q, NewJob::new("noop", json!({}))).await;
    assert_eq!(
        q.prune(Duration::from_secs(3600)).await.unwrap(),
        0,
        "too recent"
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(q.prune(Duration::from_millis(1)).await.unwrap(), 1);
    assert!(matches!(q.get(done).await, Err(Error::NotFound(_))));
    assert_eq!(q.get(pending).await.unwrap().state, JobState::Available);
}

async fn migrations_are_recorded_in_own_table_once(t: &TestDb) {
    // Four nodes start at once against a fresh database.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = t.url().to_string();
        tasks.push(tokio::spawn(async move {
            Queue::connect(&url).await.unwrap().migrate().await.unwrap()
        }));
    }
    let mut applied = Vec::new();
    for task in tasks {
        applied.extend(task.await.unwrap());
    }
    applied.sort();
    let versions: Vec<i64> = flowstone_queue::QUEUE_MIGRATIONS
        .migrations()
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5]);
    assert_eq!(applied, versions, "exactly one runner applied each version");
    assert!(t.queue().migrate().await.unwrap().is_empty());
    let recorded = scalar(
        &t.db,
        "SELECT count(*) FROM flowstone_migrations WHERE component = 'queue' AND version = 1",
    )
    .await;
    assert_eq!(recorded, 1);
    let sqlx_table = match t.engine() {
        Engine::Sqlite => "SELECT count(*) FROM sqlite_master WHERE name = '_sqlx_migrations'",
        Engine::Postgres => {
            "SELECT count(*) FROM information_schema.tables WHERE table_name = '_sqlx_migrations'"
        }
    };
    assert_eq!(scalar(&t.db, sqlx_table).await, 0);
    // Another component shares the runner and the table.
    static OTHER: flowstone_queue::Migrator = flowstone_queue::Migrator::new(
        "core",
        &[flowstone_queue::Migration {
            version: 1,
            name: "things",
            sqlite: "CREATE TABLE core_things (id INTEGER PRIMARY KEY)",
            postgres: "CREATE TABLE core_things (id bigint PRIMARY KEY)",
        }],
    );
    assert_eq!(OTHER.run(&t.db).await.unwrap(), vec![1]);
    assert_eq!(
        scalar(&t.db, "SELECT count(*) FROM flowstone_migrations").await,
        versions.len() as i64 + 1,
        "the queue's versions, core v1"
    );
}

async fn stale_ack_does_not_overwrite_rescued_attempt(t: &TestDb) {
    let logs = common::captured_logs();
    let q = migrated(t).await;
    let release = Arc::new(tokio::sync::Notify::new());
    let started = Flag::default();
    // Node A heartbeats once, then goes silent while its handler hangs: it looks dead. It
    // also takes the maintenance lease once and never renews it.
    let mut silent = fast();
    silent.heartbeat_interval = Duration::from_secs(3000);
    silent.rescue_after = Duration::from_secs(3600);
    silent.cancel_poll_interval = Duration::from_secs(3000);
    silent.lease_renew_interval = Duration::from_secs(3000);
    silent.lease_ttl = Duration::from_secs(3600);
    let (r, s) = (Arc::clone(&release), started.clone());
    let a = Worker::builder(Database::connect(t.url()).await.unwrap())
        .node("A")
        .queue("default", 1)
        .settings(silent)
        .handler("fence", move |_ctx| {
            let (r, s) = (Arc::clone(&r), s.clone());
            async move {
                s.set();
                r.notified().await;
                Outcome::complete_with(&"A")
            }
        })
        .started()
        .await;
    let id = enqueue(&q, NewJob::new("fence", json!({}))).await;
    started.wait("A runs the job").await;
    // A dead node's lease lapses; rescue is the lease holder's duty, so let B take it.
    wait_until("A holds the maintenance lease", || async {
        lease::holder(&t.db, MAINTENANCE_LEASE)
            .await
            .unwrap()
            .is_some_and(|h| h.holder == "A")
    })
    .await;
    assert!(lease::release(&t.db, MAINTENANCE_LEASE, "A").await.unwrap());
    // Node B rescues it (A's heartbeat is older than 3 s) and runs attempt 2.
    let b = Worker::builder(t.db.clone())
        .node("B")
        .queue("default", 1)
        .settings(fast())
        .handler("fence", |_ctx| async { Outcome::complete_with(&"B") })
        .started()
        .await;
    let job = q.wait(id, common::PATIENCE).await.unwrap();
    assert_eq!(job.result, Some(json!("B")));
    assert_eq!(job.attempt, 2);
    assert!(job.errors[0].error.contains("node A stopped heartbeating"));
    // A finishes late; its ack (attempt 1) must not land, and A counts it as late.
    assert_eq!(a.metrics().late_acks, 0);
    release.notify_one();
    wait_until("A counts its late ack", || async {
        a.metrics().late_acks == 1
    })
    .await;
    let warned = format!("job={id} attempt=1 node=\"A\"");
    assert!(
        logs.lock()
            .unwrap()
            .iter()
            .any(|line| line.starts_with("WARN")
                && line.contains("late ack refused")
                && line.contains(&warned)),
        "no warning with `{warned}` among {:?}",
        logs.lock().unwrap()
    );
    a.shutdown(Duration::from_secs(10)).await;
    b.shutdown(Duration::from_secs(10)).await;
    let job = q.get(id).await.unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.attempt, 2);
    assert_eq!(job.result, Some(json!("B")));
    assert_eq!(job.node.as_deref(), Some("B"));
}

async fn graceful_shutdown_finishes_or_returns_jobs(t: &TestDb) {
    let q = migrated(t).await;
    let running = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&running);
    let worker = fast_worker(&t.db, 3)
        .handler("slow", move |_| {
            let r = Arc::clone(&r);
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                Outcome::complete()
            }
        })
        .started()
        .await;
    let jobs: Vec<NewJob> = (0..3).map(|i| NewJob::new("slow", json!(i))).collect();
    let ids: Vec<i64> = enqueue_many(&q, &jobs).await;
    wait_until("3 slow jobs running", || async {
        running.load(Ordering::SeqCst) == 3
    })
    .await;
    let report = worker.shutdown(Duration::from_secs(30)).await;
    assert_eq!(report.abandoned, 0);
    for id in &ids {
        assert_eq!(job_state(&q, *id).await, JobState::Completed);
    }

    let worker = fast_worker(&t.db, 3)
        .handler("stubborn", |_ctx| async move {
            // Ignores its token: it must be returned to the queue at the end of the grace.
            tokio::time::sleep(common::PATIENCE).await;
            Outcome::complete()
        })
        .started()
        .await;
    let id = enqueue(&q, NewJob::new("stubborn", json!({}))).await;
    wait_until("stubborn job running", || async {
        job_state(&q, id).await == JobState::Executing
    })
    .await;
    let report = worker.shutdown(Duration::from_millis(100)).await;
    assert_eq!(report.abandoned, 1);
    let job = q.get(id).await.unwrap();
    assert_eq!(job.state, JobState::Available, "returned to the queue");
    assert!(
        job.errors[0].error.contains("shut down"),
        "{:?}",
        job.errors
    );
}

/// Chunks without unique keys learn their ids without reading rows back (SQLite: from the
/// last rowid): every id must still name its own job, also while another handle inserts
/// single jobs and after the newest row was deleted (no id is given twice).
async fn keyless_bulk_insert_ids_name_their_rows_beside_other_inserts(t: &TestDb) {
    let q = migrated(t).await;
    let first = q
        .insert(NewJob::new("single", json!({"n": -1})))
        .await
        .unwrap();
    q.cancel(first.job.id).await.unwrap();
    assert_eq!(q.prune(Duration::ZERO).await.unwrap(), 1);
    let other = Queue::new(Database::connect(t.url()).await.unwrap());
    let singles = tokio::spawn(async move {
        let mut ids = Vec::new();
        for n in 0..200 {
            ids.push(
                other
                    .insert(NewJob::new("single", json!({"n": n})))
                    .await
                    .unwrap()
                    .job
                    .id,
            );
        }
        ids
    });
    let jobs: Vec<NewJob> = (0..12_000)
        .map(|i| NewJob::new("bulk", json!({"i": i})))
        .collect();
    let ids = q.insert_many(&jobs).await.unwrap();
    let singles = singles.await.unwrap();
    assert_eq!(ids.len(), 12_000);
    assert!(ids.iter().all(|i| !i.conflict));
    assert!(
        ids.iter().all(|i| i.id > first.job.id),
        "the pruned row's id is not given again"
    );
    let mut all: Vec<i64> = ids
        .iter()
        .map(|i| i.id)
        .chain(singles.iter().copied())
        .collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 12_200, "no id given twice");
    let mut seen = 0;
    let mut after = None;
    loop {
        let page = q
            .list(&JobFilter {
                after_id: after,
                limit: Some(1000),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for job in page.iter().filter(|j| j.kind == "bulk") {
            let i = job.args["i"].as_u64().unwrap() as usize;
            assert_eq!(
                ids[i].id, job.id,
                "job {i} of the batch has the id returned for it"
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 12_000);
}

async fn bulk_insert_spans_chunks(t: &TestDb) {
    let q = migrated(t).await;
    let jobs: Vec<NewJob> = (0..12_000)
        .map(|i| {
            let job = NewJob::new("bulk", json!({"i": i}));
            if i % 1000 == 0 {
                job.unique(Unique::Key("dup".into()))
            } else {
                job
            }
        })
        .collect();
    let ids = q.insert_many(&jobs).await.unwrap();
    assert_eq!(ids.len(), 12_000);
    let fresh: Vec<i64> = ids.iter().filter(|i| !i.conflict).map(|i| i.id).collect();
    assert_eq!(
        fresh.len(),
        12_000 - 11,
        "11 of the 12 `dup` jobs conflicted"
    );
    assert!(
        fresh.windows(2).all(|w| w[0] < w[1]),
        "ids follow input order"
    );
    let dup_holder = ids[0].id;
    assert!(
        ids.iter()
            .filter(|i| i.conflict)
            .all(|i| i.id == dup_holder)
    );
    // Spot-check that ids map to the right rows.
    let job = q.get(ids[4321].id).await.unwrap();
    assert_eq!(job.args, json!({"i": 4321}));
    assert_eq!(
        scalar(&t.db, "SELECT count(*) FROM flowstone_jobs").await,
        12_000 - 11
    );
    let bad = q.insert(NewJob::new("bulk", json!({})).priority(10)).await;
    assert!(matches!(bad, Err(Error::InvalidJob(_))));
}

async fn bulk_insert_is_all_or_nothing_and_names_the_bad_job(t: &TestDb) {
    let q = migrated(t).await;
    let batch = |bad: fn(NewJob) -> NewJob| -> Vec<NewJob> {
        (0..12_000)
            .map(|i| {
                let job = NewJob::new("bulk", json!({"i": i}));
                if i == 11_990 { bad(job) } else { job }
            })
            .collect()
    };
    let count = || scalar(&t.db, "SELECT count(*) FROM flowstone_jobs");

    // A job that fails validation: refused before anything is written, named by index.
    let err = q.insert_many(&batch(|j| j.priority(10))).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidBatchJob { index: 11_990, reason }
            if matches!(**reason, Error::InvalidJob(_))),
        "{err:?}"
    );
    assert!(err.to_string().contains("job 11990"), "{err}");
    assert!(err.to_string().contains("priority 10"), "{err}");
    assert_eq!(count().await, 0);

    // A job the database rejects, in the last of three statements: the first two were
    // written in the batch's transaction and must be rolled back with it.
    match t.engine() {
        Engine::Sqlite => {
            exec(
                &t.db,
                "CREATE TRIGGER reject_poison BEFORE INSERT ON flowstone_jobs
                  WHEN NEW.kind = 'poison' BEGIN SELECT RAISE(ABORT, 'poison job'); END",
            )
            .await
        }
        Engine::Postgres => {
            exec(
                &t.db,
                "CREATE FUNCTION reject_poison() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                   IF NEW.kind = 'poison' THEN RAISE EXCEPTION 'poison job'; END IF;
                   RETURN NEW;
                 END $$",
            )
            .await;
            exec(
                &t.db,
                "CREATE TRIGGER reject_poison BEFORE INSERT ON flowstone_jobs
                  FOR EACH ROW EXECUTE FUNCTION reject_poison()",
            )
            .await
        }
    }
    let err = q
        .insert_many(&batch(|_| NewJob::new("poison", json!({}))))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::BatchRejected { rows, .. } if *rows == (11_990..11_991)),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("job 11990 of the batch") && msg.contains("poison job"),
        "{msg}"
    );
    assert_eq!(count().await, 0, "no job of the batch was inserted");
    // The same batch without the poisoned job goes in whole.
    assert_eq!(q.insert_many(&batch(|j| j)).await.unwrap().len(), 12_000);
    assert_eq!(count().await, 12_000);
}

// Not generated for both engines: these concern one engine or none.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_worker_reconnects_after_connections_are_killed() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let q = migrated(&t).await;
    exec(&t.db, RUNS_TABLE).await;
    let worker_db = Database::connect(t.url()).await.unwrap();
    let recorder = t.db.clone();
    let worker = Worker::builder(worker_db)
        .node("survivor")
        .queue("default", 4)
        .settings(fast())
        .handler("work", move |ctx| {
            let recorder = recorder.clone();
            async move {
                // A duplicate here would mean an attempt ran twice.
                let _ = record_run(&recorder, ctx.id, ctx.attempt, &ctx.node).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
                Outcome::complete()
            }
        })
        .started()
        .await;
    let jobs: Vec<NewJob> = (0..300).map(|i| NewJob::new("work", json!(i))).collect();
    q.insert_many(&jobs).await.unwrap();
    let name = t.url().rsplit('/').next().unwrap().to_string();
    let completed = "SELECT count(*) FROM flowstone_jobs WHERE state = 'completed'";
    for round in 1..=3 {
        wait_until("progress between kills", || async {
            scalar(&t.db, completed).await >= round * 40
        })
        .await;
        // Kill every other session on this database: the worker's pool and its LISTEN.
        exec(
            &t.db,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            ),
        )
        .await;
    }
    wait_until("queue drained", || async {
        scalar(&t.db, completed).await == 300
    })
    .await;
    worker.shutdown(Duration::from_secs(10)).await;
    assert_eq!(
        scalar(&t.db, "SELECT count(DISTINCT job_id) FROM runs").await,
        300
    );
    t.cleanup().await;
}

#[tokio::test]
async fn errors_are_clear() {
    let (err, msg) = connect_refused("mysql://bob:hunter2@db/x").await;
    assert!(matches!(err, Error::BadUrl { .. }), "{msg}");
    assert!(
        msg.contains("mysql://bob:***@db/x") && !msg.contains("hunter2"),
        "{msg}"
    );
    assert!(msg.contains("sqlite://"), "says what to use: {msg}");

    for url in [
        "postgres://bob:hunter2@db:notaport/x",
        "postgres://bob:hunter2@db/x?sslmode=sometimes",
        "sqlite://x.db?mode=nonsense&password=hunter2",
    ] {
        let (err, msg) = connect_refused(url).await;
        assert!(matches!(err, Error::BadUrl { .. }), "{url}: {msg}");
        assert!(!msg.contains("hunter2"), "password shown: {msg}");
    }

    let (err, msg) = connect_refused("postgres://bob:hunter2@127.0.0.1:1/x").await;
    assert!(matches!(err, Error::Unreachable { .. }), "{msg}");
    assert!(
        msg.contains("127.0.0.1:1") && !msg.contains("hunter2"),
        "{msg}"
    );
    assert!(msg.contains("Check that the server is running"), "{msg}");

    let (err, msg) = connect_refused("sqlite:///nonexistent-dir-fsq/x/y.db").await;
    assert!(matches!(err, Error::Unreachable { .. }), "{msg}");

    let t = TestDb::sqlite().await;
    let builder = || Worker::builder(t.db.clone());
    let (err, msg) = start_refused(
        builder()
            .known_queues(["default", "emails"])
            .queue("emials", 2)
            .handler("x", |_| async { Outcome::complete() }),
        "unknown queue",
    )
    .await;
    assert!(matches!(err, Error::UnknownQueue { .. }), "{msg}");
    assert!(
        msg.contains("`emials`") && msg.contains("default, emails"),
        "{msg}"
    );

    let (err, msg) = start_refused(builder().queue("has space", 2), "bad queue name").await;
    assert!(matches!(err, Error::InvalidQueueName(_)), "{msg}");
    let (_, msg) = start_refused(builder().queue("default", 0), "zero concurrency").await;
    assert!(msg.contains("concurrency 0"), "{msg}");
    t.cleanup().await;
}

async fn connect_refused(url: &str) -> (Error, String) {
    let err = Database::connect(url).await.unwrap_err();
    let msg = err.to_string();
    (err, msg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory_works_in_one_process() {
    let q = Queue::connect("sqlite::memory:").await.unwrap();
    q.migrate().await.unwrap();
    let worker = Worker::builder(q.database().clone())
        .queue("default", 2)
        .settings(fast())
        .handler("echo", |ctx| async move {
            Outcome::complete_with(&ctx.args_raw())
        })
        .started()
        .await;
    let id = enqueue(&q, NewJob::new("echo", json!([1]))).await;
    let job = q.wait(id, common::PATIENCE).await.unwrap();
    worker.shutdown(Duration::from_secs(10)).await;
    assert_eq!(job.result, Some(json!("[1]")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_insert_on_one_handle_wakes_a_worker_on_another() {
    let t = TestDb::sqlite().await;
    let inserting = migrated(&t).await;
    // A second handle on the same file, connected on its own; its worker polls once a
    // minute, so within the wait below only a wake-up can start a job.
    let other = Database::connect(t.url()).await.unwrap();
    let mut settings = fast();
    settings.poll_interval = Duration::from_secs(60);
    let worker = Worker::builder(other)
        .queue("default", 1)
        .settings(settings)
        .handler("echo", |ctx| async move {
            Outcome::complete_with(&ctx.args_raw())
        })
        .started()
        .await;
    // The second job is inserted once the worker is idle, waiting for a wake-up or its poll.
    for n in 0..2 {
        let id = enqueue(&inserting, NewJob::new("echo", json!([n]))).await;
        let job = inserting.wait(id, Duration::from_secs(20)).await.unwrap();
        assert_eq!(job.result, Some(json!(format!("[{n}]"))));
    }
    worker.shutdown(Duration::from_secs(10)).await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_worker_stops_with_an_error_when_its_file_is_deleted() {
    let t = TestDb::sqlite().await;
    let q = migrated(&t).await;
    let worker = fast_worker(&t.db, 1)
        .handler("echo", |_| async { Outcome::complete() })
        .started()
        .await;
    let id = enqueue(&q, NewJob::new("echo", json!({}))).await;
    q.wait(id, common::PATIENCE).await.unwrap();
    let file = std::path::PathBuf::from(t.url().trim_start_matches("sqlite://"));
    for suffix in ["", "-wal", "-shm"] {
        let mut name = file.clone().into_os_string();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
    assert!(!file.exists());
    let error = tokio::time::timeout(common::PATIENCE, worker.failed())
        .await
        .expect("the worker notices its file is gone");
    assert!(
        matches!(error, Error::DatabaseFileGone { path, .. } if path.file_name() == file.file_name()),
        "{error:?}"
    );
    let msg = error.to_string();
    assert!(
        msg.contains(&*file.file_name().unwrap().to_string_lossy()),
        "{msg}"
    );
    assert!(msg.contains("worker stopped"), "{msg}");
    worker.shutdown(Duration::from_secs(1)).await;
    t.cleanup().await;
}

#[tokio::test]
async fn zero_intervals_are_rejected() {
    let t = TestDb::sqlite().await;
    let mut s = fast();
    s.poll_interval = Duration::ZERO;
    let builder = fast_worker(&t.db, 1)
        .settings(s)
        .handler("x", |_| async { Outcome::complete() });
    let (_, msg) = start_refused(builder, "a zero interval").await;
    assert!(msg.contains("poll_interval is zero"), "{msg}");
    t.cleanup().await;
}

async fn unstorable_text_is_scrubbed_and_queue_goes_on(t: &TestDb) {
    let q = migrated(t).await;
    let worker = fast_worker(&t.db, 2)
        .handler("nul_result", |_| async {
            Outcome::complete_with(&json!({"k\u{0}": "a\u{0}b"}))
        })
        .handler("nul_error", |_| async { Outcome::discard("bad\u{0}byte") })
        .handler("forever", |ctx| async move {
            if ctx.snoozed == 0 {
                Outcome::snooze(Duration::MAX)
            } else {
                Outcome::complete()
            }
        })
        .started()
        .await;
    let a = enqueue(&q, NewJob::new("nul_result", json!({}))).await;
    let b = enqueue(&q, NewJob::new("nul_error", json!({}))).await;
    let c = enqueue(&q, NewJob::new("forever", json!({}))).await;
    let a = q.wait(a, common::PATIENCE).await.unwrap();
    // SQLite stores NUL as it is; PostgreSQL's jsonb cannot, so it gets U+FFFD there.
    let stored = match t.engine() {
        flowstone_queue::Engine::Sqlite => json!({"k\u{0}": "a\u{0}b"}),
        flowstone_queue::Engine::Postgres => json!({"k\u{fffd}": "a\u{fffd}b"}),
    };
    assert_eq!(a.result, Some(stored));
    let b = q.wait(b, common::PATIENCE).await.unwrap();
    assert_eq!(b.state, JobState::Discarded);
    assert_eq!(b.errors[0].error, "bad\u{fffd}byte");
    wait_until("snoozed far into the future", || async {
        q.get(c).await.unwrap().state == JobState::Scheduled
    })
    .await;
    // The queue still works after all three.
    let d = enqueue(&q, NewJob::new("nul_error", json!({}))).await;
    q.wait(d, common::PATIENCE).await.unwrap();
    worker.shutdown(Duration::from_secs(10)).await;
    let c = q.get(c).await.unwrap();
    assert!(c.scheduled_at.unwrap() > Utc::now() + chrono::Duration::days(365));
}
