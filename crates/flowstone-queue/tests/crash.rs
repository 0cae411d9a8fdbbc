//! Crash recovery with real processes: worker child processes are killed with SIGKILL in
//! the middle of running jobs and restarted. At the end every job is completed, none is
//! lost, and a job ran more than once only when the node running its earlier attempt was
//! killed. Runs against SQLite (several processes on one file) and PostgreSQL.
//!
//! The children are this test binary run again with `--exact crash_child_worker --ignored`
//! and environment variables saying which database and node name to use.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{RUNS_TABLE, exec, fast, record_run, runs, scalar, wait_until};
use flowstone_queue::testing::TestDb;
use flowstone_queue::{Database, NewJob, Outcome, Worker};
use serde_json::json;

flowstone_queue::both_engines!(killed_workers_lose_no_jobs);

const JOBS: i64 = 200;

fn spawn_child(url: &str, node: &str) -> Child {
    let exe = std::env::current_exe().expect("test binary path");
    Command::new(exe)
        .args(["--exact", "crash_child_worker", "--ignored", "--nocapture"])
        .env("FSQ_CRASH_URL", url)
        .env("FSQ_CRASH_NODE", node)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn worker child")
}

async fn killed_workers_lose_no_jobs(t: &TestDb) {
    let q = t.queue();
    q.migrate().await.unwrap();
    exec(&t.db, RUNS_TABLE).await;
    let jobs: Vec<NewJob> = (0..JOBS).map(|i| NewJob::new("crashy", json!(i))).collect();
    q.insert_many(&jobs).await.unwrap();

    let completed = "SELECT count(*) FROM flowstone_jobs WHERE state = 'completed'";
    let mut killed = HashSet::new();
    let mut children: Vec<(String, Child)> = (0..2)
        .map(|i| {
            let node = format!("child-0-{i}");
            (node.clone(), spawn_child(t.url(), &node))
        })
        .collect();
    for round in 1..=3 {
        let before = scalar(&t.db, completed).await;
        wait_until("progress before the next kill", || async {
            scalar(&t.db, completed).await >= before + 20
        })
        .await;
        // Kill the oldest child mid-run and start a fresh one.
        let (node, mut child) = children.remove(0);
        child.kill().expect("SIGKILL child");
        let _ = child.wait();
        killed.insert(node);
        let node = format!("child-{round}");
        children.push((node.clone(), spawn_child(t.url(), &node)));
    }
    wait_until("every job completed", || async {
        scalar(&t.db, completed).await == JOBS
    })
    .await;
    for (_, mut child) in children {
        let _ = child.kill();
        let _ = child.wait();
    }

    assert_eq!(
        scalar(&t.db, "SELECT count(*) FROM flowstone_jobs").await,
        JOBS,
        "no job lost or duplicated"
    );
    let mut by_job: BTreeMap<i64, Vec<(i32, String)>> = BTreeMap::new();
    for (id, attempt, node) in runs(&t.db).await {
        by_job.entry(id).or_default().push((attempt, node));
    }
    assert_eq!(by_job.len() as i64, JOBS, "every job ran");
    let mut reruns = 0;
    for (id, attempts) in &by_job {
        for (attempt, node) in &attempts[..attempts.len() - 1] {
            reruns += 1;
            assert!(
                killed.contains(node),
                "job {id} ran again after attempt {attempt} on {node}, which was not killed"
            );
        }
    }
    assert!(
        reruns > 0,
        "the kills hit running jobs, which were rescued and rerun"
    );
}

/// A worker process for the crash test (does nothing unless started by it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by killed_workers_lose_no_jobs as a child process"]
async fn crash_child_worker() {
    let (Ok(url), Ok(node)) = (
        std::env::var("FSQ_CRASH_URL"),
        std::env::var("FSQ_CRASH_NODE"),
    ) else {
        return;
    };
    let db = Database::connect(&url).await.expect("child connects");
    let recorder = db.clone();
    let worker = Worker::builder(db)
        .node(node)
        .queue("default", 4)
        .settings(fast())
        .handler("crashy", move |ctx| {
            let recorder = recorder.clone();
            async move {
                record_run(&recorder, ctx.id, ctx.attempt, &ctx.node).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                Outcome::complete()
            }
        })
        .start()
        .await
        .expect("child worker starts");
    // The parent kills this process; stop by ourselves if it never does.
    tokio::time::sleep(Duration::from_secs(120)).await;
    worker.shutdown(Duration::from_secs(5)).await;
}
