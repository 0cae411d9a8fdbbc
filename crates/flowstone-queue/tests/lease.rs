//! Leader leases, on SQLite and PostgreSQL: the lease API (one winner, expiry, release,
//! renewal) and the worker's use of it (one node runs the leader duties at a time; the
//! next takes over when the leader shuts down).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{StartForTest, fast, migrated, start_refused, wait_until};
use flowstone_queue::lease::{self, MAINTENANCE_LEASE};
use flowstone_queue::testing::TestDb;
use flowstone_queue::{Database, Error, JobState, Outcome, Worker, WorkerHandle, WorkerSettings};

flowstone_queue::both_engines!(
    two_holders_only_one_wins,
    expiry_lets_the_other_take_over,
    release_hands_it_over_at_once,
    renew_by_the_holder_extends_it,
    one_worker_at_a_time_runs_a_leader_duty_and_the_next_takes_over,
    a_failing_leader_duty_keeps_its_rounds_and_the_worker,
);

const LEASE: &str = "test.lease";
/// Longer than any test runs: only a release or an explicit short TTL hands a lease over.
const LONG: Duration = Duration::from_secs(3600);

/// Takes or renews [`LEASE`] for `holder`; whether `holder` holds it now.
async fn take(db: &Database, holder: &str, ttl: Duration) -> bool {
    lease::acquire(db, LEASE, holder, ttl).await.unwrap()
}

async fn holder_name(db: &Database) -> Option<String> {
    lease::holder(db, LEASE).await.unwrap().map(|h| h.holder)
}

async fn two_holders_only_one_wins(t: &TestDb) {
    migrated(t).await;
    let db = &t.db;
    let (a, b) = tokio::join!(take(db, "a", LONG), take(db, "b", LONG));
    assert!(
        a ^ b,
        "exactly one of two racing holders wins (a: {a}, b: {b})"
    );
    let winner = if a { "a" } else { "b" };
    let loser = if a { "b" } else { "a" };
    assert_eq!(holder_name(db).await.as_deref(), Some(winner));
    assert!(!take(db, loser, LONG).await);
    assert_eq!(holder_name(db).await.as_deref(), Some(winner));
}

async fn expiry_lets_the_other_take_over(t: &TestDb) {
    migrated(t).await;
    let db = &t.db;
    assert!(take(db, "a", Duration::from_millis(50)).await);
    wait_until("b takes over the expired lease", || async {
        take(db, "b", LONG).await
    })
    .await;
    assert_eq!(holder_name(db).await.as_deref(), Some("b"));
    assert!(
        !take(db, "a", LONG).await,
        "the old holder cannot renew a lease taken over"
    );
}

async fn release_hands_it_over_at_once(t: &TestDb) {
    migrated(t).await;
    let db = &t.db;
    assert!(take(db, "a", LONG).await);
    assert!(!take(db, "b", LONG).await);
    assert!(
        !lease::release(db, LEASE, "b").await.unwrap(),
        "a non-holder cannot release"
    );
    assert_eq!(holder_name(db).await.as_deref(), Some("a"));
    assert!(lease::release(db, LEASE, "a").await.unwrap());
    assert_eq!(holder_name(db).await, None);
    assert!(take(db, "b", LONG).await);
    assert_eq!(holder_name(db).await.as_deref(), Some("b"));
}

async fn renew_by_the_holder_extends_it(t: &TestDb) {
    migrated(t).await;
    let db = &t.db;
    assert!(take(db, "a", Duration::from_secs(60)).await);
    let first = lease::holder(db, LEASE).await.unwrap().unwrap().expires_at;
    assert!(take(db, "a", LONG).await);
    let renewed = lease::holder(db, LEASE).await.unwrap().unwrap();
    assert_eq!(renewed.holder, "a");
    assert!(
        renewed.expires_at > first,
        "renewal moves expiry from {first} to later, got {}",
        renewed.expires_at
    );
    assert!(!take(db, "b", LONG).await);
}

/// Worker settings whose lease outlives the test: only a release hands it over.
fn long_lease() -> WorkerSettings {
    WorkerSettings {
        lease_ttl: LONG,
        lease_renew_interval: Duration::from_millis(50),
        ..fast()
    }
}

/// Runs of a leader duty: which node ran each, and the most that ever ran at once.
#[derive(Default)]
struct DutyLog {
    nodes: Mutex<Vec<String>>,
    active: AtomicUsize,
    most_at_once: AtomicUsize,
}

impl DutyLog {
    fn nodes(&self) -> Vec<String> {
        self.nodes.lock().unwrap().clone()
    }
}

async fn worker_with_duty(db: &Database, node: &str, log: &Arc<DutyLog>) -> WorkerHandle {
    let (log, name) = (Arc::clone(log), node.to_string());
    Worker::builder(db.clone())
        .node(node)
        .queue("default", 1)
        .settings(long_lease())
        .leader_duty("count", Duration::from_millis(20), move |_db| {
            let (log, name) = (Arc::clone(&log), name.clone());
            async move {
                let now = log.active.fetch_add(1, Ordering::SeqCst) + 1;
                log.most_at_once.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                log.nodes.lock().unwrap().push(name);
                log.active.fetch_sub(1, Ordering::SeqCst);
                Ok::<(), Error>(())
            }
        })
        .started()
        .await
}

async fn one_worker_at_a_time_runs_a_leader_duty_and_the_next_takes_over(t: &TestDb) {
    migrated(t).await;
    let db = &t.db;
    let log = Arc::new(DutyLog::default());
    let mut workers = vec![
        worker_with_duty(db, "node-a", &log).await,
        worker_with_duty(db, "node-b", &log).await,
    ];
    wait_until("the duty ran a few rounds", || async {
        log.nodes().len() >= 5
    })
    .await;
    let leader = log.nodes()[0].clone();
    assert!(
        log.nodes().iter().all(|n| *n == leader),
        "only the leader ran the duty: {:?}",
        log.nodes()
    );
    assert_eq!(
        lease::holder(db, MAINTENANCE_LEASE)
            .await
            .unwrap()
            .map(|h| h.holder),
        Some(leader.clone())
    );

    let at = workers.iter().position(|w| w.node() == leader).unwrap();
    workers.remove(at).shutdown(Duration::from_secs(10)).await;
    let rounds_by_leader = log.nodes().len();
    let follower = workers[0].node().to_string();
    wait_until("the other node takes over the duty", || async {
        log.nodes().contains(&follower)
    })
    .await;
    assert!(
        log.nodes()[rounds_by_leader..]
            .iter()
            .all(|n| *n == follower),
        "after the leader shut down only the follower ran the duty: {:?}",
        log.nodes()
    );
    assert_eq!(log.most_at_once.load(Ordering::SeqCst), 1);
    for w in workers {
        w.shutdown(Duration::from_secs(10)).await;
    }
}

async fn a_failing_leader_duty_keeps_its_rounds_and_the_worker(t: &TestDb) {
    migrated(t).await;
    let db = &t.db;
    let rounds = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&rounds);
    let worker = Worker::builder(db.clone())
        .queue("default", 1)
        .settings(long_lease())
        .handler("noop", |_ctx| async { Outcome::complete() })
        .leader_duty("broken", Duration::from_millis(20), move |_db| {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>("the duty's own failure")
            }
        })
        .started()
        .await;
    wait_until("the failing duty ran again and again", || async {
        rounds.load(Ordering::SeqCst) >= 3
    })
    .await;
    let q = t.queue();
    let id = q
        .insert(flowstone_queue::NewJob::new("noop", serde_json::json!({})))
        .await
        .unwrap()
        .job
        .id;
    let job = q.wait(id, common::PATIENCE).await.unwrap();
    assert_eq!(job.state, JobState::Completed, "the worker runs on");
    worker.shutdown(Duration::from_secs(10)).await;
}

/// Lease settings and leader duties that cannot work are refused before the worker starts,
/// each with a message naming what to fix.
#[tokio::test]
async fn unworkable_lease_settings_and_duties_are_rejected() {
    let t = TestDb::sqlite().await;
    let slow_renewal = WorkerSettings {
        lease_renew_interval: Duration::from_secs(30),
        lease_ttl: Duration::from_secs(30),
        ..fast()
    };
    let noop = |_db: Database| async { Ok::<(), Error>(()) };
    let every = Duration::from_secs(1);
    let cases = [
        (
            Worker::builder(t.db.clone()).settings(slow_renewal),
            "lease_renew_interval (30s) must be shorter than lease_ttl (30s)",
        ),
        (
            Worker::builder(t.db.clone()).leader_duty("prune", every, noop),
            "leader duty name `prune` is empty or taken by a built-in duty",
        ),
        (
            Worker::builder(t.db.clone())
                .leader_duty("retention", every, noop)
                .leader_duty("retention", every, noop),
            "leader duty `retention` is registered twice",
        ),
        (
            Worker::builder(t.db.clone()).leader_duty("retention", Duration::ZERO, noop),
            "leader duty `retention` has a zero interval",
        ),
    ];
    for (builder, expected) in cases {
        let (_, msg) = start_refused(builder.queue("default", 1), expected).await;
        assert!(msg.contains(expected), "{msg}");
    }
    t.cleanup().await;
}
