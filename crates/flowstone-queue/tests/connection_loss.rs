//! A lost connection is not a rejection. While one worker drains the queue, the database
//! is taken away from it again and again, for real: on PostgreSQL every backend of the test
//! database is terminated (`pg_terminate_backend`: the claim, ack and LISTEN connections
//! and the pool's idle ones), on SQLite another connection holds the file's write lock far
//! longer than the worker's busy timeout, so its claims and acks fail with SQLITE_BUSY.
//!
//! The ground truth is a ledger of every (job, attempt) a handler ran, kept by the handler
//! itself in this process. At the end every job has completed, each ran exactly once (no
//! process was killed), no attempt number ran twice, and the row's attempt is the one that
//! ran.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{StartForTest, captured_logs, fast, wait_until};
use flowstone_queue::testing::TestDb;
use flowstone_queue::{ConnectOptions, Database, Engine, JobState, NewJob, Outcome};
use serde_json::json;
use sqlx::Connection;

flowstone_queue::both_engines!(
    acks_survive_lost_connections,
    acks_survive_lost_connections_with_durable_claims,
);

const JOBS: usize = 600;
/// Times the database is taken away while the worker drains.
const ROUNDS: usize = 6;

/// `(job, attempt)` → times a handler ran it.
type Ledger = Arc<Mutex<HashMap<(i64, i32), u32>>>;

async fn acks_survive_lost_connections(t: &TestDb) {
    drain_through_faults(t, fast()).await;
}

/// With durable claims the acks ride in the claim's statement (on PostgreSQL too), so a
/// terminated backend fails them mid-statement with the server's own error (57P01), the
/// case that looks like a rejection.
async fn acks_survive_lost_connections_with_durable_claims(t: &TestDb) {
    let mut settings = fast();
    settings.durable_claims = true;
    drain_through_faults(t, settings).await;
}

async fn drain_through_faults(t: &TestDb, settings: flowstone_queue::WorkerSettings) {
    let q = t.queue();
    q.migrate().await.unwrap();
    let jobs: Vec<NewJob> = (0..JOBS)
        .map(|i| NewJob::new("count", json!(i)).batch("drain"))
        .collect();
    let ids: Vec<i64> = q
        .insert_many(&jobs)
        .await
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    let _ = captured_logs();

    // The worker's own handle: on SQLite with a busy timeout far below the lock holder's.
    let worker_db = Database::connect_with(
        t.url(),
        ConnectOptions {
            busy_timeout: Duration::from_millis(20),
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap();
    let ledger: Ledger = Arc::default();
    let seen = Arc::clone(&ledger);
    let worker = flowstone_queue::Worker::builder(worker_db)
        .node("drainer")
        .queue("default", 10)
        .settings(settings)
        .handler("count", move |ctx| {
            *seen
                .lock()
                .unwrap()
                .entry((ctx.id, ctx.attempt))
                .or_default() += 1;
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Outcome::complete()
            }
        })
        .started()
        .await;

    let faults = match t.engine() {
        Engine::Postgres => terminate_every_backend(t.url()).await,
        Engine::Sqlite => hold_the_write_lock(t.url()).await,
    };
    assert!(
        faults >= ROUNDS,
        "each round must take the database away (did {faults} in {ROUNDS} rounds)"
    );

    // The checking client's connections were terminated too: errors are retried here.
    wait_until("every job completes", || async {
        q.count_batch("drain")
            .await
            .is_ok_and(|c| c == [(JobState::Completed, JOBS as i64)])
    })
    .await;
    worker.shutdown(Duration::from_secs(10)).await;

    let ledger = ledger.lock().unwrap().clone();
    let twice: Vec<_> = ledger.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "attempts that ran twice: {twice:?}");
    let mut runs_of: HashMap<i64, Vec<i32>> = HashMap::new();
    for (id, attempt) in ledger.keys() {
        runs_of.entry(*id).or_default().push(*attempt);
    }
    for id in &ids {
        let row = q.get(*id).await.unwrap();
        assert_eq!(row.state, JobState::Completed);
        assert_eq!(
            runs_of.get(id).map(Vec::as_slice),
            Some(&[row.attempt][..]),
            "job {id} must have run once, as the attempt its row records"
        );
    }
    let logs = captured_logs().lock().unwrap();
    assert!(
        logs.iter()
            .any(|l| l.contains("flowstone-queue:") && l.contains("failed")),
        "the faults must have hit the worker's writes"
    );
}

/// Every 250 ms, terminates every other backend of the test database; returns how many
/// backends were terminated.
async fn terminate_every_backend(url: &str) -> usize {
    let mut admin = sqlx::PgConnection::connect(url).await.unwrap();
    let mut terminated = 0;
    for _ in 0..ROUNDS {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        terminated += usize::try_from(n).unwrap();
    }
    terminated
}

/// Takes SQLite's write lock for 300 ms, six times, 150 ms apart; returns the rounds held.
async fn hold_the_write_lock(url: &str) -> usize {
    let mut locker = sqlx::SqliteConnection::connect(url).await.unwrap();
    let mut held = 0;
    for _ in 0..ROUNDS {
        tokio::time::sleep(Duration::from_millis(150)).await;
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut locker)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        sqlx::query("COMMIT").execute(&mut locker).await.unwrap();
        held += 1;
    }
    held
}
