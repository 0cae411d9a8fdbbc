//! The Queue executor across OS processes, on SQLite (one file shared by the processes) and on
//! PostgreSQL: worker processes and a backfilling process are child processes of the test.
//!
//! A child is this test binary run again (`current_exe() child_process --exact --ignored`)
//! with its role in the environment; `child_process` is ignored and returns at once when run
//! without one. Every process builds the same FlowStone ([`pipeline`]) on the test's database.
//! Workers run until their stdin closes (the parent drops it, or dies), or are killed; the
//! backfiller prints its report as one JSON line on stdout.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::Duration;

use flowstone::api::Builder;
use flowstone::store::{MaterializationQuery, MaterializationStatus};
use flowstone::{
    Asset, Backfill, Error, FlowStone, Job, JobStatus, Partition, RetryPolicy, Run, Strategy,
};
use flowstone_queue::testing::TestDb;
use flowstone_queue::{JobFilter, JobState};
use tokio::process::{Child, Command};

use common::queue::{fast_settings, row};
use common::records;
use common::wait::{settled_record, wait_finished, wait_for, wait_for_within};

/// The child's role: `worker` or `backfill`.
const ROLE: &str = "FS_QTEST_ROLE";
/// The database URL.
const URL: &str = "FS_QTEST_URL";
/// A worker's node name.
const NODE: &str = "FS_QTEST_NODE";
/// How long `square` sleeps, in milliseconds (read where it runs: the workers).
const SLEEP_MS: &str = "FS_QTEST_SLEEP_MS";
/// How many partitions the backfiller backfills.
const PARTITIONS: &str = "FS_QTEST_PARTITIONS";
/// The queue row a `cancel` child cancels.
const JOB_ID: &str = "FS_QTEST_JOB_ID";
/// Set by `gated` when it runs (in the parent, whose worker runs it).
static GATE_REACHED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// What `gated` waits for before it returns.
static GATE: tokio::sync::Notify = tokio::sync::Notify::const_new();
/// An asset this process's build leaves out (the old binary of a rolling deploy).
const WITHOUT: &str = "FS_QTEST_WITHOUT";
/// The line prefix of the backfiller's report.
const REPORT: &str = "FS_QTEST_REPORT ";
/// How long a child may take to finish its part.
const CHILD_PATIENCE: Duration = Duration::from_secs(120);
/// Every (database URL, asset, encoded partition) `day` and `month` ran for in this process
/// (tests of both engines may share the process under `cargo test`).
static DAYS_AND_MONTHS_RAN: std::sync::Mutex<Vec<(String, String, String)>> =
    std::sync::Mutex::new(Vec::new());

/// `day` or `month` ran for `ctx`'s partition in this process, on the database `url`.
fn ran(url: &str, ctx: &flowstone::Context) {
    DAYS_AND_MONTHS_RAN.lock().unwrap().push((
        url.to_owned(),
        ctx.asset().to_owned(),
        ctx.partition().encode(),
    ));
}

/// The FlowStone every process builds: `whoami` says which process ran it, `square` squares
/// an integer partition (after an optional sleep) and may be attempted three times, so a job
/// whose worker is killed is rescued rather than discarded.
fn pipeline(url: &str) -> Builder {
    let without = std::env::var(WITHOUT).ok();
    let (day_url, month_url) = (url.to_owned(), url.to_owned());
    let assets = [
        Asset::new("whoami").execute(|_ctx| async move {
            Ok::<_, Error>(serde_json::json!({
                "pid": std::process::id(),
                "node": std::env::var(NODE).ok(),
            }))
        }),
        Asset::new("waits").execute(|ctx| async move {
            ctx.cancellation().cancelled().await;
            Ok::<u8, Error>(0)
        }),
        // Ignores its token: runs until the test opens the gate, then succeeds.
        Asset::new("gated").execute(|_ctx| async move {
            GATE_REACHED.store(true, std::sync::atomic::Ordering::SeqCst);
            GATE.notified().await;
            Ok::<i64, Error>(7)
        }),
        Asset::new("square")
            .partitioned_by(common::numbered())
            .retry(RetryPolicy::attempts(3).backoff(Duration::from_millis(50)))
            .execute(|ctx| async move {
                let Partition::Int(i) = *ctx.partition() else {
                    return Err(Error::permanent("square takes an integer partition"));
                };
                let ms = std::env::var(SLEEP_MS)
                    .ok()
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<i64, Error>(i * i)
            }),
        // The days of January-February 2024 and the months over them.
        Asset::new("day")
            .partitioned_by(flowstone::Daily::from("2024-01-01").to("2024-02-29"))
            .execute(move |ctx| {
                ran(&day_url, &ctx);
                async move { Ok::<i64, Error>(1) }
            }),
        Asset::new("month")
            .partitioned_by(flowstone::Monthly::from("2024-01").to("2024-02"))
            .depends_on_mapped("day", flowstone::PartitionMapping::time_window())
            .execute(move |ctx| {
                ran(&month_url, &ctx);
                async move {
                    let days = ctx.deps::<i64>("day")?;
                    Ok::<i64, Error>(days.iter().map(|(_, n)| n).sum())
                }
            }),
    ];
    assets
        .into_iter()
        .filter(|a| Some(a.name()) != without.as_deref())
        .fold(FlowStone::builder(), Builder::asset)
        .database(url)
}

/// The child processes' entry point; does nothing unless run as a child.
#[test]
#[ignore = "the child process of the multi-process tests; does nothing when run directly"]
fn child_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let url = std::env::var(URL).expect("the child's database URL");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let fs = pipeline(&url).connect().await.expect("child connects");
            match role.as_str() {
                "worker" => run_worker(fs).await,
                "backfill" => run_backfill(fs).await,
                "days_and_months" => {
                    let report = fs.run_backfill(days_and_months()).await;
                    panic!("the backfill was to be killed before it ended: {report:?}");
                }
                "cancel" => {
                    let id: i64 = std::env::var(JOB_ID).unwrap().parse().unwrap();
                    fs.queue().unwrap().cancel(id).await.expect("cancel");
                }
                other => panic!("unknown child role {other}"),
            }
        });
}

async fn run_worker(fs: FlowStone) {
    // Stop (gracefully) when the parent closes our stdin or dies.
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        let _ = closed_tx.send(());
    });
    fs.worker()
        .queue("assets", 8)
        .node(std::env::var(NODE).expect("the worker's node name"))
        .settings(fast_settings())
        .grace(Duration::from_secs(5))
        .run_until(async {
            let _ = closed_rx.await;
        })
        .await
        .expect("worker runs");
}

async fn run_backfill(fs: FlowStone) {
    let n: i64 = std::env::var(PARTITIONS)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let report = fs
        .backfill(
            "square",
            Backfill::partitions((0..n).map(Partition::Int)).executor(Strategy::Queue),
        )
        .await
        .expect("backfill");
    let failures: Vec<String> = report
        .failures()
        .take(5)
        .map(|(p, e)| format!("{p}: {e}"))
        .collect();
    let line = serde_json::json!({
        "backfill_id": report.backfill_id.to_string(),
        "total": report.total,
        "succeeded": report.succeeded,
        "failed": report.failed,
        "skipped": report.skipped,
        "cancelled": report.cancelled,
        "failures": failures,
    });
    // On a line of its own: libtest has already written "test child_process ... ".
    println!("\n{REPORT}{line}");
}

/// The days and months of January-February 2024 through the queue.
fn days_and_months() -> Backfill {
    Backfill::range(
        chrono::NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
    )
    .select("day+")
    .executor(Strategy::Queue)
}

/// Starts this binary as a child with `role`.
fn spawn_child(role: &str, url: &str, node: &str, env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(std::env::current_exe().expect("the test binary"));
    command
        .args(["child_process", "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(ROLE, role)
        .env(URL, url)
        .env(NODE, node)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(if role == "backfill" {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(if role == "backfill" {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .kill_on_drop(true);
    command.spawn().expect("spawn a child process")
}

/// Closes a worker's stdin so it shuts down gracefully, and checks that it exited cleanly.
async fn stop_worker(mut child: Child) {
    drop(child.stdin.take());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("a worker process stops once its stdin closes")
        .expect("the worker's exit status");
    assert!(status.success(), "the worker process failed: {status}");
}

/// The backfiller's report line.
#[derive(Debug)]
struct ChildReport {
    backfill_id: String,
    total: u64,
    succeeded: u64,
    failed: u64,
    cancelled: u64,
    json: serde_json::Value,
}

async fn backfill_report(child: Child) -> ChildReport {
    let out = tokio::time::timeout(CHILD_PATIENCE, child.wait_with_output())
        .await
        .expect("the backfill process finishes")
        .expect("the backfill process's output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the backfill process failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once(REPORT).map(|(_, json)| json))
        .unwrap_or_else(|| panic!("no report line in the backfill process's output: {stdout}"));
    let json: serde_json::Value = serde_json::from_str(line).expect("report JSON");
    let count = |k: &str| json[k].as_u64().unwrap_or_else(|| panic!("{k} in {json}"));
    ChildReport {
        backfill_id: json["backfill_id"].as_str().unwrap().to_owned(),
        total: count("total"),
        succeeded: count("succeeded"),
        failed: count("failed"),
        cancelled: count("cancelled"),
        json,
    }
}

/// The parent's own FlowStone on the test database (connecting first also migrates it, before
/// any child starts).
async fn parent(db: &TestDb) -> FlowStone {
    pipeline(db.url()).connect().await.expect("connect")
}

/// Up to 1,000 queue rows in `state`.
async fn in_state(fs: &FlowStone, state: JobState) -> Vec<flowstone_queue::Job> {
    fs.queue()
        .unwrap()
        .list(&JobFilter {
            state: Some(state),
            limit: Some(1000),
            ..JobFilter::default()
        })
        .await
        .unwrap()
}

fn names(label: &str) -> (String, String) {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let id = &id[id.len() - 8..];
    (format!("{label}-w1-{id}"), format!("{label}-w2-{id}"))
}

// ---------------------------------------------------------------------------------------------

/// `materialize` through the queue returns the output computed by a worker in another process.
async fn execute_returns_the_output_from_a_worker_in_another_process(db: &TestDb) {
    let fs = parent(db).await;
    let (node, _) = names("exec");
    let worker = spawn_child("worker", db.url(), &node, &[]);
    let pid = worker.id().expect("the worker's pid");
    let out: serde_json::Value = fs
        .materialize("whoami", Run::unpartitioned().executor(Strategy::Queue))
        .await
        .expect("materialize through the queue")
        .value()
        .unwrap();
    assert_eq!(out["pid"], pid, "computed in the worker process: {out}");
    assert_ne!(out["pid"], std::process::id());
    assert_eq!(out["node"], node.as_str());
    let squared: i64 = fs
        .materialize(
            "square",
            Run::partition(Partition::Int(12)).executor(Strategy::Queue),
        )
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(squared, 144);
    assert_eq!(
        fs.load::<i64>("square", Partition::Int(12)).await.unwrap(),
        144
    );
    stop_worker(worker).await;
}

/// A job running in a worker process is cancelled from this process: the worker's cancellation
/// token fires (its record ends `cancelled`), the job is `Cancelled` as seen from any instance,
/// and the worker is free for the next job.
async fn cancelling_a_job_running_in_another_process_stops_it(db: &TestDb) {
    let fs = parent(db).await;
    let (node, _) = names("cancel");
    let worker = spawn_child("worker", db.url(), &node, &[]);
    let job = fs
        .schedule("waits", Run::unpartitioned().executor(Strategy::Queue))
        .await
        .unwrap();
    wait_for("the job to run in the worker process", || async {
        let running = matches!(fs.job_status(&job).await.unwrap(), JobStatus::Running);
        let started = !records(&fs, "waits").await.is_empty();
        (running && started).then_some(())
    })
    .await;
    assert_eq!(row(&fs, &job).await.node.as_deref(), Some(node.as_str()));

    // Another instance, holding only the job as data (as a CLI would), cancels it.
    let other = parent(db).await;
    let job: Job = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
    other
        .cancel_job(&job)
        .await
        .expect("cancel from another instance");
    assert!(matches!(
        wait_finished(&other, &job).await,
        JobStatus::Cancelled
    ));
    let record = settled_record(&fs, "waits").await;
    assert_eq!(record.status, MaterializationStatus::Cancelled);
    assert!(matches!(
        fs.job_status(&job).await.unwrap(),
        JobStatus::Cancelled
    ));
    let out: serde_json::Value = fs
        .materialize("whoami", Run::unpartitioned().executor(Strategy::Queue))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(out["node"], node.as_str());
    stop_worker(worker).await;
}

/// Cancel stops the work even when the worker has not seen the cancel yet. A job of `gated`
/// runs on a worker in this process that polls for cancels only once a minute (on SQLite that
/// is how a cancel from another process arrives); another process cancels it; then `gated`
/// succeeds. Its success must not land: the job, its record and its stored output agree that
/// it was cancelled (on SQLite the success commits in the transaction that completes the job,
/// fenced by its state; on PostgreSQL NOTIFY fires the token first).
async fn a_success_after_a_cancel_from_another_process_does_not_land(db: &TestDb) {
    let fs = parent(db).await;
    let mut settings = fast_settings();
    settings.cancel_poll_interval = Duration::from_secs(60);
    let worker = fs
        .worker()
        .queue("assets", 2)
        .settings(settings)
        .start()
        .await
        .unwrap();
    let job = fs
        .schedule("gated", Run::unpartitioned().executor(Strategy::Queue))
        .await
        .unwrap();
    wait_for("the gated asset to run", || async {
        GATE_REACHED
            .load(std::sync::atomic::Ordering::SeqCst)
            .then_some(())
    })
    .await;
    let id = flowstone::queue::queue_job_id(&job).unwrap().to_string();
    let canceller = spawn_child("cancel", db.url(), "canceller", &[(JOB_ID, id.as_str())]);
    let out = tokio::time::timeout(CHILD_PATIENCE, canceller.wait_with_output())
        .await
        .expect("the cancel process finishes")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    GATE.notify_one();

    assert!(matches!(
        wait_finished(&fs, &job).await,
        JobStatus::Cancelled
    ));
    let record = settled_record(&fs, "gated").await;
    assert_eq!(
        record.status,
        MaterializationStatus::Cancelled,
        "the record agrees with the job: {record:?}"
    );
    let stored = fs.load::<i64>("gated", Partition::Unpartitioned).await;
    assert!(
        stored.is_err(),
        "no output of the cancelled run is stored: {stored:?}"
    );
    assert_eq!(row(&fs, &job).await.state, JobState::Cancelled);
    worker.shutdown(Duration::from_secs(5)).await;
}

/// Checks a finished 500-partition backfill: every row completed, one success record per
/// partition with the row's run and attempt (the rescued attempt when a worker was killed), and
/// every output. Returns how many rows were rescued.
async fn check_backfill(fs: &FlowStone, report: &ChildReport, n: i64) -> usize {
    assert_eq!(report.total, n as u64, "{}", report.json);
    assert_eq!(
        (report.succeeded, report.failed, report.cancelled),
        (n as u64, 0, 0),
        "{}",
        report.json
    );
    let queue = fs.queue().unwrap();
    let mut rows = Vec::new();
    let mut after = None;
    loop {
        let page = queue
            .list_batch(&report.backfill_id, after, Some(1000))
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        rows.extend(page);
    }
    assert_eq!(rows.len(), n as usize);
    let mut by_partition = HashMap::new();
    for row in rows {
        assert_eq!(row.state, JobState::Completed, "{row:?}");
        let partition = row.meta["partition"].as_str().unwrap().to_owned();
        assert!(by_partition.insert(partition, row).is_none());
    }

    let records = fs
        .materializations(&MaterializationQuery::asset("square"))
        .await
        .unwrap();
    let mut per_partition: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for record in records {
        per_partition
            .entry(record.partition.encode())
            .or_default()
            .push(record);
    }
    assert_eq!(per_partition.len(), n as usize);
    let mut rescued = 0;
    for (partition, records) in &per_partition {
        let row = &by_partition[partition];
        assert_eq!(records.len(), 1, "one record per partition: {records:?}");
        let record = &records[0];
        assert_eq!(record.status, MaterializationStatus::Success, "{record:?}");
        assert_eq!(record.executor, "queue");
        assert_eq!(
            record.run_id.to_string(),
            row.meta["run_id"].as_str().unwrap()
        );
        // The attempt recorded as success is the row's last one: the rescued one, if any.
        assert_eq!(i64::from(record.attempt), i64::from(row.attempt), "{row:?}");
        if row.errors.is_empty() {
            assert_eq!(row.attempt, 1, "{row:?}");
        } else {
            rescued += 1;
            assert!(row.attempt >= 2, "{row:?}");
            assert!(
                row.errors
                    .iter()
                    .all(|e| e.error.contains("stopped heartbeating")),
                "{:?}",
                row.errors
            );
        }
    }
    for i in 0..n {
        assert_eq!(
            fs.load::<i64>("square", Partition::Int(i)).await.unwrap(),
            i * i
        );
    }
    rescued
}

/// Two worker processes and a third process backfilling 500 partitions through the queue: all
/// succeed, each partition materialized once, and both workers took part.
async fn two_worker_processes_run_a_500_partition_backfill(db: &TestDb) {
    const N: i64 = 500;
    let fs = parent(db).await;
    let (w1, w2) = names("bf");
    let env = [(SLEEP_MS, "5")];
    let worker1 = spawn_child("worker", db.url(), &w1, &env);
    let worker2 = spawn_child("worker", db.url(), &w2, &env);
    let backfiller = spawn_child("backfill", db.url(), "backfiller", &[(PARTITIONS, "500")]);
    let report = backfill_report(backfiller).await;
    let rescued = check_backfill(&fs, &report, N).await;
    assert_eq!(rescued, 0, "no worker died");
    let done = in_state(&fs, JobState::Completed).await;
    for node in [&w1, &w2] {
        let ran = done
            .iter()
            .filter(|r| r.node.as_deref() == Some(node.as_str()))
            .count();
        assert!(ran > 0, "worker {node} ran none of the {N} jobs");
    }
    stop_worker(worker1).await;
    stop_worker(worker2).await;
}

/// The same with one worker process killed (SIGKILL) mid-backfill: the other worker rescues its
/// jobs once its heartbeat stops, and the backfill still completes; the rescued attempts are
/// the ones recorded as success.
async fn a_backfill_completes_when_a_worker_process_is_killed(db: &TestDb) {
    const N: i64 = 500;
    let fs = parent(db).await;
    let (w1, w2) = names("kill");
    let env = [(SLEEP_MS, "30")];
    let mut victim = spawn_child("worker", db.url(), &w1, &env);
    let survivor = spawn_child("worker", db.url(), &w2, &env);
    let backfiller = spawn_child("backfill", db.url(), "backfiller", &[(PARTITIONS, "500")]);
    let queue = fs.queue().unwrap();
    wait_for_within(
        "100 partitions done and the victim running jobs",
        Duration::from_secs(90),
        || async {
            let done = in_state(&fs, JobState::Completed).await.len();
            let busy = in_state(&fs, JobState::Executing)
                .await
                .iter()
                .any(|r| r.node.as_deref() == Some(w1.as_str()));
            (done >= 100 && busy).then_some(())
        },
    )
    .await;
    victim.start_kill().expect("SIGKILL the victim");
    let status = victim.wait().await.unwrap();
    assert!(!status.success(), "killed: {status:?}");

    let report = backfill_report(backfiller).await;
    let rescued = check_backfill(&fs, &report, N).await;
    eprintln!("{rescued} jobs of the killed worker were rescued");
    assert!(
        rescued > 0,
        "the victim was running jobs when killed: some must have been rescued"
    );
    // Every rescued job finished on the survivor.
    let rows = queue
        .list_batch(&report.backfill_id, None, Some(1000))
        .await
        .unwrap();
    for row in rows.iter().filter(|r| !r.errors.is_empty()) {
        assert_eq!(row.node.as_deref(), Some(w2.as_str()), "{row:?}");
        assert!(row.errors[0].error.contains(&w1), "{:?}", row.errors);
    }
    wait_for("nothing left executing", || async {
        in_state(&fs, JobState::Executing)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    stop_worker(survivor).await;
}

/// A rolling deploy: an old worker process whose build lacks `square` shares the queue with a
/// backfill of it. The old worker never claims those jobs (it runs what it has, `whoami`,
/// queued after them), and once a new worker process starts, every partition succeeds there,
/// on its first attempt, none given back.
async fn an_old_worker_without_an_asset_leaves_its_jobs_to_a_new_one(db: &TestDb) {
    const N: i64 = 100;
    let fs = parent(db).await;
    let (old_node, new_node) = names("deploy");
    let old = spawn_child("worker", db.url(), &old_node, &[(WITHOUT, "square")]);
    let backfiller = spawn_child("backfill", db.url(), "backfiller", &[(PARTITIONS, "100")]);
    let queue = fs.queue().unwrap();
    wait_for("the backfill's rows are queued", || async {
        (in_state(&fs, JobState::Available).await.len() == N as usize).then_some(())
    })
    .await;
    // Queued after the backfill's rows: the old worker's claims reach it only past them.
    let out: serde_json::Value = fs
        .materialize("whoami", Run::unpartitioned().executor(Strategy::Queue))
        .await
        .expect("the old worker runs what it has")
        .value()
        .unwrap();
    assert_eq!(out["node"], old_node.as_str());
    let untouched = in_state(&fs, JobState::Available).await;
    assert_eq!(
        untouched.len(),
        N as usize,
        "the old worker took none of them"
    );
    assert!(untouched.iter().all(|r| r.attempt == 0 && r.unhandled == 0));

    let new = spawn_child("worker", db.url(), &new_node, &[]);
    let report = backfill_report(backfiller).await;
    assert_eq!(
        (report.succeeded, report.failed),
        (N as u64, 0),
        "{}",
        report.json
    );
    let rows = queue
        .list_batch(&report.backfill_id, None, Some(1000))
        .await
        .unwrap();
    assert_eq!(rows.len(), N as usize);
    for row in &rows {
        assert_eq!(row.state, JobState::Completed);
        assert_eq!(row.node.as_deref(), Some(new_node.as_str()), "{row:?}");
        assert_eq!((row.attempt, row.unhandled), (1, 0), "{row:?}");
    }
    stop_worker(old).await;
    stop_worker(new).await;
}

/// A process backfills January-February's days and months through the queue with no worker
/// running and is killed (SIGKILL) once its 62 rows are in: its record stays `running`. This
/// process resumes it with a worker of its own: the rows the dead process left are followed,
/// not inserted again; every (asset, partition) succeeds under the same id, runs once and has
/// one record; the record ends `completed`.
async fn a_queue_backfill_is_resumed_after_its_process_is_killed(db: &TestDb) {
    const N: usize = 31 + 29 + 2;
    let fs = parent(db).await;
    let mut backfiller = spawn_child("days_and_months", db.url(), "backfiller", &[]);
    let id = wait_for("the backfill's record", || async {
        fs.backfills(10).await.unwrap().pop().map(|r| r.id)
    })
    .await;
    let batch = id.to_string();
    let queue = fs.queue().unwrap();
    wait_for("the backfill's rows are in", || async {
        let rows = queue.list_batch(&batch, None, Some(1000)).await.unwrap();
        (rows.len() == N).then_some(())
    })
    .await;
    backfiller
        .start_kill()
        .expect("SIGKILL the backfilling process");
    let status = backfiller.wait().await.unwrap();
    assert!(!status.success(), "killed: {status:?}");
    let (dead, _) = fs.backfill_status(id, None, 0).await.unwrap();
    assert_eq!(dead.status.as_str(), "running", "{dead:?}");

    // The worker starts once the resume has read what is done (it has when it touches the
    // record), so every partition runs in the resumed backfill.
    let resumed = {
        let fs = fs.clone();
        tokio::spawn(async move { fs.resume_backfill(id).await })
    };
    wait_for("the resume to take the record over", || async {
        let (record, _) = fs.backfill_status(id, None, 0).await.unwrap();
        (record.updated_at > dead.updated_at).then_some(())
    })
    .await;
    let worker = fs
        .worker()
        .queue("assets", 4)
        .settings(fast_settings())
        .start()
        .await
        .unwrap();
    let report = tokio::time::timeout(CHILD_PATIENCE, resumed)
        .await
        .expect("the resumed backfill finishes")
        .unwrap()
        .unwrap();
    worker.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.backfill_id, id);
    assert_eq!(
        (report.total, report.succeeded),
        (N, N),
        "{:?}",
        report.outcomes
    );

    // Each (asset, partition) ran once, here, and has one success record of the backfill.
    let ran = DAYS_AND_MONTHS_RAN.lock().unwrap().clone();
    let mut runs: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (url, asset, partition) in ran {
        if url == db.url() {
            *runs.entry((asset, partition)).or_default() += 1;
        }
    }
    assert_eq!(runs.len(), N, "{runs:?}");
    assert!(runs.values().all(|&n| n == 1), "{runs:?}");
    for asset in ["day", "month"] {
        let records = fs
            .materializations(&MaterializationQuery::asset(asset))
            .await
            .unwrap();
        let mut per_partition: BTreeMap<String, usize> = BTreeMap::new();
        for record in &records {
            assert_eq!(record.status, MaterializationStatus::Success, "{record:?}");
            assert_eq!(record.backfill_id, Some(id), "{record:?}");
            *per_partition.entry(record.partition.encode()).or_default() += 1;
        }
        assert_eq!(per_partition.len(), report.of_asset(asset).count());
        assert!(per_partition.values().all(|&n| n == 1), "{per_partition:?}");
    }

    // The queue holds one row per (asset, partition), completed.
    let rows = queue.list_batch(&batch, None, Some(1000)).await.unwrap();
    let mut per_partition: BTreeMap<(String, String), usize> = BTreeMap::new();
    for row in &rows {
        assert_eq!(row.state, JobState::Completed, "{row:?}");
        let key = (
            row.meta["asset"].to_string(),
            row.meta["partition"].to_string(),
        );
        *per_partition.entry(key).or_default() += 1;
    }
    assert_eq!(rows.len(), N, "no row inserted twice: {per_partition:?}");
    assert_eq!(per_partition.len(), N);

    let (record, _) = fs.backfill_status(id, None, 0).await.unwrap();
    assert_eq!(record.status.as_str(), "completed", "{record:?}");
    assert_eq!(record.counts.succeeded, N, "{record:?}");
    assert_eq!(record.owner, None, "{record:?}");
}

flowstone_queue::both_engines!(
    a_queue_backfill_is_resumed_after_its_process_is_killed,
    a_success_after_a_cancel_from_another_process_does_not_land,
    an_old_worker_without_an_asset_leaves_its_jobs_to_a_new_one,
    execute_returns_the_output_from_a_worker_in_another_process,
    cancelling_a_job_running_in_another_process_stops_it,
    two_worker_processes_run_a_500_partition_backfill,
    a_backfill_completes_when_a_worker_process_is_killed,
);
